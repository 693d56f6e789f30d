//! The aggregate file: one released, encrypted batch sum.
//!
//! The server writes it at release time and stores it; the collector
//! decrypts it offline with `hetally-keytool decrypt`. It says which task and
//! which key it belongs to, which interval it covers, how many reports it
//! sums, which DP mechanism noised it and how the values are laid out in the
//! ciphertexts, so that it can be decrypted and interpreted on its own.
//!
//! This module reads and writes the format. Whether the ciphertexts fit the
//! layout, and decrypting them, is the scheme's (`hetally-schemes`).

use thiserror::Error;

use crate::codec::{
    self, CodecError, FileKind, Reader, Writer, AGGREGATE_FORMAT_VERSION,
    AGGREGATE_TRUSTEES_FORMAT_VERSION,
};
use crate::dp::{DpMechanism, Relation, TrusteeNoise};
use crate::measurement::Measurement;
use crate::scheme::Scheme;

/// Largest number of ciphertexts in one aggregate.
pub const MAX_CIPHERTEXTS: usize = 1 << 20;

/// Largest single ciphertext in an aggregate.
pub const MAX_CIPHERTEXT_BYTES: usize = 64 << 20;

/// Widest Paillier slot: decoded slot values are `i128`.
pub const MAX_SLOT_BITS: u32 = 127;

/// Largest aggregate file this build reads.
pub const MAX_AGGREGATE_FILE_BYTES: usize = 1 << 30;

/// Errors from decoding or decrypting an aggregate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The file is malformed.
    #[error("malformed aggregate file: {0}")]
    Codec(#[from] CodecError),
    /// The secret key is for another scheme.
    #[error("wrong scheme: the aggregate is {aggregate} but the key is {key}")]
    WrongScheme {
        /// The aggregate's scheme.
        aggregate: Scheme,
        /// The key's scheme.
        key: Scheme,
    },
    /// The secret key is not the one the aggregate was encrypted under.
    #[error("wrong key: the aggregate was encrypted under key {expected}, this key is {found}")]
    WrongKey {
        /// Fingerprint (hex prefix) in the aggregate.
        expected: String,
        /// Fingerprint (hex prefix) of the key given.
        found: String,
    },
    /// A ciphertext did not decrypt.
    #[error("ciphertext {index} is corrupt: {reason}")]
    BadCiphertext {
        /// Position in the file.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The aggregate cannot be decrypted safely (for example a TFHE
    /// aggregate that sums more encryptions than its Delta holds).
    #[error("{0}")]
    Unsafe(String),
    /// The decrypted values do not fit the stated layout.
    #[error("decrypted values do not fit the aggregate's layout: {0}")]
    Layout(String),
}

/// A decrypted aggregate, with the places of its plaintexts that no sum of
/// valid reports can set ([`Decrypter::decrypt_flagged`]).
///
/// A release is made of sums of reports plus noise, and its layout leaves
/// room for exactly those: a Paillier slot holds at most the batch's
/// largest sum plus the noise's tail bound, below a quarter of the slot's
/// range. A task without input proofs takes any plaintext a client
/// encrypts, so one report whose value is out of range (bits above its
/// slot, or the slot's sign bit) leaves a mark the layout shows: those
/// marks are the flags. The other values are still the sums of the reports
/// (plus noise).
///
/// [`Decrypter::decrypt_flagged`]: crate::roles::Decrypter::decrypt_flagged
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decryption {
    /// One value per measurement value, as decoded (flagged ones included).
    pub values: Vec<i128>,
    /// What does not fit the layout, by ciphertext and slot; empty for a
    /// release of valid reports.
    pub flags: Vec<SlotFlag>,
}

impl Decryption {
    /// A decryption with nothing flagged.
    pub fn clean(values: Vec<i128>) -> Self {
        Decryption {
            values,
            flags: Vec::new(),
        }
    }
}

/// One place of a decrypted aggregate that does not fit its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFlag {
    /// The ciphertext, counted from 0.
    pub ciphertext: usize,
    /// The slot in its plaintext, counted from 0 (for
    /// [`SlotProblem::AboveLastSlot`], the number of slots).
    pub slot: usize,
    /// The measurement value the slot holds: `None` for a slot past the
    /// last value and for the bits above the last slot.
    pub value: Option<usize>,
    /// What is wrong there.
    pub problem: SlotProblem,
}

/// What a [`SlotFlag`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotProblem {
    /// The slot decodes to `decoded`, whose magnitude is at least `limit`,
    /// more than sums and noise can reach: bits above the slot's range, or
    /// its sign bit, were set.
    OutOfRange {
        /// The value decoded.
        decoded: i128,
        /// The smallest magnitude that is out of range.
        limit: i128,
    },
    /// The slot is in range but next to flagged bits: it may hold the low
    /// bits of an out-of-range value, or have taken a wrong carry from the
    /// slot below, so its value is not reliable.
    Adjacent {
        /// The value decoded.
        decoded: i128,
    },
    /// A slot past the last value decodes to `decoded`; sums of valid
    /// reports leave it 0.
    PastLastValue {
        /// The value decoded.
        decoded: i128,
    },
    /// The plaintext has bits above its last slot, a number of `bits` bits.
    AboveLastSlot {
        /// Bit length of what lies above the last slot.
        bits: u32,
    },
}

