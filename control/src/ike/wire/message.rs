//! A whole IKE message: header and payload chain, parsed or built with Next Payload
//! and lengths filled in (RFC 7296 3.1, 3.2).

use super::header::{self, HeaderRepr, HEADER_LEN};
use super::payload::{Payload, PayloadIter, PayloadType};
use super::{EmitError, WireError};

/// An IKE message. When it carries SK/SKF, that payload is last and its body is
/// still encrypted; the crypto decrypts it and calls [`parse_payloads`] on the
/// plaintext with [`super::sk::SkRepr::first_inner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: HeaderRepr,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a datagram (see [`header::Packet`] for the length rule). Unknown
    /// non-critical payloads are skipped; an unknown critical one is
    /// [`WireError::UnsupportedCriticalPayload`].
    pub fn parse(datagram: &[u8]) -> Result<Self, WireError> {
        let p = header::Packet::new_checked(datagram)?;
        let header = HeaderRepr::parse(&p)?;
        let payloads = parse_payloads(header.next_payload, p.payload())?;
        Ok(Self { header, payloads })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + payloads_buffer_len(&self.payloads)
    }

    /// Writes the message into `buf` (at least [`Self::buffer_len`] bytes), setting
    /// the header's Next Payload and Length from the payloads; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(EmitError::BufferTooSmall)?;
        let (hdr, rest) = buf.split_at_mut(HEADER_LEN);
        let first = emit_payloads(&self.payloads, rest)?;
        let h = HeaderRepr {
            next_payload: first,
            length: len as u32,
            ..self.header
        };
        h.emit(&mut header::Packet::new_unchecked(hdr));
        Ok(len)
    }

    pub fn to_vec(&self) -> Result<Vec<u8>, EmitError> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

/// Parses a chain of payloads (a message's, or an SK payload's plaintext).
pub fn parse_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, WireError> {
    let mut out = Vec::new();
    for raw in PayloadIter::new(first, bytes) {
        if let Some(p) = Payload::parse(&raw?)? {
            out.push(p);
        }
    }
    Ok(out)
}

pub fn payloads_buffer_len(payloads: &[Payload]) -> usize {
    payloads.iter().map(Payload::buffer_len).sum()
}

/// Writes a chain of payloads into `buf` (at least [`payloads_buffer_len`] bytes),
/// chaining Next Payload; returns the type of the first (NONE if empty). Checks
/// every payload first, so nothing is written for a payload that cannot be encoded;
/// SK/SKF must be last (RFC 7296 3.14).
pub fn emit_payloads(payloads: &[Payload], buf: &mut [u8]) -> Result<PayloadType, EmitError> {
    if buf.len() < payloads_buffer_len(payloads) {
        return Err(EmitError::BufferTooSmall);
    }
    for (i, p) in payloads.iter().enumerate() {
        p.check_emit()?;
        if p.ty().is_encrypted() && i + 1 != payloads.len() {
            return Err(EmitError::EncryptedNotLast);
        }
    }
    let mut at = 0;
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(PayloadType::NONE, Payload::ty);
        let n = p.buffer_len();
        p.emit(next, &mut buf[at..at + n]);
        at += n;
    }
    Ok(payloads.first().map_or(PayloadType::NONE, Payload::ty))
}
