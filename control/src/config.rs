//! The static configuration (`mobiked run -c FILE`, `mobiked check FILE`): YAML read with
//! `serde-saphyr`, then validated as a whole.
//!
//! Loading has three stages, each reporting every problem it finds, with the key path
//! (`tunnels[0].outbound.key`), the line and column, what is wrong and how to fix it:
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
//! A file runs static SAs (`paths`, `tunnels`), IKE connections (`ike`, `pools`,
//! `connections`: see [`ike`]), or both; the `dataplane`, `cipher`, `clear` and `control`
//! sections serve either.

mod ike;
mod keys;
mod tree;
mod yaml;

pub use ike::{
    ConnConf, IkeListenConf, COOKIE_THRESHOLD_MAX, DURATION_MAX_S, INSTANCES_MAX,
    INSTANCE_PLACEHOLDER, POOL_SIZE_MAX, PSK_MIN,
};

use serde_saphyr::{Location, Spanned};
use shared::path::{Encap, PathId, PathSpec, L2};
use shared::rx_ring::{RxRing, BLOCK_TIMEOUT_MS};
use shared::policy::{Prefix, Tunnel, TunnelId};
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::ike::conn::PoolConf;
use keys::suggest;

/// Largest configuration file accepted (a static configuration is a few KiB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Packets per burst.
pub const BURST_RANGE: std::ops::RangeInclusive<u64> = 1..=256;
/// Anti-replay window in packets (0 disables).
pub const REPLAY_WINDOW_MAX: u64 = 8192;
/// Worker threads.
pub const WORKERS_MAX: u64 = 256;
/// SA slots per direction.
pub const MAX_SAS_MAX: u64 = 1 << 20;
/// IKE messages the dataplane holds for the control plane (`dataplane.punt_queue`); the
/// default follows `max_sas` within `PUNT_QUEUE_MIN..=PUNT_QUEUE_DEFAULT_MAX`.
pub const PUNT_QUEUE_RANGE: std::ops::RangeInclusive<u64> = 64..=(1 << 20);
pub const PUNT_QUEUE_MIN: usize = 1024;
pub const PUNT_QUEUE_DEFAULT_MAX: usize = 65_536;
/// `sun_path` holds 108 bytes including the terminating NUL (unix(7)).
pub const SOCKET_PATH_MAX: usize = 107;
/// IFNAMSIZ is 16 including the terminating NUL (netdevice(7)).
pub const IFNAME_MAX: usize = 15;
/// Longest NAT keepalive interval accepted, in seconds.
pub const KEEPALIVE_MAX: u64 = 3600;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `tunnels[0].outbound.key`; empty for the document as a whole.
    pub path: String,
    /// 1-based line and column in the file; 0 when unknown.
    pub line: u64,
    pub column: u64,
    /// What is wrong.
    pub problem: String,
    /// How to fix it (may be empty when the problem says it all).
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", shorten(&self.path))?;
        }
        f.write_str(&shorten(&self.problem))?;
        if !self.fix.is_empty() {
            write!(f, ": {}", shorten(&self.fix))?;
        }
        Ok(())
    }
}

/// Longest value quoted in full in a message, in characters.
const QUOTE_MAX: usize = 60;
/// Longest part of a message (path, problem, fix), in characters.
const PART_MAX: usize = 600;

/// A message part on one line, with every long quoted value (and any long run of text)
/// cut short, so that a pasted blob shows as its start and its length, not as a
/// screenful; a line break inside a value shows as `\n`.
fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(char::is_control) {
        let escaped: String = s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        return std::borrow::Cow::Owned(shorten(&escaped).into_owned());
    }
    let long_word = s.split(['.', ' ']).any(|w| w.chars().count() > QUOTE_MAX);
    if !long_word && s.chars().count() <= PART_MAX {
        return std::borrow::Cow::Borrowed(s);
    }
    let cut = |w: &str| -> String {
        if w.chars().count() <= QUOTE_MAX {
            return w.to_string();
        }
        let n = w.trim_matches(['`', ':', ',', '(', ')']).chars().count();
        let head: String = w.chars().take(QUOTE_MAX - 12).collect();
        let closing = w.len() - w.trim_end_matches(['`', ':', ',', ')']).len();
        format!("{head}... ({n} characters){}", &w[w.len() - closing..])
    };
    let mut out = s
        .split(' ')
        .map(|w| w.split('.').map(cut).collect::<Vec<_>>().join("."))
        .collect::<Vec<_>>()
        .join(" ");
    if out.chars().count() > PART_MAX {
        out = out.chars().take(PART_MAX).collect::<String>() + "...";
    }
    std::borrow::Cow::Owned(out)
}

