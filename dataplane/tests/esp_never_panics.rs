//! Decap of arbitrary bytes, and of valid packets with random damage, returns an
//! error or a packet; it never panics.
#![forbid(unsafe_code)]

mod common;

use common::*;
use dataplane::crypto::Algorithm;
use dataplane::esp::{decap, decap_burst, encap, parse_outer, UdpEncap};
use dataplane::packet::{HeapPacket, Packet};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>()) {
        let (_, inb) = sa_pair(Algorithm::Aes128Gcm, default_cfg(v6), 64);
        let st = inb.new_state().expect("w");
        let _ = parse_outer(&bytes);
        let _ = decap(&inb, &st, &mut HeapPacket::from_slice(&bytes));
        // Random bytes behind a plausible IP header reach the deeper checks.
        let mut framed = if v6 { inner_v6(0, 0, 0)[..40].to_vec() } else { inner_v4(0, 0, true, 0)[..20].to_vec() };
        framed.extend_from_slice(&bytes);
        let _ = decap(&inb, &st, &mut HeapPacket::from_slice(&framed));
    }

    #[test]
    fn damaged_valid_packets(len in 0..300usize, v6 in any::<bool>(), udp in any::<bool>(),
                             edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                             cut in any::<prop::sample::Index>()) {
        let mut cfg = default_cfg(v6);
        cfg.udp = udp.then(UdpEncap::default);
        let (out, inb) = sa_pair(Algorithm::ChaCha20Poly1305, cfg, 64);
        let mut p = HeapPacket::from_slice(&inner(!v6, len, 0, 3));
        encap(&out, &out.new_state(), &mut p).expect("encap");
        let mut bytes = p.data().to_vec();
        for (at, v) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let st = inb.new_state().expect("w");
        let _ = decap(&inb, &st, &mut HeapPacket::from_slice(&bytes));
        let mut burst = vec![HeapPacket::from_slice(&bytes), HeapPacket::from_slice(p.data())];
        let mut res = vec![Err(dataplane::esp::EspError::Truncated); 2];
        decap_burst(&inb, &st, &mut burst, &mut res);
    }
}
