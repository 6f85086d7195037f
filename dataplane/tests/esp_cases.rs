//! Specific ESP behaviours: each failure kind and its drop reason, sequence-number
//! exhaustion, outer header policy (DSCP, ECN, DF, TTL), NAT-T framing, trimming.
#![forbid(unsafe_code)]

mod common;

use common::*;
use dataplane::crypto::Algorithm;
use dataplane::drop::DropReason;
use dataplane::esp::{
    decap, encap, parse_outer, DfMode, DscpMode, EcnMode, EspError, InboundOuter, OutboundState, ReplayError,
    UdpEncap,
};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::wire::{checksum, Ecn, Ipv4Packet, Ipv6Packet, Spi, UdpPacket};

fn sealed(cfg: dataplane::esp::OutboundConfig, plain: &[u8]) -> (HeapPacket, dataplane::esp::InboundSa) {
    let (out, inb) = sa_pair(Algorithm::Aes128Gcm, cfg, 64);
    let mut p = HeapPacket::from_slice(plain);
    encap(&out, &out.new_state(), &mut p).expect("encap");
    (p, inb)
}

#[test]
fn sequence_numbers_exhaust_without_esn_and_never_wrap() {
    let (out, _) = sa_pair(Algorithm::Aes128Gcm, default_cfg(false), 64);
    let st = OutboundState::with_next(false, u64::from(u32::MAX));
    let mut p = HeapPacket::from_slice(&inner_v4(10, 0, true, 0));
    assert_eq!(encap(&out, &st, &mut p), Ok(()));
    assert_eq!(&p.data()[24..28], &u32::MAX.to_be_bytes());
    assert!(st.is_exhausted());
    for _ in 0..3 {
        let mut p = HeapPacket::from_slice(&inner_v4(10, 0, true, 0));
        let before = p.clone();
        assert_eq!(encap(&out, &st, &mut p), Err(EspError::SeqExhausted));
        assert_eq!(p, before, "refused packet untouched");
    }
    assert_eq!(EspError::SeqExhausted.drop_reason(), DropReason::SeqExhausted);

    // With ESN the counter goes on; the wire carries the low 32 bits.
    let mut cfg = default_cfg(false);
    cfg.esn = true;
    let (out, _) = sa_pair(Algorithm::Aes128Gcm, cfg, 64);
    let st = OutboundState::with_next(true, u64::from(u32::MAX) + 1);
    let mut p = HeapPacket::from_slice(&inner_v4(10, 0, true, 0));
    assert_eq!(encap(&out, &st, &mut p), Ok(()));
    assert_eq!(&p.data()[24..28], &[0, 0, 0, 0]);
    assert_eq!(&p.data()[28..36], &(1u64 << 32).to_be_bytes(), "IV is the 64-bit sequence number");
}

#[test]
fn outer_header_policy() {
    // DSCP 46 (EF) + ECT(0) inner, DF clear.
    let tos = (46 << 2) | 0b10;
    let plain = inner_v4(100, tos, false, 1);
    let mut cfg = default_cfg(false);
    cfg.ttl = 17;
    let (p, _) = sealed(cfg.clone(), &plain);
    let ip = Ipv4Packet::new_checked(p.data()).expect("outer");
    assert_eq!((ip.tos(), ip.ttl(), ip.dont_frag(), ip.ident()), (tos, 17, false, 1));
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr().to_string(), "198.51.100.1");
    assert_eq!(ip.protocol(), dataplane::wire::IpProtocol::Esp);

    cfg.dscp = DscpMode::Fixed(10);
    cfg.ecn = EcnMode::Compatibility;
    cfg.df = DfMode::Set;
    let (p, _) = sealed(cfg, &plain);
    let ip = Ipv4Packet::new_checked(p.data()).expect("outer");
    assert_eq!((ip.dscp(), ip.ecn(), ip.dont_frag()), (10, Ecn::NotEct, true));
    assert!(ip.verify_checksum());

    // IPv6 outer: traffic class copied, flow label from config, payload length.
    let mut cfg = default_cfg(true);
    cfg.flow_label = 0xabcde;
    let (p, _) = sealed(cfg, &inner_v6(33, 0xb9, 0));
    let ip = Ipv6Packet::new_checked(p.data()).expect("outer");
    assert_eq!((ip.traffic_class(), ip.flow_label(), ip.total_len()), (0xb9, 0xabcde, p.len()));
}

#[test]
fn nat_t_framing_v4_zero_checksum_v6_real_checksum() {
    let mut cfg = default_cfg(false);
    cfg.udp = Some(UdpEncap::default());
    let (p, inb) = sealed(cfg, &inner_v4(5, 0, true, 0));
    let u = UdpPacket::new_checked(&p.data()[20..]).expect("udp");
    assert_eq!((u.src_port(), u.dst_port(), u.checksum(), usize::from(u.len())), (4500, 4500, 0, p.len() - 20));
    let Ok(InboundOuter::Esp(loc)) = parse_outer(p.data()) else { panic!("not ESP") };
    assert_eq!((loc.spi, loc.esp_offset, loc.udp_encap), (Spi(0x1000_0001), 28, true));
    let mut q = p.clone();
    assert!(decap(&inb, &inb.new_state().expect("w"), &mut q).is_ok());

    let mut cfg = default_cfg(true);
    cfg.udp = Some(UdpEncap { src_port: 4500, dst_port: 31000, ipv6_checksum: true });
    let (src, dst) = (cfg.src, cfg.dst);
    let (p, _) = sealed(cfg, &inner_v4(5, 0, true, 0));
    let u = UdpPacket::new_checked(&p.data()[40..]).expect("udp");
    let (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) = (src, dst) else { panic!() };
    assert_ne!(u.checksum(), 0);
    assert!(u.verify_checksum_v6(s, d));
    assert_eq!(u.dst_port(), 31000);
}

