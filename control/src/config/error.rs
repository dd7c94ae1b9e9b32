//! What loading a configuration reports: every problem, with its key path, its line
//! and column, what is wrong and how to fix it, each part cut short for the terminal.

use serde_saphyr::Location;
use std::fmt;

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `tunnels[0].outbound.key`; empty for the document as a whole.
    pub path: String,
    /// 1-based line and column in the file; 0 when unknown.
    pub line: u64,
    pub column: u64,
    /// What is wrong.
    pub problem: String,
    /// How to fix it (may be empty when the problem says it all).
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", shorten(&self.path))?;
        }
        f.write_str(&shorten(&self.problem))?;
        if !self.fix.is_empty() {
            write!(f, ": {}", shorten(&self.fix))?;
        }
        Ok(())
    }
}

/// Longest value quoted in full in a message, in characters.
const QUOTE_MAX: usize = 60;
/// Longest part of a message (path, problem, fix), in characters.
const PART_MAX: usize = 600;

/// A message part on one line, with every long quoted value (and any long run of text)
/// cut short, so that a pasted blob shows as its start and its length, not as a
/// screenful; a line break inside a value shows as `\n`.
fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(char::is_control) {
        let escaped: String = s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        return std::borrow::Cow::Owned(shorten(&escaped).into_owned());
    }
    let long_word = s.split(['.', ' ']).any(|w| w.chars().count() > QUOTE_MAX);
    if !long_word && s.chars().count() <= PART_MAX {
        return std::borrow::Cow::Borrowed(s);
    }
    let cut = |w: &str| -> String {
        if w.chars().count() <= QUOTE_MAX {
            return w.to_string();
        }
        let n = w.trim_matches(['`', ':', ',', '(', ')']).chars().count();
        let head: String = w.chars().take(QUOTE_MAX - 12).collect();
        let closing = w.len() - w.trim_end_matches(['`', ':', ',', ')']).len();
        format!("{head}... ({n} characters){}", &w[w.len() - closing..])
    };
    let mut out = s
        .split(' ')
        .map(|w| w.split('.').map(cut).collect::<Vec<_>>().join("."))
        .collect::<Vec<_>>()
        .join(" ");
    if out.chars().count() > PART_MAX {
        out = out.chars().take(PART_MAX).collect::<String>() + "...";
    }
    std::borrow::Cow::Owned(out)
}

/// Every problem found in a configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first error at exactly `path`.
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.path == path)
    }

    pub(super) fn push(
        &mut self,
        path: impl Into<String>,
        loc: Option<Location>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = loc.map_or((0, 0), |l| (l.line(), l.column()));
        self.0.push(ConfigError {
            path: path.into(),
            line,
            column,
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(super) fn sort(&mut self) {
        // Located errors in file order; document-wide ones (line 0) last.
        self.0.sort_by_key(|e| (e.line == 0, e.line, e.column));
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
