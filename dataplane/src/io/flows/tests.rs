//! Flow table, per-flow generator and sink on a virtual clock; the port on the real one.

use super::*;
use crate::ip::build_udp_packet;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

/// Client `i` on IPv4: 10.0.x.y:(10000 + i) -> 192.0.2.1:9.
fn v4_pair(i: u32) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::new(
            Ipv4Addr::from(0x0a00_0000 + i).into(),
            10_000u16.wrapping_add(i as u16),
        ),
        "192.0.2.1:9".parse().unwrap(),
    )
}

/// Client `i` on IPv6: 2001:db8::i -> 2001:db8:ffff::1:9.
fn v6_pair(i: u32) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::new(
            Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)).into(),
            20_000u16.wrapping_add(i as u16),
        ),
        "[2001:db8:ffff::1]:9".parse().unwrap(),
    )
}

fn pair(i: u32) -> (SocketAddr, SocketAddr) {
    if i.is_multiple_of(2) {
        v4_pair(i)
    } else {
        v6_pair(i)
    }
}

/// A table with flows `0..n` active (alternating families).
fn table_with(capacity: u32, n: u32) -> (FlowWriter, Arc<FlowTable>) {
    let (mut w, t) = FlowTable::new(capacity);
    for i in 0..n {
        let (s, d) = pair(i);
        assert!(w.set(i, s, d, 0));
    }
    (w, t)
}

/// What a generated packet says about itself.
#[derive(Clone, Copy, Debug)]
struct Seen {
    hdr: TestHeader,
    len: usize,
    src: SocketAddr,
    dst: SocketAddr,
}

fn seen(b: &PacketBuf) -> Seen {
    let o = parse_outer(b.data(), Layer::Ip).unwrap();
    Seen {
        hdr: TestHeader::parse(&b.data()[o.payload]).unwrap(),
        len: b.len(),
        src: o.src,
        dst: o.dst,
    }
}

/// Polls `gen` every `step` from `from` up to and including `to`, 32 buffers a burst.
fn drive(gen: &mut FlowGen, from: u64, to: u64, step: u64) -> Vec<Seen> {
    let mut bufs = PacketBuf::alloc(32);
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let n = gen.generate(&mut bufs, t);
        out.extend(bufs[..n].iter().map(seen));
        t += step;
    }
    out
}

fn by_flow(pkts: &[Seen]) -> BTreeMap<u32, Vec<u64>> {
    let mut m: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for p in pkts {
        m.entry(p.hdr.flow).or_default().push(p.hdr.seq);
    }
    m
}

/// A valid test packet of `flow` from client 0's addresses.
fn pkt(flow: u32, seq: u64, tx_ns: u64) -> PacketBuf {
    let (s, d) = v4_pair(0);
    raw_pkt(s, d, 40, |p| {
        TestHeader { flow, seq, tx_ns }.emit(p);
    })
}

