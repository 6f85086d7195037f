//! Poly1305 (RFC 8439 §2.5) for eight packets at once on AVX-512 IFMA: one packet
//! per 64-bit lane, h and r in limbs of 44, 44 and 42 bits, each block's nine limb
//! products taken 52 bits at a time (`vpmadd52luq` for the low half,
//! `vpmadd52huq` for the high). Two such groups go side by side, so one group's
//! multiply latency hides behind the other's.

use core::arch::x86_64::*;

use super::{to_u64s, GROUP};
use crate::TAG_LEN;

/// A packet's Poly1305 key (block 0 of its ChaCha20 keystream): r clamped, and s.
#[derive(Clone, Copy, Default)]
pub(super) struct OneTimeKey {
    r: [u64; 2],
    s: [u64; 2],
}

impl OneTimeKey {
    /// From the block's first 32 bytes as little-endian words.
    pub(super) fn new(k: [u64; 4]) -> Self {
        OneTimeKey { r: [k[0] & 0x0fff_fffc_0fff_ffff, k[1] & 0x0fff_fffc_0fff_fffc], s: [k[2], k[3]] }
    }
}

const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

/// Packets per group: 64-bit lanes.
const LANES: usize = 8;

/// Groups side by side.
const GROUPS: usize = 2;

/// Packets of the groups side by side.
const SIDE_MAX: usize = LANES * GROUPS;

/// Which packet of its group each lane holds: four blocks are loaded per register
/// and two registers' 64-bit halves interleaved, so lane l gets packet `PACKET[l]`.
const PACKET: [usize; LANES] = [0, 4, 1, 5, 2, 6, 3, 7];

/// A zero block, read by lanes whose packet has no block at this step (their
/// result is then discarded).
const ZERO: [u8; 16] = [0; 16];

/// Eight packets' h = h0 + h1·2⁴⁴ + h2·2⁸⁸ (h0, h2 carried below 2⁴⁴, 2⁴²; h1
/// below 2⁴⁴ + 2¹⁴), their r in the same limbs, and s = 20·r1, 20·r2: terms of
/// weight 2¹³² fold back as 2¹³² = 4·2¹³⁰ ≡ 4·5 (mod 2¹³⁰ − 5).
#[derive(Clone, Copy)]
struct Group {
    h: [__m512i; 3],
    r: [__m512i; 3],
    s: [__m512i; 2],
}

