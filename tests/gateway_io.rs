//! `mobiked gateway` and `mobiked client` as real processes over loopback, without
//! privileges (udp backend on 127.x addresses, `--no-clear`), for what their I/O does
//! rather than what they negotiate:
//! - IKE longer than a packet buffer on the NAT-T port is answered (RFC 7296 2:
//!   implementations SHOULD accept 3000 bytes; certificates need more);
//! - idle daemons, a tunnel up between them, use next to no CPU (a generous bound:
//!   performance is measured in perf/, this only catches a loop that spins).

mod common;

use common::Procs;
use control::ike::conn::{Conn, Identity};
use control::ike::crypto::random::SeededRandom;
use control::ike::sa::{Endpoint, EndpointConfig};
use serde_json::Value;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mobiked");
const IKE_PORT: u16 = 11500;
const NAT_T_PORT: u16 = 15500;
const PSK_HEX: &str = "0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365";
const PSK: &[u8] = b"mobiked-lab-psk--not-for-any-use";
/// RFC 7296 3.2: Vendor ID.
const PAYLOAD_V: u8 = 43;
const IKE_SA_INIT: u8 = 34;
const IKE_AUTH: u8 = 35;

/// Addresses of this test's own in 127/8 (`index` keeps the tests of one run apart).
fn addrs(index: u32) -> (String, String) {
    let pid = std::process::id();
    let (x, y) = (10 + pid % 200, (pid / 200) % 50 + 1 + index % 4 * 50);
    (format!("127.{x}.{y}.1"), format!("127.{x}.{y}.2"))
}

fn config(me: &str, sock: &Path, rest: &str) -> String {
    format!(
        "dataplane:\n  workers: 1\n  max_sas: 64\n\
         cipher:\n  backend: udp\n  bind: [\"{me}:{NAT_T_PORT}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         control:\n  socket: {}\n\
         ike:\n  listen: [{me}]\n  port: {IKE_PORT}\n  port_nat_t: {NAT_T_PORT}\n{rest}",
        sock.display()
    )
}

fn gateway_conf(gw: &str, sock: &Path) -> String {
    config(
        gw,
        sock,
        &format!(
            "pools:\n  - name: vpn4\n    addrs: 10.3.0.0/24\n\
             connections:\n  - name: rw\n    local_id: gw.mobiked.test\n    remote_id: \"%any\"\n\
             \x20   psk: {PSK_HEX}\n    local_ts: [10.1.0.0/24]\n    remote_ts: [10.3.0.0/24]\n    pools: [vpn4]\n"
        ),
    )
}

