//! Hostile and broken input: IKEv1 peers, unknown critical payloads,
//! truncation and bit flips of every byte of real messages, wrong SPIs,
//! old message IDs. Answered as RFC 7296 says or dropped and counted;
//! never a panic, never an SA from a corrupted message.
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::Instant;

use controlplane::ikev2::crypto::DeterministicEntropy;
use controlplane::ikev2::wire::{parse_payloads, Header, NotifyType, Payload};
use controlplane::ikev2::{Action, Endpoint, Event, FailureKind};
use ikev2_common::*;

/// The four setup messages of an undisturbed run (same seeds as `fresh_*`).
fn setup_messages() -> Vec<Datagram> {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    net.wire[..4].to_vec()
}

fn fresh(side: Side, now: Instant) -> Endpoint {
    let (seed, conn): (&[u8], _) = match side {
        Side::A => (b"seed-a", conn_a()),
        Side::B => (b"seed-b", conn_b()),
    };
    let mut ep = Endpoint::new(Box::new(DeterministicEntropy::new(seed)));
    ep.add_connection(conn, now);
    ep
}

fn sends(actions: &[Action]) -> Vec<Vec<u8>> {
    actions.iter().filter_map(|a| if let Action::Send { bytes, .. } = a { Some(bytes.clone()) } else { None }).collect()
}

fn installs(actions: &[Action]) -> usize {
    actions.iter().filter(|a| matches!(a, Action::InstallChildSa(_))).count()
}

/// The notify types of an unencrypted reply.
fn reply_notifies(bytes: &[u8]) -> Vec<NotifyType> {
    let h = Header::new_checked(bytes).expect("reply header");
    parse_payloads(h.next_payload(), h.body())
        .expect("reply payloads")
        .into_iter()
        .filter_map(|p| if let Payload::Notify(n) = p { Some(n.kind) } else { None })
        .collect()
}

#[test]
fn ikev1_peer_is_told_and_named() {
    let now = Instant::now();
    let mut b = fresh(Side::B, now);
    // An IKEv1 Main Mode header (version 1.0, exchange 2, SA payload next).
    let mut v1 = vec![0x11; 8];
    v1.extend_from_slice(&[0; 8]);
    v1.extend_from_slice(&[1, 0x10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 28]);
    let acts = b.handle_datagram(addr(B_IP, 500), addr(A_IP, 500), &v1, now);
    let replies = sends(&acts);
    assert_eq!(replies.len(), 1);
    assert_eq!(reply_notifies(&replies[0]), vec![NotifyType::INVALID_MAJOR_VERSION]);
    assert_eq!(&replies[0][..8], &[0x11; 8], "reply names the peer's SPI");
    let f = acts.iter().find_map(|a| if let Action::Event(Event::Failure(f)) = a { Some(f) } else { None }).expect("failure");
    assert!(matches!(f.kind, FailureKind::Ikev1Peer));
    assert_eq!(f.connection.as_deref(), Some("to-a"));
    assert!(f.to_string().contains("peer is using IKEv1; this gateway speaks IKEv2 only"), "{f}");
    assert_eq!(b.stats().ikev1_answered, 1);
}

#[test]
fn unknown_critical_payload_in_ike_sa_init() {
    let msgs = setup_messages();
    let init = msgs[0].ike().to_vec();
    // Insert an unknown payload type 200, critical, before the first payload.
    let mut m = init[..28].to_vec();
    let first = m[16];
    m[16] = 200;
    m.extend_from_slice(&[first, 0x80, 0, 8, 1, 2, 3, 4]);
    m.extend_from_slice(&init[28..]);
    let len = (m.len() as u32).to_be_bytes();
    m[24..28].copy_from_slice(&len);
    let now = Instant::now();
    let mut b = fresh(Side::B, now);
    let acts = b.handle_datagram(addr(B_IP, 500), addr(A_IP, 500), &m, now);
    let replies = sends(&acts);
    assert_eq!(replies.len(), 1);
    assert_eq!(reply_notifies(&replies[0]), vec![NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD]);
    assert_eq!(b.stats().unsupported_critical, 1);
    // Not critical: skipped, and the exchange proceeds.
    m[29] = 0;
    let mut b = fresh(Side::B, now);
    let acts = b.handle_datagram(addr(B_IP, 500), addr(A_IP, 500), &m, now);
    let replies = sends(&acts);
    assert_eq!(replies.len(), 1);
    assert!(reply_notifies(&replies[0]).contains(&NotifyType::NAT_DETECTION_SOURCE_IP), "a normal IKE_SA_INIT response");
}

