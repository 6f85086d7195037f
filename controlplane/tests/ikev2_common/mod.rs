//! Two IKEv2 endpoints in memory with a virtual clock and a scriptable
//! network (loss, duplication, delay, NAT), shared by the ikev2_* tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use controlplane::identity::Identity;
use controlplane::ikev2::crypto::DeterministicEntropy;
use controlplane::ikev2::nat_t::{classify_udp4500, frame_ike, Udp4500};
use controlplane::ikev2::{
    Action, ChildSaInstall, ChildSaRemove, ConnectionConfig, ConnectionId, Endpoint, Event, Failure, FailureKind,
};
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;

pub const A_IP: &str = "198.51.100.1";
pub const B_IP: &str = "198.51.100.2";
/// The public address of the NAT in front of A, when there is one.
pub const NAT_IP: &str = "203.0.113.5";

pub fn ike(s: &str) -> Vec<Proposal> {
    vec![Proposal::parse_supported(Protocol::Ike, s).expect("IKE proposal")]
}

pub fn esp(s: &str) -> Vec<Proposal> {
    vec![Proposal::parse_supported(Protocol::Esp, s).expect("ESP proposal")]
}

pub fn ts(s: &str) -> Vec<TrafficSelector> {
    s.split(',').map(|x| TrafficSelector::from_cidr(x.trim()).expect("selector")).collect()
}

pub fn id(s: &str) -> Identity {
    s.parse().expect("identity")
}

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

/// A's side (initiator by default): 10.1.0.0/24 behind it.
pub fn conn_a() -> ConnectionConfig {
    ConnectionConfig::new(
        "to-b",
        addr(A_IP, 500),
        Some(addr(B_IP, 500)),
        id("a.example"),
        id("b.example"),
        b"correct horse battery staple",
        ike("aes128gcm16-prfsha256-ecp256"),
        esp("aes128gcm16"),
        ts("10.1.0.0/24"),
        ts("10.2.0.0/24"),
    )
}

