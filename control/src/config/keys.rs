//! Stage 2 of loading a configuration: every key, and the shape of every value, on the
//! generic tree before any value is read.
//!
//! The accepted keys and the shape each value may take (a single value, a list, a
//! mapping) come from the serde structs themselves: the keys from what the derive asks
//! for, the shapes from whether the struct accepts `key: x`, `key: []` and `key: {}`. So
//! the check cannot drift from what stage 3 reads. A key written without a value is
//! reported here too: an empty value is never taken for the default.

use super::cipher::RawCipher;
use super::clear::RawClear;
use super::control::RawControl;
use super::dataplane::RawDataplane;
use super::paths::RawPath;
use super::sa::RawSa;
use super::tree::{render_path, Node, Seg};
use super::tunnels::RawTunnel;
use super::{connections, ike, pools, ConfigErrors, RawConfig};
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};
use serde_saphyr::Spanned;
use std::collections::HashMap;

/// A mapping of the configuration: its keys, and a probe of the shapes it accepts.
pub(super) struct Section {
    /// What the mapping is, for the examples.
    name: &'static str,
    fields: &'static [&'static str],
    accepts: fn(&str) -> bool,
}

fn section<T: DeserializeOwned>(name: &'static str) -> Section {
    Section {
        name,
        fields: fields_of::<T>(),
        accepts: accepts::<T>,
    }
}

fn accepts<T: DeserializeOwned>(doc: &str) -> bool {
    serde_saphyr::from_str::<T>(doc).is_ok()
}

/// The mapping at `path`, if it is one of the configuration's.
fn section_at(path: &[Seg]) -> Option<Section> {
    use Seg::*;
    let k = |s: &Seg, name: &str| matches!(s, Key(x) if x == name);
    Some(match path {
        [] => section::<RawConfig>("top"),
        [a] if k(a, "dataplane") => section::<RawDataplane>("dataplane"),
        [a] if k(a, "cipher") => section::<RawCipher>("cipher"),
        [a] if k(a, "clear") => section::<RawClear>("clear"),
        [a] if k(a, "control") => section::<RawControl>("control"),
        [a, Index(_)] if k(a, "paths") => section::<RawPath>("path"),
        [a, Index(_)] if k(a, "tunnels") => section::<RawTunnel>("tunnel"),
        [a, Index(_), b] if k(a, "tunnels") && (k(b, "outbound") || k(b, "inbound")) => {
            section::<RawSa>("sa")
        }
        [a] if k(a, "ike") => section::<ike::RawIke>("ike"),
        [a, Index(_)] if k(a, "pools") => section::<pools::RawPool>("pool"),
        [a, Index(_)] if k(a, "connections") => section::<connections::RawConn>("connection"),
        [a, Index(_), b] if k(a, "connections") && k(b, "children") => {
            section::<connections::RawChildren>("children")
        }
        [a, Index(_), b] if k(a, "connections") && k(b, "retransmit") => {
            section::<connections::RawRetransmit>("retransmit")
        }
        _ => return None,
    })
}

/// The accepted keys of the mapping at `path`, taken from the serde structs.
pub(super) fn fields_at(path: &[Seg]) -> Option<&'static [&'static str]> {
    section_at(path).map(|s| s.fields)
}

/// What a value may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    scalar: bool,
    list: bool,
    map: bool,
}

impl Shape {
    fn want(self) -> &'static str {
        match (self.scalar, self.list, self.map) {
            (true, true, _) => "a value or a list",
            (_, true, _) => "a list",
            (_, _, true) => "a mapping",
            _ => "a single value",
        }
    }
}

fn given(n: &Node) -> &'static str {
    match n {
        Node::Map(_) => "a mapping",
        Node::Seq(_) => "a list",
        _ => "a single value",
    }
}

impl Section {
    /// The shapes `key`'s value may take, and those of a list entry.
    fn shapes(&self, key: &str) -> (Shape, Shape) {
        let ok = |v: &str| (self.accepts)(&format!("{key}: {v}"));
        (
            Shape {
                scalar: ok("x"),
                list: ok("[]"),
                map: ok("{}"),
            },
            Shape {
                scalar: ok("[x]"),
                list: ok("[[]]"),
                map: ok("[{}]"),
            },
        )
    }
}

