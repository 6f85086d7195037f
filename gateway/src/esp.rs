//! ESP mode of `ipsecgw run`: the config's ports, routes and `[[static_sa]]`
//! become a `dataplane::worker::Worker` per worker lcore, plugged into the poll
//! loop as its [`BurstProcessor`].
//!
//! With several workers, each inbound SA has an owning worker (replay windows
//! belong to one core); ESP received by another worker reaches the owner
//! through the handoff rings (handoff.rs). Worker 0 alone sends what the IKE
//! manager queues.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use controlplane::config::{Config, EncryptBy, SaOwner, StaticEncap, StaticSaConfig};
use controlplane::proposal::EncrId;
use controlplane::selector::{AddrRange, TrafficSelector};
use dataplane::crypto::{Algorithm, Backend};
use dataplane::neighbor_view::NeighborMirror;
use dataplane::route::{Route, RouteTable};
use dataplane::sa::Spi;
use dataplane::spd::{IpPrefix, PortRange};
use dataplane::stats::Stats;
use dataplane::wire::MacAddr;
use dataplane::worker::{
    connected_routes, install_static, Encrypt, InstalledTunnel, Interface, OwnerRule, StaticTunnel, TsSpec, TunnelControl, Worker,
    WorkerConfig, WorkerIo,
};
use dpdk::{Burst, Mbuf, Mempool};
use zeroize::Zeroizing;

use crate::handoff::MbufHandoff;
use crate::worker::{BurstProcessor, BURST};

/// SA slots (inbound + outbound SAs) the tables are sized for.
const SA_CAPACITY: u32 = 4096;

/// One port as the ESP worker sees it, before the port exists.
#[derive(Debug, Clone)]
pub struct EspPort {
    /// `mac` from the config: replaces the port's own address.
    pub mac: Option<[u8; 6]>,
    /// Addresses with prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// What the config says for ESP mode, before the ports exist.
#[derive(Debug, Clone)]
pub struct EspPlan {
    /// Per port, in plan order.
    pub ports: Vec<EspPort>,
    /// Configured routes (port index).
    pub routes: Vec<Route>,
    /// Static tunnels.
    pub tunnels: Vec<StaticTunnel>,
    /// `--neighbor IP=MAC` entries: resolved on the port whose route covers IP.
    pub neighbors: Vec<(IpAddr, MacAddr)>,
    /// `[dpdk].sa_owner`: which of several workers decrypts an inbound SA (and
    /// encrypts for an outbound one).
    pub owner_rule: OwnerRule,
    /// `[dpdk].encrypt`: whether one worker or any encrypts for an outbound SA.
    pub encrypt: Encrypt,
}

fn algorithm(sa: &StaticSaConfig) -> Result<Algorithm> {
    match (sa.algorithm.id, sa.algorithm.key_bits) {
        (EncrId::AesGcm16, Some(128)) => Ok(Algorithm::Aes128Gcm),
        (EncrId::AesGcm16, Some(256)) => Ok(Algorithm::Aes256Gcm),
        (EncrId::ChaCha20Poly1305, _) => Ok(Algorithm::ChaCha20Poly1305),
        _ => bail!("static SA {:?}: algorithm not supported by the dataplane: use aes128gcm16, aes256gcm16 or chacha20poly1305", sa.name),
    }
}

/// The prefixes that exactly cover `[lo, hi]` in a `bits`-bit space (RFC 7296
/// traffic selectors are ranges; the SPD matches prefixes).
fn range_prefixes(mut lo: u128, hi: u128, bits: u32) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    while lo <= hi {
        // The largest block 2^k aligned at `lo` that ends at or before `hi`.
        let span = hi - lo;
        let mut k = lo.trailing_zeros().min(bits);
        while k > 0 && (if k >= 128 { span != u128::MAX } else { (1u128 << k) - 1 > span }) {
            k -= 1;
        }
        out.push((lo, (bits - k) as u8));
        if k >= 128 {
            break;
        }
        match lo.checked_add(1u128 << k) {
            Some(n) => lo = n,
            None => break,
        }
    }
    out
}

