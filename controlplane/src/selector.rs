//! Traffic selectors (RFC 7296 §3.13.1) and their narrowing (RFC 7296 §2.9).
//!
//! Config strings follow strongSwan's `local_ts`/`remote_ts` syntax:
//! `10.1.0.0/24`, `10.1.0.5`, `10.1.0.1-10.1.0.9`, `2001:db8::/32`, optionally followed
//! by `[proto]` or `[proto/port]` / `[proto/lo-hi]` (`10.1.0.0/24[udp/500]`, `[tcp]`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// TS Type (RFC 7296 §3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsType {
    Ipv4AddrRange,
    Ipv6AddrRange,
    Unknown(u8),
}

impl TsType {
    pub const fn from_code(code: u8) -> Self {
        match code {
            7 => Self::Ipv4AddrRange,
            8 => Self::Ipv6AddrRange,
            other => Self::Unknown(other),
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Self::Ipv4AddrRange => 7,
            Self::Ipv6AddrRange => 8,
            Self::Unknown(code) => code,
        }
    }
}

/// An inclusive address range of one family (start <= end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl AddrRange {
    /// A range from two addresses of the same family, `None` if the families differ or
    /// start > end.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<Self> {
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => Some(Self::V4(s, e)),
            (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => Some(Self::V6(s, e)),
            _ => None,
        }
    }

    /// The range covered by a prefix (host bits of `addr` ignored).
    pub fn from_prefix(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) if prefix_len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
                let start = u32::from(a) & mask;
                Some(Self::V4(start.into(), (start | !mask).into()))
            }
            IpAddr::V6(a) if prefix_len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
                let start = u128::from(a) & mask;
                Some(Self::V6(start.into(), (start | !mask).into()))
            }
            _ => None,
        }
    }

    pub fn start(&self) -> IpAddr {
        match self {
            Self::V4(s, _) => IpAddr::V4(*s),
            Self::V6(s, _) => IpAddr::V6(*s),
        }
    }

    pub fn end(&self) -> IpAddr {
        match self {
            Self::V4(_, e) => IpAddr::V4(*e),
            Self::V6(_, e) => IpAddr::V6(*e),
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, Self::V4(..))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Self::V4(s, e), IpAddr::V4(a)) => *s <= a && a <= *e,
            (Self::V6(s, e), IpAddr::V6(a)) => *s <= a && a <= *e,
            _ => false,
        }
    }

    /// The overlap of two ranges, `None` if disjoint or of different families.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        match (self, other) {
            (Self::V4(s1, e1), Self::V4(s2, e2)) => {
                let (s, e) = ((*s1).max(*s2), (*e1).min(*e2));
                (s <= e).then_some(Self::V4(s, e))
            }
            (Self::V6(s1, e1), Self::V6(s2, e2)) => {
                let (s, e) = ((*s1).max(*s2), (*e1).min(*e2));
                (s <= e).then_some(Self::V6(s, e))
            }
            _ => None,
        }
    }

    /// The prefix length if the range is exactly one CIDR prefix.
    pub fn prefix_len(&self) -> Option<u8> {
        let (start, end, bits) = match self {
            Self::V4(s, e) => (u128::from(u32::from(*s)), u128::from(u32::from(*e)), 32u32),
            Self::V6(s, e) => (u128::from(*s), u128::from(*e), 128u32),
        };
        let host = start ^ end;
        // A prefix: the differing bits are exactly the low host bits, all 0 in start.
        let is_prefix = host.wrapping_add(1) & host == 0 && start & host == 0;
        let host_bits = 128 - host.leading_zeros();
        is_prefix.then(|| u8::try_from(bits - host_bits).unwrap_or(0))
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(len) => write!(f, "{}/{len}", self.start()),
            // strongSwan prints non-prefix ranges as start..end.
            None => write!(f, "{}..{}", self.start(), self.end()),
        }
    }
}

/// A traffic selector: address range, IP protocol (0 = any) and port range
/// (RFC 7296 §3.13.1; 0-65535 = any port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub addresses: AddrRange,
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
}

impl TrafficSelector {
    /// All ports and protocols of an address range.
    pub fn from_range(addresses: AddrRange) -> Self {
        Self { addresses, protocol: 0, start_port: 0, end_port: u16::MAX }
    }

