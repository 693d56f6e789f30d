//! The boundary between hetally's services and its homomorphic schemes.
//!
//! The server and client never do cryptographic arithmetic: they hold an
//! [`AdditiveBackend`] for a task and move bytes through it. A backend
//! encrypts a measurement into a report payload (client), checks an
//! untrusted payload and says what to store (server, at upload), sums stored
//! payloads in parallel into a [`PartialSum`] (server, at release or in
//! aggregation jobs), merges partial sums, and adds encrypted DP noise to
//! produce the released ciphertexts. One generic test suite exercises every
//! backend through this trait.

mod paillier;
mod tfhe;

use std::fmt;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use thiserror::Error;

use crate::aggregate::Encoding;
use crate::codec::{CodecError, Reader, Writer};
use crate::dp::DpMechanism;
use crate::keyfile::{KeyFileError, PublicKeyFile, Scheme};
use crate::measurement::{Measurement, MeasurementError};
use crate::proofs::ProofError;
use crate::report::ReportId;
use crate::task::TaskId;

pub use self::paillier::PaillierBackend;
pub use self::tfhe::{
    crs_statement, decode_released, generate_crs, max_feasible_batch, CrsStatement, TfheBackend,
};

/// Largest public key embedded in a task definition.
const MAX_PUBLIC_KEY_BYTES: usize = 32 << 20;

/// Errors from backends.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The measurement given to encrypt is not valid for the task.
    #[error(transparent)]
    Measurement(#[from] MeasurementError),
    /// An uploaded payload is malformed.
    #[error("malformed payload: {0}")]
    Malformed(#[from] CodecError),
    /// An uploaded payload has the wrong number of ciphertexts.
    #[error("wrong ciphertext count: the task's layout needs {expected}, the report has {got}")]
    WrongCiphertextCount {
        /// Ciphertexts the layout needs.
        expected: usize,
        /// Ciphertexts in the report.
        got: usize,
    },
    /// A ciphertext failed its range or validity check.
    #[error("ciphertext {index} is invalid: {reason}")]
    InvalidCiphertext {
        /// Position in the payload.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The report's input proof does not verify (or is malformed beyond
    /// its framing).
    #[error(transparent)]
    InvalidProof(ProofError),
    /// A TFHE list's zk-pok proof does not verify.
    #[error("the input proof of list {list} does not verify: a value is out of range, or the proof is for another list, report, task, key or CRS")]
    InvalidTfheProof {
        /// Position of the list in the payload.
        list: usize,
    },
    /// The task's backend configuration is not usable.
    #[error("invalid backend configuration: {0}")]
    Config(String),
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// Internal inconsistency in stored data (a stored payload or partial
    /// sum that does not match the task's layout).
    #[error("stored data does not match the task's layout: {0}")]
    Corrupt(String),
}

impl From<ProofError> for BackendError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Malformed(e) => BackendError::Malformed(e),
            ProofError::WrongBitCount { expected, got, .. } => {
                BackendError::WrongCiphertextCount { expected, got }
            }
            ProofError::Measurement(e) => BackendError::Measurement(e),
            ProofError::TooLarge { .. } => BackendError::Config(e.to_string()),
            e => BackendError::InvalidProof(e),
        }
    }
}

/// What an upload is bound to: proofs include it in their transcripts.
#[derive(Debug, Clone, Copy)]
pub struct ReportContext<'a> {
    /// The task.
    pub task_id: &'a TaskId,
    /// The report's id.
    pub report_id: &'a ReportId,
    /// The report's (rounded) time.
    pub time: u64,
}

/// An encrypted sum of some reports, in the backend's encoding; it can be
/// stored, merged with other partial sums, and released.
#[derive(Clone, PartialEq, Eq)]
pub struct PartialSum {
    /// How many reports it sums.
    pub report_count: u64,
    /// Backend-specific encoding of the encrypted sum.
    pub data: Vec<u8>,
}

impl fmt::Debug for PartialSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialSum")
            .field("report_count", &self.report_count)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// A homomorphic scheme bound to one task's key and layout; see the module
/// docs.
pub trait AdditiveBackend: Send + Sync + fmt::Debug {
    /// The scheme.
    fn scheme(&self) -> Scheme;

    /// The task's measurement type.
    fn measurement(&self) -> Measurement;

    /// How values are laid out in released ciphertexts.
    fn encoding(&self) -> Encoding;

    /// Fingerprint of the collector public key.
    fn key_fingerprint(&self) -> [u8; 32];

    /// Largest report payload this task accepts, in bytes.
    fn max_payload_len(&self) -> usize;

    /// Encrypts a measurement into a report payload (client side). Checks
    /// the values against the measurement type first.
    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, BackendError>;

    /// Checks an untrusted payload (structure, counts, ciphertext ranges,
    /// proofs) and returns the bytes to store for aggregation.
    fn check_payload(
        &self,
        payload: &[u8],
        ctx: &ReportContext<'_>,
    ) -> Result<Vec<u8>, BackendError>;

