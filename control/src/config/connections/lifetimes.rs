//! A connection's lifetimes, with swanctl.conf semantics: of the IKE SA (`rekey_time`,
//! `over_time`, `rand_time`), of its child SAs (`children:`), and how long an IKE SA
//! may stay without a child (`childless_timeout`).

use super::{conn_defaults, RawChildren, RawConn};
use crate::config::duration::DURATION_MAX_S;
use crate::config::value::{Ctx, S};
use crate::ike::conn::Lifetimes;
use serde_saphyr::Spanned;

/// IKE SA: `rekey_time` (default 4h; 0 = never rekeyed and never expires),
/// `over_time` (hard expiry after the rekey time; default 10% of it), `rand_time`
/// (jitter subtracted from the rekey time; default `over_time`, at most half the rekey
/// time). `prefix` is `connections[i].`.
pub(super) fn ike_lifetimes(cx: &mut Ctx<'_>, prefix: &str, r: &RawConn) -> Option<Lifetimes> {
    let defaults = conn_defaults().ike_lifetime;
    let at = |k: &str| format!("{prefix}{k}");
    let rekey = match &r.rekey_time {
        None => Some(defaults.rekey_s),
        Some(v) => cx.duration_s(&at("rekey_time"), v),
    }?;
    let over = r
        .over_time
        .as_ref()
        .map(|v| (v, cx.duration_s(&at("over_time"), v)));
    let rand = r
        .rand_time
        .as_ref()
        .map(|v| (v, cx.duration_s(&at("rand_time"), v)));
    if rekey == 0 {
        for (key, v) in [("over_time", &over), ("rand_time", &rand)] {
            if let Some((v, _)) = v {
                cx.err(
                    &at(key),
                    v.referenced,
                    "with `rekey_time: 0` the IKE SA is never rekeyed and never expires",
                    "remove it, or give a rekey_time",
                );
            }
        }
        return (over.is_none() && rand.is_none()).then_some(Lifetimes {
            rekey_s: 0,
            life_s: 0,
            jitter_s: 0,
        });
    }
    let over = match over {
        None => Some((rekey / 10).max(1)),
        Some((v, Some(0))) => {
            cx.err(
                &at("over_time"),
                v.referenced,
                "over_time 0 would delete the IKE SA the moment it should be rekeyed",
                "give the rekey time to complete, e.g. 10m (the default is 10% of rekey_time)",
            );
            None
        }
        Some((_, o)) => o,
    }?;
    let jitter = jitter(cx, &at("rand_time"), rand, rekey, over.min(rekey / 2))?;
    Some(Lifetimes {
        rekey_s: rekey,
        life_s: rekey + over,
        jitter_s: jitter,
    })
}

/// Child SAs: `rekey_time` (default 1h; 0 = never rekeyed), `life_time` (hard expiry;
/// default 110% of rekey_time; with rekey_time 0, none unless given), `rand_time`
/// (default life_time - rekey_time, at most half the rekey time).
pub(super) fn child_lifetimes(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&Spanned<RawChildren>>,
) -> Option<Lifetimes> {
    let defaults = conn_defaults().child_lifetime;
    let at = |k: &str| format!("{path}.{k}");
    let r = raw.map(|r| &r.value);
    let rekey = match r.and_then(|r| r.rekey_time.as_ref()) {
        None => Some(defaults.rekey_s),
        Some(v) => cx.duration_s(&at("rekey_time"), v),
    };
    let life = r
        .and_then(|r| r.life_time.as_ref())
        .map(|v| (v, cx.duration_s(&at("life_time"), v)));
    let rand = r
        .and_then(|r| r.rand_time.as_ref())
        .map(|v| (v, cx.duration_s(&at("rand_time"), v)));
    let rekey = rekey?;
    if rekey == 0 {
        if let Some((v, _)) = &rand {
            cx.err(
                &at("rand_time"),
                v.referenced,
                "with `rekey_time: 0` child SAs are never rekeyed; there is no rekey to randomise",
                "remove it, or give a rekey_time",
            );
            return None;
        }
        return Some(Lifetimes {
            rekey_s: 0,
            life_s: match life {
                None => 0,
                Some((_, l)) => l?,
            },
            jitter_s: 0,
        });
    }
    let life = match life {
        None => Some(rekey + (rekey / 10).max(1)),
        Some((v, Some(l))) if l <= rekey => {
            cx.err(
                &at("life_time"),
                v.referenced,
                format!("life_time ({l}s) is not after rekey_time ({rekey}s)"),
                format!(
                    "the rekey needs time before the hard expiry: give more than {rekey}s, e.g. {}s",
                    rekey + (rekey / 10).max(1)
                ),
            );
            None
        }
        Some((_, l)) => l,
    }?;
    let jitter = jitter(
        cx,
        &at("rand_time"),
        rand,
        rekey,
        (life - rekey).min(rekey / 2),
    )?;
    Some(Lifetimes {
        rekey_s: rekey,
        life_s: life,
        jitter_s: jitter,
    })
}

/// `childless_timeout`: how long an established IKE SA may have no child SA, in ms (0 =
/// for ever). RFC 7296 allows childless IKE SAs; one left so by a peer that vanished
/// without a DELETE (and with DPD off) must not stay for ever.
pub(super) fn childless_timeout(cx: &mut Ctx<'_>, path: &str, v: Option<&S>) -> Option<u64> {
    let Some(v) = v else {
        return Some(conn_defaults().childless_timeout_ms);
    };
    match cx.duration_ms(path, v, 0..=DURATION_MAX_S * 1000)? {
        ms @ 1..=999 => {
            cx.err(
                path,
                v.referenced,
                format!(
                    "{ms}ms would delete an IKE SA in the moment between a child SA's \
                     deletion and its replacement"
                ),
                "give at least 1s (the default is 60s), or 0 to keep childless IKE SAs",
            );
            None
        }
        ms => Some(ms),
    }
}

/// `rand_time`: the jitter subtracted from the rekey time (`rekey` seconds), read as
/// `rand` (the value written and its duration); `default` when not given.
fn jitter(
    cx: &mut Ctx<'_>,
    path: &str,
    rand: Option<(&S, Option<u64>)>,
    rekey: u64,
    default: u64,
) -> Option<u64> {
    match rand {
        None => Some(default),
        Some((v, Some(j))) if j >= rekey => {
            cx.err(
                path,
                v.referenced,
                format!(
                    "rand_time ({j}s) is subtracted from rekey_time ({rekey}s) and must be smaller"
                ),
                format!("give at most {}s", rekey / 2),
            );
            None
        }
        Some((_, j)) => j,
    }
}
