//! ESP against the bare primitives: what `dataplane::esp::{encap, decap}` cost on one core
//! next to the cipher and MAC alone over the same bytes in the same buffers, in the same
//! run (the machines are shared: only same-run ratios mean much).
//!
//! For each transform and inner-packet size, every round measures four passes over one
//! pool of packet buffers, one after the other:
//! - `encap`: `esp::encap` of the inner packet (padding, header, IV, encryption, ICV);
//! - `seal`: the bare primitives over exactly the bytes ESP protects, pre-expanded keys,
//!   in place: for AES-GCM and ChaCha20-Poly1305 ring's `seal_in_place_separate_tag`
//!   with the same 8/12-byte AAD; for AES-CBC the CBC encryption of the inner packet +
//!   padding + trailer and the HMAC over header, IV and ciphertext (no IV generation,
//!   no padding, no header);
//! - `decap`: `esp::decap` of real packets — the pool is encrypted once with distinct
//!   sequence numbers and restored before each pass, and the replay window is reset per
//!   pass, so every packet is authenticated, checked against the window and accepted;
//! - `open`: the bare primitives of the same packets: ring's `open_in_place_separate_tag`,
//!   or the HMAC check and the CBC decryption.
//!
//! Only the passes themselves are timed (restoring ciphertext between passes is not). A
//! round's figure is the median rate of its passes (each pass is one walk over the pool,
//! tens of microseconds, so preemptions on a shared machine spoil single passes, not the
//! figure). Each figure is the median over the rounds with min and max; the ratios are taken per
//! round (adjacent passes share the machine's state) and summarised the same way. The
//! measuring thread is pinned to the last core.

use crate::report::{self, Figure};
use dataplane::buf::{PacketBuf, HEADROOM};
use dataplane::esp::{self, ESP_HEADER_LEN, NH_IPV4};
use dataplane::replay::ReplayWindow;
use ring::aead::{Aad, Tag};
use serde::Serialize;
use shared::sa::{AeadKey, CbcKey, EspCipher, EspInteg, EspKey, SuiteKey};
use shared::sa::{CBC_IV_LEN, ICV_LEN, IV_LEN};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Inner IP packet size of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EspSize {
    /// Every inner packet this long.
    Fixed(usize),
    /// 64/576/1500 bytes in 7:4:1.
    Imix,
}

impl EspSize {
    pub fn label(&self) -> String {
        match self {
            EspSize::Fixed(n) => format!("{n} B"),
            EspSize::Imix => "IMIX".to_string(),
        }
    }

    /// Parses `64`, `1400`, `imix`.
    pub fn parse(s: &str) -> Result<EspSize, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("imix") {
            return Ok(EspSize::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (20..=MAX_INNER).contains(&n) => Ok(EspSize::Fixed(n)),
            _ => Err(format!(
                "size `{s}`: expected imix or an inner packet length 20..={MAX_INNER}"
            )),
        }
    }

    /// The inner lengths of a pool of `n` packets (IMIX repeats its 12-packet pattern).
    fn lengths(&self, n: usize) -> Vec<usize> {
        match *self {
            EspSize::Fixed(len) => vec![len; n],
            EspSize::Imix => (0..n)
                .map(|i| match i % 12 {
                    0..=6 => 64,
                    7..=10 => 576,
                    _ => 1500,
                })
                .collect(),
        }
    }
}

/// Largest inner packet the bench accepts (a 1500-byte MTU's worth plus room).
const MAX_INNER: usize = 1600;

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct EspBenchConfig {
    pub sizes: Vec<EspSize>,
    #[serde(serialize_with = "cipher_names")]
    pub ciphers: Vec<EspCipher>,
    /// Timed rounds per figure.
    pub rounds: usize,
    /// Timed seconds of each of the four passes in each round.
    pub seconds: f64,
    /// Packet buffers in the pool (cycled; decap needs this many distinct sequence numbers
    /// per pass).
    pub pool: usize,
    /// RFC 4303 2.2.1 extended sequence numbers (12-byte AAD instead of 8).
    pub esn: bool,
    /// Pin the measuring thread to the last core.
    pub pin: bool,
}

