//! A connection's traffic selectors (`local_ts`, `remote_ts`; RFC 7296 2.9): by default
//! everything of the families of its virtual IPs or pools, else IPv4.

use super::RawConn;
use crate::config::prefix::{disjoint_families, mapped, FAMILY_FIX};
use crate::config::value::{items, Ctx, Many};
use crate::ike::conn::{PoolConf, Selector};
use serde_saphyr::Location;

/// `local_ts` and `remote_ts`, given the requested virtual IP families `vips` (IPv4,
/// IPv6) and the pools handed out. `here` is where the connection starts.
pub(super) fn traffic_selectors(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    here: Location,
    (vip4, vip6): (bool, bool),
    conn_pools: &[PoolConf],
    ok: &mut bool,
) -> (Option<Vec<Selector>>, Option<Vec<Selector>>) {
    let at = |k: &str| format!("{prefix}{k}");
    let mut fam_v4 = vip4 || conn_pools.iter().any(|p| p.start.is_ipv4());
    let fam_v6 = vip6 || conn_pools.iter().any(|p| p.start.is_ipv6());
    if !fam_v4 && !fam_v6 {
        fam_v4 = true;
    }
    let any: Vec<Selector> = [(fam_v4, false), (fam_v6, true)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, v6)| Selector::any(v6))
        .collect();
    let local_ts = match &r.local_ts {
        None if vip4 || vip6 => Some(Vec::new()),
        None => Some(any.clone()),
        Some(m) => selectors(cx, &at("local_ts"), m),
    };
    let remote_ts = match &r.remote_ts {
        None => Some(any),
        Some(m) => selectors(cx, &at("remote_ts"), m),
    };
    if let (Some(l), Some(rm)) = (&local_ts, &remote_ts) {
        let fams = |v: &[Selector]| {
            (
                v.iter().any(|s| !s.is_ipv6()),
                v.iter().any(|s| s.is_ipv6()),
            )
        };
        // Without local_ts a client's local selector is its virtual IP.
        let local = if l.is_empty() { (vip4, vip6) } else { fams(l) };
        if let Some(problem) = disjoint_families(local, fams(rm)) {
            let (key, m) = match (&r.remote_ts, &r.local_ts) {
                (Some(m), _) => ("remote_ts", Some(m)),
                (None, Some(m)) => ("local_ts", Some(m)),
                (None, None) => ("vips", r.vips.as_ref()),
            };
            cx.err(
                &at(key),
                m.map_or(here, |m| m.referenced),
                problem,
                FAMILY_FIX,
            );
            *ok = false;
        }
    }
    (local_ts, remote_ts)
}

fn selectors(cx: &mut Ctx<'_>, path: &str, m: &Many) -> Option<Vec<Selector>> {
    let list = items(path, m);
    if list.is_empty() {
        cx.err(
            path,
            m.referenced,
            "no traffic selector",
            "list at least one prefix; 0.0.0.0/0 or ::/0 for everything",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (p, s, loc) in list {
        match Selector::parse(&s) {
            Ok(sel) => {
                match mapped(sel.start, sel.end) {
                    Some((a, b)) => {
                        cx.err(
                        &p,
                        loc,
                        format!("`{s}` is an IPv4-mapped IPv6 selector, which no IPv4 packet matches"),
                        format!("write it in IPv4 (it covers {a} to {b})"),
                    );
                        out = None;
                    }
                    None => {
                        if let Some(o) = out.as_mut() {
                            o.push(sel);
                        }
                    }
                }
            }
            Err(e) => {
                cx.err(
                    &p,
                    loc,
                    e,
                    "write ADDRESS/LENGTH, optionally with [PROTOCOL/PORT], e.g. 10.1.0.0/24 or 10.1.0.0/24[tcp/443]",
                );
                out = None;
            }
        }
    }
    out
}
