//! A [`DataplaneView`] over the workers' counters (`dataplane::stats`) and
//! tables, for `ipsecgw run`. Nothing here stops or locks a worker:
//! - ports and drop reasons: the per-core counters, summed;
//! - NIC counters (missed, nombuf, errors, loss xstats): a reader the gateway
//!   gives ([`DataplaneStats::with_nic`]; DPDK lives in the gateway);
//! - SA rows: the published SA table snapshot (RCU, `dataplane::sa`), read
//!   through a reader of our own that goes offline after each read so it
//!   never holds back reclamation, plus the per-SA counters;
//! - neighbours: the workers' copies on request ([`NeighborMirror`]);
//! - routes: fixed at start.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dataplane::neighbor_view::NeighborMirror;
use dataplane::route::Route;
use dataplane::sa::{PolicyAction, Reader, ReaderFactory};
use dataplane::stats::{DropReason, Stats};
use dataplane::worker::{Encrypt, OwnerRule, TunnelTable};

use super::{DataplaneSnapshot, DataplaneView, DropView, NeighborView, PortView, RouteView, SaCountersView};

type Extra = Box<dyn Fn(&mut DataplaneSnapshot) + Send + Sync>;

/// What the NIC counted for one port (filled by the gateway from DPDK).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicView {
    pub missed: u64,
    pub rx_nombuf: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub xstats: Vec<(String, u64)>,
}

type Nic = Box<dyn Fn(usize) -> Option<NicView> + Send + Sync>;

/// How long `show neighbors` waits for the workers' copies.
const NEIGHBOR_WAIT: Duration = Duration::from_millis(500);

pub struct DataplaneStats {
    stats: Arc<Stats>,
    port_names: Vec<String>,
    extra: Option<Extra>,
    nic: Option<Nic>,
    /// Our own reader of the SA tables (only the API threads use it).
    tables: Option<Mutex<Reader<TunnelTable>>>,
    neighbors: Option<Arc<NeighborMirror>>,
    routes: Vec<RouteView>,
    /// How SAs get their worker, which workers encrypt, and how many workers
    /// there are.
    owners: (OwnerRule, Encrypt, u32),
}

impl std::fmt::Debug for DataplaneStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneStats").field("ports", &self.port_names).finish_non_exhaustive()
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl DataplaneStats {
    /// `port_names[i]` names DPDK port `i` (from the config's [[port]]).
    pub fn new(stats: Arc<Stats>, port_names: Vec<String>) -> Self {
        Self { stats, port_names, extra: None, nic: None, tables: None, neighbors: None, routes: Vec::new(), owners: (OwnerRule::FirstReceiver, Encrypt::Owner, 1) }
    }

    /// `workers` workers find an SA's by `rule` (`[dpdk].sa_owner`) and encrypt
    /// as `encrypt` says (`[dpdk].encrypt`): the SA rows name that worker
    /// ([`OwnerRule::decrypting_worker`], [`OwnerRule::encrypting_worker`]).
    pub fn with_owners(mut self, rule: OwnerRule, encrypt: Encrypt, workers: u32) -> Self {
        self.owners = (rule, encrypt, workers);
        self
    }

    /// Called last on every snapshot (tests, additions).
    pub fn with_extra(mut self, f: impl Fn(&mut DataplaneSnapshot) + Send + Sync + 'static) -> Self {
        self.extra = Some(Box::new(f));
        self
    }

    /// NIC counters of port index `i`.
    pub fn with_nic(mut self, f: impl Fn(usize) -> Option<NicView> + Send + Sync + 'static) -> Self {
        self.nic = Some(Box::new(f));
        self
    }

    /// SA rows from the published tables.
    pub fn with_tables(mut self, readers: &ReaderFactory<TunnelTable>) -> Self {
        let mut r = readers.reader();
        r.offline();
        self.tables = Some(Mutex::new(r));
        self
    }

    /// Neighbour rows from the workers' copies.
    pub fn with_neighbors(mut self, mirror: Arc<NeighborMirror>) -> Self {
        self.neighbors = Some(mirror);
        self
    }

    /// The routing table (connected and configured routes).
    pub fn with_routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes = routes
            .into_iter()
            .map(|r| RouteView {
                prefix: format!("{}/{}", r.dst, r.len),
                via: r.via.map_or_else(|| "connected".to_owned(), |v| v.to_string()),
                port: u16::try_from(r.port).unwrap_or(u16::MAX),
            })
            .collect();
        self
    }

    fn sa_rows(&self) -> Vec<SaCountersView> {
        let Some(reader) = &self.tables else { return Vec::new() };
        let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
        let table = reader.load();
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for action in table.spd().actions() {
            let PolicyAction::Protect(sa) = action else { continue };
            if !seen.insert(sa.id()) {
                continue;
            }
            let c = self.stats.sa(sa.id());
            let config = sa.sa.config();
            rows.push(SaCountersView {
                connection: sa.name.to_string(),
                direction: "out".into(),
                spi: config.spi.0,
                packets: c.packets,
                bytes: c.bytes,
                drops: c.drops,
                peer: config.dst.to_string(),
                algorithm: sa.sa.aead().algorithm().name().into(),
                worker: self.owners.0.encrypting_worker(self.owners.1, self.owners.2, config.spi, &sa.state),
            });
        }
        for (spi, sa) in table.inbound_iter() {
            let c = self.stats.sa(sa.id());
            // The peer of an inbound SA: the outbound SA of the same connection.
            let peer = rows.iter().find(|o| o.direction == "out" && o.connection == *sa.name).map(|o| o.peer.clone()).unwrap_or_default();
            rows.push(SaCountersView {
                connection: sa.name.to_string(),
                direction: "in".into(),
                spi: spi.0,
                packets: c.packets,
                bytes: c.bytes,
                drops: c.drops,
                peer,
                algorithm: sa.sa.aead().algorithm().name().into(),
                worker: self.owners.0.decrypting_worker(self.owners.2, spi, &sa.state),
            });
        }
        // Done reading: never hold a snapshot between requests.
        reader.offline();
        rows.sort_by(|a, b| (&a.connection, &a.direction, a.spi).cmp(&(&b.connection, &b.direction, b.spi)));
        rows
    }

    fn neighbor_rows(&self) -> Vec<NeighborView> {
        let Some(m) = &self.neighbors else { return Vec::new() };
        let read = m.read(NEIGHBOR_WAIT);
        if read.unanswered > 0 {
            tracing::debug!("show neighbors: {} worker(s) did not answer in {NEIGHBOR_WAIT:?}; their rows are older", read.unanswered);
        }
        let mut rows: Vec<NeighborView> = Vec::new();
        for r in read.rows {
            let port = u16::try_from(r.port).unwrap_or(u16::MAX);
            let ip = r.ip.to_string();
            // Several workers may know one neighbour: keep the freshest.
            if let Some(prev) = rows.iter_mut().find(|p| p.port == port && p.ip == ip) {
                if r.age_ms / 1000 < prev.age_s && r.mac.is_some() {
                    prev.age_s = r.age_ms / 1000;
                }
                continue;
            }
            rows.push(NeighborView {
                ip,
                mac: r.mac.map_or_else(|| "-".to_owned(), |m| mac_text(m.0)),
                port,
                state: r.state.name().into(),
                age_s: r.age_ms / 1000,
            });
        }
        rows
    }
}

