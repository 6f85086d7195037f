//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use core::net::Ipv6Addr;

use super::{be16, be32, put16, put32, Ecn, Error, IpProtocol, Result};

/// Fixed header length.
pub const HEADER_LEN: usize = 40;
/// Extension headers walked before giving up (RFC 8200 §4.1 sets no limit; a
/// bound keeps the walk cheap on hostile input, RFC 7045).
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet. After `new_checked`, `40 + payload_len() <= buffer length`.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the upper-layer header starts, after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Upper {
    /// The first header that is not a walked extension header (ESP counts as upper layer).
    pub protocol: IpProtocol,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// Whether a Fragment header was passed (the payload is then a fragment).
    pub fragment: bool,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Validate version and payload length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(be16(b, 4)) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Version field (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class octet (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 4) as u8
    }

    /// DSCP part of the traffic class.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN part of the traffic class.
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.traffic_class())
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[6].into()
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(8)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(24)
    }

    fn addr_at(&self, at: usize) -> Ipv6Addr {
        Ipv6Addr::from(super::bytes_at::<16>(self.buffer.as_ref(), at))
    }

    /// Total packet length (40 + payload length).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The payload (extension headers included), up to `payload_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walk Hop-by-Hop, Routing, Fragment, Destination Options and AH headers to the
    /// upper layer, never reading past `payload_len` and at most
    /// [`MAX_EXT_HEADERS`] headers.
    pub fn upper_layer(&self) -> Result<Ipv6Upper> {
        let b = &self.buffer.as_ref()[..self.total_len()];
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = false;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match nh {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    // RFC 8200 §4.3: Hdr Ext Len in 8-octet units, not counting the first 8.
                    (usize::from(*b.get(off + 1).ok_or(Error::Truncated)?) + 1) * 8
                }
                IpProtocol::Ipv6Frag => {
                    fragment = true;
                    8
                }
                // RFC 4302 §2.2: AH Payload Len in 4-octet units, minus 2.
                IpProtocol::Ah => (usize::from(*b.get(off + 1).ok_or(Error::Truncated)?) + 2) * 4,
                protocol => return Ok(Ipv6Upper { protocol, offset: off, fragment }),
            };
            let next = *b.get(off).ok_or(Error::Truncated)?;
            if off + len > b.len() {
                return Err(Error::Truncated);
            }
            nh = next.into();
            off += len;
        }
        Err(Error::Malformed)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        put32(self.buffer.as_mut(), 0, v);
    }

    /// Set the ECN bits of the traffic class.
    pub fn set_ecn(&mut self, ecn: Ecn) {
        let b = self.buffer.as_mut();
        // The ECN bits are bits 4..6 of the second octet (RFC 8200 §7).
        b[1] = (b[1] & !0x30) | (ecn.bits() << 4);
    }

    /// Set payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }

    /// Set next header.
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[6] = p.into();
    }

    /// Set hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[7] = v;
    }

    /// Set source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }

    /// Set destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        let mut ip = Ipv6Packet::new_unchecked(&mut p[..]);
        ip.set_version_tc_flow(0xb9, 0x12345);
        ip.set_payload_len(payload.len() as u16);
        ip.set_next_header(nh.into());
        ip.set_hop_limit(64);
        ip.set_src_addr("2001:db8::1".parse().expect("addr"));
        ip.set_dst_addr("2001:db8::2".parse().expect("addr"));
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn fixed_header_fields() {
        let p = packet(50, &[0; 8]);
        // 0x6 version, TC 0xb9, flow 0x12345 => 6b 91 23 45
        assert_eq!(&p[..4], &[0x6b, 0x91, 0x23, 0x45]);
        let ip = Ipv6Packet::new_checked(&p[..]).expect("valid");
        assert_eq!((ip.traffic_class(), ip.dscp(), ip.ecn()), (0xb9, 0x2e, Ecn::Ect1));
        assert_eq!(ip.flow_label(), 0x12345);
        assert_eq!(ip.next_header(), IpProtocol::Esp);
        assert_eq!(ip.src_addr().to_string(), "2001:db8::1");
        assert_eq!(ip.upper_layer(), Ok(Ipv6Upper { protocol: IpProtocol::Esp, offset: 40, fragment: false }));
        let mut p = p;
        Ipv6Packet::new_unchecked(&mut p[..]).set_ecn(Ecn::Ce);
        assert_eq!(Ipv6Packet::new_unchecked(&p[..]).traffic_class(), 0xbb);
    }

    #[test]
    fn walks_extension_headers() {
        // Hop-by-hop (8 bytes) -> Dest opts (16 bytes) -> Fragment (8) -> UDP.
        let mut pl = vec![60, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[0; 8]);
        let p = packet(0, &pl);
        let ip = Ipv6Packet::new_checked(&p[..]).expect("valid");
        assert_eq!(ip.upper_layer(), Ok(Ipv6Upper { protocol: IpProtocol::Udp, offset: 72, fragment: true }));
    }

    #[test]
    fn hostile_extension_headers_are_rejected() {
        // Ext len pointing past the payload.
        let p = packet(0, &[60, 200, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).and_then(|ip| ip.upper_layer()).err(), Some(Error::Truncated));
        // Header announced but no bytes.
        let p = packet(43, &[]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).and_then(|ip| ip.upper_layer()).err(), Some(Error::Truncated));
        // Endless chain of destination options.
        let p = packet(60, &[60u8, 0, 0, 0, 0, 0, 0, 0].repeat(20));
        assert_eq!(Ipv6Packet::new_checked(&p[..]).and_then(|ip| ip.upper_layer()).err(), Some(Error::Malformed));
        // payload_len beyond the buffer.
        let mut p = packet(59, &[]);
        p[5] = 1;
        assert_eq!(Ipv6Packet::new_checked(&p[..]).err(), Some(Error::Truncated));
    }
}
