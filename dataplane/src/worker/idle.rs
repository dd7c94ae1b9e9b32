//! What an idle worker does: after `SPIN_BEFORE_SLEEP` empty polls, an adaptive worker
//! goes offline for QSBR and blocks in poll(2) on its ports' descriptors and its wakeup
//! eventfd (written by the control plane and the other workers when they queue something
//! for it while it sleeps, see `channel`), with a timeout that covers its housekeeping.
//! A packet on a port ends the sleep at once, which is why it polls the descriptors and
//! does not just sleep for a while. Ports without descriptors (`mem`, the traffic
//! generator) keep the short nap between polls. Busy workers never sleep; nothing on their
//! packet path knows about any of this.

use super::housekeeping::Housekeeping;
use super::Idle;
use crate::channel::Wakeup;
use crate::fabric::Fabric;
use crate::io::{sys, BurstIo};
use shared::clock::now_ns;
use shared::table::TableReader;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Empty polls before an adaptive worker starts sleeping: about 100 µs of spinning with the
/// `udp` backend. Longer spins kept the workers of a lightly loaded machine on the CPU
/// between packets of a 1000 pps stream and delayed the IKE thread sharing their cores;
/// `poll: busy` is the mode for cores dedicated to the workers.
pub(super) const SPIN_BEFORE_SLEEP: u32 = 64;
/// The nap between empty polls of a worker whose ports cannot be waited on.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// What one `Worker::idle_wait` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleWait {
    /// `Idle::Busy`: returned at once.
    Spin,
    /// Napped `IDLE_SLEEP` (ports without descriptors, or no wakeup).
    Nap,
    /// Something was queued for the worker, or it was asked to stop: did not block.
    Skipped,
    /// Blocked in poll(2) until a port or the wakeup became readable.
    Woken,
    /// Blocked in poll(2) until the timeout (housekeeping).
    TimedOut,
}

/// What an idle worker does after `SPIN_BEFORE_SLEEP` empty polls.
pub(super) enum Sleep {
    /// `Idle::Busy`: keep spinning.
    Never,
    /// A port without descriptors, or no wakeup for this worker: nap `IDLE_SLEEP`.
    Nap,
    /// poll(2) on the ports' descriptors and the worker's wakeup (the last entry).
    Poll {
        fds: Vec<libc::pollfd>,
        wakeup: Arc<Wakeup>,
    },
}

impl Sleep {
    pub(super) fn new<C: BurstIo, L: BurstIo>(
        idle: Idle,
        cipher: &C,
        clear: &L,
        wakeup: Option<Arc<Wakeup>>,
    ) -> Sleep {
        if idle == Idle::Busy {
            return Sleep::Never;
        }
        let mut raw = Vec::new();
        let waitable = cipher.wait_fds(&mut raw) & clear.wait_fds(&mut raw);
        match wakeup {
            Some(wakeup) if waitable => {
                raw.push(wakeup.fd());
                let fds = raw
                    .into_iter()
                    .map(|fd| libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                Sleep::Poll { fds, wakeup }
            }
            _ => Sleep::Nap,
        }
    }

    /// One wait of worker `me` (see the module doc).
    pub(super) fn wait(
        &mut self,
        reader: &mut TableReader,
        fabric: &Fabric,
        housekeeping: &Housekeeping,
        me: usize,
    ) -> IdleWait {
        match self {
            Sleep::Never => IdleWait::Spin,
            Sleep::Nap => {
                std::thread::sleep(IDLE_SLEEP);
                IdleWait::Nap
            }
            Sleep::Poll { fds, wakeup } => {
                let timeout = housekeeping.wait_ms(now_ns());
                reader.offline();
                wakeup.arm();
                // After arming: anything queued from now on writes the eventfd.
                let queued = [&fabric.handoff, &fabric.inject, &fabric.inject_large]
                    .iter()
                    .any(|q| q.get(me).is_some_and(|c| !c.is_empty()));
                for p in fds.iter_mut() {
                    p.revents = 0;
                }
                let result = if queued || fabric.stop.load(Ordering::SeqCst) {
                    IdleWait::Skipped
                } else {
                    match sys::poll(fds, timeout) {
                        Ok(n) if n > 0 => IdleWait::Woken,
                        _ => IdleWait::TimedOut,
                    }
                };
                let woken = fds.last().is_some_and(|p| p.revents & libc::POLLIN != 0);
                wakeup.disarm(woken);
                result
            }
        }
    }
}
