//! Threshold decryption (feature `gmp`): a trusted dealer splits a Paillier
//! secret key among N trustees so that any T of them can decrypt together,
//! while fewer than T learn nothing about the plaintexts.
//!
//! This is Shoup's threshold RSA (Eurocrypt 2000) carried over to Paillier
//! by Fouque, Poupard and Stern ("Sharing decryption in the context of
//! voting or lotteries", FC 2000) and by Damgård and Jurik (PKC 2001, with
//! s = 1). Encryption is unchanged: clients use the ordinary
//! [`PublicKey`] (g = n + 1, fast form with base h), so a threshold key
//! serves existing tasks and clients as is.
//!
//! # Dealing ([`deal`], [`generate_threshold`])
//!
//! * n = pq with safe primes p = 2p' + 1 and q = 2q' + 1; m = p'q'.
//! * The shared secret d satisfies d = 0 mod m and d = 1 mod n.
//! * Δ = N!. The dealer draws f(X) = d + a_1 X + ... + a_{T-1} X^{T-1} with
//!   each a_j uniform in [0, nm), and gives trustee i (1 ≤ i ≤ N) its share
//!   s_i = f(i) mod nm.
//! * Verification base v = r^2 mod n^2 for a random unit r (a random
//!   square, which generates the squares of Z_{n^2}^* with overwhelming
//!   probability); verification values v_i = v^(Δ s_i) mod n^2.
//! * The dealer's intermediate secrets (p, q, p', q', m, d, nm and the
//!   coefficients) live in wrappers that overwrite them when dropped; GMP
//!   may leave copies in freed temporaries, which no safe code can reach.
//!
//! # Partial decryption ([`KeyShare::partial_decrypt`])
//!
//! For each ciphertext c of a release, trustee i publishes
//! c_i = c^(2Δ s_i) mod n^2 with a non-interactive proof of the statement
//!
//! ```text
//! log_{c^4}(c_i^2) = log_v(v_i)      (both equal Δ s_i)
//! ```
//!
//! which shows that c_i was computed with the share that v_i commits to.
//! Prover: r uniform below 2^R, R = 2·modulus_bits + bits(Δ) + 128 + 128,
//! so that z statistically hides e·Δ·s_i (< 2^(128 + bits(Δ) + 2·modulus_bits))
//! to within 2^-128; a = (c^4)^r, b = v^r; e = the first 16 bytes of
//! SHA-256 over the transcript below, read as a 128-bit integer;
//! z = r + e·Δ·s_i over the integers (so z < 2^(R+1)). The proof is (e, z).
//! The verifier checks 0 ≤ z < 2^(R+1), that c and c_i are units below n^2,
//! recomputes a = (c^4)^z · (c_i^2)^-e and b = v^z · v_i^-e mod n^2 and
//! accepts if the transcript hashes to e: the same check as "a and b match"
//! for proofs that carry a and b, at a third of the size.
//!
//! The transcript is SHA-256 over labelled fields, each written as
//! `u32 label length || label || u64 value length || value`:
//! `domain` ([`PROOF_DOMAIN`]), `key` (the threshold key's fingerprint),
//! `trustee` (u16 index), `context` (the caller's bytes), `position` (u64
//! index of the ciphertext in the release), then `c`, `c_i`, `v`, `v_i`,
//! `a`, `b`, each as [`PublicKey::ciphertext_len`] big-endian bytes.
//!
//! The proof is about c_i^2, so it fixes c_i only up to a factor of order
//! 2; combining raises every c_i to an even power, which removes it.
//!
//! # Combining ([`ThresholdPublicKey::combine`])
//!
//! Given valid partials from a set S of exactly T trustees,
//! c' = Π_{i∈S} c_i^(2λ_i) mod n^2 with λ_i = Δ Π_{j∈S, j≠i} j / (j - i),
//! an integer since Δ = N!. Then c' = c^(4Δ^2 d) = (1 + n)^(4Δ^2 M), so
//! M = L(c') · (4Δ^2)^-1 mod n with L(x) = (x - 1) / n; c' - 1 not
//! divisible by n is reported as [`ThresholdError::Inconsistent`].
//! Every partial given is verified; invalid ones and repeats are reported
//! in [`Combined::rejected`] and do not stop decryption while T valid
//! ones remain.
//!
//! # Limits
//!
//! 2 ≤ T ≤ N ≤ [`MAX_TRUSTEES`] (64); contexts of at most
//! [`MAX_CONTEXT_BYTES`]; at most `hetally_protocol::aggregate::MAX_CIPHERTEXTS`
//! (2^20) ciphertexts per partial decryption.
//!
//! # Formats
//!
//! `ct` is [`PublicKey::ciphertext_len`] bytes (512 for a 2048-bit
//! modulus, 768 for 3072), every integer big-endian and left-padded. All
//! three files start with the key-file framing of `hetally-protocol`:
//! `"HTLY" | u8 version = 1 | u8 kind | u8 scheme = 1 (Paillier)`.
//!
//! Threshold public key (kind 4, [`ThresholdPublicKey::to_bytes`]):
//!
//! ```text
//! u16 modulus_bits | n (modulus_bits/8) | h (modulus_bits/8)   -- the public key body
//! u16 trustees N | u16 threshold T
//! v (ct) | v_1 (ct) | ... | v_N (ct)
//! ```
//!
//! Key share (kind 5, [`KeyShare::to_bytes`]; secret):
//!
//! ```text
//! threshold public key body (as above, without framing)
//! u16 index i | s_i (ct)
//! ```
//!
//! Partial decryption (kind 6, [`PartialDecryption::to_bytes`]), with
//! `zl` = ceil((R + 1) / 8) bytes (545 for 2048 bits and N = 5):
//!
//! ```text
//! threshold public key body (as above, without framing)
//! u16 index i | u32 context length | context
//! u32 count | count x ( c_i (ct) | e (16) | z (zl) )
//! ```

