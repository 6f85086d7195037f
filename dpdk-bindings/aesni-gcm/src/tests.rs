//! Known answers from the GCM spec (McGrew & Viega, Appendix B; the full set runs
//! against every dataplane backend in dataplane/tests/crypto_kat.rs) and a
//! differential test against ring over random keys, nonces and lengths.

use proptest::prelude::*;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

/// GCM spec test cases 2 (AES-128), 4 (AES-128, AAD, partial last block) and 14 (AES-256).
#[test]
fn gcm_spec_cases() {
    let cases = [
        (
            "00000000000000000000000000000000",
            "000000000000000000000000",
            "",
            "00000000000000000000000000000000",
            "0388dace60b6a392f328c2b971b2fe78",
            "ab6e47d42cec13bdf53a67b21257bddf",
        ),
        (
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000",
            "",
            "00000000000000000000000000000000",
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919",
        ),
    ];
    if !available() {
        eprintln!("skipped: no AES-NI/PCLMULQDQ/AVX on this CPU");
        return;
    }
    for (key, nonce, aad, plain, cipher, tag) in cases {
        let k = GcmKey::new(&unhex(key)).expect("key");
        let nonce: [u8; NONCE_LEN] = unhex(nonce).try_into().expect("12 bytes");
        let mut data = unhex(plain);
        let t = k.seal(&nonce, &unhex(aad), &mut data);
        assert_eq!(hex::encode(&data), cipher);
        assert_eq!(hex::encode(t), tag);
        assert!(k.open(&nonce, &unhex(aad), &mut data, &t));
        assert_eq!(hex::encode(&data), plain);
    }
}

#[test]
fn bad_key_lengths_are_refused() {
    for n in [0, 15, 17, 24, 31, 33] {
        assert_eq!(
            GcmKey::new(&vec![0; n]).map(|_| ()),
            Err(Error::KeyLength(n))
        );
    }
}

#[test]
fn debug_shows_no_key() {
    if let Ok(k) = GcmKey::new(&[0x5a; 32]) {
        let d = format!("{k:?}");
        assert_eq!(d, "GcmKey { bits: 256, .. }");
    }
}

