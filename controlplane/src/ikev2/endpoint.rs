//! The sans-IO endpoint: owns the IKE SAs of all connections, is fed
//! datagrams and time, and returns [`Action`]s (quinn-proto/rustls style).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::action::{Action, ChildSaId, DownReason, DropReason, Event, IkeSaId, Role, Spi, Stats};
use super::connection::{ConnectionConfig, DpdAction, StartAction};
use super::crypto::{open_sk, Entropy};
use super::exchange::{auth, create_child, informational, sa_init};
use super::failure::{Failure, FailureKind};
use super::ike_sa::{ChildState, Ctx, IkeSa, IkeState, Request, Task, HALF_OPEN_TIMEOUT};
use super::wire::{
    parse_payloads, peek_any_version, ExchangeType, Header, HeaderRepr, NotifyPayload, NotifyType, Payload, WireError,
};

/// Index of a connection in the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub usize);

/// Stateless cookies (RFC 7296 §2.6): demanded once `threshold` half-open
/// SAs exist (`Some(0)`: always; `None`: never).
#[derive(Clone)]
pub struct CookiePolicy {
    pub threshold: Option<usize>,
    pub(crate) secret: [u8; 32],
}

impl std::fmt::Debug for CookiePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookiePolicy").field("threshold", &self.threshold).finish_non_exhaustive()
    }
}

/// A snapshot of one IKE SA for show commands and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub id: IkeSaId,
    pub connection: String,
    pub role: Role,
    pub established: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub children: Vec<ChildSaInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    pub id: ChildSaId,
    pub inbound_spi: Spi,
    pub outbound_spi: Spi,
    /// False once replaced by a rekey (kept only for packets in flight).
    pub active: bool,
    /// The negotiated ESP cipher.
    pub encr: crate::proposal::Encr,
    pub installed_at: Instant,
    /// Soft (rekey) and hard (expiry) lifetime ends, RFC 7296 §2.8.
    pub rekey_at: Instant,
    pub expire_at: Instant,
}

/// The IKEv2 engine.
pub struct Endpoint {
    conns: Vec<ConnectionConfig>,
    sas: BTreeMap<u64, IkeSa>,
    rng: Box<dyn Entropy + Send>,
    stats: Stats,
    next_child: u64,
    cookie: CookiePolicy,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("connections", &self.conns.len()).field("ike_sas", &self.sas.len()).finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn new(mut rng: Box<dyn Entropy + Send>) -> Self {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Endpoint { conns: Vec::new(), sas: BTreeMap::new(), rng, stats: Stats::default(), next_child: 0, cookie: CookiePolicy { threshold: None, secret } }
    }

    /// Demand cookies once this many half-open SAs exist (`None` = never).
    pub fn set_cookie_threshold(&mut self, threshold: Option<usize>) {
        self.cookie.threshold = threshold;
    }

    /// Adds a connection; with `StartAction::Start` it is initiated at once.
    pub fn add_connection(&mut self, conn: ConnectionConfig, now: Instant) -> (ConnectionId, Vec<Action>) {
        let start = conn.start_action == StartAction::Start && !conn.passive;
        self.conns.push(conn);
        let id = ConnectionId(self.conns.len() - 1);
        let actions = if start { self.initiate(id, now) } else { Vec::new() };
        (id, actions)
    }

