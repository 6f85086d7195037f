//! IPv4 headers (RFC 791). Options are skipped (their length is honoured, their
//! contents are not interpreted).

use core::net::Ipv4Addr;

use super::{be16, bytes_at, checksum, put16, Ecn, Error, IpProtocol, Result};

/// Header length without options.
pub const HEADER_LEN: usize = 20;

/// A view of an IPv4 packet. After `new_checked`, `header_len() <= total_len() <=
/// buffer length`; bytes after `total_len` (Ethernet padding) are not payload.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Validate version, IHL and total length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        let tl = usize::from(be16(b, 2));
        if hl < HEADER_LEN || tl < hl {
            return Err(Error::Malformed);
        }
        if tl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// IHL in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// The whole TOS octet (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Differentiated services codepoint (RFC 2474).
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// ECN field (RFC 3168).
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.tos())
    }

    /// Total length.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[6] & 0x40 != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), 6) & 0x1fff) * 8
    }

    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[9].into()
    }

    /// Protocol field as the number (the SPD key; no enum round trip).
    #[inline]
    pub fn protocol_number(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes_at::<4>(self.buffer.as_ref(), 12))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes_at::<4>(self.buffer.as_ref(), 16))
    }

    /// Whether the header checksum verifies.
    ///
    /// Always inlined, with the options case out of line: the 64 B encap profile
    /// had this as a call of its own (1.5-3% of the worker) for what is five
    /// 32-bit loads and adds on a header without options.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        match b.first_chunk::<HEADER_LEN>() {
            // No options (nearly every packet): five fixed 32-bit words, no loop.
            Some(h) if h[0] & 0x0f == 5 => checksum::header_sum_ok(h),
            _ => verify_with_options(b, self.header_len()),
        }
    }

    /// The payload: from the end of the header to `total_len`. Always inlined: the
    /// worker's 5-tuple parse called it out of line per packet otherwise.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The header and total length of the IPv4 packet at the start of `d`, if
/// [`Ipv4Packet::new_checked`] accepts it (version 4, a header of at least 20
/// bytes, a total length that covers the header and lies inside `d`). Read at
/// fixed offsets of the first 20 bytes: `new_checked` and its accessors, each
/// with a bounds check of its own, were ~20 instructions a packet (64 B decap).
#[inline(always)]
pub fn checked_header(d: &[u8]) -> Option<(&[u8; HEADER_LEN], usize)> {
    let h: &[u8; HEADER_LEN] = d.first_chunk()?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let ok = h[0] >> 4 == 4 && header_len >= HEADER_LEN && total_len >= header_len && total_len <= d.len();
    ok.then_some((h, total_len))
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Version 4, IHL 5 (no options).
    pub fn set_version_and_ihl(&mut self) {
        self.buffer.as_mut()[0] = 0x45;
    }

    /// Set the TOS octet.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[1] = tos;
    }

    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }

    /// Set identification.
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }

    /// Set flags + fragment offset: DF as given, MF clear, offset 0.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        put16(self.buffer.as_mut(), 6, if dont_frag { 0x4000 } else { 0 });
    }

    /// Set TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[8] = v;
    }

    /// Set protocol.
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[9] = p.into();
    }

    /// Set source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a.octets());
    }

    /// Set destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a.octets());
    }

    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put16(b, 10, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, 10, c);
    }

    /// Change the ECN bits and patch the checksum incrementally (RFC 1624).
    pub fn set_ecn_update_checksum(&mut self, ecn: Ecn) {
        let b = self.buffer.as_mut();
        let old = be16(b, 0);
        b[1] = (b[1] & !3) | ecn.bits();
        let new = be16(b, 0);
        let c = checksum::update(be16(b, 10), old, new);
        put16(b, 10, c);
    }
}

