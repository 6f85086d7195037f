//! RCU-style publication of immutable snapshots with quiescent-state-based
//! reclamation (QSBR), in safe Rust.
//!
//! - The control side ([`Publisher`]) swaps in a new `Arc` snapshot and bumps a
//!   generation counter; the old snapshot moves to a retire list.
//! - Each worker ([`Reader`]) keeps its own `Arc` of the snapshot it uses. Per burst
//!   it reads the generation counter (one load of a line that only changes on
//!   publish) and refreshes its `Arc` only when the generation moved. Calling
//!   [`Reader::load`] is the quiescent point: it takes `&mut self`, so the borrow
//!   checker proves no reference from the previous burst is still alive.
//! - After a refresh the worker stores the generation it now uses into its own
//!   cache-padded slot. [`Publisher::reclaim`] drops retired snapshots that every
//!   online worker has moved past. Because workers drop their old `Arc` before
//!   reporting, the control side holds the last reference and the free (of a
//!   possibly huge table) happens on the control thread, never on a worker.
//!
//! Workers never lock and never wait; the only lock is taken once when a worker
//! registers and by the control side in `reclaim`. Why this and not arc-swap alone
//! or crossbeam-epoch: perf/README.md, "SA tables (issue 8)".

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use crossbeam::utils::CachePadded;

/// Quiescent value of a reader that is offline (parked or gone): it holds no
/// snapshot reference, so it never delays reclamation.
const OFFLINE: u64 = u64::MAX;

/// A published snapshot and the generation it was published as.
#[derive(Debug)]
pub struct Published<T> {
    generation: u64,
    value: T,
}

impl<T> Published<T> {
    /// 1 for the initial snapshot, +1 per publish.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl<T> Deref for Published<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

#[derive(Debug)]
struct ReaderSlot {
    /// Generation this reader is using; it holds nothing older.
    quiescent: CachePadded<AtomicU64>,
}

#[derive(Debug)]
struct Shared<T> {
    /// Read by every worker every burst, written only on publish.
    generation: CachePadded<AtomicU64>,
    current: ArcSwap<Published<T>>,
    readers: Mutex<Vec<Arc<ReaderSlot>>>,
}

/// Counters of the publisher, for tests and `show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Snapshots published after the initial one.
    pub published: u64,
    /// Retired snapshots dropped by `reclaim`.
    pub reclaimed: u64,
    /// Retired snapshots still waiting for a reader.
    pub pending: usize,
}

/// Control side: owns the current snapshot and the retire list. Not `Clone`:
/// one control thread publishes.
#[derive(Debug)]
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    /// (generation every reader must reach, snapshot it replaced).
    retired: VecDeque<(u64, Arc<Published<T>>)>,
    stats: PublisherStats,
}

impl<T: Send + Sync> Publisher<T> {
    /// Start with `initial` as generation 1.
    pub fn new(initial: T) -> Self {
        let first = Arc::new(Published {
            generation: 1,
            value: initial,
        });
        Self {
            shared: Arc::new(Shared {
                generation: CachePadded::new(AtomicU64::new(1)),
                current: ArcSwap::new(first),
                readers: Mutex::new(Vec::new()),
            }),
            retired: VecDeque::new(),
            stats: PublisherStats::default(),
        }
    }

    /// Register a worker. Call at worker start (takes a lock), not per burst.
    pub fn reader(&self) -> Reader<T> {
        Reader::register(Arc::clone(&self.shared))
    }

    /// A cloneable, `Send + Sync` handle that registers readers later, e.g.
    /// from lcore launch closures after the publisher moved to its thread.
    pub fn readers(&self) -> ReaderFactory<T> {
        ReaderFactory {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Publish `value` as the next generation; returns it. The previous snapshot
    /// is retired, not dropped.
    pub fn publish(&mut self, value: T) -> u64 {
        let generation = self.generation() + 1;
        let new = Arc::new(Published { generation, value });
        let old = self.shared.current.swap(new);
        // Readers that see this generation find the new snapshot (or a newer
        // one) in `current`: the swap above happens-before this release store.
        self.shared.generation.store(generation, Ordering::SeqCst);
        self.retired.push_back((generation, old));
        self.stats.published += 1;
        generation
    }

    /// The generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// The current snapshot (control-side reads, e.g. `show`).
    pub fn current(&self) -> Arc<Published<T>> {
        self.shared.current.load_full()
    }

    /// The oldest generation some online reader still uses (`u64::MAX` if no
    /// reader is online). Every generation before it is unreferenced by workers.
    pub fn oldest_in_use(&self) -> u64 {
        let mut readers = self
            .shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Forget readers that were dropped.
        readers.retain(|r| Arc::strong_count(r) > 1);
        readers
            .iter()
            .map(|r| r.quiescent.load(Ordering::SeqCst))
            .min()
            .unwrap_or(OFFLINE)
    }

    /// Drop retired snapshots every online reader has moved past; returns how
    /// many were dropped. Cheap when there is nothing to do: call it after
    /// each publish or from a timer.
    pub fn reclaim(&mut self) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        let passed = self.oldest_in_use();
        let mut n = 0;
        while self.retired.front().is_some_and(|(g, _)| *g <= passed) {
            self.retired.pop_front();
            n += 1;
        }
        self.stats.reclaimed += n as u64;
        n
    }

    /// Publisher counters.
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            pending: self.retired.len(),
            ..self.stats
        }
    }
}

