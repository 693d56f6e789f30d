//! The noise one release adds to every value, how to draw it, and what is
//! known about it.
//!
//! Calibration follows the task's neighbouring relation
//! ([`Relation`]; sensitivities from [`l1_sensitivity`] and
//! [`l2_sensitivity_squared`], the largest distance one report can move a
//! release):
//!
//! | type | replace-one L1 / L2^2 | add/remove L1 / L2^2 (values + count) |
//! |---|---|---|
//! | `count` | 1 / 1 | 1 + 1 / 1 + 1 |
//! | `sum:BITS` | `m` / `m^2` | `m + 1` / `m^2 + 1` |
//! | `histogram:BUCKETS` | 2 / 2 | 1 + 1 / 1 + 1 |
//! | `sumvec:LENGTH:BITS` | `L m` / `L m^2` | `L m + 1` / `L m^2 + 1` |
//!
//! with `m = 2^BITS - 1`. Under replace-one one report's value changes: a
//! histogram report moving from one bucket to another changes two buckets
//! by one each; the other types change at most as much as removing the
//! report would. Under add/remove the report count is released with the
//! values, as one more value that one report moves by one, so it shares the
//! calibration (and the release's epsilon or rho covers it).
//!
//! Tasks created before relations were declared (`relation` `None`) keep
//! the calibration they were made with: add/remove's values-only
//! sensitivities (1 and 1 for a histogram). Their batch sizes were
//! published, so what holds for them is replace-one, at the parameter
//! [`crate::Guarantee`] works out.
//!
//! * `laplace:EPSILON`: independent discrete Laplace noise of scale
//!   `L1 / epsilon` on every value gives pure epsilon-DP for the whole
//!   vector: the pmf ratio at any output is at most
//!   `exp(sum_i |d_i| / scale) <= exp(epsilon)` for a shift `d` of L1 norm
//!   at most the sensitivity (CKS20, Section 2.2, and Dwork et al. 2006 for
//!   the continuous case).
//! * `gaussian:RHO`: independent discrete Gaussian noise with
//!   `sigma^2 >= L2^2 / (2 rho)` on every value gives rho-zCDP: one discrete
//!   Gaussian shifted by an integer `d_i` has Rényi divergence at most
//!   `alpha d_i^2 / (2 sigma^2)` (CKS20, Theorem 4), and the divergences of
//!   independent coordinates add up to at most `alpha L2^2 / (2 sigma^2)`.
//!   The square root is irrational in general; sigma is the exact root when
//!   there is one, otherwise it is rounded **up** at about ten significant
//!   digits, which only adds privacy.

use std::fmt;

#[cfg(feature = "sampler")]
use num_bigint::BigInt;
use num_bigint::BigUint;
#[cfg(feature = "sampler")]
use prio::dp::distributions::{DiscreteGaussian, DiscreteLaplace};
#[cfg(feature = "sampler")]
use rand::distributions::Distribution;
#[cfg(feature = "sampler")]
use rand_core::{CryptoRng, RngCore};

use super::distribution::Dist;
use super::{DpError, DpMechanism, Rational, Relation, TrusteeNoise};
use hetally_protocol::Measurement;

/// Log2 of the largest noise scale (Laplace) or sigma (Gaussian) accepted.
///
/// Values are carried as `i128` after decryption. At this scale a noise
/// value exceeds 2^107 with probability below 2^-128, which leaves room for
/// the sum of 2^40 reports of 62 bits and keeps slot sizes finite.
pub const MAX_NOISE_SCALE_BITS: u32 = 100;

/// Significant digits kept when sigma is rounded up.
const SIGMA_DIGITS: i32 = 10;

/// A rational upper bound on ln 2 = 0.693147180559945309...
fn ln2_upper() -> Rational {
    Rational::new(6_931_471_805_599_454, 10_000_000_000_000_000)
}

/// `2^bits` as a rational.
fn pow2(bits: u32) -> Rational {
    Rational::from_biguint(BigUint::from(1u8) << bits)
}

/// The largest L1 norm of one report: 1 for a one-hot histogram,
/// `len × max_value` otherwise.
fn report_l1(measurement: &Measurement) -> BigUint {
    if measurement.is_one_hot() {
        return BigUint::from(1u8);
    }
    BigUint::from(measurement.len()) * BigUint::from(measurement.max_value())
}

