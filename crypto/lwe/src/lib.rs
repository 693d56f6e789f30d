//! The TFHE (LWE) additive scheme, on TFHE-rs `core_crypto`.
//!
//! Clients encrypt a vector of small counters with the collector's
//! [`PublicKey`] (a TFHE-rs `LweCompactPublicKey`) into compact ciphertext
//! lists of at most n = 2,048 values each, value m encoded as m * Delta mod
//! 2^64 ([`Delta`]). Summing lists is element-wise wrapping addition of
//! their u64 words: a compact list (one mask polynomial and one body per
//! value) expands linearly into LWE ciphertexts, so the sum of compact lists
//! expands to the sum of the expanded ciphertexts, and the server never
//! expands anything. No bootstrapping is ever needed. The collector
//! expands the final sum, decrypts with its [`SecretKey`], removes the
//! known bias of the public key's error (see [`params`] for why it is
//! there and how big a sum may get) and rounds.
//!
//! Inputs can carry a TFHE-rs zk-pok proof ([`zk`]) that every plaintext
//! lies in [0, 2^bits): the CRS is made once per task.
//!
//! Parameters are TFHE-rs's published compact-public-key sets
//! ([`PKE_ZKV2_2048`]); nothing here invents LWE parameters. docs/tfhe.md
//! explains the design and gives the measured costs.

#![forbid(unsafe_code)]

pub mod params;
pub mod scheme;
pub mod threshold;
pub mod zk;

use std::fmt;
use std::sync::{Arc, OnceLock};

use rand_core::CryptoRngCore;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tfhe::core_crypto::algorithms::slice_algorithms::slice_semi_reverse_negacyclic_convolution;
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::{
    allocate_and_generate_new_binary_lwe_secret_key,
    allocate_and_generate_new_lwe_compact_public_key, decrypt_lwe_ciphertext_list,
    encrypt_lwe_compact_ciphertext_list_with_compact_public_key, CiphertextModulus,
    DefaultRandomGenerator, EncryptionRandomGenerator, LweCiphertextCount,
    LweCompactCiphertextList, LweCompactPublicKey, LweCompactPublicKeyOwned, LweSecretKey,
    LweSecretKeyOwned, LweSize, PlaintextCount, PlaintextList, SecretRandomGenerator, TUniform,
};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
pub use params::{Delta, ParameterSet, MAX_VALUES_PER_RELEASE, PKE_ZKV2_2048};
pub use zk::{ComputeLoad, Crs, Proof};

/// Errors from LWE operations and from decoding LWE material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LweError {
    /// An encoding names a parameter set this build does not know.
    #[error("unknown TFHE parameter set {0} (this build knows set 1, {name})", name = PKE_ZKV2_2048.tfhe_name)]
    UnknownParameterSet(u8),
    /// Delta is outside the supported range.
    #[error("Delta 2^{0} is not supported: use 2^{min}..=2^{max}", min = Delta::MIN_LOG2, max = Delta::MAX_LOG2)]
    BadDelta(u32),
    /// A sum would hold more encryptions than the noise allows.
    #[error(
        "{encryptions} encryptions in one sum exceed the capacity of {max} at this Delta \
         (failure probability 2^-40): release smaller batches or use a larger Delta"
    )]
    CapacityExceeded {
        /// Encryptions asked for.
        encryptions: u64,
        /// The most this Delta holds.
        max: u64,
    },
    /// Two things that must have the same length do not.
    #[error("length mismatch: expected {expected} values, got {got}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A list would carry more values than the LWE dimension allows.
    #[error("{count} values do not fit one compact list (at most {max})")]
    TooManyValues {
        /// Values given.
        count: usize,
        /// The most one list carries.
        max: usize,
    },
    /// A value is outside the range a proof or the plaintext space allows.
    #[error("value {index} ({value}) is outside [0, 2^{bits})")]
    ValueOutOfRange {
        /// Position.
        index: usize,
        /// The value.
        value: u64,
        /// Bits allowed.
        bits: u32,
    },
    /// Key material is inconsistent.
    #[error("invalid TFHE key: {0}")]
    InvalidKey(String),
    /// Key, CRS or ciphertext belong to different parameters.
    #[error("mismatched TFHE parameters: {0}")]
    Mismatch(String),
    /// TFHE-rs refused an operation (proof generation, CRS generation).
    #[error("TFHE-rs error: {0}")]
    Tfhe(String),
    /// A zero-knowledge proof did not verify.
    #[error("the input proof does not verify: the ciphertext is malformed, a value is out of range, or the proof is for another list, key, CRS or report")]
    ProofRejected,
    /// Malformed encoding.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

