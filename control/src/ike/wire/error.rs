//! One error per kind of malformed input, so the state machine can count and answer each.

use super::payload::PayloadType;
use core::fmt;

/// Why a message or payload could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than the 28 bytes of the IKE header (RFC 7296 3.1).
    HeaderTruncated,
    /// The header's Length is below 28 or beyond the datagram.
    BadMessageLength,
    /// Major version other than 2: the responder answers INVALID_MAJOR_VERSION
    /// (RFC 7296 2.5).
    UnsupportedMajorVersion(u8),
    /// A generic payload header does not fit in what is left of the message.
    PayloadHeaderTruncated,
    /// A generic payload header's Payload Length is below 4 or overruns the message.
    BadPayloadLength(PayloadType),
    /// More payloads than [`super::MAX_PAYLOADS`] in one chain.
    TooManyPayloads,
    /// Bytes after the last payload of the chain (Next Payload was NONE).
    TrailingBytes,
    /// SK or SKF is not the last payload (RFC 7296 3.14, RFC 7383 2.5).
    EncryptedNotLast,
    /// Unknown payload with the critical bit set: the message is rejected and the
    /// peer is told UNSUPPORTED_CRITICAL_PAYLOAD with this type (RFC 7296 2.5).
    UnsupportedCriticalPayload(PayloadType),
    /// A payload body is shorter than its fixed part.
    BodyTruncated(PayloadType),
    /// A proposal substructure's length is short or overruns the SA payload.
    BadProposalLength,
    /// A proposal's Last Substructure is not 2 (more follow) or 0 (last) as it should be.
    BadProposalLast,
    /// A proposal's "# of Transforms" differs from the transforms it holds.
    TransformCountMismatch,
    /// A transform substructure's length is short or overruns its proposal.
    BadTransformLength,
    /// A transform's Last Substructure is not 3 (more follow) or 0 (last) as it should be.
    BadTransformLast,
    /// A transform attribute (TLV) overruns its transform.
    BadAttributeLength,
    /// Nonce outside 16..=256 bytes (RFC 7296 3.9).
    BadNonceLength,
    /// An ID_IPV4_ADDR / ID_IPV6_ADDR whose data is not 4 / 16 bytes.
    BadIdLength,
    /// A traffic selector's length is wrong for its type or overruns the payload.
    BadSelectorLength,
    /// "Number of TSs" differs from the selectors present.
    SelectorCountMismatch,
    /// A configuration attribute overruns the CP payload.
    BadCpAttributeLength,
    /// The EAP Length field differs from the payload body (RFC 3748 4).
    BadEapLength,
    /// SPIs of a Delete payload do not fill it exactly (RFC 7296 3.11).
    BadDeleteLength,
    /// SKF fragment number 0 or above the total (RFC 7383 2.5).
    BadFragmentNumber,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for WireError {}

/// Why a message or payload cannot be encoded: a length or count does not fit its
/// field, or the pieces contradict each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer is shorter than `buffer_len()`.
    BufferTooSmall,
    /// A payload longer than the 16-bit Payload Length allows.
    PayloadTooLong(PayloadType),
    /// A proposal, transform, attribute or selector longer than its 16-bit length.
    SubstructureTooLong,
    /// An SPI longer than the one-octet SPI Size allows.
    SpiTooLong,
    /// More than 255 transforms in a proposal.
    TooManyTransforms,
    /// More than 255 traffic selectors in a TS payload.
    TooManySelectors,
    /// A Delete whose SPIs do not all have `spi_size` bytes or whose count differs.
    InconsistentDelete,
    /// SK or SKF is not the last payload (RFC 7296 3.14).
    EncryptedNotLast,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for EmitError {}
