//! The Ethernet port: an AF_PACKET socket with memory-mapped rings.
//!
//! RX is one of two rings (`AfPacketConfig::rx_ring`):
//! - `RxRing::V3Blocks` (default): a TPACKET_V3 ring. The kernel fills whole blocks of
//!   variable-size frames and hands a block over by setting `TP_STATUS_USER` when it is
//!   full or `rx_block_timeout_ms` old; we walk its frames, copy them into the caller's
//!   buffers and give the block back. One status exchange per block: the throughput
//!   choice, but a frame can wait up to the block timeout before user space sees it.
//! - `RxRing::V2Frames`: a TPACKET_V2 ring of fixed-size frame slots, each handed over
//!   (`TP_STATUS_USER` in its own header) as soon as the kernel has written it, and given
//!   back one by one. No block timeout: the latency choice.
//!
//! Neither needs a syscall to receive: `rx_burst` reads status words in the mapping.
//! TX is a ring of the same version on the same socket when the kernel accepts one (a V3
//! TX ring needs Linux >= 4.11), else a TPACKET_V2 ring on a second socket
//! (`tx_version()` says which); frames are marked `TP_STATUS_SEND_REQUEST` and one
//! `send()` per burst flushes them. `PACKET_QDISC_BYPASS` skips the qdisc layer,
//! `PACKET_IGNORE_OUTGOING` keeps our own transmissions out of the RX ring, and an
//! optional `PACKET_FANOUT` (hash) group spreads flows over several workers' sockets.
//!
//! Also here: interface lookups, kernel neighbour resolution for next-hop MACs, and the
//! `KernelShield` that keeps the host stack from answering our traffic with ICMP errors.

use super::sys;
use super::{BurstIo, Layer};
use crate::buf::{PacketBuf, MAX_FRAME};
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;
const ETH_HLEN: usize = 14;
/// PACKET_LOSS: skip malformed TX frames instead of stopping the ring at them.
const PACKET_LOSS: libc::c_int = 14;
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where TX data starts in a V3 frame.
const V3_DATA_OFF: usize = 48;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where TX data starts in a V2 frame, and
/// the least `tp_mac` of a received V2 frame.
const V2_DATA_OFF: usize = 32;
pub use shared::rx_ring::{RxRing, BLOCK_TIMEOUT_MS, MAX_BLOCK_TIMEOUT_MS};

/// AF_PACKET port configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface to bind to.
    pub interface: String,
    /// Ring block size in bytes (a multiple of the page size and of `frame_size`).
    pub block_size: usize,
    /// Blocks per ring (RX and TX each).
    pub block_count: usize,
    /// Frame slot size of the TX ring and of a `V2Frames` RX ring (a multiple of 16, at
    /// least the header plus the largest frame).
    pub frame_size: usize,
    /// Join this PACKET_FANOUT (hash) group, for several workers on one interface.
    pub fanout: Option<u16>,
    /// Bypass the qdisc layer on transmit.
    pub qdisc_bypass: bool,
    /// The RX ring: V3 blocks (throughput) or V2 frames (latency).
    pub rx_ring: RxRing,
    /// `V3Blocks` only: a partly filled block is handed over after this many milliseconds
    /// (1..=`MAX_BLOCK_TIMEOUT_MS`; the kernel has no finer unit).
    pub rx_block_timeout_ms: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            interface: String::new(),
            block_size: 1 << 18,
            block_count: 8,
            frame_size: 4096,
            fanout: None,
            qdisc_bypass: true,
            rx_ring: RxRing::V3Blocks,
            rx_block_timeout_ms: 1,
        }
    }
}

