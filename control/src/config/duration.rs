//! Durations: `500ms`, `30s`, `10m`, `4h`, `1d` or plain seconds, as lifetimes, DPD,
//! retransmission and MOBIKE timers write them.

use super::value::{parse_uint, Ctx, S};

/// Longest duration accepted anywhere, in seconds (365 days).
pub const DURATION_MAX_S: u64 = 365 * 86_400;

/// `500ms`, `30s`, `10m`, `4h`, `1d`, or plain seconds; in milliseconds.
pub(super) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let Some(n) = parse_uint(num) else {
        return Err(if s.starts_with('-') {
            format!("`{s}` is negative")
        } else {
            format!("`{s}` is not a duration")
        });
    };
    let scale: u64 = match unit.trim() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other if other.starts_with(['.', ',']) => {
            return Err(format!(
                "`{s}` has a fraction; durations are whole numbers of a unit (1500ms, not 1.5s)"
            ))
        }
        other if matches!(other, "S" | "MS" | "Ms" | "M" | "H" | "D") => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: units are lower case (`{num}{}`)",
                other.to_ascii_lowercase()
            ))
        }
        other if other.starts_with(['x', 'X']) => {
            return Err(format!("`{s}` is hexadecimal; durations are decimal"))
        }
        other
            if other.starts_with(['e', 'E'])
                && other[1..].starts_with(|c: char| c.is_ascii_digit()) =>
        {
            return Err(format!(
                "`{s}` has an exponent; write the number out (1000s, not 1e3s)"
            ))
        }
        other if other.contains(|c: char| c.is_ascii_digit()) => {
            return Err(format!(
                "`{s}` combines units; write one number and one unit (e.g. 90m, not 1h30m)"
            ))
        }
        other => return Err(format!("unknown unit `{other}` in `{s}`")),
    };
    n.checked_mul(scale)
        .filter(|ms| *ms <= DURATION_MAX_S * 1000)
        .ok_or_else(|| format!("`{s}` is longer than 365 days"))
}

impl Ctx<'_> {
    /// A duration in milliseconds within `range` (milliseconds).
    pub(super) fn duration_ms(
        &mut self,
        path: &str,
        v: &S,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let show = |ms: u64| {
            if ms.is_multiple_of(1000) {
                format!("{}s", ms / 1000)
            } else {
                format!("{ms}ms")
            }
        };
        match parse_duration_ms(&v.value) {
            Ok(ms) if range.contains(&ms) => Some(ms),
            Ok(ms) => {
                self.err(
                    path,
                    v.referenced,
                    format!("{} is out of range", show(ms)),
                    format!(
                        "give a duration from {} to {}",
                        show(*range.start()),
                        show(*range.end())
                    ),
                );
                None
            }
            Err(problem) => {
                self.err(
                    path,
                    v.referenced,
                    problem,
                    "write seconds (30) or a number with a unit: 500ms, 30s, 10m, 4h, 1d",
                );
                None
            }
        }
    }

    /// A duration in whole seconds, up to [`DURATION_MAX_S`].
    pub(super) fn duration_s(&mut self, path: &str, v: &S) -> Option<u64> {
        let ms = self.duration_ms(path, v, 0..=DURATION_MAX_S * 1000)?;
        if !ms.is_multiple_of(1000) {
            self.err(
                path,
                v.referenced,
                format!("{ms}ms is not a whole number of seconds"),
                "lifetimes and DPD count in seconds: write e.g. 30s or 10m",
            );
            return None;
        }
        Some(ms / 1000)
    }
}
