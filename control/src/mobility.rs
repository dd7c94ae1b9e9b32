//! MOBIKE's triggers in the engine: the host's addresses (an address added or
//! removed, a link down) handed to the endpoint, after the configured debounce, and
//! the client's rotation policy (`mobikeiplifetime`, `mobikechangeaddrtype`) run per
//! IKE SA we initiated (RFC 4555 3.5: the initiator decides which addresses to use).
//!
//! Rotations wait in a heap by due time: a turn looks only at what is due, never at
//! every rotating SA. Heap entries are not removed when an SA goes or is rearmed; an
//! entry whose time no longer matches its SA's is skipped when it comes up.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use crate::ike::mobike_policy::{Rotation, RotationPolicy};
use crate::ike::sa::{Endpoint, Event, SaId};
use tracing::{debug, info};

const NS_PER_MS: u64 = 1_000_000;

/// One rotating IKE SA.
struct Rotating {
    conn: usize,
    policy: RotationPolicy,
    when: Rotation,
}

crate::named_counters! {
/// What the MOBIKE triggers did (reported by `mobiked ctl stats`).
pub struct MobilityCounters {
    /// Rotations started (an UPDATE_SA_ADDRESSES to the next address pair).
    rotations => "mobike_rotations",
    /// Rotations due with no other usable address pair.
    rotations_stuck => "mobike_rotations_stuck",
}
}

#[derive(Default)]
pub struct Mobility {
    rotating: HashMap<SaId, Rotating>,
    /// Rotation due times (see the module documentation).
    due: BinaryHeap<Reverse<(u64, SaId)>>,
    /// An address set waiting for its debounce to pass.
    pending: Option<(u64, Vec<IpAddr>)>,
    /// The longest `mobikedebounce` of the connections.
    debounce_ns: u64,
    pub counters: MobilityCounters,
    /// Rotations started (when, SA, due time), kept only for an observing engine.
    started: Option<std::collections::VecDeque<(u64, SaId, u64)>>,
}

impl Mobility {
    pub fn new(ep: &Endpoint) -> Self {
        let debounce_ms = ep
            .conns()
            .iter()
            .map(|c| c.mobike.debounce_ms)
            .max()
            .unwrap_or(0);
        Mobility {
            debounce_ns: debounce_ms * NS_PER_MS,
            ..Mobility::default()
        }
    }

    /// Keeps each rotation's start and due time for [`Self::poll_started`].
    pub fn observe(&mut self) {
        self.started.get_or_insert_with(Default::default);
    }

    /// The next rotation started: (when, SA, its due time).
    pub fn poll_started(&mut self) -> Option<(u64, SaId, u64)> {
        self.started.as_mut()?.pop_front()
    }

    /// The host's usable addresses changed: the endpoint hears of it now, or once
    /// the debounce has passed without another change.
    pub fn addresses(&mut self, ep: &mut Endpoint, now: u64, addrs: Vec<IpAddr>) {
        info!(addrs = ?addrs, "own addresses changed");
        if self.debounce_ns == 0 {
            ep.set_own_addrs(now, &addrs);
        } else {
            self.pending = Some((now + self.debounce_ns, addrs));
        }
    }

    /// Follows the IKE SAs: an SA we initiated with MOBIKE on and a rotation
    /// lifetime starts rotating; a rekey carries it over; the end stops it.
    pub fn on_event(&mut self, ep: &Endpoint, now: u64, ev: &Event) {
        match ev {
            Event::IkeUp {
                sa,
                conn,
                initiator: true,
                ..
            } => {
                let Some(c) = ep.conns().get(*conn) else {
                    return;
                };
                let life = c.mobike.ip_lifetime_ms * NS_PER_MS;
                if life == 0 || !ep.mobike(*sa) {
                    return;
                }
                // The SPI is random: the first moves of SAs set up together spread
                // evenly over one lifetime.
                let when = if c.mobike.ip_spread {
                    Rotation::spread(now, life, *sa)
                } else {
                    Rotation::new(now, life)
                };
                self.arm(*sa, &when);
                self.rotating.insert(
                    *sa,
                    Rotating {
                        conn: *conn,
                        policy: RotationPolicy::new(c.mobike.change_type),
                        when,
                    },
                );
            }
            Event::IkeRekeyed { old, new } => {
                if let Some(r) = self.rotating.remove(old) {
                    self.arm(*new, &r.when);
                    self.rotating.insert(*new, r);
                }
            }
            Event::IkeDown { sa, .. } => {
                self.rotating.remove(sa);
            }
            _ => {}
        }
    }

    fn arm(&mut self, sa: SaId, when: &Rotation) {
        if when.next_at != u64::MAX {
            self.due.push(Reverse((when.next_at, sa)));
        }
    }

    /// Runs what is due: a debounced address set, rotations.
    pub fn poll(&mut self, ep: &mut Endpoint, now: u64) {
        if let Some((_, addrs)) = self.pending.take_if(|(t, _)| *t <= now) {
            ep.set_own_addrs(now, &addrs);
        }
        while let Some(&Reverse((t, sa))) = self.due.peek() {
            if t > now {
                break;
            }
            self.due.pop();
            let Some(r) = self.rotating.get_mut(&sa) else {
                continue;
            };
            if r.when.next_at != t || !r.when.due(now) {
                continue;
            }
            let life = ep
                .conns()
                .get(r.conn)
                .map_or(0, |c| c.mobike.ip_lifetime_ms * NS_PER_MS);
            r.when.rearm(now, life);
            if r.when.next_at != u64::MAX {
                self.due.push(Reverse((r.when.next_at, sa)));
            }
            let Some((local, remote, _)) = ep.path(sa) else {
                continue;
            };
            let own: Vec<IpAddr> = match ep.conns().get(r.conn) {
                Some(c) if !c.local_addrs.is_empty() => c
                    .local_addrs
                    .iter()
                    .map(|a| a.ip())
                    .filter(|a| ep.own_addrs().contains(a))
                    .collect(),
                _ => ep.own_addrs().to_vec(),
            };
            let peer = ep.peer_addrs(sa);
            match r.policy.next_pair(&own, &peer, (local.ip(), remote.ip())) {
                Some((o, p)) if ep.migrate(now, sa, o, p) => {
                    self.counters.rotations += 1;
                    if let Some(q) = self.started.as_mut().filter(|q| q.len() < 1 << 20) {
                        q.push_back((now, sa, t));
                    }
                    debug!(sa = format_args!("{sa:016x}"), local = %o, remote = %p, "rotating");
                }
                _ => self.counters.rotations_stuck += 1,
            }
        }
    }

    /// The earliest deadline, for the loop's wait.
    pub fn next_deadline(&self) -> Option<u64> {
        let rot = self.due.peek().map(|Reverse((t, _))| *t);
        [rot, self.pending.as_ref().map(|(t, _)| *t)]
            .into_iter()
            .flatten()
            .min()
    }
}
