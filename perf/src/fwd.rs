//! Forwarding benchmark: a real `Worker` forwarding through network namespaces over veth
//! with the `afpacket` backend, ESP against unencrypted (`ForwardMode::Plain`) forwarding
//! through the same ports in the same run, and the publish-to-wire latency of path changes
//! under load.
//!
//! Topology (created here, needs root, removed on drop):
//!
//! ```text
//!  mkf-gen-<pid>            mkf-dut-<pid>                     mkf-sink-<pid>
//!  g0 10.1.0.1 ---veth--- dc 10.1.0.254  [Worker]  ds 192.0.2.1/.2 ---veth--- s0 192.0.2.100
//!  generator               clear side          cipher side                  sink
//! ```
//!
//! One process: a short-lived thread enters a namespace (`setns(CLONE_NEWNET)`) to open an
//! AF_PACKET port there; the socket stays bound to that namespace whichever thread later
//! uses it. MACs are static and every neighbour entry permanent, so nothing ARPs. The
//! generator and the sink share one core; the worker busy-polls alone on the last core.
//!
//! Which side limits: the worker's clear port is wrapped in a probe that counts polls that
//! found nothing. A DUT that idles while the generator runs flat out is limited by the
//! generator (or the kernel work charged to the generator's core), not by itself.
//!
//! The parts: `topology` the namespaces, veth pairs and ports; `traffic` the generator
//! and the sink; `probe` the wrapper that measures the worker's clear-port polls;
//! `measure` one run set up and measured, the rounds and the path-change runs;
//! `report` the results and their table.

use dataplane::io::afpacket::{AfPacketConfig, RxRing};
use dataplane::io::traffic::PacketSize;
use serde::{Serialize, Serializer};

mod measure;
mod probe;
mod report;
mod topology;
mod traffic;

pub use measure::run;
pub use report::{
    render_table, FwdReport, ModeResult, PathChangeResult, Percentiles, RoundResult, SizeResult,
};

/// Inner IP packet size of one benchmark row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FwdSize {
    /// Every inner IP packet this long (headers included).
    Fixed(usize),
    /// 64/576/1500 in 7:4:1 (`PacketSize::Imix`).
    Imix,
}

impl FwdSize {
    pub fn label(&self) -> String {
        match self {
            FwdSize::Fixed(n) => format!("{n}"),
            FwdSize::Imix => "imix".into(),
        }
    }

    fn packet_size(&self) -> PacketSize {
        match self {
            FwdSize::Fixed(n) => PacketSize::Fixed(*n),
            FwdSize::Imix => PacketSize::Imix,
        }
    }

    /// Parses `64`, `1400` or `imix`.
    pub fn parse(s: &str) -> Result<FwdSize, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(FwdSize::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("size `{s}`: expected a number of bytes or `imix`"))?;
        if !(64..=1500).contains(&n) {
            return Err(format!("size {n}: expected 64..=1500 bytes of IP packet"));
        }
        Ok(FwdSize::Fixed(n))
    }
}

/// Size of the worker's rings whatever their block size.
const DUT_RING_BYTES: usize = 2 << 20;

/// The rings of the worker's two ports (and the sink's RX ring kind) in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DutRing {
    /// TPACKET_V3 blocks (handed over when full or 1 ms old) or TPACKET_V2 frames (each
    /// handed over at once).
    pub rx: RxRing,
    /// Ring block size; the worker's rings hold `DUT_RING_BYTES` whatever it is.
    pub block_size: usize,
}

impl DutRing {
    /// V3 blocks of the backend's default size.
    pub fn blocks() -> DutRing {
        DutRing {
            rx: RxRing::V3Blocks,
            block_size: AfPacketConfig::default().block_size,
        }
    }

    /// V2 frames (in blocks of the backend's default size).
    pub fn frames() -> DutRing {
        DutRing {
            rx: RxRing::V2Frames,
            ..DutRing::blocks()
        }
    }

    /// `blocks:262144`, `blocks:8192` or `frames`.
    pub fn label(&self) -> String {
        match self.rx {
            RxRing::V3Blocks => format!("blocks:{}", self.block_size),
            RxRing::V2Frames if self.block_size == DutRing::frames().block_size => "frames".into(),
            RxRing::V2Frames => format!("frames:{}", self.block_size),
        }
    }