/// [`Ipv4Packet::verify_checksum`] of a header with options (or a short buffer:
/// false).
#[cold]
#[inline(never)]
fn verify_with_options(b: &[u8], header_len: usize) -> bool {
    b.get(..header_len).is_some_and(|h| checksum::fold(checksum::sum(0, h)) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `checked_header` accepts exactly what `new_checked` accepts and reads the
    /// same total length: every first byte, total lengths around the header and
    /// buffer sizes, buffers shorter than a header.
    #[test]
    fn checked_header_agrees_with_new_checked() {
        let mut accepted = 0;
        for b0 in 0..=255u8 {
            for tl in [0u16, 1, 19, 20, 21, 23, 24, 40, 59, 60, 61, 64, 65, 100, 0xffff] {
                for len in [0usize, 1, 19, 20, 24, 40, 60, 64, 100] {
                    let mut buf = [0u8; 100];
                    buf[0] = b0;
                    buf[1] = 0xb6 | (tl as u8 & 3);
                    buf[2..4].copy_from_slice(&tl.to_be_bytes());
                    let d = &buf[..len];
                    let want = Ipv4Packet::new_checked(d).ok().map(|ip| usize::from(ip.total_len()));
                    assert_eq!(checked_header(d).map(|(h, tl)| (tl, h == &buf[..20])), want.map(|tl| (tl, true)), "b0 {b0:#x} tl {tl} len {len}");
                    accepted += usize::from(want.is_some());
                }
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    // An ICMP echo request; the header checksum 0x9c1b was computed by scapy.
    const PING: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x4a, 0x5b, 0x40, 0x00, 0x40, 0x01, 0x9c, 0x1b, 0xc6, 0x33, 0x64, 0x01,
        0xc6, 0x33, 0x64, 0x02, 0x08, 0x00, 0xf7, 0xff, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parse_fields() {
        let mut p = PING;
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        assert_eq!(p, PING, "fill_checksum agrees with scapy");
        let ip = Ipv4Packet::new_checked(&p[..]).expect("valid");
        assert!(ip.verify_checksum());
        assert_eq!((ip.version(), ip.header_len(), ip.total_len()), (4, 20, 28));
        assert_eq!((ip.ident(), ip.dont_frag(), ip.is_fragment(), ip.ttl()), (0x4a5b, true, false, 64));
        assert_eq!(ip.protocol(), IpProtocol::Icmp);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(ip.payload().len(), 8);
    }

    #[test]
    fn padding_after_total_len_is_not_payload() {
        let mut frame = [0u8; 46];
        frame[..28].copy_from_slice(&PING);
        let ip = Ipv4Packet::new_checked(&frame[..]).expect("valid");
        assert_eq!(ip.payload().len(), 8);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(Ipv4Packet::new_checked(&PING[..19]).err(), Some(Error::Truncated));
        assert_eq!(Ipv4Packet::new_checked(&PING[..27]).err(), Some(Error::Truncated));
        let mut p = PING;
        p[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&p[..]).err(), Some(Error::Malformed));
        let mut p = PING;
        p[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&p[..]).err(), Some(Error::Malformed));
        let mut p = PING;
        p[0] = 0x48; // 32-byte header with options > total length 28
        assert_eq!(Ipv4Packet::new_checked(&p[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn options_are_skipped() {
        let mut p = [0u8; 32];
        p[0] = 0x46;
        p[3] = 32;
        p[9] = 17;
        let ip = Ipv4Packet::new_checked(&p[..]).expect("valid");
        assert_eq!((ip.header_len(), ip.payload().len()), (24, 8));
    }

    #[test]
    fn checksum_with_options_covers_them() {
        // IHL 6: the option word (a NOP padded router alert, RFC 2113) is summed too.
        let mut p = [0u8; 32];
        p[..4].copy_from_slice(&[0x46, 0, 0, 32]);
        p[8..10].copy_from_slice(&[64, 17]);
        p[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        assert!(Ipv4Packet::new_checked(&p[..]).expect("valid").verify_checksum());
        p[22] = 1;
        assert!(!Ipv4Packet::new_checked(&p[..]).expect("valid").verify_checksum(), "an option byte changed");
        // The same 20 bytes read as IHL 5 are summed without the option word.
        let mut q = PING;
        q[11] ^= 1;
        assert!(!Ipv4Packet::new_unchecked(&q[..]).verify_checksum());
    }

    #[test]
    fn ecn_update_keeps_checksum_valid() {
        let mut p = PING;
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
        ip.set_ecn_update_checksum(Ecn::Ce);
        assert_eq!(ip.ecn(), Ecn::Ce);
        assert!(ip.verify_checksum());
    }
}
