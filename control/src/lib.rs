//! mobiked's control plane: the static configuration and the control socket.

pub mod client;
pub mod config;
pub mod ctl;
pub mod engine;
pub mod ike;
pub mod shutdown;
