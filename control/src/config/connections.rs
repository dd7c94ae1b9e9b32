//! `connections:`: IKE connections (RFC 7296), in the words a swanctl.conf or MyIKEv2
//! user knows (`proposals`, `local_ts`, `rekey_time`, `pools`, `vips`), validated into
//! the runtime [`Conn`]. This file holds the connection as a whole; each part has its
//! file below `connections/`: addresses, identities and key, proposals, virtual IPs and
//! pools, traffic selectors, lifetimes, liveness (DPD, retransmission) and MOBIKE.

mod addrs;
mod auth;
mod lifetimes;
mod liveness;
mod mobike;
mod proposals;
mod selectors;
mod vips;

use super::addr::{ip_of, u128_of};
use super::ike::IkeListenConf;
use super::name::Names;
use super::value::{Ctx, Many, S};
use crate::ike::conn::{Conn, Identity, PoolConf};
use mobike::{client_block, client_block_fits, mobike_gate, mobike_settings};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Copies of one client connection (`instances`).
pub const INSTANCES_MAX: u64 = 100_000;
/// Shortest pre-shared key accepted, in bytes. RFC 7296 2.15: the key must be as hard
/// to guess as the keys it protects; 8 bytes only stops obvious mistakes, and 32
/// random bytes (`0x` + 64 hex digits) are what a deployment should use.
pub const PSK_MIN: usize = 8;
/// The placeholder `local_id` carries for `instances` > 1: the copy's number, from 1.
pub const INSTANCE_PLACEHOLDER: &str = "%n";

/// One entry of `connections:`: the runtime connection and how many copies of it a
/// client runs (`instances`, 1 unless given; only with `vips`).
#[derive(Clone)]
pub struct ConnConf {
    /// With `instances` > 1, `conn.local_id` holds the `%n` placeholder: use
    /// [`ConnConf::instance`] to get each copy.
    pub conn: Conn,
    pub instances: u32,
    /// Client: the first address of the `startclntaddr` block (`None` without it).
    /// Instance `i` owns `addrs_per_tunnel` consecutive addresses from
    /// `client_start + (i-1) * addrs_per_tunnel`; see [`ConnConf::instance`].
    pub client_start: Option<IpAddr>,
    /// The prefix length written with `startclntaddr`, for whoever puts the addresses
    /// on an interface (a lab harness, the runtime).
    pub client_prefix_len: Option<u8>,
    /// `mobikeaddrpertunnel`: own addresses per instance; 0 without `startclntaddr`.
    pub addrs_per_tunnel: u32,
}

impl ConnConf {
    /// Copy `i` (1-based) of the connection: named `NAME#i` when there are several,
    /// `%n` in the local identity replaced by `i` so that every copy has its own
    /// identity (a gateway leases one virtual IP per identity).
    pub fn instance(&self, i: u32) -> Conn {
        let mut c = self.conn.clone();
        if self.instances > 1 {
            c.name = format!("{}#{i}", c.name);
        }
        let n = i.to_string();
        c.local_id = match c.local_id {
            Identity::Fqdn(s) => Identity::Fqdn(s.replace(INSTANCE_PLACEHOLDER, &n)),
            Identity::Email(s) => Identity::Email(s.replace(INSTANCE_PLACEHOLDER, &n)),
            other => other,
        };
        if let Some(local) = self.client_addrs(i) {
            c.local_addrs = local;
        }
        c
    }

    /// The addresses `startclntaddr` allocates to copy `i` (1-based), on the IKE port;
    /// `None` when the connection has no `startclntaddr`. The loader checked that every
    /// copy's block stays inside the prefix.
    pub fn client_addrs(&self, i: u32) -> Option<Vec<SocketAddr>> {
        let start = self.client_start?;
        let port = self.conn.local_addrs.first().map_or(500, |a| a.port());
        let n = u128::from(self.addrs_per_tunnel);
        let first = u128_of(start) + u128::from(i.saturating_sub(1)) * n;
        Some(
            (0..n)
                .map(|k| SocketAddr::new(ip_of(start.is_ipv6(), first + k), port))
                .collect(),
        )
    }

