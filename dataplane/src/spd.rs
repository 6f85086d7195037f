//! Outbound Security Policy Database (RFC 4301 §4.4.1): an ordered list of
//! selectors (source/destination prefix, IP protocol, port ranges); the first
//! policy that matches a packet's 5-tuple decides PROTECT / BYPASS / DISCARD.
//! A packet that matches nothing is discarded by the caller (RFC 4301 §5.1:
//! the SPD must be complete; we count it as its own drop reason).
//!
//! Compiled form, per address family:
//! - few policies: a linear scan over compact, masked selectors (no branches on
//!   "any", a mask of zero matches everything);
//! - many policies: *tuple space search* (Srinivasan et al., SIGCOMM 1999) —
//!   policies whose ports are "any" or one value are grouped by their shape
//!   (prefix lengths, which fields are exact); each group is one hash lookup on
//!   the masked 5-tuple. Policies with real port ranges stay in a linear list.
//!   First-match order is kept: each hit carries its policy index, the smallest
//!   wins, and groups/the list are skipped once they cannot beat the best so far.
//!
//! The crossover between the two was measured (perf/README.md, "SA tables").

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::BitAnd;

/// Families with at most this many policies are scanned linearly by
/// [`Strategy::Auto`] (measured crossover; see perf/README.md).
pub const LINEAR_MAX: usize = 12;

/// Why a policy could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdError {
    /// Prefix length longer than the address.
    #[error("prefix length /{len} is longer than the address ({max} bits)")]
    PrefixLength {
        /// Requested length.
        len: u8,
        /// Address bits.
        max: u8,
    },
    /// Port range with start > end.
    #[error("port range {start}-{end} is empty: the start must not exceed the end")]
    PortRange {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// Source is IPv4 and destination IPv6, or the other way round.
    #[error("selector mixes IPv4 and IPv6: source and destination must be the same family")]
    MixedFamily,
}

/// An address prefix of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPrefix {
    /// IPv4 address and prefix length (0..=32).
    V4(Ipv4Addr, u8),
    /// IPv6 address and prefix length (0..=128).
    V6(Ipv6Addr, u8),
}

impl IpPrefix {
    /// A validated prefix (host bits are ignored when matching).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, SpdError> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if len > max {
            return Err(SpdError::PrefixLength { len, max });
        }
        Ok(match addr {
            IpAddr::V4(a) => IpPrefix::V4(a, len),
            IpAddr::V6(a) => IpPrefix::V6(a, len),
        })
    }

    /// 0.0.0.0/0.
    pub const ANY_V4: IpPrefix = IpPrefix::V4(Ipv4Addr::UNSPECIFIED, 0);
    /// ::/0.
    pub const ANY_V6: IpPrefix = IpPrefix::V6(Ipv6Addr::UNSPECIFIED, 0);

    fn len(self) -> u8 {
        match self {
            IpPrefix::V4(_, l) | IpPrefix::V6(_, l) => l,
        }
    }

    fn check(self) -> Result<(), SpdError> {
        let max = match self {
            IpPrefix::V4(..) => 32,
            IpPrefix::V6(..) => 128,
        };
        if self.len() > max {
            return Err(SpdError::PrefixLength {
                len: self.len(),
                max,
            });
        }
        Ok(())
    }
}

/// Inclusive port range; `ANY` is 0-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// Every port (and "no ports": protocols without ports carry 0 in the flow key).
    pub const ANY: PortRange = PortRange {
        start: 0,
        end: u16::MAX,
    };

    /// `start..=end`.
    pub fn new(start: u16, end: u16) -> Result<Self, SpdError> {
        if start > end {
            return Err(SpdError::PortRange { start, end });
        }
        Ok(Self { start, end })
    }

    /// Exactly one port.
    pub const fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    /// First port.
    pub const fn start(self) -> u16 {
        self.start
    }

    /// Last port.
    pub const fn end(self) -> u16 {
        self.end
    }

    fn is_any(self) -> bool {
        self == Self::ANY
    }

    fn is_single(self) -> bool {
        self.start == self.end
    }

    fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

/// One SPD selector (RFC 4301 §4.4.1.1). For ICMP, callers put type/code in the
/// port fields of the flow (RFC 4301 §4.4.1.3 treats them like ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source (local) prefix.
    pub src: IpPrefix,
    /// Destination (remote) prefix.
    pub dst: IpPrefix,
    /// Next-layer protocol; `None` = ANY.
    pub proto: Option<u8>,
    /// Source ports.
    pub src_ports: PortRange,
    /// Destination ports.
    pub dst_ports: PortRange,
}

