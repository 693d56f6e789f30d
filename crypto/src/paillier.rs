//! The Paillier cryptosystem with g = n + 1 (Paillier 1999; Damgård, Jurik and
//! Nielsen 2010 for the fast encryption form).
//!
//! * Plaintexts live in Z_n, ciphertexts in Z_{n^2}^*.
//! * Encryption of m is (1 + m n) r^n mod n^2. The **standard** form draws r
//!   uniformly from Z_n^*; it costs one full-length exponentiation mod n^2.
//!   The **fast** form (the default) uses r^n = (h^n)^alpha for a fixed
//!   public h^n and a short random alpha of [`SHORT_EXPONENT_BITS`] bits, so
//!   encryption is a fixed-base exponentiation served from a precomputed
//!   table. Its security assumption is documented in `docs/paillier.md`.
//! * Adding plaintexts multiplies ciphertexts mod n^2; multiplying a
//!   plaintext by a constant k raises the ciphertext to k.
//! * Decryption uses the Chinese remainder theorem over p^2 and q^2.
//!
//! Big-integer arithmetic is GMP through `rug`, chosen by measurement
//! (`BENCHMARKS.md`, bench `bigint`).

pub(crate) mod fixed_base;
mod keygen;
mod packing;

use std::fmt;
use std::sync::{Arc, OnceLock};

use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::integer::Order;
use rug::Integer;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::codec::{self, CodecError, FileKind, Reader, Writer};
pub(crate) use fixed_base::FixedBaseTable;
pub use keygen::KeygenProgress;
pub use packing::{Packing, PackingError, MAX_SLOT_BITS};

/// Default modulus size in bits.
pub const DEFAULT_MODULUS_BITS: u32 = 2048;

/// Modulus sizes this build generates and accepts.
pub const SUPPORTED_MODULUS_BITS: [u32; 2] = [2048, 3072];

/// Bits of the random exponent alpha in the fast encryption form: twice the
/// 128-bit security level (and so more than twice the 112 bits of a 2048-bit
/// modulus).
pub const SHORT_EXPONENT_BITS: u32 = 256;

/// Window width of the fixed-base table used by the fast form.
const FIXED_BASE_WINDOW_BITS: u32 = 8;

