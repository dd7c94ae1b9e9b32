//! The shared tables: one writer (the control plane) publishes immutable snapshots,
//! many readers (workers) use them per burst without locks, allocation or blocking.
//!
//! A snapshot is made of independently shared parts (inbound SAs, outbound SAs, tunnels
//! and policy, path pages), so a publication copies only what changed: moving a path
//! copies one 64-entry page of path records and the page index, however many SAs follow
//! that path. Readers hold an `arc_swap::Cache` that costs one atomic load per burst when
//! nothing changed. Old versions are retired with the QSBR epoch of their replacement and
//! dropped by the writer once every worker has passed a quiescent point (see `qsbr`).

use crate::clock::now_ns;
use crate::path::{PathId, PathRecord, PathSpec};
use crate::policy::{PolicyTable, Tunnel, TunnelId};
use crate::qsbr::{Participant, Registry, OFFLINE};
use crate::sa::{InboundSa, InboundSpec, OutboundSa, OutboundSpec, Slot};
use crate::spimap::SpiMap;
use arc_swap::{ArcSwap, Cache};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Path records per page.
pub const PATH_PAGE: usize = 64;

type PathPage = [Option<PathRecord>; PATH_PAGE];

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

#[derive(Default)]
struct InboundPart {
    index: SpiMap,
    sas: Vec<Arc<InboundSa>>,
}

#[derive(Default)]
struct TunnelPart {
    tunnels: Vec<Option<Arc<Tunnel>>>,
    outbound: Vec<Option<Arc<OutboundSa>>>,
    policy: PolicyTable,
}

