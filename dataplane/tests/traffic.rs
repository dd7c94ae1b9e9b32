//! Traffic generator and sink: exact accounting of loss, reordering and duplicates, the
//! rate limiter on a virtual clock, sizes, latency, gaps and the marker.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::mem::pair;
use dataplane::io::traffic::{
    GenConfig, PacketSize, SinkConfig, TestHeader, TrafficGen, TrafficSink, MAGIC,
};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip::{inner_info, parse_outer};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;

fn v4_gen(count: u64) -> TrafficGen {
    let mut cfg = GenConfig::new(
        "10.1.0.1:5000".parse().unwrap(),
        "10.2.0.1:6000".parse().unwrap(),
    );
    cfg.count = Some(count);
    TrafficGen::new(cfg)
}

/// Generates all packets of `gen` (bursts of 32 at 1 ms steps from `t0`) as owned copies.
fn generate_all(gen: &mut TrafficGen, t0: u64) -> Vec<PacketBuf> {
    let mut out = Vec::new();
    let mut bufs = PacketBuf::alloc(32);
    let mut t = t0;
    for _ in 0..100_000 {
        let n = gen.generate(&mut bufs, t);
        if n == 0 {
            break;
        }
        for b in &bufs[..n] {
            let mut c = PacketBuf::new();
            assert!(c.fill(b.data()));
            out.push(c);
        }
        t += MS;
    }
    assert!(gen.finished());
    out
}

fn seq_of(b: &PacketBuf) -> u64 {
    let o = parse_outer(b.data(), Layer::Ip).unwrap();
    TestHeader::parse(&b.data()[o.payload]).unwrap().seq
}

/// Feeds `pkts` to the sink in bursts of 32 at `t`.
fn feed(sink: &mut TrafficSink, pkts: &[PacketBuf], t: u64) {
    for chunk in pkts.chunks(32) {
        sink.consume(chunk, t);
    }
}

#[test]
fn gen_to_sink_counts_exactly() {
    let mut gen = v4_gen(1000);
    let stats = gen.stats();
    let mut sink = TrafficSink::new(SinkConfig::default());
    let sstats = sink.stats();
    let mut bufs = PacketBuf::alloc(32);
    let mut t = 1_000 * MS;
    loop {
        let n = gen.generate(&mut bufs, t);
        if n == 0 {
            break;
        }
        // 250 us one-way.
        sink.consume(&bufs[..n], t + 250_000);
        t += MS;
    }
    let r = sink.report();
    assert_eq!(r.received, 1000);
    assert_eq!(stats.packets.load(Ordering::Relaxed), 1000);
    assert_eq!(r.bytes, stats.bytes.load(Ordering::Relaxed));
    assert_eq!(r.bytes, 1000 * 128);
    assert_eq!((r.lost, r.duplicates, r.reordered, r.bad), (0, 0, 0, 0));
    assert_eq!(sstats.received.load(Ordering::Relaxed), 1000);
    assert_eq!(r.latency.samples, 1000);
    // Every sample lands in the histogram bucket of 250 us (1 us floor => 512 ns units).
    let h = sink.latency();
    for v in [r.latency.min, r.latency.p50, r.latency.p999, r.latency.max] {
        assert!(h.equivalent(v, 250_000), "{:?}", r.latency);
    }
    assert!(!h.equivalent(r.latency.p50, 252_000));
    assert_eq!(r.first_rx_ns, 1_000 * MS + 250_000);
}

#[test]
fn packets_are_well_formed() {
    for (src, dst) in [
        ("10.1.0.1:5000", "10.2.0.1:6000"),
        ("[fd00::1]:5000", "[fd00::2]:6000"),
    ] {
        let mut cfg = GenConfig::new(src.parse().unwrap(), dst.parse().unwrap());
        cfg.count = Some(3);
        cfg.flow = 7;
        cfg.size = PacketSize::Fixed(300);
        let mut gen = TrafficGen::new(cfg);
        let mut bufs = PacketBuf::alloc(4);
        assert_eq!(gen.generate(&mut bufs, 42), 3);
        for (i, b) in bufs[..3].iter().enumerate() {
            assert_eq!(b.len(), 300);
            let info = inner_info(b.data()).unwrap();
            assert_eq!(info.total_len, 300);
            let o = parse_outer(b.data(), Layer::Ip).unwrap();
            assert_eq!(o.src, src.parse().unwrap());
            assert_eq!(o.dst, dst.parse().unwrap());
            let payload = &b.data()[o.payload];
            assert_eq!(&payload[..4], &MAGIC.to_be_bytes());
            let h = TestHeader::parse(payload).unwrap();
            assert_eq!(h.flow, 7);
            assert_eq!(h.seq, i as u64);
            assert_eq!(h.tx_ns, 42);
        }
        // Flow 7 is unknown to a one-flow sink; an eight-flow sink takes it.
        let mut sink = TrafficSink::new(SinkConfig::default());
        sink.consume(&bufs[..3], 50);
        assert_eq!((sink.report().received, sink.report().bad), (0, 3));
        let mut sink = TrafficSink::new(SinkConfig {
            flows: 8,
            ..SinkConfig::default()
        });
        sink.consume(&bufs[..3], 50);
        assert_eq!((sink.report().received, sink.report().bad), (3, 0));
    }
}

