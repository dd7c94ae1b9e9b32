//! Security association records as the dataplane sees them.
//!
//! A record is immutable once published: keys are expanded once per SA (key setup costs
//! about as much as sealing a small packet), and everything a worker mutates per packet
//! (the outbound sequence number, the inbound replay window) lives in the owning worker's
//! private state, found by `slot` and validated by `install_id`.

use crate::path::PathId;
use crate::policy::TunnelId;
use ring::aead;
use std::fmt;

/// ESP transforms the fastpath implements (RFC 4106, 16-octet ICV).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// ENCR_AES_GCM_16 with a 128-bit key.
    AesGcm16_128,
    /// ENCR_AES_GCM_16 with a 256-bit key.
    AesGcm16_256,
}

impl EspCipher {
    /// Key length in bytes, without the 4-byte salt.
    pub const fn key_len(self) -> usize {
        match self {
            EspCipher::AesGcm16_128 => 16,
            EspCipher::AesGcm16_256 => 32,
        }
    }

    /// Keying material length: key followed by the RFC 4106 4-byte salt.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    /// The proposal name strongSwan and our configuration use.
    pub const fn name(self) -> &'static str {
        match self {
            EspCipher::AesGcm16_128 => "aes128gcm16",
            EspCipher::AesGcm16_256 => "aes256gcm16",
        }
    }

    /// Parses a proposal name (`aes128gcm16`, `aes256gcm16`; `aes128gcm` as an alias).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes128gcm16" | "aes128gcm" => Some(EspCipher::AesGcm16_128),
            "aes256gcm16" | "aes256gcm" => Some(EspCipher::AesGcm16_256),
            _ => None,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            EspCipher::AesGcm16_128 => &aead::AES_128_GCM,
            EspCipher::AesGcm16_256 => &aead::AES_256_GCM,
        }
    }
}

/// RFC 4106 3.1: the salt is the last four octets of the keying material.
pub const SALT_LEN: usize = 4;
/// RFC 4106: the explicit IV carried in every packet.
pub const IV_LEN: usize = 8;
/// 16-octet ICV (the only length we offer).
pub const ICV_LEN: usize = 16;

/// Why keying material was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The keying material is not key + 4-byte salt for this cipher.
    WrongLength { expected: usize, got: usize },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::WrongLength { expected, got } => write!(
                f,
                "keying material is {got} bytes, expected {expected} (key followed by a 4-byte salt)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// An expanded ESP AEAD key with its salt.
pub struct EspKey {
    cipher: EspCipher,
    aead: aead::LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl EspKey {
    /// Expands `keymat` (key || salt, as in `ip xfrm ... aead 'rfc4106(gcm(aes))'`).
    pub fn new(cipher: EspCipher, keymat: &[u8]) -> Result<Self, KeyError> {
        if keymat.len() != cipher.keymat_len() {
            return Err(KeyError::WrongLength {
                expected: cipher.keymat_len(),
                got: keymat.len(),
            });
        }
        let (key, salt) = keymat.split_at(cipher.key_len());
        let unbound =
            aead::UnboundKey::new(cipher.algorithm(), key).map_err(|_| KeyError::WrongLength {
                expected: cipher.keymat_len(),
                got: keymat.len(),
            })?;
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(EspKey {
            cipher,
            aead: aead::LessSafeKey::new(unbound),
            salt: s,
        })
    }

    pub fn cipher(&self) -> EspCipher {
        self.cipher
    }

    pub fn aead(&self) -> &aead::LessSafeKey {
        &self.aead
    }

    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// RFC 4106 4: nonce = salt || explicit IV.
    #[inline]
    pub fn nonce(&self, iv: &[u8; IV_LEN]) -> aead::Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        aead::Nonce::assume_unique_for_key(n)
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

/// Index into a worker's private per-SA state arrays.
pub type Slot = u32;

/// An inbound SA: found by SPI only, so an address change never touches it.
#[derive(Debug)]
pub struct InboundSa {
    pub spi: u32,
    /// Private-state index in the owning worker (replay window).
    pub slot: Slot,
    /// Unique per installation: a worker that finds a different id in its slot resets the
    /// slot's state (a new SA reusing a slot starts with an empty window).
    pub install_id: u64,
    /// The worker that owns the replay window; others hand packets to it.
    pub owner: u16,
    /// RFC 4303 2.2.1: 64-bit extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window in packets; 0 disables replay protection.
    pub replay_window: u32,
    pub key: EspKey,
    /// The tunnel whose selectors decrypted inner packets must match (RFC 4301 5.2).
    pub tunnel: TunnelId,
}

/// An outbound SA: follows the path of its IKE SA (RFC 4621 5.3).
#[derive(Debug)]
pub struct OutboundSa {
    pub spi: u32,
    pub slot: Slot,
    pub install_id: u64,
    /// The worker that owns the sequence counter.
    pub owner: u16,
    pub esn: bool,
    pub key: EspKey,
    /// The path record that gives this SA's outer header.
    pub path: PathId,
    pub tunnel: TunnelId,
}

/// What the control plane supplies to install an inbound SA.
#[derive(Debug)]
pub struct InboundSpec {
    pub spi: u32,
    pub owner: u16,
    pub esn: bool,
    pub replay_window: u32,
    pub key: EspKey,
    pub tunnel: TunnelId,
}

/// What the control plane supplies to install an outbound SA for a tunnel.
#[derive(Debug)]
pub struct OutboundSpec {
    pub spi: u32,
    pub owner: u16,
    pub esn: bool,
    pub key: EspKey,
    pub path: PathId,
    pub tunnel: TunnelId,
}
