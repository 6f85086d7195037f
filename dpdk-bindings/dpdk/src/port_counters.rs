//! Reading a started port's counters from another thread (the control
//! socket, the metrics page) while the workers own its queues: a
//! [`PortCounterReader`] is only the port id, `Send + Sync + Copy`.
//! `rte_eth_stats_get` and `rte_eth_xstats_get` read the driver's counters
//! without touching the queues (DPDK's own telemetry thread does the same).

use crate::port::{port_stats, port_xstats, Port};
use crate::Result;

/// What the NIC (or vdev) counted that the gateway's own counters cannot see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Dropped by the device: no rx descriptor free (`imissed`).
    pub rx_missed: u64,
    /// Rx mbuf allocation failures (`rx_nombuf`).
    pub rx_nombuf: u64,
    /// Erroneous received packets (`ierrors`).
    pub rx_errors: u64,
    /// Failed transmissions (`oerrors`).
    pub tx_errors: u64,
    /// The driver's extended counters about lost packets (names containing
    /// "miss", "drop", "discard", "nombuf", "no_buf", "out_of_buffer",
    /// "alloc" or "error"), non-zero ones only.
    pub xstats: Vec<(String, u64)>,
}

/// Whether an xstat name says packets were lost (the rest are traffic
/// counters the gateway counts itself).
fn is_loss(name: &str) -> bool {
    const WORDS: [&str; 8] = ["miss", "drop", "discard", "nombuf", "no_buf", "out_of_buffer", "alloc", "error"];
    let n = name.to_ascii_lowercase();
    WORDS.iter().any(|w| n.contains(w))
}

/// A port's counters, readable from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCounterReader {
    id: u16,
}

impl Port {
    /// A reader of this port's counters for another thread.
    pub fn counter_reader(&self) -> PortCounterReader {
        PortCounterReader { id: self.id() }
    }
}

impl PortCounterReader {
    /// The DPDK port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Missed, nombuf, errors, and the loss-related xstats (non-zero).
    pub fn read(&self) -> Result<NicCounters> {
        let s = port_stats(self.id)?;
        // A driver without xstats still has the basic counters.
        let xstats = port_xstats(self.id).unwrap_or_default().into_iter().filter(|(n, v)| *v > 0 && is_loss(n)).collect();
        Ok(NicCounters { rx_missed: s.rx_missed, rx_nombuf: s.rx_nombuf, rx_errors: s.rx_errors, tx_errors: s.tx_errors, xstats })
    }
}

#[cfg(test)]
mod tests {
    use super::is_loss;

    #[test]
    fn loss_counters_are_selected_by_name() {
        // Names as DPDK 22.11 ethdev and common PMDs spell them.
        for n in ["rx_missed_errors", "rx_mbuf_allocation_errors", "rx_q0_errors", "rx_discards_phy", "rx_out_of_buffer", "tx_dropped"] {
            assert!(is_loss(n), "{n}");
        }
        for n in ["rx_good_packets", "tx_good_bytes", "rx_q0_packets"] {
            assert!(!is_loss(n), "{n}");
        }
    }
}
