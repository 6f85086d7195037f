//! Tunnel monitoring in `ipsecgw run` (issue 7 item 3): the I/O half of
//! [`controlplane::monitor`]. One thread runs every `[connection.monitor]`'s
//! [`Machine`], sends its echo probes into the DPDK worker, takes the replies
//! the worker punts, and acts: wait-recover re-negotiates through the IKE
//! manager, fail-over moves the connection's outbound policies to the
//! backup's Child SA in one SA-table publication.
//!
//! **How a probe enters the dataplane.** The probe is an IP packet from
//! `monitor.source` (one of the inside port's addresses) handed to the worker
//! *as if received on that port* (an Ethernet frame to the port's own MAC,
//! [`ProbeLink::drain`]). It then takes the path of the traffic it stands
//! for: SPD lookup, ESP encapsulation on the matching SA, outer route,
//! neighbour, tx. `Worker::send_local` (how IKE leaves) routes without the
//! SPD, so the probe would leave in clear; a dedicated "originate into the
//! SPD" entry would duplicate the classification and encapsulation code of
//! the receive path for one packet per interval. The cost of reusing it: a
//! probe counts as one packet received on the inside port, and its TTL is
//! decremented once (64 → 63).
//!
//! **Which SA carries it.** While a connection is failed over, the SPD sends
//! its traffic to the backup, but the primary must keep being probed. So each
//! monitored connection has a *pin*: a policy for exactly its probe flow
//! (source → address, ICMP), ahead of every other negotiated policy, pointing
//! at the connection's own outbound SA. A probe therefore tests that SA and
//! nothing else, whatever the steering; the pin follows the SA through rekeys
//! (the SA sink moves every policy of a replaced SA) and goes with it when it
//! is deleted, after which no probe is sent ("no SA") until a new one exists.
//! Pins are per flow, so two monitored connections need different
//! `monitor.address`es (the same flow would be pinned to one of them).
//!
//! **Fail-over.** A fail-over connection's traffic is *steered*: copies of its
//! negotiated outbound policies, after the pins and ahead of every other
//! negotiated policy, point at its own SA while it is healthy (so a backup
//! with the same selectors never wins by having come up first) and at the
//! backup's SA once the monitor says `down` — one transaction, one
//! publication, no packet sees no policy. They point back after `threshold`
//! replies in a row. A reconcile pass on every tick rebuilds pins and steering
//! when SAs come, go or are rekeyed, so a backup rekeyed or re-established
//! during a fail-over keeps carrying the traffic.
//!
//! **Replies.** The worker punts decapsulated packets addressed to the
//! gateway itself (`dataplane::worker`, forward path); [`ProbeLink::reply`]
//! takes the ICMP echo replies whose identifier is one of ours (`M`+index for
//! monitors, `T`+counter for `test tunnel`).
//!
//! Every state change is a `tracing` event with its fields (connection, from,
//! to, lost and replies in a row), so `--log-format json` logs it as an
//! object; the current state is in `ipsecgw show connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use controlplane::api::{DataplaneSnapshot, DataplaneView, MonitorView, TunnelTestView};
use controlplane::config::{Monitor, MonitorAction};
use controlplane::ikev2::{ChildSaInstall, ChildSaRemove};
use controlplane::manager::{ManagerClient, SaSink, SinkError};
use controlplane::monitor::{echo, Act, Machine, Output, Settings};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use dataplane::packet::Packet;
use dataplane::sa::{PolicyAction, PolicyId, PolicySpec};
use dataplane::spd::{IpPrefix, PortRange, Selector};
use dataplane::wire::{EtherType, EthernetFrame, MacAddr};
use dataplane::worker::{Worker, WorkerIo};

use crate::tunnel::TunnelSaSink;

/// Pins: after static tunnels (1000..), before negotiated policies (1_000_000..).
const PIN_PRIORITY: u32 = 990_000;
/// Steering: after the pins, before negotiated policies.
const STEER_PRIORITY: u32 = 995_000;
/// ICMP identifiers: high byte 'M' for monitors (low byte = monitor index),
/// 'T' for `test tunnel` runs (low byte = run counter).
const MONITOR_IDENT: u16 = 0x4d00;
const TEST_IDENT: u16 = 0x5400;
/// How often pins and steering are checked against the tables.
const TICK: Duration = Duration::from_millis(50);
/// Probes queued to the worker at most.
const PROBE_QUEUE: usize = 256;
/// A `test tunnel` probe is lost when its reply takes longer.
const TEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Gap between the probes of one `test tunnel`.
const TEST_GAP: Duration = Duration::from_millis(100);

/// The sink shared by the IKE manager (installs, removals) and the monitor
/// (pins and steering): both publish through the same [`TunnelSaSink`].
#[derive(Debug, Clone)]
pub struct SharedSink(Arc<Mutex<TunnelSaSink>>);

