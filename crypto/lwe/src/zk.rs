//! Input-validity proofs: TFHE-rs zk-pok (the "PKE v2" scheme, Libert's
//! proof of correct compact public-key encryption) that a compact list is a
//! well-formed encryption under the collector's key of values in
//! [0, 2^bits).
//!
//! The CRS fixes the LWE dimension, the noise bound, the plaintext modulus
//! t = 2^64 / Delta, the number of values per list and the number of zero
//! most-significant plaintext bits, which is how the value bound 2^bits is
//! expressed: t / 2^padding = 2^bits. A task makes its CRS once
//! ([`Crs::generate`]); the CRS's hash is part of the task definition.
//!
//! A proof is bound to `metadata` (the caller passes the task id, report id
//! and time), so it cannot be replayed for another report.
//!
//! [`ComputeLoad`] chooses who does the heavy pairing work: with
//! [`ComputeLoad::Proof`] the client computes more and the server verifies
//! faster. The server accepts one load only, chosen per task, so a client
//! cannot push the expensive side onto it.

use std::fmt;

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use tfhe::core_crypto::prelude::{
    encrypt_and_prove_lwe_compact_ciphertext_list_with_compact_public_key,
    verify_lwe_compact_ciphertext_list, LweCiphertextCount, LweCompactCiphertextList, LweDimension,
    LweSize,
};
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::zk::{
    CompactPkeCrs, CompactPkeCrsConformanceParams, CompactPkeProof,
    CompactPkeProofConformanceParams, CompactPkeZkScheme, ZkComputeLoad, ZkMSBZeroPaddingBitCount,
};

use super::{
    check_list_len, encryption_generator, native, noise_distribution, CiphertextList, Delta,
    LweError, ParameterSet, PublicKey,
};
use hetally_protocol::codec::{CodecError, Reader, Writer};

/// Largest serialized CRS accepted (a CRS for 2,048 values is about
/// 45 MB).
pub const MAX_CRS_BYTES: usize = 128 << 20;

/// Largest serialized proof accepted (proofs are a few KB).
pub const MAX_PROOF_BYTES: usize = 64 << 10;

/// Who does the heavier half of the proof work; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeLoad {
    /// The client computes more, verification is cheaper. The default.
    Proof,
    /// The client computes less, verification is more expensive.
    Verify,
}

impl ComputeLoad {
    fn to_tfhe(self) -> ZkComputeLoad {
        match self {
            ComputeLoad::Proof => ZkComputeLoad::Proof,
            ComputeLoad::Verify => ZkComputeLoad::Verify,
        }
    }

    fn other(self) -> Self {
        match self {
            ComputeLoad::Proof => ComputeLoad::Verify,
            ComputeLoad::Verify => ComputeLoad::Proof,
        }
    }

    /// The byte in encodings.
    pub fn to_byte(self) -> u8 {
        match self {
            ComputeLoad::Proof => 1,
            ComputeLoad::Verify => 2,
        }
    }

    /// Parses [`ComputeLoad::to_byte`].
    pub fn from_byte(b: u8) -> Result<Self, CodecError> {
        match b {
            1 => Ok(ComputeLoad::Proof),
            2 => Ok(ComputeLoad::Verify),
            _ => Err(CodecError::invalid(
                "compute load",
                format!("unknown byte {b}"),
            )),
        }
    }
}

/// A task's CRS, with the statement it proves; see the module docs.
#[derive(Clone)]
pub struct Crs {
    params: ParameterSet,
    delta: Delta,
    value_bits: u32,
    max_values: usize,
    inner: CompactPkeCrs,
    encoding: Vec<u8>,
    hash: [u8; 32],
}

