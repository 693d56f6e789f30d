//! The one place that knows every homomorphic scheme hetally speaks.
//!
//! Every other crate reaches a scheme through the role traits of
//! [`hetally_protocol::roles`]; this crate turns a task definition, a key
//! file or an aggregate file into the right scheme's role object:
//!
//! * [`encrypter`]: the client's side of a task (feature-free: Paillier is
//!   always there, in pure Rust unless `gmp` is on);
//! * [`aggregator`] (feature `aggregator`): the server's side;
//! * [`SecretKeyFile`] (feature `collector`): the collector's secret key,
//!   which decrypts aggregates;
//! * [`new_task_layout`], [`check_definition`], [`check_aggregate`]: the
//!   layout a new task gets, and the checks every definition and aggregate
//!   goes through before it is used.
//!
//! Paillier (`hetally-paillier`) is always built; TFHE (`hetally-lwe`) only
//! with the `tfhe` feature, so an app that only sends Paillier reports
//! builds neither TFHE-rs nor a C toolchain's GMP. A task of a scheme this
//! build lacks gets a clear [`SchemeError::Config`].
//!
//! Adding a scheme means: a crate implementing the three roles, a
//! [`hetally_protocol::Scheme`] byte and [`hetally_protocol::Layout`]
//! variant, and one arm in each function here.

#![forbid(unsafe_code)]

#[cfg(feature = "collector")]
use std::fmt;
use std::sync::Arc;

use hetally_dp::{DpMechanism, Relation, TrusteeNoise};
use hetally_protocol::aggregate::{AggregateError, AggregateFile};
use hetally_protocol::codec::{CodecError, FileKind};
use hetally_protocol::keyfile;
use hetally_protocol::roles::{Encrypter, SchemeError};
use hetally_protocol::{Layout, Measurement, Scheme, TaskDefinition};
use rand_core::CryptoRngCore;
use thiserror::Error;

#[cfg(feature = "tfhe")]
pub use hetally_lwe as lwe;
pub use hetally_paillier as paillier;

/// The big integers the Paillier roles of this build compute with: GMP
/// with the `gmp` feature, pure-Rust `num-bigint` without.
#[cfg(feature = "gmp")]
pub type PaillierInt = hetally_paillier::Gmp;

/// The big integers the Paillier roles of this build compute with: GMP
/// with the `gmp` feature, pure-Rust `num-bigint` without.
#[cfg(not(feature = "gmp"))]
pub type PaillierInt = hetally_paillier::Pure;

fn not_built(scheme: Scheme) -> SchemeError {
    SchemeError::Config(format!(
        "this build of hetally does not support the {scheme} scheme (it was built without the \
         `{scheme}` feature)"
    ))
}

/// The layout (and, for a TFHE task with input proofs, the CRS) a new task
/// with this public key file gets: derived from the task, never chosen.
// Every argument is one the layout depends on; `define_task` is the
// grouped entry point.
#[allow(clippy::too_many_arguments)]
pub fn new_task_layout(
    public_key_file: &[u8],
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
    trustee_noise: Option<TrusteeNoise>,
    max_batch_size: u64,
    input_proofs: bool,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Layout, Option<Vec<u8>>), SchemeError> {
    let _ = &rng;
    match key_scheme(public_key_file)? {
        Scheme::Paillier => Ok((
            hetally_paillier::scheme::layout_for(
                public_key_file,
                measurement,
                dp,
                relation,
                trustee_noise,
                max_batch_size,
            )?,
            None,
        )),
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => {
            if trustee_noise.is_some() {
                return Err(SchemeError::Config(
                    "trustee noise needs a Paillier threshold key: the trustees of a TFHE \
                     threshold key decrypt, but the server draws a TFHE task's noise"
                        .into(),
                ));
            }
            let (layout, crs) = hetally_lwe::scheme::layout_for(
                public_key_file,
                measurement,
                dp,
                relation,
                max_batch_size,
                input_proofs,
                rng,
            )?;
            Ok((layout, crs.map(|c| c.to_bytes().to_vec())))
        }
        #[allow(unreachable_patterns)]
        other => {
            let _ = (input_proofs, trustee_noise);
            Err(not_built(other))
        }
    }
}

/// What a new task is made of, beside the collector's public key: the
/// parameters an operator chooses (the layout is derived from them).
#[derive(Debug, Clone)]
pub struct TaskParams {
    /// What each report measures.
    pub measurement: Measurement,
    /// Fewest reports a release may hold.
    pub min_batch_size: u64,
    /// Most reports a release may hold; the scheme's largest feasible
    /// batch (TFHE) or `default_max_batch_size` (Paillier) when `None`.
    pub max_batch_size: Option<u64>,
    /// Seconds; report times are rounded down to a multiple of it.
    pub time_precision: u64,
    /// The DP mechanism.
    pub dp: DpMechanism,
    /// The total privacy budget (with a mechanism).
    pub budget: Option<hetally_protocol::dp::Rational>,
    /// Whether reports must carry input proofs.
    pub input_proofs: bool,
    /// The neighbouring relation of the DP guarantee (every new task
    /// declares one; `None` only reproduces a task made before relations
    /// were declared).
    pub relation: Option<Relation>,
    /// Noise drawn by the trustees of a threshold key instead of the
    /// server.
    pub trustee_noise: Option<TrusteeNoise>,
}

