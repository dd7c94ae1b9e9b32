//! Finding and building the payloads the exchanges of an IKE SA read and write
//! (RFC 7296 3): notifications (3.10) and error notifications (3.10.1), SA (3.3), KE
//! (3.4), nonce (3.9) and traffic selectors (3.13).

use std::net::IpAddr;

use super::neg;
use crate::ike::conn::Selector;
use crate::ike::crypto::DhGroup;
use crate::ike::wire::ke::KeRepr;
use crate::ike::wire::notify::{NotifyRepr, NotifyType};
use crate::ike::wire::sa::Proposal;
use crate::ike::wire::ts::TsRepr;
use crate::ike::wire::Payload;

pub(super) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(super) fn notify(p: &[Payload], ty: NotifyType) -> Option<&NotifyRepr> {
    p.iter().find_map(|x| match x {
        Payload::Notify(n) if n.notify_type == ty => Some(n),
        _ => None,
    })
}

pub(super) fn notifies(p: &[Payload], ty: NotifyType) -> impl Iterator<Item = &NotifyRepr> {
    p.iter().filter_map(move |x| match x {
        Payload::Notify(n) if n.notify_type == ty => Some(n),
        _ => None,
    })
}

/// The first error notification (type < 16384) of a response.
pub(super) fn error_notify(p: &[Payload]) -> Option<NotifyType> {
    p.iter().find_map(|x| match x {
        Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
        _ => None,
    })
}

pub(super) fn sa_payload(p: &[Payload]) -> Option<&[Proposal]> {
    p.iter().find_map(|x| match x {
        Payload::Sa(s) => Some(s.proposals.as_slice()),
        _ => None,
    })
}

pub(super) fn ke_payload(p: &[Payload]) -> Option<&KeRepr> {
    p.iter().find_map(|x| match x {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

pub(super) fn nonce_payload(p: &[Payload]) -> Option<&[u8]> {
    p.iter().find_map(|x| match x {
        Payload::Nonce(n) => Some(n.nonce.as_slice()),
        _ => None,
    })
}

pub(super) fn ts_payloads(p: &[Payload]) -> Option<(Vec<Selector>, Vec<Selector>)> {
    let tsi = p.iter().find_map(|x| match x {
        Payload::Tsi(t) => Some(t),
        _ => None,
    })?;
    let tsr = p.iter().find_map(|x| match x {
        Payload::Tsr(t) => Some(t),
        _ => None,
    })?;
    Some((
        tsi.selectors.iter().filter_map(neg::from_wire).collect(),
        tsr.selectors.iter().filter_map(neg::from_wire).collect(),
    ))
}

pub(super) fn ts_repr(s: &[Selector]) -> TsRepr {
    TsRepr {
        selectors: s.iter().map(neg::to_wire).collect(),
    }
}

pub(super) fn dh_from_ke(k: &KeRepr) -> Option<DhGroup> {
    DhGroup::from_id(crate::ike::wire::sa::TransformId(k.group.0))
}
