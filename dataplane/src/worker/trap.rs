//! A plaintext packet hit a trap policy: no SA yet for its connection. The
//! packet is dropped as `held` and its [`TrapId`] noted for the control
//! plane, which initiates the connection (RFC 4301 §5.1 "acquire"; strongSwan's
//! trap policies). Cold path: the note is the worker's [`NoteRing`], no wait,
//! allocation or lock; packets past the per-second budget are only counted.

use super::note_ring::{Note, NoteRing};
use crate::drop::DropReason;
use crate::sa::TrapId;
use crate::stats::CoreStats;

/// Trap notes a worker makes per second at most: the control plane needs one
/// per connection per negotiation, not one per packet.
pub const NOTICES_PER_SECOND: u64 = 64;

/// A worker's ring of trap hits.
pub type TrapNotices = NoteRing<TrapId>;

impl Note for TrapId {
    fn pack(self) -> [u64; 3] {
        [u64::from(self.0), 0, 0]
    }

    fn unpack([id, _, _]: [u64; 3]) -> Self {
        TrapId(id as u32)
    }
}

/// A packet matched trap `id`: note it; the caller drops it as the returned reason.
#[cold]
#[inline(never)]
pub(super) fn held(stats: &CoreStats, id: TrapId, now_ms: u64) -> DropReason {
    stats.trap().note(id, now_ms);
    DropReason::Held
}