/// Defines a new task: derives its layout from the key and the parameters
/// (and makes its CRS when a TFHE task has input proofs), then checks the
/// whole definition. Returns the definition and the CRS to serve with it.
/// `default_max_batch_size` applies when neither the parameters nor the
/// scheme bound the batch.
pub fn define_task(
    public_key_file: Vec<u8>,
    params: TaskParams,
    default_max_batch_size: u64,
    rng: &mut dyn CryptoRngCore,
) -> Result<(TaskDefinition, Option<Vec<u8>>), SchemeError> {
    let max_batch_size = match params.max_batch_size {
        Some(max) => max,
        None => self::default_max_batch_size(
            &public_key_file,
            &params.measurement,
            &params.dp,
            params.relation,
        )?
        .unwrap_or(default_max_batch_size),
    };
    let (layout, crs) = new_task_layout(
        &public_key_file,
        &params.measurement,
        &params.dp,
        params.relation,
        params.trustee_noise,
        max_batch_size,
        params.input_proofs,
        rng,
    )?;
    let definition = TaskDefinition {
        measurement: params.measurement,
        min_batch_size: params.min_batch_size,
        max_batch_size,
        time_precision: params.time_precision,
        dp: params.dp,
        budget: params.budget,
        public_key: public_key_file,
        layout,
        input_proofs: params.input_proofs,
        relation: params.relation,
        trustee_noise: params.trustee_noise,
    };
    definition
        .check()
        .map_err(|e| SchemeError::Config(e.to_string()))?;
    check_definition(&definition, crs.as_deref())?;
    Ok((definition, crs))
}

/// The largest batch a new task with this key may declare when it gives
/// none: `None` when the scheme has no limit of its own (Paillier; the
/// server applies its default).
pub fn default_max_batch_size(
    public_key_file: &[u8],
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
) -> Result<Option<u64>, SchemeError> {
    match key_scheme(public_key_file)? {
        Scheme::Paillier => Ok(None),
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => {
            hetally_lwe::scheme::default_max_batch_size(public_key_file, measurement, dp, relation)
                .map(Some)
        }
        #[allow(unreachable_patterns)]
        other => {
            let _ = (measurement, dp, relation);
            Err(not_built(other))
        }
    }
}

fn key_scheme(public_key_file: &[u8]) -> Result<Scheme, SchemeError> {
    keyfile::key_file_scheme(public_key_file, FileKind::PublicKey)
        .map_err(|e| SchemeError::Config(format!("the public key: {e}")))
}

