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

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use shared::path::{Encap, PathId, PathSpec, L2};
use shared::policy::{Prefix, Tunnel, TunnelId};
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{Publication, TableError, TableWriter};

use crate::ike::conn::{Identity, Selector};
use crate::ike::sa::{ChildId, ChildInfo, ConnId, DownReason, Event, SaId};

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

/// An IKE SA as installed: its path and what `ctl sas` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeView {
    pub sa: SaId,
    pub conn: ConnId,
    pub initiator: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub encap: bool,
    pub peer_id: Option<Identity>,
    pub vip: Option<IpAddr>,
    pub path: PathId,
    /// `now` of the event that brought it up.
    pub up_ns: u64,
}

/// A child SA as installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildView {
    pub id: ChildId,
    pub sa: SaId,
    pub tunnel: TunnelId,
    pub spi_in: u32,
    pub spi_out: u32,
    pub cipher: EspCipher,
    pub esn: bool,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
    /// Whether its outbound SA is the tunnel's current one (false once a rekey replaced
    /// it: only its inbound SA remains until it is deleted).
    pub outbound: bool,
}

struct ChildRec {
    view: ChildView,
    /// Kept to restore the outbound SA should the replacing child go down first.
    key_out: Vec<u8>,
}

/// An inbound SA kept a little after its child went (see
/// [`REPLACED_INBOUND_LINGER_NS`]).
struct Linger {
    until: u64,
    spi: u32,
    tunnel: TunnelId,
}

