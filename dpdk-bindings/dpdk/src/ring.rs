//! Lock-free rings of mbufs (rte_ring): multi-producer/multi-consumer
//! ([`Ring`]), or single-producer/single-consumer split into its two ends
//! ([`Ring::spsc`]: [`RingProducer`], [`RingConsumer`]), which skips the
//! compare-and-swap of the MP/MC head update.

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_sys::rte_ring;

use crate::eal::LIVE_OBJECTS;
use crate::error::{rte_errno, Error, ErrorKind};
use crate::{Burst, Eal, Mbuf, Result};

// `Option<Mbuf>` is a nullable mbuf pointer (Mbuf is repr(transparent) over NonNull),
// which lets a slice of slots be handed to rte_ring as an array of pointers.
const _: () = assert!(std::mem::size_of::<Option<Mbuf>>() == std::mem::size_of::<*mut dpdk_sys::rte_mbuf>());

/// A ring of owned mbufs, for handing packets between lcores (e.g. punt to the control
/// plane). MP/MC: any thread may enqueue and dequeue. Mbufs left in it are freed on drop.
#[derive(Debug)]
pub struct Ring {
    ptr: NonNull<rte_ring>,
}

// SAFETY: a default (flags 0) rte_ring is multi-producer/multi-consumer safe.
unsafe impl Send for Ring {}
// SAFETY: as above; enqueue/dequeue take &self and are MP/MC safe.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring holding up to `capacity` mbufs (rounded up to a power of two minus one
    /// by DPDK unless exact).
    pub fn new(eal: &Eal, name: &str, capacity: u32) -> Result<Ring> {
        Ring::create(eal, name, capacity, 0)
    }

    /// A single-producer/single-consumer ring of `capacity` mbufs, as its two
    /// ends: each can move to its own thread, neither can be shared, so the
    /// SP/SC rule holds by construction.
    pub fn spsc(eal: &Eal, name: &str, capacity: u32) -> Result<(RingProducer, RingConsumer)> {
        let ring = Arc::new(Ring::create(eal, name, capacity, dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ)?);
        Ok((RingProducer { ring: Arc::clone(&ring) }, RingConsumer { ring }))
    }

    fn create(_eal: &Eal, name: &str, capacity: u32, flags: u32) -> Result<Ring> {
        let cname = CString::new(name)
            .map_err(|_| Error::new(ErrorKind::BadArguments, "creating ring", "name contains a NUL byte", ""))?;
        // SAFETY: valid C string; RING_F_EXACT_SZ makes `capacity` the usable size.
        let p = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, dpdk_sys::SOCKET_ID_ANY, dpdk_sys::RING_F_EXACT_SZ | flags)
        };
        let Some(ptr) = NonNull::new(p) else {
            let errno = rte_errno();
            let hint = match errno {
                libc::EEXIST => format!("a ring named {name:?} exists already: use another name"),
                libc::ENOMEM => "raise -m (with --no-huge) or reserve more hugepages".to_string(),
                _ => String::new(),
            };
            return Err(Error::from_errno(format!("creating ring {name:?} of {capacity}"), errno, hint));
        };
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        Ok(Ring { ptr })
    }

    /// Moves as many mbufs as fit from the front of `burst` into the ring; the rest stay
    /// in `burst`. Returns how many moved.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let len = burst.len() as u32;
        if len == 0 {
            return 0;
        }
        // SAFETY: the first `len` slots are owned mbufs; the ring takes ownership of the
        // `n` it accepts, which we then drop from the burst.
        unsafe {
            let n =
                dpdk_sys::dpdk_shim_ring_enqueue_burst(self.ptr.as_ptr(), burst.head().cast::<*mut c_void>(), len)
                    as usize;
            burst.consumed(n);
            n
        }
    }

    /// Moves up to the free room of `burst` from the ring into it; returns how many moved.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let (slots, room) = burst.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: `slots` has `room` writable slots; the ring only ever holds mbufs that
        // enqueue_burst handed over, so what comes out are owned mbufs.
        unsafe {
            let n = dpdk_sys::dpdk_shim_ring_dequeue_burst(self.ptr.as_ptr(), slots.cast::<*mut c_void>(), room as u32)
                as usize;
            burst.filled(n);
            n
        }
    }

    /// Moves the leading run of `Some` slots into the ring as far as it has room,
    /// leaving `None` behind; returns how many moved.
    #[inline]
    fn enqueue_slots(&self, slots: &mut [Option<Mbuf>]) -> usize {
        let len = slots.iter().take_while(|s| s.is_some()).count();
        if len == 0 {
            return 0;
        }
        // SAFETY: slots[..len] are Some, i.e. non-null owned mbuf pointers laid out as
        // `*mut rte_mbuf` (checked at compile time above). The ring takes ownership of the
        // first `n`; forgetting them below keeps the slots from freeing what the ring now owns.
        let n = unsafe {
            dpdk_sys::dpdk_shim_ring_enqueue_burst(self.ptr.as_ptr(), slots.as_ptr().cast::<*mut c_void>(), len as u32)
        } as usize;
        for s in &mut slots[..n] {
            std::mem::forget(s.take());
        }
        n
    }

    /// Fills the leading run of `None` slots from the ring; returns how many it filled.
    #[inline]
    fn dequeue_slots(&self, slots: &mut [Option<Mbuf>]) -> usize {
        let room = slots.iter().take_while(|s| s.is_none()).count();
        if room == 0 {
            return 0;
        }
        // SAFETY: slots[..room] are None (null pointers, nothing to leak); the ring writes
        // up to `room` pointers to owned mbufs that enqueue handed over, which makes
        // those slots `Some` owned mbufs; the rest stay null (`None`).
        unsafe {
            dpdk_sys::dpdk_shim_ring_dequeue_burst(self.ptr.as_ptr(), slots.as_mut_ptr().cast::<*mut c_void>(), room as u32)
                as usize
        }
    }

    /// Number of mbufs in the ring.
    pub fn len(&self) -> usize {
        // SAFETY: valid ring.
        unsafe { dpdk_sys::dpdk_shim_ring_count(self.ptr.as_ptr()) as usize }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut b: Burst<64> = Burst::new();
        while self.dequeue_burst(&mut b) > 0 {
            b.clear();
        }
        // SAFETY: the ring is empty and nobody else holds it (we are dropping the only owner).
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The sending end of an SP/SC ring ([`Ring::spsc`]). Not `Clone`, and every
/// operation takes `&mut self`: one producer at a time.
#[derive(Debug)]
pub struct RingProducer {
    // Never exposed: a `&Ring` would allow a second producer.
    ring: Arc<Ring>,
}

impl RingProducer {
    /// Moves as many mbufs as fit from the front of `burst` into the ring; the rest stay.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        self.ring.enqueue_burst(burst)
    }

    /// Moves the leading run of `Some` slots into the ring as far as it has room
    /// (`None` is left behind); returns how many moved.
    #[inline]
    pub fn enqueue_slots(&mut self, slots: &mut [Option<Mbuf>]) -> usize {
        self.ring.enqueue_slots(slots)
    }

    /// Mbufs in the ring.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// The receiving end of an SP/SC ring ([`Ring::spsc`]).
#[derive(Debug)]
pub struct RingConsumer {
    ring: Arc<Ring>,
}

impl RingConsumer {
    /// Moves up to the free room of `burst` from the ring into it; returns how many moved.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        self.ring.dequeue_burst(burst)
    }

    /// Fills the leading run of `None` slots from the ring; returns how many it filled.
    #[inline]
    pub fn dequeue_slots(&mut self, slots: &mut [Option<Mbuf>]) -> usize {
        self.ring.dequeue_slots(slots)
    }

    /// Mbufs in the ring.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// The gateway's handoff rings between ESP workers (dataplane::worker handoff.rs).
impl dataplane::worker::HandoffSender<Mbuf> for RingProducer {
    #[inline]
    fn send(&mut self, pkts: &mut [Option<Mbuf>]) -> usize {
        self.enqueue_slots(pkts)
    }
}

impl dataplane::worker::HandoffReceiver<Mbuf> for RingConsumer {
    /// The received packets' mbuf headers and data lines are prefetched for
    /// writing: another core wrote them, and the worker changes both next
    /// (lengths; outer headers, TTL, trailer). The headers first, all of them:
    /// the data lines' addresses are read from the headers. On a CPU without
    /// PREFETCHW, the first data lines are prefetched for reading.
    #[inline]
    fn receive(&mut self, slots: &mut [Option<Mbuf>]) -> usize {
        let n = self.dequeue_slots(slots);
        let got = slots[..n].iter().flatten();
        if crate::mbuf::can_prefetch_for_write() {
            got.clone().for_each(Mbuf::prefetch_header_for_write);
            got.for_each(Mbuf::prefetch_data_for_write);
        } else {
            got.for_each(Mbuf::prefetch_data);
        }
        n
    }
}
