//! The control socket behind `mobiked ctl`: a unix stream socket carrying one JSON object
//! per line, each request answered by one response line, in order.
//!
//! The server never blocks its caller: `CtlServer::poll` accepts, reads, answers and writes
//! whatever is ready and returns. Input is bounded (a line longer than `MAX_LINE` is
//! answered with an error and skipped up to its newline) and so is output held for a
//! client that does not read (`MAX_PENDING_OUT`): the socket is local, but whoever can
//! reach it is still not trusted to make the daemon allocate without bound.

use serde::{Deserialize, Serialize};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Output held for one client before the server stops reading its requests.
pub const MAX_PENDING_OUT: usize = 1 << 20;
/// Clients served at once; more are accepted and closed at once.
pub const MAX_CLIENTS: usize = 64;
/// Longest response line a client accepts (a `stats` reply lists every counter).
pub const MAX_RESPONSE_LINE: usize = 16 << 20;

/// A request from `mobiked ctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Move the path `name` to a new pair of outer addresses.
    PathSet {
        name: String,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// All counters, summed over workers.
    Stats,
    /// Every path with its current generation.
    Paths,
    /// The IKE SAs and their child SAs (`mobiked gateway` / `mobiked client`).
    Sas,
    /// MOBIKE: move an IKE SA we initiated, named by its connection (its first
    /// established IKE SA) or its SPI in hexadecimal, and its children to
    /// `local` -> `remote` (UPDATE_SA_ADDRESSES; the answer moves it).
    Move {
        target: String,
        local: std::net::IpAddr,
        remote: std::net::IpAddr,
    },
}

/// One IKE SA as `Request::Sas` reports it. SPIs are hexadecimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaInfo {
    /// Our IKE SPI.
    pub spi: String,
    /// The connection's name.
    pub conn: String,
    pub initiator: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// UDP encapsulation (NAT-T) on the path.
    pub encap: bool,
    pub peer_id: Option<String>,
    /// Our virtual IP (client) or the one leased to the peer (gateway).
    pub vip: Option<std::net::IpAddr>,
    /// The dataplane path its children follow.
    pub path: u32,
    /// Milliseconds since it came up.
    pub age_ms: u64,
    pub children: Vec<ChildSaInfo>,
}

/// One child SA under an [`IkeSaInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaInfo {
    pub id: u64,
    pub spi_in: String,
    pub spi_out: String,
    /// The ESP transform, e.g. `aes128gcm16`, `chacha20poly1305`, `aes256-sha384`.
    pub encr: String,
    pub esn: bool,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// The dataplane tunnel.
    pub tunnel: u32,
    /// False once a rekey replaced its outbound SA (its inbound SA lingers until deleted).
    pub outbound: bool,
}

/// One path as `Request::Paths` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathInfo {
    pub name: String,
    pub id: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `udp` or `esp`.
    pub encap: String,
    pub generation: u64,
    pub published_ns: u64,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Error {
        message: String,
    },
    /// `PathSet` done: the generation the path now carries.
    PathMoved {
        name: String,
        generation: u64,
    },
    Stats {
        counters: Vec<(String, u64)>,
    },
    Paths {
        paths: Vec<PathInfo>,
    },
    Sas {
        sas: Vec<IkeSaInfo>,
    },
    /// `Move` started: the IKE SA that is moving.
    Moving {
        sa: String,
    },
}

struct Client {
    stream: UnixStream,
    /// Bytes of an unfinished line.
    rbuf: Vec<u8>,
    /// Response bytes not yet written.
    wbuf: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    /// The peer closed its side: answer what is buffered, then close.
    eof: bool,
}

/// The listening side.
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
}

