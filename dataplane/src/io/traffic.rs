//! Traffic generator and sink as `Layer::Ip` ports, for the lab, the benchmarks and the
//! end-to-end tests.
//!
//! The generator "receives" UDP packets it builds itself (so a worker polls it like a clear
//! side interface); the sink "transmits" by consuming and accounting every packet. Each
//! packet's UDP payload starts with a [`TestHeader`] (flow, sequence number, send time), from
//! which the sink derives loss, duplicates, reordering and one-way latency.
//!
//! Both read the clock once per burst (`shared::clock::now_ns`, CLOCK_MONOTONIC, so the two
//! ends may live in different threads or processes on one machine); `generate` and
//! `consume` take the time as an argument so tests drive them with a virtual clock. Shared
//! statistics are atomics written once per burst; nothing here allocates after `new`.

use crate::buf::{PacketBuf, MAX_FRAME};
use crate::io::{BurstIo, Layer};
use crate::ip::UDP_HEADER_LEN;
use crate::ip::{build_udp_packet, parse_outer, udp_checksum, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use hdrhistogram::Histogram;
use shared::clock::now_ns;
use shared::path::Encap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// First word of every test payload: "mobk".
pub const MAGIC: u32 = 0x6d6f_626b;
/// Length of [`TestHeader`] on the wire.
pub const TEST_HEADER_LEN: usize = 24;

/// The start of every generated UDP payload (big endian); filler follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestHeader {
    pub flow: u32,
    pub seq: u64,
    /// `shared::clock::now_ns` at generation.
    pub tx_ns: u64,
}

