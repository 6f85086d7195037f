//! RustCrypto backend: `aes-gcm` 0.11 (AES-NI/VAES + CLMUL picked at run time by the
//! crate's `cpufeatures` detection) and `chacha20poly1305` 0.11. Portable fallback.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::Zeroizing;

use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, IV_LEN, SALT_LEN};

/// One keyed RustCrypto cipher plus the ESP salt. The ciphers zeroize their
/// round keys on drop (crate feature `zeroize`); the salt is wiped by `Zeroizing`.
struct RustCrypto<C> {
    cipher: C,
    salt: Zeroizing<[u8; SALT_LEN]>,
    alg: Algorithm,
}

pub(super) fn new(alg: Algorithm, key: &[u8], salt: [u8; SALT_LEN]) -> Result<Box<dyn Aead>, KeyError> {
    let rejected = |_| KeyError::Rejected { backend: Backend::RustCrypto, alg };
    let salt = Zeroizing::new(salt);
    Ok(match alg {
        Algorithm::Aes128Gcm => {
            Box::new(RustCrypto { cipher: Aes128Gcm::new_from_slice(key).map_err(rejected)?, salt, alg })
        }
        Algorithm::Aes256Gcm => {
            Box::new(RustCrypto { cipher: Aes256Gcm::new_from_slice(key).map_err(rejected)?, salt, alg })
        }
        Algorithm::ChaCha20Poly1305 => Box::new(RustCrypto {
            cipher: ChaCha20Poly1305::new_from_slice(key).map_err(rejected)?,
            salt,
            alg,
        }),
    })
}

impl<C> RustCrypto<C> {
    /// RFC 4106 §4 / RFC 7634 §2: nonce = salt || explicit IV.
    fn nonce(&self, iv: &[u8; IV_LEN]) -> Array<u8, U12> {
        let mut n = [0u8; SALT_LEN + IV_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt[..]);
        n[SALT_LEN..].copy_from_slice(iv);
        Array::from(n)
    }
}

impl<C> core::fmt::Debug for RustCrypto<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RustCrypto").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl<C> Aead for RustCrypto<C>
where
    C: AeadInOut<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn backend(&self) -> &'static str {
        Backend::RustCrypto.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        for op in ops.iter_mut() {
            let nonce = self.nonce(&op.iv);
            match self.cipher.encrypt_inout_detached(&nonce, op.aad, (&mut *op.data).into()) {
                Ok(tag) => op.tag.copy_from_slice(&tag),
                // Only reachable for messages > 2^36 bytes, far beyond any packet; fail
                // closed so a caller that ignores it cannot send plaintext.
                Err(_) => {
                    op.data.fill(0);
                    op.tag.fill(0);
                }
            }
        }
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        for (op, result) in ops.iter_mut().zip(results.iter_mut()) {
            let nonce = self.nonce(&op.iv);
            let tag = Array::<u8, U16>::from(*op.tag);
            *result = self
                .cipher
                .decrypt_inout_detached(&nonce, op.aad, (&mut *op.data).into(), &tag)
                .map_err(|_| AuthError);
        }
    }
}
