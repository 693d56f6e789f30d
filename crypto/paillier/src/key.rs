//! The Paillier public key, ciphertexts, and encryption.
//!
//! * Plaintexts live in Z_n, ciphertexts in Z_{n^2}^*, with g = n + 1 so
//!   that g^m = 1 + m n mod n^2.
//! * Encryption of m is (1 + m n) r^n mod n^2. The **standard** form draws r
//!   uniformly from Z_n^*; it costs one full-length exponentiation mod n^2.
//!   The **fast** form (the default) uses r^n = (h^n)^alpha for a fixed
//!   public h^n and a short random alpha of [`SHORT_EXPONENT_BITS`] bits, so
//!   encryption is a fixed-base exponentiation served from a precomputed
//!   table. Its security assumption is documented in `docs/paillier.md`.
//! * Adding plaintexts multiplies ciphertexts mod n^2.

use std::fmt;
use std::sync::{Arc, OnceLock};

use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
use rand_core::{CryptoRng, RngCore};

use crate::arith::{random_below, random_bits, Int};
use crate::fixed_base::FixedBaseTable;
use crate::PaillierError;

/// Default modulus size in bits.
pub const DEFAULT_MODULUS_BITS: u32 = 2048;

/// Modulus sizes this build generates and accepts.
pub const SUPPORTED_MODULUS_BITS: [u32; 2] = [2048, 3072];

/// Bits of the random exponent alpha in the fast encryption form: twice the
/// 128-bit security level (and so more than twice the 112 bits of a 2048-bit
/// modulus).
pub const SHORT_EXPONENT_BITS: u32 = 256;

/// Window width of the fixed-base tables.
const FIXED_BASE_WINDOW_BITS: u32 = 8;

/// How [`PublicKey::encrypt_with_mode`] draws its randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionMode {
    /// r^n = (h^n)^alpha with a 256-bit alpha and a fixed-base table:
    /// Damgård–Jurik–Nielsen's short-exponent variant. The default.
    #[default]
    Fast,
    /// r uniform in Z_n^*, r^n computed in full. Textbook Paillier.
    Standard,
}

/// A Paillier public key: the modulus n and the fast-form base h, over the
/// big-integer backend `B` ([`crate::arith`]).
///
/// Cheap to clone; precomputed tables are shared between clones.
#[derive(Clone)]
pub struct PublicKey<B: Int> {
    inner: Arc<Inner<B>>,
}

struct Inner<B: Int> {
    n: B,
    n_squared: B,
    /// floor(n / 2): plaintexts above it are read as negative.
    half_n: B,
    /// h in Z_n^*, a random -x^2 chosen by the key owner.
    h: B,
    /// h^n mod n^2.
    hn: B,
    modulus_bits: u32,
    ciphertext_len: usize,
    /// For a threshold key: (trustees N, threshold T).
    trustees: Option<(u16, u16)>,
    file: Vec<u8>,
    fingerprint: [u8; 32],
    table: OnceLock<FixedBaseTable<B>>,
}

/// A Paillier ciphertext known to be a unit of Z_{n^2} under some key: it
/// is only made by encryption, homomorphic operations, or
/// [`PublicKey::ciphertext_from_bytes`], which validates untrusted input.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext<B: Int>(pub(crate) B);

impl<B: Int> Ciphertext<B> {
    /// The ciphertext as an integer in [1, n^2).
    pub fn as_integer(&self) -> &B {
        &self.0
    }

    /// Wraps a value known to be a unit below n^2 because it was computed
    /// from validated ciphertexts (only the aggregator's batch verifier
    /// makes them).
    #[cfg(feature = "aggregator")]
    pub(crate) fn from_checked(c: B) -> Self {
        Ciphertext(c)
    }
}

impl<B: Int> fmt::Debug for Ciphertext<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.0.to_hex();
        write!(f, "Ciphertext({}…)", &hex[..hex.len().min(16)])
    }
}

