//! Stopping with thousands of IKE SAs, sans-IO: every IKE SA is deleted with an
//! INFORMATIONAL DELETE (RFC 7296 1.4.1) so that peers free theirs at once, paced so
//! that the peer is not sent thousands of requests in one burst (a gateway's queue
//! would overflow and the rest would wait for retransmissions).
//!
//! At most [`WINDOW`] deletions are outstanding; each answered (or given up after its
//! retransmissions) lets the next one go. The whole stop is bounded: [`BASE_NS`] plus
//! [`PER_SA_NS`] for each IKE SA, after which whatever is left goes without an answer.

use std::collections::HashSet;

use crate::ike::sa::{Endpoint, Event, SaId};

/// Deletions outstanding at once.
pub const WINDOW: usize = 256;
/// Time any stop may take...
pub const BASE_NS: u64 = 5_000_000_000;
/// ...plus this much per IKE SA to delete.
pub const PER_SA_NS: u64 = 1_000_000;

/// A stop in progress (see the module documentation).
pub struct Shutdown {
    /// IKE SAs still to delete.
    todo: Vec<SaId>,
    /// Deletions sent and not finished.
    in_flight: HashSet<SaId>,
    pub started: u64,
    pub deadline: u64,
    /// IKE SAs at the start.
    pub total: usize,
    /// When the endpoint was last scanned for IKE SAs born during the stop.
    scanned: u64,
}

/// How often a stop looks for IKE SAs it does not know yet.
const RESCAN_NS: u64 = 100_000_000;

impl Shutdown {
    pub fn start(ep: &Endpoint, now: u64) -> Shutdown {
        let mut todo = ep.sa_ids();
        // Deleted from the end: the oldest SPIs last does not matter, but keep
        // the order stable for tests.
        todo.reverse();
        let total = todo.len();
        Shutdown {
            todo,
            in_flight: HashSet::new(),
            started: now,
            deadline: now
                .saturating_add(BASE_NS)
                .saturating_add(PER_SA_NS.saturating_mul(total as u64)),
            total,
            scanned: now,
        }
    }

    /// Starts deletions while the window has room. Returns true once nothing is left
    /// (or the time is up).
    pub fn poll(&mut self, ep: &mut Endpoint, now: u64) -> bool {
        if ep.sa_count() == 0 || now >= self.deadline {
            return true;
        }
        if self.todo.is_empty()
            && self.in_flight.is_empty()
            && now.saturating_sub(self.scanned) >= RESCAN_NS
        {
            // IKE SAs born meanwhile (a peer connecting while we stop).
            self.scanned = now;
            self.todo = ep.sa_ids();
        }
        while self.in_flight.len() < WINDOW {
            let Some(sa) = self.todo.pop() else {
                break;
            };
            if ep.delete(now, sa) {
                self.in_flight.insert(sa);
            }
        }
        false
    }

    /// Follows the endpoint's events: a finished deletion frees a place in the window;
    /// an SA rekeyed meanwhile is deleted under its new SPI.
    pub fn on_event(&mut self, ev: &Event) {
        match ev {
            Event::IkeDown { sa, .. } => {
                self.in_flight.remove(sa);
            }
            Event::IkeRekeyed { new, .. } => self.todo.push(*new),
            _ => {}
        }
    }

    /// When [`Self::poll`] must run again at the latest: the end of the stop, or the
    /// next look for IKE SAs born meanwhile (answers to our DELETEs arrive as
    /// datagrams and need no timer).
    pub fn next_deadline(&self) -> u64 {
        if self.todo.is_empty() && self.in_flight.is_empty() {
            self.deadline.min(self.scanned.saturating_add(RESCAN_NS))
        } else {
            self.deadline
        }
    }

    /// Deletions not finished yet (sent or still to send).
    pub fn left(&self) -> usize {
        self.todo.len() + self.in_flight.len()
    }
}
