//! Concurrent stress of the table contract: one writer swaps paths, installs, rekeys and
//! removes tunnels and SAs as fast as it can while reader threads check every record they
//! find for internal consistency. Records are built so that a torn or mixed record, a
//! snapshot mixing two publications, or a slot recycled too early is detected.
//!
//! Bounded: a fixed number of writer operations and at most ~4 s of writer wall time.

use mobiked_shared::path::{Encap, PathId, PathRecord, PathSpec};
use mobiked_shared::policy::{Prefix, Tunnel};
use mobiked_shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec, ICV_LEN};
use mobiked_shared::table::{Snapshot, TableConfig, TableError, TableWriter};
use ring::aead::Aad;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

const READERS: usize = 3;
const TUNNELS: u32 = 24;
const PATHS: u32 = 80; // spans two path pages
const MAX_SA: usize = 48;
const WRITER_OPS: usize = 20_000;
const WALL: Duration = Duration::from_secs(4);
/// Inbound SPI of a tunnel's SA pair: the outbound SPI with the top bit flipped.
const IN_FLAG: u32 = 0x8000_0000;
const PLAINTEXT: [u8; 48] = [0x5a; 48];

/// Deterministic per-SPI keying material, so that an SPI paired with another SA's key shows.
fn keymat(spi: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    let mut x = (spi as u64) ^ 0x9e37_79b9_7f4a_7c15;
    for b in k.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    k
}

/// The tag of `PLAINTEXT` sealed with `key` under the all-zero explicit IV.
fn tag(key: &EspKey) -> [u8; ICV_LEN] {
    let mut buf = PLAINTEXT;
    let key = key.as_aead().expect("an AEAD key");
    let t = key
        .aead()
        .seal_in_place_separate_tag(key.nonce(&[0; 8]), Aad::empty(), &mut buf)
        .unwrap();
    let mut out = [0u8; ICV_LEN];
    out.copy_from_slice(t.as_ref());
    out
}

/// What the writer computed at install time, keyed by SPI (SPIs are never reused).
#[derive(Clone, Copy)]
struct Expect {
    tunnel: u32,
    tag: [u8; ICV_LEN],
}

/// Path `id` at generation `g`: ports, addresses and keepalive all derive from (id, g).
fn path_spec(id: PathId, g: u64) -> PathSpec {
    let lport = 1024 + ((g * 7 + id as u64) % 60_000) as u16;
    let rport = 1024 + ((g * 13 + id as u64 * 3) % 60_000) as u16;
    let (local, remote): (IpAddr, IpAddr) = if id & 1 == 0 {
        (
            Ipv4Addr::new(192, 0, 2, id as u8).into(),
            Ipv4Addr::from(g as u32).into(),
        )
    } else {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, id as u16).into(),
            Ipv6Addr::from(((id as u128) << 64) | g as u128).into(),
        )
    };
    PathSpec {
        local: SocketAddr::new(local, lport),
        remote: SocketAddr::new(remote, rport),
        encap: if g & 1 == 0 { Encap::Udp } else { Encap::Esp },
        l2: None,
        keepalive_ms: (g as u32) ^ id,
    }
}

fn check_path(id: PathId, rec: &PathRecord) {
    assert_eq!(rec.spec, path_spec(id, rec.generation), "torn path {id}");
    assert!(
        rec.published_ns > 0,
        "path {id} published without a timestamp"
    );
}

fn tunnel_for(t: u32) -> Tunnel {
    Tunnel {
        id: t,
        local_ts: vec![Prefix::new(Ipv4Addr::new(10, t as u8, 0, 0).into(), 16).unwrap()],
        remote_ts: vec![Prefix::host(Ipv4Addr::new(172, 16, t as u8, 1).into())],
    }
}

/// Slot -> install id of its latest occupant, written by the writer after each publication.
/// A reader holding an SA in slot k must never see a newer occupant of k during its burst.
struct SlotRegistry(Vec<AtomicU64>);

