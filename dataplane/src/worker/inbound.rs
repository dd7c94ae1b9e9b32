//! The inbound state of the SAs a worker owns (RFC 4303 3.4.3 replay window, the outer
//! source of the last authenticated packet), in an arena sized by what the worker has
//! seen rather than by the table's capacity.
//!
//! The control plane numbers inbound SAs by slot (`InboundSa::slot`), shared by all
//! workers; a worker keeps state only for the SAs it owns. `index` maps a slot to an
//! arena entry (4 bytes per slot, grown to the highest slot this worker has seen, so zero
//! before the first packet); the arena grows by one entry, with its window bitmap, the
//! first time a packet of a new SA of this worker arrives (amortized like a
//! `Vec` push, in chunks, so growth never moves existing entries). A new SA in a slot
//! reuses the slot's entry (detected by `install_id`); entries of SAs that are gone or
//! moved to another worker are found by a bounded sweep in housekeeping and recycled.
//! In steady state the packet path allocates nothing.

use crate::replay::ReplayWindow;
use std::net::SocketAddr;

/// Entries per arena chunk: a chunk is allocated once and never moves.
const CHUNK: usize = 64;
/// Entries the housekeeping sweep checks per call (every `HOUSEKEEPING_NS`).
pub(super) const SWEEP_PER_CALL: usize = 64;
/// `InState::slot` of an entry on the free list.
const FREE: u32 = u32::MAX;

/// One inbound SA's private state.
pub(super) struct InState {
    /// Slot and installation of the SA using this entry; `slot == FREE` when unused.
    slot: u32,
    pub(super) spi: u32,
    pub(super) install_id: u64,
    pub(super) window: ReplayWindow,
    /// Outer source of the last authenticated packet (`None` before the first).
    pub(super) last_src: Option<SocketAddr>,
}

/// The arena and the slot index of one worker.
pub(super) struct InboundStates {
    /// Slot -> 1 + arena index; 0: this worker has no state for the slot.
    index: Vec<u32>,
    chunks: Vec<Vec<InState>>,
    /// Arena indices of unused entries.
    free: Vec<u32>,
    /// Slots the table has (`max_inbound`): the index never grows past it.
    max_slots: usize,
    /// Bitmap capacity of every window (`WorkerConfig::replay_capacity`).
    replay_capacity: u32,
    /// Next arena index the sweep looks at.
    sweep_at: usize,
}

impl InboundStates {
    /// Empty: no memory for slots until SAs of this worker are seen.
    pub(super) fn new(max_slots: usize, replay_capacity: u32) -> InboundStates {
        InboundStates {
            index: Vec::new(),
            chunks: Vec::new(),
            free: Vec::new(),
            max_slots,
            replay_capacity,
            sweep_at: 0,
        }
    }

    /// Entries in the arena (used or free).
    pub(super) fn entries(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Entries in use.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.entries() - self.free.len()
    }

    /// Bytes of slot index and arena (entries, their window bitmaps), allocated.
    pub(super) fn heap_bytes(&self) -> usize {
        let window = ReplayWindow::bitmap_bytes(self.replay_capacity);
        self.index.capacity() * std::mem::size_of::<u32>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<InState>>()
            + self.chunks.len() * CHUNK * std::mem::size_of::<InState>()
            + self.entries() * window
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    #[inline]
    fn entry(&mut self, i: u32) -> Option<&mut InState> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    /// The state of the SA installed as (`slot`, `install_id`), created on its first packet
    /// and reset (empty window of `window` packets, `esn`) when the slot holds a new SA.
    /// `None` only for a slot beyond the table's range.
    #[inline]
    pub(super) fn get(
        &mut self,
        slot: u32,
        install_id: u64,
        spi: u32,
        window: u32,
        esn: bool,
    ) -> Option<&mut InState> {
        let s = slot as usize;
        if s >= self.max_slots {
            return None;
        }
        let i = match self.index.get(s) {
            Some(&i) if i != 0 => i - 1,
            _ => self.attach(s)?,
        };
        let st = self.entry(i)?;
        if st.install_id != install_id || st.slot != slot {
            // A new SA in this slot: start with an empty window.
            st.window.reset(window, esn);
            st.install_id = install_id;
            st.spi = spi;
            st.slot = slot;
            st.last_src = None;
        }
        Some(st)
    }

    /// Gives `slot` an arena entry: a recycled one or a new one. Allocates (the index up to
    /// `slot`, a chunk, a window bitmap) only when the arena has no free entry: once per
    /// SA this worker sees beyond what it held before.
    #[cold]
    fn attach(&mut self, slot: usize) -> Option<u32> {
        if self.index.len() <= slot {
            self.index.resize(slot + 1, 0);
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let n = self.entries();
                let i = u32::try_from(n).ok().filter(|&i| i != FREE)?;
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks.last_mut()?.push(InState {
                    slot: FREE,
                    spi: 0,
                    install_id: 0,
                    window: ReplayWindow::new(self.replay_capacity),
                    last_src: None,
                });
                i
            }
        };
        // Marked free until `get` fills it in for its SA.
        let st = self.entry(i)?;
        st.slot = FREE;
        st.install_id = 0;
        *self.index.get_mut(slot)? = i + 1;
        Some(i)
    }

