//! AES-GCM (NIST SP 800-38D) with 128- and 256-bit keys on x86-64 AES-NI and
//! PCLMULQDQ, written for ESP's short packets.
//!
//! Why a fourth AES-GCM: at 64 B the general-purpose libraries spend more on their
//! set-up and on one GHASH reduction per block than on the cipher (intel-ipsec-mb
//! 1.3 ≈ 49 ns, ring 0.17 ≈ 96 ns a packet on the Zen 3 EPYC of perf/README.md).
//! Here one call seals or opens one packet:
//!
//! * the counter blocks of up to 8 data blocks go through the AES rounds side by
//!   side, so their latencies overlap;
//! * GHASH works in the POLYVAL representation (RFC 8452, Appendix A), where the
//!   carry-less products need no bit reflection, and sums up to 8 products with
//!   the precomputed powers H..H⁸ before one reduction: a 64-byte packet with its
//!   AAD and length block costs one reduction, not six;
//! * nothing branches on the data or the key, and the tag check is one `ptest`.
//!
//! Where the CPU also has VAES, VPCLMULQDQ and AVX2 ([`wide`]), whole chunks of 8
//! blocks (16 from 1 KB of data on, eight AES chains where four wait out each
//! round's latency) go through a 256-bit loop instead: two counter blocks per AES
//! instruction, GHASH by Karatsuba (three carry-less products per block, two
//! blocks per instruction) and each chunk's GHASH run beside the next chunk's AES.
//! That makes it the fastest AES-GCM on the Zen 3 EPYC up to about 2 KB (perf/README.md,
//! "AEAD backends"). Short packets go two to a register there, and
//! [`GcmKey::seal4`] / [`GcmKey::open4`] run two such pairs round by round, so
//! the AES units have ten independent blocks in flight where one pair's five
//! wait out each round's latency (52-byte ESP payloads, AES-128: 34 / 35 ns a
//! packet seal / open, against 37 / 39 in single pairs).
//!
//! Where the CPU has AVX-512 F and BW as well ([`wide512`]), a 512-bit loop takes
//! the whole packet: chunks of 16 blocks in four independent AES chains of four
//! blocks, each chunk's GHASH products issued between the next chunk's AES
//! rounds, and the last < 256 bytes as one more chunk under byte masks, with the
//! length block in the slot after the data and the powers of H read from the
//! slot that makes the group end in H¹. On a Xeon with AVX-512 it matches
//! intel-ipsec-mb's AVX-512 code at about 1150 B and beats it below (512 B: 65 / 63
//! vs 73 / 68 ns seal / open). There [`GcmKey::seal4`] / [`GcmKey::open4`] also
//! take four short packets in the four lanes of one register (64 B: 19 / 20 ns a
//! packet, against 28 / 26 in pairs).
//!
//! This is the one crate under `dpdk-bindings/` that binds no C library: it holds
//! `unsafe` for the same reason the others do (CONVENTIONS.md, house rule 1). The
//! `unsafe` is in three places, each with a `// SAFETY:` line: the unaligned
//! 16-, 32- and 64-byte loads and stores (the masked ones touch only the slice's
//! bytes), the calls into the `#[target_feature]` code (made only
//! through a [`GcmKey`], which exists only when the CPU has the features; the 256-
//! and 512-bit loops only when the key's `wide` / `wide512` flag says the CPU has
//! their features too), and the
//! volatile wipe of the key schedule on drop. Like ring's and RustCrypto's, the
//! wipe covers the key object, not the short-lived copies of round keys, H and the
//! tag mask that the compiler leaves in registers and on the stack.
//!
//! Needs Rust 1.89 (intrinsics callable without `unsafe` inside `#[target_feature]`
//! functions since 1.87, the VAES and VPCLMULQDQ ones stable since 1.89), the
//! workspace's `rust-version`.

#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Bytes of the GCM nonce this crate takes (the 96-bit IV of SP 800-38D §5.2.1.1).
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag (the full 128 bits).
pub const TAG_LEN: usize = 16;