fn native() -> CiphertextModulus<u64> {
    CiphertextModulus::new_native()
}

fn noise_distribution(params: &ParameterSet) -> TUniform<u64> {
    TUniform::new(params.noise_bound_log2)
}

/// Seeds TFHE-rs's generators from the caller's RNG: a 128-bit seed for an
/// AES-CTR CSPRNG, as TFHE-rs's own seeders do.
fn seed_from(rng: &mut dyn CryptoRngCore) -> Seed {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    Seed(u128::from_le_bytes(bytes))
}

fn encryption_generator(
    rng: &mut dyn CryptoRngCore,
) -> EncryptionRandomGenerator<DefaultRandomGenerator> {
    let mut seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(seed_from(rng));
    EncryptionRandomGenerator::new(seed_from(rng), &mut seeder)
}

/// The collector's LWE compact public key. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<PublicKeyInner>,
}

struct PublicKeyInner {
    params: ParameterSet,
    key: LweCompactPublicKeyOwned<u64>,
    /// Set for a threshold public key (file kind 4): its key is split
    /// among trustees ([`threshold`]).
    trustees: Option<Trustees>,
    fingerprint: [u8; 32],
}

/// What a TFHE threshold public key declares beside the key itself
/// (docs/protocol.md section 6.10): the key is split N-of-N among
/// `count` trustees, and tasks under it take a Delta large enough for
/// partial decryptions smudged to at least `min_lambda` bits of
/// statistical security ([`threshold::smudging`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trustees {
    /// N: every one of them takes part in every decryption.
    pub count: u16,
    /// The least smudging lambda a partial decryption may have.
    pub min_lambda: u8,
}

impl PublicKey {
    fn from_key(params: ParameterSet, key: LweCompactPublicKeyOwned<u64>) -> Self {
        Self::build(params, key, None)
    }

    fn build(
        params: ParameterSet,
        key: LweCompactPublicKeyOwned<u64>,
        trustees: Option<Trustees>,
    ) -> Self {
        let mut pk = PublicKey {
            inner: Arc::new(PublicKeyInner {
                params,
                key,
                trustees,
                fingerprint: [0; 32],
            }),
        };
        let fingerprint: [u8; 32] = Sha256::digest(pk.to_bytes()).into();
        // The Arc was created just above and not shared yet.
        Arc::get_mut(&mut pk.inner)
            .expect("fresh Arc is unique")
            .fingerprint = fingerprint;
        pk
    }

    /// The parameter set.
    pub fn params(&self) -> ParameterSet {
        self.inner.params
    }

