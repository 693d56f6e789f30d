//! Differential privacy: exact noise, distribution facts, budget accounting
//! and the planner, for the mechanisms a task states
//! ([`hetally_protocol::dp`]).
//!
//! A released aggregate is the element-wise sum of a batch's reports plus
//! independent integer noise on every value. Every task declares its
//! neighbouring relation ([`Relation`]): **replace-one** (same-size batches
//! differing in one report's value; the report count is public) or
//! **add/remove** (one report more or less; the report count is released
//! with the same noise). The sensitivities follow from the relation
//! ([`l1_sensitivity`], [`l2_sensitivity_squared`]), and [`Guarantee`]
//! states what one release gives, including for tasks created before
//! relations were declared.
//!
//! * [`DpMechanism`] (from `hetally-protocol`) is what a task states (`none`, `laplace:EPSILON`,
//!   `gaussian:RHO`, or `gaussian-eps:EPSILON:DELTA` converted to rho); its
//!   binary encoding is part of the task definition.
//! * [`Noise`] is the distribution one release adds to each value, derived
//!   from the measurement and the mechanism, sampled exactly (feature
//!   `sampler`) with prio's discrete Laplace and discrete Gaussian samplers (Canonne, Kamath and
//!   Steinke 2020, <https://arxiv.org/abs/2004.00010>): integer and rational
//!   arithmetic only, never a rounded floating-point Laplace (Mironov 2012).
//! * [`Noise`] also answers questions about itself: variance, confidence
//!   intervals (from the exact probability mass function) and sound tail
//!   bounds, used to size Paillier slots and TFHE capacity.
//! * [`Guarantee`] is the guarantee that holds: relation, sensitivity,
//!   parameter, and what a release costs.
//! * [`try_spend`] is the budget accountant: epsilon adds up under basic
//!   composition, rho under zCDP composition, in exact rationals.
//! * [`plan`] turns a target error into the smallest epsilon or rho.
//!
//! docs/dp.md explains the choices and cites the papers.

#![forbid(unsafe_code)]

mod budget;
mod distribution;
mod guarantee;
mod noise;
mod plan;
// Test support, public so that tests in other crates (noise through Paillier
// encrypt-add-decrypt, TFHE, Prio3) can run the same goodness-of-fit check;
// hidden from the docs because it is not part of the service's API.
#[doc(hidden)]
pub mod stats;

pub use budget::{releases_left, try_spend};
pub use guarantee::Guarantee;
pub use hetally_protocol::dp::{
    gaussian_eps_to_rho, zcdp_to_approx_dp, DpError, DpMechanism, MechanismSpec, Rational,
    Relation, TrusteeNoise, UnknownRelation,
};
pub use noise::{l1_sensitivity, l2_sensitivity_squared, Noise, MAX_NOISE_SCALE_BITS};
pub use plan::{error_for, parse_confidence, plan, ErrorTarget, MechanismKind, Plan, PlanRequest};
