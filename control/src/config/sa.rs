//! `tunnels[i].outbound` and `tunnels[i].inbound`: one static SA (RFC 4303): SPI,
//! transform, keying material, ESN and the anti-replay window.

use super::dataplane::REPLAY_WINDOW_MAX;
use super::keys::suggest;
use super::value::{after_0x, hex_bytes, not_a_number, parse_uint, Ctx, S};
use serde_saphyr::Spanned;
use shared::sa::EspCipher;
use std::fmt;

/// One direction's SA.
#[derive(Clone, PartialEq, Eq)]
pub struct SaConf {
    pub spi: u32,
    pub cipher: EspCipher,
    /// Key followed by the 4-byte salt for the AEAD transforms (RFC 4106, RFC 7634);
    /// encryption key followed by integrity key for AES-CBC + HMAC-SHA2.
    pub key: Vec<u8>,
    pub esn: bool,
    /// Inbound only: the anti-replay window (the dataplane default unless overridden).
    pub replay_window: u32,
}

impl fmt::Debug for SaConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SaConf")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("cipher", &self.cipher)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSa {
    pub(super) spi: Option<S>,
    pub(super) enc: Option<S>,
    pub(super) key: Option<S>,
    pub(super) esn: Option<S>,
    pub(super) replay_window: Option<S>,
}

/// Every transform name `enc` takes.
const CIPHERS: [&str; EspCipher::ALL.len()] = {
    let mut names = [""; EspCipher::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = EspCipher::ALL[i].name();
        i += 1;
    }
    names
};

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    at: &str,
    raw: &Spanned<RawSa>,
    inbound: bool,
    default_window: u32,
) -> Option<SaConf> {
    let r = &raw.value;
    let key_path = |k: &str| format!("{at}.{k}");
    let spi = match &r.spi {
        None => {
            cx.missing(
                &key_path("spi"),
                Some(raw.referenced),
                "add `spi: 0x...` (a 32-bit value from 0x100 up)",
            );
            None
        }
        Some(v) => match parse_uint(&v.value) {
            None => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    not_a_number(&v.value),
                    "write the SPI in hex (0x00001001) or decimal, from 0x100 to 0xffffffff",
                );
                None
            }
            Some(0) => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    "SPI 0 is reserved (RFC 4303 2.1)",
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) if n < 256 => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    format!("SPI {n} is in the range 1-255 reserved by IANA (RFC 4303 2.1)"),
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) if n > u64::from(u32::MAX) => {
                cx.err(
                    &key_path("spi"),
                    v.referenced,
                    format!("{} does not fit in 32 bits", v.value),
                    "use a value from 0x100 to 0xffffffff",
                );
                None
            }
            Some(n) => Some(n as u32),
        },
    };
    let cipher = match &r.enc {
        None => {
            cx.missing(
                &key_path("enc"),
                Some(raw.referenced),
                "add `enc:` with one of aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, aes256-sha384, ...",
            );
            None
        }
        Some(v) => match EspCipher::from_name(&v.value.to_ascii_lowercase()) {
            Some(c) => Some(c),
            None => {
                let lower = v.value.to_ascii_lowercase();
                let all = EspCipher::names();
                let fix = if lower.contains("gcm8")
                    || lower.contains("gcm12")
                    || lower.contains("gcm64")
                    || lower.contains("gcm96")
                {
                    "only the 16-octet ICV is supported: use aes128gcm16 or aes256gcm16".to_string()
                } else if lower.contains("192") {
                    format!("AES-192 is not supported: use one of {all}")
                } else if lower.contains("sha1") || lower.contains("md5") {
                    format!("HMAC-SHA1 and MD5 are not supported (RFC 8221): use one of {all}")
                } else if let Some(s) = suggest(&lower, &CIPHERS) {
                    format!("did you mean `{s}`?")
                } else {
                    format!("use one of {all}")
                };
                cx.err(
                    &key_path("enc"),
                    v.referenced,
                    format!("unknown cipher `{}`", v.value),
                    fix,
                );
                None
            }
        },
    };
    let key = match (&r.key, cipher) {
        (None, _) => {
            cx.missing(
                &key_path("key"),
                Some(raw.referenced),
                "add `key: 0x...`: the key followed by the 4-byte salt (AES-GCM, ChaCha20-Poly1305), or the AES key followed by the HMAC key (aesNNN-shaNNN), in hex",
            );
            None
        }
        (Some(v), Some(c)) => parse_key(cx, &key_path("key"), v, c),
        (Some(_), None) => None,
    };
    let esn = match &r.esn {
        None => Some(false),
        Some(v) => cx.boolean(&key_path("esn"), v),
    };
    let replay_window = match (&r.replay_window, inbound) {
        (None, _) => Some(if inbound { default_window } else { 0 }),
        (Some(v), false) => {
            cx.err(
                &key_path("replay_window"),
                v.referenced,
                "the anti-replay window applies to inbound SAs only (the receiver checks it, RFC 4303 3.4.3)",
                "move it to the inbound SA or remove it",
            );
            None
        }
        (Some(v), true) => cx
            .uint(
                &key_path("replay_window"),
                v,
                0..=REPLAY_WINDOW_MAX,
                "anti-replay window in packets (0 disables)",
            )
            .map(|n| n as u32),
    };
    Some(SaConf {
        spi: spi?,
        cipher: cipher?,
        key: key?,
        esn: esn?,
        replay_window: replay_window?,
    })
}

