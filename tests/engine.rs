//! The engine integrated with its installer, tables and workers, in one process and on
//! a virtual clock: a gateway and a client engine, each with a real worker (real ESP,
//! real tables) whose cipher and clear ports are in-memory links. Between the two
//! cipher links a router delivers a frame only to an address its receiver holds, so an
//! address that goes away really stops carrying traffic; IKE on port 500 goes straight
//! from one engine to the other under the same rule, IKE on the NAT-T port through the
//! workers (inject, punt). No sockets, no threads, no sleeps.

use control::config;
use control::engine::{Engine, Observation, Role};
use control::ike::crypto::random::SeededRandom;
use control::ike::sa::Transmit;
use dataplane::buf::LARGE_FRAME;
use dataplane::inject::Injector;
use dataplane::io::mem::{self, MemPort};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip;
use dataplane::worker::{Fabric, FabricConfig, Worker, WorkerConfig, WorkerEvent};
use dataplane::PacketBuf;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const NAT_T: u16 = 4500;
const GW: &str = "192.0.2.1";
const CL1: &str = "198.51.100.1";
const CL2: &str = "198.51.100.2";
const PSK: &str = "0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One host: an engine, its worker and the far ends of the worker's ports.
struct Node {
    engine: Engine,
    fabric: Arc<Fabric>,
    worker: Worker<MemPort, MemPort>,
    inject: Injector,
    /// The network side of the worker's cipher port.
    net: MemPort,
    /// The protected side of the worker's clear port.
    clear: MemPort,
    /// The addresses the host holds: traffic to any other address does not reach it.
    addrs: Vec<IpAddr>,
    punted: PacketBuf,
    punted_large: PacketBuf,
}

impl Node {
    fn new(yaml: &str, role: Role, addrs: &[&str], seed: u64) -> Node {
        let cfg = config::parse(yaml).unwrap_or_else(|e| panic!("config:\n{e}\n{yaml}"));
        let mut engine =
            Engine::new(&cfg, role, Box::new(SeededRandom::new(seed)), 0).expect("engine");
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
        engine.set_host_addresses(0, addrs.clone());
        let tc = cfg.table_config();
        let fabric = Fabric::with_config(FabricConfig::new(1));
        let (cipher, net) = mem::pair(256, Layer::Ip);
        let (clear_port, clear) = mem::pair(256, Layer::Ip);
        let reader = engine.table_reader(0).expect("reader");
        let worker = Worker::new(
            WorkerConfig::new(0, &tc),
            cipher,
            clear_port,
            reader,
            fabric.clone(),
        );
        Node {
            engine,
            inject: Injector::new(1, 4096),
            fabric,
            worker,
            net,
            clear,
            addrs,
            punted: PacketBuf::new(),
            punted_large: PacketBuf::with_frame(LARGE_FRAME),
        }
    }

    /// Runs the engine at `now`; returns the port-500 datagrams it sends (NAT-T ones go
    /// into the worker).
    fn turn(&mut self, now: u64) -> Vec<Transmit> {
        self.engine.poll(now);
        let mut direct = Vec::new();
        while let Some((t, tag)) = self.engine.poll_transmit() {
            if t.local.port() == NAT_T {
                self.inject
                    .send(&self.fabric, t.local, t.remote, t.data, tag);
            } else {
                direct.push(t);
            }
        }
        self.inject.flush(&self.fabric);
        direct
    }

    /// The worker's burst, then what it punted and reported, into the engine.
    fn work(&mut self, now: u64) -> usize {
        let mut n = self.worker.poll_at(now);
        while self.fabric.punt.recv_swap(&mut self.punted) {
            let p = &self.punted;
            self.engine
                .handle_datagram(now, p.meta.dst, p.meta.src, p.data());
            n += 1;
        }
        while self.fabric.punt_large.recv_swap(&mut self.punted_large) {
            let p = &self.punted_large;
            self.engine
                .handle_datagram(now, p.meta.dst, p.meta.src, p.data());
            n += 1;
        }
        while let Some(ev) = self.fabric.events.pop() {
            if let WorkerEvent::PeerMoved { spi, from, to, .. } = ev {
                self.engine.peer_moved(spi, from, to);
            }
        }
        n
    }

