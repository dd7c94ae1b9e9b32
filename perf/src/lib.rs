pub mod esp;
pub mod fwd;
pub mod ike;
pub mod report;
pub mod rig;
pub mod table;
