//! `[[connection]]`: IKEv2 tunnels (issue 6), with DPD and tunnel monitoring (issue 7).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::diagnostic::Diagnostics;
use super::duration::{format_duration, parse_duration};
use super::network::{self, PortConfig, RouteConfig};
use super::raw::{RawConnection, RawDpd, RawMonitor, RawPsk, S};
use super::secret::{decode_hex, Secret};
use super::static_sa::{check_families, ip_spanned, replay_window, selectors};
use crate::identity::Identity;
use crate::ikev2;
use crate::proposal::{DhGroup, Proposal, Protocol};
use crate::selector::TrafficSelector;

/// Who starts the IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Initiates (per `start_action`) and responds.
    Initiator,
    /// Waits for the peer; initiates only on `start_action = "trap"` or a DPD restart.
    Responder,
    /// Responds, never initiates.
    Passive,
}

/// What to do when the config is loaded (strongSwan's start_action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartAction {
    None,
    /// Initiate at once.
    Start,
    /// Initiate on the first packet matching the policy.
    Trap,
}

/// ESP/IKE encapsulation for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeEncap {
    /// UDP 4500 when NAT is detected or the peer uses it (RFC 7296 §2.23).
    Auto,
    /// Always UDP-encapsulate ESP (RFC 3948), as if NAT were detected.
    Udp,
}

/// Dead peer detection (RFC 7296 §2.4 liveness checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Idle time after which a liveness check is sent.
    pub interval: Duration,
    /// No answer for this long means the peer is dead.
    pub timeout: Duration,
    pub action: DpdAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpdAction {
    /// Delete the SAs.
    Clear,
    /// Delete and re-initiate.
    Restart,
    /// Delete and re-initiate on the next matching packet (trap).
    Hold,
}

/// Tunnel monitoring: ICMP echo through the tunnel (issue 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// Target inside `remote_ts`.
    pub address: IpAddr,
    /// Source inside `local_ts`.
    pub source: IpAddr,
    pub interval: Duration,
    /// Consecutive lost probes that mean "down".
    pub threshold: u32,
    pub action: MonitorAction,
    /// Connection that takes over on fail-over (checked to exist).
    pub backup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorAction {
    /// Re-negotiate this tunnel.
    WaitRecover,
    /// Move this tunnel's policies to `backup`, and back when the primary recovers.
    FailOver,
}

/// A validated IKEv2 connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub name: String,
    pub local_addr: IpAddr,
    /// `None` for `"%any"` (responders accepting any peer).
    pub remote_addr: Option<IpAddr>,
    /// Defaults to `local_addr`.
    pub local_id: Identity,
    /// Defaults to `%any` (any ID the peer authenticates with the PSK), as in strongSwan.
    pub remote_id: Identity,
    /// Pre-shared key (RFC 7296 §2.15); never printed.
    pub psk: Secret,
    pub ike_proposals: Vec<Proposal>,
    pub esp_proposals: Vec<Proposal>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub role: Role,
    pub start_action: StartAction,
    pub encap: IkeEncap,
    /// Soft IKE SA lifetime: rekey after this (minus jitter).
    pub ike_rekey: Duration,
    /// Hard IKE SA lifetime: delete after this.
    pub ike_lifetime: Duration,
    pub child_rekey: Duration,
    pub child_lifetime: Duration,
    /// Rekey times are shortened by a random 0..jitter_percent % (strongSwan's rand_time),
    /// so both peers rarely rekey at once (RFC 7296 §2.8.1).
    pub jitter_percent: u8,
    pub replay_window: u32,
    /// NAT keepalive interval when we are behind a NAT (RFC 3948 §2.3);
    /// `None` = off (`nat_keepalive = "0s"`).
    pub nat_keepalive: Option<Duration>,
    pub dpd: Option<Dpd>,
    pub monitor: Option<Monitor>,
}