/// Why a key could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The key is neither 16 nor 32 bytes.
    KeyLength(usize),
    /// The CPU lacks AES-NI, PCLMULQDQ, SSSE3, SSE4.1 or AVX (or this is not x86-64).
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::KeyLength(n) => write!(f, "AES-GCM key must be 16 or 32 bytes, got {n}"),
            Error::Unsupported => {
                f.write_str("this CPU lacks one of AES-NI, PCLMULQDQ, SSSE3, SSE4.1, AVX")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Whether the main loop runs two blocks per instruction on this CPU (VAES,
/// VPCLMULQDQ and AVX2 besides [`available`]'s features): then it is the fastest
/// AES-GCM here well beyond short packets.
pub fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::wide_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the main loop runs four blocks per instruction on this CPU (AVX-512 F
/// and BW besides [`wide`]'s features).
pub fn wide512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::wide512_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU can run this crate's code.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// An expanded AES-128 or AES-256 key with its GHASH key powers. Wiped on drop;
/// `Debug` shows only the key size.
pub struct GcmKey {
    #[cfg(target_arch = "x86_64")]
    inner: x86::Key,
    #[cfg(not(target_arch = "x86_64"))]
    inner: core::convert::Infallible,
}

impl GcmKey {
    /// Expand a 16-byte (AES-128) or 32-byte (AES-256) key.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        if key.len() != 16 && key.len() != 32 {
            return Err(Error::KeyLength(key.len()));
        }
        #[cfg(target_arch = "x86_64")]
        {
            x86::Key::new(key).map(|inner| GcmKey { inner })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Err(Error::Unsupported)
        }
    }

    /// Encrypt `data` in place and return the tag over `aad` and the ciphertext.
    /// Beyond [`MAX_DATA`] bytes (SP 800-38D §5.2.1.1; ESP packets are far shorter)
    /// it fails closed: `data` and the tag come back zeroed.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        #[cfg(target_arch = "x86_64")]
        {
            if too_long(data) {
                data.fill(0);
                return [0; TAG_LEN];
            }
            self.inner.seal(nonce, aad, data)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            match self.inner {}
        }
    }

    /// Check `tag` over `aad` and the ciphertext `data`, decrypting `data` in place.
    /// Returns whether the tag matched (compared in constant time); when it did not,
    /// `data` holds the unauthenticated decryption and must be thrown away. Beyond
    /// [`MAX_DATA`] bytes nothing opens.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            !too_long(data) && self.inner.open(nonce, aad, data, tag)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            match self.inner {}
        }
    }

    /// Seal two packets. When both have at most [`PAIR_DATA`] bytes of data and
    /// 16 of AAD (ESP at 64-byte frames), their AES rounds run side by side, which
    /// costs less than two [`GcmKey::seal`] calls; otherwise it is those two calls.
    pub fn seal2(
        &self,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
    ) -> [[u8; TAG_LEN]; 2] {
        #[cfg(target_arch = "x86_64")]
        if pairable(&aad, &data) {
            return self.inner.seal_pair(nonce, aad, data);
        }
        let [d0, d1] = data;
        [
            self.seal(nonce[0], aad[0], d0),
            self.seal(nonce[1], aad[1], d1),
        ]
    }

    /// Open two packets, as [`GcmKey::seal2`] seals them; each result is
    /// [`GcmKey::open`]'s.
    pub fn open2(
        &self,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
        tag: [&[u8; TAG_LEN]; 2],
    ) -> [bool; 2] {
        #[cfg(target_arch = "x86_64")]
        if pairable(&aad, &data) {
            return self.inner.open_pair(nonce, aad, data, tag);
        }
        let [d0, d1] = data;
        [
            self.open(nonce[0], aad[0], d0, tag[0]),
            self.open(nonce[1], aad[1], d1, tag[1]),
        ]
    }

    /// Seal four packets. When all have at most [`PAIR_DATA`] bytes of data and 16
    /// of AAD, their AES rounds and GHASHes run side by side: in the four lanes of
    /// 512-bit registers where the CPU has the 512-bit path ([`wide512`]), else in
    /// two 256-bit registers per block where it has [`wide`]'s; otherwise it is
    /// two [`GcmKey::seal2`] calls.
    pub fn seal4(
        &self,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        mut data: [&mut [u8]; 4],
    ) -> [[u8; TAG_LEN]; 4] {
        #[cfg(target_arch = "x86_64")]
        if let Some(tags) = pairable(&aad, &data).then(|| self.inner.seal_quad(nonce, aad, &mut data)).flatten() {
            return tags;
        }
        let [d0, d1, d2, d3] = data;
        let [t0, t1] = self.seal2([nonce[0], nonce[1]], [aad[0], aad[1]], [d0, d1]);
        let [t2, t3] = self.seal2([nonce[2], nonce[3]], [aad[2], aad[3]], [d2, d3]);
        [t0, t1, t2, t3]
    }

    /// Open four packets, as [`GcmKey::seal4`] seals them; each result is
    /// [`GcmKey::open`]'s.
    pub fn open4(
        &self,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        mut data: [&mut [u8]; 4],
        tag: [&[u8; TAG_LEN]; 4],
    ) -> [bool; 4] {
        #[cfg(target_arch = "x86_64")]
        if let Some(ok) = pairable(&aad, &data).then(|| self.inner.open_quad(nonce, aad, &mut data, tag)).flatten() {
            return ok;
        }
        let [d0, d1, d2, d3] = data;
        let [r0, r1] = self.open2([nonce[0], nonce[1]], [aad[0], aad[1]], [d0, d1], [tag[0], tag[1]]);
        let [r2, r3] = self.open2([nonce[2], nonce[3]], [aad[2], aad[3]], [d2, d3], [tag[2], tag[3]]);
        [r0, r1, r2, r3]
    }

    /// 16 for AES-128, 32 for AES-256.
    pub fn key_len(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            self.inner.key_len()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            match self.inner {}
        }
    }
}

/// Most data bytes GCM allows under one key and nonce: 2³² − 2 blocks (the 32-bit
/// counter must not come back to J0, whose keystream masks the tag).
pub const MAX_DATA: u64 = ((1 << 32) - 2) * 16;

fn too_long(data: &[u8]) -> bool {
    data.len() as u64 > MAX_DATA
}

/// Most data bytes per packet for [`GcmKey::seal2`]'s side-by-side path (four blocks).
pub const PAIR_DATA: usize = 64;

#[cfg(target_arch = "x86_64")]
fn pairable<const N: usize>(aad: &[&[u8]; N], data: &[&mut [u8]; N]) -> bool {
    const _: () = assert!(PAIR_DATA == x86::PAIR_DATA);
    aad.iter().all(|a| a.len() <= 16) && data.iter().all(|d| d.len() <= PAIR_DATA)
}

impl core::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GcmKey")
            .field("bits", &(self.key_len() * 8))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
