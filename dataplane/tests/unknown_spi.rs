//! ESP on SPIs the worker has no inbound SA for (issue 7, SA mismatch): an
//! unknown SPI is dropped as `no_sa` and noted as (outer source, SPI) for the
//! control plane, within a per-second budget; an SPI whose SA was removed is
//! dropped as `sa_deleted` and not noted, until the tombstone ages out.
//! Frames are built here byte by byte (RFC 791 header and checksum, RFC 3948
//! UDP encapsulation, RFC 4303 ESP header), not with the crate's emitters.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dataplane::crypto::{Algorithm, Backend};
use dataplane::drop::DropReason;
use dataplane::packet::HeapPacket;
use dataplane::route::RouteTable;
use dataplane::sa::Spi;
use dataplane::spd::IpPrefix;
use dataplane::stats::Stats;
use dataplane::wire::MacAddr;
use dataplane::worker::unknown_spi::{UnknownSpi, NOTICES_PER_SECOND};
use dataplane::worker::{
    connected_routes, install_static, Interface, RecordingIo, StaticTunnel, TsSpec, TunnelControl, Worker, WorkerConfig,
};
use zeroize::Zeroizing;

const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0];
const GW: [u8; 4] = [198, 51, 100, 2];
const PEER: [u8; 4] = [198, 51, 100, 1];
const LIVE_SPI: u32 = 0x1001;

struct Gw {
    worker: Worker<HeapPacket>,
    ctl: TunnelControl,
    stats: Stats,
}

fn gateway() -> Gw {
    let prefix = |a: [u8; 4], l| IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).expect("prefix");
    let tunnel = StaticTunnel {
        name: "peer".into(),
        algorithm: Algorithm::Aes128Gcm,
        local: IpAddr::V4(Ipv4Addr::from(GW)),
        remote: IpAddr::V4(Ipv4Addr::from(PEER)),
        udp: true,
        spi_in: Spi(LIVE_SPI),
        spi_out: Spi(0x2002),
        key_in: Zeroizing::new(vec![0x11; 20]),
        key_out: Zeroizing::new(vec![0x22; 20]),
        local_ts: vec![TsSpec::prefix(prefix([10, 2, 0, 0], 24))],
        remote_ts: vec![TsSpec::prefix(prefix([10, 1, 0, 0], 24))],
        esn: false,
        replay_window: 64,
    };
    let interfaces = vec![Interface::new(GW_MAC).with_address(IpAddr::V4(Ipv4Addr::from(GW)), 24)];
    let routes = RouteTable::build(connected_routes(&interfaces)).expect("routes");
    let config = WorkerConfig { interfaces, routes, static_neighbors: vec![] };
    let mut ctl = TunnelControl::new(16);
    install_static(&mut ctl, &[tunnel], Backend::Auto).expect("install");
    let stats = Stats::new(1, 1, 16);
    let worker = Worker::new(&config, ctl.reader(), stats.core(0).expect("core"));
    Gw { worker, ctl, stats }
}

/// An inbound SA to install by hand (a fresh gateway's).
fn template() -> std::sync::Arc<dataplane::worker::InboundTunnel> {
    gateway().ctl.inbound(Spi(LIVE_SPI)).expect("installed").arc().clone()
}

/// RFC 1071 Internet checksum.
fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 from `src` to the gateway + ESP (SPI, sequence 1, 32
/// octets of "ciphertext"), in UDP 4500 (RFC 3948) or raw (protocol 50).
fn esp_frame(src: [u8; 4], spi: u32, udp: bool) -> Vec<u8> {
    let mut esp = Vec::new();
    esp.extend_from_slice(&spi.to_be_bytes());
    esp.extend_from_slice(&1u32.to_be_bytes());
    esp.extend_from_slice(&[0xa5; 32]);
    let l4 = if udp {
        let mut u = Vec::new();
        u.extend_from_slice(&4500u16.to_be_bytes());
        u.extend_from_slice(&4500u16.to_be_bytes());
        u.extend_from_slice(&((8 + esp.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]); // no checksum (RFC 3948 §2.1 allows it over IPv4)
        u.extend_from_slice(&esp);
        u
    } else {
        esp
    };
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, if udp { 17 } else { 50 }, 0, 0];
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&GW);
    let sum = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&GW_MAC.0);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn send(gw: &mut Gw, frames: &[Vec<u8>], now_ms: u64) {
    let mut io = RecordingIo::new(|| HeapPacket::with_room(HeapPacket::DEFAULT_HEADROOM, 2048));
    gw.worker.process(0, frames.iter().map(|f| HeapPacket::from_slice(f)), &mut io, now_ms);
    assert!(io.sent.is_empty() && io.punted.is_empty(), "ESP without an SA goes nowhere");
}

fn drops(gw: &Gw, reason: DropReason) -> u64 {
    gw.stats.snapshot().drop_count(reason)
}

fn notes(gw: &Gw) -> Vec<UnknownSpi> {
    let mut v = Vec::new();
    gw.stats.drain_unknown_spi(|n| v.push(n));
    v
}

fn from_peer(spi: u32) -> UnknownSpi {
    UnknownSpi { peer: IpAddr::V4(Ipv4Addr::from(PEER)), spi }
}

