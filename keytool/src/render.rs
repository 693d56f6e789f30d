//! Decrypted releases as tables, JSON and CSV, each value with its
//! confidence interval ([`crate::interval`]); [`crate::plot`] draws them.

use std::io::{self, Write};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_dp::{DpMechanism, Guarantee, Noise, Rational, Relation};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::Measurement;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::decrypt::Flag;
use crate::interval::{percent, Estimates};
use crate::iso8601;

/// A task id as DAP shows it: base64url without padding.
pub fn task_id(id: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// `START to END (DURATION s)`, in ISO 8601 UTC.
pub fn batch_interval(start: u64, duration: u64) -> String {
    let end = u128::from(start) + u128::from(duration);
    format!(
        "{} to {} ({duration} s)",
        iso8601::format_utc(start.into()),
        iso8601::format_utc(end)
    )
}

/// The batch end in ISO 8601 UTC (start + duration, which may exceed u64).
pub fn batch_end_utc(start: u64, duration: u64) -> String {
    iso8601::format_utc(u128::from(start) + u128::from(duration))
}

/// The batch start in ISO 8601 UTC.
pub fn batch_start_utc(start: u64) -> String {
    iso8601::format_utc(start.into())
}

/// The DP mechanism with a short explanation, for humans. What it
/// guarantees depends on the relation too: see [`Guarantee::describe`].
pub fn describe_dp(dp: &DpMechanism) -> String {
    match dp {
        DpMechanism::None => "none (the values are exact sums)".to_string(),
        DpMechanism::Laplace { .. } => format!("{dp} (discrete Laplace noise on each value)"),
        DpMechanism::Gaussian { .. } => format!("{dp} (discrete Gaussian noise on each value)"),
    }
}

/// The relation's name as files and JSON show it: `legacy` for an
/// aggregate of a task that declares none.
pub fn relation_name(relation: Option<Relation>) -> &'static str {
    relation.map_or("legacy", Relation::name)
}

/// The relation with what it means, for humans.
pub fn describe_relation(relation: Option<Relation>) -> String {
    match relation {
        Some(r) => format!("{r} ({})", r.explain()),
        None => "none declared (the task predates declared relations; its report counts are \
                 public, so replace-one is the relation that holds)"
            .to_string(),
    }
}

/// The report count as the file carries it, for humans.
pub fn describe_count(count: ReportCount) -> String {
    match count {
        ReportCount::Exact(n) => n.to_string(),
        ReportCount::Noisy(n) => {
            format!("~{n} (released with DP noise; the exact count never leaves the server)")
        }
    }
}

/// The row label of value `index`: `bucket i` for histograms, the index
/// otherwise.
pub fn value_label(measurement: &Measurement, index: usize) -> String {
    match measurement {
        Measurement::Histogram { .. } => format!("bucket {index}"),
        _ => index.to_string(),
    }
}

/// The distribution of `noise` and its parameter, for machines:
/// (`"discrete_laplace"`, `"scale"`, scale), (`"discrete_gaussian"`,
/// `"sigma"`, sigma), (`"summed_discrete_gaussian"`, `"share_sigma"`, each
/// trustee's sigma), or `None` without noise.
pub fn noise_parameter(noise: &Noise) -> Option<(&'static str, &'static str, &Rational)> {
    match noise {
        Noise::DiscreteLaplace { scale } => Some(("discrete_laplace", "scale", scale)),
        Noise::DiscreteGaussian { sigma } => Some(("discrete_gaussian", "sigma", sigma)),
        // Trustee noise: each share's sigma (the sum has `shares` of them).
        Noise::SummedGaussian { share_sigma, .. } => {
            Some(("summed_discrete_gaussian", "share_sigma", share_sigma))
        }
        _ => None,
    }
}

/// A rational for people: exact, with a decimal approximation if it is a
/// fraction (`5000/297 (≈ 16.84)`).
pub fn rational_for_people(value: &Rational) -> String {
    let text = value.to_string();
    if text.contains('/') {
        format!("{text} (≈ {})", significant(value.to_f64()))
    } else {
        text
    }
}

/// `x` to four significant digits, without a trailing `.0`.
pub fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..15).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let places = (3 - magnitude).max(0) as usize;
    let text = format!("{x:.places$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A decrypted aggregate: its metadata, its values and their intervals.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// The decoded aggregate file.
    pub aggregate: &'a AggregateFile,
    /// One value per measurement element, in order, with its interval.
    pub estimates: &'a Estimates,
    /// What cannot come from valid reports ([`crate::decrypt`]); empty
    /// for a release of valid reports.
    pub flags: &'a [Flag],
}

