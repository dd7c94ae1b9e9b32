//! RFC 4303 3.4.3 anti-replay window with Appendix A extended sequence numbers.
//!
//! The bitmap is a ring of 64-bit words indexed by sequence number modulo its size, which
//! is a power of two at least one word larger than the window: advancing the right edge
//! clears whole words and never shifts (the scheme of RFC 6479), so `update` costs at most
//! one pass over the ring however far it jumps, and `check` is one bit test.

/// Window size when the configuration says nothing.
pub const DEFAULT_WINDOW: u32 = 1024;
/// Largest configurable window (packets).
pub const MAX_WINDOW: u32 = 8192;

const WORD_BITS: u64 = 64;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received inside the window.
    Duplicate,
    /// Left of the window.
    TooOld,
    /// RFC 4303 2.2: sequence number 0 is never sent.
    Zero,
}

/// The receive-side state of one inbound SA, owned by one worker.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Ring of bits; `len()` is a power of two, at least `capacity / 64 + 1` words.
    bits: Box<[u64]>,
    /// Largest window `reset` accepts (clamped to `MAX_WINDOW`).
    capacity: u32,
    /// Current window size; 0 = replay check disabled.
    size: u32,
    esn: bool,
    /// Highest authenticated sequence number; 0 = none yet.
    top: u64,
}

impl ReplayWindow {
    /// Allocates the bitmap once (start-up) for windows up to `capacity` packets (clamped
    /// to `MAX_WINDOW`). The window starts at that size, without ESN.
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.min(MAX_WINDOW);
        ReplayWindow {
            bits: vec![0u64; Self::words(capacity)].into_boxed_slice(),
            capacity,
            size: capacity,
            esn: false,
            top: 0,
        }
    }

    /// Bitmap words of a window of `capacity` packets.
    fn words(capacity: u32) -> usize {
        // One spare word so clearing the word of a new right edge never touches bits that
        // are still inside the window.
        let words = (capacity.min(MAX_WINDOW) as usize).div_ceil(WORD_BITS as usize) + 1;
        words.next_power_of_two()
    }

    /// Heap bytes of the bitmap of a window of `capacity` packets.
    pub fn bitmap_bytes(capacity: u32) -> usize {
        Self::words(capacity) * std::mem::size_of::<u64>()
    }

    /// Prepares the slot for a new SA: empty window of `size` packets (clamped to the
    /// capacity; 0 disables the replay check but still tracks the highest sequence number
    /// for ESN inference). Allocates nothing.
    pub fn reset(&mut self, size: u32, esn: bool) {
        self.size = size.min(self.capacity);
        self.esn = esn;
        self.top = 0;
        self.bits.fill(0);
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Highest sequence number that passed integrity verification (0 before the first).
    #[inline]
    pub fn highest(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet carrying `seq_lo`: RFC 4303 A2.2 with ESN,
    /// `seq_lo` itself without. With the replay check disabled the inference still needs a
    /// window; `DEFAULT_WINDOW` is used.
    #[inline]
    pub fn infer(&self, seq_lo: u32) -> u64 {
        if !self.esn {
            return u64::from(seq_lo);
        }
        let w = if self.size == 0 {
            DEFAULT_WINDOW
        } else {
            self.size
        };
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let bottom = tl.wrapping_sub(w - 1);
        let seq_hi = if tl >= w - 1 {
            // Case A: the window lies within one epoch.
            if seq_lo >= bottom {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if seq_lo >= bottom {
            // Case B: the window spans two epochs and seq_lo is in the older one. Before
            // the first wrap there is no older epoch; such a packet is treated as current
            // and will fail the ICV unless the sender really used it.
            th.saturating_sub(1)
        } else {
            th
        };
        (u64::from(seq_hi) << 32) | u64::from(seq_lo)
    }

    #[inline]
    fn bit(&self, seq: u64) -> (usize, u64) {
        let nbits = (self.bits.len() as u64) * WORD_BITS;
        let pos = seq & (nbits - 1);
        ((pos / WORD_BITS) as usize, 1u64 << (pos % WORD_BITS))
    }

    /// RFC 4303 3.4.3: may a packet with this sequence number be decrypted? Read-only, so
    /// a forged packet cannot move the window.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.size == 0 || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayError::TooOld);
        }
        let (w, m) = self.bit(seq);
        match self.bits.get(w) {
            Some(word) if word & m != 0 => Err(ReplayError::Duplicate),
            _ => Ok(()),
        }
    }

    /// Records a sequence number whose ICV verified (RFC 4303 3.4.3: only then).
    #[inline]
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            if self.size != 0 {
                self.advance(seq);
            }
            self.top = seq;
        } else if self.size == 0 || self.top - seq >= u64::from(self.size) {
            return;
        }
        if self.size != 0 {
            let (w, m) = self.bit(seq);
            if let Some(word) = self.bits.get_mut(w) {
                *word |= m;
            }
        }
    }

    /// Clears the words that the right edge moves into, from above the old top's word up
    /// to and including the new top's word.
    #[inline]
    fn advance(&mut self, seq: u64) {
        let words = self.bits.len() as u64;
        let from = self.top / WORD_BITS + 1;
        let to = seq / WORD_BITS;
        if to < from {
            return;
        }
        if to - from >= words {
            self.bits.fill(0);
            return;
        }
        let mask = words - 1;
        for i in from..=to {
            if let Some(word) = self.bits.get_mut((i & mask) as usize) {
                *word = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_window() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        assert_eq!(w.check(1), Ok(()));
        w.update(1);
        assert_eq!(w.check(1), Err(ReplayError::Duplicate));
        w.update(100);
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Ok(()));
        w.update(37);
        assert_eq!(w.check(37), Err(ReplayError::Duplicate));
        assert_eq!(w.check(100), Err(ReplayError::Duplicate));
        assert_eq!(w.highest(), 100);
    }

    #[test]
    fn disabled_window_accepts_repeats_but_tracks_top() {
        let mut w = ReplayWindow::new(64);
        w.reset(0, true);
        w.update(5);
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        assert_eq!(w.highest(), 5);
    }

    #[test]
    fn capacity_clamps() {
        let mut w = ReplayWindow::new(u32::MAX);
        assert_eq!(w.capacity(), MAX_WINDOW);
        w.reset(u32::MAX, false);
        assert_eq!(w.size(), MAX_WINDOW);
        let mut s = ReplayWindow::new(32);
        s.reset(1024, false);
        assert_eq!(s.size(), 32);
    }

    #[test]
    fn esn_inference_rfc4303_a2() {
        let mut w = ReplayWindow::new(64);
        w.reset(64, true);
        // Case A near the top of epoch 0: small seq_lo means the next epoch.
        w.update(0xffff_fff0);
        assert_eq!(w.infer(0xffff_fff5), 0xffff_fff5);
        assert_eq!(w.infer(3), 0x1_0000_0003);
        assert_eq!(w.infer(0xffff_ffb1), 0xffff_ffb1);
        assert_eq!(w.infer(0xffff_ffb0), 0x1_ffff_ffb0);
        // Case B just after the wrap: large seq_lo means the previous epoch.
        w.update(0x1_0000_0003);
        assert_eq!(w.infer(0xffff_fff0), 0xffff_fff0);
        assert_eq!(w.infer(4), 0x1_0000_0004);
        assert_eq!(w.infer(0x8000_0000), 0x1_8000_0000);
        // Without ESN the low bits are the number.
        w.reset(64, false);
        assert_eq!(w.infer(7), 7);
    }
}
