//! A connection's negotiated-policy description: what the sans-IO IKE core needs to
//! initiate or accept IKE SAs and child SAs. Built from YAML by the configuration
//! loader, or directly by tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::crypto::{DhGroup, Encr, EspEncr, Integ, Prf};
use super::wire::id::IdType;

/// One IKE proposal: acceptable algorithms of each type (strongSwan-style
/// `aes128gcm16-prfsha256-x25519`). The first algorithm of each list is preferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<Encr>,
    /// Empty for AEAD-only proposals.
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
}

/// One ESP proposal. `integ` is empty for AEAD proposals and required with AES-CBC
/// (RFC 7296 3.3.3). `dh` lists PFS groups for CREATE_CHILD_SA; empty = no PFS. The
/// child SA created in IKE_AUTH never uses PFS (RFC 7296 1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<EspEncr>,
    pub integ: Vec<Integ>,
    pub esn: Vec<bool>,
    pub dh: Vec<DhGroup>,
}

/// Why a proposal string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalError(pub String);

impl core::fmt::Display for ProposalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn token_list(s: &str) -> Result<Vec<&str>, ProposalError> {
    let toks: Vec<&str> = s.split('-').map(str::trim).collect();
    if toks.iter().any(|t| t.is_empty()) {
        return Err(ProposalError(format!(
            "`{s}`: empty algorithm name (algorithms are separated by single `-`)"
        )));
    }
    Ok(toks)
}

fn integ_by_name(t: &str) -> Option<Integ> {
    match t {
        "sha256" | "sha2_256" => Some(Integ::HmacSha2_256_128),
        "sha384" | "sha2_384" => Some(Integ::HmacSha2_384_192),
        "sha512" | "sha2_512" => Some(Integ::HmacSha2_512_256),
        _ => None,
    }
}

fn dh_by_name(t: &str) -> Option<DhGroup> {
    match t {
        "x25519" | "curve25519" | "modp31" => Some(DhGroup::Curve25519),
        "ecp256" => Some(DhGroup::Ecp256),
        "ecp384" => Some(DhGroup::Ecp384),
        _ => None,
    }
}

const IKE_NAMES: &str =
    "encryption aes128gcm16 aes256gcm16 aes128 aes256; integrity sha256 sha384 \
sha512 (CBC only); prf prfsha256 prfsha384 prfsha512; groups x25519 ecp256 ecp384";

impl IkeProposal {
    /// Parses strongSwan syntax. With CBC and no PRF named, the PRF follows the
    /// integrity algorithm, as strongSwan does.
    pub fn parse(s: &str) -> Result<Self, ProposalError> {
        let mut p = IkeProposal {
            encr: Vec::new(),
            integ: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
        };
        for t in token_list(s)? {
            if let Some(e) = Encr::ALL.into_iter().find(|e| e.name() == t) {
                p.encr.push(e);
            } else if let Some(i) = integ_by_name(t) {
                p.integ.push(i);
            } else if let Some(f) = Prf::ALL.into_iter().find(|f| f.name() == t) {
                p.prf.push(f);
            } else if let Some(g) = dh_by_name(t) {
                p.dh.push(g);
            } else {
                return Err(ProposalError(format!(
                    "`{s}`: unknown algorithm `{t}` (known: {IKE_NAMES})"
                )));
            }
        }
        if p.encr.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: no encryption algorithm (add e.g. aes128gcm16)"
            )));
        }
        let aead = p.encr.iter().any(|e| e.is_aead());
        let cbc = p.encr.iter().any(|e| !e.is_aead());
        if aead && cbc {
            return Err(ProposalError(format!(
                "`{s}`: mixes AEAD and CBC encryption; write two proposals"
            )));
        }
        if aead && !p.integ.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: AES-GCM carries its own integrity; remove the integrity algorithm"
            )));
        }
        if cbc && p.integ.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: CBC needs an integrity algorithm (add e.g. sha256)"
            )));
        }
        if p.prf.is_empty() {
            if aead {
                return Err(ProposalError(format!("`{s}`: no PRF (add e.g. prfsha256)")));
            }
            p.prf = p
                .integ
                .iter()
                .map(|i| match i {
                    Integ::HmacSha2_256_128 => Prf::HmacSha2_256,
                    Integ::HmacSha2_384_192 => Prf::HmacSha2_384,
                    Integ::HmacSha2_512_256 => Prf::HmacSha2_512,
                })
                .collect();
        }
        if p.dh.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: no key exchange group (add e.g. x25519)"
            )));
        }
        Ok(p)
    }

    /// The proposals a gateway or client uses when the configuration names none:
    /// strongSwan's defaults that we implement, AEAD first.
    pub fn defaults() -> Vec<Self> {
        vec![
            IkeProposal {
                encr: vec![Encr::AesGcm16_128, Encr::AesGcm16_256],
                integ: vec![],
                prf: vec![Prf::HmacSha2_256, Prf::HmacSha2_384, Prf::HmacSha2_512],
                dh: vec![DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384],
            },
            IkeProposal {
                encr: vec![Encr::AesCbc128, Encr::AesCbc256],
                integ: vec![
                    Integ::HmacSha2_256_128,
                    Integ::HmacSha2_384_192,
                    Integ::HmacSha2_512_256,
                ],
                prf: vec![Prf::HmacSha2_256, Prf::HmacSha2_384, Prf::HmacSha2_512],
                dh: vec![DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384],
            },
        ]
    }
}

