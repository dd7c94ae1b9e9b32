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

    /// The truncated ICV over data[0] | data[1] | ...
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let k = ring::hmac::Key::new(self.algorithm(), key);
        let mut ctx = ring::hmac::Context::with_key(&k);
        for d in data {
            ctx.update(d);
        }
        let mut t = ctx.sign().as_ref().to_vec();
        t.truncate(self.icv_len());
        t
    }

    /// Checks `icv` in constant time.
    pub fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> bool {
        let want = self.compute(key, data);
        super::ct_eq(&want, icv)
    }
}
