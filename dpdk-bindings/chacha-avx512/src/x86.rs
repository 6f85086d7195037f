//! The x86-64 AVX-512 code: sixteen ChaCha20 blocks per pass (one per 32-bit lane,
//! state word i of every block in register i), scalar Poly1305 per packet.

use core::arch::x86_64::*;

use crate::{Error, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Every feature the code below is compiled for; `available` checks the same list.
macro_rules! cpu {
    ($($item:item)*) => {
        $(#[target_feature(enable = "avx512f,avx512bw")] $item)*
    };
}

pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
}

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

/// Poly1305 (RFC 8439 §2.5) in 64-bit limbs: h = h0 + h1·2⁶⁴ + h2·2¹²⁸, kept
/// below 2¹³⁰ + 2¹²⁸·3 between blocks; r clamped, so r1 is a multiple of 4 and
/// h1·r1·2¹²⁸ ≡ h1·(r1 + r1/4) (mod 2¹³⁰ − 5).
#[derive(Clone, Copy, Default)]
struct Poly {
    h: [u64; 3],
    r: [u64; 2],
    /// r1 + r1/4 = 5·r1/4.
    s1: u64,
    /// The key's second half, added at the end.
    pad: [u64; 2],
}

impl Poly {
    fn new(one_time_key: &[u64; 4]) -> Poly {
        let r = [one_time_key[0] & 0x0fff_fffc_0fff_ffff, one_time_key[1] & 0x0fff_fffc_0fff_fffc];
        Poly { h: [0; 3], r, s1: r[1] + (r[1] >> 2), pad: [one_time_key[2], one_time_key[3]] }
    }

    /// Absorb one 16-byte block (m0, m1 little-endian) with its 2¹²⁸ bit.
    #[inline(always)]
    fn block(&mut self, m0: u64, m1: u64) {
        self.absorb(m0, m1, 1);
    }

    /// Absorb m0 + m1·2⁶⁴ + top·2¹²⁸ (top ≤ 1).
    #[inline(always)]
    fn absorb(&mut self, m0: u64, m1: u64, top: u64) {
        let wide = |a: u64, b: u64| u128::from(a) * u128::from(b);
        let [r0, r1] = self.r;
        let (h0, c) = self.h[0].overflowing_add(m0);
        let t = u128::from(self.h[1]) + u128::from(m1) + u128::from(c);
        let h1 = t as u64;
        let h2 = self.h[2] + (t >> 64) as u64 + top;
        // h·r, with h2 ≤ 6 and r0, r1 < 2⁶⁰: no sum below overflows.
        let d0 = wide(h0, r0) + wide(h1, self.s1);
        let d1 = wide(h0, r1) + wide(h1, r0) + u128::from(h2 * self.s1) + (d0 >> 64);
        let d2 = h2 * r0 + (d1 >> 64) as u64;
        // Bits from 2¹³⁰ up fold back times 5.
        let fold = u128::from(d0 as u64) + u128::from((d2 >> 2) * 5);
        let t = u128::from(d1 as u64) + (fold >> 64);
        self.h = [fold as u64, t as u64, (d2 & 3) + (t >> 64) as u64];
    }

    /// Absorb `bytes` as 16-byte blocks, the last one zero-padded (the AEAD's pad16).
    fn padded(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(16);
        for b in blocks.by_ref() {
            let (lo, hi) = b.split_at(8);
            self.block(le64(lo), le64(hi));
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            let (lo, hi) = last.split_at(8);
            self.block(le64(lo), le64(hi));
        }
    }

    /// The tag: h reduced modulo 2¹³⁰ − 5, plus the pad, modulo 2¹²⁸.
    fn finish(&self) -> [u8; TAG_LEN] {
        let [h0, h1, h2] = self.h;
        // g = h + 5 − 2¹³⁰ is the reduced value when h ≥ 2¹³⁰ − 5 (h < 2·(2¹³⁰ − 5)).
        let (g0, c) = h0.overflowing_add(5);
        let t = u128::from(h1) + u128::from(c);
        let g2 = h2 + (t >> 64) as u64;
        let take_g = 0u64.wrapping_sub(g2 >> 2);
        let h0 = (h0 & !take_g) | (g0 & take_g);
        let h1 = (h1 & !take_g) | (t as u64 & take_g);
        let tag = (u128::from(h0) | u128::from(h1) << 64).wrapping_add(u128::from(self.pad[0]) | u128::from(self.pad[1]) << 64);
        tag.to_le_bytes()
    }
}

fn le64(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
}

fn le32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w))
}

/// Packets whose Poly1305 chains are interleaved block by block: each block's
/// products wait on the previous block's, so one chain alone leaves the
/// multipliers idle most of the time.
const CHAINS: usize = 4;

