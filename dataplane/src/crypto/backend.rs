//! Backend selection and the one constructor callers use.

use super::split::Split;
use super::{aesni, chacha_avx512, ipsec_mb, ipsec_mb_arch, ring, rustcrypto, Aead, Algorithm, IpsecMbArch, SALT_LEN};

/// Which implementation performs the AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The fastest backend(s) available in this build on this CPU, chosen at run
    /// time by CPU features from the measurements in perf/README.md; see
    /// [`Backend::auto_choice`].
    Auto,
    /// RustCrypto `aes-gcm` / `chacha20poly1305`: portable, always available.
    RustCrypto,
    /// `ring` 0.17 (`ring::aead`).
    Ring,
    /// intel-ipsec-mb (libIPSec_MB) through `ipsec-mb-sys`.
    IpsecMb,
    /// Our own AES-GCM on AES-NI and PCLMULQDQ (`aesni-gcm`), for short packets.
    AesNi,
    /// Our own ChaCha20-Poly1305 on AVX-512 F, BW and IFMA (`chacha-avx512`): a
    /// burst's ChaCha20 blocks sixteen at a time, Poly1305 eight packets at a time;
    /// for packets up to ~1 KB.
    ChaChaAvx512,
}

impl Backend {
    /// Every concrete backend (not `Auto`), in a stable order for tables.
    pub const ALL: [Backend; 5] = [Backend::RustCrypto, Backend::Ring, Backend::IpsecMb, Backend::AesNi, Backend::ChaChaAvx512];

