//! Small SVG plots of a run report: a histogram and CDFs of metrics over a log axis, and
//! series over time. Each function returns one `<svg>` element as a string, with a title,
//! axes with tick labels, and `role="img"` with an `aria-label`; input with nothing to
//! draw gives an empty frame saying "no data".

use super::report::{fmt_num, Metric, Series};
use std::fmt::Write;

/// Line colours, in order (distinguishable with the common colour-vision deficiencies).
pub const PALETTE: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
];

const FONT_PX: f64 = 11.0;
/// A rough advance per character at `FONT_PX`, to size margins and the legend.
const CHAR_PX: f64 = 6.5;

/// Escapes text for XML and HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One axis: a range of values, linear or logarithmic (then `lo > 0`).
#[derive(Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// A linear axis over `lo..=hi` widened to whole ticks; a single value gets a range
    /// around it.
    fn linear(lo: f64, hi: f64) -> Axis {
        let (mut lo, mut hi) = (lo, hi);
        if hi - lo <= hi.abs().max(lo.abs()) * 1e-12 {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = (lo - pad, hi + pad);
        }
        let step = nice_step((hi - lo) / 5.0);
        Axis {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            log: false,
        }
    }

    /// A log axis over `lo..=hi` (both > 0), padded a little; a narrow range is widened.
    fn log(lo: f64, hi: f64) -> Axis {
        let (mut lo, mut hi) = (lo, hi);
        if hi / lo < 1.5 {
            (lo, hi) = (lo / 10f64.sqrt(), hi * 10f64.sqrt());
        }
        let pad = 10f64.powf(0.05);
        Axis {
            lo: lo / pad,
            hi: hi * pad,
            log: true,
        }
    }

    /// Where `v` falls, 0 at `lo` and 1 at `hi`.
    fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if !self.log {
            let step = nice_step((self.hi - self.lo) / 5.0);
            let first = (self.lo / step).ceil() as i64;
            let last = (self.hi / step).floor() as i64;
            // Multiplying the index (not adding steps) keeps rounding errors from adding up.
            return (first..=last)
                .take(20)
                .map(|i| i as f64 * step)
                .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
                .collect();
        }
        let (a, b) = (
            self.lo.log10().ceil() as i64,
            self.hi.log10().floor() as i64,
        );
        if b - a >= 1 {
            // Decades, thinned to at most 8 labels.
            let every = ((b - a) / 8 + 1).max(1);
            return (a..=b)
                .filter(|k| (k - a) % every == 0)
                .map(|k| 10f64.powi(k as i32))
                .collect();
        }
        // Less than two decades in view: 1, 2 and 5 times the powers of ten.
        let mut out: Vec<f64> = (a - 1..=b + 1)
            .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k as i32)))
            .filter(|&v| v >= self.lo && v <= self.hi)
            .collect();
        if out.len() < 2 {
            out = Axis::linear(self.lo, self.hi).ticks();
            out.retain(|&v| v > 0.0 && v >= self.lo && v <= self.hi);
        }
        out
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// A plot's canvas: the SVG so far, the plot area and its axes.
struct Plot {
    out: String,
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    x: Axis,
    y: Axis,
}

fn open(w: u32, h: u32, title: &str, label: &str) -> (String, f64, f64) {
    let (w, h) = (f64::from(w.max(240)), f64::from(h.max(160)));
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" \
         width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" \
         font-size=\"{FONT_PX}\"><title>{}</title>\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" \
         font-weight=\"bold\">{}</text>",
        esc(label),
        esc(title),
        w / 2.0,
        esc(title)
    );
    (out, w, h)
}

/// An empty frame saying "no data".
fn no_data(w: u32, h: u32, title: &str, label: &str) -> String {
    let (mut out, w, h) = open(w, h, title, &format!("{label}: no data"));
    let _ = write!(
        out,
        "<rect x=\"40\" y=\"30\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999999\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666666\">no data</text></svg>",
        w - 60.0,
        h - 60.0,
        w / 2.0,
        h / 2.0
    );
    out
}

