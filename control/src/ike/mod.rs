//! IKEv2 (RFC 7296): the wire codec and the crypto suites the sans-IO state machines
//! build on.

pub mod conn;
pub mod crypto;
pub mod mobike_policy;
pub mod sa;
pub mod wire;
