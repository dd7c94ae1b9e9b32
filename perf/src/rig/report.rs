//! The run report: what a lab or benchmark run measured, as JSON (the machine interface),
//! with builders from histograms and sample lists and plain-text tables.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The schema this binary writes and reads; bump it on any incompatible change.
pub const SCHEMA: u32 = 1;

/// Histogram buckets per decade.
const BUCKETS_PER_DECADE: i64 = 10;
/// Above this many buckets, neighbouring ones are merged.
const MAX_BUCKETS: i64 = 200;

/// One run: what was run, and what it measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    /// E.g. "lab: 300 clients, rotation 5s".
    pub title: String,
    /// E.g. "mobiked lab", "mobiked bench perf/scenarios/x.yaml".
    pub tool: String,
    pub started_unix_s: f64,
    pub duration_s: f64,
    /// False: the run was interrupted, and the report holds what was measured so far.
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// What was run, shown at the top.
    pub setup: Vec<Setting>,
    /// Counts and rates, in order.
    pub totals: Vec<Total>,
    /// Distributions (latencies, gaps).
    pub metrics: Vec<Metric>,
    /// Values over time.
    pub series: Vec<Series>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Total {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub help: String,
}

/// A distribution summarised by percentiles, with a histogram for plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    pub help: String,
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// In `unit`: non-empty log-spaced buckets, ascending.
    pub buckets: Vec<Bucket>,
}

/// `count` values were <= `le` (and > the previous bucket's `le`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le: f64,
    pub count: u64,
}

/// Values over time: `points` are `[t_seconds, value]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub unit: String,
    pub help: String,
    pub points: Vec<[f64; 2]>,
}

impl Metric {
    fn empty(name: &str, unit: &str, help: &str) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            help: help.into(),
            ..Metric::default()
        }
    }

    /// Summarises `h`, whose values are in an integer unit (usually nanoseconds): every
    /// value is divided by `ns_per_unit` (1e6 for "ms", 1e3 for "us", 1.0 for plain
    /// counts); a `ns_per_unit` that is not a positive number counts as 1.0.
    pub fn from_histogram(
        name: &str,
        unit: &str,
        help: &str,
        h: &Histogram<u64>,
        ns_per_unit: f64,
    ) -> Metric {
        if h.is_empty() {
            return Metric::empty(name, unit, help);
        }
        let k = if ns_per_unit.is_finite() && ns_per_unit > 0.0 {
            ns_per_unit
        } else {
            1.0
        };
        let q = |q: f64| h.value_at_quantile(q) as f64 / k;
        let recorded = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 / k, v.count_at_value()));
        Metric {
            count: h.len(),
            min: h.min() as f64 / k,
            mean: h.mean() / k,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 / k,
            buckets: log_buckets(recorded),
            ..Metric::empty(name, unit, help)
        }
    }

    /// Summarises a list of values with exact nearest-rank percentiles; values that are
    /// not finite are left out.
    pub fn from_samples(name: &str, unit: &str, help: &str, samples: &[f64]) -> Metric {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Metric::empty(name, unit, help);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // Nearest rank: the smallest value with at least p of the values at or below it.
        let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Metric {
            count: n as u64,
            min: v[0],
            mean: v.iter().sum::<f64>() / n as f64,
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            p999: rank(0.999),
            max: v[n - 1],
            buckets: log_buckets(v.iter().map(|&x| (x, 1))),
            ..Metric::empty(name, unit, help)
        }
    }
}

/// The smallest bucket key `k` with `x <= 10^(k / BUCKETS_PER_DECADE)`, for `x > 0`.
fn bucket_key(x: f64) -> i64 {
    let mut k = (x.log10() * BUCKETS_PER_DECADE as f64).ceil() as i64;
    // log10 may round either way at a boundary: settle on the exact bound.
    if bucket_le(k) < x {
        k += 1;
    } else if bucket_le(k - 1) >= x {
        k -= 1;
    }
    k
}

