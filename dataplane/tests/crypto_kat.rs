//! Known-answer tests for every AEAD backend, from vectors typed in from the specs
//! (tests/vectors/*.txt say where each comes from), plus tamper tests: a flipped
//! bit in the tag, the AAD, the ciphertext or the IV must fail authentication.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use dataplane::crypto::{
    new_aead, Aead, AeadOp, Algorithm, AuthError, Backend, IV_LEN, SALT_LEN, TAG_LEN,
};

/// One test vector in the ESP shape: key || salt, explicit IV, AAD, plaintext,
/// ciphertext, tag.
#[derive(Debug, Clone)]
struct Vector {
    name: String,
    alg: Algorithm,
    keymat: Vec<u8>,
    iv: [u8; IV_LEN],
    aad: Vec<u8>,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: [u8; TAG_LEN],
}

/// Parse `field = hex` records separated by blank lines; indented lines continue
/// the previous field; `#` lines are comments.
fn records(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur = BTreeMap::new();
    let mut last = String::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let v: &mut String = cur
                .get_mut(&last)
                .expect("continuation line follows a field");
            v.push_str(line.trim());
            continue;
        }
        let (k, v) = line.split_once('=').expect("field = value");
        last = k.trim().to_owned();
        cur.insert(last.clone(), v.trim().to_owned());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn hex_field(r: &BTreeMap<String, String>, k: &str) -> Vec<u8> {
    let v = r
        .get(k)
        .unwrap_or_else(|| panic!("{:?}: missing {k}", r.get("name")));
    hex::decode(v).unwrap_or_else(|e| panic!("{:?}: bad hex in {k}: {e}", r.get("name")))
}

fn alg(name: &str) -> Algorithm {
    match name {
        "aes128gcm" => Algorithm::Aes128Gcm,
        "aes256gcm" => Algorithm::Aes256Gcm,
        "chacha20poly1305" => Algorithm::ChaCha20Poly1305,
        other => panic!("unknown alg {other}"),
    }
}

fn parse(text: &str) -> Vec<Vector> {
    records(text)
        .into_iter()
        .map(|r| {
            let name = r["name"].clone();
            let alg = alg(&r["alg"]);
            let key = hex_field(&r, "key");
            assert_eq!(key.len(), alg.key_len(), "{name}: key length");
            // Either salt + iv + ciphertext + tag, or the ESP draft's nonce + ct_tag.
            let (salt, iv, ciphertext, tag) = if r.contains_key("nonce") {
                let nonce = hex_field(&r, "nonce");
                let mut ct = hex_field(&r, "ct_tag");
                let tag = ct.split_off(ct.len() - TAG_LEN);
                (
                    nonce[..SALT_LEN].to_vec(),
                    nonce[SALT_LEN..].to_vec(),
                    ct,
                    tag,
                )
            } else {
                (
                    hex_field(&r, "salt"),
                    hex_field(&r, "iv"),
                    hex_field(&r, "ciphertext"),
                    hex_field(&r, "tag"),
                )
            };
            let aad = hex_field(&r, "aad");
            if r.contains_key("spi") {
                // RFC 4106 §5: AAD = SPI || seq (32 bits) or SPI || seq-hi || seq-lo (ESN).
                let mut expect = hex_field(&r, "spi");
                expect.extend(hex_field(&r, "seq"));
                assert_eq!(aad, expect, "{name}: AAD is SPI || sequence number");
            }
            let plaintext = hex_field(&r, "plaintext");
            assert_eq!(
                plaintext.len(),
                ciphertext.len(),
                "{name}: ciphertext length"
            );
            let mut keymat = key;
            keymat.extend_from_slice(&salt);
            Vector {
                name,
                alg,
                keymat,
                iv: iv.try_into().expect("8-byte IV"),
                aad,
                plaintext,
                ciphertext,
                tag: tag.try_into().expect("16-byte tag"),
            }
        })
        .collect()
}

fn all_vectors() -> Vec<Vector> {
    let mut v = parse(include_str!("vectors/gcm-spec.txt"));
    v.extend(parse(include_str!("vectors/gcm-esp.txt")));
    v.extend(parse(include_str!("vectors/chacha20-poly1305.txt")));
    v
}

/// Every backend that can key `alg` here, plus `Auto`.
fn backends(alg: Algorithm) -> Vec<Backend> {
    let mut b: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available(alg))
        .collect();
    b.push(Backend::Auto);
    b
}

fn keyed(v: &Vector, backend: Backend) -> Box<dyn Aead> {
    new_aead(v.alg, &v.keymat, backend).unwrap_or_else(|e| panic!("{}: {backend}: {e}", v.name))
}

/// Run `check` for every vector through every backend that can key it.
fn for_each_keyed(mut check: impl FnMut(&Vector, Backend, &dyn Aead)) {
    for v in all_vectors() {
        for backend in backends(v.alg) {
            check(&v, backend, keyed(&v, backend).as_ref());
        }
    }
}

