//! `clear:`: the inner (protected) side, on a TUN device (`tun`) or on an Ethernet
//! interface (`afpacket`).

use super::backend::{head, rx_keys_only_with_afpacket, rx_ring, RxRingConf};
use super::value::{parse_mac, Ctx, S};
use serde_saphyr::Spanned;
use std::path::PathBuf;

/// The inner (protected) side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearConf {
    pub backend: ClearBackend,
    pub pcap: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClearBackend {
    Tun {
        name: String,
    },
    AfPacket {
        interface: String,
        /// Destination MAC of decrypted packets (the protected host or router);
        /// broadcast when not given.
        next_hop_mac: Option<[u8; 6]>,
        rx: RxRingConf,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClear {
    pub(super) backend: Option<S>,
    pub(super) name: Option<S>,
    pub(super) interface: Option<S>,
    pub(super) next_hop_mac: Option<S>,
    pub(super) rx_ring: Option<S>,
    pub(super) rx_block_timeout_ms: Option<S>,
    pub(super) pcap: Option<S>,
}

pub(super) fn validate(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawClear>>) -> Option<ClearConf> {
    let Some(raw) = raw else {
        cx.errs.push(
            "clear",
            None,
            "required section is missing",
            "add `clear:` with `backend: tun` and `name: mtun0` (the protected side)",
        );
        return None;
    };
    let r = &raw.value;
    let (pcap, backend) = head(
        cx,
        "clear",
        raw.referenced,
        r.pcap.as_ref(),
        r.backend.as_ref(),
        ["tun", "afpacket"],
    );
    let backend = match backend? {
        "tun" => {
            cx.only_with(
                "clear.interface",
                r.interface.as_ref().map(|v| v.referenced),
                "afpacket",
                "tun",
            );
            cx.only_with(
                "clear.next_hop_mac",
                r.next_hop_mac.as_ref().map(|v| v.referenced),
                "afpacket",
                "tun",
            );
            rx_keys_only_with_afpacket(
                cx,
                "clear",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
                "tun",
            );
            let Some(n) = &r.name else {
                cx.missing(
                    "clear.name",
                    Some(raw.referenced),
                    "add `name: mtun0`, the TUN interface to attach or create",
                );
                return None;
            };
            let name = cx.ifname("clear.name", n)?;
            if r.interface.is_some() {
                return None;
            }
            ClearBackend::Tun { name }
        }
        _ => {
            cx.only_with(
                "clear.name",
                r.name.as_ref().map(|v| v.referenced),
                "tun",
                "afpacket",
            );
            let Some(i) = &r.interface else {
                cx.missing(
                    "clear.interface",
                    Some(raw.referenced),
                    "add `interface: NAME`, the Ethernet interface of the protected side",
                );
                return None;
            };
            let interface = cx.ifname("clear.interface", i)?;
            let next_hop_mac = match &r.next_hop_mac {
                None => None,
                Some(v) => match parse_mac(&v.value) {
                    Some(m) => Some(m),
                    None => {
                        cx.err(
                            "clear.next_hop_mac",
                            v.referenced,
                            format!("`{}` is not a MAC address", v.value),
                            "write the protected host's MAC as six hex pairs, e.g. 02:00:00:00:00:01, or remove the key to broadcast",
                        );
                        return None;
                    }
                },
            };
            let rx = rx_ring(
                cx,
                "clear",
                r.rx_ring.as_ref(),
                r.rx_block_timeout_ms.as_ref(),
            )?;
            if r.name.is_some() {
                return None;
            }
            ClearBackend::AfPacket {
                interface,
                next_hop_mac,
                rx,
            }
        }
    };
    pcap.map(|pcap| ClearConf { backend, pcap })
}