/// Errors from Paillier operations and from decoding Paillier material.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaillierError {
    /// The modulus size is not one this build supports.
    #[error("unsupported modulus size {0} bits: use 2048 or 3072")]
    UnsupportedModulusBits(u32),
    /// A plaintext is outside [0, n).
    #[error("plaintext out of range: it must be between 0 and n-1")]
    PlaintextOutOfRange,
    /// A ciphertext failed validation.
    #[error("invalid ciphertext: {0}")]
    InvalidCiphertext(&'static str),
    /// A key failed validation.
    #[error("invalid Paillier key: {0}")]
    InvalidKey(&'static str),
    /// A ciphertext was made under another key (detected when decrypting).
    #[error("ciphertext does not decrypt under this key (wrong key for this file?)")]
    WrongKey,
    /// Malformed encoding.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

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

/// A Paillier public key: the modulus n and the fast-form base h.
///
/// Cheap to clone; precomputed tables are shared between clones.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<PublicKeyInner>,
}

struct PublicKeyInner {
    n: Integer,
    n_squared: Integer,
    /// floor(n / 2): plaintexts above it are read as negative.
    half_n: Integer,
    /// h in Z_n^*, a random -x^2 chosen by the key owner.
    h: Integer,
    /// h^n mod n^2.
    hn: Integer,
    modulus_bits: u32,
    ciphertext_len: usize,
    fingerprint: [u8; 32],
    table: OnceLock<FixedBaseTable>,
}

/// A Paillier ciphertext known to be a unit of Z_{n^2} under some key: it
/// is only made by encryption, homomorphic operations, or
/// [`PublicKey::ciphertext_from_bytes`], which validates untrusted input.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Integer);

impl Ciphertext {
    /// Wraps a value known to be a unit below n^2 because it was computed
    /// from validated ciphertexts.
    pub(crate) fn from_checked(c: Integer) -> Self {
        Ciphertext(c)
    }

    /// The ciphertext as an integer in [1, n^2).
    pub fn as_integer(&self) -> &Integer {
        &self.0
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.0.to_string_radix(16);
        write!(f, "Ciphertext({}…)", &hex[..hex.len().min(16)])
    }
}

/// Number of bytes of the big-endian encoding of a value below `bound`.
fn byte_len(bound: &Integer) -> usize {
    (bound.significant_bits() as usize).div_ceil(8)
}

/// Big-endian, left-padded to exactly `len` bytes. `x` must fit.
pub(crate) fn to_fixed_bytes(x: &Integer, len: usize) -> Vec<u8> {
    let digits = x.to_digits::<u8>(Order::Msf);
    debug_assert!(digits.len() <= len);
    let mut out = vec![0u8; len - digits.len()];
    out.extend_from_slice(&digits);
    out
}

/// Draws an integer uniformly from [0, bound) with a cryptographic RNG, by
/// rejection sampling on `bits(bound)`-bit candidates.
pub(crate) fn random_below<R: RngCore + CryptoRng + ?Sized>(
    bound: &Integer,
    rng: &mut R,
) -> Integer {
    let bits = bound.significant_bits();
    let mut buf = vec![0u8; (bits as usize).div_ceil(8)];
    let excess = buf.len() as u32 * 8 - bits;
    loop {
        rng.fill_bytes(&mut buf);
        buf[0] &= 0xff >> excess;
        let x = Integer::from_digits(&buf, Order::Msf);
        if &x < bound {
            return x;
        }
    }
}

/// Draws a uniform integer of at most `bits` bits.
pub(crate) fn random_bits<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Integer {
    let mut buf = vec![0u8; (bits as usize).div_ceil(8)];
    rng.fill_bytes(&mut buf);
    let excess = buf.len() as u32 * 8 - bits;
    buf[0] &= 0xff >> excess;
    Integer::from_digits(&buf, Order::Msf)
}

impl PublicKey {
    /// Builds a public key from n and h, checking both.
    pub fn new(n: Integer, h: Integer) -> Result<Self, PaillierError> {
        let modulus_bits = n.significant_bits();
        if !SUPPORTED_MODULUS_BITS.contains(&modulus_bits) {
            return Err(PaillierError::UnsupportedModulusBits(modulus_bits));
        }
        if n.is_even() || n.is_perfect_square() {
            return Err(PaillierError::InvalidKey(
                "the modulus is not an odd RSA modulus",
            ));
        }
        if h <= 1 || h >= n || Integer::from(h.gcd_ref(&n)) != 1 {
            return Err(PaillierError::InvalidKey("h is not a unit modulo n"));
        }
        let n_squared = Integer::from(n.square_ref());
        // pow_mod only fails for a negative exponent without an inverse.
        let hn = h
            .clone()
            .pow_mod(&n, &n_squared)
            .expect("exponent n is positive");
        let half_n = Integer::from(&n >> 1);
        let ciphertext_len = byte_len(&n_squared);
        let fingerprint = Sha256::digest(public_key_file(&n, &h, modulus_bits)).into();
        Ok(PublicKey {
            inner: Arc::new(PublicKeyInner {
                n,
                n_squared,
                half_n,
                h,
                hn,
                modulus_bits,
                ciphertext_len,
                fingerprint,
                table: OnceLock::new(),
            }),
        })
    }

    /// The modulus n.
    pub fn n(&self) -> &Integer {
        &self.inner.n
    }

    /// n^2.
    pub fn n_squared(&self) -> &Integer {
        &self.inner.n_squared
    }

    /// The fast-form base h (mod n).
    pub fn h(&self) -> &Integer {
        &self.inner.h
    }

    /// Size of n in bits.
    pub fn modulus_bits(&self) -> u32 {
        self.inner.modulus_bits
    }

    /// Bytes of one encoded ciphertext.
    pub fn ciphertext_len(&self) -> usize {
        self.inner.ciphertext_len
    }

    /// SHA-256 of this key's encoding ([`PublicKey::to_bytes`]).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint
    }

    fn table(&self) -> &FixedBaseTable {
        self.inner.table.get_or_init(|| {
            FixedBaseTable::new(
                &self.inner.hn,
                &self.inner.n_squared,
                SHORT_EXPONENT_BITS,
                FIXED_BASE_WINDOW_BITS,
            )
        })
    }

    /// h^n mod n^2: the base of the fast form's randomness.
    pub(crate) fn hn(&self) -> &Integer {
        &self.inner.hn
    }

    /// Encrypts m in the fast form and returns the short exponent alpha
    /// with c = (1 + m n) (h^n)^alpha mod n^2: the witness the input proofs
    /// (`crate::proofs`) work with.
    pub(crate) fn encrypt_fast_with_exponent<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<(Ciphertext, Integer), PaillierError> {
        self.check_plaintext(m)?;
        let alpha = random_bits(SHORT_EXPONENT_BITS, rng);
        let rn = self.table().pow(&alpha);
        Ok((Ciphertext(self.mul_mod(self.message_part(m), &rn)), alpha))
    }

    /// Builds the fast form's table now rather than at the first encryption
    /// (about 40 ms and 4 MB for a 2048-bit key).
    pub fn precompute(&self) {
        self.table();
    }

    /// (1 + m n) mod n^2 for m in [0, n): the message part of a ciphertext.
    fn message_part(&self, m: &Integer) -> Integer {
        let mut g_m = Integer::from(m * &self.inner.n);
        g_m += 1;
        g_m
    }

    /// Encrypts m in [0, n) in the default (fast) form.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext, PaillierError> {
        self.encrypt_with_mode(m, EncryptionMode::Fast, rng)
    }

    /// Encrypts m in [0, n) in the given form.
    pub fn encrypt_with_mode<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        mode: EncryptionMode,
        rng: &mut R,
    ) -> Result<Ciphertext, PaillierError> {
        Ok(self.encrypt_with_witness(m, mode, rng)?.0)
    }

    /// Encrypts m and also returns the witness w with c = (1 + m n) w^n mod
    /// n^2, which zero-knowledge proofs about c need.
    pub fn encrypt_with_witness<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        mode: EncryptionMode,
        rng: &mut R,
    ) -> Result<(Ciphertext, Integer), PaillierError> {
        self.check_plaintext(m)?;
        let (rn, witness) = match mode {
            EncryptionMode::Standard => {
                let r = self.random_unit(rng);
                let rn = r
                    .clone()
                    .pow_mod(&self.inner.n, &self.inner.n_squared)
                    .expect("positive exponent");
                (rn, r)
            }
            EncryptionMode::Fast => {
                let alpha = random_bits(SHORT_EXPONENT_BITS, rng);
                let rn = self.table().pow(&alpha);
                // The witness is h^alpha mod n; computing it costs an extra
                // exponentiation that plain encryption does without.
                let w = self
                    .inner
                    .h
                    .clone()
                    .pow_mod(&alpha, &self.inner.n)
                    .expect("positive exponent");
                (rn, w)
            }
        };
        Ok((Ciphertext(self.mul_mod(self.message_part(m), &rn)), witness))
    }

    /// Encrypts with caller-supplied randomness r in Z_n^* (standard form).
    /// For known-answer tests against other implementations.
    pub fn encrypt_with_randomness(
        &self,
        m: &Integer,
        r: &Integer,
    ) -> Result<Ciphertext, PaillierError> {
        self.check_plaintext(m)?;
        if *r <= 0 || r >= &self.inner.n || Integer::from(r.gcd_ref(&self.inner.n)) != 1 {
            return Err(PaillierError::InvalidCiphertext(
                "randomness is not a unit modulo n",
            ));
        }
        let rn = r
            .clone()
            .pow_mod(&self.inner.n, &self.inner.n_squared)
            .expect("positive exponent");
        Ok(Ciphertext(self.mul_mod(self.message_part(m), &rn)))
    }

    /// Encrypts a signed plaintext with |m| < n/2, as m mod n.
    pub fn encrypt_signed<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext, PaillierError> {
        let abs = Integer::from(m.abs_ref());
        if abs > self.inner.half_n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let reduced = if *m < 0 {
            Integer::from(&self.inner.n + m)
        } else {
            m.clone()
        };
        self.encrypt(&reduced, rng)
    }

    fn check_plaintext(&self, m: &Integer) -> Result<(), PaillierError> {
        if *m < 0 || m >= &self.inner.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        Ok(())
    }

    fn random_unit<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Integer {
        loop {
            let r = random_below(&self.inner.n, rng);
            if r > 0 && Integer::from(r.gcd_ref(&self.inner.n)) == 1 {
                return r;
            }
        }
    }

    /// a * b mod n^2, reusing a's allocation.
    fn mul_mod(&self, mut a: Integer, b: &Integer) -> Integer {
        a *= b;
        a %= &self.inner.n_squared;
        a
    }

    /// Homomorphic addition: a ciphertext of the sum of the plaintexts.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(self.mul_mod(a.0.clone(), &b.0))
    }

    /// Adds `b` into `acc` in place (the server's hot loop).
    pub fn add_assign(&self, acc: &mut Ciphertext, b: &Ciphertext) {
        acc.0 *= &b.0;
        acc.0 %= &self.inner.n_squared;
    }

    /// Homomorphic multiplication by a non-negative constant k.
    pub fn mul_const(&self, c: &Ciphertext, k: &Integer) -> Ciphertext {
        assert!(*k >= 0, "mul_const takes a non-negative constant");
        Ciphertext(
            c.0.clone()
                .pow_mod(k, &self.inner.n_squared)
                .expect("non-negative exponent"),
        )
    }

    /// The ciphertext 1: an encryption of 0 with randomness 1, the identity
    /// of homomorphic addition. Not hiding; only for accumulators.
    pub fn zero_ciphertext(&self) -> Ciphertext {
        Ciphertext(Integer::from(1))
    }

    /// Homomorphic sum of many ciphertexts, split across the rayon pool.
    pub fn sum(&self, cts: &[Ciphertext]) -> Ciphertext {
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

    /// Validates an untrusted integer as a ciphertext: 0 < c < n^2 and c is a
    /// unit (gcd(c, n) = 1). A non-unit such as c = n would poison every sum
    /// it enters: the product stays a non-unit and decrypts to garbage.
    pub fn validate_ciphertext(&self, c: Integer) -> Result<Ciphertext, PaillierError> {
        if c <= 0 || c >= self.inner.n_squared {
            return Err(PaillierError::InvalidCiphertext(
                "value is not between 1 and n^2 - 1",
            ));
        }
        if Integer::from(c.gcd_ref(&self.inner.n)) != 1 {
            return Err(PaillierError::InvalidCiphertext(
                "value is not a unit modulo n^2",
            ));
        }
        Ok(Ciphertext(c))
    }

    /// Decodes and validates one ciphertext of exactly
    /// [`PublicKey::ciphertext_len`] big-endian bytes.
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext, PaillierError> {
        if bytes.len() != self.inner.ciphertext_len {
            return Err(PaillierError::InvalidCiphertext(
                "wrong length for this key",
            ));
        }
        self.validate_ciphertext(Integer::from_digits(bytes, Order::Msf))
    }

    /// Encodes a ciphertext as exactly [`PublicKey::ciphertext_len`] bytes.
    pub fn ciphertext_to_bytes(&self, c: &Ciphertext) -> Vec<u8> {
        to_fixed_bytes(&c.0, self.inner.ciphertext_len)
    }

    /// Reads a plaintext in [0, n) as a signed value in (-n/2, n/2].
    pub fn to_signed(&self, m: Integer) -> Integer {
        if m > self.inner.half_n {
            m - &self.inner.n
        } else {
            m
        }
    }

    /// Appends the key's body (without a file header).
    pub fn encode_body(&self, w: &mut Writer) {
        encode_public_body(w, &self.inner.n, &self.inner.h, self.inner.modulus_bits);
    }

    /// Decodes a body written by [`PublicKey::encode_body`].
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, PaillierError> {
        let bits = u32::from(r.u16("modulus size")?);
        if !SUPPORTED_MODULUS_BITS.contains(&bits) {
            return Err(PaillierError::UnsupportedModulusBits(bits));
        }
        let len = (bits as usize).div_ceil(8);
        let n = Integer::from_digits(r.bytes(len, "modulus n")?, Order::Msf);
        let h = Integer::from_digits(r.bytes(len, "base h")?, Order::Msf);
        if n.significant_bits() != bits {
            return Err(PaillierError::InvalidKey(
                "the modulus does not have the stated size",
            ));
        }
        PublicKey::new(n, h)
    }

    /// The key as a public key file: header, scheme, then body.
    pub fn to_bytes(&self) -> Vec<u8> {
        public_key_file(&self.inner.n, &self.inner.h, self.inner.modulus_bits)
    }
}