impl ConnectionConfig {
    /// The IKEv2 engine's view of this connection: IKE on UDP 500 on both sides (NAT-T
    /// moves it to 4500, RFC 7296 §2.23), retransmission and rekey grace at the engine's
    /// defaults. `dpd.action = "hold"` becomes Clear for the engine; the manager keeps the
    /// trap policy so the next packet re-initiates. `dpd.timeout` is enforced by the
    /// engine's retransmission policy, not passed here.
    pub fn to_engine(&self) -> ikev2::ConnectionConfig {
        const IKE_PORT: u16 = 500;
        let mut engine = ikev2::ConnectionConfig::new(
            &self.name,
            SocketAddr::new(self.local_addr, IKE_PORT),
            self.remote_addr.map(|a| SocketAddr::new(a, IKE_PORT)),
            self.local_id.clone(),
            self.remote_id.clone(),
            self.psk.expose(),
            self.ike_proposals.clone(),
            self.esp_proposals.clone(),
            self.local_ts.clone(),
            self.remote_ts.clone(),
        );
        let lifetime = |rekey: Duration, life: Duration| ikev2::Lifetime {
            rekey,
            jitter: rekey * u32::from(self.jitter_percent) / 100,
            life,
        };
        engine.ike_lifetime = lifetime(self.ike_rekey, self.ike_lifetime);
        engine.child_lifetime = lifetime(self.child_rekey, self.child_lifetime);
        engine.start_action = match self.start_action {
            StartAction::None => ikev2::StartAction::None,
            StartAction::Start => ikev2::StartAction::Start,
            StartAction::Trap => ikev2::StartAction::Trap,
        };
        engine.passive = self.role == Role::Passive;
        engine.dpd_interval = self.dpd.map(|d| d.interval);
        engine.dpd_action = match self.dpd.map(|d| d.action) {
            Some(DpdAction::Restart) => ikev2::DpdAction::Restart,
            Some(DpdAction::Hold) => ikev2::DpdAction::Hold,
            Some(DpdAction::Clear) | None => ikev2::DpdAction::Clear,
        };
        engine.force_encap = self.encap == IkeEncap::Udp;
        engine.nat_keepalive = self.nat_keepalive;
        // dpd.timeout: a liveness check (RFC 7296 §2.4) unanswered this long means the
        // peer is dead. The engine gives up when its retransmissions run out, so when the
        // default schedule (≈ 82 s) is longer, fit 1 + 3 sends at ×1.5 into the timeout
        // (t·(1 + 1.5 + 2.25 + 3.375) = t·65/8).
        if let Some(d) = self.dpd {
            let default = ikev2::RetransmitPolicy::default();
            let total: Duration = (0..=default.tries).map(|n| default.delay(n)).sum();
            if total > d.timeout {
                engine.retransmit = ikev2::RetransmitPolicy { timeout: d.timeout * 8 / 65, factor_percent: 150, tries: 3 };
            }
        }
        engine
    }
}

/// IKE proposals used when `ike_proposals` is absent (every supported algorithm, strongest first).
pub const DEFAULT_IKE_PROPOSALS: &[&str] =
    &["aes256gcm16-aes128gcm16-chacha20poly1305-prfsha384-prfsha256-prfsha512-x25519-ecp256-ecp384-modp2048"];
/// ESP proposals used when `esp_proposals` is absent (no PFS, no ESN, like strongSwan's default).
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256gcm16-aes128gcm16-chacha20poly1305"];

const DEFAULT_IKE_REKEY: Duration = Duration::from_secs(4 * 3600);
const DEFAULT_CHILD_REKEY: Duration = Duration::from_secs(3600);
const DEFAULT_JITTER_PERCENT: u8 = 5;

/// What the cross-checks in `super` need besides the validated connection.
#[derive(Debug)]
pub(crate) struct ConnectionSpans {
    pub name: Range<usize>,
}

pub(crate) fn check_connections(
    d: &mut Diagnostics<'_>,
    raw: &[S<RawConnection>],
    ports: &[PortConfig],
    routes: &[RouteConfig],
    base_dir: &Path,
) -> Vec<(ConnectionConfig, ConnectionSpans)> {
    raw.iter().filter_map(|table| check_connection(d, table, ports, routes, base_dir)).collect()
}