/// Every ESP proposal token, for messages.
pub const ESP_NAMES: &str = "encryption aes128gcm16 aes256gcm16 chacha20poly1305 aes128 \
aes256; integrity sha256 sha384 sha512 (with aes128/aes256 only, e.g. aes128-sha256); esn \
noesn; groups x25519 ecp256 ecp384 for PFS";

impl EspProposal {
    /// Parses strongSwan syntax (`aes128gcm16-x25519-esn`, `aes256-sha384`,
    /// `chacha20poly1305`); a group means PFS.
    pub fn parse(s: &str) -> Result<Self, ProposalError> {
        let mut p = EspProposal {
            encr: Vec::new(),
            integ: Vec::new(),
            esn: Vec::new(),
            dh: Vec::new(),
        };
        for t in token_list(s)? {
            if let Some(e) = EspEncr::ALL.into_iter().find(|e| e.name() == t) {
                p.encr.push(e);
            } else if let Some(i) = integ_by_name(t) {
                p.integ.push(i);
            } else if t == "esn" {
                p.esn.push(true);
            } else if t == "noesn" {
                p.esn.push(false);
            } else if let Some(g) = dh_by_name(t) {
                p.dh.push(g);
            } else {
                return Err(ProposalError(format!(
                    "`{s}`: unknown ESP algorithm `{t}` (known: {ESP_NAMES})"
                )));
            }
        }
        if p.encr.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: no ESP encryption algorithm (add aes128gcm16, chacha20poly1305 or \
                 aes128-sha256)"
            )));
        }
        // RFC 7296 3.3: an AEAD is the proposal's only kind of encryption and has no
        // integrity algorithm; CBC needs one.
        let aead = p.encr.iter().any(|e| e.is_aead());
        let cbc = p.encr.iter().any(|e| !e.is_aead());
        if aead && cbc {
            return Err(ProposalError(format!(
                "`{s}`: mixes AEAD and CBC encryption; write two proposals"
            )));
        }
        if aead && !p.integ.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: {} carries its own integrity; remove the integrity algorithm",
                p.encr[0].name()
            )));
        }
        if cbc && p.integ.is_empty() {
            return Err(ProposalError(format!(
                "`{s}`: AES-CBC needs an integrity algorithm (e.g. aes128-sha256)"
            )));
        }
        if p.esn.is_empty() {
            p.esn.push(false);
        }
        Ok(p)
    }

    /// The ESP proposals offered and accepted when the configuration names none: AES-GCM
    /// first, then ChaCha20-Poly1305, then AES-CBC with HMAC-SHA2 (what Windows' native
    /// client and OpenIKED propose), so a gateway accepts those out of the box.
    pub fn defaults() -> Vec<Self> {
        vec![
            EspProposal {
                encr: vec![
                    EspEncr::AesGcm16_128,
                    EspEncr::AesGcm16_256,
                    EspEncr::ChaCha20Poly1305,
                ],
                integ: vec![],
                esn: vec![false, true],
                dh: vec![],
            },
            EspProposal {
                encr: vec![EspEncr::AesCbc128, EspEncr::AesCbc256],
                integ: vec![
                    Integ::HmacSha2_256_128,
                    Integ::HmacSha2_384_192,
                    Integ::HmacSha2_512_256,
                ],
                esn: vec![false, true],
                dh: vec![],
            },
        ]
    }
}

/// An IKE identity (RFC 7296 3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    Email(String),
    KeyId(Vec<u8>),
}

