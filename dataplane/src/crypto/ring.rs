//! ring 0.17 backend (`ring::aead::LessSafeKey`): BoringSSL-derived assembly
//! (AES-NI + PCLMUL/AVX for GCM, SIMD ChaCha20-Poly1305), picked at run time.
//!
//! ring keeps its expanded key inline in `LessSafeKey` and never wipes it, so the
//! key is held in `ipsec_mb_sys::WipeOnDrop`, which zeroes its bytes after drop.

use ::ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

use ipsec_mb_sys::WipeOnDrop;

use super::keyed::Keyed;
use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, SALT_LEN};

struct Ring(Keyed<WipeOnDrop<LessSafeKey>>);

pub(super) fn new(
    alg: Algorithm,
    key: &[u8],
    salt: [u8; SALT_LEN],
) -> Result<Box<dyn Aead>, KeyError> {
    let ring_alg = match alg {
        Algorithm::Aes128Gcm => &aead::AES_128_GCM,
        Algorithm::Aes256Gcm => &aead::AES_256_GCM,
        Algorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
    };
    let unbound = UnboundKey::new(ring_alg, key).map_err(|_| KeyError::Rejected {
        backend: Backend::Ring,
        alg,
    })?;
    Ok(Box::new(Ring(Keyed::new(
        WipeOnDrop::new(LessSafeKey::new(unbound)),
        salt,
        alg,
        Backend::Ring.name(),
    ))))
}

impl core::fmt::Debug for Ring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl Aead for Ring {
    fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    fn backend(&self) -> &'static str {
        Backend::Ring.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        self.0.seal_each(ops, |key, nonce, aad, data| {
            let tag = key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                data,
            )?;
            let mut out = [0u8; 16];
            out.copy_from_slice(tag.as_ref());
            Ok::<_, ::ring::error::Unspecified>(out)
        });
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        self.0
            .open_each(ops, results, |key, nonce, aad, data, tag| {
                let nonce = Nonce::assume_unique_for_key(nonce);
                key.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(*tag), data, 0..)
                    .is_ok()
            });
    }
}
