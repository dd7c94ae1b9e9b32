//! The randomness the IKE core draws from: injected, so tests and the sans-IO harness
//! can replay a run exactly from a seed.

/// A source of random bytes (SPIs, nonces, IVs, private keys).
pub trait Random {
    fn fill(&mut self, out: &mut [u8]);
}

/// The operating system's generator, for real use.
pub struct SystemRandom(ring::rand::SystemRandom);

impl SystemRandom {
    pub fn new() -> Self {
        SystemRandom(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Random for SystemRandom {
    fn fill(&mut self, out: &mut [u8]) {
        use ring::rand::SecureRandom;
        // getrandom(2) fails only when the kernel cannot provide entropy at all;
        // carrying on with predictable keys would be worse than stopping.
        self.0
            .fill(out)
            .expect("the operating system's random generator failed");
    }
}

/// A deterministic generator: HMAC-SHA-256 of a counter under a key made from the
/// seed. For tests and the virtual-clock harness only.
pub struct SeededRandom {
    key: ring::hmac::Key,
    counter: u64,
    buf: [u8; 32],
    used: usize,
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed.to_be_bytes()),
            counter: 0,
            buf: [0; 32],
            used: 32,
        }
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == self.buf.len() {
                let tag = ring::hmac::sign(&self.key, &self.counter.to_be_bytes());
                self.buf.copy_from_slice(tag.as_ref());
                self.counter += 1;
                self.used = 0;
            }
            *b = self.buf[self.used];
            self.used += 1;
        }
    }
}
