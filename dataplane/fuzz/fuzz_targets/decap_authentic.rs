//! Decap of packets whose ESP payload is arbitrary *authenticated* plaintext:
//! the fuzzer cannot forge ICVs, so this target seals its input with the SA key
//! to reach the code after authentication (trailer, padding, next header, inner
//! IPv4/IPv6 header, TFC trimming, RFC 6040 ECN).
#![no_main]
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use dataplane::crypto::{new_aead, Aead, AeadOp, Algorithm, Backend, TAG_LEN};
use dataplane::esp::{decap, InboundConfig, InboundSa};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::wire::{checksum, Spi};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0x1000_0001;

fn keyed() -> &'static (Arc<dyn Aead>, InboundSa) {
    static K: OnceLock<(Arc<dyn Aead>, InboundSa)> = OnceLock::new();
    K.get_or_init(|| {
        let aead: Arc<dyn Aead> =
            Arc::from(new_aead(Algorithm::ChaCha20Poly1305, &[9u8; 36], Backend::RustCrypto).expect("key"));
        let sa = InboundSa::new(InboundConfig { spi: Spi(SPI), esn: false, replay_window: 64 }, aead.clone())
            .expect("sa");
        (aead, sa)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&tos, plaintext)) = data.split_first() else { return };
    if plaintext.len() > 60000 {
        return;
    }
    let (aead, sa) = keyed();
    // Outer IPv4 (ECN from the first input byte) + ESP header + IV + sealed input + ICV.
    let total = 20 + 16 + plaintext.len() + TAG_LEN;
    let mut pkt = vec![0u8; total];
    pkt[0] = 0x45;
    pkt[1] = tos;
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 50;
    pkt[12..20].copy_from_slice(&[198, 51, 100, 1, 203, 0, 113, 2]);
    let c = checksum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt[20..24].copy_from_slice(&SPI.to_be_bytes());
    pkt[24..28].copy_from_slice(&1u32.to_be_bytes());
    pkt[28..36].copy_from_slice(&1u64.to_be_bytes());
    let aad: [u8; 8] = [0x10, 0, 0, 1, 0, 0, 0, 1];
    let (body, tag) = pkt[36..].split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let Some(tag) = tag.first_chunk_mut::<TAG_LEN>() else { return };
    aead.seal(AeadOp { iv: 1u64.to_be_bytes(), aad: &aad, data: body, tag });
    let state = sa.new_state().expect("window");
    let mut p = HeapPacket::from_slice(&pkt);
    if let Ok(d) = decap(sa, &state, &mut p) {
        // Whatever came out must be an inner packet no longer than what went in.
        assert!(p.len() <= plaintext.len());
        assert_eq!(d.seq, 1);
    }
});
