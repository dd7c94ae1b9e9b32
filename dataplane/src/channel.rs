//! Buffer-exchanging queues between threads: the punt queue (worker -> control plane),
//! the inject queue (control plane -> worker) and worker-to-worker handoff.
//!
//! Buffers are never allocated after start-up: a sender swaps its filled buffer for an
//! empty one taken from the channel, a receiver swaps an empty one in for a filled one.
//! Both queues are lock-free (`crossbeam_queue::ArrayQueue`), so no side ever blocks.
//!
//! A channel may carry a wakeup (an eventfd) for a consumer that sleeps in poll(2), such
//! as the control plane waiting for punted IKE: the consumer announces its sleep with
//! [`Channel::prepare_wait`], the producer calls [`Channel::notify`] once per burst that
//! sent something, and only the first notify after an announcement writes the eventfd.
//! The packet path so pays one atomic swap per such burst and a syscall only when the
//! consumer actually sleeps.

use crate::buf::{PacketBuf, MAX_FRAME};
use crossbeam_queue::ArrayQueue;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

/// A bounded, lock-free channel of packet buffers.
pub struct Channel {
    full: ArrayQueue<PacketBuf>,
    empty: ArrayQueue<PacketBuf>,
    wakeup: Option<Arc<Wakeup>>,
}

/// An eventfd plus the consumer's "going to sleep" flag. One consumer may share a wakeup
/// among all the channels it reads (a worker: its inject and handoff channels), so that
/// one descriptor in its poll(2) set covers them all.
pub struct Wakeup {
    /// Non-blocking eventfd, used through `File`'s read(2) and write(2).
    fd: File,
    /// Set by the consumer before it blocks; taken (swapped to false) by the producer
    /// that writes the eventfd, so one sleep costs at most one write.
    armed: AtomicBool,
}

impl Wakeup {
    pub fn new() -> std::io::Result<Wakeup> {
        // SAFETY: eventfd(2) takes no pointers; the flags are valid constants.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor eventfd(2) just opened for us and nothing else
        // owns it; `OwnedFd` closes it exactly once.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Wakeup {
            fd: File::from(owned),
            armed: AtomicBool::new(false),
        })
    }

    /// The descriptor that becomes readable when a producer notifies an armed consumer.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Consumer: announces that it is about to block on `fd`. Check every source the
    /// wakeup covers *after* this call, and block only if all are empty: any packet sent
    /// from now on is followed by a write to the eventfd.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
        // Pairs with the fence in `notify`: either the producer sees `armed` or we see
        // its packet (a lost wakeup would need both to miss).
        fence(Ordering::SeqCst);
    }

    /// Consumer: done waiting (woken or timed out). Disarms, and clears the eventfd if a
    /// producer took the arm or poll(2) reported it `readable` (a producer that took an
    /// earlier arm may write only after that wait ended), so the next wait blocks again.
    pub fn disarm(&self, readable: bool) {
        let taken = !self.armed.swap(false, Ordering::SeqCst);
        if taken || readable {
            // EAGAIN: nothing written yet (then the next wait returns at once, sees the
            // descriptor readable and clears it).
            let mut v = [0u8; 8];
            let _ = (&self.fd).read(&mut v);
        }
    }

    /// Producer: call once after a burst that queued something for this consumer.
    /// Writes the eventfd only if the consumer announced a sleep, and then only once.
    #[inline]
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.armed.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Makes the descriptor readable whether or not the consumer sleeps (stop requests).
    pub fn wake(&self) {
        // An eventfd write of 8 bytes cannot be short; EAGAIN (counter at its maximum)
        // means the consumer is already readable.
        let _ = (&self.fd).write(&1u64.to_ne_bytes());
    }
}

impl Channel {
    /// A channel holding up to `capacity` packets, with `capacity` spare buffers.
    pub fn new(capacity: usize) -> Channel {
        Channel::with_buffers(capacity, MAX_FRAME)
    }