impl Crs {
    /// Makes a CRS for lists of at most `max_values` values, each in
    /// [0, 2^value_bits), encrypted with `delta` under `params`.
    pub fn generate(
        params: ParameterSet,
        delta: Delta,
        value_bits: u32,
        max_values: usize,
        mut rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, LweError> {
        check_statement(params, delta, value_bits, max_values)?;
        let inner = CompactPkeCrs::new(
            LweDimension(params.lwe_dimension),
            LweCiphertextCount(max_values),
            noise_distribution(&params),
            native(),
            1u64 << delta.plaintext_bits(),
            ZkMSBZeroPaddingBitCount(u64::from(delta.plaintext_bits() - value_bits)),
            &mut rng,
        )
        .map_err(|e| LweError::Tfhe(e.to_string()))?;
        let mut serialized = Vec::new();
        safe_serialize(&inner, &mut serialized, MAX_CRS_BYTES as u64)
            .map_err(|e| LweError::Tfhe(format!("serializing the CRS: {e}")))?;
        Ok(Self::assemble(
            params,
            delta,
            value_bits,
            max_values,
            inner,
            &serialized,
        ))
    }

    fn assemble(
        params: ParameterSet,
        delta: Delta,
        value_bits: u32,
        max_values: usize,
        inner: CompactPkeCrs,
        serialized: &[u8],
    ) -> Self {
        let mut w = Writer::new();
        w.u8(params.id)
            .u8(delta.log2() as u8)
            .u8(value_bits as u8)
            .u32(max_values as u32)
            .var_bytes(serialized);
        let encoding = w.finish();
        let hash = Sha256::digest(&encoding).into();
        Crs {
            params,
            delta,
            value_bits,
            max_values,
            inner,
            encoding,
            hash,
        }
    }

    /// The encoding: parameter set byte, log2 Delta, value bits, `u32` list
    /// length, then TFHE-rs's versioned serialization of the CRS as a
    /// length-prefixed field.
    pub fn to_bytes(&self) -> &[u8] {
        &self.encoding
    }

    /// Decodes a CRS and checks that TFHE-rs's CRS proves exactly the
    /// statement in the header (conformance: dimension, list length, noise
    /// bound, modulus, plaintext modulus, padding bits, and that its curve
    /// points are usable).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let mut r = Reader::new(bytes);
        let params = ParameterSet::from_id(r.u8("TFHE parameter set")?)?;
        let delta = Delta::new(u32::from(r.u8("Delta")?))?;
        let value_bits = u32::from(r.u8("value bits")?);
        let max_values = r.u32("list length")? as usize;
        check_statement(params, delta, value_bits, max_values)?;
        let mut serialized = r.var_bytes(MAX_CRS_BYTES, "CRS")?;
        r.finish("CRS")?;
        let conformance = CompactPkeCrsConformanceParams::new(
            params.lwe_dimension,
            max_values,
            1u64 << params.noise_bound_log2,
            0, // the native modulus 2^64, as TFHE-rs encodes it
            1u64 << delta.plaintext_bits(),
            u64::from(delta.plaintext_bits() - value_bits),
        );
        let whole = serialized;
        let inner: CompactPkeCrs =
            safe_deserialize_conformant(&mut serialized, MAX_CRS_BYTES as u64, &conformance)
                .map_err(|e| CodecError::invalid("CRS", e))?;
        if !serialized.is_empty() {
            return Err(CodecError::TrailingBytes {
                what: "CRS",
                count: serialized.len(),
            }
            .into());
        }
        Ok(Self::assemble(
            params, delta, value_bits, max_values, inner, whole,
        ))
    }

    /// SHA-256 of the encoding.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The parameter set.
    pub fn params(&self) -> ParameterSet {
        self.params
    }

    /// Delta.
    pub fn delta(&self) -> Delta {
        self.delta
    }

    /// Values are proven to lie in [0, 2^value_bits).
    pub fn value_bits(&self) -> u32 {
        self.value_bits
    }

    /// The most values one proven list may hold.
    pub fn max_values(&self) -> usize {
        self.max_values
    }
}

