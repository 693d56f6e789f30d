//! What the collector can say about each decrypted value: a confidence
//! interval from the exact noise distribution, and optional clamping.
//!
//! A released value is `y = s + X`, the true sum `s` plus noise `X` drawn
//! from the task's mechanism at the sensitivity of its relation
//! ([`Guarantee::for_task`], the same calibration the server used). Under
//! add/remove the report count is released the same way, and gets the same
//! interval. With `k` the smallest integer such that
//! `P(|X| <= k) >= confidence` ([`Noise::interval_half_width`], searched
//! over the exact pmf), `[y - k, y + k]` contains `s` with probability at
//! least `confidence`. `k` depends on the noise only, so it is one number
//! for the whole release.
//!
//! Clamping maps every value and interval end into `[0, reports × max]`,
//! the range every true sum lies in (under add/remove, where the exact
//! count is not known, only into `[0, ∞)`). It reads only the release and
//! public facts about it (the measurement type, and the report count where
//! it is public, are in the aggregate file), so it is post-processing and
//! keeps the DP guarantee (Dwork and Roth 2014, Proposition 2.1). An
//! interval that contained the true sum still does, since the sum is
//! inside the range.

use hetally_dp::{DpError, Guarantee, Noise};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};

/// The range `--clamp` maps values into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClampRange {
    /// Always 0: sums of non-negative reports.
    pub low: i128,
    /// `reports × largest value of one report`; none when the report count
    /// is released only with noise.
    pub high: Option<i128>,
}

impl ClampRange {
    /// The possible range of each value of `aggregate`.
    pub fn of(aggregate: &AggregateFile) -> ClampRange {
        let high = aggregate.report_count.exact().map(|reports| {
            let high =
                u128::from(reports).saturating_mul(u128::from(aggregate.measurement.max_value()));
            i128::try_from(high).unwrap_or(i128::MAX)
        });
        ClampRange { low: 0, high }
    }

    fn apply(&self, v: i128) -> i128 {
        v.max(self.low).min(self.high.unwrap_or(i128::MAX))
    }
}

/// The report count of a release as the collector knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountEstimate {
    /// The count as released: exact, or with noise.
    pub value: i128,
    /// True if `value` is the exact count.
    pub exact: bool,
    /// Where the true count lies with the release's confidence (the value
    /// itself when exact; never below 0).
    pub interval: (i128, i128),
}

/// The decrypted values of a release with what is known about their noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    /// The guarantee that holds for the release (relation, sensitivity,
    /// parameter).
    pub guarantee: Guarantee,
    /// The noise the release carries (`Noise::None` without DP).
    pub noise: Noise,
    /// The report count, exact or noisy.
    pub count: CountEstimate,
    /// The confidence level of the intervals.
    pub confidence: f64,
    /// The interval half-width `k` (0 without DP).
    pub half_width: u128,
    /// The range values were clamped to, if `--clamp` was given.
    pub clamp: Option<ClampRange>,
    /// The values to show: as decrypted, or clamped.
    pub values: Vec<i128>,
    /// `[low, high]` for each value, clamped like the values.
    pub intervals: Vec<(i128, i128)>,
    /// For each value, whether clamping changed it.
    pub changed: Vec<bool>,
}

impl Estimates {
    /// Intervals at `confidence` for the decrypted `values` of `aggregate`,
    /// clamped if `clamp`. Errors only if the aggregate's mechanism cannot
    /// be calibrated for its measurement (a file the server could not have
    /// written) or `confidence` is not strictly between 0 and 1.
    pub fn new(
        aggregate: &AggregateFile,
        values: &[i128],
        confidence: f64,
        clamp: bool,
    ) -> Result<Estimates, DpError> {
        let guarantee = Guarantee::for_release(
            &aggregate.measurement,
            &aggregate.dp,
            aggregate.relation,
            aggregate.trustee_noise.as_ref(),
        )?;
        let noise = guarantee.noise.clone();
        // 0 without noise: the interval is the exact value.
        let half_width = noise.interval_half_width(confidence)?;
        let k = i128::try_from(half_width).unwrap_or(i128::MAX);
        let count = match aggregate.report_count {
            ReportCount::Exact(n) => CountEstimate {
                value: i128::from(n),
                exact: true,
                interval: (i128::from(n), i128::from(n)),
            },
            ReportCount::Noisy(n) => {
                let n = i128::from(n);
                CountEstimate {
                    value: n,
                    exact: false,
                    // A count is never negative: clamping the interval's
                    // low end keeps the true count inside it.
                    interval: (n.saturating_sub(k).max(0), n.saturating_add(k).max(0)),
                }
            }
        };
        let range = clamp.then(|| ClampRange::of(aggregate));
        let mut shown = Vec::with_capacity(values.len());
        let mut intervals = Vec::with_capacity(values.len());
        let mut changed = Vec::with_capacity(values.len());
        for &v in values {
            let (low, high) = (v.saturating_sub(k), v.saturating_add(k));
            match &range {
                Some(r) => {
                    shown.push(r.apply(v));
                    intervals.push((r.apply(low), r.apply(high)));
                    changed.push(r.apply(v) != v);
                }
                None => {
                    shown.push(v);
                    intervals.push((low, high));
                    changed.push(false);
                }
            }
        }
        Ok(Estimates {
            guarantee,
            noise,
            count,
            confidence,
            half_width,
            clamp: range,
            values: shown,
            intervals,
            changed,
        })
    }

