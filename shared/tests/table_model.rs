//! The tables against a plain model: random sequences of installs, removals and
//! publications; every published snapshot, including old ones still held after later
//! publications changed the same pages, answers exactly as the model did when it was
//! published. The policy answer of the model is the definition: of the tunnels whose
//! remote selectors contain the destination, longest prefix first and lower tunnel id
//! among equals, the first whose local selectors contain the source.

use mobiked_shared::pages::mix64;
use mobiked_shared::path::{Encap, PathSpec};
use mobiked_shared::policy::{Prefix, Tunnel};
use mobiked_shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use mobiked_shared::table::{Snapshot, TableConfig, TableWriter};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// SPIs that share home buckets of the 32-bucket index (`max_inbound` 12): six in the
/// last bucket and six in the first, so probe runs are long, wrap around the end, and a
/// removal has to shift entries back across it.
fn spis() -> Vec<u32> {
    let home = |spi: u32| mix64(spi as u64) & 31;
    let last = (0u32..).filter(|&s| home(s) == 31).take(6);
    let first = (0u32..).filter(|&s| home(s) == 0).take(6);
    last.chain(first).collect()
}
const SPIS: usize = 12;
/// Tunnel ids over several pages and two middle nodes.
const TUNNELS: [u32; 8] = [0, 1, 2, 63, 64, 130, 4095, 4200];
/// Path ids over several pages.
const PATHS: [u32; 5] = [0, 1, 63, 64, 300];
const REMOTES: [&str; 12] = [
    "10.0.0.1/32",
    "10.0.0.2/32",
    "10.0.0.5/32",
    "10.0.0.0/30",
    "10.0.0.4/30",
    "10.0.0.0/29",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "2001:db8::1/128",
    "2001:db8::2/128",
    "2001:db8::/126",
    "::/0",
];
const LOCALS: [&str; 4] = ["0.0.0.0/0", "192.168.0.0/24", "192.168.1.0/24", "::/0"];
const SRCS: [&str; 3] = ["192.168.0.1", "192.168.1.1", "2001:db8:1::1"];
const DSTS: [&str; 10] = [
    "10.0.0.0",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.5",
    "10.0.0.7",
    "10.9.0.1",
    "192.0.2.1",
    "2001:db8::1",
    "2001:db8::3",
    "2001:db8:5::1",
];

#[derive(Clone, Debug)]
enum Op {
    AddIn {
        spi: usize,
        tunnel: usize,
    },
    RemoveIn {
        spi: usize,
    },
    SetTunnel {
        id: usize,
        local: Vec<usize>,
        remote: Vec<usize>,
    },
    RemoveTunnel {
        id: usize,
    },
    SetOut {
        tunnel: usize,
        spi: u32,
        path: usize,
    },
    RemoveOut {
        tunnel: usize,
    },
    SetPath {
        id: usize,
    },
    RemovePath {
        id: usize,
    },
    Publish,
}

fn op() -> impl Strategy<Value = Op> {
    let sel = |n: usize| proptest::collection::vec(0..n, 0..3);
    prop_oneof![
        3 => (0..SPIS, 0..TUNNELS.len()).prop_map(|(spi, tunnel)| Op::AddIn { spi, tunnel }),
        2 => (0..SPIS).prop_map(|spi| Op::RemoveIn { spi }),
        3 => (0..TUNNELS.len(), sel(LOCALS.len()), sel(REMOTES.len()))
            .prop_map(|(id, local, remote)| Op::SetTunnel { id, local, remote }),
        1 => (0..TUNNELS.len()).prop_map(|id| Op::RemoveTunnel { id }),
        3 => (0..TUNNELS.len(), any::<u32>(), 0..PATHS.len())
            .prop_map(|(tunnel, spi, path)| Op::SetOut { tunnel, spi, path }),
        1 => (0..TUNNELS.len()).prop_map(|tunnel| Op::RemoveOut { tunnel }),
        2 => (0..PATHS.len()).prop_map(|id| Op::SetPath { id }),
        1 => (0..PATHS.len()).prop_map(|id| Op::RemovePath { id }),
        2 => Just(Op::Publish),
    ]
}