    /// Short name used in `show` output, benchmark tables and configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::RustCrypto => "rustcrypto",
            Backend::Ring => "ring",
            Backend::IpsecMb => "ipsec-mb",
            Backend::AesNi => "aesni",
            Backend::ChaChaAvx512 => "chacha-avx512",
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
            Backend::AesNi => alg != Algorithm::ChaCha20Poly1305 && aesni::available(),
            Backend::ChaChaAvx512 => alg == Algorithm::ChaCha20Poly1305 && chacha_avx512::available(),
        }
    }

    /// The concrete backend this resolves to for full-size (1400 B) packets of
    /// `alg`: itself, or for `Auto` the one [`Backend::auto_choice`] gives that size.
    pub fn resolve(self, alg: Algorithm) -> Backend {
        match self {
            Backend::Auto => {
                let c = Backend::auto_choice(alg);
                match c.class(1400) {
                    SizeClass::Tiny => c.tiny,
                    SizeClass::Small => c.small,
                    SizeClass::Large => c.large,
                }
            }
            other => other,
        }
    }

    /// What `Auto` uses for `alg` on this CPU (perf/README.md, "AEAD backends"):
    ///
    /// * AES-GCM with intel-ipsec-mb on its AVX-512 path: ipsec-mb (≈ 214 vs ring
    ///   ≈ 425 cycles at 1408 B, issue 5), except below [`AESNI_BELOW_AVX512_128`] /
    ///   [`AESNI_BELOW_AVX512_256`] bytes when `aesni` has its 512-bit main loop
    ///   (VAES, VPCLMULQDQ, AVX-512 F and BW): there `aesni`, which also seals ESP
    ///   at 64-byte frames two packets at a time (28 vs 48 ns).
    /// * AES-GCM with ipsec-mb on AVX2/AVX/SSE: ipsec-mb for short packets (half of
    ///   ring's cost at 64 B), ring for long ones (≈ 1.2× faster at 1400 B, 1.8× at
    ///   9000 B on the AVX2 EPYC measured). Where they cross depends on the length's
    ///   last block: ring pays ~25-40 ns for a partial final 16-byte block, and ESP
    ///   with 4-byte padding (RFC 4303 §2.4) ends in one three times out of four.
    ///   `aead_table` on the Zen 3 EPYC (AES-128 / AES-256, seal + open): whole
    ///   blocks cross at ~448 / ~384 B, a partial last block at ~670 / ~650 B; the
    ///   ESP payload of a 512 B frame (500 B) costs 149 ns in ipsec-mb, 194 in ring.
    /// * AES-GCM without ipsec-mb: ring (2–3× RustCrypto).
    /// * Below both, when the CPU has AES-NI, PCLMULQDQ and AVX but ipsec-mb is not
    ///   on its AVX-512 path: our own `aesni` for packets of at most 64 bytes
    ///   (ESP at 64-byte frames), which seals and opens them two at a time: 39–44
    ///   vs ipsec-mb's 49–57 ns a packet at 64 B (AES-128 and AES-256, the Zen 3
    ///   EPYC); its one-at-a-time path is no faster than ipsec-mb above that.
    /// * With the 512-bit loop too (AVX-512 F and BW) and ipsec-mb not on its AVX-512
    ///   path (no ipsec-mb, or `IPSECGW_IPSEC_MB_ARCH`): `aesni` for every size.
    /// * With VAES and VPCLMULQDQ as well, `aesni` runs its main loop two blocks per
    ///   instruction and takes every packet below [`AESNI_WIDE_BELOW_128`] /
    ///   [`AESNI_WIDE_BELOW_256`] bytes: AES-128 at 512 B 113 / 100 ns (seal / open)
    ///   against ipsec-mb's 143 / 147, at 1392 B 269 / 232 against ring's 268 / 265;
    ///   from ~2 KB ring's seal is the faster (2048 B: 338 vs 364 ns). AES-256's 14
    ///   rounds moved the crossing of seal + open down to ≈ 1300 B (1200 B: 513 vs
    ///   531 ns, 1392 B: 599 vs 583); since the 16-block chunks and the wide tail
    ///   (sixteenth session) it is ≈ 2 KB again (`aead_table --slice 0.05`, best
    ///   of 3-4 pinned runs, seal + open: 1392 B 564-704 vs 742-758 ns, 2048 B
    ///   744-817 vs 781-800).
    /// * ChaCha20-Poly1305: intel-ipsec-mb where it takes its AVX-512 path (Xeon with
    ///   AVX-512: `aead_table` seal/32 + open/32 at 64 B 153 + 162 ns against ring's
    ///   207 + 223, 512 B 326 + 337 vs 452 + 447, 1392 B 535 + 543 vs 946 + 895);
    ///   ring everywhere else (Zen 3 with AVX2: ring 1.4–1.5× ipsec-mb's job API,
    ///   3–10× RustCrypto).
    /// * Below both, where the CPU has AVX-512 F, BW and IFMA: our own
    ///   `chacha-avx512` for packets shorter than [`CHACHA_AVX512_BELOW`] bytes,
    ///   which makes a burst's ChaCha20 blocks sixteen at a time whatever packets
    ///   they belong to (same Xeon, seal/32 + open/32: 64 B 60 + 61 ns, 512 B
    ///   242 + 244, 1024 B 447 + 447 against ipsec-mb's 153 + 162, 328 + 338,
    ///   452 + 461; 1392 B 597 + 595 against 538 + 545).
    pub fn auto_choice(alg: Algorithm) -> AutoChoice {
        match alg {
            Algorithm::Aes128Gcm | Algorithm::Aes256Gcm => {
                // A size limit measured for each key size.
                let per_key = |aes128: usize, aes256: usize| if alg == Algorithm::Aes128Gcm { aes128 } else { aes256 };
                let c = match ipsec_mb_arch() {
                    Some(IpsecMbArch::Avx512) => {
                        let only = AutoChoice::only(Backend::IpsecMb);
                        if !(Backend::AesNi.is_available(alg) && aesni_gcm::wide512()) {
                            return only;
                        }
                        let below = per_key(AESNI_BELOW_AVX512_128, AESNI_BELOW_AVX512_256);
                        return AutoChoice { tiny: Backend::AesNi, tiny_below: below, ..only };
                    }
                    Some(IpsecMbArch::NoAesni) | None => AutoChoice::only(Backend::Ring),
                    Some(_) => AutoChoice {
                        small: Backend::IpsecMb,
                        threshold: 448,
                        threshold_partial: 656,
                        ..AutoChoice::only(Backend::Ring)
                    },
                };
                if !Backend::AesNi.is_available(alg) {
                    c
                } else if aesni_gcm::wide512() {
                    AutoChoice::only(Backend::AesNi)
                } else if aesni_gcm::wide() {
                    let below = per_key(AESNI_WIDE_BELOW_128, AESNI_WIDE_BELOW_256);
                    AutoChoice { tiny: Backend::AesNi, tiny_below: below, threshold: 0, threshold_partial: 0, ..c }
                } else {
                    AutoChoice { tiny: Backend::AesNi, tiny_below: aesni_gcm::PAIR_DATA + 1, ..c }
                }
            }
            Algorithm::ChaCha20Poly1305 => {
                let c = match ipsec_mb_arch() {
                    Some(IpsecMbArch::Avx512) => AutoChoice::only(Backend::IpsecMb),
                    _ => AutoChoice::only(Backend::Ring),
                };
                if Backend::ChaChaAvx512.is_available(alg) {
                    AutoChoice { tiny: Backend::ChaChaAvx512, tiny_below: CHACHA_AVX512_BELOW, tiny_min: CHACHA_AVX512_MIN_BURST, ..c }
                } else {
                    c
                }
            }
        }
    }
}