#[test]
fn every_tenth_dropped_is_lost() {
    let mut gen = v4_gen(1000);
    let pkts = generate_all(&mut gen, 0);
    let kept: Vec<PacketBuf> = pkts.into_iter().filter(|p| seq_of(p) % 10 != 5).collect();
    let mut sink = TrafficSink::new(SinkConfig::default());
    feed(&mut sink, &kept, 5 * MS);
    let r = sink.report();
    assert_eq!(r.received, 900);
    assert_eq!(r.lost, 100);
    assert_eq!((r.duplicates, r.reordered, r.bad), (0, 0, 0));
    assert_eq!(r.missing(gen.sent()), 100);
}

#[test]
fn tail_loss_needs_the_sent_count() {
    let mut gen = v4_gen(100);
    let pkts = generate_all(&mut gen, 0);
    let mut sink = TrafficSink::new(SinkConfig::default());
    feed(&mut sink, &pkts[..90], MS);
    let r = sink.report();
    // No later packet reveals the last ten as missing; the sender's count does.
    assert_eq!((r.received, r.lost), (90, 0));
    assert_eq!(r.missing(gen.sent()), 10);
}

#[test]
fn swapped_neighbours_are_reordered_not_lost() {
    let mut gen = v4_gen(1000);
    let mut pkts = generate_all(&mut gen, 0);
    for pair in pkts.chunks_mut(2) {
        pair.swap(0, 1);
    }
    // Also across burst boundaries: feed in odd-sized bursts.
    let mut sink = TrafficSink::new(SinkConfig::default());
    for chunk in pkts.chunks(7) {
        sink.consume(chunk, MS);
    }
    let r = sink.report();
    assert_eq!(r.received, 1000);
    assert_eq!(r.reordered, 500);
    assert_eq!((r.lost, r.duplicates, r.too_old, r.bad), (0, 0, 0, 0));
}

#[test]
fn duplicates_are_counted_once() {
    let mut gen = v4_gen(1000);
    let pkts = generate_all(&mut gen, 0);
    let mut doubled = Vec::new();
    for p in pkts {
        let twice = matches!(seq_of(&p) % 5, 0);
        if twice {
            let mut c = PacketBuf::new();
            assert!(c.fill(p.data()));
            doubled.push(c);
        }
        doubled.push(p);
    }
    let mut sink = TrafficSink::new(SinkConfig::default());
    feed(&mut sink, &doubled, MS);
    let r = sink.report();
    assert_eq!(r.received, 1000);
    assert_eq!(r.duplicates, 200);
    assert_eq!((r.lost, r.reordered, r.bad), (0, 0, 0));
    assert_eq!(r.latency.samples, 1000);
}

#[test]
fn late_beyond_window_is_too_old_and_stays_lost() {
    let mut gen = v4_gen(300);
    let mut pkts = generate_all(&mut gen, 0);
    let held = pkts.remove(5);
    // Late by more than the 64-packet window, then a fresh duplicate of the newest.
    let mut sink = TrafficSink::new(SinkConfig {
        window: 64,
        ..SinkConfig::default()
    });
    feed(&mut sink, &pkts, MS);
    assert_eq!(sink.report().lost, 1);
    sink.consume(std::slice::from_ref(&held), 2 * MS);
    let mut last = PacketBuf::new();
    assert!(last.fill(pkts[pkts.len() - 1].data()));
    sink.consume(std::slice::from_ref(&last), 2 * MS);
    let r = sink.report();
    assert_eq!(r.received, 299);
    assert_eq!((r.lost, r.too_old, r.duplicates), (1, 1, 1));

    // Within the window the same hole is filled.
    let mut sink = TrafficSink::new(SinkConfig {
        window: 512,
        ..SinkConfig::default()
    });
    feed(&mut sink, &pkts, MS);
    sink.consume(std::slice::from_ref(&held), 2 * MS);
    let r = sink.report();
    assert_eq!((r.received, r.lost, r.reordered, r.too_old), (300, 0, 1, 0));
}

