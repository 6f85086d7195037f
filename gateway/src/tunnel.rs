//! IKE-negotiated tunnels in `ipsecgw run`: the glue between the DPDK worker
//! and the IKE manager thread (DESIGN.md, "Punt").
//!
//! - **Punt in**: the worker hands IKE frames (UDP 500, and UDP 4500 with the
//!   non-ESP marker, RFC 3948 §2.2) addressed to us to [`punt_frame`], which
//!   turns them into [`UdpDatagram`]s on the manager's bounded queue.
//! - **Punt out**: the manager's datagrams are drained by the worker once per
//!   poll ([`IkeOut::drain`]): an IPv4/IPv6 + UDP packet is built in an mbuf
//!   and routed like any packet the gateway originates (route, neighbour,
//!   Ethernet header) by `Worker::send_local`.
//! - **Child SAs**: [`TunnelSaSink`] puts what the engine installs into the
//!   worker's tables (`TunnelControl`), in the engine's order, so rekeys are
//!   make-before-break (RFC 7296 §2.8): new inbound first, then the outbound
//!   switch with the old SA's policies moved over in one snapshot, the old SA
//!   removed last.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use controlplane::ikev2::{ChildSaInstall, ConnectionConfig};
use controlplane::manager::{
    esp_algorithm, outbound_config, punt_channel, Manager, ManagerHandle, PuntEnds, SaBuilder, SinkError, TableSaSink, UdpDatagram,
    POLICY_PRIORITY_BASE, TRAP_PRIORITY_BASE,
};
use controlplane::selector::TrafficSelector;
use dataplane::crypto::{new_aead, Backend};
use dataplane::esp::{self, InboundConfig};
use dataplane::packet::Packet;
use dataplane::sa::{PolicyAction, PolicySpec, SaId, Spi, TrapId};
use dataplane::wire::{checksum, EthernetFrame, EtherType, IpProtocol, Ipv4Packet, Ipv6Packet};
use dataplane::worker::{InboundTunnel, OutboundTunnel, StaticTunnel, TunnelControl, Worker, WorkerIo};
use zeroize::Zeroizing;

/// IKE datagrams queued each way between the worker and the manager.
pub const PUNT_CAPACITY: usize = 256;

/// UDP ports of IKE (RFC 7296 §2) and NAT-T (RFC 3948).
const IKE_PORTS: [u16; 2] = [500, 4500];

/// Counters of the punt path, shared by the worker and the exit report.
#[derive(Debug, Default)]
pub struct PuntCounters {
    /// IKE datagrams handed to the manager.
    pub to_manager: AtomicU64,
    /// Punted frames that were not IKE (freed).
    pub not_ike: AtomicU64,
    /// IKE datagrams the manager's queue refused.
    pub queue_full: AtomicU64,
    /// Datagrams the manager sent through the worker.
    pub from_manager: AtomicU64,
    /// Outgoing datagrams dropped (no mbuf, too large, bad address family).
    pub send_failed: AtomicU64,
}

/// A received frame (Ethernet header included) → the UDP datagram it carries,
/// if it is UDP to an IKE port.
fn ike_datagram(frame: &[u8]) -> Option<UdpDatagram> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = frame.get(eth.header_len()..)?;
    let (src, dst, l4): (IpAddr, IpAddr, &[u8]) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            if ip.protocol() != IpProtocol::Udp || ip.is_fragment() {
                return None;
            }
            (ip.src_addr().into(), ip.dst_addr().into(), l3.get(ip.header_len()..usize::from(ip.total_len()))?)
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            let up = ip.upper_layer().ok()?;
            if up.protocol != IpProtocol::Udp || up.fragment {
                return None;
            }
            (ip.src_addr().into(), ip.dst_addr().into(), l3.get(up.offset..ip.total_len())?)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
    let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
    let ulen = usize::from(u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]));
    if !IKE_PORTS.contains(&dport) || ulen < 8 {
        return None;
    }
    let payload = l4.get(8..ulen)?.to_vec();
    Some(UdpDatagram { local: SocketAddr::new(dst, dport), remote: SocketAddr::new(src, sport), payload })
}

