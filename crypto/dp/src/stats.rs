//! Goodness-of-fit helpers for noise samples: support for tests, public so
//! that tests in other crates can run the same check.
//!
//! This is not part of the service. It is public (and hidden from the docs)
//! so that a test which sends noise through Paillier encrypt-add-decrypt, or
//! through a TFHE or Prio3 round trip, can check that what comes out still
//! follows the exact distribution, with the same binning as the sampler's
//! own tests. It computes Pearson's statistic and its degrees of freedom;
//! the p-value needs the chi-square distribution function, which tests take
//! from `statrs` (a dev-dependency, kept out of the library):
//!
//! ```text
//! let fit = chi_square(&noise, &samples)?;
//! let p = statrs::distribution::ChiSquared::new(fit.degrees_of_freedom as f64)?.sf(fit.statistic);
//! ```

use super::distribution::Dist;
use super::{DpError, Noise};

/// Fewest expected draws in a bin: the usual rule for Pearson's test.
pub const MIN_EXPECTED: f64 = 5.0;

/// Most bins used: wider noise is grouped into ranges of integers.
pub const MAX_BINS: usize = 1001;

/// One bin: the integers from `lo` to `hi` inclusive (`None` is unbounded).
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// Smallest value, or `None` for minus infinity.
    pub lo: Option<i128>,
    /// Largest value, or `None` for plus infinity.
    pub hi: Option<i128>,
    /// Draws expected from the pmf.
    pub expected: f64,
    /// Draws seen.
    pub observed: u64,
}

/// Pearson's chi-square goodness-of-fit statistic of samples against the
/// exact pmf of a noise distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct ChiSquare {
    /// `sum (observed - expected)^2 / expected` over the bins.
    pub statistic: f64,
    /// Bins minus one (no parameters are estimated from the data).
    pub degrees_of_freedom: usize,
    /// The bins, in increasing order.
    pub bins: Vec<Bin>,
}

/// Bins `samples` and compares them with the pmf of `noise`.
///
/// Bins are symmetric about zero. The central bin is the smallest interval
/// `[-c, c]` holding the target probability; outwards from it each bin is
/// the shortest run of integers holding it, and what is left in each tail is
/// pooled into one unbounded bin. The target probability is the larger of
/// `5 / n` (so every expected count is at least 5) and `1 / MAX_BINS`;
/// narrow noise therefore gets one bin per integer near the centre.
pub fn chi_square(noise: &Noise, samples: &[i128]) -> Result<ChiSquare, DpError> {
    let n = samples.len() as f64;
    let dist = noise.dist();
    let target = (MIN_EXPECTED / n).max(1.0 / MAX_BINS as f64);
    let centre = dist.half_width(target.min(0.999_999));
    // P(X >= b) for b >= 1, by symmetry.
    let upper = |b: u128| dist.tail(b - 1) / 2.0;

    // Bins on the positive side, beyond the centre: (first, last, probability).
    let mut right: Vec<(u128, Option<u128>, f64)> = Vec::new();
    let mut start = centre + 1;
    loop {
        let rest = upper(start);
        if rest < target {
            // Too little left for a bin of its own: widen the last bin, or
            // the centre, to infinity.
            if let Some(last) = right.last_mut() {
                last.1 = None;
                last.2 += rest;
            }
            break;
        }
        if rest < 2.0 * target {
            right.push((start, None, rest));
            break;
        }
        let end = shortest_run(&dist, start, target);
        right.push((start, Some(end), rest - upper(end + 1)));
        start = end + 1;
    }
    let signed = |v: u128| -> Result<i128, DpError> {
        i128::try_from(v).map_err(|_| DpError::OutOfRange {
            what: "noise for a chi-square test",
            requirement: "within i128",
            value: v.to_string(),
        })
    };
    let centre_probability = 1.0 - dist.tail(centre);
    let mut bounds: Vec<(Option<i128>, Option<i128>, f64)> =
        Vec::with_capacity(2 * right.len() + 1);
    for &(first, last, p) in right.iter().rev() {
        let lo = last.map(|l| signed(l).map(|l| -l)).transpose()?;
        bounds.push((lo, Some(-signed(first)?), p));
    }
    let open_centre = right.is_empty();
    let c = signed(centre)?;
    bounds.push((
        (!open_centre).then_some(-c),
        (!open_centre).then_some(c),
        if open_centre { 1.0 } else { centre_probability },
    ));
    for &(first, last, p) in &right {
        bounds.push((Some(signed(first)?), last.map(signed).transpose()?, p));
    }
    if bounds.len() < 2 {
        return Err(DpError::Infeasible(format!(
            "{noise} is too concentrated for {} draws to fill two bins of {MIN_EXPECTED} \
             expected draws",
            samples.len()
        )));
    }

    let mut observed = vec![0u64; bounds.len()];
    for &x in samples {
        // The first bin whose upper end is at or above x.
        let i = bounds.partition_point(|(_, hi, _)| hi.is_some_and(|hi| hi < x));
        observed[i] += 1;
    }
    let bins: Vec<Bin> = bounds
        .into_iter()
        .zip(observed)
        .map(|((lo, hi, p), observed)| Bin {
            lo,
            hi,
            expected: p * n,
            observed,
        })
        .collect();
    let statistic = bins
        .iter()
        .map(|b| {
            let d = b.observed as f64 - b.expected;
            d * d / b.expected
        })
        .sum();
    Ok(ChiSquare {
        statistic,
        degrees_of_freedom: bins.len() - 1,
        bins,
    })
}

