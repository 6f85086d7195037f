//! Per-core packet counters: per port, per SA (packets, bytes, drops) and one
//! per [`DropReason`]. Summed over cores when read.
//!
//! Each core writes only its own block, so an increment is a plain load and
//! store (no locked instruction): one writer per counter makes the
//! read-modify-write race-free, and readers on other threads see a value that is
//! at most a few increments old. A block is an array of 128-byte, 128-aligned
//! chunks (`CachePadded`: two lines, for the adjacent-line prefetcher), so no
//! line is ever shared with another core's block or any other allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam::utils::CachePadded;

pub use crate::drop::DropReason;
use crate::sa::{SaId, SlotReset};
use crate::sa::TrapId;
use crate::worker::trap::TrapNotices;
use crate::worker::unknown_spi::{UnknownSpi, UnknownSpiNotices};

const CHUNK: usize = 16;
const PORT_FIELDS: usize = 5;
const SA_FIELDS: usize = 3;

/// Where each counter lives in a block.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ports: usize,
    sas: usize,
}

impl Layout {
    fn port_base(self) -> usize {
        DropReason::COUNT
    }
    fn sa_base(self) -> usize {
        self.port_base() + self.ports * PORT_FIELDS
    }
    fn cells(self) -> usize {
        self.sa_base() + self.sas * SA_FIELDS
    }
}

/// One core's counters. Only that core may call the counting methods (they
/// are not atomic read-modify-writes); anyone may read.
#[derive(Debug)]
pub struct CoreStats {
    chunks: Box<[CachePadded<[AtomicU64; CHUNK]>]>,
    layout: Layout,
    /// ESP on unknown SPIs, noted for the control plane (issue 7).
    unknown_spi: UnknownSpiNotices,
    /// Packets that hit a trap policy, noted for the control plane.
    trap: TrapNotices,
}

impl CoreStats {
    fn new(layout: Layout) -> Self {
        let n = layout.cells().div_ceil(CHUNK);
        Self {
            chunks: (0..n)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            layout,
            unknown_spi: UnknownSpiNotices::default(),
            trap: TrapNotices::new(crate::worker::trap::NOTICES_PER_SECOND),
        }
    }

    /// This core's notes of ESP on unknown SPIs (the core writes, anyone drains).
    pub fn unknown_spi(&self) -> &UnknownSpiNotices {
        &self.unknown_spi
    }

    /// This core's notes of packets that hit a trap policy.
    pub fn trap(&self) -> &TrapNotices {
        &self.trap
    }

    #[inline]
    fn cell(&self, i: usize) -> Option<&AtomicU64> {
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK])
    }

    /// Single-writer add; counters past the layout (bad port/SA id) are ignored.
    #[inline]
    fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.cell(i) {
            c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
        }
    }

    fn read(&self, i: usize) -> u64 {
        self.cell(i).map_or(0, |c| c.load(Relaxed))
    }

    /// Count `n` packets dropped for `reason`.
    #[inline]
    pub fn drop_n(&self, reason: DropReason, n: u64) {
        self.add(reason.index(), n);
    }

    /// Count one packet dropped for `reason`. On an `Arc<CoreStats>`, call it
    /// through a `&CoreStats` (method lookup would find `Drop::drop` first).
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drop_n(reason, 1);
    }

    #[inline]
    fn port(&self, port: u16, field: usize, n: u64) {
        let port = usize::from(port);
        if port < self.layout.ports {
            self.add(self.layout.port_base() + port * PORT_FIELDS + field, n);
        }
    }

    /// Packets and bytes received on `port`.
    #[inline]
    pub fn rx(&self, port: u16, packets: u64, bytes: u64) {
        self.port(port, 0, packets);
        self.port(port, 1, bytes);
    }

    /// Packets and bytes transmitted on `port`.
    #[inline]
    pub fn tx(&self, port: u16, packets: u64, bytes: u64) {
        self.port(port, 2, packets);
        self.port(port, 3, bytes);
    }

    /// Packets received on `port` and dropped (any reason).
    #[inline]
    pub fn port_drops(&self, port: u16, packets: u64) {
        self.port(port, 4, packets);
    }

    #[inline]
    fn sa(&self, id: SaId, field: usize, n: u64) {
        if id.slot() < self.layout.sas {
            self.add(self.layout.sa_base() + id.slot() * SA_FIELDS + field, n);
        }
    }

    /// Packets and bytes processed by SA `id` (plaintext bytes).
    #[inline]
    pub fn sa_packets(&self, id: SaId, packets: u64, bytes: u64) {
        self.sa(id, 0, packets);
        self.sa(id, 1, bytes);
    }

    /// Packets of SA `id` dropped (replay, auth failure, ...).
    #[inline]
    pub fn sa_drops(&self, id: SaId, packets: u64) {
        self.sa(id, 2, packets);
    }
}

