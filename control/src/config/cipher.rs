//! `cipher:`: the outer (encrypted) side, on UDP sockets (`udp`) or on an Ethernet
//! interface (`afpacket`).

use super::backend::{head, rx_keys_only_with_afpacket, rx_ring, RxRingConf};
use super::value::{Ctx, List, S};
use serde_saphyr::Spanned;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The outer (encrypted) side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CipherConf {
    pub backend: CipherBackend,
    pub pcap: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CipherBackend {
    Udp {
        bind: Vec<SocketAddr>,
        gso: bool,
        gro: bool,
    },
    AfPacket {
        interface: String,
        rx: RxRingConf,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCipher {
    pub(super) backend: Option<S>,
    pub(super) bind: Option<List>,
    pub(super) interface: Option<S>,
    pub(super) rx_ring: Option<S>,
    pub(super) rx_block_timeout_ms: Option<S>,
    pub(super) gso: Option<S>,
    pub(super) gro: Option<S>,
    pub(super) pcap: Option<S>,
}

pub(super) fn validate(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawCipher>>) -> Option<CipherConf> {
    let Some(raw) = raw else {
        cx.errs.push(
            "cipher",
            None,
            "required section is missing",
            "add `cipher:` with `backend: udp` and `bind: [IP:4500]` (the encrypted side)",
        );
        return None;
    };
    let r = &raw.value;
    let (pcap, backend) = head(
        cx,
        "cipher",
        raw.referenced,
        r.pcap.as_ref(),
        r.backend.as_ref(),
        ["udp", "afpacket"],
    );
    let backend = match backend? {
        "udp" => {
            rx_keys_only_with_afpacket(
                cx,
                "cipher",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
                "udp",
            );
            cx.only_with(
                "cipher.interface",
                r.interface.as_ref().map(|v| v.referenced),
                "afpacket",
                "udp",
            );
            let gso = r
                .gso
                .as_ref()
                .map_or(Some(true), |v| cx.boolean("cipher.gso", v));
            let gro = r
                .gro
                .as_ref()
                .map_or(Some(true), |v| cx.boolean("cipher.gro", v));
            let mut bind = Vec::new();
            let mut ok = r.interface.is_none();
            match &r.bind {
                None => {
                    cx.missing(
                        "cipher.bind",
                        Some(raw.referenced),
                        "add `bind: [\"IP:4500\"]` with the local addresses to listen on",
                    );
                    ok = false;
                }
                Some(list) if list.value.is_empty() => {
                    cx.err(
                        "cipher.bind",
                        list.referenced,
                        "no address to listen on",
                        "add at least one IP:PORT, e.g. 0.0.0.0:4500",
                    );
                    ok = false;
                }
                Some(list) => {
                    for (i, v) in list.value.iter().enumerate() {
                        let p = format!("cipher.bind[{i}]");
                        match cx.socket_addr(&p, v) {
                            Some(a) if bind.contains(&a) => {
                                cx.err(
                                    &p,
                                    v.referenced,
                                    format!("{a} is listed twice"),
                                    "remove the duplicate",
                                );
                                ok = false;
                            }
                            Some(a) if a.port() == 0 => {
                                cx.err(
                                    &p,
                                    v.referenced,
                                    "port 0 is not a fixed port",
                                    "use the NAT-T port, e.g. 4500 (RFC 3948)",
                                );
                                ok = false;
                            }
                            Some(a) => bind.push(a),
                            None => ok = false,
                        }
                    }
                }
            }
            if !ok {
                return None;
            }
            CipherBackend::Udp {
                bind,
                gso: gso?,
                gro: gro?,
            }
        }
        _ => {
            cx.only_with(
                "cipher.bind",
                r.bind.as_ref().map(|l| l.referenced),
                "udp",
                "afpacket",
            );
            cx.only_with(
                "cipher.gso",
                r.gso.as_ref().map(|v| v.referenced),
                "udp",
                "afpacket",
            );
            cx.only_with(
                "cipher.gro",
                r.gro.as_ref().map(|v| v.referenced),
                "udp",
                "afpacket",
            );
            let Some(i) = &r.interface else {
                cx.missing(
                    "cipher.interface",
                    Some(raw.referenced),
                    "add `interface: NAME`, the Ethernet interface of the encrypted side",
                );
                return None;
            };
            let interface = cx.ifname("cipher.interface", i)?;
            let rx = rx_ring(
                cx,
                "cipher",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
            )?;
            if r.bind.is_some() || r.gso.is_some() || r.gro.is_some() {
                return None;
            }
            CipherBackend::AfPacket { interface, rx }
        }
    };
    pcap.map(|pcap| CipherConf { backend, pcap })
}