/// Legend rows: `(label, colour)` laid out left to right, wrapping at `width`.
fn legend_layout(entries: &[(&str, &str)], width: f64) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (0.0, 0);
    let mut at = Vec::new();
    for (label, _) in entries {
        let wide = 24.0 + label.chars().count() as f64 * CHAR_PX + 12.0;
        if x > 0.0 && x + wide > width {
            (x, row) = (0.0, row + 1);
        }
        at.push((x, row));
        x += wide;
    }
    at
}

impl Plot {
    /// Opens a plot with room for the tick labels and the legend.
    fn new(
        w: u32,
        h: u32,
        title: &str,
        label: &str,
        x: Axis,
        y: Axis,
        legend: &[(&str, &str)],
    ) -> Plot {
        let (out, w, h) = open(w, h, title, label);
        let widest = y
            .ticks()
            .iter()
            .map(|&v| fmt_num(v).len())
            .max()
            .unwrap_or(1);
        let left = 30.0 + widest as f64 * CHAR_PX;
        let rows = legend_layout(legend, w - left - 20.0)
            .last()
            .map_or(0, |&(_, r)| r + 1);
        let mut p = Plot {
            out,
            w,
            h,
            left,
            top: 30.0,
            right: 20.0,
            bottom: 42.0 + rows as f64 * 16.0,
            x,
            y,
        };
        p.legend(legend);
        p
    }

    fn px(&self, v: f64) -> f64 {
        self.left + self.x.frac(v) * (self.w - self.left - self.right)
    }

    fn py(&self, v: f64) -> f64 {
        self.top + (1.0 - self.y.frac(v)) * (self.h - self.top - self.bottom)
    }

    fn legend(&mut self, entries: &[(&str, &str)]) {
        let base = self.h - self.bottom + 40.0;
        let at = legend_layout(entries, self.w - self.left - 20.0);
        for ((label, colour), (x, row)) in entries.iter().zip(at) {
            let (x, y) = (self.left + x, base + row as f64 * 16.0);
            let _ = write!(
                self.out,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" \
                 stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 18.0,
                x + 24.0,
                y + 4.0,
                esc(label)
            );
        }
    }