fn parse_key(cx: &mut Ctx<'_>, path: &str, v: &S, c: EspCipher) -> Option<Vec<u8>> {
    let s = v.value.trim();
    let want = c.keymat_len() * 2;
    // What the key is made of, briefly: "16-byte key + 4-byte salt".
    let parts = match c.integ() {
        None => format!("{}-byte key + 4-byte salt", c.key_len()),
        Some(i) => format!(
            "{}-byte AES key + {}-byte HMAC-{} key",
            c.key_len(),
            i.key_len(),
            i.name().to_ascii_uppercase()
        ),
    };
    let Some(hex) = after_0x(s) else {
        let fix = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("prefix the hex digits with 0x (0x{s})")
        } else {
            format!(
                "write 0x followed by {want} hex digits ({parts}) for {}",
                c.name()
            )
        };
        cx.err(path, v.referenced, "the key is not written in hex", fix);
        return None;
    };
    if let Some((pos, ch)) = hex.char_indices().find(|(_, ch)| !ch.is_ascii_hexdigit()) {
        cx.err(
            path,
            v.referenced,
            format!("`{ch}` at position {} is not a hex digit", pos + 2),
            "use only 0-9 and a-f after 0x",
        );
        return None;
    }
    if hex.len() != want {
        // Transforms whose keying material has this length.
        let same: Vec<&str> = EspCipher::ALL
            .iter()
            .filter(|o| **o != c && o.keymat_len() * 2 == hex.len())
            .map(|o| o.name())
            .collect();
        // AEAD keys of this length without their salt.
        let unsalted: Vec<&str> = EspCipher::ALL
            .iter()
            .filter(|o| **o != c && o.is_aead() && o.key_len() * 2 == hex.len())
            .map(|o| o.name())
            .collect();
        let fix = if hex.len() == c.key_len() * 2 {
            match c.integ() {
                None => "append the 4-byte salt (8 more hex digits)".to_string(),
                Some(i) => format!(
                    "append the {}-byte HMAC-{} key ({} more hex digits): the AES key comes first",
                    i.key_len(),
                    i.name().to_ascii_uppercase(),
                    i.key_len() * 2
                ),
            }
        } else if let Some(first) = same.first() {
            format!(
                "this is the length of an {} key: set `enc: {first}`, or use a {parts}",
                same.join(" or ")
            )
        } else if c.is_aead() && !unsalted.is_empty() {
            format!(
                "this is the length of an {} key without salt: use a {}-byte key and append the 4-byte salt",
                unsalted.join(" or "),
                c.key_len()
            )
        } else if hex.len() % 2 == 1 {
            "an odd number of digits: every byte takes two hex digits".to_string()
        } else {
            format!("give {want} hex digits: the {}", c.keymat_layout())
        };
        cx.err(
            path,
            v.referenced,
            format!(
                "expected {want} hex digits ({parts}) for {}, got {}",
                c.name(),
                hex.len()
            ),
            fix,
        );
        return None;
    }
    hex_bytes(hex)
}
