//! Our own AES-GCM for x86-64 (`aesni-gcm`, under dpdk-bindings/ because it holds
//! the `unsafe` of its intrinsics): AES-NI rounds for up to 8 blocks side by side
//! and GHASH with one PCLMULQDQ reduction per 8 blocks, one call per packet (with
//! VAES, two blocks per instruction). It was written for ESP's short packets, where
//! the libraries' per-call set-up dominates, and with VAES it is the fastest here up
//! to ~2 KB (perf/README.md, "AEAD backends"; four short packets at a time: in one
//! register's lanes with AVX-512, in two pairs of 256-bit lanes with VAES alone). AES-GCM only; the key schedule is wiped on
//! drop by the crate, the salt by `Keyed`.

use aesni_gcm::GcmKey;

use super::keyed::Keyed;
use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, SALT_LEN};

struct AesNi(Keyed<GcmKey>);

/// Whether this CPU has what the backend needs (AES-NI, PCLMULQDQ, SSE4.1, AVX).
pub(super) fn available() -> bool {
    aesni_gcm::available()
}

pub(super) fn new(
    alg: Algorithm,
    key: &[u8],
    salt: [u8; SALT_LEN],
) -> Result<Box<dyn Aead>, KeyError> {
    let err = |e| KeyError::keying(Backend::AesNi, alg, matches!(e, aesni_gcm::Error::KeyLength(_)));
    if alg == Algorithm::ChaCha20Poly1305 {
        return Err(KeyError::Unavailable {
            backend: Backend::AesNi,
            alg,
        });
    }
    let key = GcmKey::new(key).map_err(err)?;
    Ok(Box::new(AesNi(Keyed::new(
        key,
        salt,
        alg,
        Backend::AesNi.name(),
    ))))
}

impl core::fmt::Debug for AesNi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl Aead for AesNi {
    fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    fn backend(&self) -> &'static str {
        Backend::AesNi.name()
    }

    fn seal(&self, op: AeadOp<'_>) {
        *op.tag = self.0.cipher.seal(&self.0.nonce(&op.iv), op.aad, op.data);
    }

    fn open(&self, op: AeadOp<'_>) -> Result<(), AuthError> {
        AuthError::unless(self.0.cipher.open(&self.0.nonce(&op.iv), op.aad, op.data, op.tag))
    }

    /// Packets go through in fours ([`GcmKey::seal4`]), then pairs
    /// ([`GcmKey::seal2`]): short ones run their AES rounds side by side.
    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        let mut quads = ops.chunks_exact_mut(4);
        for quad in quads.by_ref() {
            if let [a, b, c, d] = quad {
                let nonce = [self.0.nonce(&a.iv), self.0.nonce(&b.iv), self.0.nonce(&c.iv), self.0.nonce(&d.iv)];
                [*a.tag, *b.tag, *c.tag, *d.tag] = self.0.cipher.seal4(
                    [&nonce[0], &nonce[1], &nonce[2], &nonce[3]],
                    [a.aad, b.aad, c.aad, d.aad],
                    [&mut *a.data, &mut *b.data, &mut *c.data, &mut *d.data],
                );
            }
        }
        let mut pairs = quads.into_remainder().chunks_exact_mut(2);
        for pair in pairs.by_ref() {
            if let [a, b] = pair {
                let nonce = [self.0.nonce(&a.iv), self.0.nonce(&b.iv)];
                [*a.tag, *b.tag] = self.0.cipher.seal2(
                    [&nonce[0], &nonce[1]],
                    [a.aad, b.aad],
                    [&mut *a.data, &mut *b.data],
                );
            }
        }
        self.0
            .seal_each(pairs.into_remainder(), |key, nonce, aad, data| {
                Ok::<_, core::convert::Infallible>(key.seal(&nonce, aad, data))
            });
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        let n = ops.len().min(results.len());
        let (ops, results) = (&mut ops[..n], &mut results[..n]);
        let mut quads = ops.chunks_exact_mut(4);
        let mut quad_verdicts = results.chunks_exact_mut(4);
        for (quad, verdict) in quads.by_ref().zip(quad_verdicts.by_ref()) {
            if let ([a, b, c, d], [ra, rb, rc, rd]) = (quad, verdict) {
                let nonce = [self.0.nonce(&a.iv), self.0.nonce(&b.iv), self.0.nonce(&c.iv), self.0.nonce(&d.iv)];
                let ok = self.0.cipher.open4(
                    [&nonce[0], &nonce[1], &nonce[2], &nonce[3]],
                    [a.aad, b.aad, c.aad, d.aad],
                    [&mut *a.data, &mut *b.data, &mut *c.data, &mut *d.data],
                    [&*a.tag, &*b.tag, &*c.tag, &*d.tag],
                );
                [*ra, *rb, *rc, *rd] = ok.map(AuthError::unless);
            }
        }
        let mut pairs = quads.into_remainder().chunks_exact_mut(2);
        let mut verdicts = quad_verdicts.into_remainder().chunks_exact_mut(2);
        for (pair, verdict) in pairs.by_ref().zip(verdicts.by_ref()) {
            if let ([a, b], [ra, rb]) = (pair, verdict) {
                let nonce = [self.0.nonce(&a.iv), self.0.nonce(&b.iv)];
                let ok = self.0.cipher.open2(
                    [&nonce[0], &nonce[1]],
                    [a.aad, b.aad],
                    [&mut *a.data, &mut *b.data],
                    [&*a.tag, &*b.tag],
                );
                [*ra, *rb] = ok.map(AuthError::unless);
            }
        }
        self.0.open_each(
            pairs.into_remainder(),
            verdicts.into_remainder(),
            |key, nonce, aad, data, tag| key.open(&nonce, aad, data, tag),
        );
    }
}
