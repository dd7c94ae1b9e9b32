//! IKEv2 crypto suites: PRFs, prf+, key derivation, key exchange, SK payload protection.
//!
//! The algorithm identifiers live here; the operations in the submodules:
//! [`prf`] (HMAC PRFs and prf+, RFC 7296 2.13), [`integ`] (HMAC-SHA2 truncated ICVs,
//! RFC 4868), [`dh`] (groups 19, 20, 31 with RFC 6989 checks), [`keys`] (SKEYSEED and
//! SK_*, child KEYMAT, RFC 7296 2.14 and 2.17), [`sk`] (the encrypted payload, RFC 7296
//! 3.14 and RFC 5282) and [`random`] (the injected randomness the sans-IO core uses).

pub mod dh;
pub mod integ;
pub mod keys;
pub mod prf;
pub mod random;
pub mod sk;

use super::wire::sa::{Transform, TransformId, TransformType};

/// Why a crypto operation failed. Every variant is a drop reason for a received
/// message or a refusal of a peer's key share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// A key share of the wrong length for its group (RFC 7296 3.4).
    KeShareLength,
    /// A public value that is not a valid point of the group, or the identity
    /// (RFC 6989 2.3).
    KeShareInvalid,
    /// The computed shared secret is all zero (RFC 7748 6.1, RFC 6989).
    SharedSecretZero,
    /// prf+ asked for more than 255 blocks (RFC 7296 2.13).
    PrfPlusTooLong,
    /// An SK payload too short for IV and ICV, or with a ciphertext that is not a
    /// whole number of blocks.
    SkTruncated,
    /// The integrity check or the AEAD tag did not verify.
    SkIntegrity,
    /// The padding length points before the start of the plaintext.
    SkPadding,
    /// The message does not end with an SK payload.
    SkMissing,
    /// A key of the wrong length was given to a cipher.
    KeyLength,
}

impl core::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            CryptoError::KeShareLength => "key share has the wrong length for its group",
            CryptoError::KeShareInvalid => "key share is not a valid public value",
            CryptoError::SharedSecretZero => "shared secret is all zero",
            CryptoError::PrfPlusTooLong => "prf+ output longer than 255 blocks",
            CryptoError::SkTruncated => "encrypted payload truncated",
            CryptoError::SkIntegrity => "encrypted payload failed its integrity check",
            CryptoError::SkPadding => "encrypted payload has bad padding",
            CryptoError::SkMissing => "message has no encrypted payload at its end",
            CryptoError::KeyLength => "key of the wrong length",
        };
        f.write_str(s)
    }
}

impl std::error::Error for CryptoError {}

/// IKE encryption algorithms (transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_GCM_16, 128-bit key (RFC 5282).
    AesGcm16_128,
    /// ENCR_AES_GCM_16, 256-bit key.
    AesGcm16_256,
    /// ENCR_AES_CBC, 128-bit key (RFC 3602), with a separate integrity algorithm.
    AesCbc128,
    /// ENCR_AES_CBC, 256-bit key.
    AesCbc256,
}

impl Encr {
    pub const ALL: [Encr; 4] = [
        Encr::AesGcm16_128,
        Encr::AesGcm16_256,
        Encr::AesCbc128,
        Encr::AesCbc256,
    ];

    pub fn transform(self) -> Transform {
        let (id, bits) = match self {
            Encr::AesGcm16_128 => (TransformId::ENCR_AES_GCM_16, 128),
            Encr::AesGcm16_256 => (TransformId::ENCR_AES_GCM_16, 256),
            Encr::AesCbc128 => (TransformId::ENCR_AES_CBC, 128),
            Encr::AesCbc256 => (TransformId::ENCR_AES_CBC, 256),
        };
        let mut t = Transform::new(TransformType::ENCR, id);
        t.attributes
            .push(super::wire::sa::Attribute::key_length(bits));
        t
    }

