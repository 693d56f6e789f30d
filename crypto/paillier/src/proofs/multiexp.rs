//! Multi-exponentiation: prod_i b_i^(e_i) mod m for many bases at once.
//!
//! Two classic algorithms share one squaring chain between all the bases
//! instead of exponentiating each base on its own:
//!
//! * **Straus with sliding windows** (interleaved, Straus 1964 / Möller
//!   2001), for up to a few hundred bases: each base gets a table of its
//!   odd powers b, b^3, .., b^(2^w - 1), with the window width w chosen per
//!   base from its exponent's length, and one pass over the bit positions
//!   from the top multiplies in the table entry wherever a base's window
//!   ends. About sum_i (2^(w_i - 1) + bits_i / (w_i + 1)) multiplications.
//! * **Pippenger** (buckets, 1976 / Bernstein et al.), for many bases: per
//!   c-bit window, each base is multiplied into the bucket of its digit, and
//!   prod_d B_d^d is formed with 2^(c+1) multiplications by running
//!   products. About (sum of exponent bits) / c multiplications overall.
//!
//! [`multi_exp`] estimates the multiplications each would need and runs the
//! cheaper one on the rayon pool: large inputs are split into chunks of
//! bases (each chunk has its own squaring chain; the chunk results are
//! multiplied), and a Straus input too small to chunk well is split by bit
//! positions instead (every part sees every base, so a small batch costs
//! no more per base on two cores than on one; the parts' results are
//! multiplied). BENCHMARKS.md ("Sliding-window Straus") has the figures.

use rayon::prelude::*;

use crate::arith::Int;

/// Widest Straus window: a table of 2^(w-1) odd powers per base.
const MAX_STRAUS_WINDOW: u32 = 6;

/// Terms per parallel chunk, at least.
const MIN_CHUNK: usize = 192;

/// Fewest multiplications worth splitting across threads by bit position.
const MIN_SPLIT_WORK: u64 = 256;

/// One base and its non-negative exponent.
pub(super) type Term<'a, B> = (&'a B, B);