    /// Every copy, in order.
    pub fn instances(&self) -> impl Iterator<Item = Conn> + '_ {
        (1..=self.instances).map(|i| self.instance(i))
    }

    /// Whether this end starts the IKE SA (it knows its peer's address).
    pub fn initiates(&self) -> bool {
        !self.conn.peer_addrs.is_empty()
    }
}

impl PartialEq for ConnConf {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.conn, &other.conn);
        self.instances == other.instances
            && a.name == b.name
            && a.peer_addrs == b.peer_addrs
            && a.local_addrs == b.local_addrs
            && a.local_id == b.local_id
            && a.remote_id == b.remote_id
            && a.psk == b.psk
            && a.ike_proposals == b.ike_proposals
            && a.esp_proposals == b.esp_proposals
            && a.local_ts == b.local_ts
            && a.remote_ts == b.remote_ts
            && a.pools == b.pools
            && a.request_vip4 == b.request_vip4
            && a.request_vip6 == b.request_vip6
            && a.ike_lifetime == b.ike_lifetime
            && a.child_lifetime == b.child_lifetime
            && a.retransmit == b.retransmit
            && a.dpd == b.dpd
            && a.childless_timeout_ms == b.childless_timeout_ms
            && a.cookie_threshold == b.cookie_threshold
            && a.force_encap == b.force_encap
            && a.mobike == b.mobike
            && self.client_start == other.client_start
            && self.client_prefix_len == other.client_prefix_len
            && self.addrs_per_tunnel == other.addrs_per_tunnel
    }
}

impl Eq for ConnConf {}

