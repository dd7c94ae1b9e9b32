//! What the workers and the control plane share: the queues between them, the counters,
//! the worker events and the stop flag.
//!
//! Queues (all [`Channel`]s, lock-free, buffers allocated here once):
//! - `punt`: IKE from the workers to the control plane (RFC 3948 non-ESP marker on the
//!   NAT-T port), of [`FabricConfig::punt_queue`] buffers allocated once: sized by the
//!   burst of IKE the control plane may leave in it during one turn of its loop, not by
//!   the number of SAs; what does not fit is dropped and counted (`drop_punt_full`).
//! - `punt_large`: the same for IKE datagrams longer than a packet buffer, a handful of
//!   [`LARGE_FRAME`] buffers that the `udp` port fills itself.
//! - `inject` / `inject_large` per worker: IKE the control plane sends from the NAT-T port.
//! - `handoff` per worker: packets of SAs another worker owns.
//!
//! Wakeups: the control plane sleeps in poll(2) on the two punt queues' eventfds. A worker
//! that may sleep (`sleeping_workers`) has one eventfd for its three inbound queues; the
//! producers of those queues call `notify` once per burst that queued something, which
//! writes only if the worker announced a sleep. Busy workers get no wakeup, and their
//! producers' `notify` returns at once.

use crate::buf::LARGE_FRAME;
use crate::channel::{Channel, Wakeup};
use crossbeam_queue::ArrayQueue;
use shared::counters::CounterSet;
use shared::path::PathId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Punt queue entries at least (the size before it followed the configuration).
pub const PUNT_QUEUE_MIN: usize = 1024;
/// Large punt buffers (IKE datagrams longer than `MAX_FRAME`, each up to `LARGE_FRAME`).
pub const PUNT_LARGE_BUFFERS: usize = 8;
/// Large inject buffers per worker.
pub const INJECT_LARGE_BUFFERS: usize = 4;
/// Inject queue entries per worker.
pub const INJECT_QUEUE: usize = 256;
/// Handoff queue entries per worker.
pub const HANDOFF_QUEUE: usize = 1024;

/// Sizes and options of a [`Fabric`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FabricConfig {
    pub workers: usize,
    /// Punt queue entries (each holds a packet buffer, about 2.2 KiB).
    pub punt_queue: usize,
    /// Whether workers may sleep in poll(2) when idle (`Idle::Adaptive`): their inbound
    /// queues then share a wakeup eventfd per worker.
    pub sleeping_workers: bool,
}

impl FabricConfig {
    /// `workers` workers that may sleep, and a punt queue of `PUNT_QUEUE_MIN`.
    pub fn new(workers: usize) -> FabricConfig {
        FabricConfig {
            workers,
            punt_queue: PUNT_QUEUE_MIN,
            sleeping_workers: true,
        }
    }
}

/// Something a worker tells the control plane (bounded queue; dropped when full).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerEvent {
    /// The first packet carrying a new path generation left through the port.
    PathOnWire {
        worker: u16,
        path: PathId,
        generation: u64,
        published_ns: u64,
        wire_ns: u64,
    },
    /// An authenticated ESP packet of an inbound SA arrived from a new outer source
    /// (the receiving side of a handover; observed only, never acted on: RFC 4555 3.8
    /// forbids following an address change that is not signalled).
    PeerMoved {
        worker: u16,
        spi: u32,
        from: std::net::SocketAddr,
        to: std::net::SocketAddr,
        rx_ns: u64,
    },
}

/// What all workers and the control plane share: queues, counters, the stop flag.
pub struct Fabric {
    pub counters: Arc<CounterSet>,
    /// IKE packets from workers to the control plane: the UDP payload after the non-ESP
    /// marker, with `meta.src` = peer and `meta.dst` = our address. Its wakeup fd lets
    /// the control plane sleep in poll(2) and still see IKE at once.
    pub punt: Channel,
    /// Like `punt`, for IKE datagrams longer than a packet buffer, in `LARGE_FRAME`
    /// buffers filled by the port that received them. Has its own wakeup fd.
    pub punt_large: Arc<Channel>,
    /// Per worker: UDP payloads the control plane wants sent on the cipher side
    /// (`meta.src` = our address, `meta.dst` = peer, `meta.tag` = the path whose link
    /// header to use on Ethernet-layer ports).
    pub inject: Box<[Channel]>,
    /// Per worker: the same for payloads longer than a packet buffer (`LARGE_FRAME`
    /// buffers).
    pub inject_large: Box<[Channel]>,
    /// Per worker: packets handed over by other workers.
    pub handoff: Box<[Channel]>,
    /// Per worker: the wakeup of its `inject`, `inject_large` and `handoff` queues (none
    /// when workers never sleep).
    pub wakeups: Box<[Option<Arc<Wakeup>>]>,
    pub events: ArrayQueue<WorkerEvent>,
    pub stop: AtomicBool,
}

impl Fabric {
    /// A fabric for `workers` workers that may sleep, with the smallest punt queue.
    pub fn new(workers: usize) -> Arc<Fabric> {
        Fabric::with_config(FabricConfig::new(workers))
    }

    pub fn with_config(cfg: FabricConfig) -> Arc<Fabric> {
        let workers = cfg.workers;
        let wakeups: Box<[Option<Arc<Wakeup>>]> = (0..workers)
            .map(|_| {
                cfg.sleeping_workers
                    .then(|| Wakeup::new().ok().map(Arc::new))
                    .flatten()
            })
            .collect();
        let woken = |w: usize, ch: Channel| ch.woken_by(wakeups[w].clone());
        let mut punt_large = Channel::with_buffers(PUNT_LARGE_BUFFERS, LARGE_FRAME);
        punt_large = punt_large.woken_by(Wakeup::new().ok().map(Arc::new));
        Arc::new(Fabric {
            counters: CounterSet::new(workers),
            punt: Channel::with_wakeup(cfg.punt_queue.max(1)),
            punt_large: Arc::new(punt_large),
            inject: (0..workers)
                .map(|w| woken(w, Channel::new(INJECT_QUEUE)))
                .collect(),
            inject_large: (0..workers)
                .map(|w| woken(w, Channel::with_buffers(INJECT_LARGE_BUFFERS, LARGE_FRAME)))
                .collect(),
            handoff: (0..workers)
                .map(|w| woken(w, Channel::new(HANDOFF_QUEUE)))
                .collect(),
            wakeups,
            events: ArrayQueue::new(4096),
            stop: AtomicBool::new(false),
        })
    }

    pub fn workers(&self) -> usize {
        self.handoff.len()
    }

    /// Asks every worker to finish its current burst and return; sleeping workers are
    /// woken.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.wakeups.iter().flatten() {
            w.wake();
        }
    }
}