/// B's side (responder): 10.2.0.0/24 behind it.
pub fn conn_b() -> ConnectionConfig {
    ConnectionConfig::new(
        "to-a",
        addr(B_IP, 500),
        Some(addr(A_IP, 500)),
        id("b.example"),
        id("a.example"),
        b"correct horse battery staple",
        ike("aes128gcm16-prfsha256-ecp256"),
        esp("aes128gcm16"),
        ts("10.2.0.0/24"),
        ts("10.1.0.0/24"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    /// UDP payload as on the wire (with the non-ESP marker on 4500).
    pub payload: Vec<u8>,
    pub sender: Side,
}

impl Datagram {
    /// The IKE message inside.
    pub fn ike(&self) -> &[u8] {
        if self.from.port() == 4500 || self.to.port() == 4500 {
            match classify_udp4500(&self.payload) {
                Udp4500::Ike(m) => m,
                _ => &[],
            }
        } else {
            &self.payload
        }
    }
}

/// What the network does with the n-th datagram (counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    Drop,
    /// Deliver twice in a row.
    Duplicate,
    /// Deliver now and once more when the network is otherwise idle.
    DuplicateLate,
}

/// Everything one endpoint asked for, in order.
#[derive(Debug, Default)]
pub struct Record {
    pub events: Vec<Event>,
    pub installs: Vec<ChildSaInstall>,
    pub removes: Vec<ChildSaRemove>,
    /// "install:<dir>:<spi>" / "remove:<spi>" / "send" / "keepalive" in action order.
    pub order: Vec<String>,
    /// NAT keepalives asked for: (virtual time, from, to).
    pub keepalives: Vec<(Instant, SocketAddr, SocketAddr)>,
}

impl Record {
    pub fn failures(&self) -> Vec<&Failure> {
        self.events.iter().filter_map(|e| if let Event::Failure(f) = e { Some(&**f) } else { None }).collect()
    }
    pub fn failure_kinds(&self) -> Vec<&FailureKind> {
        self.failures().into_iter().map(|f| &f.kind).collect()
    }
    pub fn count<F: Fn(&Event) -> bool>(&self, f: F) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

pub struct Peer {
    pub ep: Endpoint,
    pub ip: IpAddr,
    pub conn: ConnectionId,
    pub rec: Record,
}

pub type Filter = Box<dyn FnMut(usize, &Datagram) -> Verdict>;

pub struct Net {
    pub a: Peer,
    pub b: Peer,
    pub start: Instant,
    pub now: Instant,
    pub queue: VecDeque<Datagram>,
    pub late: Vec<Datagram>,
    pub sent: usize,
    pub filter: Filter,
    /// A is behind a NAT (source address/port rewritten).
    pub nat: bool,
    pub wire: Vec<Datagram>,
}

impl Net {
    pub fn new(a: ConnectionConfig, b: ConnectionConfig) -> Self {
        Self::with_seeds(a, b, b"seed-a", b"seed-b")
    }

    pub fn with_seeds(a: ConnectionConfig, b: ConnectionConfig, sa: &[u8], sb: &[u8]) -> Self {
        let start = Instant::now();
        let mut ea = Endpoint::new(Box::new(DeterministicEntropy::new(sa)));
        let mut eb = Endpoint::new(Box::new(DeterministicEntropy::new(sb)));
        let (ca, _) = ea.add_connection(a, start);
        let (cb, _) = eb.add_connection(b, start);
        Net {
            a: Peer { ep: ea, ip: A_IP.parse().expect("ip"), conn: ca, rec: Record::default() },
            b: Peer { ep: eb, ip: B_IP.parse().expect("ip"), conn: cb, rec: Record::default() },
            start,
            now: start,
            queue: VecDeque::new(),
            late: Vec::new(),
            sent: 0,
            filter: Box::new(|_, _| Verdict::Deliver),
            nat: false,
            wire: Vec::new(),
        }
    }

    pub fn peer(&mut self, s: Side) -> &mut Peer {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Feeds one endpoint's actions into the network and the record.
    pub fn absorb(&mut self, side: Side, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { from, to, bytes } => {
                    self.peer(side).rec.order.push("send".into());
                    let payload = frame_ike(from.port(), to.port(), &bytes);
                    let mut d = Datagram { from, to, payload, sender: side };
                    if self.nat && side == Side::A {
                        // Outbound through A's NAT: a public address, a mapped port.
                        d.from = SocketAddr::new(NAT_IP.parse().expect("ip"), from.port() + 30000);
                    }
                    let verdict = (self.filter)(self.sent, &d);
                    self.sent += 1;
                    self.wire.push(d.clone());
                    match verdict {
                        Verdict::Deliver => self.queue.push_back(d),
                        Verdict::Drop => {}
                        Verdict::Duplicate => {
                            self.queue.push_back(d.clone());
                            self.queue.push_back(d);
                        }
                        Verdict::DuplicateLate => {
                            self.late.push(d.clone());
                            self.queue.push_back(d);
                        }
                    }
                }
                Action::InstallChildSa(i) => {
                    let p = self.peer(side);
                    p.rec.order.push(format!("install:{:?}:{}", i.directions, i.inbound_spi));
                    p.rec.installs.push(*i);
                }
                Action::RemoveChildSa(r) => {
                    let p = self.peer(side);
                    p.rec.order.push(format!("remove:{:?}:{}", r.directions, r.inbound_spi));
                    p.rec.removes.push(r);
                }
                Action::Event(e) => self.peer(side).rec.events.push(e),
                Action::SendNatKeepalive { from, to } => {
                    let now = self.now;
                    let p = self.peer(side);
                    p.rec.order.push("keepalive".into());
                    p.rec.keepalives.push((now, from, to));
                }
            }
        }
    }

    fn deliver(&mut self, mut d: Datagram) {
        if self.nat && d.sender == Side::B {
            // Inbound through A's NAT: back to A's private address and port.
            d.to = SocketAddr::new(A_IP.parse().expect("ip"), d.to.port() - 30000);
        }
        let side = if d.to.ip() == self.a.ip { Side::A } else { Side::B };
        let now = self.now;
        let msg = d.ike().to_vec();
        let actions = self.peer(side).ep.handle_datagram(d.to, d.from, &msg, now);
        self.absorb(side, actions);
    }

    pub fn initiate(&mut self, side: Side) {
        let now = self.now;
        let p = self.peer(side);
        let conn = p.conn;
        let actions = p.ep.initiate(conn, now);
        self.absorb(side, actions);
    }

    /// Delivers everything and runs timers until `until` (virtual time)
    /// or until nothing is pending before it.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            if let Some(d) = self.queue.pop_front() {
                self.deliver(d);
                continue;
            }
            if !self.late.is_empty() {
                let late = std::mem::take(&mut self.late);
                self.queue.extend(late);
                continue;
            }
            let next = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    let acts = self.a.ep.handle_timeout(now);
                    self.absorb(Side::A, acts);
                    let acts = self.b.ep.handle_timeout(now);
                    self.absorb(Side::B, acts);
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("network did not settle (event loop)");
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Delivers what is queued, without advancing time.
    pub fn settle(&mut self) {
        let now = self.now;
        self.run_until(now);
    }

    pub fn established(&self) -> bool {
        let up = |p: &Peer| p.ep.ike_sas().iter().any(|s| s.established);
        up(&self.a) && up(&self.b)
    }

    /// Active Child SAs of a side as (inbound, outbound) SPIs.
    pub fn active_children(&self, s: Side) -> Vec<(u32, u32)> {
        let p = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        p.ep.ike_sas()
            .iter()
            .flat_map(|sa| sa.children.iter().filter(|c| c.active).map(|c| (c.inbound_spi.0, c.outbound_spi.0)).collect::<Vec<_>>())
            .collect()
    }

    /// The two sides' active Child SAs pair up (A's inbound is B's outbound
    /// and back) and there is exactly one.
    pub fn assert_one_matching_child(&self) {
        let a = self.active_children(Side::A);
        let b = self.active_children(Side::B);
        assert_eq!(a.len(), 1, "A children {a:x?}");
        assert_eq!(b.len(), 1, "B children {b:x?}");
        assert_eq!((a[0].0, a[0].1), (b[0].1, b[0].0), "SPIs cross-match");
    }

    /// The keys of the latest installs agree across the two sides.
    pub fn assert_keys_match(&self) {
        let ia = self.a.rec.installs.iter().rev().find(|i| i.directions != controlplane::ikev2::Directions::OutboundOnly).expect("A install");
        let ib = self.b.rec.installs.iter().find(|i| i.outbound_spi == ia.inbound_spi).expect("B install for A's inbound SPI");
        assert_eq!(*ia.inbound_key, *ib.outbound_key);
        assert_eq!(*ia.outbound_key, *ib.inbound_key);
        assert_ne!(*ia.inbound_key, *ia.outbound_key);
    }
}
