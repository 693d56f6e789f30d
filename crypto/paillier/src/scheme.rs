//! The Paillier scheme's three roles: packed slots, one ciphertext
//! multiplication per ciphertext per report.
//!
//! Payload (client to server) of a task without input proofs: `u32`
//! ciphertext count, then that many packed ciphertexts of exactly
//! `ciphertext_len` bytes. With input proofs (the default for new tasks),
//! the payload is [`crate::proofs`]'s proof-carrying encoding: one
//! ciphertext per bit with a 0/1 proof each; after verification the server
//! derives the packed ciphertexts from the bit ciphertexts
//! (prod c_i^(2^offset_i)).
//!
//! A share (a checked report) and a partial sum have the same form: the
//! packed ciphertexts, stored concatenated. Summing, merging and releasing
//! do not depend on proofs.

use hetally_protocol::codec::{CodecError, Writer};
use hetally_protocol::contribution::NoiseContribution;
use hetally_protocol::roles::{Encrypter, ReportContext, SchemeError};
use hetally_protocol::{Layout, Measurement, TaskDefinition};
use rand_core::CryptoRngCore;

use crate::arith::Int;
use crate::key::PublicKey;
use crate::layout::slot_bits;
use crate::packing::Packing;
use crate::proofs::{InputProofs, ProofError};

fn config(e: impl std::fmt::Display) -> SchemeError {
    SchemeError::Config(e.to_string())
}

impl From<ProofError> for SchemeError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Malformed(e) => SchemeError::Malformed(e),
            ProofError::WrongBitCount { expected, got, .. } => {
                SchemeError::WrongCiphertextCount { expected, got }
            }
            ProofError::Measurement(e) => SchemeError::Measurement(e),
            ProofError::TooLarge { .. } => SchemeError::Config(e.to_string()),
            e => SchemeError::InvalidProof(e.to_string()),
        }
    }
}

/// What every role of a Paillier task shares: the key, the measurement and
/// the slot layout, checked against the task definition.
#[derive(Debug)]
struct Task<B: Int> {
    pk: PublicKey<B>,
    measurement: Measurement,
    packing: Packing,
    ciphertext_count: usize,
    /// Set when reports must carry input proofs.
    proofs: Option<InputProofs<B>>,
}

impl<B: Int> Task<B> {
    fn new(definition: &TaskDefinition) -> Result<Self, SchemeError> {
        let Layout::Paillier { slot_bits: chosen } = definition.layout else {
            return Err(config(format!(
                "a {} task is not a Paillier task",
                definition.scheme()
            )));
        };
        let pk = PublicKey::<B>::from_bytes(&definition.public_key).map_err(config)?;
        if let Some(trustees) = &definition.trustee_noise {
            let n = pk.trustees().map_or(0, |(n, _)| n);
            if u16::from(trustees.contributors) > n {
                return Err(config(format!(
                    "trustee noise from {} contributors needs a threshold key with at least as \
                     many trustees; this key has {n}",
                    trustees.contributors
                )));
            }
        }
        let derived = slot_bits(
            pk.modulus_bits(),
            &definition.measurement,
            &definition.dp,
            definition.relation,
            definition.trustee_noise.as_ref(),
            definition.max_batch_size,
        )?;
        if chosen != derived {
            return Err(config(format!(
                "the task's slot width is {chosen} bits, but its measurement, DP mechanism and \
                 max batch size need {derived}"
            )));
        }
        let packing = Packing::new(chosen, pk.modulus_bits()).map_err(config)?;
        let measurement = definition.measurement;
        let proofs = definition
            .input_proofs
            .then(|| InputProofs::new(pk.clone(), measurement))
            .transpose()
            .map_err(config)?;
        Ok(Task {
            ciphertext_count: packing.plaintext_count(measurement.len()),
            pk,
            measurement,
            packing,
            proofs,
        })
    }

    fn max_payload_len(&self) -> usize {
        match &self.proofs {
            Some(p) => p.payload_len(),
            None => 4 + self.ciphertext_count * self.pk.ciphertext_len(),
        }
    }
}

