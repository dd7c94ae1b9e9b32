//! The static configuration (`mobiked run -c FILE`, `mobiked check FILE`): YAML read with
//! `serde-saphyr`, then validated as a whole.
//!
//! Loading has three stages, each reporting every problem it finds (`error.rs`), with the
//! key path (`tunnels[0].outbound.key`), the line and column, what is wrong and how to fix
//! it:
//! 1. the text and its YAML syntax (`yaml.rs`): one document, no invisible or control
//!    characters, parsed under a budget that stops alias bombs and oversized input into a
//!    located tree (`tree.rs`); parser errors are put in the words of a configuration;
//! 2. keys and the shape of values (`keys.rs`): unknown keys with a did-you-mean, lists
//!    where mappings belong and the like, keys without a value (the accepted keys and
//!    shapes come from the serde structs themselves, so the two cannot drift apart);
//! 3. types and meaning: numbers, ranges, addresses, keys, references between sections.
//!
//! Stage 3 runs only once stage 2 is clean: a misspelt key usually also leaves a required
//! key missing, and reporting both would point twice at one mistake.
//!
//! A file runs static SAs (`paths`, `tunnels` with their `sa`s), IKE connections (`ike`,
//! `pools`, `connections`), or both; the `dataplane`, `cipher`, `clear` and `control`
//! sections serve either (`backend.rs`: what `cipher` and `clear` share). Each section
//! has its file, named for it, with its serde struct (`Raw*`), its validated form and
//! its check; a connection's parts have theirs below `connections/`. This file holds
//! what spans sections: the configuration as a whole, loading it, and the checks between
//! sections. The values several sections read are read once: numbers, words and hex in
//! `value.rs`, names in `name.rs`, addresses in `addr.rs`, prefixes in `prefix.rs`,
//! durations in `duration.rs`.

mod addr;
mod backend;
mod cipher;
mod clear;
mod connections;
mod control;
mod dataplane;
mod duration;
mod error;
mod ike;
mod keys;
mod name;
mod paths;
mod pools;
mod prefix;
mod sa;
mod tree;
mod tunnels;
mod value;
mod yaml;

pub use backend::RxRingConf;
pub use cipher::{CipherBackend, CipherConf};
pub use clear::{ClearBackend, ClearConf};
pub use connections::{ConnConf, INSTANCES_MAX, INSTANCE_PLACEHOLDER, PSK_MIN};
pub use control::{ControlConf, SOCKET_PATH_MAX};
pub use dataplane::{
    DataplaneConf, Mode, Poll, BURST_RANGE, MAX_SAS_MAX, PUNT_QUEUE_DEFAULT, PUNT_QUEUE_RANGE,
    REPLAY_WINDOW_MAX, WORKERS_MAX,
};
pub use duration::DURATION_MAX_S;
pub use error::{ConfigError, ConfigErrors};
pub use ike::{IkeListenConf, COOKIE_THRESHOLD_MAX};
pub use name::IFNAME_MAX;
pub use paths::{NextHop, PathConf, KEEPALIVE_MAX};
pub use pools::POOL_SIZE_MAX;
pub use sa::SaConf;
pub use tunnels::TunnelConf;

use serde_saphyr::Spanned;
use shared::path::{PathId, PathSpec, L2};
use shared::policy::{Tunnel, TunnelId};
use shared::sa::{EspKey, InboundSpec, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::ike::conn::PoolConf;
use value::Ctx;

/// Largest configuration file accepted (a static configuration is a few KiB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

// ---------------------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------------------

/// A validated configuration: static SAs, IKE connections, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticConfig {
    pub dataplane: DataplaneConf,
    pub cipher: CipherConf,
    pub clear: ClearConf,
    pub control: ControlConf,
    pub paths: Vec<PathConf>,
    pub tunnels: Vec<TunnelConf>,
    /// Where IKE listens (defaults when there are no connections).
    pub ike: IkeListenConf,
    /// The address pools defined under `pools:`, in file order.
    pub pools: Vec<PoolConf>,
    /// IKE connections, in file order, each with the pools it names filled in.
    pub connections: Vec<ConnConf>,
}

/// Name-to-id maps of what `StaticConfig::install` put into the tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstalledNames {
    pub paths: BTreeMap<String, PathId>,
    pub tunnels: BTreeMap<String, TunnelId>,
}

impl InstalledNames {
    pub fn path(&self, name: &str) -> Option<PathId> {
        self.paths.get(name).copied()
    }

    pub fn tunnel(&self, name: &str) -> Option<TunnelId> {
        self.tunnels.get(name).copied()
    }
}

/// Inbound SA slots and paths kept beyond `dataplane.max_sas`: a child rekey holds
/// two inbound SAs for a while, and rekeys are spread by their jitter.
pub fn rekey_room(max_sas: usize) -> usize {
    (max_sas / 32).max(4)
}

