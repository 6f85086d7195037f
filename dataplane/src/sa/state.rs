//! Per-SA mutable runtime state, kept outside the snapshots and indexed by
//! [`SaId`] slot so it survives every table swap (DPDK lib/ipsec and VPP keep
//! the same split: read-mostly SA data vs. hot, cache-aligned runtime state).
//!
//! Two shapes:
//! - [`SharedSaState`]: one cache-padded slot per SA shared by all workers, for
//!   state several cores touch with atomics (the outbound sequence counter,
//!   reserved once per burst with one `fetch_add`).
//! - [`LocalSaState`]: one array per worker, plain `&mut` access, for state a
//!   single core owns (the inbound replay window: the SA's owning worker,
//!   worker/handoff.rs). It rebuilds a slot when it sees the slot's new incarnation.

use crossbeam::utils::CachePadded;

use super::id::SaId;

/// Runtime state that must be reset when its slot is given to a new SA.
/// [`super::SaControl::add_slot_hook`] calls it before the SA is published.
pub trait SlotReset: Send + Sync {
    /// Reset `id`'s slot to the state of a brand new SA.
    fn reset_slot(&self, id: SaId);
}

/// Shared state that can reset itself through `&self` (atomics).
pub trait ResetState: Send + Sync {
    /// Back to the initial value.
    fn reset(&self);
}

impl ResetState for std::sync::atomic::AtomicU64 {
    fn reset(&self) {
        self.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One cache-padded `S` per SA slot, shared by all workers.
#[derive(Debug)]
pub struct SharedSaState<S> {
    slots: Box<[CachePadded<S>]>,
}

impl<S: Default> SharedSaState<S> {
    /// `capacity` slots (use the tables' capacity).
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity)
                .map(|_| CachePadded::new(S::default()))
                .collect(),
        }
    }
}

impl<S> SharedSaState<S> {
    /// The state of `id`, `None` if the id is beyond this array's capacity.
    #[inline]
    pub fn get(&self, id: SaId) -> Option<&S> {
        self.slots.get(id.slot()).map(|s| &**s)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

impl<S: ResetState> SlotReset for SharedSaState<S> {
    fn reset_slot(&self, id: SaId) {
        if let Some(s) = self.get(id) {
            s.reset();
        }
    }
}

/// One worker's own `S` per SA slot. Allocate it with the tables' capacity at
/// worker start: it never grows on the fast path.
#[derive(Debug)]
pub struct LocalSaState<S> {
    /// (incarnation the state belongs to, state); `None` = never used.
    slots: Box<[Option<(u32, S)>]>,
}

impl<S> LocalSaState<S> {
    /// `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity).map(|_| None).collect(),
        }
    }

    /// The state of `id`; built with `init` (e.g. `|| sa.new_state()`) on the
    /// SA's first packet on this core, or when the slot last held an older SA.
    /// `None` if the id is beyond capacity.
    #[inline]
    pub fn get_or_init(&mut self, id: SaId, init: impl FnOnce() -> S) -> Option<&mut S> {
        let slot = self.slots.get_mut(id.slot())?;
        match slot {
            Some((incarnation, _)) if *incarnation == id.incarnation() => {}
            _ => *slot = Some((id.incarnation(), init())),
        }
        slot.as_mut().map(|(_, s)| s)
    }

    /// Forget the state of `id`'s slot (e.g. when this core saw the SA removed).
    pub fn clear(&mut self, id: SaId) {
        if let Some(slot) = self.slots.get_mut(id.slot()) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::id::SlotAllocator;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn local_state_resets_on_new_incarnation() {
        let mut alloc = SlotAllocator::new(1);
        let first = alloc.allocate().expect("slot");
        let mut st = LocalSaState::<u64>::new(1);
        *st.get_or_init(first, || 0).expect("in range") = 42;
        assert_eq!(*st.get_or_init(first, || 0).expect("in range"), 42);
        alloc.release_after(1, vec![first.slot() as u32]);
        alloc.reclaim(1);
        let second = alloc.allocate().expect("slot reused");
        assert_eq!(second.slot(), first.slot());
        assert_eq!(
            *st.get_or_init(second, || 7).expect("in range"),
            7,
            "new SA, new state"
        );
    }

    #[test]
    fn shared_state_reset_and_padding() {
        let mut alloc = SlotAllocator::new(4);
        let id = alloc.allocate().expect("slot");
        let st = SharedSaState::<AtomicU64>::new(4);
        st.get(id)
            .expect("in range")
            .fetch_add(32, Ordering::Relaxed);
        st.reset_slot(id);
        assert_eq!(st.get(id).expect("in range").load(Ordering::Relaxed), 0);
        assert!(std::mem::size_of::<CachePadded<AtomicU64>>() >= 64);
    }
}