/// The smallest `end >= start` with `P(start <= X <= end) >= target`; the
/// caller guarantees `P(X >= start) >= 2 target`, so one exists.
fn shortest_run(dist: &Dist, start: u128, target: f64) -> u128 {
    let from_start = dist.tail(start - 1) / 2.0;
    let mass = |end: u128| from_start - dist.tail(end) / 2.0;
    if mass(start) >= target {
        return start;
    }
    let mut step = 1u128;
    while mass(start.saturating_add(step)) < target {
        step = step.saturating_mul(2);
    }
    // Invariant: mass(lo) < target <= mass(hi).
    let (mut lo, mut hi) = (start.saturating_add(step / 2), start.saturating_add(step));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if mass(mid) >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The sample mean and the unbiased sample variance.
pub fn mean_and_variance(samples: &[i128]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n;
    let ss: f64 = samples
        .iter()
        .map(|&x| {
            let d = x as f64 - mean;
            d * d
        })
        .sum();
    (mean, ss / (n - 1.0))
}

/// Kullback–Leibler divergence of Bernoulli(q) from Bernoulli(p), in nats.
fn bernoulli_kl(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| if a == 0.0 { 0.0 } else { a * (a / b).ln() };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// Bounds on a Bernoulli probability from `k` successes in `n` trials,
/// each holding with probability at least `1 - alpha`: the Chernoff bound
/// in its Kullback–Leibler form, `P(p̂ <= p - t) <= exp(-n KL(p - t || p))`
/// and its mirror, inverted by bisection. Valid for every `n` (no normal
/// approximation), so a test built on it has a failure probability it can
/// state.
pub fn bernoulli_bounds(k: u64, n: u64, alpha: f64) -> (f64, f64) {
    assert!(n > 0 && k <= n && alpha > 0.0 && alpha < 1.0);
    let p = k as f64 / n as f64;
    let budget = (1.0 / alpha).ln() / n as f64;
    let search = |mut inside: f64, mut outside: f64| {
        for _ in 0..200 {
            let mid = (inside + outside) / 2.0;
            if bernoulli_kl(p, mid) <= budget {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        inside
    };
    let lower = if k == 0 { 0.0 } else { search(p, 0.0) };
    let upper = if k == n { 1.0 } else { search(p, 1.0) };
    (lower, upper)
}

/// A DP distinguisher's verdict: the smallest epsilon consistent with an
/// event seen `k0` times in `n0` releases of one batch and `k1` times in
/// `n1` releases of a neighbouring batch. If a mechanism is epsilon-DP,
/// `P0(event) <= e^epsilon P1(event)`; with probability at least
/// `1 - 2 alpha` the true ratio is at least
/// `lower(P0) / upper(P1)` ([`bernoulli_bounds`]), so its logarithm is a
/// lower bound on any epsilon the mechanism can have. Returns 0 when the
/// data give no evidence of any loss.
pub fn epsilon_lower_bound(k0: u64, n0: u64, k1: u64, n1: u64, alpha: f64) -> f64 {
    let (low0, _) = bernoulli_bounds(k0, n0, alpha);
    let (_, high1) = bernoulli_bounds(k1, n1, alpha);
    if low0 <= 0.0 {
        return 0.0;
    }
    (low0 / high1).ln().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DpMechanism, Rational, Relation};
    use hetally_protocol::Measurement;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn bernoulli_bounds_bracket_the_estimate() {
        let (lo, hi) = bernoulli_bounds(300, 1000, 1e-6);
        assert!(lo < 0.3 && 0.3 < hi, "{lo} {hi}");
        assert!(lo > 0.22 && hi < 0.38, "{lo} {hi}");
        assert_eq!(bernoulli_bounds(0, 10, 0.01).0, 0.0);
        assert_eq!(bernoulli_bounds(10, 10, 0.01).1, 1.0);
        // More trials, tighter bounds.
        let (lo2, hi2) = bernoulli_bounds(3000, 10_000, 1e-6);
        assert!(hi2 - lo2 < hi - lo);
    }

    /// The distinguisher the server's statistical test runs
    /// (`tests/tests/it/dp.rs`), on the sampler alone: two neighbouring
    /// histogram:2 batches of one report, in bucket 0 or bucket 1, released
    /// 1,500 times each under `laplace:2`; the event is "bucket 0 minus
    /// bucket 1 is at least 1". With the replace-one calibration (scale
    /// L1/epsilon = 1) the evidence stays far below epsilon = 2; with the
    /// calibration used before relations were declared (scale 1/2, for
    /// L1 = 1) it proves the release is not 2-DP.
    #[test]
    fn the_distinguisher_catches_the_old_histogram_calibration() {
        let histogram: Measurement = "histogram:2".parse().unwrap();
        let laplace: DpMechanism = "laplace:2".parse().unwrap();
        let rate = |noise: &Noise, seed: u64| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut hits = [0u64; 2];
            for (side, hit) in hits.iter_mut().enumerate() {
                let truth: [i128; 2] = if side == 0 { [1, 0] } else { [0, 1] };
                for _ in 0..1500 {
                    let n = noise.sample(2, &mut rng).unwrap();
                    let v0 = truth[0] + n[0];
                    let v1 = truth[1] + n[1];
                    *hit += u64::from(v0 - v1 >= 1);
                }
            }
            epsilon_lower_bound(hits[0], 1500, hits[1], 1500, 1e-6)
        };
        let new = Noise::for_task(&histogram, &laplace, Some(Relation::ReplaceOne)).unwrap();
        let old = Noise::for_task(&histogram, &laplace, None).unwrap();
        assert_eq!(
            old,
            Noise::DiscreteLaplace {
                scale: Rational::new(1, 2)
            }
        );
        for seed in 0..5 {
            let (caught_new, caught_old) = (rate(&new, seed), rate(&old, seed));
            println!(
                "seed {seed}: epsilon >= {caught_new:.3} (replace-one), {caught_old:.3} (old)"
            );
            // The server test asserts the bound is at most epsilon = 2.
            assert!(caught_new < 1.5, "seed {seed}: {caught_new}");
            assert!(caught_old > 2.0, "seed {seed}: {caught_old}");
        }
    }

    #[test]
    fn bins_cover_everything_with_enough_expected_draws() {
        for noise in [
            Noise::DiscreteLaplace {
                scale: Rational::new(5, 2),
            },
            Noise::DiscreteGaussian {
                sigma: Rational::new(7, 1),
            },
            Noise::DiscreteGaussian {
                sigma: Rational::from_integer(100_000),
            },
        ] {
            let samples = vec![0i128; 20_000];
            let fit = chi_square(&noise, &samples).unwrap();
            let total: f64 = fit.bins.iter().map(|b| b.expected).sum();
            assert!((total - 20_000.0).abs() < 1e-6, "{noise}: {total}");
            assert!(
                fit.bins.iter().all(|b| b.expected >= MIN_EXPECTED),
                "{noise}"
            );
            assert!(
                fit.bins.len() <= MAX_BINS + 2,
                "{noise}: {}",
                fit.bins.len()
            );
            assert_eq!(fit.bins.first().unwrap().lo, None);
            assert_eq!(fit.bins.last().unwrap().hi, None);
            for pair in fit.bins.windows(2) {
                assert_eq!(
                    pair[0].hi.unwrap() + 1,
                    pair[1].lo.unwrap(),
                    "{noise}: contiguous"
                );
            }
            // All draws were zero: they land in the centre bin.
            let centre = fit
                .bins
                .iter()
                .find(|b| b.lo.is_some_and(|lo| lo <= 0) && b.hi.is_some_and(|hi| hi >= 0));
            assert_eq!(centre.unwrap().observed, 20_000);
        }
    }

    #[test]
    fn too_concentrated_noise_is_reported() {
        let noise = Noise::DiscreteLaplace {
            scale: Rational::new(1, 100),
        };
        assert!(matches!(
            chi_square(&noise, &[0; 100]),
            Err(DpError::Infeasible(_))
        ));
    }

    #[test]
    fn mean_and_variance_of_a_small_sample() {
        let (m, v) = mean_and_variance(&[-1, 0, 1, 4]);
        assert!((m - 1.0).abs() < 1e-12);
        assert!((v - 14.0 / 3.0).abs() < 1e-12);
    }
}