/// Totals of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounts {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Received packets dropped.
    pub drops: u64,
}

/// Totals of one SA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounts {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Drops.
    pub drops: u64,
}

/// All per-reason and per-port totals (per-SA totals: [`Stats::sa`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Indexed by [`DropReason::index`].
    pub drops: Vec<u64>,
    /// Indexed by port id.
    pub ports: Vec<PortCounts>,
}

impl StatsSnapshot {
    /// Total for one reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// Non-zero reasons with their names, for `show stats`.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(&self.drops)
            .filter(|(_, n)| **n != 0)
            .map(|(r, n)| (*r, *n))
    }
}

/// Every core's counters; hand [`Stats::core`] to each worker.
#[derive(Debug)]
pub struct Stats {
    cores: Box<[Arc<CoreStats>]>,
    layout: Layout,
}

impl Stats {
    /// Counters for `cores` workers, `ports` ports and `sa_capacity` SA slots
    /// (the SA tables' capacity).
    pub fn new(cores: usize, ports: usize, sa_capacity: usize) -> Self {
        let layout = Layout {
            ports,
            sas: sa_capacity,
        };
        Self {
            cores: (0..cores)
                .map(|_| Arc::new(CoreStats::new(layout)))
                .collect(),
            layout,
        }
    }

    /// Worker `i`'s block.
    pub fn core(&self, i: usize) -> Option<Arc<CoreStats>> {
        self.cores.get(i).cloned()
    }

    fn sum(&self, i: usize) -> u64 {
        self.cores
            .iter()
            .map(|c| c.read(i))
            .fold(0, u64::wrapping_add)
    }

    /// Sum over cores of the drop-reason and port counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = self.layout;
        StatsSnapshot {
            drops: (0..DropReason::COUNT).map(|i| self.sum(i)).collect(),
            ports: (0..l.ports)
                .map(|p| {
                    let b = l.port_base() + p * PORT_FIELDS;
                    PortCounts {
                        rx_packets: self.sum(b),
                        rx_bytes: self.sum(b + 1),
                        tx_packets: self.sum(b + 2),
                        tx_bytes: self.sum(b + 3),
                        drops: self.sum(b + 4),
                    }
                })
                .collect(),
        }
    }

    /// Sum over cores for one SA.
    pub fn sa(&self, id: SaId) -> SaCounts {
        if id.slot() >= self.layout.sas {
            return SaCounts::default();
        }
        let b = self.layout.sa_base() + id.slot() * SA_FIELDS;
        SaCounts {
            packets: self.sum(b),
            bytes: self.sum(b + 1),
            drops: self.sum(b + 2),
        }
    }

    /// Hand every core's notes of ESP on unknown SPIs to `f`; returns how many.
    pub fn drain_unknown_spi(&self, mut f: impl FnMut(UnknownSpi)) -> usize {
        self.cores.iter().map(|c| c.unknown_spi.drain(&mut f)).sum()
    }

    /// Unknown-SPI notes the cores' per-second budgets refused (counted only).
    pub fn unknown_spi_suppressed(&self) -> u64 {
        self.cores.iter().map(|c| c.unknown_spi.suppressed()).fold(0, u64::wrapping_add)
    }

    /// Hand every core's notes of packets that hit a trap policy to `f`.
    pub fn drain_traps(&self, mut f: impl FnMut(TrapId)) -> usize {
        self.cores.iter().map(|c| c.trap.drain(&mut f)).sum()
    }

    /// Bytes of counter storage per core.
    pub fn bytes_per_core(&self) -> usize {
        self.layout.cells().div_ceil(CHUNK) * std::mem::size_of::<CachePadded<[AtomicU64; CHUNK]>>()
    }
}

