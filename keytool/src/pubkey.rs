//! `pubkey`: the fingerprint of a collector public key.
//!
//! The fingerprint is the hex SHA-256 of the public key file's encoding; it
//! is what aggregates and task definitions name the key by.

use std::io::Write;

use hetally_schemes::PublicKeyFile;
use serde::Serialize;

use crate::cli::PubkeyArgs;
use crate::error::KeytoolError;
use crate::files::{self, PUBLIC_KEY_ROLE};

/// `pubkey --json` output.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PublicKeyJson {
    /// Scheme name (`paillier`).
    pub scheme: String,
    /// Paillier modulus n in decimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Hex SHA-256 of the public key file.
    pub fingerprint: String,
    /// Paillier modulus size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modulus_bits: Option<u32>,
}

impl PublicKeyJson {
    /// Describes `pk`.
    pub fn new(pk: &PublicKeyFile) -> Self {
        // Schemes other than Paillier carry no single modulus.
        let details = pk.details();
        let (n, modulus_bits) = (details.modulus_decimal, details.modulus_bits);
        PublicKeyJson {
            scheme: pk.scheme().to_string(),
            n,
            fingerprint: hex::encode(pk.fingerprint()),
            modulus_bits,
        }
    }
}

/// Runs `pubkey`.
pub fn run(args: &PubkeyArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    let pk = files::read_public_key(&args.key, PUBLIC_KEY_ROLE)?;
    if args.json {
        serde_json::to_writer(&mut *out, &PublicKeyJson::new(&pk))
            .map_err(|e| KeytoolError::Output(e.into()))?;
        writeln!(out).map_err(KeytoolError::Output)
    } else {
        writeln!(out, "{}", hex::encode(pk.fingerprint())).map_err(KeytoolError::Output)
    }
}
