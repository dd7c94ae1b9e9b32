//! Virtual IPs (RFC 7296 3.15): a client requests them (`vips`), a gateway hands them
//! out from the pools it names (`pools`).

use super::RawConn;
use crate::config::name::unknown_name_fix;
use crate::config::value::{items, Ctx};
use crate::ike::conn::PoolConf;
use std::net::IpAddr;

/// `vips`: the families a client requests an address of, as (IPv4, IPv6).
pub(super) fn vips(cx: &mut Ctx<'_>, prefix: &str, r: &RawConn, ok: &mut bool) -> (bool, bool) {
    let at = |k: &str| format!("{prefix}{k}");
    let (mut vip4, mut vip6) = (false, false);
    if let Some(m) = &r.vips {
        let list = items(&at("vips"), m);
        if list.is_empty() {
            cx.err(
                &at("vips"),
                m.referenced,
                "no virtual IP requested",
                "write [0.0.0.0] for an IPv4 address, [::] for IPv6, or remove the key",
            );
            *ok = false;
        }
        for (p, s, loc) in list {
            let want = match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if a.is_unspecified() => Some(false),
                Ok(IpAddr::V6(a)) if a.is_unspecified() => Some(true),
                _ => None,
            };
            match want {
                Some(v6) if (v6 && vip6) || (!v6 && vip4) => {
                    cx.err(
                        &p,
                        loc,
                        format!("{s} is listed twice"),
                        "remove the duplicate",
                    );
                    *ok = false;
                }
                Some(true) => vip6 = true,
                Some(false) => vip4 = true,
                None => {
                    cx.err(
                        &p,
                        loc,
                        format!("`{s}` cannot be requested"),
                        "request any address of a family: 0.0.0.0 (IPv4) or :: (IPv6); the gateway chooses it",
                    );
                    *ok = false;
                }
            }
        }
    }
    (vip4, vip6)
}

/// `pools`: the pools a gateway leases from, each defined under `pools:`
/// (`pool_names` as written there, `pools` as validated).
pub(super) fn conn_pools(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    pools: &[Option<PoolConf>],
    pool_names: &[Option<String>],
    ok: &mut bool,
) -> Vec<PoolConf> {
    let at = |k: &str| format!("{prefix}{k}");
    let mut conn_pools: Vec<PoolConf> = Vec::new();
    if let Some(m) = &r.pools {
        if r.vips.is_some() {
            cx.err(
                &at("pools"),
                m.referenced,
                "a connection either requests a virtual IP (vips) or hands them out (pools), not both",
                "keep `vips` on the client's connection and `pools` on the gateway's",
            );
            *ok = false;
        }
        let known: Vec<&str> = pool_names.iter().flatten().map(String::as_str).collect();
        let mut seen: Vec<String> = Vec::new();
        let list = items(&at("pools"), m);
        if list.is_empty() {
            cx.err(
                &at("pools"),
                m.referenced,
                "no pool named",
                match known.first() {
                    Some(k) => format!(
                        "name the pools to lease from, e.g. `pools: [{k}]`, or remove the key"
                    ),
                    None => "define a pool under `pools:` and name it here, or remove the key"
                        .to_string(),
                },
            );
            *ok = false;
        }
        for (p, s, loc) in list {
            if seen.contains(&s) {
                cx.err(
                    &p,
                    loc,
                    format!("pool `{s}` is listed twice"),
                    "remove the duplicate",
                );
                *ok = false;
                continue;
            }
            match pool_names
                .iter()
                .position(|n| n.as_deref() == Some(s.as_str()))
            {
                Some(idx) => {
                    if let Some(Some(pool)) = pools.get(idx) {
                        conn_pools.push(pool.clone());
                    }
                }
                None => {
                    let fix = unknown_name_fix(
                        &s,
                        &known,
                        "pools",
                        "define the pool under `pools:` (name, addrs)",
                    );
                    cx.err(&p, loc, format!("no pool is named `{s}`"), fix);
                    *ok = false;
                }
            }
            seen.push(s);
        }
    }
    conn_pools
}
