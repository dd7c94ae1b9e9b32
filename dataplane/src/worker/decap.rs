//! A worker's inbound path, cipher side to clear side: the outer headers checked and
//! stripped; UDP port 4500 split into ESP, IKE (punted to the control plane) and
//! NAT-keepalives (RFC 3948 2.1-2.3); ESP decapsulated (RFC 4303 3.4) by the SA's owner,
//! with its replay window (3.4.3, kept in `inbound`); the inner packet checked against
//! the SA's selectors (RFC 4301 5.2) and framed for the clear port. A packet of an SA
//! that another worker owns is handed to that worker.

use super::{stage_one, Core, ForwardMode, Stage, TAG_INBOUND};
use crate::buf::PacketBuf;
use crate::esp;
use crate::fabric::{Fabric, WorkerEvent};
use crate::io::{BurstIo, Layer};
use crate::ip;
use crate::natt::{self, Udp4500};
use shared::clock::now_ns;
use shared::counters::Counter;
use shared::path::Encap;
use shared::table::Snapshot;

pub(super) enum InVerdict {
    Clear,
    Drop(Counter),
    /// Absorbed here (keepalive) or moved elsewhere (punt, handoff).
    Consumed,
}

impl Core {
    /// A packet from the cipher side: strip and check the outer headers, then ESP.
    #[inline]
    pub(super) fn cipher_rx(
        &mut self,
        snap: &Snapshot,
        buf: &mut PacketBuf,
        fabric: &Fabric,
    ) -> InVerdict {
        let encap = match self.cipher_layer {
            Layer::Datagram => Encap::Udp,
            layer => {
                let outer = match ip::parse_outer(buf.data(), layer) {
                    Ok(o) => o,
                    Err(e) => return InVerdict::Drop(e.counter()),
                };
                if outer.encap == Encap::Udp && outer.dst.port() != self.cfg.natt_port {
                    return InVerdict::Drop(Counter::DropNotForUs);
                }
                let base = buf.headroom();
                if !buf.set_window(base + outer.payload.start, base + outer.payload.end) {
                    return InVerdict::Drop(Counter::DropRunt);
                }
                buf.meta.src = outer.src;
                buf.meta.dst = outer.dst;
                outer.encap
            }
        };
        if self.cfg.mode == ForwardMode::Plain {
            return self.deliver(snap, buf, None);
        }
        if encap == Encap::Udp {
            // RFC 3948 2.2: one UDP port carries ESP, IKE (non-ESP marker) and keepalives.
            match natt::classify(buf.data()) {
                Udp4500::Esp => {}
                Udp4500::Keepalive => {
                    self.cnt.inc(Counter::KeepaliveRx);
                    return InVerdict::Consumed;
                }
                Udp4500::Ike => {
                    buf.pull_front(natt::NON_ESP_MARKER.len());
                    if fabric.punt.send_swap(buf) {
                        self.punted = true;
                        self.cnt.inc(Counter::PuntIke);
                        return InVerdict::Consumed;
                    }
                    return InVerdict::Drop(Counter::DropPuntFull);
                }
                Udp4500::Runt => return InVerdict::Drop(Counter::DropRunt),
            }
        }
        self.esp_in(snap, buf, fabric)
    }

    /// ESP packet in `buf` (SPI first): owner check, decrypt, policy check.
    #[inline]
    pub(super) fn esp_in(
        &mut self,
        snap: &Snapshot,
        buf: &mut PacketBuf,
        fabric: &Fabric,
    ) -> InVerdict {
        let Some(spi) = esp::spi_of(buf.data()) else {
            return InVerdict::Drop(Counter::DropRunt);
        };
        let Some(sa) = snap.inbound(spi) else {
            return InVerdict::Drop(Counter::DropUnknownSpi);
        };
        if sa.owner != self.cfg.id {
            return self.hand_off(sa.owner, TAG_INBOUND, buf, fabric);
        }
        let Some(st) = self
            .inb
            .get(sa.slot, sa.install_id, spi, sa.replay_window, sa.esn)
        else {
            return InVerdict::Drop(Counter::DropUnknownSpi);
        };
        let src = buf.meta.src;
        let nh = match esp::decap(&sa.key, sa.esn, &mut st.window, buf) {
            Ok(nh) => nh,
            Err(e) => return InVerdict::Drop(e.counter()),
        };
        if st.last_src != Some(src) {
            if let Some(from) = st.last_src {
                let _ = fabric.events.push(WorkerEvent::PeerMoved {
                    worker: self.cfg.id,
                    spi,
                    from,
                    to: src,
                    rx_ns: now_ns(),
                });
            }
            st.last_src = Some(src);
        }
        if nh != esp::NH_IPV4 && nh != esp::NH_IPV6 {
            // Includes RFC 4303 2.6 dummy packets (59), which are dropped silently.
            return InVerdict::Drop(Counter::DropBadInner);
        }
        self.deliver(snap, buf, Some(sa.tunnel))
    }

    /// A decrypted (or, in plain mode, received) inner packet: check and frame it for the
    /// clear side.
    #[inline]
    fn deliver(
        &mut self,
        snap: &Snapshot,
        buf: &mut PacketBuf,
        tunnel: Option<shared::policy::TunnelId>,
    ) -> InVerdict {
        let info = match ip::inner_info(buf.data()) {
            Ok(i) => i,
            Err(e) => return InVerdict::Drop(e.counter()),
        };
        if let Some(t) = tunnel {
            // RFC 4301 5.2: the inner packet must match the SA's selectors.
            match snap.tunnel(t) {
                Some(tun) if tun.matches_inbound(info.src, info.dst) => {}
                _ => return InVerdict::Drop(Counter::DropPolicyMismatch),
            }
        }
        buf.truncate(info.total_len);
        self.cnt.inc(Counter::DecapPackets);
        self.cnt.add(Counter::DecapBytes, info.total_len as u64);
        if self.clear_layer == Layer::Ethernet {
            let ethertype = if info.next_header == esp::NH_IPV4 {
                0x0800
            } else {
                0x86dd
            };
            let l2 = self.cfg.clear_l2.unwrap_or_default();
            if ip::push_ethernet(buf, &l2, ethertype).is_err() {
                return InVerdict::Drop(Counter::DropNoTailroom);
            }
        }
        InVerdict::Clear
    }
}

/// Acts on the verdict for a packet bound for the clear side.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_in<L: BurstIo>(
    core: &mut Core,
    snap: &Snapshot,
    v: InVerdict,
    b: &mut PacketBuf,
    clear: &mut L,
    to_clear: &mut Stage,
    fabric: &Fabric,
    me: usize,
) {
    match v {
        InVerdict::Clear => {
            stage_one(
                clear,
                to_clear,
                &mut core.cnt,
                Counter::TxClear,
                snap,
                fabric,
                me,
                b,
            );
        }
        InVerdict::Drop(c) => core.cnt.inc(c),
        InVerdict::Consumed => {}
    }
}
