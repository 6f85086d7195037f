//! The ESP workers' handoff rings in `ipsecgw run`: `dataplane::worker`'s
//! [`Handoff`] over DPDK single-producer/single-consumer rings of mbufs, one per
//! (from, to) pair of workers (`dpdk::Ring::spsc`).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use dataplane::worker::{Handoff, HandoffStats};
use dpdk::{Eal, Mbuf, Ring, RingConsumer, RingProducer};

/// Mbufs one ring holds: 32 bursts, enough for the owner to fall a few polls
/// behind (an idle owner sleeps up to 50 µs, worker.rs) without drops.
pub const RING_SIZE: u32 = 1024;

/// One ESP worker's handoff endpoints.
pub type MbufHandoff = Handoff<Mbuf, RingProducer, RingConsumer>;

/// Rings between `workers` workers; `None` for one worker (it owns every SA).
pub fn mesh(eal: &Eal, workers: usize) -> Result<Option<(Vec<MbufHandoff>, Arc<HandoffStats>)>> {
    if workers < 2 {
        return Ok(None);
    }
    let ends = Handoff::mesh(workers, |from, to| {
        Ring::spsc(eal, &format!("ipsecgw_ho_{from}_{to}"), RING_SIZE).map_err(|e| anyhow!("handoff ring {from}->{to}: {e}"))
    })?;
    Ok(Some(ends))
}

/// Mbufs the rings can hold at once (for the mempool size).
pub fn ring_mbufs(workers: usize) -> usize {
    if workers < 2 {
        0
    } else {
        workers * (workers - 1) * RING_SIZE as usize
    }
}

/// Per-worker handoff lines for the exit report.
pub fn report(stats: &HandoffStats) -> String {
    let mut s = String::new();
    for w in 0..stats.len() {
        if let Some(c) = stats.worker(w) {
            let _ = writeln!(
                s,
                "handoff worker {w}: sent {} received {} ring_full {} plaintext {}",
                c.sent.load(Relaxed),
                c.received.load(Relaxed),
                c.ring_full.load(Relaxed),
                c.plain.load(Relaxed)
            );
        }
    }
    s
}