/// Number of bytes of the big-endian encoding of a value below `bound`.
fn byte_len<B: Int>(bound: &B) -> usize {
    (bound.bits() as usize).div_ceil(8)
}

impl<B: Int> PublicKey<B> {
    /// Builds a public key from n and h, checking both.
    pub fn new(n: B, h: B) -> Result<Self, PaillierError> {
        PublicKey::build(n, h, None)
    }

    /// [`PublicKey::new`], or for a threshold key (`threshold` holds its
    /// trustee count, threshold and whole file) a key whose file and
    /// fingerprint are those of the threshold key file.
    fn build(n: B, h: B, threshold: Option<((u16, u16), Vec<u8>)>) -> Result<Self, PaillierError> {
        let modulus_bits = n.bits();
        if !SUPPORTED_MODULUS_BITS.contains(&modulus_bits) {
            return Err(PaillierError::UnsupportedModulusBits(modulus_bits));
        }
        if !n.is_odd() || n.is_perfect_square() {
            return Err(PaillierError::InvalidKey(
                "the modulus is not an odd RSA modulus",
            ));
        }
        if h <= B::from_u64(1) || h >= n || !h.gcd_is_one(&n) {
            return Err(PaillierError::InvalidKey("h is not a unit modulo n"));
        }
        let n_squared = n.mul(&n);
        let hn = h.pow_mod(&n, &n_squared);
        let half_n = n.shr(1);
        let ciphertext_len = byte_len(&n_squared);
        let (trustees, file) = match threshold {
            Some((params, file)) => (Some(params), file),
            None => (None, public_key_file(&n, &h, modulus_bits)),
        };
        let fingerprint = keyfile::fingerprint(&file);
        Ok(PublicKey {
            inner: Arc::new(Inner {
                n,
                n_squared,
                half_n,
                h,
                hn,
                modulus_bits,
                ciphertext_len,
                trustees,
                file,
                fingerprint,
                table: OnceLock::new(),
            }),
        })
    }

    /// For a key read from a threshold public key file: (trustees N,
    /// threshold T), any T of the N decrypting together
    /// ([`crate::threshold`]). `None` for a key with one holder.
    pub fn trustees(&self) -> Option<(u16, u16)> {
        self.inner.trustees
    }

    /// The modulus n.
    pub fn n(&self) -> &B {
        &self.inner.n
    }

    /// n^2.
    pub fn n_squared(&self) -> &B {
        &self.inner.n_squared
    }

    /// The fast-form base h (mod n).
    pub fn h(&self) -> &B {
        &self.inner.h
    }

    /// h^n mod n^2: the base of the fast form's randomness.
    pub fn hn(&self) -> &B {
        &self.inner.hn
    }

    /// Size of n in bits.
    pub fn modulus_bits(&self) -> u32 {
        self.inner.modulus_bits
    }

    /// Bytes of one encoded ciphertext.
    pub fn ciphertext_len(&self) -> usize {
        self.inner.ciphertext_len
    }

