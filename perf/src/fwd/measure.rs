//! One run and its measurement: the table, ports, worker, generator and sink of a run
//! (`Rig::start`), counters read around a measured window, the rounds of plain and ESP
//! forwarding interleaved per size, and the runs that change the path under load.

use super::probe::{thread_cpu_ns, Probe, ProbeShared};
use super::report::{
    FwdReport, ModeResult, PathChangeResult, Percentiles, RoundResult, SizeResult,
};
use super::topology::{
    in_netns, open_port, pin, renice, Topology, DUT_OUTER, MAC_DC, MAC_DS, MAC_G0, MAC_OTHER,
    MAC_S0, SINK_IP, SPI,
};
use super::traffic::{
    build_frames, run_generator, run_sink, GenShared, SinkShared, SinkState, SourceChanges,
};
use super::{DutRing, FwdBenchConfig, FwdSize, DUT_RING_BYTES};
use dataplane::io::afpacket::{AfPacketConfig, AfPacketPort, KernelShield};
use dataplane::ip;
use dataplane::natt;
use dataplane::replay::ReplayWindow;
use dataplane::worker::{Fabric, ForwardMode, Idle, Worker, WorkerConfig, WorkerEvent};
use dataplane::PacketBuf;
use ring::rand::{SecureRandom, SystemRandom};
use shared::clock::now_ns;
use shared::counters::Counter;
use shared::path::{Encap, PathSpec, L2};
use shared::policy::Tunnel;
use shared::sa::{EspCipher, EspKey, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Snap {
    t: Instant,
    gen_sent: u64,
    polls: u64,
    empty: u64,
    busy_ns: u64,
    cpu_ns: u64,
    dut_rx: u64,
    dut_tx: u64,
    sink_fwd: u64,
}

struct Rig {
    topo: Topology,
    keymat: Vec<u8>,
    dut_core: Option<usize>,
    load_core: Option<usize>,
    clear_dst_mac: [u8; 6],
    nice: i32,
}

/// A running forwarding setup: generator, worker, sink.
struct Running {
    writer: TableWriter,
    fabric: Arc<Fabric>,
    probe: Arc<ProbeShared>,
    gen: Arc<GenShared>,
    sink: Arc<SinkShared>,
    gen_stop: Arc<AtomicBool>,
    sink_stop: Arc<AtomicBool>,
    gen_h: JoinHandle<()>,
    sink_h: JoinHandle<SourceChanges>,
    worker_h: JoinHandle<(AfPacketPort, Probe<AfPacketPort>)>,
    _shield: KernelShield,
    mean_ip_len: f64,
}

fn path_spec(local: Ipv4Addr) -> PathSpec {
    PathSpec {
        local: SocketAddr::new(IpAddr::V4(local), natt::NATT_PORT),
        remote: SocketAddr::new(IpAddr::V4(SINK_IP), natt::NATT_PORT),
        encap: Encap::Udp,
        l2: Some(L2 {
            src_mac: MAC_DS,
            dst_mac: MAC_S0,
        }),
        keepalive_ms: 0,
    }
}

impl Rig {
    fn start(
        &self,
        mode: ForwardMode,
        size: FwdSize,
        burst: usize,
        rate: u64,
        ring: DutRing,
    ) -> Result<Running, String> {
        let frames = build_frames(size, self.clear_dst_mac)?;
        // Inner IP length = frame minus the Ethernet header.
        let mean_ip_len = frames
            .iter()
            .map(|f| (f.len() - ip::ETH_HEADER_LEN) as f64)
            .sum::<f64>()
            / frames.len() as f64;
        let tc = TableConfig {
            workers: 1,
            max_inbound: 16,
            max_outbound: 16,
            max_paths: 16,
            max_tunnels: 16,
        };
        let mut writer = TableWriter::new(tc);
        let key = |k: &[u8]| EspKey::new(EspCipher::AesGcm16_128, k).map_err(|e| e.to_string());
        let e = |e: shared::table::TableError| e.to_string();
        writer.set_path(0, path_spec(DUT_OUTER[0])).map_err(e)?;
        writer
            .set_tunnel(Tunnel {
                id: 0,
                local_ts: vec!["10.1.0.0/24".parse().map_err(|e| format!("{e:?}"))?],
                remote_ts: vec!["10.2.0.0/24".parse().map_err(|e| format!("{e:?}"))?],
            })
            .map_err(e)?;
        writer
            .set_outbound(OutboundSpec {
                spi: SPI,
                owner: 0,
                esn: false,
                key: key(&self.keymat)?,
                path: 0,
                tunnel: 0,
            })
            .map_err(e)?;
        writer.publish();

        let t = &self.topo;
        let dflt = AfPacketConfig::default();
        let blocks = (DUT_RING_BYTES / ring.block_size.max(1)).clamp(1, 1 << 16);
        let cipher = open_port(&t.dut, "ds", ring, blocks)?;
        let clear = open_port(&t.dut, "dc", ring, blocks)?;
        // The sink's ring holds ~10 ms at full rate so it can sleep when idle; it is of the
        // worker's kind so that publish->sink carries no block timeout the wire had not.
        let sink_ring = DutRing {
            rx: ring.rx,
            block_size: dflt.block_size,
        };
        let sink_port = open_port(&t.sink, "s0", sink_ring, 64)?;
        let gen_port = open_port(&t.gen, "g0", DutRing::blocks(), dflt.block_count)?;
        // The sink host's stack sees the forwarded UDP-4500 frames too: give them a
        // socket that discards them instead of ICMP port unreachable.
        let shield = in_netns(&t.sink, || {
            KernelShield::open(Some((IpAddr::V4(SINK_IP), natt::NATT_PORT)), false)
        })?;

        let fabric = Fabric::new(1);
        let mut wc = WorkerConfig::new(0, &tc);
        wc.core = self.dut_core;
        wc.burst = burst;
        wc.mode = mode;
        wc.idle = Idle::Busy;
        wc.clear_l2 = Some(L2 {
            src_mac: MAC_DC,
            dst_mac: MAC_G0,
        });
        let probe = Arc::new(ProbeShared::default());
        let clear = Probe::new(clear, probe.clone(), self.nice);
        let reader = writer.reader(0).ok_or("no table reader")?;
        let worker_h = Worker::new(wc, cipher, clear, reader, fabric.clone())
            .spawn("fwd-dut".into())
            .map_err(|e| format!("starting the worker: {e}"))?;

        let sink = Arc::new(SinkShared::default());
        let sink_stop = Arc::new(AtomicBool::new(false));
        let mut window = ReplayWindow::new(0);
        window.reset(0, false);
        let st = SinkState {
            mode,
            key: key(&self.keymat)?,
            window,
            scratch: PacketBuf::new(),
            seen: 0,
            last_src: None,
            changes: Vec::with_capacity(16 * 1024),
        };
        let (s2, ss2, lc, nice) = (sink.clone(), sink_stop.clone(), self.load_core, self.nice);
        let sink_h = std::thread::Builder::new()
            .name("fwd-sink".into())
            .spawn(move || run_sink(sink_port, st, ss2, s2, lc, nice))
            .map_err(|e| format!("starting the sink: {e}"))?;

        let gen = Arc::new(GenShared::default());
        let gen_stop = Arc::new(AtomicBool::new(false));
        let (g2, gs2) = (gen.clone(), gen_stop.clone());
        let gen_h = std::thread::Builder::new()
            .name("fwd-gen".into())
            .spawn(move || run_generator(gen_port, frames, rate, gs2, g2, lc, nice))
            .map_err(|e| format!("starting the generator: {e}"))?;
        Ok(Running {
            writer,
            fabric,
            probe,
            gen,
            sink,
            gen_stop,
            sink_stop,
            gen_h,
            sink_h,
            worker_h,
            _shield: shield,
            mean_ip_len,
        })
    }
}

impl Running {
    fn snap(&self) -> Snap {
        Snap {
            t: Instant::now(),
            gen_sent: self.gen.sent.load(Ordering::Relaxed),
            polls: self.probe.polls.load(Ordering::Relaxed),
            empty: self.probe.empty.load(Ordering::Relaxed),
            busy_ns: self.probe.busy_ns.load(Ordering::Relaxed),
            cpu_ns: thread_cpu_ns(self.probe.tid.load(Ordering::Relaxed)),
            dut_rx: self.fabric.counters.total(Counter::RxClear),
            dut_tx: self.fabric.counters.total(Counter::TxCipher),
            sink_fwd: self.sink.forwarded.load(Ordering::Relaxed),
        }
    }

    fn round(&self, a: &Snap, b: &Snap) -> RoundResult {
        let dt = b.t.duration_since(a.t).as_secs_f64().max(1e-9);
        let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        let polls = b.polls.saturating_sub(a.polls);
        let empty = b.empty.saturating_sub(a.empty);
        let busy = polls.saturating_sub(empty).max(1);
        let sink_pps = rate(a.sink_fwd, b.sink_fwd);
        let cpu_share = (b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / (dt * 1e9)).min(1.0);
        let busy_ns = b.busy_ns.saturating_sub(a.busy_ns) as f64;
        // Busy time while the worker actually held its core.
        let busy_cpu_ns = busy_ns * cpu_share;
        let tx = b.dut_tx.saturating_sub(a.dut_tx).max(1) as f64;
        RoundResult {
            seconds: dt,
            offered_pps: rate(a.gen_sent, b.gen_sent),
            dut_rx_pps: rate(a.dut_rx, b.dut_rx),
            dut_tx_pps: rate(a.dut_tx, b.dut_tx),
            sink_rx_pps: sink_pps,
            inner_gbps: sink_pps * self.mean_ip_len * 8.0 / 1e9,
            dut_idle_polls: if polls == 0 {
                0.0
            } else {
                empty as f64 / polls as f64
            },
            dut_mean_burst: b.dut_rx.saturating_sub(a.dut_rx) as f64 / busy as f64,
            dut_busy: busy_ns / (dt * 1e9),
            dut_ns_per_packet: busy_cpu_ns / tx,
            dut_capacity_pps: if busy_cpu_ns > 0.0 {
                tx * 1e9 / busy_cpu_ns
            } else {
                0.0
            },
            dut_cpu_share: cpu_share,
            ..RoundResult::default()
        }
    }

    /// Stops everything and fills in the totals only known at the end.
    fn finish(self, r: &mut RoundResult) -> Result<SourceChanges, String> {
        self.gen_stop.store(true, Ordering::Relaxed);
        let _ = self.gen_h.join();
        // Let what is in flight arrive.
        std::thread::sleep(Duration::from_millis(100));
        self.fabric.stop();
        let _ = self.worker_h.join();
        self.sink_stop.store(true, Ordering::Relaxed);
        let changes = self
            .sink_h
            .join()
            .map_err(|_| "the sink thread panicked".to_string())?;
        let c = &self.fabric.counters;
        r.lost_before_dut = self
            .gen
            .sent
            .load(Ordering::Relaxed)
            .saturating_sub(c.total(Counter::RxClear));
        r.dut_drops = c
            .nonzero()
            .into_iter()
            .filter(|(n, _)| n.starts_with("drop_"))
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        r.dut_dropped = r.dut_drops.iter().map(|(_, v)| v).sum();
        r.sink_verified = self.sink.verified.load(Ordering::Relaxed);
        r.sink_verify_failed = self.sink.verify_failed.load(Ordering::Relaxed);
        r.sink_other = self.sink.other.load(Ordering::Relaxed);
        Ok(changes)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn measure(
    rig: &Rig,
    cfg: &FwdBenchConfig,
    mode: ForwardMode,
    size: FwdSize,
) -> Result<(RoundResult, f64), String> {
    let run = rig.start(mode, size, cfg.burst, cfg.rate_pps, cfg.dut_ring)?;
    std::thread::sleep(secs(cfg.warmup));
    let a = run.snap();
    std::thread::sleep(secs(cfg.seconds));
    let b = run.snap();
    let mut r = run.round(&a, &b);
    let mean = run.mean_ip_len;
    run.finish(&mut r)?;
    if r.sink_verify_failed > 0 {
        return Err(format!(
            "{mode:?} {}: the sink failed to verify {} sampled frames",
            size.label(),
            r.sink_verify_failed
        ));
    }
    Ok((r, mean))
}

fn median(rounds: &[RoundResult]) -> RoundResult {
    let mut v: Vec<&RoundResult> = rounds.iter().collect();
    v.sort_by(|a, b| a.dut_tx_pps.total_cmp(&b.dut_tx_pps));
    v.get(v.len() / 2).map(|r| (*r).clone()).unwrap_or_default()
}

/// A worker busy for less than this share of the time had spare capacity.
const BUSY_SATURATED: f64 = 0.9;

fn limiter(plain: &RoundResult, esp: &RoundResult) -> String {
    let side = |r: &RoundResult| {
        if r.dut_busy < BUSY_SATURATED {
            "generator"
        } else {
            "dut"
        }
    };
    match (side(plain), side(esp)) {
        ("dut", "dut") => "dut".into(),
        (p, e) => format!("plain: {p}, esp: {e}"),
    }
}

fn path_change(
    rig: &Rig,
    cfg: &FwdBenchConfig,
    load: u64,
    ring: DutRing,
    burst: usize,
) -> Result<PathChangeResult, String> {
    let size = FwdSize::Fixed(cfg.switch_size);
    let mut run = rig.start(ForwardMode::Esp, size, burst, load, ring)?;
    std::thread::sleep(secs(cfg.warmup));
    let a = run.snap();
    let every = Duration::from_millis(cfg.switch_every_ms.max(1));
    // The publisher gets its own thread on the load core at the benchmark's nice value:
    // left at nice 0 against nice -20 spinners it could be descheduled inside
    // `publish()`, between the timestamp and the swap, and charge that to the worker.
    let (writer, fabric, probe) = (&mut run.writer, &run.fabric, &run.probe);
    let (core, nice, switches) = (rig.load_core, rig.nice, cfg.switches);
    let publisher = std::thread::scope(|s| {
        s.spawn(move || -> Result<_, String> {
            pin(core);
            renice(nice);
            let mut published: Vec<(u64, u64, Ipv4Addr)> = Vec::with_capacity(switches);
            let mut publish_us = Vec::with_capacity(switches);
            // Publication time -> the worker's first packet in hand after it.
            let mut first_rx: Vec<(u64, u64)> = Vec::with_capacity(switches);
            let mut events = Vec::new();
            let mut next = Instant::now() + every;
            for i in 0..switches {
                while let Some(ev) = fabric.events.pop() {
                    events.push(ev);
                }
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += every;
                // The previous publication's first packet came (or not) 50 ms ago.
                if let Some(&(_, published_ns, _)) = published.last() {
                    let rx = probe.first_rx_ns.swap(0, Ordering::Relaxed);
                    if rx != 0 {
                        first_rx.push((published_ns, rx));
                    }
                }
                let local = DUT_OUTER[(i + 1) % 2];
                let generation = writer
                    .set_path(0, path_spec(local))
                    .map_err(|e| e.to_string())?;
                // Armed a moment before the publication's own timestamp.
                probe.pending_ns.store(now_ns(), Ordering::Release);
                let p = writer.publish();
                publish_us.push(now_ns().saturating_sub(p.published_ns) as f64 / 1e3);
                published.push((generation, p.published_ns, local));
                writer.reclaim();
            }
            std::thread::sleep(every);
            if let Some(&(_, published_ns, _)) = published.last() {
                let rx = probe.first_rx_ns.swap(0, Ordering::Relaxed);
                if rx != 0 {
                    first_rx.push((published_ns, rx));
                }
            }
            Ok((published, publish_us, first_rx, events))
        })
        .join()
    });
    let (published, publish_us, first_rx, mut events) =
        publisher.map_err(|_| "the publisher thread panicked".to_string())??;
    let b = run.snap();
    let mut r = run.round(&a, &b);
    while let Some(ev) = run.fabric.events.pop() {
        events.push(ev);
    }
    let sink_shared = run.sink.clone();
    let changes = run.finish(&mut r)?;
    let (mut wire, mut rx_to_wire) = (Vec::new(), Vec::new());
    for &(generation, published_ns, _) in &published {
        let hit = events.iter().find_map(|ev| match *ev {
            WorkerEvent::PathOnWire {
                path: 0,
                generation: g,
                wire_ns,
                ..
            } if g == generation => Some(wire_ns),
            _ => None,
        });
        if let Some(w) = hit {
            wire.push(w.saturating_sub(published_ns) as f64 / 1e3);
            if let Some(&(_, rx)) = first_rx.iter().find(|&&(p, _)| p == published_ns) {
                rx_to_wire.push(w.saturating_sub(rx) as f64 / 1e3);
            }
        }
    }
    let to_rx: Vec<f64> = first_rx
        .iter()
        .map(|&(p, rx)| rx.saturating_sub(p) as f64 / 1e3)
        .collect();
    // A change counts for publication i only if the sink saw it before publication i+1.
    let mut sink = Vec::new();
    for (i, &(_, published_ns, local)) in published.iter().enumerate() {
        let until = published.get(i + 1).map_or(u64::MAX, |p| p.1);
        if let Some(&(t, _)) = changes
            .iter()
            .find(|&&(t, src)| t >= published_ns && t < until && src == local)
        {
            sink.push(t.saturating_sub(published_ns) as f64 / 1e3);
        }
    }
    Ok(PathChangeResult {
        offered_target_pps: load,
        ring,
        offered_pps: r.offered_pps,
        dut_tx_pps: r.dut_tx_pps,
        dut_busy: r.dut_busy,
        dut_mean_burst: r.dut_mean_burst,
        dut_cpu_share: r.dut_cpu_share,
        publish_call_us: Percentiles::of(publish_us),
        size: cfg.switch_size,
        burst,
        published: published.len(),
        events: wire.len(),
        publish_to_wire_us: Percentiles::of(wire),
        publish_to_rx_us: Percentiles::of(to_rx),
        rx_to_wire_us: Percentiles::of(rx_to_wire),
        sink_matched: sink.len(),
        publish_to_sink_us: Percentiles::of(sink),
        sink_source_changes: sink_shared.source_changes.load(Ordering::Relaxed),
    })
}

/// Runs the benchmark (needs root).
pub fn run(cfg: &FwdBenchConfig) -> Result<FwdReport, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the forwarding benchmark creates network namespaces and AF_PACKET \
                    sockets: run it as root"
                .into(),
        );
    }
    if cfg.rounds == 0 || cfg.seconds <= 0.0 {
        return Err("rounds and seconds must be positive".into());
    }
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let (dut_core, load_core) = if cores >= 2 {
        (Some(cores - 1), Some(0))
    } else {
        (None, None)
    };
    let mut keymat = vec![0u8; EspCipher::AesGcm16_128.keymat_len()];
    SystemRandom::new()
        .fill(&mut keymat)
        .map_err(|_| "no randomness for the ESP key".to_string())?;
    let rig = Rig {
        topo: Topology::create()?,
        keymat,
        dut_core,
        load_core,
        nice: cfg.nice,
        clear_dst_mac: if cfg.clear_otherhost {
            MAC_OTHER
        } else {
            MAC_DC
        },
    };
    let mut sizes = Vec::new();
    for &size in &cfg.sizes {
        let (mut plain, mut esp) = (Vec::new(), Vec::new());
        let mut mean = 0.0;
        // Interleaved so drifts of a shared machine hit both modes alike.
        for _ in 0..cfg.rounds {
            let (r, m) = measure(&rig, cfg, ForwardMode::Plain, size)?;
            plain.push(r);
            mean = m;
            esp.push(measure(&rig, cfg, ForwardMode::Esp, size)?.0);
        }
        let (pm, em) = (median(&plain), median(&esp));
        sizes.push(SizeResult {
            size: size.label(),
            mean_ip_len: mean,
            esp_over_plain: if pm.dut_tx_pps > 0.0 {
                em.dut_tx_pps / pm.dut_tx_pps
            } else {
                0.0
            },
            esp_over_plain_capacity: if pm.dut_capacity_pps > 0.0 {
                em.dut_capacity_pps / pm.dut_capacity_pps
            } else {
                0.0
            },
            limited_by: limiter(&pm, &em),
            plain: ModeResult {
                mode: "plain".into(),
                rounds: plain,
                median: pm,
            },
            esp: ModeResult {
                mode: "esp".into(),
                rounds: esp,
                median: em,
            },
        });
    }
    let mut path_changes = Vec::new();
    if cfg.switches > 0 {
        for &ring in &cfg.switch_rings {
            for &burst in &cfg.switch_bursts {
                for &load in &cfg.switch_loads_pps {
                    path_changes.push(path_change(&rig, cfg, load, ring, burst)?);
                }
            }
        }
    }
    Ok(FwdReport {
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cores,
        dut_core,
        load_core,
        config: cfg.clone(),
        sizes,
        path_change: path_changes,
    })
}