use std::fmt;
use std::sync::Arc;

use hetally_protocol::aggregate::MAX_CIPHERTEXTS;
use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::{Complete, Integer};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::arith::{random_below, random_bits, Int};
use crate::key::{Ciphertext, PublicKey, SUPPORTED_MODULUS_BITS};
use crate::keygen::{self, wipe, KeygenProgress};
use crate::PaillierError;

/// Most trustees a key can have. Δ = N! grows every exponent by
/// bits(N!) (296 bits for 64), and a larger committee is better served by
/// an interactive protocol.
pub const MAX_TRUSTEES: u16 = crate::key::MAX_TRUSTEES;

/// Longest context a partial decryption binds, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// Bits of a proof's challenge e.
pub const CHALLENGE_BITS: u32 = 128;

/// The prover's randomness exceeds e·Δ·s_i by this many bits, so that z
/// leaks at most 2^-128 (statistical distance) about the share.
pub const STATISTICAL_BITS: u32 = 128;

/// Domain tag of the partial-decryption proof transcript.
pub const PROOF_DOMAIN: &[u8] = b"hetally paillier threshold partial decryption proof v1";

/// Errors from threshold keys, partial decryptions and combining.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThresholdError {
    /// The trustee count or threshold is not acceptable.
    #[error("invalid threshold parameters: {0}")]
    InvalidParams(String),
    /// A trustee's proof does not verify: its partial decryption is wrong,
    /// was made with another share, or was altered.
    #[error(
        "trustee {trustee}'s partial decryption has an invalid proof (first bad ciphertext: \
         {position}); ask the trustee to decrypt again with their own key share"
    )]
    InvalidProof {
        /// The trustee.
        trustee: u16,
        /// The first ciphertext whose proof fails.
        position: usize,
    },
    /// Fewer than T trustees sent valid partial decryptions.
    #[error(
        "only {valid} valid partial decryptions from distinct trustees, {needed} needed{}",
        summarize(.rejected)
    )]
    NotEnough {
        /// Valid partials from distinct trustees.
        valid: usize,
        /// The threshold T.
        needed: usize,
        /// Every partial that was rejected, and why.
        rejected: Vec<Rejection>,
    },
    /// A second partial decryption from a trustee already counted.
    #[error(
        "trustee {trustee} sent more than one partial decryption; only the first valid one counts"
    )]
    DuplicateTrustee {
        /// The trustee.
        trustee: u16,
    },
    /// The partial names a trustee this key does not have.
    #[error(
        "partial decryption from trustee {trustee}, but this key has trustees 1 to {trustees}"
    )]
    UnknownTrustee {
        /// The index found.
        trustee: u16,
        /// N.
        trustees: u16,
    },
    /// The partial covers another number of ciphertexts than the release.
    #[error(
        "trustee {trustee}'s partial decryption covers {found} ciphertexts but the release has \
         {expected}: it was made for another release"
    )]
    WrongCiphertextCount {
        /// The trustee.
        trustee: u16,
        /// Ciphertexts in the release.
        expected: usize,
        /// Values in the partial.
        found: usize,
    },
    /// The partial was made for another context (another release).
    #[error(
        "trustee {trustee}'s partial decryption was made for another context (another release?)"
    )]
    ContextMismatch {
        /// The trustee.
        trustee: u16,
    },
    /// The partial was made under another threshold key.
    #[error("trustee {trustee}'s partial decryption was made under another threshold key")]
    KeyMismatch {
        /// The trustee.
        trustee: u16,
    },
    /// A ciphertext of the release is not valid under this key.
    #[error(
        "ciphertext {position} is not a unit below n^2 for this key (wrong key for this release?)"
    )]
    InvalidCiphertext {
        /// Its position in the release.
        position: usize,
    },
    /// More ciphertexts than a partial decryption may hold.
    #[error("{count} ciphertexts, over the limit of {MAX_CIPHERTEXTS}")]
    TooManyCiphertexts {
        /// The count given.
        count: usize,
    },
    /// The context is too long.
    #[error("the context is {len} bytes, over the limit of {MAX_CONTEXT_BYTES}")]
    ContextTooLong {
        /// Its length.
        len: usize,
    },
    /// Valid-looking partials did not combine to a plaintext.
    #[error(
        "the partial decryptions do not combine to a plaintext (inconsistent partials or wrong \
         key)"
    )]
    Inconsistent,
    /// A key failed validation.
    #[error(transparent)]
    Paillier(#[from] PaillierError),
    /// Malformed encoding.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

fn summarize(rejected: &[Rejection]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rejected.iter().map(|r| r.reason.to_string()).collect();
    format!(" (rejected: {})", list.join("; "))
}

/// A partial decryption [`ThresholdPublicKey::combine`] did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The trustee index the partial claims.
    pub trustee: u16,
    /// Why it was rejected ([`ThresholdError::InvalidProof`],
    /// [`ThresholdError::ContextMismatch`], [`ThresholdError::DuplicateTrustee`], ...).
    pub reason: ThresholdError,
}