    /// A channel of `capacity` buffers that each hold a frame of up to `frame` bytes
    /// (at least `MAX_FRAME`): the large punt and inject queues. Its senders and
    /// receivers swap buffers of that same size in and out.
    pub fn with_buffers(capacity: usize, frame: usize) -> Channel {
        let capacity = capacity.max(1);
        let empty = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let _ = empty.push(PacketBuf::with_frame(frame));
        }
        Channel {
            full: ArrayQueue::new(capacity),
            empty,
            wakeup: None,
        }
    }

    /// A channel whose consumer can sleep on [`Channel::wakeup_fd`]. Without eventfd
    /// (an error creating it), `wakeup_fd` is `None` and the consumer must poll.
    pub fn with_wakeup(capacity: usize) -> Channel {
        let mut ch = Channel::new(capacity);
        ch.wakeup = Wakeup::new().ok().map(Arc::new);
        ch
    }

    /// This channel with `wakeup` (shared with the consumer's other channels, or none).
    pub fn woken_by(mut self, wakeup: Option<Arc<Wakeup>>) -> Channel {
        self.wakeup = wakeup;
        self
    }

    /// The descriptor that becomes readable when a producer notifies an armed consumer.
    pub fn wakeup_fd(&self) -> Option<RawFd> {
        self.wakeup.as_ref().map(|w| w.fd())
    }

    /// Consumer: announces that it is about to block on `wakeup_fd`. Returns false if
    /// packets are already waiting (do not block), true if blocking is safe: any packet
    /// sent from now on is followed by a write to the eventfd.
    pub fn prepare_wait(&self) -> bool {
        if let Some(w) = &self.wakeup {
            w.arm();
        }
        self.is_empty()
    }

    /// Consumer: done waiting (woken or timed out). Disarms and clears the eventfd if a
    /// producer took the arm, so the next wait blocks again.
    pub fn finish_wait(&self) {
        self.finish_wait_readable(false);
    }

    /// `finish_wait` for a consumer that knows whether poll(2) saw the eventfd readable
    /// (then it is cleared in any case; see [`Wakeup::disarm`]).
    pub fn finish_wait_readable(&self, readable: bool) {
        if let Some(w) = &self.wakeup {
            w.disarm(readable);
        }
    }

    /// Producer: call once after a burst in which `send_swap` succeeded. Writes the
    /// eventfd only if the consumer announced a sleep, and then only once.
    #[inline]
    pub fn notify(&self) {
        if let Some(w) = &self.wakeup {
            w.notify();
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

    /// Whether `fd` is readable now (poll(2) with a zero timeout: no waiting).
    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid, initialised pollfd that outlives the call; timeout 0.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLIN != 0
    }

    fn punt(ch: &Channel, data: &[u8]) {
        let mut b = PacketBuf::new();
        assert!(b.fill(data));
        assert!(ch.send_swap(&mut b));
        ch.notify();
    }

    #[test]
    fn wakeup_written_only_for_an_armed_consumer_and_once_per_arm() {
        let ch = Channel::with_wakeup(8);
        let fd = ch.wakeup_fd().expect("eventfd");
        let mut r = PacketBuf::new();

        // Not armed: the producer does not touch the eventfd.
        punt(&ch, b"one");
        assert!(!readable(fd), "written without an armed consumer");
        assert!(!ch.prepare_wait(), "a packet waits: do not block");
        ch.finish_wait();
        assert!(ch.recv_swap(&mut r));
        assert!(!readable(fd));

        // Armed: the first burst wakes the consumer, later ones do not write again.
        assert!(ch.prepare_wait());
        assert!(!readable(fd));
        punt(&ch, b"two");
        assert!(readable(fd), "armed consumer not woken");
        punt(&ch, b"three");
        let mut v = [0u8; 8];
        assert_eq!((&ch.wakeup.as_ref().unwrap().fd).read(&mut v).unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(v), 1, "one write per arm");
        assert!(!readable(fd));

        // After waking, the consumer clears the eventfd and the next wait blocks again.
        assert!(!ch.prepare_wait(), "two packets wait");
        ch.finish_wait();
        assert!(!readable(fd));
        while ch.recv_swap(&mut r) {}
        assert!(ch.prepare_wait());
        punt(&ch, b"four");
        assert!(readable(fd));
        ch.finish_wait();
        assert!(!readable(fd), "finish_wait clears the eventfd");
    }

    #[test]
    fn channel_without_wakeup_never_blocks_its_consumer_on_data() {
        let ch = Channel::new(2);
        assert_eq!(ch.wakeup_fd(), None);
        assert!(ch.prepare_wait());
        punt(&ch, b"x");
        assert!(!ch.prepare_wait());
        ch.finish_wait();
    }
}
