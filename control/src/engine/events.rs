//! The log lines of the IKE core's events: one per IKE SA or child SA up, down,
//! rekeyed, moved or refused, with what an operator needs to follow it.

use tracing::{debug, info, warn};

use crate::ike::sa::{ConnId, Event, FailReason, SaId};
use crate::installer::Installer;

pub fn hex_spi(sa: SaId) -> String {
    format!("{sa:016x}")
}

pub(super) fn log(ev: &Event, names: &[String], inst: &Installer) {
    let name = |c: ConnId| names.get(c).map(String::as_str).unwrap_or("?");
    match ev {
        Event::IkeUp {
            sa,
            conn,
            initiator,
            local,
            remote,
            encap,
            behind_nat,
            peer_id,
            vip,
            suite,
            setup_ns,
        } => info!(
            sa = %hex_spi(*sa),
            conn = name(*conn),
            initiator,
            %local,
            peer = %remote,
            encap = *encap || inst.udp_only(),
            behind_nat,
            peer_id = %peer_id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            vip = %vip.map(|v| v.to_string()).unwrap_or_default(),
            suite = %format_args!(
                "{}{}-{}-{}",
                suite.encr.name(),
                suite.integ.map(|i| format!("-{}", i.name())).unwrap_or_default(),
                suite.prf.name(),
                suite.dh.name()
            ),
            setup_ms = *setup_ns as f64 / 1e6,
            "IKE SA up"
        ),
        Event::ChildUp { sa, child } => info!(
            sa = %hex_spi(*sa),
            child = child.id,
            spi_in = format_args!("{:#010x}", child.spi_in),
            spi_out = format_args!("{:#010x}", child.spi_out),
            encr = child.cipher.name(),
            esn = child.esn,
            rekey_of = ?child.replaces,
            "child SA up"
        ),
        Event::ChildDown {
            sa,
            child,
            spi_in,
            spi_out,
        } => info!(
            sa = %hex_spi(*sa),
            child,
            spi_in = format_args!("{spi_in:#010x}"),
            spi_out = format_args!("{spi_out:#010x}"),
            "child SA down"
        ),
        Event::ChildFailed { sa, reason } => {
            let code = match reason {
                FailReason::Refused(c) | FailReason::PeerError(c) => *c,
                _ => 0,
            };
            // The refusals an operator acts on, in words (RFC 7296 3.10.1).
            let detail = match code {
                35 => "no room for more child SAs (NO_ADDITIONAL_SAS: the gateway's dataplane.max_sas)",
                36 => "address pool exhausted (INTERNAL_ADDRESS_FAILURE)",
                38 => "traffic selectors not acceptable (TS_UNACCEPTABLE)",
                14 => "no common ESP proposal (NO_PROPOSAL_CHOSEN)",
                _ => "",
            };
            warn!(sa = %hex_spi(*sa), ?reason, detail, "child SA failed")
        }
        Event::IkeRekeyed { old, new } => {
            info!(old = %hex_spi(*old), new = %hex_spi(*new), "IKE SA rekeyed")
        }
        Event::PathChanged {
            sa,
            local,
            remote,
            encap,
            behind_nat,
        } => info!(sa = %hex_spi(*sa), %local, %remote, encap, behind_nat, "path changed"),
        Event::UpdateSent { sa, local, remote } => {
            debug!(sa = %hex_spi(*sa), %local, %remote, "UPDATE_SA_ADDRESSES sent")
        }
        Event::UpdateAnswered { sa, local, remote } => {
            debug!(sa = %hex_spi(*sa), %local, %remote, "UPDATE_SA_ADDRESSES answered")
        }
        Event::IkeDown { sa, reason } => info!(sa = %hex_spi(*sa), ?reason, "IKE SA down"),
    }
}
