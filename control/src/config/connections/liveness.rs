//! How a connection notices a dead peer: dead peer detection (`dpd_delay`,
//! `dpd_timeout`; RFC 7296 2.4) and the retransmission of requests (`retransmit:`;
//! RFC 7296 2.1).

use super::{conn_defaults, RawConn, RawRetransmit};
use crate::config::value::Ctx;
use crate::ike::conn::{Dpd, Retransmit};
use serde_saphyr::Spanned;

/// `dpd_delay` (default 30s; 0 = off) and `dpd_timeout`
/// (default twice the delay, 60s without one).
pub(super) fn dpd(cx: &mut Ctx<'_>, prefix: &str, r: &RawConn) -> Option<Dpd> {
    let at = |k: &str| format!("{prefix}{k}");
    let dpd_delay = match &r.dpd_delay {
        None => Some(30),
        Some(v) => cx.duration_s(&at("dpd_delay"), v),
    };
    match (dpd_delay, &r.dpd_timeout) {
        (None, _) => None,
        (Some(d), None) => Some(Dpd {
            interval_s: d,
            timeout_s: if d == 0 { 60 } else { d.saturating_mul(2) },
        }),
        (Some(d), Some(v)) => match cx.duration_s(&at("dpd_timeout"), v) {
            Some(t) if d > 0 && t < d => {
                cx.err(
                    &at("dpd_timeout"),
                    v.referenced,
                    format!("dpd_timeout ({t}s) is shorter than dpd_delay ({d}s)"),
                    format!(
                        "give the liveness check at least the delay: dpd_timeout: {}s",
                        d * 2
                    ),
                );
                None
            }
            Some(0) if d > 0 => {
                cx.err(
                    &at("dpd_timeout"),
                    v.referenced,
                    "a liveness check needs time for the answer",
                    "give e.g. 60s",
                );
                None
            }
            Some(t) => Some(Dpd {
                interval_s: d,
                timeout_s: t,
            }),
            None => None,
        },
    }
}

/// `retransmit: { timeout, tries, max }`: the first wait, the transmissions in all, the
/// longest wait (the timeout doubles up to it; RFC 7296 2.1).
pub(super) fn retransmit(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&Spanned<RawRetransmit>>,
) -> Option<Retransmit> {
    let d = conn_defaults().retransmit;
    let Some(raw) = raw else { return Some(d) };
    let r = &raw.value;
    let at = |k: &str| format!("{path}.{k}");
    let initial = match &r.timeout {
        None => Some(d.initial_ms),
        Some(v) => cx.duration_ms(&at("timeout"), v, 10..=60_000),
    };
    let tries = match &r.tries {
        None => Some(d.tries),
        Some(v) => cx
            .uint(&at("tries"), v, 1..=30, "transmissions of a request in all")
            .map(|n| n as u32),
    };
    let max = match (&r.max, initial) {
        (None, Some(i)) => Some(d.max_ms.max(i)),
        (None, None) => None,
        (Some(v), i) => match cx.duration_ms(&at("max"), v, 10..=3_600_000) {
            Some(m) if i.is_some_and(|i| m < i) => {
                cx.err(
                    &at("max"),
                    v.referenced,
                    format!(
                        "max ({m}ms) is shorter than the first timeout ({}ms)",
                        i.unwrap_or(0)
                    ),
                    "the timeout doubles up to max: give max at least the timeout",
                );
                None
            }
            m => m,
        },
    };
    Some(Retransmit {
        initial_ms: initial?,
        tries: tries?,
        max_ms: max?,
    })
}