/// The layout a new Paillier task with this key gets.
pub fn layout_for(
    public_key_file: &[u8],
    measurement: &Measurement,
    dp: &hetally_dp::DpMechanism,
    relation: Option<hetally_dp::Relation>,
    trustees: Option<hetally_dp::TrusteeNoise>,
    max_batch_size: u64,
) -> Result<Layout, SchemeError> {
    let pk = PublicKey::<num_bigint::BigInt>::from_bytes(public_key_file).map_err(config)?;
    Ok(Layout::Paillier {
        slot_bits: slot_bits(
            pk.modulus_bits(),
            measurement,
            dp,
            relation,
            trustees.as_ref(),
            max_batch_size,
        )?,
    })
}

/// Checks that a Paillier task's definition is consistent (its key is
/// valid and its layout is the derived one), and that its reports can carry
/// input proofs if it asks for them.
pub fn check_definition(definition: &TaskDefinition) -> Result<(), SchemeError> {
    Task::<num_bigint::BigInt>::new(definition).map(|_| ())
}

/// A trustee's noise contribution to the release of `task_id`'s batch
/// starting at `batch_start` (docs/protocol.md section 6.9): `noise` holds
/// one share per measurement value, drawn by the caller from the task's
/// share distribution (`hetally_dp::Noise::share`); it is packed in the
/// task's slots and encrypted under its key.
pub fn encrypt_noise_contribution(
    definition: &TaskDefinition,
    batch_start: u64,
    trustee: u16,
    noise: &[i128],
    rng: &mut dyn CryptoRngCore,
) -> Result<NoiseContribution, SchemeError> {
    if definition.trustee_noise.is_none() {
        return Err(config(
            "this task's noise is drawn by the server, not by trustees".to_string(),
        ));
    }
    let task = Task::<num_bigint::BigInt>::new(definition)?;
    if noise.len() != task.measurement.len() {
        return Err(config(format!(
            "{} noise values for {} measurement values",
            noise.len(),
            task.measurement.len()
        )));
    }
    let packed: Vec<num_bigint::BigInt> = task
        .packing
        .pack(noise)
        .map_err(|e| config(format!("the noise does not fit the task's slots: {e}")))?;
    let ciphertexts = packed
        .iter()
        .map(|m| {
            let c = task.pk.encrypt_signed(m, rng).map_err(config)?;
            Ok(task.pk.ciphertext_to_bytes(&c))
        })
        .collect::<Result<Vec<_>, SchemeError>>()?;
    Ok(NoiseContribution {
        task_id: definition.id().0,
        batch_start,
        trustee,
        ciphertexts,
    })
}

/// Decodes and checks a noise contribution a trustee uploaded for the
/// release of `definition`'s batch starting at `batch_start`: it names
/// this task, this batch and `trustee` (the one its token belongs to),
/// carries exactly the release's number of ciphertexts, and each is a unit
/// modulo n^2 of the key's length. What it encrypts cannot be checked; see
/// docs/threshold.md ("What is not covered").
pub fn check_noise_contribution(
    definition: &TaskDefinition,
    batch_start: u64,
    trustee: u16,
    bytes: &[u8],
) -> Result<NoiseContribution, SchemeError> {
    let bad = |s: String| SchemeError::Malformed(CodecError::invalid("noise contribution", s));
    let task = Task::<num_bigint::BigInt>::new(definition)?;
    let c = NoiseContribution::from_bytes(bytes)?;
    if c.task_id != definition.id().0 {
        return Err(bad("it was made for another task".into()));
    }
    if c.batch_start != batch_start {
        return Err(bad(format!(
            "it was made for the batch starting at {}, not {batch_start}",
            c.batch_start
        )));
    }
    if c.trustee != trustee {
        return Err(bad(format!(
            "it names trustee {}, but the token is trustee {trustee}'s",
            c.trustee
        )));
    }
    if c.ciphertexts.len() != task.ciphertext_count {
        return Err(SchemeError::WrongCiphertextCount {
            expected: task.ciphertext_count,
            got: c.ciphertexts.len(),
        });
    }
    for (index, bytes) in c.ciphertexts.iter().enumerate() {
        task.pk
            .ciphertext_from_bytes(bytes)
            .map_err(|e| SchemeError::InvalidCiphertext {
                index,
                reason: e.to_string(),
            })?;
    }
    Ok(c)
}