/// The worker's punt: IKE goes to the manager, anything else is counted and
/// freed (the frame is consumed either way: the datagram is a copy).
pub fn punt_frame(ends: &PuntEnds, counters: &PuntCounters, frame: &[u8]) {
    match ike_datagram(frame) {
        Some(d) => {
            let c = if ends.punt(d) { &counters.to_manager } else { &counters.queue_full };
            c.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            counters.not_ike.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes the IP + UDP packet of `d` into `pkt` (which must be empty).
/// IPv4: UDP checksum computed too (RFC 768 allows zero, but it is cheap and
/// some peers drop zero-checksum IKE); IPv6 requires it (RFC 8200 §8.1).
pub fn build_udp<P: Packet>(pkt: &mut P, d: &UdpDatagram) -> Option<()> {
    let ulen = 8 + d.payload.len();
    let ulen16 = u16::try_from(ulen).ok()?;
    let (sport, dport) = (d.local.port(), d.remote.port());
    let mut udp = Vec::with_capacity(ulen);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&ulen16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&d.payload);
    let (header, pseudo) = match (d.local.ip(), d.remote.ip()) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let total = u16::try_from(20 + ulen).ok()?;
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6] = 0x40; // DF: IKE does its own fragmentation (RFC 7383)
            h[8] = 64;
            h[9] = 17;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&t.octets());
            let c = checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            (h.to_vec(), checksum::pseudo_v4(s, t, 17, ulen16))
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&ulen16.to_be_bytes());
            h[6] = 17;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&t.octets());
            (h.to_vec(), checksum::pseudo_v6(s, t, 17, u32::from(ulen16)))
        }
        _ => return None,
    };
    let c = !checksum::fold(checksum::sum(pseudo, &udp));
    // An all-zero result is sent as all ones (RFC 768).
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    pkt.append(header.len() + udp.len()).ok()?;
    let data = pkt.data_mut();
    data.get_mut(..header.len())?.copy_from_slice(&header);
    data.get_mut(header.len()..header.len() + udp.len())?.copy_from_slice(&udp);
    Some(())
}

/// The worker's end of the punt path (cheap to clone: one per worker).
#[derive(Debug, Clone)]
pub struct IkeLink {
    ends: PuntEnds,
    counters: Arc<PuntCounters>,
    monitor: Option<crate::monitor::ProbeLink>,
}

/// Datagrams from the manager sent per poll at most (the rest wait a poll).
const DRAIN_MAX: usize = 32;

impl IkeLink {
    /// The worker side of `ends`, counting into `counters`.
    pub fn new(ends: PuntEnds, counters: Arc<PuntCounters>) -> Self {
        IkeLink { ends, counters, monitor: None }
    }

    /// A frame the worker punted (consumed: the datagram is a copy).
    pub fn punt(&self, frame: &[u8]) {
        if self.monitor.as_ref().is_some_and(|m| m.reply(frame)) {
            return;
        }
        punt_frame(&self.ends, &self.counters, frame);
    }

    /// Tunnel monitor probes and replies also go through this link (monitor.rs).
    pub fn with_monitor(mut self, link: Option<crate::monitor::ProbeLink>) -> Self {
        self.monitor = link;
        self
    }

