//! `connections:`: IKE connections (RFC 7296), in the words a swanctl.conf or MyIKEv2
//! user knows (`proposals`, `local_ts`, `rekey_time`, `pools`, `vips`), validated into
//! the runtime [`Conn`]. Each part of a connection has its file below `connections/`.

mod mobike;

use super::addr::{addr_port, ip_of, u128_of};
use super::duration::DURATION_MAX_S;
use super::ike::IkeListenConf;
use super::keys::suggest;
use super::name::validate_name;
use super::prefix::{disjoint_families, mapped, FAMILY_FIX};
use super::value::{items, Ctx, Many, S};
use crate::ike::conn::{
    Conn, Dpd, EspProposal, Identity, IkeProposal, Lifetimes, PoolConf, Retransmit, Selector,
};
use crate::ike::crypto::{DhGroup, Encr, EspEncr, Integ, Prf};
use mobike::{client_block, client_block_fits, mobike_gate, mobike_settings};
use serde_saphyr::{Location, Spanned};
use std::collections::HashMap;
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

const IKE_PROPOSAL_FIX: &str = "write ENCR-PRF-GROUP for AES-GCM (aes128gcm16-prfsha256-x25519), \
     ENCR-INTEG-GROUP for AES-CBC (aes128-sha256-x25519), or `default`";
const ESP_PROPOSAL_FIX: &str = "write AEAD[-GROUP][-esn] or CBC-INTEG[-GROUP][-esn], e.g. \
     aes128gcm16, chacha20poly1305, aes256-sha384, aes256gcm16-x25519 (PFS) or `default`";

/// The token an "unknown algorithm `X`" proposal error names.
fn unknown_token(msg: &str) -> Option<&str> {
    let rest = msg.split("algorithm `").nth(1)?;
    rest.split('`').next()
}

