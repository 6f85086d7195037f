//! Control-plane side of the SA tables: the master copy of SAs and policies,
//! atomic transactions that publish a new snapshot, and deferred removal for
//! make-before-break rekeys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::id::{SaId, SlotAllocator, Spi};
use super::publication::{Published, Publisher, PublisherStats, Reader, ReaderFactory};
use super::spi_map::SpiMapBuilder;
use super::state::SlotReset;
use super::table::{InboundSa, OutboundSpd, PolicyAction, SaRef, SaTable};
use super::tombstone::{TombstoneLog, Tombstones};
use crate::spd::{Selector, Spd, SpdError, Strategy};

/// Stable handle of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(u64);

/// A policy as the control plane states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Lower is checked first; equal priorities keep insertion order.
    pub priority: u32,
    /// What traffic the policy covers.
    pub selector: Selector,
    /// What to do with it.
    pub action: PolicyAction<SaId>,
}

/// Why a table update was refused. The transaction is rolled back: nothing of
/// it is published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    /// SPIs 0..=255 are not for SAs (RFC 4303 §2.1).
    #[error("SPI {0} is reserved (0-255); allocate an SPI of 256 or more")]
    ReservedSpi(Spi),
    /// The SPI is already installed.
    #[error("inbound SPI {0} is already installed; remove it first or use replace_inbound")]
    DuplicateSpi(Spi),
    /// No inbound SA with this SPI.
    #[error("no inbound SA with SPI {0}")]
    UnknownSpi(Spi),
    /// No outbound SA with this id.
    #[error("no outbound SA {0}")]
    UnknownSa(SaId),
    /// No policy with this id.
    #[error("no policy {0:?}")]
    UnknownPolicy(PolicyId),
    /// A policy protects with an SA that is not (or no longer) installed.
    #[error("policy {policy:?} protects with outbound SA {sa}, which is not installed")]
    DanglingPolicy {
        /// The policy.
        policy: PolicyId,
        /// The missing SA.
        sa: SaId,
    },
    /// Every SA slot is in use (or waiting for workers to pass a grace period).
    #[error("SA table full ({capacity} slots); raise the capacity or remove SAs")]
    TableFull {
        /// Configured capacity.
        capacity: u32,
    },
    /// A selector is malformed.
    #[error(transparent)]
    Selector(#[from] SpdError),
}

/// Runtime counters of the control side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlStats {
    /// Publication counters.
    pub publisher: PublisherStats,
    /// SA slots allocated (including those waiting for reuse).
    pub slots_in_use: usize,
    /// Inbound SAs waiting for their grace period to end.
    pub scheduled_removals: usize,
    /// Removed inbound SPIs remembered (drop reason `sa_deleted`).
    pub tombstones: usize,
}

/// Master copy and publisher of the SA tables; owned by the control-plane thread.
pub struct SaControl<I, O> {
    publisher: Publisher<SaTable<I, O>>,
    inbound: SpiMapBuilder<InboundSa<I>>,
    outbound: HashMap<SaId, Arc<O>>,
    /// Ordered SPD: (priority, id) → spec; ids grow, so ties keep insertion order.
    policies: BTreeMap<(u32, PolicyId), PolicySpec>,
    policy_priority: HashMap<PolicyId, u32>,
    next_policy: u64,
    slots: SlotAllocator,
    slot_hooks: Vec<Arc<dyn SlotReset>>,
    /// Inbound SAs to remove once their grace time is over (make-before-break).
    removals: Vec<(Instant, Spi, SaId)>,
    /// Inbound SPIs removed recently, published with every snapshot.
    tombstones: TombstoneLog,
    strategy: Strategy,
}

