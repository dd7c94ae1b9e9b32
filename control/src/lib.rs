//! mobiked's control plane: the static configuration, the sans-IO IKE core and the
//! engine around it (setup window, MOBIKE triggers, paced stop, table installer), the
//! host address watcher and the control socket.

pub mod addrwatch;
pub mod client;
pub mod config;
pub mod counters;
pub mod ctl;
pub mod engine;
pub mod ike;
pub mod installer;
pub mod mobility;
pub mod shutdown;
