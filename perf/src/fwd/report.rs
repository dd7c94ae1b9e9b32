//! What the forwarding benchmark reports: each measured window, the medians of ESP and
//! plain forwarding per size, the publish-to-wire latencies of path changes with their
//! percentiles, and the plain-text table of all of it.

use super::{DutRing, FwdBenchConfig};
use serde::Serialize;

/// One measured window of one (size, mode).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundResult {
    pub seconds: f64,
    /// Frames the generator handed to its TX ring, per second (offered load).
    pub offered_pps: f64,
    /// Frames the worker took from its clear port.
    pub dut_rx_pps: f64,
    /// Frames the worker sent on its cipher port (`tx_cipher`).
    pub dut_tx_pps: f64,
    /// Frames the sink counted as forwarded (ESP-in-UDP, or plain UDP, to port 4500).
    pub sink_rx_pps: f64,
    /// Inner IP throughput at the sink (frames x mean inner packet size).
    pub inner_gbps: f64,
    /// Share of the worker's clear-port polls that found nothing.
    pub dut_idle_polls: f64,
    /// Mean packets per non-empty clear-port poll.
    pub dut_mean_burst: f64,
    /// Share of wall time the worker spent handling non-empty bursts (from the return of a
    /// non-empty clear-port poll to the next poll: classify, encrypt, frame, transmit).
    pub dut_busy: f64,
    /// Worker time per forwarded packet, nanoseconds, and the rate that implies for a
    /// worker kept busy all the time: its capacity when the generator is the limit.
    pub dut_ns_per_packet: f64,
    pub dut_capacity_pps: f64,
    /// Share of wall time the worker thread was on a CPU (schedstat run time, which
    /// includes softirq work done in its context, such as veth delivery of what it
    /// sends). Below 1, other processes took turns on the worker's core (nice does not
    /// help across cgroups); busy time then includes their slices, so the ns/packet and
    /// capacity figures are scaled by this share: they are worker CPU time per packet.
    pub dut_cpu_share: f64,
    /// Offered frames that never reached the worker (kernel drops into its RX ring).
    pub lost_before_dut: u64,
    /// Worker drops of any kind (named in `dut_drops`).
    pub dut_dropped: u64,
    pub dut_drops: Vec<(String, u64)>,
    /// Sampled frames the sink checked (decrypted, for ESP) and that carried a valid
    /// test header; and those that failed.
    pub sink_verified: u64,
    pub sink_verify_failed: u64,
    /// Frames at the sink that were neither of the expected kind.
    pub sink_other: u64,
}

/// One forwarding mode at one size.
#[derive(Clone, Debug, Serialize)]
pub struct ModeResult {
    pub mode: String,
    pub rounds: Vec<RoundResult>,
    /// The round with the median `dut_tx_pps`.
    pub median: RoundResult,
}

/// ESP and plain forwarding at one size.
#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub size: String,
    /// Mean inner IP packet length.
    pub mean_ip_len: f64,
    pub plain: ModeResult,
    pub esp: ModeResult,
    /// Median ESP forwarding rate over median plain forwarding rate (worker tx).
    pub esp_over_plain: f64,
    /// The same ratio of worker capacities (busy time per packet): what the worker alone
    /// achieves when the generator is the limit.
    pub esp_over_plain_capacity: f64,
    /// `dut` when the worker was saturated in both modes, else which side limited.
    pub limited_by: String,
}

