//! Probability facts about the noise distributions, from their probability
//! mass functions (pmf), to `f64` precision.
//!
//! * Discrete Laplace with scale `s` (the distribution prio's sampler
//!   draws): `P(x) = tanh(1/(2s)) exp(-|x|/s)`. With `q = exp(-1/s)`,
//!   `P(|X| > k) = 2 q^(k+1) / (1 + q)` and `Var = 2q / (1 - q)^2`, all in
//!   closed form.
//! * Discrete Gaussian with parameter `sigma` (CKS20, Definition 1):
//!   `P(x) = exp(-x^2 / (2 sigma^2)) / Z` with `Z` the sum over all integers.
//!   Below [`DIRECT_MAX_SIGMA`] the pmf is summed term by term, from the
//!   far tail inwards, out to where the terms underflow. Above it summing is
//!   too slow (the planner evaluates many sigmas), and the sums are taken
//!   with the Euler–Maclaurin formula to the `B4` term, whose remainder is
//!   below `0.02 / sigma^3` in the unnormalised sum, so below `1e-11` in any
//!   probability at `sigma >= 1024`; by Poisson summation
//!   `Z = sigma sqrt(2 pi) (1 + 2 sum_j exp(-2 pi^2 sigma^2 j^2))`, where the
//!   correction underflows, and the variance is `sigma^2` to `f64` precision.
//!
//! These are for intervals, planning and tests. Bounds that must be sound
//! (slot sizing) do not use them; see `Noise::tail_bound`.

use std::f64::consts::PI;

/// Largest Gaussian sigma for which sums over the pmf are taken term by term.
pub(crate) const DIRECT_MAX_SIGMA: f64 = 1024.0;

/// Largest share sigma for which a sum of discrete Gaussians is convolved
/// term by term ([`Dist::summed_gaussian`]).
pub(crate) const SUMMED_TABLE_MAX_SIGMA: f64 = 4.0;

/// Most shares convolved term by term.
pub(crate) const SUMMED_TABLE_MAX_SHARES: u32 = 16;

/// `-ln` of the smallest positive `f64`, rounded up: `exp(-x)` is zero for
/// every larger `x`.
const UNDERFLOW: f64 = 746.0;

/// A noise distribution ready to answer queries; built once, queried often.
#[derive(Debug, Clone)]
pub(crate) enum Dist {
    /// Always zero.
    Zero,
    /// Discrete Laplace with this scale.
    Laplace {
        /// The scale `s`.
        scale: f64,
    },
    /// Discrete Gaussian, summed term by term.
    GaussianDirect {
        /// The parameter sigma.
        sigma: f64,
        /// `Z`, the sum of the unnormalised pmf over all integers.
        z: f64,
        /// `suffix[k]` is the unnormalised sum over `x >= k`; zero past the
        /// end.
        suffix: Vec<f64>,
    },
    /// Discrete Gaussian with Euler–Maclaurin sums.
    GaussianLarge {
        /// The parameter sigma.
        sigma: f64,
    },
    /// A symmetric distribution given by its pmf on `[-(len-1), len-1]`:
    /// the sum of several discrete Gaussians, convolved term by term.
    Table {
        /// `pmf[x]` is `P(X = x) = P(X = -x)` for `x >= 0`.
        pmf: Vec<f64>,
        /// `suffix[k]` is `P(X >= k)` for `k >= 0`; zero past the end.
        suffix: Vec<f64>,
        /// The standard deviation, for the interval search's first guess.
        std_dev: f64,
    },
}

impl Dist {
    /// The discrete Laplace distribution of scale `scale > 0`.
    pub(crate) fn laplace(scale: f64) -> Self {
        Dist::Laplace { scale }
    }

    /// The discrete Gaussian distribution of parameter `sigma > 0`.
    pub(crate) fn gaussian(sigma: f64) -> Self {
        if sigma >= DIRECT_MAX_SIGMA {
            return Dist::GaussianLarge { sigma };
        }
        Self::gaussian_direct(sigma)
    }

