//! Each configuration mismatch is reported on both sides with both values
//! (issue 7 item 1), checked against the typed failures and their text.
#![forbid(unsafe_code)]

mod ikev2_common;

use controlplane::ikev2::wire::NotifyType;
use controlplane::ikev2::{Event, FailureKind, Sent};
use controlplane::proposal::{DhGroup, SelectError, TransformType};
use ikev2_common::*;

fn run(a: controlplane::ikev2::ConnectionConfig, b: controlplane::ikev2::ConnectionConfig) -> Net {
    let mut net = Net::new(a, b);
    net.initiate(Side::A);
    net.settle();
    net
}

fn one_failure(p: &Peer) -> (&FailureKind, String) {
    let f = p.rec.failures();
    assert_eq!(f.len(), 1, "{f:#?}");
    (&f[0].kind, f[0].to_string())
}

#[test]
fn psk_mismatch() {
    let mut b = conn_b();
    b.psk = zeroize::Zeroizing::new(b"other secret".to_vec());
    let net = run(conn_a(), b);
    let (kb, tb) = one_failure(&net.b);
    assert!(matches!(kb, FailureKind::PeerAuthMismatch { peer_id } if *peer_id == id("a.example")), "{kb:?}");
    assert!(tb.contains("pre-shared keys differ"), "{tb}");
    let (ka, ta) = one_failure(&net.a);
    assert!(
        matches!(ka, FailureKind::PeerRefused { notify, sent: Sent::Identities { local_id, .. } }
            if *notify == NotifyType::AUTHENTICATION_FAILED && *local_id == id("a.example")),
        "{ka:?}"
    );
    assert!(ta.contains("pre-shared key differs") && ta.contains("a.example"), "{ta}");
    assert!(net.a.ep.ike_sas().is_empty() && net.b.ep.ike_sas().is_empty());
    assert!(net.a.rec.installs.is_empty() && net.b.rec.installs.is_empty());
}

#[test]
fn initiator_id_unknown_to_responder() {
    let mut b = conn_b();
    b.remote_id = id("c.example");
    let net = run(conn_a(), b);
    let (kb, tb) = one_failure(&net.b);
    assert!(
        matches!(kb, FailureKind::PeerIdMismatch { received, expected } if *received == id("a.example") && *expected == vec![id("c.example")]),
        "{kb:?}"
    );
    assert!(tb.contains("IDi=a.example") && tb.contains("c.example"), "{tb}");
    let (ka, _) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, .. } if *notify == NotifyType::AUTHENTICATION_FAILED));
}

#[test]
fn initiator_asks_for_another_responder_id() {
    let mut a = conn_a();
    a.remote_id = id("x.example");
    let net = run(a, conn_b());
    let (kb, tb) = one_failure(&net.b);
    assert!(
        matches!(kb, FailureKind::RequestedIdMismatch { requested, ours } if *requested == id("x.example") && *ours == id("b.example")),
        "{kb:?}"
    );
    assert!(tb.contains("IDr=x.example"), "{tb}");
    let (ka, _) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, .. } if *notify == NotifyType::AUTHENTICATION_FAILED));
}

#[test]
fn responder_presents_unexpected_id() {
    // B has local id %any: it accepts the IDr A asks for but presents its
    // address (strongSwan adopts the requested one; we stay honest), which
    // A's remote_id does not accept.
    let mut b = conn_b();
    b.local_id = controlplane::identity::Identity::Any;
    let net = run(conn_a(), b);
    let (ka, ta) = one_failure(&net.a);
    assert!(
        matches!(ka, FailureKind::ResponderIdMismatch { received, expected } if *received == id(B_IP) && *expected == id("b.example")),
        "{ka:?}"
    );
    assert!(ta.contains("IDr=198.51.100.2"), "{ta}");
    assert!(net.b.rec.failures().is_empty());
}

#[test]
fn ike_proposal_mismatch_names_each_transform() {
    let mut b = conn_b();
    b.ike_proposals = ike("aes256gcm16-prfsha384-ecp256");
    let net = run(conn_a(), b);
    let (kb, tb) = one_failure(&net.b);
    let FailureKind::IkeProposalMismatch(SelectError::Mismatch(m)) = kb else { panic!("{kb:?}") };
    let types: Vec<TransformType> = m.mismatched_types().collect();
    assert_eq!(types, vec![TransformType::Encr, TransformType::Prf]);
    assert!(tb.contains("IKE proposal mismatch"), "{tb}");
    let (ka, ta) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, sent: Sent::IkeProposals(p) } if *notify == NotifyType::NO_PROPOSAL_CHOSEN && p.len() == 1));
    assert!(ta.contains("none of our IKE proposals"), "{ta}");
    assert_eq!(net.wire.len(), 2);
}

