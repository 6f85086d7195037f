//! The monitor's probe: an ICMP echo request as a whole IP packet (no
//! Ethernet header: the worker encapsulates it), and the echo reply parsed
//! back from what the worker punts.
//!
//! The identifier names the sender (one per monitored connection, another per
//! `ipsecgw test tunnel` run), the sequence number the probe (RFC 792 "Echo or
//! Echo Reply Message": "the identifier and sequence number may be used by the
//! echo sender to aid in matching the replies with the echo requests").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::wire::{IcmpPacket, IpProtocol, Ipv4Packet, Ipv6Packet};

/// ICMP echo types: RFC 792 (8 request, 0 reply), RFC 4443 §4.1/§4.2 (128, 129).
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// What follows the 8-byte ICMP header: recognisable in a capture.
const PAYLOAD: &[u8] = b"ipsecgw tunnel monitor probe....";

/// Hop limit of probes: they are originated, not forwarded.
const TTL: u8 = 64;

/// One echo request or reply as the monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ident: u16,
    pub seq: u16,
}

/// The IPv4 or IPv6 echo request packet of `e`; `None` when the two addresses
/// are of different families.
pub fn request(e: &Echo) -> Option<Vec<u8>> {
    let icmp_len = 8 + PAYLOAD.len();
    let mut icmp = vec![0u8; icmp_len];
    icmp[4..6].copy_from_slice(&e.ident.to_be_bytes());
    icmp[6..8].copy_from_slice(&e.seq.to_be_bytes());
    icmp[8..].copy_from_slice(PAYLOAD);
    match (e.src, e.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pkt = vec![0u8; 20 + icmp_len];
            {
                let mut i = IcmpPacket::new_unchecked(&mut icmp[..]);
                i.set_type_code(ECHO_REQUEST_V4, 0);
                i.fill_checksum_v4();
            }
            pkt[20..].copy_from_slice(&icmp);
            let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
            ip.set_version_and_ihl();
            ip.set_total_len(u16::try_from(20 + icmp_len).ok()?);
            ip.set_ident(e.seq);
            ip.set_unfragmented(true);
            ip.set_ttl(TTL);
            ip.set_protocol(IpProtocol::Icmp);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            Some(pkt)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pkt = vec![0u8; 40 + icmp_len];
            {
                let mut i = IcmpPacket::new_unchecked(&mut icmp[..]);
                i.set_type_code(ECHO_REQUEST_V6, 0);
                i.fill_checksum_v6(s, d);
            }
            pkt[40..].copy_from_slice(&icmp);
            let mut ip = Ipv6Packet::new_unchecked(&mut pkt[..]);
            ip.set_version_tc_flow(0, 0);
            ip.set_payload_len(u16::try_from(icmp_len).ok()?);
            ip.set_next_header(IpProtocol::Icmpv6);
            ip.set_hop_limit(TTL);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            Some(pkt)
        }
        _ => None,
    }
}

/// The echo reply carried by `ip` (an IP packet without link header), if it
/// is one with a valid checksum; anything else is `None`.
pub fn parse_reply(ip: &[u8]) -> Option<Echo> {
    match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.protocol() != IpProtocol::Icmp || p.is_fragment() {
                return None;
            }
            let l4 = ip.get(p.header_len()..usize::from(p.total_len()))?;
            let icmp = IcmpPacket::new_checked(l4).ok()?;
            if l4[0] != ECHO_REPLY_V4 || l4[1] != 0 || !icmp.verify_checksum_v4() {
                return None;
            }
            Some(Echo { src: p.src_addr().into(), dst: p.dst_addr().into(), ident: icmp.echo_ident(), seq: icmp.echo_seq_no() })
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let up = p.upper_layer().ok()?;
            if up.protocol != IpProtocol::Icmpv6 || up.fragment {
                return None;
            }
            let l4 = ip.get(up.offset..p.total_len())?;
            let icmp = IcmpPacket::new_checked(l4).ok()?;
            let (src, dst): (Ipv6Addr, Ipv6Addr) = (p.src_addr(), p.dst_addr());
            if l4[0] != ECHO_REPLY_V6 || l4[1] != 0 || !icmp.verify_checksum_v6(src, dst) {
                return None;
            }
            Some(Echo { src: src.into(), dst: dst.into(), ident: icmp.echo_ident(), seq: icmp.echo_seq_no() })
        }
        _ => None,
    }
}

