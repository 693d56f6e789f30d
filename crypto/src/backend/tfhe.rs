//! The TFHE backend: LWE compact ciphertext lists under the collector's
//! TFHE-rs compact public key, summed by word-wise wrapping addition.
//!
//! A measurement of L values travels as [`lwe::list_lengths`]`(L, n)`
//! compact lists (n = 2,048 for the default parameter set, so a
//! `histogram:1024` report is one list). Payload (client to server):
//!
//! ```text
//! for each list:  u32 value count, n + count big-endian u64 words
//!                 (with input proofs) u32 length + TFHE-rs proof
//! ```
//!
//! Stored form and partial sums: the lists alone, concatenated, in the
//! same encoding. The server never expands or decrypts anything: summing is
//! [`lwe::CiphertextList::add_assign`] over the words, in parallel.
//!
//! Delta (the plaintext scale) is derived from the task, never chosen by
//! hand: the smallest power of two whose capacity holds the task's largest
//! batch plus the release's noise list ([`lwe::ParameterSet::max_encryptions`],
//! failure below 2^-40 per release), provided the largest possible noisy sum
//! still fits the plaintext space left above it. A larger Delta holds more
//! encryptions but leaves fewer plaintext bits, so each measurement type has
//! a largest feasible batch ([`max_feasible_batch`]), which is the default
//! when the task does not give one.
//!
//! Every release adds one encrypted noise list per list (all zeros without
//! DP), so a release of K reports always sums exactly K + 1 encryptions:
//! that is the count the collector removes the key's bias for, and the one
//! the capacity bound covers.

use std::sync::Arc;

use rand_core::CryptoRngCore;
use rayon::prelude::*;

use super::{AdditiveBackend, BackendError, PartialSum, ReportContext};
use crate::aggregate::Encoding;
use crate::codec::{Reader, Writer};
use crate::dp::{DpMechanism, Noise};
use crate::keyfile::Scheme;
use crate::lwe::{self, CiphertextList, ComputeLoad, Crs, Delta, LweError, Proof, PublicKey};
use crate::measurement::Measurement;

/// Failure probability of the DP noise exceeding the plaintext headroom
/// over a whole release: 2^-64, as for Paillier slots.
const NOISE_TAIL_LOG2: u32 = 64;

/// Domain tag of the metadata every proof is bound to.
const PROOF_DOMAIN: &[u8] = b"hetally tfhe input proof v1";

/// Who does the heavier half of the proof work. hetally always asks the
/// client to (the server verifies many reports, a client proves one).
pub(crate) const COMPUTE_LOAD: ComputeLoad = ComputeLoad::Proof;

fn config(e: impl std::fmt::Display) -> BackendError {
    BackendError::Config(e.to_string())
}

/// The largest |noisy sum| a batch of `max_batch_size` reports can reach.
fn max_abs_sum(
    measurement: &Measurement,
    dp: &DpMechanism,
    max_batch_size: u64,
) -> Result<u128, BackendError> {
    let noise = Noise::for_measurement(measurement, dp).map_err(config)?;
    let tail = noise.tail_bound_for_all(measurement.len(), NOISE_TAIL_LOG2);
    Ok(u128::from(max_batch_size)
        .saturating_mul(u128::from(measurement.max_value()))
        .saturating_add(tail))
}

/// The largest batch a task of this measurement and DP mechanism can
/// release under `params` at any Delta (see the module docs), or an error
/// if not even one report fits.
pub fn max_feasible_batch(
    params: lwe::ParameterSet,
    measurement: &Measurement,
    dp: &DpMechanism,
) -> Result<u64, BackendError> {
    let tail = max_abs_sum(measurement, dp, 0)?;
    let best = (Delta::MIN_LOG2..=Delta::MAX_LOG2)
        .filter_map(|log2| Delta::new(log2).ok())
        .map(|delta| {
            let by_noise = params.max_encryptions(delta).saturating_sub(1);
            let room = u128::from(delta.max_abs_value()).saturating_sub(tail);
            let by_room = room / u128::from(measurement.max_value());
            by_noise.min(u64::try_from(by_room).unwrap_or(u64::MAX))
        })
        .max()
        .unwrap_or(0);
    if best == 0 {
        return Err(BackendError::Config(format!(
            "a {measurement} task with {dp} does not fit the TFHE plaintext space even for one report: \
             use fewer value bits or less noise, or the paillier scheme"
        )));
    }
    Ok(best)
}

