pub mod fwd;
