//! What every benchmark report shares: figures summarised over timed rounds, plain-text
//! tables, and the facts that identify a run (time, CPU).

use serde::Serialize;

/// One measured quantity over several timed rounds: the median is the figure to quote,
/// min and max show the spread (the machines are shared and noisy).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Figure {
    /// Summarises `samples`; NaN samples are ignored, and no sample at all gives zeros.
    pub fn of(samples: &[f64]) -> Figure {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Figure {
                median: 0.0,
                min: 0.0,
                max: 0.0,
                rounds: 0,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Figure {
            median,
            min: v[0],
            max: v[n - 1],
            rounds: n,
        }
    }

    /// `median (min-max)` with `decimals` digits.
    /// The same figure in another unit.
    pub fn scaled(&self, k: f64) -> Figure {
        Figure {
            median: self.median * k,
            min: self.min * k,
            max: self.max * k,
            ..*self
        }
    }

    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// A Markdown table (readable as plain text too): numbers right-aligned, the first column
/// left-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::from("|");
        for (i, (cell, w)) in cells.zip(&width).enumerate() {
            if i == 0 {
                s.push_str(&format!(" {cell:<w$} |"));
            } else {
                s.push_str(&format!(" {cell:>w$} |"));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('|');
    for (i, w) in width.iter().enumerate().take(cols) {
        if i == 0 {
            out.push_str(&format!(":{}|", "-".repeat(w + 1)));
        } else {
            out.push_str(&format!("{}:|", "-".repeat(w + 1)));
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Seconds since the Unix epoch (a report's timestamp).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The CPU model from /proc/cpuinfo, if readable.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_median_min_max() {
        let f = Figure::of(&[3.0, 1.0, 2.0]);
        assert_eq!((f.median, f.min, f.max, f.rounds), (2.0, 1.0, 3.0, 3));
        let f = Figure::of(&[4.0, 1.0, 2.0, 3.0, f64::NAN]);
        assert_eq!((f.median, f.min, f.max, f.rounds), (2.5, 1.0, 4.0, 4));
        assert_eq!(Figure::of(&[]).rounds, 0);
        assert_eq!(Figure::of(&[1.25, 1.5, 2.0]).show(2), "1.50 (1.25-2.00)");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["size", "Mpps"],
            &[
                vec!["64".into(), "1.5".into()],
                vec!["imix".into(), "12.25".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| size |  Mpps |");
        assert_eq!(lines[1], "|:-----|------:|");
        assert_eq!(lines[2], "| 64   |   1.5 |");
        assert_eq!(lines[3], "| imix | 12.25 |");
    }
}
