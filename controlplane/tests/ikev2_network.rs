//! Loss, duplication and late (reordered) copies of every message of a
//! whole life cycle: setup, Child rekey, IKE rekey, delete. Each message is
//! disturbed on its own; the outcome must be the same as undisturbed.
#![forbid(unsafe_code)]

mod ikev2_common;

use std::time::Duration;

use controlplane::ikev2::Event;
use ikev2_common::*;

/// Setup, Child rekey by A (with its delete), IKE rekey by B (with its delete).
fn life_cycle(net: &mut Net) {
    net.initiate(Side::A);
    net.run_for(Duration::from_secs(120));
    let now = net.now;
    let sa = net.a.ep.ike_sas()[0].clone();
    let child = sa.children.iter().find(|c| c.active).expect("child").id;
    let acts = net.a.ep.rekey_child(sa.id, child, now);
    net.absorb(Side::A, acts);
    net.run_for(Duration::from_secs(120));
    let now = net.now;
    let id = net.b.ep.ike_sas()[0].id;
    let acts = net.b.ep.rekey_ike(id, now);
    net.absorb(Side::B, acts);
    net.run_for(Duration::from_secs(120));
}

struct Outcome {
    messages: usize,
    installs: (usize, usize),
}

fn check(net: &Net, what: &str) -> Outcome {
    assert!(net.established(), "{what}: {:#?}", net.a.rec.events);
    assert_eq!(net.a.ep.ike_sas().len(), 1, "{what}: {:#?}", net.a.ep.ike_sas());
    assert_eq!(net.b.ep.ike_sas().len(), 1, "{what}");
    net.assert_one_matching_child();
    for p in [&net.a, &net.b] {
        assert!(p.rec.failures().is_empty(), "{what}: {:#?}", p.rec.failures());
        assert_eq!(p.rec.count(|e| matches!(e, Event::ChildSaUp { .. })), 2, "{what}: one setup + one rekey");
    }
    Outcome { messages: net.wire.len(), installs: (net.a.rec.installs.len(), net.b.rec.installs.len()) }
}

#[test]
fn every_message_lost_duplicated_or_late() {
    let mut base = Net::new(conn_a(), conn_b());
    life_cycle(&mut base);
    let b = check(&base, "undisturbed");
    // IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA + delete, CREATE_CHILD_SA + delete.
    assert_eq!(b.messages, 12);
    let mut runs = 0;
    for target in 0..b.messages {
        for verdict in [Verdict::Drop, Verdict::Duplicate, Verdict::DuplicateLate] {
            let mut net = Net::new(conn_a(), conn_b());
            net.filter = Box::new(move |n, _| if n == target { verdict } else { Verdict::Deliver });
            life_cycle(&mut net);
            let what = format!("message {target} {verdict:?}");
            let o = check(&net, &what);
            assert_eq!(o.installs, b.installs, "{what}: no SA installed twice");
            let (sa, sb) = (net.a.ep.stats(), net.b.ep.stats());
            match verdict {
                Verdict::Drop => assert!(sa.retransmits_sent + sb.retransmits_sent >= 1, "{what}"),
                Verdict::Duplicate | Verdict::DuplicateLate => assert!(
                    sa.responses_replayed + sb.responses_replayed + sa.unexpected_response + sb.unexpected_response
                        + sa.unknown_spi + sb.unknown_spi + sa.bad_message_id + sb.bad_message_id >= 1,
                    "{what}: the copy was answered from cache or dropped and counted: {sa:?} {sb:?}"
                ),
                Verdict::Deliver => {}
            }
            runs += 1;
        }
    }
    assert_eq!(runs, 36);
}
