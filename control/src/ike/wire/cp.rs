//! Configuration payload (RFC 7296 3.15).

use super::payload::PayloadType;
use super::{be16, EmitError, WireError};

mod field {
    pub const CFG_TYPE: usize = 0;
    pub const ATTRS: usize = 4;
}

/// CFG Type (RFC 7296 3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CfgType(pub u8);

impl CfgType {
    pub const REQUEST: Self = Self(1);
    pub const REPLY: Self = Self(2);
    pub const SET: Self = Self(3);
    pub const ACK: Self = Self(4);
}

/// Configuration Attribute Type (RFC 7296 3.15.1), 15 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CfgAttrType(pub u16);

impl CfgAttrType {
    pub const INTERNAL_IP4_ADDRESS: Self = Self(1);
    pub const INTERNAL_IP4_NETMASK: Self = Self(2);
    pub const INTERNAL_IP4_DNS: Self = Self(3);
    pub const INTERNAL_IP4_NBNS: Self = Self(4);
    pub const INTERNAL_IP4_DHCP: Self = Self(6);
    pub const APPLICATION_VERSION: Self = Self(7);
    pub const INTERNAL_IP6_ADDRESS: Self = Self(8);
    pub const INTERNAL_IP6_DNS: Self = Self(10);
    pub const INTERNAL_IP6_DHCP: Self = Self(12);
    pub const INTERNAL_IP4_SUBNET: Self = Self(13);
    pub const SUPPORTED_ATTRIBUTES: Self = Self(14);
    pub const INTERNAL_IP6_SUBNET: Self = Self(15);
}

/// One configuration attribute; an empty value asks for one (CFG_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttr {
    pub attr_type: CfgAttrType,
    pub value: Vec<u8>,
}

/// A view of a CP body; `new_checked` walks the attributes once.
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
        if b.len() < field::ATTRS {
            return Err(WireError::BodyTruncated(PayloadType::CP));
        }
        let mut rest = &b[field::ATTRS..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(WireError::BadCpAttributeLength);
            }
            let n = 4 + usize::from(be16(rest, 2));
            rest = rest.get(n..).ok_or(WireError::BadCpAttributeLength)?;
        }
        Ok(Self { buffer })
    }
    pub fn cfg_type(&self) -> CfgType {
        CfgType(self.buffer.as_ref()[field::CFG_TYPE])
    }
    /// (type, value) of each attribute; the reserved top bit is dropped.
    pub fn attributes(&self) -> impl Iterator<Item = (CfgAttrType, &[u8])> {
        let mut rest = &self.buffer.as_ref()[field::ATTRS..];
        core::iter::from_fn(move || {
            let hdr = rest.get(..4)?;
            let ty = CfgAttrType(be16(hdr, 0) & 0x7fff);
            let n = usize::from(be16(hdr, 2));
            let value = rest.get(4..4 + n)?;
            rest = &rest[4 + n..];
            Some((ty, value))
        })
    }
}

/// CP: type and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpRepr {
    pub cfg_type: CfgType,
    pub attributes: Vec<CfgAttr>,
}

impl CpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            cfg_type: p.cfg_type(),
            attributes: p
                .attributes()
                .map(|(attr_type, v)| CfgAttr {
                    attr_type,
                    value: v.to_vec(),
                })
                .collect(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::ATTRS
            + self
                .attributes
                .iter()
                .map(|a| 4 + a.value.len())
                .sum::<usize>()
    }
    /// Whether every attribute's length fits its 16-bit field.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        if self
            .attributes
            .iter()
            .any(|a| a.value.len() > usize::from(u16::MAX))
        {
            return Err(EmitError::SubstructureTooLong);
        }
        Ok(())
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::CFG_TYPE] = self.cfg_type.0;
        b[1..4].fill(0);
        let mut at = field::ATTRS;
        for a in &self.attributes {
            b[at..at + 2].copy_from_slice(&(a.attr_type.0 & 0x7fff).to_be_bytes());
            b[at + 2..at + 4].copy_from_slice(&(a.value.len() as u16).to_be_bytes());
            b[at + 4..at + 4 + a.value.len()].copy_from_slice(&a.value);
            at += 4 + a.value.len();
        }
    }
}
