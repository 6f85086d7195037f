//! Generic payload header (RFC 7296 §3.2), the payloads the engine uses, and
//! walking/emitting a payload chain.

use super::sa::{emit_proposals, parse_proposals};
use super::ts::{emit_ts, parse_ts};
use super::{patch_len16, NotifyType, PayloadType, ProposalRepr, ProtocolId, Reader, TsRepr, WireError};

pub const GENERIC_HEADER_LEN: usize = 4;
const CRITICAL: u8 = 0x80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    pub group: u16,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// ID type (RFC 7296 §3.5): 1 IPv4, 2 FQDN, 3 RFC822, 5 IPv6, 11 KEY_ID.
    pub id_type: u8,
    pub data: Vec<u8>,
}

impl IdPayload {
    /// The bytes the AUTH payload signs (RFC 7296 §2.15: the ID payload body
    /// without its generic header: type, three reserved bytes, data).
    pub fn body(&self) -> Vec<u8> {
        let mut v = vec![self.id_type, 0, 0, 0];
        v.extend_from_slice(&self.data);
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    /// Auth method (RFC 7296 §3.8): 2 = shared key MIC.
    pub method: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notify that is about the IKE SA or the exchange (no SPI).
    pub fn new(kind: NotifyType, data: Vec<u8>) -> Self {
        NotifyPayload { protocol: ProtocolId::None, spi: Vec::new(), kind, data }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    pub protocol: ProtocolId,
    /// Each SPI, `spi_size` bytes (0 for IKE, 4 for ESP).
    pub spis: Vec<Vec<u8>>,
}

/// The Encrypted and Authenticated payload, still sealed: `first_inner` is the
/// type of the first payload inside, `body` is IV || ciphertext || ICV
/// (RFC 7296 §3.14, RFC 5282 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkPayload {
    pub first_inner: PayloadType,
    pub body: Vec<u8>,
}

/// A parsed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<ProposalRepr>),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Auth(AuthPayload),
    Nonce(Vec<u8>),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    Vendor(Vec<u8>),
    TsI(Vec<TsRepr>),
    TsR(Vec<TsRepr>),
    Sk(SkPayload),
    /// A payload understood but ignored (CP, CERT, CERTREQ), or unknown and
    /// not critical (RFC 7296 §2.5: skip it).
    Ignored { kind: PayloadType, data: Vec<u8> },
}

