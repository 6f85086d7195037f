//! The per-burst packet processing of one poll-mode worker, generic over
//! [`Packet`] (DPDK mbufs in the gateway, heap buffers in tests and benches).
//!
//! Per received frame:
//! - **ARP** request for one of our addresses: answered in place; ARP from a
//!   neighbour we asked about (or that asked us) completes its entry.
//! - **IPv4/IPv6 to one of our addresses**: ESP (protocol 50, or UDP 4500 with a
//!   non-zero SPI) → decap batch; IKE (UDP 500, UDP 4500 after the non-ESP
//!   marker) → punt; ICMP/ICMPv6 echo → answered; neighbour solicitation →
//!   advertisement; anything else → punt.
//! - **Transit**: TTL check, SPD lookup on the 5-tuple → PROTECT (encap batch,
//!   grouped by SA), BYPASS (routed in clear) or DISCARD/no policy (dropped).
//!
//! Batches are flushed per SA with one AEAD call (`esp::encap_burst` /
//! `decap_burst`). Decapsulated packets must match the SA's selectors (RFC 4301
//! §5.2 step 4), then they are routed like transit traffic (no SPD lookup: they
//! were protected). Output: route (longest prefix), MTU, neighbour (ARP/ND,
//! holding the latest packet of an unresolved next hop), Ethernet header, tx.
//!
//! Nothing here allocates, locks or logs; every dropped packet increments one
//! [`DropReason`] counter in the worker's [`CoreStats`]. Forwarded frames leave
//! untagged (VLAN tags on the receive side are accepted and stripped; answers
//! given in place keep the tag).
//!
//! **Replay windows are owned by one core.** `ReplayWindow` uses plain loads
//! and stores: two workers decapsulating packets of one inbound SA would race
//! on it. With several workers each inbound SA has an owning worker, and ESP
//! received by another worker is handed to the owner through a ring
//! (`handoff.rs`, [`Worker::process_handoff`]).

mod icmp_error;
mod handoff;
mod iface;
mod io;
mod local;
pub mod note_ring;
pub mod trap;
mod tunnel;
pub mod unknown_spi;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use handoff::{
    Encrypt, Handoff, HandoffCounts, HandoffIo, HandoffReceiver, HandoffSender, HandoffStats, Inbox, OwnerRule, Ownership,
};
pub use iface::{connected_routes, Interface, DEFAULT_MTU};
pub use io::{RecordingIo, WorkerIo};
pub use tunnel::{
    install_static, outbound_selectors, InboundTunnel, InstalledTunnel, OutboundTunnel, StaticTunnel, TsSpec, TunnelControl,
    TunnelError, TunnelTable,
};

use icmp_error::IcmpErrorLimit;
use io::Slot;

use crate::drop::DropReason;
use crate::esp::{self, EspError, EspLocation, InboundOuter, BURST};
use crate::neighbor::NeighborTable;
use crate::packet::Packet;
use crate::route::{NextHop, RouteTable, RouteV4};
use crate::sa::{Decision, Reader, SaRef};
use crate::spd::{Flow, FlowV4, FlowV6};
use crate::stats::CoreStats;
use crate::wire::{
    esp::NAT_T_PORT, ethernet, ipv4, ipv6, ArpOperation, ArpPacket, EtherType, EthernetFrame,
    IcmpPacket, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr,
};

/// Neighbour entries per worker.
const NEIGHBORS: usize = 256;

/// Bytes of the received link header an encap-bound packet keeps in front of
/// the inner IP packet (an untagged Ethernet header's worth): encap turns them
/// and the room before them into the outgoing Ethernet and outer headers.
const ENCAP_L2: usize = ethernet::HEADER_LEN;

/// A fixed-size batch of packets with a group key each (SA index in the burst).
struct Batch<P> {
    pkts: [Slot<P>; BURST],
    keys: [u8; BURST],
    len: usize,
    /// Whether `keys[..len]` are already in order (always so with one SA per
    /// burst, the common case): [`Self::group`] has nothing to do then.
    sorted: bool,
}

impl<P> Batch<P> {
    fn new() -> Self {
        Batch { pkts: std::array::from_fn(|_| Slot(None)), keys: [0; BURST], len: 0, sorted: true }
    }

    fn is_full(&self) -> bool {
        self.len == BURST
    }

    #[inline(always)]
    fn push(&mut self, pkt: P, key: u8) {
        if let Some(s) = self.pkts.get_mut(self.len) {
            s.0 = Some(pkt);
            if self.len > 0 && self.keys[self.len - 1] > key {
                self.sorted = false;
            }
            self.keys[self.len] = key;
            self.len += 1;
        }
    }

    /// Stable insertion sort by key: packets of one SA become one run, in
    /// arrival order (nothing to do when the keys came in order).
    fn group(&mut self) {
        if std::mem::replace(&mut self.sorted, true) {
            return;
        }
        for i in 1..self.len {
            let mut j = i;
            while j > 0 && self.keys[j - 1] > self.keys[j] {
                self.keys.swap(j - 1, j);
                self.pkts.swap(j - 1, j);
                j -= 1;
            }
        }
    }

    /// Drop the packets of `[s, e)` for `reason` (and count them on the SA).
    fn drop_run(&mut self, s: usize, e: usize, stats: &CoreStats, reason: DropReason, sa: Option<crate::sa::SaId>) {
        for slot in &mut self.pkts[s..e] {
            if slot.0.take().is_some() {
                if let Some(id) = sa {
                    stats.sa_drops(id, 1);
                }
                stats.drop(reason);
            }
        }
    }

    /// Group, then call `f(batch, start, end, sa)` per run of one SA; empties the
    /// batch and the groups.
    fn for_each_run<'t, T>(
        &mut self,
        groups: &mut Groups<'t, T>,
        stats: &CoreStats,
        mut f: impl FnMut(&mut Self, usize, usize, &'t SaRef<T>),
    ) {
        self.group();
        let mut start = 0;
        while let Some((s, e, k)) = self.next_run(start) {
            start = e;
            match groups.get(k) {
                Some(sa) => f(self, s, e, sa),
                // Not reachable: every key was handed out by `groups`.
                None => self.drop_run(s, e, stats, DropReason::NoSa, None),
            }
        }
        self.len = 0;
        groups.clear();
    }

    /// `[start, end)` runs of equal keys (after [`Self::group`]).
    fn next_run(&self, start: usize) -> Option<(usize, usize, u8)> {
        if start >= self.len {
            return None;
        }
        let k = self.keys[start];
        let end = (start..self.len).find(|&i| self.keys[i] != k).unwrap_or(self.len);
        Some((start, end, k))
    }
}

/// The SAs a burst's batches refer to (index = batch key).
struct Groups<'t, T> {
    sas: [Option<&'t SaRef<T>>; BURST],
    len: usize,
    /// Where the SA whose id's slot is `h` modulo [`HINTS`] is in `sas`, for
    /// the SA that took entry `h` first since the last flush. An entry is only
    /// believed when it points at an SA of `sas` with that `h`: one
    /// pointing elsewhere (left from an earlier flush, or never written) says
    /// the SA is new to the batch, and one held by another SA of the same `h`
    /// leaves it to the scan.
    hint: [u8; HINTS],
    /// The `SaRef` the last call asked for and its key: a burst's packets
    /// mostly come in runs of one policy's, and this answers those with one
    /// compare in place of the hint's three dependent loads (`Groups::key`
    /// was ~4% of the 64 B encap profile's time, not inlined there).
    last: Option<(&'t SaRef<T>, u8)>,
}

/// Entries of [`Groups`]' hint table (a power of two, well above [`BURST`] so
/// that SAs of a burst rarely share one).
const HINTS: usize = 256;

impl<'t, T> Groups<'t, T> {
    fn new() -> Self {
        Groups { sas: [None; BURST], len: 0, hint: [0; HINTS], last: None }
    }

    /// Key of `sa`, adding it; `None` when the burst already has BURST SAs (the
    /// batch is then flushed first, which resets the groups). An SA is known by its
    /// id, not by where its `SaRef` is: each PROTECT policy holds its own, so an SA
    /// with several traffic selectors is reached through several, and grouping by
    /// address cut a burst alternating between them into runs of one packet.
    ///
    /// A burst of many SAs (a hub's) scanned `sas` for every packet: ~16
    /// compares a packet with 32 SAs. The hint answers in one.
    #[inline]
    fn key(&mut self, sa: &'t SaRef<T>) -> Option<u8> {
        if let Some((last, k)) = self.last {
            if core::ptr::eq(last, sa) {
                return Some(k);
            }
        }
        let k = self.key_of(sa)?;
        self.last = Some((sa, k));
        Some(k)
    }

    /// [`Self::key`] by the hint and, failing that, the scan.
    fn key_of(&mut self, sa: &'t SaRef<T>) -> Option<u8> {
        let id = sa.id();
        let h = id.slot() % HINTS;
        let guess = self.hint[h];
        let shared = match self.sas[..self.len].get(usize::from(guess)).copied().flatten() {
            Some(s) if s.id() == id => return Some(guess),
            Some(s) => s.id().slot() % HINTS == h,
            None => false,
        };
        if shared {
            if let Some(i) = self.sas[..self.len].iter().position(|s| s.is_some_and(|s| s.id() == id)) {
                return Some(i as u8);
            }
        }
        *self.sas.get_mut(self.len)? = Some(sa);
        self.len += 1;
        let k = (self.len - 1) as u8;
        if !shared {
            self.hint[h] = k;
        }
        Some(k)
    }

    fn get(&self, k: u8) -> Option<&'t SaRef<T>> {
        self.sas.get(usize::from(k)).copied().flatten()
    }

    fn clear(&mut self) {
        self.sas = [None; BURST];
        self.len = 0;
        self.last = None;
    }
}

