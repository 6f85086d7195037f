//! Turns a negotiation [`Failure`] into what an operator reads when a tunnel
//! is down (issue 7 item 1): a stable reason code (for `show connections`,
//! metrics and tests), the field that did not match, and one sentence.
//!
//! - As responder we know why we refused: the sentence names the field and
//!   both values (received vs configured, and the closest proposal).
//! - As initiator we only see the peer's notify (RFC 7296 §3.10.1): the
//!   sentence says what we sent (from the connection's config: our ID, the ID
//!   we asked for, proposals, selectors), what the refusal means, and the
//!   likely causes, most likely first.

use std::fmt;

use crate::ikev2::wire::NotifyType;
use crate::ikev2::{ConnectionConfig, Failure, FailureKind, Role, Sent};
use crate::proposal::{Difference, Proposal, SelectError, TransformType};
use crate::selector::TrafficSelector;

/// Why a negotiation failed, as one stable word (`show --json`, metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// AUTH did not verify with matching IDs: the pre-shared keys differ.
    Psk,
    /// An identity did not match (IDi, requested IDr, or presented IDr).
    PeerId,
    /// The initiator got AUTHENTICATION_FAILED: PSK or identity, the peer
    /// does not say which.
    AuthFailed,
    /// No IKE proposal in common (other than only the key exchange group).
    IkeProposal,
    /// The only difference is the key exchange (DH) group.
    DhGroup,
    /// No ESP proposal in common (the IKE SA stays up).
    EspProposal,
    TrafficSelectors,
    /// The peer speaks IKEv1.
    IkeVersion,
    NoResponse,
    /// No connection is configured for the peer's address.
    NoConnection,
    /// A message could not be parsed (by us, or by the peer: INVALID_SYNTAX).
    Malformed,
    /// The peer chose something we did not offer.
    PeerBug,
    /// Another error notify from the peer.
    Refused,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Psk => "psk",
            Reason::PeerId => "peer_id",
            Reason::AuthFailed => "auth_failed",
            Reason::IkeProposal => "ike_proposal",
            Reason::DhGroup => "dh_group",
            Reason::EspProposal => "esp_proposal",
            Reason::TrafficSelectors => "traffic_selectors",
            Reason::IkeVersion => "ike_version",
            Reason::NoResponse => "no_response",
            Reason::NoConnection => "no_connection",
            Reason::Malformed => "malformed",
            Reason::PeerBug => "peer_bug",
            Reason::Refused => "refused",
        }
    }

    /// Every reason, for metrics that list zero counts too.
    pub const ALL: [Reason; 13] = [
        Reason::Psk,
        Reason::PeerId,
        Reason::AuthFailed,
        Reason::IkeProposal,
        Reason::DhGroup,
        Reason::EspProposal,
        Reason::TrafficSelectors,
        Reason::IkeVersion,
        Reason::NoResponse,
        Reason::NoConnection,
        Reason::Malformed,
        Reason::PeerBug,
        Reason::Refused,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub connection: Option<String>,
    pub role: Role,
    pub reason: Reason,
    /// The field that did not match (`ENCR`, `KE`, `IDi`, `TSr`, `PSK`...), or
    /// `-` when it is not one field.
    pub field: String,
    /// One line: what happened with both values or what we sent.
    pub sentence: String,
    /// Likely causes, most likely first (initiator side mostly).
    pub causes: Vec<String>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        };
        write!(
            f,
            "connection '{}' ({role}) reason={} field={}: {}",
            self.connection.as_deref().unwrap_or("-"),
            self.reason,
            self.field,
            self.sentence
        )?;
        if !self.causes.is_empty() {
            f.write_str(" — likely causes: ")?;
            for (i, c) in self.causes.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "({}) {c}", i + 1)?;
            }
        }
        Ok(())
    }
}

fn join<T: fmt::Display>(items: &[T], sep: &str) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(sep)
}

fn proposals(p: &[Proposal]) -> String {
    format!("[{}]", join(p, ", "))
}

fn selectors(ts: &[TrafficSelector]) -> String {
    join(ts, ",")
}