    fn holds(&self, a: IpAddr) -> bool {
        self.addrs.contains(&a)
    }

    /// Sends an inner UDP packet `src -> dst` into the protected side.
    fn send_clear(&mut self, src: SocketAddr, dst: SocketAddr, tag: u8) {
        let mut b = [PacketBuf::new()];
        ip::build_udp_packet(&mut b[0], src, dst, 32, |p| p.fill(tag)).unwrap();
        assert_eq!(self.clear.tx_burst(&mut b).unwrap(), 1, "clear link full");
    }

    /// Inner packets delivered to the protected side: (src, dst, first payload byte).
    fn recv_clear(&mut self) -> Vec<(SocketAddr, SocketAddr, u8)> {
        let mut out = Vec::new();
        let mut bufs = PacketBuf::alloc(32);
        loop {
            let n = self.clear.rx_burst(&mut bufs).unwrap();
            for b in &bufs[..n] {
                let o = ip::parse_outer(b.data(), Layer::Ip).expect("inner IP/UDP");
                out.push((o.src, o.dst, b.data()[o.payload.start + 8]));
            }
            if n == 0 {
                return out;
            }
        }
    }
}

/// A gateway and a client on a routed in-memory network, at virtual time `now`.
struct Lab {
    gw: Node,
    cl: Node,
    now: u64,
    /// Frames the router dropped: to an address the other side does not hold.
    unroutable: u64,
}

/// Port 500: each datagram to the other engine, if both its addresses are held.
/// Returns how many were not.
fn wire(now: u64, sent: Vec<Transmit>, src: &Node, dst: &mut Node) -> u64 {
    let mut lost = 0;
    for t in sent {
        if src.holds(t.local.ip()) && dst.holds(t.remote.ip()) {
            dst.engine.handle_datagram(now, t.remote, t.local, &t.data);
        } else {
            lost += 1;
        }
    }
    lost
}

fn gateway_yaml(extra: &str) -> String {
    format!(
        "dataplane:\n  workers: 1\n  max_sas: 256\n  mode: esp\n\
         cipher:\n  backend: udp\n  bind: [\"{GW}:{NAT_T}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         ike:\n  listen: [{GW}]\n\
         pools:\n  - name: vpn4\n    addrs: 10.3.0.0/24\n\
         connections:\n  - name: rw\n    local_id: gw.mobiked.test\n    remote_id: \"%any\"\n\
         \x20   psk: {PSK}\n    local_ts: [10.1.0.0/24]\n    remote_ts: [10.3.0.0/24]\n    pools: [vpn4]\n{extra}"
    )
}

fn client_yaml(instances: usize, extra: &str) -> String {
    format!(
        "dataplane:\n  workers: 1\n  max_sas: 256\n  mode: esp\n\
         cipher:\n  backend: udp\n  bind: [\"{CL1}:{NAT_T}\", \"{CL2}:{NAT_T}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         ike:\n  listen: [{CL1}, {CL2}]\n\
         connections:\n  - name: home\n    peeraddr: \"{GW}:500\"\n\
         \x20   local_id: client-%n@mobiked.test\n    remote_id: gw.mobiked.test\n\
         \x20   psk: {PSK}\n    vips: [0.0.0.0]\n    remote_ts: [10.1.0.0/24]\n\
         \x20   instances: {instances}\n{extra}"
    )
}

impl Lab {
    fn new(instances: usize, client_extra: &str, gateway_extra: &str) -> Lab {
        Lab {
            gw: Node::new(&gateway_yaml(gateway_extra), Role::Gateway, &[GW], 1),
            cl: Node::new(
                &client_yaml(instances, client_extra),
                Role::Client,
                &[CL1, CL2],
                2,
            ),
            now: 0,
            unroutable: 0,
        }
    }

