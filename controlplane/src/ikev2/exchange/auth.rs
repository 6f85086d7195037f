//! IKE_AUTH with a pre-shared key (RFC 7296 §1.2, §2.15) and the first
//! Child SA with traffic-selector narrowing (§2.9).

use super::{ct_eq, error_notify, is_narrowing, notify, offer, sa_payload, selectors, ts_payloads};
use crate::identity::Identity;
use crate::ikev2::action::{DownReason, Event, Role, Spi};
use crate::ikev2::crypto::{child_keymat, psk_auth};
use crate::ikev2::failure::{FailureKind, Sent};
use crate::ikev2::ike_sa::{ChildSa, ChildState, Ctx, IkeSa, IkeState, Request};
use crate::ikev2::action::Directions;
use crate::ikev2::wire::{AuthPayload, ExchangeType, IdPayload, NotifyPayload, NotifyType, Payload, ProposalRepr};
use crate::proposal::{select, Proposal};
use crate::selector::{narrow, TrafficSelector};

/// Auth method 2: shared key message integrity code (RFC 7296 §3.8).
const AUTH_PSK: u8 = 2;

pub(crate) struct AuthRequest {
    child_spi: Spi,
    esp: Vec<Proposal>,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
}

/// Our ID payload: the configured one, or our address for `%any`.
pub(crate) fn own_id(sa: &IkeSa, local_id: &Identity) -> IdPayload {
    IdPayload::from_identity(local_id)
        .unwrap_or_else(|| IdPayload::from_identity(&Identity::from_addr(sa.local.ip())).unwrap_or(IdPayload { id_type: 1, data: Vec::new() }))
}

/// Initiator: sends IKE_AUTH once IKE_SA_INIT is done.
pub(crate) fn start(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let conn = sa.conn(ctx);
    let Some(keys) = sa.keys.as_ref() else { return };
    let idi = own_id(sa, &conn.local_id);
    let auth = psk_auth(keys.prf, &conn.psk, &sa.init_request, &sa.nr, &keys.sk_pi, &idi.body());
    let child_spi = ctx.random_spi();
    let esp: Vec<Proposal> = conn.esp_proposals.iter().map(Proposal::without_ke).collect();
    let mut p = vec![Payload::IdI(idi)];
    if let Some(idr) = IdPayload::from_identity(&conn.remote_id) {
        p.push(Payload::IdR(idr));
    }
    p.push(Payload::Auth(AuthPayload { method: AUTH_PSK, data: auth }));
    if conn.initial_contact {
        p.push(Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, Vec::new())));
    }
    p.push(offer(&esp, &child_spi.0.to_be_bytes()));
    p.extend(ts_payloads(&conn.local_ts, &conn.remote_ts));
    let req = AuthRequest { child_spi, esp, local_ts: conn.local_ts.clone(), remote_ts: conn.remote_ts.clone() };
    sa.send_request(ctx, ExchangeType::IkeAuth, &p, Request::Auth(Box::new(req)));
}

fn established(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let conn = sa.conn(ctx);
    sa.state = IkeState::Established;
    let (rekey, expire) = ctx.jittered(&conn.ike_lifetime);
    sa.rekey_at = Some(rekey);
    sa.expire_at = Some(expire);
    if let Some(proposal) = sa.proposal {
        let e = Event::IkeSaUp {
            ike_sa: sa.id,
            connection: conn.name.clone(),
            role: sa.role(),
            local: sa.local,
            remote: sa.remote,
            proposal,
            nat: sa.nat,
            rekey_of: sa.rekey_of,
        };
        ctx.event(e);
    }
}

