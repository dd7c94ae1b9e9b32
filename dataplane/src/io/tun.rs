//! The clear-side TUN port: bare IP packets to and from the host stack.
//!
//! Opens `/dev/net/tun` with `IFF_TUN | IFF_NO_PI` (no packet-information prefix), attaching
//! to an existing persistent device of that name or creating a transient one that vanishes
//! when the port is dropped. The descriptor is non-blocking.
//!
//! Batching, honestly: a TUN descriptor moves one packet per `read`/`write`. The kernel's
//! only batching path for TUN is the virtio-net header (`IFF_VNET_HDR`) with offloads,
//! which lets one write carry a GSO super-packet; this port does not use it. So `rx_burst`
//! reads until `EAGAIN` or the burst is full (one syscall per packet plus the final
//! `EAGAIN`), and `tx_burst` writes each packet. This is the one backend that makes a
//! syscall per packet, because the kernel offers nothing else without vnet headers.

use super::sys;
use super::{BurstIo, Layer};
use crate::buf::{PacketBuf, MAX_FRAME};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// TUN port configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Set this MTU at open (at most `MAX_FRAME`, so every packet fits a buffer).
    pub mtu: Option<u32>,
    /// Bring the interface up at open.
    pub up: bool,
}

/// Drop counters of a TUN port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunStats {
    /// Packets the kernel refused on write (malformed, no route, ...), not taken.
    pub tx_error: u64,
    /// Empty reads (a zero-length read is not a packet).
    pub rx_empty: u64,
}

/// A TUN device port (see the module doc).
pub struct TunPort {
    fd: OwnedFd,
    ifname: String,
    label: String,
    stats: TunStats,
}

impl TunPort {
    /// Attaches to (or creates) the TUN device `cfg.name`.
    pub fn open(cfg: &TunConfig) -> io::Result<TunPort> {
        if let Some(mtu) = cfg.mtu {
            if mtu as usize > MAX_FRAME || mtu < 68 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("tun: mtu {mtu} outside 68..={MAX_FRAME}"),
                ));
            }
        }
        let mut ifr = sys::ifreq(&cfg.name)?;
        let path = CString::new("/dev/net/tun").map_err(io::Error::other)?;
        // SAFETY: `path` is a valid NUL-terminated string; flags are plain integers.
        let raw = sys::cvt(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("tun: open /dev/net/tun: {e}")))?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `ifr` is.
        sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) })
            .map_err(|e| io::Error::new(e.kind(), format!("tun: TUNSETIFF {}: {e}", cfg.name)))?;
        let name = sys::ifreq_name(&ifr);
        if let Some(mtu) = cfg.mtu {
            sys::if_set_mtu(&name, mtu)?;
        }
        if cfg.up {
            sys::if_up(&name)?;
        }
        Ok(TunPort {
            fd,
            label: format!("tun:{name}"),
            ifname: name,
            stats: TunStats::default(),
        })
    }

    /// The interface name the kernel assigned.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Drop counters.
    pub fn stats(&self) -> TunStats {
        self.stats
    }
}

impl BurstIo for TunPort {
    fn layer(&self) -> Layer {
        Layer::Ip
    }

    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let mut n = 0;
        while n < bufs.len() {
            let space = bufs[n].rx_space();
            // SAFETY: `space` is a writable slice of `space.len()` bytes.
            let r = unsafe { libc::read(fd, space.as_mut_ptr() as *mut libc::c_void, space.len()) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    _ if n > 0 => break,
                    _ => return Err(e),
                }
            }
            if r == 0 {
                self.stats.rx_empty += 1;
                break;
            }
            bufs[n].set_len(r as usize);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let mut w = 0;
        for i in 0..bufs.len() {
            let d = bufs[i].data();
            // SAFETY: `d` is a readable slice of `d.len()` bytes.
            let r = unsafe { libc::write(fd, d.as_ptr() as *const libc::c_void, d.len()) };
            if r < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => break,
                    _ => {
                        // Refused packet: not taken; later ones still go.
                        self.stats.tx_error += 1;
                        continue;
                    }
                }
            }
            // Taken packets to the front, refused ones behind them.
            bufs.swap(w, i);
            w += 1;
        }
        Ok(w)
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        out.push(self.fd.as_raw_fd());
        true
    }
}
