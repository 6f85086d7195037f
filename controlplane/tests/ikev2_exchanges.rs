//! Whole exchanges between two in-memory endpoints (RFC 7296).
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::Duration;

use controlplane::ikev2::{Directions, DownReason, Event, Role};
use ikev2_common::*;

#[test]
fn ike_sa_and_first_child_for_every_suite() {
    for (ikep, espp) in [
        ("aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
        ("aes256gcm16-prfsha384-x25519", "aes256gcm16"),
        ("chacha20poly1305-prfsha512-modp2048", "chacha20poly1305-esn"),
        ("aes256gcm16-prfsha256-ecp384", "aes128gcm16"),
    ] {
        let (mut a, mut b) = (conn_a(), conn_b());
        a.ike_proposals = ike(ikep);
        b.ike_proposals = ike(ikep);
        a.esp_proposals = esp(espp);
        b.esp_proposals = esp(espp);
        let mut net = Net::new(a, b);
        net.initiate(Side::A);
        net.settle();
        assert!(net.established(), "{ikep}: {:#?} {:#?}", net.a.rec.events, net.b.rec.events);
        net.assert_one_matching_child();
        net.assert_keys_match();
        for p in [&net.a, &net.b] {
            assert!(p.rec.failures().is_empty(), "{ikep}: {:?}", p.rec.failures());
            assert_eq!(p.rec.installs.len(), 1);
            let i = &p.rec.installs[0];
            assert_eq!(i.directions, Directions::Both);
            assert!(i.encap.is_none(), "no NAT, no encapsulation");
            assert_eq!(i.esn, espp.contains("-esn"));
            assert_eq!(p.rec.count(|e| matches!(e, Event::IkeSaUp { .. })), 1);
        }
        // Exactly four messages: IKE_SA_INIT and IKE_AUTH, no retransmits.
        assert_eq!(net.wire.len(), 4, "{ikep}");
    }
}

#[test]
fn responder_narrows_selectors() {
    let mut b = conn_b();
    b.remote_ts = ts("10.1.0.0/25");
    let mut net = Net::new(conn_a(), b);
    net.initiate(Side::A);
    net.settle();
    let ia = &net.a.rec.installs[0];
    assert_eq!(ia.local_ts, ts("10.1.0.0/25"));
    assert_eq!(ia.remote_ts, ts("10.2.0.0/24"));
    assert_eq!(net.b.rec.installs[0].remote_ts, ts("10.1.0.0/25"));
}

#[test]
fn delete_child_and_ike_from_either_side() {
    for deleter in [Side::A, Side::B] {
        let mut net = Net::new(conn_a(), conn_b());
        net.initiate(Side::A);
        net.settle();
        let now = net.now;
        let p = net.peer(deleter);
        let sa = p.ep.ike_sas()[0].clone();
        let acts = p.ep.delete_child(sa.id, sa.children[0].id, now);
        net.absorb(deleter, acts);
        net.settle();
        assert_eq!(net.a.rec.removes.len(), 1, "{deleter:?}");
        assert_eq!(net.b.rec.removes.len(), 1);
        assert!(net.established(), "IKE SA stays");
        let now = net.now;
        let p = net.peer(deleter);
        let acts = p.ep.delete_ike(sa.id, now);
        net.absorb(deleter, acts);
        net.settle();
        assert!(net.a.ep.ike_sas().is_empty() && net.b.ep.ike_sas().is_empty());
        let reason = |p: &Peer| {
            p.rec.events.iter().find_map(|e| if let Event::IkeSaDown { reason, .. } = e { Some(reason.clone()) } else { None })
        };
        let (mine, theirs) = match deleter {
            Side::A => (reason(&net.a), reason(&net.b)),
            Side::B => (reason(&net.b), reason(&net.a)),
        };
        assert_eq!(mine, Some(DownReason::DeletedLocally));
        assert_eq!(theirs, Some(DownReason::DeletedByPeer));
    }
}

#[test]
fn delete_ike_removes_its_children_on_both_sides() {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    let now = net.now;
    let id = net.b.ep.ike_sas()[0].id;
    let acts = net.b.ep.delete_ike(id, now);
    net.absorb(Side::B, acts);
    net.settle();
    assert_eq!(net.a.rec.removes.len(), 1);
    assert_eq!(net.b.rec.removes.len(), 1);
    assert_eq!(net.a.rec.removes[0].inbound_spi, net.a.rec.installs[0].inbound_spi);
}

#[test]
fn liveness_check_keeps_the_sa() {
    let mut a = conn_a();
    a.dpd_interval = Some(Duration::from_secs(30));
    let mut net = Net::new(a, conn_b());
    net.initiate(Side::A);
    net.settle();
    let before = net.wire.len();
    net.run_for(Duration::from_secs(95));
    // Three empty INFORMATIONAL requests and their responses.
    assert_eq!(net.wire.len() - before, 6);
    assert!(net.established());
    assert!(net.a.rec.failures().is_empty());
}

#[test]
fn dead_peer_detected_by_liveness() {
    let mut a = conn_a();
    a.dpd_interval = Some(Duration::from_secs(30));
    let mut net = Net::new(a, conn_b());
    net.initiate(Side::A);
    net.settle();
    // B goes silent.
    net.filter = Box::new(|_, d| if d.sender == Side::B { Verdict::Drop } else { Verdict::Deliver });
    net.run_for(Duration::from_secs(600));
    let down = net.a.rec.events.iter().find_map(|e| if let Event::IkeSaDown { reason, .. } = e { Some(reason.clone()) } else { None });
    assert_eq!(down, Some(DownReason::PeerUnreachable { to: addr(B_IP, 500), retransmits: 5 }));
    assert_eq!(net.a.rec.removes.len(), 1, "child removed with the IKE SA");
    let text = net.a.rec.failures()[0].to_string();
    assert!(text.contains("no response after 5 retransmits") && text.contains(B_IP), "{text}");
}

#[test]
fn cookie_round_trip() {
    let mut net = Net::new(conn_a(), conn_b());
    net.b.ep.set_cookie_threshold(Some(0));
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    assert_eq!(net.a.rec.count(|e| matches!(e, Event::CookieRetry { .. })), 1);
    assert_eq!(net.wire.len(), 6, "one extra round trip");
}

#[test]
fn nat_detected_moves_to_4500_and_encapsulates() {
    let mut b = conn_b();
    b.remote_addr = Some(NAT_IP.parse().expect("ip"));
    let mut net = Net::new(conn_a(), b);
    net.nat = true;
    net.initiate(Side::A);
    net.settle();
    assert!(net.established(), "{:#?}", net.b.rec.events);
    // IKE_AUTH and later on 4500 with the non-ESP marker.
    assert!(net.wire[2..].iter().all(|d| d.to.port() == 4500 || d.to.port() == 34500), "{:?}", net.wire);
    assert!(net.wire[2].payload.starts_with(&[0, 0, 0, 0]));
    let ea = net.a.rec.installs[0].encap.expect("A encapsulates");
    assert_eq!((ea.local_port, ea.remote_port), (4500, 4500));
    let eb = net.b.rec.installs[0].encap.expect("B encapsulates");
    assert_eq!((eb.local_port, eb.remote_port), (4500, 34500), "B answers the NAT's mapped port");
    let nat = |p: &Peer| p.rec.events.iter().find_map(|e| if let Event::IkeSaUp { nat, .. } = e { Some(*nat) } else { None });
    let (na, nb) = (nat(&net.a).expect("A up"), nat(&net.b).expect("B up"));
    assert!(na.local_behind_nat && !na.remote_behind_nat);
    assert!(nb.remote_behind_nat && !nb.local_behind_nat);
}

#[test]
fn peer_faking_nat_gets_encapsulation() {
    // B behaves like strongSwan with kernel-libipsec: a bogus NAT source hash.
    let mut b = conn_b();
    b.force_encap = true;
    let mut net = Net::new(conn_a(), b);
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    let nat = net.a.rec.events.iter().find_map(|e| if let Event::IkeSaUp { nat, .. } = e { Some(*nat) } else { None });
    assert!(nat.expect("up").remote_behind_nat);
    assert_eq!(net.wire[2].to.port(), 4500);
    assert!(net.a.rec.installs[0].encap.is_some() && net.b.rec.installs[0].encap.is_some());
}

#[test]
fn roles_reported() {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    let role = |p: &Peer| p.rec.events.iter().find_map(|e| if let Event::IkeSaUp { role, .. } = e { Some(*role) } else { None });
    assert_eq!(role(&net.a), Some(Role::Initiator));
    assert_eq!(role(&net.b), Some(Role::Responder));
}

#[test]
fn start_actions_and_passive() {
    use controlplane::ikev2::{Action, Endpoint, StartAction};
    use controlplane::ikev2::crypto::DeterministicEntropy;
    let now = std::time::Instant::now();
    let sends = |acts: &[Action]| acts.iter().filter(|a| matches!(a, Action::Send { .. })).count();
    // start: initiates when added.
    let mut a = conn_a();
    a.start_action = StartAction::Start;
    let mut ep = Endpoint::new(Box::new(DeterministicEntropy::new(b"s")));
    let (_, acts) = ep.add_connection(a, now);
    assert_eq!(sends(&acts), 1);
    // trap: initiates on the first acquire only.
    let mut a = conn_a();
    a.start_action = StartAction::Trap;
    let mut ep = Endpoint::new(Box::new(DeterministicEntropy::new(b"t")));
    let (id, acts) = ep.add_connection(a, now);
    assert_eq!(sends(&acts), 0);
    assert_eq!(sends(&ep.acquire(id, now)), 1);
    assert_eq!(sends(&ep.acquire(id, now)), 0, "an IKE SA is already being set up");
    // passive: never initiates, not even on acquire.
    let mut a = conn_a();
    a.passive = true;
    a.start_action = StartAction::Start;
    let mut ep = Endpoint::new(Box::new(DeterministicEntropy::new(b"p")));
    let (id, acts) = ep.add_connection(a, now);
    assert_eq!(sends(&acts) + sends(&ep.acquire(id, now)), 0);
}

#[test]
fn initial_contact_replaces_stale_sa() {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    let old = net.b.ep.ike_sas()[0].id;
    // A reboots: a new endpoint (new SPIs and nonces) initiates again.
    let now = net.now;
    let mut fresh = controlplane::ikev2::Endpoint::new(Box::new(controlplane::ikev2::crypto::DeterministicEntropy::new(b"reboot")));
    fresh.add_connection(conn_a(), now);
    net.a.ep = fresh;
    net.initiate(Side::A);
    net.settle();
    let sas = net.b.ep.ike_sas();
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_ne!(sas[0].id, old);
    let reason = net.b.rec.events.iter().find_map(|e| if let Event::IkeSaDown { reason, .. } = e { Some(reason.clone()) } else { None });
    assert_eq!(reason, Some(DownReason::InitialContact));
    assert_eq!(net.b.rec.removes.len(), 1, "the stale Child SA is removed");
    net.assert_one_matching_child();
}

/// DPD action hold (strongSwan's `dpd_action = trap`): a dead peer's SAs are
/// removed as with clear, nothing is re-initiated, and `Event::Held` tells the
/// manager to put the connection's policies back to trap; the next packet
/// (`acquire`) negotiates again once the peer is back. Clear emits no `Held`.
#[test]
fn dpd_hold_removes_the_sas_then_the_next_acquire_renegotiates() {
    use controlplane::ikev2::{DpdAction, StartAction};
    for action in [DpdAction::Clear, DpdAction::Hold] {
        let mut a = conn_a();
        a.dpd_interval = Some(Duration::from_secs(30));
        a.dpd_action = action;
        a.start_action = StartAction::Trap;
        let mut net = Net::new(a, conn_b());
        net.settle();
        assert!(net.wire.is_empty(), "trap: nothing sent before the first packet");
        let (conn, now) = (net.a.conn, net.now);
        let acts = net.a.ep.acquire(conn, now);
        net.absorb(Side::A, acts);
        net.settle();
        assert!(net.established(), "{action:?}: acquire negotiates");
        net.filter = Box::new(|_, d| if d.sender == Side::B { Verdict::Drop } else { Verdict::Deliver });
        net.run_for(Duration::from_secs(600));
        let held: Vec<_> = net.a.rec.events.iter().filter_map(|e| if let Event::Held { connection } = e { Some(connection.clone()) } else { None }).collect();
        assert_eq!(net.a.rec.removes.len(), 1, "{action:?}: child removed with the IKE SA");
        assert!(net.a.ep.ike_sas().is_empty(), "{action:?}: nothing re-initiated");
        if action == DpdAction::Clear {
            assert!(held.is_empty(), "clear does not trap");
            continue;
        }
        assert_eq!(held, [net.a.ep.connection(conn).expect("conn").name.clone()]);
        // The peer is back; the next packet hits the trap.
        net.filter = Box::new(|_, _| Verdict::Deliver);
        let now = net.now;
        let acts = net.a.ep.acquire(conn, now);
        net.absorb(Side::A, acts);
        net.settle();
        assert_eq!(net.a.ep.ike_sas().iter().filter(|s| s.established).count(), 1, "re-negotiated after hold");
        assert_eq!(net.a.rec.installs.len(), 2);
    }
}
