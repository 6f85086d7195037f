//! Publishing Child SAs in the dataplane's SA tables ([`SaControl`]), one
//! transaction per engine action, so the order the engine chose is the order
//! the workers see (make-before-break, RFC 7296 §2.8):
//!
//! 1. `InboundOnly` (the new SA of a rekey): its inbound half is published
//!    first, so the peer may switch as soon as it has our answer;
//! 2. `OutboundOnly`: the new outbound SA is added and the old Child SA's
//!    policies are pointed at it in the same snapshot (no packet sees no SA);
//! 3. the old Child SA's removal comes last (after the engine's grace time);
//!    its outbound half may already be gone, which is not an error.
//!
//! A first Child SA (`Both`) is inbound + outbound + policies in one snapshot.
//!
//! [`TableSaSink`] does this bookkeeping once for any table entry type; an
//! [`SaBuilder`] says how entries and policies are made. Two instances:
//! [`EspSaBuilder`] (plain ESP SAs, [`DataplaneSaSink`]) here, and the
//! gateway's tunnel builder (ESP SA + inner selectors + name, `TunnelControl`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dataplane::crypto::{new_aead, Algorithm, Backend};
use dataplane::esp::{self, InboundConfig, OutboundConfig};
use dataplane::sa::{PolicyAction, PolicyId, PolicySpec, SaControl, SaId, Transaction};
use dataplane::spd::{IpPrefix, PortRange, Selector};

use super::sa_sink::{SaSink, SinkError};
use crate::ikev2::{ChildSaId, ChildSaInstall, ChildSaRemove, Directions, Spi};
use crate::proposal::{Encr, EncrId};
use crate::selector::{AddrRange, TrafficSelector};

/// The SA tables the workers read.
pub type EspSaControl = SaControl<esp::InboundSa, esp::OutboundSa>;

/// How one kind of SA table builds its entries from an engine install.
/// Everything that can fail on peer-chosen input (algorithm, key, selectors)
/// fails here, before a transaction starts, so a refused install leaves the
/// tables as they were.
pub trait SaBuilder: Send {
    type Inbound: Send + Sync + 'static;
    type Outbound: Send + Sync + 'static;
    /// The inbound entry (decrypts with `sa.inbound_key`).
    fn inbound(&self, sa: &ChildSaInstall) -> Result<Self::Inbound, SinkError>;
    /// The outbound entry (encrypts with `sa.outbound_key`, outer header).
    fn outbound(&self, sa: &ChildSaInstall) -> Result<Self::Outbound, SinkError>;
    /// Outbound policies of a new Child SA (not a rekey), protecting with `sa_id`.
    fn policies(&self, sa: &ChildSaInstall, sa_id: SaId) -> Result<Vec<PolicySpec>, SinkError>;
    /// Trap policies of `connection` ([`PolicyAction::Trap`], at
    /// [`TRAP_PRIORITY_BASE`] and after): none if it has no trap.
    fn trap_policies(&self, _connection: &str) -> Vec<PolicySpec> {
        Vec::new()
    }
}

/// What the sink installed for one Child SA.
#[derive(Debug, Default)]
struct Installed {
    inbound: Option<Spi>,
    outbound: Option<SaId>,
    policies: Vec<PolicyId>,
    /// Its connection (tunnel monitoring looks SAs up by connection).
    connection: String,
}

/// Publishes Child SAs in an [`SaControl`] whose entries `B` builds.
pub struct TableSaSink<B: SaBuilder> {
    ctl: SaControl<B::Inbound, B::Outbound>,
    builder: B,
    children: HashMap<ChildSaId, Installed>,
    /// Trap policies installed per connection (they stay: a Child SA's
    /// policies shadow them while it is up).
    traps: HashMap<String, Vec<PolicyId>>,
}

/// Plain ESP SA tables (tests, benchmarks, embedding without the gateway's tunnels).
pub type DataplaneSaSink = TableSaSink<EspSaBuilder>;