struct TunnelRec {
    /// Children whose inbound SA points at this tunnel, oldest first.
    children: Vec<ChildId>,
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
    sas: HashMap<SaId, IkeView>,
    children: HashMap<ChildId, ChildRec>,
    tunnel_recs: HashMap<TunnelId, TunnelRec>,
    lingering: Vec<Linger>,
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
            sas: HashMap::new(),
            children: HashMap::new(),
            tunnel_recs: HashMap::new(),
            lingering: Vec::new(),
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
        let mut v: Vec<&ChildView> = self
            .children
            .values()
            .map(|c| &c.view)
            .filter(|c| c.sa == sa)
            .collect();
        v.sort_unstable_by_key(|c| c.id);
        v
    }

    /// The path of IKE SA `sa`.
    pub fn path_of(&self, sa: SaId) -> Option<PathId> {
        self.sas.get(&sa).map(|s| s.path)
    }

    /// The path of an established IKE SA between these addresses (for the link header of
    /// IKE messages sent through the dataplane).
    pub fn path_between(&self, local: SocketAddr, remote: SocketAddr) -> Option<PathId> {
        self.sas
            .values()
            .find(|s| s.local == local && s.remote == remote)
            .map(|s| s.path)
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
                peer_id,
                vip,
                ..
            } => {
                if let Some(old) = self.sas.get(sa) {
                    // Up twice: treat as a path change.
                    let path = old.path;
                    let spec = self.path_spec(*local, *remote, *encap, *behind_nat);
                    w.set_path(path, spec)?;
                    return Ok(());
                }
                let path = self.paths.take().ok_or(InstallError::PathsFull)?;
                let spec = self.path_spec(*local, *remote, *encap, *behind_nat);
                if let Err(e) = w.set_path(path, spec) {
                    self.paths.put(path);
                    return Err(e.into());
                }
                self.sas.insert(
                    *sa,
                    IkeView {
                        sa: *sa,
                        conn: *conn,
                        initiator: *initiator,
                        local: *local,
                        remote: *remote,
                        encap: *encap,
                        peer_id: peer_id.clone(),
                        vip: *vip,
                        path,
                        up_ns: now,
                    },
                );
                Ok(())
            }
            Event::ChildUp { sa, child } => self.child_up(w, *sa, child),
            Event::ChildDown { child, .. } => self.child_down(w, now, *child),
            Event::ChildFailed { .. } => Ok(()),
            Event::IkeRekeyed { old, new } => {
                // RFC 7296 2.8: the children move to the new IKE SA; so does the path,
                // whose id stays: nothing changes on the wire.
                let mut v = self.sas.remove(old).ok_or(InstallError::UnknownSa(*old))?;
                v.sa = *new;
                self.sas.insert(*new, v);
                for c in self.children.values_mut() {
                    if c.view.sa == *old {
                        c.view.sa = *new;
                    }
                }
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
                let path = v.path;
                let spec = self.path_spec(*local, *remote, *encap, *behind_nat);
                w.set_path(path, spec)?;
                if let Some(v) = self.sas.get_mut(sa) {
                    v.local = *local;
                    v.remote = *remote;
                    v.encap = *encap;
                }
                Ok(())
            }
            Event::IkeDown { sa, reason } => self.ike_down(w, now, *sa, *reason),
        }
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
        if let Some(i) = self.lingering.iter().position(|l| l.spi == c.spi_in) {
            self.lingering.swap_remove(i);
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
        let rec = self.tunnel_recs.entry(tunnel).or_insert(TunnelRec {
            children: Vec::new(),
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
                    local_ts: c.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                    outbound: !defer,
                },
                key_out: c.key_out.clone(),
            },
        );
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
        // Another child carries on in the tunnel: let this one's inbound SA linger for
        // ESP still in flight.
        let replaced = self
            .tunnel_recs
            .get(&tunnel)
            .is_some_and(|t| t.children.len() > 1);
        let in_result = if replaced {
            self.lingering.push(Linger {
                until: now.saturating_add(REPLACED_INBOUND_LINGER_NS),
                spi: v.spi_in,
                tunnel,
            });
            Ok(())
        } else {
            w.remove_inbound(v.spi_in)
        };
        let Some(t) = self.tunnel_recs.get_mut(&tunnel) else {
            return in_result.map_err(Into::into);
        };
        t.children.retain(|&c| c != child);
        if t.children.is_empty() {
            // The last child of the tunnel: its outbound SA and selectors go too, and
            // so do inbound SAs still lingering on it (the tunnel id will be reused).
            self.tunnel_recs.remove(&tunnel);
            self.tunnels.put(tunnel);
            self.lingering.retain(|l| {
                if l.tunnel == tunnel {
                    let _ = w.remove_inbound(l.spi);
                    false
                } else {
                    true
                }
            });
            w.remove_tunnel(tunnel)?;
        } else if t.out == child {
            // The replacing child went first: the newest remaining one sends again.
            let Some(&next) = t.children.last() else {
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
        let mut left: Vec<ChildId> = self
            .children
            .values()
            .filter(|c| c.view.sa == sa)
            .map(|c| c.view.id)
            .collect();
        left.sort_unstable();
        let mut first_err = None;
        for c in left {
            if let Err(e) = self.child_down(w, now, c) {
                first_err.get_or_insert(e);
            }
        }
        let Some(v) = self.sas.remove(&sa) else {
            // Never came up (a failed setup): nothing was installed.
            return first_err.map_or(Ok(()), Err);
        };
        self.paths.put(v.path);
        w.remove_path(v.path)?;
        first_err.map_or(Ok(()), Err)
    }

    /// Removes the lingering inbound SAs of replaced children whose time is up. Call it
    /// every turn, before [`Self::commit`].
    pub fn expire(&mut self, w: &mut TableWriter, now: u64) {
        self.lingering.retain(|l| {
            if l.until <= now {
                let _ = w.remove_inbound(l.spi);
                false
            } else {
                true
            }
        });
    }

    /// When [`Self::expire`] next has something to remove (the control loop sleeps until
    /// then at most).
    pub fn next_expiry(&self) -> Option<u64> {
        self.lingering.iter().map(|l| l.until).min()
    }

    /// Inbound SAs of replaced children still installed.
    pub fn lingering(&self) -> usize {
        self.lingering.len()
    }

    /// Publishes what the batch staged, if anything.
    pub fn commit(&mut self, w: &mut TableWriter) -> Option<Publication> {
        w.is_dirty().then(|| w.publish())
    }
}