/// Checks every key and value shape of the tree: unknown keys (with a did-you-mean),
/// values of the wrong shape, keys without a value, empty list entries.
pub(super) fn check(tree: &Spanned<Node>, errs: &mut ConfigErrors) {
    if !matches!(tree.value, Node::Map(_)) {
        errs.push(
            "",
            Some(tree.referenced),
            format!(
                "a configuration is a mapping of sections (`cipher:`, `clear:`, `connections:`, ...), \
                 and this file is {}",
                given(&tree.value)
            ),
            "write each section's name at the start of a line, its keys indented below it \
             (see examples/gateway.yaml, examples/client.yaml or examples/static-a.yaml)",
        );
        return;
    }
    let mut w = Walk {
        errs,
        shapes: HashMap::new(),
    };
    w.map(tree, &mut Vec::new());
}

struct Walk<'e> {
    errs: &'e mut ConfigErrors,
    /// Shapes by section and key: a file with many connections probes each key once.
    shapes: HashMap<(&'static str, String), (Shape, Shape)>,
}

impl Walk<'_> {
    fn map(&mut self, node: &Spanned<Node>, path: &mut Vec<Seg>) {
        let Node::Map(entries) = &node.value else {
            return;
        };
        let Some(sec) = section_at(path) else { return };
        for (k, v) in entries {
            path.push(Seg::Key(k.value.clone()));
            if sec.fields.contains(&k.value.as_str()) {
                self.value(&sec, k, v, path);
            } else {
                let fix = match suggest(&k.value, sec.fields) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("accepted keys here: {}", sec.fields.join(", ")),
                };
                self.errs.push(
                    render_path(path),
                    Some(k.referenced),
                    format!("unknown key `{}`", k.value),
                    fix,
                );
            }
            path.pop();
        }
    }

    fn value(
        &mut self,
        sec: &Section,
        k: &Spanned<String>,
        v: &Spanned<Node>,
        path: &mut Vec<Seg>,
    ) {
        let key = k.value.as_str();
        let (shape, item) = *self
            .shapes
            .entry((sec.name, key.to_string()))
            .or_insert_with(|| sec.shapes(key));
        let example = example(sec.name, key);
        let here = render_path(path);
        let fits = match &v.value {
            Node::Null => {
                let (problem, fix) = empty(key, shape, item, example);
                self.errs.push(here, Some(k.referenced), problem, fix);
                return;
            }
            Node::Scalar => shape.scalar,
            Node::Seq(_) => shape.list,
            Node::Map(_) => shape.map,
        };
        if !fits {
            self.errs.push(
                here,
                Some(v.referenced),
                format!("`{key}` must be {}, not {}", shape.want(), given(&v.value)),
                form(key, shape, item, example),
            );
            return;
        }
        match &v.value {
            Node::Map(_) => self.map(v, path),
            Node::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    let entry = render_path(path);
                    let wrong = match &it.value {
                        Node::Null => Some(format!("entry {i} of `{key}` is empty")),
                        Node::Map(_) if item.map => {
                            self.map(it, path);
                            None
                        }
                        n if (matches!(n, Node::Scalar) && !item.scalar)
                            || (matches!(n, Node::Seq(_)) && !item.list)
                            || (matches!(n, Node::Map(_)) && !item.map) =>
                        {
                            Some(format!(
                                "each entry of `{key}` is {}, and entry {i} is {}",
                                item.want(),
                                given(n)
                            ))
                        }
                        _ => None,
                    };
                    if let Some(problem) = wrong {
                        self.errs.push(
                            entry,
                            Some(it.referenced),
                            problem,
                            form(key, shape, item, example),
                        );
                    }
                    path.pop();
                }
            }
            Node::Null | Node::Scalar => {}
        }
    }
}

/// How to write `key` correctly, with its example.
fn form(key: &str, shape: Shape, item: Shape, example: &str) -> String {
    if shape.list && item.map {
        format!("write a list: {example}")
    } else if shape.list && shape.scalar {
        format!("write one value or a list: `{key}: {example}`, or one `- item` per line below it")
    } else if shape.list {
        format!("write a list: `{key}: {example}`, or one `- item` per line below it")
    } else if shape.map {
        format!("write its keys below it, indented, or in braces: `{key}: {example}`")
    } else {
        format!("write one value: `{key}: {example}`")
    }
}

/// A key written without a value.
fn empty(key: &str, shape: Shape, item: Shape, example: &str) -> (String, String) {
    if key == "psk" {
        return (
            "`psk` is present but has no value".to_string(),
            format!(
                "give the pre-shared key after `psk:` on the same line: 0x and 64 hex digits \
                 (32 random bytes: `head -c 32 /dev/urandom | xxd -p -c 64`), or a passphrase of \
                 at least {} characters",
                super::PSK_MIN
            ),
        );
    }
    let what = if shape.map && !shape.list {
        "is present but empty"
    } else {
        "is present but has no value"
    };
    let fix = if shape.list && item.map {
        format!("{}, or remove the line", form(key, shape, item, example))
    } else {
        format!(
            "{} (an empty value does not select the default: remove the line for that)",
            form(key, shape, item, example)
        )
    };
    (format!("`{key}` {what}"), fix)
}

