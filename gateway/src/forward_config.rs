//! TEMPORARY — to be replaced by `controlplane::config::Config::load` (CONFIG-SCHEMA.md)
//! once it lands; delete this module then.
//!
//! A minimal parse of the `[dpdk]`, `[[port]]` and `[forward]` sections, enough for the
//! issue-4 forwarding skeleton. Other sections are ignored here.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::plan::{PlanPort, RunPlan};

#[derive(Debug, Deserialize)]
struct File {
    dpdk: Option<Dpdk>,
    #[serde(default)]
    port: Vec<Port>,
    forward: Option<Forward>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dpdk {
    #[serde(default)]
    eal_args: Vec<String>,
    mbufs: Option<u32>,
    busy_poll: Option<bool>,
    burst: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct Port {
    name: String,
    dpdk_port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Forward {
    #[serde(default)]
    pairs: Vec<[String; 2]>,
}

/// Reads `path` into a run plan.
pub fn load(path: &Path) -> Result<RunPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the config file", path.display()))?;
    let file: File = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            bail!("{}:{line}:{col}: {}", path.display(), e.message().trim().replace('\n', " "));
        }
    };
    let dpdk = file.dpdk.unwrap_or(Dpdk { eal_args: Vec::new(), mbufs: None, busy_poll: None, burst: None });
    let ports: Vec<PlanPort> = file.port.into_iter().map(|p| PlanPort { name: p.name, dpdk_port: p.dpdk_port }).collect();
    let mut pairs = Vec::new();
    for [a, b] in file.forward.map(|f| f.pairs).unwrap_or_default() {
        let find = |n: &str| {
            ports.iter().position(|p| p.name == n).with_context(|| {
                let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                format!("{}: [forward] pairs names port {n:?}, but the [[port]] names are {names:?}", path.display())
            })
        };
        pairs.push((find(&a)?, find(&b)?));
    }
    let _ = dpdk.burst; // the burst size is fixed at compile time (worker::BURST) for now
    Ok(RunPlan { eal_args: dpdk.eal_args, mbufs: dpdk.mbufs, busy_poll: dpdk.busy_poll.unwrap_or(false), ports, pairs })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