fn check_connection(
    d: &mut Diagnostics<'_>,
    table: &S<RawConnection>,
    ports: &[PortConfig],
    routes: &[RouteConfig],
    base_dir: &Path,
) -> Option<(ConnectionConfig, ConnectionSpans)> {
    let span = table.span();
    let c = table.get_ref();
    let section = "[[connection]]";
    let name = d.need(&c.name, &span, section, "name", "\"left\"").and_then(|n| d.name(n, "name"));
    let local = d.need(&c.local_addr, &span, section, "local_addr", "\"198.51.100.1\"").and_then(|v| ip_spanned(d, v, "local_addr"));
    // None = missing or invalid, Some(None) = %any.
    let remote: Option<Option<(IpAddr, Range<usize>)>> =
        d.need(&c.remote_addr, &span, section, "remote_addr", "\"198.51.100.2\" (or \"%any\" for a responder)").and_then(|v| {
            if v.get_ref() == "%any" {
                Some(None)
            } else {
                ip_spanned(d, v, "remote_addr").map(Some)
            }
        });
    super::static_sa::outer_addresses(d, local.as_ref(), remote.as_ref().and_then(Option::as_ref), ports, routes);
    let local_addr = local.as_ref().map(|(a, _)| *a);
    let remote_addr = remote.as_ref().map(|r| r.as_ref().map(|(a, _)| *a));

    let role_default = if matches!(remote_addr, Some(None)) { Role::Responder } else { Role::Initiator };
    let role = match &c.role {
        Some(v) => d.choice(v, "role", &[("initiator", Role::Initiator), ("responder", Role::Responder), ("passive", Role::Passive)]),
        None => Some(role_default),
    };
    let start_default = if role == Some(Role::Initiator) { StartAction::Start } else { StartAction::None };
    let start_action = match &c.start_action {
        Some(v) => d.choice(v, "start_action", &[("none", StartAction::None), ("start", StartAction::Start), ("trap", StartAction::Trap)]),
        None => Some(start_default),
    };
    check_role(d, c, role, start_action, remote_addr);

    let local_id = match &c.local_id {
        Some(v) => d.parsed(v, "local_id", |s| s.parse::<Identity>()).and_then(|id| {
            if id == Identity::Any {
                d.error(v.span(), "local_id = \"%any\": we must send an identity: use an address, a name or user@domain");
                None
            } else {
                Some(id)
            }
        }),
        None => local_addr.map(Identity::from_addr),
    };
    let remote_id = match &c.remote_id {
        Some(v) => d.parsed(v, "remote_id", |s| s.parse::<Identity>()),
        // Like strongSwan's remote.id: accept whatever ID the peer proves with the PSK.
        None => Some(Identity::Any),
    };
    let psk = d
        .need(&c.psk, &span, section, "psk", "{ file = \"/etc/ipsecgw/NAME.psk\" }")
        .and_then(|v| check_psk(d, v, base_dir));

    let ike_proposals = proposals(d, c.ike_proposals.as_ref(), Protocol::Ike, "ike_proposals", DEFAULT_IKE_PROPOSALS);
    let esp_proposals = proposals(d, c.esp_proposals.as_ref(), Protocol::Esp, "esp_proposals", DEFAULT_ESP_PROPOSALS);
    if let (Some(ike), Some(esp), Some(esp_raw)) = (&ike_proposals, &esp_proposals, &c.esp_proposals) {
        check_pfs_groups(d, ike, esp, esp_raw.span());
    }

    let local_ts = match &c.local_ts {
        Some(_) => selectors(d, c.local_ts.as_ref(), &span, section, "local_ts"),
        None => local_addr.map(|a| vec![TrafficSelector::host(a)]),
    };
    let remote_ts = match (&c.remote_ts, remote_addr) {
        (Some(_), _) => selectors(d, c.remote_ts.as_ref(), &span, section, "remote_ts"),
        (None, Some(Some(a))) => Some(vec![TrafficSelector::host(a)]),
        (None, Some(None)) => {
            d.error(span.clone(), "[[connection]] with remote_addr = \"%any\" has no 'remote_ts': add remote_ts = [\"10.1.0.0/24\"]");
            None
        }
        (None, None) => None,
    };
    if let (Some(l), Some(r)) = (&local_ts, &remote_ts) {
        check_families(d, l, r, c.remote_ts.as_ref().map_or(span.clone(), |v| v.span()));
    }

    let encap = match &c.encap {
        Some(v) => d.choice(v, "encap", &[("auto", IkeEncap::Auto), ("udp", IkeEncap::Udp)]),
        None => Some(IkeEncap::Auto),
    };
    let (ike_rekey, ike_lifetime) = lifetimes(d, c.ike_rekey.as_ref(), c.ike_lifetime.as_ref(), "ike", DEFAULT_IKE_REKEY);
    let (child_rekey, child_lifetime) =
        lifetimes(d, c.child_rekey.as_ref(), c.child_lifetime.as_ref(), "child", DEFAULT_CHILD_REKEY);
    let jitter_percent = match &c.jitter {
        Some(v) => d.parsed(v, "jitter", parse_percent),
        None => Some(DEFAULT_JITTER_PERCENT),
    };
    let replay_window = replay_window(d, c.replay_window.as_ref());
    let nat_keepalive = match &c.nat_keepalive {
        Some(v) => nat_keepalive(d, v),
        None => Some(Some(ikev2::DEFAULT_NAT_KEEPALIVE)),
    };
    let dpd = match &c.dpd {
        Some(v) => check_dpd(d, v).map(Some),
        None => Some(None),
    };
    let monitor = match &c.monitor {
        Some(v) => check_monitor(d, v, local_ts.as_deref(), remote_ts.as_deref(), ports).map(Some),
        None => Some(None),
    };

    let spans = ConnectionSpans {
        name: c.name.as_ref().map_or(span.clone(), |n| n.span()),
    };
    Some((
        ConnectionConfig {
            name: name?,
            local_addr: local_addr?,
            remote_addr: remote_addr?,
            local_id: local_id?,
            remote_id: remote_id?,
            psk: psk?,
            ike_proposals: ike_proposals?,
            esp_proposals: esp_proposals?,
            local_ts: local_ts?,
            remote_ts: remote_ts?,
            role: role?,
            start_action: start_action?,
            encap: encap?,
            ike_rekey: ike_rekey?,
            ike_lifetime: ike_lifetime?,
            child_rekey: child_rekey?,
            child_lifetime: child_lifetime?,
            jitter_percent: jitter_percent?,
            replay_window: replay_window?,
            nat_keepalive: nat_keepalive?,
            dpd: dpd?,
            monitor: monitor?,
        },
        spans,
    ))
}