/// Below this many bytes of AES-128-GCM plaintext `Backend::Auto` uses `aesni` when
/// it has its 256-bit main loop (with the 512-bit one, where ipsec-mb is not on its
/// AVX-512 path, `aesni` takes every size: on the Xeon with AVX-512, 9000 B sealed
/// and opened in 740 / 702 ns against ring's 1043 / 958, AES-256 817 / 796 against
/// 1238 / 1137): seal + open cost the same as ring's at ~2 KB
/// (`aead_table`, Zen 3 EPYC).
pub const AESNI_WIDE_BELOW_128: usize = 2048;

/// [`AESNI_WIDE_BELOW_128`] for AES-256-GCM: the crossing is at ≈ 2 KB too (it
/// was ≈ 1300 B before the 256-bit loop's 16-block chunks and wide tail).
pub const AESNI_WIDE_BELOW_256: usize = 2048;

/// Below this many bytes of AES-128-GCM plaintext `Backend::Auto` uses `aesni` with
/// its 512-bit main loop rather than intel-ipsec-mb on its AVX-512 path, which is
/// faster above: seal + open cross at ≈ 1150 B (`aead_table`, minimum of four
/// runs, Xeon with AVX-512 and VAES: 64 B 28 + 26 vs 48 + 33 ns, 512 B 65 + 63 vs
/// 73 + 68, 1024 B 105 + 100 vs 106 + 108, 1152 B 115 + 110 vs 112 + 113, 1392 B
/// 134 + 130 vs 126 + 124).
pub const AESNI_BELOW_AVX512_128: usize = 1152;

/// [`AESNI_BELOW_AVX512_128`] for AES-256-GCM: the crossing is at ≈ 2000 B
/// (1392 B 151 + 147 vs 154 + 148 ns, 1800 B 190 + 181 vs 193 + 188, 2048 B
/// 211 + 205 vs 205 + 202).
pub const AESNI_BELOW_AVX512_256: usize = 1920;

/// Below this many bytes of ChaCha20-Poly1305 plaintext `Backend::Auto` uses
/// `chacha-avx512` where the CPU has it: seal + open cost the same as
/// intel-ipsec-mb's AVX-512 code at ≈ 1024 B (`aead_table`, two runs on the Xeon
/// with AVX-512: 896 B 393 + 392 vs 415 + 437 ns, 1024 B 453 + 447 vs 454 + 461,
/// 1152 B 496–650 vs 463–465).
pub const CHACHA_AVX512_BELOW: usize = 1024;

/// Fewest such packets in one burst for `Backend::Auto` to give them to
/// `chacha-avx512`, whose one pass makes sixteen blocks however few it needs: a
/// burst of one 64 B packet costs ≈ 430 ns there against ipsec-mb's ≈ 150, three
/// cost about the same as there, and at 512 B (nine blocks each) four do.
pub const CHACHA_AVX512_MIN_BURST: usize = 4;