/// The Delta a task needs; see the module docs.
pub(super) fn delta_for(
    pk: &PublicKey,
    measurement: &Measurement,
    dp: &DpMechanism,
    max_batch_size: u64,
) -> Result<Delta, BackendError> {
    let params = pk.params();
    let too_big = || {
        let feasible = max_feasible_batch(params, measurement, dp)
            .map(|k| format!("at most {k}"))
            .unwrap_or_else(|e| e.to_string());
        BackendError::Config(format!(
            "a max batch size of {max_batch_size} does not fit a {measurement} TFHE task with {dp} \
             ({feasible} reports do, with a decryption failure probability below 2^-40): \
             lower --max-batch-size"
        ))
    };
    let delta = params
        .min_delta_for(max_batch_size.saturating_add(1))
        .map_err(|_| too_big())?;
    if max_abs_sum(measurement, dp, max_batch_size)? > u128::from(delta.max_abs_value()) {
        return Err(too_big());
    }
    Ok(delta)
}

/// Metadata a proof of list `index` of a report is bound to.
fn proof_metadata(ctx: &ReportContext<'_>, key_fingerprint: &[u8; 32], index: usize) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(PROOF_DOMAIN)
        .bytes(ctx.task_id.as_bytes())
        .bytes(&ctx.report_id.0)
        .u64(ctx.time)
        .bytes(key_fingerprint)
        .u32(index as u32);
    w.finish()
}

/// See the module docs.
#[derive(Debug)]
pub struct TfheBackend {
    pk: PublicKey,
    measurement: Measurement,
    delta: Delta,
    lengths: Vec<usize>,
    /// The task's CRS when reports must carry input proofs.
    crs: Option<Arc<Crs>>,
}

impl TfheBackend {
    /// The backend of a task; with a CRS, payloads carry TFHE-rs zk-pok
    /// proofs against it.
    pub fn new(
        pk: PublicKey,
        measurement: Measurement,
        delta: Delta,
        crs: Option<Arc<Crs>>,
    ) -> Result<Self, BackendError> {
        let lengths = lwe::list_lengths(measurement.len(), pk.params().lwe_dimension);
        if let Some(crs) = &crs {
            check_crs(&crs_statement(&pk, &measurement, delta), crs)?;
        }
        Ok(TfheBackend {
            pk,
            measurement,
            delta,
            lengths,
            crs,
        })
    }

    /// A proven payload of `values` without the range check: what a
    /// cheating client sends. Only for tests of the server's verifier; see
    /// [`PublicKey::encrypt_and_prove_unchecked`].
    #[doc(hidden)]
    pub fn encrypt_unchecked(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, BackendError> {
        let crs = self
            .crs
            .as_ref()
            .ok_or_else(|| config("the task has no input proofs"))?;
        if values.len() != self.measurement.len() {
            return Err(config("wrong number of values"));
        }
        let mut w = Writer::new();
        let mut rest = values;
        for (index, &len) in self.lengths.iter().enumerate() {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let metadata = proof_metadata(ctx, &self.pk.fingerprint(), index);
            let (list, proof) = self
                .pk
                .encrypt_and_prove_unchecked(crs, chunk, &metadata, COMPUTE_LOAD, rng)
                .map_err(config)?;
            list.encode(&mut w);
            w.var_bytes(&proof.to_bytes());
        }
        Ok(w.finish())
    }

    /// Compact lists per report.
    pub fn list_count(&self) -> usize {
        self.lengths.len()
    }

    /// Delta.
    pub fn delta(&self) -> Delta {
        self.delta
    }

    fn stored_len(&self) -> usize {
        self.lengths
            .iter()
            .map(|&len| CiphertextList::encoded_len(self.pk.params(), len))
            .sum()
    }

    /// Decodes stored lists (trusted: written by this backend).
    fn parse_stored(&self, stored: &[u8]) -> Result<Vec<CiphertextList>, BackendError> {
        let mut r = Reader::new(stored);
        let lists = self
            .lengths
            .iter()
            .map(|&len| CiphertextList::decode(&mut r, self.pk.params(), len))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Corrupt(e.to_string()))?;
        r.finish("stored TFHE lists")
            .map_err(|e| BackendError::Corrupt(e.to_string()))?;
        Ok(lists)
    }

