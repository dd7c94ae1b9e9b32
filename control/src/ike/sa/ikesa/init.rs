//! IKE_SA_INIT (RFC 7296 1.2): the initiator's request and its retries with a
//! COOKIE (2.6) or another Diffie-Hellman group after INVALID_KE_PAYLOAD (1.2,
//! 3.10.1), the responder's answer or stateless refusal, the keys both derive (2.14),
//! and NAT detection from the NAT_DETECTION_*_IP notifications (2.23).

use std::net::{IpAddr, SocketAddr};

use super::payloads::{
    dh_from_ke, error_notify, ip_bytes, ke_payload, nonce_payload, notifies, notify, sa_payload,
};
use super::{neg, ConnId, Ctx, Deadline, FailReason, IkeSa, Kind, State, NS_PER_MS};
use crate::ike::crypto::dh::KeyShare;
use crate::ike::crypto::keys::IkeKeys;
use crate::ike::crypto::{DhGroup, Prf};
use crate::ike::wire::header::HeaderRepr;
use crate::ike::wire::ke::{self, KeRepr};
use crate::ike::wire::nonce::NonceRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::sa::SaRepr;
use crate::ike::wire::{ExchangeType, Message, Payload, WireError};

pub(super) fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut m = Vec::with_capacity(36);
    m.extend_from_slice(&spi_i.to_be_bytes());
    m.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => m.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => m.extend_from_slice(&a.octets()),
    }
    m.extend_from_slice(&addr.port().to_be_bytes());
    // RFC 7296 2.23: NAT_DETECTION_*_IP data is SHA-1(SPIs | IP | port).
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &m)
        .as_ref()
        .to_vec()
}

/// RFC 7296 2.6: a cookie the responder can check without state. One version octet,
/// then a MAC over the initiator's nonce, address and SPI.
fn cookie_for(secret: &[u8; 32], ni: &[u8], peer: IpAddr, spi_i: u64) -> Vec<u8> {
    let ip = ip_bytes(peer);
    let mac = Prf::HmacSha2_256.compute(secret, &[ni, &ip, &spi_i.to_be_bytes()]);
    let mut c = vec![1u8];
    c.extend_from_slice(mac.get(..16).unwrap_or(&mac));
    c
}

