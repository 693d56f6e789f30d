//! The Paillier cryptosystem with g = n + 1 (Paillier 1999; Damgård, Jurik
//! and Nielsen 2010 for the fast encryption form), slot packing, and the
//! zero-knowledge input proofs, as hetally's `paillier` scheme.
//!
//! * [`key`]: the public key, ciphertexts and encryption;
//! * [`packing`]: several counters per plaintext;
//! * [`proofs`]: proofs that a report encrypts a valid measurement;
//! * [`layout`]: the slot width a task needs;
//! * [`scheme`]: the three roles (`hetally_protocol::roles`) for Paillier
//!   tasks: [`PaillierEncrypter`] (client), [`PaillierAggregator`]
//!   (server, feature `aggregator`), [`PaillierDecrypter`] (collector,
//!   feature `gmp`);
//! * [`SecretKey`] (feature `gmp`): the primes, CRT decryption, keygen;
//! * [`threshold`] (feature `gmp`): a key split among N trustees, any T of
//!   whom decrypt (Shoup; Fouque–Poupard–Stern; Damgård–Jurik), with
//!   proofs on every partial decryption.
//!
//! Arithmetic is generic over [`arith::Int`]: pure-Rust `num-bigint` for
//! the client core, GMP through `rug` (feature `gmp`) for the server and
//! the keytool, chosen by measurement (`BENCHMARKS.md`, bench `bigint`).
//! Both compute the same bytes from the same randomness.

#![forbid(unsafe_code)]

pub mod arith;
mod fixed_base;
pub mod key;
#[cfg(feature = "gmp")]
mod keygen;
pub mod layout;
pub mod packing;
pub mod proofs;
pub mod scheme;
#[cfg(feature = "gmp")]
mod secret;
#[cfg(feature = "gmp")]
pub mod threshold;

use hetally_protocol::codec::CodecError;
use thiserror::Error;

pub use arith::Int;
pub use key::{
    Ciphertext, EncryptionMode, PublicKey, DEFAULT_MODULUS_BITS, SHORT_EXPONENT_BITS,
    SUPPORTED_MODULUS_BITS,
};
#[cfg(feature = "gmp")]
pub use keygen::KeygenProgress;
pub use packing::{Packing, PackingError, MAX_SLOT_BITS};
pub use proofs::{InputProofs, ProofError};
#[cfg(feature = "aggregator")]
pub use scheme::PaillierAggregator;
pub use scheme::PaillierEncrypter;
pub use scheme::{check_noise_contribution, encrypt_noise_contribution};
#[cfg(feature = "gmp")]
pub use scheme::{release_ciphertexts, unpack_release, PaillierDecrypter};
#[cfg(feature = "gmp")]
pub use secret::SecretKey;
#[cfg(feature = "gmp")]
pub use threshold::{
    deal, generate_threshold, Combined, KeyShare, PartialDecryption, Rejection, ThresholdError,
    ThresholdParams, ThresholdPublicKey,
};

/// The pure-Rust big-integer backend.
pub type Pure = num_bigint::BigInt;

/// The GMP big-integer backend.
#[cfg(feature = "gmp")]
pub type Gmp = rug::Integer;

/// Errors from Paillier operations and from decoding Paillier material.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaillierError {
    /// The modulus size is not one this build supports.
    #[error("unsupported modulus size {0} bits: use 2048 or 3072")]
    UnsupportedModulusBits(u32),
    /// A plaintext is outside [0, n).
    #[error("plaintext out of range: it must be between 0 and n-1")]
    PlaintextOutOfRange,
    /// A ciphertext failed validation.
    #[error("invalid ciphertext: {0}")]
    InvalidCiphertext(&'static str),
    /// A key failed validation.
    #[error("invalid Paillier key: {0}")]
    InvalidKey(&'static str),
    /// A ciphertext was made under another key (detected when decrypting).
    #[error("ciphertext does not decrypt under this key (wrong key for this file?)")]
    WrongKey,
    /// Malformed encoding.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

#[cfg(all(test, feature = "gmp"))]
mod tests;
