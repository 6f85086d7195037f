//! Backend selection and the one constructor callers use.

use super::{ipsec_mb, ring, rustcrypto, Aead, Algorithm, SALT_LEN};

/// Which implementation performs the AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The fastest backend available in this build on this CPU, chosen by the
    /// measurements in perf/README.md.
    Auto,
    /// RustCrypto `aes-gcm` / `chacha20poly1305`: portable, always available.
    RustCrypto,
    /// `ring` 0.17 (`ring::aead`).
    Ring,
    /// intel-ipsec-mb (libIPSec_MB) through `ipsec-mb-sys`.
    IpsecMb,
}

impl Backend {
    /// Every concrete backend (not `Auto`), in a stable order for tables.
    pub const ALL: [Backend; 3] = [Backend::RustCrypto, Backend::Ring, Backend::IpsecMb];

    /// Short name used in `show` output, benchmark tables and configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::RustCrypto => "rustcrypto",
            Backend::Ring => "ring",
            Backend::IpsecMb => "ipsec-mb",
        }
    }

    /// Whether this backend can key `alg` in this build on this CPU.
    pub fn is_available(self, alg: Algorithm) -> bool {
        match self {
            Backend::Auto | Backend::RustCrypto | Backend::Ring => true,
            Backend::IpsecMb => {
                let _ = alg;
                ipsec_mb::available()
            }
        }
    }

    /// The concrete backend `Auto` resolves to for `alg` on this CPU.
    pub fn resolve(self, alg: Algorithm) -> Backend {
        match self {
            Backend::Auto => {
                let _ = alg;
                Backend::RustCrypto
            }
            other => other,
        }
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Backend::Auto,
            Backend::RustCrypto,
            Backend::Ring,
            Backend::IpsecMb,
        ]
        .into_iter()
        .find(|b| b.name() == s)
        .ok_or(UnknownBackend)
    }
}

/// A backend name that is none of `auto`, `rustcrypto`, `ring`, `ipsec-mb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown AEAD backend (expected one of: auto, rustcrypto, ring, ipsec-mb)")]
pub struct UnknownBackend;

/// Why an AEAD instance could not be keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key material is not key || 4-byte salt for the algorithm (RFC 4106 §8.1,
    /// RFC 7634 §4).
    #[error("{alg:?} needs {expected} bytes of key material (key || salt), got {got}")]
    KeymatLength {
        /// The algorithm being keyed.
        alg: Algorithm,
        /// `alg.keymat_len()`.
        expected: usize,
        /// What the caller passed.
        got: usize,
    },
    /// The backend was not compiled in, its library is missing, or the CPU lacks
    /// what it needs.
    #[error("AEAD backend {backend} is not available for {alg:?} in this build/CPU")]
    Unavailable {
        /// The backend asked for.
        backend: Backend,
        /// The algorithm asked for.
        alg: Algorithm,
    },
    /// The backend rejected the key (should not happen with a correct length).
    #[error("AEAD backend {backend} rejected the key for {alg:?}")]
    Rejected {
        /// The backend asked for.
        backend: Backend,
        /// The algorithm asked for.
        alg: Algorithm,
    },
}

/// Split ESP key material into cipher key and salt after checking its length.
pub(super) fn split_keymat(
    alg: Algorithm,
    keymat: &[u8],
) -> Result<(&[u8], [u8; SALT_LEN]), KeyError> {
    if keymat.len() != alg.keymat_len() {
        return Err(KeyError::KeymatLength {
            alg,
            expected: alg.keymat_len(),
            got: keymat.len(),
        });
    }
    let (key, salt) = keymat.split_at(alg.key_len());
    let mut s = [0u8; SALT_LEN];
    s.copy_from_slice(salt);
    Ok((key, s))
}

/// Key an AEAD for one SA direction.
///
/// `keymat` is the ESP key material for this direction: cipher key followed by the
/// 4-byte salt (RFC 4106 §8.1 for AES-GCM, RFC 7634 §4 for ChaCha20-Poly1305), i.e.
/// 20 bytes for AES-128-GCM and 36 for AES-256-GCM / ChaCha20-Poly1305.
/// The returned instance zeroizes its key on drop and never prints it.
pub fn new_aead(
    alg: Algorithm,
    keymat: &[u8],
    backend: Backend,
) -> Result<Box<dyn Aead>, KeyError> {
    let (key, salt) = split_keymat(alg, keymat)?;
    let backend = backend.resolve(alg);
    if !backend.is_available(alg) {
        return Err(KeyError::Unavailable { backend, alg });
    }
    match backend {
        Backend::Auto | Backend::RustCrypto => rustcrypto::new(alg, key, salt),
        Backend::Ring => ring::new(alg, key, salt),
        Backend::IpsecMb => ipsec_mb::new(alg, key, salt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AeadOp, AuthError, TAG_LEN};

    const ALGS: [Algorithm; 3] = [
        Algorithm::Aes128Gcm,
        Algorithm::Aes256Gcm,
        Algorithm::ChaCha20Poly1305,
    ];

    fn keymat(alg: Algorithm) -> Vec<u8> {
        (0..alg.keymat_len()).map(|i| 0xA0 ^ i as u8).collect()
    }

    #[test]
    fn wrong_keymat_length_is_rejected() {
        for alg in ALGS {
            let short = &keymat(alg)[1..];
            let err = new_aead(alg, short, Backend::Auto).map(|_| ());
            assert_eq!(
                err,
                Err(KeyError::KeymatLength {
                    alg,
                    expected: alg.keymat_len(),
                    got: short.len()
                })
            );
        }
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        for alg in ALGS {
            for backend in Backend::ALL.into_iter().filter(|b| b.is_available(alg)) {
                // A key of a repeated, recognisable byte: neither its decimal nor hex form
                // may appear in the Debug output.
                let km = vec![0x5Au8; alg.keymat_len()];
                let aead = new_aead(alg, &km, backend).expect("available backend keys");
                let dbg = format!("{aead:?} {aead:#?}");
                assert!(
                    !dbg.contains("90") && !dbg.to_lowercase().contains("5a"),
                    "{dbg}"
                );
            }
        }
    }

    #[test]
    fn round_trip_and_tamper_every_backend() {
        for alg in ALGS {
            for backend in Backend::ALL.into_iter().filter(|b| b.is_available(alg)) {
                let aead = new_aead(alg, &keymat(alg), backend).expect("available backend keys");
                let plain: Vec<u8> = (0..77u8).collect();
                let mut data = plain.clone();
                let mut tag = [0u8; TAG_LEN];
                let aad = [1, 2, 3, 4, 0, 0, 0, 9];
                aead.seal(AeadOp {
                    iv: [7; 8],
                    aad: &aad,
                    data: &mut data,
                    tag: &mut tag,
                });
                assert_ne!(data, plain);
                let mut bad = data.clone();
                bad[5] ^= 1;
                let mut t = tag;
                assert_eq!(
                    aead.open(AeadOp {
                        iv: [7; 8],
                        aad: &aad,
                        data: &mut bad,
                        tag: &mut t
                    }),
                    Err(AuthError)
                );
                aead.open(AeadOp {
                    iv: [7; 8],
                    aad: &aad,
                    data: &mut data,
                    tag: &mut tag,
                })
                .expect("authentic packet opens");
                assert_eq!(data, plain, "{backend} {alg:?}");
            }
        }
    }

    #[test]
    fn backend_names_parse_back() {
        for b in [
            Backend::Auto,
            Backend::RustCrypto,
            Backend::Ring,
            Backend::IpsecMb,
        ] {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert_eq!("aesni".parse::<Backend>(), Err(UnknownBackend));
    }
}
