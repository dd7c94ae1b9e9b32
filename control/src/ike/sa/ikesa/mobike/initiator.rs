//! MOBIKE at the end that decides which addresses the SAs use, the original initiator
//! (RFC 4555 3.5): the address pairs to try and in what order, path testing on the
//! retransmissions of any request (3.10), moving off an address the host lost or to
//! the pair an operator names, UPDATE_SA_ADDRESSES and its answer, stale or refused
//! (3.5, 3.9), and a changed NAT mapping seen in the NAT-D of DPD (3.8). When the
//! host's addresses change, a responder's new address list (3.6) starts here too.

use std::net::{IpAddr, SocketAddr};

use super::{no_nats_data, Pair};
use crate::ike::sa::ikesa::payloads::notify;
use crate::ike::sa::ikesa::{
    Ctx, Event, IkeSa, Kind, Payload, Req, State, NS_PER_MS, PATH_PROBE_MS,
};
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::ExchangeType;

/// Leading bits two addresses share (0 across families).
fn common_prefix(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros(),
        _ => 0,
    }
}

impl IkeSa {
    // -----------------------------------------------------------------------------
    // Path selection
    // -----------------------------------------------------------------------------

    /// Address pairs to try, in preference order: our addresses as configured (the
    /// current one first while we have it) with the peer's (current first), same
    /// family only, minus the pairs the responder refused.
    pub fn candidates(&self, ctx: &Ctx<'_>) -> Vec<Pair> {
        let mut own = self.own_addrs(ctx);
        let peers = self.peer_addrs(ctx);
        if let Some(i) = own.iter().position(|a| *a == self.local.ip()) {
            let cur = own.remove(i);
            own.insert(0, cur);
        }
        let refused: &[Pair] = self.mobike.as_ref().map_or(&[], |m| &m.refused);
        let port = ctx.cfg.port_nat_t;
        let mut v = Vec::new();
        for o in &own {
            for p in &peers {
                if o.is_ipv4() != p.is_ipv4() {
                    continue;
                }
                let local = SocketAddr::new(*o, port);
                // The current peer keeps its (possibly NAT-mapped) port.
                let rport = if *p == self.remote.ip() {
                    self.remote.port()
                } else {
                    port
                };
                let pair = (local, SocketAddr::new(*p, rport));
                let left =
                    self.mobike.as_ref().is_some_and(|m| m.peer_left) && *p == self.remote.ip();
                if !left && !refused.contains(&pair) && !v.contains(&pair) {
                    v.push(pair);
                }
            }
        }
        // The current pair stays first, then those the host has a route for, the
        // family in use, and pairs on one subnet (the longest common prefix): a
        // lost address takes its routes with it.
        let current = (self.local, self.remote);
        v.sort_by_cached_key(|(l, r)| {
            let here = (*l, *r) == current;
            let routable = (ctx.routable)(l.ip(), r.ip());
            let family = l.is_ipv4() == current.0.is_ipv4();
            std::cmp::Reverse((here, routable, family, common_prefix(l.ip(), r.ip())))
        });
        v
    }

    /// The pairs a request's retransmissions also try: only the deciding end tests
    /// paths, and only once the SA is up.
    pub(in crate::ike::sa::ikesa) fn path_alternatives(
        &self,
        ctx: &Ctx<'_>,
        path: Pair,
    ) -> Vec<Pair> {
        if !self.mobike.as_ref().is_some_and(|m| m.decides) || self.state != State::Established {
            return Vec::new();
        }
        let mut v = self.candidates(ctx);
        v.retain(|p| *p != path);
        v
    }

    // -----------------------------------------------------------------------------
    // Commands and triggers
    // -----------------------------------------------------------------------------