impl<B: SaBuilder> std::fmt::Debug for TableSaSink<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSaSink").field("ctl", &self.ctl).field("children", &self.children.len()).finish_non_exhaustive()
    }
}

/// Policies of IKE-negotiated SAs are checked after static ones (which the
/// gateway installs with lower numbers); more specific selectors first.
pub const POLICY_PRIORITY_BASE: u32 = 1_000_000;

/// Trap policies come after every Child SA's policies: a Child SA's PROTECT
/// policies shadow the trap from the snapshot that installs them, and the
/// trap shows again in the snapshot that removes them (strongSwan's trap
/// policies work the same way under the SA's).
pub const TRAP_PRIORITY_BASE: u32 = POLICY_PRIORITY_BASE + (1 << 28);

impl<B: SaBuilder> TableSaSink<B> {
    /// Takes the tables (the gateway keeps a [`SaControl::reader`] per worker,
    /// taken before handing them over).
    pub fn with_builder(ctl: SaControl<B::Inbound, B::Outbound>, builder: B) -> Self {
        TableSaSink { ctl, builder, children: HashMap::new(), traps: HashMap::new() }
    }

    /// The tables (for `show`, and tests).
    pub fn control(&self) -> &SaControl<B::Inbound, B::Outbound> {
        &self.ctl
    }

    /// The tables, to change (the gateway's tunnel monitor adds its policies).
    pub fn control_mut(&mut self) -> &mut SaControl<B::Inbound, B::Outbound> {
        &mut self.ctl
    }

    /// A connection's current outbound SA and the selectors of the policies
    /// installed for it (tunnel monitoring; the newest Child SA when it has several).
    pub fn outbound_of(&self, connection: &str) -> Option<(SaId, Vec<Selector>)> {
        let (_, entry, id) = self
            .children
            .iter()
            .filter(|(_, e)| e.connection == connection)
            .filter_map(|(c, e)| e.outbound.map(|id| (c.0, e, id)))
            .max_by_key(|(c, _, _)| *c)?;
        Some((id, entry.policies.iter().filter_map(|p| self.ctl.policy(*p)).map(|s| s.selector).collect()))
    }

    /// Installs `connection`'s trap policies (from the builder) unless they
    /// are installed already; `Ok(false)` if nothing was installed.
    pub fn trap(&mut self, connection: &str) -> Result<bool, SinkError> {
        if self.traps.contains_key(connection) {
            return Ok(false);
        }
        let specs = self.builder.trap_policies(connection);
        if specs.is_empty() {
            return Ok(false);
        }
        let mut tx = self.ctl.transaction();
        let ids = specs.into_iter().map(|s| tx.add_policy(s).map_err(table)).collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(table)?;
        self.traps.insert(connection.to_owned(), ids);
        Ok(true)
    }

    /// The builder (e.g. to change what later installs get).
    pub fn builder_mut(&mut self) -> &mut B {
        &mut self.builder
    }

    /// Adds the outbound SA and its policies: the old Child SA's policies are
    /// moved over when it has some (same snapshot), else new ones are made.
    fn add_outbound(
        builder: &B,
        tx: &mut Transaction<'_, B::Inbound, B::Outbound>,
        old: Option<&mut Installed>,
        sa: &ChildSaInstall,
        out: B::Outbound,
    ) -> Result<(SaId, Vec<PolicyId>), SinkError> {
        let id = tx.add_outbound(Arc::new(out)).map_err(table)?;
        if let Some(old) = old.filter(|o| !o.policies.is_empty()) {
            for &p in &old.policies {
                tx.set_policy_action(p, PolicyAction::Protect(id)).map_err(table)?;
            }
            if let Some(prev) = old.outbound.take() {
                // Policies others put on the old SA (the gateway's tunnel
                // monitor: probe pins, fail-over steering) follow it too.
                for p in tx.policies_using(prev) {
                    tx.set_policy_action(p, PolicyAction::Protect(id)).map_err(table)?;
                }
                tx.remove_outbound(prev).map_err(table)?;
            }
            return Ok((id, std::mem::take(&mut old.policies)));
        }
        let mut policies = Vec::new();
        for spec in builder.policies(sa, id)? {
            policies.push(tx.add_policy(spec).map_err(table)?);
        }
        Ok((id, policies))
    }
}