#[test]
fn ike_and_keepalive_on_4500_are_not_esp() {
    let mut p = inner_v4(0, 0, true, 0);
    // Turn the inner UDP 1234->5678 into 4500->4500 with a non-ESP marker + IKE bytes.
    p[20..24].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
    let mut ike = p.clone();
    ike.extend_from_slice(&[0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
    fix_lengths(&mut ike);
    assert_eq!(parse_outer(&ike), Ok(InboundOuter::Ike { ike_offset: 32 }));
    let mut ka = p.clone();
    ka.push(0xff);
    fix_lengths(&mut ka);
    assert_eq!(parse_outer(&ka), Ok(InboundOuter::NatKeepalive));
    let (_, inb) = sa_pair(Algorithm::Aes128Gcm, default_cfg(false), 64);
    let mut pk = HeapPacket::from_slice(&ike);
    assert_eq!(decap(&inb, &inb.new_state().expect("w"), &mut pk), Err(EspError::NotEsp));
}

fn fix_lengths(p: &mut [u8]) {
    let n = p.len() as u16;
    p[2..4].copy_from_slice(&n.to_be_bytes());
    p[24..26].copy_from_slice(&(n - 20).to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn inbound_failures_and_their_drop_reasons() {
    let plain = inner_v4(40, 0, true, 0);
    let (p, inb) = sealed(default_cfg(false), &plain);

    // Wrong SA for the SPI.
    let mut other = default_cfg(false);
    other.spi = Spi(0x2000);
    let (_, inb2) = sa_pair(Algorithm::Aes128Gcm, other, 64);
    let mut q = p.clone();
    let e = decap(&inb2, &inb2.new_state().expect("w"), &mut q).expect_err("bad spi");
    assert_eq!((e, e.drop_reason()), (EspError::BadSpi { got: Spi(0x1000_0001) }, DropReason::BadSpi));

    // Truncated: cut into the ICV and fix the IP length so only ESP is short.
    let mut short = p.data()[..20 + 8 + 8 + 1 + 16].to_vec();
    fix_ip_len(&mut short);
    let st = inb.new_state().expect("w");
    let e = decap(&inb, &st, &mut HeapPacket::from_slice(&short)).expect_err("short");
    assert_eq!(e.drop_reason(), DropReason::Truncated);

    // Forged ICV; the window is not advanced by it.
    let mut forged = p.clone();
    let n = forged.len();
    forged.data_mut()[n - 1] ^= 1;
    let e = decap(&inb, &st, &mut forged).expect_err("forged");
    assert_eq!((e, e.drop_reason()), (EspError::AuthFailed, DropReason::AuthFailed));
    let mut good = p.clone();
    assert!(decap(&inb, &st, &mut good).is_ok(), "forgery did not burn the sequence number");
    let e = decap(&inb, &st, &mut p.clone()).expect_err("replay");
    assert_eq!((e, e.drop_reason()), (EspError::Replay(ReplayError::Duplicate), DropReason::Replayed));

    // Fragmented outer packet.
    let mut frag = p.data().to_vec();
    frag[6] = 0x20;
    frag[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&frag[..20]);
    frag[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decap(&inb, &st, &mut HeapPacket::from_slice(&frag)), Err(EspError::Fragment));

    // Bad outer checksum.
    let mut bad = p.data().to_vec();
    bad[8] ^= 1;
    assert_eq!(decap(&inb, &st, &mut HeapPacket::from_slice(&bad)), Err(EspError::MalformedOuter));
}

fn fix_ip_len(p: &mut [u8]) {
    let n = p.len() as u16;
    p[2..4].copy_from_slice(&n.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn ethernet_padding_is_trimmed_both_ways() {
    // A 28-byte IPv4 packet padded to the 46-byte Ethernet minimum payload.
    let plain = inner_v4(0, 0, true, 0);
    let mut padded = plain.clone();
    padded.resize(46, 0xee);
    let (out, inb) = sa_pair(Algorithm::ChaCha20Poly1305, default_cfg(false), 64);
    let mut p = HeapPacket::from_slice(&padded);
    encap(&out, &out.new_state(), &mut p).expect("encap");
    // 20 outer + 8 ESP + 8 IV + (28 + 2 trailer + 2 pad: 4-byte aligned for ChaCha) + 16 ICV
    assert_eq!(p.len(), 20 + 16 + 32 + 16);
    let mut framed = p.data().to_vec();
    framed.extend_from_slice(&[0xee; 10]);
    let mut q = HeapPacket::from_slice(&framed);
    decap(&inb, &inb.new_state().expect("w"), &mut q).expect("decap");
    assert_eq!(q.data(), &plain[..]);
}

#[test]
fn no_room_is_reported_not_panicked() {
    let (out, _) = sa_pair(Algorithm::Aes128Gcm, default_cfg(true), 64);
    let plain = inner_v4(10, 0, true, 0);
    for (head, tail) in [(0, 288), (out.header_overhead() - 1, 288), (128, 0), (128, 17)] {
        let mut p = HeapPacket::from_slice_with_room(&plain, head, tail);
        let e = encap(&out, &out.new_state(), &mut p).expect_err("no room");
        assert_eq!(e.drop_reason(), DropReason::NoBufferRoom, "head {head} tail {tail}");
        assert_eq!(p.data(), &plain[..]);
    }
}
