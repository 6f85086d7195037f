//! CREATE_CHILD_SA (RFC 7296 §1.3): Child SA rekey with optional PFS, IKE SA
//! rekey (§2.18), and simultaneous-rekey collisions (§2.8.1): the SA made
//! by the exchange with the lowest of the four nonces is redundant and its
//! creator deletes it.

use super::auth::{child_response, new_child};
use super::{error_notify, is_narrowing, ke, nonce, notify, offer, requested_group, sa_payload, selectors, ts_payloads};
use crate::ikev2::action::{ChildSaId, Directions, Event, IkeSaId, Role, Spi};
use crate::ikev2::crypto::{child_keymat, IkeKeys, KeyExchange, Prf, SkCipher};
use crate::ikev2::failure::{FailureKind, Sent};
use crate::ikev2::ike_sa::{ChildState, Ctx, IkeSa, IkeState, Request, Task};
use crate::ikev2::wire::{ExchangeType, KePayload, NotifyPayload, NotifyType, Payload, ProposalRepr, ProtocolId};
use crate::proposal::{select, DhGroup, Proposal};

/// INVALID_KE_PAYLOAD retries per Child SA (as for IKE_SA_INIT): a peer alternating
/// between two of our PFS groups would otherwise keep us rekeying forever.
const MAX_PFS_RETRIES: u8 = 3;

const NONCE_LEN: usize = 32;
/// Retry delay after TEMPORARY_FAILURE (RFC 7296 §2.25) or a lost collision.
const RETRY: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) enum CreateChildRequest {
    RekeyChild { old: ChildSaId, spi: Spi, ni: Vec<u8>, kx: Option<KeyExchange>, offered: Vec<Proposal> },
    RekeyIke { spi: u64, ni: Vec<u8>, kx: KeyExchange, offered: Vec<Proposal> },
}

fn first_group(proposals: &[Proposal]) -> Option<DhGroup> {
    proposals.iter().flat_map(|p| p.ke.iter()).copied().find(|g| *g != DhGroup::None)
}

/// Initiator: rekey Child SA `id`, with PFS if the ESP proposals have a KE.
pub(crate) fn start_child_rekey(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: ChildSaId) {
    let conn = sa.conn(ctx);
    let Some(old) = sa.children.iter().find(|c| c.id == id && c.state == ChildState::Installed) else { return };
    let (old_in, lts, rts) = (old.inbound_spi, old.local_ts.clone(), old.remote_ts.clone());
    let kx = match old.pfs_hint.or_else(|| first_group(&conn.esp_proposals)) {
        Some(g) => match KeyExchange::generate(g, ctx.rng) {
            Ok(k) => Some(k),
            Err(_) => return,
        },
        None => None,
    };
    let spi = ctx.random_spi();
    let ni = ctx.random(NONCE_LEN);
    let offered = conn.esp_proposals.clone();
    let mut p = vec![Payload::Notify(NotifyPayload {
        protocol: ProtocolId::Esp,
        spi: old_in.0.to_be_bytes().to_vec(),
        kind: NotifyType::REKEY_SA,
        data: Vec::new(),
    })];
    p.push(offer(&offered, &spi.0.to_be_bytes()));
    p.push(Payload::Nonce(ni.clone()));
    if let Some(k) = &kx {
        p.push(Payload::Ke(KePayload { group: k.group().code(), data: k.public().to_vec() }));
    }
    p.extend(ts_payloads(&lts, &rts));
    let req = CreateChildRequest::RekeyChild { old: id, spi, ni, kx, offered };
    if sa.send_request(ctx, ExchangeType::CreateChildSa, &p, Request::CreateChild(Box::new(req))) {
        if let Some(c) = sa.child_mut(id) {
            c.state = ChildState::Rekeying;
        }
    }
}

