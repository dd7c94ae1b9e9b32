//! The Ethernet port: an AF_PACKET socket with memory-mapped rings.
//!
//! RX is a TPACKET_V3 ring: the kernel fills whole blocks of variable-size frames and hands
//! a block over by setting `TP_STATUS_USER`; we walk its frames, copy them into the
//! caller's buffers and give the block back. TX is a TPACKET_V3 ring on the same socket
//! when the kernel accepts one (Linux >= 4.11), else a TPACKET_V2 ring on a second socket
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
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where TX data starts in a V2 frame.
const V2_DATA_OFF: usize = 32;

/// AF_PACKET port configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface to bind to.
    pub interface: String,
    /// Ring block size in bytes (a multiple of the page size and of `frame_size`).
    pub block_size: usize,
    /// Blocks per ring (RX and TX each).
    pub block_count: usize,
    /// TX frame slot size (a multiple of 16, at least the header plus the largest frame).
    pub frame_size: usize,
    /// Join this PACKET_FANOUT (hash) group, for several workers on one interface.
    pub fanout: Option<u16>,
    /// Bypass the qdisc layer on transmit.
    pub qdisc_bypass: bool,
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
        }
    }
}

/// Drop counters of an AF_PACKET port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfPacketStats {
    /// Received frames longer than `MAX_FRAME` (or cut short by the ring), dropped.
    pub rx_oversize: u64,
    /// RX blocks whose frame chain did not fit the block (skipped whole).
    pub rx_bad_block: u64,
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

struct TxRing {
    /// Start of the TX ring inside its mapping.
    base: *mut u8,
    block_size: usize,
    frame_size: usize,
    frames_per_block: usize,
    frame_nr: usize,
    head: usize,
    data_off: usize,
    /// Offsets of `tp_status` and `tp_len` in the frame header.
    status_off: usize,
    len_off: usize,
    version: u8,
}

impl TxRing {
    fn frame(&self, i: usize) -> *mut u8 {
        let off = (i / self.frames_per_block) * self.block_size
            + (i % self.frames_per_block) * self.frame_size;
        // SAFETY: i < frame_nr, so the offset lies inside the ring (block_nr blocks of
        // block_size bytes, frames_per_block frames each).
        unsafe { self.base.add(off) }
    }

    fn status(&self, frame: *mut u8) -> &AtomicU32 {
        // SAFETY: tp_status is a 4-byte-aligned u32 inside the frame header that the
        // kernel and we hand back and forth; atomics give the ordering the ring needs.
        unsafe { &*(frame.add(self.status_off) as *const AtomicU32) }
    }
}