impl Selector {
    /// Subnet to subnet, any protocol and port (what IKEv2 usually negotiates).
    pub fn subnets(src: IpPrefix, dst: IpPrefix) -> Self {
        Self {
            src,
            dst,
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        }
    }

    fn validate(&self) -> Result<(), SpdError> {
        self.src.check()?;
        self.dst.check()?;
        match (self.src, self.dst) {
            (IpPrefix::V4(..), IpPrefix::V4(..)) | (IpPrefix::V6(..), IpPrefix::V6(..)) => Ok(()),
            _ => Err(SpdError::MixedFamily),
        }
    }

    /// Whether `flow` matches (e.g. the inbound policy check after decap,
    /// RFC 4301 §5.2 step 4).
    pub fn matches(&self, flow: &Flow) -> bool {
        match (self.src, self.dst, flow) {
            (IpPrefix::V4(s, sl), IpPrefix::V4(d, dl), Flow::V4(f)) => {
                Masked::from_parts(u32::from(s), sl, u32::from(d), dl, self).matches(f)
            }
            (IpPrefix::V6(s, sl), IpPrefix::V6(d, dl), Flow::V6(f)) => {
                Masked::from_parts(u128::from(s), sl, u128::from(d), dl, self).matches(f)
            }
            _ => false,
        }
    }

    /// This selector with its masks computed, as policy `index`, in the list of
    /// its family; `false` (nothing pushed) for one of mixed families, which
    /// matches no flow.
    fn compile_into(&self, index: u32, v4: &mut Vec<Masked<u32>>, v6: &mut Vec<Masked<u128>>) -> bool {
        match (self.src, self.dst) {
            (IpPrefix::V4(s, sl), IpPrefix::V4(d, dl)) => {
                v4.push(Masked { index, ..Masked::from_parts(u32::from(s), sl, u32::from(d), dl, self) });
            }
            (IpPrefix::V6(s, sl), IpPrefix::V6(d, dl)) => {
                v6.push(Masked { index, ..Masked::from_parts(u128::from(s), sl, u128::from(d), dl, self) });
            }
            _ => return false,
        }
        true
    }
}

/// Selectors compiled for one question, whether any of them matches a flow:
/// the inbound policy check of an SA's decrypted packets (RFC 4301 §5.2 step
/// 4). Compiled as the SPD is (a linear scan over masked selectors, tuple
/// space search above [`LINEAR_MAX`] of a family), so an SA with many
/// selectors costs a hash lookup or two a packet instead of a scan of them all.
/// Answers exactly as `selectors.iter().any(|s| s.matches(flow))`.
#[derive(Debug)]
pub struct SelectorSet {
    /// The one IPv4 selector, when there is just one (the usual SA): matched
    /// in place, without the family's vectors.
    one_v4: Option<Masked<u32>>,
    v4: Family<u32>,
    v6: Family<u128>,
}

impl SelectorSet {
    /// Compile `selectors` (their order does not matter).
    pub fn new(selectors: &[Selector]) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, sel) in selectors.iter().enumerate() {
            sel.compile_into(u32::try_from(i).unwrap_or(u32::MAX), &mut v4, &mut v6);
        }
        let (n4, n6) = (v4.len(), v6.len());
        let one_v4 = match &*v4 {
            [one] => Some(*one),
            _ => None,
        };
        SelectorSet { one_v4, v4: Family::build(v4, n4 > LINEAR_MAX), v6: Family::build(v6, n6 > LINEAR_MAX) }
    }

    /// Whether any selector matches an IPv4 flow.
    #[inline]
    pub fn matches_v4(&self, flow: &FlowV4) -> bool {
        match &self.one_v4 {
            // No loop around the usual SA's one selector (37 instructions a
            // packet less at 64 B decap than the scan, `perf/esp/insns.sh`).
            Some(one) => one.matches(flow),
            None => self.matches_v4_many(flow),
        }
    }

    /// [`Self::matches_v4`] of none or several selectors, out of line: inlined
    /// into the decap path it cost the one-selector case ~10 instructions.
    #[inline(never)]
    fn matches_v4_many(&self, flow: &FlowV4) -> bool {
        self.v4.lookup(flow).is_some()
    }

    /// Whether some IPv4 selector restricts ports: if not, [`Self::matches_v4`]
    /// gives one answer whatever a flow's ports.
    #[inline]
    pub fn ports_matter_v4(&self) -> bool {
        self.v4.ports
    }

    /// Whether any selector matches `flow`.
    #[inline]
    pub fn matches(&self, flow: &Flow) -> bool {
        match flow {
            Flow::V4(f) => self.matches_v4(f),
            Flow::V6(f) => self.v6.lookup(f).is_some(),
        }
    }
}