impl SlotRegistry {
    fn new() -> SlotRegistry {
        SlotRegistry((0..MAX_SA).map(|_| AtomicU64::new(0)).collect())
    }
    fn note(&self, slot: u32, install_id: u64) {
        self.0[slot as usize].fetch_max(install_id, Ordering::Release);
    }
    fn check(&self, what: &str, slot: u32, install_id: u64) {
        let now = self.0[slot as usize].load(Ordering::Acquire);
        assert!(
            now <= install_id,
            "{what} slot {slot} reused by install {now} while install {install_id} is in use"
        );
    }
}

struct Shared {
    expect: RwLock<HashMap<u32, Expect>>,
    in_slots: SlotRegistry,
    out_slots: SlotRegistry,
    stop: AtomicBool,
}

#[derive(Default, Debug)]
struct ReaderStats {
    bursts: u64,
    sas_checked: u64,
    path_changes_seen: u64,
}

/// Checks one snapshot; `last_gen` holds the path generations this reader saw before.
fn check_snapshot(s: &Snapshot, sh: &Shared, last_gen: &mut [u64], st: &mut ReaderStats) {
    for id in 0..PATHS {
        if let Some(rec) = s.path(id) {
            check_path(id, rec);
            let seen = &mut last_gen[id as usize];
            assert!(rec.generation >= *seen, "path {id} went back in time");
            if rec.generation > *seen {
                st.path_changes_seen += 1;
                *seen = rec.generation;
            }
        }
    }
    let mut in_slots_seen = [false; MAX_SA];
    let mut out_slots_seen = [false; MAX_SA];
    for t in 0..TUNNELS {
        let tun = s.tunnel(t);
        if let Some(tun) = tun {
            assert_eq!(*tun, tunnel_for(t), "torn tunnel {t}");
        }
        let Some(out) = s.outbound(t) else { continue };
        // An SA is published together with its tunnel, its path and its inbound twin.
        assert!(tun.is_some(), "outbound SA of missing tunnel {t}");
        assert_eq!(out.tunnel, t);
        assert!(s.path(out.path).is_some(), "outbound SA on missing path");
        let inb = s
            .inbound(out.spi ^ IN_FLAG)
            .expect("inbound twin published with its outbound SA");
        assert_eq!(inb.spi, out.spi ^ IN_FLAG);
        assert_eq!(inb.tunnel, t);
        assert_eq!(inb.owner as usize, (t as usize) % READERS);
        let dst = IpAddr::V4(Ipv4Addr::new(172, 16, t as u8, 1));
        let src = IpAddr::V4(Ipv4Addr::new(10, t as u8, 3, 4));
        let found = s.lookup_outbound(src, dst).expect("policy finds the SA");
        assert!(std::ptr::eq(found, out));
        for (spi, key, what) in [
            (out.spi, &out.key, "outbound"),
            (inb.spi, &inb.key, "inbound"),
        ] {
            let e = *sh
                .expect
                .read()
                .unwrap()
                .get(&spi)
                .expect("every published SPI was recorded before publication");
            assert_eq!(e.tunnel, t, "{what} SA {spi:#x} in the wrong tunnel");
            assert_eq!(
                tag(key),
                e.tag,
                "{what} SA {spi:#x} carries another SA's key"
            );
        }
        for (slots, slot, what) in [
            (&mut in_slots_seen, inb.slot, "inbound"),
            (&mut out_slots_seen, out.slot, "outbound"),
        ] {
            assert!((slot as usize) < MAX_SA);
            assert!(
                !slots[slot as usize],
                "{what} slot {slot} used twice in one version"
            );
            slots[slot as usize] = true;
        }
        sh.in_slots.check("inbound", inb.slot, inb.install_id);
        sh.out_slots.check("outbound", out.slot, out.install_id);
        st.sas_checked += 2;
    }
}