fn encode_public_body(w: &mut Writer, n: &Integer, h: &Integer, bits: u32) {
    let len = (bits as usize).div_ceil(8);
    // bits is 2048 or 3072, checked by every constructor.
    w.u16(bits as u16);
    w.bytes(&to_fixed_bytes(n, len));
    w.bytes(&to_fixed_bytes(h, len));
}

/// The public key file for (n, h): what the fingerprint hashes.
fn public_key_file(n: &Integer, h: &Integer, bits: u32) -> Vec<u8> {
    let mut w = Writer::new();
    codec::write_header(&mut w, FileKind::PublicKey);
    w.u8(crate::keyfile::SCHEME_PAILLIER);
    encode_public_body(&mut w, n, h, bits);
    w.finish()
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fingerprint == other.inner.fingerprint
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("modulus_bits", &self.inner.modulus_bits)
            .field("fingerprint", &hex::encode(&self.inner.fingerprint[..8]))
            .finish_non_exhaustive()
    }
}

/// A Paillier secret key: the primes p and q, with CRT precomputation.
///
/// `Debug` never prints the primes, and they are overwritten on drop.
pub struct SecretKey {
    public: PublicKey,
    p: Integer,
    q: Integer,
    p_squared: Integer,
    q_squared: Integer,
    p_minus_1: Integer,
    q_minus_1: Integer,
    /// (L_p(g^(p-1) mod p^2))^-1 mod p
    hp: Integer,
    hq: Integer,
    /// p^-1 mod q
    p_inv_q: Integer,
}

