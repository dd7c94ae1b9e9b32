//! A worker's periodic duties: RFC 3948 keepalives on its quiet UDP-encapsulated paths,
//! found by a sweep over its paths that runs a slice every `HOUSEKEEPING_NS` and covers
//! them all once per `SWEEP_NS` (so a pass costs what the elapsed time asks for, not
//! what the table holds), and how long it may sleep before the next one is due;
//! recycling the inbound states of SAs it no longer owns.

use super::{frame_path, stage_one, Core, Fabric, PathState, Stage};
use crate::buf::PacketBuf;
use crate::io::BurstIo;
use crate::natt;
use shared::counters::Counter;
use shared::path::{Encap, PathId};
use shared::table::Snapshot;

/// How often an idle-or-busy worker runs a slice of its keepalive sweep.
pub(super) const HOUSEKEEPING_NS: u64 = 10_000_000;
/// A sweep visits every path of the worker once in this time: a keepalive goes out at
/// most this late, and a pass 10 ms after the last one looks at 1 % of the paths.
pub(super) const SWEEP_NS: u64 = 1_000_000_000;
/// The fewest paths a pass looks at (small tables are swept at every pass).
const SWEEP_MIN: usize = 64;
/// Longest sleep of a worker with keepalives to send (a path published while it sleeps
/// gets its first keepalive this late at most).
const KEEPALIVE_WAIT_MAX_MS: i32 = 100;
/// Longest sleep of a worker without keepalives to send.
const IDLE_WAIT_MAX_MS: i32 = 1000;

/// When the worker last ran housekeeping, where its keepalive sweep stands, and when a
/// keepalive is due next.
pub(super) struct Housekeeping {
    pub(super) last_ns: u64,
    /// The earliest time a path of this worker needs a keepalive, as of the last
    /// complete sweep (`None`: no path of this worker had keepalives on).
    pub(super) next_keepalive_ns: Option<u64>,
    /// The next path id the sweep looks at (`None`: a new sweep starts at the worker's
    /// first id).
    cursor: Option<usize>,
    /// The earliest due time among the paths the current sweep has seen so far.
    sweep_due: Option<u64>,
}

impl Housekeeping {
    pub(super) fn new() -> Housekeeping {
        Housekeeping {
            last_ns: 0,
            next_keepalive_ns: None,
            cursor: None,
            sweep_due: None,
        }
    }

