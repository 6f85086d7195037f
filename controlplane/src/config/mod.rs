//! The gateway's configuration file (TOML) → a validated [`Config`].
//!
//! ```no_run
//! use std::path::Path;
//! use controlplane::config::Config;
//!
//! match Config::load(Path::new("/etc/ipsecgw/gateway.toml")) {
//!     Ok((config, warnings)) => {
//!         for w in &warnings {
//!             eprintln!("{w}"); // FILE:LINE:COL: warning: …
//!         }
//!         println!("{} connections", config.connections.len());
//!     }
//!     Err(errors) => {
//!         eprintln!("{errors}"); // one "FILE:LINE:COL: what is wrong: what to change" per line
//!         for w in &errors.warnings {
//!             eprintln!("{w}");
//!         }
//!     }
//! }
//! ```
//!
//! API:
//! - [`Config::load`]`(&Path) -> Result<(Config, Vec<Warning>), ConfigErrors>` reads and
//!   validates a file; [`Config::parse`]`(text, path)` does the same for text already read
//!   (`path` names the file in messages and anchors relative PSK file paths).
//! - [`ConfigErrors`] holds every error found (never empty) plus the warnings; its
//!   Display prints one error per line. [`ConfigError`] and [`Warning`] carry a
//!   [`Location`] (path, 1-based line and column) and a message that says what to change.
//! - Secrets (PSKs, static SA keys) are resolved at load time (files relative to the config
//!   file's folder, environment variables), held in [`Secret`] (zeroized on drop, redacted
//!   in Debug, no Display).
//!
//! # The file
//!
//! Sections `[dpdk]`, `[[port]]`, `[[route]]`, `[forward]`, `[[static_sa]]`, `[[connection]]`;
//! unknown keys are errors that list the valid keys, with a did-you-mean. Every key:
//!
//! ```toml
//! [dpdk]
//! eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "gw1",
//!             "--vdev=net_af_packet0,iface=gw-out", "--vdev=net_af_packet1,iface=gw-in"]
//! mbufs = 8191            # mempool size (optional)
//! busy_poll = false       # optional, CLI --busy-poll overrides
//! burst = 32              # optional
//! sa_owner = "first-receiver"  # several workers: who decrypts an inbound SA and encrypts for an outbound one ("spi": SPI mod workers)
//! encrypt = "owner"       # several workers: one encrypts per outbound SA, in order ("any-worker": all, out of order)
//!
//! [[port]]
//! name = "outside"        # names used everywhere else
//! dpdk_port = 0           # DPDK port id
//! addresses = ["198.51.100.1/24"]     # the gateway's own addresses on this port (ARP/ICMP answered)
//! # mac = "02:00:00:00:00:01"         # optional override
//!
//! [[port]]
//! name = "inside"
//! dpdk_port = 1
//! addresses = ["10.2.0.1/24"]
//!
//! [[route]]               # static routes (outer next hops and inner)
//! destination = "10.1.0.0/24"
//! via = "198.51.100.2"    # optional (directly connected if absent)
//! port = "outside"
//!
//! [forward]               # issue-4 skeleton: plain forwarding between port pairs (no IPsec)
//! pairs = [["outside", "inside"]]
//!
//! [[static_sa]]           # manual-keyed tunnel (issue 8), like ipsec-secgw SA/SP rules
//! name = "to-gw2"
//! local = "198.51.100.1"          # outer addresses
//! remote = "198.51.100.2"
//! encap = "udp"                   # "udp" (ESP in UDP 4500, RFC 3948) or "esp" (IP proto 50)
//! algorithm = "aes128gcm16"       # aes128gcm16 | aes256gcm16 | chacha20poly1305
//! spi_in = 0x1001                 # 256..=0xffffffff (0-255 reserved, RFC 4303 §2.1); unique across static SAs
//! spi_out = 0x2002
//! key_in = "hex of key||salt (20 or 36 bytes; 0x prefix and : separators allowed)"
//! key_out = "hex ..."
//! local_ts = ["10.2.0.0/24"]
//! remote_ts = ["10.1.0.0/24"]
//! esn = false
//! replay_window = 1024            # 0 = replay check off (benchmarks only)
//!
//! [[connection]]          # IKEv2 (issue 6)
//! name = "left"
//! local_addr = "198.51.100.1"
//! remote_addr = "198.51.100.2"    # or "%any" for responders
//! local_id = "gw.example.org"     # strongSwan syntax: IPv4/IPv6 -> ID_IPV*_ADDR, "user@x" or "@@user@x" -> RFC822,
//!                                 # "@#0a0b.." or "keyid:#0a0b.." (hex) / "keyid:text" -> KEY_ID, "@name" or name -> FQDN, "%any" (remote only)
//! remote_id = "left.example.org"
//! psk = { file = "/etc/ipsecgw/left.psk" }   # or { env = "LEFT_PSK" } or { inline = "..." } (warned); relative files are
//!                                 # from the config file's folder (mode 600, else warned); "0x..." values are hex, as in strongSwan
//! ike_proposals = ["aes256gcm16-prfsha384-x25519", "aes128gcm16-prfsha256-ecp256"]
//! esp_proposals = ["aes256gcm16-x25519-esn", "aes128gcm16"]      # strongSwan syntax; dh group = PFS
//! local_ts = ["10.2.0.0/24"]
//! remote_ts = ["10.1.0.0/24"]
//! role = "initiator"              # initiator | responder | passive
//! start_action = "start"          # none | start | trap
//! encap = "auto"                  # auto (NAT-T when detected or peer forces it) | udp (always)
//! ike_rekey = "4h"                # soft; hard = rekey * 1.1 unless ike_lifetime set
//! # ike_lifetime = "4h24m"
//! # replay_window = 1024
//! child_rekey = "1h"
//! child_lifetime = "1h10m"
//! jitter = "5%"
//! nat_keepalive = "20s"            # when WE are behind a NAT: 0xFF to the peer on UDP 4500 this often (RFC 3948 §2.3); "0s" = off
//! dpd = { interval = "30s", timeout = "90s", action = "restart" }   # clear | restart | hold
//! monitor = { address = "10.1.0.1", source = "10.2.0.1", interval = "2s", threshold = 3, action = "fail-over", backup = "left-backup" }  # issue 7
//! ```
//!
//! Defaults when a key is absent: `[dpdk]` eal_args [], mbufs 8191, busy_poll false, burst 32,
//! sa_owner "first-receiver", encrypt "owner";
//! `[[port]]` addresses [], mac = the port's; `[[static_sa]]` encap "esp", esn false, replay_window 1024;
//! `[[connection]]` role "initiator" ("responder" when remote_addr = "%any"), start_action "start" for
//! initiators else "none", local_id = local_addr, remote_id = %any (as strongSwan), local_ts =
//! local_addr/32, remote_ts = remote_addr/32 (required with %any), ike_proposals =
//! ["aes256gcm16-aes128gcm16-chacha20poly1305-prfsha384-prfsha256-prfsha512-x25519-ecp256-ecp384-modp2048"],
//! esp_proposals = ["aes256gcm16-aes128gcm16-chacha20poly1305"] (no PFS, noesn), encap "auto",
//! ike_rekey "4h", ike_lifetime = ike_rekey + 10%, child_rekey "1h", child_lifetime = child_rekey + 10%,
//! jitter "5%" (rekey happens up to jitter earlier, at random), replay_window 1024, nat_keepalive "20s"
//! (strongSwan's keep_alive; sent only while an IKE SA is up and NAT detection found us behind a NAT), no dpd (when given:
//! timeout = 3 × interval, action "clear"), no monitor (when given: interval "2s", threshold 3,
//! action "wait-recover").

