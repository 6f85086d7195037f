//! The x86-64 code: AES-NI rounds, GHASH in POLYVAL form with PCLMULQDQ.
//!
//! GHASH(H, X₁…Xₙ) = ByteReverse(POLYVAL(mulX_POLYVAL(ByteReverse(H)),
//! ByteReverse(X₁)…ByteReverse(Xₙ))) (RFC 8452, Appendix A). A 16-byte string
//! byte-reversed and loaded little-endian is the block read big-endian, so one
//! `pshufb` turns a GCM block into a POLYVAL field element, where the 128×128-bit
//! carry-less product needs no shift and reduces modulo
//! x¹²⁸ + x¹²⁷ + x¹²⁶ + x¹²¹ + 1 with two multiplications by 0xC2·2⁵⁶.

use core::arch::x86_64::*;

use crate::{Error, NONCE_LEN, TAG_LEN};

/// Every feature the code below is compiled for; `available` checks the same list.
macro_rules! cpu {
    ($($item:item)*) => {
        $(#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx")] $item)*
    };
}

pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("avx")
}

/// `cpu!`'s features and the 256-bit AES and carry-less multiply (two blocks per
/// instruction) of the wide main loop; `wide_available` checks the same list.
macro_rules! cpu_wide {
    ($($item:item)*) => {
        $(#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq")] $item)*
    };
}

pub(crate) fn wide_available() -> bool {
    available()
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("vpclmulqdq")
}

/// `cpu_wide!`'s features and AVX-512 (F, BW): the 512-bit AES and carry-less
/// multiply of the 512-bit main loop (four blocks per instruction);
/// `wide512_available` checks the same list.
macro_rules! cpu_512 {
    ($($item:item)*) => {
        $(#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq,avx512f,avx512bw")] $item)*
    };
}

pub(crate) fn wide512_available() -> bool {
    wide_available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Blocks whose GHASH products are summed before one reduction (and whose AES
/// rounds run side by side in the main loop).
const LANES: usize = 8;

/// Blocks of a chunk of the 512-bit main loop: four registers of four blocks.
const BIG: usize = 16;

/// Four-block registers in a chunk of the 512-bit main loop.
const QUADS: usize = BIG / 4;

/// Block pairs in a chunk of the 256-bit main loop.
const PAIRS: usize = LANES / 2;

/// Most data bytes a packet may have to go through the two-packet path.
pub(crate) const PAIR_DATA: usize = 64;

pub(crate) struct Key {
    /// AES round keys: 11 used by AES-128, 15 by AES-256.
    rk: [__m128i; 15],
    /// H, H², …, H⁸ as POLYVAL elements (H = mulX_POLYVAL(ByteReverse(AES_K(0)))).
    h: [__m128i; LANES],
    aes256: bool,
    /// Whether the main loop may take the 256-bit path. Safety invariant: true only
    /// if `wide_available()` held (set in `Key::new`, only ever cleared elsewhere).
    wide: bool,
    /// For the two-packet path's 256-bit GHASH: slot t of [`SLOTS`] takes
    /// H^(SLOTS−t) in both lanes, with its Karatsuba middle operand. In an
    /// allocation of its own: held in `Key` (384 bytes more), 64 B encap measured
    /// 5-8% slower in the gateway with the same sealing code (`ab.sh`, best
    /// slices, three builds); boxed, the difference was gone.
    pair_h: Box<[[__m256i; 2]; SLOTS]>,
    /// Whether the main loop may take the 512-bit path. Safety invariant: true
    /// only if `wide512_available()` held (as for `wide`).
    wide512: bool,
    /// For the 512-bit loop: slot t of a 16-block GHASH group takes H^(16−t)
    /// (`[0]`) and its Karatsuba middle operand (`[1]`); slots 16 … 31 are zero,
    /// so a group of m < 16 blocks reads its powers from slot 16 − m on. Boxed
    /// for the reason `pair_h` is.
    big_h: Box<[[__m128i; 2 * BIG]; 2]>,
}

impl Key {
    /// `key` is 16 or 32 bytes (checked by the caller).
    pub(crate) fn new(key: &[u8]) -> Result<Key, Error> {
        if !available() {
            return Err(Error::Unsupported);
        }
        // SAFETY: the CPU has every feature `setup` is compiled for (checked above).
        let mut k = unsafe { setup(key) };
        k.wide = wide_available();
        k.wide512 = wide512_available();
        Ok(k)
    }

    /// The same key on the 128-bit main loop only (tests cover every path on a
    /// CPU that has the wider ones).
    #[cfg(test)]
    pub(crate) fn narrow(mut self) -> Key {
        self.wide = false;
        self.wide512 = false;
        self
    }

    /// The same key without the 512-bit main loop.
    #[cfg(test)]
    pub(crate) fn no512(mut self) -> Key {
        self.wide512 = false;
        self
    }

    pub(crate) fn key_len(&self) -> usize {
        if self.aes256 {
            32
        } else {
            16
        }
    }

    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> [u8; TAG_LEN] {
        // SAFETY: a `Key` exists only where `available()` held (`Key::new`).
        unsafe {
            if self.aes256 {
                seal::<14>(self, nonce, aad, data)
            } else {
                seal::<10>(self, nonce, aad, data)
            }
        }
    }

    /// Two packets with at most [`PAIR_DATA`] bytes of data and 16 of AAD each
    /// (checked by the caller).
    pub(crate) fn seal_pair(
        &self,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
    ) -> [[u8; TAG_LEN]; 2] {
        // SAFETY: a `Key` exists only where `available()` held (`Key::new`).
        unsafe {
            if self.aes256 {
                seal_pair::<14>(self, nonce, aad, data)
            } else {
                seal_pair::<10>(self, nonce, aad, data)
            }
        }
    }

    /// Four packets as [`Key::seal_pair`] takes two (checked by the caller), in
    /// the four lanes of the 512-bit path or as two pairs of 256-bit lanes;
    /// `None`, with nothing touched, where the key may take neither.
    pub(crate) fn seal_quad(
        &self,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        data: &mut [&mut [u8]; 4],
    ) -> Option<[[u8; TAG_LEN]; 4]> {
        let data = data.each_mut().map(|d| &mut **d);
        // SAFETY: `wide512` and `wide` are set only where `wide512_available()`
        // and `wide_available()` held (`Key::new`).
        Some(unsafe {
            match (self.wide512, self.wide, self.aes256) {
                (true, _, true) => seal_quad::<14>(self, nonce, aad, data),
                (true, _, false) => seal_quad::<10>(self, nonce, aad, data),
                (false, true, true) => seal_quad_wide::<14>(self, nonce, aad, data),
                (false, true, false) => seal_quad_wide::<10>(self, nonce, aad, data),
                (false, false, _) => return None,
            }
        })
    }

    /// As [`Key::seal_quad`], opening.
    pub(crate) fn open_quad(
        &self,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        data: &mut [&mut [u8]; 4],
        tag: [&[u8; TAG_LEN]; 4],
    ) -> Option<[bool; 4]> {
        let data = data.each_mut().map(|d| &mut **d);
        // SAFETY: as for `seal_quad`.
        Some(unsafe {
            match (self.wide512, self.wide, self.aes256) {
                (true, _, true) => open_quad::<14>(self, nonce, aad, data, tag),
                (true, _, false) => open_quad::<10>(self, nonce, aad, data, tag),
                (false, true, true) => open_quad_wide::<14>(self, nonce, aad, data, tag),
                (false, true, false) => open_quad_wide::<10>(self, nonce, aad, data, tag),
                (false, false, _) => return None,
            }
        })
    }

    /// As [`Key::seal_pair`], opening.
    pub(crate) fn open_pair(
        &self,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
        tag: [&[u8; TAG_LEN]; 2],
    ) -> [bool; 2] {
        // SAFETY: a `Key` exists only where `available()` held (`Key::new`).
        unsafe {
            if self.aes256 {
                open_pair::<14>(self, nonce, aad, data, tag)
            } else {
                open_pair::<10>(self, nonce, aad, data, tag)
            }
        }
    }

    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        // SAFETY: a `Key` exists only where `available()` held (`Key::new`).
        unsafe {
            if self.aes256 {
                open::<14>(self, nonce, aad, data, tag)
            } else {
                open::<10>(self, nonce, aad, data, tag)
            }
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        let zero = load(&[0; 16]);
        for r in self.rk.iter_mut().chain(self.h.iter_mut()) {
            // SAFETY: `r` is a valid, aligned, exclusive reference; volatile so the
            // wipe is not optimised away as a dead store.
            unsafe { core::ptr::write_volatile(r, zero) };
        }
        for r in self.pair_h.iter_mut().flatten() {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(r, core::mem::transmute::<[__m128i; 2], __m256i>([zero, zero])) };
        }
        for r in self.big_h.iter_mut().flatten() {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(r, zero) };
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// 16 bytes of 0xff then 16 zeros: the 16 bytes from `16 - n` on are the
/// mask of a block's first `n` bytes ([`xor_partial`]).
static PARTIAL_MASKS: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

#[inline(always)]
fn load(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes and `movdqu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline(always)]
fn store(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: `b` is 16 writable bytes and `movdqu` has no alignment requirement.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// Up to 8 bytes as a little-endian integer, in at most two overlapping loads
/// (no byte loop, and no store to a buffer that a wider load would then stall on).
#[inline(always)]
fn read_le(b: &[u8]) -> u64 {
    let n = b.len();
    match (
        b.first_chunk::<4>(),
        b.last_chunk::<4>(),
        b.first_chunk::<2>(),
        b.last_chunk::<2>(),
    ) {
        _ if n >= 8 => b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w)),
        (Some(a), Some(c), _, _) => {
            u64::from(u32::from_le_bytes(*a)) | u64::from(u32::from_le_bytes(*c)) << ((n - 4) * 8)
        }
        (_, _, Some(a), Some(c)) => {
            u64::from(u16::from_le_bytes(*a)) | u64::from(u16::from_le_bytes(*c)) << ((n - 2) * 8)
        }
        _ => b.first().map_or(0, |&x| u64::from(x)),
    }
}

/// Write the low `b.len()` (≤ 8) bytes of `v`, little-endian, the same way.
#[inline(always)]
fn write_le(b: &mut [u8], v: u64) {
    let n = b.len();
    if let Some(w) = b.first_chunk_mut::<8>() {
        *w = v.to_le_bytes();
    } else if n >= 4 {
        let hi = (v >> ((n - 4) * 8)) as u32;
        if let Some(w) = b.first_chunk_mut::<4>() {
            *w = (v as u32).to_le_bytes();
        }
        if let Some(w) = b.last_chunk_mut::<4>() {
            *w = hi.to_le_bytes();
        }
    } else if n >= 2 {
        let hi = (v >> ((n - 2) * 8)) as u16;
        if let Some(w) = b.first_chunk_mut::<2>() {
            *w = (v as u16).to_le_bytes();
        }
        if let Some(w) = b.last_chunk_mut::<2>() {
            *w = hi.to_le_bytes();
        }
    } else if let Some(x) = b.first_mut() {
        *x = v as u8;
    }
}

/// `$r` AES rounds on every register of `$x`, side by side, with the round keys
/// `$rk(r)` broadcast to the registers' width and that width's XOR, `vaesenc`
/// and `vaesenclast` (the side-by-side paths of 2 and 4 packets).
macro_rules! aes_rounds {
    ($x:expr, $rk:expr, $r:expr, $xor:ident, $enc:ident, $last:ident) => {{
        let (x, rk) = ($x, $rk);
        for v in x.iter_mut() {
            *v = $xor(*v, rk(0));
        }
        for r in 1..$r {
            let key = rk(r);
            for v in x.iter_mut() {
                *v = $enc(*v, key);
            }
        }
        let last = rk($r);
        for v in x.iter_mut() {
            *v = $last(*v, last);
        }
    }};
}

/// XOR `$data` (at most `$ks.len()` blocks, the last may be partial) with the
/// keystream `$ks` in place, handing each ciphertext block (a POLYVAL element) to
/// `$absorb`; a partial last block goes through `$partial` ([`xor_partial`], or
/// [`xor_partial_512`]'s byte masks). A macro,
/// not a function: a `#[target_feature]` function cannot be `#[inline(always)]`,
/// and as a call (with the GHASH state through memory) it cost more than the AES.
macro_rules! apply {
    ($seal:expr, $ks:expr, $data:expr, $absorb:expr, $partial:ident) => {{
        let (ks, data): (&[__m128i], &mut [u8]) = ($ks, $data);
        let absorb = &mut $absorb;
        let seal: bool = $seal;
        let (whole, tail) = data.split_at_mut(data.len() - data.len() % 16);
        let mut ks = ks.iter();
        for (c, k) in whole.chunks_exact_mut(16).zip(ks.by_ref()) {
            if let Some(b) = c.first_chunk_mut::<16>() {
                let x = load(b);
                let y = _mm_xor_si128(x, *k);
                store(b, y);
                absorb(rev(if seal { y } else { x }));
            }
        }
        if let (false, Some(k)) = (tail.is_empty(), ks.next()) {
            absorb(rev($partial(tail, *k, seal)));
        }
    }};
}

/// GHASH over `$aad` alone, its groups complete: the result's `s` is the
/// reduced value the data's groups continue from (a macro for the reason
/// `apply!` is).
macro_rules! ghash_aad {
    ($k:expr, $aad:expr) => {{
        let (k, aad): (&Key, &[u8]) = ($k, $aad);
        let mut g = ghash_new(&k.h, _mm_setzero_si128(), aad.len().div_ceil(16));
        match aad.len() {
            0 => {}
            // ESP's AAD is 8 or 12 bytes: one block, without the loop.
            1..=16 => absorb(&mut g, rev(load_partial_or_block(aad))),
            _ => absorb_bytes(&mut g, aad),
        }
        g
    }};
}

cpu! {
    /// Reverse the 16 bytes: a GCM block ↔ a POLYVAL element; a counter block ↔ a
    /// vector whose lowest 32-bit lane is the big-endian counter.
    #[inline]
    fn rev(x: __m128i) -> __m128i {
        _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    }

    /// Fewer than 16 bytes, zero-padded to a block.
    #[inline]
    fn load_partial(b: &[u8]) -> __m128i {
        // ESP's AAD (SPI || seq, 8 bytes; with ESN 12) without the general case's
        // branches.
        let word = |w: Option<&[u8; 8]>| w.map_or(0, |w| u64::from_le_bytes(*w)) as i64;
        match b.len() {
            8 => _mm_set_epi64x(0, word(b.first_chunk())),
            12 => {
                let hi = b.last_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
                _mm_set_epi64x(i64::from(hi), word(b.first_chunk()))
            }
            _ => {
                let (lo, hi) = b.split_at(b.len().min(8));
                _mm_set_epi64x(read_le(hi) as i64, read_le(lo) as i64)
            }
        }
    }

    /// The first `b.len()` (< 16) bytes of `v`.
    #[inline]
    fn store_partial(b: &mut [u8], v: __m128i) {
        let (lo, hi) = b.split_at_mut(b.len().min(8));
        write_le(lo, _mm_cvtsi128_si64(v) as u64);
        write_le(hi, _mm_extract_epi64::<1>(v) as u64);
    }

    /// XOR a partial last block (`tail`, 1 to 15 bytes) with the keystream block
    /// `k` in place; returns the block GHASH takes, zero-padded: the ciphertext
    /// (`seal`) or the data as it was.
    #[inline]
    fn xor_partial(tail: &mut [u8], k: __m128i, seal: bool) -> __m128i {
        // Keystream bytes past the data are masked off, so on seal `y` is the
        // zero-padded ciphertext block GHASH wants (on open, `x` is). The mask
        // is 16 bytes of PARTIAL_MASKS, one load: computed from the length
        // with branches, it and the general load and store were ~88
        // instructions a 64 B packet (GW=1 perf/esp/insns.sh decap 64).
        // The 4-, 8- and 12-byte tails every ESP payload has (RFC 4303 §2.4: the
        // ciphertext ends on a 4-byte boundary) load and store in one or two
        // moves, without the general case's branches.
        let n = tail.len();
        let mask = PARTIAL_MASKS.get(16 - n.min(16)..).and_then(|m| m.first_chunk::<16>()).map_or(_mm_setzero_si128(), load);
        let k = _mm_and_si128(k, mask);
        let half = |w: &[u8; 4]| u32::from_le_bytes(*w);
        let word = |w: &[u8; 8]| u64::from_le_bytes(*w);
        let (x, y) = match tail.len() {
            4 => match tail.first_chunk_mut::<4>() {
                Some(w) => {
                    let x = _mm_cvtsi32_si128(half(w) as i32);
                    let y = _mm_xor_si128(x, k);
                    *w = (_mm_cvtsi128_si32(y) as u32).to_le_bytes();
                    (x, y)
                }
                None => (k, k),
            },
            8 => match tail.first_chunk_mut::<8>() {
                Some(w) => {
                    let x = _mm_set_epi64x(0, word(w) as i64);
                    let y = _mm_xor_si128(x, k);
                    *w = (_mm_cvtsi128_si64(y) as u64).to_le_bytes();
                    (x, y)
                }
                None => (k, k),
            },
            12 => match tail.split_first_chunk_mut::<8>() {
                Some((lo, hi)) => match hi.first_chunk_mut::<4>() {
                    Some(hi) => {
                        let x = _mm_set_epi64x(i64::from(half(hi)), word(lo) as i64);
                        let y = _mm_xor_si128(x, k);
                        *lo = (_mm_cvtsi128_si64(y) as u64).to_le_bytes();
                        *hi = (_mm_extract_epi32::<2>(y) as u32).to_le_bytes();
                        (x, y)
                    }
                    None => (k, k),
                },
                None => (k, k),
            },
            _ => {
                let x = load_partial(tail);
                let y = _mm_xor_si128(x, k);
                store_partial(tail, y);
                (x, y)
            }
        };
        if seal { y } else { x }
    }

    /// Encrypt `N` blocks side by side with `R` rounds.
    #[inline]
    fn aes<const N: usize, const R: usize>(rk: &[__m128i; 15], b: &mut [__m128i; N]) {
        for x in b.iter_mut() {
            *x = _mm_xor_si128(*x, rk[0]);
        }
        for k in &rk[1..R] {
            for x in b.iter_mut() {
                *x = _mm_aesenc_si128(*x, *k);
            }
        }
        for x in b.iter_mut() {
            *x = _mm_aesenclast_si128(*x, rk[R]);
        }
    }

    /// The 256-bit product hi·x¹²⁸ + mid·x⁶⁴ + lo, times x⁻¹²⁸, modulo the POLYVAL
    /// polynomial: each 64-bit step adds d₀·P (P ≡ 1 mod x⁶⁴, so the low word
    /// cancels) and divides by x⁶⁴; d₀·(P − 1 − x¹²⁸)/x⁶⁴ is d₀ × 0xC2·2⁵⁶.
    #[inline]
    fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
        let lo = _mm_xor_si128(lo, _mm_slli_si128::<8>(mid));
        let hi = _mm_xor_si128(hi, _mm_srli_si128::<8>(mid));
        let poly = _mm_set_epi64x(0, 0xC200_0000_0000_0000_u64 as i64);
        let t = _mm_clmulepi64_si128::<0x00>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm_clmulepi64_si128::<0x00>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        _mm_xor_si128(hi, lo)
    }

    /// POLYVAL's dot(a, b) = a·b·x⁻¹²⁸.
    fn dot(a: __m128i, b: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128::<0x00>(a, b);
        let hi = _mm_clmulepi64_si128::<0x11>(a, b);
        let mid = _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(a, b), _mm_clmulepi64_si128::<0x10>(a, b));
        reduce(lo, mid, hi)
    }

    /// w ^ (w << 32) ^ (w << 64) ^ (w << 96), then ^ t: the next four words of the
    /// AES key schedule from the previous four and the g() word `t` broadcast.
    #[inline]
    fn expand(w: __m128i, t: __m128i) -> __m128i {
        let w = _mm_xor_si128(w, _mm_slli_si128::<4>(w));
        let w = _mm_xor_si128(w, _mm_slli_si128::<8>(w));
        _mm_xor_si128(w, t)
    }

    /// FIPS-197 §5.2 key expansion, then H and its powers.
    fn setup(key: &[u8]) -> Key {
        let zero = _mm_setzero_si128();
        let mut rk = [zero; 15];
        let aes256 = key.len() == 32;
        let k0 = key.first_chunk::<16>().map_or(zero, load);
        macro_rules! rcon_step {
            ($i:expr, $prev2:expr, $prev:expr, $rcon:literal) => {
                rk[$i] = expand($prev2, _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($prev)))
            };
        }
        rk[0] = k0;
        if aes256 {
            rk[1] = key.last_chunk::<16>().map_or(zero, load);
            // Odd round keys of AES-256 take SubWord of the previous key's last word, no rcon.
            macro_rules! sub_step {
                ($i:expr) => {
                    rk[$i] = expand(rk[$i - 2], _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(rk[$i - 1])))
                };
            }
            rcon_step!(2, rk[0], rk[1], 0x01);
            sub_step!(3);
            rcon_step!(4, rk[2], rk[3], 0x02);
            sub_step!(5);
            rcon_step!(6, rk[4], rk[5], 0x04);
            sub_step!(7);
            rcon_step!(8, rk[6], rk[7], 0x08);
            sub_step!(9);
            rcon_step!(10, rk[8], rk[9], 0x10);
            sub_step!(11);
            rcon_step!(12, rk[10], rk[11], 0x20);
            sub_step!(13);
            rcon_step!(14, rk[12], rk[13], 0x40);
        } else {
            rcon_step!(1, rk[0], rk[0], 0x01);
            rcon_step!(2, rk[1], rk[1], 0x02);
            rcon_step!(3, rk[2], rk[2], 0x04);
            rcon_step!(4, rk[3], rk[3], 0x08);
            rcon_step!(5, rk[4], rk[4], 0x10);
            rcon_step!(6, rk[5], rk[5], 0x20);
            rcon_step!(7, rk[6], rk[6], 0x40);
            rcon_step!(8, rk[7], rk[7], 0x80);
            rcon_step!(9, rk[8], rk[8], 0x1b);
            rcon_step!(10, rk[9], rk[9], 0x36);
        }
        let mut h = [zero];
        if aes256 {
            aes::<1, 14>(&rk, &mut h);
        } else {
            aes::<1, 10>(&rk, &mut h);
        }
        // mulX_POLYVAL(ByteReverse(H)): shift left one bit, fold bit 127 back in
        // as x¹²⁷ + x¹²⁶ + x¹²¹ + 1, without a branch on the key.
        let mut b = [0u8; 16];
        store(&mut b, h[0]);
        let v = u128::from_be_bytes(b);
        let v = (v << 1) ^ (0u128.wrapping_sub(v >> 127) & (0xC2 << 120 | 1));
        let h1 = _mm_set_epi64x((v >> 64) as i64, v as i64);
        let mut all = [h1; BIG];
        for i in 1..BIG {
            all[i] = dot(all[i - 1], h1);
        }
        let hx = |h: __m128i| _mm_xor_si128(h, _mm_shuffle_epi32::<0x4e>(h));
        let pair_h = Box::new(core::array::from_fn(|t| {
            let h = all[SLOTS - 1 - t];
            [_mm256_set_m128i(h, h), _mm256_set_m128i(hx(h), hx(h))]
        }));
        let slot = |t: usize| all.get(BIG.wrapping_sub(t + 1)).copied().unwrap_or(zero);
        let big_h = Box::new([core::array::from_fn(slot), core::array::from_fn(|t| hx(slot(t)))]);
        let powers: [__m128i; LANES] = core::array::from_fn(|i| all[i]);
        Key { rk, h: powers, aes256, wide: false, pair_h, wide512: false, big_h }
    }
}

/// GHASH over a known number of blocks, summing up to `LANES` products before
/// each reduction: block j of a group of m is multiplied by H^(m−j), and the
/// running value is added to the group's first block.
struct Ghash<'k> {
    h: &'k [__m128i; LANES],
    /// The reduced value after the last complete group (added to the next block).
    s: __m128i,
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
    /// Blocks left in the current group (its first group is the short one).
    left: usize,
    /// Blocks left after the current group.
    after: usize,
}

cpu! {
    /// A GHASH of `blocks` blocks continuing from the reduced value `s` (zero to
    /// start one; what the groups before left otherwise).
    #[inline]
    fn ghash_new(h: &[__m128i; LANES], s: __m128i, blocks: usize) -> Ghash<'_> {
        let first = (blocks.max(1) - 1) % LANES + 1;
        let zero = _mm_setzero_si128();
        Ghash { h, s, lo: zero, mid: zero, hi: zero, left: first, after: blocks.saturating_sub(first) }
    }

    /// acc += x·h, unreduced: [lo, mid, hi] of the 256-bit carry-less product.
    #[inline]
    fn mul_add(acc: &mut [__m128i; 3], x: __m128i, h: __m128i) {
        acc[0] = _mm_xor_si128(acc[0], _mm_clmulepi64_si128::<0x00>(x, h));
        acc[1] = _mm_xor_si128(
            acc[1],
            _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(x, h), _mm_clmulepi64_si128::<0x10>(x, h)),
        );
        acc[2] = _mm_xor_si128(acc[2], _mm_clmulepi64_si128::<0x11>(x, h));
    }

    /// GCM's last GHASH block: the AAD and data lengths in bits, as a POLYVAL element.
    #[inline]
    fn lengths(aad_len: usize, data_len: usize) -> __m128i {
        let bits = |n: usize| (n as u64).wrapping_mul(8) as i64;
        _mm_set_epi64x(bits(aad_len), bits(data_len))
    }

    /// 1 to 16 bytes as a block, zero-padded.
    #[inline]
    fn load_partial_or_block(b: &[u8]) -> __m128i {
        match b.first_chunk::<16>() {
            Some(w) => load(w),
            None => load_partial(b),
        }
    }

    /// Add one block (a POLYVAL element).
    #[inline]
    fn absorb(g: &mut Ghash<'_>, x: __m128i) {
        let x = _mm_xor_si128(x, g.s);
        g.s = _mm_setzero_si128();
        let mut acc = [g.lo, g.mid, g.hi];
        mul_add(&mut acc, x, g.h[g.left.wrapping_sub(1) % LANES]);
        [g.lo, g.mid, g.hi] = acc;
        g.left = g.left.wrapping_sub(1);
        if g.left == 0 {
            g.s = reduce(g.lo, g.mid, g.hi);
            g.lo = _mm_setzero_si128();
            g.mid = g.lo;
            g.hi = g.lo;
            g.left = g.after.min(LANES);
            g.after -= g.left;
        }
    }

    /// Absorb `bytes` as blocks, the last one zero-padded.
    #[inline]
    fn absorb_bytes(g: &mut Ghash<'_>, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(16);
        for b in blocks.by_ref() {
            if let Some(b) = b.first_chunk::<16>() {
                absorb(g, rev(load(b)));
            }
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            absorb(g, rev(load_partial(tail)));
        }
    }

    /// The next `N` counter blocks after `ctr` (inc32, SP 800-38D §6.2), in memory
    /// order; `ctr` is kept byte-reversed, its counter in the lowest 32-bit lane.
    #[inline]
    fn counters<const N: usize>(ctr: &mut __m128i) -> [__m128i; N] {
        let one = _mm_set_epi32(0, 0, 0, 1);
        let mut blocks = [_mm_setzero_si128(); N];
        for b in blocks.iter_mut() {
            *ctr = _mm_add_epi32(*ctr, one);
            *b = rev(*ctr);
        }
        blocks
    }

    /// The next `N` counter blocks after `ctr`, through AES.
    #[inline]
    fn keystream<const N: usize, const R: usize>(rk: &[__m128i; 15], ctr: &mut __m128i) -> [__m128i; N] {
        let mut ks = counters::<N>(ctr);
        aes::<N, R>(rk, &mut ks);
        ks
    }

    /// J0 = nonce || 1 (SP 800-38D §7.1, 96-bit IV), in memory order.
    #[inline]
    fn j0(nonce: &[u8; NONCE_LEN]) -> __m128i {
        // Read as 4 + 8 bytes, the way ESP builds a nonce (salt, then the packet's
        // IV), so each load lies inside one of the stores that just wrote it and is
        // forwarded; an 8-byte load across both would wait for them to retire.
        let (salt, iv) = nonce.split_at(4);
        let salt = salt.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
        let iv = iv.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
        let lo = u64::from(salt) | iv << 32;
        let hi = iv >> 32 | 0x0100_0000 << 32;
        _mm_set_epi64x(hi as i64, lo as i64)
    }

    /// Whether the computed tag equals `tag`, in constant time (one `ptest`).
    #[inline]
    fn tag_matches(computed: __m128i, tag: &[u8; TAG_LEN]) -> bool {
        let diff = _mm_xor_si128(computed, load(tag));
        _mm_testz_si128(diff, diff) == 1
    }

    /// Absorb the length block and return the tag, in memory order.
    #[inline]
    fn tag(mut g: Ghash<'_>, aad_len: usize, data_len: usize, mask: __m128i) -> __m128i {
        absorb(&mut g, lengths(aad_len, data_len));
        debug_assert!(g.left == 0 && g.after == 0, "GHASH block count off");
        _mm_xor_si128(rev(g.s), mask)
    }

    /// Encrypt (`SEAL`) or decrypt `data` in place; returns the tag over `aad` and
    /// the ciphertext, as the 16 bytes in memory order.
    #[inline]
    fn crypt<const R: usize, const SEAL: bool>(
        k: &Key,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> __m128i {
        let j0 = j0(nonce);
        let mut mask = [j0];
        aes::<1, R>(&k.rk, &mut mask);
        // Left where it is, the compiler sinks this AES to its one use at the end,
        // where its ~40 cycles of latency add to the GHASH's; through black_box it
        // runs beside the data blocks.
        let mask = core::hint::black_box(mask[0]);
        let mut ctr = rev(j0);
        let (aad_len, data_len) = (aad.len(), data.len());
        // GHASH groups: the AAD, each whole chunk of LANES data blocks (one reduction
        // each, the products summed with fixed powers of H: `chunk`), then the tail
        // with the length block. Any split into groups gives the same GHASH.
        let mut s = ghash_aad!(k, aad).s;
        if k.wide512 {
            // SAFETY: `wide512` is set only where `wide512_available()` held (`Key::new`).
            let s = unsafe { crypt_512::<R, SEAL>(k, ctr, s, data, lengths(aad_len, data_len)) };
            return _mm_xor_si128(rev(s), mask);
        }
        let (whole, tail) = data.split_at_mut(data_len - data_len % (16 * LANES));
        // Packets of at most [`PAIR_DATA`] bytes take the 128-bit path below even
        // on a wide CPU: `tail_wide`'s eight keystream blocks cost them 4-5 ns.
        if k.wide && data_len > PAIR_DATA {
            // SAFETY: `wide` is set only where `wide_available()` held (`Key::new`).
            let s = unsafe { rest_wide::<R, SEAL>(k, &mut ctr, s, whole, tail, lengths(aad_len, data_len)) };
            return _mm_xor_si128(rev(s), mask);
        }
        for c in whole.chunks_exact_mut(16 * LANES) {
            if let Some(c) = c.first_chunk_mut::<{ 16 * LANES }>() {
                s = chunk::<R, SEAL>(k, &mut ctr, s, c);
            }
        }
        let mut g = ghash_new(&k.h, s, tail.len().div_ceil(16) + 1);
        for part in tail.chunks_mut(16 * LANES / 2) {
            apply!(SEAL, &keystream::<{ LANES / 2 }, R>(&k.rk, &mut ctr), part, |x| absorb(&mut g, x), xor_partial);
        }
        tag(g, aad_len, data_len, mask)
    }

    /// Encrypt or decrypt one whole chunk of [`LANES`] blocks in place and return
    /// the GHASH value `s` after it: (s + c₁)·Hᴸ + c₂·Hᴸ⁻¹ + … + c_L·H, one
    /// reduction, with the H powers at fixed places (the general `absorb` picks
    /// them per block and tests for the group's end: at 1392 B that cost twice the
    /// AES).
    #[inline]
    fn chunk<const R: usize, const SEAL: bool>(
        k: &Key,
        ctr: &mut __m128i,
        s: __m128i,
        c: &mut [u8; 16 * LANES],
    ) -> __m128i {
        let ks = keystream::<LANES, R>(&k.rk, ctr);
        let zero = _mm_setzero_si128();
        let mut acc = [zero; 3];
        for (i, k_i) in ks.iter().enumerate() {
            if let Some(b) = c.get_mut(16 * i..16 * i + 16).and_then(|b| b.first_chunk_mut::<16>()) {
                let x = load(b);
                let y = _mm_xor_si128(x, *k_i);
                store(b, y);
                let e = rev(if SEAL { y } else { x });
                mul_add(&mut acc, if i == 0 { _mm_xor_si128(e, s) } else { e }, k.h[LANES - 1 - i]);
            }
        }
        reduce(acc[0], acc[1], acc[2])
    }
}

