//! The generic located tree of a configuration: any YAML value, with the line and column
//! of every key and value, read under the parser limits every stage uses. Stage 2 checks
//! keys and shapes on it; errors of the later stages find their key path in it.

use super::MAX_FILE_BYTES;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Deepest nesting the parser accepts.
pub(super) const MAX_DEPTH: usize = 64;

/// Parser limits: a configuration has no reason for many aliases, deep nesting or large
/// scalars, and the limits make an alias bomb fail in microseconds. One document: a
/// second one is found by the document count (see [`check_text`]).
pub(super) fn options() -> serde_saphyr::Options {
    let budget = serde_saphyr::Budget {
        max_reader_input_bytes: Some(MAX_FILE_BYTES as usize),
        max_events: 100_000,
        max_aliases: 1_000,
        max_anchors: 1_000,
        max_depth: MAX_DEPTH,
        max_documents: 1,
        max_nodes: 50_000,
        max_total_scalar_bytes: 1 << 20,
        max_merge_keys: 1_000,
        ..Default::default()
    };
    let alias_limits = serde_saphyr::options::AliasLimits {
        max_total_replayed_events: 10_000,
        max_replay_stack_depth: 16,
        max_alias_expansions_per_anchor: 100,
    };
    serde_saphyr::Options {
        budget: Some(budget),
        alias_limits,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
        crop_radius: 0,
        ..Default::default()
    }
}

/// Any YAML node, with the location of every key and value.
#[derive(Debug)]
pub(super) enum Node {
    Null,
    Scalar,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

/// A mapping key: any scalar, read as text (`1:` is the key `1`). An empty key or a
/// list or mapping as a key is an error with a message of our own.
struct Key(String);

pub(super) const NULL_KEY: &str = "a key is empty (null)";
pub(super) const COMPLEX_KEY: &str = "a key is a list or a mapping";

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Err(E::custom(NULL_KEY))
            }
            fn visit_none<E: de::Error>(self) -> Result<Key, E> {
                Err(E::custom(NULL_KEY))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom(COMPLEX_KEY))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom(COMPLEX_KEY))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = a.next_element::<Spanned<Node>>()? {
                    v.push(n);
                }
                Ok(Node::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<Spanned<Key>>()? {
                    let n = a.next_value::<Spanned<Node>>()?;
                    let key = Spanned::new(k.value.0, k.referenced, k.defined);
                    v.push((key, n));
                }
                Ok(Node::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The key path of the node (key or value) at `line:column`, or of the last node before it.
pub(super) fn path_at(tree: &Spanned<Node>, line: u64, column: u64) -> String {
    fn walk(
        n: &Spanned<Node>,
        path: &mut Vec<Seg>,
        target: (u64, u64),
        best: &mut Option<((u64, u64), String)>,
    ) {
        let here = (n.referenced.line(), n.referenced.column());
        if here <= target && best.as_ref().is_none_or(|(b, _)| *b <= here) {
            *best = Some((here, render_path(path)));
        }
        match &n.value {
            Node::Map(entries) => {
                for (k, v) in entries {
                    path.push(Seg::Key(k.value.clone()));
                    let kl = (k.referenced.line(), k.referenced.column());
                    if kl <= target && best.as_ref().is_none_or(|(b, _)| *b <= kl) {
                        *best = Some((kl, render_path(path)));
                    }
                    walk(v, path, target, best);
                    path.pop();
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, path, target, best);
                    path.pop();
                }
            }
            Node::Null | Node::Scalar => {}
        }
    }
    let mut best = None;
    walk(tree, &mut Vec::new(), (line, column), &mut best);
    best.map(|(_, p)| p).unwrap_or_default()
}

/// The node at `path`.
pub(super) fn node_at<'t>(tree: &'t Spanned<Node>, path: &[Seg]) -> Option<&'t Node> {
    let mut n = tree;
    for seg in path {
        n = match (&n.value, seg) {
            (Node::Map(entries), Seg::Key(k)) => {
                &entries.iter().rev().find(|(e, _)| &e.value == k)?.1
            }
            (Node::Seq(items), Seg::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(&n.value)
}
