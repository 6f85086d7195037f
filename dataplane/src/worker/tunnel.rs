//! What the SA tables hold for the worker (an ESP SA, its runtime state and its
//! selectors) and how static (manually keyed) tunnels become SAs and policies.
//!
//! The runtime state (sequence counter, replay window, owning worker) sits
//! behind its own `Arc`: consecutive snapshots share it, and an SA's immutable
//! data can be replaced (`replace_inbound`) with or without it (a tunnel built
//! anew has fresh state).

use core::net::IpAddr;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::{new_aead, Algorithm, Backend, KeyError};
use crate::esp::{self, InboundConfig, OutboundConfig, SaConfigError, UdpEncap};
use crate::sa::{PolicyAction, PolicyId, PolicySpec, SaControl, SaError, SaId, SaTable, Spi};
use crate::spd::{Flow, FlowV4, IpPrefix, PortRange, Selector, SelectorSet};

/// An inbound SA as installed for the worker.
#[derive(Debug)]
pub struct InboundTunnel {
    /// Keys and parameters.
    pub sa: esp::InboundSa,
    /// Replay window (owned by one core at a time, see the module docs of
    /// [`super`]).
    pub state: Arc<esp::InboundState>,
    /// What decrypted packets may be (remote → local, RFC 4301 §5.2 step 4).
    selectors: Box<[Selector]>,
    /// The same compiled for the per-packet check ([`Self::allows`]): an SA
    /// with many selectors (one per pair of local and remote subnets) is a
    /// hash lookup, not a scan of them all.
    allowed: SelectorSet,
    /// Name for counters and logs.
    pub name: Arc<str>,
}

impl InboundTunnel {
    /// An inbound SA for the worker with a fresh replay window; `selectors` are
    /// remote → local (what decrypted packets may be).
    pub fn new(sa: esp::InboundSa, selectors: Vec<Selector>, name: &str) -> Result<Self, SaConfigError> {
        let state = Arc::new(sa.new_state()?);
        let allowed = SelectorSet::new(&selectors);
        Ok(InboundTunnel { sa, state, selectors: selectors.into(), allowed, name: Arc::from(name) })
    }

    /// What decrypted packets may be (remote → local).
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Whether a decrypted packet's flow is allowed through this SA.
    #[inline]
    pub fn allows(&self, flow: &Flow) -> bool {
        self.allowed.matches(flow)
    }

    /// Whether [`Self::allows_v4`] can depend on a flow's ports.
    #[inline]
    pub fn ports_matter_v4(&self) -> bool {
        self.allowed.ports_matter_v4()
    }

    /// [`Self::allows`] for an IPv4 flow.
    #[inline]
    pub fn allows_v4(&self, flow: &FlowV4) -> bool {
        self.allowed.matches_v4(flow)
    }
}

/// An outbound SA as installed for the worker.
#[derive(Debug)]
pub struct OutboundTunnel {
    /// Keys, parameters and prebuilt outer header.
    pub sa: esp::OutboundSa,
    /// Sequence counter (shared by every core sending on the SA).
    pub state: Arc<esp::OutboundState>,
    /// Name for counters and logs.
    pub name: Arc<str>,
}

impl OutboundTunnel {
    /// An outbound SA for the worker with a fresh sequence counter.
    pub fn new(sa: esp::OutboundSa, name: &str) -> Self {
        let state = Arc::new(sa.new_state());
        OutboundTunnel { sa, state, name: Arc::from(name) }
    }
}

/// The snapshot type the workers read.
pub type TunnelTable = SaTable<InboundTunnel, OutboundTunnel>;
/// The control side of the worker's tables.
pub type TunnelControl = SaControl<InboundTunnel, OutboundTunnel>;

/// One traffic selector of a static tunnel: a prefix with optional protocol and
/// port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsSpec {
    /// Addresses.
    pub prefix: IpPrefix,
    /// Protocol; `None` = any.
    pub proto: Option<u8>,
    /// Ports (any = 0-65535).
    pub ports: PortRange,
}

impl TsSpec {
    /// All protocols and ports of a prefix.
    pub fn prefix(prefix: IpPrefix) -> Self {
        TsSpec { prefix, proto: None, ports: PortRange::ANY }
    }
}