    /// SHA-256 of this key's file encoding ([`PublicKey::to_bytes`]).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint
    }

    fn table(&self) -> &FixedBaseTable<B> {
        self.inner.table.get_or_init(|| {
            FixedBaseTable::new(
                &self.inner.hn,
                &self.inner.n_squared,
                SHORT_EXPONENT_BITS,
                FIXED_BASE_WINDOW_BITS,
            )
        })
    }

    /// Builds the fast form's table now rather than at the first encryption
    /// (about 40 ms and 4 MB for a 2048-bit key with GMP).
    pub fn precompute(&self) {
        self.table();
    }

    /// (1 + m n) mod n^2 for m in [0, n): the message part of a ciphertext.
    pub(crate) fn message_part(&self, m: &B) -> B {
        m.mul(&self.inner.n).add(&B::from_u64(1))
    }

    /// a * b mod n^2.
    pub(crate) fn mul_mod(&self, mut a: B, b: &B) -> B {
        a.mul_mod_assign(b, &self.inner.n_squared);
        a
    }

    /// Encrypts m in [0, n) in the default (fast) form.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &B,
        rng: &mut R,
    ) -> Result<Ciphertext<B>, PaillierError> {
        self.encrypt_with_mode(m, EncryptionMode::Fast, rng)
    }

    /// Encrypts m in [0, n) in the given form.
    pub fn encrypt_with_mode<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &B,
        mode: EncryptionMode,
        rng: &mut R,
    ) -> Result<Ciphertext<B>, PaillierError> {
        self.check_plaintext(m)?;
        let rn = match mode {
            EncryptionMode::Standard => {
                let r = self.random_unit(rng);
                r.pow_mod(&self.inner.n, &self.inner.n_squared)
            }
            EncryptionMode::Fast => {
                let alpha: B = random_bits(SHORT_EXPONENT_BITS, rng);
                self.table().pow(&alpha)
            }
        };
        Ok(Ciphertext(self.mul_mod(self.message_part(m), &rn)))
    }

    /// Encrypts m and also returns the witness w with c = (1 + m n) w^n mod
    /// n^2, which zero-knowledge proofs about c need.
    pub fn encrypt_with_witness<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &B,
        mode: EncryptionMode,
        rng: &mut R,
    ) -> Result<(Ciphertext<B>, B), PaillierError> {
        self.check_plaintext(m)?;
        let (rn, witness) = match mode {
            EncryptionMode::Standard => {
                let r = self.random_unit(rng);
                (r.pow_mod(&self.inner.n, &self.inner.n_squared), r)
            }
            EncryptionMode::Fast => {
                let alpha: B = random_bits(SHORT_EXPONENT_BITS, rng);
                let rn = self.table().pow(&alpha);
                // The witness is h^alpha mod n; computing it costs an extra
                // exponentiation that plain encryption does without.
                (rn, self.inner.h.pow_mod(&alpha, &self.inner.n))
            }
        };
        Ok((Ciphertext(self.mul_mod(self.message_part(m), &rn)), witness))
    }

    /// Encrypts with caller-supplied randomness r in Z_n^* (standard form).
    /// For known-answer tests against other implementations.
    pub fn encrypt_with_randomness(&self, m: &B, r: &B) -> Result<Ciphertext<B>, PaillierError> {
        self.check_plaintext(m)?;
        if r.is_negative() || r.is_zero() || r >= &self.inner.n || !r.gcd_is_one(&self.inner.n) {
            return Err(PaillierError::InvalidCiphertext(
                "randomness is not a unit modulo n",
            ));
        }
        let rn = r.pow_mod(&self.inner.n, &self.inner.n_squared);
        Ok(Ciphertext(self.mul_mod(self.message_part(m), &rn)))
    }

    /// Encrypts a signed plaintext with |m| <= n/2, as m mod n.
    pub fn encrypt_signed<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &B,
        rng: &mut R,
    ) -> Result<Ciphertext<B>, PaillierError> {
        let abs = if m.is_negative() { m.neg() } else { m.clone() };
        if abs > self.inner.half_n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        self.encrypt(&m.rem_euclid(&self.inner.n), rng)
    }

    pub(crate) fn check_plaintext(&self, m: &B) -> Result<(), PaillierError> {
        if m.is_negative() || m >= &self.inner.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        Ok(())
    }

    fn random_unit<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> B {
        loop {
            let r = random_below(&self.inner.n, rng);
            if !r.is_zero() && r.gcd_is_one(&self.inner.n) {
                return r;
            }
        }
    }

    /// Homomorphic addition: a ciphertext of the sum of the plaintexts.
    pub fn add(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Ciphertext<B> {
        Ciphertext(self.mul_mod(a.0.clone(), &b.0))
    }

    /// Adds `b` into `acc` in place (the server's hot loop).
    pub fn add_assign(&self, acc: &mut Ciphertext<B>, b: &Ciphertext<B>) {
        acc.0.mul_mod_assign(&b.0, &self.inner.n_squared);
    }

    /// Homomorphic multiplication by a non-negative constant k.
    pub fn mul_const(&self, c: &Ciphertext<B>, k: &B) -> Ciphertext<B> {
        assert!(!k.is_negative(), "mul_const takes a non-negative constant");
        Ciphertext(c.0.pow_mod(k, &self.inner.n_squared))
    }

    /// The ciphertext 1: an encryption of 0 with randomness 1, the identity
    /// of homomorphic addition. Not hiding; only for accumulators.
    pub fn zero_ciphertext(&self) -> Ciphertext<B> {
        Ciphertext(B::from_u64(1))
    }

    /// Validates an untrusted integer as a ciphertext: 0 < c < n^2 and c is a
    /// unit (gcd(c, n) = 1). A non-unit such as c = n would poison every sum
    /// it enters: the product stays a non-unit and decrypts to garbage.
    pub fn validate_ciphertext(&self, c: B) -> Result<Ciphertext<B>, PaillierError> {
        if c.is_negative() || c.is_zero() || c >= self.inner.n_squared {
            return Err(PaillierError::InvalidCiphertext(
                "value is not between 1 and n^2 - 1",
            ));
        }
        if !c.gcd_is_one(&self.inner.n) {
            return Err(PaillierError::InvalidCiphertext(
                "value is not a unit modulo n^2",
            ));
        }
        Ok(Ciphertext(c))
    }

    /// Decodes and validates one ciphertext of exactly
    /// [`PublicKey::ciphertext_len`] big-endian bytes.
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext<B>, PaillierError> {
        if bytes.len() != self.inner.ciphertext_len {
            return Err(PaillierError::InvalidCiphertext(
                "wrong length for this key",
            ));
        }
        self.validate_ciphertext(B::from_be_bytes(bytes))
    }

    /// Encodes a ciphertext as exactly [`PublicKey::ciphertext_len`] bytes.
    pub fn ciphertext_to_bytes(&self, c: &Ciphertext<B>) -> Vec<u8> {
        c.0.to_be_bytes_padded(self.inner.ciphertext_len)
    }

    /// Reads a plaintext in [0, n) as a signed value in (-n/2, n/2].
    pub fn to_signed(&self, m: B) -> B {
        if m > self.inner.half_n {
            m.sub(&self.inner.n)
        } else {
            m
        }
    }

    /// Decodes a body written by [`PublicKey::encode_body`].
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, PaillierError> {
        let (n, h) = decode_parts(r)?;
        PublicKey::new(n, h)
    }

    /// Appends the key's body (without the file framing).
    pub fn encode_body(&self, w: &mut Writer) {
        encode_public_body(w, &self.inner.n, &self.inner.h, self.inner.modulus_bits);
    }

    /// Decodes and validates a public key file, or a threshold public key
    /// file ([`crate::threshold`]: the same body, then the trustee count,
    /// the threshold and the verification values, which are range- and
    /// unit-checked here and used only by the trustees' tools). The key's
    /// file and fingerprint are those of the whole file read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PaillierError> {
        let mut r = Reader::new(bytes);
        let (scheme, threshold) = keyfile::read_public_key_header(&mut r)?;
        if scheme != Scheme::Paillier {
            return Err(PaillierError::Codec(CodecError::invalid(
                "scheme",
                format!("a {scheme} key is not a Paillier key"),
            )));
        }
        let (n, h) = decode_parts(&mut r)?;
        let threshold = if threshold {
            let params = read_threshold_section(&mut r, &n)?;
            Some((params, bytes.to_vec()))
        } else {
            None
        };
        r.finish("public key file")?;
        PublicKey::build(n, h, threshold)
    }

    /// The key as a public key file: framing, then body. What the
    /// fingerprint hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.file.clone()
    }

    /// The same key over another big-integer backend.
    pub fn convert<C: Int>(&self) -> PublicKey<C> {
        PublicKey::from_bytes(&self.inner.file).expect("a valid key is valid under every backend")
    }
}

