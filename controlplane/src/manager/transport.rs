//! How IKE datagrams reach the manager and leave it. Two implementations:
//! [`UdpTransport`] on kernel UDP sockets (ports 500 and 4500, for running
//! without DPDK) and [`PuntTransport`] on channels fed by the dataplane's punt
//! path. Both carry whole UDP payloads on port 4500 and strip/add the non-ESP
//! marker here (RFC 3948 §2.2), so the engine only ever sees IKE messages.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::ikev2::nat_t::{classify_udp4500, frame_ike, Udp4500, NAT_KEEPALIVE};
use crate::ikev2::NAT_T_PORT;

/// The IKE port of RFC 7296 §2.
pub const IKE_PORT: u16 = 500;

/// One received IKE message (non-ESP marker already removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Our address and port it arrived on.
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The IKE message.
    pub ike: Vec<u8>,
}

/// Makes a transport's `recv` return early (`Ok(None)`): called after each
/// command sent to the manager, so commands do not wait for the poll interval.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What the manager needs from the network. `send` gets an IKE message and
/// adds the non-ESP marker when either port is 4500; `send_keepalive` sends
/// the 1-octet NAT keepalive (no marker, RFC 3948 §2.3); both go through
/// `send_payload`, the one thing a transport must implement for sending.
/// `recv` returns IKE messages only (ESP and NAT keepalives on 4500 are not
/// the manager's).
pub trait IkeTransport: Send {
    /// Sends one UDP payload from `local` to `remote` exactly as given.
    fn send_payload(&mut self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) -> io::Result<()>;
    /// Sends one IKE message from `local` to `remote` (RFC 3948 §2.2 framing).
    fn send(&mut self, local: SocketAddr, remote: SocketAddr, ike: &[u8]) -> io::Result<()> {
        self.send_payload(local, remote, &frame_ike(local.port(), remote.port(), ike))
    }
    /// Sends a NAT keepalive: the single octet 0xFF (RFC 3948 §2.3).
    fn send_keepalive(&mut self, local: SocketAddr, remote: SocketAddr) -> io::Result<()> {
        self.send_payload(local, remote, &NAT_KEEPALIVE)
    }
    /// Waits up to `timeout` for one IKE message; `Ok(None)` on timeout or wake.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Datagram>>;
    /// A way to interrupt `recv` from another thread (`None`: commands are
    /// seen within the manager's poll interval).
    fn waker(&self) -> Option<Waker> {
        None
    }
}

/// What the receiving threads (or a waker) put in a transport's queue.
#[derive(Debug)]
enum Incoming {
    Datagram(Datagram),
    Wake,
}

/// Counters of datagrams a transport did not hand to the engine.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// ESP on port 4500 (belongs to the dataplane).
    pub esp_ignored: AtomicU64,
    /// NAT keepalives (RFC 3948 §2.3).
    pub keepalives: AtomicU64,
    /// 1–3 byte payloads on 4500 other than a keepalive.
    pub invalid: AtomicU64,
    /// Punted datagrams dropped because the manager's queue was full.
    pub queue_full: AtomicU64,
}

