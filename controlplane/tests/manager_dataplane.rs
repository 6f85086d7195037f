//! The dataplane SA sink against the real ESP code: two IKE endpoints in
//! memory, each publishing its Child SAs into its own SA tables through
//! `DataplaneSaSink`. After every single IKE message of a setup, a Child
//! rekey by either side and an IKE rekey, a packet sealed by one side's
//! current outbound SA (found by SPD lookup, as a worker would) must open with
//! the other side's current inbound SA (found by SPI): make-before-break means
//! no instant where a packet finds no SA or the wrong key.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use controlplane::identity::Identity;
use controlplane::ikev2::crypto::DeterministicEntropy;
use controlplane::ikev2::{Action, ConnectionConfig, Endpoint, Event};
use controlplane::manager::{DataplaneSaSink, EspSaControl, SaSink};
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;
use dataplane::crypto::Backend;
use dataplane::esp;
use dataplane::packet::{HeapPacket, Packet};
use dataplane::sa::{Decision, Spi};
use dataplane::spd::{Flow, FlowV4};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn conn(name: &str, local: Ipv4Addr, remote: Ipv4Addr, lts: &str, rts: &str, ike: &str, esp: &str) -> ConnectionConfig {
    let id = |s: &str| -> Identity { s.parse().expect("identity") };
    let mut c = ConnectionConfig::new(
        name,
        SocketAddr::new(local.into(), 500),
        Some(SocketAddr::new(remote.into(), 500)),
        id(&local.to_string()),
        id(&remote.to_string()),
        b"manager dataplane test",
        vec![Proposal::parse_supported(Protocol::Ike, ike).expect("ike")],
        vec![Proposal::parse_supported(Protocol::Esp, esp).expect("esp")],
        vec![TrafficSelector::from_cidr(lts).expect("ts")],
        vec![TrafficSelector::from_cidr(rts).expect("ts")],
    );
    c.force_encap = name.ends_with("encap");
    c
}

struct Side {
    ep: Endpoint,
    sink: DataplaneSaSink,
    ip: Ipv4Addr,
    events: Vec<Event>,
}

struct Net {
    a: Side,
    b: Side,
    now: Instant,
    /// (to B?, from, to, IKE message)
    wire: VecDeque<(bool, SocketAddr, SocketAddr, Vec<u8>)>,
    /// Packets checked each way.
    checked: usize,
    established: bool,
}

impl Net {
    fn new(ca: ConnectionConfig, cb: ConnectionConfig) -> Self {
        let side = |seed: &[u8], ip| Side {
            ep: Endpoint::new(Box::new(DeterministicEntropy::new(seed))),
            sink: DataplaneSaSink::new(EspSaControl::new(64), Backend::Auto),
            ip,
            events: Vec::new(),
        };
        let mut n = Net { a: side(b"a", A_IP), b: side(b"b", B_IP), now: Instant::now(), wire: VecDeque::new(), checked: 0, established: false };
        let now = n.now;
        let (_, acts) = n.a.ep.add_connection(ca, now);
        n.apply(false, acts);
        let (_, acts) = n.b.ep.add_connection(cb, now);
        n.apply(true, acts);
        n
    }

    fn side(&mut self, b: bool) -> &mut Side {
        if b {
            &mut self.b
        } else {
            &mut self.a
        }
    }

    fn apply(&mut self, on_b: bool, acts: Vec<Action>) {
        let now = self.now;
        for act in acts {
            match act {
                Action::Send { from, to, bytes } => self.wire.push_back((!on_b, from, to, bytes)),
                Action::InstallChildSa(sa) => self.side(on_b).sink.install(&sa, now).expect("install"),
                Action::RemoveChildSa(sa) => self.side(on_b).sink.remove(&sa, now).expect("remove"),
                Action::Event(e) => self.side(on_b).events.push(e),
                Action::SendNatKeepalive { .. } => panic!("no NAT between these two"),
            }
        }
    }

    /// Delivers messages one at a time, checking traffic after each.
    fn run(&mut self) {
        let mut n = 0;
        while let Some((to_b, from, to, bytes)) = self.wire.pop_front() {
            n += 1;
            assert!(n < 100, "message loop");
            let now = self.now;
            let acts = self.side(to_b).ep.handle_datagram(to, from, &bytes, now);
            self.apply(to_b, acts);
            self.check_traffic();
        }
    }

    /// Lets virtual time pass (grace timers of old SAs).
    fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        let acts = self.a.ep.handle_timeout(now);
        self.apply(false, acts);
        let acts = self.b.ep.handle_timeout(now);
        self.apply(true, acts);
        self.run();
    }

    fn check_traffic(&mut self) {
        if !self.established {
            return;
        }
        seal_open(&self.a, &self.b, "10.1.0.5", "10.2.0.7");
        seal_open(&self.b, &self.a, "10.2.0.7", "10.1.0.5");
        self.checked += 1;
    }

    fn child_ups(&self) -> (usize, usize) {
        let n = |s: &Side| s.events.iter().filter(|e| matches!(e, Event::ChildSaUp { .. })).count();
        (n(&self.a), n(&self.b))
    }
}