/// Address as an integer, host byte order (`u32` for IPv4, `u128` for IPv6).
pub trait AddrWord:
    Copy + Eq + Hash + Default + Debug + Send + Sync + BitAnd<Output = Self> + 'static
{
    /// Bits in the address.
    const BITS: u8;
    /// Network mask of `len` leading ones; a `len` above `BITS` (an `IpPrefix`
    /// built by hand, without [`IpPrefix::new`]) counts as `BITS`.
    fn mask(len: u8) -> Self;
    /// The address in 64 bits for hashing: itself (IPv4), its halves xored (IPv6).
    fn fold64(self) -> u64;
}

impl AddrWord for u32 {
    const BITS: u8 = 32;
    fn mask(len: u8) -> Self {
        u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(len)))
            .unwrap_or(0)
    }
    #[inline]
    fn fold64(self) -> u64 {
        u64::from(self)
    }
}

impl AddrWord for u128 {
    const BITS: u8 = 128;
    fn mask(len: u8) -> Self {
        u128::MAX
            .checked_shl(128u32.saturating_sub(u32::from(len)))
            .unwrap_or(0)
    }
    #[inline]
    fn fold64(self) -> u64 {
        (self as u64) ^ ((self >> 64) as u64)
    }
}

/// A packet's 5-tuple in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey<W> {
    /// Source address (host order).
    pub src: W,
    /// Destination address (host order).
    pub dst: W,
    /// IP protocol / IPv6 next header of the transport.
    pub proto: u8,
    /// Source port, 0 when the protocol has none.
    pub src_port: u16,
    /// Destination port, 0 when the protocol has none.
    pub dst_port: u16,
}

/// Two 64-bit words into the hasher: an IPv4 key's addresses side by side in
/// one, protocol and ports in the other (IPv6 addresses folded first). The
/// tuple-space groups hash one masked key per lookup: field by field (the
/// derived `Hash`) that was five dependent multiplies of [`FoldHasher`].
impl<W: AddrWord> Hash for FlowKey<W> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.src.fold64() ^ self.dst.fold64().rotate_left(32));
        state.write_u64(u64::from(self.proto) << 32 | u64::from(self.src_port) << 16 | u64::from(self.dst_port));
    }
}

/// IPv4 5-tuple.
pub type FlowV4 = FlowKey<u32>;
/// IPv6 5-tuple.
pub type FlowV6 = FlowKey<u128>;

/// A 5-tuple of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// IPv4.
    V4(FlowV4),
    /// IPv6.
    V6(FlowV6),
}

impl FlowV4 {
    /// Build from addresses.
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, src_port: u16, dst_port: u16) -> Self {
        Self {
            src: u32::from(src),
            dst: u32::from(dst),
            proto,
            src_port,
            dst_port,
        }
    }
}

impl FlowV6 {
    /// Build from addresses.
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, src_port: u16, dst_port: u16) -> Self {
        Self {
            src: u128::from(src),
            dst: u128::from(dst),
            proto,
            src_port,
            dst_port,
        }
    }
}

/// A selector compiled to masks: `(field & mask) == value` for addresses and
/// protocol, inclusive ranges for ports.
#[derive(Debug, Clone, Copy)]
struct Masked<W> {
    src: W,
    src_mask: W,
    dst: W,
    dst_mask: W,
    proto: u8,
    proto_mask: u8,
    sport: PortRange,
    dport: PortRange,
    /// Position in the ordered SPD (smaller = earlier = wins).
    index: u32,
}

