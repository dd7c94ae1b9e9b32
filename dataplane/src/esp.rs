//! ESP (RFC 4303) tunnel mode, in place over `PacketBuf`: the framing every transform
//! shares (padding, trailer, the replay check around authentication) and the AEAD
//! transforms, AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), which are built
//! the same way (4-byte salt, 8-byte explicit IV, nonce = salt || IV, AAD = SPI ||
//! sequence number, 16-byte tag). AES-CBC with HMAC-SHA2 is in [`cbc`].

pub mod cbc;

use crate::buf::PacketBuf;
use crate::replay::{ReplayError, ReplayWindow};
use ring::aead::{Aad, Tag};
use shared::counters::Counter;
use shared::sa::{AeadKey, EspCipher, EspKey, SuiteKey};
use shared::sa::{AES_BLOCK, ICV_LEN, IV_LEN, MAX_ICV_LEN, MAX_IV_LEN};

/// RFC 4303 2: SPI (4) + sequence number (4).
pub const ESP_HEADER_LEN: usize = 8;
/// RFC 4303 2.6: next header values in tunnel mode.
pub const NH_IPV4: u8 = 4;
pub const NH_IPV6: u8 = 41;
/// RFC 4303 2.4: the most padding `encap` adds: up to the AES block for CBC (RFC 3602
/// 2.4); the AEAD transforms align to 4 octets only, so at most 3 bytes there.
pub const MAX_PAD: usize = AES_BLOCK - 1;

/// Bytes encapsulation adds around an inner packet at most, over every transform.
pub const fn encap_overhead_max() -> usize {
    ESP_HEADER_LEN + MAX_IV_LEN + MAX_PAD + TRAILER_LEN + MAX_ICV_LEN
}

/// Bytes encapsulation with `cipher` adds around an inner packet at most.
pub const fn encap_overhead(cipher: EspCipher) -> usize {
    ESP_HEADER_LEN + cipher.iv_len() + cipher.align() - 1 + TRAILER_LEN + cipher.icv_len()
}

/// Why an outbound packet could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// Not enough head or tail room for the headers, padding or ICV.
    NoRoom,
    /// The path cannot be written: local and remote address families differ, or an
    /// Ethernet port has no link-layer header for it.
    BadPath,
    /// A CBC plaintext handed to `cbc::seal_with_iv` that is not a whole number of
    /// blocks (`encap` pads, so it never produces this).
    Unaligned,
}

impl EncapError {
    pub fn counter(self) -> Counter {
        match self {
            EncapError::NoRoom => Counter::DropNoTailroom,
            EncapError::BadPath => Counter::DropNoSa,
            EncapError::Unaligned => Counter::DropBadLength,
        }
    }
}

/// Why an inbound ESP packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than header + IV + the smallest ciphertext + ICV.
    Runt,
    /// RFC 4303 3.4.3: rejected by the anti-replay window.
    Replay(ReplayError),
    /// RFC 4303 3.4.4: ICV verification failed.
    AuthFail,
    /// RFC 4303 2.4: pad length exceeds the payload, or pad bytes are not 1, 2, 3, ...
    BadPadding,
    /// RFC 3602 3: a CBC ciphertext that is not a whole number of blocks.
    BadLength,
}

impl DecapError {
    pub fn counter(self) -> Counter {
        match self {
            DecapError::Runt => Counter::DropRunt,
            DecapError::Replay(_) => Counter::DropReplay,
            DecapError::AuthFail => Counter::DropAuthFail,
            DecapError::BadPadding => Counter::DropBadPadding,
            DecapError::BadLength => Counter::DropBadLength,
        }
    }
}

