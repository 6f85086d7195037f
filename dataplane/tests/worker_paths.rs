//! Bursts of heap packets through two workers wired back to back (gw1 —
//! gw2): every classification path and each drop reason the worker itself
//! decides, with exact counters (nothing else may be counted).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dataplane::crypto::{Algorithm, Backend};
use dataplane::drop::DropReason;
use dataplane::packet::{HeapPacket, Packet};
use dataplane::route::{Route, RouteTable};
use dataplane::sa::{PolicyAction, PolicySpec, Spi};
use dataplane::spd::{IpPrefix, PortRange, Selector};
use dataplane::stats::Stats;
use dataplane::wire::{checksum, IcmpPacket, Ipv4Packet, Ipv6Packet, MacAddr, UdpPacket};
use dataplane::worker::{
    connected_routes, install_static, Interface, RecordingIo, StaticTunnel, TsSpec, TunnelControl, Worker, WorkerConfig,
};
use zeroize::Zeroizing;

const GW1_OUT: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);
const GW1_IN: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const GW2_OUT: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
const GW2_IN: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const HOST1: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa1]);
const HOST2: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa2]);
const OUT: usize = 0;
const IN: usize = 1;
const GW1_OUT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const GW2_OUT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("ipv4")
}

fn prefix(s: &str) -> IpPrefix {
    let (a, l) = s.split_once('/').expect("prefix");
    IpPrefix::new(a.parse().expect("addr"), l.parse().expect("len")).expect("valid")
}

struct Gw {
    worker: Worker<HeapPacket>,
    ctl: TunnelControl,
    stats: Stats,
    policies: Vec<dataplane::sa::PolicyId>,
}

impl Gw {
    fn drops(&self) -> Vec<(DropReason, u64)> {
        self.stats.snapshot().nonzero_drops().collect()
    }
}

fn tunnel(gw1: bool, udp: bool, local_ts: &str, remote_ts: &str, window: u32) -> StaticTunnel {
    tunnel_over(gw1, (IpAddr::V4(ip4("198.51.100.1")), IpAddr::V4(ip4("198.51.100.2"))), udp, local_ts, remote_ts, window)
}

/// [`tunnel`] between the outer addresses `(a, b)` (gw1's, gw2's).
fn tunnel_over(gw1: bool, (a, b): (IpAddr, IpAddr), udp: bool, local_ts: &str, remote_ts: &str, window: u32) -> StaticTunnel {
    let (k1, k2) = (vec![0x11u8; 20], vec![0x22u8; 20]);
    StaticTunnel {
        name: if gw1 { "to-gw2" } else { "to-gw1" }.into(),
        algorithm: Algorithm::Aes128Gcm,
        local: if gw1 { a } else { b },
        remote: if gw1 { b } else { a },
        udp,
        spi_in: Spi(if gw1 { 0x1001 } else { 0x2002 }),
        spi_out: Spi(if gw1 { 0x2002 } else { 0x1001 }),
        key_in: Zeroizing::new(if gw1 { k1.clone() } else { k2.clone() }),
        key_out: Zeroizing::new(if gw1 { k2 } else { k1 }),
        local_ts: vec![TsSpec::prefix(prefix(local_ts))],
        remote_ts: vec![TsSpec::prefix(prefix(remote_ts))],
        esn: false,
        replay_window: window,
    }
}

/// gw1: outside 198.51.100.1 and 2001:db8::1 (port 0), inside 10.1.0.1 (port
/// 1); gw2 mirrors with 198.51.100.2, 2001:db8::2 and 10.2.0.1. Neighbours are
/// static unless `arp`.
fn gateway(gw1: bool, t: StaticTunnel, arp: bool) -> Gw {
    gateway_of(gw1, vec![t], arp)
}

/// [`gateway`] with several tunnels.
fn gateway_of(gw1: bool, tunnels: Vec<StaticTunnel>, arp: bool) -> Gw {
    gateway_with(gw1, tunnels, arp, |_, _| {})
}

/// [`gateway_of`], with `tweak` changing its interfaces and routes first.
fn gateway_with(gw1: bool, tunnels: Vec<StaticTunnel>, arp: bool, tweak: impl FnOnce(&mut [Interface], &mut Vec<Route>)) -> Gw {
    let (out_mac, in_mac, out_ip, out_ip6, in_ip) = if gw1 {
        (GW1_OUT, GW1_IN, "198.51.100.1", GW1_OUT6, "10.1.0.1")
    } else {
        (GW2_OUT, GW2_IN, "198.51.100.2", GW2_OUT6, "10.2.0.1")
    };
    let mut interfaces = vec![
        Interface::new(out_mac).with_address(IpAddr::V4(ip4(out_ip)), 24).with_address(IpAddr::V6(out_ip6), 64),
        Interface::new(in_mac).with_address(IpAddr::V4(ip4(in_ip)), 24),
    ];
    let mut routes = connected_routes(&interfaces);
    routes.push(Route { dst: IpAddr::V4(ip4("203.0.113.0")), len: 24, via: Some(IpAddr::V4(ip4("198.51.100.254"))), port: OUT });
    tweak(&mut interfaces, &mut routes);
    let static_neighbors = if arp {
        vec![]
    } else {
        let (peer, host, host_ip) =
            if gw1 { (GW2_OUT, HOST1, "10.1.0.2") } else { (GW1_OUT, HOST2, "10.2.0.2") };
        let (peer_ip, peer_ip6) = if gw1 { ("198.51.100.2", GW2_OUT6) } else { ("198.51.100.1", GW1_OUT6) };
        vec![(OUT, IpAddr::V4(ip4(peer_ip)), peer), (OUT, IpAddr::V6(peer_ip6), peer), (IN, IpAddr::V4(ip4(host_ip)), host)]
    };
    let config = WorkerConfig { interfaces, routes: RouteTable::build(routes).expect("routes"), static_neighbors };
    let mut ctl = TunnelControl::new(64);
    let installed = install_static(&mut ctl, &tunnels, Backend::Auto).expect("install");
    let policies = installed.into_iter().flat_map(|t| t.policies).collect();
    let stats = Stats::new(1, 2, 64);
    let worker = Worker::new(&config, ctl.reader(), stats.core(0).expect("core 0"));
    Gw { worker, ctl, stats, policies }
}

fn pair(udp: bool) -> (Gw, Gw) {
    (
        gateway(true, tunnel(true, udp, "10.1.0.0/24", "10.2.0.0/24", 64), false),
        gateway(false, tunnel(false, udp, "10.2.0.0/24", "10.1.0.0/24", 64), false),
    )
}

fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: &str, dst: &str, proto: u8, ttl: u8, df: bool, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p.extend_from_slice(l4);
    let len = p.len() as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.set_version_and_ihl();
    ip.set_total_len(len);
    ip.set_ident(7);
    ip.set_unfragmented(df);
    ip.set_ttl(ttl);
    ip.set_protocol(proto.into());
    ip.set_src_addr(ip4(src));
    ip.set_dst_addr(ip4(dst));
    ip.fill_checksum();
    p
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u.extend_from_slice(payload);
    let len = u.len() as u16;
    let mut h = UdpPacket::new_unchecked(&mut u[..]);
    h.set_ports(sport, dport);
    h.set_len(len);
    h.fill_checksum_v4(ip4(src), ip4(dst));
    ipv4(src, dst, 17, 64, false, &u)
}