    fn encode_lists(lists: &[CiphertextList]) -> Vec<u8> {
        let mut w = Writer::new();
        for list in lists {
            list.encode(&mut w);
        }
        w.finish()
    }

    /// Words of all lists of a report together (mask and bodies).
    fn total_words(&self) -> usize {
        let n = self.pk.params().lwe_dimension;
        self.lengths.iter().map(|&len| n + len).sum()
    }

    /// Adds a stored payload (or partial sum) into a flat accumulator of
    /// every list's words, straight from the big-endian encoding: the hot
    /// loop of aggregation, one pass over the bytes with no allocation.
    fn add_stored(&self, acc: &mut [u64], stored: &[u8]) -> Result<(), BackendError> {
        if stored.len() != self.stored_len() || acc.len() != self.total_words() {
            return Err(BackendError::Corrupt(format!(
                "stored TFHE lists have {} bytes, the layout needs {}",
                stored.len(),
                self.stored_len()
            )));
        }
        let n = self.pk.params().lwe_dimension;
        let mut bytes = stored;
        let mut acc = acc;
        for &len in &self.lengths {
            let (count, rest) = bytes.split_at(4);
            if u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize != len {
                return Err(BackendError::Corrupt(
                    "a stored TFHE list has the wrong length".into(),
                ));
            }
            let (list, rest) = rest.split_at(8 * (n + len));
            let (head, tail) = std::mem::take(&mut acc).split_at_mut(n + len);
            for (a, w) in head.iter_mut().zip(list.chunks_exact(8)) {
                let word = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                *a = a.wrapping_add(word);
            }
            bytes = rest;
            acc = tail;
        }
        Ok(())
    }

    /// The stored encoding of a flat accumulator.
    fn encode_flat(&self, acc: &[u64]) -> Vec<u8> {
        let n = self.pk.params().lwe_dimension;
        let mut w = Writer::new();
        let mut rest = acc;
        for &len in &self.lengths {
            let (list, tail) = rest.split_at(n + len);
            w.count(len);
            for &x in list {
                w.u64(x);
            }
            rest = tail;
        }
        w.finish()
    }

    fn zero_lists(&self) -> Vec<CiphertextList> {
        self.lengths
            .iter()
            .map(|&len| {
                CiphertextList::zero(self.pk.params(), len)
                    .expect("list lengths come from list_lengths and fit the dimension")
            })
            .collect()
    }
}

/// What a task's CRS must prove: (Delta, value bits, longest list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrsStatement {
    /// Plaintext scale.
    pub delta: Delta,
    /// Values lie in [0, 2^value_bits).
    pub value_bits: u32,
    /// The longest list of a report.
    pub max_values: usize,
}

/// The statement a CRS must make for a task of `measurement` at `delta`.
pub fn crs_statement(pk: &PublicKey, measurement: &Measurement, delta: Delta) -> CrsStatement {
    let lengths = lwe::list_lengths(measurement.len(), pk.params().lwe_dimension);
    CrsStatement {
        delta,
        value_bits: measurement.value_bits(),
        max_values: lengths.iter().copied().max().unwrap_or(1),
    }
}

fn check_crs(statement: &CrsStatement, crs: &Crs) -> Result<(), BackendError> {
    let got = CrsStatement {
        delta: crs.delta(),
        value_bits: crs.value_bits(),
        max_values: crs.max_values(),
    };
    if &got != statement {
        return Err(BackendError::Config(format!(
            "the CRS proves {got:?} but the task needs {statement:?}"
        )));
    }
    Ok(())
}

