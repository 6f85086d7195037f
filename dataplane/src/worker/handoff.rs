//! SA ownership across workers and the handoff of packets to the owning worker:
//! ESP of an inbound SA to the worker that decrypts it, plaintext of an outbound
//! SA to the worker that encrypts for it.
//!
//! The replay window of an inbound SA (RFC 4303 §3.4.3) is updated with plain
//! loads and stores, so exactly one worker may decapsulate an SA's packets. With
//! several workers, every inbound SA has an owner ([`Ownership::owner_of`], by an
//! [`OwnerRule`]): by default the first worker that receives the SA's ESP and
//! authenticates it, or the SPI modulo the number of workers. A worker that receives ESP for an SA it does
//! not own hands the packet (Ethernet header stripped) to the owner through a
//! single-producer/single-consumer ring per (from, to) pair of workers, in
//! bursts; the owner decapsulates what it finds in its incoming rings
//! ([`Worker::process_handoff`]). Nothing blocks: a full ring drops the packets
//! that do not fit, counted as [`DropReason::HandoffRingFull`].
//!
//! With the first receiver as owner, a port that spreads frames by a flow hash
//! (RSS on the SPI or the outer header, af_packet's fanout) delivers each SA to
//! its owner and nothing is handed over; a port that does not hash
//! (net_pcap, net_ring, one queue) delivers everything to one worker, which then
//! owns every SA. The SPI rule spreads decryption over the workers in that case,
//! at a handoff per packet that arrives elsewhere.
//!
//! Outbound SAs get an owner by the same rule ([`Encrypt::Owner`], the default):
//! the sequence counter is reserved per burst with one atomic add
//! (`esp::OutboundState::reserve`), so any worker could encrypt for any SA, but
//! then each worker sends its burst's block of numbers when its burst is done,
//! and a burst that finishes after a later-reserved one arrives behind it by up
//! to a burst per worker. A peer's anti-replay window (RFC 4303 §3.4.3; 32
//! packets in strongSwan's default configuration, 64 in many others) drops what
//! falls behind it. One encrypting worker per SA sends it in order; the others
//! hand it the SA's plaintext (Ethernet header stripped, TTL already
//! decremented), as with inbound ESP. [`Encrypt::AnyWorker`] keeps the parallel
//! encryption for peers with wide windows.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use super::{enqueue, flush_decap, flush_encap, Class, Groups, InboundTunnel, Out, OutboundTunnel, Worker, WorkerIo, ENCAP_L2};
use crate::drop::DropReason;
use crate::esp::{InboundState, OutboundState, BURST};
use crate::packet::Packet;
use crate::sa::Spi;
use crate::stats::CoreStats;

/// How the workers agree on an inbound SA's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRule {
    /// The first worker that receives the SA's ESP and authenticates it claims
    /// it ([`InboundState::claim`]); until then any worker that receives the
    /// SA's ESP opens it, so forged ESP with the SA's SPI (the SPI is on the
    /// wire) cannot choose the owner. Where the port spreads frames over its queues
    /// by a flow hash (RSS on the SPI or on the outer addresses and ports,
    /// af_packet's fanout), every packet of an SA arrives on the queue of the
    /// worker that claimed it, and none is handed over: the owner is whichever
    /// worker the port's hash picks, without repeating the hash in software.
    FirstReceiver,
    /// The SPI modulo the number of workers. Decryption spreads over the
    /// workers even when one queue receives all ESP (one peer behind NAT, a
    /// port that does not hash), at one handoff for every packet that arrives
    /// elsewhere; static SAs can be placed on a worker by their SPI.
    Spi,
}

impl OwnerRule {
    /// The worker that decrypts the inbound SA `spi` (runtime state `state`)
    /// among `workers`, as far as it is settled: SPI mod workers under
    /// [`OwnerRule::Spi`], otherwise the worker that claimed it; `None` before
    /// a claim, and with one worker (nobody claims then). For what operators
    /// see (`show`, the exit report); workers ask [`Ownership`].
    pub fn decrypting_worker(self, workers: u32, spi: Spi, state: &InboundState) -> Option<u32> {
        match self {
            OwnerRule::Spi if workers > 1 => Some(spi.0 % workers),
            _ => state.claimed_by(),
        }
    }
}

