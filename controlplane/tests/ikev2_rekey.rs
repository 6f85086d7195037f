//! CREATE_CHILD_SA: Child and IKE rekeys (with and without PFS),
//! make-before-break action order, collisions (RFC 7296 §2.8.1), lifetimes.
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::Duration;

use controlplane::ikev2::{DownReason, Event, Lifetime};
use ikev2_common::*;

fn up() -> Net {
    up_with(conn_a(), conn_b())
}

fn up_with(a: controlplane::ikev2::ConnectionConfig, b: controlplane::ikev2::ConnectionConfig) -> Net {
    let mut net = Net::new(a, b);
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    net
}

fn rekey_child(net: &mut Net, side: Side) {
    let now = net.now;
    let p = net.peer(side);
    let sa = p.ep.ike_sas()[0].clone();
    let child = sa.children.iter().find(|c| c.active).expect("child").id;
    let acts = p.ep.rekey_child(sa.id, child, now);
    net.absorb(side, acts);
}

fn down_reasons(p: &Peer) -> Vec<DownReason> {
    p.rec.events.iter().filter_map(|e| if let Event::ChildSaDown { reason, .. } = e { Some(reason.clone()) } else { None }).collect()
}

#[test]
fn child_rekey_make_before_break_order() {
    for pfs in [false, true] {
        let (mut a, mut b) = (conn_a(), conn_b());
        if pfs {
            a.esp_proposals = esp("aes128gcm16-x25519");
            b.esp_proposals = esp("aes128gcm16-x25519");
        }
        let mut net = up_with(a, b);
        let old_a = net.a.rec.installs[0].inbound_spi;
        let old_b = net.b.rec.installs[0].inbound_spi;
        rekey_child(&mut net, Side::A);
        net.settle();
        net.assert_one_matching_child();
        net.assert_keys_match();
        // Initiator of the rekey: new inbound, then the outbound switch;
        // the old SA goes after the grace time, not before.
        let after_setup: Vec<&String> = net.a.rec.order.iter().filter(|o| !o.starts_with("send")).skip(1).collect();
        assert_eq!(after_setup.len(), 2, "{after_setup:?}");
        assert!(after_setup[0].starts_with("install:InboundOnly") && after_setup[1].starts_with("install:OutboundOnly"), "{after_setup:?}");
        assert!(net.a.rec.removes.is_empty() && net.b.rec.removes.is_empty(), "old SAs kept for the grace time");
        // Responder: inbound first (when answering), outbound only once the
        // old SA is deleted.
        let b_order: Vec<&String> = net.b.rec.order.iter().filter(|o| !o.starts_with("send")).skip(1).collect();
        assert!(b_order[0].starts_with("install:InboundOnly") && b_order[1].starts_with("install:OutboundOnly"), "{b_order:?}");
        net.run_for(Duration::from_secs(3));
        assert_eq!(net.a.rec.removes.len(), 1);
        assert_eq!(net.a.rec.removes[0].inbound_spi, old_a);
        assert_eq!(net.b.rec.removes[0].inbound_spi, old_b);
        assert_eq!(down_reasons(&net.a), vec![DownReason::Rekeyed]);
        assert_eq!(down_reasons(&net.b), vec![DownReason::Rekeyed]);
        // The rekeyed SA says which one it replaced.
        assert!(net.a.rec.installs[1].replaces.is_some());
        // PFS: the exchange carried KE payloads (bigger than without).
        let create_child_len = net.wire[4].payload.len();
        assert_eq!(create_child_len > 200, pfs, "CREATE_CHILD_SA size {create_child_len}");
    }
}

#[test]
fn child_rekey_by_responder() {
    let mut net = up();
    rekey_child(&mut net, Side::B);
    net.run_for(Duration::from_secs(3));
    net.assert_one_matching_child();
    net.assert_keys_match();
    assert_eq!(net.a.rec.removes.len(), 1);
    assert_eq!(net.b.rec.removes.len(), 1);
}

