//! The Encrypted payload (RFC 7296 3.14): AES-GCM with its 8-octet explicit IV and
//! 16-octet tag (RFC 5282), or AES-CBC with an HMAC-SHA2 ICV over the whole message.

use super::random::Random;
use super::{CryptoError, Encr, Integ};
use crate::ike::wire::header::{self, HeaderRepr, HEADER_LEN};
use crate::ike::wire::{PayloadIter, PayloadType};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::aead;

const GENERIC_HEADER_LEN: usize = 4;
const GCM_TAG: usize = 16;
const AES_BLOCK: usize = 16;

enum Cipher {
    Gcm {
        key: Box<aead::LessSafeKey>,
        salt: [u8; 4],
    },
    Cbc {
        key: Vec<u8>,
        integ: Integ,
        auth_key: Vec<u8>,
    },
}

/// One direction's SK keys, expanded once.
pub struct SkKeys {
    encr: Encr,
    cipher: Cipher,
}

impl core::fmt::Debug for SkKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SkKeys({:?}, ..)", self.encr)
    }
}

impl Drop for SkKeys {
    fn drop(&mut self) {
        if let Cipher::Cbc { key, auth_key, .. } = &mut self.cipher {
            key.iter_mut().for_each(|b| *b = 0);
            auth_key.iter_mut().for_each(|b| *b = 0);
        }
    }
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub header: HeaderRepr,
    pub first_inner: PayloadType,
    pub plaintext: Vec<u8>,
}

impl SkKeys {
    /// `sk_e` is SK_ei or SK_er (with the 4-octet salt at its end for GCM), `sk_a`
    /// SK_ai or SK_ar (empty for GCM).
    pub fn new(
        encr: Encr,
        integ: Option<Integ>,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<SkKeys, CryptoError> {
        if sk_e.len() != encr.keymat_len() {
            return Err(CryptoError::KeyLength);
        }
        let cipher = match (encr, integ) {
            (Encr::AesGcm16_128 | Encr::AesGcm16_256, None) => {
                let (k, s) = sk_e.split_at(sk_e.len() - 4);
                let alg = if encr == Encr::AesGcm16_128 {
                    &aead::AES_128_GCM
                } else {
                    &aead::AES_256_GCM
                };
                let key = aead::UnboundKey::new(alg, k).map_err(|_| CryptoError::KeyLength)?;
                let mut salt = [0u8; 4];
                salt.copy_from_slice(s);
                Cipher::Gcm {
                    key: Box::new(aead::LessSafeKey::new(key)),
                    salt,
                }
            }
            (Encr::AesCbc128 | Encr::AesCbc256, Some(i)) => {
                if sk_a.len() != i.key_len() {
                    return Err(CryptoError::KeyLength);
                }
                Cipher::Cbc {
                    key: sk_e.to_vec(),
                    integ: i,
                    auth_key: sk_a.to_vec(),
                }
            }
            _ => return Err(CryptoError::KeyLength),
        };
        Ok(SkKeys { encr, cipher })
    }

    fn icv_len(&self) -> usize {
        match &self.cipher {
            Cipher::Gcm { .. } => GCM_TAG,
            Cipher::Cbc { integ, .. } => integ.icv_len(),
        }
    }

    /// Padding for a plaintext of `len` bytes: none for GCM (RFC 5282 3), up to a
    /// whole block for CBC, counting the pad length octet.
    fn pad_len(&self, len: usize) -> usize {
        match self.cipher {
            Cipher::Gcm { .. } => 0,
            Cipher::Cbc { .. } => (AES_BLOCK - (len + 1) % AES_BLOCK) % AES_BLOCK,
        }
    }

    /// Bytes the SK payload adds to a plaintext of `plaintext_len` bytes (not counting
    /// its generic header).
    pub fn overhead(&self, plaintext_len: usize) -> usize {
        self.encr.iv_len() + self.pad_len(plaintext_len) + 1 + self.icv_len()
    }
}

fn cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    let len = buf.len();
    let r = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::KeyLength)?
            .encrypt_padded_mut::<NoPadding>(buf, len)
            .map(|_| ()),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::KeyLength)?
            .encrypt_padded_mut::<NoPadding>(buf, len)
            .map(|_| ()),
        _ => return Err(CryptoError::KeyLength),
    };
    r.map_err(|_| CryptoError::SkTruncated)
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    let r = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::KeyLength)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::KeyLength)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
        _ => return Err(CryptoError::KeyLength),
    };
    r.map_err(|_| CryptoError::SkTruncated)
}

/// AES-CBC and AES-GCM in the forms the tests check against published vectors.
pub fn aes_cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    if !buf.len().is_multiple_of(AES_BLOCK) {
        return Err(CryptoError::SkTruncated);
    }
    cbc_encrypt(key, iv, buf)
}

