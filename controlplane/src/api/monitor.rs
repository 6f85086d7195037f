//! Tunnel monitoring as the control socket serves it (issue 7 items 2 and 3):
//! the monitor of a connection in `show connections`, and the result of
//! `ipsecgw test tunnel NAME`. The gateway fills them through
//! [`super::DataplaneView`]; `ipsecgw ike` has no dataplane and no monitor.

use serde::{Deserialize, Serialize};

/// Probes `test tunnel` sends when the request does not say.
pub const DEFAULT_TEST_PROBES: u32 = 3;
/// Most probes one `test tunnel` may send (the answer must come within the
/// client's timeout).
pub const MAX_TEST_PROBES: u32 = 10;

/// One connection's tunnel monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorView {
    pub connection: String,
    /// unknown, up, degraded, down, recovering.
    pub state: String,
    /// wait-recover or fail-over.
    pub action: String,
    pub backup: Option<String>,
    /// The connection's outbound policies point at the backup's SA now.
    pub failed_over: bool,
    /// The connection whose SA carries this connection's traffic ("-" when no SA does).
    pub carried_by: String,
    pub source: String,
    pub address: String,
    /// Probes due since start: sent, or counted lost because the connection
    /// had no outbound SA to send them on.
    pub sent: u64,
    pub received: u64,
    pub lost_in_row: u32,
    pub last_rtt_us: Option<u64>,
    /// State changes since start.
    pub changes: u64,
    /// Seconds since the Unix epoch of the last change.
    pub last_change: Option<u64>,
}

/// The answer to `test tunnel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelTestView {
    pub connection: String,
    pub source: String,
    pub address: String,
    /// The outbound SPI the probes were sent on ("-" when there is no SA).
    pub spi_out: String,
    pub sent: u32,
    pub received: u32,
    /// Round-trip time of each answered probe, in microseconds.
    pub rtt_us: Vec<u64>,
    /// The tunnel carried every probe and its reply.
    pub ok: bool,
    /// One line: what worked or what failed (no SA, no reply, some lost...).
    pub verdict: String,
}