/// What the worker was set up with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Ports, indexed like the ports the worker is given packets from.
    pub interfaces: Vec<Interface>,
    /// Routes, including the connected ones ([`connected_routes`]).
    pub routes: RouteTable,
    /// Neighbours that are never resolved: (port, IP, MAC).
    pub static_neighbors: Vec<(usize, IpAddr, MacAddr)>,
}

/// One worker: its tables reader, neighbour table, counters and batches.
pub struct Worker<P> {
    ifaces: Arc<[Interface]>,
    /// The IPv4 addresses of `ifaces`, flattened for [`Out::local_v4`].
    local4: Arc<LocalAddrsV4>,
    routes: Arc<RouteTable>,
    neighbors: NeighborTable<P>,
    tables: Reader<TunnelTable>,
    stats: Arc<CoreStats>,
    decap: Batch<P>,
    encap: Batch<P>,
    icmp_limit: IcmpErrorLimit,
    /// Which inbound SAs this worker decapsulates (handoff.rs).
    ownership: Ownership,
}

impl<P> core::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker").field("ifaces", &self.ifaces).field("routes", &self.routes.len()).finish_non_exhaustive()
    }
}

/// The parts of the worker the output path needs, borrowed apart from the
/// tables snapshot.
struct Out<'a, P> {
    ifaces: &'a [Interface],
    local4: &'a LocalAddrsV4,
    routes: &'a RouteTable,
    neighbors: &'a mut NeighborTable<P>,
    stats: &'a CoreStats,
    now_ms: u64,
    icmp_limit: &'a mut IcmpErrorLimit,
    /// [`Ownership::claimant`]: the worker index to claim unclaimed inbound SAs
    /// as, after authentication.
    claimant: Option<u32>,
}

/// What [`Out::forward_memo`] found out about the last next hop of a decap flush.
#[derive(Debug, Clone, Copy)]
struct HopMemo {
    hop: NextHop,
    /// The IPv4 gateway route that led to `hop`, if that is how it was found:
    /// a packet taking the same route goes to `hop` without building its next hop.
    route4: Option<RouteV4>,
    /// The next hop is one of the port's own addresses (punted, not sent).
    own: bool,
    mtu: u16,
    /// The Ethernet headers to the next hop for IPv4 and IPv6, known once a
    /// packet went out to it (`None` while unresolved). Two constant headers:
    /// patching the EtherType of one per packet made the header's copy into
    /// the frame reload bytes just stored (a store-forwarding stall on a third
    /// of `forward_memo`'s samples).
    eth: Option<[[u8; ethernet::HEADER_LEN]; 2]>,
    /// Frames sent through `eth`, added to the port's tx counters once per next
    /// hop and flush ([`Out::hop_done`]).
    sent: TxTally,
}

/// Frames queued on one port whose tx counters are still to be added: added
/// once per SA run (encap) or per next hop (decap), not per frame.
#[derive(Debug, Clone, Copy, Default)]
struct TxTally {
    packets: u64,
    bytes: u64,
}

impl TxTally {
    /// Put `eth` in front of an IP packet and queue it on `port`: counted here
    /// when queued, dropped for its reason otherwise. Kept a call (decap's
    /// per-hop delivery): with [`Self::push_eth`] always inlined, inlining this
    /// too grew `forward_memo` enough that the io's `tx` went out of line (+19
    /// instructions a packet on 64 B decap under callgrind; in `forward_hit`,
    /// inlined into the decap flush, it saved 2 and put `tx` out of line).
    #[inline(never)]
    fn push<P: Packet, I: WorkerIo<P>>(&mut self, out: &Out<'_, P>, port: usize, eth: &[u8; ethernet::HEADER_LEN], pkt: P, io: &mut I) {
        self.push_eth(out, port, Some(eth), pkt, io);
    }

    /// [`Self::push`]; `eth` `None` when the header is in the headroom already
    /// (`esp::Framing::eth`). Always inlined: out of line it cost a call and the
    /// packet's move per frame (64 instructions a packet under callgrind, 64 B encap).
    #[inline(always)]
    fn push_eth<P: Packet, I: WorkerIo<P>>(&mut self, out: &Out<'_, P>, port: usize, eth: Option<&[u8; ethernet::HEADER_LEN]>, mut pkt: P, io: &mut I) {
        if pkt.prepend(ethernet::HEADER_LEN).is_err() {
            out.drop(DropReason::NoBufferRoom);
            return;
        }
        if let (Some(eth), Some(h)) = (eth, pkt.data_mut().first_chunk_mut::<{ ethernet::HEADER_LEN }>()) {
            *h = *eth;
        }
        let len = pkt.len() as u64;
        match io.tx(port, pkt) {
            Ok(()) => {
                self.packets += 1;
                self.bytes += len;
            }
            Err(_) => out.drop(DropReason::TxFull),
        }
    }

    /// Add what was counted to `port`'s tx counters.
    fn add_to(self, stats: &CoreStats, port: usize) {
        if let (true, Ok(p)) = (self.packets > 0, u16::try_from(port)) {
            stats.tx(p, self.packets, self.bytes);
        }
    }
}

/// IANA protocol numbers [`ToUs::of`] and the IPv4 path compare with.
const PROTO_ICMP: u8 = 1;
const PROTO_UDP: u8 = 17;
const PROTO_ESP: u8 = 50;

/// What a packet to one of our own addresses is, once its upper layer is known.
enum ToUs {
    /// ESP, or ESP in UDP on port 4500 (RFC 3948 §2.2; UDP 500 is IKE, for the control plane).
    Esp,
    /// An ICMP / ICMPv6 echo request; `valid` if its checksum verifies.
    Echo { valid: bool },
    /// Anything else: the control plane's.
    Other,
}

impl ToUs {
    /// `proto` is the IP protocol number (IPv4's field, or IPv6's upper-layer
    /// header): a plain `u8`, as the IPv4 path reads it, because its `IpProtocol`
    /// conversion was a call of its own per ESP packet in the 64 B decap count.
    /// `echo` says whether the packet is an echo request of its IP version and, if so,
    /// whether its checksum verifies (called only for neither ESP nor UDP 4500).
    fn of(proto: u8, l4: &[u8], echo: impl FnOnce() -> Option<bool>) -> Self {
        match proto {
            PROTO_ESP => Self::Esp,
            PROTO_UDP if l4.len() >= 4 && u16::from_be_bytes([l4[2], l4[3]]) == NAT_T_PORT => Self::Esp,
            _ => echo().map_or(Self::Other, |valid| Self::Echo { valid }),
        }
    }
}

/// What an IPv4 destination address is to the gateway ([`Out::local_v4`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalV4 {
    /// One of our addresses.
    Ours,
    /// A directed broadcast of the receiving port's subnet.
    Broadcast,
    /// Anything else: transit.
    Other,
}

/// The gateway's IPv4 addresses, as [`Out::local_v4`] reads them for every
/// transit packet: a flat array of integers instead of the ports' `IpAddr`
/// lists (the walk over those was ~60 instructions per 64 B encap packet in
/// `perf/esp/insns.sh`), and a filter on the destination's last byte in front
/// of it.
#[derive(Debug)]
struct LocalAddrsV4 {
    addrs: Vec<AddrV4>,
    /// Bit `b` is set when an address of `addrs`, or its directed broadcast,
    /// ends in the byte `b`. A destination whose last byte's bit is clear is
    /// neither ours nor a broadcast: most transit packets, answered without
    /// the scan (which was ~30 instructions a packet with two addresses,
    /// `GW=1 perf/esp/insns.sh encap 64`).
    last_bytes: [u64; 4],
}

impl LocalAddrsV4 {
    fn of(ifaces: &[Interface]) -> Self {
        let addrs = AddrV4::of(ifaces);
        let mut last_bytes = [0u64; 4];
        for a in &addrs {
            for x in [a.addr, a.bcast] {
                let b = (x & 0xff) as usize;
                last_bytes[b / 64] |= 1 << (b % 64);
            }
        }
        LocalAddrsV4 { addrs, last_bytes }
    }

