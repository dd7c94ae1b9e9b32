//! Answers to `mobiked ctl`: the IKE SAs with their children, the counters, the
//! paths, and MOBIKE moves by hand (RFC 4555 3.5: only the initiator moves).

use super::{hex_spi, Engine};
use crate::ctl::{ChildSaInfo, IkeSaInfo, PathInfo, Request, Response};
use crate::ike::conn::Selector;
use shared::path::Encap;
use std::net::{Ipv4Addr, SocketAddr};

fn unspecified() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

pub(super) fn handle(
    e: &mut Engine,
    now: u64,
    req: Request,
    extra: Vec<(String, u64)>,
) -> Response {
    let (ep, inst, names, w) = (&mut e.ep, &e.installer, &e.names, &e.writer);
    // Where an IKE SA's path runs, as installed: (local, remote, UDP-encapsulated).
    let path_of = |p| {
        let spec = w.path(p).map(|r| r.spec);
        let (l, r) = spec.map_or((unspecified(), unspecified()), |s| (s.local, s.remote));
        (l, r, spec.is_some_and(|s| s.encap == Encap::Udp))
    };
    match req {
        Request::Sas => Response::Sas {
            sas: inst
                .sas()
                .into_iter()
                .map(|s| (s, path_of(s.path), ep.peer_of(s.sa)))
                .map(|(s, (local, remote, encap), (peer, vip))| IkeSaInfo {
                    spi: hex_spi(s.sa),
                    conn: names.get(s.conn).cloned().unwrap_or_default(),
                    initiator: s.initiator,
                    local,
                    remote,
                    encap,
                    peer_id: peer.map(|i| i.to_string()),
                    vip,
                    path: s.path,
                    age_ms: now.saturating_sub(s.up_ns) / 1_000_000,
                    children: inst
                        .children_of(s.sa)
                        .into_iter()
                        .map(|c| {
                            let (l, r) = ep.child_selectors(s.sa, c.id).unwrap_or_default();
                            ChildSaInfo {
                                id: c.id,
                                spi_in: format!("{:08x}", c.spi_in),
                                spi_out: format!("{:08x}", c.spi_out),
                                encr: c.cipher.name().to_string(),
                                esn: c.esn,
                                local_ts: ts_strings(l),
                                remote_ts: ts_strings(r),
                                tunnel: c.tunnel,
                                outbound: c.outbound,
                            }
                        })
                        .collect(),
                })
                .collect(),
        },
        Request::Stats => {
            let mut counters = e.stats();
            counters.extend(extra);
            Response::Stats { counters }
        }
        Request::Paths => {
            let snap = e.writer.published();
            Response::Paths {
                paths: inst
                    .sas()
                    .into_iter()
                    .map(|s| {
                        let rec = snap.path(s.path);
                        let (local, remote, udp) = path_of(s.path);
                        PathInfo {
                            name: hex_spi(s.sa),
                            id: s.path,
                            local,
                            remote,
                            encap: if udp { "udp".into() } else { "esp".into() },
                            generation: rec.map_or(0, |r| r.generation),
                            published_ns: rec.map_or(0, |r| r.published_ns),
                        }
                    })
                    .collect(),
            }
        }
        Request::PathSet { .. } => Response::Error {
            message: "paths of IKE SAs move by MOBIKE, not by hand: use `move`".into(),
        },
        Request::Move {
            target,
            local,
            remote,
        } => {
            let by_name = inst
                .sas()
                .into_iter()
                .find(|s| names.get(s.conn) == Some(&target))
                .map(|s| s.sa);
            let by_spi = u64::from_str_radix(target.trim_start_matches("0x"), 16)
                .ok()
                .filter(|spi| ep.path(*spi).is_some());
            let Some(sa) = by_name.or(by_spi) else {
                return Response::Error {
                    message: format!("no established IKE SA named `{target}` (a connection name or an IKE SPI in hex)"),
                };
            };
            if !ep.mobike(sa) {
                return Response::Error {
                    message: format!(
                        "IKE SA {}: MOBIKE is off (set `mobike: true` on both ends)",
                        hex_spi(sa)
                    ),
                };
            }
            if ep.migrate(now, sa, local, remote) {
                Response::Moving { sa: hex_spi(sa) }
            } else {
                Response::Error {
                    message: format!("IKE SA {}: cannot move to {local} -> {remote} (only the initiator moves; both addresses of one family)", hex_spi(sa)),
                }
            }
        }
    }
}

fn ts_strings(ts: &[Selector]) -> Vec<String> {
    ts.iter()
        .map(|s| {
            let (a, l) = s.covering_prefix();
            let mut t = format!("{a}/{l}");
            if s.protocol != 0 {
                t.push_str(&format!("[{}/{}-{}]", s.protocol, s.start_port, s.end_port));
            }
            t
        })
        .collect()
}
