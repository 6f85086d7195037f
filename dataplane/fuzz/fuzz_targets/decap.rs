//! Inbound decap of arbitrary bytes (outer header parsing, SPI, lengths, replay
//! check, AEAD open): must return an error or a packet, never panic.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use dataplane::crypto::{new_aead, Algorithm, Backend};
use dataplane::esp::{decap, decap_burst, parse_outer, EspError, InboundConfig, InboundSa};
use dataplane::packet::HeapPacket;
use dataplane::wire::Spi;
use libfuzzer_sys::fuzz_target;

fn sa(esn: bool) -> &'static InboundSa {
    static SA: OnceLock<[InboundSa; 2]> = OnceLock::new();
    let sas = SA.get_or_init(|| {
        let aead: Arc<dyn dataplane::crypto::Aead> =
            Arc::from(new_aead(Algorithm::Aes128Gcm, &[7u8; 20], Backend::RustCrypto).expect("key"));
        [false, true].map(|esn| {
            InboundSa::new(InboundConfig { spi: Spi(0x1000_0001), esn, replay_window: 64 }, aead.clone()).expect("sa")
        })
    });
    &sas[usize::from(esn)]
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, pkt)) = data.split_first() else { return };
    let sa = sa(flags & 1 != 0);
    let state = sa.new_state().expect("window");
    let _ = parse_outer(pkt);
    let _ = decap(sa, &state, &mut HeapPacket::from_slice(pkt));
    let mut burst = [HeapPacket::from_slice(pkt), HeapPacket::from_slice(pkt)];
    let mut res = [Err(EspError::Truncated); 2];
    decap_burst(sa, &state, &mut burst, &mut res);
});