impl TestHeader {
    /// Writes the header (with the magic) into the first `TEST_HEADER_LEN` bytes of `out`.
    /// Returns false if `out` is shorter.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let Some(h) = out.get_mut(..TEST_HEADER_LEN) else {
            return false;
        };
        h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&self.flow.to_be_bytes());
        h[8..16].copy_from_slice(&self.seq.to_be_bytes());
        h[16..24].copy_from_slice(&self.tx_ns.to_be_bytes());
        true
    }

    /// Makes `buf` (its metadata kept) a UDP packet `src -> dst` whose `payload_len`
    /// bytes start with this header, zeros after.
    pub(crate) fn build_packet(
        &self,
        buf: &mut PacketBuf,
        src: SocketAddr,
        dst: SocketAddr,
        payload_len: usize,
    ) -> Result<(), crate::esp::EncapError> {
        let meta = buf.meta;
        buf.reset();
        buf.meta = meta;
        build_udp_packet(buf, src, dst, payload_len, |p| {
            self.emit(p);
            if let Some(rest) = p.get_mut(TEST_HEADER_LEN..) {
                rest.fill(0);
            }
        })
    }

    /// Reads a header from the start of a UDP payload; None if too short or the magic is
    /// wrong.
    pub fn parse(payload: &[u8]) -> Option<TestHeader> {
        let h: &[u8; TEST_HEADER_LEN] = payload.get(..TEST_HEADER_LEN)?.try_into().ok()?;
        let word = |r: std::ops::Range<usize>| -> u64 {
            h[r].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        if word(0..4) != u64::from(MAGIC) {
            return None;
        }
        Some(TestHeader {
            flow: word(4..8) as u32,
            seq: word(8..16),
            tx_ns: word(16..24),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Generator.

/// How long generated packets are (IP packet lengths, headers included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketSize {
    /// Every packet this long, clamped to what the headers need and to `MAX_FRAME`.
    Fixed(usize),
    /// Simple IMIX: 64, 576 and 1500 bytes in the ratio 7:4:1, in a fixed interleaved
    /// order (64-byte IPv6 packets are raised to the minimum the headers need).
    Imix,
}

/// The IMIX cycle: seven 64s, four 576s, one 1500, spread out.
pub(crate) const IMIX: [usize; 12] = [64, 576, 64, 64, 576, 64, 1500, 64, 576, 64, 576, 64];

/// Generator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Source address and port of the packets.
    pub src: SocketAddr,
    /// Destination address and port; same family as `src`.
    pub dst: SocketAddr,
    pub size: PacketSize,
    /// Packets per second; 0 = as fast as the caller polls.
    pub rate_pps: u64,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Flow id written into every packet.
    pub flow: u32,
    /// Token-bucket depth in packets: how many may leave back to back after a pause.
    pub bucket: u64,
}

impl GenConfig {
    /// 128-byte packets as fast as possible, without end, flow 0, bucket of 64.
    pub fn new(src: SocketAddr, dst: SocketAddr) -> GenConfig {
        GenConfig {
            src,
            dst,
            size: PacketSize::Fixed(128),
            rate_pps: 0,
            count: None,
            flow: 0,
            bucket: 64,
        }
    }
}

/// Generator progress, shared with whoever displays it. Updated once per burst.
#[derive(Debug, Default)]
pub struct GenStats {
    /// Packets generated.
    pub packets: AtomicU64,
    /// IP bytes generated.
    pub bytes: AtomicU64,
    /// Packets handed to the generator's `tx_burst` and discarded.
    pub discarded: AtomicU64,
}

impl GenStats {
    /// One burst's packets and bytes (nothing to store for an empty one).
    #[inline]
    pub(crate) fn add(&self, packets: usize, bytes: u64) {
        if packets > 0 {
            self.packets.fetch_add(packets as u64, Ordering::Relaxed);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

const NS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket in packet-nanoseconds (one packet costs `NS_PER_SEC`), so refills are
/// exact integers: `elapsed_ns * rate_pps`. Starts full.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket {
    tokens: u128,
    last_ns: Option<u64>,
}

impl TokenBucket {
    /// Packets that `rate_pps` with room for `depth` back to back allows at `now_ns`, at
    /// most `want`; taken from the bucket.
    #[inline]
    pub(crate) fn take(&mut self, want: u64, rate_pps: u128, depth: u64, now_ns: u64) -> u64 {
        let depth = u128::from(depth.max(1)) * NS_PER_SEC;
        match self.last_ns {
            None => self.tokens = depth,
            Some(last) => {
                let elapsed = u128::from(now_ns.saturating_sub(last));
                self.tokens = (self.tokens + elapsed * rate_pps).min(depth);
            }
        }
        self.last_ns = Some(now_ns.max(self.last_ns.unwrap_or(0)));
        let n = u128::from(want).min(self.tokens / NS_PER_SEC);
        self.tokens -= n * NS_PER_SEC;
        n as u64
    }

    /// Returns `n` packets taken and not made.
    #[inline]
    pub(crate) fn give_back(&mut self, n: u64) {
        self.tokens += u128::from(n) * NS_PER_SEC;
    }
}

/// Whether the UDP checksum of the datagram whose payload is `outer.payload` in `pkt`
/// is right (RFC 768: 0 = none, IPv4 only); None if the header is not there.
pub(crate) fn udp_checksum_ok(pkt: &[u8], outer: &crate::ip::Outer) -> Option<bool> {
    let udp = pkt.get(outer.payload.start.checked_sub(UDP_HEADER_LEN)?..outer.payload.end)?;
    let stored = u16::from_be_bytes([*udp.get(6)?, *udp.get(7)?]);
    // Summed with the stored checksum in place, a correct segment folds to all ones,
    // which `udp_checksum` reports as 0xffff.
    Some(
        (stored == 0 && outer.src.is_ipv4())
            || (stored != 0 && udp_checksum(outer.src.ip(), outer.dst.ip(), udp) == 0xffff),
    )
}

/// The traffic generator. See the module documentation.
pub struct TrafficGen {
    cfg: GenConfig,
    stats: Arc<GenStats>,
    /// Next sequence number = packets generated so far.
    seq: u64,
    bucket: TokenBucket,
    min_len: usize,
}

impl TrafficGen {
    /// # Panics
    /// If `cfg.src` and `cfg.dst` are of different address families.
    pub fn new(cfg: GenConfig) -> TrafficGen {
        assert_eq!(
            cfg.src.is_ipv4(),
            cfg.dst.is_ipv4(),
            "generator source and destination must be of one address family"
        );
        let ip = if cfg.src.is_ipv4() {
            IPV4_HEADER_LEN
        } else {
            IPV6_HEADER_LEN
        };
        TrafficGen {
            min_len: ip + UDP_HEADER_LEN + TEST_HEADER_LEN,
            cfg,
            stats: Arc::new(GenStats::default()),
            seq: 0,
            bucket: TokenBucket::default(),
        }
    }

    /// The shared progress counters.
    pub fn stats(&self) -> Arc<GenStats> {
        Arc::clone(&self.stats)
    }

    /// Packets generated so far (the next sequence number).
    pub fn sent(&self) -> u64 {
        self.seq
    }

    /// True once `count` packets have been generated.
    pub fn finished(&self) -> bool {
        self.cfg.count.is_some_and(|c| self.seq >= c)
    }

    /// IP length of packet number `seq`.
    #[inline]
    fn len_of(&self, seq: u64) -> usize {
        let want = match self.cfg.size {
            PacketSize::Fixed(n) => n,
            PacketSize::Imix => IMIX[(seq % IMIX.len() as u64) as usize],
        };
        want.clamp(self.min_len, MAX_FRAME)
    }

    /// How many packets the rate and count allow now, at most `want`.
    #[inline]
    fn allowance(&mut self, want: usize, now_ns: u64) -> usize {
        let mut n = want as u64;
        if let Some(count) = self.cfg.count {
            n = n.min(count.saturating_sub(self.seq));
        }
        if self.cfg.rate_pps == 0 {
            return n as usize;
        }
        let n = self
            .bucket
            .take(n, u128::from(self.cfg.rate_pps), self.cfg.bucket, now_ns);
        n as usize
    }

    /// Writes up to `bufs.len()` packets into the front of `bufs` as of time `now_ns` and
    /// returns how many. `BurstIo::rx_burst` calls this with the clock.
    pub fn generate(&mut self, bufs: &mut [PacketBuf], now_ns: u64) -> usize {
        let n = self.allowance(bufs.len(), now_ns);
        let mut bytes = 0u64;
        let mut made = 0;
        for buf in bufs.iter_mut().take(n) {
            let len = self.len_of(self.seq);
            let payload_len = len - (self.min_len - TEST_HEADER_LEN);
            let header = TestHeader {
                flow: self.cfg.flow,
                seq: self.seq,
                tx_ns: now_ns,
            };
            let built = header.build_packet(buf, self.cfg.src, self.cfg.dst, payload_len);
            if built.is_err() {
                // Unreachable: lengths are clamped to what a buffer holds.
                break;
            }
            bytes += buf.len() as u64;
            self.seq += 1;
            made += 1;
        }
        if made < n && self.cfg.rate_pps != 0 {
            // Return unused tokens.
            self.bucket.give_back((n - made) as u64);
        }
        self.stats.add(made, bytes);
        made
    }
}

impl BurstIo for TrafficGen {
    fn layer(&self) -> Layer {
        Layer::Ip
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        Ok(self.generate(bufs, now_ns()))
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if !bufs.is_empty() {
            self.stats
                .discarded
                .fetch_add(bufs.len() as u64, Ordering::Relaxed);
        }
        Ok(bufs.len())
    }

    fn name(&self) -> &str {
        "gen"
    }
}

// ---------------------------------------------------------------------------------------
// Sink.

/// Sink settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// Flows tracked: ids `0..flows`; packets of other flows count as bad.
    pub flows: u32,
    /// Reorder window in packets (rounded up to a multiple of 64): a packet up to this far
    /// behind the newest one is told apart as late (reordered) or duplicate.
    pub window: u32,
    /// Verify UDP checksums (a corrupted packet counts as bad).
    pub verify_checksum: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            flows: 1,
            window: 4096,
            verify_checksum: true,
        }
    }
}

/// Sink counters, shared for progress display. Totals, stored once per burst.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    pub lost: AtomicU64,
    pub duplicates: AtomicU64,
    pub reordered: AtomicU64,
    pub too_old: AtomicU64,
    pub bad: AtomicU64,
    pub max_gap_ns: AtomicU64,
}

