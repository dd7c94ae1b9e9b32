//! ESP (RFC 4303) tunnel mode with AES-GCM-16 (RFC 4106), in place over `PacketBuf`.

use crate::replay::ReplayError;
use shared::counters::Counter;
use shared::sa::{ICV_LEN, IV_LEN};

/// RFC 4303 2: SPI (4) + sequence number (4).
pub const ESP_HEADER_LEN: usize = 8;
/// RFC 4303 2.6: next header values in tunnel mode.
pub const NH_IPV4: u8 = 4;
pub const NH_IPV6: u8 = 41;
/// RFC 4303 2.4: padding aligns payload + pad length + next header to 4 octets (GCM needs
/// no block alignment, RFC 4106 3), so at most 3 pad bytes.
pub const MAX_PAD: usize = 3;

/// Bytes encapsulation adds around an inner packet at most.
pub const fn encap_overhead_max() -> usize {
    ESP_HEADER_LEN + IV_LEN + MAX_PAD + 2 + ICV_LEN
}

/// Why an outbound packet could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// Not enough head or tail room for the headers, padding or ICV.
    NoRoom,
    /// The path cannot be written: local and remote address families differ, or an
    /// Ethernet port has no link-layer header for it.
    BadPath,
}

impl EncapError {
    pub fn counter(self) -> Counter {
        match self {
            EncapError::NoRoom => Counter::DropNoTailroom,
            EncapError::BadPath => Counter::DropNoSa,
        }
    }
}

/// Why an inbound ESP packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than header + IV + pad length + next header + ICV.
    Runt,
    /// RFC 4303 3.4.3: rejected by the anti-replay window.
    Replay(ReplayError),
    /// RFC 4303 3.4.4: ICV verification failed.
    AuthFail,
    /// RFC 4303 2.4: pad length exceeds the payload, or pad bytes are not 1, 2, 3, ...
    BadPadding,
}

impl DecapError {
    pub fn counter(self) -> Counter {
        match self {
            DecapError::Runt => Counter::DropRunt,
            DecapError::Replay(_) => Counter::DropReplay,
            DecapError::AuthFail => Counter::DropAuthFail,
            DecapError::BadPadding => Counter::DropBadPadding,
        }
    }
}
