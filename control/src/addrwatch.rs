//! The host's usable addresses, and their changes, from the kernel (rtnetlink(7)): the
//! trigger of a MOBIKE move when an address goes away or a link fails (RFC 4555 3.5).
//!
//! One socket subscribed to RTMGRP_LINK and RTMGRP_IPV{4,6}_IFADDR, non-blocking, for
//! the control loop to poll(2); a second one for dump requests, so that answers and
//! events never interleave (both are opened together, in the caller's network
//! namespace). Messages are parsed here, every length from the kernel checked.
//!
//! "Usable": an address of a link that is up and running (carrier), and for IPv6 not
//! tentative (duplicate address detection still running) nor DAD-failed. A link going
//! down keeps its IPv4 addresses in the kernel, but not in this list.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A change the kernel reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrEvent {
    Added(IpAddr),
    Removed(IpAddr),
    LinkDown(u32),
    LinkUp(u32),
}

/// Why a netlink message was not understood (the datagram's rest is dropped: its
/// alignment can no longer be trusted, and the state is then refreshed by a dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than a netlink header.
    ShortHeader,
    /// `nlmsg_len` below the header or past the datagram.
    BadMessageLength,
    /// The message is shorter than its fixed part (ifinfomsg, ifaddrmsg).
    ShortBody,
    /// An attribute's length below its header or past the message.
    BadAttrLength,
    /// An address attribute of neither 4 nor 16 bytes, or not of the message's family.
    BadAddress,
}

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTA_HDRLEN: usize = 4;
/// Datagrams one `drain` reads at most; the rest waits for the next poll.
const DRAIN_MAX: usize = 256;
/// Datagrams a dump may take, and how long to wait for each.
const DUMP_DATAGRAMS_MAX: usize = 100_000;
const DUMP_WAIT_MS: i32 = 2000;
/// NLM_F_DUMP_INTR: the dump raced a change; it is repeated up to this often.
const DUMP_TRIES: usize = 5;
const RECV_BUF: usize = 64 * 1024;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One netlink message: type, flags, sequence number, payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Msg<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    body: &'a [u8],
}

/// Splits a datagram into messages (netlink(7): each `nlmsg_len` long, 4-aligned).
fn messages(mut b: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, ParseError>> {
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || b.is_empty() {
            return None;
        }
        let step = (|| {
            let len = u32_at(b, 0).ok_or(ParseError::ShortHeader)? as usize;
            let kind = u16_at(b, 4).ok_or(ParseError::ShortHeader)?;
            let flags = u16_at(b, 6).ok_or(ParseError::ShortHeader)?;
            let seq = u32_at(b, 8).ok_or(ParseError::ShortHeader)?;
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(ParseError::BadMessageLength);
            }
            let body = b
                .get(NLMSG_HDRLEN..len)
                .ok_or(ParseError::BadMessageLength)?;
            let msg = Msg {
                kind,
                flags,
                seq,
                body,
            };
            Ok((msg, b.get(align4(len)..).unwrap_or(&[])))
        })();
        match step {
            Ok((m, rest)) => {
                b = rest;
                Some(Ok(m))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// The attributes (type, payload) after a message's fixed part.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), ParseError>> {
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || b.len() < RTA_HDRLEN {
            return None;
        }
        let len = u16_at(b, 0).map_or(0, usize::from);
        let kind = u16_at(b, 2).unwrap_or(0);
        match b.get(RTA_HDRLEN..len) {
            Some(data) if len >= RTA_HDRLEN => {
                b = b.get(align4(len)..).unwrap_or(&[]);
                // NLA_TYPE_MASK: the top two bits are flags.
                Some(Ok((kind & 0x3fff, data)))
            }
            _ => {
                failed = true;
                Some(Err(ParseError::BadAttrLength))
            }
        }
    })
}

/// RTM_NEWLINK / RTM_DELLINK: (ifindex, up and running).
fn parse_link(m: &Msg<'_>) -> Result<(u32, bool), ParseError> {
    if m.body.len() < IFINFOMSG_LEN {
        return Err(ParseError::ShortBody);
    }
    let index = u32_at(m.body, 4).ok_or(ParseError::ShortBody)?;
    let flags = u32_at(m.body, 8).ok_or(ParseError::ShortBody)?;
    let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
    Ok((index, m.kind == libc::RTM_NEWLINK && flags & want == want))
}