cpu_wide! {
    /// [`crypt`]'s data after the AAD on the 256-bit path: `whole` in chunks,
    /// then `tail` and the length block `len`; returns the GHASH value.
    fn rest_wide<const R: usize, const SEAL: bool>(
        k: &Key,
        ctr: &mut __m128i,
        mut s: __m128i,
        whole: &mut [u8],
        tail: &mut [u8],
        len: __m128i,
    ) -> __m128i {
        // Chunks of 16 blocks (eight AES chains, where four wait out each
        // round's latency) from two of them on; below, their second call's
        // set-up costs more than they save (500 B: 134 / 143 ns open / seal in
        // 8-block chunks, 141 / 153 with a 16-block one).
        let split = if whole.len() >= 64 * LANES { whole.len() - whole.len() % (32 * LANES) } else { 0 };
        let (big, rest) = whole.split_at_mut(split);
        if !big.is_empty() {
            s = chunks_wide::<R, SEAL, { 2 * PAIRS }>(k, ctr, s, big);
        }
        if !rest.is_empty() {
            s = chunks_wide::<R, SEAL, PAIRS>(k, ctr, s, rest);
        }
        tail_wide::<R, SEAL>(k, ctr, s, tail, len)
    }

    /// [`chunk`] over every whole chunk of 2`Q` blocks of `whole` (a multiple of
    /// `32 * Q` bytes; `Q` is 4 or 8), two blocks per instruction: counter pairs
    /// through 256-bit AES
    /// rounds, and the ciphertext pairs times (H^(2j), H^(2j−1)) pairs, the two
    /// lanes summed before the one reduction per chunk. The GHASH of a chunk runs
    /// while the next chunk's AES does (sealing, it needs that chunk's AES
    /// output; in turn the two would wait on each other).
    #[inline]
    fn chunks_wide<const R: usize, const SEAL: bool, const Q: usize>(
        k: &Key,
        ctr: &mut __m128i,
        mut s: __m128i,
        whole: &mut [u8],
    ) -> __m128i {
        let rk: [__m256i; 15] = core::array::from_fn(|i| _mm256_broadcastsi128_si256(k.rk[i]));
        // Pair j holds blocks 2j and 2j + 1 of a chunk of 2Q: H^(2Q−2j) and
        // H^(2Q−2j−1), which `big_h` holds at slots 16 − 2Q + 2j and the next.
        let hv: [__m256i; Q] = core::array::from_fn(|j| {
            let t = BIG - 2 * Q + 2 * j;
            _mm256_set_m128i(k.big_h[0][t + 1], k.big_h[0][t])
        });
        let hv = hv.map(|h| [h, halves_xor(h)]);
        let two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
        let mut pending: Option<[__m256i; Q]> = None;
        for c in whole.chunks_exact_mut(32 * Q) {
            let mut next = _mm256_add_epi32(_mm256_broadcastsi128_si256(*ctr), _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 1));
            *ctr = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, 2 * Q as i32));
            let mut ks = [_mm256_setzero_si256(); Q];
            for x in ks.iter_mut() {
                *x = _mm256_xor_si256(rev2(next), rk[0]);
                next = _mm256_add_epi32(next, two);
            }
            for key in &rk[1..R] {
                for x in ks.iter_mut() {
                    *x = _mm256_aesenc_epi128(*x, *key);
                }
            }
            for x in ks.iter_mut() {
                *x = _mm256_aesenclast_epi128(*x, rk[R]);
            }
            if let Some(p) = pending {
                s = ghash_pairs(&hv, s, &p);
            }
            let mut blocks = [_mm256_setzero_si256(); Q];
            for (j, (k_j, e)) in ks.iter().zip(blocks.iter_mut()).enumerate() {
                if let Some(b) = c.get_mut(32 * j..32 * j + 32).and_then(|b| b.first_chunk_mut::<32>()) {
                    // SAFETY: `b` is 32 readable and writable bytes; `vmovdqu` has no
                    // alignment requirement.
                    let x = unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
                    let y = _mm256_xor_si256(x, *k_j);
                    // SAFETY: as for the load.
                    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), y) };
                    *e = rev2(if SEAL { y } else { x });
                }
            }
            pending = Some(blocks);
        }
        if let Some(p) = pending {
            s = ghash_pairs(&hv, s, &p);
        }
        s
    }

    /// The rest after [`chunks_wide`]: n ≤ 8 blocks (`tail` is shorter than a
    /// chunk), the last maybe partial, then the length block `len`, as one GHASH
    /// group: the keystream of four counter pairs after `ctr` (whatever n),
    /// and slot t of the n + 1 times H^(n+1−t), read in pairs from `big_h` at
    /// slot 15 − n + t. The 128-bit path's tail picked each block's power at run
    /// time and ran its AES four blocks at a time (500 B, whose tail is 7 blocks
    /// and 4 bytes, sealed 21 ns slower than 512 B).
    #[inline]
    fn tail_wide<const R: usize, const SEAL: bool>(
        k: &Key,
        ctr: &__m128i,
        s: __m128i,
        tail: &mut [u8],
        len: __m128i,
    ) -> __m128i {
        let base = _mm256_add_epi32(_mm256_broadcastsi128_si256(*ctr), _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 1));
        let mut ks: [__m256i; PAIRS] = core::array::from_fn(|j| {
            let j = 2 * j as i32;
            rev2(_mm256_add_epi32(base, _mm256_set_epi32(0, 0, 0, j, 0, 0, 0, j)))
        });
        let rk = |r: usize| _mm256_broadcastsi128_si256(k.rk[r]);
        aes_rounds!(&mut ks, rk, R, _mm256_xor_si256, _mm256_aesenc_epi128, _mm256_aesenclast_epi128);
        let ks: [__m128i; LANES] = core::array::from_fn(|i| {
            if i % 2 == 0 {
                _mm256_castsi256_si128(ks[i / 2])
            } else {
                _mm256_extracti128_si256::<1>(ks[i / 2])
            }
        });
        // Slots 0 … n: the blocks, then `len`; s added to the first.
        let zero = _mm_setzero_si128();
        let mut e = [zero; LANES + 2];
        let n = tail.len().div_ceil(16);
        let mut slot = 0;
        apply!(SEAL, &ks, tail, |x| {
            if let Some(v) = e.get_mut(slot) {
                *v = x;
            }
            slot += 1;
        }, xor_partial);
        if let Some(v) = e.get_mut(n) {
            *v = len;
        }
        e[0] = _mm_xor_si128(e[0], s);
        let first = BIG - (n + 1);
        let at = |v: &[__m128i; 2 * BIG], t: usize| match v.get(t..t + 2) {
            // SAFETY: two consecutive 16-byte vectors are 32 readable bytes.
            Some(w) => unsafe { _mm256_loadu_si256(w.as_ptr().cast()) },
            None => _mm256_setzero_si256(),
        };
        let pairs = (0..(n + 2) / 2).map(|j| {
            let t = first + 2 * j;
            (_mm256_set_m128i(e[2 * j + 1], e[2 * j]), [at(&k.big_h[0], t), at(&k.big_h[1], t)])
        });
        let mut acc = [_mm256_setzero_si256(); 3];
        for (x, h) in pairs {
            karatsuba_add2(&mut acc, x, &h);
        }
        fold_reduce(karatsuba_done(acc))
    }

    /// Both lanes' blocks byte-reversed (GCM block ↔ POLYVAL element).
    #[inline]
    fn rev2(x: __m256i) -> __m256i {
        let m = _mm256_set_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        );
        _mm256_shuffle_epi8(x, m)
    }

    /// Each lane's two 64-bit halves XORed together (in both halves): Karatsuba's
    /// middle operand.
    #[inline]
    fn halves_xor(x: __m256i) -> __m256i {
        _mm256_xor_si256(x, _mm256_shuffle_epi32::<0x4e>(x))
    }

    /// The GHASH value after one chunk's blocks `e` (POLYVAL elements in pairs)
    /// from `s`: (s + e₁)·Hᴸ + e₂·Hᴸ⁻¹ + … + e_L·H, with `hv` the H pairs and
    /// their `halves_xor`. Karatsuba: three carry-less products per block, not
    /// four (the middle term is (a₀+a₁)(b₀+b₁) − lo − hi, summed over the chunk
    /// first); the multiplier, not the AES, bounds this loop.
    #[inline]
    fn ghash_pairs<const Q: usize>(hv: &[[__m256i; 2]; Q], s: __m128i, e: &[__m256i; Q]) -> __m128i {
        let first = _mm256_xor_si256(e[0], _mm256_set_m128i(_mm_setzero_si128(), s));
        fold_reduce(karatsuba(core::iter::once(first).chain(e[1..].iter().copied()).zip(hv.iter())))
    }

    /// The two lanes of Karatsuba sums added, then reduced.
    #[inline]
    fn fold_reduce([lo, mid, hi]: [__m256i; 3]) -> __m128i {
        let fold = |v: __m256i| _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        reduce(fold(lo), fold(mid), fold(hi))
    }

    /// Σ xᵢ·hᵢ, unreduced, in each 128-bit lane, for pairs of x and [h,
    /// `halves_xor(h)`]: [lo, mid, hi] by Karatsuba, three carry-less products
    /// per pair, the middle term completed (summed first, then − lo − hi).
    #[inline]
    fn karatsuba<'h>(pairs: impl Iterator<Item = (__m256i, &'h [__m256i; 2])>) -> [__m256i; 3] {
        let mut acc = [_mm256_setzero_si256(); 3];
        for (x, h) in pairs {
            karatsuba_add2(&mut acc, x, h);
        }
        karatsuba_done(acc)
    }

    /// One pair of [`karatsuba`]'s sums added to `acc`, the middle term not yet
    /// completed.
    #[inline]
    fn karatsuba_add2(acc: &mut [__m256i; 3], x: __m256i, [h, hx]: &[__m256i; 2]) {
        acc[0] = _mm256_xor_si256(acc[0], _mm256_clmulepi64_epi128::<0x00>(x, *h));
        acc[2] = _mm256_xor_si256(acc[2], _mm256_clmulepi64_epi128::<0x11>(x, *h));
        acc[1] = _mm256_xor_si256(acc[1], _mm256_clmulepi64_epi128::<0x00>(halves_xor(x), *hx));
    }

    /// [`karatsuba_add2`]'s sums with the middle term completed (− lo − hi).
    #[inline]
    fn karatsuba_done([lo, mid, hi]: [__m256i; 3]) -> [__m256i; 3] {
        [lo, _mm256_xor_si256(mid, _mm256_xor_si256(lo, hi)), hi]
    }
}

