//! IKEv2 transforms and proposals (RFC 7296 §3.3) and strongSwan-style proposal strings.
//!
//! Wire codes are enums with an `Unknown` arm so every value a peer sends survives a
//! parse/format round trip; equality, ordering and hashing go by the wire code, so
//! `EncrId::Unknown(20) == EncrId::AesGcm16`.
//!
//! Proposal strings follow strongSwan's `proposals`/`esp_proposals` syntax: algorithm
//! keywords joined by `-`, several keywords of one transform type are alternatives in
//! order of preference (`aes256gcm16-aes128gcm16-prfsha384-x25519-ecp256`). The order
//! of keywords of different types does not matter.
//!
//! [`select`] is the responder's choice (RFC 7296 §2.7): it returns the chosen proposal
//! or a [`ProposalMismatch`] that names each transform type that did not match, with
//! both sides' values and the closest configured proposal.

use std::fmt;

use crate::config::spelling;

/// Declares a wire-code enum: named variants plus `Unknown(code)`, conversions both
/// ways, and equality/order/hash by code.
macro_rules! wire_code {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, $iana:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code without a name here, kept as received.
            Unknown($repr),
        }

        impl $name {
            /// The variant for a wire code (never fails: unnamed codes become `Unknown`).
            pub const fn from_code(code: $repr) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }

            /// The wire code.
            pub const fn code(self) -> $repr {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Unknown(code) => code,
                }
            }

            /// The IANA / strongSwan log name (`AES_GCM_16`, `PRF_HMAC_SHA2_256`, …),
            /// `None` for codes without a name here.
            pub const fn iana_name(self) -> Option<&'static str> {
                match Self::from_code(self.code()) {
                    $( Self::$variant => Some($iana), )*
                    Self::Unknown(_) => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(code: $repr) -> Self {
                Self::from_code(code)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.code()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.code() == other.code()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.code().hash(state);
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.code().cmp(&other.code())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.iana_name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}_{}", stringify!($name).to_ascii_uppercase(), self.code()),
                }
            }
        }
    };
}

wire_code! {
    /// Protocol ID of a proposal (RFC 7296 §3.3.1).
    pub enum Protocol: u8 {
        Ike = 1, "IKE";
        Ah = 2, "AH";
        Esp = 3, "ESP";
    }
}

wire_code! {
    /// Transform type (RFC 7296 §3.3.2; IANA "Transform Type Values").
    pub enum TransformType: u8 {
        /// Encryption algorithm (ENCR).
        Encr = 1, "ENCR";
        /// Pseudo-random function (PRF).
        Prf = 2, "PRF";
        /// Integrity algorithm (INTEG).
        Integ = 3, "INTEG";
        /// Key exchange method, called Diffie-Hellman group (D-H) in RFC 7296.
        Ke = 4, "KE";
        /// Extended sequence numbers (ESN).
        Esn = 5, "ESN";
    }
}

wire_code! {
    /// Transform type 1 IDs (IANA "Transform Type 1 - Encryption Algorithm Transform IDs").
    pub enum EncrId: u16 {
        TripleDes = 3, "3DES_CBC";
        Null = 11, "NULL";
        AesCbc = 12, "AES_CBC";
        AesCtr = 13, "AES_CTR";
        AesCcm8 = 14, "AES_CCM_8";
        AesCcm12 = 15, "AES_CCM_12";
        AesCcm16 = 16, "AES_CCM_16";
        AesGcm8 = 18, "AES_GCM_8";
        AesGcm12 = 19, "AES_GCM_12";
        /// AES-GCM with a 16-octet ICV (RFC 4106, RFC 5282); key length attribute 128/192/256.
        AesGcm16 = 20, "AES_GCM_16";
        NullAuthAesGmac = 21, "NULL_AES_GMAC";
        /// ChaCha20-Poly1305 (RFC 7634); no key length attribute.
        ChaCha20Poly1305 = 28, "CHACHA20_POLY1305";
    }
}

wire_code! {
    /// Transform type 2 IDs (IANA "Transform Type 2 - Pseudorandom Function Transform IDs").
    pub enum PrfId: u16 {
        HmacMd5 = 1, "PRF_HMAC_MD5";
        HmacSha1 = 2, "PRF_HMAC_SHA1";
        AesXcbc = 4, "PRF_AES128_XCBC";
        HmacSha2_256 = 5, "PRF_HMAC_SHA2_256";
        HmacSha2_384 = 6, "PRF_HMAC_SHA2_384";
        HmacSha2_512 = 7, "PRF_HMAC_SHA2_512";
        AesCmac = 8, "PRF_AES128_CMAC";
    }
}

wire_code! {
    /// Transform type 3 IDs (IANA "Transform Type 3 - Integrity Algorithm Transform IDs").
    pub enum IntegId: u16 {
        /// NONE: what an AEAD proposal may carry instead of omitting INTEG (RFC 7296 §3.3).
        None = 0, "NONE";
        HmacMd5_96 = 1, "HMAC_MD5_96";
        HmacSha1_96 = 2, "HMAC_SHA1_96";
        AesXcbc96 = 5, "AES_XCBC_96";
        AesCmac96 = 8, "AES_CMAC_96";
        HmacSha2_256_128 = 12, "HMAC_SHA2_256_128";
        HmacSha2_384_192 = 13, "HMAC_SHA2_384_192";
        HmacSha2_512_256 = 14, "HMAC_SHA2_512_256";
    }
}

wire_code! {
    /// Transform type 4 IDs (IANA "Transform Type 4 - Key Exchange Method Transform IDs").
    pub enum DhGroup: u16 {
        /// NONE: in an ESP proposal, "PFS optional" (RFC 7296 §3.3.3).
        None = 0, "NONE";
        Modp768 = 1, "MODP_768";
        Modp1024 = 2, "MODP_1024";
        Modp1536 = 5, "MODP_1536";
        Modp2048 = 14, "MODP_2048";
        Modp3072 = 15, "MODP_3072";
        Modp4096 = 16, "MODP_4096";
        Modp6144 = 17, "MODP_6144";
        Modp8192 = 18, "MODP_8192";
        Ecp256 = 19, "ECP_256";
        Ecp384 = 20, "ECP_384";
        Ecp521 = 21, "ECP_521";
        Modp1024S160 = 22, "MODP_1024_160";
        Modp2048S224 = 23, "MODP_2048_224";
        Modp2048S256 = 24, "MODP_2048_256";
        Ecp192 = 25, "ECP_192";
        Ecp224 = 26, "ECP_224";
        Ecp224Bp = 27, "ECP_224_BP";
        Ecp256Bp = 28, "ECP_256_BP";
        Ecp384Bp = 29, "ECP_384_BP";
        Ecp512Bp = 30, "ECP_512_BP";
        Curve25519 = 31, "CURVE_25519";
        Curve448 = 32, "CURVE_448";
    }
}

