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
fn the_lab_brings_up_clients_moves_and_rekeys_them_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("mobiked-lab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, html) = (dir.join("lab.json"), dir.join("lab.html"));
    let out = Command::new(BIN)
        .args([
            "lab",
            "--clients",
            "40",
            "--duration",
            "5",
            "--rotate",
            "1",
            "--rekey",
            "2",
        ])
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
    // Child SA rekeys every 1.8-2 s under the rotations and the streams, and still
    // nothing lost (above) and every tunnel up until the stop.
    assert!(total(&r, "child SA rekeys") >= 40.0, "{stdout}");
    assert_eq!(total(&r, "tunnels at the end"), 40.0, "{stdout}");
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

#[test]
fn an_interrupted_lab_tears_down_and_reports_what_it_measured() {
    let dir = std::env::temp_dir().join(format!("mobiked-lab-int-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("lab.json");
    let child = Command::new(BIN)
        .args([
            "lab",
            "--clients",
            "10",
            "--duration",
            "60",
            "--port",
            "24800",
        ])
        .args(["--log", "warn", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted run is no success");
    assert!(stderr.contains("incomplete run: interrupted"), "{stderr}");
    let r = RunReport::load(&json).unwrap();
    assert!(!r.complete);
    assert!(r.duration_s < 10.0, "{}", r.duration_s);
    assert_eq!(total(&r, "tunnels up"), 10.0);
    assert_eq!(total(&r, "gateway IKE SAs left"), 0.0, "torn down");
    // The ports are free again.
    std::net::UdpSocket::bind("127.77.0.1:24800").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