    pub fn connection(&self, id: ConnectionId) -> Option<&ConnectionConfig> {
        self.conns.get(id.0)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Runs `f` with a context, then applies what it asked of other SAs.
    fn run<F: FnOnce(&mut Ctx<'_>, &mut BTreeMap<u64, IkeSa>)>(&mut self, now: Instant, f: F) -> Vec<Action> {
        let mut out = Vec::new();
        let half_open = self.sas.values().filter(|s| !s.initiator && s.state == IkeState::Authenticating).count();
        let mut ctx = Ctx {
            conns: &self.conns,
            rng: &mut *self.rng,
            out: &mut out,
            stats: &mut self.stats,
            now,
            next_child: &mut self.next_child,
            spawned: Vec::new(),
            initial_contact: Vec::new(),
            reinitiate: Vec::new(),
            adopt: Vec::new(),
            cookie: &self.cookie,
            half_open,
        };
        f(&mut ctx, &mut self.sas);
        for mut sa in std::mem::take(&mut ctx.spawned) {
            // A new SA may already have work queued (a redundant rekey's delete).
            sa.run_queue(&mut ctx);
            self.sas.insert(sa.id.0, sa);
        }
        for (target, children) in std::mem::take(&mut ctx.adopt) {
            if let Some(t) = self.sas.get_mut(&target.0) {
                t.children.extend(children);
            }
        }
        // INITIAL_CONTACT (RFC 7296 §2.4): older SAs with the same peer are stale.
        for (conn, peer, keep) in std::mem::take(&mut ctx.initial_contact) {
            for sa in self.sas.values_mut() {
                if sa.id != keep && sa.conn == conn && sa.peer_id.as_ref() == Some(&peer) && sa.state != IkeState::Dead {
                    sa.kill(&mut ctx, DownReason::InitialContact);
                }
            }
        }
        for conn in std::mem::take(&mut ctx.reinitiate) {
            if let Some(sa) = sa_init::initiate(&mut ctx, conn) {
                self.sas.insert(sa.id.0, sa);
            }
        }
        self.sas.retain(|_, sa| sa.state != IkeState::Dead);
        out
    }

    /// Starts an IKE SA (and its first Child SA) for a connection.
    pub fn initiate(&mut self, conn: ConnectionId, now: Instant) -> Vec<Action> {
        self.run(now, |ctx, sas| {
            if let Some(sa) = sa_init::initiate(ctx, conn.0) {
                sas.insert(sa.id.0, sa);
            }
        })
    }

    /// Trap: the dataplane saw traffic for `conn` with no SA; initiate unless
    /// an IKE SA for it exists or is being set up.
    pub fn acquire(&mut self, conn: ConnectionId, now: Instant) -> Vec<Action> {
        if self.sas.values().any(|s| s.conn == conn.0) || self.conns.get(conn.0).is_none_or(|c| c.passive) {
            return Vec::new();
        }
        self.initiate(conn, now)
    }

    /// Operator request: rekey a Child SA now.
    pub fn rekey_child(&mut self, ike: IkeSaId, child: ChildSaId, now: Instant) -> Vec<Action> {
        self.with_sa(ike, now, |sa, ctx| sa.queue_task(ctx, Task::RekeyChild(child)))
    }

    /// Operator request: rekey the IKE SA now.
    pub fn rekey_ike(&mut self, ike: IkeSaId, now: Instant) -> Vec<Action> {
        self.with_sa(ike, now, |sa, ctx| sa.queue_task(ctx, Task::RekeyIke))
    }

    /// Operator request: delete a Child SA (tells the peer).
    pub fn delete_child(&mut self, ike: IkeSaId, child: ChildSaId, now: Instant) -> Vec<Action> {
        self.with_sa(ike, now, |sa, ctx| sa.queue_task(ctx, Task::DeleteChild(child)))
    }

    /// Operator request: delete the IKE SA and its Child SAs (tells the peer).
    pub fn delete_ike(&mut self, ike: IkeSaId, now: Instant) -> Vec<Action> {
        self.with_sa(ike, now, |sa, ctx| {
            sa.queue.clear();
            sa.queue_task(ctx, Task::DeleteIke)
        })
    }

    /// The dataplane received ESP from this IKE SA's peer on an SPI it has
    /// no SA for: tell the peer with an INVALID_SPI notify in an
    /// INFORMATIONAL request (RFC 7296 §2.21.4, §3.10.1). Only on an
    /// established IKE SA; rate limiting is the caller's.
    pub fn notify_invalid_spi(&mut self, ike: IkeSaId, spi: Spi, now: Instant) -> Vec<Action> {
        self.with_sa(ike, now, |sa, ctx| {
            if sa.state == IkeState::Established {
                sa.queue_task(ctx, Task::InvalidSpi(spi));
            }
        })
    }

    fn with_sa<F: FnOnce(&mut IkeSa, &mut Ctx<'_>)>(&mut self, ike: IkeSaId, now: Instant, f: F) -> Vec<Action> {
        self.run(now, |ctx, sas| {
            if let Some(sa) = sas.get_mut(&ike.0) {
                f(sa, ctx);
            }
        })
    }

    /// Snapshot of the IKE SAs.
    pub fn ike_sas(&self) -> Vec<IkeSaInfo> {
        self.sas
            .values()
            .map(|sa| IkeSaInfo {
                id: sa.id,
                connection: self.conns.get(sa.conn).map(|c| c.name.clone()).unwrap_or_default(),
                role: sa.role(),
                established: sa.state == IkeState::Established,
                local: sa.local,
                remote: sa.remote,
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildSaInfo {
                        id: c.id,
                        inbound_spi: c.inbound_spi,
                        outbound_spi: c.outbound_spi,
                        active: matches!(c.state, ChildState::Installed | ChildState::Rekeying | ChildState::OutboundPending),
                        encr: c.proposal.encr,
                        installed_at: c.installed_at,
                        rekey_at: c.rekey_at,
                        expire_at: c.expire_at,
                    })
                    .collect(),
            })
            .collect()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(|sa| sa.next_timeout(self.conns.get(sa.conn)?)).min()
    }