    /// Checks many untrusted payloads at once; one result per input, in
    /// order, each as [`AdditiveBackend::check_payload`] would give it.
    /// Backends with batch verification override it.
    fn check_payloads(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<u8>, BackendError>> {
        reports
            .iter()
            .map(|(payload, ctx)| self.check_payload(payload, ctx))
            .collect()
    }

    /// True if uploads must carry input proofs (see [`crate::proofs`]).
    fn input_proofs(&self) -> bool {
        false
    }

    /// The sum of no reports.
    fn empty_sum(&self) -> PartialSum;

    /// Sums stored payloads (as returned by `check_payload`) in parallel.
    fn sum(&self, stored: &[Vec<u8>]) -> Result<PartialSum, BackendError>;

    /// Merges two partial sums.
    fn merge(&self, a: &PartialSum, b: &PartialSum) -> Result<PartialSum, BackendError>;

    /// Adds one encrypted noise value per measurement value to `sum` and
    /// returns the released ciphertexts. `noise` has one entry per value
    /// (zeros when the task has no DP).
    fn release(
        &self,
        sum: &PartialSum,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, BackendError>;
}

/// A task's scheme, collector key and layout, as stored in its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendConfig {
    /// Paillier with values packed in `slot_bits`-bit slots.
    Paillier {
        /// The collector's key.
        public_key: crate::paillier::PublicKey,
        /// Slot width.
        slot_bits: u32,
    },
    /// TFHE (LWE) compact lists with values scaled by `delta`.
    Tfhe {
        /// The collector's key.
        public_key: crate::lwe::PublicKey,
        /// Plaintext scale, derived from the task (see [`TfheBackend`]).
        delta: crate::lwe::Delta,
        /// SHA-256 of the task's CRS when reports carry input proofs.
        crs_hash: Option<[u8; 32]>,
    },
}

impl BackendConfig {
    /// The configuration a task with this key, measurement, DP mechanism
    /// and largest batch needs: the layout is derived, never chosen by hand.
    pub fn for_key(
        key: &PublicKeyFile,
        measurement: &Measurement,
        dp: &DpMechanism,
        max_batch_size: u64,
    ) -> Result<Self, BackendError> {
        match key {
            PublicKeyFile::Paillier(pk) => Ok(BackendConfig::Paillier {
                public_key: pk.clone(),
                slot_bits: paillier::slot_bits(pk, measurement, dp, max_batch_size)?,
            }),
            PublicKeyFile::Tfhe(pk) => Ok(BackendConfig::Tfhe {
                public_key: pk.clone(),
                delta: tfhe::delta_for(pk, measurement, dp, max_batch_size)?,
                crs_hash: None,
            }),
        }
    }

    /// The largest batch a task with this key, measurement and DP mechanism
    /// may declare when it does not choose one: `None` when the scheme has
    /// no limit of its own (Paillier; the server applies its default).
    pub fn default_max_batch_size(
        key: &PublicKeyFile,
        measurement: &Measurement,
        dp: &DpMechanism,
    ) -> Result<Option<u64>, BackendError> {
        match key {
            PublicKeyFile::Paillier(_) => Ok(None),
            PublicKeyFile::Tfhe(pk) => max_feasible_batch(pk.params(), measurement, dp).map(Some),
        }
    }

    /// For a TFHE configuration: makes the CRS that input proofs of
    /// `measurement` need and records its hash; returns the CRS, which is
    /// stored and served with the task. `None` for schemes without a CRS.
    pub fn attach_new_crs(
        &mut self,
        measurement: &Measurement,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<crate::lwe::Crs>, BackendError> {
        match self {
            BackendConfig::Paillier { .. } => Ok(None),
            BackendConfig::Tfhe {
                public_key,
                delta,
                crs_hash,
            } => {
                let crs = generate_crs(public_key, measurement, *delta, rng)?;
                *crs_hash = Some(crs.hash());
                Ok(Some(crs))
            }
        }
    }

    /// True if building this task's backend needs the task's CRS.
    pub fn needs_crs(&self) -> bool {
        matches!(
            self,
            BackendConfig::Tfhe {
                crs_hash: Some(_),
                ..
            }
        )
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            BackendConfig::Paillier { .. } => Scheme::Paillier,
            BackendConfig::Tfhe { .. } => Scheme::Tfhe,
        }
    }

    /// The collector's public key.
    pub fn public_key(&self) -> PublicKeyFile {
        match self {
            BackendConfig::Paillier { public_key, .. } => {
                PublicKeyFile::Paillier(public_key.clone())
            }
            BackendConfig::Tfhe { public_key, .. } => PublicKeyFile::Tfhe(public_key.clone()),
        }
    }

    /// Checks the layout is the one [`BackendConfig::for_key`] derives.
    pub fn check(
        &self,
        measurement: &Measurement,
        dp: &DpMechanism,
        max_batch_size: u64,
    ) -> Result<(), BackendError> {
        let mut expected =
            BackendConfig::for_key(&self.public_key(), measurement, dp, max_batch_size)?;
        if let (
            BackendConfig::Tfhe { crs_hash, .. },
            BackendConfig::Tfhe {
                crs_hash: chosen, ..
            },
        ) = (&mut expected, self)
        {
            // The CRS is chosen at creation, not derived.
            *crs_hash = *chosen;
        }
        if &expected != self {
            return Err(BackendError::Config(
                "the ciphertext layout does not match the measurement, DP mechanism and max batch size".into(),
            ));
        }
        Ok(())
    }