impl Identity {
    /// strongSwan-style: an IP address, `user@host` (RFC 822), `@#hex` (key id),
    /// `@name` or `name` (FQDN).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty identity".into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(match ip {
                IpAddr::V4(a) => Identity::Ipv4(a),
                IpAddr::V6(a) => Identity::Ipv6(a),
            });
        }
        if let Some(hex) = s.strip_prefix("@#") {
            return hex_bytes(hex)
                .map(Identity::KeyId)
                .ok_or_else(|| format!("`{s}`: key id must be hex after @#"));
        }
        if let Some(name) = s.strip_prefix('@') {
            return Ok(Identity::Fqdn(name.to_string()));
        }
        if s.contains('@') {
            return Ok(Identity::Email(s.to_string()));
        }
        Ok(Identity::Fqdn(s.to_string()))
    }

    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::IPV4_ADDR,
            Identity::Ipv6(_) => IdType::IPV6_ADDR,
            Identity::Fqdn(_) => IdType::FQDN,
            Identity::Email(_) => IdType::RFC822_ADDR,
            Identity::KeyId(_) => IdType::KEY_ID,
        }
    }

    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Email(s) => s.as_bytes().to_vec(),
            Identity::KeyId(k) => k.clone(),
        }
    }

    /// The identity a received ID payload names; `None` for types we cannot
    /// compare (DER names), which then match only `%any`.
    pub fn from_wire(ty: IdType, data: &[u8]) -> Option<Self> {
        match ty {
            IdType::IPV4_ADDR => <[u8; 4]>::try_from(data)
                .ok()
                .map(|b| Identity::Ipv4(b.into())),
            IdType::IPV6_ADDR => <[u8; 16]>::try_from(data)
                .ok()
                .map(|b| Identity::Ipv6(b.into())),
            IdType::FQDN => core::str::from_utf8(data)
                .ok()
                .map(|s| Identity::Fqdn(s.to_string())),
            IdType::RFC822_ADDR => core::str::from_utf8(data)
                .ok()
                .map(|s| Identity::Email(s.to_string())),
            IdType::KEY_ID => Some(Identity::KeyId(data.to_vec())),
            _ => None,
        }
    }
}

impl core::fmt::Display for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "{s}"),
            Identity::Email(s) => write!(f, "{s}"),
            Identity::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 == 1 || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A traffic selector range (RFC 7296 3.13.1): addresses, protocol, ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    pub start: IpAddr,
    pub end: IpAddr,
    /// 0 = any protocol.
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
}

impl Selector {
    /// A whole prefix, any protocol and port.
    pub fn prefix(addr: IpAddr, len: u8) -> Self {
        let (start, end) = match addr {
            IpAddr::V4(a) => {
                let len = len.min(32);
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                };
                let s = u32::from(a) & mask;
                (
                    IpAddr::V4(Ipv4Addr::from(s)),
                    IpAddr::V4(Ipv4Addr::from(s | !mask)),
                )
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len))
                };
                let s = u128::from(a) & mask;
                (
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(s | !mask)),
                )
            }
        };
        Selector {
            start,
            end,
            protocol: 0,
            start_port: 0,
            end_port: 65535,
        }
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        Self::prefix(addr, if addr.is_ipv4() { 32 } else { 128 })
    }

    /// Everything of one family (`0.0.0.0/0` or `::/0`).
    pub fn any(v6: bool) -> Self {
        if v6 {
            Self::prefix(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            Self::prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    }

    /// Parses `10.1.0.0/24`, `10.1.0.5`, `::/0`, optionally followed by
    /// `[proto/port]` as strongSwan writes it (`10.0.0.0/8[udp/5000]`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (net, extra) = match s.split_once('[') {
            Some((n, rest)) => {
                let inner = rest
                    .strip_suffix(']')
                    .ok_or_else(|| format!("`{s}`: missing `]`"))?;
                (n, Some(inner))
            }
            None => (s, None),
        };
        let mut sel = match net.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a
                    .parse()
                    .map_err(|_| format!("`{s}`: `{a}` is not an IP address"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let len: u8 = l
                    .parse()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?;
                Selector::prefix(addr, len)
            }
            None => Selector::host(
                net.parse()
                    .map_err(|_| format!("`{s}`: `{net}` is not an IP address or prefix"))?,
            ),
        };
        if let Some(extra) = extra {
            let (proto, port) = extra.split_once('/').unwrap_or((extra, ""));
            sel.protocol = match proto {
                "" | "any" => 0,
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                "icmp6" | "ipv6-icmp" => 58,
                n => n.parse().map_err(|_| {
                    format!("`{s}`: unknown protocol `{n}` (tcp, udp, icmp, or a number)")
                })?,
            };
            if !port.is_empty() && port != "%any" {
                let (a, b) = port.split_once('-').unwrap_or((port, port));
                let a: u16 = a.parse().map_err(|_| format!("`{s}`: bad port `{a}`"))?;
                let b: u16 = b.parse().map_err(|_| format!("`{s}`: bad port `{b}`"))?;
                if a > b {
                    return Err(format!("`{s}`: port range is reversed"));
                }
                sel.start_port = a;
                sel.end_port = b;
            }
        }
        Ok(sel)
    }

    pub fn is_ipv6(&self) -> bool {
        self.start.is_ipv6()
    }

    /// The intersection of two selectors, if not empty (RFC 7296 2.9 narrowing).
    pub fn intersect(&self, other: &Selector) -> Option<Selector> {
        if self.is_ipv6() != other.is_ipv6() {
            return None;
        }
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        if start > end {
            return None;
        }
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        if start_port > end_port {
            return None;
        }
        Some(Selector {
            start,
            end,
            protocol,
            start_port,
            end_port,
        })
    }

    /// The shortest prefix covering the address range, for the dataplane's
    /// prefix-based policy (it does not match on ports or protocol).
    pub fn covering_prefix(&self) -> (IpAddr, u8) {
        match (self.start, self.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                let diff = u32::from(s) ^ u32::from(e);
                let len = diff.leading_zeros() as u8;
                (IpAddr::V4(s), len)
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => {
                let diff = u128::from(s) ^ u128::from(e);
                let len = diff.leading_zeros() as u8;
                (IpAddr::V6(s), len)
            }
            (s, _) => (s, 0),
        }
    }
}

