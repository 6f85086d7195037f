//! `ipsecgw run` forwards a pcap between two net_pcap ports unchanged, stops on SIGTERM and
//! prints per-port counters.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::{pcap_file, pcap_records};

fn frame(i: usize) -> Vec<u8> {
    // Ethernet + IPv4 (198.51.100.0/24) + UDP, length varying with i; contents need not be
    // valid for a forwarder, only distinct.
    let len = 60 + (i * 37) % 1400;
    let mut p = vec![0u8; len];
    p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    p[26..30].copy_from_slice(&[198, 51, 100, 1]);
    p[30..34].copy_from_slice(&[198, 51, 100, 2]);
    for (k, b) in p[42..].iter_mut().enumerate() {
        *b = (i * 7 + k) as u8;
    }
    p
}

#[test]
fn forwards_a_pcap_unchanged_and_prints_counters_on_sigterm() {
    // Two lcores on CPU 0 whatever the machine has: main + one worker (net_pcap has one queue).
    forward_pcap("worker", "", ", \"--lcores=0@0,1@0\"", "1 worker lcore");
}

/// Without worker lcores the main lcore polls; a burst of 4 splits the input in many bursts.
#[test]
fn forwards_on_the_main_lcore_alone_with_small_bursts() {
    forward_pcap("main", "burst = 4\n", ", \"-l\", \"0\"", "the main lcore");
}

fn forward_pcap(tag: &str, dpdk_extra: &str, eal_extra: &str, polled_on: &str) {
    let dir = std::env::temp_dir().join(format!("ipsecgw-forward-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let packets: Vec<Vec<u8>> = (0..200).map(frame).collect();
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    std::fs::write(&input, pcap_file(&packets)).expect("write pcap");
    let _ = std::fs::remove_file(&output);
    let cfg = dir.join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dpdk]\n{dpdk_extra}eal_args = [\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--file-prefix=gwfwd-{tag}-{pid}\",\n  \"--vdev=net_pcap0,rx_pcap={i}\", \"--vdev=net_pcap1,tx_pcap={o}\"{eal_extra}]\n\n[[port]]\nname = \"outside\"\ndpdk_port = 0\n\n[[port]]\nname = \"inside\"\ndpdk_port = 1\n\n[forward]\npairs = [[\"outside\", \"inside\"]]\n",
            pid = std::process::id(),
            i = input.display(),
            o = output.display()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    assert!(first.contains(&format!("forwarding outside<->inside on {polled_on}")), "{first}");
    // Wait (bounded) until every packet is in the output file; net_pcap flushes per burst.
    for _ in 0..200 {
        if pcap_records(&std::fs::read(&output).unwrap_or_default()).len() >= packets.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read");
    assert!(status.success(), "exit {status:?}; stdout {rest}");
    assert_eq!(pcap_records(&std::fs::read(&output).expect("output")), packets, "forwarded bytes differ");
    let row = |name: &str| -> Vec<u64> {
        let line = rest.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect()
    };
    assert_eq!(row("outside")[0], 200, "outside rx_pkts:\n{rest}");
    assert_eq!(row("inside")[1], 200, "inside tx_pkts:\n{rest}");
    let _ = std::fs::remove_dir_all(&dir);
}
