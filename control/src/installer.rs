//! The engine's socket-free half: turns the IKE core's events into shared-table
//! operations, and keeps the view of IKE SAs and child SAs that `mobiked ctl sas`
//! prints.
//!
//! Mapping (DESIGN.md, "The planes and the contract"):
//! - one IKE SA = one path record: every child of the SA refers to it, so an address
//!   change (RFC 4555 3.5, RFC 4621 5.3) is one `set_path` that moves them all;
//! - one child SA = one tunnel (its selectors) with its outbound SA and its inbound SA;
//!   a rekeyed child (RFC 7296 2.8) reuses the tunnel of the child it replaces: the new
//!   inbound SA is added and the outbound SA is replaced in the same publication, and the
//!   old inbound SA stays until the old child is reported down, so packets the peer
//!   still sends with the old SPI are accepted meanwhile.
//!
//! The caller feeds every event of a batch to [`Installer::on_event`] and then calls
//! [`Installer::commit`] once, so the workers see each batch as one publication.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;

use shared::path::{Encap, PathId, PathSpec, L2};
use shared::policy::{Prefix, Tunnel, TunnelId};
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{Publication, TableError, TableWriter};

use crate::ike::conn::Selector;
use crate::ike::sa::{ChildId, ChildInfo, ConnId, DownReason, Event, SaId, SaMap};

mod index;

use index::{ChildList, PairHasher, PairKeys, PairSas};

/// How long the inbound SA of a child replaced by a rekey stays installed after the
/// child is deleted: ESP the peer sent with the old SPI just before it switched may still
/// be in flight, and may even overtake the Delete it sent on another socket (RFC 7296
/// 2.8 asks to keep receiving on the old SA until it is deleted; this covers the
/// reordering).
pub const REPLACED_INBOUND_LINGER_NS: u64 = 500_000_000;

/// RFC 3948 4: NAT keepalive interval on UDP-encapsulated paths with a NAT in front
/// of us (never without one: forced encapsulation alone needs no mapping kept alive).
pub const KEEPALIVE_MS: u32 = 20_000;

/// Why an event could not be installed. The table is left as it was for that event
/// (earlier events of the batch stay staged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// The table refused an operation.
    Table(TableError),
    /// All path ids (`max_paths`) are in use.
    PathsFull,
    /// All tunnel ids (`max_tunnels`) are in use.
    TunnelsFull,
    /// An event named an IKE SA that never came up here.
    UnknownSa(SaId),
    /// An event named a child SA that was never installed here.
    UnknownChild(ChildId),
    /// The negotiated keys do not fit the cipher.
    Key(String),
    /// A child without any traffic selector of one side.
    NoSelectors(ChildId),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Table(e) => write!(f, "table: {e}"),
            InstallError::PathsFull => f.write_str("no free path id (raise dataplane.max_sas)"),
            InstallError::TunnelsFull => f.write_str("no free tunnel id (raise dataplane.max_sas)"),
            InstallError::UnknownSa(sa) => write!(f, "IKE SA {sa:#018x} is not installed"),
            InstallError::UnknownChild(c) => write!(f, "child SA {c} is not installed"),
            InstallError::Key(e) => write!(f, "child SA keys: {e}"),
            InstallError::NoSelectors(c) => write!(f, "child SA {c} has an empty selector list"),
        }
    }
}

impl std::error::Error for InstallError {}

impl From<TableError> for InstallError {
    fn from(e: TableError) -> Self {
        InstallError::Table(e)
    }
}

/// An IKE SA as installed: its path and children. What else `ctl sas` reports is
/// held once elsewhere: the addresses in the path record, the peer's identity and
/// virtual IP in the IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeView {
    pub sa: SaId,
    pub conn: ConnId,
    pub initiator: bool,
    pub path: PathId,
    /// `now` of the event that brought it up.
    pub up_ns: u64,
    /// Its installed children, ascending.
    children: ChildList,
}

/// A child SA as installed (its selectors are the IKE SA's to report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildView {
    pub id: ChildId,
    pub sa: SaId,
    pub tunnel: TunnelId,
    pub spi_in: u32,
    pub spi_out: u32,
    pub cipher: EspCipher,
    pub esn: bool,
    /// Whether its outbound SA is the tunnel's current one (false once a rekey replaced
    /// it: only its inbound SA remains until it is deleted).
    pub outbound: bool,
}

