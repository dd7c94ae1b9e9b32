//! The timers of an IKE SA: retransmission of our requests with exponential backoff
//! until a retry limit or the DPD timeout (RFC 7296 2.1, 2.4), the same bytes on the
//! next address pair while MOBIKE tests paths (RFC 4555 3.10), soft and hard
//! lifetimes of the IKE SA and its children with jitter (RFC 7296 2.8), the
//! half-open limit of a responder, liveness checks (2.4), and the childless timeout.

use super::{
    Ctx, DownReason, FailReason, IkeSa, Kind, Req, State, NS_PER_MS, NS_PER_S, PATH_PROBE_MS,
};
use crate::ike::conn::Lifetimes;
use std::num::NonZeroU64;

/// A point in time something is due at, or none: eight bytes where `Option<u64>` takes
/// sixteen (an IKE SA has seven of them and each child two; with 100,000 tunnels that
/// is over 10 MB). Time 0 is kept as 1 ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deadline(Option<NonZeroU64>);

impl Deadline {
    pub const NONE: Deadline = Deadline(None);

    pub fn at(ns: u64) -> Deadline {
        Deadline(NonZeroU64::new(ns.max(1)))
    }

    pub fn get(self) -> Option<u64> {
        self.0.map(NonZeroU64::get)
    }

    pub fn is_none(self) -> bool {
        self.0.is_none()
    }

    /// Set and not later than `now`.
    pub fn due(self, now: u64) -> bool {
        self.get().is_some_and(|t| t <= now)
    }

    /// Whether it was due at `now`; if so it is cleared.
    pub fn take_due(&mut self, now: u64) -> bool {
        let due = self.due(now);
        if due {
            *self = Deadline::NONE;
        }
        due
    }
}

impl From<Option<u64>> for Deadline {
    fn from(t: Option<u64>) -> Deadline {
        t.map_or(Deadline::NONE, Deadline::at)
    }
}

/// (rekey, expire) deadlines from `now` for lifetimes `l` (0: none); the rekey comes
/// up to `jitter_s` early, at random, so that both ends rarely start it at once.
pub(super) fn lifetime_deadlines(
    ctx: &mut Ctx<'_>,
    now: u64,
    l: &Lifetimes,
) -> (Deadline, Deadline) {
    let expire = (l.life_s > 0).then(|| now + l.life_s * NS_PER_S);
    let rekey = (l.rekey_s > 0).then(|| {
        let mut b = [0u8; 8];
        ctx.rng.fill(&mut b);
        let jitter = if l.jitter_s > 0 {
            u64::from_be_bytes(b) % (l.jitter_s.min(l.rekey_s) * NS_PER_S)
        } else {
            0
        };
        now + l.rekey_s * NS_PER_S - jitter
    });
    (rekey.into(), expire.into())
}

/// Liveness checks are due on a grid of this step (RFC 7296 2.4 leaves their timing to
/// the implementation): a check comes at most this late, and the checks of many SAs fall
/// on the same instants, so a gateway with 100,000 idle tunnels wakes ten times a second
/// and sends each batch together instead of waking for every tunnel.
pub(super) const DPD_GRID_NS: u64 = 100 * NS_PER_MS;

/// How long after the peer's next liveness check is due the original responder's own
/// check waits (two grid steps). Both ends usually run checks with the same interval,
/// each check resets the other end's timer, and on the grid both would fire on the same
/// instant: every tunnel would carry two exchanges per interval where one proves both
/// ends alive. So the responder leaves the checks to an initiator that makes them, and
/// checks itself only when they stop, this much later than its interval.
const DPD_DEFER_NS: u64 = 2 * DPD_GRID_NS;

/// `at` rounded up to the liveness grid.
fn on_dpd_grid(at: u64) -> u64 {
    at.div_ceil(DPD_GRID_NS).saturating_mul(DPD_GRID_NS)
}

