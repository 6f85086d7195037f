//! Two manager threads over loopback UDP (unprivileged ports mapped for 500
//! and 4500): setup, Child and IKE rekey, delete, shutdown with delete, and a
//! PSK mismatch reported in both managers' status. Commands go through
//! `ManagerHandle` as the control socket's will.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use controlplane::identity::Identity;
use controlplane::ikev2::{ConnectionConfig, IkeSaInfo};
use controlplane::manager::{CommandError, Manager, ManagerHandle, RecordingSaSink, SinkRecord, UdpTransport};
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;

fn conn(name: &str, local: &str, remote: &str, psk: &[u8], lts: &str, rts: &str) -> ConnectionConfig {
    let ip: fn(&str) -> IpAddr = |s| s.parse().expect("ip");
    let id = |s: &str| -> Identity { s.parse().expect("identity") };
    ConnectionConfig::new(
        name,
        SocketAddr::new(ip(local), 500),
        Some(SocketAddr::new(ip(remote), 500)),
        id(local),
        id(remote),
        psk,
        vec![Proposal::parse_supported(Protocol::Ike, "aes128gcm16-prfsha256-x25519").expect("ike")],
        vec![Proposal::parse_supported(Protocol::Esp, "aes128gcm16-x25519").expect("esp")],
        vec![TrafficSelector::from_cidr(lts).expect("ts")],
        vec![TrafficSelector::from_cidr(rts).expect("ts")],
    )
}

fn manager(c: ConnectionConfig, ports: (u16, u16)) -> (ManagerHandle, RecordingSaSink) {
    let t = UdpTransport::bind_ports(&[c.local.ip()], ports.0, ports.1).expect("bind loopback");
    let sink = RecordingSaSink::new();
    let h = Manager::spawn(vec![c], Box::new(t), Box::new(sink.clone())).expect("spawn");
    (h, sink)
}

/// Waits (bounded) until `f` holds; the bound only catches a hang.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (IKE SA, inbound SPI, outbound SPI) of the established IKE SA's active child.
fn active(h: &ManagerHandle) -> Option<(u64, u32, u32)> {
    let sas: Vec<IkeSaInfo> = h.ike_sas().expect("manager runs");
    let sa = sas.iter().find(|s| s.established)?;
    let c = sa.children.iter().find(|c| c.active)?;
    Some((sa.id.0, c.inbound_spi.0, c.outbound_spi.0))
}

fn agree(a: &ManagerHandle, b: &ManagerHandle) -> Option<(u64, u32)> {
    let (ia, ain, aout) = active(a)?;
    let (_, bin, bout) = active(b)?;
    (ain == bout && aout == bin && a.ike_sas().ok()?.len() == 1 && b.ike_sas().ok()?.len() == 1).then_some((ia, ain))
}

#[test]
fn life_cycle_over_loopback() {
    let ports = (41500, 45500);
    let (a, a_sink) = manager(conn("a", "127.0.0.1", "127.0.0.2", b"same", "10.1.0.0/24", "10.2.0.0/24"), ports);
    let (b, b_sink) = manager(conn("b", "127.0.0.2", "127.0.0.1", b"same", "10.2.0.0/24", "10.1.0.0/24"), ports);

    assert!(matches!(a.initiate("nope"), Err(CommandError::UnknownConnection { .. })));
    assert_eq!(a.terminate("a"), Err(CommandError::NoIkeSa("a".into())));
    a.initiate("a").expect("initiate");
    wait_for("setup", || agree(&a, &b).is_some());
    let (ike0, spi0) = agree(&a, &b).expect("agree");

    // The sink got the same SPIs, and a key of AES-128-GCM's size (16 + 4 salt).
    let recs = a_sink.records();
    let first = recs.lock().expect("records")[0].clone();
    match first {
        SinkRecord::Install { inbound_spi, key_len, connection, .. } => {
            assert_eq!((inbound_spi.0, key_len, connection.as_str()), (spi0, 20, "a"));
        }
        other => panic!("first record is {other:?}"),
    }

    assert_eq!(a.rekey_child("a"), Ok(1));
    wait_for("child rekey by A", || agree(&a, &b).is_some_and(|(i, s)| i == ike0 && s != spi0));
    let (_, spi1) = agree(&a, &b).expect("agree");

    assert_eq!(b.rekey_ike("b"), Ok(1));
    wait_for("IKE rekey by B", || agree(&a, &b).is_some_and(|(i, s)| i != ike0 && s == spi1));

    assert_eq!(b.terminate("b"), Ok(1));
    wait_for("delete by B reaches A", || a.ike_sas().expect("runs").is_empty() && b.ike_sas().expect("runs").is_empty());
    let removed = |s: &RecordingSaSink| s.records().lock().expect("records").iter().filter(|r| matches!(r, SinkRecord::Remove { .. })).count();
    // Setup child, rekeyed child (old one removed), the last one deleted.
    wait_for("removals recorded", || removed(&a_sink) == 2 && removed(&b_sink) == 2);

    // Up again, then A shuts down and tells B.
    a.initiate("a").expect("initiate");
    wait_for("second setup", || agree(&a, &b).is_some());
    a.shutdown(true);
    wait_for("shutdown delete reaches B", || b.ike_sas().expect("runs").is_empty());
    let st = b.status().expect("status");
    assert!(st.connections[0].last_failure.is_none(), "{st:?}");
}

#[test]
fn psk_mismatch_in_both_statuses() {
    let ports = (41600, 45600);
    let (a, _) = manager(conn("a", "127.0.0.4", "127.0.0.5", b"one key", "10.1.0.0/24", "10.2.0.0/24"), ports);
    let (b, _) = manager(conn("b", "127.0.0.5", "127.0.0.4", b"another", "10.2.0.0/24", "10.1.0.0/24"), ports);
    a.initiate("a").expect("initiate");
    let failure = |h: &ManagerHandle| h.status().expect("status").connections[0].last_failure.clone();
    wait_for("both sides report", || failure(&a).is_some() && failure(&b).is_some());
    let (fa, fb) = (failure(&a).expect("a"), failure(&b).expect("b"));
    assert!(fa.message.contains("AUTHENTICATION_FAILED") && fa.message.contains("pre-shared key"), "{}", fa.message);
    assert!(fb.message.contains("pre-shared keys differ"), "{}", fb.message);
    assert_eq!((fa.count, fb.count), (1, 1));
}