    /// The earliest keepalive known to be due: of the last complete sweep, or of the
    /// paths the current one has seen.
    fn due(&self) -> Option<u64> {
        [self.next_keepalive_ns, self.sweep_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// How long an idle worker may sleep at `now`: until the next keepalive pass that can
    /// send one (at most `KEEPALIVE_WAIT_MAX_MS`), or `IDLE_WAIT_MAX_MS` without
    /// keepalives. Rounded up, so the worker wakes when it is due, not just before.
    pub(super) fn wait_ms(&self, now: u64) -> i32 {
        match self.due() {
            None => IDLE_WAIT_MAX_MS,
            Some(due) => {
                let at = due.max(self.last_ns.saturating_add(HOUSEKEEPING_NS));
                let ms = at.saturating_sub(now).div_ceil(1_000_000);
                ms.min(KEEPALIVE_WAIT_MAX_MS as u64) as i32
            }
        }
    }
}

/// How many of its `mine` paths a pass looks at when `elapsed` has passed since the
/// last one: the share of a `SWEEP_NS` sweep, at least `SWEEP_MIN`.
pub(super) fn sweep_budget(mine: usize, elapsed: u64) -> usize {
    let share = (mine as u128 * elapsed as u128).div_ceil(SWEEP_NS as u128);
    (share.min(mine as u128) as usize).max(SWEEP_MIN)
}

/// Recycles (a bounded number per call) the inbound states of SAs that are gone from the
/// table or now owned by another worker.
pub(super) fn recycle_inbound(core: &mut Core, snap: &Snapshot) {
    let owner = core.cfg.id;
    core.inb.sweep(|spi, slot, install_id| {
        snap.inbound(spi)
            .is_some_and(|sa| sa.slot == slot && sa.install_id == install_id && sa.owner == owner)
    });
}

/// RFC 3948 4: a keepalive on every UDP-encapsulated path this worker is responsible for
/// that has been quiet for its keepalive interval, found by the next slice of the sweep
/// (`elapsed` since the last pass sizes it, see `sweep_budget`).
#[allow(clippy::too_many_arguments)]
pub(super) fn keepalives<C: BurstIo>(
    core: &mut Core,
    hk: &mut Housekeeping,
    elapsed: u64,
    snap: &Snapshot,
    now: u64,
    scratch: &mut PacketBuf,
    cipher: &mut C,
    to_cipher: &mut Stage,
    fabric: &Fabric,
    me: usize,
) {
    // Every path of the table up to its highest id gets a state here (not per packet).
    let end = snap.paths_len().min(core.cfg.max_paths);
    if core.paths.len() < end {
        core.paths.resize(end, PathState::default());
    }
    let step = core.workers.max(1);
    let mine = end.saturating_sub(me).div_ceil(step);
    let budget = sweep_budget(mine, elapsed);

    let mut id = hk.cursor.unwrap_or(me);
    for _ in 0..budget {
        if id >= end {
            break;
        }
        if let Some(rec) = snap.path(id as PathId) {
            let ka = rec.spec.keepalive_ms as u64 * 1_000_000;
            let ps = &mut core.paths[id];
            let on = ka != 0 && rec.spec.encap == Encap::Udp;
            if on {
                // Due after this pass's keepalive, if it sends one.
                let last = if now.saturating_sub(ps.last_tx_ns) >= ka {
                    now
                } else {
                    ps.last_tx_ns
                };
                let due = last.saturating_add(ka);
                hk.sweep_due = Some(hk.sweep_due.map_or(due, |n| n.min(due)));
            }
            if on && now.saturating_sub(ps.last_tx_ns) >= ka {
                ps.last_tx_ns = now;
                scratch.reset();
                if scratch.fill(&[natt::KEEPALIVE])
                    && frame_path(core.cipher_layer, scratch, &rec.spec, &rec.outer).is_ok()
                {
                    stage_one(
                        cipher,
                        to_cipher,
                        &mut core.cnt,
                        Counter::TxCipher,
                        snap,
                        fabric,
                        me,
                        scratch,
                    );
                    core.cnt.inc(Counter::KeepaliveTx);
                }
            }
        }
        id += step;
    }
    if id >= end {
        // The sweep is complete: what it found is the worker's next keepalive.
        hk.next_keepalive_ns = hk.sweep_due.take();
        hk.cursor = None;
    } else {
        hk.cursor = Some(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn sleeps_until_the_scan_that_sends_the_next_keepalive() {
        let now = 50_000 * MS;
        let mut h = Housekeeping::new();
        h.last_ns = now - 3 * MS;
        // No keepalives to send: the long sleep.
        assert_eq!(h.wait_ms(now), IDLE_WAIT_MAX_MS);
        // Due in 40.5 ms: woken at, not just before, the due time.
        h.next_keepalive_ns = Some(now + 40 * MS + MS / 2);
        assert_eq!(h.wait_ms(now), 41);
        // Due in 20 s: the cap (a path published meanwhile is seen this soon).
        h.next_keepalive_ns = Some(now + 20_000 * MS);
        assert_eq!(h.wait_ms(now), KEEPALIVE_WAIT_MAX_MS);
        // Due already, but the scan runs only every HOUSEKEEPING_NS: sleep until then
        // rather than spin.
        h.next_keepalive_ns = Some(now - MS);
        assert_eq!(h.wait_ms(now), 7);
        h.last_ns = now - HOUSEKEEPING_NS;
        assert_eq!(h.wait_ms(now), 0);
    }

    #[test]
    fn a_pass_looks_at_its_share_of_a_one_second_sweep() {
        // 100,000 paths, a pass every 10 ms: 1,000 each, all of them in a second.
        assert_eq!(sweep_budget(100_000, HOUSEKEEPING_NS), 1_000);
        assert_eq!(sweep_budget(100_000, SWEEP_NS), 100_000);
        // A worker that slept long sweeps everything once, not more.
        assert_eq!(sweep_budget(100_000, 60 * SWEEP_NS), 100_000);
        // Small tables: the whole table at every pass.
        assert_eq!(sweep_budget(10, HOUSEKEEPING_NS), SWEEP_MIN);
        assert_eq!(sweep_budget(0, 0), SWEEP_MIN);
    }
}
