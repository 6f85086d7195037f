//! State of one IKE SA and its Child SAs, and the message plumbing every
//! exchange shares: message IDs, window of one, retransmission, the cached
//! response for duplicate requests (RFC 7296 §2.1-§2.3), SK protection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::action::{
    Action, ChildSaId, ChildSaInstall, ChildSaRemove, Directions, DownReason, Event, IkeSaId, NatState, Role, Spi,
    Stats, UdpEncap,
};
use super::connection::{ConnectionConfig, Lifetime};
use super::crypto::{seal_sk, ChildKeys, Entropy, IkeKeys, SkCipher};
use super::exchange::create_child::CreateChildRequest;
use super::exchange::auth::AuthRequest;
use super::exchange::informational::InfoRequest;
use super::exchange::sa_init::InitRequest;
use super::failure::{Failure, FailureKind};
use super::wire::{emit_payloads, ExchangeType, Flags, HeaderRepr, Payload, PayloadType, HEADER_LEN};
use crate::identity::Identity;
use crate::proposal::ChosenProposal;
use crate::selector::TrafficSelector;

/// NAT-T port (RFC 3948, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;
/// A responder's half-open IKE SA is forgotten after this long.
pub(crate) const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything an exchange handler may touch outside its own IKE SA.
pub(crate) struct Ctx<'a> {
    pub conns: &'a [ConnectionConfig],
    pub rng: &'a mut dyn Entropy,
    pub out: &'a mut Vec<Action>,
    pub stats: &'a mut Stats,
    pub now: Instant,
    pub next_child: &'a mut u64,
    /// IKE SAs created by a rekey, added to the table after the handler.
    pub spawned: Vec<IkeSa>,
    /// (connection, peer ID, the SA that announced it) for INITIAL_CONTACT.
    pub initial_contact: Vec<(usize, Identity, IkeSaId)>,
    /// Connections to initiate again (DPD restart).
    pub reinitiate: Vec<usize>,
    /// Child SAs to move to another IKE SA (lost IKE rekey collision).
    pub adopt: Vec<(IkeSaId, Vec<ChildSa>)>,
    pub cookie: &'a super::endpoint::CookiePolicy,
    pub half_open: usize,
}

impl Ctx<'_> {
    pub fn event(&mut self, e: Event) {
        self.out.push(Action::Event(e));
    }
    pub fn random(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }
    pub fn random_u64(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let v = u64::from_be_bytes(b);
            if v != 0 {
                return v;
            }
        }
    }
    /// A fresh inbound ESP SPI (values below 256 are reserved, RFC 4303 §2.1).
    pub fn random_spi(&mut self) -> Spi {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let v = u32::from_be_bytes(b);
            if v >= 256 {
                return Spi(v);
            }
        }
    }
    pub fn child_id(&mut self) -> ChildSaId {
        *self.next_child += 1;
        ChildSaId(*self.next_child)
    }
    /// `base - random(0..=jitter)`.
    pub fn jittered(&mut self, lt: &Lifetime) -> (Instant, Instant) {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b);
        let j = lt.jitter.as_millis() as u64;
        let cut = if j == 0 { 0 } else { u64::from_be_bytes(b) % (j + 1) };
        let rekey = lt.rekey.saturating_sub(Duration::from_millis(cut));
        (self.now + rekey, self.now + lt.life)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent. Responder: IKE_SA_INIT answered.
    Authenticating,
    Established,
    /// Replaced by a rekeyed SA; only the delete remains.
    Rekeyed,
    /// Being deleted; no new exchanges.
    Deleting,
    /// Gone; removed from the table after this event loop turn.
    Dead,
}

/// Our outstanding request (window size 1, RFC 7296 §2.3).
pub(crate) struct Outstanding {
    pub msg_id: u32,
    pub bytes: Vec<u8>,
    pub retransmits: u32,
    pub next: Instant,
    pub exchange: ExchangeType,
    pub request: Request,
}

