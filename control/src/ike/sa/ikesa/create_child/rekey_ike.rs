//! CREATE_CHILD_SA rekeying the IKE SA itself (RFC 7296 1.3.2, 2.8), both ends, with
//! the collision of two simultaneous rekeys (2.8.2) and the retries after
//! TEMPORARY_FAILURE (2.25) and INVALID_KE_PAYLOAD (1.3, 3.10.1). A rekeyed IKE SA
//! hands its children to the new one and waits for its DELETE (2.18).

use crate::ike::crypto::dh::KeyShare;
use crate::ike::crypto::keys::IkeKeys;
use crate::ike::crypto::sk::SkKeys;
use crate::ike::crypto::{DhGroup, IkeSuite};
use crate::ike::sa::ikesa::payloads::{
    dh_from_ke, error_notify, ke_payload, nonce_payload, notify, sa_payload,
};
use crate::ike::sa::ikesa::timers::lifetime_deadlines;
use crate::ike::sa::ikesa::{
    neg, Ctx, Deadline, Event, Handover, IkeSa, Kind, PeerRequest, Pending, Req, State, NS_PER_MS,
    NS_PER_S, REKEYED_LINGER_NS, TEMP_FAILURE_RETRY_MS,
};
use crate::ike::sa::SaId;
use crate::ike::wire::ke::{self, KeRepr};
use crate::ike::wire::nonce::NonceRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::sa::{Proposal, SaRepr};
use crate::ike::wire::{ExchangeType, Payload};

impl IkeSa {
    pub fn start_rekey_ike(&mut self, ctx: &mut Ctx<'_>, now: u64) -> bool {
        if self.state != State::Established || self.queue.iter().any(|r| matches!(r, Req::RekeyIke))
        {
            return false;
        }
        if matches!(
            self.pending.as_deref(),
            Some(Pending {
                kind: Kind::RekeyIke { .. },
                ..
            })
        ) {
            return false;
        }
        self.rekey_at = Deadline::NONE;
        self.queue.push_back(Req::RekeyIke);
        self.kick(ctx, now);
        true
    }

