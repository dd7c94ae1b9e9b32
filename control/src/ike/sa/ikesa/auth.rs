//! IKE_AUTH (RFC 7296 1.2): authentication with a pre-shared key (2.15), identities
//! (3.5), INITIAL_CONTACT (2.4), the virtual IP a configuration payload asks for and
//! leases (2.19, 3.15), and the first child SA it brings (1.2, 2.9 selectors, 3.10.1
//! refusals); also what both IKE_AUTH and CREATE_CHILD_SA use to bring a child SA up.
//! EAP (2.16) is not implemented: a request without AUTH is refused.

use std::net::IpAddr;

use super::payloads::{error_notify, ip_bytes, notify, sa_payload, ts_payloads, ts_repr};
use super::timers::lifetime_deadlines;
use super::{
    neg, Child, ChildSa, ChildState, ConnId, Ctx, Deadline, Event, FailReason, IkeSa, Kind,
    PeerRequest, State, NS_PER_S,
};
use crate::ike::conn::{Conn, Identity, Selector};
use crate::ike::crypto::keys::{psk_auth, ChildKeys};
use crate::ike::crypto::EspSuite;
use crate::ike::sa::{ChildId, ChildInfo};
use crate::ike::wire::auth::{AuthMethod, AuthRepr};
use crate::ike::wire::cp::{CfgAttr, CfgAttrType, CfgType, CpRepr};
use crate::ike::wire::id::IdRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::sa::{Proposal, SaRepr};
use crate::ike::wire::{ExchangeType, Payload};

fn id_body(id: &Identity) -> Vec<u8> {
    let mut b = vec![id.id_type().0, 0, 0, 0];
    b.extend_from_slice(&id.data());
    b
}

fn id_repr(id: &Identity) -> IdRepr {
    IdRepr {
        id_type: id.id_type(),
        data: id.data(),
    }
}

impl IkeSa {
    /// Our selectors to offer for a new child: the configured ones, `0.0.0.0/0` while
    /// asking for a virtual IP (the gateway narrows it), or our address.
    pub(super) fn offer_ts(&self, c: &Conn) -> (Vec<Selector>, Vec<Selector>) {
        let local = if let Some(v) = self.vip.filter(|_| self.initiator || !c.request_vip4) {
            if self.initiator {
                vec![Selector::host(v)]
            } else if c.local_ts.is_empty() {
                vec![Selector::any(v.is_ipv6())]
            } else {
                c.local_ts.to_vec()
            }
        } else if !c.local_ts.is_empty() {
            c.local_ts.to_vec()
        } else if c.request_vip4 || c.request_vip6 {
            let mut v = Vec::new();
            if c.request_vip4 {
                v.push(Selector::any(false));
            }
            if c.request_vip6 {
                v.push(Selector::any(true));
            }
            v
        } else {
            vec![Selector::host(self.local.ip())]
        };
        let remote = if !self.initiator {
            match self.vip {
                Some(v) if self.vip_leased => vec![Selector::host(v)],
                _ if c.remote_ts.is_empty() => vec![Selector::host(self.remote.ip())],
                _ => c.remote_ts.to_vec(),
            }
        } else if c.remote_ts.is_empty() {
            vec![Selector::host(self.remote.ip())]
        } else {
            c.remote_ts.to_vec()
        };
        (local, remote)
    }

    fn my_auth(&self, c: &Conn, initiator_role: bool) -> Option<(IdRepr, Vec<u8>)> {
        let suite = self.suite?;
        let keys = self.keys.as_ref()?;
        let hs = self.hs.as_deref()?;
        let body = id_body(&c.local_id);
        let (msg, nonce, skp) = if initiator_role {
            (&hs.init_req, &hs.nr, keys.sk_pi())
        } else {
            (&hs.init_resp, &hs.ni, keys.sk_pr())
        };
        Some((
            id_repr(&c.local_id),
            psk_auth(suite.prf, &c.psk, msg, nonce, skp, &body),
        ))
    }

