//! The ipsecgw binary.
#![forbid(unsafe_code)]

mod ike;
mod plan;
mod run;
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ike { config, commands } => {
            let Some(config) = load_config(&config) else { return ExitCode::FAILURE };
            match ike::run(&config, commands.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipsecgw: error: {}", format!("{e:#}").replace('\n', " "));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, busy_poll, eal_args } => {
            let Some(config) = load_config(&config) else { return ExitCode::FAILURE };
            let result = RunPlan::from_config(&config).and_then(|plan| {
                let busy = busy_poll || plan.busy_poll;
                run::run(plan, &eal_args, busy)
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