/// Every problem found in a configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first error at exactly `path`.
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.path == path)
    }

    fn push(
        &mut self,
        path: impl Into<String>,
        loc: Option<Location>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = loc.map_or((0, 0), |l| (l.line(), l.column()));
        self.0.push(ConfigError {
            path: path.into(),
            line,
            column,
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn sort(&mut self) {
        // Located errors in file order; document-wide ones (line 0) last.
        self.0.sort_by_key(|e| (e.line == 0, e.line, e.column));
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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

/// Whether the fastpath encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Esp,
    /// Baseline: forward between the sides without encryption.
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConf {
    pub workers: usize,
    /// Core of worker i, when pinned.
    pub cores: Option<Vec<usize>>,
    pub burst: usize,
    pub replay_window: u32,
    pub max_sas: usize,
    pub mode: Mode,
    pub poll: Poll,
    /// IKE messages the dataplane queues for the control plane (each in a 2 KiB
    /// buffer): `dataplane.punt_queue`, else `max_sas` (one message per SA: every peer
    /// deleting at once) within `PUNT_QUEUE_MIN..=PUNT_QUEUE_DEFAULT_MAX`.
    pub punt_queue: usize,
}

/// What a worker does when its ports are idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Spin: the lowest latency, one core at 100 % per worker.
    Busy,
    /// Spin a while, then sleep until a packet or a queued message arrives (idle
    /// costs next to nothing).
    Adaptive,
}

/// The outer (encrypted) side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CipherConf {
    pub backend: CipherBackend,
    pub pcap: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CipherBackend {
    Udp {
        bind: Vec<SocketAddr>,
        gso: bool,
        gro: bool,
    },
    AfPacket {
        interface: String,
        rx: RxRingConf,
    },
}

/// How an afpacket port's receive ring hands frames over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRingConf {
    /// `blocks` (TPACKET_V3: throughput) or `frames` (TPACKET_V2: each frame at once).
    pub ring: RxRing,
    /// With `blocks`: a partly filled block is handed over after this long.
    pub block_timeout_ms: u32,
}

impl Default for RxRingConf {
    fn default() -> Self {
        RxRingConf {
            ring: RxRing::V3Blocks,
            block_timeout_ms: 1,
        }
    }
}

/// The inner (protected) side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearConf {
    pub backend: ClearBackend,
    pub pcap: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClearBackend {
    Tun {
        name: String,
    },
    AfPacket {
        interface: String,
        /// Destination MAC of decrypted packets (the protected host or router);
        /// broadcast when not given.
        next_hop_mac: Option<[u8; 6]>,
        rx: RxRingConf,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlConf {
    pub socket: Option<PathBuf>,
}

/// How an Ethernet-layer backend finds the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// From the kernel's neighbour table.
    Auto,
    Mac([u8; 6]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathConf {
    pub name: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub encap: Encap,
    /// Seconds without traffic before a NAT keepalive (RFC 3948 4); 0 = off.
    pub keepalive_s: u32,
    /// Only with the afpacket cipher backend.
    pub next_hop_mac: Option<NextHop>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConf {
    pub name: String,
    /// Name of the path, and its index in `StaticConfig::paths`.
    pub path: String,
    pub path_index: usize,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    pub outbound: SaConf,
    pub inbound: SaConf,
}

/// One direction's SA.
#[derive(Clone, PartialEq, Eq)]
pub struct SaConf {
    pub spi: u32,
    pub cipher: EspCipher,
    /// Key followed by the 4-byte salt for the AEAD transforms (RFC 4106, RFC 7634);
    /// encryption key followed by integrity key for AES-CBC + HMAC-SHA2.
    pub key: Vec<u8>,
    pub esn: bool,
    /// Inbound only: the anti-replay window (the dataplane default unless overridden).
    pub replay_window: u32,
}

impl fmt::Debug for SaConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SaConf")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("cipher", &self.cipher)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
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
// Stage 3: serde structs (every leaf a located string, so that type errors are reported
// with the key path and all at once) and semantic validation
// ---------------------------------------------------------------------------------------

type S = Spanned<String>;
type List = Spanned<Vec<S>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    dataplane: Option<Spanned<RawDataplane>>,
    cipher: Option<Spanned<RawCipher>>,
    clear: Option<Spanned<RawClear>>,
    control: Option<Spanned<RawControl>>,
    paths: Option<Spanned<Vec<Spanned<RawPath>>>>,
    tunnels: Option<Spanned<Vec<Spanned<RawTunnel>>>>,
    ike: Option<Spanned<ike::RawIke>>,
    pools: Option<Spanned<Vec<Spanned<ike::RawPool>>>>,
    connections: Option<Spanned<Vec<Spanned<ike::RawConn>>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    workers: Option<S>,
    cores: Option<List>,
    burst: Option<S>,
    replay_window: Option<S>,
    max_sas: Option<S>,
    mode: Option<S>,
    poll: Option<S>,
    punt_queue: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCipher {
    backend: Option<S>,
    bind: Option<List>,
    interface: Option<S>,
    rx_ring: Option<S>,
    rx_block_timeout_ms: Option<S>,
    gso: Option<S>,
    gro: Option<S>,
    pcap: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClear {
    backend: Option<S>,
    name: Option<S>,
    interface: Option<S>,
    next_hop_mac: Option<S>,
    rx_ring: Option<S>,
    rx_block_timeout_ms: Option<S>,
    pcap: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    name: Option<S>,
    local: Option<S>,
    remote: Option<S>,
    encap: Option<S>,
    keepalive: Option<S>,
    next_hop_mac: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    name: Option<S>,
    path: Option<S>,
    local_ts: Option<List>,
    remote_ts: Option<List>,
    outbound: Option<Spanned<RawSa>>,
    inbound: Option<Spanned<RawSa>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    spi: Option<S>,
    enc: Option<S>,
    key: Option<S>,
    esn: Option<S>,
    replay_window: Option<S>,
}

/// Validation context: the error list and helpers that name keys.
struct Ctx<'a> {
    errs: &'a mut ConfigErrors,
}

impl Ctx<'_> {
    fn err(
        &mut self,
        path: &str,
        loc: Location,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.errs.push(path, Some(loc), problem, fix);
    }

    fn missing(&mut self, path: &str, parent: Option<Location>, fix: impl Into<String>) {
        self.errs.push(path, parent, "required key is missing", fix);
    }

    /// An unsigned integer (decimal or 0x-hex) within `range`.
    fn uint(
        &mut self,
        path: &str,
        v: &S,
        range: std::ops::RangeInclusive<u64>,
        what: &str,
    ) -> Option<u64> {
        match parse_uint(&v.value) {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    path,
                    v.referenced,
                    format!("{n} is out of range ({what})"),
                    format!("give a value from {} to {}", range.start(), range.end()),
                );
                None
            }
            None => {
                self.err(
                    path,
                    v.referenced,
                    format!("{} ({what})", not_a_number(&v.value)),
                    format!("give a value from {} to {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, v: &S) -> Option<bool> {
        match v.value.as_str() {
            "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "off" => Some(false),
            other => {
                self.err(
                    path,
                    v.referenced,
                    format!("`{other}` is not a boolean"),
                    "write true or false",
                );
                None
            }
        }
    }

    /// One of `choices`, with a suggestion for a near miss.
    fn choice<'c>(&mut self, path: &str, v: &S, choices: &[&'c str]) -> Option<&'c str> {
        let lower = v.value.to_ascii_lowercase();
        if let Some(c) = choices.iter().find(|c| **c == lower) {
            return Some(c);
        }
        let fix = match suggest(&v.value, choices) {
            Some(s) => format!("did you mean `{s}`? (one of: {})", choices.join(", ")),
            None => format!("use one of: {}", choices.join(", ")),
        };
        self.err(
            path,
            v.referenced,
            format!("unknown value `{}`", v.value),
            fix,
        );
        None
    }

    fn socket_addr(&mut self, path: &str, v: &S) -> Option<SocketAddr> {
        let s = v.value.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(a);
        }
        let fix = if let Some(fix) = address_hint(s) {
            fix
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            match ip {
                IpAddr::V4(_) => format!("add the port, e.g. {ip}:4500"),
                IpAddr::V6(_) => format!("add the port with brackets, e.g. [{ip}]:4500 (a bare IPv6 address is ambiguous)"),
            }
        } else if s.matches(':').count() > 1 && !s.starts_with('[') {
            "write an IPv6 address in brackets before the port, e.g. [2001:db8::1]:4500".to_string()
        } else {
            "write IP:PORT, e.g. 192.0.2.1:4500 or [2001:db8::1]:4500 (host names are not resolved)"
                .to_string()
        };
        self.err(
            path,
            v.referenced,
            format!("`{s}` is not an address with a port"),
            fix,
        );
        None
    }

    fn ifname(&mut self, path: &str, v: &S) -> Option<String> {
        let s = v.value.as_str();
        let bad = s.is_empty()
            || s.len() > IFNAME_MAX
            || s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if bad {
            self.err(
                path,
                v.referenced,
                format!("`{s}` is not a valid interface name"),
                format!("use 1 to {IFNAME_MAX} characters without '/', ':' or spaces"),
            );
            return None;
        }
        Some(s.to_string())
    }

    fn file_path(&mut self, path: &str, v: &S) -> Option<PathBuf> {
        if v.value.trim().is_empty() || v.value.contains('\0') {
            self.err(
                path,
                v.referenced,
                "empty file name",
                "give a file path or remove the key",
            );
            return None;
        }
        Some(PathBuf::from(&v.value))
    }

    /// `name: present` only with `backend`; reports a key given for the other backend.
    fn only_with(&mut self, path: &str, loc: Option<Location>, key_backend: &str, backend: &str) {
        if let Some(loc) = loc {
            self.err(
                path,
                loc,
                format!(
                    "this key applies to the {key_backend} backend, but the backend is {backend}"
                ),
                format!("remove it, or set the backend to {key_backend}"),
            );
        }
    }
}

/// Why `s` is not what [`parse_uint`] reads.
fn not_a_number(s: &str) -> String {
    let t = s.trim().replace('_', "");
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if digits(&t) {
        format!("`{}` is too large", s.trim())
    } else if t.strip_prefix('-').is_some_and(digits) {
        format!("`{}` is negative", s.trim())
    } else if t.split_once('#').is_some_and(|(n, _)| digits(n)) {
        format!("`{s}` is not a whole number (a comment starts with a space and `#`)")
    } else {
        format!("`{s}` is not a whole number")
    }
}

/// What is wrong with an address and port that do not parse, when it is more than the
/// form: a port past 65535, or an IPv6 zone (`%eth0`), which no address here takes.
fn address_hint(s: &str) -> Option<String> {
    if s.contains('%') {
        return Some(
            "scoped IPv6 addresses (`%eth0`) are not supported: use a global or unique-local address"
                .to_string(),
        );
    }
    let (_, port) = s.rsplit_once(':')?;
    let n: u64 = port.parse().ok()?;
    (n > 65535).then(|| format!("port {n} is out of range: ports go from 1 to 65535"))
}

/// Decimal or `0x` hexadecimal, `_` allowed between digits.
fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn validate(raw: &RawConfig, errs: &mut ConfigErrors) -> Option<StaticConfig> {
    let mut cx = Ctx { errs };
    let dataplane = validate_dataplane(&mut cx, raw.dataplane.as_ref());
    let cipher = validate_cipher(&mut cx, raw.cipher.as_ref());
    let clear = validate_clear(&mut cx, raw.clear.as_ref());
    let control = validate_control(&mut cx, raw.control.as_ref());
    let paths = validate_paths(&mut cx, raw.paths.as_ref(), cipher.as_ref());
    // Tunnels refer to paths by the names written, valid or not, so that one broken path
    // does not also make every tunnel on it report an unknown name.
    let path_names: Vec<Option<String>> = raw.paths.as_ref().map_or(Vec::new(), |l| {
        l.value
            .iter()
            .map(|p| p.value.name.as_ref().map(|n| n.value.clone()))
            .collect()
    });
    let tunnels = validate_tunnels(
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
    let ike = ike::validate(
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

fn validate_dataplane(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<RawDataplane>>,
) -> Option<DataplaneConf> {
    let mut dp = DataplaneConf {
        workers: 1,
        cores: None,
        burst: 64,
        replay_window: 1024,
        max_sas: 4096,
        mode: Mode::Esp,
        poll: Poll::Adaptive,
        punt_queue: 0,
    };
    let Some(raw) = raw else {
        dp.punt_queue = default_punt_queue(dp.max_sas);
        return Some(dp);
    };
    let r = &raw.value;
    let mut ok = true;
    if let Some(v) = &r.workers {
        match cx.uint("dataplane.workers", v, 1..=WORKERS_MAX, "worker threads") {
            Some(n) => dp.workers = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.burst {
        match cx.uint("dataplane.burst", v, BURST_RANGE, "packets per burst") {
            Some(n) => dp.burst = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.replay_window {
        match cx.uint(
            "dataplane.replay_window",
            v,
            0..=REPLAY_WINDOW_MAX,
            "anti-replay window in packets (0 disables)",
        ) {
            Some(n) => dp.replay_window = n as u32,
            None => ok = false,
        }
    }
    if let Some(v) = &r.max_sas {
        match cx.uint(
            "dataplane.max_sas",
            v,
            1..=MAX_SAS_MAX,
            "SA slots per direction",
        ) {
            Some(n) => dp.max_sas = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.mode {
        match cx.choice("dataplane.mode", v, &["esp", "plain"]) {
            Some("plain") => dp.mode = Mode::Plain,
            Some(_) => dp.mode = Mode::Esp,
            None => ok = false,
        }
    }
    if let Some(v) = &r.poll {
        match cx.choice("dataplane.poll", v, &["busy", "adaptive"]) {
            Some("busy") => dp.poll = Poll::Busy,
            Some(_) => dp.poll = Poll::Adaptive,
            None => ok = false,
        }
    }
    if let Some(list) = &r.cores {
        let mut cores = Vec::new();
        for (i, c) in list.value.iter().enumerate() {
            let p = format!("dataplane.cores[{i}]");
            match cx.uint(&p, c, 0..=4095, "CPU number") {
                Some(n) if cores.contains(&(n as usize)) => {
                    cx.err(
                        &p,
                        c.referenced,
                        format!("core {n} is listed twice"),
                        "give each worker its own core",
                    );
                    ok = false;
                }
                Some(n) => cores.push(n as usize),
                None => ok = false,
            }
        }
        if list.value.len() != dp.workers {
            cx.err(
                "dataplane.cores",
                list.referenced,
                format!("{} cores listed for {} workers", list.value.len(), dp.workers),
                format!("list exactly one core per worker ({}), or remove `cores` to leave workers unpinned", dp.workers),
            );
            ok = false;
        }
        dp.cores = Some(cores);
    }
    dp.punt_queue = default_punt_queue(dp.max_sas);
    if let Some(v) = &r.punt_queue {
        match cx.uint(
            "dataplane.punt_queue",
            v,
            PUNT_QUEUE_RANGE,
            "IKE messages queued for the control plane, 2 KiB each; the default follows max_sas",
        ) {
            Some(n) => dp.punt_queue = n as usize,
            None => ok = false,
        }
    }
    ok.then_some(dp)
}

/// The punt queue for `max_sas` SA slots: room for one IKE message per SA (a peer that
/// deletes all its SAs at once sends that many), bounded both ways.
pub fn default_punt_queue(max_sas: usize) -> usize {
    max_sas.clamp(PUNT_QUEUE_MIN, PUNT_QUEUE_DEFAULT_MAX)
}

fn validate_cipher(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawCipher>>) -> Option<CipherConf> {
    let Some(raw) = raw else {
        cx.errs.push(
            "cipher",
            None,
            "required section is missing",
            "add `cipher:` with `backend: udp` and `bind: [IP:4500]` (the encrypted side)",
        );
        return None;
    };
    let r = &raw.value;
    let pcap = r.pcap.as_ref().and_then(|v| cx.file_path("cipher.pcap", v));
    let pcap_ok = r.pcap.is_none() || pcap.is_some();
    let Some(b) = &r.backend else {
        cx.missing(
            "cipher.backend",
            Some(raw.referenced),
            "add `backend: udp` or `backend: afpacket`",
        );
        return None;
    };
    let backend = match cx.choice("cipher.backend", b, &["udp", "afpacket"])? {
        "udp" => {
            rx_keys_only_with_afpacket(
                cx,
                "cipher",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
                "udp",
            );
            cx.only_with(
                "cipher.interface",
                r.interface.as_ref().map(|v| v.referenced),
                "afpacket",
                "udp",
            );
            let gso = r
                .gso
                .as_ref()
                .map_or(Some(true), |v| cx.boolean("cipher.gso", v));
            let gro = r
                .gro
                .as_ref()
                .map_or(Some(true), |v| cx.boolean("cipher.gro", v));
            let mut bind = Vec::new();
            let mut ok = r.interface.is_none();
            match &r.bind {
                None => {
                    cx.missing(
                        "cipher.bind",
                        Some(raw.referenced),
                        "add `bind: [\"IP:4500\"]` with the local addresses to listen on",
                    );
                    ok = false;
                }
                Some(list) if list.value.is_empty() => {
                    cx.err(
                        "cipher.bind",
                        list.referenced,
                        "no address to listen on",
                        "add at least one IP:PORT, e.g. 0.0.0.0:4500",
                    );
                    ok = false;
                }
                Some(list) => {
                    for (i, v) in list.value.iter().enumerate() {
                        let p = format!("cipher.bind[{i}]");
                        match cx.socket_addr(&p, v) {
                            Some(a) if bind.contains(&a) => {
                                cx.err(
                                    &p,
                                    v.referenced,
                                    format!("{a} is listed twice"),
                                    "remove the duplicate",
                                );
                                ok = false;
                            }
                            Some(a) if a.port() == 0 => {
                                cx.err(
                                    &p,
                                    v.referenced,
                                    "port 0 is not a fixed port",
                                    "use the NAT-T port, e.g. 4500 (RFC 3948)",
                                );
                                ok = false;
                            }
                            Some(a) => bind.push(a),
                            None => ok = false,
                        }
                    }
                }
            }
            if !ok {
                return None;
            }
            CipherBackend::Udp {
                bind,
                gso: gso?,
                gro: gro?,
            }
        }
        _ => {
            cx.only_with(
                "cipher.bind",
                r.bind.as_ref().map(|l| l.referenced),
                "udp",
                "afpacket",
            );
            cx.only_with(
                "cipher.gso",
                r.gso.as_ref().map(|v| v.referenced),
                "udp",
                "afpacket",
            );
            cx.only_with(
                "cipher.gro",
                r.gro.as_ref().map(|v| v.referenced),
                "udp",
                "afpacket",
            );
            let Some(i) = &r.interface else {
                cx.missing(
                    "cipher.interface",
                    Some(raw.referenced),
                    "add `interface: NAME`, the Ethernet interface of the encrypted side",
                );
                return None;
            };
            let interface = cx.ifname("cipher.interface", i)?;
            let rx = rx_ring(
                cx,
                "cipher",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
            )?;
            if r.bind.is_some() || r.gso.is_some() || r.gro.is_some() {
                return None;
            }
            CipherBackend::AfPacket { interface, rx }
        }
    };
    pcap_ok.then_some(CipherConf { backend, pcap })
}

fn validate_clear(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawClear>>) -> Option<ClearConf> {
    let Some(raw) = raw else {
        cx.errs.push(
            "clear",
            None,
            "required section is missing",
            "add `clear:` with `backend: tun` and `name: mtun0` (the protected side)",
        );
        return None;
    };
    let r = &raw.value;
    let pcap = r.pcap.as_ref().and_then(|v| cx.file_path("clear.pcap", v));
    let pcap_ok = r.pcap.is_none() || pcap.is_some();
    let Some(b) = &r.backend else {
        cx.missing(
            "clear.backend",
            Some(raw.referenced),
            "add `backend: tun` or `backend: afpacket`",
        );
        return None;
    };
    let backend = match cx.choice("clear.backend", b, &["tun", "afpacket"])? {
        "tun" => {
            cx.only_with(
                "clear.interface",
                r.interface.as_ref().map(|v| v.referenced),
                "afpacket",
                "tun",
            );
            cx.only_with(
                "clear.next_hop_mac",
                r.next_hop_mac.as_ref().map(|v| v.referenced),
                "afpacket",
                "tun",
            );
            rx_keys_only_with_afpacket(
                cx,
                "clear",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
                "tun",
            );
            let Some(n) = &r.name else {
                cx.missing(
                    "clear.name",
                    Some(raw.referenced),
                    "add `name: mtun0`, the TUN interface to attach or create",
                );
                return None;
            };
            let name = cx.ifname("clear.name", n)?;
            if r.interface.is_some() {
                return None;
            }
            ClearBackend::Tun { name }
        }
        _ => {
            cx.only_with(
                "clear.name",
                r.name.as_ref().map(|v| v.referenced),
                "tun",
                "afpacket",
            );
            let Some(i) = &r.interface else {
                cx.missing(
                    "clear.interface",
                    Some(raw.referenced),
                    "add `interface: NAME`, the Ethernet interface of the protected side",
                );
                return None;
            };
            let interface = cx.ifname("clear.interface", i)?;
            let next_hop_mac = match &r.next_hop_mac {
                None => None,
                Some(v) => match parse_mac(&v.value) {
                    Some(m) => Some(m),
                    None => {
                        cx.err(
                            "clear.next_hop_mac",
                            v.referenced,
                            format!("`{}` is not a MAC address", v.value),
                            "write the protected host's MAC as six hex pairs, e.g. 02:00:00:00:00:01, or remove the key to broadcast",
                        );
                        return None;
                    }
                },
            };
            let rx = rx_ring(
                cx,
                "clear",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
            )?;
            if r.name.is_some() {
                return None;
            }
            ClearBackend::AfPacket {
                interface,
                next_hop_mac,
                rx,
            }
        }
    };
    pcap_ok.then_some(ClearConf { backend, pcap })
}

/// `rx_ring` / `rx_block_timeout_ms` of an afpacket side.
fn rx_ring(
    cx: &mut Ctx<'_>,
    side: &str,
    ring: Option<&S>,
    timeout: Option<&S>,
) -> Option<RxRingConf> {
    let mut rx = RxRingConf::default();
    if let Some(v) = ring {
        let name = cx.choice(&format!("{side}.rx_ring"), v, &RxRing::NAMES)?;
        rx.ring = name.parse().ok()?;
    }
    if let Some(v) = timeout {
        let path = format!("{side}.rx_block_timeout_ms");
        if rx.ring == RxRing::V2Frames {
            cx.err(
                &path,
                v.referenced,
                "frame rings hand every frame over at once; there is no block to time out",
                "remove it, or set `rx_ring: blocks`",
            );
            return None;
        }
        let range = u64::from(*BLOCK_TIMEOUT_MS.start())..=u64::from(*BLOCK_TIMEOUT_MS.end());
        let ms = cx.uint(&path, v, range, "milliseconds")?;
        rx.block_timeout_ms = ms as u32;
    }
    Some(rx)
}

fn rx_keys_only_with_afpacket(
    cx: &mut Ctx<'_>,
    side: &str,
    ring: Option<&S>,
    timeout: Option<&S>,
    backend: &str,
) {
    for (key, v) in [("rx_ring", ring), ("rx_block_timeout_ms", timeout)] {
        cx.only_with(
            &format!("{side}.{key}"),
            v.map(|v| v.referenced),
            "afpacket",
            backend,
        );
    }
}

fn validate_control(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawControl>>) -> Option<ControlConf> {
    let Some(s) = raw.and_then(|r| r.value.socket.as_ref()) else {
        return Some(ControlConf::default());
    };
    let p = s.value.as_str();
    if p.is_empty() || p.contains('\0') {
        cx.err(
            "control.socket",
            s.referenced,
            "empty socket path",
            "give an absolute path such as /run/mobiked.sock, or remove the key",
        );
        return None;
    }
    if !p.starts_with('/') {
        cx.err(
            "control.socket",
            s.referenced,
            format!("`{p}` is a relative path"),
            format!(
                "use an absolute path (e.g. /run/{p}) so `mobiked ctl` finds it from any directory"
            ),
        );
        return None;
    }
    if p.ends_with('/') {
        cx.err(
            "control.socket",
            s.referenced,
            format!("`{p}` names a directory"),
            format!("name the socket file, e.g. {p}mobiked.sock"),
        );
        return None;
    }
    if p.len() > SOCKET_PATH_MAX {
        cx.err(
            "control.socket",
            s.referenced,
            format!(
                "the path is {} bytes; a unix socket path holds at most {SOCKET_PATH_MAX}",
                p.len()
            ),
            "choose a shorter path, e.g. under /run",
        );
        return None;
    }
    Some(ControlConf {
        socket: Some(PathBuf::from(p)),
    })
}

fn validate_name(cx: &mut Ctx<'_>, path: &str, v: &S) -> bool {
    let ok = !v.value.is_empty()
        && v.value.len() <= 64
        && v.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        cx.err(
            path,
            v.referenced,
            format!("`{}` is not a usable name", v.value),
            "use 1 to 64 letters, digits, '-', '_' or '.' (it is typed on the `mobiked ctl` command line)",
        );
    }
    ok
}

fn validate_paths(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawPath>>>>,
    cipher: Option<&CipherConf>,
) -> Vec<Option<PathConf>> {
    let Some(list) = raw else { return Vec::new() };
    let afpacket = matches!(
        cipher.map(|c| &c.backend),
        Some(CipherBackend::AfPacket { .. })
    );
    let backend_name = if afpacket { "afpacket" } else { "udp" };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let r = &item.value;
        let at = |k: &str| format!("paths[{i}].{k}");
        let mut ok = true;
        let name = match &r.name {
            None => {
                cx.missing(
                    &at("name"),
                    Some(item.referenced),
                    "add `name: NAME`; tunnels refer to their path by name",
                );
                ok = false;
                None
            }
            Some(n) => {
                if !validate_name(cx, &at("name"), n) {
                    ok = false;
                } else if let Some(first) = seen.get(&n.value) {
                    cx.err(
                        &at("name"),
                        n.referenced,
                        format!("path name `{}` is already used by paths[{first}]", n.value),
                        "give every path its own name",
                    );
                    ok = false;
                } else {
                    seen.insert(n.value.clone(), i);
                }
                Some(n.value.clone())
            }
        };
        let addr = |cx: &mut Ctx<'_>, key: &str, v: &Option<S>| match v {
            None => {
                cx.missing(
                    &at(key),
                    Some(item.referenced),
                    format!("add `{key}: IP:PORT`"),
                );
                None
            }
            Some(v) => cx.socket_addr(&at(key), v),
        };
        let local = addr(cx, "local", &r.local);
        let remote = addr(cx, "remote", &r.remote);
        let encap = match &r.encap {
            None => Some(Encap::Udp),
            Some(v) => match cx.choice(&at("encap"), v, &["udp", "esp"]) {
                Some("esp") => {
                    if !afpacket && cipher.is_some() {
                        cx.err(
                            &at("encap"),
                            v.referenced,
                            "plain ESP (IP protocol 50) needs the afpacket cipher backend; the udp backend sends only UDP",
                            "use `encap: udp` (RFC 3948), or set cipher.backend: afpacket",
                        );
                        None
                    } else {
                        Some(Encap::Esp)
                    }
                }
                Some(_) => Some(Encap::Udp),
                None => None,
            },
        };
        let keepalive = match &r.keepalive {
            None => Some(if encap == Some(Encap::Esp) { 0 } else { 20 }),
            Some(v) => match cx.uint(
                &at("keepalive"),
                v,
                0..=KEEPALIVE_MAX,
                "seconds without traffic before a NAT keepalive (0 = off)",
            ) {
                Some(n) if n > 0 && encap == Some(Encap::Esp) => {
                    cx.err(
                        &at("keepalive"),
                        v.referenced,
                        "NAT keepalives exist only with UDP encapsulation (RFC 3948 4)",
                        "remove `keepalive` or set it to 0 for `encap: esp`",
                    );
                    None
                }
                Some(n) => Some(n as u32),
                None => None,
            },
        };
        let next_hop_mac = match &r.next_hop_mac {
            None => afpacket.then_some(NextHop::Auto),
            Some(v) if !afpacket => {
                cx.err(
                    &at("next_hop_mac"),
                    v.referenced,
                    format!("this key applies to the afpacket backend, but cipher.backend is {backend_name}"),
                    "remove it: with the udp backend the kernel chooses the next hop",
                );
                ok = false;
                None
            }
            Some(v) if v.value.eq_ignore_ascii_case("auto") => Some(NextHop::Auto),
            Some(v) => match parse_mac(&v.value) {
                Some(m) => Some(NextHop::Mac(m)),
                None => {
                    cx.err(
                        &at("next_hop_mac"),
                        v.referenced,
                        format!("`{}` is not a MAC address", v.value),
                        "write `auto` (kernel neighbour table) or six hex pairs, e.g. 02:00:00:00:00:01",
                    );
                    ok = false;
                    None
                }
            },
        };
        if let (Some(l), Some(rm)) = (local, remote) {
            if l.is_ipv4() != rm.is_ipv4() {
                cx.err(
                    &at("remote"),
                    r.remote.as_ref().map_or(item.referenced, |v| v.referenced),
                    format!("local {l} and remote {rm} are of different address families"),
                    "use IPv4 at both ends or IPv6 at both ends of a path",
                );
                ok = false;
            }
            if rm.ip().is_unspecified() || rm.ip().is_multicast() {
                cx.err(
                    &at("remote"),
                    r.remote.as_ref().map_or(item.referenced, |v| v.referenced),
                    format!("{} cannot be a peer address", rm.ip()),
                    "give the peer's unicast address",
                );
                ok = false;
            }
            if encap == Some(Encap::Udp) && (l.port() == 0 || rm.port() == 0) {
                let key = if l.port() == 0 { "local" } else { "remote" };
                cx.err(
                    &at(key),
                    item.referenced,
                    "UDP encapsulation needs a port",
                    "use 4500 (RFC 3948)",
                );
                ok = false;
            }
            if let Some(CipherConf {
                backend: CipherBackend::Udp { bind, .. },
                ..
            }) = cipher
            {
                let covered = bind.iter().any(|b| {
                    b.port() == l.port()
                        && (b.ip() == l.ip()
                            || (b.ip().is_unspecified() && b.is_ipv4() == l.is_ipv4()))
                });
                if !covered {
                    let list = bind
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    cx.err(
                        &at("local"),
                        r.local.as_ref().map_or(item.referenced, |v| v.referenced),
                        format!("{l} is not an address the udp backend listens on (cipher.bind: {list})"),
                        format!("add {l} to cipher.bind, or use one of the bound addresses"),
                    );
                    ok = false;
                }
            }
        }
        let conf = match (ok, name, local, remote, encap, keepalive) {
            (true, Some(name), Some(local), Some(remote), Some(encap), Some(keepalive_s)) => {
                Some(PathConf {
                    name,
                    local,
                    remote,
                    encap,
                    keepalive_s,
                    next_hop_mac,
                })
            }
            _ => None,
        };
        out.push(conf);
    }
    out
}

fn validate_tunnels(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawTunnel>>>>,
    path_names: &[Option<String>],
    dp: Option<&DataplaneConf>,
) -> Option<Vec<TunnelConf>> {
    let Some(list) = raw else {
        return Some(Vec::new());
    };
    let default_window = dp.map_or(1024, |d| d.replay_window);
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut inbound_spis: HashMap<u32, String> = HashMap::new();
    let mut keys: Vec<(Vec<u8>, String)> = Vec::new();
    let mut out = Some(Vec::new());
    for (i, item) in list.value.iter().enumerate() {
        let r = &item.value;
        let at = |k: &str| format!("tunnels[{i}].{k}");
        let mut ok = true;
        let name = match &r.name {
            None => {
                cx.missing(&at("name"), Some(item.referenced), "add `name: NAME`");
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
                            "tunnel name `{}` is already used by tunnels[{first}]",
                            n.value
                        ),
                        "give every tunnel its own name",
                    );
                    None
                } else {
                    names.insert(n.value.clone(), i);
                    Some(n.value.clone())
                }
            }
        };
        let path = match &r.path {
            None => {
                cx.missing(
                    &at("path"),
                    Some(item.referenced),
                    "add `path: NAME`, naming one of `paths`",
                );
                None
            }
            Some(p) => {
                let found = path_names.iter().position(|n| n.as_ref() == Some(&p.value));
                match found {
                    Some(idx) => Some((p.value.clone(), idx)),
                    None => {
                        let known: Vec<&str> =
                            path_names.iter().flatten().map(String::as_str).collect();
                        let fix = match suggest(&p.value, &known) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if known.is_empty() => {
                                "define the path under `paths:`".to_string()
                            }
                            None => format!("name one of the paths: {}", known.join(", ")),
                        };
                        cx.err(
                            &at("path"),
                            p.referenced,
                            format!("no path is named `{}`", p.value),
                            fix,
                        );
                        None
                    }
                }
            }
        };
        let local_ts = selectors(cx, &at("local_ts"), &r.local_ts, item.referenced);
        let remote_ts = selectors(cx, &at("remote_ts"), &r.remote_ts, item.referenced);
        if let (Some(l), Some(rm), Some(loc)) = (&local_ts, &remote_ts, &r.remote_ts) {
            let fams = |v: &[Prefix]| {
                (
                    v.iter().any(|p| p.addr().is_ipv4()),
                    v.iter().any(|p| p.addr().is_ipv6()),
                )
            };
            if let Some(problem) = disjoint_families(fams(l), fams(rm)) {
                cx.err(&at("remote_ts"), loc.referenced, problem, FAMILY_FIX);
                ok = false;
            }
        }
        let sa = |cx: &mut Ctx<'_>, dir: &str, raw: &Option<Spanned<RawSa>>| -> Option<SaConf> {
            let Some(raw) = raw else {
                cx.missing(
                    &at(dir),
                    Some(item.referenced),
                    format!(
                        "add `{dir}: {{ spi: 0x..., enc: aes128gcm16, key: 0x..., esn: false }}`"
                    ),
                );
                return None;
            };
            validate_sa(cx, &at(dir), raw, dir == "inbound", default_window)
        };
        let outbound = sa(cx, "outbound", &r.outbound);
        let inbound = sa(cx, "inbound", &r.inbound);
        if let (Some(inb), Some(raw)) = (&inbound, &r.inbound) {
            let p = at("inbound.spi");
            if let Some(first) = inbound_spis.get(&inb.spi) {
                let loc = raw
                    .value
                    .spi
                    .as_ref()
                    .map_or(raw.referenced, |s| s.referenced);
                cx.err(
                    &p,
                    loc,
                    format!("inbound SPI {:#010x} is already used by {first}", inb.spi),
                    "inbound SPIs identify the SA on receipt (RFC 4303 2.1): give each inbound SA its own",
                );
                ok = false;
            } else {
                inbound_spis.insert(inb.spi, p);
            }
        }
        for (dir, sa, raw) in [
            ("outbound", &outbound, &r.outbound),
            ("inbound", &inbound, &r.inbound),
        ] {
            let (Some(sa), Some(raw)) = (sa, raw) else {
                continue;
            };
            let p = at(&format!("{dir}.key"));
            if let Some((_, first)) = keys.iter().find(|(k, _)| *k == sa.key) {
                let loc = raw
                    .value
                    .key
                    .as_ref()
                    .map_or(raw.referenced, |s| s.referenced);
                cx.err(
                    &p,
                    loc,
                    format!("the same key is used by {first}"),
                    "AES-GCM under one key from two senders repeats nonces (RFC 4106 8.1): generate a fresh key for every SA",
                );
                ok = false;
            } else {
                keys.push((sa.key.clone(), p));
            }
        }
        match (ok, name, path, local_ts, remote_ts, outbound, inbound) {
            (
                true,
                Some(name),
                Some((path, path_index)),
                Some(local_ts),
                Some(remote_ts),
                Some(outbound),
                Some(inbound),
            ) => {
                if let Some(v) = out.as_mut() {
                    v.push(TunnelConf {
                        name,
                        path,
                        path_index,
                        local_ts,
                        remote_ts,
                        outbound,
                        inbound,
                    });
                }
            }
            _ => out = None,
        }
    }
    out
}

fn selectors(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: &Option<List>,
    parent: Location,
) -> Option<Vec<Prefix>> {
    let Some(list) = raw else {
        cx.missing(
            path,
            Some(parent),
            format!(
                "add `{}: [PREFIX, ...]`, e.g. [10.1.0.0/24]",
                path.rsplit('.').next().unwrap_or(path)
            ),
        );
        return None;
    };
    if list.value.is_empty() {
        cx.err(
            path,
            list.referenced,
            "no traffic selector",
            "list at least one prefix; 0.0.0.0/0 or ::/0 for everything",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (i, v) in list.value.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match v.value.parse::<Prefix>() {
            Ok(pfx) => match mapped_v4(pfx.addr(), pfx.prefix_len()) {
                Some((a, len)) => {
                    cx.err(
                        &p,
                        v.referenced,
                        format!(
                            "`{}` is an IPv4-mapped IPv6 prefix, which no IPv4 packet matches",
                            v.value
                        ),
                        format!("write the IPv4 prefix: {a}/{len}"),
                    );
                    out = None;
                }
                None => {
                    if let Some(o) = out.as_mut() {
                        o.push(pfx);
                    }
                }
            },
            Err(e) => {
                cx.err(
                    &p,
                    v.referenced,
                    e.to_string(),
                    "write ADDRESS/LENGTH, e.g. 10.1.0.0/24 or 2001:db8::/64",
                );
                out = None;
            }
        }
    }
    out
}

/// The IPv4 form of an IPv4-mapped IPv6 prefix (`::ffff:10.1.0.0/120` is 10.1.0.0/24).
fn mapped_v4(addr: IpAddr, len: u8) -> Option<(std::net::Ipv4Addr, u8)> {
    match addr {
        IpAddr::V6(a) if len >= 96 => a.to_ipv4_mapped().map(|v4| (v4, len - 96)),
        _ => None,
    }
}

/// Local and remote selectors with no address family in common: no packet matches both,
/// so the tunnel would carry nothing. Families as (IPv4, IPv6).
fn disjoint_families(local: (bool, bool), remote: (bool, bool)) -> Option<String> {
    let fam = |f: (bool, bool)| if f.0 { "IPv4" } else { "IPv6" };
    let meet = (local.0 && remote.0) || (local.1 && remote.1);
    let known = local != (false, false) && remote != (false, false);
    (known && !meet).then(|| {
        format!(
            "the local selectors are {} only and the remote ones {} only: no packet matches both",
            fam(local),
            fam(remote)
        )
    })
}

const FAMILY_FIX: &str = "give both sides a prefix of one family: IPv4 packets go between \
     IPv4 prefixes, IPv6 packets between IPv6 prefixes";

/// Every transform name `enc` takes.
const CIPHERS: [&str; EspCipher::ALL.len()] = {
    let mut names = [""; EspCipher::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = EspCipher::ALL[i].name();
        i += 1;
    }
    names
};

fn validate_sa(
    cx: &mut Ctx<'_>,
    at: &str,
    raw: &Spanned<RawSa>,
    inbound: bool,
    default_window: u32,
) -> Option<SaConf> {
    let r = &raw.value;
    let key_path = |k: &str| format!("{at}.{k}");
    let spi = match &r.spi {
        None => {
            cx.missing(
                &key_path("spi"),
                Some(raw.referenced),
                "add `spi: 0x...` (a 32-bit value from 0x100 up)",
            );
            None
        }
        Some(v) => match parse_uint(&v.value) {
            None => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    not_a_number(&v.value),
                    "write the SPI in hex (0x00001001) or decimal, from 0x100 to 0xffffffff",
                );
                None
            }
            Some(0) => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    "SPI 0 is reserved (RFC 4303 2.1)",
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) if n < 256 => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    format!("SPI {n} is in the range 1-255 reserved by IANA (RFC 4303 2.1)"),
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) if n > u64::from(u32::MAX) => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    format!("{} does not fit in 32 bits", v.value),
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) => Some(n as u32),
        },
    };
    let cipher = match &r.enc {
        None => {
            cx.missing(
                &key_path("enc"),
                Some(raw.referenced),
                "add `enc:` with one of aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, aes256-sha384, ...",
            );
            None
        }
        Some(v) => match EspCipher::from_name(&v.value.to_ascii_lowercase()) {
            Some(c) => Some(c),
            None => {
                let lower = v.value.to_ascii_lowercase();
                let all = EspCipher::names();
                let fix = if lower.contains("gcm8")
                    || lower.contains("gcm12")
                    || lower.contains("gcm64")
                    || lower.contains("gcm96")
                {
                    "only the 16-octet ICV is supported: use aes128gcm16 or aes256gcm16".to_string()
                } else if lower.contains("192") {
                    format!("AES-192 is not supported: use one of {all}")
                } else if lower.contains("sha1") || lower.contains("md5") {
                    format!("HMAC-SHA1 and MD5 are not supported (RFC 8221): use one of {all}")
                } else if let Some(s) = suggest(&lower, &CIPHERS) {
                    format!("did you mean `{s}`?")
                } else {
                    format!("use one of {all}")
                };
                cx.err(
                    &key_path("enc"),
                    v.referenced,
                    format!("unknown cipher `{}`", v.value),
                    fix,
                );
                None
            }
        },
    };
    let key = match (&r.key, cipher) {
        (None, _) => {
            cx.missing(
                &key_path("key"),
                Some(raw.referenced),
                "add `key: 0x...`: the key followed by the 4-byte salt (AES-GCM, ChaCha20-Poly1305), or the AES key followed by the HMAC key (aesNNN-shaNNN), in hex",
            );
            None
        }
        (Some(v), Some(c)) => parse_key(cx, &key_path("key"), v, c),
        (Some(_), None) => None,
    };
    let esn = match &r.esn {
        None => Some(false),
        Some(v) => cx.boolean(&key_path("esn"), v),
    };
    let replay_window = match (&r.replay_window, inbound) {
        (None, _) => Some(if inbound { default_window } else { 0 }),
        (Some(v), false) => {
            cx.err(
                &key_path("replay_window"),
                v.referenced,
                "the anti-replay window applies to inbound SAs only (the receiver checks it, RFC 4303 3.4.3)",
                "move it to the inbound SA or remove it",
            );
            None
        }
        (Some(v), true) => cx
            .uint(
                &key_path("replay_window"),
                v,
                0..=REPLAY_WINDOW_MAX,
                "anti-replay window in packets (0 disables)",
            )
            .map(|n| n as u32),
    };
    Some(SaConf {
        spi: spi?,
        cipher: cipher?,
        key: key?,
        esn: esn?,
        replay_window: replay_window?,
    })
}