    /// Sends what the manager queued; returns how many datagrams it took.
    pub fn drain<P: Packet, I: WorkerIo<P>>(&self, worker: &mut Worker<P>, io: &mut I, now_ms: u64) -> usize {
        let mut n = 0;
        while n < DRAIN_MAX {
            let Ok(d) = self.ends.outbound.try_recv() else { break };
            n += 1;
            let Some(mut pkt) = io.alloc() else {
                self.counters.send_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if build_udp(&mut pkt, &d).is_none() {
                self.counters.send_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.counters.from_manager.fetch_add(1, Ordering::Relaxed);
            worker.send_local(pkt, io, now_ms);
        }
        if let Some(m) = &self.monitor {
            n += m.drain(worker, io, now_ms);
        }
        n
    }
}

impl PuntCounters {
    /// One line for the exit report.
    pub fn report(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "IKE punt path: {} to the manager, {} from it, {} not IKE (freed), {} queue full, {} send failed\n",
            g(&self.to_manager),
            g(&self.from_manager),
            g(&self.not_ike),
            g(&self.queue_full),
            g(&self.send_failed)
        )
    }
}

/// The IKE side of `ipsecgw run`: the manager thread on the punt transport,
/// its SA sink on the worker's tables, and the control socket.
pub struct IkeRuntime {
    handle: Option<ManagerHandle>,
    /// To see when the workers have sent what the manager queued.
    ends: PuntEnds,
    control: Option<crate::cli::Control>,
    counters: Arc<PuntCounters>,
    monitor: Option<crate::monitor::Monitors>,
    /// Trap id → connection ([`report_traps`]).
    traps: Arc<Traps>,
}

impl std::fmt::Debug for IkeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeRuntime").field("counters", &self.counters).finish_non_exhaustive()
    }
}

impl IkeRuntime {
    /// Starts the manager with `connections` (`start` ones initiate at once:
    /// their datagrams wait in the queue until the worker polls). `ctl` is the
    /// worker's tables, whose readers the workers already hold.
    pub fn start(
        connections: Vec<ConnectionConfig>,
        ctl: TunnelControl,
        control: &crate::cli::ControlArgs,
        view: Arc<dyn controlplane::api::DataplaneView>,
        monitors: crate::monitor::MonitorPlan,
    ) -> anyhow::Result<(IkeRuntime, IkeLink)> {
        let (ends, transport) = punt_channel(PUNT_CAPACITY);
        let counters = Arc::new(PuntCounters::default());
        // Trap connections: trap policies instead of initiating (the engine
        // waits for `acquire`); the trap stays under the Child SA's policies.
        let traps = Arc::new(Traps::new(&connections)?);
        let mut tables = tunnel_sa_sink(ctl, Backend::Auto);
        tables.builder_mut().traps = Arc::clone(&traps);
        for c in connections.iter().filter(|c| c.start_action == controlplane::ikev2::StartAction::Trap) {
            tables.trap(&c.name).with_context(|| format!("connection {:?}: installing its trap policies", c.name))?;
        }
        // The tunnel monitor publishes through the same sink (monitor.rs).
        let sink = crate::monitor::SharedSink::new(tables);
        let handle = Manager::spawn(connections, Box::new(transport), Box::new(sink.clone())).context("starting the IKE manager")?;
        let (monitor, probes, view) = if monitors.is_empty() {
            (None, None, view)
        } else {
            let (m, p, v) = crate::monitor::Monitors::start(monitors, sink, handle.client(), view)?;
            (Some(m), Some(p), v)
        };
        let control = crate::cli::Control::start(control, handle.client(), Some(view))?;
        let link = IkeLink::new(ends.clone(), Arc::clone(&counters)).with_monitor(probes);
        Ok((IkeRuntime { handle: Some(handle), ends, control: Some(control), counters, monitor, traps }, link))
    }

