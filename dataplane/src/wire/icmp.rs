//! ICMP (RFC 792) and ICMPv6 (RFC 4443) share the first four octets (type, code,
//! checksum); one view covers both, with a message enum per family.

use core::net::Ipv6Addr;

use super::{be16, checksum, put16, Error, Result};

/// Type, code, checksum, and the 4-byte "rest of header".
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types the gateway handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// 0.
    EchoReply,
    /// 3.
    DstUnreachable,
    /// 8.
    EchoRequest,
    /// 11.
    TimeExceeded,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            other => Icmpv4Message::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(m: Icmpv4Message) -> u8 {
        match m {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::Unknown(v) => v,
        }
    }
}

/// ICMPv6 message types the gateway handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Message {
    /// 1.
    DstUnreachable,
    /// 2.
    PacketTooBig,
    /// 3.
    TimeExceeded,
    /// 128.
    EchoRequest,
    /// 129.
    EchoReply,
    /// 135 (RFC 4861).
    NeighborSolicit,
    /// 136 (RFC 4861).
    NeighborAdvert,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Icmpv6Message {
    fn from(v: u8) -> Self {
        match v {
            1 => Icmpv6Message::DstUnreachable,
            2 => Icmpv6Message::PacketTooBig,
            3 => Icmpv6Message::TimeExceeded,
            128 => Icmpv6Message::EchoRequest,
            129 => Icmpv6Message::EchoReply,
            135 => Icmpv6Message::NeighborSolicit,
            136 => Icmpv6Message::NeighborAdvert,
            other => Icmpv6Message::Unknown(other),
        }
    }
}

impl From<Icmpv6Message> for u8 {
    fn from(m: Icmpv6Message) -> u8 {
        match m {
            Icmpv6Message::DstUnreachable => 1,
            Icmpv6Message::PacketTooBig => 2,
            Icmpv6Message::TimeExceeded => 3,
            Icmpv6Message::EchoRequest => 128,
            Icmpv6Message::EchoReply => 129,
            Icmpv6Message::NeighborSolicit => 135,
            Icmpv6Message::NeighborAdvert => 136,
            Icmpv6Message::Unknown(v) => v,
        }
    }
}

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Validate that the 8-byte header is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Type read as ICMPv4.
    pub fn icmpv4_message(&self) -> Icmpv4Message {
        self.buffer.as_ref()[0].into()
    }

    /// Type read as ICMPv6.
    pub fn icmpv6_message(&self) -> Icmpv6Message {
        self.buffer.as_ref()[0].into()
    }

    /// Code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Echo identifier (echo request/reply only).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Echo sequence number (echo request/reply only).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// MTU of an ICMPv6 Packet Too Big (RFC 4443 §3.2), or the next-hop MTU of an
    /// ICMPv4 "fragmentation needed" (RFC 1191) in the low 16 bits.
    pub fn mtu(&self) -> u32 {
        super::be32(self.buffer.as_ref(), 4)
    }

    /// Bytes after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// ICMPv4 checksum over the whole message verifies.
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::fold(checksum::sum(0, self.buffer.as_ref())) == 0xffff
    }

    /// ICMPv6 checksum over the pseudo-header and the whole message verifies.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else { return false };
        checksum::fold(checksum::sum(checksum::pseudo_v6(src, dst, 58, len), b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Set type (raw) and code.
    pub fn set_type_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buffer.as_mut();
        b[0] = msg_type;
        b[1] = code;
    }

    /// Set the ICMPv4 checksum over the whole buffer.
    pub fn fill_checksum_v4(&mut self) {
        put16(self.buffer.as_mut(), 2, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        put16(self.buffer.as_mut(), 2, c);
    }

    /// Set the ICMPv6 checksum (pseudo-header + whole buffer).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        put16(self.buffer.as_mut(), 2, 0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let c = !checksum::fold(checksum::sum(checksum::pseudo_v6(src, dst, 58, len), b));
        put16(self.buffer.as_mut(), 2, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksums_match_scapy() {
        // Echo id 0x1234 seq 1 payload "ping"; checksums from scapy 2.5.
        let mut v4 = [8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        let mut m = IcmpPacket::new_unchecked(&mut v4[..]);
        m.fill_checksum_v4();
        assert_eq!(m.checksum(), 0x06fa);
        let m = IcmpPacket::new_checked(&v4[..]).expect("valid");
        assert!(m.verify_checksum_v4());
        assert_eq!(m.icmpv4_message(), Icmpv4Message::EchoRequest);
        assert_eq!((m.echo_ident(), m.echo_seq_no(), m.payload()), (0x1234, 1, &b"ping"[..]));

        let (s, d): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().expect("a"), "2001:db8::2".parse().expect("a"));
        let mut v6 = [128, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        let mut m = IcmpPacket::new_unchecked(&mut v6[..]);
        m.fill_checksum_v6(s, d);
        assert_eq!(m.checksum(), 0x333e);
        assert!(m.verify_checksum_v6(s, d));
        assert_eq!(m.icmpv6_message(), Icmpv6Message::EchoRequest);
        assert_eq!(IcmpPacket::new_checked(&v6[..7]).err(), Some(Error::Truncated));
    }
}
