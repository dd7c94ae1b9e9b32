//! The Encrypted payload (RFC 7296 3.14): AES-GCM with its 8-octet explicit IV and
//! 16-octet tag (RFC 5282), or AES-CBC with an HMAC-SHA2 ICV over the whole message.

use super::random::Random;
use super::{CryptoError, Encr, Integ};
use crate::ike::wire::header::{self, HeaderRepr, HEADER_LEN};
use crate::ike::wire::{PayloadIter, PayloadType};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use ring::aead;

const GENERIC_HEADER_LEN: usize = 4;
const GCM_TAG: usize = 16;
const GCM_SALT: usize = 4;
const AES_BLOCK: usize = 16;

/// An expanded AES key for CBC (RFC 3602). The key schedules zeroize on drop.
enum Aes {
    Aes128(Box<aes::Aes128>),
    Aes256(Box<aes::Aes256>),
}

impl Aes {
    fn new(key: &[u8]) -> Result<Aes, CryptoError> {
        match key.len() {
            16 => aes::Aes128::new_from_slice(key).map(|k| Aes::Aes128(Box::new(k))),
            32 => aes::Aes256::new_from_slice(key).map(|k| Aes::Aes256(Box::new(k))),
            _ => return Err(CryptoError::KeyLength),
        }
        .map_err(|_| CryptoError::KeyLength)
    }

    /// Encrypts `buf` in place; its length must be a multiple of the block size.
    fn encrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        let len = buf.len();
        let r = match self {
            Aes::Aes128(k) => cbc::Encryptor::inner_iv_slice_init((**k).clone(), iv)
                .map_err(|_| CryptoError::KeyLength)?
                .encrypt_padded_mut::<NoPadding>(buf, len)
                .map(|_| ()),
            Aes::Aes256(k) => cbc::Encryptor::inner_iv_slice_init((**k).clone(), iv)
                .map_err(|_| CryptoError::KeyLength)?
                .encrypt_padded_mut::<NoPadding>(buf, len)
                .map(|_| ()),
        };
        r.map_err(|_| CryptoError::SkTruncated)
    }

    /// Decrypts `buf` in place; its length must be a multiple of the block size.
    fn decrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        let r = match self {
            Aes::Aes128(k) => cbc::Decryptor::inner_iv_slice_init((**k).clone(), iv)
                .map_err(|_| CryptoError::KeyLength)?
                .decrypt_padded_mut::<NoPadding>(buf)
                .map(|_| ()),
            Aes::Aes256(k) => cbc::Decryptor::inner_iv_slice_init((**k).clone(), iv)
                .map_err(|_| CryptoError::KeyLength)?
                .decrypt_padded_mut::<NoPadding>(buf)
                .map(|_| ()),
        };
        r.map_err(|_| CryptoError::SkTruncated)
    }
}

/// AES-CBC encryption of whole blocks, the primitive the SK payload uses; public so
/// tests can check it against RFC 3602's vectors.
pub fn aes_cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    Aes::new(key)?.encrypt(iv, buf)
}

/// The inverse of [`aes_cbc_encrypt`].
pub fn aes_cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    Aes::new(key)?.decrypt(iv, buf)
}

/// An expanded SK key, made for one message on the stack (see [`SkKeys`]): never
/// stored, so the size of its larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Gcm {
        key: aead::LessSafeKey,
        salt: [u8; GCM_SALT],
    },
    Cbc {
        aes: Aes,
        integ: Integ,
        auth: ring::hmac::Key,
    },
}

/// One direction's SK keys: SK_e (with the GCM salt) and SK_a as negotiated, expanded
/// into a cipher context only while a message is sealed or opened. An IKE SA sends and
/// receives a message now and then (a liveness check every few tens of seconds), so
/// an expanded context kept per SA (some 550 bytes per AES-GCM key, twice per SA)
/// would cost far more memory than expanding costs time (well under a microsecond,
/// beside the message's own handling).
pub struct SkKeys {
    encr: Encr,
    integ: Option<Integ>,
    /// SK_e, then SK_a (empty for GCM); zeroized on drop.
    secret: Box<[u8]>,
}

impl Drop for SkKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.secret);
    }
}

