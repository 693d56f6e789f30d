//! Paillier key generation: two random primes of the same length.
//!
//! Candidates are drawn from a cryptographic RNG with the top two bits set
//! (so that n has exactly the requested size) and tested with GMP's
//! `mpz_probab_prime_p`: trial division, Baillie–PSW, then extra
//! Miller–Rabin rounds. No known composite passes Baillie–PSW.

use rand_core::{CryptoRng, RngCore};
use rug::Integer;

use crate::arith::{is_probably_prime, random_below, random_bits};
use crate::PaillierError;

/// `reps` for `is_probably_prime`: GMP runs Baillie–PSW and `reps - 24`
/// further Miller–Rabin rounds with random bases.
const PRIMALITY_REPS: u32 = 40;

/// Primes closer than 2^(half - 100) would let Fermat's method factor n.
const MIN_PRIME_DISTANCE_BITS_BELOW_HALF: u32 = 100;

/// Reported while primes are searched, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeygenProgress {
    /// A candidate for prime number `prime` (0 or 1) was tested.
    Candidate {
        /// Which prime is being searched.
        prime: u8,
    },
    /// Prime number `prime` was found.
    PrimeFound {
        /// Which prime was found.
        prime: u8,
    },
}

fn random_prime<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    index: u8,
    rng: &mut R,
    progress: &mut dyn FnMut(KeygenProgress),
) -> Integer {
    loop {
        let mut candidate: Integer = random_bits(bits, rng);
        candidate.set_bit(bits - 1, true);
        candidate.set_bit(bits - 2, true);
        candidate.set_bit(0, true);
        progress(KeygenProgress::Candidate { prime: index });
        if is_probably_prime(&candidate, PRIMALITY_REPS) {
            progress(KeygenProgress::PrimeFound { prime: index });
            return candidate;
        }
    }
}

/// Draws p and q of `bits / 2` bits each that pass [`check_primes`].
pub(crate) fn generate_primes<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    rng: &mut R,
    progress: &mut dyn FnMut(KeygenProgress),
) -> (Integer, Integer) {
    let half = bits / 2;
    let p = random_prime(half, 0, rng, progress);
    loop {
        let q = random_prime(half, 1, rng, progress);
        if check_primes(&p, &q).is_ok() {
            return (p, q);
        }
    }
}

/// Checks p and q make a sound Paillier modulus: both prime, the same
/// length, far apart, and gcd(pq, (p-1)(q-1)) = 1.
pub(crate) fn check_primes(p: &Integer, q: &Integer) -> Result<(), PaillierError> {
    let bits = p.significant_bits();
    if bits < 512 || q.significant_bits() != bits {
        return Err(PaillierError::InvalidKey(
            "p and q must be primes of the same length",
        ));
    }
    if !is_probably_prime(p, PRIMALITY_REPS) || !is_probably_prime(q, PRIMALITY_REPS) {
        return Err(PaillierError::InvalidKey("p or q is not prime"));
    }
    let distance = Integer::from(p - q).abs();
    if distance.significant_bits() <= bits - MIN_PRIME_DISTANCE_BITS_BELOW_HALF {
        return Err(PaillierError::InvalidKey("p and q are too close together"));
    }
    let n = Integer::from(p * q);
    let phi = Integer::from(p - 1u32) * Integer::from(q - 1u32);
    if Integer::from(n.gcd_ref(&phi)) != 1 {
        return Err(PaillierError::InvalidKey("gcd(n, phi(n)) is not 1"));
    }
    Ok(())
}

/// h = -x^2 mod n for a random unit x (Damgård–Jurik–Nielsen): a random
/// element of the subgroup of Jacobi symbol 1, whose powers h^n serve as
/// the fast form's n-th residues.
pub(crate) fn generate_h<R: RngCore + CryptoRng + ?Sized>(n: &Integer, rng: &mut R) -> Integer {
    loop {
        let x = random_below(n, rng);
        if x <= 1 || Integer::from(x.gcd_ref(n)) != 1 {
            continue;
        }
        let h: Integer = n - x.square().modulo(n);
        if h > 1 && Integer::from(h.gcd_ref(n)) == 1 {
            return h;
        }
    }
}
