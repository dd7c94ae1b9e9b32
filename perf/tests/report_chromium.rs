//! The HTML report in a real browser: headless Chromium opens a page and a comparison page
//! from file://, their DOM holds every plot with drawn lines, and a screenshot of a page
//! is clearly more than a blank one. Without a browser on PATH the test skips, unless
//! MOBIKED_REQUIRE_CHROMIUM is set (scripts/test sets it where it installs chromium).

use hdrhistogram::Histogram;
use mobiked_perf::rig::html;
use mobiked_perf::rig::report::{Metric, RunReport, Series};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];
const TIMEOUT: Duration = Duration::from_secs(60);
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// A fresh directory, removed when dropped (also when an assertion fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("mobiked-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A deterministic pseudo-random number in [0, 1) (xorshift64*).
fn next(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a lab run reports: settings, totals, two latency distributions of a few thousand
/// values each, and two series over a minute.
fn realistic(title: &str, seed: u64, scale: f64) -> RunReport {
    let mut rng = seed | 1;
    let mut r = RunReport::new(title, "mobiked lab");
    r.setting("clients", 300)
        .setting("rotation", "5s")
        .setting("backend", "udp");
    r.total("sent", 1_234_567.0, "packets", "encrypted by endpoint A")
        .total(
            "received",
            1_234_000.0 * scale,
            "packets",
            "authenticated by B",
        )
        .total("switches", 12.0, "", "path moves of both endpoints");
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..4000 {
        // Log-normal-ish around 0.2 ms, with a tail.
        let x = (-2.0 * next(&mut rng).max(1e-12).ln()).sqrt() * 0.8;
        let ns = 200_000.0 * scale * (x * std::f64::consts::LN_10).exp();
        h.record(ns as u64).unwrap();
    }
    r.metric(Metric::from_histogram(
        "switch_to_wire",
        "ms",
        "from publication to the first packet on the new path",
        &h,
        1e6,
    ));
    let gaps: Vec<f64> = (0..3000)
        .map(|_| 0.05 * scale / next(&mut rng).max(1e-3))
        .collect();
    r.metric(Metric::from_samples(
        "rx_gap",
        "ms",
        "silence at the receiver",
        &gaps,
    ));
    let mut rate = Series::new("rx_rate", "pps", "received per second");
    let mut lost = Series::new("lost", "packets", "lost per second");
    for t in 0..60 {
        let t = f64::from(t);
        rate.push(t, 20_000.0 * scale + 3000.0 * next(&mut rng));
        lost.push(
            t,
            if t % 5.0 == 0.0 {
                40.0 * next(&mut rng)
            } else {
                0.0
            },
        );
    }
    r.series(rate).series(lost);
    r.duration_s = 60.0;
    r
}

fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Runs the browser headless on `url` with `extra` arguments and a fresh profile; its
/// stdout goes to `stdout`. Ended with its process group after TIMEOUT.
fn browse(browser: &Path, work: &Path, extra: &[String], url: &str, stdout: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let profile = TempDir::new("chromium-profile");
    let stderr_path = work.join("browser-stderr.txt");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(stdout).unwrap())
    .stderr(std::fs::File::create(&stderr_path).unwrap())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{}: cannot start: {e}", browser.display()));
    let pid = child.id();
    // The waiting thread reports the exit; the test waits for that report, not a sleep.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx.recv_timeout(TIMEOUT);
    if status.is_err() {
        // The browser's helpers share its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    let _ = waiter.join();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Ok(Ok(s)) if s.success() => stderr,
        Ok(Ok(s)) => panic!(
            "{} {extra:?} {url}: {s}; stderr:\n{stderr}",
            browser.display()
        ),
        Ok(Err(e)) => panic!("{}: wait: {e}", browser.display()),
        Err(_) => panic!(
            "{} {extra:?} {url}: no exit within {TIMEOUT:?} (killed); stderr:\n{stderr}",
            browser.display()
        ),
    }
}

/// The `points` of every `<polyline` in `dom`.
fn polyline_points(dom: &str) -> Vec<&str> {
    dom.split("<polyline")
        .skip(1)
        .map(|el| {
            let el = &el[..el.find('>').unwrap_or(el.len())];
            el.split_once("points=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map_or("", |(points, _)| points)
        })
        .collect()
}

fn check_dom(dom: &str, what: &str, title: &str, svgs: usize, polylines: usize, names: &[&str]) {
    assert!(
        dom.contains(&format!("<title>{title}</title>")),
        "{what}: no title {title:?} in the DOM:\n{dom:.2000}"
    );
    assert_eq!(dom.matches("<svg").count(), svgs, "{what}: <svg elements");
    let points = polyline_points(dom);
    assert_eq!(points.len(), polylines, "{what}: <polyline elements");
    for p in points {
        let pairs = p.split_whitespace().count();
        assert!(
            pairs >= 2 && p.contains(','),
            "{what}: polyline points {p:?}"
        );
    }
    for name in names {
        assert!(
            dom.contains(&format!("data-metric=\"{name}\"")),
            "{what}: no figure for metric {name}"
        );
    }
    assert!(!dom.contains("NaN"), "{what}: NaN in the DOM");
}

fn png_size(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(&PNG_SIGNATURE),
        "{}: not a PNG",
        path.display()
    );
    bytes.len()
}

#[test]
fn report_pages_render_in_chromium() {
    let Some(browser) = find_browser() else {
        let required =
            std::env::var_os("MOBIKED_REQUIRE_CHROMIUM").is_some_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "MOBIKED_REQUIRE_CHROMIUM is set but none of {BROWSERS:?} is on PATH \
             (install it: apt-get install chromium)"
        );
        println!("skipped: no chromium");
        return;
    };
    let work = TempDir::new("report-chromium");
    let title = "lab: 300 clients, rotation 5s";
    let a = realistic(title, 7, 1.0);
    let b = realistic("lab: 300 clients, rotation 2s", 11, 1.6);
    let names = ["switch_to_wire", "rx_gap"];
    let page = work.0.join("page.html");
    let compare = work.0.join("compare.html");
    std::fs::write(&page, html::page(&a)).unwrap();
    let runs = [("before".to_string(), a), ("after".to_string(), b)];
    std::fs::write(&compare, html::compare_page(&runs)).unwrap();

    let dom_path = work.0.join("dom.html");
    let dump = ["--dump-dom".to_string()];
    browse(&browser, &work.0, &dump, &file_url(&page), &dom_path);
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    // Per metric a histogram and a CDF (one line), per series a plot (one line).
    check_dom(&dom, "page", title, 2 * 2 + 2, 2 + 2, &names);

    browse(&browser, &work.0, &dump, &file_url(&compare), &dom_path);
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    // Per metric and per series one plot with a line per run.
    check_dom(
        &dom,
        "compare page",
        "Comparison: before vs after",
        4,
        8,
        &names,
    );

    let shot = |url: &str, png: &Path| {
        let args = [
            format!("--screenshot={}", png.display()),
            "--window-size=1200,2000".to_string(),
        ];
        browse(&browser, &work.0, &args, url, &work.0.join("stdout.txt"));
        png_size(png)
    };
    let blank = work.0.join("blank.html");
    std::fs::write(&blank, "<html></html>").unwrap();
    let page_png = shot(&file_url(&page), &work.0.join("page.png"));
    let blank_png = shot(&file_url(&blank), &work.0.join("blank.png"));
    assert!(page_png > 10_000, "page screenshot is {page_png} bytes");
    assert!(
        blank_png * 3 < page_png,
        "blank page screenshot {blank_png} bytes, report page {page_png}: the plots did not draw"
    );
}
