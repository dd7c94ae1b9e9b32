//! In-process rings: a full-duplex "wire" between two ports for tests, the lab and
//! benchmarks.
//!
//! Zero copy and allocation-free after `pair`: every buffer that ever travels the link is
//! allocated at creation. Each direction owns `capacity` buffers, split between a data
//! queue (packets in flight) and a spare queue (empty buffers the sender may take).
//! Transmitting exchanges the caller's full buffer for a spare; receiving exchanges the
//! caller's buffer for a queued one and hands the caller's old buffer back to the sender
//! as a spare. The number of buffers in each direction is therefore constant, the data
//! queue can never overflow, and a sender that outruns its receiver runs out of spares and
//! sees a short `tx_burst` (the caller counts the rest as drops).

use crate::buf::{PacketBuf, MAX_FRAME};
use crate::io::{BurstIo, Layer};
use crossbeam_queue::ArrayQueue;
use std::io;
use std::sync::Arc;

/// One direction of the link.
struct Ring {
    /// Packets in flight, in transmit order.
    data: ArrayQueue<PacketBuf>,
    /// Empty buffers the sending side exchanges its full ones for.
    spare: ArrayQueue<PacketBuf>,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        let spare = ArrayQueue::new(capacity);
        for b in PacketBuf::alloc(capacity) {
            // Cannot fail: exactly `capacity` buffers into a queue of that capacity.
            let _ = spare.push(b);
        }
        Ring {
            data: ArrayQueue::new(capacity),
            spare,
        }
    }
}

/// One end of an in-process link made by [`pair`].
pub struct MemPort {
    tx: Arc<Ring>,
    rx: Arc<Ring>,
    layer: Layer,
    name: &'static str,
}

/// Creates a full-duplex link of `capacity` packets in each direction: what one port
/// transmits, the other receives, in order. `capacity` is raised to at least 1.
pub fn pair(capacity: usize, layer: Layer) -> (MemPort, MemPort) {
    let capacity = capacity.max(1);
    let ab = Arc::new(Ring::new(capacity));
    let ba = Arc::new(Ring::new(capacity));
    let a = MemPort {
        tx: Arc::clone(&ab),
        rx: Arc::clone(&ba),
        layer,
        name: "mem:a",
    };
    let b = MemPort {
        tx: ba,
        rx: ab,
        layer,
        name: "mem:b",
    };
    (a, b)
}

impl MemPort {
    /// Packets waiting for this port to receive them.
    pub fn pending(&self) -> usize {
        self.rx.data.len()
    }

    /// Packets this port could transmit right now (its spare buffers).
    pub fn tx_room(&self) -> usize {
        self.tx.spare.len()
    }

    /// Buffers each direction of the link owns.
    pub fn capacity(&self) -> usize {
        self.tx.spare.capacity()
    }
}

impl BurstIo for MemPort {
    fn layer(&self) -> Layer {
        self.layer
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut n = 0;
        for slot in bufs.iter_mut() {
            let Some(mut pkt) = self.rx.data.pop() else {
                break;
            };
            // The slot's bookkeeping belongs to the receiver: the port never changes `tag`
            // and `origin` names the worker that owns this slot.
            pkt.meta.origin = slot.meta.origin;
            pkt.meta.tag = slot.meta.tag;
            std::mem::swap(slot, &mut pkt);
            pkt.reset();
            // Cannot fail: data + spare never hold more than the ring's `capacity` buffers.
            let _ = self.rx.spare.push(pkt);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut n = 0;
        for slot in bufs.iter_mut() {
            if slot.frame_capacity() != MAX_FRAME {
                // A large buffer exchanged for a spare would leave its owner (a queue of
                // large buffers) with a standard one: not taken.
                break;
            }
            let Some(mut spare) = self.tx.spare.pop() else {
                break;
            };
            std::mem::swap(slot, &mut spare);
            // `spare` now holds the packet.
            if let Err(mut pkt) = self.tx.data.push(spare) {
                // Unreachable while the buffer count is conserved; undo rather than lose
                // a buffer if it ever happens.
                std::mem::swap(slot, &mut pkt);
                let _ = self.tx.spare.push(pkt);
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    fn name(&self) -> &str {
        self.name
    }
}
