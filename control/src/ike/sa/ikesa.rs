//! One IKE SA: its state and child SAs, message IDs and the window of one request
//! each way (RFC 7296 2.1-2.3, 3.1), sending requests and responses, refusing a
//! peer (2.21), and the dispatch of each message to its exchange. The exchanges live
//! in the sub-modules: `init` IKE_SA_INIT (1.2), `auth` IKE_AUTH (1.2),
//! `create_child` CREATE_CHILD_SA (1.3), `informational` INFORMATIONAL (1.4),
//! `mobike` RFC 4555; `timers` retransmission, lifetimes and timeouts (2.1, 2.4, 2.8);
//! `payloads` the payload helpers they share.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::negotiate::{self as neg};
use super::{ChildId, ConnId, Ctx, DownReason, Event, FailReason, SaId};
use crate::ike::conn::{Conn, Identity, Selector};
use crate::ike::crypto::dh::KeyShare;
use crate::ike::crypto::keys::IkeKeys;
use crate::ike::crypto::sk::{open_message, seal_message, SkKeys};
use crate::ike::crypto::IkeSuite;
use crate::ike::wire::header::HeaderRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::{
    emit_payloads, parse_payloads, payloads_buffer_len, ExchangeType, Payload, PayloadType,
    WireError,
};

mod auth;
mod create_child;
mod informational;
mod init;
mod mobike;
mod payloads;
mod timers;

use timers::Deadline;

pub(crate) use mobike::Mobike;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
/// How long a rekeyed IKE SA waits for the peer's DELETE before it goes by itself.
const REKEYED_LINGER_NS: u64 = 30 * NS_PER_S;
/// MOBIKE path testing: the wait before the same request goes to the next address
/// pair (a round trip on any sane path, well below a retransmission timeout).
const PATH_PROBE_MS: u64 = 150;
/// Delay before retrying a request refused with TEMPORARY_FAILURE (RFC 7296 2.25).
const TEMP_FAILURE_RETRY_MS: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    HalfOpen,
    Established,
    /// DELETE of the IKE SA sent; waiting for the answer.
    Deleting,
    /// Replaced by a rekeyed IKE SA: only the DELETE exchange remains.
    Rekeyed,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Installed,
    /// Our CREATE_CHILD_SA rekeying it is outstanding.
    Rekeying,
    /// Replaced by a new child; the DELETE is ours or the peer's to send.
    Replaced,
    /// Our DELETE for it is outstanding.
    Deleting,
}

/// A completed rekey exchange of one child: its nonces and the child it made.
#[derive(Debug, Clone)]
struct RekeyDone {
    min_nonce: Vec<u8>,
    new: ChildId,
}

/// What an IKE SA keeps of a child SA once it is up: its keys went to the dataplane
/// with [`Event::ChildUp`], and a rekey derives new ones (RFC 7296 2.17), so none stay
/// here; the selectors do, a rekey offers them again (2.9).
#[derive(Debug, Clone)]
struct ChildSa {
    id: ChildId,
    spi_in: u32,
    spi_out: u32,
    local_ts: Box<[Selector]>,
    remote_ts: Box<[Selector]>,
}

struct Child {
    info: ChildSa,
    state: ChildState,
    rekey_at: Deadline,
    expire_at: Deadline,
    /// Our rekey of this child (we initiated) and the peer's, once each completed;
    /// both present means the exchanges collided (RFC 7296 2.8.1). Boxed: present
    /// only between a rekey and the old child's DELETE.
    ours: Option<Box<RekeyDone>>,
    theirs: Option<Box<RekeyDone>>,
}

