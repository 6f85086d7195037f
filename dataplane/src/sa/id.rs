//! Identifiers: the SPI on the wire and the stable slot id of an SA's runtime state.

use std::collections::VecDeque;
use std::fmt;

/// The SPI newtype is the wire one (RFC 4303 §2.1). SPIs 0..=255 are never
/// installed, which lets the inbound table use 0 as its empty-bucket marker.
pub use crate::wire::Spi;

/// Stable id of one SA for as long as it is installed: the index of its slot in the
/// runtime-state arrays ([`super::SharedSaState`], [`super::LocalSaState`], the
/// per-SA counters in [`crate::stats`]) plus an incarnation number that changes every
/// time the slot is reused, so per-core state can tell a new SA from an old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId {
    slot: u32,
    incarnation: u32,
}

impl SaId {
    /// Index into runtime-state arrays (`< capacity` of the tables).
    #[inline]
    pub const fn slot(self) -> usize {
        self.slot as usize
    }

    /// Bumped each time the slot is given to a new SA (never 0 for an allocated id).
    #[inline]
    pub const fn incarnation(self) -> u32 {
        self.incarnation
    }
}

impl fmt::Display for SaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sa#{}.{}", self.slot, self.incarnation)
    }
}

/// Hands out [`SaId`] slots. A removed SA's slot is not reusable at once: workers may
/// still hold a snapshot that names it, so it waits in `deferred` until the
/// publication generation that removed it has been passed by every worker.
#[derive(Debug)]
pub(crate) struct SlotAllocator {
    capacity: u32,
    incarnations: Vec<u32>,
    free: Vec<u32>,
    /// (generation after which reuse is safe, slots), in generation order.
    deferred: VecDeque<(u64, Vec<u32>)>,
}

impl SlotAllocator {
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            capacity,
            incarnations: Vec::new(),
            free: Vec::new(),
            deferred: VecDeque::new(),
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn allocate(&mut self) -> Option<SaId> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.incarnations.len()).ok()?;
                if slot >= self.capacity {
                    return None;
                }
                self.incarnations.push(0);
                slot
            }
        };
        let inc = &mut self.incarnations[slot as usize];
        *inc = inc.wrapping_add(1).max(1);
        Some(SaId {
            slot,
            incarnation: *inc,
        })
    }

    /// Undo an allocation that was never published (transaction rollback).
    pub(crate) fn unallocate(&mut self, id: SaId) {
        self.free.push(id.slot);
    }

    /// The slots become reusable once every worker has passed `generation`.
    pub(crate) fn release_after(&mut self, generation: u64, slots: Vec<u32>) {
        if !slots.is_empty() {
            self.deferred.push_back((generation, slots));
        }
    }

    /// Move deferred slots whose generation every worker has passed to the free list.
    pub(crate) fn reclaim(&mut self, passed: u64) {
        while let Some((generation, _)) = self.deferred.front() {
            if *generation > passed {
                break;
            }
            if let Some((_, slots)) = self.deferred.pop_front() {
                self.free.extend(slots);
            }
        }
    }

    /// Slots in use or waiting for reuse.
    pub(crate) fn in_use(&self) -> usize {
        self.incarnations.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_only_after_their_generation_passed() {
        let mut a = SlotAllocator::new(2);
        let x = a.allocate().expect("slot");
        let y = a.allocate().expect("slot");
        assert_ne!(x.slot(), y.slot());
        assert!(a.allocate().is_none(), "capacity is 2");
        a.release_after(5, vec![x.slot]);
        a.reclaim(4);
        assert!(a.allocate().is_none(), "generation 5 not passed yet");
        a.reclaim(5);
        let z = a.allocate().expect("slot freed");
        assert_eq!(z.slot(), x.slot());
        assert_ne!(z.incarnation(), x.incarnation());
    }
}