/// The short name of a transform type, as in RFC 7296 §3.3.2.
fn type_field(ty: TransformType) -> String {
    match ty {
        TransformType::Encr => "ENCR".into(),
        TransformType::Prf => "PRF".into(),
        TransformType::Integ => "INTEG".into(),
        TransformType::Ke => "KE".into(),
        TransformType::Esn => "ESN".into(),
        other => format!("{other:?}"),
    }
}

/// Explains a failure; `conn` is the connection's configuration when the
/// failure names one (it gives what we sent or what we accept in full).
pub fn diagnose(failure: &Failure, conn: Option<&ConnectionConfig>) -> Diagnosis {
    let (reason, field, sentence, causes) = explain(failure, conn);
    Diagnosis { connection: failure.connection.clone(), role: failure.role, reason, field, sentence, causes }
}

type Explained = (Reason, String, String, Vec<String>);

fn explain(failure: &Failure, conn: Option<&ConnectionConfig>) -> Explained {
    let remote = failure.remote;
    match &failure.kind {
        FailureKind::IkeProposalMismatch(e) => proposal_mismatch("IKE", e, conn.map(|c| c.ike_proposals.as_slice()), remote),
        FailureKind::ChildProposalMismatch(e) => {
            let (_, field, sentence, causes) = proposal_mismatch("ESP", e, conn.map(|c| c.esp_proposals.as_slice()), remote);
            (Reason::EspProposal, field, format!("{sentence} (the IKE SA stays up)"), causes)
        }
        FailureKind::PeerIdMismatch { received, expected } => (
            Reason::PeerId,
            "IDi".into(),
            format!("peer {} identified as IDi={received}, we expect remote_id={}", remote.ip(), join(expected, " or ")),
            vec![format!("set remote_id = \"{received}\" here, or local_id = \"{}\" on the peer", expected.first().map(ToString::to_string).unwrap_or_default())],
        ),
        FailureKind::RequestedIdMismatch { requested, ours } => (
            Reason::PeerId,
            "IDr".into(),
            format!("peer {} asked for our identity IDr={requested}, our local_id is {ours}", remote.ip()),
            vec![format!("set remote_id = \"{ours}\" on the peer, or local_id = \"{requested}\" here")],
        ),
        FailureKind::ResponderIdMismatch { received, expected } => (
            Reason::PeerId,
            "IDr".into(),
            format!("responder {} identified as IDr={received}, we expect remote_id={expected}", remote.ip()),
            vec![format!("set remote_id = \"{received}\" here, or local_id = \"{expected}\" on the peer")],
        ),
        FailureKind::PeerAuthMismatch { peer_id } => (
            Reason::Psk,
            "PSK".into(),
            format!("AUTH from {peer_id} ({}) did not verify although the identities match: the pre-shared keys differ", remote.ip()),
            vec![format!("set the same PSK here and on the peer for {peer_id}")],
        ),
        FailureKind::ResponderAuthMismatch { peer_id } => (
            Reason::Psk,
            "PSK".into(),
            format!("the responder {peer_id} ({}) accepted our AUTH but its own AUTH did not verify: the pre-shared keys differ", remote.ip()),
            vec!["set the same PSK on both sides".into()],
        ),
        FailureKind::TsUnacceptable { offered_i, offered_r, allowed_remote, allowed_local } => (
            Reason::TrafficSelectors,
            "TS".into(),
            format!(
                "peer {} offered TSi={} TSr={}, we allow remote_ts={} local_ts={} (no overlap)",
                remote.ip(),
                selectors(offered_i),
                selectors(offered_r),
                selectors(allowed_remote),
                selectors(allowed_local)
            ),
            vec!["the peer's local selectors must overlap our remote_ts and its remote selectors our local_ts".into()],
        ),
        FailureKind::NoConnection => (
            Reason::NoConnection,
            "address".into(),
            format!("IKE_SA_INIT from {remote} to {}: no connection has this address pair", failure.local),
            vec![format!("add a [[connection]] with remote_addr = \"{}\" and local_addr = \"{}\"", remote.ip(), failure.local.ip())],
        ),
        FailureKind::Ikev1Peer => (
            Reason::IkeVersion,
            "version".into(),
            format!("peer {} sent IKEv1 (ISAKMP major version 1), this gateway speaks IKEv2 only (RFC 7296)", remote.ip()),
            vec!["configure the peer for IKEv2 (strongSwan: version = 2, Cisco: crypto ikev2)".into()],
        ),
        FailureKind::Malformed { error, answered } => (
            Reason::Malformed,
            "-".into(),
            match answered {
                Some(n) => format!("could not parse a message from {remote} ({error}); answered {n}"),
                None => format!("could not parse a message from {remote} ({error}); dropped"),
            },
            Vec::new(),
        ),
        FailureKind::ResponderChoseUnoffered { what } => (
            Reason::PeerBug,
            (*what).to_owned(),
            format!("the responder {} chose a {what} we did not offer (a protocol violation, RFC 7296 §2.7)", remote.ip()),
            Vec::new(),
        ),
        FailureKind::KeGroupNotConfigured { requested, configured } => (
            Reason::DhGroup,
            "KE".into(),
            format!(
                "the responder {} answered INVALID_KE_PAYLOAD asking for {requested:?}, we accept only {configured:?}",
                remote.ip()
            ),
            vec![format!("add {requested:?} to ike_proposals here, or one of {configured:?} to the peer's IKE proposals")],
        ),
        FailureKind::NoResponse { retransmits } => (
            Reason::NoResponse,
            "-".into(),
            format!("no answer from {} (UDP port {}) after {retransmits} retransmits", remote.ip(), remote.port()),
            vec![
                format!("the peer is down or has no IKE daemon listening on {remote}"),
                "a firewall drops UDP 500/4500 in either direction".into(),
                "remote_addr is wrong, or the peer silently ignores us (e.g. it only accepts other source addresses)".into(),
            ],
        ),
        FailureKind::PeerRefused { notify, sent } => refused(*notify, sent, conn, remote),
    }
}