fn echo_request(seq: u16) -> Vec<u8> {
    let mut i = vec![8u8, 0, 0, 0, 0x12, 0x34, (seq >> 8) as u8, seq as u8];
    i.extend_from_slice(b"ping payload");
    IcmpPacket::new_unchecked(&mut i[..]).fill_checksum_v4();
    i
}

fn arp(op: u16, sha: MacAddr, spa: &str, tpa: &str) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&ip4(spa).octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&ip4(tpa).octets());
    eth(if op == 1 { MacAddr::BROADCAST } else { GW1_OUT }, sha, 0x0806, &a)
}

fn heap() -> HeapPacket {
    HeapPacket::with_room(HeapPacket::DEFAULT_HEADROOM, 2048)
}

fn run(gw: &mut Gw, port: usize, frames: &[Vec<u8>]) -> RecordingIo<HeapPacket> {
    run_on(&mut gw.worker, port, frames)
}

/// host1 → host2 UDP datagram as it leaves host1.
fn host1_datagram(n: u8) -> Vec<u8> {
    eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.2.0.2", 4000, 5000, &[n; 100]))
}

#[test]
fn arp_for_our_address_is_answered_and_others_are_not() {
    let (mut gw1, _) = pair(false);
    let io = run(&mut gw1, OUT, &[arp(1, HOST1, "198.51.100.7", "198.51.100.1"), arp(1, HOST1, "198.51.100.7", "198.51.100.9")]);
    assert_eq!(io.sent.len(), 1, "only the request for our address is answered");
    let (port, reply) = &io.sent[0];
    assert_eq!(*port, OUT);
    let d = reply.data();
    assert_eq!(&d[0..6], &HOST1.0, "to the asker");
    assert_eq!(&d[6..12], &GW1_OUT.0);
    assert_eq!(&d[20..22], &[0, 2], "ARP reply");
    assert_eq!(&d[22..28], &GW1_OUT.0, "our MAC");
    assert_eq!(&d[28..32], &[198, 51, 100, 1]);
    assert_eq!(&d[32..38], &HOST1.0);
    assert_eq!(&d[38..42], &[198, 51, 100, 7]);
    assert!(gw1.drops().is_empty(), "ARP is consumed, not dropped: {:?}", gw1.drops());
}

#[test]
fn echo_requests_to_us_are_answered_v4_and_v6() {
    let (mut gw1, _) = pair(false);
    let req = eth(GW1_OUT, HOST1, 0x0800, &ipv4("198.51.100.7", "198.51.100.1", 1, 5, false, &echo_request(3)));
    let mut v6 = vec![0u8; 40];
    let mut icmp6 = vec![128u8, 0, 0, 0, 0, 1, 0, 9];
    icmp6.extend_from_slice(b"v6 ping");
    let (s6, d6): (Ipv6Addr, Ipv6Addr) = ("2001:db8::7".parse().expect("a"), "2001:db8::1".parse().expect("a"));
    IcmpPacket::new_unchecked(&mut icmp6[..]).fill_checksum_v6(s6, d6);
    {
        let mut h = Ipv6Packet::new_unchecked(&mut v6[..]);
        h.set_version_tc_flow(0, 0);
        h.set_payload_len(icmp6.len() as u16);
        h.set_next_header(58.into());
        h.set_hop_limit(64);
        h.set_src_addr(s6);
        h.set_dst_addr(d6);
    }
    v6.extend_from_slice(&icmp6);
    let io = run(&mut gw1, OUT, &[req, eth(GW1_OUT, HOST1, 0x86dd, &v6)]);
    assert_eq!(io.sent.len(), 2);
    let r4 = &io.sent[0].1.data()[14..];
    let ip = Ipv4Packet::new_checked(r4).expect("ip");
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (ip4("198.51.100.1"), ip4("198.51.100.7")));
    let icmp = IcmpPacket::new_checked(&r4[20..]).expect("icmp");
    assert_eq!(r4[20], 0, "echo reply");
    assert!(icmp.verify_checksum_v4(), "incrementally updated checksum is right");
    assert_eq!(&r4[24..], &echo_request(3)[4..], "identifier, sequence and data echoed");
    let r6 = &io.sent[1].1.data()[14..];
    let ip = Ipv6Packet::new_checked(r6).expect("ip6");
    assert_eq!((ip.src_addr(), ip.dst_addr()), (d6, s6));
    assert_eq!(r6[40], 129);
    assert!(IcmpPacket::new_checked(&r6[40..]).expect("icmp6").verify_checksum_v6(d6, s6));
    assert!(gw1.drops().is_empty());
}

fn tunnel_round_trip(udp_encap: bool) {
    let (mut gw1, mut gw2) = pair(udp_encap);
    let frames: Vec<_> = (0..40).map(host1_datagram).collect();
    let io1 = run(&mut gw1, IN, &frames);
    assert_eq!(io1.sent.len(), 40, "drops: {:?}", gw1.drops());
    for (port, f) in &io1.sent {
        assert_eq!(*port, OUT);
        let d = f.data();
        assert_eq!(&d[0..12], &[GW2_OUT.0, GW1_OUT.0].concat());
        let ip = Ipv4Packet::new_checked(&d[14..]).expect("outer");
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (ip4("198.51.100.1"), ip4("198.51.100.2")));
        assert_eq!(u8::from(ip.protocol()), if udp_encap { 17 } else { 50 });
        assert!(!d.windows(100).any(|w| w.iter().all(|&b| b == w[0]) && w[0] < 40), "plaintext does not leak");
    }
    let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    assert_eq!(io2.sent.len(), 40, "drops: {:?}", gw2.drops());
    for (i, (port, f)) in io2.sent.iter().enumerate() {
        assert_eq!(*port, IN);
        let d = f.data();
        assert_eq!(&d[0..12], &[HOST2.0, GW2_IN.0].concat());
        let mut want = frames[i][14..].to_vec();
        // Each gateway is a router hop: TTL 64 → 62, checksum updated.
        want[8] = 62;
        Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
        assert_eq!(&d[14..], &want[..], "inner packet {i} arrives unchanged but for the TTL");
    }
    assert!(gw1.drops().is_empty() && gw2.drops().is_empty());
    let t1 = gw1.ctl.current();
    let out_sa = t1.spd().actions().iter().find_map(|a| match a {
        PolicyAction::Protect(sa) => Some(sa.id()),
        _ => None,
    });
    let out_counts = gw1.stats.sa(out_sa.expect("protect policy"));
    assert_eq!(out_counts.packets, 40);
    // The SA counts ESP packets (outer IP header on), not frames.
    let esp_bytes: usize = io1.sent.iter().map(|(_, f)| f.data().len() - 14).sum();
    assert_eq!(out_counts.bytes, esp_bytes as u64);
    let in_sa = gw2.ctl.current().inbound(Spi(0x2002)).map(|s| s.id()).expect("inbound");
    assert_eq!(gw2.stats.sa(in_sa).packets, 40);
    // The ports' tx counters (added once per run or next hop, not per frame)
    // count every frame sent, with its Ethernet header.
    for (gw, io, port) in [(&gw1, &io1, OUT), (&gw2, &io2, IN)] {
        let counts = gw.stats.snapshot().ports[port];
        let bytes: usize = io.sent.iter().map(|(_, f)| f.data().len()).sum();
        assert_eq!((counts.tx_packets, counts.tx_bytes), (40, bytes as u64));
    }
}

#[test]
fn plaintext_through_raw_esp_tunnel_and_back() {
    tunnel_round_trip(false);
}