    /// The algorithm a received ENCR transform names, if we implement it. Both
    /// ciphers require the KEY_LENGTH attribute (RFC 5282 8, RFC 3602).
    pub fn from_transform(t: &Transform) -> Option<Self> {
        if t.transform_type != TransformType::ENCR {
            return None;
        }
        match (t.id, t.key_length()?) {
            (TransformId::ENCR_AES_GCM_16, 128) => Some(Encr::AesGcm16_128),
            (TransformId::ENCR_AES_GCM_16, 256) => Some(Encr::AesGcm16_256),
            (TransformId::ENCR_AES_CBC, 128) => Some(Encr::AesCbc128),
            (TransformId::ENCR_AES_CBC, 256) => Some(Encr::AesCbc256),
            _ => None,
        }
    }

    /// AEAD ciphers carry their own integrity; the proposal has no INTEG transform
    /// or INTEG NONE (RFC 5282 8).
    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16_128 | Encr::AesGcm16_256)
    }

    /// Key material taken from prf+ for SK_e: the key, plus the 4-byte salt for
    /// GCM (RFC 5282 7.1).
    pub fn keymat_len(self) -> usize {
        match self {
            Encr::AesGcm16_128 => 16 + 4,
            Encr::AesGcm16_256 => 32 + 4,
            Encr::AesCbc128 => 16,
            Encr::AesCbc256 => 32,
        }
    }

    /// Bytes of IV sent in the SK payload: 8 for GCM (RFC 5282 3.1), one block
    /// for CBC.
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// Name in strongSwan's proposal syntax.
    pub fn name(self) -> &'static str {
        match self {
            Encr::AesGcm16_128 => "aes128gcm16",
            Encr::AesGcm16_256 => "aes256gcm16",
            Encr::AesCbc128 => "aes128",
            Encr::AesCbc256 => "aes256",
        }
    }
}

/// IKE integrity algorithms (transform type 3), HMAC-SHA2 truncated (RFC 4868).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    HmacSha2_256_128,
    HmacSha2_384_192,
    HmacSha2_512_256,
}

impl Integ {
    pub const ALL: [Integ; 3] = [
        Integ::HmacSha2_256_128,
        Integ::HmacSha2_384_192,
        Integ::HmacSha2_512_256,
    ];

    pub fn id(self) -> TransformId {
        match self {
            Integ::HmacSha2_256_128 => TransformId::INTEG_HMAC_SHA2_256_128,
            Integ::HmacSha2_384_192 => TransformId::INTEG_HMAC_SHA2_384_192,
            Integ::HmacSha2_512_256 => TransformId::INTEG_HMAC_SHA2_512_256,
        }
    }

    pub fn from_id(id: TransformId) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.id() == id)
    }

    pub fn transform(self) -> Transform {
        Transform::new(TransformType::INTEG, self.id())
    }

    /// Key length = the hash's output length (RFC 4868 2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha2_256_128 => 32,
            Integ::HmacSha2_384_192 => 48,
            Integ::HmacSha2_512_256 => 64,
        }
    }

    /// ICV length = half the output (RFC 4868 2.3).
    pub fn icv_len(self) -> usize {
        self.key_len() / 2
    }

    /// The same algorithm as the dataplane names it for ESP.
    pub fn from_esp(i: shared::sa::EspInteg) -> Self {
        match i {
            shared::sa::EspInteg::HmacSha256_128 => Integ::HmacSha2_256_128,
            shared::sa::EspInteg::HmacSha384_192 => Integ::HmacSha2_384_192,
            shared::sa::EspInteg::HmacSha512_256 => Integ::HmacSha2_512_256,
        }
    }

    /// The dataplane's name for the algorithm (ESP with AES-CBC).
    pub fn esp(self) -> shared::sa::EspInteg {
        match self {
            Integ::HmacSha2_256_128 => shared::sa::EspInteg::HmacSha256_128,
            Integ::HmacSha2_384_192 => shared::sa::EspInteg::HmacSha384_192,
            Integ::HmacSha2_512_256 => shared::sa::EspInteg::HmacSha512_256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Integ::HmacSha2_256_128 => "sha256",
            Integ::HmacSha2_384_192 => "sha384",
            Integ::HmacSha2_512_256 => "sha512",
        }
    }
}