#[test]
fn first_packets_missing_count_as_lost() {
    let mut gen = v4_gen(50);
    let pkts = generate_all(&mut gen, 0);
    let mut sink = TrafficSink::new(SinkConfig::default());
    feed(&mut sink, &pkts[10..], MS);
    let r = sink.report();
    assert_eq!((r.received, r.lost), (40, 10));
    // A late first packet fills its hole.
    feed(&mut sink, &pkts[3..4], MS);
    let r = sink.report();
    assert_eq!((r.received, r.lost, r.reordered), (41, 9, 1));
}

#[test]
fn bad_packets_are_counted() {
    let mut gen = v4_gen(4);
    let mut pkts = generate_all(&mut gen, 0);
    let len = pkts[0].len();
    // Corrupt the filler (UDP checksum catches it), the magic, truncate one, and send junk.
    pkts[0].data_mut()[len - 1] ^= 0x40;
    let o = parse_outer(pkts[1].data(), Layer::Ip).unwrap();
    pkts[1].data_mut()[o.payload.start] ^= 1;
    assert!(pkts[2].truncate(30));
    assert!(pkts[3].fill(&[0x45; 10]));
    let mut sink = TrafficSink::new(SinkConfig::default());
    sink.consume(&pkts, MS);
    let r = sink.report();
    assert_eq!((r.received, r.bad), (0, 4));

    // Without checksum verification the corrupted filler passes.
    let mut sink = TrafficSink::new(SinkConfig {
        verify_checksum: false,
        ..SinkConfig::default()
    });
    sink.consume(&pkts[..1], MS);
    assert_eq!(sink.report().received, 1);
}

#[test]
fn imix_sizes_in_ratio() {
    for (src, dst, small) in [
        ("10.1.0.1:1", "10.2.0.1:2", 64),
        ("[fd00::1]:1", "[fd00::2]:2", 72),
    ] {
        let mut cfg = GenConfig::new(src.parse().unwrap(), dst.parse().unwrap());
        cfg.size = PacketSize::Imix;
        cfg.count = Some(1200);
        let mut gen = TrafficGen::new(cfg);
        let pkts = generate_all(&mut gen, 0);
        let count = |len: usize| pkts.iter().filter(|p| p.len() == len).count();
        assert_eq!(count(small), 700);
        assert_eq!(count(576), 400);
        assert_eq!(count(1500), 100);
        let mut sink = TrafficSink::new(SinkConfig::default());
        feed(&mut sink, &pkts, MS);
        let r = sink.report();
        assert_eq!((r.received, r.bad), (1200, 0));
        assert_eq!(r.bytes, (700 * small + 400 * 576 + 100 * 1500) as u64);
    }
}

#[test]
fn fixed_size_is_clamped() {
    let mut cfg = GenConfig::new("10.1.0.1:1".parse().unwrap(), "10.2.0.1:2".parse().unwrap());
    cfg.size = PacketSize::Fixed(10);
    let mut gen = TrafficGen::new(cfg.clone());
    let mut bufs = PacketBuf::alloc(1);
    assert_eq!(gen.generate(&mut bufs, 0), 1);
    assert_eq!(bufs[0].len(), 20 + 8 + 24);
    cfg.size = PacketSize::Fixed(100_000);
    let mut gen = TrafficGen::new(cfg);
    assert_eq!(gen.generate(&mut bufs, 0), 1);
    assert_eq!(bufs[0].len(), dataplane::buf::MAX_FRAME);
}

#[test]
fn rate_limit_on_a_virtual_clock() {
    const RATE: u64 = 10_000;
    const BUCKET: u64 = 16;
    let mut cfg = GenConfig::new("10.1.0.1:1".parse().unwrap(), "10.2.0.1:2".parse().unwrap());
    cfg.rate_pps = RATE;
    cfg.bucket = BUCKET;
    let mut gen = TrafficGen::new(cfg);
    let mut bufs = PacketBuf::alloc(64);
    let t0 = 5_000 * MS;
    let mut sent = 0u64;
    // Poll every 37 us (not a divisor of the packet interval) for 2 virtual seconds.
    let mut t = t0;
    while t <= t0 + 2_000 * MS {
        sent += gen.generate(&mut bufs, t) as u64;
        let elapsed = t - t0;
        let allowed = elapsed * RATE / 1_000_000_000 + BUCKET;
        assert!(sent <= allowed, "{sent} sent by {elapsed} ns");
        t += 37_000;
    }
    let expect = 2 * RATE + BUCKET;
    assert!(
        sent + 1 >= expect && sent <= expect,
        "{sent} packets in 2 s at {RATE} pps (bucket {BUCKET})"
    );

    // After an idle second only a bucket's worth leaves at once.
    let burst = gen.generate(&mut bufs, t + 1_000 * MS);
    assert_eq!(burst as u64, BUCKET);
    // Polling with no time passing yields nothing.
    assert_eq!(gen.generate(&mut bufs, t + 1_000 * MS), 0);
}