#[test]
fn plaintext_through_udp_encapsulated_tunnel_and_back() {
    tunnel_round_trip(true);
}

/// Encap rewrites the received frame in place (the link header kept in front of
/// the inner packet becomes the outgoing Ethernet header): a VLAN-tagged frame
/// and a minimum-size frame with Ethernet padding after a short IP packet must
/// come out as untagged ESP frames whose inner packets are exactly the IP
/// packets sent (padding not encrypted), in the order received.
#[test]
fn tagged_and_padded_frames_are_encapsulated_as_their_ip_packets() {
    let (mut gw1, mut gw2) = pair(false);
    let plain = udp("10.1.0.2", "10.2.0.2", 4000, 5000, &[7; 40]);
    let mut tagged = eth(GW1_IN, HOST1, 0x8100, &[0x00, 0x05, 0x08, 0x00]);
    tagged.extend_from_slice(&plain);
    let short = udp("10.1.0.2", "10.2.0.2", 4000, 5000, &[9; 2]);
    let mut padded = eth(GW1_IN, HOST1, 0x0800, &short);
    padded.resize(60, 0xee);
    let io1 = run(&mut gw1, IN, &[tagged, padded, host1_datagram(3)]);
    assert_eq!(io1.sent.len(), 3, "drops: {:?}", gw1.drops());
    for (_, f) in &io1.sent {
        let d = f.data();
        assert_eq!(&d[0..14], &[&GW2_OUT.0[..], &GW1_OUT.0, &[8, 0]].concat(), "untagged, to gw2");
        let ip = Ipv4Packet::new_checked(&d[14..]).expect("outer");
        assert_eq!(usize::from(ip.total_len()), d.len() - 14, "no bytes after the ESP packet");
        assert!(ip.verify_checksum());
    }
    let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    assert_eq!(io2.sent.len(), 3, "drops: {:?}", gw2.drops());
    let third = host1_datagram(3)[14..].to_vec();
    for ((_, f), sent) in io2.sent.iter().zip([&plain, &short, &third]) {
        let mut want = sent.clone();
        want[8] = 62;
        Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
        assert_eq!(&f.data()[14..], &want[..]);
    }
}