/// The largest squared L2 norm of one report: 1 for a one-hot histogram,
/// `len × max_value^2` otherwise (in big integers: `sumvec:65536:62` is
/// 2^140).
fn report_l2_squared(measurement: &Measurement) -> BigUint {
    if measurement.is_one_hot() {
        return BigUint::from(1u8);
    }
    let max = BigUint::from(measurement.max_value());
    BigUint::from(measurement.len()) * &max * &max
}

/// The L1 sensitivity a release of `measurement` is calibrated for under
/// `relation` (see the module docs; `None`: a task without a declared
/// relation, calibrated as add/remove's values). Exact, in big integers.
pub fn l1_sensitivity(measurement: &Measurement, relation: Option<Relation>) -> Rational {
    Rational::from_biguint(match relation {
        Some(Relation::ReplaceOne) if measurement.is_one_hot() => BigUint::from(2u8),
        Some(Relation::ReplaceOne) | None => report_l1(measurement),
        // The report count is one more value of the release.
        Some(Relation::AddRemove) => report_l1(measurement) + 1u8,
    })
}

/// The squared L2 sensitivity a release of `measurement` is calibrated
/// for under `relation` (see [`l1_sensitivity`]). Exact, in big integers.
pub fn l2_sensitivity_squared(measurement: &Measurement, relation: Option<Relation>) -> Rational {
    Rational::from_biguint(match relation {
        // One bucket down by one, another up by one: 1 + 1.
        Some(Relation::ReplaceOne) if measurement.is_one_hot() => BigUint::from(2u8),
        Some(Relation::ReplaceOne) | None => report_l2_squared(measurement),
        Some(Relation::AddRemove) => report_l2_squared(measurement) + 1u8,
    })
}

/// The distribution of the noise added to each value of one release. Every
/// value gets an independent draw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Noise {
    /// No noise.
    None,
    /// Discrete Laplace: `P(x)` proportional to `exp(-|x| / scale)` on the
    /// integers.
    DiscreteLaplace {
        /// The scale, `L1 sensitivity / epsilon`.
        scale: Rational,
    },
    /// Discrete Gaussian: `P(x)` proportional to `exp(-x^2 / (2 sigma^2))` on
    /// the integers (its variance is slightly below `sigma^2`).
    DiscreteGaussian {
        /// The parameter sigma, `>= sqrt(L2^2 / (2 rho))`.
        sigma: Rational,
    },
    /// The sum of `shares` independent discrete Gaussians of parameter
    /// `share_sigma`: the noise of a task whose trustees draw it
    /// ([`Noise::for_trustees`]). Each trustee draws one share per value
    /// ([`Noise::share`]).
    SummedGaussian {
        /// Each share's parameter, `>= sqrt(L2^2 / (2 rho honest))`.
        share_sigma: Rational,
        /// How many shares a release carries (the task's contributors).
        shares: u8,
    },
}

impl Noise {
    /// The noise a release of `measurement` under `mechanism` carries, for
    /// a task of `relation` (`None`: declared none); see the module docs for
    /// the calibration. Under add/remove the release's report count carries
    /// the same noise. Errors if the mechanism is invalid or the noise would
    /// be wider than 2^[`MAX_NOISE_SCALE_BITS`].
    pub fn for_task(
        measurement: &Measurement,
        mechanism: &DpMechanism,
        relation: Option<Relation>,
    ) -> Result<Noise, DpError> {
        mechanism.check()?;
        let noise = match mechanism {
            DpMechanism::None => Noise::None,
            DpMechanism::Laplace { epsilon } => {
                let l1 = l1_sensitivity(measurement, relation);
                // check() above rejects a zero epsilon.
                let scale = l1.checked_div(epsilon).ok_or_else(|| DpError::OutOfRange {
                    what: "epsilon",
                    requirement: "greater than zero",
                    value: epsilon.to_string(),
                })?;
                Noise::DiscreteLaplace { scale }
            }
            DpMechanism::Gaussian { rho } => {
                let l2_squared = l2_sensitivity_squared(measurement, relation);
                let variance =
                    l2_squared
                        .checked_div(&rho.add(rho))
                        .ok_or_else(|| DpError::OutOfRange {
                            what: "rho",
                            requirement: "greater than zero",
                            value: rho.to_string(),
                        })?;
                Noise::DiscreteGaussian {
                    sigma: sigma_at_least(&variance)?,
                }
            }
        };
        noise.check()?;
        Ok(noise)
    }