/// Lets another thread ask "when did the first packet arrive after time T?" (the lab sets T
/// when it publishes a new path).
#[derive(Debug, Default)]
pub struct SinkControl {
    mark_ns: AtomicU64,
    answered_mark: AtomicU64,
    first_ns: AtomicU64,
}

impl SinkControl {
    /// Sets the marker time (`shared::clock::now_ns` scale; 0 clears it). The answer to any
    /// earlier marker is forgotten.
    pub fn mark(&self, t_ns: u64) {
        self.mark_ns.store(t_ns, Ordering::Release);
    }

    /// The current marker.
    pub fn mark_ns(&self) -> u64 {
        self.mark_ns.load(Ordering::Acquire)
    }

    /// Arrival time of the first valid packet at or after the current marker, once one has
    /// arrived.
    pub fn first_after_mark(&self) -> Option<u64> {
        let mark = self.mark_ns.load(Ordering::Acquire);
        // The sink stores `first_ns` before `answered_mark` (Release), so an answer to this
        // mark makes its `first_ns` visible.
        if mark == 0 || self.answered_mark.load(Ordering::Acquire) != mark {
            return None;
        }
        Some(self.first_ns.load(Ordering::Acquire))
    }
}

/// Sequence accounting for one flow.
struct FlowState {
    started: bool,
    /// Highest sequence number seen + 1.
    next: u64,
    /// Seen-bits of the last `window` sequence numbers, indexed by `seq % window`.
    seen: Box<[u64]>,
}

