//! The generic payload header, the chain walker, and the payload sum type
//! (RFC 7296 3.2).

use super::{auth, cert, cp, delete, eap, id, ke, nonce, notify, sa, sk, ts, vendor};
use super::{be16, EmitError, WireError};

/// Size of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// Upper bound on the payloads of one chain; a message with more is rejected rather
/// than walked (hostile input must not buy unbounded work).
pub const MAX_PAYLOADS: usize = 128;

/// Critical bit of the generic payload header (RFC 7296 3.2).
const CRITICAL: u8 = 0x80;

/// Payload type (RFC 7296 3.2, IANA "IKEv2 Payload Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(pub u8);

impl PayloadType {
    pub const NONE: Self = Self(0);
    pub const SA: Self = Self(33);
    pub const KE: Self = Self(34);
    pub const IDI: Self = Self(35);
    pub const IDR: Self = Self(36);
    pub const CERT: Self = Self(37);
    pub const CERTREQ: Self = Self(38);
    pub const AUTH: Self = Self(39);
    pub const NONCE: Self = Self(40);
    pub const NOTIFY: Self = Self(41);
    pub const DELETE: Self = Self(42);
    pub const VENDOR: Self = Self(43);
    pub const TSI: Self = Self(44);
    pub const TSR: Self = Self(45);
    pub const SK: Self = Self(46);
    pub const CP: Self = Self(47);
    pub const EAP: Self = Self(48);
    /// Encrypted and Authenticated Fragment (RFC 7383 2.5).
    pub const SKF: Self = Self(53);

    /// Whether this codec understands the payload.
    pub fn is_known(self) -> bool {
        matches!(self.0, 33..=48 | 53)
    }

    /// SK and SKF end a chain: their Next Payload names the first inner payload.
    pub fn is_encrypted(self) -> bool {
        self == Self::SK || self == Self::SKF
    }
}

/// One payload as found by [`PayloadIter`]: its generic header fields and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    pub ty: PayloadType,
    pub critical: bool,
    /// The Next Payload field; for SK/SKF, the type of the first inner payload.
    pub next: PayloadType,
    pub body: &'a [u8],
}

/// Walks a chain of payloads starting with type `first`, checking every generic
/// header's length against what is left. Ends after NONE, or after SK/SKF, which
/// must be last (RFC 7296 3.14). Yields at most [`MAX_PAYLOADS`] items; after an
/// error it yields nothing more.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    next: PayloadType,
    rest: &'a [u8],
    count: usize,
    done: bool,
}

impl<'a> PayloadIter<'a> {
    pub fn new(first: PayloadType, bytes: &'a [u8]) -> Self {
        Self {
            next: first,
            rest: bytes,
            count: 0,
            done: false,
        }
    }

    fn step(&mut self) -> Result<Option<RawPayload<'a>>, WireError> {
        if self.next == PayloadType::NONE {
            if !self.rest.is_empty() {
                return Err(WireError::TrailingBytes);
            }
            return Ok(None);
        }
        if self.count == MAX_PAYLOADS {
            return Err(WireError::TooManyPayloads);
        }
        let ty = self.next;
        let hdr = self
            .rest
            .get(..GENERIC_HEADER_LEN)
            .ok_or(WireError::PayloadHeaderTruncated)?;
        let len = usize::from(be16(hdr, 2));
        if len < GENERIC_HEADER_LEN || len > self.rest.len() {
            return Err(WireError::BadPayloadLength(ty));
        }
        let (this, rest) = self.rest.split_at(len);
        let raw = RawPayload {
            ty,
            critical: hdr[1] & CRITICAL != 0,
            next: PayloadType(hdr[0]),
            body: &this[GENERIC_HEADER_LEN..],
        };
        self.count += 1;
        self.rest = rest;
        if ty.is_encrypted() {
            if !rest.is_empty() {
                return Err(WireError::EncryptedNotLast);
            }
            self.next = PayloadType::NONE;
        } else {
            self.next = raw.next;
        }
        Ok(Some(raw))
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Any payload, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(sa::SaRepr),
    Ke(ke::KeRepr),
    Idi(id::IdRepr),
    Idr(id::IdRepr),
    Cert(cert::CertRepr),
    CertReq(cert::CertRepr),
    Auth(auth::AuthRepr),
    Nonce(nonce::NonceRepr),
    Notify(notify::NotifyRepr),
    Delete(delete::DeleteRepr),
    Vendor(vendor::VendorRepr),
    Tsi(ts::TsRepr),
    Tsr(ts::TsRepr),
    Sk(sk::SkRepr),
    Skf(sk::SkfRepr),
    Cp(cp::CpRepr),
    Eap(eap::EapRepr),
    /// A payload this codec does not understand, sent as is (tests, extensions).
    Unknown {
        ty: PayloadType,
        critical: bool,
        body: Vec<u8>,
    },
}