/// The client's side of a Paillier task: encrypts (in the fast form) and
/// proves.
#[derive(Debug)]
pub struct PaillierEncrypter<B: Int> {
    task: Task<B>,
}

impl<B: Int> PaillierEncrypter<B> {
    /// The encrypter of a task, after checking its definition.
    pub fn new(definition: &TaskDefinition) -> Result<Self, SchemeError> {
        let task = Task::new(definition)?;
        match &task.proofs {
            Some(p) => p.precompute(),
            None => task.pk.precompute(),
        }
        Ok(PaillierEncrypter { task })
    }

    /// The task's public key.
    pub fn public_key(&self) -> &PublicKey<B> {
        &self.task.pk
    }

    /// The proof system, for a task with input proofs.
    pub fn proofs(&self) -> Option<&InputProofs<B>> {
        self.task.proofs.as_ref()
    }

    /// Ciphertexts per report once packed.
    pub fn ciphertext_count(&self) -> usize {
        self.task.ciphertext_count
    }

    /// Encrypts `values` into the payload of a task without input proofs,
    /// checking nothing: the values need not be valid for the measurement
    /// nor fit their slots. Value `i` of a plaintext adds `value · 2^(w·i)`
    /// to it, so a value too large spills into the slots above and a
    /// negative one borrows from them. The server of a task without input
    /// proofs cannot tell such a report from a valid one: this is what a
    /// misbehaving client can send, for the tests of what the collector
    /// then sees.
    pub fn encrypt_unchecked(
        &self,
        values: &[i128],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, SchemeError> {
        let task = &self.task;
        if task.proofs.is_some() {
            return Err(config(
                "encrypt_unchecked makes payloads of tasks without input proofs",
            ));
        }
        if values.len() != task.measurement.len() {
            return Err(config(format!(
                "{} values for a {} task",
                values.len(),
                task.measurement
            )));
        }
        let w = task.packing.slot_bits();
        let mut out = Writer::new();
        out.count(task.ciphertext_count);
        for chunk in values.chunks(task.packing.slots_per_plaintext() as usize) {
            let mut p = B::zero();
            for v in chunk.iter().rev() {
                p = p.shl(w).add(&B::from_i128(*v));
            }
            let c = task.pk.encrypt_signed(&p, rng).map_err(config)?;
            out.bytes(&task.pk.ciphertext_to_bytes(&c));
        }
        Ok(out.finish())
    }
}

impl<B: Int> Encrypter for PaillierEncrypter<B> {
    fn measurement(&self) -> Measurement {
        self.task.measurement
    }

    fn input_proofs(&self) -> bool {
        self.task.proofs.is_some()
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
        let task = &self.task;
        if let Some(proofs) = &task.proofs {
            return Ok(proofs.prove(values, ctx, rng)?);
        }
        task.measurement.validate(values)?;
        let plaintexts: Vec<B> = task.packing.pack_u64(values).map_err(config)?;
        let mut w = Writer::new();
        w.count(plaintexts.len());
        for p in &plaintexts {
            let c = task.pk.encrypt(p, rng).map_err(config)?;
            w.bytes(&task.pk.ciphertext_to_bytes(&c));
        }
        Ok(w.finish())
    }
}

#[cfg(feature = "aggregator")]
pub use aggregator::PaillierAggregator;

#[cfg(feature = "aggregator")]
mod aggregator {
    use hetally_protocol::aggregate::Encoding;
    use hetally_protocol::codec::Reader;
    use hetally_protocol::roles::{Aggregator, ReportContext, SchemeError};
    use hetally_protocol::{Measurement, Scheme, TaskDefinition};
    use rand_core::CryptoRngCore;
    use rayon::prelude::*;

    use super::{config, Task};
    use crate::arith::Int;
    use crate::key::Ciphertext;

