//! What `ipsecgw run` needs from the validated config (`controlplane::config`).

use anyhow::{anyhow, Result};
use controlplane::config::Config;

/// A port as the gateway uses it.
#[derive(Debug, Clone)]
pub struct PlanPort {
    /// Name from the config (`outside`, `inside`...).
    pub name: String,
    /// DPDK port id.
    pub dpdk_port: u16,
}

/// The gateway's run plan.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// EAL arguments from `[dpdk].eal_args` (the CLI's `-- ARGS` are appended).
    pub eal_args: Vec<String>,
    /// Mempool size.
    pub mbufs: u32,
    /// Poll without idle back-off.
    pub busy_poll: bool,
    /// Rx burst size.
    pub burst: u16,
    /// Ports in config order.
    pub ports: Vec<PlanPort>,
    /// Forwarding pairs as indexes into `ports` (both directions).
    pub pairs: Vec<(usize, usize)>,
    /// ESP mode (the config has static SAs): what the ESP worker needs.
    pub esp: Option<crate::esp::EspPlan>,
    /// `[[connection]]`s: the IKE manager runs on the punt path (tunnel.rs).
    pub connections: Vec<controlplane::ikev2::ConnectionConfig>,
    /// `[connection.monitor]`s by connection name (monitor.rs).
    pub monitors: Vec<(String, controlplane::config::Monitor)>,
}

impl RunPlan {
    /// The plan for a validated config (which already checked that pair names exist).
    pub fn from_config(config: &Config, neighbors: &[(std::net::IpAddr, dataplane::wire::MacAddr)]) -> Result<RunPlan> {
        let ports: Vec<PlanPort> =
            config.ports.iter().map(|p| PlanPort { name: p.name.clone(), dpdk_port: p.dpdk_port }).collect();
        let index = |name: &str| {
            ports
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| anyhow!("{}: [forward] names an unknown port {name:?}", config.path.display()))
        };
        let mut pairs = Vec::new();
        for (a, b) in config.forward.iter().flat_map(|f| &f.pairs) {
            pairs.push((index(a)?, index(b)?));
        }
        Ok(RunPlan {
            eal_args: config.dpdk.eal_args.clone(),
            mbufs: config.dpdk.mbufs,
            busy_poll: config.dpdk.busy_poll,
            burst: config.dpdk.burst,
            ports,
            pairs,
            esp: crate::esp::EspPlan::from_config(config, neighbors)?,
            connections: config.connections.iter().map(|c| c.to_engine()).collect(),
            monitors: config.connections.iter().filter_map(|c| Some((c.name.clone(), c.monitor.clone()?))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn plan_follows_the_config() {
        let text = r#"
[dpdk]
eal_args = ["--no-huge", "-m", "1024"]
mbufs = 16383
burst = 16
sa_owner = "spi"
encrypt = "any-worker"

[[port]]
name = "outside"
dpdk_port = 1

[[port]]
name = "inside"
dpdk_port = 0

[forward]
pairs = [["inside", "outside"]]
"#;
        let (config, _) = Config::parse(text, Path::new("gw.toml")).expect("valid config");
        let plan = RunPlan::from_config(&config, &[]).expect("plan");
        assert_eq!(plan.eal_args, ["--no-huge", "-m", "1024"]);
        assert_eq!(plan.mbufs, 16383);
        assert!(!plan.busy_poll);
        assert_eq!(plan.burst, 16);
        assert_eq!(config.dpdk.sa_owner, controlplane::config::SaOwner::Spi);
        assert_eq!(config.dpdk.encrypt, controlplane::config::EncryptBy::AnyWorker);
        let default = Config::parse("[dpdk]\n", Path::new("gw.toml")).expect("valid config").0;
        assert_eq!(default.dpdk.encrypt, controlplane::config::EncryptBy::Owner);
        let err = Config::parse("[dpdk]\nencrypt = \"all\"\n", Path::new("gw.toml")).expect_err("an unknown choice");
        assert!(err.to_string().contains("gw.toml:2"), "{err}");
        assert_eq!(plan.ports.iter().map(|p| (p.name.as_str(), p.dpdk_port)).collect::<Vec<_>>(), [("outside", 1), ("inside", 0)]);
        assert_eq!(plan.pairs, [(1, 0)]);
    }
}