cpu! {
    /// The tag of each packet over its AAD and ciphertext (RFC 8439 §2.8: each
    /// zero-padded to 16 bytes, then both lengths), keyed by `keys`. Packets of
    /// about the same length share groups (a burst of mixed sizes is taken in order
    /// of length), so few lanes wait on a longer neighbour.
    pub(super) fn tags(keys: &[OneTimeKey], aads: &[&[u8]], data: &[&mut [u8]], tags: &mut [[u8; TAG_LEN]]) {
        let n = keys.len().min(aads.len()).min(data.len()).min(tags.len()).min(GROUP);
        let mut order = [0u8; GROUP];
        for i in 0..n {
            // Insertion sort by length: at most 32 packets, mostly in order already.
            let mut j = i;
            while j > 0 && data[usize::from(order[j - 1])].len() > data[i].len() {
                order[j] = order[j - 1];
                j -= 1;
            }
            order[j] = i as u8;
        }
        for side in order[..n].chunks(SIDE_MAX) {
            if side.len() <= LANES {
                groups::<1>(side, keys, aads, data, tags);
            } else {
                groups::<GROUPS>(side, keys, aads, data, tags);
            }
        }
    }

    /// [`tags`] for the packets `side` names, up to `G` groups of eight side by
    /// side, their state in registers throughout.
    fn groups<const G: usize>(side: &[u8], keys: &[OneTimeKey], aads: &[&[u8]], data: &[&mut [u8]], tags: &mut [[u8; TAG_LEN]]) {
        let member = |g: usize, j: usize| side.get(g * LANES + j).map(|&i| usize::from(i));
        let mut state: [Group; G] = core::array::from_fn(|g| start(&core::array::from_fn(|j| member(g, j).and_then(|i| keys.get(i)))));
        let mut streams: [&[u8]; SIDE_MAX] = [&[]; SIDE_MAX];
        for (s, &i) in streams.iter_mut().zip(side) {
            *s = aads.get(usize::from(i)).copied().unwrap_or_default();
        }
        state = absorb(state, &streams);
        for (s, &i) in streams.iter_mut().zip(side) {
            *s = data.get(usize::from(i)).map_or(&[], |d| &**d);
        }
        state = absorb(state, &streams);
        for (g, state) in state.iter_mut().enumerate() {
            let mut lengths = [[0u8; 16]; LANES];
            for (j, l) in lengths.iter_mut().enumerate() {
                if let Some((a, d)) = member(g, j).and_then(|i| aads.get(i).zip(data.get(i))) {
                    l[..8].copy_from_slice(&(a.len() as u64).to_le_bytes());
                    l[8..].copy_from_slice(&(d.len() as u64).to_le_bytes());
                }
            }
            *state = step(*state, &lengths.each_ref(), 0xff);
            let [h0, h1, h2] = [to_u64s(state.h[0]), to_u64s(state.h[1]), to_u64s(state.h[2])];
            for (l, &j) in PACKET.iter().enumerate() {
                if let Some(i) = member(g, j) {
                    if let (Some(key), Some(tag)) = (keys.get(i), tags.get_mut(i)) {
                        *tag = tag_of([h0[l], h1[l], h2[l]], key);
                    }
                }
            }
        }
    }

    /// h = 0 and the limbs of the eight packets' r (zero for missing packets).
    fn start(keys: &[Option<&OneTimeKey>; LANES]) -> Group {
        let mut r = [[0u64; LANES]; 3];
        for (l, &p) in PACKET.iter().enumerate() {
            if let Some(k) = keys[p] {
                let [lo, hi] = k.r;
                r[0][l] = lo & M44;
                r[1][l] = (lo >> 44 | hi << 20) & M44;
                r[2][l] = hi >> 24;
            }
        }
        let r = r.map(|r| load_u64s(&r));
        let twenty = |x| _mm512_add_epi64(_mm512_slli_epi64::<4>(x), _mm512_slli_epi64::<2>(x));
        Group { h: [_mm512_setzero_si512(); 3], r, s: [twenty(r[1]), twenty(r[2])] }
    }

    /// Absorb each group's eight streams as 16-byte blocks, a partial last block
    /// zero-padded (the AEAD's pad16): every group's block i, then i + 1, …, then
    /// the partial blocks.
    fn absorb<const G: usize>(mut state: [Group; G], streams: &[&[u8]; SIDE_MAX]) -> [Group; G] {
        let most = streams.iter().map(|s| s.len() / 16).max().unwrap_or(0);
        for i in 0..most {
            for (group, streams) in state.iter_mut().zip(streams.chunks_exact(LANES)) {
                let mut blocks = [&ZERO; LANES];
                let mut active = 0u8;
                for ((b, s), lane) in blocks.iter_mut().zip(streams).zip(LANE) {
                    if let Some(block) = s.get(i * 16..).and_then(|s| s.first_chunk::<16>()) {
                        *b = block;
                        active |= 1 << lane;
                    }
                }
                *group = step(*group, &blocks, active);
            }
        }
        for (group, streams) in state.iter_mut().zip(streams.chunks_exact(LANES)) {
            let mut tails = [[0u8; 16]; LANES];
            let mut active = 0u8;
            for ((t, s), lane) in tails.iter_mut().zip(streams).zip(LANE) {
                let rest = s.get(s.len() / 16 * 16..).unwrap_or_default();
                if !rest.is_empty() {
                    t[..rest.len()].copy_from_slice(rest);
                    active |= 1 << lane;
                }
            }
            if active != 0 {
                *group = step(*group, &tails.each_ref(), active);
            }
        }
        state
    }

    /// h ← (h + block)·r for the lanes in `active`; `blocks[j]` is packet j's block.
    fn step(mut group: Group, blocks: &[&[u8; 16]; LANES], active: u8) -> Group {
        let quad = |b: &[&[u8; 16]]| {
            let v = _mm512_castsi128_si512(load(b[0]));
            let v = _mm512_inserti32x4::<1>(v, load(b[1]));
            let v = _mm512_inserti32x4::<2>(v, load(b[2]));
            _mm512_inserti32x4::<3>(v, load(b[3]))
        };
        let (a, b) = (quad(&blocks[..4]), quad(&blocks[4..]));
        let (lo, hi) = (_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
        let m44 = _mm512_set1_epi64(M44 as i64);
        let m = [
            _mm512_and_si512(lo, m44),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)), m44),
            // The 2¹²⁸ bit every 16-byte block carries.
            _mm512_or_si512(_mm512_srli_epi64::<24>(hi), _mm512_set1_epi64(1 << 40)),
        ];
        let h = [0, 1, 2].map(|i| _mm512_add_epi64(group.h[i], m[i]));
        let ([r0, r1, r2], [s1, s2]) = (group.r, group.s);
        // d_k = Σ h_i·r_j over i + j ≡ k, in low and high 52-bit halves.
        let sum = |lo: bool, terms: [(__m512i, __m512i); 3]| {
            terms.iter().fold(_mm512_setzero_si512(), |acc, &(x, y)| {
                if lo { _mm512_madd52lo_epu64(acc, x, y) } else { _mm512_madd52hi_epu64(acc, x, y) }
            })
        };
        let t0 = [(h[0], r0), (h[1], s2), (h[2], s1)];
        let t1 = [(h[0], r1), (h[1], r0), (h[2], s2)];
        let t2 = [(h[0], r2), (h[1], r1), (h[2], r0)];
        let (d0, d1, d2) = (sum(true, t0), sum(true, t1), sum(true, t2));
        let (e0, e1, e2) = (sum(false, t0), sum(false, t1), sum(false, t2));
        // A high half weighs 2⁵² = 2⁴⁴·2⁸ relative to its low half.
        let m42 = _mm512_set1_epi64(M42 as i64);
        let c1 = _mm512_add_epi64(_mm512_add_epi64(d1, _mm512_slli_epi64::<8>(e0)), _mm512_srli_epi64::<44>(d0));
        let c2 = _mm512_add_epi64(_mm512_add_epi64(d2, _mm512_slli_epi64::<8>(e1)), _mm512_srli_epi64::<44>(c1));
        // Everything from 2¹³⁰ up, times 5: c2's bits above 42 and e2 (weight 2¹⁴⁰).
        let over = _mm512_add_epi64(_mm512_srli_epi64::<42>(c2), _mm512_slli_epi64::<10>(e2));
        let h0 = _mm512_add_epi64(_mm512_and_si512(d0, m44), _mm512_add_epi64(over, _mm512_slli_epi64::<2>(over)));
        let h1 = _mm512_add_epi64(_mm512_and_si512(c1, m44), _mm512_srli_epi64::<44>(h0));
        let new = [_mm512_and_si512(h0, m44), h1, _mm512_and_si512(c2, m42)];
        for (old, new) in group.h.iter_mut().zip(new) {
            *old = _mm512_mask_mov_epi64(*old, active, new);
        }
        group
    }

    fn load(b: &[u8; 16]) -> __m128i {
        // SAFETY: `b` is 16 readable bytes; `vmovdqu` needs no alignment.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    fn load_u64s(w: &[u64; LANES]) -> __m512i {
        // SAFETY: `w` is 64 readable bytes; `vmovdqu64` needs no alignment.
        unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }
    }
}