    /// The server's side of a Paillier task: checks payloads (verifying
    /// proofs in batches), sums packed ciphertexts with rayon, and adds
    /// encrypted noise at release.
    #[derive(Debug)]
    pub struct PaillierAggregator<B: Int> {
        task: Task<B>,
    }

    impl<B: Int> PaillierAggregator<B> {
        /// The aggregator of a task, after checking its definition.
        pub fn new(definition: &TaskDefinition) -> Result<Self, SchemeError> {
            let task = Task::new(definition)?;
            task.pk.precompute();
            Ok(PaillierAggregator { task })
        }

        /// Ciphertexts per report once packed.
        pub fn ciphertext_count(&self) -> usize {
            self.task.ciphertext_count
        }

        /// The stored form of a verified report: its value ciphertexts packed
        /// into slots, P = prod_k V_k^(2^(w k)) per plaintext, by Horner's
        /// rule from the last slot (w squarings per slot).
        fn pack_ciphertexts(&self, values: &[Ciphertext<B>]) -> Vec<B> {
            let n2 = self.task.pk.n_squared();
            let w = self.task.packing.slot_bits();
            values
                .chunks(self.task.packing.slots_per_plaintext() as usize)
                .map(|chunk| {
                    let mut acc = B::from_u64(1);
                    for v in chunk.iter().rev() {
                        if !acc.eq_u64(1) {
                            for _ in 0..w {
                                acc.square_mod_assign(n2);
                            }
                        }
                        acc.mul_mod_assign(v.as_integer(), n2);
                    }
                    acc
                })
                .collect()
        }

        /// Checks one payload of a task without input proofs.
        fn check_plain(&self, payload: &[u8]) -> Result<Vec<B>, SchemeError> {
            let task = &self.task;
            let mut r = Reader::new(payload);
            let got = r.u32("ciphertext count")? as usize;
            let len = task.pk.ciphertext_len();
            // The count is the one the payload states or, if the bytes
            // after it are a different whole number of ciphertexts, that
            // number: a ciphertext too many is a wrong count either way.
            let carried = r
                .remaining()
                .is_multiple_of(len)
                .then(|| r.remaining() / len);
            let got = match carried {
                Some(carried) if got == task.ciphertext_count => carried,
                _ => got,
            };
            if got != task.ciphertext_count {
                return Err(SchemeError::WrongCiphertextCount {
                    expected: task.ciphertext_count,
                    got,
                });
            }
            let mut cts = Vec::with_capacity(got);
            for index in 0..got {
                let bytes = r.bytes(len, "ciphertext")?;
                let c = task.pk.ciphertext_from_bytes(bytes).map_err(|e| {
                    SchemeError::InvalidCiphertext {
                        index,
                        reason: e.to_string(),
                    }
                })?;
                cts.push(c.0);
            }
            r.finish("payload")?;
            Ok(cts)
        }

        fn mul_into(&self, acc: &mut [B], other: &[B]) {
            for (a, b) in acc.iter_mut().zip(other) {
                a.mul_mod_assign(b, self.task.pk.n_squared());
            }
        }
    }

    impl<B: Int> Aggregator for PaillierAggregator<B> {
        /// The packed ciphertexts of one report.
        type Share = Vec<B>;
        /// The packed ciphertexts of a sum.
        type Sum = Vec<B>;

        fn scheme(&self) -> Scheme {
            Scheme::Paillier
        }

        fn measurement(&self) -> Measurement {
            self.task.measurement
        }

        fn encoding(&self) -> Encoding {
            Encoding::PaillierPacked {
                slot_bits: self.task.packing.slot_bits(),
            }
        }

        fn key_fingerprint(&self) -> [u8; 32] {
            self.task.pk.fingerprint()
        }

        fn max_payload_len(&self) -> usize {
            self.task.max_payload_len()
        }

        fn input_proofs(&self) -> bool {
            self.task.proofs.is_some()
        }