    /// All addresses of a family.
    pub fn any_v4() -> Self {
        Self::from_range(AddrRange::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST))
    }

    pub fn any_v6() -> Self {
        Self::from_range(AddrRange::V6(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX)))
    }

    /// One host, all ports and protocols.
    pub fn host(addr: IpAddr) -> Self {
        Self::from_range(match addr {
            IpAddr::V4(a) => AddrRange::V4(a, a),
            IpAddr::V6(a) => AddrRange::V6(a, a),
        })
    }

    /// From a CIDR string such as `10.1.0.0/24` (a bare address is a /32 or /128).
    pub fn from_cidr(text: &str) -> Result<Self, SelectorParseError> {
        parse_addresses(text.trim(), text).map(Self::from_range)
    }

    pub fn ts_type(&self) -> TsType {
        if self.addresses.is_ipv4() {
            TsType::Ipv4AddrRange
        } else {
            TsType::Ipv6AddrRange
        }
    }

    /// Whether the ports are "any" (0-65535).
    pub fn all_ports(&self) -> bool {
        self.start_port == 0 && self.end_port == u16::MAX
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }

    /// Whether a packet with these fields matches (port ignored for protocol-only selectors).
    pub fn matches(&self, addr: IpAddr, protocol: u8, port: u16) -> bool {
        self.addresses.contains(addr)
            && (self.protocol == 0 || self.protocol == protocol)
            && self.start_port <= port
            && port <= self.end_port
    }

    /// The part of the traffic both selectors describe, `None` if there is none. Protocol
    /// 0 matches any protocol; an empty port range (start > end, RFC 4301's OPAQUE)
    /// intersects only with all ports.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let addresses = self.addresses.intersect(&other.addresses)?;
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let (start_port, end_port) = if self.all_ports() {
            (other.start_port, other.end_port)
        } else if other.all_ports() {
            (self.start_port, self.end_port)
        } else {
            let (s, e) = (self.start_port.max(other.start_port), self.end_port.min(other.end_port));
            if s > e {
                return None;
            }
            (s, e)
        };
        Some(Self { addresses, protocol, start_port, end_port })
    }
}

/// Responder narrowing (RFC 7296 §2.9): the parts of the proposed selectors that our
/// configured (allowed) ones permit, in our order, without duplicates or selectors that
/// another result already covers. An empty result means TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut result: Vec<TrafficSelector> = Vec::new();
    for a in allowed {
        for p in proposed {
            if let Some(ts) = a.intersect(p) {
                if !result.iter().any(|r| r.contains(&ts)) {
                    result.retain(|r| !ts.contains(r));
                    result.push(ts);
                }
            }
        }
    }
    result
}

/// Pairs of selectors from two lists that overlap (for the config's overlap warnings).
pub fn overlaps<'a>(
    a: &'a [TrafficSelector],
    b: &'a [TrafficSelector],
) -> impl Iterator<Item = (&'a TrafficSelector, &'a TrafficSelector)> + 'a {
    a.iter().flat_map(move |x| b.iter().filter(move |y| x.intersect(y).is_some()).map(move |y| (x, y)))
}

impl fmt::Display for TrafficSelector {
    /// strongSwan style: `10.1.0.0/24`, `10.1.0.0/24[udp]`, `10.1.0.0/24[udp/500]`,
    /// `10.1.0.0/24[tcp/1000-2000]`, `10.1.0.0/24[17/0-65535]` never printed as such.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addresses)?;
        if self.protocol == 0 && self.all_ports() {
            return Ok(());
        }
        f.write_str("[")?;
        match protocol_name(self.protocol) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "{}", self.protocol)?,
        }
        if !self.all_ports() {
            if self.start_port == self.end_port {
                write!(f, "/{}", self.start_port)?;
            } else if self.start_port > self.end_port {
                f.write_str("/opaque")?;
            } else {
                write!(f, "/{}-{}", self.start_port, self.end_port)?;
            }
        }
        f.write_str("]")
    }
}

impl FromStr for TrafficSelector {
    type Err = SelectorParseError;

    /// Parses strongSwan's selector syntax (see the module docs).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (addr_part, proto_part) = match trimmed.find('[') {
            Some(open) => {
                let Some(inner) = trimmed[open + 1..].strip_suffix(']') else {
                    return Err(SelectorParseError::new(text, "'[' without a closing ']' at the end"));
                };
                (&trimmed[..open], Some(inner))
            }
            None => (trimmed, None),
        };
        let mut ts = Self::from_range(parse_addresses(addr_part.trim(), text)?);
        if let Some(inner) = proto_part {
            let (proto, ports) = match inner.split_once('/') {
                Some((p, ports)) => (p.trim(), Some(ports.trim())),
                None => (inner.trim(), None),
            };
            ts.protocol = parse_protocol(proto)
                .ok_or_else(|| SelectorParseError::new(text, "unknown protocol: use a name (tcp, udp, icmp, icmpv6, sctp, any) or a number 0-255"))?;
            if let Some(ports) = ports {
                let (s, e) = parse_ports(ports)
                    .ok_or_else(|| SelectorParseError::new(text, "bad port: use a number, lo-hi, or %any"))?;
                if ts.protocol == 0 && (s, e) != (0, u16::MAX) {
                    return Err(SelectorParseError::new(text, "ports need a protocol: write e.g. [udp/500]"));
                }
                ts.start_port = s;
                ts.end_port = e;
            }
        }
        Ok(ts)
    }
}