fn cipher_names<S: serde::Serializer>(c: &[EspCipher], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(c.iter().map(|c| c.name()))
}

impl Default for EspBenchConfig {
    fn default() -> Self {
        EspBenchConfig {
            sizes: vec![
                EspSize::Fixed(64),
                EspSize::Fixed(512),
                EspSize::Fixed(1400),
                EspSize::Imix,
            ],
            ciphers: vec![
                EspCipher::AesGcm16_128,
                EspCipher::AesGcm16_256,
                EspCipher::ChaCha20Poly1305,
                EspCipher::AesCbc128(EspInteg::HmacSha256_128),
                EspCipher::AesCbc256(EspInteg::HmacSha512_256),
            ],
            rounds: 7,
            seconds: 0.1,
            pool: 96,
            esn: false,
            pin: true,
        }
    }
}

/// One cipher at one size.
#[derive(Clone, Debug, Serialize)]
pub struct EspRow {
    pub cipher: String,
    pub size: EspSize,
    /// Mean inner packet length of the pool.
    pub inner_bytes: f64,
    /// Millions of packets per second through `esp::encap`.
    pub encap_mpps: Figure,
    /// Millions of bare seals per second over the same bytes (AEAD seal, or CBC
    /// encryption + HMAC).
    pub seal_mops: Figure,
    pub decap_mpps: Figure,
    pub open_mops: Figure,
    /// encap / seal, per round.
    pub encap_vs_seal: Figure,
    /// decap / open, per round.
    pub decap_vs_open: Figure,
    /// Inner throughput of encap at the median, Gbit/s.
    pub encap_gbps: f64,
    /// Packets `decap` or `open` refused (must be 0: the pool holds only valid packets).
    pub errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EspBenchReport {
    pub unix_time: u64,
    pub cpu: Option<String>,
    /// The core the measurement ran on, if pinned.
    pub core: Option<usize>,
    pub config: EspBenchConfig,
    pub rows: Vec<EspRow>,
}

/// Runs the benchmark on a thread of its own (pinned to the last core if asked).
pub fn run(cfg: &EspBenchConfig) -> EspBenchReport {
    let cfg = cfg.clone();
    let handle = std::thread::Builder::new()
        .name("esp-bench".into())
        .spawn(move || {
            let core = if cfg.pin {
                core_affinity::get_core_ids()
                    .and_then(|ids| ids.last().copied())
                    .filter(|id| core_affinity::set_for_current(*id))
                    .map(|id| id.id)
            } else {
                None
            };
            let rows = cfg
                .ciphers
                .iter()
                .flat_map(|&c| cfg.sizes.iter().map(move |&s| (c, s)))
                .map(|(c, s)| measure(&cfg, c, s))
                .collect();
            EspBenchReport {
                unix_time: report::unix_time(),
                cpu: report::cpu_model(),
                core,
                config: cfg,
                rows,
            }
        })
        .expect("spawning the benchmark thread");
    match handle.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

const SPI: u32 = 0x0000_1001;

/// Fixed, non-secret keying material: this is a benchmark.
fn bench_key(cipher: EspCipher) -> EspKey {
    let keymat: Vec<u8> = (0..cipher.keymat_len() as u8)
        .map(|i| i.wrapping_mul(37))
        .collect();
    EspKey::new(cipher, &keymat).expect("keymat length matches the cipher")
}

/// RFC 4106 5 AAD exactly as ESP builds it.
fn aad_bytes(seq: u64, esn: bool) -> ([u8; 12], usize) {
    dataplane::esp::aad(SPI, seq, esn)
}

/// The bare AEAD seal of one ESP packet `pkt` (header, IV, text, ICV) in place: the text
/// with the packet's AAD. Returns success.
#[inline]
fn aead_seal(key: &AeadKey, pkt: &mut [u8], seq: u64, esn: bool) -> bool {
    let len = pkt.len();
    let (_, rest) = pkt.split_at_mut(ESP_HEADER_LEN + IV_LEN);
    let (text, icv) = rest.split_at_mut(len - ESP_HEADER_LEN - IV_LEN - ICV_LEN);
    let (a, alen) = aad_bytes(seq, esn);
    match key.aead().seal_in_place_separate_tag(
        key.nonce(&seq.to_be_bytes()),
        Aad::from(&a[..alen]),
        text,
    ) {
        Ok(tag) => {
            icv.copy_from_slice(tag.as_ref());
            true
        }
        Err(_) => false,
    }
}

/// RFC 4303 3.3.2.1: with ESN the high half of the sequence number follows the ICV input.
fn esn_tail(seq: u64, esn: bool) -> ([u8; 4], usize) {
    (((seq >> 32) as u32).to_be_bytes(), if esn { 4 } else { 0 })
}

/// The bare CBC seal: encryption of the text under the IV in the packet, then the HMAC
/// over everything before the ICV.
#[inline]
fn cbc_seal(key: &CbcKey, pkt: &mut [u8], seq: u64, esn: bool) -> bool {
    let icv_len = key.integ().icv_len();
    let len = pkt.len();
    let (authed, icv) = pkt.split_at_mut(len - icv_len);
    let (head, text) = authed.split_at_mut(ESP_HEADER_LEN + CBC_IV_LEN);
    let mut iv = [0u8; CBC_IV_LEN];
    iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
    if key.encrypt(&iv, text).is_err() {
        return false;
    }
    let (tail, tail_len) = esn_tail(seq, esn);
    key.icv(authed, &tail[..tail_len], icv);
    true
}

/// The bare AEAD open of one ESP packet in place; returns whether it verified.
#[inline]
fn aead_open(key: &AeadKey, pkt: &mut [u8], seq: u64, esn: bool) -> bool {
    let len = pkt.len();
    let (head, rest) = pkt.split_at_mut(ESP_HEADER_LEN + IV_LEN);
    let (text, icv) = rest.split_at_mut(len - ESP_HEADER_LEN - IV_LEN - ICV_LEN);
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
    let mut tag = [0u8; ICV_LEN];
    tag.copy_from_slice(icv);
    let (a, alen) = aad_bytes(seq, esn);
    key.aead()
        .open_in_place_separate_tag(
            key.nonce(&iv),
            Aad::from(&a[..alen]),
            Tag::from(tag),
            text,
            0..,
        )
        .is_ok()
}

/// The bare CBC open: the HMAC check, then decryption.
#[inline]
fn cbc_open(key: &CbcKey, pkt: &mut [u8], seq: u64, esn: bool) -> bool {
    let icv_len = key.integ().icv_len();
    let len = pkt.len();
    let (authed, icv) = pkt.split_at_mut(len - icv_len);
    let (tail, tail_len) = esn_tail(seq, esn);
    if !key.verify(authed, &tail[..tail_len], icv) {
        return false;
    }
    let (head, text) = authed.split_at_mut(ESP_HEADER_LEN + CBC_IV_LEN);
    let mut iv = [0u8; CBC_IV_LEN];
    iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
    key.decrypt(&iv, text).is_ok()
}

/// An inner IPv4-looking packet of `len` bytes (contents do not matter to ESP).
fn inner_packet(len: usize, n: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| (i as u8) ^ (n as u8)).collect();
    if let Some(b) = p.first_mut() {
        *b = 0x45;
    }
    p
}

struct Pool {
    bufs: Vec<PacketBuf>,
    lens: Vec<usize>,
    /// ESP packets (sequence numbers 1..=pool) as received: SPI .. ICV.
    wire: Vec<Vec<u8>>,
}

fn build_pool(cfg: &EspBenchConfig, key: &EspKey, size: EspSize) -> Pool {
    let n = cfg.pool.max(12);
    let lens = size.lengths(n);
    let mut bufs = PacketBuf::alloc(n);
    let mut wire = Vec::with_capacity(n);
    for (i, (b, &len)) in bufs.iter_mut().zip(&lens).enumerate() {
        assert!(b.fill(&inner_packet(len, i)));
        esp::encap(key, SPI, i as u64 + 1, cfg.esn, NH_IPV4, b).expect("pool packet fits");
        wire.push(b.data().to_vec());
    }
    Pool { bufs, lens, wire }
}

/// Restores every buffer to its received ESP packet (untimed).
fn restore(pool: &mut Pool) {
    for (b, w) in pool.bufs.iter_mut().zip(&pool.wire) {
        b.fill(w);
    }
}

/// One timed pass; returns (packets, seconds, errors).
type Pass<'a> = dyn FnMut(&mut Pool) -> (u64, Duration, u64) + 'a;

/// Repeats `pass` until `seconds` of timed work; returns (Mpps, errors). The round's rate
/// is the median of its passes' rates: a pass is short (tens of microseconds), so a
/// preemption or an interrupt on this shared machine spoils a few passes, not the round.
fn timed(pool: &mut Pool, seconds: f64, pass: &mut Pass<'_>) -> (f64, u64) {
    let budget = Duration::from_secs_f64(seconds);
    let (mut spent, mut errors) = (Duration::ZERO, 0u64);
    let mut rates = Vec::with_capacity(4096);
    while spent < budget {
        let (p, d, e) = pass(pool);
        spent += d;
        errors += e;
        rates.push(p as f64 / d.as_secs_f64().max(1e-9) / 1e6);
    }
    (Figure::of(&rates).median, errors)
}

fn measure(cfg: &EspBenchConfig, cipher: EspCipher, size: EspSize) -> EspRow {
    let key = bench_key(cipher);
    let esn = cfg.esn;
    let mut pool = build_pool(cfg, &key, size);
    let n = pool.bufs.len();
    let mut window = ReplayWindow::new(n as u32 * 2);
    let mut seq: u64 = 1 << 20;

    let mut encap_pass = |pool: &mut Pool| {
        for (b, &len) in pool.bufs.iter_mut().zip(&pool.lens) {
            b.set_window(HEADROOM, HEADROOM + len);
        }
        let t = Instant::now();
        let mut errors = 0;
        for b in pool.bufs.iter_mut() {
            seq += 1;
            errors += esp::encap(&key, SPI, seq, esn, NH_IPV4, b).is_err() as u64;
        }
        let d = t.elapsed();
        black_box(&mut pool.bufs);
        (n as u64, d, errors)
    };
    let mut seal_seq: u64 = 1 << 20;
    let mut seal_pass = |pool: &mut Pool| {
        // The wire layout (header, IV, text, ICV) of each packet; seal its text in place.
        restore(pool);
        let t = Instant::now();
        let mut errors = 0;
        // One dispatch per pass, not per packet: the bare loop stays bare.
        match key.suite() {
            SuiteKey::Aead(k) => {
                for b in pool.bufs.iter_mut() {
                    seal_seq += 1;
                    errors += !aead_seal(k, b.data_mut(), seal_seq, esn) as u64;
                }
            }
            SuiteKey::Cbc(k) => {
                for b in pool.bufs.iter_mut() {
                    seal_seq += 1;
                    errors += !cbc_seal(k, b.data_mut(), seal_seq, esn) as u64;
                }
            }
        }
        let d = t.elapsed();
        black_box(&mut pool.bufs);
        (n as u64, d, errors)
    };
    let mut decap_pass = |pool: &mut Pool| {
        restore(pool);
        // A fresh window per pass: the pool's sequence numbers are new to it again.
        window.reset(n as u32 * 2, esn);
        let t = Instant::now();
        let mut errors = 0;
        for b in pool.bufs.iter_mut() {
            errors += esp::decap(&key, esn, &mut window, b).is_err() as u64;
        }
        let d = t.elapsed();
        for (b, &len) in pool.bufs.iter().zip(&pool.lens) {
            errors += (b.len() != len) as u64;
        }
        (n as u64, d, errors)
    };
    let mut open_pass = |pool: &mut Pool| {
        restore(pool);
        let t = Instant::now();
        let mut errors = 0;
        match key.suite() {
            SuiteKey::Aead(k) => {
                for (i, b) in pool.bufs.iter_mut().enumerate() {
                    errors += !aead_open(k, b.data_mut(), i as u64 + 1, esn) as u64;
                }
            }
            SuiteKey::Cbc(k) => {
                for (i, b) in pool.bufs.iter_mut().enumerate() {
                    errors += !cbc_open(k, b.data_mut(), i as u64 + 1, esn) as u64;
                }
            }
        }
        let d = t.elapsed();
        black_box(&mut pool.bufs);
        (n as u64, d, errors)
    };

    // Warm-up: caches, branch predictors, CPU frequency.
    let warm = (cfg.seconds / 4.0).max(0.001);
    let mut errors = 0;
    for pass in [
        &mut encap_pass as &mut Pass<'_>,
        &mut seal_pass,
        &mut decap_pass,
        &mut open_pass,
    ] {
        errors += timed(&mut pool, warm, pass).1;
    }
    let (mut enc, mut seal, mut dec, mut open) = (vec![], vec![], vec![], vec![]);
    for _ in 0..cfg.rounds.max(1) {
        for (out, pass) in [
            (&mut enc, &mut encap_pass as &mut Pass<'_>),
            (&mut seal, &mut seal_pass),
            (&mut dec, &mut decap_pass),
            (&mut open, &mut open_pass),
        ] {
            let (mpps, e) = timed(&mut pool, cfg.seconds, pass);
            out.push(mpps);
            errors += e;
        }
    }
    let ratio =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    let inner_bytes = pool.lens.iter().sum::<usize>() as f64 / n as f64;
    let encap_mpps = Figure::of(&enc);
    EspRow {
        cipher: cipher.name().to_string(),
        size,
        inner_bytes,
        encap_mpps,
        seal_mops: Figure::of(&seal),
        decap_mpps: Figure::of(&dec),
        open_mops: Figure::of(&open),
        encap_vs_seal: Figure::of(&ratio(&enc, &seal)),
        decap_vs_open: Figure::of(&ratio(&dec, &open)),
        encap_gbps: encap_mpps.median * inner_bytes * 8.0 / 1e3,
        errors,
    }
}

/// The report as a Markdown table: medians with (min-max) over the rounds.
pub fn render_table(r: &EspBenchReport) -> String {
    let headers = [
        "cipher / inner size",
        "encap Mpps",
        "seal Mops",
        "encap/seal",
        "decap Mpps",
        "open Mops",
        "decap/open",
        "encap Gbit/s",
    ];
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            vec![
                format!("{} {}", row.cipher, row.size.label()),
                row.encap_mpps.show(2),
                row.seal_mops.show(2),
                row.encap_vs_seal.show(2),
                row.decap_mpps.show(2),
                row.open_mops.show(2),
                row.decap_vs_open.show(2),
                format!("{:.1}", row.encap_gbps),
            ]
        })
        .collect();
    let mut out = report::table(&headers, &rows);
    out.push_str(&format!(
        "\n{} rounds of {} s per pass, pool of {} packets, ESN {}, core {}, CPU {}\n",
        r.config.rounds,
        r.config.seconds,
        r.config.pool,
        if r.config.esn { "on" } else { "off" },
        r.core.map_or("unpinned".to_string(), |c| c.to_string()),
        r.cpu.as_deref().unwrap_or("unknown"),
    ));
    let errors: u64 = r.rows.iter().map(|x| x.errors).sum();
    if errors > 0 {
        out.push_str(&format!("ERRORS: {errors} packets refused\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_run_passes_real_packets_and_reports_every_row() {
        let cfg = EspBenchConfig {
            sizes: vec![EspSize::Fixed(64), EspSize::Imix],
            ciphers: EspCipher::ALL.to_vec(),
            rounds: 3,
            seconds: 0.002,
            pool: 24,
            esn: true,
            pin: false,
        };
        let r = run(&cfg);
        assert_eq!(r.rows.len(), 2 * EspCipher::ALL.len());
        for row in &r.rows {
            assert_eq!(row.errors, 0, "{row:?}");
            for f in [row.encap_mpps, row.seal_mops, row.decap_mpps, row.open_mops] {
                assert_eq!(f.rounds, 3);
                assert!(f.min > 0.0 && f.min <= f.median && f.median <= f.max);
            }
        }
        assert_eq!(
            r.rows[1].inner_bytes,
            (7.0 * 64.0 + 4.0 * 576.0 + 1500.0) / 12.0
        );
        let t = render_table(&r);
        assert!(t.contains("aes128gcm16 64 B"));
        assert!(t.contains("aes256gcm16 IMIX"));
        assert!(t.contains("chacha20poly1305 64 B"));
        assert!(t.contains("aes256-sha512 IMIX"));
        assert!(!t.contains("ERRORS"));
        serde_json::to_string(&r).unwrap();
    }

    /// The bare passes verify what they open: a pool sealed by `encap` opens, and a
    /// flipped ICV byte is counted, for each kind of transform.
    #[test]
    fn bare_open_checks_the_icv() {
        let cfg = EspBenchConfig {
            pool: 12,
            ..EspBenchConfig::default()
        };
        for cipher in [
            EspCipher::AesGcm16_128,
            EspCipher::ChaCha20Poly1305,
            EspCipher::AesCbc256(EspInteg::HmacSha384_192),
        ] {
            let key = bench_key(cipher);
            let mut pool = build_pool(&cfg, &key, EspSize::Fixed(100));
            for (i, b) in pool.bufs.iter_mut().enumerate() {
                let (pkt, seq) = (b.data_mut(), i as u64 + 1);
                let ok = match key.suite() {
                    SuiteKey::Aead(k) => aead_open(k, pkt, seq, false),
                    SuiteKey::Cbc(k) => cbc_open(k, pkt, seq, false),
                };
                assert!(ok, "{cipher} packet {i}");
            }
            restore(&mut pool);
            let b = &mut pool.bufs[0];
            let last = b.len() - 1;
            b.data_mut()[last] ^= 1;
            let ok = match key.suite() {
                SuiteKey::Aead(k) => aead_open(k, b.data_mut(), 1, false),
                SuiteKey::Cbc(k) => cbc_open(k, b.data_mut(), 1, false),
            };
            assert!(!ok, "{cipher}: forged ICV accepted");
        }
    }

    /// The decap pass would count a replayed or forged packet as an error: check that the
    /// harness notices when packets are not fresh.
    #[test]
    fn decap_refuses_a_pool_replayed_into_the_same_window() {
        let cfg = EspBenchConfig {
            pool: 12,
            ..EspBenchConfig::default()
        };
        let key = bench_key(EspCipher::AesGcm16_128);
        let mut pool = build_pool(&cfg, &key, EspSize::Fixed(100));
        let mut w = ReplayWindow::new(64);
        w.reset(64, false);
        let mut decap_all = |pool: &mut Pool| {
            restore(pool);
            pool.bufs
                .iter_mut()
                .filter_map(|b| esp::decap(&key, false, &mut w, b).ok())
                .count()
        };
        assert_eq!(decap_all(&mut pool), 12);
        // The same packets again, into the same window: all replays.
        let again = decap_all(&mut pool);
        assert_eq!(again, 0);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(EspSize::parse("imix"), Ok(EspSize::Imix));
        assert_eq!(EspSize::parse(" 1400"), Ok(EspSize::Fixed(1400)));
        assert!(EspSize::parse("9").is_err());
        assert!(EspSize::parse("big").is_err());
    }
}
