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
//! A share (a checked report) is the lists alone, concatenated, in the same
//! encoding; a partial sum is the lists' words, flat. The server never
//! expands or decrypts anything: summing is wrapping addition of words, in
//! parallel, straight from the shares' bytes.
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

use hetally_dp::{DpMechanism, Noise, Relation};
use hetally_protocol::aggregate::{AggregateError, AggregateFile, Encoding};
use hetally_protocol::codec::{Reader, Writer};
use hetally_protocol::roles::{Aggregator, Decrypter, Encrypter, ReportContext, SchemeError};
use hetally_protocol::{Layout, Measurement, Scheme, TaskDefinition};
use rand_core::CryptoRngCore;
use rayon::prelude::*;

use crate as lwe;
use crate::{CiphertextList, ComputeLoad, Crs, Delta, LweError, Proof, PublicKey, SecretKey};

/// Failure probability of the DP noise exceeding the plaintext headroom
/// over a whole release: 2^-64, as for Paillier slots.
const NOISE_TAIL_LOG2: u32 = 64;

/// Domain tag of the metadata every proof is bound to.
const PROOF_DOMAIN: &[u8] = b"hetally tfhe input proof v1";

/// Who does the heavier half of the proof work. hetally always asks the
/// client to (the server verifies many reports, a client proves one).
pub(crate) const COMPUTE_LOAD: ComputeLoad = ComputeLoad::Proof;

fn config(e: impl std::fmt::Display) -> SchemeError {
    SchemeError::Config(e.to_string())
}

/// The largest |noisy sum| a batch of `max_batch_size` reports can reach.
fn max_abs_sum(
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
    max_batch_size: u64,
) -> Result<u128, SchemeError> {
    let noise = Noise::for_task(measurement, dp, relation).map_err(config)?;
    let tail = noise.tail_bound_for_all(measurement.len(), NOISE_TAIL_LOG2);
    Ok(u128::from(max_batch_size)
        .saturating_mul(u128::from(measurement.max_value()))
        .saturating_add(tail))
}

/// The most encryptions one sum may hold at `delta` under `pk`: the
/// capacity of its parameter set ([`lwe::ParameterSet::max_encryptions`]),
/// and for a threshold key also the most that leaves its trustees room to
/// smudge the `values` values of a release to the key's least lambda
/// ([`lwe::threshold::max_smudged_encryptions`]).
fn capacity(
    params: lwe::ParameterSet,
    trustees: Option<lwe::Trustees>,
    values: usize,
    delta: Delta,
) -> u64 {
    match trustees {
        None => params.max_encryptions(delta),
        Some(t) => lwe::threshold::max_smudged_encryptions(
            params,
            delta,
            values,
            t.count,
            u32::from(t.min_lambda),
        ),
    }
}

/// The largest batch a task of this measurement and DP mechanism can
/// release under `params` at any Delta (see the module docs), or an error
/// if not even one report fits.
pub fn max_feasible_batch(
    params: lwe::ParameterSet,
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
) -> Result<u64, SchemeError> {
    feasible_batch(params, None, measurement, dp, relation)
}

/// [`max_feasible_batch`] under a key, which for a threshold key also
/// leaves room for the trustees' smudging noise.
pub fn max_feasible_batch_for(
    pk: &PublicKey,
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
) -> Result<u64, SchemeError> {
    feasible_batch(pk.params(), pk.trustees(), measurement, dp, relation)
}

fn feasible_batch(
    params: lwe::ParameterSet,
    trustees: Option<lwe::Trustees>,
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
) -> Result<u64, SchemeError> {
    let tail = max_abs_sum(measurement, dp, relation, 0)?;
    let best = (Delta::MIN_LOG2..=Delta::MAX_LOG2)
        .filter_map(|log2| Delta::new(log2).ok())
        .map(|delta| {
            let by_noise = capacity(params, trustees, measurement.len(), delta).saturating_sub(1);
            let room = u128::from(delta.max_abs_value()).saturating_sub(tail);
            let by_room = room / u128::from(measurement.max_value());
            by_noise.min(u64::try_from(by_room).unwrap_or(u64::MAX))
        })
        .max()
        .unwrap_or(0);
    if best == 0 {
        let smudged = match trustees {
            Some(t) => format!(
                " with room for {} trustees' smudging noise at lambda {}",
                t.count, t.min_lambda
            ),
            None => String::new(),
        };
        return Err(SchemeError::Config(format!(
            "a {measurement} task with {dp} does not fit the TFHE plaintext space even for one \
             report{smudged}: use fewer value bits or less noise, or the paillier scheme"
        )));
    }
    Ok(best)
}

