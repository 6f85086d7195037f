//! An owning packet buffer.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

/// One packet buffer, owned: dropping it returns it to its mempool.
///
/// Data access covers the first segment: ports are configured without scatter, so a
/// received packet is one segment (up to the mempool's data room).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its buffer; moving it to another thread moves that
// ownership (DPDK mbufs are routinely handed between lcores through rings).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must point to a valid mbuf that nothing else owns or frees.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// Gives up ownership; the caller must free or hand the pointer on.
    #[inline]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The raw pointer (still owned by `self`).
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    /// Bytes of packet data in this (first) segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { dpdk_sys::dpdk_shim_pktmbuf_data_len(self.as_ptr()) })
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_pkt_len(self.as_ptr()) as usize }
    }

    /// Packet length (all segments); same as [`Mbuf::pkt_len`].
    #[inline]
    pub fn len(&self) -> usize {
        self.pkt_len()
    }

    /// True when the packet holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pkt_len() == 0
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_nb_segs(self.as_ptr()) }
    }

    /// Input port id set by the PMD on receive.
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_port(self.as_ptr()) }
    }

    /// RSS hash set by the PMD (0 when the PMD does not compute one).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: self owns a valid mbuf.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_rss_hash(self.as_ptr()) }
    }

    /// Free space before the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { dpdk_sys::dpdk_shim_pktmbuf_headroom(self.as_ptr()) })
    }

    /// Free space after the data of the last segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { dpdk_sys::dpdk_shim_pktmbuf_tailroom(self.as_ptr()) })
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes inside the buffer self owns;
        // the borrow of self keeps the buffer alive and unmodified.
        unsafe {
            let p = dpdk_sys::dpdk_shim_pktmbuf_mtod(self.as_ptr()).cast::<u8>();
            std::slice::from_raw_parts(p, self.data_len())
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(), and &mut self guarantees exclusive access.
        unsafe {
            let p = dpdk_sys::dpdk_shim_pktmbuf_mtod(self.as_ptr()).cast::<u8>();
            std::slice::from_raw_parts_mut(p, self.data_len())
        }
    }

    /// Grows the packet at the front by `n` bytes (from the headroom) and returns the new
    /// front bytes; `None` (packet unchanged) if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: self owns a valid mbuf; prepend returns NULL and changes nothing when the
        // headroom is short, else a pointer to `n` bytes now inside the data.
        unsafe {
            let p = dpdk_sys::dpdk_shim_pktmbuf_prepend(self.as_ptr(), n16);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p.cast::<u8>(), n))
        }
    }

    /// Removes `n` bytes from the front; false (unchanged) if the first segment is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else { return false };
        // SAFETY: self owns a valid mbuf; adj returns NULL and changes nothing if too short.
        unsafe { !dpdk_sys::dpdk_shim_pktmbuf_adj(self.as_ptr(), n16).is_null() }
    }

    /// Grows the packet at the end by `n` bytes (from the tailroom) and returns them
    /// (contents unspecified); `None` (unchanged) if the tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: self owns a valid mbuf; append returns NULL when the tailroom is short,
        // else a pointer to `n` bytes at the end of the (last segment's) data.
        unsafe {
            let p = dpdk_sys::dpdk_shim_pktmbuf_append(self.as_ptr(), n16);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p.cast::<u8>(), n))
        }
    }

    /// Removes `n` bytes from the end; false (unchanged) if the last segment is shorter.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else { return false };
        // SAFETY: self owns a valid mbuf; trim returns -1 and changes nothing if too short.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_trim(self.as_ptr(), n16) == 0 }
    }

    /// Resets the mbuf to an empty single-segment packet with the default headroom.
    #[inline]
    pub fn reset(&mut self) {
        // SAFETY: self owns a valid single-owner mbuf.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_reset(self.as_ptr()) }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self is the only owner; after this the pointer is never used again.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_free(self.as_ptr()) }
    }
}
