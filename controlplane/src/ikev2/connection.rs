//! The engine-level description of one connection: everything the engine
//! needs, nothing about files. `controlplane::config` converts into this.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::identity::Identity;
use crate::proposal::Proposal;
use crate::selector::TrafficSelector;

/// strongSwan's default keepalive interval (charon.keep_alive = 20s): well
/// under the UDP mapping timeouts of common NATs (30 s and up).
pub const DEFAULT_NAT_KEEPALIVE: Duration = Duration::from_secs(20);

/// What the engine does with a connection on its own (issue 6 item 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAction {
    /// Only on `Endpoint::initiate` (or as responder).
    None,
    /// Initiate as soon as the connection is added.
    Start,
    /// Initiate when the dataplane reports a packet matching the selectors
    /// (`Endpoint::acquire`).
    Trap,
}

/// What to do when the peer is found dead (RFC 7296 §2.4 liveness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Delete the SAs.
    Clear,
    /// Delete the SAs and initiate again.
    Restart,
    /// Delete the SAs and put the connection's policies back to trap: the
    /// next packet that matches them initiates again (strongSwan's
    /// `dpd_action = trap`, RFC 4301 §5.1 acquire). Emits [`super::Event::Held`].
    Hold,
}

/// Rekey/expiry times of an SA. The SA is rekeyed at `rekey - random(0..jitter)`
/// and deleted at `life` if the rekey did not happen (strongSwan's
/// rekey_time/rand_time/life_time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub rekey: Duration,
    pub jitter: Duration,
    pub life: Duration,
}

/// Retransmission of our requests (RFC 7296 §2.1): `timeout × factor^n`,
/// `tries` retransmits, then the peer is declared unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitPolicy {
    pub timeout: Duration,
    /// Growth per retransmit in percent (180 = ×1.8, strongSwan's default base).
    pub factor_percent: u32,
    pub tries: u32,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        RetransmitPolicy { timeout: Duration::from_secs(2), factor_percent: 180, tries: 5 }
    }
}

impl RetransmitPolicy {
    /// Delay before retransmit number `n` (0 = after the first send).
    pub fn delay(&self, n: u32) -> Duration {
        let mut d = self.timeout;
        for _ in 0..n {
            d = d.saturating_mul(self.factor_percent).checked_div(100).unwrap_or(d);
        }
        d
    }
}

/// One connection as the engine sees it.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub name: String,
    /// Our address and IKE port (normally 500).
    pub local: SocketAddr,
    /// The peer's address, or `None` to answer any peer (responder only).
    pub remote_addr: Option<IpAddr>,
    /// The peer's IKE port (normally 500).
    pub remote_port: u16,
    pub local_id: Identity,
    /// `Identity::Any` accepts whatever the peer presents.
    pub remote_id: Identity,
    pub psk: Zeroizing<Vec<u8>>,
    /// In order of preference; the KE groups of the first proposal give the
    /// initiator's first guess.
    pub ike_proposals: Vec<Proposal>,
    /// ESP proposals; a KE transform here means PFS on CREATE_CHILD_SA (the
    /// first Child SA in IKE_AUTH never has one, RFC 7296 §1.2).
    pub esp_proposals: Vec<Proposal>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub ike_lifetime: Lifetime,
    pub child_lifetime: Lifetime,
    pub start_action: StartAction,
    /// Answers but never initiates (not even a rekey: the peer must rekey).
    pub passive: bool,
    /// Liveness check after this much silence from the peer.
    pub dpd_interval: Option<Duration>,
    pub dpd_action: DpdAction,
    pub retransmit: RetransmitPolicy,
    /// UDP-encapsulate ESP even without a NAT (RFC 3948); moves IKE to 4500 too.
    pub force_encap: bool,
    /// How long an old inbound SA stays after a rekey, for packets in flight.
    pub rekey_grace: Duration,
    /// Send INITIAL_CONTACT in IKE_AUTH (RFC 7296 §2.4).
    pub initial_contact: bool,
    /// When NAT detection found us behind a NAT: a NAT keepalive (RFC 3948
    /// §2.3) to the peer every this long while the IKE SA is established, so
    /// the NAT keeps the UDP 4500 mapping (`None`: never).
    pub nat_keepalive: Option<Duration>,
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("name", &self.name)
            .field("local", &self.local)
            .field("remote_addr", &self.remote_addr)
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("psk", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ConnectionConfig {
    /// A connection with strongSwan-like defaults (IKE rekey 4h, Child 1h,
    /// 10% jitter, lifetimes 110%); addresses, IDs, PSK, proposals and
    /// selectors as given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        local_id: Identity,
        remote_id: Identity,
        psk: &[u8],
        ike_proposals: Vec<Proposal>,
        esp_proposals: Vec<Proposal>,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
    ) -> Self {
        let lt = |secs: u64| Lifetime {
            rekey: Duration::from_secs(secs),
            jitter: Duration::from_secs(secs / 10),
            life: Duration::from_secs(secs + secs / 10),
        };
        ConnectionConfig {
            name: name.to_owned(),
            local,
            remote_addr: remote.map(|r| r.ip()),
            remote_port: remote.map_or(500, |r| r.port()),
            local_id,
            remote_id,
            psk: Zeroizing::new(psk.to_vec()),
            ike_proposals,
            esp_proposals,
            local_ts,
            remote_ts,
            ike_lifetime: lt(4 * 3600),
            child_lifetime: lt(3600),
            start_action: StartAction::None,
            passive: false,
            dpd_interval: None,
            dpd_action: DpdAction::Clear,
            retransmit: RetransmitPolicy::default(),
            force_encap: false,
            rekey_grace: Duration::from_secs(2),
            initial_contact: true,
            nat_keepalive: Some(DEFAULT_NAT_KEEPALIVE),
        }
    }

    /// Whether a datagram between these addresses may belong to this connection.
    pub fn matches_addresses(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        local.ip() == self.local.ip() && self.remote_addr.is_none_or(|a| a == remote.ip())
    }
}
