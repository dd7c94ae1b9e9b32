//! What a benchmark or the lab watches in an engine: the IKE core's events that
//! matter for timing tunnels and handovers, each with the time the engine handled
//! it. Off unless asked for ([`super::Engine::observe`]): a gateway in service keeps
//! no such queue.
//!
//! The handover timeline of RFC 4555 3.5 as the initiator sees it: a trigger (an
//! address gone, the rotation policy's due time, an operator's move), then
//! UPDATE_SA_ADDRESSES sent ([`Observation::UpdateSent`]), then its answer
//! ([`Observation::UpdateAnswered`]) moves the SAs ([`Observation::PathChanged`],
//! published in the same turn; with break-before-make the move was made when the update
//! left, and the answer only confirms it); the workers report
//! the first packet with the new header (`WorkerEvent::PathOnWire`, by path id).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use shared::path::PathId;

use crate::ike::sa::{ConnId, Event, SaId};
use crate::installer::Installer;

/// Queued observations beyond this many are dropped (and counted): a caller that
/// stops draining must not grow the engine without bound.
pub const MAX_QUEUED: usize = 1 << 20;

/// One observed event; `at` is the engine's `now` when it handled it (ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// An IKE SA is established: `setup_ns` from its first IKE_SA_INIT to the end of
    /// IKE_AUTH; `vip` our virtual IP (client) or the one leased to the peer
    /// (gateway).
    IkeUp {
        at: u64,
        sa: SaId,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        vip: Option<IpAddr>,
        setup_ns: u64,
        path: Option<PathId>,
    },
    /// A child SA is installed: the first address of each side's selectors (the
    /// narrowed ones, so a client's virtual IP is `local`).
    ChildUp {
        at: u64,
        sa: SaId,
        spi_in: u32,
        spi_out: u32,
        local: Option<IpAddr>,
        remote: Option<IpAddr>,
        rekey: bool,
    },
    /// The IKE SA `old` was rekeyed into `new` (its path stays).
    IkeRekeyed {
        at: u64,
        old: SaId,
        new: SaId,
    },
    /// The rotation policy moved `sa`: its due time and when it ran.
    RotationStarted {
        at: u64,
        sa: SaId,
        due: u64,
    },
    UpdateSent {
        at: u64,
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The responder accepted the update for this pair.
    UpdateAnswered {
        at: u64,
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The SA's traffic moved to this pair, published in the turn that handled it.
    PathChanged {
        at: u64,
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
        path: Option<PathId>,
    },
    IkeDown {
        at: u64,
        sa: SaId,
    },
}

/// The queue an observing engine fills.
#[derive(Default)]
pub struct Observer {
    queue: VecDeque<Observation>,
    /// Observations dropped because the queue was full.
    pub dropped: u64,
}

impl Observer {
    pub(super) fn push(&mut self, o: Observation) {
        if self.queue.len() >= MAX_QUEUED {
            self.dropped += 1;
        } else {
            self.queue.push_back(o);
        }
    }

    pub(super) fn pop(&mut self) -> Option<Observation> {
        self.queue.pop_front()
    }

    /// After the installer has taken `ev` (so a new IKE SA has its path).
    pub(super) fn event(&mut self, now: u64, ev: &Event, inst: &Installer) {
        let at = now;
        let o = match ev {
            Event::IkeUp {
                sa,
                conn,
                local,
                remote,
                vip,
                setup_ns,
                ..
            } => Observation::IkeUp {
                at,
                sa: *sa,
                conn: *conn,
                local: *local,
                remote: *remote,
                vip: *vip,
                setup_ns: *setup_ns,
                path: inst.path_of(*sa),
            },
            Event::ChildUp { sa, child } => Observation::ChildUp {
                at,
                sa: *sa,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
                local: child.local_ts.first().map(|s| s.start),
                remote: child.remote_ts.first().map(|s| s.start),
                rekey: child.replaces.is_some(),
            },
            Event::IkeRekeyed { old, new } => Observation::IkeRekeyed {
                at,
                old: *old,
                new: *new,
            },
            Event::UpdateSent { sa, local, remote } => Observation::UpdateSent {
                at,
                sa: *sa,
                local: *local,
                remote: *remote,
            },
            Event::UpdateAnswered { sa, local, remote } => Observation::UpdateAnswered {
                at,
                sa: *sa,
                local: *local,
                remote: *remote,
            },
            Event::PathChanged {
                sa, local, remote, ..
            } => Observation::PathChanged {
                at,
                sa: *sa,
                local: *local,
                remote: *remote,
                path: inst.path_of(*sa),
            },
            Event::IkeDown { sa, .. } => Observation::IkeDown { at, sa: *sa },
            Event::ChildDown { .. } | Event::ChildFailed { .. } => return,
        };
        self.push(o);
    }
}