mod connection;
mod diagnostic;
mod duration;
mod field;
mod network;
mod raw;
mod secret;
pub(crate) mod spelling;
mod static_sa;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use connection::{
    ConnectionConfig, Dpd, DpdAction, IkeEncap, Monitor, MonitorAction, Role, StartAction, DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
};
pub use diagnostic::{ConfigError, ConfigErrors, Location, Warning};
pub use duration::format_duration;
pub use network::{DpdkConfig, EncryptBy, ForwardConfig, SaOwner, PortConfig, Prefix, RouteConfig};
pub use secret::Secret;
pub use static_sa::{StaticEncap, StaticSaConfig, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW};

use diagnostic::Diagnostics;
use raw::RawConfig;

use crate::selector::{self, TrafficSelector};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub dpdk: DpdkConfig,
    pub ports: Vec<PortConfig>,
    pub routes: Vec<RouteConfig>,
    pub forward: Option<ForwardConfig>,
    pub static_sas: Vec<StaticSaConfig>,
    pub connections: Vec<ConnectionConfig>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigErrors> {
        match std::fs::read_to_string(path) {
            // The text may hold inline secrets: wipe it after parsing.
            Ok(text) => Self::parse(&zeroize::Zeroizing::new(text), path),
            Err(e) => Err(ConfigErrors {
                errors: vec![ConfigError {
                    location: Location { path: path.to_path_buf(), line: 0, column: 0 },
                    message: format!("cannot read the config file: {e}"),
                }],
                warnings: Vec::new(),
            }),
        }
    }

    /// Validates config text; `path` is used in messages and to find relative PSK files.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigErrors> {
        let mut d = Diagnostics::new(path, text);
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let at = text.get(span.clone()).unwrap_or("");
                d.error(span, syntax_message(e.message(), at));
                return Err(d.into_errors());
            }
        };
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dpdk = network::check_dpdk(&mut d, raw.dpdk.as_ref());
        let ports = network::check_ports(&mut d, &raw.port);
        if raw.dpdk.is_none() && !ports.is_empty() {
            d.warn(0..0, "no [dpdk] section: the EAL starts without arguments; add [dpdk] eal_args = [...] (see examples/)");
        }
        let routes = network::check_routes(&mut d, &raw.route, &ports);
        let forward = network::check_forward(&mut d, raw.forward.as_ref(), &ports);
        let static_sas = static_sa::check_static_sas(&mut d, &raw.static_sa, &ports, &routes);
        let connections = connection::check_connections(&mut d, &raw.connection, &ports, &routes, &base_dir);
        check_names(&mut d, &raw);
        check_backups(&mut d, &raw);
        check_overlaps(&mut d, &raw, &static_sas, &connections);
        check_ambiguous_peers(&mut d, &connections);
        if d.has_errors() {
            return Err(d.into_errors());
        }
        let config = Config {
            path: path.to_path_buf(),
            dpdk,
            ports,
            routes,
            forward,
            static_sas,
            connections: connections.into_iter().map(|(c, _)| c).collect(),
        };
        Ok((config, d.into_sorted().1))
    }

    pub fn port(&self, name: &str) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.name == name)
    }

    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }

    pub fn static_sa(&self, name: &str) -> Option<&StaticSaConfig> {
        self.static_sas.iter().find(|s| s.name == name)
    }
}