/// Drop counters of an AF_PACKET port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfPacketStats {
    /// Received frames longer than `MAX_FRAME` (or cut short by the ring), dropped.
    pub rx_oversize: u64,
    /// RX blocks (V3) whose frame chain did not fit the block (skipped whole).
    pub rx_bad_block: u64,
    /// RX frame slots (V2) whose header placed the data outside the slot (skipped).
    pub rx_bad_frame: u64,
    /// Frames not taken because they were shorter than an Ethernet header or longer
    /// than a TX slot.
    pub tx_bad_len: u64,
    /// Bursts cut short because every TX slot was still owned by the kernel.
    pub tx_ring_full: u64,
    /// `send()` flushes that failed with something other than EAGAIN/ENOBUFS.
    pub tx_flush_error: u64,
}

/// A memory-mapped ring region.
struct Mmap {
    ptr: *mut u8,
    len: usize,
}

impl Mmap {
    fn map(fd: RawFd, len: usize) -> io::Result<Mmap> {
        // SAFETY: maps `len` bytes of the socket's rings; the kernel validates the length
        // against the configured rings.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap {
            ptr: p as *mut u8,
            len,
        })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `map` returned, once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// Fixed-size frame slots laid out as the kernel does (`packet_lookup_frame`): slots never
/// straddle a block, so slot `i` is at `(i / per_block) * block_size + (i % per_block) *
/// frame_size`. Used by every TX ring and by the V2 RX ring.
struct FrameRing {
    /// Start of the ring inside its mapping.
    base: *mut u8,
    block_size: usize,
    frame_size: usize,
    frames_per_block: usize,
    frame_nr: usize,
    head: usize,
}

impl FrameRing {
    fn new(base: *mut u8, cfg: &AfPacketConfig) -> FrameRing {
        let fpb = cfg.block_size / cfg.frame_size;
        FrameRing {
            base,
            block_size: cfg.block_size,
            frame_size: cfg.frame_size,
            frames_per_block: fpb,
            frame_nr: fpb * cfg.block_count,
            head: 0,
        }
    }

    /// The slot at `head`.
    fn frame(&self) -> *mut u8 {
        let i = self.head % self.frame_nr;
        let off = (i / self.frames_per_block) * self.block_size
            + (i % self.frames_per_block) * self.frame_size;
        // SAFETY: i < frame_nr, so the offset lies inside the ring (block_nr blocks of
        // block_size bytes, frames_per_block frames of frame_size bytes each).
        unsafe { self.base.add(off) }
    }

    fn advance(&mut self) {
        self.head = (self.head + 1) % self.frame_nr;
    }

    fn status(&self, frame: *mut u8, status_off: usize) -> &AtomicU32 {
        // SAFETY: tp_status is a 4-byte-aligned u32 inside the frame header (slots are
        // 16-byte aligned) that the kernel and we hand back and forth; atomics give the
        // ordering the ring needs.
        unsafe { &*(frame.add(status_off) as *const AtomicU32) }
    }
}

struct TxRing {
    ring: FrameRing,
    data_off: usize,
    /// Offsets of `tp_status` and `tp_len` in the frame header.
    status_off: usize,
    len_off: usize,
    version: u8,
}

impl TxRing {
    fn v3(base: *mut u8, cfg: &AfPacketConfig) -> TxRing {
        TxRing {
            ring: FrameRing::new(base, cfg),
            data_off: V3_DATA_OFF,
            status_off: 20,
            len_off: 16,
            version: 3,
        }
    }

    fn v2(base: *mut u8, cfg: &AfPacketConfig) -> TxRing {
        TxRing {
            ring: FrameRing::new(base, cfg),
            data_off: V2_DATA_OFF,
            status_off: 0,
            len_off: 4,
            version: 2,
        }
    }
}

/// Walk state of a V3 RX ring.
struct BlockRx {
    block_size: usize,
    block_nr: usize,
    block: usize,
    /// Inside the current block: next frame offset and frames left.
    off: usize,
    left: usize,
    in_block: bool,
}

/// The RX ring of a port.
enum Rx {
    Blocks(BlockRx),
    Frames(FrameRing),
}