    /// [`Out::local_v4`].
    #[inline(always)]
    fn local(&self, port: usize, dst: Ipv4Addr) -> LocalV4 {
        let b = usize::from(dst.octets()[3]);
        if self.last_bytes[b / 64] & (1 << (b % 64)) == 0 {
            return LocalV4::Other;
        }
        AddrV4::local(&self.addrs, port, dst)
    }
}

/// One IPv4 address of the gateway ([`LocalAddrsV4`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrV4 {
    addr: u32,
    /// The subnet's directed broadcast address (`addr` with the host bits set);
    /// `addr` itself for /31 and /32, which have none: `local_v4` has answered
    /// "ours" for that address before it looks at this.
    bcast: u32,
    port: usize,
}

impl AddrV4 {
    /// [`Out::local_v4`] over `addrs`, by a scan.
    #[inline(always)]
    fn local(addrs: &[AddrV4], port: usize, dst: Ipv4Addr) -> LocalV4 {
        let dst = u32::from(dst);
        let mut broadcast = false;
        for a in addrs {
            if a.addr == dst {
                return LocalV4::Ours;
            }
            // Same network bits as `addr` and all host bits set. For /31 and /32
            // `bcast` is `addr`, which returned above.
            broadcast |= a.port == port && dst == a.bcast;
        }
        if broadcast {
            LocalV4::Broadcast
        } else {
            LocalV4::Other
        }
    }

    fn of(ifaces: &[Interface]) -> Vec<AddrV4> {
        let mut v = Vec::new();
        for (port, iface) in ifaces.iter().enumerate() {
            for &(a, len) in &iface.addresses {
                if let IpAddr::V4(a) = a {
                    let host = if len < 31 { u32::MAX >> len } else { 0 };
                    v.push(AddrV4 { addr: u32::from(a), bcast: u32::from(a) | host, port });
                }
            }
        }
        v
    }
}

/// What a received frame is.
enum Class<'t, P> {
    /// Done with (answered, punted or dropped).
    Done,
    /// ESP for this inbound SA; the Ethernet header is stripped.
    Decap(&'t SaRef<InboundTunnel>, P),
    /// Plaintext for this outbound SA behind [`ENCAP_L2`] bytes of its link header
    /// (a VLAN tag is stripped), TTL decremented.
    Encap(&'t SaRef<OutboundTunnel>, P),
}

impl<P: Packet> Worker<P> {
    /// A worker reading `tables`, counting into `stats`.
    pub fn new(config: &WorkerConfig, tables: Reader<TunnelTable>, stats: Arc<CoreStats>) -> Self {
        let mut neighbors = NeighborTable::new(NEIGHBORS);
        for &(port, ip, mac) in &config.static_neighbors {
            neighbors.insert_permanent(port, ip, mac);
        }
        Worker {
            ifaces: config.interfaces.clone().into(),
            local4: Arc::new(LocalAddrsV4::of(&config.interfaces)),
            routes: Arc::new(config.routes.clone()),
            neighbors,
            tables,
            stats,
            decap: Batch::new(),
            encap: Batch::new(),
            icmp_limit: IcmpErrorLimit::new(),
            ownership: Ownership::single(),
        }
    }

    /// The worker's counters.
    pub fn stats(&self) -> &Arc<CoreStats> {
        &self.stats
    }

    /// The worker's neighbour table (read it on the worker's own thread, e.g.
    /// to answer a [`crate::neighbor_view::NeighborMirror`] request).
    pub fn neighbors(&self) -> &NeighborTable<P> {
        &self.neighbors
    }

    /// Mark a quiescent point without packets (idle polls), so the control
    /// plane can reclaim old table snapshots.
    pub fn quiesce(&mut self) {
        self.tables.load();
    }

    /// Route and send an IP packet the gateway originates itself (IKE from
    /// the control plane; no Ethernet header yet): route lookup, neighbour
    /// resolution (held while ARP/ND runs), Ethernet header, tx. No SPD
    /// lookup and no TTL decrement: it was not forwarded.
    pub fn send_local<I: WorkerIo<P>>(&mut self, pkt: P, io: &mut I, now_ms: u64) {
        let Worker { ifaces, local4, routes, neighbors, stats, icmp_limit, .. } = self;
        let mut out = Out { ifaces, local4, routes, neighbors, stats, now_ms, icmp_limit, claimant: None };
        out.forward_local(pkt, io);
    }

    /// Process the frames received on port `rx_port`. `now_ms` is any
    /// monotonic millisecond clock (neighbour retries).
    pub fn process<I: WorkerIo<P>>(&mut self, rx_port: usize, rx: impl IntoIterator<Item = P>, io: &mut I, now_ms: u64) {
        let Worker { ifaces, local4, routes, neighbors, tables, stats, decap, encap, icmp_limit, ownership } = self;
        let table: &TunnelTable = tables.load();
        let mut out = Out { ifaces, local4, routes, neighbors, stats, now_ms, icmp_limit, claimant: ownership.claimant() };
        let mut dgroups = Groups::new();
        let mut egroups = Groups::new();
        let (mut packets, mut bytes) = (0u64, 0u64);
        // Asked once per burst: with one worker no SA's owner is looked at.
        let (encrypt_all, me) = (ownership.encrypts_every_sa(), ownership.me());
        for pkt in rx {
            packets += 1;
            bytes += pkt.len() as u64;
            match out.classify(table, rx_port, pkt, io) {
                Class::Done => {}
                Class::Decap(sa, pkt) if !ownership.owns(sa) => handoff::hand_off(*ownership, sa, pkt, out.stats, io),
                Class::Decap(sa, pkt) => enqueue(decap, &mut dgroups, sa, pkt, &mut out, io, flush_decap),
                // One `enqueue` call site for encap: a second one took it out of line.
                Class::Encap(sa, pkt) if encrypt_all || ownership.encrypter(sa) == me => {
                    enqueue(encap, &mut egroups, sa, pkt, &mut out, io, flush_encap)
                }
                Class::Encap(sa, pkt) => handoff::hand_off_plain(ownership.encrypter(sa), pkt, out.stats, io),
            }
        }
        flush_decap(decap, &mut dgroups, &mut out, io);
        flush_encap(encap, &mut egroups, &mut out, io);
        if let Ok(p) = u16::try_from(rx_port) {
            out.stats.rx(p, packets, bytes);
        }
    }
}

/// Add `pkt` to `b` in `sa`'s group; flush when the batch or the group list is full.
#[inline(always)]
fn enqueue<'t, P: Packet, T, I: WorkerIo<P>>(
    b: &mut Batch<P>,
    groups: &mut Groups<'t, T>,
    sa: &'t SaRef<T>,
    pkt: P,
    out: &mut Out<'_, P>,
    io: &mut I,
    flush: fn(&mut Batch<P>, &mut Groups<'t, T>, &mut Out<'_, P>, &mut I),
) {
    let key = match groups.key(sa) {
        Some(k) => k,
        None => {
            flush(b, groups, out, io);
            groups.key(sa).unwrap_or(0)
        }
    };
    b.push(pkt, key);
    if b.is_full() {
        flush(b, groups, out, io);
    }
}

fn flush_decap<P: Packet, I: WorkerIo<P>>(
    b: &mut Batch<P>,
    groups: &mut Groups<'_, InboundTunnel>,
    out: &mut Out<'_, P>,
    io: &mut I,
) {
    let stats: &CoreStats = out.stats;
    // Shared by the runs of the flush: the route does not depend on the SA.
    let mut memo = None;
    b.for_each_run(groups, stats, |b, s, e, sa| {
        let mut run = RunTally::default();
        // Every batched packet went through `Out::esp`, which checked the outer
        // header. Each packet is delivered as soon as it is decapsulated.
        esp::decap_burst_classified(&sa.sa, &sa.state, out.claimant, &mut b.pkts[s..e], |slot, r| {
            let Some(pkt) = slot.0.take() else { return };
            let len = pkt.len() as u64;
            let sent = match r {
                Ok(d) if inner_allowed(sa, d.next_header, pkt.data()) => {
                    out.forward_memo(pkt, io, &mut memo);
                    Ok(())
                }
                Ok(_) => Err(DropReason::PolicyMismatch),
                Err(err) => Err(err.drop_reason()),
            };
            run.count(out.stats, len, sent);
        });
        run.add_to(out.stats, sa.id());
    });
    out.hop_done(memo);
}

/// The packets, bytes and drops of one SA run, added to the SA's counters once
/// per run, not per packet.
#[derive(Debug, Default)]
struct RunTally {
    packets: u64,
    bytes: u64,
    drops: u64,
}

