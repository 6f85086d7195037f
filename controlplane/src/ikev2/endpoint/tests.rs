//! Engine tests that need a misbehaving peer: the peer's messages are built
//! with its real IKE SA keys (crate-internal access), so they pass integrity
//! checks and reach the exchange logic under test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::ikev2::crypto::DeterministicEntropy;
use crate::ikev2::wire::NotifyPayload;
use crate::proposal::{DhGroup, Proposal, Protocol};
use crate::selector::TrafficSelector;

fn conn(name: &str, local: &str, remote: &str, lts: &str, rts: &str, esp: &str) -> ConnectionConfig {
    let sock = |s: &str| SocketAddr::new(s.parse().expect("ip"), 500);
    ConnectionConfig::new(
        name,
        sock(local),
        Some(sock(remote)),
        local.parse().expect("id"),
        remote.parse().expect("id"),
        b"engine unit test",
        vec![Proposal::parse_supported(Protocol::Ike, "aes128gcm16-prfsha256-x25519").expect("ike")],
        vec![Proposal::parse_supported(Protocol::Esp, esp).expect("esp")],
        vec![TrafficSelector::from_cidr(lts).expect("ts")],
        vec![TrafficSelector::from_cidr(rts).expect("ts")],
    )
}

fn sends(acts: &[Action]) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    acts.iter().filter_map(|a| if let Action::Send { from, to, bytes } = a { Some((*from, *to, bytes.clone())) } else { None }).collect()
}

/// A and B with an established IKE SA and one Child SA (A initiated).
fn pair(esp_a: &str, esp_b: &str, now: Instant) -> (Endpoint, Endpoint) {
    let mut a = Endpoint::new(Box::new(DeterministicEntropy::new(b"a")));
    let mut b = Endpoint::new(Box::new(DeterministicEntropy::new(b"b")));
    a.add_connection(conn("a", "198.51.100.1", "198.51.100.2", "10.1.0.0/24", "10.2.0.0/24", esp_a), now);
    b.add_connection(conn("b", "198.51.100.2", "198.51.100.1", "10.2.0.0/24", "10.1.0.0/24", esp_b), now);
    let mut to_b = sends(&a.initiate(ConnectionId(0), now));
    for _ in 0..4 {
        let mut to_a = Vec::new();
        for (from, to, m) in to_b.drain(..) {
            to_a.extend(sends(&b.handle_datagram(to, from, &m, now)));
        }
        for (from, to, m) in to_a {
            to_b.extend(sends(&a.handle_datagram(to, from, &m, now)));
        }
    }
    assert!(a.ike_sas().iter().all(|s| s.established) && b.ike_sas().iter().all(|s| s.established));
    (a, b)
}

/// A responder that answers every Child rekey with INVALID_KE_PAYLOAD naming
/// the other of our two PFS groups: we follow it 3 times, then give up with
/// a failure naming INVALID_KE_PAYLOAD, and do not try again before the
/// Child SA's hard lifetime (RFC 7296 §1.3 allows the retry, not a loop).
#[test]
fn child_rekey_invalid_ke_retries_are_capped_at_three() {
    let now = Instant::now();
    let (mut a, mut b) = pair("aes128gcm16-ecp256-x25519", "aes128gcm16-ecp256-x25519", now);
    let sa = a.ike_sas()[0].clone();
    let child = sa.children[0].clone();
    let mut acts = a.rekey_child(sa.id, child.id, now);
    let mut requests = 0;
    let mut retries = Vec::new();
    let mut failures = Vec::new();
    // Bounded: a loop is what this test is about.
    for _ in 0..10 {
        let Some((from, to, request)) = sends(&acts).pop() else { break };
        requests += 1;
        let h = Header::new_checked(&request).expect("request").repr();
        assert_eq!(h.exchange, ExchangeType::CreateChildSa);
        // The group A did not send this time (A starts with ecp256, the first).
        let want = if requests % 2 == 1 { DhGroup::Curve25519 } else { DhGroup::Ecp256 };
        let n = NotifyPayload::new(NotifyType::INVALID_KE_PAYLOAD, want.code().to_be_bytes().to_vec());
        let bsa = b.sas.values_mut().next().expect("B's IKE SA");
        let reply = bsa.build(ExchangeType::CreateChildSa, h.message_id, true, &[Payload::Notify(n)]).expect("sealed reply");
        acts = a.handle_datagram(from, to, &reply, now);
        for act in &acts {
            match act {
                Action::Event(Event::KeGroupRetry { sent, requested, .. }) => retries.push((*sent, *requested)),
                Action::Event(Event::Failure(f)) => failures.push(f.kind.clone()),
                _ => {}
            }
        }
    }
    assert_eq!(requests, 4, "the first request and 3 retries");
    assert_eq!(
        retries,
        vec![(DhGroup::Ecp256, DhGroup::Curve25519), (DhGroup::Curve25519, DhGroup::Ecp256), (DhGroup::Ecp256, DhGroup::Curve25519)]
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(matches!(&failures[0], FailureKind::PeerRefused { notify: NotifyType::INVALID_KE_PAYLOAD, .. }), "{failures:?}");
    // The old Child SA still carries traffic; no new rekey until its hard lifetime.
    let info = &a.ike_sas()[0];
    assert_eq!(info.children.iter().filter(|c| c.active).map(|c| c.id).collect::<Vec<_>>(), vec![child.id]);
    let soon = now + Duration::from_secs(30 * 60);
    assert!(sends(&a.handle_timeout(soon)).is_empty(), "no rekey loop on the timer either");
}