#[derive(Debug, Clone)]
enum Req {
    CreateChild,
    RekeyChild(ChildId),
    RekeyIke,
    Dpd,
    DeleteChildren(Vec<ChildId>),
    /// Children already removed locally (hard expiry): tell the peer.
    DeleteSpis(Vec<u32>),
    DeleteIke,
    /// MOBIKE: move the SAs to the first of these pairs that answers (empty: the
    /// candidates at the time of sending).
    Update(Vec<(SocketAddr, SocketAddr)>),
    /// MOBIKE: tell the peer our address list.
    Addresses,
    /// MOBIKE responder: check that the peer answers at the pair before moving there.
    ReturnRoutability {
        local: SocketAddr,
        remote: SocketAddr,
        /// (NAT in front of us, in front of the peer) on that pair.
        nat: (bool, bool),
    },
}

enum Kind {
    Init,
    Auth {
        spi_in: u32,
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
    },
    Child {
        spi_in: u32,
        ni: Vec<u8>,
        ke: Option<KeyShare>,
        rekey: Option<ChildId>,
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
    },
    RekeyIke {
        spi: u64,
        ni: Vec<u8>,
        ke: KeyShare,
    },
    Dpd,
    DeleteChildren(Vec<ChildId>),
    DeleteIke,
    /// UPDATE_SA_ADDRESSES, its NAT detection computed for `first`.
    Update {
        first: (SocketAddr, SocketAddr),
    },
    Addresses,
    ReturnRoutability {
        cookie: Vec<u8>,
        local: SocketAddr,
        remote: SocketAddr,
        nat: (bool, bool),
    },
}

struct Pending {
    id: u32,
    data: Vec<u8>,
    local: SocketAddr,
    remote: SocketAddr,
    first_sent: u64,
    next_at: u64,
    interval_ms: u64,
    tries: u32,
    kind: Kind,
    /// Other address pairs to try in turn on retransmission, the same bytes each
    /// time (RFC 4555 3.10 path testing).
    alt: Vec<(SocketAddr, SocketAddr)>,
}

/// A request of the peer that we answer: the response carries its exchange type and
/// message ID and goes back on the pair it came in on (RFC 7296 2.11).
#[derive(Debug, Clone, Copy)]
struct PeerRequest {
    exchange: ExchangeType,
    id: u32,
    local: SocketAddr,
    remote: SocketAddr,
}

/// What a rekeyed IKE SA gives to the one that replaces it.
pub(crate) struct Handover {
    pub to: SaId,
    children: Vec<Child>,
    queue: Vec<Req>,
    vip: Option<IpAddr>,
    vip_leased: bool,
}

/// The state of the initial exchanges that an established IKE SA no longer needs: our
/// key share until the DH result (RFC 7296 1.2), the cookie to send again (2.6), both
/// IKE_SA_INIT messages and both nonces, which the AUTH payloads sign (2.15) and the
/// first child's keys come from (2.17). Boxed, and dropped
/// by `forget_handshake`: an established SA carries one empty pointer for it.
#[derive(Default)]
struct Handshake {
    ke: Option<KeyShare>,
    init_req: Vec<u8>,
    init_resp: Vec<u8>,
    cookie: Option<Vec<u8>>,
    ni: Vec<u8>,
    nr: Vec<u8>,
}

