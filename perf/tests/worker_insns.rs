//! perf/esp/insns.sh's harness: the worker of perf/run.sh passes its own
//! output check in every direction and size, the check notices missing,
//! misrouted and corrupted frames, and (where valgrind is installed) the
//! script counts something and gives the same count for the same binary.
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

#[test]
fn insns_sh_counts_the_same_for_the_same_binary() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("SKIPPED: valgrind is not installed (apt-get install valgrind); perf/esp/insns.sh not run");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_worker_insns");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/esp/insns.sh");
    let out = Command::new("bash").args([script, "encap", "64", bin, bin]).env("BURSTS", "2").env("TOP", "5").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| total") || l.starts_with("| AEAD") || l.starts_with("| ours"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for r in &rows {
        let (a, b): (f64, f64) = (r[2].parse().expect("A"), r[3].parse().expect("B"));
        assert!(a > 0.0, "something counted: {r:?}");
        assert_eq!(a, b, "deterministic: {r:?}");
        assert_eq!(r[4], "1.0000", "{r:?}");
    }
}
