//! The guarantee one release of a task gives, worked out from what the task
//! states: its measurement, its mechanism and its neighbouring relation.
//!
//! For a task that declares its relation the guarantee is the stated one:
//! the noise is calibrated to that relation's sensitivity
//! ([`crate::l1_sensitivity`]), so `laplace:EPSILON` gives EPSILON-DP and
//! `gaussian:RHO` gives RHO-zCDP for those neighbours.
//!
//! A task created before relations were declared (`relation` `None`) was
//! calibrated for add/remove's values-only sensitivity, but its report
//! counts were published exactly, which add/remove cannot allow. The
//! relation that holds for it is replace-one, and the parameter that holds
//! is the stated one scaled by how much larger replace-one's sensitivity
//! is than the one the noise was calibrated for:
//!
//! * Laplace: the noise scale is `L1_cal / epsilon`, so the privacy loss
//!   of a replace-one change is `L1_rep / scale = epsilon L1_rep / L1_cal`.
//! * Gaussian: `sigma^2 >= L2^2_cal / (2 rho)`, so replace-one neighbours
//!   are `rho L2^2_rep / L2^2_cal`-zCDP (Bun and Steinke 2016, Proposition
//!   1.6, with Canonne, Kamath and Steinke 2020 for the discrete Gaussian).
//!
//! That factor is 2 for histograms (one report moving between buckets
//! changes two of them) and 1 for every other type. The budget accountant
//! charges the parameter that holds ([`Guarantee::release_cost`]).

use std::fmt;

use hetally_protocol::Measurement;

use super::noise::{l1_sensitivity, l2_sensitivity_squared};
use super::{zcdp_to_approx_dp, DpError, DpMechanism, Noise, Rational, Relation, TrusteeNoise};

/// See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarantee {
    /// The relation the guarantee is for: the task's own, or replace-one
    /// for a task that declares none.
    pub relation: Relation,
    /// Whether the task declares `relation` (false for tasks created
    /// before relations were declared).
    pub declared: bool,
    /// The mechanism as the task states it.
    pub stated: DpMechanism,
    /// The mechanism with the parameter that holds for `relation`: equal
    /// to `stated` when the relation is declared.
    pub holds: DpMechanism,
    /// The L1 sensitivity under `relation` (Laplace's).
    pub l1: Rational,
    /// The squared L2 sensitivity under `relation` (the Gaussian's).
    pub l2_squared: Rational,
    /// The noise on each released value (and, under add/remove, on the
    /// report count).
    pub noise: Noise,
    /// Set when trustees draw the noise: the guarantee holds if at least
    /// `honest` of the `contributors` whose shares a release carries are
    /// honest ([`TrusteeNoise::assumption`]).
    pub trustees: Option<TrusteeNoise>,
}

impl Guarantee {
    /// The guarantee of a task of `measurement` stating `mechanism` and
    /// `relation` (`None`: a task created before relations were declared).
    pub fn for_task(
        measurement: &Measurement,
        mechanism: &DpMechanism,
        relation: Option<Relation>,
    ) -> Result<Guarantee, DpError> {
        Self::for_release(measurement, mechanism, relation, None)
    }

    /// The guarantee of a task that may have its noise drawn by trustees
    /// (`trustees`; see [`Guarantee::trustees`]).
    pub fn for_release(
        measurement: &Measurement,
        mechanism: &DpMechanism,
        relation: Option<Relation>,
        trustees: Option<&TrusteeNoise>,
    ) -> Result<Guarantee, DpError> {
        let noise = Noise::for_release(measurement, mechanism, relation, trustees)?;
        let effective = relation.unwrap_or(Relation::ReplaceOne);
        let l1 = l1_sensitivity(measurement, Some(effective));
        let l2_squared = l2_sensitivity_squared(measurement, Some(effective));
        let holds = match (relation, mechanism) {
            (Some(_), _) | (None, DpMechanism::None) => mechanism.clone(),
            (None, DpMechanism::Laplace { epsilon }) => {
                let factor = ratio(&l1, &l1_sensitivity(measurement, None))?;
                DpMechanism::Laplace {
                    epsilon: epsilon.mul(&factor),
                }
            }
            (None, DpMechanism::Gaussian { rho }) => {
                let factor = ratio(&l2_squared, &l2_sensitivity_squared(measurement, None))?;
                DpMechanism::Gaussian {
                    rho: rho.mul(&factor),
                }
            }
        };
        let holds = match (&holds, &noise) {
            (DpMechanism::Gaussian { rho }, Noise::SummedGaussian { share_sigma, .. }) => {
                DpMechanism::Gaussian {
                    rho: rho.add(&summation_cost(
                        share_sigma,
                        trustees.map_or(1, |t| t.honest),
                        measurement.len(),
                        &l1,
                    )),
                }
            }
            _ => holds,
        };
        Ok(Guarantee {
            relation: effective,
            declared: relation.is_some(),
            stated: mechanism.clone(),
            holds,
            l1,
            l2_squared,
            noise,
            trustees: trustees.copied(),
        })
    }

