//! intel-ipsec-mb backend through `ipsec-mb-sys` (the only crate with the `unsafe`).
//!
//! AES-GCM uses the library's precomputed-key one-shot functions (no per-thread
//! state); ChaCha20-Poly1305 uses its job API on a per-thread manager, so a worker
//! never locks. The SIMD path (SSE/AVX/AVX2/AVX-512) is chosen once per process
//! from the CPU features. Key material is wiped on drop by `ipsec-mb-sys`.

use ipsec_mb_sys::{AeadBuffer, AeadParts, ChaChaPolyKey, GcmKey};

use super::{Aead, AeadOp, Algorithm, AuthError, Backend, KeyError, SALT_LEN};

impl AeadBuffer for AeadOp<'_> {
    fn parts(&mut self) -> AeadParts<'_> {
        AeadParts {
            iv: &self.iv,
            aad: self.aad,
            data: self.data,
            tag: self.tag,
        }
    }
}

#[derive(Debug)]
enum Key {
    Gcm(GcmKey),
    ChaChaPoly(ChaChaPolyKey),
}

#[derive(Debug)]
struct IpsecMb {
    key: Key,
    alg: Algorithm,
}

/// The intel-ipsec-mb SIMD path this process uses, if the library is usable.
pub fn ipsec_mb_arch() -> Option<ipsec_mb_sys::Arch> {
    ipsec_mb_sys::arch().ok()
}

/// [`ipsec_mb_arch`] for people: the SIMD path's name, or "unavailable".
pub fn ipsec_mb_path() -> String {
    ipsec_mb_arch().map_or_else(|| "unavailable".to_owned(), |a| a.to_string())
}

/// Call once at the start of each worker thread: creates the thread's
/// intel-ipsec-mb manager (used by its ChaCha20-Poly1305 job API) now, so the
/// first burst does not allocate. A no-op without the library.
pub fn prepare_thread() {
    // Without the library (or on a CPU it cannot run on) there is nothing to prepare;
    // keying an ipsec-mb AEAD reports that as `KeyError::Unavailable`.
    let _ = ipsec_mb_sys::warm_up();
}

/// Whether the library is built in and its SIMD path uses AES-NI on this CPU
/// (the no-AES-NI fallback is slower than the other backends, so it is never offered).
pub(super) fn available() -> bool {
    matches!(ipsec_mb_sys::arch(), Ok(a) if a != ipsec_mb_sys::Arch::NoAesni)
}

pub(super) fn new(
    alg: Algorithm,
    key: &[u8],
    salt: [u8; SALT_LEN],
) -> Result<Box<dyn Aead>, KeyError> {
    let err = |e| KeyError::keying(Backend::IpsecMb, alg, matches!(e, ipsec_mb_sys::Error::KeyLength(_)));
    let key = match alg {
        Algorithm::Aes128Gcm | Algorithm::Aes256Gcm => {
            Key::Gcm(GcmKey::new(key, salt).map_err(err)?)
        }
        Algorithm::ChaCha20Poly1305 => Key::ChaChaPoly(ChaChaPolyKey::new(key, salt).map_err(err)?),
    };
    Ok(Box::new(IpsecMb { key, alg }))
}

impl Aead for IpsecMb {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn backend(&self) -> &'static str {
        Backend::IpsecMb.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        match &self.key {
            Key::Gcm(k) => k.seal_burst(ops),
            Key::ChaChaPoly(k) => k.seal_burst(ops),
        }
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        // Ops without a result slot are not opened (the trait asks for enough slots).
        let n = ops.len().min(results.len());
        let ops = &mut ops[..n];
        let mut verdict =
            |i: usize, ok: bool| results[i] = AuthError::unless(ok);
        match &self.key {
            Key::Gcm(k) => k.open_burst(ops, &mut verdict),
            Key::ChaChaPoly(k) => k.open_burst(ops, &mut verdict),
        }
    }
}
