//! A fixed-size array of owned mbufs: the unit of rx, tx and ring transfers.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::Mbuf;

/// Up to `N` owned mbufs in a fixed array (no allocation). Mbufs still in the burst when it
/// is dropped or cleared are freed.
pub struct Burst<const N: usize = 32> {
    // Invariant: ptrs[..len] are valid mbufs owned by this burst; the rest is garbage.
    ptrs: [*mut rte_mbuf; N],
    len: usize,
}

// SAFETY: the burst owns its mbufs exclusively, like a Vec<Mbuf>.
unsafe impl<const N: usize> Send for Burst<N> {}

impl<const N: usize> std::fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).field("capacity", &N).finish()
    }
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        Burst { ptrs: [std::ptr::null_mut(); N], len: 0 }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more mbufs fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Maximum number of mbufs.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of
        // *mut rte_mbuf; ptrs[..len] are non-null owned mbufs (invariant).
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, mutable (to edit packets in place).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; &mut self gives exclusive access. Callers can only swap
        // or edit Mbufs through the slice, which keeps every slot a valid owned mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Adds an mbuf at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot was a valid owned mbuf (invariant) and leaves the burst now.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(self.ptrs[self.len])) })
    }

    /// Moves as many mbufs as fit from the front of `src` to the end of `self`, in order;
    /// the rest stay in `src`. Returns how many moved.
    #[inline]
    pub fn take_from<const M: usize>(&mut self, src: &mut Burst<M>) -> usize {
        let n = (N - self.len).min(src.len);
        self.ptrs[self.len..self.len + n].copy_from_slice(&src.ptrs[..n]);
        self.len += n;
        // SAFETY: the first n mbufs of src now belong to self.
        unsafe { src.consumed(n) };
        n
    }

    /// Keeps the mbufs for which `keep` returns true (in order) and frees the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            // SAFETY: slot i is a valid owned mbuf; we take it out and either put it back
            // at `kept` (<= i) or drop (free) it, so every slot below `kept` stays valid.
            let mut m = unsafe { Mbuf::from_raw(NonNull::new_unchecked(self.ptrs[i])) };
            if keep(&mut m) {
                self.ptrs[kept] = m.into_raw().as_ptr();
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// [`Mbuf::prefetch_data`] for every mbuf, so that the later packets' headers
    /// load while the first ones are worked on.
    #[inline]
    pub fn prefetch_data(&self) {
        self.as_slice().iter().for_each(Mbuf::prefetch_data);
    }

    /// Takes every mbuf out, front to back; the ones not consumed are freed when the
    /// iterator is dropped.
    pub fn drain(&mut self) -> Drain<'_, N> {
        // len = 0 up front: if the Drain is leaked (mem::forget) the rest leaks too, but
        // nothing is ever freed twice.
        let end = std::mem::replace(&mut self.len, 0);
        Drain { burst: self, next: 0, end }
    }

    /// Frees every mbuf.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: ptrs[..len] are owned mbufs; after freeing, len = 0 forgets them.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Free slots at the end, for a C function to fill. Returns (pointer, room).
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut rte_mbuf, usize) {
        // SAFETY: len <= N so the offset stays inside (or one past) the array.
        (unsafe { self.ptrs.as_mut_ptr().add(self.len) }, N - self.len)
    }

    /// Records that a C function wrote `n` valid owned mbufs into the spare slots.
    ///
    /// # Safety
    /// `n` slots after `len` must now hold valid mbufs owned by this burst.
    #[inline]
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// Pointer to the first held mbuf, for a C function that takes ownership of a prefix.
    #[inline]
    pub(crate) fn head(&mut self) -> *mut *mut rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// Records that the first `n` mbufs were handed to C (sent/enqueued); the rest move
    /// to the front, in order.
    ///
    /// # Safety
    /// The first `n` mbufs must no longer be owned by this burst.
    #[inline]
    pub(crate) unsafe fn consumed(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator returned by [`Burst::drain`].
#[derive(Debug)]
pub struct Drain<'a, const N: usize> {
    burst: &'a mut Burst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.end {
            return None;
        }
        let p = self.burst.ptrs[self.next];
        self.next += 1;
        // SAFETY: slot `next` was an owned mbuf not yet handed out; Drop below only frees
        // the slots after `next`.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }
}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest > 0 {
            // SAFETY: slots next..len are still owned and not handed out: free them.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(self.burst.ptrs.as_mut_ptr().add(self.next), rest as u32)
            };
        }
    }
}