#[derive(Clone, Default)]
struct Model {
    /// spi -> the tunnel the SA names.
    inbound: HashMap<u32, u32>,
    tunnels: BTreeMap<u32, Tunnel>,
    /// tunnel -> outbound SPI.
    outbound: HashMap<u32, u32>,
    /// path -> generation.
    paths: HashMap<u32, u64>,
}

impl Model {
    fn lookup_outbound(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        let mut cands: Vec<(std::cmp::Reverse<u8>, u32)> = Vec::new();
        for t in self.tunnels.values() {
            for p in t.remote_ts.iter().filter(|p| p.contains(dst)) {
                cands.push((std::cmp::Reverse(p.prefix_len()), t.id));
            }
        }
        cands.sort();
        let (_, id) = cands
            .into_iter()
            .find(|(_, id)| self.tunnels[id].local_ts.iter().any(|p| p.contains(src)))?;
        self.outbound.get(&id).copied()
    }
}

fn key() -> EspKey {
    EspKey::new(EspCipher::AesGcm16_128, &[7; 20]).unwrap()
}

fn path_spec(n: u64) -> PathSpec {
    PathSpec {
        local: SocketAddr::from(([192, 0, 2, 1], 4500)),
        remote: SocketAddr::from(([198, 51, 100, (n % 250) as u8], 4500)),
        encap: Encap::Udp,
        l2: None,
        keepalive_ms: 0,
    }
}

