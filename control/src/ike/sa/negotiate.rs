//! Proposal offers and selection (RFC 7296 2.7, 3.3.6) and traffic selector narrowing
//! (RFC 7296 2.9), between the connection's policy and wire payloads.

use std::net::IpAddr;

use crate::ike::conn::{EspProposal, IkeProposal, Selector};
use crate::ike::crypto::{DhGroup, Encr, EspEncr, EspSuite, IkeSuite, Integ, Prf};
use crate::ike::wire::sa::{Proposal, Transform, TransformId, TransformType};
use crate::ike::wire::ts::TrafficSelector;
use crate::ike::wire::ProtocolId;

/// The SA payload's proposals for `props`. `spi` is empty in IKE_SA_INIT and 8 bytes
/// when rekeying an IKE SA (RFC 7296 3.3.1). `dh` overrides the groups: with
/// `Some(g)` only `g` is offered first (so the KE payload matches the preferred
/// group), the others follow.
pub fn ike_offer(props: &[IkeProposal], spi: &[u8], first_group: Option<DhGroup>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| e.transform()).collect();
            t.extend(p.prf.iter().map(|f| f.transform()));
            t.extend(p.integ.iter().map(|g| g.transform()));
            let mut groups = p.dh.clone();
            if let Some(g) = first_group {
                if let Some(pos) = groups.iter().position(|x| *x == g) {
                    groups.remove(pos);
                    groups.insert(0, g);
                }
            }
            t.extend(groups.iter().map(|g| g.transform()));
            Proposal {
                number: (i + 1) as u8,
                protocol: ProtocolId::IKE,
                spi: spi.to_vec(),
                transforms: t,
            }
        })
        .collect()
}

fn of_type(p: &Proposal, ty: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.transform_type == ty)
}

fn their_encr(p: &Proposal) -> Vec<Encr> {
    of_type(p, TransformType::ENCR)
        .filter_map(Encr::from_transform)
        .collect()
}

fn their_ids(p: &Proposal, ty: TransformType) -> Vec<TransformId> {
    of_type(p, ty).map(|t| t.id).collect()
}

