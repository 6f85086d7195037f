//! The Internet checksum (RFC 1071) and the pseudo-headers of RFC 768 / RFC 8200 §8.1.

use core::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, added to `acc`
/// (not folded: congruent to the sum modulo 0xffff, which is all a fold keeps).
/// An odd trailing byte is padded with zero.
///
/// Adds 32-bit (short data) or 64-bit words: 2^16 = 1 modulo 2^16 - 1, so the
/// folded sum of wider words is the folded sum of their 16-bit halves (RFC 1071
/// §2(B), word-size independence).
#[inline]
pub fn sum(acc: u64, data: &[u8]) -> u64 {
    if data.len() >= LONG {
        return sum_long(acc, data);
    }
    let mut chunks = data.chunks_exact(8);
    let mut acc = acc;
    for c in &mut chunks {
        // u64 cannot overflow for any packet size.
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])) + u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    sum_tail(acc, chunks.remainder())
}

/// From this length [`sum`] takes [`sum_long`]'s loop.
const LONG: usize = 64;

/// [`sum`] of longer data: 64-bit words in native byte order with their carries
/// counted, a serial `add`/`adc` per 8 bytes and no byte swap. Summing in the
/// other byte order gives the byte-swapped sum (RFC 1071 §2(B)), swapped back
/// once at the end. The IPv6 UDP checksum of ESP in UDP (`esp::encap`) covers
/// the whole packet: with the big-endian loop a 1400 B encap in UDP over IPv6
/// took ~1450 instructions more than raw ESP, with this one ~740 (`ESP_V6=1
/// ESP_UDP=0|1 perf/esp/insns.sh encap 1400`).
fn sum_long(acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    let (mut native, mut carries) = (0u64, 0u64);
    for w in &mut words {
        let (s, carry) = native.overflowing_add(u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        native = s;
        carries += u64::from(carry);
    }
    // 2^64 = 1 modulo 2^16 - 1: each carry out is worth 1 (in native order).
    let native = u16::from_be(fold(u64::from(fold(native)) + carries));
    sum_tail(acc + u64::from(native), words.remainder())
}

/// `acc` plus the big-endian 16-bit words of `tail` (shorter than 8 bytes).
#[inline(always)]
fn sum_tail(mut acc: u64, tail: &[u8]) -> u64 {
    let mut words = tail.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*b, 0]));
    }
    acc
}

/// Whether an IPv4 header without options sums to 0xffff (RFC 791 §3.1: its
/// checksum is right), without folding. The ones' complement sum does not depend
/// on byte order (RFC 1071 §2(B)) and 0xffff is the same both ways round, so the
/// words are loaded in native order (no byte swaps); and a sum folds to 0xffff
/// exactly when it is a non-zero multiple of 0xffff (2^16 is 1 modulo 0xffff, and
/// the fold of a non-zero sum is never 0), one multiply-based remainder instead of
/// four folds (5 of the ~28 instructions of the check in `Out::classify`, x86-64).
#[inline(always)]
pub fn header_sum_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    acc != 0 && acc % 0xffff == 0
}

/// Fold a sum to 16 bits (not complemented).
///
/// Four end-around-carry steps without a loop (2^32 and 2^16 are both 1 modulo
/// 2^16 - 1): < 2^33, < 2^32, < 2^17, then <= 0xffff. The data-dependent loop
/// this replaces showed in the TTL update of every forwarded packet.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value for `data` (complement of the folded sum).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Sum of the IPv4 pseudo-header (RFC 768).
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    sum(sum(0, &src.octets()), &dst.octets()) + u64::from(protocol) + u64::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u64 {
    sum(sum(0, &src.octets()), &dst.octets()) + u64::from(next_header) + u64::from(len)
}

