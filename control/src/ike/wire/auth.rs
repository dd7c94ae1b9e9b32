//! Authentication payload (RFC 7296 3.8).

use super::payload::PayloadType;
use super::WireError;

mod field {
    pub const METHOD: usize = 0;
    pub const DATA: usize = 4;
}

/// Auth Method (RFC 7296 3.8, RFC 7427).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthMethod(pub u8);

impl AuthMethod {
    pub const RSA_SIG: Self = Self(1);
    pub const SHARED_KEY_MIC: Self = Self(2);
    pub const DSS_SIG: Self = Self(3);
    pub const ECDSA_SHA256_P256: Self = Self(9);
    pub const ECDSA_SHA384_P384: Self = Self(10);
    pub const ECDSA_SHA512_P521: Self = Self(11);
    pub const NULL: Self = Self(13);
    pub const DIGITAL_SIGNATURE: Self = Self(14);
}

/// A view of an AUTH body.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < field::DATA {
            return Err(WireError::BodyTruncated(PayloadType::AUTH));
        }
        Ok(Self { buffer })
    }
    pub fn method(&self) -> AuthMethod {
        AuthMethod(self.buffer.as_ref()[field::METHOD])
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

/// AUTH: method and authentication data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRepr {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl AuthRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            method: p.method(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::DATA + self.data.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::METHOD] = self.method.0;
        b[1..4].fill(0);
        b[field::DATA..self.buffer_len()].copy_from_slice(&self.data);
    }
}
