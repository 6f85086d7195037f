//! FFI to intel-ipsec-mb (libIPSec_MB 1.3) for the ESP AEADs, and the small safe
//! API the dataplane uses: [`GcmKey`] (AES-128/256-GCM) and [`ChaChaPolyKey`]
//! (ChaCha20-Poly1305), each sealing/opening a whole burst of [`AeadBuffer`]s.
//!
//! * AES-GCM goes through the library's direct, precomputed-key functions
//!   (`gcm128_enc`/`gcm256_dec`… from the manager's function table). They need no
//!   manager state, so a `GcmKey` is plain data shared by every worker; the function
//!   pointers are the ones of the architecture chosen once per process.
//! * ChaCha20-Poly1305 goes through the job API (`get_next_job`/`submit_job`/
//!   `flush_job`, `IMB_CIPHER_CHACHA20_POLY1305`), which needs a manager. A manager
//!   is not thread safe, so each thread owns one (thread-local, allocated on first
//!   use or by [`warm_up`]): a worker never locks.
//! * The architecture (SSE / AVX / AVX2 / AVX-512) is picked at run time from the
//!   CPU features by `init_mb_mgr_auto`, or forced with the environment variable
//!   `IPSECGW_IPSEC_MB_ARCH=sse|avx|avx2|avx512` (benchmarks), read once.
//!
//! Built without the library (no `intel-ipsec-mb.h`, or not x86_64), every
//! constructor returns [`Error::Unavailable`].

use core::fmt;

/// Whether this build links libIPSec_MB (false: built without the header, or
/// not x86_64; every constructor then returns [`Error::Unavailable`]).
pub const BUILT_WITH_LIBRARY: bool = cfg!(ipsec_mb);

/// Bytes of the explicit ESP IV (RFC 4106 §3.1, RFC 7634 §2).
pub const IV_LEN: usize = 8;
/// Bytes of the implicit salt from the key material.
pub const SALT_LEN: usize = 4;
/// Bytes of the ICV.
pub const TAG_LEN: usize = 16;

/// One packet of a burst, as the backend sees it. Implemented by the caller's op
/// type so a burst needs no copying or allocation.
pub trait AeadBuffer {
    /// Borrow the packet's parts at once (they are separate buffers).
    fn parts(&mut self) -> AeadParts<'_>;
}

/// The parts of one packet: the nonce is salt || `iv`.
#[derive(Debug)]
pub struct AeadParts<'a> {
    /// Explicit IV.
    pub iv: &'a [u8; IV_LEN],
    /// Additional authenticated data (SPI || seq [|| seq-hi]).
    pub aad: &'a [u8],
    /// Plaintext on seal, ciphertext on open; transformed in place.
    pub data: &'a mut [u8],
    /// Tag written by seal, checked by open.
    pub tag: &'a mut [u8; TAG_LEN],
}

/// SIMD code path of the library in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// No AES-NI: table-based fallback.
    NoAesni,
    /// SSE4.2 + AES-NI + PCLMULQDQ.
    Sse,
    /// AVX.
    Avx,
    /// AVX2 (+ BMI2).
    Avx2,
    /// AVX-512 (with VAES/VPCLMULQDQ where the CPU has them).
    Avx512,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::NoAesni => "no-aesni",
            Arch::Sse => "sse",
            Arch::Avx => "avx",
            Arch::Avx2 => "avx2",
            Arch::Avx512 => "avx512",
        })
    }
}

/// Why the library cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Built without libIPSec_MB, or not on x86_64.
    Unavailable,
    /// `IPSECGW_IPSEC_MB_ARCH` names an arch this CPU lacks or an unknown one.
    Arch(String),
    /// The manager could not be allocated or initialised (library error text).
    Init(String),
    /// Key of the wrong length for the cipher.
    KeyLength(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable => {
                f.write_str("built without intel-ipsec-mb (libipsec-mb-dev) or not x86_64")
            }
            Error::Arch(s) => write!(f, "IPSECGW_IPSEC_MB_ARCH: {s}"),
            Error::Init(s) => write!(f, "intel-ipsec-mb manager init failed: {s}"),
            Error::KeyLength(n) => write!(f, "unsupported key length {n}"),
        }
    }
}