/// The keystream of the next `$n` (≤ 4) registers of counter blocks from
/// `$next`, with the GHASH of `$pending` (the last chunk's blocks, from `$s`,
/// powers from slot 0) between its rounds, one register per round; `$s` is
/// then the value after `$pending`. A macro for the reason `apply!` is: as a
/// call, the main loop passed its registers through memory (1 KB sealed in
/// 124 instead of 100 ns).
macro_rules! keystream_512 {
    ($k:expr, $rk:expr, $next:expr, $pending:expr, $s:expr, $n:expr, $r:expr) => {{
        let (k, rk, next, pending, s): (&Key, &[__m512i; 15], &mut __m512i, Option<&[__m512i; QUADS]>, &mut __m128i) =
            ($k, $rk, $next, $pending, $s);
        let four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
        let mut ks = [_mm512_setzero_si512(); $n];
        for x in ks.iter_mut() {
            *x = _mm512_xor_si512(rev4(*next), rk[0]);
            *next = _mm512_add_epi32(*next, four);
        }
        // In program order after all the rounds, the products wait for the last
        // chunk's AES and this chunk's rounds queue behind them: sealing 1 KB
        // measured 133 instead of 100 ns.
        let mut acc = [_mm512_setzero_si512(); 3];
        for (r, key) in rk[1..$r].iter().enumerate() {
            for x in ks.iter_mut() {
                *x = _mm512_aesenc_epi128(*x, *key);
            }
            if let Some(x) = pending.and_then(|p| p.get(r)) {
                let x = if r == 0 { _mm512_xor_si512(*x, _mm512_zextsi128_si512(*s)) } else { *x };
                karatsuba_add(&mut acc, x, powers(k, 4 * r));
            }
        }
        for x in ks.iter_mut() {
            *x = _mm512_aesenclast_epi128(*x, rk[$r]);
        }
        if pending.is_some() {
            *s = karatsuba_reduce(acc);
        }
        ks
    }};
}

