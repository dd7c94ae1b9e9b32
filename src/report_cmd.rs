//! `mobiked report`: prints one run report as a table, or several side by side, and
//! optionally writes them as one self-contained HTML page.

use clap::Args;
use perf::rig::html;
use perf::rig::report::{compare_table, table, RunReport};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// Run reports (JSON written by `mobiked lab` or `mobiked bench`).
    #[arg(required = true, value_name = "REPORT.json")]
    files: Vec<PathBuf>,
    /// Also write the report(s) as one HTML page (inline plots, opens from file://).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// A column name per report, in the order of the files [default: the file names
    /// without `.json`].
    #[arg(long = "label", value_name = "NAME")]
    labels: Vec<String>,
}

pub fn main(args: ReportArgs) -> Result<(), String> {
    let labels = labels(&args.files, &args.labels)?;
    let mut runs = Vec::with_capacity(args.files.len());
    for (file, label) in args.files.iter().zip(labels) {
        runs.push((label, RunReport::load(file)?));
    }
    let (text, page) = match &runs[..] {
        [(_, r)] => (table(r), html::page(r)),
        _ => (compare_table(&runs), html::compare_page(&runs)),
    };
    print!("{text}");
    if let Some(path) = &args.html {
        std::fs::write(path, page)
            .map_err(|e| format!("--html {}: cannot write: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The given labels, one per file; otherwise each file's stem, or its whole path where
/// two files share a stem.
fn labels(files: &[PathBuf], given: &[String]) -> Result<Vec<String>, String> {
    if !given.is_empty() {
        if given.len() != files.len() {
            return Err(format!(
                "--label given {} times for {} reports: give one per report, in the order \
                 of the files, or none",
                given.len(),
                files.len()
            ));
        }
        return Ok(given.to_vec());
    }
    let stem = |f: &Path| {
        f.file_stem()
            .map_or_else(|| f.display().to_string(), |s| s.to_string_lossy().into())
    };
    let stems: Vec<String> = files.iter().map(|f| stem(f)).collect();
    Ok(files
        .iter()
        .zip(&stems)
        .map(|(f, s)| {
            if stems.iter().filter(|t| *t == s).count() > 1 {
                f.display().to_string()
            } else {
                s.clone()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_default_to_stems_and_must_match_the_files() {
        let files: Vec<PathBuf> = ["out/a.json", "b.json", "x/run.json", "y/run.json"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            labels(&files, &[]).unwrap(),
            ["a", "b", "x/run.json", "y/run.json"]
        );
        let given: Vec<String> = ["1", "2", "3", "4"].map(String::from).to_vec();
        assert_eq!(labels(&files, &given).unwrap(), given);
        let e = labels(&files, &given[..1]).unwrap_err();
        assert!(e.contains("--label given 1 times for 4 reports"), "{e}");
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("mobiked-report-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("a.json");
        std::fs::write(&bad, "{\"rounds\": 3}").unwrap();
        let good = dir.join("b.json");
        RunReport::new("t", "mobiked lab").save(&good).unwrap();
        let run = |files: Vec<PathBuf>, html: Option<PathBuf>| {
            main(ReportArgs {
                files,
                html,
                labels: Vec::new(),
            })
        };
        let e = run(vec![good.clone(), bad.clone()], None).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}: not a mobiked run report (expected JSON with \"schema\": 1)",
                bad.display()
            )),
            "{e}"
        );
        let page = dir.join("page.html");
        run(vec![good.clone(), good.clone()], Some(page.clone())).unwrap();
        assert!(std::fs::read_to_string(&page)
            .unwrap()
            .starts_with("<!DOCTYPE html>"));
        let e = run(vec![good], Some(dir.join("no/such/dir.html"))).unwrap_err();
        assert!(
            e.starts_with("--html ") && e.contains("cannot write"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