impl fmt::Debug for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::Crs")
            .field("params", &self.params.tfhe_name)
            .field("delta_log2", &self.delta.log2())
            .field("value_bits", &self.value_bits)
            .field("max_values", &self.max_values)
            .field("bytes", &self.encoding.len())
            .field("hash", &hex::encode(&self.hash[..8]))
            .finish()
    }
}

fn check_statement(
    params: ParameterSet,
    delta: Delta,
    value_bits: u32,
    max_values: usize,
) -> Result<(), LweError> {
    if value_bits == 0 || value_bits >= delta.plaintext_bits() {
        return Err(LweError::Mismatch(format!(
            "values of {value_bits} bits do not fit a {}-bit plaintext space with room for sums",
            delta.plaintext_bits()
        )));
    }
    check_list_len(max_values, params.lwe_dimension)
}

/// A TFHE-rs zk-pok proof for one compact list.
#[derive(Clone)]
pub struct Proof {
    inner: CompactPkeProof,
}

impl Proof {
    /// TFHE-rs's versioned serialization of the proof.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serializing a proof into memory cannot fail: the size limit is
        // far above any proof and a Vec never refuses a write.
        safe_serialize(&self.inner, &mut out, MAX_PROOF_BYTES as u64)
            .expect("a proof serializes into a Vec");
        out
    }

    /// Decodes a proof made with `load`; proofs of the other load are
    /// rejected here, before any verification work.
    pub fn from_bytes(mut bytes: &[u8], load: ComputeLoad) -> Result<Self, LweError> {
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(CodecError::TooLong {
                what: "proof",
                len: bytes.len() as u64,
                max: MAX_PROOF_BYTES as u64,
            }
            .into());
        }
        let conformance = CompactPkeProofConformanceParams::new(CompactPkeZkScheme::V2)
            .forbid_compute_load(load.other().to_tfhe());
        let inner: CompactPkeProof =
            safe_deserialize_conformant(&mut bytes, MAX_PROOF_BYTES as u64, &conformance)
                .map_err(|e| CodecError::invalid("proof", e))?;
        if !bytes.is_empty() {
            return Err(CodecError::TrailingBytes {
                what: "proof",
                count: bytes.len(),
            }
            .into());
        }
        Ok(Proof { inner })
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::Proof").finish_non_exhaustive()
    }
}

fn check_crs(pk: &PublicKey, crs: &Crs) -> Result<(), LweError> {
    if crs.params != pk.params() {
        return Err(LweError::Mismatch(format!(
            "the CRS is for {}, the key for {}",
            crs.params.tfhe_name,
            pk.params().tfhe_name
        )));
    }
    Ok(())
}

