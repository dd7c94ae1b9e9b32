//! EAP payload (RFC 7296 3.16) carrying one EAP message (RFC 3748 4).

use super::payload::PayloadType;
use super::{be16, WireError};

mod field {
    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: usize = 2;
    pub const DATA: usize = 4;
}

/// EAP Code (RFC 3748 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EapCode(pub u8);

impl EapCode {
    pub const REQUEST: Self = Self(1);
    pub const RESPONSE: Self = Self(2);
    pub const SUCCESS: Self = Self(3);
    pub const FAILURE: Self = Self(4);
}

/// A view of an EAP body; `new_checked` requires the EAP Length to equal the body.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < field::DATA {
            return Err(WireError::BodyTruncated(PayloadType::EAP));
        }
        if usize::from(be16(b, field::LENGTH)) != b.len() {
            return Err(WireError::BadEapLength);
        }
        Ok(Self { buffer })
    }
    pub fn code(&self) -> EapCode {
        EapCode(self.buffer.as_ref()[field::CODE])
    }
    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[field::IDENTIFIER]
    }
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Type and type data (Request/Response), empty for Success/Failure.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

/// EAP: code, identifier and the rest of the EAP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapRepr {
    pub code: EapCode,
    pub identifier: u8,
    pub data: Vec<u8>,
}

impl EapRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            code: p.code(),
            identifier: p.identifier(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::DATA + self.data.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let len = self.buffer_len();
        let b = p.buffer.as_mut();
        b[field::CODE] = self.code.0;
        b[field::IDENTIFIER] = self.identifier;
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        b[field::DATA..len].copy_from_slice(&self.data);
    }
}