impl<W: AddrWord> Masked<W> {
    fn from_parts(src: W, src_len: u8, dst: W, dst_len: u8, sel: &Selector) -> Self {
        let (src_mask, dst_mask) = (W::mask(src_len), W::mask(dst_len));
        Self {
            src: src & src_mask,
            src_mask,
            dst: dst & dst_mask,
            dst_mask,
            proto: sel.proto.unwrap_or(0),
            proto_mask: if sel.proto.is_some() { 0xff } else { 0 },
            sport: sel.src_ports,
            dport: sel.dst_ports,
            index: 0,
        }
    }

    #[inline]
    fn matches(&self, f: &FlowKey<W>) -> bool {
        (f.src & self.src_mask) == self.src
            && (f.dst & self.dst_mask) == self.dst
            && (f.proto & self.proto_mask) == self.proto
            && self.sport.contains(f.src_port)
            && self.dport.contains(f.dst_port)
    }
}

/// Multiply-rotate hasher for the tuple-space groups (keys are 5-tuples; the
/// SPD contents come from config/IKE, a peer only chooses what it looks up).
#[derive(Debug, Default, Clone, Copy)]
struct FoldHasher(u64);

impl FoldHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes bucket bits from the bottom and tag bits from the top.
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
}

/// One tuple-space group: policies of the same shape, keyed by their masked values.
#[derive(Debug)]
struct Group<W> {
    src_mask: W,
    dst_mask: W,
    proto_mask: u8,
    sport_mask: u16,
    dport_mask: u16,
    /// Smallest policy index in the group, to skip it when it cannot win.
    min_index: u32,
    map: HashMap<FlowKey<W>, u32, BuildHasherDefault<FoldHasher>>,
}

impl<W: AddrWord> Group<W> {
    #[inline]
    fn lookup(&self, f: &FlowKey<W>) -> Option<u32> {
        let key = FlowKey {
            src: f.src & self.src_mask,
            dst: f.dst & self.dst_mask,
            proto: f.proto & self.proto_mask,
            src_port: f.src_port & self.sport_mask,
            dst_port: f.dst_port & self.dport_mask,
        };
        self.map.get(&key).copied()
    }
}

/// How to compile the SPD (benchmarks force one; the gateway uses `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Linear up to [`LINEAR_MAX`] policies per family, tuple space above.
    #[default]
    Auto,
    /// Always scan linearly.
    Linear,
    /// Always use tuple space search for eligible policies.
    TupleSpace,
}

#[derive(Debug)]
struct Family<W> {
    groups: Vec<Group<W>>,
    /// Policies scanned in order (all of them in linear mode).
    linear: Vec<Masked<W>>,
    /// Some policy restricts ports (or ICMP type and code): without one, a
    /// flow's ports change no answer, and its packets need not be read for them.
    ports: bool,
}

