//! AEAD for ESP (RFC 4106 AES-GCM, RFC 7634 ChaCha20-Poly1305).
//!
//! The nonce is `salt (4 bytes, from the key material) || IV (8 bytes, carried in
//! the packet)`; the tag is 16 bytes, detached; the AAD is SPI || seq (8 bytes)
//! or SPI || seq-hi || seq-lo (12 bytes) with ESN (RFC 4106 §5).
//!
//! The trait works on a whole burst so multi-buffer backends can pipeline; the
//! single-packet calls are a burst of one.
//!
//! Build an instance with [`new_aead`]`(alg, key || salt, backend)`. Backends:
//! RustCrypto (portable, always there), ring 0.17, intel-ipsec-mb 1.3 through
//! `ipsec-mb-sys` (when the library was found at build time and the CPU has
//! AES-NI), and for AES-GCM our own `aesni-gcm` (x86-64 with AES-NI, PCLMULQDQ and
//! AVX; short packets two at a time), for ChaCha20-Poly1305 our own `chacha-avx512`
//! (AVX-512 F, BW and IFMA; a burst's blocks sixteen at a time). [`Backend::Auto`] picks per algorithm, and
//! for AES-GCM per packet size, the fastest of them on this CPU ([`Backend::auto_choice`], numbers in
//! perf/README.md, "AEAD backends (issue 5)"). Every instance wipes its key
//! material on drop and never prints it. Worker threads should call
//! [`prepare_thread`] once at start.

mod aesni;
mod backend;
mod chacha_avx512;
mod ipsec_mb;
mod keyed;
mod ring;
mod rustcrypto;
mod split;

pub use backend::{new_aead, AutoChoice, Backend, KeyError, SizeClass, UnknownBackend};
pub use ipsec_mb::{ipsec_mb_arch, ipsec_mb_path, prepare_thread};
pub use ipsec_mb_sys::Arch as IpsecMbArch;

/// Bytes of ICV (authentication tag) for every AEAD we support.
pub const TAG_LEN: usize = 16;
/// Bytes of the explicit IV carried in each ESP packet.
pub const IV_LEN: usize = 8;
/// Bytes of the implicit salt taken from the end of the key material.
pub const SALT_LEN: usize = 4;

/// ESP/IKE AEAD transforms we implement (IKEv2 transform IDs, RFC 7296/8247).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ENCR_AES_GCM_16 with a 128-bit key (transform 20, key length 128).
    Aes128Gcm,
    /// ENCR_AES_GCM_16 with a 256-bit key (transform 20, key length 256).
    Aes256Gcm,
    /// ENCR_CHACHA20_POLY1305 (transform 28).
    ChaCha20Poly1305,
}

impl Algorithm {
    /// Every algorithm, in the order operators see them listed.
    pub const ALL: [Algorithm; 3] = [Algorithm::Aes128Gcm, Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

    /// The name the configuration uses for it (its ESP proposal keyword).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Aes128Gcm => "aes128gcm16",
            Algorithm::Aes256Gcm => "aes256gcm16",
            Algorithm::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }

    /// Cipher key bytes, without the salt.
    pub const fn key_len(self) -> usize {
        match self {
            Algorithm::Aes128Gcm => 16,
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material bytes taken from the KEYMAT (key || salt), RFC 4106 §8.1.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }
}

/// One packet's worth of work: the IV, the AAD and the buffer sealed or opened in place.
#[derive(Debug)]
pub struct AeadOp<'a> {
    /// Explicit per-packet IV (the ESP IV field).
    pub iv: [u8; IV_LEN],
    /// SPI || seq (8 bytes), or SPI || seq-hi || seq-lo (12 bytes) with ESN.
    pub aad: &'a [u8],
    /// Plaintext on seal, ciphertext on open; transformed in place.
    pub data: &'a mut [u8],
    /// Output of seal; input of open.
    pub tag: &'a mut [u8; TAG_LEN],
}

impl<'a> AeadOp<'a> {
    /// A fixed array of empty ops over `tags`, never passed to an AEAD as they
    /// are: a burst writes its real ops over the front and hands the AEAD that
    /// prefix, without allocating.
    pub fn placeholders<const N: usize>(tags: &'a mut [[u8; TAG_LEN]; N]) -> [AeadOp<'a>; N] {
        tags.each_mut().map(|tag| AeadOp { iv: [0; IV_LEN], aad: &[], data: &mut [], tag })
    }

    /// The same op over the same buffers, for a call that takes an op by value.
    pub fn reborrow(&mut self) -> AeadOp<'_> {
        AeadOp { iv: self.iv, aad: self.aad, data: &mut *self.data, tag: &mut *self.tag }
    }
}

/// The tag did not verify; the buffer contents are unspecified afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD authentication failed")]
pub struct AuthError;

impl AuthError {
    /// A backend's yes/no tag check as an open result.
    pub(super) fn unless(authentic: bool) -> Result<(), AuthError> {
        if authentic {
            Ok(())
        } else {
            Err(AuthError)
        }
    }
}

/// A keyed AEAD instance for one SA direction. Backends live in submodules;
/// `Debug` must never print key material.
pub trait Aead: Send + Sync + core::fmt::Debug {
    /// Which transform this instance implements.
    fn algorithm(&self) -> Algorithm;

    /// Short backend name for `show` output and benchmark tables.
    fn backend(&self) -> &'static str;

    /// Seal every op in place, writing each tag.
    fn seal_burst(&self, ops: &mut [AeadOp<'_>]);

    /// Open every op in place; `results[i]` says whether op `i` authenticated.
    /// `results.len()` must be at least `ops.len()`.
    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]);

    /// Seal one packet.
    fn seal(&self, op: AeadOp<'_>) {
        self.seal_burst(&mut [op]);
    }

    /// Open one packet.
    fn open(&self, op: AeadOp<'_>) -> Result<(), AuthError> {
        let mut r = [Err(AuthError)];
        self.open_burst(&mut [op], &mut r);
        r[0]
    }
}