/// A UDP payload as it was on the wire → the IKE message, if it is one.
fn unframe(local_port: u16, remote_port: u16, payload: &[u8], stats: &TransportStats) -> Option<Vec<u8>> {
    if local_port != NAT_T_PORT && remote_port != NAT_T_PORT {
        return Some(payload.to_vec());
    }
    match classify_udp4500(payload) {
        Udp4500::Ike(m) => Some(m.to_vec()),
        Udp4500::Esp(_) => {
            stats.esp_ignored.fetch_add(1, Ordering::Relaxed);
            None
        }
        Udp4500::Keepalive => {
            stats.keepalives.fetch_add(1, Ordering::Relaxed);
            None
        }
        Udp4500::Invalid => {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Kernel UDP sockets: one on port 500 and one on 4500 per local address.
///
/// Each socket has a receiving thread that feeds one queue, so `recv` waits
/// on all of them at once without `poll(2)` (this crate has no `unsafe`).
/// The sockets are bound to each address rather than to the wildcard, so the
/// local address of a datagram is known without IP_PKTINFO.
///
/// Ports can be moved for unprivileged tests and benchmarks
/// ([`UdpTransport::bind_ports`]): the engine always speaks of 500 and 4500,
/// and the transport maps them on both our side and the peer's.
#[derive(Debug)]
pub struct UdpTransport {
    sockets: HashMap<SocketAddr, UdpSocket>,
    queue: Receiver<Incoming>,
    wake: Sender<Incoming>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    ike_port: u16,
    natt_port: u16,
    stats: Arc<TransportStats>,
}

/// How often the receiving threads look at the stop flag.
const RECV_POLL: Duration = Duration::from_millis(100);

impl UdpTransport {
    /// Binds `addr`:500 and `addr`:4500 for every address.
    pub fn bind(addrs: &[IpAddr]) -> io::Result<Self> {
        Self::bind_ports(addrs, IKE_PORT, NAT_T_PORT)
    }

    /// Same on other ports: engine port 500 ↔ `ike_port`, 4500 ↔ `natt_port`
    /// (on both ends: the peer must use the same mapping).
    pub fn bind_ports(addrs: &[IpAddr], ike_port: u16, natt_port: u16) -> io::Result<Self> {
        let (tx, rx) = channel::unbounded();
        let mut t = UdpTransport {
            sockets: HashMap::new(),
            queue: rx,
            wake: tx.clone(),
            threads: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            ike_port,
            natt_port,
            stats: Arc::new(TransportStats::default()),
        };
        let mut seen = Vec::new();
        for &addr in addrs {
            if seen.contains(&addr) {
                continue;
            }
            seen.push(addr);
            for (engine_port, port) in [(IKE_PORT, ike_port), (NAT_T_PORT, natt_port)] {
                let sock = UdpSocket::bind(SocketAddr::new(addr, port)).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot bind UDP {}: {e}", SocketAddr::new(addr, port)))
                })?;
                sock.set_read_timeout(Some(RECV_POLL))?;
                let engine_local = SocketAddr::new(addr, engine_port);
                let reader = sock.try_clone()?;
                t.sockets.insert(engine_local, sock);
                let (tx, stop, stats) = (tx.clone(), Arc::clone(&t.stop), Arc::clone(&t.stats));
                let map = PortMap { ike_port, natt_port };
                let th = std::thread::Builder::new()
                    .name(format!("ike-udp-{port}"))
                    .spawn(move || receive_loop(&reader, engine_local, map, &tx, &stop, &stats))?;
                t.threads.push(th);
            }
        }
        Ok(t)
    }

    /// Counters of what was not IKE.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.stats)
    }

    fn wire_port(&self, engine_port: u16) -> u16 {
        PortMap { ike_port: self.ike_port, natt_port: self.natt_port }.to_wire(engine_port)
    }
}

#[derive(Debug, Clone, Copy)]
struct PortMap {
    ike_port: u16,
    natt_port: u16,
}

impl PortMap {
    fn to_wire(self, engine_port: u16) -> u16 {
        match engine_port {
            IKE_PORT => self.ike_port,
            NAT_T_PORT => self.natt_port,
            p => p,
        }
    }

    fn to_engine(self, wire_port: u16) -> u16 {
        if wire_port == self.ike_port {
            IKE_PORT
        } else if wire_port == self.natt_port {
            NAT_T_PORT
        } else {
            wire_port
        }
    }
}

fn receive_loop(
    sock: &UdpSocket,
    local: SocketAddr,
    map: PortMap,
    tx: &Sender<Incoming>,
    stop: &AtomicBool,
    stats: &TransportStats,
) {
    // IKE messages fit in 64 KiB (UDP's limit).
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let remote = SocketAddr::new(from.ip(), map.to_engine(from.port()));
                let Some(payload) = buf.get(..n) else { continue };
                if let Some(ike) = unframe(local.port(), remote.port(), payload, stats) {
                    if tx.send(Incoming::Datagram(Datagram { local, remote, ike })).is_err() {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            // ICMP port unreachable from an earlier send shows up here on Linux: not fatal.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::warn!("UDP receive on {local} failed: {e}; this socket stops receiving");
                return;
            }
        }
    }
}

