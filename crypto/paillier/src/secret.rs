//! The Paillier secret key (feature `gmp`): the primes, CRT decryption,
//! and key generation. Only the collector's offline tools hold it.

use std::fmt;

use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::Integer;

use crate::arith::Int;
use crate::key::{Ciphertext, PublicKey, SUPPORTED_MODULUS_BITS};
use crate::keygen::{self, KeygenProgress};
use crate::PaillierError;

/// A Paillier secret key: the primes p and q, with CRT precomputation.
///
/// `Debug` never prints the primes, and they are overwritten on drop.
pub struct SecretKey {
    public: PublicKey<Integer>,
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
        let g = Integer::from(public.n() + 1u32);
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
    pub fn public_key(&self) -> &PublicKey<Integer> {
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
    pub fn decrypt(&self, c: &Ciphertext<Integer>) -> Result<Integer, PaillierError> {
        let (mp, mq) = rayon::join(
            || Self::decrypt_half(&c.0, &self.p, &self.p_squared, &self.p_minus_1, &self.hp),
            || Self::decrypt_half(&c.0, &self.q, &self.q_squared, &self.q_minus_1, &self.hq),
        );
        Ok(self.combine(mp, mq))
    }

    /// Decrypts on the current thread only (for callers that already
    /// parallelise across ciphertexts).
    pub fn decrypt_sequential(&self, c: &Ciphertext<Integer>) -> Integer {
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
    pub fn decrypt_all_signed(&self, cts: &[Ciphertext<Integer>]) -> Vec<Integer> {
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
        w.bytes(&self.p.to_be_bytes_padded(half));
        w.bytes(&self.q.to_be_bytes_padded(half));
        w.bytes(&self.public.h().to_be_bytes_padded(full));
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
        let p = Integer::from_be_bytes(r.bytes(half, "prime p")?);
        let q = Integer::from_be_bytes(r.bytes(half, "prime q")?);
        let h = Integer::from_be_bytes(r.bytes(full, "base h")?);
        let key = SecretKey::from_parts(p, q, h)?;
        if key.public.modulus_bits() != bits {
            return Err(PaillierError::InvalidKey(
                "the modulus does not have the stated size",
            ));
        }
        Ok(key)
    }
}

impl SecretKey {
    /// The secret key file: framing, then body. Holds secret material:
    /// write it only with [`keyfile::write_private_file`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::SecretKey, Scheme::Paillier);
        self.encode_body(&mut w);
        w.finish()
    }

    /// Decodes and validates a secret key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PaillierError> {
        let mut r = Reader::new(bytes);
        let scheme = keyfile::read_key_header(&mut r, FileKind::SecretKey)?;
        if scheme != Scheme::Paillier {
            return Err(PaillierError::Codec(CodecError::invalid(
                "scheme",
                format!("a {scheme} key is not a Paillier key"),
            )));
        }
        let key = Self::decode_body(&mut r)?;
        r.finish("secret key file")?;
        Ok(key)
    }
}
