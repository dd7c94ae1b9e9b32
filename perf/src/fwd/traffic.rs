//! The two ends of the traffic: the generator, which replays Ethernet frames built once
//! by `TrafficGen` at a set rate, and the sink, which counts what arrives, checks one
//! frame in `VERIFY_EVERY` (decrypting ESP with the SA's key) and records each change of
//! outer source, the moment a path change reached it.

use super::topology::{pin, renice, GEN_IP, INNER_DST, MAC_G0};
use super::FwdSize;
use dataplane::esp;
use dataplane::io::afpacket::AfPacketPort;
use dataplane::io::traffic::{GenConfig, TestHeader, TrafficGen};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip;
use dataplane::natt::{self, Udp4500};
use dataplane::replay::ReplayWindow;
use dataplane::worker::ForwardMode;
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::{Encap, L2};
use shared::sa::EspKey;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Generator: frames built once by `TrafficGen`, replayed.

/// Inner packets as Ethernet frames for the clear side: one IMIX cycle times 32.
pub(super) fn build_frames(size: FwdSize, dst_mac: [u8; 6]) -> Result<Vec<Vec<u8>>, String> {
    let n = 12 * 32;
    let mut cfg = GenConfig::new(
        SocketAddr::new(IpAddr::V4(GEN_IP), 40000),
        SocketAddr::new(IpAddr::V4(INNER_DST), 40001),
    );
    cfg.size = size.packet_size();
    cfg.count = Some(n as u64);
    let mut gen = TrafficGen::new(cfg);
    let mut bufs = PacketBuf::alloc(n);
    let made = gen.generate(&mut bufs, now_ns());
    if made != n {
        return Err(format!("generator built {made} of {n} packets"));
    }
    let l2 = L2 {
        src_mac: MAC_G0,
        dst_mac,
    };
    bufs.iter_mut()
        .map(|b| {
            ip::push_ethernet(b, &l2, ip::ETHERTYPE_IPV4)
                .map_err(|e| format!("ethernet header: {e:?}"))?;
            Ok(b.data().to_vec())
        })
        .collect()
}

#[derive(Default)]
pub(super) struct GenShared {
    pub(super) sent: AtomicU64,
}