cpu_512! {
    /// GCM's data part and GHASH from the AAD's value `s`, four blocks per
    /// instruction: every whole chunk of [`BIG`] blocks (four independent AES
    /// chains of four counter blocks), then the rest (< 256 bytes) as one more
    /// chunk under byte masks, with the length block `len` after its last block
    /// ([`tail_512`]). Each chunk's sixteen GHASH products run between the next
    /// chunk's AES rounds and end in one reduction. Returns the final GHASH
    /// value (a POLYVAL element).
    #[inline]
    fn crypt_512<const R: usize, const SEAL: bool>(
        k: &Key,
        ctr: __m128i,
        mut s: __m128i,
        data: &mut [u8],
        len: __m128i,
    ) -> __m128i {
        let rk: [__m512i; 15] = core::array::from_fn(|i| _mm512_broadcast_i32x4(k.rk[i]));
        let mut next = _mm512_add_epi32(
            _mm512_broadcast_i32x4(ctr),
            _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1),
        );
        let (big, tail) = data.split_at_mut(data.len() - data.len() % (16 * BIG));
        // The first chunk apart, so that the loop's GHASH has no `None` case.
        let mut chunks = big.chunks_exact_mut(16 * BIG).filter_map(|c| c.first_chunk_mut::<{ 16 * BIG }>());
        let mut pending = None;
        if let Some(c) = chunks.next() {
            let ks = keystream_512!(k, &rk, &mut next, None, &mut s, QUADS, R);
            let mut last = xor_chunk_512::<SEAL>(c, &ks);
            for c in chunks {
                let ks = keystream_512!(k, &rk, &mut next, Some(&last), &mut s, QUADS, R);
                last = xor_chunk_512::<SEAL>(c, &ks);
            }
            pending = Some(last);
        }
        let p = pending.as_ref();
        // Only the registers the rest needs go through AES.
        match tail.len().div_ceil(64) {
            0 => tail_512::<R, SEAL, 0>(k, &rk, &mut next, p, s, tail, len),
            1 => tail_512::<R, SEAL, 1>(k, &rk, &mut next, p, s, tail, len),
            2 => tail_512::<R, SEAL, 2>(k, &rk, &mut next, p, s, tail, len),
            3 => tail_512::<R, SEAL, 3>(k, &rk, &mut next, p, s, tail, len),
            _ => tail_512::<R, SEAL, QUADS>(k, &rk, &mut next, p, s, tail, len),
        }
    }

    /// [`crypt_512`]'s rest: n ≤ 16 blocks in `N` registers, the last block maybe
    /// partial, then `len`. Bytes past the data are neither read nor written and
    /// count as zero in the GHASH.
    #[inline]
    fn tail_512<const R: usize, const SEAL: bool, const N: usize>(
        k: &Key,
        rk: &[__m512i; 15],
        next: &mut __m512i,
        pending: Option<&[__m512i; QUADS]>,
        mut s: __m128i,
        tail: &mut [u8],
        len: __m128i,
    ) -> __m128i {
        let ks = keystream_512!(k, rk, next, pending, &mut s, N, R);
        let n = tail.len().div_ceil(16);
        let mut e = [_mm512_setzero_si512(); QUADS];
        for (j, (k_j, e)) in ks.iter().zip(e.iter_mut()).enumerate() {
            let bytes = tail.len().saturating_sub(64 * j).min(64);
            if let Some(b) = tail.get_mut(64 * j..64 * j + bytes).filter(|b| !b.is_empty()) {
                let m: __mmask64 = if bytes == 64 { u64::MAX } else { (1 << bytes) - 1 };
                // SAFETY: the mask covers exactly `b`'s bytes, which are readable and
                // writable; masked-off bytes are not accessed.
                let x = unsafe { _mm512_maskz_loadu_epi8(m, b.as_ptr().cast()) };
                let y = _mm512_xor_si512(x, *k_j);
                // SAFETY: as for the load.
                unsafe { _mm512_mask_storeu_epi8(b.as_mut_ptr().cast(), m, y) };
                *e = rev4(if SEAL { _mm512_maskz_mov_epi8(m, y) } else { x });
            }
        }
        // `len` into slot n; then the group of n + 1 blocks takes H^(n+1) … H
        // from slot 15 − n on, s added to its first block. Sixteen blocks (241 to
        // 255 bytes) fill the group: `len` follows on its own.
        let first = BIG.checked_sub(n + 1);
        if let (Some(_), Some(q)) = (first, e.get_mut(n / 4)) {
            *q = _mm512_mask_broadcast_i32x4(*q, 0xf << (4 * (n % 4)), len);
        }
        let mut acc = [_mm512_setzero_si512(); 3];
        for (j, x) in e.iter().enumerate().take(n / 4 + 1) {
            let x = if j == 0 { _mm512_xor_si512(*x, _mm512_zextsi128_si512(s)) } else { *x };
            karatsuba_add(&mut acc, x, powers(k, first.unwrap_or(0) + 4 * j));
        }
        let s = karatsuba_reduce(acc);
        if first.is_some() {
            s
        } else {
            dot(_mm_xor_si128(s, len), k.h[0])
        }
    }

    /// One whole chunk XORed in place with the keystream `ks`; returns its
    /// ciphertext blocks as POLYVAL elements.
    #[inline]
    fn xor_chunk_512<const SEAL: bool>(c: &mut [u8; 16 * BIG], ks: &[__m512i; QUADS]) -> [__m512i; QUADS] {
        let mut blocks = [_mm512_setzero_si512(); QUADS];
        for (j, (k_j, e)) in ks.iter().zip(blocks.iter_mut()).enumerate() {
            if let Some(b) = c.get_mut(64 * j..64 * j + 64).and_then(|b| b.first_chunk_mut::<64>()) {
                // SAFETY: `b` is 64 readable and writable bytes; `vmovdqu64` has no
                // alignment requirement.
                let x = unsafe { _mm512_loadu_si512(b.as_ptr().cast()) };
                let y = _mm512_xor_si512(x, *k_j);
                // SAFETY: as for the load.
                unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), y) };
                *e = rev4(if SEAL { y } else { x });
            }
        }
        blocks
    }

    /// The powers of H for four GHASH slots from slot `t` on (≤ 28), with their
    /// Karatsuba middle operands.
    #[inline]
    fn powers(k: &Key, t: usize) -> [__m512i; 2] {
        let at = |v: &[__m128i; 2 * BIG]| match v.get(t..t + 4) {
            // SAFETY: four consecutive 16-byte vectors are 64 readable bytes.
            Some(w) => unsafe { _mm512_loadu_si512(w.as_ptr().cast()) },
            None => _mm512_setzero_si512(),
        };
        [at(&k.big_h[0]), at(&k.big_h[1])]
    }

    /// Each of the four lanes' blocks byte-reversed.
    #[inline]
    fn rev4(x: __m512i) -> __m512i {
        let m = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm512_shuffle_epi8(x, _mm512_broadcast_i32x4(m))
    }

    /// acc += x·h, unreduced, in each lane (Karatsuba: three carry-less products)
    /// for `h` = [h, `halves_xor(h)`].
    #[inline]
    fn karatsuba_add(acc: &mut [__m512i; 3], x: __m512i, [h, hx]: [__m512i; 2]) {
        acc[0] = _mm512_xor_si512(acc[0], _mm512_clmulepi64_epi128::<0x00>(x, h));
        acc[2] = _mm512_xor_si512(acc[2], _mm512_clmulepi64_epi128::<0x11>(x, h));
        let xx = _mm512_xor_si512(x, _mm512_shuffle_epi32::<0x4e>(x));
        acc[1] = _mm512_xor_si512(acc[1], _mm512_clmulepi64_epi128::<0x00>(xx, hx));
    }

    /// The four lanes of `karatsuba_add`'s sums added, the middle term completed,
    /// and reduced.
    #[inline]
    fn karatsuba_reduce([lo, mid, hi]: [__m512i; 3]) -> __m128i {
        let mid = _mm512_xor_si512(mid, _mm512_xor_si512(lo, hi));
        let fold = |v: __m512i| {
            let v = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
            _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
        };
        reduce(fold(lo), fold(mid), fold(hi))
    }
}