impl<W: AddrWord> Family<W> {
    fn build(policies: Vec<Masked<W>>, tuple_space: bool) -> Self {
        let ports = policies.iter().any(|p| !p.sport.is_any() || !p.dport.is_any());
        if !tuple_space {
            return Self {
                groups: Vec::new(),
                linear: policies,
                ports,
            };
        }
        let mut linear = Vec::new();
        let mut groups: Vec<Group<W>> = Vec::new();
        for p in policies {
            let ports_hashable = (p.sport.is_any() || p.sport.is_single())
                && (p.dport.is_any() || p.dport.is_single());
            if !ports_hashable {
                linear.push(p);
                continue;
            }
            let sport_mask = if p.sport.is_any() { 0 } else { u16::MAX };
            let dport_mask = if p.dport.is_any() { 0 } else { u16::MAX };
            let shape = (p.src_mask, p.dst_mask, p.proto_mask, sport_mask, dport_mask);
            let pos = groups.iter().position(|g| {
                (
                    g.src_mask,
                    g.dst_mask,
                    g.proto_mask,
                    g.sport_mask,
                    g.dport_mask,
                ) == shape
            });
            let group = match pos {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        src_mask: p.src_mask,
                        dst_mask: p.dst_mask,
                        proto_mask: p.proto_mask,
                        sport_mask,
                        dport_mask,
                        min_index: p.index,
                        map: HashMap::default(),
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            let key = FlowKey {
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                src_port: p.sport.start & sport_mask,
                dst_port: p.dport.start & dport_mask,
            };
            // Same shape and key = same selector: a later one is shadowed.
            group.map.entry(key).or_insert(p.index);
        }
        // Policies arrive in order, so each group's min_index is its first
        // policy; sort groups so the early-exit test works.
        groups.sort_by_key(|g| g.min_index);
        Self { groups, linear, ports }
    }

    /// The first matching policy's index. A linear SPD (up to [`LINEAR_MAX`]
    /// policies, the common case) is scanned inline; the tuple-space search is a
    /// call: inlining all of it kept the whole lookup out of line, a call per
    /// transit packet (3-6% of the 64 B encap worker with one policy).
    #[inline(always)]
    fn lookup(&self, f: &FlowKey<W>) -> Option<u32> {
        if self.groups.is_empty() {
            return Self::scan(&self.linear, f, u32::MAX);
        }
        self.lookup_groups(f)
    }

    #[inline(never)]
    fn lookup_groups(&self, f: &FlowKey<W>) -> Option<u32> {
        let mut best = u32::MAX;
        for g in &self.groups {
            if g.min_index >= best {
                break;
            }
            if let Some(i) = g.lookup(f) {
                best = best.min(i);
            }
        }
        Self::scan(&self.linear, f, best)
    }

    /// The first of `linear` that matches `f`, if it comes before `best`; else
    /// `best` (`None` for `u32::MAX`).
    #[inline(always)]
    fn scan(linear: &[Masked<W>], f: &FlowKey<W>, mut best: u32) -> Option<u32> {
        for p in linear {
            if p.index >= best {
                break;
            }
            if p.matches(f) {
                best = p.index;
                break;
            }
        }
        (best != u32::MAX).then_some(best)
    }

    fn len(&self) -> usize {
        self.linear.len() + self.groups.iter().map(|g| g.map.len()).sum::<usize>()
    }
}

/// A compiled, immutable SPD whose policies carry an action of type `A`
/// (the SA tables use [`crate::sa::PolicyAction`]).
#[derive(Debug)]
pub struct Spd<A> {
    v4: Family<u32>,
    v6: Family<u128>,
    actions: Box<[A]>,
}

impl<A> Spd<A> {
    /// No policies: every lookup misses.
    pub fn empty() -> Self {
        Self {
            v4: Family::build(Vec::new(), false),
            v6: Family::build(Vec::new(), false),
            actions: Box::new([]),
        }
    }

    /// Compile `policies`, earliest first (the caller sorts by priority).
    pub fn build(
        policies: impl IntoIterator<Item = (Selector, A)>,
        strategy: Strategy,
    ) -> Result<Self, SpdError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut actions = Vec::new();
        for (sel, action) in policies {
            sel.validate()?;
            let index = u32::try_from(actions.len()).unwrap_or(u32::MAX);
            if !sel.compile_into(index, &mut v4, &mut v6) {
                return Err(SpdError::MixedFamily);
            }
            actions.push(action);
        }
        let tss = |n: usize| match strategy {
            Strategy::Auto => n > LINEAR_MAX,
            Strategy::Linear => false,
            Strategy::TupleSpace => true,
        };
        let (n4, n6) = (v4.len(), v6.len());
        Ok(Self {
            v4: Family::build(v4, tss(n4)),
            v6: Family::build(v6, tss(n6)),
            actions: actions.into_boxed_slice(),
        })
    }

    /// Whether some IPv4 policy restricts ports: if not, [`Self::lookup_v4`]
    /// gives one answer whatever a flow's ports.
    #[inline]
    pub fn ports_matter_v4(&self) -> bool {
        self.v4.ports
    }

    /// First matching policy's action for an IPv4 packet; `None` = no policy.
    #[inline]
    pub fn lookup_v4(&self, flow: &FlowV4) -> Option<&A> {
        self.v4
            .lookup(flow)
            .and_then(|i| self.actions.get(i as usize))
    }

    /// First matching policy's action for an IPv6 packet; `None` = no policy.
    #[inline]
    pub fn lookup_v6(&self, flow: &FlowV6) -> Option<&A> {
        self.v6
            .lookup(flow)
            .and_then(|i| self.actions.get(i as usize))
    }

    /// Either family.
    #[inline]
    pub fn lookup(&self, flow: &Flow) -> Option<&A> {
        match flow {
            Flow::V4(f) => self.lookup_v4(f),
            Flow::V6(f) => self.lookup_v6(f),
        }
    }