/// The backends `Backend::Auto` uses for one algorithm: `tiny` for packets with
/// fewer than `tiny_below` bytes of plaintext, `small` for those with fewer than
/// `threshold` (`threshold_partial` when the length is not a whole number of
/// 16-byte blocks), `large` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoChoice {
    /// Backend for packets shorter than `tiny_below`.
    pub tiny: Backend,
    /// Size split below which `tiny` is used (0: never).
    pub tiny_below: usize,
    /// Fewest `tiny` packets a burst must have for `tiny` to take them; with fewer
    /// they go where their size would send them without `tiny` (1: always).
    pub tiny_min: usize,
    /// Backend for packets shorter than `threshold`.
    pub small: Backend,
    /// Backend for the rest.
    pub large: Backend,
    /// Size split in bytes of plaintext for lengths that are whole 16-byte blocks
    /// (0: `large` for everything).
    pub threshold: usize,
    /// Size split for lengths that end in a partial 16-byte block.
    pub threshold_partial: usize,
}

/// Which of an [`AutoChoice`]'s backends a packet goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeClass {
    /// `tiny`.
    Tiny,
    /// `small`.
    Small,
    /// `large`.
    Large,
}

impl AutoChoice {
    const fn only(b: Backend) -> Self {
        AutoChoice {
            tiny: b,
            tiny_below: 0,
            tiny_min: 1,
            small: b,
            large: b,
            threshold: 0,
            threshold_partial: 0,
        }
    }

    /// Where a packet with `len` bytes of plaintext goes.
    #[inline(always)]
    pub fn class(&self, len: usize) -> SizeClass {
        if len < self.tiny_below {
            SizeClass::Tiny
        } else if len < if len.is_multiple_of(16) { self.threshold } else { self.threshold_partial } {
            SizeClass::Small
        } else {
            SizeClass::Large
        }
    }

    /// Where a packet with `len` bytes of plaintext goes in a burst that has
    /// `tiny_in_burst` packets of the `tiny` class ([`AutoChoice::tiny_min`]).
    #[inline(always)]
    pub fn class_in_burst(&self, len: usize, tiny_in_burst: usize) -> SizeClass {
        match self.class(len) {
            SizeClass::Tiny if tiny_in_burst < self.tiny_min => AutoChoice { tiny_below: 0, ..*self }.class(len),
            c => c,
        }
    }

    /// Whether `small` is a backend of its own (not `large` under another name).
    pub const fn splits_small(&self) -> bool {
        // `as u8`: a const fn cannot call `PartialEq::eq`.
        self.threshold > 0 && self.small as u8 != self.large as u8
    }

    /// Name reported by an `Auto` instance's `Aead::backend()`.
    pub const fn name(&self) -> &'static str {
        match (self.tiny_below > 0, self.splits_small(), self.tiny, self.small, self.large) {
            (true, true, Backend::AesNi, Backend::IpsecMb, Backend::Ring) => "aesni+ipsec-mb+ring",
            (true, false, Backend::AesNi, _, Backend::Ring) => "aesni+ring",
            (true, false, Backend::AesNi, _, Backend::IpsecMb) => "aesni+ipsec-mb",
            (true, false, Backend::ChaChaAvx512, _, Backend::IpsecMb) => "chacha-avx512+ipsec-mb",
            (true, false, Backend::ChaChaAvx512, _, Backend::Ring) => "chacha-avx512+ring",
            (false, true, _, Backend::IpsecMb, Backend::Ring) => "ipsec-mb+ring",
            (_, _, _, _, large) => large.name(),
        }
    }
}

