//! Encrypted payload SK (RFC 7296 3.14) and Encrypted Fragment SKF (RFC 7383 2.5):
//! the outer framing only. Splitting IV, ciphertext, padding and ICV is the job of
//! the crypto suite, which knows their sizes.

use super::payload::PayloadType;
use super::{be16, WireError};

/// SK: the type of the first inner payload (the generic header's Next Payload) and
/// the body (IV, ciphertext, ICV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkRepr {
    pub first_inner: PayloadType,
    pub body: Vec<u8>,
}

impl SkRepr {
    pub fn buffer_len(&self) -> usize {
        self.body.len()
    }
}

mod field {
    pub const FRAGMENT_NUMBER: usize = 0;
    pub const TOTAL_FRAGMENTS: usize = 2;
    pub const BODY: usize = 4;
}

/// A view of an SKF body; `new_checked` requires 1 <= Fragment Number <= Total
/// Fragments (RFC 7383 2.5).
#[derive(Debug, Clone)]
pub struct SkfPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SkfPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < field::BODY {
            return Err(WireError::BodyTruncated(PayloadType::SKF));
        }
        let n = be16(b, field::FRAGMENT_NUMBER);
        if n == 0 || n > be16(b, field::TOTAL_FRAGMENTS) {
            return Err(WireError::BadFragmentNumber);
        }
        Ok(Self { buffer })
    }
    pub fn fragment_number(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAGMENT_NUMBER)
    }
    pub fn total_fragments(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_FRAGMENTS)
    }
    /// IV, ciphertext and ICV.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
}

/// SKF: fragment numbering, first inner payload type (meaningful in fragment 1, 0
/// in the others, RFC 7383 2.5) and the encrypted body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkfRepr {
    pub first_inner: PayloadType,
    pub fragment_number: u16,
    pub total_fragments: u16,
    pub body: Vec<u8>,
}

impl SkfRepr {
    pub fn parse<T: AsRef<[u8]>>(
        p: &SkfPacket<T>,
        first_inner: PayloadType,
    ) -> Result<Self, WireError> {
        Ok(Self {
            first_inner,
            fragment_number: p.fragment_number(),
            total_fragments: p.total_fragments(),
            body: p.body().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::BODY + self.body.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut SkfPacket<T>) {
        let len = self.buffer_len();
        let b = p.buffer.as_mut();
        b[0..2].copy_from_slice(&self.fragment_number.to_be_bytes());
        b[2..4].copy_from_slice(&self.total_fragments.to_be_bytes());
        b[field::BODY..len].copy_from_slice(&self.body);
    }
}
