//! The receive ring of an afpacket port: which kind, and the limit of its block
//! timeout. Here, not in the backend, so that the configuration check (`control`) and
//! the backend that opens the ring (`dataplane::io::afpacket`) read one definition and
//! cannot disagree about what is accepted.

use std::ops::RangeInclusive;
use std::str::FromStr;

/// Largest V3 block timeout accepted, milliseconds.
pub const MAX_BLOCK_TIMEOUT_MS: u32 = 10_000;

/// Every V3 block timeout accepted, milliseconds: 0 would make the kernel pick its own
/// timeout from the link speed, and the kernel has no finer unit than 1 ms.
pub const BLOCK_TIMEOUT_MS: RangeInclusive<u32> = 1..=MAX_BLOCK_TIMEOUT_MS;

/// Which RX ring the kernel fills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxRing {
    /// TPACKET_V3 blocks, handed over when full or `rx_block_timeout_ms` old.
    #[default]
    V3Blocks,
    /// TPACKET_V2 frame slots, each handed over as soon as it is written.
    V2Frames,
}

impl RxRing {
    /// Every ring, in the order the configuration lists them.
    pub const ALL: [RxRing; 2] = [RxRing::V3Blocks, RxRing::V2Frames];
    /// The names of [`RxRing::ALL`].
    pub const NAMES: [&'static str; 2] = [RxRing::ALL[0].name(), RxRing::ALL[1].name()];

    /// The name used in configurations and reports: `blocks` or `frames`.
    pub const fn name(self) -> &'static str {
        match self {
            RxRing::V3Blocks => "blocks",
            RxRing::V2Frames => "frames",
        }
    }
}

impl FromStr for RxRing {
    type Err = String;
    /// Parses `blocks` (TPACKET_V3) or `frames` (TPACKET_V2).
    fn from_str(s: &str) -> Result<RxRing, String> {
        RxRing::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("rx ring `{s}`: expected `blocks` (TPACKET_V3) or `frames` (TPACKET_V2)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in RxRing::ALL {
            assert_eq!(r.name().parse::<RxRing>(), Ok(r));
        }
        assert_eq!(RxRing::NAMES, ["blocks", "frames"]);
        assert!("Blocks".parse::<RxRing>().is_err());
    }

    #[test]
    fn block_timeout_limits() {
        assert!(!BLOCK_TIMEOUT_MS.contains(&0));
        assert!(BLOCK_TIMEOUT_MS.contains(&1));
        assert!(BLOCK_TIMEOUT_MS.contains(&MAX_BLOCK_TIMEOUT_MS));
        assert!(!BLOCK_TIMEOUT_MS.contains(&(MAX_BLOCK_TIMEOUT_MS + 1)));
    }
}