/// Decap remembers the last next hop of a flush (route, own-address check,
/// MTU, neighbour): a burst whose inner packets alternate between a resolved
/// host, an unresolved one and the gateway itself must still reach each as if
/// routed one by one.
#[test]
fn decap_burst_to_alternating_next_hops_reaches_each() {
    let (mut gw1, mut gw2) = pair(false);
    let dsts = ["10.2.0.2", "10.2.0.3", "10.2.0.2", "10.2.0.1", "10.2.0.3", "10.2.0.2"];
    let frames: Vec<_> =
        dsts.iter().enumerate().map(|(i, d)| eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", d, 4000, 5000, &[i as u8; 64]))).collect();
    let io1 = run(&mut gw1, IN, &frames);
    assert_eq!(io1.sent.len(), dsts.len(), "drops: {:?}", gw1.drops());
    let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    // Payload byte of each forwarded datagram (14 + 20 + 8), by destination MAC.
    let to = |mac: MacAddr, io: &RecordingIo<HeapPacket>| -> Vec<u8> {
        io.sent.iter().filter(|(p, f)| *p == IN && f.data()[0..6] == mac.0 && f.data()[12..14] == [8, 0]).map(|(_, f)| f.data()[42]).collect()
    };
    assert_eq!(to(HOST2, &io2), [0, 2, 5], "every packet to the resolved host, in order");
    let arps: Vec<_> = io2.sent.iter().filter(|(_, f)| f.data()[12..14] == [8, 6]).collect();
    assert_eq!(arps.len(), 1, "one ARP request for 10.2.0.3");
    assert_eq!((arps[0].0, &arps[0].1.data()[38..42]), (IN, &[10u8, 2, 0, 3][..]));
    assert_eq!(io2.sent.len(), 4);
    assert_eq!(io2.punted.len(), 1, "the packet to the gateway's own address is punted");
    assert_eq!(&io2.punted[0].1.data()[14 + 16..14 + 20], &[10, 2, 0, 1]);
    assert_eq!(gw2.drops(), [(DropReason::NoNeighbor, 1)], "10.2.0.3: the later packet is held, the earlier displaced");
    // 10.2.0.3 answers: the held (latest) packet leaves to it.
    let host3 = MacAddr([2, 0, 0, 0, 0, 0xa3]);
    let mut reply = arp(2, host3, "10.2.0.3", "10.2.0.1");
    reply[0..6].copy_from_slice(&GW2_IN.0);
    reply[32..38].copy_from_slice(&GW2_IN.0);
    let io3 = run(&mut gw2, IN, &[reply]);
    assert_eq!(to(host3, &io3), [4]);
}

/// A decap burst to hosts behind one gateway route: after its first packet the
/// worker sends the others with what it found for that one (the next hop's
/// MTU and Ethernet header), and each must still get its own TTL check and
/// decrement, MTU check and route.
#[test]
fn decap_burst_through_one_gateway_route_checks_each_packet() {
    // gw2 reaches 10.8.0.0/16 through host2; its inside link has an MTU of 600.
    let mut gw1 = gateway(true, tunnel(true, false, "10.1.0.0/24", "10.0.0.0/8", 64), false);
    let mut gw2 = gateway_with(false, vec![tunnel(false, false, "10.0.0.0/8", "10.1.0.0/24", 64)], false, |ifaces, routes| {
        ifaces[IN].mtu = 600;
        routes.push(Route { dst: IpAddr::V4(ip4("10.8.0.0")), len: 16, via: Some(IpAddr::V4(ip4("10.2.0.2"))), port: IN });
    });
    // (destination, TTL as it leaves host1, payload length): gw1 takes one off the TTL.
    let sends = [
        ("10.8.0.5", 64, 100),
        ("10.8.0.6", 9, 100),
        ("10.8.0.7", 2, 100), // TTL 1 at gw2: dropped there
        ("10.8.0.8", 64, 700), // over gw2's inside MTU
        ("10.2.0.3", 64, 100), // off the gateway route: ARP, held
        ("10.8.0.9", 64, 100),
    ];
    let frames: Vec<_> = sends
        .iter()
        .enumerate()
        .map(|(i, &(dst, ttl, len))| eth(GW1_IN, HOST1, 0x0800, &ipv4("10.1.0.2", dst, 17, ttl, true, &vec![i as u8; len])))
        .collect();
    let io1 = run(&mut gw1, IN, &frames);
    assert_eq!(io1.sent.len(), sends.len(), "drops: {:?}", gw1.drops());
    let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    let delivered: Vec<_> = io2.sent.iter().filter(|(p, f)| *p == IN && f.data()[0..6] == HOST2.0).map(|(_, f)| f.data()[14..].to_vec()).collect();
    let firsts: Vec<u8> = delivered.iter().map(|ip| ip[20]).collect();
    assert_eq!(firsts, [0, 1, 5], "in order, without the expired, the too big and the held");
    let arps: Vec<_> = io2.sent.iter().filter(|(_, f)| f.data()[12..14] == [8, 6]).map(|(p, f)| (*p, f.data()[38..42].to_vec())).collect();
    assert_eq!(arps, [(IN, vec![10, 2, 0, 3])], "10.2.0.3 asked for");
    for ip in &delivered {
        let (i, h) = (usize::from(ip[20]), Ipv4Packet::new_checked(&ip[..]).expect("IPv4"));
        assert_eq!(h.ttl(), sends[i].1 - 2, "packet {i}: one off at each gateway");
        assert!(h.verify_checksum(), "packet {i}: header checksum after the decrement");
        assert_eq!(h.dst_addr(), ip4(sends[i].0));
    }
    let drops = gw2.drops();
    assert!(drops.len() == 2 && drops.contains(&(DropReason::TtlExpired, 1)) && drops.contains(&(DropReason::TooBig, 1)), "{drops:?}");
}

/// Traffic selectors that name a protocol and port: only that traffic is
/// sealed (the rest has no policy), and only that traffic may come out of the
/// SA (RFC 4301 §5.2 step 4). The other tests' selectors are whole subnets,
/// whose lookups do not read ports at all.
#[test]
fn port_selectors_are_matched_both_ways() {
    let ts = |p: &str, ports: PortRange| TsSpec { prefix: prefix(p), proto: Some(17), ports };
    let to_5000 = PortRange::new(5000, 5000).expect("ordered");
    let mut narrow1 = tunnel(true, false, "10.1.0.0/24", "10.2.0.0/24", 64);
    (narrow1.local_ts, narrow1.remote_ts) = (vec![ts("10.1.0.0/24", PortRange::ANY)], vec![ts("10.2.0.0/24", to_5000)]);
    let narrow2 = || {
        let mut t = tunnel(false, false, "10.2.0.0/24", "10.1.0.0/24", 64);
        (t.local_ts, t.remote_ts) = (vec![ts("10.2.0.0/24", to_5000)], vec![ts("10.1.0.0/24", PortRange::ANY)]);
        gateway(false, t, false)
    };
    let (mut gw1, mut gw2) = (gateway(true, narrow1, false), narrow2());
    let datagram = |dport: u16| eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.2.0.2", 4000, dport, &[7; 40]));

    let io1 = run(&mut gw1, IN, &[datagram(5000), datagram(5001)]);
    assert_eq!(io1.sent.len(), 1, "only port 5000 is sealed");
    assert_eq!(gw1.drops(), [(DropReason::NoPolicy, 1)]);
    let io2 = run(&mut gw2, OUT, &[io1.sent[0].1.data().to_vec()]);
    assert_eq!(io2.sent.len(), 1, "drops: {:?}", gw2.drops());
    assert_eq!(&io2.sent[0].1.data()[14 + 22..14 + 24], &5000u16.to_be_bytes());

    // A peer that seals any port (same SA): gw2 lets only port 5000 out.
    let (mut wide1, _) = pair(false);
    let mut gw2 = narrow2();
    let esp: Vec<Vec<u8>> = run(&mut wide1, IN, &[datagram(5001), datagram(5000)]).sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    assert_eq!(esp.len(), 2);
    let io3 = run(&mut gw2, OUT, &esp);
    assert_eq!(io3.sent.len(), 1);
    assert_eq!(&io3.sent[0].1.data()[14 + 22..14 + 24], &5000u16.to_be_bytes());
    assert_eq!(gw2.drops(), [(DropReason::PolicyMismatch, 1)]);
}

/// A decap burst alternating between a raw ESP SA and an ESP-in-UDP SA (their
/// ESP headers 8 bytes apart) is grouped by SA before it is opened: every
/// packet must still be opened at its own ESP header and delivered in order.
#[test]
fn a_decap_burst_alternating_raw_and_udp_sas_opens_every_packet() {
    let gw = |gw1: bool| {
        let (ours, theirs) = ("10.1.0.0/24", ["10.2.0.0/25", "10.2.0.128/25"]);
        let ts = |i: usize| if gw1 { (ours, theirs[i]) } else { (theirs[i], ours) };
        let raw = tunnel(gw1, false, ts(0).0, ts(0).1, 64);
        let mut udp = tunnel(gw1, true, ts(1).0, ts(1).1, 64);
        let (spi_a, spi_b) = (Spi(0x3003), Spi(0x4004));
        (udp.name, udp.spi_in, udp.spi_out) = ("udp".into(), if gw1 { spi_a } else { spi_b }, if gw1 { spi_b } else { spi_a });
        gateway_of(gw1, vec![raw, udp], false)
    };
    let (mut gw1, mut gw2) = (gw(true), gw(false));
    let dsts = ["10.2.0.2", "10.2.0.130", "10.2.0.2", "10.2.0.130", "10.2.0.2", "10.2.0.130"];
    let frames: Vec<_> =
        dsts.iter().enumerate().map(|(i, d)| eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", d, 4000, 5000, &[i as u8; 64]))).collect();
    let io1 = run(&mut gw1, IN, &frames);
    assert!(gw1.drops().is_empty(), "drops: {:?}", gw1.drops());
    // gw1 seals one run per SA; interleave its raw and UDP frames again.
    let (raw, udp_encap): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
        io1.sent.iter().map(|(_, f)| f.data().to_vec()).partition(|f| f[14 + 9] == 50);
    assert_eq!((raw.len(), udp_encap.len()), (3, 3), "three of each");
    assert!(udp_encap.iter().all(|f| f[14 + 9] == 17), "the other SA's ESP is in UDP");
    let esp: Vec<Vec<u8>> = raw.into_iter().zip(udp_encap).flat_map(|(a, b)| [a, b]).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    let to_host2: Vec<u8> =
        io2.sent.iter().filter(|(p, f)| *p == IN && f.data()[0..6] == HOST2.0 && f.data()[12..14] == [8, 0]).map(|(_, f)| f.data()[42]).collect();
    assert_eq!(to_host2, [0, 2, 4], "every raw ESP packet opened and delivered, in order");
    // 10.2.0.130 is not resolved: its latest packet waits on ARP, the earlier
    // two are displaced. No decap error is counted.
    assert_eq!(gw2.drops(), [(DropReason::NoNeighbor, 2)], "every UDP-encapsulated packet opened too");
    let arps: Vec<_> = io2.sent.iter().filter(|(_, f)| f.data()[12..14] == [8, 6]).collect();
    assert_eq!((arps.len(), &arps[0].1.data()[38..42]), (1, &[10u8, 2, 0, 130][..]));
}

/// An SA with two traffic selectors has two PROTECT policies: a burst that
/// alternates between them and a second SA is sealed as one run per SA (each SA's
/// packets leave together, in arrival order), not one run per policy change. The
/// worker once told SAs apart by the address of the policy's `SaRef`, which cut
/// such a burst into runs of one packet, each with its own sequence-number
/// reservation and AEAD call (64 selectors on one SA: perf/README.md, "One worker,
/// many tunnels").
#[test]
fn a_burst_is_sealed_in_one_run_per_sa_whatever_policy_selected_its_packets() {
    let mut a = tunnel(true, false, "10.1.0.0/24", "10.2.0.0/25", 64);
    a.remote_ts.push(TsSpec::prefix(prefix("10.2.0.128/25")));
    let mut b = tunnel(true, false, "10.1.0.0/24", "10.3.0.0/24", 64);
    (b.name, b.spi_in, b.spi_out) = ("to-gw2-b".into(), Spi(0x3003), Spi(0x4004));
    let mut gw1 = gateway_of(true, vec![a, b], false);
    let dsts = ["10.2.0.2", "10.3.0.2", "10.2.0.200", "10.2.0.3", "10.3.0.3", "10.2.0.201"];
    let frames: Vec<_> =
        dsts.iter().enumerate().map(|(i, d)| eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", d, 4000, 5000, &[i as u8; 64]))).collect();
    let io1 = run(&mut gw1, IN, &frames);
    assert!(gw1.drops().is_empty(), "drops: {:?}", gw1.drops());
    // (SPI, sequence number) of each ESP frame sent, in the order sent.
    let sent: Vec<(u32, u32)> = io1
        .sent
        .iter()
        .map(|(_, f)| {
            let esp = &f.data()[14 + 20..];
            (u32::from_be_bytes([esp[0], esp[1], esp[2], esp[3]]), u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]]))
        })
        .collect();
    assert_eq!(sent, [(0x2002, 1), (0x2002, 2), (0x2002, 3), (0x2002, 4), (0x4004, 1), (0x4004, 2)]);
    // And they are the packets sent to each SA, in arrival order: gw2 opens SA a's
    // (it has a route and a neighbour for 10.2.0.2 only: the others wait on ARP).
    let mut gw2 = gateway(false, tunnel(false, false, "10.2.0.0/24", "10.1.0.0/24", 64), false);
    let esp: Vec<Vec<u8>> = io1.sent.iter().take(4).map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    let to_host2: Vec<u8> = io2.sent.iter().filter(|(_, f)| f.data()[0..6] == HOST2.0).map(|(_, f)| f.data()[42]).collect();
    assert_eq!(to_host2, [0], "drops: {:?}", gw2.drops());
    assert_eq!(gw2.stats.sa(gw2.ctl.current().inbound(Spi(0x2002)).map(|s| s.id()).expect("inbound")).packets, 4);
}

