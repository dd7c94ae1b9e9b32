//! MOBIKE (RFC 4555) on one IKE SA: its state, the support and addresses IKE_AUTH
//! carries (3.2, 3.4), the address sets each end announces (3.6), NAT detection per
//! path (3.5, 3.8), the responder following an UPDATE_SA_ADDRESSES (3.5) after an
//! optional return routability check (3.7), and NO_NATS_ALLOWED (3.9, 4.2.6). The
//! side of the end that decides (the pairs to try, path testing, sending the updates)
//! is in [`initiator`].
//!
//! One rule shapes the rest: only UPDATE_SA_ADDRESSES moves an SA. A request or
//! response arriving from another address changes nothing by itself (no NAT-T
//! "dynamic update" under MOBIKE), except that the initiator, seeing an answer come
//! back over another pair, knows that pair works and sends an update for it.

use std::net::{IpAddr, SocketAddr};

use super::init::nat_hash;
use super::payloads::{notifies, notify};
use super::{Ctx, Event, IkeSa, Kind, Payload, Req, NS_PER_MS};
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::ExchangeType;

mod initiator;

type Pair = (SocketAddr, SocketAddr);

/// Longest address list we keep from a peer: a hostile one cannot grow our state.
const MAX_PEER_ADDRS: usize = 16;

/// The MOBIKE state of an IKE SA (both ends sent MOBIKE_SUPPORTED).
#[derive(Debug, Clone, Default)]
pub(crate) struct Mobike {
    /// We are the original initiator, the end that decides which addresses the SAs
    /// use (RFC 4555 3.1). Survives IKE SA rekeys.
    pub decides: bool,
    /// The peer's additional addresses, its latest list (RFC 4555 3.6: newest wins).
    pub peer_addrs: Vec<IpAddr>,
    /// The list we last announced (ours, without the SA's current address).
    pub announced: Vec<IpAddr>,
    /// The address set changed while an update was in flight: its answer is stale
    /// and a new update follows it (RFC 4555 3.5).
    pub stale: bool,
    /// Pairs the responder refused (UNEXPECTED_NAT_DETECTED, UNACCEPTABLE_ADDRESSES)
    /// since our addresses last changed.
    pub refused: Vec<Pair>,
    /// NAT_DETECTION_DESTINATION_IP the responder last computed for us: when it
    /// changes, our NAT mapping did (RFC 4555 3.8).
    pub mapped: Option<Vec<u8>>,
    /// The NAT state of the current path.
    pub nat: bool,
    /// The peer announced, from another address, a list without the address we
    /// use: it lost it (a responder moving its clients with plain RFC 4555, as in the
    /// ipsec list thread of 2018); the pairs with it are out.
    pub peer_left: bool,
    /// The path our outbound was switched to ahead of the answer (break-before-
    /// make), so that the answer confirming it publishes nothing new.
    pub early: Option<(SocketAddr, SocketAddr, bool)>,
}

/// NO_NATS_ALLOWED data: source and destination addresses and ports of the packet
/// (RFC 4555 4.2.6).
fn no_nats_data(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut d = Vec::with_capacity(36);
    for a in [src.ip(), dst.ip()] {
        match a {
            IpAddr::V4(a) => d.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => d.extend_from_slice(&a.octets()),
        }
    }
    d.extend_from_slice(&src.port().to_be_bytes());
    d.extend_from_slice(&dst.port().to_be_bytes());
    d
}

/// A peer address a reply can go to: what an announced list may hold and an update may
/// come from.
fn usable_peer_addr(a: IpAddr) -> bool {
    !a.is_unspecified() && !a.is_multicast()
}

fn push_unique(v: &mut Vec<IpAddr>, a: IpAddr) {
    if !v.contains(&a) {
        v.push(a);
    }
}

impl IkeSa {
    // -----------------------------------------------------------------------------
    // Accessors
    // -----------------------------------------------------------------------------