impl<I: Send + Sync, O: Send + Sync> std::fmt::Debug for SaControl<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaControl")
            .field("inbound", &self.inbound.len())
            .field("outbound", &self.outbound.len())
            .field("policies", &self.policies.len())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl<I: Send + Sync, O: Send + Sync> SaControl<I, O> {
    /// Empty tables with room for `capacity` SAs (inbound + outbound).
    pub fn new(capacity: u32) -> Self {
        Self::with_strategy(capacity, Strategy::Auto)
    }

    /// Same, with a forced SPD strategy (benchmarks).
    pub fn with_strategy(capacity: u32, strategy: Strategy) -> Self {
        let mut inbound = SpiMapBuilder::new();
        let empty = SaTable {
            inbound: inbound.build(None),
            spd: Arc::new(Spd::empty()),
            deleted: Tombstones::default(),
        };
        Self {
            publisher: Publisher::new(empty),
            inbound,
            outbound: HashMap::new(),
            policies: BTreeMap::new(),
            policy_priority: HashMap::new(),
            next_policy: 1,
            slots: SlotAllocator::new(capacity),
            slot_hooks: Vec::new(),
            removals: Vec::new(),
            tombstones: TombstoneLog::default(),
            strategy,
        }
    }

    /// Register runtime state to reset whenever a slot is given to a new SA
    /// (before the snapshot naming it is published).
    pub fn add_slot_hook(&mut self, hook: Arc<dyn SlotReset>) {
        self.slot_hooks.push(hook);
    }

    /// A worker's handle on the published tables (call at worker start).
    pub fn reader(&self) -> Reader<SaTable<I, O>> {
        self.publisher.reader()
    }

    /// A `Send + Sync` handle that registers workers later (lcore launch).
    pub fn readers(&self) -> ReaderFactory<SaTable<I, O>> {
        self.publisher.readers()
    }

    /// Start an atomic update. Dropping it without `commit` rolls it back.
    pub fn transaction(&mut self) -> Transaction<'_, I, O> {
        Transaction {
            ctl: self,
            undo: Vec::new(),
            allocated: Vec::new(),
            freed: Vec::new(),
            inbound_changes: Vec::new(),
            spd_dirty: false,
            done: false,
        }
    }

    /// Free retired snapshots and make removed SAs' slots reusable once every
    /// worker passed a quiescent point; forget removed SPIs past their age
    /// (publishing when some went: the control plane calls this periodically,
    /// so they go even when nothing else changes). Returns the number of
    /// snapshots freed.
    pub fn reclaim(&mut self) -> usize {
        let freed = self.reclaim_slots();
        if self.tombstones.prune(Instant::now()) > 0 {
            // An empty transaction rebuilds nothing that can fail; should it
            // fail, the old set stays, which only names a few drops.
            self.transaction().commit().ok();
        }
        freed
    }

    fn reclaim_slots(&mut self) -> usize {
        let freed = self.publisher.reclaim();
        let passed = self.publisher.oldest_in_use();
        self.slots.reclaim(passed);
        freed
    }

    /// The current snapshot (for `show` and tests).
    pub fn current(&self) -> Arc<Published<SaTable<I, O>>> {
        self.publisher.current()
    }

    /// Generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.publisher.generation()
    }

    /// Inbound SA by SPI in the master copy.
    pub fn inbound(&self, spi: Spi) -> Option<&InboundSa<I>> {
        self.inbound.get(spi.0)
    }

    /// Outbound SA by id in the master copy.
    pub fn outbound(&self, id: SaId) -> Option<&Arc<O>> {
        self.outbound.get(&id)
    }

    /// A policy by id.
    pub fn policy(&self, id: PolicyId) -> Option<&PolicySpec> {
        let priority = *self.policy_priority.get(&id)?;
        self.policies.get(&(priority, id))
    }

    /// Counts.
    pub fn stats(&self) -> ControlStats {
        ControlStats {
            publisher: self.publisher.stats(),
            slots_in_use: self.slots.in_use(),
            scheduled_removals: self.removals.len(),
            tombstones: self.tombstones.len(),
        }
    }

    /// How many removed inbound SPIs are remembered, and for how long
    /// (defaults: [`super::TOMBSTONE_CAPACITY`], [`super::TOMBSTONE_MAX_AGE`]).
    /// Takes effect with the next publication.
    pub fn set_tombstone_limits(&mut self, capacity: usize, max_age: Duration) {
        self.tombstones.set_limits(capacity, max_age);
    }

    /// Forget removed SPIs older than the age limit at `now` (publications
    /// prune too, with the current time); publishes when some went. Returns
    /// how many went.
    pub fn prune_tombstones(&mut self, now: Instant) -> Result<usize, SaError> {
        let gone = self.tombstones.prune(now);
        if gone > 0 {
            self.transaction().commit()?;
        }
        Ok(gone)
    }

    /// Remove inbound SA `spi` at `at` (the old SA of a rekey: the peer may still
    /// send with it until it switched, RFC 7296 §2.8). Done by [`SaControl::expire`].
    pub fn schedule_inbound_removal(&mut self, spi: Spi, at: Instant) -> Result<(), SaError> {
        let sa = self.inbound.get(spi.0).ok_or(SaError::UnknownSpi(spi))?;
        self.removals.push((at, spi, sa.id()));
        Ok(())
    }

    /// Remove every scheduled inbound SA whose time has come, in one publication.
    /// Returns how many were removed.
    pub fn expire(&mut self, now: Instant) -> Result<usize, SaError> {
        let (due, later): (Vec<_>, Vec<_>) = self.removals.drain(..).partition(|r| r.0 <= now);
        self.removals = later;
        let mut tx = self.transaction();
        let mut n = 0;
        for (_, spi, id) in due {
            // Skip if the SPI was removed, or removed and reinstalled, meanwhile.
            if tx.ctl.inbound.get(spi.0).is_some_and(|sa| sa.id() == id) {
                tx.remove_inbound(spi)?;
                n += 1;
            }
        }
        if n > 0 {
            tx.commit()?;
        }
        Ok(n)
    }

    fn build_spd(&self) -> Result<OutboundSpd<O>, SaError> {
        let resolved = self.policies.iter().map(|((_, pid), spec)| {
            let action = match spec.action {
                PolicyAction::Protect(id) => match self.outbound.get(&id) {
                    Some(sa) => PolicyAction::Protect(SaRef::new(id, Arc::clone(sa))),
                    None => {
                        return Err(SaError::DanglingPolicy {
                            policy: *pid,
                            sa: id,
                        })
                    }
                },
                PolicyAction::Bypass => PolicyAction::Bypass,
                PolicyAction::Discard => PolicyAction::Discard,
                PolicyAction::Trap(t) => PolicyAction::Trap(t),
            };
            Ok((spec.selector, action))
        });
        let resolved: Vec<_> = resolved.collect::<Result<_, _>>()?;
        Ok(Spd::build(resolved, self.strategy)?)
    }
}

