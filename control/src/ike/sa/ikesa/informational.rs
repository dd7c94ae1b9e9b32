//! INFORMATIONAL (RFC 7296 1.4): deleting the IKE SA and child SAs (1.4.1, 3.11),
//! both ours and the peer's, and the empty request that checks the peer is alive
//! (2.4). MOBIKE's notifications ride on the same exchange (see `mobike`).

use super::{ChildState, Ctx, DownReason, Event, FailReason, IkeSa, Kind, PeerRequest, Req, State};
use crate::ike::sa::ChildId;
use crate::ike::wire::delete::DeleteRepr;
use crate::ike::wire::{ExchangeType, Payload, ProtocolId};

impl IkeSa {
    /// An empty INFORMATIONAL request (RFC 7296 2.4); MOBIKE's deciding end adds NAT-D
    /// (RFC 4555 3.8).
    pub(super) fn send_dpd(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let p = self.dpd_payloads(ctx);
        self.send_request(ctx, now, ExchangeType::INFORMATIONAL, &p, Kind::Dpd)
    }

    pub(super) fn send_delete_ike(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        self.send_request(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &[Payload::Delete(DeleteRepr::ike())],
            Kind::DeleteIke,
        );
    }

    /// DELETE for children already gone here: the answer needs no handling.
    pub(super) fn send_delete_spis(&mut self, ctx: &mut Ctx<'_>, now: u64, spis: &[u32]) {
        self.send_request(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &[Payload::Delete(DeleteRepr::esp(spis))],
            Kind::Dpd,
        );
    }

    /// DELETE for live children (RFC 7296 1.4.1): they go when the peer answers.
    pub(super) fn send_delete_children(&mut self, ctx: &mut Ctx<'_>, now: u64, ids: Vec<ChildId>) {
        let spis: Vec<u32> = self
            .children
            .iter_mut()
            .filter(|c| ids.contains(&c.info.id))
            .map(|c| {
                c.state = ChildState::Deleting;
                c.info.spi_in
            })
            .collect();
        if spis.is_empty() {
            return;
        }
        self.send_request(
            ctx,
            now,
            ExchangeType::INFORMATIONAL,
            &[Payload::Delete(DeleteRepr::esp(&spis))],
            Kind::DeleteChildren(ids),
        );
    }

    pub fn start_delete(&mut self, ctx: &mut Ctx<'_>, now: u64) -> bool {
        match self.state {
            State::Established | State::Rekeyed => {}
            State::InitSent | State::AuthSent | State::HalfOpen => {
                self.fail(ctx, FailReason::Timeout);
                return true;
            }
            _ => return false,
        }
        self.state = State::Deleting;
        self.queue.clear();
        self.queue.push_back(Req::DeleteIke);
        self.kick(ctx, now);
        true
    }

    pub fn start_dpd(&mut self, ctx: &mut Ctx<'_>, now: u64) -> bool {
        if self.state != State::Established {
            return false;
        }
        if !self.queue.iter().any(|r| matches!(r, Req::Dpd)) {
            self.queue.push_back(Req::Dpd);
        }
        self.kick(ctx, now);
        true
    }

    pub(super) fn handle_info_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        rq: PeerRequest,
        p: &[Payload],
    ) {
        if p.is_empty() {
            // RFC 7296 2.4: the peer checks that we are alive.
            self.peer_dpd_rx = now;
        }
        let mut resp = Vec::new();
        self.mobike_info_request(ctx, now, p, rq.local, rq.remote, &mut resp);
        let mut delete_ike = false;
        for d in p.iter().filter_map(|x| match x {
            Payload::Delete(d) => Some(d),
            _ => None,
        }) {
            match d.protocol {
                ProtocolId::IKE => delete_ike = true,
                ProtocolId::ESP => {
                    let mut ours = Vec::new();
                    let mut gone = Vec::new();
                    for spi in d
                        .spis
                        .iter()
                        .filter_map(|s| <[u8; 4]>::try_from(s.as_slice()).ok())
                    {
                        let spi = u32::from_be_bytes(spi);
                        if let Some(c) = self.children.iter().find(|c| c.info.spi_out == spi) {
                            // RFC 7296 1.4.1: answer with our inbound SPIs, unless
                            // we are deleting it ourselves right now.
                            if c.state != ChildState::Deleting {
                                ours.push(c.info.spi_in);
                            }
                            gone.push(c.info.id);
                        }
                    }
                    self.remove_children(ctx, &gone);
                    if !ours.is_empty() {
                        resp.push(Payload::Delete(DeleteRepr::esp(&ours)));
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.send_response(ctx, rq, &[]);
            let reason = if self.state == State::Rekeyed {
                DownReason::Rekeyed
            } else {
                DownReason::DeletedByPeer
            };
            self.die(ctx, reason);
            return;
        }
        self.send_response(ctx, rq, &resp);
    }

    /// Takes child `child` out now (its [`Event::ChildDown`] follows) and tells the
    /// peer with a DELETE (RFC 7296 1.4.1): for a child the dataplane could not
    /// install, which must not look up to the peer. False if there is no such child.
    pub fn drop_child(&mut self, ctx: &mut Ctx<'_>, now: u64, child: ChildId) -> bool {
        let Some(spi) = self
            .children
            .iter()
            .find(|c| c.info.id == child)
            .map(|c| c.info.spi_in)
        else {
            return false;
        };
        self.remove_children(ctx, &[child]);
        if self.state == State::Established {
            self.queue.push_back(Req::DeleteSpis(vec![spi]));
        }
        self.kick(ctx, now);
        true
    }

    pub(super) fn remove_children(&mut self, ctx: &mut Ctx<'_>, ids: &[ChildId]) {
        let sa = self.id;
        self.children.retain(|c| {
            if !ids.contains(&c.info.id) {
                return true;
            }
            ctx.child_spis.remove(&c.info.spi_in);
            ctx.counters.child_down += 1;
            ctx.events.push_back(Event::ChildDown {
                sa,
                child: c.info.id,
                spi_in: c.info.spi_in,
                spi_out: c.info.spi_out,
            });
            false
        });
    }
}