/// The result of [`ThresholdPublicKey::combine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    /// One plaintext per ciphertext, in [0, n), as
    /// [`crate::SecretKey::decrypt`] returns them (map them through
    /// [`PublicKey::to_signed`] for packed slots with negative values, as
    /// [`crate::SecretKey::decrypt_all_signed`] does).
    pub plaintexts: Vec<Integer>,
    /// The T trustees whose partials were used: the T smallest indices
    /// among the valid partials, ascending.
    pub used: Vec<u16>,
    /// Every partial rejected, in input order. Valid partials beyond the T
    /// used are neither used nor rejected.
    pub rejected: Vec<Rejection>,
}

/// How many trustees hold shares (N) and how many decrypt (T).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThresholdParams {
    trustees: u16,
    threshold: u16,
}

impl ThresholdParams {
    /// T of N: 2 ≤ T ≤ N ≤ [`MAX_TRUSTEES`]. A threshold of 1 would let any
    /// one trustee decrypt alone: use an ordinary key instead.
    pub fn new(trustees: u16, threshold: u16) -> Result<Self, ThresholdError> {
        if threshold < 2 {
            return Err(ThresholdError::InvalidParams(format!(
                "a threshold of {threshold}: it must be at least 2 (with 1, any single trustee \
                 decrypts alone; use an ordinary key for a single key holder)"
            )));
        }
        if trustees > MAX_TRUSTEES {
            return Err(ThresholdError::InvalidParams(format!(
                "{trustees} trustees, over the limit of {MAX_TRUSTEES}"
            )));
        }
        if threshold > trustees {
            return Err(ThresholdError::InvalidParams(format!(
                "a threshold of {threshold} is more than the {trustees} trustees"
            )));
        }
        Ok(ThresholdParams {
            trustees,
            threshold,
        })
    }

    /// N, the number of trustees.
    pub fn trustees(self) -> u16 {
        self.trustees
    }

    /// T, how many trustees decrypt together.
    pub fn threshold(self) -> u16 {
        self.threshold
    }

    /// Δ = N!.
    pub fn delta(self) -> Integer {
        Integer::factorial(u32::from(self.trustees)).complete()
    }
}

/// An integer overwritten when dropped: the dealer's intermediate secrets,
/// a share, a prover's randomness.
struct Secret(Integer);

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// base^exp mod m for exp >= 0 (GMP's, through [`Int`]: rug's own
/// `pow_mod` consumes its receiver).
fn pow(base: &Integer, exp: &Integer, m: &Integer) -> Integer {
    Int::pow_mod(base, exp, m)
}

/// `x` is a unit of Z_{n^2} given as an integer in [1, n^2).
fn is_unit_below_n_squared(x: &Integer, public: &PublicKey<Integer>) -> bool {
    *x > 0 && x < public.n_squared() && x.gcd_is_one(public.n())
}

/// A threshold public key: the ordinary Paillier [`PublicKey`] clients
/// encrypt with, the parameters T of N, and the verification base and
/// values that partial-decryption proofs are checked against.
///
/// Cheap to clone; clones share their data.
#[derive(Clone)]
pub struct ThresholdPublicKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    public: PublicKey<Integer>,
    params: ThresholdParams,
    /// Δ = N!.
    delta: Integer,
    /// The verification base v.
    v: Integer,
    /// v_1 .. v_N, trustee i at i - 1.
    verification: Vec<Integer>,
    /// (4Δ^2)^-1 mod n.
    combine_factor: Integer,
    /// R: bits of the prover's randomness.
    r_bits: u32,
    /// Bytes of an encoded z, which has at most R + 1 bits.
    z_len: usize,
    file: Vec<u8>,
    fingerprint: [u8; 32],
}

