//! SPIs of inbound SAs removed recently (deleted, or the old SA of a rekey
//! after its grace time), so ESP that still arrives for one is named as such
//! ("ESP for a deleted SA") instead of "no SA", and is not answered with
//! INVALID_SPI (RFC 7296 §3.10.1 is for SPIs we do not know; packets in flight
//! when an SA goes, or a peer that missed our DELETE, are a different story).
//!
//! Bounded two ways: the newest [`DEFAULT_CAPACITY`] SPIs, and none older
//! than [`DEFAULT_MAX_AGE`] after the next publication or
//! `SaControl::reclaim` (which the control plane calls periodically). The
//! control plane keeps the log; each snapshot carries
//! a sorted copy ([`Tombstones`]) that a worker searches only after a lookup
//! missed (cold path: no allocation, a binary search).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Spi;

/// SPIs remembered at most.
pub const DEFAULT_CAPACITY: usize = 4096;
/// How long an SPI is remembered at most.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// The published, immutable set of recently removed inbound SPIs.
#[derive(Debug, Clone, Default)]
pub struct Tombstones {
    /// Sorted, unique.
    spis: Arc<[u32]>,
}

impl Tombstones {
    /// Whether `spi` belonged to an inbound SA removed recently.
    #[inline]
    pub fn contains(&self, spi: Spi) -> bool {
        self.spis.binary_search(&spi.0).is_ok()
    }

    /// Number of SPIs remembered.
    pub fn len(&self) -> usize {
        self.spis.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.spis.is_empty()
    }
}

/// The control plane's log of removed SPIs, oldest first.
#[derive(Debug)]
pub(crate) struct TombstoneLog {
    order: VecDeque<(Instant, u32)>,
    capacity: usize,
    max_age: Duration,
    /// The published copy; rebuilt only when the log changed.
    published: Tombstones,
    dirty: bool,
}

impl Default for TombstoneLog {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_MAX_AGE)
    }
}

impl TombstoneLog {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        TombstoneLog { order: VecDeque::new(), capacity, max_age, published: Tombstones::default(), dirty: false }
    }

    pub(crate) fn set_limits(&mut self, capacity: usize, max_age: Duration) {
        self.capacity = capacity;
        self.max_age = max_age;
        self.trim();
    }

    /// Remember `spi` as removed at `at` (a second removal refreshes it).
    pub(crate) fn bury(&mut self, spi: Spi, at: Instant) {
        self.unbury(spi);
        self.order.push_back((at, spi.0));
        self.dirty = true;
        self.trim();
    }

    /// Forget `spi` (it was installed again).
    pub(crate) fn unbury(&mut self, spi: Spi) {
        let before = self.order.len();
        self.order.retain(|&(_, s)| s != spi.0);
        self.dirty |= self.order.len() != before;
    }

    /// Forget SPIs older than the age limit; returns how many went.
    pub(crate) fn prune(&mut self, now: Instant) -> usize {
        let before = self.order.len();
        while self.order.front().is_some_and(|&(at, _)| now.saturating_duration_since(at) > self.max_age) {
            self.order.pop_front();
        }
        let gone = before - self.order.len();
        self.dirty |= gone > 0;
        gone
    }

    fn trim(&mut self) {
        while self.order.len() > self.capacity {
            self.order.pop_front();
            self.dirty = true;
        }
    }

    /// The set to publish (shared with the previous snapshot when unchanged).
    pub(crate) fn publish(&mut self) -> Tombstones {
        if self.dirty {
            let mut spis: Vec<u32> = self.order.iter().map(|&(_, s)| s).collect();
            spis.sort_unstable();
            spis.dedup();
            self.published = Tombstones { spis: spis.into() };
            self.dirty = false;
        }
        self.published.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_oldest_go_first() {
        let t0 = Instant::now();
        let mut log = TombstoneLog::new(3, DEFAULT_MAX_AGE);
        for spi in [0x100, 0x200, 0x300, 0x400] {
            log.bury(Spi(spi), t0);
        }
        let set = log.publish();
        assert_eq!(set.len(), 3);
        assert!(!set.contains(Spi(0x100)), "the oldest was dropped");
        assert!(set.contains(Spi(0x200)) && set.contains(Spi(0x400)));
        assert!(!set.contains(Spi(0x500)));
    }

    #[test]
    fn bounded_by_age_and_forgotten_when_reinstalled() {
        let t0 = Instant::now();
        let mut log = TombstoneLog::new(16, Duration::from_secs(300));
        log.bury(Spi(0x100), t0);
        log.bury(Spi(0x200), t0 + Duration::from_secs(200));
        assert_eq!(log.prune(t0 + Duration::from_secs(300)), 0, "exactly the age limit stays");
        assert_eq!(log.prune(t0 + Duration::from_secs(301)), 1);
        let set = log.publish();
        assert!(!set.contains(Spi(0x100)) && set.contains(Spi(0x200)));
        log.unbury(Spi(0x200));
        assert!(log.publish().is_empty());
    }

    #[test]
    fn unchanged_log_publishes_the_same_set() {
        let mut log = TombstoneLog::default();
        log.bury(Spi(0x100), Instant::now());
        let (a, b) = (log.publish(), log.publish());
        assert!(Arc::ptr_eq(&a.spis, &b.spis));
    }
}
