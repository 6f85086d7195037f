//! A responder fed arbitrary datagrams: first as a fresh endpoint, then as
//! one holding a half-open IKE SA (after a valid IKE_SA_INIT) so message-ID,
//! SPI and SK handling are reached. Must never panic.
#![no_main]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use controlplane::ikev2::crypto::DeterministicEntropy;
use controlplane::ikev2::{ConnectionConfig, ConnectionId, Endpoint};
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;
use libfuzzer_sys::fuzz_target;

fn conn(local: &str, remote: &str, lid: &str, rid: &str) -> ConnectionConfig {
    let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
    ConnectionConfig::new(
        "fuzz",
        a(local),
        Some(a(remote)),
        lid.parse().expect("id"),
        rid.parse().expect("id"),
        b"psk",
        vec![Proposal::parse_supported(Protocol::Ike, "aes128gcm16-prfsha256-x25519").expect("ike")],
        vec![Proposal::parse_supported(Protocol::Esp, "aes128gcm16").expect("esp")],
        vec![TrafficSelector::from_cidr("10.2.0.0/24").expect("ts")],
        vec![TrafficSelector::from_cidr("10.1.0.0/24").expect("ts")],
    )
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let (ip_a, ip_b) = ("198.51.100.1:500", "198.51.100.2:500");
    let mut b = Endpoint::new(Box::new(DeterministicEntropy::new(b"b")));
    b.add_connection(conn(ip_b, ip_a, "b.example", "a.example"), now);
    let (la, lb): (SocketAddr, SocketAddr) = (ip_a.parse().expect("a"), ip_b.parse().expect("b"));
    let _ = b.handle_datagram(lb, la, data, now);

    // A real IKE_SA_INIT from an initiator, then the fuzz input.
    let mut a = Endpoint::new(Box::new(DeterministicEntropy::new(b"a")));
    let (c, _) = a.add_connection(conn(ip_a, ip_b, "a.example", "b.example"), now);
    let mut b = Endpoint::new(Box::new(DeterministicEntropy::new(b"b")));
    b.add_connection(conn(ip_b, ip_a, "b.example", "a.example"), now);
    let mut spi_i = [0u8; 8];
    for act in a.initiate(ConnectionId(c.0), now) {
        if let controlplane::ikev2::Action::Send { bytes, .. } = act {
            spi_i.copy_from_slice(&bytes[..8]);
            let _ = b.handle_datagram(lb, la, &bytes, now);
        }
    }
    // Splice the half-open SA's SPIs into the input so it reaches the SA.
    let mut msg = data.to_vec();
    if let (Some(sa), true) = (b.ike_sas().first(), msg.len() >= 16) {
        msg[..8].copy_from_slice(&spi_i);
        msg[8..16].copy_from_slice(&sa.id.0.to_be_bytes());
    }
    let _ = b.handle_datagram(lb, la, &msg, now);
    let _ = b.handle_timeout(now + Duration::from_secs(60));
});
