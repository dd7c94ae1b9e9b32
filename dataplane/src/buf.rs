//! Packet buffers: fixed-size, allocated once at start-up, recycled forever.
//!
//! A buffer keeps `HEADROOM` bytes in front of the data so encapsulation can prepend the
//! ESP header, IV, UDP, IP and Ethernet headers in place, and tail room behind it for
//! padding and the ICV.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Bytes reserved in front of received data: Ethernet 14 + IPv6 40 + UDP 8 + ESP 8 + IV 16
/// (AES-CBC, RFC 3602) = 86, rounded up to keep the payload cache-line aligned.
pub const HEADROOM: usize = 128;
/// Largest frame or datagram a port may deliver; longer ones are dropped (`drop_oversize`).
pub const MAX_FRAME: usize = 2048;
/// Frame size of the large buffers that carry IKE datagrams longer than `MAX_FRAME`
/// between the `udp` port and the control plane: any UDP payload (IPv4 65,507 and IPv6
/// 65,527 bytes at most) fits.
pub const LARGE_FRAME: usize = 65_536;
/// Room behind the largest frame: padding (up to 15 for AES-CBC) + pad length + next
/// header + ICV (up to 32, HMAC-SHA-512-256) = 49, rounded up.
pub const TAILROOM: usize = 64;
/// Total size of one buffer.
pub const BUF_SIZE: usize = HEADROOM + MAX_FRAME + TAILROOM;

// Every transform's header, IV, padding, trailer and ICV fit around an inner packet
// received at the standard head room.
const _: () = {
    use shared::sa::{AES_BLOCK, MAX_ICV_LEN, MAX_IV_LEN};
    assert!(TAILROOM >= AES_BLOCK - 1 + 2 + MAX_ICV_LEN);
    assert!(HEADROOM >= 14 + 40 + 8 + 8 + MAX_IV_LEN);
};

/// Per-packet metadata carried beside the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Datagram-layer ports: on receive, the remote address the datagram came from; on
    /// transmit, the local address to send from. Unused by other layers.
    pub src: SocketAddr,
    /// Datagram-layer ports: on receive, the local address it arrived at; on transmit,
    /// the remote address to send to.
    pub dst: SocketAddr,
    /// Worker that allocated this buffer (handoff returns it there).
    pub origin: u16,
    /// Free for the worker's bookkeeping between pipeline stages (e.g. the path id whose
    /// first packet this is); ports ignore it and never change it.
    pub tag: u32,
}

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

impl Default for Meta {
    fn default() -> Self {
        Meta {
            src: UNSPECIFIED,
            dst: UNSPECIFIED,
            origin: 0,
            tag: 0,
        }
    }
}

/// One packet buffer. The data window is `start..end` inside a `BUF_SIZE` allocation.
pub struct PacketBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
    pub meta: Meta,
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("start", &self.start)
            .field("len", &self.len())
            .field("meta", &self.meta)
            .finish()
    }
}

impl PacketBuf {
    /// Allocates a buffer (start-up only; never on the packet path).
    pub fn new() -> PacketBuf {
        PacketBuf::with_frame(MAX_FRAME)
    }

    /// Allocates a buffer for frames of up to `frame` bytes (at least `MAX_FRAME`): the
    /// few large buffers that carry IKE messages longer than a packet buffer between a
    /// port and the control plane. Ports receive into standard buffers only.
    pub fn with_frame(frame: usize) -> PacketBuf {
        let frame = frame.max(MAX_FRAME);
        PacketBuf {
            data: vec![0u8; HEADROOM + frame + TAILROOM].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
            meta: Meta::default(),
        }
    }

    /// The longest frame this buffer holds: `MAX_FRAME`, or more for a large buffer.
    #[inline]
    pub fn frame_capacity(&self) -> usize {
        self.data.len() - HEADROOM - TAILROOM
    }

    /// Allocates `n` buffers.
    pub fn alloc(n: usize) -> Vec<PacketBuf> {
        (0..n).map(|_| PacketBuf::new()).collect()
    }

    /// Empties the buffer and restores the standard head room.
    #[inline]
    pub fn reset(&mut self) {
        self.start = HEADROOM;
        self.end = HEADROOM;
        self.meta = Meta::default();
    }

    /// The space a receiving port writes into: `MAX_FRAME` bytes after the head room.
    /// Follow with `set_len`.
    #[inline]
    pub fn rx_space(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        &mut self.data[HEADROOM..HEADROOM + MAX_FRAME]
    }