    /// One round at the current time: both engines, the port-500 wire, both workers
    /// and the router, until nothing moves. Returns whether anything did.
    fn round(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..64 {
            let now = self.now;
            let to_cl = self.gw.turn(now);
            let to_gw = self.cl.turn(now);
            let mut n = to_cl.len() + to_gw.len();
            self.unroutable += wire(now, to_cl, &self.gw, &mut self.cl);
            self.unroutable += wire(now, to_gw, &self.cl, &mut self.gw);
            n += self.gw.work(now) + self.cl.work(now);
            n += self.route();
            if n == 0 {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Moves frames between the two cipher links, each to the side holding its
    /// destination address.
    fn route(&mut self) -> usize {
        let mut moved = 0;
        let mut bufs = PacketBuf::alloc(64);
        for dir in 0..2 {
            let (from, to) = if dir == 0 {
                (&mut self.gw, &mut self.cl)
            } else {
                (&mut self.cl, &mut self.gw)
            };
            loop {
                let n = from.net.rx_burst(&mut bufs).unwrap();
                if n == 0 {
                    break;
                }
                let mut keep = Vec::new();
                for (i, b) in bufs[..n].iter().enumerate() {
                    match ip::parse_outer(b.data(), Layer::Ip) {
                        Ok(o) if to.holds(o.dst.ip()) && from.holds(o.src.ip()) => keep.push(i),
                        _ => self.unroutable += 1,
                    }
                }
                let mut out: Vec<PacketBuf> =
                    keep.iter().map(|&i| std::mem::take(&mut bufs[i])).collect();
                moved += out.len();
                let sent = to.net.tx_burst(&mut out).unwrap();
                assert_eq!(sent, out.len(), "cipher link full");
                bufs = PacketBuf::alloc(64);
            }
        }
        moved
    }

    /// Runs rounds, advancing the virtual clock to the next deadline whenever nothing
    /// moves, until `done` or `limit` of virtual time has passed.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&mut Lab) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.round();
            if done(self) {
                return true;
            }
            if self.now >= end {
                return false;
            }
            let next = [
                self.gw.engine.next_deadline(self.now),
                self.cl.engine.next_deadline(self.now),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .clamp(self.now + MS, end);
            self.now = next;
        }
    }

    fn tunnels(&self) -> (usize, usize) {
        (
            self.gw.engine.endpoint().child_count(),
            self.cl.engine.endpoint().child_count(),
        )
    }

    /// The client's virtual IPs, one per IKE SA.
    fn vips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .cl
            .engine
            .installer()
            .sas()
            .iter()
            .filter_map(|s| self.cl.engine.endpoint().peer_of(s.sa).1)
            .collect();
        v.sort();
        v
    }

    /// One inner packet from each virtual IP to a host behind the gateway and one back;
    /// returns how many arrived in each direction.
    fn ping_all(&mut self, tag: u8) -> (usize, usize) {
        let vips = self.vips();
        let server = SocketAddr::new(ip("10.1.0.5"), 7);
        for v in &vips {
            self.cl.send_clear(SocketAddr::new(*v, 4000), server, tag);
        }
        self.round();
        let got = self.gw.recv_clear();
        let up = got
            .iter()
            .filter(|(s, d, t)| *d == server && *t == tag && vips.contains(&s.ip()))
            .count();
        for (s, _, _) in &got {
            self.gw.send_clear(server, *s, tag);
        }
        self.round();
        let down = self
            .cl
            .recv_clear()
            .iter()
            .filter(|(s, _, t)| *s == server && *t == tag)
            .count();
        (up, down)
    }
}

#[test]
fn clients_come_up_carry_traffic_and_leave_nothing_behind() {
    let mut lab = Lab::new(20, "", "");
    assert!(
        lab.run_until(10 * S, |l| l.tunnels() == (20, 20)),
        "tunnels up: {:?}",
        lab.tunnels()
    );
    assert_eq!(lab.vips().len(), 20);
    assert_eq!(lab.ping_all(1), (20, 20));
    // Both ends publish what they installed: the gateway's workers see 20 tunnels.
    assert_eq!(lab.gw.engine.installer().in_use(), (20, 20, 20));

    lab.cl.engine.stop(lab.now);
    assert!(
        lab.run_until(10 * S, |l| l.cl.engine.is_finished()
            && l.gw.engine.endpoint().sa_count() == 0),
        "after the stop: {:?}, client finished {}",
        lab.tunnels(),
        lab.cl.engine.is_finished()
    );
    lab.cl.engine.finish(lab.now);
    assert_eq!(lab.gw.engine.installer().in_use(), (0, 0, 0));
    assert_eq!(lab.cl.engine.installer().in_use(), (0, 0, 0));
    assert_eq!(lab.gw.engine.endpoint().leased(), 0);
    // Nothing was sent to an address nobody holds.
    assert_eq!(lab.unroutable, 0);
}

#[test]
fn a_client_that_loses_its_address_moves_and_its_traffic_follows() {
    let mut lab = Lab::new(
        3,
        &format!("    mobike: true\n    local_addrs: [{CL1}, {CL2}]\n"),
        "    mobike: true\n",
    );
    assert!(lab.run_until(10 * S, |l| l.tunnels() == (3, 3)));
    assert_eq!(lab.ping_all(1), (3, 3));
    // CL1 goes away: the client announces CL2 (RFC 4555 3.5) and the gateway's path
    // follows; until then traffic to CL1 has nowhere to go.
    lab.cl.addrs = vec![ip(CL2)];
    lab.cl.engine.host_addresses_changed(lab.now, vec![ip(CL2)]);
    assert!(
        lab.run_until(5 * S, |l| l.gw.engine.installer().sas().iter().all(|s| l
            .gw
            .engine
            .writer()
            .path(s.path)
            .map(|r| r.spec.remote.ip())
            == Some(ip(CL2)))),
        "the gateway's paths: {:?}\nclient {:?}\ngateway {:?}",
        lab.gw.engine.installer().sas(),
        lab.cl.engine.stats(),
        lab.gw.engine.stats()
    );
    assert_eq!(lab.tunnels(), (3, 3), "the same child SAs");
    assert_eq!(lab.ping_all(2), (3, 3));
    let stats: std::collections::HashMap<String, u64> = lab.gw.engine.stats().into_iter().collect();
    assert_eq!(stats["mobike_moves"], 3, "{stats:?}");
}

#[test]
fn rotations_are_observed_with_their_times_and_spread_over_a_lifetime() {
    let mut lab = Lab::new(
        8,
        &format!(
            "    mobike: true\n    local_addrs: [{CL1}, {CL2}]\n    mobikeiplifetime: 2s\n    mobikeipspread: true\n"
        ),
        "    mobike: true\n",
    );
    lab.cl.engine.observe();
    assert!(lab.run_until(10 * S, |l| l.tunnels() == (8, 8)));
    let up_at = lab.now;
    let mut obs = Vec::new();
    let mut handovers = perf::rig::handover::Handovers::default();
    assert!(lab.run_until(5 * S, |l| {
        while let Some(o) = l.cl.engine.poll_observation() {
            handovers.observe(&o);
            obs.push(o);
        }
        handovers.completed >= 8
    }));
    assert_eq!(lab.ping_all(3), (8, 8), "traffic follows every move");
    let ups: Vec<_> = obs
        .iter()
        .filter_map(|o| match o {
            Observation::IkeUp { sa, vip, path, .. } => Some((*sa, *vip, *path)),
            _ => None,
        })
        .collect();
    assert_eq!(ups.len(), 8);
    assert!(ups
        .iter()
        .all(|(_, vip, path)| vip.is_some() && path.is_some()));
    // Each SA's first rotation: due within its first lifetime, started when due
    // (the virtual clock runs to it), its update sent then, its answer after.
    let mut dues = Vec::new();
    for (sa, _, path) in &ups {
        let due = obs.iter().find_map(|o| match o {
            Observation::RotationStarted { sa: s, due, at } if s == sa => Some((*due, *at)),
            _ => None,
        });
        let (due, started) = due.expect("a rotation");
        assert!(
            due <= up_at + 2 * S && started >= due,
            "{due} {started} {up_at}"
        );
        let sent = obs.iter().find_map(|o| match o {
            Observation::UpdateSent { sa: s, at, .. } if s == sa => Some(*at),
            _ => None,
        });
        let moved = obs.iter().find_map(|o| match o {
            Observation::PathChanged {
                sa: s,
                at,
                path: p,
                local,
                ..
            } if s == sa => Some((*at, *p, *local)),
            _ => None,
        });
        let (sent, (moved, p, local)) = (sent.expect("an update"), moved.expect("a move"));
        assert!(started <= sent && sent <= moved);
        assert_eq!(p, *path, "the SA keeps its path record");
        assert_eq!(local.ip(), ip(CL2), "own-only: to the other address");
        dues.push(due);
    }
    // Spread: eight SAs set up together do not all come due at one time.
    dues.sort();
    dues.dedup();
    assert!(dues.len() >= 4, "rotation due times {dues:?}");
    assert_eq!(handovers.timings.signal.len(), 8);
    assert_eq!(lab.cl.engine.observations_dropped(), 0);
}

#[test]
fn rekeys_keep_traffic_flowing() {
    let lifetimes = "    rekey_time: 30s\n    over_time: 10s\n    rand_time: 0s\n\
                     \x20   children: { rekey_time: 20s, life_time: 30s, rand_time: 0s }\n";
    let mut lab = Lab::new(4, lifetimes, "");
    assert!(lab.run_until(10 * S, |l| l.tunnels() == (4, 4)));
    let first: Vec<u32> = lab
        .gw
        .engine
        .installer()
        .sas()
        .iter()
        .flat_map(|s| lab.gw.engine.installer().children_of(s.sa))
        .map(|c| c.spi_in)
        .collect();
    // Past two child rekeys and one IKE rekey, traffic every virtual second.
    let end = lab.now + 70 * S;
    let mut tag = 0u8;
    while lab.now < end {
        tag = tag.wrapping_add(1);
        assert_eq!(lab.ping_all(tag), (4, 4), "at {} s", lab.now / S);
        let t = lab.now + S;
        lab.run_until(S, |l| l.now >= t);
    }
    let after: Vec<u32> = lab
        .gw
        .engine
        .installer()
        .sas()
        .iter()
        .flat_map(|s| lab.gw.engine.installer().children_of(s.sa))
        .map(|c| c.spi_in)
        .collect();
    assert!(
        first.iter().all(|s| !after.contains(s)),
        "{first:?} {after:?}"
    );
    assert_eq!(lab.tunnels(), (4, 4));
    let gw = lab.gw.engine.installer().in_use();
    assert_eq!(
        (gw.0, gw.1),
        (4, 4),
        "one path and one tunnel per client: {gw:?}"
    );
}

#[test]
fn a_client_that_dies_is_found_by_dpd_and_removed() {
    let mut lab = Lab::new(5, "", "    dpd_delay: 10s\n");
    assert!(lab.run_until(10 * S, |l| l.tunnels() == (5, 5)));
    // The client vanishes without a word: its addresses go.
    lab.cl.addrs.clear();
    assert!(
        lab.run_until(120 * S, |l| l.gw.engine.endpoint().sa_count() == 0),
        "gateway still has {} IKE SAs",
        lab.gw.engine.endpoint().sa_count()
    );
    assert_eq!(lab.gw.engine.installer().in_use(), (0, 0, 0));
    assert_eq!(lab.gw.engine.endpoint().leased(), 0);
}

#[test]
fn every_declared_counter_is_in_the_report() {
    let mut lab = Lab::new(1, "", "");
    assert!(lab.run_until(10 * S, |l| l.tunnels() == (1, 1)));
    let names: Vec<String> = lab.gw.engine.stats().into_iter().map(|(n, _)| n).collect();
    let declared = control::ike::sa::Counters::NAMES
        .iter()
        .chain(control::client::ClientCounters::NAMES)
        .chain(control::mobility::MobilityCounters::NAMES)
        .chain(control::engine::EngineCounters::NAMES);
    for n in declared {
        assert!(names.iter().any(|m| m == n), "`{n}` missing from {names:?}");
    }
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        assert!(seen.insert(n), "`{n}` reported twice");
    }
}
