//! A connection's proposals: `proposals` for the IKE SA and `esp_proposals` for its
//! child SAs (RFC 7296 3.3), in strongSwan's notation, `default` for the defaults.

use super::RawConn;
use crate::config::keys::suggest;
use crate::config::value::{items, Ctx, Many};
use crate::ike::conn::{EspProposal, IkeProposal};
use crate::ike::crypto::{DhGroup, Encr, EspEncr, Integ, Prf};

/// The IKE and the ESP proposals of a connection, the defaults where not given.
pub(super) fn conn_proposals(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
) -> (Option<Vec<IkeProposal>>, Option<Vec<EspProposal>>) {
    let at = |k: &str| format!("{prefix}{k}");
    let ike_proposals = match &r.proposals {
        None => Some(IkeProposal::defaults()),
        Some(m) => proposals(
            cx,
            &at("proposals"),
            m,
            IkeProposal::parse,
            IkeProposal::defaults,
            false,
        ),
    };
    let esp_proposals = match &r.esp_proposals {
        None => Some(EspProposal::defaults()),
        Some(m) => proposals(
            cx,
            &at("esp_proposals"),
            m,
            EspProposal::parse,
            EspProposal::defaults,
            true,
        ),
    };
    (ike_proposals, esp_proposals)
}

const IKE_PROPOSAL_FIX: &str = "write ENCR-PRF-GROUP for AES-GCM (aes128gcm16-prfsha256-x25519), \
     ENCR-INTEG-GROUP for AES-CBC (aes128-sha256-x25519), or `default`";
const ESP_PROPOSAL_FIX: &str = "write AEAD[-GROUP][-esn] or CBC-INTEG[-GROUP][-esn], e.g. \
     aes128gcm16, chacha20poly1305, aes256-sha384, aes256gcm16-x25519 (PFS) or `default`";

/// The token an "unknown algorithm `X`" proposal error names.
fn unknown_token(msg: &str) -> Option<&str> {
    let rest = msg.split("algorithm `").nth(1)?;
    rest.split('`').next()
}

fn proposal_fix(msg: &str, esp: bool) -> String {
    let generic = if esp {
        ESP_PROPOSAL_FIX
    } else {
        IKE_PROPOSAL_FIX
    };
    let Some(tok) = unknown_token(msg) else {
        return generic.to_string();
    };
    if tok.starts_with("modp") {
        return "MODP groups are not implemented: use x25519, ecp256 or ecp384".to_string();
    }
    let mut names: Vec<&str> = Vec::new();
    if esp {
        names.extend(EspEncr::ALL.iter().map(|e| e.name()));
        names.extend(Integ::ALL.iter().map(|i| i.name()));
        names.extend(["esn", "noesn"]);
    } else {
        names.extend(Encr::ALL.iter().map(|e| e.name()));
        names.extend(Integ::ALL.iter().map(|i| i.name()));
        names.extend(Prf::ALL.iter().map(|p| p.name()));
    }
    names.extend(DhGroup::ALL.iter().map(|g| g.name()));
    match suggest(tok, &names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => generic.to_string(),
    }
}

fn proposals<T>(
    cx: &mut Ctx<'_>,
    path: &str,
    m: &Many,
    parse: fn(&str) -> Result<T, crate::ike::conn::ProposalError>,
    defaults: fn() -> Vec<T>,
    esp: bool,
) -> Option<Vec<T>> {
    let list = items(path, m);
    if list.is_empty() {
        cx.err(
            path,
            m.referenced,
            "no proposal",
            "list at least one, or remove the key for the defaults",
        );
        return None;
    }
    let mut out = Some(Vec::new());
    for (p, s, loc) in list {
        if s.eq_ignore_ascii_case("default") {
            if let Some(o) = out.as_mut() {
                o.extend(defaults());
            }
            continue;
        }
        match parse(&s.to_ascii_lowercase()) {
            Ok(prop) => {
                if let Some(o) = out.as_mut() {
                    o.push(prop);
                }
            }
            Err(e) => {
                let fix = proposal_fix(&e.0, esp);
                cx.err(&p, loc, e.0, fix);
                out = None;
            }
        }
    }
    out
}
