//! A read-side copy of the workers' neighbour tables, for `ipsecgw show
//! neighbors` (issue 7 item 2).
//!
//! A [`NeighborTable`](crate::neighbor::NeighborTable) belongs to one worker
//! and is mutated without locks on its fast path, so no other thread may read
//! it. Instead a reader *asks*: it bumps a request generation; each worker,
//! once per poll, compares that generation with the last one it answered (one
//! relaxed load when nobody asked) and, if behind, copies its table into a
//! fresh `Vec` published through an `ArcSwap`. The copy allocates, but only
//! when an operator asks, never on the packet path. A worker that does not
//! answer within the reader's timeout (stopped, or stuck in a long burst)
//! leaves its previous copy, which the reader marks as old.

use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::neighbor::NeighborTable;
use crate::wire::MacAddr;

/// State of an entry, named like `ip neigh` (RFC 4861 §7.3.2 states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborState {
    /// Asked for, no answer yet.
    Incomplete,
    /// Learned less than [`NeighborTable::STALE_MS`] ago.
    Reachable,
    /// Learned longer ago: used, and re-resolved on the next use.
    Stale,
    /// Configured (`--neighbor`): never re-resolved.
    Permanent,
}

impl NeighborState {
    /// Lower-case name for tables and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            NeighborState::Incomplete => "incomplete",
            NeighborState::Reachable => "reachable",
            NeighborState::Stale => "stale",
            NeighborState::Permanent => "permanent",
        }
    }
}

/// One neighbour entry of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborRow {
    /// Worker whose table holds it.
    pub worker: usize,
    /// Port index.
    pub port: usize,
    pub ip: IpAddr,
    /// `None` while incomplete.
    pub mac: Option<MacAddr>,
    pub state: NeighborState,
    /// Milliseconds since it was learned or last asked for.
    pub age_ms: u64,
}

#[derive(Debug)]
struct Slot {
    /// Request generation this worker answered last.
    answered: AtomicU64,
    rows: ArcSwap<Vec<NeighborRow>>,
}

/// The shared copy: one slot per worker.
#[derive(Debug)]
pub struct NeighborMirror {
    asked: AtomicU64,
    slots: Box<[Slot]>,
}

/// What a reader got: the rows, and how many workers did not answer in time
/// (their rows are from an earlier request, or missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborRead {
    pub rows: Vec<NeighborRow>,
    pub unanswered: usize,
}

impl NeighborMirror {
    /// A mirror for `workers` workers.
    pub fn new(workers: usize) -> Arc<Self> {
        let slots = (0..workers.max(1)).map(|_| Slot { answered: AtomicU64::new(0), rows: ArcSwap::from_pointee(Vec::new()) }).collect();
        Arc::new(NeighborMirror { asked: AtomicU64::new(0), slots })
    }

    /// Worker side, once per poll: whether worker `worker` has a request to answer.
    #[inline]
    pub fn wanted(&self, worker: usize) -> bool {
        let asked = self.asked.load(Ordering::Relaxed);
        self.slots.get(worker).is_some_and(|s| s.answered.load(Ordering::Relaxed) != asked)
    }

    /// Worker side: copy `table` for worker `worker` (call when [`Self::wanted`]).
    pub fn publish<P>(&self, worker: usize, table: &NeighborTable<P>, now_ms: u64) {
        let Some(slot) = self.slots.get(worker) else { return };
        let asked = self.asked.load(Ordering::Acquire);
        let rows = table
            .entries(now_ms)
            .map(|(port, ip, mac, permanent, age_ms)| NeighborRow {
                worker,
                port,
                ip,
                mac,
                state: match (mac, permanent) {
                    (_, true) => NeighborState::Permanent,
                    (None, false) => NeighborState::Incomplete,
                    (Some(_), false) if age_ms >= NeighborTable::<P>::STALE_MS => NeighborState::Stale,
                    (Some(_), false) => NeighborState::Reachable,
                },
                age_ms,
            })
            .collect();
        slot.rows.store(Arc::new(rows));
        slot.answered.store(asked, Ordering::Release);
    }

    /// Reader side: ask every worker and wait (polling, at most `timeout`)
    /// for their copies. Rows are sorted by port, then address.
    pub fn read(&self, timeout: Duration) -> NeighborRead {
        let asked = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + timeout;
        let pending = || self.slots.iter().filter(|s| s.answered.load(Ordering::Acquire) < asked).count();
        while pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let unanswered = pending();
        let mut rows: Vec<NeighborRow> = self.slots.iter().flat_map(|s| s.rows.load().as_ref().clone()).collect();
        rows.sort_by_key(|r| (r.port, r.ip, r.worker));
        NeighborRead { rows, unanswered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    #[test]
    fn reader_gets_what_the_worker_copied_when_asked() {
        let mirror = NeighborMirror::new(1);
        assert!(!mirror.wanted(0), "nobody asked yet");
        let mut table = NeighborTable::<u32>::new(16);
        table.insert_permanent(0, "198.51.100.2".parse().expect("ip"), A);
        table.learn(1, "10.2.0.2".parse().expect("ip"), A, 1_000, true);
        let _ = table.hold(0, "198.51.100.9".parse().expect("ip"), 7, 2_000);
        // A worker thread answering the request.
        let worker = {
            let m = Arc::clone(&mirror);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !m.wanted(0) && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                m.publish(0, &table, 1_000 + NeighborTable::<u32>::STALE_MS);
            })
        };
        let read = mirror.read(Duration::from_secs(10));
        worker.join().expect("worker");
        assert_eq!(read.unanswered, 0);
        let states: Vec<(usize, String, &str)> = read.rows.iter().map(|r| (r.port, r.ip.to_string(), r.state.name())).collect();
        assert_eq!(
            states,
            [(0, "198.51.100.2".into(), "permanent"), (0, "198.51.100.9".into(), "incomplete"), (1, "10.2.0.2".into(), "stale")]
        );
        assert!(!mirror.wanted(0), "answered");
    }

    #[test]
    fn a_silent_worker_is_reported_not_waited_for_forever() {
        let mirror = NeighborMirror::new(2);
        mirror.publish(0, &NeighborTable::<u32>::new(8), 0);
        let read = mirror.read(Duration::from_millis(20));
        assert_eq!(read.unanswered, 2, "neither worker answered this request");
        assert!(read.rows.is_empty());
        assert!(mirror.wanted(1));
    }
}
