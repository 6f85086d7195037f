//! IKE identities (RFC 7296 §3.5) and strongSwan's identity string syntax.
//!
//! From config strings, like strongSwan's `identification_create_from_string`:
//! an IPv4/IPv6 address → ID_IPV4_ADDR/ID_IPV6_ADDR; `user@example.org` → ID_RFC822_ADDR;
//! `@name` (no DNS lookup) or a plain name → ID_FQDN; `@#0a0b…` or `keyid:#0a0b…` (hex)
//! or `keyid:text` → ID_KEY_ID; `@@user@host` → ID_RFC822_ADDR; `%any` → any peer
//! (for `remote_id` only). Typed prefixes `ipv4:`, `ipv6:`, `fqdn:`/`dns:`,
//! `rfc822:`/`email:`/`userfqdn:`, `keyid:` force a type.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// ID Type (RFC 7296 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdType {
    Ipv4Addr,
    Fqdn,
    Rfc822Addr,
    Ipv6Addr,
    DerAsn1Dn,
    DerAsn1Gn,
    KeyId,
    Unknown(u8),
}

impl IdType {
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Ipv4Addr,
            2 => Self::Fqdn,
            3 => Self::Rfc822Addr,
            5 => Self::Ipv6Addr,
            9 => Self::DerAsn1Dn,
            10 => Self::DerAsn1Gn,
            11 => Self::KeyId,
            other => Self::Unknown(other),
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Self::Ipv4Addr => 1,
            Self::Fqdn => 2,
            Self::Rfc822Addr => 3,
            Self::Ipv6Addr => 5,
            Self::DerAsn1Dn => 9,
            Self::DerAsn1Gn => 10,
            Self::KeyId => 11,
            Self::Unknown(code) => code,
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4Addr => f.write_str("ID_IPV4_ADDR"),
            Self::Fqdn => f.write_str("ID_FQDN"),
            Self::Rfc822Addr => f.write_str("ID_RFC822_ADDR"),
            Self::Ipv6Addr => f.write_str("ID_IPV6_ADDR"),
            Self::DerAsn1Dn => f.write_str("ID_DER_ASN1_DN"),
            Self::DerAsn1Gn => f.write_str("ID_DER_ASN1_GN"),
            Self::KeyId => f.write_str("ID_KEY_ID"),
            Self::Unknown(code) => write!(f, "ID_{code}"),
        }
    }
}

/// An IKE identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    Rfc822(String),
    KeyId(Vec<u8>),
    /// A type we cannot interpret (DER DN/GN, unassigned), kept as received.
    Other { id_type: IdType, data: Vec<u8> },
    /// `%any`: matches every peer identity; never sent.
    Any,
}

impl Identity {
    /// The ID payload's type; `None` for [`Identity::Any`], which is never sent.
    pub fn id_type(&self) -> Option<IdType> {
        Some(match self {
            Self::Ipv4(_) => IdType::Ipv4Addr,
            Self::Ipv6(_) => IdType::Ipv6Addr,
            Self::Fqdn(_) => IdType::Fqdn,
            Self::Rfc822(_) => IdType::Rfc822Addr,
            Self::KeyId(_) => IdType::KeyId,
            Self::Other { id_type, .. } => *id_type,
            Self::Any => return None,
        })
    }

    /// The Identification Data of the ID payload (RFC 7296 §3.5: addresses in network
    /// order, names without terminator). Empty for [`Identity::Any`].
    pub fn data(&self) -> Vec<u8> {
        match self {
            Self::Ipv4(a) => a.octets().to_vec(),
            Self::Ipv6(a) => a.octets().to_vec(),
            Self::Fqdn(s) | Self::Rfc822(s) => s.as_bytes().to_vec(),
            Self::KeyId(k) => k.clone(),
            Self::Other { data, .. } => data.clone(),
            Self::Any => Vec::new(),
        }
    }