/// An address message: (address, ifindex, usable as far as the address goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrMsg {
    addr: IpAddr,
    index: u32,
    usable: bool,
}

/// RTM_NEWADDR / RTM_DELADDR. `Ok(None)`: a family other than IPv4/IPv6, or no address.
fn parse_addr(m: &Msg<'_>) -> Result<Option<AddrMsg>, ParseError> {
    let fixed = m.body.get(..IFADDRMSG_LEN).ok_or(ParseError::ShortBody)?;
    let family = i32::from(fixed[0]);
    let mut flags = u32::from(fixed[2]);
    let index = u32_at(fixed, 4).ok_or(ParseError::ShortBody)?;
    let v6 = match family {
        libc::AF_INET => false,
        libc::AF_INET6 => true,
        _ => return Ok(None),
    };
    let (mut address, mut local) = (None, None);
    for a in attrs(m.body.get(IFADDRMSG_LEN..).unwrap_or(&[])) {
        let (kind, data) = a?;
        let ip = || -> Result<IpAddr, ParseError> {
            match (v6, data.len()) {
                (false, 4) => {
                    let o: [u8; 4] = data.try_into().map_err(|_| ParseError::BadAddress)?;
                    Ok(IpAddr::V4(Ipv4Addr::from(o)))
                }
                (true, 16) => {
                    let o: [u8; 16] = data.try_into().map_err(|_| ParseError::BadAddress)?;
                    Ok(IpAddr::V6(Ipv6Addr::from(o)))
                }
                _ => Err(ParseError::BadAddress),
            }
        };
        match kind {
            libc::IFA_ADDRESS => address = Some(ip()?),
            libc::IFA_LOCAL => local = Some(ip()?),
            // The 32-bit flags supersede the 8 bits of ifaddrmsg when present.
            libc::IFA_FLAGS => flags = u32_at(data, 0).ok_or(ParseError::BadAttrLength)?,
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is ours.
    let Some(addr) = local.or(address) else {
        return Ok(None);
    };
    let bad = libc::IFA_F_TENTATIVE | libc::IFA_F_DADFAILED;
    Ok(Some(AddrMsg {
        addr,
        index,
        usable: m.kind == libc::RTM_NEWADDR && flags & bad == 0,
    }))
}

/// What the kernel told us so far: links by index (up and running), addresses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    links: HashMap<u32, bool>,
    /// (address, ifindex), usable addresses only, in the order first seen.
    addrs: Vec<(IpAddr, u32)>,
}

impl State {
    /// Linear in the addresses known (a traffic generator's host has thousands).
    fn usable(&self) -> Vec<IpAddr> {
        let mut seen = std::collections::HashSet::with_capacity(self.addrs.len());
        let mut out: Vec<IpAddr> = Vec::new();
        for (a, i) in &self.addrs {
            if self.links.get(i).copied().unwrap_or(false) && seen.insert(*a) {
                out.push(*a);
            }
        }
        out
    }

    /// Applies one message; the event it means, if anything changed.
    fn apply(&mut self, m: &Msg<'_>) -> Result<Option<AddrEvent>, ParseError> {
        match m.kind {
            libc::RTM_NEWLINK | libc::RTM_DELLINK => {
                let (index, up) = parse_link(m)?;
                let was = self.links.get(&index).copied().unwrap_or(false);
                if m.kind == libc::RTM_DELLINK {
                    self.links.remove(&index);
                    self.addrs.retain(|(_, i)| *i != index);
                } else {
                    self.links.insert(index, up);
                }
                Ok(match (was, up) {
                    (false, true) => Some(AddrEvent::LinkUp(index)),
                    (true, false) => Some(AddrEvent::LinkDown(index)),
                    _ => None,
                })
            }
            libc::RTM_NEWADDR | libc::RTM_DELADDR => {
                let Some(a) = parse_addr(m)? else {
                    return Ok(None);
                };
                let known = self.addrs.iter().position(|x| *x == (a.addr, a.index));
                Ok(match (known, a.usable) {
                    (None, true) => {
                        self.addrs.push((a.addr, a.index));
                        Some(AddrEvent::Added(a.addr))
                    }
                    (Some(k), false) => {
                        self.addrs.remove(k);
                        Some(AddrEvent::Removed(a.addr))
                    }
                    _ => None,
                })
            }
            _ => Ok(None),
        }
    }
}

/// A netlink route socket subscribed to address and link changes.
pub struct AddrWatch {
    events: OwnedFd,
    query: OwnedFd,
    state: State,
    seq: u32,
    buf: Vec<u8>,
    /// Events may have been lost (receive buffer overrun, a message not understood):
    /// the next `addresses_changed` dumps afresh.
    resync: bool,
    /// Messages not understood, for the operator.
    pub malformed: u64,
    /// Times the kernel dropped events for a full receive buffer.
    pub overruns: u64,
    /// The usable list as last returned by `dump` or `addresses_changed`.
    reported: Vec<IpAddr>,
    /// Times the usable list was computed (once per batch of notifications, never on a
    /// turn without any).
    pub recomputes: u64,
}

fn netlink_socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = groups;
    // SAFETY: `sa` is a valid sockaddr_nl and its exact size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Waits up to `ms` for `fd` to be readable; false on timeout.
fn wait_readable(fd: RawFd, ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One datagram into `buf`: its length, `None` when nothing is pending. A datagram
/// larger than the buffer is an error (MSG_TRUNC tells its real size).
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink datagram of {n} bytes truncated"),
                ));
            }
            return Ok(Some(n));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