/// Absorb each packet's AAD and ciphertext (each zero-padded to 16 bytes) into its
/// keyed Poly1305, [`CHAINS`] packets side by side.
fn authenticate(poly: &mut [Poly], aads: &[&[u8]], data: &[&mut [u8]]) {
    for ((poly, aads), data) in poly.chunks_mut(CHAINS).zip(aads.chunks(CHAINS)).zip(data.chunks(CHAINS)) {
        for (p, aad) in poly.iter_mut().zip(aads) {
            p.padded(aad);
        }
        let most = data.iter().map(|d| d.len().div_ceil(16)).max().unwrap_or(0);
        for i in 0..most {
            for (p, d) in poly.iter_mut().zip(data) {
                if let Some((m0, m1)) = block_of(d, i) {
                    p.block(m0, m1);
                }
            }
        }
    }
}

/// Block `i` of `d` as two little-endian words, a partial last block zero-padded;
/// `None` past the end.
#[inline(always)]
fn block_of(d: &[u8], i: usize) -> Option<(u64, u64)> {
    if let Some(b) = d.get(i * 16..i * 16 + 16) {
        return Some((le64(b), le64(&b[8..])));
    }
    let rest = d.get(i * 16..).filter(|r| !r.is_empty())?;
    let mut last = [0u8; 16];
    last[..rest.len()].copy_from_slice(rest);
    Some((le64(&last), le64(&last[8..])))
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
        let mut poly = [Poly::default(); GROUP];
        let mut lanes = [Lane::default(); LANES];
        let mut filled = 0;
        macro_rules! deal {
            ($packet:expr, $counter:expr) => {
                lanes[filled] = Lane { packet: $packet, counter: $counter };
                filled += 1;
                if filled == LANES {
                    pass(key, nonces, data, &mut poly, &lanes);
                    filled = 0;
                }
            };
        }
        macro_rules! flush {
            () => {
                if filled > 0 {
                    pass(key, nonces, data, &mut poly, &lanes[..filled]);
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
            authenticate(&mut poly[..n], aads, data);
        }
        for packet in 0..n {
            if usable(data[packet]) {
                for counter in 1..=data[packet].len().div_ceil(64) as u32 {
                    deal!(packet, counter);
                }
            }
        }
        if filled > 0 {
            pass(key, nonces, data, &mut poly, &lanes[..filled]);
        }
        if SEAL {
            authenticate(&mut poly[..n], aads, data);
        }
        for ((p, (aad, d)), tag) in poly.iter_mut().zip(aads.iter().zip(data.iter())).zip(tags.iter_mut()) {
            p.block(aad.len() as u64, d.len() as u64);
            *tag = p.finish();
        }
    }

    /// Make the lanes' blocks and apply each: block 0 keys its packet's Poly1305,
    /// a data block is XORed into its 64 bytes of the packet.
    fn pass(
        key: &[u32; 8],
        nonces: &[[u8; NONCE_LEN]],
        data: &mut [&mut [u8]],
        poly: &mut [Poly; GROUP],
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
                if let Some(p) = poly.get_mut(lane.packet) {
                    let k = to_u64s(ks);
                    *p = Poly::new(&[k[0], k[1], k[2], k[3]]);
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

    fn to_u64s(v: __m512i) -> [u64; 8] {
        let mut out = [0u64; 8];
        // SAFETY: `out` is 64 writable bytes; `vmovdqu64` needs no alignment.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.5.2.
    #[test]
    fn poly1305_rfc8439_vector() {
        let key = hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b").expect("hex");
        let k: Vec<u64> = key.chunks_exact(8).map(le64).collect();
        let mut p = Poly::new(&[k[0], k[1], k[2], k[3]]);
        let msg = b"Cryptographic Forum Research Group";
        let mut blocks = msg.chunks_exact(16);
        for b in blocks.by_ref() {
            p.block(le64(&b[..8]), le64(&b[8..]));
        }
        // The 2-byte tail as the bare Poly1305 pads it: a 1 after its last byte, no 2¹²⁸ bit.
        let rest = blocks.remainder();
        let mut last = [0u8; 17];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] = 1;
        p.absorb(le64(&last[..8]), le64(&last[8..16]), 0);
        assert_eq!(hex::encode(p.finish()), "a8061dc1305136c6c22b8baf0c0127a9");
    }

    /// The last reduction, which random inputs reach about once in 2⁶⁶ tags: h ≥
    /// 2¹³⁰ − 5 comes out as h − (2¹³⁰ − 5), below it unchanged.
    #[test]
    fn final_reduction_modulo_p() {
        let pad = [0x1111, 0x2222];
        for (h, want) in [
            ([u64::MAX - 5, u64::MAX, 3], [u64::MAX - 5, u64::MAX]),
            ([u64::MAX - 4, u64::MAX, 3], [0, 0]),
            ([u64::MAX - 3, u64::MAX, 3], [1, 0]),
            ([2, 0, 4], [7, 0]),
            ([u64::MAX, u64::MAX, 4], [4, 0]),
        ] {
            let p = Poly { h, pad, ..Poly::default() };
            let sum = (u128::from(want[0]) | u128::from(want[1]) << 64).wrapping_add(0x2222 << 64 | 0x1111);
            assert_eq!(p.finish(), sum.to_le_bytes(), "{h:x?}");
        }
    }
}
