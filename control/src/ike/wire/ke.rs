//! Key Exchange payload (RFC 7296 3.4).

use super::payload::PayloadType;
use super::{be16, WireError};

mod field {
    pub const GROUP: usize = 0;
    pub const DATA: usize = 4;
}

/// Diffie-Hellman group number (IANA "Transform Type 4").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DhGroup(pub u16);

impl DhGroup {
    pub const NONE: Self = Self(0);
    pub const MODP_2048: Self = Self(14);
    pub const ECP_256: Self = Self(19);
    pub const ECP_384: Self = Self(20);
    pub const ECP_521: Self = Self(21);
    pub const CURVE25519: Self = Self(31);
    pub const CURVE448: Self = Self(32);
}

/// A view of a KE payload body.
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
            return Err(WireError::BodyTruncated(PayloadType::KE));
        }
        Ok(Self { buffer })
    }
    pub fn group(&self) -> DhGroup {
        DhGroup(be16(self.buffer.as_ref(), field::GROUP))
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

/// KE payload: group and public value. The value's length per group is the
/// crypto's check (RFC 7296 3.4 leaves it to the group's definition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeRepr {
    pub group: DhGroup,
    pub data: Vec<u8>,
}

impl KeRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            group: p.group(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::DATA + self.data.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[0..2].copy_from_slice(&self.group.0.to_be_bytes());
        b[2..4].fill(0);
        b[field::DATA..self.buffer_len()].copy_from_slice(&self.data);
    }
}