/// Which workers encrypt for an outbound SA (`[dpdk].encrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    /// One worker per SA, found by the [`OwnerRule`] (the first worker that
    /// sends on it, or its outbound SPI modulo the number of workers); the
    /// others hand it the SA's plaintext. The SA's ESP leaves in sequence-number
    /// order, and one SA is as fast as one worker.
    Owner,
    /// Every worker encrypts what it receives for any SA: one SA spreads over
    /// the workers, and its ESP leaves out of order by up to a burst per worker,
    /// which the peer's anti-replay window has to cover (the module doc).
    AnyWorker,
}

impl OwnerRule {
    /// The worker that encrypts for the outbound SA `spi` (state `state`) among
    /// `workers` under `encrypt`, as far as it is settled (as
    /// [`Self::decrypting_worker`]); `None` under [`Encrypt::AnyWorker`].
    pub fn encrypting_worker(self, encrypt: Encrypt, workers: u32, spi: Spi, state: &OutboundState) -> Option<u32> {
        match (encrypt, self) {
            (Encrypt::AnyWorker, _) => None,
            (Encrypt::Owner, OwnerRule::Spi) if workers > 1 => Some(spi.0 % workers),
            (Encrypt::Owner, _) => state.owner().claimed_by(),
        }
    }
}

/// Which worker owns which SA, as seen by worker `me` of `workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    me: u32,
    workers: u32,
    rule: OwnerRule,
    encrypt: Encrypt,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership::single()
    }
}

impl Ownership {
    /// One worker owns every SA.
    pub const fn single() -> Self {
        Ownership { me: 0, workers: 1, rule: OwnerRule::Spi, encrypt: Encrypt::Owner }
    }

    /// Worker `me` of `workers`, owners by [`OwnerRule::Spi`]; `None` unless `me < workers`.
    pub fn new(me: usize, workers: usize) -> Option<Self> {
        let (me, workers) = (u32::try_from(me).ok()?, u32::try_from(workers).ok()?);
        (me < workers).then_some(Ownership { me, workers, rule: OwnerRule::Spi, encrypt: Encrypt::Owner })
    }

    /// The same view with owners found by `rule`.
    pub fn with_rule(self, rule: OwnerRule) -> Self {
        Ownership { rule, ..self }
    }

    /// The same view with outbound SAs encrypted as `encrypt` says.
    pub fn with_encrypt(self, encrypt: Encrypt) -> Self {
        Ownership { encrypt, ..self }
    }

    /// This worker's index.
    pub fn me(&self) -> usize {
        self.me as usize
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers as usize
    }

    /// The owner of the inbound SA with `spi` by [`OwnerRule::Spi`]: SPI modulo
    /// the number of workers. Peers pick SPIs at random (RFC 7296 §3.3.1), which
    /// spreads SAs evenly.
    #[inline]
    pub fn owner(&self, spi: Spi) -> usize {
        (spi.0 % self.workers) as usize
    }

    /// Whether this worker decapsulates the inbound SA `sa`'s packets: it owns
    /// it, or (under [`OwnerRule::FirstReceiver`]) nobody has claimed it yet.
    /// In that case the claim comes after authentication ([`Self::claimant`]).
    #[inline(always)]
    pub fn owns(&self, sa: &InboundTunnel) -> bool {
        // One worker reads nothing of the SA.
        self.workers == 1 || self.owner_of(sa.sa.spi(), &sa.state) == self.me()
    }

