//! IKE_SA_INIT (RFC 7296 §1.2): SA, KE, nonces, NAT detection (§2.23),
//! cookies (§2.6), INVALID_KE_PAYLOAD retry (§1.2).

use std::net::SocketAddr;

use super::{error_notify, ke, nonce, notifies, notify, requested_group, sa_payload};
use crate::ikev2::action::{DownReason, Event, IkeSaId, Role};
use crate::ikev2::crypto::{nat_detection_hash, IkeKeys, KeyExchange, Prf, SkCipher, SUPPORTED_GROUPS};
use crate::ikev2::failure::{Failure, FailureKind, Sent};
use crate::ikev2::ike_sa::{Ctx, IkeSa, IkeState, Request};
use crate::ikev2::wire::{
    ExchangeType, Flags, HeaderRepr, KePayload, NotifyPayload, NotifyType, Payload, ProposalRepr,
    HEADER_LEN,
};
use crate::proposal::{select, DhGroup, Proposal};

const NONCE_LEN: usize = 32;
/// How many COOKIE / INVALID_KE_PAYLOAD round trips we accept before giving up.
const MAX_INIT_RETRIES: u8 = 3;

pub(crate) struct InitRequest {
    pub kx: KeyExchange,
    pub ni: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
    pub retries: u8,
}

/// Our NAT_DETECTION_SOURCE_IP data. With `force_encap` it hashes an
/// address we do not have, so the peer sees a NAT and encapsulates too
/// (what strongSwan does for `encap = yes`, RFC 7296 §2.23 permits it).
fn source_hash(force_encap: bool, spi_i: u64, spi_r: u64, local: SocketAddr) -> Vec<u8> {
    let addr = if force_encap { SocketAddr::from(([0, 0, 0, 0], 0)) } else { local };
    nat_detection_hash(spi_i, spi_r, addr)
}

fn request_payloads(sa: &IkeSa, proposals: &[Proposal], force_encap: bool, req: &InitRequest) -> Vec<Payload> {
    let mut v = Vec::new();
    if let Some(c) = &req.cookie {
        // COOKIE must be the first payload (RFC 7296 §2.6).
        v.push(Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, c.clone())));
    }
    v.push(super::offer(proposals, &[]));
    v.push(Payload::Ke(KePayload { group: req.kx.group().code(), data: req.kx.public().to_vec() }));
    v.push(Payload::Nonce(req.ni.clone()));
    v.push(Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, source_hash(force_encap, sa.spi_i, 0, sa.local))));
    v.push(Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_DESTINATION_IP, nat_detection_hash(sa.spi_i, 0, sa.remote))));
    v
}

fn configured_groups(proposals: &[Proposal]) -> Vec<DhGroup> {
    let mut g: Vec<DhGroup> = Vec::new();
    for p in proposals {
        for k in &p.ke {
            if !g.contains(k) {
                g.push(*k);
            }
        }
    }
    g
}

/// Starts a new IKE SA as initiator for connection `conn_idx`.
pub(crate) fn initiate(ctx: &mut Ctx<'_>, conn_idx: usize) -> Option<IkeSa> {
    let conn = ctx.conns.get(conn_idx)?;
    let remote = SocketAddr::new(conn.remote_addr?, conn.remote_port);
    let spi_i = ctx.random_u64();
    let mut sa = IkeSa::new(IkeSaId(spi_i), conn_idx, true, conn.local, remote, ctx.now);
    sa.spi_i = spi_i;
    let group = *configured_groups(&conn.ike_proposals).first()?;
    let kx = KeyExchange::generate(group, ctx.rng).ok()?;
    let req = InitRequest { kx, ni: ctx.random(NONCE_LEN), cookie: None, retries: 0 };
    let payloads = request_payloads(&sa, &conn.ike_proposals, conn.force_encap, &req);
    sa.send_request(ctx, ExchangeType::IkeSaInit, &payloads, Request::SaInit(Box::new(req)));
    Some(sa)
}