#[cfg(feature = "aggregator")]
impl<B: Int> PublicKey<B> {
    /// Homomorphic sum of many ciphertexts, split across the rayon pool.
    pub fn sum(&self, cts: &[Ciphertext<B>]) -> Ciphertext<B> {
        use rayon::prelude::*;
        cts.par_iter()
            .fold(
                || self.zero_ciphertext(),
                |mut acc, c| {
                    self.add_assign(&mut acc, c);
                    acc
                },
            )
            .reduce(
                || self.zero_ciphertext(),
                |mut a, b| {
                    self.add_assign(&mut a, &b);
                    a
                },
            )
    }
}

/// Most trustees a threshold key can have (see [`crate::threshold`]).
pub const MAX_TRUSTEES: u16 = 64;

/// Reads n and h of a public key body, checking the stated size.
fn decode_parts<B: Int>(r: &mut Reader<'_>) -> Result<(B, B), PaillierError> {
    let bits = u32::from(r.u16("modulus size")?);
    if !SUPPORTED_MODULUS_BITS.contains(&bits) {
        return Err(PaillierError::UnsupportedModulusBits(bits));
    }
    let len = (bits as usize).div_ceil(8);
    let n = B::from_be_bytes(r.bytes(len, "modulus n")?);
    let h = B::from_be_bytes(r.bytes(len, "base h")?);
    if n.bits() != bits {
        return Err(PaillierError::InvalidKey(
            "the modulus does not have the stated size",
        ));
    }
    Ok((n, h))
}

