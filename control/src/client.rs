//! The client's connection driver, sans-IO: which connections to initiate when, and
//! what to do when a tunnel cannot be had.
//!
//! - A bounded setup window: at most `ike.setup_window` IKE SAs being set up at once
//!   (default [`MAX_INITIATING`]) and [`INITIATE_PER_TURN`] started per call, so that
//!   thousands of instances do not send IKE_SA_INIT in one burst (more would only
//!   queue in sockets and come back as retransmissions); and, when `ike.setup_rate`
//!   is set, at most that many started per second, evenly spaced (a load generator's
//!   setup rate).
//! - Retries with exponential backoff ([`RETRY_FIRST_NS`] doubling up to
//!   [`RETRY_MAX_NS`]) after a failed setup, a lost IKE SA, or an IKE SA left without
//!   any child SA: the gateway refused it (NO_ADDITIONAL_SAS when its dataplane is
//!   full, INTERNAL_ADDRESS_FAILURE when its pool is exhausted, RFC 7296 3.10.1,
//!   3.15.4), deleted it, or it expired. Such an IKE SA carries nothing, so it is
//!   deleted and the connection set up again later. The backoff resets only once a
//!   child SA is up: an IKE SA alone is no success.
//!
//! Connections wait in a heap by due time, so a turn costs O(started · log n), not
//! O(connections).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tracing::warn;

use crate::ike::conn::Conn;
use crate::ike::sa::{ConnId, DownReason, Endpoint, Event, FailReason, SaId};

/// First wait before initiating a connection again after a failure.
pub const RETRY_FIRST_NS: u64 = 1_000_000_000;
/// The longest wait between retries.
pub const RETRY_MAX_NS: u64 = 32_000_000_000;
/// Initiations started per call of [`Client::start_due`].
pub const INITIATE_PER_TURN: usize = 64;
/// IKE SAs being set up at once at most, unless `ike.setup_window` says otherwise.
pub const MAX_INITIATING: usize = 256;

/// How fast initiations start (`ike.setup_window`, `ike.setup_rate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// IKE SAs being set up at once at most.
    pub window: usize,
    /// Initiations per second at most; 0 = no limit.
    pub rate: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            window: MAX_INITIATING,
            rate: 0,
        }
    }
}

crate::named_counters! {
/// What the client counted (reported by `mobiked ctl stats`).
pub struct ClientCounters {
    /// Connections initiated (first attempts and retries).
    initiated => "client_initiated",
    /// Retries scheduled after a failure.
    retries => "client_retries",
    /// IKE SA setups that failed (no answer, authentication, no proposal...).
    setup_failed => "client_setup_failed",
    /// IKE SAs deleted because they were left without any child SA.
    childless => "client_childless_deleted",
}
}

/// Initiation state of the client's connections (see the module documentation).
pub struct Client {
    /// Per connection: whether it is due (then its time is in `due`) or active.
    active: Vec<bool>,
    backoff: Vec<u64>,
    /// Connections waiting to initiate, by due time.
    due: BinaryHeap<Reverse<(u64, ConnId)>>,
    by_sa: HashMap<SaId, ConnId>,
    pace: Pace,
    /// With a rate: the earliest time of the next initiation.
    next_slot: u64,
    pub counters: ClientCounters,
}

impl Client {
    /// Every connection with a peer address is due at `now`.
    pub fn new(conns: &[Conn], now: u64) -> Client {
        Client::paced(conns, now, Pace::default())
    }

    /// As [`Self::new`], started at `pace`.
    pub fn paced(conns: &[Conn], now: u64, pace: Pace) -> Client {
        let mut c = Client {
            active: vec![false; conns.len()],
            backoff: vec![RETRY_FIRST_NS; conns.len()],
            due: BinaryHeap::new(),
            by_sa: HashMap::new(),
            pace: Pace {
                window: pace.window.max(1),
                ..pace
            },
            next_slot: now,
            counters: ClientCounters::default(),
        };
        for (i, conn) in conns.iter().enumerate() {
            if !conn.peer_addrs.is_empty() {
                c.due.push(Reverse((now, i)));
            }
        }
        c
    }