/// Rewrites serde/toml messages into ones that say what to change; `at` is the text
/// the error points at.
fn syntax_message(message: &str, at: &str) -> String {
    let message = message.trim();
    let header = at.trim();
    if message.contains("map, expected a sequence") || message.contains("sequence, expected a [") {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            return format!("[[{name}]] is a single table: write [{name}]");
        }
        if let Some(name) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return format!("[{name}] can appear several times, so it is written [[{name}]] (an array of tables)");
        }
    }
    if message == "duplicate key" {
        return format!("duplicate key '{header}': each key may appear once per table; remove one");
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = spelling::closest(key, valid.iter().copied()).map(|s| format!(": did you mean '{s}'?")).unwrap_or_default();
        let list = if valid.is_empty() { "none".to_owned() } else { valid.join(", ") };
        return format!("unknown key '{key}'{hint} (valid keys here: {list})");
    }
    // serde names Rust types; say what to write instead.
    let message = message
        .replace("expected u16", "expected an integer from 0 to 65535")
        .replace("expected u32", "expected an integer from 0 to 4294967295")
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
        .replace("expected a sequence", "expected a list: write [\"…\"]");
    match message.strip_prefix("invalid type: ") {
        Some(rest) => format!("wrong type: {rest}"),
        None => message,
    }
}

/// Tunnel names (static SAs and connections) are one namespace: `ipsecgw show`/`initiate` take them.
fn check_names(d: &mut Diagnostics<'_>, raw: &RawConfig) {
    let mut seen: HashMap<String, (&str, usize)> = HashMap::new();
    let tables = raw
        .static_sa
        .iter()
        .map(|t| ("[[static_sa]]", t.get_ref().name.as_ref()))
        .chain(raw.connection.iter().map(|t| ("[[connection]]", t.get_ref().name.as_ref())));
    for (section, name) in tables {
        let Some(name) = name else { continue };
        match seen.get(name.get_ref()) {
            Some((other, line)) => d.error(
                name.span(),
                format!("name \"{}\" is already used by the {other} at line {line}: tunnel names must be unique", name.get_ref()),
            ),
            None => {
                let line = d.location(name.span().start).line;
                seen.insert(name.get_ref().clone(), (section, line));
            }
        }
    }
}