#[test]
fn count_limit_and_unlimited_rate() {
    let mut gen = v4_gen(70);
    let mut bufs = PacketBuf::alloc(64);
    assert_eq!(gen.generate(&mut bufs, 0), 64);
    assert_eq!(gen.generate(&mut bufs, 0), 6);
    assert_eq!(gen.generate(&mut bufs, 0), 0);
    assert!(gen.finished());
    assert_eq!(gen.sent(), 70);
}

#[test]
fn largest_gap_and_marker() {
    let mut gen = v4_gen(100);
    let pkts = generate_all(&mut gen, 0);
    let mut sink = TrafficSink::new(SinkConfig::default());
    let control = sink.control();
    assert_eq!(control.first_after_mark(), None);
    // Arrivals every millisecond, one 40 ms outage between 10 ms and 50 ms.
    let mut t = 0;
    control.mark(30 * MS);
    for (i, p) in pkts.iter().enumerate() {
        t = if i < 10 {
            (i as u64 + 1) * MS
        } else {
            40 * MS + i as u64 * MS
        };
        sink.consume(std::slice::from_ref(p), t);
        if i == 9 {
            assert_eq!(
                control.first_after_mark(),
                None,
                "nothing after the mark yet"
            );
        }
    }
    // Junk after the mark does not answer it.
    control.mark(t + MS);
    sink.consume(&[PacketBuf::new()], t + 2 * MS);
    assert_eq!(control.first_after_mark(), None);
    let r = sink.report();
    assert_eq!(r.max_gap_ns, 40 * MS);
    assert_eq!((r.max_gap_from_ns, r.max_gap_to_ns), (10 * MS, 50 * MS));
    assert_eq!(r.bad, 1);

    // A new mark forgets the old answer until a packet arrives.
    let mut sink = TrafficSink::new(SinkConfig::default());
    let control = sink.control();
    control.mark(30 * MS);
    for (i, p) in pkts.iter().enumerate() {
        let t = if i < 10 {
            (i as u64 + 1) * MS
        } else {
            40 * MS + i as u64 * MS
        };
        sink.consume(std::slice::from_ref(p), t);
    }
    assert_eq!(control.first_after_mark(), Some(50 * MS));
    assert_eq!(sink.report().first_after_mark_ns, Some(50 * MS));
    control.mark(200 * MS);
    assert_eq!(control.first_after_mark(), None);
}

#[test]
fn ports_through_a_mem_link_on_the_real_clock() {
    let mut cfg = GenConfig::new(
        "[fd00::1]:5000".parse().unwrap(),
        "[fd00::2]:6000".parse().unwrap(),
    );
    cfg.count = Some(5000);
    let mut gen = TrafficGen::new(cfg);
    let mut sink = TrafficSink::new(SinkConfig::default());
    assert_eq!((gen.layer(), sink.layer()), (Layer::Ip, Layer::Ip));
    let (mut a, mut b) = pair(256, Layer::Ip);
    let mut bufs = PacketBuf::alloc(64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.report().received < 5000 {
        assert!(Instant::now() < deadline, "timed out");
        let n = gen.rx_burst(&mut bufs).unwrap();
        let took = a.tx_burst(&mut bufs[..n]).unwrap();
        assert_eq!(took, n);
        let got = b.rx_burst(&mut bufs).unwrap();
        assert_eq!(sink.tx_burst(&mut bufs[..got]).unwrap(), got);
    }
    assert_eq!(sink.rx_burst(&mut bufs).unwrap(), 0);
    assert_eq!(gen.tx_burst(&mut bufs[..3]).unwrap(), 3);
    assert_eq!(gen.stats().discarded.load(Ordering::Relaxed), 3);
    let r = sink.report();
    assert_eq!((r.received, r.lost, r.bad), (5000, 0, 0));
    // Real clock: latencies are small and positive.
    assert!(r.latency.max < 10_000 * MS, "{:?}", r.latency);
    assert!(r.last_rx_ns >= r.first_rx_ns);
}
