//! Quiescent-state tracking: when has every worker passed a point at which it holds no
//! reference to an old table version?
//!
//! Workers announce a quiescent point at the start of every burst (one load and one store,
//! no read-modify-write). The single writer bumps the global epoch after each publication
//! and frees a retired version only when every online worker has announced an epoch at
//! least as new as the one it was retired under. Versions are reference counted as well,
//! so memory safety never depends on this protocol; what it buys is that the last
//! reference is always dropped by the writer and never on a worker's packet path.

// Only the atomics are modelled under loom; the registry is shared through a std `Arc` in
// both builds so the table code links against the same types.
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64, Ordering};
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
    /// version must be waited for. The increment is a release: a reader that acquires an
    /// epoch >= the returned one also sees the publication that preceded it.
    pub fn advance(&self) -> u64 {
        self.global.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Writer: the oldest epoch some online participant may still be in (`OFFLINE` if none
    /// is online). Everything retired at an epoch <= this value is unreachable.
    pub fn min_observed(&self) -> u64 {
        // Pairs with the fence in `Participant::begin` (store-buffering): either this scan
        // sees a participant coming online, or that participant's epoch load sees our
        // latest `advance` and, through it, the new version.
        fence(Ordering::SeqCst);
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(OFFLINE)
    }

    /// The current global epoch.
    pub fn epoch(&self) -> u64 {
        self.global.load(Ordering::Acquire)
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
        assert!(
            index < registry.capacity(),
            "qsbr participant {index} out of range"
        );
        Participant {
            registry,
            index,
            online: false,
        }
    }

    /// Step 1 of a quiescent point: read the epoch *before* loading any shared pointer.
    ///
    /// Coming online, the slot is written first and the epoch read after a SeqCst fence,
    /// so the writer cannot miss us: either its slot scan sees our announcement, or we see
    /// its advance (and the publication before it). Reading the epoch before announcing, as
    /// a single load, would let a writer that scanned in between reclaim the version our
    /// first load can still return.
    #[inline]
    pub fn begin(&mut self) -> u64 {
        let slot = &self.registry.slots[self.index];
        if !self.online {
            slot.store(
                self.registry.global.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            fence(Ordering::SeqCst);
            self.online = true;
        }
        // Acquire: an epoch >= a retirement epoch makes the replacing version visible.
        self.registry.global.load(Ordering::Acquire)
    }

    /// Whether this participant is being waited for.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Step 2: after refreshing every cached pointer, publish that we are past epoch `e`:
    /// nothing loaded before `begin` returned `e` is still held.
    #[inline]
    pub fn complete(&mut self, e: u64) {
        self.registry.slots[self.index].store(e, Ordering::Release);
    }

    /// Leave: the writer stops waiting for this participant. Release: whatever the
    /// participant read before is ordered before the writer's reclamation.
    pub fn offline(&mut self) {
        self.registry.slots[self.index].store(OFFLINE, Ordering::Release);
        self.online = false;
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.offline();
    }
}

// Model check of the protocol above (a writer retiring versions, readers passing quiescent
// points), with the memory model explored exhaustively by loom:
//
//     RUSTFLAGS="--cfg loom" cargo test -p mobiked-shared --release --lib loom
//
// A version is a `loom::cell::UnsafeCell`: readers read it, the writer overwrites it when it
// reclaims, and loom fails the run if any read is not ordered before that write.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    // loom's own Arc: the model is shared between loom threads, which need not be `Send`.
    use loom::sync::Arc as ModelArc;

    const LIVE: u64 = 7;
    const FREED: u64 = 0xdead;

    /// The writer's side of one table: `current` is the published version (an index into
    /// `versions`), swapped like `ArcSwap` and read by readers as `arc_swap::Cache` does (a
    /// relaxed pointer compare, then a full load on change).
    struct Model {
        reg: Arc<Registry>,
        current: AtomicUsize,
        versions: Vec<UnsafeCell<u64>>,
    }

    impl Model {
        fn new(readers: usize, versions: usize) -> ModelArc<Model> {
            ModelArc::new(Model {
                reg: Registry::new(readers),
                current: AtomicUsize::new(0),
                versions: (0..versions).map(|_| UnsafeCell::new(LIVE)).collect(),
            })
        }
    }

    fn reader(m: ModelArc<Model>, index: usize, bursts: usize) {
        let mut p = Participant::new(m.reg.clone(), index);
        // Nothing cached before the first burst (a fresh or offline reader holds nothing).
        let mut cached = usize::MAX;
        for _ in 0..bursts {
            let e = p.begin();
            if m.current.load(Ordering::Relaxed) != cached {
                cached = m.current.load(Ordering::Acquire);
            }
            p.complete(e);
            // Use the version for the whole burst.
            // SAFETY: loom's UnsafeCell tracks this read; loom fails the model if it races
            // with the writer's reclaiming write, which is exactly what is being checked.
            let v = m.versions[cached].with(|x| unsafe { *x });
            assert_eq!(v, LIVE, "reader used a reclaimed version");
        }
        p.offline();
    }

    /// Publishes versions 1..=publications, trying to reclaim after each one.
    fn writer(m: &Model, publications: usize) {
        let mut retired: Vec<(u64, usize)> = Vec::new();
        for next in 1..=publications {
            let prev = m.current.swap(next, Ordering::SeqCst);
            let epoch = m.reg.advance();
            retired.push((epoch, prev));
            let min = m.reg.min_observed();
            retired.retain(|&(epoch, v)| {
                if min >= epoch {
                    // SAFETY: loom checks this write against every reader's read.
                    m.versions[v].with_mut(|x| unsafe { *x = FREED });
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Bounded preemptions keep the two models well under a minute; bugs in protocols this
    /// small show up within two or three preemptions.
    fn check(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    #[test]
    fn loom_one_reader_two_publications() {
        check(|| {
            let m = Model::new(1, 3);
            let r = {
                let m = m.clone();
                loom::thread::spawn(move || reader(m, 0, 2))
            };
            writer(&m, 2);
            r.join().unwrap();
        });
    }

    #[test]
    fn loom_two_readers_one_publication() {
        check(|| {
            let m = Model::new(2, 2);
            let rs: Vec<_> = (0..2)
                .map(|i| {
                    let m = m.clone();
                    loom::thread::spawn(move || reader(m, i, 2))
                })
                .collect();
            writer(&m, 1);
            for r in rs {
                r.join().unwrap();
            }
        });
    }
}