    /// The owner of the inbound SA with `spi` and runtime state `state` by this
    /// view's rule; under [`OwnerRule::FirstReceiver`], this worker while
    /// nobody has claimed it.
    #[inline]
    pub fn owner_of(&self, spi: Spi, state: &InboundState) -> usize {
        match self.rule {
            OwnerRule::Spi => self.owner(spi),
            OwnerRule::FirstReceiver => state.claimed_by().unwrap_or(self.me) as usize,
        }
    }

    /// The worker that encrypts for the outbound SA `sa`: this one with one
    /// worker or [`Encrypt::AnyWorker`], otherwise the SA's owner by the rule;
    /// under [`OwnerRule::FirstReceiver`] this worker claims an SA nobody has
    /// (plaintext has nothing to authenticate, and whoever sends first is as
    /// good an owner as any).
    #[inline(always)]
    pub fn encrypter(&self, sa: &OutboundTunnel) -> usize {
        if self.encrypts_every_sa() {
            return self.me();
        }
        match self.rule {
            OwnerRule::Spi => self.owner(sa.sa.spi()),
            OwnerRule::FirstReceiver => sa.state.owner().claim(self.me) as usize,
        }
    }

    /// Whether this worker encrypts for every outbound SA: with one worker, or
    /// [`Encrypt::AnyWorker`] (the worker asks once per burst).
    #[inline(always)]
    pub fn encrypts_every_sa(&self) -> bool {
        self.workers == 1 || self.encrypt == Encrypt::AnyWorker
    }

    /// The worker index to claim an inbound SA as, once a packet of it has
    /// authenticated ([`crate::esp::decap_burst_classified`]): this worker's under
    /// [`OwnerRule::FirstReceiver`] with several workers, `None` where owners
    /// need no claim.
    #[inline]
    pub fn claimant(&self) -> Option<u32> {
        (self.rule == OwnerRule::FirstReceiver && self.workers > 1).then_some(self.me)
    }
}

/// The sending end of one (from, to) handoff ring. Only the worker `from`
/// holds it (single producer).
pub trait HandoffSender<P>: Send {
    /// Move packets from the front of `pkts` (a run of `Some`) into the ring,
    /// leaving `None` behind; returns how many moved. Never blocks.
    fn send(&mut self, pkts: &mut [Option<P>]) -> usize;
}

/// The receiving end of one (from, to) handoff ring, held by worker `to`.
pub trait HandoffReceiver<P>: Send {
    /// Fill `slots` (all `None`) from the front; returns how many it filled.
    fn receive(&mut self, slots: &mut [Option<P>]) -> usize;
}

/// A heap ring for tests, benches and heap packets (crossbeam's bounded
/// lock-free queue); the gateway uses DPDK SP/SC rings of mbufs.
impl<P: Send> HandoffSender<P> for Arc<ArrayQueue<P>> {
    fn send(&mut self, pkts: &mut [Option<P>]) -> usize {
        let mut n = 0;
        for slot in pkts.iter_mut() {
            let Some(p) = slot.take() else { break };
            if let Err(p) = self.push(p) {
                *slot = Some(p);
                break;
            }
            n += 1;
        }
        n
    }
}

impl<P: Send> HandoffReceiver<P> for Arc<ArrayQueue<P>> {
    fn receive(&mut self, slots: &mut [Option<P>]) -> usize {
        let mut n = 0;
        for slot in slots.iter_mut() {
            match self.pop() {
                Some(p) => *slot = Some(p),
                None => break,
            }
            n += 1;
        }
        n
    }
}

/// Handoff counters of one worker (it writes, anyone reads).
#[derive(Debug, Default)]
pub struct HandoffCounts {
    /// Packets this worker put into another worker's ring.
    pub sent: AtomicU64,
    /// Packets this worker took from its incoming rings.
    pub received: AtomicU64,
    /// Packets dropped because the owner's ring was full.
    pub ring_full: AtomicU64,
    /// Plaintext of outbound SAs staged for the worker that encrypts for them
    /// (sent, or dropped on a full ring); the rest of `sent` is ESP.
    pub plain: AtomicU64,
}

