//! The shared tables: one writer (the control plane) publishes immutable snapshots,
//! many readers (workers) use them per burst without locks, allocation or blocking.
//!
//! A snapshot is made of persistent paged structures (`pages`): the SPI index holding the
//! inbound SAs, the tunnels with their outbound SAs, the policy table, the path records.
//! The writer changes its own copies in place, copying on write only the pages a published
//! version shares, and a publication clones four roots. So a publication costs what
//! changed, not what exists: moving a path copies one page of path records, one 16-pointer
//! node per index level and the root (7 pointers at 100,000 paths), however many SAs
//! follow that path or are installed; installing or removing an SA copies a page or two
//! of each structure it is in. Readers hold an `arc_swap::Cache` that costs one atomic
//! load per burst when nothing changed. Old versions are retired with the QSBR epoch of their replacement and
//! dropped by the writer once every worker has passed a quiescent point (see `qsbr`).

use crate::clock::now_ns;
use crate::pages::{Pages, PAGE};
use crate::path::{PathId, PathRecord, PathSpec};
use crate::policy::{Found, Hint, PolicyTable, Prefix, Tunnel, TunnelId};
use crate::qsbr::{Participant, Registry, OFFLINE};
use crate::sa::{InboundSa, InboundSpec, OutboundSa, OutboundSpec, Slot};
use crate::spimap::SpiMap;
use arc_swap::{ArcSwap, Cache};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Path records per page.
pub const PATH_PAGE: usize = PAGE;

/// Tunnel entries per page: a page copy raises the counts of two records per tunnel, so
/// pages are smaller than the default.
const TUNNEL_PAGE: usize = 16;

/// Sizes fixed at start-up (workers preallocate private state by them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Number of workers (QSBR participants).
    pub workers: usize,
    /// Inbound SAs that can be installed at once (worker replay-state slots).
    pub max_inbound: usize,
    /// Outbound SAs that can be installed at once (worker sequence-state slots).
    pub max_outbound: usize,
    /// Highest path id + 1.
    pub max_paths: usize,
    /// Highest tunnel id + 1.
    pub max_tunnels: usize,
}

impl TableConfig {
    /// Room for `n` of everything (SAs each way, paths, tunnels) and `workers` workers.
    pub fn sized(workers: usize, n: usize) -> TableConfig {
        TableConfig {
            workers,
            max_inbound: n,
            max_outbound: n,
            max_paths: n,
            max_tunnels: n,
        }
    }
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            workers: 1,
            max_inbound: 4096,
            max_outbound: 4096,
            max_paths: 4096,
            max_tunnels: 4096,
        }
    }
}

/// Why the writer refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    DuplicateSpi(u32),
    UnknownSpi(u32),
    InboundFull { max: usize },
    OutboundFull { max: usize },
    PathOutOfRange { id: PathId, max: usize },
    TunnelOutOfRange { id: TunnelId, max: usize },
    UnknownTunnel(TunnelId),
    UnknownPath(PathId),
    MixedFamilies(PathId),
    OwnerOutOfRange { owner: u16, workers: usize },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::DuplicateSpi(s) => write!(f, "SPI {s:#010x} is already installed"),
            TableError::UnknownSpi(s) => write!(f, "no inbound SA with SPI {s:#010x}"),
            TableError::InboundFull { max } => write!(f, "all {max} inbound SA slots are in use"),
            TableError::OutboundFull { max } => {
                write!(f, "all {max} outbound SA slots are in use")
            }
            TableError::PathOutOfRange { id, max } => {
                write!(f, "path id {id} is out of range (max {max})")
            }
            TableError::TunnelOutOfRange { id, max } => {
                write!(f, "tunnel id {id} is out of range (max {max})")
            }
            TableError::UnknownTunnel(t) => write!(f, "tunnel {t} does not exist"),
            TableError::UnknownPath(p) => write!(f, "path {p} does not exist"),
            TableError::MixedFamilies(p) => {
                write!(f, "path {p} mixes IPv4 and IPv6 outer addresses")
            }
            TableError::OwnerOutOfRange { owner, workers } => {
                write!(f, "owner worker {owner} does not exist ({workers} workers)")
            }
        }
    }
}