        fn check(
            &self,
            reports: &[(&[u8], ReportContext<'_>)],
        ) -> Vec<Result<Vec<B>, SchemeError>> {
            match &self.task.proofs {
                Some(proofs) => proofs
                    .verify_batch(reports)
                    .into_par_iter()
                    .map(|r| Ok(self.pack_ciphertexts(&r?)))
                    .collect(),
                None => reports
                    .par_iter()
                    .map(|(payload, _)| self.check_plain(payload))
                    .collect(),
            }
        }

        fn encode_share(&self, share: &Vec<B>) -> Vec<u8> {
            self.encode_sum(share)
        }

        fn decode_share(&self, stored: Vec<u8>) -> Result<Vec<B>, SchemeError> {
            self.decode_sum(stored)
        }

        fn zero(&self) -> Vec<B> {
            vec![B::from_u64(1); self.task.ciphertext_count]
        }

        fn sum(&self, shares: &[Vec<B>]) -> Vec<B> {
            shares
                .par_iter()
                .fold(
                    || self.zero(),
                    |mut acc, s| {
                        self.mul_into(&mut acc, s);
                        acc
                    },
                )
                .reduce(
                    || self.zero(),
                    |mut a, b| {
                        self.mul_into(&mut a, &b);
                        a
                    },
                )
        }

        fn merge(&self, into: &mut Vec<B>, other: &Vec<B>) {
            self.mul_into(into, other);
        }

        fn encode_sum(&self, sum: &Vec<B>) -> Vec<u8> {
            let len = self.task.pk.ciphertext_len();
            let mut out = Vec::with_capacity(sum.len() * len);
            for c in sum {
                out.extend_from_slice(&c.to_be_bytes_padded(len));
            }
            out
        }

        /// Parses stored (already validated) ciphertexts, without the gcd
        /// check.
        fn decode_sum(&self, stored: Vec<u8>) -> Result<Vec<B>, SchemeError> {
            let len = self.task.pk.ciphertext_len();
            let expected = self.task.ciphertext_count * len;
            if stored.len() != expected {
                return Err(SchemeError::Corrupt(format!(
                    "stored ciphertexts have {} bytes, the layout needs {expected}",
                    stored.len()
                )));
            }
            Ok(stored.chunks_exact(len).map(B::from_be_bytes).collect())
        }

        fn release(
            &self,
            sum: &Vec<B>,
            _reports: u64,
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
            let mut acc = sum.clone();
            if noise.iter().any(|v| *v != 0) {
                let packed: Vec<B> = task
                    .packing
                    .pack(noise)
                    .map_err(|e| config(format!("noise does not fit the slots: {e}")))?;
                for (a, p) in acc.iter_mut().zip(&packed) {
                    let c = task.pk.encrypt_signed(p, rng).map_err(config)?;
                    a.mul_mod_assign(c.as_integer(), task.pk.n_squared());
                }
            }
            let len = task.pk.ciphertext_len();
            Ok(acc.iter().map(|c| c.to_be_bytes_padded(len)).collect())
        }
    }
}

#[cfg(feature = "gmp")]
pub use collector::{release_ciphertexts, unpack_release, PaillierDecrypter};

#[cfg(feature = "gmp")]
mod collector {
    use hetally_protocol::aggregate::{AggregateError, AggregateFile, Decryption, Encoding};
    use hetally_protocol::roles::Decrypter;
    use hetally_protocol::Scheme;
    use rug::Integer;

    use crate::key::{Ciphertext, PublicKey};
    use crate::packing::{Packing, PackingError};
    use crate::secret::SecretKey;

    /// The collector's side: the secret key, decrypting released
    /// aggregates.
    #[derive(Debug)]
    pub struct PaillierDecrypter {
        key: SecretKey,
    }

    impl PaillierDecrypter {
        /// Wraps a secret key.
        pub fn new(key: SecretKey) -> Self {
            PaillierDecrypter { key }
        }

        /// The secret key.
        pub fn key(&self) -> &SecretKey {
            &self.key
        }
    }

    impl Decrypter for PaillierDecrypter {
        fn scheme(&self) -> Scheme {
            Scheme::Paillier
        }

        fn key_fingerprint(&self) -> [u8; 32] {
            self.key.public_key().fingerprint()
        }