    /// The sum of `shares` independent discrete Gaussians of parameter
    /// `sigma`. Below [`SUMMED_TABLE_MAX_SIGMA`] (and with at most
    /// [`SUMMED_TABLE_MAX_SHARES`] shares) the pmf is convolved term by term.
    /// Above it each share's pmf is the sampled continuous Gaussian density
    /// to within a relative `2 exp(-2 pi^2 sigma^2)` (Poisson summation;
    /// below 1e-137 at sigma 4), so the sum is the discrete Gaussian of
    /// parameter `sigma sqrt(shares)` to `f64` precision.
    pub(crate) fn summed_gaussian(sigma: f64, shares: u32) -> Self {
        if shares <= 1 {
            return Self::gaussian(sigma);
        }
        if sigma >= SUMMED_TABLE_MAX_SIGMA || shares > SUMMED_TABLE_MAX_SHARES {
            return Self::gaussian(sigma * f64::from(shares).sqrt());
        }
        let Dist::GaussianDirect { z, suffix, .. } = Self::gaussian_direct(sigma) else {
            unreachable!("gaussian_direct builds the direct form")
        };
        // One share on [-m, m], as a two-sided vector with offset m.
        let m = suffix.len() - 2;
        let one: Vec<f64> = (0..=2 * m)
            .map(|i| gaussian_weight(i.abs_diff(m) as f64, sigma) / z)
            .collect();
        let mut acc = one.clone();
        for _ in 1..shares {
            let mut next = vec![0.0; acc.len() + one.len() - 1];
            for (i, a) in acc.iter().enumerate() {
                if *a == 0.0 {
                    continue;
                }
                for (j, b) in one.iter().enumerate() {
                    next[i + j] += a * b;
                }
            }
            acc = next;
        }
        let centre = (acc.len() - 1) / 2;
        let pmf: Vec<f64> = acc[centre..].to_vec();
        let mut suffix = vec![0.0; pmf.len() + 1];
        for x in (0..pmf.len()).rev() {
            suffix[x] = pmf[x] + suffix[x + 1];
        }
        let variance: f64 = 2.0
            * pmf
                .iter()
                .enumerate()
                .map(|(x, p)| (x * x) as f64 * p)
                .sum::<f64>();
        Dist::Table {
            pmf,
            suffix,
            std_dev: variance.sqrt(),
        }
    }

    /// The term-by-term form at any sigma (tests compare it with the
    /// Euler–Maclaurin form above the threshold).
    pub(crate) fn gaussian_direct(sigma: f64) -> Self {
        // exp(-x^2 / (2 sigma^2)) underflows for x > sigma sqrt(2 UNDERFLOW).
        let last = (sigma * (2.0 * UNDERFLOW).sqrt()).ceil() as usize + 1;
        let mut suffix = vec![0.0; last + 2];
        for x in (0..=last).rev() {
            suffix[x] = gaussian_weight(x as f64, sigma) + suffix[x + 1];
        }
        let z = 2.0 * suffix[0] - 1.0;
        Dist::GaussianDirect { sigma, z, suffix }
    }

    /// `P(X = x)`.
    pub(crate) fn pmf(&self, x: i128) -> f64 {
        let a = x.unsigned_abs() as f64;
        match self {
            Dist::Zero => f64::from(u8::from(x == 0)),
            Dist::Laplace { scale } => (0.5 / scale).tanh() * (-a / scale).exp(),
            Dist::GaussianDirect { sigma, z, .. } => gaussian_weight(a, *sigma) / z,
            Dist::GaussianLarge { sigma } => gaussian_weight(a, *sigma) / large_z(*sigma),
            Dist::Table { pmf, .. } => usize::try_from(x.unsigned_abs())
                .ok()
                .and_then(|i| pmf.get(i))
                .copied()
                .unwrap_or(0.0),
        }
    }

    /// `P(|X| > k)`.
    pub(crate) fn tail(&self, k: u128) -> f64 {
        match self {
            Dist::Zero => 0.0,
            Dist::Laplace { scale } => {
                let q = (-1.0 / scale).exp();
                2.0 * (-(k as f64 + 1.0) / scale).exp() / (1.0 + q)
            }
            Dist::GaussianDirect { z, suffix, .. } => 2.0 * suffix_above(suffix, k) / z,
            Dist::GaussianLarge { sigma } => {
                2.0 * euler_maclaurin_tail(k as f64 + 1.0, *sigma) / large_z(*sigma)
            }
            Dist::Table { suffix, .. } => 2.0 * suffix_above(suffix, k),
        }
    }

    /// `Var(X)`.
    pub(crate) fn variance(&self) -> f64 {
        match self {
            Dist::Zero => 0.0,
            Dist::Laplace { scale } => {
                let q = (-1.0 / scale).exp();
                let one_minus_q = -(-1.0 / scale).exp_m1();
                2.0 * q / (one_minus_q * one_minus_q)
            }
            Dist::GaussianDirect { sigma, z, suffix } => {
                let second_moment: f64 = (1..suffix.len())
                    .rev()
                    .map(|x| {
                        let x = x as f64;
                        x * x * gaussian_weight(x, *sigma)
                    })
                    .sum();
                2.0 * second_moment / z
            }
            Dist::GaussianLarge { sigma } => sigma * sigma,
            Dist::Table { std_dev, .. } => std_dev * std_dev,
        }
    }

