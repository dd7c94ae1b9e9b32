//! Linux glue shared by the kernel-facing backends (`udp`, `afpacket`, `tun`): socket
//! addresses, socket options, interface ioctls, and the few kernel constants that the
//! `libc` crate does not export on every target.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// <linux/udp.h>
pub const UDP_SEGMENT: libc::c_int = 103;
pub const UDP_GRO: libc::c_int = 104;

// <linux/if_packet.h>
pub const PACKET_RX_RING: libc::c_int = 5;
pub const PACKET_VERSION: libc::c_int = 10;
pub const PACKET_TX_RING: libc::c_int = 13;
pub const PACKET_FANOUT: libc::c_int = 18;
pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub const PACKET_FANOUT_HASH: u32 = 0;
pub const TPACKET_V2: libc::c_int = 1;
pub const TPACKET_V3: libc::c_int = 2;
pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_AVAILABLE: u32 = 0;
pub const TP_STATUS_SEND_REQUEST: u32 = 1;
pub const TP_STATUS_SENDING: u32 = 2;
pub const TP_STATUS_WRONG_FORMAT: u32 = 4;
pub const TPACKET_ALIGNMENT: usize = 16;

/// `struct tpacket_req3` (also used, first four fields only, as `struct tpacket_req`).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct TpacketReq3 {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_blk_tov: u32,
    pub sizeof_priv: u32,
    pub feature_req_word: u32,
}

/// `struct tpacket_req` (TPACKET_V2 rings).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct TpacketReq {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
}

/// Turns a libc return value into an `io::Result`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// poll(2) on `fds` for up to `timeout_ms` (-1: no limit); the number of descriptors
/// with events. EINTR counts as a wakeup without events.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, initialised slice of pollfd structures that outlives the
    // call, and its length is passed with it.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    poll_result(r)
}

/// What poll(2) and ppoll(2) returned: the number of descriptors with events, EINTR
/// as none.
fn poll_result(r: libc::c_int) -> io::Result<usize> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}

/// ppoll(2) on `fds` for up to `timeout_ns` (None: no limit): as [`poll`], to the
/// nanosecond (a timer due between two milliseconds is not slept past).
pub fn ppoll(fds: &mut [libc::pollfd], timeout_ns: Option<u64>) -> io::Result<usize> {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000).min(i32::MAX as u64) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid, initialised slice of pollfd structures that outlives the
    // call, its length is passed with it; `tp` is null or points at `ts`, alive here; no
    // signal mask is changed.
    let r = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tp,
            std::ptr::null(),
        )
    };
    poll_result(r)
}

/// `socket(2)` returning an owned descriptor.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a plain-old-data value.
pub fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to `size_of::<T>()` readable bytes for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Binds `fd` to `addr`.
pub fn bind(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = sockaddr_from(addr, &mut st);
    // SAFETY: `st` holds a socket address of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd,
            &st as *const libc::sockaddr_storage as *const libc::sockaddr,
            len,
        )
    })?;
    Ok(())
}

/// Writes `addr` as a kernel socket address; returns its length.
pub fn sockaddr_from(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in; both are
            // plain data.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            sin.sin_zero = [0; 8];
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a kernel socket address; `None` for families other than IPv4/IPv6.
pub fn sockaddr_to(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match st.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; alignment and size
            // of sockaddr_storage cover it.
            let sin =
                unsafe { &*(st as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(st as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `getsockname(2)`.
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `st`/`len` describe a writable buffer of the stated size.
    cvt(unsafe {
        libc::getsockname(
            fd,
            &mut st as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut len,
        )
    })?;
    sockaddr_to(&st).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket"))
}

/// Sets `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// An `ifreq` naming `name`; fails if the name does not fit `IFNAMSIZ - 1`.
pub fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bad interface name {name:?} (1..{} bytes, no NUL)",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    // SAFETY: all-zero is a valid ifreq (a name buffer and a plain-data union).
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// The interface name stored in an `ifreq` (after TUNSETIFF the kernel writes it back).
pub fn ifreq_name(ifr: &libc::ifreq) -> String {
    let raw: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Runs an interface ioctl on a throwaway datagram socket.
pub fn if_ioctl(req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: interface ioctls read and write exactly one `ifreq`, which `ifr` is.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), req as _, ifr as *mut libc::ifreq) })?;
    Ok(())
}

/// Interface index of `name`.
pub fn if_index(name: &str) -> io::Result<u32> {
    let mut ifr = ifreq(name)?;
    if_ioctl(libc::SIOCGIFINDEX, &mut ifr)?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    let idx = unsafe { ifr.ifr_ifru.ifru_ifindex };
    u32::try_from(idx).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative ifindex"))
}

/// Hardware (MAC) address of `name`.
pub fn if_mac(name: &str) -> io::Result<[u8; 6]> {
    let mut ifr = ifreq(name)?;
    if_ioctl(libc::SIOCGIFHWADDR, &mut ifr)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// Sets the MTU of `name`.
pub fn if_set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mtu out of range"))?;
    if_ioctl(libc::SIOCSIFMTU, &mut ifr)
}

/// Sets IFF_UP (and IFF_RUNNING) on `name`, keeping its other flags.
pub fn if_up(name: &str) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    if_ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    if_ioctl(libc::SIOCSIFFLAGS, &mut ifr)
}