/// The lane each packet of a group is in (the inverse of [`PACKET`]).
const LANE: [u8; LANES] = [0, 2, 4, 6, 1, 3, 5, 7];

/// RFC 8439 §2.5.1's end: h (limbs of 44 bits, h < 2¹³⁰ + 2¹⁰²) reduced modulo
/// 2¹³⁰ − 5, plus s, modulo 2¹²⁸; constant time.
fn tag_of([h0, h1, h2]: [u64; 3], key: &OneTimeKey) -> [u8; TAG_LEN] {
    // h as 128 low bits and the bits above.
    let (low, carry) = (u128::from(h0) + (u128::from(h1) << 44)).overflowing_add(u128::from(h2) << 88);
    let top = (h2 >> 40) + u64::from(carry);
    // g = h + 5 − 2¹³⁰ is the reduced value when h ≥ 2¹³⁰ − 5 (h < 2·(2¹³⁰ − 5)).
    let (g, c) = low.overflowing_add(5);
    let take_g = 0u128.wrapping_sub(u128::from((top + u64::from(c)) >> 2 != 0));
    let h = (low & !take_g) | (g & take_g);
    let s = u128::from(key.s[0]) | u128::from(key.s[1]) << 64;
    h.wrapping_add(s).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last reduction, which random inputs reach about once in 2⁷⁰ tags: h ≥
    /// 2¹³⁰ − 5 comes out as h − (2¹³⁰ − 5), below it unchanged.
    #[test]
    fn final_reduction_modulo_p() {
        let key = OneTimeKey { r: [0; 2], s: [0x1111, 0x2222] };
        let s = 0x2222u128 << 64 | 0x1111;
        let p = u128::MAX - 4; // 2¹³⁰ − 5 minus 3·2¹²⁸, i.e. its low 128 bits
        let limbs = |low: u128, top: u64| [low as u64 & M44, (low >> 44) as u64 & M44, (low >> 88) as u64 | top << 40];
        for (h, want) in [
            (limbs(p - 1, 3), p - 1),
            (limbs(p, 3), 0),
            (limbs(p + 1, 3), 1),
            (limbs(2, 4), 7),
            (limbs(u128::MAX, 4), 4),
            (limbs(12345, 0), 12345),
        ] {
            assert_eq!(tag_of(h, &key), want.wrapping_add(s).to_le_bytes(), "{h:x?}");
        }
    }

    /// `tag_of` takes h1 a little above 2⁴⁴, as `step` leaves it.
    #[test]
    fn unreduced_middle_limb() {
        let key = OneTimeKey::default();
        assert_eq!(tag_of([0, 1 << 44, 0], &key), (1u128 << 88).to_le_bytes());
    }
}