    /// Checks that reports of `measurement` can carry input proofs under
    /// this configuration (the proof-carrying payload fits the report size
    /// limit).
    pub fn check_input_proofs(&self, measurement: &Measurement) -> Result<(), BackendError> {
        match self {
            BackendConfig::Paillier { public_key, .. } => {
                crate::proofs::InputProofs::new(public_key.clone(), *measurement)
                    .map(|_| ())
                    .map_err(|e| BackendError::Config(e.to_string()))
            }
            BackendConfig::Tfhe { crs_hash, .. } => match crs_hash {
                Some(_) => Ok(()),
                None => Err(BackendError::Config(
                    "a TFHE task with input proofs needs a CRS".into(),
                )),
            },
        }
    }

    /// Builds a backend that neither makes nor checks input proofs: for
    /// tools and tests. A task's backend comes from
    /// [`crate::TaskDefinition::build_backend`], which honours the task's
    /// `input_proofs`.
    pub fn backend(
        &self,
        measurement: Measurement,
    ) -> Result<Arc<dyn AdditiveBackend>, BackendError> {
        self.backend_with_proofs(measurement, false)
    }

    /// Builds the task's backend; with `input_proofs`, clients prove and
    /// the server verifies that every report is a valid measurement.
    pub fn backend_with_proofs(
        &self,
        measurement: Measurement,
        input_proofs: bool,
    ) -> Result<Arc<dyn AdditiveBackend>, BackendError> {
        self.backend_with_crs(measurement, input_proofs, None)
    }

    /// [`BackendConfig::backend_with_proofs`] for tasks whose proofs need a
    /// CRS (TFHE): `crs` must be the CRS whose hash the configuration
    /// records. Ignored by other schemes.
    pub fn backend_with_crs(
        &self,
        measurement: Measurement,
        input_proofs: bool,
        crs: Option<Arc<crate::lwe::Crs>>,
    ) -> Result<Arc<dyn AdditiveBackend>, BackendError> {
        match self {
            BackendConfig::Tfhe {
                public_key,
                delta,
                crs_hash,
            } => {
                let crs = match (input_proofs, crs_hash) {
                    (false, _) => None,
                    (true, None) => {
                        return Err(BackendError::Config(
                            "a TFHE task with input proofs needs a CRS".into(),
                        ))
                    }
                    (true, Some(hash)) => {
                        let crs = crs.ok_or_else(|| {
                            BackendError::Config(
                                "this TFHE task's input proofs need its CRS (GET /tasks/{id}/crs)"
                                    .into(),
                            )
                        })?;
                        if crs.hash() != *hash {
                            return Err(BackendError::Config(
                                "the CRS does not match the hash in the task definition".into(),
                            ));
                        }
                        Some(crs)
                    }
                };
                Ok(Arc::new(TfheBackend::new(
                    public_key.clone(),
                    measurement,
                    *delta,
                    crs,
                )?))
            }
            BackendConfig::Paillier {
                public_key,
                slot_bits,
            } => Ok(Arc::new(PaillierBackend::new(
                public_key.clone(),
                measurement,
                *slot_bits,
                input_proofs,
            )?)),
        }
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.scheme().to_byte());
        w.var_bytes(&self.public_key().to_bytes());
        match self {
            BackendConfig::Paillier { slot_bits, .. } => {
                w.u32(*slot_bits);
            }
            BackendConfig::Tfhe {
                delta, crs_hash, ..
            } => {
                w.u8(delta.log2() as u8);
                match crs_hash {
                    None => {
                        w.u8(0);
                    }
                    Some(h) => {
                        w.u8(1).bytes(h);
                    }
                }
            }
        }
    }

    /// Decodes the canonical encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, BackendError> {
        let scheme = Scheme::from_byte(r.u8("scheme")?)?;
        let key = PublicKeyFile::from_bytes(r.var_bytes(MAX_PUBLIC_KEY_BYTES, "public key")?)?;
        if key.scheme() != scheme {
            return Err(BackendError::Config(format!(
                "the task says {scheme} but its key is a {} key",
                key.scheme()
            )));
        }
        match key {
            PublicKeyFile::Paillier(public_key) => Ok(BackendConfig::Paillier {
                public_key,
                slot_bits: r.u32("slot width")?,
            }),
            PublicKeyFile::Tfhe(public_key) => {
                let delta = crate::lwe::Delta::new(u32::from(r.u8("Delta")?))
                    .map_err(|e| BackendError::Config(e.to_string()))?;
                let crs_hash = match r.u8("CRS flag")? {
                    0 => None,
                    1 => Some(r.array("CRS hash")?),
                    f => return Err(CodecError::invalid("CRS flag", format!("{f}")).into()),
                };
                Ok(BackendConfig::Tfhe {
                    public_key,
                    delta,
                    crs_hash,
                })
            }
        }
    }
}
