//! The IKE manager: a thread that owns the sans-IO [`Endpoint`], drives it
//! with real time and OS randomness, moves datagrams through an
//! [`IkeTransport`], puts Child SAs into an [`SaSink`], logs every event
//! (failures with both sides' values) and answers operator [`Command`]s.
//!
//! ```no_run
//! use controlplane::config::Config;
//! use controlplane::manager::{self, DataplaneSaSink, Manager, RecordingSaSink, UdpTransport};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (config, _warnings) = Config::load("gw.toml".as_ref())?;
//! let conns: Vec<_> = config.connections.iter().map(|c| c.to_engine()).collect();
//! // Without DPDK: kernel UDP sockets, SAs only logged.
//! let addrs: Vec<_> = conns.iter().map(|c| c.local.ip()).collect();
//! let handle = Manager::spawn(conns, Box::new(UdpTransport::bind(&addrs)?), Box::new(RecordingSaSink::new()))?;
//! handle.initiate("left")?;
//! println!("{:?}", handle.status()?);
//! handle.shutdown(true);
//! # Ok(()) }
//! ```
//!
//! In `ipsecgw run` (DPDK), the transport is the punt path and the sink the
//! dataplane's SA tables:
//! ```no_run
//! # use controlplane::manager::*;
//! # use dataplane::crypto::Backend;
//! # fn f(conns: Vec<controlplane::ikev2::ConnectionConfig>) -> std::io::Result<()> {
//! let ctl = EspSaControl::new(4096);
//! let reader = ctl.reader();                     // one per worker, before moving `ctl`
//! let (punt, transport) = punt_channel(1024);    // `punt` goes to the workers
//! let handle = Manager::spawn(conns, Box::new(transport), Box::new(DataplaneSaSink::new(ctl, Backend::Auto)))?;
//! // worker: punt.punt(UdpDatagram { local, remote, payload }) for UDP 500 and
//! // 4500-with-marker to our addresses; drain punt.outbound and send each.
//! # Ok(()) }
//! ```

mod command;
mod dataplane_sink;
mod entropy;
mod log;
mod sa_sink;
mod transport;
mod unknown_spi;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{self, Receiver, Sender, TryRecvError};

use crate::ikev2::{Action, ConnectionConfig, ConnectionId, Endpoint, Event, IkeSaId, IkeSaInfo, Spi};

pub use command::{Command, CommandError, ConnectionStatus, LastFailure, Status};
pub use dataplane_sink::{esp_algorithm, outbound_config, DataplaneSaSink, EspSaBuilder, EspSaControl, SaBuilder, TableSaSink, POLICY_PRIORITY_BASE, TRAP_PRIORITY_BASE};
pub use entropy::OsEntropy;
pub use log::{event_line, init_stderr_logging};
pub use sa_sink::{RecordingSaSink, SaSink, SinkError, SinkRecord};
pub use unknown_spi::{UnknownSpiCount, UnknownSpiReport, INVALID_SPI_NOTIFY_INTERVAL, UNKNOWN_SPI_QUEUE, UNKNOWN_SPI_TABLE};
pub use transport::{punt_channel, Datagram, IkeTransport, PuntEnds, PuntTransport, TransportStats, UdpDatagram, UdpTransport, Waker, IKE_PORT};

/// Longest sleep in the transport before looking at commands again (when the
/// transport has no waker; with one, commands wake it at once).
const COMMAND_POLL: Duration = Duration::from_millis(100);
/// Datagrams handled in a row before timers and commands get a turn.
const RECV_BATCH: usize = 64;
/// How long a shutdown with `delete` waits for the peers' answers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The manager: engine + transport + sink + per-connection state.
pub struct Manager {
    endpoint: Endpoint,
    transport: Box<dyn IkeTransport>,
    sink: Box<dyn SaSink>,
    connections: Vec<(String, ConnectionId)>,
    failures: HashMap<Option<String>, LastFailure>,
    failures_by_reason: std::collections::BTreeMap<crate::diagnosis::Reason, u64>,
    commands: Receiver<Command>,
    unknown_spi_reports: Receiver<UnknownSpiReport>,
    unknown_spi_dropped: Arc<AtomicU64>,
    unknown_spis: unknown_spi::UnknownSpiTable,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("endpoint", &self.endpoint).field("connections", &self.connections).finish_non_exhaustive()
    }
}

