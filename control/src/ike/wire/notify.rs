//! Notify payload (RFC 7296 3.10) and the notify types we speak, MOBIKE's included
//! (RFC 4555 4).

use super::ke::DhGroup;
use super::payload::PayloadType;
use super::{be16, EmitError, ProtocolId, WireError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod field {
    pub const PROTOCOL: usize = 0;
    pub const SPI_SIZE: usize = 1;
    pub const TYPE: usize = 2;
    pub const SPI: usize = 4;
}

/// Notify Message Type (IANA "IKEv2 Notify Message Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyType(pub u16);

impl NotifyType {
    // Errors (RFC 7296 3.10.1).
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: Self = Self(1);
    pub const INVALID_IKE_SPI: Self = Self(4);
    pub const INVALID_MAJOR_VERSION: Self = Self(5);
    pub const INVALID_SYNTAX: Self = Self(7);
    pub const INVALID_MESSAGE_ID: Self = Self(9);
    pub const INVALID_SPI: Self = Self(11);
    pub const NO_PROPOSAL_CHOSEN: Self = Self(14);
    pub const INVALID_KE_PAYLOAD: Self = Self(17);
    pub const AUTHENTICATION_FAILED: Self = Self(24);
    pub const SINGLE_PAIR_REQUIRED: Self = Self(34);
    pub const NO_ADDITIONAL_SAS: Self = Self(35);
    pub const INTERNAL_ADDRESS_FAILURE: Self = Self(36);
    pub const FAILED_CP_REQUIRED: Self = Self(37);
    pub const TS_UNACCEPTABLE: Self = Self(38);
    pub const INVALID_SELECTORS: Self = Self(39);
    /// RFC 4555 4.
    pub const UNACCEPTABLE_ADDRESSES: Self = Self(40);
    /// RFC 4555 4.
    pub const UNEXPECTED_NAT_DETECTED: Self = Self(41);
    pub const TEMPORARY_FAILURE: Self = Self(43);
    pub const CHILD_SA_NOT_FOUND: Self = Self(44);

    // Status types.
    pub const INITIAL_CONTACT: Self = Self(16384);
    pub const SET_WINDOW_SIZE: Self = Self(16385);
    pub const ADDITIONAL_TS_POSSIBLE: Self = Self(16386);
    pub const IPCOMP_SUPPORTED: Self = Self(16387);
    pub const NAT_DETECTION_SOURCE_IP: Self = Self(16388);
    pub const NAT_DETECTION_DESTINATION_IP: Self = Self(16389);
    pub const COOKIE: Self = Self(16390);
    pub const USE_TRANSPORT_MODE: Self = Self(16391);
    pub const HTTP_CERT_LOOKUP_SUPPORTED: Self = Self(16392);
    pub const REKEY_SA: Self = Self(16393);
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: Self = Self(16394);
    pub const NON_FIRST_FRAGMENTS_ALSO: Self = Self(16395);
    /// RFC 4555 4.
    pub const MOBIKE_SUPPORTED: Self = Self(16396);
    pub const ADDITIONAL_IP4_ADDRESS: Self = Self(16397);
    pub const ADDITIONAL_IP6_ADDRESS: Self = Self(16398);
    pub const NO_ADDITIONAL_ADDRESSES: Self = Self(16399);
    pub const UPDATE_SA_ADDRESSES: Self = Self(16400);
    pub const COOKIE2: Self = Self(16401);
    pub const NO_NATS_ALLOWED: Self = Self(16402);
    pub const AUTH_LIFETIME: Self = Self(16403);
    pub const MULTIPLE_AUTH_SUPPORTED: Self = Self(16404);
    pub const ANOTHER_AUTH_FOLLOWS: Self = Self(16405);
    pub const REDIRECT_SUPPORTED: Self = Self(16406);
    /// RFC 7383 2.3.
    pub const IKEV2_FRAGMENTATION_SUPPORTED: Self = Self(16430);
    /// RFC 7427 4.
    pub const SIGNATURE_HASH_ALGORITHMS: Self = Self(16431);

    /// Error types are below 16384 (RFC 7296 3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }

    pub fn is_status(self) -> bool {
        !self.is_error()
    }
}

/// A view of a Notify body.
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
        if b.len() < field::SPI || b.len() < field::SPI + usize::from(b[field::SPI_SIZE]) {
            return Err(WireError::BodyTruncated(PayloadType::NOTIFY));
        }
        Ok(Self { buffer })
    }
    pub fn protocol(&self) -> ProtocolId {
        ProtocolId(self.buffer.as_ref()[field::PROTOCOL])
    }
    pub fn spi_size(&self) -> u8 {
        self.buffer.as_ref()[field::SPI_SIZE]
    }
    pub fn notify_type(&self) -> NotifyType {
        NotifyType(be16(self.buffer.as_ref(), field::TYPE))
    }
    pub fn spi(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SPI..field::SPI + usize::from(self.spi_size())]
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SPI + usize::from(self.spi_size())..]
    }
}

