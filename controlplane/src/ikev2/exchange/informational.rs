//! INFORMATIONAL (RFC 7296 §1.4): deletes of Child SAs and the IKE SA,
//! liveness checks (§2.4), notifications.

use super::create_child::switch_outbound;
use crate::ikev2::action::{Action, ChildSaId, DownReason, Event, Spi};
use crate::ikev2::ike_sa::{ChildState, Ctx, IkeSa, IkeState, Request};
use crate::ikev2::wire::{DeletePayload, ExchangeType, NotifyPayload, NotifyType, Payload, ProtocolId};

#[derive(Debug)]
pub(crate) enum InfoRequest {
    DeleteChild(ChildSaId),
    DeleteIke,
    Liveness,
    /// We told the peer ESP arrived on an SPI we do not know.
    InvalidSpi,
}

pub(crate) fn start_delete_child(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: ChildSaId) {
    let Some(c) = sa.children.iter().find(|c| c.id == id && c.state != ChildState::Deleting) else { return };
    let p = [Payload::Delete(DeletePayload { protocol: ProtocolId::Esp, spis: vec![c.inbound_spi.0.to_be_bytes().to_vec()] })];
    if sa.send_request(ctx, ExchangeType::Informational, &p, Request::Info(InfoRequest::DeleteChild(id))) {
        if let Some(c) = sa.child_mut(id) {
            c.state = ChildState::Deleting;
        }
    }
}

pub(crate) fn start_delete_ike(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let p = [Payload::Delete(DeletePayload { protocol: ProtocolId::Ike, spis: Vec::new() })];
    if sa.send_request(ctx, ExchangeType::Informational, &p, Request::Info(InfoRequest::DeleteIke)) && sa.state != IkeState::Rekeyed {
        sa.state = IkeState::Deleting;
    }
}

pub(crate) fn start_liveness(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    sa.send_request(ctx, ExchangeType::Informational, &[], Request::Info(InfoRequest::Liveness));
}

/// The INVALID_SPI notify for ESP that arrived on an SPI we have no SA for
/// (RFC 7296 §2.21.4: sent in an INFORMATIONAL exchange when an IKE SA with
/// the sender exists). §3.10.1: the SPI is the Notification Data; §3.10: the
/// SPI field is empty, so the Protocol ID is sent as zero.
pub(crate) fn invalid_spi_notify(spi: Spi) -> Payload {
    Payload::Notify(NotifyPayload::new(NotifyType::INVALID_SPI, spi.0.to_be_bytes().to_vec()))
}

pub(crate) fn start_invalid_spi(sa: &mut IkeSa, ctx: &mut Ctx<'_>, spi: Spi) {
    sa.send_request(ctx, ExchangeType::Informational, &[invalid_spi_notify(spi)], Request::Info(InfoRequest::InvalidSpi));
}

/// A Delete for the IKE SA that expects no answer (used when the SA is
/// being torn down anyway, RFC 7296 §2.21.2, §1.4.1).
pub(crate) fn send_delete_ike_oneshot(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let msg_id = sa.next_msg_id;
    let p = [Payload::Delete(DeletePayload { protocol: ProtocolId::Ike, spis: Vec::new() })];
    if let Some(bytes) = sa.build(ExchangeType::Informational, msg_id, false, &p) {
        sa.next_msg_id = sa.next_msg_id.wrapping_add(1);
        ctx.out.push(Action::Send { from: sa.local, to: sa.remote, bytes });
    }
}

/// What ends a Child SA whose delete completed.
fn finish_child(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: ChildSaId) {
    let grace = sa.conn(ctx).rekey_grace;
    let Some(c) = sa.child_mut(id) else { return };
    if c.redundant {
        sa.remove_child(ctx, id, DownReason::RekeyCollision);
    } else if c.replaced_by.is_some() {
        // Keep the old inbound SA a little for packets in flight.
        c.state = ChildState::Rekeyed { remove_at: ctx.now + grace };
    } else {
        sa.remove_child(ctx, id, DownReason::DeletedLocally);
    }
}

