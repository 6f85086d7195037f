//! INVALID_SPI (RFC 7296 §2.21.4, §3.10.1) between two in-memory engines:
//! one side tells the other that ESP arrived on an SPI it does not know; the
//! other side receives the INFORMATIONAL request, answers it, and reports
//! which of its Child SAs (if any) sends with that SPI.
#![forbid(unsafe_code)]

mod ikev2_common;

use controlplane::ikev2::{Event, Spi};
use ikev2_common::*;

fn up() -> Net {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    net
}

fn reports(p: &Peer) -> Vec<(u32, bool)> {
    p.rec
        .events
        .iter()
        .filter_map(|e| if let Event::PeerInvalidSpi { spi, child, .. } = e { Some((spi.0, child.is_some())) } else { None })
        .collect()
}

fn notify(net: &mut Net, side: Side, spi: u32) -> usize {
    let now = net.now;
    let p = net.peer(side);
    let sa = p.ep.ike_sas()[0].id;
    let acts = p.ep.notify_invalid_spi(sa, Spi(spi), now);
    let before = net.wire.len();
    net.absorb(side, acts);
    net.settle();
    net.wire.len() - before
}

#[test]
fn peer_receives_invalid_spi_and_names_its_child() {
    let mut net = up();
    // B sends ESP on A's inbound SPI; A pretends to have lost that SA.
    let (a_inbound, _) = net.active_children(Side::A)[0];
    assert_eq!(notify(&mut net, Side::A, a_inbound), 2, "one INFORMATIONAL request and its response");
    assert_eq!(reports(&net.b), vec![(a_inbound, true)], "B names its Child SA sending with that SPI");
    // An SPI nobody uses: still delivered, no Child SA named.
    assert_eq!(notify(&mut net, Side::B, 0x0bad_0001), 2);
    assert_eq!(reports(&net.a), vec![(0x0bad_0001, false)]);
    for p in [&net.a, &net.b] {
        assert!(p.rec.failures().is_empty(), "{:?}", p.rec.failures());
        assert_eq!(p.ep.ike_sas().len(), 1, "nothing torn down by an unauthenticated ESP SPI");
    }
    net.assert_one_matching_child();
}

#[test]
fn not_sent_before_the_ike_sa_is_established() {
    let mut net = Net::new(conn_a(), conn_b());
    net.initiate(Side::A);
    // IKE_SA_INIT request only: A's SA is not established yet.
    let now = net.now;
    let sa = net.a.ep.ike_sas()[0].id;
    let acts = net.a.ep.notify_invalid_spi(sa, Spi(0x1234), now);
    assert!(acts.is_empty(), "{acts:?}");
}
