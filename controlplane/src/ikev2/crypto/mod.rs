//! Cryptography for IKE itself (not ESP): key exchange, PRF and prf+, the IKE
//! and Child SA key schedules, the SK payload AEAD, PSK authentication and
//! NAT detection hashes. Randomness is injected through [`Entropy`].

mod dh;
mod keymat;
mod prf;
mod sk;

pub use dh::{public_len, KeyExchange, SUPPORTED_GROUPS};
pub use keymat::{child_keymat, psk_auth, ChildKeys, IkeKeys, DirectionKeys};
pub use prf::Prf;
pub use sk::{nat_detection_hash, open_sk, seal_sk, SkCipher, SK_IV_LEN};

use crate::proposal::{DhGroup, Encr, PrfId};

/// The engine's only source of randomness (nonces, SPIs, DH private values,
/// lifetime jitter). Production uses the OS generator; tests use
/// [`DeterministicEntropy`] so every run is the same.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// A reproducible generator for tests and fuzzing: HMAC-SHA-256 in counter
/// mode over a seed. NOT for production keys.
#[derive(Debug, Clone)]
pub struct DeterministicEntropy {
    seed: Vec<u8>,
    counter: u64,
}

impl DeterministicEntropy {
    pub fn new(seed: &[u8]) -> Self {
        DeterministicEntropy { seed: seed.to_vec(), counter: 0 }
    }
}

impl Entropy for DeterministicEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        let prf = Prf::new(PrfId::HmacSha2_256);
        for chunk in buf.chunks_mut(32) {
            self.counter += 1;
            let block = prf.compute(&self.seed, &self.counter.to_be_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// Failures of the IKE cryptography. None carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("key exchange method {0:?} is not implemented (supported: ECP_256, ECP_384, CURVE_25519, MODP_2048)")]
    UnsupportedGroup(DhGroup),
    #[error("PRF {0:?} is not implemented (supported: HMAC-SHA2-256/384/512)")]
    UnsupportedPrf(PrfId),
    #[error("encryption algorithm {0} is not implemented for IKE (supported: AES-GCM-16 128/256, ChaCha20-Poly1305)")]
    UnsupportedEncr(Encr),
    #[error("peer's {group:?} public value ({len} bytes) is invalid")]
    BadPublicValue { group: DhGroup, len: usize },
    #[error("SK payload failed integrity check")]
    IntegrityFailed,
    #[error("SK payload is malformed: {0}")]
    MalformedSk(&'static str),
    #[error("prf+ asked for {0} bytes, more than 255 blocks")]
    PrfPlusTooLong(usize),
}
