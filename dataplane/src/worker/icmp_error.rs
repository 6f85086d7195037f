//! ICMP errors the worker sends about packets too big for the next hop:
//! "fragmentation needed" for IPv4 with DF (RFC 1191 §4, RFC 792) and Packet
//! Too Big for IPv6 (RFC 4443 §3.2; IPv6 routers never fragment, RFC 8200 §5),
//! both from the gateway's address on the port towards the sender, both
//! rate-limited (RFC 4443 §2.4 (f), RFC 1812 §4.3.2.8) by one token bucket per
//! worker so a flood of oversize packets cannot turn the gateway into an
//! ICMP source.

use super::{local, Interface, Out, WorkerIo};
use crate::drop::DropReason;
use crate::packet::Packet;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

/// Token bucket of ICMP errors: [`Self::BURST`] at once, then one per
/// [`Self::INTERVAL_MS`] (100 per second per worker).
#[derive(Debug, Clone)]
pub(crate) struct IcmpErrorLimit {
    tokens: u32,
    /// Time of the last refill (ms, the worker's clock).
    refilled_ms: u64,
}

impl IcmpErrorLimit {
    pub(crate) const BURST: u32 = 10;
    pub(crate) const INTERVAL_MS: u64 = 10;

    pub(crate) fn new() -> Self {
        IcmpErrorLimit { tokens: Self::BURST, refilled_ms: 0 }
    }

    /// Whether one more error may be sent at `now_ms` (takes a token).
    pub(crate) fn allow(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.refilled_ms);
        let new = elapsed / Self::INTERVAL_MS;
        if new > 0 {
            self.tokens = u32::try_from(new).unwrap_or(u32::MAX).saturating_add(self.tokens).min(Self::BURST);
            self.refilled_ms = now_ms - elapsed % Self::INTERVAL_MS;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl<P: Packet> Out<'_, P> {
    /// Count a packet (IP, no Ethernet header) too big for the next link and
    /// tell its sender the MTU that fits.
    pub(super) fn too_big<I: WorkerIo<P>>(&mut self, pkt: &P, mtu: u16, io: &mut I) {
        self.drop(DropReason::TooBig);
        let d = pkt.data();
        match d.first().map(|b| b >> 4) {
            Some(4) => self.frag_needed(d, mtu, io),
            Some(6) => self.packet_too_big(d, mtu, io),
            _ => {}
        }
    }

    /// RFC 1191 §4: only with DF set (otherwise the sender allowed fragmentation),
    /// and never about an ICMP destination-unreachable (RFC 1812 §4.3.2.7).
    fn frag_needed<I: WorkerIo<P>>(&mut self, d: &[u8], mtu: u16, io: &mut I) {
        let ip = Ipv4Packet::new_unchecked(d);
        if !ip.dont_frag() || ip.protocol() == IpProtocol::Icmp && d.get(ip.header_len()) == Some(&3) {
            return;
        }
        let back = self.routes.lookup_v4(ip.src_addr());
        let Some(src) = back.and_then(|h| self.ifaces.get(h.port)).and_then(Interface::first_v4) else { return };
        if !self.icmp_limit.allow(self.now_ms) {
            return;
        }
        let Some(mut err) = io.alloc() else { return };
        if local::frag_needed(&mut err, src, d, mtu).is_ok() {
            self.forward_local(err, io);
        }
    }

    /// RFC 4443 §3.2, with the §2.4 (e) exceptions: no error about an ICMPv6
    /// error message, nor to an unspecified or multicast source.
    fn packet_too_big<I: WorkerIo<P>>(&mut self, d: &[u8], mtu: u16, io: &mut I) {
        let Ok(ip) = Ipv6Packet::new_checked(d) else { return };
        let src = ip.src_addr();
        if src.is_unspecified() || src.is_multicast() {
            return;
        }
        if let Ok(up) = ip.upper_layer() {
            if up.protocol == IpProtocol::Icmpv6 && !up.fragment && d.get(up.offset).is_some_and(|t| *t < 128) {
                return;
            }
        }
        let back = self.routes.lookup_v6(src);
        let Some(from) = back.and_then(|h| self.ifaces.get(h.port)).and_then(Interface::first_v6) else { return };
        if !self.icmp_limit.allow(self.now_ms) {
            return;
        }
        let Some(mut err) = io.alloc() else { return };
        if local::packet_too_big(&mut err, from, d, u32::from(mtu)).is_ok() {
            self.forward_local(err, io);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_one_per_interval() {
        let mut l = IcmpErrorLimit::new();
        let t0 = 5_000;
        for i in 0..IcmpErrorLimit::BURST {
            assert!(l.allow(t0), "error {i} of the burst");
        }
        assert!(!l.allow(t0), "burst used up");
        assert!(!l.allow(t0 + IcmpErrorLimit::INTERVAL_MS - 1));
        assert!(l.allow(t0 + IcmpErrorLimit::INTERVAL_MS), "one token per interval");
        assert!(!l.allow(t0 + IcmpErrorLimit::INTERVAL_MS));
        // A long pause refills to the burst size, not beyond.
        let later = t0 + 1_000_000;
        let sent = (0..3 * IcmpErrorLimit::BURST).filter(|_| l.allow(later)).count();
        assert_eq!(sent, IcmpErrorLimit::BURST as usize);
        // A clock that goes backwards never panics and grants nothing new.
        assert!(!l.allow(0));
    }
}
