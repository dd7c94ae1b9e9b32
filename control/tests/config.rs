//! The static configuration against the shipped examples and a table of broken files, its
//! installation into real shared tables, and the control socket over a real unix socket.

use mobiked_control::config::{
    self, CipherBackend, ClearBackend, ConfigErrors, IkeListenConf, Mode, NextHop, StaticConfig,
    PUNT_QUEUE_DEFAULT,
};
use mobiked_control::ctl::{self, CtlServer, PathInfo, Request, Response, MAX_LINE};
use mobiked_control::ike::conn::{
    ChangeType, Conn, Dpd, EspProposal, Identity, IkeProposal, Lifetimes, Mobike, PoolConf,
    Retransmit, Selector,
};
use mobiked_control::ike::crypto::{DhGroup, Encr, EspEncr, Integ, Prf};
use shared::path::{Encap, L2};
use shared::sa::EspCipher;
use shared::table::TableWriter;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
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
    assert_eq!(t.local_ts.to_vec(), vec!["10.1.0.0/24".parse().unwrap()]);
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
    assert_eq!(tb.remote_ts.to_vec(), t.local_ts);

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
         clear: { backend: tun, name: t0 }\n\
         connections: [{ name: c, psk: 'a long secret' }]\n",
    );
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.burst, 64);
    assert_eq!(c.dataplane.replay_window, 1024);
    assert_eq!(c.dataplane.max_sas, 4096);
    assert_eq!(c.control.socket, None);
    assert!(c.paths.is_empty() && c.tunnels.is_empty());
    assert_eq!(c.connections.len(), 1);
    assert_eq!(c.dataplane.punt_queue, 4096);
}

#[test]
fn punt_queue_is_fixed_whatever_max_sas_unless_given() {
    let with = |dataplane: &str| {
        format!(
            "dataplane:\n{dataplane}\n\
             cipher: {{ backend: udp, bind: ['127.0.0.1:4500'] }}\n\
             clear: {{ backend: tun, name: t0 }}\n\
             connections: [{{ name: c, psk: 'a long secret' }}]\n"
        )
    };
    // Sized by the burst of IKE it absorbs, not by the SAs: the memory of a gateway
    // with no tunnel must not grow with max_sas.
    for max_sas in [100, 20_000, 1_000_000] {
        assert_eq!(
            parse_ok(&with(&format!("  max_sas: {max_sas}")))
                .dataplane
                .punt_queue,
            PUNT_QUEUE_DEFAULT,
            "max_sas {max_sas}"
        );
    }
    assert_eq!(
        parse_ok(&with("  max_sas: 20000\n  punt_queue: 300"))
            .dataplane
            .punt_queue,
        300
    );
    for (value, fix) in [
        ("10", "give a value from 64 to 1048576"),
        ("2000000", "give a value from 64 to 1048576"),
        ("many", "`many` is not a whole number"),
    ] {
        let text = with(&format!("  punt_queue: {value}"));
        let errs = parse_err(&text);
        let e = errs
            .at("dataplane.punt_queue")
            .unwrap_or_else(|| panic!("punt_queue: {value}: no error at the key: {errs}"));
        let shown = e.to_string();
        assert!(shown.contains(fix), "`{shown}` lacks `{fix}`");
        assert_eq!(e.line, 2, "{shown}");
    }
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
    ("enc: aes128gcm16, key: 0xe1", "enc: 3des, key: 0xe1", "tunnels[0].outbound.enc", "use one of aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, aes128-sha384"),
    ("enc: aes128gcm16, key: 0xe1", "enc: aes128-sha1, key: 0xe1", "tunnels[0].outbound.enc", "HMAC-SHA1 and MD5 are not supported"),
    ("enc: aes128gcm16, key: 0xe1", "enc: aes192-sha256, key: 0xe1", "tunnels[0].outbound.enc", "AES-192 is not supported"),
    ("enc: aes128gcm16, key: 0xe1", "enc: aes128-sha265, key: 0xe1", "tunnels[0].outbound.enc", "did you mean `aes128-sha256`?"),
    ("enc: aes128gcm16, key: 0xe1", "enc: chacha20-poly1305, key: 0xe1", "tunnels[0].outbound.enc", "did you mean `chacha20poly1305`?"),
    (
        "spi: 0x00001001, enc: aes128gcm16",
        "spi: 0x00001001, enc: aes128-sha256",
        "tunnels[0].outbound.key",
        "expected 96 hex digits (16-byte AES key + 32-byte HMAC-SHA256 key) for aes128-sha256, got 40: \
         this is the length of an aes128gcm16 key: set `enc: aes128gcm16`",
    ),
    (
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "key: 0xe173505d16b84838f81f43c1ce12e7f697b40202e173505d16b84838f81f43c1",
        "tunnels[0].outbound.key",
        "got 64: this is the length of an aes256gcm16 or chacha20poly1305 key without salt",
    ),
    (
        "spi: 0x00001001, enc: aes128gcm16, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "spi: 0x00001001, enc: aes256-sha512, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202e173505d16b84838f81f43c1",
        "tunnels[0].outbound.key",
        "append the 64-byte HMAC-SHA512 key (128 more hex digits): the AES key comes first",
    ),
    (
        "spi: 0x00001001, enc: aes128gcm16, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
        "spi: 0x00001001, enc: chacha20poly1305, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202e173505d16b84838f81f43c1",
        "tunnels[0].outbound.key",
        "expected 72 hex digits (32-byte key + 4-byte salt) for chacha20poly1305, got 64: append the 4-byte salt",
    ),
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
    // One document per file: what follows `---` (or `...`) would be ignored.
    ("  socket: /run/mobiked-a.sock\n", "  socket: /run/mobiked-a.sock\n---\n", "", "`---` starts a second YAML document: mobiked reads one document per file"),
    ("tunnels:", "...\ntunnels:", "", "a second YAML document starts here"),
    // Tabs: the key, its line and column, and the fix.
    ("  burst: 64", "\tburst: 64", "dataplane.burst", "a tab in the indentation of `burst`: indent with spaces"),
    ("    path: main", "  \tpath: main", "tunnels[0].path", "a tab in the indentation of `path`: indent with spaces"),
    ("  burst: 64", "  burst:\t64", "dataplane.burst", "a tab after `burst:`: put a space after the colon"),
    ("tunnels:\n  - name: t1", "tunnels:\n\t- name: t1", "tunnels[0].name", "indent with spaces"),
    // Values of the wrong shape: the key, and the accepted form.
    ("local_ts: [10.1.0.0/24]", "local_ts: { net: 10.1.0.0/24 }", "tunnels[0].local_ts", "`local_ts` must be a list, not a mapping: write a list: `local_ts: [10.1.0.0/24]`"),
    ("    remote_ts: [10.2.0.0/24]", "    remote_ts:\n      a: 10.2.0.0/24", "tunnels[0].remote_ts", "`remote_ts` must be a list, not a mapping"),
    ("  workers: 1", "  workers: 1\n  cores: 3", "dataplane.cores", "`cores` must be a list, not a single value: write a list: `cores: [0, 1]`"),
    ("bind: [\"10.0.1.1:4500\", \"10.0.2.1:4500\"]", "bind: { a: \"10.0.1.1:4500\" }", "cipher.bind", "must be a list, not a mapping"),
    ("  workers: 1", "  workers: [1, 2]", "dataplane.workers", "`workers` must be a single value, not a list: write one value: `workers: 1`"),
    ("  socket: /run/mobiked-a.sock", "  - /run/mobiked-a.sock", "control", "`control` must be a mapping, not a list"),
    ("clear:\n  backend: tun\n  name: mtun0\n", "clear: tun\n", "clear", "`clear` must be a mapping, not a single value: write its keys below it"),
    ("outbound: { spi: 0x00001001, enc: aes128gcm16, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202, esn: false }", "outbound: 0x00001001", "tunnels[0].outbound", "`outbound` must be a mapping"),
    ("tunnels:\n  - name: t1", "tunnels:\n    name: t1", "tunnels", "one entry per tunnel, starting with `- name: NAME`"),
    ("local_ts: [10.1.0.0/24]", "local_ts: [[10.1.0.0/24]]", "tunnels[0].local_ts[0]", "each entry of `local_ts` is a single value"),
    // Keys without a value, empty entries.
    ("  backend: udp", "  backend:", "cipher.backend", "`backend` is present but has no value: write one value: `backend: udp`"),
    ("spi: 0x00001001", "spi: ~", "tunnels[0].outbound.spi", "`spi` is present but has no value"),
    ("control:\n  socket: /run/mobiked-a.sock\n", "control:\n", "control", "`control` is present but empty"),
    ("local_ts: [10.1.0.0/24]", "local_ts: [~]", "tunnels[0].local_ts[0]", "entry 0 of `local_ts` is empty"),
    ("tunnels:\n", "tunnels:\n  -\n", "tunnels[0]", "entry 0 of `tunnels` is empty"),
    // Keys given twice, anchors, odd keys.
    ("paths:", "cipher:\n  backend: udp\npaths:", "cipher", "given twice in one mapping (first at line 15)"),
    ("spi: 0x00001001,", "spi: 0x00001001, spi: 0x00001002,", "tunnels[0].outbound", "duplicate"),
    ("  burst: 64", "  burst: *nope", "dataplane.burst", "the alias `*nope` names no anchor: define `&nope`"),
    ("  burst: 64", "  ? [a, b]\n  : 64", "dataplane", "keys are plain names"),
    ("  burst: 64", "  ~: 64", "dataplane.~", "a key is empty"),
    ("  burst: 64", "  burst:64", "dataplane.burst", "write `burst: 64`"),
    ("  - name: t1", "  - name: \"t1", "tunnels[0].name", "opens a quote (\") that is never closed"),
    // Characters YAML does not allow, or no one can see.
    ("  burst: 64", "  burst: 6\u{0}4", "dataplane.burst", "a NUL byte (U+0000)"),
    ("  burst: 64", "  burst: 6\u{7}4", "dataplane.burst", "a control character (U+0007): delete it"),
    ("  burst: 64", "  \u{feff}burst: 64", "dataplane.burst", "an invisible character (U+FEFF"),
    ("  burst: 64", "\u{a0}\u{a0}burst: 64", "dataplane.burst", "a non-ASCII space (U+00A0) in the indentation"),
    // Numbers.
    ("  workers: 1", "  workers: 99999999999999999999999999", "dataplane.workers", "is too large (worker threads): give a value from 1 to 256"),
    ("    keepalive: 20", "    keepalive: -1", "paths[0].keepalive", "`-1` is negative"),
    ("spi: 0x00001001", "spi: -4097", "tunnels[0].outbound.spi", "`-4097` is negative"),
    // Address families.
    ("    remote_ts: [10.2.0.0/24]", "    remote_ts: [\"2001:db8::/64\"]", "tunnels[0].remote_ts", "local selectors are IPv4 only and the remote ones IPv6 only: no packet matches both"),
    ("local_ts: [10.1.0.0/24]", "local_ts: [\"::ffff:10.1.0.0/120\"]", "tunnels[0].local_ts[0]", "write the IPv4 prefix: 10.1.0.0/24"),
    ("bind: [\"10.0.1.1:4500\", \"10.0.2.1:4500\"]", "bind: [\"10.0.1.1:70000\", \"10.0.2.1:4500\"]", "cipher.bind[0]", "port 70000 is out of range"),
    ("    remote: 10.0.1.2:4500", "    remote: \"[fe80::1%eth0]:4500\"", "paths[0].remote", "scoped IPv6 addresses (`%eth0`) are not supported"),
    ("  burst: 64", "  burst: 64#comment", "dataplane.burst", "a comment starts with a space and `#`"),
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
    // An empty file: what every mode needs, for `mobiked check` serves them all.
    for empty in ["", "# only a comment\n", "---\n", "\u{feff}"] {
        let errs = parse_err(empty);
        let e = &errs.0[0];
        assert!(
            e.problem.contains("`connections`") && e.problem.contains("`tunnels`"),
            "{errs}"
        );
        for example in ["gateway.yaml", "client.yaml", "static-a.yaml"] {
            assert!(e.fix.contains(example), "{example}: {errs}");
        }
    }
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
    // More than one document: the line of the second, whatever the first holds.
    let errs = parse_err("a: 1\n---\nb: 2\n");
    assert_eq!((errs.0[0].line, errs.0[0].column), (2, 1), "{errs}");
    assert!(errs.0[0].fix.contains("one document per file"), "{errs}");
    let base = example_text("static-a.yaml");
    for tail in [
        "---\n",
        "--- # second\n",
        "---\ndataplane: { burst: 9999 }\n",
    ] {
        let errs = parse_err(&format!("{base}{tail}"));
        let line = base.lines().count() as u64 + 1;
        assert_eq!(errs.0[0].line, line, "{tail}: {errs}");
        assert!(errs.0[0].problem.contains("second YAML document"), "{errs}");
    }
    // A lone `---` (or a directive) before the only document is one document; so is a
    // document closed by `...`.
    parse_ok(&format!("---\n{base}"));
    parse_ok(&format!("%YAML 1.2\n---\n{base}"));
    parse_ok(&format!("{base}...\n"));
    // A mapping where a list of paths belongs.
    let errs = parse_err(
        "cipher: { backend: udp, bind: ['127.0.0.1:4500'] }\nclear: { backend: tun, name: t0 }\npaths: { name: x }\n",
    );
    assert_eq!(errs.0[0].path, "paths", "{errs}");
}