    /// Retransmissions, rekeys, expiries, liveness checks due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        self.run(now, |ctx, sas| {
            for sa in sas.values_mut() {
                timeout(sa, ctx);
            }
        })
    }

    /// One received IKE datagram (without the non-ESP marker).
    pub fn handle_datagram(&mut self, local: SocketAddr, remote: SocketAddr, bytes: &[u8], now: Instant) -> Vec<Action> {
        self.run(now, |ctx, sas| dispatch(ctx, sas, local, remote, bytes))
    }
}

fn drop_msg(ctx: &mut Ctx<'_>, from: SocketAddr, exchange: Option<ExchangeType>, reason: DropReason) {
    ctx.stats.count(reason);
    ctx.event(Event::Dropped { from, exchange, reason });
}

fn dispatch(ctx: &mut Ctx<'_>, sas: &mut BTreeMap<u64, IkeSa>, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
    let header = match Header::new_checked(bytes) {
        Ok(h) => h,
        Err(WireError::MajorVersion(v)) => return other_version(ctx, local, remote, bytes, v),
        Err(_) => return drop_msg(ctx, remote, None, DropReason::Malformed),
    };
    let h = header.repr();
    let payloads = match parse_payloads(h.next_payload, header.body()) {
        Ok(p) => p,
        Err(e) => {
            // Only an unprotected IKE_SA_INIT request can be answered here
            // (RFC 7296 §2.5); anything else unauthenticated is dropped.
            if h.exchange == ExchangeType::IkeSaInit && !h.flags.response {
                if let WireError::UnsupportedCritical(t) = e {
                    ctx.stats.unsupported_critical += 1;
                    let n = NotifyPayload::new(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]);
                    sa_init::stateless_reply(ctx, local, remote, &h, n);
                    let answered = Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
                    let f = Failure { connection: None, role: Role::Responder, local, remote, exchange: h.exchange, kind: FailureKind::Malformed { error: e, answered } };
                    return ctx.event(Event::Failure(Box::new(f)));
                }
            }
            return drop_msg(ctx, remote, Some(h.exchange), DropReason::Malformed);
        }
    };
    if h.exchange == ExchangeType::IkeSaInit && !h.flags.response {
        if !h.flags.initiator || h.spi_r != 0 || h.message_id != 0 {
            return drop_msg(ctx, remote, Some(h.exchange), DropReason::Malformed);
        }
        // A retransmitted IKE_SA_INIT gets the same answer (RFC 7296 §2.1).
        if let Some(sa) = sas.values_mut().find(|s| !s.initiator && s.spi_i == h.spi_i && s.remote.ip() == remote.ip()) {
            if sa.init_request == bytes && !sa.init_response.is_empty() {
                ctx.stats.responses_replayed += 1;
                ctx.out.push(Action::Send { from: local, to: remote, bytes: sa.init_response.clone() });
            } else {
                drop_msg(ctx, remote, Some(h.exchange), DropReason::BadMessageId);
            }
            return;
        }
        if let Some(sa) = sa_init::responder_request(ctx, local, remote, &h, &payloads, bytes) {
            sas.insert(sa.id.0, sa);
        }
        return;
    }
    let ours = if h.flags.initiator { h.spi_r } else { h.spi_i };
    let Some(sa) = sas.get_mut(&ours) else {
        return drop_msg(ctx, remote, Some(h.exchange), DropReason::UnknownSpi);
    };
    if sa.state == IkeState::Dead || h.spi_i != sa.spi_i || (h.spi_r != sa.spi_r && h.exchange != ExchangeType::IkeSaInit) {
        return drop_msg(ctx, remote, Some(h.exchange), DropReason::UnknownSpi);
    }
    // The I flag names the original initiator; it must be the peer's role.
    if h.flags.initiator == sa.initiator {
        return drop_msg(ctx, remote, Some(h.exchange), DropReason::Malformed);
    }
    if h.flags.response {
        response(sa, ctx, local, remote, &h, &payloads, bytes);
    } else {
        request(sa, ctx, local, remote, &h, &payloads, bytes);
    }
    sa.run_queue(ctx);
}

