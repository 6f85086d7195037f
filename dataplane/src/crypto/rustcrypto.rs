//! RustCrypto backend: `aes-gcm` 0.11 (AES-NI/VAES + CLMUL picked at run time by the
//! crate's `cpufeatures` detection) and `chacha20poly1305` 0.11. Portable fallback.
//! The ciphers wipe their round keys on drop (crate feature `zeroize`).

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;

use super::keyed::Keyed;
use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, SALT_LEN};

/// A RustCrypto AEAD with 96-bit nonces and 128-bit tags.
struct RustCrypto<C>(Keyed<C>);

pub(super) fn new(
    alg: Algorithm,
    key: &[u8],
    salt: [u8; SALT_LEN],
) -> Result<Box<dyn Aead>, KeyError> {
    fn keyed<C: KeyInit>(
        alg: Algorithm,
        key: &[u8],
        salt: [u8; SALT_LEN],
    ) -> Result<RustCrypto<C>, KeyError> {
        let cipher = C::new_from_slice(key).map_err(|_| KeyError::Rejected {
            backend: Backend::RustCrypto,
            alg,
        })?;
        Ok(RustCrypto(Keyed::new(
            cipher,
            salt,
            alg,
            Backend::RustCrypto.name(),
        )))
    }
    Ok(match alg {
        Algorithm::Aes128Gcm => Box::new(keyed::<Aes128Gcm>(alg, key, salt)?),
        Algorithm::Aes256Gcm => Box::new(keyed::<Aes256Gcm>(alg, key, salt)?),
        Algorithm::ChaCha20Poly1305 => Box::new(keyed::<ChaCha20Poly1305>(alg, key, salt)?),
    })
}

impl<C> core::fmt::Debug for RustCrypto<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl<C> Aead for RustCrypto<C>
where
    C: AeadInOut<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    fn backend(&self) -> &'static str {
        Backend::RustCrypto.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        self.0.seal_each(ops, |c, nonce, aad, data| {
            c.encrypt_inout_detached(&Array::from(nonce), aad, data.into())
                .map(Into::into)
        });
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        self.0.open_each(ops, results, |c, nonce, aad, data, tag| {
            let tag = Array::<u8, U16>::from(*tag);
            c.decrypt_inout_detached(&Array::from(nonce), aad, data.into(), &tag)
                .is_ok()
        });
    }
}
