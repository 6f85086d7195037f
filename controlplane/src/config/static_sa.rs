//! `[[static_sa]]`: manually keyed tunnels (issue 8), like ipsec-secgw's SA/SP rules.

use std::collections::HashMap;
use std::net::IpAddr;

use super::diagnostic::Diagnostics;
use super::network::{self, PortConfig, RouteConfig};
use super::raw::{RawStaticSa, S};
use super::secret::{decode_hex, Secret};
use crate::proposal::{Encr, EncrId, Proposal, Protocol};
use crate::selector::TrafficSelector;

/// How ESP travels between the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaticEncap {
    /// ESP in UDP port 4500 (RFC 3948).
    Udp,
    /// Raw ESP, IP protocol 50 (RFC 4303).
    Esp,
}

/// A manually keyed tunnel-mode SA pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSaConfig {
    pub name: String,
    /// Outer addresses.
    pub local: IpAddr,
    pub remote: IpAddr,
    pub encap: StaticEncap,
    /// AES-GCM-16-128/256 or ChaCha20-Poly1305.
    pub algorithm: Encr,
    /// SPI we receive on (the peer's `spi_out`).
    pub spi_in: u32,
    /// SPI we send with (the peer's `spi_in`).
    pub spi_out: u32,
    /// key || salt (RFC 4106 §8.1, RFC 7634 §2): 20 or 36 bytes.
    pub key_in: Secret,
    pub key_out: Secret,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets; 0 turns the replay check off (benchmarks only).
    pub replay_window: u32,
}

/// Replay windows above this are refused (RFC 6479 bitmaps grow with the window).
pub const MAX_REPLAY_WINDOW: i64 = 65_536;

/// Default anti-replay window (RFC 4303 §3.4.3 asks for at least 32; 1024 tolerates
/// the reordering of multi-queue NICs).
pub const DEFAULT_REPLAY_WINDOW: u32 = 1024;

pub(crate) fn check_static_sas(
    d: &mut Diagnostics<'_>,
    raw: &[S<RawStaticSa>],
    ports: &[PortConfig],
    routes: &[RouteConfig],
) -> Vec<StaticSaConfig> {
    let mut out = Vec::new();
    let mut spis_in: HashMap<u32, String> = HashMap::new();
    for table in raw {
        let span = table.span();
        let sa = table.get_ref();
        let section = "[[static_sa]]";
        let name = d.need(&sa.name, &span, section, "name", "\"to-gw2\"").and_then(|n| d.name(n, "name"));
        let local = d.need(&sa.local, &span, section, "local", "\"198.51.100.1\"").and_then(|v| ip_spanned(d, v, "local"));
        let remote = d.need(&sa.remote, &span, section, "remote", "\"198.51.100.2\"").and_then(|v| ip_spanned(d, v, "remote"));
        outer_addresses(d, local.as_ref(), remote.as_ref(), ports, routes);
        let (local, remote) = (local.map(|(a, _)| a), remote.map(|(a, _)| a));
        let encap = match &sa.encap {
            Some(v) => d.choice(v, "encap", &[("udp", StaticEncap::Udp), ("esp", StaticEncap::Esp)]),
            None => Some(StaticEncap::Esp),
        };
        let algorithm = d
            .need(&sa.algorithm, &span, section, "algorithm", "\"aes128gcm16\"")
            .and_then(|v| d.parsed(v, "algorithm", parse_algorithm));
        let spi_in = d.need(&sa.spi_in, &span, section, "spi_in", "0x1001").and_then(|v| spi(d, v, "spi_in"));
        let spi_out = d.need(&sa.spi_out, &span, section, "spi_out", "0x2002").and_then(|v| spi(d, v, "spi_out"));
        if let (Some(spi), Some(v)) = (spi_in, &sa.spi_in) {
            match spis_in.get(&spi) {
                Some(other) => d.error(
                    v.span(),
                    format!("spi_in = {spi:#x} is already used by static_sa \"{other}\": inbound SAs are found by SPI alone, so give each its own"),
                ),
                None => {
                    spis_in.insert(spi, name.clone().unwrap_or_default());
                }
            }
        }
        if let (Some(spi), Some(remote), Some(v)) = (spi_out, remote, &sa.spi_out) {
            if let Some(other) = out.iter().find(|o: &&StaticSaConfig| o.spi_out == spi && o.remote == remote) {
                d.error(
                    v.span(),
                    format!("spi_out = {spi:#x} to {remote} is also used by static_sa \"{}\": the peer finds its inbound SA by SPI, so give each SA its own", other.name),
                );
            }
        }
        let key_in = d.need(&sa.key_in, &span, section, "key_in", "\"<40 or 72 hex digits>\"").and_then(|v| key(d, v, "key_in", algorithm));
        let key_out =
            d.need(&sa.key_out, &span, section, "key_out", "\"<40 or 72 hex digits>\"").and_then(|v| key(d, v, "key_out", algorithm));
        if let (Some(a), Some(b), Some(v)) = (&key_in, &key_out, &sa.key_out) {
            if a == b {
                d.error(v.span(), "key_out equals key_in: with AES-GCM or ChaCha20-Poly1305 both directions would then reuse nonces (the IV is the sequence number); use a different key for each direction");
            }
        }
        let local_ts = selectors(d, sa.local_ts.as_ref(), &span, section, "local_ts");
        let remote_ts = selectors(d, sa.remote_ts.as_ref(), &span, section, "remote_ts");
        if let (Some(l), Some(r), Some(list)) = (&local_ts, &remote_ts, &sa.remote_ts) {
            check_families(d, l, r, list.span());
        }
        let esn = sa.esn.as_ref().is_some_and(|v| *v.get_ref());
        let replay_window = replay_window(d, sa.replay_window.as_ref());
        if let (Some(name), Some(local), Some(remote), Some(encap), Some(algorithm), Some(spi_in), Some(spi_out), Some(key_in), Some(key_out), Some(local_ts), Some(remote_ts), Some(replay_window)) =
            (name, local, remote, encap, algorithm, spi_in, spi_out, key_in, key_out, local_ts, remote_ts, replay_window)
        {
            out.push(StaticSaConfig {
                name,
                local,
                remote,
                encap,
                algorithm,
                spi_in,
                spi_out,
                key_in,
                key_out,
                local_ts,
                remote_ts,
                esn,
                replay_window,
            });
        }
    }
    out
}

