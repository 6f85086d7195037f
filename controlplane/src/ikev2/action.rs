//! What the engine asks its caller to do: send a datagram, install or remove
//! ESP SAs in the dataplane, and report events.

use std::net::{IpAddr, SocketAddr};

use zeroize::Zeroizing;

use super::failure::Failure;
use super::wire::ExchangeType;
use crate::proposal::{ChosenProposal, DhGroup, Encr};
use crate::selector::TrafficSelector;

/// An IKE SA, named by our own SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// A Child SA (a pair of ESP SAs), numbered by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildSaId(pub u64);

/// An ESP SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

impl std::fmt::Display for Spi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

/// Our role in an exchange or an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// Which half of a Child SA an install/remove is about. Make-before-break
/// (RFC 7296 §2.8) is expressed in the order of these: new inbound first,
/// then the outbound switch, the old SA removed after a grace time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directions {
    Both,
    InboundOnly,
    OutboundOnly,
}

/// UDP encapsulation of ESP (RFC 3948) with the ports of the IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

/// Everything the dataplane needs for one Child SA (tunnel mode).
pub struct ChildSaInstall {
    pub ike_sa: IkeSaId,
    pub child: ChildSaId,
    pub connection: String,
    pub directions: Directions,
    /// Outer tunnel addresses.
    pub local: IpAddr,
    pub remote: IpAddr,
    pub encap: Option<UdpEncap>,
    pub encr: Encr,
    pub esn: bool,
    /// The SPI the peer puts on ESP it sends us (we chose it).
    pub inbound_spi: Spi,
    /// The SPI we put on ESP we send (the peer chose it).
    pub outbound_spi: Spi,
    /// key || salt (RFC 4106 §8.1, RFC 7634 §2).
    pub inbound_key: Zeroizing<Vec<u8>>,
    pub outbound_key: Zeroizing<Vec<u8>>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// The Child SA this one rekeys, if any.
    pub replaces: Option<ChildSaId>,
}

impl std::fmt::Debug for ChildSaInstall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSaInstall")
            .field("ike_sa", &self.ike_sa)
            .field("child", &self.child)
            .field("directions", &self.directions)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("encap", &self.encap)
            .field("encr", &self.encr)
            .field("esn", &self.esn)
            .field("inbound_spi", &self.inbound_spi)
            .field("outbound_spi", &self.outbound_spi)
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("replaces", &self.replaces)
            .finish_non_exhaustive()
    }
}

/// Remove one or both halves of a Child SA from the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaRemove {
    pub ike_sa: IkeSaId,
    pub child: ChildSaId,
    pub directions: Directions,
    pub inbound_spi: Spi,
    pub outbound_spi: Spi,
}

/// Why an SA went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    DeletedByPeer,
    DeletedLocally,
    /// Hard lifetime reached without a rekey.
    Expired,
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// A redundant SA from a simultaneous rekey (RFC 7296 §2.8.1).
    RekeyCollision,
    /// The peer stopped answering (retransmits exhausted or liveness failed).
    PeerUnreachable { to: SocketAddr, retransmits: u32 },
    /// The peer sent INITIAL_CONTACT from a new IKE SA (RFC 7296 §2.4).
    InitialContact,
    /// Negotiation failed (see the Failure event before this one).
    Failed,
}

/// Where the NATs are, from NAT_DETECTION_* (RFC 7296 §2.23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatState {
    pub local_behind_nat: bool,
    /// Also true when the peer fakes a NAT (strongSwan with kernel-libipsec).
    pub remote_behind_nat: bool,
}

