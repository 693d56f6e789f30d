//! What a task states about differential privacy: the mechanism and its
//! parameter, in exact rationals, and the neighbouring relation its
//! guarantee is stated for, with their canonical encodings.
//!
//! These are part of every task definition, so they live with the formats.
//! Everything that follows from them (noise calibration, sampling, the
//! budget accountant, the planner, intervals) is the `hetally-dp` crate's.

mod mechanism;
mod rational;
mod relation;
mod trustees;

use thiserror::Error;

pub use mechanism::{gaussian_eps_to_rho, zcdp_to_approx_dp, DpMechanism, MechanismSpec};
pub use rational::Rational;
pub use relation::{Relation, UnknownRelation};
pub use trustees::TrusteeNoise;

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
