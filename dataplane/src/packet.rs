//! The packet buffer the dataplane works on.
//!
//! A packet is one contiguous byte window inside a larger buffer, with free room
//! before it (headroom, where outer headers are prepended) and after it (tailroom,
//! where the ESP trailer and ICV are appended). The operations mirror DPDK's
//! `rte_pktmbuf_prepend/adj/append/trim` on a single-segment mbuf, so the DPDK
//! `Mbuf` implements this trait without copying; [`HeapPacket`] implements it on a
//! `Vec<u8>` for tests, fuzzing and benchmarks.
//!
//! None of the operations allocate. When there is not enough room they fail with
//! [`NoRoom`] and leave the packet unchanged.

/// The buffer has not enough headroom/tailroom, or the packet is shorter than the
/// bytes to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet buffer has no room for {wanted} more bytes ({available} available)")]
pub struct NoRoom {
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes that were available.
    pub available: usize,
}

/// A single-segment packet buffer with headroom and tailroom.
pub trait Packet {
    /// The packet bytes.
    fn data(&self) -> &[u8];

    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];

    /// Free bytes in front of the packet.
    fn headroom(&self) -> usize;

    /// Free bytes after the packet.
    fn tailroom(&self) -> usize;

    /// Grow the packet by `n` bytes at the front (`rte_pktmbuf_prepend`).
    fn prepend(&mut self, n: usize) -> Result<(), NoRoom>;

    /// Remove `n` bytes from the front (`rte_pktmbuf_adj`).
    fn adj(&mut self, n: usize) -> Result<(), NoRoom>;

    /// Grow the packet by `n` bytes at the end (`rte_pktmbuf_append`); the new
    /// bytes have unspecified contents.
    fn append(&mut self, n: usize) -> Result<(), NoRoom>;

    /// Remove `n` bytes from the end (`rte_pktmbuf_trim`).
    fn trim(&mut self, n: usize) -> Result<(), NoRoom>;

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the packet has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Grow the packet by `front` bytes at the front and make it `len` bytes long
    /// (bytes added at the end have unspecified contents): `prepend(front)` and then
    /// `append`/`trim` to `len` as one operation, unchanged on [`NoRoom`]. Turning a
    /// received frame into an ESP frame needs this one window change instead of four.
    fn reshape(&mut self, front: usize, len: usize) -> Result<(), NoRoom> {
        self.reshape_behind(0, front, len).map(|_| ())
    }

    /// [`Self::reshape`], then the last `head` bytes of the headroom and the
    /// packet's bytes after them, writable (`head + len` bytes; only the first
    /// segment's on a chain). Refused, the packet unchanged, when fewer than `head`
    /// bytes of headroom would be left. The ESP encap path builds a frame this
    /// way: the Ethernet header in the headroom, the ESP packet as the packet,
    /// written through the one slice the window change returns, without reading
    /// the buffer's fields again.
    fn reshape_behind(&mut self, head: usize, front: usize, len: usize) -> Result<&mut [u8], NoRoom>;

    /// Shorten the packet to `len` bytes (no-op when it is already that short).
    fn truncate(&mut self, len: usize) -> Result<(), NoRoom> {
        match self.len().checked_sub(len) {
            Some(extra) if extra > 0 => self.trim(extra),
            _ => Ok(()),
        }
    }
}

/// [`Packet::reshape`] as `prepend(front)` then `append`/`truncate` to `len`, the
/// packet unchanged if either refuses (the fallback of implementations with a
/// one-step version for the common case, such as a DPDK mbuf chain).
pub fn reshape_by_steps<P: Packet + ?Sized>(pkt: &mut P, front: usize, len: usize) -> Result<(), NoRoom> {
    pkt.prepend(front)?;
    let r = match len.checked_sub(pkt.len()) {
        Some(more) => pkt.append(more),
        None => pkt.truncate(len),
    };
    if r.is_err() {
        // Undoes the prepend: those bytes were just added.
        let _ = pkt.adj(front);
    }
    r
}

/// A packet in a heap buffer: `buf[start..end]` is the packet.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapPacket {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl HeapPacket {
    /// Headroom DPDK mbufs have by default (`RTE_PKTMBUF_HEADROOM`).
    pub const DEFAULT_HEADROOM: usize = 128;
    /// Tailroom enough for the largest ESP trailer + ICV we append (255 + 2 + 16).
    pub const DEFAULT_TAILROOM: usize = 288;

    /// An empty packet in a buffer of `headroom + capacity` bytes.
    pub fn with_room(headroom: usize, capacity: usize) -> Self {
        HeapPacket { buf: vec![0; headroom + capacity], start: headroom, end: headroom }
    }

    /// A packet holding a copy of `data`, with the given head- and tailroom.
    pub fn from_slice_with_room(data: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0; headroom + data.len() + tailroom];
        buf[headroom..headroom + data.len()].copy_from_slice(data);
        HeapPacket { buf, start: headroom, end: headroom + data.len() }
    }

    /// A packet holding a copy of `data` with the default head- and tailroom.
    pub fn from_slice(data: &[u8]) -> Self {
        Self::from_slice_with_room(data, Self::DEFAULT_HEADROOM, Self::DEFAULT_TAILROOM)
    }

    /// Reuse the buffer for a copy of `data` placed after `headroom` bytes
    /// (benchmarks refill packets without allocating).
    pub fn reset(&mut self, data: &[u8], headroom: usize) -> Result<(), NoRoom> {
        let end = headroom.saturating_add(data.len());
        if end > self.buf.len() {
            return Err(NoRoom { wanted: end, available: self.buf.len() });
        }
        self.buf[headroom..end].copy_from_slice(data);
        self.start = headroom;
        self.end = end;
        Ok(())
    }

    /// Move the packet window without touching the bytes (benchmarks restore a
    /// packet this way after an in-place transformation).
    pub fn set_window(&mut self, start: usize, len: usize) -> Result<(), NoRoom> {
        let end = start.saturating_add(len);
        if end > self.buf.len() {
            return Err(NoRoom { wanted: end, available: self.buf.len() });
        }
        self.start = start;
        self.end = end;
        Ok(())
    }

    /// Offset of the first packet byte in the buffer.
    pub fn offset(&self) -> usize {
        self.start
    }
}