#[test]
fn dh_group_disjoint() {
    let mut b = conn_b();
    b.ike_proposals = ike("aes128gcm16-prfsha256-x25519");
    let net = run(conn_a(), b);
    let (kb, _) = one_failure(&net.b);
    let FailureKind::IkeProposalMismatch(SelectError::Mismatch(m)) = kb else { panic!("{kb:?}") };
    assert_eq!(m.mismatched_types().collect::<Vec<_>>(), vec![TransformType::Ke]);
    let (ka, _) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, .. } if *notify == NotifyType::NO_PROPOSAL_CHOSEN));
}

#[test]
fn dh_group_overlap_wrong_guess_retries() {
    let mut a = conn_a();
    a.ike_proposals = ike("aes128gcm16-prfsha256-ecp256-x25519");
    let mut b = conn_b();
    b.ike_proposals = ike("aes128gcm16-prfsha256-x25519");
    let net = run(a, b);
    assert!(net.established());
    let retry = net.a.rec.events.iter().find_map(|e| match e {
        Event::KeGroupRetry { sent, requested, .. } => Some((*sent, *requested)),
        _ => None,
    });
    assert_eq!(retry, Some((DhGroup::Ecp256, DhGroup::Curve25519)));
    let asked = net.b.rec.events.iter().find_map(|e| match e {
        Event::KeGroupRequested { offered, requested, .. } => Some((*offered, *requested)),
        _ => None,
    });
    assert_eq!(asked, Some((DhGroup::Ecp256, DhGroup::Curve25519)));
    assert!(net.a.rec.failures().is_empty() && net.b.rec.failures().is_empty());
    assert_eq!(net.wire.len(), 6);
}

#[test]
fn esp_proposal_mismatch_keeps_ike_sa() {
    let mut b = conn_b();
    b.esp_proposals = esp("chacha20poly1305");
    let net = run(conn_a(), b);
    assert!(net.established(), "IKE SA stays up (RFC 7296 §2.21.2)");
    let (kb, tb) = one_failure(&net.b);
    let FailureKind::ChildProposalMismatch(SelectError::Mismatch(m)) = kb else { panic!("{kb:?}") };
    assert_eq!(m.mismatched_types().collect::<Vec<_>>(), vec![TransformType::Encr]);
    assert!(tb.contains("ESP proposal mismatch"), "{tb}");
    let (ka, ta) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, sent: Sent::ChildProposals(_) } if *notify == NotifyType::NO_PROPOSAL_CHOSEN));
    assert!(ta.contains("ESP proposals"), "{ta}");
    assert!(net.a.rec.installs.is_empty() && net.b.rec.installs.is_empty());
}

#[test]
fn traffic_selectors_disjoint() {
    let mut b = conn_b();
    b.local_ts = ts("10.3.0.0/24");
    let net = run(conn_a(), b);
    assert!(net.established());
    let (kb, tb) = one_failure(&net.b);
    assert!(
        matches!(kb, FailureKind::TsUnacceptable { offered_r, allowed_local, .. } if *offered_r == ts("10.2.0.0/24") && *allowed_local == ts("10.3.0.0/24")),
        "{kb:?}"
    );
    assert!(tb.contains("10.2.0.0/24") && tb.contains("10.3.0.0/24"), "{tb}");
    let (ka, ta) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, sent: Sent::Selectors { .. } } if *notify == NotifyType::TS_UNACCEPTABLE));
    assert!(ta.contains("TSi=10.1.0.0/24"), "{ta}");
}

#[test]
fn no_connection_for_address() {
    let mut b = conn_b();
    b.remote_addr = Some("198.51.100.99".parse().expect("ip"));
    let net = run(conn_a(), b);
    let (kb, _) = one_failure(&net.b);
    assert!(matches!(kb, FailureKind::NoConnection));
    let (ka, _) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::PeerRefused { notify, .. } if *notify == NotifyType::NO_PROPOSAL_CHOSEN));
}

#[test]
fn responder_silent() {
    let mut net = Net::new(conn_a(), conn_b());
    net.filter = Box::new(|_, d| if d.sender == Side::B { Verdict::Drop } else { Verdict::Deliver });
    net.initiate(Side::A);
    net.run_for(std::time::Duration::from_secs(600));
    let (ka, ta) = one_failure(&net.a);
    assert!(matches!(ka, FailureKind::NoResponse { retransmits: 5 }));
    assert!(ta.contains("IKE_SA_INIT") && ta.contains("198.51.100.2:500"), "{ta}");
    // 1 + 5 retransmits, exponential backoff 2s × 1.8^n.
    assert_eq!(net.wire.iter().filter(|d| d.sender == Side::A).count(), 6);
}