/// Every truncation and every single-byte corruption of each setup message,
/// delivered to an endpoint in exactly the state that expects it.
#[test]
fn truncated_and_corrupted_messages() {
    let msgs = setup_messages();
    let now = Instant::now();
    for (i, d) in msgs.iter().enumerate() {
        let msg = d.ike().to_vec();
        let mut variants: Vec<Vec<u8>> = (0..msg.len()).map(|n| msg[..n].to_vec()).collect();
        for pos in 0..msg.len() {
            let mut v = msg.clone();
            v[pos] ^= 0x5a;
            variants.push(v);
        }
        for v in variants {
            // Bring a fresh endpoint to the state before message i.
            let (mut ep, side) = match i {
                0 | 2 => (fresh(Side::B, now), Side::B),
                _ => (fresh(Side::A, now), Side::A),
            };
            if side == Side::A {
                let _ = ep.initiate(controlplane::ikev2::ConnectionId(0), now);
                if i == 3 {
                    let _ = ep.handle_datagram(msgs[1].to, msgs[1].from, msgs[1].ike(), now);
                }
            } else if i == 2 {
                let _ = ep.handle_datagram(msgs[0].to, msgs[0].from, msgs[0].ike(), now);
            }
            let acts = ep.handle_datagram(d.to, d.from, &v, now);
            if i >= 2 {
                // IKE_AUTH is authenticated end to end: nothing from a forgery.
                assert_eq!(installs(&acts), 0, "message {i} corrupted");
                assert!(!acts.iter().any(|a| matches!(a, Action::Event(Event::IkeSaUp { .. }))));
            }
            let s = ep.stats();
            let counted = s.malformed + s.unknown_spi + s.integrity_failed + s.bad_message_id + s.unexpected_response + s.no_connection + s.unsupported_critical + s.ikev1_answered;
            let answered = !sends(&acts).is_empty() || acts.iter().any(|a| matches!(a, Action::Event(_)));
            assert!(counted > 0 || answered, "message {i}: a variant vanished without a trace");
        }
    }
}

#[test]
fn wrong_spi_and_old_message_ids_are_dropped_and_counted() {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    let auth = net.wire[2].clone();
    // Wrong responder SPI.
    let mut bad = auth.ike().to_vec();
    bad[8] ^= 0xff;
    let now = net.now;
    let acts = net.b.ep.handle_datagram(auth.to, auth.from, &bad, now);
    assert!(sends(&acts).is_empty());
    assert_eq!(net.b.ep.stats().unknown_spi, 1);
    // Move the message IDs on with a Child rekey, then replay IKE_AUTH (ID 1).
    let sa = net.a.ep.ike_sas()[0].clone();
    let acts = net.a.ep.rekey_child(sa.id, sa.children[0].id, now);
    net.absorb(Side::A, acts);
    net.settle();
    let acts = net.b.ep.handle_datagram(auth.to, auth.from, auth.ike(), now);
    assert!(sends(&acts).is_empty(), "an old request is not answered");
    assert_eq!(net.b.ep.stats().bad_message_id, 1);
    assert_eq!(installs(&acts), 0);
}

/// An IKE_SA_INIT response to A's first request carrying only a COOKIE with
/// `len` octets of data.
fn cookie_reply(request: &[u8], len: usize) -> Vec<u8> {
    use controlplane::ikev2::wire::{emit_payloads, ExchangeType, Flags, HeaderRepr, NotifyPayload, PayloadType, HEADER_LEN};
    let h = Header::new_checked(request).expect("request header").repr();
    let cookie = NotifyPayload::new(NotifyType::COOKIE, (0..len).map(|i| i as u8 ^ 0x5a).collect());
    let mut body = Vec::new();
    let first = emit_payloads(&[Payload::Notify(cookie)], &mut body).expect("emit");
    let reply = HeaderRepr {
        spi_i: h.spi_i,
        spi_r: 0,
        next_payload: first,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags { initiator: false, response: true },
        message_id: 0,
        length: u32::try_from(HEADER_LEN + body.len()).expect("small"),
    };
    assert_ne!(first, PayloadType::None);
    let mut out = Vec::new();
    reply.emit(&mut out);
    out.extend_from_slice(&body);
    out
}

/// RFC 7296 §2.6: cookie data is 1 to 64 octets. 1 and 64 are echoed in a
/// new IKE_SA_INIT request (COOKIE first, same data); 0 and 65 are refused
/// with a failure naming COOKIE, and nothing is sent.
#[test]
fn cookie_data_must_be_1_to_64_octets() {
    for (len, accepted) in [(0, false), (1, true), (64, true), (65, false)] {
        let now = Instant::now();
        let mut a = fresh(Side::A, now);
        let acts = a.initiate(controlplane::ikev2::ConnectionId(0), now);
        let request = sends(&acts).pop().expect("IKE_SA_INIT request");
        let acts = a.handle_datagram(addr(A_IP, 500), addr(B_IP, 500), &cookie_reply(&request, len), now);
        let resent = sends(&acts);
        let failure = acts.iter().find_map(|a| if let Action::Event(Event::Failure(f)) = a { Some(f) } else { None });
        if accepted {
            assert!(failure.is_none(), "{len} octets: {failure:?}");
            assert_eq!(resent.len(), 1, "{len} octets: one new request");
            let h = Header::new_checked(&resent[0]).expect("header");
            let p = parse_payloads(h.next_payload(), h.body()).expect("payloads");
            let Some(Payload::Notify(n)) = p.first() else { panic!("{len} octets: COOKIE must come first: {p:?}") };
            assert_eq!(n.kind, NotifyType::COOKIE);
            assert_eq!(n.data, (0..len).map(|i| i as u8 ^ 0x5a).collect::<Vec<u8>>(), "{len} octets echoed as received");
        } else {
            assert!(resent.is_empty(), "{len} octets: nothing echoed");
            let f = failure.unwrap_or_else(|| panic!("{len} octets: refused with a failure"));
            assert!(matches!(f.kind, FailureKind::PeerRefused { notify: NotifyType::COOKIE, .. }), "{len} octets: {:?}", f.kind);
            assert!(a.ike_sas().is_empty(), "{len} octets: the half-open SA is gone");
        }
    }
}
