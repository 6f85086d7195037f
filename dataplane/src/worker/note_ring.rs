//! A worker's notes for the control plane, made on a cold path (ESP on an
//! unknown SPI, a packet hitting a trap policy) without waiting, allocating
//! or locking.
//!
//! [`NoteRing`] is a fixed ring per worker (in the worker's
//! [`crate::stats::CoreStats`]): the worker is its only producer; at most
//! `per_second` notes per second are made, and what the budget or a full ring
//! refuses is only counted (`suppressed`). A reader on any thread drains it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use crossbeam::utils::CachePadded;

/// Notes a worker makes per second at most by default (the rest are counted only).
pub const DEFAULT_PER_SECOND: u64 = 256;
/// Ring slots per worker: a second's default budget fits even if the reader is late.
const RING: usize = 256;

/// What a note is: a value that packs into three words and back.
pub trait Note: Copy {
    /// The note as three words (what a slot stores).
    fn pack(self) -> [u64; 3];
    /// The note back from [`Self::pack`]'s words.
    fn unpack(words: [u64; 3]) -> Self;
}

/// One ring slot: three atomic words, so a reader never sees a torn word (the
/// ring protocol makes a slot complete before it is visible).
#[derive(Debug, Default)]
struct Slot([AtomicU64; 3]);

impl Slot {
    fn store(&self, words: [u64; 3]) {
        for (w, v) in self.0.iter().zip(words) {
            w.store(v, Relaxed);
        }
    }

    fn load(&self) -> [u64; 3] {
        [self.0[0].load(Relaxed), self.0[1].load(Relaxed), self.0[2].load(Relaxed)]
    }
}

/// A worker's ring of notes `N`: one producer (the worker, through
/// [`Self::note`]), readers on any thread ([`Self::drain`]).
#[derive(Debug)]
pub struct NoteRing<N> {
    slots: Box<[Slot]>,
    /// Next slot the worker writes (only the worker stores it).
    head: CachePadded<AtomicU64>,
    /// Next slot to read (readers advance it).
    tail: CachePadded<AtomicU64>,
    /// Producer-only: the second the budget counts for, and notes made in it.
    second: AtomicU64,
    used: AtomicU64,
    /// Notes refused (budget spent or ring full).
    suppressed: AtomicU64,
    limit: u64,
    kind: PhantomData<fn() -> N>,
}

impl<N: Note> Default for NoteRing<N> {
    fn default() -> Self {
        Self::new(DEFAULT_PER_SECOND)
    }
}

impl<N: Note> NoteRing<N> {
    /// A ring making at most `per_second` notes per second.
    pub fn new(per_second: u64) -> Self {
        NoteRing {
            slots: (0..RING).map(|_| Slot::default()).collect(),
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            second: AtomicU64::new(u64::MAX),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            limit: per_second,
            kind: PhantomData,
        }
    }

    /// Note `n` at `now_ms` (the worker's monotonic clock). Only the worker
    /// owning this ring may call it (single producer: plain loads and stores).
    pub fn note(&self, n: N, now_ms: u64) {
        let second = now_ms / 1000;
        if self.second.load(Relaxed) != second {
            self.second.store(second, Relaxed);
            self.used.store(0, Relaxed);
        }
        let head = self.head.load(Relaxed);
        let full = head.wrapping_sub(self.tail.load(Acquire)) >= RING as u64;
        let used = self.used.load(Relaxed);
        if used >= self.limit || full {
            self.suppressed.store(self.suppressed.load(Relaxed).wrapping_add(1), Relaxed);
            return;
        }
        self.used.store(used + 1, Relaxed);
        if let Some(slot) = self.slots.get((head % RING as u64) as usize) {
            slot.store(n.pack());
        }
        // Release: the slot's contents are visible before the new head.
        self.head.store(head.wrapping_add(1), Release);
    }

    /// Hand every note made so far to `f`, oldest first; returns how many.
    /// Readers on several threads each get a note at most once.
    pub fn drain(&self, mut f: impl FnMut(N)) -> usize {
        let mut n = 0;
        loop {
            let tail = self.tail.load(Acquire);
            if tail == self.head.load(Acquire) {
                return n;
            }
            let Some(slot) = self.slots.get((tail % RING as u64) as usize) else { return n };
            let note = N::unpack(slot.load());
            // The slot is ours only if no other reader took it meanwhile; the
            // worker does not rewrite it before the tail moves past it.
            if self.tail.compare_exchange(tail, tail.wrapping_add(1), Release, Relaxed).is_ok() {
                f(note);
                n += 1;
            }
        }
    }

    /// Notes refused so far (per-second budget spent or ring full).
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct N(u32);

    impl Note for N {
        fn pack(self) -> [u64; 3] {
            [u64::from(self.0), !u64::from(self.0), 7]
        }
        fn unpack(w: [u64; 3]) -> Self {
            assert_eq!((w[1], w[2]), (!w[0], 7), "slot words belong together");
            N(w[0] as u32)
        }
    }

    #[test]
    fn budget_per_second_excess_only_counted() {
        let ring = NoteRing::new(10);
        for i in 0..25 {
            ring.note(N(i), 5_000 + u64::from(i));
        }
        let mut got = Vec::new();
        assert_eq!(ring.drain(|x| got.push(x)), 10);
        assert_eq!(got, (0..10).map(N).collect::<Vec<_>>(), "the first ten, in order");
        assert_eq!(ring.suppressed(), 15);
        // The next second has a new budget.
        ring.note(N(99), 6_000);
        assert_eq!(ring.drain(|x| got.push(x)), 1);
        assert_eq!(got.last(), Some(&N(99)));
    }

    #[test]
    fn full_ring_refuses_until_drained() {
        let ring = NoteRing::new(u64::MAX);
        for i in 0..(RING as u32 + 5) {
            ring.note(N(i), 0);
        }
        assert_eq!(ring.suppressed(), 5);
        let mut last = None;
        assert_eq!(ring.drain(|x| last = Some(x)), RING);
        assert_eq!(last, Some(N(RING as u32 - 1)));
        ring.note(N(7), 0);
        assert_eq!(ring.drain(|_| {}), 1, "room again after the drain");
    }

    #[test]
    fn concurrent_reader_gets_each_note_once() {
        let ring = std::sync::Arc::new(NoteRing::new(u64::MAX));
        let total = 100_000u32;
        let reader = {
            let ring = std::sync::Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() + (ring.suppressed() as usize) < total as usize {
                    ring.drain(|x: N| seen.push(x.0));
                    std::thread::yield_now();
                }
                seen
            })
        };
        for i in 0..total {
            ring.note(N(i), 0);
        }
        let seen = reader.join().expect("reader");
        assert_eq!(seen.len() as u64 + ring.suppressed(), u64::from(total));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, none twice, none torn");
    }
}