impl std::error::Error for TableError {}

/// A tunnel and its outbound SA, side by side: a policy match reads both from one page.
/// The first local selector is copied beside them, so the source check of the common
/// tunnel (one local selector) reads neither the tunnel record nor its selector list
/// (two cache misses per lookup with many tunnels).
#[derive(Clone, Default)]
struct TunnelEntry {
    tunnel: Option<Arc<Tunnel>>,
    outbound: Option<Arc<OutboundSa>>,
    first_local: Option<Prefix>,
}

impl TunnelEntry {
    /// The policy hint of this tunnel (`None` without local selectors: it matches
    /// nothing, and the lookup asks the entry).
    fn hint(&self) -> Option<Hint> {
        let tunnel = self.tunnel.as_ref()?;
        Some(Hint {
            local: self.first_local?,
            single: tunnel.local_ts.len() == 1,
            outbound: self.outbound.clone(),
        })
    }
}

/// One immutable version of all tables.
#[derive(Clone, Default)]
pub struct Snapshot {
    generation: u64,
    inbound: SpiMap,
    tunnels: Pages<TunnelEntry, TUNNEL_PAGE>,
    policy: PolicyTable,
    paths: Pages<Option<PathRecord>>,
    /// Path ids ever used, rounded up to whole pages.
    paths_len: usize,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot::default()
    }

    /// Publication counter of this version.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The inbound SA for `spi`.
    #[inline]
    pub fn inbound(&self, spi: u32) -> Option<&InboundSa> {
        self.inbound.get(spi).map(|a| &**a)
    }

    /// The tunnel with id `id`.
    #[inline]
    pub fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.tunnels.get(id as usize)?.tunnel.as_deref()
    }

    /// The outbound SA of tunnel `id`.
    #[inline]
    pub fn outbound(&self, id: TunnelId) -> Option<&OutboundSa> {
        self.tunnels.get(id as usize)?.outbound.as_deref()
    }

    /// Outbound policy lookup: the outbound SA for an inner packet `src -> dst`.
    #[inline]
    pub fn lookup_outbound(&self, src: IpAddr, dst: IpAddr) -> Option<&OutboundSa> {
        let found = self.policy.lookup(src, dst)?;
        match found {
            Found::Outbound(sa) => sa,
            Found::Tunnel(id) => self.tunnels.get(id as usize)?.outbound.as_deref(),
        }
    }

    /// The current record of path `id`.
    #[inline]
    pub fn path(&self, id: PathId) -> Option<&PathRecord> {
        self.paths.get(id as usize)?.as_ref()
    }

    /// Upper bound (exclusive) of the path ids that may be present.
    pub fn paths_len(&self) -> usize {
        self.paths_len
    }

    /// Number of installed inbound SAs.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// Pages allocated in this version, all tables together (each page holds `PAGE`
    /// entries; for memory accounting).
    pub fn pages(&self) -> usize {
        self.inbound.pages() + self.tunnels.pages() + self.policy.pages() + self.paths.pages()
    }
}

/// What one `publish` made visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publication {
    pub generation: u64,
    pub published_ns: u64,
}

struct Retired {
    epoch: u64,
    snapshot: Arc<Snapshot>,
    /// Slots whose SAs left in the publication that retired `snapshot`; reusable once no
    /// worker can still see those SAs.
    freed_in: Vec<Slot>,
    freed_out: Vec<Slot>,
}