wire_code! {
    /// Transform type 5 IDs (RFC 7296 §3.3.2).
    pub enum Esn: u16 {
        No = 0, "NO_EXT_SEQ";
        Yes = 1, "EXT_SEQ";
    }
}

/// An encryption transform: algorithm plus the Key Length attribute (RFC 7296 §3.3.5),
/// which AES requires and ChaCha20-Poly1305 must not carry (RFC 7634 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Encr {
    pub id: EncrId,
    pub key_bits: Option<u16>,
}

impl Encr {
    /// AES-GCM with 16-octet ICV and the given key size in bits.
    pub const fn aes_gcm16(key_bits: u16) -> Self {
        Self { id: EncrId::AesGcm16, key_bits: Some(key_bits) }
    }

    /// ChaCha20-Poly1305.
    pub const CHACHA20_POLY1305: Self = Self { id: EncrId::ChaCha20Poly1305, key_bits: None };

    /// Whether this is a combined-mode (AEAD) cipher, which needs no INTEG transform
    /// (RFC 5282 §8, RFC 7296 §3.3).
    pub fn is_aead(&self) -> bool {
        matches!(
            EncrId::from_code(self.id.code()),
            EncrId::AesCcm8
                | EncrId::AesCcm12
                | EncrId::AesCcm16
                | EncrId::AesGcm8
                | EncrId::AesGcm12
                | EncrId::AesGcm16
                | EncrId::NullAuthAesGmac
                | EncrId::ChaCha20Poly1305
        )
    }

    /// Key material length in bytes for ESP/IKE keying (RFC 7296 §2.17, RFC 4106 §8.1:
    /// AES-GCM takes 4 extra salt bytes; RFC 7634 §2: ChaCha20-Poly1305 takes 4 too).
    /// `None` for algorithms ipsecgw cannot key.
    pub fn keymat_len(&self) -> Option<usize> {
        match (EncrId::from_code(self.id.code()), self.key_bits) {
            (EncrId::AesGcm16, Some(bits @ (128 | 192 | 256))) => Some(usize::from(bits) / 8 + 4),
            (EncrId::ChaCha20Poly1305, None) => Some(32 + 4),
            _ => None,
        }
    }
}

impl fmt::Display for Encr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Transform::Encr(*self), f)
    }
}

/// One transform of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    Encr(Encr),
    Prf(PrfId),
    Integ(IntegId),
    Ke(DhGroup),
    Esn(Esn),
    /// A transform of a type this implementation does not know; a proposal holding one
    /// must not be chosen (RFC 7296 §3.3.6).
    Unknown { ty: TransformType, id: u16 },
}

impl Transform {
    /// Builds a transform from its wire fields (type, ID, Key Length attribute).
    pub fn from_wire(ty: u8, id: u16, key_bits: Option<u16>) -> Self {
        match TransformType::from_code(ty) {
            TransformType::Encr => Self::Encr(Encr { id: EncrId::from_code(id), key_bits }),
            TransformType::Prf => Self::Prf(PrfId::from_code(id)),
            TransformType::Integ => Self::Integ(IntegId::from_code(id)),
            TransformType::Ke => Self::Ke(DhGroup::from_code(id)),
            TransformType::Esn => Self::Esn(Esn::from_code(id)),
            TransformType::Unknown(_) => Self::Unknown { ty: TransformType::from_code(ty), id },
        }
    }

    pub fn transform_type(&self) -> TransformType {
        match self {
            Self::Encr(_) => TransformType::Encr,
            Self::Prf(_) => TransformType::Prf,
            Self::Integ(_) => TransformType::Integ,
            Self::Ke(_) => TransformType::Ke,
            Self::Esn(_) => TransformType::Esn,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// The transform ID on the wire.
    pub fn id(&self) -> u16 {
        match self {
            Self::Encr(e) => e.id.code(),
            Self::Prf(p) => p.code(),
            Self::Integ(i) => i.code(),
            Self::Ke(g) => g.code(),
            Self::Esn(e) => e.code(),
            Self::Unknown { id, .. } => *id,
        }
    }

    /// The Key Length attribute, if any (only encryption transforms carry one).
    pub fn key_bits(&self) -> Option<u16> {
        match self {
            Self::Encr(e) => e.key_bits,
            _ => None,
        }
    }

    /// The strongSwan keyword for this transform (`aes256gcm16`, `prfsha384`, `x25519`),
    /// if it has one.
    pub fn keyword(&self) -> Option<&'static str> {
        KEYWORDS.iter().find(|(_, t)| t == self).map(|(k, _)| *k)
    }

    /// The IANA / strongSwan log name: `AES_GCM_16_256`, `PRF_HMAC_SHA2_384`, `CURVE_25519`,
    /// `ENCRID_99` for codes without a name.
    pub fn iana_name(&self) -> String {
        match self {
            Self::Encr(e) => match e.key_bits {
                Some(bits) => format!("{}_{bits}", e.id),
                None => e.id.to_string(),
            },
            Self::Prf(p) => p.to_string(),
            Self::Integ(i) => i.to_string(),
            Self::Ke(g) => g.to_string(),
            Self::Esn(e) => e.to_string(),
            Self::Unknown { ty, id } => format!("{ty}_{id}"),
        }
    }

    /// Whether ipsecgw implements this transform for the given protocol.
    pub fn is_supported(&self, protocol: Protocol) -> bool {
        let ike = protocol == Protocol::Ike;
        let esp = protocol == Protocol::Esp;
        match self {
            Self::Encr(e) => (ike || esp) && SUPPORTED_ENCR.contains(e),
            Self::Prf(p) => ike && matches!(p.code(), 5..=7),
            Self::Integ(i) => *i == IntegId::None,
            Self::Ke(g) => (ike || esp) && SUPPORTED_KE.contains(g),
            Self::Esn(_) => esp,
            Self::Unknown { .. } => false,
        }
    }
}

impl fmt::Display for Transform {
    /// The strongSwan keyword when there is one, otherwise the IANA name (`AES_CBC_128`,
    /// `ENCRID_99`, `KE_1234`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keyword() {
            Some(keyword) => f.write_str(keyword),
            None => f.write_str(&self.iana_name()),
        }
    }
}

/// Encryption transforms ipsecgw implements (issue 6: AES-GCM-16 128/256, ChaCha20-Poly1305).
pub const SUPPORTED_ENCR: [Encr; 3] =
    [Encr::aes_gcm16(128), Encr::aes_gcm16(256), Encr::CHACHA20_POLY1305];