/// Builds, installs and reports a new Child SA.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_child(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    proposal: crate::proposal::ChosenProposal,
    inbound_spi: Spi,
    outbound_spi: Spi,
    keys: crate::ikev2::crypto::ChildKeys,
    we_initiated: bool,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    nonces: (&[u8], &[u8]),
    replaces: Option<crate::ikev2::action::ChildSaId>,
) -> crate::ikev2::action::ChildSaId {
    let conn = sa.conn(ctx);
    let (inbound_key, outbound_key) = ChildSa::keys(keys, we_initiated);
    let (rekey_at, expire_at) = ctx.jittered(&conn.child_lifetime);
    let id = ctx.child_id();
    // Make-before-break: a responder of a rekey installs only the inbound
    // half now; the outbound switches when the old SA is deleted.
    let outbound_waits = replaces.is_some() && !we_initiated;
    let child = ChildSa {
        id,
        inbound_spi,
        outbound_spi,
        proposal,
        local_ts,
        remote_ts,
        inbound_key,
        outbound_key,
        state: if outbound_waits { ChildState::OutboundPending } else { ChildState::Installed },
        installed_at: ctx.now,
        rekey_at,
        expire_at,
        min_nonce: super::min_nonce(nonces.0, nonces.1),
        replaces,
        replaced_by: None,
        peer_rekey: None,
        redundant: false,
        expired: false,
        pfs_hint: None,
        pfs_retries: 0,
    };
    if outbound_waits {
        sa.install(ctx, &child, Directions::InboundOnly);
    } else if replaces.is_some() {
        sa.install(ctx, &child, Directions::InboundOnly);
        sa.install(ctx, &child, Directions::OutboundOnly);
    } else {
        sa.install(ctx, &child, Directions::Both);
    }
    sa.child_up(ctx, &child);
    sa.children.push(child);
    id
}

fn spi_of(p: &ProposalRepr) -> Option<Spi> {
    <[u8; 4]>::try_from(p.spi.as_slice()).ok().map(|b| Spi(u32::from_be_bytes(b)))
}

/// Initiator: the IKE_AUTH response.
pub(crate) fn initiator_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, req: AuthRequest, p: &[Payload]) {
    let conn = sa.conn(ctx);
    let ex = ExchangeType::IkeAuth;
    let auth = p.iter().find_map(|x| if let Payload::Auth(a) = x { Some(a) } else { None });
    let idr = p.iter().find_map(|x| if let Payload::IdR(i) = x { Some(i) } else { None });
    let (Some(auth), Some(idr)) = (auth, idr) else {
        let n = error_notify(p).map_or(NotifyType::AUTHENTICATION_FAILED, |n| n.kind);
        let sent = Sent::Identities { local_id: conn.local_id.clone(), remote_id: conn.remote_id.clone() };
        let sent = if n == NotifyType::AUTHENTICATION_FAILED { sent } else { Sent::IkeProposals(conn.ike_proposals.clone()) };
        sa.failure(ctx, ex, Role::Initiator, FailureKind::PeerRefused { notify: n, sent });
        return sa.kill(ctx, DownReason::Failed);
    };
    let Ok(peer_id) = idr.to_identity() else {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "malformed IDr" });
        return sa.kill(ctx, DownReason::Failed);
    };
    if !conn.remote_id.matches(&peer_id) {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderIdMismatch { received: peer_id, expected: conn.remote_id.clone() });
        super::informational::send_delete_ike_oneshot(sa, ctx);
        return sa.kill(ctx, DownReason::Failed);
    }
    let Some(keys) = sa.keys.as_ref() else { return };
    let expected = psk_auth(keys.prf, &conn.psk, &sa.init_response, &sa.ni, &keys.sk_pr, &idr.body());
    if auth.method != AUTH_PSK || !ct_eq(&auth.data, &expected) {
        sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderAuthMismatch { peer_id });
        super::informational::send_delete_ike_oneshot(sa, ctx);
        return sa.kill(ctx, DownReason::Failed);
    }
    sa.peer_id = Some(peer_id);
    established(sa, ctx);
    // The first Child SA (RFC 7296 §2.21.2: its failure leaves the IKE SA up).
    if let Some(n) = error_notify(p) {
        let sent = match n.kind {
            NotifyType::TS_UNACCEPTABLE | NotifyType::SINGLE_PAIR_REQUIRED => {
                Sent::Selectors { local_ts: req.local_ts.clone(), remote_ts: req.remote_ts.clone() }
            }
            _ => Sent::ChildProposals(req.esp.clone()),
        };
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::PeerRefused { notify: n.kind, sent });
    }
    let Some([chosen]) = sa_payload(p) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "number of ESP proposals (must be 1)" });
    };
    let sel = select(&[chosen.to_proposal()], &req.esp, None);
    let (Ok(sel), Some(outbound_spi)) = (sel, spi_of(chosen)) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "ESP proposal" });
    };
    let Some((tsi, tsr)) = selectors(p).filter(|(i, r)| is_narrowing(i, &req.local_ts) && is_narrowing(r, &req.remote_ts)) else {
        return sa.failure(ctx, ex, Role::Initiator, FailureKind::ResponderChoseUnoffered { what: "traffic selector" });
    };
    let Some(keys) = sa.keys.as_ref() else { return };
    let Ok(ck) = child_keymat(keys.prf, &keys.sk_d, sel.chosen.encr, None, &sa.ni, &sa.nr) else { return };
    let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
    new_child(sa, ctx, sel.chosen, req.child_spi, outbound_spi, ck, true, tsi, tsr, (&ni, &nr), None);
}

