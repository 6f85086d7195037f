//! One log line per engine event, in a `key=value` form that scripts can
//! grep (the interop test compares SPIs with strongSwan's). Keys are never
//! part of an event.

use crate::ikev2::{DownReason, Event, NatState};
use crate::selector::TrafficSelector;

fn list(ts: &[TrafficSelector]) -> String {
    ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn nat(n: NatState) -> &'static str {
    match (n.local_behind_nat, n.remote_behind_nat) {
        (false, false) => "none",
        (true, false) => "local",
        (false, true) => "remote",
        (true, true) => "both",
    }
}

fn reason(r: &DownReason) -> String {
    match r {
        DownReason::PeerUnreachable { to, retransmits } => format!("peer-unreachable(to {to} after {retransmits} retransmits)"),
        other => format!("{other:?}"),
    }
}

/// The line logged for an event.
pub fn event_line(e: &Event) -> String {
    match e {
        Event::IkeSaUp { ike_sa, connection, role, local, remote, proposal, nat: n, rekey_of } => format!(
            "IKE SA up: connection={connection} ike_sa={:016x} role={role:?} local={local} remote={remote} proposal={proposal} nat={} rekey_of={}",
            ike_sa.0,
            nat(*n),
            rekey_of.map_or("-".to_owned(), |r| format!("{:016x}", r.0))
        ),
        Event::IkeSaDown { ike_sa, connection, reason: r } => {
            format!("IKE SA down: connection={connection} ike_sa={:016x} reason={}", ike_sa.0, reason(r))
        }
        Event::ChildSaUp { ike_sa, child, connection, proposal, local_ts, remote_ts, inbound_spi, outbound_spi, encap, rekey_of } => format!(
            "CHILD SA up: connection={connection} ike_sa={:016x} child={} spi_in={inbound_spi} spi_out={outbound_spi} proposal={proposal} local_ts={} remote_ts={} encap={} rekey_of={}",
            ike_sa.0,
            child.0,
            list(local_ts),
            list(remote_ts),
            if *encap { "udp" } else { "esp" },
            rekey_of.map_or("-".to_owned(), |r| r.0.to_string())
        ),
        Event::ChildSaDown { ike_sa, child, connection, reason: r } => {
            format!("CHILD SA down: connection={connection} ike_sa={:016x} child={} reason={}", ike_sa.0, child.0, reason(r))
        }
        Event::KeGroupRetry { connection, sent, requested } => format!(
            "connection '{connection}': the responder asked for key exchange {requested:?} instead of {sent:?} (INVALID_KE_PAYLOAD); retried with it (one round trip more: put {requested:?} first to save it)"
        ),
        Event::KeGroupRequested { connection, peer, offered, requested } => format!(
            "connection '{connection}': {peer} offered key exchange {offered:?}; asked it for {requested:?} (INVALID_KE_PAYLOAD)"
        ),
        Event::PeerInvalidSpi { ike_sa, connection, spi, child } => format!(
            "connection '{connection}': ike_sa={:016x} peer reports INVALID_SPI for spi={spi} (RFC 7296 §3.10.1): {}",
            ike_sa.0,
            child.map_or("no Child SA of ours sends with it".to_owned(), |c| format!("our Child SA {} sends with it; the peer lost its inbound SA", c.0))
        ),
        Event::Held { connection } => format!(
            "connection '{connection}': peer dead, SAs removed; dpd action hold: its policies trap again, the next matching packet re-negotiates"
        ),
        Event::CookieRetry { connection } => format!("connection '{connection}': the responder asked for a cookie (RFC 7296 §2.6); retried with it"),
        Event::Failure(f) => format!("FAILURE: {f}"),
        Event::Dropped { from, exchange, reason } => format!("dropped IKE message from {from} ({exchange:?}): {reason:?}"),
    }
}

/// Logs to stderr with timestamps; the level comes from `RUST_LOG` (default
/// `info`). Safe to call more than once (later calls do nothing).
pub fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}
