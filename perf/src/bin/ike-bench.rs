//! `ike-bench`: IKE SA setup time and rate, the core in memory and `mobiked gateway` /
//! `mobiked client` processes over loopback. See `mobiked_perf::ike`.

use mobiked_perf::ike::{self, IkeBenchConfig};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: ike-bench [--bin PATH/TO/mobiked] [--json FILE] [--rounds N] [--tunnels N] [--bulk-rounds N] [--idle-s S (0: no idle CPU or stop measurement)] [--dpd-s S (DPD interval, 0: off)]\n       ike-bench --held N[,N...] [--batch N] [--rounds N] [--json FILE]  (core setup rate with N IKE SAs up)";

/// The scaling mode (`--held`): levels, setups timed per sample.
struct Scale {
    held: Vec<usize>,
    batch: usize,
}

fn parse() -> Result<(IkeBenchConfig, Option<Scale>, Option<String>), String> {
    let mut cfg = IkeBenchConfig::default();
    let mut json = None;
    let mut scale: Option<Scale> = None;
    let mut batch = 2000;
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
            "--batch" => batch = num("--batch")?,
            "--held" => {
                let held = v
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("--held `{v}`: expected counts such as 1000,10000"))?;
                scale = Some(Scale { held, batch: 0 });
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
    if let Some(s) = &mut scale {
        s.batch = batch;
    }
    Ok((cfg, scale, json))
}

fn main() -> ExitCode {
    let (cfg, scale, json) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(s) = scale {
        let r = ike::core_scale(&s.held, s.batch, cfg.rounds, 11);
        println!("{}", ike::render_scale(&r));
        if let Some(p) = json {
            if let Err(e) = std::fs::write(&p, serde_json::to_string_pretty(&r).unwrap_or_default())
            {
                eprintln!("--json {p}: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
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
