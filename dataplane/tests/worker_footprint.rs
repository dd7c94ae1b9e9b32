//! A worker's private state grows with the SAs it owns, not with the table's capacity:
//! with no SA installed, a worker for a 200,000-SA table adds next to nothing to the
//! process (it used to preallocate a replay window per inbound slot: ~70 MB here).
//! Its own test binary, so no other test allocates while the resident size is read.

use mobiked_dataplane as dataplane;

use dataplane::io::mem;
use dataplane::io::Layer;
use dataplane::worker::{Fabric, Idle, Worker, WorkerConfig};
use shared::table::{TableConfig, TableWriter};

/// Resident bytes of this process (/proc/self/statm, pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn zero_tunnel_worker_state_does_not_grow_with_max_sas() {
    const MAX_SAS: usize = 200_000;
    let tc = TableConfig::sized(2, MAX_SAS);
    let mut writer = TableWriter::new(tc);
    writer.publish();
    let fabric = Fabric::new(2);
    let mut ports = Vec::new();
    let before = rss_bytes();
    let mut workers = Vec::new();
    for id in 0..2u16 {
        let (c, cw) = mem::pair(64, Layer::Ethernet);
        let (l, lw) = mem::pair(64, Layer::Ip);
        let mut cfg = WorkerConfig::new(id, &tc);
        cfg.idle = Idle::Busy;
        cfg.replay_capacity = 1024;
        let r = writer.reader(id as usize).unwrap();
        workers.push(Worker::new(cfg, c, l, r, fabric.clone()));
        ports.push((cw, lw));
    }
    for w in workers.iter_mut() {
        w.poll_at(1_000_000_000);
        assert_eq!(w.sa_state_bytes(), 0);
    }
    let grown = rss_bytes().saturating_sub(before);
    // Packet buffers and rings are per worker and independent of MAX_SAS (a few MB);
    // 200,000 slots of replay state would be tens of MB.
    assert!(
        grown < 16 << 20,
        "two idle workers for {MAX_SAS} SAs grew the process by {grown} bytes"
    );
    eprintln!("two zero-tunnel workers, max {MAX_SAS} SAs: +{grown} bytes resident");
}
