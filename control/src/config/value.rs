//! The leaf values of a configuration and the context that checks them: every leaf is a
//! located string (so that type errors are reported with the key path, all at once),
//! read here as a number, a boolean, one of a set of words, a file path or a MAC.

use super::error::ConfigErrors;
use super::keys::suggest;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::path::PathBuf;

pub(super) type S = Spanned<String>;
pub(super) type List = Spanned<Vec<S>>;

/// Validation context: the error list and helpers that name keys.
pub(super) struct Ctx<'a> {
    pub(super) errs: &'a mut ConfigErrors,
}

impl Ctx<'_> {
    pub(super) fn err(
        &mut self,
        path: &str,
        loc: Location,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.errs.push(path, Some(loc), problem, fix);
    }

    pub(super) fn missing(&mut self, path: &str, parent: Option<Location>, fix: impl Into<String>) {
        self.errs.push(path, parent, "required key is missing", fix);
    }

    /// An unsigned integer (decimal or 0x-hex) within `range`.
    pub(super) fn uint(
        &mut self,
        path: &str,
        v: &S,
        range: std::ops::RangeInclusive<u64>,
        what: &str,
    ) -> Option<u64> {
        match parse_uint(&v.value) {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    path,
                    v.referenced,
                    format!("{n} is out of range ({what})"),
                    format!("give a value from {} to {}", range.start(), range.end()),
                );
                None
            }
            None => {
                self.err(
                    path,
                    v.referenced,
                    format!("{} ({what})", not_a_number(&v.value)),
                    format!("give a value from {} to {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, path: &str, v: &S) -> Option<bool> {
        match v.value.as_str() {
            "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "off" => Some(false),
            other => {
                self.err(
                    path,
                    v.referenced,
                    format!("`{other}` is not a boolean"),
                    "write true or false",
                );
                None
            }
        }
    }

    /// One of `choices`, with a suggestion for a near miss.
    pub(super) fn choice<'c>(&mut self, path: &str, v: &S, choices: &[&'c str]) -> Option<&'c str> {
        let lower = v.value.to_ascii_lowercase();
        if let Some(c) = choices.iter().find(|c| **c == lower) {
            return Some(c);
        }
        let fix = match suggest(&v.value, choices) {
            Some(s) => format!("did you mean `{s}`? (one of: {})", choices.join(", ")),
            None => format!("use one of: {}", choices.join(", ")),
        };
        self.err(
            path,
            v.referenced,
            format!("unknown value `{}`", v.value),
            fix,
        );
        None
    }

    pub(super) fn file_path(&mut self, path: &str, v: &S) -> Option<PathBuf> {
        if v.value.trim().is_empty() || v.value.contains('\0') {
            self.err(
                path,
                v.referenced,
                "empty file name",
                "give a file path or remove the key",
            );
            return None;
        }
        Some(PathBuf::from(&v.value))
    }

    /// `name: present` only with `backend`; reports a key given for the other backend.
    pub(super) fn only_with(
        &mut self,
        path: &str,
        loc: Option<Location>,
        key_backend: &str,
        backend: &str,
    ) {
        if let Some(loc) = loc {
            self.err(
                path,
                loc,
                format!(
                    "this key applies to the {key_backend} backend, but the backend is {backend}"
                ),
                format!("remove it, or set the backend to {key_backend}"),
            );
        }
    }
}

/// Why `s` is not what [`parse_uint`] reads.
pub(super) fn not_a_number(s: &str) -> String {
    let t = s.trim().replace('_', "");
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if digits(&t) {
        format!("`{}` is too large", s.trim())
    } else if t.strip_prefix('-').is_some_and(digits) {
        format!("`{}` is negative", s.trim())
    } else if t.split_once('#').is_some_and(|(n, _)| digits(n)) {
        format!("`{s}` is not a whole number (a comment starts with a space and `#`)")
    } else {
        format!("`{s}` is not a whole number")
    }
}

/// Decimal or `0x` hexadecimal, `_` allowed between digits.
pub(super) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(h) = after_0x(&s) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// What follows `0x` (or `0X`): the digits of a hex value.
pub(super) fn after_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// The bytes an even number of hex digits (after the `0x`) spell; `None` for anything
/// else.
pub(super) fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// One value or a list: `peeraddr: 192.0.2.2` or `peeraddr: [192.0.2.2, 192.0.2.3]`.
/// A single value may also list several, comma-separated, as swanctl.conf writes them.
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<S>),
}

pub(super) type Many = Spanned<OneOrMany>;

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OneOrMany, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<OneOrMany, E> {
                Ok(OneOrMany::Many(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<S>()? {
                    v.push(s);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The items of a one-or-many value: (key path, text, location).
pub(super) fn items(path: &str, m: &Many) -> Vec<(String, String, Location)> {
    match &m.value {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| (path.to_string(), t.to_string(), m.referenced))
            .collect(),
        OneOrMany::Many(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    format!("{path}[{i}]"),
                    s.value.trim().to_string(),
                    s.referenced,
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_macs() {
        assert_eq!(parse_uint("0x00001001"), Some(0x1001));
        assert_eq!(parse_uint("4097"), Some(4097));
        assert_eq!(parse_uint("1_000"), Some(1000));
        assert_eq!(parse_uint("-1"), None);
        assert_eq!(parse_uint("0x"), None);
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(parse_mac("2:00:00:00:00:01"), None);
        assert_eq!(after_0x("0XfF"), Some("fF"));
        assert_eq!(after_0x("ff"), None);
        assert_eq!(hex_bytes("00fF10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_bytes(""), Some(vec![]));
        assert_eq!(hex_bytes("abc"), None);
        assert_eq!(hex_bytes("zz"), None);
        assert_eq!(hex_bytes("é1"), None);
    }
}
