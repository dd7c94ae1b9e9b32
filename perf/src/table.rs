//! Table publication: what one change and its publication cost the control plane, and
//! what the packet-path lookups cost, with 1k, 10k and 100k SAs installed.
//!
//! Each installed "SA" is what one tunnel of a gateway holds: a path record, a tunnel
//! with a host remote selector (a virtual IP), its outbound SA on that path and one
//! inbound SA. With `n` of them installed (untimed, published in batches), each round
//! times, change by change:
//! - **add**: one more tunnel, its outbound and inbound SA, then `publish`;
//! - **move**: `set_path` of an installed path, then `publish` (a MOBIKE update);
//! - **remove**: that tunnel's inbound SA and the tunnel (with its outbound SA), then
//!   `publish` (adds and removes alternate, so the table stays at `n`);
//! - **lookups**: `lookup_outbound` (inner src/dst of a random installed tunnel) and
//!   `inbound` (a random installed SPI), ns per lookup over a shuffled set.
//!
//! With `client` set the tunnels have the shape of a client's (a traffic generator's):
//! all share one remote selector (the gateway's subnet) and each has its own virtual IP as
//! local selector, so the lookup must tell them apart by the inner source.
//!
//! A round's figure for a change is the median over its changes; reported are the median
//! (min-max) over rounds, and the ratio of the largest size to the smallest (the goal is a
//! publication that costs what it changes: within 2x from 1k to 100k). No reader is
//! registered, so each `publish` also frees the version it retires: that cost counts.

use crate::report::{table, Figure};
use serde::Serialize;
use shared::path::{Encap, PathSpec};
use shared::policy::{Prefix, Tunnel};
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct TableBenchConfig {
    /// Installed SAs per measurement.
    pub sizes: Vec<usize>,
    pub rounds: usize,
    /// Timed changes of each kind per round.
    pub changes: usize,
    /// Lookups of each kind per round.
    pub lookups: usize,
    /// Pin the thread to the last core.
    pub pin: bool,
    /// Tunnels of a client's shape: one shared remote selector, a local one each.
    pub client: bool,
}

impl Default for TableBenchConfig {
    fn default() -> Self {
        TableBenchConfig {
            sizes: vec![1_000, 10_000, 100_000],
            rounds: 7,
            changes: 200,
            lookups: 200_000,
            pin: true,
            client: false,
        }
    }
}

impl TableBenchConfig {
    /// The short form for CI: the same sizes, fewer rounds and changes.
    pub fn quick() -> TableBenchConfig {
        TableBenchConfig {
            rounds: 3,
            changes: 30,
            lookups: 20_000,
            ..TableBenchConfig::default()
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SizeReport {
    pub sas: usize,
    /// Installing all of them, batches of 1024 per publication, seconds (one pass).
    pub setup_s: f64,
    /// Add one SA (tunnel, outbound, inbound) and publish, microseconds.
    pub add_us: Figure,
    /// Move one path and publish, microseconds.
    pub move_path_us: Figure,
    /// Remove one SA (inbound, tunnel with its outbound) and publish, microseconds.
    pub remove_us: Figure,
    /// `Snapshot::lookup_outbound`, ns per lookup.
    pub lookup_outbound_ns: Figure,
    /// `Snapshot::inbound`, ns per lookup.
    pub inbound_ns: Figure,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// Sizes compared: largest / smallest.
    pub of: (usize, usize),
    pub add: f64,
    pub move_path: f64,
    pub remove: f64,
    pub lookup_outbound: f64,
    pub inbound: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TableReport {
    pub unix_time: u64,
    /// The tunnels had a client's shape (see the module doc).
    pub client: bool,
    pub cpu: Option<String>,
    pub core: Option<usize>,
    pub rounds: usize,
    pub changes: usize,
    pub lookups: usize,
    pub sizes: Vec<SizeReport>,
    pub ratios: Option<Ratios>,
}

/// A small deterministic generator (xorshift64*): the same SPIs and lookups every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The remote selector every tunnel of a client's shape has.
const CLIENT_REMOTE: &str = "172.16.0.0/24";
/// An inner destination inside it.
const CLIENT_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 16, 0, 5));

/// The inner address (virtual IP) of tunnel `i`: 10.0.0.0/8 holds 16 million.
fn vip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32))
}

