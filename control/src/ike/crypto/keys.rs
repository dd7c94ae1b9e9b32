//! Key derivation: SKEYSEED and SK_* (RFC 7296 2.14), their rekeyed form (2.18),
//! child SA KEYMAT (2.17) and the PSK AUTH payload (2.15).

use super::sk::SkKeys;
use super::{CryptoError, EspSuite, IkeSuite, Prf};

/// The seven IKE SA keys. SK_d stands alone (an established IKE SA keeps only it,
/// for child SA keys and its rekey); the six others are one allocation, freed by
/// [`IkeKeys::forget_all_but_sk_d`], so that what every IKE SA keeps is small.
pub struct IkeKeys {
    pub sk_d: Vec<u8>,
    /// SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr; empty once forgotten.
    rest: Box<[u8]>,
    /// Lengths of SK_a*, SK_e* and SK_p*.
    a: u8,
    e: u8,
    p: u8,
}

impl core::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IkeKeys(..)")
    }
}

impl Drop for IkeKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.sk_d);
        zeroize::Zeroize::zeroize(&mut *self.rest);
    }
}

impl IkeKeys {
    /// Key `i` (0: SK_ai ... 5: SK_pr) of `rest`; empty once forgotten.
    fn part(&self, i: usize) -> &[u8] {
        let (a, e, p) = (self.a as usize, self.e as usize, self.p as usize);
        let lens = [a, a, e, e, p, p];
        let at: usize = lens[..i].iter().sum();
        self.rest.get(at..at + lens[i]).unwrap_or_default()
    }
    pub fn sk_ai(&self) -> &[u8] {
        self.part(0)
    }
    pub fn sk_ar(&self) -> &[u8] {
        self.part(1)
    }
    pub fn sk_ei(&self) -> &[u8] {
        self.part(2)
    }
    pub fn sk_er(&self) -> &[u8] {
        self.part(3)
    }
    pub fn sk_pi(&self) -> &[u8] {
        self.part(4)
    }
    pub fn sk_pr(&self) -> &[u8] {
        self.part(5)
    }

    /// Zeroizes and frees every key but SK_d: what an established IKE SA keeps once
    /// its SK keys are expanded (they hold their own SK_e and SK_a) and the AUTH
    /// payloads that SK_p signs are exchanged.
    pub fn forget_all_but_sk_d(&mut self) {
        if self.rest.is_empty() {
            return;
        }
        zeroize::Zeroize::zeroize(&mut *self.rest);
        self.rest = Box::default();
        self.sk_d.shrink_to_fit();
    }
}

/// SKEYSEED = prf(Ni | Nr, g^ir). With HMAC PRFs the whole nonces are the key.
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.compute(&key, &[g_ir])
}

impl IkeKeys {
    fn split(
        suite: &IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let p = suite.prf.out_len();
        let a = suite.integ.map_or(0, |i| i.key_len());
        let e = suite.encr.keymat_len();
        let total = p + 2 * a + 2 * e + 2 * p;
        let km = suite.prf.plus(
            skeyseed,
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            total,
        )?;
        let (Ok(a8), Ok(e8), Ok(p8)) = (u8::try_from(a), u8::try_from(e), u8::try_from(p)) else {
            return Err(CryptoError::KeyLength);
        };
        let sk_d = km.get(..p).ok_or(CryptoError::KeyLength)?.to_vec();
        let rest = km.get(p..total).ok_or(CryptoError::KeyLength)?.into();
        Ok(IkeKeys {
            sk_d,
            rest,
            a: a8,
            e: e8,
            p: p8,
        })
    }

    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(
        suite: &IkeSuite,
        g_ir: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let seed = skeyseed(suite.prf, ni, nr, g_ir);
        Self::split(suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// After an IKE SA rekey: SKEYSEED = prf_old(SK_d_old, g^ir (new) | Ni | Nr).
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(
        suite: &IkeSuite,
        old_prf: Prf,
        old_sk_d: &[u8],
        g_ir: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let seed = old_prf.compute(old_sk_d, &[g_ir, ni, nr]);
        Self::split(suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// (outbound, inbound) SK keys for the original initiator.
    pub fn initiator_sk(&self, suite: &IkeSuite) -> Result<(SkKeys, SkKeys), CryptoError> {
        Ok((
            SkKeys::new(suite.encr, suite.integ, self.sk_ei(), self.sk_ai())?,
            SkKeys::new(suite.encr, suite.integ, self.sk_er(), self.sk_ar())?,
        ))
    }

    /// (outbound, inbound) SK keys for the original responder.
    pub fn responder_sk(&self, suite: &IkeSuite) -> Result<(SkKeys, SkKeys), CryptoError> {
        Ok((
            SkKeys::new(suite.encr, suite.integ, self.sk_er(), self.sk_ar())?,
            SkKeys::new(suite.encr, suite.integ, self.sk_ei(), self.sk_ai())?,
        ))
    }
}

/// KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr).
pub fn child_keymat(
    prf: Prf,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<Vec<u8>, CryptoError> {
    match g_ir {
        Some(g) => prf.plus(sk_d, &[g, ni, nr], len),
        None => prf.plus(sk_d, &[ni, nr], len),
    }
}

/// A child SA's keys per direction as the dataplane takes them (`shared::sa::EspKey`).
pub struct ChildKeys {
    pub i_to_r: Vec<u8>,
    pub r_to_i: Vec<u8>,
}

impl core::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChildKeys(..)")
    }
}

impl ChildKeys {
    /// The initiator-to-responder keys come first (RFC 7296 2.17). Per direction the
    /// AEAD transforms take their salt with the key (RFC 4106 8.1, RFC 7634 2) and have
    /// no integrity key; CBC takes the encryption key, then the integrity key.
    pub fn derive(
        suite: &EspSuite,
        prf: Prf,
        sk_d: &[u8],
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, CryptoError> {
        let n = suite.keymat_len();
        let mut km = child_keymat(prf, sk_d, g_ir, ni, nr, 2 * n)?;
        let r_to_i = km.split_off(n);
        Ok(ChildKeys { i_to_r: km, r_to_i })
    }
}

/// The AUTH payload data for a pre-shared key (RFC 7296 2.15):
/// prf(prf(PSK, "Key Pad for IKEv2"), <message> | <peer's nonce> | prf(SK_p, <ID body>)).
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    signed_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.compute(sk_p, &[id_body]);
    let key = prf.compute(psk, &[b"Key Pad for IKEv2"]);
    prf.compute(&key, &[signed_message, peer_nonce, &maced_id])
}