/// Registers [`Reader`]s; see [`Publisher::readers`].
#[derive(Debug)]
pub struct ReaderFactory<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for ReaderFactory<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> ReaderFactory<T> {
    /// Register a worker (takes a lock: call at worker start, not per burst).
    pub fn reader(&self) -> Reader<T> {
        Reader::register(Arc::clone(&self.shared))
    }
}

/// Worker side: one per worker thread (`Send`, not `Sync`; `load` takes `&mut`).
#[derive(Debug)]
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    slot: Arc<ReaderSlot>,
    /// `None` while offline.
    cached: Option<Arc<Published<T>>>,
    cached_generation: u64,
}

impl<T> Reader<T> {
    fn register(shared: Arc<Shared<T>>) -> Self {
        let slot = Arc::new(ReaderSlot {
            quiescent: CachePadded::new(AtomicU64::new(OFFLINE)),
        });
        shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slot));
        let mut reader = Self {
            shared,
            slot,
            cached: None,
            cached_generation: 0,
        };
        reader.load();
        reader
    }

    /// Fetch the current snapshot and report that we use it. The old one was
    /// dropped by the caller first: the publisher's retire list still holds
    /// it, so that drop never frees on the worker.
    #[cold]
    #[inline(never)]
    fn fetch(
        shared: &Shared<T>,
        slot: &ReaderSlot,
        cached_generation: &mut u64,
    ) -> Arc<Published<T>> {
        // Announce the generation we are about to take *before* taking it, so a
        // concurrent reclaim cannot retire-and-free it under us (SeqCst pairs
        // with the publisher's generation store and its reads of the slots; a
        // store-then-load on each side needs a total order). Without this the
        // race is still memory safe (Arc), but the free could land on a worker.
        let announced = shared.generation.load(Ordering::SeqCst);
        slot.quiescent.store(announced, Ordering::SeqCst);
        let fresh = shared.current.load_full();
        // `fresh` is at least `announced`: publish swaps before it bumps.
        *cached_generation = fresh.generation;
        slot.quiescent.store(fresh.generation, Ordering::Release);
        fresh
    }

    /// Start of a burst: a quiescent point, then the snapshot to use for the
    /// whole burst. One atomic load when nothing was published.
    #[inline]
    pub fn load(&mut self) -> &Published<T> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.cached_generation {
            self.cached = None;
        }
        let (shared, slot, cached_generation) =
            (&self.shared, &self.slot, &mut self.cached_generation);
        self.cached
            .get_or_insert_with(|| Self::fetch(shared, slot, cached_generation))
    }

    /// Going idle for a while (e.g. sleeping in backoff): drop the snapshot and
    /// report offline so reclamation does not wait for us. The next
    /// [`Reader::load`] brings the reader back online.
    pub fn offline(&mut self) {
        self.cached = None;
        self.cached_generation = 0;
        self.slot.quiescent.store(OFFLINE, Ordering::Release);
    }

    /// Generation of the snapshot this reader holds (0 while offline).
    pub fn generation(&self) -> u64 {
        if self.cached.is_some() {
            self.cached_generation
        } else {
            0
        }
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        self.offline();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn retired_snapshots_wait_for_every_reader() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut p = Publisher::new(Counted(Arc::clone(&drops)));
        let mut r1 = p.reader();
        let mut r2 = p.reader();
        assert_eq!(r1.load().generation(), 1);
        assert_eq!(r2.load().generation(), 1);

        p.publish(Counted(Arc::clone(&drops)));
        assert_eq!(p.reclaim(), 0, "both readers still on generation 1");
        assert_eq!(r1.load().generation(), 2);
        assert_eq!(p.reclaim(), 0, "r2 still on generation 1");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert_eq!(r2.load().generation(), 2);
        assert_eq!(p.reclaim(), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // An offline reader does not hold reclamation back.
        r2.offline();
        p.publish(Counted(Arc::clone(&drops)));
        r1.load();
        assert_eq!(p.reclaim(), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(r2.load().generation(), 3, "back online on the newest");

        // A dropped reader is forgotten.
        drop(r2);
        p.publish(Counted(Arc::clone(&drops)));
        r1.load();
        assert_eq!(p.reclaim(), 1);
        assert_eq!(p.stats().pending, 0);
        assert_eq!(p.stats().published, 3);
        drop(r1);
        drop(p);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn factory_registers_readers_on_other_threads() {
        let mut p = Publisher::new(1u32);
        let factory = p.readers();
        let worker = std::thread::spawn(move || {
            let mut r = factory.reader();
            **r.load()
        });
        assert_eq!(worker.join().ok(), Some(1));
        p.publish(2);
        assert_eq!(p.reclaim(), 1, "the worker's reader is gone");
    }

    #[test]
    fn no_readers_means_everything_reclaims() {
        let mut p = Publisher::new(0u32);
        for i in 1..=10 {
            p.publish(i);
        }
        assert_eq!(p.reclaim(), 10);
        assert_eq!(*p.current().deref().deref(), 10);
    }
}
