//! The planner: from a target error to the smallest epsilon or rho, and
//! from a mechanism to its error.
//!
//! "Error" is the half-width of the symmetric confidence interval of one
//! released value: with `--max-error 50 --confidence 95%`, each noisy value
//! lies within ±50 of the true sum with probability at least 95%. It is a
//! property of the noise alone, the same for every value of the release and
//! independent of the data.
//!
//! A percentage (`5%`) is a percentage of the **largest value one released
//! entry can take**: `reports × (2^BITS - 1)`, which is simply the number of
//! reports for `count` and `histogram`. So `histogram:11 --reports 1000
//! --max-error 5%` asks for ±50 on every bucket. That is honest about what
//! DP noise does (its size does not depend on the data), but note that
//! relative to a small bucket (say 30 reports) ±50 is large: ask for an
//! absolute error if small values matter. The absolute target is rounded
//! down, so the promise is kept.
//!
//! The search is over the exact discrete distributions (the same
//! [`Noise::interval_half_width`] the collector's tools print), on the grid
//! of decimals with three significant digits: the answer is the smallest
//! such decimal whose interval fits, so it is within 1% of the exact
//! threshold and reads cleanly (`laplace:0.0615`). The half-width only
//! shrinks as epsilon or rho grows, so a binary search on the grid is exact.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::ToPrimitive;

use super::noise::check_confidence;
use super::{DpError, DpMechanism, Guarantee, Noise, Rational, Relation};
use hetally_protocol::Measurement;

/// Mantissas per decade on the planner's grid: `100..=999`.
const MANTISSAS: i64 = 900;
/// The grid spans `1.00e-80` to `9.99e82`, far beyond any usable epsilon
/// or rho (noise wider than 2^100 is refused well before the low end).
const MIN_EXPONENT: i64 = -82;
const MAX_EXPONENT: i64 = 80;

/// Which family of noise to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MechanismKind {
    /// Discrete Laplace, pure epsilon-DP.
    Laplace,
    /// Discrete Gaussian, rho-zCDP.
    Gaussian,
}

impl MechanismKind {
    /// The mechanism of this kind with parameter `value` (epsilon or rho).
    pub fn with_parameter(self, value: Rational) -> DpMechanism {
        match self {
            MechanismKind::Laplace => DpMechanism::Laplace { epsilon: value },
            MechanismKind::Gaussian => DpMechanism::Gaussian { rho: value },
        }
    }

    /// `epsilon` or `rho`.
    pub fn parameter_name(self) -> &'static str {
        match self {
            MechanismKind::Laplace => "epsilon",
            MechanismKind::Gaussian => "rho",
        }
    }
}

impl fmt::Display for MechanismKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MechanismKind::Laplace => write!(f, "laplace"),
            MechanismKind::Gaussian => write!(f, "gaussian"),
        }
    }
}

impl FromStr for MechanismKind {
    type Err = DpError;

    /// `laplace` or `gaussian`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "laplace" => Ok(MechanismKind::Laplace),
            "gaussian" => Ok(MechanismKind::Gaussian),
            _ => Err(DpError::OutOfRange {
                what: "mechanism kind",
                requirement: "laplace or gaussian",
                value: s.to_string(),
            }),
        }
    }
}

/// A target error for one released value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorTarget {
    /// At most this far from the true value (written `50`).
    Absolute(u128),
    /// At most this fraction of the largest value one released entry can
    /// take (written `5%`, stored as 1/20); see the module docs.
    Percent(Rational),
}

impl ErrorTarget {
    /// The absolute error this target allows for `measurement` over
    /// `reports` reports, rounded down. A percentage needs `reports`.
    pub fn absolute(
        &self,
        measurement: &Measurement,
        reports: Option<u64>,
    ) -> Result<u128, DpError> {
        match self {
            ErrorTarget::Absolute(e) => Ok(*e),
            ErrorTarget::Percent(fraction) => {
                let reports = reports.ok_or_else(|| {
                    DpError::Infeasible(
                        "a percentage error is a percentage of the largest possible \
                         aggregate, which needs the number of reports: give it, or give \
                         an absolute error"
                            .into(),
                    )
                })?;
                let full = full_scale(measurement, reports);
                let error = fraction.mul(&Rational::from_integer(full));
                Ok(error
                    .as_ratio()
                    .floor()
                    .to_integer()
                    .to_u128()
                    .unwrap_or(u128::MAX))
            }
        }
    }
}

