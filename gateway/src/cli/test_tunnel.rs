//! `ipsecgw test tunnel NAME`: probes through a connection's tunnel, sent by
//! the running gateway's tunnel monitor (gateway/src/monitor.rs); prints what
//! was sent and received, the round-trip times and a verdict naming what
//! failed. Exit status 0 only when every probe was answered.

use std::path::Path;
use std::process::ExitCode;

use controlplane::api::{self, Request, TunnelTestView};

/// What `test` can test.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TestTarget {
    /// Send ICMP echo probes from monitor.source to monitor.address through the
    /// connection's outbound SA and report.
    Tunnel {
        name: String,
        /// Probes to send (1-10).
        #[arg(long, short = 'n', default_value_t = api::DEFAULT_TEST_PROBES)]
        count: u32,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = api::DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
    },
}

/// Runs a `test` subcommand against the gateway at its socket.
pub fn test(target: &TestTarget) -> ExitCode {
    let TestTarget::Tunnel { name, count, json, socket } = target;
    run(socket, name, *count, *json)
}

fn run(socket: &Path, name: &str, count: u32, json: bool) -> ExitCode {
    let request = Request::TestTunnel { name: name.to_owned(), count: Some(count) };
    let answer = api::request(socket, &request).map_err(|e| e.to_string()).and_then(|r| match r {
        api::Response { ok: true, data, .. } => Ok(data.unwrap_or_default()),
        api::Response { error, .. } => Err(error.unwrap_or_default()),
    });
    let data = match answer {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ipsecgw: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let view: TunnelTestView = match serde_json::from_value(data.clone()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ipsecgw: error: unexpected answer from the gateway ({e}): {data}");
            return ExitCode::FAILURE;
        }
    };
    let written = super::emit(&if json { format!("{data}\n") } else { render(&view) });
    if written && view.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn render(v: &TunnelTestView) -> String {
    let rtt = if v.rtt_us.is_empty() {
        "-".to_owned()
    } else {
        let (min, max) = (v.rtt_us.iter().min().copied().unwrap_or(0), v.rtt_us.iter().max().copied().unwrap_or(0));
        let avg = v.rtt_us.iter().sum::<u64>() / v.rtt_us.len() as u64;
        format!("min {min} us, avg {avg} us, max {max} us")
    };
    format!(
        "tunnel {}: {} -> {} on outbound SPI {}\nsent {}, received {}, lost {}\nrtt {rtt}\n{}\n",
        v.connection,
        v.source,
        v.address,
        v.spi_out,
        v.sent,
        v.received,
        v.sent.saturating_sub(v.received),
        v.verdict
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_counts_and_verdict() {
        let v = TunnelTestView {
            connection: "primary".into(),
            source: "10.2.0.1".into(),
            address: "10.1.0.1".into(),
            spi_out: "0xc0ffee01".into(),
            sent: 3,
            received: 2,
            rtt_us: vec![300, 500],
            ok: false,
            verdict: "DEGRADED: 2 of 3".into(),
        };
        let s = render(&v);
        assert!(s.contains("sent 3, received 2, lost 1"), "{s}");
        assert!(s.contains("min 300 us, avg 400 us, max 500 us"), "{s}");
        assert!(s.ends_with("DEGRADED: 2 of 3\n"));
    }
}