impl SharedSink {
    pub fn new(sink: TunnelSaSink) -> Self {
        SharedSink(Arc::new(Mutex::new(sink)))
    }

    fn lock(&self) -> MutexGuard<'_, TunnelSaSink> {
        // A panic elsewhere cannot leave the tables half-updated (transactions
        // roll back on drop): keep using them.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SaSink for SharedSink {
    fn install(&mut self, sa: &ChildSaInstall, now: Instant) -> Result<(), SinkError> {
        self.lock().install(sa, now)
    }

    fn remove(&mut self, sa: &ChildSaRemove, now: Instant) -> Result<(), SinkError> {
        self.lock().remove(sa, now)
    }

    fn tick(&mut self, now: Instant) {
        self.lock().tick(now);
    }

    fn hold(&mut self, connection: &str, now: Instant) -> Result<(), SinkError> {
        self.lock().hold(connection, now)
    }
}

/// Where one monitor's probes enter the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbePort {
    port: usize,
    mac: MacAddr,
}

/// The monitors of a run: each `[connection.monitor]` and the port that owns
/// its source address.
#[derive(Debug, Clone, Default)]
pub struct MonitorPlan {
    monitors: Vec<(String, Monitor, Option<ProbePort>)>,
}

impl MonitorPlan {
    /// From the config's monitors and the ports' addresses and MACs (index = port).
    pub fn new(monitors: &[(String, Monitor)], ports: &[(MacAddr, Vec<IpAddr>)]) -> Self {
        let monitors = monitors
            .iter()
            .map(|(name, m)| {
                let port = ports.iter().position(|(_, addrs)| addrs.contains(&m.source)).map(|i| ProbePort { port: i, mac: ports[i].0 });
                (name.clone(), m.clone(), port)
            })
            .collect();
        MonitorPlan { monitors }
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }
}

/// A probe for the worker: a whole Ethernet frame, as if received on `port`.
#[derive(Debug)]
struct ProbeFrame {
    port: usize,
    frame: Vec<u8>,
}

/// Counters of the probe path (exit report).
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub injected: AtomicU64,
    pub replies: AtomicU64,
    pub dropped: AtomicU64,
}

/// The worker's end: probes to inject, replies to hand back (cheap to clone).
#[derive(Debug, Clone)]
pub struct ProbeLink {
    probes: Receiver<ProbeFrame>,
    replies: Sender<(echo::Echo, Instant)>,
    counters: Arc<ProbeCounters>,
}