/// Something the operator or the manager should know.
#[derive(Debug)]
pub enum Event {
    IkeSaUp {
        ike_sa: IkeSaId,
        connection: String,
        role: Role,
        local: SocketAddr,
        remote: SocketAddr,
        proposal: ChosenProposal,
        nat: NatState,
        rekey_of: Option<IkeSaId>,
    },
    IkeSaDown { ike_sa: IkeSaId, connection: String, reason: DownReason },
    ChildSaUp {
        ike_sa: IkeSaId,
        child: ChildSaId,
        connection: String,
        proposal: ChosenProposal,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        inbound_spi: Spi,
        outbound_spi: Spi,
        encap: bool,
        rekey_of: Option<ChildSaId>,
    },
    ChildSaDown { ike_sa: IkeSaId, child: ChildSaId, connection: String, reason: DownReason },
    /// The responder asked for another group (INVALID_KE_PAYLOAD, RFC 7296
    /// §1.2); we retried with it. Informational: it costs one round trip.
    KeGroupRetry { connection: String, sent: DhGroup, requested: DhGroup },
    /// As responder: the initiator guessed a group we do not take but one we
    /// do is in its proposal; we asked for it (INVALID_KE_PAYLOAD, §1.2).
    KeGroupRequested { connection: String, peer: SocketAddr, offered: DhGroup, requested: DhGroup },
    /// The peer says ESP arrived on an SPI it does not know (INVALID_SPI,
    /// RFC 7296 §3.10.1); `child` is our Child SA sending with that SPI, if any.
    PeerInvalidSpi { ike_sa: IkeSaId, connection: String, spi: Spi, child: Option<ChildSaId> },
    /// The responder asked for a cookie (RFC 7296 §2.6); we retried with it.
    CookieRetry { connection: String },
    /// DPD action hold: the peer is dead and the connection's SAs are removed
    /// (the removals come before this event); its outbound policies must go
    /// back to trap so the next matching packet re-negotiates
    /// ([`super::Endpoint::acquire`]). The manager passes it to its SA sink.
    Held { connection: String },
    /// A negotiation failed; says what, with both sides' values.
    Failure(Box<Failure>),
    /// A datagram was dropped without an answer (counted in `Stats`).
    Dropped { from: SocketAddr, exchange: Option<ExchangeType>, reason: DropReason },
}

/// Why a datagram was dropped; each has a counter in [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    UnknownSpi,
    /// A request older than the last one answered, or too new (RFC 7296 §2.3).
    BadMessageId,
    /// A response nobody is waiting for.
    UnexpectedResponse,
    IntegrityFailed,
    /// IKE_SA_INIT from an address no connection matches.
    NoConnection,
    /// State did not allow this exchange (e.g. CREATE_CHILD_SA before IKE_AUTH).
    WrongState,
}

/// Counters of everything dropped or answered with an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub malformed: u64,
    pub unknown_spi: u64,
    pub bad_message_id: u64,
    pub unexpected_response: u64,
    pub integrity_failed: u64,
    pub no_connection: u64,
    pub wrong_state: u64,
    pub retransmits_sent: u64,
    pub responses_replayed: u64,
    pub ikev1_answered: u64,
    pub unsupported_critical: u64,
}

impl Stats {
    pub(crate) fn count(&mut self, r: DropReason) {
        let c = match r {
            DropReason::Malformed => &mut self.malformed,
            DropReason::UnknownSpi => &mut self.unknown_spi,
            DropReason::BadMessageId => &mut self.bad_message_id,
            DropReason::UnexpectedResponse => &mut self.unexpected_response,
            DropReason::IntegrityFailed => &mut self.integrity_failed,
            DropReason::NoConnection => &mut self.no_connection,
            DropReason::WrongState => &mut self.wrong_state,
        };
        *c += 1;
    }
}

/// One thing for the caller to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send an IKE message. When either port is 4500 the I/O layer prepends
    /// the non-ESP marker (see [`super::nat_t`]).
    Send { from: SocketAddr, to: SocketAddr, bytes: Vec<u8> },
    /// Send a NAT keepalive: the single octet 0xFF on the UDP 4500 pair,
    /// WITHOUT the non-ESP marker (RFC 3948 §2.3, [`super::nat_t::NAT_KEEPALIVE`]).
    /// Only when we are behind a NAT (RFC 7296 §2.23), every
    /// `ConnectionConfig::nat_keepalive`.
    SendNatKeepalive { from: SocketAddr, to: SocketAddr },
    InstallChildSa(Box<ChildSaInstall>),
    RemoveChildSa(ChildSaRemove),
    Event(Event),
}