/// Key exchange methods ipsecgw implements.
pub const SUPPORTED_KE: [DhGroup; 4] =
    [DhGroup::Modp2048, DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519];

const fn gcm(id: EncrId, bits: u16) -> Transform {
    Transform::Encr(Encr { id, key_bits: Some(bits) })
}

/// strongSwan proposal keywords (src/libstrongswan/crypto/proposal/proposal_keywords_static.txt
/// names them; checked against the installed libstrongswan in tests). The first keyword
/// of a transform is the one we print.
const KEYWORDS: &[(&str, Transform)] = &[
    ("aes128gcm16", gcm(EncrId::AesGcm16, 128)),
    ("aes192gcm16", gcm(EncrId::AesGcm16, 192)),
    ("aes256gcm16", gcm(EncrId::AesGcm16, 256)),
    ("aes128gcm128", gcm(EncrId::AesGcm16, 128)),
    ("aes192gcm128", gcm(EncrId::AesGcm16, 192)),
    ("aes256gcm128", gcm(EncrId::AesGcm16, 256)),
    ("aes128gcm", gcm(EncrId::AesGcm16, 128)),
    ("aes192gcm", gcm(EncrId::AesGcm16, 192)),
    ("aes256gcm", gcm(EncrId::AesGcm16, 256)),
    ("aes128gcm12", gcm(EncrId::AesGcm12, 128)),
    ("aes192gcm12", gcm(EncrId::AesGcm12, 192)),
    ("aes256gcm12", gcm(EncrId::AesGcm12, 256)),
    ("aes128gcm96", gcm(EncrId::AesGcm12, 128)),
    ("aes192gcm96", gcm(EncrId::AesGcm12, 192)),
    ("aes256gcm96", gcm(EncrId::AesGcm12, 256)),
    ("aes128gcm8", gcm(EncrId::AesGcm8, 128)),
    ("aes192gcm8", gcm(EncrId::AesGcm8, 192)),
    ("aes256gcm8", gcm(EncrId::AesGcm8, 256)),
    ("aes128gcm64", gcm(EncrId::AesGcm8, 128)),
    ("aes192gcm64", gcm(EncrId::AesGcm8, 192)),
    ("aes256gcm64", gcm(EncrId::AesGcm8, 256)),
    ("aes128ccm16", gcm(EncrId::AesCcm16, 128)),
    ("aes192ccm16", gcm(EncrId::AesCcm16, 192)),
    ("aes256ccm16", gcm(EncrId::AesCcm16, 256)),
    ("chacha20poly1305", Transform::Encr(Encr::CHACHA20_POLY1305)),
    ("aes128", gcm(EncrId::AesCbc, 128)),
    ("aes192", gcm(EncrId::AesCbc, 192)),
    ("aes256", gcm(EncrId::AesCbc, 256)),
    ("aes", gcm(EncrId::AesCbc, 128)),
    ("aes128ctr", gcm(EncrId::AesCtr, 128)),
    ("aes192ctr", gcm(EncrId::AesCtr, 192)),
    ("aes256ctr", gcm(EncrId::AesCtr, 256)),
    ("3des", Transform::Encr(Encr { id: EncrId::TripleDes, key_bits: None })),
    ("null", Transform::Encr(Encr { id: EncrId::Null, key_bits: None })),
    ("prfmd5", Transform::Prf(PrfId::HmacMd5)),
    ("prfsha1", Transform::Prf(PrfId::HmacSha1)),
    ("prfaesxcbc", Transform::Prf(PrfId::AesXcbc)),
    ("prfaescmac", Transform::Prf(PrfId::AesCmac)),
    ("prfsha256", Transform::Prf(PrfId::HmacSha2_256)),
    ("prfsha384", Transform::Prf(PrfId::HmacSha2_384)),
    ("prfsha512", Transform::Prf(PrfId::HmacSha2_512)),
    ("md5", Transform::Integ(IntegId::HmacMd5_96)),
    ("sha1", Transform::Integ(IntegId::HmacSha1_96)),
    ("sha", Transform::Integ(IntegId::HmacSha1_96)),
    ("aesxcbc", Transform::Integ(IntegId::AesXcbc96)),
    ("aescmac", Transform::Integ(IntegId::AesCmac96)),
    ("sha256", Transform::Integ(IntegId::HmacSha2_256_128)),
    ("sha2_256", Transform::Integ(IntegId::HmacSha2_256_128)),
    ("sha384", Transform::Integ(IntegId::HmacSha2_384_192)),
    ("sha2_384", Transform::Integ(IntegId::HmacSha2_384_192)),
    ("sha512", Transform::Integ(IntegId::HmacSha2_512_256)),
    ("sha2_512", Transform::Integ(IntegId::HmacSha2_512_256)),
    ("modp768", Transform::Ke(DhGroup::Modp768)),
    ("modp1024", Transform::Ke(DhGroup::Modp1024)),
    ("modp1536", Transform::Ke(DhGroup::Modp1536)),
    ("modp2048", Transform::Ke(DhGroup::Modp2048)),
    ("modp3072", Transform::Ke(DhGroup::Modp3072)),
    ("modp4096", Transform::Ke(DhGroup::Modp4096)),
    ("modp6144", Transform::Ke(DhGroup::Modp6144)),
    ("modp8192", Transform::Ke(DhGroup::Modp8192)),
    ("modp1024s160", Transform::Ke(DhGroup::Modp1024S160)),
    ("modp2048s224", Transform::Ke(DhGroup::Modp2048S224)),
    ("modp2048s256", Transform::Ke(DhGroup::Modp2048S256)),
    ("ecp256", Transform::Ke(DhGroup::Ecp256)),
    ("ecp384", Transform::Ke(DhGroup::Ecp384)),
    ("ecp521", Transform::Ke(DhGroup::Ecp521)),
    ("ecp192", Transform::Ke(DhGroup::Ecp192)),
    ("ecp224", Transform::Ke(DhGroup::Ecp224)),
    ("ecp224bp", Transform::Ke(DhGroup::Ecp224Bp)),
    ("ecp256bp", Transform::Ke(DhGroup::Ecp256Bp)),
    ("ecp384bp", Transform::Ke(DhGroup::Ecp384Bp)),
    ("ecp512bp", Transform::Ke(DhGroup::Ecp512Bp)),
    ("x25519", Transform::Ke(DhGroup::Curve25519)),
    ("curve25519", Transform::Ke(DhGroup::Curve25519)),
    ("x448", Transform::Ke(DhGroup::Curve448)),
    ("curve448", Transform::Ke(DhGroup::Curve448)),
    ("noesn", Transform::Esn(Esn::No)),
    ("esn", Transform::Esn(Esn::Yes)),
];

