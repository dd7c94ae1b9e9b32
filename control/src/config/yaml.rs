//! Stage 1 of loading a configuration: the text and its YAML syntax.
//!
//! Before any value is read the text must be one YAML document of printable characters
//! that parses within the parser's limits. Every problem found here is reported like the
//! later ones: the line and column, the key path as far as the lines above it tell, what
//! is wrong in the words of a configuration (not of the parser), and the fix.

use super::keys::fields_at;
use super::tree::{
    node_at, options, path_at, render_path, Node, Seg, COMPLEX_KEY, MAX_DEPTH, NULL_KEY,
};
use super::{ConfigError, ConfigErrors};
use serde::de::IgnoredAny;
use serde_saphyr::{budget::BudgetBreach, Spanned};

/// Deepest nesting of a valid configuration: `connections` / an entry / `children` /
/// a key, or `tunnels` / an entry / `local_ts` / a prefix.
pub(super) const CONFIG_DEPTH: usize = 4;
/// Character problems reported before the rest are summed up in one line.
const CHAR_ERRORS_MAX: usize = 8;

/// What the empty-configuration and nothing-to-run errors tell the reader to add.
pub(super) const WHAT_TO_ADD: &str = "`mobiked check` reads every mode: for IKE add \
    `connections:` (examples/gateway.yaml for a gateway, examples/client.yaml for a \
    client), for static SAs add `paths:` and `tunnels:` (examples/static-a.yaml); \
    either needs `cipher:` and `clear:` as well";

/// Parses the text into the generic tree: stage 1. Everything the parser finds wrong
/// comes back in the words of a configuration.
pub(super) fn parse_tree(text: &str) -> Result<Spanned<Node>, ConfigErrors> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| syntax_error(text, &e))
}

// ---------------------------------------------------------------------------------------
// The text before parsing
// ---------------------------------------------------------------------------------------

/// The bytes of a file as text, or why they are not.
pub(super) fn decode(name: &str, bytes: Vec<u8>) -> Result<String, ConfigErrors> {
    let err = |problem: String, fix: &str, line: u64, column: u64| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line,
            column,
            problem,
            fix: fix.to_string(),
        }])
    };
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(err(
            format!("{name} is UTF-16 text"),
            "save it as UTF-8, e.g. `iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8`",
            0,
            0,
        ));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(err(
            format!("{name} is gzip-compressed"),
            "decompress it (`gunzip`) and check the text",
            0,
            0,
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count() as u64
            + 1;
        let byte = e.as_bytes().get(valid.len()).copied().unwrap_or(0);
        err(
            format!(
                "{name} is not UTF-8 text (byte {byte:#04x} at offset {})",
                valid.len()
            ),
            "save the file as UTF-8 (a configuration is plain text: is this the right file?)",
            line,
            column,
        )
    })
}

/// Characters no one can see or YAML does not allow, and more than one document: the
/// problems that make the parser's own messages misleading, found first.
pub(super) fn check_text(text: &str) -> Result<(), ConfigErrors> {
    let mut errs = ConfigErrors::default();
    let mut more = 0usize;
    for (line_no, line) in lines(text) {
        let mut indent = true;
        for (col, c) in line.chars().enumerate() {
            let at_start = line_no == 1 && col == 0;
            let problem = match c {
                '\t' | ' ' => None,
                '\u{feff}' if at_start => None,
                '\0' => Some((
                    "a NUL byte (U+0000)".to_string(),
                    "a configuration is plain UTF-8 text: is this a binary file? Delete the byte",
                )),
                c if c.is_control() && c != '\u{85}' => Some((
                    format!("a control character (U+{:04X})", u32::from(c)),
                    "delete it: a configuration is plain text, and the character is invisible in most editors",
                )),
                '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' => Some((
                    format!("an invisible character (U+{:04X}, zero width)", u32::from(c)),
                    "delete it (retype the line: it cannot be seen in most editors)",
                )),
                '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
                    if indent =>
                {
                    Some((
                        format!(
                            "a non-ASCII space (U+{:04X}) in the indentation",
                            u32::from(c)
                        ),
                        "indent with ASCII spaces only: retype the indentation",
                    ))
                }
                _ => None,
            };
            if !matches!(c, ' ' | '\t' | '\u{a0}' | '\u{2000}'..='\u{200a}') {
                indent = false;
            }
            if let Some((problem, fix)) = problem {
                if errs.len() < CHAR_ERRORS_MAX {
                    errs.0.push(ConfigError {
                        path: path_near(text, line_no).0,
                        line: line_no,
                        column: col as u64 + 1,
                        problem,
                        fix: fix.to_string(),
                    });
                } else {
                    more += 1;
                }
            }
        }
    }
    if more > 0 {
        errs.0.push(ConfigError {
            path: String::new(),
            line: 0,
            column: 0,
            problem: format!("{more} more characters like these"),
            fix: "is this the right file?".to_string(),
        });
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // The document count: the single-document parse stops at the end of the first.
    match serde_saphyr::from_multiple_with_options::<IgnoredAny>(text, options()) {
        Ok(_) => Ok(()),
        Err(e) => Err(syntax_error(text, &e)),
    }
}

/// Lines with their 1-based numbers; a line ends at LF, CR LF or a lone CR, as in YAML.
fn lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    let mut rest = Some(text);
    let mut n = 0u64;
    std::iter::from_fn(move || {
        let s = rest?;
        n += 1;
        match s.find(['\n', '\r']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some((n, &s[..i]))
            }
            None => {
                rest = None;
                (!s.is_empty() || n == 1).then_some((n, s))
            }
        }
    })
}