impl PublicKey {
    /// Encrypts `values` (each in [0, 2^bits) of the CRS, at most its list
    /// length) into one compact list and proves it, bound to `metadata`.
    pub fn encrypt_and_prove(
        &self,
        crs: &Crs,
        values: &[u64],
        metadata: &[u8],
        load: ComputeLoad,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(CiphertextList, Proof), LweError> {
        check_crs(self, crs)?;
        check_list_len(values.len(), crs.max_values)?;
        for (index, &value) in values.iter().enumerate() {
            if value >> crs.value_bits != 0 {
                return Err(LweError::ValueOutOfRange {
                    index,
                    value,
                    bits: crs.value_bits,
                });
            }
        }
        self.prove_unchecked(crs, values, metadata, load, rng)
    }

    /// [`PublicKey::encrypt_and_prove`] without the range check: what a
    /// cheating client runs. Only for tests of the verifier. TFHE-rs may
    /// refuse (an error, or a panic, both returned as [`LweError::Tfhe`]) or
    /// produce a proof that must then fail [`PublicKey::verify`].
    #[doc(hidden)]
    pub fn encrypt_and_prove_unchecked(
        &self,
        crs: &Crs,
        values: &[u64],
        metadata: &[u8],
        load: ComputeLoad,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(CiphertextList, Proof), LweError> {
        check_crs(self, crs)?;
        check_list_len(values.len(), crs.max_values)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.prove_unchecked(crs, values, metadata, load, rng)
        }))
        .unwrap_or_else(|_| Err(LweError::Tfhe("TFHE-rs panicked while proving".into())))
    }

    fn prove_unchecked(
        &self,
        crs: &Crs,
        values: &[u64],
        metadata: &[u8],
        load: ComputeLoad,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(CiphertextList, Proof), LweError> {
        let n = self.params().lwe_dimension;
        let mut out = LweCompactCiphertextList::new(
            0u64,
            LweSize(n + 1),
            LweCiphertextCount(values.len()),
            native(),
        );
        let mut generator = encryption_generator(rng);
        let noise = noise_distribution(&self.params());
        let inner = encrypt_and_prove_lwe_compact_ciphertext_list_with_compact_public_key(
            self.key(),
            &mut out,
            &values.to_vec(),
            1u64 << crs.delta.log2(),
            noise,
            noise,
            generator.noise_generator_mut(),
            &crs.inner,
            metadata,
            load.to_tfhe(),
        )
        .map_err(|e| LweError::Tfhe(e.to_string()))?;
        Ok((
            CiphertextList {
                n,
                count: values.len(),
                data: out.into_container(),
            },
            Proof { inner },
        ))
    }

    /// Verifies that `list` is an encryption under this key of values in
    /// the CRS's range, bound to `metadata`.
    pub fn verify(
        &self,
        crs: &Crs,
        list: &CiphertextList,
        proof: &Proof,
        metadata: &[u8],
    ) -> Result<(), LweError> {
        check_crs(self, crs)?;
        if list.n != self.params().lwe_dimension {
            return Err(LweError::Mismatch("list dimension".into()));
        }
        check_list_len(list.count, crs.max_values)?;
        let outcome = verify_lwe_compact_ciphertext_list(
            &list.as_tfhe(),
            self.key(),
            &proof.inner,
            &crs.inner,
            metadata,
        );
        if outcome.is_valid() {
            Ok(())
        } else {
            Err(LweError::ProofRejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretKey, PKE_ZKV2_2048};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// A client that skips [`PublicKey::encrypt_and_prove`]'s range check
    /// and asks TFHE-rs directly to prove a value of 2 under a one-bit CRS
    /// gets no valid proof: TFHE-rs refuses or panics, or the proof fails
    /// verification.
    #[test]
    fn out_of_range_value_does_not_verify_even_when_proven_directly() {
        let mut rng = ChaCha20Rng::seed_from_u64(20);
        let sk = SecretKey::generate(PKE_ZKV2_2048, &mut rng);
        let pk = sk.public_key().clone();
        let delta = Delta::new(34).unwrap();
        let crs = Crs::generate(PKE_ZKV2_2048, delta, 1, 4, &mut rng).unwrap();
        let values = vec![0u64, 2, 1, 0];
        let mut generator = encryption_generator(&mut rng);
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out =
                LweCompactCiphertextList::new(0u64, LweSize(2049), LweCiphertextCount(4), native());
            let noise = noise_distribution(&PKE_ZKV2_2048);
            let proof = encrypt_and_prove_lwe_compact_ciphertext_list_with_compact_public_key(
                pk.key(),
                &mut out,
                &values,
                1u64 << delta.log2(),
                noise,
                noise,
                generator.noise_generator_mut(),
                &crs.inner,
                b"m",
                ZkComputeLoad::Proof,
            );
            (out.into_container(), proof)
        }));
        match attempt {
            Err(_) | Ok((_, Err(_))) => {}
            Ok((data, Ok(inner))) => {
                let list = CiphertextList {
                    n: 2048,
                    count: 4,
                    data,
                };
                assert_eq!(sk.decrypt(&list, 1, delta).unwrap(), vec![0, 2, 1, 0]);
                assert!(matches!(
                    pk.verify(&crs, &list, &Proof { inner }, b"m"),
                    Err(LweError::ProofRejected)
                ));
            }
        }
    }
}