impl fmt::Display for ErrorTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorTarget::Absolute(e) => write!(f, "{e}"),
            ErrorTarget::Percent(fraction) => {
                write!(f, "{}%", fraction.mul(&Rational::from_integer(100)))
            }
        }
    }
}

impl FromStr for ErrorTarget {
    type Err = DpError;

    /// `50` (absolute, a decimal is rounded down) or `5%` / `0.5%`
    /// (percentage, more than 0 and at most 100).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let p: Rational = percent.parse()?;
            if p.is_zero() || p > Rational::from_integer(100) {
                return Err(DpError::OutOfRange {
                    what: "error percentage",
                    requirement: "more than 0% and at most 100%",
                    value: s.to_string(),
                });
            }
            let fraction = p
                .checked_div(&Rational::from_integer(100))
                .ok_or_else(|| DpError::BadNumber(s.to_string()))?;
            return Ok(ErrorTarget::Percent(fraction));
        }
        let e: Rational = text.parse()?;
        let e = e.as_ratio().floor().to_integer();
        e.to_u128()
            .map(ErrorTarget::Absolute)
            .ok_or_else(|| DpError::BadNumber(s.to_string()))
    }
}

/// Parses a confidence level: `95%` or `0.95`; strictly between 0 and 1.
pub fn parse_confidence(s: &str) -> Result<f64, DpError> {
    let text = s.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (text, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| DpError::BadNumber(s.to_string()))?;
    let confidence = value / scale;
    check_confidence(confidence)?;
    Ok(confidence)
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// The task's measurement type.
    pub measurement: Measurement,
    /// The neighbouring relation the task will declare: the sensitivity,
    /// and so the noise, follows from it.
    pub relation: Relation,
    /// Laplace (epsilon) or Gaussian (rho).
    pub kind: MechanismKind,
    /// The error allowed on each released value.
    pub max_error: ErrorTarget,
    /// Reports expected per batch; needed for a percentage error.
    pub reports: Option<u64>,
    /// Probability that a released value is within the error.
    pub confidence: f64,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The smallest mechanism of the requested kind that meets the target.
    pub mechanism: DpMechanism,
    /// The noise it adds to each value.
    pub noise: Noise,
    /// The guarantee one release under it gives (relation, sensitivity).
    pub guarantee: Guarantee,
    /// The target, as an absolute error.
    pub max_error: u128,
    /// The half-width the mechanism achieves at `confidence`, `<= max_error`.
    pub half_width: u128,
    /// The confidence level.
    pub confidence: f64,
    /// The largest value one released entry can take, if `reports` was given.
    pub full_scale: Option<u128>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {}; each released value is within ±{} of the truth with probability {}% \
             (target ±{}",
            self.mechanism,
            self.guarantee,
            self.noise,
            self.half_width,
            self.confidence * 100.0,
            self.max_error,
        )?;
        if let Some(full) = self.full_scale {
            let percent = self.max_error as f64 / full as f64 * 100.0;
            write!(
                f,
                ", {percent:.3}% of the largest possible aggregate {full}"
            )?;
        }
        write!(f, ")")
    }
}

/// The largest value one released entry can take: `reports × max_value`.
fn full_scale(measurement: &Measurement, reports: u64) -> u128 {
    u128::from(reports).saturating_mul(u128::from(measurement.max_value()))
}

/// The smallest epsilon (Laplace) or rho (Gaussian) on the grid of
/// three-significant-digit decimals whose noise interval at the requested
/// confidence is within the requested error. See the module docs.
pub fn plan(request: &PlanRequest) -> Result<Plan, DpError> {
    check_confidence(request.confidence)?;
    let max_error = request
        .max_error
        .absolute(&request.measurement, request.reports)?;
    let confidence = request.confidence;
    let evaluate = |index: i64| -> Option<(DpMechanism, Noise, u128)> {
        let mechanism = request.kind.with_parameter(grid_value(index));
        // Noise too wide for the supported range counts as not meeting the
        // target: the parameter is too small.
        let noise =
            Noise::for_task(&request.measurement, &mechanism, Some(request.relation)).ok()?;
        let width = noise.dist().half_width(confidence);
        (width <= max_error).then_some((mechanism, noise, width))
    };
    let (lowest, highest) = (grid_index(MIN_EXPONENT, 100), grid_index(MAX_EXPONENT, 999));
    if evaluate(highest).is_none() {
        return Err(DpError::Infeasible(format!(
            "no {} up to {} gives ±{max_error} at {}% confidence",
            request.kind.parameter_name(),
            grid_value(highest),
            confidence * 100.0
        )));
    }
    // Binary search for the first grid point that meets the target.
    // Invariant: `hi` meets it; `lo` does not (or is below the grid).
    let (mut lo, mut hi) = (lowest - 1, highest);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if evaluate(mid).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let (mechanism, noise, half_width) = evaluate(hi).ok_or_else(|| {
        DpError::Infeasible("the error did not shrink monotonically as the parameter grew".into())
    })?;
    let guarantee = Guarantee::for_task(&request.measurement, &mechanism, Some(request.relation))?;
    Ok(Plan {
        mechanism,
        noise,
        guarantee,
        max_error,
        half_width,
        confidence,
        full_scale: request.reports.map(|r| full_scale(&request.measurement, r)),
    })
}