    /// The noise of a task whose trustees draw it: `contributors` shares
    /// of a discrete Gaussian whose variance is the task's Gaussian
    /// variance `L2^2 / (2 rho)` divided by `honest`, so that any `honest`
    /// shares sum to at least the task's variance. Each share's sigma is
    /// rounded up as the Gaussian's is. `mechanism` must be Gaussian.
    pub fn for_trustees(
        measurement: &Measurement,
        mechanism: &DpMechanism,
        relation: Option<Relation>,
        trustees: &TrusteeNoise,
    ) -> Result<Noise, DpError> {
        mechanism.check()?;
        trustees.check().map_err(|e| DpError::OutOfRange {
            what: "trustee noise",
            requirement: "1 <= honest <= contributors",
            value: e,
        })?;
        let DpMechanism::Gaussian { rho } = mechanism else {
            return Err(DpError::BadMechanism(format!(
                "{mechanism}: trustees draw discrete Gaussian shares, so the mechanism must be \
                 gaussian:RHO"
            )));
        };
        let l2_squared = l2_sensitivity_squared(measurement, relation);
        let denominator = rho
            .add(rho)
            .mul(&Rational::from_integer(u128::from(trustees.honest)));
        let variance = l2_squared
            .checked_div(&denominator)
            .ok_or_else(|| DpError::OutOfRange {
                what: "rho",
                requirement: "greater than zero",
                value: rho.to_string(),
            })?;
        let noise = Noise::SummedGaussian {
            share_sigma: sigma_at_least(&variance)?,
            shares: trustees.contributors,
        };
        noise.check()?;
        Ok(noise)
    }

    /// The noise of a release of a task: [`Noise::for_trustees`] when its
    /// trustees draw it, [`Noise::for_task`] otherwise.
    pub fn for_release(
        measurement: &Measurement,
        mechanism: &DpMechanism,
        relation: Option<Relation>,
        trustees: Option<&TrusteeNoise>,
    ) -> Result<Noise, DpError> {
        match trustees {
            Some(t) => Noise::for_trustees(measurement, mechanism, relation, t),
            None => Noise::for_task(measurement, mechanism, relation),
        }
    }

    /// What one trustee draws for each value of a [`Noise::SummedGaussian`]
    /// release: one discrete Gaussian of the share sigma. `None` for noise
    /// the server draws whole.
    pub fn share(&self) -> Option<Noise> {
        match self {
            Noise::SummedGaussian { share_sigma, .. } => Some(Noise::DiscreteGaussian {
                sigma: share_sigma.clone(),
            }),
            _ => None,
        }
    }

    /// Checks that the scale or sigma is positive and at most
    /// 2^[`MAX_NOISE_SCALE_BITS`].
    pub fn check(&self) -> Result<(), DpError> {
        let (what, value) = match self {
            Noise::None => return Ok(()),
            Noise::DiscreteLaplace { scale } => ("scale", scale),
            Noise::DiscreteGaussian { sigma } => ("sigma", sigma),
            Noise::SummedGaussian { shares: 0, .. } => {
                return Err(DpError::OutOfRange {
                    what: "noise shares",
                    requirement: "at least 1",
                    value: "0".into(),
                })
            }
            Noise::SummedGaussian { share_sigma, .. } => ("share sigma", share_sigma),
        };
        if value.is_zero() {
            return Err(DpError::OutOfRange {
                what,
                requirement: "greater than zero",
                value: value.to_string(),
            });
        }
        if *value > pow2(MAX_NOISE_SCALE_BITS) {
            return Err(DpError::NoiseTooLarge {
                what,
                value: value.clone(),
                max_bits: MAX_NOISE_SCALE_BITS,
            });
        }
        Ok(())
    }

