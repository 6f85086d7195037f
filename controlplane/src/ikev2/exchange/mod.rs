//! One module per exchange, initiator and responder side together
//! (strongSwan-task style), plus the payload helpers they share.

pub(crate) mod auth;
pub(crate) mod create_child;
pub(crate) mod informational;
pub(crate) mod sa_init;

use super::wire::{NotifyPayload, NotifyType, Payload, ProposalRepr, TsRepr};
use crate::proposal::{DhGroup, Proposal};
use crate::selector::TrafficSelector;

pub(crate) fn notifies(p: &[Payload]) -> impl Iterator<Item = &NotifyPayload> {
    p.iter().filter_map(|p| match p {
        Payload::Notify(n) => Some(n),
        _ => None,
    })
}

pub(crate) fn notify(p: &[Payload], kind: NotifyType) -> Option<&NotifyPayload> {
    notifies(p).find(|n| n.kind == kind)
}

/// The group an INVALID_KE_PAYLOAD notify asks for: its data is the 2-octet
/// DH group number (RFC 7296 §3.10.1); `None` if the peer sent fewer octets.
pub(crate) fn requested_group(n: &NotifyPayload) -> Option<DhGroup> {
    let b: [u8; 2] = n.data.get(..2)?.try_into().ok()?;
    Some(DhGroup::from_code(u16::from_be_bytes(b)))
}

/// The first error notify, if any (RFC 7296 §3.10.1: types below 16384).
pub(crate) fn error_notify(p: &[Payload]) -> Option<&NotifyPayload> {
    notifies(p).find(|n| n.kind.is_error())
}

pub(crate) fn sa_payload(p: &[Payload]) -> Option<&[ProposalRepr]> {
    p.iter().find_map(|p| match p {
        Payload::Sa(s) => Some(s.as_slice()),
        _ => None,
    })
}

pub(crate) fn nonce(p: &[Payload]) -> Option<&[u8]> {
    p.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

pub(crate) fn ke(p: &[Payload]) -> Option<&super::wire::KePayload> {
    p.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

/// TSi and TSr as selectors; `None` if either is missing or holds an
/// inverted range.
pub(crate) fn selectors(p: &[Payload]) -> Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)> {
    let conv = |v: &Vec<TsRepr>| v.iter().map(TsRepr::to_selector).collect::<Option<Vec<_>>>();
    let tsi = p.iter().find_map(|p| if let Payload::TsI(t) = p { Some(t) } else { None })?;
    let tsr = p.iter().find_map(|p| if let Payload::TsR(t) = p { Some(t) } else { None })?;
    Some((conv(tsi)?, conv(tsr)?))
}

pub(crate) fn ts_payloads(tsi: &[TrafficSelector], tsr: &[TrafficSelector]) -> [Payload; 2] {
    [
        Payload::TsI(tsi.iter().map(TsRepr::from_selector).collect()),
        Payload::TsR(tsr.iter().map(TsRepr::from_selector).collect()),
    ]
}

/// Our proposals numbered from 1, each with `spi`.
pub(crate) fn offer(proposals: &[Proposal], spi: &[u8]) -> Payload {
    Payload::Sa(
        proposals
            .iter()
            .enumerate()
            .map(|(i, p)| ProposalRepr::from_proposal(p, u8::try_from(i + 1).unwrap_or(u8::MAX), spi.to_vec()))
            .collect(),
    )
}

/// Every returned selector lies inside one we offered (RFC 7296 §2.9: the
/// responder may only narrow).
pub(crate) fn is_narrowing(returned: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    !returned.is_empty() && returned.iter().all(|r| offered.iter().any(|o| o.contains(r)))
}

/// Constant-time comparison for AUTH values.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The lowest nonce of an exchange (RFC 7296 §2.8.1 collision rule).
pub(crate) fn min_nonce(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a <= b { a.to_vec() } else { b.to_vec() }
}

pub(crate) fn error(kind: NotifyType) -> Payload {
    Payload::Notify(NotifyPayload::new(kind, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INVALID_KE_PAYLOAD data from a peer: short data is no group, not a panic.
    #[test]
    fn requested_group_reads_two_octets_or_nothing() {
        let n = |data: &[u8]| NotifyPayload::new(NotifyType::INVALID_KE_PAYLOAD, data.to_vec());
        assert_eq!(requested_group(&n(&[])), None);
        assert_eq!(requested_group(&n(&[0])), None);
        assert_eq!(requested_group(&n(&[0, 19])), Some(DhGroup::Ecp256));
        assert_eq!(requested_group(&n(&[0, 31, 0xff])), Some(DhGroup::from_code(31)));
    }
}