/// Responder: the IKE_AUTH request.
pub(crate) fn responder_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, msg_id: u32, p: &[Payload]) {
    let ex = ExchangeType::IkeAuth;
    let refuse = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: FailureKind| {
        sa.failure(ctx, ex, Role::Responder, kind);
        sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::AUTHENTICATION_FAILED)]);
        sa.kill(ctx, DownReason::Failed);
    };
    let idi = p.iter().find_map(|x| if let Payload::IdI(i) = x { Some(i) } else { None });
    let auth = p.iter().find_map(|x| if let Payload::Auth(a) = x { Some(a) } else { None });
    let (Some(idi), Some(auth)) = (idi, auth) else {
        sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::INVALID_SYNTAX)]);
        return sa.kill(ctx, DownReason::Failed);
    };
    let Ok(peer_id) = idi.to_identity() else {
        sa.send_response(ctx, ex, msg_id, &[super::error(NotifyType::INVALID_SYNTAX)]);
        return sa.kill(ctx, DownReason::Failed);
    };
    // Pick the connection by the peer's ID among those for this address pair,
    // preferring the one IKE_SA_INIT matched (strongSwan does the same).
    let candidates: Vec<usize> = (0..ctx.conns.len()).filter(|&i| ctx.conns[i].matches_addresses(sa.local, sa.remote)).collect();
    let chosen_conn = std::iter::once(sa.conn)
        .chain(candidates.iter().copied())
        .find(|&i| ctx.conns.get(i).is_some_and(|c| c.remote_id.matches(&peer_id)));
    let Some(conn_idx) = chosen_conn else {
        let expected = candidates.iter().map(|&i| ctx.conns[i].remote_id.clone()).collect();
        return refuse(sa, ctx, FailureKind::PeerIdMismatch { received: peer_id, expected });
    };
    sa.conn = conn_idx;
    let conn = sa.conn(ctx);
    let idr_req = p.iter().find_map(|x| if let Payload::IdR(i) = x { Some(i) } else { None });
    if let Some(Ok(requested)) = idr_req.map(IdPayload::to_identity) {
        if conn.local_id != Identity::Any && !conn.local_id.matches(&requested) {
            return refuse(sa, ctx, FailureKind::RequestedIdMismatch { requested, ours: conn.local_id.clone() });
        }
    }
    let Some(keys) = sa.keys.as_ref() else { return };
    let expected = psk_auth(keys.prf, &conn.psk, &sa.init_request, &sa.nr, &keys.sk_pi, &idi.body());
    if auth.method != AUTH_PSK || !ct_eq(&auth.data, &expected) {
        return refuse(sa, ctx, FailureKind::PeerAuthMismatch { peer_id });
    }
    let idr = own_id(sa, &conn.local_id);
    let our_auth = psk_auth(keys.prf, &conn.psk, &sa.init_response, &sa.ni, &keys.sk_pr, &idr.body());
    if notify(p, NotifyType::INITIAL_CONTACT).is_some() {
        ctx.initial_contact.push((conn_idx, peer_id.clone(), sa.id));
    }
    sa.peer_id = Some(peer_id);
    established(sa, ctx);
    let mut resp = vec![Payload::IdR(idr), Payload::Auth(AuthPayload { method: AUTH_PSK, data: our_auth })];
    resp.extend(child_response(sa, ctx, p, ex, None));
    sa.send_response(ctx, ex, msg_id, &resp);
}