/// IKEv1 (or a future version): INVALID_MAJOR_VERSION, unauthenticated
/// (RFC 7296 §2.5), and an event naming the problem.
fn other_version(ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, bytes: &[u8], v: u8) {
    let Some(h) = peek_any_version(bytes) else { return };
    ctx.stats.ikev1_answered += 1;
    let reply = HeaderRepr { exchange: ExchangeType::Informational, message_id: 0, ..h };
    sa_init::stateless_reply(ctx, local, remote, &reply, NotifyPayload::new(NotifyType::INVALID_MAJOR_VERSION, Vec::new()));
    let connection = ctx.conns.iter().find(|c| c.matches_addresses(local, remote)).map(|c| c.name.clone());
    let kind = if v == 1 { FailureKind::Ikev1Peer } else { FailureKind::Malformed { error: WireError::MajorVersion(v), answered: Some(NotifyType::INVALID_MAJOR_VERSION) } };
    let f = Failure { connection, role: Role::Responder, local, remote, exchange: ExchangeType::Unknown(h.exchange.into()), kind };
    ctx.event(Event::Failure(Box::new(f)));
}

/// Decrypts the SK payload and parses what is inside.
fn open_inner(sa: &IkeSa, bytes: &[u8], payloads: &[Payload]) -> Result<Result<Vec<Payload>, WireError>, DropReason> {
    let (Some(Payload::Sk(sk)), 1) = (payloads.last(), payloads.len()) else { return Err(DropReason::Malformed) };
    let cipher = sa.open.as_ref().ok_or(DropReason::WrongState)?;
    let plain = open_sk(cipher, bytes, sk).map_err(|_| DropReason::IntegrityFailed)?;
    Ok(parse_payloads(sk.first_inner, &plain))
}

/// After an authenticated message: follow the peer to a new address/port
/// (NAT-T float to 4500, RFC 7296 §2.23).
fn follow_peer(sa: &mut IkeSa, ctx: &Ctx<'_>, local: SocketAddr, remote: SocketAddr) {
    sa.last_heard = ctx.now;
    sa.local = local;
    sa.remote = remote;
}

fn response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, h: &HeaderRepr, p: &[Payload], bytes: &[u8]) {
    let matches = sa.outstanding.as_ref().is_some_and(|o| o.msg_id == h.message_id && o.exchange == h.exchange);
    if !matches {
        return drop_msg(ctx, remote, Some(h.exchange), DropReason::UnexpectedResponse);
    }
    if h.exchange == ExchangeType::IkeSaInit {
        let Some(o) = sa.outstanding.take() else { return };
        let Request::SaInit(req) = o.request else { return };
        return sa_init::initiator_response(sa, ctx, req, h, p, bytes);
    }
    let inner = match open_inner(sa, bytes, p) {
        Ok(Ok(inner)) => inner,
        Ok(Err(_)) => return drop_msg(ctx, remote, Some(h.exchange), DropReason::Malformed),
        Err(r) => return drop_msg(ctx, remote, Some(h.exchange), r),
    };
    let Some(o) = sa.outstanding.take() else { return };
    follow_peer(sa, ctx, local, remote);
    match o.request {
        Request::Auth(r) => auth::initiator_response(sa, ctx, *r, &inner),
        Request::CreateChild(r) => create_child::initiator_response(sa, ctx, *r, &inner),
        Request::Info(r) => informational::initiator_response(sa, ctx, r, &inner),
        Request::SaInit(_) => {}
    }
}

fn request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, h: &HeaderRepr, p: &[Payload], bytes: &[u8]) {
    let id = h.message_id;
    if let Some((cached_id, cached)) = &sa.cached_response {
        if id == *cached_id && id.wrapping_add(1) == sa.peer_next_id {
            ctx.stats.responses_replayed += 1;
            ctx.out.push(Action::Send { from: sa.local, to: sa.remote, bytes: cached.clone() });
            return;
        }
    }
    if id != sa.peer_next_id {
        return drop_msg(ctx, remote, Some(h.exchange), DropReason::BadMessageId);
    }
    let inner = match open_inner(sa, bytes, p) {
        Ok(r) => r,
        Err(r) => return drop_msg(ctx, remote, Some(h.exchange), r),
    };
    // Authenticated: this message ID is consumed whatever follows.
    sa.peer_next_id = sa.peer_next_id.wrapping_add(1);
    follow_peer(sa, ctx, local, remote);
    let inner = match inner {
        Ok(i) => i,
        Err(e) => {
            // Inside an authenticated message a defect is answered (RFC 7296 §2.5, §3.10.1).
            let (kind, data) = match e {
                WireError::UnsupportedCritical(t) => {
                    ctx.stats.unsupported_critical += 1;
                    (NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t])
                }
                _ => {
                    ctx.stats.malformed += 1;
                    (NotifyType::INVALID_SYNTAX, Vec::new())
                }
            };
            sa.failure(ctx, h.exchange, Role::Responder, FailureKind::Malformed { error: e, answered: Some(kind) });
            return sa.send_response(ctx, h.exchange, id, &[Payload::Notify(NotifyPayload::new(kind, data))]);
        }
    };
    match (h.exchange, sa.state) {
        (ExchangeType::IkeAuth, IkeState::Authenticating) if !sa.initiator => auth::responder_request(sa, ctx, id, &inner),
        (ExchangeType::CreateChildSa, IkeState::Established | IkeState::Rekeyed | IkeState::Deleting) => {
            create_child::responder_request(sa, ctx, id, &inner)
        }
        (ExchangeType::Informational, s) if s != IkeState::Authenticating || sa.initiator => {
            informational::responder_request(sa, ctx, id, &inner)
        }
        _ => {
            ctx.stats.count(DropReason::WrongState);
            sa.send_response(ctx, h.exchange, id, &[super::exchange::error(NotifyType::INVALID_SYNTAX)]);
        }
    }
}