/// Reads the threshold part of a threshold public key body after n and h:
/// `u16 trustees N | u16 threshold T | v | v_1 .. v_N`, each value a unit
/// below n^2 in [`PublicKey::ciphertext_len`] bytes. Returns (N, T).
pub(crate) fn read_threshold_section<B: Int>(
    r: &mut Reader<'_>,
    n: &B,
) -> Result<(u16, u16), PaillierError> {
    let trustees = r.u16("trustee count")?;
    let threshold = r.u16("threshold")?;
    if !(2..=MAX_TRUSTEES).contains(&trustees) || !(2..=trustees).contains(&threshold) {
        return Err(PaillierError::Codec(CodecError::invalid(
            "threshold",
            format!(
                "{threshold} of {trustees} trustees: a threshold key needs 2 <= T <= N <= \
                 {MAX_TRUSTEES}"
            ),
        )));
    }
    let n_squared = n.mul(n);
    let len = byte_len(&n_squared);
    for _ in 0..=trustees {
        let v = B::from_be_bytes(r.bytes(len, "verification value")?);
        if v.is_zero() || v >= n_squared || !v.gcd_is_one(n) {
            return Err(PaillierError::InvalidKey(
                "a verification value is not a unit below n^2",
            ));
        }
    }
    Ok((trustees, threshold))
}

fn encode_public_body<B: Int>(w: &mut Writer, n: &B, h: &B, bits: u32) {
    let len = (bits as usize).div_ceil(8);
    // bits is 2048 or 3072, checked by every constructor.
    w.u16(bits as u16);
    w.bytes(&n.to_be_bytes_padded(len));
    w.bytes(&h.to_be_bytes_padded(len));
}

/// The public key file for (n, h): what the fingerprint hashes.
fn public_key_file<B: Int>(n: &B, h: &B, bits: u32) -> Vec<u8> {
    let mut w = Writer::new();
    keyfile::write_key_header(&mut w, FileKind::PublicKey, Scheme::Paillier);
    encode_public_body(&mut w, n, h, bits);
    w.finish()
}

impl<B: Int> PartialEq for PublicKey<B> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fingerprint == other.inner.fingerprint
    }
}

impl<B: Int> Eq for PublicKey<B> {}

impl<B: Int> fmt::Debug for PublicKey<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("modulus_bits", &self.inner.modulus_bits)
            .field("fingerprint", &hex::encode(&self.inner.fingerprint[..8]))
            .finish_non_exhaustive()
    }
}
