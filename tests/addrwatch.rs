//! The netlink address watcher against the real kernel, in a network namespace the
//! test creates (root only; skipped with a message otherwise): a veth pair, IPv4 and
//! IPv6 addresses added and removed, an IPv6 address held tentative by a long
//! duplicate address detection, a link set down and up again. Every wait is a poll(2)
//! on the watcher's descriptor with a deadline.

use control::addrwatch::{AddrEvent, AddrWatch};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// Deletes the namespace (and the veth pair in it) however the test ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Opens the watcher from a thread that entered the namespace: the sockets belong to
/// the namespace they were created in, whoever uses them later.
fn open_in(ns: &str) -> AddrWatch {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns(2) on a namespace descriptor that stays open for the call;
        // it changes this (short-lived) thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        AddrWatch::open().expect("netlink socket in the namespace")
    })
    .join()
    .expect("the opening thread")
}

/// Waits (poll on the watcher's descriptor, up to WAIT) for the descriptor to be
/// readable; false on timeout.
fn poll_until(w: &AddrWatch, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut p = libc::pollfd {
        fd: w.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(60_000) as i32) };
    rc > 0
}

/// The lists `addresses_changed` reports until one satisfies `pred`.
fn wait_list(w: &mut AddrWatch, what: &str, pred: impl Fn(&[IpAddr]) -> bool) -> Vec<IpAddr> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(list) = w.addresses_changed() {
            assert_eq!(list, w.usable());
            if pred(&list) {
                return list;
            }
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}; usable: {:?}", w.usable());
        }
        poll_until(w, deadline);
    }
}

/// The events `drain` reports until `want` is among them.
fn wait_event(w: &mut AddrWatch, want: AddrEvent) -> Vec<AddrEvent> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        seen.extend(w.drain());
        if seen.contains(&want) {
            return seen;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {want:?}; saw {seen:?}");
        }
        poll_until(w, deadline);
    }
}

#[test]
fn addresses_and_links_in_a_namespace() {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating a network namespace needs root");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: no `ip` command (iproute2)");
        return;
    }
    let name = format!("mobiked-aw-{}", std::process::id());
    run(&["ip", "netns", "add", &name]);
    let ns = Netns(name);
    let n = ns.0.as_str();
    run(&[
        "ip", "-n", n, "link", "add", "va", "type", "veth", "peer", "name", "vb",
    ]);
    // 100 probes at 1 s: an address added with DAD stays tentative for the test.
    run(&[
        "ip",
        "netns",
        "exec",
        n,
        "sysctl",
        "-qw",
        "net.ipv6.conf.va.dad_transmits=100",
    ]);
    for dev in ["lo", "va", "vb"] {
        run(&["ip", "-n", n, "link", "set", dev, "up"]);
    }
    let va: u32 = run(&["ip", "netns", "exec", n, "cat", "/sys/class/net/va/ifindex"])
        .trim()
        .parse()
        .unwrap();

    let mut w = open_in(n);
    let first = w.dump().unwrap();
    assert!(first.contains(&ip("127.0.0.1")), "{first:?}");
    assert!(!first.contains(&ip("10.9.0.1")), "{first:?}");

    // Added, both families.
    run(&["ip", "-n", n, "addr", "add", "10.9.0.1/24", "dev", "va"]);
    wait_list(&mut w, "10.9.0.1", |l| l.contains(&ip("10.9.0.1")));
    run(&[
        "ip",
        "-n",
        n,
        "addr",
        "add",
        "2001:db8::1/64",
        "dev",
        "va",
        "nodad",
    ]);
    wait_list(&mut w, "2001:db8::1", |l| l.contains(&ip("2001:db8::1")));

    // Tentative: present in the kernel, absent from the usable list, both by events
    // (checked once a later address has been reported) and by a fresh dump.
    run(&["ip", "-n", n, "addr", "add", "2001:db8::2/64", "dev", "va"]);
    run(&["ip", "-n", n, "addr", "add", "10.9.0.2/24", "dev", "va"]);
    let l = wait_list(&mut w, "10.9.0.2", |l| l.contains(&ip("10.9.0.2")));
    let shown = run(&["ip", "-n", n, "-6", "addr", "show", "dev", "va"]);
    assert!(
        shown.contains("2001:db8::2/64") && shown.contains("tentative"),
        "{shown}"
    );
    assert!(!l.contains(&ip("2001:db8::2")), "{l:?}");
    assert!(!w.dump().unwrap().contains(&ip("2001:db8::2")));

    // Link down: the kernel keeps the IPv4 addresses, the usable list drops them.
    run(&["ip", "-n", n, "link", "set", "va", "down"]);
    let l = wait_list(&mut w, "va's addresses to go", |l| {
        !l.contains(&ip("10.9.0.1"))
    });
    assert!(!l.contains(&ip("10.9.0.2")), "{l:?}");
    assert!(l.contains(&ip("127.0.0.1")), "{l:?}");
    let shown = run(&["ip", "-n", n, "-4", "addr", "show", "dev", "va"]);
    assert!(
        shown.contains("10.9.0.1/24"),
        "the kernel keeps it: {shown}"
    );
    assert!(!w.dump().unwrap().contains(&ip("10.9.0.1")));

    // Up again, seen as events: the link first, then the IPv4 address is usable again
    // (it never left the kernel, so it is no new address).
    run(&["ip", "-n", n, "link", "set", "va", "up"]);
    let seen = wait_event(&mut w, AddrEvent::LinkUp(va));
    assert!(!seen.contains(&AddrEvent::LinkDown(va)), "{seen:?}");
    assert!(w.usable().contains(&ip("10.9.0.1")), "{:?}", w.usable());
    run(&["ip", "-n", n, "addr", "del", "10.9.0.1/24", "dev", "va"]);
    wait_event(&mut w, AddrEvent::Removed(ip("10.9.0.1")));
    assert!(!w.usable().contains(&ip("10.9.0.1")));
    run(&["ip", "-n", n, "addr", "add", "10.9.0.7/24", "dev", "va"]);
    wait_event(&mut w, AddrEvent::Added(ip("10.9.0.7")));
    // The peer end going down takes the carrier (IFF_RUNNING) of va: LinkDown.
    run(&["ip", "-n", n, "link", "set", "vb", "down"]);
    wait_event(&mut w, AddrEvent::LinkDown(va));
    assert!(!w.usable().contains(&ip("10.9.0.7")));
    // The state kept from events is the kernel's.
    let kept = w.usable();
    assert_eq!(w.dump().unwrap(), kept);
    drop(ns);
}
