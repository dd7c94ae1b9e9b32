//! Vendor ID payload (RFC 7296 3.12).

use super::WireError;

/// A view of a Vendor ID body: any bytes, including none.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        Ok(Self { buffer })
    }
    pub fn vendor_id(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// V: an opaque vendor identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorRepr {
    pub vendor_id: Vec<u8>,
}

impl VendorRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Self {
            vendor_id: p.vendor_id().to_vec(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        self.vendor_id.len()
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.buffer.as_mut()[..self.vendor_id.len()].copy_from_slice(&self.vendor_id);
    }
}
