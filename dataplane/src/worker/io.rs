//! How the worker hands packets out: transmit queues, the punt ring to the
//! control plane and a packet allocator (for ARP requests and ICMP errors). In
//! the gateway these are DPDK tx bursts, an `rte_ring` and the mbuf pool; tests
//! record into vectors.

use crate::packet::{NoRoom, Packet};
use crate::stats::CoreStats;

/// The worker's outputs. None of the methods may block, allocate on the heap
/// or log in production implementations.
pub trait WorkerIo<P> {
    /// Queue `pkt` (a whole Ethernet frame) for transmission on port `port`;
    /// gives it back when the queue is full (the worker drops and counts it).
    fn tx(&mut self, port: usize, pkt: P) -> Result<(), P>;

    /// Hand `pkt` (a whole Ethernet frame received on `port`) to the control
    /// plane; gives it back when the punt ring is full.
    fn punt(&mut self, port: usize, pkt: P) -> Result<(), P>;

    /// An empty packet with the usual head- and tailroom, `None` if the pool is
    /// exhausted.
    fn alloc(&mut self) -> Option<P>;

    /// Hand `pkt` (ESP, Ethernet header stripped) to worker `owner`, which owns
    /// its inbound SA (`handoff.rs`); gives it back when there is no ring to
    /// `owner`. `stats` counts packets a full ring refuses. Single-worker
    /// outputs have no rings.
    fn handoff(&mut self, _owner: usize, pkt: P, _stats: &CoreStats) -> Result<(), P> {
        Err(pkt)
    }

    /// [`Self::handoff`] for plaintext of an outbound SA worker `owner`
    /// encrypts for (IP header first), counted apart where there are rings.
    fn handoff_plain(&mut self, owner: usize, pkt: P, stats: &CoreStats) -> Result<(), P> {
        self.handoff(owner, pkt, stats)
    }
}

/// A packet slot of a batch: `None` once its packet has been moved out. An
/// empty slot behaves as a zero-length packet with no room, so the ESP burst
/// functions can run over a slice of slots without unwrapping.
#[derive(Debug)]
pub(crate) struct Slot<P>(pub(crate) Option<P>);

impl<P: Packet> Packet for Slot<P> {
    fn data(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |p| p.data())
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.as_mut().map_or(&mut [], |p| p.data_mut())
    }
    fn headroom(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.headroom())
    }
    fn tailroom(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.tailroom())
    }
    fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.as_mut().map_or(Err(NoRoom { wanted: n, available: 0 }), |p| p.prepend(n))
    }
    fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.as_mut().map_or(Err(NoRoom { wanted: n, available: 0 }), |p| p.adj(n))
    }
    fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.as_mut().map_or(Err(NoRoom { wanted: n, available: 0 }), |p| p.append(n))
    }
    fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.as_mut().map_or(Err(NoRoom { wanted: n, available: 0 }), |p| p.trim(n))
    }
    // The packet's own one-step versions: the defaults would go through the
    // separate operations above (ESP encap runs on slots).
    fn reshape(&mut self, front: usize, len: usize) -> Result<(), NoRoom> {
        self.0.as_mut().map_or(Err(NoRoom { wanted: front, available: 0 }), |p| p.reshape(front, len))
    }
    // Always inlined: out of line (with the mbuf's version inlined into it) it
    // was a call with six register saves per encapsulated packet, ~2.5% of the
    // 64 B encap profile's time.
    #[inline(always)]
    fn reshape_behind(&mut self, head: usize, front: usize, len: usize) -> Result<&mut [u8], NoRoom> {
        match self.0.as_mut() {
            Some(p) => p.reshape_behind(head, front, len),
            None => Err(NoRoom { wanted: front.saturating_add(head), available: 0 }),
        }
    }
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.len())
    }
}

/// Packets recorded per output, for tests, examples and offline tools.
#[derive(Debug, Default)]
pub struct RecordingIo<P> {
    /// (port, frame) in transmit order.
    pub sent: Vec<(usize, P)>,
    /// (port, frame) punted.
    pub punted: Vec<(usize, P)>,
    /// Refuse transmission after this many packets (tests of the tx-full path).
    pub tx_capacity: Option<usize>,
    /// Refuse punting (tests of the punt-ring-full path).
    pub punt_full: bool,
    /// Packets `alloc` may still hand out; `None` = unlimited.
    pub alloc_budget: Option<usize>,
    /// Makes an empty packet.
    pub make: Option<fn() -> P>,
}

impl<P> RecordingIo<P> {
    /// Records everything; `make` builds the packets `alloc` returns.
    pub fn new(make: fn() -> P) -> Self {
        RecordingIo { sent: Vec::new(), punted: Vec::new(), tx_capacity: None, punt_full: false, alloc_budget: None, make: Some(make) }
    }
}

impl<P> WorkerIo<P> for RecordingIo<P> {
    fn tx(&mut self, port: usize, pkt: P) -> Result<(), P> {
        if self.tx_capacity.is_some_and(|c| self.sent.len() >= c) {
            return Err(pkt);
        }
        self.sent.push((port, pkt));
        Ok(())
    }

    fn punt(&mut self, port: usize, pkt: P) -> Result<(), P> {
        if self.punt_full {
            return Err(pkt);
        }
        self.punted.push((port, pkt));
        Ok(())
    }

    fn alloc(&mut self) -> Option<P> {
        if let Some(b) = self.alloc_budget.as_mut() {
            *b = b.checked_sub(1)?;
        }
        self.make.map(|m| m())
    }
}