/// A burst over three SAs, two to one peer and one to a peer behind another next
/// hop: each run's ESP goes to its own peer's next hop (the second run reuses the
/// first one's lookups, the third makes its own), the unresolved one waits on ARP.
#[test]
fn runs_of_sas_to_different_peers_each_go_to_their_next_hop() {
    let a = tunnel(true, false, "10.1.0.0/24", "10.2.0.0/24", 64);
    let mut b = tunnel(true, false, "10.1.0.0/24", "10.3.0.0/24", 64);
    (b.name, b.spi_in, b.spi_out) = ("to-gw2-b".into(), Spi(0x3003), Spi(0x4004));
    // 203.0.113.9 is reached via 198.51.100.254, which has no neighbour entry.
    let mut c = tunnel_over(true, (IpAddr::V4(ip4("198.51.100.1")), IpAddr::V4(ip4("203.0.113.9"))), false, "10.1.0.0/24", "10.4.0.0/24", 64);
    (c.name, c.spi_in, c.spi_out) = ("to-far".into(), Spi(0x5005), Spi(0x6006));
    let mut gw1 = gateway_of(true, vec![a, b, c], false);
    let dsts = ["10.2.0.2", "10.3.0.2", "10.4.0.2", "10.2.0.3", "10.3.0.3", "10.4.0.3"];
    let frames: Vec<_> =
        dsts.iter().enumerate().map(|(i, d)| eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", d, 4000, 5000, &[i as u8; 64]))).collect();
    let io1 = run(&mut gw1, IN, &frames);
    let ethertype = |f: &[u8]| u16::from_be_bytes([f[12], f[13]]);
    // (destination MAC, SPI) of each ESP frame sent.
    let esp: Vec<([u8; 6], u32)> = io1
        .sent
        .iter()
        .map(|(_, f)| f.data())
        .filter(|f| ethertype(f) == 0x0800)
        .map(|f| (f[0..6].try_into().expect("MAC"), u32::from_be_bytes([f[34], f[35], f[36], f[37]])))
        .collect();
    assert_eq!(esp, [(GW2_OUT.0, 0x2002), (GW2_OUT.0, 0x2002), (GW2_OUT.0, 0x4004), (GW2_OUT.0, 0x4004)]);
    // The far peer's packet waits for 198.51.100.254, asked for once.
    let asks: Vec<&[u8]> = io1.sent.iter().map(|(_, f)| f.data()).filter(|f| ethertype(f) == 0x0806).collect();
    assert_eq!(asks.len(), 1, "{asks:02x?}");
    assert_eq!(asks[0][38..42], ip4("198.51.100.254").octets());
    // The tx counters (added once per peer and flush) count every frame sent:
    // those of the peer before the change of peer too.
    let counts = gw1.stats.snapshot().ports[OUT];
    let bytes: usize = io1.sent.iter().map(|(_, f)| f.data().len()).sum();
    assert_eq!((counts.tx_packets, counts.tx_bytes), (io1.sent.len() as u64, bytes as u64));
}

/// ESP over IPv6, raw and in UDP 4500: what the worker reads at fixed offsets
/// (no extension headers) and what takes the general parse (a Destination
/// Options header in front of the ESP) both decapsulate; IKE over UDP 4500 is
/// punted; ESP to an address that is not ours is not decapsulated.
#[test]
fn esp_over_ipv6_is_decapsulated_with_and_without_extension_headers() {
    for udp_encap in [false, true] {
        let outer = (IpAddr::V6(GW1_OUT6), IpAddr::V6(GW2_OUT6));
        let mut gw1 = gateway(true, tunnel_over(true, outer, udp_encap, "10.1.0.0/24", "10.2.0.0/24", 64), false);
        let mut gw2 = gateway(false, tunnel_over(false, outer, udp_encap, "10.2.0.0/24", "10.1.0.0/24", 64), false);
        // 40 to decapsulate, one more (fresh sequence number) for the address that is not ours.
        let frames: Vec<_> = (0..41).map(host1_datagram).collect();
        let io1 = run(&mut gw1, IN, &frames);
        assert_eq!(io1.sent.len(), 41, "drops: {:?}", gw1.drops());
        let proto = if udp_encap { 17 } else { 50 };
        let mut esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
        let mut other = esp.pop().expect("41 frames");
        for f in &esp {
            let ip = Ipv6Packet::new_checked(&f[14..]).expect("outer");
            assert_eq!((&f[12..14], ip.src_addr(), ip.dst_addr(), f[20]), (&[0x86, 0xdd][..], GW1_OUT6, GW2_OUT6, proto));
        }
        // The second half with an 8-byte Destination Options header (PadN) in front of the ESP.
        for f in &mut esp[20..] {
            let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
            f[18..20].copy_from_slice(&plen.to_be_bytes());
            f[20] = 60;
            f.splice(54..54, [proto, 0, 1, 4, 0, 0, 0, 0]);
        }
        let io2 = run(&mut gw2, OUT, &esp);
        assert_eq!(io2.sent.len(), 40, "udp {udp_encap}: drops: {:?}", gw2.drops());
        for (i, (port, f)) in io2.sent.iter().enumerate() {
            let mut want = frames[i][14..].to_vec();
            want[8] = 62;
            Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
            assert_eq!((*port, &f.data()[14..]), (IN, &want[..]), "udp {udp_encap}: packet {i}");
        }
        assert!(gw2.drops().is_empty(), "{:?}", gw2.drops());
        // IKE (non-ESP marker) over IPv6 UDP 4500 goes to the control plane.
        let mut ike = esp[0].clone();
        if udp_encap {
            ike[62..66].fill(0);
            let io = run(&mut gw2, OUT, &[ike.clone()]);
            assert_eq!(io.punted.iter().map(|(p, f)| (*p, f.data().to_vec())).collect::<Vec<_>>(), [(OUT, ike)]);
            assert!(io.sent.is_empty());
        }
        // ESP to an address that is not ours is transit (no IPv6 policy): not opened.
        other[53] = 9;
        let io = run(&mut gw2, OUT, &[other.clone()]);
        assert!(io.sent.is_empty() && io.punted.is_empty());
        assert_eq!(gw2.drops(), [(DropReason::NoPolicy, 1)]);
        // To our address it opens (it was refused for the address, not as a replay).
        other[53] = 2;
        assert_eq!(run(&mut gw2, OUT, &[other]).sent.len(), 1);
    }
}

#[test]
fn ike_and_other_local_traffic_is_punted() {
    let (mut gw1, _) = pair(true);
    let ike500 = eth(GW1_OUT, HOST1, 0x0800, &udp("198.51.100.2", "198.51.100.1", 500, 500, &[0u8; 28]));
    let mut marker = vec![0u8; 4];
    marker.extend_from_slice(&[1u8; 28]);
    let ike4500 = eth(GW1_OUT, HOST1, 0x0800, &udp("198.51.100.2", "198.51.100.1", 4500, 4500, &marker));
    let ssh = eth(GW1_OUT, HOST1, 0x0800, &ipv4("198.51.100.2", "198.51.100.1", 6, 64, true, &[0u8; 20]));
    let io = run(&mut gw1, OUT, &[ike500.clone(), ike4500.clone(), ssh.clone()]);
    assert!(io.sent.is_empty());
    let punted: Vec<_> = io.punted.iter().map(|(p, f)| (*p, f.data().to_vec())).collect();
    assert_eq!(punted, [(OUT, ike500.clone()), (OUT, ike4500), (OUT, ssh)], "whole frames, in order");
    assert!(gw1.drops().is_empty());
    let mut io = RecordingIo::new(heap);
    io.punt_full = true;
    gw1.worker.process(OUT, [HeapPacket::from_slice(&ike500)], &mut io, 0);
    assert_eq!(gw1.drops(), [(DropReason::PuntRingFull, 1)]);
}

#[test]
fn unknown_next_hop_is_resolved_by_arp_and_the_held_packet_sent() {
    let mut gw1 = gateway(true, tunnel(true, false, "10.1.0.0/24", "10.2.0.0/24", 64), true);
    // host1 asks for its gateway first: gw1 learns host1 from the request.
    let io = run(&mut gw1, IN, &[arp(1, HOST1, "10.1.0.2", "10.1.0.1")]);
    assert_eq!(io.sent.len(), 1);
    let io = run(&mut gw1, IN, &[host1_datagram(1), host1_datagram(2)]);
    assert_eq!(io.sent.len(), 1, "one ARP request for gw2, packets held");
    let (port, req) = &io.sent[0];
    assert_eq!(*port, OUT);
    let d = req.data();
    assert_eq!(&d[0..6], &MacAddr::BROADCAST.0);
    assert_eq!(&d[12..14], &[8, 6]);
    assert_eq!(&d[20..22], &[0, 1], "request");
    assert_eq!(&d[28..32], &[198, 51, 100, 1], "from our outside address");
    assert_eq!(&d[38..42], &[198, 51, 100, 2], "for gw2");
    assert_eq!(gw1.drops(), [(DropReason::NoNeighbor, 1)], "one packet is held, the older displaced");
    let mut reply = arp(2, GW2_OUT, "198.51.100.2", "198.51.100.1");
    reply[32..38].copy_from_slice(&GW1_OUT.0);
    let io = run(&mut gw1, OUT, &[reply]);
    assert_eq!(io.sent.len(), 1, "the held packet leaves once gw2 answered");
    assert_eq!(&io.sent[0].1.data()[0..6], &GW2_OUT.0);
    assert_eq!(io.sent[0].1.data()[23], 50, "as ESP");
    let io = run(&mut gw1, IN, &[host1_datagram(3)]);
    assert_eq!(io.sent.len(), 1, "resolved: sent at once");
}

fn counted(gw: &Gw, reason: DropReason) {
    assert_eq!(gw.drops(), [(reason, 1)], "exactly one {reason} drop");
}

#[test]
fn each_drop_reason_of_the_decap_side() {
    let (mut gw1, _) = pair(false);
    let frames: Vec<_> = (0..3).map(host1_datagram).collect();
    let esp: Vec<Vec<u8>> = run(&mut gw1, IN, &frames).sent.iter().map(|(_, f)| f.data().to_vec()).collect();

    let (_, mut gw2) = pair(false);
    let mut bad_spi = esp[0].clone();
    bad_spi[34..38].copy_from_slice(&0x9999u32.to_be_bytes());
    run(&mut gw2, OUT, &[bad_spi]);
    counted(&gw2, DropReason::NoSa);

    let (_, mut gw2) = pair(false);
    let mut tampered = esp[0].clone();
    let n = tampered.len();
    tampered[n - 20] ^= 1;
    assert!(run(&mut gw2, OUT, &[tampered]).sent.is_empty());
    counted(&gw2, DropReason::AuthFailed);

    let (_, mut gw2) = pair(false);
    let io = run(&mut gw2, OUT, &[esp[1].clone(), esp[1].clone()]);
    assert_eq!(io.sent.len(), 1);
    counted(&gw2, DropReason::Replayed);

    let (_, mut gw2) = pair(false);
    let mut bad_sum = esp[0].clone();
    bad_sum[24] ^= 0xff;
    run(&mut gw2, OUT, &[bad_sum]);
    counted(&gw2, DropReason::MalformedOuter);

    let (_, mut gw2) = pair(true);
    run(&mut gw2, OUT, &[eth(GW2_OUT, GW1_OUT, 0x0800, &udp("198.51.100.1", "198.51.100.2", 4500, 4500, &[0xff]))]);
    counted(&gw2, DropReason::NatKeepalive);

    // gw1 protects 10.0.0.0/8 → 10.2.0.0/24 but gw2 only accepts 10.1.0.0/24 from it.
    let mut wide = gateway(true, tunnel(true, false, "10.0.0.0/8", "10.2.0.0/24", 64), false);
    let stray = eth(GW1_IN, HOST1, 0x0800, &udp("10.9.0.2", "10.2.0.2", 1, 2, &[0; 10]));
    let esp_stray: Vec<Vec<u8>> = run(&mut wide, IN, &[stray]).sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    assert_eq!(esp_stray.len(), 1);
    let (_, mut gw2) = pair(false);
    assert!(run(&mut gw2, OUT, &esp_stray).sent.is_empty());
    counted(&gw2, DropReason::PolicyMismatch);
}

#[test]
fn each_drop_reason_of_the_transit_side() {
    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.3.0.2", 1, 2, &[0; 10]))]);
    counted(&gw1, DropReason::NoPolicy);

    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &ipv4("10.1.0.2", "10.2.0.2", 17, 1, false, &[0; 8]))]);
    counted(&gw1, DropReason::TtlExpired);

    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(MacAddr([2, 9, 9, 9, 9, 9]), HOST1, 0x0800, &udp("10.1.0.2", "10.2.0.2", 1, 2, &[0; 10]))]);
    counted(&gw1, DropReason::NotForUs);

    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[vec![0u8; 10]]);
    counted(&gw1, DropReason::Truncated);

    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x88cc, &[0; 46])]);
    counted(&gw1, DropReason::Unsupported);

    // RFC 1812 §5.3.5.2: the directed broadcast of the receiving port's subnet is
    // not forwarded; that of another port's subnet is transit like any address.
    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.1.0.255", 1, 2, &[0; 10]))]);
    counted(&gw1, DropReason::Unsupported);
    let (mut gw1, _) = pair(false);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "198.51.100.255", 1, 2, &[0; 10]))]);
    counted(&gw1, DropReason::NoPolicy);

    let (mut gw1, _) = pair(false);
    let mut io = RecordingIo::new(heap);
    io.tx_capacity = Some(0);
    gw1.worker.process(IN, [HeapPacket::from_slice(&host1_datagram(0))], &mut io, 0);
    counted(&gw1, DropReason::TxFull);

    // 1480-byte inner packet with DF: with ~60 bytes of ESP overhead it exceeds
    // the 1500-byte MTU; host1 is told the MTU that fits (RFC 1191).
    let (mut gw1, _) = pair(false);
    let big = eth(GW1_IN, HOST1, 0x0800, &ipv4("10.1.0.2", "10.2.0.2", 17, 64, true, &vec![0u8; 1460]));
    let io = run(&mut gw1, IN, &[big]);
    counted(&gw1, DropReason::TooBig);
    assert_eq!(io.sent.len(), 1, "ICMP fragmentation needed");
    let (port, f) = &io.sent[0];
    assert_eq!(*port, IN);
    let d = &f.data()[14..];
    let ip = Ipv4Packet::new_checked(d).expect("icmp ip");
    assert_eq!((ip.src_addr(), ip.dst_addr()), (ip4("10.1.0.1"), ip4("10.1.0.2")));
    assert_eq!(&d[20..22], &[3, 4]);
    let mtu = u16::from_be_bytes([d[26], d[27]]);
    assert!((1400..1500).contains(&mtu), "next-hop MTU {mtu}");
    assert!(IcmpPacket::new_checked(&d[20..]).expect("icmp").verify_checksum_v4());
    assert_eq!(checksum::checksum(&d[..20]), 0);

    // A DISCARD policy ahead of the tunnel, and a BYPASS to an unrouted net.
    let (mut gw1, _) = pair(false);
    let mut tx = gw1.ctl.transaction();
    tx.add_policy(PolicySpec {
        priority: 0,
        selector: Selector::subnets(prefix("10.1.0.66/32"), prefix("0.0.0.0/0")),
        action: PolicyAction::Discard,
    })
    .expect("policy");
    tx.add_policy(PolicySpec {
        priority: 1,
        selector: Selector::subnets(prefix("10.1.0.0/24"), prefix("10.7.0.0/16")),
        action: PolicyAction::Bypass,
    })
    .expect("policy");
    tx.commit().expect("commit");
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.66", "10.2.0.2", 1, 2, &[0; 10]))]);
    counted(&gw1, DropReason::PolicyDiscard);
    run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.7.0.2", 1, 2, &[0; 10]))]);
    assert_eq!(gw1.stats.snapshot().drop_count(DropReason::NoRoute), 1);
}

