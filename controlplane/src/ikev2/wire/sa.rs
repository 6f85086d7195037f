//! SA payload substructures: proposals, transforms, attributes (RFC 7296 §3.3).
//! Values stay numeric here; `controlplane::proposal` gives them meaning.

use super::{patch_len16, ProtocolId, Reader, WireError};

/// Transform attribute type for the key length (RFC 7296 §3.3.5), the only
/// attribute IKEv2 defines.
pub const ATTR_KEY_LENGTH: u16 = 14;

/// Transform type (RFC 7296 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransformType(pub u8);

impl TransformType {
    pub const ENCR: TransformType = TransformType(1);
    pub const PRF: TransformType = TransformType(2);
    pub const INTEG: TransformType = TransformType(3);
    pub const DH: TransformType = TransformType(4);
    pub const ESN: TransformType = TransformType(5);
}

/// A transform attribute; TV format (AF=1) carries a 16-bit value, TLV a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    Tv { kind: u16, value: u16 },
    Tlv { kind: u16, value: Vec<u8> },
}

/// One transform with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRepr {
    pub kind: TransformType,
    pub id: u16,
    pub attributes: Vec<Attribute>,
}

impl TransformRepr {
    pub fn new(kind: TransformType, id: u16, key_len: Option<u16>) -> Self {
        let attributes = key_len.map(|v| Attribute::Tv { kind: ATTR_KEY_LENGTH, value: v }).into_iter().collect();
        TransformRepr { kind, id, attributes }
    }

    /// The key-length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv { kind: ATTR_KEY_LENGTH, value } => Some(*value),
            _ => None,
        })
    }
}

/// One proposal: protocol, SPI (empty for IKE in IKE_SA_INIT, 8 bytes for an
/// IKE rekey, 4 for ESP) and transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRepr {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<TransformRepr>,
}

const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

/// Parses the body of an SA payload into its proposals.
pub(crate) fn parse_proposals(body: &[u8]) -> Result<Vec<ProposalRepr>, WireError> {
    let mut r = Reader::new(body, "SA proposal");
    let mut out = Vec::new();
    loop {
        let last = r.u8()?;
        let _reserved = r.u8()?;
        let len = r.u16()? as usize;
        if len < 8 {
            return Err(WireError::BadLength { what: "proposal", claimed: len, detail: "below 8" });
        }
        let mut p = Reader::new(r.take(len - 4)?, "SA proposal");
        let number = p.u8()?;
        let protocol = ProtocolId::from(p.u8()?);
        let spi_size = p.u8()? as usize;
        let n_transforms = p.u8()?;
        let spi = p.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(n_transforms as usize);
        for i in 0..n_transforms {
            let t_last = p.u8()?;
            let _ = p.u8()?;
            let t_len = p.u16()? as usize;
            if t_len < 8 {
                return Err(WireError::BadLength { what: "transform", claimed: t_len, detail: "below 8" });
            }
            let mut t = Reader::new(p.take(t_len - 4)?, "transform");
            let kind = TransformType(t.u8()?);
            let _ = t.u8()?;
            let id = t.u16()?;
            let mut attributes = Vec::new();
            while !t.is_empty() {
                let a = t.u16()?;
                let akind = a & 0x7fff;
                if a & 0x8000 != 0 {
                    attributes.push(Attribute::Tv { kind: akind, value: t.u16()? });
                } else {
                    let alen = t.u16()? as usize;
                    attributes.push(Attribute::Tlv { kind: akind, value: t.take(alen)?.to_vec() });
                }
            }
            let expect_more = i + 1 < n_transforms;
            if (t_last == MORE_TRANSFORMS) != expect_more {
                return Err(WireError::Malformed { what: "transform", detail: "last-substructure flag disagrees with count" });
            }
            transforms.push(TransformRepr { kind, id, attributes });
        }
        if !p.is_empty() {
            return Err(WireError::Malformed { what: "proposal", detail: "bytes after the last transform" });
        }
        out.push(ProposalRepr { number, protocol, spi, transforms });
        match last {
            LAST => break,
            MORE_PROPOSALS if !r.is_empty() => continue,
            _ => return Err(WireError::Malformed { what: "proposal", detail: "last-substructure flag disagrees with length" }),
        }
    }
    if !r.is_empty() {
        return Err(WireError::Malformed { what: "SA payload", detail: "bytes after the last proposal" });
    }
    Ok(out)
}