pub(crate) struct IkeSa {
    id: SaId,
    conn: ConnId,
    /// The original initiator of this IKE SA (after a rekey: who rekeyed).
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    state: State,
    local: SocketAddr,
    remote: SocketAddr,
    encap: bool,
    /// A NAT is in front of us on the current path (the peer's
    /// NAT_DETECTION_DESTINATION_IP did not match our address, RFC 7296 2.23): only
    /// then do we send NAT keepalives (RFC 3948 4).
    behind_nat: bool,
    suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    sk_out: Option<SkKeys>,
    sk_in: Option<SkKeys>,
    /// What only IKE_SA_INIT and IKE_AUTH use; `None` once established.
    hs: Option<Box<Handshake>>,
    next_req_id: u32,
    /// Our outstanding request (boxed: most of the time there is none).
    pending: Option<Box<Pending>>,
    queue: VecDeque<Req>,
    retry_at: Deadline,
    peer_next_id: u32,
    last_resp: Option<(u32, Vec<u8>)>,
    /// The last response went out while our request with the same message ID was
    /// unanswered, to (local, remote): sent again once that request is answered.
    /// Some peers take any message whose ID equals the request they are still
    /// processing for a retransmission of it and drop it (strongSwan does, which
    /// costs its retransmission timeout, a second, e.g. in the child rekey it starts
    /// while answering UPDATE_SA_ADDRESSES).
    resp_twin: Option<Box<(u32, SocketAddr, SocketAddr)>>,
    children: Vec<Child>,
    rekey_at: Deadline,
    expire_at: Deadline,
    half_open_until: Deadline,
    dpd_at: Deadline,
    /// Established without any child SA: deleted at this time unless one comes
    /// (see `Conn::childless_timeout_ms`).
    childless_until: Deadline,
    last_rx: u64,
    /// When the peer's last liveness check (an empty INFORMATIONAL request) came; 0:
    /// none yet. While they keep coming, ours wait (see `timers`).
    peer_dpd_rx: u64,
    peer_id: Option<Identity>,
    vip: Option<IpAddr>,
    vip_leased: bool,
    /// Responder: our entry in the endpoint's index of IKE_SA_INIT requests, until
    /// the SA is established (boxed: an established SA holds none).
    init_key: Option<Box<(SocketAddr, u64)>>,
    armed: Deadline,
    /// Entered in the endpoint's index by peer identity (see `Endpoint::file`).
    peer_indexed: bool,
    up_reported: bool,
    /// When the first IKE_SA_INIT was sent or received.
    started: u64,
    /// The IKE SA we created answering the peer's rekey while ours was outstanding,
    /// and the lowest nonce of that exchange (RFC 7296 2.8.2).
    rekey_theirs: Option<Box<(SaId, Vec<u8>)>>,
    /// MOBIKE, once both ends said they support it in IKE_AUTH.
    mobike: Option<Box<Mobike>>,
}

