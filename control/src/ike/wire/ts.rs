//! Traffic Selector payloads TSi and TSr (RFC 7296 3.13).

use super::payload::PayloadType;
use super::{be16, EmitError, WireError};
use std::net::{Ipv4Addr, Ipv6Addr};

mod field {
    pub const NUM_TS: usize = 0;
    pub const SELECTORS: usize = 4;
}

/// TS Type (RFC 7296 3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsType(pub u8);

impl TsType {
    pub const IPV4_ADDR_RANGE: Self = Self(7);
    pub const IPV6_ADDR_RANGE: Self = Self(8);
}

const TS_HEADER: usize = 4;
const V4_LEN: usize = 16;
const V6_LEN: usize = 40;

/// One traffic selector. Selectors of an unknown type are kept as their bytes
/// after the 4-byte type/length header, so they round-trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    Ipv4 {
        ip_proto: u8,
        start_port: u16,
        end_port: u16,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    Ipv6 {
        ip_proto: u8,
        start_port: u16,
        end_port: u16,
        start: Ipv6Addr,
        end: Ipv6Addr,
    },
    Unknown {
        ts_type: TsType,
        ip_proto: u8,
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    fn wire_len(&self) -> usize {
        match self {
            Self::Ipv4 { .. } => V4_LEN,
            Self::Ipv6 { .. } => V6_LEN,
            Self::Unknown { data, .. } => TS_HEADER + data.len(),
        }
    }

    /// Parses one selector from its exact bytes (length already checked).
    fn from_bytes(s: &[u8]) -> Self {
        let ip_proto = s[1];
        match TsType(s[0]) {
            TsType::IPV4_ADDR_RANGE => {
                let a = |at: usize| Ipv4Addr::new(s[at], s[at + 1], s[at + 2], s[at + 3]);
                Self::Ipv4 {
                    ip_proto,
                    start_port: be16(s, 4),
                    end_port: be16(s, 6),
                    start: a(8),
                    end: a(12),
                }
            }
            TsType::IPV6_ADDR_RANGE => {
                let a = |at: usize| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&s[at..at + 16]);
                    Ipv6Addr::from(o)
                };
                Self::Ipv6 {
                    ip_proto,
                    start_port: be16(s, 4),
                    end_port: be16(s, 6),
                    start: a(8),
                    end: a(24),
                }
            }
            ts_type => Self::Unknown {
                ts_type,
                ip_proto,
                data: s[TS_HEADER..].to_vec(),
            },
        }
    }

    fn write(&self, b: &mut [u8]) {
        let len = self.wire_len();
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let ports = |b: &mut [u8], p: u8, sp: u16, ep: u16| {
            b[1] = p;
            b[4..6].copy_from_slice(&sp.to_be_bytes());
            b[6..8].copy_from_slice(&ep.to_be_bytes());
        };
        match self {
            Self::Ipv4 {
                ip_proto,
                start_port,
                end_port,
                start,
                end,
            } => {
                b[0] = TsType::IPV4_ADDR_RANGE.0;
                ports(b, *ip_proto, *start_port, *end_port);
                b[8..12].copy_from_slice(&start.octets());
                b[12..16].copy_from_slice(&end.octets());
            }
            Self::Ipv6 {
                ip_proto,
                start_port,
                end_port,
                start,
                end,
            } => {
                b[0] = TsType::IPV6_ADDR_RANGE.0;
                ports(b, *ip_proto, *start_port, *end_port);
                b[8..24].copy_from_slice(&start.octets());
                b[24..40].copy_from_slice(&end.octets());
            }
            Self::Unknown {
                ts_type,
                ip_proto,
                data,
            } => {
                b[0] = ts_type.0;
                b[1] = *ip_proto;
                b[TS_HEADER..len].copy_from_slice(data);
            }
        }
    }
}

/// A view of a TS body; `new_checked` walks the selectors once, checking each
/// length against its type and the count against "Number of TSs".
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
        if b.len() < field::SELECTORS {
            return Err(WireError::BodyTruncated(PayloadType::TSI));
        }
        let mut rest = &b[field::SELECTORS..];
        let mut count = 0usize;
        while !rest.is_empty() {
            let hdr = rest.get(..TS_HEADER).ok_or(WireError::BadSelectorLength)?;
            let len = usize::from(be16(hdr, 2));
            let ok = match TsType(hdr[0]) {
                TsType::IPV4_ADDR_RANGE => len == V4_LEN,
                TsType::IPV6_ADDR_RANGE => len == V6_LEN,
                _ => len >= TS_HEADER,
            };
            if !ok || len > rest.len() {
                return Err(WireError::BadSelectorLength);
            }
            rest = &rest[len..];
            count += 1;
        }
        if count != usize::from(b[field::NUM_TS]) {
            return Err(WireError::SelectorCountMismatch);
        }
        Ok(Self { buffer })
    }
    pub fn num_ts(&self) -> u8 {
        self.buffer.as_ref()[field::NUM_TS]
    }
    pub fn selectors(&self) -> impl Iterator<Item = TrafficSelector> + '_ {
        let mut rest = &self.buffer.as_ref()[field::SELECTORS..];
        core::iter::from_fn(move || {
            let len = usize::from(be16(rest.get(..TS_HEADER)?, 2));
            let (s, r) = rest.split_at(len.min(rest.len()));
            rest = r;
            (s.len() >= TS_HEADER).then(|| TrafficSelector::from_bytes(s))
        })
    }
}

/// TSi or TSr: a list of selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsRepr {
    pub selectors: Vec<TrafficSelector>,
}

impl TsRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            selectors: p.selectors().collect(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::SELECTORS
            + self
                .selectors
                .iter()
                .map(TrafficSelector::wire_len)
                .sum::<usize>()
    }
    /// Whether the count and every selector's length fit their fields.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        if self.selectors.len() > usize::from(u8::MAX) {
            return Err(EmitError::TooManySelectors);
        }
        if self
            .selectors
            .iter()
            .any(|s| s.wire_len() > usize::from(u16::MAX))
        {
            return Err(EmitError::SubstructureTooLong);
        }
        Ok(())
    }

    /// At most 255 selectors (one-octet count): see [`Self::check_emit`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::NUM_TS] = self.selectors.len() as u8;
        b[1..4].fill(0);
        let mut at = field::SELECTORS;
        for s in &self.selectors {
            let n = s.wire_len();
            s.write(&mut b[at..at + n]);
            at += n;
        }
    }
}
