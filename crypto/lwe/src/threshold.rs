//! N-of-N threshold decryption of TFHE aggregates, with a trusted dealer.
//!
//! # Shares
//!
//! The dealer holds the collector's [`SecretKey`]: the binary LWE key s
//! (n = 2,048 bits) and the bias pair (E_j, trunc(E_j / 2)) of every value
//! position j (see [`crate::params`]: a sum of K encryptions carries the
//! mean bias K * E_j / 2, which decryption removes). [`deal_shares`] splits
//! all three vectors into N additive shares over Z_{2^64}, coefficient-wise:
//! shares 1..N-1 are uniform words, share N is the whole minus their sum.
//! Any N - 1 shares are uniform and independent of the key. The dealer then
//! forgets the key ([`generate_threshold`] drops and zeroizes it).
//!
//! The bias is shared rather than published because E reveals the key: E is
//! an invertible (over Q) signed convolution of the public key's error e,
//! and with e the public key b = a*s + e gives s. So nobody but the dealer
//! may ever learn E_j, and the bias is removed inside the partial
//! decryptions, through the Z_{2^64}-linear form floor(K/2) * E_j +
//! (K mod 2) * trunc(E_j / 2) of K * E_j / 2 (truncated), which equals what
//! [`SecretKey::decrypt`] subtracts.
//!
//! # Partial decryption and combination
//!
//! For every value j of the aggregate (LWE ciphertext (a_j, b_j) after
//! expansion), trustee i publishes
//!
//! ```text
//! p_{i,j} = <a_j, s_i> + bias_offset_j(K, share i of the bias pair) + E_{i,j}   (mod 2^64)
//! ```
//!
//! with E_{i,j} fresh smudging noise, uniform on [-B, B]. [`combine`]
//! computes b_j - sum_i p_{i,j} = Delta m_j + c_j - sum_i E_{i,j}, where c_j
//! is the aggregate's noise after bias removal (what the capacity analysis
//! of [`crate::params`] bounds), and rounds exactly as the one-key path
//! does: [`SecretKey::decrypt`] is the same computation with N = 1 and no
//! smudging (both use `key_terms` and `decode_values` of the crate root).
//!
//! # What smudging hides, from whom, and how large B is
//!
//! The adversary is the collector (who sees the aggregate, every partial
//! and the result) together with any N - 1 trustees (their shares and their
//! own smudging noise). Let h be the honest trustee and write o_{i,j} for
//! trustee i's share of the bias offset. Given the result m, the coalition
//! computes, from what it holds,
//!
//! ```text
//! X_j = b_j - Delta m_j - sum_{i != h} (<a_j, s_i> + o_{i,j}),
//! ```
//!
//! and the honest partial is p_{h,j} = X_j - c_j + E_{h,j}. So beyond the
//! result, the honest partial reveals exactly the noise c_j of every value,
//! smudged by E_{h,j}. Unsmudged, c_j would be a linear function of the
//! secret key, the public key's error and the encryption randomness, much
//! of which colluding clients (their own r, e1, e2) and the server (the
//! release's noise list) know: each release would leak linear equations in
//! the key. A simulator that knows only m outputs X_j plus noise uniform on
//! [-B, B]. By the smudging lemma, the statistical distance between c +
//! U[-B, B] and U[-B, B] is |c| / (2B + 1). Over the J values of a release
//! (independent smudging) it is at most J t / (2B + 1) whenever every
//! |c_j| <= t, and t = [`ParameterSet::noise_bound`]`(K)` fails for some
//! value with probability below 2^-40 (the Hoeffding bound of
//! [`crate::params`], 2^-56 per value). Hence
//!
//! ```text
//! SD(real, simulated) <= J t / (2B + 1) + 2^-40 < 2^-lambda + 2^-40
//!     for B >= 2^(lambda - 1) * J * t.
//! ```
//!
//! (For one value this is the usual B = 2^lambda * t, with a factor 2 to
//! spare.) The N - 1 corrupt trustees' noise is known or chosen by the
//! adversary, so the honest trustee's B must suffice alone, and the
//! combined noise is up to N * B. Decryption stays exact when
//!
//! ```text
//! t + N * B <= Delta/2 - 1.
//! ```
//!
//! [`smudging`] takes the largest B that fits, capped at lambda = 40
//! ([`TARGET_LAMBDA`]), and reports the lambda it reaches; a trustee
//! refuses to decrypt when that is below the caller's minimum. Every
//! release costs its own 2^-lambda: a trustee should make one partial per
//! release (two partials of one release with fresh noise average it down).
//!
//! The room is small. A plain key's task takes the smallest Delta that
//! holds its batch, which puts t above Delta/4 and leaves nothing for
//! smudging. So a threshold public key ([`PublicKey::with_trustees`],
//! docs/protocol.md section 6.10) declares N and a least lambda, and a task
//! under it takes the smallest Delta at which N trustees smudge its largest
//! batch to that lambda ([`max_smudged_encryptions`], used by
//! [`crate::scheme::delta_for`]); each share carries the least lambda, and
//! `hetally-keytool partial-decrypt` refuses releases below it. lambda = 40
//! needs t * N * 2^39 * J <= 2^(d-1), which no Delta up to 2^60 gives for a
//! useful batch (for `histogram:1024`, K = 10,001 and N = 3 it would need
//! Delta = 2^85); docs/threshold.md tabulates the batches each lambda
//! allows. The figures are in the tests
//! (`smudging_figures_for_histogram_1024`, and
//! `crate::scheme::tests::threshold_batch_limits_table`).
//!
//! # Integrity
//!
//! There is no proof of correct partial decryption: a trustee that
//! publishes a wrong partial is not detected and only garbles the result
//! (every value comes out wrong). A proof would have to show, against
//! public commitments to the shares made by the dealer, that p_{i,j} -
//! <a_j, s_i> - offset_{i,j} lies in [-B, B]: a linear relation mod 2^64
//! with a short witness, as in lattice-based threshold FHE. What is here
//! catches accidents: every [`PartialDecryption`] carries a SHA-256
//! commitment over its key fingerprint, trustee index, release digest,
//! context, smudging figures and values, checked when it is decoded and
//! again when it is combined, and [`combine`] checks the fingerprint,
//! trustee set, context, release and value count. The commitment is not a
//! signature: anyone can recompute it.
//!
//! # Encodings
//!
//! Both start with the key-file framing of [`hetally_protocol::keyfile`]:
//! "HTLY", format version 1, the file kind ([`FileKind::KeyShare`] or
//! [`FileKind::PartialDecryption`]) and the scheme byte of TFHE. Integers
//! are big-endian.
//!
//! ```text
//! key share:   u8 parameter set | [32] public key fingerprint
//!              | u16 trustee index (1..=N) | u16 N | u8 least lambda
//!              | n x u64 key share | n x u64 share of E | n x u64 share of trunc(E/2)
//!              | [32] SHA-256("hetally tfhe key share v1" | all bytes before)
//! partial:     u8 parameter set | [32] public key fingerprint
//!              | u16 trustee index | u16 N | [32] release digest
//!              | u32 length + context (at most 1,024 bytes)
//!              | u8 lambda | u64 B | u32 J (at most 65,536) | J x u64 p_j
//!              | [32] SHA-256("hetally tfhe partial decryption v1" | all bytes before)
//! ```
//!
//! The release digest is SHA-256("hetally tfhe release v1" | the aggregate
//! file's encoding). A key share is 49,229 bytes for n = 2,048; a partial
//! of J values is 8 J + 125 bytes plus the context.

use std::fmt;

use hetally_protocol::aggregate::{AggregateError, AggregateFile};
use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::params::MAX_VALUES_PER_RELEASE;
use crate::scheme::Release;
use crate::{
    check_decryptable, decode_values, key_terms, read_words, Delta, LweError, ParameterSet,
    PublicKey, SecretKey, Trustees,
};

