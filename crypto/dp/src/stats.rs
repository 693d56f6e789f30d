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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rational;

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
