//! The in-process link: ordering, back-pressure, buffer conservation, no allocation after
//! creation, and both ends on their own threads.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::mem::{pair, MemPort};
use dataplane::io::{BurstIo, Layer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Counts allocations made by the current thread while `COUNTING` is set, so the test can
/// assert the packet path allocates nothing without seeing other test threads.
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the bookkeeping touches
// only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

/// Writes `seq` as the packet body.
fn stamp(b: &mut PacketBuf, seq: u64) {
    b.reset();
    assert!(b.fill(&seq.to_be_bytes()));
}

fn seq_of(b: &PacketBuf) -> u64 {
    u64::from_be_bytes(b.data().try_into().expect("8-byte body"))
}

/// Address of a buffer's allocation, to tell buffers apart.
fn id(b: &mut PacketBuf) -> usize {
    b.raw_mut().0.as_ptr() as usize
}

#[test]
fn delivers_in_order_both_ways() {
    let (mut a, mut b) = pair(16, Layer::Ip);
    assert_eq!(a.layer(), Layer::Ip);
    let mut bufs = PacketBuf::alloc(8);
    for (i, buf) in bufs.iter_mut().enumerate() {
        stamp(buf, i as u64);
    }
    assert_eq!(a.tx_burst(&mut bufs[..5]).unwrap(), 5);
    assert_eq!(b.pending(), 5);
    assert_eq!(a.pending(), 0);

    let mut rx = PacketBuf::alloc(3);
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 3);
    assert_eq!(rx.iter().map(seq_of).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 2);
    assert_eq!(rx[..2].iter().map(seq_of).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 0);

    // The other direction is independent.
    stamp(&mut rx[0], 99);
    assert_eq!(b.tx_burst(&mut rx[..1]).unwrap(), 1);
    assert_eq!(a.rx_burst(&mut bufs).unwrap(), 1);
    assert_eq!(seq_of(&bufs[0]), 99);
}

#[test]
fn meta_travels_but_slot_bookkeeping_stays() {
    let (mut a, mut b) = pair(4, Layer::Datagram);
    let mut tx = PacketBuf::alloc(1);
    stamp(&mut tx[0], 7);
    tx[0].meta.src = "127.0.0.1:4500".parse().unwrap();
    tx[0].meta.dst = "127.0.0.2:4500".parse().unwrap();
    tx[0].meta.tag = 11;
    assert_eq!(a.tx_burst(&mut tx).unwrap(), 1);
    let mut rx = PacketBuf::alloc(1);
    rx[0].meta.origin = 3;
    rx[0].meta.tag = 22;
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 1);
    assert_eq!(seq_of(&rx[0]), 7);
    assert_eq!(rx[0].meta.src, "127.0.0.1:4500".parse().unwrap());
    assert_eq!(rx[0].meta.dst, "127.0.0.2:4500".parse().unwrap());
    assert_eq!(rx[0].meta.origin, 3);
    assert_eq!(rx[0].meta.tag, 22);
}

