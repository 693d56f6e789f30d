//! The three roles of a homomorphic scheme, as traits over the scheme's own
//! typed values (after prio's `Client` / `Aggregator` / `Collector`):
//!
//! * [`Encrypter`]: the client's side. It encrypts a measurement, and proves
//!   it valid where the task asks, into a report payload.
//! * [`Aggregator`]: the server's side. It checks untrusted payloads into
//!   [`Aggregator::Share`]s, sums them into [`Aggregator::Sum`]s, merges
//!   partial sums, and adds encrypted noise to release a sum. Shares and
//!   sums are decoded values: bytes appear only where they are stored
//!   ([`Aggregator::encode_share`], [`Aggregator::encode_sum`] and their
//!   inverses), and merging never re-parses.
//! * [`Decrypter`]: the collector's side. It decrypts a released
//!   [`AggregateFile`] with the secret key.
//!
//! The server holds tasks of every scheme at once, so it uses the
//! object-safe [`DynAggregator`], which every [`Aggregator`] implements; a
//! partial sum then travels as an opaque [`ErasedSum`].

use std::any::Any;
use std::fmt;

use rand_core::CryptoRngCore;
use thiserror::Error;

use crate::aggregate::{AggregateError, AggregateFile, Decryption, Encoding};
use crate::codec::CodecError;
use crate::measurement::{Measurement, MeasurementError};
use crate::report::ReportId;
use crate::scheme::Scheme;
use crate::task::TaskId;

/// What an upload is bound to: proofs include it in their transcripts, so
/// a proof made for one report, task or time is rejected for another.
#[derive(Debug, Clone, Copy)]
pub struct ReportContext<'a> {
    /// The task.
    pub task_id: &'a TaskId,
    /// The report's id.
    pub report_id: &'a ReportId,
    /// The report's (rounded) time.
    pub time: u64,
}

/// Why a scheme refused a payload, a measurement or a configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SchemeError {
    /// The measurement given to encrypt is not valid for the task.
    #[error(transparent)]
    Measurement(#[from] MeasurementError),
    /// An uploaded payload does not decode.
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
    /// The report's input proof does not verify.
    #[error("{0}")]
    InvalidProof(String),
    /// The key, layout or task is not usable with this scheme.
    #[error("invalid scheme configuration: {0}")]
    Config(String),
    /// Stored data does not match the task's layout.
    #[error("stored data does not match the task's layout: {0}")]
    Corrupt(String),
}

/// The client's side of a scheme, bound to one task; see the module docs.
pub trait Encrypter: Send + Sync + fmt::Debug {
    /// The task's measurement type.
    fn measurement(&self) -> Measurement;

    /// True if payloads carry input proofs.
    fn input_proofs(&self) -> bool;

    /// Largest payload this task's reports have, in bytes.
    fn max_payload_len(&self) -> usize;

    /// Encrypts a measurement into a report payload, proving it valid where
    /// the task asks. Checks the values against the measurement type first.
    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, SchemeError>;
}

/// The aggregator's side of a scheme, bound to one task; see the module
/// docs.
pub trait Aggregator: Send + Sync + fmt::Debug + 'static {
    /// A checked report, as the aggregator keeps it.
    type Share: Send + Sync + 'static;
    /// An encrypted sum of shares.
    type Sum: Send + Sync + Clone + 'static;

    /// The scheme.
    fn scheme(&self) -> Scheme;

    /// The task's measurement type.
    fn measurement(&self) -> Measurement;

    /// How values are laid out in released ciphertexts.
    fn encoding(&self) -> Encoding;

    /// Fingerprint of the collector's public key.
    fn key_fingerprint(&self) -> [u8; 32];

    /// Largest payload this task accepts, in bytes.
    fn max_payload_len(&self) -> usize;

    /// True if payloads must carry input proofs.
    fn input_proofs(&self) -> bool;

    /// Checks untrusted payloads (structure, counts, ciphertext ranges,
    /// proofs), many at once where the scheme verifies in batches. One
    /// result per input, in order; exactly the bad ones fail.
    fn check(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Self::Share, SchemeError>>;

    /// A share's stored form.
    fn encode_share(&self, share: &Self::Share) -> Vec<u8>;

    /// Reads a stored share (written by [`Aggregator::encode_share`]).
    fn decode_share(&self, stored: Vec<u8>) -> Result<Self::Share, SchemeError>;

    /// The sum of no reports.
    fn zero(&self) -> Self::Sum;

    /// Sums shares, in parallel where the scheme can.
    fn sum(&self, shares: &[Self::Share]) -> Self::Sum;

    /// Adds `other` into `into`.
    fn merge(&self, into: &mut Self::Sum, other: &Self::Sum);

    /// A partial sum's stored form.
    fn encode_sum(&self, sum: &Self::Sum) -> Vec<u8>;

    /// Reads a stored partial sum.
    fn decode_sum(&self, stored: Vec<u8>) -> Result<Self::Sum, SchemeError>;

    /// Adds one encrypted noise value per measurement value to `sum`, which
    /// holds `reports` reports, and returns the released ciphertexts.
    /// `noise` has one entry per value (zeros when the task has no DP).
    fn release(
        &self,
        sum: &Self::Sum,
        reports: u64,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, SchemeError>;
}

/// The collector's side of a scheme: a secret key that decrypts aggregates.
pub trait Decrypter: Send + Sync + fmt::Debug {
    /// The key's scheme.
    fn scheme(&self) -> Scheme;

    /// Fingerprint of the matching public key.
    fn key_fingerprint(&self) -> [u8; 32];

    /// Decrypts a released aggregate: one (noisy) sum per measurement
    /// value. Checks first that the aggregate was made under this key.
    /// Fails if any plaintext does not fit the layout.
    fn decrypt(&self, aggregate: &AggregateFile) -> Result<Vec<i128>, AggregateError>;

    /// [`Decrypter::decrypt`], but a plaintext that does not fit the layout
    /// the way sums of valid reports do (what one client of a task without
    /// input proofs can cause) still decrypts: its values are returned with
    /// the places that do not fit ([`Decryption::flags`]). Damage the
    /// scheme can tell from that (a ciphertext that decrypts to random
    /// bits) is still an error. A scheme whose layout shows nothing of the
    /// kind keeps this default: `decrypt`, nothing flagged.
    fn decrypt_flagged(&self, aggregate: &AggregateFile) -> Result<Decryption, AggregateError> {
        self.decrypt(aggregate).map(Decryption::clean)
    }
}

/// A partial sum of any scheme, as [`DynAggregator`] passes it around.
pub struct ErasedSum(Box<dyn Any + Send + Sync>);

impl fmt::Debug for ErasedSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErasedSum(..)")
    }
}

