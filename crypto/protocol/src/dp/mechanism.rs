//! The mechanism a task states, its text form and its canonical encoding.
//!
//! Text forms (what the CLI and the admin API accept):
//!
//! | text | meaning |
//! |---|---|
//! | `none` | no noise |
//! | `laplace:EPSILON` | pure epsilon-DP, discrete Laplace noise |
//! | `gaussian:RHO` | rho-zCDP, discrete Gaussian noise |
//! | `gaussian-eps:EPSILON:DELTA` | the largest rho (rounded down) whose zCDP guarantee implies (epsilon, delta)-DP by Bun and Steinke 2016, Proposition 1.3 |
//!
//! `gaussian-eps` is only a way of writing a rho: the mechanism stored and
//! encoded is `Gaussian { rho }`, so the task id does not depend on how the
//! operator typed it. [`MechanismSpec`] keeps the original form so a tool can
//! show the conversion.

use std::fmt;
use std::str::FromStr;

use super::{DpError, Rational};
use crate::codec::{CodecError, Reader, Writer};

/// Significant digits kept when a rho is derived from (epsilon, delta).
const DERIVED_RHO_DIGITS: u32 = 6;

/// The noise a task's releases carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpMechanism {
    /// No noise: the release is the exact sum.
    None,
    /// Pure epsilon-DP: discrete Laplace noise of scale `sensitivity_l1 / epsilon`
    /// on every value, independently.
    Laplace {
        /// Epsilon spent by one release.
        epsilon: Rational,
    },
    /// rho-zCDP: discrete Gaussian noise with variance
    /// `sensitivity_l2^2 / (2 rho)` on every value, independently.
    Gaussian {
        /// Rho spent by one release.
        rho: Rational,
    },
}

impl DpMechanism {
    /// Appends the canonical encoding.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            DpMechanism::None => {
                w.u8(0);
            }
            DpMechanism::Laplace { epsilon } => {
                w.u8(1);
                epsilon.encode(w);
            }
            DpMechanism::Gaussian { rho } => {
                w.u8(2);
                rho.encode(w);
            }
        }
    }

    /// Decodes the canonical encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let m = match r.u8("DP mechanism")? {
            0 => DpMechanism::None,
            1 => DpMechanism::Laplace {
                epsilon: Rational::decode(r)?,
            },
            2 => DpMechanism::Gaussian {
                rho: Rational::decode(r)?,
            },
            t => {
                return Err(CodecError::invalid(
                    "DP mechanism",
                    format!("unknown mechanism tag {t}"),
                ))
            }
        };
        m.check()
            .map_err(|e| CodecError::invalid("DP mechanism", e.to_string()))?;
        Ok(m)
    }

    /// Checks the parameters are positive and small enough to encode (the
    /// decoder caps numerator and denominator at 64 bytes each).
    pub fn check(&self) -> Result<(), DpError> {
        let positive = |what, v: &Rational| {
            if v.is_zero() {
                Err(DpError::OutOfRange {
                    what,
                    requirement: "greater than zero",
                    value: v.to_string(),
                })
            } else if !v.fits_encoding() {
                Err(DpError::OutOfRange {
                    what,
                    requirement: "a fraction whose numerator and denominator have at most 512 bits",
                    value: v.to_string(),
                })
            } else {
                Ok(())
            }
        };
        match self {
            DpMechanism::None => Ok(()),
            DpMechanism::Laplace { epsilon } => positive("epsilon", epsilon),
            DpMechanism::Gaussian { rho } => positive("rho", rho),
        }
    }

    /// The unit of the task's privacy budget for this mechanism: `epsilon`
    /// (pure DP, basic composition) or `rho` (zCDP, rho adds up); `None`
    /// for a mechanism without noise, which has no budget.
    pub fn budget_unit(&self) -> Option<&'static str> {
        match self {
            DpMechanism::None => None,
            DpMechanism::Laplace { .. } => Some("epsilon"),
            DpMechanism::Gaussian { .. } => Some("rho"),
        }
    }

    /// The (epsilon, delta)-DP epsilon one release implies at `delta`: the
    /// epsilon itself for Laplace (with delta = 0), the Bun–Steinke
    /// conversion for Gaussian, infinity for no noise. For display.
    pub fn approx_dp_epsilon(&self, delta: f64) -> f64 {
        match self {
            DpMechanism::None => f64::INFINITY,
            DpMechanism::Laplace { epsilon } => epsilon.to_f64(),
            DpMechanism::Gaussian { rho } => zcdp_to_approx_dp(rho, delta),
        }
    }

    /// One line for people: the mechanism and the guarantee of one release,
    /// with the (epsilon, delta) equivalent of a zCDP guarantee at `delta`.
    pub fn describe(&self, delta: f64) -> String {
        match self {
            DpMechanism::None => "none (no noise: releases are exact sums, no DP guarantee)".into(),
            DpMechanism::Laplace { epsilon } => {
                format!("{self} (pure {epsilon}-DP per release, discrete Laplace noise)")
            }
            DpMechanism::Gaussian { rho } => format!(
                "{self} ({rho}-zCDP per release, discrete Gaussian noise; implies ({:.4}, {delta:e})-DP)",
                zcdp_to_approx_dp(rho, delta)
            ),
        }
    }
}

