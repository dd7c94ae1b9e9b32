//! Per-tunnel test traffic for many emulated clients, as one `Layer::Ip` port.
//!
//! A [`FlowTable`] says which flows exist and between which addresses: one control thread
//! writes it through the [`FlowWriter`] while a worker reads it every burst. [`FlowGen`]
//! sends a fixed rate per active flow, round robin over the active flows; [`FlowSink`]
//! accounts what comes back per flow (loss, duplicates, reordering, inter-arrival gaps such
//! as a handover's) from the [`TestHeader`] every packet carries. [`TrafficPort`] puts both
//! behind one `BurstIo`: its `rx_burst` is what the clients send, its `tx_burst` is what
//! the worker delivers to them.
//!
//! Per burst: one clock read, no allocation, no lock, and nothing proportional to the
//! table's capacity, only to the active flows visited and the packets handled. Everything
//! is allocated in the constructors.

use crate::buf::{PacketBuf, MAX_FRAME};
use crate::io::traffic::{
    udp_checksum_ok, GenStats, PacketSize, SeqEvent, TestHeader, TokenBucket, IMIX,
    LATENCY_HIGH_NS, LATENCY_LOW_NS, LATENCY_SIGFIG, TEST_HEADER_LEN,
};
use crate::io::{BurstIo, Layer};
use crate::ip::{parse_outer, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};
use hdrhistogram::Histogram;
use shared::clock::now_ns;
use shared::path::Encap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

mod table;
#[cfg(test)]
mod tests;

use table::SlotRead;
pub use table::{FlowSpec, FlowTable, FlowWriter};

// ---------------------------------------------------------------------------------------
// Generator.

/// Generator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowGenConfig {
    /// Packets per second of each active flow; 0 = as fast as the caller polls.
    pub rate_pps_per_flow: u64,
    pub size: PacketSize,
    /// Depth of the aggregate token bucket in packets: how many may leave back to back
    /// after a pause.
    pub bucket: u64,
}

impl FlowGenConfig {
    /// 128-byte packets at `rate_pps_per_flow`, bucket of 64.
    pub fn new(rate_pps_per_flow: u64) -> FlowGenConfig {
        FlowGenConfig {
            rate_pps_per_flow,
            size: PacketSize::Fixed(128),
            bucket: 64,
        }
    }
}

/// Generates the packets of every active flow of a [`FlowTable`]: the aggregate rate is
/// the per-flow rate times the active flows, shared round robin, so each flow gets its
/// rate while the set of flows is stable.
pub struct FlowGen {
    table: Arc<FlowTable>,
    cfg: FlowGenConfig,
    stats: Arc<GenStats>,
    /// Next sequence number of each flow = its packets generated so far.
    seq: Box<[u64]>,
    /// Next index into the table's dense list.
    cursor: u32,
    /// Token bucket in packet-nanoseconds, as in `TrafficGen`.
    bucket: TokenBucket,
}

impl FlowGen {
    pub fn new(table: Arc<FlowTable>, cfg: FlowGenConfig) -> FlowGen {
        FlowGen {
            seq: vec![0u64; table.capacity() as usize].into_boxed_slice(),
            table,
            cfg,
            stats: Arc::new(GenStats::default()),
            cursor: 0,
            bucket: TokenBucket::default(),
        }
    }

    /// The shared progress counters (`discarded` stays 0: the port's `tx_burst` belongs
    /// to the sink).
    pub fn stats(&self) -> Arc<GenStats> {
        Arc::clone(&self.stats)
    }

    /// Packets generated for `flow` so far (the sink's `FlowReport::missing` takes it).
    pub fn sent(&self, flow: u32) -> u64 {
        self.seq.get(flow as usize).copied().unwrap_or(0)
    }

    /// The table the generator reads.
    pub fn table(&self) -> &Arc<FlowTable> {
        &self.table
    }

    /// How many packets the rate allows now, at most `want`.
    #[inline]
    fn allowance(&mut self, want: usize, active: u32, now_ns: u64) -> usize {
        if self.cfg.rate_pps_per_flow == 0 {
            return want;
        }
        let rate = u128::from(self.cfg.rate_pps_per_flow) * u128::from(active);
        self.bucket.take(want as u64, rate, self.cfg.bucket, now_ns) as usize
    }