    pub fn mobike(&self) -> bool {
        self.mobike.is_some()
    }

    /// The addresses and encapsulation the SA uses now.
    pub fn path(&self) -> (SocketAddr, SocketAddr, bool) {
        (self.local, self.remote, self.encap)
    }

    /// The peer's addresses: the one in use, then its announced list, then the
    /// configured ones (the seed's "latest available peer address list").
    pub fn peer_addrs(&self, ctx: &Ctx<'_>) -> Vec<IpAddr> {
        let mut v = vec![self.remote.ip()];
        if let Some(m) = &self.mobike {
            for a in &m.peer_addrs {
                push_unique(&mut v, *a);
            }
        }
        for a in &self.conn(ctx).peer_addrs {
            push_unique(&mut v, a.ip());
        }
        v
    }

    /// Our usable addresses for this SA: the connection's own (or, without any, all
    /// of the host's) that the host has now.
    fn own_addrs(&self, ctx: &Ctx<'_>) -> Vec<IpAddr> {
        let c = self.conn(ctx);
        if c.local_addrs.is_empty() {
            return ctx.own_addrs.to_vec();
        }
        let mut v = Vec::new();
        for a in &c.local_addrs {
            if ctx.own_addrs.contains(&a.ip()) {
                push_unique(&mut v, a.ip());
            }
        }
        v
    }

    /// What we announce: our addresses other than the SA's current one; a gateway
    /// announces at most `mobikeaddrpergw` of them.
    fn announce_list(&self, ctx: &Ctx<'_>) -> Vec<IpAddr> {
        let mut own = self.own_addrs(ctx);
        let limit = self.conn(ctx).mobike.addrs_per_gw as usize;
        if !self.mobike.as_ref().is_some_and(|m| m.decides) && limit > 0 {
            own.truncate(limit);
        }
        own.retain(|a| *a != self.local.ip());
        own
    }

    fn address_payloads(list: &[IpAddr]) -> Vec<Payload> {
        if list.is_empty() {
            return vec![Payload::Notify(NotifyRepr::new(
                NotifyType::NO_ADDITIONAL_ADDRESSES,
                &[],
            ))];
        }
        list.iter()
            .map(|a| Payload::Notify(NotifyRepr::additional_address(*a)))
            .collect()
    }

