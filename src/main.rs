//! mobiked: userspace IKEv2 + MOBIKE with its own ESP fastpath.

mod ike_run;
mod lab;
mod lab_static;
mod node;
mod report_cmd;
mod rig;
mod run;
mod scenario;
mod streams;
mod wait;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "mobiked",
    version,
    about = "Userspace IKEv2 + MOBIKE with its own ESP fastpath"
)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info`, `mobiked=debug` [default: $RUST_LOG, else info].
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A gateway and a few hundred emulated clients in one process over loopback: real
    /// IKE and MOBIKE with address rotation, a stream in every tunnel, a report.
    Lab(lab::LabArgs),
    /// Run static SAs from a configuration file until SIGINT/SIGTERM.
    Run {
        /// The YAML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// IKEv2 responder: answer the configured connections and run their SAs.
    Gateway(ike_run::IkeArgs),
    /// IKEv2 initiator: bring up every configured connection (and its instances), retry
    /// after failures, run their SAs.
    Client(ike_run::IkeArgs),
    /// Validate a configuration file; every error names the key and the fix.
    Check {
        /// The YAML configuration.
        file: PathBuf,
    },
    /// Benchmarks of the fastpath (figures and method in perf/README.md).
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        /// A scenario (perf/scenarios/*.yaml): the address-change rig in network
        /// namespaces (root): handover timeline and loss per repetition, a report.
        scenario: Option<PathBuf>,
        /// With a scenario: also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// With a scenario: also write the report as an HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(subcommand)]
        which: Option<BenchCmd>,
    },
    /// Compare run reports (JSON from `mobiked lab` or `mobiked bench`) in one table, and
    /// optionally one HTML page.
    Report(report_cmd::ReportArgs),
    /// Talk to a running instance over its control socket.
    Ctl {
        /// The control socket (`control.socket` in its configuration).
        #[arg(short, long)]
        socket: PathBuf,
        #[command(subcommand)]
        req: CtlCmd,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Move a path: publish a new outer header for every SA that follows it.
    Path {
        /// The path's name in the configuration.
        name: String,
        #[arg(long)]
        local: SocketAddr,
        #[arg(long)]
        remote: SocketAddr,
    },
    /// Print the dataplane counters as JSON.
    Stats,
    /// Print the paths with their generations as JSON.
    Paths,
    /// Print the IKE SAs and their child SAs as JSON.
    Sas,
    /// MOBIKE: move an IKE SA this end initiated to a new address pair.
    Move {
        /// The connection's name (its first established IKE SA)...
        #[arg(long, conflicts_with = "sa", required_unless_present = "sa")]
        conn: Option<String>,
        /// ...or the IKE SA's SPI in hexadecimal.
        #[arg(long)]
        sa: Option<String>,
        /// Our address to use.
        #[arg(long)]
        local: std::net::IpAddr,
        /// The peer's address to use.
        #[arg(long)]
        remote: std::net::IpAddr,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Two endpoints with static SAs in one process over loopback: offered load, path
    /// switches, loss and publish-to-wire latency (no IKE).
    Loopback(lab_static::LabArgs),
    /// ESP encap/decap on one core against the bare primitives (AEAD seal/open, or
    /// AES-CBC + HMAC) over the same bytes, for AES-GCM, ChaCha20-Poly1305 and CBC suites.
    Esp {
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Timed rounds per figure (the report gives medians).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// Seconds of each timed pass.
        #[arg(long, default_value_t = 0.1)]
        seconds: f64,
    },
    /// Forwarding through network namespaces over veth with the afpacket backend, ESP
    /// against unencrypted forwarding, and path-change latency under load (needs root).
    Fwd {
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Measured seconds per size, mode and round.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Rounds per size and mode (the report gives the median round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// IKE SA setup, the core in memory and this binary's gateway and client processes
    /// over loopback; with many tunnels up, idle CPU of both and the time from the
    /// client's SIGTERM until the gateway is empty (no privileges needed).
    Ike {
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Tunnels brought up at once (one client connection with that many instances).
        #[arg(long, default_value_t = 1000)]
        tunnels: usize,
        /// Single-tunnel setups to time.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Rounds of the many-tunnel measurement.
        #[arg(long, default_value_t = 3)]
        bulk_rounds: usize,
        /// Seconds of each idle CPU window (0: neither idle CPU nor the stop measured).
        #[arg(long, default_value_t = 5.0)]
        idle_s: f64,
        /// DPD interval of both ends in seconds (0: off); the idle window then starts
        /// one interval after the tunnels are up.
        #[arg(long, default_value_t = 30)]
        dpd_s: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--log` wins; otherwise RUST_LOG; otherwise info.
    let spec = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.cmd {
        Cmd::Lab(args) => lab::main(args),
        Cmd::Run { config } => run::main(&config),
        Cmd::Gateway(args) => ike_run::main(&args, control::engine::Role::Gateway),
        Cmd::Client(args) => ike_run::main(&args, control::engine::Role::Client),
        Cmd::Check { file } => match control::config::check_file(&file) {
            Ok(summary) => {
                println!("{}: {summary}", file.display());
                Ok(())
            }
            Err(errors) => Err(errors),
        },
        Cmd::Ctl { socket, req } => ctl(&socket, req),
        Cmd::Bench {
            scenario,
            json,
            html,
            which,
        } => match (which, scenario) {
            (Some(which), _) => bench(which),
            (None, Some(file)) => rig::main(&file, json, html),
            (None, None) => Err(
                "mobiked bench: give a scenario file (perf/scenarios/*.yaml) or one of esp, fwd, ike, loopback".into(),
            ),
        },
        Cmd::Report(args) => report_cmd::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(socket: &std::path::Path, req: CtlCmd) -> Result<(), String> {
    use control::ctl::{request, Request, Response};
    let req = match req {
        CtlCmd::Path {
            name,
            local,
            remote,
        } => Request::PathSet {
            name,
            local,
            remote,
        },
        CtlCmd::Stats => Request::Stats,
        CtlCmd::Paths => Request::Paths,
        CtlCmd::Sas => Request::Sas,
        CtlCmd::Move {
            conn,
            sa,
            local,
            remote,
        } => Request::Move {
            target: conn.or(sa).unwrap_or_default(),
            local,
            remote,
        },
    };
    let resp = request(socket, &req, Duration::from_secs(5))
        .map_err(|e| format!("control socket {}: {e}", socket.display()))?;
    if let Response::Error { message } = &resp {
        return Err(message.clone());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&resp).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn write_json(path: Option<PathBuf>, report: &impl serde::Serialize) -> Result<(), String> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("--json {}: {e}", path.display()))?;
    }
    Ok(())
}

