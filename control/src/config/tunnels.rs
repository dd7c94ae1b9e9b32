//! `tunnels:`: static SA pairs, each on a path, with its traffic selectors (prefixes)
//! and an SA per direction (`sa.rs`).

use super::dataplane::DataplaneConf;
use super::name::{unknown_name_fix, Names};
use super::prefix::{disjoint_families, mapped_v4, FAMILY_FIX};
use super::sa::{self, RawSa, SaConf};
use super::value::{Ctx, List, S};
use serde_saphyr::{Location, Spanned};
use shared::policy::Prefix;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConf {
    pub name: String,
    /// Name of the path, and its index in `StaticConfig::paths`.
    pub path: String,
    pub path_index: usize,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    pub outbound: SaConf,
    pub inbound: SaConf,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTunnel {
    pub(super) name: Option<S>,
    pub(super) path: Option<S>,
    pub(super) local_ts: Option<List>,
    pub(super) remote_ts: Option<List>,
    pub(super) outbound: Option<Spanned<RawSa>>,
    pub(super) inbound: Option<Spanned<RawSa>>,
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawTunnel>>>>,
    path_names: &[Option<String>],
    dp: Option<&DataplaneConf>,
) -> Option<Vec<TunnelConf>> {
    let Some(list) = raw else {
        return Some(Vec::new());
    };
    let default_window = dp.map_or(1024, |d| d.replay_window);
    let mut names = Names::new("tunnel", "tunnels");
    let mut inbound_spis: HashMap<u32, String> = HashMap::new();
    let mut keys: Vec<(Vec<u8>, String)> = Vec::new();
    let mut out = Some(Vec::new());
    for (i, item) in list.value.iter().enumerate() {
        let r = &item.value;
        let at = |k: &str| format!("tunnels[{i}].{k}");
        let mut ok = true;
        let name = names.check(cx, i, item.referenced, r.name.as_ref(), "add `name: NAME`");
        let path = match &r.path {
            None => {
                cx.missing(
                    &at("path"),
                    Some(item.referenced),
                    "add `path: NAME`, naming one of `paths`",
                );
                None
            }
            Some(p) => {
                let found = path_names.iter().position(|n| n.as_ref() == Some(&p.value));
                match found {
                    Some(idx) => Some((p.value.clone(), idx)),
                    None => {
                        let known: Vec<&str> =
                            path_names.iter().flatten().map(String::as_str).collect();
                        let fix = unknown_name_fix(
                            &p.value,
                            &known,
                            "paths",
                            "define the path under `paths:`",
                        );
                        cx.err(
                            &at("path"),
                            p.referenced,
                            format!("no path is named `{}`", p.value),
                            fix,
                        );
                        None
                    }
                }
            }
        };
        let local_ts = selectors(cx, &at("local_ts"), &r.local_ts, item.referenced);
        let remote_ts = selectors(cx, &at("remote_ts"), &r.remote_ts, item.referenced);
        if let (Some(l), Some(rm), Some(loc)) = (&local_ts, &remote_ts, &r.remote_ts) {
            let fams = |v: &[Prefix]| {
                (
                    v.iter().any(|p| p.addr().is_ipv4()),
                    v.iter().any(|p| p.addr().is_ipv6()),
                )
            };
            if let Some(problem) = disjoint_families(fams(l), fams(rm)) {
                cx.err(&at("remote_ts"), loc.referenced, problem, FAMILY_FIX);
                ok = false;
            }
        }
        let sa = |cx: &mut Ctx<'_>, dir: &str, raw: &Option<Spanned<RawSa>>| -> Option<SaConf> {
            let Some(raw) = raw else {
                cx.missing(
                    &at(dir),
                    Some(item.referenced),
                    format!(
                        "add `{dir}: {{ spi: 0x..., enc: aes128gcm16, key: 0x..., esn: false }}`"
                    ),
                );
                return None;
            };
            sa::validate(cx, &at(dir), raw, dir == "inbound", default_window)
        };
        let outbound = sa(cx, "outbound", &r.outbound);
        let inbound = sa(cx, "inbound", &r.inbound);
        if let (Some(inb), Some(raw)) = (&inbound, &r.inbound) {
            let p = at("inbound.spi");
            if let Some(first) = inbound_spis.get(&inb.spi) {
                let loc = raw
                    .value
                    .spi
                    .as_ref()
                    .map_or(raw.referenced, |s| s.referenced);
                cx.err(
                    &p,
                    loc,
                    format!("inbound SPI {:#010x} is already used by {first}", inb.spi),
                    "inbound SPIs identify the SA on receipt (RFC 4303 2.1): give each inbound SA its own",
                );
                ok = false;
            } else {
                inbound_spis.insert(inb.spi, p);
            }
        }
        for (dir, sa, raw) in [
            ("outbound", &outbound, &r.outbound),
            ("inbound", &inbound, &r.inbound),
        ] {
            let (Some(sa), Some(raw)) = (sa, raw) else {
                continue;
            };
            let p = at(&format!("{dir}.key"));
            if let Some((_, first)) = keys.iter().find(|(k, _)| *k == sa.key) {
                let loc = raw
                    .value
                    .key
                    .as_ref()
                    .map_or(raw.referenced, |s| s.referenced);
                cx.err(
                    &p,
                    loc,
                    format!("the same key is used by {first}"),
                    "AES-GCM under one key from two senders repeats nonces (RFC 4106 8.1): generate a fresh key for every SA",
                );
                ok = false;
            } else {
                keys.push((sa.key.clone(), p));
            }
        }
        match (ok, name, path, local_ts, remote_ts, outbound, inbound) {
            (
                true,
                Some(name),
                Some((path, path_index)),
                Some(local_ts),
                Some(remote_ts),
                Some(outbound),
                Some(inbound),
            ) => {
                if let Some(v) = out.as_mut() {
                    v.push(TunnelConf {
                        name,
                        path,
                        path_index,
                        local_ts,
                        remote_ts,
                        outbound,
                        inbound,
                    });
                }
            }
            _ => out = None,
        }
    }
    out
}

fn selectors(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: &Option<List>,
    parent: Location,
) -> Option<Vec<Prefix>> {
    let Some(list) = raw else {
        cx.missing(
            path,
            Some(parent),
            format!(
                "add `{}: [PREFIX, ...]`, e.g. [10.1.0.0/24]",
                path.rsplit('.').next().unwrap_or(path)
            ),
        );
        return None;
    };
    if list.value.is_empty() {
        cx.err(
            path,
            list.referenced,
            "no traffic selector",
            "list at least one prefix; 0.0.0.0/0 or ::/0 for everything",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (i, v) in list.value.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match v.value.parse::<Prefix>() {
            Ok(pfx) => match mapped_v4(pfx.addr(), pfx.prefix_len()) {
                Some((a, len)) => {
                    cx.err(
                        &p,
                        v.referenced,
                        format!(
                            "`{}` is an IPv4-mapped IPv6 prefix, which no IPv4 packet matches",
                            v.value
                        ),
                        format!("write the IPv4 prefix: {a}/{len}"),
                    );
                    out = None;
                }
                None => {
                    if let Some(o) = out.as_mut() {
                        o.push(pfx);
                    }
                }
            },
            Err(e) => {
                cx.err(
                    &p,
                    v.referenced,
                    e.to_string(),
                    "write ADDRESS/LENGTH, e.g. 10.1.0.0/24 or 2001:db8::/64",
                );
                out = None;
            }
        }
    }
    out
}