/// Line `n` (1-based) and the byte offset where it starts.
fn line_at(text: &str, n: u64) -> Option<(usize, &str)> {
    lines(text)
        .find(|(k, _)| *k == n)
        .map(|(_, l)| (l.as_ptr() as usize - text.as_ptr() as usize, l))
}

// ---------------------------------------------------------------------------------------
// Key paths without a tree
// ---------------------------------------------------------------------------------------

/// The key written on a line: `  - name: t1` -> (true, "name"); `  burst: 64` ->
/// (false, "burst"). `None` for a line that starts no key.
fn key_on(line: &str) -> (bool, Option<String>) {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\u{feff}' | '\u{a0}');
    let mut s = line.trim_start_matches(blank);
    let mut dash = false;
    while let Some(rest) = s.strip_prefix('-') {
        if !(rest.is_empty() || rest.starts_with(blank)) {
            break;
        }
        dash = true;
        s = rest.trim_start_matches(blank);
    }
    let key = if let Some(q @ ('"' | '\'')) = s.chars().next() {
        s[1..].find(q).map(|end| &s[1..end + 1])
    } else {
        let end = s
            .char_indices()
            .find(|&(i, c)| c == ':' && s[i + 1..].chars().next().is_none_or(blank))
            .map(|(i, _)| i);
        end.map(|e| s[..e].trim_end())
            .filter(|k| !k.starts_with(['#', '[', '{', '&', '*', '!', '|', '>', '%', '@', '`']))
            .filter(|k| !k.contains(" #"))
            .or_else(|| {
                // `burst:64`: meant as a key, though YAML reads one value.
                let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
                (name_end > 0 && s[name_end..].starts_with(':')).then(|| &s[..name_end])
            })
    };
    let key = key.filter(|k| !k.is_empty() && k.len() <= 1024);
    (dash, key.map(str::to_string))
}