/// RFC 1624 eqn. 3 incremental update: the checksum after one 16-bit word of the
/// covered data changed from `old` to `new`.
///
/// The sum of three 16-bit words is below 3 * 2^16: two end-around-carry steps
/// fold it (inlined: every forwarded packet's TTL decrement calls this).
#[inline]
pub fn update(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!csum) + u32::from(!old) + u32::from(new);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        // Odd length pads a zero byte.
        assert_eq!(fold(sum(0, &[0x01])), 0x0100);
    }

    #[test]
    fn fold_is_the_end_around_carry_sum() {
        // Reference: add the 16-bit digits with end-around carry until one is left.
        fn slow(mut acc: u64) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let edges = [0, 1, 0xfffe, 0xffff, 0x1_0000, 0x1_fffe, 0x1_ffff, 0xffff_ffff, 0x1_0000_0000, 0x1_ffff_fffe, u64::MAX, u64::MAX - 1, 0x8000_0000_8000_0000];
        for acc in edges.into_iter().chain((0..2000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))) {
            assert_eq!(fold(acc), slow(acc), "{acc:#x}");
        }
    }

    #[test]
    fn word_size_does_not_change_the_sum() {
        // The RFC 1071 definition, 16 bits at a time, against `sum` (32-bit words
        // plus tails) for every length and alignment of the tail.
        // Mixed bytes with the top bit set (carries out of the 64-bit words of
        // the long loop), all ones, and lengths on both sides of `LONG`, odd and
        // even, up to a jumbo ESP packet.
        let mixed: Vec<u8> = (0u32..9100).map(|i| (i.wrapping_mul(167) ^ (i >> 3)) as u8 | 0x80).collect();
        let ones = vec![0xffu8; 9100];
        for data in [&mixed, &ones] {
            for len in (0..300).chain([1399, 1400, 1401, 1500, 9000, 9100]) {
                let d = &data[..len];
                let mut reference = 0u64;
                for w in d.chunks(2) {
                    reference += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
                }
                assert_eq!(fold(sum(0xffff, d)), fold(reference + 0xffff), "length {len}");
                assert_eq!(fold(sum(0, d)), fold(reference), "length {len}");
            }
        }
        // A captured IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with its checksum b861.
        let hdr = [0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7];
        assert_eq!(fold(sum(0, &hdr)), 0xffff);
        assert!(header_sum_ok(&hdr));
        let mut zeroed = hdr;
        zeroed[10..12].fill(0);
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn header_sum_ok_agrees_with_the_folded_sum() {
        // Against the RFC 1071 fold of the big-endian sum, on headers whose
        // checksum is right, off by one bit, or all zeros/ones (the edges of the
        // remainder test: a zero sum, and sums that are multiples of 0xffff).
        let base = [0x45u8, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7];
        let mut cases = vec![base, [0; 20], [0xff; 20]];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..3000 {
            let mut h = [0u8; 20];
            for b in &mut h {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if i % 2 == 0 {
                h[10..12].fill(0);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            if i % 7 == 0 {
                h[(i / 7) % 20] ^= 1 << (i % 8);
            }
            cases.push(h);
        }
        let mut right = 0;
        for h in cases {
            let reference = fold(sum(0, &h)) == 0xffff;
            right += usize::from(reference);
            assert_eq!(header_sum_ok(&h), reference, "{h:02x?}");
        }
        assert!(right > 1000, "the cases must include right checksums: {right}");
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut hdr = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        let old = u16::from_be_bytes([hdr[0], hdr[1]]);
        hdr[1] = 0xb8;
        let new = u16::from_be_bytes([hdr[0], hdr[1]]);
        let inc = update(c, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&hdr));
    }

    #[test]
    fn ttl_decrements_match_full_recompute_over_many_headers() {
        // RFC 1624 §3 eqn. 3 against recomputing, for every TTL and a spread of
        // header contents (including sums that fold to 0xffff, the -0 case).
        let mut hdr = [0x45u8, 0, 0, 0x54, 0, 0, 0x40, 0, 0, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        for i in 0u32..20_000 {
            let x = i.wrapping_mul(0x9e37_79b9);
            hdr[4..8].copy_from_slice(&x.to_be_bytes());
            hdr[8] = (i % 254 + 2) as u8;
            hdr[10..12].fill(0);
            let c = checksum(&hdr);
            let old = u16::from_be_bytes([hdr[8], hdr[9]]);
            hdr[8] -= 1;
            let inc = update(c, old, u16::from_be_bytes([hdr[8], hdr[9]]));
            assert_eq!(inc, checksum(&hdr), "header {hdr:02x?}");
        }
    }
}