fn ring_seal(key: &[u8], nonce: [u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let alg = if key.len() == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let k = LessSafeKey::new(UnboundKey::new(alg, key).expect("ring key"));
    let tag = k
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
        .expect("ring seal");
    tag.as_ref().try_into().expect("16-byte tag")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Same ciphertext and tag as ring for every key size, AAD length (ESP uses 8
    /// and 12; up to 600, so several GHASH groups) and data length (up to jumbo
    /// frames) across the 8- and 4-block batches and partial blocks; the tag
    /// opens, and any flipped bit in tag, AAD or data is refused.
    #[test]
    fn agrees_with_ring(
        aes256 in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 32),
        nonce in any::<[u8; 12]>(),
        aad in prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 0..600)],
        plain in prop_oneof![proptest::collection::vec(any::<u8>(), 0..700), proptest::collection::vec(any::<u8>(), 0..9100)],
        flip in any::<(u8, u16, u8)>(),
    ) {
        prop_assume!(available());
        let key = &key[..if aes256 { 32 } else { 16 }];
        let k = GcmKey::new(key).expect("key");
        let mut ours = plain.clone();
        let tag = k.seal(&nonce, &aad, &mut ours);
        let mut theirs = plain.clone();
        let want = ring_seal(key, nonce, &aad, &mut theirs);
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(tag, want);
        // The narrower main loops too, where the CPU would take a wider one.
        for inner in [GcmKey::new(key).expect("key").inner.narrow(), GcmKey::new(key).expect("key").inner.no512()] {
            let other = GcmKey { inner };
            let mut again = plain.clone();
            prop_assert_eq!(other.seal(&nonce, &aad, &mut again), want);
            prop_assert_eq!(&again, &theirs);
            prop_assert!(other.open(&nonce, &aad, &mut again, &want));
            prop_assert_eq!(&again, &plain);
        }

        let mut opened = ours.clone();
        prop_assert!(k.open(&nonce, &aad, &mut opened, &tag));
        prop_assert_eq!(&opened, &plain);

        let (which, at, bit) = flip;
        let bit = 1u8 << (bit % 8);
        let (mut t, mut a, mut d) = (tag, aad.clone(), ours.clone());
        match which % 3 {
            0 => t[usize::from(at) % 16] ^= bit,
            1 if !a.is_empty() => { let i = usize::from(at) % a.len(); a[i] ^= bit }
            _ if !d.is_empty() => { let i = usize::from(at) % d.len(); d[i] ^= bit }
            _ => t[0] ^= bit,
        }
        prop_assert!(!k.open(&nonce, &a, &mut d, &t));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `seal2`/`open2` give each packet exactly what `seal`/`open` give it, on the
    /// side-by-side path (both short) and off it; a flipped tag bit fails only
    /// its own packet.
    #[test]
    fn pairs_match_singles(
        aes256 in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 32),
        nonces in any::<([u8; 12], [u8; 12])>(),
        aads in (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..20)),
        data in (proptest::collection::vec(any::<u8>(), 0..90), proptest::collection::vec(any::<u8>(), 0..90)),
        bad in 0usize..3,
    ) {
        prop_assume!(available());
        let k = GcmKey::new(&key[..if aes256 { 32 } else { 16 }]).expect("key");
        let (n, a) = ([&nonces.0, &nonces.1], [&aads.0[..], &aads.1[..]]);
        let (mut s0, mut s1) = (data.0.clone(), data.1.clone());
        let want = [k.seal(n[0], a[0], &mut s0), k.seal(n[1], a[1], &mut s1)];
        let (mut p0, mut p1) = (data.0.clone(), data.1.clone());
        let mut tags = k.seal2(n, a, [&mut p0, &mut p1]);
        prop_assert_eq!((&p0, &p1, tags), (&s0, &s1, want));
        // The 128-bit AES of the pair too, where the CPU would take the 256-bit one.
        let narrow = GcmKey { inner: GcmKey::new(&key[..if aes256 { 32 } else { 16 }]).expect("key").inner.narrow() };
        let (mut q0, mut q1) = (data.0.clone(), data.1.clone());
        prop_assert_eq!((narrow.seal2(n, a, [&mut q0, &mut q1]), &q0, &q1), (want, &s0, &s1));
        prop_assert_eq!(narrow.open2(n, a, [&mut q0, &mut q1], [&want[0], &want[1]]), [true, true]);
        prop_assert_eq!((&q0, &q1), (&data.0, &data.1));

        if bad < 2 {
            tags[bad][15] ^= 0x80;
        }
        let ok = k.open2(n, a, [&mut p0, &mut p1], [&tags[0], &tags[1]]);
        prop_assert_eq!(ok, [bad != 0, bad != 1]);
        if bad == 2 {
            prop_assert_eq!((&p0, &p1), (&data.0, &data.1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `seal4`/`open4` give each packet exactly what `seal`/`open` give it, on the
    /// four-lane 512-bit path (all short, where the CPU has it), in two pairs of
    /// 256-bit lanes (`no512`, or a CPU with VAES but not AVX-512), as two
    /// 128-bit pairs (`narrow`) and off all of them; a flipped tag bit fails only its own packet, and a packet
    /// that fails comes back decrypted but not the others' business.
    #[test]
    fn quads_match_singles(
        aes256 in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 32),
        nonces in any::<[[u8; 12]; 4]>(),
        aads in proptest::array::uniform4(proptest::collection::vec(any::<u8>(), 0..20)),
        data in proptest::array::uniform4(proptest::collection::vec(any::<u8>(), 0..90)),
        bad in 0usize..5,
    ) {
        prop_assume!(available());
        let key = &key[..if aes256 { 32 } else { 16 }];
        let n = [&nonces[0], &nonces[1], &nonces[2], &nonces[3]];
        let a = [&aads[0][..], &aads[1][..], &aads[2][..], &aads[3][..]];
        let mut want_data = data.clone();
        let k = GcmKey::new(key).expect("key");
        let want: [[u8; 16]; 4] = core::array::from_fn(|p| k.seal(n[p], a[p], &mut want_data[p]));
        let pairs = GcmKey { inner: GcmKey::new(key).expect("key").inner.no512() };
        for k in [&k, &pairs] {
            let mut d = data.clone();
            let [d0, d1, d2, d3] = &mut d;
            let mut tags = k.seal4(n, a, [d0, d1, d2, d3]);
            prop_assert_eq!((&d, tags), (&want_data, want));
            if bad < 4 {
                tags[bad][0] ^= 0x01;
            }
            let [d0, d1, d2, d3] = &mut d;
            let ok = k.open4(n, a, [d0, d1, d2, d3], [&tags[0], &tags[1], &tags[2], &tags[3]]);
            prop_assert_eq!(ok, core::array::from_fn(|p| p != bad));
            for p in (0..4).filter(|&p| p != bad) {
                prop_assert_eq!(&d[p], &data[p]);
            }
        }
    }
}

/// Sealing and opening write only the data's bytes: a packet at every offset of
/// a 64-byte line and every length to 700 B, inside a buffer of guard bytes, on
/// each main loop (the 512-bit one's masked stores end exactly at the data); and
/// four short packets at once, on the four-lane path and as pairs.
#[test]
fn nothing_is_written_outside_the_data() {
    if !available() {
        return;
    }
    let key = [0x42u8; 16];
    let keys = [
        GcmKey::new(&key).expect("key"),
        GcmKey { inner: GcmKey::new(&key).expect("key").inner.no512() },
        GcmKey { inner: GcmKey::new(&key).expect("key").inner.narrow() },
    ];
    const GUARD: u8 = 0xa5;
    let mut buf = vec![GUARD; 64 + 700 + 128];
    for k in &keys {
        for offset in (0..64).step_by(7) {
            for len in 0..700 {
                let range = 64 + offset..64 + offset + len;
                buf[range.clone()].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
                // Checked after each step: opening XORs the same keystream byte
                // again, so a stray byte sealed would be back by then.
                let guards_ok = |buf: &[u8]| buf[..range.start].iter().chain(&buf[range.end..]).all(|&b| b == GUARD);
                let tag = k.seal(&[1; 12], b"aad", &mut buf[range.clone()]);
                assert!(guards_ok(&buf), "a byte outside {len} B at {offset} changed by seal");
                assert!(k.open(&[1; 12], b"aad", &mut buf[range.clone()], &tag), "{len} B at {offset}");
                assert!(guards_ok(&buf), "a byte outside {len} B at {offset} changed by open");
                buf[range].fill(GUARD);
            }
        }
    }
    // Four packets side by side (512-bit quads where the CPU has them, 256-bit
    // pairs of pairs on `no512`, 128-bit pairs on `narrow`), 150 bytes apart in one guarded buffer: every length the short
    // paths take and a little past it.
    let mut buf = vec![GUARD; 64 + 64 + 4 * 150];
    fn quads(buf: &mut [u8], offset: usize, len: usize) -> [&mut [u8]; 4] {
        let mut p = buf[64 + offset..].chunks_mut(150).map(|c| &mut c[..len]);
        core::array::from_fn(|_| p.next().expect("four packets fit"))
    }
    for k in &keys[..2] {
        for offset in (0..64).step_by(7) {
            for len in 0..80 {
                quads(&mut buf, offset, len).into_iter().for_each(|d| d.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8));
                let n = [&[1; 12], &[2; 12], &[3; 12], &[4; 12]];
                let a: [&[u8]; 4] = [b"aad", b"", b"12345678", b"123456789abc"];
                let before = buf.clone();
                let outside_unchanged = |buf: &[u8]| {
                    let inside = |i: usize| i >= 64 + offset && (i - 64 - offset) % 150 < len;
                    buf.iter().zip(&before).enumerate().all(|(i, (x, y))| inside(i) || x == y)
                };
                let tags = k.seal4(n, a, quads(&mut buf, offset, len));
                assert!(outside_unchanged(&buf), "a byte outside four packets of {len} B at {offset} changed by seal4");
                let ok = k.open4(n, a, quads(&mut buf, offset, len), [&tags[0], &tags[1], &tags[2], &tags[3]]);
                assert_eq!(ok, [true; 4], "{len} B at {offset}");
                assert!(buf == before, "four packets of {len} B at {offset}: not restored, or a byte outside changed");
                quads(&mut buf, offset, len).into_iter().for_each(|d| d.fill(GUARD));
            }
        }
    }
}

/// Every data length up to 2100 B (each whole chunk count, each tail length around
/// it) with AAD lengths around the block and chunk edges, both key sizes, on the
/// 512- and 256-bit loops where the CPU has them and on the 128-bit one: equal to ring, and a
/// flipped ciphertext bit refused. The proptest reaches lengths of exactly 128·k
/// only by chance.
#[test]
fn every_length_to_2100_agrees_with_ring() {
    if !available() {
        eprintln!("skipped: no AES-NI/PCLMULQDQ/AVX on this CPU");
        return;
    }
    if !wide() {
        eprintln!("note: no VAES/VPCLMULQDQ here: only the 128-bit main loop is tested");
    } else if !wide512() {
        eprintln!("note: no AVX-512 here: the 512-bit main loop is not tested");
    }
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(29) ^ 0x5c).collect();
    let nonce = [7u8; 12];
    for key in [&key[..16], &key[..]] {
        let keys = [
            GcmKey::new(key).expect("key"),
            GcmKey { inner: GcmKey::new(key).expect("key").inner.no512() },
            GcmKey { inner: GcmKey::new(key).expect("key").inner.narrow() },
        ];
        for aad_len in [0, 8, 12, 16, 17, 129, 600] {
            let aad: Vec<u8> = (0..aad_len).map(|i| (i * 13) as u8).collect();
            for len in 0..2100 {
                let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let mut theirs = plain.clone();
                let want = ring_seal(key, nonce, &aad, &mut theirs);
                for k in &keys {
                    let mut ours = plain.clone();
                    assert_eq!(k.seal(&nonce, &aad, &mut ours), want, "tag, {len} B, AAD {aad_len}");
                    assert!(ours == theirs, "ciphertext, {len} B, AAD {aad_len}");
                    let mut bad = ours.clone();
                    if let Some(b) = bad.get_mut(len / 2) {
                        *b ^= 1;
                        assert!(!k.open(&nonce, &aad, &mut bad, &want), "tampered, {len} B");
                    }
                    assert!(k.open(&nonce, &aad, &mut ours, &want), "open, {len} B, AAD {aad_len}");
                    assert!(ours == plain, "plaintext, {len} B, AAD {aad_len}");
                }
            }
        }
    }
}
