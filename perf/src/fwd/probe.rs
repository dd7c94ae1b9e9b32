//! The probe around the worker's clear port: polls and empty polls, the time of
//! iterations that started with packets, the worker thread's CPU time, and the first
//! packet in hand after a path publication.

use super::topology::renice;
use dataplane::io::{BurstIo, Layer};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts the worker's clear-port polls (the worker polls each port once per iteration).
/// Also measures the time of iterations that started with a non-empty clear poll.
pub(super) struct Probe<P> {
    inner: P,
    polls: u64,
    empty: u64,
    busy_ns: u64,
    prev_ns: u64,
    prev_nonempty: bool,
    nice: i32,
    shared: Arc<ProbeShared>,
}

impl<P> Probe<P> {
    pub(super) fn new(inner: P, shared: Arc<ProbeShared>, nice: i32) -> Probe<P> {
        Probe {
            inner,
            nice,
            polls: 0,
            empty: 0,
            busy_ns: 0,
            prev_ns: 0,
            prev_nonempty: false,
            shared,
        }
    }
}

#[derive(Default)]
pub(super) struct ProbeShared {
    pub(super) polls: AtomicU64,
    pub(super) empty: AtomicU64,
    pub(super) busy_ns: AtomicU64,
    /// The worker thread's id, for its schedstat.
    pub(super) tid: AtomicU64,
    /// Set by the publisher just before a publication; the first non-empty clear poll
    /// that ends after it stores its end time in `first_rx_ns` and clears it: how long
    /// after a publication the worker had a packet in hand at all.
    pub(super) pending_ns: AtomicU64,
    pub(super) first_rx_ns: AtomicU64,
}

/// Nanoseconds thread `tid` of this process has run on a CPU.
pub(super) fn thread_cpu_ns(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl<P: BurstIo> BurstIo for Probe<P> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }
    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if self.polls == 0 {
            // SAFETY: gettid has no preconditions (once, on the first poll).
            let tid = unsafe { libc::gettid() };
            self.shared.tid.store(tid as u64, Ordering::Relaxed);
            renice(self.nice);
        }
        let t = now_ns();
        if self.prev_nonempty {
            self.busy_ns += t.saturating_sub(self.prev_ns);
        }
        self.prev_ns = t;
        let r = self.inner.rx_burst(bufs);
        let n = *r.as_ref().unwrap_or(&0);
        if n > 0 {
            let pending = self.shared.pending_ns.load(Ordering::Acquire);
            if pending != 0 {
                let end = now_ns();
                if end >= pending {
                    self.shared.first_rx_ns.store(end, Ordering::Relaxed);
                    self.shared.pending_ns.store(0, Ordering::Relaxed);
                }
            }
        }
        self.prev_nonempty = n > 0;
        self.polls += 1;
        self.empty += u64::from(n == 0);
        self.shared.polls.store(self.polls, Ordering::Relaxed);
        self.shared.empty.store(self.empty, Ordering::Relaxed);
        self.shared.busy_ns.store(self.busy_ns, Ordering::Relaxed);
        r
    }
    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        self.inner.tx_burst(bufs)
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}