    /// Draws `len` independent noise values with prio's exact samplers
    /// (integer and rational arithmetic only).
    ///
    /// Production callers pass a CSPRNG seeded from the operating system,
    /// such as `rand_chacha::ChaCha20Rng::from_entropy()`; tests may pass a
    /// seeded one. Errors only if [`Noise::check`] fails.
    #[cfg(feature = "sampler")]
    pub fn sample<R: RngCore + CryptoRng>(
        &self,
        len: usize,
        rng: &mut R,
    ) -> Result<Vec<i128>, DpError> {
        self.check()?;
        let sampler_error = |e: prio::dp::DpError| DpError::OutOfRange {
            what: "noise parameter",
            requirement: "accepted by prio's sampler",
            value: e.to_string(),
        };
        match self {
            Noise::None => Ok(vec![0; len]),
            Noise::DiscreteLaplace { scale } => {
                let d = DiscreteLaplace::new(scale.as_ratio().clone()).map_err(sampler_error)?;
                Ok((0..len).map(|_| draw(&d, rng)).collect())
            }
            Noise::DiscreteGaussian { sigma } => {
                let d = DiscreteGaussian::new(sigma.as_ratio().clone()).map_err(sampler_error)?;
                Ok((0..len).map(|_| draw(&d, rng)).collect())
            }
            // What the shares of all contributors add up to (simulation and
            // tests: in a release each trustee draws its own share).
            Noise::SummedGaussian {
                share_sigma,
                shares,
            } => {
                let d =
                    DiscreteGaussian::new(share_sigma.as_ratio().clone()).map_err(sampler_error)?;
                Ok((0..len)
                    .map(|_| (0..*shares).map(|_| draw(&d, rng)).sum())
                    .collect())
            }
        }
    }

    /// `P(X = x)`, from the pmf, to `f64` precision.
    pub fn pmf(&self, x: i128) -> f64 {
        self.dist().pmf(x)
    }

    /// `P(|X| > k)`, from the pmf, to `f64` precision. For confidence
    /// intervals and tests; slot sizing uses the sound [`Noise::tail_bound`].
    pub fn tail_probability(&self, k: u128) -> f64 {
        self.dist().tail(k)
    }

    /// The variance of one noise value, from the pmf: `2q / (1-q)^2` with
    /// `q = exp(-1/scale)` for discrete Laplace; the pmf sum (slightly below
    /// `sigma^2`) for the discrete Gaussian.
    pub fn variance(&self) -> f64 {
        self.dist().variance()
    }

