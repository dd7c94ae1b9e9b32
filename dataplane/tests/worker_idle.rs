//! Idle workers sleep in poll(2) and wake at once for what they must handle: a datagram
//! on their port, a message the control plane injects (standard or large), a packet
//! another worker hands over, a stop request. Over loopback with the `udp` backend; the
//! worker runs `idle_wait` on its own thread and the test waits (with a deadline) until
//! the kernel shows that thread blocked in poll(2) before it acts, so nothing here
//! depends on how long anything takes.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::null::NullPort;
use dataplane::io::udp::{UdpConfig, UdpPort};
use dataplane::io::Layer;
use dataplane::worker::{Fabric, FabricConfig, Idle, IdleWait, Worker, WorkerConfig};
use shared::counters::Counter;
use shared::path::{Encap, PathSpec};
use shared::table::{TableConfig, TableWriter};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type W = Worker<UdpPort, NullPort>;

struct Rig {
    writer: TableWriter,
    fabric: Arc<Fabric>,
    workers: Vec<Option<W>>,
    /// Each worker's bound address.
    addrs: Vec<SocketAddr>,
    /// A peer on loopback.
    peer: UdpSocket,
}

fn rig(workers: usize, sleeping: bool) -> Rig {
    let tc = TableConfig::sized(workers, 16);
    let mut writer = TableWriter::new(tc);
    writer.publish();
    let fabric = Fabric::with_config(FabricConfig {
        sleeping_workers: sleeping,
        ..FabricConfig::new(workers)
    });
    let mut ws = Vec::new();
    let mut addrs = Vec::new();
    for id in 0..workers {
        let port = UdpPort::open(&UdpConfig {
            bind: vec!["127.0.0.1:0".parse().unwrap()],
            ..UdpConfig::default()
        })
        .unwrap();
        addrs.push(port.local_addrs()[0]);
        let mut cfg = WorkerConfig::new(id as u16, &tc);
        cfg.idle = Idle::Adaptive;
        let r = writer.reader(id).unwrap();
        ws.push(Some(Worker::new(
            cfg,
            port,
            NullPort::new(Layer::Ip),
            r,
            fabric.clone(),
        )));
    }
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Rig {
        writer,
        fabric,
        workers: ws,
        addrs,
        peer,
    }
}