fn fail(sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: FailureKind) {
    sa.failure(ctx, ExchangeType::IkeSaInit, Role::Initiator, kind);
    sa.kill(ctx, DownReason::Failed);
}

/// Initiator: the IKE_SA_INIT response.
pub(crate) fn initiator_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, mut req: Box<InitRequest>, h: &HeaderRepr, p: &[Payload], raw: &[u8]) {
    let conn = sa.conn(ctx);
    if let Some(c) = notify(p, NotifyType::COOKIE) {
        // RFC 7296 §2.6: cookie data is 1 to 64 octets; echo nothing else.
        if req.retries >= MAX_INIT_RETRIES || !(1..=64).contains(&c.data.len()) {
            return fail(sa, ctx, FailureKind::PeerRefused { notify: NotifyType::COOKIE, sent: Sent::Nothing });
        }
        req.retries += 1;
        req.cookie = Some(c.data.clone());
        ctx.event(Event::CookieRetry { connection: conn.name.clone() });
        let payloads = request_payloads(sa, &conn.ike_proposals, conn.force_encap, &req);
        return sa.resend_init(ctx, &payloads, Request::SaInit(req));
    }
    if let Some(n) = notify(p, NotifyType::INVALID_KE_PAYLOAD) {
        let requested = requested_group(n);
        let configured = configured_groups(&conn.ike_proposals);
        let Some(requested) = requested else {
            return fail(sa, ctx, FailureKind::PeerRefused { notify: n.kind, sent: Sent::IkeProposals(conn.ike_proposals.clone()) });
        };
        if !configured.contains(&requested) || !SUPPORTED_GROUPS.contains(&requested) || req.retries >= MAX_INIT_RETRIES {
            return fail(sa, ctx, FailureKind::KeGroupNotConfigured { requested, configured });
        }
        let Ok(kx) = KeyExchange::generate(requested, ctx.rng) else { return };
        ctx.event(Event::KeGroupRetry { connection: conn.name.clone(), sent: req.kx.group(), requested });
        req.retries += 1;
        req.kx = kx;
        let payloads = request_payloads(sa, &conn.ike_proposals, conn.force_encap, &req);
        return sa.resend_init(ctx, &payloads, Request::SaInit(req));
    }
    if let Some(n) = error_notify(p) {
        let kind = FailureKind::PeerRefused { notify: n.kind, sent: Sent::IkeProposals(conn.ike_proposals.clone()) };
        return fail(sa, ctx, kind);
    }
    let (Some(props), Some(k), Some(nr)) = (sa_payload(p), ke(p), nonce(p)) else {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "response without SA, KE or nonce" });
    };
    let [chosen_repr] = props else {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "number of IKE proposals (must be 1)" });
    };
    let ours = req.kx.group();
    let chosen = match select(&[chosen_repr.to_proposal()], &conn.ike_proposals, Some(ours)) {
        Ok(s) if s.chosen.ke == Some(ours) && k.group == ours.code() => s.chosen,
        _ => return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "IKE proposal or KE group" }),
    };
    if h.spi_r == 0 {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "zero responder SPI" });
    }
    let Ok(shared) = req.kx.shared_secret(&k.data) else {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "invalid KE public value" });
    };
    sa.spi_r = h.spi_r;
    let Some(prf) = chosen.prf.and_then(|id| Prf::checked(id).ok()) else {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "PRF" });
    };
    let keys = match IkeKeys::derive(prf, chosen.encr, &shared, &req.ni, nr, sa.spi_i, sa.spi_r) {
        Ok(k) => k,
        Err(_) => return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "encryption algorithm" }),
    };
    let (Ok(seal), Ok(open)) = (SkCipher::new(chosen.encr, &keys.sk_ei.encr), SkCipher::new(chosen.encr, &keys.sk_er.encr)) else {
        return fail(sa, ctx, FailureKind::ResponderChoseUnoffered { what: "encryption algorithm" });
    };
    // NAT detection (RFC 7296 §2.23): the responder hashed its own address
    // as source and ours as destination, with both SPIs.
    let src_ok = nat_hash_matches(p, NotifyType::NAT_DETECTION_SOURCE_IP, nat_detection_hash(sa.spi_i, sa.spi_r, sa.remote));
    let dst_ok = nat_hash_matches(p, NotifyType::NAT_DETECTION_DESTINATION_IP, nat_detection_hash(sa.spi_i, sa.spi_r, sa.local));
    sa.nat.remote_behind_nat = src_ok == Some(false);
    sa.nat.local_behind_nat = dst_ok == Some(false);
    sa.init_response = raw.to_vec();
    sa.ni = req.ni.clone();
    sa.nr = nr.to_vec();
    sa.min_nonce = super::min_nonce(&sa.ni, &sa.nr);
    sa.proposal = Some(chosen);
    sa.keys = Some(keys);
    sa.seal = Some(seal);
    sa.open = Some(open);
    if sa.encap(conn) {
        sa.float_to_nat_t();
    }
    sa.state = IkeState::Authenticating;
    super::auth::start(sa, ctx);
}

