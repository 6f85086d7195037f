//! The Encrypted and Authenticated payload with an AEAD (RFC 7296 §3.14,
//! RFC 5282 for AES-GCM, RFC 7634 for ChaCha20-Poly1305), and the NAT
//! detection hash (RFC 7296 §2.23).

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::ikev2::wire::{emit_payloads, HeaderRepr, Payload, PayloadType, SkPayload, GENERIC_HEADER_LEN, HEADER_LEN};
use crate::proposal::{Encr, EncrId};

/// Explicit IV length in the SK payload (RFC 5282 §3.1, RFC 7634 §2).
pub const SK_IV_LEN: usize = 8;
const SALT_LEN: usize = 4;
const ICV_LEN: usize = 16;

enum Cipher {
    Aes128(Aes128Gcm),
    Aes256(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
}

/// One direction's SK cipher, keyed with SK_ei or SK_er (key || 4-byte salt).
pub struct SkCipher {
    cipher: Cipher,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkCipher(redacted)")
    }
}

fn seal<C: AeadInOut<NonceSize = U12, TagSize = U16>>(c: &C, nonce: &Array<u8, U12>, aad: &[u8], data: &mut [u8]) -> Result<[u8; ICV_LEN], CryptoError> {
    let tag = c.encrypt_inout_detached(nonce, aad, data.into()).map_err(|_| CryptoError::MalformedSk("message too long"))?;
    let mut t = [0u8; ICV_LEN];
    t.copy_from_slice(&tag);
    Ok(t)
}

fn open<C: AeadInOut<NonceSize = U12, TagSize = U16>>(c: &C, nonce: &Array<u8, U12>, aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
    let mut t = [0u8; ICV_LEN];
    t.copy_from_slice(tag);
    c.decrypt_inout_detached(nonce, aad, data.into(), &Array::<u8, U16>::from(t)).map_err(|_| CryptoError::IntegrityFailed)
}

impl SkCipher {
    /// `keymat` is SK_e (key followed by the 4-byte salt, RFC 5282 §7.1).
    pub fn new(encr: Encr, keymat: &[u8]) -> Result<Self, CryptoError> {
        let unsupported = CryptoError::UnsupportedEncr(encr);
        if Some(keymat.len()) != encr.keymat_len() {
            return Err(unsupported);
        }
        let (key, salt_b) = keymat.split_at(keymat.len() - SALT_LEN);
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_b);
        let cipher = match (encr.id, encr.key_bits) {
            (EncrId::AesGcm16, Some(128)) => Cipher::Aes128(Aes128Gcm::new_from_slice(key).map_err(|_| unsupported)?),
            (EncrId::AesGcm16, Some(256)) => Cipher::Aes256(Aes256Gcm::new_from_slice(key).map_err(|_| unsupported)?),
            (EncrId::ChaCha20Poly1305, None) => Cipher::ChaCha(ChaCha20Poly1305::new_from_slice(key).map_err(|_| unsupported)?),
            _ => return Err(unsupported),
        };
        Ok(SkCipher { cipher, salt })
    }

    fn nonce(&self, iv: &[u8]) -> Array<u8, U12> {
        let mut n = [0u8; SALT_LEN + SK_IV_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt[..]);
        n[SALT_LEN..].copy_from_slice(iv);
        Array::from(n)
    }

    fn seal(&self, iv: &[u8], aad: &[u8], data: &mut [u8]) -> Result<[u8; ICV_LEN], CryptoError> {
        let n = self.nonce(iv);
        match &self.cipher {
            Cipher::Aes128(c) => seal(c, &n, aad, data),
            Cipher::Aes256(c) => seal(c, &n, aad, data),
            Cipher::ChaCha(c) => seal(c, &n, aad, data),
        }
    }

    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let n = self.nonce(iv);
        match &self.cipher {
            Cipher::Aes128(c) => open(c, &n, aad, data, tag),
            Cipher::Aes256(c) => open(c, &n, aad, data, tag),
            Cipher::ChaCha(c) => open(c, &n, aad, data, tag),
        }
    }
}

