//! `[dpdk]`, `[[port]]`, `[[route]]` and `[forward]`: the gateway's own network setup.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::diagnostic::Diagnostics;
use super::raw::{RawDpdk, RawForward, RawPort, RawRoute, S};
use super::spelling;
use crate::selector::AddrRange;

/// `[dpdk]`: EAL arguments and datapath sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    pub eal_args: Vec<String>,
    /// Mempool size in mbufs (default 8191: DPDK mempools are cheapest at 2^n - 1).
    pub mbufs: u32,
    /// Poll without backing off when idle (the CLI's --busy-poll overrides).
    pub busy_poll: bool,
    /// RX/TX burst size (default 32).
    pub burst: u16,
    /// Which worker decrypts an inbound SA (and encrypts for an outbound one)
    /// when there are several.
    pub sa_owner: SaOwner,
    /// Which workers encrypt for an outbound SA when there are several.
    pub encrypt: EncryptBy,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        Self { eal_args: Vec::new(), mbufs: 8191, busy_poll: false, burst: 32, sa_owner: SaOwner::FirstReceiver, encrypt: EncryptBy::Owner }
    }
}

/// `[dpdk].sa_owner`: how several workers pick the one that decrypts an inbound SA
/// (its replay window has one writer); the others hand its packets over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaOwner {
    /// `"first-receiver"` (default): the worker that receives the SA's first
    /// packet that authenticates (forged ESP claims nothing). With a NIC that
    /// spreads flows by RSS, each SA stays where RSS puts it.
    FirstReceiver,
    /// `"spi"`: SPI modulo the number of workers; spreads decryption even when
    /// one queue receives all ESP, at a handoff per packet received elsewhere.
    Spi,
}

/// `[dpdk].encrypt`: which of several workers encrypt for an outbound SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptBy {
    /// `"owner"` (default): one worker per SA, picked by `sa_owner` (the first
    /// worker that sends on it, or its SPI modulo the workers); the others hand
    /// it the SA's plaintext. The SA's ESP leaves in sequence-number order.
    Owner,
    /// `"any-worker"`: every worker encrypts what it receives; one SA spreads
    /// over the workers, and its ESP leaves up to a burst per worker out of
    /// order, which the peer's anti-replay window must cover (strongSwan's
    /// default of 32 packets does not).
    AnyWorker,
}

/// An address with a prefix length: a port's own address (`198.51.100.1/24`) or a route
/// destination (`10.1.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The addresses the prefix covers.
    pub fn range(&self) -> AddrRange {
        AddrRange::from_prefix(self.addr, self.len).unwrap_or(match self.addr {
            IpAddr::V4(a) => AddrRange::V4(a, a),
            IpAddr::V6(a) => AddrRange::V6(a, a),
        })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range().contains(addr)
    }

    /// Whether bits beyond the prefix length are set (fine for a port address, odd for a route).
    pub fn has_host_bits(&self) -> bool {
        self.range().start() != self.addr
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((addr, len)) = text.trim().split_once('/') else {
            return Err("write address/prefix-length, e.g. \"198.51.100.1/24\"");
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| "not an IP address before '/'")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len.trim().parse().ok().filter(|l| *l <= max).ok_or(if max == 32 {
            "prefix length must be 0-32"
        } else {
            "prefix length must be 0-128"
        })?;
        Ok(Self { addr, len })
    }
}

/// `[[port]]`: a DPDK port and the gateway's addresses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub dpdk_port: u16,
    /// The gateway's own addresses (ARP/ND and ICMP echo answered for them).
    pub addresses: Vec<Prefix>,
    /// MAC override (the port's own MAC otherwise).
    pub mac: Option<[u8; 6]>,
}

/// `[[route]]`: a static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub destination: Prefix,
    /// Next hop; `None` means directly connected.
    pub via: Option<IpAddr>,
    /// Name of the `[[port]]` to send on (checked to exist).
    pub port: String,
}

/// `[forward]`: plain forwarding between port pairs, no IPsec (issue 4 skeleton).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardConfig {
    pub pairs: Vec<(String, String)>,
}

