//! The receive side of the UDP port: `recvmmsg` straight into the caller's buffers, or
//! into GRO staging split into them, and IKE datagrams longer than a packet buffer.
//!
//! Large IKE (RFC 7296 2: at least 1280 bytes must be accepted and implementations
//! SHOULD accept 3000; certificates need more) arrives on the NAT-T port behind the
//! RFC 3948 non-ESP marker like any other IKE, but does not fit a `MAX_FRAME` packet
//! buffer. GRO staging slots hold any datagram. Without GRO, every `recvmmsg` message
//! has a second iovec into its own slot of an overflow area, so a datagram longer than
//! the buffer continues there instead of being cut; the area is an anonymous mapping
//! whose pages the kernel allocates only when such a datagram lands in them. A long
//! datagram that starts with the marker is copied (marker stripped) into one of the few
//! large buffers of the control plane's large punt queue; anything else that long is
//! dropped and counted (`drop_oversize`), as is large IKE when every large buffer is
//! taken (`drop_punt_large_full`). The worker collects these counts once per burst
//! (`BurstIo::take_counts`).

use super::{GroMsg, UdpPort, UdpStats, CMSG_WORDS, GRO_SLOTS, GRO_SLOT_BYTES, MAX_BURST, UNSPEC4};
use crate::buf::{PacketBuf, LARGE_FRAME, MAX_FRAME};
use crate::channel::Channel;
use crate::io::sys;
use crate::natt::{self, Udp4500};
use shared::counters::{Counter, LocalCounters};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::Arc;

/// Bytes of a datagram that can land in one overflow slot: with the `MAX_FRAME` bytes
/// in the packet buffer, any UDP payload.
const OVERFLOW_SLOT: usize = LARGE_FRAME - MAX_FRAME;

/// The overflow area of the non-GRO receive path: `MAX_BURST` slots of `OVERFLOW_SLOT`
/// bytes in an anonymous private mapping (MAP_NORESERVE: untouched pages cost nothing).
pub(super) struct Overflow {
    ptr: *mut u8,
    len: usize,
}

impl Overflow {
    pub(super) fn map() -> io::Result<Overflow> {
        let len = MAX_BURST * OVERFLOW_SLOT;
        // SAFETY: an anonymous private mapping with no address hint; the result is
        // checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Overflow {
            ptr: p as *mut u8,
            len,
        })
    }

    /// Slot `j` as (start, length) for an iovec.
    fn slot(&self, j: usize) -> Option<(*mut u8, usize)> {
        (j < MAX_BURST).then(|| {
            // SAFETY: j < MAX_BURST, so the slot lies inside the mapping.
            (unsafe { self.ptr.add(j * OVERFLOW_SLOT) }, OVERFLOW_SLOT)
        })
    }

    /// The first `len` bytes of slot `j`, written by the last receive.
    fn filled(&self, j: usize, len: usize) -> Option<&[u8]> {
        if j >= MAX_BURST || len > OVERFLOW_SLOT {
            return None;
        }
        // SAFETY: in bounds (checked); the mapping lives as long as `self` and the
        // kernel wrote these bytes during the recvmmsg that just returned.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(j * OVERFLOW_SLOT), len) })
    }
}

impl Drop for Overflow {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// IKE datagrams longer than a packet buffer on their way to the control plane, and the
/// counts the worker collects.
pub(super) struct LargeRx {
    queue: Option<Arc<Channel>>,
    /// Filled, then exchanged for an empty buffer of the same size in `queue`.
    buf: PacketBuf,
    /// Something went to `queue` in this burst: notify its consumer once.
    sent: bool,
    punted: u64,
    full: u64,
    oversize: u64,
}

impl LargeRx {
    pub(super) fn new() -> LargeRx {
        LargeRx {
            queue: None,
            buf: PacketBuf::new(),
            sent: false,
            punted: 0,
            full: 0,
            oversize: 0,
        }
    }

    /// Start-up: from now on large IKE goes to `queue` (its buffers are `LARGE_FRAME`).
    pub(super) fn attach(&mut self, queue: Arc<Channel>) {
        self.buf = PacketBuf::with_frame(LARGE_FRAME);
        self.queue = Some(queue);
    }

    /// A datagram of `head` then `tail` (longer than `MAX_FRAME`) from `src` to `dst`.
    fn take(
        &mut self,
        head: &[u8],
        tail: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        stats: &mut UdpStats,
    ) {
        let Some(q) = &self.queue else {
            return self.refuse(stats);
        };
        if natt::classify(head) != Udp4500::Ike {
            return self.refuse(stats);
        }
        let ike = head.get(natt::NON_ESP_MARKER.len()..).unwrap_or_default();
        if !self.buf.fill_parts(ike, tail) {
            return self.refuse(stats);
        }
        self.buf.meta.src = src;
        self.buf.meta.dst = dst;
        if q.send_swap(&mut self.buf) {
            self.punted += 1;
            self.sent = true;
        } else {
            self.buf.reset();
            self.full += 1;
        }
    }

