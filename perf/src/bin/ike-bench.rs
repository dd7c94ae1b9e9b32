//! `ike-bench`: IKE SA setup time and rate, the core in memory and `mobiked gateway` /
//! `mobiked client` processes over loopback. See `mobiked_perf::ike`.

use mobiked_perf::ike::{self, IkeBenchConfig};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: ike-bench [--bin PATH/TO/mobiked] [--json FILE] [--rounds N] [--tunnels N] [--bulk-rounds N] [--idle-s S (0: no idle CPU or stop measurement)] [--dpd-s S (DPD interval, 0: off)]";

fn parse() -> Result<(IkeBenchConfig, Option<String>), String> {
    let mut cfg = IkeBenchConfig::default();
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |what: &str| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|x| *x > 0)
                .ok_or_else(|| format!("{what} `{v}`: expected a positive integer"))
        };
        match a.as_str() {
            "--bin" => cfg.bin = Some(PathBuf::from(&v)),
            "--json" => json = Some(v.clone()),
            "--rounds" => cfg.rounds = num("--rounds")?,
            "--tunnels" => cfg.tunnels = num("--tunnels")?,
            "--bulk-rounds" => cfg.bulk_rounds = num("--bulk-rounds")?,
            "--dpd-s" => {
                cfg.dpd_s = v
                    .parse::<u64>()
                    .map_err(|_| format!("--dpd-s `{v}`: expected whole seconds >= 0"))?
            }
            "--idle-s" => {
                cfg.idle_s = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("--idle-s `{v}`: expected seconds >= 0"))?
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
    match ike::run(&cfg) {
        Ok(r) => {
            println!("{}", ike::render_table(&r));
            if let Some(p) = json {
                if let Err(e) =
                    std::fs::write(&p, serde_json::to_string_pretty(&r).unwrap_or_default())
                {
                    eprintln!("--json {p}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ike-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
