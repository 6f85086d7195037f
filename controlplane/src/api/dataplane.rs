//! A [`DataplaneView`] over the workers' counters (`dataplane::stats`), for
//! `ipsecgw run`: ports and drop reasons come from the counters; per-SA rows,
//! NIC-missed counts, neighbours and routes are added by a hook the caller
//! gives (it owns the SA table, the ports and the neighbour cache).

use std::sync::Arc;

use dataplane::stats::{DropReason, Stats};

use super::{DataplaneSnapshot, DataplaneView, DropView, PortView};

type Extra = Box<dyn Fn(&mut DataplaneSnapshot) + Send + Sync>;

pub struct DataplaneStats {
    stats: Arc<Stats>,
    port_names: Vec<String>,
    extra: Option<Extra>,
}

impl std::fmt::Debug for DataplaneStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneStats").field("ports", &self.port_names).finish_non_exhaustive()
    }
}

impl DataplaneStats {
    /// `port_names[i]` names DPDK port `i` (from the config's [[port]]).
    pub fn new(stats: Arc<Stats>, port_names: Vec<String>) -> Self {
        Self { stats, port_names, extra: None }
    }

    /// Called on every snapshot to fill SA rows, `missed`, neighbours, routes.
    pub fn with_extra(mut self, f: impl Fn(&mut DataplaneSnapshot) + Send + Sync + 'static) -> Self {
        self.extra = Some(Box::new(f));
        self
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
                .map(|(i, p)| PortView {
                    port: u16::try_from(i).unwrap_or(u16::MAX),
                    name: self.port_names.get(i).cloned().unwrap_or_default(),
                    rx_packets: p.rx_packets,
                    rx_bytes: p.rx_bytes,
                    tx_packets: p.tx_packets,
                    tx_bytes: p.tx_bytes,
                    drops: p.drops,
                    missed: 0,
                })
                .collect(),
            drops: DropReason::ALL.iter().map(|r| DropView { reason: r.name().to_owned(), packets: s.drop_count(*r) }).collect(),
            ..DataplaneSnapshot::default()
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

    #[test]
    fn counters_reach_the_snapshot() {
        let stats = Arc::new(Stats::new(2, 2, 4));
        let c0 = stats.core(0).expect("core 0");
        let c1 = stats.core(1).expect("core 1");
        c0.rx(1, 3, 300);
        c1.rx(1, 2, 200);
        c1.drop_n(DropReason::Replayed, 7);
        let view = DataplaneStats::new(Arc::clone(&stats), vec!["outside".into(), "inside".into()]).with_extra(|s| s.ports[0].missed = 9);
        let snap = view.snapshot();
        assert_eq!((snap.ports[1].name.as_str(), snap.ports[1].rx_packets, snap.ports[1].rx_bytes), ("inside", 5, 500));
        assert_eq!(snap.ports[0].missed, 9);
        let replayed = snap.drops.iter().find(|d| d.reason == DropReason::Replayed.name()).expect("row");
        assert_eq!(replayed.packets, 7);
        assert_eq!(snap.drops.len(), DropReason::ALL.len());
    }
}
