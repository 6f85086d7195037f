//! Answers the dataplane gives itself, in place in the received buffer (ARP
//! reply, ICMP/ICMPv6 echo reply, neighbour advertisement), and the requests it
//! builds in a fresh buffer (ARP request, neighbour solicitation).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::{NoRoom, Packet};
use crate::wire::{
    checksum, ethernet, ipv4, ipv6, ArpOperation, ArpPacket, EtherType, EthernetFrame, IcmpPacket, IpProtocol,
    Ipv4Packet, Ipv6Packet, MacAddr,
};

/// ICMPv6 types of neighbour discovery (RFC 4861 §4.3, §4.4).
pub(crate) const ND_SOLICIT: u8 = 135;
pub(crate) const ND_ADVERT: u8 = 136;
/// ND option types: source / target link-layer address (RFC 4861 §4.6.1).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// Shortest Ethernet frame without FCS (IEEE 802.3 minimum 64 with FCS).
const MIN_FRAME: usize = 60;

/// Swap the Ethernet addresses for a reply from `mac` (VLAN tags stay).
fn reply_l2(frame: &mut [u8], mac: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    let peer = eth.src_addr();
    eth.set_dst_addr(peer);
    eth.set_src_addr(mac);
}

/// Turn an ARP request (at `l2`) for our address into its reply (RFC 826).
pub(crate) fn arp_reply(frame: &mut [u8], l2: usize, mac: MacAddr) {
    reply_l2(frame, mac);
    let mut arp = ArpPacket::new_unchecked(&mut frame[l2..l2 + crate::wire::arp::PACKET_LEN]);
    let (peer_mac, peer_ip, ours) = (arp.sender_hardware_addr(), arp.sender_protocol_addr(), arp.target_protocol_addr());
    arp.set_header(ArpOperation::Reply);
    arp.set_sender(mac, ours);
    arp.set_target(peer_mac, peer_ip);
}

/// Turn an ICMP echo request (IPv4 at `l2`, already validated) into the reply
/// (RFC 792): addresses swapped, type 0, fresh TTL.
pub(crate) fn echo_reply_v4(frame: &mut [u8], l2: usize, mac: MacAddr) {
    reply_l2(frame, mac);
    let ip_bytes = &mut frame[l2..];
    let (hl, total) = {
        let ip = Ipv4Packet::new_unchecked(&*ip_bytes);
        (ip.header_len(), usize::from(ip.total_len()))
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut *ip_bytes);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(64);
    ip.fill_checksum();
    let icmp = &mut ip_bytes[hl..total];
    let sum = u16::from_be_bytes([icmp[2], icmp[3]]);
    icmp[0] = 0;
    icmp[1] = 0;
    // RFC 1624: only the type/code word changed (8/0 → 0/0).
    let sum = checksum::update(sum, 0x0800, 0x0000);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Turn an ICMPv6 echo request (IPv6 at `l2`, ICMPv6 at `l4` bytes into the IP
/// packet, ending at `end`) into the reply (RFC 4443 §4.2).
pub(crate) fn echo_reply_v6(frame: &mut [u8], l2: usize, l4: usize, end: usize, mac: MacAddr) {
    reply_l2(frame, mac);
    let ip_bytes = &mut frame[l2..];
    let mut ip = Ipv6Packet::new_unchecked(&mut *ip_bytes);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(64);
    let mut icmp = IcmpPacket::new_unchecked(&mut ip_bytes[l4..end]);
    icmp.set_type_code(129, 0);
    icmp.fill_checksum_v6(dst, src);
}

/// Target address of a neighbour solicitation/advertisement and the link-layer
/// address option of `want` type, from the ICMPv6 message bytes.
pub(crate) fn nd_parse(icmp: &[u8], want: u8) -> Option<(Ipv6Addr, Option<MacAddr>)> {
    let target: [u8; 16] = icmp.get(8..24)?.try_into().ok()?;
    let mut opts = icmp.get(24..)?;
    let mut ll = None;
    // RFC 4861 §4.6: type, length in 8-octet units (0 is invalid).
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == want && len == 8 {
            let mut m = [0; 6];
            m.copy_from_slice(&opts[2..8]);
            ll = Some(MacAddr(m));
        }
        opts = &opts[len..];
    }
    Some((Ipv6Addr::from(target), ll))
}

/// Turn a neighbour solicitation for our `target` into the advertisement
/// (RFC 4861 §7.2.4): solicited and override flags, our MAC as option.
pub(crate) fn nd_advert(frame: &mut [u8], l2: usize, target: Ipv6Addr, mac: MacAddr) -> Result<usize, NoRoom> {
    reply_l2(frame, mac);
    let len = l2 + ipv6::HEADER_LEN + 32;
    let available = frame.len();
    let ip_bytes = frame.get_mut(l2..len).ok_or(NoRoom { wanted: len, available })?;
    let mut ip = Ipv6Packet::new_unchecked(&mut *ip_bytes);
    let src = ip.src_addr();
    // From the unspecified address (duplicate address detection), answer all nodes
    // without the solicited flag (RFC 4861 §7.2.4).
    let (dst, flags) = if src.is_unspecified() {
        (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0x2000_0000u32)
    } else {
        (src, 0x6000_0000u32)
    };
    ip.set_src_addr(target);
    ip.set_dst_addr(dst);
    ip.set_hop_limit(255);
    ip.set_payload_len(32);
    ip.set_next_header(IpProtocol::Icmpv6);
    let icmp = &mut ip_bytes[ipv6::HEADER_LEN..];
    icmp[0] = ND_ADVERT;
    icmp[1] = 0;
    icmp[4..8].copy_from_slice(&flags.to_be_bytes());
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPT_TARGET_LL;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac.0);
    IcmpPacket::new_unchecked(icmp).fill_checksum_v6(target, dst);
    Ok(len)
}