fn raw_pkt(
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> PacketBuf {
    let mut b = PacketBuf::new();
    build_udp_packet(&mut b, src, dst, payload_len, fill).unwrap();
    b
}

fn sink(capacity: u32) -> FlowSink {
    FlowSink::new(FlowSinkConfig::new(capacity, 300 * MS))
}

/// Feeds `(flow, seq)` one burst each at 1 ms steps from `t0`; returns the next time.
fn feed(sink: &mut FlowSink, pkts: &[(u32, u64)], t0: u64) -> u64 {
    let mut t = t0;
    for &(f, s) in pkts {
        sink.consume(&[pkt(f, s, t)], t);
        t += MS;
    }
    t
}

// ---------------------------------------------------------------------------------------
// Table.

#[test]
fn table_set_get_clear() {
    let (mut w, t) = FlowTable::new(8);
    assert_eq!(t.capacity(), 8);
    assert_eq!(t.get(3), None);
    let (s, d) = v4_pair(3);
    assert!(w.set(3, s, d, 77));
    assert_eq!(
        t.get(3),
        Some(FlowSpec {
            src: s,
            dst: d,
            since_ns: 77
        })
    );
    // Handover: same flow, new addresses, still one active flow.
    let (s6, d6) = v6_pair(3);
    assert!(w.set(3, s6, d6, 99));
    assert_eq!(t.get(3).unwrap().src, s6);
    assert_eq!(t.get(3).unwrap().dst, d6);
    assert_eq!((w.active(), t.active()), (1, 1));
    w.clear(3);
    assert_eq!(t.get(3), None);
    assert_eq!((w.active(), t.active()), (0, 0));
    // Clearing twice, or an inactive or unknown flow, changes nothing.
    w.clear(3);
    w.clear(5);
    w.clear(1_000);
    assert_eq!(t.active(), 0);
}

#[test]
fn table_keeps_whole_addresses_and_ports() {
    let (mut w, t) = FlowTable::new(2);
    let s: SocketAddr = "[ffff:1:2:3:4:5:6:fffe]:65535".parse().unwrap();
    let d: SocketAddr = "[::1]:1".parse().unwrap();
    assert!(w.set(0, s, d, u64::MAX));
    let s4 = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 65_535));
    let d4 = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    assert!(w.set(1, s4, d4, 0));
    let a = t.get(0).unwrap();
    assert_eq!((a.src, a.dst, a.since_ns), (s, d, u64::MAX));
    let b = t.get(1).unwrap();
    assert_eq!((b.src, b.dst), (s4, d4));
}

#[test]
fn table_rejects_out_of_range_and_mixed_families() {
    let (mut w, t) = FlowTable::new(4);
    let (s4, d4) = v4_pair(1);
    let (s6, d6) = v6_pair(1);
    assert!(!w.set(4, s4, d4, 0));
    assert!(!w.set(u32::MAX, s4, d4, 0));
    assert!(!w.set(0, s4, d6, 0));
    assert!(!w.set(0, s6, d4, 0));
    assert_eq!(t.get(0), None);
    assert_eq!(t.get(4), None);
    assert_eq!(w.active(), 0);
    // A rejected change leaves an active flow as it was.
    assert!(w.set(0, s4, d4, 5));
    assert!(!w.set(0, s6, d4, 6));
    assert_eq!(t.get(0).unwrap().since_ns, 5);
    // Every id below the capacity fits.
    for i in 0..4 {
        assert!(w.set(i, s6, d6, 0));
    }
    assert_eq!(t.active(), 4);
    let (_, empty) = FlowTable::new(0);
    assert_eq!(empty.active(), 0);
    assert_eq!(empty.get(0), None);
}

/// Everything `visit` reports, checking no flow comes twice (no writer is running).
fn visited(t: &FlowTable) -> HashMap<u32, FlowSpec> {
    let mut m = HashMap::new();
    t.visit(|f, spec| assert!(m.insert(f, spec).is_none(), "flow {f} visited twice"));
    m
}

proptest! {
    #[test]
    fn table_dense_list_matches_a_model(
        ops in prop::collection::vec((any::<bool>(), 0u32..20, any::<u16>()), 0..300),
    ) {
        const CAP: u32 = 16;
        let (mut w, t) = FlowTable::new(CAP);
        let mut model: HashMap<u32, FlowSpec> = HashMap::new();
        for (set, flow, k) in ops {
            if set {
                let (src, dst) = pair(u32::from(k));
                let ok = w.set(flow, src, dst, u64::from(k));
                prop_assert_eq!(ok, flow < CAP);
                if ok {
                    model.insert(flow, FlowSpec { src, dst, since_ns: u64::from(k) });
                }
            } else {
                w.clear(flow);
                model.remove(&flow);
            }
            prop_assert_eq!(w.active() as usize, model.len());
            prop_assert_eq!(t.active() as usize, model.len());
            prop_assert_eq!(&visited(&t), &model);
            for f in 0..20 {
                prop_assert_eq!(t.get(f), model.get(&f).copied());
            }
        }
    }
}

/// `k` written as a pair whose halves both encode it, in either family.
fn churn_pair(k: u64) -> (SocketAddr, SocketAddr) {
    let port = k as u16;
    if k.is_multiple_of(2) {
        let a = Ipv4Addr::from(k as u32);
        let b = Ipv4Addr::from(!(k as u32));
        (
            SocketAddr::V4(SocketAddrV4::new(a, port)),
            SocketAddr::V4(SocketAddrV4::new(b, !port)),
        )
    } else {
        let v = u128::from(k) << 64 | u128::from(k);
        (
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(v), port, 0, 0)),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(!v), !port, 0, 0)),
        )
    }
}