fn timeout(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    if sa.state == IkeState::Dead {
        return;
    }
    let conn = sa.conn(ctx);
    let now = ctx.now;
    if let Some(o) = sa.outstanding.as_mut() {
        if o.next <= now {
            if o.retransmits >= conn.retransmit.tries {
                let (exchange, retransmits) = (o.exchange, o.retransmits);
                // A delete whose answer was lost: the peer already forgot
                // the SA (RFC 7296 §1.4.1), so this is not a failure.
                if matches!(sa.state, IkeState::Rekeyed | IkeState::Deleting) {
                    let reason = if sa.state == IkeState::Rekeyed { DownReason::Rekeyed } else { DownReason::DeletedLocally };
                    return sa.kill(ctx, reason);
                }
                let to = sa.remote;
                sa.failure(ctx, exchange, Role::Initiator, FailureKind::NoResponse { retransmits });
                sa.kill(ctx, DownReason::PeerUnreachable { to, retransmits });
                // A passive connection never initiates: neither restart nor trap.
                match conn.dpd_action {
                    DpdAction::Restart if !conn.passive => ctx.reinitiate.push(sa.conn),
                    DpdAction::Hold if !conn.passive => ctx.out.push(Action::Event(Event::Held { connection: conn.name.clone() })),
                    _ => {}
                }
                return;
            }
            o.retransmits += 1;
            o.next = now + conn.retransmit.delay(o.retransmits);
            ctx.stats.retransmits_sent += 1;
            let bytes = o.bytes.clone();
            ctx.out.push(Action::Send { from: sa.local, to: sa.remote, bytes });
        }
    }
    if !sa.initiator && sa.state == IkeState::Authenticating && now >= sa.created + HALF_OPEN_TIMEOUT {
        sa.state = IkeState::Dead;
        return;
    }
    if sa.state != IkeState::Established {
        return;
    }
    sa.keepalive(ctx);
    if sa.expire_at.is_some_and(|t| t <= now) {
        informational::send_delete_ike_oneshot(sa, ctx);
        return sa.kill(ctx, DownReason::Expired);
    }
    if !conn.passive && sa.rekey_at.is_some_and(|t| t <= now) {
        sa.rekey_at = None;
        sa.queue_task(ctx, Task::RekeyIke);
    }
    if let Some(i) = conn.dpd_interval {
        if sa.outstanding.is_none() && sa.last_heard + i <= now {
            sa.last_heard = now;
            sa.queue_task(ctx, Task::Liveness);
        }
    }
    let mut tasks = Vec::new();
    let mut removals = Vec::new();
    for c in sa.children.iter_mut() {
        match c.state {
            ChildState::Rekeyed { remove_at } if remove_at <= now => removals.push((c.id, DownReason::Rekeyed)),
            _ if c.expire_at <= now && c.state != ChildState::Deleting => {
                c.expired = true;
                c.expire_at = now + conn.retransmit.delay(conn.retransmit.tries + 1);
                tasks.push(Task::DeleteChild(c.id));
            }
            ChildState::Installed if !conn.passive && c.rekey_at <= now => {
                // Fire once; the hard lifetime catches a failed rekey.
                c.rekey_at = c.expire_at;
                tasks.push(Task::RekeyChild(c.id));
            }
            _ => {}
        }
    }
    for (id, reason) in removals {
        sa.remove_child(ctx, id, reason);
    }
    for t in tasks {
        sa.queue_task(ctx, t);
    }
}

#[cfg(test)]
mod tests;