/// A manually keyed tunnel-mode SA pair (config `[[static_sa]]`).
#[derive(Debug, Clone)]
pub struct StaticTunnel {
    /// Name.
    pub name: String,
    /// AEAD.
    pub algorithm: Algorithm,
    /// Our outer address.
    pub local: IpAddr,
    /// The peer's outer address.
    pub remote: IpAddr,
    /// ESP in UDP 4500 (RFC 3948) instead of raw ESP.
    pub udp: bool,
    /// SPI we receive on.
    pub spi_in: Spi,
    /// SPI we send with.
    pub spi_out: Spi,
    /// key || salt for the inbound SA.
    pub key_in: Zeroizing<Vec<u8>>,
    /// key || salt for the outbound SA.
    pub key_out: Zeroizing<Vec<u8>>,
    /// Our side's traffic.
    pub local_ts: Vec<TsSpec>,
    /// The peer's side's traffic.
    pub remote_ts: Vec<TsSpec>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Replay window; 0 = off (benchmarks with looped pcaps only).
    pub replay_window: u32,
}

/// A static tunnel could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// Key length or backend problem.
    #[error("static SA {name:?}: {source}")]
    Key {
        /// Tunnel.
        name: String,
        /// Cause.
        source: KeyError,
    },
    /// Invalid SA parameters.
    #[error("static SA {name:?}: {source}")]
    Config {
        /// Tunnel.
        name: String,
        /// Cause.
        source: SaConfigError,
    },
    /// No (local, remote) selector pair of one family and protocol.
    #[error("static SA {name:?}: no local_ts/remote_ts pair of the same address family and protocol")]
    NoSelectors {
        /// Tunnel.
        name: String,
    },
    /// The tables refused it.
    #[error("static SA {name:?}: {source}")]
    Table {
        /// Tunnel.
        name: String,
        /// Cause.
        source: SaError,
    },
}

/// (local, remote) selector pairs: same family, compatible protocols.
fn pairs(local: &[TsSpec], remote: &[TsSpec]) -> Vec<(TsSpec, TsSpec, Option<u8>)> {
    let mut out = Vec::new();
    for l in local {
        for r in remote {
            if matches!(l.prefix, IpPrefix::V4(..)) != matches!(r.prefix, IpPrefix::V4(..)) {
                continue;
            }
            let proto = match (l.proto, r.proto) {
                (Some(a), Some(b)) if a != b => continue,
                (a, b) => a.or(b),
            };
            out.push((*l, *r, proto));
        }
    }
    out
}

/// Outbound selectors of `local` → `remote` traffic selectors (also the
/// gateway's trap policies, made from a connection's configured selectors).
pub fn outbound_selectors(local: &[TsSpec], remote: &[TsSpec]) -> Vec<Selector> {
    pairs(local, remote)
        .into_iter()
        .map(|(l, r, proto)| Selector { src: l.prefix, dst: r.prefix, proto, src_ports: l.ports, dst_ports: r.ports })
        .collect()
}

impl StaticTunnel {
    /// Outbound selectors: local → remote.
    pub fn outbound_selectors(&self) -> Vec<Selector> {
        outbound_selectors(&self.local_ts, &self.remote_ts)
    }

    /// Inbound selectors: remote → local.
    pub fn inbound_selectors(&self) -> Vec<Selector> {
        self.outbound_selectors()
            .into_iter()
            .map(|s| Selector { src: s.dst, dst: s.src, proto: s.proto, src_ports: s.dst_ports, dst_ports: s.src_ports })
            .collect()
    }

    /// Build the SA pair (keys are expanded here, never on the packet path).
    pub fn build(&self, backend: Backend) -> Result<(Arc<InboundTunnel>, Arc<OutboundTunnel>), TunnelError> {
        let key_err = |source| TunnelError::Key { name: self.name.clone(), source };
        let cfg_err = |source| TunnelError::Config { name: self.name.clone(), source };
        let selectors = self.inbound_selectors();
        if selectors.is_empty() {
            return Err(TunnelError::NoSelectors { name: self.name.clone() });
        }
        let aead_in = new_aead(self.algorithm, &self.key_in, backend).map_err(key_err)?;
        let aead_out = new_aead(self.algorithm, &self.key_out, backend).map_err(key_err)?;
        let inbound = esp::InboundSa::new(
            InboundConfig { spi: self.spi_in, esn: self.esn, replay_window: self.replay_window },
            Arc::from(aead_in),
        )
        .map_err(cfg_err)?;
        let inbound = InboundTunnel::new(inbound, selectors, &self.name).map_err(cfg_err)?;
        let mut out_cfg = OutboundConfig::new(self.spi_out, self.local, self.remote);
        out_cfg.esn = self.esn;
        out_cfg.udp = self.udp.then(UdpEncap::default);
        let outbound = esp::OutboundSa::new(out_cfg, Arc::from(aead_out)).map_err(cfg_err)?;
        Ok((Arc::new(inbound), Arc::new(OutboundTunnel::new(outbound, &self.name))))
    }
}

