//! The unprivileged datagram port: kernel UDP sockets driven with `recvmmsg`/`sendmmsg`,
//! UDP GSO (`UDP_SEGMENT`) on transmit and UDP GRO on receive.
//!
//! One non-blocking socket per bound address. Received datagrams carry the remote address
//! in `meta.src` and the local address they arrived at in `meta.dst` (for a wildcard bind,
//! the header destination from `IP_PKTINFO`/`IPV6_PKTINFO`). On transmit `meta.src`
//! selects the socket: an exact bound address, else a wildcard socket of the same family
//! and port, with the source address set per datagram by a pktinfo control message.
//!
//! Per burst: at most one `recvmmsg` per socket, and one `sendmmsg` per socket (more only
//! when the kernel stops part-way, each extra call skipping a failed message). Consecutive
//! datagrams with the same addresses and size (the last may be shorter) are copied into a
//! staging area allocated at open and sent as one GSO super-datagram; with GRO the kernel
//! hands us coalesced super-datagrams, which are split into the caller's buffers, the rest
//! carried to the next burst. A kernel without GSO or GRO (or a route that refuses them)
//! is detected, remembered, and served datagram by datagram.
//!
//! IKE longer than a packet buffer (behind the RFC 3948 non-ESP marker) goes to the
//! control plane through the large punt queue; see `rx`. On transmit, a buffer longer than
//! `MAX_FRAME` (large IKE from the control plane) is always sent as a datagram of its own.

mod rx;

use super::sys;
use super::{BurstIo, Layer};
use crate::buf::{PacketBuf, BUF_SIZE, MAX_FRAME};
use crate::channel::Channel;
use shared::counters::LocalCounters;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::Arc;

/// Most packets one burst handles; longer bursts are served up to this count.
pub const MAX_BURST: usize = 256;
/// Coalesced super-datagrams received per GRO call.
const GRO_SLOTS: usize = 8;
/// Room for one super-datagram (the IP length field bounds it).
const GRO_SLOT_BYTES: usize = 65536;
/// The kernel's UDP_MAX_SEGMENTS.
const MAX_GSO_SEGMENTS: usize = 64;
/// Largest GSO payload: IPv4 total length 65535 - 20 (IP) - 8 (UDP), and a margin for options.
const MAX_GSO_BYTES: usize = 65_000;
/// Control-message room per message (pktinfo + GRO/GSO size, with alignment).
const CMSG_WORDS: usize = 8;

/// Datagram port configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Local addresses; an unspecified IP (`0.0.0.0`, `::`) binds the wildcard and the
    /// source address is chosen per packet.
    pub bind: Vec<SocketAddr>,
    /// Send runs of equal-size datagrams as one `UDP_SEGMENT` super-datagram.
    pub gso: bool,
    /// Ask the kernel for coalesced receives (`UDP_GRO`).
    pub gro: bool,
    /// `SO_REUSEPORT`, for several workers on one address.
    pub reuse_port: bool,
    /// `SO_REUSEADDR`: with it on every socket, a wildcard and specific addresses share
    /// one port on one host (the specific address wins the lookup). The lab runs a
    /// gateway on two loopback addresses and many clients on the wildcard this way.
    pub reuse_addr: bool,
    /// `SO_RCVBUF`/`SO_SNDBUF` in bytes (0 keeps the kernel default).
    pub socket_buffer: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            bind: Vec::new(),
            gso: true,
            gro: true,
            reuse_port: false,
            reuse_addr: false,
            socket_buffer: 4 << 20,
        }
    }
}

