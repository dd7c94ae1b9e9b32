//! Names: of the entries of a list (paths, tunnels, pools, connections), typed on the
//! `mobiked ctl` command line, and of network interfaces.

use super::keys::suggest;
use super::value::{Ctx, S};
use serde_saphyr::Location;
use std::collections::HashMap;

/// IFNAMSIZ is 16 including the terminating NUL (netdevice(7)).
pub const IFNAME_MAX: usize = 15;

fn validate_name(cx: &mut Ctx<'_>, path: &str, v: &S) -> bool {
    let ok = !v.value.is_empty()
        && v.value.len() <= 64
        && v.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        cx.err(
            path,
            v.referenced,
            format!("`{}` is not a usable name", v.value),
            "use 1 to 64 letters, digits, '-', '_' or '.' (it is typed on the `mobiked ctl` command line)",
        );
    }
    ok
}

/// The names of one list's entries so far, for the check that each is used once.
pub(super) struct Names {
    /// What an entry is (`path`) and the key of the list (`paths`), for the messages.
    what: &'static str,
    list: &'static str,
    /// Each name given, with the index of its entry.
    seen: HashMap<String, usize>,
}

impl Names {
    pub(super) fn new(what: &'static str, list: &'static str) -> Names {
        Names {
            what,
            list,
            seen: HashMap::new(),
        }
    }

    /// The `name` of entry `i` (which starts at `parent`): present, usable and not yet
    /// taken by an earlier entry; `missing_fix` says how to add it.
    pub(super) fn check(
        &mut self,
        cx: &mut Ctx<'_>,
        i: usize,
        parent: Location,
        v: Option<&S>,
        missing_fix: &str,
    ) -> Option<String> {
        let path = format!("{}[{i}].name", self.list);
        let Some(n) = v else {
            cx.missing(&path, Some(parent), missing_fix);
            return None;
        };
        if !validate_name(cx, &path, n) {
            return None;
        }
        if let Some(first) = self.seen.get(&n.value) {
            cx.err(
                &path,
                n.referenced,
                format!(
                    "{} name `{}` is already used by {}[{first}]",
                    self.what, n.value, self.list
                ),
                format!("give every {} its own name", self.what),
            );
            return None;
        }
        self.seen.insert(n.value.clone(), i);
        Some(n.value.clone())
    }
}

/// The fix for a reference to a name no entry of the list `list` (`paths`) has: the
/// nearest of the `known` names, else where to define one (`define`) when there are
/// none, else the names there are.
pub(super) fn unknown_name_fix(word: &str, known: &[&str], list: &str, define: &str) -> String {
    match suggest(word, known) {
        Some(s) => format!("did you mean `{s}`?"),
        None if known.is_empty() => define.to_string(),
        None => format!("name one of the {list}: {}", known.join(", ")),
    }
}

impl Ctx<'_> {
    pub(super) fn ifname(&mut self, path: &str, v: &S) -> Option<String> {
        let s = v.value.as_str();
        let bad = s.is_empty()
            || s.len() > IFNAME_MAX
            || s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if bad {
            self.err(
                path,
                v.referenced,
                format!("`{s}` is not a valid interface name"),
                format!("use 1 to {IFNAME_MAX} characters without '/', ':' or spaces"),
            );
            return None;
        }
        Some(s.to_string())
    }
}