/// N: protocol, SPI (empty when not about an SA), type and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRepr {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyRepr {
    /// A notification not about a particular SA.
    pub fn new(notify_type: NotifyType, data: &[u8]) -> Self {
        Self {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data: data.to_vec(),
        }
    }

    /// UNSUPPORTED_CRITICAL_PAYLOAD names the payload type in one octet
    /// (RFC 7296 3.10.1).
    pub fn unsupported_critical_payload(ty: PayloadType) -> Self {
        Self::new(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, &[ty.0])
    }

    /// INVALID_KE_PAYLOAD carries the group the responder wants (RFC 7296 1.3).
    pub fn invalid_ke_payload(group: DhGroup) -> Self {
        Self::new(NotifyType::INVALID_KE_PAYLOAD, &group.0.to_be_bytes())
    }

    /// ADDITIONAL_IP4_ADDRESS / ADDITIONAL_IP6_ADDRESS (RFC 4555 4).
    pub fn additional_address(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self::new(NotifyType::ADDITIONAL_IP4_ADDRESS, &a.octets()),
            IpAddr::V6(a) => Self::new(NotifyType::ADDITIONAL_IP6_ADDRESS, &a.octets()),
        }
    }

    /// The group of an INVALID_KE_PAYLOAD, if its data is two octets.
    pub fn requested_group(&self) -> Option<DhGroup> {
        match (self.notify_type, self.data.as_slice()) {
            (NotifyType::INVALID_KE_PAYLOAD, &[a, b]) => Some(DhGroup(u16::from_be_bytes([a, b]))),
            _ => None,
        }
    }

    /// The address of an ADDITIONAL_IP4/IP6_ADDRESS with data of the right size.
    pub fn address(&self) -> Option<IpAddr> {
        match self.notify_type {
            NotifyType::ADDITIONAL_IP4_ADDRESS => <[u8; 4]>::try_from(self.data.as_slice())
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            NotifyType::ADDITIONAL_IP6_ADDRESS => <[u8; 16]>::try_from(self.data.as_slice())
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            protocol: p.protocol(),
            spi: p.spi().to_vec(),
            notify_type: p.notify_type(),
            data: p.data().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::SPI + self.spi.len() + self.data.len()
    }
    /// Whether the SPI fits the one-octet SPI Size.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        if self.spi.len() > usize::from(u8::MAX) {
            return Err(EmitError::SpiTooLong);
        }
        Ok(())
    }

    /// The SPI is at most 255 bytes: see [`Self::check_emit`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::PROTOCOL] = self.protocol.0;
        b[field::SPI_SIZE] = self.spi.len() as u8;
        b[2..4].copy_from_slice(&self.notify_type.0.to_be_bytes());
        let d = field::SPI + self.spi.len();
        b[field::SPI..d].copy_from_slice(&self.spi);
        b[d..d + self.data.len()].copy_from_slice(&self.data);
    }
}