    /// What one release costs in the task's budget unit: the parameter
    /// that holds (epsilon or rho), `None` without noise.
    pub fn release_cost(&self) -> Option<Rational> {
        match &self.holds {
            DpMechanism::None => None,
            DpMechanism::Laplace { epsilon } => Some(epsilon.clone()),
            DpMechanism::Gaussian { rho } => Some(rho.clone()),
        }
    }

    /// True if the guarantee that holds is weaker than the stated one (a
    /// task created before relations were declared, whose sensitivity
    /// under replace-one is larger than its calibration assumed).
    pub fn weaker_than_stated(&self) -> bool {
        self.holds != self.stated
    }

    /// The guarantee in a short phrase: `2-DP (replace-one)`,
    /// `0.25-zCDP (add-remove)`, `none`.
    pub fn short(&self) -> String {
        match &self.holds {
            DpMechanism::None => "none (no noise, no DP guarantee)".into(),
            DpMechanism::Laplace { epsilon } => format!("{epsilon}-DP ({})", self.relation),
            DpMechanism::Gaussian { rho } => format!("{rho}-zCDP ({})", self.relation),
        }
    }

    /// The guarantee in full, for people: what holds, for which
    /// neighbours, with which mechanism and sensitivity; with the
    /// (epsilon, delta) equivalent of a zCDP guarantee at `delta` when
    /// given; and, for a task whose guarantee is weaker than it states,
    /// why.
    pub fn describe(&self, delta: Option<f64>) -> String {
        let mut out = match &self.holds {
            DpMechanism::None => {
                return "none: no noise is added, releases are exact sums and give no DP \
                        guarantee"
                    .into()
            }
            DpMechanism::Laplace { epsilon } => format!(
                "pure {epsilon}-DP per release for {} neighbours: discrete Laplace noise of scale \
                 {} on each value, L1 sensitivity {}",
                self.relation,
                self.noise_parameter(),
                self.l1
            ),
            DpMechanism::Gaussian { rho } => {
                let mut s = format!("{rho}-zCDP per release");
                if let Some(delta) = delta {
                    s.push_str(&format!(
                        " (implies ({:.4}, {delta:e})-DP)",
                        zcdp_to_approx_dp(rho, delta)
                    ));
                }
                match &self.trustees {
                    None => s.push_str(&format!(
                        " for {} neighbours: discrete Gaussian noise of sigma {} on each value, \
                         squared L2 sensitivity {}",
                        self.relation,
                        self.noise_parameter(),
                        self.l2_squared
                    )),
                    Some(t) => s.push_str(&format!(
                        " for {} neighbours, assuming {}: each of them adds a discrete Gaussian \
                         share of sigma {} to each value (distributed discrete Gaussian), \
                         squared L2 sensitivity {}",
                        self.relation,
                        t.assumption(),
                        self.noise_parameter(),
                        self.l2_squared
                    )),
                }
                s
            }
        };
        if self.relation == Relation::AddRemove {
            out.push_str("; the report count is released with the same noise and covered by it");
        }
        if !self.declared && self.weaker_than_stated() {
            out.push_str(&format!(
                "; the task predates declared relations: it states {} and was calibrated for a \
                 histogram sensitivity of 1, but its report counts are public, so replace-one \
                 holds, where a report moving between buckets changes two",
                self.stated
            ));
        } else if !self.declared {
            out.push_str(
                "; the task predates declared relations: its report counts are public, so \
                 replace-one is the relation that holds, at the stated parameter",
            );
        }
        out
    }