    pub(in crate::ike::sa::ikesa) fn send_rekey_ike(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        group: Option<DhGroup>,
    ) {
        let Some(suite) = self.suite else { return };
        let g = group.unwrap_or(suite.dh);
        let spi = ctx.new_ike_spi();
        let ni = ctx.nonce();
        let ke = KeyShare::generate(g, ctx.rng);
        let p = vec![
            Payload::Sa(SaRepr {
                proposals: neg::ike_offer(
                    &self.conn(ctx).ike_proposals,
                    &spi.to_be_bytes(),
                    Some(g),
                ),
            }),
            Payload::Nonce(NonceRepr { nonce: ni.clone() }),
            Payload::Ke(KeRepr {
                group: ke::DhGroup(g.number()),
                data: ke.public().to_vec(),
            }),
        ];
        self.send_request(
            ctx,
            now,
            ExchangeType::CREATE_CHILD_SA,
            &p,
            Kind::RekeyIke { spi, ni, ke },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_rekey_ike_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        rq: PeerRequest,
        p: &[Payload],
        props: &[Proposal],
        ni: &[u8],
    ) {
        // Our own IKE rekey is outstanding: a collision (RFC 7296 2.8.2). Answer it;
        // which new SA survives is settled when our exchange completes.
        let colliding = matches!(
            self.pending.as_deref(),
            Some(Pending {
                kind: Kind::RekeyIke { .. },
                ..
            })
        );
        if colliding && self.rekey_theirs.is_some() {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::TEMPORARY_FAILURE, &[]));
            return;
        }
        // Children in the middle of an exchange would be left behind.
        if matches!(
            self.pending.as_deref(),
            Some(Pending {
                kind: Kind::Child { .. },
                ..
            })
        ) {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::TEMPORARY_FAILURE, &[]));
            return;
        }
        let c = self.conn(ctx);
        let Some(kep) = ke_payload(p) else {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
            return;
        };
        let Some((prop, suite)) = neg::select_ike(&c.ike_proposals, props, Some(kep.group.0))
        else {
            ctx.counters.no_proposal += 1;
            self.refuse_request(
                ctx,
                rq,
                NotifyRepr::new(NotifyType::NO_PROPOSAL_CHOSEN, &[]),
            );
            return;
        };
        if dh_from_ke(kep) != Some(suite.dh) {
            ctx.counters.invalid_ke_sent += 1;
            self.refuse_request(
                ctx,
                rq,
                NotifyRepr::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    &suite.dh.number().to_be_bytes(),
                ),
            );
            return;
        }
        let Ok(their_spi) = <[u8; 8]>::try_from(prop.spi.as_slice()).map(u64::from_be_bytes) else {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
            return;
        };
        let mine = KeyShare::generate(suite.dh, ctx.rng);
        let Ok(g_ir) = mine.agree(&kep.data) else {
            ctx.counters.bad_key_share += 1;
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
            return;
        };
        let nr = ctx.nonce();
        let spi = ctx.new_ike_spi();
        let (Some(old_suite), Some(keys)) = (self.suite, self.keys.as_ref()) else {
            return;
        };
        let Ok(new_keys) = IkeKeys::derive_rekey(
            &suite,
            old_suite.prf,
            &keys.sk_d,
            g_ir.as_bytes(),
            ni,
            &nr,
            their_spi,
            spi,
        ) else {
            return;
        };
        let Ok((sk_out, sk_in)) = new_keys.responder_sk(&suite) else {
            return;
        };
        let resp = vec![
            Payload::Sa(SaRepr {
                proposals: vec![neg::ike_answer(prop.number, &spi.to_be_bytes(), &suite)],
            }),
            Payload::Nonce(NonceRepr { nonce: nr.clone() }),
            Payload::Ke(KeRepr {
                group: ke::DhGroup(suite.dh.number()),
                data: mine.public().to_vec(),
            }),
        ];
        self.send_response(ctx, rq, &resp);
        if colliding {
            let n2 = self.sibling(
                ctx, now, spi, false, their_spi, spi, suite, new_keys, sk_out, sk_in,
            );
            self.rekey_theirs = Some(Box::new((spi, Self::min_nonce(ni, &nr))));
            ctx.born.push(n2);
            return;
        }
        let mut new = self.successor(
            ctx, now, spi, false, their_spi, spi, suite, new_keys, sk_out, sk_in,
        );
        new.last_rx = now;
        ctx.born.push(new);
        // The peer deletes this SA; wait for it a bounded time.
        self.expire_at = Deadline::at(now + REKEYED_LINGER_NS);
    }

    /// A new IKE SA made by a rekey of this one, without children yet: they move with
    /// [`Self::take_handover`] once it is certain that this SA is the one to keep
    /// (RFC 7296 2.8.2).
    #[allow(clippy::too_many_arguments)]
    fn sibling(
        &self,
        ctx: &mut Ctx<'_>,
        now: u64,
        id: SaId,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        suite: IkeSuite,
        keys: IkeKeys,
        sk_out: SkKeys,
        sk_in: SkKeys,
    ) -> IkeSa {
        let mut n = IkeSa::blank(id, self.conn, initiator, self.local, self.remote);
        n.spi_i = spi_i;
        n.spi_r = spi_r;
        n.state = State::Established;
        n.encap = self.encap;
        n.behind_nat = self.behind_nat;
        n.suite = Some(suite);
        n.keys = Some(keys);
        n.sk_out = Some(sk_out);
        n.sk_in = Some(sk_in);
        n.peer_id = self.peer_id.clone();
        n.vip = self.vip;
        n.mobike = self.mobike.clone();
        n.started = now;
        let c = &ctx.conns[self.conn];
        let (lt, dpd) = (c.ike_lifetime, c.dpd);
        let (rekey, expire) = lifetime_deadlines(ctx, now, &lt);
        n.rekey_at = rekey;
        n.expire_at = expire;
        n.last_rx = now;
        n.dpd_at = (dpd.interval_s > 0)
            .then(|| now + dpd.interval_s * NS_PER_S)
            .into();
        n
    }

    /// Gives the children (and the requests queued for them, and the lease) to the
    /// IKE SA `to` that replaces this one; this one only waits for its DELETE now.
    fn take_handover(&mut self, ctx: &mut Ctx<'_>, to: SaId) -> Handover {
        let is_child_req = |r: &Req| {
            matches!(
                r,
                Req::CreateChild | Req::RekeyChild(_) | Req::DeleteChildren(_) | Req::DeleteSpis(_)
            )
        };
        let queue: Vec<Req> = self
            .queue
            .iter()
            .filter(|r| is_child_req(r))
            .cloned()
            .collect();
        self.queue.retain(|r| !is_child_req(r));
        let h = Handover {
            to,
            children: std::mem::take(&mut self.children),
            queue,
            vip: self.vip,
            vip_leased: self.vip_leased,
        };
        self.vip_leased = false;
        self.state = State::Rekeyed;
        self.rekey_at = Deadline::NONE;
        self.dpd_at = Deadline::NONE;
        ctx.events.push_back(Event::IkeRekeyed {
            old: self.id,
            new: to,
        });
        h
    }

    /// Takes over what a rekeyed IKE SA handed over.
    pub fn adopt(&mut self, h: Handover) {
        self.children.extend(h.children);
        self.queue.extend(h.queue);
        if h.vip.is_some() {
            self.vip = h.vip;
        }
        self.vip_leased |= h.vip_leased;
        self.up_reported = true;
    }

    /// The SPIs of children handed to an SA that no longer exists.
    pub fn handover_spis(h: &Handover) -> Vec<u32> {
        h.children.iter().map(|c| c.info.spi_in).collect()
    }

    /// The IKE SA that replaces this one after a rekey, with the children.
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        id: SaId,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        suite: IkeSuite,
        keys: IkeKeys,
        sk_out: SkKeys,
        sk_in: SkKeys,
    ) -> IkeSa {
        let mut n = self.sibling(
            ctx, now, id, initiator, spi_i, spi_r, suite, keys, sk_out, sk_in,
        );
        let h = self.take_handover(ctx, id);
        n.adopt(h);
        n
    }

    pub(in crate::ike::sa::ikesa) fn handle_rekey_ike_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        kind: Kind,
    ) {
        let Kind::RekeyIke { spi, ni, ke } = kind else {
            return;
        };
        if let Some(e) = error_notify(p) {
            ctx.born_spis.retain(|s| *s != spi);
            if let Some((n2, _)) = self.rekey_theirs.take().map(|b| *b) {
                // Ours failed but we answered the peer's: that SA replaces this one,
                // and the peer, its initiator, deletes this one.
                let h = self.take_handover(ctx, n2);
                ctx.handovers.push(h);
                self.expire_at = Deadline::at(now + REKEYED_LINGER_NS);
                return;
            }
            match e {
                NotifyType::TEMPORARY_FAILURE => {
                    let mut b = [0u8; 2];
                    ctx.rng.fill(&mut b);
                    let jitter = u64::from(u16::from_be_bytes(b)) % 1000;
                    self.rekey_at =
                        Deadline::at(now + (TEMP_FAILURE_RETRY_MS + jitter) * NS_PER_MS);
                }
                NotifyType::INVALID_KE_PAYLOAD => {
                    let want = notify(p, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(NotifyRepr::requested_group)
                        .and_then(|g| DhGroup::from_id(crate::ike::wire::sa::TransformId(g.0)));
                    if want.is_some() && want != Some(ke.group()) {
                        self.send_rekey_ike(ctx, now, want);
                    }
                }
                _ => {}
            }
            return;
        }
        let (Some([prop]), Some(nr), Some(kp)) = (sa_payload(p), nonce_payload(p), ke_payload(p))
        else {
            ctx.counters.invalid_syntax += 1;
            return;
        };
        let Some(suite) = neg::accept_ike(&self.conn(ctx).ike_proposals, prop) else {
            ctx.counters.invalid_syntax += 1;
            return;
        };
        let Ok(their_spi) = <[u8; 8]>::try_from(prop.spi.as_slice()).map(u64::from_be_bytes) else {
            ctx.counters.invalid_syntax += 1;
            return;
        };
        if dh_from_ke(kp) != Some(ke.group()) || suite.dh != ke.group() {
            ctx.counters.invalid_syntax += 1;
            return;
        }
        let Ok(g_ir) = ke.agree(&kp.data) else {
            ctx.counters.bad_key_share += 1;
            return;
        };
        let (Some(old_suite), Some(keys)) = (self.suite, self.keys.as_ref()) else {
            return;
        };
        let Ok(new_keys) = IkeKeys::derive_rekey(
            &suite,
            old_suite.prf,
            &keys.sk_d,
            g_ir.as_bytes(),
            &ni,
            nr,
            spi,
            their_spi,
        ) else {
            return;
        };
        let Ok((sk_out, sk_in)) = new_keys.initiator_sk(&suite) else {
            return;
        };
        if let Some((n2, theirs_min)) = self.rekey_theirs.take().map(|b| *b) {
            // Both rekeyed at once (RFC 7296 2.8.2): the new SA of the exchange with
            // the lowest nonce is redundant and its initiator deletes it; the other
            // one gets the children, and its initiator deletes the old SA.
            if Self::min_nonce(&ni, nr) < theirs_min {
                let mut n1 = self.sibling(
                    ctx, now, spi, true, spi, their_spi, suite, new_keys, sk_out, sk_in,
                );
                n1.queue.push_back(Req::DeleteIke);
                n1.kick(ctx, now);
                ctx.born.push(n1);
                let h = self.take_handover(ctx, n2);
                ctx.handovers.push(h);
                self.expire_at = Deadline::at(now + REKEYED_LINGER_NS);
                return;
            }
        }
        let new = self.successor(
            ctx, now, spi, true, spi, their_spi, suite, new_keys, sk_out, sk_in,
        );
        ctx.born.push(new);
        // The rekey's initiator deletes the old IKE SA (RFC 7296 2.18).
        self.queue.clear();
        self.queue.push_back(Req::DeleteIke);
    }
}