/// A reused SA slot starts from zero (the SA tables call this before the new
/// SA is published; no worker counts on the slot then).
impl SlotReset for Stats {
    fn reset_slot(&self, id: SaId) {
        if id.slot() >= self.layout.sas {
            return;
        }
        let b = self.layout.sa_base() + id.slot() * SA_FIELDS;
        for core in self.cores.iter() {
            for f in 0..SA_FIELDS {
                if let Some(c) = core.cell(b + f) {
                    c.store(0, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{SaControl, Spi};

    #[test]
    fn sums_over_cores_and_resets_reused_slots() {
        let stats = Arc::new(Stats::new(3, 2, 4));
        let mut ctl = SaControl::<(), ()>::new(4);
        ctl.add_slot_hook(Arc::clone(&stats) as Arc<dyn SlotReset>);
        let mut tx = ctl.transaction();
        let id = tx.add_inbound(Spi(0x1000), Arc::new(())).expect("add");
        tx.commit().expect("commit");

        for (i, n) in [1u64, 2, 3].into_iter().enumerate() {
            let core = stats.core(i).expect("core");
            core.drop_n(DropReason::AuthFailed, n);
            core.rx(1, n, 100 * n);
            core.sa_packets(id, n, 10 * n);
            core.sa_drops(id, 1);
            core.rx(7, 1, 1); // no such port: ignored
        }
        let s = stats.snapshot();
        assert_eq!(s.drop_count(DropReason::AuthFailed), 6);
        assert_eq!(s.drop_count(DropReason::NoSa), 0);
        assert_eq!(s.ports[1].rx_packets, 6);
        assert_eq!(s.ports[1].rx_bytes, 600);
        assert_eq!(s.ports[0], PortCounts::default());
        assert_eq!(
            s.nonzero_drops().collect::<Vec<_>>(),
            vec![(DropReason::AuthFailed, 6)]
        );
        assert_eq!(
            stats.sa(id),
            SaCounts {
                packets: 6,
                bytes: 60,
                drops: 3
            }
        );

        // Remove the SA, let the slot come back, install a new SA in it.
        let mut tx = ctl.transaction();
        tx.remove_inbound(Spi(0x1000)).expect("remove");
        tx.commit().expect("commit");
        ctl.reclaim();
        let mut tx = ctl.transaction();
        let mut reused = None;
        for spi in 0x2000..0x2004 {
            let new = tx.add_inbound(Spi(spi), Arc::new(())).expect("add");
            if new.slot() == id.slot() {
                reused = Some(new);
            }
        }
        tx.commit().expect("commit");
        let reused = reused.expect("the freed slot is reused among 4 adds with capacity 4");
        assert_eq!(stats.sa(reused), SaCounts::default());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let stats = Arc::new(Stats::new(2, 1, 1));
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let core = stats.core(i).expect("core");
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        CoreStats::drop(&core, DropReason::Replayed);
                        core.tx(0, 1, 64);
                    }
                })
            })
            .collect();
        // Reading while they write is allowed (values are just slightly old).
        let during = stats.snapshot().drop_count(DropReason::Replayed);
        assert!(during <= 200_000);
        for w in writers {
            assert!(w.join().is_ok());
        }
        let s = stats.snapshot();
        assert_eq!(s.drop_count(DropReason::Replayed), 200_000);
        assert_eq!(s.ports[0].tx_bytes, 200_000 * 64);
    }

    #[test]
    fn blocks_are_cache_line_aligned() {
        let stats = Stats::new(2, 1, 1);
        let a = stats.core(0).expect("core");
        // 128-byte chunks: a block never shares a line with anything else.
        assert_eq!(std::mem::align_of_val(&a.chunks[0]) % 64, 0);
        assert_eq!(stats.bytes_per_core() % 128, 0);
    }
}