#[test]
fn bypass_traffic_is_routed_in_clear_via_the_gateway_of_a_static_route() {
    let (mut gw1, _) = pair(false);
    let mut tx = gw1.ctl.transaction();
    tx.add_policy(PolicySpec {
        priority: 0,
        selector: Selector::subnets(prefix("10.1.0.0/24"), prefix("203.0.113.0/24")),
        action: PolicyAction::Bypass,
    })
    .expect("policy");
    tx.commit().expect("commit");
    let f = eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "203.0.113.5", 1, 2, &[5; 10]));
    let io = run(&mut gw1, IN, std::slice::from_ref(&f));
    // 198.51.100.254 is not known: an ARP request goes out for it.
    assert_eq!(io.sent.len(), 1);
    assert_eq!(&io.sent[0].1.data()[38..42], &[198, 51, 100, 254]);
    let mut reply = arp(2, MacAddr([2, 0, 0, 0, 0, 0xfe]), "198.51.100.254", "198.51.100.1");
    reply[32..38].copy_from_slice(&GW1_OUT.0);
    let io = run(&mut gw1, OUT, &[reply]);
    assert_eq!(io.sent.len(), 1);
    let d = io.sent[0].1.data();
    assert_eq!(&d[0..6], &[2, 0, 0, 0, 0, 0xfe]);
    assert_eq!(&d[14 + 20 + 8..], &[5; 10], "in clear");
    assert_eq!(d[14 + 8], 63, "TTL decremented");
    assert!(Ipv4Packet::new_checked(&d[14..]).expect("ip").verify_checksum());
}

