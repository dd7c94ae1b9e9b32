//! Certificate and Certificate Request payloads (RFC 7296 3.6, 3.7): same layout.

use super::payload::PayloadType;
use super::WireError;

/// Certificate Encoding (RFC 7296 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertEncoding(pub u8);

impl CertEncoding {
    pub const PKCS7_X509: Self = Self(1);
    pub const X509_SIGNATURE: Self = Self(4);
    pub const CRL: Self = Self(7);
    pub const RAW_RSA_KEY: Self = Self(11);
    pub const HASH_URL_X509: Self = Self(12);
    pub const HASH_URL_BUNDLE: Self = Self(13);
    /// RFC 7670.
    pub const RAW_PUBLIC_KEY: Self = Self(15);
}

/// A view of a CERT or CERTREQ body.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().is_empty() {
            return Err(WireError::BodyTruncated(PayloadType::CERT));
        }
        Ok(Self { buffer })
    }
    pub fn encoding(&self) -> CertEncoding {
        CertEncoding(self.buffer.as_ref()[0])
    }
    /// Certificate data (CERT) or concatenated CA key hashes (CERTREQ).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[1..]
    }
}

/// CERT or CERTREQ: encoding and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRepr {
    pub encoding: CertEncoding,
    pub data: Vec<u8>,
}

impl CertRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            encoding: p.encoding(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        1 + self.data.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[0] = self.encoding.0;
        b[1..self.buffer_len()].copy_from_slice(&self.data);
    }
}
