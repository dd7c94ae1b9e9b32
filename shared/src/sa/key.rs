//! ESP transforms and their per-SA expanded keys: AES-GCM-16 (RFC 4106),
//! ChaCha20-Poly1305 (RFC 7634), and AES-CBC (RFC 3602) with HMAC-SHA2 truncated to half
//! the hash (RFC 4868).
//!
//! A key is expanded once per SA (key setup costs about as much as sealing a small
//! packet); the per-packet operations here take `&self` and allocate nothing.

use aes::cipher::{BlockEncrypt, KeyInit};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hmac};
use std::fmt;
use subtle::ConstantTimeEq;

/// RFC 4106 3.1, RFC 7634 2: the salt is the last four octets of the keying material.
pub const SALT_LEN: usize = 4;
/// RFC 4106 3.1, RFC 7634 2: the explicit IV of the AEAD transforms.
pub const IV_LEN: usize = 8;
/// The AEAD transforms' ICV (the 16-octet tag of AES-GCM-16 and Poly1305).
pub const ICV_LEN: usize = 16;
/// RFC 3602 3: the AES-CBC IV, one cipher block, carried in every packet.
pub const CBC_IV_LEN: usize = 16;
/// RFC 3602 2.4: the AES block, to which CBC plaintext is padded.
pub const AES_BLOCK: usize = 16;
/// The longest ICV of any transform (HMAC-SHA-512-256, RFC 4868 2.3).
pub const MAX_ICV_LEN: usize = 32;
/// The longest IV of any transform.
pub const MAX_IV_LEN: usize = CBC_IV_LEN;

/// The integrity algorithms that go with AES-CBC: HMAC-SHA2 truncated to half the hash
/// (RFC 4868 2.3), keyed with a key as long as the hash (RFC 4868 2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspInteg {
    /// AUTH_HMAC_SHA2_256_128.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha512_256,
}

impl EspInteg {
    pub const ALL: [EspInteg; 3] = [
        EspInteg::HmacSha256_128,
        EspInteg::HmacSha384_192,
        EspInteg::HmacSha512_256,
    ];

    /// RFC 4868 2.1.1: the key is as long as the hash output.
    pub const fn key_len(self) -> usize {
        match self {
            EspInteg::HmacSha256_128 => 32,
            EspInteg::HmacSha384_192 => 48,
            EspInteg::HmacSha512_256 => 64,
        }
    }

    /// RFC 4868 2.3: the ICV is the first half of the HMAC output.
    pub const fn icv_len(self) -> usize {
        self.key_len() / 2
    }

    /// The name in strongSwan's proposal syntax.
    pub const fn name(self) -> &'static str {
        match self {
            EspInteg::HmacSha256_128 => "sha256",
            EspInteg::HmacSha384_192 => "sha384",
            EspInteg::HmacSha512_256 => "sha512",
        }
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            EspInteg::HmacSha256_128 => hmac::HMAC_SHA256,
            EspInteg::HmacSha384_192 => hmac::HMAC_SHA384,
            EspInteg::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

/// The ESP transforms the fastpath implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// ENCR_AES_GCM_16 with a 128-bit key (RFC 4106).
    AesGcm16_128,
    /// ENCR_AES_GCM_16 with a 256-bit key.
    AesGcm16_256,
    /// ENCR_CHACHA20_POLY1305 (RFC 7634).
    ChaCha20Poly1305,
    /// ENCR_AES_CBC with a 128-bit key (RFC 3602) and an HMAC-SHA2 ICV (RFC 4868).
    AesCbc128(EspInteg),
    /// ENCR_AES_CBC with a 256-bit key and an HMAC-SHA2 ICV.
    AesCbc256(EspInteg),
}

impl EspCipher {
    /// Every transform, in the order a gateway prefers them: AEAD first.
    pub const ALL: [EspCipher; 9] = [
        EspCipher::AesGcm16_128,
        EspCipher::AesGcm16_256,
        EspCipher::ChaCha20Poly1305,
        EspCipher::AesCbc128(EspInteg::HmacSha256_128),
        EspCipher::AesCbc128(EspInteg::HmacSha384_192),
        EspCipher::AesCbc128(EspInteg::HmacSha512_256),
        EspCipher::AesCbc256(EspInteg::HmacSha256_128),
        EspCipher::AesCbc256(EspInteg::HmacSha384_192),
        EspCipher::AesCbc256(EspInteg::HmacSha512_256),
    ];