impl SlotProblem {
    /// A short machine-readable name: `out_of_range`, `adjacent`,
    /// `past_last_value`, `above_last_slot`.
    pub fn name(&self) -> &'static str {
        match self {
            SlotProblem::OutOfRange { .. } => "out_of_range",
            SlotProblem::Adjacent { .. } => "adjacent",
            SlotProblem::PastLastValue { .. } => "past_last_value",
            SlotProblem::AboveLastSlot { .. } => "above_last_slot",
        }
    }
}

impl std::fmt::Display for SlotProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotProblem::OutOfRange { decoded, limit } => write!(
                f,
                "decodes to {decoded}, outside the ±{limit} the layout keeps for sums and noise"
            ),
            SlotProblem::Adjacent { decoded } => write!(
                f,
                "reads {decoded} but lies next to out-of-range bits, so it may be off"
            ),
            SlotProblem::PastLastValue { decoded } => write!(
                f,
                "holds {decoded} in a slot past the last value, which valid sums leave 0"
            ),
            SlotProblem::AboveLastSlot { bits } => {
                write!(f, "has {bits} bits set above its last slot")
            }
        }
    }
}

/// How the aggregate's values are laid out in its ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Paillier plaintexts packed in slots of `slot_bits` bits.
    PaillierPacked {
        /// Slot width.
        slot_bits: u32,
    },
    /// TFHE compact lists under a parameter set, values scaled by
    /// Delta = 2^delta_log2 (`hetally-lwe`).
    TfheLists {
        /// The parameter set's id (`hetally_lwe::ParameterSet::id`).
        parameter_set: u8,
        /// log2 of Delta.
        delta_log2: u32,
    },
}

impl Encoding {
    /// The scheme the encoding belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            Encoding::PaillierPacked { .. } => Scheme::Paillier,
            Encoding::TfheLists { .. } => Scheme::Tfhe,
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Encoding::PaillierPacked { slot_bits } => {
                w.u8(1).u32(*slot_bits);
            }
            Encoding::TfheLists {
                parameter_set,
                delta_log2,
            } => {
                w.u8(2).u8(*parameter_set).u32(*delta_log2);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("encoding")? {
            1 => Ok(Encoding::PaillierPacked {
                slot_bits: r.u32("slot width")?,
            }),
            2 => Ok(Encoding::TfheLists {
                parameter_set: r.u8("TFHE parameter set")?,
                delta_log2: r.u32("Delta")?,
            }),
            t => Err(CodecError::invalid(
                "encoding",
                format!("unknown encoding tag {t}"),
            )),
        }
    }
}

/// How many reports an aggregate sums, as its task's relation releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportCount {
    /// The exact count (replace-one, and tasks without a declared relation:
    /// the batch size is public).
    Exact(u64),
    /// The count plus DP noise (add/remove: the exact count never leaves
    /// the server). It may be negative.
    Noisy(i64),
}

impl ReportCount {
    /// The exact count, if the file carries it.
    pub fn exact(self) -> Option<u64> {
        match self {
            ReportCount::Exact(n) => Some(n),
            ReportCount::Noisy(_) => None,
        }
    }

    /// The count as released: exact, or noisy.
    pub fn released(self) -> i128 {
        match self {
            ReportCount::Exact(n) => i128::from(n),
            ReportCount::Noisy(n) => i128::from(n),
        }
    }
}

/// A released aggregate; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateFile {
    /// The task this batch belongs to.
    pub task_id: [u8; 32],
    /// The scheme of the ciphertexts.
    pub scheme: Scheme,
    /// Fingerprint of the collector public key the ciphertexts are under.
    pub key_fingerprint: [u8; 32],
    /// What was measured.
    pub measurement: Measurement,
    /// Value layout in the ciphertexts.
    pub encoding: Encoding,
    /// Start of the batch interval, Unix seconds.
    pub batch_start: u64,
    /// Length of the batch interval, seconds.
    pub batch_duration: u64,
    /// The neighbouring relation of the task's guarantee (`None` for a task
    /// that declares none: a version-1 file).
    pub relation: Option<Relation>,
    /// Number of reports summed, as the relation releases it.
    pub report_count: ReportCount,
    /// The noise added under encryption.
    pub dp: DpMechanism,
    /// Set when the task's trustees drew the noise (a version-3 file).
    pub trustee_noise: Option<TrusteeNoise>,
    /// The encrypted sums, in the scheme's ciphertext encoding.
    pub ciphertexts: Vec<Vec<u8>>,
}

