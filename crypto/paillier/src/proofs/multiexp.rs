//! Multi-exponentiation: prod_i b_i^(e_i) mod m for many bases at once.
//!
//! Two classic algorithms share one squaring chain between all the bases
//! instead of exponentiating each base on its own:
//!
//! * **Straus** (interleaved fixed windows, 1964 / Möller 2001), for a few
//!   bases: each base gets a table b^1..b^15, then one pass over 4-bit
//!   windows from the top multiplies in the table entry of every base.
//! * **Pippenger** (buckets, 1976 / Bernstein et al.), for many bases: per
//!   c-bit window, each base is multiplied into the bucket of its digit, and
//!   prod_d B_d^d is formed with 2^(c+1) multiplications by running
//!   products. About (sum of exponent bits) / c multiplications overall.
//!
//! [`multi_exp`] estimates the multiplications each would need, runs the
//! cheaper one, and splits large inputs across the rayon pool (each chunk
//! has its own squaring chain; the chunk results are multiplied).

use rayon::prelude::*;

use crate::arith::Int;

/// Straus window width.
const STRAUS_WINDOW: u32 = 4;

/// Terms per parallel chunk, at least.
const MIN_CHUNK: usize = 192;

/// One base and its non-negative exponent.
pub(super) type Term<'a, B> = (&'a B, B);

