//! The timeline of every MOBIKE address change the rig watches (RFC 4555 3.5, the
//! initiator deciding), put together from the client engine's observations and both
//! ends' worker events, all on one clock (`shared::clock::now_ns`, CLOCK_MONOTONIC):
//!
//! ```text
//! trigger ──T_detect──> UPDATE_SA_ADDRESSES sent ──T_signal──> answered;
//! the SAs move at the answer (break-before-make: when the update left)
//!   ──T_publish──> table published ──> first packet with the new header on the wire
//!   (T_wire, from the move) ──> first packet from the new address at the peer
//!   (T_peer, from the trigger)
//! ```
//!
//! The trigger is the rotation policy's due time (`RotationStarted`), or one the rig
//! gives ([`Handovers::trigger`]: an address it removed, a link it took down). Sans-IO:
//! events in with their times, histograms out.

use std::collections::HashMap;
use std::net::SocketAddr;

use dataplane::worker::WorkerEvent;
use hdrhistogram::Histogram;
use mobiked_control::engine::Observation;
use shared::path::PathId;

type SaId = u64;

/// One address change in progress or done (times in ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    pub trigger: Option<u64>,
    pub update_sent: Option<u64>,
    pub answered: Option<u64>,
    /// When the SAs' path changed: at the answer, or when the update left
    /// (break-before-make).
    pub moved: Option<u64>,
    pub published: Option<u64>,
    pub wire: Option<u64>,
    pub peer_rx: Option<u64>,
    /// Our new address (what the peer sees packets come from).
    pub to: Option<SocketAddr>,
    /// The first new source the peer reported after the trigger, and when.
    pub seen: Option<(SocketAddr, u64)>,
}

/// The histograms, in nanoseconds.
pub struct Timings {
    pub detect: Histogram<u64>,
    pub signal: Histogram<u64>,
    pub publish: Histogram<u64>,
    pub wire: Histogram<u64>,
    pub peer: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            detect: histogram(),
            signal: histogram(),
            publish: histogram(),
            wire: histogram(),
            peer: histogram(),
        }
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct Handovers {
    open: HashMap<SaId, Handover>,
    path_sa: HashMap<PathId, SaId>,
    /// The client's outbound SPI (the gateway's inbound one) -> its IKE SA.
    spi_sa: HashMap<u32, SaId>,
    /// An IKE SA's entries in the two maps above (a rekey or the end touches only
    /// those).
    keys: HashMap<SaId, (Option<PathId>, Vec<u32>)>,
    pub timings: Timings,
    /// Address changes the responder accepted (T_signal recorded).
    pub completed: u64,
    /// Address changes started (an UPDATE_SA_ADDRESSES sent).
    pub started: u64,
    /// Rotations due that sent nothing before the next one (the SA was busy).
    pub superseded: u64,
}

fn record(h: &mut Histogram<u64>, from: Option<u64>, to: Option<u64>) {
    if let (Some(a), Some(b)) = (from, to) {
        h.saturating_record(b.saturating_sub(a).max(1));
    }
}

impl Handovers {
    /// The rig caused an address change of `sa` at `at` (the next UPDATE_SA_ADDRESSES
    /// belongs to it).
    pub fn trigger(&mut self, sa: SaId, at: u64) {
        self.start(sa, Some(at));
    }

    fn start(&mut self, sa: SaId, trigger: Option<u64>) {
        if let Some(old) = self.open.insert(
            sa,
            Handover {
                trigger,
                ..Handover::default()
            },
        ) {
            self.finish(&old);
        }
    }

    /// What a finished (or abandoned) record adds to the histograms that its
    /// successor cannot: the peer's first packet from the new address.
    fn finish(&mut self, h: &Handover) {
        if h.update_sent.is_none() {
            self.superseded += 1;
        }
    }

