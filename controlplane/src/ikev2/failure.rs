//! Negotiation failures, typed, with both sides' values where known, and a
//! one-line explanation that says what to check on which side (issue 7 item 1).

use std::fmt;
use std::net::SocketAddr;

use super::action::Role;
use super::wire::{ExchangeType, NotifyType, WireError};
use crate::identity::Identity;
use crate::proposal::{DhGroup, Proposal, SelectError};
use crate::selector::TrafficSelector;

/// A failed negotiation as seen by one side.
#[derive(Debug, Clone)]
pub struct Failure {
    pub connection: Option<String>,
    pub role: Role,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub exchange: ExchangeType,
    pub kind: FailureKind,
}

/// What we sent, for turning a peer's refusal into a useful message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    IkeProposals(Vec<Proposal>),
    ChildProposals(Vec<Proposal>),
    Identities { local_id: Identity, remote_id: Identity },
    Selectors { local_ts: Vec<TrafficSelector>, remote_ts: Vec<TrafficSelector> },
    Nothing,
}

#[derive(Debug, Clone)]
pub enum FailureKind {
    // --- we are the responder and refused ---
    /// No configured IKE proposal matches; names each mismatched transform type.
    IkeProposalMismatch(SelectError),
    /// No configured ESP proposal matches (the IKE SA stays up).
    ChildProposalMismatch(SelectError),
    /// The peer's ID (IDi) is not the one any connection for this address expects.
    PeerIdMismatch { received: Identity, expected: Vec<Identity> },
    /// The peer asked for a responder ID (IDr) that is not ours.
    RequestedIdMismatch { requested: Identity, ours: Identity },
    /// The peer's AUTH did not verify: the PSKs differ (IDs matched).
    PeerAuthMismatch { peer_id: Identity },
    /// No overlap between the selectors offered and allowed.
    TsUnacceptable {
        offered_i: Vec<TrafficSelector>,
        offered_r: Vec<TrafficSelector>,
        allowed_remote: Vec<TrafficSelector>,
        allowed_local: Vec<TrafficSelector>,
    },
    /// IKE_SA_INIT from an address no connection is configured for.
    NoConnection,
    /// The peer speaks IKEv1 (major version 1).
    Ikev1Peer,
    /// A message we could not parse; we answered with the notify if any.
    Malformed { error: WireError, answered: Option<NotifyType> },

    // --- we are the initiator and the peer refused ---
    /// The responder answered with an error notify.
    PeerRefused { notify: NotifyType, sent: Sent },
    /// The responder asked for a group we do not accept (INVALID_KE_PAYLOAD).
    KeGroupNotConfigured { requested: DhGroup, configured: Vec<DhGroup> },
    /// The responder's AUTH did not verify: the PSKs differ.
    ResponderAuthMismatch { peer_id: Identity },
    /// The responder's ID is not the one we expect.
    ResponderIdMismatch { received: Identity, expected: Identity },
    /// The responder chose something we did not offer (a protocol violation).
    ResponderChoseUnoffered { what: &'static str },
    /// The peer did not answer.
    NoResponse { retransmits: u32 },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conn = self.connection.as_deref().unwrap_or("-");
        write!(f, "connection '{conn}' {} failed ({:?} with {}): ", exchange_name(self.exchange), self.role, self.remote)?;
        fmt::Display::fmt(&self.kind, f)
    }
}

