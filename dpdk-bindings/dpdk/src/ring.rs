//! Lock-free multi-producer/multi-consumer rings of mbufs (rte_ring).

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use dpdk_sys::rte_ring;

use crate::eal::LIVE_OBJECTS;
use crate::error::{rte_errno, Error, ErrorKind};
use crate::{Burst, Eal, Result};

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
    pub fn new(_eal: &Eal, name: &str, capacity: u32) -> Result<Ring> {
        let cname = CString::new(name)
            .map_err(|_| Error::new(ErrorKind::BadArguments, "creating ring", "name contains a NUL byte", ""))?;
        // SAFETY: valid C string; RING_F_EXACT_SZ makes `capacity` the usable size.
        let p = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, dpdk_sys::SOCKET_ID_ANY, dpdk_sys::RING_F_EXACT_SZ)
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
