//! ESP with AES-CBC (RFC 3602) and an HMAC-SHA2 ICV truncated to half the hash
//! (RFC 4868), in place:
//! `SPI | seq_lo | IV (16) | ciphertext (payload | pad | pad length | next header) | ICV`.
//!
//! The ICV covers SPI, sequence number, IV and ciphertext, and with ESN the high half of
//! the sequence number appended behind them without being sent (RFC 4303 2.2.1, 3.3.2.1).
//! The receiver verifies the ICV, in constant time, before it decrypts (RFC 4303 3.4.4).

use super::{lay_out, DecapError, EncapError, ESP_HEADER_LEN};
use crate::buf::PacketBuf;
use shared::sa::{CbcKey, AES_BLOCK, CBC_IV_LEN};

/// Header + IV in front of the ciphertext.
pub const HEAD_LEN: usize = ESP_HEADER_LEN + CBC_IV_LEN;

/// RFC 4303 3.3.2.1: what ESN adds to the ICV input — the high half of the sequence
/// number — or nothing.
#[inline]
fn esn_tail(seq: u64, esn: bool) -> ([u8; 4], usize) {
    (((seq >> 32) as u32).to_be_bytes(), if esn { 4 } else { 0 })
}

/// Seals one packet laid out in `pkt` as `SPI | seq_lo | IV | plaintext | ICV`: writes the
/// header and `iv`, encrypts the plaintext (payload, padding and trailer, a whole number
/// of blocks, already in place) and writes the ICV over everything before it. RFC 3602
/// 2.3: `iv` must be unpredictable; `encap` takes it from [`CbcKey::iv`].
#[inline]
pub fn seal_with_iv(
    key: &CbcKey,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: &[u8; CBC_IV_LEN],
    pkt: &mut [u8],
) -> Result<(), EncapError> {
    let icv_len = key.integ().icv_len();
    let len = pkt.len();
    let text_len = len
        .checked_sub(HEAD_LEN + icv_len)
        .ok_or(EncapError::NoRoom)?;
    if text_len % AES_BLOCK != 0 {
        return Err(EncapError::Unaligned);
    }
    let (authed, icv) = pkt.split_at_mut(len - icv_len);
    let (head, text) = authed.split_at_mut(HEAD_LEN);
    head[0..4].copy_from_slice(&spi.to_be_bytes());
    head[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
    head[8..HEAD_LEN].copy_from_slice(iv);
    key.encrypt(iv, text).map_err(|_| EncapError::Unaligned)?;
    let (tail, tail_len) = esn_tail(seq, esn);
    key.icv(authed, &tail[..tail_len], icv);
    Ok(())
}

/// Verifies and decrypts one packet `SPI | seq_lo | IV | ciphertext | ICV` in place, using
/// `seq` as the full sequence number. Returns the plaintext length (the plaintext then sits
/// at `pkt[HEAD_LEN..]`). No padding check.
#[inline]
pub fn open_in_place(
    key: &CbcKey,
    seq: u64,
    esn: bool,
    pkt: &mut [u8],
) -> Result<usize, DecapError> {
    let icv_len = key.integ().icv_len();
    let len = pkt.len();
    let text_len = len
        .checked_sub(HEAD_LEN + icv_len)
        .filter(|n| *n >= AES_BLOCK)
        .ok_or(DecapError::Runt)?;
    // A length no sender produces: refused before any cryptographic work.
    if text_len % AES_BLOCK != 0 {
        return Err(DecapError::BadLength);
    }
    let (authed, icv) = pkt.split_at_mut(len - icv_len);
    let (tail, tail_len) = esn_tail(seq, esn);
    if !key.verify(authed, &tail[..tail_len], icv) {
        return Err(DecapError::AuthFail);
    }
    let (head, text) = authed.split_at_mut(HEAD_LEN);
    let iv: [u8; CBC_IV_LEN] = head
        .get(ESP_HEADER_LEN..HEAD_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecapError::Runt)?;
    key.decrypt(&iv, text).map_err(|_| DecapError::BadLength)?;
    Ok(text_len)
}

/// Encapsulates the inner packet in `buf.data()` in place, padded to the AES block
/// (RFC 3602 2.4), with the IV of sequence number `seq` (RFC 3602 2.3: unpredictable, see
/// [`CbcKey::iv`]).
#[inline]
pub fn encap(
    key: &CbcKey,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: u8,
    buf: &mut PacketBuf,
) -> Result<(), EncapError> {
    encap_with_iv(key, spi, seq, esn, next_header, &key.iv(seq), buf)
}

/// `encap` with the IV given (published vectors choose theirs).
#[inline]
pub fn encap_with_iv(
    key: &CbcKey,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: u8,
    iv: &[u8; CBC_IV_LEN],
    buf: &mut PacketBuf,
) -> Result<(), EncapError> {
    let icv_len = key.integ().icv_len();
    let (raw, start, end) = buf.raw_mut();
    let (new_start, new_end) = lay_out(raw, start, end, HEAD_LEN, AES_BLOCK, icv_len, next_header)?;
    let pkt = raw.get_mut(new_start..new_end).ok_or(EncapError::NoRoom)?;
    seal_with_iv(key, spi, seq, esn, iv, pkt)?;
    if buf.set_window(new_start, new_end) {
        Ok(())
    } else {
        Err(EncapError::NoRoom)
    }
}
