//! Names: of the entries of a list (paths, tunnels, pools, connections), typed on the
//! `mobiked ctl` command line, and of network interfaces.

use super::value::{Ctx, S};

/// IFNAMSIZ is 16 including the terminating NUL (netdevice(7)).
pub const IFNAME_MAX: usize = 15;

pub(super) fn validate_name(cx: &mut Ctx<'_>, path: &str, v: &S) -> bool {
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
