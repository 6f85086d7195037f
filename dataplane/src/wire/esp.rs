//! ESP header and trailer (RFC 4303 §2) and UDP encapsulation of ESP (RFC 3948).

use super::{be32, put32, Error, IpProtocol, Result};

/// Security Parameters Index (RFC 4303 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

impl Spi {
    /// SPIs 1..=255 are reserved by IANA and 0 is never sent in ESP (RFC 4303 §2.1);
    /// a zero in the SPI position of UDP 4500 is the non-ESP marker (RFC 3948 §2.2).
    pub const fn is_reserved(self) -> bool {
        self.0 < 256
    }
}

impl core::fmt::Display for Spi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A full 64-bit ESP sequence number; the low 32 bits are on the wire, the high 32
/// bits are implied with ESN (RFC 4303 §2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SeqNumber(pub u64);

impl SeqNumber {
    /// The 32 bits carried in the packet.
    pub const fn low(self) -> u32 {
        self.0 as u32
    }

    /// The 32 implied bits (ESN).
    pub const fn high(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Pad Length + Next Header.
pub const TRAILER_LEN: usize = 2;

/// A view of an ESP packet: SPI, sequence number, then the (encrypted) payload.
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// Validate the 8-byte header is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EspPacket { buffer })
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> Spi {
        Spi(be32(self.buffer.as_ref(), 0))
    }

    /// Sequence Number field (low 32 bits with ESN).
    pub fn sequence_number(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Set the SPI.
    pub fn set_spi(&mut self, spi: Spi) {
        put32(self.buffer.as_mut(), 0, spi.0);
    }

    /// Set the Sequence Number field.
    pub fn set_sequence_number(&mut self, seq: u32) {
        put32(self.buffer.as_mut(), 4, seq);
    }
}

/// Pad bytes [`EspTrailer::parse`] checks as one word.
const PAD_WORD: usize = 16;
/// The RFC 4303 §2.4 padding pattern, 1..=16: [`TRAILER_BLOCKS`]' padding and
/// the second half of [`PAD_WINDOWS`].
const PAD_PATTERN: [u8; PAD_WORD] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
/// The first 16 bytes of a trailer with `i` (< 16) pad bytes: 1..=i, then
/// the Pad Length `i`, then zeros ([`EspTrailer::write_before_icv`] adds the
/// Next Header byte).
const TRAILER_BLOCKS: [[u8; PAD_WORD]; PAD_WORD] = {
    let mut t = [[0u8; PAD_WORD]; PAD_WORD];
    let mut i = 0;
    while i < PAD_WORD {
        let mut j = 0;
        while j < i {
            t[i][j] = PAD_PATTERN[j];
            j += 1;
        }
        t[i][i] = i as u8;
        i += 1;
    }
    t
};
/// 16 zeros then [`PAD_PATTERN`]: the 16-byte window starting at `pad_len` ends in
/// 1..=pad_len.
const PAD_WINDOWS: [u8; 2 * PAD_WORD] = {
    let mut w = [0u8; 2 * PAD_WORD];
    let mut i = 0;
    while i < PAD_WORD {
        w[PAD_WORD + i] = PAD_PATTERN[i];
        i += 1;
    }
    w
};
/// 16 zeros then 16 0xff: the window starting at `pad_len` selects its last
/// `pad_len` bytes, the padding (the bytes before it are the payload's).
const PAD_MASKS: [u8; 2 * PAD_WORD] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255,
];

/// The ESP trailer at the end of the decrypted payload (RFC 4303 §2.4, §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspTrailer {
    /// Pad Length.
    pub pad_len: u8,
    /// Next Header.
    pub next_header: IpProtocol,
}

impl EspTrailer {
    /// Read the trailer from the end of `plaintext` and check the padding is the
    /// monotonic 1, 2, 3... sequence RFC 4303 §2.4 prescribes for the default
    /// padding. Errors: `Truncated` when padding + trailer exceed the plaintext,
    /// `Malformed` when the pad bytes are wrong. Always inlined: the decap
    /// burst loop is near the compiler's limit, and a call here cost 33
    /// instructions a packet (64 B decap, GW=1 `perf/esp/insns.sh`).
    #[inline(always)]
    pub fn parse(plaintext: &[u8]) -> Result<EspTrailer> {
        let n = plaintext.len();
        if n < TRAILER_LEN {
            return Err(Error::Truncated);
        }
        let pad_len = plaintext[n - 2];
        let next_header = plaintext[n - 1].into();
        let pad_start = n
            .checked_sub(TRAILER_LEN + usize::from(pad_len))
            .ok_or(Error::Truncated)?;
        let pad = &plaintext[pad_start..n - TRAILER_LEN];
        let window = |w: &'static [u8; 2 * PAD_WORD]| w.get(pad.len()..).and_then(|w| w.first_chunk::<PAD_WORD>());
        let last = plaintext[..n - TRAILER_LEN].last_chunk::<PAD_WORD>();
        let bad = match (last, window(&PAD_WINDOWS), window(&PAD_MASKS)) {
            // No padding (a peer's 4-byte alignment often needs none, and every
            // frame size perf/run.sh sends): nothing to compare, so no 16-byte
            // read of the bytes the AEAD has just written.
            _ if pad_len == 0 => 0,
            // Up to 16 pad bytes (AES-GCM's 16-byte alignment: 0..=15), the common
            // case: the 16 bytes before the trailer, compared as one word with the
            // pattern window ending in 1..=pad_len, bytes before the padding masked
            // off. The byte loop below ran ~65 instructions per 64 B packet.
            (Some(last), Some(want), Some(mask)) => {
                let word = |b: &[u8; PAD_WORD]| u128::from_ne_bytes(*b);
                u8::from((word(last) ^ word(want)) & word(mask) != 0)
            }
            // Compare against 1..=pad_len without branching per byte (an indexed loop
            // the compiler vectorises; pad_len <= 255 so i + 1 never wraps).
            _ => pad.iter().enumerate().fold(0u8, |acc, (i, &b)| acc | (b ^ (i as u8).wrapping_add(1))),
        };
        if bad != 0 {
            return Err(Error::Malformed);
        }
        Ok(EspTrailer { pad_len, next_header })
    }