/// Pseudo-random functions (transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha2_256,
    HmacSha2_384,
    HmacSha2_512,
}

impl Prf {
    pub const ALL: [Prf; 3] = [Prf::HmacSha2_256, Prf::HmacSha2_384, Prf::HmacSha2_512];

    pub fn id(self) -> TransformId {
        match self {
            Prf::HmacSha2_256 => TransformId::PRF_HMAC_SHA2_256,
            Prf::HmacSha2_384 => TransformId::PRF_HMAC_SHA2_384,
            Prf::HmacSha2_512 => TransformId::PRF_HMAC_SHA2_512,
        }
    }

    pub fn from_id(id: TransformId) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.id() == id)
    }

    pub fn transform(self) -> Transform {
        Transform::new(TransformType::PRF, self.id())
    }

    /// Output length; also the preferred key length, used for SK_d, SK_pi and
    /// SK_pr (RFC 7296 2.13, RFC 4868 2.1.2).
    pub fn out_len(self) -> usize {
        match self {
            Prf::HmacSha2_256 => 32,
            Prf::HmacSha2_384 => 48,
            Prf::HmacSha2_512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Prf::HmacSha2_256 => "prfsha256",
            Prf::HmacSha2_384 => "prfsha384",
            Prf::HmacSha2_512 => "prfsha512",
        }
    }
}

/// Key exchange groups (transform type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 256-bit random ECP group (RFC 5903), group 19.
    Ecp256,
    /// 384-bit random ECP group, group 20.
    Ecp384,
    /// Curve25519 (RFC 8031), group 31.
    Curve25519,
}

impl DhGroup {
    pub const ALL: [DhGroup; 3] = [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384];

    pub fn id(self) -> TransformId {
        match self {
            DhGroup::Ecp256 => TransformId::DH_ECP_256,
            DhGroup::Ecp384 => TransformId::DH_ECP_384,
            DhGroup::Curve25519 => TransformId::DH_CURVE25519,
        }
    }

    /// The group number as carried in the KE payload and INVALID_KE_PAYLOAD.
    pub fn number(self) -> u16 {
        self.id().0
    }

    pub fn from_id(id: TransformId) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.id() == id)
    }

    pub fn transform(self) -> Transform {
        Transform::new(TransformType::DH, self.id())
    }

    /// Length of the public value in the KE payload: x || y for ECP (RFC 5903 7),
    /// the u-coordinate for Curve25519 (RFC 8031 2).
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Curve25519 => "x25519",
        }
    }
}

/// ESP encryption for child SAs: the transforms the dataplane implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspEncr {
    /// ENCR_AES_GCM_16, 128-bit key (RFC 4106).
    AesGcm16_128,
    /// ENCR_AES_GCM_16, 256-bit key.
    AesGcm16_256,
    /// ENCR_CHACHA20_POLY1305 (RFC 7634).
    ChaCha20Poly1305,
    /// ENCR_AES_CBC, 128-bit key (RFC 3602), with an integrity transform.
    AesCbc128,
    /// ENCR_AES_CBC, 256-bit key.
    AesCbc256,
}

impl EspEncr {
    pub const ALL: [EspEncr; 5] = [
        EspEncr::AesGcm16_128,
        EspEncr::AesGcm16_256,
        EspEncr::ChaCha20Poly1305,
        EspEncr::AesCbc128,
        EspEncr::AesCbc256,
    ];

    pub fn transform(self) -> Transform {
        match self {
            EspEncr::AesGcm16_128 => Encr::AesGcm16_128.transform(),
            EspEncr::AesGcm16_256 => Encr::AesGcm16_256.transform(),
            // RFC 7634 3: one key size, so no Key Length attribute.
            EspEncr::ChaCha20Poly1305 => {
                Transform::new(TransformType::ENCR, TransformId::ENCR_CHACHA20_POLY1305)
            }
            EspEncr::AesCbc128 => Encr::AesCbc128.transform(),
            EspEncr::AesCbc256 => Encr::AesCbc256.transform(),
        }
    }