impl core::fmt::Debug for HeapPacket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapPacket")
            .field("headroom", &self.start)
            .field("len", &(self.end - self.start))
            .field("tailroom", &(self.buf.len() - self.end))
            .finish()
    }
}

impl Packet for HeapPacket {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.start {
            return Err(NoRoom { wanted: n, available: self.start });
        }
        self.start -= n;
        Ok(())
    }

    fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        let len = self.end - self.start;
        if n > len {
            return Err(NoRoom { wanted: n, available: len });
        }
        self.start += n;
        Ok(())
    }

    fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        let room = self.buf.len() - self.end;
        if n > room {
            return Err(NoRoom { wanted: n, available: room });
        }
        self.end += n;
        Ok(())
    }

    fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        let len = self.end - self.start;
        if n > len {
            return Err(NoRoom { wanted: n, available: len });
        }
        self.end -= n;
        Ok(())
    }

    fn reshape_behind(&mut self, head: usize, front: usize, len: usize) -> Result<&mut [u8], NoRoom> {
        let wanted = front.saturating_add(head);
        if wanted > self.start {
            return Err(NoRoom { wanted, available: self.start });
        }
        let start = self.start - front;
        let room = self.buf.len() - start;
        if len > room {
            return Err(NoRoom { wanted: len, available: room });
        }
        self.start = start;
        self.end = start + len;
        Ok(&mut self.buf[start - head..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_append_adj_trim_move_the_window() {
        let mut p = HeapPacket::from_slice_with_room(&[1, 2, 3], 4, 2);
        assert_eq!((p.headroom(), p.len(), p.tailroom()), (4, 3, 2));
        p.prepend(4).expect("room");
        p.data_mut()[..4].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(p.data(), &[9, 9, 9, 9, 1, 2, 3]);
        assert_eq!(p.prepend(1), Err(NoRoom { wanted: 1, available: 0 }));
        p.append(2).expect("room");
        assert_eq!(p.append(1), Err(NoRoom { wanted: 1, available: 0 }));
        p.adj(4).expect("len");
        p.trim(2).expect("len");
        assert_eq!(p.data(), &[1, 2, 3]);
        assert!(p.trim(4).is_err());
        assert_eq!(p.data(), &[1, 2, 3], "a failed trim leaves the packet alone");
        p.truncate(1).expect("shorter");
        assert_eq!(p.data(), &[1]);
        p.truncate(5).expect("no-op");
        assert_eq!(p.data(), &[1]);
    }

    #[test]
    fn reshape_is_prepend_then_length_or_nothing() {
        let mut p = HeapPacket::from_slice_with_room(&[1, 2, 3, 4], 4, 2);
        p.reshape(2, 5).expect("room");
        assert_eq!((p.headroom(), p.len(), p.tailroom()), (2, 5, 3));
        assert_eq!(p.data()[2..], [1, 2, 3]);
        p.reshape(2, 10).expect("all of the buffer");
        assert_eq!((p.headroom(), p.len(), p.tailroom()), (0, 10, 0));
        let before = p.clone();
        assert!(p.reshape(1, 1).is_err(), "no headroom left");
        assert!(p.reshape(0, 11).is_err(), "past the buffer");
        assert_eq!(p, before, "a refused reshape leaves the packet alone");
    }

    #[test]
    fn reshape_behind_returns_the_head_and_the_new_window() {
        let mut p = HeapPacket::from_slice_with_room(&[1, 2, 3, 4], 6, 4);
        let mut q = p.clone();
        let got = p.reshape_behind(2, 3, 6).expect("room");
        assert_eq!(got.len(), 2 + 6);
        got[..2].copy_from_slice(&[7, 7]);
        assert_eq!(got[2 + 3..2 + 6], [1, 2, 3]);
        q.reshape(3, 6).expect("room");
        assert_eq!((p.headroom(), p.len(), p.tailroom()), (q.headroom(), q.len(), q.tailroom()), "same window as reshape");
        p.prepend(2).expect("the head is headroom");
        assert_eq!(p.data()[..2], [7, 7]);
        let mut p = HeapPacket::from_slice_with_room(&[1, 2, 3, 4], 6, 4);
        let before = p.clone();
        assert!(p.reshape_behind(4, 3, 6).is_err(), "head + front past the headroom");
        assert!(p.reshape_behind(0, 3, 14).is_err(), "past the buffer");
        assert_eq!(p, before, "a refused reshape_behind leaves the packet alone");
        assert_eq!(p.reshape_behind(3, 3, 11).map(|b| b.len()), Ok(14), "exactly all of the buffer");
    }
}
