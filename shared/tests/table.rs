//! Functional tests of the table contract: what a publication makes visible, what the writer
//! refuses, and when retired versions and SA slots are really released.

use mobiked_shared::path::{Encap, PathSpec};
use mobiked_shared::policy::{Prefix, Tunnel};
use mobiked_shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use mobiked_shared::table::{TableConfig, TableError, TableWriter};
use std::net::{IpAddr, SocketAddr};

fn key(seed: u8) -> EspKey {
    EspKey::new(EspCipher::AesGcm16_128, &[seed; 20]).unwrap()
}

fn inbound(spi: u32, owner: u16, tunnel: u32) -> InboundSpec {
    InboundSpec {
        spi,
        owner,
        esn: true,
        replay_window: 128,
        key: key(spi as u8),
        tunnel,
    }
}

fn outbound(spi: u32, tunnel: u32, path: u32) -> OutboundSpec {
    OutboundSpec {
        spi,
        owner: 0,
        esn: false,
        key: key(spi as u8),
        path,
        tunnel,
    }
}

fn tunnel(id: u32, local: &[&str], remote: &[&str]) -> Tunnel {
    Tunnel {
        id,
        local_ts: local.iter().map(|p| p.parse::<Prefix>().unwrap()).collect(),
        remote_ts: remote
            .iter()
            .map(|p| p.parse::<Prefix>().unwrap())
            .collect(),
    }
}