fn assert_untorn(flow: u32, spec: FlowSpec) {
    let k = spec.since_ns;
    assert_eq!(
        (spec.src, spec.dst),
        churn_pair(k),
        "flow {flow}: torn record for {k}"
    );
}

#[test]
fn table_readers_never_see_torn_records() {
    const FLOWS: u32 = 8;
    let (mut w, t) = FlowTable::new(FLOWS);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut good = 0u64;
            for _ in 0..20_000 {
                for f in 0..FLOWS {
                    if let Some(spec) = t.get(f) {
                        assert_untorn(f, spec);
                        good += 1;
                    }
                }
                t.visit(|f, spec| {
                    assert!(f < FLOWS);
                    assert_untorn(f, spec);
                });
            }
            done.store(true, Ordering::Relaxed);
            good
        });
        let mut k = 1u64;
        while !done.load(Ordering::Relaxed) && k < 50_000_000 {
            let flow = (k % u64::from(FLOWS)) as u32;
            if k.is_multiple_of(5) {
                w.clear(flow);
            } else {
                let (s, d) = churn_pair(k);
                assert!(w.set(flow, s, d, k));
            }
            k += 1;
        }
        reader.join().unwrap();
    });
    // Quiet again: every active flow reads back whole.
    t.visit(assert_untorn);
    assert_eq!(visited(&t).len(), w.active() as usize);
}

// ---------------------------------------------------------------------------------------
// Generator.

#[test]
fn gen_100_flows_at_10pps_for_10s() {
    let (_w, t) = table_with(128, 100);
    let mut cfg = FlowGenConfig::new(10);
    cfg.bucket = 32;
    let mut gen = FlowGen::new(t, cfg);
    let stats = gen.stats();
    let pkts = drive(&mut gen, SEC, 11 * SEC, MS);
    let n = pkts.len() as u64;
    assert!((10_000..=10_000 + 32).contains(&n), "{n} packets");
    assert_eq!(stats.packets.load(Ordering::Relaxed), n);
    let bytes: u64 = pkts.iter().map(|p| p.len as u64).sum();
    assert_eq!(stats.bytes.load(Ordering::Relaxed), bytes);
    let flows = by_flow(&pkts);
    assert_eq!(flows.len(), 100);
    let counts: Vec<u64> = flows.values().map(|s| s.len() as u64).collect();
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi - lo <= 1, "shares {lo}..{hi}");
    for (&f, seqs) in &flows {
        let want: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, &want, "flow {f}");
        assert_eq!(gen.sent(f), seqs.len() as u64);
    }
    // Packets carry their flow's addresses and the time of their burst.
    for p in &pkts {
        assert_eq!((p.src, p.dst), pair(p.hdr.flow));
        assert!((SEC..=11 * SEC).contains(&p.hdr.tx_ns));
    }
    assert_eq!(gen.sent(100), 0);
    assert_eq!(gen.sent(u32::MAX), 0);
}

#[test]
fn gen_imix_sizes_follow_the_cycle() {
    let (_w, t) = table_with(16, 16);
    let mut cfg = FlowGenConfig::new(0);
    cfg.size = PacketSize::Imix;
    let mut gen = FlowGen::new(t, cfg);
    // 16 flows x 120 packets: ten whole cycles each.
    let mut bufs = PacketBuf::alloc(32);
    let mut pkts = Vec::new();
    for i in 0..60 {
        let n = gen.generate(&mut bufs, i * MS);
        assert_eq!(n, 32);
        pkts.extend(bufs[..n].iter().map(seen));
    }
    let mut count: HashMap<usize, u64> = HashMap::new();
    for p in &pkts {
        let min = if p.src.is_ipv4() {
            20 + 8 + 24
        } else {
            40 + 8 + 24
        };
        let want = IMIX[((p.hdr.seq + u64::from(p.hdr.flow)) % 12) as usize].max(min);
        assert_eq!(p.len, want, "{:?}", p.hdr);
        *count.entry(p.len).or_default() += 1;
    }
    // 7:4:1 (IPv6's 64-byte packets grow to 72).
    let small = count[&64] + count[&72];
    assert_eq!((small, count[&576], count[&1500]), (7 * 160, 4 * 160, 160));
}