impl ProbeLink {
    /// Injects the queued probes; returns how many.
    pub fn drain<P: Packet, I: WorkerIo<P>>(&self, worker: &mut Worker<P>, io: &mut I, now_ms: u64) -> usize {
        let mut n = 0;
        while let Ok(p) = self.probes.try_recv() {
            n += 1;
            let Some(mut pkt) = io.alloc() else {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if pkt.append(p.frame.len()).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            pkt.data_mut().copy_from_slice(&p.frame);
            self.counters.injected.fetch_add(1, Ordering::Relaxed);
            worker.process(p.port, std::iter::once(pkt), io, now_ms);
        }
        n
    }

    /// A punted frame: `true` if it was an echo reply to one of our probes
    /// (consumed), `false` to let the caller handle it.
    pub fn reply(&self, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
        if !matches!(eth.ethertype(), EtherType::Ipv4 | EtherType::Ipv6) {
            return false;
        }
        let Some(e) = frame.get(eth.header_len()..).and_then(echo::parse_reply) else { return false };
        if e.ident & 0xff00 != MONITOR_IDENT && e.ident & 0xff00 != TEST_IDENT {
            return false;
        }
        self.counters.replies.fetch_add(1, Ordering::Relaxed);
        if self.replies.try_send((e, Instant::now())).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

/// What the API thread asks the monitor thread.
struct TestRequest {
    name: String,
    count: u32,
    reply: Sender<Result<TunnelTestView, String>>,
}

/// One monitored connection.
struct Monitored {
    name: String,
    config: Monitor,
    port: Option<ProbePort>,
    machine: Machine,
    ident: u16,
    /// Pin policies and the SA they point at.
    pins: Vec<PolicyId>,
    /// Steering policies (fail-over connections).
    steer: Vec<PolicyId>,
    carried_by: Option<String>,
    changes: u64,
    last_change: Option<SystemTime>,
    warned_no_port: bool,
}

impl Monitored {
    /// Monitor number `index` (its ICMP identifier), first probe due at `now`.
    fn new(index: usize, name: String, config: Monitor, port: Option<ProbePort>, now: Instant) -> Self {
        Monitored {
            machine: Machine::new(Settings::from(&config), now),
            ident: MONITOR_IDENT | u16::try_from(index % 256).unwrap_or(0),
            name,
            config,
            port,
            pins: Vec::new(),
            steer: Vec::new(),
            carried_by: None,
            changes: 0,
            last_change: None,
            warned_no_port: false,
        }
    }
}

/// A running `test tunnel`.
struct Test {
    ident: u16,
    name: String,
    source: IpAddr,
    address: IpAddr,
    spi_out: String,
    port: Option<ProbePort>,
    count: u32,
    sent: Vec<(u16, Instant)>,
    rtt: Vec<Duration>,
    next_send: Instant,
    why_not_sent: Option<String>,
    reply: Sender<Result<TunnelTestView, String>>,
}

/// State the API thread reads.
#[derive(Debug, Default)]
struct Shared {
    views: Mutex<Vec<MonitorView>>,
}

/// The monitor thread; stopped when dropped.
pub struct Monitors {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<ProbeCounters>,
}

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors").field("counters", &self.counters).finish_non_exhaustive()
    }
}

impl Monitors {
    /// Starts the thread; returns it, the workers' link, and `view` with the
    /// monitors added (for the control socket).
    pub fn start(
        plan: MonitorPlan,
        sink: SharedSink,
        manager: ManagerClient,
        view: Arc<dyn DataplaneView>,
    ) -> anyhow::Result<(Monitors, ProbeLink, Arc<dyn DataplaneView>)> {
        let (probe_tx, probe_rx) = channel::bounded(PROBE_QUEUE);
        let (reply_tx, reply_rx) = channel::bounded(PROBE_QUEUE);
        let (test_tx, test_rx) = channel::bounded(4);
        let counters = Arc::new(ProbeCounters::default());
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let now = Instant::now();
        let monitors = plan
            .monitors
            .into_iter()
            .enumerate()
            .map(|(i, (name, config, port))| Monitored::new(i, name, config, port, now))
            .collect();
        let mut runner = Runner {
            monitors,
            tests: Vec::new(),
            test_counter: 0,
            sink,
            manager,
            probes: probe_tx,
            replies: reply_rx,
            requests: test_rx,
            shared: Arc::clone(&shared),
        };
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tunnel-monitor".into())
            .spawn(move || runner.run(&flag))
            .context("starting the tunnel monitor thread")?;
        let link = ProbeLink { probes: probe_rx, replies: reply_tx, counters: Arc::clone(&counters) };
        let view: Arc<dyn DataplaneView> = Arc::new(MonitoredView { inner: view, shared, tests: test_tx });
        Ok((Monitors { stop, thread: Some(thread), counters }, link, view))
    }

    /// One line for the exit report.
    pub fn report(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "tunnel monitor: {} probes injected, {} replies, {} dropped (queue full or no mbuf)\n",
            g(&self.counters.injected),
            g(&self.counters.replies),
            g(&self.counters.dropped)
        )
    }
}

impl Monitors {
    /// Stops the thread (before the IKE manager deletes the SAs at shutdown:
    /// no re-negotiation then).
    pub fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The control socket's view with the monitors added.
struct MonitoredView {
    inner: Arc<dyn DataplaneView>,
    shared: Arc<Shared>,
    tests: Sender<TestRequest>,
}

impl DataplaneView for MonitoredView {
    fn snapshot(&self) -> DataplaneSnapshot {
        self.inner.snapshot()
    }

