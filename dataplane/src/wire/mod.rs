//! Zero-copy views of the headers the gateway reads and writes.
//!
//! Every header is a view `Foo<T: AsRef<[u8]>>` over a byte buffer, in the style of
//! smoltcp: `new_checked` validates the lengths once (on receive), after which the
//! accessors cannot go out of bounds; `new_unchecked` is for buffers the caller
//! built itself. Accessors are named after the RFC fields. Protocol numbers are
//! newtypes or enums with an `Unknown` arm, never bare integers.

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket};
pub use esp::{EspPacket, EspTrailer, SeqNumber, Spi, UdpEncapPayload};
pub use ethernet::{EtherType, EthernetFrame, MacAddr, VlanTag};
pub use icmp::{IcmpPacket, Icmpv4Message, Icmpv6Message};
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6Packet, Ipv6Upper};
pub use udp::UdpPacket;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    #[error("truncated")]
    Truncated,
    /// A field has a value the protocol does not allow (version, header length...).
    #[error("malformed header")]
    Malformed,
    /// The header checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers / IPv6 next-header values (IANA "Assigned Internet
/// Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 Hop-by-Hop options (0).
    HopByHop,
    /// ICMP (1).
    Icmp,
    /// IPv4 encapsulation, IP-in-IP (4): the next header of a tunnelled IPv4 packet.
    Ipv4,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// IPv6 encapsulation (41): the next header of a tunnelled IPv6 packet.
    Ipv6,
    /// IPv6 Routing header (43).
    Ipv6Route,
    /// IPv6 Fragment header (44).
    Ipv6Frag,
    /// ESP (50), RFC 4303.
    Esp,
    /// AH (51), RFC 4302.
    Ah,
    /// ICMPv6 (58).
    Icmpv6,
    /// No next header (59): an ESP dummy packet (RFC 4303 §2.6).
    Ipv6NoNxt,
    /// IPv6 Destination options (60).
    Ipv6Opts,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            4 => IpProtocol::Ipv4,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            41 => IpProtocol::Ipv6,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Ipv4 => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// ECN codepoints (RFC 3168 §5), the low two bits of the IPv4 TOS / IPv6 traffic class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// Not ECN-capable transport (00).
    NotEct,
    /// ECT(1) (01).
    Ect1,
    /// ECT(0) (10).
    Ect0,
    /// Congestion experienced (11).
    Ce,
}

impl Ecn {
    /// The codepoint in the low two bits of `tos`.
    pub const fn from_tos(tos: u8) -> Ecn {
        match tos & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// The two-bit value.
    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0b00,
            Ecn::Ect1 => 0b01,
            Ecn::Ect0 => 0b10,
            Ecn::Ce => 0b11,
        }
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes_at(b, at))
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes_at(b, at))
}

/// `b[at..at + N]` (panics past the end, as indexing does) with one bounds check
/// and one load: indexed byte by byte, each byte had a check of its own and the
/// value was assembled with shifts (an IPv4 address read was ~10 instructions
/// more, a forwarded packet under callgrind).
#[inline(always)]
pub(crate) fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].first_chunk().copied().unwrap_or([0; N])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_protocol_round_trips_every_byte() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(50), IpProtocol::Esp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }

    #[test]
    fn fields_read_big_endian_at_every_offset() {
        let b: Vec<u8> = (1..=24).collect();
        for at in 0..=20 {
            let x = at as u8 + 1;
            assert_eq!(be16(&b, at), u16::from_be_bytes([x, x + 1]));
            assert_eq!(be32(&b, at), u32::from_be_bytes([x, x + 1, x + 2, x + 3]));
            assert_eq!(bytes_at::<4>(&b, at), [x, x + 1, x + 2, x + 3]);
        }
        assert_eq!(bytes_at::<0>(&b, 24), []);
    }

    #[test]
    #[should_panic]
    fn a_field_past_the_end_panics_as_indexing_does() {
        be32(&[1, 2, 3, 4, 5], 2);
    }

    #[test]
    fn ecn_round_trips() {
        for tos in 0..=255u8 {
            assert_eq!(Ecn::from_tos(tos).bits(), tos & 3);
        }
    }
}
