//! Packet I/O: one burst trait, several backends, and middleware over the same trait.
//!
//! Contract (every backend honours it, every worker relies on it):
//! - `rx_burst` never blocks. It writes up to `bufs.len()` packets into the front of
//!   `bufs` (via `PacketBuf::rx_space` + `set_len`, or by exchanging buffers) and returns
//!   how many; `Ok(0)` when nothing is waiting.
//! - `tx_burst` never blocks. It sends packets from the front of `bufs` and returns how
//!   many it took; the caller counts the rest as `drop_tx_fail`. After the call the first
//!   `n` buffers hold unspecified data (a backend may exchange them for other buffers of
//!   the same size) and are reset by the caller before reuse.
//! - Neither allocates nor locks, and a backend makes at most a small constant number of
//!   syscalls per burst, never one per packet where the kernel offers batching.
//! - What the bytes are depends on `layer()`.
//! - `wait_fds` names the descriptors that poll(2) reports readable whenever `rx_burst`
//!   has something to return, so an idle worker can sleep until a packet arrives; a port
//!   that cannot be waited on says so and its worker naps briefly between polls instead.

pub mod afpacket;
pub mod flows;
pub mod mem;
pub mod null;
pub mod pcap;
pub mod sys;
pub mod traffic;
pub mod tun;
pub mod udp;

use crate::buf::PacketBuf;
use crate::channel::Channel;
use shared::counters::LocalCounters;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// What a port's packets contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Whole Ethernet frames (afpacket, or mem rings emulating a wire). The worker parses
    /// and builds Ethernet, IP and UDP headers itself.
    Ethernet,
    /// Bare IP packets (tun, or the clear side of mem rings and the traffic generator).
    Ip,
    /// UDP payloads; `Meta::src`/`Meta::dst` carry the outer addresses and the kernel
    /// builds IP and UDP headers (the unprivileged `udp` backend).
    Datagram,
}

/// A packet port.
pub trait BurstIo: Send {
    /// What the packets of this port contain.
    fn layer(&self) -> Layer;

    /// Receives up to `bufs.len()` packets. Never blocks.
    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize>;

    /// Transmits packets from the front of `bufs`; returns how many were taken.
    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize>;

    /// Short name for logs and reports (`udp`, `afpacket:veth0`, ...).
    fn name(&self) -> &str;

    /// Appends the descriptors an idle worker can block on: each becomes readable
    /// (POLLIN) when `rx_burst` has packets to return. Returns false if the port cannot
    /// be waited on (packets arrive without a descriptor: `mem`, the traffic generator).
    /// Asked once, when the worker starts.
    fn wait_fds(&self, _out: &mut Vec<RawFd>) -> bool {
        false
    }

    /// Adds what the port counted itself since the last call (datagrams it dropped or
    /// punted on its own) to the worker's counters. Called once per burst; cheap when
    /// there is nothing to add.
    #[inline]
    fn take_counts(&mut self, _cnt: &mut LocalCounters) {}

    /// Gives the port the control plane's queue for IKE datagrams longer than a packet
    /// buffer (large buffers; the datagram after the RFC 3948 non-ESP marker). Ports that
    /// never see datagrams longer than `MAX_FRAME` ignore it.
    fn attach_large_punt(&mut self, _queue: Arc<Channel>) {}
}

impl<T: BurstIo + ?Sized> BurstIo for Box<T> {
    fn layer(&self) -> Layer {
        (**self).layer()
    }
    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        (**self).rx_burst(bufs)
    }
    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        (**self).tx_burst(bufs)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn wait_fds(&self, out: &mut Vec<RawFd>) -> bool {
        (**self).wait_fds(out)
    }
    #[inline]
    fn take_counts(&mut self, cnt: &mut LocalCounters) {
        (**self).take_counts(cnt)
    }
    fn attach_large_punt(&mut self, queue: Arc<Channel>) {
        (**self).attach_large_punt(queue)
    }
}