    fn monitors(&self) -> Vec<MonitorView> {
        self.shared.views.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn test_tunnel(&self, name: &str, count: u32) -> Result<TunnelTestView, String> {
        let (tx, rx) = channel::bounded(1);
        self.tests
            .try_send(TestRequest { name: name.to_owned(), count, reply: tx })
            .map_err(|_| "the tunnel monitor is busy or stopped: try again".to_owned())?;
        let wait = TEST_GAP * count + TEST_TIMEOUT + Duration::from_secs(1);
        rx.recv_timeout(wait).map_err(|_| "the tunnel monitor did not answer".to_owned())?
    }
}

/// The monitor thread's state.
struct Runner {
    monitors: Vec<Monitored>,
    tests: Vec<Test>,
    test_counter: u8,
    sink: SharedSink,
    manager: ManagerClient,
    probes: Sender<ProbeFrame>,
    replies: Receiver<(echo::Echo, Instant)>,
    requests: Receiver<TestRequest>,
    shared: Arc<Shared>,
}

/// The selector of one probe flow: source → address, ICMP (v4 or v6).
fn probe_selector(source: IpAddr, address: IpAddr) -> Option<Selector> {
    let host = |a: IpAddr| IpPrefix::new(a, if a.is_ipv4() { 32 } else { 128 }).ok();
    let proto = if source.is_ipv4() { 1 } else { 58 };
    Some(Selector { src: host(source)?, dst: host(address)?, proto: Some(proto), src_ports: PortRange::ANY, dst_ports: PortRange::ANY })
}

/// The probe frame: the echo request behind an Ethernet header to the port's own MAC.
fn probe_frame(port: ProbePort, e: &echo::Echo) -> Option<ProbeFrame> {
    let ip = echo::request(e)?;
    let mut frame = Vec::with_capacity(14 + ip.len());
    frame.extend_from_slice(&port.mac.0);
    frame.extend_from_slice(&port.mac.0);
    let ethertype: u16 = if e.src.is_ipv4() { 0x0800 } else { 0x86dd };
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&ip);
    Some(ProbeFrame { port: port.port, frame })
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Runner {
    fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            // Replies first (stamped when the worker received them): after a
            // stall of this thread, their probes must not be expired before.
            while let Ok((e, at)) = self.replies.try_recv() {
                self.reply(e, at);
            }
            let now = Instant::now();
            self.reconcile();
            while let Ok(r) = self.requests.try_recv() {
                self.start_test(r, now);
            }
            for i in 0..self.monitors.len() {
                let out = self.monitors[i].machine.handle_timeout(now);
                self.outputs(i, out);
            }
            self.send_tests(now);
            self.finish_tests(now);
            self.publish_views();
            let next = self
                .monitors
                .iter()
                .map(|m| m.machine.poll_timeout())
                .chain(self.tests.iter().map(|t| t.next_send))
                .min()
                .map_or(TICK, |t| t.saturating_duration_since(Instant::now()))
                .min(TICK);
            match self.replies.recv_timeout(next) {
                Ok((e, at)) => self.reply(e, at),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn reply(&mut self, e: echo::Echo, at: Instant) {
        if e.ident & 0xff00 == MONITOR_IDENT {
            let Some(i) = self.monitors.iter().position(|m| m.ident == e.ident) else { return };
            let m = &self.monitors[i];
            if e.src != m.config.address || e.dst != m.config.source {
                return;
            }
            let out = self.monitors[i].machine.handle_reply(e.seq, at);
            self.outputs(i, out);
        } else if let Some(t) = self.tests.iter_mut().find(|t| t.ident == e.ident && e.src == t.address && e.dst == t.source) {
            if let Some(k) = t.sent.iter().position(|&(s, _)| s == e.seq) {
                let (_, sent) = t.sent.remove(k);
                t.rtt.push(at.saturating_duration_since(sent));
            }
        }
    }

    fn outputs(&mut self, i: usize, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Probe { seq } => self.probe(i, seq),
                Output::Changed(t) => {
                    let m = &mut self.monitors[i];
                    m.changes += 1;
                    m.last_change = Some(SystemTime::now());
                    let (sent, received) = m.machine.counts();
                    tracing::info!(
                        target: "ipsecgw::monitor",
                        event = "monitor-state",
                        connection = %m.name,
                        from = %t.from,
                        to = %t.to,
                        lost_in_row = t.lost_in_row,
                        replies_in_row = t.replies_in_row,
                        sent,
                        received,
                        "tunnel monitor '{}': {} -> {} ({} probes to {} lost in a row, {} replies in a row)",
                        m.name,
                        t.from,
                        t.to,
                        t.lost_in_row,
                        m.config.address,
                        t.replies_in_row
                    );
                }
                Output::Act(a) => self.act(i, a),
            }
        }
    }

    fn probe(&mut self, i: usize, seq: u16) {
        let m = &mut self.monitors[i];
        let Some(port) = m.port else {
            if !m.warned_no_port {
                m.warned_no_port = true;
                tracing::error!(
                    "tunnel monitor '{}': monitor.source {} is no address of any [[port]]: no probe can be sent; add it to the inside port's addresses",
                    m.name,
                    m.config.source
                );
            }
            return;
        };
        // No SA, no pin: the probe would take whatever else matches (the backup).
        if m.pins.is_empty() {
            return;
        }
        let e = echo::Echo { src: m.config.source, dst: m.config.address, ident: m.ident, seq };
        if let Some(f) = probe_frame(port, &e) {
            let _ = self.probes.try_send(f);
        }
    }