impl HandoffCounts {
    #[inline]
    fn bump(c: &AtomicU64, n: usize) {
        // Single writer: load + store, no read-modify-write.
        c.store(c.load(Relaxed) + n as u64, Relaxed);
    }
}

/// Counters of every worker, cache-line apart.
#[derive(Debug)]
pub struct HandoffStats {
    workers: Box<[CachePadded<HandoffCounts>]>,
}

impl HandoffStats {
    fn new(workers: usize) -> Self {
        HandoffStats { workers: (0..workers).map(|_| CachePadded::new(HandoffCounts::default())).collect() }
    }

    /// Worker `w`'s counters.
    pub fn worker(&self, w: usize) -> Option<&HandoffCounts> {
        self.workers.get(w).map(|c| &**c)
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// True with no workers.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }
}

/// Packets staged for one owner, sent when the burst ends or the stage fills.
struct Outgoing<P, S> {
    ring: S,
    staged: [Option<P>; BURST],
    len: usize,
}

/// One worker's handoff endpoints: a ring to every other worker and one from
/// each. Built once per worker by [`Handoff::mesh`]; nothing allocates after.
pub struct Handoff<P, S, R> {
    ownership: Ownership,
    /// Indexed by owner; `None` at this worker's own index.
    out: Box<[Option<Outgoing<P, S>>]>,
    incoming: Box<[R]>,
    inbox: [Option<P>; BURST],
    next_in: usize,
    stats: Arc<HandoffStats>,
}

impl<P, S, R> core::fmt::Debug for Handoff<P, S, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handoff").field("ownership", &self.ownership).field("rings_in", &self.incoming.len()).finish_non_exhaustive()
    }
}