macro_rules! parse_body {
    ($m:ident, $repr:ident, $body:expr) => {
        $m::Packet::new_checked($body).and_then(|p| $m::$repr::parse(&p))
    };
}

macro_rules! emit_body {
    ($m:ident, $r:expr, $buf:expr) => {
        $r.emit(&mut $m::Packet::new_unchecked($buf))
    };
}

impl Payload {
    /// Parses one payload found by the walker. An unknown type is
    /// [`WireError::UnsupportedCriticalPayload`] if its critical bit is set, else
    /// `Ok(None)`: RFC 7296 2.5 says to skip it. The critical bit of known
    /// payloads is ignored (RFC 7296 3.2).
    pub fn parse(raw: &RawPayload<'_>) -> Result<Option<Self>, WireError> {
        let b = raw.body;
        let p = match raw.ty {
            PayloadType::SA => Payload::Sa(parse_body!(sa, SaRepr, b)?),
            PayloadType::KE => Payload::Ke(parse_body!(ke, KeRepr, b)?),
            PayloadType::IDI => Payload::Idi(parse_body!(id, IdRepr, b)?),
            PayloadType::IDR => Payload::Idr(parse_body!(id, IdRepr, b)?),
            PayloadType::CERT => Payload::Cert(parse_body!(cert, CertRepr, b)?),
            PayloadType::CERTREQ => Payload::CertReq(parse_body!(cert, CertRepr, b)?),
            PayloadType::AUTH => Payload::Auth(parse_body!(auth, AuthRepr, b)?),
            PayloadType::NONCE => Payload::Nonce(parse_body!(nonce, NonceRepr, b)?),
            PayloadType::NOTIFY => Payload::Notify(parse_body!(notify, NotifyRepr, b)?),
            PayloadType::DELETE => Payload::Delete(parse_body!(delete, DeleteRepr, b)?),
            PayloadType::VENDOR => Payload::Vendor(parse_body!(vendor, VendorRepr, b)?),
            PayloadType::TSI => Payload::Tsi(parse_body!(ts, TsRepr, b)?),
            PayloadType::TSR => Payload::Tsr(parse_body!(ts, TsRepr, b)?),
            PayloadType::SK => Payload::Sk(sk::SkRepr {
                first_inner: raw.next,
                body: b.to_vec(),
            }),
            PayloadType::SKF => {
                let p = sk::SkfPacket::new_checked(b)?;
                Payload::Skf(sk::SkfRepr::parse(&p, raw.next)?)
            }
            PayloadType::CP => Payload::Cp(parse_body!(cp, CpRepr, b)?),
            PayloadType::EAP => Payload::Eap(parse_body!(eap, EapRepr, b)?),
            ty if raw.critical => return Err(WireError::UnsupportedCriticalPayload(ty)),
            _ => return Ok(None),
        };
        Ok(Some(p))
    }

    /// The payload's type, as the previous header's Next Payload names it.
    pub fn ty(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::Idi(_) => PayloadType::IDI,
            Payload::Idr(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::Tsi(_) => PayloadType::TSI,
            Payload::Tsr(_) => PayloadType::TSR,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Skf(_) => PayloadType::SKF,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Unknown { ty, .. } => *ty,
        }
    }