        fn decrypt(&self, file: &AggregateFile) -> Result<Vec<i128>, AggregateError> {
            let (packing, plaintexts) = self.plaintexts(file)?;
            packing
                .unpack(&plaintexts, file.measurement.len())
                .map_err(|e| AggregateError::Layout(e.to_string()))
        }

        fn decrypt_flagged(&self, file: &AggregateFile) -> Result<Decryption, AggregateError> {
            let (packing, plaintexts) = self.plaintexts(file)?;
            unpack_flagged(&packing, &plaintexts, file)
        }
    }

    impl PaillierDecrypter {
        /// Checks `file` against this key and its layout, and decrypts its
        /// ciphertexts into signed plaintexts.
        fn plaintexts(
            &self,
            file: &AggregateFile,
        ) -> Result<(Packing, Vec<Integer>), AggregateError> {
            let (packing, cts) = release_ciphertexts(self.key.public_key(), file)?;
            Ok((packing, self.key.decrypt_all_signed(&cts)))
        }
    }

    /// Checks that `file` was released under `pk` (by fingerprint: for a
    /// threshold key, that of the threshold key file) in a Paillier layout
    /// with the right number of ciphertexts, and decodes them. What both
    /// decryption and a trustee's partial decryption
    /// ([`crate::threshold`]) start from.
    pub fn release_ciphertexts(
        pk: &PublicKey<Integer>,
        file: &AggregateFile,
    ) -> Result<(Packing, Vec<Ciphertext<Integer>>), AggregateError> {
        file.check_key(Scheme::Paillier, &pk.fingerprint())?;
        let Encoding::PaillierPacked { slot_bits } = file.encoding else {
            return Err(AggregateError::Layout(format!(
                "a Paillier key cannot decrypt the {:?} layout",
                file.encoding
            )));
        };
        let packing = Packing::new(slot_bits, pk.modulus_bits())
            .map_err(|e| AggregateError::Layout(e.to_string()))?;
        let expected = packing.plaintext_count(file.measurement.len());
        if file.ciphertexts.len() != expected {
            return Err(AggregateError::Layout(format!(
                "{} values in {slot_bits}-bit slots need {expected} ciphertexts, the file has {}",
                file.measurement.len(),
                file.ciphertexts.len()
            )));
        }
        let cts = file
            .ciphertexts
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                pk.ciphertext_from_bytes(bytes)
                    .map_err(|e| AggregateError::BadCiphertext {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((packing, cts))
    }

    /// Unpacks the plaintexts of `file`'s ciphertexts (in [0, n), as
    /// decryption or [`crate::threshold`] combination gives them) into
    /// its values, flagging slots no batch of valid reports fills that way,
    /// exactly as [`Decrypter::decrypt_flagged`] does.
    pub fn unpack_release(
        pk: &PublicKey<Integer>,
        file: &AggregateFile,
        plaintexts: Vec<Integer>,
    ) -> Result<Decryption, AggregateError> {
        let (packing, cts) = release_ciphertexts(pk, file)?;
        if plaintexts.len() != cts.len() {
            return Err(AggregateError::Layout(format!(
                "{} plaintexts for {} ciphertexts",
                plaintexts.len(),
                cts.len()
            )));
        }
        let signed: Vec<Integer> = plaintexts.into_iter().map(|m| pk.to_signed(m)).collect();
        unpack_flagged(&packing, &signed, file)
    }

    /// [`Packing::unpack_flagged`], with its errors in aggregate terms.
    fn unpack_flagged(
        packing: &Packing,
        plaintexts: &[Integer],
        file: &AggregateFile,
    ) -> Result<Decryption, AggregateError> {
        packing
            .unpack_flagged(plaintexts, file.measurement.len())
            .map_err(|e| match e {
                PackingError::Random {
                    plaintext,
                    flagged,
                    places,
                } => AggregateError::BadCiphertext {
                    index: plaintext,
                    reason: format!(
                        "it decrypts to random bits ({flagged} of its {places} slots do not \
                         fit the layout), not to a sum of reports: the file was damaged, or \
                         the ciphertext was not made under this task's layout"
                    ),
                },
                other => AggregateError::Layout(other.to_string()),
            })
    }
}