#[test]
fn child_rekey_collision_leaves_one_pair() {
    let mut losers = std::collections::BTreeSet::new();
    for seeds in [(b"x1".as_slice(), b"y1".as_slice()), (b"x2", b"y2"), (b"x3", b"y3"), (b"x4", b"y4"), (b"x5", b"y5"), (b"x6", b"y6")] {
        let mut net = Net::with_seeds(conn_a(), conn_b(), seeds.0, seeds.1);
        net.initiate(Side::A);
        net.settle();
        // Both ask before either request is delivered.
        rekey_child(&mut net, Side::A);
        rekey_child(&mut net, Side::B);
        net.run_for(Duration::from_secs(30));
        net.assert_one_matching_child();
        // Exactly one side deleted a redundant SA, and only one.
        let collisions = down_reasons(&net.a).iter().chain(down_reasons(&net.b).iter()).filter(|r| **r == DownReason::RekeyCollision).count();
        assert_eq!(collisions, 1, "{:?} {:?}", down_reasons(&net.a), down_reasons(&net.b));
        losers.insert(if down_reasons(&net.a).contains(&DownReason::RekeyCollision) { "A" } else { "B" });
        assert!(net.a.rec.failures().is_empty() && net.b.rec.failures().is_empty());
        // Every SA installed on a side is gone except the survivor.
        for s in [Side::A, Side::B] {
            let p = net.peer(s);
            let live: Vec<u32> = p.rec.installs.iter().map(|i| i.inbound_spi.0).filter(|spi| !p.rec.removes.iter().any(|r| r.inbound_spi.0 == *spi)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            assert_eq!(live.len(), 1, "{s:?} live inbound SAs {live:x?}");
        }
    }
    // The nonces decide: over these seeds each side loses at least once.
    assert_eq!(losers.len(), 2, "{losers:?}");
}

#[test]
fn ike_rekey_keeps_children() {
    let mut net = up();
    let now = net.now;
    let old = net.a.ep.ike_sas()[0].id;
    let acts = net.a.ep.rekey_ike(old, now);
    net.absorb(Side::A, acts);
    net.settle();
    let (sa_a, sa_b) = (net.a.ep.ike_sas(), net.b.ep.ike_sas());
    assert_eq!(sa_a.len(), 1, "{sa_a:?}");
    assert_eq!(sa_b.len(), 1);
    assert_ne!(sa_a[0].id, old);
    net.assert_one_matching_child();
    assert!(net.a.rec.removes.is_empty() && net.b.rec.removes.is_empty(), "children survive an IKE rekey");
    let rekeyed = net.b.rec.events.iter().any(|e| matches!(e, Event::IkeSaUp { rekey_of: Some(_), .. }));
    assert!(rekeyed);
    // The new IKE SA works: rekey the child over it, from B.
    rekey_child(&mut net, Side::B);
    net.run_for(Duration::from_secs(3));
    net.assert_one_matching_child();
    net.assert_keys_match();
}

#[test]
fn ike_rekey_collision_leaves_one_ike_sa() {
    for seeds in [(b"p1".as_slice(), b"q1".as_slice()), (b"p2", b"q2"), (b"p3", b"q3")] {
        let mut net = Net::with_seeds(conn_a(), conn_b(), seeds.0, seeds.1);
        net.initiate(Side::A);
        net.settle();
        let now = net.now;
        let ia = net.a.ep.ike_sas()[0].id;
        let ib = net.b.ep.ike_sas()[0].id;
        let acts = net.a.ep.rekey_ike(ia, now);
        net.absorb(Side::A, acts);
        let acts = net.b.ep.rekey_ike(ib, now);
        net.absorb(Side::B, acts);
        net.run_for(Duration::from_secs(30));
        let (sa_a, sa_b) = (net.a.ep.ike_sas(), net.b.ep.ike_sas());
        assert_eq!(sa_a.len(), 1, "{sa_a:#?}");
        assert_eq!(sa_b.len(), 1, "{sa_b:#?}");
        net.assert_one_matching_child();
        assert!(net.a.rec.removes.is_empty() && net.b.rec.removes.is_empty());
        rekey_child(&mut net, Side::A);
        net.run_for(Duration::from_secs(3));
        net.assert_one_matching_child();
    }
}

fn short(rekey: u64, jitter: u64, life: u64) -> Lifetime {
    Lifetime { rekey: Duration::from_secs(rekey), jitter: Duration::from_secs(jitter), life: Duration::from_secs(life) }
}

#[test]
fn lifetimes_drive_rekeys() {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.child_lifetime = short(60, 10, 80);
        c.ike_lifetime = short(150, 20, 200);
        c.esp_proposals = esp("aes256gcm16-ecp256");
    }
    let mut net = up_with(a, b);
    net.run_for(Duration::from_secs(1000));
    net.assert_one_matching_child();
    assert!(net.established());
    let child_rekeys = net.a.rec.count(|e| matches!(e, Event::ChildSaUp { rekey_of: Some(_), .. }));
    let ike_rekeys = net.a.rec.count(|e| matches!(e, Event::IkeSaUp { rekey_of: Some(_), .. }));
    assert!(child_rekeys >= 12, "child rekeys {child_rekeys}");
    assert!(ike_rekeys >= 5, "IKE rekeys {ike_rekeys}");
    for p in [&net.a, &net.b] {
        assert!(p.rec.failures().is_empty(), "{:?}", p.rec.failures());
        assert!(!down_reasons(p).contains(&DownReason::Expired));
        assert_eq!(p.ep.ike_sas().len(), 1);
    }
}

#[test]
fn hard_lifetime_expires_without_rekey() {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.child_lifetime = short(60, 0, 70);
        c.passive = true;
    }
    let mut net = up_with(a, b);
    net.run_for(Duration::from_secs(100));
    assert!(net.active_children(Side::A).is_empty() && net.active_children(Side::B).is_empty());
    assert_eq!(down_reasons(&net.a), vec![DownReason::Expired]);
    assert_eq!(down_reasons(&net.b), vec![DownReason::Expired]);
    assert_eq!((net.a.rec.removes.len(), net.b.rec.removes.len()), (1, 1));
    assert!(net.established(), "IKE SA stays");
}

#[test]
fn pfs_group_wrong_guess_retries_at_rekey() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_proposals = esp("aes128gcm16-ecp256-x25519");
    b.esp_proposals = esp("aes128gcm16-x25519");
    let mut net = up_with(a, b);
    rekey_child(&mut net, Side::A);
    net.run_for(Duration::from_secs(3));
    net.assert_one_matching_child();
    net.assert_keys_match();
    let retry = net.a.rec.events.iter().find_map(|e| match e {
        Event::KeGroupRetry { sent, requested, .. } => Some((*sent, *requested)),
        _ => None,
    });
    use controlplane::proposal::DhGroup;
    assert_eq!(retry, Some((DhGroup::Ecp256, DhGroup::Curve25519)));
    assert!(net.a.rec.failures().is_empty() && net.b.rec.failures().is_empty());
    assert_eq!(net.a.rec.count(|e| matches!(e, Event::ChildSaUp { rekey_of: Some(_), .. })), 1);
}
