//! IKEv2 crypto suites: PRFs, prf+, key derivation, key exchange, SK payload protection.
