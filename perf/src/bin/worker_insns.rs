//! Run the ESP gateway's worker of perf/run.sh (one static tunnel, heap packets,
//! `Backend::Auto`) over N bursts of 32 frames, for instruction counting under
//! callgrind (perf/esp/insns.sh): only `perf::worker_traffic::measured_bursts`
//! is counted, the setup and the checks are not.
//!
//!   cargo build --release -p perf --bin worker_insns
//!   worker_insns DIR SIZE [BURSTS=100] [ALG=aes128gcm]
//!       DIR encap|decap, SIZE the plaintext frame size in bytes (64, 512, 1400...)
//!   env ESP_UDP=1: ESP in UDP 4500; ESP_V6=1: an IPv6 outer header; ESP_TUNNELS=N: N tunnels
//!       taking the 64 flows in turn (perf/esp/config.sh's switches)
//!
//! Every burst is a fresh copy of the same frames (perf/run.sh's 64 flows), so
//! each burst does the same work. At the end the output is checked (count,
//! port, link header, no drops, and the first and last burst's plaintext: for
//! encap after a peer worker decapsulated them); exit 1 if anything is wrong.
#![forbid(unsafe_code)]

use dataplane::crypto::{ipsec_mb_arch, prepare_thread, Backend};
use dataplane::worker::RecordingIo;
use perf::worker_traffic::{algorithm, heap, measured_bursts, Dir, Outer, Traffic, Tunnels, BURST};

fn usage(msg: &str) -> ! {
    eprintln!("worker_insns: {msg}");
    eprintln!("usage: worker_insns encap|decap SIZE [BURSTS=100] [ALG=aes128gcm|aes256gcm|chacha20poly1305]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 4 {
        usage("wrong number of arguments");
    }
    let dir: Dir = args[0].parse().unwrap_or_else(|e: String| usage(&e));
    let size: usize = args[1].parse().ok().filter(|s| (42..=1500).contains(s)).unwrap_or_else(|| usage("SIZE: a frame size of 42..=1500 bytes"));
    let bursts: usize = args.get(2).map_or(Some(100), |s| s.parse().ok()).unwrap_or_else(|| usage("BURSTS: a number"));
    let alg_name = args.get(3).map_or("aes128gcm", String::as_str);
    let alg = algorithm(alg_name).unwrap_or_else(|e| usage(&e));

    prepare_thread();
    let outer = Outer::from_env();
    let tunnels = Tunnels::from_env().unwrap_or_else(|e| usage(&e));
    let mut t = Traffic::new(dir, alg, outer, tunnels, size).unwrap_or_else(|e| {
        eprintln!("worker_insns: FAIL: {e}");
        std::process::exit(1)
    });
    let mut input = t.bursts(bursts);
    let mut io = RecordingIo::new(heap);
    io.sent.reserve_exact(bursts * BURST);
    measured_bursts(&mut t.gateway.worker, t.rx_port, &mut input, &mut io);
    let choice = Backend::auto_choice(alg);
    if let Err(e) = t.check(&io.sent, bursts) {
        eprintln!("worker_insns: FAIL: {dir} {size} B: {e}");
        std::process::exit(1);
    }
    println!(
        "worker_insns: {dir} {alg_name} {size} B, {outer}, {tunnels}: {bursts} bursts x {BURST} frames, {} out, checked; AEAD {} (ipsec-mb arch {:?})",
        io.sent.len(),
        choice.name(),
        ipsec_mb_arch()
    );
}
