//! Security association records as the dataplane sees them.
//!
//! A record is immutable once published: keys are expanded once per SA (key setup costs
//! about as much as sealing a small packet), and everything a worker mutates per packet
//! (the outbound sequence number, the inbound replay window) lives in the owning worker's
//! private state, found by `slot` and validated by `install_id`.

use crate::path::PathId;
use crate::policy::TunnelId;

pub mod key;

pub use key::{
    AeadKey, CbcKey, EspCipher, EspInteg, EspKey, KeyError, NotBlockAligned, SuiteKey, AES_BLOCK,
    CBC_IV_LEN, ICV_LEN, IV_LEN, MAX_ICV_LEN, MAX_IV_LEN, SALT_LEN,
};

/// Index into a worker's private per-SA state arrays.
pub type Slot = u32;

/// An inbound SA: found by SPI only, so an address change never touches it.
#[derive(Debug)]
pub struct InboundSa {
    pub spi: u32,
    /// Private-state index in the owning worker (replay window).
    pub slot: Slot,
    /// Unique per installation: a worker that finds a different id in its slot resets the
    /// slot's state (a new SA reusing a slot starts with an empty window).
    pub install_id: u64,
    /// The worker that owns the replay window; others hand packets to it.
    pub owner: u16,
    /// RFC 4303 2.2.1: 64-bit extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window in packets; 0 disables replay protection.
    pub replay_window: u32,
    pub key: EspKey,
    /// The tunnel whose selectors decrypted inner packets must match (RFC 4301 5.2).
    pub tunnel: TunnelId,
}

/// An outbound SA: follows the path of its IKE SA (RFC 4621 5.3).
#[derive(Debug)]
pub struct OutboundSa {
    pub spi: u32,
    pub slot: Slot,
    pub install_id: u64,
    /// The worker that owns the sequence counter.
    pub owner: u16,
    pub esn: bool,
    pub key: EspKey,
    /// The path record that gives this SA's outer header.
    pub path: PathId,
    pub tunnel: TunnelId,
}

/// What the control plane supplies to install an inbound SA.
#[derive(Debug)]
pub struct InboundSpec {
    pub spi: u32,
    pub owner: u16,
    pub esn: bool,
    pub replay_window: u32,
    pub key: EspKey,
    pub tunnel: TunnelId,
}

/// What the control plane supplies to install an outbound SA for a tunnel.
#[derive(Debug)]
pub struct OutboundSpec {
    pub spi: u32,
    pub owner: u16,
    pub esn: bool,
    pub key: EspKey,
    pub path: PathId,
    pub tunnel: TunnelId,
}