impl Payload {
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::Vendor(_) => PayloadType::Vendor,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Sk(_) => PayloadType::Sk,
            Payload::Ignored { kind, .. } => *kind,
        }
    }

    fn parse(kind: PayloadType, body: &[u8], next: PayloadType) -> Result<Payload, WireError> {
        let mut r = Reader::new(body, "payload");
        Ok(match kind {
            PayloadType::Sa => Payload::Sa(parse_proposals(body)?),
            PayloadType::Ke => {
                let group = r.u16()?;
                r.take(2)?;
                Payload::Ke(KePayload { group, data: r.rest().to_vec() })
            }
            PayloadType::IdI | PayloadType::IdR => {
                let id_type = r.u8()?;
                r.take(3)?;
                let id = IdPayload { id_type, data: r.rest().to_vec() };
                if kind == PayloadType::IdI { Payload::IdI(id) } else { Payload::IdR(id) }
            }
            PayloadType::Auth => {
                let method = r.u8()?;
                r.take(3)?;
                Payload::Auth(AuthPayload { method, data: r.rest().to_vec() })
            }
            PayloadType::Nonce => {
                // RFC 7296 §3.9: between 16 and 256 octets.
                if !(16..=256).contains(&body.len()) {
                    return Err(WireError::BadLength { what: "nonce", claimed: body.len(), detail: "must be 16..=256 bytes" });
                }
                Payload::Nonce(body.to_vec())
            }
            PayloadType::Notify => {
                let protocol = ProtocolId::from(r.u8()?);
                let spi_size = r.u8()? as usize;
                let kind = NotifyType(r.u16()?);
                let spi = r.take(spi_size)?.to_vec();
                Payload::Notify(NotifyPayload { protocol, spi, kind, data: r.rest().to_vec() })
            }
            PayloadType::Delete => {
                let protocol = ProtocolId::from(r.u8()?);
                let spi_size = r.u8()? as usize;
                let n = r.u16()? as usize;
                if spi_size * n != r.remaining() {
                    return Err(WireError::BadLength { what: "delete payload", claimed: spi_size * n, detail: "SPI count × size ≠ payload size" });
                }
                let spis = (0..n).map(|_| r.take(spi_size).map(<[u8]>::to_vec)).collect::<Result<_, _>>()?;
                Payload::Delete(DeletePayload { protocol, spis })
            }
            PayloadType::Vendor => Payload::Vendor(body.to_vec()),
            PayloadType::TsI => Payload::TsI(parse_ts(body)?),
            PayloadType::TsR => Payload::TsR(parse_ts(body)?),
            PayloadType::Sk => Payload::Sk(SkPayload { first_inner: next, body: body.to_vec() }),
            other => Payload::Ignored { kind: other, data: body.to_vec() },
        })
    }

    fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            Payload::Sa(p) => emit_proposals(p, out)?,
            Payload::Ke(k) => {
                out.extend_from_slice(&k.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&k.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body()),
            Payload::Auth(a) => {
                out.extend_from_slice(&[a.method, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Payload::Nonce(d) | Payload::Vendor(d) => out.extend_from_slice(d),
            Payload::Notify(n) => {
                out.push(u8::from(n.protocol));
                out.push(u8::try_from(n.spi.len()).map_err(|_| WireError::Malformed { what: "notify", detail: "SPI too long" })?);
                out.extend_from_slice(&n.kind.0.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out.push(u8::from(d.protocol));
                let size = d.spis.first().map_or(0, Vec::len);
                if d.spis.iter().any(|s| s.len() != size) {
                    return Err(WireError::Malformed { what: "delete payload", detail: "SPIs of different sizes" });
                }
                out.push(u8::try_from(size).map_err(|_| WireError::Malformed { what: "delete payload", detail: "SPI too long" })?);
                out.extend_from_slice(&u16::try_from(d.spis.len()).map_err(|_| WireError::Malformed { what: "delete payload", detail: "too many SPIs" })?.to_be_bytes());
                for s in &d.spis {
                    out.extend_from_slice(s);
                }
            }
            Payload::TsI(t) | Payload::TsR(t) => emit_ts(t, out)?,
            Payload::Sk(sk) => out.extend_from_slice(&sk.body),
            Payload::Ignored { data, .. } => out.extend_from_slice(data),
        }
        Ok(())
    }
}

/// Walks a payload chain starting with `first`. Stops after an SK payload,
/// which must be the last one (RFC 7296 §3.14) and whose next-payload field
/// names its first inner payload. An unknown payload with the critical bit set
/// is an error (§2.5); unknown non-critical ones are kept as `Ignored`.
pub fn parse_payloads(first: PayloadType, buf: &[u8]) -> Result<Vec<Payload>, WireError> {
    let mut r = Reader::new(buf, "payload chain");
    let mut kind = first;
    let mut out = Vec::new();
    while kind != PayloadType::None {
        let next = PayloadType::from(r.u8()?);
        let flags = r.u8()?;
        let len = r.u16()? as usize;
        if len < GENERIC_HEADER_LEN {
            return Err(WireError::BadLength { what: "payload", claimed: len, detail: "below the 4-byte generic header" });
        }
        let body = r.take(len - GENERIC_HEADER_LEN)?;
        if let PayloadType::Unknown(t) = kind {
            if flags & CRITICAL != 0 {
                return Err(WireError::UnsupportedCritical(t));
            }
        }
        let p = Payload::parse(kind, body, next)?;
        let is_sk = matches!(p, Payload::Sk(_));
        out.push(p);
        if is_sk {
            if !r.is_empty() {
                return Err(WireError::Malformed { what: "SK payload", detail: "not the last payload" });
            }
            return Ok(out);
        }
        kind = next;
    }
    if !r.is_empty() {
        return Err(WireError::Malformed { what: "payload chain", detail: "bytes after the last payload" });
    }
    Ok(out)
}

/// Emits a payload chain; returns the type of the first payload (for the IKE
/// header or the SK payload's next-payload field). An SK payload must be last
/// and gets its inner first type as next payload.
pub fn emit_payloads(payloads: &[Payload], out: &mut Vec<u8>) -> Result<PayloadType, WireError> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p, payloads.get(i + 1)) {
            (Payload::Sk(sk), None) => sk.first_inner,
            (Payload::Sk(_), Some(_)) => {
                return Err(WireError::Malformed { what: "SK payload", detail: "not the last payload" })
            }
            (_, Some(n)) => n.kind(),
            (_, None) => PayloadType::None,
        };
        let start = out.len();
        out.push(u8::from(next));
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        p.emit_body(out)?;
        patch_len16(out, start, "payload")?;
    }
    Ok(payloads.first().map_or(PayloadType::None, Payload::kind))
}