#[test]
fn full_ring_takes_fewer() {
    let (mut a, mut b) = pair(4, Layer::Ethernet);
    let mut bufs = PacketBuf::alloc(6);
    for (i, buf) in bufs.iter_mut().enumerate() {
        stamp(buf, i as u64);
    }
    assert_eq!(a.tx_room(), 4);
    assert_eq!(a.tx_burst(&mut bufs).unwrap(), 4);
    assert_eq!(a.tx_room(), 0);
    // Untaken buffers are untouched, so the caller can retry or count them.
    assert_eq!(seq_of(&bufs[4]), 4);
    assert_eq!(a.tx_burst(&mut bufs[4..]).unwrap(), 0);
    assert_eq!(seq_of(&bufs[4]), 4);

    let mut rx = PacketBuf::alloc(1);
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 1);
    assert_eq!(seq_of(&rx[0]), 0);
    // One slot freed: the retry takes exactly one.
    assert_eq!(a.tx_burst(&mut bufs[4..]).unwrap(), 1);
    let mut rx = PacketBuf::alloc(8);
    assert_eq!(b.rx_burst(&mut rx).unwrap(), 4);
    assert_eq!(
        rx[..4].iter().map(seq_of).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn buffers_are_conserved_and_nothing_allocates() {
    const CAP: usize = 32;
    const BURST: usize = 24;
    let (mut a, mut b) = pair(CAP, Layer::Ip);
    let mut tx = PacketBuf::alloc(BURST);
    let mut rx = PacketBuf::alloc(BURST);
    let mut seen = HashSet::new();
    let mut next_tx = 0u64;
    let mut next_rx = 0u64;
    let mut dropped = 0u64;
    let mut allocs = 0;
    for round in 0..2_000usize {
        // Uneven bursts so the rings wrap at every offset and sometimes fill up.
        let n_tx = (round * 7) % (BURST + 1);
        let n_rx = (round * 5) % (BURST + 1);
        for buf in tx[..n_tx].iter_mut() {
            stamp(buf, next_tx);
            next_tx += 1;
        }
        let mut took = 0;
        let mut got = 0;
        allocs += allocations_during(|| {
            took = a.tx_burst(&mut tx[..n_tx]).unwrap();
            got = b.rx_burst(&mut rx[..n_rx]).unwrap();
        });
        // Untaken packets are dropped by the caller; the sequence numbers skip them.
        dropped += (n_tx - took) as u64;
        for buf in tx[took..n_tx].iter() {
            assert!(seq_of(buf) >= next_rx);
        }
        for buf in rx[..got].iter() {
            let s = seq_of(buf);
            assert!(s >= next_rx, "out of order: {s} after {next_rx}");
            next_rx = s + 1;
        }
        for buf in tx.iter_mut().chain(rx.iter_mut()) {
            seen.insert(id(buf));
        }
        assert!(a.tx_room() + b.pending() <= CAP);
    }
    assert_eq!(allocs, 0, "the packet path allocated");
    // The counter itself works.
    let probe = allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8))));
    assert_eq!(probe, 1);
    assert!(dropped > 0, "the test never filled the ring");
    // Drain, then every buffer is back where it started.
    let mut got = b.rx_burst(&mut rx).unwrap();
    while got > 0 {
        got = b.rx_burst(&mut rx).unwrap();
    }
    assert_eq!(b.pending(), 0);
    assert_eq!(a.tx_room(), CAP);
    assert_eq!(b.tx_room(), CAP);
    // Buffers only circulate: the caller never saw more than its own plus the ring's.
    assert!(
        seen.len() <= 2 * BURST + CAP,
        "{} distinct buffers",
        seen.len()
    );
    let mut now = HashSet::new();
    for buf in tx.iter_mut().chain(rx.iter_mut()) {
        assert!(now.insert(id(buf)), "one buffer held twice");
    }
}

#[test]
fn threads_on_both_ends() {
    const TOTAL: u64 = 200_000;
    let (mut a, mut b): (MemPort, MemPort) = pair(256, Layer::Ip);
    let deadline = Instant::now() + Duration::from_secs(30);
    let producer = std::thread::spawn(move || {
        let mut bufs = PacketBuf::alloc(32);
        let mut next = 0u64;
        let mut pending = 0usize; // stamped but not yet taken, at the front of bufs
        while next < TOTAL || pending > 0 {
            assert!(Instant::now() < deadline, "producer timed out at {next}");
            while pending < bufs.len() && next < TOTAL {
                stamp(&mut bufs[pending], next);
                next += 1;
                pending += 1;
            }
            let took = a.tx_burst(&mut bufs[..pending]).unwrap();
            // Keep untaken packets, in order, for the next try: nothing is lost.
            bufs[..pending].rotate_left(took);
            pending -= took;
            if took == 0 {
                std::thread::yield_now();
            }
        }
    });
    let consumer = std::thread::spawn(move || {
        let mut bufs = PacketBuf::alloc(32);
        let mut expect = 0u64;
        while expect < TOTAL {
            assert!(Instant::now() < deadline, "consumer timed out at {expect}");
            let got = b.rx_burst(&mut bufs).unwrap();
            for buf in &bufs[..got] {
                assert_eq!(seq_of(buf), expect);
                expect += 1;
            }
            if got == 0 {
                std::thread::yield_now();
            }
        }
        b.pending()
    });
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 0);
}
