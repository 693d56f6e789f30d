//! Differential privacy: mechanisms, exact noise, distribution facts, budget
//! accounting and the planner.
//!
//! A released aggregate is the element-wise sum of a batch's reports plus
//! independent integer noise on every value. The neighbouring relation is
//! **add or remove one report**, so the sensitivities are the largest norms of
//! one report ([`l1_sensitivity`], [`l2_sensitivity_squared`]).
//!
//! * [`DpMechanism`] is what a task states (`none`, `laplace:EPSILON`,
//!   `gaussian:RHO`, or `gaussian-eps:EPSILON:DELTA` converted to rho); its
//!   binary encoding is part of the task definition.
//! * [`Noise`] is the distribution one release adds to each value, derived
//!   from the measurement and the mechanism, sampled exactly with prio's
//!   discrete Laplace and discrete Gaussian samplers (Canonne, Kamath and
//!   Steinke 2020, <https://arxiv.org/abs/2004.00010>): integer and rational
//!   arithmetic only, never a rounded floating-point Laplace (Mironov 2012).
//! * [`Noise`] also answers questions about itself: variance, confidence
//!   intervals (from the exact probability mass function) and sound tail
//!   bounds, used to size Paillier slots and TFHE capacity.
//! * [`try_spend`] is the budget accountant: epsilon adds up under basic
//!   composition, rho under zCDP composition, in exact rationals.
//! * [`plan`] turns a target error into the smallest epsilon or rho.
//!
//! docs/dp.md explains the choices and cites the papers.

mod budget;
mod distribution;
mod mechanism;
mod noise;
mod plan;
mod rational;
// Test support, public so that tests in other crates (noise through Paillier
// encrypt-add-decrypt, TFHE, Prio3) can run the same goodness-of-fit check;
// hidden from the docs because it is not part of the service's API.
#[doc(hidden)]
pub mod stats;

use thiserror::Error;

pub use budget::{release_cost, releases_left, try_spend};
pub use mechanism::{gaussian_eps_to_rho, zcdp_to_approx_dp, DpMechanism, MechanismSpec};
pub use noise::{l1_sensitivity, l2_sensitivity_squared, Noise, MAX_NOISE_SCALE_BITS};
pub use plan::{error_for, parse_confidence, plan, ErrorTarget, MechanismKind, Plan, PlanRequest};
pub use rational::Rational;

/// Errors from DP configuration, sampling, accounting and planning.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpError {
    /// A number could not be parsed as a non-negative decimal or fraction.
    #[error("{0:?} is not a non-negative decimal number or fraction (examples: 0.5, 1/3, 2e-3)")]
    BadNumber(String),
    /// A mechanism string could not be parsed.
    #[error("unknown DP mechanism {0:?}: expected none, laplace:EPSILON, gaussian:RHO or gaussian-eps:EPSILON:DELTA")]
    BadMechanism(String),
    /// A parameter is out of its allowed range.
    #[error("{what} must be {requirement}, got {value}")]
    OutOfRange {
        /// Parameter name.
        what: &'static str,
        /// What is required.
        requirement: &'static str,
        /// The value given.
        value: String,
    },
    /// A release would spend more privacy budget than the task has left.
    #[error(
        "privacy budget exhausted: this release costs {requested} but the task has already \
         spent {spent} of its total {total}. The task cannot release again; collect larger \
         batches less often, or define a new task (with its own budget) for new data"
    )]
    BudgetExhausted {
        /// The task's total budget.
        total: Rational,
        /// What earlier releases spent.
        spent: Rational,
        /// What this release would cost.
        requested: Rational,
    },
    /// The noise this mechanism needs is wider than an `i128` aggregate can
    /// carry safely.
    #[error(
        "noise {what} {value} is larger than the supported maximum 2^{max_bits}: the privacy \
         parameter is too small for this measurement's sensitivity; use a larger epsilon/rho \
         or a measurement with fewer bits or values"
    )]
    NoiseTooLarge {
        /// `scale` or `sigma`.
        what: &'static str,
        /// The value.
        value: Rational,
        /// Log2 of the largest scale accepted.
        max_bits: u32,
    },
    /// The planner cannot meet the request.
    #[error("cannot plan: {0}")]
    Infeasible(String),
}

/// The noise distribution of one value of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Noise {
    /// No noise.
    None,
    /// Discrete Laplace with P(x) proportional to exp(-|x| / scale).
    DiscreteLaplace {
        /// The scale.
        scale: Rational,
    },
    /// Discrete Gaussian with P(x) proportional to exp(-x^2 / (2 sigma^2)).
    DiscreteGaussian {
        /// The standard deviation parameter.
        sigma: Rational,
    },
}