    /// Writes up to `bufs.len()` packets into the front of `bufs` as of time `now_ns` and
    /// returns how many. `TrafficPort::rx_burst` calls this with the clock.
    pub fn generate(&mut self, bufs: &mut [PacketBuf], now_ns: u64) -> usize {
        // One look at the list per burst: flows added meanwhile wait for the next one.
        let active = self.table.active();
        let n = self.allowance(bufs.len(), active, now_ns);
        let mut made = 0usize;
        let mut bytes = 0u64;
        // Every active flow may be skipped once (being changed, or cleared under us).
        let mut misses = 0u32;
        while made < n && misses < active {
            if self.cursor >= active {
                self.cursor = 0;
            }
            let flow = self.table.active_at(self.cursor).unwrap_or(u32::MAX);
            self.cursor += 1;
            let (SlotRead::Active(spec), Some(seq)) =
                (self.table.read(flow), self.seq.get_mut(flow as usize))
            else {
                misses += 1;
                continue;
            };
            if spec.since_ns > now_ns {
                // Not started yet.
                misses += 1;
                continue;
            }
            let Some(buf) = bufs.get_mut(made) else {
                break;
            };
            let ip = if spec.src.is_ipv4() {
                IPV4_HEADER_LEN
            } else {
                IPV6_HEADER_LEN
            };
            let min_len = ip + UDP_HEADER_LEN + TEST_HEADER_LEN;
            let want = match self.cfg.size {
                PacketSize::Fixed(n) => n,
                // Offset by the flow so that flows in step do not all send 1500 at once.
                PacketSize::Imix => {
                    IMIX[(seq.wrapping_add(u64::from(flow)) % IMIX.len() as u64) as usize]
                }
            };
            let payload_len = want.clamp(min_len, MAX_FRAME) - (ip + UDP_HEADER_LEN);
            let header = TestHeader {
                flow,
                seq: *seq,
                tx_ns: now_ns,
            };
            let built = header.build_packet(buf, spec.src, spec.dst, payload_len);
            if built.is_err() {
                // Unreachable: lengths are clamped and families checked by `set`.
                misses += 1;
                continue;
            }
            bytes += buf.len() as u64;
            *seq += 1;
            made += 1;
        }
        if made < n && self.cfg.rate_pps_per_flow != 0 {
            // Return unused tokens.
            self.bucket.give_back((n - made) as u64);
        }
        self.stats.add(made, bytes);
        made
    }
}

// ---------------------------------------------------------------------------------------
// Sink.

/// Sink settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSinkConfig {
    /// Flows tracked: ids `0..capacity`; packets of other flows count as bad.
    pub capacity: u32,
    /// Reorder window per flow in packets (rounded up to a multiple of 64): a packet up to
    /// this far behind its flow's newest is told apart as late (reordered) or duplicate.
    pub window: u32,
    /// Inter-arrival times of a flow longer than this go into the gap histogram.
    pub gap_threshold_ns: u64,
    /// Verify UDP checksums (a corrupted packet counts as bad).
    pub verify_checksum: bool,
}

impl FlowSinkConfig {
    /// Window of 128, checksums verified.
    pub fn new(capacity: u32, gap_threshold_ns: u64) -> FlowSinkConfig {
        FlowSinkConfig {
            capacity,
            window: 128,
            gap_threshold_ns,
            verify_checksum: true,
        }
    }
}

/// Sink totals, shared for progress display; stored once per burst.
#[derive(Debug, Default)]
pub struct FlowSinkStats {
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    pub lost: AtomicU64,
    pub duplicates: AtomicU64,
    pub reordered: AtomicU64,
    pub too_old: AtomicU64,
    pub bad: AtomicU64,
    pub gaps_over_threshold: AtomicU64,
}

/// Sink totals over all flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTotals {
    pub received: u64,
    /// IP bytes of received packets.
    pub bytes: u64,
    /// Sum of the flows' `lost`.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub too_old: u64,
    /// Sum of the four kinds below.
    pub bad: u64,
    /// Not IPv4/IPv6 + UDP, or a payload shorter than the test header.
    pub bad_malformed: u64,
    /// Test header without the magic.
    pub bad_magic: u64,
    /// Flow id not below the capacity.
    pub bad_flow: u64,
    pub bad_checksum: u64,
    /// Inter-arrival times recorded in the gap histogram.
    pub gaps_over_threshold: u64,
    /// Flows that received at least one packet.
    pub flows_seen: u32,
}