/// Initiator: rekey the IKE SA itself (always with a new KE, RFC 7296 §1.3.2).
pub(crate) fn start_ike_rekey(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    if sa.state != IkeState::Established {
        return;
    }
    let conn = sa.conn(ctx);
    let Some(group) = sa.proposal.and_then(|p| p.ke).or_else(|| first_group(&conn.ike_proposals)) else { return };
    let Ok(kx) = KeyExchange::generate(group, ctx.rng) else { return };
    let spi = ctx.random_u64();
    let ni = ctx.random(NONCE_LEN);
    let offered = conn.ike_proposals.clone();
    let p = vec![
        offer(&offered, &spi.to_be_bytes()),
        Payload::Nonce(ni.clone()),
        Payload::Ke(KePayload { group: kx.group().code(), data: kx.public().to_vec() }),
    ];
    let req = CreateChildRequest::RekeyIke { spi, ni, kx, offered };
    sa.send_request(ctx, ExchangeType::CreateChildSa, &p, Request::CreateChild(Box::new(req)));
}

/// Initiator: the CREATE_CHILD_SA response.
pub(crate) fn initiator_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, req: CreateChildRequest, p: &[Payload]) {
    match req {
        CreateChildRequest::RekeyChild { old, spi, ni, kx, offered } => child_rekeyed(sa, ctx, old, spi, &ni, kx, offered, p),
        CreateChildRequest::RekeyIke { spi, ni, kx, offered } => ike_rekeyed(sa, ctx, spi, &ni, kx, offered, p),
    }
}

#[allow(clippy::too_many_arguments)]
fn child_rekeyed(sa: &mut IkeSa, ctx: &mut Ctx<'_>, old: ChildSaId, spi: Spi, ni: &[u8], kx: Option<KeyExchange>, offered: Vec<Proposal>, p: &[Payload]) {
    let ex = ExchangeType::CreateChildSa;
    let now = ctx.now;
    let back_to_installed = |sa: &mut IkeSa, retry: bool| {
        if let Some(c) = sa.child_mut(old) {
            c.state = ChildState::Installed;
            // Try again later, or leave it to the hard lifetime.
            c.rekey_at = if retry { now + RETRY } else { c.expire_at };
        }
    };
    if let Some(n) = notify(p, NotifyType::INVALID_KE_PAYLOAD) {
        // Another PFS group from our list: retry at once with it (RFC 7296 §1.3).
        let requested = requested_group(n);
        let sent = kx.as_ref().map(KeyExchange::group);
        let ok = requested.filter(|g| Some(*g) != sent && offered.iter().any(|p| p.ke.contains(g)));
        let retries = sa.child_mut(old).map_or(u8::MAX, |c| c.pfs_retries);
        if let (Some(g), Some(sent), true) = (ok, sent, retries < MAX_PFS_RETRIES) {
            let connection = sa.conn(ctx).name.clone();
            ctx.event(Event::KeGroupRetry { connection, sent, requested: g });
            if let Some(c) = sa.child_mut(old) {
                c.state = ChildState::Installed;
                c.pfs_hint = Some(g);
                c.pfs_retries += 1;
            }
            return sa.queue_task(ctx, Task::RekeyChild(old));
        }
    }
    if let Some(n) = error_notify(p) {
        let retry = n.kind == NotifyType::TEMPORARY_FAILURE;
        if !retry && n.kind != NotifyType::CHILD_SA_NOT_FOUND {
            sa.failure(ctx, ex, Role::Initiator, FailureKind::PeerRefused { notify: n.kind, sent: Sent::ChildProposals(offered) });
        }
        return back_to_installed(sa, retry);
    }
    let Some(old_sa) = sa.children.iter().find(|c| c.id == old) else { return };
    let (lts, rts, peer_rekey) = (old_sa.local_ts.clone(), old_sa.remote_ts.clone(), old_sa.peer_rekey);
    let (Some([chosen]), Some(nr)) = (sa_payload(p), nonce(p)) else {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "CREATE_CHILD_SA response without SA or nonce" });
        return back_to_installed(sa, false);
    };
    let group = kx.as_ref().map(KeyExchange::group);
    let sel = select(&[chosen.to_proposal()], &offered, group);
    let outbound = <[u8; 4]>::try_from(chosen.spi.as_slice()).ok().map(|b| Spi(u32::from_be_bytes(b)));
    let (Ok(sel), Some(outbound)) = (sel, outbound) else {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "ESP proposal" });
        return back_to_installed(sa, false);
    };
    let g_ir = match (sel.chosen.ke.filter(|g| *g != DhGroup::None), &kx, ke(p)) {
        (None, _, _) => None,
        (Some(g), Some(k), Some(pk)) if k.group() == g && pk.group == g.code() => match k.shared_secret(&pk.data) {
            Ok(s) => Some(s),
            Err(_) => return back_to_installed(sa, false),
        },
        _ => {
            sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "PFS group" });
            return back_to_installed(sa, false);
        }
    };
    let Some((tsi, tsr)) = selectors(p).filter(|(i, r)| is_narrowing(i, &lts) && is_narrowing(r, &rts)) else {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "traffic selector" });
        return back_to_installed(sa, false);
    };
    let Some(keys) = sa.keys.as_ref() else { return };
    let Ok(ck) = child_keymat(keys.prf, &keys.sk_d, sel.chosen.encr, g_ir.as_deref().map(Vec::as_slice), ni, nr) else { return };
    let ours_min = super::min_nonce(ni, nr);
    let peer_child = peer_rekey.and_then(|pid| sa.children.iter().find(|c| c.id == pid).map(|c| (pid, c.min_nonce.clone())));
    let new_id = new_child(sa, ctx, sel.chosen, spi, outbound, ck, true, tsi, tsr, (ni, nr), Some(old));
    match peer_child {
        Some((pid, peer_min)) if ours_min < peer_min => {
            // Collision, and ours has the lowest nonce: ours is redundant.
            // The peer's successor takes over; the peer deletes the old SA.
            if let Some(c) = sa.child_mut(new_id) {
                c.redundant = true;
            }
            switch_outbound(sa, ctx, pid);
            if let Some(o) = sa.child_mut(old) {
                o.replaced_by = Some(pid);
                o.state = ChildState::Rekeyed { remove_at: now + RETRY };
            }
            sa.queue_task(ctx, Task::DeleteChild(new_id));
        }
        _ => {
            // No collision, or ours won: delete the old SA; a peer duplicate
            // (if any) is deleted by the peer.
            if let Some(o) = sa.child_mut(old) {
                o.replaced_by = Some(new_id);
            }
            sa.queue_task(ctx, Task::DeleteChild(old));
        }
    }
}