impl FromStr for DpMechanism {
    type Err = DpError;

    /// Parses `none`, `laplace:EPSILON`, `gaussian:RHO` or
    /// `gaussian-eps:EPSILON:DELTA` (see the module docs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.parse::<MechanismSpec>()?.mechanism())
    }
}

/// A mechanism as it was written, so a tool can show how a
/// `gaussian-eps:EPSILON:DELTA` became a rho. [`MechanismSpec::mechanism`]
/// is what a task stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MechanismSpec {
    /// Written directly as `none`, `laplace:EPSILON` or `gaussian:RHO`.
    Direct(DpMechanism),
    /// Written as `gaussian-eps:EPSILON:DELTA`.
    GaussianEps {
        /// The (epsilon, delta)-DP target's epsilon.
        epsilon: Rational,
        /// The (epsilon, delta)-DP target's delta.
        delta: Rational,
        /// The rho derived by [`gaussian_eps_to_rho`].
        rho: Rational,
    },
}

impl MechanismSpec {
    /// The mechanism a task stores.
    pub fn mechanism(&self) -> DpMechanism {
        match self {
            MechanismSpec::Direct(m) => m.clone(),
            MechanismSpec::GaussianEps { rho, .. } => DpMechanism::Gaussian { rho: rho.clone() },
        }
    }

    /// How the text became the mechanism, for a CLI to print, e.g.
    /// `gaussian-eps:1:0.000001 → gaussian:0.0174689 (rho-zCDP, rounded down
    /// to 6 significant digits; implies (0.99999986, 0.000001)-DP by
    /// Bun–Steinke)`.
    pub fn explain(&self) -> String {
        match self {
            MechanismSpec::Direct(m) => m.to_string(),
            MechanismSpec::GaussianEps { delta, rho, .. } => {
                let eps = zcdp_to_approx_dp(rho, delta.to_f64());
                format!(
                    "{self} → gaussian:{rho} (rho-zCDP, rounded down to {DERIVED_RHO_DIGITS} \
                     significant digits; implies ({eps:.8}, {delta})-DP by Bun–Steinke)"
                )
            }
        }
    }
}

impl fmt::Display for MechanismSpec {
    /// The text form, as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MechanismSpec::Direct(m) => write!(f, "{m}"),
            MechanismSpec::GaussianEps { epsilon, delta, .. } => {
                write!(f, "gaussian-eps:{epsilon}:{delta}")
            }
        }
    }
}

impl FromStr for MechanismSpec {
    type Err = DpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DpError::BadMechanism(s.to_string());
        let parts: Vec<&str> = s.trim().split(':').map(str::trim).collect();
        let (name, args) = parts.split_first().ok_or_else(bad)?;
        let spec = match (name.to_ascii_lowercase().as_str(), args) {
            ("none", []) => MechanismSpec::Direct(DpMechanism::None),
            ("laplace", [epsilon]) => MechanismSpec::Direct(DpMechanism::Laplace {
                epsilon: epsilon.parse()?,
            }),
            ("gaussian", [rho]) => {
                MechanismSpec::Direct(DpMechanism::Gaussian { rho: rho.parse()? })
            }
            ("gaussian-eps", [epsilon, delta]) => {
                let epsilon: Rational = epsilon.parse()?;
                let delta: Rational = delta.parse()?;
                let rho = gaussian_eps_to_rho(&epsilon, &delta)?;
                MechanismSpec::GaussianEps {
                    epsilon,
                    delta,
                    rho,
                }
            }
            _ => return Err(bad()),
        };
        spec.mechanism().check()?;
        Ok(spec)
    }
}