impl<B: SaBuilder> SaSink for TableSaSink<B> {
    fn install(&mut self, sa: &ChildSaInstall, _now: Instant) -> Result<(), SinkError> {
        let want_in = matches!(sa.directions, Directions::Both | Directions::InboundOnly);
        let want_out = matches!(sa.directions, Directions::Both | Directions::OutboundOnly);
        // Keys are turned into AEAD instances before the transaction: a bad
        // key leaves the tables untouched.
        let inbound = if want_in { Some(self.builder.inbound(sa)?) } else { None };
        let outbound = if want_out { Some(self.builder.outbound(sa)?) } else { None };
        // The old Child SA's record, taken out so the new one can take its policies.
        let mut old = sa.replaces.and_then(|c| self.children.remove(&c));
        let mut entry = self.children.remove(&sa.child).unwrap_or_default();
        entry.connection.clone_from(&sa.connection);
        let builder = &self.builder;
        let mut tx = self.ctl.transaction();
        let result = (|| {
            if let Some(i) = inbound {
                tx.add_inbound(dataplane::sa::Spi(sa.inbound_spi.0), Arc::new(i)).map_err(table)?;
                entry.inbound = Some(sa.inbound_spi);
            }
            if let Some(o) = outbound {
                let (id, policies) = Self::add_outbound(builder, &mut tx, old.as_mut(), sa, o)?;
                entry.outbound = Some(id);
                entry.policies.extend(policies);
            }
            tx.commit().map_err(table)
        })();
        if let (Some(c), Some(o)) = (sa.replaces, old) {
            self.children.insert(c, o);
        }
        match result {
            Ok(_) => {
                self.children.insert(sa.child, entry);
                Ok(())
            }
            Err(e) => {
                // Rolled back: keep whatever was installed before this action.
                let before = Installed {
                    inbound: if want_in { None } else { entry.inbound },
                    outbound: if want_out { None } else { entry.outbound },
                    policies: if want_out { Vec::new() } else { entry.policies },
                    connection: entry.connection,
                };
                if before.inbound.is_some() || before.outbound.is_some() {
                    self.children.insert(sa.child, before);
                }
                Err(e)
            }
        }
    }

    fn remove(&mut self, sa: &ChildSaRemove, _now: Instant) -> Result<(), SinkError> {
        let Some(mut entry) = self.children.remove(&sa.child) else { return Ok(()) };
        let rm_in = matches!(sa.directions, Directions::Both | Directions::InboundOnly);
        let rm_out = matches!(sa.directions, Directions::Both | Directions::OutboundOnly);
        let mut tx = self.ctl.transaction();
        if rm_in {
            if let Some(spi) = entry.inbound.take() {
                tx.remove_inbound(dataplane::sa::Spi(spi.0)).map_err(table)?;
            }
        }
        if rm_out {
            // Policies still on this SA go with it (a rekey moved them already).
            for p in std::mem::take(&mut entry.policies) {
                tx.remove_policy(p).map_err(table)?;
            }
            if let Some(id) = entry.outbound.take() {
                // So do others' policies on it (the tunnel monitor re-creates its own).
                for p in tx.policies_using(id) {
                    tx.remove_policy(p).map_err(table)?;
                }
                tx.remove_outbound(id).map_err(table)?;
            }
        }
        tx.commit().map_err(table)?;
        if entry.inbound.is_some() || entry.outbound.is_some() {
            self.children.insert(sa.child, entry);
        }
        Ok(())
    }

    fn tick(&mut self, _now: Instant) {
        self.ctl.reclaim();
    }

    fn hold(&mut self, connection: &str, _now: Instant) -> Result<(), SinkError> {
        self.trap(connection).map(|_| ())
    }
}