fn proposal_mismatch(proto: &str, e: &SelectError, configured: Option<&[Proposal]>, remote: std::net::SocketAddr) -> Explained {
    let configured_list = configured.map(proposals).unwrap_or_else(|| "?".into());
    let m = match e {
        SelectError::Mismatch(m) => m,
        SelectError::NothingOffered => {
            return (Reason::Malformed, "SA".into(), format!("peer {} offered no {proto} proposal", remote.ip()), Vec::new());
        }
        SelectError::NothingConfigured => {
            return (
                if proto == "IKE" { Reason::IkeProposal } else { Reason::EspProposal },
                "SA".into(),
                format!("no {proto} proposal is configured here (configured {configured_list})"),
                vec![format!("add {}_proposals to the connection", proto.to_lowercase())],
            );
        }
    };
    let types: Vec<TransformType> = m.mismatched_types().collect();
    let only_ke = types == [TransformType::Ke] && m.differences.len() == 1;
    let reason = match (proto, only_ke) {
        ("IKE", true) => Reason::DhGroup,
        ("IKE", false) => Reason::IkeProposal,
        _ => Reason::EspProposal,
    };
    let field = if types.is_empty() { "protocol".to_owned() } else { types.iter().map(|t| type_field(*t)).collect::<Vec<_>>().join("+") };
    let diffs: Vec<String> = m
        .differences
        .iter()
        .map(|d| match d {
            Difference::Transform { ty, offered, configured } => {
                format!("{} received {} vs configured {}", type_field(*ty), join(offered, "/"), join(configured, "/"))
            }
            other => other.to_string(),
        })
        .collect();
    let sentence = format!(
        "no {proto} proposal in common with {}: {}; closest received '{}' vs configured '{}'; configured {configured_list}",
        remote.ip(),
        diffs.join("; "),
        m.offered,
        m.configured
    );
    let what = if only_ke { "key exchange (DH) group" } else { "algorithms" };
    let causes = vec![format!("make the {what} of one {proto} proposal match on both sides ({}_proposals)", proto.to_lowercase())];
    (reason, field, sentence, causes)
}