fn spawn(role: &str, cfg: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .arg(role)
        .arg("-c")
        .arg(cfg)
        .arg("--no-clear")
        .args(["--log", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {BIN} {role}: {e}"))
}

fn ctl(sock: &Path, what: &str) -> Option<Value> {
    let out = Command::new(BIN)
        .args(["ctl", "-s"])
        .arg(sock)
        .arg(what)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Polls `sock` until `ok` holds for `ctl sas`, at most `limit`; the log on failure.
fn wait_sas(sock: &Path, limit: Duration, log: &Path, ok: impl Fn(&[Value]) -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = ctl(sock, "sas").and_then(|v| v["sas"].as_array().cloned()) {
            if ok(&v) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{}: condition not met within {limit:?}\n{}",
        sock.display(),
        fs::read_to_string(log).unwrap_or_default()
    );
}

fn counter(sock: &Path, name: &str) -> u64 {
    let v = ctl(sock, "stats").expect("ctl stats");
    v["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c[0] == name)
        .and_then(|c| c[1].as_u64())
        .unwrap_or(0)
}

/// Appends a Vendor ID payload of `len` bytes to an unencrypted IKE message: the last
/// payload of the chain now names it, and the header's length grows (RFC 7296 3.1-3.2).
fn pad_with_vendor_id(msg: &mut Vec<u8>, len: usize) {
    let mut next_at = 16;
    let mut off = 28;
    while msg[next_at] != 0 {
        let plen = u16::from_be_bytes([msg[off + 2], msg[off + 3]]) as usize;
        next_at = off;
        off += plen;
    }
    assert_eq!(off, msg.len(), "payload chain ends at the message's end");
    msg[next_at] = PAYLOAD_V;
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&((4 + len) as u16).to_be_bytes());
    msg.extend((0..len).map(|i| (i % 256) as u8));
    let total = msg.len() as u32;
    msg[24..28].copy_from_slice(&total.to_be_bytes());
}

#[test]
fn gateway_answers_an_ike_sa_init_longer_than_a_packet_buffer_on_nat_t() {
    let (gw_ip, cl_ip) = addrs(0);
    let dir = std::env::temp_dir().join(format!("mobiked-gateway-io-{}-0", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("gw.sock");
    let cfg = dir.join("gw.yaml");
    let log = dir.join("gw.log");
    fs::write(&cfg, gateway_conf(&gw_ip, &sock)).unwrap();
    let procs = Procs(vec![spawn("gateway", &cfg, &log)]);
    wait_sas(&sock, Duration::from_secs(10), &log, |v| v.is_empty());

    // An initiator of our own, starting on the NAT-T port (RFC 7296 2.23 allows it),
    // behind the non-ESP marker (RFC 3948 2.2).
    let udp = UdpSocket::bind(format!("{cl_ip}:0")).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = udp.local_addr().unwrap();
    let gw: SocketAddr = format!("{gw_ip}:{NAT_T_PORT}").parse().unwrap();
    let mut conn = Conn::new("big", Identity::parse("big@mobiked.test").unwrap(), PSK);
    conn.peer_addrs = vec![gw];
    conn.local_addrs = vec![me];
    let mut ep = Endpoint::new(
        EndpointConfig {
            port: IKE_PORT,
            port_nat_t: NAT_T_PORT,
            ..EndpointConfig::default()
        },
        vec![conn],
        Box::new(SeededRandom::new(7)),
    );
    ep.initiate(1_000_000_000, 0, None).expect("initiate");

    let mut buf = vec![0u8; 70_000];
    // IKE_SA_INIT (again with a cookie if the gateway asks for one), until our endpoint
    // accepts the answer and moves on to IKE_AUTH.
    let mut auth = false;
    for round in 0..4 {
        let t = ep.poll_transmit().expect("a message to send");
        if t.data[18] == IKE_AUTH {
            auth = true;
            break;
        }
        assert_eq!(t.data[18], IKE_SA_INIT, "round {round}");
        let mut msg = t.data.clone();
        pad_with_vendor_id(&mut msg, 3500);
        let mut wire = vec![0u8; 4];
        wire.extend_from_slice(&msg);
        let sent_len = wire.len();
        assert!(sent_len > 3000);
        udp.send_to(&wire, gw).unwrap();
        let (n, from) = udp.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no answer to {sent_len} bytes: {e}\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        });
        assert_eq!(from, gw);
        assert_eq!(&buf[..4], &[0, 0, 0, 0], "the answer carries the marker");
        let resp = &buf[4..n];
        assert_eq!(resp[18], IKE_SA_INIT);
        assert_ne!(resp[19] & 0x20, 0, "a response");
        assert_eq!(resp[..8], msg[..8], "to our SPI");
        ep.handle_datagram(1_000_000_000, me, gw, resp);
    }
    assert!(auth, "the IKE_SA_INIT exchange did not complete");
    assert!(counter(&sock, "punt_ike_large") >= 1);
    assert_eq!(counter(&sock, "drop_oversize"), 0);
    // Every counter the dataplane and the engine declare is reported, zeros too.
    let v = ctl(&sock, "stats").expect("ctl stats");
    let names: Vec<&str> = v["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c[0].as_str())
        .collect();
    let declared = shared::counters::Counter::ALL
        .iter()
        .map(|c| c.name())
        .chain(control::ike::sa::Counters::NAMES.iter().copied())
        .chain(control::engine::EngineCounters::NAMES.iter().copied())
        .chain(control::mobility::MobilityCounters::NAMES.iter().copied())
        .chain(["inject_dropped", "ike_send_failed"]);
    for n in declared {
        assert!(
            names.contains(&n),
            "`{n}` missing from ctl stats: {names:?}"
        );
    }
    drop(procs);
    let _ = fs::remove_dir_all(&dir);
}

/// utime + stime of process `pid`, in clock ticks (proc(5)).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; fields count from after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn idle_gateway_and_client_use_next_to_no_cpu() {
    let (gw_ip, cl_ip) = addrs(1);
    let dir = std::env::temp_dir().join(format!("mobiked-gateway-io-{}-1", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (gw_sock, cl_sock) = (dir.join("gw.sock"), dir.join("cl.sock"));
    let (gw_cfg, cl_cfg) = (dir.join("gw.yaml"), dir.join("cl.yaml"));
    let (gw_log, cl_log) = (dir.join("gw.log"), dir.join("cl.log"));
    fs::write(&gw_cfg, gateway_conf(&gw_ip, &gw_sock)).unwrap();
    fs::write(
        &cl_cfg,
        config(
            &cl_ip,
            &cl_sock,
            &format!(
                "connections:\n  - name: home\n    peeraddr: \"{gw_ip}:{IKE_PORT}\"\n\
                 \x20   local_id: client@mobiked.test\n    remote_id: gw.mobiked.test\n\
                 \x20   psk: {PSK_HEX}\n    vips: [0.0.0.0]\n    remote_ts: [10.1.0.0/24]\n"
            ),
        ),
    )
    .unwrap();
    let mut procs = Procs(vec![spawn("gateway", &gw_cfg, &gw_log)]);
    wait_sas(&gw_sock, Duration::from_secs(10), &gw_log, |v| v.is_empty());
    procs.0.push(spawn("client", &cl_cfg, &cl_log));
    let up =
        |v: &[Value]| v.len() == 1 && v[0]["children"].as_array().is_some_and(|c| c.len() == 1);
    wait_sas(&cl_sock, Duration::from_secs(20), &cl_log, up);
    wait_sas(&gw_sock, Duration::from_secs(5), &gw_log, up);

    // A tunnel up, no traffic: five seconds of each daemon's CPU time.
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let secs = t0.elapsed().as_secs_f64();
    // SAFETY: sysconf(3) with a valid name has no other effect.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for (name, (&pid, b)) in ["gateway", "client"].iter().zip(pids.iter().zip(before)) {
        let pct = (cpu_ticks(pid) - b) as f64 / hz / secs * 100.0;
        eprintln!("{name}: {pct:.2} % of a core while idle");
        assert!(pct < 2.0, "{name} uses {pct:.1} % of a core while idle");
    }
    drop(procs);
    let _ = fs::remove_dir_all(&dir);
}
