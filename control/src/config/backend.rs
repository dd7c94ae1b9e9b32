//! What the two sides (`cipher:` and `clear:`) share: the receive ring keys of the
//! afpacket backend, whose kinds and limits come from [`shared::rx_ring`], the
//! definition the afpacket backend opens its ring by.

use super::value::{Ctx, S};
use serde_saphyr::Location;
use shared::rx_ring::{RxRing, BLOCK_TIMEOUT_MS};
use std::path::PathBuf;

/// How an afpacket port's receive ring hands frames over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRingConf {
    /// `blocks` (TPACKET_V3: throughput) or `frames` (TPACKET_V2: each frame at once).
    pub ring: RxRing,
    /// With `blocks`: a partly filled block is handed over after this long.
    pub block_timeout_ms: u32,
}

impl Default for RxRingConf {
    fn default() -> Self {
        RxRingConf {
            ring: RxRing::V3Blocks,
            block_timeout_ms: 1,
        }
    }
}

/// `rx_ring` / `rx_block_timeout_ms` of an afpacket side.
pub(super) fn rx_ring(
    cx: &mut Ctx<'_>,
    side: &str,
    ring: Option<&S>,
    timeout: Option<&S>,
) -> Option<RxRingConf> {
    let mut rx = RxRingConf::default();
    if let Some(v) = ring {
        let name = cx.choice(&format!("{side}.rx_ring"), v, &RxRing::NAMES)?;
        rx.ring = name.parse().ok()?;
    }
    if let Some(v) = timeout {
        let path = format!("{side}.rx_block_timeout_ms");
        if rx.ring == RxRing::V2Frames {
            cx.err(
                &path,
                v.referenced,
                "frame rings hand every frame over at once; there is no block to time out",
                "remove it, or set `rx_ring: blocks`",
            );
            return None;
        }
        let range = u64::from(*BLOCK_TIMEOUT_MS.start())..=u64::from(*BLOCK_TIMEOUT_MS.end());
        let ms = cx.uint(&path, v, range, "milliseconds")?;
        rx.block_timeout_ms = ms as u32;
    }
    Some(rx)
}

pub(super) fn rx_keys_only_with_afpacket(
    cx: &mut Ctx<'_>,
    side: &str,
    ring: Option<&S>,
    timeout: Option<&S>,
    backend: &str,
) {
    for (key, v) in [("rx_ring", ring), ("rx_block_timeout_ms", timeout)] {
        cx.only_with(
            &format!("{side}.{key}"),
            v.map(|v| v.referenced),
            "afpacket",
            backend,
        );
    }
}

/// What every side starts with (`side` is `cipher` or `clear`, written at `at`): its
/// `pcap` file (`Some(None)` when not given, `None` when unusable) and its `backend`,
/// one of `backends` (`None` when missing or unknown). Errors are reported.
pub(super) fn head<'c>(
    cx: &mut Ctx<'_>,
    side: &str,
    at: Location,
    pcap: Option<&S>,
    backend: Option<&S>,
    backends: [&'c str; 2],
) -> (Option<Option<PathBuf>>, Option<&'c str>) {
    let pcap = match pcap {
        None => Some(None),
        Some(v) => cx.file_path(&format!("{side}.pcap"), v).map(Some),
    };
    let path = format!("{side}.backend");
    let Some(b) = backend else {
        let [a, b] = backends;
        cx.missing(
            &path,
            Some(at),
            format!("add `backend: {a}` or `backend: {b}`"),
        );
        return (pcap, None);
    };
    (pcap, cx.choice(&path, b, &backends))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ClearBackend, RxRingConf};
    use shared::rx_ring::{RxRing, BLOCK_TIMEOUT_MS};

    /// The receive ring of an afpacket clear side written as `rx`.
    fn clear_rx(rx: &str) -> Option<RxRingConf> {
        let text = format!(
            "cipher: {{ backend: udp, bind: ['192.0.2.1:4500'] }}\n\
             clear: {{ backend: afpacket, interface: eth1, {rx} }}\n\
             connections:\n  - name: c\n    psk: a long secret\n    peeraddr: 192.0.2.2\n"
        );
        match parse(&text).ok()?.clear.backend {
            ClearBackend::AfPacket { rx, .. } => Some(rx),
            ClearBackend::Tun { .. } => None,
        }
    }

    /// The configuration accepts exactly the ring kinds and block timeouts the afpacket
    /// backend opens a ring with: both read `shared::rx_ring`.
    #[test]
    fn ring_settings_are_the_backends() {
        for ring in RxRing::ALL {
            let rx = clear_rx(&format!("rx_ring: {}", ring.name())).unwrap();
            assert_eq!(rx.ring, ring);
        }
        let (lo, hi) = (*BLOCK_TIMEOUT_MS.start(), *BLOCK_TIMEOUT_MS.end());
        for ms in [lo, hi] {
            let rx = clear_rx(&format!("rx_block_timeout_ms: {ms}")).unwrap();
            assert_eq!(rx.block_timeout_ms, ms);
        }
        assert_eq!(clear_rx(&format!("rx_block_timeout_ms: {}", lo - 1)), None);
        assert_eq!(clear_rx(&format!("rx_block_timeout_ms: {}", hi + 1)), None);
    }
}