    /// Sets the data length after writing into `rx_space` (clamped to `MAX_FRAME`).
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.end = self.start + len.min(MAX_FRAME);
    }

    /// Copies `bytes` in as the whole data (at the standard head room). Returns false and
    /// leaves the buffer empty if longer than `frame_capacity()`.
    #[inline]
    pub fn fill(&mut self, bytes: &[u8]) -> bool {
        self.fill_parts(bytes, &[])
    }

    /// Copies `head` followed by `tail` in as the whole data (a datagram a port received
    /// in two pieces). Returns false and leaves the buffer empty if longer than
    /// `frame_capacity()`.
    #[inline]
    pub fn fill_parts(&mut self, head: &[u8], tail: &[u8]) -> bool {
        self.start = HEADROOM;
        let len = head.len() + tail.len();
        if len > self.frame_capacity() {
            self.end = HEADROOM;
            return false;
        }
        self.data[HEADROOM..HEADROOM + head.len()].copy_from_slice(head);
        self.data[HEADROOM + head.len()..HEADROOM + len].copy_from_slice(tail);
        self.end = HEADROOM + len;
        true
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    #[inline]
    pub fn tailroom(&self) -> usize {
        self.data.len() - self.end
    }

    /// Grows the data window by `n` bytes at the front and returns them.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.data[self.start..self.start + n])
    }

    /// Grows the data window by `n` bytes at the back and returns them.
    #[inline]
    pub fn push_back(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.end;
        self.end += n;
        Some(&mut self.data[old..self.end])
    }

    /// Removes `n` bytes from the front. Returns false (unchanged) if shorter.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n;
        true
    }

    /// Shortens the data to `len` bytes. Returns false (unchanged) if already shorter.
    #[inline]
    pub fn truncate(&mut self, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        self.end = self.start + len;
        true
    }

    /// The whole allocation with the data window's bounds, for in-place transforms that
    /// work on the bytes around the data (encapsulation writes headers before it and the
    /// trailer after it). Use `set_window` to commit the new bounds.
    #[inline]
    pub fn raw_mut(&mut self) -> (&mut [u8], usize, usize) {
        (&mut self.data, self.start, self.end)
    }

    /// Sets the data window to `start..end` of the allocation. Returns false (unchanged)
    /// if out of bounds.
    #[inline]
    pub fn set_window(&mut self, start: usize, end: usize) -> bool {
        if start > end || end > self.data.len() {
            return false;
        }
        self.start = start;
        self.end = end;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_pull_respect_bounds() {
        let mut b = PacketBuf::new();
        assert!(b.fill(&[1, 2, 3]));
        assert_eq!(b.data(), &[1, 2, 3]);
        b.push_front(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert!(b.push_front(HEADROOM).is_none());
        b.push_back(1).unwrap()[0] = 7;
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 7]);
        assert!(b.pull_front(2));
        assert!(!b.pull_front(100));
        assert!(b.truncate(2));
        assert_eq!(b.data(), &[1, 2]);
        assert!(!b.fill(&vec![0u8; MAX_FRAME + 1]));
        assert!(b.is_empty());
        assert!(b.push_back(b.tailroom() + 1).is_none());
        assert!(!b.set_window(10, 5));
        assert!(!b.set_window(0, BUF_SIZE + 1));
    }

    #[test]
    fn large_buffers_hold_what_standard_ones_refuse() {
        let big = vec![7u8; 9000];
        let mut b = PacketBuf::new();
        assert_eq!(b.frame_capacity(), MAX_FRAME);
        assert!(!b.fill_parts(&big[..MAX_FRAME], &big[MAX_FRAME..]));
        assert!(b.is_empty());
        let mut l = PacketBuf::with_frame(65_536);
        assert_eq!(l.frame_capacity(), 65_536);
        assert!(l.fill_parts(&big[..MAX_FRAME], &big[MAX_FRAME..]));
        assert_eq!(l.data(), &big[..]);
        assert!(l.fill(&[1, 2, 3]));
        assert_eq!(l.data(), &[1, 2, 3]);
        assert!(!l.fill(&vec![0u8; 65_537]));
        assert!(l.is_empty());
        // Room behind the data grows with the buffer (IKE appended after the marker).
        assert!(l.fill(&[0; 4]));
        assert!(l.push_back(9000).is_some());
        assert_eq!(l.len(), 9004);
    }
}
