//! Packet mbuf pools.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use dpdk_sys::rte_mempool;

use crate::eal::LIVE_OBJECTS;
use crate::error::{rte_errno, Error, ErrorKind};
use crate::{Burst, Eal, Mbuf, Result};

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`). Thread-safe: any thread may
/// allocate and free.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
    size: u32,
    name: String,
}

// SAFETY: DPDK's default mempool ops (ring_mp_mc) are multi-producer/multi-consumer safe,
// and per-lcore caches are only touched by their own lcore.
unsafe impl Send for Mempool {}
// SAFETY: as above; all methods take &self and call thread-safe mempool functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with `cache` per-lcore cached mbufs each and
    /// `data_room` bytes of buffer (headroom included; `None` = DPDK's default 2176).
    pub fn new(_eal: &Eal, name: &str, size: u32, cache: u32, data_room: Option<u16>) -> Result<Mempool> {
        let data_room = data_room.unwrap_or(dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16);
        let cname = CString::new(name).map_err(|_| {
            Error::new(ErrorKind::BadArguments, "creating mempool", "name contains a NUL byte", "")
        })?;
        // SAFETY: cname is a valid C string; the other arguments are plain integers.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, dpdk_sys::SOCKET_ID_ANY)
        };
        let Some(ptr) = NonNull::new(p) else {
            let errno = rte_errno();
            let mib = (u64::from(size) * (u64::from(data_room) + 192)).div_ceil(1 << 20);
            let hint = match errno {
                libc::ENOMEM | libc::ENOSPC => format!(
                    "{size} mbufs need about {mib} MiB: with --no-huge raise -m (e.g. -m 1024), otherwise reserve more hugepages, or lower [dpdk].mbufs"
                ),
                libc::EEXIST => format!("a mempool named {name:?} exists already: use another name"),
                libc::EINVAL => "cache size must be <= 512 and <= size / 1.5".to_string(),
                _ => String::new(),
            };
            return Err(Error::from_errno(format!("creating mempool {name:?} of {size} mbufs"), errno, hint));
        };
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        Ok(Mempool { ptr, size, name: name.to_string() })
    }

    /// Allocates one mbuf (empty, default headroom); `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-NULL result is a fresh mbuf we now own.
        let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: p is a freshly allocated mbuf owned by nobody else.
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// Fills the free slots of `burst` (all or nothing, DPDK semantics). Returns how many
    /// were added (0 when the pool cannot supply that many).
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let (slots, room) = burst.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: `slots` has `room` writable pointer slots; on success all are fresh mbufs.
        let ret = unsafe { dpdk_sys::dpdk_shim_pktmbuf_alloc_bulk(self.ptr.as_ptr(), slots, room as u32) };
        if ret != 0 {
            return 0;
        }
        // SAFETY: alloc_bulk succeeded, the `room` slots hold mbufs we own.
        unsafe { burst.filled(room) };
        room
    }

    /// Mbufs currently in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Total number of mbufs.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // An mbuf still out (in a queue, a ring, a leaked Mbuf) would point into freed
        // memory: only free a full pool, otherwise leak it (and keep EAL alive).
        if self.available() == self.size {
            // SAFETY: every mbuf is back in the pool, so nothing refers to it any more.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
            LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
