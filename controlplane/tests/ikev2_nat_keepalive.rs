//! NAT keepalives (RFC 3948 §2.3, RFC 7296 §2.23) between two in-memory
//! engines on a virtual clock: only the side whose NAT detection says it is
//! behind a NAT sends them, at the configured interval, while the IKE SA is
//! established.
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::Duration;

use controlplane::ikev2::DEFAULT_NAT_KEEPALIVE;
use ikev2_common::*;

fn up(a: controlplane::ikev2::ConnectionConfig, mut b: controlplane::ikev2::ConnectionConfig, nat: bool) -> Net {
    if nat {
        // B sees A's NAT's public address.
        b.remote_addr = Some(NAT_IP.parse().expect("ip"));
    }
    let mut net = Net::new(a, b);
    net.nat = nat;
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    net
}

/// Gaps between consecutive keepalives of a side, first one measured from the start.
fn gaps(net: &Net, p: &Peer) -> Vec<Duration> {
    let mut last = net.start;
    p.rec
        .keepalives
        .iter()
        .map(|(t, _, _)| {
            let g = t.duration_since(last);
            last = *t;
            g
        })
        .collect()
}

#[test]
fn only_the_natted_side_sends_at_the_interval() {
    let mut net = up(conn_a(), conn_b(), true);
    net.run_for(Duration::from_secs(65));
    assert_eq!(gaps(&net, &net.a), vec![DEFAULT_NAT_KEEPALIVE; 3], "A (behind the NAT): at 20 s, 40 s, 60 s");
    assert!(net.b.rec.keepalives.is_empty(), "B sees A's NAT but is not behind one: {:?}", net.b.rec.keepalives);
    // From A's own address to B, both on the NAT-T port the IKE SA floated to.
    for (_, from, to) in &net.a.rec.keepalives {
        assert_eq!((*from, *to), (addr(A_IP, 4500), addr(B_IP, 4500)));
    }
}

#[test]
fn configured_interval_and_off() {
    let mut a = conn_a();
    a.nat_keepalive = Some(Duration::from_secs(2));
    let mut net = up(a, conn_b(), true);
    net.run_for(Duration::from_secs(7));
    assert_eq!(gaps(&net, &net.a), vec![Duration::from_secs(2); 3]);

    let mut a = conn_a();
    a.nat_keepalive = None;
    let mut net = up(a, conn_b(), true);
    net.run_for(Duration::from_secs(65));
    assert!(net.a.rec.keepalives.is_empty());
}

#[test]
fn none_without_a_nat_even_with_forced_encapsulation() {
    let mut net = up(conn_a(), conn_b(), false);
    net.run_for(Duration::from_secs(65));
    assert!(net.a.rec.keepalives.is_empty() && net.b.rec.keepalives.is_empty());
    // A fakes a NAT (as strongSwan with kernel-libipsec does): B thinks A is
    // behind one, A knows it is not; neither needs to keep a mapping alive.
    let mut a = conn_a();
    a.force_encap = true;
    let mut net = up(a, conn_b(), false);
    net.run_for(Duration::from_secs(65));
    assert!(net.a.rec.keepalives.is_empty() && net.b.rec.keepalives.is_empty());
    assert!(net.a.rec.installs[0].encap.is_some(), "ESP is UDP-encapsulated all the same");
}

#[test]
fn stop_when_the_ike_sa_is_gone() {
    let mut net = up(conn_a(), conn_b(), true);
    net.run_for(Duration::from_secs(25));
    assert_eq!(net.a.rec.keepalives.len(), 1);
    let now = net.now;
    let sa = net.a.ep.ike_sas()[0].id;
    let acts = net.a.ep.delete_ike(sa, now);
    net.absorb(Side::A, acts);
    net.run_for(Duration::from_secs(100));
    assert!(net.a.ep.ike_sas().is_empty());
    assert_eq!(net.a.rec.keepalives.len(), 1, "none after the delete");
}
