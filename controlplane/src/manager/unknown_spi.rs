//! ESP that arrived on an SPI the dataplane has no SA for (issue 7 item 4):
//! counted per (peer, SPI), and answered with a rate-limited INVALID_SPI
//! notify when an IKE SA with that peer is established (RFC 7296 §2.21.4:
//! "MAY send ... in an INFORMATIONAL exchange"; without an IKE SA nothing is
//! sent: an unauthenticated packet must not make us talk to anyone).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// At most one INVALID_SPI notify (and one log line) per peer per interval:
/// a stream of stale ESP must not become a stream of IKE messages.
pub const INVALID_SPI_NOTIFY_INTERVAL: Duration = Duration::from_secs(1);
/// Reports queued between the dataplane and the manager; more are dropped
/// (and counted) rather than blocking a worker.
pub const UNKNOWN_SPI_QUEUE: usize = 4096;
/// (peer, SPI) pairs remembered; beyond that the least recently seen goes
/// (random SPIs from a flood must not grow the table without bound).
pub const UNKNOWN_SPI_TABLE: usize = 1024;

/// One report from the dataplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSpiReport {
    pub peer: IpAddr,
    pub spi: u32,
}

/// Counted ESP on one unknown (peer, SPI), for `show stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSpiCount {
    pub peer: IpAddr,
    pub spi: u32,
    pub packets: u64,
    pub last_seen: SystemTime,
    /// INVALID_SPI notifies sent to the peer for this SPI.
    pub notifies: u64,
}

#[derive(Debug, Clone, Copy)]
struct PeerLimit {
    /// When the last notify (or "no IKE SA" log line) went out.
    last: Instant,
    /// Packets from this peer reported since then (rate-limited away).
    suppressed: u64,
}

/// What the manager should do with one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send (or log) now; `suppressed` reports from this peer were held back
    /// since the last time.
    Act { suppressed: u64 },
    /// Within the interval of the last one: counted only.
    Hold,
}

/// The per-(peer, SPI) counters and the per-peer rate limit.
#[derive(Debug, Default)]
pub(crate) struct UnknownSpiTable {
    counts: HashMap<(IpAddr, u32), UnknownSpiCount>,
    limits: HashMap<IpAddr, PeerLimit>,
}

impl UnknownSpiTable {
    /// Counts one packet; says whether the peer may get a notify (or a log
    /// line) now, at most once per [`INVALID_SPI_NOTIFY_INTERVAL`].
    pub fn record(&mut self, r: UnknownSpiReport, now: Instant, wall: SystemTime) -> Verdict {
        if !self.counts.contains_key(&(r.peer, r.spi)) && self.counts.len() >= UNKNOWN_SPI_TABLE {
            if let Some(oldest) = self.counts.values().min_by_key(|c| c.last_seen).map(|c| (c.peer, c.spi)) {
                self.counts.remove(&oldest);
            }
        }
        let c = self.counts.entry((r.peer, r.spi)).or_insert(UnknownSpiCount {
            peer: r.peer,
            spi: r.spi,
            packets: 0,
            last_seen: wall,
            notifies: 0,
        });
        c.packets += 1;
        c.last_seen = wall;
        if self.limits.len() >= UNKNOWN_SPI_TABLE {
            self.limits.retain(|_, l| now.saturating_duration_since(l.last) < INVALID_SPI_NOTIFY_INTERVAL);
        }
        match self.limits.get_mut(&r.peer) {
            Some(l) if now.saturating_duration_since(l.last) < INVALID_SPI_NOTIFY_INTERVAL => {
                l.suppressed += 1;
                Verdict::Hold
            }
            Some(l) => {
                let suppressed = l.suppressed;
                *l = PeerLimit { last: now, suppressed: 0 };
                Verdict::Act { suppressed }
            }
            None => {
                self.limits.insert(r.peer, PeerLimit { last: now, suppressed: 0 });
                Verdict::Act { suppressed: 0 }
            }
        }
    }

    /// A notify for this SPI went to the peer.
    pub fn notified(&mut self, r: UnknownSpiReport) {
        if let Some(c) = self.counts.get_mut(&(r.peer, r.spi)) {
            c.notifies += 1;
        }
    }

    /// Every counted (peer, SPI), most packets first.
    pub fn snapshot(&self) -> Vec<UnknownSpiCount> {
        let mut v: Vec<_> = self.counts.values().cloned().collect();
        v.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.peer.cmp(&b.peer)).then(a.spi.cmp(&b.spi)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(peer: &str, spi: u32) -> UnknownSpiReport {
        UnknownSpiReport { peer: peer.parse().expect("ip"), spi }
    }

    #[test]
    fn one_act_per_peer_per_interval() {
        let mut t = UnknownSpiTable::default();
        let (t0, wall) = (Instant::now(), SystemTime::now());
        assert_eq!(t.record(report("198.51.100.1", 0x1000), t0, wall), Verdict::Act { suppressed: 0 });
        for i in 1..100u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 10);
            assert_eq!(t.record(report("198.51.100.1", 0x1000 + i % 2), at, wall), Verdict::Hold);
        }
        // Another peer has its own budget.
        assert_eq!(t.record(report("198.51.100.9", 0x1000), t0, wall), Verdict::Act { suppressed: 0 });
        let next = t0 + INVALID_SPI_NOTIFY_INTERVAL;
        assert_eq!(t.record(report("198.51.100.1", 0x1000), next, wall), Verdict::Act { suppressed: 99 });
        let s = t.snapshot();
        assert_eq!((s[0].spi, s[0].packets), (0x1000, 51));
        assert_eq!((s[1].spi, s[1].packets), (0x1001, 50));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn table_is_bounded() {
        let mut t = UnknownSpiTable::default();
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH);
        for spi in 0..(UNKNOWN_SPI_TABLE as u32 + 10) {
            t.record(report("198.51.100.1", spi), now, wall + Duration::from_secs(u64::from(spi)));
        }
        let s = t.snapshot();
        assert_eq!(s.len(), UNKNOWN_SPI_TABLE);
        assert!(s.iter().all(|c| c.spi >= 10), "the least recently seen went first");
    }
}