/// Makes the CRS for a TFHE task with input proofs (seconds of work for
/// long lists; done once, when the task is created).
pub fn generate_crs(
    pk: &PublicKey,
    measurement: &Measurement,
    delta: Delta,
    rng: &mut dyn CryptoRngCore,
) -> Result<Crs, BackendError> {
    let s = crs_statement(pk, measurement, delta);
    Crs::generate(pk.params(), s.delta, s.value_bits, s.max_values, rng).map_err(config)
}

fn lwe_to_backend(e: LweError, index: usize) -> BackendError {
    match e {
        LweError::Codec(c) => BackendError::Malformed(c),
        LweError::LengthMismatch { expected, got } => BackendError::InvalidCiphertext {
            index,
            reason: format!("the list carries {got} values, the task's layout needs {expected}"),
        },
        LweError::ProofRejected => BackendError::InvalidTfheProof { list: index },
        other => BackendError::InvalidCiphertext {
            index,
            reason: other.to_string(),
        },
    }
}

impl AdditiveBackend for TfheBackend {
    fn scheme(&self) -> Scheme {
        Scheme::Tfhe
    }

    fn measurement(&self) -> Measurement {
        self.measurement
    }

    fn encoding(&self) -> Encoding {
        Encoding::TfheLists {
            parameter_set: self.pk.params().id,
            delta_log2: self.delta.log2(),
        }
    }

    fn key_fingerprint(&self) -> [u8; 32] {
        self.pk.fingerprint()
    }

    fn max_payload_len(&self) -> usize {
        let proofs = if self.crs.is_some() {
            self.lengths.len() * (4 + lwe::zk::MAX_PROOF_BYTES)
        } else {
            0
        };
        self.stored_len() + proofs
    }

    fn input_proofs(&self) -> bool {
        self.crs.is_some()
    }

    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, BackendError> {
        self.measurement.validate(values)?;
        let mut w = Writer::new();
        let mut rest = values;
        for (index, &len) in self.lengths.iter().enumerate() {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            match &self.crs {
                Some(crs) => {
                    let metadata = proof_metadata(ctx, &self.pk.fingerprint(), index);
                    let (list, proof) = self
                        .pk
                        .encrypt_and_prove(crs, chunk, &metadata, COMPUTE_LOAD, rng)
                        .map_err(config)?;
                    list.encode(&mut w);
                    w.var_bytes(&proof.to_bytes());
                }
                None => {
                    let signed: Vec<i128> = chunk.iter().map(|&v| i128::from(v)).collect();
                    self.pk
                        .encrypt(&signed, self.delta, rng)
                        .map_err(config)?
                        .encode(&mut w);
                }
            }
        }
        Ok(w.finish())
    }

    fn check_payload(
        &self,
        payload: &[u8],
        ctx: &ReportContext<'_>,
    ) -> Result<Vec<u8>, BackendError> {
        let mut r = Reader::new(payload);
        let mut parsed = Vec::with_capacity(self.lengths.len());
        for (index, &len) in self.lengths.iter().enumerate() {
            let list = CiphertextList::decode(&mut r, self.pk.params(), len)
                .map_err(|e| lwe_to_backend(e, index))?;
            let proof = match self.crs {
                Some(_) => Some(r.var_bytes(lwe::zk::MAX_PROOF_BYTES, "TFHE proof")?),
                None => None,
            };
            parsed.push((list, proof));
        }
        r.finish("payload")?;
        if let Some(crs) = &self.crs {
            for (index, (list, proof)) in parsed.iter().enumerate() {
                let bytes = proof.expect("a proof is read for every list when the task has a CRS");
                let proof =
                    Proof::from_bytes(bytes, COMPUTE_LOAD).map_err(|e| lwe_to_backend(e, index))?;
                let metadata = proof_metadata(ctx, &self.pk.fingerprint(), index);
                self.pk
                    .verify(crs, list, &proof, &metadata)
                    .map_err(|e| lwe_to_backend(e, index))?;
            }
        }
        let lists: Vec<CiphertextList> = parsed.into_iter().map(|(list, _)| list).collect();
        Ok(Self::encode_lists(&lists))
    }