fn parse_addresses(text: &str, whole: &str) -> Result<AddrRange, SelectorParseError> {
    let bad = |why: &'static str| SelectorParseError::new(whole, why);
    if text.is_empty() {
        return Err(bad("no address: write a prefix like 10.1.0.0/24"));
    }
    if let Some((addr, len)) = text.split_once('/') {
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad("not an IP address before '/'"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .trim()
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| bad(if max == 32 { "prefix length must be 0-32" } else { "prefix length must be 0-128" }))?;
        let range = AddrRange::from_prefix(addr, len).ok_or_else(|| bad("bad prefix"))?;
        return Ok(range);
    }
    let range_sep = text.find("..").map(|i| (i, 2)).or_else(|| text.find('-').map(|i| (i, 1)));
    if let Some((i, sep_len)) = range_sep {
        let start: IpAddr = text[..i].trim().parse().map_err(|_| bad("range start is not an IP address"))?;
        let end: IpAddr = text[i + sep_len..].trim().parse().map_err(|_| bad("range end is not an IP address"))?;
        return AddrRange::new(start, end).ok_or_else(|| bad("range start and end must be of one family, start <= end"));
    }
    let addr: IpAddr = text.parse().map_err(|_| bad("not an IP address or prefix (e.g. 10.1.0.0/24)"))?;
    AddrRange::from_prefix(addr, if addr.is_ipv4() { 32 } else { 128 }).ok_or_else(|| bad("bad address"))
}

const PROTOCOLS: &[(&str, u8)] =
    &[("any", 0), ("icmp", 1), ("tcp", 6), ("udp", 17), ("gre", 47), ("ipv6-icmp", 58), ("icmpv6", 58), ("sctp", 132)];

fn protocol_name(protocol: u8) -> Option<&'static str> {
    PROTOCOLS.iter().find(|(_, p)| *p == protocol).map(|(n, _)| *n)
}

fn parse_protocol(text: &str) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    if lower == "%any" {
        return Some(0);
    }
    PROTOCOLS.iter().find(|(n, _)| *n == lower).map(|(_, p)| *p).or_else(|| lower.parse().ok())
}

fn parse_ports(text: &str) -> Option<(u16, u16)> {
    if text.eq_ignore_ascii_case("%any") || text.eq_ignore_ascii_case("any") {
        return Some((0, u16::MAX));
    }
    if text.eq_ignore_ascii_case("%opaque") || text.eq_ignore_ascii_case("opaque") {
        return Some((u16::MAX, 0));
    }
    match text.split_once('-') {
        Some((s, e)) => {
            let (s, e) = (s.trim().parse().ok()?, e.trim().parse().ok()?);
            (s <= e).then_some((s, e))
        }
        None => text.parse().ok().map(|p| (p, p)),
    }
}

/// A selector string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad traffic selector '{text}': {reason}")]
pub struct SelectorParseError {
    pub text: String,
    pub reason: &'static str,
}