/// Every strongSwan keyword this parser knows (for tests and help texts).
pub fn keywords() -> impl Iterator<Item = &'static str> {
    KEYWORDS.iter().map(|(k, _)| *k)
}

/// An IKE or ESP proposal: per transform type, the acceptable transforms in order of
/// preference (RFC 7296 §3.3: several transforms of one type are alternatives).
/// An empty list means the type is absent (for INTEG and KE the same as NONE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub protocol: Protocol,
    pub encr: Vec<Encr>,
    pub prf: Vec<PrfId>,
    pub integ: Vec<IntegId>,
    pub ke: Vec<DhGroup>,
    pub esn: Vec<Esn>,
    /// Transforms of unknown types (RFC 7296 §3.3.6: such a proposal is not chosen).
    pub unknown: Vec<(TransformType, u16)>,
}

impl Proposal {
    /// An empty proposal for `protocol`; add transforms with [`Proposal::push`].
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            encr: Vec::new(),
            prf: Vec::new(),
            integ: Vec::new(),
            ke: Vec::new(),
            esn: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Appends a transform as the least preferred alternative of its type (duplicates ignored).
    pub fn push(&mut self, transform: Transform) {
        fn add<T: PartialEq>(list: &mut Vec<T>, value: T) {
            if !list.contains(&value) {
                list.push(value);
            }
        }
        match transform {
            Transform::Encr(e) => add(&mut self.encr, e),
            Transform::Prf(p) => add(&mut self.prf, p),
            Transform::Integ(i) => add(&mut self.integ, i),
            Transform::Ke(g) => add(&mut self.ke, g),
            Transform::Esn(e) => add(&mut self.esn, e),
            Transform::Unknown { ty, id } => add(&mut self.unknown, (ty, id)),
        }
    }

    /// All transforms in wire order (ENCR, PRF, INTEG, KE, ESN, unknown types).
    pub fn transforms(&self) -> impl Iterator<Item = Transform> + '_ {
        self.encr
            .iter()
            .map(|e| Transform::Encr(*e))
            .chain(self.prf.iter().map(|p| Transform::Prf(*p)))
            .chain(self.integ.iter().map(|i| Transform::Integ(*i)))
            .chain(self.ke.iter().map(|g| Transform::Ke(*g)))
            .chain(self.esn.iter().map(|e| Transform::Esn(*e)))
            .chain(self.unknown.iter().map(|(ty, id)| Transform::Unknown { ty: *ty, id: *id }))
    }

    /// The transforms of one type, in order of preference.
    pub fn transforms_of(&self, ty: TransformType) -> Vec<Transform> {
        self.transforms().filter(|t| t.transform_type() == ty).collect()
    }

    /// The same proposal without key exchange transforms: the first Child SA, negotiated
    /// inside IKE_AUTH, has no KE (RFC 7296 §1.2), so strongSwan drops the PFS group there.
    pub fn without_ke(&self) -> Self {
        Self { ke: Vec::new(), ..self.clone() }
    }

    /// strongSwan's log form, `IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/CURVE_25519`
    /// (types in strongSwan's order: ENCR, INTEG, PRF, KE, ESN), so messages can be
    /// compared with a strongSwan peer's log line by line.
    pub fn describe(&self) -> String {
        let order = [TransformType::Encr, TransformType::Integ, TransformType::Prf, TransformType::Ke, TransformType::Esn];
        let names: Vec<String> = order
            .iter()
            .flat_map(|ty| self.transforms_of(*ty))
            .chain(self.unknown.iter().map(|(ty, id)| Transform::Unknown { ty: *ty, id: *id }))
            .map(|t| t.iana_name())
            .collect();
        format!("{}:{}", self.protocol, names.join("/"))
    }

    /// Parses a strongSwan proposal string, accepting every algorithm strongSwan names
    /// (including ones ipsecgw cannot run: use [`Proposal::parse_supported`] for config).
    pub fn parse(protocol: Protocol, text: &str) -> Result<Self, ProposalParseError> {
        Self::parse_inner(protocol, text, false)
    }

    /// Like [`Proposal::parse`], and rejects algorithms ipsecgw does not implement,
    /// suggesting the closest one it does.
    pub fn parse_supported(protocol: Protocol, text: &str) -> Result<Self, ProposalParseError> {
        Self::parse_inner(protocol, text, true)
    }

    /// Parses a list of proposal strings (a connection's `ike_proposals` / `esp_proposals`).
    pub fn parse_list<S: AsRef<str>>(
        protocol: Protocol,
        texts: &[S],
        supported_only: bool,
    ) -> Result<Vec<Self>, ProposalParseError> {
        texts.iter().map(|t| Self::parse_inner(protocol, t.as_ref(), supported_only)).collect()
    }

    fn parse_inner(protocol: Protocol, text: &str, supported_only: bool) -> Result<Self, ProposalParseError> {
        let proposal_text = text.trim();
        let err_ctx = |kind| ProposalParseError { proposal: proposal_text.to_owned(), protocol, kind };
        if proposal_text.is_empty() {
            return Err(err_ctx(ParseErrorKind::Empty));
        }
        let mut proposal = Self::new(protocol);
        for token in proposal_text.split('-') {
            // Keywords are case-sensitive, as in strongSwan ("AES256GCM16" is refused
            // there too); the did-you-mean then offers the lowercase spelling.
            let word = token.to_owned();
            if word.is_empty() {
                return Err(err_ctx(ParseErrorKind::EmptyAlgorithm));
            }
            let Some(transform) = KEYWORDS.iter().find(|(k, _)| *k == word).map(|(_, t)| *t) else {
                return Err(err_ctx(ParseErrorKind::UnknownAlgorithm {
                    token: token.to_owned(),
                    suggestion: suggest(protocol, &word),
                }));
            };
            let ty = transform.transform_type();
            let misplaced = match protocol {
                Protocol::Ike => ty == TransformType::Esn,
                Protocol::Esp => ty == TransformType::Prf,
                _ => false,
            };
            if misplaced {
                return Err(err_ctx(ParseErrorKind::NotAllowed { token: token.to_owned() }));
            }
            if supported_only && !transform.is_supported(protocol) {
                return Err(err_ctx(ParseErrorKind::Unsupported {
                    token: token.to_owned(),
                    suggestion: suggest_supported(protocol, ty, &word),
                }));
            }
            proposal.push(transform);
        }
        proposal.complete().map_err(err_ctx)?;
        Ok(proposal)
    }

    /// Checks mandatory transforms and fills strongSwan's defaults (RFC 7296 §3.3.3).
    fn complete(&mut self) -> Result<(), ParseErrorKind> {
        let missing = |ty, example| Err(ParseErrorKind::Missing { ty, example });
        if self.encr.is_empty() {
            return missing(TransformType::Encr, "aes256gcm16");
        }
        let aead = self.encr.iter().filter(|e| e.is_aead()).count();
        if aead != 0 && aead != self.encr.len() {
            return Err(ParseErrorKind::MixedAead);
        }
        if aead != 0 {
            if let Some(integ) = self.integ.iter().find(|i| **i != IntegId::None) {
                return Err(ParseErrorKind::IntegWithAead { integ: Transform::Integ(*integ).to_string() });
            }
        } else if self.integ.is_empty() && self.protocol == Protocol::Ike {
            // ESP may go without integrity (RFC 4303 §3.2, strongSwan accepts it);
            // IKE may not (RFC 7296 §3.3.3).
            return missing(TransformType::Integ, "sha256");
        }
        if self.protocol == Protocol::Ike {
            if self.prf.is_empty() {
                // strongSwan derives the PRF from the integrity algorithm; an AEAD
                // proposal has none, so it must name one.
                let derived: Vec<PrfId> = self.integ.iter().filter_map(|i| prf_for_integ(*i)).collect();
                if derived.is_empty() {
                    return missing(TransformType::Prf, "prfsha256");
                }
                self.prf = derived;
            }
            if self.ke.is_empty() {
                return missing(TransformType::Ke, "x25519");
            }
        }
        if self.protocol == Protocol::Esp && self.esn.is_empty() {
            // strongSwan's default: without esn/noesn an ESP proposal offers no ESN.
            self.esn.push(Esn::No);
        }
        Ok(())
    }
}