/// `monitor.backup` names another connection (checked on the raw tables, so a
/// connection with other errors still gets this one reported).
fn check_backups(d: &mut Diagnostics<'_>, raw: &RawConfig) {
    let names: Vec<&str> =
        raw.connection.iter().filter_map(|c| c.get_ref().name.as_ref().map(|n| n.get_ref().as_str())).collect();
    for c in &raw.connection {
        let c = c.get_ref();
        let Some(backup) = c.monitor.as_ref().and_then(|m| m.get_ref().backup.as_ref()) else { continue };
        let own = c.name.as_ref().map(|n| n.get_ref().as_str());
        let b = backup.get_ref().as_str();
        if Some(b) == own {
            d.error(backup.span(), format!("monitor.backup = \"{b}\" is this connection itself: name another [[connection]]"));
        } else if !names.contains(&b) {
            let others: Vec<&str> = names.iter().copied().filter(|n| Some(*n) != own).collect();
            let hint = match spelling::closest(b, others.iter().copied()) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None if others.is_empty() => "add the backup [[connection]]".to_owned(),
                None => format!("connections: {}", field::quoted(&others)),
            };
            d.error(backup.span(), format!("monitor.backup = \"{b}\": no [[connection]] has this name: {hint}"));
        }
    }
}

/// A responder picks the connection by the peer's address and then its ID (RFC 7296
/// §2.15: the ID arrives in IKE_AUTH); two connections with the same addresses whose
/// remote IDs both accept the same peer cannot be told apart, and only the first is
/// used. (A `%any` connection next to one for a specific address is fine: the specific
/// one is the better match.)
fn check_ambiguous_peers(d: &mut Diagnostics<'_>, connections: &[(ConnectionConfig, connection::ConnectionSpans)]) {
    for (i, (later, spans)) in connections.iter().enumerate() {
        let shadowed_by = connections[..i].iter().find(|(earlier, _)| {
            earlier.local_addr == later.local_addr
                && earlier.remote_addr == later.remote_addr
                && earlier.remote_id.matches(&later.remote_id)
        });
        if let Some((earlier, earlier_spans)) = shadowed_by {
            let line = d.location(earlier_spans.name.start).line;
            d.warn(
                spans.name.clone(),
                format!(
                    "connection \"{}\" (line {line}) already answers this peer ({} with ID {}): as responder this one is never chosen; give it a different remote_addr or remote_id",
                    earlier.name,
                    later.remote_addr.map_or("%any".to_owned(), |a| a.to_string()),
                    later.remote_id
                ),
            );
        }
    }
}

/// A tunnel's policy, for the overlap check.
struct Policy<'a> {
    kind: &'static str,
    name: &'a str,
    span: Range<usize>,
    local_ts: &'a [TrafficSelector],
    remote_ts: &'a [TrafficSelector],
    backup: Option<&'a str>,
}

/// Two tunnels whose selectors overlap compete for the same packets: the first in the
/// file wins, which is rarely what was meant (except a monitor backup, which is expected
/// to cover the primary's traffic).
fn check_overlaps(
    d: &mut Diagnostics<'_>,
    raw: &RawConfig,
    static_sas: &[StaticSaConfig],
    connections: &[(ConnectionConfig, connection::ConnectionSpans)],
) {
    let static_span = |name: &str| {
        raw.static_sa
            .iter()
            .find_map(|t| t.get_ref().name.as_ref().filter(|n| n.get_ref() == name).map(|n| n.span()))
            .unwrap_or(0..0)
    };
    let policies: Vec<Policy<'_>> = static_sas
        .iter()
        .map(|s| Policy {
            kind: "static_sa",
            name: &s.name,
            span: static_span(&s.name),
            local_ts: &s.local_ts,
            remote_ts: &s.remote_ts,
            backup: None,
        })
        .chain(connections.iter().map(|(c, spans)| Policy {
            kind: "connection",
            name: &c.name,
            span: spans.name.clone(),
            local_ts: &c.local_ts,
            remote_ts: &c.remote_ts,
            backup: c.monitor.as_ref().and_then(|m| m.backup.as_deref()),
        }))
        .collect();
    for (i, later) in policies.iter().enumerate() {
        for earlier in &policies[..i] {
            if earlier.backup == Some(later.name) || later.backup == Some(earlier.name) {
                continue;
            }
            let local = selector::overlaps(earlier.local_ts, later.local_ts).next();
            let remote = selector::overlaps(earlier.remote_ts, later.remote_ts).next();
            if let (Some((l1, l2)), Some((r1, r2))) = (local, remote) {
                let line = d.location(earlier.span.start).line;
                d.warn(
                    later.span.clone(),
                    format!(
                        "traffic selectors overlap with {} \"{}\" (line {line}): {l2} → {r2} vs {l1} → {r1}; packets in both go to the one first in the file",
                        earlier.kind, earlier.name
                    ),
                );
            }
        }
    }
}