    fn act(&mut self, i: usize, a: Act) {
        let m = &self.monitors[i];
        let name = m.name.clone();
        match a {
            Act::Renegotiate => {
                tracing::warn!(target: "ipsecgw::monitor", event = "monitor-action", connection = %name, action = "renegotiate",
                    "tunnel monitor '{name}': {} probes lost in a row: re-negotiating (terminate + initiate)", m.machine.lost_in_row());
                if let Err(e) = self.manager.terminate(&name) {
                    tracing::warn!("tunnel monitor '{name}': terminate: {e}");
                }
                if let Err(e) = self.manager.initiate(&name) {
                    tracing::warn!("tunnel monitor '{name}': initiate: {e}");
                }
            }
            Act::FailOver | Act::FailBack => {
                let backup = m.config.backup.clone().unwrap_or_default();
                let (action, line) = if a == Act::FailOver {
                    ("fail-over", format!("{} probes lost in a row: moving its traffic to '{backup}'", m.machine.lost_in_row()))
                } else {
                    ("fail-back", format!("replies again: moving its traffic back from '{backup}'"))
                };
                tracing::warn!(target: "ipsecgw::monitor", event = "monitor-action", connection = %name, action, backup = %backup,
                    "tunnel monitor '{name}': {line}");
                self.reconcile();
            }
        }
    }

    /// Pins and steering as they should be now, for every monitor.
    fn reconcile(&mut self) {
        let mut sink = self.sink.lock();
        for m in &mut self.monitors {
            reconcile(&mut sink, m);
        }
    }

    fn publish_views(&self) {
        let views = self
            .monitors
            .iter()
            .map(|m| {
                let (sent, received) = m.machine.counts();
                MonitorView {
                    connection: m.name.clone(),
                    state: m.machine.state().to_string(),
                    action: match m.config.action {
                        MonitorAction::WaitRecover => "wait-recover".into(),
                        MonitorAction::FailOver => "fail-over".into(),
                    },
                    backup: m.config.backup.clone(),
                    failed_over: m.machine.failed_over(),
                    carried_by: m.carried_by.clone().unwrap_or_else(|| "-".into()),
                    source: m.config.source.to_string(),
                    address: m.config.address.to_string(),
                    sent,
                    received,
                    lost_in_row: m.machine.lost_in_row(),
                    last_rtt_us: m.machine.last_rtt().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                    changes: m.changes,
                    last_change: m.last_change.map(unix_secs),
                }
            })
            .collect();
        if let Ok(mut v) = self.shared.views.lock() {
            *v = views;
        }
    }

    fn start_test(&mut self, r: TestRequest, now: Instant) {
        let Some(m) = self.monitors.iter().find(|m| m.name == r.name) else {
            let names: Vec<&str> = self.monitors.iter().map(|m| m.name.as_str()).collect();
            let _ = r.reply.send(Err(format!(
                "connection '{}' has no [connection.monitor] (it names the probe's source and address): add one; monitored: {}",
                r.name,
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            )));
            return;
        };
        self.test_counter = self.test_counter.wrapping_add(1);
        let spi_out = {
            let mut sink = self.sink.lock();
            let id = sink.outbound_of(&m.name).map(|(id, _)| id);
            id.and_then(|id| sink.control_mut().outbound(id).map(|o| format!("0x{:08x}", o.sa.config().spi.0)))
        };
        let spi_out = spi_out.unwrap_or_else(|| "-".into());
        self.tests.push(Test {
            ident: TEST_IDENT | u16::from(self.test_counter),
            name: m.name.clone(),
            source: m.config.source,
            address: m.config.address,
            spi_out,
            port: m.port,
            count: r.count,
            sent: Vec::new(),
            rtt: Vec::new(),
            next_send: now,
            why_not_sent: None,
            reply: r.reply,
        });
    }

    fn send_tests(&mut self, now: Instant) {
        let pinned: HashMap<String, bool> = self.monitors.iter().map(|m| (m.name.clone(), !m.pins.is_empty())).collect();
        for t in &mut self.tests {
            let done = t.sent.len() + t.rtt.len() + usize::from(t.why_not_sent.is_some());
            if now < t.next_send || t.why_not_sent.is_some() || done >= t.count as usize {
                continue;
            }
            let Some(port) = t.port else {
                t.why_not_sent = Some(format!("monitor.source {} is no address of any [[port]]", t.source));
                continue;
            };
            if !pinned.get(&t.name).copied().unwrap_or(false) {
                t.why_not_sent = Some("no SA: the connection has no outbound Child SA installed (see `ipsecgw show connections`)".into());
                continue;
            }
            let seq = (t.sent.len() + t.rtt.len()) as u16 + 1;
            let e = echo::Echo { src: t.source, dst: t.address, ident: t.ident, seq };
            match probe_frame(port, &e).map(|f| self.probes.try_send(f)) {
                Some(Ok(())) => t.sent.push((seq, now)),
                _ => t.why_not_sent = Some("the probe could not be queued to the worker".into()),
            }
            t.next_send = now + TEST_GAP;
        }
    }

