//! Neighbour table: IP next hop → MAC address, per port (ARP, RFC 826; IPv6
//! neighbour discovery, RFC 4861).
//!
//! One table per worker, fixed capacity, allocated at start: the fast path
//! never allocates. An unknown next hop gets an incomplete entry that holds the
//! most recent packet for it (RFC 1122 §2.3.2.2: keep at least one) while the
//! worker sends a request; the request is repeated at most once per
//! [`NeighborTable::RETRY_MS`]. A reply completes the entry and releases the held
//! packet. Entries are found by open addressing with a short probe; when the
//! probe window is full, the least recently used entry in it is replaced.

use core::net::IpAddr;

use crate::wire::MacAddr;

/// Probe window of the open-addressing table.
const PROBE: usize = 8;

#[derive(Debug)]
struct Entry<P> {
    port: usize,
    ip: IpAddr,
    /// `None` while the entry is incomplete (request sent, no reply yet).
    mac: Option<MacAddr>,
    /// The latest packet waiting for the reply.
    held: Option<P>,
    /// Last request sent (ms, caller's clock).
    requested_ms: u64,
    used_ms: u64,
    /// Configured entries never expire and are never replaced.
    permanent: bool,
}

/// What to do with a packet whose next hop has no MAC address yet.
#[derive(Debug)]
pub struct Held<P> {
    /// The packet held before, now displaced: drop it (counted as no neighbour).
    pub displaced: Option<P>,
    /// Send a request for the next hop now.
    pub send_request: bool,
}

/// The neighbour table of one worker.
#[derive(Debug)]
pub struct NeighborTable<P> {
    slots: Box<[Option<Entry<P>>]>,
    mask: usize,
    /// Slot of the last entry `resolve` found: a burst mostly goes to one next
    /// hop, so it is tried before hashing.
    hint: usize,
}

fn hash(port: usize, ip: IpAddr) -> usize {
    let x = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    } ^ ((port as u64) << 56);
    // Fibonacci hashing: the high bits of the product mix every input bit.
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
}

impl<P> NeighborTable<P> {
    /// Minimum time between two requests for the same next hop.
    pub const RETRY_MS: u64 = 1000;
    /// A complete entry unused for this long is re-resolved (RFC 4861 §7.3.2 uses
    /// tens of seconds too); the old MAC address is used meanwhile.
    pub const STALE_MS: u64 = 60_000;

