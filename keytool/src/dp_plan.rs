//! `dp-plan`: from a target error to the epsilon (or rho) a task needs, and
//! from an epsilon (or rho) to the error it gives.
//!
//! All the work is `hetally_dp`'s: [`plan`] searches the exact
//! noise distributions for the smallest parameter that meets the target,
//! [`error_for`] is the reverse, and both use the interval half-widths that
//! `decrypt` prints. This module checks the question, asks it and renders
//! the answer.

use std::io::Write;

use hetally_dp::{
    plan, DpError, DpMechanism, ErrorTarget, Guarantee, MechanismKind, Noise, PlanRequest, Rational,
};
use hetally_protocol::Measurement;
use serde::Serialize;

use crate::cli::{DpPlanArgs, MechanismArg};
use crate::error::KeytoolError;
use crate::interval::percent;
use crate::render::{noise_parameter, rational_for_people, significant};

/// The answer to a `dp-plan` question, in either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The measurement planned for.
    pub measurement: Measurement,
    /// Reports per batch, if given.
    pub reports: Option<u64>,
    /// The confidence level.
    pub confidence: f64,
    /// The target as given and as an absolute error (forward question only).
    pub target: Option<(ErrorTarget, u128)>,
    /// The mechanism: planned, or as given.
    pub mechanism: DpMechanism,
    /// The guarantee one release under it gives, for the relation asked
    /// about (with the sensitivity the calibration used).
    pub guarantee: Guarantee,
    /// The noise it adds to each value.
    pub noise: Noise,
    /// The interval half-width at `confidence`.
    pub half_width: u128,
    /// The largest value one released entry can take, if `reports` is known.
    pub full_scale: Option<u128>,
    /// The delta at which a Gaussian mechanism's (epsilon, delta) is shown.
    pub delta: f64,
}

impl Answer {
    /// The half-width as a percentage of the full scale.
    pub fn half_width_percent(&self) -> Option<f64> {
        self.full_scale
            .filter(|f| *f > 0)
            .map(|f| self.half_width as f64 / f as f64 * 100.0)
    }

    /// (epsilon, delta) of the (epsilon, delta)-DP guarantee one release
    /// gives: exact for Laplace (delta 0), Bun–Steinke for Gaussian.
    pub fn approx_dp(&self) -> (f64, f64) {
        match &self.mechanism {
            DpMechanism::Gaussian { .. } => {
                (self.mechanism.approx_dp_epsilon(self.delta), self.delta)
            }
            other => (other.approx_dp_epsilon(0.0), 0.0),
        }
    }

    /// The mechanism's parameter: ("epsilon", value) or ("rho", value).
    fn parameter(&self) -> Option<(&'static str, &Rational)> {
        match &self.mechanism {
            DpMechanism::Laplace { epsilon } => Some(("epsilon", epsilon)),
            DpMechanism::Gaussian { rho } => Some(("rho", rho)),
            _ => None,
        }
    }
}

/// Explains a planner error on one line, with what to do.
fn plan_error(e: DpError, args: &DpPlanArgs) -> KeytoolError {
    let hint = match (&e, &args.max_error) {
        (DpError::Infeasible(_), Some(_)) => "; allow a larger --max-error or a lower --confidence",
        (DpError::NoiseTooLarge { .. }, _) => "",
        (DpError::OutOfRange { .. }, _) => "; check --epsilon / --rho",
        _ => "",
    };
    KeytoolError::Plan(format!("dp-plan: {e}{hint}"))
}

/// Answers the question `args` asks.
pub fn answer(args: &DpPlanArgs) -> Result<Answer, KeytoolError> {
    let full_scale = args
        .reports
        .map(|r| u128::from(r).saturating_mul(u128::from(args.measurement.max_value())));
    let reverse = match (&args.epsilon, &args.rho) {
        (Some(epsilon), _) => Some((MechanismKind::Laplace, epsilon)),
        (_, Some(rho)) => Some((MechanismKind::Gaussian, rho)),
        _ => None,
    };
    if let (Some((kind, _)), Some(given)) = (reverse, args.mechanism) {
        if given.kind() != kind {
            let flag = if kind == MechanismKind::Laplace {
                "--epsilon"
            } else {
                "--rho"
            };
            return Err(KeytoolError::Plan(format!(
                "dp-plan: {flag} is a {kind} parameter but --mechanism says {}; drop --mechanism or pass --{}",
                given.kind(),
                given.kind().parameter_name()
            )));
        }
    }
    if let Some((kind, value)) = reverse {
        let mechanism = kind.with_parameter(value.clone());
        let guarantee = Guarantee::for_task(&args.measurement, &mechanism, Some(args.relation))
            .map_err(|e| plan_error(e, args))?;
        let noise = guarantee.noise.clone();
        let half_width = noise
            .interval_half_width(args.confidence)
            .map_err(|e| plan_error(e, args))?;
        return Ok(Answer {
            measurement: args.measurement,
            reports: args.reports,
            confidence: args.confidence,
            target: None,
            mechanism,
            guarantee,
            noise,
            half_width,
            full_scale,
            delta: args.delta,
        });
    }
    let Some(max_error) = args.max_error.clone() else {
        // clap requires --max-error without --epsilon or --rho.
        return Err(KeytoolError::Plan(
            "dp-plan: give --max-error (to find epsilon or rho) or --epsilon / --rho (to find the error)".into(),
        ));
    };
    if matches!(max_error, ErrorTarget::Percent(_)) && args.reports.is_none() {
        return Err(KeytoolError::Plan(format!(
            "dp-plan: --max-error {max_error} is a percentage of the largest possible value, which needs the number of reports per batch; pass --reports N, or give an absolute error such as --max-error 50"
        )));
    }
    let kind = args.mechanism.unwrap_or(MechanismArg::Laplace).kind();
    let request = PlanRequest {
        measurement: args.measurement,
        relation: args.relation,
        kind,
        max_error: max_error.clone(),
        reports: args.reports,
        confidence: args.confidence,
    };
    let planned = plan(&request).map_err(|e| plan_error(e, args))?;
    Ok(Answer {
        measurement: args.measurement,
        reports: args.reports,
        confidence: planned.confidence,
        target: Some((max_error, planned.max_error)),
        mechanism: planned.mechanism,
        guarantee: planned.guarantee,
        noise: planned.noise,
        half_width: planned.half_width,
        full_scale: planned.full_scale,
        delta: args.delta,
    })
}

