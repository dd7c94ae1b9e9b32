//! A port that receives nothing and takes whatever it is given: the clear side of a
//! daemon run without one (`mobiked gateway --no-clear`, signalling load tests), where
//! decrypted packets have nowhere to go.
//!
//! Nothing ever arrives, so there is nothing to wait for: `wait_fds` adds no descriptor
//! and an idle worker sleeps on its other port alone.

use crate::buf::PacketBuf;
use crate::io::{BurstIo, Layer};
use std::io;
use std::os::fd::RawFd;

/// See the module documentation.
pub struct NullPort {
    layer: Layer,
    discarded: u64,
}

impl NullPort {
    pub fn new(layer: Layer) -> NullPort {
        NullPort {
            layer,
            discarded: 0,
        }
    }

    /// Packets taken and dropped so far.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }
}

impl BurstIo for NullPort {
    fn layer(&self) -> Layer {
        self.layer
    }

    fn rx_burst(&mut self, _bufs: &mut [PacketBuf]) -> io::Result<usize> {
        Ok(0)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        self.discarded += bufs.len() as u64;
        Ok(bufs.len())
    }

    fn name(&self) -> &str {
        "null"
    }

    fn wait_fds(&self, _out: &mut Vec<RawFd>) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_everything_and_never_receives() {
        let mut p = NullPort::new(Layer::Ip);
        let mut bufs = PacketBuf::alloc(3);
        assert_eq!(p.tx_burst(&mut bufs).unwrap(), 3);
        assert_eq!(p.rx_burst(&mut bufs).unwrap(), 0);
        assert_eq!(p.discarded(), 3);
        let mut fds = Vec::new();
        assert!(p.wait_fds(&mut fds));
        assert!(fds.is_empty());
    }
}
