//! The inbound SA index: SPI -> SA (RFC 4303 2.1: the SPI, chosen by us, selects the SA).
//!
//! A persistent hash table of a fixed number of buckets (twice `max_inbound`, rounded up
//! to a power of two) in pages: installing or removing one SA copies the page or two its
//! probe run lies in, whatever the number of SAs. Workers look an SPI up with a few probes,
//! no allocation and no hashing library.

use crate::pages::{mix64, HashEntry, HashPages};
use crate::sa::InboundSa;
use std::sync::Arc;

/// One bucket: the SA (the key is repeated beside it so a probe reads no SA record).
#[derive(Clone, Default, Debug)]
pub struct SpiEntry {
    spi: u32,
    sa: Option<Arc<InboundSa>>,
}

impl HashEntry for SpiEntry {
    type Key = u32;
    #[inline]
    fn key(&self) -> Option<u32> {
        self.sa.as_ref().map(|_| self.spi)
    }
    #[inline]
    fn hash(spi: &u32) -> u64 {
        // SPIs are chosen by us but echoed by peers; spread them anyway.
        mix64(*spi as u64)
    }
}

/// Buckets per page (512 B). Every inbound packet reads one, so the index should stay
/// within the TLB's reach, and every installation copies one, raising the count of each
/// SA in it: in cold memory with 100,000 SAs. With 32-bucket pages scattered among the
/// SAs a lookup at 100,000 once took 44 ns against 28 with 128; measured again after the
/// tables shrank (2026-12-06, `table-bench --sizes 100000`, interleaved runs) 128 took
/// 39 ns and 32 took 33-46, while an installation with its publication fell from 15.3
/// to 8.5-11 us.
const SPI_PAGE: usize = 32;

/// SPI -> inbound SA.
#[derive(Clone, Default)]
pub struct SpiMap {
    table: HashPages<SpiEntry, SPI_PAGE>,
}

impl SpiMap {
    /// Room for `max` SAs without ever growing.
    pub fn with_max(max: usize) -> SpiMap {
        SpiMap {
            table: HashPages::with_max(max),
        }
    }

    /// The SA with `spi`.
    #[inline]
    pub fn get(&self, spi: u32) -> Option<&Arc<InboundSa>> {
        self.table.get(&spi)?.sa.as_ref()
    }

    /// Installs `sa` under its SPI; returns the SA it replaced.
    pub fn insert(&mut self, sa: Arc<InboundSa>) -> Option<Arc<InboundSa>> {
        let spi = sa.spi;
        self.table
            .insert(SpiEntry { spi, sa: Some(sa) })
            .and_then(|e| e.sa)
    }

    /// Removes the SA with `spi`.
    pub fn remove(&mut self, spi: u32) -> Option<Arc<InboundSa>> {
        self.table.remove(&spi)?.sa
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.table.buckets()
    }

    /// Pages allocated in this version.
    pub fn pages(&self) -> usize {
        self.table.pages()
    }
}