/// What [`install_static`] installed for one tunnel.
#[derive(Debug, Clone)]
pub struct InstalledTunnel {
    /// Tunnel name.
    pub name: String,
    /// Inbound SPI.
    pub spi_in: Spi,
    /// Inbound SA (counters).
    pub inbound: SaId,
    /// Outbound SA (counters).
    pub outbound: SaId,
    /// Its PROTECT policies.
    pub policies: Vec<PolicyId>,
}

/// Install every tunnel, SAs and PROTECT policies, in one publication. Policy
/// order follows the tunnel order (an earlier tunnel wins on overlap).
pub fn install_static(
    ctl: &mut TunnelControl,
    tunnels: &[StaticTunnel],
    backend: Backend,
) -> Result<Vec<InstalledTunnel>, TunnelError> {
    let built = tunnels.iter().map(|t| t.build(backend)).collect::<Result<Vec<_>, _>>()?;
    let mut tx = ctl.transaction();
    let mut out = Vec::with_capacity(tunnels.len());
    for (i, (t, (inb, outb))) in tunnels.iter().zip(built).enumerate() {
        let table_err = |source| TunnelError::Table { name: t.name.clone(), source };
        let inbound = tx.add_inbound(t.spi_in, inb).map_err(table_err)?;
        let outbound = tx.add_outbound(outb).map_err(table_err)?;
        let mut policies = Vec::new();
        for (j, selector) in t.outbound_selectors().into_iter().enumerate() {
            // Priorities below 1000 stay free for policies placed ahead of the tunnels.
            let priority = u32::try_from((i + 1) * 1000 + j).unwrap_or(u32::MAX);
            let spec = PolicySpec { priority, selector, action: PolicyAction::Protect(outbound) };
            policies.push(tx.add_policy(spec).map_err(table_err)?);
        }
        out.push(InstalledTunnel { name: t.name.clone(), spi_in: t.spi_in, inbound, outbound, policies });
    }
    tx.commit().map_err(|source| TunnelError::Table { name: "(commit)".into(), source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    /// `allows_v4` says what `Selector::matches` says of any of the SA's
    /// selectors, for none, one and two selectors in either order, and for more
    /// than the SPD scans linearly (the /32 of each of 40 hosts).
    #[test]
    fn allows_v4_is_any_selector_matching() {
        let v4 = |a: [u8; 4], len| IpPrefix::V4(Ipv4Addr::from(a), len);
        let a = Selector::subnets(v4([10, 2, 0, 0], 16), v4([10, 1, 0, 0], 16));
        let b = Selector { proto: Some(17), ..Selector::subnets(v4([10, 3, 0, 0], 24), v4([10, 1, 0, 7], 32)) };
        let aead = Arc::from(new_aead(Algorithm::Aes128Gcm, &[7; 20], Backend::RustCrypto).expect("key"));
        let sa = esp::InboundSa::new(InboundConfig::new(Spi(0x1001)), aead).expect("SA");
        let mut hits = 0;
        let hosts: Vec<Selector> = (0..40).map(|i| Selector::subnets(v4([10, 3, 0, 0], 24), v4([10, 1, 0, i], 32))).collect();
        for sels in [vec![], vec![a], vec![b], vec![a, b], vec![b, a], hosts] {
            let t = InboundTunnel::new(sa.clone(), sels.clone(), "t").expect("tunnel");
            for src in [[10, 2, 9, 9], [10, 3, 0, 1], [10, 4, 0, 1]] {
                for dst in [[10, 1, 0, 7], [10, 1, 2, 3], [10, 9, 0, 1]] {
                    for proto in [6, 17] {
                        let f = FlowV4::v4(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, 1000, 53);
                        let want = sels.iter().any(|s| s.matches(&Flow::V4(f)));
                        hits += usize::from(want);
                        assert_eq!(t.allows_v4(&f), want, "{sels:?} {f:?}");
                    }
                }
            }
        }
        assert!(hits > 0, "{hits}");
    }
}
