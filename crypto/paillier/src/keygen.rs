//! Paillier key generation: two random primes of the same length.
//!
//! Candidates are drawn from a cryptographic RNG with the top two bits set
//! (so that n has exactly the requested size) and tested with GMP's
//! `mpz_probab_prime_p`: trial division, Baillie–PSW, then extra
//! Miller–Rabin rounds. No known composite passes Baillie–PSW.
//!
//! Threshold keys (`crate::threshold`) need **safe** primes p = 2p' + 1
//! with p' prime as well. They are rare (about one in 380,000 1024-bit
//! integers), so the search sieves: from a random odd start s it considers
//! the window p' = s + 2k, k < [`SAFE_SIEVE_WINDOW`], strikes every k for
//! which p' or 2p' + 1 has a factor among the odd primes below
//! [`SAFE_SIEVE_LIMIT`], runs a base-2 Miller–Rabin test on p' and then on
//! p for each survivor, and confirms a pair that passes with
//! `mpz_probab_prime_p` on both. A window with no safe prime is replaced
//! by a fresh random one.

use std::sync::OnceLock;

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
    /// A candidate p' for safe prime number `prime` (0 or 1), p = 2p' + 1,
    /// survived the sieve and was tested (threshold keys only). Expect about
    /// a thousand per 1024-bit prime and two thousand per 1536-bit prime on
    /// average, with a wide spread, against a few hundred
    /// [`Self::Candidate`] events per ordinary prime. [`Self::PrimeFound`]
    /// follows when the safe prime is found.
    SafeCandidate {
        /// Which prime is being searched.
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

/// The safe-prime sieve strikes candidates with a factor below this bound
/// (the 82,024 odd primes below 2^20). Measured in release builds on
/// 1024- and 1536-bit searches: a bound of 2^16 tests 1.6 times as many
/// candidates and takes 1.3 times as long; 2^22 gains nothing more.
pub(crate) const SAFE_SIEVE_LIMIT: u32 = 1 << 20;

/// Candidates p' per sieve window (the window spans 2 * this integers).
pub(crate) const SAFE_SIEVE_WINDOW: usize = 1 << 16;

/// Smallest safe prime size the search supports: every candidate must
/// exceed the sieve's primes, or a prime could strike itself.
pub(crate) const MIN_SAFE_PRIME_BITS: u32 = 32;

/// The odd primes below [`SAFE_SIEVE_LIMIT`], by the sieve of Eratosthenes.
fn sieve_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| {
        let limit = SAFE_SIEVE_LIMIT as usize;
        let mut composite = vec![false; limit];
        let mut primes = Vec::new();
        for i in 3..limit {
            if composite[i] || i % 2 == 0 {
                continue;
            }
            // i < 2^20, so it fits.
            primes.push(i as u32);
            // i * i < limit, written so that it cannot overflow.
            if i < limit / i {
                for j in (i * i..limit).step_by(2 * i) {
                    composite[j] = true;
                }
            }
        }
        primes
    })
}

/// One Miller–Rabin round with base 2 on odd `x > 3`: a quick filter that
/// rejects almost every composite at the cost of one exponentiation.
fn miller_rabin_base_2(x: &Integer) -> bool {
    let x_minus_1 = Integer::from(x - 1u32);
    // x is odd, so x - 1 is even and non-zero: it has a lowest set bit.
    let s = x_minus_1.find_one(0).unwrap_or(0);
    let d = Integer::from(&x_minus_1 >> s);
    let mut y = match Integer::from(2).pow_mod(&d, x) {
        Ok(y) => y,
        // Unreachable for a non-negative exponent; reject rather than panic.
        Err(_) => return false,
    };
    if y == 1 || y == x_minus_1 {
        return true;
    }
    for _ in 1..s {
        y.square_mut();
        y %= x;
        if y == x_minus_1 {
            return true;
        }
        if y == 1 {
            return false;
        }
    }
    false
}

