//! Key exchange for IKE (RFC 7296 §2.14, RFC 5903 ECP, RFC 8031 Curve25519,
//! RFC 3526 MODP). Private values come from the injected [`Entropy`], so two
//! endpoints in a test derive the same keys every run.
//!
//! Crates: RustCrypto `p256`/`p384` (constant-time, maintained, same family as
//! the AEADs we already use), `x25519-dalek`, and `crypto-bigint` for MODP-2048:
//! its fixed-width Montgomery exponentiation is constant time and it is
//! already in the tree under the elliptic curves, so MODP costs no new crate.

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U2048};
use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Entropy};
use crate::proposal::DhGroup;

/// RFC 3526 §3, 2048-bit MODP group (IKE group 14), generator 2.
const MODP2048_PRIME: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/// Groups this engine can compute.
pub const SUPPORTED_GROUPS: [DhGroup; 4] = [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519, DhGroup::Modp2048];

enum Private {
    Ecp256(p256::SecretKey),
    Ecp384(p384::SecretKey),
    X25519(x25519_dalek::StaticSecret),
    Modp2048(Box<Zeroizing<U2048>>),
}

/// Our half of one key exchange: the private value and the public value that
/// goes into the KE payload.
pub struct KeyExchange {
    group: DhGroup,
    private: Private,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyExchange").field("group", &self.group).finish_non_exhaustive()
    }
}

fn modp2048_params() -> FixedMontyParams<{ U2048::LIMBS }> {
    let p = U2048::from_be_hex(MODP2048_PRIME);
    // The prime is odd by definition; `Odd::new` returns a CtOption.
    FixedMontyParams::new_vartime(Odd::new(p).expect("RFC 3526 prime is odd"))
}

/// Public value length in the KE payload (RFC 7296 §3.4; RFC 5903 §7: x || y).
pub fn public_len(group: DhGroup) -> Option<usize> {
    match group {
        DhGroup::Ecp256 => Some(64),
        DhGroup::Ecp384 => Some(96),
        DhGroup::Curve25519 => Some(32),
        DhGroup::Modp2048 => Some(256),
        _ => None,
    }
}

/// A private scalar from the entropy (retrying the rare out-of-range draw)
/// and the public value as x || y (RFC 5903 §7: no SEC1 0x04 prefix).
macro_rules! ecp_generate {
    ($curve:ident, $len:expr, $rng:expr) => {{
        let sk = loop {
            let mut b = Zeroizing::new([0u8; $len]);
            $rng.fill(&mut b[..]);
            if let Ok(sk) = $curve::SecretKey::from_slice(&b[..]) {
                break sk;
            }
        };
        let pt = sk.public_key().to_sec1_point(false);
        let public = pt.as_bytes().get(1..).unwrap_or_default().to_vec();
        (sk, public)
    }};
}

/// The shared secret is the x coordinate (RFC 5903 §7); `None` if the peer's
/// point is not on the curve.
macro_rules! ecp_shared {
    ($curve:ident, $sk:expr, $peer:expr) => {{
        let mut sec1 = Vec::with_capacity(1 + $peer.len());
        sec1.push(4);
        sec1.extend_from_slice($peer);
        $curve::PublicKey::from_sec1_bytes(&sec1).ok().map(|pk| {
            let ss = $curve::ecdh::diffie_hellman($sk.to_nonzero_scalar(), pk.as_affine());
            Zeroizing::new(ss.raw_secret_bytes().to_vec())
        })
    }};
}

