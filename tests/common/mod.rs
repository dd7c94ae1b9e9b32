//! What the process tests share.

use std::process::Child;

/// Kills (by PID, through `Child`) whatever the test started, even when it fails.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