    /// Smallest `k` with `P(|X| <= k) >= confidence`, for `0 < confidence
    /// < 1`, by binary search on the tail (which only decreases in `k`).
    pub(crate) fn half_width(&self, confidence: f64) -> u128 {
        let allowed = 1.0 - confidence;
        let ok = |k: u128| self.tail(k) <= allowed;
        if ok(0) {
            return 0;
        }
        // Find an upper end that is ok, doubling from a bound that is close
        // to the answer for both families.
        let width = match self {
            Dist::Zero => 0.0,
            Dist::Laplace { scale } => *scale,
            Dist::GaussianDirect { sigma, .. } | Dist::GaussianLarge { sigma } => *sigma,
            Dist::Table { std_dev, .. } => *std_dev,
        };
        let mut hi = ((width * (2.0 / allowed).ln().max(1.0)).ceil() as u128).max(1);
        while !ok(hi) {
            match hi.checked_mul(2) {
                Some(next) => hi = next,
                None => return u128::MAX,
            }
        }
        // Invariant: !ok(lo), ok(hi).
        let mut lo = 0u128;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ok(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

/// `suffix[k + 1]`, the sum over `x > k`, or 0 past the end.
fn suffix_above(suffix: &[f64], k: u128) -> f64 {
    usize::try_from(k)
        .ok()
        .and_then(|k| k.checked_add(1))
        .and_then(|i| suffix.get(i))
        .copied()
        .unwrap_or(0.0)
}

/// `exp(-x^2 / (2 sigma^2))`, the unnormalised Gaussian pmf.
fn gaussian_weight(x: f64, sigma: f64) -> f64 {
    let u = x / sigma;
    (-0.5 * u * u).exp()
}

/// `Z` for sigma at or above [`DIRECT_MAX_SIGMA`] (see the module docs).
fn large_z(sigma: f64) -> f64 {
    sigma * (2.0 * PI).sqrt()
}

/// `sum_{x >= a} exp(-x^2 / (2 sigma^2))` by Euler–Maclaurin:
/// `integral_a^inf f + f(a)/2 - B2/2! f'(a) - B4/4! f'''(a) + R`, with
/// `B2 = 1/6`, `B4 = -1/30`, `f'(a) = -(a/sigma^2) f(a)` and
/// `f'''(a) = (3a/sigma^4 - a^3/sigma^6) f(a)`.
pub(crate) fn euler_maclaurin_tail(a: f64, sigma: f64) -> f64 {
    let u = a / sigma;
    let f = (-0.5 * u * u).exp();
    let integral = sigma * (PI / 2.0).sqrt() * erfc(u / 2f64.sqrt());
    let s3 = sigma * sigma * sigma;
    integral + 0.5 * f + u / (12.0 * sigma) * f + (3.0 * u - u * u * u) / (720.0 * s3) * f
}

/// The complementary error function for `x >= 0` (negative `x` is treated
/// as zero, which the callers never pass), to about 1e-14 relative error:
/// a positive-term series for `erf` below 2, a continued fraction above.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let x = x.max(0.0);
    if x < 2.0 {
        // erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)):
        // every term is positive, so there is no cancellation in the sum.
        let x2 = x * x;
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= 2.0 * x2 / f64::from(2 * n + 1);
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        return 1.0 - 2.0 / PI.sqrt() * (-x2).exp() * sum;
    }
    if x > 27.3 {
        // exp(-x^2) underflows.
        return 0.0;
    }
    // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
    // evaluated with the modified Lentz algorithm.
    let tiny = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (x, 0.0);
    for n in 1..10_000 {
        let a = f64::from(n) / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::erf;

    /// Reference values from CPython's `math.erfc` (correctly rounded to
    /// within an ulp or so).
    const ERFC: [(f64, f64); 17] = [
        (0.0, 1.0),
        (0.1, 0.8875370839817152),
        (0.5, 0.4795001221869535),
        (1.0, 0.15729920705028513),
        (1.5, 0.033894853524689274),
        (1.99, 0.004888586800383003),
        (2.0, 0.004677734981047265),
        (2.01, 0.004475150644751763),
        (2.5, 0.0004069520174449589),
        (3.0, 2.2090496998585438e-05),
        (4.0, 1.541725790028002e-08),
        (5.0, 1.5374597944280351e-12),
        (7.5, 2.776649386030569e-26),
        (10.0, 2.088487583762545e-45),
        (15.0, 7.212994172451206e-100),
        (20.0, 5.3958656116079005e-176),
        (26.0, 5.663192408856143e-296),
    ];

    #[test]
    fn erfc_matches_reference_values() {
        for (x, want) in ERFC {
            let rel = (erfc(x) / want - 1.0).abs();
            assert!(rel < 1e-13, "erfc({x}) = {} vs {want}: {rel:e}", erfc(x));
        }
        assert_eq!(erfc(28.0), 0.0);
    }

    #[test]
    fn erfc_agrees_with_statrs_on_a_fine_grid() {
        // statrs' erfc is itself only good to about 1e-10 relative (it is
        // 1e-10 off at 0.5), hence the looser tolerance here.
        for i in 0..=520 {
            let x = f64::from(i) * 0.05;
            let (ours, theirs) = (erfc(x), erf::erfc(x));
            assert!(
                (ours / theirs - 1.0).abs() < 1e-9,
                "erfc({x}): {ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn laplace_closed_forms_match_pmf_sums() {
        for scale in [0.3, 1.0, 2.5, 17.0] {
            let d = Dist::laplace(scale);
            let total: f64 = (-2000..=2000).map(|x| d.pmf(x)).sum();
            assert!((total - 1.0).abs() < 1e-12, "scale {scale}: total {total}");
            let var: f64 = (-2000i128..=2000).map(|x| (x * x) as f64 * d.pmf(x)).sum();
            assert!((var / d.variance() - 1.0).abs() < 1e-10, "scale {scale}");
            for k in [0u128, 1, 5, 20] {
                let outside: f64 = 1.0 - (-(k as i128)..=k as i128).map(|x| d.pmf(x)).sum::<f64>();
                assert!((outside - d.tail(k)).abs() < 1e-12, "scale {scale} k {k}");
            }
        }
    }

    #[test]
    fn gaussian_direct_pmf_is_normalised() {
        for sigma in [0.2, 1.0, 3.7, 50.0] {
            let d = Dist::gaussian(sigma);
            let total: f64 = (-5000..=5000).map(|x| d.pmf(x)).sum();
            assert!((total - 1.0).abs() < 1e-12, "sigma {sigma}");
            // The discrete Gaussian's variance is below sigma^2 (CKS20) and
            // approaches it very quickly as sigma grows past 1.
            assert!(d.variance() < sigma * sigma * (1.0 + 1e-12));
            if sigma >= 1.0 {
                assert!(
                    (d.variance() / (sigma * sigma) - 1.0).abs() < 1e-6,
                    "sigma {sigma}"
                );
            }
        }
        // For small sigma the variance is visibly below sigma^2.
        assert!(Dist::gaussian(0.2).variance() < 0.5 * 0.04);
    }

    #[test]
    fn euler_maclaurin_agrees_with_direct_sums() {
        for sigma in [DIRECT_MAX_SIGMA, 1500.0, 3000.5] {
            let direct = Dist::gaussian_direct(sigma);
            let large = Dist::GaussianLarge { sigma };
            for k in [0u128, 10, 500, 1024, 2000, 5000, 20_000, 40_000] {
                let (a, b) = (direct.tail(k), large.tail(k));
                assert!((a - b).abs() < 1e-11, "sigma {sigma} k {k}: {a} vs {b}");
                if a > 1e-250 {
                    assert!(
                        ((a - b) / a).abs() < 1e-8,
                        "sigma {sigma} k {k}: {a} vs {b}"
                    );
                }
            }
            for x in [0i128, 700, -3000] {
                assert!((direct.pmf(x) / large.pmf(x) - 1.0).abs() < 1e-12);
            }
            assert!((direct.variance() / large.variance() - 1.0).abs() < 1e-12);
            for c in [0.5, 0.9, 0.95, 0.99, 0.999_999] {
                assert_eq!(
                    direct.half_width(c),
                    large.half_width(c),
                    "sigma {sigma} c {c}"
                );
            }
        }
    }

    #[test]
    fn half_width_is_smallest() {
        for d in [
            Dist::laplace(4.0),
            Dist::gaussian(6.0),
            Dist::gaussian(5000.0),
        ] {
            for c in [0.5, 0.95, 0.999] {
                let k = d.half_width(c);
                assert!(1.0 - d.tail(k) >= c);
                assert!(k == 0 || 1.0 - d.tail(k - 1) < c);
            }
        }
        // P(0) = tanh(1/(2s)) = 0.98 for s = 0.2: zero already covers 95%.
        assert_eq!(Dist::laplace(0.2).half_width(0.95), 0);
        assert_eq!(Dist::Zero.half_width(0.95), 0);
    }
}