pub(crate) fn initiator_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, req: InfoRequest, _p: &[Payload]) {
    match req {
        InfoRequest::DeleteChild(id) => finish_child(sa, ctx, id),
        InfoRequest::DeleteIke => {
            let reason = if sa.state == IkeState::Rekeyed { DownReason::Rekeyed } else { DownReason::DeletedLocally };
            sa.kill(ctx, reason);
        }
        InfoRequest::Liveness | InfoRequest::InvalidSpi => {}
    }
}

pub(crate) fn responder_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, msg_id: u32, p: &[Payload]) {
    let ex = ExchangeType::Informational;
    let mut ours: Vec<Vec<u8>> = Vec::new();
    let mut delete_ike = false;
    // The peer got ESP from us on an SPI it does not know (RFC 7296 §3.10.1):
    // reported, not acted on (an unauthenticated ESP SPI is not proof enough
    // to delete anything, §2.21.4); the operator sees which SA is stale.
    for n in super::notifies(p).filter(|n| n.kind == NotifyType::INVALID_SPI) {
        let Ok(b) = <[u8; 4]>::try_from(n.data.as_slice()) else { continue };
        let spi = Spi(u32::from_be_bytes(b));
        let ours = sa.child_by_outbound(spi).map(|c| c.id);
        let connection = sa.conn(ctx).name.clone();
        ctx.event(Event::PeerInvalidSpi { ike_sa: sa.id, connection, spi, child: ours });
    }
    for d in p.iter().filter_map(|x| if let Payload::Delete(d) = x { Some(d) } else { None }) {
        match d.protocol {
            ProtocolId::Ike => delete_ike = true,
            ProtocolId::Esp => {
                for spi in &d.spis {
                    let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else { continue };
                    // The peer names its inbound SPI, which is our outbound one (§3.11).
                    let Some(c) = sa.child_by_outbound(Spi(u32::from_be_bytes(b))) else { continue };
                    let (id, state, inbound) = (c.id, c.state, c.inbound_spi);
                    let successor = sa.children.iter().find(|n| n.replaces == Some(id) && n.state == ChildState::OutboundPending).map(|n| n.id);
                    match (state, successor) {
                        // Both sides deleted it at once: no SPI in our answer (§1.4.1).
                        (ChildState::Deleting, _) => sa.remove_child(ctx, id, DownReason::DeletedByPeer),
                        (_, Some(new)) => {
                            // The peer finished its rekey: switch to the new SA
                            // now, drop the old inbound after the grace time.
                            ours.push(inbound.0.to_be_bytes().to_vec());
                            switch_outbound(sa, ctx, new);
                            let grace = sa.conn(ctx).rekey_grace;
                            if let Some(c) = sa.child_mut(id) {
                                c.replaced_by = Some(new);
                                c.state = ChildState::Rekeyed { remove_at: ctx.now + grace };
                            }
                        }
                        (ChildState::Rekeyed { .. }, None) => {
                            ours.push(inbound.0.to_be_bytes().to_vec());
                            sa.remove_child(ctx, id, DownReason::Rekeyed);
                        }
                        _ => {
                            ours.push(inbound.0.to_be_bytes().to_vec());
                            sa.remove_child(ctx, id, DownReason::DeletedByPeer);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if delete_ike {
        sa.send_response(ctx, ex, msg_id, &[]);
        let reason = if sa.state == IkeState::Rekeyed { DownReason::Rekeyed } else { DownReason::DeletedByPeer };
        return sa.kill(ctx, reason);
    }
    let resp: Vec<Payload> = if ours.is_empty() {
        Vec::new()
    } else {
        vec![Payload::Delete(DeletePayload { protocol: ProtocolId::Esp, spis: ours })]
    };
    sa.send_response(ctx, ex, msg_id, &resp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::emit_payloads;

    /// RFC 7296 §3.10: generic header, Protocol ID 0 and SPI Size 0 (the SPI
    /// field is empty), type 11 (§3.10.1), then the SPI as Notification Data.
    #[test]
    fn invalid_spi_notify_bytes() {
        let mut out = Vec::new();
        let first = emit_payloads(&[invalid_spi_notify(Spi(0xc001_d00d))], &mut out).expect("emit");
        assert_eq!(u8::from(first), 41, "Notify payload type");
        assert_eq!(out, [0, 0, 0, 12, 0, 0, 0, 11, 0xc0, 0x01, 0xd0, 0x0d]);
    }
}