    /// An observation of the client's engine.
    pub fn observe(&mut self, o: &Observation) {
        match *o {
            Observation::IkeUp { sa, path, .. } => {
                if let Some(p) = path {
                    self.path_sa.insert(p, sa);
                }
                self.keys.entry(sa).or_default().0 = path;
            }
            Observation::ChildUp { sa, spi_out, .. } => {
                self.spi_sa.insert(spi_out, sa);
                self.keys.entry(sa).or_default().1.push(spi_out);
            }
            Observation::IkeRekeyed { old, new, .. } => {
                if let Some(h) = self.open.remove(&old) {
                    self.open.insert(new, h);
                }
                if let Some((path, spis)) = self.keys.remove(&old) {
                    if let Some(p) = path {
                        self.path_sa.insert(p, new);
                    }
                    for s in &spis {
                        self.spi_sa.insert(*s, new);
                    }
                    self.keys.insert(new, (path, spis));
                }
            }
            Observation::RotationStarted { sa, due, .. } => self.start(sa, Some(due)),
            Observation::UpdateSent { at, sa, .. } => {
                let h = self.open.entry(sa).or_default();
                if h.update_sent.is_some() {
                    // A new update of a change already signalled (a stale answer, a
                    // refused pair): the change goes on; its first send counts.
                    return;
                }
                h.update_sent = Some(at);
                self.started += 1;
                let h = *h;
                record(&mut self.timings.detect, h.trigger, h.update_sent);
            }
            Observation::UpdateAnswered { at, sa, local, .. } => {
                let Some(h) = self.open.get_mut(&sa) else {
                    return;
                };
                if h.update_sent.is_none() || h.answered.is_some() {
                    return;
                }
                h.answered = Some(at);
                h.to.get_or_insert(local);
                self.completed += 1;
                let h = *h;
                record(&mut self.timings.signal, h.update_sent, h.answered);
                self.settle(sa);
            }
            Observation::PathChanged { at, sa, local, .. } => {
                let Some(h) = self.open.get_mut(&sa) else {
                    return;
                };
                if h.update_sent.is_none() || h.moved.is_some() {
                    return;
                }
                h.moved = Some(at);
                h.to = Some(local);
                self.settle(sa);
            }
            Observation::IkeDown { sa, .. } => {
                if let Some(h) = self.open.remove(&sa) {
                    self.finish(&h);
                }
                if let Some((path, spis)) = self.keys.remove(&sa) {
                    if let Some(p) = path.filter(|p| self.path_sa.get(p) == Some(&sa)) {
                        self.path_sa.remove(&p);
                    }
                    for s in spis {
                        if self.spi_sa.get(&s) == Some(&sa) {
                            self.spi_sa.remove(&s);
                        }
                    }
                }
            }
        }
    }

    /// A worker event of the client (`PathOnWire`) or of the peer (`PeerMoved`).
    pub fn worker_event(&mut self, ev: &WorkerEvent) {
        match *ev {
            WorkerEvent::PathOnWire {
                path,
                published_ns,
                wire_ns,
                ..
            } => {
                let Some(sa) = self.path_sa.get(&path) else {
                    return;
                };
                let Some(h) = self.open.get_mut(sa) else {
                    return;
                };
                let Some(moved) = h.moved else {
                    return;
                };
                if h.wire.is_some() || published_ns < moved {
                    return;
                }
                h.published = Some(published_ns);
                h.wire = Some(wire_ns);
                let h = *h;
                record(&mut self.timings.publish, h.moved, h.published);
                record(&mut self.timings.wire, h.moved, h.wire);
            }
            WorkerEvent::PeerMoved { spi, to, rx_ns, .. } => {
                let Some(&sa) = self.spi_sa.get(&spi) else {
                    return;
                };
                let Some(h) = self.open.get_mut(&sa) else {
                    return;
                };
                // The peer's worker may report before our engine's observations of the
                // same change reach us (they travel separately): keep the first new
                // source seen after the trigger and match it once our new address is
                // known.
                if h.peer_rx.is_some() || h.trigger.is_some_and(|t| rx_ns < t) {
                    return;
                }
                if h.seen.is_none() || h.to == Some(to) {
                    h.seen = Some((to, rx_ns));
                }
                self.settle(sa);
            }
        }
    }

    /// Records the peer's first packet from our new address once both are known.
    fn settle(&mut self, sa: SaId) {
        let Some(h) = self.open.get_mut(&sa) else {
            return;
        };
        match (h.to, h.seen, h.peer_rx) {
            (Some(to), Some((from, rx)), None) if to == from => {
                h.peer_rx = Some(rx);
                let h = *h;
                record(&mut self.timings.peer, h.trigger, h.peer_rx);
            }
            _ => {}
        }
    }

