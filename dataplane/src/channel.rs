//! Buffer-exchanging queues between threads: the punt queue (worker -> control plane),
//! the inject queue (control plane -> worker) and worker-to-worker handoff.
//!
//! Buffers are never allocated after start-up: a sender swaps its filled buffer for an
//! empty one taken from the channel, a receiver swaps an empty one in for a filled one.
//! Both queues are lock-free (`crossbeam_queue::ArrayQueue`), so no side ever blocks.

use crate::buf::PacketBuf;
use crossbeam_queue::ArrayQueue;

/// A bounded, lock-free channel of packet buffers.
pub struct Channel {
    full: ArrayQueue<PacketBuf>,
    empty: ArrayQueue<PacketBuf>,
}

impl Channel {
    /// A channel holding up to `capacity` packets, with `capacity` spare buffers.
    pub fn new(capacity: usize) -> Channel {
        let capacity = capacity.max(1);
        let empty = ArrayQueue::new(capacity);
        for b in PacketBuf::alloc(capacity) {
            let _ = empty.push(b);
        }
        Channel {
            full: ArrayQueue::new(capacity),
            empty,
        }
    }

    /// Moves the packet in `buf` into the channel, leaving an empty buffer in its place.
    /// Returns false (and leaves `buf` untouched) if the channel is full.
    #[inline]
    pub fn send_swap(&self, buf: &mut PacketBuf) -> bool {
        let Some(mut spare) = self.empty.pop() else {
            return false;
        };
        std::mem::swap(&mut spare, buf);
        buf.reset();
        match self.full.push(spare) {
            Ok(()) => true,
            Err(back) => {
                // Cannot happen (full and empty share one capacity), but never lose a buffer.
                let mut back = back;
                std::mem::swap(&mut back, buf);
                let _ = self.empty.push(back);
                false
            }
        }
    }

    /// Takes the oldest packet into `buf`, giving `buf`'s old storage back to the channel.
    /// Returns false (and leaves `buf` untouched) if the channel is empty.
    #[inline]
    pub fn recv_swap(&self, buf: &mut PacketBuf) -> bool {
        let Some(mut pkt) = self.full.pop() else {
            return false;
        };
        std::mem::swap(&mut pkt, buf);
        pkt.reset();
        let _ = self.empty.push(pkt);
        true
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.full.len()
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }

    /// Spare buffers available to senders.
    pub fn spare(&self) -> usize {
        self.empty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_preserves_buffers_and_order() {
        let ch = Channel::new(2);
        let mut a = PacketBuf::new();
        assert!(a.fill(b"one"));
        assert!(ch.send_swap(&mut a));
        assert!(a.is_empty());
        assert!(a.fill(b"two"));
        assert!(ch.send_swap(&mut a));
        assert!(a.fill(b"three"));
        assert!(!ch.send_swap(&mut a), "full");
        assert_eq!(a.data(), b"three");
        let mut r = PacketBuf::new();
        assert!(ch.recv_swap(&mut r));
        assert_eq!(r.data(), b"one");
        assert!(ch.recv_swap(&mut r));
        assert_eq!(r.data(), b"two");
        assert!(!ch.recv_swap(&mut r));
        assert_eq!(ch.spare(), 2);
    }
}
