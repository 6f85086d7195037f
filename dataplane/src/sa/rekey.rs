//! Make-before-break rekey of a child SA pair (RFC 7296 §2.8, §1.3.3):
//! 1. install the new inbound SA (the peer may start using it as soon as it
//!    has the CREATE_CHILD_SA response);
//! 2. switch the policies to the new outbound SA and remove the old outbound SA;
//! 3. keep the old inbound SA for a grace period (packets the peer sent before it
//!    switched are still in flight), then remove it ([`SaControl::expire`]).
//!
//! Each step is its own publication, so at every instant a packet of either
//! SA finds an SA: no packet lost to the rekey.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::{PolicyId, SaControl, SaError};
use super::id::{SaId, Spi};
use super::table::PolicyAction;

/// What to rekey and with what.
#[derive(Debug)]
pub struct Rekey<I, O> {
    /// The inbound SA being replaced.
    pub old_spi: Spi,
    /// SPI of the new inbound SA.
    pub new_spi: Spi,
    /// New inbound SA data.
    pub new_inbound: Arc<I>,
    /// New outbound SA data.
    pub new_outbound: Arc<O>,
    /// Policies to move to the new outbound SA.
    pub policies: Vec<PolicyId>,
    /// How long the old inbound SA stays.
    pub grace: Duration,
}

/// Ids of the SAs a rekey installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// New inbound SA.
    pub inbound: SaId,
    /// New outbound SA.
    pub outbound: SaId,
    /// When the old inbound SA goes.
    pub old_inbound_removal: Instant,
}

impl<I: Send + Sync, O: Send + Sync> SaControl<I, O> {
    /// Step 1: install the new inbound SA (one publication).
    pub fn install_inbound(&mut self, spi: Spi, sa: Arc<I>) -> Result<SaId, SaError> {
        let mut tx = self.transaction();
        let id = tx.add_inbound(spi, sa)?;
        tx.commit()?;
        Ok(id)
    }

    /// Step 2: install `sa`, point `policies` at it and remove the outbound SAs
    /// they used that no other policy still uses (one publication).
    pub fn switch_outbound(&mut self, policies: &[PolicyId], sa: Arc<O>) -> Result<SaId, SaError> {
        let mut tx = self.transaction();
        let new = tx.add_outbound(sa)?;
        let mut old = Vec::new();
        for &pid in policies {
            match tx.policy_action(pid) {
                Some(PolicyAction::Protect(prev)) => old.push(*prev),
                Some(_) => {}
                None => return Err(SaError::UnknownPolicy(pid)),
            }
            tx.set_policy_action(pid, PolicyAction::Protect(new))?;
        }
        old.sort_unstable();
        old.dedup();
        for id in old {
            if tx.policies_using(id).is_empty() {
                tx.remove_outbound(id)?;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    /// All three steps; step 3 is scheduled at `now + grace`. If step 2 fails,
    /// the new inbound SA is removed again and the old pair stays as it was.
    pub fn rekey(&mut self, rekey: Rekey<I, O>, now: Instant) -> Result<Rekeyed, SaError> {
        if self.inbound(rekey.old_spi).is_none() {
            return Err(SaError::UnknownSpi(rekey.old_spi));
        }
        let inbound = self.install_inbound(rekey.new_spi, rekey.new_inbound)?;
        let outbound = match self.switch_outbound(&rekey.policies, rekey.new_outbound) {
            Ok(id) => id,
            Err(e) => {
                let mut tx = self.transaction();
                tx.remove_inbound(rekey.new_spi)?;
                tx.commit()?;
                return Err(e);
            }
        };
        let at = now + rekey.grace;
        self.schedule_inbound_removal(rekey.old_spi, at)?;
        Ok(Rekeyed {
            inbound,
            outbound,
            old_inbound_removal: at,
        })
    }
}