    /// The standard deviation of one noise value.
    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }

    /// The half-width of the symmetric confidence interval: the smallest
    /// `k` with `P(|X| <= k) >= confidence`, searched over the exact
    /// distribution (discrete Laplace: closed-form tail; discrete Gaussian:
    /// the summed pmf). A noisy value `y` then gives the interval
    /// `[y - k, y + k]` for the true value, which covers it with probability
    /// at least `confidence`. `confidence` must be strictly between 0 and 1.
    pub fn interval_half_width(&self, confidence: f64) -> Result<u128, DpError> {
        check_confidence(confidence)?;
        Ok(self.dist().half_width(confidence))
    }

    /// A `t` with `P(|X| > t) < 2^-log2_failure` for one noise value,
    /// proved rather than estimated, computed in exact rationals with a
    /// rational upper bound on ln 2; saturates at `u128::MAX`.
    ///
    /// * Discrete Laplace: `P(|X| > t) = 2 q^(t+1) / (1 + q) < 2 exp(-(t+1) / scale)`,
    ///   so `t = ceil(scale (log2_failure + 1) ln 2)` suffices.
    /// * Discrete Gaussian: it is subgaussian (CKS20, Section 2): its moment
    ///   generating function is at most the continuous one's,
    ///   `E[exp(tX)] <= exp(t^2 sigma^2 / 2)`, because shifting the Gaussian
    ///   weights off the integers never increases their sum (Poisson
    ///   summation: every Fourier coefficient is positive). Chernoff then
    ///   gives `P(X >= m) <= exp(-m^2 / (2 sigma^2))`, so
    ///   `P(|X| > t) <= 2 exp(-(t+1)^2 / (2 sigma^2))`, and the smallest `t`
    ///   with `(t+1)^2 >= 2 sigma^2 (log2_failure + 1) ln 2` suffices.
    ///
    /// Against the exact quantiles (crypto/tests/dp_sampling.rs) the Laplace
    /// bound is 6% high at 2^-20 and 1% at 2^-128; the Gaussian bound, which
    /// drops the Mills-ratio factor of the true tail, 10% at 2^-20, 6% at
    /// 2^-40 and 2% at 2^-128: a fraction of a bit of slot width.
    pub fn tail_bound(&self, log2_failure: u32) -> u128 {
        let bits = Rational::from_integer(u128::from(log2_failure) + 1).mul(&ln2_upper());
        match self {
            Noise::None => 0,
            Noise::DiscreteLaplace { scale } => scale.mul(&bits).ceil_u128(),
            Noise::DiscreteGaussian { sigma } => {
                let two_sigma_squared = sigma.mul(sigma).mul(&Rational::from_integer(2));
                let m = two_sigma_squared.mul(&bits).ceil_sqrt_integer();
                // m >= 1 because sigma > 0; saturate like the Laplace case.
                u128::try_from(m).map_or(u128::MAX, |m| m.saturating_sub(1))
            }
            // A sum of independent subgaussians is subgaussian with the
            // variance proxies added: shares sigma_share^2 in place of
            // sigma^2, and the same Chernoff bound.
            Noise::SummedGaussian {
                share_sigma,
                shares,
            } => {
                let two_v = share_sigma
                    .mul(share_sigma)
                    .mul(&Rational::from_integer(2 * u128::from(*shares)));
                let m = two_v.mul(&bits).ceil_sqrt_integer();
                u128::try_from(m).map_or(u128::MAX, |m| m.saturating_sub(1))
            }
        }
    }

    /// A `t` with `P(max_i |X_i| > t) < 2^-log2_failure` over `len`
    /// independent values, by the union bound: [`Noise::tail_bound`] at
    /// `log2_failure + ceil(log2(len))`. This is what a Paillier slot or a
    /// TFHE capacity check needs for a whole release.
    pub fn tail_bound_for_all(&self, len: usize, log2_failure: u32) -> u128 {
        let extra = if len <= 1 {
            0
        } else {
            usize::BITS - (len - 1).leading_zeros()
        };
        self.tail_bound(log2_failure.saturating_add(extra))
    }

    /// The distribution as floating-point facts, built once per query set.
    pub(crate) fn dist(&self) -> Dist {
        match self {
            Noise::None => Dist::Zero,
            Noise::DiscreteLaplace { scale } => Dist::laplace(scale.to_f64()),
            Noise::DiscreteGaussian { sigma } => Dist::gaussian(sigma.to_f64()),
            Noise::SummedGaussian {
                share_sigma,
                shares,
            } => Dist::summed_gaussian(share_sigma.to_f64(), u32::from(*shares)),
        }
    }
}

impl fmt::Display for Noise {
    /// `discrete Laplace, scale 5000/297 (≈ 16.84)`: exact, with a decimal
    /// approximation when the exact value is a fraction.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, what, value) = match self {
            Noise::None => return write!(f, "no noise"),
            Noise::SummedGaussian {
                share_sigma,
                shares,
            } => {
                write!(
                    f,
                    "sum of {shares} trustees' discrete Gaussian shares, sigma {share_sigma} each"
                )?;
                if !share_sigma.is_integer() && share_sigma.to_string().contains('/') {
                    write!(f, " (≈ {:.4})", share_sigma.to_f64())?;
                }
                return Ok(());
            }
            Noise::DiscreteLaplace { scale } => ("discrete Laplace", "scale", scale),
            Noise::DiscreteGaussian { sigma } => ("discrete Gaussian", "sigma", sigma),
        };
        write!(f, "{name}, {what} {value}")?;
        if !value.is_integer() && value.to_string().contains('/') {
            write!(f, " (≈ {:.4})", value.to_f64())?;
        }
        Ok(())
    }
}

/// Checks `0 < confidence < 1`.
pub(crate) fn check_confidence(confidence: f64) -> Result<(), DpError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(DpError::OutOfRange {
            what: "confidence",
            requirement: "strictly between 0 and 1 (for example 0.95 or 95%)",
            value: confidence.to_string(),
        })
    }
}