impl CtlServer {
    /// Binds `path` (mode 0600), replacing a stale socket left by a previous run. Refuses to
    /// replace anything that is not a socket, or a socket someone still listens on.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<CtlServer> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        ErrorKind::AddrInUse,
                        format!("{} is in use by a running process", path.display()),
                    ))
                }
                Err(_) => std::fs::remove_file(path)?,
            },
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; not replacing it",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        // Moving paths is an operator action: only the owner (root) may connect.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(CtlServer {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clients currently connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The descriptors to poll(2) before the next [`CtlServer::poll`], with the events
    /// that make it worth calling: the listener for new connections, every client for
    /// requests (unless its unread answers are backed up) and, with answers pending, for
    /// room to write them.
    pub fn wait_fds(&self) -> impl Iterator<Item = (RawFd, libc::c_short)> + '_ {
        let listener = std::iter::once((self.listener.as_raw_fd(), libc::POLLIN));
        listener.chain(self.clients.iter().map(|c| {
            let mut events = 0;
            if !c.eof && c.wbuf.len() < MAX_PENDING_OUT {
                events |= libc::POLLIN;
            }
            if !c.wbuf.is_empty() {
                events |= libc::POLLOUT;
            }
            (c.stream.as_raw_fd(), events)
        }))
    }

    /// Does whatever is ready without blocking: accepts connections, answers every
    /// complete request line through `handler`, writes pending responses. Returns the
    /// number of requests answered.
    pub fn poll(&mut self, mut handler: impl FnMut(Request) -> Response) -> usize {
        self.accept();
        let mut answered = 0;
        for c in &mut self.clients {
            answered += serve(c, &mut handler);
        }
        self.clients.retain(|c| !(c.eof && c.wbuf.is_empty()));
        answered
    }

    fn accept(&mut self) {
        // Bounded per poll so a connection flood cannot starve the caller.
        for _ in 0..MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        continue; // dropped: closed
                    }
                    self.clients.push(Client {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        discarding: false,
                        eof: false,
                    });
                }
                Err(_) => break, // WouldBlock, or a transient error retried next poll
            }
        }
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads, answers and writes what is ready for one client; returns requests answered.
fn serve(c: &mut Client, handler: &mut impl FnMut(Request) -> Response) -> usize {
    let mut answered = 0;
    let mut buf = [0u8; 16 * 1024];
    // Bounded per poll so one busy client cannot starve the others.
    for _ in 0..16 {
        if c.eof || c.wbuf.len() >= MAX_PENDING_OUT {
            break;
        }
        match c.stream.read(&mut buf) {
            Ok(0) => c.eof = true,
            Ok(n) => answered += absorb(c, buf.get(..n).unwrap_or_default(), handler),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                c.eof = true;
                c.wbuf.clear();
            }
        }
    }
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(0) => {
                c.wbuf.clear();
                c.eof = true;
            }
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                // The peer went away: nothing more can be delivered.
                c.wbuf.clear();
                c.eof = true;
            }
        }
    }
    answered
}

/// Splits `data` into lines and answers each complete one.
fn absorb(c: &mut Client, mut data: &[u8], handler: &mut impl FnMut(Request) -> Response) -> usize {
    let mut answered = 0;
    while !data.is_empty() {
        let nl = data.iter().position(|&b| b == b'\n');
        let (chunk, rest, complete) = match nl {
            Some(i) => (
                data.get(..i).unwrap_or_default(),
                data.get(i + 1..).unwrap_or_default(),
                true,
            ),
            None => (data, &[][..], false),
        };
        data = rest;
        if c.discarding {
            c.discarding = !complete;
            continue;
        }
        if c.rbuf.len() + chunk.len() > MAX_LINE {
            c.rbuf.clear();
            c.discarding = !complete;
            respond(
                c,
                &Response::Error {
                    message: format!("request line longer than {MAX_LINE} bytes; ignored"),
                },
            );
            answered += 1;
            continue;
        }
        c.rbuf.extend_from_slice(chunk);
        if !complete {
            break;
        }
        let line = std::mem::take(&mut c.rbuf);
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let resp = match serde_json::from_slice::<Request>(text) {
            Ok(req) => handler(req),
            Err(e) => Response::Error {
                message: format!("malformed request: {e}"),
            },
        };
        respond(c, &resp);
        answered += 1;
    }
    answered
}

