//! `control:`: the unix socket `mobiked ctl` talks to.

use super::value::{Ctx, S};
use serde_saphyr::Spanned;
use std::path::PathBuf;

/// `sun_path` holds 108 bytes including the terminating NUL (unix(7)).
pub const SOCKET_PATH_MAX: usize = 107;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlConf {
    pub socket: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<S>,
}

pub(super) fn validate(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawControl>>) -> Option<ControlConf> {
    let Some(s) = raw.and_then(|r| r.value.socket.as_ref()) else {
        return Some(ControlConf::default());
    };
    let p = s.value.as_str();
    if p.is_empty() || p.contains('\0') {
        cx.err(
            "control.socket",
            s.referenced,
            "empty socket path",
            "give an absolute path such as /run/mobiked.sock, or remove the key",
        );
        return None;
    }
    if !p.starts_with('/') {
        cx.err(
            "control.socket",
            s.referenced,
            format!("`{p}` is a relative path"),
            format!(
                "use an absolute path (e.g. /run/{p}) so `mobiked ctl` finds it from any directory"
            ),
        );
        return None;
    }
    if p.ends_with('/') {
        cx.err(
            "control.socket",
            s.referenced,
            format!("`{p}` names a directory"),
            format!("name the socket file, e.g. {p}mobiked.sock"),
        );
        return None;
    }
    if p.len() > SOCKET_PATH_MAX {
        cx.err(
            "control.socket",
            s.referenced,
            format!(
                "the path is {} bytes; a unix socket path holds at most {SOCKET_PATH_MAX}",
                p.len()
            ),
            "choose a shorter path, e.g. under /run",
        );
        return None;
    }
    Some(ControlConf {
        socket: Some(PathBuf::from(p)),
    })
}