/// The reverse of [`plan`]: the half-width of the confidence interval of
/// each value released under `mechanism` by a task of `relation` (`None`:
/// declared none), 0 for no noise.
pub fn error_for(
    measurement: &Measurement,
    mechanism: &DpMechanism,
    relation: Option<Relation>,
    confidence: f64,
) -> Result<u128, DpError> {
    Noise::for_task(measurement, mechanism, relation)?.interval_half_width(confidence)
}

/// The grid index of `mantissa × 10^(exponent - 2)`, `mantissa` in
/// `100..=999`; index order is value order.
fn grid_index(exponent: i64, mantissa: i64) -> i64 {
    exponent * MANTISSAS + (mantissa - 100)
}

/// The value at a grid index: `mantissa / 100 × 10^exponent`.
fn grid_value(index: i64) -> Rational {
    let exponent = index.div_euclid(MANTISSAS) - 2;
    // rem_euclid is in 0..900, so the mantissa is in 100..=999.
    let mantissa = BigUint::from((100 + index.rem_euclid(MANTISSAS)) as u64);
    let ten = BigUint::from(10u8);
    let power = ten.pow(exponent.unsigned_abs() as u32);
    if exponent >= 0 {
        Rational::from_ratio(Ratio::from_integer(mantissa * power))
    } else {
        Rational::from_ratio(Ratio::new(mantissa, power))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_ordered_decimals() {
        assert_eq!(grid_value(grid_index(0, 100)).to_string(), "1");
        assert_eq!(grid_value(grid_index(0, 523)).to_string(), "5.23");
        assert_eq!(grid_value(grid_index(-2, 615)).to_string(), "0.0615");
        assert_eq!(grid_value(grid_index(3, 999)).to_string(), "9990");
        for i in [-5000i64, -1, 0, 1, 899, 900, 4000] {
            assert!(grid_value(i) < grid_value(i + 1), "{i}");
        }
    }

    #[test]
    fn error_targets_parse() {
        assert_eq!(
            "50".parse::<ErrorTarget>().unwrap(),
            ErrorTarget::Absolute(50)
        );
        assert_eq!(
            "50.9".parse::<ErrorTarget>().unwrap(),
            ErrorTarget::Absolute(50)
        );
        assert_eq!(
            "5%".parse::<ErrorTarget>().unwrap(),
            ErrorTarget::Percent(Rational::new(1, 20))
        );
        assert_eq!("0.5%".parse::<ErrorTarget>().unwrap().to_string(), "0.5%");
        for bad in ["", "%", "0%", "101%", "-5", "five", "5%%"] {
            assert!(bad.parse::<ErrorTarget>().is_err(), "{bad}");
        }
        let hist: Measurement = "histogram:11".parse().unwrap();
        let five = ErrorTarget::Percent(Rational::new(1, 20));
        assert_eq!(five.absolute(&hist, Some(1000)).unwrap(), 50);
        assert_eq!(five.absolute(&hist, Some(999)).unwrap(), 49);
        let sum: Measurement = "sum:8".parse().unwrap();
        assert_eq!(five.absolute(&sum, Some(100)).unwrap(), 1275);
        let err = five.absolute(&hist, None).unwrap_err();
        assert!(err.to_string().contains("number of reports"), "{err}");
    }

    #[test]
    fn confidences_parse() {
        let close = |s: &str, v: f64| (parse_confidence(s).unwrap() - v).abs() < 1e-12;
        assert!(close("95%", 0.95));
        assert!(close("0.99", 0.99));
        assert!(close(" 99.9 % ", 0.999));
        for bad in ["", "100%", "0", "1", "95", "abc", "-5%"] {
            assert!(parse_confidence(bad).is_err(), "{bad}");
        }
    }
}