#[test]
fn deep_nesting_says_what_it_means() {
    // Flow nesting past the scanner's own limit, within the budget's, and block nesting.
    for text in [
        format!("dataplane: {}{}\n", "[".repeat(300), "]".repeat(300)),
        format!("dataplane: {}{}\n", "[".repeat(100), "]".repeat(100)),
        format!("dataplane: {}1{}\n", "{a: ".repeat(100), "}".repeat(100)),
        (0..100)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect(),
    ] {
        let errs = parse_err(&text);
        let e = &errs.0[0];
        assert!(
            e.problem.contains("nest deeper than 64 levels at line")
                && e.problem.contains("no mobiked key nests deeper than 4"),
            "{errs}"
        );
        assert!(e.line > 0 && !e.path.is_empty(), "{errs}");
        assert!(e.fix.contains("never closed"), "{errs}");
    }
}

#[test]
fn the_file_is_a_mapping() {
    for (text, given) in [
        ("- cipher\n- clear\n", "a list"),
        ("hello\n", "a single value"),
    ] {
        let errs = parse_err(text);
        assert!(errs.0[0].problem.contains(given), "{errs}");
        assert!(errs.0[0].fix.contains("examples/gateway.yaml"), "{errs}");
        assert_eq!(errs.0[0].line, 1, "{errs}");
    }
}

#[test]
fn line_endings_and_byte_order_marks() {
    let base = example_text("static-a.yaml");
    let gw = example_text("gateway.yaml");
    for text in [
        base.replace('\n', "\r\n"),
        base.replace('\n', "\r"),
        format!("\u{feff}{base}"),
        format!("\u{feff}{}", gw.replace('\n', "\r\n")),
    ] {
        parse_ok(&text);
    }
    // Lines count the same with CR LF.
    let text = base
        .replace("  burst: 64", "  burst: 640")
        .replace('\n', "\r\n");
    let errs = parse_err(&text);
    let line = base.lines().position(|l| l == "  burst: 64").unwrap() as u64 + 1;
    assert_eq!(errs.at("dataplane.burst").unwrap().line, line, "{errs}");
    let text = base
        .replace("  burst: 64", "\tburst: 64")
        .replace('\n', "\r\n");
    let errs = parse_err(&text);
    assert_eq!(errs.at("dataplane.burst").unwrap().line, line, "{errs}");
}

#[test]
fn long_values_are_cut_short_in_messages() {
    let base = example_text("static-a.yaml");
    let long = "x".repeat(100_000);
    let errs = parse_err(&base.replace("  - name: t1", &format!("  - name: {long}")));
    let shown = errs.at("tunnels[0].name").unwrap().to_string();
    assert!(shown.len() < 400, "{} bytes", shown.len());
    assert!(shown.contains("(100000 characters)"), "{shown}");
    assert!(shown.contains("is not a usable name"), "{shown}");
    // One line per error, whatever the value holds.
    let errs = parse_err(&base.replace("  - name: t1", "  - name: |\n      t1\n      t2"));
    let shown = errs.at("tunnels[0].name").unwrap().to_string();
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.contains("`t1\\nt2\\n`"), "{shown}");
}

#[test]
fn nothing_to_run_points_at_the_empty_list() {
    let base = example_text("static-a.yaml");
    let text = format!("{}tunnels: []\n", base.split("tunnels:").next().unwrap());
    let errs = parse_err(&text);
    let e = errs.at("tunnels").unwrap_or_else(|| panic!("{errs}"));
    assert_eq!(e.line, text.lines().count() as u64, "{errs}");
    assert!(e.fix.contains("examples/client.yaml"), "{errs}");
}