impl ThresholdPublicKey {
    /// Builds and checks a key from its parts.
    fn new(
        public: PublicKey<Integer>,
        params: ThresholdParams,
        v: Integer,
        verification: Vec<Integer>,
    ) -> Result<Self, PaillierError> {
        if v <= 1 || !is_unit_below_n_squared(&v, &public) {
            return Err(PaillierError::InvalidKey(
                "the verification base v is not a unit other than 1 below n^2",
            ));
        }
        if verification.len() != usize::from(params.trustees) {
            return Err(PaillierError::InvalidKey(
                "the key does not have one verification value per trustee",
            ));
        }
        if !verification
            .iter()
            .all(|vi| is_unit_below_n_squared(vi, &public))
        {
            return Err(PaillierError::InvalidKey(
                "a verification value is not a unit below n^2",
            ));
        }
        let delta = params.delta();
        let four_delta_squared = Integer::from(delta.square_ref()) << 2u32;
        let combine_factor = four_delta_squared
            .invert(public.n())
            .map_err(|_| PaillierError::InvalidKey("the modulus shares a factor with 4 (N!)^2"))?;
        let r_bits = 2 * public.modulus_bits()
            + delta.significant_bits()
            + CHALLENGE_BITS
            + STATISTICAL_BITS;
        let z_len = (r_bits as usize + 1).div_ceil(8);
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::ThresholdPublicKey, Scheme::Paillier);
        encode_key_body(&mut w, &public, params, &v, &verification);
        let file = w.finish();
        let fingerprint = keyfile::fingerprint(&file);
        // The encryption key as clients and the server read it from this
        // file: the same n and h, with this file's fingerprint and T of N.
        let public = PublicKey::from_bytes(&file)?;
        Ok(ThresholdPublicKey {
            inner: Arc::new(KeyInner {
                public,
                params,
                delta,
                v,
                verification,
                combine_factor,
                r_bits,
                z_len,
                file,
                fingerprint,
            }),
        })
    }

    /// The encryption key: n and h, what clients encrypt with, read from
    /// the threshold key file as clients and the server read it, so its
    /// [`PublicKey::fingerprint`] is [`Self::fingerprint`] (what tasks and
    /// aggregate files name) and its [`PublicKey::trustees`] gives N and T.
    pub fn public_key(&self) -> &PublicKey<Integer> {
        &self.inner.public
    }

    /// T of N.
    pub fn params(&self) -> ThresholdParams {
        self.inner.params
    }

    /// SHA-256 of the whole threshold key file ([`Self::to_bytes`]), as
    /// for [`Self::public_key`].
    pub fn fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint
    }

    /// The verification base v.
    pub fn verification_base(&self) -> &Integer {
        &self.inner.v
    }

    /// v_i for trustee `index` in 1..=N.
    pub fn verification_value(&self, index: u16) -> Option<&Integer> {
        usize::from(index)
            .checked_sub(1)
            .and_then(|i| self.inner.verification.get(i))
    }

    /// The threshold public key file: framing, then body. What the
    /// fingerprint hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.file.clone()
    }

    /// Appends the key's body (without the file framing).
    pub fn encode_body(&self, w: &mut Writer) {
        let k = &self.inner;
        encode_key_body(w, &k.public, k.params, &k.v, &k.verification);
    }

    /// Decodes and validates a body written by [`Self::encode_body`].
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, ThresholdError> {
        let public = PublicKey::<Integer>::decode_body(r)?;
        let trustees = r.u16("trustee count")?;
        let threshold = r.u16("threshold")?;
        let params = ThresholdParams::new(trustees, threshold)?;
        let len = public.ciphertext_len();
        let v = Integer::from_be_bytes(r.bytes(len, "verification base v")?);
        let mut verification = Vec::with_capacity(usize::from(trustees));
        for _ in 0..trustees {
            verification.push(Integer::from_be_bytes(r.bytes(len, "verification value")?));
        }
        Ok(Self::new(public, params, v, verification)?)
    }

    /// Decodes and validates a threshold public key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let mut r = Reader::new(bytes);
        read_paillier_header(&mut r, FileKind::ThresholdPublicKey)?;
        let key = Self::decode_body(&mut r)?;
        r.finish("threshold public key file")?;
        Ok(key)
    }

    fn check_release(
        &self,
        cts: &[Ciphertext<Integer>],
        context: &[u8],
    ) -> Result<(), ThresholdError> {
        check_context(context)?;
        if cts.len() > MAX_CIPHERTEXTS {
            return Err(ThresholdError::TooManyCiphertexts { count: cts.len() });
        }
        match cts
            .par_iter()
            .position_first(|c| !is_unit_below_n_squared(c.as_integer(), &self.inner.public))
        {
            Some(position) => Err(ThresholdError::InvalidCiphertext { position }),
            None => Ok(()),
        }
    }

    /// Checks one trustee's partial decryption of `cts` under `context`:
    /// the trustee exists, the partial was made under this key, for this
    /// context and this many ciphertexts, and every proof verifies.
    pub fn verify_partial(
        &self,
        part: &PartialDecryption,
        cts: &[Ciphertext<Integer>],
        context: &[u8],
    ) -> Result<(), ThresholdError> {
        self.check_release(cts, context)?;
        self.verify_checked(part, cts, context)
    }

    /// [`Self::verify_partial`] for a release already checked.
    fn verify_checked(
        &self,
        part: &PartialDecryption,
        cts: &[Ciphertext<Integer>],
        context: &[u8],
    ) -> Result<(), ThresholdError> {
        let trustee = part.index;
        let k = &self.inner;
        if trustee == 0 || trustee > k.params.trustees {
            return Err(ThresholdError::UnknownTrustee {
                trustee,
                trustees: k.params.trustees,
            });
        }
        if part.key.fingerprint() != k.fingerprint {
            return Err(ThresholdError::KeyMismatch { trustee });
        }
        if part.context != context {
            return Err(ThresholdError::ContextMismatch { trustee });
        }
        if part.values.len() != cts.len() || part.proofs.len() != cts.len() {
            return Err(ThresholdError::WrongCiphertextCount {
                trustee,
                expected: cts.len(),
                found: part.values.len(),
            });
        }
        let bad = (0..cts.len()).into_par_iter().position_first(|pos| {
            !self.verify_one(
                trustee,
                context,
                pos,
                cts[pos].as_integer(),
                &part.values[pos],
                &part.proofs[pos],
            )
        });
        match bad {
            Some(position) => Err(ThresholdError::InvalidProof { trustee, position }),
            None => Ok(()),
        }
    }

    /// Verifies the proof for one ciphertext c and partial value c_i.
    fn verify_one(
        &self,
        index: u16,
        context: &[u8],
        position: usize,
        c: &Integer,
        c_i: &Integer,
        proof: &PartialProof,
    ) -> bool {
        let k = &self.inner;
        let n2 = k.public.n_squared();
        if proof.z.is_negative()
            || proof.z.significant_bits() > k.r_bits + 1
            || !is_unit_below_n_squared(c_i, &k.public)
        {
            return false;
        }
        let Some(v_i) = self.verification_value(index) else {
            return false;
        };
        let e = Integer::from(proof.e);
        let c4 = pow(c, &Integer::from(4), n2);
        let mut ci2 = c_i.clone();
        ci2.square_mod_assign(n2);
        // Units, checked above, so the inverses exist.
        let (Some(ci2_inv), Some(vi_inv)) = (ci2.invert_mod(n2), v_i.invert_mod(n2)) else {
            return false;
        };
        let mut a = pow(&c4, &proof.z, n2);
        a.mul_mod_assign(&pow(&ci2_inv, &e, n2), n2);
        let mut b = pow(&k.v, &proof.z, n2);
        b.mul_mod_assign(&pow(&vi_inv, &e, n2), n2);
        self.challenge(index, context, position, [c, c_i, &k.v, v_i, &a, &b]) == proof.e
    }

    /// The Fiat–Shamir challenge; see the module docs.
    fn challenge(
        &self,
        index: u16,
        context: &[u8],
        position: usize,
        elements: [&Integer; 6],
    ) -> u128 {
        let k = &self.inner;
        let len = k.public.ciphertext_len();
        let mut h = Sha256::new();
        let mut field = |label: &[u8], value: &[u8]| {
            // Labels are constants and values at most a few KB.
            h.update((label.len() as u32).to_be_bytes());
            h.update(label);
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field(b"domain", PROOF_DOMAIN);
        field(b"key", &k.fingerprint);
        field(b"trustee", &index.to_be_bytes());
        field(b"context", context);
        field(b"position", &(position as u64).to_be_bytes());
        let labels: [&[u8]; 6] = [b"c", b"c_i", b"v", b"v_i", b"a", b"b"];
        for (label, x) in labels.into_iter().zip(elements) {
            field(label, &x.to_be_bytes_padded(len));
        }
        let digest = h.finalize();
        let mut e = [0u8; 16];
        e.copy_from_slice(&digest[..16]);
        u128::from_be_bytes(e)
    }

    /// Decrypts `cts` from the partial decryptions `parts`, made for
    /// `context`.
    ///
    /// Every partial is verified ([`Self::verify_partial`]); the invalid
    /// ones, and repeats of a trustee already counted, are listed in
    /// [`Combined::rejected`]. If at least T distinct trustees remain, the T
    /// with the smallest indices are combined ([`Combined::used`]);
    /// otherwise the result is [`ThresholdError::NotEnough`], which lists the
    /// rejections too.
    pub fn combine(
        &self,
        cts: &[Ciphertext<Integer>],
        context: &[u8],
        parts: &[PartialDecryption],
    ) -> Result<Combined, ThresholdError> {
        self.check_release(cts, context)?;
        let k = &self.inner;
        let verdicts: Vec<Result<(), ThresholdError>> = parts
            .par_iter()
            .map(|part| self.verify_checked(part, cts, context))
            .collect();
        let mut rejected = Vec::new();
        let mut counted = vec![false; usize::from(k.params.trustees) + 1];
        let mut valid: Vec<&PartialDecryption> = Vec::new();
        for (part, verdict) in parts.iter().zip(verdicts) {
            let trustee = part.index;
            match verdict {
                Err(reason) => rejected.push(Rejection { trustee, reason }),
                // A valid partial has 1 <= index <= N.
                Ok(()) if counted[usize::from(trustee)] => rejected.push(Rejection {
                    trustee,
                    reason: ThresholdError::DuplicateTrustee { trustee },
                }),
                Ok(()) => {
                    counted[usize::from(trustee)] = true;
                    valid.push(part);
                }
            }
        }
        let needed = usize::from(k.params.threshold);
        if valid.len() < needed {
            return Err(ThresholdError::NotEnough {
                valid: valid.len(),
                needed,
                rejected,
            });
        }
        valid.sort_by_key(|p| p.index);
        valid.truncate(needed);
        let plaintexts = self.combine_verified(&valid, cts.len())?;
        Ok(Combined {
            plaintexts,
            used: valid.iter().map(|p| p.index).collect(),
            rejected,
        })
    }

    /// Combines exactly T verified partials of distinct trustees.
    fn combine_verified(
        &self,
        parts: &[&PartialDecryption],
        count: usize,
    ) -> Result<Vec<Integer>, ThresholdError> {
        let k = &self.inner;
        let n = k.public.n();
        let n2 = k.public.n_squared();
        let set: Vec<u16> = parts.iter().map(|p| p.index).collect();
        // (base inverted or not, exponent 2|λ_i|) per trustee.
        let exponents: Vec<(bool, Integer)> = lagrange_coefficients(&k.delta, &set)
            .into_iter()
            .map(|lambda| {
                let negative = lambda < 0;
                (negative, lambda.abs() << 1u32)
            })
            .collect();
        (0..count)
            .into_par_iter()
            .map(|pos| {
                let mut acc = Integer::from(1);
                for (part, (negative, exponent)) in parts.iter().zip(&exponents) {
                    let value = &part.values[pos];
                    let base = if *negative {
                        value.invert_mod(n2).ok_or(ThresholdError::Inconsistent)?
                    } else {
                        value.clone()
                    };
                    acc.mul_mod_assign(&pow(&base, exponent, n2), n2);
                }
                // acc = (1 + n)^(4Δ^2 M) = 1 + 4Δ^2 M n mod n^2.
                acc -= 1u32;
                if !acc.is_divisible(n) {
                    return Err(ThresholdError::Inconsistent);
                }
                acc.div_exact_mut(n);
                acc *= &k.combine_factor;
                acc.modulo_mut(n);
                Ok(acc)
            })
            .collect()
    }

    /// Decodes a partial decryption file and checks it was made under this
    /// key.
    pub fn partial_from_bytes(&self, bytes: &[u8]) -> Result<PartialDecryption, ThresholdError> {
        let part = PartialDecryption::from_bytes(bytes)?;
        if part.key.fingerprint() != self.inner.fingerprint {
            return Err(ThresholdError::KeyMismatch {
                trustee: part.index,
            });
        }
        Ok(part)
    }
}