/// The responder's choice (RFC 7296 2.7): our proposals in our order of preference
/// against theirs; the DH group is `ke_group` when acceptable, so an initiator that
/// guessed right needs no INVALID_KE_PAYLOAD round trip. Returns their proposal
/// (for its number and SPI) and the suite.
pub fn select_ike<'a>(
    ours: &[IkeProposal],
    theirs: &'a [Proposal],
    ke_group: Option<u16>,
) -> Option<(&'a Proposal, IkeSuite)> {
    for o in ours {
        for t in theirs.iter().filter(|t| t.protocol == ProtocolId::IKE) {
            let te = their_encr(t);
            let Some(encr) = o.encr.iter().copied().find(|e| te.contains(e)) else {
                continue;
            };
            let tp = their_ids(t, TransformType::PRF);
            let Some(prf) = o.prf.iter().copied().find(|p| tp.contains(&p.id())) else {
                continue;
            };
            let ti = their_ids(t, TransformType::INTEG);
            let integ = if encr.is_aead() {
                // RFC 5282 8: no INTEG, or only INTEG NONE.
                if ti.iter().any(|i| *i != TransformId::INTEG_NONE) {
                    continue;
                }
                None
            } else {
                match o.integ.iter().copied().find(|i| ti.contains(&i.id())) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let td = their_ids(t, TransformType::DH);
            let ke = ke_group.and_then(|g| DhGroup::from_id(TransformId(g)));
            let dh = match ke.filter(|g| o.dh.contains(g) && td.contains(&g.id())) {
                Some(g) => g,
                None => match o.dh.iter().copied().find(|g| td.contains(&g.id())) {
                    Some(g) => g,
                    None => continue,
                },
            };
            return Some((
                t,
                IkeSuite {
                    encr,
                    integ,
                    prf,
                    dh,
                },
            ));
        }
    }
    None
}

/// The responder's answer: their proposal number, our SPI, one transform per type.
pub fn ike_answer(number: u8, spi: &[u8], s: &IkeSuite) -> Proposal {
    let mut transforms = vec![s.encr.transform(), s.prf.transform()];
    if let Some(i) = s.integ {
        transforms.push(i.transform());
    }
    transforms.push(s.dh.transform());
    Proposal {
        number,
        protocol: ProtocolId::IKE,
        spi: spi.to_vec(),
        transforms,
    }
}

/// The initiator's check of the responder's single proposal: exactly one transform of
/// each type, each one we offered (RFC 7296 2.7: the responder MUST NOT add or
/// change anything).
pub fn accept_ike(ours: &[IkeProposal], chosen: &Proposal) -> Option<IkeSuite> {
    if chosen.protocol != ProtocolId::IKE {
        return None;
    }
    let one = |ty| {
        let mut it = of_type(chosen, ty);
        let first = it.next();
        match it.next() {
            Some(_) => None,
            None => first,
        }
    };
    let encr = Encr::from_transform(one(TransformType::ENCR)?)?;
    let prf = Prf::from_id(one(TransformType::PRF)?.id)?;
    let integ = match of_type(chosen, TransformType::INTEG).count() {
        0 => None,
        1 => {
            let id = one(TransformType::INTEG)?.id;
            if id == TransformId::INTEG_NONE {
                None
            } else {
                Some(Integ::from_id(id)?)
            }
        }
        _ => return None,
    };
    if encr.is_aead() != integ.is_none() {
        return None;
    }
    let dh = DhGroup::from_id(one(TransformType::DH)?.id)?;
    let offered = ours.iter().any(|o| {
        o.encr.contains(&encr)
            && o.prf.contains(&prf)
            && o.dh.contains(&dh)
            && integ.is_none_or(|i| o.integ.contains(&i))
    });
    offered.then_some(IkeSuite {
        encr,
        integ,
        prf,
        dh,
    })
}

/// ESP proposals with our inbound SPI. `pfs` adds the DH transforms (CREATE_CHILD_SA
/// only; RFC 7296 1.2 forbids KE in IKE_AUTH), with `first_group` first.
pub fn esp_offer(
    props: &[EspProposal],
    spi: u32,
    pfs: bool,
    first_group: Option<DhGroup>,
) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| e.transform()).collect();
            t.extend(p.integ.iter().map(|i| i.transform()));
            if pfs && !p.dh.is_empty() {
                let mut groups = p.dh.clone();
                if let Some(g) = first_group {
                    if let Some(pos) = groups.iter().position(|x| *x == g) {
                        groups.remove(pos);
                        groups.insert(0, g);
                    }
                }
                t.extend(groups.iter().map(|g| g.transform()));
            }
            t.extend(p.esn.iter().map(|e| esn_transform(*e)));
            Proposal {
                number: (i + 1) as u8,
                protocol: ProtocolId::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect()
}

fn esn_transform(esn: bool) -> Transform {
    Transform::new(
        TransformType::ESN,
        if esn {
            TransformId::ESN_YES
        } else {
            TransformId::ESN_NO
        },
    )
}

/// The first PFS group our proposals want, for the KE payload of a CREATE_CHILD_SA.
pub fn esp_pfs_group(props: &[EspProposal]) -> Option<DhGroup> {
    props.iter().find_map(|p| p.dh.first().copied())
}