    /// A datagram too long for a packet buffer that is not large IKE: dropped.
    fn refuse(&mut self, stats: &mut UdpStats) {
        stats.rx_oversize += 1;
        self.oversize += 1;
    }

    fn notify(&mut self) {
        if std::mem::take(&mut self.sent) {
            if let Some(q) = &self.queue {
                q.notify();
            }
        }
    }

    #[inline]
    pub(super) fn take_counts(&mut self, cnt: &mut LocalCounters) {
        if self.punted | self.full | self.oversize == 0 {
            return;
        }
        cnt.add(Counter::PuntIkeLarge, mem::take(&mut self.punted));
        cnt.add(Counter::DropPuntLargeFull, mem::take(&mut self.full));
        cnt.add(Counter::DropOversize, mem::take(&mut self.oversize));
    }
}

impl UdpPort {
    /// Copies segments waiting in GRO staging into `bufs`; returns how many.
    fn drain_gro(&mut self, bufs: &mut [PacketBuf]) -> usize {
        let mut n = 0;
        while self.gro_cur < self.gro_count && n < bufs.len() {
            let Some(msg) = self.gro_msgs.get(self.gro_cur).copied() else {
                break;
            };
            // No UDP_GRO cmsg: one plain datagram (possibly empty).
            let seg = if msg.seg == 0 || msg.seg > msg.len {
                msg.len
            } else {
                msg.seg
            };
            let take = seg.min(msg.len.saturating_sub(self.gro_off));
            let base = self.gro_cur * GRO_SLOT_BYTES + self.gro_off;
            if take > MAX_FRAME {
                let d = self.gro_stage.get(base..base + take).unwrap_or_default();
                self.large.take(d, &[], msg.src, msg.dst, &mut self.stats);
            } else if let (Some(src), Some(b)) =
                (self.gro_stage.get(base..base + take), bufs.get_mut(n))
            {
                b.rx_space()[..take].copy_from_slice(src);
                b.set_len(take);
                b.meta.src = msg.src;
                b.meta.dst = msg.dst;
                n += 1;
            }
            self.gro_off += take;
            if self.gro_off >= msg.len {
                self.gro_cur += 1;
                self.gro_off = 0;
            }
        }
        n
    }

    /// Points message `j` at `base..base+len` with room for the name and control data,
    /// and, with `overflow`, at slot `j` of the overflow area behind it (a datagram
    /// longer than `len` continues there instead of being cut).
    fn prepare_rx(&mut self, j: usize, base: *mut u8, len: usize, overflow: bool) {
        let tail = match (&self.overflow, overflow) {
            (Some(o), true) => o.slot(j),
            _ => None,
        };
        self.rx_iovs[j] = [
            libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: len,
            },
            libc::iovec {
                iov_base: tail.map_or(std::ptr::null_mut(), |(p, _)| p as *mut libc::c_void),
                iov_len: tail.map_or(0, |(_, l)| l),
            },
        ];
        let h = &mut self.hdrs[j];
        h.msg_hdr.msg_name = &mut self.names[j] as *mut libc::sockaddr_storage as *mut libc::c_void;
        h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_iov = self.rx_iovs[j].as_mut_ptr();
        h.msg_hdr.msg_iovlen = if tail.is_some() { 2 } else { 1 };
        h.msg_hdr.msg_control = self.ctrl[j].as_mut_ptr() as *mut libc::c_void;
        h.msg_hdr.msg_controllen = mem::size_of::<[u64; CMSG_WORDS]>() as _;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    /// One `recvmmsg` on socket `s` for `count` prepared messages; `Ok(0)` when empty.
    fn recv(&mut self, s: usize, count: usize) -> io::Result<usize> {
        let fd = self.socks[s].fd.as_raw_fd();
        // SAFETY: hdrs[..count] point at live buffers prepared by `prepare_rx` (caller
        // buffers borrowed for this call, or staging and overflow owned by the port).
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize)
    }

