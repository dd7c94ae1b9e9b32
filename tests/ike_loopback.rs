//! `mobiked gateway` and `mobiked client` as real processes over loopback, without
//! privileges: the udp cipher backend on 127.x addresses, IKE on an unprivileged port,
//! no protected side (`--no-clear`). Both ends must report, through their control
//! sockets, the same IKE SAs and child SAs with mirrored SPIs and one virtual IP per
//! client instance; a client stopping must delete its SAs on the gateway.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mobiked");
const IKE_PORT: u16 = 10500;
const NAT_T_PORT: u16 = 14500;
const INSTANCES: usize = 2;

/// Kills (by PID, through `Child`) whatever the test started, even when it fails.
struct Procs(Vec<(&'static str, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    fn get(&mut self, name: &str) -> &mut Child {
        &mut self.0.iter_mut().find(|(n, _)| *n == name).unwrap().1
    }
}

/// SIGTERM to a child this test spawned and has not reaped (so its PID is still ours).
fn sigterm(c: &Child) {
    let st = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "SIGTERM to {}", c.id());
}

/// Waits for a child to exit, at most `limit`.
fn wait_exit(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn sas(sock: &Path) -> Option<Vec<Value>> {
    let out = Command::new(BIN)
        .args(["ctl", "-s"])
        .arg(sock)
        .arg("sas")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("sas")?.as_array().cloned()
}

/// Polls `sock` until `ok` holds for its SA list, at most `limit`; on failure the
/// panic shows the last answer and the `logs`.
fn wait_sas(
    sock: &Path,
    limit: Duration,
    logs: &[&Path],
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let t0 = Instant::now();
    let mut last = Vec::new();
    while t0.elapsed() < limit {
        if let Some(v) = sas(sock) {
            if ok(&v) {
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs: String = logs
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            format!("--- {} ---\n{text}", p.display())
        })
        .collect();
    panic!(
        "{}: condition not met within {limit:?}; last answer: {}\n{logs}",
        sock.display(),
        serde_json::to_string_pretty(&last).unwrap()
    );
}

fn all_up(v: &[Value], n: usize) -> bool {
    v.len() == n
        && v.iter()
            .all(|s| s["children"].as_array().is_some_and(|c| c.len() == 1))
}

fn config(me: &str, sock: &Path, conn: &str) -> String {
    config_sized(me, sock, conn, 64)
}

fn config_sized(me: &str, sock: &Path, conn: &str, max_sas: usize) -> String {
    format!(
        "dataplane:\n  workers: 1\n  max_sas: {max_sas}\n  mode: esp\n\
         cipher:\n  backend: udp\n  bind: [\"{me}:{NAT_T_PORT}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         control:\n  socket: {}\n\
         ike:\n  listen: [{me}]\n  port: {IKE_PORT}\n  port_nat_t: {NAT_T_PORT}\n\
         {conn}",
        sock.display()
    )
}

fn spawn(name: &'static str, role: &str, cfg: &Path, log: &Path) -> (&'static str, Child) {
    let child = Command::new(BIN)
        .arg(role)
        .arg("-c")
        .arg(cfg)
        .arg("--no-clear")
        .args(["--log", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {BIN} {role}: {e}"));
    (name, child)
}

/// A gateway and a client process on addresses of their own.
struct Pair {
    dir: PathBuf,
    gw_ip: String,
    cl_ip: String,
    gw_sock: PathBuf,
    cl_sock: PathBuf,
    gw_cfg: PathBuf,
    cl_cfg: PathBuf,
    gw_log: PathBuf,
    cl_log: PathBuf,
}

impl Pair {
    /// Writes and checks both configurations. `index` keeps the addresses of the tests
    /// of one run apart; `client_extra` is added to the client's connection.
    fn new(index: u32, instances: usize, client_extra: &str) -> Pair {
        Pair::sized(index, instances, client_extra, 64)
    }

    /// The same with the gateway's `dataplane.max_sas`.
    fn sized(index: u32, instances: usize, client_extra: &str, gw_max_sas: usize) -> Pair {
        let pid = std::process::id();
        // Addresses of our own in 127/8, so parallel runs and other daemons do not collide.
        let (x, y) = (10 + pid % 200, (pid / 200) % 50 + 1 + index % 4 * 50);
        let gw_ip = format!("127.{x}.{y}.1");
        let cl_ip = format!("127.{x}.{y}.2");
        let dir = std::env::temp_dir().join(format!("mobiked-ike-loopback-{pid}-{index}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let gw_sock = dir.join("gw.sock");
        let cl_sock = dir.join("cl.sock");
        let psk = "0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365";
        let gw_cfg = dir.join("gw.yaml");
        let cl_cfg = dir.join("cl.yaml");
        fs::write(
            &gw_cfg,
            config_sized(
                &gw_ip,
                &gw_sock,
                &format!(
                    "pools:\n  - name: vpn4\n    addrs: 10.3.0.0/24\n\
                     connections:\n  - name: rw\n    local_id: gw.mobiked.test\n    remote_id: \"%any\"\n\
                     \x20   psk: {psk}\n    local_ts: [10.1.0.0/24]\n    remote_ts: [10.3.0.0/24]\n    pools: [vpn4]\n"
                ),
                gw_max_sas,
            ),
        )
        .unwrap();
        fs::write(
            &cl_cfg,
            config(
                &cl_ip,
                &cl_sock,
                &format!(
                    "connections:\n  - name: home\n    peeraddr: \"{gw_ip}:{IKE_PORT}\"\n\
                     \x20   local_id: client-%n@mobiked.test\n    remote_id: gw.mobiked.test\n\
                     \x20   psk: {psk}\n    vips: [0.0.0.0]\n    remote_ts: [10.1.0.0/24]\n\
                     \x20   instances: {instances}\n{client_extra}"
                ),
            ),
        )
        .unwrap();
        for cfg in [&gw_cfg, &cl_cfg] {
            let out = Command::new(BIN).arg("check").arg(cfg).output().unwrap();
            assert!(
                out.status.success(),
                "{} does not validate: {}",
                cfg.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Pair {
            gw_log: dir.join("gw.log"),
            cl_log: dir.join("cl.log"),
            dir,
            gw_ip,
            cl_ip,
            gw_sock,
            cl_sock,
            gw_cfg,
            cl_cfg,
        }
    }
}

#[test]
fn client_and_gateway_agree_on_sas_and_clean_up() {
    let pair = Pair::new(0, INSTANCES, "");
    let Pair {
        dir,
        gw_ip,
        cl_ip,
        gw_sock,
        cl_sock,
        gw_cfg,
        cl_cfg,
        gw_log,
        cl_log,
    } = &pair;
    let logs = [gw_log.as_path(), cl_log.as_path()];
    let mut procs = Procs(Vec::new());
    procs.0.push(spawn("gw", "gateway", gw_cfg, gw_log));
    // The gateway must be answering before the client's first IKE_SA_INIT is worth
    // measuring; the client retransmits anyway.
    wait_sas(gw_sock, Duration::from_secs(10), &logs, |v| v.is_empty());
    let t0 = Instant::now();
    procs.0.push(spawn("cl", "client", cl_cfg, cl_log));
    let cl = wait_sas(cl_sock, Duration::from_secs(20), &logs, |v| {
        all_up(v, INSTANCES)
    });
    let up = t0.elapsed();
    let gw = wait_sas(gw_sock, Duration::from_secs(5), &logs, |v| {
        all_up(v, INSTANCES)
    });
    eprintln!("{INSTANCES} tunnels up {up:?} after the client started");

    let mut vips = Vec::new();
    for c in &cl {
        assert_eq!(c["initiator"], true);
        assert_eq!(c["encap"], true, "the udp backend forces UDP encapsulation");
        assert_eq!(c["remote"], format!("{gw_ip}:{NAT_T_PORT}"));
        let ch = &c["children"][0];
        // The gateway's matching child: its inbound SPI is our outbound one and back.
        let g = gw
            .iter()
            .find(|g| {
                let gc = &g["children"][0];
                gc["spi_in"] == ch["spi_out"] && gc["spi_out"] == ch["spi_in"]
            })
            .unwrap_or_else(|| panic!("no gateway child mirrors {ch}"));
        assert_eq!(g["initiator"], false);
        assert_eq!(g["remote"], format!("{cl_ip}:{NAT_T_PORT}"));
        assert_eq!(g["vip"], c["vip"], "the gateway leased what the client got");
        let vip = c["vip"].as_str().expect("a virtual IP").to_string();
        assert!(vip.starts_with("10.3.0."), "{vip}");
        assert_eq!(ch["local_ts"], serde_json::json!([format!("{vip}/32")]));
        assert_eq!(ch["remote_ts"], serde_json::json!(["10.1.0.0/24"]));
        assert_eq!(
            g["children"][0]["local_ts"],
            serde_json::json!(["10.1.0.0/24"])
        );
        vips.push(vip);
    }
    vips.sort();
    vips.dedup();
    assert_eq!(vips.len(), INSTANCES, "each instance has its own lease");

    // The client deletes its SAs on SIGTERM; the gateway removes them.
    sigterm(procs.get("cl"));
    let st = wait_exit(procs.get("cl"), Duration::from_secs(10)).expect("client exits");
    assert!(st.success(), "client exit status {st}");
    wait_sas(gw_sock, Duration::from_secs(5), &logs, |v| v.is_empty());
    sigterm(procs.get("gw"));
    let st = wait_exit(procs.get("gw"), Duration::from_secs(10)).expect("gateway exits");
    assert!(st.success(), "gateway exit status {st}");

    let cl_text = fs::read_to_string(cl_log).unwrap();
    let gw_text = fs::read_to_string(gw_log).unwrap();
    for (name, text) in [("client", &cl_text), ("gateway", &gw_text)] {
        assert_eq!(
            text.matches("IKE SA up").count(),
            INSTANCES,
            "{name} log:\n{text}"
        );
        assert_eq!(
            text.matches("child SA up").count(),
            INSTANCES,
            "{name} log:\n{text}"
        );
        assert!(text.contains("IKE counters"), "{name} log:\n{text}");
        assert!(!text.contains("install failed"), "{name} log:\n{text}");
    }
    let _ = fs::remove_dir_all(dir);
}

/// The SPIs of the only IKE SA and its only child: (IKE SPI, child spi_in, spi_out).
fn only_sa(v: &[Value]) -> Option<(String, String, String)> {
    let [s] = v else { return None };
    let [c] = s["children"].as_array()?.as_slice() else {
        return None;
    };
    Some((
        s["spi"].as_str()?.to_string(),
        c["spi_in"].as_str()?.to_string(),
        c["spi_out"].as_str()?.to_string(),
    ))
}

#[test]
fn rekeys_keep_both_ends_in_step() {
    // Child SA rekeyed every 2 s, IKE SA every 3 s: within a few seconds both have been
    // replaced on both ends, and the tables hold exactly the new SAs.
    let pair = Pair::new(
        1,
        1,
        "    rekey_time: 3s\n    over_time: 2s\n    rand_time: 0s\n\
         \x20   children: { rekey_time: 2s, life_time: 4s, rand_time: 0s }\n",
    );
    let logs = [pair.gw_log.as_path(), pair.cl_log.as_path()];
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn("gw", "gateway", &pair.gw_cfg, &pair.gw_log));
    wait_sas(&pair.gw_sock, Duration::from_secs(10), &logs, |v| {
        v.is_empty()
    });
    procs
        .0
        .push(spawn("cl", "client", &pair.cl_cfg, &pair.cl_log));
    let first = wait_sas(&pair.cl_sock, Duration::from_secs(20), &logs, |v| {
        only_sa(v).is_some()
    });
    let (ike0, in0, _) = only_sa(&first).unwrap();
    // Both replaced, and the gateway mirrors the client's current child.
    wait_sas(&pair.cl_sock, Duration::from_secs(15), &logs, |v| {
        let Some((ike, spi_in, spi_out)) = only_sa(v) else {
            return false;
        };
        if ike == ike0 || spi_in == in0 {
            return false;
        }
        sas(&pair.gw_sock)
            .as_deref()
            .and_then(only_sa)
            .is_some_and(|(_, g_in, g_out)| g_in == spi_out && g_out == spi_in)
    });
    sigterm(procs.get("cl"));
    wait_exit(procs.get("cl"), Duration::from_secs(10)).expect("client exits");
    wait_sas(&pair.gw_sock, Duration::from_secs(5), &logs, |v| {
        v.is_empty()
    });
    sigterm(procs.get("gw"));
    wait_exit(procs.get("gw"), Duration::from_secs(10)).expect("gateway exits");
    for log in logs {
        let text = fs::read_to_string(log).unwrap();
        assert!(
            text.contains("IKE SA rekeyed"),
            "{}:\n{text}",
            log.display()
        );
        assert!(text.contains("rekey_of=Some"), "{}:\n{text}", log.display());
        assert!(
            !text.contains("install failed"),
            "{}:\n{text}",
            log.display()
        );
    }
    let _ = fs::remove_dir_all(&pair.dir);
}

/// The client's second address, beside `cl_ip` (`127.x.y.2` -> `127.x.y.3`).
fn second(ip: &str) -> String {
    let (net, _) = ip.rsplit_once('.').unwrap();
    format!("{net}.3")
}

/// A pair with MOBIKE on both ends and two client addresses (`cl_ip` and the
/// returned one), both listened on and bound; `extra` goes into the client's
/// connection.
fn mobike_pair(index: u32, extra: &str) -> (Pair, String) {
    let pair = Pair::new(index, 1, "    mobike: true\n");
    let cl2 = second(&pair.cl_ip);
    // The client owns both of its addresses: IKE and ESP on each.
    let text = fs::read_to_string(&pair.cl_cfg).unwrap();
    let text = text
        .replace(
            &format!("bind: [\"{}:{NAT_T_PORT}\"]", pair.cl_ip),
            &format!(
                "bind: [\"{}:{NAT_T_PORT}\", \"{cl2}:{NAT_T_PORT}\"]",
                pair.cl_ip
            ),
        )
        .replace(
            &format!("listen: [{}]", pair.cl_ip),
            &format!("listen: [{}, {cl2}]", pair.cl_ip),
        )
        .replace(
            "    mobike: true\n",
            &format!(
                "    mobike: true\n    local_addrs: [{}, {cl2}]\n{extra}",
                pair.cl_ip
            ),
        );
    fs::write(&pair.cl_cfg, text).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(&pair.cl_cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gw_text = fs::read_to_string(&pair.gw_cfg).unwrap().replace(
        "    pools: [vpn4]\n",
        "    pools: [vpn4]\n    mobike: true\n",
    );
    fs::write(&pair.gw_cfg, gw_text).unwrap();
    (pair, cl2)
}

#[test]
fn an_operator_move_takes_both_ends_to_the_new_pair_with_the_same_child_sas() {
    let (pair, cl2) = mobike_pair(2, "");
    let logs = [pair.gw_log.as_path(), pair.cl_log.as_path()];
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn("gw", "gateway", &pair.gw_cfg, &pair.gw_log));
    wait_sas(&pair.gw_sock, Duration::from_secs(10), &logs, |v| {
        v.is_empty()
    });
    procs
        .0
        .push(spawn("cl", "client", &pair.cl_cfg, &pair.cl_log));
    let first = wait_sas(&pair.cl_sock, Duration::from_secs(20), &logs, |v| {
        only_sa(v).is_some()
    });
    let (_, in0, out0) = only_sa(&first).unwrap();
    // MOBIKE keeps IKE on the NAT-T port.
    assert_eq!(
        first[0]["local"].as_str(),
        Some(format!("{}:{NAT_T_PORT}", pair.cl_ip).as_str())
    );
    let out = Command::new(BIN)
        .args(["ctl", "-s"])
        .arg(&pair.cl_sock)
        .args(["move", "--conn", "home", "--local", &cl2, "--remote"])
        .arg(&pair.gw_ip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl move: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_local = format!("{cl2}:{NAT_T_PORT}");
    wait_sas(&pair.cl_sock, Duration::from_secs(5), &logs, |v| {
        v.len() == 1 && v[0]["local"].as_str() == Some(new_local.as_str())
    });
    let gw = wait_sas(&pair.gw_sock, Duration::from_secs(5), &logs, |v| {
        v.len() == 1 && v[0]["remote"].as_str() == Some(new_local.as_str())
    });
    // The same child SA on both ends: moved, not renegotiated.
    let (_, g_in, g_out) = only_sa(&gw).unwrap();
    assert_eq!((g_in, g_out), (out0.clone(), in0.clone()));
    let now = sas(&pair.cl_sock).unwrap();
    let (_, in1, out1) = only_sa(&now).unwrap();
    assert_eq!((in1, out1), (in0, out0));
    // The gateway cannot move what it did not initiate.
    let out = Command::new(BIN)
        .args(["ctl", "-s"])
        .arg(&pair.gw_sock)
        .args([
            "move",
            "--conn",
            "rw",
            "--local",
            &pair.gw_ip,
            "--remote",
            &cl2,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    sigterm(procs.get("cl"));
    wait_exit(procs.get("cl"), Duration::from_secs(10)).expect("client exits");
    wait_sas(&pair.gw_sock, Duration::from_secs(5), &logs, |v| {
        v.is_empty()
    });
    sigterm(procs.get("gw"));
    wait_exit(procs.get("gw"), Duration::from_secs(10)).expect("gateway exits");
    let _ = fs::remove_dir_all(&pair.dir);
}

#[test]
fn the_rotation_policy_moves_the_client_every_lifetime() {
    let (pair, cl2) = mobike_pair(
        3,
        "    mobikeiplifetime: 1s\n    mobikechangeaddrtype: own-only\n",
    );
    let logs = [pair.gw_log.as_path(), pair.cl_log.as_path()];
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn("gw", "gateway", &pair.gw_cfg, &pair.gw_log));
    wait_sas(&pair.gw_sock, Duration::from_secs(10), &logs, |v| {
        v.is_empty()
    });
    procs
        .0
        .push(spawn("cl", "client", &pair.cl_cfg, &pair.cl_log));
    let first = wait_sas(&pair.cl_sock, Duration::from_secs(20), &logs, |v| {
        only_sa(v).is_some()
    });
    let (_, in0, _) = only_sa(&first).unwrap();
    let a = format!("{}:{NAT_T_PORT}", pair.cl_ip);
    let b = format!("{cl2}:{NAT_T_PORT}");
    // own-only with two addresses: a, then b, then a again, one lifetime apart;
    // the gateway follows each time.
    for want in [&b, &a] {
        wait_sas(&pair.cl_sock, Duration::from_secs(4), &logs, |v| {
            v.len() == 1 && v[0]["local"].as_str() == Some(want.as_str())
        });
        wait_sas(&pair.gw_sock, Duration::from_secs(2), &logs, |v| {
            v.len() == 1 && v[0]["remote"].as_str() == Some(want.as_str())
        });
    }
    let now = sas(&pair.cl_sock).unwrap();
    assert_eq!(only_sa(&now).map(|s| s.1), Some(in0), "moved, not rekeyed");
    sigterm(procs.get("cl"));
    wait_exit(procs.get("cl"), Duration::from_secs(10)).expect("client exits");
    sigterm(procs.get("gw"));
    wait_exit(procs.get("gw"), Duration::from_secs(10)).expect("gateway exits");
    let _ = fs::remove_dir_all(&pair.dir);
}

/// `mobiked ctl stats` as name -> value.
fn stats(sock: &Path) -> std::collections::HashMap<String, u64> {
    let out = Command::new(BIN)
        .args(["ctl", "-s"])
        .arg(sock)
        .arg("stats")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["counters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_full_gateway_refuses_the_surplus_children_and_the_client_keeps_trying() {
    // 12 client instances, room for 8 child SAs on the gateway: 8 tunnels, and the
    // other 4 refused with NO_ADDITIONAL_SAS (not negotiated and then never
    // installed), their IKE SAs deleted by the client, which retries with backoff.
    let pair = Pair::sized(3, 12, "", 8);
    let logs = [pair.gw_log.as_path(), pair.cl_log.as_path()];
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn("gw", "gateway", &pair.gw_cfg, &pair.gw_log));
    wait_sas(&pair.gw_sock, Duration::from_secs(10), &logs, |v| {
        v.is_empty()
    });
    procs
        .0
        .push(spawn("cl", "client", &pair.cl_cfg, &pair.cl_log));
    let with_child = |v: &[Value]| {
        v.iter()
            .filter(|s| s["children"].as_array().is_some_and(|c| !c.is_empty()))
            .count()
    };
    wait_sas(&pair.cl_sock, Duration::from_secs(20), &logs, |v| {
        with_child(v) == 8
    });
    // Long enough for every surplus instance to have been refused and retried.
    let t0 = Instant::now();
    let (mut gw, mut cl) = (stats(&pair.gw_sock), stats(&pair.cl_sock));
    while t0.elapsed() < Duration::from_secs(20) {
        gw = stats(&pair.gw_sock);
        cl = stats(&pair.cl_sock);
        if gw.get("ike_child_refused_capacity").copied().unwrap_or(0) >= 8
            && cl.get("client_retries").copied().unwrap_or(0) >= 8
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let get = |m: &std::collections::HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert_eq!(get(&gw, "child_sas"), 8, "gateway {gw:?}");
    assert_eq!(get(&cl, "child_sas"), 8, "client {cl:?}");
    assert!(
        get(&gw, "ike_child_refused_capacity") >= 8,
        "gateway {gw:?}"
    );
    assert!(get(&cl, "client_childless_deleted") >= 8, "client {cl:?}");
    assert_eq!(get(&gw, "install_failed"), 0, "gateway {gw:?}");
    // What the gateway lists is what it counts: no tunnel it cannot carry.
    let listed = sas(&pair.gw_sock).unwrap();
    assert_eq!(with_child(&listed), 8);
    assert!(listed.len() <= 12);
    let gw_text = fs::read_to_string(&pair.gw_log).unwrap();
    assert!(!gw_text.contains("install failed"), "{gw_text}");
    assert!(
        gw_text.contains("Refused(35)"),
        "the refusal is logged:\n{gw_text}"
    );
    let cl_text = fs::read_to_string(&pair.cl_log).unwrap();
    assert!(cl_text.contains("PeerError(35)"), "{cl_text}");
    let _ = fs::remove_dir_all(&pair.dir);
}
