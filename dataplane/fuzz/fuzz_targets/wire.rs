//! Every wire parser on arbitrary bytes, with every accessor: never panics.
#![no_main]
#![forbid(unsafe_code)]

use dataplane::wire::{
    ArpPacket, EspPacket, EspTrailer, EthernetFrame, IcmpPacket, Ipv4Packet, Ipv6Packet, UdpEncapPayload, UdpPacket,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = EthernetFrame::new_checked(data) {
        let _ = (e.dst_addr(), e.src_addr(), e.vlan(), e.outer_vlan(), e.ethertype(), e.payload().len());
    }
    if let Ok(a) = ArpPacket::new_checked(data) {
        let _ = (a.operation(), a.sender_hardware_addr(), a.sender_protocol_addr());
        let _ = (a.target_hardware_addr(), a.target_protocol_addr());
    }
    if let Ok(ip) = Ipv4Packet::new_checked(data) {
        let _ = (ip.dscp(), ip.ecn(), ip.ident(), ip.is_fragment(), ip.ttl(), ip.protocol());
        let _ = (ip.src_addr(), ip.dst_addr(), ip.verify_checksum(), ip.payload().len());
        if let Ok(u) = UdpPacket::new_checked(ip.payload()) {
            let _ = u.verify_checksum_v4(ip.src_addr(), ip.dst_addr());
            let _ = UdpEncapPayload::classify(u.payload());
        }
    }
    if let Ok(ip) = Ipv6Packet::new_checked(data) {
        let _ = (ip.traffic_class(), ip.flow_label(), ip.next_header(), ip.hop_limit(), ip.payload().len());
        if let Ok(up) = ip.upper_layer() {
            let rest = &data[up.offset.min(ip.total_len())..ip.total_len()];
            if let Ok(m) = IcmpPacket::new_checked(rest) {
                let _ = (m.icmpv6_message(), m.verify_checksum_v6(ip.src_addr(), ip.dst_addr()), m.mtu());
            }
            if let Ok(u) = UdpPacket::new_checked(rest) {
                let _ = u.verify_checksum_v6(ip.src_addr(), ip.dst_addr());
            }
        }
    }
    if let Ok(m) = IcmpPacket::new_checked(data) {
        let _ = (m.icmpv4_message(), m.msg_code(), m.echo_ident(), m.echo_seq_no(), m.verify_checksum_v4());
    }
    if let Ok(e) = EspPacket::new_checked(data) {
        let _ = (e.spi(), e.sequence_number(), e.payload().len());
    }
    let _ = EspTrailer::parse(data);
    let _ = UdpEncapPayload::classify(data);
});