/// The Delta a task needs; see the module docs. For a threshold key it is
/// the smallest Delta that also leaves room for its trustees' smudging
/// noise at the key's least lambda.
pub fn delta_for(
    pk: &PublicKey,
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
    max_batch_size: u64,
) -> Result<Delta, SchemeError> {
    let params = pk.params();
    let trustees = pk.trustees();
    let too_big = || {
        let feasible = max_feasible_batch_for(pk, measurement, dp, relation)
            .map(|k| format!("at most {k}"))
            .unwrap_or_else(|e| e.to_string());
        let smudging = match trustees {
            Some(t) => format!(
                " and room for {} trustees to smudge their partial decryptions to lambda {}",
                t.count, t.min_lambda
            ),
            None => String::new(),
        };
        SchemeError::Config(format!(
            "a max batch size of {max_batch_size} does not fit a {measurement} TFHE task with {dp} \
             ({feasible} reports do, with a decryption failure probability below 2^-40{smudging}): \
             lower --max-batch-size"
        ))
    };
    let encryptions = max_batch_size.saturating_add(1);
    let delta = (Delta::MIN_LOG2..=Delta::MAX_LOG2)
        .filter_map(|log2| Delta::new(log2).ok())
        .find(|&d| capacity(params, trustees, measurement.len(), d) >= encryptions)
        .ok_or_else(too_big)?;
    if max_abs_sum(measurement, dp, relation, max_batch_size)? > u128::from(delta.max_abs_value()) {
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

/// What every role of a TFHE task shares: the key, the measurement, Delta
/// and the list layout, checked against the task definition, and the CRS
/// when reports carry proofs.
#[derive(Debug)]
struct Task {
    pk: PublicKey,
    measurement: Measurement,
    delta: Delta,
    lengths: Vec<usize>,
    /// The task's CRS when reports must carry input proofs.
    crs: Option<Arc<Crs>>,
}

impl Task {
    /// Checks `definition` (key, Delta, CRS hash) and, for a task with input
    /// proofs, its CRS (`crs`, the bytes served at `GET /tasks/{id}/crs`).
    fn new(definition: &TaskDefinition, crs: Option<&[u8]>) -> Result<Self, SchemeError> {
        let Layout::Tfhe {
            delta_log2,
            crs_hash,
        } = definition.layout
        else {
            return Err(config(format!(
                "a {} task is not a TFHE task",
                definition.scheme()
            )));
        };
        let pk = PublicKey::from_bytes(&definition.public_key).map_err(config)?;
        let measurement = definition.measurement;
        let derived = delta_for(
            &pk,
            &measurement,
            &definition.dp,
            definition.relation,
            definition.max_batch_size,
        )?;
        if derived.log2() != delta_log2 {
            return Err(config(format!(
                "the task's Delta is 2^{delta_log2}, but its measurement, DP mechanism and max \
                 batch size need 2^{}",
                derived.log2()
            )));
        }
        let crs = match (definition.input_proofs, crs_hash) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(config("a CRS is only part of a task with input proofs"))
            }
            (true, None) => return Err(config("a TFHE task with input proofs needs a CRS")),
            (true, Some(hash)) => {
                let bytes = crs.ok_or_else(|| {
                    config("this TFHE task's input proofs need its CRS (GET /tasks/{id}/crs)")
                })?;
                let crs =
                    Crs::from_bytes(bytes).map_err(|e| config(format!("the task's CRS: {e}")))?;
                if crs.hash() != hash {
                    return Err(config(
                        "the CRS does not match the hash in the task definition",
                    ));
                }
                check_crs(&crs_statement(&pk, &measurement, derived), &crs)?;
                Some(Arc::new(crs))
            }
        };
        Ok(Task {
            lengths: lwe::list_lengths(measurement.len(), pk.params().lwe_dimension),
            pk,
            measurement,
            delta: derived,
            crs,
        })
    }

    fn max_payload_len(&self) -> usize {
        let proofs = if self.crs.is_some() {
            self.lengths.len() * (4 + lwe::zk::MAX_PROOF_BYTES)
        } else {
            0
        };
        self.stored_len() + proofs
    }

    fn stored_len(&self) -> usize {
        self.lengths
            .iter()
            .map(|&len| CiphertextList::encoded_len(self.pk.params(), len))
            .sum()
    }

    /// Words of all lists of a report together (mask and bodies).
    fn total_words(&self) -> usize {
        let n = self.pk.params().lwe_dimension;
        self.lengths.iter().map(|&len| n + len).sum()
    }

    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
        check: bool,
    ) -> Result<Vec<u8>, SchemeError> {
        if check {
            self.measurement.validate(values)?;
        } else if values.len() != self.measurement.len() {
            return Err(config("wrong number of values"));
        }
        let mut w = Writer::new();
        let mut rest = values;
        for (index, &len) in self.lengths.iter().enumerate() {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            match &self.crs {
                Some(crs) => {
                    let metadata = proof_metadata(ctx, &self.pk.fingerprint(), index);
                    let (list, proof) = if check {
                        self.pk
                            .encrypt_and_prove(crs, chunk, &metadata, COMPUTE_LOAD, rng)
                    } else {
                        self.pk.encrypt_and_prove_unchecked(
                            crs,
                            chunk,
                            &metadata,
                            COMPUTE_LOAD,
                            rng,
                        )
                    }
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
}

/// The layout a new TFHE task with this key gets, with its CRS (made here,
/// seconds of work for long lists) when reports carry input proofs.
pub fn layout_for(
    public_key_file: &[u8],
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
    max_batch_size: u64,
    input_proofs: bool,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Layout, Option<Crs>), SchemeError> {
    let pk = PublicKey::from_bytes(public_key_file).map_err(config)?;
    let delta = delta_for(&pk, measurement, dp, relation, max_batch_size)?;
    let crs = input_proofs
        .then(|| generate_crs(&pk, measurement, delta, rng))
        .transpose()?;
    Ok((
        Layout::Tfhe {
            delta_log2: delta.log2(),
            crs_hash: crs.as_ref().map(Crs::hash),
        },
        crs,
    ))
}

/// The largest batch a task with this key may declare when it gives none.
pub fn default_max_batch_size(
    public_key_file: &[u8],
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
) -> Result<u64, SchemeError> {
    let pk = PublicKey::from_bytes(public_key_file).map_err(config)?;
    max_feasible_batch_for(&pk, measurement, dp, relation)
}

/// Checks that a TFHE task's definition is consistent, with its CRS.
pub fn check_definition(
    definition: &TaskDefinition,
    crs: Option<&[u8]>,
) -> Result<(), SchemeError> {
    Task::new(definition, crs).map(|_| ())
}

/// The client's side of a TFHE task: encrypts into compact lists, and
/// proves with TFHE-rs's zk-pok when the task asks.
#[derive(Debug)]
pub struct TfheEncrypter {
    task: Task,
}

impl TfheEncrypter {
    /// The encrypter of a task, after checking its definition and CRS.
    pub fn new(definition: &TaskDefinition, crs: Option<&[u8]>) -> Result<Self, SchemeError> {
        Ok(TfheEncrypter {
            task: Task::new(definition, crs)?,
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
    ) -> Result<Vec<u8>, SchemeError> {
        if self.task.crs.is_none() {
            return Err(config("the task has no input proofs"));
        }
        self.task.encrypt(values, ctx, rng, false)
    }

    /// Compact lists per report.
    pub fn list_count(&self) -> usize {
        self.task.lengths.len()
    }

    /// Delta.
    pub fn delta(&self) -> Delta {
        self.task.delta
    }
}

impl Encrypter for TfheEncrypter {
    fn measurement(&self) -> Measurement {
        self.task.measurement
    }

    fn input_proofs(&self) -> bool {
        self.task.crs.is_some()
    }

    fn max_payload_len(&self) -> usize {
        self.task.max_payload_len()
    }

    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, SchemeError> {
        self.task.encrypt(values, ctx, rng, true)
    }
}

/// A checked TFHE report: its lists, in their encoding.
#[derive(Debug, Clone)]
pub struct Lists(Vec<u8>);

/// The server's side of a TFHE task: checks lists and proofs, sums words.
#[derive(Debug)]
pub struct TfheAggregator {
    task: Task,
}

impl TfheAggregator {
    /// The aggregator of a task, after checking its definition and CRS.
    pub fn new(definition: &TaskDefinition, crs: Option<&[u8]>) -> Result<Self, SchemeError> {
        Ok(TfheAggregator {
            task: Task::new(definition, crs)?,
        })
    }

    fn check_one(&self, payload: &[u8], ctx: &ReportContext<'_>) -> Result<Lists, SchemeError> {
        let task = &self.task;
        let mut r = Reader::new(payload);
        let mut parsed = Vec::with_capacity(task.lengths.len());
        for (index, &len) in task.lengths.iter().enumerate() {
            let list = CiphertextList::decode(&mut r, task.pk.params(), len)
                .map_err(|e| lwe_error(e, index))?;
            let proof = match task.crs {
                Some(_) => Some(r.var_bytes(lwe::zk::MAX_PROOF_BYTES, "TFHE proof")?),
                None => None,
            };
            parsed.push((list, proof));
        }
        r.finish("payload")?;
        if let Some(crs) = &task.crs {
            for (index, (list, proof)) in parsed.iter().enumerate() {
                let bytes = proof.expect("a proof is read for every list when the task has a CRS");
                let proof =
                    Proof::from_bytes(bytes, COMPUTE_LOAD).map_err(|e| lwe_error(e, index))?;
                let metadata = proof_metadata(ctx, &task.pk.fingerprint(), index);
                task.pk
                    .verify(crs, list, &proof, &metadata)
                    .map_err(|e| lwe_error(e, index))?;
            }
        }
        let mut w = Writer::new();
        for (list, _) in &parsed {
            list.encode(&mut w);
        }
        Ok(Lists(w.finish()))
    }

    /// Adds a share's lists into a flat accumulator of every list's words,
    /// straight from the big-endian encoding: the hot loop of aggregation,
    /// one pass over the bytes with no allocation. The share's length was
    /// checked when it was made or decoded.
    fn add_lists(&self, acc: &mut [u64], lists: &Lists) {
        let n = self.task.pk.params().lwe_dimension;
        let mut bytes = lists.0.as_slice();
        let mut acc = acc;
        for &len in &self.task.lengths {
            // Skip the list's u32 value count.
            let (list, rest) = bytes[4..].split_at(8 * (n + len));
            let (head, tail) = std::mem::take(&mut acc).split_at_mut(n + len);
            for (a, w) in head.iter_mut().zip(list.chunks_exact(8)) {
                let word = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                *a = a.wrapping_add(word);
            }
            bytes = rest;
            acc = tail;
        }
    }

    /// The lists of a flat accumulator.
    fn lists_of(&self, acc: &[u64]) -> Result<Vec<CiphertextList>, SchemeError> {
        let n = self.task.pk.params().lwe_dimension;
        let mut rest = acc;
        let mut out = Vec::with_capacity(self.task.lengths.len());
        for &len in &self.task.lengths {
            let (words, tail) = rest.split_at(n + len);
            out.push(
                CiphertextList::from_words(self.task.pk.params(), len, words.to_vec())
                    .map_err(|e| SchemeError::Corrupt(e.to_string()))?,
            );
            rest = tail;
        }
        Ok(out)
    }
}

impl Aggregator for TfheAggregator {
    type Share = Lists;
    /// Every list's words, flat.
    type Sum = Vec<u64>;

    fn scheme(&self) -> Scheme {
        Scheme::Tfhe
    }

    fn measurement(&self) -> Measurement {
        self.task.measurement
    }

    fn encoding(&self) -> Encoding {
        Encoding::TfheLists {
            parameter_set: self.task.pk.params().id,
            delta_log2: self.task.delta.log2(),
        }
    }

    fn key_fingerprint(&self) -> [u8; 32] {
        self.task.pk.fingerprint()
    }

    fn max_payload_len(&self) -> usize {
        self.task.max_payload_len()
    }

    fn input_proofs(&self) -> bool {
        self.task.crs.is_some()
    }

    fn check(&self, reports: &[(&[u8], ReportContext<'_>)]) -> Vec<Result<Lists, SchemeError>> {
        reports
            .par_iter()
            .map(|(payload, ctx)| self.check_one(payload, ctx))
            .collect()
    }

    fn encode_share(&self, share: &Lists) -> Vec<u8> {
        share.0.clone()
    }

    fn decode_share(&self, stored: Vec<u8>) -> Result<Lists, SchemeError> {
        // Stored shares were checked at upload; their framing is checked
        // again here, so that the summing loop can trust it.
        let mut r = Reader::new(&stored);
        for &len in &self.task.lengths {
            CiphertextList::decode(&mut r, self.task.pk.params(), len)
                .map_err(|e| SchemeError::Corrupt(e.to_string()))?;
        }
        r.finish("stored TFHE lists")
            .map_err(|e| SchemeError::Corrupt(e.to_string()))?;
        Ok(Lists(stored))
    }

    fn zero(&self) -> Vec<u64> {
        vec![0u64; self.task.total_words()]
    }

    fn sum(&self, shares: &[Lists]) -> Vec<u64> {
        shares
            .par_iter()
            .fold(
                || self.zero(),
                |mut acc, s| {
                    self.add_lists(&mut acc, s);
                    acc
                },
            )
            .reduce(
                || self.zero(),
                |mut a, b| {
                    add_words(&mut a, &b);
                    a
                },
            )
    }

    fn merge(&self, into: &mut Vec<u64>, other: &Vec<u64>) {
        add_words(into, other);
    }

    fn encode_sum(&self, sum: &Vec<u64>) -> Vec<u8> {
        let n = self.task.pk.params().lwe_dimension;
        let mut w = Writer::new();
        let mut rest = sum.as_slice();
        for &len in &self.task.lengths {
            let (list, tail) = rest.split_at(n + len);
            w.count(len);
            for &x in list {
                w.u64(x);
            }
            rest = tail;
        }
        w.finish()
    }

    fn decode_sum(&self, stored: Vec<u8>) -> Result<Vec<u64>, SchemeError> {
        let lists = self.decode_share(stored)?;
        let mut acc = self.zero();
        self.add_lists(&mut acc, &lists);
        Ok(acc)
    }

    fn release(
        &self,
        sum: &Vec<u64>,
        reports: u64,
        noise: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u8>>, SchemeError> {
        let task = &self.task;
        if noise.len() != task.measurement.len() {
            return Err(SchemeError::Corrupt(format!(
                "{} noise values for {} measurement values",
                noise.len(),
                task.measurement.len()
            )));
        }
        let max = task.pk.params().max_encryptions(task.delta);
        if reports.saturating_add(1) > max {
            return Err(config(LweError::CapacityExceeded {
                encryptions: reports.saturating_add(1),
                max,
            }));
        }
        let mut acc = self.lists_of(sum)?;
        let mut rest = noise;
        for (list, &len) in acc.iter_mut().zip(&task.lengths) {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            // Always one noise list, zeros without DP: the collector removes
            // the key's bias for exactly report_count + 1 encryptions.
            let noise_list = task.pk.encrypt(chunk, task.delta, rng).map_err(config)?;
            list.add_assign(&noise_list)
                .map_err(|e| SchemeError::Corrupt(e.to_string()))?;
        }
        Ok(acc.iter().map(CiphertextList::to_bytes).collect())
    }
}

/// The collector's side: the secret key, decrypting released aggregates.
#[derive(Debug)]
pub struct TfheDecrypter {
    key: SecretKey,
}

impl TfheDecrypter {
    /// Wraps a secret key.
    pub fn new(key: SecretKey) -> Self {
        TfheDecrypter { key }
    }

    /// The secret key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
}

impl Decrypter for TfheDecrypter {
    fn scheme(&self) -> Scheme {
        Scheme::Tfhe
    }

    fn key_fingerprint(&self) -> [u8; 32] {
        self.key.public_key().fingerprint()
    }

    fn decrypt(&self, file: &AggregateFile) -> Result<Vec<i128>, AggregateError> {
        file.check_key(Scheme::Tfhe, &self.key_fingerprint())?;
        let release = Release::of(file, self.key.params())?;
        let mut values = Vec::with_capacity(file.measurement.len());
        for list in &release.lists {
            values.extend(
                self.key
                    .decrypt(list, release.encryptions, release.delta)
                    .map_err(|e| AggregateError::Unsafe(e.to_string()))?,
            );
        }
        Ok(values)
    }
}

/// What decrypting a TFHE aggregate needs, read from its file and checked
/// against the key's parameter set: shared by [`TfheDecrypter`] and
/// threshold decryption (`crate::threshold`).
#[derive(Debug)]
pub(crate) struct Release {
    /// The released lists, one per list of the layout.
    pub(crate) lists: Vec<CiphertextList>,
    /// Encryptions in every list's sum: the reports plus the noise list.
    pub(crate) encryptions: u64,
    /// The plaintext scale.
    pub(crate) delta: Delta,
}

impl Release {
    /// Reads the lists, Delta and encryption count of `file` (whose key
    /// the caller has checked) for a key of `params`.
    pub(crate) fn of(
        file: &AggregateFile,
        params: lwe::ParameterSet,
    ) -> Result<Self, AggregateError> {
        let Encoding::TfheLists {
            parameter_set,
            delta_log2,
        } = file.encoding
        else {
            return Err(AggregateError::Layout(format!(
                "a TFHE key cannot decrypt the {:?} layout",
                file.encoding
            )));
        };
        if params.id != parameter_set {
            return Err(AggregateError::Layout(format!(
                "the aggregate uses TFHE parameter set {parameter_set}, the key set {}",
                params.id
            )));
        }
        let delta = Delta::new(delta_log2).map_err(|e| AggregateError::Layout(e.to_string()))?;
        let lists = decode_released(&file.ciphertexts, params, &file.measurement)
            .map_err(|e| AggregateError::Layout(e.to_string()))?;
        // Every release adds one noise list to its reports. TFHE tasks are
        // never add/remove (TaskDefinition::check), so the count is exact.
        let reports = file.report_count.exact().ok_or_else(|| {
            AggregateError::Layout(
                "a TFHE aggregate needs its exact report count to decrypt".into(),
            )
        })?;
        Ok(Release {
            lists,
            encryptions: reports.saturating_add(1),
            delta,
        })
    }

    /// Values over all lists.
    pub(crate) fn value_count(&self) -> usize {
        self.lists.iter().map(CiphertextList::len).sum()
    }
}

/// Checks an aggregate's TFHE layout (parameter set, Delta, list lengths)
/// without a key.
pub fn check_aggregate(file: &AggregateFile) -> Result<(), AggregateError> {
    let Encoding::TfheLists {
        parameter_set,
        delta_log2,
    } = file.encoding
    else {
        return Ok(());
    };
    if file.report_count.exact().is_none() {
        return Err(AggregateError::Layout(
            "a TFHE aggregate carries its exact report count (TFHE tasks are never add-remove)"
                .into(),
        ));
    }
    let params = lwe::ParameterSet::from_id(parameter_set)
        .map_err(|e| AggregateError::Layout(e.to_string()))?;
    Delta::new(delta_log2).map_err(|e| AggregateError::Layout(e.to_string()))?;
    decode_released(&file.ciphertexts, params, &file.measurement)
        .map_err(|e| AggregateError::Layout(e.to_string()))?;
    Ok(())
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

fn check_crs(statement: &CrsStatement, crs: &Crs) -> Result<(), SchemeError> {
    let got = CrsStatement {
        delta: crs.delta(),
        value_bits: crs.value_bits(),
        max_values: crs.max_values(),
    };
    if &got != statement {
        return Err(SchemeError::Config(format!(
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
) -> Result<Crs, SchemeError> {
    let s = crs_statement(pk, measurement, delta);
    Crs::generate(pk.params(), s.delta, s.value_bits, s.max_values, rng).map_err(config)
}

fn lwe_error(e: LweError, index: usize) -> SchemeError {
    match e {
        LweError::Codec(c) => SchemeError::Malformed(c),
        LweError::LengthMismatch { expected, got } => SchemeError::InvalidCiphertext {
            index,
            reason: format!("the list carries {got} values, the task's layout needs {expected}"),
        },
        LweError::ProofRejected => SchemeError::InvalidProof(format!(
            "the input proof of list {index} does not verify: a value is out of range, or the \
             proof is for another list, report, task, key or CRS"
        )),
        other => SchemeError::InvalidCiphertext {
            index,
            reason: other.to_string(),
        },
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
    use hetally_protocol::{ReportId, TaskId};
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
        assert_eq!(
            delta_for(&pk, &count, &none, None, 1325).unwrap().log2(),
            32
        );
        assert_eq!(
            delta_for(&pk, &count, &none, None, 1326).unwrap().log2(),
            33
        );
        let params = pk.params();
        assert_eq!(
            max_feasible_batch(params, &count, &none, None).unwrap(),
            16_777_215
        );
        let sum32 = Measurement::new_sum(32).unwrap();
        assert_eq!(max_feasible_batch(params, &sum32, &none, None).unwrap(), 4);
        let err = delta_for(&pk, &sum32, &none, None, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 4 reports"), "{err}");
        // Noise takes plaintext room: Laplace noise on sum:16 lowers the
        // largest batch.
        let sum16 = Measurement::new_sum(16).unwrap();
        let dp: DpMechanism = "laplace:0.01".parse().unwrap();
        assert!(
            max_feasible_batch(params, &sum16, &dp, None).unwrap()
                < max_feasible_batch(params, &sum16, &none, None).unwrap()
        );
    }

    #[test]
    fn a_threshold_key_takes_a_delta_with_room_for_smudging() {
        let declared = lwe::Trustees {
            count: 3,
            min_lambda: 16,
        };
        let pk = key().with_trustees(declared).unwrap();
        let histogram = Measurement::Histogram { buckets: 16 };
        let none = DpMechanism::None;
        // The example of docs/protocol.md 10.4: 2^52, against 2^28 for the
        // same task under the plain key.
        let delta = delta_for(&pk, &histogram, &none, None, 300).unwrap();
        assert_eq!(delta.log2(), 52);
        assert_eq!(
            delta_for(&key(), &histogram, &none, None, 300)
                .unwrap()
                .log2(),
            31
        );
        let s = lwe::threshold::smudging(pk.params(), delta, 301, 16, 3).unwrap();
        assert_eq!(s.lambda, 16);
        // The largest batch: the lambda and the plaintext space both hold
        // there, and one report more does not fit.
        let largest = max_feasible_batch_for(&pk, &histogram, &none, None).unwrap();
        let at = delta_for(&pk, &histogram, &none, None, largest).unwrap();
        let s = lwe::threshold::smudging(pk.params(), at, largest + 1, 16, 3).unwrap();
        assert!(s.lambda >= 16, "{s:?}");
        assert!(largest <= at.max_abs_value());
        assert!(delta_for(&pk, &histogram, &none, None, largest + 1).is_err());
        assert!((500..5000).contains(&largest), "{largest}");
        // A least lambda of 40 leaves no room for any batch.
        let strict = key()
            .with_trustees(lwe::Trustees {
                count: 3,
                min_lambda: 40,
            })
            .unwrap();
        let err = max_feasible_batch_for(&strict, &histogram, &none, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("smudging noise at lambda 40"), "{err}");
        // The declaration is checked.
        for bad in [(1, 16), (65, 16), (3, 41)] {
            let t = lwe::Trustees {
                count: bad.0,
                min_lambda: bad.1,
            };
            assert!(key().with_trustees(t).is_err(), "{bad:?}");
        }
        // Its file: kind 4, the key, N and the lambda; another fingerprint.
        let bytes = pk.to_bytes();
        assert_eq!(bytes.len(), key().to_bytes().len() + 3);
        assert_eq!(bytes[5], 4);
        assert_ne!(pk.fingerprint(), key().fingerprint());
        let back = PublicKey::from_bytes(&bytes).unwrap();
        assert_eq!(back.trustees(), Some(declared));
        let mut long = bytes.clone();
        long.push(0);
        assert!(PublicKey::from_bytes(&long).is_err());
        assert!(PublicKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    /// The table of docs/threshold.md ("The price: Delta and batch size"):
    /// the largest batch and its Delta under a 3-trustee key, by least
    /// lambda, without DP.
    #[test]
    fn threshold_batch_limits_table() {
        let none = DpMechanism::None;
        let measurements = [
            Measurement::Count,
            Measurement::Histogram { buckets: 16 },
            Measurement::Histogram { buckets: 1024 },
        ];
        // (largest batch, log2 of its Delta) per measurement, by lambda.
        type Row = [Option<(u64, u32)>; 3];
        let table: [(u8, Row); 6] = [
            (
                0,
                [
                    Some((8_388_607, 40)),
                    Some((2_097_151, 42)),
                    Some((131_071, 46)),
                ],
            ),
            (
                8,
                [Some((262_143, 45)), Some((37_717, 47)), Some((2_357, 51))],
            ),
            (12, [Some((37_717, 47)), Some((8_191, 50)), Some((511, 54))]),
            (16, [Some((8_191, 50)), Some((1_023, 53)), Some((63, 57))]),
            (20, [Some((1_023, 53)), Some((146, 55)), Some((8, 59))]),
            (24, [Some((146, 55)), Some((31, 58)), None]),
        ];
        for (lambda, row) in table {
            let pk = key()
                .with_trustees(lwe::Trustees {
                    count: 3,
                    min_lambda: lambda,
                })
                .unwrap();
            for (m, expected) in measurements.iter().zip(row) {
                let got = max_feasible_batch_for(&pk, m, &none, None)
                    .ok()
                    .map(|k| (k, delta_for(&pk, m, &none, None, k).unwrap().log2()));
                assert_eq!(got, expected, "lambda {lambda}, {m}");
            }
        }
        assert_eq!(
            max_feasible_batch(key().params(), &Measurement::Count, &none, None).unwrap(),
            16_777_215
        );
    }

    fn definition(input_proofs: bool, crs_hash: Option<[u8; 32]>) -> TaskDefinition {
        let pk = key();
        let measurement = Measurement::Histogram { buckets: 8 };
        let delta = delta_for(&pk, &measurement, &DpMechanism::None, None, 100).unwrap();
        TaskDefinition {
            measurement,
            min_batch_size: 1,
            max_batch_size: 100,
            time_precision: 60,
            dp: DpMechanism::None,
            budget: None,
            public_key: pk.to_bytes(),
            layout: Layout::Tfhe {
                delta_log2: delta.log2(),
                crs_hash,
            },
            input_proofs,
            relation: Some(Relation::ReplaceOne),
            trustee_noise: None,
        }
    }

    #[test]
    fn tfhe_task_definitions_round_trip_and_reject_inconsistencies() {
        let plain = definition(false, None);
        let bytes = plain.to_bytes();
        assert_eq!(TaskDefinition::from_bytes(&bytes).unwrap(), plain);
        check_definition(&plain, None).unwrap();
        let proven = definition(true, Some([7; 32]));
        let bytes = proven.to_bytes();
        assert_eq!(TaskDefinition::from_bytes(&bytes).unwrap(), proven);
        assert_ne!(proven.id(), definition(true, Some([8; 32])).id());
        // A CRS without proofs, proofs without a CRS.
        assert!(definition(false, Some([7; 32])).check().is_err());
        assert!(definition(true, None).check().is_err());
        // A Delta other than the derived one; trailing bytes.
        let mut other = definition(false, None);
        if let Layout::Tfhe { delta_log2, .. } = &mut other.layout {
            *delta_log2 += 1;
        }
        assert!(check_definition(&other, None).is_err());
        let mut trailing = plain.to_bytes();
        trailing.push(0);
        assert!(TaskDefinition::from_bytes(&trailing).is_err());
        // Building a proven task's roles needs its CRS.
        assert!(TfheEncrypter::new(&proven, None).is_err());
        assert!(TfheAggregator::new(&proven, None).is_err());
    }

    #[test]
    fn payload_decoding_rejects_trailing_truncated_and_wrong_lengths() {
        let def = definition(false, None);
        let client = TfheEncrypter::new(&def, None).unwrap();
        let server = TfheAggregator::new(&def, None).unwrap();
        let check = |payload: &[u8], ctx: &ReportContext<'_>| {
            server.check(&[(payload, *ctx)]).pop().unwrap()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let task_id = TaskId([1; 32]);
        let id = ReportId([2; 16]);
        let ctx = ReportContext {
            task_id: &task_id,
            report_id: &id,
            time: 60,
        };
        let payload = client
            .encrypt(&[0, 0, 1, 0, 0, 0, 0, 0], &ctx, &mut rng)
            .unwrap();
        assert_eq!(
            server.encode_share(&check(&payload, &ctx).unwrap()),
            payload
        );
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(matches!(
            check(&trailing, &ctx),
            Err(SchemeError::Malformed(_))
        ));
        assert!(matches!(
            check(&payload[..payload.len() - 1], &ctx),
            Err(SchemeError::Malformed(_))
        ));
        let mut wrong_len = payload.clone();
        wrong_len[3] = 7;
        assert!(matches!(
            check(&wrong_len, &ctx),
            Err(SchemeError::InvalidCiphertext { .. })
        ));
        // A count far beyond the dimension is refused before any read.
        let mut huge = payload;
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(check(&huge, &ctx).is_err());
        // Invalid measurements never get encrypted.
        assert!(client
            .encrypt(&[2, 0, 0, 0, 0, 0, 0, 0], &ctx, &mut rng)
            .is_err());
    }

    #[test]
    fn sums_merge_and_round_trip_through_their_stored_form() {
        let def = definition(false, None);
        let client = TfheEncrypter::new(&def, None).unwrap();
        let server = TfheAggregator::new(&def, None).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let task_id = TaskId([1; 32]);
        let shares: Vec<Lists> = (0..6u8)
            .map(|i| {
                let id = ReportId([i; 16]);
                let ctx = ReportContext {
                    task_id: &task_id,
                    report_id: &id,
                    time: 60,
                };
                let mut v = vec![0; 8];
                v[usize::from(i) % 8] = 1;
                let payload = client.encrypt(&v, &ctx, &mut rng).unwrap();
                server.check(&[(&payload, ctx)]).pop().unwrap().unwrap()
            })
            .collect();
        let whole = server.sum(&shares);
        let mut merged = server.sum(&shares[..2]);
        server.merge(&mut merged, &server.sum(&shares[2..]));
        assert_eq!(merged, whole);
        let stored = server.encode_sum(&whole);
        assert_eq!(server.decode_sum(stored).unwrap(), whole);
        assert_eq!(server.sum(&[]), server.zero());
    }
}