pub(crate) fn ts_specs(list: &[TrafficSelector]) -> Result<Vec<TsSpec>> {
    let mut out = Vec::new();
    for ts in list {
        let proto = (ts.protocol != 0).then_some(ts.protocol);
        let ports = PortRange::new(ts.start_port, ts.end_port).map_err(|e| anyhow!("{e}"))?;
        let prefixes: Vec<IpPrefix> = match ts.addresses {
            AddrRange::V4(a, b) => range_prefixes(u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
                .into_iter()
                .map(|(n, l)| IpPrefix::V4(std::net::Ipv4Addr::from(n as u32), l))
                .collect(),
            AddrRange::V6(a, b) => range_prefixes(u128::from(a), u128::from(b), 128)
                .into_iter()
                .map(|(n, l)| IpPrefix::V6(std::net::Ipv6Addr::from(n), l))
                .collect(),
        };
        out.extend(prefixes.into_iter().map(|prefix| TsSpec { prefix, proto, ports }));
    }
    Ok(out)
}

fn tunnel(sa: &StaticSaConfig) -> Result<StaticTunnel> {
    Ok(StaticTunnel {
        name: sa.name.clone(),
        algorithm: algorithm(sa)?,
        local: sa.local,
        remote: sa.remote,
        udp: sa.encap == StaticEncap::Udp,
        spi_in: Spi(sa.spi_in),
        spi_out: Spi(sa.spi_out),
        key_in: Zeroizing::new(sa.key_in.expose().to_vec()),
        key_out: Zeroizing::new(sa.key_out.expose().to_vec()),
        local_ts: ts_specs(&sa.local_ts).with_context(|| format!("static SA {:?} local_ts", sa.name))?,
        remote_ts: ts_specs(&sa.remote_ts).with_context(|| format!("static SA {:?} remote_ts", sa.name))?,
        esn: sa.esn,
        replay_window: sa.replay_window,
    })
}

/// Parse `IP=MAC`.
pub fn parse_neighbor(s: &str) -> Result<(IpAddr, MacAddr)> {
    let (ip, mac) = s.split_once('=').ok_or_else(|| anyhow!("--neighbor {s:?}: write IP=MAC, e.g. 198.51.100.2=02:00:00:00:00:02"))?;
    let ip: IpAddr = ip.parse().map_err(|_| anyhow!("--neighbor {s:?}: {ip:?} is not an IP address"))?;
    let bytes: Vec<u8> = mac.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    let mac: [u8; 6] = bytes
        .try_into()
        .map_err(|_| anyhow!("--neighbor {s:?}: {mac:?} is not a MAC address (six hex bytes separated by ':')"))?;
    Ok((ip, MacAddr(mac)))
}

impl EspPlan {
    /// `None` when the config has no static SA (forwarding mode).
    pub fn from_config(config: &Config, neighbors: &[(IpAddr, MacAddr)]) -> Result<Option<EspPlan>> {
        if config.static_sas.is_empty() && config.connections.is_empty() {
            return Ok(None);
        }
        let ports = config
            .ports
            .iter()
            .map(|p| EspPort { mac: p.mac, addresses: p.addresses.iter().map(|a| (a.addr, a.len)).collect() })
            .collect();
        let mut routes = Vec::new();
        for r in &config.routes {
            let port = config
                .ports
                .iter()
                .position(|p| p.name == r.port)
                .ok_or_else(|| anyhow!("[[route]] to {}/{} names an unknown port {:?}", r.destination.addr, r.destination.len, r.port))?;
            routes.push(Route { dst: r.destination.addr, len: r.destination.len, via: r.via, port });
        }
        let tunnels = config.static_sas.iter().map(tunnel).collect::<Result<Vec<_>>>()?;
        let owner_rule = match config.dpdk.sa_owner {
            SaOwner::FirstReceiver => OwnerRule::FirstReceiver,
            SaOwner::Spi => OwnerRule::Spi,
        };
        let encrypt = match config.dpdk.encrypt {
            EncryptBy::Owner => Encrypt::Owner,
            EncryptBy::AnyWorker => Encrypt::AnyWorker,
        };
        Ok(Some(EspPlan { ports, routes, tunnels, neighbors: neighbors.to_vec(), owner_rule, encrypt }))
    }
}

/// Tables, counters and per-worker setup of a running ESP gateway.
pub struct EspGateway {
    /// Handed to the IKE manager's SA sink when there are connections.
    ctl: Option<TunnelControl>,
    readers: dataplane::sa::ReaderFactory<dataplane::worker::TunnelTable>,
    ike: Option<crate::tunnel::IkeLink>,
    installed: Vec<InstalledTunnel>,
    stats: Arc<Stats>,
    config: WorkerConfig,
    punted: Arc<AtomicU64>,
    /// The workers' neighbour tables, copied on request (`show neighbors`).
    neighbors: Arc<NeighborMirror>,
    owner_rule: OwnerRule,
    encrypt: Encrypt,
    workers: usize,
}

impl EspGateway {
    /// Build and publish the tables; `port_macs` are the started ports' MACs.
    pub fn new(plan: &EspPlan, port_macs: &[[u8; 6]], workers: usize) -> Result<EspGateway> {
        let interfaces: Vec<Interface> = plan
            .ports
            .iter()
            .zip(port_macs)
            .map(|(p, mac)| {
                let mut i = Interface::new(MacAddr(p.mac.unwrap_or(*mac)));
                i.addresses = p.addresses.clone();
                i
            })
            .collect();
        let mut routes = connected_routes(&interfaces);
        routes.extend(plan.routes.iter().copied());
        let routes = RouteTable::build(routes).map_err(|e| anyhow!("routes: {e}"))?;
        let mut static_neighbors = Vec::new();
        for &(ip, mac) in &plan.neighbors {
            match routes.lookup(ip) {
                Some(hop) => static_neighbors.push((hop.port, ip, mac)),
                None => eprintln!("ipsecgw: --neighbor {ip}: no port has a route to it; ignored"),
            }
        }
        let mut ctl = TunnelControl::new(SA_CAPACITY);
        let installed = install_static(&mut ctl, &plan.tunnels, Backend::Auto).map_err(|e| anyhow!("{e}"))?;
        let stats = Arc::new(Stats::new(workers, interfaces.len(), SA_CAPACITY as usize));
        Ok(EspGateway {
            readers: ctl.readers(),
            ctl: Some(ctl),
            ike: None,
            installed,
            stats,
            config: WorkerConfig { interfaces, routes, static_neighbors },
            punted: Arc::new(AtomicU64::new(0)),
            neighbors: NeighborMirror::new(workers),
            owner_rule: plan.owner_rule,
            encrypt: plan.encrypt,
            workers,
        })
    }

    /// The counters (for the control socket's dataplane view).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// How SAs get their worker (`[dpdk].sa_owner`), which workers encrypt
    /// (`[dpdk].encrypt`), and how many workers there are.
    pub fn owners(&self) -> (OwnerRule, Encrypt, u32) {
        (self.owner_rule, self.encrypt, u32::try_from(self.workers).unwrap_or(u32::MAX))
    }

    /// Readers of the published SA tables (the control socket's SA rows).
    pub fn tables(&self) -> &dataplane::sa::ReaderFactory<dataplane::worker::TunnelTable> {
        &self.readers
    }

    /// The routing table the workers use.
    pub fn routes(&self) -> &RouteTable {
        &self.config.routes
    }

    /// Where the workers copy their neighbour tables when asked.
    pub fn neighbor_mirror(&self) -> Arc<NeighborMirror> {
        Arc::clone(&self.neighbors)
    }

    /// The tables, for the IKE manager's sink (tunnel.rs); `None` once taken.
    pub fn take_control(&mut self) -> Option<TunnelControl> {
        self.ctl.take()
    }

    /// Punted IKE goes to the manager, its datagrams are sent by the workers.
    pub fn attach_ike(&mut self, link: crate::tunnel::IkeLink) {
        self.ike = Some(link);
    }

    /// The burst processor of worker `index`, with its handoff rings when
    /// there are several workers.
    pub fn processor(&self, index: usize, pool: Arc<Mempool>, handoff: Option<MbufHandoff>) -> Result<EspProcessor> {
        let stats = self.stats.core(index).ok_or_else(|| anyhow!("internal: no counters for worker {index}"))?;
        let mut worker = Worker::new(&self.config, self.readers.reader(), stats);
        if let Some(h) = &handoff {
            worker.set_ownership(h.ownership().with_rule(self.owner_rule).with_encrypt(self.encrypt));
        }
        Ok(EspProcessor {
            worker,
            ike: self.ike.clone(),
            pool,
            start: Instant::now(),
            now_ms: 0,
            punted: Arc::clone(&self.punted),
            neighbors: Arc::clone(&self.neighbors),
            index,
            handoff,
            sends_ike: index == 0,
        })
    }

    /// Counters per static SA (none printed without static SAs: IKE's CHILD_SAs
    /// are deleted before this report) and per drop reason, for the exit report.
    /// The last column is the worker that decrypts the inbound SA: by the SPI,
    /// or the worker that claimed it (`-`: no packet of it authenticated yet).
    pub fn report(&self) -> String {
        let mut s = String::new();
        if !self.installed.is_empty() {
            s.push_str(&self.sa_report());
        }
        let snap = self.stats.snapshot();
        let drops: Vec<String> = snap.nonzero_drops().map(|(r, n)| format!("{r}={n}")).collect();
        s.push_str(&format!("drops: {}\n", if drops.is_empty() { "none".to_string() } else { drops.join(" ") }));
        let what = if self.ike.is_some() { "IKE to the manager, the rest freed" } else { "freed: no IKE in static mode" };
        s.push_str(&format!("punted to the control plane ({what}): {}\n", self.punted.load(Ordering::Relaxed)));
        s
    }

    /// The static SAs' rows of [`Self::report`], with their header.
    fn sa_report(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<16} {:>10} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10} {:>6}\n",
            "sa", "spi_in", "in_pkts", "in_bytes", "in_drops", "out_pkts", "out_bytes", "out_drops", "owner"
        ));
        let mut reader = self.readers.reader();
        let table = reader.load();
        let (rule, _, workers) = self.owners();
        for t in &self.installed {
            let (i, o) = (self.stats.sa(t.inbound), self.stats.sa(t.outbound));
            let owner = if workers <= 1 {
                Some(0)
            } else {
                table.inbound(t.spi_in).and_then(|sa| rule.decrypting_worker(workers, t.spi_in, &sa.state))
            };
            s.push_str(&format!(
                "{:<16} {:>#10x} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10} {:>6}\n",
                t.name,
                t.spi_in.0,
                i.packets,
                i.bytes,
                i.drops,
                o.packets,
                o.bytes,
                o.drops,
                owner.map_or_else(|| "-".to_owned(), |w| w.to_string())
            ));
        }
        reader.offline();
        s
    }
}

