//! Key exchange: groups 19 and 20 (random ECP, RFC 5903) and 31 (Curve25519,
//! RFC 8031), with the public-value checks of RFC 6989. Private keys come from the
//! injected [`Random`], so a seeded run is reproducible.

use super::random::Random;
use super::{CryptoError, DhGroup};

enum Secret {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

/// Our half of a key exchange: a private key and the public value for the KE payload.
/// Boxed: it waits in an IKE SA (and in a pending CREATE_CHILD_SA) for the peer's
/// half, and an unboxed one would size every such slot for the largest group.
pub struct KeyShare(Box<Share>);

struct Share {
    group: DhGroup,
    secret: Secret,
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
        let (secret, public) = match group {
            DhGroup::Ecp256 => {
                if private.len() != 32 {
                    return Err(CryptoError::KeyLength);
                }
                let s = p256::SecretKey::from_slice(private).map_err(|_| CryptoError::KeyLength)?;
                let p = xy(
                    p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &s.public_key(),
                        false,
                    )
                    .as_bytes(),
                );
                (Secret::P256(s), p)
            }
            DhGroup::Ecp384 => {
                if private.len() != 48 {
                    return Err(CryptoError::KeyLength);
                }
                let s = p384::SecretKey::from_slice(private).map_err(|_| CryptoError::KeyLength)?;
                let p = xy(
                    p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                        &s.public_key(),
                        false,
                    )
                    .as_bytes(),
                );
                (Secret::P384(s), p)
            }
            DhGroup::Curve25519 => {
                let b: [u8; 32] = private.try_into().map_err(|_| CryptoError::KeyLength)?;
                let s = x25519_dalek::StaticSecret::from(b);
                let p = x25519_dalek::PublicKey::from(&s).as_bytes().to_vec();
                (Secret::X25519(s), p)
            }
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
        match &self.0.secret {
            Secret::P256(s) => {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(peer_public);
                let p = p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| CryptoError::KeShareInvalid)?;
                let z = p256::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine());
                Ok(SharedSecret(z.raw_secret_bytes().to_vec()))
            }
            Secret::P384(s) => {
                let mut sec1 = Vec::with_capacity(97);
                sec1.push(4);
                sec1.extend_from_slice(peer_public);
                let p = p384::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| CryptoError::KeShareInvalid)?;
                let z = p384::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine());
                Ok(SharedSecret(z.raw_secret_bytes().to_vec()))
            }
            Secret::X25519(s) => {
                let b: [u8; 32] = peer_public
                    .try_into()
                    .map_err(|_| CryptoError::KeShareLength)?;
                let z = s.diffie_hellman(&x25519_dalek::PublicKey::from(b));
                if !z.was_contributory() {
                    return Err(CryptoError::SharedSecretZero);
                }
                Ok(SharedSecret(z.as_bytes().to_vec()))
            }
        }
    }
}