/// An AF_PACKET port bound to one interface (see the module doc).
pub struct AfPacketPort {
    fd: OwnedFd,
    /// A second socket holding the V2 TX ring on kernels without V3 TX.
    tx_fd: Option<OwnedFd>,
    rx_map: Mmap,
    tx_map: Option<Mmap>,
    block_size: usize,
    block_nr: usize,
    rx_block: usize,
    /// Walk state inside the current RX block: next frame offset and frames left.
    rx_off: usize,
    rx_left: usize,
    rx_in_block: bool,
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

impl AfPacketPort {
    /// Opens the rings on `cfg.interface` (needs CAP_NET_RAW).
    pub fn open(cfg: &AfPacketConfig) -> io::Result<AfPacketPort> {
        let page = 4096usize;
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if cfg.block_size == 0 || !cfg.block_size.is_multiple_of(page) {
            return Err(bad(format!(
                "afpacket: block_size {} must be a positive multiple of {page}",
                cfg.block_size
            )));
        }
        if cfg.frame_size < V3_DATA_OFF + ETH_HLEN
            || !cfg.frame_size.is_multiple_of(sys::TPACKET_ALIGNMENT)
            || !cfg.block_size.is_multiple_of(cfg.frame_size)
        {
            return Err(bad(format!(
                "afpacket: frame_size {} must be a multiple of 16 dividing block_size",
                cfg.frame_size
            )));
        }
        if cfg.block_count == 0 || cfg.block_count > 1 << 16 {
            return Err(bad("afpacket: block_count must be 1..=65536".into()));
        }
        let ifindex = interface_index(&cfg.interface)?;
        let fd = packet_socket()?;
        let raw = fd.as_raw_fd();
        sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V3)?;
        let one: libc::c_int = 1;
        // Before the rings: the kernel refuses PACKET_LOSS once a ring exists.
        sys::setsockopt(raw, libc::SOL_PACKET, PACKET_LOSS, &one)?;
        let fpb = cfg.block_size / cfg.frame_size;
        let frame_nr = fpb * cfg.block_count;
        let rx_req = sys::TpacketReq3 {
            block_size: cfg.block_size as u32,
            block_nr: cfg.block_count as u32,
            frame_size: cfg.frame_size as u32,
            frame_nr: frame_nr as u32,
            // Retire a partly filled block after 1 ms so a trickle is not held back.
            retire_blk_tov: 1,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_RX_RING, &rx_req)
            .map_err(|e| io::Error::new(e.kind(), format!("afpacket: PACKET_RX_RING: {e}")))?;
        let tx_req = sys::TpacketReq3 {
            retire_blk_tov: 0,
            ..rx_req
        };
        let rx_len = cfg.block_size * cfg.block_count;
        let v3_tx = sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_TX_RING, &tx_req).is_ok();
        if cfg.qdisc_bypass {
            sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one)?;
        }
        // Best effort: kernels before 4.20 lack it and show our own frames to the ring.
        let _ = sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, &one);
        let (rx_map, tx_map, tx_fd, tx) = if v3_tx {
            let map = Mmap::map(raw, rx_len * 2)?;
            // SAFETY: the TX ring follows the RX ring in the same mapping.
            let base = unsafe { map.ptr.add(rx_len) };
            let tx = TxRing {
                base,
                block_size: cfg.block_size,
                frame_size: cfg.frame_size,
                frames_per_block: fpb,
                frame_nr,
                head: 0,
                data_off: V3_DATA_OFF,
                status_off: 20,
                len_off: 16,
                version: 3,
            };
            (map, None, None, tx)
        } else {
            let map = Mmap::map(raw, rx_len)?;
            let tfd = packet_socket()?;
            let traw = tfd.as_raw_fd();
            sys::setsockopt(
                traw,
                libc::SOL_PACKET,
                sys::PACKET_VERSION,
                &sys::TPACKET_V2,
            )?;
            let req = sys::TpacketReq {
                block_size: cfg.block_size as u32,
                block_nr: cfg.block_count as u32,
                frame_size: cfg.frame_size as u32,
                frame_nr: frame_nr as u32,
            };
            sys::setsockopt(traw, libc::SOL_PACKET, sys::PACKET_TX_RING, &req)
                .map_err(|e| io::Error::new(e.kind(), format!("afpacket: PACKET_TX_RING: {e}")))?;
            if cfg.qdisc_bypass {
                sys::setsockopt(traw, libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one)?;
            }
            let tmap = Mmap::map(traw, rx_len)?;
            let tx = TxRing {
                base: tmap.ptr,
                block_size: cfg.block_size,
                frame_size: cfg.frame_size,
                frames_per_block: fpb,
                frame_nr,
                head: 0,
                data_off: V2_DATA_OFF,
                status_off: 0,
                len_off: 4,
                version: 2,
            };
            // TX only: protocol 0 receives nothing.
            bind_packet(traw, ifindex, 0)?;
            sys::set_nonblocking(traw)?;
            (map, Some(tmap), Some(tfd), tx)
        };
        bind_packet(raw, ifindex, ETH_P_ALL)?;
        sys::set_nonblocking(raw)?;
        if let Some(group) = cfg.fanout {
            let arg: u32 = u32::from(group) | (sys::PACKET_FANOUT_HASH << 16);
            sys::setsockopt(raw, libc::SOL_PACKET, sys::PACKET_FANOUT, &arg)
                .map_err(|e| io::Error::new(e.kind(), format!("afpacket: PACKET_FANOUT: {e}")))?;
        }
        Ok(AfPacketPort {
            fd,
            tx_fd,
            rx_map,
            tx_map,
            block_size: cfg.block_size,
            block_nr: cfg.block_count,
            rx_block: 0,
            rx_off: 0,
            rx_left: 0,
            rx_in_block: false,
            tx,
            label: format!("afpacket:{}", cfg.interface),
            stats: AfPacketStats::default(),
        })
    }

    /// The TPACKET version of the TX ring: 3 (same socket as RX) or 2 (second socket).
    pub fn tx_version(&self) -> u8 {
        self.tx.version
    }

    /// Drop counters.
    pub fn stats(&self) -> AfPacketStats {
        self.stats
    }

    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: i < block_nr, so the block lies inside the RX mapping.
        unsafe { self.rx_map.ptr.add(i * self.block_size) }
    }

    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block_status is the 4-byte-aligned u32 at offset 8 of
        // `struct tpacket_block_desc` (version, offset_to_priv, then tpacket_hdr_v1).
        unsafe { &*(self.block(i).add(8) as *const AtomicU32) }
    }

    fn read_u32(&self, block: *mut u8, off: usize) -> u32 {
        // SAFETY: callers pass offsets checked against block_size; the kernel no longer
        // writes a block it handed to us (TP_STATUS_USER was read with Acquire).
        unsafe { ptr::read_unaligned(block.add(off) as *const u32) }
    }

    fn release_block(&mut self) {
        self.block_status(self.rx_block)
            .store(sys::TP_STATUS_KERNEL, Ordering::Release);
        self.rx_block = (self.rx_block + 1) % self.block_nr;
        self.rx_in_block = false;
    }
}

