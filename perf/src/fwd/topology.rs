//! The benchmark's network: three namespaces joined by two veth pairs, static MACs and
//! permanent neighbours (nothing ARPs), the AF_PACKET ports opened inside them, and
//! where the threads run (core pinning, nice).

use super::DutRing;
use dataplane::io::afpacket::{AfPacketConfig, AfPacketPort};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

pub(super) const MAC_G0: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x01];
pub(super) const MAC_DC: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x02];
pub(super) const MAC_DS: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x03];
pub(super) const MAC_S0: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x04];
/// A MAC nobody owns (see `FwdBenchConfig::clear_otherhost`).
pub(super) const MAC_OTHER: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x99];
pub(super) const GEN_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const DUT_CLEAR_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
/// Inner destination: a host behind the sink's gateway, on no interface.
pub(super) const INNER_DST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// The DUT's two outer addresses; path changes alternate between them.
pub(super) const DUT_OUTER: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
pub(super) const SINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub(super) const SPI: u32 = 0x6d6b_f001;
/// The cipher-side veth carries ESP of 1500-byte IMIX packets.
const CIPHER_MTU: u32 = 1600;

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The three namespaces; deleting a namespace removes the veth ends inside it.
pub(super) struct Topology {
    pub(super) gen: String,
    pub(super) dut: String,
    pub(super) sink: String,
    created: Vec<String>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Topology {
    pub(super) fn create() -> Result<Topology, String> {
        let pid = std::process::id();
        let mut t = Topology {
            gen: format!("mkf-gen-{pid}"),
            dut: format!("mkf-dut-{pid}"),
            sink: format!("mkf-sink-{pid}"),
            created: Vec::new(),
        };
        for ns in [t.gen.clone(), t.dut.clone(), t.sink.clone()] {
            sh(&["ip", "netns", "add", &ns])?;
            t.created.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            for key in [
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.ip_forward=0",
            ] {
                sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", key])?;
            }
        }
        let (g, d, s) = (t.gen.clone(), t.dut.clone(), t.sink.clone());
        let (mg0, mdc, mds, ms0) = (
            mac_str(MAC_G0),
            mac_str(MAC_DC),
            mac_str(MAC_DS),
            mac_str(MAC_S0),
        );
        sh(&[
            "ip", "-n", &g, "link", "add", "g0", "address", &mg0, "type", "veth", "peer", "name",
            "dc", "address", &mdc, "netns", &d,
        ])?;
        sh(&[
            "ip", "-n", &d, "link", "add", "ds", "address", &mds, "type", "veth", "peer", "name",
            "s0", "address", &ms0, "netns", &s,
        ])?;
        let mtu = CIPHER_MTU.to_string();
        sh(&["ip", "-n", &d, "link", "set", "ds", "mtu", &mtu])?;
        sh(&["ip", "-n", &s, "link", "set", "s0", "mtu", &mtu])?;
        for (ns, dev, addr) in [
            (&g, "g0", format!("{GEN_IP}/24")),
            (&d, "dc", format!("{DUT_CLEAR_IP}/24")),
            (&d, "ds", format!("{}/24", DUT_OUTER[0])),
            (&d, "ds", format!("{}/24", DUT_OUTER[1])),
            (&s, "s0", format!("{SINK_IP}/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev])?;
        }
        for (ns, dev) in [(&g, "g0"), (&d, "dc"), (&d, "ds"), (&s, "s0")] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        // Permanent neighbours: no ARP ever, in either direction.
        for (ns, dev, ip, mac) in [
            (&g, "g0", DUT_CLEAR_IP, &mdc),
            (&d, "dc", GEN_IP, &mg0),
            (&d, "ds", SINK_IP, &ms0),
            (&s, "s0", DUT_OUTER[0], &mds),
            (&s, "s0", DUT_OUTER[1], &mds),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        Ok(t)
    }
}

/// Moves the calling thread into network namespace `ns` (named by `ip netns`).
fn enter_netns(ns: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread's
    // network namespace; the descriptor outlives the call.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread inside `ns` and returns its result (sockets it opens stay bound
/// to `ns`).
pub(super) fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let name = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&name).map_err(|e| format!("entering namespace {name}: {e}"))?;
        f().map_err(|e| format!("in namespace {name}: {e}"))
    })
    .join()
    .map_err(|_| format!("thread in namespace {ns} panicked"))?
}

pub(super) fn open_port(
    ns: &str,
    dev: &str,
    ring: DutRing,
    blocks: usize,
) -> Result<AfPacketPort, String> {
    let cfg = AfPacketConfig {
        interface: dev.to_string(),
        block_size: ring.block_size,
        block_count: blocks,
        rx_ring: ring.rx,
        ..AfPacketConfig::default()
    };
    in_netns(ns, move || AfPacketPort::open(&cfg))
}

pub(super) fn pin(core: Option<usize>) {
    if let Some(id) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Sets the calling thread's nice value (best effort; 0 leaves it).
pub(super) fn renice(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux PRIO_PROCESS
    // with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}