impl KeyExchange {
    /// Draws a private value for `group` and computes the public value.
    pub fn generate(group: DhGroup, rng: &mut dyn Entropy) -> Result<Self, CryptoError> {
        let (private, public) = match group {
            DhGroup::Ecp256 => {
                let (sk, public) = ecp_generate!(p256, 32, rng);
                (Private::Ecp256(sk), public)
            }
            DhGroup::Ecp384 => {
                let (sk, public) = ecp_generate!(p384, 48, rng);
                (Private::Ecp384(sk), public)
            }
            DhGroup::Curve25519 => {
                let mut b = [0u8; 32];
                rng.fill(&mut b);
                let sk = x25519_dalek::StaticSecret::from(b);
                b.zeroize();
                let public = x25519_dalek::PublicKey::from(&sk).to_bytes().to_vec();
                (Private::X25519(sk), public)
            }
            DhGroup::Modp2048 => {
                // A full-size exponent: simple and well above the 2×112-bit
                // minimum of RFC 3526 §8 / NIST SP 800-57.
                let mut b = Zeroizing::new([0u8; 256]);
                rng.fill(&mut b[..]);
                b[0] &= 0x7f;
                b[255] |= 1;
                let x = Zeroizing::new(U2048::from_be_slice(&b[..]));
                let params = modp2048_params();
                let g = FixedMontyForm::new(&U2048::from_u8(2), &params);
                let y = g.pow(&*x).retrieve();
                (Private::Modp2048(Box::new(x)), y.to_be_bytes().as_ref().to_vec())
            }
            other => return Err(CryptoError::UnsupportedGroup(other)),
        };
        Ok(KeyExchange { group, private, public })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The KE payload data.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data. The peer value is validated: right length,
    /// on the curve, not a small-order point (RFC 8031 §2.3), 1 < y < p-1 for MODP
    /// (RFC 7296 §5 and NIST SP 800-56A §5.6.2.3).
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let want = public_len(self.group).unwrap_or(0);
        if peer.len() != want {
            return Err(CryptoError::BadPublicValue { group: self.group, len: peer.len() });
        }
        let bad = || CryptoError::BadPublicValue { group: self.group, len: peer.len() };
        match &self.private {
            Private::Ecp256(sk) => ecp_shared!(p256, sk, peer).ok_or_else(bad),
            Private::Ecp384(sk) => ecp_shared!(p384, sk, peer).ok_or_else(bad),
            Private::X25519(sk) => {
                let mut b = [0u8; 32];
                b.copy_from_slice(peer);
                let ss = sk.diffie_hellman(&x25519_dalek::PublicKey::from(b));
                if !ss.was_contributory() {
                    return Err(bad());
                }
                Ok(Zeroizing::new(ss.as_bytes().to_vec()))
            }
            Private::Modp2048(x) => {
                let y = U2048::from_be_slice(peer);
                let p = U2048::from_be_hex(MODP2048_PRIME);
                let p_minus_1 = p.wrapping_sub(&U2048::ONE);
                if y <= U2048::ONE || y >= p_minus_1 {
                    return Err(bad());
                }
                let params = modp2048_params();
                let z = FixedMontyForm::new(&y, &params).pow(&***x).retrieve();
                Ok(Zeroizing::new(z.to_be_bytes().as_ref().to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::crypto::DeterministicEntropy;

    #[test]
    fn every_group_agrees_with_itself() {
        for g in SUPPORTED_GROUPS {
            let mut rng = DeterministicEntropy::new(b"dh");
            let a = KeyExchange::generate(g, &mut rng).expect("a");
            let b = KeyExchange::generate(g, &mut rng).expect("b");
            assert_eq!(Some(a.public().len()), public_len(g));
            let s1 = a.shared_secret(b.public()).expect("s1");
            let s2 = b.shared_secret(a.public()).expect("s2");
            assert_eq!(*s1, *s2, "{g:?}");
            assert!(a.shared_secret(&b.public()[1..]).is_err());
        }
    }

    /// RFC 7748 §6.1 (Alice's private key, Bob's public key, shared secret).
    #[test]
    fn x25519_rfc7748_vector() {
        struct Fixed(Vec<u8>);
        impl Entropy for Fixed {
            fn fill(&mut self, buf: &mut [u8]) {
                buf.copy_from_slice(&self.0[..buf.len()]);
            }
        }
        let alice = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").expect("hex");
        let bob_pub = hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f").expect("hex");
        let kx = KeyExchange::generate(DhGroup::Curve25519, &mut Fixed(alice)).expect("gen");
        assert_eq!(hex::encode(kx.public()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let ss = kx.shared_secret(&bob_pub).expect("ss");
        assert_eq!(hex::encode(&*ss), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        // Small-order point (all zero) must be refused (RFC 8031 §2.3).
        assert!(kx.shared_secret(&[0u8; 32]).is_err());
    }

    #[test]
    fn modp_rejects_degenerate_values() {
        let mut rng = DeterministicEntropy::new(b"modp");
        let a = KeyExchange::generate(DhGroup::Modp2048, &mut rng).expect("a");
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert!(a.shared_secret(&one).is_err());
        assert!(a.shared_secret(&[0xff; 256]).is_err());
    }
}