/// The responder's choice of an ESP proposal. `ke_group` is the group of the KE
/// payload of a CREATE_CHILD_SA (None in IKE_AUTH or without PFS). Returns their
/// proposal, the suite and their SPI. In IKE_AUTH (`in_auth`) DH transforms are
/// ignored (RFC 7296 1.2). A proposal with DH groups only matches when a KE of one
/// of them came with it, and vice versa.
pub fn select_esp<'a>(
    ours: &[EspProposal],
    theirs: &'a [Proposal],
    ke_group: Option<u16>,
    in_auth: bool,
) -> Option<(&'a Proposal, EspSuite, u32)> {
    for o in ours {
        for t in theirs.iter().filter(|t| t.protocol == ProtocolId::ESP) {
            let Ok(spi) = <[u8; 4]>::try_from(t.spi.as_slice()) else {
                continue;
            };
            let spi = u32::from_be_bytes(spi);
            let te: Vec<EspEncr> = of_type(t, TransformType::ENCR)
                .filter_map(EspEncr::from_transform)
                .collect();
            let Some(encr) = o.encr.iter().copied().find(|e| te.contains(e)) else {
                continue;
            };
            let ti: Vec<TransformId> = their_ids(t, TransformType::INTEG)
                .into_iter()
                .filter(|i| *i != TransformId::INTEG_NONE)
                .collect();
            let integ = if encr.is_aead() {
                // RFC 7296 3.3: an AEAD comes with no integrity algorithm, or NONE only.
                if !ti.is_empty() {
                    continue;
                }
                None
            } else {
                // RFC 7296 3.3.3: CBC needs one (INTEG NONE is no integrity).
                match o.integ.iter().copied().find(|i| ti.contains(&i.id())) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let Some(cipher) = encr.cipher(integ) else {
                continue;
            };
            let tn = their_ids(t, TransformType::ESN);
            let Some(esn) = o.esn.iter().copied().find(|e| {
                tn.contains(&if *e {
                    TransformId::ESN_YES
                } else {
                    TransformId::ESN_NO
                })
            }) else {
                continue;
            };
            let td: Vec<TransformId> = their_ids(t, TransformType::DH)
                .into_iter()
                .filter(|d| *d != TransformId::DH_NONE)
                .collect();
            let dh = if in_auth {
                None
            } else {
                match ke_group {
                    None => {
                        if !o.dh.is_empty() {
                            continue;
                        }
                        None
                    }
                    Some(g) => {
                        let g = DhGroup::from_id(TransformId(g));
                        match g.filter(|g| o.dh.contains(g) && td.contains(&g.id())) {
                            Some(g) => Some(g),
                            None => continue,
                        }
                    }
                }
            };
            return Some((t, EspSuite { cipher, esn, dh }, spi));
        }
    }
    None
}

/// The PFS group we would accept from `theirs` if the KE was of the wrong group:
/// the answer to put in INVALID_KE_PAYLOAD.
pub fn esp_wanted_group(ours: &[EspProposal], theirs: &[Proposal]) -> Option<DhGroup> {
    for o in ours {
        for t in theirs.iter().filter(|t| t.protocol == ProtocolId::ESP) {
            let td = their_ids(t, TransformType::DH);
            if let Some(g) = o.dh.iter().copied().find(|g| td.contains(&g.id())) {
                return Some(g);
            }
        }
    }
    None
}

pub fn esp_answer(number: u8, spi: u32, s: &EspSuite) -> Proposal {
    let mut transforms = vec![s.encr().transform()];
    if let Some(i) = s.integ() {
        transforms.push(i.transform());
    }
    if let Some(g) = s.dh {
        transforms.push(g.transform());
    }
    transforms.push(esn_transform(s.esn));
    Proposal {
        number,
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms,
    }
}

/// The initiator's check of the responder's ESP choice; returns the suite and the
/// responder's SPI.
pub fn accept_esp(
    ours: &[EspProposal],
    chosen: &Proposal,
    pfs: Option<DhGroup>,
) -> Option<(EspSuite, u32)> {
    if chosen.protocol != ProtocolId::ESP {
        return None;
    }
    let spi = u32::from_be_bytes(<[u8; 4]>::try_from(chosen.spi.as_slice()).ok()?);
    let encrs: Vec<&Transform> = of_type(chosen, TransformType::ENCR).collect();
    let [e] = encrs.as_slice() else {
        return None;
    };
    let encr = EspEncr::from_transform(e)?;
    // RFC 7296 2.7: one INTEG at most; NONE means none. It must fit the cipher (AEAD:
    // none, CBC: one, RFC 7296 3.3).
    let integs: Vec<TransformId> = their_ids(chosen, TransformType::INTEG);
    let integ = match integs.as_slice() {
        [] | [TransformId::INTEG_NONE] => None,
        [id] => Some(Integ::from_id(*id)?),
        _ => return None,
    };
    let cipher = encr.cipher(integ)?;
    let esns = their_ids(chosen, TransformType::ESN);
    let esn = match esns.as_slice() {
        [TransformId::ESN_NO] | [] => false,
        [TransformId::ESN_YES] => true,
        _ => return None,
    };
    let dhs: Vec<TransformId> = their_ids(chosen, TransformType::DH)
        .into_iter()
        .filter(|d| *d != TransformId::DH_NONE)
        .collect();
    let dh = match (dhs.as_slice(), pfs) {
        ([], None) => None,
        ([d], Some(g)) if *d == g.id() => Some(g),
        _ => return None,
    };
    let offered = ours.iter().any(|o| {
        o.encr.contains(&encr)
            && integ.is_none_or(|i| o.integ.contains(&i))
            && o.esn.contains(&esn)
            && dh.is_none_or(|g| o.dh.contains(&g))
    });
    offered.then_some((EspSuite { cipher, esn, dh }, spi))
}

pub fn to_wire(s: &Selector) -> TrafficSelector {
    match (s.start, s.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => TrafficSelector::Ipv4 {
            ip_proto: s.protocol,
            start_port: s.start_port,
            end_port: s.end_port,
            start: a,
            end: b,
        },
        (IpAddr::V6(a), IpAddr::V6(b)) => TrafficSelector::Ipv6 {
            ip_proto: s.protocol,
            start_port: s.start_port,
            end_port: s.end_port,
            start: a,
            end: b,
        },
        // A selector is built of one family; mixed ones cannot be constructed by
        // `Selector`'s parsers, so map to the start's family whole range.
        (IpAddr::V4(a), _) => TrafficSelector::Ipv4 {
            ip_proto: s.protocol,
            start_port: s.start_port,
            end_port: s.end_port,
            start: a,
            end: a,
        },
        (IpAddr::V6(a), _) => TrafficSelector::Ipv6 {
            ip_proto: s.protocol,
            start_port: s.start_port,
            end_port: s.end_port,
            start: a,
            end: a,
        },
    }
}

/// A wire selector we understand; unknown types and reversed ranges are `None`.
pub fn from_wire(t: &TrafficSelector) -> Option<Selector> {
    let s = match *t {
        TrafficSelector::Ipv4 {
            ip_proto,
            start_port,
            end_port,
            start,
            end,
        } => Selector {
            start: IpAddr::V4(start),
            end: IpAddr::V4(end),
            protocol: ip_proto,
            start_port,
            end_port,
        },
        TrafficSelector::Ipv6 {
            ip_proto,
            start_port,
            end_port,
            start,
            end,
        } => Selector {
            start: IpAddr::V6(start),
            end: IpAddr::V6(end),
            protocol: ip_proto,
            start_port,
            end_port,
        },
        TrafficSelector::Unknown { .. } => return None,
    };
    (s.start <= s.end && s.start_port <= s.end_port).then_some(s)
}

/// Narrowing (RFC 7296 2.9): every non-empty intersection of a selector they
/// proposed with one of ours, without duplicates.
pub fn narrow(ours: &[Selector], theirs: &[Selector]) -> Vec<Selector> {
    let mut out: Vec<Selector> = Vec::new();
    for t in theirs {
        for o in ours {
            if let Some(i) = o.intersect(t) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// The initiator's check of a narrowed answer: each selector lies within one we
/// proposed.
pub fn within(proposed: &[Selector], answered: &[Selector]) -> bool {
    !answered.is_empty()
        && answered
            .iter()
            .all(|a| proposed.iter().any(|p| p.intersect(a) == Some(*a)))
}