pub(crate) fn ip(d: &mut Diagnostics<'_>, value: &S<String>, key: &str) -> Option<IpAddr> {
    d.parsed(value, key, |s| s.trim().parse::<IpAddr>().map_err(|_| format!("\"{s}\" is not an IP address")))
}

/// Outer address checks shared by static SAs and connections.
pub(crate) fn outer_addresses(
    d: &mut Diagnostics<'_>,
    local: Option<&(IpAddr, std::ops::Range<usize>)>,
    remote: Option<&(IpAddr, std::ops::Range<usize>)>,
    ports: &[PortConfig],
    routes: &[RouteConfig],
) {
    if let (Some((l, _)), Some((r, r_span))) = (local, remote) {
        if l.is_ipv4() != r.is_ipv4() {
            d.error(r_span.clone(), format!("{r} and local address {l} are of different IP versions: outer addresses must be both IPv4 or both IPv6"));
        }
    }
    if ports.is_empty() {
        return;
    }
    if let Some((l, l_span)) = local {
        if !network::is_own(*l, ports) {
            d.warn(l_span.clone(), format!("{l} is not an address of any [[port]]: add it to a port's addresses, or the gateway will not receive this tunnel's ESP/IKE"));
        }
    }
    if let Some((r, r_span)) = remote {
        if !network::reachable(*r, ports, routes) {
            d.warn(r_span.clone(), format!("no route to {r}: add a [[route]] or a port address in its subnet"));
        }
    }
}

/// An IP address together with its span (for later cross-checks).
pub(crate) fn ip_spanned(d: &mut Diagnostics<'_>, value: &S<String>, key: &str) -> Option<(IpAddr, std::ops::Range<usize>)> {
    ip(d, value, key).map(|a| (a, value.span()))
}