/// The ESP worker as the poll loop's per-burst processor.
pub struct EspProcessor {
    worker: Worker<Mbuf>,
    ike: Option<crate::tunnel::IkeLink>,
    pool: Arc<Mempool>,
    start: Instant,
    /// Milliseconds since `start`, read once per poll-loop iteration in
    /// [`BurstProcessor::poll`] (which the loop calls before its rx bursts) and
    /// used by the bursts after it: the clock read per burst (clock_gettime,
    /// `Instant` arithmetic and a TLS lookup) was ~2% of a 64 B encap worker, and
    /// the neighbour timers need milliseconds, not the time of each burst.
    now_ms: u64,
    punted: Arc<AtomicU64>,
    neighbors: Arc<NeighborMirror>,
    /// This worker's index (its slot in `neighbors`).
    index: usize,
    /// Rings to and from the other workers (several workers only).
    handoff: Option<MbufHandoff>,
    /// This worker sends the IKE manager's datagrams (one worker does).
    sends_ike: bool,
}

struct BurstIo<'a> {
    tx: &'a mut [Burst<BURST>],
    pool: &'a Mempool,
    punted: u64,
    ike: Option<&'a crate::tunnel::IkeLink>,
}

impl WorkerIo<Mbuf> for BurstIo<'_> {
    fn tx(&mut self, port: usize, pkt: Mbuf) -> Result<(), Mbuf> {
        match self.tx.get_mut(port) {
            Some(b) => b.push(pkt),
            None => Err(pkt),
        }
    }

    fn punt(&mut self, _port: usize, pkt: Mbuf) -> Result<(), Mbuf> {
        // Static mode has no control plane: count and free.
        self.punted += 1;
        if let Some(ike) = self.ike {
            ike.punt(dataplane::packet::Packet::data(&pkt));
        }
        drop(pkt);
        Ok(())
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }
}

