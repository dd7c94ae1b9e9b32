//! Delete payload (RFC 7296 3.11).

use super::payload::PayloadType;
use super::{be16, EmitError, ProtocolId, WireError};

mod field {
    pub const PROTOCOL: usize = 0;
    pub const SPI_SIZE: usize = 1;
    pub const NUM_SPIS: usize = 2;
    pub const SPIS: usize = 4;
}

/// A view of a Delete body; `new_checked` checks that the SPIs fill it exactly.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < field::SPIS {
            return Err(WireError::BodyTruncated(PayloadType::DELETE));
        }
        let want = usize::from(b[field::SPI_SIZE]) * usize::from(be16(b, field::NUM_SPIS));
        if b.len() - field::SPIS != want {
            return Err(WireError::BadDeleteLength);
        }
        Ok(Self { buffer })
    }
    pub fn protocol(&self) -> ProtocolId {
        ProtocolId(self.buffer.as_ref()[field::PROTOCOL])
    }
    pub fn spi_size(&self) -> u8 {
        self.buffer.as_ref()[field::SPI_SIZE]
    }
    pub fn num_spis(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NUM_SPIS)
    }
    /// The SPIs, each `spi_size` bytes.
    pub fn spis(&self) -> impl Iterator<Item = &[u8]> {
        let size = usize::from(self.spi_size());
        let n = if size == 0 {
            0
        } else {
            usize::from(self.num_spis())
        };
        self.buffer.as_ref()[field::SPIS..]
            .chunks_exact(size.max(1))
            .take(n)
    }
}

/// D: protocol and the SPIs to delete. Deleting the IKE SA has SPI size 0 and no
/// SPIs; child SAs are named by their 4-byte inbound SPI (RFC 7296 3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRepr {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    /// With SPI size 0 the count is kept as sent (it should be 0).
    pub num_spis: u16,
    pub spis: Vec<Vec<u8>>,
}

impl DeleteRepr {
    pub fn ike() -> Self {
        Self {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            num_spis: 0,
            spis: Vec::new(),
        }
    }

    pub fn esp(spis: &[u32]) -> Self {
        Self {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            num_spis: spis.len() as u16,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            protocol: p.protocol(),
            spi_size: p.spi_size(),
            num_spis: p.num_spis(),
            spis: p.spis().map(<[u8]>::to_vec).collect(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        field::SPIS + self.spis.iter().map(Vec::len).sum::<usize>()
    }
    /// Whether the SPIs agree with `spi_size` and `num_spis`.
    pub fn check_emit(&self) -> Result<(), EmitError> {
        let count_ok = self.spi_size == 0 || usize::from(self.num_spis) == self.spis.len();
        let sizes_ok = self
            .spis
            .iter()
            .all(|s| s.len() == usize::from(self.spi_size));
        if count_ok && sizes_ok {
            Ok(())
        } else {
            Err(EmitError::InconsistentDelete)
        }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::PROTOCOL] = self.protocol.0;
        b[field::SPI_SIZE] = self.spi_size;
        b[2..4].copy_from_slice(&self.num_spis.to_be_bytes());
        let mut at = field::SPIS;
        for s in &self.spis {
            b[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        }
    }
}