fn parse_algorithm(text: &str) -> Result<Encr, String> {
    if text.contains('-') {
        return Err(format!("\"{text}\" is a proposal; a static SA takes one cipher (aes128gcm16, aes256gcm16 or chacha20poly1305) and esn = true/false"));
    }
    let proposal = Proposal::parse_supported(Protocol::Esp, text).map_err(|e| e.kind.to_string() + &e.kind.fix())?;
    match proposal.encr.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("use aes128gcm16, aes256gcm16 or chacha20poly1305, not \"{text}\"")),
    }
}

/// SPIs 0..=255 are reserved (RFC 4303 §2.1: 0 never goes on the wire, 1-255 IANA).
pub(crate) fn spi(d: &mut Diagnostics<'_>, value: &S<i64>, key: &str) -> Option<u32> {
    let v = *value.get_ref();
    if (0..=255).contains(&v) {
        d.error(value.span(), format!("{key} = {v}: SPIs 0-255 are reserved (RFC 4303 §2.1): use a value from 256 (0x100) to 4294967295 (0xffffffff)"));
        return None;
    }
    d.int_in(value, key, 256..=i64::from(u32::MAX), " (a 32-bit SPI)")
}

fn key(d: &mut Diagnostics<'_>, value: &S<String>, key: &str, algorithm: Option<Encr>) -> Option<Secret> {
    // The text is not echoed in any message: it is key material.
    let secret = match decode_hex(value.get_ref()) {
        Ok(s) => s,
        Err(why) => {
            d.error(value.span(), format!("{key}: {why}: write the key as hex (\"0x…\" optional, ':' separators allowed)"));
            return None;
        }
    };
    let algorithm = algorithm?;
    let needed = algorithm.keymat_len()?;
    if secret.len() != needed {
        let key_bytes = needed - 4;
        d.error(
            value.span(),
            format!(
                "{key} is {} bytes; {} needs {needed} bytes ({} hex digits: a {key_bytes}-byte key followed by a 4-byte salt, RFC {})",
                secret.len(),
                algorithm,
                needed * 2,
                if algorithm.id == EncrId::ChaCha20Poly1305 { "7634 §2" } else { "4106 §8.1" },
            ),
        );
        return None;
    }
    Some(secret)
}

/// A required, non-empty list of traffic selectors.
pub(crate) fn selectors(
    d: &mut Diagnostics<'_>,
    value: Option<&S<Vec<S<String>>>>,
    table: &std::ops::Range<usize>,
    section: &str,
    key: &str,
) -> Option<Vec<TrafficSelector>> {
    let Some(list) = value else {
        d.error(table.clone(), format!("{section} has no '{key}': add {key} = [\"10.1.0.0/24\"]"));
        return None;
    };
    if list.get_ref().is_empty() {
        d.error(list.span(), format!("{key} is empty: list at least one prefix, e.g. [\"10.1.0.0/24\"]"));
        return None;
    }
    let parsed: Vec<Option<TrafficSelector>> =
        list.get_ref().iter().map(|s| d.parsed(s, key, |t| t.parse::<TrafficSelector>())).collect();
    parsed.into_iter().collect()
}

pub(crate) fn replay_window(d: &mut Diagnostics<'_>, value: Option<&S<i64>>) -> Option<u32> {
    let Some(v) = value else {
        return Some(DEFAULT_REPLAY_WINDOW);
    };
    let window = d.int_in(v, "replay_window", 0..=MAX_REPLAY_WINDOW, " (0 turns the replay check off)")?;
    if window == 0 {
        d.warn(v.span(), "replay_window = 0 turns off replay protection: use it for benchmarks with looped pcaps only");
    } else if window < 32 {
        d.warn(v.span(), format!("replay_window = {window} is below the 32 packets RFC 4303 §3.4.3 asks for"));
    }
    Some(window)
}

/// Whether two selector lists share a family (a policy pairs local with remote ones).
pub(crate) fn check_families(d: &mut Diagnostics<'_>, local: &[TrafficSelector], remote: &[TrafficSelector], span: std::ops::Range<usize>) {
    let shares = local.iter().any(|l| remote.iter().any(|r| l.addresses.is_ipv4() == r.addresses.is_ipv4()));
    if !shares {
        d.error(span, "local_ts and remote_ts have no IP version in common: a tunnel policy pairs an IPv4 (or IPv6) local_ts with a remote_ts of the same version");
    }
}
