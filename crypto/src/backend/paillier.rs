//! The Paillier backend: packed slots, one ciphertext multiplication per
//! ciphertext per report.
//!
//! Payload (client to server) of a task without input proofs: `u32`
//! ciphertext count, then that many packed ciphertexts of exactly
//! `ciphertext_len` bytes. With input proofs (the default for new tasks),
//! the payload is [`crate::proofs`]'s proof-carrying encoding: one
//! ciphertext per bit with a 0/1 proof each; after verification the server
//! derives the packed ciphertexts from the bit ciphertexts
//! (prod c_i^(2^offset_i)).
//!
//! Stored form, either way: the packed ciphertexts alone, concatenated. A
//! partial sum has the same shape as a stored payload, so summing, merging
//! and releasing do not depend on proofs.

use rayon::prelude::*;
use rug::integer::Order;
use rug::Integer;

use super::{AdditiveBackend, BackendError, PartialSum, ReportContext};
use crate::aggregate::Encoding;
use crate::codec::{Reader, Writer};
use crate::dp::{DpMechanism, Noise};
use crate::keyfile::Scheme;
use crate::measurement::Measurement;
use crate::paillier::{Ciphertext, Packing, PublicKey, MAX_SLOT_BITS};
use crate::proofs::InputProofs;
use rand_core::CryptoRngCore;

/// Per-value probability that DP noise exceeds the slot headroom: 2^-64.
const NOISE_TAIL_LOG2: u32 = 64;

/// The slot width a task needs: room for `max_batch_size` reports at the
/// type's largest value, plus DP noise up to a bound it exceeds with
/// probability below 2^-64 per value, plus a sign bit and a bit of margin.
pub(super) fn slot_bits(
    pk: &PublicKey,
    measurement: &Measurement,
    dp: &DpMechanism,
    max_batch_size: u64,
) -> Result<u32, BackendError> {
    let noise =
        Noise::for_measurement(measurement, dp).map_err(|e| BackendError::Config(e.to_string()))?;
    let mut max_abs = Integer::from(max_batch_size) * measurement.max_value();
    max_abs += noise.tail_bound(NOISE_TAIL_LOG2);
    let packing = Packing::for_max_abs(&max_abs, pk.modulus_bits()).map_err(|_| {
        BackendError::Config(format!(
            "a batch of up to {max_batch_size} reports plus DP noise needs slots wider than {MAX_SLOT_BITS} bits: lower the max batch size"
        ))
    })?;
    Ok(packing.slot_bits())
}

/// See the module docs.
#[derive(Debug)]
pub struct PaillierBackend {
    pk: PublicKey,
    measurement: Measurement,
    packing: Packing,
    ciphertext_count: usize,
    /// Set when reports must carry input proofs.
    proofs: Option<InputProofs>,
}

impl PaillierBackend {
    /// The backend for a task with this key, measurement and slot width;
    /// with `input_proofs`, payloads carry proofs of validity.
    pub fn new(
        pk: PublicKey,
        measurement: Measurement,
        slot_bits: u32,
        input_proofs: bool,
    ) -> Result<Self, BackendError> {
        let packing = Packing::new(slot_bits, pk.modulus_bits())
            .map_err(|e| BackendError::Config(e.to_string()))?;
        let ciphertext_count = packing.plaintext_count(measurement.len());
        let proofs = input_proofs
            .then(|| InputProofs::new(pk.clone(), measurement))
            .transpose()?;
        pk.precompute();
        Ok(PaillierBackend {
            pk,
            measurement,
            packing,
            ciphertext_count,
            proofs,
        })
    }

    /// The stored form of a verified report: its value ciphertexts packed
    /// into slots, P = prod_k V_k^(2^(w k)) per plaintext, by Horner's rule
    /// from the last slot (w squarings per slot).
    fn pack_ciphertexts(&self, values: &[Ciphertext]) -> Vec<u8> {
        let n2 = self.pk.n_squared();
        let w = self.packing.slot_bits();
        let packed: Vec<Integer> = values
            .chunks(self.packing.slots_per_plaintext() as usize)
            .map(|chunk| {
                let mut acc = Integer::from(1);
                for v in chunk.iter().rev() {
                    if acc != 1 {
                        for _ in 0..w {
                            acc.square_mut();
                            acc %= n2;
                        }
                    }
                    acc *= v.as_integer();
                    acc %= n2;
                }
                acc
            })
            .collect();
        self.encode_cts(&packed)
    }

    /// Ciphertexts per report.
    pub fn ciphertext_count(&self) -> usize {
        self.ciphertext_count
    }

    fn stored_len(&self) -> usize {
        self.ciphertext_count * self.pk.ciphertext_len()
    }

    /// Parses stored (already validated) ciphertexts without the gcd check.
    fn parse_stored(&self, stored: &[u8]) -> Result<Vec<Integer>, BackendError> {
        if stored.len() != self.stored_len() {
            return Err(BackendError::Corrupt(format!(
                "stored sum has {} bytes, the layout needs {}",
                stored.len(),
                self.stored_len()
            )));
        }
        Ok(stored
            .chunks_exact(self.pk.ciphertext_len())
            .map(|c| Integer::from_digits(c, Order::Msf))
            .collect())
    }

    fn encode_cts(&self, cts: &[Integer]) -> Vec<u8> {
        let len = self.pk.ciphertext_len();
        let mut out = Vec::with_capacity(cts.len() * len);
        for c in cts {
            out.extend_from_slice(&crate::paillier::to_fixed_bytes(c, len));
        }
        out
    }