impl DataplaneView for DataplaneStats {
    fn snapshot(&self) -> DataplaneSnapshot {
        let s = self.stats.snapshot();
        let mut snap = DataplaneSnapshot {
            ports: s
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let nic = self.nic.as_ref().and_then(|f| f(i)).unwrap_or_default();
                    PortView {
                        port: u16::try_from(i).unwrap_or(u16::MAX),
                        name: self.port_names.get(i).cloned().unwrap_or_default(),
                        rx_packets: p.rx_packets,
                        rx_bytes: p.rx_bytes,
                        tx_packets: p.tx_packets,
                        tx_bytes: p.tx_bytes,
                        drops: p.drops,
                        missed: nic.missed,
                        rx_nombuf: nic.rx_nombuf,
                        rx_errors: nic.rx_errors,
                        tx_errors: nic.tx_errors,
                        xstats: nic.xstats,
                    }
                })
                .collect(),
            drops: DropReason::ALL.iter().map(|r| DropView { reason: r.name().to_owned(), packets: s.drop_count(*r) }).collect(),
            sas: self.sa_rows(),
            neighbors: self.neighbor_rows(),
            routes: self.routes.clone(),
        };
        if let Some(f) = &self.extra {
            f(&mut snap);
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::crypto::{Algorithm, Backend};
    use dataplane::sa::Spi;
    use dataplane::spd::IpPrefix;
    use dataplane::worker::{install_static, StaticTunnel, TsSpec, TunnelControl};
    use zeroize::Zeroizing;

    #[test]
    fn counters_reach_the_snapshot() {
        let stats = Arc::new(Stats::new(2, 2, 4));
        let c0 = stats.core(0).expect("core 0");
        let c1 = stats.core(1).expect("core 1");
        c0.rx(1, 3, 300);
        c1.rx(1, 2, 200);
        c1.drop_n(DropReason::Replayed, 7);
        let view = DataplaneStats::new(Arc::clone(&stats), vec!["outside".into(), "inside".into()])
            .with_nic(|i| (i == 0).then(|| NicView { missed: 9, rx_nombuf: 2, xstats: vec![("rx_missed_errors".into(), 9)], ..NicView::default() }));
        let snap = view.snapshot();
        assert_eq!((snap.ports[1].name.as_str(), snap.ports[1].rx_packets, snap.ports[1].rx_bytes), ("inside", 5, 500));
        assert_eq!((snap.ports[0].missed, snap.ports[0].rx_nombuf, snap.ports[1].missed), (9, 2, 0));
        assert_eq!(snap.ports[0].xstats, [("rx_missed_errors".to_owned(), 9)]);
        let replayed = snap.drops.iter().find(|d| d.reason == DropReason::Replayed.name()).expect("row");
        assert_eq!(replayed.packets, 7);
        assert_eq!(snap.drops.len(), DropReason::ALL.len());
    }

    #[test]
    fn sa_rows_come_from_the_published_table_and_the_per_sa_counters() {
        let prefix = |s: &str| {
            let (a, l) = s.split_once('/').expect("prefix");
            IpPrefix::new(a.parse().expect("addr"), l.parse().expect("len")).expect("valid")
        };
        let t = StaticTunnel {
            name: "bench".into(),
            algorithm: Algorithm::ChaCha20Poly1305,
            local: "198.51.100.1".parse().expect("ip"),
            remote: "198.51.100.2".parse().expect("ip"),
            udp: false,
            spi_in: Spi(0x1001),
            spi_out: Spi(0x2002),
            key_in: Zeroizing::new(vec![1; 36]),
            key_out: Zeroizing::new(vec![2; 36]),
            local_ts: vec![TsSpec::prefix(prefix("10.1.0.0/24"))],
            remote_ts: vec![TsSpec::prefix(prefix("10.2.0.0/24"))],
            esn: false,
            replay_window: 64,
        };
        let mut ctl = TunnelControl::new(16);
        let installed = install_static(&mut ctl, &[t], Backend::Auto).expect("install");
        let stats = Arc::new(Stats::new(2, 2, 16));
        stats.core(0).expect("core").sa_packets(installed[0].outbound, 3, 300);
        stats.core(1).expect("core").sa_packets(installed[0].outbound, 2, 200);
        stats.core(1).expect("core").sa_drops(installed[0].inbound, 4);
        let view = DataplaneStats::new(Arc::clone(&stats), vec![]).with_tables(&ctl.readers()).with_routes([Route {
            dst: "10.2.0.0".parse().expect("ip"),
            len: 24,
            via: Some("198.51.100.2".parse().expect("ip")),
            port: 0,
        }]);
        let snap = view.snapshot();
        let row = |d: &str| snap.sas.iter().find(|s| s.direction == d).cloned().expect("row");
        let (i, o) = (row("in"), row("out"));
        assert_eq!((i.spi, i.drops, i.peer.as_str(), i.algorithm.as_str()), (0x1001, 4, "198.51.100.2", "chacha20poly1305"));
        assert_eq!((o.spi, o.packets, o.bytes, o.peer.as_str()), (0x2002, 5, 500, "198.51.100.2"));
        assert_eq!(snap.routes, [RouteView { prefix: "10.2.0.0/24".into(), via: "198.51.100.2".into(), port: 0 }]);
        // The decrypting worker shows once one has claimed the inbound SA, or by
        // its SPI under `sa_owner = "spi"` (0x1001 mod 2; one worker: none).
        assert_eq!((i.worker, o.worker), (None, None));
        let worker = |v: DataplaneStats, dir: &str| v.snapshot().sas.iter().find(|s| s.direction == dir).and_then(|s| s.worker);
        let by_spi = |w, e| DataplaneStats::new(Arc::clone(&stats), vec![]).with_tables(&ctl.readers()).with_owners(OwnerRule::Spi, e, w);
        assert_eq!(
            (worker(by_spi(2, Encrypt::Owner), "in"), worker(by_spi(3, Encrypt::Owner), "in"), worker(by_spi(1, Encrypt::Owner), "in")),
            (Some(1), Some(0x1001 % 3), None)
        );
        // The encrypting worker of the outbound SA by the same rule (0x2002 mod 3),
        // none when any worker encrypts.
        assert_eq!((worker(by_spi(3, Encrypt::Owner), "out"), worker(by_spi(3, Encrypt::AnyWorker), "out")), (Some(0x2002 % 3), None));
        let mut worker1 = ctl.readers().reader();
        for (_, sa) in worker1.load().inbound_iter() {
            assert_eq!(sa.state.claim(1), 1);
        }
        worker1.offline();
        assert_eq!(view.snapshot().sas.iter().find(|s| s.direction == "in").and_then(|s| s.worker), Some(1));
        // Our reader went offline: a publish can be reclaimed at once.
        ctl.transaction().commit().expect("publish");
        ctl.reclaim();
        assert_eq!(ctl.stats().publisher.pending, 0, "the view's reader held no snapshot");
    }
}