    /// The noise's scale (Laplace) or sigma (Gaussian), as text.
    fn noise_parameter(&self) -> String {
        match &self.noise {
            Noise::None => "0".into(),
            Noise::DiscreteLaplace { scale } => scale.to_string(),
            // Exact when it is a decimal, else about ten digits.
            Noise::DiscreteGaussian { sigma: s } | Noise::SummedGaussian { share_sigma: s, .. } => {
                match s.to_string() {
                    exact if !exact.contains('/') => exact,
                    _ => format!("{:.6}", s.to_f64()),
                }
            }
        }
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// What trustee noise costs beyond the task's rho: the sum of `honest`
/// discrete Gaussians of parameter `share_sigma` is not itself a discrete
/// Gaussian. Kairouz, Liu and Steinke (ICML 2021, "The distributed
/// discrete Gaussian mechanism", Theorem 1) bound it: for n = `honest`
/// shares per value, adding the sum is `eps^2 / 2`-zCDP with
/// `eps^2 = L2^2 / (n share_sigma^2) + tau d / 2`, where
/// `tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 share_sigma^2 k / (k + 1))` and
/// `d` is the number of values. The first term's half is at most the
/// task's rho (`share_sigma^2 >= L2^2 / (2 rho n)`), so the extra cost is
/// at most `tau d / 4`; this charges `tau max(d, L1) / 4`, never less.
///
/// Bounded soundly in rationals: every exponent is at least
/// `pi^2 share_sigma^2` (k / (k + 1) >= 1/2), so
/// `tau <= 10 (n - 1) 2^-b` with `b = floor(pi_low^2 share_sigma^2 /
/// ln2_up)`, and the result is rounded up to a multiple of 10^-12. It is
/// zero for one share (a single discrete Gaussian, exactly the task's
/// rho); from a share sigma of 4 on it is 10^-12. More honest
/// contributors than assumed only add independent noise, which is
/// post-processing, so the bound at `honest` covers them.
fn summation_cost(share_sigma: &Rational, honest: u8, len: usize, l1: &Rational) -> Rational {
    if honest <= 1 {
        return Rational::zero();
    }
    // pi^2 > 9.8696 (pi^2 = 9.86960440...), ln 2 < 0.6931471805599454.
    let pi_squared_low = Rational::new(98_696, 10_000);
    let ln2_up = Rational::new(6_931_471_805_599_454, 10_000_000_000_000_000);
    let exponent = pi_squared_low
        .mul(share_sigma)
        .mul(share_sigma)
        .checked_div(&ln2_up)
        .map(|e| {
            // floor(e) = ceil(e) - 1 unless e is an integer.
            let c = e.ceil_integer();
            if e.is_integer() {
                c
            } else {
                c - 1u8
            }
        })
        .unwrap_or_default();
    let d = Rational::from_integer(len as u128);
    let dim = if *l1 > d { l1.clone() } else { d };
    // extra <= 10 (n - 1) dim / 4 * 2^-b, rounded up to k / 10^12.
    let scale = num_bigint::BigUint::from(10u8).pow(12);
    let numerator = dim
        .mul(&Rational::from_integer(10 * u128::from(honest - 1)))
        .mul(&Rational::from_biguint(scale.clone()));
    let bound = numerator
        .checked_div(&Rational::from_integer(4))
        .and_then(|x| {
            // Divide by 2^b, capping b where the result is below 1 anyway.
            let b = u32::try_from(exponent).unwrap_or(u32::MAX).min(4096);
            x.checked_div(&Rational::from_biguint(num_bigint::BigUint::from(1u8) << b))
        })
        .unwrap_or_else(Rational::zero);
    Rational::from_biguint(bound.ceil_integer().max(num_bigint::BigUint::from(1u8)))
        .checked_div(&Rational::from_biguint(scale))
        .unwrap_or_else(Rational::zero)
}

/// `a / b` for sensitivities, which are never zero.
fn ratio(a: &Rational, b: &Rational) -> Result<Rational, DpError> {
    a.checked_div(b)
        .ok_or_else(|| DpError::Infeasible("a measurement with sensitivity zero".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Measurement {
        s.parse().unwrap()
    }

    fn mech(s: &str) -> DpMechanism {
        s.parse().unwrap()
    }

    #[test]
    fn declared_relations_hold_as_stated() {
        for relation in [Relation::ReplaceOne, Relation::AddRemove] {
            for measurement in ["count", "sum:8", "histogram:5", "sumvec:3:4"] {
                for mechanism in ["laplace:1", "gaussian:1/4", "none"] {
                    let g = Guarantee::for_task(&m(measurement), &mech(mechanism), Some(relation))
                        .unwrap();
                    assert_eq!(g.holds, mech(mechanism));
                    assert!(g.declared && !g.weaker_than_stated());
                    assert_eq!(g.relation, relation);
                }
            }
        }
        let g = Guarantee::for_task(
            &m("histogram:5"),
            &mech("laplace:1"),
            Some(Relation::ReplaceOne),
        )
        .unwrap();
        assert_eq!(g.short(), "1-DP (replace-one)");
        let text = g.describe(None);
        assert!(text.contains("pure 1-DP"), "{text}");
        assert!(text.contains("scale 2"), "{text}");
        assert!(text.contains("L1 sensitivity 2"), "{text}");
        assert_eq!(g.release_cost(), Some(Rational::from_integer(1)));
    }

    #[test]
    fn legacy_histograms_hold_at_twice_their_stated_parameter() {
        let g = Guarantee::for_task(&m("histogram:5"), &mech("laplace:1"), None).unwrap();
        assert_eq!(g.relation, Relation::ReplaceOne);
        assert_eq!(g.holds, mech("laplace:2"));
        assert_eq!(g.release_cost(), Some(Rational::from_integer(2)));
        assert!(g.weaker_than_stated());
        assert_eq!(
            g.noise,
            Noise::DiscreteLaplace {
                scale: Rational::from_integer(1)
            }
        );
        let text = g.describe(None);
        assert!(text.contains("pure 2-DP"), "{text}");
        assert!(text.contains("predates"), "{text}");

        let g = Guarantee::for_task(&m("histogram:5"), &mech("gaussian:1/8"), None).unwrap();
        assert_eq!(g.holds, mech("gaussian:1/4"));
        let text = g.describe(Some(1e-6));
        assert!(text.contains("0.25-zCDP per release (implies"), "{text}");
        assert!(text.contains("sigma 2 on each value"), "{text}");

        // Other types have the same sensitivity under both relations.
        for measurement in ["count", "sum:8", "sumvec:3:4"] {
            let g = Guarantee::for_task(&m(measurement), &mech("laplace:1/2"), None).unwrap();
            assert_eq!(g.holds, mech("laplace:1/2"), "{measurement}");
            assert!(!g.weaker_than_stated());
        }
        let g = Guarantee::for_task(&m("count"), &mech("none"), None).unwrap();
        assert_eq!(g.release_cost(), None);
        assert!(g.describe(None).starts_with("none"));
    }

    #[test]
    fn trustee_noise_charges_the_summation_term() {
        let t = |h| TrusteeNoise {
            contributors: 3,
            honest: h,
        };
        let rep = Some(Relation::ReplaceOne);
        let hist = m("histogram:16");
        // One honest share is one discrete Gaussian: exactly the stated rho.
        let g = Guarantee::for_release(&hist, &mech("gaussian:1/2"), rep, Some(&t(1))).unwrap();
        assert_eq!(g.release_cost(), Some(Rational::new(1, 2)));
        assert!(g.describe(None).contains("at least 1 of the 3 trustees"));
        // Two honest shares of sigma 1: tau <= 10 * 2^-14 (b = floor(9.8696
        // / ln 2) = 14), charged tau * max(16, 2) / 4 = 40 / 16384.
        let g = Guarantee::for_release(&hist, &mech("gaussian:1/2"), rep, Some(&t(2))).unwrap();
        assert_eq!(
            g.release_cost(),
            Some(Rational::new(1, 2).add(&Rational::new(2_441_406_250, 1_000_000_000_000)))
        );
        // Wide shares: the bound underflows to the 10^-12 floor.
        let g = Guarantee::for_release(&hist, &mech("gaussian:1/1000"), rep, Some(&t(3))).unwrap();
        assert_eq!(
            g.release_cost(),
            Some(Rational::new(1, 1000).add(&Rational::new(1, 1_000_000_000_000)))
        );
    }
}