impl FlowState {
    fn window(&self) -> u64 {
        self.seen.len() as u64 * 64
    }

    #[inline]
    fn bit(&self, seq: u64) -> (usize, u64) {
        let pos = seq % self.window();
        ((pos / 64) as usize, 1u64 << (pos % 64))
    }
}

/// What happened to one packet's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqEvent {
    /// The newest so far, after `gap` missing ones.
    InOrder {
        gap: u64,
    },
    /// Filled an earlier gap.
    Late,
    Duplicate,
    /// Older than the window: cannot tell late from duplicate.
    TooOld,
}

impl FlowState {
    #[inline]
    fn observe(&mut self, seq: u64) -> SeqEvent {
        let w = self.window();
        if !self.started || seq >= self.next {
            let from = if self.started { self.next } else { 0 };
            self.started = true;
            let gap = seq - from;
            if gap >= w {
                self.seen.fill(0);
            } else {
                // Positions from..seq become "missing"; they reuse the bits of numbers that
                // just left the window.
                for s in from..seq {
                    let (i, m) = self.bit(s);
                    self.seen[i] &= !m;
                }
            }
            let (i, m) = self.bit(seq);
            self.seen[i] |= m;
            self.next = seq.saturating_add(1);
            return SeqEvent::InOrder { gap };
        }
        if self.next - seq > w {
            return SeqEvent::TooOld;
        }
        let (i, m) = self.bit(seq);
        if self.seen[i] & m != 0 {
            SeqEvent::Duplicate
        } else {
            self.seen[i] |= m;
            SeqEvent::Late
        }
    }
}

