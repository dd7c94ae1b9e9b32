//! mobiked's fastpath: ESP (RFC 4303, AES-GCM per RFC 4106) and NAT-T (RFC 3948) packet
//! processing as pure functions over caller-owned buffers, poll-mode workers, and the
//! burst I/O backends they drive.

pub mod buf;
pub mod channel;
pub mod esp;
pub mod fabric;
pub mod inject;
pub mod io;
pub mod ip;
pub mod natt;
pub mod replay;
pub mod worker;

pub use buf::{Meta, PacketBuf};
pub use io::{BurstIo, Layer};
