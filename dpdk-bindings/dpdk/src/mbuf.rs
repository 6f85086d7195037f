//! An owning packet buffer.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

/// Byte offsets in `struct rte_mbuf` (DPDK 22.11; checked by shim.c's static asserts).
const DATA_OFF_OFF: usize = 16;
const NB_SEGS_OFF: usize = 20;
const PKT_LEN_OFF: usize = 36;
const DATA_LEN_OFF: usize = 40;
const BUF_LEN_OFF: usize = 54;

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
        usize::from(self.field_u16(DATA_LEN_OFF))
    }

    /// A `u16` field of the mbuf header at byte offset `off` (one of the `*_OFF`
    /// constants, which shim.c checks against DPDK's layout at build time). Read
    /// directly: these accessors run several times per packet, and the shim's
    /// functions are not inlined across the language boundary.
    #[inline]
    fn field_u16(&self, off: usize) -> u16 {
        // SAFETY: self owns a valid mbuf (at least 128 bytes of header); `off` is a
        // 2-byte-aligned u16 field of it (static asserts in shim.c).
        unsafe { self.as_ptr().cast::<u8>().add(off).cast::<u16>().read() }
    }

    /// Store `v` into the `u16` field at `off` (as [`Self::field_u16`]).
    #[inline]
    fn set_u16(&mut self, off: usize, v: u16) {
        // SAFETY: as in field_u16; &mut self owns the mbuf exclusively.
        unsafe { self.as_ptr().cast::<u8>().add(off).cast::<u16>().write(v) }
    }

    /// `pkt_len` (a 4-byte-aligned u32 field, offset checked in shim.c).
    #[inline]
    fn pkt_len_field(&self) -> u32 {
        // SAFETY: as in field_u16, for the u32 at PKT_LEN_OFF.
        unsafe { self.as_ptr().cast::<u8>().add(PKT_LEN_OFF).cast::<u32>().read() }
    }

    #[inline]
    fn set_pkt_len_field(&mut self, v: u32) {
        // SAFETY: as in pkt_len_field; &mut self owns the mbuf exclusively.
        unsafe { self.as_ptr().cast::<u8>().add(PKT_LEN_OFF).cast::<u32>().write(v) }
    }

    /// Start of the first segment's data: `buf_addr + data_off` (rte_pktmbuf_mtod).
    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: buf_addr is the first field (pointer-aligned) of a valid mbuf; data_off
        // stays within the buffer (DPDK invariant).
        unsafe {
            let buf = self.as_ptr().cast::<*mut u8>().read();
            buf.add(usize::from(self.field_u16(DATA_OFF_OFF)))
        }
    }

    /// Hints the CPU to load the first cache line of the data (the headers) ahead
    /// of use: a NIC writes a packet by DMA, so the first read of its header would
    /// otherwise miss. A hint only: nothing is read or written.
    #[inline]
    pub fn prefetch_data(&self) {
        prefetch(self.data_ptr());
    }

    /// Hints the CPU to fetch the mbuf's first cache line (lengths, data offset)
    /// for writing: a packet another core wrote last, which this core will
    /// change. Needs nothing from the mbuf's memory (unlike [`Self::prefetch_data`]).
    #[inline]
    pub fn prefetch_header_for_write(&self) {
        prefetch_for_write(self.as_ptr().cast::<u8>());
    }

    /// [`Self::prefetch_data`] for writing, with the line in front of the data
    /// (where encapsulation prepends its headers) and the line just past it
    /// (where an ESP trailer goes): one ownership request for each line another
    /// core wrote, instead of a shared copy and then an upgrade, and no miss on
    /// the store into a line that was not touched since the mbuf's last use.
    #[inline]
    pub fn prefetch_data_for_write(&self) {
        let data = self.data_ptr();
        prefetch_for_write(data.wrapping_sub(CACHE_LINE));
        prefetch_for_write(data);
        prefetch_for_write(data.wrapping_add(self.data_len()));
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
        // rte_pktmbuf_headroom is data_off.
        usize::from(self.field_u16(DATA_OFF_OFF))
    }

    /// Free space after the data of the last segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // rte_pktmbuf_tailroom: buf_len - data_off - data_len (of this segment).
        usize::from(self.field_u16(BUF_LEN_OFF))
            .saturating_sub(usize::from(self.field_u16(DATA_OFF_OFF)) + self.data_len())
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes inside the buffer self owns;
        // the borrow of self keeps the buffer alive and unmodified.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.data_len()) }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(), and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.data_len()) }
    }

    /// Grows the packet at the front by `n` bytes (from the headroom) and returns the new
    /// front bytes; `None` (packet unchanged) if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        // rte_pktmbuf_prepend, in Rust (the ESP worker prepends twice per packet).
        let n16 = u16::try_from(n).ok()?;
        let off = self.field_u16(DATA_OFF_OFF);
        if n16 > off {
            return None;
        }
        let len = self.field_u16(DATA_LEN_OFF);
        let total = u32::from(len) + u32::from(n16);
        let len = u16::try_from(total).ok()?;
        self.set_u16(DATA_OFF_OFF, off - n16);
        self.set_u16(DATA_LEN_OFF, len);
        let pkt_len = self.pkt_len_field().wrapping_add(u32::from(n16));
        self.set_pkt_len_field(pkt_len);
        // SAFETY: the n bytes before the old data start lie in the headroom (n <= data_off)
        // of the buffer self owns, and are now the first n bytes of the data.
        Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), n) })
    }

    /// Removes `n` bytes from the front; false (unchanged) if the first segment is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        // rte_pktmbuf_adj, in Rust.
        let Ok(n16) = u16::try_from(n) else { return false };
        let len = self.field_u16(DATA_LEN_OFF);
        if n16 > len {
            return false;
        }
        let off = self.field_u16(DATA_OFF_OFF);
        self.set_u16(DATA_LEN_OFF, len - n16);
        self.set_u16(DATA_OFF_OFF, off.wrapping_add(n16));
        let pkt_len = self.pkt_len_field().wrapping_sub(u32::from(n16));
        self.set_pkt_len_field(pkt_len);
        true
    }

    /// Grows the packet at the end by `n` bytes (from the tailroom) and returns them
    /// (contents unspecified); `None` (unchanged) if the tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        if self.field_u16(NB_SEGS_OFF) == 1 {
            // rte_pktmbuf_append for one segment (the last is the first), in Rust.
            if n > self.tailroom() {
                return None;
            }
            let len = self.data_len();
            self.set_u16(DATA_LEN_OFF, self.field_u16(DATA_LEN_OFF) + n16);
            let pkt_len = self.pkt_len_field().wrapping_add(u32::from(n16));
            self.set_pkt_len_field(pkt_len);
            // SAFETY: the n bytes after the old data end lie in the tailroom (n <= tailroom)
            // of the buffer self owns, and are now the last n bytes of the data.
            return Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr().add(len), n) });
        }
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
        if self.field_u16(NB_SEGS_OFF) == 1 {
            // rte_pktmbuf_trim for one segment, in Rust.
            let len = self.field_u16(DATA_LEN_OFF);
            if n16 > len {
                return false;
            }
            self.set_u16(DATA_LEN_OFF, len - n16);
            let pkt_len = self.pkt_len_field().wrapping_sub(u32::from(n16));
            self.set_pkt_len_field(pkt_len);
            return true;
        }
        // SAFETY: self owns a valid mbuf; trim returns -1 and changes nothing if too short.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_trim(self.as_ptr(), n16) == 0 }
    }

    /// Grows the packet at the front by `front` bytes (from the headroom) and sets its
    /// length to `len` bytes: `prepend(front)` then `append`/`trim` to `len` in one
    /// store of the three fields (the ESP worker turns a received frame into an ESP
    /// frame this way, instead of four separate window changes). Single-segment mbufs
    /// only: false (unchanged) for a chain, or when the headroom or the buffer is too
    /// small (then the separate operations would refuse too).
    #[inline(always)]
    pub fn reshape(&mut self, front: usize, len: usize) -> bool {
        if self.field_u16(NB_SEGS_OFF) != 1 {
            return false;
        }
        let (Ok(front), Ok(len16)) = (u16::try_from(front), u16::try_from(len)) else { return false };
        let off = self.field_u16(DATA_OFF_OFF);
        if front > off {
            return false;
        }
        let new_off = off - front;
        if usize::from(new_off) + len > usize::from(self.field_u16(BUF_LEN_OFF)) {
            return false;
        }
        self.set_u16(DATA_OFF_OFF, new_off);
        self.set_u16(DATA_LEN_OFF, len16);
        self.set_pkt_len_field(u32::from(len16));
        true
    }

    /// The last `head` bytes of the headroom followed by the first segment's data,
    /// writable; `None` if the headroom is shorter than `head`. The ESP encap path
    /// writes the Ethernet header in front of the packet this way right after
    /// [`Self::reshape`], through one slice.
    #[inline]
    pub fn data_behind(&mut self, head: usize) -> Option<&mut [u8]> {
        let off = usize::from(self.field_u16(DATA_OFF_OFF));
        let start = off.checked_sub(head)?;
        // SAFETY: buf_addr is the first field of a valid mbuf; `start..off + data_len`
        // lies in the buffer self owns (head <= data_off, and data_off + data_len is
        // within it by the DPDK invariant); &mut self gives exclusive access.
        unsafe {
            let buf = self.as_ptr().cast::<*mut u8>().read();
            Some(std::slice::from_raw_parts_mut(buf.add(start), head + self.data_len()))
        }
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

/// Prefetch the cache line holding `p` into every level (`prefetcht0`).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that neither faults nor changes memory, whatever the
    // address (Intel SDM, PREFETCHh).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Bytes in a cache line (RTE_CACHE_LINE_SIZE on x86-64).
const CACHE_LINE: usize = 64;

/// Prefetch the cache line holding `p` with intent to write (`prefetchw`): the
/// line comes in exclusive, so the store that follows needs no second request to
/// the core that last wrote it. `_MM_HINT_ET0` lowers to `prefetcht0` unless the
/// crate is built with the (unstable) `prfchw` target feature, hence the asm.
/// Only where [`can_prefetch_for_write`] (a plain prefetch elsewhere).
#[inline(always)]
fn prefetch_for_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW is a hint that neither faults nor changes memory, whatever the
    // address (Intel SDM, PREFETCHW; callers check CPUID PRFCHW first).
    unsafe {
        std::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(target_arch = "x86_64"))]
    prefetch(p);
}

/// Whether the CPU has PREFETCHW (CPUID 8000_0001h ECX bit 8, PRFCHW; Intel since
/// Broadwell, AMD since K6), asked once.
pub(crate) fn can_prefetch_for_write() -> bool {
    static PRFCHW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRFCHW.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        #[allow(unused_unsafe)] // `__cpuid` is a safe fn in newer Rust
        // SAFETY: CPUID exists on every x86-64 CPU, and every x86-64 CPU has leaf 8000_0001h.
        let ecx = unsafe { std::arch::x86_64::__cpuid(0x8000_0001) }.ecx;
        #[cfg(not(target_arch = "x86_64"))]
        let ecx = 0;
        ecx & (1 << 8) != 0
    })
}

#[cfg(test)]
mod tests {
    /// The CPUID bit read is the one Linux reports as `3dnowprefetch` (its name for
    /// PRFCHW, arch/x86/include/asm/cpufeatures.h).
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn prefetchw_detection_agrees_with_the_kernel() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).expect("a flags line");
        let kernel = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(super::can_prefetch_for_write(), kernel, "{flags}");
    }
}