impl BurstIo for AfPacketPort {
    fn layer(&self) -> Layer {
        Layer::Ethernet
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let bs = self.block_size;
        let mut n = 0;
        // Bounded: each step delivers a frame, skips one, or releases a block, and at
        // most block_nr blocks can be ready.
        let mut blocks_seen = 0;
        while n < bufs.len() {
            if !self.rx_in_block {
                if blocks_seen >= self.block_nr {
                    break;
                }
                let st = self.block_status(self.rx_block).load(Ordering::Acquire);
                if st & sys::TP_STATUS_USER == 0 {
                    break;
                }
                blocks_seen += 1;
                let b = self.block(self.rx_block);
                // tpacket_hdr_v1: num_pkts at 12, offset_to_first_pkt at 16.
                self.rx_left = self.read_u32(b, 12) as usize;
                self.rx_off = self.read_u32(b, 16) as usize;
                self.rx_in_block = true;
            }
            if self.rx_left == 0 {
                self.release_block();
                continue;
            }
            let b = self.block(self.rx_block);
            let off = self.rx_off;
            if off < 48 || off + 28 > bs {
                self.stats.rx_bad_block += 1;
                self.release_block();
                continue;
            }
            // tpacket3_hdr: next_offset 0, snaplen 12, len 16, mac 24 (u16).
            let next = self.read_u32(b, off) as usize;
            let snap = self.read_u32(b, off + 12) as usize;
            let wire_len = self.read_u32(b, off + 16) as usize;
            // SAFETY: off + 26 <= bs was checked above.
            let mac = unsafe { ptr::read_unaligned(b.add(off + 24) as *const u16) } as usize;
            let start = off + mac;
            if start + snap > bs {
                self.stats.rx_bad_block += 1;
                self.release_block();
                continue;
            }
            if snap > MAX_FRAME || snap < wire_len {
                self.stats.rx_oversize += 1;
            } else {
                let buf = &mut bufs[n];
                // SAFETY: start + snap <= block_size (checked), inside this block, which
                // the kernel handed to us.
                let src = unsafe { std::slice::from_raw_parts(b.add(start), snap) };
                buf.rx_space()[..snap].copy_from_slice(src);
                buf.set_len(snap);
                n += 1;
            }
            self.rx_left -= 1;
            if self.rx_left == 0 {
                self.release_block();
            } else if next == 0 {
                self.stats.rx_bad_block += 1;
                self.release_block();
            } else {
                self.rx_off = off + next;
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let cap = self.tx.frame_size - self.tx.data_off;
        let mut w = 0;
        for i in 0..bufs.len() {
            let len = bufs[i].len();
            if !(ETH_HLEN..=cap).contains(&len) {
                self.stats.tx_bad_len += 1;
                continue;
            }
            let frame = self.tx.frame(self.tx.head);
            let st = self.tx.status(frame).load(Ordering::Acquire);
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
            self.tx
                .status(frame)
                .store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx.head = (self.tx.head + 1) % self.tx.frame_nr;
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