/// An example value of every key, by section (the names of [`section_at`]). Lists of
/// mappings get the words that say how to write their entries.
fn example(section: &str, key: &str) -> &'static str {
    match (section, key) {
        ("top", "dataplane") => "{ workers: 1, burst: 64 }",
        ("top", "cipher") => "{ backend: udp, bind: [\"10.0.1.1:4500\"] }",
        ("top", "clear") => "{ backend: tun, name: mtun0 }",
        ("top", "control") => "{ socket: /run/mobiked.sock }",
        ("top", "paths") => {
            "one entry per path, starting with `- name: NAME` and its keys indented below it \
             (see examples/static-a.yaml)"
        }
        ("top", "tunnels") => {
            "one entry per tunnel, starting with `- name: NAME` and its keys indented below it \
             (see examples/static-a.yaml)"
        }
        ("top", "ike") => "{ listen: [192.0.2.1], port: 500 }",
        ("top", "pools") => {
            "one entry per pool, starting with `- name: NAME` and `addrs:` indented below it \
             (see examples/gateway.yaml)"
        }
        ("top", "connections") => {
            "one entry per connection, starting with `- name: NAME` and its keys indented below \
             it (see examples/gateway.yaml and examples/client.yaml)"
        }
        ("dataplane", "workers") => "1",
        ("dataplane", "cores") => "[0, 1]",
        ("dataplane", "burst") => "64",
        ("dataplane" | "sa", "replay_window") => "1024",
        ("dataplane", "max_sas") => "4096",
        ("dataplane", "punt_queue") => "8192",
        ("dataplane", "mode") => "esp",
        ("dataplane", "poll") => "adaptive",
        ("cipher", "backend") => "udp",
        ("clear", "backend") => "tun",
        ("cipher", "bind") => "[\"10.0.1.1:4500\"]",
        ("cipher" | "clear", "interface") => "eth1",
        ("cipher" | "clear", "rx_ring") => "blocks",
        ("cipher" | "clear", "rx_block_timeout_ms") => "1",
        ("cipher", "gso" | "gro") => "true",
        ("cipher" | "clear", "pcap") => "/tmp/capture.pcap",
        ("clear", "name") => "mtun0",
        ("clear", "next_hop_mac") => "02:00:00:00:00:01",
        ("control", "socket") => "/run/mobiked.sock",
        ("path", "name") => "main",
        ("path", "local") => "10.0.1.1:4500",
        ("path", "remote") => "10.0.1.2:4500",
        ("path", "encap") => "udp",
        ("path", "keepalive") => "20",
        ("path", "next_hop_mac") => "auto",
        ("tunnel", "name") => "t1",
        ("tunnel", "path") => "main",
        ("tunnel" | "connection", "local_ts") => "[10.1.0.0/24]",
        ("tunnel", "remote_ts") => "[10.2.0.0/24]",
        ("tunnel", "outbound") => "{ spi: 0x00001001, enc: aes128gcm16, key: 0x... }",
        ("tunnel", "inbound") => "{ spi: 0x00002001, enc: aes128gcm16, key: 0x... }",
        ("sa", "spi") => "0x00001001",
        ("sa", "enc") => "aes128gcm16",
        ("sa", "key") => "0x<40 hex digits: the key and the 4-byte salt>",
        ("sa", "esn") => "false",
        ("ike", "listen") => "[192.0.2.1]",
        ("ike", "port") => "500",
        ("ike", "port_nat_t") => "4500",
        ("ike", "cookie_threshold") => "1000",
        ("ike", "setup_rate") => "1000",
        ("ike", "setup_window") => "256",
        ("pool", "name") => "vpn4",
        ("pool", "addrs") => "10.3.0.0/24",
        ("pool", "dns") => "[10.1.0.53]",
        ("connection", "name") => "home",
        ("connection", "peeraddr" | "remote_addrs") => "192.0.2.2",
        ("connection", "local_addrs") => "[192.0.2.1]",
        ("connection", "local_id") => "gw.example.org",
        ("connection", "remote_id") => "client@example.org",
        ("connection", "psk") => "0x<64 hex digits>",
        ("connection", "proposals") => "[aes128gcm16-prfsha256-x25519]",
        ("connection", "esp_proposals") => "[aes128gcm16]",
        ("connection", "remote_ts") => "[10.3.0.0/24]",
        ("connection", "pools") => "[vpn4]",
        ("connection", "vips") => "[0.0.0.0]",
        ("connection" | "children", "rekey_time") => "1h",
        ("connection", "over_time") => "10m",
        ("connection" | "children", "rand_time") => "6m",
        ("connection", "children") => "{ rekey_time: 1h, life_time: 66m }",
        ("connection", "dpd_delay") => "30s",
        ("connection", "dpd_timeout") => "60s",
        ("connection", "childless_timeout") => "60s",
        ("connection", "retransmit") => "{ timeout: 1s, tries: 6, max: 16s }",
        ("connection", "encap") => "false",
        ("connection", "instances") => "1",
        ("connection", "mobike" | "mobikerrcheck") => "true",
        ("connection", "disallownat") => "false",
        ("connection", "mobikeiplifetime") => "30s",
        ("connection", "mobikeipspread") => "true",
        ("connection", "mobikechangeaddrtype") => "own-only",
        ("connection", "mobikeaddrpergw") => "0",
        ("connection", "mobikedebounce") => "0ms",
        ("connection", "mobikeaddrpertunnel") => "2",
        ("connection", "startclntaddr") => "192.168.1.1/24",
        ("children", "life_time") => "66m",
        ("retransmit", "timeout") => "1s",
        ("retransmit", "tries") => "6",
        ("retransmit", "max") => "16s",
        _ => "VALUE",
    }
}