impl core::fmt::Display for AutoChoice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.tiny_below > 0 {
            write!(f, "{} <{} B", self.tiny, self.tiny_below)?;
            if self.tiny_min > 1 {
                write!(f, " in bursts of {}+", self.tiny_min)?;
            }
            f.write_str(", ")?;
        }
        if self.splits_small() {
            write!(
                f,
                "{} <{} B ({} B with a partial last block), {} above",
                self.small, self.threshold, self.threshold_partial, self.large
            )
        } else if self.tiny_below > 0 {
            write!(f, "{} above", self.large)
        } else {
            write!(f, "{}", self.large)
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
        core::iter::once(Backend::Auto)
            .chain(Backend::ALL)
            .find(|b| b.name() == s)
        .ok_or(UnknownBackend)
    }
}

/// A backend name that is none of `auto`, `rustcrypto`, `ring`, `ipsec-mb`,
/// `aesni`, `chacha-avx512`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown AEAD backend (expected one of: auto, rustcrypto, ring, ipsec-mb, aesni, chacha-avx512)")]
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

impl KeyError {
    /// A backend's failure to key `alg`: `Rejected` when it refused the key itself,
    /// `Unavailable` when it cannot run here.
    pub(super) fn keying(backend: Backend, alg: Algorithm, rejected: bool) -> Self {
        if rejected {
            KeyError::Rejected { backend, alg }
        } else {
            KeyError::Unavailable { backend, alg }
        }
    }
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
    if backend == Backend::Auto {
        let choice = Backend::auto_choice(alg);
        let large = new_aead(alg, keymat, choice.large)?;
        let small = choice
            .splits_small()
            .then(|| new_aead(alg, keymat, choice.small))
            .transpose()?;
        let tiny = (choice.tiny_below > 0)
            .then(|| new_aead(alg, keymat, choice.tiny))
            .transpose()?;
        if small.is_none() && tiny.is_none() {
            return Ok(large);
        }
        return Ok(Box::new(Split::new(tiny, small, large, choice)));
    }
    if !backend.is_available(alg) {
        return Err(KeyError::Unavailable { backend, alg });
    }
    match backend {
        Backend::Auto | Backend::RustCrypto => rustcrypto::new(alg, key, salt),
        Backend::Ring => ring::new(alg, key, salt),
        Backend::IpsecMb => ipsec_mb::new(alg, key, salt),
        Backend::AesNi => aesni::new(alg, key, salt),
        Backend::ChaChaAvx512 => chacha_avx512::new(alg, key, salt),
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
            // `Auto` too: a burst of one, below any burst backend's `tiny_min`.
            for backend in Backend::ALL.into_iter().chain([Backend::Auto]).filter(|b| b.is_available(alg)) {
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
                // And as a burst of one (decap's run of one packet).
                let (mut bad, mut t, mut verdict) = (data.clone(), tag, [Ok(())]);
                bad[5] ^= 1;
                aead.open_burst(&mut [AeadOp { iv: [7; 8], aad: &aad, data: &mut bad, tag: &mut t }], &mut verdict);
                assert_eq!(verdict, [Err(AuthError)], "{backend} {alg:?}");
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

    /// Sizes around block, lane and `Auto` split boundaries, interleaved so a
    /// size-split burst alternates between its backends; 11 short enough for the
    /// side-by-side paths, scattered (two groups of four, a pair and one alone).
    const MIXED: [usize; 30] = [
        1400, 0, 9000, 1, 300, 15, 256, 16, 255, 17, 511, 64, 257, 63, 1500, 4000, 448, 447,
        500, 656, 660, 1388, 48, 52, 65, 64, 80, 32, 2000, 60,
    ];

    /// AADs alternate between 8 bytes (SPI || seq) and 12 (ESN).
    fn mixed_ops<'a>(
        data: &'a mut [Vec<u8>],
        tags: &'a mut [[u8; TAG_LEN]],
        aads: &'a [[u8; 12]],
    ) -> Vec<AeadOp<'a>> {
        data.iter_mut()
            .zip(tags.iter_mut())
            .zip(aads.iter())
            .enumerate()
            .map(|(i, ((d, t), a))| AeadOp {
                iv: [i as u8; 8],
                aad: &a[..8 + (i % 2) * 4],
                data: d,
                tag: t,
            })
            .collect()
    }

