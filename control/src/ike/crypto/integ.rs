//! Integrity algorithms: HMAC-SHA2 truncated to half the output (RFC 4868 2.3).

use super::Integ;

impl Integ {
    fn algorithm(self) -> ring::hmac::Algorithm {
        match self {
            Integ::HmacSha2_256_128 => ring::hmac::HMAC_SHA256,
            Integ::HmacSha2_384_192 => ring::hmac::HMAC_SHA384,
            Integ::HmacSha2_512_256 => ring::hmac::HMAC_SHA512,
        }
    }

    /// The HMAC key, expanded once for an SA's lifetime.
    pub(super) fn expand(self, key: &[u8]) -> ring::hmac::Key {
        ring::hmac::Key::new(self.algorithm(), key)
    }

    /// The full HMAC over data[0] | data[1] | ...; callers keep the first
    /// [`Integ::icv_len`] octets.
    pub(super) fn tag(key: &ring::hmac::Key, data: &[&[u8]]) -> ring::hmac::Tag {
        let mut ctx = ring::hmac::Context::with_key(key);
        for d in data {
            ctx.update(d);
        }
        ctx.sign()
    }

    /// The truncated ICV over data[0] | data[1] | ...
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let t = Self::tag(&self.expand(key), data);
        t.as_ref()[..self.icv_len()].to_vec()
    }

    /// Checks `icv` in constant time.
    pub fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> bool {
        let t = Self::tag(&self.expand(key), data);
        super::ct_eq(&t.as_ref()[..self.icv_len()], icv)
    }
}