/// Responder side of a Child SA negotiation (IKE_AUTH or CREATE_CHILD_SA):
/// proposal choice and narrowing; returns the payloads for the response.
/// `create_child` is `None` in IKE_AUTH, else the Child SA being rekeyed (if any).
pub(crate) fn child_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    p: &[Payload],
    ex: ExchangeType,
    create_child: Option<Option<crate::ikev2::action::ChildSaId>>,
) -> Vec<Payload> {
    let conn = sa.conn(ctx);
    let Some(props) = sa_payload(p) else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
    let in_auth = ex == ExchangeType::IkeAuth;
    let configured: Vec<Proposal> =
        if in_auth { conn.esp_proposals.iter().map(Proposal::without_ke).collect() } else { conn.esp_proposals.clone() };
    let offered: Vec<Proposal> = props
        .iter()
        .map(|r| if in_auth { r.to_proposal().without_ke() } else { r.to_proposal() })
        .collect();
    let ke_hint = super::ke(p).map(|k| crate::proposal::DhGroup::from_code(k.group));
    let sel = match select(&offered, &configured, ke_hint) {
        Ok(s) => s,
        Err(e) => {
            sa.failure(ctx, ex, Role::Responder, FailureKind::ChildProposalMismatch(e));
            return vec![super::error(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
    };
    let Some(outbound_spi) = props.get(sel.offered_index).and_then(spi_of) else {
        return vec![super::error(NotifyType::INVALID_SYNTAX)];
    };
    let Some((tsi, tsr)) = selectors(p) else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
    let nar_i = narrow(&tsi, &conn.remote_ts);
    let nar_r = narrow(&tsr, &conn.local_ts);
    if nar_i.is_empty() || nar_r.is_empty() {
        let kind = FailureKind::TsUnacceptable {
            offered_i: tsi,
            offered_r: tsr,
            allowed_remote: conn.remote_ts.clone(),
            allowed_local: conn.local_ts.clone(),
        };
        sa.failure(ctx, ex, Role::Responder, kind);
        return vec![super::error(NotifyType::TS_UNACCEPTABLE)];
    }
    let Some(keys) = sa.keys.as_ref() else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
    let (ni, nr, g_ir, ke_out, replaces) = match create_child {
        None => (sa.ni.clone(), sa.nr.clone(), None, None, None),
        Some(old) => {
            let Some(peer_ni) = super::nonce(p) else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
            let nr = ctx.random(32);
            let mut g_ir = None;
            let mut ke_out = None;
            if let Some(group) = sel.chosen.ke.filter(|g| *g != crate::proposal::DhGroup::None) {
                let Some(peer_ke) = super::ke(p) else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
                if peer_ke.group != group.code() {
                    return vec![Payload::Notify(NotifyPayload::new(NotifyType::INVALID_KE_PAYLOAD, group.code().to_be_bytes().to_vec()))];
                }
                let Ok(kx) = crate::ikev2::crypto::KeyExchange::generate(group, ctx.rng) else {
                    return vec![super::error(NotifyType::NO_PROPOSAL_CHOSEN)];
                };
                let Ok(s) = kx.shared_secret(&peer_ke.data) else { return vec![super::error(NotifyType::INVALID_SYNTAX)] };
                g_ir = Some(s);
                ke_out = Some(crate::ikev2::wire::KePayload { group: group.code(), data: kx.public().to_vec() });
            }
            (peer_ni.to_vec(), nr, g_ir, ke_out, old)
        }
    };
    let Ok(ck) = child_keymat(keys.prf, &keys.sk_d, sel.chosen.encr, g_ir.as_deref().map(|v| v.as_slice()), &ni, &nr) else {
        return vec![super::error(NotifyType::NO_PROPOSAL_CHOSEN)];
    };
    let inbound_spi = ctx.random_spi();
    let number = props.get(sel.offered_index).map_or(1, |r| r.number);
    let id = new_child(sa, ctx, sel.chosen, inbound_spi, outbound_spi, ck, false, nar_r.clone(), nar_i.clone(), (&ni, &nr), replaces);
    if let Some(old) = replaces {
        // A simultaneous rekey of the same SA (RFC 7296 §2.8.1): remember it.
        if let Some(o) = sa.child_mut(old) {
            if o.state == ChildState::Rekeying {
                o.peer_rekey = Some(id);
            } else {
                o.replaced_by = Some(id);
            }
        }
    }
    let mut out = vec![Payload::Sa(vec![ProposalRepr::from_proposal(&sel.chosen.to_proposal(), number, inbound_spi.0.to_be_bytes().to_vec())])];
    if !in_auth {
        out.push(Payload::Nonce(nr));
    }
    if let Some(k) = ke_out {
        out.push(Payload::Ke(k));
    }
    out.extend(ts_payloads(&nar_i, &nar_r));
    out
}