/// Drops and fallbacks seen by a port (plain counters: the port is owned by one worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Received datagrams (or GRO segments) longer than `MAX_FRAME` that did not go to
    /// the large punt queue (not IKE, no queue attached, or all its buffers taken).
    pub rx_oversize: u64,
    /// Datagrams the kernel refused as too long (`EMSGSIZE`).
    pub tx_oversize: u64,
    /// Datagrams whose `meta.src` matches no socket (or whose families differ).
    pub tx_no_socket: u64,
    /// Datagrams refused for other reasons (unreachable, permission, ...).
    pub tx_error: u64,
    /// GSO super-datagrams the kernel accepted.
    pub tx_gso_sends: u64,
    /// GRO super-datagrams received that held more than one segment.
    pub rx_coalesced: u64,
    /// Times a GSO send was refused and GSO was narrowed or turned off for a socket.
    pub gso_fallback: u64,
}

struct Sock {
    fd: OwnedFd,
    local: SocketAddr,
    wildcard: bool,
    gso: bool,
    /// Largest segment size GSO is still tried with on this socket (lowered when a route
    /// refuses a size).
    gso_max_seg: usize,
    gro: bool,
}

/// One received super-datagram waiting in staging.
#[derive(Clone, Copy)]
struct GroMsg {
    len: usize,
    seg: usize,
    src: SocketAddr,
    dst: SocketAddr,
}

/// One message of a transmit burst: a single datagram or a GSO run.
#[derive(Clone, Copy, Default)]
struct Group {
    sock: usize,
    first: usize,
    count: usize,
    seg: usize,
}

