//! HPKE key pairs for DAP: the aggregators' per-task configurations and the
//! collector's credential.
//!
//! The collector credential is the JSON document `janus_collector` reads
//! (`PrivateCollectorCredential`): HPKE config id, KEM/KDF/AEAD names, the
//! public and private keys in unpadded base64url, and the collector's bearer
//! token. It is a secret and is written with mode 0600.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use janus_core::hpke::{HpkeKeypair, HpkePrivateKey};
use janus_messages::{HpkeAeadId, HpkeConfig, HpkeConfigId, HpkeKdfId, HpkeKemId, HpkePublicKey};
use prio::codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors of this module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HpkeKeyError {
    /// Key generation failed.
    #[error("HPKE key generation failed: {0}")]
    Generate(String),
    /// A credential or configuration did not parse.
    #[error("invalid DAP HPKE material: {0}")]
    Invalid(String),
}

/// A fresh X25519-HKDF-SHA256 / HKDF-SHA256 / AES-128-GCM key pair with
/// configuration id `id`.
pub fn generate_keypair(id: u8) -> Result<HpkeKeypair, HpkeKeyError> {
    HpkeKeypair::generate(
        HpkeConfigId::from(id),
        HpkeKemId::X25519HkdfSha256,
        HpkeKdfId::HkdfSha256,
        HpkeAeadId::Aes128Gcm,
    )
    .map_err(|e| HpkeKeyError::Generate(e.to_string()))
}

/// The collector's credential, in the JSON format of `janus_collector`'s
/// `PrivateCollectorCredential`.
#[derive(Clone, Serialize, Deserialize)]
pub struct CollectorCredential {
    /// HPKE configuration id.
    pub id: u8,
    /// KEM name (`X25519HkdfSha256`).
    pub kem: String,
    /// KDF name (`Sha256`).
    pub kdf: String,
    /// AEAD name (`AesGcm128`).
    pub aead: String,
    /// Public key, unpadded base64url.
    pub public_key: String,
    /// Private key, unpadded base64url.
    pub private_key: String,
    /// Bearer token the collector presents to the leader.
    pub token: String,
}

impl fmt::Debug for CollectorCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorCredential")
            .field("id", &self.id)
            .field("kem", &self.kem)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl CollectorCredential {
    /// A new credential: a fresh key pair and the given bearer token.
    pub fn generate(id: u8, token: String) -> Result<Self, HpkeKeyError> {
        let keypair = generate_keypair(id)?;
        Ok(CollectorCredential {
            id,
            kem: "X25519HkdfSha256".into(),
            kdf: "Sha256".into(),
            aead: "AesGcm128".into(),
            public_key: URL_SAFE_NO_PAD.encode(keypair.config().public_key().as_ref()),
            private_key: URL_SAFE_NO_PAD.encode(keypair.private_key().as_ref()),
            token,
        })
    }

    /// Parses a credential file's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, HpkeKeyError> {
        let cred: CollectorCredential = serde_json::from_slice(bytes)
            .map_err(|e| HpkeKeyError::Invalid(format!("collector credential: {e}")))?;
        cred.keypair()?;
        Ok(cred)
    }

    /// The credential as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The HPKE configuration (public part) the tasks are provisioned with.
    pub fn hpke_config(&self) -> Result<HpkeConfig, HpkeKeyError> {
        Ok(self.keypair()?.config().clone())
    }

    /// The key pair.
    pub fn keypair(&self) -> Result<HpkeKeypair, HpkeKeyError> {
        let kem = match self.kem.as_str() {
            "X25519HkdfSha256" => HpkeKemId::X25519HkdfSha256,
            "P256HkdfSha256" => HpkeKemId::P256HkdfSha256,
            other => return Err(HpkeKeyError::Invalid(format!("unsupported KEM {other:?}"))),
        };
        let kdf = match self.kdf.as_str() {
            "Sha256" => HpkeKdfId::HkdfSha256,
            "Sha384" => HpkeKdfId::HkdfSha384,
            "Sha512" => HpkeKdfId::HkdfSha512,
            other => return Err(HpkeKeyError::Invalid(format!("unsupported KDF {other:?}"))),
        };
        let aead = match self.aead.as_str() {
            "AesGcm128" => HpkeAeadId::Aes128Gcm,
            "AesGcm256" => HpkeAeadId::Aes256Gcm,
            "ChaCha20Poly1305" => HpkeAeadId::ChaCha20Poly1305,
            other => return Err(HpkeKeyError::Invalid(format!("unsupported AEAD {other:?}"))),
        };
        let decode = |what: &str, s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|e| HpkeKeyError::Invalid(format!("{what}: {e}")))
        };
        Ok(HpkeKeypair::new(
            HpkeConfig::new(
                HpkeConfigId::from(self.id),
                kem,
                kdf,
                aead,
                HpkePublicKey::from(decode("public_key", &self.public_key)?),
            ),
            HpkePrivateKey::new(decode("private_key", &self.private_key)?),
        ))
    }
}

/// An HPKE configuration as unpadded base64url of its DAP encoding (how
/// task definitions carry the collector's configuration).
pub fn encode_config(config: &HpkeConfig) -> String {
    // Encoding a well-formed HpkeConfig into a Vec cannot fail.
    URL_SAFE_NO_PAD.encode(config.get_encoded().unwrap_or_default())
}

/// Parses [`encode_config`]'s form; rejects trailing bytes and
/// configurations this build cannot encrypt to.
pub fn decode_config(text: &str) -> Result<HpkeConfig, HpkeKeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|e| HpkeKeyError::Invalid(format!("HPKE config is not base64url: {e}")))?;
    let config = HpkeConfig::get_decoded(&bytes)
        .map_err(|e| HpkeKeyError::Invalid(format!("HPKE config: {e}")))?;
    janus_core::hpke::is_hpke_config_supported(&config)
        .map_err(|e| HpkeKeyError::Invalid(format!("HPKE config: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use janus_core::hpke::{open, seal, HpkeApplicationInfo, Label};
    use janus_messages::Role;

    #[test]
    fn credential_round_trips_and_decrypts() {
        let cred = CollectorCredential::generate(7, "tok".into()).unwrap();
        let parsed = CollectorCredential::from_json(cred.to_json().as_bytes()).unwrap();
        let config = decode_config(&encode_config(&parsed.hpke_config().unwrap())).unwrap();
        let info =
            HpkeApplicationInfo::new(&Label::AggregateShare, &Role::Helper, &Role::Collector);
        let ct = seal(&config, &info, b"share", b"aad").unwrap();
        assert_eq!(
            open(&parsed.keypair().unwrap(), &info, &ct, b"aad").unwrap(),
            b"share"
        );
        assert!(open(&parsed.keypair().unwrap(), &info, &ct, b"other").is_err());
        assert!(!format!("{cred:?}").contains(&cred.private_key));
    }

    #[test]
    fn config_decoding_rejects_trailing_bytes() {
        let config = generate_keypair(1).unwrap().config().clone();
        let mut bytes = config.get_encoded().unwrap();
        bytes.push(0);
        assert!(decode_config(&URL_SAFE_NO_PAD.encode(bytes)).is_err());
    }
}