#[test]
fn vector_files_are_all_read() {
    let v = all_vectors();
    let count = |a| v.iter().filter(|x| x.alg == a).count();
    // Guards against a parser that silently drops records.
    assert_eq!(count(Algorithm::Aes128Gcm), 4 + 8);
    assert_eq!(count(Algorithm::Aes256Gcm), 4 + 4);
    assert_eq!(count(Algorithm::ChaCha20Poly1305), 3);
}

#[test]
fn ring_backend_is_built_in() {
    // ring needs only a C compiler, so it is part of every build.
    for alg in [
        Algorithm::Aes128Gcm,
        Algorithm::Aes256Gcm,
        Algorithm::ChaCha20Poly1305,
    ] {
        assert!(Backend::Ring.is_available(alg), "{alg:?}");
    }
}

#[test]
fn ipsec_mb_backend_is_available_when_linked() {
    // Built against libipsec-mb on a CPU with AES-NI, the backend must be offered,
    // or the KATs below would silently skip it.
    let aesni = std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    if ipsec_mb_sys::BUILT_WITH_LIBRARY && aesni {
        eprintln!(
            "ipsec-mb {:?} arch {:?}",
            ipsec_mb_sys::version(),
            ipsec_mb_sys::arch()
        );
        for alg in [
            Algorithm::Aes128Gcm,
            Algorithm::Aes256Gcm,
            Algorithm::ChaCha20Poly1305,
        ] {
            assert!(Backend::IpsecMb.is_available(alg), "{alg:?}");
        }
    }
}

#[test]
fn seal_matches_known_answer() {
    for_each_keyed(|v, backend, aead| {
        let mut data = v.plaintext.clone();
        let mut tag = [0u8; TAG_LEN];
        aead.seal(AeadOp {
            iv: v.iv,
            aad: &v.aad,
            data: &mut data,
            tag: &mut tag,
        });
        assert_eq!(
            hex::encode(&data),
            hex::encode(&v.ciphertext),
            "{} via {backend}: ciphertext",
            v.name
        );
        assert_eq!(
            hex::encode(tag),
            hex::encode(v.tag),
            "{} via {backend}: tag",
            v.name
        );
    });
}

#[test]
fn open_matches_known_answer() {
    for_each_keyed(|v, backend, aead| {
        let mut data = v.ciphertext.clone();
        let mut tag = v.tag;
        let r = aead.open(AeadOp {
            iv: v.iv,
            aad: &v.aad,
            data: &mut data,
            tag: &mut tag,
        });
        assert_eq!(r, Ok(()), "{} via {backend}", v.name);
        assert_eq!(
            hex::encode(&data),
            hex::encode(&v.plaintext),
            "{} via {backend}: plaintext",
            v.name
        );
    });
}

/// Which part of the packet a tamper test flips a bit in.
#[derive(Debug, Clone, Copy)]
enum Flip {
    Tag,
    Aad,
    Ciphertext,
    Iv,
}

fn open_flipped(aead: &dyn Aead, v: &Vector, flip: Flip, bit: usize) -> Result<(), AuthError> {
    let mut data = v.ciphertext.clone();
    let mut tag = v.tag;
    let mut aad = v.aad.clone();
    let mut iv = v.iv;
    let target: &mut [u8] = match flip {
        Flip::Tag => &mut tag,
        Flip::Aad => &mut aad,
        Flip::Ciphertext => &mut data,
        Flip::Iv => &mut iv,
    };
    let byte = bit / 8 % target.len();
    target[byte] ^= 1 << (bit % 8);
    aead.open(AeadOp {
        iv,
        aad: &aad,
        data: &mut data,
        tag: &mut tag,
    })
}

#[test]
fn any_flipped_bit_fails_authentication() {
    for_each_keyed(|v, backend, aead| {
        for flip in [Flip::Tag, Flip::Aad, Flip::Ciphertext, Flip::Iv] {
            let len = match flip {
                Flip::Tag => TAG_LEN,
                Flip::Aad => v.aad.len(),
                Flip::Ciphertext => v.ciphertext.len(),
                Flip::Iv => IV_LEN,
            };
            if len == 0 {
                continue;
            }
            // First, last and a middle bit of the field.
            for bit in [0, len * 8 / 2 + 3, len * 8 - 1] {
                let r = open_flipped(aead, v, flip, bit);
                assert_eq!(
                    r,
                    Err(AuthError),
                    "{} via {backend}: {flip:?} bit {bit}",
                    v.name
                );
            }
        }
    });
}

#[test]
fn wrong_key_or_salt_fails_authentication() {
    for v in all_vectors() {
        for backend in backends(v.alg) {
            for byte in [0, v.keymat.len() - 1] {
                // byte 0 is in the key, the last byte in the salt.
                let mut km = v.keymat.clone();
                km[byte] ^= 0x80;
                let aead = new_aead(v.alg, &km, backend).expect("keys");
                let mut data = v.ciphertext.clone();
                let mut tag = v.tag;
                let r = aead.open(AeadOp {
                    iv: v.iv,
                    aad: &v.aad,
                    data: &mut data,
                    tag: &mut tag,
                });
                assert_eq!(
                    r,
                    Err(AuthError),
                    "{} via {backend}: keymat byte {byte}",
                    v.name
                );
            }
        }
    }
}