impl IkeSa {
    pub fn initiate(
        ctx: &mut Ctx<'_>,
        now: u64,
        conn: ConnId,
        spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> IkeSa {
        let mut sa = IkeSa::blank(spi, conn, true, local, remote);
        sa.spi_i = spi;
        sa.state = State::InitSent;
        let group = ctx.conns[conn]
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .unwrap_or(DhGroup::Curve25519);
        sa.hs().ke = Some(KeyShare::generate(group, ctx.rng));
        sa.hs().ni = ctx.nonce();
        sa.last_rx = now;
        sa.started = now;
        sa.send_init(ctx, now);
        sa
    }

    /// NAT_DETECTION_SOURCE_IP data for a message we send from `local`. With forced
    /// encapsulation it is a hash that cannot match, which makes the peer believe we
    /// are behind a NAT so that both ends encapsulate (as strongSwan's encap=yes
    /// does); every NAT-D we send for the SA's life says the same (RFC 7296 2.23,
    /// RFC 4555 3.9), or the peer would drop UDP encapsulation after a DPD or a move.
    pub(super) fn nat_d_source(&self, ctx: &mut Ctx<'_>, spi_r: u64, local: SocketAddr) -> Vec<u8> {
        if self.conn(ctx).force_encap {
            let mut h = vec![0u8; 20];
            ctx.rng.fill(&mut h);
            h
        } else {
            nat_hash(self.spi_i, spi_r, local)
        }
    }

    fn send_init(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let Some(hs) = self.hs.as_deref() else { return };
        let Some(ke) = &hs.ke else { return };
        let group = ke.group();
        let mut p = Vec::new();
        if let Some(c) = &hs.cookie {
            p.push(Payload::Notify(NotifyRepr::new(NotifyType::COOKIE, c)));
        }
        p.push(Payload::Sa(SaRepr {
            proposals: neg::ike_offer(&ctx.conns[self.conn].ike_proposals, &[], Some(group)),
        }));
        p.push(Payload::Ke(KeRepr {
            group: ke::DhGroup(group.number()),
            data: ke.public().to_vec(),
        }));
        p.push(Payload::Nonce(NonceRepr {
            nonce: hs.ni.clone(),
        }));
        let src = self.nat_d_source(ctx, 0, self.local);
        p.push(Payload::Notify(NotifyRepr::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            &src,
        )));
        p.push(Payload::Notify(NotifyRepr::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            &nat_hash(self.spi_i, 0, self.remote),
        )));
        let msg = Message {
            header: self.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads: p,
        };
        let Ok(data) = msg.to_vec() else { return };
        self.hs().init_req = data.clone();
        self.next_req_id = 1;
        let path = (self.local, self.remote);
        self.transmit_request(ctx, now, 0, data, Kind::Init, path);
    }

    /// Responder: a new IKE_SA_INIT request. Returns the half-open SA, or None when
    /// the answer was stateless (COOKIE, INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN) or
    /// the request was dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn respond_init(
        ctx: &mut Ctx<'_>,
        now: u64,
        spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
        h: &HeaderRepr,
        data: &[u8],
        need_cookie: bool,
        secret: &[u8; 32],
    ) -> Option<IkeSa> {
        let stateless = |ctx: &mut Ctx<'_>, n: NotifyRepr| {
            if let Some(d) = crate::ike::sa::stateless::response(&h.into(), n) {
                ctx.send(local, remote, d);
            }
        };
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(WireError::UnsupportedCriticalPayload(ty)) => {
                // RFC 7296 2.5: the whole message is rejected, and the initiator
                // learns which payload it was.
                ctx.counters.unsupported_critical += 1;
                stateless(ctx, NotifyRepr::unsupported_critical_payload(ty));
                return None;
            }
            Err(_) => {
                ctx.counters.malformed += 1;
                return None;
            }
        };
        let p = &msg.payloads;
        let (Some(props), Some(kep), Some(ni)) = (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            ctx.counters.invalid_syntax += 1;
            return None;
        };
        if need_cookie {
            let want = cookie_for(secret, ni, remote.ip(), h.spi_i);
            match notify(p, NotifyType::COOKIE) {
                Some(c) if crate::ike::crypto::ct_eq(&c.data, &want) => {}
                Some(_) => {
                    ctx.counters.cookie_invalid += 1;
                    ctx.counters.cookies_sent += 1;
                    stateless(ctx, NotifyRepr::new(NotifyType::COOKIE, &want));
                    return None;
                }
                None => {
                    ctx.counters.cookies_sent += 1;
                    stateless(ctx, NotifyRepr::new(NotifyType::COOKIE, &want));
                    return None;
                }
            }
        }
        // The first connection that accepts the offer from this local address.
        let mut chosen = None;
        for (i, c) in ctx.conns.iter().enumerate() {
            if !c.local_addrs.is_empty() && !c.local_addrs.iter().any(|a| a.ip() == local.ip()) {
                continue;
            }
            if !c.peer_addrs.is_empty() && !c.peer_addrs.iter().any(|a| a.ip() == remote.ip()) {
                continue;
            }
            if let Some((prop, suite)) = neg::select_ike(&c.ike_proposals, props, Some(kep.group.0))
            {
                chosen = Some((i, prop.number, suite));
                break;
            }
        }
        let Some((conn, number, suite)) = chosen else {
            ctx.counters.no_proposal += 1;
            stateless(ctx, NotifyRepr::new(NotifyType::NO_PROPOSAL_CHOSEN, &[]));
            return None;
        };
        if dh_from_ke(kep) != Some(suite.dh) {
            // RFC 7296 1.3: tell the initiator which group to use.
            ctx.counters.invalid_ke_sent += 1;
            stateless(
                ctx,
                NotifyRepr::invalid_ke_payload(ke::DhGroup(suite.dh.number())),
            );
            return None;
        }
        let mine = KeyShare::generate(suite.dh, ctx.rng);
        let Ok(g_ir) = mine.agree(&kep.data) else {
            ctx.counters.bad_key_share += 1;
            stateless(ctx, NotifyRepr::new(NotifyType::INVALID_SYNTAX, &[]));
            return None;
        };
        let nr = ctx.nonce();
        let Ok(keys) = IkeKeys::derive(&suite, g_ir.as_bytes(), ni, &nr, h.spi_i, spi) else {
            return None;
        };
        let Ok((sk_out, sk_in)) = keys.responder_sk(&suite) else {
            return None;
        };
        let mut sa = IkeSa::blank(spi, conn, false, local, remote);
        sa.spi_i = h.spi_i;
        sa.spi_r = spi;
        sa.suite = Some(suite);
        sa.keys = Some(keys);
        sa.sk_out = Some(sk_out);
        sa.sk_in = Some(sk_in);
        sa.hs().ni = ni.to_vec();
        sa.hs().nr = nr.clone();
        sa.hs().init_req = data.to_vec();
        sa.peer_next_id = 1;
        sa.next_req_id = 0;
        sa.last_rx = now;
        sa.started = now;
        sa.init_key = Some(Box::new((remote, h.spi_i)));
        sa.state = State::HalfOpen;
        sa.half_open_until = Deadline::at(now + ctx.cfg.half_open_timeout_ms * NS_PER_MS);
        // The request's hashes were made before SPIr existed: with SPIr = 0.
        let (nat_local, nat_remote) = sa.detect_nat(p, 0);
        sa.encap = nat_local || nat_remote || ctx.conns[conn].force_encap;
        sa.behind_nat = nat_local;
        let src = sa.nat_d_source(ctx, spi, local);
        let resp = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads: vec![
                Payload::Sa(SaRepr {
                    proposals: vec![neg::ike_answer(number, &[], &suite)],
                }),
                Payload::Ke(KeRepr {
                    group: ke::DhGroup(suite.dh.number()),
                    data: mine.public().to_vec(),
                }),
                Payload::Nonce(NonceRepr { nonce: nr }),
                Payload::Notify(NotifyRepr::new(NotifyType::NAT_DETECTION_SOURCE_IP, &src)),
                Payload::Notify(NotifyRepr::new(
                    NotifyType::NAT_DETECTION_DESTINATION_IP,
                    &nat_hash(sa.spi_i, spi, remote),
                )),
            ],
        };
        let Ok(d) = resp.to_vec() else { return None };
        sa.hs().init_resp = d.clone();
        ctx.send(local, remote, d);
        Some(sa)
    }

    /// (NAT in front of us, NAT in front of the peer) from the peer's NAT_DETECTION
    /// notifies (RFC 7296 2.23). Without any, the peer does not do NAT-T: no NAT.
    fn detect_nat(&self, p: &[Payload], spi_r: u64) -> (bool, bool) {
        let src: Vec<&NotifyRepr> = notifies(p, NotifyType::NAT_DETECTION_SOURCE_IP).collect();
        let dst = notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP);
        let (Some(dst), false) = (dst, src.is_empty()) else {
            return (false, false);
        };
        let me = nat_hash(self.spi_i, spi_r, self.local);
        let peer = nat_hash(self.spi_i, spi_r, self.remote);
        let nat_local = dst.data != me;
        let nat_remote = !src.iter().any(|n| n.data == peer);
        (nat_local, nat_remote)
    }

    pub(super) fn handle_init_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        h: &HeaderRepr,
        data: &[u8],
    ) {
        let Ok(msg) = Message::parse(data) else {
            ctx.counters.malformed += 1;
            return;
        };
        let p = &msg.payloads;
        if let Some(c) = notify(p, NotifyType::COOKIE) {
            // RFC 7296 2.6: resend the same request with the cookie first. Bound its
            // size so a peer cannot make us send large messages.
            if c.data.is_empty() || c.data.len() > 64 || self.hs().cookie.is_some() {
                ctx.counters.invalid_syntax += 1;
                return;
            }
            self.hs().cookie = Some(c.data.clone());
            self.pending = None;
            self.send_init(ctx, now);
            return;
        }
        if let Some(n) = notify(p, NotifyType::INVALID_KE_PAYLOAD) {
            let want = n
                .requested_group()
                .and_then(|g| DhGroup::from_id(crate::ike::wire::sa::TransformId(g.0)));
            let offered = self
                .conn(ctx)
                .ike_proposals
                .iter()
                .any(|pr| want.is_some_and(|w| pr.dh.contains(&w)));
            let current = self.hs().ke.as_ref().map(KeyShare::group);
            match want {
                Some(g) if offered && current != Some(g) => {
                    self.hs().ke = Some(KeyShare::generate(g, ctx.rng));
                    self.pending = None;
                    self.send_init(ctx, now);
                }
                _ => self.fail(ctx, FailReason::NoProposalChosen),
            }
            return;
        }
        if let Some(e) = error_notify(p) {
            ctx.counters.no_proposal += u64::from(e == NotifyType::NO_PROPOSAL_CHOSEN);
            self.fail(ctx, FailReason::PeerError(e.0));
            return;
        }
        let (Some(props), Some(kep), Some(nr)) = (sa_payload(p), ke_payload(p), nonce_payload(p))
        else {
            ctx.counters.invalid_syntax += 1;
            return;
        };
        let [prop] = props else {
            ctx.counters.invalid_syntax += 1;
            return;
        };
        let Some(suite) = neg::accept_ike(&self.conn(ctx).ike_proposals, prop) else {
            ctx.counters.invalid_syntax += 1;
            self.fail(ctx, FailReason::InvalidResponse);
            return;
        };
        let Some(ke) = self.hs().ke.take() else {
            return;
        };
        if ke.group() != suite.dh || dh_from_ke(kep) != Some(suite.dh) || h.spi_r == 0 {
            ctx.counters.invalid_syntax += 1;
            self.fail(ctx, FailReason::InvalidResponse);
            return;
        }
        let Ok(g_ir) = ke.agree(&kep.data) else {
            ctx.counters.bad_key_share += 1;
            self.fail(ctx, FailReason::InvalidResponse);
            return;
        };
        self.spi_r = h.spi_r;
        let (spi_i, spi_r) = (self.spi_i, self.spi_r);
        let Ok(keys) = IkeKeys::derive(&suite, g_ir.as_bytes(), &self.hs().ni, nr, spi_i, spi_r)
        else {
            return;
        };
        let Ok((sk_out, sk_in)) = keys.initiator_sk(&suite) else {
            return;
        };
        self.hs().nr = nr.to_vec();
        self.suite = Some(suite);
        self.keys = Some(keys);
        self.sk_out = Some(sk_out);
        self.sk_in = Some(sk_in);
        self.hs().init_resp = data.to_vec();
        self.pending = None;
        let (nat_local, nat_remote) = self.detect_nat(p, self.spi_r);
        self.encap = nat_local || nat_remote || self.conn(ctx).force_encap;
        self.behind_nat = nat_local;
        // MOBIKE needs the NAT-T port from IKE_AUTH on, NAT or not, since a later
        // path may have one (RFC 4555 3.3); the peer's NAT-D say it speaks NAT-T.
        let nat_t = notify(p, NotifyType::NAT_DETECTION_SOURCE_IP).is_some();
        let float = self.encap || (self.conn(ctx).mobike.enabled && nat_t);
        if float && self.remote.port() == ctx.cfg.port {
            // RFC 7296 2.23: continue on the NAT-T port.
            self.remote.set_port(ctx.cfg.port_nat_t);
            self.local.set_port(ctx.cfg.port_nat_t);
        }
        self.state = State::AuthSent;
        self.send_auth(ctx, now);
    }
}