/// One immutable version of all tables.
pub struct Snapshot {
    generation: u64,
    inbound: Arc<InboundPart>,
    tunnels: Arc<TunnelPart>,
    paths: Arc<Vec<Arc<PathPage>>>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            generation: 0,
            inbound: Arc::default(),
            tunnels: Arc::default(),
            paths: Arc::default(),
        }
    }

    /// Publication counter of this version.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The inbound SA for `spi`.
    #[inline]
    pub fn inbound(&self, spi: u32) -> Option<&InboundSa> {
        let i = self.inbound.index.get(spi)?;
        self.inbound.sas.get(i as usize).map(|a| &**a)
    }

    /// The tunnel with id `id`.
    #[inline]
    pub fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.tunnels.tunnels.get(id as usize)?.as_deref()
    }

    /// The outbound SA of tunnel `id`.
    #[inline]
    pub fn outbound(&self, id: TunnelId) -> Option<&OutboundSa> {
        self.tunnels.outbound.get(id as usize)?.as_deref()
    }

    /// Outbound policy lookup: the outbound SA for an inner packet `src -> dst`.
    #[inline]
    pub fn lookup_outbound(&self, src: IpAddr, dst: IpAddr) -> Option<&OutboundSa> {
        let t = &self.tunnels;
        for id in t.policy.candidates(dst) {
            if let Some(Some(tun)) = t.tunnels.get(id as usize) {
                if tun.local_ts.iter().any(|p| p.contains(src)) {
                    return t.outbound.get(id as usize)?.as_deref();
                }
            }
        }
        None
    }

    /// The current record of path `id`.
    #[inline]
    pub fn path(&self, id: PathId) -> Option<&PathRecord> {
        let id = id as usize;
        self.paths.get(id / PATH_PAGE)?[id % PATH_PAGE].as_ref()
    }

    /// Upper bound (exclusive) of the path ids that may be present.
    pub fn paths_len(&self) -> usize {
        self.paths.len() * PATH_PAGE
    }

    /// Number of installed inbound SAs.
    pub fn inbound_len(&self) -> usize {
        self.inbound.sas.len()
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
    // Staged master copies.
    inbound: BTreeMap<u32, Arc<InboundSa>>,
    tunnels: Vec<Option<Arc<Tunnel>>>,
    outbound: Vec<Option<Arc<OutboundSa>>>,
    paths: Vec<Option<PathRecord>>,
    /// Last generation given to each path id; survives removal so a re-added path never
    /// repeats a generation a worker may have cached.
    path_generations: Vec<u64>,
    dirty_inbound: bool,
    dirty_tunnels: bool,
    dirty_pages: Vec<usize>,
    free_in: Vec<Slot>,
    free_out: Vec<Slot>,
    pending_free_in: Vec<Slot>,
    pending_free_out: Vec<Slot>,
    next_install_id: u64,
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
            inbound: BTreeMap::new(),
            tunnels: Vec::new(),
            outbound: Vec::new(),
            paths: Vec::new(),
            path_generations: Vec::new(),
            dirty_inbound: false,
            dirty_tunnels: false,
            dirty_pages: Vec::new(),
            free_in: (0..config.max_inbound as Slot).rev().collect(),
            free_out: (0..config.max_outbound as Slot).rev().collect(),
            pending_free_in: Vec::new(),
            pending_free_out: Vec::new(),
            next_install_id: 1,
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

    fn install_id(&mut self) -> u64 {
        let id = self.next_install_id;
        self.next_install_id += 1;
        id
    }

    /// Stages an inbound SA.
    pub fn add_inbound(&mut self, spec: InboundSpec) -> Result<(), TableError> {
        self.check_owner(spec.owner)?;
        if self.inbound.contains_key(&spec.spi) {
            return Err(TableError::DuplicateSpi(spec.spi));
        }
        let slot = self.free_in.pop().ok_or(TableError::InboundFull {
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
        self.inbound.insert(spec.spi, Arc::new(sa));
        self.dirty_inbound = true;
        Ok(())
    }

    /// Stages the removal of an inbound SA.
    pub fn remove_inbound(&mut self, spi: u32) -> Result<(), TableError> {
        let sa = self
            .inbound
            .remove(&spi)
            .ok_or(TableError::UnknownSpi(spi))?;
        self.pending_free_in.push(sa.slot);
        self.dirty_inbound = true;
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
        if self.tunnels.len() <= id {
            self.tunnels.resize(id + 1, None);
        }
        self.tunnels[id] = Some(Arc::new(tunnel));
        self.dirty_tunnels = true;
        Ok(())
    }

    /// Stages the removal of a tunnel and its outbound SA.
    pub fn remove_tunnel(&mut self, id: TunnelId) -> Result<(), TableError> {
        self.tunnels
            .get_mut(id as usize)
            .and_then(Option::take)
            .ok_or(TableError::UnknownTunnel(id))?;
        let _ = self.remove_outbound(id);
        self.dirty_tunnels = true;
        Ok(())
    }

    /// Stages the outbound SA of a tunnel, replacing the previous one (rekey). The new SA
    /// starts its sequence numbers at 1.
    pub fn set_outbound(&mut self, spec: OutboundSpec) -> Result<(), TableError> {
        self.check_owner(spec.owner)?;
        let id = spec.tunnel as usize;
        if self.tunnels.get(id).is_none_or(|t| t.is_none()) {
            return Err(TableError::UnknownTunnel(spec.tunnel));
        }
        if self
            .paths
            .get(spec.path as usize)
            .is_none_or(|p| p.is_none())
        {
            return Err(TableError::UnknownPath(spec.path));
        }
        let slot = self.free_out.pop().ok_or(TableError::OutboundFull {
            max: self.config.max_outbound,
        })?;
        let install_id = self.install_id();
        if self.outbound.len() <= id {
            self.outbound.resize(id + 1, None);
        }
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
        if let Some(old) = self.outbound[id].replace(Arc::new(sa)) {
            self.pending_free_out.push(old.slot);
        }
        self.dirty_tunnels = true;
        Ok(())
    }

    /// Stages the removal of a tunnel's outbound SA.
    pub fn remove_outbound(&mut self, tunnel: TunnelId) -> Result<(), TableError> {
        let old = self
            .outbound
            .get_mut(tunnel as usize)
            .and_then(Option::take)
            .ok_or(TableError::UnknownTunnel(tunnel))?;
        self.pending_free_out.push(old.slot);
        self.dirty_tunnels = true;
        Ok(())
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
        if self.paths.len() <= i {
            self.paths.resize(i + 1, None);
            self.path_generations.resize(i + 1, 0);
        }
        self.path_generations[i] += 1;
        let generation = self.path_generations[i];
        self.paths[i] = Some(PathRecord::new(spec, generation));
        self.mark_page(i / PATH_PAGE);
        Ok(generation)
    }

    /// Stages the removal of a path. Outbound SAs still referring to it drop their packets
    /// (`drop_no_sa`) until they are moved or removed.
    pub fn remove_path(&mut self, id: PathId) -> Result<(), TableError> {
        self.paths
            .get_mut(id as usize)
            .and_then(Option::take)
            .ok_or(TableError::UnknownPath(id))?;
        self.mark_page(id as usize / PATH_PAGE);
        Ok(())
    }

    /// The staged record of path `id` (its `published_ns` is 0 until published).
    pub fn path(&self, id: PathId) -> Option<&PathRecord> {
        self.paths.get(id as usize)?.as_ref()
    }

    fn mark_page(&mut self, page: usize) {
        if !self.dirty_pages.contains(&page) {
            self.dirty_pages.push(page);
        }
    }

    /// Whether anything is staged.
    pub fn is_dirty(&self) -> bool {
        self.dirty_inbound || self.dirty_tunnels || !self.dirty_pages.is_empty()
    }

    /// Makes every staged change visible at once, then reclaims what it can.
    pub fn publish(&mut self) -> Publication {
        let old = self.current.load_full();
        let inbound = if self.dirty_inbound {
            let sas: Vec<Arc<InboundSa>> = self.inbound.values().cloned().collect();
            let entries: Vec<(u32, u32)> = sas
                .iter()
                .enumerate()
                .map(|(i, s)| (s.spi, i as u32))
                .collect();
            Arc::new(InboundPart {
                index: SpiMap::build(&entries),
                sas,
            })
        } else {
            old.inbound.clone()
        };
        let tunnels = if self.dirty_tunnels {
            Arc::new(TunnelPart {
                policy: PolicyTable::build(self.tunnels.iter().flatten().map(|t| &**t)),
                tunnels: self.tunnels.clone(),
                outbound: self.outbound.clone(),
            })
        } else {
            old.tunnels.clone()
        };
        let published_ns = now_ns();
        let paths = if self.dirty_pages.is_empty() {
            old.paths.clone()
        } else {
            let pages_needed = self.paths.len().div_ceil(PATH_PAGE);
            let mut index: Vec<Arc<PathPage>> =
                old.paths.iter().take(pages_needed).cloned().collect();
            while index.len() < pages_needed {
                index.push(Arc::new([None; PATH_PAGE]));
            }
            for &page in &self.dirty_pages {
                if page >= pages_needed {
                    continue;
                }
                let mut p: PathPage = [None; PATH_PAGE];
                for (k, slot) in p.iter_mut().enumerate() {
                    let i = page * PATH_PAGE + k;
                    if let Some(Some(rec)) = self.paths.get_mut(i) {
                        let was = old.path(i as PathId);
                        if was.map(|w| w.generation) != Some(rec.generation) {
                            rec.published_ns = published_ns;
                        }
                        *slot = Some(*rec);
                    }
                }
                index[page] = Arc::new(p);
            }
            Arc::new(index)
        };
        self.generation += 1;
        let snap = Arc::new(Snapshot {
            generation: self.generation,
            inbound,
            tunnels,
            paths,
        });
        let prev = self.current.swap(snap);
        let epoch = self.registry.advance();
        self.retired.push_back(Retired {
            epoch,
            snapshot: prev,
            freed_in: std::mem::take(&mut self.pending_free_in),
            freed_out: std::mem::take(&mut self.pending_free_out),
        });
        drop(old);
        self.dirty_inbound = false;
        self.dirty_tunnels = false;
        self.dirty_pages.clear();
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
            self.free_in.extend(r.freed_in);
            self.free_out.extend(r.freed_out);
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