/// One packet of the side-by-side paths: XOR its data with the keystream `$ks`
/// (`$ks[0]` is J0's, for the tag) and put its GHASH blocks (AAD, data, lengths)
/// at the end of `$e`'s [`SLOTS`] slots: block j of n goes to slot SLOTS − n + j,
/// which takes H^(n−j) whatever n is, and the empty slots in front add nothing;
/// a partial last block goes through `$partial` (as in `apply!`). A macro for
/// the reason `apply!` is.
macro_rules! fill_slots {
    ($seal:expr, $ks:expr, $aad:expr, $data:expr, $e:expr, $partial:ident) => {{
        let (ks, a, d, ep): (&[__m128i; PER], &[u8], &mut [u8], &mut [__m128i; SLOTS]) = ($ks, $aad, $data, $e);
        let (aad_len, data_len) = (a.len(), d.len());
        let mut slot = SLOTS - (usize::from(aad_len > 0) + data_len.div_ceil(16) + 1);
        let mut put = |v: __m128i| {
            if let Some(s) = ep.get_mut(slot) {
                *s = v;
            }
            slot += 1;
        };
        if aad_len > 0 {
            put(rev(load_partial_or_block(a)));
        }
        apply!($seal, &ks[1..], d, put, $partial);
        put(lengths(aad_len, data_len));
    }};
}