/// An AF_PACKET port bound to one interface (see the module doc).
pub struct AfPacketPort {
    fd: OwnedFd,
    /// A second socket holding the V2 TX ring on kernels without V3 TX.
    tx_fd: Option<OwnedFd>,
    rx_map: Mmap,
    tx_map: Option<Mmap>,
    rx: Rx,
    tx: TxRing,
    label: String,
    stats: AfPacketStats,
}

// SAFETY: the raw ring pointers point into mappings this port owns exclusively; nothing
// else in the process aliases them, so moving the port between threads is sound.
unsafe impl Send for AfPacketPort {}

fn packet_socket() -> io::Result<OwnedFd> {
    // Protocol 0: receive nothing until bound, so no frames queue before the ring exists.
    sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
}

fn bind_packet(fd: RawFd, ifindex: u32, proto: u16) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a sockaddr_ll of the stated size.
    sys::cvt(unsafe {
        libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn ring_err(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("afpacket: {what}: {e}"))
}

fn check_config(cfg: &AfPacketConfig) -> io::Result<()> {
    let page = 4096usize;
    let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
    if cfg.block_size == 0 || !cfg.block_size.is_multiple_of(page) {
        return bad(format!(
            "afpacket: block_size {} must be a positive multiple of {page}",
            cfg.block_size
        ));
    }
    if cfg.frame_size < V3_DATA_OFF + ETH_HLEN
        || !cfg.frame_size.is_multiple_of(sys::TPACKET_ALIGNMENT)
        || !cfg.block_size.is_multiple_of(cfg.frame_size)
    {
        return bad(format!(
            "afpacket: frame_size {} must be a multiple of 16 dividing block_size",
            cfg.frame_size
        ));
    }
    if cfg.block_count == 0 || cfg.block_count > 1 << 16 {
        return bad("afpacket: block_count must be 1..=65536".into());
    }
    if !BLOCK_TIMEOUT_MS.contains(&cfg.rx_block_timeout_ms) {
        // 0 would make the kernel pick its own timeout from the link speed.
        return bad(format!(
            "afpacket: rx_block_timeout_ms {} must be 1..={MAX_BLOCK_TIMEOUT_MS}",
            cfg.rx_block_timeout_ms
        ));
    }
    Ok(())
}

impl AfPacketPort {
    /// Opens the rings on `cfg.interface` (needs CAP_NET_RAW).
    pub fn open(cfg: &AfPacketConfig) -> io::Result<AfPacketPort> {
        check_config(cfg)?;
        let ifindex = interface_index(&cfg.interface)?;
        let fd = packet_socket()?;
        let raw = fd.as_raw_fd();
        let version = match cfg.rx_ring {
            RxRing::V3Blocks => sys::TPACKET_V3,
            RxRing::V2Frames => sys::TPACKET_V2,
        };
        sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_VERSION, &version)?;
        let one: libc::c_int = 1;
        // Before the rings: the kernel refuses PACKET_LOSS once a ring exists.
        sys::setsockopt(raw, libc::SOL_PACKET, PACKET_LOSS, &one)?;
        let frame_nr = (cfg.block_size / cfg.frame_size) * cfg.block_count;
        let req2 = sys::TpacketReq {
            block_size: cfg.block_size as u32,
            block_nr: cfg.block_count as u32,
            frame_size: cfg.frame_size as u32,
            frame_nr: frame_nr as u32,
        };
        let req3 = sys::TpacketReq3 {
            block_size: req2.block_size,
            block_nr: req2.block_nr,
            frame_size: req2.frame_size,
            frame_nr: req2.frame_nr,
            retire_blk_tov: cfg.rx_block_timeout_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        let same_socket_tx = match cfg.rx_ring {
            RxRing::V3Blocks => {
                sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_RX_RING, &req3)
                    .map_err(ring_err("PACKET_RX_RING (TPACKET_V3)"))?;
                let tx_req = sys::TpacketReq3 {
                    retire_blk_tov: 0,
                    ..req3
                };
                sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_TX_RING, &tx_req).is_ok()
            }
            RxRing::V2Frames => {
                sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_RX_RING, &req2)
                    .map_err(ring_err("PACKET_RX_RING (TPACKET_V2)"))?;
                sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_TX_RING, &req2)
                    .map_err(ring_err("PACKET_TX_RING (TPACKET_V2)"))?;
                true
            }
        };
        if cfg.qdisc_bypass {
            sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one)?;
        }
        // Best effort: kernels before 4.20 lack it and show our own frames to the ring.
        let _ = sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, &one);
        let ring_len = cfg.block_size * cfg.block_count;
        let (rx_map, tx_map, tx_fd, tx) = if same_socket_tx {
            // RX ring, then TX ring, in one mapping.
            let map = Mmap::map(raw, ring_len * 2)?;
            // SAFETY: the TX ring follows the RX ring in the same mapping.
            let base = unsafe { map.ptr.add(ring_len) };
            let tx = match cfg.rx_ring {
                RxRing::V3Blocks => TxRing::v3(base, cfg),
                RxRing::V2Frames => TxRing::v2(base, cfg),
            };
            (map, None, None, tx)
        } else {
            let map = Mmap::map(raw, ring_len)?;
            let tfd = packet_socket()?;
            let traw = tfd.as_raw_fd();
            sys::setsockopt(
                traw,
                libc::SOL_PACKET,
                sys::PACKET_VERSION,
                &sys::TPACKET_V2,
            )?;
            sys::setsockopt(traw, libc::SOL_PACKET, sys::PACKET_TX_RING, &req2)
                .map_err(ring_err("PACKET_TX_RING"))?;
            if cfg.qdisc_bypass {
                sys::setsockopt(traw, libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one)?;
            }
            let tmap = Mmap::map(traw, ring_len)?;
            let tx = TxRing::v2(tmap.ptr, cfg);
            // TX only: protocol 0 receives nothing.
            bind_packet(traw, ifindex, 0)?;
            sys::set_nonblocking(traw)?;
            (map, Some(tmap), Some(tfd), tx)
        };
        let rx = match cfg.rx_ring {
            RxRing::V3Blocks => Rx::Blocks(BlockRx {
                block_size: cfg.block_size,
                block_nr: cfg.block_count,
                block: 0,
                off: 0,
                left: 0,
                in_block: false,
            }),
            RxRing::V2Frames => Rx::Frames(FrameRing::new(rx_map.ptr, cfg)),
        };
        bind_packet(raw, ifindex, ETH_P_ALL)?;
        sys::set_nonblocking(raw)?;
        if let Some(group) = cfg.fanout {
            let arg: u32 = u32::from(group) | (sys::PACKET_FANOUT_HASH << 16);
            sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_FANOUT, &arg)
                .map_err(ring_err("PACKET_FANOUT"))?;
        }
        Ok(AfPacketPort {
            fd,
            tx_fd,
            rx_map,
            tx_map,
            rx,
            tx,
            label: format!("afpacket:{}", cfg.interface),
            stats: AfPacketStats::default(),
        })
    }

    /// The TPACKET version of the TX ring: 3 or 2 on the RX socket, or 2 on a second
    /// socket (a V3 RX ring on a kernel without V3 TX).
    pub fn tx_version(&self) -> u8 {
        self.tx.version
    }

    /// The RX ring in use.
    pub fn rx_ring(&self) -> RxRing {
        match self.rx {
            Rx::Blocks(_) => RxRing::V3Blocks,
            Rx::Frames(_) => RxRing::V2Frames,
        }
    }

    /// Drop counters.
    pub fn stats(&self) -> AfPacketStats {
        self.stats
    }
}