pub(crate) enum Request {
    SaInit(Box<InitRequest>),
    Auth(Box<AuthRequest>),
    CreateChild(Box<CreateChildRequest>),
    Info(InfoRequest),
}

/// Work waiting for the window to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    RekeyChild(ChildSaId),
    RekeyIke,
    DeleteChild(ChildSaId),
    DeleteIke,
    Liveness,
    /// Tell the peer about ESP on an SPI we do not know (RFC 7296 §2.21.4).
    InvalidSpi(Spi),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Installed,
    /// We sent a rekey request for it.
    Rekeying,
    /// Responder of a rekey: new inbound installed, outbound waits for the
    /// delete of the old SA (make-before-break).
    OutboundPending,
    /// Replaced; the old inbound lives until `remove_at` for packets in flight.
    Rekeyed { remove_at: Instant },
    Deleting,
}

pub(crate) struct ChildSa {
    pub id: ChildSaId,
    pub inbound_spi: Spi,
    pub outbound_spi: Spi,
    pub proposal: ChosenProposal,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub inbound_key: Zeroizing<Vec<u8>>,
    pub outbound_key: Zeroizing<Vec<u8>>,
    pub state: ChildState,
    /// When it was installed (for `show child-sa`).
    pub installed_at: Instant,
    pub rekey_at: Instant,
    pub expire_at: Instant,
    /// The lowest nonce of the exchange that created it (RFC 7296 §2.8.1).
    pub min_nonce: Vec<u8>,
    pub replaces: Option<ChildSaId>,
    /// Set on an old SA once a rekey has created its successor.
    pub replaced_by: Option<ChildSaId>,
    /// Set on an old SA when the peer's rekey of it collided with ours.
    pub peer_rekey: Option<ChildSaId>,
    /// A duplicate from a rekey collision that we delete (RFC 7296 §2.8.1).
    pub redundant: bool,
    /// Reached its hard lifetime; being deleted.
    pub expired: bool,
    /// The PFS group the peer asked for with INVALID_KE_PAYLOAD.
    pub pfs_hint: Option<crate::proposal::DhGroup>,
    /// INVALID_KE_PAYLOAD retries of rekeys of this SA: capped so a peer that keeps
    /// asking for another of our groups cannot make us rekey forever.
    pub pfs_retries: u8,
}

impl ChildSa {
    /// Keys from KEYMAT: the initiator of the creating exchange sends with
    /// the initiator-to-responder key (RFC 7296 §2.17).
    pub fn keys(keys: ChildKeys, we_initiated: bool) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
        if we_initiated {
            (keys.responder_to_initiator, keys.initiator_to_responder)
        } else {
            (keys.initiator_to_responder, keys.responder_to_initiator)
        }
    }
}

pub(crate) struct IkeSa {
    pub id: IkeSaId,
    pub conn: usize,
    pub spi_i: u64,
    pub spi_r: u64,
    /// Original initiator (the I flag, RFC 7296 §3.1).
    pub initiator: bool,
    pub state: IkeState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat: NatState,
    pub proposal: Option<ChosenProposal>,
    pub keys: Option<IkeKeys>,
    pub seal: Option<SkCipher>,
    pub open: Option<SkCipher>,
    pub iv: u64,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// IKE_SA_INIT request and response as sent, signed by AUTH (§2.15).
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    pub peer_id: Option<Identity>,
    pub next_msg_id: u32,
    pub outstanding: Option<Outstanding>,
    pub queue: VecDeque<Task>,
    pub peer_next_id: u32,
    pub cached_response: Option<(u32, Vec<u8>)>,
    pub children: Vec<ChildSa>,
    pub rekey_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    pub created: Instant,
    pub last_heard: Instant,
    pub rekey_of: Option<IkeSaId>,
    /// Set when the peer's IKE rekey collided with ours: the SA it created
    /// and that exchange's lowest nonce.
    pub peer_rekey: Option<(IkeSaId, Vec<u8>)>,
    /// Lowest nonce of the exchange that created this SA (§2.8.1).
    pub min_nonce: Vec<u8>,
    /// When the last NAT keepalive went out (creation time before the first).
    pub keepalive_base: Instant,
}

