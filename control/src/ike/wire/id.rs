//! Identification payloads IDi and IDr (RFC 7296 3.5).

use super::payload::PayloadType;
use super::WireError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod field {
    pub const TYPE: usize = 0;
    pub const DATA: usize = 4;
}

/// ID Type (RFC 7296 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdType(pub u8);

impl IdType {
    pub const IPV4_ADDR: Self = Self(1);
    pub const FQDN: Self = Self(2);
    pub const RFC822_ADDR: Self = Self(3);
    pub const IPV6_ADDR: Self = Self(5);
    pub const DER_ASN1_DN: Self = Self(9);
    pub const DER_ASN1_GN: Self = Self(10);
    pub const KEY_ID: Self = Self(11);
}

/// A view of an ID payload body. `new_checked` also checks that address IDs have
/// an address's length.
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
            return Err(WireError::BodyTruncated(PayloadType::IDI));
        }
        let data_len = b.len() - field::DATA;
        match IdType(b[field::TYPE]) {
            IdType::IPV4_ADDR if data_len != 4 => return Err(WireError::BadIdLength),
            IdType::IPV6_ADDR if data_len != 16 => return Err(WireError::BadIdLength),
            _ => {}
        }
        Ok(Self { buffer })
    }
    pub fn id_type(&self) -> IdType {
        IdType(self.buffer.as_ref()[field::TYPE])
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

/// An identity: type and data, kept as bytes so that the AUTH computation
/// (RFC 7296 2.15) signs exactly what was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRepr {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl IdRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            id_type: p.id_type(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::DATA + self.data.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::TYPE] = self.id_type.0;
        b[1..4].fill(0);
        b[field::DATA..self.buffer_len()].copy_from_slice(&self.data);
    }

    pub fn ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self {
                id_type: IdType::IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Self {
                id_type: IdType::IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }

    pub fn fqdn(name: &str) -> Self {
        Self {
            id_type: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    pub fn rfc822(addr: &str) -> Self {
        Self {
            id_type: IdType::RFC822_ADDR,
            data: addr.as_bytes().to_vec(),
        }
    }

    pub fn key_id(id: &[u8]) -> Self {
        Self {
            id_type: IdType::KEY_ID,
            data: id.to_vec(),
        }
    }

    /// The address of an ID_IPV4_ADDR / ID_IPV6_ADDR.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::IPV4_ADDR => <[u8; 4]>::try_from(self.data.as_slice())
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            IdType::IPV6_ADDR => <[u8; 16]>::try_from(self.data.as_slice())
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }

    /// The text of an ID_FQDN / ID_RFC822_ADDR, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self.id_type {
            IdType::FQDN | IdType::RFC822_ADDR => core::str::from_utf8(&self.data).ok(),
            _ => None,
        }
    }
}