    /// The transform a received ENCR transform names, if we implement it. AES requires
    /// the Key Length attribute (RFC 3602, RFC 4106 via RFC 5282 8); ChaCha20-Poly1305
    /// must come without one (RFC 7634 3).
    pub fn from_transform(t: &Transform) -> Option<Self> {
        if t.transform_type == TransformType::ENCR && t.id == TransformId::ENCR_CHACHA20_POLY1305 {
            return t.attributes.is_empty().then_some(EspEncr::ChaCha20Poly1305);
        }
        match Encr::from_transform(t)? {
            Encr::AesGcm16_128 => Some(EspEncr::AesGcm16_128),
            Encr::AesGcm16_256 => Some(EspEncr::AesGcm16_256),
            Encr::AesCbc128 => Some(EspEncr::AesCbc128),
            Encr::AesCbc256 => Some(EspEncr::AesCbc256),
        }
    }

    /// AEAD transforms carry their own integrity: the proposal has no INTEG transform
    /// or INTEG NONE (RFC 7296 3.3, RFC 5282 8, RFC 7634 2).
    pub fn is_aead(self) -> bool {
        !matches!(self, EspEncr::AesCbc128 | EspEncr::AesCbc256)
    }

    /// The dataplane's transform for this cipher with `integ` (which CBC needs and the
    /// AEAD transforms refuse); None for a combination no proposal may carry.
    pub fn cipher(self, integ: Option<Integ>) -> Option<shared::sa::EspCipher> {
        use shared::sa::EspCipher as C;
        Some(match (self, integ.map(Integ::esp)) {
            (EspEncr::AesGcm16_128, None) => C::AesGcm16_128,
            (EspEncr::AesGcm16_256, None) => C::AesGcm16_256,
            (EspEncr::ChaCha20Poly1305, None) => C::ChaCha20Poly1305,
            (EspEncr::AesCbc128, Some(i)) => C::AesCbc128(i),
            (EspEncr::AesCbc256, Some(i)) => C::AesCbc256(i),
            _ => return None,
        })
    }

    /// Name in strongSwan's proposal syntax (CBC: the cipher alone, its integrity
    /// algorithm follows as its own token, e.g. `aes128-sha256`).
    pub fn name(self) -> &'static str {
        match self {
            EspEncr::AesGcm16_128 => "aes128gcm16",
            EspEncr::AesGcm16_256 => "aes256gcm16",
            EspEncr::ChaCha20Poly1305 => "chacha20poly1305",
            EspEncr::AesCbc128 => "aes128",
            EspEncr::AesCbc256 => "aes256",
        }
    }
}

/// A negotiated IKE SA suite: one algorithm of each type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    pub encr: Encr,
    /// `None` exactly when `encr` is an AEAD.
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub dh: DhGroup,
}

/// A negotiated child SA suite: the dataplane's transform (ENCR, and INTEG for CBC),
/// ESN, and the PFS group when the exchange used one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspSuite {
    pub cipher: shared::sa::EspCipher,
    pub esn: bool,
    pub dh: Option<DhGroup>,
}

impl EspSuite {
    /// The ENCR transform of the suite.
    pub fn encr(&self) -> EspEncr {
        use shared::sa::EspCipher as C;
        match self.cipher {
            C::AesGcm16_128 => EspEncr::AesGcm16_128,
            C::AesGcm16_256 => EspEncr::AesGcm16_256,
            C::ChaCha20Poly1305 => EspEncr::ChaCha20Poly1305,
            C::AesCbc128(_) => EspEncr::AesCbc128,
            C::AesCbc256(_) => EspEncr::AesCbc256,
        }
    }

    /// The INTEG transform: set exactly for CBC.
    pub fn integ(&self) -> Option<Integ> {
        self.cipher.integ().map(Integ::from_esp)
    }

    /// KEYMAT bytes per direction: key || salt for AEAD (RFC 4106 8.1, RFC 7634 2),
    /// encryption key || integrity key for CBC (RFC 7296 2.17).
    pub fn keymat_len(&self) -> usize {
        self.cipher.keymat_len()
    }
}

/// Compares two byte strings without an early exit, so the time taken does not tell
/// where a forged MAC first differs.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
