//! The control socket (DESIGN.md, issue 7 item 2): a Unix stream socket,
//! root-only (mode 0600), speaking JSON lines — one [`Request`] per line, one
//! [`Response`] per line. `ipsecgw show|initiate|terminate|rekey` are clients.
//!
//! The server answers from the IKE manager ([`ManagerClient`]) and, in
//! `ipsecgw run`, from the dataplane through [`DataplaneView`]; `ipsecgw ike`
//! has no dataplane and says so.

mod client;
mod dataplane;
mod monitor;
mod sa_rows;
mod server;
mod view;

use serde::{Deserialize, Serialize};

pub use client::{request, ClientError};
pub use dataplane::{DataplaneStats, NicView};
pub use monitor::{MonitorView, TunnelTestView, DEFAULT_TEST_PROBES, MAX_TEST_PROBES};
pub use server::{answer, ApiServer};
pub use view::{
    ChildSaView, ConnectionView, DataplaneSnapshot, DataplaneView, DropView, FailureView, IkeSaView, NeighborView, PortView,
    RouteView, SaCountersView, StatsView, UnknownSpiView,
};
/// The engine's IKE counters by name (for metrics).
pub use view::ike_counters as ike_counters_of;

/// The default socket path (overridable with `--socket`).
pub const DEFAULT_SOCKET: &str = "/run/ipsecgw/ipsecgw.sock";

/// What `show` can list (also the `ipsecgw show WHAT` argument, feature "cli").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ShowWhat {
    Connections,
    IkeSa,
    ChildSa,
    Stats,
    Drops,
    Neighbors,
    Routes,
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Show { what: ShowWhat },
    Initiate { name: String },
    Terminate { name: String },
    /// Rekey the connection's Child SAs, or with `ike` its IKE SA.
    Rekey { name: String, #[serde(default)] ike: bool },
    /// Send `count` probes through the connection's tunnel and report (issue 7 item 2).
    TestTunnel { name: String, #[serde(default)] count: Option<u32> },
}

/// One response line: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn data(v: serde_json::Value) -> Self {
        Self { ok: true, data: Some(v), error: None }
    }
    pub fn error(e: impl ToString) -> Self {
        Self { ok: false, data: None, error: Some(e.to_string()) }
    }
}