fn check(snap: &Snapshot, m: &Model) -> Result<(), TestCaseError> {
    for spi in spis() {
        prop_assert_eq!(
            snap.inbound(spi).map(|s| s.tunnel),
            m.inbound.get(&spi).copied()
        );
    }
    prop_assert_eq!(snap.inbound_len(), m.inbound.len());
    for id in TUNNELS {
        prop_assert_eq!(snap.tunnel(id), m.tunnels.get(&id));
        prop_assert_eq!(
            snap.outbound(id).map(|o| o.spi),
            m.outbound.get(&id).copied()
        );
    }
    for id in PATHS {
        prop_assert_eq!(
            snap.path(id).map(|r| r.generation),
            m.paths.get(&id).copied()
        );
    }
    for src in SRCS {
        for dst in DSTS {
            let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
            prop_assert_eq!(
                snap.lookup_outbound(s, d).map(|o| o.spi),
                m.lookup_outbound(s, d),
                "lookup_outbound({}, {})",
                src,
                dst
            );
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let config = TableConfig {
        workers: 1,
        max_inbound: SPIS,
        max_outbound: 4 * ops.len() + 8,
        max_paths: 301,
        max_tunnels: 4201,
    };
    let mut w = TableWriter::new(config);
    let mut m = Model::default();
    let mut staged = Model::default();
    let mut generations: HashMap<u32, u64> = HashMap::new();
    // Inbound capacity: a published SA's slot stays taken after its removal until the next
    // publication; an SA added and removed between two publications never held one.
    let mut published_in: HashSet<u32> = HashSet::new();
    let mut retiring_in = 0usize;
    let mut held: Vec<(Arc<Snapshot>, Model)> = vec![(w.published(), m.clone())];
    let spis = spis();
    for op in ops {
        match op.clone() {
            Op::AddIn { spi, tunnel } => {
                let (spi, tunnel) = (spis[spi], TUNNELS[tunnel]);
                let r = w.add_inbound(InboundSpec {
                    spi,
                    owner: 0,
                    esn: true,
                    replay_window: 64,
                    key: key(),
                    tunnel,
                });
                let fresh = !staged.inbound.contains_key(&spi);
                let room = staged.inbound.len() + retiring_in < SPIS;
                prop_assert_eq!(r.is_ok(), fresh && room, "add_inbound {:#x}", spi);
                if fresh && room {
                    staged.inbound.insert(spi, tunnel);
                }
            }
            Op::RemoveIn { spi } => {
                let spi = spis[spi];
                let r = w.remove_inbound(spi);
                prop_assert_eq!(r.is_ok(), staged.inbound.remove(&spi).is_some());
                if published_in.remove(&spi) {
                    retiring_in += 1;
                }
            }
            Op::SetTunnel { id, local, remote } => {
                let t = Tunnel {
                    id: TUNNELS[id],
                    local_ts: local
                        .iter()
                        .map(|&i| LOCALS[i].parse::<Prefix>().unwrap())
                        .collect(),
                    remote_ts: remote
                        .iter()
                        .map(|&i| REMOTES[i].parse::<Prefix>().unwrap())
                        .collect(),
                };
                prop_assert!(w.set_tunnel(t.clone()).is_ok());
                staged.tunnels.insert(t.id, t);
            }
            Op::RemoveTunnel { id } => {
                let id = TUNNELS[id];
                let r = w.remove_tunnel(id);
                prop_assert_eq!(r.is_ok(), staged.tunnels.remove(&id).is_some());
                staged.outbound.remove(&id);
            }
            Op::SetOut { tunnel, spi, path } => {
                let (tunnel, path) = (TUNNELS[tunnel], PATHS[path]);
                let r = w.set_outbound(OutboundSpec {
                    spi,
                    owner: 0,
                    esn: false,
                    key: key(),
                    path,
                    tunnel,
                });
                let ok = staged.tunnels.contains_key(&tunnel) && staged.paths.contains_key(&path);
                prop_assert_eq!(r.is_ok(), ok, "set_outbound {} {}", tunnel, path);
                if ok {
                    staged.outbound.insert(tunnel, spi);
                }
            }
            Op::RemoveOut { tunnel } => {
                let tunnel = TUNNELS[tunnel];
                let r = w.remove_outbound(tunnel);
                prop_assert_eq!(r.is_ok(), staged.outbound.remove(&tunnel).is_some());
            }
            Op::SetPath { id } => {
                let id = PATHS[id];
                let g = generations.entry(id).or_insert(0);
                *g += 1;
                prop_assert_eq!(w.set_path(id, path_spec(*g)), Ok(*g));
                staged.paths.insert(id, *g);
            }
            Op::RemovePath { id } => {
                let id = PATHS[id];
                let r = w.remove_path(id);
                prop_assert_eq!(r.is_ok(), staged.paths.remove(&id).is_some());
            }
            Op::Publish => {
                w.publish();
                m = staged.clone();
                published_in = m.inbound.keys().copied().collect();
                retiring_in = 0;
                held.push((w.published(), m.clone()));
            }
        }
        // Staged changes are invisible until published.
        check(&w.published(), &m)?;
    }
    w.publish();
    held.push((w.published(), staged.clone()));
    for (snap, model) in &held {
        check(snap, model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_snapshot_answers_as_the_model_did(ops in proptest::collection::vec(op(), 0..120)) {
        run(&ops)?;
    }
}

/// An empty table of 100,000 is its roots alone; pages come with the first entry in them
/// (one page of tunnels, one of policy, one of paths for a first tunnel).
#[test]
fn empty_tables_allocate_no_pages() {
    let mut w = TableWriter::new(TableConfig::sized(2, 100_000));
    assert_eq!(w.published().pages(), 0);
    w.set_path(0, path_spec(1)).unwrap();
    w.set_tunnel(Tunnel {
        id: 99_999,
        local_ts: vec!["0.0.0.0/0".parse().unwrap()],
        remote_ts: vec!["10.1.0.1".parse().unwrap()],
    })
    .unwrap();
    w.publish();
    assert_eq!(w.published().pages(), 3);
    w.remove_tunnel(99_999).unwrap();
    w.publish();
    assert_eq!(w.published().tunnel(99_999), None);
}