/// Counter blocks per packet of the two-packet path: J0 and the data's.
const PER: usize = 1 + PAIR_DATA / 16;

/// GHASH blocks per packet of the two-packet path at most: AAD, data, lengths.
const SLOTS: usize = PER + 1;
const _: () = assert!(SLOTS <= LANES, "the pair path's powers of H are precomputed");

cpu! {
    /// Two short packets at once (data ≤ [`PAIR_DATA`] bytes, AAD ≤ 16, checked
    /// by the caller): both packets' J0 and four counter blocks go through the AES
    /// rounds side by side, so neither waits out the other's latency.
    #[inline]
    fn crypt_pair<const R: usize, const SEAL: bool>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
    ) -> [__m128i; 2] {
        let mut blocks = [_mm_setzero_si128(); 2 * PER];
        for (p, n) in nonce.iter().enumerate() {
            let j0 = j0(n);
            blocks[p * PER] = j0;
            blocks[p * PER + 1..(p + 1) * PER].copy_from_slice(&counters::<{ PER - 1 }>(&mut rev(j0)));
        }
        aes::<{ 2 * PER }, R>(&k.rk, &mut blocks);
        // One packet's XOR and GHASH; written out twice below (not a loop) so each
        // copy indexes `blocks` with constants.
        let one = |ks: &[__m128i; PER], a: &[u8], d: &mut [u8]| {
            // At most 6 blocks (AAD, 4 of data, lengths): block j of n takes H^(n−j)
            // and one reduction ends it, with no group bookkeeping.
            let (aad_len, data_len) = (a.len(), d.len());
            let mut power = usize::from(aad_len > 0) + data_len.div_ceil(16) + 1;
            let zero = _mm_setzero_si128();
            let mut acc = [zero; 3];
            let mut add = |x: __m128i| {
                mul_add(&mut acc, x, k.h[power.wrapping_sub(1) % LANES]);
                power = power.wrapping_sub(1);
            };
            if aad_len > 0 {
                add(rev(load_partial_or_block(a)));
            }
            apply!(SEAL, &ks[1..], d, add, xor_partial);
            add(lengths(aad_len, data_len));
            _mm_xor_si128(rev(reduce(acc[0], acc[1], acc[2])), ks[0])
        };
        let (k0, k1) = blocks.split_at(PER);
        let (Ok(k0), Ok(k1)) = (<&[__m128i; PER]>::try_from(k0), <&[__m128i; PER]>::try_from(k1)) else {
            unreachable!("blocks holds two packets' counter blocks")
        };
        let [d0, d1] = data;
        [one(k0, aad[0], d0), one(k1, aad[1], d1)]
    }

    /// [`crypt_pair`] or, where the key may ([`Key::wide`]), [`crypt_pairs_wide`].
    #[inline]
    fn crypt_pair_any<const R: usize, const SEAL: bool>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
    ) -> [__m128i; 2] {
        if k.wide {
            // SAFETY: `wide` is set only where `wide_available()` held (`Key::new`).
            let [t] = unsafe { crypt_pairs_wide::<R, SEAL, 1>(k, [nonce], [aad], [data]) };
            t
        } else {
            crypt_pair::<R, SEAL>(k, nonce, aad, data)
        }
    }
}