/// The inbound SPI of tunnel `i`: spread like random SPIs, never 0.
fn spi_of(i: usize) -> u32 {
    (i as u32).wrapping_mul(0x9E37_79B1) | 1 << 31
}

fn path_of(i: usize, turn: u16) -> PathSpec {
    PathSpec {
        local: SocketAddr::from(([192, 0, 2, 1], 4500)),
        remote: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0xc633_0000u32 + i as u32)),
            4500u16.wrapping_add(turn),
        ),
        encap: Encap::Udp,
        l2: None,
        keepalive_ms: 20_000,
    }
}

struct Installed {
    w: TableWriter,
    any: Prefix,
    /// Client shape: the remote selector all tunnels share.
    shared_remote: Option<Prefix>,
}

/// The keys of one SA (expanded before the timer starts: key setup is the installer's
/// cost, not the table's).
fn keys() -> Result<(EspKey, EspKey), String> {
    let k = || EspKey::new(EspCipher::AesGcm16_128, &[7; 20]).map_err(|e| format!("{e:?}"));
    Ok((k()?, k()?))
}

impl Installed {
    fn add(&mut self, i: usize, path: usize, (kin, kout): (EspKey, EspKey)) -> Result<(), String> {
        let e = |e: shared::table::TableError| format!("SA {i}: {e}");
        let (local_ts, remote_ts) = match self.shared_remote {
            Some(r) => (vec![Prefix::host(vip(i))], vec![r]),
            None => (vec![self.any], vec![Prefix::host(vip(i))]),
        };
        self.w
            .set_tunnel(Tunnel {
                id: i as u32,
                local_ts,
                remote_ts,
            })
            .map_err(e)?;
        self.w
            .set_outbound(OutboundSpec {
                spi: spi_of(i) ^ 0x5555,
                owner: 0,
                esn: true,
                key: kout,
                path: path as u32,
                tunnel: i as u32,
            })
            .map_err(e)?;
        self.w
            .add_inbound(InboundSpec {
                spi: spi_of(i),
                owner: 0,
                esn: true,
                replay_window: 1024,
                key: kin,
                tunnel: i as u32,
            })
            .map_err(e)
    }

    fn remove(&mut self, i: usize) -> Result<(), String> {
        let e = |e: shared::table::TableError| format!("SA {i}: {e}");
        self.w.remove_inbound(spi_of(i)).map_err(e)?;
        self.w.remove_tunnel(i as u32).map_err(e)
    }
}

fn install(n: usize, extra: usize, client: bool) -> Result<Installed, String> {
    let mut t = Installed {
        w: TableWriter::new(TableConfig::sized(1, n + extra)),
        any: "0.0.0.0/0".parse().map_err(|e| format!("{e}"))?,
        shared_remote: if client {
            Some(CLIENT_REMOTE.parse().map_err(|e| format!("{e}"))?)
        } else {
            None
        },
    };
    for i in 0..n {
        t.w.set_path(i as u32, path_of(i, 0))
            .map_err(|e| format!("path {i}: {e}"))?;
        t.add(i, i, keys()?)?;
        if i % 1024 == 1023 {
            t.w.publish();
        }
    }
    t.w.publish();
    Ok(t)
}