/// The key path of the key written at `line` (1-based) when the parser failed there
/// and no tree exists: the tree of the lines above it tells where that key belongs, and
/// which key on the line is meant. Also the line where the same mapping already has
/// this key, if it does.
pub(super) fn path_near(text: &str, line: u64) -> (String, Option<u64>) {
    let Some((start, this)) = line_at(text, line) else {
        return (String::new(), None);
    };
    let (dash, own) = key_on(this);
    // The lines above: all of them, or when those do not parse (a problem further up),
    // the block of the last top-level key above (its lines numbered from `offset`).
    let prefix = &text[..start];
    let (tree, offset) = match parse_prefix(prefix) {
        Some(t) => (Some(t), 0),
        None => lines(prefix)
            .filter(|(_, l)| l.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
            .last()
            .and_then(|(n, _)| {
                let (cut, _) = line_at(prefix, n)?;
                Some((parse_prefix(&prefix[cut..]), n - 1))
            })
            .unwrap_or((None, 0)),
    };
    let mut path: Vec<Seg> = Vec::new();
    let mut first = None;
    if let Some(tree) = &tree {
        // The last node above: the line is its child (it had no value), its sibling or
        // belongs to an enclosing mapping. Take the deepest that accepts the key.
        let (last, opened) = last_node(tree);
        let mut candidates: Vec<Vec<Seg>> = Vec::new();
        let mut p = last.clone();
        if opened {
            candidates.push(p.clone());
        }
        while p.pop().is_some() {
            candidates.push(p.clone());
        }
        let chosen = if dash {
            // A new entry of the innermost list above (or of the key that opened one).
            candidates.iter().find_map(|c| match node_at(tree, c) {
                Some(Node::Seq(items)) => Some(with(c, Seg::Index(items.len()))),
                Some(Node::Null) if opened && *c == last => Some(with(c, Seg::Index(0))),
                _ => None,
            })
        } else {
            own.as_ref().and_then(|k| {
                candidates
                    .iter()
                    .find(|c| fields_at(c).is_some_and(|f| f.contains(&k.as_str())))
                    .cloned()
            })
        };
        path = chosen
            .or_else(|| candidates.first().cloned())
            .unwrap_or_default();
        if let (Some(Node::Map(entries)), Some(k)) = (node_at(tree, &path), &own) {
            first = entries
                .iter()
                .find(|(e, _)| &e.value == k)
                .map(|(e, _)| e.referenced.line() + offset);
        }
    }
    if let Some(k) = own {
        path.push(Seg::Key(k));
    }
    (render_path(&path), first)
}

fn with(path: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

fn parse_prefix(prefix: &str) -> Option<Spanned<Node>> {
    serde_saphyr::from_str_with_options::<Spanned<Node>>(prefix, options()).ok()
}

/// The path of the last node of the tree in document order, and whether it is a key
/// written without a value (which may open a block on the next line).
fn last_node(tree: &Spanned<Node>) -> (Vec<Seg>, bool) {
    let mut path = Vec::new();
    let mut n = tree;
    loop {
        match &n.value {
            Node::Map(entries) => match entries.last() {
                Some((k, v)) => {
                    path.push(Seg::Key(k.value.clone()));
                    n = v;
                }
                None => return (path, false),
            },
            Node::Seq(items) => match items.last() {
                Some(item) => {
                    path.push(Seg::Index(items.len() - 1));
                    n = item;
                }
                None => return (path, false),
            },
            Node::Null => return (path, true),
            Node::Scalar => return (path, false),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parser errors in the words of a configuration
// ---------------------------------------------------------------------------------------

const INDENT_FIX: &str = "check the indentation: the keys of one mapping start in one column \
     (spaces only), a list item starts with `- `, and a value holding `: ` or ` #` is quoted";
const QUOTE_CHARS_FIX: &str = "quote the value: a plain value cannot start with \
     @ ` | > % ! & * # [ ] { } or contain `: `";

/// A parser error as a configuration error: stage 1 knows no tree, so the key path comes
/// from the lines above the error ([`path_near`]).
pub(super) fn syntax_error(text: &str, e: &serde_saphyr::Error) -> ConfigErrors {
    let mut err = translate(text, e);
    // A second document belongs to no key of the first.
    let documents = matches!(
        e.without_snippet(),
        serde_saphyr::Error::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        }
    );
    if err.line > 0 && err.path.is_empty() && !documents {
        let (path, first) = path_near(text, err.line);
        if let Some(f) = first.filter(|_| err.problem.starts_with("duplicate")) {
            let key = path.rsplit('.').next().unwrap_or(&path);
            err.problem =
                format!("duplicate key `{key}`: given twice in one mapping (first at line {f})");
        }
        err.path = path;
    }
    ConfigErrors(vec![err])
}

/// An error of the parse into the serde structs (stage 3), with the key path from the
/// tree of stage 1.
pub(super) fn value_error(
    text: &str,
    tree: &Spanned<Node>,
    e: &serde_saphyr::Error,
) -> ConfigErrors {
    let mut err = translate(text, e);
    if err.line > 0 {
        err.path = path_at(tree, err.line, err.column);
    }
    ConfigErrors(vec![err])
}

/// The error's location, what is wrong and the fix; the path is left to the caller
/// except for the errors that make their own.
fn translate(text: &str, e: &serde_saphyr::Error) -> ConfigError {
    let e = e.without_snippet();
    let (mut line, mut column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let (problem, fix): (String, String) = match e {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Documents { .. } => {
                let marker = line_at(text, line).map(|(_, l)| l.trim_end());
                let problem = match marker {
                    Some(l) if l.starts_with("---") => {
                        "`---` starts a second YAML document".to_string()
                    }
                    _ => "a second YAML document starts here (after `...`, the end of the first)"
                        .to_string(),
                };
                (
                    problem,
                    "mobiked reads one document per file: remove the marker and merge the \
                     parts into one mapping, or put them in two files (a lone `---` before \
                     the only document is fine)"
                        .to_string(),
                )
            }
            BudgetBreach::Depth { .. } => depth(line),
            BudgetBreach::ScalarBytes { .. } => (
                "the values hold more than 1 MiB of text in all".to_string(),
                "a configuration is a few KiB: check for a runaway value (a key or psk pasted \
                 many times, an unclosed quote)"
                    .to_string(),
            ),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::MergeKeys { .. } => (
                "more anchors, aliases or merge keys than a configuration needs (at most 1000)"
                    .to_string(),
                "write the values out instead of repeating aliases".to_string(),
            ),
            other => (
                format!("the document is larger than a configuration can be ({other:?})"),
                "a configuration is a few KiB of keys and values: is this the right file?"
                    .to_string(),
            ),
        },
        serde_saphyr::Error::AliasError { msg, .. } => (
            msg.clone(),
            "check the anchor (&NAME) and its aliases (*NAME)".to_string(),
        ),
        serde_saphyr::Error::UnknownAnchor { .. } => unknown_anchor(text, line),
        serde_saphyr::Error::Message { msg, .. } => {
            let msg = msg.split(" at line ").next().unwrap_or(msg.as_str());
            if let Some((l, c, p, f)) = tab(text, line, msg) {
                (line, column) = (l, c);
                (p, f)
            } else if let Some((l, c, p, f)) = unclosed_quote(text, line, msg) {
                (line, column) = (l, c);
                (p, f)
            } else if let Some((l, c, p, f)) = glued_colon(text, line, msg) {
                (line, column) = (l, c);
                (p, f)
            } else {
                describe(text, line, msg)
            }
        }
        serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
            "sequence start" => (
                "expected a list here".to_string(),
                "write a list, e.g. [a, b] or one `- item` per line".to_string(),
            ),
            "mapping start" => (
                "expected a mapping here".to_string(),
                "write `key: value` lines (or { key: value, ... })".to_string(),
            ),
            "string scalar" => (
                "expected a single value here".to_string(),
                "write one value, not a list or mapping".to_string(),
            ),
            other => (
                format!("unexpected YAML structure (expected {other})"),
                INDENT_FIX.to_string(),
            ),
        },
        serde_saphyr::Error::Eof { .. } => (
            "the file ends inside a value".to_string(),
            "close every quote, [ and {".to_string(),
        ),
        other => {
            let s = other.to_string();
            let s = s.split(" at line ").next().unwrap_or(&s).to_string();
            if let Some((l, c, p, f)) = tab(text, line, &s) {
                (line, column) = (l, c);
                (p, f)
            } else {
                describe(text, line, &s)
            }
        }
    };
    ConfigError {
        path: String::new(),
        line,
        column,
        problem,
        fix,
    }
}

fn depth(line: u64) -> (String, String) {
    (
        format!(
            "the values nest deeper than {MAX_DEPTH} levels at line {line}; no mobiked key \
             nests deeper than {CONFIG_DEPTH}"
        ),
        "look for a `[` or `{` that is never closed, or indentation that keeps growing; \
         write the section as in examples/gateway.yaml or examples/static-a.yaml"
            .to_string(),
    )
}

fn unknown_anchor(text: &str, line: u64) -> (String, String) {
    let name = line_at(text, line).and_then(|(_, l)| {
        let at = l.find('*')?;
        let name: String = l[at + 1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
            .collect();
        (!name.is_empty()).then_some(name)
    });
    match name {
        Some(n) => (
            format!("the alias `*{n}` names no anchor"),
            format!("define `&{n}` on a value above it, or write the value out"),
        ),
        None => (
            "an alias names no anchor".to_string(),
            "define the anchor (&NAME) on a value above its alias (*NAME)".to_string(),
        ),
    }
}

/// A tab where YAML wants spaces: the parser reports it at the end of the line before
/// (inside the value it was reading) or on the line itself.
fn tab(text: &str, line: u64, msg: &str) -> Option<(u64, u64, String, String)> {
    let leading = |n: u64| {
        let (_, l) = line_at(text, n)?;
        let ws = l.len() - l.trim_start_matches([' ', '\t']).len();
        l[..ws].find('\t').map(|i| (n, l, i))
    };
    let anywhere = |n: u64| {
        let (_, l) = line_at(text, n)?;
        l.find('\t').map(|i| (n, l, i))
    };
    let mentions_tab = msg.contains("tab") || msg.contains("valid YAML whitespace");
    let found = if mentions_tab {
        leading(line)
            .or_else(|| leading(line + 1))
            .or_else(|| leading(line.saturating_sub(1)))
            .or_else(|| anywhere(line))
    } else {
        leading(line)
    };
    let (n, l, at) = match found {
        Some(f) => f,
        None if mentions_tab => {
            return Some((
                line,
                0,
                "a tab where YAML needs spaces".to_string(),
                "indent with spaces, not tabs".to_string(),
            ))
        }
        None => return None,
    };
    let column = l[..at].chars().count() as u64 + 1;
    let (_, key) = key_on(l);
    let in_indent = l[..at].chars().all(|c| c == ' ' || c == '\t');
    let problem = match (&key, in_indent) {
        (Some(k), true) => format!("a tab in the indentation of `{k}`"),
        (None, true) => "a tab in the indentation".to_string(),
        (Some(k), false) => format!("a tab after `{k}:`"),
        (None, false) => "a tab where YAML needs a space".to_string(),
    };
    let fix = if in_indent {
        "indent with spaces: YAML does not allow tabs in indentation (set the editor to insert spaces)"
    } else {
        "put a space after the colon instead of the tab"
    };
    Some((n, column, problem, fix.to_string()))
}

/// A quote left open: the parser notices lines later; the quote is on the nearest line
/// above with an odd number of them.
fn unclosed_quote(text: &str, line: u64, msg: &str) -> Option<(u64, u64, String, String)> {
    if !(msg.contains("unclosed quote") || msg.contains("multiline quoted scalar")) {
        return None;
    }
    let (n, l, q, at) = (1..=line).rev().take(64).find_map(|n| {
        let (_, l) = line_at(text, n)?;
        ['"', '\''].into_iter().find_map(|q| {
            (l.matches(q).count() % 2 == 1).then(|| (n, l, q, l.rfind(q).unwrap_or(0)))
        })
    })?;
    let (_, key) = key_on(l);
    let problem = match key {
        Some(k) => format!("the value of `{k}` opens a quote ({q}) that is never closed"),
        None => format!("a quote ({q}) is never closed"),
    };
    Some((
        n,
        l[..at].chars().count() as u64 + 1,
        problem,
        format!("close it at the end of the value: {q}...{q}"),
    ))
}

/// `burst:64`: a colon starts a key only when a space follows, so the parser reads the
/// line as one value and fails on the next line.
fn glued_colon(text: &str, line: u64, msg: &str) -> Option<(u64, u64, String, String)> {
    let about_keys = [
        "simple key",
        "expected key",
        "expected ':'",
        "not allowed in this context",
    ];
    if !about_keys.iter().any(|k| msg.contains(k)) {
        return None;
    }
    for n in [line, line.saturating_sub(1)] {
        let Some((_, l)) = line_at(text, n) else {
            continue;
        };
        let s = l.trim_start_matches([' ', '-']);
        let indent = l.len() - s.len();
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let (name, rest) = s.split_at(name_end);
        let glued = !name.is_empty()
            && rest.starts_with(':')
            && rest[1..].starts_with(|c: char| !c.is_whitespace() && c != ':');
        if glued {
            let value = rest[1..].trim_end();
            return Some((
                n,
                (indent + name_end + 1) as u64,
                format!("`{name}:{value}` has no space after the colon"),
                format!("write `{name}: {value}` (a colon starts a key only when a space follows)"),
            ));
        }
    }
    None
}

/// The parser's wording for the remaining errors, and the fix.
fn describe(text: &str, line: u64, msg: &str) -> (String, String) {
    let has = |s: &str| msg.contains(s);
    let fix: String = if has("recursion limit") {
        return depth(line);
    } else if has("unknown anchor") {
        return unknown_anchor(text, line);
    } else if has("duplicate") {
        "remove one of the two entries".to_string()
    } else if msg == NULL_KEY {
        return (
            "a key is empty (`~`, `null` or nothing before the colon)".to_string(),
            "write the key's name before the colon, or remove the line".to_string(),
        );
    } else if msg == COMPLEX_KEY {
        return (
            "a key is a list or a mapping (`? ` or `[...]:`)".to_string(),
            "keys are plain names such as `burst`: write `name: value`".to_string(),
        );
    } else if has("cannot deserialize null") {
        return (
            "an empty value (`~`, `null` or nothing) where a value is needed".to_string(),
            "write the value, or remove the entry".to_string(),
        );
    } else if has("expected a sequence") {
        "write a list, e.g. [a, b] or one `- item` per line".to_string()
    } else if has("expected a string") {
        "write a single value here".to_string()
    } else if has("expected struct") || has("expected a map") {
        "write a mapping of `key: value` lines here".to_string()
    } else if has("alias") {
        "a configuration needs no alias that expands to thousands of nodes; write the values out"
            .to_string()
    } else if has("quote") || has("quoted scalar") {
        if has("escape") {
            "inside double quotes a backslash starts an escape: write \\\\ for one, or use single quotes"
                .to_string()
        } else {
            "close the quote on the value's line (a value containing \" can be quoted with ')"
                .to_string()
        }
    } else if has("bracket") || has("flow") || has("',' or") {
        "close every [ with ] and every { with }, and separate the items with commas".to_string()
    } else if has("simple key") || has("could not find expected ':'") {
        "write `key: value` with a space after the colon; a key fits on one line (at most 1024 characters)"
            .to_string()
    } else if has("tag") {
        "mobiked reads no YAML tags: remove the `!...` before the value".to_string()
    } else if has("directive") {
        "remove the `%` line, or put it before a `---` at the top".to_string()
    } else if has("document end") || has("document start") || has("document indicator") {
        "nothing may follow `---` or `...` on their line; a value starting with them must be quoted"
            .to_string()
    } else if has("node content") || has("cannot start any token") || has("unexpected character") {
        QUOTE_CHARS_FIX.to_string()
    } else if has("block scalar") {
        "indent every line of a `|` or `>` value more than its key".to_string()
    } else {
        // Indentation, a missing `- `, a `: ` inside a plain value, and the rest.
        INDENT_FIX.to_string()
    };
    (msg.to_string(), fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_every_line_break() {
        let l: Vec<(u64, &str)> = lines("a\r\nb\rc\nd").collect();
        assert_eq!(l, [(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        assert_eq!(lines("").count(), 1);
        assert_eq!(lines("a\n").count(), 1);
        assert_eq!(line_at("x\ny: 1\n", 2), Some((2, "y: 1")));
    }

    #[test]
    fn keys_on_lines() {
        assert_eq!(key_on("  burst: 64"), (false, Some("burst".into())));
        assert_eq!(key_on("\t- name: t1"), (true, Some("name".into())));
        assert_eq!(key_on("  - 10.1.0.0/24"), (true, None));
        assert_eq!(key_on("  \"a b\": 1"), (false, Some("a b".into())));
        assert_eq!(key_on("  # psk: x"), (false, None));
        assert_eq!(key_on("  url: http://x"), (false, Some("url".into())));
        assert_eq!(key_on("  burst:64"), (false, Some("burst".into())));
        assert_eq!(key_on("-"), (true, None));
        assert_eq!(key_on(""), (false, None));
    }

    #[test]
    fn paths_from_the_lines_above() {
        let text = "dataplane:\n  workers: 1\n\tburst: 64\n";
        assert_eq!(path_near(text, 3).0, "dataplane.burst");
        let text =
            "dataplane:\n\tburst: 64\ntunnels:\n  - name: t1\n    path: main\n\t- name: t2\n";
        assert_eq!(
            path_near(text, 6).0,
            "tunnels[1].name",
            "the block of the last top-level key when the lines above do not parse"
        );
        let text =
            "connections:\n  - name: c\n    children:\n      rekey_time: 1h\n\tdpd_delay: 30s\n";
        assert_eq!(
            path_near(text, 5).0,
            "connections[0].dpd_delay",
            "the enclosing mapping that accepts the key"
        );
        let text = "tunnels:\n\t- name: t1\n";
        assert_eq!(path_near(text, 2).0, "tunnels[0].name");
        let text = "dataplane:\n  burst: 1\n  burst: 2\n";
        assert_eq!(path_near(text, 3), ("dataplane.burst".into(), Some(2)));
        assert_eq!(path_near("", 9).0, "");
    }
}