cpu_wide! {
    /// [`crypt_pair`] in 256-bit registers for `M` pairs of packets, pair m's
    /// first packet in the low lanes of its registers: block i of both packets
    /// of a pair through the AES rounds in one register (half the AES
    /// instructions), all `M` pairs' registers round by round, and each pair's
    /// GHASHes side by side. With `M` = 2 (four packets) the AES runs ten
    /// independent chains, enough to fill the AES units where one pair's five
    /// wait out each round's latency.
    #[inline]
    fn crypt_pairs_wide<const R: usize, const SEAL: bool, const M: usize>(
        k: &Key,
        nonce: [[&[u8; NONCE_LEN]; 2]; M],
        aad: [[&[u8]; 2]; M],
        data: [[&mut [u8]; 2]; M],
    ) -> [[__m128i; 2]; M] {
        // Counters byte-reversed (their 32-bit counter in each lane's lowest
        // word): J0 + i in both lanes, then back to memory order.
        let mut x: [[__m256i; PER]; M] = core::array::from_fn(|m| {
            let base = _mm256_set_m128i(rev(j0(nonce[m][1])), rev(j0(nonce[m][0])));
            core::array::from_fn(|i| {
                let i = i as i32;
                rev2(_mm256_add_epi32(base, _mm256_set_epi32(0, 0, 0, i, 0, 0, 0, i)))
            })
        });
        let rk = |r: usize| _mm256_broadcastsi128_si256(k.rk[r]);
        aes_rounds!(x.as_flattened_mut(), rk, R, _mm256_xor_si256, _mm256_aesenc_epi128, _mm256_aesenclast_epi128);
        // Each packet's data XOR and its GHASH blocks, aligned at the end: block
        // j of n goes to slot SLOTS − n + j, which takes H^(n−j) whatever n is,
        // and the empty slots in front add nothing. Then each pair's GHASH in
        // the two lanes: one 256-bit product per slot, one reduction for both.
        let zero = _mm_setzero_si128();
        let mut out = [[zero; 2]; M];
        for (((x, aad), data), out) in x.iter().zip(aad).zip(data).zip(out.iter_mut()) {
            let mut e = [[zero; SLOTS]; 2];
            let mut ks0 = [zero; 2];
            for (p, (a, d)) in aad.into_iter().zip(data).enumerate() {
                let ks: [__m128i; PER] = core::array::from_fn(|i| {
                    if p == 0 {
                        _mm256_castsi256_si128(x[i])
                    } else {
                        _mm256_extracti128_si256::<1>(x[i])
                    }
                });
                ks0[p] = ks[0];
                fill_slots!(SEAL, &ks, a, d, &mut e[p], xor_partial);
            }
            let slots = (0..SLOTS).map(|t| _mm256_set_m128i(e[1][t], e[0][t]));
            let [lo, mid, hi] = karatsuba(slots.zip(k.pair_h.iter()));
            let s = reduce2(lo, mid, hi);
            *out = [
                _mm_xor_si128(rev(_mm256_castsi256_si128(s)), ks0[0]),
                _mm_xor_si128(rev(_mm256_extracti128_si256::<1>(s)), ks0[1]),
            ];
        }
        out
    }

    /// [`crypt_pairs_wide`] for four packets, as two pairs.
    #[inline]
    fn crypt_quad_wide<const R: usize, const SEAL: bool>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        data: [&mut [u8]; 4],
    ) -> [__m128i; 4] {
        let [n0, n1, n2, n3] = nonce;
        let [a0, a1, a2, a3] = aad;
        let [d0, d1, d2, d3] = data;
        let [[t0, t1], [t2, t3]] = crypt_pairs_wide::<R, SEAL, 2>(k, [[n0, n1], [n2, n3]], [[a0, a1], [a2, a3]], [[d0, d1], [d2, d3]]);
        [t0, t1, t2, t3]
    }

    /// [`reduce`] in each 128-bit lane.
    #[inline]
    fn reduce2(lo: __m256i, mid: __m256i, hi: __m256i) -> __m256i {
        let lo = _mm256_xor_si256(lo, _mm256_slli_si256::<8>(mid));
        let hi = _mm256_xor_si256(hi, _mm256_srli_si256::<8>(mid));
        let c = 0xC200_0000_0000_0000_u64 as i64;
        let poly = _mm256_set_epi64x(0, c, 0, c);
        let t = _mm256_clmulepi64_epi128::<0x00>(lo, poly);
        let lo = _mm256_xor_si256(_mm256_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm256_clmulepi64_epi128::<0x00>(lo, poly);
        let lo = _mm256_xor_si256(_mm256_shuffle_epi32::<0x4e>(lo), t);
        _mm256_xor_si256(hi, lo)
    }
}

