//! A run report as one self-contained HTML page: inline CSS and inline SVG, no script and
//! no external resource, so it opens from file:// and can be mailed or archived as is.

use super::report::{compare_grid, fmt_num, fmt_utc, headline, Metric, RunReport, Series};
use super::svg::{self, esc};
use std::fmt::Write;

const PLOT_W: u32 = 540;
const PLOT_H: u32 = 300;

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;\
max-width:1200px;padding:0 16px;color:#1a1a1a;background:#fff}\
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px}\
.meta{color:#555;margin-top:0}\
.incomplete{background:#fde8e8;border:2px solid #c62828;color:#8e0000;padding:8px 12px;\
font-weight:bold}\
table{border-collapse:collapse;margin:8px 0}\
th,td{border:1px solid #ddd;padding:3px 10px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.help{color:#555}\
figure{margin:12px 0;padding:8px;border:1px solid #e4e4e4;display:inline-block}\
figure svg{display:inline-block;margin:0 4px}\
figcaption{font-size:.9em;color:#333;margin-top:4px}";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    )
}

const TAIL: &str = "</body>\n</html>\n";

fn banner(r: &RunReport, who: &str) -> String {
    if r.complete {
        return String::new();
    }
    let why = r.incomplete_reason.as_deref().unwrap_or("no reason given");
    format!(
        "<p class=\"incomplete\">INCOMPLETE{}: {} (the figures are what was measured \
         until then)</p>\n",
        esc(who),
        esc(why)
    )
}

/// A table with a header row; `num[i]` right-aligns column `i`. Cells are text.
fn table(class: &str, headers: &[&str], num: &[bool], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{class}\">\n<thead><tr>");
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = match (num.get(i), headers.get(i)) {
                (Some(true), _) => " class=\"num\"",
                (_, Some(&"meaning")) => " class=\"help\"",
                _ => "",
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn caption(name: &str, help: &str) -> String {
    if help.is_empty() {
        format!("<figcaption><strong>{}</strong></figcaption>", esc(name))
    } else {
        format!(
            "<figcaption><strong>{}</strong>: {}</figcaption>",
            esc(name),
            esc(help)
        )
    }
}

fn percentile_rows(metrics: &[Metric]) -> Vec<Vec<String>> {
    metrics
        .iter()
        .map(|m| {
            let mut row = vec![m.name.clone(), m.unit.clone(), m.count.to_string()];
            row.extend([m.min, m.mean, m.p50, m.p90, m.p99, m.p999, m.max].map(fmt_num));
            row.push(m.help.clone());
            row
        })
        .collect()
}

/// One report as a page: setup, totals, percentiles, then a histogram and a CDF for each
/// metric and a line plot for each series.
pub fn page(r: &RunReport) -> String {
    let mut out = head(&r.title);
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p class=\"meta\">{} &middot; started {} &middot; {} s</p>\n{}",
        esc(&r.title),
        esc(&r.tool),
        esc(&fmt_utc(r.started_unix_s)),
        esc(&fmt_num(r.duration_s)),
        banner(r, "")
    );
    if !r.setup.is_empty() {
        let rows: Vec<Vec<String>> = r
            .setup
            .iter()
            .map(|s| vec![s.key.clone(), s.value.clone()])
            .collect();
        out.push_str("<h2>Setup</h2>\n");
        out.push_str(&table("setup", &["setting", "value"], &[], &rows));
    }
    if !r.totals.is_empty() {
        let rows: Vec<Vec<String>> = r
            .totals
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    fmt_num(t.value),
                    t.unit.clone(),
                    t.help.clone(),
                ]
            })
            .collect();
        let headers = ["total", "value", "unit", "meaning"];
        out.push_str("<h2>Totals</h2>\n");
        out.push_str(&table("totals", &headers, &[false, true], &rows));
    }
    if !r.metrics.is_empty() {
        let headers = [
            "metric", "unit", "count", "min", "mean", "p50", "p90", "p99", "p99.9", "max",
            "meaning",
        ];
        let num = [false, false, true, true, true, true, true, true, true, true];
        out.push_str("<h2>Distributions</h2>\n");
        out.push_str(&table(
            "percentiles",
            &headers,
            &num,
            &percentile_rows(&r.metrics),
        ));
        for m in &r.metrics {
            let _ = writeln!(
                out,
                "<figure class=\"metric\" data-metric=\"{}\">{}{}{}</figure>",
                esc(&m.name),
                svg::histogram(m, PLOT_W, PLOT_H),
                svg::cdf(&[(m.name.as_str(), m)], PLOT_W, PLOT_H),
                caption(&m.name, &m.help)
            );
        }
    }
    if !r.series.is_empty() {
        out.push_str("<h2>Over time</h2>\n");
        for s in &r.series {
            let _ = writeln!(
                out,
                "<figure class=\"series\" data-series=\"{}\">{}{}</figure>",
                esc(&s.name),
                svg::lines(
                    &s.name,
                    &s.unit,
                    &[(s.name.as_str(), s)],
                    2 * PLOT_W,
                    PLOT_H
                ),
                caption(&s.name, &s.help)
            );
        }
    }
    out.push_str(TAIL);
    out
}