impl IdPayload {
    /// `None` for `%any`, which is never sent.
    pub fn from_identity(id: &crate::identity::Identity) -> Option<Self> {
        Some(IdPayload { id_type: id.id_type()?.code(), data: id.data() })
    }

    pub fn to_identity(&self) -> Result<crate::identity::Identity, crate::identity::IdentityError> {
        crate::identity::Identity::from_wire(self.id_type, &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::{TransformRepr, TransformType};

    fn sample() -> Vec<Payload> {
        vec![
            Payload::Sa(vec![ProposalRepr {
                number: 1,
                protocol: ProtocolId::Ike,
                spi: vec![],
                transforms: vec![TransformRepr::new(TransformType::ENCR, 20, Some(256))],
            }]),
            Payload::Ke(KePayload { group: 31, data: vec![9; 32] }),
            Payload::Nonce(vec![7; 32]),
            Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![1; 20])),
            Payload::Delete(DeletePayload { protocol: ProtocolId::Esp, spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]] }),
            Payload::Vendor(b"ipsecgw".to_vec()),
            Payload::Sk(SkPayload { first_inner: PayloadType::IdI, body: vec![0; 40] }),
        ]
    }

    #[test]
    fn chain_roundtrip() {
        let mut out = Vec::new();
        let first = emit_payloads(&sample(), &mut out).expect("emit");
        assert_eq!(first, PayloadType::Sa);
        assert_eq!(parse_payloads(first, &out).expect("parse"), sample());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let first = emit_payloads(&sample(), &mut out).expect("emit");
        for cut in 0..out.len() {
            assert!(parse_payloads(first, &out[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn unknown_payloads_skipped_unless_critical() {
        // An unknown type 200, 4-byte body, then a nonce.
        let mut buf = vec![40, 0, 0, 8, 1, 2, 3, 4];
        buf.extend_from_slice(&[0, 0, 0, 20]);
        buf.extend_from_slice(&[0xaa; 16]);
        let p = parse_payloads(PayloadType::Unknown(200), &buf).expect("skip");
        assert_eq!(p.len(), 2);
        assert!(matches!(p[0], Payload::Ignored { kind: PayloadType::Unknown(200), .. }));
        buf[1] = 0x80;
        assert_eq!(parse_payloads(PayloadType::Unknown(200), &buf), Err(WireError::UnsupportedCritical(200)));
        // The critical bit on a known payload type is fine (§2.5).
        let mut known = vec![0, 0x80, 0, 20];
        known.extend_from_slice(&[0xaa; 16]);
        assert!(parse_payloads(PayloadType::Nonce, &known).is_ok());
    }

    #[test]
    fn length_lies() {
        let mut buf = vec![0, 0, 0, 3];
        assert!(parse_payloads(PayloadType::Vendor, &buf).is_err());
        buf[3] = 200;
        assert!(parse_payloads(PayloadType::Vendor, &buf).is_err());
        // Delete with count × size ≠ body size.
        let del = [0, 0, 0, 12, 3, 4, 0, 3, 1, 2, 3, 4];
        assert!(parse_payloads(PayloadType::Delete, &del).is_err());
    }
}