impl<P, S: HandoffSender<P>, R: HandoffReceiver<P>> Handoff<P, S, R> {
    /// Endpoints for `workers` workers (index = worker) and their shared
    /// counters; `ring(from, to)` makes the two ends of one ring.
    pub fn mesh<E>(
        workers: usize,
        mut ring: impl FnMut(usize, usize) -> Result<(S, R), E>,
    ) -> Result<(Vec<Self>, Arc<HandoffStats>), E> {
        let stats = Arc::new(HandoffStats::new(workers));
        let mut senders: Vec<Vec<Option<Outgoing<P, S>>>> = (0..workers).map(|_| Vec::with_capacity(workers)).collect();
        let mut receivers: Vec<Vec<R>> = (0..workers).map(|_| Vec::with_capacity(workers)).collect();
        for (from, out) in senders.iter_mut().enumerate() {
            for (to, inbound) in receivers.iter_mut().enumerate() {
                if from == to {
                    out.push(None);
                    continue;
                }
                let (s, r) = ring(from, to)?;
                out.push(Some(Outgoing { ring: s, staged: std::array::from_fn(|_| None), len: 0 }));
                inbound.push(r);
            }
        }
        let ends = senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(me, (out, incoming))| Handoff {
                ownership: Ownership::new(me, workers).unwrap_or_default(),
                out: out.into(),
                incoming: incoming.into(),
                inbox: std::array::from_fn(|_| None),
                next_in: 0,
                stats: Arc::clone(&stats),
            })
            .collect();
        Ok((ends, stats))
    }

    /// Who owns what, from this worker's side ([`Worker::set_ownership`]).
    pub fn ownership(&self) -> Ownership {
        self.ownership
    }

    fn counts(&self) -> Option<&HandoffCounts> {
        self.stats.worker(self.ownership.me())
    }

    /// Stage `pkt` for `owner`; a full stage is sent first. Gives the packet
    /// back when `owner` has no ring from here.
    pub fn stage(&mut self, owner: usize, pkt: P, stats: &CoreStats) -> Result<(), P> {
        let Some(Some(o)) = self.out.get_mut(owner) else { return Err(pkt) };
        if o.len == BURST {
            // Empties the stage (what the ring refuses is dropped and counted).
            Self::send_one(o, self.stats.worker(self.ownership.me()), stats);
        }
        o.staged[o.len] = Some(pkt);
        o.len += 1;
        Ok(())
    }

    /// Send one owner's stage; what the ring does not take is dropped and
    /// counted. Returns how many were sent.
    fn send_one(o: &mut Outgoing<P, S>, counts: Option<&HandoffCounts>, stats: &CoreStats) -> usize {
        let n = o.ring.send(&mut o.staged[..o.len]);
        let mut lost = 0;
        for slot in &mut o.staged[n..o.len] {
            if slot.take().is_some() {
                lost += 1;
            }
        }
        o.len = 0;
        if let Some(c) = counts {
            HandoffCounts::bump(&c.sent, n);
            if lost > 0 {
                HandoffCounts::bump(&c.ring_full, lost);
            }
        }
        if lost > 0 {
            stats.drop_n(DropReason::HandoffRingFull, lost as u64);
        }
        n
    }

    /// Send every stage (at the end of each received burst).
    pub fn flush(&mut self, stats: &CoreStats) {
        let counts = self.stats.worker(self.ownership.me());
        for o in self.out.iter_mut().flatten() {
            if o.len > 0 {
                Self::send_one(o, counts, stats);
            }
        }
    }

    /// Packets other workers handed to this one: up to one burst from the next
    /// incoming ring (round robin, so no peer starves the others). Empty when
    /// that ring is empty.
    pub fn receive(&mut self) -> Inbox<'_, P> {
        let rings = self.incoming.len();
        let mut n = 0;
        for _ in 0..rings {
            let i = self.next_in % rings;
            self.next_in = (i + 1) % rings;
            n = self.incoming[i].receive(&mut self.inbox);
            if n > 0 {
                break;
            }
        }
        if let Some(c) = self.stats.worker(self.ownership.me()) {
            HandoffCounts::bump(&c.received, n);
        }
        Inbox { slots: self.inbox[..n].iter_mut() }
    }

    /// A [`WorkerIo`] that stages handed-off packets here and passes
    /// everything else to `io`. Call [`Self::flush`] after the burst.
    pub fn io<'a, I>(&'a mut self, io: &'a mut I) -> HandoffIo<'a, P, S, R, I> {
        HandoffIo { handoff: self, io }
    }

    /// Whether this worker has handed-off packets it has not sent yet.
    pub fn has_staged(&self) -> bool {
        self.out.iter().flatten().any(|o| o.len > 0)
    }

    /// This worker's counters.
    pub fn counters(&self) -> Option<&HandoffCounts> {
        self.counts()
    }
}

/// What [`Handoff::receive`] took from a ring.
#[derive(Debug)]
pub struct Inbox<'a, P> {
    slots: std::slice::IterMut<'a, Option<P>>,
}

impl<P> Inbox<'_, P> {
    /// Packets left.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }
}

impl<P> Iterator for Inbox<'_, P> {
    type Item = P;
    fn next(&mut self) -> Option<P> {
        self.slots.by_ref().find_map(Option::take)
    }
}

impl<P> Drop for Inbox<'_, P> {
    fn drop(&mut self) {
        // Packets the caller did not take are freed, not left for the next burst.
        self.slots.by_ref().for_each(|s| drop(s.take()));
    }
}

/// [`Handoff::io`]: a worker's outputs plus the handoff rings.
pub struct HandoffIo<'a, P, S, R, I> {
    handoff: &'a mut Handoff<P, S, R>,
    io: &'a mut I,
}

impl<P, S, R, I> core::fmt::Debug for HandoffIo<'_, P, S, R, I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandoffIo").field("handoff", &self.handoff).finish_non_exhaustive()
    }
}

