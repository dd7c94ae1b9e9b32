//! `fwd-bench`: afpacket forwarding through network namespaces, ESP against plain, and
//! path-change latency under load (needs root). See `mobiked_perf::fwd`.

use mobiked_perf::fwd::{self, DutRing, FwdBenchConfig, FwdSize};
use std::process::ExitCode;

const USAGE: &str = "usage: fwd-bench [--json FILE] [--seconds S] [--warmup S] [--rounds N] \
[--sizes 64,512,1400,imix] [--burst N] [--rate PPS] [--switches N] [--switch-every MS] \
[--switch-loads PPS,PPS] [--switch-bursts N,N] [--ring RING] [--switch-rings RING,RING] \
[--nice N] [--otherhost 0|1]
  RING: blocks[:BLOCK_BYTES] (TPACKET_V3) or frames (TPACKET_V2)";

fn parse() -> Result<(FwdBenchConfig, Option<String>), String> {
    let mut cfg = FwdBenchConfig::default();
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |what: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("{what} `{v}`: expected a number"))
        };
        let list = || -> Result<Vec<u64>, String> {
            v.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{a}: `{x}` is not a number"))
                })
                .collect()
        };
        match a.as_str() {
            "--json" => json = Some(v.clone()),
            "--seconds" => cfg.seconds = num("--seconds")?,
            "--warmup" => cfg.warmup = num("--warmup")?,
            "--rounds" => cfg.rounds = num("--rounds")? as usize,
            "--burst" => cfg.burst = num("--burst")? as usize,
            "--rate" => cfg.rate_pps = num("--rate")? as u64,
            "--switches" => cfg.switches = num("--switches")? as usize,
            "--switch-every" => cfg.switch_every_ms = num("--switch-every")? as u64,
            "--switch-loads" => cfg.switch_loads_pps = list()?,
            "--switch-bursts" => {
                cfg.switch_bursts = list()?.into_iter().map(|b| b as usize).collect()
            }
            "--ring" => cfg.dut_ring = DutRing::parse(&v)?,
            "--switch-rings" => {
                cfg.switch_rings = v
                    .split(',')
                    .map(|s| DutRing::parse(s.trim()))
                    .collect::<Result<_, _>>()?
            }
            "--nice" => cfg.nice = num("--nice")? as i32,
            "--otherhost" => cfg.clear_otherhost = num("--otherhost")? != 0.0,
            "--sizes" => {
                cfg.sizes = v
                    .split(',')
                    .map(|s| FwdSize::parse(s.trim()))
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
    let report = match fwd::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fwd-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", fwd::render_table(&report));
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("fwd-bench: JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("fwd-bench: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
