//! The immutable snapshot the workers read: inbound SPI map and outbound SPD.
//!
//! Generic over the per-SA immutable data of each direction (`I` inbound, `O`
//! outbound: keys, AEAD instance, prebuilt outer header, next hop — defined by
//! `esp`). Both are behind an `Arc` so an SA that did not change is shared by
//! consecutive snapshots instead of copied.

use std::ops::Deref;
use std::sync::Arc;

use super::id::SaId;
use super::spi_map::SpiMap;
use super::tombstone::Tombstones;
use super::Spi;
use crate::spd::{Flow, FlowV4, FlowV6, Spd};

/// An installed SA of one direction: its runtime-state id and immutable data.
#[derive(Debug)]
pub struct SaRef<T> {
    id: SaId,
    sa: Arc<T>,
}

impl<T> Clone for SaRef<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            sa: Arc::clone(&self.sa),
        }
    }
}

impl<T> SaRef<T> {
    pub(crate) fn new(id: SaId, sa: Arc<T>) -> Self {
        Self { id, sa }
    }

    /// Slot of this SA's runtime state (sequence counter, replay window, counters).
    #[inline]
    pub fn id(&self) -> SaId {
        self.id
    }

    /// The shared immutable data.
    #[inline]
    pub fn arc(&self) -> &Arc<T> {
        &self.sa
    }
}

impl<T> Deref for SaRef<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.sa
    }
}

/// Inbound SA as found by SPI.
pub type InboundSa<I> = SaRef<I>;
/// Outbound SA as found through a PROTECT policy.
pub type OutboundSa<O> = SaRef<O>;

/// What a policy does with matching packets (RFC 4301 §4.4.1). `S` names the SA:
/// an [`SaId`] in the control API, the resolved [`OutboundSa`] in snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction<S> {
    /// Encrypt with this outbound SA.
    Protect(S),
    /// Forward in clear.
    Bypass,
    /// Drop.
    Discard,
    /// No SA yet: drop, and ask the control plane to negotiate one for this
    /// trap (the gateway maps the id to its connection; RFC 4301 §5.1's
    /// "acquire", strongSwan's trap policies).
    Trap(TrapId),
}

/// Which trap a packet hit (the gateway maps it to a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrapId(pub u32);

/// Outcome of an outbound lookup.
#[derive(Debug)]
pub enum Decision<'a, O> {
    /// Encrypt with this SA.
    Protect(&'a OutboundSa<O>),
    /// Forward in clear.
    Bypass,
    /// Drop: a DISCARD policy matched.
    Discard,
    /// Drop: a trap policy matched; no SA yet.
    Trap(TrapId),
    /// Drop: no policy matched (RFC 4301 §5.1: the SPD must be complete).
    NoPolicy,
}

/// Compiled SPD with resolved outbound SAs.
pub type OutboundSpd<O> = Spd<PolicyAction<OutboundSa<O>>>;

/// One immutable snapshot of the SA tables.
#[derive(Debug)]
pub struct SaTable<I, O> {
    pub(crate) inbound: SpiMap<InboundSa<I>>,
    /// Shared by consecutive snapshots when no policy or outbound SA changed.
    pub(crate) spd: Arc<OutboundSpd<O>>,
    /// Inbound SPIs removed recently (looked at only after a miss).
    pub(crate) deleted: Tombstones,
}

impl<I, O> SaTable<I, O> {
    /// The inbound SA for an SPI taken from a packet (any value; misses are cheap).
    #[inline]
    pub fn inbound(&self, spi: Spi) -> Option<&InboundSa<I>> {
        self.inbound.get(spi.0)
    }

    /// Whether `spi`, which [`Self::inbound`] did not find, belonged to an
    /// inbound SA removed recently (deleted, or replaced by a rekey).
    #[inline]
    pub fn was_deleted(&self, spi: Spi) -> bool {
        self.deleted.contains(spi)
    }

    /// The recently removed inbound SPIs.
    pub fn deleted(&self) -> &Tombstones {
        &self.deleted
    }

    /// Outbound decision for an IPv4 inner packet.
    #[inline(always)]
    pub fn outbound_v4(&self, flow: &FlowV4) -> Decision<'_, O> {
        decide(self.spd.lookup_v4(flow))
    }

    /// Whether the outbound decision for an IPv4 packet can depend on its
    /// ports ([`Spd::ports_matter_v4`](crate::spd::Spd::ports_matter_v4)).
    #[inline(always)]
    pub fn outbound_ports_matter_v4(&self) -> bool {
        self.spd.ports_matter_v4()
    }

    /// Outbound decision for an IPv6 inner packet.
    #[inline]
    pub fn outbound_v6(&self, flow: &FlowV6) -> Decision<'_, O> {
        decide(self.spd.lookup_v6(flow))
    }

    /// Outbound decision for either family.
    #[inline]
    pub fn outbound(&self, flow: &Flow) -> Decision<'_, O> {
        decide(self.spd.lookup(flow))
    }

    /// Number of inbound SAs.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// The compiled SPD.
    pub fn spd(&self) -> &OutboundSpd<O> {
        &self.spd
    }

    /// Bytes of the inbound index (buckets only; SA data is counted by the caller).
    pub fn inbound_index_bytes(&self) -> usize {
        self.inbound.index_bytes()
    }

    /// Longest probe sequence in the inbound map (1 = every SPI in its home bucket).
    pub fn inbound_max_probe(&self) -> usize {
        self.inbound.max_probe()
    }

    /// All inbound SAs (SPI, SA), in no particular order.
    pub fn inbound_iter(&self) -> impl Iterator<Item = (Spi, &InboundSa<I>)> {
        self.inbound.iter().map(|(spi, sa)| (Spi(spi), sa))
    }
}

#[inline]
fn decide<O>(action: Option<&PolicyAction<OutboundSa<O>>>) -> Decision<'_, O> {
    match action {
        Some(PolicyAction::Protect(sa)) => Decision::Protect(sa),
        Some(PolicyAction::Bypass) => Decision::Bypass,
        Some(PolicyAction::Discard) => Decision::Discard,
        Some(PolicyAction::Trap(t)) => Decision::Trap(*t),
        None => Decision::NoPolicy,
    }
}
