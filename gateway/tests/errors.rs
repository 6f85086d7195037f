//! Bad input ends with one line naming the cause and what to do, exit code != 0, and no
//! panic (issue 4 item 5). Runs the real binary as a subprocess.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

mod support;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ipsecgw-errors-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn config(tag: &str, eal_args: &[&str], extra: &str) -> PathBuf {
    let args: Vec<String> = eal_args.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        "[dpdk]\neal_args = [{}]\n{extra}\n[[port]]\nname = \"a\"\ndpdk_port = 0\n\n[[port]]\nname = \"b\"\ndpdk_port = 1\n\n[forward]\npairs = [[\"a\", \"b\"]]\n",
        args.join(", ")
    );
    let path = tmpdir(tag).join("gw.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn run(tag: &str, eal_args: &[&str], extra: &str, cli_eal: &[&str]) -> Output {
    let cfg = config(tag, eal_args, extra);
    let prefix = format!("--file-prefix=gwerr-{tag}-{}", std::process::id());
    Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--")
        .arg(prefix)
        .args(cli_eal)
        .output()
        .expect("run ipsecgw")
}

/// Checks the failure shape and returns the last stderr line.
fn fails_with_one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "must not panic:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("ipsecgw: error: "), "last line must be the error:\n{stderr}");
    last
}

const NO_HUGE: &[&str] = &["--no-huge", "-m", "256", "--no-pci"];

#[test]
fn unknown_vdev() {
    let out = run("unknown", NO_HUGE, "", &["--vdev=net_foo0", "--vdev=net_null0"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("unknown device \"net_foo0\""), "{line}");
    assert!(line.contains("check the --vdev driver name"), "{line}");
}

#[test]
fn missing_vdev_input_file() {
    let missing = tmpdir("missing").join("does-not-exist.pcap");
    let vdev = format!("--vdev=net_pcap0,rx_pcap={}", missing.display());
    let out = run("missing", NO_HUGE, "", &[&vdev, "--vdev=net_null0,no-rx=1"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("device net_pcap0 failed to start"), "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
}

#[test]
fn unwritable_pcap_path() {
    let input = tmpdir("unwritable").join("in.pcap");
    std::fs::write(&input, support::pcap_file(&[])).expect("write pcap");
    let rx = format!("--vdev=net_pcap0,rx_pcap={}", input.display());
    let out = run("unwritable", NO_HUGE, "", &[&rx, "--vdev=net_pcap1,tx_pcap=/nonexistent-dir/out.pcap"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("device net_pcap1 failed to start"), "{line}");
    assert!(line.contains("/nonexistent-dir/out.pcap for writing"), "{line}");
}

#[test]
fn more_workers_than_the_driver_has_queues() {
    let input = tmpdir("queues").join("in.pcap");
    std::fs::write(&input, support::pcap_file(&[])).expect("write pcap");
    let rx = format!("--vdev=net_pcap0,rx_pcap={}", input.display());
    let tx = format!("--vdev=net_pcap1,tx_pcap={}", tmpdir("queues").join("out.pcap").display());
    // Three lcores (two workers) on whatever CPUs exist; net_pcap has one queue per file.
    let out = run("queues", NO_HUGE, "", &["--lcores=0@0,1@0,2@0", &rx, &tx]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("2 rx queues asked, driver net_pcap supports 1..=1"), "{line}");
    assert!(line.contains("use fewer worker lcores"), "{line}");
}

#[test]
fn zero_ports() {
    let out = run("zero", NO_HUGE, "", &[]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("no DPDK ports"), "{line}");
    assert!(line.contains("--vdev="), "{line}");
}

#[test]
fn config_names_a_port_dpdk_does_not_have() {
    let out = run("oneport", NO_HUGE, "", &["--vdev=net_null0,no-rx=1"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("port \"b\" uses dpdk_port 1 but DPDK has 1 port(s)"), "{line}");
}

#[test]
fn memory_too_small_for_the_mempool_with_no_huge() {
    let out = run("nomem", &["--no-huge", "-m", "16", "--no-pci"], "", &["--vdev=net_null0,no-rx=1", "--vdev=net_null1,no-rx=1"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("creating mempool"), "{line}");
    assert!(line.contains("raise -m"), "{line}");
}

#[test]
fn mempool_smaller_than_the_queues_need() {
    let out = run("fewmbufs", NO_HUGE, "mbufs = 2047", &["--vdev=net_null0,no-rx=1", "--vdev=net_null1,no-rx=1"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("mempool too small: [dpdk].mbufs = 2047"), "{line}");
    assert!(line.contains("raise [dpdk].mbufs to at least"), "{line}");
}

#[test]
fn no_hugepages() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if free > 0 {
        eprintln!("skipped: this machine has {free} free hugepages, EAL would succeed");
        return;
    }
    let out = run("nohuge", &["--no-pci"], "", &["--vdev=net_null0,no-rx=1", "--vdev=net_null1,no-rx=1"]);
    let line = fails_with_one_line(&out);
    assert!(line.contains("no hugepages"), "{line}");
    assert!(line.contains("--no-huge -m 1024"), "{line}");
}

#[test]
fn bad_config_names_file_line_and_column() {
    let path = tmpdir("badtoml").join("bad.toml");
    std::fs::write(&path, "[dpdk]\neal_args = [\"--no-huge\"]\n\n[[port]]\nname = \"a\"\ndpdk_port = \"zero\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw")).args(["run", "--config"]).arg(&path).output().expect("run");
    let line = fails_with_one_line(&out);
    assert!(line.contains(&format!("{}:6:", path.display())), "{line}");
}

#[test]
fn help_works() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw")).arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw")).args(["run", "--help"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--busy-poll"));
}