/// λ_i = Δ Π_{j∈S, j≠i} j / (j - i) for each i in `set`, in its order.
fn lagrange_coefficients(delta: &Integer, set: &[u16]) -> Vec<Integer> {
    set.iter()
        .map(|&i| {
            let mut numerator = delta.clone();
            let mut denominator = Integer::from(1);
            for &j in set.iter().filter(|&&j| j != i) {
                numerator *= j;
                denominator *= i32::from(j) - i32::from(i);
            }
            // |Π (j - i)| is a product of distinct integers from 1..i-1 and
            // from 1..N-i, so it divides (i-1)! (N-i)!, which divides N! = Δ.
            debug_assert!(numerator.is_divisible(&denominator));
            numerator.div_exact(&denominator)
        })
        .collect()
}

fn encode_key_body(
    w: &mut Writer,
    public: &PublicKey<Integer>,
    params: ThresholdParams,
    v: &Integer,
    verification: &[Integer],
) {
    let len = public.ciphertext_len();
    public.encode_body(w);
    w.u16(params.trustees).u16(params.threshold);
    w.bytes(&v.to_be_bytes_padded(len));
    for vi in verification {
        w.bytes(&vi.to_be_bytes_padded(len));
    }
}

/// Reads the framing of a file of `kind` and checks it is a Paillier file.
fn read_paillier_header(r: &mut Reader<'_>, kind: FileKind) -> Result<(), ThresholdError> {
    let scheme = keyfile::read_key_header(r, kind)?;
    if scheme != Scheme::Paillier {
        return Err(ThresholdError::Codec(CodecError::invalid(
            "scheme",
            format!("a {scheme} file is not a Paillier threshold file"),
        )));
    }
    Ok(())
}