/// Plain ESP SAs: an AEAD from the backend, prebuilt outer header, policies
/// from the negotiated traffic selectors.
#[derive(Debug, Clone, Copy)]
pub struct EspSaBuilder {
    pub backend: Backend,
    /// Replay window of inbound SAs (0 = off, benchmarks only).
    pub replay_window: u32,
}

impl DataplaneSaSink {
    /// Plain ESP tables with AEADs from `backend` and the default replay window.
    pub fn new(ctl: EspSaControl, backend: Backend) -> Self {
        TableSaSink::with_builder(ctl, EspSaBuilder { backend, replay_window: esp::replay::DEFAULT_WINDOW })
    }

    /// Replay window of inbound SAs installed from now on (0 = off, benchmarks only).
    pub fn set_replay_window(&mut self, window: u32) {
        self.builder.replay_window = window;
    }
}

impl SaBuilder for EspSaBuilder {
    type Inbound = esp::InboundSa;
    type Outbound = esp::OutboundSa;

    fn inbound(&self, sa: &ChildSaInstall) -> Result<esp::InboundSa, SinkError> {
        let aead = new_aead(esp_algorithm(sa.encr)?, &sa.inbound_key, self.backend)
            .map_err(|e| SinkError::Key { spi: sa.inbound_spi, reason: e.to_string() })?;
        let config = InboundConfig { spi: dataplane::wire::Spi(sa.inbound_spi.0), esn: sa.esn, replay_window: self.replay_window };
        esp::InboundSa::new(config, Arc::from(aead)).map_err(|e| SinkError::Build { spi: sa.inbound_spi, reason: e.to_string() })
    }

    fn outbound(&self, sa: &ChildSaInstall) -> Result<esp::OutboundSa, SinkError> {
        let aead = new_aead(esp_algorithm(sa.encr)?, &sa.outbound_key, self.backend)
            .map_err(|e| SinkError::Key { spi: sa.outbound_spi, reason: e.to_string() })?;
        esp::OutboundSa::new(outbound_config(sa), Arc::from(aead))
            .map_err(|e| SinkError::Build { spi: sa.outbound_spi, reason: e.to_string() })
    }

    fn policies(&self, sa: &ChildSaInstall, sa_id: SaId) -> Result<Vec<PolicySpec>, SinkError> {
        policy_specs(&sa.local_ts, &sa.remote_ts, sa_id)
    }
}

/// The outbound ESP configuration of an install: SPI, outer addresses, ESN,
/// and (RFC 3948) ESP in UDP with the IKE SA's (possibly NAT-mapped) ports.
pub fn outbound_config(sa: &ChildSaInstall) -> OutboundConfig {
    let mut config = OutboundConfig::new(dataplane::wire::Spi(sa.outbound_spi.0), sa.local, sa.remote);
    config.esn = sa.esn;
    config.udp = sa.encap.map(|e| esp::UdpEncap { src_port: e.local_port, dst_port: e.remote_port, ..esp::UdpEncap::default() });
    config
}

fn table(e: dataplane::sa::SaError) -> SinkError {
    SinkError::Table(e.to_string())
}

/// The dataplane AEAD for a negotiated ESP transform (RFC 4106 AES-GCM with
/// a 16-octet ICV, RFC 7634 ChaCha20-Poly1305, whose key is always 256 bits).
pub fn esp_algorithm(encr: Encr) -> Result<Algorithm, SinkError> {
    match (encr.id, encr.key_bits) {
        (EncrId::AesGcm16, Some(128)) => Ok(Algorithm::Aes128Gcm),
        (EncrId::AesGcm16, Some(256)) => Ok(Algorithm::Aes256Gcm),
        (EncrId::ChaCha20Poly1305, None | Some(256)) => Ok(Algorithm::ChaCha20Poly1305),
        _ => Err(SinkError::UnsupportedAlgorithm(encr)),
    }
}