impl fmt::Debug for ConnConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the pre-shared key.
        let c = &self.conn;
        f.debug_struct("ConnConf")
            .field("name", &c.name)
            .field("instances", &self.instances)
            .field("peer_addrs", &c.peer_addrs)
            .field("local_addrs", &c.local_addrs)
            .field("local_id", &c.local_id)
            .field("remote_id", &c.remote_id)
            .field("ike_proposals", &c.ike_proposals)
            .field("esp_proposals", &c.esp_proposals)
            .field("local_ts", &c.local_ts)
            .field("remote_ts", &c.remote_ts)
            .field("pools", &c.pools)
            .field("request_vip4", &c.request_vip4)
            .field("request_vip6", &c.request_vip6)
            .field("ike_lifetime", &c.ike_lifetime)
            .field("child_lifetime", &c.child_lifetime)
            .field("retransmit", &c.retransmit)
            .field("dpd", &c.dpd)
            .field("childless_timeout_ms", &c.childless_timeout_ms)
            .field("cookie_threshold", &c.cookie_threshold)
            .field("force_encap", &c.force_encap)
            .field("mobike", &c.mobike)
            .field("client_start", &self.client_start)
            .field("client_prefix_len", &self.client_prefix_len)
            .field("addrs_per_tunnel", &self.addrs_per_tunnel)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConn {
    name: Option<S>,
    peeraddr: Option<Many>,
    /// swanctl.conf's name for `peeraddr`.
    remote_addrs: Option<Many>,
    local_addrs: Option<Many>,
    local_id: Option<S>,
    remote_id: Option<S>,
    psk: Option<S>,
    proposals: Option<Many>,
    esp_proposals: Option<Many>,
    local_ts: Option<Many>,
    remote_ts: Option<Many>,
    pools: Option<Many>,
    vips: Option<Many>,
    rekey_time: Option<S>,
    over_time: Option<S>,
    rand_time: Option<S>,
    children: Option<Spanned<RawChildren>>,
    dpd_delay: Option<S>,
    dpd_timeout: Option<S>,
    childless_timeout: Option<S>,
    retransmit: Option<Spanned<RawRetransmit>>,
    encap: Option<S>,
    instances: Option<S>,
    mobike: Option<S>,
    disallownat: Option<S>,
    mobikerrcheck: Option<S>,
    mobikeiplifetime: Option<S>,
    mobikeipspread: Option<S>,
    mobikechangeaddrtype: Option<S>,
    mobikeaddrpergw: Option<S>,
    mobikedebounce: Option<S>,
    mobikeaddrpertunnel: Option<S>,
    startclntaddr: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChildren {
    rekey_time: Option<S>,
    life_time: Option<S>,
    rand_time: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetransmit {
    timeout: Option<S>,
    tries: Option<S>,
    max: Option<S>,
}

/// A connection with every default, the source of the defaults the parts fill in.
fn conn_defaults() -> Conn {
    Conn::new("", Identity::Fqdn(String::new()), &[])
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    list: &Spanned<Vec<Spanned<RawConn>>>,
    ike: &IkeListenConf,
    pools: &[Option<PoolConf>],
    pool_names: &[Option<String>],
) -> Option<Vec<ConnConf>> {
    let mut names = Names::new("connection", "connections");
    let mut out = Some(Vec::new());
    for (i, item) in list.value.iter().enumerate() {
        let c = validate_conn(cx, i, item, ike, pools, pool_names, &mut names);
        match (c, out.as_mut()) {
            (Some(c), Some(v)) => v.push(c),
            _ => out = None,
        }
    }
    out
}

fn validate_conn(
    cx: &mut Ctx<'_>,
    i: usize,
    item: &Spanned<RawConn>,
    ike: &IkeListenConf,
    pools: &[Option<PoolConf>],
    pool_names: &[Option<String>],
    names: &mut Names,
) -> Option<ConnConf> {
    let r = &item.value;
    let here = item.referenced;
    let prefix = format!("connections[{i}].");
    let at = |k: &str| format!("{prefix}{k}");
    let mut ok = true;

    let name = names.check(cx, i, here, r.name.as_ref(), "add `name: NAME`");

    let (peer_addrs, peer_bad) = addrs::peer_addrs(cx, &prefix, r, ike, &mut ok);
    let mut local_addrs = addrs::local_addrs(cx, &prefix, r, ike, &peer_addrs, &mut ok);

    // MOBIKE keys allowed here at all; then the client address block, which gives
    // copy 1's local addresses now (the local_id default) and is checked against
    // `instances` below.
    let mobike_on = mobike_gate(
        cx,
        &prefix,
        r,
        (!peer_bad).then_some(!peer_addrs.is_empty()),
        &mut ok,
    );
    let peer_families = (
        peer_addrs.iter().any(|(a, ..)| a.is_ipv4()),
        peer_addrs.iter().any(|(a, ..)| a.is_ipv6()),
    );
    let client = client_block(cx, &prefix, r, peer_families);
    if let Some(Some(b)) = &client {
        local_addrs = (0..u128::from(b.per_tunnel))
            .map(|k| SocketAddr::new(ip_of(b.start.is_ipv6(), u128_of(b.start) + k), ike.port))
            .collect();
    }

    let (local_id, remote_id) = auth::identities(cx, &prefix, r, here, &local_addrs);
    let psk = auth::psk(cx, &prefix, r, here);
    let (ike_proposals, esp_proposals) = proposals::conn_proposals(cx, &prefix, r);

    let (vip4, vip6) = vips::vips(cx, &prefix, r, &mut ok);
    let conn_pools = vips::conn_pools(cx, &prefix, r, pools, pool_names, &mut ok);
    if (vip4 || vip6) && peer_addrs.is_empty() && !peer_bad {
        cx.err(
            &at("vips"),
            r.vips.as_ref().map_or(here, |m| m.referenced),
            "a connection that requests a virtual IP initiates, and has no peeraddr",
            "add `peeraddr: GATEWAY-IP`",
        );
        ok = false;
    }

    let (local_ts, remote_ts) =
        selectors::traffic_selectors(cx, &prefix, r, here, (vip4, vip6), &conn_pools, &mut ok);

    let ike_lifetime = lifetimes::ike_lifetimes(cx, &prefix, r);
    let child_lifetime = lifetimes::child_lifetimes(cx, &at("children"), r.children.as_ref());
    let dpd = liveness::dpd(cx, &prefix, r);
    let childless_timeout_ms =
        lifetimes::childless_timeout(cx, &at("childless_timeout"), r.childless_timeout.as_ref());
    let retransmit = liveness::retransmit(cx, &at("retransmit"), r.retransmit.as_ref());
    let force_encap = match &r.encap {
        None => Some(false),
        Some(v) => cx.boolean(&at("encap"), v),
    };

    let instances = instances(cx, &prefix, r, here, local_id.as_ref(), &mut ok);

    let client = match (client, instances) {
        (Some(Some(b)), Some(n)) => {
            client_block_fits(cx, &at("startclntaddr"), r, &b, n, ike).then_some(Some(b))
        }
        (Some(None), _) => Some(None),
        _ => None,
    };
    let own_addrs = match &client {
        Some(Some(b)) => b.per_tunnel as usize,
        _ => local_addrs.len(),
    };
    let mobike = match mobike_on {
        Some(enabled) => mobike_settings(cx, &prefix, r, enabled, own_addrs),
        None => None,
    };

    let mut conn = Conn::new(&name?, local_id?, &psk?);
    conn.peer_addrs = peer_addrs.into_iter().map(|(a, ..)| a).collect();
    conn.local_addrs = local_addrs;
    conn.remote_id = remote_id?;
    conn.ike_proposals = ike_proposals?.into();
    conn.esp_proposals = esp_proposals?.into();
    conn.local_ts = local_ts?.into();
    conn.remote_ts = remote_ts?.into();
    conn.pools = conn_pools.into();
    conn.request_vip4 = vip4;
    conn.request_vip6 = vip6;
    conn.ike_lifetime = ike_lifetime?;
    conn.child_lifetime = child_lifetime?;
    conn.retransmit = retransmit?;
    conn.dpd = dpd?;
    conn.childless_timeout_ms = childless_timeout_ms?;
    conn.cookie_threshold = ike.cookie_threshold;
    conn.force_encap = force_encap?;
    conn.mobike = mobike?;
    let client = client?;
    ok.then_some(ConnConf {
        conn,
        instances: instances?,
        client_start: client.as_ref().map(|b| b.start),
        client_prefix_len: client.as_ref().map(|b| b.prefix_len),
        addrs_per_tunnel: client.as_ref().map_or(0, |b| b.per_tunnel),
    })
}

/// `instances`: copies of a client connection (1 unless given; only with `vips`), each
/// with its own identity (`%n` in `local_id`) since the gateway leases one virtual IP
/// per identity. `here` is where the connection starts.
fn instances(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    here: Location,
    local_id: Option<&Identity>,
    ok: &mut bool,
) -> Option<u32> {
    let at = |k: &str| format!("{prefix}{k}");
    let instances = match &r.instances {
        None => Some(1),
        Some(v) => {
            let n = cx.uint(
                &at("instances"),
                v,
                1..=INSTANCES_MAX,
                "copies of this connection",
            );
            if r.vips.is_none() {
                cx.err(
                    &at("instances"),
                    v.referenced,
                    "instances are copies of a client connection, each requesting its own virtual IP, and this connection has no vips",
                    "add `vips: [0.0.0.0]`, or remove `instances`",
                );
                None
            } else {
                n.map(|n| n as u32)
            }
        }
    };
    if let (Some(n), Some(id)) = (instances, local_id) {
        let templated = matches!(id, Identity::Fqdn(s) | Identity::Email(s) if s.contains(INSTANCE_PLACEHOLDER));
        if n > 1 && !templated {
            cx.err(
                &at("local_id"),
                r.local_id.as_ref().map_or(here, |v| v.referenced),
                format!("{n} instances would share one identity, and the gateway leases one virtual IP per identity"),
                format!("put {INSTANCE_PLACEHOLDER} (the copy's number, from 1) into local_id, e.g. client-{INSTANCE_PLACEHOLDER}@example.org"),
            );
            *ok = false;
        }
    }
    instances
}