#[test]
fn gen_skips_cleared_flows_and_resumes_their_sequence() {
    let (mut w, t) = table_with(10, 10);
    let mut gen = FlowGen::new(t, FlowGenConfig::new(100));
    let first = drive(&mut gen, 0, SEC, MS);
    assert!(first.len() >= 1000);
    for f in 0..5 {
        w.clear(f);
    }
    let sent_before: Vec<u64> = (0..10).map(|f| gen.sent(f)).collect();
    let second = drive(&mut gen, SEC + MS, 2 * SEC, MS);
    assert!(second.iter().all(|p| p.hdr.flow >= 5));
    // Half the flows, half the rate (the bucket was drained by the first second).
    assert!((499..=501).contains(&second.len()), "{}", second.len());
    for f in 0..5 {
        assert_eq!(gen.sent(f), sent_before[f as usize]);
    }
    // Back again: sequence numbers go on where they stopped.
    let (s, d) = pair(2);
    assert!(w.set(2, s, d, 2 * SEC));
    let third = drive(&mut gen, 2 * SEC + MS, 3 * SEC, MS);
    let seqs = &by_flow(&third)[&2];
    assert_eq!(seqs[0], sent_before[2]);
}

#[test]
fn gen_follows_a_changed_address() {
    let (mut w, t) = table_with(4, 4);
    let mut gen = FlowGen::new(t, FlowGenConfig::new(0));
    let mut bufs = PacketBuf::alloc(8);
    assert_eq!(gen.generate(&mut bufs, 0), 8);
    // Flow 0 moves from IPv4 to IPv6, flow 1 to another IPv6 address.
    let (s0, d0) = v6_pair(100);
    let s1: SocketAddr = "[2001:db8:99::1]:4500".parse().unwrap();
    let d1 = v6_pair(1).1;
    assert!(w.set(0, s0, d0, 1));
    assert!(w.set(1, s1, d1, 1));
    assert_eq!(gen.generate(&mut bufs, 1), 8);
    let pkts: Vec<Seen> = bufs.iter().map(seen).collect();
    for (flow, src, dst) in [(0, s0, d0), (1, s1, d1)] {
        let f: Vec<&Seen> = pkts.iter().filter(|p| p.hdr.flow == flow).collect();
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|p| p.src == src && p.dst == dst));
        // The sequence goes on across the move.
        assert_eq!((f[0].hdr.seq, f[1].hdr.seq), (2, 3));
    }
}

#[test]
fn gen_rate_zero_fills_every_burst_round_robin() {
    let (_w, t) = table_with(8, 3);
    let mut gen = FlowGen::new(t, FlowGenConfig::new(0));
    let mut bufs = PacketBuf::alloc(32);
    let mut pkts = Vec::new();
    for _ in 0..3 {
        // The same instant: no clock needed without a rate.
        assert_eq!(gen.generate(&mut bufs, 5), 32);
        pkts.extend(bufs.iter().map(seen));
    }
    let flows = by_flow(&pkts);
    for (f, seqs) in &flows {
        assert_eq!(seqs, &(0..32).collect::<Vec<u64>>(), "flow {f}");
    }
    assert_eq!(gen.generate(&mut [], 6), 0);
}

#[test]
fn gen_sends_nothing_without_flows() {
    let (mut w, t) = FlowTable::new(4);
    let mut gen = FlowGen::new(Arc::clone(&t), FlowGenConfig::new(0));
    let mut bufs = PacketBuf::alloc(4);
    assert_eq!(gen.generate(&mut bufs, 0), 0);
    let (s, d) = pair(0);
    w.set(0, s, d, 0);
    w.clear(0);
    assert_eq!(gen.generate(&mut bufs, 0), 0);
    let mut paced = FlowGen::new(t, FlowGenConfig::new(1_000));
    assert_eq!(paced.generate(&mut bufs, 0), 0);
    assert_eq!(paced.generate(&mut bufs, 10 * SEC), 0);
    assert_eq!(paced.stats().packets.load(Ordering::Relaxed), 0);
}

