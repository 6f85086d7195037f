//! `dataplane::packet::Packet` for DPDK mbufs: the ESP dataplane runs on mbufs in place.

use dataplane::packet::{reshape_by_steps, NoRoom, Packet};

use crate::Mbuf;

impl Packet for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = Mbuf::headroom(self);
        Mbuf::prepend(self, n).map(|_| ()).ok_or(NoRoom { wanted: n, available })
    }

    #[inline]
    fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = self.data_len();
        Mbuf::adj(self, n).then_some(()).ok_or(NoRoom { wanted: n, available })
    }

    #[inline]
    fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = Mbuf::tailroom(self);
        Mbuf::append(self, n).map(|_| ()).ok_or(NoRoom { wanted: n, available })
    }

    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = self.data_len();
        Mbuf::trim(self, n).then_some(()).ok_or(NoRoom { wanted: n, available })
    }

    // Always inlined, the rare fallback kept out of line: the ESP encap path
    // calls this once per packet, and as an ordinary call (with the wrappers
    // around it) it was ~3% of the 64 B encap profile's time.
    #[inline(always)]
    fn reshape(&mut self, front: usize, len: usize) -> Result<(), NoRoom> {
        if Mbuf::reshape(self, front, len) {
            return Ok(());
        }
        reshape_slowly(self, front, len)
    }

    #[inline(always)]
    fn reshape_behind(&mut self, head: usize, front: usize, len: usize) -> Result<&mut [u8], NoRoom> {
        let available = Mbuf::headroom(self);
        let wanted = front.saturating_add(head);
        if wanted > available {
            return Err(NoRoom { wanted, available });
        }
        Packet::reshape(self, front, len)?;
        // Not refused: `head` bytes of headroom are left (checked above).
        Mbuf::data_behind(self, head).ok_or(NoRoom { wanted, available })
    }

    #[inline]
    fn len(&self) -> usize {
        self.data_len()
    }
}

/// [`Packet::reshape`] when the one-step version refuses: a chain (never on the
/// ESP path: ports run without scatter) or no room; the separate operations tell
/// which.
#[cold]
#[inline(never)]
fn reshape_slowly(m: &mut Mbuf, front: usize, len: usize) -> Result<(), NoRoom> {
    reshape_by_steps(m, front, len)
}
