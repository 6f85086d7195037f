//! ESP on an SPI we have no inbound SA for (the decap lookup missed).
//!
//! The packet is dropped and counted as `no_sa`, or as `sa_deleted` when the
//! SPI belonged to an inbound SA removed recently (the snapshot's tombstones).
//! An unknown SPI is also noted, as (outer source address, SPI), for the
//! control plane, which counts per (peer, SPI) and answers with a rate-limited
//! INVALID_SPI notify where it has an IKE SA with the peer (RFC 7296 §3.10.1).
//!
//! The note goes through [`UnknownSpiNotices`], a fixed ring per worker (in
//! the worker's [`CoreStats`]): the worker is its only producer and never
//! waits, allocates or locks; at most [`NOTICES_PER_SECOND`] notes per second
//! are made, and what the budget or a full ring refuses is only counted
//! (`suppressed`). A reader on any thread drains it. This is the miss path
//! only: nothing here runs for ESP that finds its SA.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use crossbeam::utils::CachePadded;

use super::TunnelTable;
use crate::drop::DropReason;
use crate::sa::Spi;
use crate::stats::CoreStats;

/// Notes a worker makes per second at most (the rest are counted only).
pub const NOTICES_PER_SECOND: u64 = 256;
/// Ring slots per worker: a second's budget fits even if the reader is late.
const RING: usize = 256;

/// ESP seen on an SPI no inbound SA has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownSpi {
    /// The outer source address (the peer, or whoever claims to be).
    pub peer: IpAddr,
    /// The SPI from the ESP header.
    pub spi: u32,
}

/// One ring slot: the address as two words and `spi | family << 32`, each
/// atomic so a reader never sees a torn value (the ring protocol makes a slot
/// complete before it is visible).
#[derive(Debug, Default)]
struct Slot {
    hi: AtomicU64,
    lo: AtomicU64,
    meta: AtomicU64,
}

const V6: u64 = 1 << 32;

impl Slot {
    fn store(&self, n: UnknownSpi) {
        let (bits, family) = match n.peer {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), V6),
        };
        self.hi.store((bits >> 64) as u64, Relaxed);
        self.lo.store(bits as u64, Relaxed);
        self.meta.store(u64::from(n.spi) | family, Relaxed);
    }

    fn load(&self) -> UnknownSpi {
        let bits = (u128::from(self.hi.load(Relaxed)) << 64) | u128::from(self.lo.load(Relaxed));
        let meta = self.meta.load(Relaxed);
        let peer = if meta & V6 != 0 { IpAddr::V6(Ipv6Addr::from(bits)) } else { IpAddr::V4(Ipv4Addr::from(bits as u32)) };
        UnknownSpi { peer, spi: meta as u32 }
    }
}

/// A worker's ring of [`UnknownSpi`] notes: one producer (the worker, through
/// [`Self::note`]), readers on any thread ([`Self::drain`]).
#[derive(Debug)]
pub struct UnknownSpiNotices {
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
}

impl Default for UnknownSpiNotices {
    fn default() -> Self {
        Self::new(NOTICES_PER_SECOND)
    }
}

impl UnknownSpiNotices {
    /// A ring making at most `per_second` notes per second.
    pub fn new(per_second: u64) -> Self {
        UnknownSpiNotices {
            slots: (0..RING).map(|_| Slot::default()).collect(),
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            second: AtomicU64::new(u64::MAX),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            limit: per_second,
        }
    }

