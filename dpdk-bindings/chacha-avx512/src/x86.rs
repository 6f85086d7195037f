//! The x86-64 AVX-512 code: sixteen ChaCha20 blocks per pass (one per 32-bit lane,
//! state word i of every block in register i); Poly1305 in [`poly1305`].

use core::arch::x86_64::*;

use crate::{Error, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Every feature the code below is compiled for; `available` checks the same list.
macro_rules! cpu {
    ($($item:item)*) => {
        $(#[target_feature(enable = "avx512f,avx512bw,avx512ifma")] $item)*
    };
}

pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

mod poly1305;

use poly1305::OneTimeKey;

/// Packets whose blocks share passes: a DPDK burst.
pub(crate) const GROUP: usize = 32;

/// Blocks per pass: 32-bit lanes of a 512-bit register.
const LANES: usize = 16;

/// "expand 32-byte k" as four little-endian words (RFC 8439 §2.3).
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

pub(crate) struct Key {
    words: [u32; 8],
}

impl Key {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Result<Key, Error> {
        if !available() {
            return Err(Error::Unsupported);
        }
        let mut words = [0u32; 8];
        for (w, b) in words.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(Key { words })
    }

    /// Seal (`SEAL`) or open the packets, writing each one's computed tag.
    pub(crate) fn crypt<const SEAL: bool>(
        &self,
        nonces: &[[u8; NONCE_LEN]],
        aads: &[&[u8]],
        data: &mut [&mut [u8]],
        tags: &mut [[u8; TAG_LEN]],
    ) {
        let n = nonces.len().min(aads.len()).min(data.len()).min(tags.len());
        for start in (0..n).step_by(GROUP) {
            let end = n.min(start + GROUP);
            // SAFETY: a `Key` exists only where `available()` held (`Key::new`).
            unsafe {
                crypt_group::<SEAL>(&self.words, &nonces[start..end], &aads[start..end], &mut data[start..end], &mut tags[start..end]);
            }
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for w in self.words.iter_mut() {
            // SAFETY: `w` is a valid, aligned, exclusive reference; volatile so the
            // wipe is not optimised away as a dead store.
            unsafe { core::ptr::write_volatile(w, 0) };
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

fn le32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w))
}

/// One quarter round on four registers of sixteen lanes (RFC 8439 §2.1).
macro_rules! quarter {
    ($x:ident, $a:expr, $b:expr, $c:expr, $d:expr) => {
        $x[$a] = _mm512_add_epi32($x[$a], $x[$b]);
        $x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512($x[$d], $x[$a]));
        $x[$c] = _mm512_add_epi32($x[$c], $x[$d]);
        $x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512($x[$b], $x[$c]));
        $x[$a] = _mm512_add_epi32($x[$a], $x[$b]);
        $x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512($x[$d], $x[$a]));
        $x[$c] = _mm512_add_epi32($x[$c], $x[$d]);
        $x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512($x[$b], $x[$c]));
    };
}

/// Which block each lane makes: packet index and block counter.
#[derive(Clone, Copy, Default)]
struct Lane {
    packet: usize,
    counter: u32,
}