impl IkeSa {
    fn blank(
        id: SaId,
        conn: ConnId,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Self {
        IkeSa {
            id,
            conn,
            initiator,
            spi_i: 0,
            spi_r: 0,
            state: State::Dead,
            local,
            remote,
            encap: false,
            behind_nat: false,
            suite: None,
            keys: None,
            sk_out: None,
            sk_in: None,
            hs: None,
            next_req_id: 0,
            pending: None,
            queue: VecDeque::new(),
            retry_at: Deadline::NONE,
            peer_next_id: 0,
            last_resp: None,
            resp_twin: None,
            children: Vec::new(),
            rekey_at: Deadline::NONE,
            expire_at: Deadline::NONE,
            half_open_until: Deadline::NONE,
            dpd_at: Deadline::NONE,
            childless_until: Deadline::NONE,
            last_rx: 0,
            peer_dpd_rx: 0,
            peer_id: None,
            vip: None,
            vip_leased: false,
            init_key: None,
            armed: Deadline::NONE,
            peer_indexed: false,
            up_reported: false,
            started: 0,
            rekey_theirs: None,
            mobike: None,
        }
    }

    // -----------------------------------------------------------------------------
    // Accessors for the endpoint
    // -----------------------------------------------------------------------------

    /// Gives back memory the SA holds beyond what it uses now: an emptied request
    /// queue, spare room in the children after a rekey replaced one. Called each time
    /// the endpoint files the SA; frees only after such a change, so it costs a few
    /// comparisons otherwise. With 100,000 IKE SAs each idle byte counts 100 KB.
    pub fn compact(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
        if self.children.capacity() > self.children.len() {
            self.children.shrink_to_fit();
        }
        // An SA made by an IKE SA rekey starts established with all seven keys; like
        // one established by IKE_AUTH it needs SK_d alone (its SK keys hold the rest).
        if self.state == State::Established && self.hs.is_none() {
            if let Some(k) = self.keys.as_mut() {
                k.forget_all_but_sk_d();
            }
        }
    }

    /// The handshake state, made on first use.
    fn hs(&mut self) -> &mut Handshake {
        self.hs.get_or_insert_with(Box::default)
    }

    pub fn id(&self) -> SaId {
        self.id
    }
    pub fn conn_id(&self) -> ConnId {
        self.conn
    }
    pub fn is_dead(&self) -> bool {
        self.state == State::Dead
    }
    pub fn is_half_open(&self) -> bool {
        self.state == State::HalfOpen
    }
    /// Ours, in IKE_SA_INIT or IKE_AUTH.
    pub fn is_initiating(&self) -> bool {
        matches!(self.state, State::InitSent | State::AuthSent)
    }
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
    pub fn take_init_key(&mut self) -> Option<(SocketAddr, u64)> {
        self.init_key.take().map(|k| *k)
    }
    pub fn child_count(&self) -> usize {
        self.children.len()
    }
    pub fn child_ids(&self) -> Vec<ChildId> {
        self.children.iter().map(|c| c.info.id).collect()
    }
    pub fn peer_id(&self) -> Option<&Identity> {
        self.peer_id.as_ref()
    }
    pub fn vip(&self) -> Option<IpAddr> {
        self.vip
    }
    /// A child's (local, remote) traffic selectors.
    pub fn child_selectors(&self, child: ChildId) -> Option<(&[Selector], &[Selector])> {
        let c = self.children.iter().find(|c| c.info.id == child)?;
        Some((&c.info.local_ts, &c.info.remote_ts))
    }
    /// The peer started over (INITIAL_CONTACT on a new IKE SA): go without a word.
    pub fn drop_replaced(&mut self, ctx: &mut Ctx<'_>) {
        self.die(ctx, DownReason::Replaced);
    }
    pub fn note_rx(&mut self, now: u64) {
        self.last_rx = self.last_rx.max(now);
    }
    pub fn clear_armed(&mut self) {
        self.armed = Deadline::NONE;
    }
    /// Whether the SA is in the endpoint's index by peer identity.
    pub fn peer_indexed(&self) -> bool {
        self.peer_indexed
    }
    pub fn set_peer_indexed(&mut self) {
        self.peer_indexed = true;
    }
    /// Records `due` as armed; true if it differs from what was armed.
    pub fn take_armed(&mut self, due: Option<u64>) -> bool {
        let changed = self.armed.get() != due;
        self.armed = due.into();
        changed
    }
    /// Returns the child SPIs to the free set.
    pub fn release(&mut self, spis: &mut HashSet<u32>) {
        for c in &self.children {
            spis.remove(&c.info.spi_in);
        }
        if let Some(Pending {
            kind: Kind::Auth { spi_in, .. } | Kind::Child { spi_in, .. },
            ..
        }) = self.pending.as_deref()
        {
            spis.remove(spi_in);
        }
    }

    pub fn spis_match(&self, h: &HeaderRepr) -> bool {
        if h.spi_i != self.spi_i {
            return false;
        }
        // The IKE_SA_INIT response is where the initiator learns SPIr.
        self.spi_r == h.spi_r
            || (self.state == State::InitSent && h.exchange_type == ExchangeType::IKE_SA_INIT)
    }

    fn conn<'c>(&self, ctx: &Ctx<'c>) -> &'c Conn {
        // Connections are never removed while the endpoint lives, and an SA is only
        // made with a valid index.
        &ctx.conns[self.conn]
    }

    // -----------------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------------

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> HeaderRepr {
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: exchange,
            initiator: self.initiator,
            higher_version: false,
            response,
            message_id,
            length: 0,
        }
    }

    fn seal(&self, ctx: &mut Ctx<'_>, h: &HeaderRepr, payloads: &[Payload]) -> Option<Vec<u8>> {
        let mut pt = vec![0u8; payloads_buffer_len(payloads)];
        let first = emit_payloads(payloads, &mut pt).ok()?;
        let sk = self.sk_out.as_ref()?;
        seal_message(sk, ctx.rng, h, first, &pt).ok()
    }

    fn send_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        exchange: ExchangeType,
        payloads: &[Payload],
        kind: Kind,
    ) {
        let path = (self.local, self.remote);
        self.send_request_via(ctx, now, exchange, payloads, kind, path, None);
    }

    /// Sends a request on `path`, retransmitting it on `alt` in turn (None: the
    /// other candidate pairs, if MOBIKE has us test paths).
    #[allow(clippy::too_many_arguments)]
    fn send_request_via(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        exchange: ExchangeType,
        payloads: &[Payload],
        kind: Kind,
        path: (SocketAddr, SocketAddr),
        alt: Option<Vec<(SocketAddr, SocketAddr)>>,
    ) {
        let id = self.next_req_id;
        let h = self.header(exchange, false, id);
        let Some(data) = self.seal(ctx, &h, payloads) else {
            return;
        };
        self.next_req_id = self.next_req_id.wrapping_add(1);
        self.transmit_request(ctx, now, id, data, kind, path);
        if let (Some(p), Some(alt)) = (self.pending.as_mut(), alt) {
            p.alt = alt;
        }
    }

    fn transmit_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        id: u32,
        data: Vec<u8>,
        kind: Kind,
        path: (SocketAddr, SocketAddr),
    ) {
        let rt = self.conn(ctx).retransmit;
        let alt = self.path_alternatives(ctx, path);
        ctx.send(path.0, path.1, data.clone());
        let mut next_at = now + rt.initial_ms * NS_PER_MS;
        if let Some(g) = self.give_up_at(ctx, now) {
            next_at = next_at.min(g);
        }
        self.pending = Some(Box::new(Pending {
            id,
            data,
            local: path.0,
            remote: path.1,
            first_sent: now,
            next_at,
            interval_ms: rt.initial_ms,
            tries: 1,
            kind,
            alt,
        }));
    }

    fn send_response(&mut self, ctx: &mut Ctx<'_>, rq: PeerRequest, payloads: &[Payload]) {
        let PeerRequest {
            exchange,
            id,
            local,
            remote,
        } = rq;
        let h = self.header(exchange, true, id);
        if let Some(data) = self.seal(ctx, &h, payloads) {
            ctx.send(local, remote, data.clone());
            self.last_resp = Some((id, data));
            self.resp_twin = self
                .pending
                .as_ref()
                .filter(|p| p.id == id)
                .map(|_| Box::new((id, local, remote)));
        }
    }

    /// Sends the next queued request if none is outstanding.
    pub fn kick(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        self.arm_childless(ctx, now);
        while self.pending.is_none() && self.retry_at.is_none() {
            let ready = match self.state {
                State::Established => true,
                State::Rekeyed | State::Deleting => {
                    matches!(
                        self.queue.front(),
                        Some(Req::DeleteIke | Req::DeleteChildren(_) | Req::DeleteSpis(_))
                    )
                }
                _ => false,
            };
            if !ready {
                return;
            }
            let Some(req) = self.queue.pop_front() else {
                return;
            };
            self.send_req(ctx, now, req);
        }
    }

    fn send_req(&mut self, ctx: &mut Ctx<'_>, now: u64, req: Req) {
        match req {
            Req::Dpd => self.send_dpd(ctx, now),
            Req::DeleteIke => self.send_delete_ike(ctx, now),
            Req::DeleteSpis(spis) => self.send_delete_spis(ctx, now, &spis),
            Req::DeleteChildren(ids) => self.send_delete_children(ctx, now, ids),
            Req::CreateChild => {
                let c = self.conn(ctx);
                let (l, r) = self.offer_ts(c);
                self.send_child_request(ctx, now, None, l, r, None);
            }
            Req::RekeyChild(id) => {
                let Some(ch) = self.children.iter().find(|c| c.info.id == id) else {
                    return;
                };
                if ch.state != ChildState::Rekeying {
                    return;
                }
                let (l, r) = (ch.info.local_ts.to_vec(), ch.info.remote_ts.to_vec());
                self.send_child_request(ctx, now, Some(id), l, r, None);
            }
            Req::RekeyIke => self.send_rekey_ike(ctx, now, None),
            Req::Update(pairs) => self.send_update(ctx, now, pairs),
            Req::Addresses => self.send_addresses(ctx, now),
            Req::ReturnRoutability { local, remote, nat } => {
                self.send_rr(ctx, now, local, remote, nat)
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Refusing and ending
    // -----------------------------------------------------------------------------

    /// The SA ends: children down, lease released, IkeDown if it was ever up.
    fn die(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        let ids: Vec<ChildId> = self.children.iter().map(|c| c.info.id).collect();
        self.remove_children(ctx, &ids);
        if let (true, Some(v)) = (self.vip_leased, self.vip) {
            let who = self
                .peer_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default();
            ctx.pools.release(&who, v);
            self.vip_leased = false;
        }
        if let Some(Pending {
            kind: Kind::Auth { spi_in, .. } | Kind::Child { spi_in, .. },
            ..
        }) = self.pending.take().map(|p| *p)
        {
            ctx.child_spis.remove(&spi_in);
        }
        if self.up_reported || matches!(reason, DownReason::Failed(_)) && self.initiator {
            ctx.counters.ike_down += 1;
            ctx.events.push_back(Event::IkeDown {
                sa: self.id,
                reason,
            });
        }
        self.state = State::Dead;
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, reason: FailReason) {
        self.die(ctx, DownReason::Failed(reason));
    }

    /// Refuses the peer's request: the answer is the error notification alone (RFC
    /// 7296 2.21, 3.10.1) and the SA carries on.
    fn refuse_request(&mut self, ctx: &mut Ctx<'_>, rq: PeerRequest, n: NotifyRepr) {
        self.send_response(ctx, rq, &[Payload::Notify(n)]);
    }

    /// Refuses the peer altogether: the error notification answers its request, so
    /// that it learns why (RFC 7296 2.21.2), then the SA dies.
    fn refuse(&mut self, ctx: &mut Ctx<'_>, rq: PeerRequest, ty: NotifyType, reason: FailReason) {
        self.refuse_request(ctx, rq, NotifyRepr::new(ty, &[]));
        self.fail(ctx, reason);
    }

    // -----------------------------------------------------------------------------
    // Receiving
    // -----------------------------------------------------------------------------

    pub fn handle_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        h: &HeaderRepr,
        data: &[u8],
    ) {
        if self.state == State::Dead {
            ctx.counters.ignored += 1;
            return;
        }
        if h.exchange_type == ExchangeType::IKE_SA_INIT {
            match (self.state, h.response) {
                (State::InitSent, true) => {
                    if self.pending.as_ref().is_some_and(|p| p.id == 0) {
                        self.handle_init_response(ctx, now, h, data);
                    }
                }
                (State::HalfOpen, false)
                    if self
                        .hs
                        .as_ref()
                        .is_some_and(|hs| data == hs.init_req.as_slice()) =>
                {
                    ctx.counters.resent_responses += 1;
                    let d = self
                        .hs
                        .as_ref()
                        .map_or_else(Vec::new, |hs| hs.init_resp.clone());
                    ctx.send(local, remote, d);
                }
                _ => ctx.counters.ignored += 1,
            }
            return;
        }
        let Some(sk_in) = self.sk_in.as_ref() else {
            ctx.counters.ignored += 1;
            return;
        };
        // The I flag must name the other end (RFC 7296 3.1).
        if h.initiator == self.initiator {
            ctx.counters.ignored += 1;
            return;
        }
        if h.response {
            let expected = self.pending.as_ref().map(|p| p.id);
            if expected != Some(h.message_id) {
                ctx.counters.unexpected_response += 1;
                return;
            }
            let Ok(opened) = open_message(sk_in, data) else {
                ctx.counters.decrypt_failed += 1;
                return;
            };
            let Ok(p) = parse_payloads(opened.first_inner, &opened.plaintext) else {
                ctx.counters.malformed += 1;
                return;
            };
            self.last_rx = now;
            let Some(pending) = self.pending.take() else {
                return;
            };
            if let (Some(&(id, l, r)), Some((rid, d))) =
                (self.resp_twin.take().as_deref(), &self.last_resp)
            {
                if id == pending.id && *rid == id {
                    ctx.counters.resent_responses += 1;
                    ctx.send(l, r, d.clone());
                }
            }
            let via = (local, remote);
            let was_update = matches!(pending.kind, Kind::Update { .. });
            match pending.kind {
                k @ Kind::Auth { .. } => {
                    if self.state == State::AuthSent && h.exchange_type == ExchangeType::IKE_AUTH {
                        self.handle_auth_response(ctx, now, &p, k);
                        self.forget_handshake();
                    }
                }
                k @ Kind::Child { .. } => self.handle_child_response(ctx, now, &p, k),
                k @ Kind::RekeyIke { .. } => self.handle_rekey_ike_response(ctx, now, &p, k),
                Kind::Dpd | Kind::Init | Kind::Addresses => {}
                k @ Kind::Update { .. } => self.handle_update_response(ctx, now, &p, k, via),
                k @ Kind::ReturnRoutability { .. } => self.handle_rr_response(ctx, now, &p, k),
                Kind::DeleteChildren(ids) => self.remove_children(ctx, &ids),
                Kind::DeleteIke => {
                    let reason = if self.state == State::Rekeyed {
                        DownReason::Rekeyed
                    } else {
                        DownReason::Deleted
                    };
                    self.die(ctx, reason);
                    return;
                }
            }
            self.after_response(&p, via, was_update);
            self.kick(ctx, now);
            return;
        }
        // A request.
        let rq = PeerRequest {
            exchange: h.exchange_type,
            id: h.message_id,
            local,
            remote,
        };
        if h.message_id == self.peer_next_id {
            let opened = match open_message(sk_in, data) {
                Ok(o) => o,
                Err(_) => {
                    ctx.counters.decrypt_failed += 1;
                    return;
                }
            };
            self.last_rx = now;
            let p = match parse_payloads(opened.first_inner, &opened.plaintext) {
                Ok(p) => p,
                Err(WireError::UnsupportedCriticalPayload(ty)) => {
                    ctx.counters.unsupported_critical += 1;
                    self.peer_next_id = self.peer_next_id.wrapping_add(1);
                    self.refuse_request(ctx, rq, NotifyRepr::unsupported_critical_payload(ty));
                    return;
                }
                Err(_) => {
                    ctx.counters.malformed += 1;
                    return;
                }
            };
            self.peer_next_id = self.peer_next_id.wrapping_add(1);
            match (h.exchange_type, self.state) {
                (ExchangeType::IKE_AUTH, State::HalfOpen) => {
                    self.handle_auth_request(ctx, now, rq, &p);
                    self.forget_handshake();
                }
                (ExchangeType::CREATE_CHILD_SA, _) => self.handle_child_request(ctx, now, rq, &p),
                (ExchangeType::INFORMATIONAL, _) => self.handle_info_request(ctx, now, rq, &p),
                _ => {
                    ctx.counters.ignored += 1;
                    self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
                }
            }
            self.kick(ctx, now);
        } else if self.peer_next_id.wrapping_sub(1) == h.message_id {
            // A retransmission: resend the cached response once the request proves
            // it comes from the peer (RFC 7296 2.1).
            if open_message(sk_in, data).is_err() {
                ctx.counters.decrypt_failed += 1;
                return;
            }
            if let Some((id, d)) = &self.last_resp {
                if *id == h.message_id {
                    ctx.counters.resent_responses += 1;
                    let d = d.clone();
                    ctx.send(local, remote, d);
                }
            }
        } else {
            ctx.counters.msgid_out_of_window += 1;
        }
    }
}