/// Responder of a rekey: the old SA is gone, so send on the new one.
pub(crate) fn switch_outbound(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: ChildSaId) {
    let Some(pos) = sa.children.iter().position(|c| c.id == id && c.state == ChildState::OutboundPending) else { return };
    sa.children[pos].state = ChildState::Installed;
    let c = sa.children.remove(pos);
    sa.install(ctx, &c, Directions::OutboundOnly);
    sa.children.insert(pos, c);
}

fn ike_rekeyed(sa: &mut IkeSa, ctx: &mut Ctx<'_>, spi: u64, ni: &[u8], kx: KeyExchange, offered: Vec<Proposal>, p: &[Payload]) {
    let ex = ExchangeType::CreateChildSa;
    if let Some(n) = error_notify(p) {
        if n.kind != NotifyType::TEMPORARY_FAILURE {
            sa.failure(ctx, ex, Role::Initiator, FailureKind::PeerRefused { notify: n.kind, sent: Sent::IkeProposals(offered) });
        }
        sa.rekey_at = Some(ctx.now + RETRY);
        return;
    }
    let (Some([chosen]), Some(nr), Some(k)) = (sa_payload(p), nonce(p), ke(p)) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "IKE rekey response without SA, nonce or KE" });
    };
    let spi_r = <[u8; 8]>::try_from(chosen.spi.as_slice()).ok().map(u64::from_be_bytes).filter(|s| *s != 0);
    let sel = select(&[chosen.to_proposal()], &offered, Some(kx.group()));
    let (Ok(sel), Some(spi_r)) = (sel, spi_r) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "IKE proposal" });
    };
    let (Ok(shared), true) = (kx.shared_secret(&k.data), k.group == kx.group().code()) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "KE" });
    };
    let Some(mut new) = rekeyed_sa(sa, ctx, sel.chosen, &shared, ni, nr, spi, spi_r, true) else { return };
    let ours_min = super::min_nonce(ni, nr);
    new.min_nonce = ours_min.clone();
    match sa.peer_rekey.clone() {
        Some((peer_id, peer_min)) if ours_min < peer_min => {
            // Ours is redundant: children go to the peer's SA, we delete ours;
            // the peer deletes the old one.
            ctx.adopt.push((peer_id, std::mem::take(&mut sa.children)));
            new.queue.push_back(Task::DeleteIke);
            sa.state = IkeState::Rekeyed;
        }
        _ => {
            new.children = std::mem::take(&mut sa.children);
            sa.state = IkeState::Rekeyed;
            sa.queue.clear();
            sa.queue.push_back(Task::DeleteIke);
        }
    }
    up_event(&new, ctx);
    ctx.spawned.push(new);
}

