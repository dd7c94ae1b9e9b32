//! Per-worker named counters (VPP-style drop reasons), cache-line padded.
//!
//! A worker counts into a plain local array on the packet path and flushes it into its
//! own padded atomic block once per burst (relaxed stores by the single owner, no
//! read-modify-write). Readers sum the blocks of all workers.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! counters {
    ($( $(#[$m:meta])* $v:ident = $name:literal, )*) => {
        /// Every counter a worker keeps. Drop reasons start with `Drop`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Counter { $( $(#[$m])* $v, )* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$v,)*];
            pub const COUNT: usize = Counter::ALL.len();
            /// The stable name used in reports and JSON.
            pub const fn name(self) -> &'static str {
                match self { $(Counter::$v => $name,)* }
            }
        }
    };
}

counters! {
    /// Packets received on the cipher (outer) side.
    RxCipher = "rx_cipher",
    /// Packets received on the clear (inner) side.
    RxClear = "rx_clear",
    /// Packets transmitted on the cipher side.
    TxCipher = "tx_cipher",
    /// Packets transmitted on the clear side.
    TxClear = "tx_clear",
    /// Bytes of inner packets encrypted.
    EncapBytes = "encap_bytes",
    /// Packets encrypted.
    EncapPackets = "encap_packets",
    /// Bytes of inner packets decrypted and delivered.
    DecapBytes = "decap_bytes",
    /// Packets decrypted.
    DecapPackets = "decap_packets",
    /// IKE packets (non-ESP marker on UDP 4500) handed to the control plane.
    PuntIke = "punt_ike",
    /// IKE datagrams longer than a packet buffer handed to the control plane through the
    /// large punt queue.
    PuntIkeLarge = "punt_ike_large",
    /// NAT keepalives received and absorbed (RFC 3948 2.3).
    KeepaliveRx = "keepalive_rx",
    /// NAT keepalives sent.
    KeepaliveTx = "keepalive_tx",
    /// Packets handed to the worker that owns their SA.
    HandoffOut = "handoff_out",
    /// Packets received from another worker.
    HandoffIn = "handoff_in",
    /// Packets the control plane injected for transmission (IKE on the dataplane socket).
    InjectTx = "inject_tx",
    /// Packets forwarded without encryption (baseline forwarding mode).
    PlainForward = "plain_forward",
    /// Frame or datagram too short for the headers it claims.
    DropRunt = "drop_runt",
    /// No inbound SA for the SPI.
    DropUnknownSpi = "drop_unknown_spi",
    /// Sequence number outside or already seen in the replay window.
    DropReplay = "drop_replay",
    /// ICV verification failed.
    DropAuthFail = "drop_auth_fail",
    /// Padding bytes or pad length wrong after decryption (RFC 4303 2.4).
    DropBadPadding = "drop_bad_padding",
    /// CBC ciphertext that is not a whole number of cipher blocks (RFC 3602 3).
    DropBadLength = "drop_bad_length",
    /// Next header not IPv4/IPv6 (tunnel mode) or an inner packet that is not IP.
    DropBadInner = "drop_bad_inner",
    /// Decrypted packet does not match the SA's traffic selectors (RFC 4301 5.2).
    DropPolicyMismatch = "drop_policy_mismatch",
    /// Clear packet matched no tunnel.
    DropNoPolicy = "drop_no_policy",
    /// Tunnel has no outbound SA or its path is not published.
    DropNoSa = "drop_no_sa",
    /// Not enough head or tail room in the buffer for the ESP and outer headers.
    DropNoTailroom = "drop_no_tailroom",
    /// Datagram or frame longer than a packet buffer (`MAX_FRAME`) that is not IKE on
    /// the NAT-T port, or longer than the port can receive at all.
    DropOversize = "drop_oversize",
    /// Outer packet is not for us (wrong protocol, port, or not IP).
    DropNotForUs = "drop_not_for_us",
    /// The 32-bit sequence number would cycle (RFC 4303 3.3.3): rekey needed.
    DropSeqOverflow = "drop_seq_overflow",
    /// Punt queue to the control plane full, or no free buffer.
    DropPuntFull = "drop_punt_full",
    /// IKE datagram longer than a packet buffer while every large punt buffer was taken.
    DropPuntLargeFull = "drop_punt_large_full",
    /// Handoff queue to the owning worker full, or no free buffer.
    DropHandoffFull = "drop_handoff_full",
    /// The backend refused or failed to transmit.
    DropTxFail = "drop_tx_fail",
    /// Receive errors reported by the backend.
    RxError = "rx_error",
}

/// A worker's published counters.
pub struct WorkerCounters {
    values: [AtomicU64; Counter::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WorkerCounters {
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }
}

/// The counters of all workers.
pub struct CounterSet {
    workers: Box<[CachePadded<WorkerCounters>]>,
}

impl CounterSet {
    pub fn new(workers: usize) -> Arc<CounterSet> {
        Arc::new(CounterSet {
            workers: (0..workers)
                .map(|_| CachePadded::new(WorkerCounters::default()))
                .collect(),
        })
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    pub fn worker(&self, w: usize) -> &WorkerCounters {
        &self.workers[w]
    }

    /// One counter summed over all workers.
    pub fn total(&self, c: Counter) -> u64 {
        self.workers.iter().map(|w| w.get(c)).sum()
    }

    /// All counters summed over all workers, in `Counter::ALL` order.
    pub fn totals(&self) -> [u64; Counter::COUNT] {
        let mut out = [0u64; Counter::COUNT];
        for w in self.workers.iter() {
            for (i, o) in out.iter_mut().enumerate() {
                *o += w.values[i].load(Ordering::Relaxed);
            }
        }
        out
    }

    /// Non-zero totals with their names, for reports.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        let t = self.totals();
        Counter::ALL
            .iter()
            .zip(t)
            .filter(|(_, v)| *v != 0)
            .map(|(c, v)| (c.name(), v))
            .collect()
    }
}

/// A worker's private tally; `flush` publishes it.
pub struct LocalCounters {
    values: [u64; Counter::COUNT],
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters {
            values: [0; Counter::COUNT],
        }
    }
}

impl LocalCounters {
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.values[c as usize] += 1;
    }

    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }

    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Publishes the running totals to `out` (owned by this worker alone).
    #[inline]
    pub fn flush(&self, out: &WorkerCounters) {
        for (a, v) in out.values.iter().zip(self.values.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sum_across_workers() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT);
        let set = CounterSet::new(2);
        let mut a = LocalCounters::default();
        let mut b = LocalCounters::default();
        a.inc(Counter::DropReplay);
        b.add(Counter::DropReplay, 2);
        b.inc(Counter::RxCipher);
        a.flush(set.worker(0));
        b.flush(set.worker(1));
        assert_eq!(set.total(Counter::DropReplay), 3);
        assert_eq!(set.nonzero(), vec![("rx_cipher", 1), ("drop_replay", 3)]);
    }
}