/// `None` when the peer sent no such notify (no NAT-T support), else
/// whether any of them matches (there may be several source hashes).
fn nat_hash_matches(p: &[Payload], kind: NotifyType, expected: Vec<u8>) -> Option<bool> {
    let mut seen = false;
    for n in notifies(p).filter(|n| n.kind == kind) {
        seen = true;
        if super::ct_eq(&n.data, &expected) {
            return Some(true);
        }
    }
    seen.then_some(false)
}

/// An answer without state (RFC 7296 §2.6, §2.21.1): responder SPI zero.
pub(crate) fn stateless_reply(ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, h: &HeaderRepr, n: NotifyPayload) {
    let mut body = Vec::new();
    let Ok(first) = crate::ikev2::wire::emit_payloads(&[Payload::Notify(n)], &mut body) else { return };
    let header = HeaderRepr {
        spi_i: h.spi_i,
        spi_r: 0,
        next_payload: first,
        exchange: h.exchange,
        flags: Flags { initiator: false, response: true },
        message_id: h.message_id,
        length: (HEADER_LEN + body.len()) as u32,
    };
    let mut out = Vec::new();
    header.emit(&mut out);
    out.extend_from_slice(&body);
    ctx.out.push(crate::ikev2::action::Action::Send { from: local, to: remote, bytes: out });
}

fn cookie_for(ctx: &Ctx<'_>, h: &HeaderRepr, ni: &[u8], remote: SocketAddr) -> Vec<u8> {
    // <version> | prf(secret, Ni | IPi | SPIi) (RFC 7296 §2.6).
    let ip = match remote.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut c = vec![0u8];
    c.extend(Prf::new(crate::proposal::PrfId::HmacSha2_256).compute_parts(&ctx.cookie.secret[..], &[ni, &ip, &h.spi_i.to_be_bytes()]));
    c
}