/// Rekey one direction pair make-before-break across both gateways: both
/// install their new inbound SA, then both switch outbound; the old inbound
/// SAs go once the worker has moved on (every packet sealed with them was
/// delivered), which is what the grace period stands for.
fn rekey_both(ctl1: &mut TunnelControl, ctl2: &mut TunnelControl, p1: &[dataplane::sa::PolicyId], p2: &[dataplane::sa::PolicyId], gen: u32, progress: &AtomicU64) -> usize {
    let (old1, old2) = (Spi(0x1001 + 2 * (gen - 1) * 0x10000), Spi(0x2002 + 2 * (gen - 1) * 0x10000));
    let (new1, new2) = (Spi(0x1001 + 2 * gen * 0x10000), Spi(0x2002 + 2 * gen * 0x10000));
    let mut t1 = tunnel(true, false, "10.1.0.0/24", "10.2.0.0/24", 64);
    let mut t2 = tunnel(false, false, "10.2.0.0/24", "10.1.0.0/24", 64);
    let key = vec![gen as u8; 20];
    (t1.spi_in, t1.spi_out, t1.key_in, t1.key_out) = (new1, new2, Zeroizing::new(key.clone()), Zeroizing::new(key.clone()));
    (t2.spi_in, t2.spi_out, t2.key_in, t2.key_out) = (new2, new1, Zeroizing::new(key.clone()), Zeroizing::new(key));
    let (in1, out1) = t1.build(Backend::Auto).expect("gw1 pair");
    let (in2, out2) = t2.build(Backend::Auto).expect("gw2 pair");
    ctl1.install_inbound(new1, in1).expect("install 1");
    ctl2.install_inbound(new2, in2).expect("install 2");
    ctl1.switch_outbound(p1, out1).expect("switch 1");
    ctl2.switch_outbound(p2, out2).expect("switch 2");
    let seen = progress.load(Ordering::SeqCst);
    while progress.load(Ordering::SeqCst) < seen + 2 {
        std::thread::yield_now();
    }
    let now = Instant::now();
    ctl1.schedule_inbound_removal(old1, now).expect("old 1");
    ctl2.schedule_inbound_removal(old2, now).expect("old 2");
    assert_eq!(ctl1.expire(now).expect("expire 1") + ctl2.expire(now).expect("expire 2"), 2);
    6
}