    /// SHA-256 of the public key file encoding.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint
    }

    /// The same key, declared as a threshold key of `trustees` (a
    /// different file, so a different fingerprint). Checks the trustee
    /// count and that `min_lambda` is at most
    /// [`threshold::TARGET_LAMBDA`].
    pub fn with_trustees(&self, trustees: Trustees) -> Result<Self, LweError> {
        threshold::check_declaration(trustees)?;
        Ok(Self::build(
            self.inner.params,
            self.inner.key.clone(),
            Some(trustees),
        ))
    }

    /// For a threshold public key: its trustees. `None` for a key with one
    /// holder.
    pub fn trustees(&self) -> Option<Trustees> {
        self.inner.trustees
    }

    fn key(&self) -> &LweCompactPublicKeyOwned<u64> {
        &self.inner.key
    }

    /// Appends the key body: parameter set byte, then the 2n words of the
    /// key (mask polynomial, body polynomial), big-endian.
    pub fn encode_body(&self, w: &mut Writer) {
        w.u8(self.inner.params.id);
        for &x in self.inner.key.as_ref() {
            w.u64(x);
        }
    }

    /// Decodes a body written by [`PublicKey::encode_body`]. Every 64-bit
    /// word is a valid element of Z_{2^64}, so only the length is checked.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, LweError> {
        let params = ParameterSet::from_id(r.u8("TFHE parameter set")?)?;
        let words = read_words(r, 2 * params.lwe_dimension, "TFHE public key")?;
        let key = LweCompactPublicKey::from_container(words, native());
        Ok(PublicKey::from_key(params, key))
    }

    /// The public key file encoding (header, scheme byte, body; for a
    /// threshold key kind 4, then the trustee count and the least lambda).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let kind = match self.inner.trustees {
            Some(_) => FileKind::ThresholdPublicKey,
            None => FileKind::PublicKey,
        };
        keyfile::write_key_header(&mut w, kind, Scheme::Tfhe);
        self.encode_body(&mut w);
        if let Some(t) = self.inner.trustees {
            w.u16(t.count).u8(t.min_lambda);
        }
        w.finish()
    }

    /// Encrypts at most n signed values (reduced mod the plaintext space)
    /// into one compact list, without a proof. Used for DP noise and for
    /// tasks without input proofs.
    pub fn encrypt(
        &self,
        values: &[i128],
        delta: Delta,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<CiphertextList, LweError> {
        let params = self.params();
        let n = params.lwe_dimension;
        check_list_len(values.len(), n)?;
        let encoded: Vec<u64> = values.iter().map(|&v| delta.encode(v)).collect();
        let plaintexts = PlaintextList::from_container(encoded);
        let mut out = LweCompactCiphertextList::new(
            0u64,
            LweSize(n + 1),
            LweCiphertextCount(values.len()),
            native(),
        );
        let mut generator = encryption_generator(rng);
        let noise = noise_distribution(&params);
        encrypt_lwe_compact_ciphertext_list_with_compact_public_key(
            self.key(),
            &mut out,
            &plaintexts,
            noise,
            noise,
            generator.noise_generator_mut(),
        );
        Ok(CiphertextList {
            n,
            count: values.len(),
            data: out.into_container(),
        })
    }

    /// Encrypts any number of unsigned values as [`list_lengths`] lists.
    pub fn encrypt_vector(
        &self,
        values: &[u64],
        delta: Delta,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<CiphertextList>, LweError> {
        let mut out = Vec::new();
        let mut rest = values;
        for len in list_lengths(values.len(), self.params().lwe_dimension) {
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let signed: Vec<i128> = chunk.iter().map(|&v| i128::from(v)).collect();
            out.push(self.encrypt(&signed, delta, rng)?);
        }
        Ok(out)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fingerprint == other.inner.fingerprint
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::PublicKey")
            .field("params", &self.inner.params.tfhe_name)
            .field("fingerprint", &hex::encode(&self.inner.fingerprint[..8]))
            .finish()
    }
}

/// How a vector of `total` values is split into compact lists of at most
/// `max` values: as few lists as possible, of nearly equal lengths.
pub fn list_lengths(total: usize, max: usize) -> Vec<usize> {
    if total == 0 || max == 0 {
        return Vec::new();
    }
    let lists = total.div_ceil(max);
    let base = total / lists;
    let extra = total % lists;
    (0..lists).map(|i| base + usize::from(i < extra)).collect()
}

fn check_list_len(len: usize, max: usize) -> Result<(), LweError> {
    if len == 0 {
        return Err(LweError::LengthMismatch {
            expected: 1,
            got: 0,
        });
    }
    if len > max {
        return Err(LweError::TooManyValues { count: len, max });
    }
    Ok(())
}

fn read_words(r: &mut Reader<'_>, count: usize, what: &'static str) -> Result<Vec<u64>, LweError> {
    let raw = r.bytes(count * 8, what)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            u64::from_be_bytes(word)
        })
        .collect())
}