/// prod_i base_i^(exp_i) mod `modulus`; bases must be in [0, modulus) and
/// exponents non-negative.
pub(super) fn multi_exp<B: Int>(terms: &[Term<'_, B>], modulus: &B) -> B {
    let threads = rayon::current_num_threads().max(1);
    if terms.len() >= 2 * MIN_CHUNK && threads > 1 {
        let chunk = terms.len().div_ceil(threads).max(MIN_CHUNK);
        return terms.par_chunks(chunk).map(|c| best(c, modulus, 1)).reduce(
            || B::from_u64(1),
            |mut a, b| {
                a.mul_mod_assign(&b, modulus);
                a
            },
        );
    }
    best(terms, modulus, threads)
}

/// The cheaper of Straus (split by bit position into up to `parts`
/// parallel parts) and Pippenger for `terms`.
fn best<B: Int>(terms: &[Term<'_, B>], modulus: &B, parts: usize) -> B {
    let limbs: Vec<Vec<u64>> = terms.iter().map(|(_, e)| limbs_of(e)).collect();
    let bits: Vec<u32> = terms.iter().map(|(_, e)| e.bits()).collect();
    let max_bits = bits.iter().copied().max().unwrap_or(0);
    if max_bits == 0 {
        return B::from_u64(1);
    }
    let total_bits: u64 = bits.iter().map(|b| u64::from(*b)).sum();
    let widths: Vec<u32> = bits.iter().map(|&b| straus_width(b)).collect();
    let straus: u64 = bits
        .iter()
        .zip(&widths)
        .map(|(&b, &w)| straus_cost(b, w))
        .sum::<u64>()
        + u64::from(max_bits);
    let (best_c, best_pippenger) = (2..=16u32)
        .map(|c| {
            let windows = u64::from(max_bits.div_ceil(c));
            (
                c,
                total_bits / u64::from(c) + windows * (2 << c) + u64::from(max_bits),
            )
        })
        .min_by_key(|(_, cost)| *cost)
        .unwrap_or((8, u64::MAX));
    // Measured (BENCHMARKS.md, issue 17): sliding-window Straus costs about
    // 5/4 of its multiplication count against Pippenger's, so compare
    // 5 straus with 4 pippenger.
    let parts = if best_pippenger.min(straus) >= MIN_SPLIT_WORK {
        parts
    } else {
        1
    };
    let out = if 5 * straus <= 4 * best_pippenger {
        straus_exp(terms, &limbs, &bits, &widths, parts, modulus)
    } else {
        pippenger(terms, &limbs, &bits, best_c, parts, modulus)
    };
    out.unwrap_or_else(|| B::from_u64(1))
}

/// Multiplications a sliding window of width `w` spends on a `bits`-bit
/// exponent: its table (b^2, then 2^(w-1) - 1 odd powers) and about one
/// multiplication per w + 1 bits.
fn straus_cost(bits: u32, w: u32) -> u64 {
    let table = if w == 1 { 0 } else { 1u64 << (w - 1) };
    table + u64::from(bits).div_ceil(u64::from(w) + 1)
}

/// The cheapest sliding-window width for a `bits`-bit exponent.
fn straus_width(bits: u32) -> u32 {
    (1..=MAX_STRAUS_WINDOW)
        .min_by_key(|&w| straus_cost(bits, w))
        .unwrap_or(1)
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

/// Bit `i` of a little-endian limb array.
fn bit(limbs: &[u64], i: u32) -> bool {
    limbs
        .get((i / 64) as usize)
        .is_some_and(|l| (l >> (i % 64)) & 1 == 1)
}

/// Sliding windows of width at most `w` over a `bits`-bit exponent, from
/// the top: (position of the window's lowest bit, its odd value).
fn sliding_windows(limbs: &[u64], bits: u32, w: u32) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let mut top = i64::from(bits) - 1;
    while top >= 0 {
        let i = top as u32;
        if !bit(limbs, i) {
            top -= 1;
            continue;
        }
        // The window ends at the lowest set bit within w bits of `i`.
        let mut low = i.saturating_sub(w - 1);
        while !bit(limbs, low) {
            low += 1;
        }
        out.push((low, digit(limbs, low, i - low + 1)));
        top = i64::from(low) - 1;
    }
    out
}

/// Interleaved sliding-window Straus, the bit positions split into up to
/// `parts` ranges computed in parallel (each range's product still squares
/// down to position 0, so the parts multiply together to the result).
fn straus_exp<B: Int>(
    terms: &[Term<'_, B>],
    limbs: &[Vec<u64>],
    bits: &[u32],
    widths: &[u32],
    parts: usize,
    modulus: &B,
) -> Option<B> {
    let max_bits = bits.iter().copied().max().unwrap_or(0);
    if max_bits == 0 {
        return None;
    }
    // Odd powers b, b^3, .., b^(2^w - 1) of every base.
    let tables: Vec<Vec<B>> = terms
        .par_iter()
        .zip(widths)
        .map(|((b, _), &w)| {
            let mut t = Vec::with_capacity(1 << (w - 1));
            t.push((*b).clone());
            if w > 1 {
                let mut b2 = (*b).clone();
                b2.square_mod_assign(modulus);
                for k in 1..(1usize << (w - 1)) {
                    let mut x = t[k - 1].clone();
                    x.mul_mod_assign(&b2, modulus);
                    t.push(x);
                }
            }
            t
        })
        .collect();
    // What to multiply in at each bit position.
    let mut events: Vec<Vec<(usize, usize)>> = vec![Vec::new(); max_bits as usize];
    for (i, (l, (&b, &w))) in limbs.iter().zip(bits.iter().zip(widths)).enumerate() {
        for (pos, d) in sliding_windows(l, b, w) {
            events[pos as usize].push((i, d >> 1));
        }
    }
    let work: Vec<u64> = events.iter().map(|e| e.len() as u64).collect();
    let ranges = split_positions(&work, 1, parts);
    let run = |(low, high): (usize, usize)| -> Option<B> {
        let mut acc: Option<B> = None;
        for pos in (0..high).rev() {
            square_times(&mut acc, 1, modulus);
            if pos >= low {
                for &(i, k) in &events[pos] {
                    mul_into(&mut acc, &tables[i][k], modulus);
                }
            }
        }
        acc
    };
    product_of_ranges(&ranges, run, modulus)
}

/// Splits the units (bit positions, or windows of `square` bits)
/// `0..work.len()` into at most `parts` ranges `[low, high)` of about equal
/// cost, where a range costs the multiplications `work` counts in it plus
/// `square` squarings per unit below its top.
fn split_positions(work: &[u64], square: u64, parts: usize) -> Vec<(usize, usize)> {
    let len = work.len();
    // before[i]: multiplications in the units below i.
    let mut before = Vec::with_capacity(len + 1);
    before.push(0u64);
    for w in work {
        before.push(before[before.len() - 1] + w);
    }
    let cost = |low: usize, high: usize| before[high] - before[low] + square * high as u64;
    if parts <= 1 || len < 2 {
        return vec![(0, len)];
    }
    // The least bound on a range's cost that `parts` ranges meet, taking
    // ranges from the top (a binary search over the bound).
    let fits = |bound: u64| -> Option<Vec<(usize, usize)>> {
        let mut ranges = Vec::new();
        let mut high = len;
        while high > 0 {
            if ranges.len() == parts {
                return None;
            }
            let mut low = high - 1;
            if cost(low, high) > bound {
                return None;
            }
            while low > 0 && cost(low - 1, high) <= bound {
                low -= 1;
            }
            ranges.push((low, high));
            high = low;
        }
        Some(ranges)
    };
    let (mut lo, mut hi) = (0u64, cost(0, len));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid).is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    fits(hi).unwrap_or_else(|| vec![(0, len)])
}

/// Pippenger's buckets with c-bit windows, the windows split into up to
/// `parts` ranges computed in parallel (as in [`straus_exp`]).
fn pippenger<B: Int>(
    terms: &[Term<'_, B>],
    limbs: &[Vec<u64>],
    bits: &[u32],
    c: u32,
    parts: usize,
    modulus: &B,
) -> Option<B> {
    let max_bits = bits.iter().copied().max().unwrap_or(0);
    let windows = max_bits.div_ceil(c);
    // A window's multiplications: a base per exponent reaching into it,
    // and the running products of its buckets.
    let work: Vec<u64> = (0..windows)
        .map(|k| bits.iter().filter(|&&b| b > k * c).count() as u64 + (2 << c))
        .collect();
    let ranges = split_positions(&work, u64::from(c), parts);
    let run = |(low, high): (usize, usize)| -> Option<B> {
        let mut acc = None;
        let mut buckets: Vec<Option<B>> = vec![None; (1 << c) - 1];
        for window in (0..high as u32).rev() {
            square_times(&mut acc, c, modulus);
            if (window as usize) < low {
                continue;
            }
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
    };
    product_of_ranges(&ranges, run, modulus)
}

/// Runs `run` on every range (in parallel when there are several) and
/// multiplies the results.
fn product_of_ranges<B: Int>(
    ranges: &[(usize, usize)],
    run: impl Fn((usize, usize)) -> Option<B> + Sync,
    modulus: &B,
) -> Option<B> {
    let partials: Vec<Option<B>> = if ranges.len() == 1 {
        vec![run(ranges[0])]
    } else {
        ranges.par_iter().map(|&r| run(r)).collect()
    };
    let mut out = None;
    for p in partials.into_iter().flatten() {
        mul_into(&mut out, &p, modulus);
    }
    out
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
            for parts in [1, 2, 3] {
                assert_eq!(
                    best(&terms, &m, parts),
                    want,
                    "{count} terms, {parts} parts"
                );
            }
            if !terms.is_empty() {
                let l: Vec<Vec<u64>> = terms.iter().map(|(_, e)| limbs_of(e)).collect();
                let bits: Vec<u32> = terms.iter().map(|(_, e)| e.bits()).collect();
                for c in [1, 3, 8] {
                    for parts in [1, 2, 4] {
                        let got =
                            pippenger(&terms, &l, &bits, c, parts, &m).unwrap_or(B::from_u64(1));
                        assert_eq!(got, want, "pippenger c={c}, {parts} parts");
                    }
                }
                for w in 1..=MAX_STRAUS_WINDOW {
                    let widths = vec![w; terms.len()];
                    for parts in [1, 2, 4] {
                        let got = straus_exp(&terms, &l, &bits, &widths, parts, &m)
                            .unwrap_or(B::from_u64(1));
                        assert_eq!(got, want, "straus w={w}, {parts} parts");
                    }
                }
            }
        }
    }

    #[test]
    fn sliding_windows_rebuild_the_exponent() {
        type B = num_bigint::BigInt;
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        for k in 0..300 {
            let e = B::from_u64(rng.gen::<u64>() >> (k % 64))
                .shl(rng.gen_range(0..130))
                .add(&B::from_u64(rng.gen::<u64>() >> rng.gen_range(0..64)));
            let limbs = limbs_of(&e);
            for w in 1..=MAX_STRAUS_WINDOW {
                let mut rebuilt = B::zero();
                let mut last = u32::MAX;
                for (pos, d) in sliding_windows(&limbs, Int::bits(&e), w) {
                    assert!(pos < last, "windows from the top, not overlapping");
                    assert_eq!(d % 2, 1, "odd digits");
                    assert!(d < 1 << w, "{d} wider than {w} bits");
                    last = pos;
                    rebuilt = rebuilt.add(&B::from_u64(d as u64).shl(pos));
                }
                assert_eq!(rebuilt, e, "w={w}");
            }
        }
    }

    #[test]
    fn positions_split_into_balanced_ranges() {
        // 100 positions, one multiplication each, and 50 more at the bottom.
        let mut work = vec![1u64; 100];
        for w in work.iter_mut().take(10) {
            *w += 5;
        }
        for parts in 1..=4 {
            let ranges = split_positions(&work, 1, parts);
            assert!(ranges.len() <= parts);
            assert_eq!(ranges[0].1, 100);
            assert_eq!(ranges.last().unwrap().0, 0);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].0, pair[1].1, "contiguous");
            }
        }
        let two = split_positions(&work, 1, 2);
        let cost = |(low, high): (usize, usize)| work[low..high].iter().sum::<u64>() + high as u64;
        let (a, b) = (cost(two[0]), cost(two[1]));
        assert!(a.abs_diff(b) <= 10, "{two:?}: {a} against {b}");
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