/// The SPI of an ESP packet (RFC 4303 2.1), or None if too short.
#[inline]
pub fn spi_of(esp: &[u8]) -> Option<u32> {
    let b: [u8; 4] = esp.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The low half of the sequence number of an ESP packet, or None if too short.
#[inline]
fn seq_lo_of(esp: &[u8]) -> Option<u32> {
    let b: [u8; 4] = esp.get(4..8)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Header + IV in front of the ciphertext (AEAD transforms).
const HEAD_LEN: usize = ESP_HEADER_LEN + IV_LEN;
/// Pad length + next header.
const TRAILER_LEN: usize = 2;
/// Shortest ESP packet of any transform: an AEAD packet with header, IV, an empty
/// payload's trailer and ICV.
pub const MIN_PACKET_LEN: usize = HEAD_LEN + TRAILER_LEN + ICV_LEN;

/// Shortest ESP packet `cipher` can produce: for CBC one block of ciphertext.
pub const fn min_packet_len(cipher: EspCipher) -> usize {
    if cipher.is_aead() {
        MIN_PACKET_LEN
    } else {
        cbc::HEAD_LEN + AES_BLOCK + cipher.icv_len()
    }
}

/// RFC 4106 5, RFC 7634 2.1: AAD = SPI || seq_lo (8 octets), or SPI || seq_hi || seq_lo
/// with ESN (12 octets). Returns the buffer and the length used.
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

/// RFC 4303 2.4: pad bytes so payload + pad + 2 is a multiple of `align` (4 for the AEAD
/// transforms, the AES block for CBC; see [`EspCipher::align`]).
#[inline]
pub const fn pad_len(payload_len: usize, align: usize) -> usize {
    (align - (payload_len + TRAILER_LEN) % align) % align
}

/// RFC 4303 2.4: writes padding (1, 2, 3, ...), pad length and next header behind the
/// payload at `raw[start..end]` and returns the bounds of the whole ESP packet
/// (`head` bytes of header and IV in front, `icv` bytes behind the trailer). Every bound
/// is checked before anything is written, so a refused packet is intact.
#[inline]
fn lay_out(
    raw: &mut [u8],
    start: usize,
    end: usize,
    head: usize,
    align: usize,
    icv: usize,
    next_header: u8,
) -> Result<(usize, usize), EncapError> {
    let pad = pad_len(end - start, align);
    let new_start = start.checked_sub(head).ok_or(EncapError::NoRoom)?;
    let trailer_end = end + pad + TRAILER_LEN;
    let new_end = trailer_end + icv;
    if new_end > raw.len() {
        return Err(EncapError::NoRoom);
    }
    let trailer = raw.get_mut(end..trailer_end).ok_or(EncapError::NoRoom)?;
    let (pad_bytes, tail) = trailer.split_at_mut(pad);
    for (b, v) in pad_bytes.iter_mut().zip(1u8..=u8::MAX) {
        *b = v;
    }
    tail.copy_from_slice(&[pad as u8, next_header]);
    Ok((new_start, new_end))
}

/// Seals one AEAD ESP packet laid out in `pkt` as
/// `SPI | seq_lo | IV | plaintext (payload | pad | pad length | next header) | ICV`:
/// writes the header and `iv`, encrypts the plaintext in place and writes the ICV. The
/// plaintext with its trailer must already be in place; `pkt` is at least
/// `ESP_HEADER_LEN + IV_LEN + ICV_LEN` long. RFC 4106 8.1, RFC 7634 2: `iv` must never
/// repeat under a key; `encap` uses the sequence number.
#[inline]
pub fn seal_with_iv(
    key: &AeadKey,
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
        // ring refuses only inputs beyond the AEAD's length limit (64 GiB for GCM).
        .map_err(|_| EncapError::NoRoom)?;
    icv.copy_from_slice(tag.as_ref());
    Ok(())
}

/// Verifies and decrypts one AEAD ESP packet `SPI | seq_lo | IV | ciphertext | ICV` in
/// place, using `seq` as the full sequence number for the AAD. Returns the plaintext
/// length (the plaintext then sits at `pkt[ESP_HEADER_LEN + IV_LEN..]`). No padding check.
#[inline]
pub fn open_in_place(
    key: &AeadKey,
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
/// AEAD: IV = the 64-bit sequence number, unique per SA (RFC 4106 3.1, RFC 7634 2). CBC:
/// see [`cbc::encap`]. With `esn` the high half of `seq` is authenticated (RFC 4303
/// 2.2.1). The caller owns the sequence counter and its overflow rule (RFC 4303 3.3.3).
#[inline]
pub fn encap(
    key: &EspKey,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: u8,
    buf: &mut PacketBuf,
) -> Result<(), EncapError> {
    match key.suite() {
        SuiteKey::Aead(k) => encap_with_iv(k, spi, seq, esn, next_header, &seq.to_be_bytes(), buf),
        SuiteKey::Cbc(k) => cbc::encap(k, spi, seq, esn, next_header, buf),
    }
}

/// `encap` for an AEAD transform with the explicit IV given (published vectors choose
/// theirs; RFC 4106 8.1 and RFC 7634 2: it must never repeat under a key).
#[inline]
pub fn encap_with_iv(
    key: &AeadKey,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: u8,
    iv: &[u8; IV_LEN],
    buf: &mut PacketBuf,
) -> Result<(), EncapError> {
    let (raw, start, end) = buf.raw_mut();
    let (new_start, new_end) = lay_out(raw, start, end, HEAD_LEN, 4, ICV_LEN, next_header)?;
    let pkt = raw.get_mut(new_start..new_end).ok_or(EncapError::NoRoom)?;
    seal_with_iv(key, spi, seq, esn, iv, pkt)?;
    if buf.set_window(new_start, new_end) {
        Ok(())
    } else {
        Err(EncapError::NoRoom)
    }
}

/// Decapsulates the ESP packet in `buf.data()` (the caller found the SA by SPI) in place,
/// leaving the inner packet; returns the next header. RFC 4303 3.4.3: the replay check runs
/// before authentication and the window moves only after the ICV verified. `window` must
/// have been reset with the same `esn` (it infers the high half of the sequence number).
#[inline]
pub fn decap(
    key: &EspKey,
    esn: bool,
    window: &mut ReplayWindow,
    buf: &mut PacketBuf,
) -> Result<u8, DecapError> {
    match key.suite() {
        SuiteKey::Aead(k) => decap_with(esn, window, buf, HEAD_LEN, MIN_PACKET_LEN, |seq, d| {
            open_in_place(k, seq, esn, d)
        }),
        SuiteKey::Cbc(k) => decap_with(
            esn,
            window,
            buf,
            cbc::HEAD_LEN,
            cbc::HEAD_LEN + AES_BLOCK + k.integ().icv_len(),
            |seq, d| cbc::open_in_place(k, seq, esn, d),
        ),
    }
}

/// `decap` for one transform: `head` is header + IV, `min_len` the shortest packet, `open`
/// authenticates and decrypts in place and returns the plaintext length.
#[inline(always)]
fn decap_with(
    esn: bool,
    window: &mut ReplayWindow,
    buf: &mut PacketBuf,
    head: usize,
    min_len: usize,
    open: impl FnOnce(u64, &mut [u8]) -> Result<usize, DecapError>,
) -> Result<u8, DecapError> {
    let data = buf.data_mut();
    if data.len() < min_len {
        return Err(DecapError::Runt);
    }
    let seq_lo = seq_lo_of(data).ok_or(DecapError::Runt)?;
    // RFC 4303 A2.2 (the window infers the high half only when it was reset with ESN).
    let seq = if esn {
        window.infer(seq_lo)
    } else {
        u64::from(seq_lo)
    };
    window.check(seq).map_err(DecapError::Replay)?;
    let text_len = open(seq, data)?;
    window.update(seq);
    let plain = data.get(head..head + text_len).ok_or(DecapError::Runt)?;
    let (payload_len, next_header) = check_trailer(plain)?;
    if buf.pull_front(head) && buf.truncate(payload_len) {
        Ok(next_header)
    } else {
        Err(DecapError::Runt)
    }
}