struct ChildRec {
    view: ChildView,
    /// Kept to restore the outbound SA should the replacing child go down first.
    key_out: Box<[u8]>,
}

/// An inbound SA kept a little after its child went (see
/// [`REPLACED_INBOUND_LINGER_NS`]), by SPI in [`Lingering::by_spi`].
struct Linger {
    until: u64,
    tunnel: TunnelId,
}

/// The lingering inbound SAs, by SPI, by expiry and by tunnel, so that a child up, an
/// expiry, a tunnel's end and the next deadline cost O(log n), not a walk over all of
/// them (and a tunnel without lingering SAs holds nothing for them).
#[derive(Default)]
struct Lingering {
    by_spi: HashMap<u32, Linger>,
    /// (until, SPI) of every entry of `by_spi`.
    by_time: BTreeSet<(u64, u32)>,
    /// (tunnel, SPI) of every entry of `by_spi`.
    by_tunnel: BTreeSet<(TunnelId, u32)>,
}

struct TunnelRec {
    /// Children whose inbound SA points at this tunnel, oldest first.
    children: ChildList,
    /// The child whose outbound SA is installed.
    out: ChildId,
}

/// Allocates small integer ids and reuses released ones (lowest first is not needed:
/// any free id will do, so a stack).
struct Ids {
    next: u32,
    max: u32,
    free: Vec<u32>,
}

impl Ids {
    fn new(max: usize) -> Ids {
        Ids {
            next: 0,
            max: u32::try_from(max).unwrap_or(u32::MAX),
            free: Vec::new(),
        }
    }

