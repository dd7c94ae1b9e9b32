//! A worker's outbound path, clear side to cipher side: the SA found by the policy
//! lookup on the inner addresses (RFC 4301 5.1); ESP encapsulation (RFC 4303 3.3) with
//! the owner's sequence number, which must not cycle (3.3.3); the outer header written
//! from the path's prebuilt template, UDP-encapsulated where the path says so (RFC 3948
//! 2.1). In plain mode: the same lookups and framing, without ESP. A packet of an SA
//! that another worker owns is handed to that worker.

use super::{frame_path, grow_to, stage_one, Core, ForwardMode, InVerdict, Stage, TAG_OUTBOUND};
use crate::buf::PacketBuf;
use crate::esp;
use crate::fabric::Fabric;
use crate::io::{BurstIo, Layer};
use crate::ip;
use shared::counters::Counter;
use shared::path::{PathId, PathRecord};
use shared::table::Snapshot;

pub(super) enum OutVerdict {
    /// To the cipher side; `Some` if first on a new generation of that path.
    Cipher(Option<(PathId, u64)>),
    Drop(Counter),
    Consumed,
}

impl Core {
    /// A packet from the clear side: policy lookup, encrypt, outer header from the path.
    #[inline]
    pub(super) fn clear_rx(
        &mut self,
        snap: &Snapshot,
        buf: &mut PacketBuf,
        now: u64,
        fabric: &Fabric,
    ) -> OutVerdict {
        if self.clear_layer == Layer::Ethernet {
            match ip::strip_ethernet(buf) {
                Ok(0x0800) | Ok(0x86dd) => {}
                Ok(_) => return OutVerdict::Drop(Counter::DropNotForUs),
                Err(e) => return OutVerdict::Drop(e.counter()),
            }
        }
        self.esp_out(snap, buf, now, fabric)
    }

    #[inline]
    pub(super) fn esp_out(
        &mut self,
        snap: &Snapshot,
        buf: &mut PacketBuf,
        now: u64,
        fabric: &Fabric,
    ) -> OutVerdict {
        let info = match ip::inner_info(buf.data()) {
            Ok(i) => i,
            Err(e) => return OutVerdict::Drop(e.counter()),
        };
        buf.truncate(info.total_len);
        let Some(sa) = snap.lookup_outbound(info.src, info.dst) else {
            return OutVerdict::Drop(Counter::DropNoPolicy);
        };
        if sa.owner != self.cfg.id {
            return match self.hand_off(sa.owner, TAG_OUTBOUND, buf, fabric) {
                InVerdict::Drop(c) => OutVerdict::Drop(c),
                _ => OutVerdict::Consumed,
            };
        }
        let Some(path) = snap.path(sa.path) else {
            return OutVerdict::Drop(Counter::DropNoSa);
        };
        if self.cfg.mode == ForwardMode::Esp {
            let Some(st) = grow_to(&mut self.outb, sa.slot as usize, self.cfg.max_outbound) else {
                return OutVerdict::Drop(Counter::DropNoSa);
            };
            if st.install_id != sa.install_id {
                st.install_id = sa.install_id;
                st.seq = 0;
            }
            let seq = st.seq + 1;
            // RFC 4303 3.3.3: the counter must not cycle; the SA needs a rekey.
            if (!sa.esn && seq > u32::MAX as u64) || seq == u64::MAX {
                return OutVerdict::Drop(Counter::DropSeqOverflow);
            }
            if let Err(e) = esp::encap(&sa.key, sa.spi, seq, sa.esn, info.next_header, buf) {
                return OutVerdict::Drop(e.counter());
            }
            st.seq = seq;
            self.cnt.inc(Counter::EncapPackets);
            self.cnt.add(Counter::EncapBytes, info.total_len as u64);
        } else {
            self.cnt.inc(Counter::PlainForward);
        }
        if let Err(c) = self.frame_outer(buf, path) {
            return OutVerdict::Drop(c);
        }
        OutVerdict::Cipher(self.note_path_tx(sa.path, path, now))
    }

    /// Writes the outer header of `path` for the cipher port's layer.
    #[inline]
    fn frame_outer(&self, buf: &mut PacketBuf, path: &PathRecord) -> Result<(), Counter> {
        frame_path(self.cipher_layer, buf, &path.spec, &path.outer)
    }

    /// Records a transmission on `id`; returns the path and generation if this is the
    /// first packet this worker sends on a new generation.
    #[inline]
    fn note_path_tx(&mut self, id: PathId, rec: &PathRecord, now: u64) -> Option<(PathId, u64)> {
        let ps = grow_to(&mut self.paths, id as usize, self.cfg.max_paths)?;
        ps.last_tx_ns = now;
        if ps.generation != rec.generation {
            ps.generation = rec.generation;
            return Some((id, rec.generation));
        }
        None
    }
}

#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_out<C: BurstIo>(
    core: &mut Core,
    snap: &Snapshot,
    v: OutVerdict,
    b: &mut PacketBuf,
    cipher: &mut C,
    to_cipher: &mut Stage,
    fabric: &Fabric,
    me: usize,
) {
    match v {
        OutVerdict::Cipher(first) => {
            let i = stage_one(
                cipher,
                to_cipher,
                &mut core.cnt,
                Counter::TxCipher,
                snap,
                fabric,
                me,
                b,
            );
            if let Some((p, g)) = first {
                to_cipher.firsts.push((i, p, g));
            }
        }
        OutVerdict::Drop(c) => core.cnt.inc(c),
        OutVerdict::Consumed => {}
    }
}