// ---------------------------------------------------------------------------------------
// Sink.

#[test]
fn sink_in_order() {
    let mut s = sink(4);
    feed(&mut s, &[(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)], SEC);
    let f0 = s.flow(0).unwrap();
    assert_eq!((f0.received, f0.lost, f0.next_seq), (3, 0, 3));
    assert_eq!((f0.first_rx_ns, f0.last_rx_ns), (SEC, SEC + 4 * MS));
    assert_eq!(f0.max_gap_ns, 2 * MS);
    assert_eq!(s.flow(1).unwrap().received, 2);
    assert_eq!(s.flow(2).unwrap(), FlowReport::default());
    assert_eq!(s.flow(4), None);
    let ids: Vec<u32> = s.flows().map(|(f, _)| f).collect();
    assert_eq!(ids, [0, 1]);
    let t = s.totals();
    assert_eq!((t.received, t.flows_seen, t.bad, t.lost), (5, 2, 0, 0));
    assert_eq!(t.bytes, 5 * pkt(0, 0, 0).len() as u64);
    let st = s.stats();
    assert_eq!(st.received.load(Ordering::Relaxed), 5);
    assert_eq!(st.bytes.load(Ordering::Relaxed), t.bytes);
}

#[test]
fn sink_counts_skipped_numbers_as_lost_and_tails_via_sent() {
    let mut s = sink(2);
    feed(&mut s, &[(0, 2), (0, 3), (0, 7), (0, 8)], 0);
    let f = s.flow(0).unwrap();
    // 0, 1 (before the first) and 4..=6.
    assert_eq!((f.received, f.lost), (4, 5));
    // The generator sent 12: 9..=11 never came.
    assert_eq!(f.missing(12), 8);
    assert_eq!(s.totals().lost, 5);
    assert_eq!(s.stats().lost.load(Ordering::Relaxed), 5);
}

#[test]
fn sink_late_arrival_fills_its_gap() {
    let mut s = sink(2);
    feed(&mut s, &[(1, 0), (1, 2), (1, 3), (1, 1), (1, 4)], 0);
    let f = s.flow(1).unwrap();
    assert_eq!(
        (f.received, f.lost, f.reordered, f.duplicates),
        (5, 0, 1, 0)
    );
    assert_eq!(s.totals().reordered, 1);
    assert_eq!(s.stats().reordered.load(Ordering::Relaxed), 1);
}

#[test]
fn sink_duplicates_count_once() {
    let mut s = sink(2);
    feed(&mut s, &[(0, 0), (0, 1), (0, 1), (0, 0), (0, 2), (0, 2)], 0);
    let f = s.flow(0).unwrap();
    assert_eq!((f.received, f.duplicates, f.lost), (3, 3, 0));
    let t = s.totals();
    assert_eq!((t.received, t.duplicates), (3, 3));
    assert_eq!(s.stats().duplicates.load(Ordering::Relaxed), 3);
}

#[test]
fn sink_too_old_is_neither_late_nor_received() {
    let mut cfg = FlowSinkConfig::new(1, SEC);
    cfg.window = 64;
    let mut s = FlowSink::new(cfg);
    let mut seq: Vec<(u32, u64)> = (1..=100).map(|i| (0, i)).collect();
    // 0 is now 100 behind: outside a window of 64.
    seq.push((0, 0));
    // 50 arrived already, 40 is inside the window: duplicates both.
    seq.push((0, 50));
    seq.push((0, 40));
    feed(&mut s, &seq, 0);
    let f = s.flow(0).unwrap();
    assert_eq!(
        (f.received, f.lost, f.too_old, f.duplicates),
        (100, 1, 1, 2)
    );
    assert_eq!(s.totals().too_old, 1);
    assert_eq!(s.stats().too_old.load(Ordering::Relaxed), 1);
}

