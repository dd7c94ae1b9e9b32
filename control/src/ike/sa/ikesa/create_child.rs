//! CREATE_CHILD_SA (RFC 7296 1.3) for child SAs: new child SAs (1.3.1), child SA
//! rekeys (1.3.3, 2.8) and their collisions (2.8.1), with the retries after
//! TEMPORARY_FAILURE (2.25) and INVALID_KE_PAYLOAD (1.3, 3.10.1). The same exchange
//! rekeying the IKE SA itself (1.3.2) is in [`rekey_ike`].

use super::payloads::{
    dh_from_ke, error_notify, ke_payload, nonce_payload, notify, sa_payload, ts_payloads, ts_repr,
};
use super::{
    neg, ChildState, Ctx, Deadline, Event, FailReason, IkeSa, Kind, PeerRequest, RekeyDone, Req,
    State, NS_PER_MS, TEMP_FAILURE_RETRY_MS,
};
use crate::ike::conn::Selector;
use crate::ike::crypto::dh::KeyShare;
use crate::ike::crypto::keys::ChildKeys;
use crate::ike::crypto::DhGroup;
use crate::ike::sa::ChildId;
use crate::ike::wire::ke::{self, KeRepr};
use crate::ike::wire::nonce::NonceRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::sa::SaRepr;
use crate::ike::wire::{ExchangeType, Payload, ProtocolId};

mod rekey_ike;

impl IkeSa {
    pub fn start_create_child(&mut self, ctx: &mut Ctx<'_>, now: u64) -> bool {
        if self.state != State::Established {
            return false;
        }
        self.queue.push_back(Req::CreateChild);
        self.kick(ctx, now);
        true
    }

    pub fn start_rekey_child(&mut self, ctx: &mut Ctx<'_>, now: u64, child: ChildId) -> bool {
        if self.state != State::Established {
            return false;
        }
        let Some(c) = self.children.iter_mut().find(|c| c.info.id == child) else {
            return false;
        };
        if c.state != ChildState::Installed {
            return false;
        }
        c.state = ChildState::Rekeying;
        c.rekey_at = Deadline::NONE;
        self.queue.push_back(Req::RekeyChild(child));
        self.kick(ctx, now);
        true
    }

