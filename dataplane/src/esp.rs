//! ESP (RFC 4303) tunnel mode with AES-GCM-16 (RFC 4106), in place over `PacketBuf`.

use crate::buf::PacketBuf;
use crate::replay::{ReplayError, ReplayWindow};
use ring::aead::{Aad, Tag};
use shared::counters::Counter;
use shared::sa::EspKey;
use shared::sa::{ICV_LEN, IV_LEN};

/// RFC 4303 2: SPI (4) + sequence number (4).
pub const ESP_HEADER_LEN: usize = 8;
/// RFC 4303 2.6: next header values in tunnel mode.
pub const NH_IPV4: u8 = 4;
pub const NH_IPV6: u8 = 41;
/// RFC 4303 2.4: padding aligns payload + pad length + next header to 4 octets (GCM needs
/// no block alignment, RFC 4106 3), so at most 3 pad bytes.
pub const MAX_PAD: usize = 3;

/// Bytes encapsulation adds around an inner packet at most.
pub const fn encap_overhead_max() -> usize {
    ESP_HEADER_LEN + IV_LEN + MAX_PAD + 2 + ICV_LEN
}

/// Why an outbound packet could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// Not enough head or tail room for the headers, padding or ICV.
    NoRoom,
    /// The path cannot be written: local and remote address families differ, or an
    /// Ethernet port has no link-layer header for it.
    BadPath,
}

impl EncapError {
    pub fn counter(self) -> Counter {
        match self {
            EncapError::NoRoom => Counter::DropNoTailroom,
            EncapError::BadPath => Counter::DropNoSa,
        }
    }
}

/// Why an inbound ESP packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than header + IV + pad length + next header + ICV.
    Runt,
    /// RFC 4303 3.4.3: rejected by the anti-replay window.
    Replay(ReplayError),
    /// RFC 4303 3.4.4: ICV verification failed.
    AuthFail,
    /// RFC 4303 2.4: pad length exceeds the payload, or pad bytes are not 1, 2, 3, ...
    BadPadding,
}

impl DecapError {
    pub fn counter(self) -> Counter {
        match self {
            DecapError::Runt => Counter::DropRunt,
            DecapError::Replay(_) => Counter::DropReplay,
            DecapError::AuthFail => Counter::DropAuthFail,
            DecapError::BadPadding => Counter::DropBadPadding,
        }
    }
}

/// The SPI of an ESP packet (RFC 4303 2.1), or None if too short.
#[inline]
pub fn spi_of(esp: &[u8]) -> Option<u32> {
    let b: [u8; 4] = esp.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Header + IV in front of the ciphertext.
const HEAD_LEN: usize = ESP_HEADER_LEN + IV_LEN;
/// Pad length + next header.
const TRAILER_LEN: usize = 2;
/// Shortest ESP packet: header, IV, an empty payload's trailer, ICV.
pub const MIN_PACKET_LEN: usize = HEAD_LEN + TRAILER_LEN + ICV_LEN;

/// RFC 4106 5: AAD = SPI || seq_lo (8 octets), or SPI || seq_hi || seq_lo with ESN
/// (12 octets). Returns the buffer and the length used.
#[inline]
pub fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        a[4..12].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}

/// RFC 4303 2.4: pad bytes so payload + pad + 2 is a multiple of 4.
#[inline]
pub const fn pad_len(payload_len: usize) -> usize {
    (4 - (payload_len + TRAILER_LEN) % 4) % 4
}

