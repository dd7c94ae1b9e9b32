//! The contract between mobiked's planes.
//!
//! The control plane is the only writer: it installs SAs, tunnels and path records and
//! publishes them copy-on-write (`table::TableWriter`). Poll-mode workers are readers:
//! once per burst they pass a quiescent point and get the current snapshot
//! (`table::TableReader`), then look SAs up by SPI or policy and outer headers up by path,
//! with no lock, allocation or blocking. Per-packet mutable state (sequence numbers,
//! replay windows) stays private to the worker that owns each SA.

pub mod clock;
pub mod counters;
pub mod pages;
pub mod path;
pub mod policy;
pub mod qsbr;
pub mod rx_ring;
pub mod sa;
pub mod spimap;
pub mod table;

pub use path::{Encap, PathId, PathRecord, PathSpec, L2};
pub use policy::{Prefix, Tunnel, TunnelId};
pub use sa::{EspCipher, EspKey, InboundSa, InboundSpec, OutboundSa, OutboundSpec};
pub use table::{Snapshot, TableConfig, TableError, TableReader, TableWriter};