fn up_event(new: &IkeSa, ctx: &mut Ctx<'_>) {
    if let Some(proposal) = new.proposal {
        let e = Event::IkeSaUp {
            ike_sa: new.id,
            connection: new.conn(ctx).name.clone(),
            role: new.role(),
            local: new.local,
            remote: new.remote,
            proposal,
            nat: new.nat,
            rekey_of: new.rekey_of,
        };
        ctx.event(e);
    }
}

/// The new IKE SA of a rekey; `we_initiated` makes us its original
/// initiator (RFC 7296 §2.18).
#[allow(clippy::too_many_arguments)]
fn rekeyed_sa(
    old: &IkeSa,
    ctx: &mut Ctx<'_>,
    chosen: crate::proposal::ChosenProposal,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    we_initiated: bool,
) -> Option<IkeSa> {
    let conn = old.conn(ctx);
    let prf = Prf::checked(chosen.prf?).ok()?;
    let keys = IkeKeys::derive_rekey(old.keys.as_ref()?, prf, chosen.encr, shared, ni, nr, spi_i, spi_r).ok()?;
    let (seal_k, open_k) = if we_initiated { (&keys.sk_ei, &keys.sk_er) } else { (&keys.sk_er, &keys.sk_ei) };
    let seal = SkCipher::new(chosen.encr, &seal_k.encr).ok()?;
    let open = SkCipher::new(chosen.encr, &open_k.encr).ok()?;
    let id = IkeSaId(if we_initiated { spi_i } else { spi_r });
    let mut new = IkeSa::new(id, old.conn, we_initiated, old.local, old.remote, ctx.now);
    new.spi_i = spi_i;
    new.spi_r = spi_r;
    new.nat = old.nat;
    new.proposal = Some(chosen);
    new.keys = Some(keys);
    new.seal = Some(seal);
    new.open = Some(open);
    new.ni = ni.to_vec();
    new.nr = nr.to_vec();
    new.peer_id = old.peer_id.clone();
    new.state = IkeState::Established;
    new.rekey_of = Some(old.id);
    let (rekey, expire) = ctx.jittered(&conn.ike_lifetime);
    new.rekey_at = Some(rekey);
    new.expire_at = Some(expire);
    Some(new)
}

