//! Key schedules: IKE SA keys (RFC 7296 §2.14, rekey §2.18), Child SA KEYMAT
//! (§2.17) and the PSK AUTH value (§2.15).

use zeroize::Zeroizing;

use super::{CryptoError, Prf};
use crate::proposal::Encr;

type Secret = Zeroizing<Vec<u8>>;

/// Keys of one direction of the SK payload (encryption key || salt; AEAD
/// only, so no separate integrity key: RFC 5282 §7.1 makes SK_a* empty).
#[derive(Clone)]
pub struct DirectionKeys {
    pub encr: Secret,
}

impl std::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirectionKeys({} bytes, redacted)", self.encr.len())
    }
}

/// The seven IKE SA keys (SK_ai/SK_ar are empty with AEAD ciphers).
#[derive(Clone)]
pub struct IkeKeys {
    pub prf: Prf,
    pub encr_alg: Encr,
    pub sk_d: Secret,
    pub sk_ei: DirectionKeys,
    pub sk_er: DirectionKeys,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeKeys").field("prf", &self.prf).field("encr", &self.encr_alg).finish_non_exhaustive()
    }
}

impl IkeKeys {
    /// Initial IKE SA: SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14).
    pub fn derive(prf: Prf, encr_alg: Encr, g_ir: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> Result<Self, CryptoError> {
        let skeyseed = Zeroizing::new(prf.compute_parts(&[ni, nr].concat(), &[g_ir]));
        Self::expand(prf, encr_alg, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// Rekeyed IKE SA: SKEYSEED = prf_old(SK_d(old), g^ir(new) | Ni | Nr)
    /// (RFC 7296 §2.18; the old SA's PRF keys SKEYSEED, the new one expands it).
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(old: &IkeKeys, prf: Prf, encr_alg: Encr, g_ir: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> Result<Self, CryptoError> {
        let skeyseed = Zeroizing::new(old.prf.compute_parts(&old.sk_d, &[g_ir, ni, nr]));
        Self::expand(prf, encr_alg, &skeyseed, ni, nr, spi_i, spi_r)
    }

    fn expand(prf: Prf, encr_alg: Encr, skeyseed: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> Result<Self, CryptoError> {
        let elen = encr_alg.keymat_len().ok_or(CryptoError::UnsupportedEncr(encr_alg))?;
        let plen = prf.output_len();
        let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
        let km = prf.plus(skeyseed, &seed, 3 * plen + 2 * elen)?;
        let mut at = 0;
        let mut take = |n: usize| {
            let v = Zeroizing::new(km[at..at + n].to_vec());
            at += n;
            v
        };
        let sk_d = take(plen);
        // SK_ai and SK_ar have length 0 with an AEAD (RFC 5282 §7.1).
        let sk_ei = DirectionKeys { encr: take(elen) };
        let sk_er = DirectionKeys { encr: take(elen) };
        let sk_pi = take(plen);
        let sk_pr = take(plen);
        Ok(IkeKeys { prf, encr_alg, sk_d, sk_ei, sk_er, sk_pi, sk_pr })
    }
}

/// ESP keys of one Child SA: one key (with salt) per direction.
#[derive(Clone)]
pub struct ChildKeys {
    /// For the SA carrying traffic from the initiator of *this* exchange
    /// (not necessarily of the IKE SA) to its responder (RFC 7296 §2.17).
    pub initiator_to_responder: Secret,
    pub responder_to_initiator: Secret,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildKeys(redacted)")
    }
}

/// KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr) (RFC 7296 §2.17); the
/// initiator-to-responder key comes first.
pub fn child_keymat(prf: Prf, sk_d: &[u8], encr: Encr, g_ir: Option<&[u8]>, ni: &[u8], nr: &[u8]) -> Result<ChildKeys, CryptoError> {
    let elen = encr.keymat_len().ok_or(CryptoError::UnsupportedEncr(encr))?;
    let seed = [g_ir.unwrap_or_default(), ni, nr].concat();
    let km = prf.plus(sk_d, &seed, 2 * elen)?;
    Ok(ChildKeys {
        initiator_to_responder: Zeroizing::new(km[..elen].to_vec()),
        responder_to_initiator: Zeroizing::new(km[elen..].to_vec()),
    })
}

/// AUTH for a pre-shared key (RFC 7296 §2.15):
/// prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | NonceData | prf(SK_p, ID')).
/// `real_message` is the sender's own first message, `peer_nonce` the other
/// side's nonce, `id_body` the sender's ID payload body.
pub fn psk_auth(prf: Prf, psk: &[u8], real_message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id_body: &[u8]) -> Vec<u8> {
    let maced_id = prf.compute(sk_p, id_body);
    let pad = Zeroizing::new(prf.compute(psk, b"Key Pad for IKEv2"));
    prf.compute_parts(&pad, &[real_message, peer_nonce, &maced_id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::PrfId;

    /// Reference values from `controlplane/tests/ikev2_reference.py` (Python hmac).
    #[test]
    fn ike_and_child_keys_match_python() {
        let prf = Prf::new(PrfId::HmacSha2_256);
        let encr = Encr::aes_gcm16(128);
        let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
        let gir = [0x33u8; 32];
        let k = IkeKeys::derive(prf, encr, &gir, &ni, &nr, 0x0102030405060708, 0x1112131415161718).expect("derive");
        let all = [&k.sk_d[..], &k.sk_ei.encr, &k.sk_er.encr, &k.sk_pi, &k.sk_pr].concat();
        assert_eq!(hex::encode(all), PY_IKE_KEYS);
        let c = child_keymat(prf, &k.sk_d, Encr::CHACHA20_POLY1305, None, &ni, &nr).expect("child");
        assert_eq!(hex::encode([&c.initiator_to_responder[..], &c.responder_to_initiator].concat()), PY_CHILD_KEYS);
        let auth = psk_auth(prf, b"secret", b"message-one", &nr, &k.sk_pi, &[2, 0, 0, 0, b'a']);
        assert_eq!(hex::encode(auth), PY_PSK_AUTH);
        let r = IkeKeys::derive_rekey(&k, Prf::new(PrfId::HmacSha2_384), Encr::aes_gcm16(256), &gir, &nr, &ni, 7, 8).expect("rekey");
        assert_eq!(hex::encode(&*r.sk_d), PY_REKEY_SK_D);
    }

    const PY_IKE_KEYS: &str = "df4ad28668da8188ce5defec720ccf0c251f31cdf3a882fd5f855743dc144686c9ae3d42239d6c8bbf6a6ef5a1caf7cec80ea790d4d352afa83b76ce6f5c3c6c00689060bbd7e4453dc5195c4a1f27d7ac0c4e52418349c6934c39421ea57ca39d64b919ac44bb5b1ebdedbf7e79b38d87ef01ed4d08143494d703625c83cebcade673827ec93a64";
    const PY_CHILD_KEYS: &str = "f0e4d386b43427f8cb05c2858604f7046dd5ffd9afc07cb74e76051330ff1407d7155cc8514928ab12edd66c8564d70b0ee9afe48ba7510c1729d1c4f54e3387ceedb26a48bf146a";
    const PY_PSK_AUTH: &str = "a7e7970d93eceb2d4b50afde103533a7fd20e5ba769d31eedd9414733c534667";
    const PY_REKEY_SK_D: &str = "42b3b13c5c6d420f732c6d6fbfc6fc5719eb1946e70f27fc941a4115da0a99ba09fc91b18a6bdd5b0ed2658f3e82192d";
}
