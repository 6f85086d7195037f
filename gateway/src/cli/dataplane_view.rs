//! The control socket's dataplane view in `ipsecgw run` (issue 7 item 2):
//! the workers' counters, the published SA tables, the neighbour copies, the
//! routes and the NICs' own counters (missed, nombuf, errors, loss xstats).

use controlplane::api::{DataplaneStats, NicView};
use dpdk::{Port, PortCounterReader};

use crate::esp::EspGateway;

/// The view over `esp` and `ports` (in plan order, named `names`).
pub fn dataplane_view(esp: &EspGateway, ports: &[Port], names: Vec<String>) -> DataplaneStats {
    let readers: Vec<PortCounterReader> = ports.iter().map(Port::counter_reader).collect();
    let (rule, encrypt, workers) = esp.owners();
    DataplaneStats::new(esp.stats(), names)
        .with_tables(esp.tables())
        .with_owners(rule, encrypt, workers)
        .with_neighbors(esp.neighbor_mirror())
        .with_routes(esp.routes().routes())
        .with_nic(move |i| {
            let c = readers.get(i)?.read().ok()?;
            Some(NicView { missed: c.rx_missed, rx_nombuf: c.rx_nombuf, rx_errors: c.rx_errors, tx_errors: c.tx_errors, xstats: c.xstats })
        })
}