    /// Before the workers stop: the manager deletes every IKE SA (RFC 7296
    /// §1.4.1, the peers are told) and exits; then a bounded wait until the
    /// workers have sent the queued DELETEs.
    pub fn delete_all(&mut self) {
        drop(self.control.take());
        if let Some(m) = self.monitor.as_mut() {
            m.halt();
        }
        if let Some(h) = self.handle.take() {
            h.shutdown(true);
        }
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        while !self.ends.outbound.is_empty() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Stops the control socket and the manager, without DELETEs, if
    /// [`Self::delete_all`] has not; returns the punt path's report.
    pub fn stop(mut self) -> String {
        drop(self.control.take());
        let monitor = self.monitor.take().map(|m| m.report()).unwrap_or_default();
        if let Some(h) = self.handle.take() {
            h.shutdown(false);
        }
        self.counters.report() + &monitor
    }
}

/// The tunnel tables' entries: an ESP SA plus the inner selectors it may
/// carry and the connection name (for counters), built from what the engine
/// installs. [`TableSaSink`] does the transactions (make-before-break).
#[derive(Debug, Clone)]
pub struct TunnelSaBuilder {
    pub backend: Backend,
    /// Connections that may trap, with their trap policies.
    pub traps: Arc<Traps>,
}

/// Connections that may be trapped (`start_action = "trap"`, or DPD action
/// hold), each with a [`TrapId`] (its index here) and the outbound selectors
/// of its configured traffic selectors (RFC 4301 §5.1: a packet matching
/// them with no SA makes the gateway negotiate one).
#[derive(Debug, Default)]
pub struct Traps(Vec<(String, Vec<dataplane::spd::Selector>)>);

impl Traps {
    /// The trap-capable connections of `connections` (passive ones never initiate).
    pub fn new(connections: &[ConnectionConfig]) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for c in connections {
            let traps = c.start_action == controlplane::ikev2::StartAction::Trap || c.dpd_action == controlplane::ikev2::DpdAction::Hold;
            if !traps || c.passive {
                continue;
            }
            let local = crate::esp::ts_specs(&c.local_ts).with_context(|| format!("connection {:?} local_ts", c.name))?;
            let remote = crate::esp::ts_specs(&c.remote_ts).with_context(|| format!("connection {:?} remote_ts", c.name))?;
            out.push((c.name.clone(), dataplane::worker::outbound_selectors(&local, &remote)));
        }
        Ok(Traps(out))
    }

    /// The connection a trap id names.
    pub fn connection(&self, id: TrapId) -> Option<&str> {
        self.0.get(id.0 as usize).map(|(n, _)| n.as_str())
    }

    /// `connection`'s trap policies (none if it cannot trap).
    pub fn policies(&self, connection: &str) -> Vec<PolicySpec> {
        let Some((i, (_, selectors))) = self.0.iter().enumerate().find(|(_, (n, _))| n == connection) else { return Vec::new() };
        let id = TrapId(u32::try_from(i).unwrap_or(u32::MAX));
        selectors
            .iter()
            .enumerate()
            .map(|(j, s)| PolicySpec {
                priority: TRAP_PRIORITY_BASE.saturating_add(u32::try_from(j).unwrap_or(u32::MAX)),
                selector: *s,
                action: PolicyAction::Trap(id),
            })
            .collect()
    }
}

/// Puts negotiated Child SAs into the worker's tables.
pub type TunnelSaSink = TableSaSink<TunnelSaBuilder>;

/// The sink `ipsecgw run` gives the manager: the worker's tables (their
/// readers were taken before), AEADs from `backend`.
pub fn tunnel_sa_sink(ctl: TunnelControl, backend: Backend) -> TunnelSaSink {
    TableSaSink::with_builder(ctl, TunnelSaBuilder { backend, traps: Arc::default() })
}

impl TunnelSaBuilder {
    /// The selectors of `sa` in the shape the static tunnels use.
    fn shape(sa: &ChildSaInstall) -> Result<StaticTunnel, SinkError> {
        let ts = |list: &[TrafficSelector]| crate::esp::ts_specs(list).map_err(|e| SinkError::Selector(format!("{list:?}"), e.to_string()));
        Ok(StaticTunnel {
            name: sa.connection.clone(),
            algorithm: esp_algorithm(sa.encr)?,
            local: sa.local,
            remote: sa.remote,
            udp: sa.encap.is_some(),
            spi_in: Spi(sa.inbound_spi.0),
            spi_out: Spi(sa.outbound_spi.0),
            key_in: Zeroizing::new(Vec::new()),
            key_out: Zeroizing::new(Vec::new()),
            local_ts: ts(&sa.local_ts)?,
            remote_ts: ts(&sa.remote_ts)?,
            esn: sa.esn,
            replay_window: esp::replay::DEFAULT_WINDOW,
        })
    }
}

impl SaBuilder for TunnelSaBuilder {
    type Inbound = InboundTunnel;
    type Outbound = OutboundTunnel;