/// Names in first-seen order across `runs`.
fn union<'a>(
    runs: &'a [(String, RunReport)],
    names: fn(&'a RunReport) -> Vec<&'a str>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for (_, r) in runs {
        for n in names(r) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Several reports on one page: the comparison table, then for each metric one CDF with a
/// line per run, and for each series one plot with a line per run.
pub fn compare_page(runs: &[(String, RunReport)]) -> String {
    let labels: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    let title = format!("Comparison: {}", labels.join(" vs "));
    let mut out = head(&title);
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    for (label, r) in runs {
        out.push_str(&banner(r, &format!(" ({label})")));
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(label, r)| {
            vec![
                label.clone(),
                headline(r),
                r.tool.clone(),
                fmt_utc(r.started_unix_s),
                fmt_num(r.duration_s),
            ]
        })
        .collect();
    let headers = ["run", "title", "tool", "started", "duration (s)"];
    let num = [false, false, false, false, true];
    out.push_str("<h2>Runs</h2>\n");
    out.push_str(&table("runs", &headers, &num, &rows));

    let (headers, rows) = compare_grid(runs);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let num: Vec<bool> = (0..headers.len()).map(|i| i >= 2).collect();
    if !rows.is_empty() {
        out.push_str("<h2>Figures</h2>\n");
        out.push_str(&table("compare", &headers, &num, &rows));
    }

    let metric_names = union(runs, |r| {
        r.metrics.iter().map(|m| m.name.as_str()).collect()
    });
    if !metric_names.is_empty() {
        out.push_str("<h2>Distributions</h2>\n");
    }
    for name in metric_names {
        let lines: Vec<(&str, &Metric)> = runs
            .iter()
            .filter_map(|(l, r)| Some((l.as_str(), r.get_metric(name)?)))
            .collect();
        let help = lines.first().map_or("", |(_, m)| m.help.as_str());
        let _ = writeln!(
            out,
            "<figure class=\"metric\" data-metric=\"{}\">{}{}</figure>",
            esc(name),
            svg::cdf(&lines, 2 * PLOT_W, PLOT_H + 40),
            caption(name, help)
        );
    }
    let series_names = union(runs, |r| r.series.iter().map(|s| s.name.as_str()).collect());
    if !series_names.is_empty() {
        out.push_str("<h2>Over time</h2>\n");
    }
    for name in series_names {
        let lines: Vec<(&str, &Series)> = runs
            .iter()
            .filter_map(|(l, r)| Some((l.as_str(), r.series.iter().find(|s| s.name == name)?)))
            .collect();
        let (unit, help) = lines
            .first()
            .map_or(("", ""), |(_, s)| (s.unit.as_str(), s.help.as_str()));
        let _ = writeln!(
            out,
            "<figure class=\"series\" data-series=\"{}\">{}{}</figure>",
            esc(name),
            svg::lines(name, unit, &lines, 2 * PLOT_W, PLOT_H + 40),
            caption(name, help)
        );
    }
    out.push_str(TAIL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(title: &str) -> RunReport {
        let mut r = RunReport::new(title, "mobiked lab");
        r.setting("clients", 3);
        r.total("received", 1000.0, "packets", "authenticated by the peer");
        let gaps: Vec<f64> = (1..=500).map(|i| f64::from(i) * 0.1).collect();
        r.metric(Metric::from_samples("gap", "ms", "longest silence", &gaps));
        r.metric(Metric::from_samples("switch", "ms", "", &[1.0, 2.0]));
        let mut s = Series::new("rate", "pps", "received per second");
        s.push(0.0, 100.0).push(1.0, 120.0).push(2.0, 90.0);
        r.series(s);
        r
    }

    /// Structure every page must have, and nothing that reaches outside the file.
    fn assert_self_contained(html: &str) {
        assert!(html
            .starts_with("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"));
        assert!(html.ends_with("</body>\n</html>\n"));
        for bad in [
            "<script", "<link", " src=", " href=", "url(", "@import", "NaN", "inf<",
        ] {
            assert!(!html.contains(bad), "{bad} in the page");
        }
        let svgs = html.matches("<svg ").count();
        assert_eq!(
            html.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"")
                .count(),
            svgs
        );
    }

    #[test]
    fn page_has_tables_and_a_figure_per_metric_and_series() {
        let html = page(&report("lab: 3 clients"));
        assert_self_contained(&html);
        assert!(html.contains("<title>lab: 3 clients</title>"));
        assert_eq!(html.matches("<svg ").count(), 2 * 2 + 1);
        assert!(html.contains("<figure class=\"metric\" data-metric=\"gap\">"));
        assert!(html.contains("<figure class=\"metric\" data-metric=\"switch\">"));
        assert!(html.contains("<figure class=\"series\" data-series=\"rate\">"));
        assert!(html.contains("<td>clients</td><td>3</td>"));
        assert!(html.contains("<td class=\"num\">1000</td>"));
        assert!(!html.contains("INCOMPLETE"));
    }

    #[test]
    fn page_escapes_text_and_shows_incomplete() {
        let mut r = report("<script>alert(\"x\")</script>");
        r.setting("a&b", "<i>");
        r.metrics[0].name = "gap\"><script>".into();
        r.interrupted("killed <by> SIGTERM");
        let html = page(&r);
        assert_self_contained(&html);
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("<td>a&amp;b</td><td>&lt;i&gt;</td>"));
        assert!(html.contains("data-metric=\"gap&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("<p class=\"incomplete\">INCOMPLETE: killed &lt;by&gt; SIGTERM"));
    }

    #[test]
    fn empty_report_gives_a_page_without_plots() {
        let html = page(&RunReport::new("", ""));
        assert_self_contained(&html);
        assert!(!html.contains("<svg") && !html.contains("<table"));
        let html = compare_page(&[]);
        assert_self_contained(&html);
    }

    #[test]
    fn compare_page_overlays_runs() {
        let a = report("a");
        let mut b = report("b");
        b.metrics.pop();
        b.metric(Metric::from_samples("only in b", "us", "", &[]));
        b.interrupted("SIGINT");
        let html = compare_page(&[("a".into(), a), ("b".into(), b)]);
        assert_self_contained(&html);
        // gap, switch, only in b (no data), and rate.
        assert_eq!(html.matches("<svg ").count(), 4);
        assert!(html.contains("data-metric=\"only in b\""));
        assert!(html.contains("INCOMPLETE (b): SIGINT"));
        assert!(html.contains("<th scope=\"col\">b/a</th>"));
        // switch is only in a: a value, a dash, and no ratio.
        assert!(html.contains("<td>switch p50</td><td>ms</td><td class=\"num\">1</td><td class=\"num\">-</td><td class=\"num\">-</td>"));
        let gap = html.split("data-metric=\"gap\"").nth(1).unwrap();
        let gap = &gap[..gap.find("</figure>").unwrap()];
        assert_eq!(gap.matches("<polyline").count(), 2);
        let rate = html.split("data-series=\"rate\"").nth(1).unwrap();
        assert_eq!(
            rate[..rate.find("</figure>").unwrap()]
                .matches("<polyline")
                .count(),
            2
        );
    }
}
