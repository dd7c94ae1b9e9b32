//! `mobiked lab` as a user runs it: a gateway and emulated clients in one process over
//! loopback, real IKE, MOBIKE rotation and a stream in every tunnel; its JSON and HTML
//! reports. Unprivileged.

use perf::rig::report::RunReport;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mobiked");

fn total(r: &RunReport, name: &str) -> f64 {
    r.get_total(name)
        .unwrap_or_else(|| panic!("no total `{name}` in the report"))
}

#[test]
fn the_lab_brings_up_clients_moves_them_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("mobiked-lab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, html) = (dir.join("lab.json"), dir.join("lab.html"));
    let out = Command::new(BIN)
        .args(["lab", "--clients", "40", "--duration", "5", "--rotate", "1"])
        .args(["--port", "24600", "--log", "warn", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r = RunReport::load(&json).unwrap();
    assert!(r.complete);
    assert_eq!(total(&r, "tunnels up"), 40.0, "{stdout}");
    assert_eq!(total(&r, "setup failures"), 0.0, "{stdout}");
    // Every client's rotation ran (one a second, spread) and each was answered.
    let (started, done) = (total(&r, "handovers started"), total(&r, "handovers done"));
    assert!(done >= 80.0 && done + 40.0 >= started, "{stdout}");
    // Make-before-break rotation in both directions: nothing lost, nothing foreign.
    assert!(total(&r, "sent") > 1000.0, "{stdout}");
    assert_eq!(total(&r, "lost"), 0.0, "{stdout}");
    assert_eq!(total(&r, "bad"), 0.0, "{stdout}");
    assert_eq!(total(&r, "gateway IKE SAs left"), 0.0, "{stdout}");
    let signal = r.get_metric("T_signal").expect("T_signal");
    assert_eq!(signal.count as f64, done);
    assert!(signal.p50 > 0.0 && signal.p50 < 50.0, "T_signal {signal:?}");
    assert!(stdout.contains("| T_signal"), "the table: {stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-metric=\"T_signal\"") && page.contains("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lab_on_ports_in_use_says_so() {
    // What another lab (or an IKE daemon) holding the NAT-T port looks like.
    let _held = std::net::UdpSocket::bind("127.77.0.1:24701").unwrap();
    let out = Command::new(BIN)
        .args([
            "lab",
            "--clients",
            "2",
            "--duration",
            "1",
            "--port",
            "24701",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("UDP port 24701") && stderr.contains("give another --port"),
        "{stderr}"
    );
}
