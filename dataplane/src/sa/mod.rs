//! SA tables: immutable snapshots (inbound SPI map + outbound SPD) published
//! to the workers RCU-style, per-SA runtime state that survives swaps, and the
//! control-plane API to change them atomically.
//!
//! Worker side, once per burst:
//! ```
//! # use dataplane::sa::{SaControl, Spi};
//! # use std::sync::Arc;
//! let mut ctl = SaControl::<&str, &str>::new(16);
//! let mut reader = ctl.reader(); // at worker start
//! let mut tx = ctl.transaction();
//! tx.add_inbound(Spi(0x1000), Arc::new("in-sa")).unwrap();
//! tx.commit().unwrap();
//! let table = reader.load(); // quiescent point + snapshot for this burst
//! assert_eq!(**table.inbound(Spi(0x1000)).unwrap(), "in-sa");
//! ```

mod control;
pub(crate) mod id;
mod publication;
mod rekey;
mod spi_map;
mod state;
mod table;
mod tombstone;

pub use control::{ControlStats, PolicyId, PolicySpec, SaControl, SaError, Transaction};
pub use id::{SaId, Spi};
pub use publication::{Published, Publisher, PublisherStats, Reader, ReaderFactory};
pub use rekey::{Rekey, Rekeyed};
pub use state::{LocalSaState, ResetState, SharedSaState, SlotReset};
pub use tombstone::{Tombstones, DEFAULT_CAPACITY as TOMBSTONE_CAPACITY, DEFAULT_MAX_AGE as TOMBSTONE_MAX_AGE};
pub use table::{Decision, InboundSa, OutboundSa, OutboundSpd, PolicyAction, SaRef, SaTable, TrapId};