fn check_role(
    d: &mut Diagnostics<'_>,
    c: &RawConnection,
    role: Option<Role>,
    start_action: Option<StartAction>,
    remote_addr: Option<Option<IpAddr>>,
) {
    let any_remote = matches!(remote_addr, Some(None));
    if let (Some(Role::Initiator), true, Some(v)) = (role, any_remote, &c.role) {
        d.error(v.span(), "role = \"initiator\" needs the peer's address, but remote_addr = \"%any\": set role = \"responder\" or give the peer's address");
    }
    let initiates = matches!(start_action, Some(StartAction::Start | StartAction::Trap));
    let Some(v) = &c.start_action else {
        return;
    };
    if initiates && role == Some(Role::Passive) {
        d.error(v.span(), format!("start_action = \"{}\" initiates, but role = \"passive\" never does: set start_action = \"none\" or role = \"initiator\"", v.get_ref()));
    } else if initiates && any_remote {
        d.error(v.span(), format!("start_action = \"{}\" cannot initiate to remote_addr = \"%any\": set start_action = \"none\" or give the peer's address", v.get_ref()));
    }
}

fn check_psk(d: &mut Diagnostics<'_>, value: &S<RawPsk>, base_dir: &Path) -> Option<Secret> {
    let psk = value.get_ref();
    let given: Vec<&str> = [("file", psk.file.is_some()), ("env", psk.env.is_some()), ("inline", psk.inline.is_some())]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
    if given.len() != 1 {
        d.error(
            value.span(),
            format!(
                "psk needs exactly one of file, env or inline (found {}): e.g. psk = {{ file = \"/etc/ipsecgw/NAME.psk\" }}",
                if given.is_empty() { "none".to_owned() } else { given.join(" and ") }
            ),
        );
        return None;
    }
    // Raw text moves into a zeroizing buffer as soon as it is read.
    let (text, span, origin): (zeroize::Zeroizing<String>, Range<usize>, String) = if let Some(file) = &psk.file {
        let path = base_dir.join(file.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                warn_if_readable_by_others(d, &path, file.get_ref(), file.span());
                let trimmed = zeroize::Zeroizing::new(t.trim_end_matches(['\n', '\r']).to_owned());
                drop(zeroize::Zeroizing::new(t));
                (trimmed, file.span(), format!("file \"{}\"", file.get_ref()))
            }
            Err(e) => {
                d.error(file.span(), format!("psk file \"{}\": {e}: create it (mode 600) or fix the path (relative paths are from the config file's folder)", file.get_ref()));
                return None;
            }
        }
    } else if let Some(var) = &psk.env {
        match std::env::var(var.get_ref()) {
            Ok(t) => (zeroize::Zeroizing::new(t), var.span(), format!("environment variable {}", var.get_ref())),
            Err(_) => {
                d.error(var.span(), format!("psk environment variable {} is not set (or not UTF-8): export it before starting ipsecgw, or use psk = {{ file = … }}", var.get_ref()));
                return None;
            }
        }
    } else {
        let inline = psk.inline.as_ref()?;
        d.warn(inline.span(), "psk is written in the config file: anyone who can read the file has the key; prefer psk = { file = … } (mode 600) or { env = … }");
        (zeroize::Zeroizing::new(inline.get_ref().clone()), inline.span(), "inline value".to_owned())
    };
    // strongSwan's forms: 0x… is hex, anything else the bytes of the string.
    let secret = if let Some(hex) = text.strip_prefix("0x") {
        match decode_hex(hex) {
            Ok(s) => s,
            Err(why) => {
                d.error(span, format!("psk from {origin} starts with 0x but is not hex ({why}): write hex digits after 0x, or a passphrase without the 0x"));
                return None;
            }
        }
    } else {
        Secret::new(text.as_bytes().to_vec())
    };
    if secret.is_empty() {
        d.error(span, format!("psk from {origin} is empty: put the pre-shared key there"));
        return None;
    }
    if secret.len() < 16 {
        d.warn(span, format!("psk from {origin} is {} bytes: use at least 16 random bytes (RFC 7296 §2.15: a PSK is only as strong as its entropy)", secret.len()));
    }
    Some(secret)
}