    pub(super) fn send_child_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        rekey: Option<ChildId>,
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
        group: Option<DhGroup>,
    ) {
        let c = self.conn(ctx);
        let spi_in = ctx.new_child_spi();
        let ni = ctx.nonce();
        let pfs = group.or_else(|| neg::esp_pfs_group(&c.esp_proposals));
        let ke = pfs.map(|g| KeyShare::generate(g, ctx.rng));
        let mut p = Vec::new();
        if let Some(old) = rekey.and_then(|id| self.children.iter().find(|c| c.info.id == id)) {
            p.push(Payload::Notify(NotifyRepr {
                protocol: ProtocolId::ESP,
                spi: old.info.spi_in.to_be_bytes().to_vec(),
                notify_type: NotifyType::REKEY_SA,
                data: Vec::new(),
            }));
        }
        p.push(Payload::Sa(SaRepr {
            proposals: neg::esp_offer(&c.esp_proposals, spi_in, true, pfs),
        }));
        p.push(Payload::Nonce(NonceRepr { nonce: ni.clone() }));
        if let Some(k) = &ke {
            p.push(Payload::Ke(KeRepr {
                group: ke::DhGroup(k.group().number()),
                data: k.public().to_vec(),
            }));
        }
        p.push(Payload::Tsi(ts_repr(&local_ts)));
        p.push(Payload::Tsr(ts_repr(&remote_ts)));
        self.send_request(
            ctx,
            now,
            ExchangeType::CREATE_CHILD_SA,
            &p,
            Kind::Child {
                spi_in,
                ni,
                ke,
                rekey,
                local_ts,
                remote_ts,
            },
        );
    }

    /// The lower of an exchange's two nonces: what settles a rekey collision (RFC 7296
    /// 2.8.1 for child SAs, 2.8.2 for IKE SAs).
    fn min_nonce(a: &[u8], b: &[u8]) -> Vec<u8> {
        if a <= b {
            a.to_vec()
        } else {
            b.to_vec()
        }
    }

    /// Once both our rekey and the peer's rekey of a child completed (a collision,
    /// RFC 7296 2.8.1), the new SA made by the exchange with the lowest nonce is
    /// redundant and its initiator deletes it.
    fn resolve_collision(&mut self, ctx: &mut Ctx<'_>, now: u64, old: ChildId) {
        let Some(ch) = self.children.iter_mut().find(|c| c.info.id == old) else {
            return;
        };
        let (Some(ours), Some(theirs)) = (ch.ours.take(), ch.theirs.take()) else {
            return;
        };
        if ours.min_nonce < theirs.min_nonce {
            self.queue.push_back(Req::DeleteChildren(vec![ours.new]));
        }
        let _ = theirs.new;
        self.kick(ctx, now);
    }

    pub(super) fn handle_child_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        kind: Kind,
    ) {
        let Kind::Child {
            spi_in,
            ni,
            ke,
            rekey,
            local_ts,
            remote_ts,
        } = kind
        else {
            return;
        };
        let back_to_installed = |sa: &mut IkeSa| {
            if let Some(c) = rekey.and_then(|id| sa.children.iter_mut().find(|c| c.info.id == id)) {
                if c.state == ChildState::Rekeying {
                    c.state = ChildState::Installed;
                }
            }
        };
        if let Some(e) = error_notify(p) {
            ctx.child_spis.remove(&spi_in);
            match e {
                NotifyType::TEMPORARY_FAILURE => {
                    // RFC 7296 2.25: try again a little later.
                    back_to_installed(self);
                    if let Some(id) = rekey {
                        if let Some(c) = self.children.iter_mut().find(|c| c.info.id == id) {
                            c.state = ChildState::Rekeying;
                        }
                        self.queue.push_front(Req::RekeyChild(id));
                    } else {
                        self.queue.push_front(Req::CreateChild);
                    }
                    self.retry_at = Deadline::at(now + TEMP_FAILURE_RETRY_MS * NS_PER_MS);
                }
                NotifyType::INVALID_KE_PAYLOAD => {
                    let want = notify(p, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(NotifyRepr::requested_group)
                        .and_then(|g| DhGroup::from_id(crate::ike::wire::sa::TransformId(g.0)));
                    let offered = want.is_some_and(|w| {
                        self.conn(ctx)
                            .esp_proposals
                            .iter()
                            .any(|pr| pr.dh.contains(&w))
                    });
                    if offered && ke.as_ref().map(KeyShare::group) != want {
                        self.send_child_request(ctx, now, rekey, local_ts, remote_ts, want);
                    } else {
                        back_to_installed(self);
                        ctx.events.push_back(Event::ChildFailed {
                            sa: self.id,
                            reason: FailReason::PeerError(e.0),
                        });
                    }
                }
                NotifyType::CHILD_SA_NOT_FOUND => {
                    // The peer no longer has it: remove ours.
                    if let Some(id) = rekey {
                        self.remove_children(ctx, &[id]);
                    }
                }
                _ => {
                    back_to_installed(self);
                    ctx.events.push_back(Event::ChildFailed {
                        sa: self.id,
                        reason: FailReason::PeerError(e.0),
                    });
                }
            }
            return;
        }
        let c = self.conn(ctx);
        let (Some([prop]), Some(nr), Some((tsi, tsr))) =
            (sa_payload(p), nonce_payload(p), ts_payloads(p))
        else {
            ctx.counters.invalid_syntax += 1;
            ctx.child_spis.remove(&spi_in);
            back_to_installed(self);
            return;
        };
        let pfs = ke.as_ref().map(KeyShare::group);
        let accepted = neg::accept_esp(&c.esp_proposals, prop, pfs);
        let ts_ok = neg::within(&local_ts, &tsi) && neg::within(&remote_ts, &tsr);
        let g_ir = match (&ke, ke_payload(p)) {
            (None, _) => Ok(None),
            (Some(k), Some(kp)) if dh_from_ke(kp) == Some(k.group()) => k.agree(&kp.data).map(Some),
            _ => Err(crate::ike::crypto::CryptoError::KeShareInvalid),
        };
        let (Some((suite, spi_out)), true, Ok(g_ir)) = (accepted, ts_ok, g_ir) else {
            ctx.counters.invalid_syntax += 1;
            ctx.child_spis.remove(&spi_in);
            back_to_installed(self);
            ctx.events.push_back(Event::ChildFailed {
                sa: self.id,
                reason: FailReason::InvalidResponse,
            });
            return;
        };
        let (Some(keys), Some(prf)) = (self.keys.as_ref(), self.suite.map(|s| s.prf)) else {
            return;
        };
        let Ok(ck) = ChildKeys::derive(
            &suite,
            prf,
            &keys.sk_d,
            g_ir.as_ref().map(|g| g.as_bytes()),
            &ni,
            nr,
        ) else {
            return;
        };
        let new = self.add_child(ctx, now, suite, spi_in, spi_out, ck, true, tsi, tsr, rekey);
        if let Some(old) = rekey {
            if let Some(ch) = self.children.iter_mut().find(|c| c.info.id == old) {
                ch.state = ChildState::Replaced;
                ch.rekey_at = Deadline::NONE;
                ch.ours = Some(Box::new(RekeyDone {
                    min_nonce: Self::min_nonce(&ni, nr),
                    new,
                }));
                let collided = ch.theirs.is_some();
                // The initiator of a rekey deletes the old SA (RFC 7296 2.8).
                self.queue.push_back(Req::DeleteChildren(vec![old]));
                if collided {
                    self.resolve_collision(ctx, now, old);
                }
            }
        }
    }

    pub(super) fn handle_child_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        rq: PeerRequest,
        p: &[Payload],
    ) {
        let (Some(props), Some(ni)) = (sa_payload(p), nonce_payload(p)) else {
            ctx.counters.invalid_syntax += 1;
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
            return;
        };
        if self.state != State::Established {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::TEMPORARY_FAILURE, &[]));
            return;
        }
        if props.iter().any(|pr| pr.protocol == ProtocolId::IKE) {
            self.handle_rekey_ike_request(ctx, now, rq, p, props, ni);
            return;
        }
        // A rekey names the child by the sender's inbound SPI: our outbound.
        let rekey = notify(p, NotifyType::REKEY_SA).map(|n| {
            <[u8; 4]>::try_from(n.spi.as_slice())
                .ok()
                .map(u32::from_be_bytes)
                .and_then(|spi| self.children.iter().find(|c| c.info.spi_out == spi))
                .map(|c| (c.info.id, c.state, c.info.clone()))
        });
        let old = match rekey {
            Some(None) => {
                self.refuse_request(
                    ctx,
                    rq,
                    NotifyRepr::new(NotifyType::CHILD_SA_NOT_FOUND, &[]),
                );
                return;
            }
            Some(Some((_, ChildState::Deleting, _))) => {
                self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::TEMPORARY_FAILURE, &[]));
                return;
            }
            Some(Some((cid, _, info))) => Some((cid, info)),
            None => None,
        };
        if old.is_none() && !self.room_for_child(ctx) {
            self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::NO_ADDITIONAL_SAS, &[]));
            ctx.events.push_back(Event::ChildFailed {
                sa: self.id,
                reason: FailReason::Refused(NotifyType::NO_ADDITIONAL_SAS.0),
            });
            return;
        }
        let c = self.conn(ctx);
        let kep = ke_payload(p);
        let res = self.negotiate_child_responder(
            ctx,
            c,
            props,
            p,
            kep.map(|k| k.group.0),
            false,
            old.as_ref().map(|(_, i)| i),
        );
        let (suite, spi_out, num, l, r) = match res {
            Ok(x) => x,
            Err(NotifyType::NO_PROPOSAL_CHOSEN) => {
                if let (Some(_), Some(g)) = (kep, neg::esp_wanted_group(&c.esp_proposals, props)) {
                    ctx.counters.no_proposal -= 1;
                    ctx.counters.invalid_ke_sent += 1;
                    self.refuse_request(
                        ctx,
                        rq,
                        NotifyRepr::new(NotifyType::INVALID_KE_PAYLOAD, &g.number().to_be_bytes()),
                    );
                } else {
                    self.refuse_request(
                        ctx,
                        rq,
                        NotifyRepr::new(NotifyType::NO_PROPOSAL_CHOSEN, &[]),
                    );
                }
                return;
            }
            Err(e) => {
                self.refuse_request(ctx, rq, NotifyRepr::new(e, &[]));
                return;
            }
        };
        let mine = suite.dh.map(|g| KeyShare::generate(g, ctx.rng));
        let g_ir = match (&mine, kep) {
            (None, _) => None,
            (Some(m), Some(k)) => match m.agree(&k.data) {
                Ok(s) => Some(s),
                Err(_) => {
                    ctx.counters.bad_key_share += 1;
                    self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
                    return;
                }
            },
            (Some(_), None) => {
                self.refuse_request(ctx, rq, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
                return;
            }
        };
        let nr = ctx.nonce();
        let (Some(keys), Some(prf)) = (self.keys.as_ref(), self.suite.map(|s| s.prf)) else {
            return;
        };
        let Ok(ck) = ChildKeys::derive(
            &suite,
            prf,
            &keys.sk_d,
            g_ir.as_ref().map(|g| g.as_bytes()),
            ni,
            &nr,
        ) else {
            return;
        };
        let spi_in = ctx.new_child_spi();
        let mut resp = vec![
            Payload::Sa(SaRepr {
                proposals: vec![neg::esp_answer(num, spi_in, &suite)],
            }),
            Payload::Nonce(NonceRepr { nonce: nr.clone() }),
        ];
        if let Some(m) = &mine {
            resp.push(Payload::Ke(KeRepr {
                group: ke::DhGroup(m.group().number()),
                data: m.public().to_vec(),
            }));
        }
        resp.push(Payload::Tsi(ts_repr(&r)));
        resp.push(Payload::Tsr(ts_repr(&l)));
        self.send_response(ctx, rq, &resp);
        let new = self.add_child(
            ctx,
            now,
            suite,
            spi_in,
            spi_out,
            ck,
            false,
            l,
            r,
            old.as_ref().map(|(i, _)| *i),
        );
        if let Some((old_id, _)) = old {
            if let Some(ch) = self.children.iter_mut().find(|c| c.info.id == old_id) {
                // Rekeyed by the peer: it deletes the old one. If we are rekeying it
                // too, this is a collision, settled when both are done.
                if ch.state == ChildState::Installed {
                    ch.state = ChildState::Replaced;
                    ch.rekey_at = Deadline::NONE;
                }
                ch.theirs = Some(Box::new(RekeyDone {
                    min_nonce: Self::min_nonce(ni, &nr),
                    new,
                }));
                if ch.ours.is_some() {
                    self.resolve_collision(ctx, now, old_id);
                }
            }
        }
    }
}