/// Checks a task definition as every client and the server do before using
/// it: the key is valid for its scheme and the layout is the derived one.
/// `crs` is the task's CRS when [`TaskDefinition::needs_crs`].
pub fn check_definition(
    definition: &TaskDefinition,
    crs: Option<&[u8]>,
) -> Result<(), SchemeError> {
    let _ = crs;
    match definition.scheme() {
        Scheme::Paillier => hetally_paillier::scheme::check_definition(definition),
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => hetally_lwe::scheme::check_definition(definition, crs),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// Which big integers a Paillier encrypter computes with. Both give the
/// same bytes from the same randomness; GMP is about twice as fast, pure
/// Rust needs no C toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Arithmetic {
    /// `num-bigint`, pure Rust: the default, and the only choice without
    /// the `gmp` feature.
    #[default]
    Pure,
    /// GMP through `rug`.
    #[cfg(feature = "gmp")]
    Gmp,
}

impl Arithmetic {
    /// The fastest this build has.
    pub fn fastest() -> Self {
        #[cfg(feature = "gmp")]
        return Arithmetic::Gmp;
        #[cfg(not(feature = "gmp"))]
        Arithmetic::Pure
    }
}

/// The client's side of a task: encrypts and proves, with the fastest
/// arithmetic this build has ([`Arithmetic::fastest`]).
pub fn encrypter(
    definition: &TaskDefinition,
    crs: Option<&[u8]>,
) -> Result<Arc<dyn Encrypter>, SchemeError> {
    encrypter_with(definition, crs, Arithmetic::fastest())
}

/// [`encrypter`] with the given arithmetic for Paillier tasks.
pub fn encrypter_with(
    definition: &TaskDefinition,
    crs: Option<&[u8]>,
    arithmetic: Arithmetic,
) -> Result<Arc<dyn Encrypter>, SchemeError> {
    let _ = crs;
    match definition.scheme() {
        Scheme::Paillier => match arithmetic {
            Arithmetic::Pure => Ok(Arc::new(hetally_paillier::PaillierEncrypter::<
                hetally_paillier::Pure,
            >::new(definition)?)),
            #[cfg(feature = "gmp")]
            Arithmetic::Gmp => Ok(Arc::new(hetally_paillier::PaillierEncrypter::<
                hetally_paillier::Gmp,
            >::new(definition)?)),
        },
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => Ok(Arc::new(hetally_lwe::scheme::TfheEncrypter::new(
            definition, crs,
        )?)),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The server's side of a task: checks, sums and releases.
#[cfg(feature = "aggregator")]
pub fn aggregator(
    definition: &TaskDefinition,
    crs: Option<&[u8]>,
) -> Result<Arc<dyn hetally_protocol::DynAggregator>, SchemeError> {
    let _ = crs;
    match definition.scheme() {
        Scheme::Paillier => Ok(Arc::new(hetally_paillier::PaillierAggregator::<
            hetally_paillier::Gmp,
        >::new(definition)?)),
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => Ok(Arc::new(hetally_lwe::scheme::TfheAggregator::new(
            definition, crs,
        )?)),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// Checks an aggregate's layout without a key (what `keytool inspect`
/// trusts before describing a file).
pub fn check_aggregate(file: &AggregateFile) -> Result<(), AggregateError> {
    match file.scheme {
        Scheme::Paillier => Ok(()),
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => hetally_lwe::scheme::check_aggregate(file),
        #[allow(unreachable_patterns)]
        other => Err(AggregateError::Layout(not_built(other).to_string())),
    }
}

/// Why a key file could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file does not decode.
    #[error("malformed key file: {0}")]
    Codec(#[from] CodecError),
    /// The key inside is not valid for its scheme.
    #[error("{0}")]
    Invalid(String),
    /// The key is of a scheme this build lacks.
    #[error("{0}")]
    NotBuilt(String),
    /// The file could not be read.
    #[error(transparent)]
    File(#[from] keyfile::KeyFileError),
}

impl From<hetally_paillier::PaillierError> for KeyError {
    fn from(e: hetally_paillier::PaillierError) -> Self {
        match e {
            hetally_paillier::PaillierError::Codec(c) => KeyError::Codec(c),
            other => KeyError::Invalid(other.to_string()),
        }
    }
}

#[cfg(feature = "tfhe")]
impl From<hetally_lwe::LweError> for KeyError {
    fn from(e: hetally_lwe::LweError) -> Self {
        match e {
            hetally_lwe::LweError::Codec(c) => KeyError::Codec(c),
            other => KeyError::Invalid(other.to_string()),
        }
    }
}

/// A collector public key of any scheme this build supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeyFile {
    /// A Paillier public key.
    Paillier(hetally_paillier::PublicKey<PaillierInt>),
    /// A TFHE (LWE compact) public key.
    #[cfg(feature = "tfhe")]
    Tfhe(hetally_lwe::PublicKey),
}

impl PublicKeyFile {
    /// Decodes and validates a public key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        match keyfile::key_file_scheme(bytes, FileKind::PublicKey)? {
            Scheme::Paillier => Ok(PublicKeyFile::Paillier(
                hetally_paillier::PublicKey::from_bytes(bytes)?,
            )),
            #[cfg(feature = "tfhe")]
            Scheme::Tfhe => Ok(PublicKeyFile::Tfhe(hetally_lwe::PublicKey::from_bytes(
                bytes,
            )?)),
            #[allow(unreachable_patterns)]
            other => Err(KeyError::NotBuilt(not_built(other).to_string())),
        }
    }

    /// Reads and validates a public key file.
    pub fn read(path: &std::path::Path) -> Result<Self, KeyError> {
        Self::from_bytes(&keyfile::read_capped(path)?)
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            PublicKeyFile::Paillier(_) => Scheme::Paillier,
            #[cfg(feature = "tfhe")]
            PublicKeyFile::Tfhe(_) => Scheme::Tfhe,
        }
    }

    /// The file encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKeyFile::Paillier(pk) => pk.to_bytes(),
            #[cfg(feature = "tfhe")]
            PublicKeyFile::Tfhe(pk) => pk.to_bytes(),
        }
    }

    /// SHA-256 of the file encoding.
    pub fn fingerprint(&self) -> [u8; 32] {
        match self {
            PublicKeyFile::Paillier(pk) => pk.fingerprint(),
            #[cfg(feature = "tfhe")]
            PublicKeyFile::Tfhe(pk) => pk.fingerprint(),
        }
    }

    /// What tools show about the key, whatever its scheme.
    pub fn details(&self) -> KeyDetails {
        match self {
            PublicKeyFile::Paillier(pk) => KeyDetails {
                modulus_bits: Some(pk.modulus_bits()),
                modulus_decimal: Some(pk.n().to_string()),
                parameter_set: None,
                lwe_dimension: None,
            },
            #[cfg(feature = "tfhe")]
            PublicKeyFile::Tfhe(pk) => KeyDetails {
                modulus_bits: None,
                modulus_decimal: None,
                parameter_set: Some(pk.params().tfhe_name),
                lwe_dimension: Some(pk.params().lwe_dimension),
            },
        }
    }
}