    /// True if the release carries no noise.
    pub fn exact(&self) -> bool {
        matches!(self.noise, Noise::None)
    }

    /// How many values clamping changed.
    pub fn values_changed(&self) -> usize {
        self.changed.iter().filter(|c| **c).count()
    }
}

/// A confidence level as a percentage for people: `95%`, `99.9%`.
pub fn percent(confidence: f64) -> String {
    let text = format!("{:.6}", confidence * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use hetally_dp::{DpMechanism, Relation};
    use hetally_protocol::aggregate::Encoding;
    use hetally_protocol::Scheme;

    use super::*;

    fn aggregate(measurement: &str, reports: u64, dp: &str) -> AggregateFile {
        AggregateFile {
            task_id: [1; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [2; 32],
            measurement: measurement.parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 0,
            batch_duration: 60,
            relation: Some(Relation::ReplaceOne),
            report_count: ReportCount::Exact(reports),
            dp: dp.parse::<DpMechanism>().unwrap(),
            ciphertexts: vec![],
            trustee_noise: None,
        }
    }

    #[test]
    fn intervals_are_value_plus_minus_the_exact_half_width() {
        // count laplace:0.4 is scale 2.5: ±7 at 95% (docs/dp.md).
        let agg = aggregate("count", 10, "laplace:0.4");
        let e = Estimates::new(&agg, &[3, -2], 0.95, false).unwrap();
        assert_eq!(e.half_width, 7);
        assert_eq!(e.values, [3, -2]);
        assert_eq!(e.intervals, [(-4, 10), (-9, 5)]);
        assert!(!e.exact());
        assert_eq!(e.clamp, None);
        // Higher confidence, wider interval.
        let wide = Estimates::new(&agg, &[3], 0.99, false).unwrap();
        assert!(wide.half_width > 7);
    }

    #[test]
    fn clamping_maps_into_the_possible_range() {
        let agg = aggregate("histogram:3", 10, "gaussian:1/8");
        let e = Estimates::new(&agg, &[-3, 5, 14], 0.95, true).unwrap();
        let k = e.half_width as i128;
        assert!(k > 0);
        assert_eq!(
            e.clamp,
            Some(ClampRange {
                low: 0,
                high: Some(10)
            })
        );
        assert_eq!(e.values, [0, 5, 10]);
        assert_eq!(e.changed, [true, false, true]);
        assert_eq!(e.values_changed(), 2);
        assert_eq!(e.intervals[0], (0, (-3 + k).clamp(0, 10)));
        assert_eq!(e.intervals[1], ((5 - k).max(0), (5 + k).min(10)));
        assert_eq!(e.intervals[2], ((14 - k).clamp(0, 10), 10));

        // A sum's bound is reports × (2^bits - 1).
        let sum = aggregate("sum:8", 4, "laplace:1");
        assert_eq!(ClampRange::of(&sum).high, Some(1020));
        // The widest possible bound still fits.
        let huge = aggregate("sum:62", u64::MAX, "none");
        assert_eq!(
            ClampRange::of(&huge).high,
            Some((u128::from(u64::MAX) * ((1u128 << 62) - 1)) as i128)
        );
    }

    #[test]
    fn noisy_counts_get_the_values_interval_and_no_upper_clamp() {
        // count laplace:1 under add/remove: L1 = 1 + 1, scale 2.
        let mut agg = aggregate("count", 0, "laplace:1");
        agg.relation = Some(Relation::AddRemove);
        agg.report_count = ReportCount::Noisy(3);
        let e = Estimates::new(&agg, &[2, 40], 0.95, true).unwrap();
        let k = e.half_width as i128;
        assert_eq!(e.half_width, 6);
        assert!(!e.count.exact);
        assert_eq!(e.count.value, 3);
        assert_eq!(e.count.interval, (0, 3 + k));
        assert_eq!(e.clamp.unwrap().high, None);
        assert_eq!(e.values, [2, 40]);
        assert_eq!(e.guarantee.relation, Relation::AddRemove);
    }

    #[test]
    fn exact_values_have_zero_width_intervals() {
        let agg = aggregate("sumvec:2:4", 3, "none");
        let e = Estimates::new(&agg, &[7, 0], 0.95, false).unwrap();
        assert!(e.exact());
        assert_eq!(e.half_width, 0);
        assert_eq!(e.intervals, [(7, 7), (0, 0)]);
        assert!(Estimates::new(&agg, &[7, 0], 1.5, false).is_err());
    }

    #[test]
    fn extreme_values_saturate() {
        let agg = aggregate("count", 1, "laplace:1");
        let e = Estimates::new(&agg, &[i128::MAX, i128::MIN], 0.95, false).unwrap();
        assert_eq!(e.intervals[0].1, i128::MAX);
        assert_eq!(e.intervals[1].0, i128::MIN);
    }

    #[test]
    fn percentages_read_cleanly() {
        assert_eq!(percent(0.95), "95%");
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.9999), "99.99%");
    }
}