impl SelectorParseError {
    fn new(text: &str, reason: &'static str) -> Self {
        Self { text: text.to_owned(), reason }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_strongswan_syntax() {
        for s in [
            "10.1.0.0/24",
            "10.1.0.5/32",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
            "10.1.0.1..10.1.0.9",
            "10.1.0.0/24[udp]",
            "10.1.0.0/24[udp/500]",
            "10.1.0.0/24[tcp/1000-2000]",
            "10.1.0.0/24[99]",
        ] {
            assert_eq!(ts(s).to_string(), s);
        }
        assert_eq!(ts("10.1.0.7/24").to_string(), "10.1.0.0/24");
        assert_eq!(ts("10.1.0.5").to_string(), "10.1.0.5/32");
        assert_eq!(ts("10.1.0.1-10.1.0.9").to_string(), "10.1.0.1..10.1.0.9");
        assert_eq!(ts("10.1.0.0/24[UDP/%any]").to_string(), "10.1.0.0/24[udp]");
        assert_eq!(ts("10.0.0.0/8").ts_type().code(), 7);
        assert_eq!(ts("fe80::/10").ts_type(), TsType::Ipv6AddrRange);
        let t = ts("10.1.0.0/24");
        assert_eq!((t.protocol, t.start_port, t.end_port), (0, 0, 65535));
        assert_eq!(t.addresses, AddrRange::V4(Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(10, 1, 0, 255)));
    }

    #[test]
    fn rejects_with_reasons() {
        for (s, reason) in [
            ("10.1.0.0/33", "prefix length must be 0-32"),
            ("10.1.0/24", "not an IP address before '/'"),
            ("10.1.0.9-10.1.0.1", "range start and end must be of one family, start <= end"),
            ("10.1.0.1-::1", "range start and end must be of one family, start <= end"),
            ("10.1.0.0/24[udp/70000]", "bad port: use a number, lo-hi, or %any"),
            ("10.1.0.0/24[foo]", "unknown protocol: use a name (tcp, udp, icmp, icmpv6, sctp, any) or a number 0-255"),
            ("10.1.0.0/24[udp", "'[' without a closing ']' at the end"),
            ("10.1.0.0/24[any/53]", "ports need a protocol: write e.g. [udp/500]"),
            ("", "no address: write a prefix like 10.1.0.0/24"),
        ] {
            assert_eq!(s.parse::<TrafficSelector>().unwrap_err().reason, reason, "{s}");
        }
    }

    #[test]
    fn prefix_detection() {
        assert_eq!(AddrRange::from_prefix("10.0.0.0".parse().unwrap(), 0).unwrap().prefix_len(), Some(0));
        assert_eq!(ts("10.0.0.0..10.0.0.255").addresses.prefix_len(), Some(24));
        assert_eq!(ts("10.0.0.1..10.0.0.255").addresses.prefix_len(), None);
        assert_eq!(ts("10.0.0.0..10.0.1.254").addresses.prefix_len(), None);
        assert_eq!(ts("::/0").addresses.prefix_len(), Some(0));
    }

    #[test]
    fn intersection_rules() {
        let a = ts("10.0.0.0/16");
        let b = ts("10.0.5.0/24[udp/500]");
        assert_eq!(a.intersect(&b), Some(b));
        assert!(a.contains(&b) && !b.contains(&a));
        assert_eq!(ts("10.0.0.0/24[tcp]").intersect(&b), None);
        assert_eq!(ts("10.0.5.0/24[udp/400-499]").intersect(&b), None);
        assert_eq!(
            ts("10.0.5.128/25[udp/1-1000]").intersect(&ts("10.0.5.0/24[udp/500-2000]")),
            Some(ts("10.0.5.128/25[udp/500-1000]"))
        );
        assert_eq!(ts("10.0.0.0/8").intersect(&ts("::/0")), None);
        assert_eq!(ts("10.0.0.1-10.0.0.10").intersect(&ts("10.0.0.8/29")), Some(ts("10.0.0.8-10.0.0.10")));
    }

    #[test]
    fn narrowing_as_rfc7296_2_9() {
        // Initiator proposes everything, responder allows one subnet: narrowed to it.
        assert_eq!(narrow(&[ts("0.0.0.0/0")], &[ts("10.1.0.0/24")]), vec![ts("10.1.0.0/24")]);
        // Initiator asks for a subnet we allow a part of.
        assert_eq!(narrow(&[ts("10.1.0.0/16")], &[ts("10.1.2.0/24"), ts("10.9.0.0/24")]), vec![ts("10.1.2.0/24")]);
        // The packet-specific selector and the subnet: the subnet covers the packet one.
        assert_eq!(
            narrow(&[ts("10.1.0.5/32[tcp/80]"), ts("10.1.0.0/24")], &[ts("10.1.0.0/16")]),
            vec![ts("10.1.0.0/24")]
        );
        assert!(narrow(&[ts("10.3.0.0/24")], &[ts("10.1.0.0/24")]).is_empty());
        assert_eq!(narrow(&[ts("10.1.0.0/24"), ts("2001:db8::/64")], &[ts("::/0")]), vec![ts("2001:db8::/64")]);
    }

    #[test]
    fn packet_matching() {
        let t = ts("10.1.0.0/24[udp/500-501]");
        assert!(t.matches("10.1.0.9".parse().unwrap(), 17, 501));
        assert!(!t.matches("10.1.0.9".parse().unwrap(), 17, 502));
        assert!(!t.matches("10.1.0.9".parse().unwrap(), 6, 500));
        assert!(!t.matches("10.1.1.9".parse().unwrap(), 17, 500));
        assert!(TrafficSelector::any_v6().matches("::1".parse().unwrap(), 58, 0));
        assert!(TrafficSelector::host("10.0.0.1".parse().unwrap()).contains(&ts("10.0.0.1/32[udp]")));
    }
}