fn proposal_fix(msg: &str, esp: bool) -> String {
    let generic = if esp {
        ESP_PROPOSAL_FIX
    } else {
        IKE_PROPOSAL_FIX
    };
    let Some(tok) = unknown_token(msg) else {
        return generic.to_string();
    };
    if tok.starts_with("modp") {
        return "MODP groups are not implemented: use x25519, ecp256 or ecp384".to_string();
    }
    let mut names: Vec<&str> = Vec::new();
    if esp {
        names.extend(EspEncr::ALL.iter().map(|e| e.name()));
        names.extend(Integ::ALL.iter().map(|i| i.name()));
        names.extend(["esn", "noesn"]);
    } else {
        names.extend(Encr::ALL.iter().map(|e| e.name()));
        names.extend(Integ::ALL.iter().map(|i| i.name()));
        names.extend(Prf::ALL.iter().map(|p| p.name()));
    }
    names.extend(DhGroup::ALL.iter().map(|g| g.name()));
    match suggest(tok, &names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => generic.to_string(),
    }
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    list: &Spanned<Vec<Spanned<RawConn>>>,
    ike: &IkeListenConf,
    pools: &[Option<PoolConf>],
    pool_names: &[Option<String>],
) -> Option<Vec<ConnConf>> {
    let mut names: HashMap<String, usize> = HashMap::new();
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
    names: &mut HashMap<String, usize>,
) -> Option<ConnConf> {
    let r = &item.value;
    let here = item.referenced;
    let at = |k: &str| format!("connections[{i}].{k}");
    let loc_of = |v: &Option<S>| v.as_ref().map_or(here, |v| v.referenced);
    let mut ok = true;

    let name = match &r.name {
        None => {
            cx.missing(&at("name"), Some(here), "add `name: NAME`");
            None
        }
        Some(n) => {
            if !validate_name(cx, &at("name"), n) {
                None
            } else if let Some(first) = names.get(&n.value) {
                cx.err(
                    &at("name"),
                    n.referenced,
                    format!(
                        "connection name `{}` is already used by connections[{first}]",
                        n.value
                    ),
                    "give every connection its own name",
                );
                None
            } else {
                names.insert(n.value.clone(), i);
                Some(n.value.clone())
            }
        }
    };

    // Peer addresses (`peeraddr`, or swanctl.conf's `remote_addrs`).
    let peer_raw = match (&r.peeraddr, &r.remote_addrs) {
        (Some(_), Some(alias)) => {
            cx.err(
                &at("remote_addrs"),
                alias.referenced,
                "`remote_addrs` is another name for `peeraddr`, and both are given",
                "keep one of the two",
            );
            ok = false;
            None
        }
        (Some(p), None) => Some(("peeraddr", p)),
        (None, Some(p)) => Some(("remote_addrs", p)),
        (None, None) => None,
    };
    let mut peer_addrs: Vec<(SocketAddr, String, Location)> = Vec::new();
    let mut peer_bad = false;
    if let Some((key, m)) = peer_raw {
        for (p, s, loc) in items(&at(key), m) {
            if s == "%any" {
                continue;
            }
            match addr_port(&s, ike.port) {
                Ok(a) if a.ip().is_unspecified() || a.ip().is_multicast() => {
                    cx.err(
                        &p,
                        loc,
                        format!("{} cannot be a peer address", a.ip()),
                        "give the peer's unicast address, or %any (or no key) to accept any peer",
                    );
                    ok = false;
                    peer_bad = true;
                }
                Ok(a) if a.port() == 0 => {
                    cx.err(&p, loc, "port 0 is not a port", "use 500 (RFC 7296 2)");
                    ok = false;
                    peer_bad = true;
                }
                Ok(a) if peer_addrs.iter().any(|(b, ..)| *b == a) => {
                    cx.err(
                        &p,
                        loc,
                        format!("{a} is listed twice"),
                        "remove the duplicate",
                    );
                    ok = false;
                    peer_bad = true;
                }
                Ok(a) => peer_addrs.push((a, p, loc)),
                Err(e) => {
                    cx.err(&p, loc, e, "");
                    ok = false;
                    peer_bad = true;
                }
            }
        }
    }

    // Local addresses: where IKE listens, so each must be one of ike.listen.
    let mut local_addrs: Vec<SocketAddr> = Vec::new();
    if let Some(m) = &r.local_addrs {
        for (p, s, loc) in items(&at("local_addrs"), m) {
            match addr_port(&s, ike.port) {
                Ok(a) if a.port() != ike.port && a.port() != ike.port_nat_t => {
                    cx.err(
                        &p,
                        loc,
                        format!(
                            "IKE listens on ports {} and {}, not {}",
                            ike.port,
                            ike.port_nat_t,
                            a.port()
                        ),
                        "give the address alone, or change ike.port / ike.port_nat_t",
                    );
                    ok = false;
                }
                Ok(a) if a.ip().is_multicast() => {
                    cx.err(
                        &p,
                        loc,
                        format!("{} is a multicast address", a.ip()),
                        "give a local unicast address",
                    );
                    ok = false;
                }
                Ok(a) => {
                    let covered = ike.listen.iter().any(|l| {
                        *l == a.ip() || (l.is_unspecified() && l.is_ipv4() == a.is_ipv4())
                    });
                    if !covered {
                        let known = ike
                            .listen
                            .iter()
                            .map(|l| l.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        cx.err(
                            &p,
                            loc,
                            format!(
                                "{} is not an address IKE listens on (ike.listen: {known})",
                                a.ip()
                            ),
                            format!(
                                "add {} to ike.listen (and cipher.bind), or use one of those",
                                a.ip()
                            ),
                        );
                        ok = false;
                    } else if local_addrs.contains(&a) {
                        cx.err(
                            &p,
                            loc,
                            format!("{a} is listed twice"),
                            "remove the duplicate",
                        );
                        ok = false;
                    } else {
                        local_addrs.push(a);
                    }
                }
                Err(e) => {
                    cx.err(&p, loc, e, "");
                    ok = false;
                }
            }
        }
    }
    if r.local_addrs.is_some() && ok {
        for (a, p, loc) in &peer_addrs {
            if !local_addrs.iter().any(|l| l.is_ipv4() == a.is_ipv4()) {
                let fam = if a.is_ipv4() { "IPv4" } else { "IPv6" };
                cx.err(
                    p,
                    *loc,
                    format!("{a} is {fam}, and no local address is"),
                    format!("add an {fam} address to local_addrs, or give an address of the local family"),
                );
                ok = false;
            }
        }
    }
    if r.local_addrs.is_none() && !ike.listen.is_empty() {
        // IKE has one socket per listen address: no socket of a peer's family, no way
        // to reach the peer.
        for (a, p, loc) in &peer_addrs {
            if !ike.listen.iter().any(|l| l.is_ipv4() == a.is_ipv4()) {
                let (fam, other) = if a.is_ipv4() {
                    ("IPv4", "IPv6")
                } else {
                    ("IPv6", "IPv4")
                };
                let known = ike
                    .listen
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                cx.err(
                    p,
                    *loc,
                    format!("{} is {fam}, and IKE listens on no {fam} address (ike.listen: {known})", a.ip()),
                    format!("listen on an {fam} address as well (cipher.bind, and ike.listen if given), or give the peer's {other} address"),
                );
                ok = false;
            }
        }
    }
    if r.local_addrs.is_none() {
        // The addresses IKE listens on, in the family of a peer when one is known; a
        // wildcard is left to the runtime, which picks the source per route.
        local_addrs = ike
            .listen
            .iter()
            .filter(|l| !l.is_unspecified())
            .filter(|l| {
                peer_addrs.is_empty() || peer_addrs.iter().any(|(a, ..)| a.is_ipv4() == l.is_ipv4())
            })
            .map(|l| SocketAddr::new(*l, ike.port))
            .collect();
    }

    // MOBIKE keys allowed here at all; then the client address block, which gives
    // copy 1's local addresses now (the local_id default) and is checked against
    // `instances` below.
    let mobike_on = mobike_gate(
        cx,
        &at(""),
        r,
        (!peer_bad).then_some(!peer_addrs.is_empty()),
        &mut ok,
    );
    let peer_families = (
        peer_addrs.iter().any(|(a, ..)| a.is_ipv4()),
        peer_addrs.iter().any(|(a, ..)| a.is_ipv6()),
    );
    let client = client_block(cx, &at(""), r, peer_families);
    if let Some(Some(b)) = &client {
        local_addrs = (0..u128::from(b.per_tunnel))
            .map(|k| SocketAddr::new(ip_of(b.start.is_ipv6(), u128_of(b.start) + k), ike.port))
            .collect();
    }

    // Identities.
    let identity = |cx: &mut Ctx<'_>, key: &str, v: &S| -> Option<Identity> {
        let s = v.value.trim();
        if s.contains('=') {
            cx.err(
                &at(key),
                v.referenced,
                format!("`{s}` looks like a distinguished name; certificates are not supported"),
                "use an FQDN (gw.example.org or @gw.example.org), user@host, an IP address or @#hex",
            );
            return None;
        }
        match Identity::parse(s) {
            Ok(id) => Some(id),
            Err(e) => {
                cx.err(
                    &at(key),
                    v.referenced,
                    e,
                    "write an FQDN (gw.example.org or @gw.example.org), user@host, an IP address or @#hex",
                );
                None
            }
        }
    };
    let local_id = match &r.local_id {
        Some(v) if v.value.trim() == "%any" => {
            cx.err(
                &at("local_id"),
                v.referenced,
                "%any names no one: this end needs an identity",
                "write an FQDN, user@host, an IP address or @#hex",
            );
            None
        }
        Some(v) => identity(cx, "local_id", v),
        None => match local_addrs.first() {
            Some(a) => Some(match a.ip() {
                IpAddr::V4(ip) => Identity::Ipv4(ip),
                IpAddr::V6(ip) => Identity::Ipv6(ip),
            }),
            None => {
                cx.missing(
                    &at("local_id"),
                    Some(here),
                    "add `local_id: gw.example.org` (no local address to take it from)",
                );
                None
            }
        },
    };
    let remote_id = match &r.remote_id {
        None => Some(None),
        Some(v) if v.value.trim() == "%any" => Some(None),
        Some(v) => identity(cx, "remote_id", v).map(Some),
    };

    // RFC 7296 2.15: the key must be as unpredictable as the keys it protects.
    let psk = match &r.psk {
        None => {
            cx.missing(
                &at("psk"),
                Some(here),
                "add `psk: 0x...` (e.g. 32 random bytes from `head -c 32 /dev/urandom | xxd -p -c 64`)",
            );
            None
        }
        Some(v) => {
            let s = v.value.as_str();
            let bytes = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => {
                    let b = (hex.len().is_multiple_of(2)
                        && hex.bytes().all(|c| c.is_ascii_hexdigit()))
                    .then(|| {
                        (0..hex.len())
                            .step_by(2)
                            .filter_map(|k| {
                                hex.get(k..k + 2)
                                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                            })
                            .collect::<Vec<u8>>()
                    });
                    if b.is_none() {
                        cx.err(
                            &at("psk"),
                            v.referenced,
                            "a psk starting with 0x is read as hex, and this is not hex",
                            "give an even number of hex digits after 0x, or a passphrase not starting with 0x",
                        );
                    }
                    b
                }
                None => Some(s.as_bytes().to_vec()),
            };
            match bytes {
                Some(b) if b.len() < PSK_MIN => {
                    cx.err(
                        &at("psk"),
                        v.referenced,
                        format!(
                            "the pre-shared key is {} bytes; at least {PSK_MIN} are required",
                            b.len()
                        ),
                        "use 32 random bytes, e.g. 0x followed by the output of `head -c 32 /dev/urandom | xxd -p -c 64` (RFC 7296 2.15)",
                    );
                    None
                }
                other => other,
            }
        }
    };

    // Proposals.
    let ike_proposals = match &r.proposals {
        None => Some(IkeProposal::defaults()),
        Some(m) => proposals(
            cx,
            &at("proposals"),
            m,
            IkeProposal::parse,
            IkeProposal::defaults,
            false,
        ),
    };
    let esp_proposals = match &r.esp_proposals {
        None => Some(EspProposal::defaults()),
        Some(m) => proposals(
            cx,
            &at("esp_proposals"),
            m,
            EspProposal::parse,
            EspProposal::defaults,
            true,
        ),
    };

    // Virtual IPs (client) and pools (gateway).
    let (mut vip4, mut vip6) = (false, false);
    if let Some(m) = &r.vips {
        let list = items(&at("vips"), m);
        if list.is_empty() {
            cx.err(
                &at("vips"),
                m.referenced,
                "no virtual IP requested",
                "write [0.0.0.0] for an IPv4 address, [::] for IPv6, or remove the key",
            );
            ok = false;
        }
        for (p, s, loc) in list {
            let want = match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if a.is_unspecified() => Some(false),
                Ok(IpAddr::V6(a)) if a.is_unspecified() => Some(true),
                _ => None,
            };
            match want {
                Some(v6) if (v6 && vip6) || (!v6 && vip4) => {
                    cx.err(
                        &p,
                        loc,
                        format!("{s} is listed twice"),
                        "remove the duplicate",
                    );
                    ok = false;
                }
                Some(true) => vip6 = true,
                Some(false) => vip4 = true,
                None => {
                    cx.err(
                        &p,
                        loc,
                        format!("`{s}` cannot be requested"),
                        "request any address of a family: 0.0.0.0 (IPv4) or :: (IPv6); the gateway chooses it",
                    );
                    ok = false;
                }
            }
        }
    }
    let mut conn_pools: Vec<PoolConf> = Vec::new();
    if let Some(m) = &r.pools {
        if r.vips.is_some() {
            cx.err(
                &at("pools"),
                m.referenced,
                "a connection either requests a virtual IP (vips) or hands them out (pools), not both",
                "keep `vips` on the client's connection and `pools` on the gateway's",
            );
            ok = false;
        }
        let known: Vec<&str> = pool_names.iter().flatten().map(String::as_str).collect();
        let mut seen: Vec<String> = Vec::new();
        let list = items(&at("pools"), m);
        if list.is_empty() {
            cx.err(
                &at("pools"),
                m.referenced,
                "no pool named",
                match known.first() {
                    Some(k) => format!(
                        "name the pools to lease from, e.g. `pools: [{k}]`, or remove the key"
                    ),
                    None => "define a pool under `pools:` and name it here, or remove the key"
                        .to_string(),
                },
            );
            ok = false;
        }
        for (p, s, loc) in list {
            if seen.contains(&s) {
                cx.err(
                    &p,
                    loc,
                    format!("pool `{s}` is listed twice"),
                    "remove the duplicate",
                );
                ok = false;
                continue;
            }
            match pool_names
                .iter()
                .position(|n| n.as_deref() == Some(s.as_str()))
            {
                Some(idx) => {
                    if let Some(Some(pool)) = pools.get(idx) {
                        conn_pools.push(pool.clone());
                    }
                }
                None => {
                    let fix = match suggest(&s, &known) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None if known.is_empty() => {
                            "define the pool under `pools:` (name, addrs)".to_string()
                        }
                        None => format!("name one of the pools: {}", known.join(", ")),
                    };
                    cx.err(&p, loc, format!("no pool is named `{s}`"), fix);
                    ok = false;
                }
            }
            seen.push(s);
        }
    }
    if (vip4 || vip6) && peer_addrs.is_empty() && !peer_bad {
        cx.err(
            &at("vips"),
            r.vips.as_ref().map_or(here, |m| m.referenced),
            "a connection that requests a virtual IP initiates, and has no peeraddr",
            "add `peeraddr: GATEWAY-IP`",
        );
        ok = false;
    }

    // Traffic selectors. Families: those of the virtual IPs or pools, else IPv4.
    let mut fam_v4 = vip4 || conn_pools.iter().any(|p| p.start.is_ipv4());
    let fam_v6 = vip6 || conn_pools.iter().any(|p| p.start.is_ipv6());
    if !fam_v4 && !fam_v6 {
        fam_v4 = true;
    }
    let any: Vec<Selector> = [(fam_v4, false), (fam_v6, true)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, v6)| Selector::any(v6))
        .collect();
    let local_ts = match &r.local_ts {
        None if vip4 || vip6 => Some(Vec::new()),
        None => Some(any.clone()),
        Some(m) => selectors(cx, &at("local_ts"), m),
    };
    let remote_ts = match &r.remote_ts {
        None => Some(any),
        Some(m) => selectors(cx, &at("remote_ts"), m),
    };
    if let (Some(l), Some(rm)) = (&local_ts, &remote_ts) {
        let fams = |v: &[Selector]| {
            (
                v.iter().any(|s| !s.is_ipv6()),
                v.iter().any(|s| s.is_ipv6()),
            )
        };
        // Without local_ts a client's local selector is its virtual IP.
        let local = if l.is_empty() { (vip4, vip6) } else { fams(l) };
        if let Some(problem) = disjoint_families(local, fams(rm)) {
            let (key, m) = match (&r.remote_ts, &r.local_ts) {
                (Some(m), _) => ("remote_ts", Some(m)),
                (None, Some(m)) => ("local_ts", Some(m)),
                (None, None) => ("vips", r.vips.as_ref()),
            };
            cx.err(
                &at(key),
                m.map_or(here, |m| m.referenced),
                problem,
                FAMILY_FIX,
            );
            ok = false;
        }
    }

    // Lifetimes (swanctl.conf semantics).
    let ike_lifetime = ike_lifetimes(cx, &at(""), r);
    let child_lifetime = child_lifetimes(cx, &at("children"), r.children.as_ref());

    // Dead peer detection.
    let dpd_delay = match &r.dpd_delay {
        None => Some(30),
        Some(v) => cx.duration_s(&at("dpd_delay"), v),
    };
    let dpd = match (dpd_delay, &r.dpd_timeout) {
        (None, _) => None,
        (Some(d), None) => Some(Dpd {
            interval_s: d,
            timeout_s: if d == 0 { 60 } else { d.saturating_mul(2) },
        }),
        (Some(d), Some(v)) => match cx.duration_s(&at("dpd_timeout"), v) {
            Some(t) if d > 0 && t < d => {
                cx.err(
                    &at("dpd_timeout"),
                    v.referenced,
                    format!("dpd_timeout ({t}s) is shorter than dpd_delay ({d}s)"),
                    format!(
                        "give the liveness check at least the delay: dpd_timeout: {}s",
                        d * 2
                    ),
                );
                None
            }
            Some(0) if d > 0 => {
                cx.err(
                    &at("dpd_timeout"),
                    v.referenced,
                    "a liveness check needs time for the answer",
                    "give e.g. 60s",
                );
                None
            }
            Some(t) => Some(Dpd {
                interval_s: d,
                timeout_s: t,
            }),
            None => None,
        },
    };

    let childless_timeout_ms =
        childless_timeout(cx, &at("childless_timeout"), r.childless_timeout.as_ref());
    let retransmit = validate_retransmit(cx, &at("retransmit"), r.retransmit.as_ref());
    let force_encap = match &r.encap {
        None => Some(false),
        Some(v) => cx.boolean(&at("encap"), v),
    };

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
    if let (Some(n), Some(id)) = (instances, &local_id) {
        let templated = matches!(id, Identity::Fqdn(s) | Identity::Email(s) if s.contains(INSTANCE_PLACEHOLDER));
        if n > 1 && !templated {
            cx.err(
                &at("local_id"),
                loc_of(&r.local_id),
                format!("{n} instances would share one identity, and the gateway leases one virtual IP per identity"),
                format!("put {INSTANCE_PLACEHOLDER} (the copy's number, from 1) into local_id, e.g. client-{INSTANCE_PLACEHOLDER}@example.org"),
            );
            ok = false;
        }
    }

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
        Some(enabled) => mobike_settings(cx, &at(""), r, enabled, own_addrs),
        None => None,
    };

    let mut conn = Conn::new(&name?, local_id?, &psk?);
    conn.peer_addrs = peer_addrs.into_iter().map(|(a, ..)| a).collect();
    conn.local_addrs = local_addrs;
    conn.remote_id = remote_id?;
    conn.ike_proposals = ike_proposals?;
    conn.esp_proposals = esp_proposals?;
    conn.local_ts = local_ts?;
    conn.remote_ts = remote_ts?;
    conn.pools = conn_pools;
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