fn respond(c: &mut Client, resp: &Response) {
    match serde_json::to_vec(resp) {
        Ok(mut v) => {
            v.push(b'\n');
            c.wbuf.extend_from_slice(&v);
        }
        Err(e) => {
            let fallback =
                format!("{{\"status\":\"error\",\"message\":\"cannot encode response: {e}\"}}\n");
            c.wbuf
                .extend_from_slice(fallback.replace('\\', "/").as_bytes());
        }
    }
}

/// Sends one request to the server at `socket` and waits up to `timeout` for its answer.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot connect to {}: {e}", socket.display()),
        )
    })?;
    let remaining = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                ErrorKind::TimedOut,
                "no response from mobiked in time",
            ))
        } else {
            Ok(left)
        }
    };
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    let mut line =
        serde_json::to_vec(req).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "no response from mobiked in time",
                ))
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "mobiked closed the connection without answering",
            ));
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            resp.extend_from_slice(chunk.get(..i).unwrap_or_default());
            break;
        }
        resp.extend_from_slice(chunk);
        if resp.len() > MAX_RESPONSE_LINE {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "response line too long",
            ));
        }
    }
    serde_json::from_slice(&resp)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("malformed response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_stable() {
        let r = Request::PathSet {
            name: "main".into(),
            local: "10.0.0.1:4500".parse().unwrap(),
            remote: "[2001:db8::2]:4500".parse().unwrap(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"path_set","name":"main","local":"10.0.0.1:4500","remote":"[2001:db8::2]:4500"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Request::Stats).unwrap(),
            r#"{"cmd":"stats"}"#
        );
        let resp = Response::Stats {
            counters: vec![("rx".into(), 3)],
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"status":"stats","counters":[["rx",3]]}"#
        );
        assert!(serde_json::from_str::<Request>(
            r#"{"cmd":"path_set","name":"m","local":"10.0.0.1:1","remote":"10.0.0.2:1","x":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"path_set","name":"m"}"#).is_err());
    }

    /// poll(2) on the server's descriptors, `ms` at most; the ready (fd, revents).
    fn ready(server: &CtlServer, ms: i32) -> Vec<(RawFd, libc::c_short)> {
        let mut fds: Vec<libc::pollfd> = server
            .wait_fds()
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` initialised pollfd structures
        // that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        assert!(n >= 0, "poll: {}", io::Error::last_os_error());
        fds.iter()
            .filter(|p| p.revents != 0)
            .map(|p| (p.fd, p.revents))
            .collect()
    }

    #[test]
    fn wait_fds_become_ready_for_connections_and_requests() {
        let dir = std::env::temp_dir().join(format!("mobiked-ctl-wait-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("ctl.sock");
        let mut server = CtlServer::bind(&path).unwrap();
        assert_eq!(server.wait_fds().count(), 1, "the listener alone");
        assert!(ready(&server, 0).is_empty(), "nothing to do yet");

        // A connection makes the listener readable; after the accept the client's
        // stream is polled for requests.
        let mut client = UnixStream::connect(&path).unwrap();
        let listener = server.listener.as_raw_fd();
        assert_eq!(ready(&server, 5000), [(listener, libc::POLLIN)]);
        assert_eq!(server.poll(|_| Response::Ok), 0);
        let fds: Vec<_> = server.wait_fds().collect();
        assert_eq!(fds.len(), 2);
        assert_eq!(fds[1].1, libc::POLLIN);
        assert!(ready(&server, 0).is_empty());

        // A request line makes it readable; the answer goes out in the same poll.
        client.write_all(b"{\"cmd\":\"stats\"}\n").unwrap();
        let r = ready(&server, 5000);
        assert_eq!(r, [(fds[1].0, libc::POLLIN)]);
        assert_eq!(server.poll(|_| Response::Ok), 1);
        let mut line = [0u8; 64];
        let n = client.read(&mut line).unwrap();
        assert_eq!(&line[..n], b"{\"status\":\"ok\"}\n");

        // An answer the client does not read yet is waited on for writing.
        server.clients[0].wbuf.extend_from_slice(b"pending\n");
        assert_eq!(
            server.wait_fds().nth(1).unwrap().1,
            libc::POLLIN | libc::POLLOUT
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