/// An IPv4/UDP packet src → dst carrying a marker.
fn inner_packet(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let payload = b"make-before-break";
    let total = 20 + 8 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let csum = dataplane::wire::checksum::checksum(&p);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, (8 + payload.len()) as u8, 0, 0]);
    p.extend_from_slice(payload);
    p
}

/// `from` seals with the SA its SPD picks; `to` finds the SA by SPI and opens.
fn seal_open(from: &Side, to: &Side, src: &str, dst: &str) {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().expect("ip"), dst.parse().expect("ip"));
    let out_table = from.sink.control().current();
    let flow = Flow::V4(FlowV4::v4(src, dst, 17, 12345, 12345));
    let Decision::Protect(sa) = out_table.outbound(&flow) else { panic!("{src} -> {dst}: no PROTECT policy at {}", from.ip) };
    assert_eq!(sa.config().dst, IpAddr::V4(to.ip));
    let inner = inner_packet(src, dst);
    let mut pkt = HeapPacket::from_slice_with_room(&inner, 128, 128);
    esp::encap(sa, &sa.new_state(), &mut pkt).expect("encap");
    let in_table = to.sink.control().current();
    let spi = Spi(sa.spi().0);
    let Some(isa) = in_table.inbound(spi) else { panic!("{} sends SPI {spi:?} that {} has not installed", from.ip, to.ip) };
    let state = isa.new_state().expect("state");
    esp::decap(isa, &state, &mut pkt).expect("the peer's inbound SA opens what our outbound SA sealed");
    assert_eq!(pkt.data(), &inner[..]);
}

fn up(ike: &str, esp: &str, encap: bool) -> Net {
    let suffix = if encap { "encap" } else { "" };
    let ca = conn(&format!("a{suffix}"), A_IP, B_IP, "10.1.0.0/24", "10.2.0.0/24", ike, esp);
    let cb = conn(&format!("b{suffix}"), B_IP, A_IP, "10.2.0.0/24", "10.1.0.0/24", ike, esp);
    let mut net = Net::new(ca, cb);
    let id = controlplane::ikev2::ConnectionId(0);
    let now = net.now;
    let acts = net.a.ep.initiate(id, now);
    net.apply(false, acts);
    net.run();
    assert_eq!(net.child_ups(), (1, 1), "{:#?}", net.a.events);
    net.established = true;
    net.check_traffic();
    net
}

fn rekey_child(net: &mut Net, by_b: bool) {
    let side = net.side(by_b);
    let sa = side.ep.ike_sas()[0].clone();
    let child = sa.children.iter().find(|c| c.active).expect("active child").id;
    let now = net.now;
    let acts = net.side(by_b).ep.rekey_child(sa.id, child, now);
    net.apply(by_b, acts);
    net.run();
}

fn rekey_ike(net: &mut Net, by_b: bool) {
    let id = net.side(by_b).ep.ike_sas()[0].id;
    let now = net.now;
    let acts = net.side(by_b).ep.rekey_ike(id, now);
    net.apply(by_b, acts);
    net.run();
}

fn inbound_count(s: &Side) -> usize {
    s.sink.control().current().inbound_len()
}

#[test]
fn every_message_keeps_traffic_flowing() {
    for (ike, esp, encap) in [
        ("aes128gcm16-prfsha256-ecp256", "aes128gcm16", false),
        ("aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519", true),
        ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305-esn", false),
    ] {
        let mut net = up(ike, esp, encap);
        rekey_child(&mut net, false);
        rekey_child(&mut net, true);
        assert_eq!(net.child_ups(), (3, 3), "{ike}");
        rekey_ike(&mut net, true);
        rekey_child(&mut net, false);
        // Old inbound SAs go after the grace time; then one pair is left.
        net.advance(Duration::from_secs(30));
        assert_eq!((inbound_count(&net.a), inbound_count(&net.b)), (1, 1), "{ike}");
        net.check_traffic();
        assert!(net.checked >= 12, "{ike}: only {} checks", net.checked);
        // Delete: everything leaves both tables.
        let id = net.a.ep.ike_sas()[0].id;
        let now = net.now;
        let acts = net.a.ep.delete_ike(id, now);
        net.established = false;
        net.apply(false, acts);
        net.run();
        for s in [&net.a, &net.b] {
            let t = s.sink.control().current();
            assert_eq!(t.inbound_len(), 0, "{ike}");
            let flow = Flow::V4(FlowV4::v4("10.1.0.5".parse().expect("ip"), "10.2.0.7".parse().expect("ip"), 17, 1, 1));
            assert!(matches!(t.outbound(&flow), Decision::NoPolicy), "{ike}: a policy outlived its SA");
        }
    }
}

#[test]
fn udp_encapsulation_follows_the_ike_sa() {
    let net = up("aes128gcm16-prfsha256-ecp256", "aes128gcm16", true);
    let t = net.a.sink.control().current();
    let flow = Flow::V4(FlowV4::v4("10.1.0.5".parse().expect("ip"), "10.2.0.7".parse().expect("ip"), 17, 1, 1));
    let Decision::Protect(sa) = t.outbound(&flow) else { panic!("no policy") };
    let udp = sa.config().udp.expect("UDP encapsulation when forced (RFC 3948)");
    assert_eq!((udp.src_port, udp.dst_port), (4500, 4500));
}