/// Fewest trustees.
pub const MIN_TRUSTEES: u16 = 2;

/// Most trustees.
pub const MAX_TRUSTEES: u16 = 64;

/// The statistical distance smudging aims for, 2^-40 over a release; less
/// is used when Delta leaves no room for it (see the module docs).
pub const TARGET_LAMBDA: u32 = 40;

/// Longest context a partial decryption is bound to.
pub const MAX_CONTEXT_BYTES: usize = 1024;

const SHARE_DOMAIN: &[u8] = b"hetally tfhe key share v1";
const PARTIAL_DOMAIN: &[u8] = b"hetally tfhe partial decryption v1";
const RELEASE_DOMAIN: &[u8] = b"hetally tfhe release v1";

/// Errors of threshold decryption.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// The number of trustees is out of range.
    #[error("{0} trustees are not supported: use {MIN_TRUSTEES} to {MAX_TRUSTEES}")]
    TrusteeCount(u16),
    /// A trustee index is outside 1..=N.
    #[error("trustee index {index} is outside 1..={trustees}")]
    BadIndex {
        /// The index.
        index: u16,
        /// N.
        trustees: u16,
    },
    /// Nothing to combine.
    #[error("no partial decryptions to combine")]
    NoPartials,
    /// Some trustees' partial decryptions are missing.
    #[error(
        "missing the partial decryption of trustee(s) {} of {trustees}: all {trustees} trustees must take part",
        index_list(.missing)
    )]
    MissingTrustees {
        /// The missing trustees' indices.
        missing: Vec<u16>,
        /// N.
        trustees: u16,
    },
    /// Two partial decryptions name the same trustee.
    #[error("trustee {0} appears more than once among the partial decryptions")]
    DuplicateTrustee(u16),
    /// A share or partial decryption belongs to another key.
    #[error(
        "trustee {trustee}'s {what} belongs to key {found}, the aggregate is under key {expected}"
    )]
    WrongKey {
        /// The trustee.
        trustee: u16,
        /// "key share" or "partial decryption".
        what: &'static str,
        /// Fingerprint (hex prefix) of the aggregate's key.
        expected: String,
        /// Fingerprint (hex prefix) of the share's key.
        found: String,
    },
    /// Partial decryptions of different dealings.
    #[error("trustee {trustee}'s partial decryption comes from a {found}-trustee dealing, the others from a {expected}-trustee one")]
    TrusteeCountMismatch {
        /// The trustee.
        trustee: u16,
        /// N of the first partial.
        expected: u16,
        /// N of this one.
        found: u16,
    },
    /// A partial decryption was made for another context.
    #[error("trustee {trustee}'s partial decryption was made for another context")]
    WrongContext {
        /// The trustee.
        trustee: u16,
    },
    /// A partial decryption was made of another aggregate.
    #[error(
        "trustee {trustee}'s partial decryption is of another release (the aggregate file differs)"
    )]
    WrongRelease {
        /// The trustee.
        trustee: u16,
    },
    /// A partial decryption has the wrong number of values.
    #[error("trustee {trustee}'s partial decryption covers {got} LWE ciphertexts, the aggregate has {expected}")]
    WrongCiphertextCount {
        /// The trustee.
        trustee: u16,
        /// Values in the aggregate.
        expected: usize,
        /// Values in the partial.
        got: usize,
    },
    /// A partial decryption's commitment does not match its contents.
    #[error("the commitment of {} does not match its contents: it was corrupted or altered", trustee_name(*.trustee))]
    CommitmentMismatch {
        /// The trustee it names, if it was decoded far enough to say.
        trustee: Option<u16>,
    },
    /// A key share's checksum does not match its contents.
    #[error("the key share's checksum does not match its contents: the file is corrupt")]
    ShareChecksum,
    /// The context is too long.
    #[error("a context of {0} bytes is longer than the {MAX_CONTEXT_BYTES} allowed")]
    ContextTooLong(usize),
    /// Delta leaves too little room for smudging noise.
    #[error(
        "{trustees} trustees decrypting {values} values that sum {encryptions} encryptions at Delta 2^{delta_log2} \
         can hide the aggregate's noise only {}, and 2^-{required} is required: the task needs a larger Delta \
         (hetally_lwe::threshold::threshold_delta_for)",
        achieved_text(*.achieved)
    )]
    InsufficientSmudging {
        /// N.
        trustees: u16,
        /// Values in the release.
        values: usize,
        /// Encryptions in each sum.
        encryptions: u64,
        /// log2 of Delta.
        delta_log2: u32,
        /// The lambda that fits, if any.
        achieved: Option<u32>,
        /// The lambda asked for.
        required: u32,
    },
    /// The partials' smudging and the aggregate's noise do not fit Delta.
    #[error("the trustees' smudging bounds (sum {sum}) plus the aggregate's noise bound ({noise}) exceed Delta/2 - 1 = {half}: the result would not be exact")]
    MarginExceeded {
        /// Sum of the trustees' B.
        sum: u128,
        /// t.
        noise: u64,
        /// Delta/2 - 1.
        half: u64,
    },
    /// The aggregate is malformed or not decryptable with this key.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// An LWE operation failed.
    #[error(transparent)]
    Lwe(#[from] LweError),
    /// Malformed encoding.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

fn index_list(indices: &[u16]) -> String {
    indices
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn trustee_name(trustee: Option<u16>) -> String {
    match trustee {
        Some(i) => format!("trustee {i}'s partial decryption"),
        None => "a partial decryption".into(),
    }
}

fn achieved_text(achieved: Option<u32>) -> String {
    match achieved {
        Some(l) => format!("to statistical distance 2^-{l}"),
        None => "not at all (no room for smudging noise)".into(),
    }
}

fn check_trustees(trustees: u16) -> Result<(), ThresholdError> {
    if (MIN_TRUSTEES..=MAX_TRUSTEES).contains(&trustees) {
        Ok(())
    } else {
        Err(ThresholdError::TrusteeCount(trustees))
    }
}

/// Checks what a threshold public key declares: 2 to 64 trustees and a
/// least lambda of at most [`TARGET_LAMBDA`].
pub(crate) fn check_declaration(t: Trustees) -> Result<(), LweError> {
    if !(MIN_TRUSTEES..=MAX_TRUSTEES).contains(&t.count) {
        return Err(LweError::InvalidKey(format!(
            "a threshold key of {} trustees: use {MIN_TRUSTEES} to {MAX_TRUSTEES}",
            t.count
        )));
    }
    if u32::from(t.min_lambda) > TARGET_LAMBDA {
        return Err(LweError::InvalidKey(format!(
            "a least smudging lambda of {} is above the {TARGET_LAMBDA} partial decryptions aim for",
            t.min_lambda
        )));
    }
    Ok(())
}

fn check_index(index: u16, trustees: u16) -> Result<(), ThresholdError> {
    if (1..=trustees).contains(&index) {
        Ok(())
    } else {
        Err(ThresholdError::BadIndex { index, trustees })
    }
}

fn short(fingerprint: &[u8; 32]) -> String {
    hex::encode(&fingerprint[..8])
}

/// The smudging a partial decryption uses; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smudging {
    /// t: the bound on the aggregate's noise per value after bias removal
    /// ([`ParameterSet::noise_bound`]).
    pub noise_bound: u64,
    /// B: each trustee's smudging noise is uniform on [-B, B].
    pub bound: u64,
    /// lambda: the release's statistical distance is below 2^-lambda +
    /// 2^-40. At most [`TARGET_LAMBDA`].
    pub lambda: u32,
}

/// The largest smudging bound B that keeps the decryption of `values`
/// values, each a sum of `encryptions` encryptions at `delta`, exact with
/// `trustees` trustees (t + N B <= Delta/2 - 1), capped at lambda =
/// [`TARGET_LAMBDA`], and the lambda it reaches: floor(log2(2B / (J t))).
/// Fails when not even lambda = 0 fits.
pub fn smudging(
    params: ParameterSet,
    delta: Delta,
    encryptions: u64,
    values: usize,
    trustees: u16,
) -> Result<Smudging, ThresholdError> {
    check_trustees(trustees)?;
    let no_room = |achieved| ThresholdError::InsufficientSmudging {
        trustees,
        values,
        encryptions,
        delta_log2: delta.log2(),
        achieved,
        required: 0,
    };
    let t = params.noise_bound(encryptions);
    let half = (1u64 << (delta.log2() - 1)) - 1;
    if values == 0 || t >= half {
        return Err(no_room(None));
    }
    let jt = values as u128 * u128::from(t);
    let room = u128::from(half - t) / u128::from(trustees);
    // J <= 2^16 and t < 2^64: below 2^119.
    let cap = jt << (TARGET_LAMBDA - 1);
    let bound = room.min(cap);
    let ratio = 2 * bound / jt;
    if ratio == 0 {
        return Err(no_room(None));
    }
    Ok(Smudging {
        noise_bound: t,
        // bound <= room < 2^63.
        bound: bound as u64,
        lambda: ratio.ilog2().min(TARGET_LAMBDA),
    })
}

/// The smallest Delta at which `trustees` trustees can decrypt `values`
/// values summing `encryptions` encryptions with smudging of at least
/// `lambda` ([`smudging`]). The caller must still check that the largest
/// possible sum fits the plaintext space left above that Delta
/// ([`Delta::max_abs_value`]).
pub fn threshold_delta_for(
    params: ParameterSet,
    encryptions: u64,
    values: usize,
    trustees: u16,
    lambda: u32,
) -> Result<Delta, ThresholdError> {
    check_trustees(trustees)?;
    let mut best = None;
    for log2 in Delta::MIN_LOG2..=Delta::MAX_LOG2 {
        let delta = Delta::new(log2)?;
        if let Ok(s) = smudging(params, delta, encryptions, values, trustees) {
            if s.lambda >= lambda {
                return Ok(delta);
            }
            best = Some(s.lambda);
        }
    }
    Err(ThresholdError::InsufficientSmudging {
        trustees,
        values,
        encryptions,
        delta_log2: Delta::MAX_LOG2,
        achieved: best,
        required: lambda,
    })
}

/// The most encryptions one sum of `values` values may hold at `delta` so
/// that `trustees` trustees still smudge to at least `lambda` ([`smudging`]);
/// 0 when not even one does. The smudging lambda only falls as the sum
/// grows, so this is a binary search up to the capacity of `delta`.
pub fn max_smudged_encryptions(
    params: ParameterSet,
    delta: Delta,
    values: usize,
    trustees: u16,
    lambda: u32,
) -> u64 {
    let fits = |k: u64| {
        k >= 1 && smudging(params, delta, k, values, trustees).is_ok_and(|s| s.lambda >= lambda)
    };
    let (mut lo, mut hi) = (0u64, params.max_encryptions(delta));
    if !fits(1) {
        return 0;
    }
    lo = lo.max(1);
    // Invariant: fits(lo), and nothing above hi fits.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// One trustee's additive share of a TFHE secret key and of its bias pair.
/// Zeroized on drop; `Debug` shows only the index and the key fingerprint.
pub struct KeyShare {
    params: ParameterSet,
    key_fingerprint: [u8; 32],
    index: u16,
    trustees: u16,
    /// The least lambda the threshold key declares (0 for shares of a key
    /// dealt without a threshold public key, [`deal_shares`]).
    min_lambda: u8,
    /// s_i.
    key: Vec<u64>,
    /// Share of E.
    bias: Vec<u64>,
    /// Share of trunc(E / 2).
    half_bias: Vec<u64>,
}

/// Splits `key` (and its bias pair) into `trustees` additive shares over
/// Z_{2^64}, indexed 1..=N; see the module docs. The shares are bound to
/// `key`'s own public key, and demand no least lambda: [`deal_shares_for`]
/// deals for a threshold public key. The caller keeps `key`: drop it once
/// the shares are handed out.
pub fn deal_shares(
    key: &SecretKey,
    trustees: u16,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<KeyShare>, ThresholdError> {
    let declared = Trustees {
        count: trustees,
        min_lambda: 0,
    };
    deal(key, key.public_key().fingerprint(), declared, rng)
}

/// Splits `key` among the trustees `public` (its threshold public key,
/// [`PublicKey::with_trustees`]) declares, bound to that key's fingerprint
/// and least lambda.
pub fn deal_shares_for(
    key: &SecretKey,
    public: &PublicKey,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<KeyShare>, ThresholdError> {
    let declared = public.trustees().ok_or_else(|| {
        LweError::InvalidKey("shares are dealt for a threshold public key".into())
    })?;
    let own = key.public_key().with_trustees(declared)?;
    if own.fingerprint() != public.fingerprint() {
        return Err(
            LweError::InvalidKey("the threshold public key is not this key's".into()).into(),
        );
    }
    deal(key, public.fingerprint(), declared, rng)
}

fn deal(
    key: &SecretKey,
    key_fingerprint: [u8; 32],
    declared: Trustees,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<KeyShare>, ThresholdError> {
    let trustees = declared.count;
    check_trustees(trustees)?;
    let params = key.params();
    let n = params.lwe_dimension;
    let (bias, half_bias) = key.bias_words();
    // What is left for the last share: the whole minus the others.
    let mut rest = [Zeroizing::new(key.key_words().to_vec()), bias, half_bias];
    let mut shares = Vec::with_capacity(usize::from(trustees));
    for index in 1..trustees {
        let mut parts: [Vec<u64>; 3] =
            std::array::from_fn(|_| (0..n).map(|_| rng.next_u64()).collect());
        for (left, part) in rest.iter_mut().zip(&parts) {
            for (l, p) in left.iter_mut().zip(part) {
                *l = l.wrapping_sub(*p);
            }
        }
        shares.push(KeyShare {
            params,
            key_fingerprint,
            index,
            trustees,
            min_lambda: declared.min_lambda,
            key: std::mem::take(&mut parts[0]),
            bias: std::mem::take(&mut parts[1]),
            half_bias: std::mem::take(&mut parts[2]),
        });
    }
    shares.push(KeyShare {
        params,
        key_fingerprint,
        index: trustees,
        trustees,
        min_lambda: declared.min_lambda,
        key: rest[0].to_vec(),
        bias: rest[1].to_vec(),
        half_bias: rest[2].to_vec(),
    });
    Ok(shares)
}

/// Makes a fresh key pair for `params`, deals it to the trustees
/// `declared` names and forgets the secret key (it is zeroized when dropped
/// here). Returns the threshold public key the task uses (file kind 4,
/// [`PublicKey::with_trustees`]) and the shares, in index order.
pub fn generate_threshold(
    params: ParameterSet,
    declared: Trustees,
    rng: &mut dyn CryptoRngCore,
) -> Result<(PublicKey, Vec<KeyShare>), ThresholdError> {
    check_declaration(declared)?;
    let key = SecretKey::generate(params, rng);
    let public = key.public_key().with_trustees(declared)?;
    let shares = deal_shares_for(&key, &public, rng)?;
    drop(key);
    Ok((public, shares))
}

/// SHA-256 of the aggregate file a partial decryption is of.
fn release_digest(aggregate: &AggregateFile) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RELEASE_DOMAIN);
    h.update(aggregate.to_bytes());
    h.finalize().into()
}

/// A uniform sample of [-bound, bound] as an element of Z_{2^64}, by
/// rejection (bound < 2^62).
fn smudging_sample(bound: u64, rng: &mut dyn CryptoRngCore) -> u64 {
    let width = 2 * bound + 1;
    let mask = width.next_power_of_two() - 1;
    loop {
        let x = rng.next_u64() & mask;
        if x < width {
            return x.wrapping_sub(bound);
        }
    }
}

impl KeyShare {
    /// This trustee's index, 1..=N.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// N: how many trustees the key was dealt to.
    pub fn trustees(&self) -> u16 {
        self.trustees
    }

    /// Fingerprint of the public key the share belongs to.
    pub fn key_fingerprint(&self) -> [u8; 32] {
        self.key_fingerprint
    }

    /// The parameter set.
    pub fn params(&self) -> ParameterSet {
        self.params
    }

    /// The least smudging lambda the threshold key declares: partial
    /// decryptions should refuse releases that give less.
    pub fn min_lambda(&self) -> u32 {
        u32::from(self.min_lambda)
    }

    /// This trustee's partial decryption of a released aggregate (the file
    /// the collector would decrypt), bound to `context`, with smudging
    /// noise as large as the aggregate's Delta allows ([`smudging`]).
    /// Refuses when that hides the aggregate's noise to less than
    /// 2^-`min_lambda` in statistical distance (see the module docs).
    pub fn partial_decrypt(
        &self,
        aggregate: &AggregateFile,
        context: &[u8],
        min_lambda: u32,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<PartialDecryption, ThresholdError> {
        if context.len() > MAX_CONTEXT_BYTES {
            return Err(ThresholdError::ContextTooLong(context.len()));
        }
        if aggregate.key_fingerprint != self.key_fingerprint {
            return Err(ThresholdError::WrongKey {
                trustee: self.index,
                what: "key share",
                expected: short(&aggregate.key_fingerprint),
                found: short(&self.key_fingerprint),
            });
        }
        aggregate.check_key(Scheme::Tfhe, &self.key_fingerprint)?;
        let release = Release::of(aggregate, self.params)?;
        for list in &release.lists {
            check_decryptable(list, self.params, release.encryptions, release.delta)?;
        }
        let count = release.value_count();
        let smudging = smudging(
            self.params,
            release.delta,
            release.encryptions,
            count,
            self.trustees,
        )?;
        if smudging.lambda < min_lambda {
            return Err(ThresholdError::InsufficientSmudging {
                trustees: self.trustees,
                values: count,
                encryptions: release.encryptions,
                delta_log2: release.delta.log2(),
                achieved: Some(smudging.lambda),
                required: min_lambda,
            });
        }
        let mut values = Vec::with_capacity(count);
        for list in &release.lists {
            let terms = key_terms(
                list,
                &self.key,
                &self.bias,
                &self.half_bias,
                release.encryptions,
            );
            values.extend(
                terms
                    .iter()
                    .map(|t| t.wrapping_add(smudging_sample(smudging.bound, rng))),
            );
        }
        let mut partial = PartialDecryption {
            params: self.params,
            key_fingerprint: self.key_fingerprint,
            index: self.index,
            trustees: self.trustees,
            release: release_digest(aggregate),
            context: context.to_vec(),
            // lambda <= TARGET_LAMBDA = 40.
            lambda: smudging.lambda as u8,
            bound: smudging.bound,
            values,
            commitment: [0; 32],
        };
        partial.commitment = commitment(&partial.encode_fields());
        Ok(partial)
    }

    /// The share file (see the module docs). Holds secret material: write
    /// it only with `keyfile::write_private_file`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::KeyShare, Scheme::Tfhe);
        w.u8(self.params.id)
            .bytes(&self.key_fingerprint)
            .u16(self.index)
            .u16(self.trustees)
            .u8(self.min_lambda);
        for words in [&self.key, &self.bias, &self.half_bias] {
            for &x in words.iter() {
                w.u64(x);
            }
        }
        let mut bytes = w.finish();
        let check = share_checksum(&bytes);
        bytes.extend_from_slice(&check);
        bytes
    }

    /// Decodes and checks a share file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let mut r = Reader::new(bytes);
        let (params, key_fingerprint, index, trustees) =
            read_common(&mut r, FileKind::KeyShare, "key share")?;
        let min_lambda = r.u8("least smudging lambda")?;
        let n = params.lwe_dimension;
        let key = read_words(&mut r, n, "key share")?;
        let bias = read_words(&mut r, n, "bias share")?;
        let half_bias = read_words(&mut r, n, "half-bias share")?;
        let share = KeyShare {
            params,
            key_fingerprint,
            index,
            trustees,
            min_lambda,
            key,
            bias,
            half_bias,
        };
        let check: [u8; 32] = r.array("key share checksum")?;
        r.finish("key share file")?;
        if check != share_checksum(&bytes[..bytes.len() - 32]) {
            return Err(ThresholdError::ShareChecksum);
        }
        check_declaration(Trustees {
            count: trustees,
            min_lambda,
        })?;
        check_index(index, trustees)?;
        Ok(share)
    }
}

fn share_checksum(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SHARE_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

fn commitment(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PARTIAL_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        self.key.zeroize();
        self.bias.zeroize();
        self.half_bias.zeroize();
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::KeyShare")
            .field("index", &self.index)
            .field("trustees", &self.trustees)
            .field("key", &short(&self.key_fingerprint))
            .field("share", &"<redacted>")
            .finish()
    }
}

/// One trustee's partial decryption of a release; see the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct PartialDecryption {
    params: ParameterSet,
    key_fingerprint: [u8; 32],
    index: u16,
    trustees: u16,
    release: [u8; 32],
    context: Vec<u8>,
    lambda: u8,
    bound: u64,
    values: Vec<u64>,
    commitment: [u8; 32],
}

impl PartialDecryption {
    /// The trustee's index, 1..=N.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// N.
    pub fn trustees(&self) -> u16 {
        self.trustees
    }

    /// Fingerprint of the public key.
    pub fn key_fingerprint(&self) -> [u8; 32] {
        self.key_fingerprint
    }

    /// The context the partial is bound to.
    pub fn context(&self) -> &[u8] {
        &self.context
    }

    /// The lambda its smudging reaches (statistical distance below
    /// 2^-lambda + 2^-40 over the release).
    pub fn lambda(&self) -> u32 {
        u32::from(self.lambda)
    }

    /// B: its smudging noise lies in [-B, B].
    pub fn smudging_bound(&self) -> u64 {
        self.bound
    }

    /// Number of values (LWE ciphertexts of the aggregate).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Always false for a partial made by [`KeyShare::partial_decrypt`].
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Everything but the commitment, framing included.
    fn encode_fields(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::PartialDecryption, Scheme::Tfhe);
        w.u8(self.params.id)
            .bytes(&self.key_fingerprint)
            .u16(self.index)
            .u16(self.trustees)
            .bytes(&self.release)
            .var_bytes(&self.context)
            .u8(self.lambda)
            .u64(self.bound)
            .count(self.values.len());
        for &x in &self.values {
            w.u64(x);
        }
        w.finish()
    }

    fn commitment_matches(&self) -> bool {
        commitment(&self.encode_fields()) == self.commitment
    }

    /// The encoding (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.encode_fields();
        bytes.extend_from_slice(&self.commitment);
        bytes
    }

    /// Decodes a partial decryption and checks its commitment.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let mut r = Reader::new(bytes);
        let (params, key_fingerprint, index, trustees) =
            read_common(&mut r, FileKind::PartialDecryption, "partial decryption")?;
        let release = r.array("release digest")?;
        let context = r.var_bytes(MAX_CONTEXT_BYTES, "context")?.to_vec();
        let lambda = r.u8("smudging lambda")?;
        let bound = r.u64("smudging bound")?;
        let count = r.count(MAX_VALUES_PER_RELEASE as usize, "value count")?;
        let values = read_words(&mut r, count, "partial decryption values")?;
        let stored = r.array("commitment")?;
        r.finish("partial decryption")?;
        let partial = PartialDecryption {
            params,
            key_fingerprint,
            index,
            trustees,
            release,
            context,
            lambda,
            bound,
            values,
            commitment: stored,
        };
        if commitment(&bytes[..bytes.len() - 32]) != stored {
            return Err(ThresholdError::CommitmentMismatch {
                trustee: (1..=trustees).contains(&index).then_some(index),
            });
        }
        check_trustees(trustees)?;
        check_index(index, trustees)?;
        if u32::from(lambda) > TARGET_LAMBDA || bound >= 1 << 62 {
            return Err(CodecError::invalid(
                "smudging",
                format!("lambda {lambda} or bound {bound} out of range"),
            )
            .into());
        }
        Ok(partial)
    }
}