    fn finish_tests(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.tests.len() {
            let t = &self.tests[i];
            let sent = (t.sent.len() + t.rtt.len()) as u32;
            let all_sent = sent >= t.count || t.why_not_sent.is_some();
            let waiting = t.sent.iter().any(|&(_, at)| now < at + TEST_TIMEOUT);
            if !all_sent || waiting {
                i += 1;
                continue;
            }
            let t = self.tests.swap_remove(i);
            let received = t.rtt.len() as u32;
            let rtt_us: Vec<u64> = t.rtt.iter().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)).collect();
            let (ok, verdict) = verdict(&t, sent, received, &rtt_us);
            let _ = t.reply.send(Ok(TunnelTestView {
                connection: t.name.clone(),
                source: t.source.to_string(),
                address: t.address.to_string(),
                spi_out: t.spi_out.clone(),
                sent,
                received,
                rtt_us,
                ok,
                verdict,
            }));
        }
    }
}

/// Pins and steering of one monitor as they should be now, in one
/// transaction when they differ from the tables (module docs).
fn reconcile(sink: &mut TunnelSaSink, m: &mut Monitored) {
    let own = sink.outbound_of(&m.name);
    let steering = m.config.action == MonitorAction::FailOver;
    let backup = if steering { m.config.backup.as_deref().and_then(|b| sink.outbound_of(b)) } else { None };
    let mut want: Vec<PolicySpec> = Vec::new();
    let mut carried_by = None;
    if let (Some((id, sels)), Some(pin)) = (&own, probe_selector(m.config.source, m.config.address)) {
        want.push(PolicySpec { priority: PIN_PRIORITY, selector: pin, action: PolicyAction::Protect(*id) });
        carried_by = Some(m.name.clone());
        if steering {
            let target = match (&backup, m.machine.failed_over()) {
                (Some((b, _)), true) => {
                    carried_by = m.config.backup.clone();
                    *b
                }
                _ => *id,
            };
            for s in sels {
                want.push(PolicySpec { priority: STEER_PRIORITY, selector: *s, action: PolicyAction::Protect(target) });
            }
        }
    } else if backup.is_some() {
        // No SA of our own: the backup's policies carry the traffic if they match it.
        carried_by = m.config.backup.clone();
    }
    m.carried_by = carried_by;
    let ours: Vec<PolicyId> = m.pins.iter().chain(&m.steer).copied().collect();
    let have: Vec<Option<PolicySpec>> = ours.iter().map(|p| sink.control_mut().policy(*p).cloned()).collect();
    let same = have.len() == want.len() && have.iter().zip(&want).all(|(h, w)| h.as_ref() == Some(w));
    if same {
        return;
    }
    let mut tx = sink.control_mut().transaction();
    let mut result = Ok(());
    for (p, h) in ours.iter().zip(&have) {
        if h.is_some() {
            result = result.and(tx.remove_policy(*p));
        }
    }
    let mut added = Vec::new();
    for w in &want {
        match tx.add_policy(w.clone()) {
            Ok(p) => added.push(p),
            Err(e) => result = Err(e),
        }
    }
    match result.and_then(|()| tx.commit()) {
        Ok(generation) => {
            let pins = usize::from(!want.is_empty());
            m.steer = added.split_off(pins.min(added.len()));
            m.pins = added;
            tracing::info!(
                target: "ipsecgw::monitor",
                event = "monitor-policies",
                connection = %m.name,
                carried_by = m.carried_by.as_deref().unwrap_or("-"),
                pins = m.pins.len(),
                steering = m.steer.len(),
                generation,
                "tunnel monitor '{}': {} probe pin(s), {} steering polic(ies); traffic on {}'s SA (SA tables generation {generation})",
                m.name,
                m.pins.len(),
                m.steer.len(),
                m.carried_by.as_deref().unwrap_or("no")
            );
        }
        Err(e) => {
            // The rolled-back policies are gone from the tables: forget them, retry next tick.
            m.pins.clear();
            m.steer.clear();
            tracing::error!("tunnel monitor '{}': updating its policies failed: {e}", m.name);
        }
    }
}

