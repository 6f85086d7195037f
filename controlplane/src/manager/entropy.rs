//! The engine's randomness in production: the OS generator (getrandom(2)).

use rand::rngs::OsRng;
use rand::TryRngCore;

use crate::ikev2::crypto::Entropy;

/// Nonces, SPIs, DH private values and jitter straight from the OS.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // Without OS randomness no key may be made: stopping is the only safe
        // answer (the kernel generator does not fail once seeded).
        if let Err(e) = OsRng.try_fill_bytes(buf) {
            panic!("the OS random generator failed ({e}): cannot make IKE keys");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_differently() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsEntropy.fill(&mut a);
        OsEntropy.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