    /// The addresses and GRO segment size of received message `j` on socket `s`.
    fn rx_meta(&self, s: usize, j: usize) -> (SocketAddr, SocketAddr, usize) {
        let sock = &self.socks[s];
        let src = sys::sockaddr_to(&self.names[j]).unwrap_or(UNSPEC4);
        let mut dst = sock.local;
        let mut seg = 0usize;
        let h = &self.hdrs[j].msg_hdr;
        // SAFETY: `h` describes the control buffer the kernel just filled
        // (msg_controllen was updated by recvmmsg); CMSG_* walk it within that length.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let level = (*c).cmsg_level;
                let ty = (*c).cmsg_type;
                let data = libc::CMSG_DATA(c);
                if level == libc::IPPROTO_IP && ty == libc::IP_PKTINFO {
                    let pi = ptr::read_unaligned(data as *const libc::in_pktinfo);
                    let ip = Ipv4Addr::from(pi.ipi_addr.s_addr.to_ne_bytes());
                    dst = SocketAddr::V4(SocketAddrV4::new(ip, sock.local.port()));
                } else if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_PKTINFO {
                    let pi = ptr::read_unaligned(data as *const libc::in6_pktinfo);
                    let ip = Ipv6Addr::from(pi.ipi6_addr.s6_addr);
                    dst = SocketAddr::V6(SocketAddrV6::new(ip, sock.local.port(), 0, 0));
                } else if level == libc::SOL_UDP && ty == sys::UDP_GRO {
                    let v = ptr::read_unaligned(data as *const libc::c_int);
                    seg = usize::try_from(v).unwrap_or(0);
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        (src, dst, seg)
    }

    /// Receives straight into the caller's buffers (no GRO on this socket).
    fn rx_direct(&mut self, s: usize, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let count = bufs.len().min(MAX_BURST);
        for (j, b) in bufs.iter_mut().take(count).enumerate() {
            let space = b.rx_space();
            let (p, l) = (space.as_mut_ptr(), space.len());
            self.prepare_rx(j, p, l, true);
        }
        let got = self.recv(s, count)?;
        let mut w = 0;
        for j in 0..got {
            let h = self.hdrs[j];
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.large.refuse(&mut self.stats);
                continue;
            }
            let (src, dst, _) = self.rx_meta(s, j);
            let len = h.msg_len as usize;
            if len > MAX_FRAME {
                // Its first MAX_FRAME bytes in the buffer, the rest in overflow slot j.
                let tail = self
                    .overflow
                    .as_ref()
                    .and_then(|o| o.filled(j, len - MAX_FRAME));
                match tail {
                    Some(tail) => {
                        let head = &bufs[j].rx_space()[..MAX_FRAME];
                        self.large.take(head, tail, src, dst, &mut self.stats);
                    }
                    None => self.large.refuse(&mut self.stats),
                }
                continue;
            }
            bufs.swap(w, j);
            let b = &mut bufs[w];
            b.set_len(h.msg_len as usize);
            b.meta.src = src;
            b.meta.dst = dst;
            w += 1;
        }
        Ok(w)
    }

    /// Receives super-datagrams into staging and splits them into `bufs`.
    fn rx_gro(&mut self, s: usize, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let count = bufs.len().min(GRO_SLOTS);
        let stage = self.gro_stage.as_mut_ptr();
        for j in 0..count {
            // SAFETY: j < GRO_SLOTS and the staging area holds GRO_SLOTS slots.
            let p = unsafe { stage.add(j * GRO_SLOT_BYTES) };
            self.prepare_rx(j, p, GRO_SLOT_BYTES, false);
        }
        let got = self.recv(s, count)?;
        let mut kept = 0;
        for j in 0..got {
            let h = self.hdrs[j];
            let (src, dst, seg) = self.rx_meta(s, j);
            let len = h.msg_len as usize;
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.large.refuse(&mut self.stats);
                continue;
            }
            if kept != j {
                self.gro_stage.copy_within(
                    j * GRO_SLOT_BYTES..j * GRO_SLOT_BYTES + len,
                    kept * GRO_SLOT_BYTES,
                );
            }
            if seg > 0 && len > seg {
                self.stats.rx_coalesced += 1;
            }
            self.gro_msgs[kept] = GroMsg { len, seg, src, dst };
            kept += 1;
        }
        self.gro_count = kept;
        self.gro_cur = 0;
        self.gro_off = 0;
        Ok(self.drain_gro(bufs))
    }

    /// `rx_burst`: staged GRO segments first, then one receive per socket, round robin.
    pub(super) fn receive(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let r = self.receive_sockets(bufs);
        // Once per burst that punted a large datagram (rare): wake the control plane.
        self.large.notify();
        r
    }

    fn receive_sockets(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut n = self.drain_gro(bufs);
        let nsock = self.socks.len();
        let first = self.next_rx;
        self.next_rx = (self.next_rx + 1) % nsock;
        for k in 0..nsock {
            if n >= bufs.len() || self.gro_cur < self.gro_count {
                break;
            }
            let s = (first + k) % nsock;
            let r = if self.socks[s].gro {
                self.rx_gro(s, &mut bufs[n..])
            } else {
                self.rx_direct(s, &mut bufs[n..])
            };
            match r {
                Ok(got) => n += got,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }
}
