//! Every mismatch, run through two engines in memory, gives one diagnosis per
//! side with the stable reason code, the field and both values (issue 7 item 1).
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::{Duration, Instant};

use controlplane::diagnosis::{diagnose, Diagnosis, Reason};
use controlplane::ikev2::{ConnectionConfig, Event, Role};
use ikev2_common::*;

fn run(a: ConnectionConfig, b: ConnectionConfig) -> Net {
    let mut net = Net::new(a, b);
    net.initiate(Side::A);
    net.settle();
    net
}

/// The one diagnosis of a side, made with that side's connection config.
fn diag(p: &Peer) -> Diagnosis {
    let f = p.rec.failures();
    assert_eq!(f.len(), 1, "{f:#?}");
    diagnose(f[0], p.ep.connection(p.conn))
}

fn both(net: &Net) -> (Diagnosis, Diagnosis) {
    let (a, b) = (diag(&net.a), diag(&net.b));
    assert_eq!(a.role, Role::Initiator);
    assert_eq!(b.role, Role::Responder);
    (a, b)
}

fn has(d: &Diagnosis, parts: &[&str]) {
    let line = d.to_string();
    for p in parts {
        assert!(line.contains(p), "'{p}' missing in: {line}");
    }
    assert!(!line.contains('\n'), "one line: {line}");
}

#[test]
fn psk() {
    let mut b = conn_b();
    b.psk = zeroize::Zeroizing::new(b"other secret".to_vec());
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!((b.reason, b.field.as_str()), (Reason::Psk, "PSK"));
    has(&b, &["reason=psk", "a.example", "pre-shared keys differ"]);
    assert_eq!(a.reason, Reason::AuthFailed);
    has(&a, &["AUTHENTICATION_FAILED", "PSK or identity — check both; ours were IDi=a.example, asked IDr=b.example"]);
    assert_eq!(a.causes.len(), 3);
    assert!(a.causes[0].contains("pre-shared keys"));
}

#[test]
fn initiator_id_unknown() {
    let mut b = conn_b();
    b.remote_id = id("c.example");
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!((b.reason, b.field.as_str()), (Reason::PeerId, "IDi"));
    has(&b, &["IDi=a.example", "we expect remote_id=c.example"]);
    assert_eq!(a.reason, Reason::AuthFailed);
}

#[test]
fn requested_responder_id_wrong() {
    let mut a = conn_a();
    a.remote_id = id("x.example");
    let (a, b) = both(&run(a, conn_b()));
    assert_eq!((b.reason, b.field.as_str()), (Reason::PeerId, "IDr"));
    has(&b, &["IDr=x.example", "our local_id is b.example"]);
    has(&a, &["asked IDr=x.example"]);
}

#[test]
fn ike_encryption_and_prf() {
    let mut b = conn_b();
    b.ike_proposals = ike("aes256gcm16-prfsha384-ecp256");
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!((b.reason, b.field.as_str()), (Reason::IkeProposal, "ENCR+PRF"));
    has(&b, &["ENCR received", "PRF received", "closest received", "configured [aes256gcm16-prfsha384-ecp256]"]);
    assert_eq!((a.reason, a.field.as_str()), (Reason::IkeProposal, "IKE SA"));
    has(&a, &["NO_PROPOSAL_CHOSEN to our IKE proposals [", "IKEv1"]);
}

#[test]
fn dh_group_disjoint() {
    let mut b = conn_b();
    b.ike_proposals = ike("aes128gcm16-prfsha256-x25519");
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!((b.reason, b.field.as_str()), (Reason::DhGroup, "KE"));
    let line = b.to_string();
    // Both groups on the line, under whatever names the proposal module prints.
    let received = &line[line.find("KE received").expect("KE received")..];
    assert!(received.contains("vs configured"), "{line}");
    assert_eq!(a.reason, Reason::IkeProposal, "the initiator cannot tell: NO_PROPOSAL_CHOSEN");
    has(&a, &["key exchange (DH) group"]);
}

#[test]
fn dh_group_overlap_is_no_failure() {
    let mut a = conn_a();
    a.ike_proposals = ike("aes128gcm16-prfsha256-ecp256-x25519");
    let mut b = conn_b();
    b.ike_proposals = ike("aes128gcm16-prfsha256-x25519");
    let net = run(a, b);
    assert!(net.established());
    assert!(net.a.rec.failures().is_empty() && net.b.rec.failures().is_empty());
}

#[test]
fn esp_proposal() {
    let mut b = conn_b();
    b.esp_proposals = esp("chacha20poly1305");
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!((b.reason, b.field.as_str()), (Reason::EspProposal, "ENCR"));
    has(&b, &["no ESP proposal in common", "IKE SA stays up"]);
    assert_eq!(a.reason, Reason::EspProposal);
    has(&a, &["NO_PROPOSAL_CHOSEN to our ESP proposals", "PFS"]);
}

#[test]
fn traffic_selectors() {
    let mut b = conn_b();
    b.local_ts = ts("10.3.0.0/24");
    let (a, b) = both(&run(conn_a(), b));
    assert_eq!(b.reason, Reason::TrafficSelectors);
    has(&b, &["offered TSi=10.1.0.0/24 TSr=10.2.0.0/24", "we allow remote_ts=10.1.0.0/24 local_ts=10.3.0.0/24"]);
    assert_eq!(a.reason, Reason::TrafficSelectors);
    has(&a, &["TS_UNACCEPTABLE to our selectors TSi=10.1.0.0/24 TSr=10.2.0.0/24"]);
}

#[test]
fn no_connection() {
    let mut b = conn_b();
    b.remote_addr = Some("198.51.100.99".parse().expect("ip"));
    let net = run(conn_a(), b);
    let f = net.b.rec.failures();
    let d = diagnose(f[0], None);
    assert_eq!(d.reason, Reason::NoConnection);
    has(&d, &["198.51.100.1", "remote_addr = \"198.51.100.1\""]);
}

#[test]
fn responder_silent() {
    let mut net = Net::new(conn_a(), conn_b());
    net.filter = Box::new(|_, d| if d.sender == Side::B { Verdict::Drop } else { Verdict::Deliver });
    net.initiate(Side::A);
    net.run_for(Duration::from_secs(600));
    let a = diag(&net.a);
    assert_eq!(a.reason, Reason::NoResponse);
    has(&a, &["no answer from 198.51.100.2 (UDP port 500) after 5 retransmits", "firewall"]);
}

#[test]
fn ikev1_peer() {
    // An ISAKMP header (RFC 2408 §3.1): version 1.0, Identity Protection, SA payload next.
    let mut msg = vec![0u8; 28];
    msg[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    msg[16] = 1; // next payload SA
    msg[17] = 0x10; // major 1, minor 0
    msg[18] = 2; // Identity Protection (Main Mode)
    msg[24..28].copy_from_slice(&28u32.to_be_bytes());
    let mut ep = controlplane::ikev2::Endpoint::new(Box::new(controlplane::ikev2::crypto::DeterministicEntropy::new(b"v1")));
    let (_, _) = ep.add_connection(conn_b(), Instant::now());
    let actions = ep.handle_datagram(addr(B_IP, 500), addr(A_IP, 500), &msg, Instant::now());
    let d = actions
        .iter()
        .find_map(|a| match a {
            controlplane::ikev2::Action::Event(Event::Failure(f)) => Some(diagnose(f, None)),
            _ => None,
        })
        .expect("a failure for an IKEv1 message");
    assert_eq!(d.reason, Reason::IkeVersion);
    has(&d, &["IKEv1", "version = 2"]);
}