/// Reads a u32 at `off` of a ring region the kernel has handed to us.
///
/// # Safety
/// `base + off .. base + off + 4` lies inside the mapping.
unsafe fn read_u32(base: *const u8, off: usize) -> u32 {
    // SAFETY: in bounds per the caller; the kernel no longer writes a region whose status
    // said TP_STATUS_USER (read with Acquire).
    unsafe { ptr::read_unaligned(base.add(off) as *const u32) }
}

/// Reads a u16 at `off`; same contract as `read_u32`.
unsafe fn read_u16(base: *const u8, off: usize) -> u16 {
    // SAFETY: as `read_u32`.
    unsafe { ptr::read_unaligned(base.add(off) as *const u16) }
}

/// Copies a received frame of `snap` bytes (of `wire_len` on the wire) at `data` into
/// `buf`; false (counted) when it does not fit a buffer or the ring cut it short.
///
/// # Safety
/// `data .. data + snap` lies inside the mapping, in a region the kernel handed to us.
unsafe fn take_frame(
    data: *const u8,
    snap: usize,
    wire_len: usize,
    buf: &mut PacketBuf,
    stats: &mut AfPacketStats,
) -> bool {
    if snap > MAX_FRAME || snap < wire_len {
        stats.rx_oversize += 1;
        return false;
    }
    // SAFETY: in bounds and ours per the caller.
    let src = unsafe { std::slice::from_raw_parts(data, snap) };
    match buf.rx_space().get_mut(..snap) {
        Some(dst) => {
            dst.copy_from_slice(src);
            buf.set_len(snap);
            true
        }
        None => {
            stats.rx_oversize += 1;
            false
        }
    }
}