/// A public key's scheme-specific properties, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyDetails {
    /// Paillier: the modulus size in bits.
    pub modulus_bits: Option<u32>,
    /// Paillier: the modulus n, in decimal.
    pub modulus_decimal: Option<String>,
    /// TFHE: the TFHE-rs parameter set's name.
    pub parameter_set: Option<&'static str>,
    /// TFHE: the LWE dimension.
    pub lwe_dimension: Option<usize>,
}

/// A collector secret key of any scheme this build supports. `Debug`
/// never shows key material.
#[cfg(feature = "collector")]
#[non_exhaustive]
pub enum SecretKeyFile {
    /// A Paillier secret key.
    Paillier(hetally_paillier::PaillierDecrypter),
    /// A TFHE (LWE) secret key with its compact public key.
    #[cfg(feature = "tfhe")]
    Tfhe(hetally_lwe::scheme::TfheDecrypter),
}

#[cfg(feature = "collector")]
impl fmt::Debug for SecretKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretKeyFile::Paillier(d) => d.fmt(f),
            #[cfg(feature = "tfhe")]
            SecretKeyFile::Tfhe(d) => d.fmt(f),
        }
    }
}

#[cfg(feature = "collector")]
impl SecretKeyFile {
    /// Decodes and validates a secret key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        match keyfile::key_file_scheme(bytes, FileKind::SecretKey)? {
            Scheme::Paillier => Ok(SecretKeyFile::Paillier(
                hetally_paillier::PaillierDecrypter::new(hetally_paillier::SecretKey::from_bytes(
                    bytes,
                )?),
            )),
            #[cfg(feature = "tfhe")]
            Scheme::Tfhe => Ok(SecretKeyFile::Tfhe(
                hetally_lwe::scheme::TfheDecrypter::new(hetally_lwe::SecretKey::from_bytes(bytes)?),
            )),
            #[allow(unreachable_patterns)]
            other => Err(KeyError::NotBuilt(not_built(other).to_string())),
        }
    }

    /// Reads and validates a secret key file.
    pub fn read(path: &std::path::Path) -> Result<Self, KeyError> {
        let bytes = keyfile::read_capped(path)?;
        Self::from_bytes(&bytes)
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            SecretKeyFile::Paillier(_) => Scheme::Paillier,
            #[cfg(feature = "tfhe")]
            SecretKeyFile::Tfhe(_) => Scheme::Tfhe,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKeyFile {
        match self {
            SecretKeyFile::Paillier(d) => PublicKeyFile::Paillier(d.key().public_key().clone()),
            #[cfg(feature = "tfhe")]
            SecretKeyFile::Tfhe(d) => PublicKeyFile::Tfhe(d.key().public_key().clone()),
        }
    }

    /// The file encoding. Holds secret material: write it only with
    /// [`keyfile::write_private_file`].
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SecretKeyFile::Paillier(d) => d.key().to_bytes(),
            #[cfg(feature = "tfhe")]
            SecretKeyFile::Tfhe(d) => d.key().to_bytes(),
        }
    }

    /// The collector's role for this key.
    pub fn decrypter(&self) -> &dyn hetally_protocol::Decrypter {
        match self {
            SecretKeyFile::Paillier(d) => d,
            #[cfg(feature = "tfhe")]
            SecretKeyFile::Tfhe(d) => d,
        }
    }

    /// Decrypts an aggregate: checks its layout, then that it was made
    /// under this key, then decrypts.
    pub fn decrypt(&self, file: &AggregateFile) -> Result<Vec<i128>, AggregateError> {
        check_aggregate(file)?;
        self.decrypter().decrypt(file)
    }

    /// [`SecretKeyFile::decrypt`], except that values a sum of valid
    /// reports cannot have (what one client of a task without input proofs
    /// can send) are decrypted and flagged rather than refused:
    /// [`hetally_protocol::Decrypter::decrypt_flagged`].
    pub fn decrypt_flagged(
        &self,
        file: &AggregateFile,
    ) -> Result<hetally_protocol::aggregate::Decryption, AggregateError> {
        check_aggregate(file)?;
        self.decrypter().decrypt_flagged(file)
    }
}