struct Model {
    next_spi: u32,
    /// Tunnel -> (outbound SPI, path).
    live: HashMap<u32, (u32, PathId)>,
    path_gen: Vec<u64>,
    rng: u64,
}

impl Model {
    fn rand(&mut self, n: u32) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as u32
    }
}

fn record(sh: &Shared, spi: u32, tunnel: u32) -> EspKey {
    let key = EspKey::new(EspCipher::AesGcm16_128, &keymat(spi)).unwrap();
    sh.expect.write().unwrap().insert(
        spi,
        Expect {
            tunnel,
            tag: tag(&key),
        },
    );
    key
}

/// Installs (or rekeys) tunnel `t`'s SA pair; false if the slot space is exhausted.
fn install_pair(w: &mut TableWriter, m: &mut Model, sh: &Shared, t: u32, path: PathId) -> bool {
    let spi = m.next_spi;
    m.next_spi += 1;
    let out_key = record(sh, spi, t);
    let in_key = record(sh, spi ^ IN_FLAG, t);
    let owner = (t as usize % READERS) as u16;
    match w.add_inbound(InboundSpec {
        spi: spi ^ IN_FLAG,
        owner,
        esn: true,
        replay_window: 64,
        key: in_key,
        tunnel: t,
    }) {
        Ok(()) => {}
        Err(TableError::InboundFull { .. }) => return false,
        Err(e) => panic!("{e}"),
    }
    match w.set_outbound(OutboundSpec {
        spi,
        owner,
        esn: true,
        key: out_key,
        path,
        tunnel: t,
    }) {
        Ok(()) => {}
        Err(TableError::OutboundFull { .. }) => {
            w.remove_inbound(spi ^ IN_FLAG).unwrap();
            return false;
        }
        Err(e) => panic!("{e}"),
    }
    if let Some((old, _)) = m.live.insert(t, (spi, path)) {
        w.remove_inbound(old ^ IN_FLAG).unwrap();
    }
    true
}