impl AggregateFile {
    /// The file encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let version = match (self.relation, self.trustee_noise) {
            (None, _) => codec::FORMAT_VERSION,
            (Some(_), None) => AGGREGATE_FORMAT_VERSION,
            (Some(_), Some(_)) => AGGREGATE_TRUSTEES_FORMAT_VERSION,
        };
        codec::write_header_version(&mut w, FileKind::Aggregate, version);
        w.u8(self.scheme.to_byte());
        w.bytes(&self.task_id);
        w.bytes(&self.key_fingerprint);
        self.measurement.encode(&mut w);
        self.encoding.encode(&mut w);
        w.u64(self.batch_start).u64(self.batch_duration);
        if let Some(relation) = self.relation {
            relation.encode(&mut w);
            if let Some(trustees) = &self.trustee_noise {
                trustees.encode(&mut w);
            }
        }
        // The count's 8 bytes: unsigned when exact, two's complement when
        // noisy (the relation says which).
        w.u64(match self.report_count {
            ReportCount::Exact(n) => n,
            ReportCount::Noisy(n) => n as u64,
        });
        self.dp.encode(&mut w);
        w.count(self.ciphertexts.len());
        for c in &self.ciphertexts {
            w.var_bytes(c);
        }
        w.finish()
    }

    /// Decodes an aggregate file. Ciphertexts are checked when decrypting,
    /// against the key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AggregateError> {
        let mut r = Reader::new(bytes);
        let version = codec::expect_header_version(&mut r, FileKind::Aggregate)?;
        let scheme = Scheme::from_byte(r.u8("scheme")?)?;
        let task_id = r.array("task id")?;
        let key_fingerprint = r.array("key fingerprint")?;
        let measurement = Measurement::decode(&mut r)?;
        let encoding = Encoding::decode(&mut r)?;
        let batch_start = r.u64("batch start")?;
        let batch_duration = r.u64("batch duration")?;
        let relation = match version {
            codec::FORMAT_VERSION => None,
            _ => Some(Relation::decode(&mut r)?),
        };
        let trustee_noise = match version {
            AGGREGATE_TRUSTEES_FORMAT_VERSION => Some(TrusteeNoise::decode(&mut r)?),
            _ => None,
        };
        let count = r.u64("report count")?;
        let report_count = match relation {
            Some(Relation::AddRemove) => ReportCount::Noisy(count as i64),
            _ => ReportCount::Exact(count),
        };
        let dp = DpMechanism::decode(&mut r)?;
        let count = r.count(MAX_CIPHERTEXTS, "ciphertext count")?;
        let mut ciphertexts = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            ciphertexts.push(r.var_bytes(MAX_CIPHERTEXT_BYTES, "ciphertext")?.to_vec());
        }
        r.finish("aggregate file")?;
        let file = AggregateFile {
            task_id,
            scheme,
            key_fingerprint,
            measurement,
            encoding,
            batch_start,
            batch_duration,
            relation,
            report_count,
            dp,
            trustee_noise,
            ciphertexts,
        };
        file.check_layout()?;
        Ok(file)
    }

    fn check_layout(&self) -> Result<(), AggregateError> {
        if self.trustee_noise.is_some()
            && (self.relation != Some(Relation::ReplaceOne)
                || !matches!(self.dp, DpMechanism::Gaussian { .. })
                || self.scheme != Scheme::Paillier)
        {
            return Err(AggregateError::Layout(
                "trustee noise is only for replace-one Paillier tasks with Gaussian noise".into(),
            ));
        }
        let noisy = matches!(self.report_count, ReportCount::Noisy(_));
        if noisy != (self.relation == Some(Relation::AddRemove)) {
            return Err(AggregateError::Layout(
                "the report count is noisy exactly when the relation is add-remove".into(),
            ));
        }
        if self.encoding.scheme() != self.scheme {
            return Err(AggregateError::Layout(format!(
                "a {} aggregate cannot use the {:?} layout",
                self.scheme, self.encoding
            )));
        }
        if let Encoding::PaillierPacked { slot_bits } = self.encoding {
            if !(2..=MAX_SLOT_BITS).contains(&slot_bits) {
                return Err(AggregateError::Layout(format!(
                    "slot width {slot_bits} bits is outside 2..={MAX_SLOT_BITS}"
                )));
            }
        }
        Ok(())
    }

    /// Checks that `public_key_fingerprint` and `scheme` are those of the
    /// key this aggregate was encrypted under.
    pub fn check_key(
        &self,
        scheme: Scheme,
        public_key_fingerprint: &[u8; 32],
    ) -> Result<(), AggregateError> {
        if scheme != self.scheme {
            return Err(AggregateError::WrongScheme {
                aggregate: self.scheme,
                key: scheme,
            });
        }
        if public_key_fingerprint != &self.key_fingerprint {
            return Err(AggregateError::WrongKey {
                expected: hex::encode(&self.key_fingerprint[..8]),
                found: hex::encode(&public_key_fingerprint[..8]),
            });
        }
        Ok(())
    }
}
