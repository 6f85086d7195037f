//! PRF and prf+ (RFC 7296 §2.13) over HMAC-SHA2 (RFC 4868).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::proposal::PrfId;

/// A negotiated PRF. Only HMAC-SHA2-256/384/512 are implemented; `new`
/// accepts any id so callers check [`Prf::is_supported`] at negotiation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prf {
    id: PrfId,
}

fn hmac<M: KeyInit + Mac>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length (RFC 2104), so this cannot fail.
    let mut m = match <M as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        Mac::update(&mut m, p);
    }
    m.finalize().into_bytes().to_vec()
}

impl Prf {
    pub fn new(id: PrfId) -> Self {
        Prf { id }
    }
    pub fn checked(id: PrfId) -> Result<Self, CryptoError> {
        let p = Prf { id };
        if p.is_supported() { Ok(p) } else { Err(CryptoError::UnsupportedPrf(id)) }
    }
    pub fn id(&self) -> PrfId {
        self.id
    }
    pub fn is_supported(&self) -> bool {
        matches!(self.id, PrfId::HmacSha2_256 | PrfId::HmacSha2_384 | PrfId::HmacSha2_512)
    }
    /// Output (and preferred key) length in bytes (RFC 4868 §2.1).
    pub fn output_len(&self) -> usize {
        match self.id {
            PrfId::HmacSha2_384 => 48,
            PrfId::HmacSha2_512 => 64,
            _ => 32,
        }
    }

    /// prf(key, parts[0] | parts[1] | …).
    pub fn compute_parts(&self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self.id {
            PrfId::HmacSha2_384 => hmac::<Hmac<Sha384>>(key, parts),
            PrfId::HmacSha2_512 => hmac::<Hmac<Sha512>>(key, parts),
            _ => hmac::<Hmac<Sha256>>(key, parts),
        }
    }

    pub fn compute(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        self.compute_parts(key, &[data])
    }

    /// prf+(K, S) = T1 | T2 | … with T1 = prf(K, S | 0x01),
    /// Tn = prf(K, Tn-1 | S | n), truncated to `len` (RFC 7296 §2.13).
    pub fn plus(&self, key: &[u8], seed: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if len > 255 * self.output_len() {
            return Err(CryptoError::PrfPlusTooLong(len));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut t = Zeroizing::new(Vec::new());
        let mut n: u8 = 1;
        while out.len() < len {
            *t = self.compute_parts(key, &[&t, seed, &[n]]);
            out.extend_from_slice(&t);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (key "Jefe") for each SHA-2 size.
    #[test]
    fn hmac_rfc4231_case2() {
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex::encode(Prf::new(PrfId::HmacSha2_256).compute(b"Jefe", data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(Prf::new(PrfId::HmacSha2_384).compute(b"Jefe", data)),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        );
    }

    /// prf+ against an independent implementation: Python's hmac module,
    /// `controlplane/tests/ikev2_reference.py` regenerates these values.
    #[test]
    fn prf_plus_matches_python() {
        let prf = Prf::new(PrfId::HmacSha2_256);
        let out = prf.plus(b"key", b"seed", 80).expect("prf+");
        assert_eq!(hex::encode(&*out), PY_PRFPLUS_SHA256_80);
        let prf = Prf::new(PrfId::HmacSha2_512);
        let out = prf.plus(b"key", b"seed", 130).expect("prf+");
        assert_eq!(hex::encode(&*out), PY_PRFPLUS_SHA512_130);
        assert!(prf.plus(b"k", b"s", 255 * 64 + 1).is_err());
    }

    const PY_PRFPLUS_SHA256_80: &str = "a2392e429a99b173341b368bb5ce320bfd483d89567c14ec187c2d77e3c0a208ba45d21d42611712996c0cd4b329ac8681e093a8a5bbbbf0fb8c9d1cf674f7423fe3d2fbd6641ff544749daa37804f04";
    const PY_PRFPLUS_SHA512_130: &str = "173a6224816997fa5b2129f1c4d26d629028846663e6e27dd28d35d0de3757056e7da6c4214436a07fa827ba4329baf9097b2eddf4c1ea2b89caf65189987801bbb7a7125bce5d65d77bfd4a0705ef9bcb45f76a33f0ed70f5f7ff0f53eaa8c0089d68f852c6a4ef3ab3684a7ee7ec7b3ec15d8f335ce4360f9a3e8bc95a1112ed5c";
}
