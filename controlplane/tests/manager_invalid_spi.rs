//! `ManagerClient::report_unknown_spi` (issue 7 item 4): the manager counts
//! ESP on unknown SPIs per (peer, SPI) and, when an IKE SA with that peer is
//! established, tells the peer with an INVALID_SPI notify (RFC 7296 §2.21.4,
//! §3.10.1), at most one per peer per interval. The manager under test runs
//! on an in-memory transport; its peer is a bare engine driven by the test,
//! which sees exactly what the manager put on the wire.
#![forbid(unsafe_code)]

mod ikev2_common;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender};
use controlplane::ikev2::crypto::DeterministicEntropy;
use controlplane::ikev2::{Action, ConnectionId, Endpoint, Event};
use controlplane::manager::{Datagram, IkeTransport, Manager, ManagerClient, RecordingSaSink};
use ikev2_common::{conn_a, conn_b, A_IP};

/// The manager's network: what it sends goes to the test, what the test
/// queues it receives.
struct MemTransport {
    out: Sender<(SocketAddr, SocketAddr, Vec<u8>)>,
    inbox: Receiver<Datagram>,
}

impl IkeTransport for MemTransport {
    /// IKE messages only: the wire of this test carries them unframed.
    fn send(&mut self, local: SocketAddr, remote: SocketAddr, ike: &[u8]) -> io::Result<()> {
        self.out.send((local, remote, ike.to_vec())).map_err(io::Error::other)
    }
    fn send_payload(&mut self, _local: SocketAddr, _remote: SocketAddr, _payload: &[u8]) -> io::Result<()> {
        Err(io::Error::other("no NAT on this test's wire: nothing but IKE messages expected"))
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Datagram>> {
        Ok(self.inbox.recv_timeout(timeout).ok())
    }
}

struct Rig {
    gw: Manager,
    client: ManagerClient,
    wire_out: Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
    wire_in: Sender<Datagram>,
    peer: Endpoint,
    peer_conn: ConnectionId,
    peer_events: Vec<Event>,
    /// IKE messages the manager sent.
    gw_sent: usize,
}

impl Rig {
    fn new() -> Self {
        let (out_tx, out_rx) = channel::unbounded();
        let (in_tx, in_rx) = channel::unbounded();
        let t = MemTransport { out: out_tx, inbox: in_rx };
        // The gateway is B (responder), the peer A.
        let (gw, client) = Manager::new(vec![conn_b()], Box::new(t), Box::new(RecordingSaSink::new()));
        let mut peer = Endpoint::new(Box::new(DeterministicEntropy::new(b"peer")));
        let (peer_conn, _) = peer.add_connection(conn_a(), std::time::Instant::now());
        Rig { gw, client, wire_out: out_rx, wire_in: in_tx, peer, peer_conn, peer_events: Vec::new(), gw_sent: 0 }
    }

    fn peer_actions(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send { from, to, bytes } => {
                    self.wire_in.send(Datagram { local: to, remote: from, ike: bytes }).expect("manager inbox");
                }
                Action::Event(e) => self.peer_events.push(e),
                _ => {}
            }
        }
    }

    /// Manager rounds and deliveries until nothing moves (bounded).
    fn settle(&mut self) {
        for _ in 0..50 {
            assert!(self.gw.step(Duration::ZERO).expect("step"));
            let sent: Vec<_> = self.wire_out.try_iter().collect();
            if sent.is_empty() && self.wire_in.is_empty() {
                return;
            }
            self.gw_sent += sent.len();
            for (from, to, bytes) in sent {
                let acts = self.peer.handle_datagram(to, from, &bytes, std::time::Instant::now());
                self.peer_actions(acts);
            }
        }
        panic!("the exchange did not settle");
    }

    fn up(&mut self) {
        let acts = self.peer.initiate(self.peer_conn, std::time::Instant::now());
        self.peer_actions(acts);
        self.settle();
        assert!(self.gw.endpoint().ike_sas().iter().any(|s| s.established), "IKE SA up on the gateway");
        assert!(self.peer.ike_sas().iter().any(|s| s.established), "IKE SA up on the peer");
    }

    fn invalid_spi_reports(&self) -> Vec<u32> {
        self.peer_events.iter().filter_map(|e| if let Event::PeerInvalidSpi { spi, .. } = e { Some(spi.0) } else { None }).collect()
    }
}

#[test]
fn a_hundred_reports_in_a_burst_give_one_notify() {
    let mut rig = Rig::new();
    rig.up();
    let peer: IpAddr = A_IP.parse().expect("ip");
    let before = rig.gw_sent;
    // All queued before the manager's next round: one burst, well inside the interval.
    for _ in 0..100 {
        rig.client.report_unknown_spi(peer, 0xdead_beef);
    }
    rig.settle();
    assert_eq!(rig.invalid_spi_reports(), vec![0xdead_beef], "the peer engine received exactly one INVALID_SPI");
    assert_eq!(rig.gw_sent - before, 1, "one INFORMATIONAL request, nothing else");
    let st = rig.gw.status();
    assert_eq!(st.unknown_spis.len(), 1);
    let c = &st.unknown_spis[0];
    assert_eq!((c.peer, c.spi, c.packets, c.notifies), (peer, 0xdead_beef, 100, 1));
    assert_eq!(st.unknown_spi_reports_dropped, 0);
    // The peer answered: the gateway's window is free again, no failure logged.
    assert!(st.connections.iter().all(|c| c.last_failure.is_none()), "{:?}", st.connections);
}

#[test]
fn without_an_ike_sa_only_counted() {
    let mut rig = Rig::new();
    rig.up();
    // ESP from an address no IKE SA has.
    let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
    rig.client.report_unknown_spi(stranger, 0x1000);
    rig.client.report_unknown_spi(stranger, 0x1001);
    let before = rig.gw_sent;
    rig.settle();
    assert_eq!(rig.gw_sent, before, "nothing sent to a peer without an IKE SA");
    assert!(rig.invalid_spi_reports().is_empty());
    let st = rig.gw.status();
    let mut counted: Vec<_> = st.unknown_spis.iter().map(|c| (c.peer, c.spi, c.packets, c.notifies)).collect();
    counted.sort();
    assert_eq!(counted, vec![(stranger, 0x1000, 1, 0), (stranger, 0x1001, 1, 0)]);
}

#[test]
fn a_full_report_queue_drops_and_counts() {
    let rig = Rig::new();
    let peer: IpAddr = A_IP.parse().expect("ip");
    let n = controlplane::manager::UNKNOWN_SPI_QUEUE + 5;
    for spi in 0..n {
        rig.client.report_unknown_spi(peer, spi as u32);
    }
    assert_eq!(rig.gw.status().unknown_spi_reports_dropped, 5);
}