/// The free slots of one direction: those given back (taken again first, last given
/// back first), then the never-used ones from `next` up to `max`. A bound, not a list of
/// every slot, so that an empty table costs no memory per slot of `max_sas`. Slots of
/// published SAs wait in `pending` until the publication that drops them retires.
struct Slots {
    free: Vec<Slot>,
    next: Slot,
    max: Slot,
    pending: Vec<Slot>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            free: Vec::new(),
            next: 0,
            max: Slot::try_from(max).unwrap_or(Slot::MAX),
            pending: Vec::new(),
        }
    }

    fn take(&mut self) -> Option<Slot> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        if self.next >= self.max {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    fn put(&mut self, slot: Slot) {
        self.free.push(slot);
    }

    /// Gives a slot back: at once if its SA was never published (no worker saw it),
    /// else once the next publication retires.
    fn release(&mut self, slot: Slot, published: bool) {
        if published {
            self.pending.push(slot);
        } else {
            self.put(slot);
        }
    }
}

/// The single writer. Changes are staged and become visible together at `publish`.
pub struct TableWriter {
    config: TableConfig,
    current: Arc<ArcSwap<Snapshot>>,
    /// An empty snapshot readers point their cache at while offline, so that a parked
    /// worker keeps no retired version alive.
    idle: Arc<ArcSwap<Snapshot>>,
    registry: Arc<Registry>,
    readers_taken: Vec<bool>,
    retired: VecDeque<Retired>,
    /// The next version, changed in place (copy on write of what `current` shares).
    next: Snapshot,
    /// Last generation given to each path id; survives removal so a re-added path never
    /// repeats a generation a worker may have cached.
    path_generations: Vec<u64>,
    dirty: bool,
    /// Paths set since the last publication (their records get its timestamp).
    dirty_paths: Vec<PathId>,
    free_in: Slots,
    free_out: Slots,
    next_install_id: u64,
    /// The first install id staged after the last publication: an SA with an id at or
    /// above it was never visible to a worker, so its slot is free again at once.
    unpublished_from: u64,
    generation: u64,
}

impl TableWriter {
    pub fn new(config: TableConfig) -> TableWriter {
        TableWriter {
            config,
            current: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
            idle: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
            registry: Registry::new(config.workers),
            readers_taken: vec![false; config.workers],
            retired: VecDeque::new(),
            next: Snapshot {
                generation: 0,
                inbound: SpiMap::with_max(config.max_inbound),
                tunnels: Pages::with_capacity(config.max_tunnels),
                policy: PolicyTable::with_max(config.max_tunnels),
                paths: Pages::with_capacity(config.max_paths),
                paths_len: 0,
            },
            path_generations: Vec::new(),
            dirty: false,
            dirty_paths: Vec::new(),
            free_in: Slots::new(config.max_inbound),
            free_out: Slots::new(config.max_outbound),
            next_install_id: 1,
            unpublished_from: 1,
            generation: 0,
        }
    }

    pub fn config(&self) -> TableConfig {
        self.config
    }

    /// The reader handle for worker `worker`. Each worker index can be taken once.
    pub fn reader(&mut self, worker: usize) -> Option<TableReader> {
        let taken = self.readers_taken.get_mut(worker)?;
        if *taken {
            return None;
        }
        *taken = true;
        Some(TableReader {
            cache: Cache::new(self.idle.clone()),
            shared: self.current.clone(),
            idle: self.idle.clone(),
            participant: Participant::new(self.registry.clone(), worker),
        })
    }

