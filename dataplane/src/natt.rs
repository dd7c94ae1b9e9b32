//! RFC 3948 UDP encapsulation of ESP: what arrives on UDP port 4500.

use crate::buf::PacketBuf;
use crate::esp::{EncapError, ESP_HEADER_LEN};

/// RFC 3948 2.2: IKE on port 4500 starts with four zero octets (an SPI of 0 is reserved,
/// RFC 4303 2.1, so ESP never does).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// RFC 3948 2.3: a NAT-keepalive is one octet 0xFF.
pub const KEEPALIVE: u8 = 0xff;
/// The port RFC 3948 and RFC 7296 2.23 use for UDP-encapsulated ESP and IKE.
pub const NATT_PORT: u16 = 4500;

/// What a UDP-4500 payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Udp4500 {
    /// An ESP packet (starts with a non-zero SPI).
    Esp,
    /// An IKE message behind the non-ESP marker; the caller strips the 4 marker octets.
    Ike,
    /// A NAT-keepalive: absorb it.
    Keepalive,
    /// Too short to be any of these.
    Runt,
}

/// Classifies a UDP-4500 payload (RFC 3948 2.1-2.3).
#[inline]
pub fn classify(payload: &[u8]) -> Udp4500 {
    match payload {
        [KEEPALIVE] => Udp4500::Keepalive,
        [0, 0, 0, 0, _, ..] => Udp4500::Ike,
        // A marker with nothing behind it, or anything shorter than an ESP header.
        p if p.len() >= ESP_HEADER_LEN => Udp4500::Esp,
        _ => Udp4500::Runt,
    }
}

/// Prepends the non-ESP marker to an IKE message sent on port 4500 (RFC 3948 2.2).
#[inline]
pub fn push_non_esp_marker(buf: &mut PacketBuf) -> Result<(), EncapError> {
    buf.push_front(NON_ESP_MARKER.len())
        .ok_or(EncapError::NoRoom)?
        .copy_from_slice(&NON_ESP_MARKER);
    Ok(())
}

/// Makes `buf` a NAT-keepalive payload (RFC 3948 2.3).
#[inline]
pub fn fill_keepalive(buf: &mut PacketBuf) {
    buf.fill(&[KEEPALIVE]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_each_kind() {
        assert_eq!(classify(&[]), Udp4500::Runt);
        assert_eq!(classify(&[0xff]), Udp4500::Keepalive);
        assert_eq!(classify(&[0x00]), Udp4500::Runt);
        assert_eq!(classify(&[0xff, 0xff]), Udp4500::Runt);
        assert_eq!(classify(&[0, 0, 0, 0]), Udp4500::Runt);
        assert_eq!(classify(&[0, 0, 0, 0, 0x11]), Udp4500::Ike);
        assert_eq!(classify(&[0, 0, 0, 1, 0, 0, 0]), Udp4500::Runt);
        assert_eq!(classify(&[0, 0, 0, 1, 0, 0, 0, 1]), Udp4500::Esp);
        assert_eq!(classify(&[0xff; 8]), Udp4500::Esp);
    }

    #[test]
    fn marker_round_trip() {
        let mut b = PacketBuf::new();
        assert!(b.fill(&[0x11, 0x22]));
        push_non_esp_marker(&mut b).unwrap();
        assert_eq!(classify(b.data()), Udp4500::Ike);
        assert!(b.pull_front(4));
        assert_eq!(b.data(), &[0x11, 0x22]);
        fill_keepalive(&mut b);
        assert_eq!(classify(b.data()), Udp4500::Keepalive);
    }
}
