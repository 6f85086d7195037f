//! The ipsecgw binary.
#![forbid(unsafe_code)]

mod esp;
mod handoff;
mod cli;
mod ike;
mod monitor;
mod plan;
mod run;
mod tunnel;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use controlplane::config::Config;

use crate::plan::RunPlan;

/// DPDK IPsec gateway.
#[derive(Debug, Parser)]
#[command(name = "ipsecgw", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: boot DPDK, set up the ports, poll until Ctrl-C / SIGTERM.
    Run {
        /// Config file (TOML, see CONFIG-SCHEMA.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Poll at 100% CPU (no idle back-off).
        #[arg(long)]
        busy_poll: bool,
        /// A neighbour that is never resolved by ARP/ND, IP=MAC (repeatable; ESP mode,
        /// e.g. benchmarks into net_null).
        #[arg(long = "neighbor", value_name = "IP=MAC")]
        neighbors: Vec<String>,
        /// Control socket, metrics and log format (served when the config has [[connection]]s).
        #[command(flatten)]
        control: cli::ControlArgs,
        /// EAL arguments, appended to [dpdk].eal_args (after `--`).
        #[arg(last = true)]
        eal_args: Vec<String>,
    },
    /// IKE only, on kernel UDP sockets without DPDK: Child SAs are logged, not installed (interop tests).
    Ike {
        /// Config file (TOML); only [[connection]] sections are used.
        #[arg(long, short)]
        config: PathBuf,
        /// FIFO to read commands from (initiate|terminate|rekey-ike|rekey-child NAME, list, status).
        #[arg(long)]
        commands: Option<PathBuf>,
        #[command(flatten)]
        control: cli::ControlArgs,
    },
    /// Show state of a running gateway (through its control socket).
    Show {
        what: controlplane::api::ShowWhat,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = controlplane::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Start a connection's IKE SA and first Child SA.
    Initiate {
        name: String,
        #[arg(long, default_value = controlplane::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Delete a connection's IKE SAs (the peer is told).
    Terminate {
        name: String,
        #[arg(long, default_value = controlplane::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Rekey a connection's Child SAs (or, with --ike, its IKE SA).
    Rekey {
        name: String,
        #[arg(long)]
        ike: bool,
        #[arg(long, default_value = controlplane::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Validate a config file: every error as file:line:col; exit 1 on errors.
    CheckConfig { file: PathBuf },
    /// Test a running gateway's tunnels: `test tunnel NAME` sends probes through it.
    Test {
        #[command(subcommand)]
        what: cli::TestTarget,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Show { what, json, socket } => {
            cli::client(&socket, &controlplane::api::Request::Show { what }, json)
        }
        Command::Initiate { name, socket } => cli::client(&socket, &controlplane::api::Request::Initiate { name }, false),
        Command::Terminate { name, socket } => cli::client(&socket, &controlplane::api::Request::Terminate { name }, false),
        Command::Rekey { name, ike, socket } => cli::client(&socket, &controlplane::api::Request::Rekey { name, ike }, false),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Test { what } => cli::test(&what),
        Command::Ike { config, commands, control } => {
            cli::init_logging(control.log_format);
            let Some(config) = load_config(&config) else { return ExitCode::FAILURE };
            match ike::run(&config, commands.as_deref(), &control) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipsecgw: error: {}", format!("{e:#}").replace('\n', " "));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, busy_poll, neighbors, eal_args, control } => {
            cli::init_logging(control.log_format);
            let Some(config) = load_config(&config) else { return ExitCode::FAILURE };
            let result = neighbors
                .iter()
                .map(|n| esp::parse_neighbor(n))
                .collect::<anyhow::Result<Vec<_>>>()
                .and_then(|n| RunPlan::from_config(&config, &n))
                .and_then(|plan| {
                let busy = busy_poll || plan.busy_poll;
                run::run(plan, &eal_args, busy, &control)
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One line: cause and what to do.
                    eprintln!("ipsecgw: error: {}", format!("{e:#}").replace('\n', " "));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Loads and validates the config; prints warnings, and every error on its own line.
fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                eprintln!("ipsecgw: {w}");
            }
            Some(config)
        }
        Err(errors) => {
            for w in &errors.warnings {
                eprintln!("ipsecgw: {w}");
            }
            for e in &errors.errors {
                eprintln!("ipsecgw: error: {e}");
            }
            None
        }
    }
}
