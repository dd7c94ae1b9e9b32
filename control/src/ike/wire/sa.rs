//! Security Association payload: proposals, transforms, attributes (RFC 7296 3.3).

use super::payload::PayloadType;
use super::{be16, EmitError, ProtocolId, WireError};

/// Last Substructure values (RFC 7296 3.3.1, 3.3.2).
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const LAST: u8 = 0;

const PROPOSAL_HEADER: usize = 8;
const TRANSFORM_HEADER: usize = 8;
/// Attribute Format bit: set for TV (2-byte value), clear for TLV (RFC 7296 3.3.5).
const AF_TV: u16 = 0x8000;

/// Transform Type (RFC 7296 3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformType(pub u8);

impl TransformType {
    pub const ENCR: Self = Self(1);
    pub const PRF: Self = Self(2);
    pub const INTEG: Self = Self(3);
    /// Diffie-Hellman group (called Key Exchange Method since RFC 9370).
    pub const DH: Self = Self(4);
    pub const ESN: Self = Self(5);
}

/// Transform ID; its meaning depends on the transform type, so the constants are
/// prefixed with the type they belong to (IANA "IKEv2 Transform Type N").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformId(pub u16);

impl TransformId {
    pub const ENCR_AES_CBC: Self = Self(12);
    pub const ENCR_AES_CTR: Self = Self(13);
    pub const ENCR_AES_GCM_8: Self = Self(18);
    pub const ENCR_AES_GCM_12: Self = Self(19);
    pub const ENCR_AES_GCM_16: Self = Self(20);
    pub const ENCR_CHACHA20_POLY1305: Self = Self(28);
    pub const PRF_HMAC_SHA1: Self = Self(2);
    pub const PRF_HMAC_SHA2_256: Self = Self(5);
    pub const PRF_HMAC_SHA2_384: Self = Self(6);
    pub const PRF_HMAC_SHA2_512: Self = Self(7);
    pub const INTEG_NONE: Self = Self(0);
    pub const INTEG_HMAC_SHA1_96: Self = Self(2);
    pub const INTEG_HMAC_SHA2_256_128: Self = Self(12);
    pub const INTEG_HMAC_SHA2_384_192: Self = Self(13);
    pub const INTEG_HMAC_SHA2_512_256: Self = Self(14);
    pub const DH_NONE: Self = Self(0);
    pub const DH_MODP_2048: Self = Self(14);
    pub const DH_ECP_256: Self = Self(19);
    pub const DH_ECP_384: Self = Self(20);
    pub const DH_CURVE25519: Self = Self(31);
    pub const ESN_NO: Self = Self(0);
    pub const ESN_YES: Self = Self(1);
}

/// Transform attribute type, without the AF bit (RFC 7296 3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttributeType(pub u16);

impl AttributeType {
    /// Key length in bits, TV format.
    pub const KEY_LENGTH: Self = Self(14);
}

/// An attribute's value in either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Type/Value: a 2-byte value, AF bit set.
    Tv(u16),
    /// Type/Length/Value.
    Tlv(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub attr_type: AttributeType,
    pub value: AttributeValue,
}

impl Attribute {
    pub fn key_length(bits: u16) -> Self {
        Self {
            attr_type: AttributeType::KEY_LENGTH,
            value: AttributeValue::Tv(bits),
        }
    }
    fn wire_len(&self) -> usize {
        match &self.value {
            AttributeValue::Tv(_) => 4,
            AttributeValue::Tlv(v) => 4 + v.len(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub transform_type: TransformType,
    pub id: TransformId,
    pub attributes: Vec<Attribute>,
}

impl Transform {
    pub fn new(transform_type: TransformType, id: TransformId) -> Self {
        Self {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }
    /// The KEY_LENGTH attribute, if any.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttributeValue::Tv(v) if a.attr_type == AttributeType::KEY_LENGTH => Some(v),
            _ => None,
        })
    }
    fn wire_len(&self) -> usize {
        TRANSFORM_HEADER
            + self
                .attributes
                .iter()
                .map(Attribute::wire_len)
                .sum::<usize>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty in IKE_SA_INIT; the sender's inbound SPI for child SAs and IKE rekeys.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

impl Proposal {
    fn wire_len(&self) -> usize {
        PROPOSAL_HEADER
            + self.spi.len()
            + self
                .transforms
                .iter()
                .map(Transform::wire_len)
                .sum::<usize>()
    }
}

/// Splits `bytes` into substructures whose 2-byte length is at offset 2 and which
/// start with a Last Substructure byte: `more` before the last one, 0 on it.
fn substructures(
    bytes: &[u8],
    min: usize,
    more: u8,
    bad_len: WireError,
    bad_last: WireError,
) -> Result<Vec<&[u8]>, WireError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let hdr = rest.get(..min).ok_or(bad_len)?;
        let len = usize::from(be16(hdr, 2));
        if len < min || len > rest.len() {
            return Err(bad_len);
        }
        let (this, r) = rest.split_at(len);
        let want = if r.is_empty() { LAST } else { more };
        if this[0] != want {
            return Err(bad_last);
        }
        out.push(this);
        rest = r;
    }
    Ok(out)
}

fn parse_attributes(mut rest: &[u8]) -> Result<Vec<Attribute>, WireError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let hdr = rest.get(..4).ok_or(WireError::BadAttributeLength)?;
        let raw = be16(hdr, 0);
        let attr_type = AttributeType(raw & !AF_TV);
        let (value, n) = if raw & AF_TV != 0 {
            (AttributeValue::Tv(be16(hdr, 2)), 4)
        } else {
            let n = 4 + usize::from(be16(hdr, 2));
            let v = rest.get(4..n).ok_or(WireError::BadAttributeLength)?;
            (AttributeValue::Tlv(v.to_vec()), n)
        };
        out.push(Attribute { attr_type, value });
        rest = &rest[n..];
    }
    Ok(out)
}

