//! The PRFs (HMAC-SHA2, RFC 4868 2.1.2) and prf+ (RFC 7296 2.13).

use super::{CryptoError, Prf};

impl Prf {
    fn algorithm(self) -> ring::hmac::Algorithm {
        match self {
            Prf::HmacSha2_256 => ring::hmac::HMAC_SHA256,
            Prf::HmacSha2_384 => ring::hmac::HMAC_SHA384,
            Prf::HmacSha2_512 => ring::hmac::HMAC_SHA512,
        }
    }

    /// prf(key, data[0] | data[1] | ...).
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let k = ring::hmac::Key::new(self.algorithm(), key);
        let mut ctx = ring::hmac::Context::with_key(&k);
        for d in data {
            ctx.update(d);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// prf+(K, S) = T1 | T2 | ... truncated to `len`, where T1 = prf(K, S | 0x01) and
    /// Tn = prf(K, Tn-1 | S | n). The counter is one octet, so at most 255 blocks.
    pub fn plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Vec<u8>, CryptoError> {
        let blocks = len.div_ceil(self.out_len());
        if blocks > 255 {
            return Err(CryptoError::PrfPlusTooLong);
        }
        let k = ring::hmac::Key::new(self.algorithm(), key);
        let mut out = Vec::with_capacity(blocks * self.out_len());
        let mut prev: Vec<u8> = Vec::new();
        for n in 1..=blocks as u8 {
            let mut ctx = ring::hmac::Context::with_key(&k);
            ctx.update(&prev);
            for s in seed {
                ctx.update(s);
            }
            ctx.update(&[n]);
            prev = ctx.sign().as_ref().to_vec();
            out.extend_from_slice(&prev);
        }
        out.truncate(len);
        Ok(out)
    }
}