fn measure(cfg: &TableBenchConfig, n: usize) -> Result<SizeReport, String> {
    let t0 = Instant::now();
    let mut t = install(n, cfg.changes + 1, cfg.client)?;
    let setup_s = t0.elapsed().as_secs_f64();
    let mut rng = Rng(0x1234_5678_9abc_def1 ^ n as u64);
    let (mut add, mut mv, mut rm, mut lo, mut li) = (vec![], vec![], vec![], vec![], vec![]);
    let mut turn = 0u16;
    for _ in 0..cfg.rounds {
        let (mut a, mut m, mut r) = (vec![], vec![], vec![]);
        for k in 0..cfg.changes {
            let id = n + k;
            let (path, k) = (rng.below(n), keys()?);
            let s = Instant::now();
            t.add(id, path, k)?;
            t.w.publish();
            a.push(s.elapsed().as_secs_f64() * 1e6);

            turn = turn.wrapping_add(1);
            let p = rng.below(n);
            let s = Instant::now();
            t.w.set_path(p as u32, path_of(p, turn))
                .map_err(|e| format!("path {p}: {e}"))?;
            t.w.publish();
            m.push(s.elapsed().as_secs_f64() * 1e6);

            let s = Instant::now();
            t.remove(id)?;
            t.w.publish();
            r.push(s.elapsed().as_secs_f64() * 1e6);
        }
        add.push(Figure::of(&a).median);
        mv.push(Figure::of(&m).median);
        rm.push(Figure::of(&r).median);

        // Lookups over a shuffled set of installed tunnels, outside the timed loop.
        let picks: Vec<usize> = (0..cfg.lookups.min(1 << 16))
            .map(|_| rng.below(n))
            .collect();
        // (source, destination) of an inner packet of each picked tunnel.
        let flows: Vec<(IpAddr, IpAddr)> = picks
            .iter()
            .map(|&i| match cfg.client {
                true => (vip(i), CLIENT_DST),
                false => (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), vip(i)),
            })
            .collect();
        let spis: Vec<u32> = picks.iter().map(|&i| spi_of(i)).collect();
        let snap = t.w.published();
        let s = Instant::now();
        let mut found = 0usize;
        for k in 0..cfg.lookups {
            let (src, d) = flows[k % flows.len()];
            let want = spi_of(picks[k % picks.len()]) ^ 0x5555;
            found += (snap
                .lookup_outbound(black_box(src), black_box(d))
                .map(|o| o.spi)
                == Some(want)) as usize;
        }
        lo.push(s.elapsed().as_nanos() as f64 / cfg.lookups as f64);
        if found != cfg.lookups {
            return Err(format!(
                "lookup_outbound found {found} of {} installed tunnels",
                cfg.lookups
            ));
        }
        let s = Instant::now();
        let mut found = 0usize;
        for k in 0..cfg.lookups {
            found += snap.inbound(black_box(spis[k % spis.len()])).is_some() as usize;
        }
        li.push(s.elapsed().as_nanos() as f64 / cfg.lookups as f64);
        if found != cfg.lookups {
            return Err(format!(
                "inbound found {found} of {} installed SPIs",
                cfg.lookups
            ));
        }
    }
    Ok(SizeReport {
        sas: n,
        setup_s,
        add_us: Figure::of(&add),
        move_path_us: Figure::of(&mv),
        remove_us: Figure::of(&rm),
        lookup_outbound_ns: Figure::of(&lo),
        inbound_ns: Figure::of(&li),
    })
}