/// The dataplane matches on prefixes only: each selector becomes the shortest prefix
/// covering its address range (ports and protocol are not enforced there).
fn prefixes(ts: &[Selector]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = Vec::new();
    for s in ts {
        let (addr, len) = s.covering_prefix();
        if let Some(p) = Prefix::new(addr, len) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::table::{Snapshot, TableConfig};
    use std::sync::Arc;

    const SA1: SaId = 0x1111_0000_0000_0001;
    const SA2: SaId = 0x2222_0000_0000_0002;

    fn writer(workers: usize) -> TableWriter {
        TableWriter::new(TableConfig::sized(workers, 16))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ike_up(sa: SaId, encap: bool) -> Event {
        ike_up_nat(sa, encap, false)
    }

    fn ike_up_nat(sa: SaId, encap: bool, behind_nat: bool) -> Event {
        Event::IkeUp {
            sa,
            conn: 0,
            initiator: true,
            local: addr("192.0.2.1:4500"),
            remote: addr("198.51.100.1:4500"),
            encap,
            behind_nat,
            peer_id: Some(Identity::Fqdn("gw.test".into())),
            vip: Some("10.3.0.1".parse().unwrap()),
            suite: crate::ike::crypto::IkeSuite {
                encr: crate::ike::crypto::Encr::AesGcm16_128,
                integ: None,
                prf: crate::ike::crypto::Prf::HmacSha2_256,
                dh: crate::ike::crypto::DhGroup::Curve25519,
            },
            setup_ns: 1_000_000,
        }
    }

    fn child(id: ChildId, spi_in: u32, spi_out: u32, replaces: Option<ChildId>) -> ChildInfo {
        let key = |b: u8| vec![b; 20];
        ChildInfo {
            id,
            spi_in,
            spi_out,
            cipher: EspCipher::AesGcm16_128,
            esn: false,
            key_in: key(spi_in as u8),
            key_out: key(spi_out as u8),
            local_ts: vec![Selector::host("10.3.0.1".parse().unwrap())],
            remote_ts: vec![Selector::prefix("10.1.0.0".parse().unwrap(), 24)],
            replaces,
            defer_outbound: false,
        }
    }

    fn up(sa: SaId, c: ChildInfo) -> Event {
        Event::ChildUp { sa, child: c }
    }

    fn down(sa: SaId, c: ChildId, spi_in: u32, spi_out: u32) -> Event {
        Event::ChildDown {
            sa,
            child: c,
            spi_in,
            spi_out,
        }
    }

    /// Applies a batch and publishes once, as the engine loop does.
    fn batch(i: &mut Installer, w: &mut TableWriter, evs: &[Event]) -> Arc<Snapshot> {
        for ev in evs {
            i.on_event(w, 1, ev).unwrap();
        }
        i.commit(w);
        w.published()
    }

    fn out_spi(s: &Snapshot, t: TunnelId) -> Option<u32> {
        s.outbound(t).map(|o| o.spi)
    }

    fn assert_empty(i: &Installer, s: &Snapshot) {
        assert_eq!(s.inbound_len(), 0);
        for id in 0..16 {
            assert!(s.tunnel(id).is_none(), "tunnel {id} left");
            assert!(s.outbound(id).is_none(), "outbound {id} left");
            assert!(s.path(id).is_none(), "path {id} left");
        }
        assert_eq!(i.in_use(), (0, 0, 0));
        assert!(i.sas().is_empty());
    }

    #[test]
    fn up_installs_path_tunnel_and_both_sas() {
        let mut w = writer(2);
        let mut i = Installer::new(&w, false, 64);
        let s = batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        let p = s.path(0).unwrap();
        assert_eq!(p.spec.encap, Encap::Esp);
        assert_eq!(p.spec.remote, addr("198.51.100.1:4500"));
        let t = s.tunnel(0).unwrap();
        assert_eq!(t.local_ts, vec!["10.3.0.1/32".parse::<Prefix>().unwrap()]);
        assert_eq!(t.remote_ts, vec!["10.1.0.0/24".parse::<Prefix>().unwrap()]);
        let o = s.outbound(0).unwrap();
        assert_eq!((o.spi, o.path, o.tunnel), (0x2000, 0, 0));
        let inb = s.inbound(0x1000).unwrap();
        assert_eq!((inb.tunnel, inb.replay_window), (0, 64));
        // Owners round-robin: inbound then outbound.
        assert_ne!(inb.owner, o.owner);
        assert_eq!(
            s.lookup_outbound("10.3.0.1".parse().unwrap(), "10.1.0.9".parse().unwrap())
                .map(|o| o.spi),
            Some(0x2000)
        );
        // Both events in one publication.
        assert_eq!(s.generation(), 1);
        let v = i.sas();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].path, 0);
        assert_eq!(i.children_of(SA1).len(), 1);
    }

    #[test]
    fn udp_only_backend_encapsulates_every_path() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, true, 64);
        let s = batch(&mut i, &mut w, &[ike_up(SA1, false)]);
        let p = s.path(0).unwrap().spec;
        assert_eq!(p.encap, Encap::Udp);
        // Encapsulated, but no NAT in front of us: nothing to keep alive.
        assert_eq!(p.keepalive_ms, 0);
    }

    #[test]
    fn nat_keepalives_only_while_a_nat_is_in_front_of_us() {
        // RFC 3948 4: the end behind a NAT sends keepalives, whichever role it has.
        let mut w = writer(1);
        let mut i = Installer::new(&w, true, 64);
        let mut up = ike_up_nat(SA1, true, true);
        if let Event::IkeUp { initiator, .. } = &mut up {
            *initiator = false;
        }
        let s = batch(&mut i, &mut w, &[up]);
        assert_eq!(s.path(0).unwrap().spec.keepalive_ms, KEEPALIVE_MS);
        let moved = |behind_nat| Event::PathChanged {
            sa: SA1,
            local: addr("192.0.2.9:4500"),
            remote: addr("198.51.100.1:4500"),
            encap: true,
            behind_nat,
        };
        // MOBIKE to a pair without a NAT: they stop; to one with a NAT again: back.
        let s = batch(&mut i, &mut w, &[moved(false)]);
        assert_eq!(s.path(0).unwrap().spec.keepalive_ms, 0);
        let s = batch(&mut i, &mut w, &[moved(true)]);
        assert_eq!(s.path(0).unwrap().spec.keepalive_ms, KEEPALIVE_MS);
    }

    #[test]
    fn a_rekey_we_answered_keeps_the_old_outbound_until_the_old_child_goes() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        let mut c2 = child(2, 0x1001, 0x2001, Some(1));
        c2.defer_outbound = true;
        let s = batch(&mut i, &mut w, &[up(SA1, c2)]);
        // The new inbound SA is there at once; we keep sending on the old one.
        assert!(s.inbound(0x1001).is_some());
        assert_eq!(out_spi(&s, 0), Some(0x2000));
        // The peer's DELETE of the old child: now the new one sends, and the old
        // inbound lingers.
        let s = batch(&mut i, &mut w, &[down(SA1, 1, 0x1000, 0x2000)]);
        assert_eq!(out_spi(&s, 0), Some(0x2001));
        assert!(s.inbound(0x1000).is_some());
        assert_eq!(i.lingering(), 1);
        i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
        let s = batch(&mut i, &mut w, &[]);
        assert!(s.inbound(0x1000).is_none());
        assert_eq!(out_spi(&s, 0), Some(0x2001));
    }

    #[test]
    fn rekey_switches_outbound_in_one_publication_and_keeps_old_inbound() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        let g = w.published().generation();
        let s = batch(
            &mut i,
            &mut w,
            &[up(SA1, child(2, 0x1001, 0x2001, Some(1)))],
        );
        assert_eq!(s.generation(), g + 1);
        // Same tunnel, new outbound, both inbound SAs.
        assert_eq!(out_spi(&s, 0), Some(0x2001));
        assert!(s.tunnel(1).is_none());
        assert_eq!(s.inbound(0x1000).unwrap().tunnel, 0);
        assert_eq!(s.inbound(0x1001).unwrap().tunnel, 0);
        // The old child goes: only its inbound SA leaves, after a grace period for ESP
        // still in flight.
        let s = batch(&mut i, &mut w, &[down(SA1, 1, 0x1000, 0x2000)]);
        assert!(s.inbound(0x1000).is_some());
        assert_eq!(i.lingering(), 1);
        // The control loop sleeps until the expiry: nothing goes before it, all at it.
        let due = i.next_expiry().expect("a lingering SA has an expiry");
        i.expire(&mut w, due - 1);
        assert_eq!(i.lingering(), 1);
        i.expire(&mut w, REPLACED_INBOUND_LINGER_NS);
        i.commit(&mut w);
        assert!(w.published().inbound(0x1000).is_some());
        i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
        let s = batch(&mut i, &mut w, &[]);
        assert_eq!(i.lingering(), 0);
        assert_eq!(i.next_expiry(), None);
        assert!(s.inbound(0x1000).is_none());
        assert!(s.inbound(0x1001).is_some());
        assert_eq!(out_spi(&s, 0), Some(0x2001));
        assert!(s.tunnel(0).is_some());
        // The last child goes: everything of the tunnel leaves; the path stays.
        let s = batch(&mut i, &mut w, &[down(SA1, 2, 0x1001, 0x2001)]);
        assert_eq!(s.inbound_len(), 0);
        assert!(s.tunnel(0).is_none());
        assert!(s.outbound(0).is_none());
        assert!(s.path(0).is_some());
        let s = batch(
            &mut i,
            &mut w,
            &[Event::IkeDown {
                sa: SA1,
                reason: DownReason::Deleted,
            }],
        );
        assert_empty(&i, &s);
    }

    #[test]
    fn a_lingering_spi_given_out_again_is_replaced_not_refused() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[
                ike_up(SA1, false),
                up(SA1, child(1, 0x1000, 0x2000, None)),
                up(SA1, child(2, 0x1001, 0x2001, Some(1))),
                down(SA1, 1, 0x1000, 0x2000),
            ],
        );
        assert_eq!(i.lingering(), 1);
        let old = w.published().inbound(0x1000).unwrap().install_id;
        // The next rekey draws the freed SPI 0x1000 again.
        let s = batch(
            &mut i,
            &mut w,
            &[up(SA1, child(3, 0x1000, 0x2002, Some(2)))],
        );
        assert_eq!(i.lingering(), 0);
        assert_eq!(out_spi(&s, 0), Some(0x2002));
        assert_ne!(s.inbound(0x1000).unwrap().install_id, old);
        assert_eq!(i.children_of(SA1).len(), 2);
    }

    #[test]
    fn replacing_child_down_first_restores_the_old_outbound() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[
                ike_up(SA1, false),
                up(SA1, child(1, 0x1000, 0x2000, None)),
                up(SA1, child(2, 0x1001, 0x2001, Some(1))),
            ],
        );
        let s = batch(&mut i, &mut w, &[down(SA1, 2, 0x1001, 0x2001)]);
        assert_eq!(out_spi(&s, 0), Some(0x2000));
        assert!(s.inbound(0x1000).is_some());
        // The tunnel carries on: the gone child's inbound SA lingers briefly too.
        assert_eq!(i.lingering(), 1);
        i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
        let s = batch(&mut i, &mut w, &[]);
        assert!(s.inbound(0x1001).is_none());
        assert!(i.children_of(SA1)[0].outbound);
    }

    #[test]
    fn ike_rekey_moves_children_and_path_then_path_change_moves_them() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        let s = batch(&mut i, &mut w, &[Event::IkeRekeyed { old: SA1, new: SA2 }]);
        // Nothing changes on the wire.
        assert_eq!(s.generation(), 1);
        assert_eq!(i.path_of(SA2), Some(0));
        assert_eq!(i.path_of(SA1), None);
        assert_eq!(i.children_of(SA2).len(), 1);
        // The old SA going down (as the core reports it) removes nothing.
        let err = i.on_event(
            &mut w,
            2,
            &Event::IkeDown {
                sa: SA1,
                reason: DownReason::Rekeyed,
            },
        );
        assert_eq!(err, Ok(()));
        let s = batch(
            &mut i,
            &mut w,
            &[Event::PathChanged {
                sa: SA2,
                local: addr("192.0.2.7:4500"),
                remote: addr("198.51.100.1:4500"),
                encap: true,
                behind_nat: false,
            }],
        );
        let p = s.path(0).unwrap();
        assert_eq!(p.spec.local, addr("192.0.2.7:4500"));
        assert_eq!(p.spec.encap, Encap::Udp);
        assert_eq!(p.generation, 2);
        assert_eq!(s.outbound(0).unwrap().path, 0);
        let s = batch(
            &mut i,
            &mut w,
            &[
                down(SA2, 1, 0x1000, 0x2000),
                Event::IkeDown {
                    sa: SA2,
                    reason: DownReason::DeletedByPeer,
                },
            ],
        );
        assert_empty(&i, &s);
    }

    #[test]
    fn ids_are_reused_and_nothing_leaks_over_many_sas() {
        let mut w = writer(2);
        let mut i = Installer::new(&w, false, 64);
        for round in 0..5u32 {
            let mut evs = Vec::new();
            for k in 0..4u64 {
                let sa = SA1 + k;
                let base = 0x10_000 + round * 100 + k as u32 * 10;
                evs.push(ike_up(sa, false));
                evs.push(up(sa, child(k * 10 + 1, base, base + 1, None)));
                evs.push(up(
                    sa,
                    child(k * 10 + 2, base + 2, base + 3, Some(k * 10 + 1)),
                ));
            }
            let s = batch(&mut i, &mut w, &evs);
            assert_eq!(s.inbound_len(), 8);
            assert_eq!(i.in_use(), (4, 4, 8));
            let mut evs = Vec::new();
            for k in 0..4u64 {
                // IkeDown with children still installed: they go too.
                evs.push(Event::IkeDown {
                    sa: SA1 + k,
                    reason: DownReason::PeerDead,
                });
            }
            let s = batch(&mut i, &mut w, &evs);
            assert_empty(&i, &s);
        }
        // Ids stayed within the first four.
        assert!(w.published().paths_len() <= 64);
    }

    #[test]
    fn a_failed_install_leaves_nothing_behind() {
        let mut w = writer(1);
        let mut i = Installer::new(&w, false, 64);
        batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        // Same inbound SPI again: refused, the second tunnel is withdrawn.
        let e = i.on_event(&mut w, 1, &up(SA1, child(2, 0x1000, 0x2001, None)));
        assert_eq!(
            e,
            Err(InstallError::Table(TableError::DuplicateSpi(0x1000)))
        );
        let s = batch(&mut i, &mut w, &[]);
        assert!(s.tunnel(1).is_none());
        // A short key is refused before anything is staged.
        let mut bad = child(3, 0x3000, 0x3001, None);
        bad.key_in.truncate(3);
        assert!(matches!(
            i.on_event(&mut w, 1, &up(SA1, bad)),
            Err(InstallError::Key(_))
        ));
        // A child of an unknown IKE SA.
        assert_eq!(
            i.on_event(&mut w, 1, &up(SA2, child(4, 0x4000, 0x4001, None))),
            Err(InstallError::UnknownSa(SA2))
        );
        let s = batch(
            &mut i,
            &mut w,
            &[Event::IkeDown {
                sa: SA1,
                reason: DownReason::Deleted,
            }],
        );
        assert_empty(&i, &s);
    }

    #[test]
    fn a_worker_reader_sees_the_installed_sas() {
        let mut w = writer(1);
        let mut reader = w.reader(0).unwrap();
        let mut i = Installer::new(&w, true, 64);
        batch(
            &mut i,
            &mut w,
            &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
        );
        let snap = reader.begin_burst();
        assert_eq!(snap.inbound(0x1000).map(|s| s.spi), Some(0x1000));
        assert_eq!(snap.outbound(0).map(|s| s.spi), Some(0x2000));
        assert_eq!(snap.path(0).map(|p| p.spec.encap), Some(Encap::Udp));
        reader.offline();
    }

    #[test]
    fn path_ids_run_out_cleanly() {
        let mut w = TableWriter::new(TableConfig::sized(1, 2));
        let mut i = Installer::new(&w, false, 64);
        i.on_event(&mut w, 1, &ike_up(1, false)).unwrap();
        i.on_event(&mut w, 1, &ike_up(2, false)).unwrap();
        assert_eq!(
            i.on_event(&mut w, 1, &ike_up(3, false)),
            Err(InstallError::PathsFull)
        );
        i.on_event(
            &mut w,
            1,
            &Event::IkeDown {
                sa: 1,
                reason: DownReason::Deleted,
            },
        )
        .unwrap();
        i.on_event(&mut w, 1, &ike_up(3, false)).unwrap();
        assert_eq!(i.path_of(3), Some(0));
    }
}
