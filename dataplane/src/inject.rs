//! IKE from the control plane onto the NAT-T port: RFC 3948 2.2 puts IKE, ESP-in-UDP
//! and keepalives on one port, which the dataplane owns, so the control plane hands its
//! IKE messages for that port to a worker (with the non-ESP marker put in front) to
//! send. The worker is chosen by the message's path, so a path's IKE and ESP leave
//! from one worker with one link header.
//!
//! Messages wait here, in order, while the workers' inject queues are full (a burst of
//! IKE_AUTH exchanges can outrun one worker's burst); beyond `backlog_max` new ones are
//! dropped and counted (IKE's retransmissions recover them).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::buf::{PacketBuf, LARGE_FRAME, MAX_FRAME};
use crate::fabric::Fabric;
use crate::natt::NON_ESP_MARKER;

struct Pending {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
    tag: u32,
}

/// The control plane's queue of IKE messages into the workers' inject channels.
pub struct Injector {
    scratch: PacketBuf,
    /// For messages longer than a packet buffer (the workers' large inject queues).
    scratch_large: PacketBuf,
    backlog: VecDeque<Pending>,
    backlog_max: usize,
    /// Workers whose inject queues got something since they were last notified.
    notify: Vec<bool>,
    /// Messages dropped: backlog full, no inject queue, or too long for a buffer.
    pub dropped: u64,
}

impl Injector {
    /// An injector for `workers` workers holding at most `backlog_max` waiting messages.
    pub fn new(workers: usize, backlog_max: usize) -> Injector {
        Injector {
            scratch: PacketBuf::new(),
            scratch_large: PacketBuf::with_frame(LARGE_FRAME),
            backlog: VecDeque::new(),
            backlog_max,
            notify: vec![false; workers],
            dropped: 0,
        }
    }

    /// Whether messages wait for room (the caller looks again soon).
    pub fn is_empty(&self) -> bool {
        self.backlog.is_empty()
    }

    /// Queues an IKE message `local -> remote` (without the marker) for the worker of
    /// path `tag`, then moves what it can into the inject channels.
    pub fn send(
        &mut self,
        fabric: &Fabric,
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
        tag: u32,
    ) {
        if self.backlog.len() >= self.backlog_max {
            self.dropped += 1;
            return;
        }
        self.backlog.push_back(Pending {
            local,
            remote,
            data,
            tag,
        });
        self.flush(fabric);
    }

    /// Moves queued messages into the workers' inject channels while there is room
    /// (messages longer than a packet buffer into the large ones), then wakes the
    /// workers that got something: once per worker and flush, a syscall only for a
    /// worker that sleeps.
    pub fn flush(&mut self, fabric: &Fabric) {
        let workers = fabric.inject.len().max(1);
        while let Some(p) = self.backlog.front() {
            let w = p.tag as usize % workers;
            let large = NON_ESP_MARKER.len() + p.data.len() > MAX_FRAME;
            let (queue, b) = if large {
                (fabric.inject_large.get(w), &mut self.scratch_large)
            } else {
                (fabric.inject.get(w), &mut self.scratch)
            };
            let Some(ch) = queue else {
                self.dropped += 1;
                self.backlog.pop_front();
                continue;
            };
            let fits = b.fill(&NON_ESP_MARKER)
                && match b.push_back(p.data.len()) {
                    Some(room) => {
                        room.copy_from_slice(&p.data);
                        true
                    }
                    None => false,
                };
            if !fits {
                self.dropped += 1;
                b.reset();
                self.backlog.pop_front();
                continue;
            }
            b.meta.src = p.local;
            b.meta.dst = p.remote;
            b.meta.tag = p.tag;
            if !ch.send_swap(b) {
                // Full: the worker drains it in its next burst; try again later.
                b.reset();
                break;
            }
            if let Some(n) = self.notify.get_mut(w) {
                *n = true;
            }
            self.backlog.pop_front();
        }
        for (w, n) in self.notify.iter_mut().enumerate() {
            if std::mem::take(n) {
                if let Some(ch) = fabric.inject.get(w) {
                    ch.notify();
                }
            }
        }
    }
}
