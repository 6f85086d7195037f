//! Operator subcommands (issue 7 item 2): `show`, `initiate`, `terminate`,
//! `rekey` talk to a running gateway over the control socket
//! ([`controlplane::api`]); `check-config` validates a file offline. The
//! server side (control socket, metrics page, log format) is started by
//! [`Control::start`] in `ipsecgw ike` and `ipsecgw run`.

mod check_config;
mod dataplane_view;
mod table;
mod test_tunnel;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use controlplane::api::{self, ApiServer, DataplaneView, Request};
use controlplane::manager::ManagerClient;
use controlplane::metrics::MetricsServer;

pub use check_config::check_config;
pub use dataplane_view::dataplane_view;
pub use test_tunnel::{test, TestTarget};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Options of the serving side, shared by `ike` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Control socket path (root-only, JSON lines) [default: /run/ipsecgw/ipsecgw.sock;
    /// if that one is busy the gateway runs without a socket, a given path must bind].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9469); off if not given.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as human text or one JSON object per line.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

/// Logs to stderr in the chosen format; level from `RUST_LOG` (default info).
/// Call before anything else initialises logging (later inits do nothing).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    let _ = match format {
        LogFormat::Human => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

/// The running control socket and metrics page; dropped at shutdown.
#[derive(Debug)]
pub struct Control {
    _api: Option<ApiServer>,
    _metrics: Option<MetricsServer>,
}

impl Control {
    pub fn start(args: &ControlArgs, manager: ManagerClient, dataplane: Option<Arc<dyn DataplaneView>>) -> anyhow::Result<Control> {
        let path = args.socket.clone().unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET));
        // Two gateways on one host (tests, namespaces) would fight over the default
        // path: the second runs without a socket rather than not at all.
        let api = match ApiServer::bind(&path, manager.clone(), dataplane.clone()) {
            Ok(a) => {
                tracing::info!("control socket on {}", path.display());
                Some(a)
            }
            Err(e) if args.socket.is_none() => {
                tracing::warn!("control socket {}: {e}; running without one (give --socket PATH)", path.display());
                None
            }
            Err(e) => return Err(e).with_context(|| format!("control socket {}", path.display())),
        };
        let metrics = match args.metrics_listen {
            Some(addr) => {
                let m = MetricsServer::bind(addr, manager, dataplane).with_context(|| format!("metrics on {addr}"))?;
                tracing::info!("metrics on http://{}/metrics", m.local_addr());
                Some(m)
            }
            None => None,
        };
        Ok(Control { _api: api, _metrics: metrics })
    }
}

/// Sends one request; prints the answer (JSON or table). Exit 1 on a refusal.
pub fn client(socket: &Path, request: &Request, json: bool) -> ExitCode {
    let response = match api::request(socket, request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipsecgw: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !response.ok {
        eprintln!("ipsecgw: error: {}", response.error.unwrap_or_default());
        return ExitCode::FAILURE;
    }
    let data = response.data.unwrap_or(serde_json::Value::Null);
    let text = if json {
        format!("{data}\n")
    } else {
        match request {
            Request::Show { what } => table::render(*what, &data),
            Request::Initiate { name } => {
                format!("initiating '{name}' (see `ipsecgw show connections` for the result)\n")
            }
            Request::Terminate { name } => {
                format!("terminated {} IKE SA(s) of '{name}'\n", data["count"])
            }
            Request::Rekey { name, ike } => {
                format!("rekeying {} {} of '{name}'\n", data["count"], if *ike { "IKE SA(s)" } else { "Child SA(s)" })
            }
            // `ipsecgw test tunnel` prints its own report (test_tunnel.rs).
            Request::TestTunnel { .. } => format!("{data}\n"),
        }
    };
    if emit(&text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes a command's output to stdout. A reader that went away (`ipsecgw show
/// drops | head -3`) is not an error, as for any Unix filter; any other write
/// error (a full disk) is reported and fails the command (false). `print!`
/// would panic on both.
pub fn emit(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            eprintln!("ipsecgw: error: cannot write the output: {e}");
            false
        }
    }
}