/// Write an untagged Ethernet header.
fn put_l2(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: EtherType) {
    let mut eth = EthernetFrame::new_unchecked(buf);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(ethertype);
}

/// Make `pkt` (empty) an ARP request for `target` from (`mac`, `ip`).
pub(crate) fn arp_request<P: Packet>(pkt: &mut P, mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> Result<(), NoRoom> {
    pkt.append(MIN_FRAME)?;
    let buf = pkt.data_mut();
    buf.fill(0);
    put_l2(buf, MacAddr::BROADCAST, mac, EtherType::Arp);
    let mut arp = ArpPacket::new_unchecked(&mut buf[ethernet::HEADER_LEN..]);
    arp.set_header(ArpOperation::Request);
    arp.set_sender(mac, ip);
    arp.set_target(MacAddr([0; 6]), target);
    Ok(())
}

/// Make `pkt` (empty) a neighbour solicitation for `target` from (`mac`, `ip`),
/// sent to the solicited-node multicast group (RFC 4291 §2.7.1, RFC 4861 §7.2.2).
pub(crate) fn nd_solicit<P: Packet>(pkt: &mut P, mac: MacAddr, ip: Ipv6Addr, target: Ipv6Addr) -> Result<(), NoRoom> {
    let len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 32;
    pkt.append(len)?;
    let buf = pkt.data_mut();
    buf.fill(0);
    let t = target.octets();
    let group = Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]]);
    let g = group.octets();
    // RFC 2464 §7: 33:33 and the low 32 bits of the group.
    put_l2(buf, MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]]), mac, EtherType::Ipv6);
    let ip_bytes = &mut buf[ethernet::HEADER_LEN..];
    let mut h = Ipv6Packet::new_unchecked(&mut *ip_bytes);
    h.set_version_tc_flow(0, 0);
    h.set_payload_len(32);
    h.set_next_header(IpProtocol::Icmpv6);
    h.set_hop_limit(255);
    h.set_src_addr(ip);
    h.set_dst_addr(group);
    let icmp = &mut ip_bytes[ipv6::HEADER_LEN..];
    icmp[0] = ND_SOLICIT;
    icmp[8..24].copy_from_slice(&t);
    icmp[24] = OPT_SOURCE_LL;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac.0);
    IcmpPacket::new_unchecked(icmp).fill_checksum_v6(ip, group);
    Ok(())
}

/// Make `pkt` (empty) an ICMP "fragmentation needed" (type 3 code 4, RFC 1191
/// §4) from `src` about `orig` (the offending IPv4 packet), as an IP packet
/// without Ethernet header. Quotes the header and 8 bytes (RFC 792).
pub(crate) fn frag_needed<P: Packet>(pkt: &mut P, src: Ipv4Addr, orig: &[u8], mtu: u16) -> Result<(), NoRoom> {
    let o = Ipv4Packet::new_unchecked(orig);
    let quote = (o.header_len() + 8).min(orig.len());
    let len = ipv4::HEADER_LEN + 8 + quote;
    pkt.append(len)?;
    let buf = pkt.data_mut();
    buf.fill(0);
    let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
    ip.set_version_and_ihl();
    ip.set_total_len(len as u16);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::Icmp);
    ip.set_src_addr(src);
    ip.set_dst_addr(o.src_addr());
    ip.fill_checksum();
    let icmp = &mut buf[ipv4::HEADER_LEN..];
    icmp[0] = 3;
    icmp[1] = 4;
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..8 + quote].copy_from_slice(&orig[..quote]);
    let mut icmp = IcmpPacket::new_unchecked(icmp);
    icmp.fill_checksum_v4();
    Ok(())
}

