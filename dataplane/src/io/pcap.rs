//! Capture middleware: wraps any port and writes every packet it receives or transmits to
//! a classic pcap file (nanosecond timestamps), readable by tcpdump and Wireshark.
//!
//! Records are appended to a large in-memory buffer that reaches the file only when full,
//! on `flush()` and on drop, so capturing costs no syscall per packet. Timestamps come from
//! the wall clock (pcap's convention), read once per burst.
//!
//! Link types follow the port's layer: Ethernet frames as `LINKTYPE_ETHERNET`, IP packets as
//! `LINKTYPE_RAW`, and UDP payloads (`Layer::Datagram`) as `LINKTYPE_RAW` with an IPv4/IPv6
//! and UDP header synthesised from `Meta` (`src` -> `dst` in both directions, which is
//! what `Meta` means on receive and on transmit), so decoders see UDP-4500 ESP and IKE.
//!
//! Capture errors never disturb the traffic: the first one stops capturing and is
//! returned by `flush()`.

use crate::buf::{PacketBuf, BUF_SIZE};
use crate::io::{BurstIo, Layer};
use crate::ip::{build_udp_packet, IPV6_HEADER_LEN, UDP_HEADER_LEN};
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Classic pcap magic for nanosecond-resolution timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Classic pcap magic for microsecond-resolution timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Ethernet II frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Bare IPv4/IPv6 packets, version from the first nibble.
pub const LINKTYPE_RAW: u32 = 101;
/// Largest packet we record; longer ones are truncated (never happens with our buffers).
pub const SNAPLEN: u32 = 65_535;

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Most bytes one packet adds to the capture buffer.
const MAX_RECORD: usize = RECORD_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN + BUF_SIZE;
/// Packets staged per inner `tx_burst` call, so a burst's records always fit the buffer.
const TX_CHUNK: usize = 256;
/// Default capture buffer: several full bursts of full-size packets.
pub const DEFAULT_BUFFER: usize = 4 << 20;

/// A port that records its traffic. See the module documentation.
pub struct Pcap<P: BurstIo> {
    inner: P,
    file: File,
    /// Records not yet written to the file. Its capacity never changes.
    pending: Vec<u8>,
    /// Builds the synthetic IP/UDP headers of `Layer::Datagram` packets.
    scratch: PacketBuf,
    /// Per packet of the transmit chunk being staged: end of its record in `pending` and
    /// whether it has one. Capacity `TX_CHUNK`, never grown.
    ends: Vec<(usize, bool)>,
    name: String,
    error: Option<io::Error>,
    packets: u64,
    skipped: u64,
}

impl<P: BurstIo> Pcap<P> {
    /// Wraps `inner`, creating (truncating) the capture file at `path`.
    pub fn new(inner: P, path: &Path) -> io::Result<Self> {
        Self::with_buffer(inner, path, DEFAULT_BUFFER)
    }

    /// Like `new` with a capture buffer of `bytes` (raised to hold at least one full
    /// transmit chunk).
    pub fn with_buffer(inner: P, path: &Path, bytes: usize) -> io::Result<Self> {
        let mut file = File::create(path)?;
        let linktype = match inner.layer() {
            Layer::Ethernet => LINKTYPE_ETHERNET,
            Layer::Ip | Layer::Datagram => LINKTYPE_RAW,
        };
        let mut header = [0u8; FILE_HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&linktype.to_le_bytes());
        file.write_all(&header)?;
        let name = format!("pcap:{}", inner.name());
        Ok(Pcap {
            inner,
            file,
            pending: Vec::with_capacity(bytes.max(TX_CHUNK * MAX_RECORD)),
            scratch: PacketBuf::new(),
            ends: Vec::with_capacity(TX_CHUNK),
            name,
            error: None,
            packets: 0,
            skipped: 0,
        })
    }

    /// The wrapped port.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }

    /// The wrapped port.
    pub fn get_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Packets recorded so far (including those still buffered).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Packets not recorded: synthetic headers could not be built for them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Writes buffered records to the file. Returns the first capture error, if any
    /// occurred (capturing stopped then).
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending();
        match &self.error {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    fn write_pending(&mut self) {
        if self.error.is_some() {
            self.pending.clear();
            return;
        }
        let r = self
            .file
            .write_all(&self.pending)
            .and_then(|()| self.file.flush());
        self.pending.clear();
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// Makes room for `bytes` more in the capture buffer.
    #[inline]
    fn reserve(&mut self, bytes: usize) {
        if self.pending.len() + bytes > self.pending.capacity() {
            self.write_pending();
        }
    }

    /// Appends one record; returns false if the packet could not be recorded. The caller
    /// has reserved `MAX_RECORD` bytes.
    #[inline]
    fn record(&mut self, buf: &PacketBuf, layer: Layer, ts: (u32, u32)) -> bool {
        let synthetic = layer == Layer::Datagram;
        if synthetic {
            let (src, dst) = same_family(buf.meta.src, buf.meta.dst);
            let payload = buf.data();
            // The headers go in front of the data start: restore the full head room.
            self.scratch.reset();
            let built = build_udp_packet(&mut self.scratch, src, dst, payload.len(), |p| {
                p.copy_from_slice(payload)
            });
            if built.is_err() {
                self.skipped += 1;
                return false;
            }
        }
        let data = if synthetic {
            self.scratch.data()
        } else {
            buf.data()
        };
        let orig = data.len() as u32;
        let incl = orig.min(SNAPLEN);
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&ts.0.to_le_bytes());
        h[4..8].copy_from_slice(&ts.1.to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.pending.extend_from_slice(&h);
        self.pending.extend_from_slice(&data[..incl as usize]);
        true
    }
}

/// Both addresses in one family (an IPv4 address beside an IPv6 one becomes IPv4-mapped),
/// as an IP header needs.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (v6(src), v6(dst))
    }
}

/// Wall-clock (seconds, nanoseconds) for record headers.
#[inline]
fn wall_clock() -> (u32, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_nanos())
}

impl<P: BurstIo> BurstIo for Pcap<P> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let n = self.inner.rx_burst(bufs)?;
        if n == 0 || self.error.is_some() {
            return Ok(n);
        }
        let ts = wall_clock();
        let layer = self.inner.layer();
        for buf in bufs.iter().take(n) {
            self.reserve(MAX_RECORD);
            if self.record(buf, layer, ts) {
                self.packets += 1;
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if self.error.is_some() {
            return self.inner.tx_burst(bufs);
        }
        // After the inner call the taken buffers hold unspecified data, so records are
        // staged first and the untaken ones removed afterwards.
        let ts = wall_clock();
        let layer = self.inner.layer();
        let mut done = 0;
        while done < bufs.len() {
            let chunk_len = (bufs.len() - done).min(TX_CHUNK);
            let chunk = &mut bufs[done..done + chunk_len];
            self.reserve(chunk_len * MAX_RECORD);
            let mark = self.pending.len();
            self.ends.clear();
            for buf in chunk.iter() {
                let written = self.record(buf, layer, ts);
                self.ends.push((self.pending.len(), written));
            }
            let taken = match self.inner.tx_burst(chunk) {
                Ok(t) => t.min(chunk_len),
                Err(e) => {
                    self.pending.truncate(mark);
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            };
            let cut = match taken.checked_sub(1).and_then(|i| self.ends.get(i)) {
                Some(&(end, _)) => end,
                None => mark,
            };
            self.pending.truncate(cut);
            self.packets += self.ends.iter().take(taken).filter(|e| e.1).count() as u64;
            done += taken;
            if taken < chunk_len {
                break;
            }
        }
        Ok(done)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        self.inner.wait_fds(out)
    }

    #[inline]
    fn take_counts(&mut self, cnt: &mut shared::counters::LocalCounters) {
        self.inner.take_counts(cnt)
    }

    /// Large IKE datagrams go to the control plane from the inner port, unrecorded.
    fn attach_large_punt(&mut self, queue: std::sync::Arc<crate::channel::Channel>) {
        self.inner.attach_large_punt(queue)
    }
}

impl<P: BurstIo> Drop for Pcap<P> {
    fn drop(&mut self) {
        self.write_pending();
    }
}