impl BurstProcessor for EspProcessor {
    #[inline]
    fn process(&mut self, rx_port: usize, pkts: &mut Burst<BURST>, tx: &mut [Burst<BURST>]) {
        let now_ms = self.now_ms;
        // The burst's headers start loading while the first packets are classified
        // (from a NIC's DMA they are not in L1; on the vdevs the PMD's copy left them
        // there, so perf/ cannot show the gain).
        pkts.prefetch_data();
        let mut io = BurstIo { tx, pool: &self.pool, punted: 0, ike: self.ike.as_ref() };
        match self.handoff.as_mut() {
            Some(h) => {
                self.worker.process(rx_port, pkts.drain(), &mut h.io(&mut io), now_ms);
                h.flush(self.worker.stats());
            }
            None => self.worker.process(rx_port, pkts.drain(), &mut io, now_ms),
        }
        if io.punted > 0 {
            self.punted.fetch_add(io.punted, Ordering::Relaxed);
        }
    }

    fn poll(&mut self, tx: &mut [Burst<BURST>]) -> usize {
        self.worker.quiesce();
        let now_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.now_ms = now_ms;
        if self.neighbors.wanted(self.index) {
            // An operator asked (`show neighbors`): copy off the packet path.
            self.neighbors.publish(self.index, self.worker.neighbors(), now_ms);
        }
        // Handed-off ESP may decapsulate to a packet for the gateway itself (a
        // tunnel monitor's echo reply): its punt goes to the control plane too.
        let mut io = BurstIo { tx, pool: &self.pool, punted: 0, ike: self.ike.as_ref() };
        let mut n = 0;
        if let Some(h) = self.handoff.as_mut() {
            let inbox = h.receive();
            n = inbox.len();
            if n > 0 {
                self.worker.process_handoff(inbox, &mut io, now_ms);
            }
        }
        // What the control plane sends (IKE, tunnel monitor probes) goes through
        // this worker; a probe's plaintext for an SA another worker encrypts for
        // is handed to that worker.
        let n = match (&self.ike, self.handoff.as_mut()) {
            (Some(ike), Some(h)) if self.sends_ike => {
                let sent = ike.drain(&mut self.worker, &mut h.io(&mut io), now_ms);
                h.flush(self.worker.stats());
                n + sent
            }
            (Some(ike), None) if self.sends_ike => n + ike.drain(&mut self.worker, &mut io, now_ms),
            _ => n,
        };
        if io.punted > 0 {
            self.punted.fetch_add(io.punted, Ordering::Relaxed);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_exact_prefixes() {
        assert_eq!(range_prefixes(0x0a01_0000, 0x0a01_00ff, 32), [(0x0a01_0000, 24)]);
        assert_eq!(range_prefixes(0, u128::from(u32::MAX), 32), [(0, 0)]);
        assert_eq!(range_prefixes(0, u128::MAX, 128), [(0, 0)]);
        assert_eq!(range_prefixes(5, 5, 32), [(5, 32)]);
        // 10.0.0.1 - 10.0.0.6 = .1/32 .2/31 .4/31 .6/32
        assert_eq!(range_prefixes(0x0a00_0001, 0x0a00_0006, 32), [(0x0a00_0001, 32), (0x0a00_0002, 31), (0x0a00_0004, 31), (0x0a00_0006, 32)]);
        assert!(range_prefixes(7, 6, 32).is_empty());
    }

    #[test]
    fn neighbor_flag_parses_and_says_what_is_wrong() {
        let (ip, mac) = parse_neighbor("198.51.100.2=02:00:00:00:00:0a").expect("valid");
        assert_eq!(ip.to_string(), "198.51.100.2");
        assert_eq!(mac, MacAddr([2, 0, 0, 0, 0, 10]));
        assert!(parse_neighbor("198.51.100.2").is_err());
        assert!(parse_neighbor("x=02:00:00:00:00:0a").is_err());
        assert!(parse_neighbor("10.0.0.1=02:00:00").is_err());
    }
}