/// The fewest prefixes covering an inclusive address range.
pub(crate) fn range_prefixes(range: &AddrRange) -> Vec<IpPrefix> {
    let (start, end, bits): (u128, u128, u32) = match *range {
        AddrRange::V4(s, e) => (u32::from(s).into(), u32::from(e).into(), 32),
        AddrRange::V6(s, e) => (u128::from(s), u128::from(e), 128),
    };
    let mut out = Vec::new();
    let mut cur = start;
    loop {
        // Largest aligned block starting at `cur` that does not pass `end`
        // (`cur` is aligned to 2^size_log, so `last` cannot overflow).
        let mut size_log = cur.trailing_zeros().min(bits);
        let last = loop {
            let last = if size_log >= 128 { u128::MAX } else { cur + ((1u128 << size_log) - 1) };
            if last <= end || size_log == 0 {
                break last;
            }
            size_log -= 1;
        };
        let len = (bits - size_log) as u8;
        out.push(if bits == 32 { IpPrefix::V4((cur as u32).into(), len) } else { IpPrefix::V6(cur.into(), len) });
        if last >= end {
            break;
        }
        cur = last + 1;
    }
    out
}

fn ports(ts: &TrafficSelector) -> Result<PortRange, SinkError> {
    PortRange::new(ts.start_port, ts.end_port).map_err(|e| SinkError::Selector(ts.to_string(), e.to_string()))
}

/// Outbound policies: src in a local selector, dst in a remote one (RFC 4301
/// §4.4.1), every family-matching pair; more specific pairs checked first.
fn policy_specs(local: &[TrafficSelector], remote: &[TrafficSelector], sa: SaId) -> Result<Vec<PolicySpec>, SinkError> {
    let mut specs = Vec::new();
    for l in local {
        for r in remote {
            if l.addresses.is_ipv4() != r.addresses.is_ipv4() {
                continue;
            }
            // Protocol: both narrowed to the same one, or ANY (RFC 7296 §2.9).
            let proto = match (l.protocol, r.protocol) {
                (0, 0) => None,
                (0, p) | (p, 0) => Some(p),
                (a, b) if a == b => Some(a),
                _ => continue,
            };
            for src in range_prefixes(&l.addresses) {
                for dst in range_prefixes(&r.addresses) {
                    let specificity = u32::from(prefix_len(src)) + u32::from(prefix_len(dst));
                    let selector = Selector { src, dst, proto, src_ports: ports(l)?, dst_ports: ports(r)? };
                    specs.push(PolicySpec {
                        priority: POLICY_PRIORITY_BASE + (256 - specificity),
                        selector,
                        action: PolicyAction::Protect(sa),
                    });
                }
            }
        }
    }
    if specs.is_empty() {
        let all = |ts: &[TrafficSelector]| ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        return Err(SinkError::Selector(format!("{} === {}", all(local), all(remote)), "no pair of the same IP family".into()));
    }
    Ok(specs)
}

fn prefix_len(p: IpPrefix) -> u8 {
    match p {
        IpPrefix::V4(_, l) | IpPrefix::V6(_, l) => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(a: &str, b: &str) -> Vec<String> {
        let r = AddrRange::new(a.parse().expect("ip"), b.parse().expect("ip")).expect("range");
        range_prefixes(&r)
            .into_iter()
            .map(|p| match p {
                IpPrefix::V4(a, l) => format!("{a}/{l}"),
                IpPrefix::V6(a, l) => format!("{a}/{l}"),
            })
            .collect()
    }

    #[test]
    fn ranges_to_prefixes() {
        assert_eq!(prefixes("10.1.0.0", "10.1.0.255"), ["10.1.0.0/24"]);
        assert_eq!(prefixes("10.1.0.1", "10.1.0.1"), ["10.1.0.1/32"]);
        assert_eq!(prefixes("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(prefixes("10.0.0.1", "10.0.0.6"), ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
        assert_eq!(prefixes("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(prefixes("2001:db8::", "2001:db8::ffff"), ["2001:db8::/112"]);
        assert_eq!(prefixes("255.255.255.254", "255.255.255.255"), ["255.255.255.254/31"]);
    }
}