    /// From a received ID payload. Addresses of the wrong length and names that are not
    /// UTF-8 are errors; unknown types are kept as [`Identity::Other`].
    pub fn from_wire(id_type: u8, data: &[u8]) -> Result<Self, IdentityError> {
        let id_type = IdType::from_code(id_type);
        let bad = |reason| IdentityError { text: format!("{id_type} of {} bytes", data.len()), reason };
        Ok(match id_type {
            IdType::Ipv4Addr => {
                Self::Ipv4(<[u8; 4]>::try_from(data).map_err(|_| bad("an IPv4 address is 4 bytes"))?.into())
            }
            IdType::Ipv6Addr => {
                Self::Ipv6(<[u8; 16]>::try_from(data).map_err(|_| bad("an IPv6 address is 16 bytes"))?.into())
            }
            IdType::Fqdn | IdType::Rfc822Addr => {
                let text = std::str::from_utf8(data).map_err(|_| bad("the name is not valid UTF-8"))?.to_owned();
                if id_type == IdType::Fqdn {
                    Self::Fqdn(text)
                } else {
                    Self::Rfc822(text)
                }
            }
            IdType::KeyId => Self::KeyId(data.to_vec()),
            other => Self::Other { id_type: other, data: data.to_vec() },
        })
    }

    /// Whether a peer presenting `presented` is acceptable when `self` is the configured
    /// remote ID (`%any` accepts everyone; names compare case-insensitively as DNS does).
    pub fn matches(&self, presented: &Identity) -> bool {
        match (self, presented) {
            (Self::Any, _) => true,
            (Self::Fqdn(a), Self::Fqdn(b)) | (Self::Rfc822(a), Self::Rfc822(b)) => a.eq_ignore_ascii_case(b),
            _ => self == presented,
        }
    }

    /// The identity used when none is configured: the local address (strongSwan does the same).
    pub fn from_addr(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self::Ipv4(a),
            IpAddr::V6(a) => Self::Ipv6(a),
        }
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason| IdentityError { text: text.to_owned(), reason };
        let s = text.trim();
        if s.is_empty() {
            return Err(bad("empty identity: write an address, a name or user@domain"));
        }
        if s == "%any" || s == "%any6" {
            return Ok(Self::Any);
        }
        if let Some((prefix, value)) = s.split_once(':') {
            let typed = match prefix.to_ascii_lowercase().as_str() {
                "ipv4" => Some(value.parse().map(Self::Ipv4).map_err(|_| bad("not an IPv4 address after 'ipv4:'"))),
                "ipv6" => Some(value.parse().map(Self::Ipv6).map_err(|_| bad("not an IPv6 address after 'ipv6:'"))),
                "fqdn" | "dns" => Some(non_empty(value, text).map(Self::Fqdn)),
                "rfc822" | "email" | "userfqdn" => Some(non_empty(value, text).map(Self::Rfc822)),
                "keyid" => Some(match value.strip_prefix('#') {
                    Some(hex) => parse_hex(hex, text).map(Self::KeyId),
                    None => non_empty(value, text).map(|v| Self::KeyId(v.into_bytes())),
                }),
                "asn1dn" | "asn1gn" => Some(Err(bad("ASN.1 identities need certificates; ipsecgw does PSK only"))),
                _ => None,
            };
            if let Some(result) = typed {
                return result;
            }
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::from_addr(addr));
        }
        if let Some(hex) = s.strip_prefix("@#") {
            return parse_hex(hex, text).map(Self::KeyId);
        }
        if let Some(rest) = s.strip_prefix("@@") {
            return non_empty(rest, text).map(Self::Rfc822);
        }
        if let Some(rest) = s.strip_prefix('@') {
            return non_empty(rest, text).map(Self::Fqdn);
        }
        if s.contains('=') {
            return Err(bad("looks like a distinguished name (ASN.1 DN); ipsecgw does PSK only: use an FQDN or address"));
        }
        if s.contains('@') {
            return Ok(Self::Rfc822(s.to_owned()));
        }
        Ok(Self::Fqdn(s.to_owned()))
    }
}

fn non_empty(value: &str, text: &str) -> Result<String, IdentityError> {
    if value.is_empty() {
        Err(IdentityError { text: text.to_owned(), reason: "nothing after the prefix" })
    } else {
        Ok(value.to_owned())
    }
}

fn parse_hex(hex: &str, text: &str) -> Result<Vec<u8>, IdentityError> {
    let bad = |reason| IdentityError { text: text.to_owned(), reason };
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return Err(bad("a key ID needs an even number of hex digits after '#'"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad("a key ID must be hex digits after '#'"))
}

impl fmt::Display for Identity {
    /// The config syntax, so `Display` and `FromStr` round-trip; key IDs as `@#hex`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "{a}"),
            // Plain when the plain form reads back as the same identity, else with the
            // typed prefix that forces the type ("@10.0.0.1" style names, '=' or '%').
            Self::Fqdn(s) => write_name(f, self, s, "fqdn:"),
            Self::Rfc822(s) => write_name(f, self, s, "rfc822:"),
            Self::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Self::Other { id_type, data } => {
                write!(f, "{id_type}:")?;
                data.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Self::Any => f.write_str("%any"),
        }
    }
}