fn check_context(context: &[u8]) -> Result<(), ThresholdError> {
    if context.len() > MAX_CONTEXT_BYTES {
        return Err(ThresholdError::ContextTooLong { len: context.len() });
    }
    Ok(())
}

impl PartialEq for ThresholdPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fingerprint == other.inner.fingerprint
    }
}

impl Eq for ThresholdPublicKey {}

impl fmt::Debug for ThresholdPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdPublicKey")
            .field("modulus_bits", &self.inner.public.modulus_bits())
            .field("trustees", &self.inner.params.trustees)
            .field("threshold", &self.inner.params.threshold)
            .field("fingerprint", &hex::encode(&self.inner.fingerprint[..8]))
            .finish_non_exhaustive()
    }
}

/// One trustee's share s_i of a threshold secret key, with the threshold
/// public key it belongs to.
///
/// `Debug` never prints the share, and it is overwritten on drop.
pub struct KeyShare {
    key: ThresholdPublicKey,
    index: u16,
    share: Integer,
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        wipe(&mut self.share);
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("index", &self.index)
            .field("key", &self.key)
            .field("share", &"<redacted>")
            .finish()
    }
}

impl KeyShare {
    /// The trustee's index i, in 1..=N.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The threshold public key this share belongs to.
    pub fn public_key(&self) -> &ThresholdPublicKey {
        &self.key
    }