/// Garbage never panics the loader, and every error it reports says what is wrong.
#[test]
fn garbage_never_panics() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let bases = [
        example_text("static-a.yaml"),
        example_text("gateway.yaml"),
        example_text("client.yaml"),
    ];
    // Edits that make YAML and configurations go wrong: structural characters,
    // whitespace of every kind, line breaks, quotes, anchors, numbers, invisible
    // characters; at random places, with deletions and duplicated spans.
    let piece = prop_oneof![
        Just("\t".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just(":".to_string()),
        Just("---\n".to_string()),
        Just("...\n".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a\n".to_string()),
        Just("!!binary ".to_string()),
        Just("? ".to_string()),
        Just("~".to_string()),
        Just("#".to_string()),
        Just("|\n".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("::ffff:".to_string()),
        Just("\u{0}".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{a0}".to_string()),
        "[a-z_]{1,12}".prop_map(|s| s),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    let edit = (0usize..3, 0.0f64..1.0, 0usize..40, piece);
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(0usize..bases.len(), prop::collection::vec(edit, 1..6)),
            |(b, edits)| {
                let mut text = bases[b].clone();
                for (kind, at, len, piece) in edits {
                    let mut i = (at * text.len() as f64) as usize;
                    while !text.is_char_boundary(i) {
                        i -= 1;
                    }
                    match kind {
                        0 => text.insert_str(i, &piece),
                        1 => {
                            let mut j = (i + len).min(text.len());
                            while !text.is_char_boundary(j) {
                                j -= 1;
                            }
                            text.replace_range(i..j, "");
                        }
                        _ => {
                            let mut j = (i + len).min(text.len());
                            while !text.is_char_boundary(j) {
                                j -= 1;
                            }
                            let span = text[i..j].to_string();
                            text.insert_str(j, &span);
                        }
                    }
                }
                if let Err(errs) = config::parse(&text) {
                    prop_assert!(!errs.is_empty());
                    for e in errs.iter() {
                        prop_assert!(!e.problem.is_empty(), "{text:?}: {e}");
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
                Ok(())
            },
        )
        .unwrap();
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
        &inb.key.as_aead().unwrap().salt()[..],
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
// IKE connections (`ike`, `pools`, `connections`)
// ---------------------------------------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

const EXAMPLE_PSK: &[u8] = b"mobiked-lab-psk--not-for-any-use";

#[test]
fn ike_examples_load_and_pair_up() {
    let gw = config::load(example("gateway.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        gw.ike,
        IkeListenConf {
            listen: vec![ip("127.0.0.1")],
            port: 500,
            port_nat_t: 4500,
            cookie_threshold: 1000,
            setup_rate: 0,
            setup_window: 256,
        }
    );
    let pool = PoolConf {
        name: "vpn4".into(),
        start: ip("10.3.0.1"),
        size: 254,
        dns: vec![ip("10.1.0.53")],
    };
    assert_eq!(gw.pools.to_vec(), vec![pool.clone()]);
    assert_eq!(gw.connections.len(), 1);
    let g = &gw.connections[0];
    assert_eq!(g.instances, 1);
    assert!(!g.initiates(), "no peeraddr: the gateway answers any peer");
    let c = &g.conn;
    assert_eq!(c.name, "roadwarriors");
    assert!(c.peer_addrs.is_empty());
    assert_eq!(c.local_addrs, vec![sock("127.0.0.1:500")]);
    assert_eq!(c.local_id, Identity::Fqdn("gw.mobiked.test".into()));
    assert_eq!(c.remote_id, None);
    assert_eq!(c.psk, EXAMPLE_PSK);
    assert_eq!(
        c.ike_proposals.to_vec(),
        vec![
            IkeProposal {
                encr: vec![Encr::AesGcm16_128],
                integ: vec![],
                prf: vec![Prf::HmacSha2_256],
                dh: vec![DhGroup::Curve25519],
            },
            IkeProposal {
                encr: vec![Encr::AesGcm16_256],
                integ: vec![],
                prf: vec![Prf::HmacSha2_384],
                dh: vec![DhGroup::Ecp384],
            },
            IkeProposal {
                encr: vec![Encr::AesCbc256],
                integ: vec![Integ::HmacSha2_256_128],
                prf: vec![Prf::HmacSha2_256],
                dh: vec![DhGroup::Curve25519, DhGroup::Ecp256],
            },
        ]
    );
    assert_eq!(
        c.esp_proposals.to_vec(),
        vec![
            EspProposal::parse("aes128gcm16").unwrap(),
            EspProposal::parse("aes256gcm16").unwrap(),
            EspProposal::parse("chacha20poly1305").unwrap(),
            EspProposal {
                encr: vec![EspEncr::AesCbc256, EspEncr::AesCbc128],
                integ: vec![
                    Integ::HmacSha2_256_128,
                    Integ::HmacSha2_384_192,
                    Integ::HmacSha2_512_256
                ],
                esn: vec![false],
                dh: vec![],
            },
        ]
    );
    assert_eq!(c.local_ts.to_vec(), vec![sel("10.1.0.0/24")]);
    assert_eq!(c.remote_ts.to_vec(), vec![sel("10.3.0.0/24")]);
    assert_eq!(c.pools.to_vec(), vec![pool]);
    assert!(!c.request_vip4 && !c.request_vip6);
    assert_eq!(
        c.ike_lifetime,
        Lifetimes {
            rekey_s: 4 * 3600,
            life_s: 4 * 3600 + 600,
            jitter_s: 360
        }
    );
    assert_eq!(
        c.child_lifetime,
        Lifetimes {
            rekey_s: 3600,
            life_s: 66 * 60,
            jitter_s: 360
        }
    );
    assert_eq!(
        c.retransmit,
        Retransmit {
            initial_ms: 1000,
            tries: 6,
            max_ms: 16_000
        }
    );
    assert_eq!(
        c.dpd,
        Dpd {
            interval_s: 30,
            timeout_s: 60
        }
    );
    assert_eq!(c.cookie_threshold, 1000);
    assert!(!c.force_encap);

    let cl = config::load(example("client.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cl.ike.listen, vec![ip("127.0.0.2")]);
    assert_eq!((cl.ike.port, cl.ike.port_nat_t), (500, 4500));
    assert!(cl.pools.is_empty());
    let k = &cl.connections[0];
    assert!(k.initiates());
    assert_eq!(k.instances, 1);
    let c = k.instance(1);
    assert_eq!(c.name, "home");
    assert_eq!(c.local_id, Identity::Email("client-1@mobiked.test".into()));
    assert_eq!(c.local_addrs, vec![sock("127.0.0.2:500")]);
    assert!(c.request_vip4 && !c.request_vip6);
    assert!(
        c.local_ts.is_empty(),
        "the virtual IP becomes the local selector"
    );
    assert_eq!(c.remote_ts.to_vec(), vec![sel("10.1.0.0/24")]);
    assert_eq!(
        c.ike_proposals.to_vec(),
        vec![IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap()]
    );

    // The pair: the client reaches the gateway's IKE port, each names the other, same
    // key, a proposal in common, selectors that fit.
    let g = &gw.connections[0].conn;
    assert_eq!(
        c.peer_addrs,
        vec![SocketAddr::new(gw.ike.listen[0], gw.ike.port)]
    );
    assert_eq!(c.remote_id.as_ref(), Some(&g.local_id));
    assert_eq!(c.psk, g.psk);
    assert!(g.ike_proposals.contains(&c.ike_proposals[0]));
    assert_eq!(c.remote_ts, g.local_ts);
    assert!(g.pools[0].start.is_ipv4() && c.request_vip4);

    assert_eq!(
        config::check_file(example("gateway.yaml")),
        Ok("ok: 0 paths, 0 tunnels, 0 SAs, 1 connection, 1 pool".to_string())
    );
    assert_eq!(
        config::check_file(example("client.yaml")),
        Ok("ok: 0 paths, 0 tunnels, 0 SAs, 1 connection, 0 pools".to_string())
    );
}

const MINIMAL: &str = "cipher: { backend: udp, bind: ['192.0.2.1:4500'] }\n\
                       clear: { backend: tun, name: t0 }\n";

#[test]
fn connection_defaults_follow_swanctl() {
    let c = parse_ok(&format!(
        "{MINIMAL}connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 192.0.2.2\n"
    ));
    let k = &c.connections[0];
    let d = Conn::new(
        "c",
        Identity::Ipv4("192.0.2.1".parse().unwrap()),
        b"a long secret",
    );
    assert_eq!(k.conn.local_id, d.local_id, "local_id: the local address");
    assert_eq!(k.conn.peer_addrs, vec![sock("192.0.2.2:500")]);
    assert_eq!(k.conn.local_addrs, vec![sock("192.0.2.1:500")]);
    assert_eq!(k.conn.remote_id, None);
    assert_eq!(k.conn.ike_proposals.to_vec(), IkeProposal::defaults());
    assert_eq!(k.conn.esp_proposals.to_vec(), EspProposal::defaults());
    assert_eq!(k.conn.local_ts.to_vec(), vec![Selector::any(false)]);
    assert_eq!(k.conn.remote_ts.to_vec(), vec![Selector::any(false)]);
    // rekey 4h; over_time 10% of it; rand_time over_time (at most half the rekey time).
    assert_eq!(
        k.conn.ike_lifetime,
        Lifetimes {
            rekey_s: 4 * 3600,
            life_s: 4 * 3600 + 1440,
            jitter_s: 1440
        }
    );
    // rekey 1h; life_time 110% of it; rand_time life_time - rekey_time.
    assert_eq!(
        k.conn.child_lifetime,
        Lifetimes {
            rekey_s: 3600,
            life_s: 3960,
            jitter_s: 360
        }
    );
    assert_eq!((k.conn.retransmit, k.conn.dpd), (d.retransmit, d.dpd));
    assert_eq!(k.instances, 1);
    assert_eq!(
        k.conn.childless_timeout_ms, 60_000,
        "childless IKE SAs: 60s"
    );
    assert_eq!(d.childless_timeout_ms, 60_000);
    // childless_timeout: seconds, a unit, or 0 to keep childless IKE SAs.
    for (written, ms) in [("0", 0), ("90", 90_000), ("5m", 300_000), ("1500ms", 1500)] {
        let c = parse_ok(&format!(
            "{MINIMAL}connections:\n  - name: c\n    psk: a long secret\n    childless_timeout: {written}\n"
        ));
        assert_eq!(c.connections[0].conn.childless_timeout_ms, ms, "{written}");
    }

    // Forms a swanctl.conf user writes: remote_addrs, comma lists, `default`, durations
    // in plain seconds, rekey_time 0, IPv6, a pool range, explicit ports.
    let c = parse_ok(
        "cipher: { backend: udp, bind: ['192.0.2.1:4500', '[::]:4500'] }\n\
         clear: { backend: tun, name: t0 }\n\
         ike: { listen: ['192.0.2.1', '0.0.0.0', '::'], cookie_threshold: 0, setup_rate: 500, setup_window: 32 }\n\
         pools:\n  - { name: r, addrs: 10.9.0.10-10.9.0.19 }\n  - { name: six, addrs: 'fd00::/112' }\n\
         connections:\n  - name: c\n    psk: 0x0011223344556677\n    remote_addrs: '192.0.2.2:4501, 192.0.2.3'\n    \
         local_addrs: 192.0.2.1\n    proposals: 'aes256-sha384-ecp256, default'\n    esp_proposals: aes256gcm16-x25519-esn\n    \
         rekey_time: 0\n    children: { rekey_time: 0, life_time: 3600 }\n    dpd_delay: 0\n    \
         retransmit: { timeout: 500ms, tries: 3 }\n    encap: true\n    local_ts: '10.1.0.0/24[tcp/443]'\n    \
         pools: [r, six]\n  - name: v6\n    psk: a long secret\n    peeraddr: '[2001:db8::2]:500'\n    \
         local_id: '@#0a0b'\n    vips: ['::', 0.0.0.0]\n"
    )
    .clone();
    assert_eq!(c.ike.listen, vec![ip("192.0.2.1"), ip("0.0.0.0"), ip("::")]);
    assert_eq!(c.ike.cookie_threshold, 0);
    assert_eq!((c.ike.setup_rate, c.ike.setup_window), (500, 32));
    assert_eq!(
        (
            c.pools[0].start,
            c.pools[0].size,
            c.pools[1].start,
            c.pools[1].size
        ),
        (ip("10.9.0.10"), 10, ip("fd00::1"), 65535)
    );
    let k = &c.connections[0].conn;
    assert_eq!(
        k.peer_addrs,
        vec![sock("192.0.2.2:4501"), sock("192.0.2.3:500")]
    );
    assert_eq!(k.psk, [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
    assert_eq!(k.ike_proposals.len(), 3);
    assert_eq!(k.ike_proposals[0].integ, vec![Integ::HmacSha2_384_192]);
    assert_eq!(
        k.ike_proposals[0].prf,
        vec![Prf::HmacSha2_384],
        "PRF follows integrity"
    );
    assert_eq!(k.ike_proposals[1..], IkeProposal::defaults()[..]);
    assert_eq!(k.esp_proposals[0].encr, vec![EspEncr::AesGcm16_256]);
    assert_eq!(k.esp_proposals[0].esn, vec![true]);
    assert_eq!(k.esp_proposals[0].dh, vec![DhGroup::Curve25519]);
    assert_eq!(
        k.ike_lifetime,
        Lifetimes {
            rekey_s: 0,
            life_s: 0,
            jitter_s: 0
        }
    );
    assert_eq!(
        k.child_lifetime,
        Lifetimes {
            rekey_s: 0,
            life_s: 3600,
            jitter_s: 0
        }
    );
    assert_eq!(k.dpd.interval_s, 0);
    assert_eq!(
        k.retransmit,
        Retransmit {
            initial_ms: 500,
            tries: 3,
            max_ms: 16_000
        }
    );
    assert!(k.force_encap);
    assert_eq!((k.local_ts[0].protocol, k.local_ts[0].start_port), (6, 443));
    assert_eq!(
        k.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["r", "six"]
    );
    assert_eq!(
        k.remote_ts.to_vec(),
        vec![Selector::any(false), Selector::any(true)],
        "families of the pools"
    );
    assert_eq!(k.cookie_threshold, 0);
    let v = &c.connections[1].conn;
    assert_eq!(v.local_id, Identity::KeyId(vec![10, 11]));
    assert!(v.request_vip4 && v.request_vip6);
    assert!(
        v.local_addrs.is_empty(),
        "IPv6 only on the wildcard: the runtime picks the source"
    );
    assert_eq!(
        v.remote_ts.to_vec(),
        vec![Selector::any(false), Selector::any(true)]
    );
}

#[test]
fn instances_get_their_own_identities() {
    let text = example_text("client.yaml").replace("instances: 1 ", "instances: 3 ");
    let c = parse_ok(&text);
    let k = &c.connections[0];
    assert_eq!(k.instances, 3);
    let all: Vec<Conn> = k.instances().collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].name, "home#2");
    assert_eq!(
        all[2].local_id,
        Identity::Email("client-3@mobiked.test".into())
    );
    assert_eq!(c.instance_count(), 3);
    let dir = std::env::temp_dir().join(unique("mobiked-check-ike"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.yaml");
    std::fs::write(&file, &text).unwrap();
    assert_eq!(
        config::check_file(&file),
        Ok("ok: 0 paths, 0 tunnels, 0 SAs, 1 connection (3 instances), 0 pools".to_string())
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Without the placeholder every copy would be one identity, and get one address.
    let errs = parse_err(&text.replace("client-%n@", "client@"));
    assert!(
        errs.at("connections[0].local_id")
            .unwrap()
            .fix
            .contains("%n"),
        "{errs}"
    );
    // More instances than SA slots.
    let errs = parse_err(&text.replace("instances: 3 ", "instances: 5000 "));
    assert!(
        errs.at("connections")
            .unwrap()
            .fix
            .contains("raise dataplane.max_sas to at least 5000"),
        "{errs}"
    );
}

#[test]
fn static_tunnels_and_connections_in_one_file() {
    let base = example_text("static-a.yaml");
    let text = format!(
        "{base}connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 10.0.1.2\n    local_ts: [10.1.1.0/24]\n"
    );
    let c = parse_ok(&text);
    assert_eq!((c.tunnels.len(), c.connections.len()), (1, 1));
    assert_eq!(c.ike.listen, vec![ip("10.0.1.1"), ip("10.0.2.1")]);
    assert_eq!(
        c.connections[0].conn.local_addrs,
        vec![sock("10.0.1.1:500"), sock("10.0.2.1:500")]
    );

    // Neither: the error names both keys.
    let none = base
        .split("tunnels:")
        .next()
        .unwrap()
        .replace("paths:", "x_paths:");
    let none = none.split("x_paths:").next().unwrap().to_string();
    let errs = parse_err(&none);
    let e = errs.at("").unwrap_or_else(|| panic!("{errs}"));
    assert!(
        e.problem.contains("`tunnels`") && e.problem.contains("`connections`"),
        "{e}"
    );
    assert!(e.fix.contains("examples/gateway.yaml"), "{e}");
    // IKE sections without a connection.
    let errs = parse_err(&format!(
        "{base}pools: [{{ name: p, addrs: 10.3.0.0/24 }}]\n"
    ));
    assert!(
        errs.at("pools").unwrap().fix.contains("add `connections:`"),
        "{errs}"
    );
}

/// (file, replace this, with this, expected key path, text the error must contain)
const BROKEN_IKE: &[(&str, &str, &str, &str, &str)] = &[
    // Unknown keys, with did-you-mean, in every new section.
    (
        "gateway.yaml",
        "  cookie_threshold: 1000",
        "  cookie_treshold: 1000",
        "ike.cookie_treshold",
        "did you mean `cookie_threshold`?",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addr: 10.3.0.0/24",
        "pools[0].addr",
        "did you mean `addrs`?",
    ),
    (
        "gateway.yaml",
        "    esp_proposals:",
        "    esp_proposal:",
        "connections[0].esp_proposal",
        "did you mean `esp_proposals`?",
    ),
    (
        "gateway.yaml",
        "      life_time: 66m",
        "      lifetime: 66m",
        "connections[0].children.lifetime",
        "did you mean `life_time`?",
    ),
    (
        "gateway.yaml",
        "{ timeout: 1s,",
        "{ timout: 1s,",
        "connections[0].retransmit.timout",
        "did you mean `timeout`?",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1",
        "    peer_addr: 127.0.0.1",
        "connections[0].peer_addr",
        "did you mean `peeraddr`?",
    ),
    (
        "client.yaml",
        "connections:",
        "connection:",
        "connection",
        "did you mean `connections`?",
    ),
    // Shapes, empty values and text problems in the IKE sections.
    (
        "gateway.yaml",
        "    psk: 0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365",
        "    psk:",
        "connections[0].psk",
        "`psk` is present but has no value: give the pre-shared key after `psk:` on the same line",
    ),
    (
        "gateway.yaml",
        "    local_ts: [10.1.0.0/24]",
        "    local_ts:\n      net: 10.1.0.0/24",
        "connections[0].local_ts",
        "`local_ts` must be a value or a list, not a mapping: write one value or a list: `local_ts: [10.1.0.0/24]`",
    ),
    (
        "gateway.yaml",
        "    proposals: [aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha384-ecp384, aes256-sha256-x25519-ecp256]",
        "    proposals: { ike: aes128gcm16-prfsha256-x25519 }",
        "connections[0].proposals",
        "`proposals: [aes128gcm16-prfsha256-x25519]`",
    ),
    (
        "gateway.yaml",
        "    dns: [10.1.0.53]",
        "    dns: { primary: 10.1.0.53 }",
        "pools[0].dns",
        "`dns: [10.1.0.53]`",
    ),
    (
        "client.yaml",
        "    vips: [0.0.0.0]",
        "    vips: { v4: 0.0.0.0 }",
        "connections[0].vips",
        "`vips: [0.0.0.0]`",
    ),
    (
        "client.yaml",
        "    vips: [0.0.0.0]",
        "    vips:",
        "connections[0].vips",
        "`vips` is present but has no value",
    ),
    (
        "gateway.yaml",
        "    children:\n      rekey_time: 1h\n      life_time: 66m\n      rand_time: 6m\n",
        "    children: 1h\n",
        "connections[0].children",
        "`children` must be a mapping, not a single value",
    ),
    (
        "gateway.yaml",
        "{ timeout: 1s, tries: 6, max: 16s }",
        "[1s, 6, 16s]",
        "connections[0].retransmit",
        "`retransmit: { timeout: 1s, tries: 6, max: 16s }`",
    ),
    (
        "gateway.yaml",
        "    dpd_delay: 30s",
        "    dpd_delay:",
        "connections[0].dpd_delay",
        "`dpd_delay` is present but has no value: write one value: `dpd_delay: 30s`",
    ),
    (
        "gateway.yaml",
        "pools:\n  - name: vpn4",
        "pools: vpn4\nx_pools:\n  - name: vpn4",
        "pools",
        "`pools` must be a list, not a single value",
    ),
    (
        "gateway.yaml",
        "    rekey_time: 4h\n",
        "    rekey_time: 4h\n    rekey_time: 2h\n",
        "connections[0].rekey_time",
        "given twice in one mapping (first at line 44)",
    ),
    (
        "gateway.yaml",
        "    psk: 0x6d6f",
        "\t\tpsk: 0x6d6f",
        "connections[0].psk",
        "a tab in the indentation of `psk`: indent with spaces",
    ),
    (
        "gateway.yaml",
        "    dpd_delay: 30s",
        "    dpd_delay: 1.5s",
        "connections[0].dpd_delay",
        "has a fraction; durations are whole numbers of a unit (1500ms, not 1.5s)",
    ),
    (
        "gateway.yaml",
        "    dpd_delay: 30s",
        "    dpd_delay: 30S",
        "connections[0].dpd_delay",
        "units are lower case (`30s`)",
    ),
    (
        "gateway.yaml",
        "    rekey_time: 4h",
        "    rekey_time: 3h30m",
        "connections[0].rekey_time",
        "write one number and one unit (e.g. 90m, not 1h30m)",
    ),
    (
        "gateway.yaml",
        "    dpd_delay: 30s",
        "    dpd_delay: -5",
        "connections[0].dpd_delay",
        "`-5` is negative",
    ),
    (
        "gateway.yaml",
        "    dpd_delay: 30s",
        "    dpd_delay: 0x1e",
        "connections[0].dpd_delay",
        "durations are decimal",
    ),
    // Address families.
    (
        "gateway.yaml",
        "    local_ts: [10.1.0.0/24]",
        "    local_ts: [\"fd01::/64\"]",
        "connections[0].remote_ts",
        "local selectors are IPv6 only and the remote ones IPv4 only: no packet matches both",
    ),
    (
        "client.yaml",
        "    remote_ts: [10.1.0.0/24]",
        "    remote_ts: [\"fd01::/64\"]",
        "connections[0].remote_ts",
        "local selectors are IPv4 only",
    ),
    (
        "gateway.yaml",
        "    local_ts: [10.1.0.0/24]",
        "    local_ts: [\"::ffff:10.1.0.0/120\"]",
        "connections[0].local_ts[0]",
        "IPv4-mapped IPv6 selector",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: \"::ffff:10.3.0.0/120\"",
        "pools[0].addrs",
        "write the IPv4 range: 10.3.0.1-10.3.0.255",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: \"::1\" ",
        "connections[0].peeraddr",
        "::1 is IPv6, and IKE listens on no IPv6 address (ike.listen: 127.0.0.2)",
    ),
    (
        "gateway.yaml",
        "    pools: [vpn4]",
        "    pools: []",
        "connections[0].pools",
        "`pools: [vpn4]`",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: \"[::1]:99999\" ",
        "connections[0].peeraddr",
        "port 99999 is out of range",
    ),
    // childless_timeout
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timeout: -5",
        "connections[0].childless_timeout",
        "`-5` is negative",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timeout: 5min",
        "connections[0].childless_timeout",
        "unknown unit `min` in `5min`: write seconds (30) or a number with a unit",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timeout: [60s]",
        "connections[0].childless_timeout",
        "`childless_timeout` must be a single value, not a list: write one value: `childless_timeout: 60s`",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timeout: 500ms",
        "connections[0].childless_timeout",
        "give at least 1s (the default is 60s), or 0 to keep childless IKE SAs",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timeout: 400d",
        "connections[0].childless_timeout",
        "longer than 365 days",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 60s\n    childless_timout: 60s",
        "connections[0].childless_timout",
        "did you mean `childless_timeout`?",
    ),
    // ike:
    (
        "gateway.yaml",
        "  port_nat_t: 4500",
        "  port_nat_t: 4501",
        "ike.port_nat_t",
        "set `port_nat_t: 4500`",
    ),
    (
        "gateway.yaml",
        "  port: 500 ",
        "  port: 4500 ",
        "ike.port",
        "500 for IKE and 4500 for NAT-T",
    ),
    (
        "gateway.yaml",
        "  port: 500 ",
        "  port: 70000 ",
        "ike.port",
        "from 1 to 65535",
    ),
    (
        "gateway.yaml",
        "  # listen: [127.0.0.1]",
        "  listen: [127.0.0.9]",
        "ike.listen[0]",
        "add 127.0.0.9:4500 to cipher.bind",
    ),
    (
        "gateway.yaml",
        "  # listen: [127.0.0.1]",
        "  listen: [\"127.0.0.1:500\"]",
        "ike.listen[0]",
        "the ports are ike.port and ike.port_nat_t",
    ),
    (
        "gateway.yaml",
        "  cookie_threshold: 1000",
        "  cookie_threshold: lots",
        "ike.cookie_threshold",
        "not a whole number",
    ),
    (
        "gateway.yaml",
        "  cookie_threshold: 1000",
        "  cookie_threshold: 1000\n  setup_window: 0",
        "ike.setup_window",
        "IKE SAs a client sets up at once at most",
    ),
    (
        "gateway.yaml",
        "  cookie_threshold: 1000",
        "  cookie_threshold: 1000\n  setup_rate: fast",
        "ike.setup_rate",
        "not a whole number",
    ),
    // pools:
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: 10.3.0.1/24",
        "pools[0].addrs",
        "write the network address: 10.3.0.0/24",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: 10.0.0.0/8",
        "pools[0].addrs",
        "at most 2^20 addresses",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: \"fd00::/64\"",
        "pools[0].addrs",
        "at most 2^20 addresses",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: 10.3.0.200-10.3.0.10",
        "pools[0].addrs",
        "write 10.3.0.10-10.3.0.200",
    ),
    (
        "gateway.yaml",
        "    addrs: 10.3.0.0/24",
        "    addrs: 10.3.0.x/24",
        "pools[0].addrs",
        "not an IP address",
    ),
    (
        "gateway.yaml",
        "    dns: [10.1.0.53]",
        "    dns: [10.1.0.53]\n  - name: vpn4b\n    addrs: 10.3.0.128-10.3.1.5",
        "pools[1].addrs",
        "make the ranges disjoint",
    ),
    (
        "gateway.yaml",
        "    dns: [10.1.0.53]",
        "    dns: [10.1.0.53]\n  - name: vpn4\n    addrs: 10.4.0.0/24",
        "pools[1].name",
        "already used by pools[0]",
    ),
    (
        "gateway.yaml",
        "    dns: [10.1.0.53]",
        "    dns: [dns.example]",
        "pools[0].dns[0]",
        "unicast IP address",
    ),
    // connections: references, identities, keys, proposals
    (
        "gateway.yaml",
        "    pools: [vpn4]",
        "    pools: [vpn]",
        "connections[0].pools[0]",
        "no pool is named `vpn`: did you mean `vpn4`?",
    ),
    (
        "gateway.yaml",
        "    pools: [vpn4]",
        "    pools: [vpn4, vpn4]",
        "connections[0].pools[1]",
        "remove the duplicate",
    ),
    (
        "gateway.yaml",
        "    encap: false",
        "    encap: false\n  - name: roadwarriors\n    psk: a long secret",
        "connections[1].name",
        "already used by connections[0]",
    ),
    (
        "gateway.yaml",
        "    psk: 0x6d6f",
        "    psk: 0x6d6g",
        "connections[0].psk",
        "an even number of hex digits",
    ),
    (
        "gateway.yaml",
        "    psk: 0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365",
        "    psk: short",
        "connections[0].psk",
        "at least 8 are required",
    ),
    (
        "gateway.yaml",
        "    psk: 0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365\n",
        "",
        "connections[0].psk",
        "required key is missing",
    ),
    (
        "gateway.yaml",
        "    local_id: gw.mobiked.test",
        "    local_id: \"C=CH, O=mobiked, CN=gw\"",
        "connections[0].local_id",
        "certificates are not supported",
    ),
    (
        "gateway.yaml",
        "    local_id: gw.mobiked.test",
        "    local_id: \"%any\"",
        "connections[0].local_id",
        "this end needs an identity",
    ),
    (
        "gateway.yaml",
        "    local_id: gw.mobiked.test",
        "    local_id: \"@#abc\"",
        "connections[0].local_id",
        "key id must be hex",
    ),
    (
        "gateway.yaml",
        "aes128gcm16-prfsha256-x25519,",
        "aes128gcm16-prfsha265-x25519,",
        "connections[0].proposals[0]",
        "did you mean `prfsha256`?",
    ),
    (
        "gateway.yaml",
        "aes128gcm16-prfsha256-x25519,",
        "aes128gcm16-prfsha256-modp2048,",
        "connections[0].proposals[0]",
        "MODP groups are not implemented",
    ),
    (
        "gateway.yaml",
        "aes128gcm16-prfsha256-x25519,",
        "aes128gcm16-x25519,",
        "connections[0].proposals[0]",
        "no PRF (add e.g. prfsha256)",
    ),
    (
        "gateway.yaml",
        "aes128gcm16-prfsha256-x25519,",
        "aes128-prfsha256-x25519,",
        "connections[0].proposals[0]",
        "CBC needs an integrity algorithm",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: [aes128gcm12]",
        "connections[0].esp_proposals[0]",
        "did you mean `aes128gcm16`?",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: []",
        "connections[0].esp_proposals",
        "no proposal",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: [aes128gcm16-sha256]",
        "connections[0].esp_proposals[0]",
        "aes128gcm16 carries its own integrity; remove the integrity algorithm",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: [aes256]",
        "connections[0].esp_proposals[0]",
        "AES-CBC needs an integrity algorithm (e.g. aes128-sha256)",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: [aes256-sha265]",
        "connections[0].esp_proposals[0]",
        "did you mean `sha256`?",
    ),
    (
        "gateway.yaml",
        "    esp_proposals: [aes128gcm16, aes256gcm16, chacha20poly1305, aes256-aes128-sha256-sha384-sha512]",
        "    esp_proposals: [aes128-md5]",
        "connections[0].esp_proposals[0]",
        "unknown ESP algorithm `md5` (known: encryption aes128gcm16 aes256gcm16 chacha20poly1305 aes128 aes256; integrity sha256 sha384 sha512",
    ),
    (
        "gateway.yaml",
        "    local_ts: [10.1.0.0/24]",
        "    local_ts: [10.1.0.0/33]",
        "connections[0].local_ts[0]",
        "prefix length must be 0..=32",
    ),
    (
        "gateway.yaml",
        "    local_ts: [10.1.0.0/24]",
        "    local_ts: []",
        "connections[0].local_ts",
        "0.0.0.0/0 or ::/0 for everything",
    ),
    (
        "gateway.yaml",
        "    pools: [vpn4]",
        "    pools: [vpn4]\n    vips: [0.0.0.0]",
        "connections[0].pools",
        "not both",
    ),
    // durations, lifetimes, DPD, retransmission
    (
        "gateway.yaml",
        "    rekey_time: 4h",
        "    rekey_time: 4 hours",
        "connections[0].rekey_time",
        "500ms, 30s, 10m, 4h, 1d",
    ),
    (
        "gateway.yaml",
        "    rekey_time: 4h",
        "    rekey_time: 1500ms",
        "connections[0].rekey_time",
        "write e.g. 30s",
    ),
    (
        "gateway.yaml",
        "    rekey_time: 4h",
        "    rekey_time: 400d",
        "connections[0].rekey_time",
        "longer than 365 days",
    ),
    (
        "gateway.yaml",
        "    over_time: 10m",
        "    over_time: 0",
        "connections[0].over_time",
        "give the rekey time to complete",
    ),
    (
        "gateway.yaml",
        "    rekey_time: 4h",
        "    rekey_time: 0",
        "connections[0].over_time",
        "never rekeyed and never expires",
    ),
    (
        "gateway.yaml",
        "    rand_time: 6m\n    children",
        "    rand_time: 5h\n    children",
        "connections[0].rand_time",
        "must be smaller",
    ),
    (
        "gateway.yaml",
        "      life_time: 66m",
        "      life_time: 30m",
        "connections[0].children.life_time",
        "give more than 3600s",
    ),
    (
        "gateway.yaml",
        "    dpd_timeout: 60s",
        "    dpd_timeout: 10s",
        "connections[0].dpd_timeout",
        "dpd_timeout: 60s",
    ),
    (
        "gateway.yaml",
        "{ timeout: 1s, tries: 6, max: 16s }",
        "{ timeout: 2s, tries: 6, max: 1s }",
        "connections[0].retransmit.max",
        "at least the timeout",
    ),
    (
        "gateway.yaml",
        "{ timeout: 1s, tries: 6, max: 16s }",
        "{ timeout: 1s, tries: 0, max: 16s }",
        "connections[0].retransmit.tries",
        "from 1 to 30",
    ),
    (
        "gateway.yaml",
        "    encap: false",
        "    encap: sometimes",
        "connections[0].encap",
        "write true or false",
    ),
    // addresses
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: gw.example.org ",
        "connections[0].peeraddr",
        "names are not resolved",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: 0.0.0.0 ",
        "connections[0].peeraddr",
        "%any",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: 127.0.0.1\n    remote_addrs: 127.0.0.1 ",
        "connections[0].remote_addrs",
        "keep one of the two",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: \"::1\"\n    local_addrs: [127.0.0.2] ",
        "connections[0].peeraddr",
        "add an IPv6 address to local_addrs",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: 127.0.0.1\n    local_addrs: [127.0.0.3] ",
        "connections[0].local_addrs[0]",
        "add 127.0.0.3 to ike.listen",
    ),
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    peeraddr: 127.0.0.1\n    local_addrs: [\"127.0.0.2:600\"] ",
        "connections[0].local_addrs[0]",
        "IKE listens on ports 500 and 4500, not 600",
    ),
    // client specifics
    (
        "client.yaml",
        "    peeraddr: 127.0.0.1 ",
        "    # peeraddr: 127.0.0.1 ",
        "connections[0].vips",
        "add `peeraddr: GATEWAY-IP`",
    ),
    (
        "client.yaml",
        "    vips: [0.0.0.0] ",
        "    vips: [10.3.0.7] ",
        "connections[0].vips[0]",
        "0.0.0.0 (IPv4) or :: (IPv6)",
    ),
    (
        "client.yaml",
        "    vips: [0.0.0.0] ",
        "    vips: [0.0.0.0, 0.0.0.0] ",
        "connections[0].vips[1]",
        "remove the duplicate",
    ),
    (
        "client.yaml",
        "    vips: [0.0.0.0] ",
        "    local_ts: [10.3.0.0/24] ",
        "connections[0].instances",
        "add `vips: [0.0.0.0]`, or remove `instances`",
    ),
    (
        "client.yaml",
        "    instances: 1 ",
        "    instances: 100001 ",
        "connections[0].instances",
        "from 1 to 100000",
    ),
];

#[test]
fn broken_ike_configs_name_the_key_and_the_fix() {
    let mut failures = Vec::new();
    for (file, from, to, path, fix) in BROKEN_IKE {
        let base = example_text(file);
        assert!(base.contains(from), "test table: `{from}` not in {file}");
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
        BROKEN_IKE.len(),
        failures.join("\n")
    );
}

#[test]
fn ike_needs_listen_addresses_with_afpacket() {
    let base = example_text("afpacket-a.yaml");
    let conn = "connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 10.0.1.2\n";
    let errs = parse_err(&format!("{base}{conn}"));
    assert!(
        errs.at("ike.listen").unwrap().fix.contains("listen: [IP]"),
        "{errs}"
    );
    let c = parse_ok(&format!(
        "{base}ike: {{ listen: [10.0.1.1], port_nat_t: 4501 }}\n{conn}"
    ));
    assert_eq!(c.ike.port_nat_t, 4501, "no udp dataplane owns the port");
    assert_eq!(
        c.connections[0].conn.local_addrs,
        vec![sock("10.0.1.1:500")]
    );
}

#[test]
fn conn_debug_hides_the_psk() {
    let gw = config::load(example("gateway.yaml")).unwrap();
    let shown = format!("{gw:?}");
    assert!(shown.contains("roadwarriors"));
    assert!(!shown.contains("psk"), "{shown}");
    assert!(!shown.contains("109, 111, 98"), "the key's bytes: {shown}");
}

// ---------------------------------------------------------------------------------------
// MOBIKE keys
// ---------------------------------------------------------------------------------------

/// A client with every rotation key: two copies, three addresses each from
/// 192.168.1.1/24; IKE on the wildcard so that the allocated addresses are covered.
const MOBIKE_CLIENT: &str = "cipher: { backend: udp, bind: ['0.0.0.0:4500'] }\n\
clear: { backend: tun, name: t0 }\n\
connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 192.0.2.2\n    \
local_id: c-%n@example.org\n    vips: [0.0.0.0]\n    instances: 2\n    mobike: true\n    \
startclntaddr: 192.168.1.1/24\n    mobikeaddrpertunnel: 3\n    mobikeiplifetime: 30s\n    \
mobikechangeaddrtype: both\n    disallownat: true\n    mobikedebounce: 50ms\n    \
mobikeipspread: true\n";

/// A gateway with MOBIKE, two local addresses, return-routability checks.
const MOBIKE_GW: &str = "cipher: { backend: udp, bind: ['192.0.2.1:4500', '192.0.2.9:4500'] }\n\
clear: { backend: tun, name: t0 }\n\
connections:\n  - name: g\n    psk: a long secret\n    local_id: gw.example.org\n    \
mobike: true\n    mobikerrcheck: true\n    mobikeaddrpergw: 2\n    disallownat: false\n";

fn socks(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| sock(s)).collect()
}

#[test]
fn mobike_keys_parse() {
    let c = parse_ok(MOBIKE_CLIENT);
    let k = &c.connections[0];
    assert_eq!(
        k.conn.mobike,
        Mobike {
            enabled: true,
            disallow_nat: true,
            rr_check: false,
            ip_lifetime_ms: 30_000,
            ip_spread: true,
            change_type: ChangeType::Both,
            addrs_per_gw: 0,
            debounce_ms: 50,
        }
    );
    assert_eq!(
        (k.client_start, k.client_prefix_len, k.addrs_per_tunnel),
        (Some(ip("192.168.1.1")), Some(24), 3)
    );
    // The seed's allocation: copy i gets N consecutive addresses from start + (i-1)*N.
    let all: Vec<Conn> = k.instances().collect();
    assert_eq!(
        all[0].local_addrs,
        socks(&["192.168.1.1:500", "192.168.1.2:500", "192.168.1.3:500"])
    );
    assert_eq!(
        all[1].local_addrs,
        socks(&["192.168.1.4:500", "192.168.1.5:500", "192.168.1.6:500"])
    );
    assert_eq!(k.conn.local_addrs, all[0].local_addrs, "the base is copy 1");
    assert_eq!(k.client_addrs(2), Some(all[1].local_addrs.clone()));
    assert!(all[1].mobike.enabled, "every copy carries the settings");

    // The other change types, 0 = no rotation, plain-seconds durations, IPv6, the
    // last usable addresses of a prefix exactly.
    for (text, want) in [
        ("own-only", ChangeType::OwnOnly),
        ("peer-only", ChangeType::PeerOnly),
        ("Both", ChangeType::Both),
    ] {
        let t = MOBIKE_CLIENT.replace(
            "mobikechangeaddrtype: both",
            &format!("mobikechangeaddrtype: {text}"),
        );
        assert_eq!(parse_ok(&t).connections[0].conn.mobike.change_type, want);
    }
    let t = MOBIKE_CLIENT
        .replace("mobikeiplifetime: 30s", "mobikeiplifetime: 0")
        .replace("mobikedebounce: 50ms", "mobikedebounce: 2");
    let m = &parse_ok(&t).connections[0].conn.mobike;
    assert_eq!((m.ip_lifetime_ms, m.debounce_ms), (0, 2000));
    // 192.168.1.249 + 2*3 - 1 = .254: the last host address of the /24.
    let t = MOBIKE_CLIENT.replace("192.168.1.1/24", "192.168.1.249/24");
    let k = &parse_ok(&t).connections[0];
    assert_eq!(
        k.instance(2).local_addrs.last(),
        Some(&sock("192.168.1.254:500"))
    );
    let t = MOBIKE_CLIENT
        .replace("'0.0.0.0:4500'", "'[::]:4500'")
        .replace("peeraddr: 192.0.2.2", "peeraddr: '2001:db8::2'")
        .replace("vips: [0.0.0.0]", "vips: ['::']")
        .replace("192.168.1.1/24", "'2001:db8:1::ffff/64'");
    let k = &parse_ok(&t).connections[0];
    assert_eq!(
        k.instance(2).local_addrs,
        socks(&[
            "[2001:db8:1::1:2]:500",
            "[2001:db8:1::1:3]:500",
            "[2001:db8:1::1:4]:500"
        ])
    );
    assert_eq!(k.client_prefix_len, Some(64));

    // Gateway role.
    let g = parse_ok(MOBIKE_GW);
    let k = &g.connections[0];
    assert_eq!(
        k.conn.mobike,
        Mobike {
            enabled: true,
            rr_check: true,
            addrs_per_gw: 2,
            ..Mobike::default()
        }
    );
    assert_eq!(
        (k.client_start, k.client_prefix_len, k.addrs_per_tunnel),
        (None, None, 0)
    );
    assert_eq!(
        k.instance(1).local_addrs,
        socks(&["192.0.2.1:500", "192.0.2.9:500"])
    );

    // Defaults: MOBIKE off, everything zero.
    let d = parse_ok(&format!(
        "{MINIMAL}connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 192.0.2.2\n"
    ));
    assert_eq!(d.connections[0].conn.mobike, Mobike::default());
    assert!(!d.connections[0].conn.mobike.enabled);
    let d = parse_ok(&format!(
        "{MINIMAL}connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 192.0.2.2\n    mobike: false\n"
    ));
    assert_eq!(d.connections[0].conn.mobike, Mobike::default());

    // Equality and Debug see the new fields.
    let a = parse_ok(MOBIKE_CLIENT);
    let b = parse_ok(&MOBIKE_CLIENT.replace("mobikedebounce: 50ms", "mobikedebounce: 60ms"));
    assert_ne!(a.connections[0], b.connections[0]);
    let b = parse_ok(&MOBIKE_CLIENT.replace("192.168.1.1/24", "192.168.1.1/25"));
    assert_ne!(a.connections[0], b.connections[0]);
    let shown = format!("{:?}", a.connections[0]);
    assert!(
        shown.contains("debounce_ms: 50") && shown.contains("client_prefix_len: Some(24)"),
        "{shown}"
    );
}

/// (base, replace this, with this, expected key path, text the error must contain)
const BROKEN_MOBIKE: &[(&str, &str, &str, &str, &str)] = &[
    // Values.
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: maybe",
        "connections[0].mobike",
        "write true or false",
    ),
    (
        MOBIKE_CLIENT,
        "disallownat: true",
        "disallownat: 2",
        "connections[0].disallownat",
        "write true or false",
    ),
    (
        MOBIKE_GW,
        "mobikerrcheck: true",
        "mobikerrcheck: yes please",
        "connections[0].mobikerrcheck",
        "write true or false",
    ),
    (
        MOBIKE_CLIENT,
        "mobikeiplifetime: 30s",
        "mobikeiplifetime: 30 fortnights",
        "connections[0].mobikeiplifetime",
        "500ms, 30s",
    ),
    (
        MOBIKE_CLIENT,
        "mobikeiplifetime: 30s",
        "mobikeiplifetime: 400d",
        "connections[0].mobikeiplifetime",
        "longer than 365 days",
    ),
    (
        MOBIKE_CLIENT,
        "mobikechangeaddrtype: both",
        "mobikechangeaddrtype: own_only",
        "connections[0].mobikechangeaddrtype",
        "did you mean `own-only`?",
    ),
    (
        MOBIKE_CLIENT,
        "mobikechangeaddrtype: both",
        "mobikechangeaddrtype: sideways",
        "connections[0].mobikechangeaddrtype",
        "use one of: own-only, peer-only, both",
    ),
    (
        MOBIKE_CLIENT,
        "mobikedebounce: 50ms",
        "mobikedebounce: 2m",
        "connections[0].mobikedebounce",
        "from 0s to 60s",
    ),
    (
        MOBIKE_CLIENT,
        "mobikeaddrpertunnel: 3",
        "mobikeaddrpertunnel: 0",
        "connections[0].mobikeaddrpertunnel",
        "from 1 to 64",
    ),
    (
        MOBIKE_GW,
        "mobikeaddrpergw: 2",
        "mobikeaddrpergw: many",
        "connections[0].mobikeaddrpergw",
        "from 0 to 64",
    ),
    (
        MOBIKE_GW,
        "mobikeaddrpergw: 2",
        "mobikeaddrpergw: 3",
        "connections[0].mobikeaddrpergw",
        "give at most 2 (0 = all)",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.1",
        "connections[0].startclntaddr",
        "e.g. 192.168.1.1/24",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.x/24",
        "connections[0].startclntaddr",
        "e.g. 192.168.1.1/24",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.1/33",
        "connections[0].startclntaddr",
        "give 0 to 32",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.0/24",
        "connections[0].startclntaddr",
        "start at a host address, e.g. 192.168.1.1/24",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "224.0.0.1/24",
        "connections[0].startclntaddr",
        "give a unicast address",
    ),
    // The block of every instance inside the prefix: 2 x 3 from .250 end at .255, the
    // broadcast address; 90 copies of 3 do not fit into the /24, 2 into a /30.
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.250/24",
        "connections[0].startclntaddr",
        "1 instance(s) fit",
    ),
    (
        MOBIKE_CLIENT,
        "instances: 2",
        "instances: 90",
        "connections[0].startclntaddr",
        "lower instances or mobikeaddrpertunnel",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "192.168.1.1/30",
        "connections[0].startclntaddr",
        "give a shorter prefix",
    ),
    // Both keys together, not with local_addrs, of the peer's family, covered by IKE.
    (
        MOBIKE_CLIENT,
        "    mobikeaddrpertunnel: 3\n",
        "",
        "connections[0].startclntaddr",
        "add `mobikeaddrpertunnel: N`",
    ),
    (
        MOBIKE_CLIENT,
        "    startclntaddr: 192.168.1.1/24\n",
        "",
        "connections[0].mobikeaddrpertunnel",
        "add `startclntaddr: 192.168.1.1/24`",
    ),
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: true\n    local_addrs: [192.168.1.1]",
        "connections[0].startclntaddr",
        "keep one: startclntaddr with mobikeaddrpertunnel",
    ),
    (
        MOBIKE_CLIENT,
        "192.168.1.1/24",
        "'2001:db8::1/64'",
        "connections[0].startclntaddr",
        "of the peer's address family",
    ),
    (
        MOBIKE_CLIENT,
        "'0.0.0.0:4500'",
        "'192.168.1.1:4500'",
        "connections[0].startclntaddr",
        "192.168.1.2, allocated by startclntaddr, is not an address IKE listens on",
    ),
    // Own-only rotation needs two own addresses.
    (
        MOBIKE_CLIENT,
        "mobikeaddrpertunnel: 3\n    mobikeiplifetime: 30s\n    mobikechangeaddrtype: both",
        "mobikeaddrpertunnel: 1\n    mobikeiplifetime: 30s\n    mobikechangeaddrtype: own-only",
        "connections[0].mobikeiplifetime",
        "set mobikechangeaddrtype: peer-only or both",
    ),
    // Every MOBIKE key needs `mobike: true`.
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: false",
        "connections[0].mobikeiplifetime",
        "add `mobike: true`, or remove `mobikeiplifetime`",
    ),
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: false",
        "connections[0].mobikechangeaddrtype",
        "add `mobike: true`, or remove `mobikechangeaddrtype`",
    ),
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: false",
        "connections[0].startclntaddr",
        "add `mobike: true`, or remove `startclntaddr`",
    ),
    (
        MOBIKE_CLIENT,
        "mobike: true",
        "mobike: false",
        "connections[0].mobikeaddrpertunnel",
        "add `mobike: true`, or remove `mobikeaddrpertunnel`",
    ),
    (
        MOBIKE_CLIENT,
        "    mobike: true\n",
        "",
        "connections[0].disallownat",
        "add `mobike: true`, or remove `disallownat`",
    ),
    (
        MOBIKE_CLIENT,
        "    mobike: true\n",
        "",
        "connections[0].mobikedebounce",
        "add `mobike: true`, or remove `mobikedebounce`",
    ),
    (
        MOBIKE_GW,
        "mobike: true",
        "mobike: off",
        "connections[0].mobikeaddrpergw",
        "add `mobike: true`, or remove `mobikeaddrpergw`",
    ),
    (
        MOBIKE_GW,
        "mobike: true",
        "mobike: off",
        "connections[0].mobikerrcheck",
        "add `mobike: true`, or remove `mobikerrcheck`",
    ),
    // Rotation keys only where a peeraddr makes this end the initiator.
    (
        MOBIKE_GW,
        "mobikerrcheck: true",
        "mobikeiplifetime: 10s",
        "connections[0].mobikeiplifetime",
        "add `peeraddr: GATEWAY-IP` to initiate, or remove `mobikeiplifetime`",
    ),
    (
        MOBIKE_GW,
        "mobikerrcheck: true",
        "mobikechangeaddrtype: both",
        "connections[0].mobikechangeaddrtype",
        "or remove `mobikechangeaddrtype`",
    ),
    (
        MOBIKE_GW,
        "mobikerrcheck: true",
        "startclntaddr: 192.0.2.1/24\n    mobikeaddrpertunnel: 1",
        "connections[0].startclntaddr",
        "or remove `startclntaddr`",
    ),
    (
        MOBIKE_GW,
        "mobikerrcheck: true",
        "startclntaddr: 192.0.2.1/24\n    mobikeaddrpertunnel: 1",
        "connections[0].mobikeaddrpertunnel",
        "or remove `mobikeaddrpertunnel`",
    ),
    // mobikeaddrpergw only on a responder.
    (
        MOBIKE_CLIENT,
        "disallownat: true",
        "mobikeaddrpergw: 2",
        "connections[0].mobikeaddrpergw",
        "a client's own addresses come from startclntaddr",
    ),
    // A misspelt key gets a suggestion like every other.
    (
        MOBIKE_CLIENT,
        "mobikeiplifetime:",
        "mobikeiplifetim:",
        "connections[0].mobikeiplifetim",
        "did you mean `mobikeiplifetime`?",
    ),
];

#[test]
fn broken_mobike_configs_name_the_key_and_the_fix() {
    let mut failures = Vec::new();
    for (base, from, to, path, fix) in BROKEN_MOBIKE {
        assert!(base.contains(from), "test table: `{from}` not in the base");
        let text = base.replacen(from, to, 1);
        let errs = match config::parse(&text) {
            Ok(_) => {
                failures.push(format!("{path} ({to}): accepted"));
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
        BROKEN_MOBIKE.len(),
        failures.join("\n")
    );
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
                Request::Sas | Request::Move { .. } => Response::Sas { sas: vec![] },
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

#[test]
fn static_sas_take_every_transform_with_its_key_length() {
    let base = example_text("static-a.yaml");
    for cipher in EspCipher::ALL {
        let hex = |seed: u8| -> String {
            (0..cipher.keymat_len())
                .map(|i| format!("{:02x}", (i as u8).wrapping_mul(seed) ^ seed))
                .collect()
        };
        let text = base
            .replacen(
                "enc: aes128gcm16, key: 0xe173505d16b84838f81f43c1ce12e7f697b40202",
                &format!("enc: {}, key: 0x{}", cipher.name(), hex(3)),
                1,
            )
            .replacen(
                "enc: aes128gcm16, key: 0x5705f7b50b5a70aa4e11a99e18b6d56e20bd93f6",
                &format!("enc: {}, key: 0x{}", cipher.name(), hex(5)),
                1,
            );
        let cfg = config::parse(&text).unwrap_or_else(|e| panic!("{cipher}: {e}"));
        let t = &cfg.tunnels[0];
        assert_eq!(t.outbound.cipher, cipher);
        assert_eq!(t.inbound.cipher, cipher);
        assert_eq!(t.outbound.key.len(), cipher.keymat_len());
        // And the keys expand into the tables the workers read.
        let mut writer = TableWriter::new(cfg.table_config());
        let mut reader = writer.reader(0).unwrap();
        cfg.install(&mut writer, |_| Ok(None))
            .unwrap_or_else(|e| panic!("{cipher}: {e}"));
        let snap = reader.begin_burst();
        let inb = snap.inbound(0x2001).expect("inbound SA by SPI");
        assert_eq!(inb.key.cipher(), cipher);
        assert_eq!(inb.key.as_cbc().is_some(), !cipher.is_aead());
    }
}