fn prf_for_integ(integ: IntegId) -> Option<PrfId> {
    Some(match integ {
        IntegId::HmacMd5_96 => PrfId::HmacMd5,
        IntegId::HmacSha1_96 => PrfId::HmacSha1,
        IntegId::AesXcbc96 => PrfId::AesXcbc,
        IntegId::AesCmac96 => PrfId::AesCmac,
        IntegId::HmacSha2_256_128 => PrfId::HmacSha2_256,
        IntegId::HmacSha2_384_192 => PrfId::HmacSha2_384,
        IntegId::HmacSha2_512_256 => PrfId::HmacSha2_512,
        _ => return None,
    })
}

/// Closest keyword for a typo, preferring keywords ipsecgw supports for `protocol`.
fn suggest(protocol: Protocol, word: &str) -> Option<&'static str> {
    let supported = KEYWORDS.iter().filter(|(_, t)| t.is_supported(protocol)).map(|(k, _)| *k);
    spelling::closest(word, supported).or_else(|| spelling::closest(word, keywords()))
}

/// A supported keyword of the same type to use instead of an unsupported one.
fn suggest_supported(protocol: Protocol, ty: TransformType, word: &str) -> Option<&'static str> {
    let same_type = || {
        KEYWORDS
            .iter()
            .filter(move |(_, t)| t.transform_type() == ty && t.is_supported(protocol))
            .map(|(k, _)| *k)
    };
    // aes256 (CBC) -> aes256gcm16: the supported keyword that starts like the word.
    same_type()
        .find(|k| k.starts_with(word))
        .or_else(|| spelling::closest(word, same_type()))
        .or_else(|| same_type().next())
}

impl fmt::Display for Proposal {
    /// strongSwan syntax, types in the order strongSwan prints them (encr, integ, prf, ke, esn).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = [TransformType::Encr, TransformType::Integ, TransformType::Prf, TransformType::Ke, TransformType::Esn];
        let mut first = true;
        let rest = self.unknown.iter().map(|(ty, id)| Transform::Unknown { ty: *ty, id: *id });
        for t in order.iter().flat_map(|ty| self.transforms_of(*ty)).chain(rest) {
            if !first {
                f.write_str("-")?;
            }
            first = false;
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// A proposal string that could not be parsed, with the reason and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} in {protocol} proposal '{proposal}'{}", kind.fix())]
pub struct ProposalParseError {
    /// The whole proposal string.
    pub proposal: String,
    pub protocol: Protocol,
    pub kind: ParseErrorKind,
}

/// What is wrong with a proposal string ([`ParseErrorKind::fix`] says what to change).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty proposal")]
    Empty,
    #[error("empty algorithm name")]
    EmptyAlgorithm,
    #[error("unknown algorithm '{token}'")]
    UnknownAlgorithm { token: String, suggestion: Option<&'static str> },
    #[error("algorithm '{token}' is not supported by ipsecgw")]
    Unsupported { token: String, suggestion: Option<&'static str> },
    #[error("'{token}' does not belong")]
    NotAllowed { token: String },
    #[error("no {} algorithm", type_noun(*ty))]
    Missing { ty: TransformType, example: &'static str },
    #[error("AEAD and non-AEAD ciphers mixed")]
    MixedAead,
    #[error("integrity algorithm '{integ}' given with an AEAD cipher")]
    IntegWithAead { integ: String },
}

impl ParseErrorKind {
    /// What to change, starting with ": " (empty when there is nothing to add).
    pub fn fix(&self) -> String {
        match self {
            Self::Empty => ": write algorithms joined by '-', e.g. 'aes256gcm16-prfsha384-x25519'".to_owned(),
            Self::EmptyAlgorithm => ": remove the doubled or dangling '-'".to_owned(),
            Self::UnknownAlgorithm { suggestion, .. } => did_you_mean(*suggestion),
            Self::Unsupported { suggestion, .. } => {
                suggestion.map(|s| format!(": use {s}")).unwrap_or_default()
            }
            Self::NotAllowed { .. } => {
                ": PRFs are negotiated only for IKE and ESN only for ESP; remove it".to_owned()
            }
            Self::Missing { example, .. } => format!(": add one, e.g. {example}"),
            Self::MixedAead => ": put AEAD and classic ciphers in separate proposals".to_owned(),
            Self::IntegWithAead { .. } => ": remove it, AEAD ciphers authenticate by themselves".to_owned(),
        }
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map(|s| format!(": did you mean {s}?")).unwrap_or_default()
}

/// The noun for a transform type in messages.
pub fn type_noun(ty: TransformType) -> &'static str {
    match ty {
        TransformType::Encr => "encryption",
        TransformType::Prf => "PRF",
        TransformType::Integ => "integrity",
        TransformType::Ke => "key exchange (DH group)",
        TransformType::Esn => "ESN",
        TransformType::Unknown(_) => "unknown transform type",
    }
}

/// A proposal as chosen by the responder: one transform per type (RFC 7296 §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChosenProposal {
    pub protocol: Protocol,
    pub encr: Encr,
    pub prf: Option<PrfId>,
    /// `None` for AEAD ciphers (INTEG absent or NONE).
    pub integ: Option<IntegId>,
    /// `None` when no key exchange is done (no PFS, or IKE_AUTH's first Child SA).
    pub ke: Option<DhGroup>,
    pub esn: Option<Esn>,
}

impl ChosenProposal {
    /// As a [`Proposal`] with one transform per type (what the responder sends back).
    pub fn to_proposal(&self) -> Proposal {
        Proposal {
            protocol: self.protocol,
            encr: vec![self.encr],
            prf: self.prf.into_iter().collect(),
            integ: self.integ.into_iter().collect(),
            ke: self.ke.into_iter().collect(),
            esn: self.esn.into_iter().collect(),
            unknown: Vec::new(),
        }
    }
}

impl fmt::Display for ChosenProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_proposal(), f)
    }
}