impl BlockRx {
    fn block(&self, base: *mut u8, i: usize) -> *mut u8 {
        // SAFETY: i < block_nr, so the block lies inside the RX mapping.
        unsafe { base.add((i % self.block_nr) * self.block_size) }
    }

    fn block_status(&self, base: *mut u8, i: usize) -> &AtomicU32 {
        // SAFETY: block_status is the 4-byte-aligned u32 at offset 8 of
        // `struct tpacket_block_desc` (version, offset_to_priv, then tpacket_hdr_v1).
        unsafe { &*(self.block(base, i).add(8) as *const AtomicU32) }
    }

    fn release(&mut self, base: *mut u8) {
        self.block_status(base, self.block)
            .store(sys::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.block_nr;
        self.in_block = false;
    }

    fn rx_burst(
        &mut self,
        base: *mut u8,
        bufs: &mut [PacketBuf],
        stats: &mut AfPacketStats,
    ) -> usize {
        let bs = self.block_size;
        let mut n = 0;
        // Bounded: each step delivers a frame, skips one, or releases a block, and at
        // most block_nr blocks can be ready.
        let mut blocks_seen = 0;
        while n < bufs.len() {
            if !self.in_block {
                if blocks_seen >= self.block_nr {
                    break;
                }
                let st = self.block_status(base, self.block).load(Ordering::Acquire);
                if st & sys::TP_STATUS_USER == 0 {
                    break;
                }
                blocks_seen += 1;
                let b = self.block(base, self.block);
                // SAFETY: tpacket_hdr_v1 fields inside the block descriptor: num_pkts at
                // 12, offset_to_first_pkt at 16 (blocks are at least a page).
                unsafe {
                    self.left = read_u32(b, 12) as usize;
                    self.off = read_u32(b, 16) as usize;
                }
                self.in_block = true;
            }
            if self.left == 0 {
                self.release(base);
                continue;
            }
            let b = self.block(base, self.block);
            let off = self.off;
            if off < 48 || off + 28 > bs {
                stats.rx_bad_block += 1;
                self.release(base);
                continue;
            }
            // tpacket3_hdr: next_offset 0, snaplen 12, len 16, mac 24 (u16).
            // SAFETY: off + 28 <= block_size was checked above.
            let (next, snap, wire_len, mac) = unsafe {
                (
                    read_u32(b, off) as usize,
                    read_u32(b, off + 12) as usize,
                    read_u32(b, off + 16) as usize,
                    read_u16(b, off + 24) as usize,
                )
            };
            let start = off + mac;
            if start + snap > bs {
                stats.rx_bad_block += 1;
                self.release(base);
                continue;
            }
            // SAFETY: start + snap <= block_size (checked), inside this block, which the
            // kernel handed to us.
            if unsafe { take_frame(b.add(start), snap, wire_len, &mut bufs[n], stats) } {
                n += 1;
            }
            self.left -= 1;
            if self.left == 0 {
                self.release(base);
            } else if next == 0 {
                stats.rx_bad_block += 1;
                self.release(base);
            } else {
                self.off = off + next;
            }
        }
        n
    }
}

/// V2 RX: one slot per frame, status in the slot's `tpacket2_hdr`.
fn frames_rx_burst(
    ring: &mut FrameRing,
    bufs: &mut [PacketBuf],
    stats: &mut AfPacketStats,
) -> usize {
    let fs = ring.frame_size;
    let mut n = 0;
    // Bounded: each step consumes one slot, and at most frame_nr slots can be ready.
    let mut seen = 0;
    while n < bufs.len() && seen < ring.frame_nr {
        let f = ring.frame();
        let status = ring.status(f, 0);
        if status.load(Ordering::Acquire) & sys::TP_STATUS_USER == 0 {
            break;
        }
        seen += 1;
        // tpacket2_hdr: status 0, len 4, snaplen 8, mac 12 (u16); 32 bytes in all.
        // SAFETY: frame_size >= 62 > 14 (checked at open), so the fields lie in the slot.
        let (wire_len, snap, mac) = unsafe {
            (
                read_u32(f, 4) as usize,
                read_u32(f, 8) as usize,
                read_u16(f, 12) as usize,
            )
        };
        if mac < V2_DATA_OFF || mac + snap > fs {
            stats.rx_bad_frame += 1;
        } else {
            // SAFETY: mac + snap <= frame_size (checked): inside this slot, which the
            // kernel handed to us with TP_STATUS_USER.
            if unsafe { take_frame(f.add(mac), snap, wire_len, &mut bufs[n], stats) } {
                n += 1;
            }
        }
        // Give the slot back only after its bytes were copied.
        status.store(sys::TP_STATUS_KERNEL, Ordering::Release);
        ring.advance();
    }
    n
}

impl BurstIo for AfPacketPort {
    fn layer(&self) -> Layer {
        Layer::Ethernet
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let base = self.rx_map.ptr;
        Ok(match &mut self.rx {
            Rx::Blocks(b) => b.rx_burst(base, bufs, &mut self.stats),
            Rx::Frames(r) => frames_rx_burst(r, bufs, &mut self.stats),
        })
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let cap = self.tx.ring.frame_size - self.tx.data_off;
        let mut w = 0;
        for i in 0..bufs.len() {
            let len = bufs[i].len();
            if !(ETH_HLEN..=cap).contains(&len) {
                self.stats.tx_bad_len += 1;
                continue;
            }
            let frame = self.tx.ring.frame();
            let status = self.tx.ring.status(frame, self.tx.status_off);
            let st = status.load(Ordering::Acquire);
            if st != sys::TP_STATUS_AVAILABLE && st != sys::TP_STATUS_WRONG_FORMAT {
                self.stats.tx_ring_full += 1;
                break;
            }
            // SAFETY: the slot is ours (status AVAILABLE); data_off + len <= frame_size.
            unsafe {
                ptr::copy_nonoverlapping(bufs[i].data().as_ptr(), frame.add(self.tx.data_off), len);
                ptr::write_unaligned(frame.add(self.tx.len_off) as *mut u32, len as u32);
                if self.tx.version == 3 {
                    // tp_next_offset must be 0: fixed-size TX slots.
                    ptr::write_unaligned(frame as *mut u32, 0);
                }
            }
            status.store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx.ring.advance();
            bufs.swap(w, i);
            w += 1;
        }
        if w > 0 {
            let fd = self
                .tx_fd
                .as_ref()
                .map_or(self.fd.as_raw_fd(), |f| f.as_raw_fd());
            // SAFETY: a zero-length send with no buffer just kicks the TX ring.
            let r = unsafe { libc::send(fd, ptr::null(), 0, libc::MSG_DONTWAIT) };
            if r < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    // Queued frames stay marked and leave with the next flush.
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {}
                    _ => self.stats.tx_flush_error += 1,
                }
            }
        }
        Ok(w)
    }

    fn name(&self) -> &str {
        &self.label
    }

    /// The RX socket: with a ring, poll(2) reports it readable once the kernel handed a
    /// V2 frame or a V3 block (full, or retired after `rx_block_timeout_ms`) to us.
    fn wait_fds(&self, out: &mut Vec<RawFd>) -> bool {
        out.push(self.fd.as_raw_fd());
        true
    }
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // Unmap before the descriptors close (field order would do it too; be explicit).
        self.tx_map.take();
    }
}

