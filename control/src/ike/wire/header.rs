//! The IKE header (RFC 7296 3.1).

use super::payload::PayloadType;
use super::{be32, Field, WireError};

mod field {
    use super::Field;
    pub const SPI_I: Field = 0..8;
    pub const SPI_R: Field = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Field = 20..24;
    pub const LENGTH: Field = 24..28;
}

/// Size of the IKE header.
pub const HEADER_LEN: usize = 28;

/// Initiator flag (RFC 7296 3.1).
pub const FLAG_INITIATOR: u8 = 0x08;
/// Version flag: the sender can speak a higher major version.
pub const FLAG_VERSION: u8 = 0x10;
/// Response flag.
pub const FLAG_RESPONSE: u8 = 0x20;

/// Exchange type (RFC 7296 3.1, IANA "IKEv2 Exchange Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeType(pub u8);

impl ExchangeType {
    pub const IKE_SA_INIT: Self = Self(34);
    pub const IKE_AUTH: Self = Self(35);
    pub const CREATE_CHILD_SA: Self = Self(36);
    pub const INFORMATIONAL: Self = Self(37);
    pub const IKE_SESSION_RESUME: Self = Self(38);
    pub const IKE_INTERMEDIATE: Self = Self(43);
}

/// A view of an IKE message.
///
/// Length rule: the header's Length must be at least 28 and at most the buffer's
/// length; bytes beyond it are not part of the message and are ignored. This lets the
/// same view frame messages in a stream (RFC 8229), where the buffer may hold more.
/// Over UDP the engine may additionally require equality.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::HeaderTruncated);
        }
        let len = be32(b, field::LENGTH.start) as usize;
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::BadMessageLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi_i(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::SPI_I];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    pub fn spi_r(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::SPI_R];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.buffer.as_ref()[field::EXCHANGE])
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn message_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MESSAGE_ID.start)
    }

    pub fn length(&self) -> u32 {
        be32(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The bytes of the payload chain: from the end of the header to Length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.length() as usize]
    }

    /// The whole message (header included), without bytes beyond Length.
    pub fn message(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.length() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi_i(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_spi_r(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_next_payload(&mut self, v: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = v.0;
    }
    pub fn set_version(&mut self, major: u8, minor: u8) {
        self.buffer.as_mut()[field::VERSION] = (major << 4) | (minor & 0x0f);
    }
    pub fn set_exchange_type(&mut self, v: ExchangeType) {
        self.buffer.as_mut()[field::EXCHANGE] = v.0;
    }
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    pub fn set_message_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// The IKE header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    /// Minor version: ignored on receipt, kept for the round trip (RFC 7296 3.1).
    pub minor_version: u8,
    pub exchange_type: ExchangeType,
    pub initiator: bool,
    pub higher_version: bool,
    pub response: bool,
    pub message_id: u32,
    pub length: u32,
}

impl HeaderRepr {
    /// Parses the header; a major version other than 2 is
    /// [`WireError::UnsupportedMajorVersion`] (RFC 7296 2.5).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        if p.major_version() != 2 {
            return Err(WireError::UnsupportedMajorVersion(p.major_version()));
        }
        let flags = p.flags();
        Ok(Self {
            spi_i: p.spi_i(),
            spi_r: p.spi_r(),
            next_payload: p.next_payload(),
            minor_version: p.minor_version(),
            exchange_type: p.exchange_type(),
            initiator: flags & FLAG_INITIATOR != 0,
            higher_version: flags & FLAG_VERSION != 0,
            response: flags & FLAG_RESPONSE != 0,
            message_id: p.message_id(),
            length: p.length(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_spi_i(self.spi_i);
        p.set_spi_r(self.spi_r);
        p.set_next_payload(self.next_payload);
        p.set_version(2, self.minor_version);
        p.set_exchange_type(self.exchange_type);
        let mut flags = 0;
        if self.initiator {
            flags |= FLAG_INITIATOR;
        }
        if self.higher_version {
            flags |= FLAG_VERSION;
        }
        if self.response {
            flags |= FLAG_RESPONSE;
        }
        p.set_flags(flags);
        p.set_message_id(self.message_id);
        p.set_length(self.length);
    }
}