fn write_name(f: &mut fmt::Formatter<'_>, id: &Identity, name: &str, prefix: &str) -> fmt::Result {
    if name.parse::<Identity>().is_ok_and(|parsed| &parsed == id) {
        f.write_str(name)
    } else {
        write!(f, "{prefix}{name}")
    }
}

/// An identity string or payload that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad identity '{text}': {reason}")]
pub struct IdentityError {
    pub text: String,
    pub reason: &'static str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        s.parse().unwrap()
    }

    #[test]
    fn parses_like_strongswan() {
        assert_eq!(id("198.51.100.1"), Identity::Ipv4(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(id("2001:db8::1").id_type(), Some(IdType::Ipv6Addr));
        assert_eq!(id("gw.example.org"), Identity::Fqdn("gw.example.org".into()));
        assert_eq!(id("@gw.example.org"), Identity::Fqdn("gw.example.org".into()));
        assert_eq!(id("@198.51.100.1"), Identity::Fqdn("198.51.100.1".into()));
        assert_eq!(id("alice@example.org"), Identity::Rfc822("alice@example.org".into()));
        assert_eq!(id("@@alice@example.org"), Identity::Rfc822("alice@example.org".into()));
        assert_eq!(id("@#0a0B"), Identity::KeyId(vec![0x0a, 0x0b]));
        assert_eq!(id("keyid:#0a0b"), Identity::KeyId(vec![0x0a, 0x0b]));
        assert_eq!(id("keyid:left"), Identity::KeyId(b"left".to_vec()));
        assert_eq!(id("fqdn:a@b"), Identity::Fqdn("a@b".into()));
        assert_eq!(id("email:ops"), Identity::Rfc822("ops".into()));
        assert_eq!(id("ipv4:10.0.0.1"), Identity::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(id("%any"), Identity::Any);
        assert_eq!(id("gw").id_type().map(IdType::code), Some(2));
    }

    #[test]
    fn rejects_with_reasons() {
        for (s, reason) in [
            ("", "empty identity: write an address, a name or user@domain"),
            ("@#abc", "a key ID needs an even number of hex digits after '#'"),
            ("@#zz", "a key ID must be hex digits after '#'"),
            ("@", "nothing after the prefix"),
            ("ipv4:gw", "not an IPv4 address after 'ipv4:'"),
            ("C=CH, O=strongSwan, CN=moon", "looks like a distinguished name (ASN.1 DN); ipsecgw does PSK only: use an FQDN or address"),
        ] {
            assert_eq!(s.parse::<Identity>().unwrap_err().reason, reason, "{s:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["198.51.100.1", "2001:db8::1", "gw.example.org", "alice@example.org", "@#0a0b", "%any"] {
            assert_eq!(id(s).to_string(), s);
        }
        for i in [Identity::Fqdn("10.0.0.1".into()), Identity::Fqdn("a@b".into()), Identity::Rfc822("ops".into())] {
            assert_eq!(id(&i.to_string()), i);
        }
    }

    #[test]
    fn wire_round_trip() {
        for s in ["198.51.100.1", "2001:db8::1", "gw.example.org", "alice@example.org", "@#0a0b"] {
            let i = id(s);
            let t = i.id_type().unwrap().code();
            assert_eq!(Identity::from_wire(t, &i.data()).unwrap(), i);
        }
        assert_eq!(id("198.51.100.1").data(), vec![198, 51, 100, 1]);
        assert!(Identity::from_wire(1, &[1, 2, 3]).is_err());
        assert!(Identity::from_wire(2, &[0xff]).is_err());
        assert_eq!(
            Identity::from_wire(9, &[0x30, 0]).unwrap(),
            Identity::Other { id_type: IdType::DerAsn1Dn, data: vec![0x30, 0] }
        );
    }

    #[test]
    fn matching() {
        assert!(Identity::Any.matches(&id("x.example")));
        assert!(id("GW.example.org").matches(&id("gw.example.org")));
        assert!(!id("gw.example.org").matches(&id("198.51.100.1")));
        assert!(!id("@#01").matches(&id("@#02")));
    }
}