/// Seals one ESP packet laid out in `pkt` as
/// `SPI | seq_lo | IV | plaintext (payload | pad | pad length | next header) | ICV`:
/// writes the header and `iv`, encrypts the plaintext in place and writes the ICV. The
/// plaintext with its trailer must already be in place; `pkt` is at least
/// `ESP_HEADER_LEN + IV_LEN + ICV_LEN` long. RFC 4106 8.1: `iv` must never repeat under a
/// key; `encap` uses the sequence number.
#[inline]
pub fn seal_with_iv(
    key: &EspKey,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: &[u8; IV_LEN],
    pkt: &mut [u8],
) -> Result<(), EncapError> {
    let len = pkt.len();
    if len < HEAD_LEN + ICV_LEN {
        return Err(EncapError::NoRoom);
    }
    let (head, rest) = pkt.split_at_mut(HEAD_LEN);
    let (text, icv) = rest.split_at_mut(len - HEAD_LEN - ICV_LEN);
    head[0..4].copy_from_slice(&spi.to_be_bytes());
    head[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
    head[8..16].copy_from_slice(iv);
    let (a, alen) = aad(spi, seq, esn);
    let tag = key
        .aead()
        .seal_in_place_separate_tag(key.nonce(iv), Aad::from(&a[..alen]), text)
        // ring refuses only inputs beyond GCM's 64 GiB limit.
        .map_err(|_| EncapError::NoRoom)?;
    icv.copy_from_slice(tag.as_ref());
    Ok(())
}

/// Verifies and decrypts one ESP packet `SPI | seq_lo | IV | ciphertext | ICV` in place,
/// using `seq` as the full sequence number for the AAD. Returns the plaintext length (the
/// plaintext then sits at `pkt[ESP_HEADER_LEN + IV_LEN..]`). No padding check.
#[inline]
pub fn open_in_place(
    key: &EspKey,
    seq: u64,
    esn: bool,
    pkt: &mut [u8],
) -> Result<usize, DecapError> {
    let len = pkt.len();
    if len < HEAD_LEN + ICV_LEN {
        return Err(DecapError::Runt);
    }
    let (head, rest) = pkt.split_at_mut(HEAD_LEN);
    let (text, icv) = rest.split_at_mut(len - HEAD_LEN - ICV_LEN);
    let spi = spi_of(head).ok_or(DecapError::Runt)?;
    let iv: [u8; IV_LEN] = head
        .get(ESP_HEADER_LEN..HEAD_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecapError::Runt)?;
    let tag: [u8; ICV_LEN] = (&*icv).try_into().map_err(|_| DecapError::Runt)?;
    let (a, alen) = aad(spi, seq, esn);
    key.aead()
        .open_in_place_separate_tag(
            key.nonce(&iv),
            Aad::from(&a[..alen]),
            Tag::from(tag),
            text,
            0..,
        )
        .map_err(|_| DecapError::AuthFail)?;
    Ok(text.len())
}

/// RFC 4303 2.4-2.6: checks the trailer of a decrypted payload; returns the payload length
/// and the next header.
#[inline]
pub fn check_trailer(plain: &[u8]) -> Result<(usize, u8), DecapError> {
    let [.., pad_len, next_header] = *plain else {
        return Err(DecapError::Runt);
    };
    let pad_len = usize::from(pad_len);
    let payload_len = plain
        .len()
        .checked_sub(TRAILER_LEN + pad_len)
        .ok_or(DecapError::BadPadding)?;
    let pad = plain
        .get(payload_len..payload_len + pad_len)
        .ok_or(DecapError::BadPadding)?;
    // RFC 4303 2.4: the default padding is 1, 2, 3, ...; the receiver checks it.
    if pad.iter().zip(1u8..=u8::MAX).any(|(&b, want)| b != want) {
        return Err(DecapError::BadPadding);
    }
    Ok((payload_len, next_header))
}

/// Encapsulates the inner packet in `buf.data()` in place:
/// `SPI | seq_lo | IV | ciphertext (payload | pad | pad length | next header) | ICV`.
/// IV = the 64-bit sequence number, unique per SA (RFC 4106 3.1). With `esn` the high half
/// of `seq` enters the AAD (RFC 4106 5). The caller owns the sequence counter and its
/// overflow rule (RFC 4303 3.3.3).
#[inline]
pub fn encap(
    key: &EspKey,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: u8,
    buf: &mut PacketBuf,
) -> Result<(), EncapError> {
    let (raw, start, end) = buf.raw_mut();
    let pad = pad_len(end - start);
    let new_start = start.checked_sub(HEAD_LEN).ok_or(EncapError::NoRoom)?;
    let trailer_end = end + pad + TRAILER_LEN;
    let new_end = trailer_end + ICV_LEN;
    // Both bounds are checked before anything is written, so a refused packet is intact.
    if new_end > raw.len() {
        return Err(EncapError::NoRoom);
    }
    let trailer = raw.get_mut(end..trailer_end).ok_or(EncapError::NoRoom)?;
    let (pad_bytes, tail) = trailer.split_at_mut(pad);
    for (b, v) in pad_bytes.iter_mut().zip(1u8..=u8::MAX) {
        *b = v;
    }
    tail.copy_from_slice(&[pad as u8, next_header]);
    let pkt = raw.get_mut(new_start..new_end).ok_or(EncapError::NoRoom)?;
    seal_with_iv(key, spi, seq, esn, &seq.to_be_bytes(), pkt)?;
    if buf.set_window(new_start, new_end) {
        Ok(())
    } else {
        Err(EncapError::NoRoom)
    }
}

/// Decapsulates the ESP packet in `buf.data()` (the caller found the SA by SPI) in place,
/// leaving the inner packet; returns the next header. RFC 4303 3.4.3: the replay check runs
/// before decryption and the window moves only after the ICV verified. `window` must have
/// been reset with the same `esn` (it infers the high half of the sequence number).
#[inline]
pub fn decap(
    key: &EspKey,
    esn: bool,
    window: &mut ReplayWindow,
    buf: &mut PacketBuf,
) -> Result<u8, DecapError> {
    let data = buf.data_mut();
    if data.len() < MIN_PACKET_LEN {
        return Err(DecapError::Runt);
    }
    let seq_lo: [u8; 4] = data
        .get(4..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecapError::Runt)?;
    let seq_lo = u32::from_be_bytes(seq_lo);
    // RFC 4303 A2.2 (the window infers the high half only when it was reset with ESN).
    let seq = if esn {
        window.infer(seq_lo)
    } else {
        u64::from(seq_lo)
    };
    window.check(seq).map_err(DecapError::Replay)?;
    let text_len = open_in_place(key, seq, esn, data)?;
    window.update(seq);
    let plain = data
        .get(HEAD_LEN..HEAD_LEN + text_len)
        .ok_or(DecapError::Runt)?;
    let (payload_len, next_header) = check_trailer(plain)?;
    if buf.pull_front(HEAD_LEN) && buf.truncate(payload_len) {
        Ok(next_header)
    } else {
        Err(DecapError::Runt)
    }
}