impl RunTally {
    /// One packet of `len` bytes, sent or dropped for its reason.
    #[inline(always)]
    fn count(&mut self, stats: &CoreStats, len: u64, sent: Result<(), DropReason>) {
        match sent {
            Ok(()) => {
                self.packets += 1;
                self.bytes += len;
            }
            Err(reason) => {
                self.drops += 1;
                stats.drop(reason);
            }
        }
    }

    fn add_to(self, stats: &CoreStats, sa: crate::sa::SaId) {
        if self.packets > 0 {
            stats.sa_packets(sa, self.packets, self.bytes);
        }
        if self.drops > 0 {
            stats.sa_drops(sa, self.drops);
        }
    }
}

/// Hand every packet of a run whose result is `Ok` to `send`; count the
/// others, and those `send` refuses, as dropped for their reason. The SA's
/// packet, byte and drop counters are added once per run, not per packet.
fn deliver_run<P: Packet, R, I: WorkerIo<P>>(
    slots: &mut [Slot<P>],
    results: &[Result<R, EspError>],
    sa: crate::sa::SaId,
    out: &mut Out<'_, P>,
    io: &mut I,
    mut send: impl FnMut(&mut Out<'_, P>, &mut I, P, &R) -> Result<(), DropReason>,
) {
    let mut run = RunTally::default();
    for (slot, r) in slots.iter_mut().zip(results) {
        let Some(pkt) = slot.0.take() else { continue };
        let len = pkt.len() as u64;
        let sent = match r {
            Ok(v) => send(out, io, pkt, v),
            Err(err) => Err(err.drop_reason()),
        };
        run.count(out.stats, len, sent);
    }
    run.add_to(out.stats, sa);
}

fn flush_encap<P: Packet, I: WorkerIo<P>>(
    b: &mut Batch<P>,
    groups: &mut Groups<'_, OutboundTunnel>,
    out: &mut Out<'_, P>,
    io: &mut I,
) {
    let mut results = [Ok(()); BURST];
    let stats: &CoreStats = out.stats;
    // The last run's peer: the next run's SA often goes to the same one (the
    // child SAs of one peer, a tunnel per pair of subnets), which then needs
    // no route or neighbour lookup of its own.
    let mut last: Option<PeerMemo> = None;
    b.for_each_run(groups, stats, |b, s, e, sa| {
        let dst = sa.sa.config().dst;
        let peer = match &mut last {
            Some(p) if p.dst == dst => p,
            _ => {
                // One route lookup per peer and burst: every packet goes to it.
                let Some(hop) = out.routes.lookup(dst) else {
                    b.drop_run(s, e, out.stats, DropReason::NoRoute, Some(sa.id()));
                    return;
                };
                if let Some(done) = last.take() {
                    done.sent.add_to(out.stats, done.hop.port);
                }
                last.insert(out.peer_memo(dst, hop, io))
            }
        };
        let mtu = peer.mtu;
        let overhead = sa.sa.header_overhead() + sa.sa.max_trailer_overhead();
        for slot in &mut b.pkts[s..e] {
            // RFC 4301 §8.2.1 / RFC 1191: a packet that would not fit after
            // encapsulation is refused (with "fragmentation needed" when DF is set).
            if slot.len().saturating_sub(ENCAP_L2) + overhead > usize::from(mtu) {
                if let Some(mut pkt) = slot.0.take() {
                    out.stats.sa_drops(sa.id(), 1);
                    if pkt.adj(ENCAP_L2).is_ok() {
                        out.too_big(&pkt, mtu.saturating_sub(overhead as u16), io);
                    }
                }
            }
        }
        let framing = esp::Framing { l2_in: ENCAP_L2, eth: peer.eth.as_ref() };
        esp::encap_burst_framed(&sa.sa, &sa.state, &mut b.pkts[s..e], &mut results[s..e], framing);
        deliver_run(&mut b.pkts[s..e], &results[s..e], sa.id(), out, io, |out, io, pkt, ()| {
            if peer.eth.is_some() {
                // encap left the header in front of the packet.
                peer.sent.push_eth(out, peer.hop.port, None, pkt, io);
            } else {
                // Unresolved: encap made an IP packet; held while ARP/ND runs.
                out.send(peer.hop, pkt, io);
            }
            Ok(())
        });
    });
    if let Some(done) = last {
        done.sent.add_to(out.stats, done.hop.port);
    }
}

/// Where a run's ESP goes ([`Out::peer_memo`]). Not `Copy`: it carries a tally,
/// which a copy would count twice or lose.
#[derive(Debug)]
struct PeerMemo {
    /// The SA's outer destination.
    dst: IpAddr,
    hop: NextHop,
    /// The hop's port's MTU.
    mtu: u16,
    /// The frame's Ethernet header, once the next hop is resolved.
    eth: Option<[u8; ethernet::HEADER_LEN]>,
    /// Frames queued to the hop, added to its port's counters once per peer
    /// and flush (not per run: with many SAs a run is one packet).
    sent: TxTally,
}

/// Ports of a TCP/UDP/SCTP header, or ICMP type/code (RFC 4301 §4.4.1.3).
/// Inlined: a call of its own per transit packet in the 64 B encap profile
/// (and still one with `#[inline]`: 14 instructions a packet under callgrind).
#[inline(always)]
fn l4_ports(proto: u8, l4: &[u8]) -> (u16, u16) {
    match proto {
        6 | 17 | 132 if l4.len() >= 4 => (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])),
        1 | 58 if l4.len() >= 2 => (u16::from(l4[0]), u16::from(l4[1])),
        _ => (0, 0),
    }
}

/// Whether the decapsulated packet `d` (no Ethernet header; `next_header`, the
/// ESP trailer's, says which IP version decap checked it as) may come out of
/// `sa`: its 5-tuple matches one of the SA's selectors (RFC 4301 §5.2 step 4);
/// `false` if it is malformed. IPv4 is matched on its own path, so the flow is
/// built and matched in registers: merged with IPv6 into one `Flow` it was
/// written field by field and copied in 8-byte loads (a store-forwarding stall
/// in `flush_decap`).
#[inline(always)]
fn inner_allowed(sa: &InboundTunnel, next_header: IpProtocol, d: &[u8]) -> bool {
    match next_header {
        IpProtocol::Ipv4 => inner_flow_v4(d, sa.ports_matter_v4()).is_some_and(|f| sa.allows_v4(&f)),
        IpProtocol::Ipv6 => inner_flow_v6(d).is_some_and(|f| sa.allows(&Flow::V6(f))),
        _ => false,
    }
}

/// The 5-tuple of an IPv4 packet that decap accepted: version 4, a header of at
/// least 20 bytes, and the packet exactly its total length (`esp::decap`
/// checked the header with `Ipv4Packet::new_checked` and truncated the packet).
/// Read at fixed offsets: a second `new_checked` of the same header here was
/// ~18 instructions a packet at 64 B. `None` if shorter than a header; on a
/// header decap did not check, the answer is unspecified (but no panic).
/// Ports are read only when `ports` (the selectors look at them), else 0.
#[inline(always)]
fn inner_flow_v4(d: &[u8], ports: bool) -> Option<FlowV4> {
    let h: &[u8; ipv4::HEADER_LEN] = d.first_chunk()?;
    let proto = h[9];
    // Non-first fragments carry no ports (RFC 4301 §7.1 would need reassembly
    // or OPAQUE; they match port-ANY selectors only).
    let (src_port, dst_port) = if ports && u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0 {
        l4_ports(proto, d.get(usize::from(h[0] & 0x0f) * 4..).unwrap_or(&[]))
    } else {
        (0, 0)
    };
    let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Some(FlowV4 { src: word(12), dst: word(16), proto, src_port, dst_port })
}

/// The 5-tuple of an IPv6 packet (after its extension headers); `None` if malformed.
fn inner_flow_v6(d: &[u8]) -> Option<FlowV6> {
    let ip = Ipv6Packet::new_checked(d).ok()?;
    let up = ip.upper_layer().ok()?;
    let proto = u8::from(up.protocol);
    let l4 = d.get(up.offset..ip.total_len()).unwrap_or(&[]);
    let (sp, dp) = if up.fragment { (0, 0) } else { l4_ports(proto, l4) };
    Some(FlowV6::v6(ip.src_addr(), ip.dst_addr(), proto, sp, dp))
}

/// Decrement the TTL / hop limit of an IP packet (RFC 1812 §5.3.1, RFC 8200
/// §3); `false` if it would reach zero.
fn decrement_ttl(d: &mut [u8]) -> bool {
    match d.first().map(|b| b >> 4) {
        Some(4) => d.first_chunk_mut().is_some_and(decrement_ttl_v4),
        Some(6) if d.len() >= ipv6::HEADER_LEN => {
            if d[7] <= 1 {
                return false;
            }
            d[7] -= 1;
            true
        }
        _ => false,
    }
}

