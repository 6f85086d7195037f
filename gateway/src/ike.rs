//! `ipsecgw ike`: the IKE manager alone, on kernel UDP sockets (ports 500 and
//! 4500 of every connection's local address), without DPDK. Child SAs are only
//! logged (SPIs, algorithms, selectors; never keys): this is for testing the
//! control plane against strongSwan before the ESP worker carries traffic.
//!
//! Operator commands come as lines on a FIFO (`--commands PATH`), one of
//! `initiate NAME`, `terminate NAME`, `rekey-ike NAME`, `rekey-child NAME`,
//! `list`, `status`; the answers go to the log. SIGINT/SIGTERM delete every IKE
//! SA (the peers are told) and exit.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use controlplane::config::Config;
use controlplane::manager::{init_stderr_logging, Manager, ManagerClient, RecordingSaSink, UdpTransport};

/// Runs until SIGINT/SIGTERM.
pub fn run(config: &Config, commands: Option<&Path>, control: &crate::cli::ControlArgs) -> anyhow::Result<()> {
    init_stderr_logging();
    if config.connections.is_empty() {
        anyhow::bail!("{}: no [[connection]] in the config: add one (see examples/)", config.path.display());
    }
    let conns: Vec<_> = config.connections.iter().map(|c| c.to_engine()).collect();
    let mut addrs: Vec<IpAddr> = conns.iter().map(|c| c.local.ip()).collect();
    addrs.dedup();
    let transport = UdpTransport::bind(&addrs).context("binding the IKE ports (run as root, and the addresses must exist here)")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let handle = Manager::spawn(conns, Box::new(transport), Box::new(RecordingSaSink::new())).context("starting the IKE manager")?;
    let control = crate::cli::Control::start(control, handle.client(), None)?;
    eprintln!("ipsecgw: IKE manager running on {} (UDP 500/4500), {} connection(s)", list(&addrs), config.connections.len());
    if let Some(path) = commands {
        let (h, path) = (handle.client(), path.to_path_buf());
        std::thread::Builder::new().name("ike-commands".into()).spawn(move || command_loop(&h, &path))?;
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("ipsecgw: stopping: deleting IKE SAs");
    drop(control);
    handle.shutdown(true);
    Ok(())
}

fn list(addrs: &[IpAddr]) -> String {
    addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Reads commands from a FIFO, reopening it after each writer closes.
fn command_loop(h: &ManagerClient, path: &PathBuf) {
    loop {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("ipsecgw: cannot open the command FIFO {}: {e}; commands disabled", path.display());
                return;
            }
        };
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if !line.is_empty() {
                eprintln!("ipsecgw: command '{line}': {}", command(h, line));
            }
        }
    }
}

fn command(h: &ManagerClient, line: &str) -> String {
    let mut words = line.split_whitespace();
    let (verb, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let counted = |r: Result<usize, controlplane::manager::CommandError>| match r {
        Ok(n) => format!("ok ({n})"),
        Err(e) => format!("error: {e}"),
    };
    match verb {
        "initiate" => match h.initiate(name) {
            Ok(()) => "ok".into(),
            Err(e) => format!("error: {e}"),
        },
        "terminate" => counted(h.terminate(name)),
        "rekey-ike" => counted(h.rekey_ike(name)),
        "rekey-child" => counted(h.rekey_child(name)),
        "list" => match h.ike_sas() {
            Ok(sas) => sas
                .iter()
                .map(|s| {
                    let children: Vec<String> = s
                        .children
                        .iter()
                        .map(|c| format!("child={} spi_in={} spi_out={} active={}", c.id.0, c.inbound_spi, c.outbound_spi, c.active))
                        .collect();
                    format!(
                        "[ike_sa={:016x} connection={} role={:?} established={} {}->{} {}]",
                        s.id.0,
                        s.connection,
                        s.role,
                        s.established,
                        s.local,
                        s.remote,
                        children.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        },
        "status" => match h.status() {
            Ok(s) => s
                .connections
                .iter()
                .map(|c| {
                    let failure = c.last_failure.as_ref().map_or("none".to_owned(), |f| format!("{} (x{})", f.message, f.count));
                    format!("[connection={} ike_sas={} last_failure={failure}]", c.name, c.ike_sas.len())
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        },
        _ => "error: unknown command (initiate|terminate|rekey-ike|rekey-child NAME, list, status)".into(),
    }
}
