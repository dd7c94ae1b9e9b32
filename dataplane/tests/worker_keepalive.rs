//! RFC 3948 4 keepalives with many paths: a worker's housekeeping pass looks at its
//! share of a one-second sweep, not at every path of the table, and every quiet path
//! still gets its keepalive at most a sweep late. Injected time, `mem` ports.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::mem::{self, MemPort};
use dataplane::io::{BurstIo, Layer};
use dataplane::worker::{Fabric, Idle, Worker, WorkerConfig};
use shared::counters::Counter;
use shared::path::{Encap, PathSpec};
use shared::table::{TableConfig, TableWriter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const PATHS: usize = 4000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn drain(wire: &mut MemPort) -> usize {
    let mut out = PacketBuf::alloc(256);
    let mut n = 0;
    for _ in 0..1000 {
        let got = wire.rx_burst(&mut out).unwrap();
        if got == 0 {
            break;
        }
        n += got;
    }
    n
}

#[test]
fn a_pass_looks_at_a_slice_and_a_sweep_sends_every_keepalive_within_a_second() {
    let tc = TableConfig::sized(1, PATHS);
    let mut writer = TableWriter::new(tc);
    for id in 0..PATHS {
        let host = Ipv4Addr::from(0xc633_0000u32 + id as u32);
        writer
            .set_path(
                id as u32,
                PathSpec {
                    local: "192.0.2.1:4500".parse().unwrap(),
                    remote: SocketAddr::new(IpAddr::V4(host), 4500),
                    encap: Encap::Udp,
                    l2: None,
                    keepalive_ms: 20_000,
                },
            )
            .unwrap();
    }
    writer.publish();
    let fabric = Fabric::new(1);
    let (c, mut wire) = mem::pair(2 * PATHS, Layer::Datagram);
    let (l, _lan) = mem::pair(16, Layer::Ip);
    let mut cfg = WorkerConfig::new(0, &tc);
    cfg.idle = Idle::Busy;
    let mut w = Worker::new(cfg, c, l, writer.reader(0).unwrap(), fabric.clone());

    // The first pass (nothing swept yet) covers every path: all quiet, all get one.
    let t0 = 1_000 * S;
    w.poll_at(t0);
    assert_eq!(drain(&mut wire), PATHS);
    // Passes every 10 ms: nothing is due for 20 s.
    let mut t = t0;
    while t + 10 * MS < t0 + 20 * S {
        t += 10 * MS;
        w.poll_at(t);
    }
    assert_eq!(drain(&mut wire), 0);
    // All of them are due now, but one pass 10 ms after the last looks at about 1 %.
    t += 10 * MS;
    w.poll_at(t);
    let first = drain(&mut wire);
    assert!(first <= PATHS / 50, "one pass sent {first}");
    // Within the sweep's second every path has had its keepalive, exactly once.
    let mut sent = first;
    let end = t + S + 20 * MS;
    while t < end {
        t += 10 * MS;
        w.poll_at(t);
        sent += drain(&mut wire);
    }
    assert_eq!(sent, PATHS);
    assert_eq!(
        fabric.counters.total(Counter::KeepaliveTx),
        2 * PATHS as u64
    );
}