impl<P, S: HandoffSender<P>, R: HandoffReceiver<P>, I: WorkerIo<P>> WorkerIo<P> for HandoffIo<'_, P, S, R, I> {
    #[inline]
    fn tx(&mut self, port: usize, pkt: P) -> Result<(), P> {
        self.io.tx(port, pkt)
    }

    #[inline]
    fn punt(&mut self, port: usize, pkt: P) -> Result<(), P> {
        self.io.punt(port, pkt)
    }

    #[inline]
    fn alloc(&mut self) -> Option<P> {
        self.io.alloc()
    }

    #[inline]
    fn handoff(&mut self, owner: usize, pkt: P, stats: &CoreStats) -> Result<(), P> {
        self.handoff.stage(owner, pkt, stats)
    }

    #[inline]
    fn handoff_plain(&mut self, owner: usize, pkt: P, stats: &CoreStats) -> Result<(), P> {
        self.handoff.stage(owner, pkt, stats)?;
        if let Some(c) = self.handoff.counts() {
            HandoffCounts::bump(&c.plain, 1);
        }
        Ok(())
    }
}

/// A packet of an SA this worker does not own goes to its owner.
#[inline]
pub(super) fn hand_off<P, I: WorkerIo<P>>(ownership: Ownership, sa: &InboundTunnel, pkt: P, stats: &CoreStats, io: &mut I) {
    if io.handoff(ownership.owner_of(sa.sa.spi(), &sa.state), pkt, stats).is_err() {
        stats.drop(DropReason::HandoffRingFull);
    }
}

/// Plaintext of an outbound SA another worker encrypts for goes to that worker
/// without its link header (starting at the IP header, as handed-over ESP does).
#[cold]
#[inline(never)]
pub(super) fn hand_off_plain<P: Packet, I: WorkerIo<P>>(owner: usize, mut pkt: P, stats: &CoreStats, io: &mut I) {
    if pkt.adj(ENCAP_L2).is_err() {
        stats.drop(DropReason::Truncated);
    } else if io.handoff_plain(owner, pkt, stats).is_err() {
        stats.drop(DropReason::HandoffRingFull);
    }
}

impl<P: Packet> Worker<P> {
    /// Which worker owns which inbound SA (default: this one owns all).
    pub fn set_ownership(&mut self, ownership: Ownership) {
        self.ownership = ownership;
    }

    /// This worker's ownership view.
    pub fn ownership(&self) -> Ownership {
        self.ownership
    }

    /// Process the packets other workers handed over (IP header first,
    /// Ethernet header already stripped): ESP to one of our addresses is
    /// decapsulated, anything else is plaintext to encrypt (its TTL was
    /// decremented by the worker that received it). The SA is looked up again
    /// in this worker's snapshot: an SA removed in between is counted as
    /// [`DropReason::NoSa`], plaintext whose policy no longer protects it as
    /// [`DropReason::HandoffStale`]. Plaintext whose policy now names another
    /// SA (a rekey published meanwhile) is encrypted here even if another
    /// worker claimed that SA first: at worst one packet out of order, where
    /// handing it on would need a ring from here and dropping it would lose it.
    /// Receive counters were kept by the worker that received the frames.
    pub fn process_handoff<I: WorkerIo<P>>(&mut self, pkts: impl IntoIterator<Item = P>, io: &mut I, now_ms: u64) {
        let Worker { ifaces, local4, routes, neighbors, tables, stats, decap, encap, icmp_limit, ownership } = self;
        let table = tables.load();
        let claimant = ownership.claimant();
        let mut out = Out { ifaces, local4, routes, neighbors, stats, now_ms, icmp_limit, claimant };
        let (mut dgroups, mut egroups) = (Groups::new(), Groups::new());
        for pkt in pkts {
            // ESP was handed over only when addressed to us, plaintext only when
            // not (`classify` keeps what is for us away from the SPD).
            let class = if out.is_ours(pkt.data()) {
                // Only ESP, so `esp` never punts (port 0 is unused).
                out.esp(table, 0, 0, pkt, io)
            } else {
                out.handed_plain(table, pkt)
            };
            match class {
                // The sender chose this worker in its snapshot; the SA may have been
                // replaced since (same SPI, fresh state). An unclaimed one is opened
                // here (and claimed if it authenticates); one another worker claimed
                // is not ours to decrypt.
                Class::Decap(sa, pkt) if ownership.owns(sa) => enqueue(decap, &mut dgroups, sa, pkt, &mut out, io, flush_decap),
                Class::Decap(..) => out.drop(DropReason::HandoffStale),
                Class::Encap(sa, pkt) => enqueue(encap, &mut egroups, sa, pkt, &mut out, io, flush_encap),
                Class::Done => {}
            }
        }
        flush_decap(decap, &mut dgroups, &mut out, io);
        flush_encap(encap, &mut egroups, &mut out, io);
    }
}

