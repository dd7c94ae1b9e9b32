//! `table-bench`: the cost of one table change and its publication, and of the packet-path
//! lookups, with 1k, 10k and 100k SAs installed. See `mobiked_perf::table`.

use mobiked_perf::table::{self, TableBenchConfig};
use std::process::ExitCode;

const USAGE: &str = "usage: table-bench [--quick] [--json FILE] [--sizes 1000,10000,100000] \
[--rounds N] [--changes N] [--lookups N] [--no-pin] [--client]\n\
  --client: tunnels of a client's shape (one shared remote selector, a virtual IP each)";

fn parse() -> Result<(TableBenchConfig, Option<String>), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // --quick sets the defaults the other options then adjust, wherever it appears.
    let mut cfg = if args.iter().any(|a| a == "--quick") {
        TableBenchConfig::quick()
    } else {
        TableBenchConfig::default()
    };
    let mut json = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--quick" => continue,
            "--no-pin" => {
                cfg.pin = false;
                continue;
            }
            "--client" => {
                cfg.client = true;
                continue;
            }
            _ => {}
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |what: &str, v: &str| -> Result<usize, String> {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|x| *x > 0)
                .ok_or_else(|| format!("{what} `{v}`: expected a positive integer"))
        };
        match a.as_str() {
            "--json" => json = Some(v.clone()),
            "--rounds" => cfg.rounds = num("--rounds", &v)?,
            "--changes" => cfg.changes = num("--changes", &v)?,
            "--lookups" => cfg.lookups = num("--lookups", &v)?,
            "--sizes" => {
                cfg.sizes = v
                    .split(',')
                    .map(|s| num("--sizes", s))
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    Ok((cfg, json))
}

fn main() -> ExitCode {
    let (cfg, json) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = match table::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("table-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", table::render_table(&report));
    if let Some(p) = json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("table-bench: JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("--json {p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