fn bench(which: BenchCmd) -> Result<(), String> {
    match which {
        BenchCmd::Loopback(args) => lab_static::main(args),
        BenchCmd::Esp {
            json,
            rounds,
            seconds,
        } => {
            let cfg = perf::esp::EspBenchConfig {
                rounds: rounds.max(1),
                seconds,
                ..Default::default()
            };
            let report = perf::esp::run(&cfg);
            println!("{}", perf::esp::render_table(&report));
            write_json(json, &report)
        }
        BenchCmd::Fwd {
            json,
            seconds,
            rounds,
        } => {
            let cfg = perf::fwd::FwdBenchConfig {
                seconds,
                rounds: rounds.max(1),
                ..Default::default()
            };
            let report = perf::fwd::run(&cfg)?;
            println!("{}", perf::fwd::render_table(&report));
            write_json(json, &report)
        }
        BenchCmd::Ike {
            json,
            tunnels,
            rounds,
            bulk_rounds,
            idle_s,
            dpd_s,
        } => {
            let bin = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
            let cfg = perf::ike::IkeBenchConfig {
                bin: Some(bin),
                rounds,
                tunnels: tunnels.max(1),
                bulk_rounds: bulk_rounds.max(1),
                idle_s: idle_s.max(0.0),
                dpd_s,
            };
            let report = perf::ike::run(&cfg)?;
            println!("{}", perf::ike::render_table(&report));
            write_json(json, &report)
        }
    }
}