    /// Address changes still waiting for their answer.
    pub fn in_progress(&self) -> usize {
        self.open
            .values()
            .filter(|h| h.update_sent.is_some() && h.answered.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_rotation_is_timed_from_its_due_time_to_the_peer() {
        let mut h = Handovers::default();
        let a = addr("127.64.0.2:4500");
        let g = addr("127.77.0.1:4500");
        h.observe(&Observation::IkeUp {
            at: 0,
            sa: 7,
            conn: 0,
            local: addr("127.64.0.1:4500"),
            remote: g,
            vip: None,
            setup_ns: MS,
            path: Some(3),
        });
        h.observe(&Observation::ChildUp {
            at: 0,
            sa: 7,
            spi_in: 0x10,
            spi_out: 0x20,
            local: None,
            remote: None,
            rekey: false,
        });
        h.observe(&Observation::RotationStarted {
            at: 100 * MS + 50_000,
            sa: 7,
            due: 100 * MS,
        });
        h.observe(&Observation::UpdateSent {
            at: 100 * MS + 60_000,
            sa: 7,
            local: a,
            remote: g,
        });
        // A second send of the same change does not restart it.
        h.observe(&Observation::UpdateSent {
            at: 101 * MS,
            sa: 7,
            local: a,
            remote: g,
        });
        h.observe(&Observation::UpdateAnswered {
            at: 100 * MS + 400_000,
            sa: 7,
            local: a,
            remote: g,
        });
        h.observe(&Observation::PathChanged {
            at: 100 * MS + 400_000,
            sa: 7,
            local: a,
            remote: g,
            path: Some(3),
        });
        // The peer's sighting of another source is not this change's.
        h.worker_event(&WorkerEvent::PeerMoved {
            worker: 0,
            spi: 0x20,
            from: addr("127.64.0.1:4500"),
            to: addr("127.64.0.9:4500"),
            rx_ns: 100 * MS + 450_000,
        });
        h.worker_event(&WorkerEvent::PathOnWire {
            worker: 0,
            path: 3,
            generation: 2,
            published_ns: 100 * MS + 420_000,
            wire_ns: 100 * MS + 500_000,
        });
        h.worker_event(&WorkerEvent::PeerMoved {
            worker: 0,
            spi: 0x20,
            from: addr("127.64.0.1:4500"),
            to: a,
            rx_ns: 100 * MS + 600_000,
        });
        let t = &h.timings;
        assert_eq!((h.started, h.completed), (1, 1));
        let close = |hist: &Histogram<u64>, ns: u64| {
            assert_eq!(hist.len(), 1);
            let v = hist.max();
            assert!(v.abs_diff(ns) <= ns / 500 + 1, "{v} vs {ns}");
        };
        close(&t.detect, 60_000);
        close(&t.signal, 340_000);
        close(&t.publish, 20_000);
        close(&t.wire, 100_000);
        close(&t.peer, 600_000);
        assert_eq!(h.in_progress(), 0);
    }

    #[test]
    fn a_rotation_that_sent_nothing_is_counted_and_rekeys_carry_changes() {
        let mut h = Handovers::default();
        h.observe(&Observation::RotationStarted {
            at: 1,
            sa: 1,
            due: 1,
        });
        h.observe(&Observation::RotationStarted {
            at: 2,
            sa: 1,
            due: 2,
        });
        assert_eq!(h.superseded, 1);
        h.observe(&Observation::UpdateSent {
            at: 3,
            sa: 1,
            local: addr("127.0.0.1:1"),
            remote: addr("127.0.0.2:1"),
        });
        assert_eq!(h.in_progress(), 1);
        h.observe(&Observation::IkeRekeyed {
            at: 4,
            old: 1,
            new: 2,
        });
        // Break-before-make: the SAs moved when the update left; the answer comes
        // after and is what T_signal ends at.
        h.observe(&Observation::PathChanged {
            at: 3,
            sa: 2,
            local: addr("127.0.0.1:1"),
            remote: addr("127.0.0.2:1"),
            path: None,
        });
        assert_eq!((h.completed, h.in_progress()), (0, 1));
        h.observe(&Observation::UpdateAnswered {
            at: 5,
            sa: 2,
            local: addr("127.0.0.1:1"),
            remote: addr("127.0.0.2:1"),
        });
        assert_eq!(h.completed, 1);
        assert_eq!(h.timings.signal.len(), 1);
        assert_eq!(h.timings.signal.max(), 2);
        // An answer or path change nobody asked for (the peer moved, NAT) is not a
        // handover.
        h.observe(&Observation::UpdateAnswered {
            at: 6,
            sa: 9,
            local: addr("127.0.0.1:1"),
            remote: addr("127.0.0.2:1"),
        });
        h.observe(&Observation::PathChanged {
            at: 6,
            sa: 9,
            local: addr("127.0.0.1:1"),
            remote: addr("127.0.0.2:1"),
            path: None,
        });
        assert_eq!(h.completed, 1);
    }

    #[test]
    fn the_peers_report_may_come_before_our_observations() {
        let mut h = Handovers::default();
        let new = addr("10.90.1.2:4500");
        h.observe(&Observation::ChildUp {
            at: 0,
            sa: 5,
            spi_in: 1,
            spi_out: 2,
            local: None,
            remote: None,
            rekey: false,
        });
        h.trigger(5, 1_000);
        // The gateway's worker saw the new source before the client's engine's events
        // of the same change reached the rig.
        h.worker_event(&WorkerEvent::PeerMoved {
            worker: 0,
            spi: 2,
            from: addr("10.90.0.2:4500"),
            to: new,
            rx_ns: 1_900,
        });
        h.observe(&Observation::UpdateSent {
            at: 1_100,
            sa: 5,
            local: new,
            remote: addr("10.90.1.1:4500"),
        });
        h.observe(&Observation::PathChanged {
            at: 1_100,
            sa: 5,
            local: new,
            remote: addr("10.90.1.1:4500"),
            path: None,
        });
        assert_eq!(h.timings.peer.len(), 1);
        assert_eq!(h.timings.peer.max(), 900);
        // A sighting before the trigger belongs to an earlier change.
        h.trigger(5, 5_000);
        h.worker_event(&WorkerEvent::PeerMoved {
            worker: 0,
            spi: 2,
            from: new,
            to: addr("10.90.0.2:4500"),
            rx_ns: 4_000,
        });
        assert!(h.open[&5].seen.is_none());
    }
}
