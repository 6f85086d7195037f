//! Shared EAL for one test binary (EAL can be initialised once per process).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};

use dpdk::Eal;

/// EAL with `--no-huge`, a per-process file prefix and the given vdevs.
pub fn eal(tag: &str, vdevs: &[&str]) -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let mut args: Vec<String> = ["--no-huge", "-m", "512", "--no-pci", "--log-level", "error", "--lcores", "0@0,1@0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(format!("--file-prefix=dpdktest-{tag}-{}", std::process::id()));
        args.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
        match Eal::init(&args) {
            Ok(e) => {
                // This static Eal is never dropped, so remove the runtime files now: a test
                // process needs no multi-process IPC or telemetry.
                let _ = std::fs::remove_dir_all(e.runtime_dir());
                e
            }
            Err(e) => panic!("EAL init for the test failed: {e}"),
        }
    })
}

/// A deterministic pseudo-random byte stream (xorshift), so payloads differ per packet.
pub fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// Tests run in parallel threads but a worker lcore runs one closure at a time: tests that
/// launch on workers hold this.
pub fn lcores() -> MutexGuard<'static, ()> {
    static LCORES: Mutex<()> = Mutex::new(());
    LCORES.lock().unwrap_or_else(|e| e.into_inner())
}