/// ICMPv6 error messages must fit in the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
const IPV6_MIN_MTU: usize = 1280;
/// ICMPv6 Packet Too Big (RFC 4443 §3.2).
pub(crate) const ICMPV6_PACKET_TOO_BIG: u8 = 2;

/// Make `pkt` (empty) an ICMPv6 Packet Too Big (type 2, code 0, RFC 4443 §3.2)
/// from `src` to the source of `orig` (the offending IPv6 packet, no Ethernet
/// header), as an IPv6 packet without Ethernet header. Quotes as much of `orig`
/// as fits in 1280 bytes (RFC 4443 §2.4 (c)); `mtu` is the MTU of the next hop
/// (RFC 8201 §4: the sender lowers its path MTU to it).
pub(crate) fn packet_too_big<P: Packet>(pkt: &mut P, src: Ipv6Addr, orig: &[u8], mtu: u32) -> Result<(), NoRoom> {
    let dst = Ipv6Packet::new_unchecked(orig).src_addr();
    let quote = orig.len().min(IPV6_MIN_MTU - ipv6::HEADER_LEN - 8);
    let icmp_len = 8 + quote;
    let len = ipv6::HEADER_LEN + icmp_len;
    pkt.append(len)?;
    let buf = pkt.data_mut();
    buf.fill(0);
    let mut ip = Ipv6Packet::new_unchecked(&mut *buf);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(icmp_len as u16);
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(64);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let icmp = &mut buf[ipv6::HEADER_LEN..];
    icmp[0] = ICMPV6_PACKET_TOO_BIG;
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..8 + quote].copy_from_slice(&orig[..quote]);
    IcmpPacket::new_unchecked(icmp).fill_checksum_v6(src, dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPacket;

    /// RFC 1071 one's-complement sum written out independently of
    /// `wire::checksum` (what the receiver's stack computes).
    fn rfc1071(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn v6_packet(src: Ipv6Addr, dst: Ipv6Addr, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; ipv6::HEADER_LEN + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 63;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn packet_too_big_follows_rfc4443() {
        let host: Ipv6Addr = "2001:db8:1::2".parse().expect("v6");
        let far: Ipv6Addr = "2001:db8:2::2".parse().expect("v6");
        let gw: Ipv6Addr = "2001:db8:1::1".parse().expect("v6");
        let orig = v6_packet(host, far, 1452);
        let mut pkt = HeapPacket::with_room(64, 2048);
        packet_too_big(&mut pkt, gw, &orig, 1422).expect("fits");
        let d = pkt.data();
        // Never longer than the IPv6 minimum MTU, quoting the invoking packet's start.
        assert_eq!(d.len(), 1280);
        assert_eq!(d[0] >> 4, 6);
        assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])), 1280 - 40);
        assert_eq!((d[6], d[7]), (58, 64));
        assert_eq!(&d[8..24], &gw.octets());
        assert_eq!(&d[24..40], &host.octets(), "sent back to the packet's source");
        assert_eq!((d[40], d[41]), (2, 0), "type 2 code 0");
        assert_eq!(&d[44..48], &1422u32.to_be_bytes());
        assert_eq!(&d[48..], &orig[..1280 - 48]);
        // RFC 4443 §2.3: checksum over the pseudo-header (RFC 8200 §8.1) and the message.
        let icmp = &d[40..];
        let pseudo_len = (icmp.len() as u32).to_be_bytes();
        let sum = rfc1071(&[&gw.octets(), &host.octets(), &pseudo_len, &[0, 0, 0, 58], icmp]);
        assert_eq!(sum, 0xffff, "checksum verifies");
        // A short packet is quoted whole.
        let small = v6_packet(host, far, 8);
        let mut pkt = HeapPacket::with_room(64, 2048);
        packet_too_big(&mut pkt, gw, &small, 1280).expect("fits");
        assert_eq!(pkt.data().len(), 40 + 8 + small.len());
        assert_eq!(&pkt.data()[48..], &small[..]);
    }
}