    fn inbound(&self, sa: &ChildSaInstall) -> Result<InboundTunnel, SinkError> {
        let shape = Self::shape(sa)?;
        let build = |reason: String| SinkError::Build { spi: sa.inbound_spi, reason };
        let aead = new_aead(shape.algorithm, &sa.inbound_key, self.backend)
            .map_err(|e| SinkError::Key { spi: sa.inbound_spi, reason: e.to_string() })?;
        let config = InboundConfig { spi: shape.spi_in, esn: sa.esn, replay_window: shape.replay_window };
        let esp = esp::InboundSa::new(config, Arc::from(aead)).map_err(|e| build(e.to_string()))?;
        InboundTunnel::new(esp, shape.inbound_selectors(), &sa.connection).map_err(|e| build(e.to_string()))
    }

    fn outbound(&self, sa: &ChildSaInstall) -> Result<OutboundTunnel, SinkError> {
        let shape = Self::shape(sa)?;
        let aead = new_aead(shape.algorithm, &sa.outbound_key, self.backend)
            .map_err(|e| SinkError::Key { spi: sa.outbound_spi, reason: e.to_string() })?;
        let esp = esp::OutboundSa::new(outbound_config(sa), Arc::from(aead))
            .map_err(|e| SinkError::Build { spi: sa.outbound_spi, reason: e.to_string() })?;
        Ok(OutboundTunnel::new(esp, &sa.connection))
    }

    fn policies(&self, sa: &ChildSaInstall, sa_id: SaId) -> Result<Vec<PolicySpec>, SinkError> {
        let shape = Self::shape(sa)?;
        let selectors = shape.outbound_selectors();
        if selectors.is_empty() {
            return Err(SinkError::Selector(format!("{:?} === {:?}", shape.local_ts, shape.remote_ts), "no pair of one IP family".into()));
        }
        Ok(selectors
            .into_iter()
            .enumerate()
            .map(|(j, selector)| PolicySpec {
                priority: POLICY_PRIORITY_BASE.saturating_add(u32::try_from(j).unwrap_or(u32::MAX)),
                selector,
                action: PolicyAction::Protect(sa_id),
            })
            .collect())
    }

    fn trap_policies(&self, connection: &str) -> Vec<PolicySpec> {
        self.traps.policies(connection)
    }
}

/// How often the workers' unknown-SPI notes are handed to the manager.
const UNKNOWN_SPI_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// At most one warning about suppressed notes per this interval.
const UNKNOWN_SPI_WARN: std::time::Duration = std::time::Duration::from_secs(10);

impl IkeRuntime {
    /// A client of the manager (`None` once stopped).
    pub fn client(&self) -> Option<controlplane::manager::ManagerClient> {
        self.handle.as_ref().map(|h| h.client())
    }
}

/// Hands the workers' notes of ESP on unknown SPIs (`dataplane::worker::unknown_spi`,
/// one ring per worker in its counters) to the manager, which counts them per (peer,
/// SPI) and answers with rate-limited INVALID_SPI (RFC 7296 §3.10.1). A thread of its
/// own: the workers never touch the manager's queue. Runs until `stop` is set.
pub fn report_unknown_spis(
    stats: Arc<dataplane::stats::Stats>,
    ike: &IkeRuntime,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let Some(manager) = ike.client() else { return Ok(()) };
    let (mut suppressed, mut said) = (0, None::<Instant>);
    spawn_note_reader("unknown-spi", UNKNOWN_SPI_POLL, stop, move || {
        stats.drain_unknown_spi(|n| manager.report_unknown_spi(n.peer, n.spi));
        // The workers' budget (NOTICES_PER_SECOND each) refused some: say so, at
        // most every 10 s; the per-(peer, SPI) counts are then lower bounds.
        let now = stats.unknown_spi_suppressed();
        if now != suppressed && said.is_none_or(|t| t.elapsed() >= UNKNOWN_SPI_WARN) {
            said = Some(Instant::now());
            tracing::warn!(
                "ESP on unknown SPIs: {} more packets than the workers' budget of {} notes/s each; dropped as no_sa but not counted per (peer, SPI)",
                now.wrapping_sub(suppressed),
                dataplane::worker::unknown_spi::NOTICES_PER_SECOND
            );
            suppressed = now;
        }
    })
}