/// One line on what a `test tunnel` showed.
fn verdict(t: &Test, sent: u32, received: u32, rtt_us: &[u64]) -> (bool, String) {
    if let Some(why) = &t.why_not_sent {
        if sent == 0 {
            return (false, format!("FAILED: nothing sent: {why}"));
        }
    }
    if received == 0 {
        return (
            false,
            format!(
                "FAILED: no reply to {sent} probe(s) {} -> {} on SPI {} within {} ms: the peer or the network behind it does not forward (check the peer's inside route to {} and its ESP counters), or {} does not answer ICMP echo",
                t.source,
                t.address,
                t.spi_out,
                TEST_TIMEOUT.as_millis(),
                t.address,
                t.address
            ),
        );
    }
    let avg = rtt_us.iter().sum::<u64>() / u64::from(received.max(1));
    if received < sent || t.why_not_sent.is_some() {
        return (false, format!("DEGRADED: {received} of {sent} probe(s) answered (avg rtt {avg} us): the tunnel loses packets"));
    }
    (true, format!("OK: {received} of {sent} probe(s) answered through the tunnel (avg rtt {avg} us)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::ikev2::{ChildSaId, Directions, IkeSaId, UdpEncap};
    use controlplane::proposal::{Encr, EncrId};
    use dataplane::crypto::Backend;
    use dataplane::sa::Decision;
    use dataplane::spd::FlowV4;
    use dataplane::worker::TunnelControl;

    /// A Child SA of `connection` with 10.2.0.0/24 <-> 10.1.0.0/24, as the engine installs it.
    fn child(connection: &str, id: u64, dirs: Directions, spi: u32, replaces: Option<u64>) -> ChildSaInstall {
        ChildSaInstall {
            ike_sa: IkeSaId(id),
            child: ChildSaId(id),
            connection: connection.into(),
            directions: dirs,
            local: "198.51.100.2".parse().expect("ip"),
            remote: "198.51.100.1".parse().expect("ip"),
            encap: Some(UdpEncap { local_port: 4500, remote_port: 4500 }),
            encr: Encr { id: EncrId::AesGcm16, key_bits: Some(128) },
            esn: false,
            inbound_spi: controlplane::ikev2::Spi(spi),
            outbound_spi: controlplane::ikev2::Spi(spi + 0x1000),
            inbound_key: zeroize::Zeroizing::new(vec![3; 20]),
            outbound_key: zeroize::Zeroizing::new(vec![4; 20]),
            local_ts: vec!["10.2.0.0/24".parse().expect("ts")],
            remote_ts: vec!["10.1.0.0/24".parse().expect("ts")],
            replaces: replaces.map(ChildSaId),
        }
    }

    /// The outbound SPI the tables pick for an ICMP packet src -> dst.
    fn spi_for(sink: &TunnelSaSink, src: &str, dst: &str) -> Option<u32> {
        let flow = FlowV4::v4(src.parse().expect("ip"), dst.parse().expect("ip"), 1, 8, 0);
        match sink.control().current().outbound_v4(&flow) {
            Decision::Protect(sa) => Some(sa.sa.config().spi.0),
            _ => None,
        }
    }

    fn primary_monitor(now: Instant) -> Monitored {
        let config = Monitor {
            address: "10.1.0.1".parse().expect("ip"),
            source: "10.2.0.1".parse().expect("ip"),
            interval: Duration::from_millis(200),
            threshold: 2,
            action: MonitorAction::FailOver,
            backup: Some("backup".into()),
        };
        Monitored::new(0, "primary".into(), config, None, now)
    }

    /// Drives the machine on a virtual clock: one answered probe, then lost
    /// ones until it fails over.
    fn fail_over(m: &mut Monitored, t0: Instant) {
        let i = m.machine.settings().interval;
        m.machine.handle_timeout(t0);
        m.machine.handle_reply(1, t0);
        for k in 1..10 {
            m.machine.handle_timeout(t0 + i * k);
            if m.machine.failed_over() {
                return;
            }
        }
        panic!("no fail-over after 9 lost probes");
    }

    #[test]
    fn steering_pins_and_fail_over_survive_rekeys_and_removals() {
        let now = Instant::now();
        let mut sink = crate::tunnel::tunnel_sa_sink(TunnelControl::new(64), Backend::Auto);
        // The backup comes up first: its policies are first among equal priorities.
        sink.install(&child("backup", 2, Directions::Both, 0x200, None), now).expect("backup");
        sink.install(&child("primary", 1, Directions::Both, 0x100, None), now).expect("primary");
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1200), "without steering the first installed wins");
        let mut m = primary_monitor(now);
        reconcile(&mut sink, &mut m);
        assert_eq!((m.pins.len(), m.steer.len()), (1, 1));
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1100), "steered to the primary while it is healthy");
        assert_eq!(m.carried_by.as_deref(), Some("primary"));
        let generation = sink.control().generation();
        reconcile(&mut sink, &mut m);
        assert_eq!(sink.control().generation(), generation, "nothing to change: no publication");

        fail_over(&mut m, now);
        reconcile(&mut sink, &mut m);
        assert_eq!(sink.control().generation(), generation + 1, "fail-over is one publication");
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1200), "traffic on the backup");
        assert_eq!(spi_for(&sink, "10.2.0.1", "10.1.0.1"), Some(0x1100), "the probe stays pinned to the primary");
        assert_eq!(m.carried_by.as_deref(), Some("backup"));

        // The backup is rekeyed during the fail-over: the steering follows in the switch itself.
        sink.install(&child("backup", 3, Directions::InboundOnly, 0x201, Some(2)), now).expect("new inbound");
        sink.install(&child("backup", 3, Directions::OutboundOnly, 0x201, Some(2)), now).expect("switch");
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1201));
        let rm = |id: u64, spi: u32| ChildSaRemove {
            ike_sa: IkeSaId(id),
            child: ChildSaId(id),
            directions: Directions::Both,
            inbound_spi: controlplane::ikev2::Spi(spi),
            outbound_spi: controlplane::ikev2::Spi(spi + 0x1000),
        };
        sink.remove(&rm(2, 0x200), now).expect("old backup removed");
        reconcile(&mut sink, &mut m);
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1201), "still on the rekeyed backup");

        // The backup goes away: its SA takes the steering with it, the primary's own
        // policies carry the traffic, and the monitor steers to the primary again.
        sink.remove(&rm(3, 0x201), now).expect("backup removed");
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1100));
        reconcile(&mut sink, &mut m);
        assert_eq!((m.pins.len(), m.steer.len()), (1, 1));
        assert_eq!(spi_for(&sink, "10.2.0.2", "10.1.0.10"), Some(0x1100));
        assert_eq!(m.carried_by.as_deref(), Some("primary"));

        // The primary goes away too: nothing of the monitor stays in the tables.
        sink.remove(&rm(1, 0x100), now).expect("primary removed");
        reconcile(&mut sink, &mut m);
        assert_eq!(spi_for(&sink, "10.2.0.1", "10.1.0.1"), None);
        assert!(m.pins.is_empty() && m.steer.is_empty() && m.carried_by.is_none());
    }

    fn frame(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn only_echo_replies_with_our_identifiers_are_taken() {
        let (_probe_tx, probes) = channel::bounded(4);
        let (replies, got) = channel::bounded(4);
        let link = ProbeLink { probes, replies, counters: Arc::new(ProbeCounters::default()) };
        let ours = echo::Echo { src: "10.2.0.1".parse().expect("ip"), dst: "10.1.0.1".parse().expect("ip"), ident: MONITOR_IDENT | 3, seq: 9 };
        let reply = echo::answer(&echo::request(&ours).expect("request")).expect("reply");
        assert!(link.reply(&frame(&reply)));
        let (e, _) = got.try_recv().expect("handed to the monitor");
        assert_eq!((e.ident, e.seq, e.src), (MONITOR_IDENT | 3, 9, ours.dst));
        let foreign = echo::Echo { ident: 0x1234, ..ours };
        assert!(!link.reply(&frame(&echo::answer(&echo::request(&foreign).expect("request")).expect("reply"))));
        assert!(!link.reply(&frame(&echo::request(&ours).expect("request"))), "a request is not ours to take");
        assert!(!link.reply(&[0u8; 20]));
        assert!(got.try_recv().is_err());
    }

    #[test]
    fn test_tunnel_verdicts_name_what_failed() {
        let (reply, _rx) = channel::bounded(1);
        let mut t = Test {
            ident: TEST_IDENT,
            name: "primary".into(),
            source: "10.2.0.1".parse().expect("ip"),
            address: "10.1.0.1".parse().expect("ip"),
            spi_out: "0x00001100".into(),
            port: None,
            count: 3,
            sent: Vec::new(),
            rtt: Vec::new(),
            next_send: Instant::now(),
            why_not_sent: Some("no SA: the connection has no outbound Child SA installed".into()),
            reply,
        };
        let (ok, v) = verdict(&t, 0, 0, &[]);
        assert!(!ok && v.starts_with("FAILED: nothing sent: no SA"), "{v}");
        t.why_not_sent = None;
        let (ok, v) = verdict(&t, 3, 0, &[]);
        assert!(!ok && v.starts_with("FAILED: no reply to 3 probe(s) 10.2.0.1 -> 10.1.0.1 on SPI 0x00001100"), "{v}");
        let (ok, v) = verdict(&t, 3, 2, &[100, 300]);
        assert!(!ok && v.starts_with("DEGRADED: 2 of 3") && v.contains("avg rtt 200 us"), "{v}");
        let (ok, v) = verdict(&t, 3, 3, &[100, 200, 300]);
        assert!(ok && v.starts_with("OK: 3 of 3"), "{v}");
    }

    #[test]
    fn probe_frames_are_addressed_to_the_port_itself() {
        let port = ProbePort { port: 1, mac: MacAddr([2, 0, 0x0a, 2, 0, 1]) };
        let e = echo::Echo { src: "10.2.0.1".parse().expect("ip"), dst: "10.1.0.1".parse().expect("ip"), ident: MONITOR_IDENT, seq: 1 };
        let f = probe_frame(port, &e).expect("frame");
        assert_eq!(f.port, 1);
        assert_eq!((&f.frame[0..6], &f.frame[6..12], &f.frame[12..14]), (&port.mac.0[..], &port.mac.0[..], &[8u8, 0][..]));
        assert_eq!(&f.frame[14..], &echo::request(&e).expect("request")[..]);
    }
}
