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