fn bucket_le(k: i64) -> f64 {
    10f64.powf(k as f64 / BUCKETS_PER_DECADE as f64)
}

/// Groups `(value, count)` pairs into non-empty log-spaced buckets, ascending. Values <= 0
/// go in the first bucket; with no positive value at all, one bucket holds everything.
fn log_buckets(values: impl Iterator<Item = (f64, u64)>) -> Vec<Bucket> {
    let mut by_key: BTreeMap<i64, u64> = BTreeMap::new();
    let mut low_count = 0u64;
    let mut low_max = f64::NEG_INFINITY;
    for (x, n) in values {
        if n == 0 || !x.is_finite() {
            continue;
        }
        if x > 0.0 {
            *by_key.entry(bucket_key(x)).or_default() += n;
        } else {
            low_count += n;
            low_max = low_max.max(x);
        }
    }
    let (Some(&first), Some(&last)) = (by_key.keys().next(), by_key.keys().next_back()) else {
        if low_count == 0 {
            return Vec::new();
        }
        return vec![Bucket {
            le: low_max,
            count: low_count,
        }];
    };
    // Too wide a range: merge `step` neighbours into one bucket (rounding keys up keeps
    // every value <= its bucket's bound).
    let step = ((last - first) / MAX_BUCKETS + 1).max(1);
    let mut merged: BTreeMap<i64, u64> = BTreeMap::new();
    for (k, n) in by_key {
        *merged
            .entry((k + step - 1).div_euclid(step) * step)
            .or_default() += n;
    }
    let mut out: Vec<Bucket> = merged
        .into_iter()
        .map(|(k, count)| Bucket {
            le: bucket_le(k),
            count,
        })
        .collect();
    out[0].count += low_count;
    out
}

impl Series {
    pub fn new(name: &str, unit: &str, help: &str) -> Series {
        Series {
            name: name.into(),
            unit: unit.into(),
            help: help.into(),
            points: Vec::new(),
        }
    }

    pub fn push(&mut self, t_s: f64, value: f64) -> &mut Series {
        self.points.push([t_s, value]);
        self
    }
}

impl RunReport {
    /// A complete report started now, with nothing measured yet.
    pub fn new(title: &str, tool: &str) -> RunReport {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        RunReport {
            schema: SCHEMA,
            title: title.into(),
            tool: tool.into(),
            started_unix_s: now,
            duration_s: 0.0,
            complete: true,
            incomplete_reason: None,
            setup: Vec::new(),
            totals: Vec::new(),
            metrics: Vec::new(),
            series: Vec::new(),
        }
    }

    pub fn setting(&mut self, key: &str, value: impl ToString) -> &mut RunReport {
        self.setup.push(Setting {
            key: key.into(),
            value: value.to_string(),
        });
        self
    }

    pub fn total(&mut self, name: &str, value: f64, unit: &str, help: &str) -> &mut RunReport {
        self.totals.push(Total {
            name: name.into(),
            value,
            unit: unit.into(),
            help: help.into(),
        });
        self
    }

    pub fn metric(&mut self, m: Metric) -> &mut RunReport {
        self.metrics.push(m);
        self
    }

    pub fn series(&mut self, s: Series) -> &mut RunReport {
        self.series.push(s);
        self
    }

    /// Marks the report as holding only what was measured before `reason` stopped the run.
    pub fn interrupted(&mut self, reason: &str) -> &mut RunReport {
        self.complete = false;
        self.incomplete_reason = Some(reason.into());
        self
    }

    /// The first total named `name`.
    pub fn get_total(&self, name: &str) -> Option<f64> {
        self.totals.iter().find(|t| t.name == name).map(|t| t.value)
    }