    fn check_payloads(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<u8>, BackendError>> {
        reports
            .par_iter()
            .map(|(payload, ctx)| self.check_payload(payload, ctx))
            .collect()
    }

    fn empty_sum(&self) -> PartialSum {
        PartialSum {
            report_count: 0,
            data: Self::encode_lists(&self.zero_lists()),
        }
    }

    fn sum(&self, stored: &[Vec<u8>]) -> Result<PartialSum, BackendError> {
        let words = self.total_words();
        let acc = stored
            .par_iter()
            .try_fold(
                || vec![0u64; words],
                |mut acc, s| {
                    self.add_stored(&mut acc, s)?;
                    Ok::<_, BackendError>(acc)
                },
            )
            .try_reduce(
                || vec![0u64; words],
                |mut a, b| {
                    add_words(&mut a, &b);
                    Ok(a)
                },
            )?;
        Ok(PartialSum {
            report_count: stored.len() as u64,
            data: self.encode_flat(&acc),
        })
    }

    fn merge(&self, a: &PartialSum, b: &PartialSum) -> Result<PartialSum, BackendError> {
        let mut acc = vec![0u64; self.total_words()];
        self.add_stored(&mut acc, &a.data)?;
        self.add_stored(&mut acc, &b.data)?;
        Ok(PartialSum {
            report_count: a.report_count + b.report_count,
            data: self.encode_flat(&acc),
        })
    }

    fn release(
        &self,
        sum: &PartialSum,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, BackendError> {
        if noise.len() != self.measurement.len() {
            return Err(BackendError::Corrupt(format!(
                "{} noise values for {} measurement values",
                noise.len(),
                self.measurement.len()
            )));
        }
        let max = self.pk.params().max_encryptions(self.delta);
        if sum.report_count.saturating_add(1) > max {
            return Err(BackendError::Config(
                LweError::CapacityExceeded {
                    encryptions: sum.report_count.saturating_add(1),
                    max,
                }
                .to_string(),
            ));
        }
        let mut acc = self.parse_stored(&sum.data)?;
        let mut rest = noise;
        for (list, &len) in acc.iter_mut().zip(&self.lengths) {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            // Always one noise list, zeros without DP: the collector removes
            // the key's bias for exactly report_count + 1 encryptions.
            let noise_list = self.pk.encrypt(chunk, self.delta, rng).map_err(config)?;
            list.add_assign(&noise_list)
                .map_err(|e| BackendError::Corrupt(e.to_string()))?;
        }
        Ok(acc.iter().map(CiphertextList::to_bytes).collect())
    }
}

/// Word-wise wrapping addition.
fn add_words(acc: &mut [u64], other: &[u64]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a = a.wrapping_add(*b);
    }
}

/// Decodes the released lists of an aggregate (one per list of the
/// layout), rejecting wrong lengths and trailing bytes.
pub fn decode_released(
    ciphertexts: &[Vec<u8>],
    params: lwe::ParameterSet,
    measurement: &Measurement,
) -> Result<Vec<CiphertextList>, LweError> {
    let lengths = lwe::list_lengths(measurement.len(), params.lwe_dimension);
    if ciphertexts.len() != lengths.len() {
        return Err(LweError::LengthMismatch {
            expected: lengths.len(),
            got: ciphertexts.len(),
        });
    }
    ciphertexts
        .iter()
        .zip(&lengths)
        .map(|(bytes, &len)| CiphertextList::from_bytes(bytes, params, len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendConfig;
    use crate::keyfile::PublicKeyFile;
    use crate::report::ReportId;
    use crate::task::{TaskDefinition, TaskId};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn key() -> PublicKey {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        lwe::SecretKey::generate(lwe::PKE_ZKV2_2048, &mut rng)
            .public_key()
            .clone()
    }

    #[test]
    fn delta_and_largest_batch_follow_the_capacity_and_the_plaintext_space() {
        let pk = key();
        let count = Measurement::Count;
        let none = DpMechanism::None;
        assert_eq!(delta_for(&pk, &count, &none, 1325).unwrap().log2(), 32);
        assert_eq!(delta_for(&pk, &count, &none, 1326).unwrap().log2(), 33);
        let params = pk.params();
        assert_eq!(
            max_feasible_batch(params, &count, &none).unwrap(),
            16_777_215
        );
        let sum32 = Measurement::new_sum(32).unwrap();
        assert_eq!(max_feasible_batch(params, &sum32, &none).unwrap(), 4);
        let err = delta_for(&pk, &sum32, &none, 5).unwrap_err().to_string();
        assert!(err.contains("at most 4 reports"), "{err}");
        // Noise takes plaintext room: Laplace noise on sum:16 lowers the
        // largest batch.
        let sum16 = Measurement::new_sum(16).unwrap();
        let dp: DpMechanism = "laplace:0.01".parse().unwrap();
        assert!(
            max_feasible_batch(params, &sum16, &dp).unwrap()
                < max_feasible_batch(params, &sum16, &none).unwrap()
        );
    }

    fn definition(input_proofs: bool, crs_hash: Option<[u8; 32]>) -> TaskDefinition {
        let pk = key();
        let measurement = Measurement::Histogram { buckets: 8 };
        let BackendConfig::Tfhe { delta, .. } = BackendConfig::for_key(
            &PublicKeyFile::Tfhe(pk.clone()),
            &measurement,
            &DpMechanism::None,
            100,
        )
        .unwrap() else {
            unreachable!()
        };
        TaskDefinition {
            measurement,
            min_batch_size: 1,
            max_batch_size: 100,
            time_precision: 60,
            dp: DpMechanism::None,
            budget: None,
            backend: BackendConfig::Tfhe {
                public_key: pk,
                delta,
                crs_hash,
            },
            input_proofs,
        }
    }

    #[test]
    fn tfhe_task_definitions_round_trip_and_reject_inconsistencies() {
        let plain = definition(false, None);
        let bytes = plain.to_bytes();
        assert_eq!(TaskDefinition::from_bytes(&bytes).unwrap(), plain);
        let proven = definition(true, Some([7; 32]));
        let bytes = proven.to_bytes();
        assert_eq!(TaskDefinition::from_bytes(&bytes).unwrap(), proven);
        assert_ne!(proven.id(), definition(true, Some([8; 32])).id());
        // A CRS without proofs, proofs without a CRS.
        assert!(definition(false, Some([7; 32])).check().is_err());
        assert!(definition(true, None).check().is_err());
        // A Delta other than the derived one; trailing bytes.
        let mut other = definition(false, None);
        if let BackendConfig::Tfhe { delta, .. } = &mut other.backend {
            *delta = Delta::new(delta.log2() + 1).unwrap();
        }
        assert!(TaskDefinition::from_bytes(&other.to_bytes()).is_err());
        let mut trailing = plain.to_bytes();
        trailing.push(0);
        assert!(TaskDefinition::from_bytes(&trailing).is_err());
        // Building a proven task's backend needs its CRS.
        assert!(proven.build_backend().is_err());
    }

    #[test]
    fn payload_decoding_rejects_trailing_truncated_and_wrong_lengths() {
        let def = definition(false, None);
        let backend = def.build_backend().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let task_id = TaskId([1; 32]);
        let id = ReportId([2; 16]);
        let ctx = ReportContext {
            task_id: &task_id,
            report_id: &id,
            time: 60,
        };
        let payload = backend
            .encrypt(&[0, 0, 1, 0, 0, 0, 0, 0], &ctx, &mut rng)
            .unwrap();
        assert_eq!(backend.check_payload(&payload, &ctx).unwrap(), payload);
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(matches!(
            backend.check_payload(&trailing, &ctx),
            Err(BackendError::Malformed(_))
        ));
        assert!(matches!(
            backend.check_payload(&payload[..payload.len() - 1], &ctx),
            Err(BackendError::Malformed(_))
        ));
        let mut wrong_len = payload.clone();
        wrong_len[3] = 7;
        assert!(matches!(
            backend.check_payload(&wrong_len, &ctx),
            Err(BackendError::InvalidCiphertext { .. })
        ));
        // A count far beyond the dimension is refused before any read.
        let mut huge = payload;
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(backend.check_payload(&huge, &ctx).is_err());
        // Invalid measurements never get encrypted.
        assert!(backend
            .encrypt(&[2, 0, 0, 0, 0, 0, 0, 0], &ctx, &mut rng)
            .is_err());
    }
}