    /// Recycles the entries whose SA is no longer this worker's: `keep(spi, slot,
    /// install_id)` says whether the current table still has that SA with this worker as
    /// its owner. Looks at `SWEEP_PER_CALL` entries per call, round robin, so a worker with
    /// many SAs pays a bounded cost per housekeeping turn.
    pub(super) fn sweep(&mut self, mut keep: impl FnMut(u32, u32, u64) -> bool) {
        let n = self.entries();
        if n == 0 {
            return;
        }
        for _ in 0..SWEEP_PER_CALL.min(n) {
            let i = self.sweep_at % n;
            self.sweep_at = i + 1;
            let Some(st) = self.entry(i as u32) else {
                continue;
            };
            if st.slot == FREE || keep(st.spi, st.slot, st.install_id) {
                continue;
            }
            let slot = st.slot as usize;
            st.slot = FREE;
            st.install_id = 0;
            st.last_src = None;
            if let Some(x) = self.index.get_mut(slot) {
                if *x == i as u32 + 1 {
                    *x = 0;
                }
            }
            self.free.push(i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_before_the_first_sa_whatever_the_table_size() {
        let s = InboundStates::new(1_000_000, 1024);
        assert_eq!(s.entries(), 0);
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn grows_once_per_sa_and_reuses_the_entry_of_a_new_sa_in_a_slot() {
        let mut s = InboundStates::new(100_000, 1024);
        let st = s.get(70_000, 1, 0xa, 64, false).unwrap();
        st.window.update(5);
        assert_eq!(s.entries(), 1);
        // The same SA again: same state, window kept.
        assert_eq!(
            s.get(70_000, 1, 0xa, 64, false).unwrap().window.highest(),
            5
        );
        assert_eq!(s.entries(), 1);
        // A new SA in the slot: same entry, empty window of its size.
        let st = s.get(70_000, 2, 0xb, 32, true).unwrap();
        assert_eq!(
            (st.window.highest(), st.window.size(), st.spi),
            (0, 32, 0xb)
        );
        assert_eq!(s.entries(), 1);
        // Index 4 B per slot up to the highest seen, one entry with its bitmap.
        assert!(s.heap_bytes() < 70_001 * 4 + CHUNK * std::mem::size_of::<InState>() + 512);
        // Out of the table's range.
        assert!(s.get(100_000, 1, 0xc, 64, false).is_none());
        for slot in 0..200u32 {
            s.get(slot, 10 + u64::from(slot), slot, 64, false).unwrap();
        }
        assert_eq!((s.entries(), s.in_use()), (201, 201));
    }

    #[test]
    fn sweep_recycles_what_the_table_no_longer_gives_this_worker() {
        let mut s = InboundStates::new(1024, 64);
        for slot in 0..100u32 {
            s.get(slot, u64::from(slot) + 1, 0x100 + slot, 64, false)
                .unwrap()
                .window
                .update(3);
        }
        // The table keeps the even slots' SAs for this worker.
        let keep = |_spi: u32, slot: u32, _id: u64| slot.is_multiple_of(2);
        for _ in 0..100usize.div_ceil(SWEEP_PER_CALL) {
            s.sweep(keep);
        }
        assert_eq!((s.entries(), s.in_use()), (100, 50));
        // Kept SAs keep their windows.
        assert_eq!(s.get(4, 5, 0x104, 64, false).unwrap().window.highest(), 3);
        // New SAs take the freed entries (empty windows) before the arena grows.
        for slot in 500..550u32 {
            let st = s
                .get(slot, 1000 + u64::from(slot), slot, 64, false)
                .unwrap();
            assert_eq!(st.window.highest(), 0);
        }
        assert_eq!((s.entries(), s.in_use()), (100, 100));
        // A freed slot seen again gets a fresh state.
        assert_eq!(s.get(3, 4, 0x103, 64, false).unwrap().window.highest(), 0);
        assert_eq!(s.entries(), 101);
    }
}
