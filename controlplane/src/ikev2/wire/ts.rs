//! Traffic selector payload bodies (RFC 7296 §3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{patch_len16, Reader, WireError};

pub const TS_IPV4_ADDR_RANGE: u8 = 7;
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

/// One traffic selector as it is on the wire: an address range, a port range
/// and an IP protocol (0 = any). Both addresses have the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRepr {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

pub(crate) fn parse_ts(body: &[u8]) -> Result<Vec<TsRepr>, WireError> {
    let mut r = Reader::new(body, "TS payload");
    let n = r.u8()?;
    r.take(3)?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ts_type = r.u8()?;
        let ip_protocol = r.u8()?;
        let len = r.u16()? as usize;
        let addr_len = match ts_type {
            TS_IPV4_ADDR_RANGE => 4,
            TS_IPV6_ADDR_RANGE => 16,
            _ => return Err(WireError::Malformed { what: "traffic selector", detail: "unknown TS type" }),
        };
        if len != 8 + 2 * addr_len {
            return Err(WireError::BadLength { what: "traffic selector", claimed: len, detail: "does not match its TS type" });
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let a = r.take(addr_len)?;
        let b = r.take(addr_len)?;
        let (start_addr, end_addr) = (ip_from(a), ip_from(b));
        out.push(TsRepr { ip_protocol, start_port, end_port, start_addr, end_addr });
    }
    if !r.is_empty() {
        return Err(WireError::Malformed { what: "TS payload", detail: "bytes after the last selector" });
    }
    Ok(out)
}

fn ip_from(b: &[u8]) -> IpAddr {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        IpAddr::V4(Ipv4Addr::from(a))
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

pub(crate) fn emit_ts(list: &[TsRepr], out: &mut Vec<u8>) -> Result<(), WireError> {
    out.push(u8::try_from(list.len()).map_err(|_| WireError::Malformed { what: "TS payload", detail: "over 255 selectors" })?);
    out.extend_from_slice(&[0, 0, 0]);
    for ts in list {
        let start = out.len();
        let (kind, a, b): (u8, Vec<u8>, Vec<u8>) = match (ts.start_addr, ts.end_addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (TS_IPV4_ADDR_RANGE, a.octets().to_vec(), b.octets().to_vec()),
            (IpAddr::V6(a), IpAddr::V6(b)) => (TS_IPV6_ADDR_RANGE, a.octets().to_vec(), b.octets().to_vec()),
            _ => return Err(WireError::Malformed { what: "traffic selector", detail: "address families differ" }),
        };
        out.extend_from_slice(&[kind, ts.ip_protocol, 0, 0]);
        out.extend_from_slice(&ts.start_port.to_be_bytes());
        out.extend_from_slice(&ts.end_port.to_be_bytes());
        out.extend_from_slice(&a);
        out.extend_from_slice(&b);
        patch_len16(out, start, "traffic selector")?;
    }
    Ok(())
}

impl TsRepr {
    pub fn from_selector(ts: &crate::selector::TrafficSelector) -> Self {
        TsRepr {
            ip_protocol: ts.protocol,
            start_port: ts.start_port,
            end_port: ts.end_port,
            start_addr: ts.addresses.start(),
            end_addr: ts.addresses.end(),
        }
    }

    /// `None` if the range is inverted (start > end), which RFC 7296 §3.13.1
    /// does not allow for addresses.
    pub fn to_selector(&self) -> Option<crate::selector::TrafficSelector> {
        let addresses = crate::selector::AddrRange::new(self.start_addr, self.end_addr)?;
        Some(crate::selector::TrafficSelector {
            addresses,
            protocol: self.ip_protocol,
            start_port: self.start_port,
            end_port: self.end_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_layout_and_roundtrip() {
        let ts = TsRepr {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: "10.1.0.0".parse().expect("ip"),
            end_addr: "10.1.0.255".parse().expect("ip"),
        };
        let mut out = Vec::new();
        emit_ts(&[ts], &mut out).expect("emit");
        assert_eq!(out, [1, 0, 0, 0, 7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 1, 0, 0, 10, 1, 0, 255]);
        assert_eq!(parse_ts(&out).expect("parse"), vec![ts]);
        for cut in 0..out.len() {
            assert!(parse_ts(&out[..cut]).is_err());
        }
    }
}