fn burst_ops<'a>(
    burst: &[&'a Vector],
    data: &'a mut [Vec<u8>],
    tags: &'a mut [[u8; TAG_LEN]],
) -> Vec<AeadOp<'a>> {
    burst
        .iter()
        .zip(data.iter_mut())
        .zip(tags.iter_mut())
        .map(|((v, d), t)| AeadOp {
            iv: v.iv,
            aad: &v.aad,
            data: d,
            tag: t,
        })
        .collect()
}

/// A burst mixes every vector that shares one key (and so one SA) with tampered
/// copies; each op must get its own verdict and output.
#[test]
fn bursts_give_per_packet_results() {
    let vectors = all_vectors();
    let mut by_key: BTreeMap<(String, Vec<u8>), Vec<Vector>> = BTreeMap::new();
    for v in &vectors {
        by_key
            .entry((format!("{:?}", v.alg), v.keymat.clone()))
            .or_default()
            .push(v.clone());
    }
    for group in by_key.values() {
        // Repeat the group so bursts are longer than the multi-buffer lanes (up to 16).
        let burst: Vec<&Vector> = group.iter().cycle().take(group.len().max(1) * 37).collect();
        for backend in backends(group[0].alg) {
            let aead = keyed(&group[0], backend);

            let mut data: Vec<Vec<u8>> = burst.iter().map(|v| v.plaintext.clone()).collect();
            let mut tags = vec![[0u8; TAG_LEN]; burst.len()];
            let mut ops = burst_ops(&burst, &mut data, &mut tags);
            aead.seal_burst(&mut ops);
            drop(ops);
            for (i, v) in burst.iter().enumerate() {
                assert_eq!(
                    data[i], v.ciphertext,
                    "{} via {backend}: burst seal #{i}",
                    v.name
                );
                assert_eq!(
                    tags[i], v.tag,
                    "{} via {backend}: burst seal tag #{i}",
                    v.name
                );
            }

            // Tamper every third packet's tag; only those must fail.
            for (i, t) in tags.iter_mut().enumerate() {
                if i % 3 == 1 {
                    t[i % TAG_LEN] ^= 0x01;
                }
            }
            let mut results = vec![Ok(()); burst.len()];
            let mut ops = burst_ops(&burst, &mut data, &mut tags);
            aead.open_burst(&mut ops, &mut results);
            drop(ops);
            for (i, v) in burst.iter().enumerate() {
                if i % 3 == 1 {
                    assert_eq!(
                        results[i],
                        Err(AuthError),
                        "{} via {backend}: tampered #{i}",
                        v.name
                    );
                } else {
                    assert_eq!(
                        results[i],
                        Ok(()),
                        "{} via {backend}: burst open #{i}",
                        v.name
                    );
                    assert_eq!(
                        data[i], v.plaintext,
                        "{} via {backend}: burst plaintext #{i}",
                        v.name
                    );
                }
            }
        }
    }
}

mod agreement {
    //! Beyond the fixed vectors: for random keys, IVs, AADs (8 or 12 bytes) and
    //! lengths (including the `Auto` split boundary and multi-block tails), every
    //! backend produces the same ciphertext and tag, and opens what the others seal.
    //! Three independent implementations agreeing is the check; the KATs above pin
    //! one of them to the specs.

    use super::*;
    use proptest::prelude::*;

    fn seal_with(
        backend: Backend,
        alg: Algorithm,
        keymat: &[u8],
        iv: [u8; IV_LEN],
        aad: &[u8],
        plain: &[u8],
    ) -> (Vec<u8>, [u8; TAG_LEN]) {
        let aead = new_aead(alg, keymat, backend).expect("available backend keys");
        let mut data = plain.to_vec();
        let mut tag = [0u8; TAG_LEN];
        aead.seal(AeadOp { iv, aad, data: &mut data, tag: &mut tag });
        (data, tag)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn backends_agree(
            alg_ix in 0usize..3,
            key in proptest::collection::vec(any::<u8>(), 36),
            iv in any::<[u8; IV_LEN]>(),
            esn in any::<bool>(),
            aad_bytes in any::<[u8; 12]>(),
            len in prop_oneof![0usize..700, 1300usize..1600, 8990usize..9010],
            seed in any::<u8>(),
        ) {
            let alg = [Algorithm::Aes128Gcm, Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305][alg_ix];
            let keymat = &key[..alg.keymat_len()];
            let aad = &aad_bytes[..if esn { 12 } else { 8 }];
            let plain: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let reference = seal_with(Backend::RustCrypto, alg, keymat, iv, aad, &plain);
            for backend in backends(alg) {
                let (data, tag) = seal_with(backend, alg, keymat, iv, aad, &plain);
                prop_assert!(data == reference.0 && tag == reference.1, "{} seal differs at {} B", backend, len);
                let aead = new_aead(alg, keymat, backend).expect("available backend keys");
                let (mut data, mut tag) = reference.clone();
                prop_assert_eq!(aead.open(AeadOp { iv, aad, data: &mut data, tag: &mut tag }), Ok(()));
                prop_assert!(data == plain, "{} open differs at {} B", backend, len);
            }
        }
    }
}