/// One flow's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowReport {
    /// Packets counted once each (in order or late), duplicates and too-old ones not.
    pub received: u64,
    /// Sequence numbers below the newest one seen that never arrived. Losses after the
    /// newest packet are invisible here: see [`FlowReport::missing`].
    pub lost: u64,
    pub duplicates: u64,
    /// Late arrivals that filled a gap.
    pub reordered: u64,
    /// Arrivals older than the reorder window (neither lost nor received is adjusted).
    pub too_old: u64,
    /// Arrival of the first and the last received packet.
    pub first_rx_ns: u64,
    pub last_rx_ns: u64,
    /// Longest time between two received packets.
    pub max_gap_ns: u64,
    /// Highest sequence number seen + 1.
    pub next_seq: u64,
}

impl FlowReport {
    /// Packets of `sent` (the generator's count for this flow, `FlowGen::sent`) that never
    /// arrived, tail losses included.
    pub fn missing(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.received)
    }
}

/// Per-flow state: one cache line; the window bits live in `FlowSink::seen`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
struct FlowRec {
    received: u64,
    lost: u64,
    next: u64,
    first_rx_ns: u64,
    last_rx_ns: u64,
    max_gap_ns: u64,
    duplicates: u32,
    reordered: u32,
    too_old: u32,
}

/// Why a packet counts as bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    Malformed,
    Magic,
    Flow,
    Checksum,
}

/// Gap histogram bounds: 1 us to an hour.
const GAP_HIGH_NS: u64 = 3_600_000_000_000;

/// Accounts packets per flow; see the module documentation.
pub struct FlowSink {
    cfg: FlowSinkConfig,
    recs: Box<[FlowRec]>,
    /// `words` window words per flow, flow after flow: bit `seq % (64 * words)` is set
    /// once `seq` arrived.
    seen: Box<[u64]>,
    words: usize,
    latency: Histogram<u64>,
    gaps: Histogram<u64>,
    totals: FlowTotals,
    stats: Arc<FlowSinkStats>,
}

/// The sequence-window step of `TrafficSink` over one flow's slice of window words.
#[inline]
fn observe(next: &mut u64, seen: &mut [u64], started: bool, seq: u64) -> SeqEvent {
    let w = seen.len() as u64 * 64;
    let bit = |s: u64| {
        let pos = s % w;
        ((pos / 64) as usize, 1u64 << (pos % 64))
    };
    if !started || seq >= *next {
        let from = if started { *next } else { 0 };
        let gap = seq - from;
        if gap >= w {
            seen.fill(0);
        } else {
            // Numbers from..seq become "missing"; they reuse the bits of numbers that
            // just left the window.
            for s in from..seq {
                let (i, m) = bit(s);
                seen[i] &= !m;
            }
        }
        let (i, m) = bit(seq);
        seen[i] |= m;
        *next = seq.saturating_add(1);
        return SeqEvent::InOrder { gap };
    }
    if *next - seq > w {
        return SeqEvent::TooOld;
    }
    let (i, m) = bit(seq);
    if seen[i] & m != 0 {
        SeqEvent::Duplicate
    } else {
        seen[i] |= m;
        SeqEvent::Late
    }
}

impl FlowSink {
    pub fn new(cfg: FlowSinkConfig) -> FlowSink {
        let words = (cfg.window.max(64) as usize).div_ceil(64);
        let n = cfg.capacity as usize;
        let hist = |high| {
            Histogram::new_with_bounds(LATENCY_LOW_NS, high, LATENCY_SIGFIG)
                .expect("constant histogram bounds are valid")
        };
        FlowSink {
            recs: vec![FlowRec::default(); n].into_boxed_slice(),
            seen: vec![0u64; n * words].into_boxed_slice(),
            words,
            latency: hist(LATENCY_HIGH_NS),
            gaps: hist(GAP_HIGH_NS),
            totals: FlowTotals::default(),
            stats: Arc::new(FlowSinkStats::default()),
            cfg,
        }
    }

    /// The shared live totals.
    pub fn stats(&self) -> Arc<FlowSinkStats> {
        Arc::clone(&self.stats)
    }