impl AddrWatch {
    /// Subscribes in the calling thread's network namespace, and reads the current
    /// state once.
    pub fn open() -> io::Result<AddrWatch> {
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        let mut w = AddrWatch {
            events: netlink_socket(groups)?,
            query: netlink_socket(0)?,
            state: State::default(),
            seq: 0,
            buf: vec![0; RECV_BUF],
            resync: false,
            malformed: 0,
            overruns: 0,
            reported: Vec::new(),
            recomputes: 0,
        };
        w.dump()?;
        Ok(w)
    }

    /// The descriptor to poll(2) for POLLIN; then call [`AddrWatch::addresses_changed`]
    /// or [`AddrWatch::drain`].
    pub fn fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    /// The usable addresses as last known (no system call).
    #[allow(dead_code)] // the tests' view; the loop takes addresses_changed()
    pub fn usable(&self) -> Vec<IpAddr> {
        self.state.usable()
    }

    /// Asks the kernel for every link and address, replaces what was known, and
    /// returns the usable addresses (from then on the list changes are reported against).
    pub fn dump(&mut self) -> io::Result<Vec<IpAddr>> {
        let now = self.dump_state()?;
        self.reported = now.clone();
        Ok(now)
    }

    /// `dump` without touching the list reported last.
    fn dump_state(&mut self) -> io::Result<Vec<IpAddr>> {
        let mut last = io::Error::other("netlink dump interrupted");
        for _ in 0..DUMP_TRIES {
            let mut fresh = State::default();
            match self
                .dump_one(libc::RTM_GETLINK, IFINFOMSG_LEN, &mut fresh)
                .and_then(|()| self.dump_one(libc::RTM_GETADDR, IFADDRMSG_LEN, &mut fresh))
            {
                Ok(()) => {
                    self.state = fresh;
                    self.resync = false;
                    return Ok(self.recompute());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One dump request (`kind`, with a zeroed family header of `fixed` bytes: any
    /// family) and its answer into `into`. ErrorKind::Interrupted: the kernel flagged
    /// the dump inconsistent; try again.
    fn dump_one(&mut self, kind: u16, fixed: usize, into: &mut State) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = NLMSG_HDRLEN + fixed;
        let mut req = vec![0u8; len];
        req[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&kind.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        let fd = self.query.as_raw_fd();
        // Answers of an earlier, abandoned dump must not be taken for this one.
        while recv(fd, &mut self.buf)?.is_some() {}
        // SAFETY: `req` is valid for reads of its length; the kernel is the
        // destination (the socket is not connected, and a zero sockaddr_nl is it).
        let n = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut interrupted = false;
        for _ in 0..DUMP_DATAGRAMS_MAX {
            if !wait_readable(fd, DUMP_WAIT_MS)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer to a netlink dump",
                ));
            }
            let Some(n) = recv(fd, &mut self.buf)? else {
                continue;
            };
            let data = self.buf.get(..n).unwrap_or(&[]);
            for m in messages(data) {
                let m = m.map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e:?}"))
                })?;
                if m.seq != seq {
                    continue;
                }
                if m.flags & libc::NLM_F_DUMP_INTR as u16 != 0 {
                    interrupted = true;
                }
                match i32::from(m.kind) {
                    libc::NLMSG_DONE if interrupted => {
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "netlink dump inconsistent",
                        ))
                    }
                    libc::NLMSG_DONE => return Ok(()),
                    libc::NLMSG_ERROR => {
                        let errno = u32_at(m.body, 0).map_or(0, |e| -(e as i32));
                        return Err(if errno > 0 {
                            io::Error::from_raw_os_error(errno)
                        } else {
                            io::Error::other("netlink dump ended by an acknowledgement")
                        });
                    }
                    _ => {
                        into.apply(&m).map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e:?}"))
                        })?;
                    }
                }
            }
        }
        Err(io::Error::other("netlink dump without end"))
    }

    /// Reads the pending notifications (at most a bounded number of datagrams) and
    /// returns what changed. Never blocks.
    pub fn drain(&mut self) -> Vec<AddrEvent> {
        let mut out = Vec::new();
        let fd = self.events.as_raw_fd();
        for _ in 0..DRAIN_MAX {
            let n = match recv(fd, &mut self.buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    // ENOBUFS: the kernel dropped notifications; a truncated datagram
                    // lost some too. Either way only a dump tells the truth now.
                    if e.raw_os_error() == Some(libc::ENOBUFS) {
                        self.overruns += 1;
                    } else {
                        self.malformed += 1;
                    }
                    self.resync = true;
                    if e.kind() == io::ErrorKind::InvalidData
                        || e.raw_os_error() == Some(libc::ENOBUFS)
                    {
                        continue;
                    }
                    break;
                }
            };
            let data = self.buf.get(..n).unwrap_or(&[]);
            for m in messages(data) {
                match m.and_then(|m| self.state.apply(&m)) {
                    Ok(Some(ev)) => out.push(ev),
                    Ok(None) => {}
                    Err(_) => {
                        self.malformed += 1;
                        self.resync = true;
                    }
                }
            }
        }
        out
    }

    /// Drains the notifications; if anything changed, the usable addresses now (fresh
    /// from a dump when notifications were lost). A turn without news from the kernel
    /// costs one `recv` and no list: the list is computed only after notifications, and
    /// compared with the one reported last.
    pub fn addresses_changed(&mut self) -> Option<Vec<IpAddr>> {
        let events = self.drain();
        if self.resync {
            if let Ok(now) = self.dump_state() {
                return self.report(now);
            }
        }
        if events.is_empty() {
            return None;
        }
        let now = self.recompute();
        self.report(now)
    }

    /// The usable list from the state, counted.
    fn recompute(&mut self) -> Vec<IpAddr> {
        self.recomputes += 1;
        self.state.usable()
    }

    /// `now` if it differs from the list reported last (which it then becomes).
    fn report(&mut self, now: Vec<IpAddr>) -> Option<Vec<IpAddr>> {
        if now == self.reported {
            return None;
        }
        self.reported = now.clone();
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` with `body` (header filled in, padded to 4).
    fn msg(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(body);
        v.resize(align4(v.len()), 0);
        v
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((RTA_HDRLEN + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        v.resize(align4(v.len()), 0);
        v
    }

    fn link(kind: u16, index: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; IFINFOMSG_LEN];
        b[4..8].copy_from_slice(&index.to_ne_bytes());
        b[8..12].copy_from_slice(&flags.to_ne_bytes());
        msg(kind, 0, &b)
    }

    fn addr(kind: u16, family: u8, flags: u8, index: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![family, 24, flags, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        for a in attrs {
            b.extend_from_slice(a);
        }
        msg(kind, 0, &b)
    }

    fn apply_all(s: &mut State, datagram: &[u8]) -> Result<Vec<AddrEvent>, ParseError> {
        let mut out = Vec::new();
        for m in messages(datagram) {
            if let Some(e) = s.apply(&m?)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    const UP: u32 = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
    const V4: u8 = libc::AF_INET as u8;
    const V6: u8 = libc::AF_INET6 as u8;

    #[test]
    fn state_follows_links_and_addresses() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut s = State::default();
        let mut d = link(libc::RTM_NEWLINK, 3, UP);
        // Point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the peer's.
        d.extend(addr(
            libc::RTM_NEWADDR,
            V4,
            0,
            3,
            &[
                attr(libc::IFA_ADDRESS, &[10, 0, 0, 2]),
                attr(libc::IFA_LOCAL, &[10, 0, 0, 1]),
            ],
        ));
        d.extend(addr(
            libc::RTM_NEWADDR,
            V6,
            0,
            3,
            &[attr(
                libc::IFA_ADDRESS,
                &b.to_string().parse::<Ipv6Addr>().unwrap().octets(),
            )],
        ));
        let ev = apply_all(&mut s, &d).unwrap();
        assert_eq!(
            ev,
            [
                AddrEvent::LinkUp(3),
                AddrEvent::Added(a),
                AddrEvent::Added(b)
            ]
        );
        assert_eq!(s.usable(), [a, b]);
        assert!(!s.usable().contains(&peer));

        // Tentative (in the 8-bit flags) and DAD-failed (in IFA_FLAGS, which wins).
        let c: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let tentative = addr(
            libc::RTM_NEWADDR,
            V6,
            libc::IFA_F_TENTATIVE as u8,
            3,
            &[attr(libc::IFA_ADDRESS, &c.octets())],
        );
        assert_eq!(apply_all(&mut s, &tentative).unwrap(), []);
        let ready = addr(
            libc::RTM_NEWADDR,
            V6,
            0,
            3,
            &[attr(libc::IFA_ADDRESS, &c.octets())],
        );
        assert_eq!(
            apply_all(&mut s, &ready).unwrap(),
            [AddrEvent::Added(c.into())]
        );
        let failed = addr(
            libc::RTM_NEWADDR,
            V6,
            0,
            3,
            &[
                attr(libc::IFA_ADDRESS, &c.octets()),
                attr(libc::IFA_FLAGS, &libc::IFA_F_DADFAILED.to_ne_bytes()),
            ],
        );
        assert_eq!(
            apply_all(&mut s, &failed).unwrap(),
            [AddrEvent::Removed(c.into())]
        );

        // Link down: the addresses stay known but are not usable; up again, they are.
        assert_eq!(
            apply_all(&mut s, &link(libc::RTM_NEWLINK, 3, libc::IFF_UP as u32)).unwrap(),
            [AddrEvent::LinkDown(3)]
        );
        assert_eq!(s.usable(), Vec::<IpAddr>::new());
        assert_eq!(
            apply_all(&mut s, &link(libc::RTM_NEWLINK, 3, UP)).unwrap(),
            [AddrEvent::LinkUp(3)]
        );
        assert_eq!(s.usable(), [a, b]);
        // Repeated news of an unchanged link is no event.
        assert_eq!(
            apply_all(&mut s, &link(libc::RTM_NEWLINK, 3, UP)).unwrap(),
            []
        );
        let del = addr(
            libc::RTM_DELADDR,
            V4,
            0,
            3,
            &[attr(libc::IFA_LOCAL, &[10, 0, 0, 1])],
        );
        assert_eq!(apply_all(&mut s, &del).unwrap(), [AddrEvent::Removed(a)]);
        assert_eq!(apply_all(&mut s, &del).unwrap(), []);
        // A link deleted takes its addresses along.
        assert_eq!(
            apply_all(&mut s, &link(libc::RTM_DELLINK, 3, 0)).unwrap(),
            [AddrEvent::LinkDown(3)]
        );
        assert_eq!(s, State::default());
    }

    /// A watcher whose event socket is one end of a unix datagram socket pair: the test
    /// writes netlink datagrams into the other end as the kernel would.
    fn fed_watch() -> (AddrWatch, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair(2) writes two descriptors into `fds`, checked below.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both descriptors are new and owned by nobody else.
        let (events, kernel) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let w = AddrWatch {
            events,
            query: netlink_socket(0).expect("netlink socket"),
            state: State::default(),
            seq: 0,
            buf: vec![0; RECV_BUF],
            resync: false,
            malformed: 0,
            overruns: 0,
            reported: Vec::new(),
            recomputes: 0,
        };
        (w, kernel)
    }

    fn send(fd: &OwnedFd, datagram: &[u8]) {
        // SAFETY: `datagram` is valid for reads of its length.
        let n = unsafe { libc::send(fd.as_raw_fd(), datagram.as_ptr().cast(), datagram.len(), 0) };
        assert_eq!(n, datagram.len() as isize, "{}", io::Error::last_os_error());
    }

    #[test]
    fn usable_list_is_computed_only_when_the_kernel_reports_a_change() {
        let (mut w, kernel) = fed_watch();
        // Turns without news cost no list (the control loop calls this every turn).
        for _ in 0..100 {
            assert_eq!(w.addresses_changed(), None);
        }
        assert_eq!(w.recomputes, 0, "recomputed without news from the kernel");

        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut d = link(libc::RTM_NEWLINK, 3, UP);
        d.extend(addr(
            libc::RTM_NEWADDR,
            V4,
            0,
            3,
            &[attr(libc::IFA_LOCAL, &[10, 0, 0, 1])],
        ));
        send(&kernel, &d);
        assert_eq!(w.addresses_changed(), Some(vec![a]));
        assert_eq!(w.recomputes, 1);
        for _ in 0..100 {
            assert_eq!(w.addresses_changed(), None);
        }
        assert_eq!(w.recomputes, 1);

        // News that changes nothing (a tentative address, a link that stays up): no
        // events, nothing computed.
        let tentative: Ipv6Addr = "2001:db8::2".parse().unwrap();
        send(
            &kernel,
            &addr(
                libc::RTM_NEWADDR,
                V6,
                libc::IFA_F_TENTATIVE as u8,
                3,
                &[attr(libc::IFA_ADDRESS, &tentative.octets())],
            ),
        );
        send(&kernel, &link(libc::RTM_NEWLINK, 3, UP));
        assert_eq!(w.addresses_changed(), None);
        assert_eq!(w.recomputes, 1);
        // A link without addresses going up: an event, one list, the same as before.
        send(&kernel, &link(libc::RTM_NEWLINK, 4, UP));
        assert_eq!(w.addresses_changed(), None);
        assert_eq!(w.recomputes, 2);

        send(&kernel, &link(libc::RTM_NEWLINK, 3, libc::IFF_UP as u32));
        assert_eq!(w.addresses_changed(), Some(vec![]));
        assert_eq!(w.recomputes, 3);
        assert_eq!(w.addresses_changed(), None);
        assert_eq!(w.recomputes, 3);
    }

    #[test]
    fn hostile_lengths_are_named_errors() {
        let good = link(libc::RTM_NEWLINK, 1, UP);
        // Every truncation of a valid message: an error or nothing, never a panic.
        for cut in 0..good.len() {
            let mut s = State::default();
            let r = apply_all(&mut s, &good[..cut]);
            assert!(r.is_err() || cut == 0, "cut {cut}: {r:?}");
        }
        let mut long = good.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            messages(&long).next(),
            Some(Err(ParseError::BadMessageLength))
        );
        let mut short = good.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(
            messages(&short).next(),
            Some(Err(ParseError::BadMessageLength))
        );
        assert_eq!(
            messages(&[1, 2, 3]).next(),
            Some(Err(ParseError::ShortHeader))
        );
        // A message cut off in its fixed part.
        let m = msg(libc::RTM_NEWLINK, 0, &[0; 8]);
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::ShortBody)
        );
        let m = msg(libc::RTM_NEWADDR, 0, &[V4, 0, 0]);
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::ShortBody)
        );
        // Attributes: longer than the message, shorter than their header, an IPv4
        // message with a 16-byte address, a short IFA_FLAGS.
        let mut bad = attr(libc::IFA_LOCAL, &[10, 0, 0, 1]);
        bad[0..2].copy_from_slice(&200u16.to_ne_bytes());
        let m = addr(libc::RTM_NEWADDR, V4, 0, 1, &[bad.clone()]);
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::BadAttrLength)
        );
        bad[0..2].copy_from_slice(&2u16.to_ne_bytes());
        let m = addr(libc::RTM_NEWADDR, V4, 0, 1, &[bad]);
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::BadAttrLength)
        );
        let m = addr(
            libc::RTM_NEWADDR,
            V4,
            0,
            1,
            &[attr(libc::IFA_LOCAL, &[0; 16])],
        );
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::BadAddress)
        );
        let m = addr(
            libc::RTM_NEWADDR,
            V4,
            0,
            1,
            &[
                attr(libc::IFA_LOCAL, &[10, 0, 0, 1]),
                attr(libc::IFA_FLAGS, &[0, 0]),
            ],
        );
        assert_eq!(
            apply_all(&mut State::default(), &m),
            Err(ParseError::BadAttrLength)
        );
        // Other families and message types are ignored, not errors.
        let m = addr(libc::RTM_NEWADDR, libc::AF_PACKET as u8, 0, 1, &[]);
        assert_eq!(apply_all(&mut State::default(), &m), Ok(vec![]));
        let m = msg(libc::RTM_NEWROUTE, 0, &[0; 12]);
        assert_eq!(apply_all(&mut State::default(), &m), Ok(vec![]));
    }
}
