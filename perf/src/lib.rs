pub mod esp;
pub mod fwd;
pub mod report;