impl IkeSa {
    pub fn next_timeout(&self) -> Option<u64> {
        if self.state == State::Dead {
            return None;
        }
        let mut t = [
            self.pending.as_ref().map(|p| p.next_at),
            self.retry_at.get(),
            self.rekey_at.get(),
            self.expire_at.get(),
            self.half_open_until.get(),
            self.dpd_at.get().map(on_dpd_grid),
            self.childless_until.get(),
        ]
        .into_iter()
        .flatten()
        .min();
        for c in &self.children {
            for d in [c.rekey_at.get(), c.expire_at.get()].into_iter().flatten() {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        }
        t
    }

    /// With DPD on, a request is given up `dpd.timeout_s` after it was first sent even
    /// if retransmissions remain: that bounds how long a dead peer goes unnoticed.
    pub(super) fn give_up_at(&self, ctx: &Ctx<'_>, first_sent: u64) -> Option<u64> {
        let d = self.conn(ctx).dpd;
        (d.interval_s > 0 && d.timeout_s > 0 && self.state != State::InitSent)
            .then(|| first_sent + d.timeout_s * NS_PER_S)
    }

    /// RFC 7296 allows an IKE SA without child SAs (one refused at IKE_AUTH, or all
    /// deleted), but nothing else would ever end one whose peer vanished without a
    /// DELETE while DPD is off: it gets `childless_timeout` to gain a child.
    pub(super) fn arm_childless(&mut self, ctx: &Ctx<'_>, now: u64) {
        let childless = self.state == State::Established && self.children.is_empty();
        if !childless {
            self.childless_until = Deadline::NONE;
        } else if self.childless_until.is_none() {
            let ms = self.conn(ctx).childless_timeout_ms;
            self.childless_until = (ms > 0).then(|| now.saturating_add(ms * NS_PER_MS)).into();
        }
    }

    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        if self.state == State::Dead {
            return;
        }
        if self.half_open_until.due(now) && self.state == State::HalfOpen {
            ctx.counters.half_open_expired += 1;
            self.die(ctx, DownReason::Failed(FailReason::HalfOpenTimeout));
            return;
        }
        let give_up = self
            .pending
            .as_ref()
            .and_then(|p| self.give_up_at(ctx, p.first_sent));
        if let Some(p) = self.pending.as_mut() {
            if p.next_at <= now {
                let c = &ctx.conns[self.conn];
                let dpd_gone = give_up.is_some_and(|g| now >= g);
                if p.tries >= c.retransmit.tries || dpd_gone {
                    if let Kind::ReturnRoutability { .. } = p.kind {
                        // RFC 4555 3.7: the new address did not prove itself; the
                        // SAs stay where they are.
                        ctx.counters.mobike_rr_failed += 1;
                        self.pending = None;
                        self.kick(ctx, now);
                        return;
                    }
                    let reason = match self.state {
                        State::InitSent | State::AuthSent => {
                            DownReason::Failed(FailReason::Timeout)
                        }
                        State::Deleting => DownReason::Deleted,
                        State::Rekeyed => DownReason::Rekeyed,
                        _ => DownReason::PeerDead,
                    };
                    self.die(ctx, reason);
                    return;
                }
                p.tries += 1;
                if (p.tries as usize) <= p.alt.len() {
                    // RFC 4555 3.10: the next pairs are probes, not retries of a
                    // lossy path: one after the other, quickly.
                    p.interval_ms = p.interval_ms.min(PATH_PROBE_MS);
                } else {
                    p.interval_ms = (p.interval_ms * 2).min(c.retransmit.max_ms);
                }
                p.next_at = now + p.interval_ms * NS_PER_MS;
                if let Some(g) = give_up {
                    p.next_at = p.next_at.min(g);
                }
                ctx.counters.retransmits += 1;
                // The same bytes, on the next pair to test (RFC 4555 3.10).
                let n = p.alt.len() + 1;
                let i = (p.tries as usize - 1) % n;
                let (l, r) = match i {
                    0 => (p.local, p.remote),
                    i => p.alt.get(i - 1).copied().unwrap_or((p.local, p.remote)),
                };
                let d = p.data.clone();
                ctx.send(l, r, d);
            }
        }
        if self.expire_at.take_due(now) {
            match self.state {
                State::Rekeyed => {
                    self.die(ctx, DownReason::Rekeyed);
                    return;
                }
                State::Deleting => {
                    self.die(ctx, DownReason::Expired);
                    return;
                }
                _ => {
                    // Hard lifetime: delete now; if the peer does not answer within
                    // the retransmissions the SA goes anyway.
                    self.start_delete(ctx, now);
                }
            }
        }
        // A retry wait ends; the next `kick` sends what is queued.
        self.retry_at.take_due(now);
        if self.childless_until.take_due(now)
            && self.state == State::Established
            && self.children.is_empty()
        {
            ctx.counters.childless_deleted += 1;
            self.start_delete(ctx, now);
        }
        if self.rekey_at.take_due(now) {
            self.start_rekey_ike(ctx, now);
        }
        if self.dpd_at.get().is_some_and(|t| on_dpd_grid(t) <= now) {
            let interval = ctx.conns[self.conn].dpd.interval_s * NS_PER_S;
            let heard = match self.peer_dpd_rx {
                t if t > 0 && !self.initiator => self.last_rx.max(t + DPD_DEFER_NS),
                _ => self.last_rx,
            };
            if now.saturating_sub(heard) >= interval && self.pending.is_none() {
                self.start_dpd(ctx, now);
                self.dpd_at = Deadline::at(now + interval);
            } else {
                // Due again once `interval` has passed since we last heard from the
                // peer; while a request of ours is outstanding (itself a check) look
                // again on the next grid step.
                self.dpd_at = Deadline::at(heard.saturating_add(interval).max(now + DPD_GRID_NS));
            }
        }
        let mut rekey = Vec::new();
        let mut expire = Vec::new();
        for c in &mut self.children {
            if c.rekey_at.take_due(now) {
                rekey.push(c.info.id);
            }
            if c.expire_at.take_due(now) {
                expire.push(c.info.id);
            }
        }
        for id in rekey {
            self.start_rekey_child(ctx, now, id);
        }
        if !expire.is_empty() {
            // Hard expiry: out of the dataplane now (RFC 7296 2.8), then tell the peer.
            let spis: Vec<u32> = self
                .children
                .iter()
                .filter(|c| expire.contains(&c.info.id))
                .map(|c| c.info.spi_in)
                .collect();
            self.remove_children(ctx, &expire);
            if !spis.is_empty() && self.state == State::Established {
                self.queue.push_back(Req::DeleteSpis(spis));
            }
        }
        self.kick(ctx, now);
    }
}

#[cfg(test)]
mod tests {
    use super::Deadline;

    #[test]
    fn deadlines_take_eight_bytes_and_fire_once() {
        assert_eq!(std::mem::size_of::<Deadline>(), 8);
        assert_eq!(Deadline::NONE.get(), None);
        assert_eq!(Deadline::at(0).get(), Some(1), "time 0 is kept as 1 ns");
        assert_eq!(Deadline::from(Some(7)).get(), Some(7));
        assert!(Deadline::from(None).is_none());
        let mut d = Deadline::at(10);
        assert!(!d.take_due(9));
        assert_eq!(d.get(), Some(10));
        assert!(d.take_due(10));
        assert!(d.is_none());
        assert!(!d.take_due(u64::MAX));
    }
}