/// A classic BPF program that accepts nothing (`ret #0`), attached with SO_ATTACH_FILTER.
pub fn attach_drop_all_filter(fd: RawFd) -> io::Result<()> {
    let mut insn = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: insn.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// A periodic CLOCK_MONOTONIC timer as a descriptor (timerfd): readable once a period
/// has passed since it was last drained. Lets a worker whose port has no descriptor of
/// its own (a traffic generator) sleep in poll(2) between the packets it must make.
pub struct Ticker {
    fd: OwnedFd,
    start_ns: u64,
    period_ns: u64,
    /// The number of the last period drained.
    drained: u64,
}

impl Ticker {
    /// A timer firing every `period_ns` (at least 1 µs) from now.
    pub fn new(period_ns: u64) -> io::Result<Ticker> {
        let period_ns = period_ns.max(1_000);
        // SAFETY: integer arguments; the result is checked.
        let raw = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ts = libc::timespec {
            tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: a valid itimerspec; the old value is not asked for.
        cvt(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
        Ok(Ticker {
            fd,
            start_ns: shared::clock::now_ns(),
            period_ns,
            drained: 0,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Clears the descriptor's readiness if a period ended since the last call (one
    /// read(2) per period at most, none otherwise), so that poll(2) blocks again.
    #[inline]
    pub fn drain(&mut self, now_ns: u64) {
        let k = now_ns.saturating_sub(self.start_ns) / self.period_ns;
        if k <= self.drained {
            return;
        }
        self.drained = k;
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8; EAGAIN (nothing due yet by
        // the kernel's reckoning) is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }
}

/// How [`udp_socket`] sets a socket up before binding it.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpSocketOpts {
    /// `SO_REUSEPORT`: several sockets (workers) on one address.
    pub reuse_port: bool,
    /// `SO_REUSEADDR`: a wildcard and specific addresses share a port on one host.
    pub reuse_addr: bool,
    /// `SO_RCVBUF`/`SO_SNDBUF` in bytes (the FORCE variants when privileged, which
    /// exceed rmem_max/wmem_max; else best effort); 0 keeps the kernel's.
    pub buffer: usize,
}

/// A non-blocking UDP socket bound to `addr` (IPv6 sockets IPv6-only, so that an IPv4
/// bind on the same port stays separate).
pub fn udp_socket(addr: &SocketAddr, o: &UdpSocketOpts) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = socket(
        domain,
        libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
        libc::IPPROTO_UDP,
    )?;
    let raw = fd.as_raw_fd();
    let one: libc::c_int = 1;
    if addr.is_ipv6() {
        setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)?;
    }
    if o.reuse_port {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, &one)?;
    }
    if o.reuse_addr {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    }
    if o.buffer > 0 {
        let size = libc::c_int::try_from(o.buffer).unwrap_or(libc::c_int::MAX);
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt(raw, libc::SOL_SOCKET, force, &size).is_err() {
                let _ = setsockopt(raw, libc::SOL_SOCKET, plain, &size);
            }
        }
    }
    bind(raw, addr).map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    Ok(fd)
}

/// Moves the calling thread into the network namespace `name` (`ip netns add NAME`
/// makes /run/netns/NAME). Threads it starts afterwards, and the sockets it opens,
/// live there; other threads are not affected. Needs CAP_SYS_ADMIN.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a namespace name"),
        ));
    }
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns on a descriptor we hold open for the call, with a constant flag;
    // it changes only this thread's namespace.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}