    /// The first metric named `name`.
    pub fn get_metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Reads a report; every error names the file.
    pub fn load(path: &Path) -> Result<RunReport, String> {
        let p = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{p}: cannot read: {e}"))?;
        RunReport::parse(&text).map_err(|e| format!("{p}: {e}"))
    }

    /// Parses a report from JSON text.
    pub fn parse(text: &str) -> Result<RunReport, String> {
        let not_report = |e: &dyn std::fmt::Display| {
            format!("not a mobiked run report (expected JSON with \"schema\": {SCHEMA}): {e}")
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| not_report(&e))?;
        match value.get("schema") {
            Some(s) if s.as_u64() == Some(SCHEMA as u64) => {}
            Some(s) if s.is_u64() => {
                return Err(format!(
                    "a run report of schema {s}; this mobiked reads schema {SCHEMA} only (use \
                     the mobiked that wrote it, or run it again with this one)"
                ))
            }
            Some(s) => return Err(not_report(&format!("\"schema\" is {s}"))),
            None => return Err(not_report(&"no \"schema\" field")),
        }
        // Again from the text, for errors with a line and column.
        serde_json::from_str(text).map_err(|e| not_report(&e))
    }

    /// Writes the report as JSON. Numbers that are not finite are refused here, since JSON
    /// cannot hold them and the report would not load again.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let p = path.display();
        if let Some(what) = self.first_non_finite() {
            return Err(format!("{p}: not written: {what} is not a finite number"));
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("{p}: {e}"))?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{p}: cannot write: {e}"))
    }

    fn first_non_finite(&self) -> Option<String> {
        let bad = |x: f64| !x.is_finite();
        if bad(self.started_unix_s) || bad(self.duration_s) {
            return Some("started_unix_s or duration_s".into());
        }
        if let Some(t) = self.totals.iter().find(|t| bad(t.value)) {
            return Some(format!("total '{}'", t.name));
        }
        for m in &self.metrics {
            let fields = [m.min, m.mean, m.p50, m.p90, m.p99, m.p999, m.max];
            if fields.into_iter().any(bad) || m.buckets.iter().any(|b| bad(b.le)) {
                return Some(format!("a field of metric '{}'", m.name));
            }
        }
        self.series
            .iter()
            .find(|s| s.points.iter().flatten().any(|&x| bad(x)))
            .map(|s| format!("a point of series '{}'", s.name))
    }
}

