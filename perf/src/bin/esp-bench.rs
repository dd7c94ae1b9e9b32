//! `esp-bench`: ESP encap/decap against the bare AEAD on one pinned core. See
//! `mobiked_perf::esp`.

use mobiked_perf::esp::{self, EspBenchConfig, EspSize};
use shared::sa::EspCipher;
use std::process::ExitCode;

const USAGE: &str = "usage: esp-bench [--json FILE] [--seconds S] [--rounds N] [--pool N] \
[--sizes 64,512,1400,imix] [--ciphers aes128gcm16,chacha20poly1305,aes128-sha256,...] \
[--esn on|off] [--no-pin]";

fn parse() -> Result<(EspBenchConfig, Option<String>), String> {
    let mut cfg = EspBenchConfig::default();
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--no-pin" => {
                cfg.pin = false;
                continue;
            }
            _ => {}
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |what: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("{what} `{v}`: expected a positive number"))
        };
        match a.as_str() {
            "--json" => json = Some(v.clone()),
            "--seconds" => cfg.seconds = num("--seconds")?,
            "--rounds" => cfg.rounds = num("--rounds")? as usize,
            "--pool" => cfg.pool = num("--pool")? as usize,
            "--sizes" => cfg.sizes = v.split(',').map(EspSize::parse).collect::<Result<_, _>>()?,
            "--ciphers" => {
                cfg.ciphers = v
                    .split(',')
                    .map(|c| {
                        EspCipher::from_name(c.trim()).ok_or_else(|| {
                            format!("cipher `{c}`: expected one of {}", EspCipher::names())
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            "--esn" => {
                cfg.esn = match v.as_str() {
                    "on" | "true" | "yes" => true,
                    "off" | "false" | "no" => false,
                    _ => return Err(format!("--esn `{v}`: expected on or off")),
                }
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
            return ExitCode::FAILURE;
        }
    };
    let report = esp::run(&cfg);
    print!("{}", esp::render_table(&report));
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("esp-bench: JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("esp-bench: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if report.rows.iter().any(|r| r.errors > 0) {
        eprintln!("esp-bench: some packets were refused; the figures are not valid");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