fn path(local: &str, remote: &str) -> PathSpec {
    PathSpec {
        local: local.parse::<SocketAddr>().unwrap(),
        remote: remote.parse::<SocketAddr>().unwrap(),
        encap: Encap::Udp,
        l2: None,
        keepalive_ms: 20_000,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn small(workers: usize, max_sa: usize) -> TableConfig {
    TableConfig {
        workers,
        max_inbound: max_sa,
        max_outbound: max_sa,
        max_paths: 256,
        max_tunnels: 64,
    }
}

#[test]
fn inbound_sas_appear_and_leave_at_publication() {
    let mut w = TableWriter::new(TableConfig::default());
    let mut r = w.reader(0).unwrap();
    w.add_inbound(inbound(0x1000_0001, 0, 1)).unwrap();
    w.add_inbound(inbound(0xffff_fffe, 0, 2)).unwrap();
    assert!(w.is_dirty());
    // Staged changes are invisible until publish.
    assert!(r.begin_burst().inbound(0x1000_0001).is_none());
    let p = w.publish();
    assert!(!w.is_dirty());
    let s = r.begin_burst();
    assert_eq!(s.generation(), p.generation);
    assert_eq!(s.inbound_len(), 2);
    let a = s.inbound(0x1000_0001).unwrap();
    let b = s.inbound(0xffff_fffe).unwrap();
    assert_eq!(
        (a.spi, a.tunnel, a.replay_window, a.esn),
        (0x1000_0001, 1, 128, true)
    );
    assert_eq!((b.spi, b.tunnel), (0xffff_fffe, 2));
    assert_ne!(a.slot, b.slot);
    assert_ne!(a.install_id, b.install_id);
    assert!(s.inbound(0x1000_0002).is_none());
    assert!(s.inbound(0).is_none());

    w.remove_inbound(0x1000_0001).unwrap();
    assert_eq!(
        w.remove_inbound(0x1000_0001),
        Err(TableError::UnknownSpi(0x1000_0001))
    );
    w.publish();
    let s = r.begin_burst();
    assert!(s.inbound(0x1000_0001).is_none());
    assert_eq!(s.inbound(0xffff_fffe).unwrap().tunnel, 2);
    assert_eq!(s.inbound_len(), 1);
}

#[test]
fn writer_refuses_bad_changes() {
    let mut w = TableWriter::new(small(2, 2));
    w.add_inbound(inbound(7, 1, 0)).unwrap();
    assert_eq!(
        w.add_inbound(inbound(7, 0, 0)),
        Err(TableError::DuplicateSpi(7))
    );
    assert_eq!(
        w.add_inbound(inbound(8, 2, 0)),
        Err(TableError::OwnerOutOfRange {
            owner: 2,
            workers: 2
        })
    );
    w.add_inbound(inbound(8, 0, 0)).unwrap();
    assert_eq!(
        w.add_inbound(inbound(9, 0, 0)),
        Err(TableError::InboundFull { max: 2 })
    );

    assert_eq!(
        w.set_tunnel(tunnel(64, &["0.0.0.0/0"], &["10.0.0.0/8"])),
        Err(TableError::TunnelOutOfRange { id: 64, max: 64 })
    );
    assert_eq!(
        w.set_path(256, path("192.0.2.1:4500", "198.51.100.1:4500")),
        Err(TableError::PathOutOfRange { id: 256, max: 256 })
    );
    assert_eq!(
        w.set_path(3, path("192.0.2.1:4500", "[2001:db8::1]:4500")),
        Err(TableError::MixedFamilies(3))
    );
    assert!(w.path(3).is_none());
    assert_eq!(w.remove_path(3), Err(TableError::UnknownPath(3)));
    assert_eq!(w.remove_tunnel(5), Err(TableError::UnknownTunnel(5)));
    assert_eq!(w.remove_outbound(5), Err(TableError::UnknownTunnel(5)));

    // An outbound SA needs its tunnel and its path.
    assert_eq!(
        w.set_outbound(outbound(100, 5, 0)),
        Err(TableError::UnknownTunnel(5))
    );
    w.set_tunnel(tunnel(5, &["0.0.0.0/0"], &["10.0.0.0/8"]))
        .unwrap();
    assert_eq!(
        w.set_outbound(outbound(100, 5, 0)),
        Err(TableError::UnknownPath(0))
    );
    w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    let mut bad_owner = outbound(100, 5, 0);
    bad_owner.owner = 9;
    assert_eq!(
        w.set_outbound(bad_owner),
        Err(TableError::OwnerOutOfRange {
            owner: 9,
            workers: 2
        })
    );
    w.set_outbound(outbound(100, 5, 0)).unwrap();
    w.set_tunnel(tunnel(6, &["0.0.0.0/0"], &["10.9.0.0/16"]))
        .unwrap();
    w.set_outbound(outbound(101, 6, 0)).unwrap();
    w.set_tunnel(tunnel(7, &["0.0.0.0/0"], &["10.8.0.0/16"]))
        .unwrap();
    assert_eq!(
        w.set_outbound(outbound(102, 7, 0)),
        Err(TableError::OutboundFull { max: 2 })
    );
    // Refused changes leave the published state alone.
    w.publish();
    let s = w.published();
    assert_eq!(s.inbound_len(), 2);
    assert_eq!(s.outbound(5).unwrap().spi, 100);
    assert!(s.outbound(7).is_none());
    assert!(s.tunnel(7).is_some());
    // Errors print something a human can act on.
    assert!(TableError::DuplicateSpi(7)
        .to_string()
        .contains("0x00000007"));
}

#[test]
fn reader_handles_are_unique_and_bounded() {
    let mut w = TableWriter::new(small(2, 4));
    assert!(w.reader(0).is_some());
    assert!(w.reader(0).is_none());
    assert!(w.reader(1).is_some());
    assert!(w.reader(2).is_none());
    assert_eq!(w.config().workers, 2);
}

#[test]
fn policy_lookup_ipv4_and_ipv6() {
    let mut w = TableWriter::new(small(1, 16));
    w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    w.set_path(1, path("[2001:db8::1]:4500", "[2001:db8::2]:4500"))
        .unwrap();
    // Prefix selectors.
    w.set_tunnel(tunnel(1, &["10.0.0.0/24"], &["10.1.0.0/16"]))
        .unwrap();
    // Host selector more specific than tunnel 1's prefix.
    w.set_tunnel(tunnel(2, &["10.0.0.0/24"], &["10.1.2.3/32"]))
        .unwrap();
    // IPv6 prefix and host.
    w.set_tunnel(tunnel(3, &["2001:db8:ff::/64"], &["2001:db8:1::/48"]))
        .unwrap();
    w.set_tunnel(tunnel(4, &["2001:db8:ff::/64"], &["2001:db8:2::7/128"]))
        .unwrap();
    // A tunnel without an outbound SA.
    w.set_tunnel(tunnel(5, &["0.0.0.0/0"], &["172.16.0.0/12"]))
        .unwrap();
    for (spi, t, p) in [(0x11, 1, 0), (0x12, 2, 0), (0x13, 3, 1), (0x14, 4, 1)] {
        w.set_outbound(outbound(spi, t, p)).unwrap();
    }
    w.publish();
    let mut r = w.reader(0).unwrap();
    let s = r.begin_burst();
    let spi = |src: &str, dst: &str| s.lookup_outbound(ip(src), ip(dst)).map(|sa| sa.spi);
    assert_eq!(spi("10.0.0.5", "10.1.9.9"), Some(0x11));
    assert_eq!(spi("10.0.0.5", "10.1.2.3"), Some(0x12));
    assert_eq!(spi("10.0.0.5", "10.2.0.1"), None);
    // The source must match the local selectors too.
    assert_eq!(spi("10.0.1.5", "10.1.9.9"), None);
    assert_eq!(spi("2001:db8:ff::9", "2001:db8:1:5::1"), Some(0x13));
    assert_eq!(spi("2001:db8:ff::9", "2001:db8:2::7"), Some(0x14));
    assert_eq!(spi("2001:db8:ff::9", "2001:db8:2::8"), None);
    assert_eq!(spi("2001:db8:fe::9", "2001:db8:2::7"), None);
    // Families never mix: the IPv4-mapped form of a host selector is another address.
    assert_eq!(spi("::ffff:10.0.0.5", "::ffff:10.1.2.3"), None);
    // Matching tunnel but no SA: no match (the packet is dropped, not sent in clear).
    assert_eq!(spi("10.0.0.5", "172.16.0.1"), None);
    assert!(s.tunnel(5).is_some());
    let sa = s.outbound(3).unwrap();
    assert_eq!((sa.tunnel, sa.path), (3, 1));
    assert_eq!(
        s.path(sa.path).unwrap().spec.remote,
        "[2001:db8::2]:4500".parse().unwrap()
    );

    // Removing a tunnel removes its outbound SA and its selectors.
    w.remove_tunnel(2).unwrap();
    w.publish();
    let s = r.begin_burst();
    assert!(s.tunnel(2).is_none());
    assert!(s.outbound(2).is_none());
    assert_eq!(
        s.lookup_outbound(ip("10.0.0.5"), ip("10.1.2.3"))
            .map(|sa| sa.spi),
        Some(0x11)
    );
    // A rekey replaces the tunnel's outbound SA with a new installation.
    let old = (
        s.outbound(1).unwrap().slot,
        s.outbound(1).unwrap().install_id,
    );
    w.set_outbound(outbound(0x21, 1, 0)).unwrap();
    w.publish();
    let s = r.begin_burst();
    let new = s.outbound(1).unwrap();
    assert_eq!(new.spi, 0x21);
    assert_ne!(new.install_id, old.1);
    assert_ne!(
        new.slot, old.0,
        "the old SA's slot is reused only after reclamation"
    );
    w.remove_outbound(1).unwrap();
    w.publish();
    let s = r.begin_burst();
    assert!(s.outbound(1).is_none());
    assert!(s.tunnel(1).is_some());
}

#[test]
fn path_generations_increase_and_published_ns_marks_changes_only() {
    let mut w = TableWriter::new(small(1, 4));
    let mut r = w.reader(0).unwrap();
    // Paths 0 and 1 share a page; 100 is on another page.
    assert_eq!(
        w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500")),
        Ok(1)
    );
    assert_eq!(
        w.set_path(1, path("192.0.2.1:4500", "198.51.100.2:4500")),
        Ok(1)
    );
    assert_eq!(
        w.set_path(100, path("[2001:db8::1]:500", "[2001:db8::2]:4500")),
        Ok(1)
    );
    assert_eq!(w.path(0).unwrap().published_ns, 0);
    let p1 = w.publish();
    assert!(p1.published_ns > 0);
    let s = r.begin_burst();
    for id in [0, 1, 100] {
        let rec = s.path(id).unwrap();
        assert_eq!(rec.generation, 1);
        assert_eq!(rec.published_ns, p1.published_ns);
    }
    assert!(s.path(2).is_none());
    assert!(s.path(99).is_none());
    assert!(s.path(100_000).is_none());
    let unchanged_page_addr = s.path(100).unwrap() as *const _;
    let rec1_before = *s.path(1).unwrap();

    // Move path 0 only.
    assert_eq!(
        w.set_path(0, path("192.0.2.9:4500", "198.51.100.1:4500")),
        Ok(2)
    );
    let p2 = w.publish();
    assert!(p2.published_ns >= p1.published_ns);
    assert!(p2.generation > p1.generation);
    let s = r.begin_burst();
    let rec0 = s.path(0).unwrap();
    assert_eq!(rec0.generation, 2);
    assert_eq!(rec0.published_ns, p2.published_ns);
    assert_eq!(rec0.spec.local, "192.0.2.9:4500".parse().unwrap());
    // Same page, not changed: same record, old timestamp.
    assert_eq!(*s.path(1).unwrap(), rec1_before);
    // Other page: not even copied.
    assert!(std::ptr::eq(s.path(100).unwrap(), unchanged_page_addr));

    // A publication that does not touch paths keeps every page.
    let page0 = s.path(0).unwrap() as *const _;
    w.add_inbound(inbound(1, 0, 0)).unwrap();
    w.publish();
    let s = r.begin_burst();
    assert!(std::ptr::eq(s.path(0).unwrap(), page0));
    assert_eq!(s.path(0).unwrap().published_ns, p2.published_ns);

    // Removal, then re-adding: the generation keeps increasing, so a worker that cached
    // generation 2 cannot mistake the new record for the old one.
    w.remove_path(0).unwrap();
    w.publish();
    let s = r.begin_burst();
    assert!(s.path(0).is_none());
    assert_eq!(s.path(1).unwrap().generation, 1);
    assert_eq!(
        w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500")),
        Ok(3)
    );
    let p3 = w.publish();
    let s = r.begin_burst();
    assert_eq!(s.path(0).unwrap().generation, 3);
    assert_eq!(s.path(0).unwrap().published_ns, p3.published_ns);

    // Removed and re-added within one publication: still a change.
    w.remove_path(1).unwrap();
    assert_eq!(
        w.set_path(1, path("192.0.2.1:4500", "198.51.100.3:4500")),
        Ok(2)
    );
    let p4 = w.publish();
    let s = r.begin_burst();
    assert_eq!(s.path(1).unwrap().generation, 2);
    assert_eq!(s.path(1).unwrap().published_ns, p4.published_ns);
    assert_eq!(s.path(0).unwrap().published_ns, p3.published_ns);
}

#[test]
fn outbound_sas_follow_their_path() {
    let mut w = TableWriter::new(small(1, 8));
    let mut r = w.reader(0).unwrap();
    w.set_path(4, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    for t in 0..3 {
        w.set_tunnel(tunnel(
            t,
            &["10.0.0.0/24"],
            &[&format!("10.{}.0.0/16", t + 1)],
        ))
        .unwrap();
        w.set_outbound(outbound(0x100 + t, t, 4)).unwrap();
    }
    w.publish();
    let sa_addrs: Vec<*const _> = {
        let s = r.begin_burst();
        (0..3).map(|t| s.outbound(t).unwrap() as *const _).collect()
    };
    // One path publication moves all three SAs (RFC 4621 5.3) without copying them.
    w.set_path(4, path("192.0.2.77:4500", "198.51.100.1:4500"))
        .unwrap();
    w.publish();
    let s = r.begin_burst();
    for t in 0..3 {
        let sa = s.outbound(t).unwrap();
        assert!(std::ptr::eq(sa, sa_addrs[t as usize]));
        let rec = s.path(sa.path).unwrap();
        assert_eq!(rec.spec.local, "192.0.2.77:4500".parse().unwrap());
        assert_eq!(rec.generation, 2);
    }
}

#[test]
fn slots_are_recycled_only_after_every_reader_passed_a_quiescent_point() {
    let mut w = TableWriter::new(small(3, 1));
    let mut r0 = w.reader(0).unwrap();
    let mut r1 = w.reader(1).unwrap();
    // Worker 2 never starts: an offline reader never blocks anything.
    let _r2 = w.reader(2).unwrap();
    r0.begin_burst();
    r1.begin_burst();

    w.add_inbound(inbound(0xa, 0, 0)).unwrap();
    w.publish();
    let (slot_a, id_a) = {
        let s = r0.begin_burst();
        let a = s.inbound(0xa).unwrap();
        (a.slot, a.install_id)
    };
    r1.begin_burst();

    w.remove_inbound(0xa).unwrap();
    w.publish();
    // Both readers may still be using SA 0xa: its slot is not free.
    assert_eq!(
        w.add_inbound(inbound(0xb, 0, 0)),
        Err(TableError::InboundFull { max: 1 })
    );
    r0.begin_burst();
    assert_eq!(w.reclaim(), 0);
    assert_eq!(
        w.add_inbound(inbound(0xb, 0, 0)),
        Err(TableError::InboundFull { max: 1 })
    );
    // r1 never comes back: however often the writer tries, the slot stays taken.
    for _ in 0..3 {
        r0.begin_burst();
        w.publish();
        w.reclaim();
    }
    assert!(w.pending_reclaim() > 0);
    assert_eq!(
        w.add_inbound(inbound(0xb, 0, 0)),
        Err(TableError::InboundFull { max: 1 })
    );
    // Going offline releases it.
    r1.offline();
    assert!(w.reclaim() > 0);
    w.add_inbound(inbound(0xb, 0, 0)).unwrap();
    w.publish();
    let s = r0.begin_burst();
    let b = s.inbound(0xb).unwrap();
    assert_eq!(b.slot, slot_a);
    assert_ne!(b.install_id, id_a);

    // An offline reader that comes back is waited for again.
    r1.begin_burst();
    w.remove_inbound(0xb).unwrap();
    w.publish();
    r0.begin_burst();
    w.reclaim();
    assert_eq!(
        w.add_inbound(inbound(0xc, 0, 0)),
        Err(TableError::InboundFull { max: 1 })
    );
    r1.begin_burst();
    w.reclaim();
    w.add_inbound(inbound(0xc, 0, 0)).unwrap();
}

#[test]
fn a_slot_never_published_is_free_at_once() {
    // Between two publications no worker can have seen an SA, so removing it frees its
    // slot right away (a burst of adds and removes between publications must not run out).
    let mut w = TableWriter::new(small(1, 2));
    let mut r = w.reader(0).unwrap();
    r.begin_burst();
    w.add_inbound(inbound(0xa, 0, 0)).unwrap();
    w.add_inbound(inbound(0xb, 0, 0)).unwrap();
    w.remove_inbound(0xa).unwrap();
    w.add_inbound(inbound(0xc, 0, 0)).unwrap();
    w.publish();
    let s = r.begin_burst();
    assert!(s.inbound(0xa).is_none());
    assert!(s.inbound(0xb).is_some() && s.inbound(0xc).is_some());

    // Published then removed: the slot waits for the reader, as before.
    w.remove_inbound(0xb).unwrap();
    assert_eq!(
        w.add_inbound(inbound(0xd, 0, 0)),
        Err(TableError::InboundFull { max: 2 })
    );

    // The same for outbound SAs: a rekey staged twice before publishing reuses the slot
    // of the one that never went out.
    let mut w = TableWriter::new(small(1, 2));
    w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    w.set_tunnel(tunnel(0, &["0.0.0.0/0"], &["0.0.0.0/0"]))
        .unwrap();
    w.set_outbound(outbound(1, 0, 0)).unwrap();
    w.set_outbound(outbound(2, 0, 0)).unwrap();
    w.set_outbound(outbound(3, 0, 0)).unwrap();
    w.remove_outbound(0).unwrap();
    w.set_outbound(outbound(4, 0, 0)).unwrap();
}

#[test]
fn outbound_slots_wait_for_readers_too() {
    let mut w = TableWriter::new(small(1, 1));
    let mut r = w.reader(0).unwrap();
    w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    w.set_tunnel(tunnel(0, &["0.0.0.0/0"], &["0.0.0.0/0"]))
        .unwrap();
    w.set_outbound(outbound(1, 0, 0)).unwrap();
    w.publish();
    r.begin_burst();
    // Rekey needs a second slot while the first may still be in use.
    assert_eq!(
        w.set_outbound(outbound(2, 0, 0)),
        Err(TableError::OutboundFull { max: 1 })
    );
    w.remove_outbound(0).unwrap();
    w.publish();
    assert_eq!(
        w.set_outbound(outbound(2, 0, 0)),
        Err(TableError::OutboundFull { max: 1 })
    );
    r.begin_burst();
    w.reclaim();
    w.set_outbound(outbound(2, 0, 0)).unwrap();
}

#[test]
fn retired_versions_are_freed_only_after_readers_moved_on() {
    let mut w = TableWriter::new(small(2, 8));
    let mut r0 = w.reader(0).unwrap();
    let mut r1 = w.reader(1).unwrap();
    w.add_inbound(inbound(1, 0, 0)).unwrap();
    w.publish();
    r0.begin_burst();
    r1.begin_burst();
    let gen_held = w.published().generation();

    w.add_inbound(inbound(2, 0, 0)).unwrap();
    w.publish();
    let weak = w.retired_weak();
    assert_eq!(weak.len(), 1);
    assert_eq!(weak[0].upgrade().unwrap().generation(), gen_held);
    assert_eq!(w.reclaim(), 0);

    r0.begin_burst();
    assert_eq!(w.reclaim(), 0);
    assert!(weak[0].upgrade().is_some(), "r1 may still hold it");

    // r1 goes offline without another burst: nothing of it may stay alive.
    r1.offline();
    assert_eq!(w.reclaim(), 1);
    assert_eq!(w.pending_reclaim(), 0);
    assert!(weak[0].upgrade().is_none(), "freed by the writer");

    // A chain of versions behind one slow reader is freed at once when it moves on.
    let mut chain = Vec::new();
    r1.begin_burst();
    for spi in 10..15 {
        w.add_inbound(inbound(spi, 1, 0)).unwrap();
        w.publish();
        r0.begin_burst();
        chain.extend(w.retired_weak());
    }
    assert!(w.pending_reclaim() >= 5);
    assert!(chain.iter().any(|x| x.upgrade().is_some()));
    r1.begin_burst();
    assert!(w.reclaim() >= 5);
    assert_eq!(w.pending_reclaim(), 0);
    assert!(chain.iter().all(|x| x.upgrade().is_none()));

    // Dropping the readers releases everything too.
    w.add_inbound(inbound(20, 0, 0)).unwrap();
    w.publish();
    let weak = w.retired_weak();
    drop(r0);
    drop(r1);
    w.reclaim();
    assert!(weak.iter().all(|x| x.upgrade().is_none()));
}

#[test]
fn readers_that_never_started_hold_nothing() {
    let mut w = TableWriter::new(small(1, 8));
    w.add_inbound(inbound(1, 0, 0)).unwrap();
    w.publish();
    // The reader is created while this version is current, but never starts a burst.
    let weak = std::sync::Arc::downgrade(&w.published());
    let _r = w.reader(0).unwrap();
    w.add_inbound(inbound(2, 0, 0)).unwrap();
    w.publish();
    assert_eq!(w.pending_reclaim(), 0);
    assert!(weak.upgrade().is_none());
}

#[test]
fn tunnels_to_the_same_host_are_told_apart_by_source() {
    // Two tunnels with the same remote host selector and different local selectors: each
    // gets the traffic from its own local subnet (the policy once kept only the first
    // tunnel per host and sent the second one's traffic nowhere).
    let mut w = TableWriter::new(small(1, 8));
    w.set_path(0, path("192.0.2.1:4500", "198.51.100.1:4500"))
        .unwrap();
    w.set_tunnel(tunnel(1, &["192.168.0.0/24"], &["10.0.0.1"]))
        .unwrap();
    w.set_tunnel(tunnel(2, &["192.168.1.0/24"], &["10.0.0.1"]))
        .unwrap();
    w.set_outbound(outbound(0x100, 1, 0)).unwrap();
    w.set_outbound(outbound(0x200, 2, 0)).unwrap();
    w.publish();
    let s = w.published();
    let spi = |src: &str| s.lookup_outbound(ip(src), ip("10.0.0.1")).map(|o| o.spi);
    assert_eq!(spi("192.168.0.9"), Some(0x100));
    assert_eq!(spi("192.168.1.9"), Some(0x200));
    assert_eq!(spi("192.168.2.9"), None);
    // Removing the first leaves the second in place.
    w.remove_tunnel(1).unwrap();
    w.publish();
    let s = w.published();
    assert_eq!(
        s.lookup_outbound(ip("192.168.1.9"), ip("10.0.0.1"))
            .map(|o| o.spi),
        Some(0x200)
    );
    assert_eq!(
        s.lookup_outbound(ip("192.168.0.9"), ip("10.0.0.1"))
            .map(|o| o.spi),
        None
    );
}