fn proposals<T>(
    cx: &mut Ctx<'_>,
    path: &str,
    m: &Many,
    parse: fn(&str) -> Result<T, crate::ike::conn::ProposalError>,
    defaults: fn() -> Vec<T>,
    esp: bool,
) -> Option<Vec<T>> {
    let list = items(path, m);
    if list.is_empty() {
        cx.err(
            path,
            m.referenced,
            "no proposal",
            "list at least one, or remove the key for the defaults",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (p, s, loc) in list {
        if s.eq_ignore_ascii_case("default") {
            if let Some(o) = out.as_mut() {
                o.extend(defaults());
            }
            continue;
        }
        match parse(&s.to_ascii_lowercase()) {
            Ok(prop) => {
                if let Some(o) = out.as_mut() {
                    o.push(prop);
                }
            }
            Err(e) => {
                let fix = proposal_fix(&e.0, esp);
                cx.err(&p, loc, e.0, fix);
                out = None;
            }
        }
    }
    out
}

fn selectors(cx: &mut Ctx<'_>, path: &str, m: &Many) -> Option<Vec<Selector>> {
    let list = items(path, m);
    if list.is_empty() {
        cx.err(
            path,
            m.referenced,
            "no traffic selector",
            "list at least one prefix; 0.0.0.0/0 or ::/0 for everything",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (p, s, loc) in list {
        match Selector::parse(&s) {
            Ok(sel) => {
                match mapped(sel.start, sel.end) {
                    Some((a, b)) => {
                        cx.err(
                        &p,
                        loc,
                        format!("`{s}` is an IPv4-mapped IPv6 selector, which no IPv4 packet matches"),
                        format!("write it in IPv4 (it covers {a} to {b})"),
                    );
                        out = None;
                    }
                    None => {
                        if let Some(o) = out.as_mut() {
                            o.push(sel);
                        }
                    }
                }
            }
            Err(e) => {
                cx.err(
                    &p,
                    loc,
                    e,
                    "write ADDRESS/LENGTH, optionally with [PROTOCOL/PORT], e.g. 10.1.0.0/24 or 10.1.0.0/24[tcp/443]",
                );
                out = None;
            }
        }
    }
    out
}

/// IKE SA: `rekey_time` (default 4h; 0 = never rekeyed and never expires),
/// `over_time` (hard expiry after the rekey time; default 10% of it), `rand_time`
/// (jitter subtracted from the rekey time; default `over_time`, at most half the rekey
/// time). `prefix` is `connections[i].`.
fn ike_lifetimes(cx: &mut Ctx<'_>, prefix: &str, r: &RawConn) -> Option<Lifetimes> {
    let defaults = Conn::new("", Identity::Fqdn(String::new()), &[]).ike_lifetime;
    let at = |k: &str| format!("{prefix}{k}");
    let rekey = match &r.rekey_time {
        None => Some(defaults.rekey_s),
        Some(v) => cx.duration_s(&at("rekey_time"), v),
    }?;
    let over = r
        .over_time
        .as_ref()
        .map(|v| (v, cx.duration_s(&at("over_time"), v)));
    let rand = r
        .rand_time
        .as_ref()
        .map(|v| (v, cx.duration_s(&at("rand_time"), v)));
    if rekey == 0 {
        for (key, v) in [("over_time", &over), ("rand_time", &rand)] {
            if let Some((v, _)) = v {
                cx.err(
                    &at(key),
                    v.referenced,
                    "with `rekey_time: 0` the IKE SA is never rekeyed and never expires",
                    "remove it, or give a rekey_time",
                );
            }
        }
        return (over.is_none() && rand.is_none()).then_some(Lifetimes {
            rekey_s: 0,
            life_s: 0,
            jitter_s: 0,
        });
    }
    let over = match over {
        None => Some((rekey / 10).max(1)),
        Some((v, Some(0))) => {
            cx.err(
                &at("over_time"),
                v.referenced,
                "over_time 0 would delete the IKE SA the moment it should be rekeyed",
                "give the rekey time to complete, e.g. 10m (the default is 10% of rekey_time)",
            );
            None
        }
        Some((_, o)) => o,
    }?;
    let jitter = match rand {
        None => Some(over.min(rekey / 2)),
        Some((v, Some(j))) if j >= rekey => {
            cx.err(
                &at("rand_time"),
                v.referenced,
                format!(
                    "rand_time ({j}s) is subtracted from rekey_time ({rekey}s) and must be smaller"
                ),
                format!("give at most {}s", rekey / 2),
            );
            None
        }
        Some((_, j)) => j,
    }?;
    Some(Lifetimes {
        rekey_s: rekey,
        life_s: rekey + over,
        jitter_s: jitter,
    })
}

/// Child SAs: `rekey_time` (default 1h; 0 = never rekeyed), `life_time` (hard expiry;
/// default 110% of rekey_time; with rekey_time 0, none unless given), `rand_time`
/// (default life_time - rekey_time, at most half the rekey time).
fn child_lifetimes(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&Spanned<RawChildren>>,
) -> Option<Lifetimes> {
    let defaults = Conn::new("", Identity::Fqdn(String::new()), &[]).child_lifetime;
    let at = |k: &str| format!("{path}.{k}");
    let r = raw.map(|r| &r.value);
    let rekey = match r.and_then(|r| r.rekey_time.as_ref()) {
        None => Some(defaults.rekey_s),
        Some(v) => cx.duration_s(&at("rekey_time"), v),
    };
    let life = r
        .and_then(|r| r.life_time.as_ref())
        .map(|v| (v, cx.duration_s(&at("life_time"), v)));
    let rand = r
        .and_then(|r| r.rand_time.as_ref())
        .map(|v| (v, cx.duration_s(&at("rand_time"), v)));
    let rekey = rekey?;
    if rekey == 0 {
        if let Some((v, _)) = &rand {
            cx.err(
                &at("rand_time"),
                v.referenced,
                "with `rekey_time: 0` child SAs are never rekeyed; there is no rekey to randomise",
                "remove it, or give a rekey_time",
            );
            return None;
        }
        return Some(Lifetimes {
            rekey_s: 0,
            life_s: match life {
                None => 0,
                Some((_, l)) => l?,
            },
            jitter_s: 0,
        });
    }
    let life = match life {
        None => Some(rekey + (rekey / 10).max(1)),
        Some((v, Some(l))) if l <= rekey => {
            cx.err(
                &at("life_time"),
                v.referenced,
                format!("life_time ({l}s) is not after rekey_time ({rekey}s)"),
                format!(
                    "the rekey needs time before the hard expiry: give more than {rekey}s, e.g. {}s",
                    rekey + (rekey / 10).max(1)
                ),
            );
            None
        }
        Some((_, l)) => l,
    }?;
    let jitter = match rand {
        None => Some((life - rekey).min(rekey / 2)),
        Some((v, Some(j))) if j >= rekey => {
            cx.err(
                &at("rand_time"),
                v.referenced,
                format!(
                    "rand_time ({j}s) is subtracted from rekey_time ({rekey}s) and must be smaller"
                ),
                format!("give at most {}s", rekey / 2),
            );
            None
        }
        Some((_, j)) => j,
    }?;
    Some(Lifetimes {
        rekey_s: rekey,
        life_s: life,
        jitter_s: jitter,
    })
}

/// `childless_timeout`: how long an established IKE SA may have no child SA, in ms (0 =
/// for ever). RFC 7296 allows childless IKE SAs; one left so by a peer that vanished
/// without a DELETE (and with DPD off) must not stay for ever.
fn childless_timeout(cx: &mut Ctx<'_>, path: &str, v: Option<&S>) -> Option<u64> {
    let Some(v) = v else {
        return Some(Conn::new("", Identity::Fqdn(String::new()), &[]).childless_timeout_ms);
    };
    match cx.duration_ms(path, v, 0..=DURATION_MAX_S * 1000)? {
        ms @ 1..=999 => {
            cx.err(
                path,
                v.referenced,
                format!(
                    "{ms}ms would delete an IKE SA in the moment between a child SA's \
                     deletion and its replacement"
                ),
                "give at least 1s (the default is 60s), or 0 to keep childless IKE SAs",
            );
            None
        }
        ms => Some(ms),
    }
}

/// `retransmit: { timeout, tries, max }`: the first wait, the transmissions in all, the
/// longest wait (the timeout doubles up to it; RFC 7296 2.1).
fn validate_retransmit(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&Spanned<RawRetransmit>>,
) -> Option<Retransmit> {
    let d = Conn::new("", Identity::Fqdn(String::new()), &[]).retransmit;
    let Some(raw) = raw else { return Some(d) };
    let r = &raw.value;
    let at = |k: &str| format!("{path}.{k}");
    let initial = match &r.timeout {
        None => Some(d.initial_ms),
        Some(v) => cx.duration_ms(&at("timeout"), v, 10..=60_000),
    };
    let tries = match &r.tries {
        None => Some(d.tries),
        Some(v) => cx
            .uint(&at("tries"), v, 1..=30, "transmissions of a request in all")
            .map(|n| n as u32),
    };
    let max = match (&r.max, initial) {
        (None, Some(i)) => Some(d.max_ms.max(i)),
        (None, None) => None,
        (Some(v), i) => match cx.duration_ms(&at("max"), v, 10..=3_600_000) {
            Some(m) if i.is_some_and(|i| m < i) => {
                cx.err(
                    &at("max"),
                    v.referenced,
                    format!(
                        "max ({m}ms) is shorter than the first timeout ({}ms)",
                        i.unwrap_or(0)
                    ),
                    "the timeout doubles up to max: give max at least the timeout",
                );
                None
            }
            m => m,
        },
    };
    Some(Retransmit {
        initial_ms: initial?,
        tries: tries?,
        max_ms: max?,
    })
}