/// The result of a successful [`select`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Index into the offered list (its proposal number is `offered_index + 1` when the
    /// peer numbered them in order, RFC 7296 §3.3.1; the caller keeps the real number).
    pub offered_index: usize,
    /// Index into the configured list.
    pub configured_index: usize,
    pub chosen: ChosenProposal,
}

/// One transform type (or the protocol) where the closest proposals differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Protocol { offered: Protocol, configured: Protocol },
    Transform { ty: TransformType, offered: Vec<Transform>, configured: Vec<Transform> },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol { offered, configured } => {
                write!(f, "protocol: peer offered {offered}, we expect {configured}")
            }
            Self::Transform { ty, offered, configured } => {
                write!(f, "{}: peer offered {}, we accept {}", type_noun(*ty), list(offered), list(configured))
            }
        }
    }
}

fn list(transforms: &[Transform]) -> String {
    if transforms.is_empty() {
        return "none".to_owned();
    }
    transforms.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
}

/// Why no proposal was chosen (the responder answers NO_PROPOSAL_CHOSEN, RFC 7296 §3.10.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("peer offered no proposals")]
    NothingOffered,
    #[error("no proposals configured")]
    NothingConfigured,
    #[error(transparent)]
    Mismatch(Box<ProposalMismatch>),
}

/// The closest pair of (offered, configured) proposals and every way they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalMismatch {
    pub offered_index: usize,
    pub configured_index: usize,
    /// The offered proposal closest to our configuration.
    pub offered: Proposal,
    /// The configured proposal closest to the offer.
    pub configured: Proposal,
    /// Never empty.
    pub differences: Vec<Difference>,
}

impl ProposalMismatch {
    /// The transform types that did not match (empty if only the protocol differed).
    pub fn mismatched_types(&self) -> impl Iterator<Item = TransformType> + '_ {
        self.differences.iter().filter_map(|d| match d {
            Difference::Transform { ty, .. } => Some(*ty),
            Difference::Protocol { .. } => None,
        })
    }
}

impl std::error::Error for ProposalMismatch {}

impl fmt::Display for ProposalMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no matching {} proposal: ", self.configured.protocol)?;
        for (i, d) in self.differences.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{d}")?;
        }
        write!(
            f,
            " (closest: offered '{}', configured '{}')",
            self.offered, self.configured
        )
    }
}

/// The type's "absent" value, when it has one (RFC 7296 §3.3.3: INTEG NONE for AEAD,
/// KE NONE for optional PFS).
trait Absent: Copy + PartialEq {
    const NONE: Option<Self>;
}

impl Absent for Encr {
    const NONE: Option<Self> = None;
}
impl Absent for PrfId {
    const NONE: Option<Self> = None;
}
impl Absent for IntegId {
    const NONE: Option<Self> = Some(IntegId::None);
}
impl Absent for DhGroup {
    const NONE: Option<Self> = Some(DhGroup::None);
}
impl Absent for Esn {
    const NONE: Option<Self> = None;
}

/// Picks one transform of a type: `Ok(Some(t))`, `Ok(None)` for "absent on both sides",
/// `Err(())` for no overlap. Our (configured) preference wins; `hint` first if both accept it.
#[allow(clippy::result_unit_err)]
fn pick<T: Absent>(configured: &[T], offered: &[T], hint: Option<T>) -> Result<Option<T>, ()> {
    let none_ok = |list: &[T]| list.is_empty() || T::NONE.is_some_and(|n| list.contains(&n));
    let real = |t: &&T| Some(**t) != T::NONE;
    if let Some(h) = hint {
        if configured.contains(&h) && offered.contains(&h) {
            return Ok(Some(h));
        }
    }
    if let Some(t) = configured.iter().filter(real).find(|c| offered.contains(c)) {
        return Ok(Some(*t));
    }
    if none_ok(configured) && none_ok(offered) {
        return Ok(None);
    }
    Err(())
}

/// Tries one (offered, configured) pair; on failure returns the differences.
fn match_pair(offered: &Proposal, configured: &Proposal, ke_hint: Option<DhGroup>) -> Result<ChosenProposal, Vec<Difference>> {
    let mut differences = Vec::new();
    if offered.protocol != configured.protocol {
        differences.push(Difference::Protocol { offered: offered.protocol, configured: configured.protocol });
    }
    let mut check = |ty: TransformType, ok: bool| {
        if !ok {
            differences.push(Difference::Transform {
                ty,
                offered: offered.transforms_of(ty),
                configured: configured.transforms_of(ty),
            });
        }
    };
    let encr = pick(&configured.encr, &offered.encr, None);
    check(TransformType::Encr, matches!(encr, Ok(Some(_))));
    let prf = pick(&configured.prf, &offered.prf, None);
    check(TransformType::Prf, prf.is_ok());
    let integ = pick(&configured.integ, &offered.integ, None);
    check(TransformType::Integ, integ.is_ok());
    let ke = pick(&configured.ke, &offered.ke, ke_hint);
    check(TransformType::Ke, ke.is_ok());
    let esn = pick(&configured.esn, &offered.esn, None);
    check(TransformType::Esn, esn.is_ok());
    let mut unknown_types: Vec<TransformType> = offered.unknown.iter().map(|(ty, _)| *ty).collect();
    unknown_types.dedup();
    for ty in unknown_types {
        check(ty, false);
    }
    match (encr, prf, integ, ke, esn) {
        (Ok(Some(encr)), Ok(prf), Ok(integ), Ok(ke), Ok(esn)) if differences.is_empty() => {
            Ok(ChosenProposal { protocol: configured.protocol, encr, prf, integ, ke, esn })
        }
        _ => Err(differences),
    }
}