/// A number for a table: integers as they are, others to 3 significant digits.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 100.0 || (x.fract() == 0.0 && a < 1e15) {
        return format!("{x:.0}");
    }
    if a < 1e-3 {
        return format!("{x:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 5) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A UTC timestamp, `YYYY-MM-DD hh:mm:ss UTC`.
pub fn fmt_utc(unix_s: f64) -> String {
    if !unix_s.is_finite() {
        return "-".into();
    }
    let secs = unix_s.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// The header line: the title, and INCOMPLETE with its reason if the run was interrupted.
pub fn headline(r: &RunReport) -> String {
    if r.complete {
        r.title.clone()
    } else {
        let why = r.incomplete_reason.as_deref().unwrap_or("no reason given");
        format!("{} -- INCOMPLETE: {why}", r.title)
    }
}

/// One report as text: header, setup, totals, percentiles.
pub fn table(r: &RunReport) -> String {
    let mut out = format!("{}\n", headline(r));
    out.push_str(&format!(
        "tool: {}\nstarted: {}\nduration: {} s\n",
        r.tool,
        fmt_utc(r.started_unix_s),
        fmt_num(r.duration_s)
    ));
    for s in &r.setup {
        out.push_str(&format!("{}: {}\n", s.key, s.value));
    }
    if !r.totals.is_empty() {
        let rows: Vec<Vec<String>> = r
            .totals
            .iter()
            .map(|t| vec![t.name.clone(), fmt_num(t.value), t.unit.clone()])
            .collect();
        out.push('\n');
        out.push_str(&crate::report::table(&["total", "value", "unit"], &rows));
    }
    if !r.metrics.is_empty() {
        let rows: Vec<Vec<String>> = r
            .metrics
            .iter()
            .map(|m| {
                let mut row = vec![m.name.clone(), m.unit.clone(), m.count.to_string()];
                row.extend([m.p50, m.p90, m.p99, m.p999, m.max].map(fmt_num));
                row
            })
            .collect();
        let headers = [
            "metric", "unit", "count", "p50", "p90", "p99", "p99.9", "max",
        ];
        out.push('\n');
        out.push_str(&crate::report::table(&headers, &rows));
    }
    if !r.series.is_empty() {
        out.push_str("\nseries:");
        for s in &r.series {
            out.push_str(&format!(" {} ({} points)", s.name, s.points.len()));
        }
        out.push('\n');
    }
    out
}

/// One row of a comparison: a figure in each run (None where the run lacks it), and the
/// ratio of the second to the first when there are exactly two runs.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareRow {
    pub name: String,
    pub unit: String,
    pub values: Vec<Option<f64>>,
    pub ratio: Option<f64>,
}

/// The rows of a comparison: every total (by name, first-seen order), then for every
/// metric its p50, p99, max and count.
pub fn compare_rows(runs: &[(String, RunReport)]) -> Vec<CompareRow> {
    let mut rows: Vec<CompareRow> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |name: String, unit: &str, get: &dyn Fn(&RunReport) -> Option<f64>| {
        if seen.insert(name.clone()) {
            let values: Vec<Option<f64>> = runs.iter().map(|(_, r)| get(r)).collect();
            let ratio = match values[..] {
                [Some(a), Some(b)] if a != 0.0 => Some(b / a).filter(|x| x.is_finite()),
                _ => None,
            };
            rows.push(CompareRow {
                name,
                unit: unit.into(),
                values,
                ratio,
            });
        }
    };
    for (_, r) in runs {
        for t in &r.totals {
            let name = t.name.clone();
            add(t.name.clone(), &t.unit, &move |r: &RunReport| {
                r.get_total(&name)
            });
        }
    }
    type Stat = (&'static str, fn(&Metric) -> f64);
    let stats: [Stat; 4] = [
        ("p50", |m| m.p50),
        ("p99", |m| m.p99),
        ("max", |m| m.max),
        ("count", |m| m.count as f64),
    ];
    for (_, r) in runs {
        for m in &r.metrics {
            for (stat, f) in stats {
                let name = m.name.clone();
                let unit = if stat == "count" { "" } else { &m.unit };
                add(format!("{} {stat}", m.name), unit, &move |r: &RunReport| {
                    r.get_metric(&name).map(f)
                });
            }
        }
    }
    rows
}

/// Several reports side by side: one column per run (labelled by its String), `-` where
/// a run lacks the figure, and a `b/a` column when there are exactly two runs.
pub fn compare_table(runs: &[(String, RunReport)]) -> String {
    let mut out = String::new();
    for (label, r) in runs {
        out.push_str(&format!("{label}: {} ({})\n", headline(r), r.tool));
    }
    let (headers, rows) = compare_grid(runs);
    if rows.is_empty() {
        out.push_str("\nnothing measured in any run\n");
        return out;
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    out.push('\n');
    out.push_str(&crate::report::table(&headers, &rows));
    out
}

/// The comparison as text cells: headers (figure, unit, a label per run, and `b/a` for
/// two runs), then a row per figure with `-` where a run lacks it.
pub fn compare_grid(runs: &[(String, RunReport)]) -> (Vec<String>, Vec<Vec<String>>) {
    let two = runs.len() == 2;
    let mut headers = vec!["figure".to_string(), "unit".to_string()];
    headers.extend(runs.iter().map(|(l, _)| l.clone()));
    if two {
        headers.push("b/a".into());
    }
    let dash = || "-".to_string();
    let rows = compare_rows(runs)
        .into_iter()
        .map(|row| {
            let mut cells = vec![row.name, row.unit];
            cells.extend(row.values.iter().map(|v| v.map_or_else(dash, fmt_num)));
            if two {
                cells.push(row.ratio.map_or_else(dash, fmt_ratio));
            }
            cells
        })
        .collect();
    (headers, rows)
}

/// A ratio to two decimals (to compare against 1.00 at a glance).
pub fn fmt_ratio(x: f64) -> String {
    if x.is_finite() && x.abs() < 1000.0 {
        format!("{x:.2}")
    } else {
        fmt_num(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket holds exactly the values in (previous le, le], values <= 0 in the first.
    fn assert_buckets_hold(m: &Metric, values: &[f64]) {
        let b = &m.buckets;
        assert!(b.windows(2).all(|w| w[0].le < w[1].le), "ascending: {b:?}");
        assert!(b.iter().all(|b| b.count > 0), "non-empty: {b:?}");
        let mut cum = 0;
        for bucket in b {
            cum += bucket.count;
            let at_or_below = values.iter().filter(|&&x| x <= bucket.le).count() as u64;
            assert_eq!(at_or_below, cum, "values <= {}", bucket.le);
        }
        assert_eq!(cum, values.len() as u64);
    }

    fn report_a() -> RunReport {
        let mut r = RunReport::new("lab: 3 clients", "mobiked lab");
        r.setting("clients", 3);
        r.total("received", 1000.0, "packets", "");
        r.total("lost", 2.0, "packets", "never arrived");
        r.metric(Metric::from_samples("switch", "ms", "", &[1.0, 2.0, 4.0]));
        r
    }

    #[test]
    fn histogram_percentiles_within_hdr_precision() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let m = Metric::from_histogram("rtt", "us", "round trip", &h, 1e3);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 1e-3 + 1e-9;
        assert_eq!(m.count, 1000);
        assert!(near(m.p50, 500.0), "p50 {}", m.p50);
        assert!(near(m.p90, 900.0), "p90 {}", m.p90);
        assert!(near(m.p99, 990.0), "p99 {}", m.p99);
        assert!(near(m.p999, 999.0), "p999 {}", m.p999);
        assert!(near(m.min, 1.0) && near(m.max, 1000.0), "{m:?}");
        assert!(near(m.mean, 500.5), "mean {}", m.mean);
        assert_eq!(m.buckets.iter().map(|b| b.count).sum::<u64>(), 1000);
        // Three decades at ten buckets each, and the bucket at 1.
        assert!((28..=32).contains(&m.buckets.len()), "{:?}", m.buckets);
        assert!(m.buckets.windows(2).all(|w| w[0].le < w[1].le));
        assert!(m.buckets[0].le >= 1.0 && m.buckets[0].le < 1.3);
        let last = m.buckets.last().unwrap().le;
        assert!((1000.0..1260.0).contains(&last), "{last}");
    }

    #[test]
    fn empty_inputs_give_zeros_and_no_buckets() {
        let h = Histogram::<u64>::new(3).unwrap();
        let m = Metric::from_histogram("x", "ms", "", &h, 1e6);
        assert_eq!((m.count, m.p50, m.max, m.mean), (0, 0.0, 0.0, 0.0));
        assert!(m.buckets.is_empty());
        for samples in [&[][..], &[f64::NAN, f64::INFINITY][..]] {
            let m = Metric::from_samples("x", "ms", "", samples);
            assert_eq!((m.count, m.p50, m.min, m.max), (0, 0.0, 0.0, 0.0));
            assert!(m.buckets.is_empty());
        }
    }

    #[test]
    fn samples_use_nearest_rank() {
        let v = [7.0, 3.0, 10.0, 1.0, 9.0, 2.0, 8.0, 5.0, 4.0, 6.0, f64::NAN];
        let m = Metric::from_samples("gap", "ms", "", &v);
        assert_eq!(m.count, 10);
        assert_eq!(
            (m.min, m.p50, m.p90, m.p99, m.p999),
            (1.0, 5.0, 9.0, 10.0, 10.0)
        );
        assert_eq!((m.max, m.mean), (10.0, 5.5));
        assert_buckets_hold(&m, &v[..10]);
        let m = Metric::from_samples("one", "", "", &[3.5]);
        assert_eq!((m.min, m.p50, m.p999, m.max), (3.5, 3.5, 3.5, 3.5));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let m = Metric::from_samples("h", "", "", &hundred);
        assert_eq!((m.p50, m.p90, m.p99, m.p999), (50.0, 90.0, 99.0, 100.0));
        assert_buckets_hold(&m, &hundred);
    }

    #[test]
    fn buckets_at_boundaries_zeros_and_wide_ranges() {
        let exact = [1.0, 10.0, 100.0, 1000.0, 0.1, 1e-3];
        assert_buckets_hold(&Metric::from_samples("b", "", "", &exact), &exact);
        let zeros = [0.0, 0.0, 5.0];
        let m = Metric::from_samples("z", "", "", &zeros);
        assert_eq!(m.buckets.len(), 1);
        assert_eq!(m.buckets[0].count, 3);
        assert_buckets_hold(&m, &zeros);
        let m = Metric::from_samples("z", "", "", &[0.0, -1.0]);
        assert_eq!(m.buckets, vec![Bucket { le: 0.0, count: 2 }]);
        let wide = [1e-150, 1e-20, 1.0, 3.0, 1e30, 1e150];
        let m = Metric::from_samples("w", "", "", &wide);
        assert!(m.buckets.len() <= 201, "{}", m.buckets.len());
        assert_buckets_hold(&m, &wide);
        // A histogram spanning all of u64 stays within the limit too.
        let mut h = Histogram::<u64>::new(2).unwrap();
        for v in [0, 1, 1 << 20, u64::MAX / 4] {
            h.record(v).unwrap();
        }
        let m = Metric::from_histogram("all", "", "", &h, 1.0);
        assert!(m.buckets.len() <= 201 && m.buckets[0].count == 2, "{m:?}");
        assert_eq!(m.buckets.iter().map(|b| b.count).sum::<u64>(), 4);
    }

    /// A fresh directory for one test, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let name = format!("mobiked-rig-{}-{test}", std::process::id());
            let dir = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn json_round_trip() {
        let mut r = report_a();
        let mut s = Series::new("rate", "pps", "received per second");
        s.push(0.0, 10.0).push(1.0, 12.5);
        r.series(s).interrupted("SIGINT after 3 s");
        // serde_json's default float parser may miss the last bit of an arbitrary f64 (the
        // clock's): equality holds for these, and the bucket bounds.
        (r.started_unix_s, r.duration_s) = (1_700_000_000.5, 3.25);
        let dir = TempDir::new("round-trip");
        let path = dir.0.join("round-trip.json");
        r.save(&path).unwrap();
        let back = RunReport::load(&path).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.get_total("lost"), Some(2.0));
        assert_eq!(back.get_total("nope"), None);
        assert_eq!(back.get_metric("switch").map(|m| m.count), Some(3));
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let mut r = report_a();
        r.total("rate", f64::NAN, "pps", "");
        let dir = TempDir::new("load-errors");
        let path = dir.0.join("nan.json");
        let e = r.save(&path).unwrap_err();
        assert!(e.contains("nan.json") && e.contains("total 'rate'"), "{e}");
        assert!(!path.exists());

        let e = RunReport::load(&dir.0.join("missing.json")).unwrap_err();
        assert!(e.contains("missing.json: cannot read"), "{e}");
        let bad = dir.0.join("bad.json");
        std::fs::write(&bad, "{\"schema\": 1, ").unwrap();
        let e = RunReport::load(&bad).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: not a mobiked run report", bad.display())),
            "{e}"
        );

        let mut v = serde_json::to_value(report_a()).unwrap();
        v["schema"] = 2.into();
        let e = RunReport::parse(&v.to_string()).unwrap_err();
        assert!(
            e.contains("schema 2") && e.contains("reads schema 1"),
            "{e}"
        );
        let e = RunReport::parse("{\"rounds\": 3}").unwrap_err();
        assert!(e.contains("expected JSON with \"schema\": 1") && e.contains("no \"schema\""));
        let e = RunReport::parse("{\"schema\": 1, \"title\": \"x\"}").unwrap_err();
        assert!(e.contains("missing field") && e.contains("line 1"), "{e}");
        let e = RunReport::parse("[1, 2]").unwrap_err();
        assert!(e.contains("not a mobiked run report"), "{e}");
    }

    #[test]
    fn numbers_and_times() {
        let x = "0 5 1234567 123.456 12.345 1.5 0.012345 -2.25 0.00012 NaN";
        let want = "0 5 1234567 123 12.3 1.5 0.0123 -2.25 1.20e-4 -";
        let got: Vec<String> = x.split(' ').map(|x| fmt_num(x.parse().unwrap())).collect();
        assert_eq!(got.join(" "), want);
        assert_eq!(fmt_utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_utc(951_782_400.5), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_utc(1_700_000_000.0), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn table_shows_setup_totals_percentiles_and_incomplete() {
        let mut r = report_a();
        let t = table(&r);
        assert!(t.starts_with("lab: 3 clients\n"), "{t}");
        assert!(t.contains("\nclients: 3\n"), "{t}");
        assert!(t.contains("| lost     |     2 | packets |"), "{t}");
        assert!(
            t.contains("| metric | unit | count | p50 | p90 | p99 | p99.9 | max |"),
            "{t}"
        );
        assert!(
            t.contains("| switch |   ms |     3 |   2 |   4 |   4 |     4 |   4 |"),
            "{t}"
        );
        r.interrupted("SIGINT");
        assert!(table(&r).starts_with("lab: 3 clients -- INCOMPLETE: SIGINT\n"));
    }

    #[test]
    fn compare_table_marks_missing_and_gives_ratios() {
        let a = report_a();
        let mut b = report_a();
        b.totals[0].value = 1500.0;
        b.total("moves", 4.0, "", "");
        b.metrics[0] = Metric::from_samples("switch", "ms", "", &[2.0, 4.0, 8.0]);
        let t = compare_table(&[("a".into(), a.clone()), ("b".into(), b.clone())]);
        let row = |name: &str| {
            t.lines()
                .find(|l| l.starts_with(&format!("| {name} ")))
                .unwrap_or_else(|| panic!("no row {name} in\n{t}"))
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(row("figure"), ["figure", "unit", "a", "b", "b/a"]);
        assert_eq!(
            row("received"),
            ["received", "packets", "1000", "1500", "1.50"]
        );
        assert_eq!(row("moves"), ["moves", "-", "4", "-"]);
        assert_eq!(row("switch p50"), ["switch p50", "ms", "2", "4", "2.00"]);
        assert_eq!(row("switch count"), ["switch count", "3", "3", "1.00"]);
        let names: Vec<&str> = t.lines().filter_map(|l| l.split('|').nth(1)).collect();
        let order: Vec<&str> = names.iter().map(|s| s.trim()).collect();
        let want = "received,lost,moves,switch p50,switch p99,switch max,switch count";
        assert_eq!(order[2..].join(","), want);
        let three = compare_table(&[("a".into(), a.clone()), ("b".into(), b), ("c".into(), a)]);
        assert!(!three.contains("b/a"), "{three}");
        assert!(
            three.contains("| moves        |         |    - |    4 |    - |"),
            "{three}"
        );
    }
}