    /// Computes this trustee's partial decryption of `cts` (the
    /// ciphertexts of one release, in order), bound to `context` (for
    /// instance the release's task id and aggregate hash), with one proof
    /// per ciphertext. The work is spread across the rayon pool.
    pub fn partial_decrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        cts: &[Ciphertext<Integer>],
        context: &[u8],
        rng: &mut R,
    ) -> Result<PartialDecryption, ThresholdError> {
        self.key.check_release(cts, context)?;
        let k = &self.key.inner;
        let n2 = k.public.n_squared();
        // Drawn up front, in order, so that the output depends only on the
        // RNG and not on thread scheduling.
        let randomness: Vec<Secret> = (0..cts.len())
            .map(|_| Secret(random_bits(k.r_bits, rng)))
            .collect();
        let x = Secret(Integer::from(&k.delta * &self.share));
        let two_x = Secret(Integer::from(&x.0 << 1u32));
        let v_i = &k.verification[usize::from(self.index) - 1];
        let (values, proofs): (Vec<Integer>, Vec<PartialProof>) = cts
            .par_iter()
            .zip(randomness.par_iter())
            .enumerate()
            .map(|(position, (c, r))| {
                let c = c.as_integer();
                let c_i = pow(c, &two_x.0, n2);
                let c4 = pow(c, &Integer::from(4), n2);
                let a = pow(&c4, &r.0, n2);
                let b = pow(&k.v, &r.0, n2);
                let e =
                    self.key
                        .challenge(self.index, context, position, [c, &c_i, &k.v, v_i, &a, &b]);
                let ex = Secret(Integer::from(e) * &x.0);
                let z = Integer::from(&ex.0 + &r.0);
                (c_i, PartialProof { e, z })
            })
            .unzip();
        Ok(PartialDecryption {
            key: self.key.clone(),
            index: self.index,
            context: context.to_vec(),
            values,
            proofs,
            value_len: k.public.ciphertext_len(),
            z_len: k.z_len,
        })
    }

    /// The key share file: framing, the threshold public key body, the
    /// index and the share. Holds secret material: write it only with
    /// [`keyfile::write_private_file`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::KeyShare, Scheme::Paillier);
        self.key.encode_body(&mut w);
        w.u16(self.index);
        w.bytes(
            &self
                .share
                .to_be_bytes_padded(self.key.inner.public.ciphertext_len()),
        );
        w.finish()
    }

    /// Decodes a key share file and checks the share against its
    /// verification value (v^(Δ s_i) = v_i), so that a corrupted share is
    /// caught here rather than as failing proofs later.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let mut r = Reader::new(bytes);
        read_paillier_header(&mut r, FileKind::KeyShare)?;
        let key = ThresholdPublicKey::decode_body(&mut r)?;
        let index = r.u16("trustee index")?;
        let trustees = key.params().trustees;
        if index == 0 || index > trustees {
            return Err(ThresholdError::UnknownTrustee {
                trustee: index,
                trustees,
            });
        }
        let share = Secret(Integer::from_be_bytes(
            r.bytes(key.inner.public.ciphertext_len(), "key share")?,
        ));
        r.finish("key share file")?;
        let k = &key.inner;
        let exponent = Secret(Integer::from(&k.delta * &share.0));
        if pow(&k.v, &exponent.0, k.public.n_squared()) != k.verification[usize::from(index) - 1] {
            return Err(ThresholdError::Paillier(PaillierError::InvalidKey(
                "the key share does not match its verification value (corrupted share file?)",
            )));
        }
        Ok(KeyShare {
            index,
            share: share.0.clone(),
            key,
        })
    }
}

/// A proof that a partial value c_i = c^(2Δ s_i): see the module docs.
#[derive(Clone, PartialEq, Eq)]
struct PartialProof {
    /// The challenge.
    e: u128,
    /// The response r + e Δ s_i.
    z: Integer,
}

/// One trustee's partial decryption of a release: a value c_i per
/// ciphertext, each with its proof, bound to the threshold key, the
/// trustee index and a context.
///
/// Made by [`KeyShare::partial_decrypt`] or decoded (and range-checked) by
/// [`PartialDecryption::from_bytes`]; its proofs are checked by
/// [`ThresholdPublicKey::verify_partial`] and [`ThresholdPublicKey::combine`].
#[derive(Clone, PartialEq, Eq)]
pub struct PartialDecryption {
    /// The threshold key it claims to be made under (carried in the file,
    /// so that combining needs no other key file; a combiner accepts it
    /// only by its fingerprint).
    key: ThresholdPublicKey,
    index: u16,
    context: Vec<u8>,
    values: Vec<Integer>,
    proofs: Vec<PartialProof>,
    /// Encoded sizes under the key, for [`Self::to_bytes`].
    value_len: usize,
    z_len: usize,
}

impl fmt::Debug for PartialDecryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialDecryption")
            .field("index", &self.index)
            .field("key", &hex::encode(&self.key.fingerprint()[..8]))
            .field("context", &hex::encode(&self.context))
            .field("values", &self.values.len())
            .finish_non_exhaustive()
    }
}

impl PartialDecryption {
    /// The trustee index i.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The context the partial is bound to.
    pub fn context(&self) -> &[u8] {
        &self.context
    }

    /// The fingerprint of the threshold key it was made under.
    pub fn key_fingerprint(&self) -> [u8; 32] {
        self.key.fingerprint()
    }

    /// The threshold key it claims to be made under, as carried in its
    /// file. Trust it only if its fingerprint is the one expected (the one
    /// the release names).
    pub fn key(&self) -> &ThresholdPublicKey {
        &self.key
    }

    /// The values c_i, one per ciphertext.
    pub fn values(&self) -> &[Integer] {
        &self.values
    }