pub(crate) fn check_dpdk(d: &mut Diagnostics<'_>, raw: Option<&S<RawDpdk>>) -> DpdkConfig {
    let mut out = DpdkConfig::default();
    let Some(raw) = raw else {
        return out;
    };
    let raw = raw.get_ref();
    if let Some(args) = &raw.eal_args {
        out.eal_args = args.get_ref().clone();
        let has = |flag: &str| out.eal_args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        if has("--no-huge") && !has("--file-prefix") && !has("--in-memory") {
            d.warn(args.span(), "eal_args has --no-huge but no --file-prefix: two DPDK processes on this host would share runtime files; add \"--file-prefix\", \"NAME\"");
        }
        if out.eal_args.iter().any(|a| a == "--in-memory") && out.eal_args.iter().any(|a| a == "--no-huge") {
            d.error(args.span(), "eal_args: --in-memory cannot be combined with --no-huge in DPDK 22.11: drop --in-memory and give a unique --file-prefix instead");
        }
    }
    if let Some(mbufs) = &raw.mbufs {
        if *mbufs.get_ref() < 1023 {
            d.error(mbufs.span(), format!("mbufs = {} is too small: use at least 1023 (default 8191)", mbufs.get_ref()));
        } else {
            out.mbufs = *mbufs.get_ref();
            if !(out.mbufs + 1).is_power_of_two() {
                let better = (out.mbufs + 1).next_power_of_two() / 2 - 1;
                d.warn(mbufs.span(), format!("mbufs = {}: DPDK mempools use memory best at 2^n - 1 mbufs (e.g. {better} or {})", out.mbufs, better * 2 + 1));
            }
        }
    }
    if let Some(busy) = &raw.busy_poll {
        out.busy_poll = *busy.get_ref();
    }
    if let Some(burst) = &raw.burst {
        let b = *burst.get_ref();
        if (1..=512).contains(&b) {
            out.burst = b;
        } else {
            d.error(burst.span(), format!("burst = {b} is out of range: use 1..=512 (default 32)"));
        }
    }
    if let Some(v) = &raw.sa_owner {
        if let Some(rule) = d.choice(v, "sa_owner", &[("first-receiver", SaOwner::FirstReceiver), ("spi", SaOwner::Spi)]) {
            out.sa_owner = rule;
        }
    }
    if let Some(v) = &raw.encrypt {
        if let Some(by) = d.choice(v, "encrypt", &[("owner", EncryptBy::Owner), ("any-worker", EncryptBy::AnyWorker)]) {
            out.encrypt = by;
        }
    }
    out
}

fn parse_mac(text: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err("write six hex bytes, e.g. \"02:00:00:00:00:01\"");
    }
    for (byte, part) in mac.iter_mut().zip(&parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| "write six hex bytes, e.g. \"02:00:00:00:00:01\"")?;
    }
    if mac[0] & 1 != 0 {
        return Err("this is a multicast MAC (lowest bit of the first byte set): use a unicast one, e.g. 02:…");
    }
    Ok(mac)
}

pub(crate) fn check_ports(d: &mut Diagnostics<'_>, raw: &[S<RawPort>]) -> Vec<PortConfig> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<u16, usize> = HashMap::new();
    let mut own: HashMap<IpAddr, usize> = HashMap::new();
    for table in raw {
        let span = table.span();
        let p = table.get_ref();
        let name = d.need(&p.name, &span, "[[port]]", "name", "\"outside\"").and_then(|n| d.name(n, "name"));
        if let (Some(name), Some(raw_name)) = (&name, &p.name) {
            if let Some(line) = names.get(name) {
                d.error(raw_name.span(), format!("port name \"{name}\" is already used by the [[port]] at line {line}: give each port its own name"));
            } else {
                names.insert(name.clone(), d.location(span.start).line);
            }
        }
        let dpdk_port = d.need(&p.dpdk_port, &span, "[[port]]", "dpdk_port", "0").map(|v| (*v.get_ref(), v.span()));
        if let Some((id, id_span)) = &dpdk_port {
            if let Some(line) = ids.get(id) {
                d.error(id_span.clone(), format!("dpdk_port = {id} is already used by the [[port]] at line {line}: each DPDK port can be configured once"));
            } else {
                ids.insert(*id, d.location(span.start).line);
            }
        }
        let mut addresses = Vec::new();
        for a in p.addresses.iter().flat_map(|v| v.get_ref()) {
            let Some(prefix) = d.parsed(a, "addresses", Prefix::from_str) else {
                continue;
            };
            if let Some(line) = own.get(&prefix.addr) {
                d.error(a.span(), format!("address {} is already configured at line {line}: an address belongs to one port", prefix.addr));
            } else {
                own.insert(prefix.addr, d.location(a.span().start).line);
            }
            addresses.push(prefix);
        }
        for a in p.addresses.iter().flat_map(|v| v.get_ref()) {
            let Ok(prefix) = a.get_ref().parse::<Prefix>() else { continue };
            if out.iter().flat_map(|o: &PortConfig| &o.addresses).any(|o| o.addr == prefix.addr) {
                continue; // already an error: the same address on two ports
            }
            let clash = out.iter().find(|other: &&PortConfig| {
                other.addresses.iter().any(|o| o.range().intersect(&prefix.range()).is_some())
            });
            if let Some(other) = clash {
                d.warn(a.span(), format!("{prefix} overlaps a subnet of port \"{}\": ARP/ND and routes for it become ambiguous", other.name));
            }
        }
        let mac = p.mac.as_ref().and_then(|m| d.parsed(m, "mac", parse_mac));
        if let (Some(name), Some((dpdk_port, _))) = (name, dpdk_port) {
            out.push(PortConfig { name, dpdk_port, addresses, mac });
        }
    }
    out
}