    /// Starts the connections that are due, within the setup window.
    pub fn start_due(&mut self, ep: &mut Endpoint, now: u64) {
        let room = self.pace.window.saturating_sub(ep.initiating());
        for _ in 0..INITIATE_PER_TURN.min(room) {
            let Some(Reverse((t, i))) = self.due.peek().copied() else {
                break;
            };
            if t > now {
                break;
            }
            if let Some(interval) = 1_000_000_000u64.checked_div(self.pace.rate) {
                if self.next_slot > now {
                    break;
                }
                // Evenly spaced; a late turn catches up by at most one interval.
                self.next_slot = self.next_slot.max(now.saturating_sub(interval)) + interval;
            }
            self.due.pop();
            self.counters.initiated += 1;
            match ep.initiate(now, i, None) {
                Some(sa) => {
                    self.active[i] = true;
                    self.by_sa.insert(sa, i);
                }
                None => {
                    warn!(conn = %ep.conns()[i].name, "cannot initiate: no peer or local address");
                    self.retry(i, now);
                }
            }
        }
    }

    /// The earliest due initiation, whether or not the window has room.
    pub fn next_deadline(&self) -> Option<u64> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// When [`Self::start_due`] has something to start: the earliest due initiation,
    /// if the window has room for one (otherwise an IKE SA coming up or failing makes
    /// room, and that arrives as a datagram or a timer of its own).
    pub fn next_due(&self, ep: &Endpoint) -> Option<u64> {
        if ep.initiating() >= self.pace.window {
            return None;
        }
        let t = self.next_deadline()?;
        Some(if self.pace.rate > 0 {
            t.max(self.next_slot)
        } else {
            t
        })
    }

    /// Connections waiting for their (re)try.
    pub fn waiting(&self) -> usize {
        self.due.len()
    }

    fn retry(&mut self, i: ConnId, now: u64) {
        let wait = self.backoff[i];
        self.backoff[i] = (wait * 2).min(RETRY_MAX_NS);
        self.active[i] = false;
        self.counters.retries += 1;
        self.due.push(Reverse((now + wait, i)));
    }