/// Overwrites the limbs of `x` with zeros, bit by bit from the bottom so that
/// GMP cannot shrink the number before its low limbs are cleared. GMP may
/// have left copies in freed temporaries, which no safe code can reach.
fn wipe(x: &mut Integer) {
    let bits = x.significant_bits();
    for i in 0..bits {
        x.set_bit(i, false);
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        for x in [
            &mut self.p,
            &mut self.q,
            &mut self.p_squared,
            &mut self.q_squared,
            &mut self.p_minus_1,
            &mut self.q_minus_1,
            &mut self.hp,
            &mut self.hq,
            &mut self.p_inv_q,
        ] {
            wipe(x);
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("public", &self.public)
            .field("primes", &"<redacted>")
            .finish()
    }
}

impl SecretKey {
    /// Generates a key with a modulus of `bits` bits (2048 or 3072), calling
    /// `progress` as prime candidates are tested.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        bits: u32,
        rng: &mut R,
        progress: &mut dyn FnMut(KeygenProgress),
    ) -> Result<Self, PaillierError> {
        if !SUPPORTED_MODULUS_BITS.contains(&bits) {
            return Err(PaillierError::UnsupportedModulusBits(bits));
        }
        let (p, q) = keygen::generate_primes(bits, rng, progress);
        let n = Integer::from(&p * &q);
        let h = keygen::generate_h(&n, rng);
        SecretKey::from_parts(p, q, h)
    }

    /// Builds a key from its primes and the fast-form base h, checking them.
    pub fn from_parts(p: Integer, q: Integer, h: Integer) -> Result<Self, PaillierError> {
        keygen::check_primes(&p, &q)?;
        let n = Integer::from(&p * &q);
        let public = PublicKey::new(n, h)?;
        let p_squared = Integer::from(p.square_ref());
        let q_squared = Integer::from(q.square_ref());
        let p_minus_1 = Integer::from(&p - 1);
        let q_minus_1 = Integer::from(&q - 1);
        let g = Integer::from(public.n() + 1);
        let l =
            |modulus: &Integer, prime: &Integer, exp: &Integer| -> Result<Integer, PaillierError> {
                let x = g.clone().pow_mod(exp, modulus).expect("positive exponent");
                (x - 1u32).div_exact(prime).invert(prime).map_err(|_| {
                    PaillierError::InvalidKey("g is not a valid base for these primes")
                })
            };
        let hp = l(&p_squared, &p, &p_minus_1)?;
        let hq = l(&q_squared, &q, &q_minus_1)?;
        let p_inv_q = p
            .clone()
            .invert(&q)
            .map_err(|_| PaillierError::InvalidKey("p is not invertible modulo q"))?;
        Ok(SecretKey {
            public,
            p,
            q,
            p_squared,
            q_squared,
            p_minus_1,
            q_minus_1,
            hp,
            hq,
            p_inv_q,
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// m mod prime from c, using the half of the CRT for that prime.
    fn decrypt_half(
        c: &Integer,
        prime: &Integer,
        prime_sq: &Integer,
        exp: &Integer,
        h: &Integer,
    ) -> Integer {
        let c_mod = Integer::from(c % prime_sq);
        let x = c_mod.pow_mod(exp, prime_sq).expect("positive exponent");
        let l = (x - 1u32).div_exact(prime);
        let mut m = l * h;
        m %= prime;
        m
    }

    /// Decrypts to a plaintext in [0, n). The two CRT halves run on two
    /// threads of the rayon pool.
    pub fn decrypt(&self, c: &Ciphertext) -> Result<Integer, PaillierError> {
        let (mp, mq) = rayon::join(
            || Self::decrypt_half(&c.0, &self.p, &self.p_squared, &self.p_minus_1, &self.hp),
            || Self::decrypt_half(&c.0, &self.q, &self.q_squared, &self.q_minus_1, &self.hq),
        );
        Ok(self.combine(mp, mq))
    }

    /// Decrypts on the current thread only (for callers that already
    /// parallelise across ciphertexts).
    pub fn decrypt_sequential(&self, c: &Ciphertext) -> Integer {
        let mp = Self::decrypt_half(&c.0, &self.p, &self.p_squared, &self.p_minus_1, &self.hp);
        let mq = Self::decrypt_half(&c.0, &self.q, &self.q_squared, &self.q_minus_1, &self.hq);
        self.combine(mp, mq)
    }

    fn combine(&self, mp: Integer, mq: Integer) -> Integer {
        // m = mp + p * ((mq - mp) * p^-1 mod q)
        let mut t = mq - &mp;
        t *= &self.p_inv_q;
        t.modulo_mut(&self.q);
        t *= &self.p;
        t + mp
    }

    /// Decrypts a ciphertext given as untrusted bytes, validating it first.
    pub fn decrypt_bytes(&self, bytes: &[u8]) -> Result<Integer, PaillierError> {
        let c = self
            .public
            .ciphertext_from_bytes(bytes)
            .map_err(|_| PaillierError::WrongKey)?;
        self.decrypt(&c)
    }

    /// Decrypts many ciphertexts in parallel, as signed values in (-n/2, n/2].
    pub fn decrypt_all_signed(&self, cts: &[Ciphertext]) -> Vec<Integer> {
        cts.par_iter()
            .map(|c| self.public.to_signed(self.decrypt_sequential(c)))
            .collect()
    }

    /// Appends the key's body (without a file header).
    pub fn encode_body(&self, w: &mut Writer) {
        let bits = self.public.modulus_bits();
        let half = (bits as usize / 2).div_ceil(8);
        let full = (bits as usize).div_ceil(8);
        w.u16(bits as u16);
        w.bytes(&to_fixed_bytes(&self.p, half));
        w.bytes(&to_fixed_bytes(&self.q, half));
        w.bytes(&to_fixed_bytes(self.public.h(), full));
    }

    /// Decodes a body written by [`SecretKey::encode_body`], re-checking the
    /// primes.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self, PaillierError> {
        let bits = u32::from(r.u16("modulus size")?);
        if !SUPPORTED_MODULUS_BITS.contains(&bits) {
            return Err(PaillierError::UnsupportedModulusBits(bits));
        }
        let half = (bits as usize / 2).div_ceil(8);
        let full = (bits as usize).div_ceil(8);
        let p = Integer::from_digits(r.bytes(half, "prime p")?, Order::Msf);
        let q = Integer::from_digits(r.bytes(half, "prime q")?, Order::Msf);
        let h = Integer::from_digits(r.bytes(full, "base h")?, Order::Msf);
        let key = SecretKey::from_parts(p, q, h)?;
        if key.public.modulus_bits() != bits {
            return Err(PaillierError::InvalidKey(
                "the modulus does not have the stated size",
            ));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests;