pub(super) fn run_generator(
    mut port: AfPacketPort,
    frames: Vec<Vec<u8>>,
    rate_pps: u64,
    stop: Arc<AtomicBool>,
    shared: Arc<GenShared>,
    core: Option<usize>,
    nice: i32,
) {
    pin(core);
    renice(nice);
    let mut bufs = PacketBuf::alloc(64);
    let mut next = 0usize;
    let mut sent = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut want = bufs.len();
        if rate_pps > 0 {
            let due = (start.elapsed().as_nanos() * u128::from(rate_pps) / 1_000_000_000) as u64;
            want = want.min(due.saturating_sub(sent) as usize);
            if want == 0 {
                std::hint::spin_loop();
                continue;
            }
        }
        for (i, b) in bufs[..want].iter_mut().enumerate() {
            b.reset();
            b.fill(&frames[(next + i) % frames.len()]);
        }
        let w = port.tx_burst(&mut bufs[..want]).unwrap_or(0);
        next = (next + w) % frames.len();
        sent += w as u64;
        shared.sent.store(sent, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Sink.

/// The sink decrypts (or parses) one frame in this many.
const VERIFY_EVERY: u64 = 64;

#[derive(Default)]
pub(super) struct SinkShared {
    frames: AtomicU64,
    pub(super) forwarded: AtomicU64,
    pub(super) other: AtomicU64,
    pub(super) verified: AtomicU64,
    pub(super) verify_failed: AtomicU64,
    pub(super) source_changes: AtomicU64,
}

/// What the sink hands back when it stops: (arrival ns, outer source) of each change.
pub(super) type SourceChanges = Vec<(u64, Ipv4Addr)>;

pub(super) struct SinkState {
    pub(super) mode: ForwardMode,
    pub(super) key: EspKey,
    pub(super) window: ReplayWindow,
    pub(super) scratch: PacketBuf,
    pub(super) seen: u64,
    pub(super) last_src: Option<Ipv4Addr>,
    pub(super) changes: SourceChanges,
}

impl SinkState {
    /// Checks one sampled UDP-4500 payload: decrypts ESP with the SA's key, then expects
    /// an inner IPv4/UDP packet carrying a test header.
    fn verify(&mut self, payload: &[u8]) -> bool {
        let inner_ok = |pkt: &[u8]| -> bool {
            let Ok(o) = ip::parse_outer(pkt, Layer::Ip) else {
                return false;
            };
            o.encap == Encap::Udp
                && pkt
                    .get(o.payload)
                    .and_then(TestHeader::parse)
                    .is_some_and(|h| h.flow == 0)
        };
        match self.mode {
            ForwardMode::Plain => inner_ok(payload),
            ForwardMode::Esp => {
                if !self.scratch.fill(payload) {
                    return false;
                }
                match esp::decap(&self.key, false, &mut self.window, &mut self.scratch) {
                    Ok(esp::NH_IPV4) => inner_ok(self.scratch.data()),
                    _ => false,
                }
            }
        }
    }

    fn frame(&mut self, frame: &[u8], now: u64, sh: &SinkShared) -> bool {
        let Ok(o) = ip::parse_outer(frame, Layer::Ethernet) else {
            return false;
        };
        if o.encap != Encap::Udp || o.dst.port() != natt::NATT_PORT {
            return false;
        }
        let Some(payload) = frame.get(o.payload.clone()) else {
            return false;
        };
        let kind_ok = match self.mode {
            ForwardMode::Esp => natt::classify(payload) == Udp4500::Esp,
            ForwardMode::Plain => payload.first().is_some_and(|b| b >> 4 == 4),
        };
        if !kind_ok {
            return false;
        }
        self.seen += 1;
        if self.seen % VERIFY_EVERY == 1 {
            if self.verify(payload) {
                sh.verified.fetch_add(1, Ordering::Relaxed);
            } else {
                sh.verify_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let IpAddr::V4(src) = o.src.ip() {
            if self.last_src != Some(src) {
                if self.last_src.is_some() {
                    sh.source_changes.fetch_add(1, Ordering::Relaxed);
                    if self.changes.len() < self.changes.capacity() {
                        self.changes.push((now, src));
                    }
                }
                self.last_src = Some(src);
            }
        }
        true
    }
}

pub(super) fn run_sink(
    mut port: AfPacketPort,
    mut st: SinkState,
    stop: Arc<AtomicBool>,
    sh: Arc<SinkShared>,
    core: Option<usize>,
    nice: i32,
) -> SourceChanges {
    pin(core);
    renice(nice);
    let mut bufs = PacketBuf::alloc(256);
    let (mut frames, mut fwd, mut other) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let n = port.rx_burst(&mut bufs).unwrap_or(0);
        let now = now_ns();
        for b in &bufs[..n] {
            if st.frame(b.data(), now, &sh) {
                fwd += 1;
            } else {
                other += 1;
            }
        }
        frames += n as u64;
        sh.frames.store(frames, Ordering::Relaxed);
        sh.forwarded.store(fwd, Ordering::Relaxed);
        sh.other.store(other, Ordering::Relaxed);
        if n < bufs.len() {
            // The ring holds milliseconds of traffic: leave the shared core to the
            // generator instead of spinning.
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    st.changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwd::topology::MAC_DC;

    #[test]
    fn frames_are_ethernet_ipv4_udp_with_test_header() {
        for size in [FwdSize::Fixed(64), FwdSize::Fixed(1400), FwdSize::Imix] {
            let frames = build_frames(size, MAC_DC).unwrap();
            for f in &frames {
                let o = ip::parse_outer(f, Layer::Ethernet).unwrap();
                assert_eq!(o.encap, Encap::Udp);
                assert!(TestHeader::parse(&f[o.payload]).is_some());
            }
            if let FwdSize::Fixed(n) = size {
                assert!(frames.iter().all(|f| f.len() == n + ip::ETH_HEADER_LEN));
            }
        }
    }
}