    /// One-way latency of received packets (nanoseconds, from the header's `tx_ns`).
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Every per-flow inter-arrival time longer than `gap_threshold_ns` (nanoseconds).
    pub fn gaps(&self) -> &Histogram<u64> {
        &self.gaps
    }

    /// Totals over all flows.
    pub fn totals(&self) -> FlowTotals {
        self.totals
    }

    /// One flow's numbers; None if `flow` is not below the capacity.
    pub fn flow(&self, flow: u32) -> Option<FlowReport> {
        self.recs.get(flow as usize).map(report)
    }

    /// The flows that received anything, by id. Scans the whole capacity: for reports,
    /// not for the packet path.
    pub fn flows(&self) -> impl Iterator<Item = (u32, FlowReport)> + '_ {
        self.recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.received > 0)
            .map(|(i, r)| (i as u32, report(r)))
    }

    /// The test header of a valid packet, or why it is bad.
    #[inline]
    fn parse(&self, pkt: &[u8]) -> Result<TestHeader, Bad> {
        let outer = parse_outer(pkt, Layer::Ip).map_err(|_| Bad::Malformed)?;
        if outer.encap != Encap::Udp {
            return Err(Bad::Malformed);
        }
        let payload = pkt.get(outer.payload.clone()).ok_or(Bad::Malformed)?;
        if payload.len() < TEST_HEADER_LEN {
            return Err(Bad::Malformed);
        }
        let hdr = TestHeader::parse(payload).ok_or(Bad::Magic)?;
        if hdr.flow >= self.cfg.capacity {
            return Err(Bad::Flow);
        }
        if self.cfg.verify_checksum && !udp_checksum_ok(pkt, &outer).ok_or(Bad::Malformed)? {
            return Err(Bad::Checksum);
        }
        Ok(hdr)
    }

    /// Accounts the packets in `bufs`, all arrived by `now_ns`. `TrafficPort::tx_burst`
    /// calls this with the clock.
    pub fn consume(&mut self, bufs: &[PacketBuf], now_ns: u64) {
        if bufs.is_empty() {
            return;
        }
        let words = self.words;
        for buf in bufs {
            let pkt = buf.data();
            let hdr = match self.parse(pkt) {
                Ok(hdr) => hdr,
                Err(why) => {
                    let t = &mut self.totals;
                    t.bad += 1;
                    match why {
                        Bad::Malformed => t.bad_malformed += 1,
                        Bad::Magic => t.bad_magic += 1,
                        Bad::Flow => t.bad_flow += 1,
                        Bad::Checksum => t.bad_checksum += 1,
                    }
                    continue;
                }
            };
            // `parse` checked the id against the capacity, the size of both tables.
            let f = hdr.flow as usize;
            let (Some(rec), Some(seen)) = (
                self.recs.get_mut(f),
                self.seen.get_mut(f * words..(f + 1) * words),
            ) else {
                continue;
            };
            let t = &mut self.totals;
            let started = rec.received > 0;
            match observe(&mut rec.next, seen, started, hdr.seq) {
                SeqEvent::InOrder { gap } => {
                    rec.lost = rec.lost.saturating_add(gap);
                    t.lost = t.lost.saturating_add(gap);
                }
                SeqEvent::Late => {
                    rec.reordered = rec.reordered.saturating_add(1);
                    rec.lost = rec.lost.saturating_sub(1);
                    t.reordered += 1;
                    t.lost = t.lost.saturating_sub(1);
                }
                SeqEvent::Duplicate => {
                    rec.duplicates = rec.duplicates.saturating_add(1);
                    t.duplicates += 1;
                    continue;
                }
                SeqEvent::TooOld => {
                    rec.too_old = rec.too_old.saturating_add(1);
                    t.too_old += 1;
                    continue;
                }
            }
            if started {
                let gap = now_ns.saturating_sub(rec.last_rx_ns);
                rec.max_gap_ns = rec.max_gap_ns.max(gap);
                if gap > self.cfg.gap_threshold_ns {
                    self.gaps.saturating_record(gap);
                    t.gaps_over_threshold += 1;
                }
            } else {
                rec.first_rx_ns = now_ns;
                t.flows_seen += 1;
            }
            rec.last_rx_ns = now_ns;
            rec.received += 1;
            t.received += 1;
            t.bytes += pkt.len() as u64;
            self.latency
                .saturating_record(now_ns.saturating_sub(hdr.tx_ns));
        }
        self.publish();
    }

    fn publish(&self) {
        let (s, t) = (&self.stats, &self.totals);
        s.received.store(t.received, Ordering::Relaxed);
        s.bytes.store(t.bytes, Ordering::Relaxed);
        s.lost.store(t.lost, Ordering::Relaxed);
        s.duplicates.store(t.duplicates, Ordering::Relaxed);
        s.reordered.store(t.reordered, Ordering::Relaxed);
        s.too_old.store(t.too_old, Ordering::Relaxed);
        s.bad.store(t.bad, Ordering::Relaxed);
        s.gaps_over_threshold
            .store(t.gaps_over_threshold, Ordering::Relaxed);
    }
}

