//! mobiked: userspace IKEv2 + MOBIKE with its own ESP fastpath.

mod lab;
mod run;

use clap::{Parser, Subcommand};
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
    /// Log filter (tracing syntax), e.g. `info`, `mobiked=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Two endpoints in one process over loopback: traffic, path switches, a report.
    Lab(lab::LabArgs),
    /// Run static SAs from a configuration file until SIGINT/SIGTERM.
    Run {
        /// The YAML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file; every error names the key and the fix.
    Check {
        /// The YAML configuration.
        file: PathBuf,
    },
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.cmd {
        Cmd::Lab(args) => lab::main(args),
        Cmd::Run { config } => run::main(&config),
        Cmd::Check { file } => match control::config::check_file(&file) {
            Ok(summary) => {
                println!("{}: {summary}", file.display());
                Ok(())
            }
            Err(errors) => Err(errors),
        },
        Cmd::Ctl { socket, req } => ctl(&socket, req),
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