impl core::fmt::Debug for SkKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SkKeys({:?}, ..)", self.encr)
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
    /// `sk_e` is SK_ei or SK_er (with the 4-octet salt at its end for GCM, RFC 5282
    /// 7.1), `sk_a` SK_ai or SK_ar (empty for GCM, which takes no integrity
    /// algorithm).
    pub fn new(
        encr: Encr,
        integ: Option<Integ>,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<SkKeys, CryptoError> {
        if sk_e.len() != encr.keymat_len() {
            return Err(CryptoError::KeyLength);
        }
        match (encr, integ) {
            (Encr::AesGcm16_128 | Encr::AesGcm16_256, None) if sk_a.is_empty() => {}
            (Encr::AesCbc128 | Encr::AesCbc256, Some(i)) if sk_a.len() == i.key_len() => {}
            _ => return Err(CryptoError::KeyLength),
        }
        let mut secret = Vec::with_capacity(sk_e.len() + sk_a.len());
        secret.extend_from_slice(sk_e);
        secret.extend_from_slice(sk_a);
        let keys = SkKeys {
            encr,
            integ,
            secret: secret.into_boxed_slice(),
        };
        // Expanded once here so that a key the cipher refuses fails now, not at the
        // first message.
        keys.expand()?;
        Ok(keys)
    }

    /// The cipher context of these keys, for one message.
    fn expand(&self) -> Result<Cipher, CryptoError> {
        let (sk_e, sk_a) = self.secret.split_at(self.encr.keymat_len());
        Ok(match self.integ {
            None => {
                let (k, s) = sk_e.split_at(sk_e.len() - GCM_SALT);
                let alg = if self.encr == Encr::AesGcm16_128 {
                    &aead::AES_128_GCM
                } else {
                    &aead::AES_256_GCM
                };
                let key = aead::UnboundKey::new(alg, k).map_err(|_| CryptoError::KeyLength)?;
                let mut salt = [0u8; GCM_SALT];
                salt.copy_from_slice(s);
                Cipher::Gcm {
                    key: aead::LessSafeKey::new(key),
                    salt,
                }
            }
            Some(i) => Cipher::Cbc {
                aes: Aes::new(sk_e)?,
                integ: i,
                auth: i.expand(sk_a),
            },
        })
    }

    fn icv_len(&self) -> usize {
        self.integ.map_or(GCM_TAG, |i| i.icv_len())
    }

    /// Padding for a plaintext of `len` bytes: none for GCM (RFC 5282 3), for CBC
    /// enough that plaintext, padding and the pad length octet fill whole blocks.
    fn pad_len(&self, len: usize) -> usize {
        match self.integ {
            None => 0,
            Some(_) => (AES_BLOCK - (len + 1) % AES_BLOCK) % AES_BLOCK,
        }
    }

    /// Bytes the SK payload adds to a plaintext of `plaintext_len` bytes: IV,
    /// padding, the pad length octet and the ICV (not its generic header).
    pub fn overhead(&self, plaintext_len: usize) -> usize {
        self.encr.iv_len() + self.pad_len(plaintext_len) + 1 + self.icv_len()
    }
}

fn gcm_nonce(salt: &[u8; GCM_SALT], iv: &[u8]) -> Result<aead::Nonce, CryptoError> {
    // RFC 5282 4: nonce = salt (4 octets) | IV (8 octets).
    let mut nonce = [0u8; aead::NONCE_LEN];
    nonce[..GCM_SALT].copy_from_slice(salt);
    nonce
        .get_mut(GCM_SALT..)
        .filter(|n| n.len() == iv.len())
        .ok_or(CryptoError::SkTruncated)?
        .copy_from_slice(iv);
    Ok(aead::Nonce::assume_unique_for_key(nonce))
}

