//! What the [`Endpoint`](super::Endpoint) hands its caller: datagrams to send, and the
//! events to act on (IKE SAs and child SAs up and down, paths that moved, RFC 7296 1.3,
//! 2.8 and RFC 4555 3.5), with the reasons an SA ended or failed.

use std::net::{IpAddr, SocketAddr};

use super::{ChildId, ConnId, SaId};
use crate::ike::conn::{Identity, Selector};
use crate::ike::crypto::IkeSuite;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// A child SA for the dataplane: SPIs, transform, keys (as `shared::sa::EspKey` takes
/// them: key || salt for AEAD, encryption key || integrity key for CBC) and selectors,
/// from this end's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pub id: ChildId,
    pub spi_in: u32,
    pub spi_out: u32,
    pub cipher: shared::sa::EspCipher,
    pub esn: bool,
    pub key_in: Vec<u8>,
    pub key_out: Vec<u8>,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
    /// The child this one replaces (a rekey): install this one, then remove that one
    /// when its [`Event::ChildDown`] comes.
    pub replaces: Option<ChildId>,
    /// We answered this rekey: keep sending on `replaces` until it goes down. The
    /// peer starts using the new SA only once it has our response, and its DELETE of
    /// the old SA follows that, so switching then loses nothing in between (RFC 7296
    /// 2.8).
    pub defer_outbound: bool,
}

impl core::fmt::Debug for ChildInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChildInfo")
            .field("id", &self.id)
            .field("spi_in", &format_args!("{:#010x}", self.spi_in))
            .field("spi_out", &format_args!("{:#010x}", self.spi_out))
            .field("cipher", &self.cipher)
            .field("esn", &self.esn)
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("replaces", &self.replaces)
            .field("defer_outbound", &self.defer_outbound)
            .finish_non_exhaustive()
    }
}

/// Why an IKE SA ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// We deleted it (command or hard lifetime) and the peer confirmed or timed out.
    Deleted,
    /// The peer deleted it.
    DeletedByPeer,
    /// A request went unanswered through all retransmissions (DPD or any other).
    PeerDead,
    /// Replaced by a rekeyed IKE SA.
    Rekeyed,
    /// The hard lifetime passed.
    Expired,
    /// The peer authenticated a new IKE SA with INITIAL_CONTACT: it lost this one
    /// (RFC 7296 2.4), which goes without a DELETE exchange.
    Replaced,
    /// Setup failed: no proposal chosen, authentication failed, etc.
    Failed(FailReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    NoProposalChosen,
    AuthenticationFailed,
    /// The peer answered with an error notification of this type.
    PeerError(u16),
    /// The peer's answer broke the protocol (missing payloads, bad key share...).
    InvalidResponse,
    /// No answer to IKE_SA_INIT or IKE_AUTH.
    Timeout,
    /// We refused the peer's child SA with this error notification (no room in the
    /// dataplane, the address pool exhausted, selectors or proposals unacceptable).
    Refused(u16),
    /// Half-open for too long (responder).
    HalfOpenTimeout,
}

/// What the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An IKE SA is established. `vip` is our virtual IP (client) or the one leased
    /// to the peer (gateway).
    IkeUp {
        sa: SaId,
        conn: ConnId,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
        encap: bool,
        /// A NAT is in front of this end (RFC 7296 2.23): the dataplane sends NAT
        /// keepalives on the path (RFC 3948 4), and only then.
        behind_nat: bool,
        peer_id: Option<Identity>,
        vip: Option<IpAddr>,
        /// The negotiated IKE suite.
        suite: IkeSuite,
        /// From our first IKE_SA_INIT (initiator) or the peer's (responder) to now;
        /// for an SA born of a rekey, the rekey exchange.
        setup_ns: u64,
    },
    /// Install a child SA; it follows the path of IKE SA `sa`.
    ChildUp { sa: SaId, child: ChildInfo },
    /// Remove a child SA from the dataplane.
    ChildDown {
        sa: SaId,
        child: ChildId,
        spi_in: u32,
        spi_out: u32,
    },
    /// A child could not be negotiated (the IKE SA stays up): the peer refused ours
    /// ([`FailReason::PeerError`] and others) or we refused the peer's
    /// ([`FailReason::Refused`]).
    ChildFailed { sa: SaId, reason: FailReason },
    /// The IKE SA `old` was rekeyed into `new`: its children (and path) now belong to
    /// `new`.
    IkeRekeyed { old: SaId, new: SaId },
    /// The addresses or encapsulation the SA's traffic uses changed.
    PathChanged {
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
        encap: bool,
        /// As in [`Event::IkeUp`].
        behind_nat: bool,
    },
    /// MOBIKE: we sent an UPDATE_SA_ADDRESSES for `local` -> `remote` (RFC 4555 3.5),
    /// the first of its transmissions; the SAs move when it is answered
    /// ([`Event::PathChanged`]). Nothing to install: for those who time handovers.
    UpdateSent {
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// MOBIKE: the responder accepted our UPDATE_SA_ADDRESSES for `local` -> `remote`
    /// (RFC 4555 3.5); the SAs use that pair from now on (a [`Event::PathChanged`]
    /// follows unless the move was made when the update left, break-before-make).
    UpdateAnswered {
        sa: SaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The IKE SA is gone; its remaining children were reported down before this.
    IkeDown { sa: SaId, reason: DownReason },
}