/// `ip` with the echo request turned into the reply a host would send
/// (addresses swapped, type changed, checksums redone), for tests.
pub fn answer(ip: &[u8]) -> Option<Vec<u8>> {
    let mut out = ip.to_vec();
    match ip.first()? >> 4 {
        4 => {
            let hl = Ipv4Packet::new_checked(ip).ok()?.header_len();
            let (s, d): (Ipv4Addr, Ipv4Addr) = {
                let p = Ipv4Packet::new_unchecked(ip);
                (p.src_addr(), p.dst_addr())
            };
            let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
            p.set_src_addr(d);
            p.set_dst_addr(s);
            p.fill_checksum();
            let mut icmp = IcmpPacket::new_checked(&mut out[hl..]).ok()?;
            icmp.set_type_code(ECHO_REPLY_V4, 0);
            icmp.fill_checksum_v4();
        }
        6 => {
            let (s, d) = {
                let p = Ipv6Packet::new_checked(ip).ok()?;
                (p.src_addr(), p.dst_addr())
            };
            let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
            p.set_src_addr(d);
            p.set_dst_addr(s);
            let mut icmp = IcmpPacket::new_checked(&mut out[40..]).ok()?;
            icmp.set_type_code(ECHO_REPLY_V6, 0);
            icmp.fill_checksum_v6(d, s);
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::checksum;

    /// The RFC 1071 sum over an ICMPv4 message with its checksum filled.
    fn checksum_ok_v4(icmp: &[u8]) -> bool {
        checksum::fold(checksum::sum(0, icmp)) == 0xffff
    }

    fn v4() -> Echo {
        Echo { src: "10.2.0.1".parse().expect("ip"), dst: "10.1.0.1".parse().expect("ip"), ident: 0x4d01, seq: 7 }
    }

    #[test]
    fn v4_request_is_a_valid_echo_and_its_answer_parses() {
        let req = request(&v4()).expect("v4");
        let ip = Ipv4Packet::new_checked(&req[..]).expect("ipv4");
        assert!(ip.verify_checksum());
        assert_eq!((ip.protocol(), ip.ttl()), (IpProtocol::Icmp, 64));
        assert_eq!(req[20], 8, "echo request (RFC 792)");
        assert!(checksum_ok_v4(&req[20..]));
        assert_eq!(parse_reply(&req), None, "a request is not a reply");
        let rep = answer(&req).expect("answer");
        let got = parse_reply(&rep).expect("reply");
        assert_eq!(got, Echo { src: v4().dst, dst: v4().src, ident: 0x4d01, seq: 7 });
        let mut bad = rep.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(parse_reply(&bad), None, "bad ICMP checksum");
        assert_eq!(parse_reply(&rep[..30]), None, "truncated");
    }

    #[test]
    fn v6_request_and_reply() {
        let e = Echo { src: "fd00:2::1".parse().expect("ip"), dst: "fd00:1::1".parse().expect("ip"), ident: 9, seq: 65535 };
        let req = request(&e).expect("v6");
        let p = Ipv6Packet::new_checked(&req[..]).expect("v6");
        let icmp = IcmpPacket::new_checked(&req[40..]).expect("icmp");
        assert!(icmp.verify_checksum_v6(p.src_addr(), p.dst_addr()));
        assert_eq!(req[40], 128);
        let got = parse_reply(&answer(&req).expect("answer")).expect("reply");
        assert_eq!((got.src, got.dst, got.ident, got.seq), (e.dst, e.src, 9, 65535));
    }

    #[test]
    fn mixed_families_and_garbage() {
        let e = Echo { src: "10.2.0.1".parse().expect("ip"), dst: "fd00::1".parse().expect("ip"), ident: 1, seq: 1 };
        assert!(request(&e).is_none());
        assert_eq!(parse_reply(&[]), None);
        assert_eq!(parse_reply(&[0x45; 3]), None);
        assert_eq!(parse_reply(&[0x60; 50]), None);
    }
}