pub(crate) fn emit_proposals(props: &[ProposalRepr], out: &mut Vec<u8>) -> Result<(), WireError> {
    for (pi, p) in props.iter().enumerate() {
        let start = out.len();
        out.push(if pi + 1 == props.len() { LAST } else { MORE_PROPOSALS });
        out.extend_from_slice(&[0, 0, 0]);
        out.push(p.number);
        out.push(u8::from(p.protocol));
        out.push(u8::try_from(p.spi.len()).map_err(|_| WireError::Malformed { what: "proposal", detail: "SPI too long" })?);
        out.push(u8::try_from(p.transforms.len()).map_err(|_| WireError::Malformed { what: "proposal", detail: "too many transforms" })?);
        out.extend_from_slice(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            let tstart = out.len();
            out.push(if ti + 1 == p.transforms.len() { LAST } else { MORE_TRANSFORMS });
            out.extend_from_slice(&[0, 0, 0]);
            out.push(t.kind.0);
            out.push(0);
            out.extend_from_slice(&t.id.to_be_bytes());
            for a in &t.attributes {
                match a {
                    Attribute::Tv { kind, value } => {
                        out.extend_from_slice(&(kind | 0x8000).to_be_bytes());
                        out.extend_from_slice(&value.to_be_bytes());
                    }
                    Attribute::Tlv { kind, value } => {
                        out.extend_from_slice(&(kind & 0x7fff).to_be_bytes());
                        let l = u16::try_from(value.len()).map_err(|_| WireError::Malformed { what: "attribute", detail: "too long" })?;
                        out.extend_from_slice(&l.to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            }
            patch_len16(out, tstart, "transform")?;
        }
        patch_len16(out, start, "proposal")?;
    }
    Ok(())
}

/// Conversions between the numeric wire form and `controlplane::proposal`.
impl ProposalRepr {
    /// Our proposal on the wire; `number` starts at 1 (RFC 7296 §3.3.1).
    pub fn from_proposal(p: &crate::proposal::Proposal, number: u8, spi: Vec<u8>) -> Self {
        use crate::proposal::Transform;
        let transforms = p
            .transforms()
            .map(|t| match t {
                Transform::Encr(e) => TransformRepr::new(TransformType::ENCR, e.id.code(), e.key_bits),
                Transform::Unknown { ty, id } => TransformRepr::new(TransformType(ty.code()), id, None),
                other => TransformRepr::new(TransformType(other.transform_type().code()), other.id(), None),
            })
            .collect();
        ProposalRepr { number, protocol: ProtocolId::from(p.protocol.code()), spi, transforms }
    }

    /// The offered proposal in `controlplane::proposal` terms.
    pub fn to_proposal(&self) -> crate::proposal::Proposal {
        use crate::proposal::{Protocol, Proposal, Transform};
        let mut p = Proposal::new(Protocol::from_code(u8::from(self.protocol)));
        for t in &self.transforms {
            p.push(Transform::from_wire(t.kind.0, t.id, t.key_length()));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_layout_of_one_proposal() {
        let p = ProposalRepr {
            number: 1,
            protocol: ProtocolId::Esp,
            spi: vec![0xde, 0xad, 0xbe, 0xef],
            transforms: vec![
                TransformRepr::new(TransformType::ENCR, 20, Some(128)),
                TransformRepr::new(TransformType::ESN, 0, None),
            ],
        };
        let mut out = Vec::new();
        emit_proposals(std::slice::from_ref(&p), &mut out).expect("emit");
        // proposal header 8 + SPI 4 + transform 12 (with key length) + transform 8
        assert_eq!(out.len(), 32);
        assert_eq!(&out[..8], &[0, 0, 0, 32, 1, 3, 4, 2]);
        assert_eq!(&out[12..24], &[3, 0, 0, 12, 1, 0, 0, 20, 0x80, 14, 0, 128]);
        assert_eq!(&out[24..], &[0, 0, 0, 8, 5, 0, 0, 0]);
        assert_eq!(parse_proposals(&out).expect("parse"), vec![p]);
    }

    #[test]
    fn length_lies_are_errors() {
        let p = ProposalRepr { number: 1, protocol: ProtocolId::Ike, spi: vec![], transforms: vec![TransformRepr::new(TransformType::DH, 19, None)] };
        let mut out = Vec::new();
        emit_proposals(&[p], &mut out).expect("emit");
        for cut in 0..out.len() {
            assert!(parse_proposals(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut lie = out.clone();
        lie[3] = 200;
        assert!(parse_proposals(&lie).is_err());
        let mut lie = out;
        lie[11] = 3; // transform length 3 < 8
        assert!(parse_proposals(&lie).is_err());
    }
}