/// The epsilon of the (epsilon, delta)-DP guarantee that rho-zCDP implies:
/// `rho + 2 sqrt(rho ln(1/delta))` (Bun and Steinke 2016, Proposition 1.3).
/// Floating point, for display only; `NaN` unless `0 < delta < 1`.
///
/// The conversion is the standard one and slightly conservative; tighter
/// ones exist (Canonne, Kamath and Steinke 2020 give an optimal one), so the true
/// epsilon of a Gaussian release is at most this.
pub fn zcdp_to_approx_dp(rho: &Rational, delta: f64) -> f64 {
    if !(delta > 0.0 && delta < 1.0) {
        return f64::NAN;
    }
    let rho = rho.to_f64();
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The largest rho whose zCDP guarantee implies (epsilon, delta)-DP by the
/// conversion of [`zcdp_to_approx_dp`], rounded **down** to a
/// 6-significant-digit decimal: `rho = (sqrt(L + epsilon) - sqrt(L))^2` with
/// `L = ln(1/delta)`.
///
/// Rounding down is the safe direction: a smaller rho means more noise and
/// a smaller epsilon. The formula is evaluated in the cancellation-free form
/// `epsilon^2 / (sqrt(L + epsilon) + sqrt(L))^2`, and the result is shrunk
/// by a relative 1e-9 before rounding so that floating-point error (a few
/// units in the last place) cannot push it above the true value.
pub fn gaussian_eps_to_rho(epsilon: &Rational, delta: &Rational) -> Result<Rational, DpError> {
    let out_of_range = |what, requirement, value: &Rational| DpError::OutOfRange {
        what,
        requirement,
        value: value.to_string(),
    };
    let eps = epsilon.to_f64();
    if epsilon.is_zero() || !eps.is_finite() {
        return Err(out_of_range(
            "epsilon",
            "a finite number greater than zero",
            epsilon,
        ));
    }
    let d = delta.to_f64();
    if !(d >= 1e-300 && *delta < Rational::new(1, 1)) {
        return Err(out_of_range(
            "delta",
            "between 1e-300 and 1 (exclusive)",
            delta,
        ));
    }
    let l = -d.ln();
    let root_sum = (l + eps).sqrt() + l.sqrt();
    let rho = eps * eps / (root_sum * root_sum);
    Rational::from_f64_decimal(rho * (1.0 - 1e-9), DERIVED_RHO_DIGITS, false).map_err(|_| {
        out_of_range(
            "epsilon",
            "large enough that rho is a positive number",
            epsilon,
        )
    })
}

impl fmt::Display for DpMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpMechanism::None => write!(f, "none"),
            DpMechanism::Laplace { epsilon } => write!(f, "laplace:{epsilon}"),
            DpMechanism::Gaussian { rho } => write!(f, "gaussian:{rho}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_encoding() {
        for m in [
            DpMechanism::None,
            DpMechanism::Laplace {
                epsilon: Rational::new(2, 5),
            },
            DpMechanism::Gaussian {
                rho: Rational::new(1, 8),
            },
        ] {
            let mut w = Writer::new();
            m.encode(&mut w);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(DpMechanism::decode(&mut r).unwrap(), m);
            r.finish("mechanism").unwrap();
        }
        let mut w = Writer::new();
        DpMechanism::Laplace {
            epsilon: Rational::zero(),
        }
        .encode(&mut w);
        assert!(DpMechanism::decode(&mut Reader::new(&w.finish())).is_err());
    }

    #[test]
    fn known_answer_encoding_is_stable() {
        // tag 1, then numerator 2 and denominator 5 as length-prefixed
        // big-endian bytes: the bytes a task id is hashed over.
        let mut w = Writer::new();
        DpMechanism::Laplace {
            epsilon: Rational::new(2, 5),
        }
        .encode(&mut w);
        let laplace = w.finish();
        let mut w = Writer::new();
        "laplace:0.4".parse::<DpMechanism>().unwrap().encode(&mut w);
        assert_eq!(w.finish(), laplace);
        assert_eq!(laplace, [1, 0, 0, 0, 1, 2, 0, 0, 0, 1, 5]);
    }

    #[test]
    fn unencodable_parameters_are_rejected_when_parsed() {
        let huge = format!("laplace:1/{}", "9".repeat(200));
        let err = huge.parse::<DpMechanism>().unwrap_err();
        assert!(err.to_string().contains("512 bits"), "{err}");
    }
}