impl fmt::Debug for PartialDecryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lwe::PartialDecryption")
            .field("index", &self.index)
            .field("trustees", &self.trustees)
            .field("key", &short(&self.key_fingerprint))
            .field("values", &self.values.len())
            .field("lambda", &self.lambda)
            .finish()
    }
}

/// Combines the partial decryptions of all N trustees into the aggregate's
/// values, exactly as [`crate::scheme::TfheDecrypter`] would decrypt it with
/// the whole key. Checks that every partial is intact, of this aggregate's
/// key and release, made for `context`, of the right length, and that
/// every trustee 1..=N appears exactly once.
pub fn combine(
    parts: &[PartialDecryption],
    aggregate: &AggregateFile,
    context: &[u8],
) -> Result<Vec<i128>, ThresholdError> {
    let first = parts.first().ok_or(ThresholdError::NoPartials)?;
    let trustees = first.trustees;
    check_trustees(trustees)?;
    let digest = release_digest(aggregate);
    for p in parts {
        if !p.commitment_matches() {
            return Err(ThresholdError::CommitmentMismatch {
                trustee: Some(p.index),
            });
        }
        if p.key_fingerprint != aggregate.key_fingerprint {
            return Err(ThresholdError::WrongKey {
                trustee: p.index,
                what: "partial decryption",
                expected: short(&aggregate.key_fingerprint),
                found: short(&p.key_fingerprint),
            });
        }
        if p.trustees != trustees {
            return Err(ThresholdError::TrusteeCountMismatch {
                trustee: p.index,
                expected: trustees,
                found: p.trustees,
            });
        }
        check_index(p.index, trustees)?;
        if p.context != context {
            return Err(ThresholdError::WrongContext { trustee: p.index });
        }
    }
    aggregate.check_key(Scheme::Tfhe, &first.key_fingerprint)?;
    let release = Release::of(aggregate, first.params)?;
    let count = release.value_count();
    for p in parts {
        if p.values.len() != count {
            return Err(ThresholdError::WrongCiphertextCount {
                trustee: p.index,
                expected: count,
                got: p.values.len(),
            });
        }
        if p.release != digest {
            return Err(ThresholdError::WrongRelease { trustee: p.index });
        }
    }
    let mut seen = vec![false; usize::from(trustees) + 1];
    for p in parts {
        let slot = &mut seen[usize::from(p.index)];
        if *slot {
            return Err(ThresholdError::DuplicateTrustee(p.index));
        }
        *slot = true;
    }
    let missing: Vec<u16> = (1..=trustees).filter(|&i| !seen[usize::from(i)]).collect();
    if !missing.is_empty() {
        return Err(ThresholdError::MissingTrustees { missing, trustees });
    }
    for list in &release.lists {
        check_decryptable(list, first.params, release.encryptions, release.delta)?;
    }
    // Exactness: t + sum of the B_i within Delta/2 - 1.
    let noise = first.params.noise_bound(release.encryptions);
    let half = (1u64 << (release.delta.log2() - 1)) - 1;
    let sum: u128 = parts.iter().map(|p| u128::from(p.bound)).sum();
    if u128::from(noise) + sum > u128::from(half) {
        return Err(ThresholdError::MarginExceeded { sum, noise, half });
    }
    let mut terms = vec![0u64; count];
    for p in parts {
        for (t, &v) in terms.iter_mut().zip(&p.values) {
            *t = t.wrapping_add(v);
        }
    }
    let mut values = Vec::with_capacity(count);
    let mut rest = terms.as_slice();
    for list in &release.lists {
        let (mine, tail) = rest.split_at(list.len());
        rest = tail;
        values.extend(decode_values(list, mine, release.delta));
    }
    Ok(values)
}