/// Final or intermediate results of a sink.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SinkReport {
    pub received: u64,
    /// IP bytes of valid packets.
    pub bytes: u64,
    /// Sequence numbers never seen below the newest one seen (gaps not filled by late
    /// arrivals). Losses after the newest packet are invisible here: see `missing`.
    pub lost: u64,
    pub duplicates: u64,
    /// Late arrivals that filled a gap.
    pub reordered: u64,
    /// Arrivals older than the reorder window (neither lost nor received is adjusted).
    pub too_old: u64,
    /// Unparseable, not UDP, wrong magic, unknown flow or bad checksum.
    pub bad: u64,
    pub latency: Latency,
    /// Arrival of the first and the last valid packet (0 if none).
    pub first_rx_ns: u64,
    pub last_rx_ns: u64,
    /// Largest time between two bursts that carried valid packets, and its ends.
    pub max_gap_ns: u64,
    pub max_gap_from_ns: u64,
    pub max_gap_to_ns: u64,
    /// The current marker and the first arrival at or after it.
    pub mark_ns: u64,
    pub first_after_mark_ns: Option<u64>,
}

impl SinkReport {
    /// Packets of `sent` (the generators' total) that never arrived, tail losses included.
    pub fn missing(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.received)
    }
}

/// One-way latency summary in nanoseconds (0 when nothing was received).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Latency histogram bounds: 1 us to 60 s, 3 significant digits.
pub(crate) const LATENCY_LOW_NS: u64 = 1_000;
pub(crate) const LATENCY_HIGH_NS: u64 = 60_000_000_000;
pub(crate) const LATENCY_SIGFIG: u8 = 3;

/// The traffic sink. See the module documentation.
pub struct TrafficSink {
    cfg: SinkConfig,
    flows: Vec<FlowState>,
    latency: Histogram<u64>,
    stats: Arc<SinkStats>,
    control: Arc<SinkControl>,
    received: u64,
    bytes: u64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    too_old: u64,
    bad: u64,
    first_rx_ns: u64,
    last_rx_ns: u64,
    max_gap_ns: u64,
    max_gap_from_ns: u64,
    max_gap_to_ns: u64,
    answered_mark: u64,
}

impl TrafficSink {
    pub fn new(cfg: SinkConfig) -> TrafficSink {
        let words = (cfg.window.max(64) as usize).div_ceil(64);
        let flows = (0..cfg.flows)
            .map(|_| FlowState {
                started: false,
                next: 0,
                seen: vec![0u64; words].into_boxed_slice(),
            })
            .collect();
        let latency = Histogram::new_with_bounds(LATENCY_LOW_NS, LATENCY_HIGH_NS, LATENCY_SIGFIG)
            .expect("constant histogram bounds are valid");
        TrafficSink {
            cfg,
            flows,
            latency,
            stats: Arc::new(SinkStats::default()),
            control: Arc::new(SinkControl::default()),
            received: 0,
            bytes: 0,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
            bad: 0,
            first_rx_ns: 0,
            last_rx_ns: 0,
            max_gap_ns: 0,
            max_gap_from_ns: 0,
            max_gap_to_ns: 0,
            answered_mark: 0,
        }
    }