/// Builds a whole datagram: the IKE header (its Next Payload set to SK and its
/// Length computed here), the SK payload's generic header (Next Payload =
/// `first_inner`), a random IV, the encrypted `plaintext` with its padding and pad
/// length, and the ICV (RFC 7296 3.14).
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
    buf[HEADER_LEN + 2..HEADER_LEN + GENERIC_HEADER_LEN].copy_from_slice(&sk16.to_be_bytes());
    let iv_at = HEADER_LEN + GENERIC_HEADER_LEN;
    let ct_at = iv_at + iv_len;
    let icv_at = ct_at + ct_len;
    rng.fill(&mut buf[iv_at..ct_at]);
    buf[ct_at..ct_at + plaintext.len()].copy_from_slice(plaintext);
    // The padding octets stay zero; the pad length octet ends the plaintext.
    buf[icv_at - 1] = pad as u8;
    let (head, rest) = buf.split_at_mut(ct_at);
    let (ct, icv) = rest.split_at_mut(ct_len);
    match &keys.expand()? {
        Cipher::Gcm { key, salt } => {
            // RFC 5282 5.1: the AAD runs from the IKE header through the SK
            // payload's generic header, i.e. up to the IV.
            let nonce = gcm_nonce(salt, &head[iv_at..])?;
            let tag = key
                .seal_in_place_separate_tag(nonce, aead::Aad::from(&head[..iv_at]), ct)
                .map_err(|_| CryptoError::SkTruncated)?;
            icv.copy_from_slice(tag.as_ref());
        }
        Cipher::Cbc { aes, integ, auth } => {
            aes.encrypt(&head[iv_at..], ct)?;
            // RFC 7296 3.14: the ICV covers the message from the IKE header through
            // the ciphertext (header, SK generic header, IV, ciphertext).
            let tag = Integ::tag(auth, &[head, ct]);
            icv.copy_from_slice(&tag.as_ref()[..integ.icv_len()]);
        }
    }
    Ok(buf)
}

/// Verifies and decrypts a datagram whose last payload is SK. Unencrypted payloads
/// before SK are allowed by the format and covered by the integrity check. Bytes
/// after the header's Length are ignored (the wire codec's length rule).
pub fn open_message(keys: &SkKeys, datagram: &[u8]) -> Result<Opened, CryptoError> {
    let p = header::Packet::new_checked(datagram).map_err(|_| CryptoError::SkTruncated)?;
    let h = HeaderRepr::parse(&p).map_err(|_| CryptoError::SkTruncated)?;
    let msg = p.message();
    let mut sk = None;
    for raw in PayloadIter::new(h.next_payload, p.payload()) {
        let raw = raw.map_err(|_| CryptoError::SkMissing)?;
        if raw.ty == PayloadType::SK {
            sk = Some((raw.next, raw.body.len()));
        }
    }
    let Some((first_inner, sk_body_len)) = sk else {
        return Err(CryptoError::SkMissing);
    };
    // The walker ends the chain at SK and rejects bytes after it, so the SK body
    // is the tail of the message.
    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    if sk_body_len < iv_len + 1 + icv_len {
        return Err(CryptoError::SkTruncated);
    }
    let iv_at = msg
        .len()
        .checked_sub(sk_body_len)
        .ok_or(CryptoError::SkTruncated)?;
    let (head, body) = msg.split_at(iv_at);
    let (iv, rest) = body.split_at(iv_len);
    let (ct, icv) = rest.split_at(rest.len() - icv_len);
    let mut pt = match &keys.expand()? {
        Cipher::Gcm { key, salt } => {
            let mut pt = Vec::with_capacity(ct.len() + icv.len());
            pt.extend_from_slice(ct);
            pt.extend_from_slice(icv);
            let n = key
                .open_in_place(gcm_nonce(salt, iv)?, aead::Aad::from(head), &mut pt)
                .map_err(|_| CryptoError::SkIntegrity)?
                .len();
            pt.truncate(n);
            pt
        }
        Cipher::Cbc { aes, integ, auth } => {
            let tag = Integ::tag(auth, &[head, iv, ct]);
            if !super::ct_eq(&tag.as_ref()[..integ.icv_len()], icv) {
                return Err(CryptoError::SkIntegrity);
            }
            if ct.len() % AES_BLOCK != 0 {
                return Err(CryptoError::SkTruncated);
            }
            let mut pt = ct.to_vec();
            aes.decrypt(iv, &mut pt)?;
            pt
        }
    };
    // RFC 7296 3.14: the last octet counts the padding octets before it; their
    // values are not checked.
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
