//! `mobiked gateway --traffic` and `mobiked client --traffic` as separate processes
//! over loopback: tunnels come up at the client's configured setup rate, every tunnel
//! carries a stream both ways, and each process writes its run report at the end.
//! Unprivileged.

mod common;

use common::Procs;
use perf::rig::report::RunReport;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mobiked");
const PSK: &str = "0x62656e63686d61726b2d6f6e6c792d70736b2d6e6f742d666f722d757365";

fn term(c: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(c: &mut Child, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(s)) = c.try_wait() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn total(r: &RunReport, name: &str) -> f64 {
    r.get_total(name).unwrap_or_else(|| panic!("no `{name}`"))
}

#[test]
fn client_and_gateway_processes_carry_a_stream_per_tunnel_and_report_it() {
    let dir = std::env::temp_dir().join(format!("mobiked-traffic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = dir.join("gw.yaml");
    let cl = dir.join("cl.yaml");
    std::fs::write(
        &gw,
        format!(
            "dataplane: {{ workers: 1, max_sas: 256 }}\n\
             cipher: {{ backend: udp, bind: [\"127.0.0.1:25500\"] }}\n\
             clear: {{ backend: tun, name: unused0 }}\n\
             ike: {{ listen: [127.0.0.1], port: 21500, port_nat_t: 25500 }}\n\
             pools:\n  - {{ name: vpn4, addrs: 10.64.0.0/24 }}\n\
             connections:\n  - name: rw\n    local_id: gw.test\n    remote_id: \"%any\"\n    psk: {PSK}\n\
             \x20   local_ts: [10.1.0.0/24]\n    pools: [vpn4]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &cl,
        format!(
            "dataplane: {{ workers: 1, max_sas: 256 }}\n\
             cipher: {{ backend: udp, bind: [\"127.0.0.2:25500\"] }}\n\
             clear: {{ backend: tun, name: unused0 }}\n\
             ike: {{ listen: [127.0.0.2], port: 21500, port_nat_t: 25500, setup_rate: 40 }}\n\
             connections:\n  - name: home\n    peeraddr: \"127.0.0.1:21500\"\n    local_id: c-%n@test\n\
             \x20   remote_id: gw.test\n    psk: {PSK}\n    vips: [0.0.0.0]\n    remote_ts: [10.1.0.0/24]\n\
             \x20   instances: 20\n"
        ),
    )
    .unwrap();
    let spawn = |role: &str, cfg: &std::path::Path, report: &str| {
        Command::new(BIN)
            .arg(role)
            .arg("-c")
            .arg(cfg)
            .args(["--traffic", "20", "--log", "warn", "--report"])
            .arg(dir.join(report))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut procs = Procs(vec![spawn("gateway", &gw, "gw.json")]);
    std::thread::sleep(Duration::from_millis(300));
    procs.0.push(spawn("client", &cl, "cl.json"));
    // 20 tunnels at 40 per second take half a second; then two seconds of streams.
    std::thread::sleep(Duration::from_millis(2500));
    term(&procs.0[1]);
    assert!(
        wait_exit(&mut procs.0[1], Duration::from_secs(10)),
        "client"
    );
    term(&procs.0[0]);
    assert!(
        wait_exit(&mut procs.0[0], Duration::from_secs(10)),
        "gateway"
    );
    let c = RunReport::load(&dir.join("cl.json")).unwrap();
    let g = RunReport::load(&dir.join("gw.json")).unwrap();
    assert_eq!(total(&c, "tunnels up"), 20.0);
    // The setup rate is the configured one (40/s: 19 intervals of 25 ms).
    let rate = total(&c, "setup rate");
    assert!((30.0..=45.0).contains(&rate), "setup rate {rate}");
    for r in [&c, &g] {
        assert!(
            total(r, "sent") > 300.0 && total(r, "received") > 300.0,
            "{r:?}"
        );
        assert_eq!(total(r, "lost"), 0.0);
        assert_eq!(total(r, "bad"), 0.0);
    }
    // Each end received about what the other sent (the last packets of a stream can
    // be cut off by the client's DELETEs).
    let (up_sent, up_rx) = (total(&c, "sent"), total(&g, "received"));
    assert!(
        up_rx <= up_sent && up_rx + 60.0 >= up_sent,
        "{up_sent} {up_rx}"
    );
    assert_eq!(total(&g, "IKE SAs at the end"), 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