    /// The latest published snapshot (for the control plane's own reads and tests).
    pub fn published(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn check_owner(&self, owner: u16) -> Result<(), TableError> {
        if owner as usize >= self.config.workers {
            return Err(TableError::OwnerOutOfRange {
                owner,
                workers: self.config.workers,
            });
        }
        Ok(())
    }

    /// Whether the SA installed as `install_id` has been published (a worker may see it).
    fn was_published(&self, install_id: u64) -> bool {
        install_id < self.unpublished_from
    }

    fn install_id(&mut self) -> u64 {
        let id = self.next_install_id;
        self.next_install_id += 1;
        id
    }

    /// Stages an inbound SA.
    pub fn add_inbound(&mut self, spec: InboundSpec) -> Result<(), TableError> {
        self.check_owner(spec.owner)?;
        if self.next.inbound.get(spec.spi).is_some() {
            return Err(TableError::DuplicateSpi(spec.spi));
        }
        let slot = self.free_in.take().ok_or(TableError::InboundFull {
            max: self.config.max_inbound,
        })?;
        let install_id = self.install_id();
        let sa = InboundSa {
            spi: spec.spi,
            slot,
            install_id,
            owner: spec.owner,
            esn: spec.esn,
            replay_window: spec.replay_window,
            key: spec.key,
            tunnel: spec.tunnel,
        };
        self.next.inbound.insert(Arc::new(sa));
        self.dirty = true;
        Ok(())
    }

    /// Stages the removal of an inbound SA.
    pub fn remove_inbound(&mut self, spi: u32) -> Result<(), TableError> {
        let sa = self
            .next
            .inbound
            .remove(spi)
            .ok_or(TableError::UnknownSpi(spi))?;
        let published = self.was_published(sa.install_id);
        self.free_in.release(sa.slot, published);
        self.dirty = true;
        Ok(())
    }

    /// Stages a tunnel (selectors); replaces an existing tunnel with the same id.
    pub fn set_tunnel(&mut self, tunnel: Tunnel) -> Result<(), TableError> {
        let id = tunnel.id as usize;
        if id >= self.config.max_tunnels {
            return Err(TableError::TunnelOutOfRange {
                id: tunnel.id,
                max: self.config.max_tunnels,
            });
        }
        let old = self.next.tunnels.get(id).and_then(|e| e.tunnel.clone());
        if let Some(old) = &old {
            self.next.policy.remove(old);
        }
        let next = &mut self.next;
        next.policy.insert(&tunnel, |other| {
            next.tunnels
                .get(other as usize)
                .and_then(|e| e.tunnel.as_deref())
        });
        let entry = self.tunnel_entry(id)?;
        entry.first_local = tunnel.local_ts.first().copied();
        let tunnel = Arc::new(tunnel);
        entry.tunnel = Some(tunnel.clone());
        self.refresh_hints(old.as_deref());
        self.refresh_hints(Some(&tunnel));
        self.dirty = true;
        Ok(())
    }

    /// Stages the removal of a tunnel and its outbound SA.
    pub fn remove_tunnel(&mut self, id: TunnelId) -> Result<(), TableError> {
        if self.next.tunnel(id).is_none() {
            return Err(TableError::UnknownTunnel(id));
        }
        let entry = self.tunnel_entry(id as usize)?;
        let old = entry.tunnel.take();
        let outbound = entry.outbound.take();
        entry.first_local = None;
        if let Some(old) = old {
            self.next.policy.remove(&old);
            self.refresh_hints(Some(&old));
        }
        if let Some(sa) = outbound {
            let published = self.was_published(sa.install_id);
            self.free_out.release(sa.slot, published);
        }
        self.dirty = true;
        Ok(())
    }

    /// Rewrites the policy hints of the entries of `tunnel`'s remote selectors from their
    /// (possibly new) first tunnels.
    fn refresh_hints(&mut self, tunnel: Option<&Tunnel>) {
        let Some(tunnel) = tunnel else {
            return;
        };
        let next = &mut self.next;
        for p in &tunnel.remote_ts {
            if let Some(first) = next.policy.first_of(p) {
                let hint = next.tunnels.get(first as usize).and_then(TunnelEntry::hint);
                next.policy.set_hint(p, hint);
            }
        }
    }

    /// `refresh_hints` for the tunnel `id` as staged.
    fn refresh_hints_of(&mut self, id: TunnelId) {
        if let Some(t) = self
            .next
            .tunnels
            .get(id as usize)
            .and_then(|e| e.tunnel.clone())
        {
            self.refresh_hints(Some(&t));
        }
    }

    /// Stages the outbound SA of a tunnel, replacing the previous one (rekey). The new SA
    /// starts its sequence numbers at 1.
    pub fn set_outbound(&mut self, spec: OutboundSpec) -> Result<(), TableError> {
        self.check_owner(spec.owner)?;
        let id = spec.tunnel as usize;
        if self.next.tunnel(spec.tunnel).is_none() {
            return Err(TableError::UnknownTunnel(spec.tunnel));
        }
        if self.next.path(spec.path).is_none() {
            return Err(TableError::UnknownPath(spec.path));
        }
        let slot = self.free_out.take().ok_or(TableError::OutboundFull {
            max: self.config.max_outbound,
        })?;
        let install_id = self.install_id();
        let sa = OutboundSa {
            spi: spec.spi,
            slot,
            install_id,
            owner: spec.owner,
            esn: spec.esn,
            key: spec.key,
            path: spec.path,
            tunnel: spec.tunnel,
        };
        if let Some(old) = self.tunnel_entry(id)?.outbound.replace(Arc::new(sa)) {
            let published = self.was_published(old.install_id);
            self.free_out.release(old.slot, published);
        }
        self.refresh_hints_of(spec.tunnel);
        self.dirty = true;
        Ok(())
    }

    /// Stages the removal of a tunnel's outbound SA.
    pub fn remove_outbound(&mut self, tunnel: TunnelId) -> Result<(), TableError> {
        if self.next.outbound(tunnel).is_none() {
            return Err(TableError::UnknownTunnel(tunnel));
        }
        let old = self
            .tunnel_entry(tunnel as usize)?
            .outbound
            .take()
            .ok_or(TableError::UnknownTunnel(tunnel))?;
        let published = self.was_published(old.install_id);
        self.free_out.release(old.slot, published);
        self.refresh_hints_of(tunnel);
        self.dirty = true;
        Ok(())
    }

    /// The staged entry of tunnel `id` for writing (checked against `max_tunnels` by the
    /// callers; the error is for a broken invariant, not a panic).
    fn tunnel_entry(&mut self, id: usize) -> Result<&mut TunnelEntry, TableError> {
        let max = self.config.max_tunnels;
        self.next
            .tunnels
            .get_mut(id)
            .ok_or(TableError::TunnelOutOfRange {
                id: id as TunnelId,
                max,
            })
    }

    /// Stages a new version of path `id` and returns the generation it will carry. Every
    /// outbound SA referring to `id` follows at the next publication.
    pub fn set_path(&mut self, id: PathId, spec: PathSpec) -> Result<u64, TableError> {
        let i = id as usize;
        if i >= self.config.max_paths {
            return Err(TableError::PathOutOfRange {
                id,
                max: self.config.max_paths,
            });
        }
        if !spec.is_consistent() {
            return Err(TableError::MixedFamilies(id));
        }
        if self.path_generations.len() <= i {
            self.path_generations.resize(i + 1, 0);
        }
        let generation = self.path_generations[i] + 1;
        let max = self.config.max_paths;
        let slot = self
            .next
            .paths
            .get_mut(i)
            .ok_or(TableError::PathOutOfRange { id, max })?;
        self.path_generations[i] = generation;
        *slot = Some(PathRecord::new(spec, generation));
        self.next.paths_len = self.next.paths_len.max((i + 1).next_multiple_of(PATH_PAGE));
        self.dirty_paths.push(id);
        self.dirty = true;
        Ok(generation)
    }

    /// Stages the removal of a path. Outbound SAs still referring to it drop their packets
    /// (`drop_no_sa`) until they are moved or removed.
    pub fn remove_path(&mut self, id: PathId) -> Result<(), TableError> {
        if self.next.path(id).is_none() {
            return Err(TableError::UnknownPath(id));
        }
        if let Some(slot) = self.next.paths.get_mut(id as usize) {
            *slot = None;
        }
        self.dirty = true;
        Ok(())
    }

    /// The staged record of path `id` (its `published_ns` is 0 until published).
    pub fn path(&self, id: PathId) -> Option<&PathRecord> {
        self.next.path(id)
    }

    /// Whether anything is staged.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Makes every staged change visible at once, then reclaims what it can.
    pub fn publish(&mut self) -> Publication {
        let published_ns = now_ns();
        for id in self.dirty_paths.drain(..) {
            // Set since the last publication (and not removed since): this publication
            // makes its new generation visible.
            if let Some(Some(rec)) = self.next.paths.get_mut(id as usize) {
                rec.published_ns = published_ns;
            }
        }
        self.generation += 1;
        self.next.generation = self.generation;
        let snap = Arc::new(self.next.clone());
        let prev = self.current.swap(snap);
        let epoch = self.registry.advance();
        self.retired.push_back(Retired {
            epoch,
            snapshot: prev,
            freed_in: std::mem::take(&mut self.free_in.pending),
            freed_out: std::mem::take(&mut self.free_out.pending),
        });
        self.dirty = false;
        self.unpublished_from = self.next_install_id;
        self.reclaim();
        Publication {
            generation: self.generation,
            published_ns,
        }
    }

    /// Drops retired versions that no worker can still hold and recycles their SA slots.
    /// Returns how many versions were freed. Call it from the control plane's timer too:
    /// workers pass quiescent points continuously.
    pub fn reclaim(&mut self) -> usize {
        let min = self.registry.min_observed();
        let mut n = 0;
        while let Some(r) = self.retired.front() {
            if min != OFFLINE && min < r.epoch {
                break;
            }
            let r = self.retired.pop_front().expect("front exists");
            self.free_in.free.extend(r.freed_in);
            self.free_out.free.extend(r.freed_out);
            drop(r.snapshot);
            n += 1;
        }
        n
    }

    /// Retired versions still waiting for a quiescent point.
    pub fn pending_reclaim(&self) -> usize {
        self.retired.len()
    }

    /// Weak references to the retired versions (tests check they are really freed).
    pub fn retired_weak(&self) -> Vec<std::sync::Weak<Snapshot>> {
        self.retired
            .iter()
            .map(|r| Arc::downgrade(&r.snapshot))
            .collect()
    }
}

/// A worker's view of the tables.
pub struct TableReader {
    // Dropped before `participant`: the cached version is released before the slot goes
    // offline, so the writer, not the worker, drops the last reference.
    cache: Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>,
    shared: Arc<ArcSwap<Snapshot>>,
    idle: Arc<ArcSwap<Snapshot>>,
    participant: Participant,
}

impl TableReader {
    /// The quiescent point at the start of a burst: everything the previous burst borrowed
    /// is released, and the latest snapshot is returned. One atomic load and one store when
    /// nothing changed; no allocation, no lock, never blocks.
    #[inline]
    pub fn begin_burst(&mut self) -> &Snapshot {
        let coming_online = !self.participant.is_online();
        // The epoch is read before the pointer: nothing loaded after this can be a version
        // retired at an epoch <= e.
        let e = self.participant.begin();
        if coming_online {
            self.cache = Cache::new(self.shared.clone());
        }
        // Refresh (drops our reference to an older version; the writer still holds it,
        // since our slot is older than that version's retirement), then announce.
        let snap = self.cache.load();
        self.participant.complete(e);
        snap
    }

    /// Stops being waited for (a worker that parks or exits). Releases the cached version
    /// first, so nothing retired stays alive in a parked worker.
    pub fn offline(&mut self) {
        self.cache = Cache::new(self.idle.clone());
        self.participant.offline();
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    /// Slots given back are taken first (last given back first), then never-used ones
    /// in order; nothing is held per slot of the maximum.
    #[test]
    fn slots_cost_nothing_per_slot_and_reuse_given_back_ones_first() {
        let mut s = Slots::new(1 << 20);
        assert_eq!(s.free.capacity(), 0);
        assert_eq!((s.take(), s.take(), s.take()), (Some(0), Some(1), Some(2)));
        s.put(1);
        s.put(0);
        assert_eq!((s.take(), s.take(), s.take()), (Some(0), Some(1), Some(3)));
        let mut two = Slots::new(2);
        assert_eq!(
            (two.take(), two.take(), two.take()),
            (Some(0), Some(1), None)
        );
        two.put(1);
        assert_eq!((two.take(), two.take()), (Some(1), None));
    }
}