cpu! {
    /// Seal or open up to [`GROUP`] packets. Their blocks go to the lanes in
    /// order, a pass per sixteen: first every packet's block 0 (its Poly1305 key),
    /// then the data blocks. Poly1305 reads the ciphertext after the data passes
    /// when sealing, before them when opening.
    unsafe fn crypt_group<const SEAL: bool>(
        key: &[u32; 8],
        nonces: &[[u8; NONCE_LEN]],
        aads: &[&[u8]],
        data: &mut [&mut [u8]],
        tags: &mut [[u8; TAG_LEN]],
    ) {
        let n = data.len().min(GROUP);
        let mut keys = [OneTimeKey::default(); GROUP];
        let mut lanes = [Lane::default(); LANES];
        let mut filled = 0;
        macro_rules! deal {
            ($packet:expr, $counter:expr) => {
                lanes[filled] = Lane { packet: $packet, counter: $counter };
                filled += 1;
                if filled == LANES {
                    pass(key, nonces, data, &mut keys, &lanes);
                    filled = 0;
                }
            };
        }
        macro_rules! flush {
            () => {
                if filled > 0 {
                    pass(key, nonces, data, &mut keys, &lanes[..filled]);
                    filled = 0;
                }
            };
        }
        let usable = |d: &[u8]| !crate::too_long(d);
        for packet in 0..n {
            if usable(data[packet]) {
                deal!(packet, 0);
            }
        }
        if !SEAL {
            flush!();
            poly1305::tags(&keys[..n], aads, data, tags);
        }
        for packet in 0..n {
            if usable(data[packet]) {
                for counter in 1..=data[packet].len().div_ceil(64) as u32 {
                    deal!(packet, counter);
                }
            }
        }
        if filled > 0 {
            pass(key, nonces, data, &mut keys, &lanes[..filled]);
        }
        if SEAL {
            poly1305::tags(&keys[..n], aads, data, tags);
        }
    }

    /// Make the lanes' blocks and apply each: block 0 is its packet's Poly1305 key,
    /// a data block is XORed into its 64 bytes of the packet.
    fn pass(
        key: &[u32; 8],
        nonces: &[[u8; NONCE_LEN]],
        data: &mut [&mut [u8]],
        keys: &mut [OneTimeKey; GROUP],
        lanes: &[Lane],
    ) {
        let mut words = [[0u32; LANES]; 4];
        for (i, lane) in lanes.iter().enumerate() {
            let nonce = nonces.get(lane.packet).map_or(&[0; NONCE_LEN], |n| n);
            words[0][i] = lane.counter;
            for (w, n) in words[1..].iter_mut().zip(nonce.chunks_exact(4)) {
                w[i] = le32(n);
            }
        }
        let blocks = keystream(key, [load_words(words[0]), load_words(words[1]), load_words(words[2]), load_words(words[3])]);
        for (lane, ks) in lanes.iter().zip(blocks) {
            if lane.counter == 0 {
                if let Some(k) = keys.get_mut(lane.packet) {
                    let w = to_u64s(ks);
                    *k = OneTimeKey::new([w[0], w[1], w[2], w[3]]);
                }
                continue;
            }
            let Some(chunk) = data.get_mut(lane.packet).and_then(|d| d.get_mut((lane.counter as usize - 1) * 64..)) else { continue };
            let len = chunk.len().min(64);
            let mask = if len == 64 { u64::MAX } else { (1u64 << len) - 1 };
            // SAFETY: the mask covers only `chunk`'s first `len` bytes, all in the
            // slice; masked-off bytes are neither read nor written.
            let input = unsafe { _mm512_maskz_loadu_epi8(mask, chunk.as_ptr().cast()) };
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_epi8(chunk.as_mut_ptr().cast(), mask, _mm512_xor_si512(input, ks)) };
        }
    }

    /// Sixteen ChaCha20 blocks for the counters and nonce words in `words`
    /// (registers 12–15 of the state), one per lane, returned as sixteen 64-byte blocks.
    fn keystream(key: &[u32; 8], words: [__m512i; 4]) -> [__m512i; LANES] {
        let k = |i: usize| _mm512_set1_epi32(key[i] as i32);
        let s = |i: usize| _mm512_set1_epi32(SIGMA[i] as i32);
        let start = [s(0), s(1), s(2), s(3), k(0), k(1), k(2), k(3), k(4), k(5), k(6), k(7), words[0], words[1], words[2], words[3]];
        let mut x = start;
        for _ in 0..10 {
            quarter!(x, 0, 4, 8, 12);
            quarter!(x, 1, 5, 9, 13);
            quarter!(x, 2, 6, 10, 14);
            quarter!(x, 3, 7, 11, 15);
            quarter!(x, 0, 5, 10, 15);
            quarter!(x, 1, 6, 11, 12);
            quarter!(x, 2, 7, 8, 13);
            quarter!(x, 3, 4, 9, 14);
        }
        for (x, s) in x.iter_mut().zip(start) {
            *x = _mm512_add_epi32(*x, s);
        }
        transpose(x)
    }

    /// From "register i holds word i of the sixteen blocks" to "register j holds
    /// block j": 4×4 transposes of words inside each 128-bit quarter, then of
    /// quarters across registers.
    fn transpose(x: [__m512i; LANES]) -> [__m512i; LANES] {
        // q[g][r]: quarter k holds words 4g..4g+3 of block 4k + r.
        let mut q = [[_mm512_setzero_si512(); 4]; 4];
        for (g, q) in q.iter_mut().enumerate() {
            let [a, b, c, d] = [x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]];
            let (ab_lo, ab_hi) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
            let (cd_lo, cd_hi) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
            *q = [
                _mm512_unpacklo_epi64(ab_lo, cd_lo),
                _mm512_unpackhi_epi64(ab_lo, cd_lo),
                _mm512_unpacklo_epi64(ab_hi, cd_hi),
                _mm512_unpackhi_epi64(ab_hi, cd_hi),
            ];
        }
        let mut out = [_mm512_setzero_si512(); LANES];
        for r in 0..4 {
            let low = _mm512_shuffle_i32x4::<0x44>(q[0][r], q[1][r]);
            let high = _mm512_shuffle_i32x4::<0xEE>(q[0][r], q[1][r]);
            let low2 = _mm512_shuffle_i32x4::<0x44>(q[2][r], q[3][r]);
            let high2 = _mm512_shuffle_i32x4::<0xEE>(q[2][r], q[3][r]);
            out[r] = _mm512_shuffle_i32x4::<0x88>(low, low2);
            out[4 + r] = _mm512_shuffle_i32x4::<0xDD>(low, low2);
            out[8 + r] = _mm512_shuffle_i32x4::<0x88>(high, high2);
            out[12 + r] = _mm512_shuffle_i32x4::<0xDD>(high, high2);
        }
        out
    }

    fn load_words(w: [u32; LANES]) -> __m512i {
        // SAFETY: `w` is 64 readable bytes; `vmovdqu32` needs no alignment.
        unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }
    }

    pub(super) fn to_u64s(v: __m512i) -> [u64; 8] {
        let mut out = [0u64; 8];
        // SAFETY: `out` is 64 writable bytes; `vmovdqu64` needs no alignment.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
        out
    }
}