    fn take(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.next >= self.max {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    fn put(&mut self, id: u32) {
        self.free.push(id);
    }

    fn in_use(&self) -> usize {
        self.next as usize - self.free.len()
    }
}

/// Looks up the Ethernet header of a path (afpacket backends); `None` where the
/// kernel routes.
pub type L2Resolver = Box<dyn FnMut(SocketAddr, SocketAddr) -> Option<L2> + Send>;

/// Turns IKE core events into table operations. See the module documentation.
pub struct Installer {
    workers: usize,
    next_owner: usize,
    udp_only: bool,
    replay_window: u32,
    paths: Ids,
    tunnels: Ids,
    sas: SaMap<IkeView>,
    /// The IKE SAs of `sas` by the key of (local, remote) of their path, each with
    /// its path: what [`Installer::path_between`] asks for every IKE message sent.
    by_addrs: HashMap<u64, PairSas, PairHasher>,
    pair_keys: PairKeys,
    children: HashMap<ChildId, ChildRec>,
    /// By tunnel id: the ids are small and dense (reused), so a vector beats a map
    /// (no key, no control bytes).
    tunnel_recs: Vec<Option<TunnelRec>>,
    lingering: Lingering,
    l2: Option<L2Resolver>,
}

impl Installer {
    /// An installer for a table of `writer`'s sizes. `udp_only`: the cipher backend
    /// cannot send plain ESP (the `udp` backend), so every path is UDP-encapsulated.
    pub fn new(writer: &TableWriter, udp_only: bool, replay_window: u32) -> Installer {
        let tc = writer.config();
        Installer {
            workers: tc.workers.max(1),
            next_owner: 0,
            udp_only,
            replay_window,
            paths: Ids::new(tc.max_paths),
            tunnels: Ids::new(tc.max_tunnels),
            sas: SaMap::default(),
            by_addrs: HashMap::default(),
            pair_keys: PairKeys::default(),
            children: HashMap::new(),
            tunnel_recs: Vec::new(),
            lingering: Lingering::default(),
            l2: None,
        }
    }

    /// Sets how a path's Ethernet header is found (afpacket cipher backend).
    pub fn with_l2(mut self, resolve: L2Resolver) -> Installer {
        self.l2 = Some(resolve);
        self
    }

    /// Whether every path is UDP-encapsulated whatever the IKE SA negotiated.
    pub fn udp_only(&self) -> bool {
        self.udp_only
    }

    /// The installed IKE SAs, by SPI.
    pub fn sas(&self) -> Vec<&IkeView> {
        let mut v: Vec<&IkeView> = self.sas.values().collect();
        v.sort_unstable_by_key(|s| s.sa);
        v
    }

    /// The installed children of IKE SA `sa`, oldest first.
    pub fn children_of(&self, sa: SaId) -> Vec<&ChildView> {
        self.sas
            .get(&sa)
            .map_or(&[][..], |s| s.children.as_slice())
            .iter()
            .filter_map(|c| self.children.get(c))
            .map(|c| &c.view)
            .collect()
    }

    /// The path of IKE SA `sa`.
    pub fn path_of(&self, sa: SaId) -> Option<PathId> {
        self.sas.get(&sa).map(|s| s.path)
    }

    /// The path of an established IKE SA between these addresses (for the link header of
    /// IKE messages sent through the dataplane); of several, the lowest SPI's.
    /// `w`: the table the installer writes, whose path records hold the addresses.
    pub fn path_between(
        &self,
        w: &TableWriter,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<PathId> {
        let sas = self.by_addrs.get(&self.pair_keys.key(local, remote))?;
        let on_pair = |p| {
            w.path(p)
                .is_some_and(|r| (r.spec.local, r.spec.remote) == (local, remote))
        };
        sas.iter().map(|(_, p)| p).find(|&p| on_pair(p))
    }

    /// Enters IKE SA `sa` with path `path` in the address index under (local, remote).
    fn index_addrs(&mut self, sa: SaId, path: PathId, local: SocketAddr, remote: SocketAddr) {
        match self.by_addrs.entry(self.pair_keys.key(local, remote)) {
            Entry::Vacant(e) => {
                e.insert(PairSas::One(sa, path));
            }
            Entry::Occupied(mut e) => e.get_mut().insert(sa, path),
        }
    }

    /// Takes IKE SA `sa` out of the address index, where its path's current record
    /// in `w` placed it.
    fn unindex_addrs(&mut self, w: &TableWriter, sa: SaId, path: PathId) {
        if let Some(spec) = w.path(path).map(|r| r.spec) {
            self.unindex_pair(sa, spec.local, spec.remote);
        }
    }

    /// Takes IKE SA `sa` out of the address index under (local, remote).
    fn unindex_pair(&mut self, sa: SaId, local: SocketAddr, remote: SocketAddr) {
        let key = self.pair_keys.key(local, remote);
        if let Some(m) = self.by_addrs.get_mut(&key) {
            if m.remove(sa) {
                self.by_addrs.remove(&key);
            }
        }
    }

    /// Paths, tunnels and child SAs held (zero when everything is down).
    pub fn in_use(&self) -> (usize, usize, usize) {
        (
            self.paths.in_use(),
            self.tunnels.in_use(),
            self.children.len(),
        )
    }

    fn owner(&mut self) -> u16 {
        let o = (self.next_owner % self.workers) as u16;
        self.next_owner = self.next_owner.wrapping_add(1);
        o
    }

    fn path_spec(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        encap: bool,
        behind_nat: bool,
    ) -> PathSpec {
        let udp = encap || self.udp_only;
        PathSpec {
            local,
            remote,
            encap: if udp { Encap::Udp } else { Encap::Esp },
            l2: self.l2.as_mut().and_then(|f| f(local, remote)),
            keepalive_ms: if udp && behind_nat { KEEPALIVE_MS } else { 0 },
        }
    }

    /// Stages what `ev` asks of the dataplane (`now` is recorded for IKE SAs). Events
    /// that concern only the control plane (`ChildFailed`) do nothing.
    pub fn on_event(
        &mut self,
        w: &mut TableWriter,
        now: u64,
        ev: &Event,
    ) -> Result<(), InstallError> {
        match ev {
            Event::IkeUp {
                sa,
                conn,
                initiator,
                local,
                remote,
                encap,
                behind_nat,
                ..
            } => {
                if let Some(old) = self.sas.get(sa) {
                    // Up twice: treat as a path change.
                    return self.move_path(w, *sa, old.path, *local, *remote, *encap, *behind_nat);
                }
                let path = self.paths.take().ok_or(InstallError::PathsFull)?;
                let spec = self.path_spec(*local, *remote, *encap, *behind_nat);
                if let Err(e) = w.set_path(path, spec) {
                    self.paths.put(path);
                    return Err(e.into());
                }
                self.index_addrs(*sa, path, *local, *remote);
                self.sas.insert(
                    *sa,
                    IkeView {
                        sa: *sa,
                        conn: *conn,
                        initiator: *initiator,
                        path,
                        up_ns: now,
                        children: ChildList::default(),
                    },
                );
                Ok(())
            }
            Event::ChildUp { sa, child } => self.child_up(w, *sa, child),
            Event::ChildDown { child, .. } => self.child_down(w, now, *child),
            Event::ChildFailed { .. } | Event::UpdateSent { .. } | Event::UpdateAnswered { .. } => {
                Ok(())
            }
            Event::IkeRekeyed { old, new } => {
                // RFC 7296 2.8: the children move to the new IKE SA; so does the path,
                // whose id stays: nothing changes on the wire.
                let mut v = self.sas.remove(old).ok_or(InstallError::UnknownSa(*old))?;
                self.unindex_addrs(w, *old, v.path);
                for c in v.children.as_slice() {
                    if let Some(c) = self.children.get_mut(c) {
                        c.view.sa = *new;
                    }
                }
                v.sa = *new;
                if let Some(spec) = w.path(v.path).map(|r| r.spec) {
                    self.index_addrs(*new, v.path, spec.local, spec.remote);
                }
                self.sas.insert(*new, v);
                Ok(())
            }
            Event::PathChanged {
                sa,
                local,
                remote,
                encap,
                behind_nat,
            } => {
                let v = self.sas.get(sa).ok_or(InstallError::UnknownSa(*sa))?;
                self.move_path(w, *sa, v.path, *local, *remote, *encap, *behind_nat)
            }
            Event::IkeDown { sa, reason } => self.ike_down(w, now, *sa, *reason),
        }
    }

    /// Points path `path` of IKE SA `sa` at new addresses, in the table and the index.
    #[allow(clippy::too_many_arguments)]
    fn move_path(
        &mut self,
        w: &mut TableWriter,
        sa: SaId,
        path: PathId,
        local: SocketAddr,
        remote: SocketAddr,
        encap: bool,
        behind_nat: bool,
    ) -> Result<(), InstallError> {
        let spec = self.path_spec(local, remote, encap, behind_nat);
        let was = w.path(path).map(|r| (r.spec.local, r.spec.remote));
        w.set_path(path, spec)?;
        if was != Some((local, remote)) {
            if let Some((l, r)) = was {
                self.unindex_pair(sa, l, r);
            }
            self.index_addrs(sa, path, local, remote);
        }
        Ok(())
    }

    fn child_up(
        &mut self,
        w: &mut TableWriter,
        sa: SaId,
        c: &ChildInfo,
    ) -> Result<(), InstallError> {
        let path = self.path_of(sa).ok_or(InstallError::UnknownSa(sa))?;
        if self.children.contains_key(&c.id) {
            return Ok(());
        }
        let cipher = c.cipher;
        let key_in =
            EspKey::new(cipher, &c.key_in).map_err(|e| InstallError::Key(e.to_string()))?;
        let key_out =
            EspKey::new(cipher, &c.key_out).map_err(|e| InstallError::Key(e.to_string()))?;
        let reuse = c
            .replaces
            .and_then(|old| self.children.get(&old))
            .map(|old| old.view.tunnel);
        let (tunnel, fresh) = match reuse {
            Some(t) => (t, false),
            None => {
                let local_ts = prefixes(&c.local_ts);
                let remote_ts = prefixes(&c.remote_ts);
                if local_ts.is_empty() || remote_ts.is_empty() {
                    return Err(InstallError::NoSelectors(c.id));
                }
                let id = self.tunnels.take().ok_or(InstallError::TunnelsFull)?;
                if let Err(e) = w.set_tunnel(Tunnel {
                    id,
                    local_ts,
                    remote_ts,
                }) {
                    self.tunnels.put(id);
                    return Err(e.into());
                }
                (id, true)
            }
        };
        let undo = |w: &mut TableWriter, ids: &mut Ids| {
            if fresh {
                let _ = w.remove_tunnel(tunnel);
                ids.put(tunnel);
            }
        };
        // An SPI freed by a delete may come back while its old SA still lingers.
        if self.unlinger(c.spi_in) {
            let _ = w.remove_inbound(c.spi_in);
        }
        let owner_in = self.owner();
        if let Err(e) = w.add_inbound(InboundSpec {
            spi: c.spi_in,
            owner: owner_in,
            esn: c.esn,
            replay_window: self.replay_window,
            key: key_in,
            tunnel,
        }) {
            undo(w, &mut self.tunnels);
            return Err(e.into());
        }
        // A rekey we answered: the old outbound SA stays until the old child goes.
        let defer = c.defer_outbound && reuse.is_some();
        let owner_out = self.owner();
        if defer {
            // Nothing to install now; see `child_down`.
        } else if let Err(e) = w.set_outbound(OutboundSpec {
            spi: c.spi_out,
            owner: owner_out,
            esn: c.esn,
            key: key_out,
            path,
            tunnel,
        }) {
            let _ = w.remove_inbound(c.spi_in);
            undo(w, &mut self.tunnels);
            return Err(e.into());
        }
        let i = tunnel as usize;
        if self.tunnel_recs.len() <= i {
            self.tunnel_recs.resize_with(i + 1, || None);
        }
        let rec = self.tunnel_recs[i].get_or_insert(TunnelRec {
            children: ChildList::default(),
            out: c.id,
        });
        rec.children.push(c.id);
        if !defer {
            if let Some(prev) = self.children.get_mut(&rec.out) {
                prev.view.outbound = false;
            }
            rec.out = c.id;
        }
        self.children.insert(
            c.id,
            ChildRec {
                view: ChildView {
                    id: c.id,
                    sa,
                    tunnel,
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    cipher: c.cipher,
                    esn: c.esn,
                    outbound: !defer,
                },
                key_out: c.key_out.as_slice().into(),
            },
        );
        if let Some(s) = self.sas.get_mut(&sa) {
            s.children.insert_sorted(c.id);
        }
        Ok(())
    }

    fn child_down(
        &mut self,
        w: &mut TableWriter,
        now: u64,
        child: ChildId,
    ) -> Result<(), InstallError> {
        let rec = self
            .children
            .remove(&child)
            .ok_or(InstallError::UnknownChild(child))?;
        let v = &rec.view;
        let tunnel = v.tunnel;
        if let Some(s) = self.sas.get_mut(&v.sa) {
            s.children.remove(child);
        }
        // Another child carries on in the tunnel: let this one's inbound SA linger for
        // ESP still in flight.
        let replaced = self
            .tunnel_rec(tunnel)
            .is_some_and(|t| t.children.len() > 1);
        let in_result = if replaced {
            self.linger(
                v.spi_in,
                tunnel,
                now.saturating_add(REPLACED_INBOUND_LINGER_NS),
            );
            Ok(())
        } else {
            w.remove_inbound(v.spi_in)
        };
        let Some(t) = self
            .tunnel_recs
            .get_mut(tunnel as usize)
            .and_then(Option::as_mut)
        else {
            return in_result.map_err(Into::into);
        };
        t.children.remove(child);
        if t.children.is_empty() {
            // The last child of the tunnel: its outbound SA and selectors go too, and
            // so do inbound SAs still lingering on it (the tunnel id will be reused).
            self.tunnel_recs[tunnel as usize] = None;
            self.tunnels.put(tunnel);
            let lingering: Vec<u32> = self
                .lingering
                .by_tunnel
                .range((tunnel, 0)..=(tunnel, u32::MAX))
                .map(|&(_, spi)| spi)
                .collect();
            for spi in lingering {
                if self.unlinger(spi) {
                    let _ = w.remove_inbound(spi);
                }
            }
            w.remove_tunnel(tunnel)?;
        } else if t.out == child {
            // The replacing child went first: the newest remaining one sends again.
            let Some(next) = t.children.last() else {
                return in_result.map_err(Into::into);
            };
            t.out = next;
            if let Some(n) = self.children.get_mut(&next) {
                n.view.outbound = true;
                let key = EspKey::new(n.view.cipher, &n.key_out)
                    .map_err(|e| InstallError::Key(e.to_string()))?;
                let path = self
                    .sas
                    .get(&n.view.sa)
                    .map(|s| s.path)
                    .ok_or(InstallError::UnknownSa(n.view.sa))?;
                let (spi, esn) = (n.view.spi_out, n.view.esn);
                let owner = self.owner();
                w.set_outbound(OutboundSpec {
                    spi,
                    owner,
                    esn,
                    key,
                    path,
                    tunnel,
                })?;
            }
        }
        in_result.map_err(Into::into)
    }

    fn ike_down(
        &mut self,
        w: &mut TableWriter,
        now: u64,
        sa: SaId,
        _reason: DownReason,
    ) -> Result<(), InstallError> {
        // The core reports the children down first; anything left is removed here so
        // that nothing outlives its IKE SA.
        let left = self
            .sas
            .get_mut(&sa)
            .map(|s| std::mem::take(&mut s.children))
            .unwrap_or_default();
        let mut first_err = None;
        for &c in left.as_slice() {
            if let Err(e) = self.child_down(w, now, c) {
                first_err.get_or_insert(e);
            }
        }
        let Some(v) = self.sas.remove(&sa) else {
            // Never came up (a failed setup): nothing was installed.
            return first_err.map_or(Ok(()), Err);
        };
        self.unindex_addrs(w, sa, v.path);
        self.paths.put(v.path);
        w.remove_path(v.path)?;
        first_err.map_or(Ok(()), Err)
    }

    /// Removes the lingering inbound SAs of replaced children whose time is up. Call it
    /// every turn, before [`Self::commit`].
    pub fn expire(&mut self, w: &mut TableWriter, now: u64) {
        while let Some(&(until, spi)) = self.lingering.by_time.first() {
            if until > now {
                break;
            }
            self.unlinger(spi);
            let _ = w.remove_inbound(spi);
        }
    }

    /// When [`Self::expire`] next has something to remove (the control loop sleeps until
    /// then at most).
    pub fn next_expiry(&self) -> Option<u64> {
        self.lingering.by_time.first().map(|&(until, _)| until)
    }

    /// Inbound SAs of replaced children still installed.
    pub fn lingering(&self) -> usize {
        self.lingering.by_spi.len()
    }

    /// Lets inbound SA `spi` of tunnel `tunnel` linger until `until`.
    fn linger(&mut self, spi: u32, tunnel: TunnelId, until: u64) {
        self.unlinger(spi);
        self.lingering.by_spi.insert(spi, Linger { until, tunnel });
        self.lingering.by_time.insert((until, spi));
        self.lingering.by_tunnel.insert((tunnel, spi));
    }

    /// Forgets lingering inbound SA `spi` (the caller removes it from the table);
    /// false if it was not lingering.
    fn unlinger(&mut self, spi: u32) -> bool {
        let Some(l) = self.lingering.by_spi.remove(&spi) else {
            return false;
        };
        self.lingering.by_time.remove(&(l.until, spi));
        self.lingering.by_tunnel.remove(&(l.tunnel, spi));
        true
    }

    fn tunnel_rec(&self, tunnel: TunnelId) -> Option<&TunnelRec> {
        self.tunnel_recs.get(tunnel as usize)?.as_ref()
    }

    /// Publishes what the batch staged, if anything.
    pub fn commit(&mut self, w: &mut TableWriter) -> Option<Publication> {
        w.is_dirty().then(|| w.publish())
    }
}

/// The dataplane matches on prefixes only: each selector becomes the shortest prefix
/// covering its address range (ports and protocol are not enforced there).
/// The covering prefixes of `ts`, without duplicates; the table keeps them for the
/// tunnel's life, so without spare capacity.
fn prefixes(ts: &[Selector]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = Vec::with_capacity(ts.len());
    for s in ts {
        let (addr, len) = s.covering_prefix();
        if let Some(p) = Prefix::new(addr, len) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out.shrink_to_fit();
    out
}

#[cfg(test)]
mod tests;
