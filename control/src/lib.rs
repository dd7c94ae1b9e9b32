//! mobiked's control plane: the static configuration and the control socket.

pub mod client;
pub mod config;
pub mod counters;
pub mod ctl;
pub mod ike;
pub mod installer;
pub mod shutdown;