/// A thread named `name` that calls `tick` every `every` until `stop` is set: how the
/// control side reads the workers' note rings (unknown SPIs, traps) without the
/// workers ever touching the manager's queue.
fn spawn_note_reader(
    name: &str,
    every: std::time::Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    mut tick: impl FnMut() + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tick();
                std::thread::sleep(every);
            }
        })
        .with_context(|| format!("starting the {name} reporter thread"))?;
    Ok(())
}

/// How often the workers' trap notes are looked at.
const TRAP_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// At most one acquire per connection per this interval (the engine ignores
/// one while a negotiation is under way; this keeps the manager's queue calm).
const ACQUIRE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Turns the workers' trap notes (`dataplane::worker::trap`, packets dropped
/// as `held`) into `ManagerClient::acquire` of their connection, at most one
/// per connection per second. A thread of its own, like [`report_unknown_spis`].
pub fn report_traps(stats: Arc<dataplane::stats::Stats>, ike: &IkeRuntime, stop: Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    let Some(manager) = ike.client() else { return Ok(()) };
    if ike.traps.0.is_empty() {
        return Ok(());
    }
    let traps = Arc::clone(&ike.traps);
    let mut last: Vec<Option<Instant>> = vec![None; traps.0.len()];
    spawn_note_reader("trap", TRAP_POLL, stop, move || {
        stats.drain_traps(|id| {
            let (Some(name), Some(at)) = (traps.connection(id), last.get_mut(id.0 as usize)) else { return };
            if at.is_some_and(|t| t.elapsed() < ACQUIRE_INTERVAL) {
                return;
            }
            *at = Some(Instant::now());
            tracing::info!("connection '{name}': packet hit its trap policy (dropped as held); negotiating");
            manager.acquire(name);
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::ikev2::{ChildSaId, ChildSaRemove, Directions};
    use controlplane::manager::SaSink;
    use controlplane::proposal::{Encr, EncrId};
    use dataplane::packet::HeapPacket;

    fn frame(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn built_datagram_parses_back_with_valid_checksums() {
        let d = UdpDatagram {
            local: "198.51.100.2:4500".parse().expect("addr"),
            remote: "198.51.100.1:4500".parse().expect("addr"),
            payload: vec![0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08],
        };
        let mut pkt = HeapPacket::with_room(64, 256);
        build_udp(&mut pkt, &d).expect("fits");
        let ip = Ipv4Packet::new_checked(pkt.data()).expect("ipv4");
        assert!(ip.verify_checksum());
        let l4 = &pkt.data()[20..];
        let pseudo = checksum::pseudo_v4(ip.src_addr(), ip.dst_addr(), 17, l4.len() as u16);
        assert_eq!(checksum::fold(checksum::sum(pseudo, l4)), 0xffff, "UDP checksum verifies");
        // Seen from the peer's side: the same datagram with the ends swapped.
        let back = ike_datagram(&frame(pkt.data())).expect("IKE datagram");
        assert_eq!((back.local, back.remote, back.payload), (d.remote, d.local, d.payload));
    }

    /// The DPDK path of a NAT keepalive: the manager's punt transport queues
    /// it, the worker builds the UDP packet; on the wire the UDP payload is
    /// the single octet 0xFF with no non-ESP marker (RFC 3948 §2.3).
    #[test]
    fn nat_keepalive_leaves_as_one_octet() {
        use controlplane::manager::IkeTransport;
        let (ends, mut transport) = punt_channel(4);
        let (ours, peer) = ("198.51.100.2:4500".parse().expect("addr"), "203.0.113.7:31000".parse().expect("addr"));
        transport.send_keepalive(ours, peer).expect("queued");
        let d = ends.outbound.try_recv().expect("one datagram for the worker");
        let mut pkt = HeapPacket::with_room(64, 256);
        build_udp(&mut pkt, &d).expect("fits");
        let ip = Ipv4Packet::new_checked(pkt.data()).expect("ipv4");
        assert_eq!(usize::from(ip.total_len()), 20 + 8 + 1);
        let udp = &pkt.data()[20..];
        assert_eq!(&udp[..6], &[0x11, 0x94, 0x79, 0x18, 0, 9], "4500 -> 31000, UDP length 9");
        assert_eq!(&udp[8..], &[0xff]);
    }

    fn install(child: u64, dirs: Directions, spi_in: u32, spi_out: u32, replaces: Option<u64>) -> ChildSaInstall {
        ChildSaInstall {
            ike_sa: controlplane::ikev2::IkeSaId(7),
            child: ChildSaId(child),
            connection: "left".into(),
            directions: dirs,
            local: "198.51.100.2".parse().expect("ip"),
            remote: "198.51.100.1".parse().expect("ip"),
            encap: Some(controlplane::ikev2::UdpEncap { local_port: 4500, remote_port: 4500 }),
            encr: Encr { id: EncrId::AesGcm16, key_bits: Some(128) },
            esn: false,
            inbound_spi: controlplane::ikev2::Spi(spi_in),
            outbound_spi: controlplane::ikev2::Spi(spi_out),
            inbound_key: Zeroizing::new(vec![1; 20]),
            outbound_key: Zeroizing::new(vec![2; 20]),
            local_ts: vec!["10.2.0.0/24".parse().expect("ts")],
            remote_ts: vec!["10.1.0.0/24".parse().expect("ts")],
            replaces: replaces.map(ChildSaId),
        }
    }

    /// The outbound SPI the SPD picks for 10.2.0.2 -> 10.1.0.1, and whether `spi` is inbound.
    fn tables(sink: &TunnelSaSink, spi: u32) -> (Option<u32>, bool) {
        let snap = sink.control().current();
        let flow = dataplane::spd::FlowV4::v4("10.2.0.2".parse().expect("ip"), "10.1.0.1".parse().expect("ip"), 1, 8, 0);
        let out = match snap.outbound_v4(&flow) {
            dataplane::sa::Decision::Protect(sa) => Some(sa.sa.config().spi.0),
            _ => None,
        };
        (out, snap.inbound(Spi(spi)).is_some())
    }

    #[test]
    fn sink_rekeys_make_before_break() {
        let now = Instant::now();
        let mut sink = tunnel_sa_sink(TunnelControl::new(64), Backend::Auto);
        sink.install(&install(1, Directions::Both, 0x100, 0x200, None), now).expect("first");
        assert_eq!(tables(&sink, 0x100), (Some(0x200), true));
        // Rekey: new inbound first (old outbound still used), then the outbound switch.
        sink.install(&install(2, Directions::InboundOnly, 0x101, 0x201, Some(1)), now).expect("new inbound");
        assert_eq!(tables(&sink, 0x101), (Some(0x200), true));
        sink.install(&install(2, Directions::OutboundOnly, 0x101, 0x201, Some(1)), now).expect("switch");
        assert_eq!(tables(&sink, 0x100), (Some(0x201), true), "old inbound kept until removed");
        let rm = |child, si, so| ChildSaRemove {
            ike_sa: controlplane::ikev2::IkeSaId(7),
            child: ChildSaId(child),
            directions: Directions::Both,
            inbound_spi: controlplane::ikev2::Spi(si),
            outbound_spi: controlplane::ikev2::Spi(so),
        };
        sink.remove(&rm(1, 0x100, 0x200), now).expect("old removed");
        assert_eq!(tables(&sink, 0x100), (Some(0x201), false));
        assert_eq!(tables(&sink, 0x101), (Some(0x201), true));
        sink.remove(&rm(2, 0x101, 0x201), now).expect("new removed");
        assert_eq!(tables(&sink, 0x101), (None, false));
        // An algorithm the dataplane lacks is refused and leaves the tables alone.
        let mut bad = install(3, Directions::Both, 0x102, 0x202, None);
        bad.encr = Encr { id: EncrId::AesGcm16, key_bits: Some(192) };
        assert!(sink.install(&bad, now).is_err());
        assert_eq!(tables(&sink, 0x102), (None, false));
    }

    /// The outbound decision for 10.2.0.2 -> 10.1.0.1: Some(spi) protect,
    /// Err(trap id) trap, Ok(None) anything else.
    fn decision(sink: &TunnelSaSink) -> Result<Option<u32>, TrapId> {
        let flow = dataplane::spd::FlowV4::v4("10.2.0.2".parse().expect("ip"), "10.1.0.1".parse().expect("ip"), 1, 8, 0);
        match sink.control().current().outbound_v4(&flow) {
            dataplane::sa::Decision::Protect(sa) => Ok(Some(sa.sa.config().spi.0)),
            dataplane::sa::Decision::Trap(t) => Err(t),
            _ => Ok(None),
        }
    }

    /// start_action trap: the trap policy is there before any SA; a Child SA's
    /// policy shadows it from the snapshot that installs it and it shows again
    /// in the snapshot that removes it. A connection with DPD action hold gets
    /// its trap only on `hold` (Event::Held); others never.
    #[test]
    fn trap_policies_under_the_child_sa_policies() {
        use controlplane::ikev2::{DpdAction, StartAction};
        let conn = |name: &str, start, dpd| {
            let mut c = ConnectionConfig::new(
                name,
                "198.51.100.2:500".parse().expect("addr"),
                Some("198.51.100.1:500".parse().expect("addr")),
                controlplane::identity::Identity::Any,
                controlplane::identity::Identity::Any,
                b"psk",
                Vec::new(),
                Vec::new(),
                vec!["10.2.0.0/24".parse().expect("ts")],
                vec!["10.1.0.0/24".parse().expect("ts")],
            );
            c.start_action = start;
            c.dpd_action = dpd;
            c
        };
        let conns = [
            conn("plain", StartAction::Start, DpdAction::Clear),
            conn("left", StartAction::Trap, DpdAction::Clear),
            conn("held", StartAction::Start, DpdAction::Hold),
        ];
        let traps = Arc::new(Traps::new(&conns).expect("traps"));
        assert_eq!((traps.connection(TrapId(0)), traps.connection(TrapId(1)), traps.connection(TrapId(2))), (Some("left"), Some("held"), None));
        let mut sink = TableSaSink::with_builder(TunnelControl::new(64), TunnelSaBuilder { backend: Backend::Auto, traps });
        let now = Instant::now();
        assert!(!sink.trap("plain").expect("no trap"), "a connection that cannot trap gets none");
        assert_eq!(decision(&sink), Ok(None));
        assert!(sink.trap("left").expect("trap"));
        assert!(!sink.trap("left").expect("again"), "installed once");
        assert_eq!(decision(&sink), Err(TrapId(0)));
        sink.install(&install(1, Directions::Both, 0x100, 0x200, None), now).expect("child");
        assert_eq!(decision(&sink), Ok(Some(0x200)), "the Child SA's policy shadows the trap");
        let rm = ChildSaRemove {
            ike_sa: controlplane::ikev2::IkeSaId(7),
            child: ChildSaId(1),
            directions: Directions::Both,
            inbound_spi: controlplane::ikev2::Spi(0x100),
            outbound_spi: controlplane::ikev2::Spi(0x200),
        };
        sink.remove(&rm, now).expect("removed");
        assert_eq!(decision(&sink), Err(TrapId(0)), "trap again once the Child SA is gone");
        // DPD hold on another connection with the same selectors: its trap is
        // added behind the first (both name a connection that re-negotiates).
        sink.hold("held", now).expect("hold");
        assert_eq!(sink.control().current().spd().len(), 2);
    }

    #[test]
    fn non_ike_is_not_punted_to_the_manager() {
        let d = UdpDatagram {
            local: "10.0.0.1:53".parse().expect("addr"),
            remote: "10.0.0.2:53".parse().expect("addr"),
            payload: vec![1, 2, 3],
        };
        let mut pkt = HeapPacket::with_room(64, 256);
        build_udp(&mut pkt, &d).expect("fits");
        assert!(ike_datagram(&frame(pkt.data())).is_none());
        assert!(ike_datagram(&[0u8; 10]).is_none());
        let mixed = UdpDatagram { local: "10.0.0.1:500".parse().expect("a"), remote: "[2001:db8::1]:500".parse().expect("a"), payload: vec![] };
        assert!(build_udp(&mut HeapPacket::with_room(64, 256), &mixed).is_none());
    }
}