impl Release<'_> {
    /// The flags of value `index`.
    fn flags_of(&self, index: usize) -> impl Iterator<Item = &Flag> {
        self.flags.iter().filter(move |f| f.index == Some(index))
    }

    /// True if value `index` is flagged.
    pub fn is_flagged(&self, index: usize) -> bool {
        self.flags_of(index).next().is_some()
    }

    /// How many values are flagged.
    pub fn flagged_values(&self) -> usize {
        (0..self.estimates.values.len())
            .filter(|&i| self.is_flagged(i))
            .count()
    }
}

/// One entry of the `flagged` array of `decrypt --format json`.
#[derive(Debug, Serialize)]
struct FlagJson<'a> {
    /// The value concerned; null for bits outside every value and for the
    /// release as a whole.
    index: Option<usize>,
    /// Its row label; null with `index`.
    label: Option<String>,
    /// The value as decrypted (before any clamping); null with `index`.
    decrypted: Option<i128>,
    /// Where in the ciphertexts, when the layout showed it.
    ciphertext: Option<usize>,
    slot: Option<usize>,
    /// `out_of_range`, `adjacent`, `past_last_value`, `above_last_slot`,
    /// `impossible_value` or `bucket_total`.
    kind: &'a str,
    reason: &'a str,
}

/// The batch in JSON: Unix seconds.
#[derive(Debug, Serialize)]
struct BatchJson {
    start: u64,
    duration: u64,
}

/// The `dp` object of `decrypt --format json`.
#[derive(Debug, Serialize)]
struct DpJson {
    mechanism: String,
    distribution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sigma: Option<String>,
    std_dev: f64,
    confidence: f64,
    half_width: u128,
    exact: bool,
}

/// The `clamp` object of `decrypt --format json`.
#[derive(Debug, Serialize)]
struct ClampJson {
    low: i128,
    high: Option<i128>,
    values_changed: usize,
}

/// The `noisy_report_count` object of `decrypt --format json`.
#[derive(Debug, Serialize)]
struct CountJson {
    value: i128,
    interval: [i128; 2],
}

/// The `guarantee` object of `decrypt --format json`: what holds for one
/// release.
#[derive(Debug, Serialize)]
struct GuaranteeJson {
    /// The relation that holds (replace-one for a legacy task).
    relation: &'static str,
    /// False for a task that declares no relation.
    declared: bool,
    /// The mechanism with the parameter that holds.
    holds: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    epsilon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rho: Option<String>,
    l1_sensitivity: String,
    l2_sensitivity_squared: String,
    text: String,
}

impl GuaranteeJson {
    fn of(g: &Guarantee) -> Self {
        let (epsilon, rho) = match &g.holds {
            DpMechanism::None => (None, None),
            DpMechanism::Laplace { epsilon } => (Some(epsilon.to_string()), None),
            DpMechanism::Gaussian { rho } => (None, Some(rho.to_string())),
        };
        GuaranteeJson {
            relation: g.relation.name(),
            declared: g.declared,
            holds: g.holds.to_string(),
            epsilon,
            rho,
            l1_sensitivity: g.l1.to_string(),
            l2_sensitivity_squared: g.l2_squared.to_string(),
            text: g.describe(None),
        }
    }
}

/// `decrypt --format json` output.
#[derive(Debug, Serialize)]
struct ReleaseJson<'a> {
    task_id: String,
    measurement: String,
    /// `replace-one`, `add-remove` or `legacy`.
    relation: &'static str,
    /// Exact; null under add-remove.
    report_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    noisy_report_count: Option<CountJson>,
    batch: BatchJson,
    dp: DpJson,
    guarantee: GuaranteeJson,
    values: &'a [i128],
    intervals: Vec<[i128; 2]>,
    clamp: Option<ClampJson>,
    /// Values and places that cannot come from valid reports (empty when
    /// none).
    flagged: Vec<FlagJson<'a>>,
}

/// Writes `release` in `format`.
pub fn write(format: OutputFormat, release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    match format {
        OutputFormat::Table => table(release, out),
        OutputFormat::Json => json(release, out),
        OutputFormat::Csv => csv(release, out),
    }
}

/// What clamping did, for people.
fn clamp_note(estimates: &Estimates) -> Option<String> {
    let range = estimates.clamp?;
    let changed = estimates.values_changed();
    let high = range.high.map_or(String::new(), |h| h.to_string());
    Some(format!(
        "to {}..={high}; {changed} value{} changed (post-processing: the DP guarantee is unchanged)",
        range.low,
        if changed == 1 { "" } else { "s" }
    ))
}