/// Index of interface `name`.
pub fn interface_index(name: &str) -> io::Result<u32> {
    sys::if_index(name).map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))
}

/// MAC address of interface `name`.
pub fn interface_mac(name: &str) -> io::Result<[u8; 6]> {
    sys::if_mac(name).map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))
}

// <linux/neighbour.h>
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80; // REACHABLE STALE DELAY PROBE PERMANENT
const RTM_GETNEIGH: u16 = 30;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// Looks `ip` up in the kernel neighbour table of `interface`, triggering resolution if
/// needed (a UDP datagram to the discard port, RFC 863, makes the kernel ARP / ND for
/// it) and waiting at most `timeout`.
pub fn resolve_neighbor(interface: &str, ip: IpAddr, timeout: Duration) -> io::Result<[u8; 6]> {
    let ifindex = interface_index(interface)?;
    if let Some(mac) = neighbor_lookup(ifindex, ip)? {
        return Ok(mac);
    }
    let deadline = Instant::now() + timeout;
    let trigger = || -> io::Result<()> {
        let sock = std::net::UdpSocket::bind(if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        let name = interface.as_bytes();
        // SAFETY: SO_BINDTODEVICE reads `name.len()` bytes from `name`.
        sys::cvt(unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr() as *const libc::c_void,
                name.len() as libc::socklen_t,
            )
        })?;
        sock.connect(SocketAddr::new(ip, 9))?;
        // A refused or unreachable send still started resolution; ignore its error.
        let _ = sock.send(&[]);
        Ok(())
    };
    trigger()?;
    let mut retriggered = false;
    while Instant::now() < deadline {
        if let Some(mac) = neighbor_lookup(ifindex, ip)? {
            return Ok(mac);
        }
        if !retriggered && deadline.saturating_duration_since(Instant::now()) < timeout / 2 {
            retriggered = true;
            let _ = trigger();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no neighbour entry for {ip} on {interface} within {timeout:?}"),
    ))
}

