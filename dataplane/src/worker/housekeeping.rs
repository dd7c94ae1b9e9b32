//! A worker's periodic duties: RFC 3948 keepalives on its quiet UDP-encapsulated paths,
//! scanned every `HOUSEKEEPING_NS`, and how long it may sleep before the next one is due;
//! recycling the inbound states of SAs it no longer owns.

use super::{frame_path, stage_one, Core, Fabric, PathState, Stage};
use crate::buf::PacketBuf;
use crate::io::BurstIo;
use crate::natt;
use shared::counters::Counter;
use shared::path::{Encap, PathId};
use shared::table::Snapshot;

/// How often an idle-or-busy worker scans paths for keepalives.
pub(super) const HOUSEKEEPING_NS: u64 = 10_000_000;
/// Longest sleep of a worker with keepalives to send (a path published while it sleeps
/// gets its first keepalive this late at most).
const KEEPALIVE_WAIT_MAX_MS: i32 = 100;
/// Longest sleep of a worker without keepalives to send.
const IDLE_WAIT_MAX_MS: i32 = 1000;

/// When the worker last scanned its paths for keepalives, and when one is due next.
pub(super) struct Housekeeping {
    pub(super) last_ns: u64,
    /// The earliest time a path of this worker needs a keepalive (`None`: no path of
    /// this worker has keepalives on).
    pub(super) next_keepalive_ns: Option<u64>,
}

impl Housekeeping {
    /// How long an idle worker may sleep at `now`: until the next keepalive scan that can
    /// send one (at most `KEEPALIVE_WAIT_MAX_MS`), or `IDLE_WAIT_MAX_MS` without
    /// keepalives. Rounded up, so the worker wakes when it is due, not just before.
    pub(super) fn wait_ms(&self, now: u64) -> i32 {
        match self.next_keepalive_ns {
            None => IDLE_WAIT_MAX_MS,
            Some(due) => {
                let at = due.max(self.last_ns.saturating_add(HOUSEKEEPING_NS));
                let ms = at.saturating_sub(now).div_ceil(1_000_000);
                ms.min(KEEPALIVE_WAIT_MAX_MS as u64) as i32
            }
        }
    }
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
/// that has been quiet for its keepalive interval. Returns when the next one is due
/// (`None`: no path of this worker has keepalives on).
#[allow(clippy::too_many_arguments)]
pub(super) fn keepalives<C: BurstIo>(
    core: &mut Core,
    snap: &Snapshot,
    now: u64,
    scratch: &mut PacketBuf,
    cipher: &mut C,
    to_cipher: &mut Stage,
    fabric: &Fabric,
    me: usize,
) -> Option<u64> {
    // Every path of the table up to its highest id gets a state here (not per packet).
    let end = snap.paths_len().min(core.cfg.max_paths);
    if core.paths.len() < end {
        core.paths.resize(end, PathState::default());
    }

    let mut id = me;
    let mut next: Option<u64> = None;
    while id < end {
        if let Some(rec) = snap.path(id as PathId) {
            let ka = rec.spec.keepalive_ms as u64 * 1_000_000;
            let ps = &mut core.paths[id];
            let on = ka != 0 && rec.spec.encap == Encap::Udp;
            if on {
                // Due after this scan's keepalive, if it sends one.
                let last = if now.saturating_sub(ps.last_tx_ns) >= ka {
                    now
                } else {
                    ps.last_tx_ns
                };
                let due = last.saturating_add(ka);
                next = Some(next.map_or(due, |n| n.min(due)));
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
        id += core.workers.max(1);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn sleeps_until_the_scan_that_sends_the_next_keepalive() {
        let now = 50_000 * MS;
        let mut h = Housekeeping {
            last_ns: now - 3 * MS,
            next_keepalive_ns: None,
        };
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
}