/// The human-readable table.
pub fn table(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    let agg = release.aggregate;
    let est = release.estimates;
    writeln!(out, "Task         {}", task_id(&agg.task_id))?;
    writeln!(out, "Measurement  {}", agg.measurement)?;
    writeln!(
        out,
        "Batch        {}",
        batch_interval(agg.batch_start, agg.batch_duration)
    )?;
    match agg.report_count {
        ReportCount::Exact(n) => writeln!(out, "Reports      {n}")?,
        ReportCount::Noisy(n) => writeln!(
            out,
            "Reports      ~{n} (released with DP noise: {} interval [{}, {}]; the exact count \
             never leaves the server)",
            percent(est.confidence),
            est.count.interval.0,
            est.count.interval.1
        )?,
    }
    writeln!(out, "Relation     {}", describe_relation(agg.relation))?;
    writeln!(out, "Noise        {}", describe_dp(&agg.dp))?;
    writeln!(out, "Guarantee    {}", est.guarantee.describe(Some(1e-6)))?;
    if let Some((_, name, value)) = noise_parameter(&est.noise) {
        let label = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
        writeln!(
            out,
            "{label:<13}{} (standard deviation {})",
            rational_for_people(value),
            significant(est.noise.std_dev())
        )?;
        writeln!(
            out,
            "Intervals    ±{} at {} confidence: each contains the true sum with probability at least {}",
            est.half_width,
            percent(est.confidence),
            percent(est.confidence)
        )?;
    }
    if let Some(note) = clamp_note(est) {
        writeln!(out, "Clamped      {note}")?;
    }
    if !release.flags.is_empty() {
        let n = release.flagged_values();
        writeln!(
            out,
            "Flagged      {n} value{} (marked !) {} not reliable: the release holds what no \
             batch of valid reports can (see the warning)",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        )?;
    }
    writeln!(out)?;
    let labels: Vec<String> = (0..est.values.len())
        .map(|i| value_label(&agg.measurement, i))
        .collect();
    let values: Vec<String> = est.values.iter().map(i128::to_string).collect();
    let width = |items: &[String], header: &str| {
        items
            .iter()
            .map(String::len)
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let label_width = width(&labels, "index");
    let value_width = width(&values, "value");
    let mark = |i: usize| if release.is_flagged(i) { "  !" } else { "" };
    if est.exact() {
        writeln!(out, "{:<label_width$}  {:>value_width$}", "index", "value")?;
        for (i, (label, value)) in labels.iter().zip(&values).enumerate() {
            writeln!(
                out,
                "{label:<label_width$}  {value:>value_width$}{}",
                mark(i)
            )?;
        }
        return Ok(());
    }
    let lows: Vec<String> = est.intervals.iter().map(|i| i.0.to_string()).collect();
    let highs: Vec<String> = est.intervals.iter().map(|i| i.1.to_string()).collect();
    let (low_width, high_width) = (width(&lows, ""), width(&highs, ""));
    let header = format!("{} interval", percent(est.confidence));
    writeln!(
        out,
        "{:<label_width$}  {:>value_width$}  {header}",
        "index", "value"
    )?;
    for (i, (((label, value), low), high)) in labels
        .iter()
        .zip(&values)
        .zip(&lows)
        .zip(&highs)
        .enumerate()
    {
        writeln!(
            out,
            "{label:<label_width$}  {value:>value_width$}  [{low:>low_width$}, {high:>high_width$}]{}",
            mark(i)
        )?;
    }
    Ok(())
}

/// One JSON object on one line.
pub fn json(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    let agg = release.aggregate;
    let est = release.estimates;
    let parameter = noise_parameter(&est.noise);
    let doc = ReleaseJson {
        task_id: task_id(&agg.task_id),
        measurement: agg.measurement.to_string(),
        relation: relation_name(agg.relation),
        report_count: agg.report_count.exact(),
        noisy_report_count: (!est.count.exact).then_some(CountJson {
            value: est.count.value,
            interval: [est.count.interval.0, est.count.interval.1],
        }),
        guarantee: GuaranteeJson::of(&est.guarantee),
        batch: BatchJson {
            start: agg.batch_start,
            duration: agg.batch_duration,
        },
        dp: DpJson {
            mechanism: agg.dp.to_string(),
            distribution: parameter.map_or("none", |p| p.0),
            scale: parameter
                .filter(|p| p.1 == "scale")
                .map(|p| p.2.to_string()),
            sigma: parameter
                .filter(|p| p.1 == "sigma")
                .map(|p| p.2.to_string()),
            std_dev: est.noise.std_dev(),
            confidence: est.confidence,
            half_width: est.half_width,
            exact: est.exact(),
        },
        values: &est.values,
        intervals: est.intervals.iter().map(|&(l, h)| [l, h]).collect(),
        clamp: est.clamp.map(|c| ClampJson {
            low: c.low,
            high: c.high,
            values_changed: est.values_changed(),
        }),
        flagged: release
            .flags
            .iter()
            .map(|f| FlagJson {
                index: f.index,
                label: f.index.map(|i| value_label(&agg.measurement, i)),
                decrypted: f.decrypted,
                ciphertext: f.place.map(|p| p.0),
                slot: f.place.map(|p| p.1),
                kind: f.kind,
                reason: &f.reason,
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

/// `index,value,low,high` lines after a header line; with clamping, a
/// `clamped` column says whether clamping changed the value, and when
/// anything is flagged a `flagged` column says which values are.
pub fn csv(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    let est = release.estimates;
    let clamped = est.clamp.is_some();
    let flagged = !release.flags.is_empty();
    writeln!(
        out,
        "index,value,low,high{}{}",
        if clamped { ",clamped" } else { "" },
        if flagged { ",flagged" } else { "" }
    )?;
    for (i, ((v, (low, high)), changed)) in est
        .values
        .iter()
        .zip(&est.intervals)
        .zip(&est.changed)
        .enumerate()
    {
        write!(out, "{i},{v},{low},{high}")?;
        if clamped {
            write!(out, ",{changed}")?;
        }
        if flagged {
            write!(out, ",{}", release.is_flagged(i))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hetally_protocol::aggregate::Encoding;
    use hetally_protocol::Scheme;

    use super::*;

    fn aggregate(measurement: &str, dp: &str) -> AggregateFile {
        AggregateFile {
            task_id: [0xfb; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [7; 32],
            measurement: measurement.parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 1_714_521_600,
            batch_duration: 3600,
            relation: Some(hetally_dp::Relation::ReplaceOne),
            report_count: hetally_protocol::aggregate::ReportCount::Exact(12),
            dp: dp.parse().unwrap(),
            ciphertexts: vec![],
            trustee_noise: None,
        }
    }

    fn render_with(
        format: OutputFormat,
        agg: &AggregateFile,
        values: &[i128],
        confidence: f64,
        clamp: bool,
    ) -> String {
        let estimates = Estimates::new(agg, values, confidence, clamp).unwrap();
        let mut out = Vec::new();
        write(
            format,
            &Release {
                aggregate: agg,
                estimates: &estimates,
                flags: &[],
            },
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn render(format: OutputFormat, agg: &AggregateFile, values: &[i128]) -> String {
        render_with(format, agg, values, 0.95, false)
    }

    #[test]
    fn task_ids_are_base64url_without_padding() {
        let id = task_id(&[0xfb; 32]);
        assert_eq!(id.len(), 43);
        assert!(!id.contains(['=', '+', '/']), "{id}");
        assert!(id.starts_with("-_v7"), "{id}");
    }

    #[test]
    fn json_shape_without_noise() {
        let agg = aggregate("histogram:3", "none");
        let text = render(OutputFormat::Json, &agg, &[5, -1, 8]);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "task_id": task_id(&[0xfb; 32]),
                "measurement": "histogram:3",
                "relation": "replace-one",
                "report_count": 12,
                "guarantee": {
                    "relation": "replace-one",
                    "declared": true,
                    "holds": "none",
                    "l1_sensitivity": "2",
                    "l2_sensitivity_squared": "2",
                    "text": "none: no noise is added, releases are exact sums and give no DP guarantee",
                },
                "batch": {"start": 1_714_521_600u64, "duration": 3600},
                "dp": {
                    "mechanism": "none",
                    "distribution": "none",
                    "std_dev": 0.0,
                    "confidence": 0.95,
                    "half_width": 0,
                    "exact": true,
                },
                "values": [5, -1, 8],
                "intervals": [[5, 5], [-1, -1], [8, 8]],
                "clamp": null,
                "flagged": [],
            })
        );
    }

    #[test]
    fn json_shape_with_noise_and_clamping() {
        // histogram:3 laplace:1 under replace-one (L1 sensitivity 2) is
        // scale 2; P(|X| > 6) = 2 q^7 / (1 + q)
        // = 0.0376 with q = exp(-1/2), and P(|X| > 5) = 0.062: ±6 at 95%.
        let agg = aggregate("histogram:3", "laplace:1");
        let text = render_with(OutputFormat::Json, &agg, &[5, -1, 14], 0.95, true);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let std_dev = v["dp"]["std_dev"].as_f64().unwrap();
        assert!((std_dev - 2.799).abs() < 1e-3, "{std_dev}");
        assert_eq!(
            v["dp"],
            serde_json::json!({
                "mechanism": "laplace:1",
                "distribution": "discrete_laplace",
                "scale": "2",
                "std_dev": std_dev,
                "confidence": 0.95,
                "half_width": 6,
                "exact": false,
            })
        );
        assert_eq!(v["values"], serde_json::json!([5, 0, 12]));
        assert_eq!(
            v["intervals"],
            serde_json::json!([[0, 11], [0, 5], [8, 12]])
        );
        assert_eq!(
            v["clamp"],
            serde_json::json!({"low": 0, "high": 12, "values_changed": 2})
        );

        let agg = aggregate("count", "gaussian:1/8");
        let text = render(OutputFormat::Json, &agg, &[3]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["dp"]["distribution"], "discrete_gaussian");
        assert_eq!(v["dp"]["sigma"], "2");
        assert!(v["dp"].get("scale").is_none());
        assert_eq!(v["clamp"], serde_json::Value::Null);
    }

    #[test]
    fn table_labels_buckets_and_shows_intervals() {
        let agg = aggregate("histogram:3", "laplace:1");
        let text = render(OutputFormat::Table, &agg, &[5, -1, 1234]);
        assert!(text.contains("Batch        2024-05-01T00:00:00Z to 2024-05-01T01:00:00Z (3600 s)"));
        assert!(text.contains("Reports      12"));
        assert!(text.contains("Noise        laplace:1 (discrete Laplace"));
        assert!(text.contains("Scale        2 (standard deviation 2.799)"));
        assert!(text.contains("Intervals    ±6 at 95% confidence"));
        assert!(!text.contains("Clamped"));
        assert!(text.contains(&format!("Task         {}", task_id(&[0xfb; 32]))));
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("index"))
            .collect();
        assert_eq!(
            rows,
            [
                "index     value  95% interval",
                "bucket 0      5  [  -1,   11]",
                "bucket 1     -1  [  -7,    5]",
                "bucket 2   1234  [1228, 1240]"
            ]
        );

        let text = render_with(OutputFormat::Table, &agg, &[5, -1, 1234], 0.999, true);
        assert!(
            text.contains("Clamped      to 0..=12; 2 values changed (post-processing"),
            "{text}"
        );
        assert!(text.contains("index     value  99.9% interval"), "{text}");
        assert!(text.contains("bucket 1      0  [ 0, "), "{text}");
        assert!(text.contains("bucket 2     12  [12, 12]"), "{text}");

        let agg = aggregate("sum:8", "none");
        let text = render(OutputFormat::Table, &agg, &[99]);
        assert!(text.contains("Noise        none (the values are exact sums)"));
        assert!(text.ends_with("index  value\n0         99\n"), "{text}");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_value() {
        let agg = aggregate("sumvec:3:4", "none");
        assert_eq!(
            render(OutputFormat::Csv, &agg, &[1, 0, -2]),
            "index,value,low,high\n0,1,1,1\n1,0,0,0\n2,-2,-2,-2\n"
        );
        let agg = aggregate("count", "laplace:0.4");
        assert_eq!(
            render_with(OutputFormat::Csv, &agg, &[3, 20], 0.95, true),
            "index,value,low,high,clamped\n0,3,0,10,false\n1,12,12,12,true\n"
        );
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(significant(2.7990), "2.799");
        assert_eq!(significant(23.81), "23.81");
        assert_eq!(significant(1803.47), "1803");
        assert_eq!(significant(0.012345), "0.01235");
        assert_eq!(significant(4e20), "4.000e20");
        assert_eq!(
            rational_for_people(&Rational::new(5000, 297)),
            "5000/297 (≈ 16.84)"
        );
        assert_eq!(rational_for_people(&Rational::new(5, 2)), "2.5");
    }

    #[test]
    fn intervals_past_year_9999_render() {
        let s = batch_interval(u64::MAX, u64::MAX);
        assert!(s.contains(" to ") && s.ends_with(&format!("({} s)", u64::MAX)));
    }
}