/// Runs every size in a thread pinned (if asked) to the last core.
pub fn run(cfg: &TableBenchConfig) -> Result<TableReport, String> {
    if cfg.sizes.is_empty() || cfg.rounds == 0 || cfg.changes == 0 || cfg.lookups == 0 {
        return Err("sizes, rounds, changes and lookups must be positive".into());
    }
    let cfg2 = cfg.clone();
    let (core, sizes) = std::thread::Builder::new()
        .name("table-bench".into())
        .spawn(move || {
            let core = if cfg2.pin {
                core_affinity::get_core_ids()
                    .and_then(|ids| ids.last().copied())
                    .filter(|id| core_affinity::set_for_current(*id))
                    .map(|id| id.id)
            } else {
                None
            };
            let sizes: Result<Vec<SizeReport>, String> =
                cfg2.sizes.iter().map(|&n| measure(&cfg2, n)).collect();
            (core, sizes)
        })
        .map_err(|e| format!("thread: {e}"))?
        .join()
        .map_err(|_| "the benchmark thread panicked".to_string())?;
    let sizes = sizes?;
    let ratios = match (sizes.first(), sizes.last()) {
        (Some(a), Some(b)) if sizes.len() > 1 => Some(Ratios {
            of: (b.sas, a.sas),
            add: b.add_us.median / a.add_us.median,
            move_path: b.move_path_us.median / a.move_path_us.median,
            remove: b.remove_us.median / a.remove_us.median,
            lookup_outbound: b.lookup_outbound_ns.median / a.lookup_outbound_ns.median,
            inbound: b.inbound_ns.median / a.inbound_ns.median,
        }),
        _ => None,
    };
    Ok(TableReport {
        unix_time: crate::report::unix_time(),
        client: cfg.client,
        cpu: crate::report::cpu_model(),
        core,
        rounds: cfg.rounds,
        changes: cfg.changes,
        lookups: cfg.lookups,
        sizes,
        ratios,
    })
}

/// `100k` for 100000, the number itself otherwise.
fn size_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The report as a Markdown table, with the ratio row last.
pub fn render_table(r: &TableReport) -> String {
    let mut rows: Vec<Vec<String>> = r
        .sizes
        .iter()
        .map(|s| {
            vec![
                size_label(s.sas),
                s.add_us.show(1),
                s.move_path_us.show(1),
                s.remove_us.show(1),
                s.lookup_outbound_ns.show(1),
                s.inbound_ns.show(1),
                format!("{:.2}", s.setup_s),
            ]
        })
        .collect();
    if let Some(q) = &r.ratios {
        rows.push(vec![
            format!("{} / {}", size_label(q.of.0), size_label(q.of.1)),
            format!("{:.2}x", q.add),
            format!("{:.2}x", q.move_path),
            format!("{:.2}x", q.remove),
            format!("{:.2}x", q.lookup_outbound),
            format!("{:.2}x", q.inbound),
            String::new(),
        ]);
    }
    let mut out = format!(
        "table publication{}: median (min-max) of {} rounds, {} changes and {} lookups of each kind per round, {}{}\n\n",
        if r.client {
            " (client shape: one shared remote selector, a virtual IP each)"
        } else {
            ""
        },
        r.rounds,
        r.changes,
        r.lookups,
        r.cpu.as_deref().unwrap_or("unknown CPU"),
        r.core.map(|c| format!(", core {c}")).unwrap_or_default(),
    );
    out.push_str(&table(
        &[
            "SAs",
            "add + publish us",
            "move path + publish us",
            "remove + publish us",
            "lookup_outbound ns",
            "inbound ns",
            "setup s",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_every_size_and_ratio() {
        let cfg = TableBenchConfig {
            sizes: vec![100, 300],
            rounds: 2,
            changes: 5,
            lookups: 500,
            pin: false,
            client: false,
        };
        let r = run(&cfg).unwrap();
        assert_eq!(r.sizes.len(), 2);
        for s in &r.sizes {
            assert_eq!(s.add_us.rounds, 2);
            assert!(s.add_us.median > 0.0 && s.inbound_ns.median > 0.0);
        }
        assert_eq!(r.ratios.as_ref().map(|q| q.of), Some((300, 100)));
        let text = render_table(&r);
        assert!(text.contains("| 300 "), "{text}");
        assert!(text.contains("| 300 / 100 "), "{text}");
    }

    #[test]
    fn client_shape_finds_each_tunnel_by_its_source() {
        // `measure` fails unless every lookup returns the picked tunnel's own SA.
        let cfg = TableBenchConfig {
            sizes: vec![300],
            rounds: 1,
            changes: 5,
            lookups: 500,
            pin: false,
            client: true,
        };
        let r = run(&cfg).unwrap();
        assert!(render_table(&r).contains("client shape"));
    }
}
