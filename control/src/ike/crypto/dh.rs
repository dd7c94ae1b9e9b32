//! Key exchange: groups 19 and 20 (random ECP, RFC 5903) and 31 (Curve25519,
//! RFC 8031), with the public-value checks of RFC 6989. Private keys come from the
//! injected [`Random`], so a seeded run is reproducible.

use aws_lc_rs::agreement;

use super::random::Random;
use super::{CryptoError, DhGroup};

fn algorithm(group: DhGroup) -> &'static agreement::Algorithm {
    match group {
        DhGroup::Ecp256 => &agreement::ECDH_P256,
        DhGroup::Ecp384 => &agreement::ECDH_P384,
        DhGroup::Curve25519 => &agreement::X25519,
    }
}

fn is_ecp(group: DhGroup) -> bool {
    !matches!(group, DhGroup::Curve25519)
}

/// Our half of a key exchange: a private key and the public value for the KE payload.
/// Boxed: it waits in an IKE SA (and in a pending CREATE_CHILD_SA) for the peer's
/// half, and an unboxed one would size every such slot for the largest group.
pub struct KeyShare(Box<Share>);

struct Share {
    group: DhGroup,
    secret: agreement::PrivateKey,
    public: Vec<u8>,
}

/// g^ir: the shared secret (for ECP groups the x-coordinate only, RFC 5903 7).
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

impl core::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyShare")
            .field("group", &self.0.group)
            .finish_non_exhaustive()
    }
}

/// x || y of an uncompressed SEC1 point (which starts with 0x04).
fn xy(sec1: &[u8]) -> Vec<u8> {
    sec1.get(1..).unwrap_or_default().to_vec()
}

impl KeyShare {
    pub fn generate(group: DhGroup, rng: &mut dyn Random) -> KeyShare {
        let len = match group {
            DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
            DhGroup::Ecp384 => 48,
        };
        let mut b = vec![0u8; len];
        // ECP scalars must lie in 1..n; a draw outside is rare (< 2^-32) and redrawn.
        loop {
            rng.fill(&mut b);
            if let Ok(k) = KeyShare::from_private(group, &b) {
                zeroize::Zeroize::zeroize(&mut b);
                return k;
            }
        }
    }

    /// A key share from a known private key (known-answer tests).
    pub fn from_private(group: DhGroup, private: &[u8]) -> Result<KeyShare, CryptoError> {
        let len = match group {
            DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
            DhGroup::Ecp384 => 48,
        };
        if private.len() != len {
            return Err(CryptoError::KeyLength);
        }
        // ECP: a big-endian scalar in 1..n (anything else is refused); Curve25519:
        // any 32 octets, clamped (RFC 7748 5).
        let secret = agreement::PrivateKey::from_private_key(algorithm(group), private)
            .map_err(|_| CryptoError::KeyLength)?;
        let public = secret
            .compute_public_key()
            .map_err(|_| CryptoError::KeyLength)?;
        let public = if is_ecp(group) {
            xy(public.as_ref())
        } else {
            public.as_ref().to_vec()
        };
        Ok(KeyShare(Box::new(Share {
            group,
            secret,
            public,
        })))
    }

    pub fn group(&self) -> DhGroup {
        self.0.group
    }

    /// The KE payload's key exchange data.
    pub fn public(&self) -> &[u8] {
        &self.0.public
    }

    /// g^ir from the peer's public value, after the RFC 6989 checks: the right
    /// length, a point on the curve that is not the identity, and (Curve25519) a
    /// result that is not all zero.
    pub fn agree(&self, peer_public: &[u8]) -> Result<SharedSecret, CryptoError> {
        if peer_public.len() != self.0.group.public_len() {
            return Err(CryptoError::KeShareLength);
        }
        let group = self.0.group;
        let mut sec1 = [0u8; 97];
        let peer = if is_ecp(group) {
            // RFC 5903 7: x | y without the point format octet SEC1 wants.
            sec1[0] = 4;
            let n = peer_public.len() + 1;
            sec1[1..n].copy_from_slice(peer_public);
            &sec1[..n]
        } else {
            peer_public
        };
        let peer = agreement::UnparsedPublicKey::new(algorithm(group), peer);
        // ECP: the point is checked to be on the curve; Curve25519: an all-zero
        // result (a small-order point, RFC 7748 6.1) is refused.
        let refused = if is_ecp(group) {
            CryptoError::KeShareInvalid
        } else {
            CryptoError::SharedSecretZero
        };
        agreement::agree(&self.0.secret, peer, refused, |z| {
            Ok(SharedSecret(z.to_vec()))
        })
    }
}