cpu_512! {
    /// [`crypt_pair_wide`] for four packets in 512-bit registers, packet p in
    /// lane p: block i of all four through the AES rounds in one register, and
    /// their GHASHes side by side, one reduction for the four.
    #[inline]
    fn crypt_quad<const R: usize, const SEAL: bool>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 4],
        aad: [&[u8]; 4],
        data: [&mut [u8]; 4],
    ) -> [__m128i; 4] {
        let base = lanes4(nonce.map(|n| rev(j0(n))));
        let mut x: [__m512i; PER] = core::array::from_fn(|i| {
            let i = i as i32;
            rev4(_mm512_add_epi32(base, _mm512_set_epi32(0, 0, 0, i, 0, 0, 0, i, 0, 0, 0, i, 0, 0, 0, i)))
        });
        let rk = |r: usize| _mm512_broadcast_i32x4(k.rk[r]);
        aes_rounds!(&mut x, rk, R, _mm512_xor_si512, _mm512_aesenc_epi128, _mm512_aesenclast_epi128);
        let zero = _mm_setzero_si128();
        let mut e = [[zero; SLOTS]; 4];
        let mut ks0 = [zero; 4];
        for (p, (a, d)) in aad.into_iter().zip(data).enumerate() {
            let ks: [__m128i; PER] = core::array::from_fn(|i| lane(x[i], p));
            ks0[p] = ks[0];
            fill_slots!(SEAL, &ks, a, d, &mut e[p], xor_partial_512);
        }
        // Slot t takes H^(SLOTS−t) in all four lanes: `pair_h`'s two lanes twice.
        let mut acc = [_mm512_setzero_si512(); 3];
        for (t, [h, hx]) in k.pair_h.iter().enumerate() {
            let v = lanes4([e[0][t], e[1][t], e[2][t], e[3][t]]);
            karatsuba_add(&mut acc, v, [_mm512_broadcast_i64x4(*h), _mm512_broadcast_i64x4(*hx)]);
        }
        let s = reduce4(acc);
        core::array::from_fn(|p| _mm_xor_si128(rev(lane(s, p)), ks0[p]))
    }

    /// [`xor_partial`] under a byte mask: one masked load and one masked store,
    /// which touch only `tail`'s bytes.
    #[inline]
    fn xor_partial_512(tail: &mut [u8], k: __m128i, seal: bool) -> __m128i {
        let m: __mmask64 = (1 << tail.len().min(16)) - 1;
        // SAFETY: the mask covers exactly `tail`'s bytes (fewer than 16), which
        // are readable and writable; masked-off bytes are not accessed.
        let x = unsafe { _mm512_maskz_loadu_epi8(m, tail.as_ptr().cast()) };
        let y = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(x, _mm512_zextsi128_si512(k)));
        // SAFETY: as for the load.
        unsafe { _mm512_mask_storeu_epi8(tail.as_mut_ptr().cast(), m, y) };
        _mm512_castsi512_si128(if seal { y } else { x })
    }

    /// Four 128-bit values as the lanes of one register, the first lowest.
    #[inline]
    fn lanes4(v: [__m128i; 4]) -> __m512i {
        let lo = _mm256_set_m128i(v[1], v[0]);
        let hi = _mm256_set_m128i(v[3], v[2]);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }

    /// Lane `p` (0 to 3) of `v`.
    #[inline]
    fn lane(v: __m512i, p: usize) -> __m128i {
        match p {
            0 => _mm512_castsi512_si128(v),
            1 => _mm512_extracti32x4_epi32::<1>(v),
            2 => _mm512_extracti32x4_epi32::<2>(v),
            _ => _mm512_extracti32x4_epi32::<3>(v),
        }
    }

    /// [`reduce`] in each lane of `karatsuba_add`'s sums (the middle term
    /// completed first).
    #[inline]
    fn reduce4([lo, mid, hi]: [__m512i; 3]) -> __m512i {
        let mid = _mm512_xor_si512(mid, _mm512_xor_si512(lo, hi));
        let lo = _mm512_xor_si512(lo, _mm512_bslli_epi128::<8>(mid));
        let hi = _mm512_xor_si512(hi, _mm512_bsrli_epi128::<8>(mid));
        let poly = _mm512_broadcast_i32x4(_mm_set_epi64x(0, 0xC200_0000_0000_0000_u64 as i64));
        let t = _mm512_clmulepi64_epi128::<0x00>(lo, poly);
        let lo = _mm512_xor_si512(_mm512_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm512_clmulepi64_epi128::<0x00>(lo, poly);
        let lo = _mm512_xor_si512(_mm512_shuffle_epi32::<0x4e>(lo), t);
        _mm512_xor_si512(hi, lo)
    }
}

/// The sealing and opening entry points of a four-packet path: `$seal` and
/// `$open`, compiled for the features `$cpu` names, around `$crypt` (which
/// only inlines into functions that have all of its features).
macro_rules! quad_entries {
    ($cpu:ident, $seal:ident, $open:ident, $crypt:ident) => {
        $cpu! {
            fn $seal<const R: usize>(
                k: &Key,
                nonce: [&[u8; NONCE_LEN]; 4],
                aad: [&[u8]; 4],
                data: [&mut [u8]; 4],
            ) -> [[u8; TAG_LEN]; 4] {
                tags($crypt::<R, true>(k, nonce, aad, data))
            }

            fn $open<const R: usize>(
                k: &Key,
                nonce: [&[u8; NONCE_LEN]; 4],
                aad: [&[u8]; 4],
                data: [&mut [u8]; 4],
                tag: [&[u8; TAG_LEN]; 4],
            ) -> [bool; 4] {
                verdicts($crypt::<R, false>(k, nonce, aad, data), tag)
            }
        }
    };
}

quad_entries!(cpu_512, seal_quad, open_quad, crypt_quad);
quad_entries!(cpu_wide, seal_quad_wide, open_quad_wide, crypt_quad_wide);

cpu! {
    /// The side-by-side paths' tags, stored.
    #[inline]
    fn tags<const N: usize>(t: [__m128i; N]) -> [[u8; TAG_LEN]; N] {
        let mut tags = [[0u8; TAG_LEN]; N];
        for (tag, t) in tags.iter_mut().zip(t) {
            store(tag, t);
        }
        tags
    }

    /// Whether each of the side-by-side paths' tags matches the packet's.
    #[inline]
    fn verdicts<const N: usize>(t: [__m128i; N], tag: [&[u8; TAG_LEN]; N]) -> [bool; N] {
        core::array::from_fn(|p| tag_matches(t[p], tag[p]))
    }

    fn seal_pair<const R: usize>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
    ) -> [[u8; TAG_LEN]; 2] {
        tags(crypt_pair_any::<R, true>(k, nonce, aad, data))
    }

    fn open_pair<const R: usize>(
        k: &Key,
        nonce: [&[u8; NONCE_LEN]; 2],
        aad: [&[u8]; 2],
        data: [&mut [u8]; 2],
        tag: [&[u8; TAG_LEN]; 2],
    ) -> [bool; 2] {
        verdicts(crypt_pair_any::<R, false>(k, nonce, aad, data), tag)
    }

    fn seal<const R: usize>(k: &Key, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        store(&mut tag, crypt::<R, true>(k, nonce, aad, data));
        tag
    }

    fn open<const R: usize>(
        k: &Key,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        tag_matches(crypt::<R, false>(k, nonce, aad, data), tag)
    }
}
