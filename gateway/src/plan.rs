//! What `ipsecgw run` needs from the config, independent of how the config file is parsed.

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
    /// Mempool size, if set.
    pub mbufs: Option<u32>,
    /// Poll without idle back-off.
    pub busy_poll: bool,
    /// Ports in config order.
    pub ports: Vec<PlanPort>,
    /// Forwarding pairs as indexes into `ports` (both directions).
    pub pairs: Vec<(usize, usize)>,
}