/// Responder: an IKE_SA_INIT request with no state yet.
pub(crate) fn responder_request(ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, h: &HeaderRepr, p: &[Payload], raw: &[u8]) -> Option<IkeSa> {
    let reply = |ctx: &mut Ctx<'_>, kind: NotifyType, data: Vec<u8>| {
        stateless_reply(ctx, local, remote, h, NotifyPayload::new(kind, data));
    };
    let Some(conn_idx) = ctx.conns.iter().position(|c| c.matches_addresses(local, remote)) else {
        ctx.stats.count(crate::ikev2::action::DropReason::NoConnection);
        let f = Failure { connection: None, role: Role::Responder, local, remote, exchange: ExchangeType::IkeSaInit, kind: FailureKind::NoConnection };
        ctx.event(Event::Failure(Box::new(f)));
        reply(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
        return None;
    };
    let conn = &ctx.conns[conn_idx];
    let (Some(props), Some(k), Some(ni)) = (sa_payload(p), ke(p), nonce(p)) else {
        reply(ctx, NotifyType::INVALID_SYNTAX, Vec::new());
        return None;
    };
    if let Some(threshold) = ctx.cookie.threshold {
        if ctx.half_open >= threshold {
            let expected = cookie_for(ctx, h, ni, remote);
            let presented = match p.first() {
                Some(Payload::Notify(n)) if n.kind == NotifyType::COOKIE => Some(n.data.as_slice()),
                _ => None,
            };
            if presented.is_none_or(|c| !super::ct_eq(c, &expected)) {
                reply(ctx, NotifyType::COOKIE, expected);
                return None;
            }
        }
    }
    let offered: Vec<Proposal> = props.iter().map(ProposalRepr::to_proposal).collect();
    let ke_group = DhGroup::from_code(k.group);
    let fail = |ctx: &mut Ctx<'_>, kind: FailureKind| {
        let f = Failure { connection: Some(conn.name.clone()), role: Role::Responder, local, remote, exchange: ExchangeType::IkeSaInit, kind };
        ctx.event(Event::Failure(Box::new(f)));
    };
    let sel = match select(&offered, &conn.ike_proposals, Some(ke_group)) {
        Ok(s) => s,
        Err(e) => {
            fail(ctx, FailureKind::IkeProposalMismatch(e));
            reply(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return None;
        }
    };
    let chosen = sel.chosen;
    let Some(group) = chosen.ke else {
        reply(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
        return None;
    };
    if group != ke_group {
        // Right proposal, wrong guess: ask for the group (RFC 7296 §1.2).
        reply(ctx, NotifyType::INVALID_KE_PAYLOAD, group.code().to_be_bytes().to_vec());
        ctx.event(Event::KeGroupRequested { connection: conn.name.clone(), peer: remote, offered: ke_group, requested: group });
        return None;
    }
    let (Ok(kx), Some(prf)) = (KeyExchange::generate(group, ctx.rng), chosen.prf.and_then(|id| Prf::checked(id).ok())) else {
        reply(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
        return None;
    };
    let Ok(shared) = kx.shared_secret(&k.data) else {
        reply(ctx, NotifyType::INVALID_SYNTAX, Vec::new());
        return None;
    };
    let spi_r = ctx.random_u64();
    let nr = ctx.random(NONCE_LEN);
    let keys = IkeKeys::derive(prf, chosen.encr, &shared, ni, &nr, h.spi_i, spi_r).ok()?;
    let seal = SkCipher::new(chosen.encr, &keys.sk_er.encr).ok()?;
    let open = SkCipher::new(chosen.encr, &keys.sk_ei.encr).ok()?;
    let mut sa = IkeSa::new(IkeSaId(spi_r), conn_idx, false, local, remote, ctx.now);
    sa.spi_i = h.spi_i;
    sa.spi_r = spi_r;
    let src_ok = nat_hash_matches(p, NotifyType::NAT_DETECTION_SOURCE_IP, nat_detection_hash(h.spi_i, 0, remote));
    let dst_ok = nat_hash_matches(p, NotifyType::NAT_DETECTION_DESTINATION_IP, nat_detection_hash(h.spi_i, 0, local));
    sa.nat.remote_behind_nat = src_ok == Some(false);
    sa.nat.local_behind_nat = dst_ok == Some(false);
    sa.init_request = raw.to_vec();
    sa.ni = ni.to_vec();
    sa.nr = nr.clone();
    sa.min_nonce = super::min_nonce(ni, &nr);
    sa.proposal = Some(chosen);
    sa.keys = Some(keys);
    sa.seal = Some(seal);
    sa.open = Some(open);
    sa.peer_next_id = 1;
    let number = props.get(sel.offered_index).map_or(1, |p| p.number);
    let payloads = vec![
        Payload::Sa(vec![ProposalRepr::from_proposal(&chosen.to_proposal(), number, Vec::new())]),
        Payload::Ke(KePayload { group: group.code(), data: kx.public().to_vec() }),
        Payload::Nonce(nr),
        Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, source_hash(conn.force_encap, h.spi_i, spi_r, local))),
        Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_DESTINATION_IP, nat_detection_hash(h.spi_i, spi_r, remote))),
    ];
    sa.send_response(ctx, ExchangeType::IkeSaInit, 0, &payloads);
    Some(sa)
}