    fn verify_auth(
        &self,
        psk: &[u8],
        id: &IdRepr,
        auth: &AuthRepr,
        peer_is_initiator: bool,
    ) -> bool {
        let (Some(suite), Some(keys), Some(hs)) =
            (self.suite, self.keys.as_ref(), self.hs.as_deref())
        else {
            return false;
        };
        if auth.method != AuthMethod::SHARED_KEY_MIC {
            return false;
        }
        let mut body = vec![id.id_type.0, 0, 0, 0];
        body.extend_from_slice(&id.data);
        let (msg, nonce, skp) = if peer_is_initiator {
            (&hs.init_req, &hs.nr, keys.sk_pi())
        } else {
            (&hs.init_resp, &hs.ni, keys.sk_pr())
        };
        let want = psk_auth(suite.prf, psk, msg, nonce, skp, &body);
        crate::ike::crypto::ct_eq(&want, &auth.data)
    }

    pub(super) fn send_auth(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let c = self.conn(ctx);
        let Some((idi, auth)) = self.my_auth(c, true) else {
            return;
        };
        let mut p = vec![Payload::Idi(idi)];
        if let Some(r) = &c.remote_id {
            p.push(Payload::Idr(id_repr(r)));
        }
        // RFC 7296 2.4: this connection has no other IKE SA, so any the peer still
        // keeps for us is stale.
        let alone = ctx
            .established_by_conn
            .get(self.conn)
            .is_none_or(|n| *n == 0);
        if alone {
            p.push(Payload::Notify(NotifyRepr::new(
                NotifyType::INITIAL_CONTACT,
                &[],
            )));
        }
        self.mobike_auth_request(ctx, &mut p);
        p.push(Payload::Auth(AuthRepr {
            method: AuthMethod::SHARED_KEY_MIC,
            data: auth,
        }));
        if c.request_vip4 || c.request_vip6 {
            let mut attributes = Vec::new();
            if c.request_vip4 {
                attributes.push(CfgAttr {
                    attr_type: CfgAttrType::INTERNAL_IP4_ADDRESS,
                    value: Vec::new(),
                });
            }
            if c.request_vip6 {
                attributes.push(CfgAttr {
                    attr_type: CfgAttrType::INTERNAL_IP6_ADDRESS,
                    value: Vec::new(),
                });
            }
            p.push(Payload::Cp(CpRepr {
                cfg_type: CfgType::REQUEST,
                attributes,
            }));
        }
        let spi_in = ctx.new_child_spi();
        let (l, r) = self.offer_ts(c);
        p.push(Payload::Sa(SaRepr {
            proposals: neg::esp_offer(&c.esp_proposals, spi_in, false, None),
        }));
        p.push(Payload::Tsi(ts_repr(&l)));
        p.push(Payload::Tsr(ts_repr(&r)));
        self.send_request(
            ctx,
            now,
            ExchangeType::IKE_AUTH,
            &p,
            Kind::Auth {
                spi_in,
                local_ts: l,
                remote_ts: r,
            },
        );
    }

    /// After IKE_AUTH, what only the handshake needed goes: the IKE_SA_INIT messages
    /// the AUTH payloads sign (RFC 7296 2.15), the nonces the first child's keys came
    /// from (2.17), a cookie (2.6), a key share. An established SA keeps its keys and
    /// little else: at 100,000 tunnels these were a kilobyte each.
    pub(super) fn forget_handshake(&mut self) {
        if self.state != State::Established {
            return;
        }
        self.hs = None;
        // SK_e and SK_a live on in `sk_out`/`sk_in`, SK_p signed the AUTH payloads:
        // only SK_d is needed from now on (child SA keys, an IKE SA rekey).
        if let Some(k) = self.keys.as_mut() {
            k.forget_all_but_sk_d();
        }
    }