/// Reports an unknown port name with the known ones.
pub(crate) fn check_port_ref(d: &mut Diagnostics<'_>, value: &S<String>, key: &str, ports: &[PortConfig]) -> Option<String> {
    let name = value.get_ref();
    if ports.iter().any(|p| &p.name == name) {
        return Some(name.clone());
    }
    let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let message = match spelling::closest(name, known.iter().copied()) {
        Some(s) => format!("{key} = \"{name}\": no [[port]] has this name: did you mean \"{s}\"?"),
        None if known.is_empty() => format!("{key} = \"{name}\": no [[port]] is configured: add a [[port]] with name = \"{name}\""),
        None => format!("{key} = \"{name}\": no [[port]] has this name (ports: {})", super::field::quoted(&known)),
    };
    d.error(value.span(), message);
    None
}

pub(crate) fn check_routes(d: &mut Diagnostics<'_>, raw: &[S<RawRoute>], ports: &[PortConfig]) -> Vec<RouteConfig> {
    let mut out = Vec::new();
    for table in raw {
        let span = table.span();
        let r = table.get_ref();
        let destination = d
            .need(&r.destination, &span, "[[route]]", "destination", "\"10.1.0.0/24\"")
            .and_then(|v| d.parsed(v, "destination", Prefix::from_str).map(|p| (p, v.span())));
        if let Some((dest, dest_span)) = &destination {
            if dest.has_host_bits() {
                d.warn(dest_span.clone(), format!("destination {dest} has host bits set; it means {}/{}", dest.range().start(), dest.len));
            }
        }
        let port = d.need(&r.port, &span, "[[route]]", "port", "\"outside\"").and_then(|v| check_port_ref(d, v, "port", ports));
        let via = r.via.as_ref().and_then(|v| d.parsed(v, "via", |s| s.parse::<IpAddr>().map_err(|_| "not an IP address")).map(|a| (a, v.span())));
        if let (Some((dest, _)), Some((via, via_span))) = (&destination, &via) {
            if dest.addr.is_ipv4() != via.is_ipv4() {
                d.error(via_span.clone(), format!("via {via} and destination {dest} are of different IP versions: use a next hop of the destination's family"));
            }
        }
        if let (Some((via, via_span)), Some(port)) = (&via, &port) {
            let on_link = ports.iter().filter(|p| &p.name == port).flat_map(|p| &p.addresses).any(|a| a.contains(*via));
            if !on_link {
                d.warn(via_span.clone(), format!("next hop {via} is not in a subnet of port \"{port}\"; ARP/ND for it may go unanswered"));
            }
        }
        if let (Some((destination, _)), Some(port)) = (destination, port) {
            out.push(RouteConfig { destination, via: via.map(|(a, _)| a), port });
        }
    }
    out
}

pub(crate) fn check_forward(d: &mut Diagnostics<'_>, raw: Option<&S<RawForward>>, ports: &[PortConfig]) -> Option<ForwardConfig> {
    let raw = raw?;
    let mut out = ForwardConfig::default();
    let Some(pairs) = d.need(&raw.get_ref().pairs, &raw.span(), "[forward]", "pairs", "[[\"outside\", \"inside\"]]") else {
        return Some(out);
    };
    for pair in pairs.get_ref() {
        let [a, b] = pair.get_ref().as_slice() else {
            d.error(pair.span(), "each forward pair names exactly two ports: [\"outside\", \"inside\"]");
            continue;
        };
        let (a_name, b_name) = (check_port_ref(d, a, "pairs", ports), check_port_ref(d, b, "pairs", ports));
        if let (Some(a_name), Some(b_name)) = (a_name, b_name) {
            if a_name == b_name {
                d.error(pair.span(), format!("forward pair [\"{a_name}\", \"{b_name}\"] names one port twice: name two different ports"));
            } else if out.pairs.iter().any(|(x, y)| [x, y].contains(&&a_name) || [x, y].contains(&&b_name)) {
                d.error(pair.span(), "a port may be in one forward pair only: each port forwards to exactly one other");
            } else {
                out.pairs.push((a_name, b_name));
            }
        }
    }
    Some(out)
}

/// Whether `addr` is reachable: in a port's subnet or covered by a route.
pub(crate) fn reachable(addr: IpAddr, ports: &[PortConfig], routes: &[RouteConfig]) -> bool {
    ports.iter().flat_map(|p| &p.addresses).any(|a| a.contains(addr)) || routes.iter().any(|r| r.destination.contains(addr))
}

/// Whether `addr` is one of the gateway's own addresses.
pub(crate) fn is_own(addr: IpAddr, ports: &[PortConfig]) -> bool {
    ports.iter().flat_map(|p| &p.addresses).any(|a| a.addr == addr)
}