fn parse_key(cx: &mut Ctx<'_>, path: &str, v: &S, c: EspCipher) -> Option<Vec<u8>> {
    let s = v.value.trim();
    let want = c.keymat_len() * 2;
    // What the key is made of, briefly: "16-byte key + 4-byte salt".
    let parts = match c.integ() {
        None => format!("{}-byte key + 4-byte salt", c.key_len()),
        Some(i) => format!(
            "{}-byte AES key + {}-byte HMAC-{} key",
            c.key_len(),
            i.key_len(),
            i.name().to_ascii_uppercase()
        ),
    };
    let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) else {
        let fix = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("prefix the hex digits with 0x (0x{s})")
        } else {
            format!(
                "write 0x followed by {want} hex digits ({parts}) for {}",
                c.name()
            )
        };
        cx.err(path, v.referenced, "the key is not written in hex", fix);
        return None;
    };
    if let Some((pos, ch)) = hex.char_indices().find(|(_, ch)| !ch.is_ascii_hexdigit()) {
        cx.err(
            path,
            v.referenced,
            format!("`{ch}` at position {} is not a hex digit", pos + 2),
            "use only 0-9 and a-f after 0x",
        );
        return None;
    }
    if hex.len() != want {
        // Transforms whose keying material has this length.
        let same: Vec<&str> = EspCipher::ALL
            .iter()
            .filter(|o| **o != c && o.keymat_len() * 2 == hex.len())
            .map(|o| o.name())
            .collect();
        // AEAD keys of this length without their salt.
        let unsalted: Vec<&str> = EspCipher::ALL
            .iter()
            .filter(|o| **o != c && o.is_aead() && o.key_len() * 2 == hex.len())
            .map(|o| o.name())
            .collect();
        let fix = if hex.len() == c.key_len() * 2 {
            match c.integ() {
                None => "append the 4-byte salt (8 more hex digits)".to_string(),
                Some(i) => format!(
                    "append the {}-byte HMAC-{} key ({} more hex digits): the AES key comes first",
                    i.key_len(),
                    i.name().to_ascii_uppercase(),
                    i.key_len() * 2
                ),
            }
        } else if let Some(first) = same.first() {
            format!(
                "this is the length of an {} key: set `enc: {first}`, or use a {parts}",
                same.join(" or ")
            )
        } else if c.is_aead() && !unsalted.is_empty() {
            format!(
                "this is the length of an {} key without salt: use a {}-byte key and append the 4-byte salt",
                unsalted.join(" or "),
                c.key_len()
            )
        } else if hex.len() % 2 == 1 {
            "an odd number of digits: every byte takes two hex digits".to_string()
        } else {
            format!("give {want} hex digits: the {}", c.keymat_layout())
        };
        cx.err(
            path,
            v.referenced,
            format!(
                "expected {want} hex digits ({parts}) for {}, got {}",
                c.name(),
                hex.len()
            ),
            fix,
        );
        return None;
    }
    let key: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_macs() {
        assert_eq!(parse_uint("0x00001001"), Some(0x1001));
        assert_eq!(parse_uint("4097"), Some(4097));
        assert_eq!(parse_uint("1_000"), Some(1000));
        assert_eq!(parse_uint("-1"), None);
        assert_eq!(parse_uint("0x"), None);
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(parse_mac("2:00:00:00:00:01"), None);
    }
}