/// Draws a random safe prime p = 2p' + 1 of exactly `bits` bits with its
/// top two bits set, reporting [`KeygenProgress::SafeCandidate`] for each
/// candidate tested and [`KeygenProgress::PrimeFound`] at the end. `bits`
/// must be at least [`MIN_SAFE_PRIME_BITS`] (callers pass 1024 or 1536;
/// tests pass small sizes).
pub(crate) fn random_safe_prime<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    index: u8,
    rng: &mut R,
    progress: &mut dyn FnMut(KeygenProgress),
) -> Integer {
    assert!(
        bits >= MIN_SAFE_PRIME_BITS,
        "safe primes of fewer than {MIN_SAFE_PRIME_BITS} bits are not supported"
    );
    let primes = sieve_primes();
    // p' has bits - 1 bits; p = 2p' + 1 shares p''s top two bits.
    let limit = Integer::from(Integer::u_pow_u(2, bits - 1));
    let mut struck = vec![false; SAFE_SIEVE_WINDOW];
    loop {
        let mut start: Integer = random_bits(bits - 1, rng);
        start.set_bit(bits - 2, true);
        start.set_bit(bits - 3, true);
        start.set_bit(0, true);
        struck.fill(false);
        for &q in primes {
            let q64 = u64::from(q);
            let r = u64::from(start.mod_u(q));
            // 2^-1 mod q.
            let half = q64.div_ceil(2);
            // p' = start + 2k = 0 mod q        <=> k = -r / 2 mod q;
            // 2p' + 1 = 0 mod q <=> p' = (q-1)/2 <=> k = ((q-1)/2 - r) / 2.
            let k_p = (q64 - r) % q64 * half % q64;
            let k_safe = ((q64 - 1) / 2 + q64 - r) % q64 * half % q64;
            for first in [k_p, k_safe] {
                // first < q < 2^20: fits in usize.
                let mut k = first as usize;
                while k < SAFE_SIEVE_WINDOW {
                    struck[k] = true;
                    k += q as usize;
                }
            }
        }
        for (k, _) in struck.iter().enumerate().filter(|(_, s)| !**s) {
            let p_prime = Integer::from(&start + 2 * k as u64);
            if p_prime >= limit {
                break;
            }
            progress(KeygenProgress::SafeCandidate { prime: index });
            if !miller_rabin_base_2(&p_prime) {
                continue;
            }
            let p = Integer::from(&p_prime << 1u32) + 1u32;
            if !miller_rabin_base_2(&p) {
                continue;
            }
            if is_probably_prime(&p_prime, PRIMALITY_REPS) && is_probably_prime(&p, PRIMALITY_REPS)
            {
                // The window start and p' give p away: clear them.
                wipe(&mut start);
                let mut p_prime = p_prime;
                wipe(&mut p_prime);
                progress(KeygenProgress::PrimeFound { prime: index });
                return p;
            }
        }
    }
}

/// Overwrites the limbs of `x` with zeros, bit by bit from the bottom so
/// that GMP cannot shrink the number before its low limbs are cleared. GMP
/// may have left copies in freed temporaries, which no safe code can reach.
pub(crate) fn wipe(x: &mut Integer) {
    let bits = x.significant_bits();
    for i in 0..bits {
        x.set_bit(i, false);
    }
}

/// `p` is a safe prime: p and (p - 1) / 2 are both prime.
pub(crate) fn is_safe_prime(p: &Integer) -> bool {
    if *p < 5 || p.is_even() {
        return false;
    }
    let p_prime = Integer::from(p >> 1u32);
    is_probably_prime(p, PRIMALITY_REPS) && is_probably_prime(&p_prime, PRIMALITY_REPS)
}

/// Draws safe primes p and q of `bits / 2` bits each that pass
/// [`check_primes`], for a threshold key with a `bits`-bit modulus.
pub(crate) fn generate_safe_primes<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    rng: &mut R,
    progress: &mut dyn FnMut(KeygenProgress),
) -> (Integer, Integer) {
    let half = bits / 2;
    let p = random_safe_prime(half, 0, rng, progress);
    loop {
        let q = random_safe_prime(half, 1, rng, progress);
        if check_primes(&p, &q).is_ok() {
            return (p, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    #[test]
    fn sieve_primes_are_the_odd_primes_below_the_limit() {
        let primes = sieve_primes();
        assert_eq!(primes[..6], [3, 5, 7, 11, 13, 17]);
        // pi(2^20) = 82025, counting 2.
        assert_eq!(primes.len(), 82_024);
        assert_eq!(*primes.last().unwrap(), 1_048_573);
        assert!(primes
            .iter()
            .all(|&q| is_probably_prime(&Integer::from(q), PRIMALITY_REPS)));
    }

    #[test]
    fn miller_rabin_base_2_filters() {
        for p in [5u32, 7, 11, 65521, 2_147_483_647] {
            assert!(miller_rabin_base_2(&Integer::from(p)), "{p}");
        }
        for c in [9u32, 15, 21, 65535, 1_000_001] {
            assert!(!miller_rabin_base_2(&Integer::from(c)), "{c}");
        }
        // 2047 = 23 * 89 is the smallest strong pseudoprime to base 2: the
        // filter passes it, which is why candidates are confirmed by GMP.
        assert!(miller_rabin_base_2(&Integer::from(2047)));
        assert!(!is_probably_prime(&Integer::from(2047), PRIMALITY_REPS));
    }

    #[test]
    fn safe_primes_at_small_sizes() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for bits in [32, 64, 128, 256, 384] {
            let mut tested = 0;
            let mut found = 0;
            let p = random_safe_prime(bits, 1, &mut rng, &mut |e| match e {
                KeygenProgress::SafeCandidate { prime: 1 } => tested += 1,
                KeygenProgress::PrimeFound { prime: 1 } => found += 1,
                other => panic!("unexpected event {other:?}"),
            });
            assert_eq!(p.significant_bits(), bits);
            assert!(p.get_bit(bits - 2), "top two bits set");
            assert!(is_safe_prime(&p), "{bits} bits: {p}");
            assert_eq!(found, 1);
            assert!(tested >= 1);
        }
        assert!(!is_safe_prime(&Integer::from(13))); // 6 is not prime
        assert!(is_safe_prime(&Integer::from(23)));
        assert!(!is_safe_prime(&Integer::from(25)));
        assert!(!is_safe_prime(&Integer::from(4)));
    }
}