/// The exact square root of `variance` if it is rational, otherwise the
/// smallest decimal with about [`SIGMA_DIGITS`] significant digits above
/// it. Errors if sigma would exceed 2^[`MAX_NOISE_SCALE_BITS`].
fn sigma_at_least(variance: &Rational) -> Result<Rational, DpError> {
    let too_large = || DpError::NoiseTooLarge {
        what: "sigma",
        value: Rational::from_biguint(variance.ceil_sqrt_integer()),
        max_bits: MAX_NOISE_SCALE_BITS,
    };
    if *variance > pow2(2 * MAX_NOISE_SCALE_BITS) {
        return Err(too_large());
    }
    if let Some(sigma) = variance.exact_sqrt() {
        return Ok(sigma);
    }
    // variance <= 2^200, so its f64 value is finite; it is positive because
    // rho is finite. Choose p decimal places so sigma keeps ~10 digits.
    let approx = variance.to_f64().sqrt();
    let magnitude = if approx > 0.0 {
        approx.log10().floor() as i32
    } else {
        0
    };
    let places = (SIGMA_DIGITS - 1 - magnitude).clamp(0, 300) as u32;
    let ten_p = Rational::from_biguint(BigUint::from(10u8).pow(places));
    // Smallest m with m^2 >= variance 10^(2p), i.e. m >= sigma 10^p.
    let m = variance.mul(&ten_p).mul(&ten_p).ceil_sqrt_integer();
    Rational::from_biguint(m)
        .checked_div(&ten_p)
        .ok_or_else(too_large)
}

