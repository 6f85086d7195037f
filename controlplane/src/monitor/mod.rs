//! Tunnel monitoring (issue 7 item 3): an ICMP echo through a tunnel at an
//! interval, a per-connection state machine, and what to do when the tunnel
//! stops carrying traffic (`[connection.monitor]`, CONFIG-SCHEMA.md).
//!
//! DPD (RFC 7296 §2.4) only proves the peer's IKE daemon answers; a peer whose
//! IKE is alive but whose ESP path or inside network is broken keeps its SAs.
//! The monitor tests the data path itself: an echo request from
//! `monitor.source` (an address of ours inside `local_ts`) to
//! `monitor.address` (inside `remote_ts`), ESP-protected on the connection's
//! own outbound SA, whose reply must come back decapsulated.
//!
//! - [`Machine`]: sans-IO (fed `now`, returns what to send and do), so every
//!   transition is tested with a virtual clock: `unknown` until the first
//!   reply, `up`, `degraded` after a lost probe, `down` after `threshold`
//!   lost in a row (then the action), `recovering` on replies after `down`,
//!   `up` again after `threshold` replies in a row (then the fail-back).
//! - [`echo`]: the probe packets (RFC 792 / RFC 4443 §4.1 echo request, and
//!   parsing the reply).
//!
//! The I/O half (injecting probes into the DPDK worker, receiving the punted
//! replies, moving policies to the backup) is the gateway's
//! (`gateway/src/monitor.rs`), which documents why probes are sent on the
//! connection's SA rather than looked up in the SPD.

pub mod echo;
mod machine;

pub use machine::{Act, Machine, MonitorState, Output, Settings, Transition};
