//! UDP headers (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, checksum, put16, Error, Result};

/// Header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram. After `new_checked`, `8 <= len() <= buffer length`.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Validate the length field against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(be16(b, 4));
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Length (header + data).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Whether the datagram carries no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Checksum field (0 = none, RFC 768 / RFC 3948 §2.1).
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// The data after the header, up to `len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum verifies over an IPv4 pseudo-header (a zero checksum
    /// means "not computed" and is accepted).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.len();
        self.checksum() == 0
            || checksum::fold(checksum::sum(
                checksum::pseudo_v4(src, dst, 17, len),
                &self.buffer.as_ref()[..usize::from(len)],
            )) == 0xffff
    }

    /// Whether the checksum verifies over an IPv6 pseudo-header.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let len = self.len();
        checksum::fold(checksum::sum(
            checksum::pseudo_v6(src, dst, 17, u32::from(len)),
            &self.buffer.as_ref()[..usize::from(len)],
        )) == 0xffff
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set both ports.
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        let b = self.buffer.as_mut();
        put16(b, 0, src);
        put16(b, 2, dst);
    }

    /// Set the length field.
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }

    /// Set the checksum field as is (0 = none).
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 6, v);
    }

    /// Compute the checksum over an IPv4 pseudo-header and the first `len()` bytes.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.len();
        self.fill_checksum(checksum::pseudo_v4(src, dst, 17, len));
    }

    /// Compute the checksum over an IPv6 pseudo-header and the first `len()` bytes.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let len = self.len();
        self.fill_checksum(checksum::pseudo_v6(src, dst, 17, u32::from(len)));
    }

    fn fill_checksum(&mut self, pseudo: u64) {
        self.set_checksum(0);
        let len = usize::from(self.len());
        let c = !checksum::fold(checksum::sum(pseudo, &self.buffer.as_ref()[..len]));
        // RFC 768: a computed zero is sent as all ones.
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_scapy() {
        // UDP 4500 -> 4500, payload "abc"; checksums computed by scapy 2.5:
        // IPv4 198.51.100.1 -> 198.51.100.2: 0xc3e2; IPv6 2001:db8::1 -> ::2: 0xbcd8.
        let mut d = [0x11, 0x94, 0x11, 0x94, 0, 11, 0, 0, b'a', b'b', b'c'];
        let (s4, d4) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2));
        let (s6, d6): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().expect("a"), "2001:db8::2".parse().expect("a"));
        let mut u = UdpPacket::new_unchecked(&mut d[..]);
        u.fill_checksum_v4(s4, d4);
        assert_eq!(u.checksum(), 0xc3e2);
        assert!(u.verify_checksum_v4(s4, d4));
        u.fill_checksum_v6(s6, d6);
        assert_eq!(u.checksum(), 0xbcd8);
        assert!(u.verify_checksum_v6(s6, d6));
        let u = UdpPacket::new_checked(&d[..]).expect("valid");
        assert_eq!((u.src_port(), u.dst_port(), u.len(), u.payload()), (4500, 4500, 11, &b"abc"[..]));
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(UdpPacket::new_checked(&[0u8; 7][..]).err(), Some(Error::Truncated));
        assert_eq!(UdpPacket::new_checked(&[0, 0, 0, 0, 0, 7, 0, 0][..]).err(), Some(Error::Malformed));
        assert_eq!(UdpPacket::new_checked(&[0, 0, 0, 0, 0, 9, 0, 0][..]).err(), Some(Error::Truncated));
    }
}