impl PublicKey {
    /// Decodes and validates a public key file, plain or threshold.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let mut r = Reader::new(bytes);
        let (scheme, threshold) = keyfile::read_public_key_header(&mut r)?;
        if scheme != Scheme::Tfhe {
            return Err(
                CodecError::invalid("scheme", format!("a {scheme} key is not a TFHE key")).into(),
            );
        }
        let key = Self::decode_body(&mut r)?;
        let key = if threshold {
            let trustees = Trustees {
                count: r.u16("trustee count")?,
                min_lambda: r.u8("least smudging lambda")?,
            };
            key.with_trustees(trustees)?
        } else {
            key
        };
        r.finish("public key file")?;
        Ok(key)
    }
}

impl SecretKey {
    /// The secret key file: framing, then body. Holds secret material:
    /// write it only with `keyfile::write_private_file`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::SecretKey, Scheme::Tfhe);
        self.encode_body(&mut w);
        w.finish()
    }

    /// Decodes and validates a secret key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let mut r = Reader::new(bytes);
        let scheme = keyfile::read_key_header(&mut r, FileKind::SecretKey)?;
        if scheme != Scheme::Tfhe {
            return Err(
                CodecError::invalid("scheme", format!("a {scheme} key is not a TFHE key")).into(),
            );
        }
        let key = Self::decode_body(&mut r)?;
        r.finish("secret key file")?;
        Ok(key)
    }
}

/// The collector's LWE secret key (binary, n bits) with its public key.
/// Zeroized on drop; `Debug` shows only the public fingerprint.
pub struct SecretKey {
    key: LweSecretKeyOwned<u64>,
    public: PublicKey,
    /// E_j for every value position, see [`params`]; computed on first use.
    bias: OnceLock<Vec<i64>>,
}