    fn establish(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        self.state = State::Established;
        self.half_open_until = Deadline::NONE;
        let c = self.conn(ctx);
        let (lt, dpd) = (c.ike_lifetime, c.dpd);
        let (rekey, expire) = lifetime_deadlines(ctx, now, &lt);
        // Each end runs its own lifetimes (RFC 7296 2.8); the jitter makes it rare
        // that both start a rekey at once.
        self.rekey_at = rekey;
        self.expire_at = expire;
        self.last_rx = now;
        self.dpd_at = (dpd.interval_s > 0)
            .then(|| now + dpd.interval_s * NS_PER_S)
            .into();
        ctx.counters.ike_up += 1;
        self.up_reported = true;
        let Some(suite) = self.suite else { return };
        ctx.events.push_back(Event::IkeUp {
            sa: self.id,
            conn: self.conn,
            initiator: self.initiator,
            local: self.local,
            remote: self.remote,
            encap: self.encap,
            behind_nat: self.behind_nat,
            peer_id: self.peer_id.clone(),
            vip: self.vip,
            suite,
            setup_ns: now.saturating_sub(self.started),
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        suite: EspSuite,
        spi_in: u32,
        spi_out: u32,
        keys: ChildKeys,
        exchange_initiator: bool,
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
        replaces: Option<ChildId>,
    ) -> ChildId {
        let (key_out, key_in) = if exchange_initiator {
            (keys.i_to_r, keys.r_to_i)
        } else {
            (keys.r_to_i, keys.i_to_r)
        };
        let id = ctx.new_child_id();
        // The record keeps the selectors for the SA's lifetime (rekeys offer them
        // again) in exactly their length; the keys go to the dataplane with the event
        // only (a rekey derives new ones).
        let info = ChildSa {
            id,
            spi_in,
            spi_out,
            local_ts: local_ts.as_slice().into(),
            remote_ts: remote_ts.as_slice().into(),
        };
        let lt = self.conn(ctx).child_lifetime;
        let (rekey_at, expire_at) = lifetime_deadlines(ctx, now, &lt);
        ctx.counters.child_up += 1;
        ctx.events.push_back(Event::ChildUp {
            sa: self.id,
            child: ChildInfo {
                id,
                spi_in,
                spi_out,
                cipher: suite.cipher,
                esn: suite.esn,
                key_in,
                key_out,
                local_ts,
                remote_ts,
                replaces,
                defer_outbound: replaces.is_some() && !exchange_initiator,
            },
        });
        // Most IKE SAs hold one child for life: room for exactly what is held (a Vec
        // would start at four, some 700 bytes unused per SA).
        self.children.reserve_exact(1);
        self.children.push(Child {
            info,
            state: ChildState::Installed,
            rekey_at,
            expire_at,
            ours: None,
            theirs: None,
        });
        id
    }

    pub(super) fn handle_auth_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        rq: PeerRequest,
        p: &[Payload],
    ) {
        let idi = p.iter().find_map(|x| match x {
            Payload::Idi(i) => Some(i),
            _ => None,
        });
        let auth = p.iter().find_map(|x| match x {
            Payload::Auth(a) => Some(a),
            _ => None,
        });
        let (Some(idi), Some(auth)) = (idi, auth) else {
            ctx.counters.invalid_syntax += 1;
            self.refuse(
                ctx,
                rq,
                NotifyType::INVALID_SYNTAX,
                FailReason::Refused(NotifyType::INVALID_SYNTAX.0),
            );
            return;
        };
        let peer = Identity::from_wire(idi.id_type, &idi.data);
        // The connection whose remote identity matches and whose PSK verifies; the
        // one chosen in IKE_SA_INIT first.
        let suite = self.suite;
        let mut order: Vec<ConnId> = vec![self.conn];
        order.extend((0..ctx.conns.len()).filter(|i| *i != self.conn));
        let found = order.into_iter().find(|&i| {
            let c = &ctx.conns[i];
            let id_ok = match (&c.remote_id, &peer) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            };
            let suite_ok = suite.is_some_and(|s| {
                c.ike_proposals.iter().any(|pr| {
                    pr.encr.contains(&s.encr) && pr.prf.contains(&s.prf) && pr.dh.contains(&s.dh)
                })
            });
            id_ok && suite_ok && self.verify_auth(&c.psk, idi, auth, true)
        });
        let Some(conn) = found else {
            ctx.counters.auth_failed += 1;
            self.refuse(
                ctx,
                rq,
                NotifyType::AUTHENTICATION_FAILED,
                FailReason::AuthenticationFailed,
            );
            return;
        };
        self.conn = conn;
        self.peer_id = peer;
        self.local = rq.local;
        self.remote = rq.remote;
        if self.auth_nat_forbidden(ctx, p, rq.local, rq.remote) {
            // RFC 4555 3.9: the initiator forbade NATs and there is one.
            ctx.counters.mobike_refused += 1;
            self.refuse(
                ctx,
                rq,
                NotifyType::UNEXPECTED_NAT_DETECTED,
                FailReason::Refused(NotifyType::UNEXPECTED_NAT_DETECTED.0),
            );
            return;
        }
        // RFC 7296 2.4: the peer has no other IKE SA with us; ours are stale.
        if let (Some(_), Some(who)) = (notify(p, NotifyType::INITIAL_CONTACT), &self.peer_id) {
            ctx.initial_contact.push((self.id, who.clone()));
        }
        let c = &ctx.conns[conn];
        let Some((idr, my_auth)) = self.my_auth(c, false) else {
            return;
        };
        let mut resp = vec![
            Payload::Idr(idr),
            Payload::Auth(AuthRepr {
                method: AuthMethod::SHARED_KEY_MIC,
                data: my_auth,
            }),
        ];
        self.mobike_auth_respond(ctx, p, &mut resp);
        // Configuration payload: lease a virtual IP (RFC 7296 3.15).
        let mut child_error = None;
        let cp = p.iter().find_map(|x| match x {
            Payload::Cp(cp) if cp.cfg_type == CfgType::REQUEST => Some(cp),
            _ => None,
        });
        if let Some(cp) = cp {
            let want4 = cp
                .attributes
                .iter()
                .any(|a| a.attr_type == CfgAttrType::INTERNAL_IP4_ADDRESS);
            let want6 = cp
                .attributes
                .iter()
                .any(|a| a.attr_type == CfgAttrType::INTERNAL_IP6_ADDRESS);
            let names: Vec<String> = c.pools.iter().map(|p| p.name.clone()).collect();
            let who = self
                .peer_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let mut attrs = Vec::new();
            for v6 in [false, true] {
                if (v6 && !want6) || (!v6 && !want4) || self.vip.is_some() {
                    continue;
                }
                if let Some((addr, dns)) = ctx.pools.lease(&names, &who, v6) {
                    self.vip = Some(addr);
                    self.vip_leased = true;
                    match addr {
                        IpAddr::V4(a) => {
                            attrs.push(CfgAttr {
                                attr_type: CfgAttrType::INTERNAL_IP4_ADDRESS,
                                value: a.octets().to_vec(),
                            });
                        }
                        IpAddr::V6(a) => {
                            let mut v = a.octets().to_vec();
                            v.push(128);
                            attrs.push(CfgAttr {
                                attr_type: CfgAttrType::INTERNAL_IP6_ADDRESS,
                                value: v,
                            });
                        }
                    }
                    for d in dns.iter().filter(|d| d.is_ipv6() == v6) {
                        attrs.push(CfgAttr {
                            attr_type: if v6 {
                                CfgAttrType::INTERNAL_IP6_DNS
                            } else {
                                CfgAttrType::INTERNAL_IP4_DNS
                            },
                            value: ip_bytes(*d),
                        });
                    }
                }
            }
            if attrs.is_empty() && !c.pools.is_empty() {
                // RFC 7296 3.15.4: no address for it, so no child SA either; the IKE
                // SA stands and the client decides what to do.
                ctx.counters.pool_exhausted += 1;
                child_error = Some(NotifyType::INTERNAL_ADDRESS_FAILURE);
            } else if !attrs.is_empty() {
                resp.push(Payload::Cp(CpRepr {
                    cfg_type: CfgType::REPLY,
                    attributes: attrs,
                }));
            }
        }
        if child_error.is_none() && sa_payload(p).is_some() && !self.room_for_child(ctx) {
            child_error = Some(NotifyType::NO_ADDITIONAL_SAS);
        }
        let mut child = None;
        if let (Some(props), None) = (sa_payload(p), child_error) {
            match self.negotiate_child_responder(ctx, c, props, p, None, true, None) {
                Ok((suite, spi_out, their_num, l, r)) => {
                    let spi_in = ctx.new_child_spi();
                    resp.push(Payload::Sa(SaRepr {
                        proposals: vec![neg::esp_answer(their_num, spi_in, &suite)],
                    }));
                    resp.push(Payload::Tsi(ts_repr(&r)));
                    resp.push(Payload::Tsr(ts_repr(&l)));
                    child = Some((suite, spi_in, spi_out, l, r));
                }
                Err(e) => child_error = Some(e),
            }
        }
        if let Some(e) = child_error {
            resp.push(Payload::Notify(NotifyRepr::new(e, &[])));
        }
        self.send_response(ctx, rq, &resp);
        self.establish(ctx, now);
        if let Some(e) = child_error {
            ctx.events.push_back(Event::ChildFailed {
                sa: self.id,
                reason: FailReason::Refused(e.0),
            });
        }
        if let Some((suite, spi_in, spi_out, l, r)) = child {
            let Some(keys) = self.keys.as_ref() else {
                return;
            };
            let Some(prf) = self.suite.map(|s| s.prf) else {
                return;
            };
            let Some(hs) = self.hs.as_deref() else {
                return;
            };
            if let Ok(ck) = ChildKeys::derive(&suite, prf, &keys.sk_d, None, &hs.ni, &hs.nr) {
                self.add_child(ctx, now, suite, spi_in, spi_out, ck, false, l, r, None);
            }
        }
    }