    /// Bytes the trailer and its padding occupy at the end of the plaintext.
    pub const fn len(&self) -> usize {
        self.pad_len as usize + TRAILER_LEN
    }

    /// Never true: a trailer is at least two bytes.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Write `pad_len` bytes 1, 2, 3... then Pad Length and Next Header into `out`
    /// (which must be exactly `pad_len + 2` bytes).
    #[inline]
    pub fn write(out: &mut [u8], next_header: IpProtocol) {
        let n = out.len();
        if n < TRAILER_LEN {
            return;
        }
        // RFC 4303 §2.4 default padding 1, 2, 3, ...: at most 3 bytes with the
        // 4-byte alignment of GCM and ChaCha20-Poly1305, written without a loop
        // (the compiler vectorised the loop, costly for 0..=3 bytes).
        match &mut out[..n - TRAILER_LEN] {
            [] => {}
            [a] => *a = 1,
            [a, b] => (*a, *b) = (1, 2),
            [a, b, c] => (*a, *b, *c) = (1, 2, 3),
            pad => {
                for (i, b) in pad.iter_mut().enumerate() {
                    *b = (i as u8).wrapping_add(1);
                }
            }
        }
        out[n - 2] = (n - TRAILER_LEN) as u8;
        out[n - 1] = next_header.into();
    }

    /// [`Self::write`] of a trailer of `len` bytes (padding + 2) at the start of
    /// `out`, where `out` goes on past the trailer for at least 16 bytes (the
    /// ICV's room, written after this): padding of up to 15 bytes (AES-GCM's
    /// 16-byte alignment needs no more) is then one 16-byte store of its block
    /// from [`TRAILER_BLOCKS`], whose bytes past the trailer the ICV
    /// overwrites, and the Next Header byte. `write`'s loop was 6% of
    /// `encap_burst`'s samples at 64 B; a store of the 1, 2, 3... pattern and
    /// the two trailer bytes, each with its bounds check,
    /// were ~36 instructions a packet (`GW=1 perf/esp/insns.sh encap 64`).
    #[inline(always)]
    pub fn write_before_icv(out: &mut [u8], len: usize, next_header: IpProtocol) {
        let room = len + PAD_WORD <= out.len();
        match (len.checked_sub(TRAILER_LEN).and_then(|pad| TRAILER_BLOCKS.get(pad).map(|b| (pad, b))), out.first_chunk_mut::<PAD_WORD>()) {
            (Some((pad, block)), Some(head)) if room => {
                *head = *block;
                // Inside `out`: pad + 1 < len.
                if let Some(b) = out.get_mut(pad + 1) {
                    *b = next_header.into();
                }
            }
            _ => Self::write_longer(out, len, next_header),
        }
    }

    /// [`Self::write_before_icv`] of a longer trailer, or with less room.
    #[cold]
    #[inline(never)]
    fn write_longer(out: &mut [u8], len: usize, next_header: IpProtocol) {
        if let Some(t) = out.get_mut(..len) {
            Self::write(t, next_header);
        }
    }
}

/// IKE and NAT-T port (RFC 3948 §2, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;
/// The four zero bytes that precede IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What a UDP 4500 payload is (RFC 3948 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncapPayload {
    /// A single 0xFF byte: NAT-keepalive (§2.3), dropped silently.
    NatKeepalive,
    /// Non-ESP marker then an IKE message starting at this offset of the UDP payload.
    Ike {
        /// Offset of the IKE header in the UDP payload (after the marker).
        offset: usize,
    },
    /// An ESP packet starting at the beginning of the UDP payload.
    Esp(Spi),
}