impl IkeSa {
    pub fn new(id: IkeSaId, conn: usize, initiator: bool, local: SocketAddr, remote: SocketAddr, now: Instant) -> Self {
        IkeSa {
            id,
            conn,
            spi_i: 0,
            spi_r: 0,
            initiator,
            state: if initiator { IkeState::InitSent } else { IkeState::Authenticating },
            local,
            remote,
            nat: NatState::default(),
            proposal: None,
            keys: None,
            seal: None,
            open: None,
            iv: 0,
            ni: Vec::new(),
            nr: Vec::new(),
            init_request: Vec::new(),
            init_response: Vec::new(),
            peer_id: None,
            next_msg_id: 0,
            outstanding: None,
            queue: VecDeque::new(),
            peer_next_id: 0,
            cached_response: None,
            children: Vec::new(),
            rekey_at: None,
            expire_at: None,
            created: now,
            last_heard: now,
            rekey_of: None,
            peer_rekey: None,
            min_nonce: Vec::new(),
            keepalive_base: now,
        }
    }

    pub fn conn<'c>(&self, ctx: &Ctx<'c>) -> &'c ConnectionConfig {
        // `conn` indexes the endpoint's connection list, which only grows.
        &ctx.conns[self.conn.min(ctx.conns.len().saturating_sub(1))]
    }

    pub fn role(&self) -> Role {
        if self.initiator { Role::Initiator } else { Role::Responder }
    }

    pub fn encap(&self, conn: &ConnectionConfig) -> bool {
        conn.force_encap || self.nat.local_behind_nat || self.nat.remote_behind_nat
    }

    /// Moves IKE to port 4500 (RFC 7296 §2.23, RFC 3948).
    pub fn float_to_nat_t(&mut self) {
        self.local.set_port(NAT_T_PORT);
        self.remote.set_port(NAT_T_PORT);
    }

    fn header(&self, exchange: ExchangeType, msg_id: u32, response: bool) -> HeaderRepr {
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::None,
            exchange,
            flags: Flags { initiator: self.initiator, response },
            message_id: msg_id,
            length: 0,
        }
    }

    /// Serialises a message: plain for IKE_SA_INIT, SK-protected otherwise.
    pub fn build(&mut self, exchange: ExchangeType, msg_id: u32, response: bool, payloads: &[Payload]) -> Option<Vec<u8>> {
        let mut header = self.header(exchange, msg_id, response);
        if exchange == ExchangeType::IkeSaInit {
            let mut body = Vec::new();
            header.next_payload = emit_payloads(payloads, &mut body).ok()?;
            header.length = u32::try_from(HEADER_LEN + body.len()).ok()?;
            let mut out = Vec::with_capacity(HEADER_LEN + body.len());
            header.emit(&mut out);
            out.extend_from_slice(&body);
            return Some(out);
        }
        self.iv += 1;
        seal_sk(self.seal.as_ref()?, header, payloads, self.iv).ok()
    }

    /// Sends a request now if the window is free (RFC 7296 §2.3, window 1).
    pub fn send_request(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, payloads: &[Payload], request: Request) -> bool {
        if self.outstanding.is_some() {
            return false;
        }
        let msg_id = self.next_msg_id;
        let Some(bytes) = self.build(exchange, msg_id, false, payloads) else { return false };
        if exchange == ExchangeType::IkeSaInit {
            self.init_request = bytes.clone();
        }
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        ctx.out.push(Action::Send { from: self.local, to: self.remote, bytes: bytes.clone() });
        let next = ctx.now + self.conn(ctx).retransmit.delay(0);
        self.outstanding = Some(Outstanding { msg_id, bytes, retransmits: 0, next, exchange, request });
        true
    }

    /// Resends an IKE_SA_INIT request after COOKIE or INVALID_KE_PAYLOAD:
    /// same message ID 0, new content, fresh retransmission schedule.
    pub fn resend_init(&mut self, ctx: &mut Ctx<'_>, payloads: &[Payload], request: Request) {
        self.outstanding = None;
        self.next_msg_id = 0;
        self.send_request(ctx, ExchangeType::IkeSaInit, payloads, request);
    }

    /// Sends a response and keeps it for duplicate requests (RFC 7296 §2.1).
    pub fn send_response(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, msg_id: u32, payloads: &[Payload]) {
        let Some(bytes) = self.build(exchange, msg_id, true, payloads) else { return };
        if exchange == ExchangeType::IkeSaInit {
            self.init_response = bytes.clone();
        }
        ctx.out.push(Action::Send { from: self.local, to: self.remote, bytes: bytes.clone() });
        self.cached_response = Some((msg_id, bytes));
    }

    pub fn failure(&self, ctx: &mut Ctx<'_>, exchange: ExchangeType, role: Role, kind: FailureKind) {
        let f = Failure {
            connection: Some(self.conn(ctx).name.clone()),
            role,
            local: self.local,
            remote: self.remote,
            exchange,
            kind,
        };
        ctx.event(Event::Failure(Box::new(f)));
    }

    pub fn install(&self, ctx: &mut Ctx<'_>, child: &ChildSa, directions: Directions) {
        let conn = self.conn(ctx);
        let encap = self.encap(conn).then_some(UdpEncap { local_port: self.local.port(), remote_port: self.remote.port() });
        let install = ChildSaInstall {
            ike_sa: self.id,
            child: child.id,
            connection: conn.name.clone(),
            directions,
            local: self.local.ip(),
            remote: self.remote.ip(),
            encap,
            encr: child.proposal.encr,
            esn: child.proposal.esn.is_some_and(|e| e == crate::proposal::Esn::Yes),
            inbound_spi: child.inbound_spi,
            outbound_spi: child.outbound_spi,
            inbound_key: child.inbound_key.clone(),
            outbound_key: child.outbound_key.clone(),
            local_ts: child.local_ts.clone(),
            remote_ts: child.remote_ts.clone(),
            replaces: child.replaces,
        };
        ctx.out.push(Action::InstallChildSa(Box::new(install)));
    }

    pub fn child_up(&self, ctx: &mut Ctx<'_>, child: &ChildSa) {
        let conn = self.conn(ctx);
        let e = Event::ChildSaUp {
            ike_sa: self.id,
            child: child.id,
            connection: conn.name.clone(),
            proposal: child.proposal,
            local_ts: child.local_ts.clone(),
            remote_ts: child.remote_ts.clone(),
            inbound_spi: child.inbound_spi,
            outbound_spi: child.outbound_spi,
            encap: self.encap(conn),
            rekey_of: child.replaces,
        };
        ctx.event(e);
    }

    /// Removes one Child SA from the dataplane and reports it.
    pub fn remove_child(&mut self, ctx: &mut Ctx<'_>, id: ChildSaId, reason: DownReason) {
        let Some(pos) = self.children.iter().position(|c| c.id == id) else { return };
        let c = self.children.remove(pos);
        let reason = if c.expired { DownReason::Expired } else { reason };
        // A responder's new SA whose outbound was never switched has no outbound half.
        let directions = if c.state == ChildState::OutboundPending { Directions::InboundOnly } else { Directions::Both };
        ctx.out.push(Action::RemoveChildSa(ChildSaRemove {
            ike_sa: self.id,
            child: c.id,
            directions,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
        }));
        let connection = self.conn(ctx).name.clone();
        ctx.event(Event::ChildSaDown { ike_sa: self.id, child: c.id, connection, reason });
    }

    /// Ends the IKE SA: every Child SA removed, then the IKE SA reported down.
    pub fn kill(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        if self.state == IkeState::Dead {
            return;
        }
        let ids: Vec<ChildSaId> = self.children.iter().map(|c| c.id).collect();
        for id in ids {
            self.remove_child(ctx, id, reason.clone());
        }
        self.state = IkeState::Dead;
        self.outstanding = None;
        self.queue.clear();
        let connection = self.conn(ctx).name.clone();
        ctx.event(Event::IkeSaDown { ike_sa: self.id, connection, reason });
    }

    pub fn child_mut(&mut self, id: ChildSaId) -> Option<&mut ChildSa> {
        self.children.iter_mut().find(|c| c.id == id)
    }

    pub fn child_by_outbound(&self, spi: Spi) -> Option<&ChildSa> {
        self.children.iter().find(|c| c.outbound_spi == spi)
    }

    /// Queues a task (once) and starts it if the window is free.
    pub fn queue_task(&mut self, ctx: &mut Ctx<'_>, t: Task) {
        if !self.queue.contains(&t) {
            self.queue.push_back(t);
        }
        self.run_queue(ctx);
    }

    pub fn run_queue(&mut self, ctx: &mut Ctx<'_>) {
        use super::exchange::{create_child, informational};
        while self.outstanding.is_none() && matches!(self.state, IkeState::Established | IkeState::Rekeyed | IkeState::Deleting) {
            let Some(t) = self.queue.pop_front() else { return };
            match t {
                Task::RekeyChild(id) => create_child::start_child_rekey(self, ctx, id),
                Task::RekeyIke => create_child::start_ike_rekey(self, ctx),
                Task::DeleteChild(id) => informational::start_delete_child(self, ctx, id),
                Task::DeleteIke => informational::start_delete_ike(self, ctx),
                Task::Liveness => informational::start_liveness(self, ctx),
                Task::InvalidSpi(spi) => informational::start_invalid_spi(self, ctx, spi),
            }
        }
    }

    /// When the next NAT keepalive is due: only while established and only
    /// when our own NAT_DETECTION_DESTINATION_IP check failed, i.e. WE are
    /// behind a NAT (RFC 7296 §2.23, RFC 3948 §2.3). A peer that is behind a
    /// NAT (or fakes one, strongSwan with kernel-libipsec) keeps its own
    /// mapping alive; an old SA replaced by a rekey stops (its successor,
    /// which inherited the NAT state, takes over).
    pub fn keepalive_due(&self, conn: &ConnectionConfig) -> Option<Instant> {
        if self.state != IkeState::Established || !self.nat.local_behind_nat {
            return None;
        }
        conn.nat_keepalive.map(|i| self.keepalive_base + i)
    }

    /// Sends a NAT keepalive if one is due.
    pub fn keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if self.keepalive_due(self.conn(ctx)).is_some_and(|t| t <= ctx.now) {
            self.keepalive_base = ctx.now;
            ctx.out.push(Action::SendNatKeepalive { from: self.local, to: self.remote });
        }
    }

    /// The earliest time this SA needs `handle_timeout`.
    pub fn next_timeout(&self, conn: &ConnectionConfig) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.state == IkeState::Dead {
            return None;
        }
        consider(self.outstanding.as_ref().map(|o| o.next));
        if !self.initiator && self.state == IkeState::Authenticating {
            consider(Some(self.created + HALF_OPEN_TIMEOUT));
        }
        if self.state == IkeState::Established {
            if !conn.passive {
                consider(self.rekey_at);
            }
            consider(self.expire_at);
            consider(self.keepalive_due(conn));
            if let (Some(i), None) = (conn.dpd_interval, &self.outstanding) {
                consider(Some(self.last_heard + i));
            }
            for c in &self.children {
                match c.state {
                    ChildState::Installed if !conn.passive => consider(Some(c.rekey_at)),
                    ChildState::Rekeyed { remove_at } => consider(Some(remove_at)),
                    _ => {}
                }
                consider(Some(c.expire_at));
            }
        }
        t
    }
}