    /// The shared progress counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        Arc::clone(&self.stats)
    }

    /// The marker handle (see [`SinkControl`]).
    pub fn control(&self) -> Arc<SinkControl> {
        Arc::clone(&self.control)
    }

    /// The one-way latency histogram (nanoseconds), for plots and exports.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// The test header of a valid packet; None for anything the sink counts as bad.
    #[inline]
    fn parse(&self, pkt: &[u8]) -> Option<TestHeader> {
        let outer = parse_outer(pkt, Layer::Ip).ok()?;
        if outer.encap != Encap::Udp {
            return None;
        }
        let payload = pkt.get(outer.payload.clone())?;
        let hdr = TestHeader::parse(payload)?;
        if hdr.flow >= self.cfg.flows {
            return None;
        }
        if self.cfg.verify_checksum && !udp_checksum_ok(pkt, &outer)? {
            return None;
        }
        Some(hdr)
    }

    /// Accounts the packets in `bufs`, all arrived by `now_ns`. `BurstIo::tx_burst` calls
    /// this with the clock.
    pub fn consume(&mut self, bufs: &[PacketBuf], now_ns: u64) {
        let mut valid = 0u64;
        for buf in bufs {
            let pkt = buf.data();
            let Some(hdr) = self.parse(pkt) else {
                self.bad += 1;
                continue;
            };
            let Some(flow) = self.flows.get_mut(hdr.flow as usize) else {
                self.bad += 1;
                continue;
            };
            match flow.observe(hdr.seq) {
                SeqEvent::InOrder { gap } => self.lost += gap,
                SeqEvent::Late => {
                    self.reordered += 1;
                    self.lost = self.lost.saturating_sub(1);
                }
                SeqEvent::Duplicate => {
                    self.duplicates += 1;
                    continue;
                }
                SeqEvent::TooOld => {
                    self.too_old += 1;
                    continue;
                }
            }
            valid += 1;
            self.bytes += pkt.len() as u64;
            self.latency
                .saturating_record(now_ns.saturating_sub(hdr.tx_ns));
        }
        if valid > 0 {
            self.received += valid;
            if self.first_rx_ns == 0 {
                self.first_rx_ns = now_ns;
            } else {
                let gap = now_ns.saturating_sub(self.last_rx_ns);
                if gap > self.max_gap_ns {
                    self.max_gap_ns = gap;
                    self.max_gap_from_ns = self.last_rx_ns;
                    self.max_gap_to_ns = now_ns;
                }
            }
            self.last_rx_ns = now_ns;
            let mark = self.control.mark_ns.load(Ordering::Acquire);
            if mark != 0 && mark != self.answered_mark && now_ns >= mark {
                self.answered_mark = mark;
                self.control.first_ns.store(now_ns, Ordering::Release);
                self.control.answered_mark.store(mark, Ordering::Release);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let s = &self.stats;
        s.received.store(self.received, Ordering::Relaxed);
        s.bytes.store(self.bytes, Ordering::Relaxed);
        s.lost.store(self.lost, Ordering::Relaxed);
        s.duplicates.store(self.duplicates, Ordering::Relaxed);
        s.reordered.store(self.reordered, Ordering::Relaxed);
        s.too_old.store(self.too_old, Ordering::Relaxed);
        s.bad.store(self.bad, Ordering::Relaxed);
        s.max_gap_ns.store(self.max_gap_ns, Ordering::Relaxed);
    }

    /// Everything measured so far.
    pub fn report(&self) -> SinkReport {
        let h = &self.latency;
        let samples = h.len();
        let q = |x: f64| {
            if samples == 0 {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        SinkReport {
            received: self.received,
            bytes: self.bytes,
            lost: self.lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            too_old: self.too_old,
            bad: self.bad,
            latency: Latency {
                samples,
                min: if samples == 0 { 0 } else { h.min() },
                mean: if samples == 0 { 0.0 } else { h.mean() },
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: if samples == 0 { 0 } else { h.max() },
            },
            first_rx_ns: self.first_rx_ns,
            last_rx_ns: self.last_rx_ns,
            max_gap_ns: self.max_gap_ns,
            max_gap_from_ns: self.max_gap_from_ns,
            max_gap_to_ns: self.max_gap_to_ns,
            mark_ns: self.control.mark_ns(),
            first_after_mark_ns: self.control.first_after_mark(),
        }
    }
}

impl BurstIo for TrafficSink {
    fn layer(&self) -> Layer {
        Layer::Ip
    }

    fn rx_burst(&mut self, _bufs: &mut [PacketBuf]) -> io::Result<usize> {
        Ok(0)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if !bufs.is_empty() {
            self.consume(bufs, now_ns());
        }
        Ok(bufs.len())
    }

    fn name(&self) -> &str {
        "sink"
    }
}
