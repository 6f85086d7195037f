//! Property tests: encap then decap gives back the inner packet, for random sizes,
//! header fields, families, encapsulations, algorithms and sequence numbers; any
//! change to the sealed bytes is refused.
#![forbid(unsafe_code)]

mod common;

use common::*;
use dataplane::esp::{
    decap, decap_burst, encap, encap_burst, DscpMode, EcnMode, EspError, OutboundState, PadAlign, UdpEncap, BURST,
};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    alg: usize,
    inner_v6: bool,
    outer_v6: bool,
    udp: bool,
    udp_csum: bool,
    esn: bool,
    pad16: bool,
    len: usize,
    tos: u8,
    first_seq: u64,
    fill: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0..3usize, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (0..1500usize, any::<u8>(), prop_oneof![1..100u64, (u32::MAX as u64 - 50)..(u32::MAX as u64 + 50)], any::<u8>()),
    )
        .prop_map(|((alg, inner_v6, outer_v6, udp, udp_csum, esn, pad16), (len, tos, first_seq, fill))| Case {
            alg,
            inner_v6,
            outer_v6,
            udp,
            udp_csum,
            esn,
            pad16,
            len,
            tos,
            first_seq,
            fill,
        })
}

fn setup(c: &Case) -> (dataplane::esp::OutboundSa, dataplane::esp::InboundSa, OutboundState) {
    let mut cfg = default_cfg(c.outer_v6);
    cfg.esn = c.esn;
    cfg.udp = c.udp.then_some(UdpEncap { ipv6_checksum: c.udp_csum, ..UdpEncap::default() });
    cfg.pad_align = Some(if c.pad16 { PadAlign::Sixteen } else { PadAlign::Four });
    cfg.dscp = DscpMode::Copy;
    cfg.ecn = EcnMode::Normal;
    let (o, i) = sa_pair(ALGS[c.alg], cfg, 1024);
    let state = OutboundState::with_next(c.esn, c.first_seq);
    (o, i, state)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn seal_then_open_round_trips(c in case()) {
        let (out, inb, ostate) = setup(&c);
        let istate = inb.new_state().expect("window");
        let plain = inner(c.inner_v6, c.len, c.tos, c.fill);
        let mut p = HeapPacket::from_slice(&plain);
        let r = encap(&out, &ostate, &mut p);
        if !c.esn && c.first_seq > u64::from(u32::MAX) {
            prop_assert_eq!(r, Err(EspError::SeqExhausted));
            return Ok(());
        }
        prop_assert_eq!(r, Ok(()));
        // RFC 4303 §2.4: ESP payload (IV, ciphertext) 4-byte aligned; outer length fields right.
        let d = p.data();
        if c.outer_v6 {
            let ip = Ipv6Packet::new_checked(d).expect("outer v6");
            prop_assert_eq!(ip.total_len(), d.len());
            prop_assert_eq!(ip.traffic_class(), c.tos);
        } else {
            let ip = Ipv4Packet::new_checked(d).expect("outer v4");
            prop_assert!(ip.verify_checksum());
            prop_assert_eq!(usize::from(ip.total_len()), d.len());
            prop_assert_eq!(ip.tos(), c.tos);
        }
        prop_assert_eq!((d.len() - out.header_overhead() - 16) % if c.pad16 { 16 } else { 4 }, 0);
        // A receiver that has seen the packet before this one (ESN high bits known).
        if c.first_seq > 1 {
            istate.replay.update(c.first_seq - 1).expect("prime the window");
        }
        let mut again = p.clone();
        let got = decap(&inb, &istate, &mut p).expect("decap");
        prop_assert_eq!(got.next_header, if c.inner_v6 { IpProtocol::Ipv6 } else { IpProtocol::Ipv4 });
        prop_assert_eq!(got.seq, c.first_seq);
        prop_assert_eq!(got.udp_encap, c.udp);
        prop_assert_eq!(p.data(), &plain[..]);
        prop_assert_eq!(decap(&inb, &istate, &mut again), Err(EspError::Replay(dataplane::esp::ReplayError::Duplicate)));
    }

    #[test]
    fn any_flipped_bit_in_the_esp_part_is_refused(c in case(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
        let (out, inb, ostate) = setup(&Case { first_seq: 1, ..c.clone() });
        let istate = inb.new_state().expect("window");
        let plain = inner(c.inner_v6, c.len, c.tos, c.fill);
        let mut p = HeapPacket::from_slice(&plain);
        encap(&out, &ostate, &mut p).expect("encap");
        let esp_off = out.header_overhead() - 16;
        let i = esp_off + at.index(p.len() - esp_off);
        p.data_mut()[i] ^= 1 << bit;
        let r = decap(&inb, &istate, &mut p);
        prop_assert!(r.is_err(), "flipped byte {} bit {} accepted", i, bit);
    }

    #[test]
    fn bursts_match_single_packets(c in case(), n in 1..(2 * BURST + 3)) {
        let (out, inb, ostate) = setup(&Case { first_seq: 1, ..c.clone() });
        let istate = inb.new_state().expect("window");
        let plains: Vec<Vec<u8>> = (0..n).map(|i| inner(c.inner_v6 ^ (i % 3 == 0), (c.len + 37 * i) % 1500, c.tos, i as u8)).collect();
        let mut pkts: Vec<HeapPacket> = plains.iter().map(|p| HeapPacket::from_slice(p)).collect();
        // One bad inner packet in the middle must not disturb the others.
        pkts[n / 2].data_mut()[0] = 0x00;
        let mut res = vec![Ok(()); n];
        encap_burst(&out, &ostate, &mut pkts, &mut res);
        for (i, r) in res.iter().enumerate() {
            prop_assert_eq!(*r, if i == n / 2 { Err(EspError::BadInnerHeader) } else { Ok(()) });
        }
        // The same numbers a single-packet SA would have used: identical bytes.
        let single = OutboundState::with_next(c.esn, 1);
        for (i, plain) in plains.iter().enumerate() {
            let mut q = HeapPacket::from_slice(plain);
            if i == n / 2 {
                single.reserve(1);
                continue;
            }
            encap(&out, &single, &mut q).expect("encap");
            prop_assert_eq!(q.data(), pkts[i].data(), "packet {}", i);
        }
        let mut dres = vec![Err(EspError::Truncated); n];
        decap_burst(&inb, &istate, &mut pkts, &mut dres);
        for (i, r) in dres.iter().enumerate() {
            if i == n / 2 {
                prop_assert!(r.is_err());
            } else {
                prop_assert_eq!(r.map(|d| d.seq), Ok(i as u64 + 1));
                prop_assert_eq!(pkts[i].data(), &plains[i][..]);
            }
        }
    }
}