#[test]
fn thousand_updates_with_rekeys_under_traffic_lose_nothing() {
    let (gw1, gw2) = pair(false);
    let (Gw { worker: mut w1, ctl: mut ctl1, stats: s1, policies: p1 }, Gw { worker: mut w2, ctl: mut ctl2, stats: s2, policies: p2 }) =
        (gw1, gw2);
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let control = {
        let (done, progress) = (Arc::clone(&done), Arc::clone(&progress));
        std::thread::spawn(move || {
            let mut published = 0;
            let mut gen = 0;
            let mut i = 0u32;
            while published < 1000 {
                i += 1;
                if i.is_multiple_of(10) {
                    gen += 1;
                    published += rekey_both(&mut ctl1, &mut ctl2, &p1, &p2, gen, &progress);
                    continue;
                }
                // Unrelated churn: a tunnel to another peer comes and goes, with
                // its policy, in one transaction each.
                let mut extra = tunnel(true, true, "10.1.0.0/24", "10.50.0.0/16", 64);
                extra.spi_in = Spi(0x7000_0000 + i);
                extra.remote = IpAddr::V4(ip4("198.51.100.50"));
                let installed = install_static(&mut ctl1, &[extra], Backend::RustCrypto).expect("extra");
                let mut tx = ctl1.transaction();
                for t in &installed {
                    for p in &t.policies {
                        tx.remove_policy(*p).expect("policy");
                    }
                    tx.remove_outbound(t.outbound).expect("out");
                    tx.remove_inbound(t.spi_in).expect("in");
                }
                tx.commit().expect("remove extra");
                published += 2;
            }
            done.store(true, Ordering::SeqCst);
            (ctl1, ctl2, published, gen)
        })
    };
    let mut sent = 0u32;
    let mut received = Vec::new();
    let mut tail = 0;
    // Bounded: the control thread needs the worker's progress only for rekeys.
    for _ in 0..1_000_000 {
        if done.load(Ordering::SeqCst) {
            tail += 1;
            if tail > 4 {
                break;
            }
        }
        let burst: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                sent += 1;
                eth(GW1_IN, HOST1, 0x0800, &udp("10.1.0.2", "10.2.0.2", 4000, 5000, &sent.to_be_bytes()))
            })
            .collect();
        let io1 = run_on(&mut w1, IN, &burst);
        let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
        let io2 = run_on(&mut w2, OUT, &esp);
        for (_, f) in &io2.sent {
            let d = f.data();
            received.push(u32::from_be_bytes([d[42], d[43], d[44], d[45]]));
        }
        progress.fetch_add(1, Ordering::SeqCst);
    }
    let (mut ctl1, mut ctl2, published, rekeys) = control.join().expect("control thread");
    assert!(published >= 1000 && rekeys >= 40, "{published} publications, {rekeys} rekeys");
    assert_eq!(received, (1..=sent).collect::<Vec<_>>(), "every datagram arrives, in order");
    let drops: Vec<_> = s1.snapshot().nonzero_drops().chain(s2.snapshot().nonzero_drops()).collect();
    assert!(drops.is_empty(), "no drop: {drops:?}");
    // No leak: retired snapshots are freed once the workers moved on, and only
    // the live SAs hold slots.
    w1.quiesce();
    w2.quiesce();
    ctl1.reclaim();
    ctl2.reclaim();
    assert_eq!(ctl1.stats().publisher.pending, 0);
    assert_eq!(ctl1.stats().slots_in_use, 2, "one inbound + one outbound SA");
    assert_eq!(ctl2.stats().slots_in_use, 2);
}

fn run_on(w: &mut Worker<HeapPacket>, port: usize, frames: &[Vec<u8>]) -> RecordingIo<HeapPacket> {
    let mut io = RecordingIo::new(heap);
    w.process(port, frames.iter().map(|f| HeapPacket::from_slice(f)), &mut io, 0);
    io
}

/// Tunnel monitoring (issue 7): a probe from the gateway's own inside address,
/// injected as if received on the inside port, is encapsulated; the echo
/// reply that comes back through the tunnel for that address is punted (with
/// an Ethernet header of the inside port), not routed (ARP for ourselves).
#[test]
fn own_probe_goes_through_the_tunnel_and_its_reply_is_punted() {
    let (mut gw1, mut gw2) = pair(false);
    let mut probe = echo_request(1);
    let probe_frame = eth(GW2_IN, GW2_IN, 0x0800, &ipv4("10.2.0.1", "10.1.0.2", 1, 64, true, &probe));
    let io2 = run(&mut gw2, IN, &[probe_frame]);
    assert_eq!(io2.sent.len(), 1, "encapsulated: drops {:?}", gw2.drops());
    assert_eq!(io2.sent[0].0, OUT);
    let esp: Vec<Vec<u8>> = io2.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io1 = run(&mut gw1, OUT, &esp);
    assert_eq!(io1.sent.len(), 1, "decapsulated at gw1 towards host1");
    // host1 answers: type 0, same identifier and sequence number.
    probe[0] = 0;
    IcmpPacket::new_unchecked(&mut probe[..]).fill_checksum_v4();
    let reply = ipv4("10.1.0.2", "10.2.0.1", 1, 64, true, &probe);
    let io1 = run(&mut gw1, IN, &[eth(GW1_IN, HOST1, 0x0800, &reply)]);
    assert_eq!(io1.sent.len(), 1, "reply encapsulated at gw1");
    let esp: Vec<Vec<u8>> = io1.sent.iter().map(|(_, f)| f.data().to_vec()).collect();
    let io2 = run(&mut gw2, OUT, &esp);
    assert!(io2.sent.is_empty(), "not routed: {:?}", io2.sent.iter().map(|(p, f)| (*p, f.data().to_vec())).collect::<Vec<_>>());
    assert_eq!(io2.punted.len(), 1);
    let (port, frame) = &io2.punted[0];
    assert_eq!(*port, IN);
    let d = frame.data();
    assert_eq!((&d[0..6], &d[6..12], &d[12..14]), (&GW2_IN.0[..], &GW2_IN.0[..], &[8u8, 0][..]));
    let mut want = reply.clone();
    want[8] = 62; // gw1 forwarded it, gw2 decremented it before the route lookup
    Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
    assert_eq!(&d[14..], &want[..]);
    assert!(gw2.drops().is_empty(), "{:?}", gw2.drops());
}

/// A trap policy (no SA yet for its connection): matching packets are dropped
/// as `held` and the trap is noted for the control plane, at most the worker's
/// per-second budget of notes (the rest only counted); once the trap is gone
/// the same flow is protected again.
#[test]
fn trap_policy_holds_packets_and_notes_the_trap_within_its_budget() {
    use dataplane::sa::TrapId;
    use dataplane::worker::trap::NOTICES_PER_SECOND;
    let (mut gw1, _) = pair(false);
    let mut tx = gw1.ctl.transaction();
    let trap = tx
        .add_policy(PolicySpec {
            priority: 0,
            selector: Selector::subnets(prefix("10.1.0.0/24"), prefix("10.2.0.0/24")),
            action: PolicyAction::Trap(TrapId(7)),
        })
        .expect("policy");
    tx.commit().expect("commit");
    let burst = NOTICES_PER_SECOND as usize + 10;
    let frames: Vec<_> = (0..burst).map(|i| host1_datagram(i as u8)).collect();
    let io = run(&mut gw1, IN, &frames);
    assert!(io.sent.is_empty(), "held packets are not sent");
    assert_eq!(gw1.drops(), [(DropReason::Held, burst as u64)]);
    let mut notes = Vec::new();
    gw1.stats.drain_traps(|t| notes.push(t));
    assert_eq!(notes, vec![TrapId(7); NOTICES_PER_SECOND as usize], "one note per packet up to the budget");
    assert_eq!(gw1.stats.drain_traps(|_| {}), 0, "drained once");

    let mut tx = gw1.ctl.transaction();
    tx.remove_policy(trap).expect("remove trap");
    tx.commit().expect("commit");
    let io = run(&mut gw1, IN, &[host1_datagram(0)]);
    assert_eq!(io.sent.len(), 1, "protected by the tunnel again");
    assert_eq!(gw1.stats.drain_traps(|_| {}), 0);
}