/// Publish-to-wire latency of path changes during one ESP run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PathChangeResult {
    /// Offered load (0 = flat out).
    pub offered_target_pps: u64,
    pub ring: DutRing,
    pub offered_pps: f64,
    pub dut_tx_pps: f64,
    /// Share of wall time the worker spent on non-empty bursts: near 1 it was saturated
    /// and every publication waited for whole bursts.
    pub dut_busy: f64,
    /// Mean packets per non-empty clear-port poll.
    pub dut_mean_burst: f64,
    /// Share of wall time the worker thread was on a CPU (below 1: other work took turns
    /// on its core, and a publication can wait for the worker's next slice).
    pub dut_cpu_share: f64,
    /// Duration of the `publish()` call after its timestamp: time charged to the worker
    /// that the publisher spent (building the snapshot, or descheduled).
    pub publish_call_us: Percentiles,
    pub size: usize,
    pub burst: usize,
    pub published: usize,
    /// `PathOnWire` events received for the published generations.
    pub events: usize,
    pub publish_to_wire_us: Percentiles,
    /// Publication to the end of the worker's first non-empty clear poll after it: the
    /// wait for a packet to carry the new path (offered load, RX ring hand-over,
    /// generator and worker scheduling).
    pub publish_to_rx_us: Percentiles,
    /// That first packet in hand to the first packet on the new path sent, per
    /// publication: the rest of the iteration in progress, the next one if the packet
    /// was read under the old snapshot, and the `tx_burst` of it.
    pub rx_to_wire_us: Percentiles,
    /// Publication to the first frame from the new outer source at the sink.
    pub publish_to_sink_us: Percentiles,
    /// Outer-source changes the sink saw, and publications it saw a change for.
    pub sink_source_changes: u64,
    pub sink_matched: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub(super) fn of(mut v: Vec<f64>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            samples: v.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FwdReport {
    pub unix_time: u64,
    pub kernel: String,
    pub cores: usize,
    pub dut_core: Option<usize>,
    pub load_core: Option<usize>,
    pub config: FwdBenchConfig,
    pub sizes: Vec<SizeResult>,
    pub path_change: Vec<PathChangeResult>,
}

/// The report as a plain-text table.
pub fn render_table(r: &FwdReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "afpacket forwarding gen -> [worker, core {}] -> sink over veth; kernel {}; \
         {} s x {} rounds, burst {}, rings {}; medians",
        r.dut_core.map_or("-".into(), |c| c.to_string()),
        r.kernel,
        r.config.seconds,
        r.config.rounds,
        r.config.burst,
        r.config.dut_ring.label()
    );
    let _ = writeln!(
        s,
        "{:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>4} {:>6} {:>8} {:>6} {:>6}",
        "size",
        "mode",
        "offered",
        "dut rx",
        "dut tx",
        "sink rx",
        "Gbit/s",
        "busy%",
        "cpu%",
        "ns/pkt",
        "capacity",
        "esp/pl",
        "cap"
    );
    for z in &r.sizes {
        for (m, esp) in [(&z.plain, false), (&z.esp, true)] {
            let d = &m.median;
            let (ratio, cap) = if esp {
                (
                    format!("{:.2}", z.esp_over_plain),
                    format!("{:.2}", z.esp_over_plain_capacity),
                )
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                s,
                "{:>5} {:>5} {:>7.0}k {:>7.0}k {:>7.0}k {:>7.0}k {:>6.2} {:>5.1} {:>4.0} {:>6.0} {:>7.0}k {:>6} {:>6}",
                z.size,
                m.mode,
                d.offered_pps / 1e3,
                d.dut_rx_pps / 1e3,
                d.dut_tx_pps / 1e3,
                d.sink_rx_pps / 1e3,
                d.inner_gbps,
                d.dut_busy * 100.0,
                d.dut_cpu_share * 100.0,
                d.dut_ns_per_packet,
                d.dut_capacity_pps / 1e3,
                ratio,
                cap
            );
        }
        let _ = writeln!(s, "{:>5} limited by: {}", "", z.limited_by);
    }
    if !r.path_change.is_empty() {
        let _ = writeln!(
            s,
            "\npath changes (ESP {} B, outer source alternates every {} ms), microseconds",
            r.config.switch_size, r.config.switch_every_ms
        );
        let _ = writeln!(
            s,
            "{:>13} {:>5} {:>8} {:>8} {:>5} {:>4} {:>5} {:>7} {:>26} {:>24} {:>21} {:>26} {:>8} {:>11}",
            "ring",
            "burst",
            "offered",
            "dut tx",
            "busy%",
            "cpu%",
            "mean",
            "n",
            "publish->wire 50/90/99/max",
            "publish->rx 50/90/99/max",
            "rx->wire 50/90/99/max",
            "publish->sink 50/90/99/max",
            "sink chg",
            "pub 99/max"
        );
        for p in &r.path_change {
            let f =
                |q: &Percentiles| format!("{:.0}/{:.0}/{:.0}/{:.0}", q.p50, q.p90, q.p99, q.max);
            let _ = writeln!(
                s,
                "{:>13} {:>5} {:>7.0}k {:>7.0}k {:>5.1} {:>4.0} {:>5.1} {:>7} {:>26} {:>24} {:>21} {:>26} {:>8} {:>11}",
                p.ring.label(),
                p.burst,
                p.offered_pps / 1e3,
                p.dut_tx_pps / 1e3,
                p.dut_busy * 100.0,
                p.dut_cpu_share * 100.0,
                p.dut_mean_burst,
                format!("{}/{}", p.events, p.published),
                f(&p.publish_to_wire_us),
                f(&p.publish_to_rx_us),
                f(&p.rx_to_wire_us),
                f(&p.publish_to_sink_us),
                p.sink_source_changes,
                format!(
                    "{:.0}/{:.0}",
                    p.publish_call_us.p99, p.publish_call_us.max
                )
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(Vec::new()).samples, 0);
    }
}