#[cfg(unix)]
fn warn_if_readable_by_others(d: &mut Diagnostics<'_>, path: &Path, written: &str, span: Range<usize>) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            d.warn(span, format!("psk file \"{written}\" has mode {mode:o}: others can read the key: chmod 600 {}", path.display()));
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &mut Diagnostics<'_>, _: &Path, _: &str, _: Range<usize>) {}

fn proposals(
    d: &mut Diagnostics<'_>,
    value: Option<&S<Vec<S<String>>>>,
    protocol: Protocol,
    key: &str,
    defaults: &[&str],
) -> Option<Vec<Proposal>> {
    let Some(list) = value else {
        return Proposal::parse_list(protocol, defaults, true).ok();
    };
    if list.get_ref().is_empty() {
        d.error(list.span(), format!("{key} is empty: list at least one proposal, or remove the key for the defaults ({})", defaults.join(", ")));
        return None;
    }
    let parsed: Vec<Option<Proposal>> =
        list.get_ref().iter().map(|s| d.parsed(s, key, |t| Proposal::parse_supported(protocol, t))).collect();
    parsed.into_iter().collect()
}

/// ESP KE groups (PFS on CHILD_SA rekey, RFC 7296 §1.3.1) that no IKE proposal
/// allows are legal, but usually a copy-paste slip.
fn check_pfs_groups(d: &mut Diagnostics<'_>, ike: &[Proposal], esp: &[Proposal], span: Range<usize>) {
    let ike_groups: BTreeSet<DhGroup> = ike.iter().flat_map(|p| p.ke.iter().copied()).collect();
    let odd: Vec<String> = esp
        .iter()
        .flat_map(|p| p.ke.iter())
        .filter(|g| !ike_groups.contains(g))
        .map(|g| crate::proposal::Transform::Ke(*g).to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !odd.is_empty() {
        let ike_list: Vec<String> = ike_groups.iter().map(|g| crate::proposal::Transform::Ke(*g).to_string()).collect();
        d.warn(
            span,
            format!(
                "esp_proposals use PFS group {} which no ike_proposal allows ({}): check that the peer's ESP proposals use the same group",
                odd.join(", "),
                ike_list.join(", ")
            ),
        );
    }
}

fn duration(d: &mut Diagnostics<'_>, value: &S<String>, key: &str) -> Option<Duration> {
    d.parsed(value, key, parse_duration)
}

/// `nat_keepalive`: "0s" turns keepalives off; anything else is at least 1 s
/// (a NAT mapping lives tens of seconds; sub-second keepalives are a typo).
fn nat_keepalive(d: &mut Diagnostics<'_>, value: &S<String>) -> Option<Option<Duration>> {
    let t = duration(d, value, "nat_keepalive")?;
    if t.is_zero() {
        return Some(None);
    }
    if t < Duration::from_secs(1) {
        d.error(value.span(), format!("nat_keepalive = \"{}\" is shorter than 1s: use e.g. \"20s\" (strongSwan's default), or \"0s\" to send no NAT keepalives", value.get_ref()));
        return None;
    }
    Some(Some(t))
}

/// Soft (rekey) and hard (lifetime) times; lifetime defaults to rekey + 10% like
/// strongSwan's over_time.
fn lifetimes(
    d: &mut Diagnostics<'_>,
    rekey: Option<&S<String>>,
    lifetime: Option<&S<String>>,
    prefix: &str,
    default_rekey: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let rekey_key = format!("{prefix}_rekey");
    let life_key = format!("{prefix}_lifetime");
    let rekey_value = match rekey {
        Some(v) => duration(d, v, &rekey_key).and_then(|t| {
            if t < Duration::from_secs(10) {
                d.error(v.span(), format!("{rekey_key} = \"{}\" is too short: use at least \"10s\"", v.get_ref()));
                None
            } else {
                Some(t)
            }
        }),
        None => Some(default_rekey),
    };
    let life_value = match lifetime {
        Some(v) => duration(d, v, &life_key),
        None => rekey_value.map(|r| r + r / 10),
    };
    if let (Some(r), Some(l), Some(v)) = (rekey_value, life_value, lifetime) {
        if l <= r {
            d.error(
                v.span(),
                format!(
                    "{life_key} ({}) must be longer than {rekey_key} ({}): the SA is rekeyed at {rekey_key} and deleted at {life_key}; e.g. {life_key} = \"{}\"",
                    format_duration(l),
                    format_duration(r),
                    format_duration(r + r / 10)
                ),
            );
            return (rekey_value, None);
        }
        if l - r < Duration::from_secs(30) {
            d.warn(v.span(), format!("{life_key} leaves only {} after {rekey_key} to finish the rekey: allow at least 30s", format_duration(l - r)));
        }
    }
    (rekey_value, life_value)
}

fn parse_percent(text: &str) -> Result<u8, &'static str> {
    let number = text.trim().strip_suffix('%').ok_or("write a percentage, e.g. \"5%\"")?;
    let value: u8 = number.trim().parse().map_err(|_| "write a whole percentage, e.g. \"5%\"")?;
    if value > 50 {
        return Err("use at most \"50%\": more would rekey far earlier than asked");
    }
    Ok(value)
}

fn check_dpd(d: &mut Diagnostics<'_>, value: &S<RawDpd>) -> Option<Dpd> {
    let raw = value.get_ref();
    let interval = d.need(&raw.interval, &value.span(), "dpd", "interval", "\"30s\"").and_then(|v| duration(d, v, "dpd.interval"));
    if let (Some(i), Some(v)) = (interval, &raw.interval) {
        if i < Duration::from_secs(1) {
            d.error(v.span(), "dpd.interval is shorter than 1s: use e.g. \"30s\"");
            return None;
        }
    }
    let timeout = match &raw.timeout {
        Some(v) => duration(d, v, "dpd.timeout").map(|t| (t, Some(v))),
        None => interval.map(|i| (i * 3, None)),
    };
    let action = match &raw.action {
        Some(v) => d.choice(v, "dpd.action", &[("clear", DpdAction::Clear), ("restart", DpdAction::Restart), ("hold", DpdAction::Hold)]),
        None => Some(DpdAction::Clear),
    };
    if let (Some(i), Some((t, Some(v)))) = (interval, &timeout) {
        if *t < i {
            d.error(v.span(), format!("dpd.timeout ({}) is shorter than dpd.interval ({}): a peer must miss at least one check; e.g. timeout = \"{}\"", format_duration(*t), format_duration(i), format_duration(i * 3)));
            return None;
        }
    }
    Some(Dpd { interval: interval?, timeout: timeout?.0, action: action? })
}

fn check_monitor(
    d: &mut Diagnostics<'_>,
    value: &S<RawMonitor>,
    local_ts: Option<&[TrafficSelector]>,
    remote_ts: Option<&[TrafficSelector]>,
    ports: &[PortConfig],
) -> Option<Monitor> {
    let raw = value.get_ref();
    let span = value.span();
    let address = d.need(&raw.address, &span, "monitor", "address", "\"10.1.0.1\"").and_then(|v| ip_spanned(d, v, "monitor.address"));
    let source = d.need(&raw.source, &span, "monitor", "source", "\"10.2.0.1\"").and_then(|v| ip_spanned(d, v, "monitor.source"));
    if let (Some((a, a_span)), Some(ts)) = (&address, remote_ts) {
        if !ts.iter().any(|t| t.addresses.contains(*a)) {
            d.error(a_span.clone(), format!("monitor.address {a} is outside remote_ts ({}): the probe must go through the tunnel; pick an address inside it", list(ts)));
        }
    }
    if let (Some((s, s_span)), Some(ts)) = (&source, local_ts) {
        if !ts.iter().any(|t| t.addresses.contains(*s)) {
            d.error(s_span.clone(), format!("monitor.source {s} is outside local_ts ({}): the probe must go through the tunnel; pick an address inside it", list(ts)));
        } else if !ports.is_empty() && !network::is_own(*s, ports) {
            d.warn(s_span.clone(), format!("monitor.source {s} is not an address of any [[port]]: echo replies will not reach the gateway; add it to the inside port's addresses"));
        }
    }
    let interval = match &raw.interval {
        Some(v) => duration(d, v, "monitor.interval").and_then(|i| {
            if i < Duration::from_millis(100) {
                d.error(v.span(), "monitor.interval is shorter than 100ms: use e.g. \"2s\"");
                None
            } else {
                Some(i)
            }
        }),
        None => Some(Duration::from_secs(2)),
    };
    let threshold = match &raw.threshold {
        Some(v) => d.int_in(v, "monitor.threshold", 1..=1000, " (lost probes in a row that mean down)"),
        None => Some(3),
    };
    let action = match &raw.action {
        Some(v) => d.choice(v, "monitor.action", &[("wait-recover", MonitorAction::WaitRecover), ("fail-over", MonitorAction::FailOver)]),
        None => Some(MonitorAction::WaitRecover),
    };
    let backup = raw.backup.as_ref().map(|b| b.get_ref().clone());
    match (action, &raw.backup) {
        (Some(MonitorAction::FailOver), None) => {
            d.error(span.clone(), "monitor.action = \"fail-over\" needs a backup: add backup = \"NAME\" (another [[connection]])");
        }
        (Some(MonitorAction::WaitRecover), Some(b)) => {
            d.warn(b.span(), "monitor.backup is ignored with action = \"wait-recover\": set action = \"fail-over\" to use it");
        }
        _ => {}
    }
    Some(Monitor {
        address: address?.0,
        source: source?.0,
        interval: interval?,
        threshold: threshold?,
        action: action?,
        backup,
    })
}

fn list(ts: &[TrafficSelector]) -> String {
    ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