enum Undo<I, O> {
    Inbound(Spi, Option<InboundSa<I>>),
    Outbound(SaId, Option<Arc<O>>),
    Policy(PolicyId, Option<PolicySpec>),
}

/// An atomic update of the SA tables: every change or none becomes visible to
/// the workers, in one snapshot swap. Dropped without [`Transaction::commit`]
/// (or when `commit` fails), it is rolled back.
pub struct Transaction<'a, I: Send + Sync, O: Send + Sync> {
    ctl: &'a mut SaControl<I, O>,
    undo: Vec<Undo<I, O>>,
    allocated: Vec<SaId>,
    freed: Vec<u32>,
    /// Inbound SPIs added (`true`) or removed (`false`), in order: the
    /// tombstones change only if the transaction commits.
    inbound_changes: Vec<(Spi, bool)>,
    spd_dirty: bool,
    done: bool,
}

impl<I: Send + Sync, O: Send + Sync> std::fmt::Debug for Transaction<'_, I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("changes", &self.undo.len())
            .finish_non_exhaustive()
    }
}

impl<I: Send + Sync, O: Send + Sync> Transaction<'_, I, O> {
    fn allocate(&mut self) -> Result<SaId, SaError> {
        let id = self.ctl.slots.allocate().ok_or(SaError::TableFull {
            capacity: self.ctl.slots.capacity(),
        })?;
        self.allocated.push(id);
        Ok(id)
    }

    /// Install a new inbound SA; returns its runtime-state id.
    pub fn add_inbound(&mut self, spi: Spi, sa: Arc<I>) -> Result<SaId, SaError> {
        if spi.is_reserved() {
            return Err(SaError::ReservedSpi(spi));
        }
        if self.ctl.inbound.get(spi.0).is_some() {
            return Err(SaError::DuplicateSpi(spi));
        }
        let id = self.allocate()?;
        self.ctl.inbound.insert(spi.0, SaRef::new(id, sa));
        self.undo.push(Undo::Inbound(spi, None));
        self.inbound_changes.push((spi, true));
        Ok(id)
    }

    /// Replace the immutable data of an installed inbound SA (e.g. a new NAT-T
    /// port, RFC 3948 §4); its id, and so its replay window, stay.
    pub fn replace_inbound(&mut self, spi: Spi, sa: Arc<I>) -> Result<SaId, SaError> {
        let id = self
            .ctl
            .inbound
            .get(spi.0)
            .map(SaRef::id)
            .ok_or(SaError::UnknownSpi(spi))?;
        let prev = self.ctl.inbound.insert(spi.0, SaRef::new(id, sa));
        self.undo.push(Undo::Inbound(spi, prev));
        Ok(id)
    }

    /// Remove an inbound SA. Its slot is reused only after every worker has
    /// passed the snapshot that drops it.
    pub fn remove_inbound(&mut self, spi: Spi) -> Result<(), SaError> {
        let prev = self
            .ctl
            .inbound
            .remove(spi.0)
            .ok_or(SaError::UnknownSpi(spi))?;
        self.freed.push(prev.id().slot() as u32);
        self.undo.push(Undo::Inbound(spi, Some(prev)));
        self.inbound_changes.push((spi, false));
        Ok(())
    }

    /// Install an outbound SA (not used until a policy protects with it).
    pub fn add_outbound(&mut self, sa: Arc<O>) -> Result<SaId, SaError> {
        let id = self.allocate()?;
        self.ctl.outbound.insert(id, sa);
        self.undo.push(Undo::Outbound(id, None));
        Ok(id)
    }

    /// Replace an outbound SA's immutable data (e.g. its outer header after the
    /// peer's NAT mapping moved); id and sequence counter stay.
    pub fn replace_outbound(&mut self, id: SaId, sa: Arc<O>) -> Result<(), SaError> {
        if !self.ctl.outbound.contains_key(&id) {
            return Err(SaError::UnknownSa(id));
        }
        let prev = self.ctl.outbound.insert(id, sa);
        self.undo.push(Undo::Outbound(id, prev));
        self.spd_dirty = true;
        Ok(())
    }

    /// Remove an outbound SA; `commit` fails if a policy still protects with it.
    pub fn remove_outbound(&mut self, id: SaId) -> Result<(), SaError> {
        let prev = self
            .ctl
            .outbound
            .remove(&id)
            .ok_or(SaError::UnknownSa(id))?;
        self.freed.push(id.slot() as u32);
        self.undo.push(Undo::Outbound(id, Some(prev)));
        self.spd_dirty = true;
        Ok(())
    }

    /// Add a policy; `commit` fails if it protects with an SA that is not installed.
    pub fn add_policy(&mut self, spec: PolicySpec) -> Result<PolicyId, SaError> {
        // Validate now so the error points at this call.
        Spd::build([(spec.selector, ())], Strategy::Linear)?;
        let id = PolicyId(self.ctl.next_policy);
        self.ctl.next_policy += 1;
        self.ctl.policy_priority.insert(id, spec.priority);
        self.ctl.policies.insert((spec.priority, id), spec);
        self.undo.push(Undo::Policy(id, None));
        self.spd_dirty = true;
        Ok(id)
    }

    /// Point a policy at another action (the outbound switch of a rekey).
    pub fn set_policy_action(
        &mut self,
        id: PolicyId,
        action: PolicyAction<SaId>,
    ) -> Result<(), SaError> {
        let priority = *self
            .ctl
            .policy_priority
            .get(&id)
            .ok_or(SaError::UnknownPolicy(id))?;
        let spec = self
            .ctl
            .policies
            .get_mut(&(priority, id))
            .ok_or(SaError::UnknownPolicy(id))?;
        let prev = std::mem::replace(&mut spec.action, action);
        let prev = PolicySpec {
            action: prev,
            ..spec.clone()
        };
        self.undo.push(Undo::Policy(id, Some(prev)));
        self.spd_dirty = true;
        Ok(())
    }

    /// Remove a policy.
    pub fn remove_policy(&mut self, id: PolicyId) -> Result<(), SaError> {
        let priority = self
            .ctl
            .policy_priority
            .remove(&id)
            .ok_or(SaError::UnknownPolicy(id))?;
        let prev = self.ctl.policies.remove(&(priority, id));
        self.undo.push(Undo::Policy(id, prev));
        self.spd_dirty = true;
        Ok(())
    }

    /// Ids of the policies that currently protect with `sa`.
    pub fn policies_using(&self, sa: SaId) -> Vec<PolicyId> {
        self.ctl
            .policies
            .iter()
            .filter(|(_, spec)| spec.action == PolicyAction::Protect(sa))
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// The action a policy has now (including this transaction's changes).
    pub fn policy_action(&self, id: PolicyId) -> Option<&PolicyAction<SaId>> {
        self.ctl.policy(id).map(|p| &p.action)
    }

    /// Validate, build and publish the new snapshot; returns its generation.
    pub fn commit(mut self) -> Result<u64, SaError> {
        let spd = if self.spd_dirty {
            Arc::new(self.ctl.build_spd()?)
        } else {
            Arc::clone(&self.ctl.current().spd)
        };
        // New SAs start from fresh runtime state: reset before any worker can
        // see their ids (their slots are unused: freed only after a grace).
        for id in &self.allocated {
            for hook in &self.ctl.slot_hooks {
                hook.reset_slot(*id);
            }
        }
        let previous = self.ctl.current();
        let inbound = self.ctl.inbound.build(Some(&previous.inbound));
        drop(previous);
        let now = Instant::now();
        let log = &mut self.ctl.tombstones;
        log.prune(now);
        for (spi, added) in self.inbound_changes.drain(..) {
            if added {
                log.unbury(spi);
            } else {
                log.bury(spi, now);
            }
        }
        let deleted = log.publish();
        let generation = self.ctl.publisher.publish(SaTable { inbound, spd, deleted });
        let freed = std::mem::take(&mut self.freed);
        self.ctl.slots.release_after(generation, freed);
        self.done = true;
        self.ctl.reclaim_slots();
        Ok(generation)
    }

    fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Inbound(spi, Some(prev)) => {
                    self.ctl.inbound.insert(spi.0, prev);
                }
                Undo::Inbound(spi, None) => {
                    self.ctl.inbound.remove(spi.0);
                }
                Undo::Outbound(id, Some(prev)) => {
                    self.ctl.outbound.insert(id, prev);
                }
                Undo::Outbound(id, None) => {
                    self.ctl.outbound.remove(&id);
                }
                Undo::Policy(id, prev) => {
                    if let Some(priority) = self.ctl.policy_priority.remove(&id) {
                        self.ctl.policies.remove(&(priority, id));
                    }
                    if let Some(spec) = prev {
                        self.ctl.policy_priority.insert(id, spec.priority);
                        self.ctl.policies.insert((spec.priority, id), spec);
                    }
                }
            }
        }
        for id in self.allocated.drain(..) {
            self.ctl.slots.unallocate(id);
        }
    }
}

impl<I: Send + Sync, O: Send + Sync> Drop for Transaction<'_, I, O> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback();
        }
    }
}
