//! The IKEv2 message parser and the conversions to proposals, selectors and
//! identities must never panic, and what parses must re-emit and re-parse
//! to the same payloads.
#![no_main]
#![forbid(unsafe_code)]

use controlplane::ikev2::wire::{emit_payloads, parse_payloads, Header, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Header::new_checked(data) else { return };
    let Ok(payloads) = parse_payloads(h.next_payload(), h.body()) else { return };
    for p in &payloads {
        match p {
            Payload::Sa(props) => props.iter().for_each(|pr| {
                let _ = pr.to_proposal();
            }),
            Payload::TsI(t) | Payload::TsR(t) => t.iter().for_each(|ts| {
                let _ = ts.to_selector();
            }),
            Payload::IdI(id) | Payload::IdR(id) => {
                let _ = id.to_identity();
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(first) = emit_payloads(&payloads, &mut out) {
        let again = parse_payloads(first, &out).expect("our own output parses");
        assert_eq!(again, payloads, "emit/parse round trip");
    }
});