#[test]
fn sink_counts_each_kind_of_bad_packet() {
    let mut s = sink(4);
    let (src, dst) = v6_pair(7);
    let garbage = {
        let mut b = PacketBuf::new();
        assert!(b.fill(&[0x45, 1, 2, 3, 4, 5]));
        b
    };
    let empty = PacketBuf::new();
    let short = raw_pkt(src, dst, TEST_HEADER_LEN - 1, |p| p.fill(0));
    let magic = raw_pkt(src, dst, 40, |p| {
        TestHeader {
            flow: 0,
            seq: 0,
            tx_ns: 0,
        }
        .emit(p);
        p[0] ^= 1;
    });
    let unknown = pkt(4, 0, 0);
    let mut corrupt = pkt(0, 0, 0);
    let last = corrupt.len() - 1;
    corrupt.data_mut()[last] ^= 0x10;
    s.consume(&[garbage, empty, short, magic, unknown, corrupt], SEC);
    let t = s.totals();
    assert_eq!(
        (
            t.bad_malformed,
            t.bad_magic,
            t.bad_flow,
            t.bad_checksum,
            t.bad
        ),
        (3, 1, 1, 1, 6)
    );
    assert_eq!((t.received, t.flows_seen), (0, 0));
    assert_eq!(s.stats().bad.load(Ordering::Relaxed), 6);
    assert_eq!(s.flows().count(), 0);
}

#[test]
fn sink_without_checksum_checks_takes_corrupt_payloads() {
    let mut cfg = FlowSinkConfig::new(1, SEC);
    cfg.verify_checksum = false;
    let mut s = FlowSink::new(cfg);
    let mut corrupt = pkt(0, 0, 0);
    let last = corrupt.len() - 1;
    corrupt.data_mut()[last] ^= 0x10;
    // IPv4 without a checksum is fine either way (RFC 768).
    let mut zero = pkt(0, 1, 0);
    zero.data_mut()[20 + 6..20 + 8].fill(0);
    s.consume(&[corrupt, zero], 0);
    assert_eq!((s.totals().received, s.totals().bad), (2, 0));
    let mut checked = sink(1);
    let mut zero = pkt(0, 0, 0);
    zero.data_mut()[20 + 6..20 + 8].fill(0);
    checked.consume(&[zero], 0);
    assert_eq!(checked.totals().received, 1);
}

#[test]
fn sink_gaps_per_flow_over_the_threshold() {
    // 10 pps per flow, threshold 300 ms: a 1.2 s handover on flow 1 only.
    let mut s = sink(2);
    let mut t = SEC;
    for i in 0..20u64 {
        let mut burst = vec![pkt(0, i, t)];
        if !(5..17).contains(&i) {
            burst.push(pkt(1, i, t));
        }
        s.consume(&burst, t);
        t += 100 * MS;
    }
    let f0 = s.flow(0).unwrap();
    let f1 = s.flow(1).unwrap();
    assert_eq!(f0.max_gap_ns, 100 * MS);
    assert_eq!(f1.max_gap_ns, 1_300 * MS);
    assert_eq!((f1.received, f1.lost), (8, 12));
    let g = s.gaps();
    assert_eq!(g.len(), 1);
    assert!(g.equivalent(g.max(), 1_300 * MS));
    assert_eq!(s.totals().gaps_over_threshold, 1);
    assert_eq!(s.stats().gaps_over_threshold.load(Ordering::Relaxed), 1);
    // Every inter-arrival is a gap with a threshold of 0... except those within a burst.
    let mut all = FlowSink::new(FlowSinkConfig::new(1, 0));
    all.consume(&[pkt(0, 0, 0), pkt(0, 1, 0)], 0);
    all.consume(&[pkt(0, 2, 0)], MS);
    assert_eq!(all.totals().gaps_over_threshold, 1);
}

#[test]
fn sink_latency_from_the_send_time() {
    let mut s = sink(1);
    for i in 0..100u64 {
        // Sent at i ms, arriving 2 ms + i us later.
        let tx = SEC + i * MS;
        s.consume(&[pkt(0, i, tx)], tx + 2 * MS + i * 1_000);
    }
    let h = s.latency();
    assert_eq!(h.len(), 100);
    assert!(h.equivalent(h.min(), 2 * MS));
    assert!(h.equivalent(h.max(), 2 * MS + 99_000));
    // A send time in the future (clock skew) records 0 rather than failing.
    s.consume(&[pkt(0, 100, 10 * SEC)], SEC);
    assert_eq!(s.latency().len(), 101);
    assert_eq!(s.latency().min(), 0);
}