    /// The frame, grid lines, tick labels and axis names.
    fn axes(&mut self, x_name: &str, y_name: &str) {
        let (x0, x1) = (self.left, self.w - self.right);
        let (y0, y1) = (self.top, self.h - self.bottom);
        let mut s = String::new();
        for v in self.x.ticks() {
            let x = self.px(v);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{y1:.1}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y1 + 14.0,
                esc(&fmt_num(v))
            );
        }
        for v in self.y.ticks() {
            let y = self.py(v);
            let _ = write!(
                s,
                "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 - 5.0,
                y + 4.0,
                esc(&fmt_num(v))
            );
        }
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"#999999\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text transform=\"translate(12 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            x1 - x0,
            y1 - y0,
            (x0 + x1) / 2.0,
            y1 + 30.0,
            esc(x_name),
            (y0 + y1) / 2.0,
            esc(y_name)
        );
        self.out.push_str(&s);
    }

    /// One line through `points` (values, not pixels); a lone point also gets a dot.
    fn polyline(&mut self, points: &[(f64, f64)], colour: &str) {
        let mut coords = String::new();
        for &(x, y) in points {
            let _ = write!(coords, "{:.1},{:.1} ", self.px(x), self.py(y));
        }
        let _ = write!(
            self.out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" \
             stroke-linejoin=\"round\"/>",
            coords.trim_end()
        );
        if let [(x, y)] = points {
            let _ = write!(
                self.out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                self.px(*x),
                self.py(*y)
            );
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// One line of a plot, in values (not pixels).
struct Curve<'a> {
    label: &'a str,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

fn axis_name(unit: &str, fallback: &str) -> String {
    if unit.is_empty() {
        fallback.to_string()
    } else {
        unit.to_string()
    }
}

/// The buckets of `m` that a log axis can show, each with its lower bound: the previous
/// bucket's bound, or one bucket width below for the first (the narrowest ratio between
/// neighbours, a tenth of a decade if there is a single bucket).
fn drawable_buckets(m: &Metric) -> Vec<(f64, f64, u64)> {
    let b: Vec<(f64, u64)> = m
        .buckets
        .iter()
        .filter(|b| b.le.is_finite() && b.le > 0.0)
        .map(|b| (b.le, b.count))
        .collect();
    let ratio = b
        .windows(2)
        .map(|w| w[1].0 / w[0].0)
        .filter(|r| r.is_finite() && *r > 1.0)
        .fold(f64::INFINITY, f64::min);
    let ratio = if ratio.is_finite() {
        ratio
    } else {
        10f64.powf(0.1)
    };
    let mut prev = 0.0;
    b.into_iter()
        .map(|(le, count)| {
            let lower = (le / ratio).max(prev);
            prev = le;
            (lower, le, count)
        })
        .collect()
}

/// Bars of `m`'s buckets over a log axis in its unit; y is the count.
pub fn histogram(m: &Metric, width: u32, height: u32) -> String {
    let title = format!("{}: histogram", m.name);
    let label = format!(
        "Histogram of {} in {}, {} values",
        m.name,
        axis_name(&m.unit, "units"),
        m.count
    );
    let bars = drawable_buckets(m);
    let (Some(first), Some(last)) = (bars.first(), bars.last()) else {
        return no_data(width, height, &title, &label);
    };
    let top = bars.iter().map(|b| b.2).max().unwrap_or(1) as f64;
    let x = Axis::log(first.0, last.1);
    let mut p = Plot::new(
        width,
        height,
        &title,
        &label,
        x,
        Axis::linear(0.0, top),
        &[],
    );
    p.axes(&axis_name(&m.unit, "value"), "count");
    for &(lo, le, count) in &bars {
        let (x0, x1) = (p.px(lo), p.px(le));
        let (y0, y1) = (p.py(count as f64), p.py(0.0));
        let _ = write!(
            p.out,
            "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{}\" fill-opacity=\"0.75\" stroke=\"#ffffff\" stroke-width=\"0.5\"/>",
            (x1 - x0).max(1.0),
            y1 - y0,
            PALETTE[0]
        );
    }
    p.finish()
}

/// Cumulative fraction (0..1) over a log axis, one line per labelled metric, with a legend.
/// The axis takes the first metric's unit.
pub fn cdf(lines: &[(&str, &Metric)], width: u32, height: u32) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, m) in lines {
        if !names.contains(&m.name.as_str()) {
            names.push(&m.name);
        }
    }
    let title = format!("{}: CDF", names.join(", "));
    let unit = lines.first().map_or("", |(_, m)| m.unit.as_str());
    let labels: Vec<&str> = lines.iter().map(|(l, _)| *l).collect();
    let label = format!(
        "Cumulative distribution of {} in {}: {}",
        names.join(", "),
        axis_name(unit, "units"),
        labels.join(", ")
    );
    let curves: Vec<Curve> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, (l, m))| {
            let bars = drawable_buckets(m);
            let total: u64 = m.buckets.iter().map(|b| b.count).sum();
            let first = bars.first().filter(|_| total > 0)?;
            // Buckets the axis cannot show (<= 0) still count towards the fraction.
            let mut cum = total - bars.iter().map(|b| b.2).sum::<u64>();
            let mut pts = vec![(first.0, cum as f64 / total as f64)];
            for &(_, le, count) in &bars {
                cum += count;
                pts.push((le, cum as f64 / total as f64));
            }
            Some(Curve {
                label: l,
                colour: PALETTE[i % PALETTE.len()],
                points: pts,
            })
        })
        .collect();
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    if curves.is_empty() || !(lo > 0.0 && hi.is_finite()) {
        return no_data(width, height, &title, &label);
    }
    let legend: Vec<(&str, &str)> = curves.iter().map(|c| (c.label, c.colour)).collect();
    let y = Axis::linear(0.0, 1.0);
    let mut p = Plot::new(width, height, &title, &label, Axis::log(lo, hi), y, &legend);
    p.axes(&axis_name(unit, "value"), "fraction <= x");
    for c in &curves {
        p.polyline(&c.points, c.colour);
    }
    p.finish()
}

