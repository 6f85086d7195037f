//! What the socket serves, as plain serializable rows: built from the manager's
//! [`Status`] and the dataplane's counters, shared by `show` and the metrics page.

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::ikev2::{IkeSaInfo, Role};
use crate::manager::{LastFailure, Status};

/// The dataplane parts `ipsecgw run` adds (counters, neighbours, routes).
pub trait DataplaneView: Send + Sync {
    fn snapshot(&self) -> DataplaneSnapshot;

    /// The tunnel monitors (issue 7 item 3), shown with their connections.
    fn monitors(&self) -> Vec<super::MonitorView> {
        Vec::new()
    }

    /// `count` probes through a connection's tunnel (`ipsecgw test tunnel`).
    fn test_tunnel(&self, name: &str, _count: u32) -> Result<super::TunnelTestView, String> {
        Err(format!("cannot test '{name}': this gateway runs no tunnel monitor"))
    }
}

/// Dataplane counters and tables at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneSnapshot {
    pub ports: Vec<PortView>,
    /// Every drop reason (zeros included), in counter order.
    pub drops: Vec<DropView>,
    pub sas: Vec<SaCountersView>,
    pub neighbors: Vec<NeighborView>,
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub port: u16,
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Dropped by us after receive.
    pub drops: u64,
    /// Missed by the NIC (no rx descriptor), from the port's own counters.
    pub missed: u64,
    /// Rx mbuf allocation failures (DPDK `rx_nombuf`).
    #[serde(default)]
    pub rx_nombuf: u64,
    /// Erroneous packets received / failed transmissions, by the NIC.
    #[serde(default)]
    pub rx_errors: u64,
    #[serde(default)]
    pub tx_errors: u64,
    /// The driver's loss-related extended counters (non-zero ones).
    #[serde(default)]
    pub xstats: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropView {
    pub reason: String,
    pub packets: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaCountersView {
    pub connection: String,
    /// "in" or "out".
    pub direction: String,
    pub spi: u32,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
    /// The peer's outer address ("" when the table does not say: an inbound
    /// SA without an outbound one of the same connection).
    #[serde(default)]
    pub peer: String,
    #[serde(default)]
    pub algorithm: String,
    /// The worker that decrypts an inbound SA with several workers: SPI mod
    /// workers (`[dpdk].sa_owner = "spi"`), or the worker that claimed it with
    /// a packet that authenticated (`"first-receiver"`); for an outbound SA the
    /// worker that encrypts for it, by the same rule (`[dpdk].encrypt =
    /// "owner"`; its first sender claims it). `None` with one worker, before the
    /// claim, and for outbound SAs under `encrypt = "any-worker"`.
    #[serde(default)]
    pub worker: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborView {
    pub ip: String,
    pub mac: String,
    pub port: u16,
    pub state: String,
    /// Seconds since it was learned or last asked for.
    #[serde(default)]
    pub age_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    pub prefix: String,
    pub via: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub reason: String,
    /// The engine's failure line.
    pub message: String,
    /// The operator line (field, both values, ranked causes).
    pub diagnosis: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub name: String,
    /// "up" (an established IKE SA with an active Child SA), "ike-only",
    /// "connecting", or "down".
    pub state: String,
    pub ike_sas: usize,
    pub child_sas: usize,
    pub last_failure: Option<FailureView>,
    /// Its tunnel monitor, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<super::MonitorView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaView {
    /// Our IKE SPI, hex.
    pub id: String,
    pub connection: String,
    pub role: String,
    pub established: bool,
    pub local: String,
    pub remote: String,
    pub child_sas: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaView {
    pub connection: String,
    pub ike_sa: String,
    pub child: u64,
    pub spi_in: String,
    pub spi_out: String,
    pub active: bool,
    /// The peer's outer address.
    #[serde(default)]
    pub peer: String,
    #[serde(default)]
    pub algorithm: String,
    /// Per-SA counters summed over the workers (`ipsecgw run`; zero in `ipsecgw ike`).
    #[serde(default)]
    pub in_packets: u64,
    #[serde(default)]
    pub in_bytes: u64,
    #[serde(default)]
    pub in_drops: u64,
    #[serde(default)]
    pub out_packets: u64,
    #[serde(default)]
    pub out_bytes: u64,
    #[serde(default)]
    pub out_drops: u64,
    /// The worker that decrypts the inbound SA ([`SaCountersView::worker`]).
    #[serde(default)]
    pub in_worker: Option<u32>,
    /// The worker that encrypts for the outbound SA ([`SaCountersView::worker`]).
    #[serde(default)]
    pub out_worker: Option<u32>,
    /// Seconds since installed, until the rekey (soft lifetime) and until the
    /// hard expiry; `None` for static SAs (no lifetime).
    #[serde(default)]
    pub age_s: Option<u64>,
    #[serde(default)]
    pub rekey_in_s: Option<u64>,
    #[serde(default)]
    pub expires_in_s: Option<u64>,
}

/// Engine counters, failures by reason, and the dataplane ports when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    pub ike: Vec<(String, u64)>,
    pub failures_by_reason: Vec<(String, u64)>,
    pub ports: Option<Vec<PortView>>,
    /// ESP on unknown SPIs per (peer, SPI), most packets first (issue 7 item 4).
    #[serde(default)]
    pub unknown_spis: Vec<UnknownSpiView>,
}

/// ESP the dataplane received on an SPI it has no SA for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownSpiView {
    pub peer: String,
    /// `0x%08x`, as the SA rows show SPIs.
    pub spi: String,
    pub packets: u64,
    /// Seconds since the Unix epoch.
    pub last_seen: u64,
    /// INVALID_SPI notifies sent to the peer for it (RFC 7296 §3.10.1).
    pub notifies: u64,
}

pub(crate) fn unknown_spis(s: &Status) -> Vec<UnknownSpiView> {
    s.unknown_spis
        .iter()
        .map(|c| UnknownSpiView {
            peer: c.peer.to_string(),
            spi: format!("0x{:08x}", c.spi),
            packets: c.packets,
            last_seen: c.last_seen.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            notifies: c.notifies,
        })
        .collect()
}

pub(crate) fn failure_view(f: &LastFailure) -> FailureView {
    FailureView {
        at: f.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        reason: f.reason.to_string(),
        message: f.message.clone(),
        diagnosis: f.diagnosis.clone(),
        count: f.count,
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}

/// The connections, and a row named `-` for failures no connection could be
/// named for (an IKEv1 peer, an unknown address).
pub(crate) fn connections(s: &Status) -> Vec<ConnectionView> {
    let unmatched = s.unmatched_failure.as_ref().map(|f| ConnectionView {
        name: "-".into(),
        state: "-".into(),
        ike_sas: 0,
        child_sas: 0,
        last_failure: Some(failure_view(f)),
        monitor: None,
    });
    s.connections
        .iter()
        .map(|c| {
            let established = c.ike_sas.iter().filter(|sa| sa.established).count();
            let children: usize = c.ike_sas.iter().map(|sa| sa.children.iter().filter(|ch| ch.active).count()).sum();
            let state = match (established, children, c.ike_sas.len()) {
                (e, ch, _) if e > 0 && ch > 0 => "up",
                (e, _, _) if e > 0 => "ike-only",
                (_, _, n) if n > 0 => "connecting",
                _ => "down",
            };
            ConnectionView {
                name: c.name.clone(),
                state: state.into(),
                ike_sas: c.ike_sas.len(),
                child_sas: children,
                last_failure: c.last_failure.as_ref().map(failure_view),
                monitor: None,
            }
        })
        .chain(unmatched)
        .collect()
}

pub(crate) fn ike_sas(sas: &[IkeSaInfo]) -> Vec<IkeSaView> {
    sas.iter()
        .map(|s| IkeSaView {
            id: format!("{:016x}", s.id.0),
            connection: s.connection.clone(),
            role: role(s.role).into(),
            established: s.established,
            local: s.local.to_string(),
            remote: s.remote.to_string(),
            child_sas: s.children.iter().filter(|c| c.active).count(),
        })
        .collect()
}

pub(crate) fn child_sas(sas: &[IkeSaInfo]) -> Vec<ChildSaView> {
    let now = std::time::Instant::now();
    let secs = |d: std::time::Duration| d.as_secs();
    sas.iter()
        .flat_map(|s| {
            s.children.iter().map(move |c| ChildSaView {
                connection: s.connection.clone(),
                ike_sa: format!("{:016x}", s.id.0),
                child: c.id.0,
                spi_in: c.inbound_spi.to_string(),
                spi_out: c.outbound_spi.to_string(),
                active: c.active,
                peer: s.remote.ip().to_string(),
                algorithm: c.encr.to_string(),
                age_s: Some(secs(now.saturating_duration_since(c.installed_at))),
                rekey_in_s: Some(secs(c.rekey_at.saturating_duration_since(now))),
                expires_in_s: Some(secs(c.expire_at.saturating_duration_since(now))),
                ..ChildSaView::default()
            })
        })
        .collect()
}

/// The engine's counters by name (IKE drops and answers).
pub fn ike_counters(s: &Status) -> Vec<(String, u64)> {
    let st = s.stats;
    [
        ("malformed", st.malformed),
        ("unknown_spi", st.unknown_spi),
        ("bad_message_id", st.bad_message_id),
        ("unexpected_response", st.unexpected_response),
        ("integrity_failed", st.integrity_failed),
        ("no_connection", st.no_connection),
        ("wrong_state", st.wrong_state),
        ("retransmits_sent", st.retransmits_sent),
        ("responses_replayed", st.responses_replayed),
        ("ikev1_answered", st.ikev1_answered),
        ("unsupported_critical", st.unsupported_critical),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub(crate) fn failures_by_reason(s: &Status) -> Vec<(String, u64)> {
    crate::diagnosis::Reason::ALL
        .iter()
        .map(|r| (r.to_string(), s.failures_by_reason.get(r).copied().unwrap_or(0)))
        .collect()
}