    fn seal_mixed(aead: &dyn Aead) -> (Vec<Vec<u8>>, Vec<[u8; TAG_LEN]>) {
        let mut data: Vec<Vec<u8>> = MIXED
            .iter()
            .map(|&n| (0..n).map(|i| (i * 13 + n) as u8).collect())
            .collect();
        let mut tags = vec![[0u8; TAG_LEN]; MIXED.len()];
        let aads: Vec<[u8; 12]> = (0..MIXED.len() as u8).map(|i| [i; 12]).collect();
        let mut ops = mixed_ops(&mut data, &mut tags, &aads);
        aead.seal_burst(&mut ops);
        drop(ops);
        (data, tags)
    }

    /// Every backend, and `Auto` (possibly split by size), produce the same bytes
    /// for packets of every size class; the KATs pin RustCrypto to the specs.
    #[test]
    fn every_backend_and_auto_agree_on_mixed_sizes() {
        for alg in ALGS {
            let reference = new_aead(alg, &keymat(alg), Backend::RustCrypto).expect("rustcrypto");
            let expect = seal_mixed(reference.as_ref());
            let mut backends: Vec<Backend> = Backend::ALL
                .into_iter()
                .filter(|b| b.is_available(alg))
                .collect();
            backends.push(Backend::Auto);
            for backend in backends {
                let aead = new_aead(alg, &keymat(alg), backend).expect("available backend keys");
                let (data, tags) = seal_mixed(aead.as_ref());
                assert!(
                    data == expect.0 && tags == expect.1,
                    "{backend} ({}) {alg:?}",
                    aead.backend()
                );
                // A forged tag at each place in turn fails that packet only,
                // wherever the backend grouped it.
                let aads: Vec<[u8; 12]> = (0..MIXED.len() as u8).map(|i| [i; 12]).collect();
                for bad in 0..MIXED.len() {
                    let (mut data, mut tags) = (data.clone(), tags.clone());
                    tags[bad][bad % TAG_LEN] ^= 1;
                    let mut ops = mixed_ops(&mut data, &mut tags, &aads);
                    let mut results = vec![Ok(()); MIXED.len()];
                    aead.open_burst(&mut ops, &mut results);
                    // A size-split instance may reorder the burst by class; the
                    // caller gets it back in its order.
                    assert!(ops.iter().enumerate().all(|(i, op)| op.iv == [i as u8; 8]), "{backend} {alg:?}: op order");
                    for (i, r) in results.iter().enumerate() {
                        assert_eq!(r.is_err(), i == bad, "{backend} {alg:?} packet {i} ({} B), forged {bad}", MIXED[i]);
                    }
                    drop(ops);
                    let plain = |i: usize| (0..MIXED[i]).map(|j| (j * 13 + MIXED[i]) as u8).collect::<Vec<u8>>();
                    assert!((0..MIXED.len()).filter(|&i| i != bad).all(|i| data[i] == plain(i)), "{backend} {alg:?}: plaintext");
                }
            }
        }
    }

    /// Bursts of one size (the usual case, which `Auto`'s size split sends to one
    /// backend in one pass) seal as the reference does and open, for burst
    /// lengths around the four-packet paths and a whole burst.
    #[test]
    fn auto_agrees_on_bursts_of_one_size() {
        for alg in ALGS {
            let reference = new_aead(alg, &keymat(alg), Backend::RustCrypto).expect("rustcrypto");
            let auto = new_aead(alg, &keymat(alg), Backend::Auto).expect("auto");
            for size in [0usize, 52, 64, 500, 1388, 2000] {
                for burst in [1usize, 2, 3, 4, 5, 32] {
                    let aads: Vec<[u8; 12]> = (0..burst as u8).map(|i| [i; 12]).collect();
                    let seal = |aead: &dyn Aead| {
                        let mut data: Vec<Vec<u8>> = (0..burst).map(|p| (0..size).map(|i| (i * 7 + p) as u8).collect()).collect();
                        let mut tags = vec![[0u8; TAG_LEN]; burst];
                        aead.seal_burst(&mut mixed_ops(&mut data, &mut tags, &aads));
                        (data, tags)
                    };
                    let (mut data, mut tags) = seal(auto.as_ref());
                    assert!((data.clone(), tags.clone()) == seal(reference.as_ref()), "{alg:?} {burst} x {size} B");
                    let mut results = vec![Err(AuthError); burst];
                    auto.open_burst(&mut mixed_ops(&mut data, &mut tags, &aads), &mut results);
                    assert!(results.iter().all(|r| r.is_ok()), "{alg:?} {burst} x {size} B: open");
                }
            }
        }
    }