impl IkeTransport for UdpTransport {
    fn send_payload(&mut self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let sock = self.sockets.get(&local).ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, format!("no UDP socket bound for {local}: add the address to the transport"))
        })?;
        let to = SocketAddr::new(remote.ip(), self.wire_port(remote.port()));
        sock.send_to(payload, to)?;
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Datagram>> {
        match self.queue.recv_timeout(timeout) {
            Ok(Incoming::Datagram(d)) => Ok(Some(d)),
            Ok(Incoming::Wake) | Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "every UDP receiving thread stopped"))
            }
        }
    }

    fn waker(&self) -> Option<Waker> {
        let tx = self.wake.clone();
        Some(Arc::new(move || {
            let _ = tx.send(Incoming::Wake);
        }))
    }
}

impl Drop for UdpTransport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP datagram on the punt path, payload as on the wire (with the non-ESP
/// marker on port 4500). The dataplane fills `local`/`remote` from the IP
/// and UDP headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub payload: Vec<u8>,
}

/// The dataplane's ends of the punt path: it offers received IKE datagrams
/// with [`PuntEnds::punt`] (never blocks: a full queue drops and counts) and
/// drains [`PuntEnds::outbound`] to build the UDP/IP/Ethernet headers and send.
#[derive(Debug, Clone)]
pub struct PuntEnds {
    to_manager: Sender<UdpDatagram>,
    /// Datagrams the manager wants sent (payload framed for the wire).
    pub outbound: Receiver<UdpDatagram>,
    stats: Arc<TransportStats>,
}

impl PuntEnds {
    /// Hands one received UDP 500/4500 datagram to the manager. Returns false
    /// (and counts) when the manager's queue is full or gone.
    pub fn punt(&self, d: UdpDatagram) -> bool {
        match self.to_manager.try_send(d) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Counters (queue full, ESP/keepalives ignored by the manager).
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }
}

/// The manager's end of the punt path (a bounded queue each way).
#[derive(Debug)]
pub struct PuntTransport {
    from_dataplane: Receiver<UdpDatagram>,
    wake_rx: Receiver<()>,
    wake_tx: Sender<()>,
    to_dataplane: Sender<UdpDatagram>,
    stats: Arc<TransportStats>,
}

/// A punt path with room for `capacity` datagrams each way.
pub fn punt_channel(capacity: usize) -> (PuntEnds, PuntTransport) {
    let (in_tx, in_rx) = channel::bounded(capacity);
    let (out_tx, out_rx) = channel::bounded(capacity);
    let stats = Arc::new(TransportStats::default());
    // One pending wake is enough: the manager reads every queued command.
    let (wake_tx, wake_rx) = channel::bounded(1);
    (
        PuntEnds { to_manager: in_tx, outbound: out_rx, stats: Arc::clone(&stats) },
        PuntTransport { from_dataplane: in_rx, wake_rx, wake_tx, to_dataplane: out_tx, stats },
    )
}