    /// Length of the body (without the generic header).
    pub fn body_len(&self) -> usize {
        match self {
            Payload::Sa(r) => r.buffer_len(),
            Payload::Ke(r) => r.buffer_len(),
            Payload::Idi(r) | Payload::Idr(r) => r.buffer_len(),
            Payload::Cert(r) | Payload::CertReq(r) => r.buffer_len(),
            Payload::Auth(r) => r.buffer_len(),
            Payload::Nonce(r) => r.buffer_len(),
            Payload::Notify(r) => r.buffer_len(),
            Payload::Delete(r) => r.buffer_len(),
            Payload::Vendor(r) => r.buffer_len(),
            Payload::Tsi(r) | Payload::Tsr(r) => r.buffer_len(),
            Payload::Sk(r) => r.buffer_len(),
            Payload::Skf(r) => r.buffer_len(),
            Payload::Cp(r) => r.buffer_len(),
            Payload::Eap(r) => r.buffer_len(),
            Payload::Unknown { body, .. } => body.len(),
        }
    }

    /// Length with the generic header.
    pub fn buffer_len(&self) -> usize {
        GENERIC_HEADER_LEN + self.body_len()
    }

    /// Whether the payload can be encoded: its length fits the 16-bit Payload
    /// Length and every inner length and count fits its field.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        if self.buffer_len() > usize::from(u16::MAX) {
            return Err(EmitError::PayloadTooLong(self.ty()));
        }
        match self {
            Payload::Sa(r) => r.check_emit(),
            Payload::Notify(r) => r.check_emit(),
            Payload::Delete(r) => r.check_emit(),
            Payload::Tsi(r) | Payload::Tsr(r) => r.check_emit(),
            Payload::Cp(r) => r.check_emit(),
            _ => Ok(()),
        }
    }

    /// Writes generic header and body into `buf` (exactly [`Self::buffer_len`]
    /// bytes). `next` is the type of the following payload; SK and SKF write the
    /// type of their first inner payload instead. Call [`Self::check_emit`] first
    /// (the message builder does): lengths that do not fit are truncated.
    pub fn emit(&self, next: PayloadType, buf: &mut [u8]) {
        let len = self.buffer_len();
        let (hdr, body) = buf[..len].split_at_mut(GENERIC_HEADER_LEN);
        hdr[0] = match self {
            Payload::Sk(r) => r.first_inner.0,
            Payload::Skf(r) => r.first_inner.0,
            _ => next.0,
        };
        hdr[1] = match self {
            Payload::Unknown { critical: true, .. } => CRITICAL,
            _ => 0,
        };
        hdr[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        match self {
            Payload::Sa(r) => emit_body!(sa, r, body),
            Payload::Ke(r) => emit_body!(ke, r, body),
            Payload::Idi(r) | Payload::Idr(r) => emit_body!(id, r, body),
            Payload::Cert(r) | Payload::CertReq(r) => emit_body!(cert, r, body),
            Payload::Auth(r) => emit_body!(auth, r, body),
            Payload::Nonce(r) => emit_body!(nonce, r, body),
            Payload::Notify(r) => emit_body!(notify, r, body),
            Payload::Delete(r) => emit_body!(delete, r, body),
            Payload::Vendor(r) => emit_body!(vendor, r, body),
            Payload::Tsi(r) | Payload::Tsr(r) => emit_body!(ts, r, body),
            Payload::Sk(r) => body.copy_from_slice(&r.body),
            Payload::Skf(r) => r.emit(&mut sk::SkfPacket::new_unchecked(body)),
            Payload::Cp(r) => emit_body!(cp, r, body),
            Payload::Eap(r) => emit_body!(eap, r, body),
            Payload::Unknown { body: b, .. } => body.copy_from_slice(b),
        }
    }
}
