//! Our own ChaCha20-Poly1305 for AVX-512 (`chacha-avx512`, under dpdk-bindings/
//! because it holds the `unsafe` of its intrinsics): a burst's ChaCha20 blocks,
//! whichever packets they belong to, sixteen per pass in the lanes of 512-bit
//! registers, and Poly1305 for eight packets per register (IFMA). Written for short packets, where
//! one packet per call leaves most of a SIMD ChaCha20's lanes idle (perf/README.md,
//! "AEAD backends"). The key is wiped on drop by the crate, the salt by `Keyed`.

use chacha_avx512::ChaChaKey;

use super::keyed::{Keyed, NONCE_LEN};
use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, SALT_LEN, TAG_LEN};

/// Packets handed to the crate per call: a worker's burst.
const CALL: usize = 32;

struct ChaChaAvx512(Keyed<ChaChaKey>);

/// Whether this CPU has what the backend needs (AVX-512 F, BW and IFMA).
pub(super) fn available() -> bool {
    chacha_avx512::available()
}

pub(super) fn new(alg: Algorithm, key: &[u8], salt: [u8; SALT_LEN]) -> Result<Box<dyn Aead>, KeyError> {
    let backend = Backend::ChaChaAvx512;
    if alg != Algorithm::ChaCha20Poly1305 {
        return Err(KeyError::Unavailable { backend, alg });
    }
    let key = ChaChaKey::new(key)
        .map_err(|e| KeyError::keying(backend, alg, matches!(e, chacha_avx512::Error::KeyLength(_))))?;
    Ok(Box::new(ChaChaAvx512(Keyed::new(key, salt, alg, backend.name()))))
}

impl core::fmt::Debug for ChaChaAvx512 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl ChaChaAvx512 {
    /// Up to [`CALL`] ops as the crate's parallel arrays: nonces, AADs, data; then
    /// `f` runs on them.
    fn with_arrays(&self, ops: &mut [AeadOp<'_>], f: impl FnOnce(&[[u8; NONCE_LEN]], &[&[u8]], &mut [&mut [u8]])) {
        let n = ops.len().min(CALL);
        let mut nonces = [[0u8; NONCE_LEN]; CALL];
        let mut aads: [&[u8]; CALL] = [&[]; CALL];
        let mut data: [&mut [u8]; CALL] = Default::default();
        for (((op, nonce), aad), d) in ops.iter_mut().zip(&mut nonces).zip(&mut aads).zip(&mut data) {
            *nonce = self.0.nonce(&op.iv);
            *aad = op.aad;
            *d = &mut *op.data;
        }
        f(&nonces[..n], &aads[..n], &mut data[..n]);
    }
}

impl Aead for ChaChaAvx512 {
    fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    fn backend(&self) -> &'static str {
        Backend::ChaChaAvx512.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        for chunk in ops.chunks_mut(CALL) {
            let mut tags = [[0u8; TAG_LEN]; CALL];
            self.with_arrays(chunk, |nonces, aads, data| self.0.cipher.seal(nonces, aads, data, &mut tags));
            for (op, tag) in chunk.iter_mut().zip(tags) {
                *op.tag = tag;
            }
        }
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        for (chunk, results) in ops.chunks_mut(CALL).zip(results.chunks_mut(CALL)) {
            let mut tags = [[0u8; TAG_LEN]; CALL];
            for (op, tag) in chunk.iter().zip(&mut tags) {
                *tag = *op.tag;
            }
            let mut authentic = [false; CALL];
            self.with_arrays(chunk, |nonces, aads, data| {
                self.0.cipher.open(nonces, aads, data, &tags[..nonces.len()], &mut authentic);
            });
            for (r, ok) in results.iter_mut().zip(authentic) {
                *r = AuthError::unless(ok);
            }
        }
    }
}