#[test]
fn unknown_spi_is_dropped_and_noted_with_the_outer_source() {
    let mut gw = gateway();
    let other = [203, 0, 113, 7];
    send(&mut gw, &[esp_frame(PEER, 0xdead_beef, true), esp_frame(PEER, 0xdead_beef, false), esp_frame(other, 0x4242, true)], 0);
    assert_eq!(drops(&gw, DropReason::NoSa), 3);
    assert_eq!(drops(&gw, DropReason::SaDeleted), 0);
    let other = UnknownSpi { peer: IpAddr::V4(Ipv4Addr::from(other)), spi: 0x4242 };
    assert_eq!(notes(&gw), [from_peer(0xdead_beef), from_peer(0xdead_beef), other]);
    assert!(notes(&gw).is_empty(), "each note is handed out once");
    // The live SA's SPI is not "unknown" (the junk then fails authentication).
    send(&mut gw, &[esp_frame(PEER, LIVE_SPI, true)], 0);
    assert_eq!(drops(&gw, DropReason::NoSa), 3);
    assert_eq!(drops(&gw, DropReason::AuthFailed), 1);
    assert!(notes(&gw).is_empty());
}

#[test]
fn removed_sa_is_named_deleted_not_unknown_until_its_tombstone_ages_out() {
    let mut gw = gateway();
    let mut tx = gw.ctl.transaction();
    tx.remove_inbound(Spi(LIVE_SPI)).expect("remove");
    tx.commit().expect("commit");
    assert_eq!(gw.ctl.stats().tombstones, 1);
    send(&mut gw, &[esp_frame(PEER, LIVE_SPI, true), esp_frame(PEER, LIVE_SPI, false)], 0);
    assert_eq!(drops(&gw, DropReason::SaDeleted), 2);
    assert_eq!(drops(&gw, DropReason::NoSa), 0);
    assert!(notes(&gw).is_empty(), "a deleted SA is not reported as unknown");

    // Five minutes later the SPI is just unknown again.
    let later = Instant::now() + dataplane::sa::TOMBSTONE_MAX_AGE + Duration::from_secs(1);
    assert_eq!(gw.ctl.prune_tombstones(later).expect("prune"), 1);
    send(&mut gw, &[esp_frame(PEER, LIVE_SPI, true)], 0);
    assert_eq!(drops(&gw, DropReason::SaDeleted), 2);
    assert_eq!(drops(&gw, DropReason::NoSa), 1);
    assert_eq!(notes(&gw), [from_peer(LIVE_SPI)]);
}

#[test]
fn periodic_reclaim_ages_tombstones_out_without_other_changes() {
    let mut gw = gateway();
    gw.ctl.set_tombstone_limits(16, Duration::ZERO);
    let mut tx = gw.ctl.transaction();
    tx.remove_inbound(Spi(LIVE_SPI)).expect("remove");
    tx.commit().expect("commit");
    assert!(gw.ctl.current().was_deleted(Spi(LIVE_SPI)));
    // Older than zero as soon as the clock moved on.
    let buried = Instant::now();
    while Instant::now() == buried {
        std::hint::spin_loop();
    }
    gw.ctl.reclaim();
    assert!(!gw.ctl.current().was_deleted(Spi(LIVE_SPI)), "published without the aged tombstone");
    assert_eq!(gw.ctl.stats().tombstones, 0);
}

#[test]
fn rolled_back_removal_leaves_no_tombstone_and_reinstall_clears_it() {
    let mut gw = gateway();
    {
        let mut tx = gw.ctl.transaction();
        tx.remove_inbound(Spi(LIVE_SPI)).expect("remove");
        // dropped without commit: rolled back
    }
    assert_eq!(gw.ctl.stats().tombstones, 0);
    let mut tx = gw.ctl.transaction();
    tx.remove_inbound(Spi(LIVE_SPI)).expect("remove");
    tx.commit().expect("commit");
    assert!(gw.ctl.current().was_deleted(Spi(LIVE_SPI)));
    // The same SPI installed again (a static SA re-added): live, not deleted.
    assert_eq!(gw.ctl.current().inbound_len(), 0);
    let t = template();
    let mut tx = gw.ctl.transaction();
    tx.add_inbound(Spi(LIVE_SPI), t).expect("re-add");
    tx.commit().expect("commit");
    assert!(!gw.ctl.current().was_deleted(Spi(LIVE_SPI)));
    assert_eq!(gw.ctl.stats().tombstones, 0);
}

#[test]
fn tombstones_are_bounded_by_count() {
    let mut gw = gateway();
    gw.ctl.set_tombstone_limits(2, Duration::from_secs(300));
    for spi in [0x3001, 0x3002, 0x3003] {
        let t = template();
        let mut tx = gw.ctl.transaction();
        tx.add_inbound(Spi(spi), t).expect("add");
        tx.commit().expect("commit");
        let mut tx = gw.ctl.transaction();
        tx.remove_inbound(Spi(spi)).expect("remove");
        tx.commit().expect("commit");
    }
    let snap = gw.ctl.current();
    assert_eq!(snap.deleted().len(), 2);
    assert!(!snap.was_deleted(Spi(0x3001)), "the oldest is forgotten");
    assert!(snap.was_deleted(Spi(0x3002)) && snap.was_deleted(Spi(0x3003)));
}

#[test]
fn notes_are_bounded_per_second_and_the_excess_counted() {
    let mut gw = gateway();
    let flood: Vec<Vec<u8>> = (0..NOTICES_PER_SECOND + 44).map(|i| esp_frame(PEER, 0x7000 + i as u32, true)).collect();
    for chunk in flood.chunks(32) {
        send(&mut gw, chunk, 10_500);
    }
    // Every packet is counted as a drop; only the budget's worth is noted.
    assert_eq!(drops(&gw, DropReason::NoSa), NOTICES_PER_SECOND + 44);
    let got = notes(&gw);
    assert_eq!(got.len() as u64, NOTICES_PER_SECOND);
    assert_eq!(got.first(), Some(&from_peer(0x7000)));
    assert_eq!(gw.stats.unknown_spi_suppressed(), 44);
    // The next second has a new budget.
    send(&mut gw, &[esp_frame(PEER, 0x9999, true)], 11_000);
    assert_eq!(notes(&gw), [from_peer(0x9999)]);
}
