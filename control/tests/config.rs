//! The static configuration against the shipped examples and a table of broken files, its
//! installation into real shared tables, and the control socket over a real unix socket.

use mobiked_control::config::{
    self, CipherBackend, ClearBackend, ConfigErrors, Mode, NextHop, StaticConfig,
};
use mobiked_control::ctl::{self, CtlServer, PathInfo, Request, Response, MAX_LINE};
use shared::path::{Encap, L2};
use shared::sa::EspCipher;
use shared::table::TableWriter;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn example_text(name: &str) -> String {
    std::fs::read_to_string(example(name)).expect("example exists")
}

fn parse_ok(text: &str) -> StaticConfig {
    config::parse(text).unwrap_or_else(|e| panic!("expected a valid configuration, got:\n{e}"))
}

fn parse_err(text: &str) -> ConfigErrors {
    match config::parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn examples_parse_and_validate() {
    let a = config::load(example("static-a.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.dataplane.workers, 1);
    assert_eq!(a.dataplane.burst, 64);
    assert_eq!(a.dataplane.mode, Mode::Esp);
    assert_eq!(
        a.cipher.backend,
        CipherBackend::Udp {
            bind: vec![sock("10.0.1.1:4500"), sock("10.0.2.1:4500")],
            gso: true,
            gro: true
        }
    );
    assert_eq!(
        a.clear.backend,
        ClearBackend::Tun {
            name: "mtun0".into()
        }
    );
    assert_eq!(
        a.control.socket.as_deref(),
        Some(Path::new("/run/mobiked-a.sock"))
    );
    assert_eq!(a.paths.len(), 1);
    assert_eq!(a.paths[0].local, sock("10.0.1.1:4500"));
    assert_eq!(a.paths[0].remote, sock("10.0.1.2:4500"));
    assert_eq!(a.paths[0].encap, Encap::Udp);
    assert_eq!(a.paths[0].keepalive_s, 20);
    assert_eq!(a.paths[0].next_hop_mac, None);
    let t = &a.tunnels[0];
    assert_eq!(
        (t.name.as_str(), t.path.as_str(), t.path_index),
        ("t1", "main", 0)
    );
    assert_eq!(t.local_ts, vec!["10.1.0.0/24".parse().unwrap()]);
    assert_eq!(t.outbound.spi, 0x1001);
    assert_eq!(t.outbound.cipher, EspCipher::AesGcm16_128);
    assert_eq!(t.outbound.key.len(), 20);
    assert_eq!(t.inbound.spi, 0x2001);
    assert_eq!(t.inbound.replay_window, 1024);

    // The two sides mirror each other: one side's outbound SA is the other's inbound SA.
    let b = config::load(example("static-b.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let tb = &b.tunnels[0];
    assert_eq!(
        (tb.inbound.spi, &tb.inbound.key),
        (t.outbound.spi, &t.outbound.key)
    );
    assert_eq!(
        (tb.outbound.spi, &tb.outbound.key),
        (t.inbound.spi, &t.inbound.key)
    );
    assert_eq!(b.paths[0].local, a.paths[0].remote);
    assert_eq!(tb.remote_ts, t.local_ts);

    for side in ["a", "b"] {
        let c = config::load(example(&format!("afpacket-{side}.yaml")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.cipher.backend,
            CipherBackend::AfPacket {
                interface: format!("{side}1"),
                rx: config::RxRingConf::default(),
            }
        );
        assert_eq!(c.paths[0].encap, Encap::Esp);
        assert_eq!(c.paths[0].keepalive_s, 0);
        assert_eq!(c.paths[0].next_hop_mac, Some(NextHop::Auto));
        assert_eq!(c.tunnels[0].outbound.cipher, EspCipher::AesGcm16_256);
        assert_eq!(c.tunnels[0].outbound.key.len(), 36);
    }

    assert_eq!(
        config::check_file(example("static-a.yaml")),
        Ok("ok: 1 path, 1 tunnel, 2 SAs".to_string())
    );
}

#[test]
fn defaults_for_optional_sections() {
    let c = parse_ok(
        "cipher: { backend: udp, bind: ['127.0.0.1:4500'] }\n\
         clear: { backend: tun, name: t0 }\n",
    );
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.burst, 64);
    assert_eq!(c.dataplane.replay_window, 1024);
    assert_eq!(c.dataplane.max_sas, 4096);
    assert_eq!(c.control.socket, None);
    assert!(c.paths.is_empty() && c.tunnels.is_empty());
}

/// (replace this, with this, expected key path, text the error must contain)
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "key: 0xe173505d16b84838f81f43c1ce12e7f6",
        "tunnels[0].outbound.key",
        "expected 40 hex digits (16-byte key + 4-byte salt) for aes128gcm16, got 32: append the 4-byte salt",
    ),
    (
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "key: e173505d16b84838f81f43c1ce12e7f697b40202",
        "tunnels[0].outbound.key",
        "prefix the hex digits with 0x",
    ),
    (
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b4020g",
        "tunnels[0].outbound.key",
        "`g` at position 41 is not a hex digit",
    ),
    (
        "key: 0x5705f7b50b5a70aa4e11a99e18b6d56e20bd93f6",
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "tunnels[0].inbound.key",
        "generate a fresh key for every SA",
    ),
    (
        "spi: 0x00001001, enc: aes128gcm16",
        "spi: 0x00001001, enc: aes256gcm16",
        "tunnels[0].outbound.key",
        "got 40: this is the length of an aes128gcm16 key",
    ),
    ("enc: aes128gcm16, key: 0xe1", "enc: aes128-gcm16, key: 0xe1", "tunnels[0].outbound.enc", "did you mean `aes128gcm16`?"),
    ("enc: aes128gcm16, key: 0xe1", "enc: aes128gcm8, key: 0xe1", "tunnels[0].outbound.enc", "only the 16-octet ICV"),
    ("enc: aes128gcm16, key: 0xe1", "enc: 3des, key: 0xe1", "tunnels[0].outbound.enc", "use aes128gcm16 or aes256gcm16"),
    ("spi: 0x00001001", "spi: 0x10", "tunnels[0].outbound.spi", "reserved by IANA"),
    ("spi: 0x00001001", "spi: 0", "tunnels[0].outbound.spi", "SPI 0 is reserved"),
    ("spi: 0x00001001", "spi: 0x100000000", "tunnels[0].outbound.spi", "does not fit in 32 bits"),
    ("spi: 0x00001001", "spi: one", "tunnels[0].outbound.spi", "write the SPI in hex"),
    ("esn: false }", "esn: maybe }", "tunnels[0].outbound.esn", "write true or false"),
    ("esn: false }", "esn: false, replay_window: 64 }", "tunnels[0].outbound.replay_window", "inbound SAs only"),
    ("key: 0xe1", "kye: 0xe1", "tunnels[0].outbound.kye", "unknown key `kye`: did you mean `key`?"),
    ("tunnels:", "tunnel:", "tunnel", "did you mean `tunnels`?"),
    ("  burst: 64", "  burts: 64", "dataplane.burts", "did you mean `burst`?"),
    ("  burst: 64", "  flux: 64", "dataplane.flux", "accepted keys here: workers, cores, burst, replay_window, max_sas, mode, poll"),
    ("    path: main", "    path: mian", "tunnels[0].path", "no path is named `mian`: did you mean `main`?"),
    ("  burst: 64", "  burst: 512", "dataplane.burst", "give a value from 1 to 256"),
    ("  burst: 64", "  burst: 64\n  poll: spin", "dataplane.poll", "busy"),
    ("  burst: 64", "  burst: 0", "dataplane.burst", "give a value from 1 to 256"),
    ("  burst: 64", "  burst: lots", "dataplane.burst", "`lots` is not a whole number"),
    ("  replay_window: 1024\n  max_sas", "  replay_window: 9000\n  max_sas", "dataplane.replay_window", "from 0 to 8192"),
    ("replay_window: 1024 }", "replay_window: 10000 }", "tunnels[0].inbound.replay_window", "from 0 to 8192"),
    ("  workers: 1", "  workers: 0", "dataplane.workers", "from 1 to 256"),
    ("  workers: 1", "  workers: 1\n  cores: [0, 1]", "dataplane.cores", "list exactly one core per worker (1)"),
    ("  workers: 1", "  workers: 2\n  cores: [1, 1]", "dataplane.cores[1]", "give each worker its own core"),
    ("  workers: 1", "  workers: 2", "dataplane.workers", "use `clear.backend: afpacket` for several workers"),
    ("  mode: esp", "  mode: clear", "dataplane.mode", "use one of: esp, plain"),
    ("  backend: udp", "  backend: upd", "cipher.backend", "did you mean `udp`?"),
    ("  backend: tun", "  backend: tnu", "clear.backend", "did you mean `tun`?"),
    ("  gso: true", "  gso: true\n  interface: eth0", "cipher.interface", "set the backend to afpacket"),
    ("  name: mtun0", "  name: mtun0\n  interface: eth1", "clear.interface", "set the backend to afpacket"),
    ("  name: mtun0", "  name: mtun0\n  next_hop_mac: 02:00:00:00:00:01", "clear.next_hop_mac", "set the backend to afpacket"),
    ("  name: mtun0", "  name: mtun0\n  rx_ring: frames", "clear.rx_ring", "set the backend to afpacket"),
    ("  backend: tun\n  name: mtun0", "  backend: afpacket\n  interface: veth-lan\n  rx_ring: frame", "clear.rx_ring", "did you mean `frames`?"),
    ("  backend: tun\n  name: mtun0", "  backend: afpacket\n  interface: veth-lan\n  rx_ring: frames\n  rx_block_timeout_ms: 2", "clear.rx_block_timeout_ms", "set `rx_ring: blocks`"),
    ("  backend: tun\n  name: mtun0", "  backend: afpacket\n  interface: veth-lan\n  rx_block_timeout_ms: 0", "clear.rx_block_timeout_ms", "from 1 to 10000"),
    ("  backend: tun\n  name: mtun0", "  backend: afpacket\n  interface: veth-lan\n  next_hop_mac: 02:00:00:00:00", "clear.next_hop_mac", "six hex pairs"),
    ("  name: mtun0", "  name: a-name-longer-than-ifnamsiz", "clear.name", "1 to 15 characters"),
    ("    encap: udp", "    encap: esp", "paths[0].encap", "set cipher.backend: afpacket"),
    ("    encap: udp", "    encap: udp\n    next_hop_mac: auto", "paths[0].next_hop_mac", "remove it"),
    ("    keepalive: 20", "    keepalive: 99999", "paths[0].keepalive", "from 0 to 3600"),
    ("    remote: 10.0.1.2:4500", "    remote: 10.0.1.2", "paths[0].remote", "add the port, e.g. 10.0.1.2:4500"),
    ("    remote: 10.0.1.2:4500", "    remote: 2001:db8::2", "paths[0].remote", "with brackets"),
    ("    remote: 10.0.1.2:4500", "    remote: \"[2001:db8::2]:4500\"", "paths[0].remote", "IPv4 at both ends or IPv6 at both ends"),
    ("    remote: 10.0.1.2:4500", "    remote: 0.0.0.0:4500", "paths[0].remote", "the peer's unicast address"),
    ("    local: 10.0.1.1:4500", "    local: 10.0.9.9:4500", "paths[0].local", "add 10.0.9.9:4500 to cipher.bind"),
    ("  - name: main", "  - name: \"main path\"", "paths[0].name", "letters, digits"),
    ("  socket: /run/mobiked-a.sock", "  socket: mobiked.sock", "control.socket", "use an absolute path"),
    ("  socket: /run/mobiked-a.sock", "  socket: /run/", "control.socket", "name the socket file"),
    ("local_ts: [10.1.0.0/24]", "local_ts: [10.1.0.0/33]", "tunnels[0].local_ts[0]", "0-32 for IPv4"),
    ("local_ts: [10.1.0.0/24]", "local_ts: [10.1.0.x/24]", "tunnels[0].local_ts[0]", "not an IP address"),
    ("local_ts: [10.1.0.0/24]", "local_ts: []", "tunnels[0].local_ts", "0.0.0.0/0 or ::/0 for everything"),
    ("    local_ts: [10.1.0.0/24]\n", "", "tunnels[0].local_ts", "required key is missing"),
    ("bind: [\"10.0.1.1:4500\", \"10.0.2.1:4500\"]", "bind: \"10.0.1.1:4500\"", "cipher.bind", "write a list"),
    ("bind: [\"10.0.1.1:4500\", \"10.0.2.1:4500\"]", "bind: [\"10.0.1.1:4500\", \"10.0.1.1:4500\"]", "cipher.bind[1]", "remove the duplicate"),
];

#[test]
fn broken_configs_name_the_key_and_the_fix() {
    let base = example_text("static-a.yaml");
    let mut failures = Vec::new();
    for (from, to, path, fix) in BROKEN {
        assert!(
            base.contains(from),
            "test table: `{from}` not in static-a.yaml"
        );
        let text = base.replacen(from, to, 1);
        let errs = match config::parse(&text) {
            Ok(_) => {
                failures.push(format!("{path}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let Some(e) = errs.at(path) else {
            failures.push(format!("{path}: no error at this path; got:\n{errs}"));
            continue;
        };
        let shown = e.to_string();
        if !shown.contains(fix) {
            failures.push(format!("{path}: `{shown}` lacks `{fix}`"));
        }
        if e.line == 0 {
            failures.push(format!("{path}: no line number in `{shown}`"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        BROKEN.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_carry_the_line_of_the_offending_value() {
    let base = example_text("static-a.yaml");
    let text = base.replace("  burst: 64", "  burst: 512");
    let errs = parse_err(&text);
    let line = text.lines().position(|l| l == "  burst: 512").unwrap() as u64 + 1;
    let e = errs.at("dataplane.burst").unwrap();
    assert_eq!((e.line, e.column), (line, 10));
    assert!(e.to_string().starts_with(&format!(
        "line {line}, column 10: dataplane.burst: 512 is out of range"
    )));
}

#[test]
fn every_error_is_reported_at_once() {
    let base = example_text("static-a.yaml");
    let text = base
        .replace("  burst: 64", "  burst: 512")
        .replace("spi: 0x00001001", "spi: 7")
        .replace(
            "key: 0x5705f7b50b5a70aa4e11a99e18b6d56e20bd93f6",
            "key: 0x5705",
        )
        .replace("  socket: /run/mobiked-a.sock", "  socket: rel.sock");
    let errs = parse_err(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "dataplane.burst",
            "control.socket",
            "tunnels[0].outbound.spi",
            "tunnels[0].inbound.key"
        ],
        "{errs}"
    );

    // All unknown keys at once, too.
    let text = base
        .replace("  burst: 64", "  burts: 64")
        .replace("    keepalive: 20", "    keepalve: 20");
    let errs = parse_err(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["dataplane.burts", "paths[0].keepalve"], "{errs}");
}

#[test]
fn references_between_tunnels() {
    let base = example_text("static-a.yaml");
    // A second tunnel reusing the first one's inbound SPI, and a second path with a taken name.
    let second_tunnel = "  - name: t2\n    path: main\n    local_ts: [10.1.1.0/24]\n    remote_ts: [10.2.1.0/24]\n    \
        outbound: { spi: 0x1002, enc: aes128gcm16, key: 0x00112233445566778899aabbccddeeff00112233 }\n    \
        inbound:  { spi: 8193, enc: aes128gcm16, key: 0x00112233445566778899aabbccddeeff00112234 }\n";
    let text = format!("{base}{second_tunnel}");
    let errs = parse_err(&text);
    let e = errs
        .at("tunnels[1].inbound.spi")
        .unwrap_or_else(|| panic!("{errs}"));
    assert!(
        e.to_string()
            .contains("inbound SPI 0x00002001 is already used by tunnels[0].inbound.spi"),
        "{e}"
    );
    assert_eq!(errs.len(), 1, "{errs}");

    let fixed = text.replace("spi: 8193", "spi: 8194");
    let c = parse_ok(&fixed);
    assert_eq!(c.tunnels.len(), 2);
    assert_eq!(c.tunnels[1].inbound.spi, 8194);
    assert_eq!(
        c.tunnels[1].inbound.replay_window, 1024,
        "the dataplane default applies"
    );

    let dup_path = base.replace(
        "tunnels:",
        "  - name: main\n    local: 10.0.2.1:4500\n    remote: 10.0.2.2:4500\ntunnels:",
    );
    let errs = parse_err(&dup_path);
    assert!(
        errs.at("paths[1].name")
            .unwrap()
            .to_string()
            .contains("already used by paths[0]"),
        "{errs}"
    );

    let dup_tunnel = format!(
        "{base}{}",
        second_tunnel.replace("t2", "t1").replace("8193", "8194")
    );
    let errs = parse_err(&dup_tunnel);
    assert!(
        errs.at("tunnels[1].name")
            .unwrap()
            .to_string()
            .contains("already used by tunnels[0]"),
        "{errs}"
    );
}

#[test]
fn afpacket_specific_checks() {
    let base = example_text("afpacket-a.yaml");
    let errs = parse_err(&base.replace("next_hop_mac: auto", "next_hop_mac: 02:00:00:00:00"));
    assert!(
        errs.at("paths[0].next_hop_mac")
            .unwrap()
            .fix
            .contains("six hex pairs"),
        "{errs}"
    );
    let c = parse_ok(&base.replace("next_hop_mac: auto", "next_hop_mac: 02:00:00:00:00:0b"));
    assert_eq!(
        c.paths[0].next_hop_mac,
        Some(NextHop::Mac([2, 0, 0, 0, 0, 0xb]))
    );
    let errs = parse_err(&base.replace(
        "  interface: a1",
        "  interface: a1\n  bind: [\"10.0.1.1:4500\"]",
    ));
    assert!(
        errs.at("cipher.bind")
            .unwrap()
            .fix
            .contains("set the backend to udp"),
        "{errs}"
    );
    let errs = parse_err(&base.replace(
        "next_hop_mac: auto",
        "next_hop_mac: auto\n    keepalive: 20",
    ));
    assert!(
        errs.at("paths[0].keepalive")
            .unwrap()
            .problem
            .contains("RFC 3948"),
        "{errs}"
    );
    let errs = parse_err(&base.replace("  interface: a1\n", ""));
    assert!(
        errs.at("cipher.interface")
            .unwrap()
            .problem
            .contains("required"),
        "{errs}"
    );
}

#[test]
fn yaml_level_problems() {
    let errs = parse_err("");
    assert!(errs.0[0].fix.contains("examples/static-a.yaml"), "{errs}");
    let errs = parse_err("dataplane:\n  burst: 1\n  burst: 2\ncipher: {}\n");
    assert!(errs.0[0].problem.contains("duplicate"), "{errs}");
    assert!(errs.0[0].line > 0, "{errs}");
    let errs = parse_err("dataplane: [1, 2\n");
    assert!(errs.0[0].line > 0, "{errs}");
    let errs = parse_err("clear: { backend: tun, name: t0 }\n");
    assert!(
        errs.at("cipher").unwrap().fix.contains("backend: udp"),
        "{errs}"
    );
    let errs = parse_err("a: 1\n---\nb: 2\n");
    assert!(!errs.is_empty());
    // A mapping where a list of paths belongs.
    let errs = parse_err(
        "cipher: { backend: udp, bind: ['127.0.0.1:4500'] }\nclear: { backend: tun, name: t0 }\npaths: { name: x }\n",
    );
    assert_eq!(errs.0[0].path, "paths", "{errs}");
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    // Nine levels of nine-fold aliases: 9^9 (387 million) strings once expanded.
    let mut bomb = String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..=9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb.push_str("dataplane:\n  cores: *a9\n");
    let t0 = Instant::now();
    let errs = parse_err(&bomb);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        errs.iter().any(|e| e.problem.contains("limit")
            || e.problem.contains("alias")
            || e.problem.contains("budget")),
        "{errs}"
    );
}

#[test]
fn check_file_reports_every_error_with_the_file_name() {
    let dir = std::env::temp_dir().join(unique("mobiked-check"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    let text = example_text("static-a.yaml")
        .replace("  burst: 64", "  burst: 0")
        .replace("  mode: esp", "  mode: espp");
    std::fs::write(&file, text).unwrap();
    let out = config::check_file(&file).unwrap_err();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("{}: line ", file.display()))),
        "{out}"
    );
    assert!(
        lines[1].contains("dataplane.mode: unknown value `espp`: did you mean `esp`?"),
        "{out}"
    );
    let missing = config::check_file(dir.join("absent.yaml")).unwrap_err();
    assert!(missing.contains("cannot read"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_into_real_tables() {
    let cfg = config::load(example("static-a.yaml")).unwrap();
    let mut writer = TableWriter::new(cfg.table_config());
    let mut reader = writer.reader(0).unwrap();
    let names = cfg.install(&mut writer, |_| Ok(None)).unwrap();
    assert_eq!(names.path("main"), Some(0));
    assert_eq!(names.tunnel("t1"), Some(0));

    let snap = reader.begin_burst();
    let inb = snap.inbound(0x2001).expect("inbound SA by SPI");
    assert_eq!(
        (inb.replay_window, inb.tunnel, inb.owner, inb.esn),
        (1024, 0, 0, false)
    );
    assert_eq!(inb.key.cipher(), EspCipher::AesGcm16_128);
    assert_eq!(
        &inb.key.salt()[..],
        &cfg.tunnels[0].inbound.key[16..],
        "RFC 4106 salt: the last 4 bytes"
    );
    assert!(
        snap.inbound(0x1001).is_none(),
        "the outbound SPI is not an inbound SA"
    );
    let out = snap
        .lookup_outbound("10.1.0.5".parse().unwrap(), "10.2.0.9".parse().unwrap())
        .expect("outbound SA by policy");
    assert_eq!((out.spi, out.path, out.tunnel), (0x1001, 0, 0));
    assert!(snap
        .lookup_outbound("10.1.0.5".parse().unwrap(), "10.3.0.9".parse().unwrap())
        .is_none());
    assert!(snap
        .lookup_outbound("10.9.0.5".parse().unwrap(), "10.2.0.9".parse().unwrap())
        .is_none());
    let path = snap.path(0).expect("path record");
    assert_eq!(path.spec.local, sock("10.0.1.1:4500"));
    assert_eq!(path.spec.remote, sock("10.0.1.2:4500"));
    assert_eq!(path.spec.encap, Encap::Udp);
    assert_eq!(path.spec.keepalive_ms, 20_000);
    assert_eq!(path.generation, 1);
    assert!(path.published_ns > 0);
}

#[test]
fn install_spreads_owners_and_resolves_l2() {
    let text = example_text("afpacket-a.yaml")
        .replace("  workers: 1", "  workers: 2")
        .replace(
            "  backend: tun\n  name: mtun0",
            "  backend: afpacket\n  interface: veth-lan",
        );
    let cfg = parse_ok(&text);
    let l2 = L2 {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
    };
    let mut writer = TableWriter::new(cfg.table_config());
    let mut reader = writer.reader(1).unwrap();
    let mut asked = Vec::new();
    cfg.install(&mut writer, |p| {
        asked.push((p.name.clone(), p.next_hop_mac));
        Ok(Some(l2))
    })
    .unwrap();
    assert_eq!(asked, [("main".to_string(), Some(NextHop::Auto))]);
    let snap = reader.begin_burst();
    let out = snap.outbound(0).unwrap();
    let inb = snap.inbound(0x2001).unwrap();
    assert_eq!(
        (out.owner, inb.owner),
        (0, 1),
        "round-robin over two workers"
    );
    assert_eq!(out.key.cipher(), EspCipher::AesGcm16_256);
    assert_eq!(snap.path(0).unwrap().spec.l2, Some(l2));
    assert_eq!(snap.path(0).unwrap().spec.encap, Encap::Esp);

    // A resolution failure names the path.
    let mut writer = TableWriter::new(cfg.table_config());
    let err = cfg
        .install(&mut writer, |_| {
            Err("no neighbour entry for 10.0.1.2".into())
        })
        .unwrap_err();
    assert_eq!(err, "paths[0] (main): no neighbour entry for 10.0.1.2");
}

// ---------------------------------------------------------------------------------------
// Control socket
// ---------------------------------------------------------------------------------------

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a server on its own thread until the returned flag is set (bounded to 20 s).
fn serve(path: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
    let mut server = CtlServer::bind(path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut generation = 1;
        let mut answered = 0;
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            answered += server.poll(|req| match req {
                Request::PathSet { name, .. } if name != "main" => Response::Error {
                    message: format!("no path named {name}"),
                },
                Request::PathSet { name, .. } => {
                    generation += 1;
                    Response::PathMoved { name, generation }
                }
                Request::Stats => Response::Stats {
                    counters: vec![("rx_packets".into(), 7), ("drop_replay".into(), 0)],
                },
                Request::Paths => Response::Paths {
                    paths: vec![PathInfo {
                        name: "main".into(),
                        id: 0,
                        local: sock("10.0.1.1:4500"),
                        remote: sock("10.0.1.2:4500"),
                        encap: "udp".into(),
                        generation,
                        published_ns: 1,
                    }],
                },
            });
            // The server side is a poll loop; a short pause keeps it from spinning a core.
            std::thread::sleep(Duration::from_millis(1));
        }
        answered
    });
    (stop, handle)
}

fn read_response(r: &mut BufReader<UnixStream>) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad response line {line:?}: {e}"))
}

#[test]
fn ctl_round_trip_and_hostile_lines() {
    let path = std::env::temp_dir().join(format!("{}.sock", unique("mobiked-ctl")));
    let (stop, handle) = serve(&path);
    let t = Duration::from_secs(5);

    let moved = ctl::request(
        &path,
        &Request::PathSet {
            name: "main".into(),
            local: sock("10.0.2.1:4500"),
            remote: sock("10.0.2.2:4500"),
        },
        t,
    )
    .unwrap();
    assert_eq!(
        moved,
        Response::PathMoved {
            name: "main".into(),
            generation: 2
        }
    );
    let stats = ctl::request(&path, &Request::Stats, t).unwrap();
    assert_eq!(
        stats,
        Response::Stats {
            counters: vec![("rx_packets".into(), 7), ("drop_replay".into(), 0)]
        }
    );
    match ctl::request(&path, &Request::Paths, t).unwrap() {
        Response::Paths { paths } => assert_eq!(paths[0].generation, 2),
        other => panic!("{other:?}"),
    }
    let unknown = ctl::request(
        &path,
        &Request::PathSet {
            name: "nope".into(),
            local: sock("10.0.2.1:4500"),
            remote: sock("10.0.2.2:4500"),
        },
        t,
    )
    .unwrap();
    assert_eq!(
        unknown,
        Response::Error {
            message: "no path named nope".into()
        }
    );

    // One raw connection: a malformed line, an over-long line, then a good request.
    let stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(t)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"this is not json\n").unwrap();
    match read_response(&mut r) {
        Response::Error { message } => {
            assert!(message.starts_with("malformed request"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    w.write_all(b"{\"cmd\":\"launch_missiles\"}\n").unwrap();
    assert!(matches!(read_response(&mut r), Response::Error { .. }));
    let long = vec![b'x'; MAX_LINE + 4096];
    w.write_all(&long).unwrap();
    w.write_all(b"\n{\"cmd\":\"stats\"}\n").unwrap();
    match read_response(&mut r) {
        Response::Error { message } => assert!(message.contains("longer than 65536"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(read_response(&mut r), Response::Stats { .. }),
        "the connection keeps serving"
    );

    // A client that leaves mid-line does not disturb the others.
    let mut half = UnixStream::connect(&path).unwrap();
    half.write_all(b"{\"cmd\":").unwrap();
    drop(half);
    assert!(matches!(
        ctl::request(&path, &Request::Stats, t).unwrap(),
        Response::Stats { .. }
    ));

    stop.store(true, Ordering::Relaxed);
    let answered = handle.join().unwrap();
    // 4 via request(), 4 on the raw connection, 1 after the half line (never answered).
    assert_eq!(answered, 9);
    assert!(
        !path.exists(),
        "the socket file is removed when the server is dropped"
    );
}

#[test]
fn ctl_bind_replaces_only_stale_sockets() {
    let dir = std::env::temp_dir().join(unique("mobiked-bind"));
    std::fs::create_dir_all(&dir).unwrap();

    // Stale: a socket file nobody listens on any more.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let server = CtlServer::bind(&stale).expect("a stale socket is replaced");

    // Live: refused, and the live socket stays.
    let err = CtlServer::bind(&stale)
        .err()
        .expect("a live socket is not replaced");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(server);
    assert!(!stale.exists());

    // Not a socket: never deleted.
    let file = dir.join("precious.txt");
    std::fs::write(&file, "keep me").unwrap();
    assert!(CtlServer::bind(&file).is_err());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A client facing no server gets an error naming the socket, quickly.
    let err = ctl::request(
        &dir.join("none.sock"),
        &Request::Stats,
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("none.sock"), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctl_request_times_out_on_a_silent_server() {
    let path = std::env::temp_dir().join(format!("{}.sock", unique("mobiked-silent")));
    // Bound but never polled: the connection is queued and never answered.
    let server = CtlServer::bind(&path).unwrap();
    let t0 = Instant::now();
    let err = ctl::request(&path, &Request::Stats, Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(server);
}