    /// Whether the dataplane can take one more child SA (`max_child_sas`, counted by
    /// the inbound SPIs we hold: live children, rekeys and negotiations under way).
    /// A new child beyond it is refused with NO_ADDITIONAL_SAS (RFC 7296 3.10.1)
    /// rather than negotiated and then never installed; rekeys of existing children
    /// use the room the table keeps beside it.
    pub(super) fn room_for_child(&self, ctx: &mut Ctx<'_>) -> bool {
        if ctx.child_spis.len() < ctx.cfg.max_child_sas {
            return true;
        }
        ctx.counters.child_refused_capacity += 1;
        false
    }

    /// Responder side of a child negotiation: proposal and selectors. Returns the
    /// suite, the peer's SPI, its proposal number and (our, their) selectors.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub(super) fn negotiate_child_responder(
        &self,
        ctx: &mut Ctx<'_>,
        c: &Conn,
        props: &[Proposal],
        p: &[Payload],
        ke_group: Option<u16>,
        in_auth: bool,
        rekeyed: Option<&ChildSa>,
    ) -> Result<(EspSuite, u32, u8, Vec<Selector>, Vec<Selector>), NotifyType> {
        let Some((prop, suite, spi_out)) =
            neg::select_esp(&c.esp_proposals, props, ke_group, in_auth)
        else {
            ctx.counters.no_proposal += 1;
            return Err(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let Some((tsi, tsr)) = ts_payloads(p) else {
            ctx.counters.invalid_syntax += 1;
            return Err(NotifyType::INVALID_SYNTAX);
        };
        let (ours_l, ours_r) = match rekeyed {
            Some(old) => (old.local_ts.to_vec(), old.remote_ts.to_vec()),
            None => self.offer_ts(c),
        };
        // TSi is the initiator's side: the peer's, matched against our remote.
        let r = neg::narrow(&ours_r, &tsi);
        let l = neg::narrow(&ours_l, &tsr);
        if r.is_empty() || l.is_empty() {
            ctx.counters.ts_unacceptable += 1;
            return Err(NotifyType::TS_UNACCEPTABLE);
        }
        Ok((suite, spi_out, prop.number, l, r))
    }

    pub(super) fn handle_auth_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        p: &[Payload],
        kind: Kind,
    ) {
        let Kind::Auth {
            spi_in,
            local_ts,
            remote_ts,
        } = kind
        else {
            return;
        };
        let idr = p.iter().find_map(|x| match x {
            Payload::Idr(i) => Some(i),
            _ => None,
        });
        let auth = p.iter().find_map(|x| match x {
            Payload::Auth(a) => Some(a),
            _ => None,
        });
        let (Some(idr), Some(auth)) = (idr, auth) else {
            ctx.child_spis.remove(&spi_in);
            let e = error_notify(p).map_or(FailReason::InvalidResponse, |e| {
                if e == NotifyType::AUTHENTICATION_FAILED {
                    FailReason::AuthenticationFailed
                } else {
                    FailReason::PeerError(e.0)
                }
            });
            self.fail(ctx, e);
            return;
        };
        let c = self.conn(ctx);
        let peer = Identity::from_wire(idr.id_type, &idr.data);
        let id_ok = match (&c.remote_id, &peer) {
            (None, _) => true,
            (Some(w), Some(g)) => w == g,
            _ => false,
        };
        if !id_ok || !self.verify_auth(&c.psk, idr, auth, false) {
            ctx.counters.auth_failed += 1;
            ctx.child_spis.remove(&spi_in);
            self.fail(ctx, FailReason::AuthenticationFailed);
            return;
        }
        self.peer_id = peer;
        self.mobike_auth_response(ctx, p);
        // Our virtual IP from the CP reply.
        let cp = p.iter().find_map(|x| match x {
            Payload::Cp(cp) if cp.cfg_type == CfgType::REPLY => Some(cp),
            _ => None,
        });
        if let Some(cp) = cp {
            for a in &cp.attributes {
                match (a.attr_type, a.value.as_slice()) {
                    (CfgAttrType::INTERNAL_IP4_ADDRESS, v) if v.len() == 4 => {
                        if let Ok(b) = <[u8; 4]>::try_from(v) {
                            self.vip.get_or_insert(IpAddr::from(b));
                        }
                    }
                    (CfgAttrType::INTERNAL_IP6_ADDRESS, v) if v.len() == 17 => {
                        if let Some(Ok(b)) = v.get(..16).map(<[u8; 16]>::try_from) {
                            self.vip.get_or_insert(IpAddr::from(b));
                        }
                    }
                    _ => {}
                }
            }
        }
        self.establish(ctx, now);
        let c = self.conn(ctx);
        match (sa_payload(p), ts_payloads(p)) {
            (Some([prop]), Some((tsi, tsr))) => {
                let accepted = neg::accept_esp(&c.esp_proposals, prop, None);
                let ts_ok = neg::within(&local_ts, &tsi) && neg::within(&remote_ts, &tsr);
                match (accepted, ts_ok) {
                    (Some((suite, spi_out)), true) => {
                        let Some(keys) = self.keys.as_ref() else {
                            return;
                        };
                        let Some(prf) = self.suite.map(|s| s.prf) else {
                            return;
                        };
                        let Some(hs) = self.hs.as_deref() else {
                            return;
                        };
                        match ChildKeys::derive(&suite, prf, &keys.sk_d, None, &hs.ni, &hs.nr) {
                            Ok(ck) => {
                                self.add_child(
                                    ctx, now, suite, spi_in, spi_out, ck, true, tsi, tsr, None,
                                );
                            }
                            Err(_) => {
                                ctx.child_spis.remove(&spi_in);
                            }
                        }
                    }
                    _ => {
                        ctx.counters.invalid_syntax += 1;
                        ctx.child_spis.remove(&spi_in);
                        ctx.events.push_back(Event::ChildFailed {
                            sa: self.id,
                            reason: FailReason::InvalidResponse,
                        });
                    }
                }
            }
            _ => {
                ctx.child_spis.remove(&spi_in);
                let reason = error_notify(p)
                    .map_or(FailReason::InvalidResponse, |e| FailReason::PeerError(e.0));
                ctx.events.push_back(Event::ChildFailed {
                    sa: self.id,
                    reason,
                });
            }
        }
    }
}