impl StaticConfig {
    /// Table sizes for this configuration: `max_sas` child SAs (tunnels), with
    /// [`rekey_room`] more inbound SAs and paths so that rekeys (the old inbound SA
    /// stays until the old child is deleted) and IKE SAs whose child is being
    /// refused never find the table full.
    pub fn table_config(&self) -> TableConfig {
        let n = self.dataplane.max_sas;
        let room = rekey_room(n);
        TableConfig {
            workers: self.dataplane.workers,
            max_inbound: n + room,
            max_outbound: n,
            max_paths: (n + room).max(self.paths.len()),
            max_tunnels: n.max(self.tunnels.len()),
        }
    }

    /// The path spec of `paths[i]` with link-layer addresses `l2`.
    pub fn path_spec(&self, path: &PathConf, l2: Option<L2>) -> PathSpec {
        PathSpec {
            local: path.local,
            remote: path.remote,
            encap: path.encap,
            l2,
            keepalive_ms: path.keepalive_s.saturating_mul(1000),
        }
    }

    /// Installs paths (ids in configuration order), tunnels (ids in order) and their SAs,
    /// then publishes. SA owners are assigned round-robin over the workers, outbound then
    /// inbound for each tunnel. `resolve_l2` supplies Ethernet addresses for a path
    /// (`Ok(None)` where the kernel routes).
    pub fn install(
        &self,
        writer: &mut TableWriter,
        mut resolve_l2: impl FnMut(&PathConf) -> Result<Option<L2>, String>,
    ) -> Result<InstalledNames, String> {
        let mut names = InstalledNames::default();
        for (i, p) in self.paths.iter().enumerate() {
            let id = i as PathId;
            let l2 = resolve_l2(p).map_err(|e| format!("paths[{i}] ({}): {e}", p.name))?;
            writer
                .set_path(id, self.path_spec(p, l2))
                .map_err(|e| format!("paths[{i}] ({}): {e}", p.name))?;
            names.paths.insert(p.name.clone(), id);
        }
        let workers = self.dataplane.workers.max(1);
        let mut next_owner = 0usize;
        let mut owner = || {
            let o = (next_owner % workers) as u16;
            next_owner += 1;
            o
        };
        for (i, t) in self.tunnels.iter().enumerate() {
            let id = i as TunnelId;
            let ctx = |e: &dyn fmt::Display| format!("tunnels[{i}] ({}): {e}", t.name);
            writer
                .set_tunnel(Tunnel {
                    id,
                    local_ts: t.local_ts.clone(),
                    remote_ts: t.remote_ts.clone(),
                })
                .map_err(|e| ctx(&e))?;
            let out = &t.outbound;
            writer
                .set_outbound(OutboundSpec {
                    spi: out.spi,
                    owner: owner(),
                    esn: out.esn,
                    key: EspKey::new(out.cipher, &out.key).map_err(|e| ctx(&e))?,
                    path: t.path_index as PathId,
                    tunnel: id,
                })
                .map_err(|e| ctx(&e))?;
            let inb = &t.inbound;
            writer
                .add_inbound(InboundSpec {
                    spi: inb.spi,
                    owner: owner(),
                    esn: inb.esn,
                    replay_window: inb.replay_window,
                    key: EspKey::new(inb.cipher, &inb.key).map_err(|e| ctx(&e))?,
                    tunnel: id,
                })
                .map_err(|e| ctx(&e))?;
            names.tunnels.insert(t.name.clone(), id);
        }
        writer.publish();
        Ok(names)
    }

    /// Number of static SAs (both directions).
    pub fn sa_count(&self) -> usize {
        self.tunnels.len() * 2
    }