    /// Encryption key length in bytes, without salt or integrity key.
    pub const fn key_len(self) -> usize {
        match self {
            EspCipher::AesGcm16_128 | EspCipher::AesCbc128(_) => 16,
            EspCipher::AesGcm16_256 | EspCipher::ChaCha20Poly1305 | EspCipher::AesCbc256(_) => 32,
        }
    }

    /// The AEAD transforms take a 4-byte salt after the key; CBC has none.
    pub const fn salt_len(self) -> usize {
        if self.is_aead() {
            SALT_LEN
        } else {
            0
        }
    }

    /// The integrity algorithm of a CBC transform (AEAD transforms carry their own).
    pub const fn integ(self) -> Option<EspInteg> {
        match self {
            EspCipher::AesCbc128(i) | EspCipher::AesCbc256(i) => Some(i),
            _ => None,
        }
    }

    /// Integrity key length in bytes (0 for AEAD).
    pub const fn integ_key_len(self) -> usize {
        match self.integ() {
            Some(i) => i.key_len(),
            None => 0,
        }
    }

    /// Keying material per direction: encryption key || salt (AEAD, RFC 4106 8.1 and
    /// RFC 7634 2), or encryption key || integrity key (CBC, RFC 7296 2.17 order).
    pub const fn keymat_len(self) -> usize {
        self.key_len() + self.salt_len() + self.integ_key_len()
    }

    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            EspCipher::AesGcm16_128 | EspCipher::AesGcm16_256 | EspCipher::ChaCha20Poly1305
        )
    }

    /// Bytes of explicit IV after the ESP header.
    pub const fn iv_len(self) -> usize {
        if self.is_aead() {
            IV_LEN
        } else {
            CBC_IV_LEN
        }
    }

    /// Bytes of ICV at the end of the packet.
    pub const fn icv_len(self) -> usize {
        match self.integ() {
            Some(i) => i.icv_len(),
            None => ICV_LEN,
        }
    }

    /// What payload + padding + pad length + next header is aligned to: 4 octets for the
    /// AEAD transforms (RFC 4303 2.4; RFC 4106 3 and RFC 7634 2 need no block
    /// alignment), the AES block for CBC (RFC 3602 2.4).
    pub const fn align(self) -> usize {
        if self.is_aead() {
            4
        } else {
            AES_BLOCK
        }
    }

    /// The proposal name strongSwan and our configuration use.
    pub const fn name(self) -> &'static str {
        use EspInteg::*;
        match self {
            EspCipher::AesGcm16_128 => "aes128gcm16",
            EspCipher::AesGcm16_256 => "aes256gcm16",
            EspCipher::ChaCha20Poly1305 => "chacha20poly1305",
            EspCipher::AesCbc128(HmacSha256_128) => "aes128-sha256",
            EspCipher::AesCbc128(HmacSha384_192) => "aes128-sha384",
            EspCipher::AesCbc128(HmacSha512_256) => "aes128-sha512",
            EspCipher::AesCbc256(HmacSha256_128) => "aes256-sha256",
            EspCipher::AesCbc256(HmacSha384_192) => "aes256-sha384",
            EspCipher::AesCbc256(HmacSha512_256) => "aes256-sha512",
        }
    }

    /// Parses a transform name: one of [`EspCipher::ALL`]'s names, or the aliases
    /// `aes128gcm`, `aes256gcm` and `aesNNN-sha2_NNN`.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = match name {
            "aes128gcm" => "aes128gcm16",
            "aes256gcm" => "aes256gcm16",
            other => other,
        };
        if let Some(c) = EspCipher::ALL.into_iter().find(|c| c.name() == name) {
            return Some(c);
        }
        let (enc, integ) = name.split_once('-')?;
        let integ = match integ {
            "sha2_256" => EspInteg::HmacSha256_128,
            "sha2_384" => EspInteg::HmacSha384_192,
            "sha2_512" => EspInteg::HmacSha512_256,
            _ => return None,
        };
        match enc {
            "aes128" => Some(EspCipher::AesCbc128(integ)),
            "aes256" => Some(EspCipher::AesCbc256(integ)),
            _ => None,
        }
    }

    /// Every name [`EspCipher::from_name`] takes without an alias, for error messages.
    pub fn names() -> String {
        EspCipher::ALL.map(|c| c.name()).join(", ")
    }

    /// What the keying material consists of, for messages.
    pub fn keymat_layout(self) -> String {
        match self.integ() {
            None => format!("{}-byte key followed by a 4-byte salt", self.key_len()),
            Some(i) => format!(
                "{}-byte AES key followed by a {}-byte HMAC-{} key",
                self.key_len(),
                i.key_len(),
                i.name().to_ascii_uppercase()
            ),
        }
    }

    fn aead_algorithm(self) -> Option<&'static aead::Algorithm> {
        match self {
            EspCipher::AesGcm16_128 => Some(&aead::AES_128_GCM),
            EspCipher::AesGcm16_256 => Some(&aead::AES_256_GCM),
            EspCipher::ChaCha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            _ => None,
        }
    }
}