    /// The partial decryption file (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::PartialDecryption, Scheme::Paillier);
        self.key.encode_body(&mut w);
        w.u16(self.index);
        w.var_bytes(&self.context);
        w.count(self.values.len());
        for (value, proof) in self.values.iter().zip(&self.proofs) {
            w.bytes(&value.to_be_bytes_padded(self.value_len));
            w.bytes(&proof.e.to_be_bytes());
            w.bytes(&proof.z.to_be_bytes_padded(self.z_len));
        }
        w.finish()
    }

    /// Decodes a partial decryption file, checking its framing, the key it
    /// carries (whole, as [`ThresholdPublicKey::decode_body`] does), the
    /// trustee index, every length, and that every value is a unit below
    /// n^2 and every z in range. The proofs are checked later, against the
    /// release's ciphertexts, by a key the caller trusts
    /// ([`ThresholdPublicKey::partial_from_bytes`] checks the carried key
    /// is that one).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let mut r = Reader::new(bytes);
        read_paillier_header(&mut r, FileKind::PartialDecryption)?;
        let key = ThresholdPublicKey::decode_body(&mut r)?;
        let k = &key.inner;
        let index = r.u16("trustee index")?;
        if index == 0 || index > k.params.trustees {
            return Err(ThresholdError::UnknownTrustee {
                trustee: index,
                trustees: k.params.trustees,
            });
        }
        let context = r.var_bytes(MAX_CONTEXT_BYTES, "context")?.to_vec();
        let count = r.count(MAX_CIPHERTEXTS, "ciphertext count")?;
        let value_len = k.public.ciphertext_len();
        let z_len = k.z_len;
        // Never reserve more than the input can hold.
        let capacity = count.min(r.remaining() / (value_len + 16 + z_len));
        let mut values = Vec::with_capacity(capacity);
        let mut proofs = Vec::with_capacity(capacity);
        for _ in 0..count {
            let value = Integer::from_be_bytes(r.bytes(value_len, "partial decryption value")?);
            if !is_unit_below_n_squared(&value, &k.public) {
                return Err(ThresholdError::Codec(CodecError::invalid(
                    "partial decryption value",
                    "not a unit below n^2",
                )));
            }
            let e = u128::from_be_bytes(r.array("proof challenge")?);
            let z = Integer::from_be_bytes(r.bytes(z_len, "proof response")?);
            if z.significant_bits() > k.r_bits + 1 {
                return Err(ThresholdError::Codec(CodecError::invalid(
                    "proof response",
                    "larger than any honest proof's",
                )));
            }
            values.push(value);
            proofs.push(PartialProof { e, z });
        }
        r.finish("partial decryption file")?;
        Ok(PartialDecryption {
            key: key.clone(),
            index,
            context,
            values,
            proofs,
            value_len,
            z_len,
        })
    }
}

/// Splits the key with safe primes `p` and `q` and fast-form base `h` among
/// `params.trustees()` trustees, any `params.threshold()` of whom decrypt.
/// Checks that p and q are safe primes making a sound modulus of a
/// supported size. Returns the threshold public key and the shares, trustee
/// i at position i - 1.
pub fn deal<R: RngCore + CryptoRng + ?Sized>(
    p: Integer,
    q: Integer,
    h: Integer,
    params: ThresholdParams,
    rng: &mut R,
) -> Result<(ThresholdPublicKey, Vec<KeyShare>), PaillierError> {
    let p = Secret(p);
    let q = Secret(q);
    keygen::check_primes(&p.0, &q.0)?;
    if !keygen::is_safe_prime(&p.0) || !keygen::is_safe_prime(&q.0) {
        return Err(PaillierError::InvalidKey(
            "a threshold key needs safe primes p = 2p' + 1 and q = 2q' + 1 with p' and q' prime",
        ));
    }
    let n = Integer::from(&p.0 * &q.0);
    let public = PublicKey::new(n, h)?;
    let n = public.n();
    let p_prime = Secret(Integer::from(&p.0 >> 1u32));
    let q_prime = Secret(Integer::from(&q.0 >> 1u32));
    let m = Secret(Integer::from(&p_prime.0 * &q_prime.0));
    let nm = Secret(Integer::from(n * &m.0));
    let m_inv = Secret(
        m.0.invert_ref(n)
            .map(Integer::from)
            .ok_or(PaillierError::InvalidKey("p'q' is not invertible modulo n"))?,
    );
    // d = m (m^-1 mod n): 0 mod m and 1 mod n, below nm.
    let d = Secret(Integer::from(&m.0 * &m_inv.0));
    let mut coefficients = vec![d];
    for _ in 1..params.threshold {
        coefficients.push(Secret(random_below(&nm.0, rng)));
    }
    let n2 = public.n_squared();
    let v = loop {
        let r = random_below(n2, rng);
        if r > 1 && r.gcd_is_one(n) {
            let v = Integer::from(r.square_ref()) % n2;
            if v != 1 {
                break v;
            }
        }
    };
    let delta = params.delta();
    let shares: Vec<Secret> = (1..=params.trustees)
        .map(|i| {
            // Horner: f(i) mod nm.
            let mut acc = Secret(Integer::new());
            for a in coefficients.iter().rev() {
                acc.0 *= i;
                acc.0 += &a.0;
                acc.0 %= &nm.0;
            }
            acc
        })
        .collect();
    let verification: Vec<Integer> = shares
        .par_iter()
        .map(|s| {
            let exponent = Secret(Integer::from(&delta * &s.0));
            pow(&v, &exponent.0, n2)
        })
        .collect();
    let key = ThresholdPublicKey::new(public.clone(), params, v, verification)?;
    let shares = shares
        .iter()
        .zip(1..)
        .map(|(s, index)| KeyShare {
            key: key.clone(),
            index,
            share: s.0.clone(),
        })
        .collect();
    Ok((key, shares))
}

/// Generates a threshold key with a `bits`-bit modulus (2048 or 3072): two
/// safe primes, reported through `progress`
/// ([`KeygenProgress::SafeCandidate`], [`KeygenProgress::PrimeFound`]), a
/// fast-form base h, then [`deal`].
pub fn generate_threshold<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    params: ThresholdParams,
    rng: &mut R,
    progress: &mut dyn FnMut(KeygenProgress),
) -> Result<(ThresholdPublicKey, Vec<KeyShare>), PaillierError> {
    if !SUPPORTED_MODULUS_BITS.contains(&bits) {
        return Err(PaillierError::UnsupportedModulusBits(bits));
    }
    let (p, q) = keygen::generate_safe_primes(bits, rng, progress);
    let n = Integer::from(&p * &q);
    let h = keygen::generate_h(&n, rng);
    deal(p, q, h, params, rng)
}

#[cfg(test)]
mod tests;
