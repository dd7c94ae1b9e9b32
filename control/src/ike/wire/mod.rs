//! IKEv2 message and payload codec (RFC 7296 3): views and `Repr`s.
//!
//! Each payload module has a `Packet<T: AsRef<[u8]>>` view over the payload *body*
//! (what follows the 4-byte generic payload header, RFC 7296 3.2) whose `new_checked`
//! validates every length once, so no accessor can panic, and a `Repr` with
//! `parse`/`emit`/`buffer_len`. The generic header and the chain of payloads are in
//! [`payload`]; the IKE header in [`header`]; whole messages in [`message`].
//!
//! Length rule for messages: the header's Length must lie in 28..=datagram length;
//! bytes after it are ignored (see [`header::Packet`]). A chain is walked at most
//! [`MAX_PAYLOADS`] payloads deep and must end exactly at Length.
//!
//! Wire enums are open (`struct X(pub u8)` with named consts) so values we do not
//! know survive a parse/emit round trip unchanged.

pub mod auth;
pub mod cert;
pub mod cp;
pub mod delete;
pub mod eap;
mod error;
pub mod header;
pub mod id;
pub mod ke;
pub mod message;
pub mod nonce;
pub mod notify;
pub mod payload;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod vendor;

pub use error::{EmitError, WireError};
pub use header::{ExchangeType, HeaderRepr, HEADER_LEN};
pub use message::{emit_payloads, parse_payloads, payloads_buffer_len, Message};
pub use payload::{Payload, PayloadIter, PayloadType, RawPayload, MAX_PAYLOADS};

type Field = core::ops::Range<usize>;

/// Big-endian u16 at `at`; callers index only within lengths checked by `new_checked`.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// IPsec protocol identifier used by SA proposals, N and D payloads (RFC 7296 3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolId(pub u8);

impl ProtocolId {
    /// Not an SA protocol: notifications not about an SA carry 0 (RFC 7296 3.10).
    pub const NONE: Self = Self(0);
    pub const IKE: Self = Self(1);
    pub const AH: Self = Self(2);
    pub const ESP: Self = Self(3);
}