    /// Note `n` at `now_ms` (the worker's monotonic clock). Only the worker
    /// owning this ring may call it (single producer: plain loads and stores).
    pub fn note(&self, n: UnknownSpi, now_ms: u64) {
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
            slot.store(n);
        }
        // Release: the slot's contents are visible before the new head.
        self.head.store(head.wrapping_add(1), Release);
    }

    /// Hand every note made so far to `f`, oldest first; returns how many.
    /// Readers on several threads each get a note at most once.
    pub fn drain(&self, mut f: impl FnMut(UnknownSpi)) -> usize {
        let mut n = 0;
        loop {
            let tail = self.tail.load(Acquire);
            if tail == self.head.load(Acquire) {
                return n;
            }
            let Some(slot) = self.slots.get((tail % RING as u64) as usize) else { return n };
            let note = slot.load();
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

/// The source address of the outer IP header `ip` (already validated by the
/// ESP parser; `None` if it is not IPv4/IPv6 after all).
fn outer_source(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => {
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(a)))
        }
        6 => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// The decap lookup found no SA for `spi` in the packet whose outer IP header
/// starts `ip`: count the drop by what the SPI was and note an unknown one.
#[cold]
#[inline(never)]
pub(super) fn missed(table: &TunnelTable, stats: &CoreStats, ip: &[u8], spi: Spi, now_ms: u64) {
    if table.was_deleted(spi) {
        stats.drop(DropReason::SaDeleted);
        return;
    }
    stats.drop(DropReason::NoSa);
    if let Some(peer) = outer_source(ip) {
        stats.unknown_spi().note(UnknownSpi { peer, spi: spi.0 }, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> UnknownSpi {
        UnknownSpi { peer: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), spi: 0x1000 + i }
    }

    #[test]
    fn budget_per_second_excess_only_counted() {
        let ring = UnknownSpiNotices::new(10);
        for i in 0..25 {
            ring.note(n(i), 5_000 + u64::from(i));
        }
        let mut got = Vec::new();
        assert_eq!(ring.drain(|x| got.push(x)), 10);
        assert_eq!(got, (0..10).map(n).collect::<Vec<_>>(), "the first ten, in order");
        assert_eq!(ring.suppressed(), 15);
        // The next second has a new budget.
        ring.note(n(99), 6_000);
        assert_eq!(ring.drain(|x| got.push(x)), 1);
        assert_eq!(got.last(), Some(&n(99)));
    }

    #[test]
    fn full_ring_refuses_until_drained() {
        let ring = UnknownSpiNotices::new(u64::MAX);
        for i in 0..(RING as u32 + 5) {
            ring.note(n(i), 0);
        }
        assert_eq!(ring.suppressed(), 5);
        let mut last = None;
        assert_eq!(ring.drain(|x| last = Some(x)), RING);
        assert_eq!(last, Some(n(RING as u32 - 1)));
        ring.note(n(7), 0);
        assert_eq!(ring.drain(|_| {}), 1, "room again after the drain");
    }

    #[test]
    fn both_families_survive_the_slot() {
        let ring = UnknownSpiNotices::default();
        let v6 = UnknownSpi { peer: "2001:db8::1".parse().expect("v6"), spi: u32::MAX };
        ring.note(v6, 0);
        ring.note(n(0), 0);
        let mut got = Vec::new();
        ring.drain(|x| got.push(x));
        assert_eq!(got, [v6, n(0)]);
    }

    #[test]
    fn concurrent_reader_gets_each_note_once() {
        let ring = std::sync::Arc::new(UnknownSpiNotices::new(u64::MAX));
        let total = 100_000u32;
        let reader = {
            let ring = std::sync::Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() + (ring.suppressed() as usize) < total as usize {
                    ring.drain(|x| seen.push(x.spi));
                    std::thread::yield_now();
                }
                seen
            })
        };
        for i in 0..total {
            ring.note(UnknownSpi { peer: IpAddr::V4(Ipv4Addr::LOCALHOST), spi: i }, 0);
        }
        let seen = reader.join().expect("reader");
        assert_eq!(seen.len() as u64 + ring.suppressed(), u64::from(total));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, none twice, none torn");
    }

    #[test]
    fn outer_source_of_both_families() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[203, 0, 113, 9]);
        assert_eq!(outer_source(&v4), Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        assert_eq!(outer_source(&v6), Some(IpAddr::V6(Ipv6Addr::from(1u128))));
        assert_eq!(outer_source(&[0x45, 0]), None);
        assert_eq!(outer_source(&[]), None);
    }
}
