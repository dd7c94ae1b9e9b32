//! (filled in by the crypto suite work)