impl std::error::Error for Error {}

/// Constant-time tag comparison (RFC 8439 §4: never memcmp a tag).
fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// RFC 4106 §4 / RFC 7634 §2: nonce = salt || explicit IV.
///
/// Written as one 8-byte and one 4-byte store, the shape in which the library's GCM
/// reads a 96-bit IV (`vmovq` of bytes 0..8, `vpinsrd` of 8..12): an 8-byte load
/// across a 4-byte salt store and the IV store is not forwarded and waits for both.
fn nonce(salt: &[u8; SALT_LEN], iv: &[u8; IV_LEN]) -> [u8; SALT_LEN + IV_LEN] {
    let (iv_lo, iv_hi) = iv.split_at(4);
    let word = |b: &[u8]| b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
    let head = u64::from(u32::from_le_bytes(*salt)) | u64::from(word(iv_lo)) << 32;
    let mut n = [0u8; SALT_LEN + IV_LEN];
    n[..8].copy_from_slice(&head.to_le_bytes());
    n[8..].copy_from_slice(&word(iv_hi).to_le_bytes());
    n
}

mod wipe;
pub use wipe::WipeOnDrop;

#[cfg(ipsec_mb)]
mod imp;
#[cfg(ipsec_mb)]
pub use imp::{arch, version, warm_up, ChaChaPolyKey, GcmKey};

#[cfg(not(ipsec_mb))]
mod stub;
#[cfg(not(ipsec_mb))]
pub use stub::{arch, version, warm_up, ChaChaPolyKey, GcmKey};

#[cfg(test)]
mod tests {
    use super::*;

    struct Op {
        iv: [u8; IV_LEN],
        aad: Vec<u8>,
        data: Vec<u8>,
        tag: [u8; TAG_LEN],
    }

    impl AeadBuffer for Op {
        fn parts(&mut self) -> AeadParts<'_> {
            AeadParts {
                iv: &self.iv,
                aad: &self.aad,
                data: &mut self.data,
                tag: &mut self.tag,
            }
        }
    }

    /// One key shared by several threads, each with its own manager, bursts longer
    /// than the job chunk: every packet round-trips and a flipped tag is refused.
    #[cfg(ipsec_mb)]
    #[test]
    fn shared_keys_work_from_many_threads() {
        let chacha =
            std::sync::Arc::new(ChaChaPolyKey::new(&[3u8; 32], [1, 2, 3, 4]).expect("chacha key"));
        let gcm = std::sync::Arc::new(GcmKey::new(&[9u8; 16], [5, 6, 7, 8]).expect("gcm key"));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let (chacha, gcm) = (chacha.clone(), gcm.clone());
                std::thread::spawn(move || {
                    let mut ops: Vec<Op> = (0..77u8)
                        .map(|i| Op {
                            iv: [t, i, 0, 0, 0, 0, 0, 1],
                            aad: vec![t; 8],
                            data: vec![i; i as usize * 3],
                            tag: [0; 16],
                        })
                        .collect();
                    for round in 0..2 {
                        if round == 0 {
                            chacha.seal_burst(&mut ops)
                        } else {
                            gcm.seal_burst(&mut ops)
                        }
                        ops[5].tag[0] ^= 1;
                        let mut bad = Vec::new();
                        let verdict = |i: usize, ok: bool| {
                            if !ok {
                                bad.push(i)
                            }
                        };
                        if round == 0 {
                            chacha.open_burst(&mut ops, verdict)
                        } else {
                            gcm.open_burst(&mut ops, verdict)
                        }
                        assert_eq!(bad, vec![5]);
                        for (i, op) in ops.iter().enumerate().filter(|(i, _)| *i != 5) {
                            assert_eq!(op.data, vec![i as u8; i * 3]);
                        }
                        ops[5].data = vec![5; 15];
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }

    #[test]
    fn tag_compare_finds_any_difference() {
        let a = [7u8; TAG_LEN];
        assert!(tags_equal(&a, &a));
        for i in 0..TAG_LEN {
            let mut b = a;
            b[i] ^= 0x40;
            assert!(!tags_equal(&a, &b), "byte {i}");
        }
    }
}