/// Asks the manager thread things (cloneable: the control socket, signal
/// handlers and the dataplane's trap path each hold one).
#[derive(Clone)]
pub struct ManagerClient {
    commands: Sender<Command>,
    waker: Option<Waker>,
    /// Bounded, apart from the commands: the dataplane's reports must never
    /// block a worker nor grow without bound under a flood.
    unknown_spi: Sender<UnknownSpiReport>,
    unknown_spi_dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for ManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerClient").field("wakes_transport", &self.waker.is_some()).finish_non_exhaustive()
    }
}

/// Owns the manager thread; derefs to a [`ManagerClient`].
#[derive(Debug)]
pub struct ManagerHandle {
    client: ManagerClient,
    thread: Option<JoinHandle<()>>,
}

impl Manager {
    /// A manager with OS randomness; connections with `start_action = start`
    /// are initiated at once. Returns it and the sender for [`Command`]s.
    pub fn new(
        connections: Vec<ConnectionConfig>,
        transport: Box<dyn IkeTransport>,
        sink: Box<dyn SaSink>,
    ) -> (Self, ManagerClient) {
        Self::with_endpoint(Endpoint::new(Box::new(OsEntropy)), connections, transport, sink)
    }

    /// Same with a given engine (e.g. one with a cookie threshold).
    pub fn with_endpoint(
        endpoint: Endpoint,
        connections: Vec<ConnectionConfig>,
        transport: Box<dyn IkeTransport>,
        sink: Box<dyn SaSink>,
    ) -> (Self, ManagerClient) {
        let (tx, rx) = channel::unbounded();
        let (report_tx, report_rx) = channel::bounded(UNKNOWN_SPI_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let client = ManagerClient { commands: tx, waker: transport.waker(), unknown_spi: report_tx, unknown_spi_dropped: Arc::clone(&dropped) };
        let mut m = Manager {
            endpoint,
            transport,
            sink,
            connections: Vec::new(),
            failures: HashMap::new(),
            failures_by_reason: Default::default(),
            commands: rx,
            unknown_spi_reports: report_rx,
            unknown_spi_dropped: dropped,
            unknown_spis: Default::default(),
        };
        for c in connections {
            let name = c.name.clone();
            let (id, actions) = m.endpoint.add_connection(c, Instant::now());
            m.connections.push((name, id));
            m.execute(actions);
        }
        (m, client)
    }

    /// Starts the manager thread.
    pub fn spawn(
        connections: Vec<ConnectionConfig>,
        transport: Box<dyn IkeTransport>,
        sink: Box<dyn SaSink>,
    ) -> io::Result<ManagerHandle> {
        let (tx, rx) = channel::bounded(1);
        // The manager is built on its own thread: `start` connections send at once.
        let thread = std::thread::Builder::new().name("ike-manager".into()).spawn(move || {
            let (m, client) = Manager::new(connections, transport, sink);
            if tx.send(client).is_ok() {
                m.run();
            }
        })?;
        let client = rx.recv().map_err(|_| io::Error::other("the IKE manager thread died while starting"))?;
        Ok(ManagerHandle { client, thread: Some(thread) })
    }

    /// Runs until a `Shutdown` command, all command senders gone, or a
    /// transport failure.
    pub fn run(mut self) {
        loop {
            match self.step(COMMAND_POLL) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!("IKE transport failed: {e}; the IKE manager stops");
                    return;
                }
            }
        }
    }

    /// One round: commands, then datagrams (waiting up to `max_wait` or the
    /// next engine timer), then due timers. `Ok(false)` = shut down.
    pub fn step(&mut self, max_wait: Duration) -> io::Result<bool> {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown { delete }) => {
                    if delete {
                        self.delete_all();
                    }
                    return Ok(false);
                }
                Ok(c) => self.command(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(false),
            }
        }
        // At most a queue's worth per round: commands and IKE get their turn.
        // One clock reading for the batch: a burst queued together is one
        // burst for the rate limit, however long the loop takes.
        let now = Instant::now();
        for r in self.unknown_spi_reports.try_iter().take(UNKNOWN_SPI_QUEUE).collect::<Vec<_>>() {
            self.unknown_spi(r, now);
        }
        let now = Instant::now();
        let mut wait = self.endpoint.poll_timeout().map_or(max_wait, |t| t.saturating_duration_since(now)).min(max_wait);
        for _ in 0..RECV_BATCH {
            let Some(d) = self.transport.recv(wait)? else { break };
            let actions = self.endpoint.handle_datagram(d.local, d.remote, &d.ike, Instant::now());
            self.execute(actions);
            wait = Duration::ZERO;
        }
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            let actions = self.endpoint.handle_timeout(now);
            self.execute(actions);
        }
        self.sink.tick(now);
        Ok(true)
    }

    /// The engine (tests and benchmarks look at it between steps).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn delete_all(&mut self) {
        let now = Instant::now();
        for sa in self.endpoint.ike_sas() {
            let actions = self.endpoint.delete_ike(sa.id, now);
            self.execute(actions);
        }
        let end = now + SHUTDOWN_GRACE;
        while !self.endpoint.ike_sas().is_empty() && Instant::now() < end {
            let wait = end.saturating_duration_since(Instant::now()).min(COMMAND_POLL);
            match self.transport.recv(wait) {
                Ok(Some(d)) => {
                    let actions = self.endpoint.handle_datagram(d.local, d.remote, &d.ike, Instant::now());
                    self.execute(actions);
                }
                Ok(None) => {}
                Err(_) => break,
            }
            let now = Instant::now();
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                let actions = self.endpoint.handle_timeout(now);
                self.execute(actions);
            }
        }
    }

    fn connection(&self, name: &str) -> Result<ConnectionId, CommandError> {
        self.connections.iter().find(|(n, _)| n == name).map(|(_, id)| *id).ok_or_else(|| CommandError::UnknownConnection {
            name: name.to_owned(),
            configured: self.connections.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    fn sas_of(&self, name: &str) -> Result<Vec<IkeSaInfo>, CommandError> {
        self.connection(name)?;
        let sas: Vec<_> = self.endpoint.ike_sas().into_iter().filter(|s| s.connection == name && s.established).collect();
        if sas.is_empty() {
            return Err(CommandError::NoIkeSa(name.to_owned()));
        }
        Ok(sas)
    }

    /// Applies an operator request to each established IKE SA of a connection.
    fn each_ike_sa(&mut self, name: &str, f: fn(&mut Endpoint, IkeSaId, Instant) -> Vec<Action>) -> Result<usize, CommandError> {
        let sas = self.sas_of(name)?;
        for sa in &sas {
            let actions = f(&mut self.endpoint, sa.id, Instant::now());
            self.execute(actions);
        }
        Ok(sas.len())
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        // A requester that went away does not need an answer: sends may fail.
        match c {
            Command::Initiate { connection, reply } => {
                let r = self.connection(&connection).and_then(|id| {
                    if self.endpoint.connection(id).is_some_and(|c| c.passive) {
                        return Err(CommandError::Passive(connection.clone()));
                    }
                    let actions = self.endpoint.initiate(id, now);
                    self.execute(actions);
                    Ok(())
                });
                let _ = reply.send(r);
            }
            Command::Acquire { connection } => {
                if let Ok(id) = self.connection(&connection) {
                    let actions = self.endpoint.acquire(id, now);
                    self.execute(actions);
                }
            }
            Command::Terminate { connection, reply } => {
                let _ = reply.send(self.each_ike_sa(&connection, Endpoint::delete_ike));
            }
            Command::RekeyIke { connection, reply } => {
                let _ = reply.send(self.each_ike_sa(&connection, Endpoint::rekey_ike));
            }
            Command::RekeyChild { connection, reply } => {
                let r = self.sas_of(&connection).map(|sas| {
                    let mut n = 0;
                    for sa in &sas {
                        for child in sa.children.iter().filter(|c| c.active) {
                            let actions = self.endpoint.rekey_child(sa.id, child.id, now);
                            self.execute(actions);
                            n += 1;
                        }
                    }
                    n
                });
                let _ = reply.send(r);
            }
            Command::IkeSas { reply } => {
                let _ = reply.send(self.endpoint.ike_sas());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            // Handled in `step`.
            Command::Shutdown { .. } => {}
        }
    }

    /// One unknown-SPI report: counted; a rate-limited INVALID_SPI notify
    /// when an IKE SA with the peer is established (RFC 7296 §2.21.4).
    fn unknown_spi(&mut self, r: UnknownSpiReport, now: Instant) {
        let unknown_spi::Verdict::Act { suppressed } = self.unknown_spis.record(r, now, SystemTime::now()) else { return };
        let spi = Spi(r.spi);
        let sa = self.endpoint.ike_sas().into_iter().find(|s| s.established && s.remote.ip() == r.peer);
        let Some(sa) = sa else {
            tracing::info!(
                "ESP from {} on unknown SPI {spi} ({suppressed} more unknown-SPI packets from this peer since the last line): no IKE SA with this peer, counted only",
                r.peer
            );
            return;
        };
        let actions = self.endpoint.notify_invalid_spi(sa.id, spi, now);
        let sent = actions.iter().any(|a| matches!(a, Action::Send { .. }));
        self.execute(actions);
        if sent {
            self.unknown_spis.notified(r);
        }
        tracing::info!(
            "ESP from {} on unknown SPI {spi} ({suppressed} more unknown-SPI packets from this peer since the last line): {} INVALID_SPI to the peer of connection '{}' (RFC 7296 §3.10.1, at most one per peer per {:?})",
            r.peer,
            if sent { "sent" } else { "queued" },
            sa.connection,
            INVALID_SPI_NOTIFY_INTERVAL
        );
    }

    /// Connections, their IKE SAs and last failures.
    pub fn status(&self) -> Status {
        let sas = self.endpoint.ike_sas();
        Status {
            connections: self
                .connections
                .iter()
                .map(|(name, _)| ConnectionStatus {
                    name: name.clone(),
                    ike_sas: sas.iter().filter(|s| &s.connection == name).cloned().collect(),
                    last_failure: self.failures.get(&Some(name.clone())).cloned(),
                })
                .collect(),
            unmatched_failure: self.failures.get(&None).cloned(),
            stats: self.endpoint.stats(),
            failures_by_reason: self.failures_by_reason.clone(),
            unknown_spis: self.unknown_spis.snapshot(),
            unknown_spi_reports_dropped: self.unknown_spi_dropped.load(Ordering::Relaxed),
        }
    }

    fn execute(&mut self, actions: Vec<Action>) {
        let now = Instant::now();
        for a in actions {
            match a {
                Action::Send { from, to, bytes } => {
                    if let Err(e) = self.transport.send(from, to, &bytes) {
                        // IKE retransmits; the engine reports a peer that never answers.
                        tracing::warn!("sending IKE message {from} -> {to} failed: {e}");
                    }
                }
                Action::SendNatKeepalive { from, to } => {
                    if let Err(e) = self.transport.send_keepalive(from, to) {
                        tracing::warn!("sending NAT keepalive {from} -> {to} failed: {e}");
                    } else {
                        tracing::debug!("NAT keepalive {from} -> {to} (RFC 3948 §2.3)");
                    }
                }
                Action::InstallChildSa(sa) => {
                    if let Err(e) = self.sink.install(&sa, now) {
                        tracing::error!(
                            "connection '{}': installing Child SA {} (SPIs in {} out {}) in the dataplane failed: {e}",
                            sa.connection,
                            sa.child.0,
                            sa.inbound_spi,
                            sa.outbound_spi
                        );
                    }
                }
                Action::RemoveChildSa(sa) => {
                    if let Err(e) = self.sink.remove(&sa, now) {
                        tracing::error!("removing Child SA {} (SPIs in {} out {}) from the dataplane failed: {e}", sa.child.0, sa.inbound_spi, sa.outbound_spi);
                    }
                }
                Action::Event(e) => self.event(e),
            }
        }
    }

    fn event(&mut self, e: Event) {
        let line = event_line(&e);
        match &e {
            Event::Failure(f) => {
                tracing::warn!("{line}");
                let conn = f.connection.as_deref().and_then(|n| self.connection(n).ok()).and_then(|id| self.endpoint.connection(id));
                let d = crate::diagnosis::diagnose(f, conn);
                tracing::warn!("DIAGNOSIS: {d}");
                *self.failures_by_reason.entry(d.reason).or_insert(0) += 1;
                let entry = self.failures.entry(f.connection.clone()).or_insert_with(|| LastFailure {
                    at: SystemTime::now(),
                    message: String::new(),
                    count: 0,
                    reason: d.reason,
                    diagnosis: String::new(),
                });
                entry.at = SystemTime::now();
                entry.message = f.to_string();
                entry.count += 1;
                entry.reason = d.reason;
                entry.diagnosis = d.to_string();
            }
            Event::Dropped { .. } => tracing::debug!("{line}"),
            Event::Held { connection } => {
                tracing::info!("{line}");
                if let Err(e) = self.sink.hold(connection, Instant::now()) {
                    tracing::error!("connection '{connection}': installing its trap policies (dpd action hold) failed: {e}");
                }
            }
            Event::IkeSaDown { .. } | Event::ChildSaDown { .. } => tracing::info!("{line}"),
            _ => tracing::info!("{line}"),
        }
    }
}

impl ManagerClient {
    /// Queues a command and wakes the manager.
    pub fn send(&self, c: Command) -> Result<(), CommandError> {
        self.commands.send(c).map_err(|_| CommandError::ManagerGone)?;
        if let Some(w) = &self.waker {
            w();
        }
        Ok(())
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, CommandError> {
        let (tx, rx) = channel::bounded(1);
        self.send(make(tx))?;
        rx.recv().map_err(|_| CommandError::ManagerGone)
    }

    /// Starts an IKE SA (and its first Child SA) for a connection.
    pub fn initiate(&self, connection: &str) -> Result<(), CommandError> {
        self.ask(|reply| Command::Initiate { connection: connection.to_owned(), reply })?
    }

    /// Trap: traffic for a connection without SA (fire and forget).
    pub fn acquire(&self, connection: &str) {
        let _ = self.send(Command::Acquire { connection: connection.to_owned() });
    }

    /// Deletes the connection's IKE SAs; returns how many.
    pub fn terminate(&self, connection: &str) -> Result<usize, CommandError> {
        self.ask(|reply| Command::Terminate { connection: connection.to_owned(), reply })?
    }

    /// Rekeys the connection's IKE SAs; returns how many.
    pub fn rekey_ike(&self, connection: &str) -> Result<usize, CommandError> {
        self.ask(|reply| Command::RekeyIke { connection: connection.to_owned(), reply })?
    }

    /// Rekeys the connection's active Child SAs; returns how many.
    pub fn rekey_child(&self, connection: &str) -> Result<usize, CommandError> {
        self.ask(|reply| Command::RekeyChild { connection: connection.to_owned(), reply })?
    }

    /// Every IKE SA with its Child SAs.
    pub fn ike_sas(&self) -> Result<Vec<IkeSaInfo>, CommandError> {
        self.ask(|reply| Command::IkeSas { reply })
    }

    /// Connections, SAs, last failures, engine counters.
    pub fn status(&self) -> Result<Status, CommandError> {
        self.ask(|reply| Command::Status { reply })
    }

    /// The dataplane received ESP from `peer` on `spi`, which it has no SA
    /// for (issue 7 item 4). Never blocks: when the manager's report queue
    /// ([`UNKNOWN_SPI_QUEUE`]) is full the report is dropped and counted
    /// (`Status::unknown_spi_reports_dropped`). The manager counts it per
    /// (peer, SPI) and, when an IKE SA with `peer` is established, sends an
    /// INVALID_SPI notify, at most one per peer per [`INVALID_SPI_NOTIFY_INTERVAL`].
    /// Call it per packet or per burst: the manager does the rate limiting.
    pub fn report_unknown_spi(&self, peer: IpAddr, spi: u32) {
        // No wake: the manager looks at reports within its poll interval,
        // and a flood must not turn into a flood of wake-ups.
        if self.unknown_spi.try_send(UnknownSpiReport { peer, spi }).is_err() {
            self.unknown_spi_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

}

impl std::ops::Deref for ManagerHandle {
    type Target = ManagerClient;
    fn deref(&self) -> &ManagerClient {
        &self.client
    }
}

impl ManagerHandle {
    /// A client for another thread.
    pub fn client(&self) -> ManagerClient {
        self.client.clone()
    }

    /// Stops the thread and waits for it; with `delete`, tells the peers first.
    pub fn shutdown(mut self, delete: bool) {
        let _ = self.client.send(Command::Shutdown { delete });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ManagerHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.client.send(Command::Shutdown { delete: false });
            let _ = t.join();
        }
    }
}