fn report(r: &FlowRec) -> FlowReport {
    FlowReport {
        received: r.received,
        lost: r.lost,
        duplicates: u64::from(r.duplicates),
        reordered: u64::from(r.reordered),
        too_old: u64::from(r.too_old),
        first_rx_ns: r.first_rx_ns,
        last_rx_ns: r.last_rx_ns,
        max_gap_ns: r.max_gap_ns,
        next_seq: r.next,
    }
}

// ---------------------------------------------------------------------------------------
// Port.

/// A [`FlowGen`] and a [`FlowSink`] as one `Layer::Ip` port: `rx_burst` generates the
/// clients' packets, `tx_burst` accounts what reaches them.
pub struct TrafficPort {
    gen: FlowGen,
    sink: FlowSink,
    /// Generation runs while true; the sink keeps counting either way, so a run can stop
    /// its clients and still drain.
    open: Arc<AtomicBool>,
    /// With a tick, an idle worker sleeps in poll(2) until the next one instead of
    /// napping and polling (see [`Self::with_tick`]).
    tick: Option<crate::io::sys::Ticker>,
}

impl TrafficPort {
    /// A port generating from `table` (open from the start).
    pub fn new(table: Arc<FlowTable>, gen: FlowGenConfig, sink: FlowSinkConfig) -> TrafficPort {
        TrafficPort {
            gen: FlowGen::new(table, gen),
            sink: FlowSink::new(sink),
            open: Arc::new(AtomicBool::new(true)),
            tick: None,
        }
    }

    /// Makes the port waitable: a timer descriptor fires every `period_ns`, so a worker
    /// with nothing to do sleeps until the next period instead of polling the
    /// generator every few microseconds (packets then leave up to one period late,
    /// with the time they really left in their header). Costs one read(2) per period
    /// while packets flow, none per packet.
    pub fn with_tick(mut self, period_ns: u64) -> io::Result<TrafficPort> {
        self.tick = Some(crate::io::sys::Ticker::new(period_ns)?);
        Ok(self)
    }

    /// The gate: store false to stop generating, true to resume.
    pub fn gate(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.open)
    }

    /// The generator's shared progress counters.
    pub fn gen_stats(&self) -> Arc<GenStats> {
        self.gen.stats()
    }

    /// The sink's shared live totals.
    pub fn sink_stats(&self) -> Arc<FlowSinkStats> {
        self.sink.stats()
    }

    pub fn gen(&self) -> &FlowGen {
        &self.gen
    }

    pub fn sink(&self) -> &FlowSink {
        &self.sink
    }

    /// The generator and the sink, e.g. after a worker thread handed the port back.
    pub fn into_parts(self) -> (FlowGen, FlowSink) {
        (self.gen, self.sink)
    }
}

impl BurstIo for TrafficPort {
    fn layer(&self) -> Layer {
        Layer::Ip
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let now = now_ns();
        if let Some(t) = self.tick.as_mut() {
            t.drain(now);
        }
        if !self.open.load(Ordering::Relaxed) {
            return Ok(0);
        }
        Ok(self.gen.generate(bufs, now))
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if !bufs.is_empty() {
            self.sink.consume(bufs, now_ns());
        }
        Ok(bufs.len())
    }

    fn name(&self) -> &str {
        "flows"
    }

    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        match &self.tick {
            Some(t) => {
                out.push(t.fd());
                true
            }
            None => false,
        }
    }
}