impl<P: Packet> Out<'_, P> {
    /// Whether the IP packet `d` is addressed to one of our addresses.
    fn is_ours(&self, d: &[u8]) -> bool {
        match d.first().map(|b| b >> 4) {
            Some(4) => d.get(16..20).and_then(|a| a.first_chunk::<4>()).is_some_and(|a| self.local_v4(0, (*a).into()) == super::LocalV4::Ours),
            Some(6) => d.get(24..40).and_then(|a| a.first_chunk::<16>()).is_some_and(|a| self.is_ours_v6((*a).into())),
            _ => false,
        }
    }

    /// Plaintext another worker handed over for an outbound SA this worker
    /// encrypts for: its policy looked up again, its link header's room put back.
    fn handed_plain<'t>(&mut self, table: &'t super::TunnelTable, mut pkt: P) -> Class<'t, P> {
        let d = pkt.data();
        let decision = match d.first().map(|b| b >> 4) {
            Some(4) => super::inner_flow_v4(d, table.outbound_ports_matter_v4()).map(|f| table.outbound_v4(&f)),
            Some(6) => super::inner_flow_v6(d).map(|f| table.outbound_v6(&f)),
            _ => None,
        };
        match decision {
            Some(crate::sa::Decision::Protect(sa)) if pkt.prepend(ENCAP_L2).is_ok() => Class::Encap(sa, pkt),
            _ => {
                self.drop(DropReason::HandoffStale);
                Class::Done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(spi: u32) -> InboundState {
        let aead = crate::crypto::new_aead(crate::crypto::Algorithm::Aes128Gcm, &[7; 20], crate::crypto::Backend::Auto).expect("key");
        let sa = crate::esp::InboundSa::new(crate::esp::InboundConfig::new(Spi(spi)), Arc::from(aead)).expect("sa");
        sa.new_state().expect("state")
    }

    #[test]
    fn owner_is_spi_modulo_workers() {
        let w0 = Ownership::new(0, 2).expect("valid");
        let w1 = Ownership::new(1, 2).expect("valid");
        assert!(Ownership::new(2, 2).is_none());
        assert!(Ownership::new(0, 0).is_none());
        for spi in [0x1000u32, 0x1001, 0xffff_ffff, 0x100] {
            let st = state(spi);
            assert_eq!(w0.owner(Spi(spi)), (spi % 2) as usize);
            let seen = [w0.owner_of(Spi(spi), &st), w1.owner_of(Spi(spi), &st)];
            assert_eq!(seen, [(spi % 2) as usize; 2], "both workers agree on the owner of {spi:#x}");
            assert_eq!(st.claimed_by(), None, "the SPI rule claims nothing");
        }
        assert_eq!(Ownership::single().owner_of(Spi(7), &state(7)), 0);
    }

    #[test]
    fn first_receiver_claims_and_the_others_defer() {
        let [w0, w1, w2] = [0, 1, 2].map(|w| Ownership::new(w, 3).expect("valid").with_rule(OwnerRule::FirstReceiver));
        let st = state(0x1000);
        // Unclaimed, every worker may open the SA's packets; asking claims nothing
        // (a packet that authenticates does, through `claimant`).
        assert_eq!([w0, w1, w2].map(|w| w.owner_of(Spi(0x1000), &st)), [0, 1, 2]);
        assert_eq!(st.claimed_by(), None);
        assert_eq!([w0, w1, w2].map(|w| w.claimant()), [Some(0), Some(1), Some(2)]);
        assert_eq!(st.claim(2), 2, "the first claim wins, whatever the SPI");
        assert_eq!(st.claimed_by(), Some(2));
        assert_eq!([w0, w1, w2].map(|w| w.owner_of(Spi(0x1000), &st)), [2; 3]);
        assert_eq!(st.claim(0), 2);
        // Where owners need no claim: one worker, or the SPI rule.
        assert_eq!(Ownership::single().with_rule(OwnerRule::FirstReceiver).claimant(), None);
        assert_eq!(Ownership::new(1, 3).expect("valid").claimant(), None);
    }

    #[test]
    fn racing_claims_agree_on_one_owner() {
        // Two threads claim the same fresh SAs at once, 8 at a time with both
        // released together by a barrier (one start for all would let the first
        // thread finish before the second runs): both must name the same winner,
        // and it must be one of them.
        const ROUNDS: usize = 400;
        const PER_ROUND: usize = 8;
        let states: Arc<Vec<InboundState>> = Arc::new((0..(ROUNDS * PER_ROUND) as u32).map(state).collect());
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let answers: Vec<Vec<u32>> = (0..2u32)
            .map(|me| {
                let (states, barrier) = (Arc::clone(&states), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let mut got = Vec::with_capacity(states.len());
                    for round in states.chunks(PER_ROUND) {
                        barrier.wait();
                        got.extend(round.iter().map(|s| s.claim(me)));
                    }
                    got
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        for (i, s) in states.iter().enumerate() {
            assert_eq!(answers[0][i], answers[1][i], "SA {i}");
            assert_eq!(s.claimed_by(), Some(answers[0][i]));
            assert!(answers[0][i] < 2);
        }
    }

    type HeapRing = Arc<ArrayQueue<u32>>;

    fn heap_mesh(workers: usize, cap: usize) -> Vec<Handoff<u32, HeapRing, HeapRing>> {
        let (ends, _) = Handoff::mesh(workers, |_, _| {
            let q = Arc::new(ArrayQueue::new(cap));
            Ok::<_, ()>((Arc::clone(&q), q))
        })
        .expect("mesh");
        ends
    }

    #[test]
    fn staged_packets_reach_the_owner_in_order_and_overflow_is_counted() {
        let stats = crate::stats::Stats::new(3, 1, 1);
        let core = stats.core(0).expect("core 0");
        let mut ends = heap_mesh(3, 40);
        let mut w2 = ends.pop().expect("w2");
        let mut w1 = ends.pop().expect("w1");
        let mut w0 = ends.pop().expect("w0");
        assert!(w0.stage(0, 99, &core).is_err(), "no ring to itself");
        for i in 0..50 {
            // 32 staged, then a full stage is sent and 18 more are staged.
            w0.stage(1, i, &core).expect("room");
        }
        w0.stage(2, 1000, &core).expect("room");
        w0.flush(&core);
        // The ring to worker 1 holds 40: 32 + 8 made it, 10 were dropped.
        assert_eq!(stats.snapshot().drop_count(DropReason::HandoffRingFull), 10);
        let got: Vec<u32> = std::iter::from_fn(|| {
            let v: Vec<u32> = w1.receive().collect();
            (!v.is_empty()).then_some(v)
        })
        .flatten()
        .collect();
        assert_eq!(got, (0..40).collect::<Vec<_>>());
        assert_eq!(w2.receive().collect::<Vec<_>>(), [1000]);
        let c = w0.counters().expect("counters");
        assert_eq!((c.sent.load(Relaxed), c.ring_full.load(Relaxed)), (41, 10));
        assert_eq!(w1.counters().expect("w1").received.load(Relaxed), 40);
    }
}