/// [`Aggregator`] with its types erased, so that one server can hold tasks
/// of every scheme; implemented by every [`Aggregator`]. Shares cross it as
/// their stored bytes (the form they are written to disk in).
pub trait DynAggregator: Send + Sync + fmt::Debug {
    /// The scheme.
    fn scheme(&self) -> Scheme;
    /// The task's measurement type.
    fn measurement(&self) -> Measurement;
    /// How values are laid out in released ciphertexts.
    fn encoding(&self) -> Encoding;
    /// Fingerprint of the collector's public key.
    fn key_fingerprint(&self) -> [u8; 32];
    /// Largest payload this task accepts, in bytes.
    fn max_payload_len(&self) -> usize;
    /// True if payloads must carry input proofs.
    fn input_proofs(&self) -> bool;
    /// [`Aggregator::check`], returning each accepted share's stored form.
    fn check_to_stored(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<u8>, SchemeError>>;
    /// Decodes stored shares and sums them.
    fn sum_stored(&self, stored: Vec<Vec<u8>>) -> Result<ErasedSum, SchemeError>;
    /// The sum of no reports.
    fn zero(&self) -> ErasedSum;
    /// Adds `other` into `into`.
    fn merge(&self, into: &mut ErasedSum, other: &ErasedSum) -> Result<(), SchemeError>;
    /// A partial sum's stored form.
    fn encode_sum(&self, sum: &ErasedSum) -> Result<Vec<u8>, SchemeError>;
    /// Reads a stored partial sum.
    fn decode_sum(&self, stored: Vec<u8>) -> Result<ErasedSum, SchemeError>;
    /// [`Aggregator::release`].
    fn release(
        &self,
        sum: &ErasedSum,
        reports: u64,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, SchemeError>;
}

fn downcast<A: Aggregator>(sum: &ErasedSum) -> Result<&A::Sum, SchemeError> {
    sum.0
        .downcast_ref::<A::Sum>()
        .ok_or_else(|| SchemeError::Corrupt("a partial sum of another task's scheme".into()))
}

impl<A: Aggregator> DynAggregator for A {
    fn scheme(&self) -> Scheme {
        Aggregator::scheme(self)
    }

    fn measurement(&self) -> Measurement {
        Aggregator::measurement(self)
    }

    fn encoding(&self) -> Encoding {
        Aggregator::encoding(self)
    }

    fn key_fingerprint(&self) -> [u8; 32] {
        Aggregator::key_fingerprint(self)
    }

    fn max_payload_len(&self) -> usize {
        Aggregator::max_payload_len(self)
    }

    fn input_proofs(&self) -> bool {
        Aggregator::input_proofs(self)
    }

    fn check_to_stored(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<u8>, SchemeError>> {
        self.check(reports)
            .into_iter()
            .map(|r| r.map(|share| self.encode_share(&share)))
            .collect()
    }

    fn sum_stored(&self, stored: Vec<Vec<u8>>) -> Result<ErasedSum, SchemeError> {
        let shares = stored
            .into_iter()
            .map(|s| self.decode_share(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ErasedSum(Box::new(self.sum(&shares))))
    }

    fn zero(&self) -> ErasedSum {
        ErasedSum(Box::new(Aggregator::zero(self)))
    }

    fn merge(&self, into: &mut ErasedSum, other: &ErasedSum) -> Result<(), SchemeError> {
        let other = downcast::<A>(other)?;
        let into = into
            .0
            .downcast_mut::<A::Sum>()
            .ok_or_else(|| SchemeError::Corrupt("a partial sum of another task's scheme".into()))?;
        Aggregator::merge(self, into, other);
        Ok(())
    }

    fn encode_sum(&self, sum: &ErasedSum) -> Result<Vec<u8>, SchemeError> {
        Ok(Aggregator::encode_sum(self, downcast::<A>(sum)?))
    }

    fn decode_sum(&self, stored: Vec<u8>) -> Result<ErasedSum, SchemeError> {
        Ok(ErasedSum(Box::new(Aggregator::decode_sum(self, stored)?)))
    }

    fn release(
        &self,
        sum: &ErasedSum,
        reports: u64,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, SchemeError> {
        Aggregator::release(self, downcast::<A>(sum)?, reports, noise, rng)
    }
}
