//! The fixed 28-byte IKE header (RFC 7296 §3.1).

use super::{ExchangeType, PayloadType, WireError};

pub const HEADER_LEN: usize = 28;

mod field {
    use std::ops::Range;
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// Header flags (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// This message is a response.
    pub response: bool,
}

impl Flags {
    const INITIATOR: u8 = 0x08;
    const RESPONSE: u8 = 0x20;
    fn from_byte(b: u8) -> Self {
        Flags { initiator: b & Self::INITIATOR != 0, response: b & Self::RESPONSE != 0 }
    }
    fn to_byte(self) -> u8 {
        (if self.initiator { Self::INITIATOR } else { 0 }) | (if self.response { Self::RESPONSE } else { 0 })
    }
}

/// A read-only view of an IKE header over a datagram.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks that the buffer holds a whole header, that the length field
    /// matches the datagram exactly (RFC 7296 §3.1: "Length of the total
    /// message"), and that the major version is 2 (§2.5).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated { what: "IKE header", need: HEADER_LEN, got: len });
        }
        let h = Header { buffer };
        // The version is checked before the length so that an IKEv1 peer is
        // recognised (and told INVALID_MAJOR_VERSION) whatever else is wrong.
        if h.major_version() != 2 {
            return Err(WireError::MajorVersion(h.major_version()));
        }
        let claimed = h.length() as usize;
        if claimed != len {
            return Err(WireError::LengthMismatch { claimed, actual: len });
        }
        Ok(h)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    fn u64_at(&self, r: std::ops::Range<usize>) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b()[r]);
        u64::from_be_bytes(a)
    }
    pub fn spi_i(&self) -> u64 {
        self.u64_at(field::SPI_I)
    }
    pub fn spi_r(&self) -> u64 {
        self.u64_at(field::SPI_R)
    }
    pub fn next_payload(&self) -> PayloadType {
        PayloadType::from(self.b()[field::NEXT_PAYLOAD])
    }
    pub fn major_version(&self) -> u8 {
        self.b()[field::VERSION] >> 4
    }
    pub fn minor_version(&self) -> u8 {
        self.b()[field::VERSION] & 0x0f
    }
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType::from(self.b()[field::EXCHANGE])
    }
    pub fn flags(&self) -> Flags {
        Flags::from_byte(self.b()[field::FLAGS])
    }
    pub fn message_id(&self) -> u32 {
        let b = &self.b()[field::MESSAGE_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn length(&self) -> u32 {
        let b = &self.b()[field::LENGTH];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The bytes after the header (the payload chain).
    pub fn body(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Reads the SPIs, version and exchange of anything that looks like an ISAKMP
/// header, whatever its version: used to answer an IKEv1 peer (RFC 7296 §2.5).
pub fn peek_any_version(buf: &[u8]) -> Option<HeaderRepr> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let h = Header { buffer: buf };
    Some(h.repr_unchecked())
}

impl<T: AsRef<[u8]>> Header<T> {
    fn repr_unchecked(&self) -> HeaderRepr {
        HeaderRepr {
            spi_i: self.spi_i(),
            spi_r: self.spi_r(),
            next_payload: self.next_payload(),
            exchange: self.exchange_type(),
            flags: self.flags(),
            message_id: self.message_id(),
            length: self.length(),
        }
    }
    /// The parsed form of the header.
    pub fn repr(&self) -> HeaderRepr {
        self.repr_unchecked()
    }
}

/// The parsed header. `length` is the whole message length; emitters set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    pub length: u32,
}

impl HeaderRepr {
    /// Appends the header (version 2.0) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(u8::from(self.next_payload));
        out.push(0x20);
        out.push(u8::from(self.exchange));
        out.push(self.flags.to_byte());
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        HeaderRepr {
            spi_i: 0x0102030405060708,
            spi_r: 0,
            next_payload: PayloadType::Sa,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags { initiator: true, response: false },
            message_id: 0,
            length: HEADER_LEN as u32,
        }
        .emit(&mut v);
        v
    }

    #[test]
    fn roundtrip_and_rfc_layout() {
        let v = sample();
        // RFC 7296 §3.1: version byte 0x20, I flag 0x08, exchange 34.
        assert_eq!(&v[16..20], &[33, 0x20, 34, 0x08]);
        let h = Header::new_checked(&v[..]).expect("valid");
        assert_eq!(h.spi_i(), 0x0102030405060708);
        assert!(h.flags().initiator && !h.flags().response);
        assert_eq!(h.exchange_type(), ExchangeType::IkeSaInit);
    }

    #[test]
    fn rejects_bad_lengths_and_v1() {
        let mut v = sample();
        assert!(matches!(Header::new_checked(&v[..27]), Err(WireError::Truncated { .. })));
        v.push(0);
        assert!(matches!(Header::new_checked(&v[..]), Err(WireError::LengthMismatch { .. })));
        let mut v1 = sample();
        v1[17] = 0x10;
        assert_eq!(Header::new_checked(&v1[..]).err(), Some(WireError::MajorVersion(1)));
        assert_eq!(peek_any_version(&v1).map(|h| h.spi_i), Some(0x0102030405060708));
    }
}