/// Responder: a CREATE_CHILD_SA request.
pub(crate) fn responder_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, msg_id: u32, p: &[Payload]) {
    let ex = ExchangeType::CreateChildSa;
    let is_ike = sa_payload(p).and_then(|s| s.first()).is_some_and(|pr| pr.protocol == ProtocolId::Ike);
    if sa.state != IkeState::Established {
        // Being deleted or already rekeyed (RFC 7296 §2.25).
        return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::TEMPORARY_FAILURE)]);
    }
    if is_ike {
        return ike_rekey_request(sa, ctx, msg_id, p);
    }
    let rekey_of = match notify(p, NotifyType::REKEY_SA) {
        None => None,
        Some(n) => {
            let spi = <[u8; 4]>::try_from(n.spi.as_slice()).ok().map(|b| Spi(u32::from_be_bytes(b)));
            match spi.and_then(|s| sa.child_by_outbound(s)) {
                None => return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::CHILD_SA_NOT_FOUND)]),
                Some(c) if matches!(c.state, ChildState::Installed | ChildState::Rekeying) => Some(c.id),
                Some(_) => return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::TEMPORARY_FAILURE)]),
            }
        }
    };
    let resp = child_response(sa, ctx, p, ex, Some(rekey_of));
    sa.send_response(ctx, ex, msg_id, &resp);
}

fn ike_rekey_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, msg_id: u32, p: &[Payload]) {
    let ex = ExchangeType::CreateChildSa;
    let conn = sa.conn(ctx);
    let (Some(props), Some(ni), Some(k)) = (sa_payload(p), nonce(p), ke(p)) else {
        return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::INVALID_SYNTAX)]);
    };
    let offered: Vec<Proposal> = props.iter().map(ProposalRepr::to_proposal).collect();
    let sel = match select(&offered, &conn.ike_proposals, Some(DhGroup::from_code(k.group))) {
        Ok(s) => s,
        Err(e) => {
            sa.failure(ctx, ex, Role::Responder, FailureKind::IkeProposalMismatch(e));
            return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::NO_PROPOSAL_CHOSEN)]);
        }
    };
    let Some(group) = sel.chosen.ke else {
        return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::NO_PROPOSAL_CHOSEN)]);
    };
    if group.code() != k.group {
        let n = NotifyPayload::new(NotifyType::INVALID_KE_PAYLOAD, group.code().to_be_bytes().to_vec());
        return sa.send_response(ctx, ex, msg_id, &[Payload::Notify(n)]);
    }
    let spi_i = props
        .get(sel.offered_index)
        .and_then(|pr| <[u8; 8]>::try_from(pr.spi.as_slice()).ok())
        .map(u64::from_be_bytes)
        .filter(|s| *s != 0);
    let Some(spi_i) = spi_i else {
        return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::INVALID_SYNTAX)]);
    };
    let Ok(kx) = KeyExchange::generate(group, ctx.rng) else { return };
    let Ok(shared) = kx.shared_secret(&k.data) else {
        return sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::INVALID_SYNTAX)]);
    };
    let spi_r = ctx.random_u64();
    let nr = ctx.random(NONCE_LEN);
    let Some(mut new) = rekeyed_sa(sa, ctx, sel.chosen, &shared, ni, &nr, spi_i, spi_r, false) else { return };
    new.min_nonce = super::min_nonce(ni, &nr);
    let our_rekey_pending = matches!(
        sa.outstanding.as_ref().map(|o| &o.request),
        Some(Request::CreateChild(r)) if matches!(**r, CreateChildRequest::RekeyIke { .. })
    );
    if our_rekey_pending {
        // Collision: decide when our own response arrives.
        sa.peer_rekey = Some((new.id, new.min_nonce.clone()));
    } else {
        new.children = std::mem::take(&mut sa.children);
        sa.state = IkeState::Rekeyed;
    }
    let number = props.get(sel.offered_index).map_or(1, |r| r.number);
    let resp = vec![
        Payload::Sa(vec![ProposalRepr::from_proposal(&sel.chosen.to_proposal(), number, spi_r.to_be_bytes().to_vec())]),
        Payload::Nonce(nr),
        Payload::Ke(KePayload { group: group.code(), data: kx.public().to_vec() }),
    ];
    sa.send_response(ctx, ex, msg_id, &resp);
    up_event(&new, ctx);
    ctx.spawned.push(new);
}