impl UdpEncapPayload {
    /// Classify the payload of a UDP datagram to/from port 4500.
    #[inline]
    pub fn classify(payload: &[u8]) -> Result<UdpEncapPayload> {
        match payload {
            [0xff] => Ok(UdpEncapPayload::NatKeepalive),
            [0, 0, 0, 0, ..] => Ok(UdpEncapPayload::Ike { offset: NON_ESP_MARKER.len() }),
            p if p.len() >= HEADER_LEN => Ok(UdpEncapPayload::Esp(Spi(be32(p, 0)))),
            _ => Err(Error::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip_and_bad_padding() {
        for pad in 0..=255usize {
            let mut pt = vec![0xaa; 3 + pad + 2];
            EspTrailer::write(&mut pt[3..], IpProtocol::Ipv6);
            let t = EspTrailer::parse(&pt).expect("valid");
            assert_eq!((usize::from(t.pad_len), t.next_header, t.len()), (pad, IpProtocol::Ipv6, pad + 2));
        }
        // RFC 4303 §2.4 example padding for 5 bytes: 01 02 03 04 05.
        let pt = [0xaa, 1, 2, 3, 4, 5, 5, 4];
        assert_eq!(EspTrailer::parse(&pt), Ok(EspTrailer { pad_len: 5, next_header: IpProtocol::Ipv4 }));
        assert_eq!(EspTrailer::parse(&[0xaa, 1, 2, 9, 4, 5, 5, 4]), Err(Error::Malformed));
        assert_eq!(EspTrailer::parse(&[1, 2, 3, 4]), Err(Error::Truncated));
        assert_eq!(EspTrailer::parse(&[4]), Err(Error::Truncated));
    }

    #[test]
    fn trailer_padding_checked_byte_by_byte() {
        // Every pad byte matters and no byte before it does, for the one-word
        // check (16 bytes before the trailer) and the byte loop (fewer, or longer pads).
        for before in [0usize, 1, 3, 16] {
            for pad in 0..=20usize {
                let mut pt = vec![0xaa; before + pad + 2];
                EspTrailer::write(&mut pt[before..], IpProtocol::Ipv4);
                assert!(EspTrailer::parse(&pt).is_ok(), "before {before} pad {pad}");
                for i in 0..before + pad {
                    let mut bad = pt.clone();
                    bad[i] ^= 0x10;
                    let want = if i < before { Ok(EspTrailer { pad_len: pad as u8, next_header: IpProtocol::Ipv4 }) } else { Err(Error::Malformed) };
                    assert_eq!(EspTrailer::parse(&bad), want, "before {before} pad {pad} byte {i}");
                }
            }
        }
    }

    #[test]
    fn trailer_before_the_icv_is_the_same_trailer() {
        // Every padding length, with the ICV's room after it and with less (the
        // loop then writes it): the trailer bytes equal write()'s, parse() reads it.
        for next in [IpProtocol::Ipv4, IpProtocol::Ipv6, IpProtocol::from(253)] {
            for pad in 0..=40usize {
                for room in [16, 15, 0] {
                    let len = pad + 2;
                    let mut want = vec![0xaa; len];
                    EspTrailer::write(&mut want, next);
                    let mut out = vec![0xaa; len + room];
                    EspTrailer::write_before_icv(&mut out, len, next);
                    assert_eq!(&out[..len], &want[..], "pad {pad} room {room} next {next:?}");
                    assert_eq!(EspTrailer::parse(&out[..len]), Ok(EspTrailer { pad_len: pad as u8, next_header: next }));
                }
            }
        }
    }

    #[test]
    fn header_fields() {
        let mut b = [0u8; 16];
        let mut e = EspPacket::new_unchecked(&mut b[..]);
        e.set_spi(Spi(0xc0ffee01));
        e.set_sequence_number(7);
        assert_eq!(&b[..8], &[0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 7]);
        let e = EspPacket::new_checked(&b[..]).expect("valid");
        assert_eq!((e.spi(), e.sequence_number(), e.payload().len()), (Spi(0xc0ffee01), 7, 8));
        assert_eq!(EspPacket::new_checked(&b[..7]).err(), Some(Error::Truncated));
        assert_eq!(SeqNumber(0x1_0000_0002).high(), 1);
        assert_eq!(SeqNumber(0x1_0000_0002).low(), 2);
    }

    #[test]
    fn nat_t_classification() {
        assert_eq!(UdpEncapPayload::classify(&[0xff]), Ok(UdpEncapPayload::NatKeepalive));
        assert_eq!(UdpEncapPayload::classify(&[0, 0, 0, 0, 1, 2]), Ok(UdpEncapPayload::Ike { offset: 4 }));
        assert_eq!(
            UdpEncapPayload::classify(&[0, 0, 1, 0, 0, 0, 0, 1]),
            Ok(UdpEncapPayload::Esp(Spi(256)))
        );
        assert_eq!(UdpEncapPayload::classify(&[0, 0, 1, 0]), Err(Error::Truncated));
        assert_eq!(UdpEncapPayload::classify(&[]), Err(Error::Truncated));
    }
}