/// Values over time (seconds) on a linear scale that includes 0, one line per labelled
/// series, with a legend.
pub fn lines(
    title: &str,
    unit: &str,
    lines: &[(&str, &Series)],
    width: u32,
    height: u32,
) -> String {
    let labels: Vec<&str> = lines.iter().map(|(l, _)| *l).collect();
    let label = format!(
        "Line plot of {title} in {} over time: {}",
        axis_name(unit, "units"),
        labels.join(", ")
    );
    let curves: Vec<Curve> = lines
        .iter()
        .enumerate()
        .map(|(i, (l, s))| {
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p[0].is_finite() && p[1].is_finite())
                .map(|p| (p[0], p[1]))
                .collect();
            Curve {
                label: l,
                colour: PALETTE[i % PALETTE.len()],
                points: pts,
            }
        })
        .filter(|c| !c.points.is_empty())
        .collect();
    if curves.is_empty() {
        return no_data(width, height, title, &label);
    }
    let all = || curves.iter().flat_map(|c| c.points.iter().copied());
    let span = |f: fn(&(f64, f64)) -> f64, with_zero: bool| {
        let init = if with_zero {
            (0.0, 0.0)
        } else {
            (f64::INFINITY, f64::NEG_INFINITY)
        };
        all().fold(init, |(a, b), p| (a.min(f(&p)), b.max(f(&p))))
    };
    let ((t0, t1), (v0, v1)) = (span(|p| p.0, false), span(|p| p.1, true));
    let legend: Vec<(&str, &str)> = curves.iter().map(|c| (c.label, c.colour)).collect();
    let (x, y) = (Axis::linear(t0, t1), Axis::linear(v0, v1));
    let mut p = Plot::new(width, height, title, &label, x, y, &legend);
    p.axes("time (s)", &axis_name(unit, "value"));
    for c in &curves {
        p.polyline(&c.points, c.colour);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(samples: &[f64]) -> Metric {
        Metric::from_samples("gap <ms>", "ms", "", samples)
    }

    fn series(points: &[[f64; 2]]) -> Series {
        Series {
            points: points.to_vec(),
            ..Series::new("rate", "pps", "")
        }
    }

    fn assert_sane(svg: &str) {
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("role=\"img\" aria-label=\""), "{svg}");
        for bad in ["NaN", "inf", "<ms>"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    #[test]
    fn histogram_has_a_bar_per_bucket_and_decade_ticks() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let m = metric(&values);
        let svg = histogram(&m, 600, 300);
        assert_sane(&svg);
        // The background and the frame are rects too.
        assert_eq!(svg.matches("<rect").count(), m.buckets.len() + 2);
        for tick in [">1<", ">10<", ">100<", ">1000<"] {
            assert!(svg.contains(tick), "no tick {tick}");
        }
        assert!(svg.contains("gap &lt;ms&gt;: histogram"));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn cdf_draws_one_line_per_metric_with_a_legend() {
        let a = metric(&[1.0, 2.0, 3.0, 50.0]);
        let b = metric(&[2.0, 4.0, 8.0, 16.0, 700.0]);
        let c = metric(&[0.5]);
        let svg = cdf(&[("run <a>", &a), ("b", &b), ("c", &c)], 600, 300);
        assert_sane(&svg);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(">run &lt;a&gt;</text>"));
        for colour in &PALETTE[..3] {
            assert!(svg.contains(&format!("stroke=\"{colour}\"")), "{colour}");
        }
        // Every curve ends at the top of the plot (fraction 1), 30 px down.
        for line in svg.split("<polyline points=\"").skip(1) {
            let pts = &line[..line.find('"').unwrap()];
            assert!(pts.ends_with(",30.0"), "{pts}");
        }
    }

    #[test]
    fn lines_draw_one_polyline_per_series() {
        let a = series(&[[0.0, 10.0], [1.0, 12.0], [2.0, 9.0]]);
        let b = series(&[[0.5, 100.0], [2.5, 120.0]]);
        let svg = lines("rate", "pps", &[("a", &a), ("b", &b)], 600, 300);
        assert_sane(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">time (s)</text>") && svg.contains(">pps</text>"));
        assert!(!svg.contains("points=\"\""));
    }

    #[test]
    fn degenerate_input_gives_no_nan() {
        let empty = metric(&[]);
        let zeros = metric(&[0.0, 0.0]);
        let one = metric(&[5.0]);
        let equal = metric(&[3.0; 100]);
        let tiny_and_huge = metric(&[1e-300, 1e300]);
        let mut no_counts = metric(&[1.0, 2.0]);
        no_counts.buckets.iter_mut().for_each(|b| b.count = 0);
        for m in [&empty, &zeros, &no_counts] {
            let (h, c) = (histogram(m, 300, 200), cdf(&[("x", m)], 300, 200));
            assert_sane(&h);
            assert_sane(&c);
            assert!(c.contains("no data") && !c.contains("<polyline"), "{c}");
        }
        assert!(histogram(&empty, 300, 200).contains("no data"));
        for m in [&one, &equal, &tiny_and_huge] {
            assert_sane(&histogram(m, 300, 200));
            let c = cdf(&[("x", m)], 300, 200);
            assert_sane(&c);
            assert_eq!(c.matches("<polyline").count(), 1);
        }
        assert!(cdf(&[], 300, 200).contains("no data"));
        let mixed = cdf(&[("empty", &empty), ("one", &one)], 300, 200);
        assert_eq!(mixed.matches("<polyline").count(), 1);

        let none = series(&[]);
        let nan = series(&[[f64::NAN, 1.0], [1.0, f64::INFINITY]]);
        for s in [&none, &nan] {
            let svg = lines("r", "", &[("s", s)], 300, 200);
            assert_sane(&svg);
            assert!(svg.contains("no data"));
        }
        assert!(lines("r", "", &[], 0, 0).contains("no data"));
        let single = lines("r", "", &[("s", &series(&[[5.0, 7.0]]))], 300, 200);
        assert_sane(&single);
        assert!(single.contains("<polyline") && single.contains("<circle"));
        let flat = series(&[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]);
        let same_t = series(&[[4.0, -1.0], [4.0, -1.0]]);
        for s in [&flat, &same_t] {
            let svg = lines("r", "", &[("s", s)], 10, 10);
            assert_sane(&svg);
            assert_eq!(svg.matches("<polyline").count(), 1);
        }
        let huge = series(&[[0.0, -1e308], [1.0, 1e308]]);
        assert_sane(&lines("r", "", &[("s", &huge)], 300, 200));
    }

    #[test]
    fn ticks_are_round_numbers() {
        let near = |got: Vec<f64>, want: &[f64]| {
            got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9)
        };
        assert!(near(
            Axis::linear(0.0, 1.0).ticks(),
            &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        ));
        assert!(near(
            Axis::linear(3.0, 3.0).ticks(),
            &[2.6, 2.8, 3.0, 3.2, 3.4]
        ));
        assert!(near(
            Axis::linear(-7.0, 0.0).ticks(),
            &[-8.0, -6.0, -4.0, -2.0, 0.0]
        ));
        let t = Axis::log(1.0, 1000.0).ticks();
        assert_eq!(t, [1.0, 10.0, 100.0, 1000.0]);
        let t = Axis::log(3.0, 40.0).ticks();
        assert_eq!(t, [5.0, 10.0, 20.0]);
        assert!(Axis::log(1e-300, 1e300).ticks().len() <= 9);
    }
}