/// The initiator's view: what the notify means, what we sent, likely causes.
fn refused(notify: NotifyType, sent: &Sent, conn: Option<&ConnectionConfig>, remote: std::net::SocketAddr) -> Explained {
    let peer = remote.ip();
    let ours_ids = conn.map(|c| (c.local_id.to_string(), c.remote_id.to_string()));
    match notify {
        NotifyType::NO_PROPOSAL_CHOSEN => match sent {
            Sent::ChildProposals(p) => (
                Reason::EspProposal,
                "ESP SA".into(),
                format!("peer {peer} answered NO_PROPOSAL_CHOSEN to our ESP proposals {} (the IKE SA is up)", proposals(p)),
                vec![
                    "the peer's ESP proposals share no encryption/ESN with ours".into(),
                    "a PFS (key exchange) group in our ESP proposals that the peer does not accept".into(),
                ],
            ),
            _ => {
                let sent_p = match sent {
                    Sent::IkeProposals(p) => proposals(p),
                    _ => conn.map(|c| proposals(&c.ike_proposals)).unwrap_or_else(|| "?".into()),
                };
                (
                    Reason::IkeProposal,
                    "IKE SA".into(),
                    format!("peer {peer} answered NO_PROPOSAL_CHOSEN to our IKE proposals {sent_p}"),
                    vec![
                        "the peer's IKE proposals differ in encryption, PRF or key exchange (DH) group — its log names the transform".into(),
                        "the peer is configured for IKEv1 only (strongSwan: version = 1) and refuses any IKEv2 request".into(),
                        "the peer has no connection for our address".into(),
                    ],
                )
            }
        },
        NotifyType::AUTHENTICATION_FAILED => {
            let (local_id, remote_id) = match (sent, &ours_ids) {
                (Sent::Identities { local_id, remote_id }, _) => (local_id.to_string(), remote_id.to_string()),
                (_, Some((l, r))) => (l.clone(), r.clone()),
                _ => ("?".into(), "?".into()),
            };
            (
                Reason::AuthFailed,
                "PSK/ID".into(),
                format!("peer {peer} answered AUTHENTICATION_FAILED: PSK or identity — check both; ours were IDi={local_id}, asked IDr={remote_id}"),
                vec![
                    "the pre-shared keys differ".into(),
                    format!("the peer does not expect our identity {local_id} (its remote_id)"),
                    format!("the peer's own identity is not {remote_id} (its local_id)"),
                ],
            )
        }
        NotifyType::TS_UNACCEPTABLE => {
            let (l, r) = match (sent, conn) {
                (Sent::Selectors { local_ts, remote_ts }, _) => (selectors(local_ts), selectors(remote_ts)),
                (_, Some(c)) => (selectors(&c.local_ts), selectors(&c.remote_ts)),
                _ => ("?".into(), "?".into()),
            };
            (
                Reason::TrafficSelectors,
                "TS".into(),
                format!("peer {peer} answered TS_UNACCEPTABLE to our selectors TSi={l} TSr={r} (the IKE SA is up)"),
                vec![
                    format!("the peer's remote selectors do not overlap {l} or its local selectors do not overlap {r}"),
                    "the peer cannot install the SA (strongSwan with kernel-libipsec needs an address inside its local selector)".into(),
                ],
            )
        }
        NotifyType::INVALID_KE_PAYLOAD => (
            Reason::DhGroup,
            "KE".into(),
            format!("peer {peer} answered INVALID_KE_PAYLOAD: it wants another key exchange group than the ones we offered"),
            vec!["add the peer's DH group to ike_proposals here".into()],
        ),
        NotifyType::INVALID_SYNTAX => (
            Reason::Malformed,
            "-".into(),
            format!("peer {peer} answered INVALID_SYNTAX: it could not parse our message"),
            vec!["an implementation incompatibility (report it with a capture)".into(), "corruption on the path (MTU, fragments of UDP 500/4500 dropped)".into()],
        ),
        other => (Reason::Refused, "-".into(), format!("peer {peer} answered {other}: see the peer's log"), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_distinct() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