impl Noise {
    /// The noise a release of `measurement` needs under `dp`, for the
    /// add-or-remove-one-report neighbouring relation.
    pub fn for_measurement(measurement: &crate::Measurement, dp: &DpMechanism) -> Result<Noise, DpError> {
        dp.check()?;
        Ok(match dp {
            DpMechanism::None => Noise::None,
            DpMechanism::Laplace { epsilon } => {
                let l1 = Ratio::from_integer(BigUint::from(measurement.max_l1_norm()));
                Noise::DiscreteLaplace {
                    scale: Rational(l1 / epsilon.as_ratio()),
                }
            }
            DpMechanism::Gaussian { rho } => {
                // sigma^2 = l2^2 / (2 rho); take a rational sigma at or above
                // the square root (more noise is always safe).
                let var = Ratio::from_integer(BigUint::from(measurement.max_l2_norm_squared()))
                    / (rho.as_ratio() * BigUint::from(2u8));
                let den = BigUint::from(1u64 << 32);
                let scaled = (var * &den * &den).ceil().to_integer();
                let mut root = scaled.sqrt();
                if &root * &root < scaled {
                    root += 1u8;
                }
                Noise::DiscreteGaussian {
                    sigma: Rational(Ratio::new(root, den)),
                }
            }
        })
    }

    /// A bound t with P(|X| > t) < 2^-log2_failure for one value.
    ///
    /// Discrete Laplace: P(|X| > t) <= 2 exp(-(t+1)/scale), so t = scale *
    /// (log2_failure + 1) * ln 2 suffices. Discrete Gaussian: it is
    /// sub-Gaussian with variance proxy sigma^2 (Canonne, Kamath and Steinke
    /// 2020), so P(|X| > t) <= 2 exp(-t^2 / (2 sigma^2)) and t = sigma *
    /// sqrt(2 (log2_failure + 1) ln 2) suffices. Both are rounded up.
    pub fn tail_bound(&self, log2_failure: u32) -> u128 {
        let ln2_upper = Ratio::new(BigUint::from(6_931_472u32), BigUint::from(10_000_000u32));
        let k = Ratio::from_integer(BigUint::from(log2_failure + 1)) * ln2_upper;
        let to_u128 = |r: Ratio<BigUint>| r.ceil().to_integer().to_u128().unwrap_or(u128::MAX);
        match self {
            Noise::None => 0,
            Noise::DiscreteLaplace { scale } => to_u128(scale.as_ratio() * k),
            Noise::DiscreteGaussian { sigma } => {
                // t^2 = 2 k sigma^2; take the integer square root, rounded up.
                let t2 = (sigma.as_ratio() * sigma.as_ratio() * k * BigUint::from(2u8)).ceil().to_integer();
                let mut t = t2.sqrt();
                if &t * &t < t2 {
                    t += 1u8;
                }
                t.to_u128().unwrap_or(u128::MAX)
            }
        }
    }

    /// Draws `len` independent values with prio's exact samplers.
    pub fn sample<R: rand::RngCore + rand::CryptoRng + ?Sized>(&self, len: usize, rng: &mut R) -> Vec<i128> {
        use prio::dp::distributions::{DiscreteGaussian, DiscreteLaplace};
        use rand::distributions::Distribution;
        let to_i128 = |x: num_bigint::BigInt| x.to_i128().unwrap_or(if x.sign() == num_bigint::Sign::Minus { i128::MIN } else { i128::MAX });
        match self {
            Noise::None => vec![0; len],
            Noise::DiscreteLaplace { scale } => {
                // The scale is positive by construction.
                let d = DiscreteLaplace::new(scale.as_ratio().clone()).expect("positive scale");
                (0..len).map(|_| to_i128(d.sample(&mut *rng))).collect()
            }
            Noise::DiscreteGaussian { sigma } => {
                let d = DiscreteGaussian::new(sigma.as_ratio().clone()).expect("positive sigma");
                (0..len).map(|_| to_i128(d.sample(&mut *rng))).collect()
            }
        }
    }
}

impl FromStr for DpMechanism {
    type Err = DpError;

    /// Parses `none`, `laplace:EPSILON` or `gaussian:RHO`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DpError::BadMechanism(s.to_string());
        let m = match s.trim().split(':').collect::<Vec<_>>().as_slice() {
            ["none"] => DpMechanism::None,
            ["laplace", eps] => DpMechanism::Laplace { epsilon: eps.parse()? },
            ["gaussian", rho] => DpMechanism::Gaussian { rho: rho.parse()? },
            _ => return Err(bad()),
        };
        m.check()?;
        Ok(m)
    }
}