/// The kernel's thread id of the calling thread.
fn gettid() -> i64 {
    // SAFETY: gettid(2) takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Whether thread `tid` of this process is blocked in poll(2) (`/proc/.../syscall`
/// names the system call a sleeping thread is in).
fn in_poll(tid: i64) -> bool {
    let path = format!("/proc/self/task/{tid}/syscall");
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let nr: i64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1);
    nr == libc::SYS_ppoll || {
        #[cfg(target_arch = "x86_64")]
        {
            nr == libc::SYS_poll
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Runs one `idle_wait` of `w` on a thread; returns once that thread sleeps in poll(2).
fn park(w: W) -> JoinHandle<(W, IdleWait)> {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut w = w;
        tx.send(gettid()).unwrap();
        let r = w.idle_wait();
        (w, r)
    });
    let tid = rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_poll(tid) {
        assert!(
            Instant::now() < deadline,
            "the idle worker never blocked in poll(2)"
        );
        if h.is_finished() {
            let (_, r) = h.join().unwrap();
            panic!("the idle worker returned without blocking: {r:?}");
        }
        std::thread::yield_now();
    }
    h
}

/// Polls `w` until it did some work, at most a bounded number of times.
fn poll_until_work(w: &mut W) -> usize {
    for _ in 0..10_000 {
        let n = w.poll_once();
        if n > 0 {
            return n;
        }
    }
    0
}

/// An IKE payload (what the control plane injects, marker included) from worker `w`'s
/// address to the peer.
fn ike_for_peer(rig: &Rig, w: usize, len: usize) -> PacketBuf {
    let mut b = PacketBuf::with_frame(len + 64);
    let mut data = vec![0u8; len];
    for (i, x) in data.iter_mut().enumerate().skip(4) {
        *x = (i % 251) as u8;
    }
    assert!(b.fill(&data));
    b.meta.src = rig.addrs[w];
    b.meta.dst = rig.peer.local_addr().unwrap();
    b
}

#[test]
fn an_idle_worker_sleeps_offline_and_wakes_for_a_datagram() {
    let mut rig = rig(1, true);
    let mut w = rig.workers[0].take().unwrap();
    assert!(w.sleeps_in_poll());
    // A first burst brings the worker online at the current table version.
    assert_eq!(w.poll_once(), 0);
    let h = park(w);

    // Asleep, it is offline: a version retired now is freed without waiting for it.
    rig.writer
        .set_path(
            0,
            PathSpec {
                local: rig.addrs[0],
                remote: rig.peer.local_addr().unwrap(),
                encap: Encap::Udp,
                l2: None,
                keepalive_ms: 0,
            },
        )
        .unwrap();
    rig.writer.publish();
    rig.writer.reclaim();
    assert_eq!(
        rig.writer.pending_reclaim(),
        0,
        "the sleeping worker held a version"
    );

    // A datagram on its port ends the sleep, and the next burst takes it.
    rig.peer
        .send_to(&[0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1], rig.addrs[0])
        .unwrap();
    let (mut w, r) = h.join().unwrap();
    assert_eq!(r, IdleWait::Woken);
    assert_eq!(poll_until_work(&mut w), 1);
    assert_eq!(rig.fabric.counters.total(Counter::RxCipher), 1);
    assert_eq!(rig.fabric.counters.total(Counter::DropUnknownSpi), 1);
}

#[test]
fn injected_ike_wakes_the_worker_that_sends_it() {
    let mut rig = rig(1, true);
    let mut w = rig.workers[0].take().unwrap();
    let mut got = vec![0u8; 70_000];
    for (len, large) in [(300, false), (9_000, true)] {
        assert_eq!(w.poll_once(), 0);
        let h = park(w);
        let mut b = ike_for_peer(&rig, 0, len);
        let queue = if large {
            &rig.fabric.inject_large[0]
        } else {
            &rig.fabric.inject[0]
        };
        if !large {
            // The standard queue swaps in its own standard buffers.
            let mut s = PacketBuf::new();
            assert!(s.fill(b.data()));
            s.meta = b.meta;
            b = s;
        }
        assert!(queue.send_swap(&mut b));
        queue.notify();
        let (mut worker, r) = h.join().unwrap();
        assert_eq!(r, IdleWait::Woken, "{len} bytes");
        assert_eq!(poll_until_work(&mut worker), 1);
        let (n, from) = rig.peer.recv_from(&mut got).unwrap();
        assert_eq!(from, rig.addrs[0]);
        assert_eq!(n, len);
        assert_eq!(&got[..4], &[0, 0, 0, 0]);
        assert!(got[4..n]
            .iter()
            .enumerate()
            .all(|(i, x)| *x == ((i + 4) % 251) as u8));
        w = worker;
    }
    assert_eq!(rig.fabric.counters.total(Counter::InjectTx), 2);
    assert_eq!(rig.fabric.counters.total(Counter::TxCipher), 2);
}

#[test]
fn a_handoff_and_a_stop_wake_a_sleeping_worker() {
    let mut rig = rig(2, true);
    let mut w1 = rig.workers[1].take().unwrap();
    assert_eq!(w1.poll_once(), 0);
    let h = park(w1);
    // What worker 0 does at the end of a burst that handed packets to worker 1.
    let mut b = PacketBuf::new();
    assert!(b.fill(&[0x11; 40]));
    b.meta.tag = 1;
    assert!(rig.fabric.handoff[1].send_swap(&mut b));
    rig.fabric.handoff[1].notify();
    let (mut w1, r) = h.join().unwrap();
    assert_eq!(r, IdleWait::Woken);
    assert_eq!(poll_until_work(&mut w1), 1);
    assert_eq!(rig.fabric.counters.total(Counter::HandoffIn), 1);

    let h = park(w1);
    rig.fabric.stop();
    let (mut w1, r) = h.join().unwrap();
    assert_eq!(r, IdleWait::Woken);
    // Once stopped it does not block again.
    assert_eq!(w1.idle_wait(), IdleWait::Skipped);
}

#[test]
fn without_wakeups_workers_nap_and_producers_never_write() {
    let mut rig = rig(1, false);
    let mut w = rig.workers[0].take().unwrap();
    assert!(!w.sleeps_in_poll());
    assert!(rig.fabric.wakeups.iter().all(Option::is_none));
    assert_eq!(rig.fabric.inject[0].wakeup_fd(), None);
    assert_eq!(w.idle_wait(), IdleWait::Nap);
    // A busy worker neither sleeps nor naps.
    let tc = TableConfig::sized(1, 16);
    let mut writer = TableWriter::new(tc);
    let mut cfg = WorkerConfig::new(0, &tc);
    cfg.idle = Idle::Busy;
    let port = UdpPort::open(&UdpConfig {
        bind: vec!["127.0.0.1:0".parse().unwrap()],
        ..UdpConfig::default()
    })
    .unwrap();
    let mut busy = Worker::new(
        cfg,
        port,
        NullPort::new(Layer::Ip),
        writer.reader(0).unwrap(),
        Fabric::new(1),
    );
    assert!(!busy.sleeps_in_poll());
    assert_eq!(busy.idle_wait(), IdleWait::Spin);
}