/// Reads what key shares and partial decryptions start with: the framing
/// of a TFHE file of `kind` (`what` names it in errors), the parameter
/// set, the key fingerprint, the trustee index and the trustee count.
fn read_common(
    r: &mut Reader<'_>,
    kind: FileKind,
    what: &str,
) -> Result<(ParameterSet, [u8; 32], u16, u16), ThresholdError> {
    let scheme = keyfile::read_key_header(r, kind)?;
    if scheme != Scheme::Tfhe {
        return Err(CodecError::invalid(
            "scheme",
            format!("a {scheme} {what} is not a TFHE {what}"),
        )
        .into());
    }
    let params = ParameterSet::from_id(r.u8("TFHE parameter set")?)?;
    let key_fingerprint = r.array("key fingerprint")?;
    let index = r.u16("trustee index")?;
    let trustees = r.u16("trustee count")?;
    Ok((params, key_fingerprint, index, trustees))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::Instant;

    use hetally_protocol::aggregate::{Encoding, ReportCount};
    use hetally_protocol::dp::{DpMechanism, Relation};
    use hetally_protocol::Decrypter;
    use hetally_protocol::Measurement;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::scheme::TfheDecrypter;
    use crate::{sum_lists, CiphertextList, PKE_ZKV2_2048};

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn key() -> &'static SecretKey {
        static KEY: OnceLock<SecretKey> = OnceLock::new();
        KEY.get_or_init(|| SecretKey::generate(PKE_ZKV2_2048, &mut rng(11)))
    }

    fn other_key() -> &'static SecretKey {
        static KEY: OnceLock<SecretKey> = OnceLock::new();
        KEY.get_or_init(|| SecretKey::generate(PKE_ZKV2_2048, &mut rng(12)))
    }

    const CONTEXT: &[u8] = b"task 7, batch 2026-12-07T15:00Z";

    /// An aggregate file of `lists` (each one list of the layout), summing
    /// `encryptions` encryptions.
    fn aggregate(
        pk: &PublicKey,
        delta: Delta,
        lists: &[CiphertextList],
        encryptions: u64,
    ) -> AggregateFile {
        let values: usize = lists.iter().map(CiphertextList::len).sum();
        AggregateFile {
            task_id: [7; 32],
            scheme: Scheme::Tfhe,
            key_fingerprint: pk.fingerprint(),
            measurement: Measurement::Histogram {
                buckets: values as u32,
            },
            encoding: Encoding::TfheLists {
                parameter_set: pk.params().id,
                delta_log2: delta.log2(),
            },
            batch_start: 1_700_000_000,
            batch_duration: 3600,
            relation: Some(Relation::ReplaceOne),
            report_count: ReportCount::Exact(encryptions - 1),
            dp: DpMechanism::None,
            ciphertexts: lists.iter().map(CiphertextList::to_bytes).collect(),
            trustee_noise: None,
        }
    }

    const VALUES: usize = 16;

    /// 200 reports of small values plus a "noise" list with negative
    /// values and the extremes of the plaintext space, at Delta = 2^50
    /// (values in [-8192, 8191]); the expected sums.
    fn test_release() -> &'static (AggregateFile, Vec<i128>) {
        static RELEASE: OnceLock<(AggregateFile, Vec<i128>)> = OnceLock::new();
        RELEASE.get_or_init(|| {
            let pk = key().public_key();
            let delta = Delta::new(50).unwrap();
            let mut r = rng(13);
            let mut expected = vec![0i128; VALUES];
            let mut lists = Vec::new();
            for _ in 0..200 {
                // Slots 13 and 15 stay zero in reports.
                let values: Vec<i128> = (0..VALUES)
                    .map(|j| {
                        if j == 13 || j == 15 {
                            0
                        } else {
                            r.gen_range(0..=40)
                        }
                    })
                    .collect();
                for (e, v) in expected.iter_mut().zip(&values) {
                    *e += v;
                }
                lists.push(pk.encrypt(&values, delta, &mut r).unwrap());
            }
            let max = delta.max_abs_value() as i128;
            let mut noise: Vec<i128> = (0..VALUES as i128).map(|j| j * 3 - 20).collect();
            noise[13] = -max - 1;
            noise[15] = max;
            for (e, v) in expected.iter_mut().zip(&noise) {
                *e += v;
            }
            lists.push(pk.encrypt(&noise, delta, &mut r).unwrap());
            let sum = sum_lists(&lists).unwrap().unwrap();
            (aggregate(pk, delta, &[sum], 201), expected)
        })
    }

    fn partials(shares: &[KeyShare], file: &AggregateFile, seed: u64) -> Vec<PartialDecryption> {
        shares
            .iter()
            .map(|s| {
                s.partial_decrypt(file, CONTEXT, 12, &mut rng(seed + u64::from(s.index())))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn threshold_decryption_equals_ordinary_decryption() {
        let (file, expected) = test_release();
        let whole = SecretKey::from_bytes(&key().to_bytes()).unwrap();
        let ordinary = TfheDecrypter::new(whole).decrypt(file).unwrap();
        assert_eq!(&ordinary, expected);
        assert_eq!(expected[13], -8192);
        assert_eq!(expected[15], 8191);
        for trustees in [2u16, 3, 5] {
            let shares = deal_shares(key(), trustees, &mut rng(20 + u64::from(trustees))).unwrap();
            assert_eq!(shares.len(), usize::from(trustees));
            let parts = partials(&shares, file, 100);
            for p in &parts {
                assert!(p.lambda() >= 12, "lambda {}", p.lambda());
                assert_eq!(p.len(), VALUES);
            }
            // Any order.
            let mut reversed = parts.clone();
            reversed.reverse();
            assert_eq!(
                &combine(&parts, file, CONTEXT).unwrap(),
                expected,
                "{trustees}"
            );
            assert_eq!(&combine(&reversed, file, CONTEXT).unwrap(), expected);
        }
        // A freshly generated threshold key.
        let declared = Trustees {
            count: 3,
            min_lambda: 10,
        };
        let (pk, shares) = generate_threshold(PKE_ZKV2_2048, declared, &mut rng(30)).unwrap();
        assert_eq!(pk.trustees(), Some(declared));
        assert!(shares.iter().all(|s| s.min_lambda() == 10));
        let reread = PublicKey::from_bytes(&pk.to_bytes()).unwrap();
        assert_eq!(reread.fingerprint(), pk.fingerprint());
        assert_eq!(reread.trustees(), Some(declared));
        let delta = Delta::new(50).unwrap();
        let mut r = rng(31);
        let lists: Vec<CiphertextList> = (0..4)
            .map(|_| pk.encrypt(&[1, 0, 5, -2], delta, &mut r).unwrap())
            .collect();
        let sum = sum_lists(&lists).unwrap().unwrap();
        let file = aggregate(&pk, delta, &[sum], 4);
        let parts = partials(&shares, &file, 200);
        assert_eq!(combine(&parts, &file, CONTEXT).unwrap(), vec![4, 0, 20, -8]);
    }

    #[test]
    fn shares_sum_to_the_key_and_any_fewer_are_uniform_looking() {
        let shares = deal_shares(key(), 3, &mut rng(40)).unwrap();
        let (bias, half) = key().bias_words();
        for (j, &bit) in key().key_words().iter().enumerate() {
            let sum = |f: fn(&KeyShare) -> &Vec<u64>| {
                shares.iter().fold(0u64, |acc, s| acc.wrapping_add(f(s)[j]))
            };
            assert_eq!(sum(|s| &s.key), bit);
            assert_eq!(sum(|s| &s.bias), bias[j]);
            assert_eq!(sum(|s| &s.half_bias), half[j]);
        }
        // The first share's words are uniform, not bits: half of them have
        // the top bit set (4 sigma is about 91 of 2048).
        let top = shares[0].key.iter().filter(|&&w| w >> 63 == 1).count();
        assert!((1024 - 91..=1024 + 91).contains(&top), "{top}");
        assert!(matches!(
            deal_shares(key(), 1, &mut rng(41)),
            Err(ThresholdError::TrusteeCount(1))
        ));
        assert!(matches!(
            deal_shares(key(), 65, &mut rng(41)),
            Err(ThresholdError::TrusteeCount(65))
        ));
    }

    #[test]
    fn bias_offset_is_the_truncated_mean_bias() {
        let mut r = rng(50);
        for _ in 0..10_000 {
            let e: i64 = r.gen_range(-(1i64 << 28)..=(1 << 28));
            let k: u64 = if r.gen() {
                r.gen_range(1..100)
            } else {
                r.gen_range(1..1u64 << 40)
            };
            let want = (i128::from(k) * i128::from(e) / 2) as u64;
            assert_eq!(
                crate::bias_offset(k, e as u64, (e / 2) as u64),
                want,
                "{k} {e}"
            );
        }
    }

    #[test]
    fn combine_names_missing_duplicate_and_foreign_partials() {
        let (file, _) = test_release();
        let shares = deal_shares(key(), 3, &mut rng(60)).unwrap();
        let parts = partials(&shares, file, 300);

        let err = combine(&parts[..2], file, CONTEXT).unwrap_err();
        assert!(
            matches!(&err, ThresholdError::MissingTrustees { missing, trustees: 3 } if missing == &[3]),
            "{err}"
        );
        assert!(err.to_string().contains("trustee(s) 3 of 3"), "{err}");
        let err = combine(&[parts[2].clone()], file, CONTEXT).unwrap_err();
        assert!(err.to_string().contains("trustee(s) 1, 2 of 3"), "{err}");

        let dup = [parts[0].clone(), parts[0].clone(), parts[1].clone()];
        assert!(matches!(
            combine(&dup, file, CONTEXT),
            Err(ThresholdError::DuplicateTrustee(1))
        ));
        assert!(matches!(
            combine(&[], file, CONTEXT),
            Err(ThresholdError::NoPartials)
        ));

        // Another key's share cannot decrypt this aggregate at all ...
        let foreign = deal_shares(other_key(), 3, &mut rng(61)).unwrap();
        assert!(matches!(
            foreign[2].partial_decrypt(file, CONTEXT, 12, &mut rng(62)),
            Err(ThresholdError::WrongKey { trustee: 3, .. })
        ));
        // ... and its partial of the same ciphertexts relabelled under its
        // key is refused by combine.
        let mut relabelled = file.clone();
        relabelled.key_fingerprint = other_key().public_key().fingerprint();
        let stray = foreign[2]
            .partial_decrypt(&relabelled, CONTEXT, 12, &mut rng(63))
            .unwrap();
        let mixed = [parts[0].clone(), parts[1].clone(), stray];
        let err = combine(&mixed, file, CONTEXT).unwrap_err();
        assert!(
            matches!(err, ThresholdError::WrongKey { trustee: 3, .. }),
            "{err}"
        );

        // Another dealing of the same key with another N.
        let five = deal_shares(key(), 5, &mut rng(64)).unwrap();
        let p5 = five[3]
            .partial_decrypt(file, CONTEXT, 12, &mut rng(65))
            .unwrap();
        let mixed = [parts[0].clone(), parts[1].clone(), p5];
        assert!(matches!(
            combine(&mixed, file, CONTEXT),
            Err(ThresholdError::TrusteeCountMismatch {
                trustee: 4,
                expected: 3,
                found: 5
            })
        ));
        // A partial of another dealing with the same N and index: not
        // detectable without proofs; the result is garbage, not an error.
        let again = deal_shares(key(), 3, &mut rng(66)).unwrap();
        let p3 = again[2]
            .partial_decrypt(file, CONTEXT, 12, &mut rng(67))
            .unwrap();
        let garbled = combine(&[parts[0].clone(), parts[1].clone(), p3], file, CONTEXT).unwrap();
        assert_ne!(&garbled, &test_release().1);
    }

    #[test]
    fn combine_checks_context_release_and_length() {
        let (file, expected) = test_release();
        let shares = deal_shares(key(), 3, &mut rng(70)).unwrap();
        let parts = partials(&shares, file, 400);
        assert_eq!(&combine(&parts, file, CONTEXT).unwrap(), expected);
        // All made for CONTEXT, combined for another.
        assert!(matches!(
            combine(&parts, file, b"another batch"),
            Err(ThresholdError::WrongContext { trustee: 1 })
        ));
        // One made for another context.
        let odd = shares[1]
            .partial_decrypt(file, b"another batch", 12, &mut rng(71))
            .unwrap();
        let mixed = [parts[0].clone(), odd, parts[2].clone()];
        assert!(matches!(
            combine(&mixed, file, CONTEXT),
            Err(ThresholdError::WrongContext { trustee: 2 })
        ));
        // One made of another release (same ciphertexts, other interval).
        let mut moved = file.clone();
        moved.batch_start += 3600;
        let odd = shares[2]
            .partial_decrypt(&moved, CONTEXT, 12, &mut rng(72))
            .unwrap();
        let mixed = [parts[0].clone(), parts[1].clone(), odd];
        assert!(matches!(
            combine(&mixed, file, CONTEXT),
            Err(ThresholdError::WrongRelease { trustee: 3 })
        ));
        // One of a release with fewer values.
        let pk = key().public_key();
        let delta = Delta::new(50).unwrap();
        let short_list = pk.encrypt(&[1, 2, 3], delta, &mut rng(73)).unwrap();
        let small = aggregate(pk, delta, &[short_list], 1);
        let odd = shares[0]
            .partial_decrypt(&small, CONTEXT, 12, &mut rng(74))
            .unwrap();
        let mixed = [odd, parts[1].clone(), parts[2].clone()];
        let err = combine(&mixed, file, CONTEXT).unwrap_err();
        assert!(
            matches!(
                err,
                ThresholdError::WrongCiphertextCount {
                    trustee: 1,
                    expected: 16,
                    got: 3
                }
            ),
            "{err}"
        );
        // Too long a context.
        assert!(matches!(
            shares[0].partial_decrypt(file, &[0; MAX_CONTEXT_BYTES + 1], 12, &mut rng(75)),
            Err(ThresholdError::ContextTooLong(_))
        ));
        // A partial whose bound breaks the margin (recommitted, so only
        // the margin check can catch it).
        let mut wide = parts[0].clone();
        wide.bound = 1 << 48;
        wide.commitment = commitment(&wide.encode_fields());
        let mixed = [wide, parts[1].clone(), parts[2].clone()];
        assert!(matches!(
            combine(&mixed, file, CONTEXT),
            Err(ThresholdError::MarginExceeded { .. })
        ));
    }

    #[test]
    fn trustees_refuse_when_delta_leaves_too_little_room() {
        let (file, _) = test_release();
        let shares = deal_shares(key(), 3, &mut rng(80)).unwrap();
        let err = shares[0]
            .partial_decrypt(file, CONTEXT, TARGET_LAMBDA, &mut rng(81))
            .unwrap_err();
        assert!(
            matches!(
                err,
                ThresholdError::InsufficientSmudging {
                    achieved: Some(14),
                    required: 40,
                    ..
                }
            ),
            "{err}"
        );
        // At the Delta a 200-report task gets (2^31), there is no room.
        let pk = key().public_key();
        let delta = PKE_ZKV2_2048.min_delta_for(201).unwrap();
        let list = pk.encrypt(&[1; VALUES], delta, &mut rng(82)).unwrap();
        let tight = aggregate(pk, delta, &[list], 201);
        let err = shares[0]
            .partial_decrypt(&tight, CONTEXT, 0, &mut rng(83))
            .unwrap_err();
        assert!(
            matches!(
                err,
                ThresholdError::InsufficientSmudging { achieved: None, .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn smudging_noise_is_uniform_in_its_bound() {
        let (file, _) = test_release();
        let shares = deal_shares(key(), 3, &mut rng(90)).unwrap();
        let release = Release::of(file, PKE_ZKV2_2048).unwrap();
        // Several partials of one trustee: 16 values each.
        let mut noise = Vec::new();
        let mut bound = 0;
        for seed in 0..64 {
            let p = shares[1]
                .partial_decrypt(file, CONTEXT, 12, &mut rng(1000 + seed))
                .unwrap();
            bound = p.smudging_bound();
            let s = &shares[1];
            let terms = key_terms(
                &release.lists[0],
                &s.key,
                &s.bias,
                &s.half_bias,
                release.encryptions,
            );
            noise.extend(
                p.values
                    .iter()
                    .zip(terms.iter())
                    .map(|(v, t)| v.wrapping_sub(*t) as i64),
            );
        }
        let b = bound as f64;
        eprintln!("B = 2^{:.2}, {} samples", b.log2(), noise.len());
        assert!(bound > 0);
        assert!(noise.iter().all(|e| e.unsigned_abs() <= bound));
        assert!(noise.iter().any(|&e| e != 0));
        // Uniform on [-B, B]: |E| > B/2 for half the samples, mean 0 with
        // standard deviation B / sqrt(3 * samples).
        let big = noise
            .iter()
            .filter(|e| e.unsigned_abs() > bound / 2)
            .count();
        let count = noise.len();
        assert!(
            big > count / 2 - count / 8 && big < count / 2 + count / 8,
            "{big} of {count}"
        );
        let mean = noise.iter().map(|&e| e as f64).sum::<f64>() / count as f64;
        assert!(mean.abs() < 5.0 * b / (3.0 * count as f64).sqrt(), "{mean}");
        // The sampler hits the ends of a small range.
        let mut r = rng(91);
        let small: Vec<i64> = (0..2000)
            .map(|_| smudging_sample(3, &mut r) as i64)
            .collect();
        for v in -3..=3 {
            assert!(small.contains(&v), "{v}");
        }
        assert!(small.iter().all(|v| v.abs() <= 3));
    }

    #[test]
    fn partial_encoding_round_trips_and_rejects_every_corruption() {
        let (file, expected) = test_release();
        let shares = deal_shares(key(), 2, &mut rng(100)).unwrap();
        let parts = partials(&shares, file, 500);
        let bytes = parts[0].to_bytes();
        assert_eq!(bytes.len(), 8 * VALUES + 125 + CONTEXT.len());
        assert_eq!(bytes[..4], *b"HTLY");
        let decoded = PartialDecryption::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, parts[0]);
        assert_eq!(decoded.context(), CONTEXT);
        assert_eq!(
            &combine(&[decoded, parts[1].clone()], file, CONTEXT).unwrap(),
            expected
        );
        // Every single-bit flip anywhere is rejected, without a panic.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(PartialDecryption::from_bytes(&bad).is_err(), "flip at {i}");
        }
        // A flipped value word fails the commitment, naming the trustee.
        let mut bad = bytes.clone();
        let word = 93 + CONTEXT.len() + 8 * 5;
        bad[word..word + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            PartialDecryption::from_bytes(&bad),
            Err(ThresholdError::CommitmentMismatch { trustee: Some(1) })
        ));
        // Every truncation, and trailing bytes.
        for len in 0..bytes.len() {
            assert!(
                PartialDecryption::from_bytes(&bytes[..len]).is_err(),
                "{len}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(PartialDecryption::from_bytes(&long).is_err());
        // A huge value count is refused before any read.
        let mut huge = bytes.clone();
        let at = 89 + CONTEXT.len();
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            PartialDecryption::from_bytes(&huge),
            Err(ThresholdError::Codec(CodecError::TooLong { .. }))
        ));
        // A key share is not a partial decryption, and the other way.
        let share_bytes = shares[0].to_bytes();
        assert!(PartialDecryption::from_bytes(&share_bytes).is_err());
        assert!(KeyShare::from_bytes(&bytes).is_err());
        // Random bytes never panic.
        let mut r = rng(101);
        for _ in 0..2000 {
            let len = r.gen_range(0..300);
            let mut junk: Vec<u8> = (0..len).map(|_| r.gen()).collect();
            if len > 7 && r.gen() {
                junk[..7].copy_from_slice(&bytes[..7]);
            }
            assert!(PartialDecryption::from_bytes(&junk).is_err());
        }
    }

    #[test]
    fn key_share_encoding_round_trips_hides_and_rejects_corruption() {
        let (file, expected) = test_release();
        let shares = deal_shares(key(), 3, &mut rng(110)).unwrap();
        let bytes: Vec<Vec<u8>> = shares.iter().map(KeyShare::to_bytes).collect();
        assert_eq!(bytes[0].len(), 49_229);
        let decoded: Vec<KeyShare> = bytes
            .iter()
            .map(|b| KeyShare::from_bytes(b).unwrap())
            .collect();
        for (d, (s, b)) in decoded.iter().zip(shares.iter().zip(&bytes)) {
            assert_eq!(d.index(), s.index());
            assert_eq!(d.trustees(), 3);
            assert_eq!(d.key_fingerprint(), key().public_key().fingerprint());
            assert_eq!(&d.to_bytes(), b);
        }
        let parts = partials(&decoded, file, 600);
        assert_eq!(&combine(&parts, file, CONTEXT).unwrap(), expected);
        // Debug shows no share words.
        let debug = format!("{:?}", shares[0]);
        assert!(debug.contains("redacted"), "{debug}");
        assert!(!debug.contains(&shares[0].key[0].to_string()), "{debug}");
        assert!(debug.len() < 200, "{debug}");
        // Corruption anywhere fails the checksum or the framing.
        let one = &bytes[0];
        for i in (0..one.len()).step_by(61).chain(0..48) {
            let mut bad = one.clone();
            bad[i] ^= 0x80;
            assert!(KeyShare::from_bytes(&bad).is_err(), "flip at {i}");
        }
        for len in (0..one.len()).step_by(97).chain(one.len() - 40..one.len()) {
            assert!(KeyShare::from_bytes(&one[..len]).is_err(), "{len}");
        }
        let mut long = one.clone();
        long.push(0);
        assert!(KeyShare::from_bytes(&long).is_err());
        // A secret key file is not a share.
        assert!(KeyShare::from_bytes(&key().to_bytes()).is_err());
    }

    /// The figures of the module docs for `histogram:1024` (J = 1024).
    #[test]
    fn smudging_figures_for_histogram_1024() {
        let p = PKE_ZKV2_2048;
        let j = 1024;
        // The default batch (the largest feasible, 16,777,215 reports at
        // Delta = 2^39) and a 10,000-report batch at its task Delta 2^34:
        // no room at all.
        for (k, d) in [(16_777_216u64, 39u32), (10_001, 34)] {
            assert_eq!(p.min_delta_for(k).unwrap().log2(), d);
            for n in [2, 3, 5, 64] {
                assert!(matches!(
                    smudging(p, Delta::new(d).unwrap(), k, j, n),
                    Err(ThresholdError::InsufficientSmudging { achieved: None, .. })
                ));
            }
        }
        // lambda = 40 fits no Delta.
        assert!(threshold_delta_for(p, 10_001, j, 3, 40).is_err());
        // What fits, N = 3: Delta and lambda.
        let mut table = Vec::new();
        for k in [101u64, 1_001, 10_001, 100_001] {
            for d in (34..=60).step_by(2) {
                let lambda = smudging(p, Delta::new(d).unwrap(), k, j, 3).map(|s| s.lambda);
                table.push((k, d, lambda.ok()));
            }
        }
        for (k, d, l) in &table {
            eprintln!(
                "K = {k:>7}, Delta = 2^{d}, plaintext bits {}: lambda {l:?}",
                64 - d
            );
        }
        let at = |k, d| {
            smudging(p, Delta::new(d).unwrap(), k, j, 3)
                .map(|s| s.lambda)
                .ok()
        };
        // 10,000 reports need 15 plaintext bits, so Delta <= 2^49.
        assert_eq!(at(10_001, 49), Some(4));
        assert_eq!(p.noise_bound(10_001).ilog2(), 32);
        let for_lambda = |l| {
            threshold_delta_for(p, 10_001, j, 3, l)
                .map(|d| d.log2())
                .ok()
        };
        assert_eq!(for_lambda(0), Some(45));
        assert_eq!(for_lambda(4), Some(49));
        assert_eq!(for_lambda(10), Some(55));
        assert_eq!(for_lambda(20), None);
        // The default batch reaches lambda = 10 only at Delta = 2^60, which
        // leaves 4 plaintext bits for sums up to 2^24.
        assert_eq!(at(16_777_216, 60), Some(10));
    }

    /// Timings for a `histogram:1024` aggregate. Run with
    /// `cargo test -p hetally-lwe --release threshold_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing figures, not a check"]
    fn threshold_timing_histogram_1024() {
        let sk = key();
        let pk = sk.public_key();
        let delta = Delta::new(48).unwrap();
        let mut r = rng(120);
        let lists: Vec<CiphertextList> = (0..100)
            .map(|_| {
                let values: Vec<i128> = (0..1024).map(|_| r.gen_range(0..2)).collect();
                pk.encrypt(&values, delta, &mut r).unwrap()
            })
            .collect();
        let sum = sum_lists(&lists).unwrap().unwrap();
        let file = aggregate(pk, delta, &[sum], 100);
        let whole = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
        let decrypter = TfheDecrypter::new(whole);
        let _ = decrypter.decrypt(&file).unwrap();
        let started = Instant::now();
        let ordinary = decrypter.decrypt(&file).unwrap();
        let ordinary_time = started.elapsed();
        let shares = deal_shares(sk, 3, &mut r).unwrap();
        let started = Instant::now();
        let parts: Vec<PartialDecryption> = shares
            .iter()
            .map(|s| s.partial_decrypt(&file, CONTEXT, 0, &mut r).unwrap())
            .collect();
        let partial_time = started.elapsed() / 3;
        let started = Instant::now();
        let values = combine(&parts, &file, CONTEXT).unwrap();
        let combine_time = started.elapsed();
        assert_eq!(values, ordinary);
        let started = Instant::now();
        let encoded = parts[0].to_bytes();
        let decoded = PartialDecryption::from_bytes(&encoded).unwrap();
        let codec_time = started.elapsed();
        assert_eq!(decoded, parts[0]);
        eprintln!(
            "histogram:1024, 3 trustees, lambda {}: ordinary decrypt {ordinary_time:?}, \
             partial_decrypt {partial_time:?} per trustee, combine {combine_time:?}, \
             partial encode+decode {codec_time:?} ({} bytes)",
            parts[0].lambda(),
            encoded.len()
        );
    }
}