    /// A length's class depends on its last block: whole 16-byte blocks split at
    /// `threshold`, a partial last block at `threshold_partial`.
    #[test]
    fn auto_choice_splits_by_length_and_last_block() {
        use SizeClass::{Large, Small, Tiny};
        let c = AutoChoice {
            tiny: Backend::AesNi,
            tiny_below: 65,
            tiny_min: 1,
            small: Backend::IpsecMb,
            large: Backend::Ring,
            threshold: 448,
            threshold_partial: 656,
        };
        for (len, class) in [(0, Tiny), (48, Tiny), (52, Tiny), (64, Tiny), (65, Small), (80, Small),
            (432, Small), (447, Small), (448, Large), (452, Small), (500, Small), (655, Small),
            (656, Large), (660, Large), (1388, Large), (1392, Large)]
        {
            assert_eq!(c.class(len), class, "{len} B");
        }
        assert_eq!(AutoChoice { tiny_below: 0, ..c }.class(0), Small);
        assert_eq!(AutoChoice::only(Backend::Ring).class(0), Large);
        assert_eq!(c.name(), "aesni+ipsec-mb+ring");
        assert_eq!(
            c.to_string(),
            "aesni <65 B, ipsec-mb <448 B (656 B with a partial last block), ring above"
        );
        assert_eq!(AutoChoice { threshold: 0, ..c }.name(), "aesni+ring");
        let avx512 = AutoChoice { tiny_below: 1152, ..AutoChoice::only(Backend::IpsecMb) };
        let avx512 = AutoChoice { tiny: Backend::AesNi, ..avx512 };
        assert_eq!((avx512.class(1148), avx512.class(1152)), (Tiny, Large));
        assert_eq!(avx512.name(), "aesni+ipsec-mb");
        assert_eq!(avx512.to_string(), "aesni <1152 B, ipsec-mb above");
        assert_eq!(AutoChoice { tiny_below: 0, ..c }.name(), "ipsec-mb+ring");
        assert_eq!(AutoChoice::only(Backend::Ring).to_string(), "ring");
        // A burst backend takes its class only when the burst has enough of it.
        let burst = AutoChoice { tiny: Backend::ChaChaAvx512, tiny_below: 1024, tiny_min: 4, ..AutoChoice::only(Backend::IpsecMb) };
        assert_eq!((burst.class_in_burst(64, 3), burst.class_in_burst(64, 4), burst.class_in_burst(1400, 9)), (Large, Tiny, Large));
        assert_eq!((c.class_in_burst(64, 1), c.class_in_burst(300, 0)), (Tiny, Small));
        assert_eq!(burst.to_string(), "chacha-avx512 <1024 B in bursts of 4+, ipsec-mb above");
    }

    #[test]
    fn auto_choice_names_only_available_backends() {
        for alg in ALGS {
            let c = Backend::auto_choice(alg);
            assert!(
                c.small.is_available(alg)
                    && c.large.is_available(alg)
                    && (c.tiny_below == 0 || c.tiny.is_available(alg)),
                "{alg:?}: {c}"
            );
            let aead = new_aead(alg, &keymat(alg), Backend::Auto).expect("auto keys");
            assert_eq!(aead.backend(), c.name());
        }
    }

    #[test]
    fn backend_names_parse_back() {
        for b in core::iter::once(Backend::Auto).chain(Backend::ALL) {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert_eq!("openssl".parse::<Backend>(), Err(UnknownBackend));
    }
}