    /// Parses `blocks`, `frames`, or either with `:BLOCK_SIZE`.
    pub fn parse(s: &str) -> Result<DutRing, String> {
        let (kind, size) = match s.split_once(':') {
            Some((k, n)) => (
                k,
                Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("ring `{s}`: `{n}` is not a block size"))?,
                ),
            ),
            None => (s, None),
        };
        let rx: RxRing = kind.parse()?;
        let block_size = size.unwrap_or(DutRing::blocks().block_size);
        if block_size < 4096 || !block_size.is_multiple_of(4096) || block_size > DUT_RING_BYTES {
            return Err(format!(
                "ring `{s}`: block size must be a multiple of 4096 up to {DUT_RING_BYTES}"
            ));
        }
        Ok(DutRing { rx, block_size })
    }
}

impl Default for DutRing {
    fn default() -> Self {
        DutRing::blocks()
    }
}

impl Serialize for DutRing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct FwdBenchConfig {
    /// Measured seconds per (size, mode, round).
    pub seconds: f64,
    /// Seconds of traffic before the measurement window opens.
    pub warmup: f64,
    /// Rounds per (size, mode); the report gives the median round.
    pub rounds: usize,
    pub sizes: Vec<FwdSize>,
    /// Worker burst size of the throughput runs.
    pub burst: usize,
    /// Generator rate in packets per second; 0 = as fast as it goes.
    pub rate_pps: u64,
    /// Path switches per latency run (0 skips the path-change measurement).
    pub switches: usize,
    /// Milliseconds between path switches.
    pub switch_every_ms: u64,
    /// Inner packet size of the path-change runs.
    pub switch_size: usize,
    /// Offered loads of the path-change runs, packets per second (0 = flat out).
    pub switch_loads_pps: Vec<u64>,
    /// The worker's rings in the throughput runs (the afpacket backend's default unless
    /// changed).
    pub dut_ring: DutRing,
    /// Rings the path-change runs are repeated with: a TPACKET_V3 RX block reaches the
    /// worker only when full or 1 ms old, which bounds how soon a packet can carry a new
    /// path; a TPACKET_V2 frame reaches it as soon as the kernel wrote it.
    pub switch_rings: Vec<DutRing>,
    /// Worker burst sizes the path-change runs are repeated with: a saturated worker
    /// takes full bursts, and a publication waits for the burst in progress and the next.
    pub switch_bursts: Vec<usize>,
    /// Address generated frames to a MAC that is not the DUT's, so the DUT namespace's
    /// IP stack drops its copy at once (`PACKET_OTHERHOST`) instead of routing it: that
    /// kernel work runs on the generator's core (veth delivers in the sender's context)
    /// and would make the generator, not the worker, the limit. The AF_PACKET socket sees
    /// the frames either way.
    pub clear_otherhost: bool,
    /// Nice value of the worker, generator and sink threads (0 leaves it): on a shared
    /// machine other processes would otherwise take most of the worker's core.
    pub nice: i32,
}

impl Default for FwdBenchConfig {
    fn default() -> Self {
        FwdBenchConfig {
            seconds: 3.0,
            warmup: 0.5,
            rounds: 3,
            sizes: vec![
                FwdSize::Fixed(64),
                FwdSize::Fixed(512),
                FwdSize::Fixed(1400),
                FwdSize::Imix,
            ],
            burst: 64,
            rate_pps: 0,
            switches: 120,
            switch_every_ms: 50,
            switch_size: 1400,
            switch_loads_pps: vec![0, 100_000, 20_000],
            dut_ring: DutRing::blocks(),
            switch_rings: vec![DutRing::blocks(), DutRing::frames()],
            switch_bursts: vec![64, 8],
            clear_otherhost: true,
            nice: -20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_parse() {
        assert_eq!(DutRing::parse("frames"), Ok(DutRing::frames()));
        assert_eq!(DutRing::parse("blocks"), Ok(DutRing::blocks()));
        let small = DutRing::parse("blocks:8192").unwrap();
        assert_eq!((small.rx, small.block_size), (RxRing::V3Blocks, 8192));
        for r in [DutRing::frames(), DutRing::blocks(), small] {
            assert_eq!(DutRing::parse(&r.label()), Ok(r));
        }
        assert!(DutRing::parse("blocks:1000").is_err());
        assert!(DutRing::parse("v2").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(FwdSize::parse("IMIX"), Ok(FwdSize::Imix));
        assert_eq!(FwdSize::parse("1400"), Ok(FwdSize::Fixed(1400)));
        assert!(FwdSize::parse("20").is_err());
        assert!(FwdSize::parse("x").is_err());
    }
}
