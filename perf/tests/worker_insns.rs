//! perf/esp/insns.sh's harness: the worker of perf/run.sh passes its own
//! output check in every direction and size, the check notices missing,
//! misrouted and corrupted frames, and (where valgrind is installed) the
//! script counts something and gives the same count for the same binary;
//! with GW=1 (root, and the gateway binary scripts/test.sh builds) it counts
//! the real gateway's loop per packet, nearly the same twice.
#![forbid(unsafe_code)]

use std::process::Command;

use dataplane::crypto::Algorithm;
use dataplane::packet::{HeapPacket, Packet};
use dataplane::worker::RecordingIo;
use perf::worker_traffic::{heap, measured_bursts, Dir, Outer, Traffic, Tunnels, BURST};

fn run(dir: Dir, outer: Outer, size: usize, bursts: usize) -> (Traffic, Vec<(usize, HeapPacket)>) {
    run_tunnels(dir, outer, Tunnels::default(), size, bursts)
}

fn run_tunnels(dir: Dir, outer: Outer, tunnels: Tunnels, size: usize, bursts: usize) -> (Traffic, Vec<(usize, HeapPacket)>) {
    let mut t = Traffic::new(dir, Algorithm::Aes128Gcm, outer, tunnels, size).expect("traffic");
    let mut input = t.bursts(bursts);
    let mut io = RecordingIo::new(heap);
    measured_bursts(&mut t.gateway.worker, t.rx_port, &mut input, &mut io);
    assert!(input.iter().all(Vec::is_empty), "every frame was handed to the worker");
    (t, io.sent)
}

#[test]
fn every_direction_and_size_comes_out_whole() {
    for dir in [Dir::Encap, Dir::Decap] {
        for size in [64, 512, 1400] {
            // 3 bursts: more than one pass over the 64 flows.
            let (t, sent) = run(dir, Outer::default(), size, 3);
            assert_eq!(sent.len(), 3 * BURST);
            t.check(&sent, 3).unwrap_or_else(|e| panic!("{dir} {size}: {e}"));
        }
    }
}

#[test]
fn every_outer_header_comes_out_whole() {
    for dir in [Dir::Encap, Dir::Decap] {
        for (v6, udp) in [(false, true), (true, false), (true, true)] {
            let outer = Outer { v6, udp };
            let (t, sent) = run(dir, outer, 64, 3);
            t.check(&sent, 3).unwrap_or_else(|e| panic!("{dir} {outer}: {e}"));
            if dir == Dir::Encap {
                // The ESP really has that outer header: EtherType, then IPv4's protocol or IPv6's next header.
                let f = sent[0].1.data();
                let (ethertype, proto) = if v6 { (0x86dd, f[20]) } else { (0x0800, f[23]) };
                assert_eq!(u16::from_be_bytes([f[12], f[13]]), ethertype, "{outer}");
                assert_eq!(proto, if udp { 17 } else { 50 }, "{outer}");
            }
        }
    }
}

#[test]
fn many_tunnels_take_the_flows_in_turn_and_come_out_whole() {
    for dir in [Dir::Encap, Dir::Decap] {
        for n in [1, 4, 64] {
            let tunnels = Tunnels(Some(n));
            let (t, sent) = run_tunnels(dir, Outer::default(), tunnels, 64, 3);
            t.check(&sent, 3).unwrap_or_else(|e| panic!("{dir} {tunnels}: {e}"));
            if dir == Dir::Encap {
                // Raw ESP over IPv4: the SPI right after the 20-byte outer header.
                let mut spis: Vec<&[u8]> = sent.iter().map(|(_, p)| &p.data()[34..38]).collect();
                spis.sort_unstable();
                spis.dedup();
                assert_eq!(spis.len(), n, "{tunnels}: ESP left on {} SAs", spis.len());
            }
        }
    }
}