/// Builds a whole protected message: header, then one SK payload holding
/// `inner`. `iv` must never repeat under one key (the caller uses a counter).
/// The AAD is the header plus the SK generic header (RFC 5282 §5.1).
pub fn seal_sk(cipher: &SkCipher, mut header: HeaderRepr, inner: &[Payload], iv: u64) -> Result<Vec<u8>, CryptoError> {
    let mut plain = Zeroizing::new(Vec::new());
    let first_inner = emit_payloads(inner, &mut plain).map_err(|_| CryptoError::MalformedSk("inner payloads do not encode"))?;
    // No padding needed for an AEAD; the Pad Length byte is still there (RFC 5282 §3).
    plain.push(0);
    let sk_len = GENERIC_HEADER_LEN + SK_IV_LEN + plain.len() + ICV_LEN;
    let total = HEADER_LEN + sk_len;
    header.next_payload = PayloadType::Sk;
    header.length = u32::try_from(total).map_err(|_| CryptoError::MalformedSk("message too long"))?;
    let sk_len16 = u16::try_from(sk_len).map_err(|_| CryptoError::MalformedSk("SK payload over 65535 bytes"))?;
    let mut out = Vec::with_capacity(total);
    header.emit(&mut out);
    out.push(u8::from(first_inner));
    out.push(0);
    out.extend_from_slice(&sk_len16.to_be_bytes());
    let aad_len = out.len();
    let ivb = iv.to_be_bytes();
    out.extend_from_slice(&ivb);
    out.extend_from_slice(&plain);
    let (aad, rest) = out.split_at_mut(aad_len);
    let tag = cipher.seal(&ivb, aad, &mut rest[SK_IV_LEN..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Authenticates and decrypts the SK payload of `datagram` (it must be the
/// last payload, which the parser enforces); returns the inner payload bytes,
/// to be parsed starting with `sk.first_inner`.
pub fn open_sk(cipher: &SkCipher, datagram: &[u8], sk: &SkPayload) -> Result<Vec<u8>, CryptoError> {
    if sk.body.len() < SK_IV_LEN + 1 + ICV_LEN {
        return Err(CryptoError::MalformedSk("shorter than IV + pad length + ICV"));
    }
    let aad_len = datagram.len().checked_sub(sk.body.len()).ok_or(CryptoError::MalformedSk("SK body longer than message"))?;
    let aad = &datagram[..aad_len];
    let (iv, rest) = sk.body.split_at(SK_IV_LEN);
    let (ct, tag) = rest.split_at(rest.len() - ICV_LEN);
    let mut plain = ct.to_vec();
    cipher.open(iv, aad, &mut plain, tag)?;
    let pad = usize::from(*plain.last().unwrap_or(&0));
    let keep = plain.len().checked_sub(pad + 1).ok_or(CryptoError::MalformedSk("pad length exceeds plaintext"))?;
    plain.truncate(keep);
    Ok(plain)
}

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23).
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: std::net::SocketAddr) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => h.update(a.octets()),
        std::net::IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::wire::{parse_payloads, ExchangeType, Flags, Header};

    fn hdr() -> HeaderRepr {
        HeaderRepr {
            spi_i: 1,
            spi_r: 2,
            next_payload: PayloadType::None,
            exchange: ExchangeType::IkeAuth,
            flags: Flags { initiator: true, response: false },
            message_id: 1,
            length: 0,
        }
    }

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        for (encr, len) in [(Encr::aes_gcm16(128), 20), (Encr::aes_gcm16(256), 36), (Encr::CHACHA20_POLY1305, 36)] {
            let c = SkCipher::new(encr, &vec![7u8; len]).expect("key");
            let inner = vec![Payload::Nonce(vec![1; 16]), Payload::Vendor(b"x".to_vec())];
            let msg = seal_sk(&c, hdr(), &inner, 42).expect("seal");
            let h = Header::new_checked(&msg[..]).expect("header");
            let p = parse_payloads(h.next_payload(), h.body()).expect("outer");
            let Some(Payload::Sk(sk)) = p.first() else { panic!("no SK") };
            let plain = open_sk(&c, &msg, sk).expect("open");
            assert_eq!(parse_payloads(sk.first_inner, &plain).expect("inner"), inner);
            // Flip one bit anywhere (header = AAD, IV, ciphertext, tag): must fail.
            for i in [0, 20, 30, 35, msg.len() - 1] {
                let mut bad = msg.clone();
                bad[i] ^= 1;
                let sk2 = SkPayload { first_inner: sk.first_inner, body: bad[msg.len() - sk.body.len()..].to_vec() };
                assert_eq!(open_sk(&c, &bad, &sk2), Err(CryptoError::IntegrityFailed), "{encr} byte {i}");
            }
        }
    }

    /// RFC 7296 §2.23 hash, checked against Python hashlib in ikev2_reference.py.
    #[test]
    fn nat_hash_matches_python() {
        let h = nat_detection_hash(0x0102030405060708, 0, "198.51.100.1:500".parse().expect("addr"));
        assert_eq!(hex::encode(h), PY_NAT_HASH);
    }
    const PY_NAT_HASH: &str = "3a02de24d181fd88168057d5ab63bd418473444a";
}