/// One RTM_GETNEIGH dump of `ip`'s family, searched for `ip` on `ifindex`.
fn neighbor_lookup(ifindex: u32, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
    let fd = sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    // nlmsghdr (16) + ndmsg (12).
    let mut req = [0u8; 28];
    req[0..4].copy_from_slice(&28u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    // SAFETY: sends the 28 request bytes to the kernel (the default destination of an
    // unbound netlink socket via sendto with a zeroed sockaddr_nl).
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `req` and `kernel` are valid for the stated lengths.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr() as *const libc::c_void,
            req.len(),
            0,
            &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let want: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut found = None;
    // Bounded: a dump ends with NLMSG_DONE; cap the reads anyway.
    for _ in 0..1024 {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = buf.get(..n as usize).unwrap_or(&[]);
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes([msgs[0], msgs[1], msgs[2], msgs[3]]) as usize;
            let ty = u16::from_ne_bytes([msgs[4], msgs[5]]);
            if len < 16 || len > msgs.len() {
                return Ok(found);
            }
            if ty == NLMSG_DONE || ty == NLMSG_ERROR {
                return Ok(found);
            }
            if ty == libc::RTM_NEWNEIGH {
                if let Some(mac) = parse_neigh(&msgs[16..len], ifindex, &want) {
                    found = Some(mac);
                }
            }
            let step = (len + 3) & !3;
            msgs = msgs.get(step..).unwrap_or(&[]);
        }
    }
    Ok(found)
}