fn parse_transform(t: &[u8]) -> Result<Transform, WireError> {
    Ok(Transform {
        transform_type: TransformType(t[4]),
        id: TransformId(be16(t, 6)),
        attributes: parse_attributes(&t[TRANSFORM_HEADER..])?,
    })
}

fn parse_proposal(p: &[u8]) -> Result<Proposal, WireError> {
    let spi_end = PROPOSAL_HEADER + usize::from(p[6]);
    let spi = p
        .get(PROPOSAL_HEADER..spi_end)
        .ok_or(WireError::BadProposalLength)?;
    let transforms = substructures(
        &p[spi_end..],
        TRANSFORM_HEADER,
        MORE_TRANSFORMS,
        WireError::BadTransformLength,
        WireError::BadTransformLast,
    )?;
    if transforms.len() != usize::from(p[7]) {
        return Err(WireError::TransformCountMismatch);
    }
    Ok(Proposal {
        number: p[4],
        protocol: ProtocolId(p[5]),
        spi: spi.to_vec(),
        transforms: transforms
            .into_iter()
            .map(parse_transform)
            .collect::<Result<_, _>>()?,
    })
}

/// A view of an SA body. `new_checked` validates the whole substructure tree
/// (proposal, transform and attribute lengths, Last Substructure values, transform
/// counts) once.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self { buffer };
        p.proposals()?;
        Ok(p)
    }
    /// Parses the proposals.
    pub fn proposals(&self) -> Result<Vec<Proposal>, WireError> {
        let b = self.buffer.as_ref();
        if b.is_empty() {
            // RFC 7296 3.3: at least one proposal.
            return Err(WireError::BodyTruncated(PayloadType::SA));
        }
        substructures(
            b,
            PROPOSAL_HEADER,
            MORE_PROPOSALS,
            WireError::BadProposalLength,
            WireError::BadProposalLast,
        )?
        .into_iter()
        .map(parse_proposal)
        .collect()
    }
}

/// SA: the proposals in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRepr {
    pub proposals: Vec<Proposal>,
}

impl SaRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            proposals: p.proposals()?,
        })
    }
    pub fn buffer_len(&self) -> usize {
        self.proposals.iter().map(Proposal::wire_len).sum()
    }

    /// Whether every length and count fits its field.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        for p in &self.proposals {
            if p.spi.len() > usize::from(u8::MAX) {
                return Err(EmitError::SpiTooLong);
            }
            if p.transforms.len() > usize::from(u8::MAX) {
                return Err(EmitError::TooManyTransforms);
            }
            let too_long = |n: usize| n > usize::from(u16::MAX);
            let attr_too_long = |a: &Attribute| match &a.value {
                AttributeValue::Tlv(v) => too_long(v.len()),
                AttributeValue::Tv(_) => false,
            };
            if too_long(p.wire_len())
                || p.transforms
                    .iter()
                    .any(|t| too_long(t.wire_len()) || t.attributes.iter().any(attr_too_long))
            {
                return Err(EmitError::SubstructureTooLong);
            }
        }
        Ok(())
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        let mut at = 0;
        for (i, prop) in self.proposals.iter().enumerate() {
            let plen = prop.wire_len();
            let h = &mut b[at..at + plen];
            h[0] = if i + 1 == self.proposals.len() {
                LAST
            } else {
                MORE_PROPOSALS
            };
            h[1] = 0;
            h[2..4].copy_from_slice(&(plen as u16).to_be_bytes());
            h[4] = prop.number;
            h[5] = prop.protocol.0;
            h[6] = prop.spi.len() as u8;
            h[7] = prop.transforms.len() as u8;
            h[PROPOSAL_HEADER..PROPOSAL_HEADER + prop.spi.len()].copy_from_slice(&prop.spi);
            let mut t_at = PROPOSAL_HEADER + prop.spi.len();
            for (j, t) in prop.transforms.iter().enumerate() {
                let tlen = t.wire_len();
                let th = &mut h[t_at..t_at + tlen];
                th[0] = if j + 1 == prop.transforms.len() {
                    LAST
                } else {
                    MORE_TRANSFORMS
                };
                th[1] = 0;
                th[2..4].copy_from_slice(&(tlen as u16).to_be_bytes());
                th[4] = t.transform_type.0;
                th[5] = 0;
                th[6..8].copy_from_slice(&t.id.0.to_be_bytes());
                let mut a_at = TRANSFORM_HEADER;
                for a in &t.attributes {
                    let ah = &mut th[a_at..a_at + a.wire_len()];
                    match &a.value {
                        AttributeValue::Tv(v) => {
                            ah[0..2].copy_from_slice(&(a.attr_type.0 | AF_TV).to_be_bytes());
                            ah[2..4].copy_from_slice(&v.to_be_bytes());
                        }
                        AttributeValue::Tlv(v) => {
                            ah[0..2].copy_from_slice(&(a.attr_type.0 & !AF_TV).to_be_bytes());
                            ah[2..4].copy_from_slice(&(v.len() as u16).to_be_bytes());
                            ah[4..].copy_from_slice(v);
                        }
                    }
                    a_at += a.wire_len();
                }
                t_at += tlen;
            }
            at += plen;
        }
    }
}
