//! The AEAD test vector of RFC 8439 §2.8.2 and a differential test against ring
//! over random keys, nonces, lengths and burst shapes.

use proptest::prelude::*;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

/// RFC 8439 §2.8.2: the tag is the RFC's, the ciphertext ring's (both pinned by
/// the RFC), and it opens back.
#[test]
fn rfc8439_aead_vector() {
    if !available() {
        eprintln!("skipped: no AVX-512 F/BW on this CPU");
        return;
    }
    let key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce: [u8; NONCE_LEN] = unhex("070000004041424344454647").try_into().expect("12 bytes");
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
    let k = ChaChaKey::new(&key).expect("key");
    let mut data = plain.clone();
    let mut tags = [[0u8; TAG_LEN]];
    k.seal(&[nonce], &[&aad], &mut [&mut data], &mut tags);
    assert_eq!(hex::encode(tags[0]), "1ae10b594f09e26a7e902ecbd0600691");
    let mut theirs = plain.clone();
    assert_eq!(ring_seal(&key, nonce, &aad, &mut theirs), tags[0]);
    assert_eq!(data, theirs);
    assert!(hex::encode(&data).starts_with("d31a8d34648e60db7b86afbc53ef7ec2"));
    let mut ok = [false];
    k.open(&[nonce], &[&aad], &mut [&mut data], &tags, &mut ok);
    assert!(ok[0]);
    assert_eq!(data, plain);
}

#[test]
fn bad_key_lengths_are_refused() {
    for n in [0, 16, 31, 33] {
        assert_eq!(ChaChaKey::new(&vec![0; n]).map(|_| ()), Err(Error::KeyLength(n)));
    }
}

#[test]
fn debug_shows_no_key() {
    if let Ok(k) = ChaChaKey::new(&[0x5a; 32]) {
        assert_eq!(format!("{k:?}"), "ChaChaKey { .. }");
    }
}

fn ring_seal(key: &[u8], nonce: [u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let k = LessSafeKey::new(UnboundKey::new(&aead::CHACHA20_POLY1305, key).expect("ring key"));
    let tag = k
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
        .expect("ring seal");
    tag.as_ref().try_into().expect("16-byte tag")
}

/// A packet of a random burst: nonce, AAD, plaintext.
fn packet() -> impl Strategy<Value = ([u8; 12], Vec<u8>, Vec<u8>)> {
    (
        any::<[u8; 12]>(),
        prop_oneof![proptest::collection::vec(any::<u8>(), 8..=12), proptest::collection::vec(any::<u8>(), 0..70)],
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..130),
            proptest::collection::vec(any::<u8>(), 0..1600),
            proptest::collection::vec(any::<u8>(), 0..9100)
        ],
    )
}

/// Bursts of up to 40 packets (more than one group, and lanes of one pass
/// shared by several packets) give ring's ciphertext and tag for each packet;
/// they open, and a flipped bit in one packet's tag, AAD or data fails that
/// packet only. Skipped, as the RFC vector is, on a CPU without AVX-512 (as a
/// `prop_assume!` it rejected every case there and proptest failed the test).
#[test]
fn agrees_with_ring() {
    if !available() {
        eprintln!("skipped: no AVX-512 F/BW/IFMA on this CPU");
        return;
    }
    proptest!(ProptestConfig::with_cases(600), |(
        key in any::<[u8; 32]>(),
        burst in proptest::collection::vec(packet(), 1..40),
        flip in any::<(usize, u8, u16, u8)>(),
    )| {
        let k = ChaChaKey::new(&key).expect("key");
        let nonces: Vec<[u8; 12]> = burst.iter().map(|p| p.0).collect();
        let mut aads: Vec<Vec<u8>> = burst.iter().map(|p| p.1.clone()).collect();
        let plain: Vec<Vec<u8>> = burst.iter().map(|p| p.2.clone()).collect();
        let mut ours = plain.clone();
        let mut tags = vec![[0u8; TAG_LEN]; burst.len()];
        {
            let aad_refs: Vec<&[u8]> = aads.iter().map(Vec::as_slice).collect();
            let mut data: Vec<&mut [u8]> = ours.iter_mut().map(Vec::as_mut_slice).collect();
            k.seal(&nonces, &aad_refs, &mut data, &mut tags);
        }
        for i in 0..burst.len() {
            let mut theirs = plain[i].clone();
            let want = ring_seal(&key, nonces[i], &aads[i], &mut theirs);
            prop_assert_eq!(&ours[i], &theirs, "packet {} ({} B)", i, plain[i].len());
            prop_assert_eq!(tags[i], want, "packet {}", i);
        }

        let (victim, which, at, bit) = flip;
        let victim = victim % burst.len();
        let bit = 1u8 << (bit % 8);
        match which % 3 {
            0 => tags[victim][usize::from(at) % 16] ^= bit,
            1 if !aads[victim].is_empty() => { let n = aads[victim].len(); aads[victim][usize::from(at) % n] ^= bit }
            _ if !ours[victim].is_empty() => { let n = ours[victim].len(); ours[victim][usize::from(at) % n] ^= bit }
            _ => tags[victim][0] ^= bit,
        }
        let aad_refs: Vec<&[u8]> = aads.iter().map(Vec::as_slice).collect();
        let mut data: Vec<&mut [u8]> = ours.iter_mut().map(Vec::as_mut_slice).collect();
        let mut ok = vec![false; burst.len()];
        k.open(&nonces, &aad_refs, &mut data, &tags, &mut ok);
        for (i, ok) in ok.iter().enumerate() {
            prop_assert_eq!(*ok, i != victim, "packet {}", i);
            if i != victim {
                prop_assert_eq!(&*data[i], &plain[i][..]);
            }
        }
    });
}