fn exchange_name(e: ExchangeType) -> &'static str {
    match e {
        ExchangeType::IkeSaInit => "IKE_SA_INIT",
        ExchangeType::IkeAuth => "IKE_AUTH",
        ExchangeType::CreateChildSa => "CREATE_CHILD_SA",
        ExchangeType::Informational => "INFORMATIONAL",
        ExchangeType::Unknown(_) => "exchange",
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::IkeProposalMismatch(e) => write!(f, "IKE proposal mismatch: {e}"),
            FailureKind::ChildProposalMismatch(e) => write!(f, "ESP proposal mismatch (IKE SA stays up): {e}"),
            FailureKind::PeerIdMismatch { received, expected } => write!(
                f,
                "peer identity mismatch: peer says IDi={received}, we expect {} — set remote_id to {received} here or local_id to {} on the peer",
                list(expected),
                expected.first().map(ToString::to_string).unwrap_or_default()
            ),
            FailureKind::RequestedIdMismatch { requested, ours } => write!(
                f,
                "peer asked for IDr={requested} but our local_id is {ours} — fix remote_id on the peer or local_id here"
            ),
            FailureKind::PeerAuthMismatch { peer_id } => write!(
                f,
                "AUTH from {peer_id} did not verify: the pre-shared keys differ (IDs matched) — check the PSK on both sides"
            ),
            FailureKind::TsUnacceptable { offered_i, offered_r, allowed_remote, allowed_local } => write!(
                f,
                "traffic selectors unacceptable: peer offered TSi={} TSr={}, we allow remote={} local={}",
                list(offered_i),
                list(offered_r),
                list(allowed_remote),
                list(allowed_local)
            ),
            FailureKind::NoConnection => f.write_str("no connection is configured for this address pair"),
            FailureKind::Ikev1Peer => f.write_str("peer is using IKEv1; this gateway speaks IKEv2 only — set the peer to IKEv2 (strongSwan: version = 2)"),
            FailureKind::Malformed { error, answered } => match answered {
                Some(n) => write!(f, "malformed message ({error}); answered {n}"),
                None => write!(f, "malformed message ({error}); dropped"),
            },
            FailureKind::PeerRefused { notify, sent } => refused(f, *notify, sent),
            FailureKind::KeGroupNotConfigured { requested, configured } => write!(
                f,
                "peer requires key exchange {requested:?} but we only accept {configured:?} — add it to ike_proposals here or change the peer's"
            ),
            FailureKind::ResponderAuthMismatch { peer_id } => write!(
                f,
                "responder {peer_id}'s AUTH did not verify: the pre-shared keys differ — check the PSK on both sides"
            ),
            FailureKind::ResponderIdMismatch { received, expected } => write!(
                f,
                "responder identity mismatch: peer says IDr={received}, we expect {expected} — fix remote_id here or local_id on the peer"
            ),
            FailureKind::ResponderChoseUnoffered { what } => write!(f, "responder chose a {what} we did not offer (peer bug)"),
            FailureKind::NoResponse { retransmits } => write!(
                f,
                "no response after {retransmits} retransmits — peer down, wrong address/port, or a firewall dropping UDP 500/4500"
            ),
        }
    }
}

fn refused(f: &mut fmt::Formatter<'_>, n: NotifyType, sent: &Sent) -> fmt::Result {
    write!(f, "peer answered {n}: ")?;
    match (n, sent) {
        (NotifyType::NO_PROPOSAL_CHOSEN, Sent::IkeProposals(p)) => write!(
            f,
            "it accepts none of our IKE proposals [{}] — compare its IKE proposals (encryption, PRF, key exchange) with ours",
            list(p)
        ),
        (NotifyType::NO_PROPOSAL_CHOSEN, Sent::ChildProposals(p)) => write!(
            f,
            "it accepts none of our ESP proposals [{}] (IKE SA is up) — compare its ESP proposals and PFS groups with ours",
            list(p)
        ),
        (NotifyType::AUTHENTICATION_FAILED, Sent::Identities { local_id, remote_id }) => write!(
            f,
            "likely causes: (1) pre-shared key differs, (2) the peer does not expect our IDi={local_id}, (3) the peer's local id is not the IDr={remote_id} we asked for — check both sides"
        ),
        (NotifyType::TS_UNACCEPTABLE, Sent::Selectors { local_ts, remote_ts }) => write!(
            f,
            "it accepts none of our selectors TSi={} TSr={} (IKE SA is up) — its remote/local selectors must overlap ours (or it cannot install the SA: strongSwan needs an address inside its local selector)",
            list(local_ts),
            list(remote_ts)
        ),
        (NotifyType::INVALID_SYNTAX, _) => f.write_str("the peer could not parse our message (implementation bug or corruption)"),
        (NotifyType::SINGLE_PAIR_REQUIRED, _) => f.write_str("the peer only accepts one address pair per selector: narrow our selectors to single hosts"),
        (NotifyType::TEMPORARY_FAILURE, _) => f.write_str("the peer is busy (rekeying); will retry"),
        (NotifyType::NO_ADDITIONAL_SAS, _) => f.write_str("the peer refuses more Child SAs on this IKE SA"),
        _ => f.write_str("see the peer's log"),
    }
}