    /// NAT-D for a message from `local` to `remote` (RFC 4555 3.5, 3.8); the
    /// source hash is a fake one under forced encapsulation, as in IKE_SA_INIT.
    fn nat_d(&self, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr) -> [Payload; 2] {
        [
            Payload::Notify(NotifyRepr::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &self.nat_d_source(ctx, self.spi_r, local),
            )),
            Payload::Notify(NotifyRepr::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &nat_hash(self.spi_i, self.spi_r, remote),
            )),
        ]
    }

    /// (NAT in front of us, NAT in front of the peer) from the peer's NAT-D payloads
    /// about a message that went from `remote` to `local`.
    fn nat_of(&self, p: &[Payload], local: SocketAddr, remote: SocketAddr) -> Option<(bool, bool)> {
        let dst = notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP)?;
        let mut src = notifies(p, NotifyType::NAT_DETECTION_SOURCE_IP).peekable();
        src.peek()?;
        let theirs = nat_hash(self.spi_i, self.spi_r, remote);
        let nat_remote = !src.any(|n| n.data == theirs);
        let nat_local = dst.data != nat_hash(self.spi_i, self.spi_r, local);
        Some((nat_local, nat_remote))
    }

    /// The peer's address list from ADDITIONAL_* / NO_ADDITIONAL_ADDRESSES, if the
    /// message has one (RFC 4555 3.6).
    fn take_peer_addrs(&mut self, p: &[Payload]) {
        let none = notify(p, NotifyType::NO_ADDITIONAL_ADDRESSES).is_some();
        let mut list = Vec::new();
        for n in p.iter().filter_map(|x| match x {
            Payload::Notify(n) => Some(n),
            _ => None,
        }) {
            if let Some(a) = n.address() {
                if list.len() < MAX_PEER_ADDRS && usable_peer_addr(a) {
                    push_unique(&mut list, a);
                }
            }
        }
        if let Some(m) = self.mobike.as_mut() {
            if none || !list.is_empty() {
                m.peer_addrs = list;
            }
        }
    }

    fn move_to(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        (nat_local, nat_remote): (bool, bool),
    ) {
        let nat = nat_local || nat_remote;
        let encap = nat || self.conn(ctx).force_encap;
        if let Some(m) = self.mobike.as_mut() {
            m.nat = nat;
        }
        let mut published = false;
        if let Some(m) = self.mobike.as_mut() {
            m.peer_left = false;
            published =
                m.early.take() == Some((local, remote, encap)) && self.behind_nat == nat_local;
        }
        let moved = (self.local, self.remote, self.encap) != (local, remote, encap);
        if !moved && self.behind_nat == nat_local {
            return;
        }
        self.local = local;
        self.remote = remote;
        self.encap = encap;
        self.behind_nat = nat_local;
        if moved {
            ctx.counters.mobike_moves += 1;
            self.redirect_pending(ctx, now);
        }
        if published {
            return;
        }
        ctx.events.push_back(Event::PathChanged {
            sa: self.id,
            local,
            remote,
            encap,
            behind_nat: nat_local,
        });
    }

    /// The path changed under a request of ours still unanswered (we took the peer's
    /// UPDATE_SA_ADDRESSES, or its new address passed the return routability check):
    /// the same bytes go the new way at once, and a DPD deadline counts from now, as
    /// the peer has just shown it is alive. Left on the old path, a liveness check
    /// sent just before the move would declare a peer dead that had only moved.
    fn redirect_pending(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let path = (self.local, self.remote);
        let initial_ms = self.conn(ctx).retransmit.initial_ms;
        let give_up = self.give_up_at(ctx, now);
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if (p.local, p.remote) == path {
            return;
        }
        (p.local, p.remote) = path;
        p.alt.clear();
        p.first_sent = now;
        p.tries = 1;
        p.interval_ms = initial_ms;
        p.next_at = now + initial_ms * NS_PER_MS;
        if let Some(g) = give_up {
            p.next_at = p.next_at.min(g);
        }
        ctx.counters.retransmits += 1;
        ctx.send(path.0, path.1, p.data.clone());
    }

    // -----------------------------------------------------------------------------
    // IKE_AUTH
    // -----------------------------------------------------------------------------

    /// Initiator: what IKE_AUTH carries for MOBIKE.
    pub(super) fn mobike_auth_request(&self, ctx: &Ctx<'_>, p: &mut Vec<Payload>) {
        let c = self.conn(ctx);
        if !c.mobike.enabled {
            return;
        }
        p.push(Payload::Notify(NotifyRepr::new(
            NotifyType::MOBIKE_SUPPORTED,
            &[],
        )));
        let mut own = self.own_addrs(ctx);
        own.retain(|a| *a != self.local.ip());
        for a in own {
            p.push(Payload::Notify(NotifyRepr::additional_address(a)));
        }
        if c.mobike.disallow_nat {
            p.push(Payload::Notify(NotifyRepr::new(
                NotifyType::NO_NATS_ALLOWED,
                &no_nats_data(self.local, self.remote),
            )));
        }
    }

    /// Responder: whether a NO_NATS_ALLOWED in the request is contradicted by the
    /// addresses it arrived with (RFC 4555 3.9).
    pub(super) fn nat_forbidden(p: &[Payload], local: SocketAddr, remote: SocketAddr) -> bool {
        notify(p, NotifyType::NO_NATS_ALLOWED)
            .is_some_and(|n| n.data != no_nats_data(remote, local))
    }

    /// Responder: agree to MOBIKE if the connection allows it and the peer offered
    /// it; answer with our own support and addresses.
    pub(super) fn mobike_auth_respond(
        &mut self,
        ctx: &Ctx<'_>,
        p: &[Payload],
        resp: &mut Vec<Payload>,
    ) {
        if !self.conn(ctx).mobike.enabled || notify(p, NotifyType::MOBIKE_SUPPORTED).is_none() {
            return;
        }
        self.mobike = Some(Box::new(Mobike {
            decides: false,
            nat: self.encap && !self.conn(ctx).force_encap,
            ..Mobike::default()
        }));
        self.take_peer_addrs(p);
        resp.push(Payload::Notify(NotifyRepr::new(
            NotifyType::MOBIKE_SUPPORTED,
            &[],
        )));
        let list = self.announce_list(ctx);
        for a in &list {
            resp.push(Payload::Notify(NotifyRepr::additional_address(*a)));
        }
        if let Some(m) = self.mobike.as_mut() {
            m.announced = list;
        }
    }

    /// Initiator: the responder's answer decides whether MOBIKE is on.
    pub(super) fn mobike_auth_response(&mut self, ctx: &Ctx<'_>, p: &[Payload]) {
        if !self.conn(ctx).mobike.enabled || notify(p, NotifyType::MOBIKE_SUPPORTED).is_none() {
            return;
        }
        let mut own = self.own_addrs(ctx);
        own.retain(|a| *a != self.local.ip());
        self.mobike = Some(Box::new(Mobike {
            decides: true,
            announced: own,
            nat: self.encap && !self.conn(ctx).force_encap,
            ..Mobike::default()
        }));
        self.take_peer_addrs(p);
    }

    // -----------------------------------------------------------------------------
    // Requests we send
    // -----------------------------------------------------------------------------

    pub(super) fn send_addresses(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let list = self.announce_list(ctx);
        let p = Self::address_payloads(&list);
        if let Some(m) = self.mobike.as_mut() {
            m.announced = list;
        }
        // Lost the address we use: say it from one we have, so that the list
        // (which counts the source as ours) tells the initiator to move.
        let mut from = self.local;
        if !self.own_addrs(ctx).contains(&from.ip()) {
            if let Some(a) = self
                .own_addrs(ctx)
                .into_iter()
                .find(|a| a.is_ipv4() == self.remote.ip().is_ipv4())
            {
                from = SocketAddr::new(a, from.port());
            }
        }
        let path = (from, self.remote);
        self.send_request_via(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &p,
            Kind::Addresses,
            path,
            Some(Vec::new()),
        );
    }

    pub(super) fn send_rr(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        nat: (bool, bool),
    ) {
        let mut cookie = vec![0u8; 16];
        ctx.rng.fill(&mut cookie);
        let p = [Payload::Notify(NotifyRepr::new(
            NotifyType::COOKIE2,
            &cookie,
        ))];
        let kind = Kind::ReturnRoutability {
            cookie,
            local,
            remote,
            nat,
        };
        self.send_request_via(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &p,
            kind,
            (local, remote),
            Some(Vec::new()),
        );
    }

    // -----------------------------------------------------------------------------
    // Responses we get
    // -----------------------------------------------------------------------------

    pub(super) fn handle_rr_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        kind: Kind,
    ) {
        let Kind::ReturnRoutability {
            cookie,
            local,
            remote,
            nat,
        } = kind
        else {
            return;
        };
        if notify(p, NotifyType::COOKIE2).is_some_and(|n| n.data == cookie) {
            self.move_to(ctx, now, local, remote, nat);
        } else {
            ctx.counters.mobike_rr_failed += 1;
        }
    }

    // -----------------------------------------------------------------------------
    // Requests we answer
    // -----------------------------------------------------------------------------

    /// MOBIKE's part of an INFORMATIONAL request that came in on `local` from
    /// `remote`: address lists, UPDATE_SA_ADDRESSES, NAT-D and COOKIE2. Adds what the
    /// response carries; returns false if the request must be refused with what is
    /// already in `resp`.
    pub(super) fn mobike_info_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        local: SocketAddr,
        remote: SocketAddr,
        resp: &mut Vec<Payload>,
    ) {
        if let Some(c) = notify(p, NotifyType::COOKIE2) {
            // RFC 4555 4.2.5: echo it, whoever asks.
            resp.push(Payload::Notify(NotifyRepr::new(
                NotifyType::COOKIE2,
                &c.data,
            )));
        }
        let Some(m) = self.mobike.as_ref() else {
            return;
        };
        let decides = m.decides;
        let announced = notify(p, NotifyType::NO_ADDITIONAL_ADDRESSES).is_some()
            || p.iter()
                .any(|x| matches!(x, Payload::Notify(n) if n.address().is_some()));
        self.take_peer_addrs(p);
        if decides && announced && remote.ip() != self.remote.ip() {
            // The list comes from another address of the peer; without the one we
            // use, that one is gone: move (RFC 4555 3.6, the source counts).
            let keeps = self
                .mobike
                .as_ref()
                .is_some_and(|m| m.peer_addrs.contains(&self.remote.ip()));
            if let (false, Some(m)) = (keeps, self.mobike.as_mut()) {
                if !m.peer_addrs.contains(&remote.ip()) {
                    m.peer_addrs.insert(0, remote.ip());
                }
                m.peer_left = true;
                self.queue.retain(|r| !matches!(r, Req::Update(_)));
                self.queue.push_front(Req::Update(Vec::new()));
            }
        }
        let nat_d = self.nat_of(p, local, remote);
        let update = notify(p, NotifyType::UPDATE_SA_ADDRESSES).is_some();
        if update && !decides {
            if Self::nat_forbidden(p, local, remote) {
                ctx.counters.mobike_refused += 1;
                resp.push(Payload::Notify(NotifyRepr::new(
                    NotifyType::UNEXPECTED_NAT_DETECTED,
                    &[],
                )));
                return;
            }
            let moving = (local, remote) != (self.local, self.remote);
            if moving && self.unacceptable(ctx, local, remote) {
                ctx.counters.mobike_refused += 1;
                resp.push(Payload::Notify(NotifyRepr::new(
                    NotifyType::UNACCEPTABLE_ADDRESSES,
                    &[],
                )));
                return;
            }
            let nat = nat_d.unwrap_or((false, false));
            ctx.counters.mobike_updates_received += 1;
            if moving && self.conn(ctx).mobike.rr_check {
                // RFC 4555 3.7: the new address must answer before traffic goes
                // there.
                self.queue
                    .retain(|r| !matches!(r, Req::ReturnRoutability { .. }));
                self.queue
                    .push_front(Req::ReturnRoutability { local, remote, nat });
            } else {
                self.move_to(ctx, now, local, remote, nat);
            }
        }
        if nat_d.is_some() {
            resp.extend(self.nat_d(ctx, local, remote));
        }
    }

    /// RFC 4555 3.5: a pair our policy does not allow the SA to move to. The local
    /// address must be one this connection serves (its own addresses that the host still
    /// has, or any of the host's without a list; an address going away is refused), and
    /// the peer's must be one a reply can go to.
    fn unacceptable(&self, ctx: &Ctx<'_>, local: SocketAddr, remote: SocketAddr) -> bool {
        let own = self.own_addrs(ctx);
        !usable_peer_addr(remote.ip()) || (!own.is_empty() && !own.contains(&local.ip()))
    }

    /// Whether an IKE_AUTH request's NO_NATS_ALLOWED forbids what we see.
    pub(super) fn auth_nat_forbidden(
        &self,
        ctx: &Ctx<'_>,
        p: &[Payload],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> bool {
        self.conn(ctx).mobike.enabled
            && notify(p, NotifyType::MOBIKE_SUPPORTED).is_some()
            && Self::nat_forbidden(p, local, remote)
    }
}