    /// Follows the endpoint's events. `stopping`: the process is shutting down, so
    /// nothing is retried.
    pub fn on_event(&mut self, ep: &mut Endpoint, ev: &Event, now: u64, stopping: bool) {
        match ev {
            Event::ChildUp { sa, .. } => {
                if let Some(&i) = self.by_sa.get(sa) {
                    self.backoff[i] = RETRY_FIRST_NS;
                }
            }
            Event::ChildFailed { sa, reason } => self.if_childless(ep, *sa, now, stopping, reason),
            Event::ChildDown { sa, .. } => {
                self.if_childless(ep, *sa, now, stopping, &FailReason::PeerError(0))
            }
            Event::IkeRekeyed { old, new } => {
                if let Some(i) = self.by_sa.remove(old) {
                    self.by_sa.insert(*new, i);
                }
            }
            Event::IkeDown { sa, reason } => {
                if let Some(i) = self.by_sa.remove(sa) {
                    if matches!(reason, DownReason::Failed(_)) {
                        self.counters.setup_failed += 1;
                    }
                    if !stopping && *reason != DownReason::Rekeyed {
                        let name = &ep.conns()[i].name;
                        warn!(conn = %name, ?reason, retry_in_s = self.backoff[i] / 1_000_000_000, "IKE SA down; setting it up again");
                        self.retry(i, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// An IKE SA of ours with no child SA left carries nothing: delete it (its
    /// IkeDown schedules the retry).
    fn if_childless(
        &mut self,
        ep: &mut Endpoint,
        sa: SaId,
        now: u64,
        stopping: bool,
        why: &FailReason,
    ) {
        if stopping || !self.by_sa.contains_key(&sa) || ep.child_count_of(sa) > 0 {
            return;
        }
        if ep.delete(now, sa) {
            self.counters.childless += 1;
            let conn = self.by_sa.get(&sa).map(|&i| ep.conns()[i].name.as_str());
            warn!(conn = ?conn, sa = format_args!("{sa:016x}"), reason = ?why, "no child SA: deleting the IKE SA to try again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::conn::Identity;
    use crate::ike::crypto::random::SeededRandom;
    use crate::ike::sa::EndpointConfig;

    fn endpoint() -> Endpoint {
        let mut a = Conn::new("a", Identity::Fqdn("a.test".into()), b"0123456789");
        a.peer_addrs = vec!["192.0.2.1:500".parse().unwrap()];
        a.local_addrs = vec!["192.0.2.2:500".parse().unwrap()];
        // No peer: a responder-only connection is never initiated.
        let b = Conn::new("b", Identity::Fqdn("b.test".into()), b"0123456789");
        Endpoint::new(
            EndpointConfig::default(),
            vec![a, b],
            Box::new(SeededRandom::new(1)),
        )
    }

    #[test]
    fn retries_back_off_and_only_a_child_sa_resets_the_backoff() {
        let mut ep = endpoint();
        let mut c = Client::new(ep.conns(), 5);
        assert_eq!(c.next_deadline(), Some(5));
        assert_eq!(c.waiting(), 1, "only the connection with a peer");
        c.start_due(&mut ep, 5);
        assert_eq!(c.waiting(), 0);
        let sa = ep.sa_ids()[0];
        let down = |sa| Event::IkeDown {
            sa,
            reason: DownReason::PeerDead,
        };
        c.on_event(&mut ep, &down(sa), 100, false);
        assert_eq!(c.next_deadline(), Some(100 + RETRY_FIRST_NS));
        // Not due yet: nothing starts.
        c.start_due(&mut ep, 99 + RETRY_FIRST_NS);
        assert_eq!(c.waiting(), 1);
        c.start_due(&mut ep, 100 + RETRY_FIRST_NS);
        let sa2 = *ep.sa_ids().iter().find(|s| **s != sa).unwrap();
        // An IKE SA up does not reset the backoff (its child may still be refused).
        c.on_event(
            &mut ep,
            &Event::IkeRekeyed { old: sa2, new: 77 },
            200,
            false,
        );
        c.on_event(&mut ep, &down(77), 300, false);
        assert_eq!(c.next_deadline(), Some(300 + 2 * RETRY_FIRST_NS));
        assert_eq!(c.counters.retries, 2);
        // Bounded, and nothing is retried while stopping.
        for k in 0..20 {
            c.retry(0, k);
        }
        assert_eq!(c.backoff[0], RETRY_MAX_NS);
        c.due.clear();
        c.by_sa.insert(78, 0);
        c.on_event(&mut ep, &down(78), 500, true);
        assert_eq!(c.next_deadline(), None);
    }

    fn many(n: usize) -> Endpoint {
        let conns = (0..n)
            .map(|i| {
                let mut a = Conn::new("a", Identity::Fqdn(format!("a{i}.test")), b"0123456789");
                a.peer_addrs = vec!["192.0.2.1:500".parse().unwrap()];
                a.local_addrs = vec!["192.0.2.2:500".parse().unwrap()];
                a
            })
            .collect();
        Endpoint::new(
            EndpointConfig::default(),
            conns,
            Box::new(SeededRandom::new(2)),
        )
    }

    #[test]
    fn the_setup_rate_spaces_initiations_and_the_window_bounds_them() {
        const MS: u64 = 1_000_000;
        let mut ep = many(40);
        // 100 per second: one every 10 ms.
        let pace = Pace {
            window: 8,
            rate: 100,
        };
        let mut c = Client::paced(ep.conns(), 0, pace);
        c.start_due(&mut ep, 0);
        assert_eq!(ep.initiating(), 1);
        assert_eq!(c.next_due(&ep), Some(10 * MS));
        c.start_due(&mut ep, 9 * MS);
        assert_eq!(ep.initiating(), 1, "not before its slot");
        c.start_due(&mut ep, 10 * MS);
        assert_eq!(ep.initiating(), 2);
        // A late turn catches up by one interval, not by all it missed.
        c.start_due(&mut ep, 100 * MS);
        assert_eq!(ep.initiating(), 4);
        // The window: never more than 8 setting up, however late.
        for t in 1..100 {
            c.start_due(&mut ep, (100 + t * 10) * MS);
        }
        assert_eq!(ep.initiating(), 8);
        assert_eq!(
            c.next_due(&ep),
            None,
            "a full window waits for a setup to end"
        );
        // Without a rate, a turn starts up to the window at once.
        let mut ep = many(40);
        let mut c = Client::paced(
            ep.conns(),
            0,
            Pace {
                window: 30,
                rate: 0,
            },
        );
        c.start_due(&mut ep, 0);
        assert_eq!(ep.initiating(), 30);
    }
}
