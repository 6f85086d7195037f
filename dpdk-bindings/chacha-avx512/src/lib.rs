//! ChaCha20-Poly1305 (RFC 8439) on x86-64 AVX-512, written for bursts of ESP
//! packets (RFC 7634).
//!
//! Why another ChaCha20-Poly1305: the libraries seal one packet per call, and
//! their SIMD ChaCha20 spreads one packet's blocks over the vector lanes. A 64-byte
//! ESP frame has two ChaCha20 blocks (the Poly1305 key and one of data), so most
//! of those lanes idle: intel-ipsec-mb's AVX-512 job API spends ≈ 150 ns on such a
//! packet, ring ≈ 210 (perf/README.md, "AEAD backends"). Here one call takes a
//! whole burst:
//!
//! * the burst's blocks — every packet's block 0 (its Poly1305 key) and its data
//!   blocks — are dealt to the sixteen 32-bit lanes of 512-bit registers in order,
//!   sixteen at a time, whichever packet they belong to, and one pass of the
//!   twenty rounds makes all sixteen; a transpose turns the lanes into blocks;
//! * each block is XORed into its packet under a byte mask, so nothing is read or
//!   written past a packet's end; block 0s come first, and Poly1305 reads the
//!   ciphertext after the data blocks when sealing, before them when opening;
//! * Poly1305 runs eight packets per register with AVX-512 IFMA (one packet per
//!   64-bit lane, 44-bit limbs, 52-bit multiply-adds), two registers' worth side
//!   by side, a packet's padding and lengths as the AEAD construction has them.
//!
//! Long packets gain little: their own blocks fill the lanes anyway. On the Xeon of
//! perf/README.md this is faster than intel-ipsec-mb's AVX-512 code up to about
//! 1 KB (64 B: 60 against 153 ns a packet sealed in bursts of 32) and slower
//! above; the dataplane's `Auto` uses it below that size.
//!
//! Like the other crates under `dpdk-bindings/`, this one holds `unsafe`
//! (CONVENTIONS.md, house rule 1), each with a `// SAFETY:` line: the masked
//! 64-byte loads and stores (the masks cover only the packet's bytes), the unaligned
//! loads of 16-byte blocks and of local word arrays and the store of a register into
//! one, the call into the `#[target_feature]` code (made
//! only through a [`ChaChaKey`], which exists only when the CPU has the features),
//! and the volatile wipe of the key on drop. Like ring's, the wipe covers the key
//! object, not the copies the compiler leaves in registers and on the stack (nor
//! the packets' one-time Poly1305 keys, which live on the stack for one call).

#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Bytes of the key.
pub const KEY_LEN: usize = 32;
/// Bytes of the nonce (RFC 8439 §2.8: 96 bits; for ESP, salt || IV, RFC 7634 §2).
pub const NONCE_LEN: usize = 12;
/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Most data bytes one packet may have: the 32-bit block counter starts at 1 for
/// the data (block 0 is the Poly1305 key) and must not wrap.
pub const MAX_DATA: u64 = ((1 << 32) - 1) * 64;

/// Why a key could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The key is not 32 bytes.
    KeyLength(usize),
    /// The CPU lacks AVX-512 F, BW or IFMA (or this is not x86-64).
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::KeyLength(n) => write!(f, "ChaCha20-Poly1305 key must be 32 bytes, got {n}"),
            Error::Unsupported => f.write_str("this CPU lacks AVX-512 F, BW or IFMA"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether this CPU can run this crate's code (AVX-512 F, BW and IFMA).
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

/// A ChaCha20-Poly1305 key. Wiped on drop; `Debug` shows nothing of it.
pub struct ChaChaKey {
    #[cfg(target_arch = "x86_64")]
    inner: x86::Key,
    #[cfg(not(target_arch = "x86_64"))]
    inner: core::convert::Infallible,
}

impl ChaChaKey {
    /// Take a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        let Ok(key) = <&[u8; KEY_LEN]>::try_from(key) else {
            return Err(Error::KeyLength(key.len()));
        };
        #[cfg(target_arch = "x86_64")]
        {
            x86::Key::new(key).map(|inner| ChaChaKey { inner })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = key;
            Err(Error::Unsupported)
        }
    }

    /// Encrypt each packet `data[i]` in place under `nonces[i]` and write its tag
    /// over `aads[i]` and the ciphertext to `tags[i]`. The slices are read up to the
    /// shortest one's length. A packet beyond [`MAX_DATA`] bytes fails closed: its
    /// data and tag come back zeroed.
    pub fn seal(
        &self,
        nonces: &[[u8; NONCE_LEN]],
        aads: &[&[u8]],
        data: &mut [&mut [u8]],
        tags: &mut [[u8; TAG_LEN]],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            self.inner.crypt::<true>(nonces, aads, data, tags);
            for (d, t) in data.iter_mut().zip(tags.iter_mut()) {
                if too_long(d) {
                    d.fill(0);
                    *t = [0; TAG_LEN];
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (nonces, aads, data, tags);
            match self.inner {}
        }
    }

    /// Check each packet's `tags[i]` over `aads[i]` and the ciphertext `data[i]`,
    /// decrypting it in place, and say in `authentic[i]` whether it matched
    /// (compared in constant time). Where it did not, `data[i]` holds the
    /// unauthenticated decryption and must be thrown away. Beyond [`MAX_DATA`] bytes
    /// nothing opens. The slices are read up to the shortest one's length.
    pub fn open(
        &self,
        nonces: &[[u8; NONCE_LEN]],
        aads: &[&[u8]],
        data: &mut [&mut [u8]],
        tags: &[[u8; TAG_LEN]],
        authentic: &mut [bool],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let mut computed = [[0u8; TAG_LEN]; x86::GROUP];
            let n = nonces.len().min(aads.len()).min(data.len()).min(tags.len()).min(authentic.len());
            for start in (0..n).step_by(x86::GROUP) {
                let end = n.min(start + x86::GROUP);
                let computed = &mut computed[..end - start];
                self.inner.crypt::<false>(&nonces[start..end], &aads[start..end], &mut data[start..end], computed);
                for (i, c) in (start..end).zip(computed.iter()) {
                    authentic[i] = !too_long(data[i]) && equal(c, &tags[i]);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (nonces, aads, data, tags, authentic);
            match self.inner {}
        }
    }
}

fn too_long(data: &[u8]) -> bool {
    data.len() as u64 > MAX_DATA
}

/// Whether two tags are equal, without a branch or early exit on their bytes.
#[cfg(target_arch = "x86_64")]
fn equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let diff = u128::from_ne_bytes(*a) ^ u128::from_ne_bytes(*b);
    core::hint::black_box(diff) == 0
}

impl core::fmt::Debug for ChaChaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChaChaKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