#[test]
fn readers_see_consistent_tables_while_the_writer_churns() {
    let config = TableConfig {
        workers: READERS,
        max_inbound: MAX_SA,
        max_outbound: MAX_SA,
        max_paths: PATHS as usize,
        max_tunnels: TUNNELS as usize,
    };
    let mut w = TableWriter::new(config);
    let sh = Arc::new(Shared {
        expect: RwLock::new(HashMap::new()),
        in_slots: SlotRegistry::new(),
        out_slots: SlotRegistry::new(),
        stop: AtomicBool::new(false),
    });
    let mut m = Model {
        next_spi: 0x100,
        live: HashMap::new(),
        path_gen: vec![0; PATHS as usize],
        rng: 0x2545_f491_4f6c_dd1d,
    };
    for id in 0..PATHS {
        m.path_gen[id as usize] = w.set_path(id, path_spec(id, 1)).unwrap();
    }
    w.publish();

    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let mut r = w.reader(i).unwrap();
            let sh = sh.clone();
            std::thread::spawn(move || {
                let mut st = ReaderStats::default();
                let mut last_gen = vec![0u64; PATHS as usize];
                while !sh.stop.load(Ordering::Relaxed) {
                    let s = r.begin_burst();
                    check_snapshot(s, &sh, &mut last_gen, &mut st);
                    st.bursts += 1;
                    // Park now and then: going offline and back must stay correct.
                    if st.bursts % (97 + i as u64 * 31) == 0 {
                        r.offline();
                        std::thread::yield_now();
                    }
                }
                r.offline();
                st
            })
        })
        .collect();

    let start = Instant::now();
    let mut weak: Vec<Weak<Snapshot>> = Vec::new();
    let mut ops = 0;
    let mut full = 0;
    while ops < WRITER_OPS && start.elapsed() < WALL {
        ops += 1;
        match m.rand(10) {
            // Move a path (the common case: MOBIKE).
            0..=3 => {
                let id = m.rand(PATHS);
                let g = m.path_gen[id as usize] + 1;
                assert_eq!(w.set_path(id, path_spec(id, g)), Ok(g));
                m.path_gen[id as usize] = g;
            }
            // Add a tunnel, or rekey an existing one onto a random path.
            4..=6 => {
                let t = m.rand(TUNNELS);
                let path = m.rand(PATHS);
                if !m.live.contains_key(&t) {
                    w.set_tunnel(tunnel_for(t)).unwrap();
                }
                if !install_pair(&mut w, &mut m, &sh, t, path) {
                    full += 1;
                    if !m.live.contains_key(&t) {
                        w.remove_tunnel(t).unwrap();
                    }
                }
            }
            // Remove a tunnel with its SAs.
            7..=8 => {
                let t = m.rand(TUNNELS);
                if let Some((spi, _)) = m.live.remove(&t) {
                    w.remove_inbound(spi ^ IN_FLAG).unwrap();
                    w.remove_tunnel(t).unwrap();
                }
            }
            _ => {
                w.reclaim();
            }
        }
        if m.rand(3) == 0 {
            weak.push(Arc::downgrade(&w.published()));
            w.publish();
            let s = w.published();
            for t in 0..TUNNELS {
                if let Some(out) = s.outbound(t) {
                    sh.out_slots.note(out.slot, out.install_id);
                    let inb = s.inbound(out.spi ^ IN_FLAG).unwrap();
                    sh.in_slots.note(inb.slot, inb.install_id);
                }
            }
        }
    }
    weak.push(Arc::downgrade(&w.published()));
    w.publish();
    // Let readers check the final version too.
    let final_gen = w.published().generation();
    sh.stop.store(true, Ordering::Relaxed);
    let stats: Vec<ReaderStats> = readers.into_iter().map(|h| h.join().unwrap()).collect();

    // Every reader is offline: everything retired is freed by the writer.
    w.reclaim();
    assert_eq!(w.pending_reclaim(), 0);
    assert!(
        weak.iter().all(|x| x.upgrade().is_none()),
        "a retired version outlived reclaim"
    );

    // Remove everything, then the whole slot space must be free again.
    for (t, (spi, _)) in m.live.drain() {
        w.remove_inbound(spi ^ IN_FLAG).unwrap();
        w.remove_tunnel(t).unwrap();
    }
    w.publish();
    w.reclaim();
    assert_eq!(w.pending_reclaim(), 0);
    assert_eq!(w.published().inbound_len(), 0);
    for t in 0..MAX_SA as u32 {
        let tt = t % TUNNELS;
        if t < TUNNELS {
            w.set_tunnel(tunnel_for(tt)).unwrap();
        }
        let spi = 0x4000_0000 + t;
        let key = EspKey::new(EspCipher::AesGcm16_128, &keymat(spi)).unwrap();
        w.add_inbound(InboundSpec {
            spi,
            owner: 0,
            esn: false,
            replay_window: 0,
            key,
            tunnel: tt,
        })
        .unwrap();
    }
    let key = EspKey::new(EspCipher::AesGcm16_128, &keymat(1)).unwrap();
    assert_eq!(
        w.add_inbound(InboundSpec {
            spi: 1,
            owner: 0,
            esn: false,
            replay_window: 0,
            key,
            tunnel: 0,
        }),
        Err(TableError::InboundFull { max: MAX_SA })
    );

    // The run exercised what it claims to.
    eprintln!(
        "writer: {ops} ops, {} versions retired, {full} installs refused for lack of free \
         slots, final generation {final_gen}, {:?}; readers: {stats:?}",
        weak.len(),
        start.elapsed()
    );
    assert!(weak.len() > 100);
    for st in &stats {
        assert!(st.bursts > 10, "{st:?}");
        assert!(st.sas_checked > 0, "{st:?}");
        assert!(st.path_changes_seen > PATHS as u64, "{st:?}");
    }
}