// ---------------------------------------------------------------------------------------
// Together.

#[test]
fn gen_to_sink_loses_nothing() {
    const FLOWS: u32 = 200;
    let (mut w, t) = table_with(256, FLOWS);
    let mut cfg = FlowGenConfig::new(20);
    cfg.size = PacketSize::Imix;
    cfg.bucket = 256;
    let mut gen = FlowGen::new(t, cfg);
    let mut s = FlowSink::new(FlowSinkConfig::new(256, 200 * MS));
    let mut bufs = PacketBuf::alloc(64);
    let mut now = SEC;
    for step in 0..5_000u64 {
        // Every second, move a quarter of the clients to other addresses.
        if step % 1_000 == 500 {
            for f in (0..FLOWS).step_by(4) {
                // Odd: the move changes the family too.
                let (src, dst) = pair(f + 1_001 + step as u32);
                assert!(w.set(f, src, dst, now));
            }
        }
        let n = gen.generate(&mut bufs, now);
        s.consume(&bufs[..n], now + 300_000);
        now += MS;
    }
    let sent = gen.stats().packets.load(Ordering::Relaxed);
    assert!(sent >= 5 * 20 * u64::from(FLOWS), "{sent}");
    let tot = s.totals();
    assert_eq!((tot.received, tot.lost, tot.bad), (sent, 0, 0));
    assert_eq!((tot.duplicates, tot.reordered, tot.too_old), (0, 0, 0));
    assert_eq!(tot.bytes, gen.stats().bytes.load(Ordering::Relaxed));
    assert_eq!(tot.flows_seen, FLOWS);
    for (f, r) in s.flows() {
        assert_eq!(r.missing(gen.sent(f)), 0, "flow {f}");
        assert_eq!(r.next_seq, gen.sent(f));
        // 20 pps: a packet every 50 ms (give or take one 1-ms poll).
        assert!(r.max_gap_ns <= 51 * MS, "flow {f}: {}", r.max_gap_ns);
    }
    assert_eq!(tot.gaps_over_threshold, 0);
    assert!(s.latency().equivalent(s.latency().max(), 300_000));
}

#[test]
fn port_generates_until_the_gate_closes_and_keeps_counting() {
    let (_w, t) = table_with(8, 4);
    let mut port = TrafficPort::new(t, FlowGenConfig::new(0), FlowSinkConfig::new(8, SEC));
    assert_eq!(port.layer(), Layer::Ip);
    assert_eq!(port.name(), "flows");
    assert!(!port.wait_fds(&mut Vec::new()));
    let gate = port.gate();
    let (gstats, sstats) = (port.gen_stats(), port.sink_stats());
    let mut bufs = PacketBuf::alloc(16);
    assert_eq!(port.rx_burst(&mut bufs).unwrap(), 16);
    gate.store(false, Ordering::Relaxed);
    let mut idle = PacketBuf::alloc(16);
    assert_eq!(port.rx_burst(&mut idle).unwrap(), 0);
    // What was generated before the gate closed still drains into the sink.
    assert_eq!(port.tx_burst(&mut bufs).unwrap(), 16);
    assert_eq!(port.tx_burst(&mut []).unwrap(), 0);
    assert_eq!(gstats.packets.load(Ordering::Relaxed), 16);
    assert_eq!(sstats.received.load(Ordering::Relaxed), 16);
    assert_eq!(port.gen().sent(0), 4);
    assert_eq!(port.sink().totals().flows_seen, 4);
    gate.store(true, Ordering::Relaxed);
    assert_eq!(port.rx_burst(&mut bufs).unwrap(), 16);
    let (gen, sink) = port.into_parts();
    assert_eq!(gen.sent(3), 8);
    assert_eq!(sink.flow(3).unwrap().received, 4);
}