/// [`decrement_ttl`] of an IPv4 header (no version check). The TTL and protocol
/// word goes from `m` to `m - 0x100`: in one's complement arithmetic the same
/// change as a word going from 0x0100 to 0, so RFC 1624 eqn. 3 needs neither
/// word: HC' = ~(~HC + 0xfeff). One's complement sums do not care about byte
/// order (RFC 1071 §2 (B)), so it is computed on the checksum's bytes read
/// little-endian, with the constant's bytes swapped (0xfffe): no byte swaps (6
/// instructions a forwarded packet, GW=1 `perf/esp/insns.sh`). ~HC + 0xfffe is
/// below 2^17: one end-around carry folds it.
#[inline(always)]
fn decrement_ttl_v4(h: &mut [u8; ipv4::HEADER_LEN]) -> bool {
    if h[8] <= 1 {
        return false;
    }
    h[8] -= 1;
    let acc = u32::from(!u16::from_le_bytes([h[10], h[11]])) + 0xfffe;
    let acc = (acc & 0xffff) + (acc >> 16);
    h[10..12].copy_from_slice(&(!(acc as u16)).to_le_bytes());
    true
}

impl<P: Packet> Out<'_, P> {
    /// What `dst` is to a packet received on `port`, in one pass over the
    /// addresses (every transit packet asks): one of ours (any port), the
    /// directed broadcast of one of `port`'s subnets (RFC 1812 §5.3.5.2; RFC
    /// 2644 makes not forwarding them the default), or neither.
    #[inline]
    fn local_v4(&self, port: usize, dst: Ipv4Addr) -> LocalV4 {
        self.local4.local(port, dst)
    }

    fn is_ours_v6(&self, a: Ipv6Addr) -> bool {
        self.ifaces.iter().any(|i| i.has_v6(a))
    }

    fn drop(&self, reason: DropReason) {
        self.stats.drop(reason);
    }

    fn punt<I: WorkerIo<P>>(&self, port: usize, pkt: P, io: &mut I) {
        if io.punt(port, pkt).is_err() {
            self.drop(DropReason::PuntRingFull);
        }
    }

    fn tx<I: WorkerIo<P>>(&self, port: usize, pkt: P, io: &mut I) {
        let len = pkt.len() as u64;
        match io.tx(port, pkt) {
            Ok(()) => {
                if let Ok(p) = u16::try_from(port) {
                    self.stats.tx(p, 1, len);
                }
            }
            Err(_) => self.drop(DropReason::TxFull),
        }
    }

    fn classify<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, pkt: P, io: &mut I) -> Class<'t, P> {
        let Some(iface) = self.ifaces.get(port) else {
            self.drop(DropReason::NotForUs);
            return Class::Done;
        };
        let mac = iface.mac;
        // Untagged IPv4 to our MAC (transit and ESP): one look at the 14 bytes
        // instead of the general parse's tag loop and second EtherType read (one
        // `ipv4` call site, so that it stays inlined).
        let untagged_v4 = pkt
            .data()
            .first_chunk::<{ ethernet::HEADER_LEN }>()
            .is_some_and(|h| h[12..] == u16::from(EtherType::Ipv4).to_be_bytes() && h[..6] == mac.0);
        let (l2, ethertype) = if untagged_v4 {
            (ethernet::HEADER_LEN, EtherType::Ipv4)
        } else {
            match EthernetFrame::new_checked(pkt.data()) {
                Ok(eth) => {
                    let dst = eth.dst_addr();
                    if dst != mac && !dst.is_multicast() {
                        self.drop(DropReason::NotForUs);
                        return Class::Done;
                    }
                    (eth.header_len(), eth.ethertype())
                }
                Err(_) => {
                    self.drop(DropReason::Truncated);
                    return Class::Done;
                }
            }
        };
        match ethertype {
            EtherType::Arp => {
                self.arp(port, mac, l2, pkt, io);
                Class::Done
            }
            EtherType::Ipv4 => self.ipv4(table, port, mac, l2, pkt, io),
            EtherType::Ipv6 => self.ipv6(table, port, mac, l2, pkt, io),
            _ => {
                self.drop(DropReason::Unsupported);
                Class::Done
            }
        }
    }

    fn arp<I: WorkerIo<P>>(&mut self, port: usize, mac: MacAddr, l2: usize, mut pkt: P, io: &mut I) {
        let Ok(a) = ArpPacket::new_checked(&pkt.data()[l2..]) else {
            self.drop(DropReason::Truncated);
            return;
        };
        if a.hardware_type() != 1 || a.protocol_type() != 0x0800 {
            self.drop(DropReason::Unsupported);
            return;
        }
        let (op, sha, spa, tpa) = (a.operation(), a.sender_hardware_addr(), a.sender_protocol_addr(), a.target_protocol_addr());
        let for_us = self.ifaces.get(port).is_some_and(|i| i.has_v4(tpa));
        // RFC 826 "Packet Reception": update the sender if known; add it when we
        // are the target.
        if let Some(held) = self.neighbors.learn(port, IpAddr::V4(spa), sha, self.now_ms, for_us) {
            self.send_to_mac(port, sha, held, io);
        }
        if for_us && op == ArpOperation::Request {
            local::arp_reply(pkt.data_mut(), l2, mac);
            self.tx(port, pkt, io);
        }
        // Replies and other ARP traffic are consumed (learned from), not dropped.
    }

    fn ipv4<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, mac: MacAddr, l2: usize, mut pkt: P, io: &mut I) -> Class<'t, P> {
        let d = &pkt.data()[l2..];
        let ip = match Ipv4Packet::new_checked(d) {
            Ok(ip) if ip.verify_checksum() => ip,
            Ok(_) => {
                self.drop(DropReason::MalformedOuter);
                return Class::Done;
            }
            Err(e) => {
                self.drop(if e == crate::wire::Error::Truncated { DropReason::Truncated } else { DropReason::MalformedOuter });
                return Class::Done;
            }
        };
        let dst = ip.dst_addr();
        let local = self.local_v4(port, dst);
        if local == LocalV4::Ours {
            let (proto, hl, total) = (ip.protocol_number(), ip.header_len(), usize::from(ip.total_len()));
            let l4 = &d[hl..total];
            let echo = proto == PROTO_ICMP && l4.first() == Some(&8) && !ip.is_fragment();
            let to_us = ToUs::of(proto, l4, || echo.then(|| IcmpPacket::new_checked(l4).is_ok_and(|i| i.verify_checksum_v4())));
            return self.for_us(table, port, l2, to_us, pkt, io, |d| local::echo_reply_v4(d, l2, mac));
        }
        if dst.is_multicast() || dst.is_broadcast() || local == LocalV4::Broadcast {
            self.drop(DropReason::Unsupported);
            return Class::Done;
        }
        let flow = {
            let proto = ip.protocol_number();
            // Ports only when a policy looks at them (subnet-to-subnet
            // policies, the usual ones, do not).
            let (sp, dp) = if table.outbound_ports_matter_v4() && ip.frag_offset() == 0 { l4_ports(proto, ip.payload()) } else { (0, 0) };
            FlowV4::v4(ip.src_addr(), dst, proto, sp, dp)
        };
        match table.outbound_v4(&flow) {
            // `transit`'s PROTECT case in line for an untagged frame, whose IPv4
            // header was checked above: no version or length check again, no call.
            Decision::Protect(sa) if l2 == ENCAP_L2 => {
                if pkt.data_mut().get_mut(ENCAP_L2..).and_then(|d| d.first_chunk_mut()).is_some_and(decrement_ttl_v4) {
                    return Class::Encap(sa, pkt);
                }
                self.drop(DropReason::TtlExpired);
                Class::Done
            }
            decision => self.transit(decision, l2, pkt, io),
        }
    }

    /// A packet to one of our addresses, IPv4 or IPv6: ESP and UDP 4500 (RFC 3948) go to
    /// decapsulation, a valid echo request is answered in place (`reply` rewrites it),
    /// everything else (IKE on UDP 500, other services) goes to the control plane.
    #[allow(clippy::too_many_arguments)]
    fn for_us<'t, I: WorkerIo<P>>(
        &mut self,
        table: &'t TunnelTable,
        port: usize,
        l2: usize,
        to_us: ToUs,
        mut pkt: P,
        io: &mut I,
        reply: impl FnOnce(&mut [u8]),
    ) -> Class<'t, P> {
        match to_us {
            ToUs::Esp => return self.esp(table, port, l2, pkt, io),
            ToUs::Echo { valid: true } => {
                reply(pkt.data_mut());
                self.tx(port, pkt, io);
            }
            ToUs::Echo { valid: false } => self.drop(DropReason::MalformedOuter),
            ToUs::Other => self.punt(port, pkt, io),
        }
        Class::Done
    }

    /// An IPv6 frame. Out of line: inlined, it doubled `classify`'s code for
    /// the IPv4 paths (and cost them 4–6 instructions a packet in
    /// `perf/esp/insns.sh` once it had `esp_v6`'s fast path); IPv6 pays a call.
    #[inline(never)]
    fn ipv6<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, mac: MacAddr, l2: usize, pkt: P, io: &mut I) -> Class<'t, P> {
        let d = &pkt.data()[l2..];
        // ESP in a header without extension headers, to one of our addresses:
        // read at fixed offsets (`esp_v6`), without the extension-header walk.
        // What it turns down takes the general path below.
        if let Some(loc) = esp::decap::esp_v6(d) {
            // `esp_v6` accepted a whole 40-byte header.
            if self.is_ours_v6(Ipv6Packet::new_unchecked(d).dst_addr()) {
                return self.esp_at(table, port, l2, loc, pkt, io);
            }
        }
        let Ok(ip) = Ipv6Packet::new_checked(d) else {
            self.drop(DropReason::Truncated);
            return Class::Done;
        };
        let Ok(up) = ip.upper_layer() else {
            self.drop(DropReason::MalformedOuter);
            return Class::Done;
        };
        let (src, dst, end) = (ip.src_addr(), ip.dst_addr(), ip.total_len());
        let l4 = &d[up.offset..end];
        let icmp_type = (up.protocol == IpProtocol::Icmpv6 && !up.fragment).then(|| l4.first().copied()).flatten();
        if matches!(icmp_type, Some(local::ND_SOLICIT | local::ND_ADVERT)) {
            let (off, end) = (up.offset, end);
            self.nd(port, mac, l2, off, end, src, pkt, io);
            return Class::Done;
        }
        if self.is_ours_v6(dst) {
            let echo = icmp_type == Some(128);
            let to_us = ToUs::of(u8::from(up.protocol), l4, || echo.then(|| IcmpPacket::new_checked(l4).is_ok_and(|i| i.verify_checksum_v6(src, dst))));
            let off = up.offset;
            return self.for_us(table, port, l2, to_us, pkt, io, |d| local::echo_reply_v6(d, l2, off, end, mac));
        }
        if dst.is_multicast() || src.is_multicast() {
            self.drop(DropReason::Unsupported);
            return Class::Done;
        }
        let proto = u8::from(up.protocol);
        let (sp, dp) = if up.fragment { (0, 0) } else { l4_ports(proto, l4) };
        let flow = FlowV6::v6(src, dst, proto, sp, dp);
        let decision = table.outbound_v6(&flow);
        self.transit(decision, l2, pkt, io)
    }

    /// Neighbour solicitation / advertisement (RFC 4861 §7.2).
    #[allow(clippy::too_many_arguments)]
    fn nd<I: WorkerIo<P>>(&mut self, port: usize, mac: MacAddr, l2: usize, off: usize, end: usize, src: Ipv6Addr, mut pkt: P, io: &mut I) {
        let d = &pkt.data()[l2..];
        // RFC 4861 §7.1.1: hop limit 255 proves the message was not forwarded.
        if d[7] != 255 || !IcmpPacket::new_checked(&d[off..end]).is_ok_and(|i| i.verify_checksum_v6(src, Ipv6Packet::new_unchecked(d).dst_addr())) {
            self.drop(DropReason::MalformedOuter);
            return;
        }
        let icmp = &d[off..end];
        let solicit = icmp[0] == local::ND_SOLICIT;
        let want = if solicit { 1 } else { 2 };
        let Some((target, ll)) = local::nd_parse(icmp, want) else {
            self.drop(DropReason::MalformedOuter);
            return;
        };
        let (who, for_us) = if solicit { (src, self.ifaces.get(port).is_some_and(|i| i.has_v6(target))) } else { (target, false) };
        if let Some(ll) = ll {
            if !who.is_unspecified() {
                if let Some(held) = self.neighbors.learn(port, IpAddr::V6(who), ll, self.now_ms, for_us) {
                    self.send_to_mac(port, ll, held, io);
                }
            }
        }
        if solicit && for_us {
            match local::nd_advert(pkt.data_mut(), l2, target, mac) {
                Ok(len) if pkt.truncate(len).is_ok() => self.tx(port, pkt, io),
                _ => self.drop(DropReason::Truncated),
            }
        }
    }

    /// ESP or UDP 4500 to one of our addresses. The common case, ESP of a
    /// known SA, is inlined into classify; anything else takes [`Self::esp_other`]
    /// (out of line, it was a call with the packet moved in and the `Class`
    /// moved out: ~30 of `Out::esp`'s 116 instructions a 64 B packet).
    #[inline(always)]
    fn esp<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, l2: usize, pkt: P, io: &mut I) -> Class<'t, P> {
        // `ipv4()` verified the header checksum already (IPv6 has none).
        if let Some(Ok(InboundOuter::Esp(loc))) = pkt.data().get(l2..).map(esp::decap::parse_outer_verified) {
            return self.esp_at(table, port, l2, loc, pkt, io);
        }
        self.esp_other(table, port, l2, pkt, io)
    }

    /// [`Self::esp`] once the ESP is found at `loc`.
    #[inline(always)]
    fn esp_at<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, l2: usize, loc: EspLocation, mut pkt: P, io: &mut I) -> Class<'t, P> {
        if let Some(sa) = table.inbound(loc.spi) {
            if pkt.adj(l2).is_ok() {
                return Class::Decap(sa, pkt);
            }
        }
        self.esp_other(table, port, l2, pkt, io)
    }

    /// [`Self::esp`] for everything but ESP of a known SA: IKE and NAT-keepalives
    /// on UDP 4500, unknown SPIs, malformed packets.
    #[cold]
    #[inline(never)]
    fn esp_other<'t, I: WorkerIo<P>>(&mut self, table: &'t TunnelTable, port: usize, l2: usize, pkt: P, io: &mut I) -> Class<'t, P> {
        let Some(ip) = pkt.data().get(l2..) else {
            self.drop(DropReason::Truncated);
            return Class::Done;
        };
        match esp::decap::parse_outer_verified(ip) {
            Ok(InboundOuter::Esp(loc)) => match table.inbound(loc.spi) {
                // Known SA: `esp` returned it unless the adj failed.
                Some(_) => self.drop(DropReason::Truncated),
                None => unknown_spi::missed(table, self.stats, ip, loc.spi, self.now_ms),
            },
            Ok(InboundOuter::Ike { .. }) => self.punt(port, pkt, io),
            Ok(InboundOuter::NatKeepalive) => self.drop(DropReason::NatKeepalive),
            Err(e) => self.drop(e.drop_reason()),
        }
        Class::Done
    }

    fn transit<'t, I: WorkerIo<P>>(&mut self, decision: Decision<'t, OutboundTunnel>, l2: usize, mut pkt: P, io: &mut I) -> Class<'t, P> {
        let reason = match decision {
            Decision::Discard => DropReason::PolicyDiscard,
            Decision::NoPolicy => DropReason::NoPolicy,
            Decision::Trap(t) => trap::held(self.stats, t, self.now_ms),
            Decision::Protect(sa) => {
                // The encap batch keeps ENCAP_L2 bytes of the link header: encap
                // writes the outgoing Ethernet header there (one window change per
                // packet); a VLAN tag is stripped here.
                if l2 != ENCAP_L2 && pkt.adj(l2.saturating_sub(ENCAP_L2)).is_err() {
                    DropReason::Truncated
                } else if !pkt.data_mut().get_mut(ENCAP_L2..).is_some_and(decrement_ttl) {
                    DropReason::TtlExpired
                } else {
                    return Class::Encap(sa, pkt);
                }
            }
            Decision::Bypass => {
                if pkt.adj(l2).is_err() {
                    DropReason::Truncated
                } else {
                    self.forward(pkt, io);
                    return Class::Done;
                }
            }
        };
        self.drop(reason);
        Class::Done
    }

    /// Route an IP packet (no Ethernet header) in clear: TTL, route, MTU, send.
    fn forward<I: WorkerIo<P>>(&mut self, pkt: P, io: &mut I) {
        let mut memo = None;
        self.forward_memo(pkt, io, &mut memo);
        self.hop_done(memo);
    }

    /// Add the frames sent through `memo` to its port's tx counters.
    fn hop_done(&self, memo: Option<HopMemo>) {
        if let Some(m) = memo {
            m.sent.add_to(self.stats, m.hop.port);
        }
    }

    /// [`Self::forward`], remembering in `memo` the last next hop: the packets
    /// of a decap burst mostly go out through one gateway (or a few), so the
    /// own-address check, MTU, neighbour resolution, the Ethernet header and
    /// the port's tx counters are done once per next hop instead of per packet
    /// (the route lookup, a scan of a few prefixes, stays per packet). The
    /// caller passes the memo to [`Self::hop_done`] at the end.
    ///
    /// The packets the memo answers whole go out in line ([`Self::forward_hit`]);
    /// the others take the call ([`Self::forward_miss`]), which also serves the
    /// hosts of connected routes (the memo keeps no route for those). All of it
    /// a call, it cost 53 instructions a packet more (64 B decap, GW=1
    /// `perf/esp/insns.sh`): register saves, argument moves, the packet's
    /// window read three times.
    #[inline(always)]
    fn forward_memo<I: WorkerIo<P>>(&mut self, pkt: P, io: &mut I, memo: &mut Option<HopMemo>) {
        if let Some(pkt) = self.forward_hit(pkt, io, memo) {
            self.forward_miss(pkt, io, memo);
        }
    }

    /// An IPv4 packet that the memo's gateway route takes, to a resolved next
    /// hop not of ours, within its MTU, with a TTL to decrement: decremented and
    /// queued. Any other packet is handed back untouched, for
    /// [`Self::forward_miss`] to forward or drop for its reason.
    #[inline(always)]
    fn forward_hit<I: WorkerIo<P>>(&mut self, mut pkt: P, io: &mut I, memo: &mut Option<HopMemo>) -> Option<P> {
        let Some(m) = memo else { return Some(pkt) };
        if m.own || pkt.len() > usize::from(m.mtu) {
            return Some(pkt);
        }
        let Some([eth4, _]) = &m.eth else { return Some(pkt) };
        let taken = pkt.data_mut().first_chunk_mut::<{ ipv4::HEADER_LEN }>().is_some_and(|h| {
            h[0] >> 4 == 4 && m.route4.is_some_and(|r| r.covers(Ipv4Addr::from(crate::wire::bytes_at::<4>(h, 16)))) && decrement_ttl_v4(h)
        });
        if !taken {
            return Some(pkt);
        }
        m.sent.push(self, m.hop.port, eth4, pkt, io);
        None
    }

    /// [`Self::forward_memo`] for the packets [`Self::forward_hit`] did not take.
    #[inline(never)]
    fn forward_miss<I: WorkerIo<P>>(&mut self, mut pkt: P, io: &mut I, memo: &mut Option<HopMemo>) {
        if !decrement_ttl(pkt.data_mut()) {
            self.drop(DropReason::TtlExpired);
            return;
        }
        // `decrement_ttl` accepted a whole IPv4 or IPv6 header.
        let d = pkt.data();
        let m = if d[0] >> 4 == 4 {
            let dst = Ipv4Packet::new_unchecked(d).dst_addr();
            match memo {
                // The memo's gateway route takes `dst` for certain (no more
                // specific route overlaps it): no scan of the routes either.
                Some(m) if m.route4.is_some_and(|r| r.covers(dst)) => Some(m),
                memo => match (self.routes.route_v4(dst), memo) {
                    // Every destination of a gateway route has the memo's next hop:
                    // no next hop built and compared per packet.
                    (Some(route), Some(m)) if m.route4 == Some(route) => Some(m),
                    (Some(route), memo) => {
                        self.routes.next_hop_v4(route, dst).map(|hop| self.memo_for(memo, hop, Some(route).filter(|r| r.gateway)))
                    }
                    (None, _) => None,
                },
            }
        } else {
            self.routes.lookup_v6(Ipv6Packet::new_unchecked(d).dst_addr()).map(|hop| self.memo_for(memo, hop, None))
        };
        let Some(m) = m else {
            self.drop(DropReason::NoRoute);
            return;
        };
        if m.own {
            let port = m.hop.port;
            self.punt_own(port, pkt, io);
            return;
        }
        if pkt.len() > usize::from(m.mtu) {
            let mtu = m.mtu;
            self.too_big(&pkt, mtu, io);
            return;
        }
        match &m.eth {
            Some([eth4, eth6]) => {
                let eth = if pkt.data().first().map(|b| b >> 4) == Some(6) { eth6 } else { eth4 };
                m.sent.push(self, m.hop.port, eth, pkt, io);
            }
            None => {
                let hop = m.hop;
                let mac = self.send(hop, pkt, io);
                m.eth = mac.zip(self.ifaces.get(hop.port)).map(|(mac, iface)| {
                    [EtherType::Ipv4, EtherType::Ipv6].map(|t| ethernet::header(mac, iface.mac, t))
                });
            }
        }
    }

    /// What the runs of SAs to `dst` (reached through `hop`) need for delivery,
    /// looked up once: the MTU, and the neighbour's MAC address, before sealing,
    /// so that when the peer is resolved encap writes its Ethernet header in the
    /// same pass as the outer header and the frames only need queueing. Asks
    /// again for an address that is getting old.
    fn peer_memo<I: WorkerIo<P>>(&mut self, dst: IpAddr, hop: NextHop, io: &mut I) -> PeerMemo {
        let mtu = self.ifaces.get(hop.port).map_or(DEFAULT_MTU, |i| i.mtu);
        let mac = self.resolve(hop, io);
        let eth = mac.zip(self.ifaces.get(hop.port)).map(|(mac, iface)| {
            let ethertype = if dst.is_ipv6() { EtherType::Ipv6 } else { EtherType::Ipv4 };
            ethernet::header(mac, iface.mac, ethertype)
        });
        PeerMemo { dst, hop, mtu, eth, sent: TxTally::default() }
    }

    /// The memo for `hop` (the current one, or a new one after the current one
    /// is finished); `route4` is the IPv4 gateway route that led to it, if any.
    fn memo_for<'m>(&self, memo: &'m mut Option<HopMemo>, hop: NextHop, route4: Option<RouteV4>) -> &'m mut HopMemo {
        if !memo.as_ref().is_some_and(|m| m.hop == hop) {
            self.hop_done(memo.take());
        }
        match memo {
            Some(m) => {
                m.route4 = route4;
                m
            }
            None => {
                let mtu = self.ifaces.get(hop.port).map_or(DEFAULT_MTU, |i| i.mtu);
                memo.insert(HopMemo { hop, route4, own: self.is_own_hop(hop), mtu, eth: None, sent: TxTally::default() })
            }
        }
    }

    /// Whether a connected route's next hop is one of the port's own addresses:
    /// a decapsulated packet for the gateway itself (a tunnel monitor's echo
    /// reply, issue 7), which must not be routed (ARP for ourselves).
    #[inline]
    fn is_own_hop(&self, hop: NextHop) -> bool {
        self.ifaces.get(hop.port).is_some_and(|i| i.addresses.iter().any(|&(a, _)| a == hop.next_hop))
    }

    /// Punt an IP packet (no Ethernet header) addressed to us, as if received
    /// in clear on `port`: the punt path takes whole frames.
    fn punt_own<I: WorkerIo<P>>(&mut self, port: usize, mut pkt: P, io: &mut I) {
        let Some(mac) = self.ifaces.get(port).map(|i| i.mac) else { return };
        let ethertype = if pkt.data().first().map(|b| b >> 4) == Some(6) { EtherType::Ipv6 } else { EtherType::Ipv4 };
        if pkt.prepend(ethernet::HEADER_LEN).is_err() {
            self.drop(DropReason::NoBufferRoom);
            return;
        }
        let mut eth = EthernetFrame::new_unchecked(&mut pkt.data_mut()[..ethernet::HEADER_LEN]);
        eth.set_dst_addr(mac);
        eth.set_src_addr(mac);
        eth.set_ethertype(ethertype);
        self.punt(port, pkt, io);
    }

    /// Send a packet the gateway originated (no TTL decrement).
    fn forward_local<I: WorkerIo<P>>(&mut self, pkt: P, io: &mut I) {
        let d = pkt.data();
        let hop = match d.first().map(|b| b >> 4) {
            Some(4) => self.routes.lookup_v4(Ipv4Packet::new_unchecked(d).dst_addr()),
            Some(6) => self.routes.lookup_v6(Ipv6Packet::new_unchecked(d).dst_addr()),
            _ => None,
        };
        match hop {
            Some(hop) => {
                self.send(hop, pkt, io);
            }
            None => self.drop(DropReason::NoRoute),
        }
    }

    /// The next hop's MAC address, if known; asks again for one that is getting old.
    #[inline]
    fn resolve<I: WorkerIo<P>>(&mut self, hop: NextHop, io: &mut I) -> Option<MacAddr> {
        let (mac, refresh) = self.neighbors.resolve(hop.port, hop.next_hop, self.now_ms)?;
        if refresh {
            self.request(hop, io);
        }
        Some(mac)
    }

    /// Resolve the next hop, add the Ethernet header, transmit. The MAC address
    /// the packet went to, `None` while the neighbour is unresolved (the packet
    /// is then held).
    fn send<I: WorkerIo<P>>(&mut self, hop: NextHop, pkt: P, io: &mut I) -> Option<MacAddr> {
        match self.resolve(hop, io) {
            Some(mac) => {
                self.send_to_mac(hop.port, mac, pkt, io);
                Some(mac)
            }
            None => {
                let held = self.neighbors.hold(hop.port, hop.next_hop, pkt, self.now_ms);
                if held.displaced.is_some() {
                    self.drop(DropReason::NoNeighbor);
                }
                if held.send_request {
                    self.request(hop, io);
                }
                None
            }
        }
    }

    fn send_to_mac<I: WorkerIo<P>>(&mut self, port: usize, dst: MacAddr, pkt: P, io: &mut I) {
        let Some(iface) = self.ifaces.get(port) else {
            self.drop(DropReason::NoRoute);
            return;
        };
        let ethertype = match pkt.data().first().map(|b| b >> 4) {
            Some(6) => EtherType::Ipv6,
            _ => EtherType::Ipv4,
        };
        let mut sent = TxTally::default();
        sent.push(self, port, &ethernet::header(dst, iface.mac, ethertype), pkt, io);
        sent.add_to(self.stats, port);
    }

    /// ARP request or neighbour solicitation for `hop`.
    fn request<I: WorkerIo<P>>(&mut self, hop: NextHop, io: &mut I) {
        let Some(iface) = self.ifaces.get(hop.port) else { return };
        let Some(mut pkt) = io.alloc() else { return };
        let built = match hop.next_hop {
            IpAddr::V4(t) => iface.first_v4().map(|ip| local::arp_request(&mut pkt, iface.mac, ip, t)),
            IpAddr::V6(t) => iface.first_v6().map(|ip| local::nd_solicit(&mut pkt, iface.mac, ip, t)),
        };
        if matches!(built, Some(Ok(()))) {
            self.tx(hop.port, pkt, io);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Groups::key` gives each SA of a burst the index of its first packet's
    /// SA among the burst's distinct SAs (what a scan of them gives), with SAs
    /// whose slots share a hint entry, hints left from earlier flushes, and no
    /// key past BURST SAs.
    #[test]
    fn group_keys_are_first_appearances_whatever_the_hints_say() {
        let mut ids = crate::sa::id::SlotAllocator::new(1024);
        let sas: Vec<SaRef<()>> = (0..1024).map(|_| SaRef::new(ids.allocate().expect("slot"), Arc::new(()))).collect();
        // Slots 5, 5 + HINTS, 5 + 2 HINTS share an entry; 7 and 300 do not.
        let mut seed = 0x9e37_79b9_u32;
        let mut pick = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        let pools: [Vec<usize>; 3] = [vec![5, 5 + HINTS, 5 + 2 * HINTS, 7, 300], (0..40).collect(), (0..1024).step_by(3).collect()];
        // One table for all rounds, cleared after each as a flush clears it
        // (the worker flushes a burst's batch when full): its hints stay.
        let mut groups = Groups::new();
        for round in 0..300 {
            let pool = &pools[round % 3];
            let mut seen: Vec<usize> = Vec::new();
            for _ in 0..64 {
                let i = pool[pick(pool.len() as u32) as usize];
                let want = match seen.iter().position(|&s| s == i) {
                    Some(k) => Some(k as u8),
                    None if seen.len() < BURST => {
                        seen.push(i);
                        Some((seen.len() - 1) as u8)
                    }
                    None => None,
                };
                assert_eq!(groups.key(&sas[i]), want, "round {round}: slot {i} after {seen:?}");
                if want.is_none() {
                    break;
                }
            }
            groups.clear();
        }
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut h = [0x45u8, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
        assert!(decrement_ttl(&mut h));
        assert_eq!(h[8], 63);
        assert!(Ipv4Packet::new_unchecked(&h[..]).verify_checksum());
        h[8] = 1;
        Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
        assert!(!decrement_ttl(&mut h), "TTL 1 is not forwarded");
    }

    /// `LocalAddrsV4::local` against the definition over the ports' address lists: one
    /// of our addresses (any port), else the directed broadcast (network bits of
    /// a prefix shorter than /31, all host bits set) of a subnet of the receiving
    /// port, else neither.
    #[test]
    fn local_v4_matches_the_address_lists() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut a = Interface::new(mac);
        a.addresses = vec![
            (IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 24),
            (IpAddr::V4(Ipv4Addr::new(10, 1, 0, 255)), 32),
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 30),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ];
        let mut b = Interface::new(mac);
        b.addresses = vec![(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 24), (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 4)), 31)];
        let ifaces = [a, b];
        let addrs = LocalAddrsV4::of(&ifaces);
        let want = |port: usize, dst: Ipv4Addr| {
            let v4 = |i: &Interface| {
                i.addresses.iter().filter_map(|&(a, l)| if let IpAddr::V4(a) = a { Some((u32::from(a), l)) } else { None }).collect::<Vec<_>>()
            };
            if ifaces.iter().any(|i| v4(i).iter().any(|&(a, _)| a == u32::from(dst))) {
                return LocalV4::Ours;
            }
            let d = u32::from(dst);
            let bcast = v4(&ifaces[port]).iter().any(|&(a, l)| l < 31 && d & !(u32::MAX >> l) == a & !(u32::MAX >> l) && d | !(u32::MAX >> l) == u32::MAX);
            if bcast {
                LocalV4::Broadcast
            } else {
                LocalV4::Other
            }
        };
        let mut dsts: Vec<Ipv4Addr> = Vec::new();
        for base in [[10, 1, 0, 0], [192, 0, 2, 8], [198, 51, 100, 0], [203, 0, 113, 4], [10, 1, 1, 0]] {
            for last in [0u8, 1, 2, 3, 4, 5, 9, 10, 11, 12, 254, 255] {
                dsts.push(Ipv4Addr::new(base[0], base[1], base[2], base[3] | last));
            }
        }
        let mut seen = [0usize; 3];
        for port in 0..2 {
            for &dst in &dsts {
                let got = addrs.local(port, dst);
                assert_eq!(got, want(port, dst), "port {port} dst {dst}");
                seen[got as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "every answer occurs: {seen:?}");
    }

    /// The constant-word RFC 1624 update of `decrement_ttl_v4` against the
    /// header checksum computed anew (RFC 1071), over every TTL and a spread of
    /// other header words.
    #[test]
    fn ttl_decrement_v4_matches_a_full_checksum() {
        let mut x: u32 = 0x1234_5678;
        for ttl in 0..=255u8 {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let w = x.to_be_bytes();
                let mut h = [0x45u8, w[0], 0, 60, w[1], w[2], w[3] & 0x5f, w[0], ttl, w[3], 0, 0, 10, w[1], 0, 1, 192, 0, w[2], 2];
                Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
                let before = h;
                if ttl <= 1 {
                    assert!(!decrement_ttl_v4(&mut h));
                    assert_eq!(h, before, "a refused header is left alone");
                    continue;
                }
                assert!(decrement_ttl_v4(&mut h));
                let mut want = before;
                want[8] = ttl - 1;
                Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
                assert_eq!(h, want, "TTL {ttl}, header {before:02x?}");
            }
        }
        // Every checksum value before the decrement, the end-around carry and a
        // result of 0 among them (the identification word takes all values).
        let mut results = std::collections::HashSet::new();
        for id in 0..=u16::MAX {
            let [a, b] = id.to_be_bytes();
            let mut h = [0x45u8, 0, 0, 60, a, b, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 192, 0, 2, 2];
            Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
            let mut want = h;
            want[8] = 63;
            Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
            assert!(decrement_ttl_v4(&mut h));
            assert_eq!(h, want, "identification {id:#06x}");
            results.insert(u16::from_be_bytes([h[10], h[11]]));
        }
        assert!(results.contains(&0) && results.contains(&0xfffe), "the extremes occur");
    }

    /// Push packets 0, 1, 2... with `keys` into `b` (emptied first), group, and
    /// return the packets in their grouped order.
    fn grouped(b: &mut Batch<u32>, keys: &[u8]) -> Vec<Option<u32>> {
        b.len = 0;
        for (i, &k) in keys.iter().enumerate() {
            b.push(i as u32, k);
        }
        b.group();
        b.pkts[..b.len].iter().map(|s| s.0).collect()
    }

    #[test]
    fn batch_groups_runs_stably() {
        let mut b = Batch::<u32>::new();
        assert_eq!(grouped(&mut b, &[1, 0, 1, 0, 2]), [Some(1), Some(3), Some(0), Some(2), Some(4)]);
        assert_eq!(b.next_run(0), Some((0, 2, 0)));
        assert_eq!(b.next_run(2), Some((2, 4, 1)));
        assert_eq!(b.next_run(4), Some((4, 5, 2)));
        assert_eq!(b.next_run(5), None);
    }

    #[test]
    fn batch_in_order_is_left_alone_and_disorder_is_noticed() {
        let mut b = Batch::<u32>::new();
        assert_eq!(grouped(&mut b, &[0, 0, 1, 1, 3]), [Some(0), Some(1), Some(2), Some(3), Some(4)]);
        // A key smaller than the last one (in a later batch) still sorts.
        assert_eq!(grouped(&mut b, &[2, 2, 1]), [Some(2), Some(0), Some(1)]);
        assert_eq!(b.next_run(0), Some((0, 1, 1)));
    }
}