impl fmt::Display for EspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why keying material was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The keying material does not have the cipher's length.
    WrongLength {
        cipher: EspCipher,
        expected: usize,
        got: usize,
    },
    /// The system random source failed while drawing the CBC IV key.
    Random,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::WrongLength {
                cipher,
                expected,
                got,
            } => write!(
                f,
                "keying material for {cipher} is {got} bytes, expected {expected} ({})",
                cipher.keymat_layout()
            ),
            KeyError::Random => f.write_str("the system random source failed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// An expanded AEAD key with its salt (AES-GCM-16, ChaCha20-Poly1305).
pub struct AeadKey {
    aead: aead::LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl AeadKey {
    pub fn aead(&self) -> &aead::LessSafeKey {
        &self.aead
    }

    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// RFC 4106 4, RFC 7634 2: nonce = salt || explicit IV.
    #[inline]
    pub fn nonce(&self, iv: &[u8; IV_LEN]) -> aead::Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        aead::Nonce::assume_unique_for_key(n)
    }
}

/// An expanded AES key schedule (both directions; the key schedules zeroize on drop).
/// The variants differ in size, but the whole `CbcKey` is boxed once per SA.
#[allow(clippy::large_enum_variant)]
enum CbcAes {
    Aes128(aes::Aes128),
    Aes256(aes::Aes256),
}

/// Why a CBC operation refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotBlockAligned;

/// An expanded AES-CBC key, its HMAC key, and the per-SA key that makes IVs
/// unpredictable (RFC 3602 2.3).
pub struct CbcKey {
    aes: CbcAes,
    integ: EspInteg,
    hmac: hmac::Key,
    /// Drawn from the system random source when the SA's key is expanded. The IV of the
    /// packet with sequence number `s` is AES(iv_key, 0^64 || s): unique per SA because
    /// AES is a permutation and sequence numbers never repeat, and unpredictable to
    /// anyone without `iv_key` — without a syscall or a random draw per packet.
    iv_key: aes::Aes128Enc,
}

impl CbcKey {
    pub fn integ(&self) -> EspInteg {
        self.integ
    }

    /// RFC 3602 2.3: the IV for the packet with sequence number `seq`.
    #[inline]
    pub fn iv(&self, seq: u64) -> [u8; CBC_IV_LEN] {
        let mut b = aes::Block::default();
        b[8..].copy_from_slice(&seq.to_be_bytes());
        self.iv_key.encrypt_block(&mut b);
        b.into()
    }

    /// AES-CBC encryption of `text` in place; its length must be a whole number of blocks.
    #[inline]
    pub fn encrypt(&self, iv: &[u8; CBC_IV_LEN], text: &mut [u8]) -> Result<(), NotBlockAligned> {
        let len = text.len();
        if !len.is_multiple_of(AES_BLOCK) {
            return Err(NotBlockAligned);
        }
        let iv = iv.into();
        let r = match &self.aes {
            CbcAes::Aes128(k) => cbc::Encryptor::<&aes::Aes128>::inner_iv_init(k, iv)
                .encrypt_padded_mut::<NoPadding>(text, len)
                .map(|_| ()),
            CbcAes::Aes256(k) => cbc::Encryptor::<&aes::Aes256>::inner_iv_init(k, iv)
                .encrypt_padded_mut::<NoPadding>(text, len)
                .map(|_| ()),
        };
        r.map_err(|_| NotBlockAligned)
    }

    /// AES-CBC decryption of `text` in place; its length must be a whole number of blocks.
    #[inline]
    pub fn decrypt(&self, iv: &[u8; CBC_IV_LEN], text: &mut [u8]) -> Result<(), NotBlockAligned> {
        if !text.len().is_multiple_of(AES_BLOCK) {
            return Err(NotBlockAligned);
        }
        let iv = iv.into();
        let r = match &self.aes {
            CbcAes::Aes128(k) => cbc::Decryptor::<&aes::Aes128>::inner_iv_init(k, iv)
                .decrypt_padded_mut::<NoPadding>(text)
                .map(|_| ()),
            CbcAes::Aes256(k) => cbc::Decryptor::<&aes::Aes256>::inner_iv_init(k, iv)
                .decrypt_padded_mut::<NoPadding>(text)
                .map(|_| ()),
        };
        r.map_err(|_| NotBlockAligned)
    }

    /// The full HMAC over `data` followed by `tail` (RFC 4303 3.3.2.1: with ESN, `tail`
    /// is the high half of the sequence number, authenticated but not sent).
    #[inline]
    fn tag(&self, data: &[u8], tail: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(data);
        ctx.update(tail);
        ctx.sign()
    }

    /// Writes the truncated ICV (RFC 4868 2.3) of `data || tail` into `icv`, which must be
    /// [`EspInteg::icv_len`] long.
    #[inline]
    pub fn icv(&self, data: &[u8], tail: &[u8], icv: &mut [u8]) {
        let t = self.tag(data, tail);
        let n = icv.len().min(self.integ.icv_len());
        icv[..n].copy_from_slice(&t.as_ref()[..n]);
    }

    /// Whether `icv` is the truncated ICV of `data || tail`, compared in constant time.
    #[inline]
    pub fn verify(&self, data: &[u8], tail: &[u8], icv: &[u8]) -> bool {
        let t = self.tag(data, tail);
        let want = &t.as_ref()[..self.integ.icv_len()];
        icv.len() == want.len() && bool::from(want.ct_eq(icv))
    }
}

/// The expanded key of one transform. The CBC key (two AES schedules and an HMAC key,
/// about 1.9 KB) is boxed so AEAD SA records stay small; the AEAD key stays inline, one
/// pointer chase fewer per packet on the GCM path.
#[allow(clippy::large_enum_variant)]
pub enum SuiteKey {
    Aead(AeadKey),
    Cbc(Box<CbcKey>),
}

/// An SA's expanded ESP key.
pub struct EspKey {
    cipher: EspCipher,
    suite: SuiteKey,
}

impl EspKey {
    /// Expands `keymat`: key || salt for the AEAD transforms (as in `ip xfrm ... aead
    /// 'rfc4106(gcm(aes))'`), encryption key || integrity key for CBC. A CBC key also
    /// draws its IV key from the system random source.
    pub fn new(cipher: EspCipher, keymat: &[u8]) -> Result<Self, KeyError> {
        let wrong = KeyError::WrongLength {
            cipher,
            expected: cipher.keymat_len(),
            got: keymat.len(),
        };
        if keymat.len() != cipher.keymat_len() {
            return Err(wrong);
        }
        let (key, rest) = keymat.split_at(cipher.key_len());
        let suite = if let Some(alg) = cipher.aead_algorithm() {
            let unbound = aead::UnboundKey::new(alg, key).map_err(|_| wrong)?;
            let salt: [u8; SALT_LEN] = rest.try_into().map_err(|_| wrong)?;
            SuiteKey::Aead(AeadKey {
                aead: aead::LessSafeKey::new(unbound),
                salt,
            })
        } else {
            let integ = cipher.integ().ok_or(wrong)?;
            let aes = match cipher.key_len() {
                16 => CbcAes::Aes128(aes::Aes128::new_from_slice(key).map_err(|_| wrong)?),
                _ => CbcAes::Aes256(aes::Aes256::new_from_slice(key).map_err(|_| wrong)?),
            };
            let mut iv_key = [0u8; 16];
            SystemRandom::new()
                .fill(&mut iv_key)
                .map_err(|_| KeyError::Random)?;
            let iv_key = aes::Aes128Enc::new(&iv_key.into());
            SuiteKey::Cbc(Box::new(CbcKey {
                aes,
                integ,
                hmac: hmac::Key::new(integ.algorithm(), rest),
                iv_key,
            }))
        };
        Ok(EspKey { cipher, suite })
    }

    pub fn cipher(&self) -> EspCipher {
        self.cipher
    }

    #[inline]
    pub fn suite(&self) -> &SuiteKey {
        &self.suite
    }

    pub fn as_aead(&self) -> Option<&AeadKey> {
        match &self.suite {
            SuiteKey::Aead(k) => Some(k),
            SuiteKey::Cbc(_) => None,
        }
    }

    pub fn as_cbc(&self) -> Option<&CbcKey> {
        match &self.suite {
            SuiteKey::Cbc(k) => Some(k),
            SuiteKey::Aead(_) => None,
        }
    }
}

impl fmt::Debug for EspKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("EspKey")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_rfcs() {
        use EspInteg::*;
        let want = [
            (EspCipher::AesGcm16_128, 20, 8, 16, 4),
            (EspCipher::AesGcm16_256, 36, 8, 16, 4),
            (EspCipher::ChaCha20Poly1305, 36, 8, 16, 4),
            (EspCipher::AesCbc128(HmacSha256_128), 48, 16, 16, 16),
            (EspCipher::AesCbc128(HmacSha384_192), 64, 16, 24, 16),
            (EspCipher::AesCbc128(HmacSha512_256), 80, 16, 32, 16),
            (EspCipher::AesCbc256(HmacSha256_128), 64, 16, 16, 16),
            (EspCipher::AesCbc256(HmacSha384_192), 80, 16, 24, 16),
            (EspCipher::AesCbc256(HmacSha512_256), 96, 16, 32, 16),
        ];
        assert_eq!(want.len(), EspCipher::ALL.len());
        for (c, keymat, iv, icv, align) in want {
            assert_eq!(
                (c.keymat_len(), c.iv_len(), c.icv_len(), c.align()),
                (keymat, iv, icv, align),
                "{c}"
            );
            assert!(c.iv_len() <= MAX_IV_LEN && c.icv_len() <= MAX_ICV_LEN);
        }
    }

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for c in EspCipher::ALL {
            assert_eq!(EspCipher::from_name(c.name()), Some(c));
        }
        assert_eq!(
            EspCipher::from_name("aes128gcm"),
            Some(EspCipher::AesGcm16_128)
        );
        assert_eq!(
            EspCipher::from_name("aes256-sha2_384"),
            Some(EspCipher::AesCbc256(EspInteg::HmacSha384_192))
        );
        for bad in [
            "aes192-sha256",
            "aes128-sha1",
            "aes128",
            "chacha20",
            "",
            "-",
        ] {
            assert_eq!(EspCipher::from_name(bad), None, "{bad}");
        }
        assert!(EspCipher::names().contains("chacha20poly1305"));
    }

    #[test]
    fn wrong_lengths_name_the_layout() {
        let c = EspCipher::AesCbc256(EspInteg::HmacSha384_192);
        let e = EspKey::new(c, &[0; 32]).unwrap_err();
        assert_eq!(
            e,
            KeyError::WrongLength {
                cipher: c,
                expected: 80,
                got: 32
            }
        );
        let s = e.to_string();
        assert!(
            s.contains("aes256-sha384") && s.contains("48-byte HMAC-SHA384 key"),
            "{s}"
        );
        let e = EspKey::new(EspCipher::ChaCha20Poly1305, &[0; 32]).unwrap_err();
        assert!(e.to_string().contains("4-byte salt"));
        for c in EspCipher::ALL {
            assert!(EspKey::new(c, &vec![7; c.keymat_len()]).is_ok(), "{c}");
            assert!(EspKey::new(c, &vec![7; c.keymat_len() + 1]).is_err(), "{c}");
        }
    }

    #[test]
    fn cbc_ivs_are_distinct_per_sequence_number_and_per_sa() {
        let c = EspCipher::AesCbc128(EspInteg::HmacSha256_128);
        let a = EspKey::new(c, &[1; 48]).unwrap();
        let b = EspKey::new(c, &[1; 48]).unwrap();
        let (a, b) = (a.as_cbc().unwrap(), b.as_cbc().unwrap());
        let mut seen = std::collections::HashSet::new();
        for s in 0..1000u64 {
            assert!(seen.insert(a.iv(s)), "IV repeated at {s}");
            assert_eq!(a.iv(s), a.iv(s));
        }
        // Same keying material, a fresh IV key: the IVs of one SA say nothing of another's.
        assert_ne!(a.iv(1), b.iv(1));
    }

    #[test]
    fn cbc_refuses_partial_blocks_and_verify_needs_the_whole_icv() {
        let k = EspKey::new(EspCipher::AesCbc256(EspInteg::HmacSha512_256), &[3; 96]).unwrap();
        let k = k.as_cbc().unwrap();
        let iv = [9; 16];
        let mut text = [5u8; 33];
        assert_eq!(k.encrypt(&iv, &mut text), Err(NotBlockAligned));
        assert_eq!(k.decrypt(&iv, &mut text), Err(NotBlockAligned));
        let mut text = [5u8; 32];
        k.encrypt(&iv, &mut text).unwrap();
        assert_ne!(text, [5u8; 32]);
        k.decrypt(&iv, &mut text).unwrap();
        assert_eq!(text, [5u8; 32]);
        let mut icv = [0u8; 32];
        k.icv(b"abc", b"d", &mut icv);
        assert!(k.verify(b"abc", b"d", &icv));
        assert!(!k.verify(b"abc", b"", &icv));
        assert!(!k.verify(b"abc", b"d", &icv[..16]));
        let mut bad = icv;
        bad[31] ^= 1;
        assert!(!k.verify(b"abc", b"d", &bad));
    }
}
