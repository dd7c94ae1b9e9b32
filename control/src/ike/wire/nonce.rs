//! Nonce payload Ni/Nr (RFC 7296 3.9).

use super::WireError;

/// Smallest and largest nonce sizes allowed (RFC 7296 3.9).
pub const MIN_NONCE: usize = 16;
pub const MAX_NONCE: usize = 256;

/// A view of a Nonce body; `new_checked` enforces 16..=256 bytes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if !(MIN_NONCE..=MAX_NONCE).contains(&buffer.as_ref().len()) {
            return Err(WireError::BadNonceLength);
        }
        Ok(Self { buffer })
    }
    pub fn nonce(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Ni or Nr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRepr {
    pub nonce: Vec<u8>,
}

impl NonceRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            nonce: p.nonce().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        self.nonce.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.buffer.as_mut()[..self.nonce.len()].copy_from_slice(&self.nonce);
    }
}
