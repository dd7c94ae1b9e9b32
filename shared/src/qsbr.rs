//! Quiescent-state tracking: when has every worker passed a point at which it holds no
//! reference to an old table version?
//!
//! Workers announce a quiescent point at the start of every burst (one load and one store,
//! no read-modify-write). The single writer bumps the global epoch after each publication
//! and frees a retired version only when every online worker has announced an epoch at
//! least as new as the one it was retired under. Versions are reference counted as well,
//! so memory safety never depends on this protocol; what it buys is that the last
//! reference is always dropped by the writer and never on a worker's packet path.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::Arc;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::Arc;

use crossbeam_utils::CachePadded;

/// Slot value of a participant that holds nothing (not yet started, parked, or gone).
pub const OFFLINE: u64 = u64::MAX;

/// The shared part: the global epoch and one slot per participant.
pub struct Registry {
    global: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<AtomicU64>]>,
}

impl Registry {
    /// A registry for at most `participants` readers.
    pub fn new(participants: usize) -> Arc<Registry> {
        Arc::new(Registry {
            global: CachePadded::new(AtomicU64::new(1)),
            slots: (0..participants)
                .map(|_| CachePadded::new(AtomicU64::new(OFFLINE)))
                .collect(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Writer: called after a publication is visible. Returns the epoch that the retired
    /// version must be waited for.
    pub fn advance(&self) -> u64 {
        self.global.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Writer: the oldest epoch some online participant may still be in (`OFFLINE` if none
    /// is online). Everything retired at an epoch <= this value is unreachable.
    pub fn min_observed(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(OFFLINE)
    }

    /// The current global epoch.
    pub fn epoch(&self) -> u64 {
        self.global.load(Ordering::SeqCst)
    }
}

/// A reader's handle on its slot. Not `Sync`: each worker owns one.
pub struct Participant {
    registry: Arc<Registry>,
    index: usize,
    online: bool,
}

impl Participant {
    /// Takes slot `index`. Panics if `index` is out of range (a configuration bug, found at
    /// start-up, never on the packet path).
    pub fn new(registry: Arc<Registry>, index: usize) -> Participant {
        assert!(index < registry.capacity(), "qsbr participant {index} out of range");
        Participant {
            registry,
            index,
            online: false,
        }
    }

    /// Step 1 of a quiescent point: read the epoch *before* loading any shared pointer.
    /// Going online is announced here, before the first load, so the writer cannot miss us.
    #[inline]
    pub fn begin(&mut self) -> u64 {
        let e = self.registry.global.load(Ordering::SeqCst);
        if !self.online {
            self.registry.slots[self.index].store(e, Ordering::SeqCst);
            self.online = true;
        }
        e
    }

    /// Step 2: after refreshing every cached pointer, publish that we are past epoch `e`:
    /// nothing loaded before `begin` returned `e` is still held.
    #[inline]
    pub fn complete(&mut self, e: u64) {
        self.registry.slots[self.index].store(e, Ordering::Release);
    }

    /// Leave: the writer stops waiting for this participant.
    pub fn offline(&mut self) {
        self.registry.slots[self.index].store(OFFLINE, Ordering::SeqCst);
        self.online = false;
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.offline();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;

    /// A writer publishes a new version and retires the old one; a reader loads whichever
    /// is current between quiescent points. The writer must never consider the old
    /// version free while the reader can still be using it.
    #[test]
    fn writer_waits_for_reader() {
        loom::model(|| {
            let reg = Registry::new(1);
            // 1 = old version, 2 = new version; `freed` marks the old one reclaimed.
            let current = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicUsize::new(0));

            let r = {
                let reg = reg.clone();
                let current = current.clone();
                let freed = freed.clone();
                loom::thread::spawn(move || {
                    let mut p = Participant::new(reg, 0);
                    for _ in 0..2 {
                        let e = p.begin();
                        let v = current.load(Ordering::SeqCst);
                        // Use the version: it must not have been reclaimed.
                        if v == 1 {
                            assert_eq!(freed.load(Ordering::SeqCst), 0, "use after reclaim");
                        }
                        p.complete(e);
                    }
                })
            };

            current.store(2, Ordering::SeqCst);
            let retire_epoch = reg.advance();
            if reg.min_observed() >= retire_epoch {
                freed.store(1, Ordering::SeqCst);
            }
            r.join().unwrap();
        });
    }
}