/// A UDP datagram port (see the module doc).
pub struct UdpPort {
    socks: Vec<Sock>,
    next_rx: usize,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// Receive iovecs per message: the buffer, then its overflow slot.
    rx_iovs: Vec<[libc::iovec; 2]>,
    /// Where datagrams longer than a packet buffer continue (sockets without GRO).
    overflow: Option<rx::Overflow>,
    large: rx::LargeRx,
    names: Vec<libc::sockaddr_storage>,
    ctrl: Vec<[u64; CMSG_WORDS]>,
    gro_stage: Vec<u8>,
    gro_msgs: Vec<GroMsg>,
    gro_count: usize,
    gro_cur: usize,
    gro_off: usize,
    tx_stage: Vec<u8>,
    groups: Vec<Group>,
    order: Vec<usize>,
    sent: Vec<bool>,
    stats: UdpStats,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` point into buffers this port owns or the
// caller lends for one call; they are rewritten before every syscall and never read across
// calls, so moving the port to another thread is sound.
unsafe impl Send for UdpPort {}

const UNSPEC4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

fn same_family(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

impl UdpPort {
    /// Opens one non-blocking socket per bind address.
    pub fn open(cfg: &UdpConfig) -> io::Result<UdpPort> {
        if cfg.bind.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "udp: `bind` needs at least one address",
            ));
        }
        let mut socks = Vec::with_capacity(cfg.bind.len());
        for addr in &cfg.bind {
            socks.push(open_socket(addr, cfg)?);
        }
        // SAFETY: all-zero is a valid mmsghdr/iovec/sockaddr_storage (null pointers, zero
        // lengths); every pointer is set before use.
        let zero_hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let zero_name: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let zero_iov = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        let gro_on = socks.iter().any(|s| s.gro);
        let overflow = if socks.iter().all(|s| s.gro) {
            None
        } else {
            Some(rx::Overflow::map()?)
        };
        Ok(UdpPort {
            socks,
            next_rx: 0,
            hdrs: vec![zero_hdr; MAX_BURST],
            iovs: vec![zero_iov; MAX_BURST],
            rx_iovs: vec![[zero_iov; 2]; MAX_BURST],
            overflow,
            large: rx::LargeRx::new(),
            names: vec![zero_name; MAX_BURST],
            ctrl: vec![[0u64; CMSG_WORDS]; MAX_BURST],
            gro_stage: if gro_on {
                vec![0u8; GRO_SLOTS * GRO_SLOT_BYTES]
            } else {
                Vec::new()
            },
            gro_msgs: vec![
                GroMsg {
                    len: 0,
                    seg: 0,
                    src: UNSPEC4,
                    dst: UNSPEC4,
                };
                GRO_SLOTS
            ],
            gro_count: 0,
            gro_cur: 0,
            gro_off: 0,
            tx_stage: vec![0u8; MAX_BURST * BUF_SIZE],
            groups: vec![Group::default(); MAX_BURST],
            order: vec![0; MAX_BURST],
            sent: vec![false; MAX_BURST],
            stats: UdpStats::default(),
        })
    }

    /// The bound addresses, in configuration order, with the ports the kernel chose for
    /// port 0.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.socks.iter().map(|s| s.local).collect()
    }

    /// Whether any socket sends with GSO (false after the kernel refused it).
    pub fn gso_active(&self) -> bool {
        self.socks.iter().any(|s| s.gso)
    }

    /// Whether any socket receives with GRO.
    pub fn gro_active(&self) -> bool {
        self.socks.iter().any(|s| s.gro)
    }

    /// Drop and fallback counters.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// The socket that sends from `src` to `dst`, and whether the source address must be
    /// set by a pktinfo control message.
    fn pick(&self, src: &SocketAddr, dst: &SocketAddr) -> Option<(usize, bool)> {
        if !same_family(src, dst) {
            return None;
        }
        if let Some(i) = self.socks.iter().position(|s| same_endpoint(&s.local, src)) {
            return Some((i, false));
        }
        let port_ok = |s: &Sock| s.local.port() == src.port() || src.port() == 0;
        if let Some(i) = self
            .socks
            .iter()
            .position(|s| s.wildcard && same_family(&s.local, src) && port_ok(s))
        {
            return Some((i, !src.ip().is_unspecified()));
        }
        if src.ip().is_unspecified() {
            return self
                .socks
                .iter()
                .position(|s| same_family(&s.local, src) && port_ok(s))
                .map(|i| (i, false));
        }
        None
    }

    /// Writes the control messages of group `g` (pktinfo source, GSO size); returns
    /// their length.
    fn build_cmsgs(
        &mut self,
        g: usize,
        src: &SocketAddr,
        pktinfo: bool,
        gso: Option<u16>,
    ) -> usize {
        let buf = &mut self.ctrl[g];
        let base = buf.as_mut_ptr() as *mut u8;
        let cap = mem::size_of::<[u64; CMSG_WORDS]>();
        let mut used = 0usize;
        let mut push = |level: libc::c_int, ty: libc::c_int, data: &[u8]| {
            // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
            let (space, clen) = unsafe {
                (
                    libc::CMSG_SPACE(data.len() as u32) as usize,
                    libc::CMSG_LEN(data.len() as u32) as usize,
                )
            };
            if used + space > cap {
                return;
            }
            // SAFETY: `base + used .. + space` lies inside the 8-byte-aligned control
            // buffer (checked above); the header is written, then its data area, which
            // CMSG_DATA places inside the same `space` bytes.
            unsafe {
                let hdr = base.add(used) as *mut libc::cmsghdr;
                ptr::write_bytes(hdr as *mut u8, 0, space);
                (*hdr).cmsg_len = clen as _;
                (*hdr).cmsg_level = level;
                (*hdr).cmsg_type = ty;
                ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(hdr), data.len());
            }
            used += space;
        };
        if pktinfo {
            match src.ip() {
                IpAddr::V4(ip) => {
                    let pi = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from_ne_bytes(ip.octets()),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    // SAFETY: in_pktinfo is plain data; viewing it as bytes is sound.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            &pi as *const libc::in_pktinfo as *const u8,
                            mem::size_of::<libc::in_pktinfo>(),
                        )
                    };
                    push(libc::IPPROTO_IP, libc::IP_PKTINFO, bytes);
                }
                IpAddr::V6(ip) => {
                    let pi = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: ip.octets(),
                        },
                        ipi6_ifindex: 0,
                    };
                    // SAFETY: in6_pktinfo is plain data; viewing it as bytes is sound.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            &pi as *const libc::in6_pktinfo as *const u8,
                            mem::size_of::<libc::in6_pktinfo>(),
                        )
                    };
                    push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, bytes);
                }
            }
        }
        if let Some(seg) = gso {
            push(libc::SOL_UDP, sys::UDP_SEGMENT, &seg.to_ne_bytes());
        }
        used
    }

    /// Sends the groups of socket `s` (listed in `order[..k]`) with `sendmmsg`, marking
    /// what the kernel took in `sent`.
    fn flush_socket(&mut self, s: usize, k: usize) {
        let fd = self.socks[s].fd.as_raw_fd();
        let mut start = 0;
        let mut interrupted = false;
        while start < k {
            // SAFETY: hdrs[start..k] were filled for this socket's groups and point into
            // the staging area, the caller's buffers and the port's name/control arrays,
            // all alive for this call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(start),
                    (k - start) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                for o in start..start + r as usize {
                    let g = self.groups[self.order[o]];
                    if g.count > 1 {
                        self.stats.tx_gso_sends += 1;
                    }
                    for f in &mut self.sent[g.first..g.first + g.count] {
                        *f = true;
                    }
                }
                start += r as usize;
                continue;
            }
            let errno = if r == 0 {
                libc::EAGAIN
            } else {
                io::Error::last_os_error().raw_os_error().unwrap_or(0)
            };
            let g = self.groups[self.order[start]];
            match errno {
                libc::EAGAIN | libc::ENOBUFS => break,
                libc::EINTR if !interrupted => {
                    interrupted = true;
                    continue;
                }
                libc::EIO if g.count > 1 => {
                    // The device or kernel cannot segment: send singly from now on.
                    self.socks[s].gso = false;
                    self.stats.gso_fallback += 1;
                }
                libc::EINVAL | libc::EMSGSIZE if g.count > 1 => {
                    // The route refuses this segment size (gso_size + headers > MTU).
                    self.socks[s].gso_max_seg = g.seg.saturating_sub(1);
                    self.stats.gso_fallback += 1;
                }
                libc::EMSGSIZE => self.stats.tx_oversize += 1,
                _ => self.stats.tx_error += g.count as u64,
            }
            start += 1;
        }
    }
}

fn open_socket(addr: &SocketAddr, cfg: &UdpConfig) -> io::Result<Sock> {
    let opts = sys::UdpSocketOpts {
        reuse_port: cfg.reuse_port,
        reuse_addr: cfg.reuse_addr,
        buffer: cfg.socket_buffer,
    };
    let fd =
        sys::udp_socket(addr, &opts).map_err(|e| io::Error::new(e.kind(), format!("udp: {e}")))?;
    let raw = fd.as_raw_fd();
    let one: libc::c_int = 1;
    let wildcard = addr.ip().is_unspecified();
    if wildcard {
        if addr.is_ipv4() {
            sys::setsockopt(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, &one)?;
        } else {
            sys::setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
        }
    }
    let local = sys::local_addr(raw)?;
    // Probing with the option itself tells kernels without GSO/GRO (ENOPROTOOPT) apart.
    let zero: libc::c_int = 0;
    let gso = cfg.gso && sys::setsockopt(raw, libc::SOL_UDP, sys::UDP_SEGMENT, &zero).is_ok();
    let gro = cfg.gro && sys::setsockopt(raw, libc::SOL_UDP, sys::UDP_GRO, &one).is_ok();
    Ok(Sock {
        fd,
        local,
        wildcard,
        gso,
        gso_max_seg: usize::MAX,
        gro,
    })
}

impl BurstIo for UdpPort {
    fn layer(&self) -> Layer {
        Layer::Datagram
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        self.receive(bufs)
    }

    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        out.extend(self.socks.iter().map(|s| s.fd.as_raw_fd()));
        true
    }

    #[inline]
    fn take_counts(&mut self, cnt: &mut LocalCounters) {
        self.large.take_counts(cnt);
    }

    fn attach_large_punt(&mut self, queue: Arc<Channel>) {
        self.large.attach(queue);
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let total = bufs.len().min(MAX_BURST);
        if total == 0 {
            return Ok(0);
        }
        // Pass 1: cut the burst into messages (single datagrams or GSO runs).
        let mut ngroups = 0;
        let mut stage_used = 0;
        let mut i = 0;
        while i < total {
            self.sent[i] = false;
            let (src, dst, seg) = (bufs[i].meta.src, bufs[i].meta.dst, bufs[i].len());
            let Some((s, pktinfo)) = self.pick(&src, &dst) else {
                self.stats.tx_no_socket += 1;
                i += 1;
                continue;
            };
            let mut j = i + 1;
            let sock = &self.socks[s];
            // A large buffer never joins a run: the staging area holds standard ones.
            if sock.gso && seg > 0 && seg <= sock.gso_max_seg && seg <= MAX_FRAME {
                while j < total && j - i < MAX_GSO_SEGMENTS && (j - i + 1) * seg <= MAX_GSO_BYTES {
                    let c = &bufs[j];
                    let l = c.len();
                    if l == 0 || l > seg || c.meta.src != src || c.meta.dst != dst {
                        break;
                    }
                    self.sent[j] = false;
                    j += 1;
                    if l < seg {
                        break; // only the last segment may be shorter
                    }
                }
            }
            let count = j - i;
            let g = ngroups;
            ngroups += 1;
            self.groups[g] = Group {
                sock: s,
                first: i,
                count,
                seg,
            };
            let (base, len) = if count > 1 {
                let start = stage_used;
                for b in &bufs[i..j] {
                    let d = b.data();
                    self.tx_stage[stage_used..stage_used + d.len()].copy_from_slice(d);
                    stage_used += d.len();
                }
                (self.tx_stage[start..].as_mut_ptr(), stage_used - start)
            } else {
                let d = bufs[i].data_mut();
                (d.as_mut_ptr(), d.len())
            };
            self.iovs[g] = libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: len,
            };
            let namelen = sys::sockaddr_from(&dst, &mut self.names[g]);
            let gso = if count > 1 {
                u16::try_from(seg).ok()
            } else {
                None
            };
            let clen = self.build_cmsgs(g, &src, pktinfo, gso);
            let h = &mut self.hdrs[g];
            h.msg_hdr.msg_name =
                &mut self.names[g] as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = &mut self.iovs[g];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = if clen > 0 {
                self.ctrl[g].as_mut_ptr() as *mut libc::c_void
            } else {
                ptr::null_mut()
            };
            h.msg_hdr.msg_controllen = clen as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
            i = j;
        }
        // Pass 2: one sendmmsg per socket. The headers are regrouped per socket into the
        // front of a second copy so each socket's messages are contiguous.
        for s in 0..self.socks.len() {
            let mut k = 0;
            for g in 0..ngroups {
                if self.groups[g].sock == s {
                    self.order[k] = g;
                    k += 1;
                }
            }
            if k == 0 {
                continue;
            }
            // Messages of other sockets may sit in between: move ours to the front
            // (positions >= k are not needed again, as `order` keeps the mapping).
            // Header order must match `order`, so rebuild from the originals.
            self.regroup_headers(k);
            self.flush_socket(s, k);
            self.restore_headers(k);
        }
        // Sent packets to the front, unsent behind them (the caller drops those).
        let mut w = 0;
        for r in 0..total {
            if self.sent[r] {
                bufs.swap(w, r);
                w += 1;
            }
        }
        Ok(w)
    }

    fn name(&self) -> &str {
        "udp"
    }
}

impl UdpPort {
    /// Brings the headers listed in `order[..k]` to `hdrs[..k]` (swapping, so
    /// `restore_headers` can undo it).
    fn regroup_headers(&mut self, k: usize) {
        for o in 0..k {
            let g = self.order[o];
            if g != o {
                self.hdrs.swap(o, g);
            }
        }
    }

    fn restore_headers(&mut self, k: usize) {
        for o in (0..k).rev() {
            let g = self.order[o];
            if g != o {
                self.hdrs.swap(o, g);
            }
        }
    }
}