/// One draw, as an `i128`. [`Noise::check`] bounds the scale by 2^100, so a
/// draw outside `i128` has probability below `exp(-2^26)`; the loop only
/// exists so that the conversion cannot fail.
#[cfg(feature = "sampler")]
fn draw<D: Distribution<BigInt>, R: RngCore + CryptoRng>(d: &D, rng: &mut R) -> i128 {
    loop {
        if let Ok(v) = i128::try_from(d.sample(rng)) {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mech(s: &str) -> DpMechanism {
        s.parse().unwrap()
    }

    #[test]
    fn a_laplace_histogram_under_replace_one_gets_scale_two_over_epsilon() {
        let hist: Measurement = "histogram:16".parse().unwrap();
        assert_eq!(
            Noise::for_task(&hist, &mech("laplace:1"), Some(Relation::ReplaceOne)).unwrap(),
            Noise::DiscreteLaplace {
                scale: Rational::new(2, 1)
            }
        );
        // sigma^2 = L2^2 / (2 rho) = 2 / (2 / 8) = 8 under replace-one.
        let Noise::DiscreteGaussian { sigma } =
            Noise::for_task(&hist, &mech("gaussian:1/8"), Some(Relation::ReplaceOne)).unwrap()
        else {
            panic!()
        };
        assert!(sigma.mul(&sigma) >= Rational::from_integer(8));
        assert!(sigma.to_f64() < 8f64.sqrt() * (1.0 + 1e-9));
        // Add/remove: one bucket plus the count, also 2.
        assert_eq!(
            Noise::for_task(&hist, &mech("laplace:1"), Some(Relation::AddRemove)).unwrap(),
            Noise::DiscreteLaplace {
                scale: Rational::new(2, 1)
            }
        );
        let count = Measurement::Count;
        assert_eq!(
            Noise::for_task(&count, &mech("laplace:1"), Some(Relation::ReplaceOne)).unwrap(),
            Noise::DiscreteLaplace {
                scale: Rational::new(1, 1)
            }
        );
    }

    #[test]
    fn calibration_per_measurement() {
        let count = Measurement::Count;
        let hist: Measurement = "histogram:11".parse().unwrap();
        let sum: Measurement = "sum:8".parse().unwrap();
        let vec: Measurement = "sumvec:4:3".parse().unwrap();
        let lap = |m: &Measurement, e: &str| {
            Noise::for_task(m, &mech(&format!("laplace:{e}")), None).unwrap()
        };
        assert_eq!(
            lap(&count, "0.4"),
            Noise::DiscreteLaplace {
                scale: Rational::new(5, 2)
            }
        );
        assert_eq!(
            lap(&hist, "1"),
            Noise::DiscreteLaplace {
                scale: Rational::new(1, 1)
            }
        );
        assert_eq!(
            lap(&sum, "0.5"),
            Noise::DiscreteLaplace {
                scale: Rational::new(510, 1)
            }
        );
        assert_eq!(
            lap(&vec, "2"),
            Noise::DiscreteLaplace {
                scale: Rational::new(14, 1)
            }
        );

        let gauss = |m: &Measurement, r: &str| {
            Noise::for_task(m, &mech(&format!("gaussian:{r}")), None).unwrap()
        };
        // sigma^2 = 1 / (2 * 1/8) = 4: an exact root.
        assert_eq!(
            gauss(&count, "1/8"),
            Noise::DiscreteGaussian {
                sigma: Rational::new(2, 1)
            }
        );
        // sigma^2 = 255^2 / 2: irrational, rounded up at ten digits.
        let Noise::DiscreteGaussian { sigma } = gauss(&sum, "1") else {
            panic!()
        };
        let exact = 255.0 / 2f64.sqrt();
        assert!(
            sigma.to_f64() >= exact && sigma.to_f64() < exact * (1.0 + 1e-9),
            "{sigma}"
        );
        assert!(sigma.mul(&sigma) >= Rational::new(255 * 255, 2));
        // sumvec:4:3: L2^2 = 4 * 49 = 196, sigma^2 = 196 / 0.2 = 980.
        let Noise::DiscreteGaussian { sigma } = gauss(&vec, "0.1") else {
            panic!()
        };
        assert!(sigma.mul(&sigma) >= Rational::from_integer(980));
        assert!((sigma.to_f64() - 980f64.sqrt()).abs() < 1e-7);

        assert_eq!(
            Noise::for_task(&count, &DpMechanism::None, None).unwrap(),
            Noise::None
        );
    }

    #[test]
    fn sensitivities_match_measurement_norms_and_do_not_overflow() {
        for s in [
            "count",
            "sum:8",
            "sum:62",
            "histogram:11",
            "sumvec:4:8",
            "sumvec:15:62",
        ] {
            let m: Measurement = s.parse().unwrap();
            let (len, max) = (m.len() as u128, u128::from(m.max_value()));
            let (l1, l2sq) = if m.is_one_hot() {
                (1, 1)
            } else {
                (len * max, len * max * max)
            };
            // Legacy (no relation): add/remove's values only.
            assert_eq!(l1_sensitivity(&m, None), Rational::from_integer(l1), "{s}");
            assert_eq!(
                l2_sensitivity_squared(&m, None),
                Rational::from_integer(l2sq),
                "{s}"
            );
            // Add/remove: the report count is one more value.
            let add = Some(Relation::AddRemove);
            assert_eq!(
                l1_sensitivity(&m, add),
                Rational::from_integer(l1 + 1),
                "{s}"
            );
            assert_eq!(
                l2_sensitivity_squared(&m, add),
                Rational::from_integer(l2sq + 1),
                "{s}"
            );
            // Replace-one: a histogram report moving buckets changes two.
            let (r1, r2) = if m.is_one_hot() { (2, 2) } else { (l1, l2sq) };
            let rep = Some(Relation::ReplaceOne);
            assert_eq!(l1_sensitivity(&m, rep), Rational::from_integer(r1), "{s}");
            assert_eq!(
                l2_sensitivity_squared(&m, rep),
                Rational::from_integer(r2),
                "{s}"
            );
        }
        let wide: Measurement = "sumvec:65536:62".parse().unwrap();
        let max = BigUint::from((1u64 << 62) - 1);
        assert_eq!(
            l2_sensitivity_squared(&wide, Some(Relation::ReplaceOne)),
            Rational::from_biguint(BigUint::from(65536u32) * &max * &max)
        );
    }

    #[test]
    fn sigma_rounding_is_tight_and_upward_for_small_and_large_values() {
        for (num, den) in [
            (1u64, 3u64),
            (2, 1),
            (1, 1_000_000_007),
            (999_999_999_999, 7),
        ] {
            let v = Rational::new(num, den);
            let s = sigma_at_least(&v).unwrap();
            assert!(s.mul(&s) >= v, "{v}");
            let rel = s.to_f64() / v.to_f64().sqrt() - 1.0;
            assert!((0.0..1e-9).contains(&rel), "{v}: {rel}");
        }
    }

    #[test]
    fn too_much_noise_is_refused() {
        let m: Measurement = "sumvec:65536:62".parse().unwrap();
        let err = Noise::for_task(&m, &mech("laplace:1e-20"), None).unwrap_err();
        assert!(
            matches!(err, DpError::NoiseTooLarge { what: "scale", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("larger epsilon"));
        let err = Noise::for_task(&m, &mech("gaussian:1e-40"), None).unwrap_err();
        assert!(
            matches!(err, DpError::NoiseTooLarge { what: "sigma", .. }),
            "{err}"
        );
        // The largest legal noise still samples into i128.
        let wide = Noise::DiscreteLaplace {
            scale: pow2(MAX_NOISE_SCALE_BITS),
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        assert_eq!(wide.sample(4, &mut rng).unwrap().len(), 4);
        let zero = Noise::DiscreteGaussian {
            sigma: Rational::zero(),
        };
        assert!(zero.sample(1, &mut rng).is_err());
    }

    #[test]
    fn trustee_noise_is_calibrated_per_honest_share() {
        let hist: Measurement = "histogram:16".parse().unwrap();
        let rep = Some(Relation::ReplaceOne);
        let t = |c, h| TrusteeNoise {
            contributors: c,
            honest: h,
        };
        // gaussian:1/2 with replace-one L2^2 = 2: sigma^2 = 2.
        let one = Noise::for_trustees(&hist, &mech("gaussian:1/2"), rep, &t(3, 1)).unwrap();
        let Noise::SummedGaussian {
            share_sigma,
            shares,
        } = &one
        else {
            panic!("{one:?}")
        };
        assert_eq!(*shares, 3);
        // sqrt(2) rounded up at ten digits.
        assert_eq!(*share_sigma, Rational::new(1_414_213_563, 1_000_000_000));
        // Honest 2: sigma_share^2 = 1, exactly.
        let two = Noise::for_trustees(&hist, &mech("gaussian:1/2"), rep, &t(3, 2)).unwrap();
        assert_eq!(
            two,
            Noise::SummedGaussian {
                share_sigma: Rational::from_integer(1),
                shares: 3
            }
        );
        assert_eq!(
            two.share(),
            Some(Noise::DiscreteGaussian {
                sigma: Rational::from_integer(1)
            })
        );
        // Tail of the sum: (t+1)^2 >= 2 * 3 * 1 * 41 ln 2 = 170.51 -> t = 13.
        assert_eq!(two.tail_bound(40), 13);
        // Laplace cannot be split this way; 0 honest is refused.
        assert!(Noise::for_trustees(&hist, &mech("laplace:1"), rep, &t(3, 1)).is_err());
        assert!(Noise::for_trustees(&hist, &mech("gaussian:1"), rep, &t(3, 0)).is_err());
        assert_eq!(
            Noise::for_release(&hist, &mech("gaussian:1/2"), rep, None).unwrap(),
            Noise::for_task(&hist, &mech("gaussian:1/2"), rep).unwrap()
        );
    }

    #[test]
    fn tail_bound_formulas() {
        // Laplace scale 1, L = 40: ceil(41 ln 2) = ceil(28.418...) = 29.
        let lap = Noise::DiscreteLaplace {
            scale: Rational::new(1, 1),
        };
        assert_eq!(lap.tail_bound(40), 29);
        // Gaussian sigma 1, L = 40: (t+1)^2 >= 82 ln 2 = 56.84 -> t + 1 = 8.
        let gauss = Noise::DiscreteGaussian {
            sigma: Rational::new(1, 1),
        };
        assert_eq!(gauss.tail_bound(40), 7);
        assert_eq!(Noise::None.tail_bound(128), 0);
        // Union bound over 1000 values adds ceil(log2 1000) = 10 bits.
        assert_eq!(lap.tail_bound_for_all(1000, 40), lap.tail_bound(50));
        assert_eq!(lap.tail_bound_for_all(1, 40), lap.tail_bound(40));
        assert_eq!(lap.tail_bound_for_all(2, 40), lap.tail_bound(41));
        // Saturates rather than overflowing.
        let wide = Noise::DiscreteLaplace {
            scale: pow2(MAX_NOISE_SCALE_BITS),
        };
        assert_eq!(wide.tail_bound(u32::MAX), u128::MAX);
    }

    #[test]
    fn bad_confidence_is_rejected() {
        let lap = Noise::DiscreteLaplace {
            scale: Rational::new(1, 1),
        };
        for c in [0.0, 1.0, -0.5, 95.0, f64::NAN] {
            let err = lap.interval_half_width(c).unwrap_err();
            assert!(err.to_string().contains("confidence"), "{err}");
        }
    }
}