#[test]
fn the_check_notices_missing_misrouted_and_corrupted_frames() {
    for dir in [Dir::Encap, Dir::Decap] {
        let (t, mut sent) = run(dir, Outer::default(), 128, 2);
        t.check(&sent, 2).expect("intact");
        assert!(t.check(&sent[1..], 2).is_err(), "{dir}: a frame missing");
        sent[5].0 = 0;
        assert!(t.check(&sent, 2).is_err(), "{dir}: a frame on the wrong port");
        sent[5].0 = t.tx_port;
        // Last byte of a frame of the last burst: ESP ICV (encap) or UDP payload (decap).
        let last = sent.len() - 1;
        let n = sent[last].1.len();
        sent[last].1.data_mut()[n - 1] ^= 1;
        assert!(t.check(&sent, 2).is_err(), "{dir}: a flipped byte");
        sent[last].1.data_mut()[n - 1] ^= 1;
        t.check(&sent, 2).expect("restored");
        // A whole frame of the first burst, but another flow's: the flows a burst carries changed.
        sent[3].1 = HeapPacket::from_slice(sent[4].1.data());
        assert!(t.check(&sent, 2).is_err(), "{dir}: a flow twice, another missing");
    }
}

#[test]
fn the_binary_checks_its_arguments_and_its_output() {
    let bin = env!("CARGO_BIN_EXE_worker_insns");
    let ok = Command::new(bin).args(["decap", "64", "2"]).output().expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("64 out, checked"));
    let bad = Command::new(bin).args(["sideways", "64"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

/// The table rows of insns.sh's output whose label starts with one of `labels`,
/// as (A, B) per packet; `text` is shown when one is missing.
fn insns_rows(text: &str, labels: &[&str]) -> Vec<(f64, f64)> {
    let rows: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| labels.iter().any(|k| l.starts_with(&format!("| {k}"))))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c[2].parse().expect("A"), c[3].parse().expect("B"))
        })
        .collect();
    assert_eq!(rows.len(), labels.len(), "{text}");
    rows
}

fn valgrind_missing() -> bool {
    let missing = Command::new("valgrind").arg("--version").output().is_err();
    if missing {
        eprintln!("SKIPPED: valgrind is not installed (apt-get install valgrind); perf/esp/insns.sh not run");
    }
    missing
}

const INSNS_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/esp/insns.sh");

#[test]
fn insns_sh_counts_the_same_for_the_same_binary() {
    if valgrind_missing() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_worker_insns");
    let out = Command::new("bash").args([INSNS_SH, "encap", "64", bin, bin]).env("BURSTS", "2").env("TOP", "5").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for (a, b) in insns_rows(&text, &["total", "AEAD", "ours"]) {
        assert!(a > 0.0, "something counted: {text}");
        assert_eq!(a, b, "deterministic: {text}");
    }
    assert!(!text.contains("| DPDK"), "no DPDK in the heap-packet harness: {text}");
}

/// GW=1: the gateway itself (DPDK vdevs, mbufs) under callgrind. Needs root and
/// the binary in `IPSECGW` (scripts/test.sh exports it after building it).
#[test]
fn insns_sh_counts_the_gateway_loop_per_packet() {
    let Some(gw) = std::env::var_os("IPSECGW").filter(|p| std::path::Path::new(p).is_file()) else {
        eprintln!("SKIPPED: IPSECGW does not name the gateway binary (scripts/test.sh sets it)");
        return;
    };
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if valgrind_missing() || !root {
        eprintln!("SKIPPED: GW=1 needs root and valgrind");
        return;
    }
    let out = Command::new("bash")
        .args([INSNS_SH.as_ref(), "encap".as_ref(), "64".as_ref(), gw.as_os_str(), gw.as_os_str()])
        .env("GW", "1")
        .env("SECS", "2")
        .env("TOP", "5")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows = insns_rows(&text, &["total", "AEAD", "DPDK", "ours"]);
    for &(a, b) in &rows {
        assert!(a > 0.0 && b > 0.0, "every part counted: {text}");
        // Not exact: the packets counted differ between runs, and the loop's
        // start and end are spread over them.
        assert!((a / b - 1.0).abs() < 0.02, "nearly the same twice: {text}");
    }
    // The gateway does more per packet than the AEAD and the I/O together.
    assert!(rows[3].0 > 100.0, "{text}");
}