/// Address pool for virtual IPs handed out in CP replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConf {
    pub name: String,
    /// First address of the range (inclusive).
    pub start: IpAddr,
    /// Number of addresses in the range.
    pub size: u32,
    /// DNS servers announced with the address (INTERNAL_IP4_DNS/IP6_DNS).
    pub dns: Vec<IpAddr>,
}

/// Lifetimes (RFC 7296 2.8: each end enforces its own; rekey before the hard expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Seconds after establishment at which the SA is rekeyed (soft expiry);
    /// 0 disables rekeying.
    pub rekey_s: u64,
    /// Seconds after establishment at which the SA is deleted if the rekey did not
    /// happen (hard expiry); must be greater than `rekey_s`; 0 = never expires.
    pub life_s: u64,
    /// Up to this many seconds are subtracted at random from `rekey_s`, so both ends
    /// do not rekey at the same moment.
    pub jitter_s: u64,
}

/// Retransmission of requests (RFC 7296 2.1/2.4): timeout doubling from `initial_ms`
/// for `tries` transmissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    pub initial_ms: u64,
    pub tries: u32,
    /// Upper bound of one interval.
    pub max_ms: u64,
}

/// Dead peer detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Send an empty INFORMATIONAL after this long without any inbound IKE or ESP
    /// traffic; 0 = off.
    pub interval_s: u64,
    /// Declare the peer dead when a liveness request has had no reply for this long
    /// (bounds the retransmissions of that request).
    pub timeout_s: u64,
}

/// A connection: who we are, whom we talk to, with what.
///
/// The copies of one connection (a client's `instances`: up to 100,000 in one process)
/// differ only in their name, identity and addresses; everything else is one
/// [`ConnPolicy`] they share, reached through `Deref` (`conn.psk`, `conn.dpd`). A write
/// through `DerefMut` copies a shared policy first (`Arc::make_mut`), so the loader
/// and tests set the policy before making copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub name: String,
    /// Our addresses (the first is the initiator's source).
    pub local_addrs: Vec<SocketAddr>,
    pub local_id: Identity,
    policy: Arc<ConnPolicy>,
}