/// The target in JSON.
#[derive(Debug, Serialize)]
struct TargetJson {
    max_error: String,
    absolute: u128,
}

/// The (epsilon, delta) in JSON.
#[derive(Debug, Serialize)]
struct ApproxDpJson {
    epsilon: f64,
    delta: f64,
}

/// `dp-plan --json` output.
#[derive(Debug, Serialize)]
struct AnswerJson {
    measurement: String,
    reports: Option<u64>,
    confidence: f64,
    target: Option<TargetJson>,
    mechanism: String,
    relation: &'static str,
    l1_sensitivity: String,
    l2_sensitivity_squared: String,
    guarantee: String,
    parameter: &'static str,
    value: String,
    distribution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sigma: Option<String>,
    std_dev: f64,
    half_width: u128,
    full_scale: Option<u128>,
    half_width_percent: Option<f64>,
    approx_dp: ApproxDpJson,
}

/// Writes the answer as one JSON object on one line.
pub fn json(a: &Answer, out: &mut dyn Write) -> std::io::Result<()> {
    let noise = noise_parameter(&a.noise);
    let (parameter, value) = a
        .parameter()
        .map_or(("none", String::new()), |(n, v)| (n, v.to_string()));
    let (epsilon, delta) = a.approx_dp();
    let doc = AnswerJson {
        measurement: a.measurement.to_string(),
        reports: a.reports,
        confidence: a.confidence,
        target: a.target.as_ref().map(|(t, abs)| TargetJson {
            max_error: t.to_string(),
            absolute: *abs,
        }),
        mechanism: a.mechanism.to_string(),
        relation: a.guarantee.relation.name(),
        l1_sensitivity: a.guarantee.l1.to_string(),
        l2_sensitivity_squared: a.guarantee.l2_squared.to_string(),
        guarantee: a.guarantee.describe(Some(a.delta)),
        parameter,
        value,
        distribution: noise.map_or("none", |n| n.0),
        scale: noise.filter(|n| n.1 == "scale").map(|n| n.2.to_string()),
        sigma: noise.filter(|n| n.1 == "sigma").map(|n| n.2.to_string()),
        std_dev: a.noise.std_dev(),
        half_width: a.half_width,
        full_scale: a.full_scale,
        half_width_percent: a.half_width_percent(),
        approx_dp: ApproxDpJson { epsilon, delta },
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

/// `±50 at 95% confidence (5% of 1000, the largest possible value)`.
fn error_text(a: &Answer, error: u128) -> String {
    let conf = percent(a.confidence);
    match a.full_scale {
        Some(full) if full > 0 => format!(
            "±{error} at {conf} confidence ({}% of {full}, the largest possible value)",
            significant(error as f64 / full as f64 * 100.0)
        ),
        _ => format!("±{error} at {conf} confidence"),
    }
}

/// Writes the answer for people.
pub fn text(a: &Answer, out: &mut dyn Write) -> std::io::Result<()> {
    match a.reports {
        Some(r) => writeln!(out, "Measurement  {}, {r} reports per batch", a.measurement)?,
        None => writeln!(out, "Measurement  {}", a.measurement)?,
    }
    if let Some((_, absolute)) = &a.target {
        writeln!(out, "Target       {}", error_text(a, *absolute))?;
    }
    writeln!(out, "Mechanism    {}", a.mechanism)?;
    writeln!(out, "Guarantee    {}", a.guarantee.describe(Some(a.delta)))?;
    if let Some((_, name, value)) = noise_parameter(&a.noise) {
        writeln!(
            out,
            "Noise        {}, {name} {}, standard deviation {}",
            match a.noise {
                Noise::DiscreteGaussian { .. } => "discrete Gaussian",
                _ => "discrete Laplace",
            },
            rational_for_people(value),
            significant(a.noise.std_dev())
        )?;
    }
    let conf = percent(a.confidence);
    writeln!(
        out,
        "Error        {}: each released value is within ±{} of its true sum with probability at least {conf}",
        error_text(a, a.half_width),
        a.half_width
    )?;
    if let Some((name, value)) = a.parameter().filter(|_| a.target.is_some()) {
        writeln!(
            out,
            "Use it       hetally-client task create ... --dp {} --relation {} (each release spends {name} {value} of the task's budget)",
            a.mechanism,
            a.guarantee.relation
        )?;
    }
    Ok(())
}

/// Runs `dp-plan`.
pub fn run(args: &DpPlanArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    let a = answer(args)?;
    if args.json {
        json(&a, out)
    } else {
        text(&a, out)
    }
    .map_err(KeytoolError::Output)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(line: &[&str]) -> DpPlanArgs {
        let cli = Cli::try_parse_from(["hetally-keytool", "dp-plan"].iter().chain(line)).unwrap();
        match cli.command {
            Command::DpPlan(a) => a,
            _ => panic!("not dp-plan"),
        }
    }

    #[test]
    fn plans_the_documented_example() {
        // docs/dp.md: histogram:11, 1000 reports, ±5% at 95% is laplace:0.119
        // under replace-one (L1 sensitivity 2).
        let a = answer(&args(&[
            "--measurement",
            "histogram:11",
            "--reports",
            "1000",
            "--max-error",
            "5%",
        ]))
        .unwrap();
        assert_eq!(a.mechanism.to_string(), "laplace:0.119");
        assert_eq!(a.guarantee.l1, Rational::from_integer(2));
        assert_eq!(a.target.as_ref().unwrap().1, 50);
        assert!(a.half_width <= 50);
        assert_eq!(a.full_scale, Some(1000));
        let (eps, delta) = a.approx_dp();
        assert!((eps - 0.119).abs() < 1e-12 && delta == 0.0);

        let g = answer(&args(&[
            "--measurement",
            "histogram:11",
            "--reports",
            "1000",
            "--max-error",
            "5%",
            "--mechanism",
            "gaussian",
        ]))
        .unwrap();
        assert_eq!(g.mechanism.to_string(), "gaussian:0.00151");
    }

    #[test]
    fn the_relation_sets_the_sensitivity() {
        // sum:8 under add-remove: L1 = 255 + 1 (the count is a value too).
        let a = answer(&args(&[
            "--measurement",
            "sum:8",
            "--epsilon",
            "1",
            "--relation",
            "add-remove",
        ]))
        .unwrap();
        assert_eq!(
            a.noise,
            Noise::DiscreteLaplace {
                scale: Rational::from_integer(256)
            }
        );
        assert_eq!(a.guarantee.relation.name(), "add-remove");
        let r = answer(&args(&["--measurement", "sum:8", "--epsilon", "1"])).unwrap();
        assert_eq!(
            r.noise,
            Noise::DiscreteLaplace {
                scale: Rational::from_integer(255)
            }
        );
    }

    #[test]
    fn reverse_gives_the_interval_decrypt_prints() {
        // count laplace:0.4 is ±7 at 95% (docs/dp.md).
        let a = answer(&args(&["--measurement", "count", "--epsilon", "0.4"])).unwrap();
        assert_eq!(a.half_width, 7);
        assert!(a.target.is_none());
        let g = answer(&args(&["--measurement", "count", "--rho", "0.01"])).unwrap();
        assert_eq!(g.half_width, 14);
        let (eps, delta) = g.approx_dp();
        assert_eq!(delta, 1e-6);
        assert!((eps - (0.01 + 2.0 * (0.01f64 * 1e6f64.ln()).sqrt())).abs() < 1e-9);
    }

    #[test]
    fn questions_that_cannot_be_answered_say_what_to_do() {
        let e = answer(&args(&["--measurement", "count", "--max-error", "5%"])).unwrap_err();
        assert!(e.to_string().contains("pass --reports N"), "{e}");
        let e = answer(&args(&[
            "--measurement",
            "count",
            "--rho",
            "0.1",
            "--mechanism",
            "laplace",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("drop --mechanism"), "{e}");
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        let e = answer(&args(&["--measurement", "sum:62", "--epsilon", "1e-40"])).unwrap_err();
        assert!(e.to_string().contains("use a larger epsilon"), "{e}");
    }

    #[test]
    fn an_exact_answer_is_a_large_epsilon() {
        // ±0 at 95% needs P(X = 0) = tanh(epsilon / 2) >= 0.95: epsilon >= 3.664.
        let a = answer(&args(&["--measurement", "count", "--max-error", "0"])).unwrap();
        assert_eq!(a.mechanism.to_string(), "laplace:3.67");
        assert_eq!(a.half_width, 0);
    }
}