/// prod_i base_i^(exp_i) mod `modulus`; bases must be in [0, modulus) and
/// exponents non-negative.
pub(super) fn multi_exp<B: Int>(terms: &[Term<'_, B>], modulus: &B) -> B {
    let threads = rayon::current_num_threads().max(1);
    if terms.len() < 2 * MIN_CHUNK || threads == 1 {
        return sequential(terms, modulus);
    }
    let chunk = terms.len().div_ceil(threads).max(MIN_CHUNK);
    terms
        .par_chunks(chunk)
        .map(|c| sequential(c, modulus))
        .reduce(
            || B::from_u64(1),
            |mut a, b| {
                a.mul_mod_assign(&b, modulus);
                a
            },
        )
}

/// a <- a * x mod m, where `None` stands for 1 (saves multiplying by 1).
fn mul_into<B: Int>(acc: &mut Option<B>, x: &B, modulus: &B) {
    match acc {
        None => *acc = Some(x.clone()),
        Some(a) => a.mul_mod_assign(x, modulus),
    }
}

fn square_times<B: Int>(acc: &mut Option<B>, times: u32, modulus: &B) {
    if let Some(a) = acc {
        for _ in 0..times {
            a.square_mod_assign(modulus);
        }
    }
}

/// Little-endian u64 limbs of a non-negative integer.
fn limbs_of<B: Int>(x: &B) -> Vec<u64> {
    x.to_le_bytes()
        .chunks(8)
        .map(|c| {
            let mut limb = [0u8; 8];
            limb[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(limb)
        })
        .collect()
}

/// Bits `[start, start + width)` of a little-endian limb array.
fn digit(limbs: &[u64], start: u32, width: u32) -> usize {
    let limb = (start / 64) as usize;
    let shift = start % 64;
    let mut v = limbs.get(limb).copied().unwrap_or(0) >> shift;
    if shift + width > 64 {
        v |= limbs.get(limb + 1).copied().unwrap_or(0) << (64 - shift);
    }
    (v & ((1u64 << width) - 1)) as usize
}

fn sequential<B: Int>(terms: &[Term<'_, B>], modulus: &B) -> B {
    let limbs: Vec<Vec<u64>> = terms.iter().map(|(_, e)| limbs_of(e)).collect();
    let bits: Vec<u32> = terms.iter().map(|(_, e)| e.bits()).collect();
    let max_bits = bits.iter().copied().max().unwrap_or(0);
    if max_bits == 0 {
        return B::from_u64(1);
    }
    let total_bits: u64 = bits.iter().map(|b| u64::from(*b)).sum();
    let count = terms.len() as u64;
    let straus = count * ((1 << STRAUS_WINDOW) - 2) + total_bits / u64::from(STRAUS_WINDOW);
    let (best_c, best_pippenger) = (2..=16u32)
        .map(|c| {
            let windows = u64::from(max_bits.div_ceil(c));
            (c, total_bits / u64::from(c) + windows * (2 << c))
        })
        .min_by_key(|(_, cost)| *cost)
        .unwrap_or((8, u64::MAX));
    let out = if straus <= best_pippenger {
        straus_exp(terms, &limbs, max_bits, modulus)
    } else {
        pippenger(terms, &limbs, max_bits, best_c, modulus)
    };
    out.unwrap_or_else(|| B::from_u64(1))
}

fn straus_exp<B: Int>(
    terms: &[Term<'_, B>],
    limbs: &[Vec<u64>],
    max_bits: u32,
    modulus: &B,
) -> Option<B> {
    let w = STRAUS_WINDOW;
    let tables: Vec<Vec<B>> = terms
        .iter()
        .map(|(b, _)| {
            let mut t = Vec::with_capacity((1 << w) - 1);
            t.push((*b).clone());
            for k in 1..(1usize << w) - 1 {
                let mut x = t[k - 1].clone();
                x.mul_mod_assign(b, modulus);
                t.push(x);
            }
            t
        })
        .collect();
    let mut acc = None;
    for window in (0..max_bits.div_ceil(w)).rev() {
        square_times(&mut acc, w, modulus);
        for (table, l) in tables.iter().zip(limbs) {
            let d = digit(l, window * w, w);
            if d != 0 {
                mul_into(&mut acc, &table[d - 1], modulus);
            }
        }
    }
    acc
}

fn pippenger<B: Int>(
    terms: &[Term<'_, B>],
    limbs: &[Vec<u64>],
    max_bits: u32,
    c: u32,
    modulus: &B,
) -> Option<B> {
    let mut acc = None;
    let mut buckets: Vec<Option<B>> = vec![None; (1 << c) - 1];
    for window in (0..max_bits.div_ceil(c)).rev() {
        square_times(&mut acc, c, modulus);
        for ((base, _), l) in terms.iter().zip(limbs) {
            let d = digit(l, window * c, c);
            if d != 0 {
                mul_into(&mut buckets[d - 1], base, modulus);
            }
        }
        // prod_d B_d^d = prod_d (prod_{d' >= d} B_d'), by running products.
        let mut running = None;
        let mut total = None;
        for bucket in buckets.iter_mut().rev() {
            if let Some(b) = bucket.take() {
                mul_into(&mut running, &b, modulus);
            }
            if let Some(r) = &running {
                mul_into(&mut total, r, modulus);
            }
        }
        if let Some(t) = total {
            mul_into(&mut acc, &t, modulus);
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn naive<B: Int>(terms: &[Term<'_, B>], m: &B) -> B {
        let mut acc = B::from_u64(1);
        for (b, e) in terms {
            acc.mul_mod_assign(&b.pow_mod(e, m), m);
        }
        acc
    }

    fn matches_naive_for_every_size<B: Int>() {
        let m = B::from_u64(1).shl(521).sub(&B::from_u64(1));
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for count in [0usize, 1, 2, 3, 17, 100, 500] {
            let bases: Vec<B> = (0..count)
                .map(|_| {
                    B::from_u64(rng.gen::<u64>())
                        .mul(&B::from_u64(rng.gen::<u64>()))
                        .add(&B::from_u64(2))
                })
                .collect();
            let terms: Vec<Term<'_, B>> = bases
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    // Mixed sizes, zeros and ones included.
                    let e = match i % 4 {
                        0 => B::from_u64(rng.gen::<u64>()),
                        1 => B::from_u64(rng.gen::<u64>())
                            .shl(130)
                            .add(&B::from_u64(rng.gen::<u64>())),
                        2 => B::from_u64((i % 2) as u64),
                        _ => B::from_u64(u64::from(rng.gen::<u32>())),
                    };
                    (b, e)
                })
                .collect();
            let want = naive(&terms, &m);
            assert_eq!(multi_exp(&terms, &m), want, "{count} terms");
            assert_eq!(sequential(&terms, &m), want);
            if !terms.is_empty() {
                let l: Vec<Vec<u64>> = terms.iter().map(|(_, e)| limbs_of(e)).collect();
                let max = terms.iter().map(|(_, e)| e.bits()).max().unwrap();
                for c in [1, 3, 8] {
                    let got = pippenger(&terms, &l, max, c, &m).unwrap_or(B::from_u64(1));
                    assert_eq!(got, want, "pippenger c={c}");
                }
                let got = straus_exp(&terms, &l, max, &m).unwrap_or(B::from_u64(1));
                assert_eq!(got, want, "straus");
            }
        }
    }

    #[test]
    fn matches_naive_num_bigint() {
        matches_naive_for_every_size::<num_bigint::BigInt>();
    }

    #[cfg(feature = "gmp")]
    #[test]
    fn matches_naive_gmp() {
        matches_naive_for_every_size::<rug::Integer>();
    }
}
