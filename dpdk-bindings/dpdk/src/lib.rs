//! Safe Rust API over DPDK: EAL, mempools, mbufs, ports, queues, rings, lcores.
//!
//! Ownership rules that make the API safe:
//! - [`Eal`] can be initialised once per process (a DPDK rule); everything else is created
//!   from a `&Eal`.
//! - [`Mbuf`] owns one packet buffer and frees it on drop. [`Burst`] is a fixed-size array of
//!   owned mbufs used for rx/tx/ring bursts: nothing allocates per burst.
//! - A [`Mempool`] or [`Ring`] that still has mbufs out when dropped is leaked on purpose
//!   rather than freed under them, and then [`Eal`] skips `rte_eal_cleanup` on drop.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment.

mod burst;
mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod packet;
mod port;
mod port_counters;
mod ring;

pub use burst::{Burst, Drain};
pub use eal::{Eal, FailedDevice};
pub use error::{Error, ErrorKind};
pub use lcore::{pause, tsc_cycles, tsc_hz, Launched, LcoreId};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use port_counters::{NicCounters, PortCounterReader};
pub use ring::{Ring, RingConsumer, RingProducer};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