    /// Position (0 = first) of the policy that matches, for tests and `show`.
    pub fn position(&self, flow: &Flow) -> Option<usize> {
        match flow {
            Flow::V4(f) => self.v4.lookup(f),
            Flow::V6(f) => self.v6.lookup(f),
        }
        .map(|i| i as usize)
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Policies reachable through the compiled structure (shadowed duplicates
    /// are dropped from hash groups), for tests.
    pub fn compiled_len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// All actions in order.
    pub fn actions(&self) -> &[A] {
        &self.actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    fn p4(a: &str, len: u8) -> IpPrefix {
        IpPrefix::new(IpAddr::V4(v4(a)), len).expect("test prefix")
    }

    /// Reference semantics: first selector in order that matches.
    fn first_match(sels: &[Selector], f: &Flow) -> Option<usize> {
        sels.iter().position(|s| s.matches(f))
    }

    #[test]
    fn first_match_wins_and_strategies_agree() {
        let sels = vec![
            Selector {
                proto: Some(6),
                dst_ports: PortRange::single(22),
                ..Selector::subnets(p4("10.1.0.0", 16), p4("10.2.0.5", 32))
            },
            Selector {
                dst_ports: PortRange::new(1000, 2000).expect("range"),
                ..Selector::subnets(p4("10.1.0.0", 16), p4("10.2.0.0", 16))
            },
            Selector::subnets(p4("10.1.0.0", 16), p4("10.2.0.0", 16)),
            Selector::subnets(p4("10.1.0.0", 16), p4("10.2.0.0", 16)),
            Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V4),
        ];
        let flows = [
            (
                FlowV4::v4(v4("10.1.2.3"), v4("10.2.0.5"), 6, 5555, 22),
                Some(0),
            ),
            (
                FlowV4::v4(v4("10.1.2.3"), v4("10.2.0.5"), 17, 5555, 22),
                Some(2),
            ),
            (
                FlowV4::v4(v4("10.1.2.3"), v4("10.2.9.9"), 17, 1, 1500),
                Some(1),
            ),
            (
                FlowV4::v4(v4("10.1.2.3"), v4("10.2.9.9"), 17, 1, 2001),
                Some(2),
            ),
            (FlowV4::v4(v4("10.9.2.3"), v4("10.2.9.9"), 1, 0, 0), Some(4)),
        ];
        for strategy in [Strategy::Linear, Strategy::TupleSpace, Strategy::Auto] {
            let spd =
                Spd::build(sels.iter().enumerate().map(|(i, s)| (*s, i)), strategy).expect("valid");
            for (f, want) in flows {
                let flow = Flow::V4(f);
                assert_eq!(spd.position(&flow), want, "{strategy:?} {f:?}");
                assert_eq!(first_match(&sels, &flow), want, "reference {f:?}");
                assert_eq!(spd.lookup_v4(&f).copied(), want);
            }
            assert_eq!(spd.lookup_v6(&FlowV6::default()), None, "no v6 policy");
        }
    }

    #[test]
    fn rejects_bad_selectors() {
        assert_eq!(
            IpPrefix::new(IpAddr::V4(v4("10.0.0.0")), 33),
            Err(SpdError::PrefixLength { len: 33, max: 32 })
        );
        assert!(PortRange::new(10, 9).is_err());
        let mixed = Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V6);
        assert_eq!(
            Spd::build([(mixed, ())], Strategy::Auto).err(),
            Some(SpdError::MixedFamily)
        );
        let bad = Selector::subnets(IpPrefix::V4(v4("1.2.3.4"), 40), IpPrefix::ANY_V4);
        assert!(Spd::build([(bad, ())], Strategy::Auto).is_err());
    }

    #[test]
    fn ipv6_prefixes() {
        let a: Ipv6Addr = "2001:db8:1::".parse().expect("addr");
        let b: Ipv6Addr = "2001:db8:2::".parse().expect("addr");
        let sel = Selector::subnets(
            IpPrefix::new(IpAddr::V6(a), 48).expect("p"),
            IpPrefix::new(IpAddr::V6(b), 48).expect("p"),
        );
        let spd = Spd::build([(sel, "tunnel")], Strategy::TupleSpace).expect("valid");
        let inside = FlowV6::v6(
            "2001:db8:1::7".parse().expect("a"),
            "2001:db8:2:ffff::1".parse().expect("a"),
            58,
            0,
            0,
        );
        let outside = FlowV6 {
            dst: u128::from(b) ^ (1 << 80),
            ..inside
        };
        assert_eq!(spd.lookup_v6(&inside), Some(&"tunnel"));
        assert_eq!(spd.lookup_v6(&outside), None);
        assert_eq!(spd.lookup_v4(&FlowV4::default()), None);
    }

    #[test]
    fn masks() {
        assert_eq!(u32::mask(0), 0);
        assert_eq!(u32::mask(24), 0xffff_ff00);
        assert_eq!(u32::mask(32), u32::MAX);
        assert_eq!(u128::mask(0), 0);
        assert_eq!(u128::mask(128), u128::MAX);
        assert_eq!(u128::mask(1), 1 << 127);
        // Out of range (a hand-built IpPrefix): a full mask, not an underflow panic.
        assert_eq!(u32::mask(40), u32::MAX);
        assert_eq!(u128::mask(200), u128::MAX);
    }

    /// A set of one compiled IPv4 selector, or of all of them, matches exactly
    /// the IPv4 flows `Selector::matches` does, prefix lengths out of range
    /// included; an IPv6 or mixed selector matches no IPv4 flow.
    #[test]
    fn selector_set_agrees_with_matches() {
        let sels = [
            Selector::subnets(IpPrefix::V4(v4("10.1.0.0"), 16), IpPrefix::V4(v4("10.2.0.0"), 24)),
            Selector::subnets(IpPrefix::V4(v4("0.0.0.0"), 0), IpPrefix::V4(v4("10.2.0.7"), 32)),
            Selector::subnets(IpPrefix::V4(v4("10.1.0.7"), 33), IpPrefix::V4(v4("10.2.0.0"), 255)),
            Selector {
                proto: Some(17),
                src_ports: PortRange::new(1000, 2000).expect("range"),
                dst_ports: PortRange::new(9, 9).expect("range"),
                ..Selector::subnets(IpPrefix::V4(v4("10.1.0.0"), 24), IpPrefix::V4(v4("10.2.0.0"), 16))
            },
        ];
        let v6 = IpPrefix::V6("2001:db8::".parse().expect("addr"), 32);
        let others = [Selector::subnets(v6, v6), Selector::subnets(IpPrefix::V4(v4("10.1.0.0"), 16), v6)];
        let all = SelectorSet::new(&sels);
        let mut hits = 0;
        for (i, sel) in sels.iter().enumerate() {
            let one = SelectorSet::new(&sels[i..=i]);
            for src in ["10.1.0.7", "10.1.0.8", "10.1.1.7", "10.3.0.1"] {
                for dst in ["10.2.0.7", "10.2.0.8", "10.2.1.1", "10.9.0.1"] {
                    for (proto, sp, dp) in [(17, 1500, 9), (17, 999, 9), (17, 1500, 10), (6, 1500, 9), (1, 8, 0)] {
                        let f = FlowV4::v4(v4(src), v4(dst), proto, sp, dp);
                        let want = sel.matches(&Flow::V4(f));
                        hits += usize::from(want);
                        assert_eq!(one.matches_v4(&f), want, "{sel:?} {f:?}");
                        assert_eq!(all.matches_v4(&f), sels.iter().any(|s| s.matches(&Flow::V4(f))), "{f:?}");
                        assert!(!SelectorSet::new(&others).matches_v4(&f));
                    }
                }
            }
        }
        assert!(hits > 0 && hits < sels.len() * 80, "{hits}");
    }

    /// `Selector::matches` takes a selector that never went through `Spd::build`
    /// (so no `validate`): a prefix length the family cannot have must not panic.
    #[test]
    fn matches_survives_out_of_range_prefix_len() {
        let sel = Selector::subnets(
            IpPrefix::V4(v4("10.1.0.7"), 33),
            IpPrefix::V4(v4("10.2.0.0"), 255),
        );
        let hit = Flow::V4(FlowV4 {
            src: u32::from(v4("10.1.0.7")),
            dst: u32::from(v4("10.2.0.0")),
            ..FlowV4::default()
        });
        let miss = Flow::V4(FlowV4 {
            src: u32::from(v4("10.1.0.8")),
            ..FlowV4::default()
        });
        assert!(sel.matches(&hit));
        assert!(!sel.matches(&miss));
        assert!(Spd::build([(sel, ())], Strategy::Linear).is_err());
    }
}
