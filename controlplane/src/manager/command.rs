//! Operator requests to the manager thread (for the control socket and
//! `ipsecgw` subcommands) and what they answer.

use std::time::SystemTime;

use crossbeam::channel::Sender;

use crate::ikev2::{IkeSaInfo, Stats};

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no connection named '{name}' (configured: {configured})")]
    UnknownConnection { name: String, configured: String },
    #[error("connection '{0}' is passive (role = \"passive\"): it never initiates; initiate from the peer")]
    Passive(String),
    #[error("connection '{0}' has no IKE SA")]
    NoIkeSa(String),
    #[error("the IKE manager thread is not running")]
    ManagerGone,
}

/// The last negotiation failure of a connection, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    pub at: SystemTime,
    /// The failure line (both sides' values where known).
    pub message: String,
    /// Failures seen since start.
    pub count: u64,
    /// Stable reason code of the last failure ([`crate::diagnosis::Reason`]).
    pub reason: crate::diagnosis::Reason,
    /// The operator line ([`crate::diagnosis::Diagnosis`]): field, both values, causes.
    pub diagnosis: String,
}

/// One connection for `ipsecgw show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub name: String,
    pub ike_sas: Vec<IkeSaInfo>,
    pub last_failure: Option<LastFailure>,
}

/// Everything `show` needs in one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub connections: Vec<ConnectionStatus>,
    /// Failures no connection could be named for (e.g. IKE_SA_INIT from an
    /// unknown address, an IKEv1 peer).
    pub unmatched_failure: Option<LastFailure>,
    pub stats: Stats,
    /// Negotiation failures since start, by reason (metrics).
    pub failures_by_reason: std::collections::BTreeMap<crate::diagnosis::Reason, u64>,
    /// ESP on unknown SPIs reported by the dataplane, per (peer, SPI).
    pub unknown_spis: Vec<super::UnknownSpiCount>,
    /// Unknown-SPI reports dropped because the manager's queue was full.
    pub unknown_spi_reports_dropped: u64,
}

/// A request to the manager thread; each carries where to answer.
#[derive(Debug)]
pub enum Command {
    Initiate { connection: String, reply: Sender<Result<(), CommandError>> },
    /// Trap: the dataplane saw traffic for the connection and no SA.
    Acquire { connection: String },
    /// Delete every IKE SA of the connection (tells the peer); answers how many.
    Terminate { connection: String, reply: Sender<Result<usize, CommandError>> },
    RekeyIke { connection: String, reply: Sender<Result<usize, CommandError>> },
    /// Rekey every active Child SA of the connection; answers how many.
    RekeyChild { connection: String, reply: Sender<Result<usize, CommandError>> },
    IkeSas { reply: Sender<Vec<IkeSaInfo>> },
    Status { reply: Sender<Status> },
    /// Stop the thread; with `delete`, IKE SAs are deleted first (the peer is
    /// told, RFC 7296 §1.4.1) and the thread waits up to a second for answers.
    Shutdown { delete: bool },
}