/// The field names a derived `Deserialize` struct accepts, read from the derive itself by
/// a deserializer that records what `deserialize_struct` is asked for.
pub(super) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The closest candidate to `word`, if close enough to be a likely typo.
pub(super) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase().replace('-', "_");
    candidates
        .iter()
        .map(|c| (edit_distance(&w, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(w.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment):
/// `kye` is one typo away from `key`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, v) in d.iter_mut().enumerate().take(w) {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path to every section of [`section_at`].
    fn every_section() -> Vec<Vec<Seg>> {
        let k = |s: &str| Seg::Key(s.to_string());
        let mut v = vec![vec![]];
        for s in ["dataplane", "cipher", "clear", "control", "ike"] {
            v.push(vec![k(s)]);
        }
        for s in ["paths", "tunnels", "pools", "connections"] {
            v.push(vec![k(s), Seg::Index(0)]);
        }
        v.push(vec![k("tunnels"), Seg::Index(0), k("outbound")]);
        v.push(vec![k("connections"), Seg::Index(0), k("children")]);
        v.push(vec![k("connections"), Seg::Index(0), k("retransmit")]);
        v
    }

    #[test]
    fn fields_come_from_the_derive() {
        assert_eq!(
            fields_of::<RawSa>(),
            &["spi", "enc", "key", "esn", "replay_window"]
        );
        assert!(fields_of::<RawConfig>().contains(&"tunnels"));
    }

    #[test]
    fn every_key_has_an_example() {
        for p in every_section() {
            let sec = section_at(&p).unwrap();
            for f in sec.fields {
                assert_ne!(example(sec.name, f), "VALUE", "{}.{f}", sec.name);
            }
        }
    }

    #[test]
    fn shapes_come_from_the_structs() {
        let scalar = Shape {
            scalar: true,
            list: false,
            map: false,
        };
        let list = Shape {
            scalar: false,
            list: true,
            map: false,
        };
        let map = Shape {
            scalar: false,
            list: false,
            map: true,
        };
        let top = section_at(&[]).unwrap();
        assert_eq!(top.shapes("cipher").0, map);
        assert_eq!(top.shapes("tunnels"), (list, map));
        let t = section_at(&[Seg::Key("tunnels".into()), Seg::Index(0)]).unwrap();
        assert_eq!(t.shapes("local_ts"), (list, scalar));
        assert_eq!(t.shapes("name").0, scalar);
        let c = section_at(&[Seg::Key("connections".into()), Seg::Index(0)]).unwrap();
        let one_or_many = Shape {
            scalar: true,
            list: true,
            map: false,
        };
        assert_eq!(c.shapes("local_ts"), (one_or_many, scalar));
        assert_eq!(c.shapes("retransmit").0, map);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("kye", &["spi", "enc", "key"]), Some("key"));
        assert_eq!(
            suggest("replay-window", &["replay_window", "esn"]),
            Some("replay_window")
        );
        assert_eq!(suggest("zzzzzz", &["spi", "enc", "key"]), None);
        assert_eq!(
            suggest("aes128gcm", &["aes128gcm16", "aes256gcm16"]),
            Some("aes128gcm16")
        );
    }
}