impl IkeTransport for PuntTransport {
    fn send_payload(&mut self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let d = UdpDatagram { local, remote, payload: payload.to_vec() };
        // A full tx queue means the workers are not draining it: drop (IKE retransmits).
        match self.to_dataplane.try_send(d) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(io::Error::new(io::ErrorKind::WouldBlock, "punt tx queue full")),
            Err(TrySendError::Disconnected(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "dataplane punt path closed")),
        }
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Datagram>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let d = channel::select! {
                recv(self.from_dataplane) -> d => match d {
                    Ok(d) => d,
                    Err(_) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "dataplane punt path closed")),
                },
                recv(self.wake_rx) -> _ => return Ok(None),
                default(left) => return Ok(None),
            };
            if let Some(ike) = unframe(d.local.port(), d.remote.port(), &d.payload, &self.stats) {
                return Ok(Some(Datagram { local: d.local, remote: d.remote, ike }));
            }
        }
    }

    fn waker(&self) -> Option<Waker> {
        let tx = self.wake_tx.clone();
        Some(Arc::new(move || {
            let _ = tx.try_send(());
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn punt_strips_marker_and_skips_esp() {
        let (ends, mut t) = punt_channel(8);
        let (l, r) = (sa("198.51.100.2:4500"), sa("198.51.100.1:4500"));
        assert!(ends.punt(UdpDatagram { local: l, remote: r, payload: vec![0, 0, 1, 2, 0, 0, 0, 1, 9] }));
        assert!(ends.punt(UdpDatagram { local: l, remote: r, payload: vec![0xff] }));
        assert!(ends.punt(UdpDatagram { local: l, remote: r, payload: vec![0, 0, 0, 0, 7, 7] }));
        let d = t.recv(Duration::from_millis(10)).expect("recv").expect("one IKE message");
        assert_eq!(d, Datagram { local: l, remote: r, ike: vec![7, 7] });
        assert_eq!(ends.stats().esp_ignored.load(Ordering::Relaxed), 1);
        assert_eq!(ends.stats().keepalives.load(Ordering::Relaxed), 1);
        assert_eq!(t.recv(Duration::from_millis(1)).expect("recv"), None);
        t.send(l, r, &[5]).expect("send");
        t.send(sa("198.51.100.2:500"), sa("198.51.100.1:500"), &[6]).expect("send");
        assert_eq!(ends.outbound.try_recv().expect("framed").payload, vec![0, 0, 0, 0, 5]);
        assert_eq!(ends.outbound.try_recv().expect("plain").payload, vec![6]);
        // RFC 3948 §2.3: one 0xFF octet, no non-ESP marker.
        t.send_keepalive(l, r).expect("keepalive");
        assert_eq!(ends.outbound.try_recv().expect("keepalive"), UdpDatagram { local: l, remote: r, payload: vec![0xff] });
    }

    /// Over real sockets: the peer's socket receives exactly [0xFF] on the
    /// NAT-T port, while an IKE message on the same port carries the marker.
    #[test]
    fn udp_keepalive_is_one_byte_without_marker() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let peer = UdpSocket::bind((lo, 0)).expect("peer socket");
        peer.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let peer_port = peer.local_addr().expect("addr").port();
        // Our 4500 on an ephemeral-ish port; the peer's 4500 is its socket's port.
        let mut t = UdpTransport::bind_ports(&[lo], 0, 0).expect("bind");
        t.natt_port = peer_port;
        let (ours, theirs) = (SocketAddr::new(lo, NAT_T_PORT), SocketAddr::new(lo, NAT_T_PORT));
        t.send_keepalive(ours, theirs).expect("keepalive");
        t.send(ours, theirs, &[0x21, 0x20]).expect("ike");
        let mut buf = [0u8; 64];
        let (n, _) = peer.recv_from(&mut buf).expect("keepalive arrives");
        assert_eq!(&buf[..n], &[0xff]);
        let (n, _) = peer.recv_from(&mut buf).expect("IKE arrives");
        assert_eq!(&buf[..n], &[0, 0, 0, 0, 0x21, 0x20]);
    }

    #[test]
    fn punt_queue_full_is_counted() {
        let (ends, _t) = punt_channel(1);
        let d = UdpDatagram { local: sa("127.0.0.1:500"), remote: sa("127.0.0.2:500"), payload: vec![1] };
        assert!(ends.punt(d.clone()));
        assert!(!ends.punt(d));
        assert_eq!(ends.stats().queue_full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn waker_interrupts_recv() {
        let (_ends, mut t) = punt_channel(1);
        let wake = t.waker().expect("punt transport has a waker");
        let th = std::thread::spawn(move || wake());
        // Without the wake this would sit out the whole minute.
        assert_eq!(t.recv(Duration::from_secs(60)).expect("recv"), None);
        th.join().expect("waker thread");
    }

    #[test]
    fn port_map_round_trip() {
        let m = PortMap { ike_port: 15000, natt_port: 15001 };
        for p in [IKE_PORT, NAT_T_PORT, 1234] {
            assert_eq!(m.to_engine(m.to_wire(p)), p);
        }
    }
}