    /// A table for at least `capacity` neighbours.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(PROBE).next_power_of_two();
        Self { slots: (0..n).map(|_| None).collect(), mask: n - 1, hint: 0 }
    }

    #[inline]
    fn find(&self, port: usize, ip: IpAddr) -> Option<usize> {
        let is = |e: &Entry<P>| e.port == port && e.ip == ip;
        if self.slots.get(self.hint).and_then(Option::as_ref).is_some_and(is) {
            return Some(self.hint);
        }
        let h = hash(port, ip);
        (0..PROBE).map(|i| (h + i) & self.mask).find(|&i| self.slots[i].as_ref().is_some_and(is))
    }

    /// Slot for a new entry: a free one in the probe window, else the least
    /// recently used non-permanent one; `None` if all are permanent.
    fn victim(&self, port: usize, ip: IpAddr) -> Option<usize> {
        let h = hash(port, ip);
        let window = (0..PROBE).map(|i| (h + i) & self.mask);
        if let Some(i) = window.clone().find(|&i| self.slots[i].is_none()) {
            return Some(i);
        }
        window
            .filter(|&i| self.slots[i].as_ref().is_some_and(|e| !e.permanent))
            .min_by_key(|&i| self.slots[i].as_ref().map_or(0, |e| e.used_ms))
    }

    /// The MAC address of `ip` on `port`, if known.
    #[inline]
    pub fn lookup(&mut self, port: usize, ip: IpAddr, now_ms: u64) -> Option<MacAddr> {
        self.resolve(port, ip, now_ms).map(|(mac, _)| mac)
    }

    /// The MAC address of `ip` on `port`, and whether to send a request now to
    /// refresh it: the entry is older than [`Self::STALE_MS`] (asked once per
    /// `STALE_MS`; the old address is used meanwhile).
    #[inline]
    pub fn resolve(&mut self, port: usize, ip: IpAddr, now_ms: u64) -> Option<(MacAddr, bool)> {
        let i = self.find(port, ip)?;
        self.hint = i;
        let e = self.slots[i].as_mut()?;
        e.used_ms = now_ms;
        let mac = e.mac?;
        let refresh = !e.permanent && now_ms.saturating_sub(e.requested_ms) >= Self::STALE_MS;
        if refresh {
            e.requested_ms = now_ms;
        }
        Some((mac, refresh))
    }

    /// Hold `pkt` until `ip` on `port` resolves. Call when [`Self::lookup`]
    /// found nothing.
    pub fn hold(&mut self, port: usize, ip: IpAddr, pkt: P, now_ms: u64) -> Held<P> {
        if let Some(i) = self.find(port, ip) {
            if let Some(e) = self.slots[i].as_mut() {
                let displaced = e.held.replace(pkt);
                let send_request = now_ms.saturating_sub(e.requested_ms) >= Self::RETRY_MS;
                if send_request {
                    e.requested_ms = now_ms;
                }
                return Held { displaced, send_request };
            }
        }
        let Some(i) = self.victim(port, ip) else {
            return Held { displaced: Some(pkt), send_request: true };
        };
        // A replaced entry's held packet is displaced too.
        let displaced = self.slots[i].take().and_then(|e| e.held);
        self.slots[i] =
            Some(Entry { port, ip, mac: None, held: Some(pkt), requested_ms: now_ms, used_ms: now_ms, permanent: false });
        Held { displaced, send_request: true }
    }

    /// Record `ip` → `mac` on `port` (from an ARP packet or neighbour
    /// advertisement). Returns the packet held for it, now sendable.
    /// `create` false only updates an existing entry (RFC 826: a host updates
    /// what it has; it adds the sender only when it is the target).
    pub fn learn(&mut self, port: usize, ip: IpAddr, mac: MacAddr, now_ms: u64, create: bool) -> Option<P> {
        if mac.is_multicast() || mac == MacAddr([0; 6]) {
            return None;
        }
        if let Some(e) = self.find(port, ip).and_then(|i| self.slots[i].as_mut()) {
            if !e.permanent {
                e.mac = Some(mac);
                e.requested_ms = now_ms;
            }
            e.used_ms = now_ms;
            return e.held.take();
        }
        if create {
            if let Some(i) = self.victim(port, ip) {
                self.slots[i] =
                    Some(Entry { port, ip, mac: Some(mac), held: None, requested_ms: now_ms, used_ms: now_ms, permanent: false });
            }
        }
        None
    }

    /// A configured entry that is never replaced or re-resolved.
    pub fn insert_permanent(&mut self, port: usize, ip: IpAddr, mac: MacAddr) -> bool {
        let Some(i) = self.find(port, ip).or_else(|| self.victim(port, ip)) else { return false };
        self.slots[i] = Some(Entry { port, ip, mac: Some(mac), held: None, requested_ms: 0, used_ms: 0, permanent: true });
        true
    }

    /// Every entry as (port, IP, MAC if resolved, permanent, ms since it was
    /// learned or last asked for), for the read-side copy
    /// (`neighbor_view.rs`); control path only (it walks the whole table).
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (usize, IpAddr, Option<MacAddr>, bool, u64)> + '_ {
        self.slots.iter().flatten().map(move |e| (e.port, e.ip, e.mac, e.permanent, now_ms.saturating_sub(e.requested_ms)))
    }

    /// Number of entries (complete or not).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn unknown_hop_holds_latest_packet_until_reply() {
        let mut t = NeighborTable::<u32>::new(16);
        assert_eq!(t.lookup(0, ip("10.0.0.1"), 0), None);
        let h = t.hold(0, ip("10.0.0.1"), 1, 0);
        assert!(h.send_request && h.displaced.is_none());
        let h = t.hold(0, ip("10.0.0.1"), 2, 10);
        assert_eq!(h.displaced, Some(1), "one packet held; the older one goes");
        assert!(!h.send_request, "no second request within RETRY_MS");
        let h = t.hold(0, ip("10.0.0.1"), 3, NeighborTable::<u32>::RETRY_MS);
        assert!(h.send_request, "retry after RETRY_MS");
        assert_eq!(t.learn(0, ip("10.0.0.1"), A, 2000, false), Some(3));
        assert_eq!(t.lookup(0, ip("10.0.0.1"), 2001), Some(A));
        assert_eq!(t.lookup(1, ip("10.0.0.1"), 2001), None, "per port");
    }

    #[test]
    fn learn_creates_only_when_asked_and_ignores_bad_macs() {
        let mut t = NeighborTable::<u32>::new(16);
        assert_eq!(t.learn(0, ip("10.0.0.2"), A, 0, false), None);
        assert_eq!(t.lookup(0, ip("10.0.0.2"), 0), None);
        t.learn(0, ip("10.0.0.2"), A, 0, true);
        assert_eq!(t.lookup(0, ip("10.0.0.2"), 0), Some(A));
        t.learn(0, ip("10.0.0.2"), MacAddr::BROADCAST, 0, true);
        assert_eq!(t.lookup(0, ip("10.0.0.2"), 0), Some(A));
        t.learn(0, ip("10.0.0.2"), B, 0, false);
        assert_eq!(t.lookup(0, ip("10.0.0.2"), 0), Some(B), "update on change");
    }

    #[test]
    fn full_table_replaces_least_recently_used_but_not_permanent() {
        let mut t = NeighborTable::<u32>::new(8);
        assert!(t.insert_permanent(0, ip("10.0.0.254"), B));
        for i in 0..64u32 {
            t.learn(0, IpAddr::V4(core::net::Ipv4Addr::from(0x0a00_0100 + i)), A, u64::from(i), true);
        }
        assert_eq!(t.len(), 8, "capacity is fixed");
        assert_eq!(t.lookup(0, ip("10.0.0.254"), 100), Some(B));
        t.learn(0, ip("10.0.0.254"), A, 100, true);
        assert_eq!(t.lookup(0, ip("10.0.0.254"), 100), Some(B), "permanent entries are not learned over");
    }

    #[test]
    fn stale_entries_ask_for_a_refresh_once() {
        let mut t = NeighborTable::<u32>::new(8);
        t.learn(0, ip("10.0.0.3"), A, 0, true);
        assert_eq!(t.resolve(0, ip("10.0.0.3"), 10), Some((A, false)));
        assert_eq!(t.resolve(0, ip("10.0.0.3"), NeighborTable::<u32>::STALE_MS), Some((A, true)));
        assert_eq!(t.resolve(0, ip("10.0.0.3"), NeighborTable::<u32>::STALE_MS + 1), Some((A, false)));
        t.insert_permanent(0, ip("10.0.0.4"), B);
        assert_eq!(t.resolve(0, ip("10.0.0.4"), u64::MAX), Some((B, false)), "configured entries are not refreshed");
    }
}