    /// The host's addresses changed. The deciding end moves off an address it lost
    /// (break-before-make) and either end announces its new list.
    pub fn own_addrs_changed(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        if self.state != State::Established {
            return;
        }
        let Some(m) = self.mobike.as_mut() else {
            return;
        };
        m.refused.clear();
        let decides = m.decides;
        let own = self.own_addrs(ctx);
        let list = self.announce_list(ctx);
        let lost = !own.contains(&self.local.ip());
        let updating = self
            .pending
            .as_ref()
            .is_some_and(|p| matches!(p.kind, Kind::Update { .. }));
        if decides && updating {
            // Its answer will be stale; a new update follows it (RFC 4555 3.5).
            if let Some(m) = self.mobike.as_mut() {
                m.stale = true;
            }
        }
        let cands = self.candidates(ctx);
        if let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| decides && !own.contains(&p.local.ip()))
        {
            // What is outstanding cannot come back on the lost address: send it
            // now on the best candidate, then on the others in turn.
            if let Some((&first, rest)) = cands.split_first() {
                p.local = first.0;
                p.remote = first.1;
                p.alt = rest.to_vec();
                ctx.counters.retransmits += 1;
                let d = p.data.clone();
                ctx.send(first.0, first.1, d);
            }
        }
        if decides && (lost || updating) {
            self.queue
                .retain(|r| !matches!(r, Req::Update(_) | Req::Addresses));
            if lost && !updating {
                self.queue.push_front(Req::Update(Vec::new()));
            }
        } else if (lost || self.mobike.as_ref().is_some_and(|m| m.announced != list))
            && !self.queue.iter().any(|r| matches!(r, Req::Addresses))
        {
            self.queue.push_back(Req::Addresses);
        }
        self.kick(ctx, now);
        if decides && lost {
            // Break-before-make: nothing can leave from the lost address, so our
            // outbound ESP goes where the update went at once; the peer takes ESP
            // by SPI whatever its source, and the answer confirms or corrects the
            // pair (RFC 4555 3.5 keeps the SA's addresses until then).
            let to = self
                .pending
                .as_ref()
                .filter(|p| matches!(p.kind, Kind::Update { .. }))
                .map(|p| (p.local, p.remote, self.encap));
            if let (Some((local, remote, encap)), Some(m)) = (to, self.mobike.as_mut()) {
                m.early = Some((local, remote, encap));
                ctx.counters.mobike_early_switches += 1;
                ctx.events.push_back(Event::PathChanged {
                    sa: self.id,
                    local,
                    remote,
                    encap,
                    behind_nat: self.behind_nat,
                });
            }
        }
    }

    /// The deciding end moves the SAs to `local` -> `remote` (an operator command or
    /// the rotation policy). False if MOBIKE is off, we do not decide, or the pair
    /// is not usable.
    pub fn migrate(&mut self, ctx: &mut Ctx<'_>, now: u64, local: IpAddr, remote: IpAddr) -> bool {
        if self.state != State::Established || !self.mobike.as_ref().is_some_and(|m| m.decides) {
            return false;
        }
        if local.is_ipv4() != remote.is_ipv4() {
            return false;
        }
        let port = ctx.cfg.port_nat_t;
        let rport = if remote == self.remote.ip() {
            self.remote.port()
        } else {
            port
        };
        let pair = (SocketAddr::new(local, port), SocketAddr::new(remote, rport));
        self.queue.retain(|r| !matches!(r, Req::Update(_)));
        if let Some(m) = self.mobike.as_mut() {
            m.refused.retain(|p| *p != pair);
            if self
                .pending
                .as_ref()
                .is_some_and(|p| matches!(p.kind, Kind::Update { .. }))
            {
                m.stale = true;
            }
        }
        self.queue.push_front(Req::Update(vec![pair]));
        self.kick(ctx, now);
        true
    }

    // -----------------------------------------------------------------------------
    // Requests we send
    // -----------------------------------------------------------------------------

    /// DPD of the deciding end carries NAT-D, so a changed NAT mapping shows in the
    /// answer (RFC 4555 3.8).
    pub(in crate::ike::sa::ikesa) fn dpd_payloads(&self, ctx: &mut Ctx<'_>) -> Vec<Payload> {
        if self.mobike.as_ref().is_some_and(|m| m.decides) {
            self.nat_d(ctx, self.local, self.remote).to_vec()
        } else {
            Vec::new()
        }
    }

    pub(in crate::ike::sa::ikesa) fn send_update(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        pairs: Vec<Pair>,
    ) {
        let pairs = if pairs.is_empty() {
            self.candidates(ctx)
        } else {
            pairs
        };
        let Some((&first, rest)) = pairs.split_first() else {
            ctx.counters.mobike_no_path += 1;
            return;
        };
        let c = self.conn(ctx);
        let mut p = vec![Payload::Notify(NotifyRepr::new(
            NotifyType::UPDATE_SA_ADDRESSES,
            &[],
        ))];
        p.extend(self.nat_d(ctx, first.0, first.1));
        if c.mobike.disallow_nat {
            p.push(Payload::Notify(NotifyRepr::new(
                NotifyType::NO_NATS_ALLOWED,
                &no_nats_data(first.0, first.1),
            )));
        }
        // Our address list rides along (RFC 4555 3.6).
        let mut own = self.own_addrs(ctx);
        own.retain(|a| *a != first.0.ip());
        p.extend(Self::address_payloads(&own));
        if let Some(m) = self.mobike.as_mut() {
            m.stale = false;
            m.announced = own;
        }
        ctx.counters.mobike_updates_sent += 1;
        ctx.events.push_back(Event::UpdateSent {
            sa: self.id,
            local: first.0,
            remote: first.1,
        });
        let kind = Kind::Update { first };
        self.send_request_via(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &p,
            kind,
            first,
            Some(rest.to_vec()),
        );
        if let Some(p) = self.pending.as_mut().filter(|p| !p.alt.is_empty()) {
            // Other pairs wait: probe the next one soon (RFC 4555 3.10).
            p.interval_ms = p.interval_ms.min(PATH_PROBE_MS);
            p.next_at = p.next_at.min(now + p.interval_ms * NS_PER_MS);
        }
    }

    // -----------------------------------------------------------------------------
    // Responses we get
    // -----------------------------------------------------------------------------

    /// The answer to our UPDATE_SA_ADDRESSES came back over `via`.
    pub(in crate::ike::sa::ikesa) fn handle_update_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        kind: Kind,
        via: Pair,
    ) {
        let Kind::Update { first, .. } = kind else {
            return;
        };
        let Some(m) = self.mobike.as_mut() else {
            return;
        };
        if std::mem::take(&mut m.stale) {
            // The address set changed meanwhile: start over (RFC 4555 3.5).
            ctx.counters.mobike_stale_responses += 1;
            self.queue.retain(|r| !matches!(r, Req::Update(_)));
            self.queue.push_front(Req::Update(Vec::new()));
            return;
        }
        self.take_peer_addrs(p);
        let refused = [
            NotifyType::UNEXPECTED_NAT_DETECTED,
            NotifyType::UNACCEPTABLE_ADDRESSES,
        ]
        .into_iter()
        .any(|t| notify(p, t).is_some());
        if refused {
            ctx.counters.mobike_refused += 1;
            if let Some(m) = self.mobike.as_mut() {
                m.refused.push(via);
                if via != first {
                    m.refused.push(first);
                }
            }
            let left: Vec<Pair> = self
                .candidates(ctx)
                .into_iter()
                .filter(|c| *c != (self.local, self.remote))
                .collect();
            // Try the others, unless the path in use still works (its local
            // address is still ours): then staying is the answer.
            if !self.own_addrs(ctx).contains(&self.local.ip()) && !left.is_empty() {
                self.queue.push_front(Req::Update(left));
            }
            return;
        }
        if via != first {
            // Another pair answered; its NAT-D were computed for `first`, so the
            // responder's view of NATs is wrong. Update again, for this pair.
            self.queue.push_front(Req::Update(vec![via]));
            return;
        }
        let nat = self.nat_of(p, via.0, via.1).unwrap_or((false, false));
        // Only a NAT in front of us is a NAT for NO_NATS_ALLOWED here: the peer's own
        // source hash does not match either when it forces UDP encapsulation (RFC 7296
        // 2.23), which is no NAT; a NAT anywhere on the path changes the addresses the
        // responder checks NO_NATS_ALLOWED against (RFC 4555 3.9), so it refuses those.
        if nat.0 && self.conn(ctx).mobike.disallow_nat {
            // The responder should have refused; do not use the pair either way.
            ctx.counters.mobike_refused += 1;
            if let Some(m) = self.mobike.as_mut() {
                m.refused.push(via);
            }
            return;
        }
        if let Some(m) = self.mobike.as_mut() {
            m.mapped = notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP).map(|n| n.data.clone());
        }
        ctx.events.push_back(Event::UpdateAnswered {
            sa: self.id,
            local: via.0,
            remote: via.1,
        });
        self.move_to(ctx, now, via.0, via.1, nat);
    }

    /// After any answer: the deciding end learns whether its NAT mapping changed
    /// (DPD carries NAT-D) and whether the answer took another path than the SA's.
    pub(in crate::ike::sa::ikesa) fn after_response(
        &mut self,
        p: &[Payload],
        via: Pair,
        was_update: bool,
    ) {
        let here = (self.local, self.remote);
        let Some(m) = self.mobike.as_mut() else {
            return;
        };
        if !m.decides || was_update || self.state != State::Established {
            return;
        }
        let queued = self.queue.iter().any(|r| matches!(r, Req::Update(_)));
        if via != here {
            // Path testing found a working pair (the current one did not answer).
            if !queued {
                self.queue.push_front(Req::Update(vec![via]));
            }
            return;
        }
        if let Some(d) = notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP) {
            let changed = m.mapped.as_ref().is_some_and(|old| *old != d.data);
            m.mapped = Some(d.data.clone());
            if changed && !queued {
                // RFC 4555 3.8: our NAT mapping changed; tell the responder.
                self.queue.push_front(Req::Update(vec![here]));
            }
        }
    }
}