impl Deref for Conn {
    type Target = ConnPolicy;
    fn deref(&self) -> &ConnPolicy {
        &self.policy
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut ConnPolicy {
        Arc::make_mut(&mut self.policy)
    }
}

/// What the copies of a connection share (see [`Conn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnPolicy {
    /// Where the initiator sends IKE_SA_INIT (port 500 unless given).
    pub peer_addrs: Vec<SocketAddr>,
    /// `None` matches any peer identity (`%any`).
    pub remote_id: Option<Identity>,
    /// Pre-shared key, both directions.
    pub psk: Vec<u8>,
    pub ike_proposals: Arc<[IkeProposal]>,
    pub esp_proposals: Arc<[EspProposal]>,
    pub local_ts: Arc<[Selector]>,
    pub remote_ts: Arc<[Selector]>,
    /// Gateway: pools offered to clients that request a virtual IP.
    pub pools: Arc<[PoolConf]>,
    /// Client: ask for a virtual IPv4/IPv6 address (and use it as local TS).
    pub request_vip4: bool,
    pub request_vip6: bool,
    pub ike_lifetime: Lifetimes,
    pub child_lifetime: Lifetimes,
    pub retransmit: Retransmit,
    pub dpd: Dpd,
    /// Delete an established IKE SA that has had no child SA for this long, in
    /// milliseconds; 0 = keep it. RFC 7296 allows childless IKE SAs, but one left by a
    /// peer that vanished without a DELETE (and with DPD off) must not stay forever.
    pub childless_timeout_ms: u64,
    /// Half-open IKE SAs above which the responder demands a COOKIE (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// Use NAT-T (move to port 4500, UDP-encapsulate ESP) even without a NAT.
    pub force_encap: bool,
    /// MOBIKE (RFC 4555) and the address rotation policy.
    pub mobike: Mobike,
}

/// Which address a client's rotation policy changes every `ip_lifetime_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeType {
    /// The next of our own addresses (`local_addrs`), the peer's unchanged.
    #[default]
    OwnOnly,
    /// The next address of the peer's latest list (`peeraddr` and what it announced).
    PeerOnly,
    /// The next combination of both lists.
    Both,
}

/// MOBIKE settings of a connection (YAML keys in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mobike {
    /// Offer and accept MOBIKE (`mobike`).
    pub enabled: bool,
    /// Send NO_NATS_ALLOWED in IKE_AUTH and every update (RFC 4555 3.9)
    /// (`disallownat`).
    pub disallow_nat: bool,
    /// Responder: check return routability with COOKIE2 before moving the SAs to a
    /// new address (RFC 4555 3.7) (`mobikerrcheck`).
    pub rr_check: bool,
    /// Client: change address every this many milliseconds, 0 = never
    /// (`mobikeiplifetime`).
    pub ip_lifetime_ms: u64,
    /// Client: the first rotation of each IKE SA comes at a point spread over its
    /// first lifetime (taken from its SPI) instead of a whole lifetime after it came
    /// up, so that tunnels set up together do not all move at once (`mobikeipspread`).
    pub ip_spread: bool,
    /// Client: what the rotation changes (`mobikechangeaddrtype`).
    pub change_type: ChangeType,
    /// Gateway: how many of its own addresses it announces, 0 = all
    /// (`mobikeaddrpergw`).
    pub addrs_per_gw: u32,
    /// Wait this long after an address event before acting, 0 = at once
    /// (`mobikedebounce`).
    pub debounce_ms: u64,
}

impl Conn {
    /// A connection with the library defaults; the loader and tests fill in the rest.
    pub fn new(name: &str, local_id: Identity, psk: &[u8]) -> Self {
        Conn {
            name: name.to_string(),
            local_addrs: Vec::new(),
            local_id,
            policy: Arc::new(ConnPolicy {
                peer_addrs: Vec::new(),
                remote_id: None,
                psk: psk.to_vec(),
                ike_proposals: IkeProposal::defaults().into(),
                esp_proposals: EspProposal::defaults().into(),
                local_ts: Arc::from([]),
                remote_ts: Arc::from([]),
                pools: Arc::from([]),
                request_vip4: false,
                request_vip6: false,
                ike_lifetime: Lifetimes {
                    rekey_s: 4 * 3600,
                    life_s: 4 * 3600 + 600,
                    jitter_s: 360,
                },
                child_lifetime: Lifetimes {
                    rekey_s: 3600,
                    life_s: 3600 + 360,
                    jitter_s: 120,
                },
                retransmit: Retransmit {
                    initial_ms: 1000,
                    tries: 6,
                    max_ms: 16_000,
                },
                dpd: Dpd {
                    interval_s: 30,
                    timeout_s: 60,
                },
                childless_timeout_ms: 60_000,
                cookie_threshold: 1000,
                force_encap: false,
                mobike: Mobike::default(),
            }),
        }
    }
}