/// The responder's proposal choice (RFC 7296 §2.7): the first configured proposal (our
/// preference, as strongSwan does by default) that matches any offered one; within a
/// type, our preferred transform that the peer also offered. `ke_hint` (the group of the
/// peer's KE payload) is chosen when both sides accept it, so no INVALID_KE_PAYLOAD
/// round trip is needed (RFC 7296 §1.2).
///
/// On failure, the mismatch names the closest pair — the one matching most transform
/// types, earlier configured and then earlier offered proposals winning ties.
pub fn select(
    offered: &[Proposal],
    configured: &[Proposal],
    ke_hint: Option<DhGroup>,
) -> Result<Selection, SelectError> {
    if offered.is_empty() {
        return Err(SelectError::NothingOffered);
    }
    if configured.is_empty() {
        return Err(SelectError::NothingConfigured);
    }
    let mut closest: Option<(usize, ProposalMismatch)> = None;
    for (configured_index, c) in configured.iter().enumerate() {
        for (offered_index, o) in offered.iter().enumerate() {
            match match_pair(o, c, ke_hint) {
                Ok(chosen) => return Ok(Selection { offered_index, configured_index, chosen }),
                Err(differences) => {
                    let count = differences.len();
                    if closest.as_ref().is_none_or(|(best, _)| count < *best) {
                        let mismatch = ProposalMismatch {
                            offered_index,
                            configured_index,
                            offered: o.clone(),
                            configured: c.clone(),
                            differences,
                        };
                        closest = Some((count, mismatch));
                    }
                }
            }
        }
    }
    match closest {
        Some((_, mismatch)) => Err(SelectError::Mismatch(Box::new(mismatch))),
        None => Err(SelectError::NothingConfigured),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ike(s: &str) -> Proposal {
        Proposal::parse(Protocol::Ike, s).expect(s)
    }

    fn esp(s: &str) -> Proposal {
        Proposal::parse(Protocol::Esp, s).expect(s)
    }

    #[test]
    fn wire_codes_round_trip_and_compare_by_code() {
        assert_eq!(EncrId::from_code(20), EncrId::AesGcm16);
        assert_eq!(EncrId::Unknown(28), EncrId::ChaCha20Poly1305);
        assert_eq!(EncrId::from_code(999), EncrId::Unknown(999));
        assert_eq!(u16::from(DhGroup::Curve25519), 31);
        assert_eq!(TransformType::from_code(4), TransformType::Ke);
        assert_eq!(EncrId::Unknown(20).iana_name(), Some("AES_GCM_16"));
        assert_eq!(EncrId::Unknown(999).to_string(), "ENCRID_999");
        assert_eq!(Transform::from_wire(9, 3, None).to_string(), "TRANSFORMTYPE_9_3");
    }

    #[test]
    fn parses_the_examples() {
        let p = ike("aes256gcm16-prfsha384-x25519");
        assert_eq!(p.encr, vec![Encr::aes_gcm16(256)]);
        assert_eq!(p.prf, vec![PrfId::HmacSha2_384]);
        assert_eq!(p.ke, vec![DhGroup::Curve25519]);
        assert!(p.integ.is_empty() && p.esn.is_empty());

        let p = ike("chacha20poly1305-prfsha256-modp2048");
        assert_eq!(p.encr, vec![Encr::CHACHA20_POLY1305]);
        assert_eq!(p.ke, vec![DhGroup::Modp2048]);

        assert_eq!(esp("aes256gcm16-x25519-esn").esn, vec![Esn::Yes]);
        assert_eq!(esp("aes128gcm16").esn, vec![Esn::No]);
        assert_eq!(esp("aes128gcm16-noesn").esn, vec![Esn::No]);
        assert_eq!(esp("aes128gcm16-esn-noesn").esn, vec![Esn::Yes, Esn::No]);
    }

    #[test]
    fn alternatives_keep_preference_order_whatever_the_token_order() {
        let a = ike("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256");
        let b = ike("aes256gcm16-prfsha384-ecp384-aes128gcm16-prfsha256-ecp256");
        assert_eq!(a, b);
        assert_eq!(a.encr, vec![Encr::aes_gcm16(256), Encr::aes_gcm16(128)]);
        assert_eq!(a.to_string(), "aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256");
    }

    #[test]
    fn display_round_trips() {
        for s in ["aes128gcm16-prfsha256-ecp256", "chacha20poly1305-prfsha512-x25519-modp2048"] {
            assert_eq!(ike(s).to_string(), s);
            assert_eq!(ike(&ike(s).to_string()), ike(s));
        }
        assert_eq!(esp("aes128gcm16").to_string(), "aes128gcm16-noesn");
        let e = Proposal::parse(Protocol::Esp, "AES256GCM16").unwrap_err();
        assert!(e.to_string().ends_with("did you mean aes256gcm16?"), "{e}");
        // strongSwan's aliases print as their canonical keyword.
        assert_eq!(ike("aes256gcm-prfsha256-curve25519").to_string(), "aes256gcm16-prfsha256-x25519");
        assert_eq!(ike("aes128-sha256-modp2048").to_string(), "aes128-sha256-prfsha256-modp2048");
        assert_eq!(ike("aes128-sha256-modp2048").describe(), "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048");
    }

    #[test]
    fn helpful_errors() {
        let e = Proposal::parse(Protocol::Ike, "aes256gmc16-prfsha384-x25519").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown algorithm 'aes256gmc16' in IKE proposal 'aes256gmc16-prfsha384-x25519': did you mean aes256gcm16?"
        );
        let e = Proposal::parse(Protocol::Ike, "aes256gcm16-prfsha348-x25519").unwrap_err();
        assert!(e.to_string().contains("did you mean prfsha384?"), "{e}");
        let e = Proposal::parse(Protocol::Ike, "aes256gcm16-x25519").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Missing { ty: TransformType::Prf, example: "prfsha256" });
        let e = Proposal::parse(Protocol::Ike, "aes256gcm16-prfsha256").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no key exchange (DH group) algorithm in IKE proposal 'aes256gcm16-prfsha256': add one, e.g. x25519"
        );
        let e = Proposal::parse(Protocol::Esp, "aes256gcm16-prfsha256").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'prfsha256' does not belong in ESP proposal 'aes256gcm16-prfsha256': \
             PRFs are negotiated only for IKE and ESN only for ESP; remove it"
        );
        let e = Proposal::parse(Protocol::Ike, "aes256gcm16-prfsha256-x25519-esn").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::NotAllowed { .. }));
        let e = Proposal::parse(Protocol::Esp, "aes128gcm16--x25519").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::EmptyAlgorithm);
        let e = Proposal::parse(Protocol::Esp, "aes128gcm16-sha256").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::IntegWithAead { .. }));
        assert!(Proposal::parse(Protocol::Esp, "aes128").is_ok(), "ESP without integrity is legal");
        let e = Proposal::parse(Protocol::Ike, "aes128-x25519").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::Missing { ty: TransformType::Integ, .. }), "{e}");
        let e = Proposal::parse(Protocol::Esp, "aes128gcm16-aes128-sha256").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::MixedAead);
        let e = Proposal::parse(Protocol::Esp, "  ").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Empty);
        let e = Proposal::parse(Protocol::Esp, "banana").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnknownAlgorithm { token: "banana".into(), suggestion: None });
    }

    #[test]
    fn supported_only_rejects_what_we_cannot_run() {
        assert!(Proposal::parse_supported(Protocol::Ike, "aes256gcm16-prfsha384-x25519").is_ok());
        assert!(Proposal::parse_supported(Protocol::Esp, "chacha20poly1305-ecp384-esn").is_ok());
        let e = Proposal::parse_supported(Protocol::Ike, "aes256-sha256-x25519").unwrap_err();
        assert_eq!(
            e.to_string(),
            "algorithm 'aes256' is not supported by ipsecgw in IKE proposal 'aes256-sha256-x25519': use aes256gcm16"
        );
        let e = Proposal::parse_supported(Protocol::Ike, "aes128gcm16-prfsha256-ecp521").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::Unsupported { suggestion: Some(_), .. }), "{e}");
        let e = Proposal::parse_supported(Protocol::Esp, "aes192gcm16").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::Unsupported { .. }), "{e}");
    }

    #[test]
    fn keymat_lengths() {
        assert_eq!(Encr::aes_gcm16(128).keymat_len(), Some(20));
        assert_eq!(Encr::aes_gcm16(256).keymat_len(), Some(36));
        assert_eq!(Encr::CHACHA20_POLY1305.keymat_len(), Some(36));
        assert_eq!(Encr { id: EncrId::AesCbc, key_bits: Some(128) }.keymat_len(), None);
    }

    #[test]
    fn select_prefers_our_order_and_the_ke_hint() {
        let configured = [ike("aes256gcm16-prfsha384-x25519-ecp256"), ike("aes128gcm16-prfsha256-ecp256")];
        let offered = [ike("aes128gcm16-prfsha256-ecp256"), ike("aes256gcm16-prfsha384-ecp256-x25519")];
        let s = select(&offered, &configured, None).unwrap();
        assert_eq!((s.offered_index, s.configured_index), (1, 0));
        assert_eq!(s.chosen.encr, Encr::aes_gcm16(256));
        assert_eq!(s.chosen.ke, Some(DhGroup::Curve25519));
        assert_eq!(s.chosen.integ, None);
        assert_eq!(s.chosen.to_string(), "aes256gcm16-prfsha384-x25519");
        let s = select(&offered, &configured, Some(DhGroup::Ecp256)).unwrap();
        assert_eq!(s.chosen.ke, Some(DhGroup::Ecp256));
    }

    #[test]
    fn select_esp_with_and_without_pfs() {
        // No PFS configured, peer offers PFS optional (KE NONE): no KE chosen.
        let mut offered = esp("aes128gcm16-ecp256");
        offered.push(Transform::Ke(DhGroup::None));
        let s = select(&[offered], &[esp("aes128gcm16")], None).unwrap();
        assert_eq!(s.chosen.ke, None);
        assert_eq!(s.chosen.esn, Some(Esn::No));
        // INTEG NONE offered with an AEAD cipher is the same as no INTEG.
        let mut offered = esp("aes128gcm16");
        offered.push(Transform::Integ(IntegId::None));
        assert!(select(&[offered], &[esp("aes128gcm16")], None).is_ok());
        // In IKE_AUTH the KE is dropped from both sides.
        let s = select(&[esp("aes256gcm16-x25519-esn").without_ke()], &[esp("aes256gcm16-x25519-esn").without_ke()], None);
        assert_eq!(s.unwrap().chosen.esn, Some(Esn::Yes));
    }

    #[test]
    fn mismatch_names_the_type_both_values_and_the_closest_proposal() {
        let configured = [esp("chacha20poly1305-esn"), esp("aes256gcm16-x25519-esn")];
        let offered = [esp("aes256gcm16-ecp256-esn")];
        let Err(SelectError::Mismatch(m)) = select(&offered, &configured, None) else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.configured_index, 1);
        assert_eq!(m.mismatched_types().collect::<Vec<_>>(), vec![TransformType::Ke]);
        assert_eq!(
            m.differences,
            vec![Difference::Transform {
                ty: TransformType::Ke,
                offered: vec![Transform::Ke(DhGroup::Ecp256)],
                configured: vec![Transform::Ke(DhGroup::Curve25519)],
            }]
        );
        assert_eq!(
            m.to_string(),
            "no matching ESP proposal: key exchange (DH group): peer offered ecp256, we accept x25519 \
             (closest: offered 'aes256gcm16-ecp256-esn', configured 'aes256gcm16-x25519-esn')"
        );
    }

    #[test]
    fn mismatch_on_pfs_absent_and_unknown_types() {
        let Err(SelectError::Mismatch(m)) = select(&[esp("aes128gcm16")], &[esp("aes128gcm16-modp2048")], None) else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.differences[0].to_string(), "key exchange (DH group): peer offered none, we accept modp2048");
        let mut weird = esp("aes128gcm16");
        weird.push(Transform::from_wire(6, 1, None));
        let Err(SelectError::Mismatch(m)) = select(&[weird], &[esp("aes128gcm16")], None) else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.mismatched_types().collect::<Vec<_>>(), vec![TransformType::Unknown(6)]);
        assert_eq!(select(&[], &[esp("aes128gcm16")], None), Err(SelectError::NothingOffered));
        assert_eq!(select(&[esp("aes128gcm16")], &[], None), Err(SelectError::NothingConfigured));
    }

    #[test]
    fn every_keyword_survives_wire_and_keyword_round_trips() {
        for (keyword, transform) in KEYWORDS {
            let wire = Transform::from_wire(transform.transform_type().code(), transform.id(), transform.key_bits());
            assert_eq!(wire, *transform, "{keyword}");
            let canonical = transform.keyword().expect("listed");
            let back = KEYWORDS.iter().find(|(k, _)| *k == canonical).map(|(_, t)| *t);
            assert_eq!(back, Some(*transform), "{keyword} -> {canonical}");
        }
    }
}