/// An ndmsg + attributes: the MAC if it is `want` on `ifindex` in a usable state.
fn parse_neigh(m: &[u8], ifindex: u32, want: &[u8]) -> Option<[u8; 6]> {
    let idx = i32::from_ne_bytes(m.get(4..8)?.try_into().ok()?);
    let state = u16::from_ne_bytes(m.get(8..10)?.try_into().ok()?);
    if idx != ifindex as i32 || state & NUD_USABLE == 0 {
        return None;
    }
    let mut attrs = m.get(12..)?;
    let (mut dst_ok, mut mac) = (false, None);
    while attrs.len() >= 4 {
        let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let aty = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if alen < 4 || alen > attrs.len() {
            break;
        }
        let val = &attrs[4..alen];
        if aty == NDA_DST && val == want {
            dst_ok = true;
        } else if aty == NDA_LLADDR && val.len() == 6 {
            mac = val.try_into().ok();
        }
        attrs = attrs.get((alen + 3) & !3..).unwrap_or(&[]);
    }
    if dst_ok {
        mac
    } else {
        None
    }
}

/// Sockets that keep the host stack quiet about traffic only we handle: with the
/// afpacket backend the kernel also sees our UDP-4500 and ESP packets, and without a
/// listener it would answer each with ICMP port / protocol unreachable. A bound UDP
/// socket and a raw ESP socket make the kernel deliver instead of complaining, and their
/// drop-all classic BPF filters discard the copies at once.
pub struct KernelShield {
    _socks: Vec<OwnedFd>,
}

impl KernelShield {
    /// Claims the UDP port (if given) and, with `esp`, IP protocol 50 for IPv4 (and IPv6
    /// when the host has it).
    pub fn open(udp_port: Option<(IpAddr, u16)>, esp: bool) -> io::Result<KernelShield> {
        let mut socks = Vec::new();
        if let Some((ip, port)) = udp_port {
            let domain = if ip.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let fd = sys::socket(domain, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
            // Filter first, then bind: nothing is ever queued.
            sys::attach_drop_all_filter(fd.as_raw_fd())?;
            let one: libc::c_int = 1;
            if ip.is_ipv6() {
                sys::setsockopt(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)?;
            }
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = sys::sockaddr_from(&SocketAddr::new(ip, port), &mut st);
            // SAFETY: `st` holds a socket address of `len` bytes.
            sys::cvt(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &st as *const libc::sockaddr_storage as *const libc::sockaddr,
                    len,
                )
            })
            .map_err(|e| io::Error::new(e.kind(), format!("shield: bind {ip}:{port}: {e}")))?;
            socks.push(fd);
        }
        if esp {
            let fd = sys::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ESP)?;
            sys::attach_drop_all_filter(fd.as_raw_fd())?;
            socks.push(fd);
            if let Ok(fd6) = sys::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ESP) {
                sys::attach_drop_all_filter(fd6.as_raw_fd())?;
                socks.push(fd6);
            }
        }
        Ok(KernelShield { _socks: socks })
    }
}