    /// Number of IKE connections counting every instance of a client connection.
    pub fn instance_count(&self) -> usize {
        self.connections.iter().map(|c| c.instances as usize).sum()
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/// Reads and validates the configuration file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<StaticConfig, ConfigErrors> {
    let path = path.as_ref();
    let doc = |problem: String, fix: &str| {
        let mut e = ConfigErrors::default();
        e.push("", None, problem, fix);
        e
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        doc(
            format!("cannot read {}: {e}", path.display()),
            "check the path",
        )
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(doc(
            format!(
                "{} is {} bytes, more than the {} accepted",
                path.display(),
                meta.len(),
                MAX_FILE_BYTES
            ),
            "a static configuration is a few KiB; check the file",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        doc(
            format!("cannot read {}: {e}", path.display()),
            "check the path and its permissions",
        )
    })?;
    let text = yaml::decode(&path.display().to_string(), bytes)?;
    parse(&text)
}

/// Parses and validates a configuration held in memory.
pub fn parse(text: &str) -> Result<StaticConfig, ConfigErrors> {
    if text.len() as u64 > MAX_FILE_BYTES {
        let mut e = ConfigErrors::default();
        e.push(
            "",
            None,
            format!(
                "configuration is {} bytes, more than {MAX_FILE_BYTES}",
                text.len()
            ),
            "a configuration is a few KiB; check the file",
        );
        return Err(e);
    }
    // Stage 1: the text (one document, no invisible characters), then the syntax, into a
    // generic tree that remembers where every key is.
    yaml::check_text(text)?;
    let tree = yaml::parse_tree(text)?;
    if matches!(tree.value, tree::Node::Null) {
        let mut e = ConfigErrors::default();
        e.push(
            "",
            None,
            "the configuration is empty: it needs `connections` (IKE) or `tunnels` (static SAs)",
            yaml::WHAT_TO_ADD,
        );
        return Err(e);
    }
    // Stage 2: every key and the shape of every value.
    let mut errs = ConfigErrors::default();
    keys::check(&tree, &mut errs);
    if !errs.is_empty() {
        errs.sort();
        return Err(errs);
    }
    // Stage 3: into the serde structs, then meaning.
    let raw: RawConfig = serde_saphyr::from_str_with_options(text, tree::options())
        .map_err(|e| yaml::value_error(text, &tree, &e))?;
    let mut errs = ConfigErrors::default();
    let cfg = validate(&raw, &mut errs);
    errs.sort();
    match cfg {
        Some(cfg) if errs.is_empty() => Ok(cfg),
        _ => Err(errs),
    }
}

/// `mobiked check`: a one-line summary, or every error, one per line.
pub fn check_file(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    match load(path) {
        Ok(c) => {
            let mut s = format!(
                "ok: {}, {}, {}",
                plural(c.paths.len(), "path"),
                plural(c.tunnels.len(), "tunnel"),
                plural(c.sa_count(), "SA")
            );
            if !c.connections.is_empty() {
                s.push_str(&format!(", {}", plural(c.connections.len(), "connection")));
                if c.instance_count() > c.connections.len() {
                    s.push_str(&format!(" ({} instances)", c.instance_count()));
                }
                s.push_str(&format!(", {}", plural(c.pools.len(), "pool")));
            }
            Ok(s)
        }
        Err(errs) => Err(errs
            .iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
// ---------------------------------------------------------------------------------------
// Stage 3: the configuration as a whole, and the checks between its sections
// ---------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    dataplane: Option<Spanned<dataplane::RawDataplane>>,
    cipher: Option<Spanned<cipher::RawCipher>>,
    clear: Option<Spanned<clear::RawClear>>,
    control: Option<Spanned<control::RawControl>>,
    paths: Option<Spanned<Vec<Spanned<paths::RawPath>>>>,
    tunnels: Option<Spanned<Vec<Spanned<tunnels::RawTunnel>>>>,
    ike: Option<Spanned<ike::RawIke>>,
    pools: Option<Spanned<Vec<Spanned<pools::RawPool>>>>,
    connections: Option<Spanned<Vec<Spanned<connections::RawConn>>>>,
}

fn validate(raw: &RawConfig, errs: &mut ConfigErrors) -> Option<StaticConfig> {
    let mut cx = Ctx { errs };
    let dataplane = dataplane::validate(&mut cx, raw.dataplane.as_ref());
    let cipher = cipher::validate(&mut cx, raw.cipher.as_ref());
    let clear = clear::validate(&mut cx, raw.clear.as_ref());
    let control = control::validate(&mut cx, raw.control.as_ref());
    let paths = paths::validate(&mut cx, raw.paths.as_ref(), cipher.as_ref());
    // Tunnels refer to paths by the names written, valid or not, so that one broken path
    // does not also make every tunnel on it report an unknown name.
    let path_names: Vec<Option<String>> = raw.paths.as_ref().map_or(Vec::new(), |l| {
        l.value
            .iter()
            .map(|p| p.value.name.as_ref().map(|n| n.value.clone()))
            .collect()
    });
    let tunnels = tunnels::validate(
        &mut cx,
        raw.tunnels.as_ref(),
        &path_names,
        dataplane.as_ref(),
    );
    if let (
        Some(dp),
        Some(ClearConf {
            backend: ClearBackend::Tun { .. },
            ..
        }),
        Some(d),
    ) = (dataplane.as_ref(), clear.as_ref(), raw.dataplane.as_ref())
    {
        if dp.workers > 1 {
            cx.err(
                "dataplane.workers",
                d.referenced,
                format!(
                    "{} workers, but the tun clear side has one queue and serves one worker",
                    dp.workers
                ),
                "set `workers: 1`, or use `clear.backend: afpacket` for several workers",
            );
        }
    }
    if let (Some(dp), Some(t)) = (dataplane.as_ref(), raw.tunnels.as_ref()) {
        if t.value.len() > dp.max_sas {
            cx.err(
                "tunnels",
                t.referenced,
                format!(
                    "{} tunnels need {} SA slots per direction, dataplane.max_sas is {}",
                    t.value.len(),
                    t.value.len(),
                    dp.max_sas
                ),
                "raise dataplane.max_sas",
            );
        }
    }
    let ike = ike_sections(
        &mut cx,
        raw.ike.as_ref(),
        raw.pools.as_ref(),
        raw.connections.as_ref(),
        cipher.as_ref(),
    );
    let n_tunnels = raw.tunnels.as_ref().map_or(0, |t| t.value.len());
    let n_conns = raw.connections.as_ref().map_or(0, |c| c.value.len());
    if n_tunnels == 0 && n_conns == 0 {
        // An empty list written out is where to add the entries.
        let written = [
            ("tunnels", raw.tunnels.as_ref().map(|t| t.referenced)),
            (
                "connections",
                raw.connections.as_ref().map(|c| c.referenced),
            ),
        ]
        .into_iter()
        .find_map(|(k, loc)| Some((k, loc?)));
        let (path, loc) = written.map_or(("", None), |(k, l)| (k, Some(l)));
        cx.errs.push(
            path,
            loc,
            "nothing to run: there are no `tunnels` (static SAs) and no `connections` (IKE)",
            yaml::WHAT_TO_ADD,
        );
    }
    // Every client instance holds at least one child SA: a slot in each direction.
    if let (Some(dp), Some(sections), Some(list)) =
        (dataplane.as_ref(), ike.as_ref(), raw.connections.as_ref())
    {
        let clients: usize = sections
            .connections
            .iter()
            .filter(|c| c.initiates())
            .map(|c| c.instances as usize)
            .sum();
        if clients > 0 && clients + n_tunnels > dp.max_sas {
            cx.err(
                "connections",
                list.referenced,
                format!(
                    "{clients} client connection instances and {n_tunnels} static tunnels need at least {} SA slots per direction, dataplane.max_sas is {}",
                    clients + n_tunnels,
                    dp.max_sas
                ),
                format!(
                    "raise dataplane.max_sas to at least {} (more leaves room for rekeying)",
                    clients + n_tunnels
                ),
            );
            return None;
        }
    }
    let ike = ike?;
    Some(StaticConfig {
        dataplane: dataplane?,
        cipher: cipher?,
        clear: clear?,
        control: control?,
        paths: paths.into_iter().collect::<Option<Vec<_>>>()?,
        tunnels: tunnels?,
        ike: ike.ike,
        pools: ike.pools,
        connections: ike.connections,
    })
}

/// What [`ike_sections`] produces.
struct IkeSections {
    ike: IkeListenConf,
    pools: Vec<PoolConf>,
    connections: Vec<ConnConf>,
}

/// The IKE sections (`ike`, `pools`, `connections`), which only make sense together.
fn ike_sections(
    cx: &mut Ctx<'_>,
    raw_ike: Option<&Spanned<ike::RawIke>>,
    raw_pools: Option<&Spanned<Vec<Spanned<pools::RawPool>>>>,
    raw_conns: Option<&Spanned<Vec<Spanned<connections::RawConn>>>>,
    cipher: Option<&CipherConf>,
) -> Option<IkeSections> {
    let have_conns = raw_conns.is_some_and(|c| !c.value.is_empty());
    if !have_conns {
        for (key, loc) in [
            ("ike", raw_ike.map(|r| r.referenced)),
            ("pools", raw_pools.map(|r| r.referenced)),
        ] {
            if let Some(loc) = loc {
                cx.err(
                    key,
                    loc,
                    "this section applies to IKE connections, and there are none",
                    "add `connections:` (see examples/gateway.yaml), or remove it",
                );
            }
        }
    }
    let ike = ike::validate(cx, raw_ike, cipher, have_conns);
    let pools = pools::validate(cx, raw_pools);
    let pool_names: Vec<Option<String>> = raw_pools.map_or(Vec::new(), |l| {
        l.value
            .iter()
            .map(|p| p.value.name.as_ref().map(|n| n.value.clone()))
            .collect()
    });
    // Connections are checked against the listen settings even when those had errors
    // (with the values read so far), so that every error is reported at once.
    let connections = match raw_conns {
        Some(list) => connections::validate(cx, list, &ike.0, &pools, &pool_names),
        None => Some(Vec::new()),
    };
    Some(IkeSections {
        ike: ike.1.then_some(ike.0)?,
        pools: pools.into_iter().collect::<Option<Vec<_>>>()?,
        connections: connections?,
    })
}