/// Builds a whole datagram: the IKE header (its Next Payload and Length set here),
/// the SK payload holding `plaintext` (inner payloads starting with `first_inner`).
pub fn seal_message(
    keys: &SkKeys,
    rng: &mut dyn Random,
    header: &HeaderRepr,
    first_inner: PayloadType,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let iv_len = keys.encr.iv_len();
    let pad = keys.pad_len(plaintext.len());
    let ct_len = plaintext.len() + pad + 1;
    let sk_len = GENERIC_HEADER_LEN + iv_len + ct_len + keys.icv_len();
    let total = HEADER_LEN + sk_len;
    let (Ok(total32), Ok(sk16)) = (u32::try_from(total), u16::try_from(sk_len)) else {
        return Err(CryptoError::SkTruncated);
    };
    let mut buf = vec![0u8; total];
    let h = HeaderRepr {
        next_payload: PayloadType::SK,
        length: total32,
        ..*header
    };
    h.emit(&mut header::Packet::new_unchecked(&mut buf[..HEADER_LEN]));
    buf[HEADER_LEN] = first_inner.0;
    buf[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&sk16.to_be_bytes());
    let iv_at = HEADER_LEN + GENERIC_HEADER_LEN;
    let ct_at = iv_at + iv_len;
    rng.fill(&mut buf[iv_at..ct_at]);
    buf[ct_at..ct_at + plaintext.len()].copy_from_slice(plaintext);
    // Padding octets are zero; the pad length octet follows them.
    buf[ct_at + ct_len - 1] = pad as u8;
    match &keys.cipher {
        Cipher::Gcm { key, salt } => {
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt);
            nonce[4..].copy_from_slice(&buf[iv_at..ct_at]);
            let (aad, rest) = buf.split_at_mut(iv_at);
            let ct = &mut rest[iv_len..iv_len + ct_len];
            let tag = key
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(&aad[..]),
                    ct,
                )
                .map_err(|_| CryptoError::SkTruncated)?;
            buf[ct_at + ct_len..].copy_from_slice(tag.as_ref());
        }
        Cipher::Cbc {
            key,
            integ,
            auth_key,
        } => {
            let (head, rest) = buf.split_at_mut(ct_at);
            cbc_encrypt(key, &head[iv_at..], &mut rest[..ct_len])?;
            let icv = integ.compute(auth_key, &[&buf[..ct_at + ct_len]]);
            buf[ct_at + ct_len..].copy_from_slice(&icv);
        }
    }
    Ok(buf)
}

/// Verifies and decrypts a datagram whose last payload is SK. Unencrypted payloads
/// before SK are allowed by the format and covered by the integrity check.
pub fn open_message(keys: &SkKeys, datagram: &[u8]) -> Result<Opened, CryptoError> {
    let p = header::Packet::new_checked(datagram).map_err(|_| CryptoError::SkTruncated)?;
    let h = HeaderRepr::parse(&p).map_err(|_| CryptoError::SkTruncated)?;
    let msg = p.message();
    let body = p.payload();
    let mut sk = None;
    let mut consumed = 0usize;
    for raw in PayloadIter::new(h.next_payload, body) {
        let raw = raw.map_err(|_| CryptoError::SkMissing)?;
        if raw.ty == PayloadType::SK {
            sk = Some((raw.next, raw.body.len()));
        }
        consumed += GENERIC_HEADER_LEN + raw.body.len();
    }
    let Some((first_inner, sk_body_len)) = sk else {
        return Err(CryptoError::SkMissing);
    };
    // SK is last: its body ends the message.
    let sk_at = HEADER_LEN + consumed - sk_body_len;
    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    if sk_body_len < iv_len + icv_len + 1 || sk_at + sk_body_len != msg.len() {
        return Err(CryptoError::SkTruncated);
    }
    let iv = &msg[sk_at..sk_at + iv_len];
    let ct_at = sk_at + iv_len;
    let ct_end = msg.len() - icv_len;
    let mut pt = msg[ct_at..ct_end].to_vec();
    match &keys.cipher {
        Cipher::Gcm { key, salt } => {
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt);
            nonce[4..].copy_from_slice(iv);
            pt.extend_from_slice(&msg[ct_end..]);
            let n = key
                .open_in_place(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(&msg[..sk_at]),
                    &mut pt,
                )
                .map_err(|_| CryptoError::SkIntegrity)?
                .len();
            pt.truncate(n);
        }
        Cipher::Cbc {
            key,
            integ,
            auth_key,
        } => {
            if !integ.verify(auth_key, &[&msg[..ct_end]], &msg[ct_end..]) {
                return Err(CryptoError::SkIntegrity);
            }
            if !pt.len().is_multiple_of(AES_BLOCK) {
                return Err(CryptoError::SkTruncated);
            }
            cbc_decrypt(key, iv, &mut pt)?;
        }
    }
    let pad = usize::from(*pt.last().ok_or(CryptoError::SkPadding)?);
    let keep = pt
        .len()
        .checked_sub(pad + 1)
        .ok_or(CryptoError::SkPadding)?;
    pt.truncate(keep);
    Ok(Opened {
        header: h,
        first_inner,
        plaintext: pt,
    })
}
