//! `mobiked gateway` and `mobiked client`: one [`Node`] (the sans-IO IKE engine driven
//! by real sockets, its events installed into the dataplane's tables) until SIGINT or
//! SIGTERM, which deletes every IKE SA before the process ends (a second signal ends
//! it at once).

use crate::node::{Node, NodeOptions};
use crate::run::{self, Port};
use crate::wait::{self, StopSignal};
use control::engine::Role;
use dataplane::io::null::NullPort;
use dataplane::io::Layer;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct IkeArgs {
    /// The YAML configuration (with `connections:`).
    #[arg(short, long)]
    config: PathBuf,
    /// Run without the protected side: SAs are negotiated and installed, inner traffic
    /// goes nowhere (signalling load tests, or runs without the privilege a TUN needs).
    #[arg(long)]
    no_clear: bool,
}

pub fn main(args: &IkeArgs, role: Role) -> Result<(), String> {
    let config = &args.config;
    let cfg = control::config::load(config)
        .map_err(|e| format!("{}: configuration has errors:\n{e}", config.display()))?;
    let no_clear = args.no_clear;
    let clear_cfg = cfg.clone();
    let opts = NodeOptions {
        clear: Box::new(move |w| -> Result<Port, String> {
            if no_clear {
                // Whatever the workers decrypt is dropped.
                Ok(Box::new(NullPort::new(Layer::Ip)))
            } else {
                run::open_clear(&clear_cfg, w)
            }
        }),
        reuse_addr: false,
        watch_addresses: true,
        observe: false,
        thread_prefix: "mobiked",
    };
    let mut node =
        Node::open(&cfg, role, opts).map_err(|e| format!("{}: {e}", config.display()))?;
    let signals = StopSignal::register().map_err(|e| format!("signal: {e}"))?;
    while !node.engine.is_finished() {
        node.turn(
            signals.requested(),
            wait::IDLE_CAP_MS,
            Some(&signals),
            |_| {},
        );
    }
    node.close();
    Ok(())
}