    fn mul_into(&self, acc: &mut [Integer], other: &[Integer]) {
        for (a, b) in acc.iter_mut().zip(other) {
            *a *= b;
            *a %= self.pk.n_squared();
        }
    }
}

impl AdditiveBackend for PaillierBackend {
    fn scheme(&self) -> Scheme {
        Scheme::Paillier
    }

    fn measurement(&self) -> Measurement {
        self.measurement
    }

    fn encoding(&self) -> Encoding {
        Encoding::PaillierPacked {
            slot_bits: self.packing.slot_bits(),
        }
    }

    fn key_fingerprint(&self) -> [u8; 32] {
        self.pk.fingerprint()
    }

    fn max_payload_len(&self) -> usize {
        match &self.proofs {
            Some(p) => p.payload_len(),
            None => 4 + self.stored_len(),
        }
    }

    fn input_proofs(&self) -> bool {
        self.proofs.is_some()
    }

    fn encrypt(
        &self,
        values: &[u64],
        ctx: &ReportContext<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, BackendError> {
        if let Some(proofs) = &self.proofs {
            return Ok(proofs.prove(values, ctx, rng)?);
        }
        self.measurement.validate(values)?;
        let plaintexts = self
            .packing
            .pack_u64(values)
            .map_err(|e| BackendError::Config(e.to_string()))?;
        let mut w = Writer::new();
        w.count(plaintexts.len());
        for p in &plaintexts {
            let c = self
                .pk
                .encrypt(p, rng)
                .map_err(|e| BackendError::Config(e.to_string()))?;
            w.bytes(&self.pk.ciphertext_to_bytes(&c));
        }
        Ok(w.finish())
    }

    fn check_payload(
        &self,
        payload: &[u8],
        ctx: &ReportContext<'_>,
    ) -> Result<Vec<u8>, BackendError> {
        if let Some(proofs) = &self.proofs {
            let values = proofs.verify(payload, ctx)?;
            return Ok(self.pack_ciphertexts(&values));
        }
        let mut r = Reader::new(payload);
        let got = r.u32("ciphertext count")? as usize;
        if got != self.ciphertext_count {
            return Err(BackendError::WrongCiphertextCount {
                expected: self.ciphertext_count,
                got,
            });
        }
        let len = self.pk.ciphertext_len();
        let mut stored = Vec::with_capacity(self.stored_len());
        for index in 0..got {
            let bytes = r.bytes(len, "ciphertext")?;
            self.pk
                .ciphertext_from_bytes(bytes)
                .map_err(|e| BackendError::InvalidCiphertext {
                    index,
                    reason: e.to_string(),
                })?;
            stored.extend_from_slice(bytes);
        }
        r.finish("payload")?;
        Ok(stored)
    }

    fn check_payloads(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<u8>, BackendError>> {
        match &self.proofs {
            Some(proofs) => proofs
                .verify_batch(reports)
                .into_par_iter()
                .map(|r| Ok(self.pack_ciphertexts(&r?)))
                .collect(),
            None => reports
                .par_iter()
                .map(|(payload, ctx)| self.check_payload(payload, ctx))
                .collect(),
        }
    }

    fn empty_sum(&self) -> PartialSum {
        let ones = vec![Integer::from(1); self.ciphertext_count];
        PartialSum {
            report_count: 0,
            data: self.encode_cts(&ones),
        }
    }

    fn sum(&self, stored: &[Vec<u8>]) -> Result<PartialSum, BackendError> {
        let identity = || vec![Integer::from(1); self.ciphertext_count];
        let acc = stored
            .par_iter()
            .try_fold(identity, |mut acc, s| {
                let cts = self.parse_stored(s)?;
                self.mul_into(&mut acc, &cts);
                Ok::<_, BackendError>(acc)
            })
            .try_reduce(identity, |mut a, b| {
                self.mul_into(&mut a, &b);
                Ok(a)
            })?;
        Ok(PartialSum {
            report_count: stored.len() as u64,
            data: self.encode_cts(&acc),
        })
    }

    fn merge(&self, a: &PartialSum, b: &PartialSum) -> Result<PartialSum, BackendError> {
        let mut acc = self.parse_stored(&a.data)?;
        self.mul_into(&mut acc, &self.parse_stored(&b.data)?);
        Ok(PartialSum {
            report_count: a.report_count + b.report_count,
            data: self.encode_cts(&acc),
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
        let mut acc = self.parse_stored(&sum.data)?;
        if noise.iter().any(|v| *v != 0) {
            let noise: Vec<Integer> = noise.iter().map(|v| Integer::from(*v)).collect();
            let packed = self
                .packing
                .pack(&noise)
                .map_err(|e| BackendError::Config(format!("noise does not fit the slots: {e}")))?;
            for (a, p) in acc.iter_mut().zip(&packed) {
                let c: Ciphertext = self
                    .pk
                    .encrypt_signed(p, rng)
                    .map_err(|e| BackendError::Config(e.to_string()))?;
                *a *= c.as_integer();
                *a %= self.pk.n_squared();
            }
        }
        let len = self.pk.ciphertext_len();
        Ok(acc
            .iter()
            .map(|c| crate::paillier::to_fixed_bytes(c, len))
            .collect())
    }
}