impl SecretKey {
    /// Generates a key pair for `params` from `rng`.
    pub fn generate(params: ParameterSet, rng: &mut dyn CryptoRngCore) -> Self {
        let mut secret_generator =
            SecretRandomGenerator::<DefaultRandomGenerator>::new(seed_from(rng));
        let key = allocate_and_generate_new_binary_lwe_secret_key(
            tfhe::core_crypto::prelude::LweDimension(params.lwe_dimension),
            &mut secret_generator,
        );
        let mut generator = encryption_generator(rng);
        let pk = allocate_and_generate_new_lwe_compact_public_key(
            &key,
            noise_distribution(&params),
            native(),
            &mut generator,
        );
        SecretKey {
            key,
            public: PublicKey::from_key(params, pk),
            bias: OnceLock::new(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The parameter set.
    pub fn params(&self) -> ParameterSet {
        self.public.params()
    }

    /// Appends the secret body: the public key body, then the n key bits
    /// as bytes 0 or 1.
    pub fn encode_body(&self, w: &mut Writer) {
        self.public.encode_body(w);
        for &bit in self.key.as_ref() {
            // Every coefficient of a binary key is 0 or 1.
            w.u8(bit as u8);
        }
    }

    /// Decodes a body written by [`SecretKey::encode_body`] and checks the
    /// pair: every coefficient of the public key's error b - a*s must lie
    /// within the parameter set's noise bound, which is what the capacity
    /// analysis assumes.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, LweError> {
        let public = PublicKey::decode_body(r)?;
        let n = public.params().lwe_dimension;
        let raw = r.bytes(n, "TFHE secret key")?;
        let mut bits = Vec::with_capacity(n);
        for &b in raw {
            if b > 1 {
                return Err(LweError::InvalidKey(
                    "secret key coefficients must be 0 or 1".into(),
                ));
            }
            bits.push(u64::from(b));
        }
        let sk = SecretKey {
            key: LweSecretKey::from_container(bits),
            public,
            bias: OnceLock::new(),
        };
        let bound = 1i64 << sk.params().noise_bound_log2;
        if sk.public_key_error().iter().any(|e| e.abs() > bound) {
            return Err(LweError::InvalidKey(
                "the public key does not belong to this secret key".into(),
            ));
        }
        Ok(sk)
    }

    /// The public key's error e = b - a*s, coefficient-wise, as signed
    /// integers.
    fn public_key_error(&self) -> Vec<i64> {
        let n = self.params().lwe_dimension;
        let (mask, body) = self.public.key().get_mask_and_body();
        let mut a_s = vec![0u64; n];
        slice_semi_reverse_negacyclic_convolution(&mut a_s, mask.as_ref(), self.key.as_ref());
        body.as_ref()
            .iter()
            .zip(&a_s)
            .map(|(&b, &x)| b.wrapping_sub(x) as i64)
            .collect()
    }

    /// E_j of the module docs of [`params`]: the phase of value j in the
    /// encryption of zero with randomness r = (1, ..., 1) and no e1, e2.
    /// Encryption is linear in r, so an honest encryption's mean phase
    /// offset is E_j / 2.
    pub fn bias(&self) -> &[i64] {
        self.bias.get_or_init(|| {
            let n = self.params().lwe_dimension;
            let ones = vec![1u64; n];
            let (mask, body) = self.public.key().get_mask_and_body();
            let mut data = vec![0u64; 2 * n];
            let (out_mask, out_body) = data.split_at_mut(n);
            slice_semi_reverse_negacyclic_convolution(out_mask, mask.as_ref(), &ones);
            let mut body_conv = vec![0u64; n];
            slice_semi_reverse_negacyclic_convolution(&mut body_conv, body.as_ref(), &ones);
            // TFHE-rs writes the body of value j from the reversed
            // convolution (see encrypt_lwe_compact_ciphertext_list_*_impl).
            for (dst, src) in out_body.iter_mut().zip(body_conv.iter().rev()) {
                *dst = *src;
            }
            let list = CiphertextList { n, count: n, data };
            self.phases(&list).into_iter().map(|p| p as i64).collect()
        })
    }

    /// The raw phases body - <mask, s> of every value of `list`, before
    /// any bias removal or rounding (diagnostics and tests).
    pub fn phases(&self, list: &CiphertextList) -> Vec<u64> {
        phases_under(list, self.key.as_ref())
    }

    /// The n key bits as words (what [`threshold::deal_shares`] shares).
    pub(crate) fn key_words(&self) -> &[u64] {
        self.key.as_ref()
    }

    /// The bias pair (E_j, trunc(E_j / 2)) of every value position as
    /// elements of Z_{2^64}: what [`bias_offset`] turns into the mean bias
    /// of a sum. Secret (E reveals the public key's error, hence the key).
    pub(crate) fn bias_words(&self) -> (Zeroizing<Vec<u64>>, Zeroizing<Vec<u64>>) {
        let bias = self.bias();
        // Two's complement: the cast is the reduction mod 2^64.
        let full = bias.iter().map(|&e| e as u64).collect();
        let half = bias.iter().map(|&e| (e / 2) as u64).collect();
        (Zeroizing::new(full), Zeroizing::new(half))
    }

    /// Decrypts a sum of `encryptions` honest encryptions (reports plus the
    /// release's noise list): removes the mean bias K * E_j / 2 (truncated
    /// towards zero; being off by one is nothing against Delta >= 2^27) and
    /// rounds to the nearest multiple of Delta. Refuses sums larger than
    /// the capacity of Delta.
    ///
    /// This is the one-trustee case of [`threshold`]: the key's part of
    /// every phase (`key_terms`) is computed whole here, and the last step
    /// (`decode_values`) is the one [`threshold::combine`] runs on the sum
    /// of the trustees' partial decryptions.
    pub fn decrypt(
        &self,
        list: &CiphertextList,
        encryptions: u64,
        delta: Delta,
    ) -> Result<Vec<i128>, LweError> {
        check_decryptable(list, self.params(), encryptions, delta)?;
        let (bias, half) = self.bias_words();
        let terms = key_terms(list, self.key.as_ref(), &bias, &half, encryptions);
        Ok(decode_values(list, &terms, delta))
    }
}

/// Checks that `list` belongs to `params` and that a sum of `encryptions`
/// encryptions decrypts safely at `delta` (the capacity of [`params`]).
pub(crate) fn check_decryptable(
    list: &CiphertextList,
    params: ParameterSet,
    encryptions: u64,
    delta: Delta,
) -> Result<(), LweError> {
    if list.n != params.lwe_dimension {
        return Err(LweError::Mismatch(format!(
            "the list has dimension {}, the key {}",
            list.n, params.lwe_dimension
        )));
    }
    let max = params.max_encryptions(delta);
    if encryptions > max {
        return Err(LweError::CapacityExceeded { encryptions, max });
    }
    Ok(())
}

/// body_j - <mask_j, key> for every value j of `list`, with TFHE-rs's
/// expansion and decryption. `key` is any vector of n words: the binary
/// secret key, or an additive share of it over Z_{2^64} (the inner product
/// is Z_{2^64}-linear in the key, which is what threshold decryption uses).
pub(crate) fn phases_under(list: &CiphertextList, key: &[u64]) -> Vec<u64> {
    let expanded = list.as_tfhe().par_expand_into_lwe_ciphertext_list();
    let mut out = PlaintextList::new(0u64, PlaintextCount(list.count));
    decrypt_lwe_ciphertext_list(&LweSecretKey::from_container(key), &expanded, &mut out);
    out.into_container()
}

/// The mean bias of a sum of `encryptions` encryptions in one value, K *
/// E_j / 2 truncated towards zero, mod 2^64, written as the Z_{2^64}-linear
/// function floor(K/2) * E_j + (K mod 2) * trunc(E_j / 2) of the bias pair
/// ([`SecretKey::bias_words`]). The two agree because K * E_j and E_j have
/// the same sign. Linear, so additive shares of the pair give additive
/// shares of the bias without anyone learning E_j.
pub(crate) fn bias_offset(encryptions: u64, bias: u64, half_bias: u64) -> u64 {
    (encryptions / 2)
        .wrapping_mul(bias)
        .wrapping_add((encryptions % 2).wrapping_mul(half_bias))
}

/// The key's part of the phase of every value j of `list`: t_j = <mask_j,
/// key> + [`bias_offset`]`(K, bias_j, half_bias_j)`, mod 2^64, so that
/// body_j - t_j is Delta * m_j plus zero-mean noise. With the whole key
/// and bias pair this is the key holder's decryption; with additive shares
/// of both it is a trustee's share of t_j, and the shares sum to t_j.
pub(crate) fn key_terms(
    list: &CiphertextList,
    key: &[u64],
    bias: &[u64],
    half_bias: &[u64],
    encryptions: u64,
) -> Zeroizing<Vec<u64>> {
    let mut terms = Zeroizing::new(phases_under(list, key));
    for (j, t) in terms.iter_mut().enumerate() {
        // body - (body - <a, key>) = <a, key>.
        let inner = list.body(j).wrapping_sub(*t);
        *t = inner.wrapping_add(bias_offset(encryptions, bias[j], half_bias[j]));
    }
    terms
}

/// The last step of every decryption: value j is round((body_j - t_j) /
/// Delta), with t_j the key's part of the phase ([`key_terms`], or the sum
/// of the trustees' partial decryptions in [`threshold::combine`]).
pub(crate) fn decode_values(list: &CiphertextList, terms: &[u64], delta: Delta) -> Vec<i128> {
    terms
        .iter()
        .enumerate()
        .map(|(j, &t)| delta.decode(list.body(j).wrapping_sub(t)))
        .collect()
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.key.as_mut().zeroize();
        // E_j reveals the public key's error, and with it the key.
        if let Some(bias) = self.bias.get_mut() {
            bias.zeroize();
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::SecretKey")
            .field("public", &self.public)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A compact ciphertext list: one mask polynomial of n words, then one body
/// word per value. Sums of lists are lists of the same shape.
#[derive(Clone, PartialEq, Eq)]
pub struct CiphertextList {
    n: usize,
    count: usize,
    data: Vec<u64>,
}

impl CiphertextList {
    /// The list of `count` trivial encryptions of zero (all words zero):
    /// the neutral element of [`CiphertextList::add_assign`].
    pub fn zero(params: ParameterSet, count: usize) -> Result<Self, LweError> {
        check_list_len(count, params.lwe_dimension)?;
        Ok(CiphertextList {
            n: params.lwe_dimension,
            count,
            data: vec![0; params.lwe_dimension + count],
        })
    }

    /// The list of `count` values whose n + count words are `words` (mask
    /// polynomial, then bodies).
    pub fn from_words(
        params: ParameterSet,
        count: usize,
        words: Vec<u64>,
    ) -> Result<Self, LweError> {
        check_list_len(count, params.lwe_dimension)?;
        if words.len() != params.lwe_dimension + count {
            return Err(LweError::LengthMismatch {
                expected: params.lwe_dimension + count,
                got: words.len(),
            });
        }
        Ok(CiphertextList {
            n: params.lwe_dimension,
            count,
            data: words,
        })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The body word of value `j` (expansion copies bodies unchanged; only
    /// masks are rotated). `j < len()`.
    fn body(&self, j: usize) -> u64 {
        self.data[self.n + j]
    }

    /// Always false: lists carry at least one value.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of [`CiphertextList::encode`] for `count` values.
    pub fn encoded_len(params: ParameterSet, count: usize) -> usize {
        4 + 8 * (params.lwe_dimension + count)
    }

    /// Adds `other` word by word, wrapping mod 2^64.
    pub fn add_assign(&mut self, other: &CiphertextList) -> Result<(), LweError> {
        if self.n != other.n || self.count != other.count {
            return Err(LweError::LengthMismatch {
                expected: self.count,
                got: other.count,
            });
        }
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a = a.wrapping_add(*b);
        }
        Ok(())
    }

    /// Appends the encoding: `u32` value count, then the n + count words
    /// big-endian.
    pub fn encode(&self, w: &mut Writer) {
        w.count(self.count);
        for &x in &self.data {
            w.u64(x);
        }
    }

    /// Decodes a list of exactly `expected` values under `params`.
    pub fn decode(
        r: &mut Reader<'_>,
        params: ParameterSet,
        expected: usize,
    ) -> Result<Self, LweError> {
        let n = params.lwe_dimension;
        let count = r.count(n, "TFHE list length")?;
        if count != expected {
            return Err(LweError::LengthMismatch {
                expected,
                got: count,
            });
        }
        check_list_len(count, n)?;
        let data = read_words(r, n + count, "TFHE ciphertext list")?;
        Ok(CiphertextList { n, count, data })
    }

    /// The encoding alone.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }

    /// Decodes exactly one list, rejecting trailing bytes.
    pub fn from_bytes(
        bytes: &[u8],
        params: ParameterSet,
        expected: usize,
    ) -> Result<Self, LweError> {
        let mut r = Reader::new(bytes);
        let list = Self::decode(&mut r, params, expected)?;
        r.finish("TFHE ciphertext list")?;
        Ok(list)
    }

    fn as_tfhe(&self) -> LweCompactCiphertextList<&[u64]> {
        LweCompactCiphertextList::from_container(
            self.data.as_slice(),
            LweSize(self.n + 1),
            LweCiphertextCount(self.count),
            native(),
        )
    }

    /// The list expanded into `count` standard LWE ciphertexts of n + 1
    /// words each (mask then body), concatenated: what TFHE-rs decrypts.
    pub fn expand(&self) -> Vec<u64> {
        self.as_tfhe()
            .par_expand_into_lwe_ciphertext_list()
            .into_container()
    }
}

impl fmt::Debug for CiphertextList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::CiphertextList")
            .field("dimension", &self.n)
            .field("values", &self.count)
            .finish()
    }
}

/// Sums lists of one shape in parallel (rayon): word-wise wrapping
/// addition. `None` for no lists.
pub fn sum_lists(lists: &[CiphertextList]) -> Result<Option<CiphertextList>, LweError> {
    let Some(first) = lists.first() else {
        return Ok(None);
    };
    let zero = CiphertextList {
        n: first.n,
        count: first.count,
        data: vec![0; first.data.len()],
    };
    lists
        .par_iter()
        .try_fold(
            || zero.clone(),
            |mut acc, l| {
                acc.add_assign(l)?;
                Ok(acc)
            },
        )
        .try_reduce(
            || zero.clone(),
            |mut a, b| {
                a.add_assign(&b)?;
                Ok(a)
            },
        )
        .map(Some)
}
