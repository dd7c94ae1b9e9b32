//! A connection's identities (`local_id`, `remote_id`; RFC 7296 3.5) and its pre-shared
//! key (`psk`; RFC 7296 2.15).

use super::{RawConn, PSK_MIN};
use crate::config::value::{after_0x, hex_bytes, Ctx, S};
use crate::ike::conn::Identity;
use serde_saphyr::Location;
use std::net::{IpAddr, SocketAddr};

/// `local_id` (default: the first own address) and `remote_id` (`None`: any peer).
/// `here` is where the connection starts.
pub(super) fn identities(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    here: Location,
    local_addrs: &[SocketAddr],
) -> (Option<Identity>, Option<Option<Identity>>) {
    let at = |k: &str| format!("{prefix}{k}");
    let identity = |cx: &mut Ctx<'_>, key: &str, v: &S| -> Option<Identity> {
        let s = v.value.trim();
        if s.contains('=') {
            cx.err(
                &at(key),
                v.referenced,
                format!("`{s}` looks like a distinguished name; certificates are not supported"),
                "use an FQDN (gw.example.org or @gw.example.org), user@host, an IP address or @#hex",
            );
            return None;
        }
        match Identity::parse(s) {
            Ok(id) => Some(id),
            Err(e) => {
                cx.err(
                    &at(key),
                    v.referenced,
                    e,
                    "write an FQDN (gw.example.org or @gw.example.org), user@host, an IP address or @#hex",
                );
                None
            }
        }
    };
    let local_id = match &r.local_id {
        Some(v) if v.value.trim() == "%any" => {
            cx.err(
                &at("local_id"),
                v.referenced,
                "%any names no one: this end needs an identity",
                "write an FQDN, user@host, an IP address or @#hex",
            );
            None
        }
        Some(v) => identity(cx, "local_id", v),
        None => match local_addrs.first() {
            Some(a) => Some(match a.ip() {
                IpAddr::V4(ip) => Identity::Ipv4(ip),
                IpAddr::V6(ip) => Identity::Ipv6(ip),
            }),
            None => {
                cx.missing(
                    &at("local_id"),
                    Some(here),
                    "add `local_id: gw.example.org` (no local address to take it from)",
                );
                None
            }
        },
    };
    let remote_id = match &r.remote_id {
        None => Some(None),
        Some(v) if v.value.trim() == "%any" => Some(None),
        Some(v) => identity(cx, "remote_id", v).map(Some),
    };
    (local_id, remote_id)
}

/// The pre-shared key: hex after `0x`, else the bytes of a passphrase; at least
/// [`PSK_MIN`] bytes.
pub(super) fn psk(cx: &mut Ctx<'_>, prefix: &str, r: &RawConn, here: Location) -> Option<Vec<u8>> {
    let at = |k: &str| format!("{prefix}{k}");
    // RFC 7296 2.15: the key must be as unpredictable as the keys it protects.
    match &r.psk {
        None => {
            cx.missing(
                &at("psk"),
                Some(here),
                "add `psk: 0x...` (e.g. 32 random bytes from `head -c 32 /dev/urandom | xxd -p -c 64`)",
            );
            None
        }
        Some(v) => {
            let s = v.value.as_str();
            let bytes = match after_0x(s) {
                Some(hex) => {
                    let b = hex_bytes(hex);
                    if b.is_none() {
                        cx.err(
                            &at("psk"),
                            v.referenced,
                            "a psk starting with 0x is read as hex, and this is not hex",
                            "give an even number of hex digits after 0x, or a passphrase not starting with 0x",
                        );
                    }
                    b
                }
                None => Some(s.as_bytes().to_vec()),
            };
            match bytes {
                Some(b) if b.len() < PSK_MIN => {
                    cx.err(
                        &at("psk"),
                        v.referenced,
                        format!(
                            "the pre-shared key is {} bytes; at least {PSK_MIN} are required",
                            b.len()
                        ),
                        "use 32 random bytes, e.g. 0x followed by the output of `head -c 32 /dev/urandom | xxd -p -c 64` (RFC 7296 2.15)",
                    );
                    None
                }
                other => other,
            }
        }
    }
}
