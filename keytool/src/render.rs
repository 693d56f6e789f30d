//! Decrypted releases as tables, JSON and CSV.
//!
//! The DP issue extends [`Release`] with a 95% interval per value (a column
//! in the table and CSV, an `intervals` array in JSON) and adds the `--plot`
//! renderer next to these.

use std::io::{self, Write};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_crypto::aggregate::AggregateFile;
use hetally_crypto::dp::DpMechanism;
use hetally_crypto::Measurement;
use serde::Serialize;

use crate::cli::OutputFormat;
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

/// The DP mechanism with a short explanation, for humans.
pub fn describe_dp(dp: &DpMechanism) -> String {
    match dp {
        DpMechanism::None => "none (the values are exact sums)".to_string(),
        DpMechanism::Laplace { epsilon } => {
            format!("{dp} (discrete Laplace noise on each value, {epsilon}-DP)")
        }
        DpMechanism::Gaussian { rho } => {
            format!("{dp} (discrete Gaussian noise on each value, {rho}-zCDP)")
        }
        other => other.to_string(),
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

/// A decrypted aggregate: its metadata and its (noisy) values.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// The decoded aggregate file.
    pub aggregate: &'a AggregateFile,
    /// One value per measurement element, in order.
    pub values: &'a [i128],
}

/// The batch in JSON: Unix seconds.
#[derive(Debug, Serialize)]
struct BatchJson {
    start: u64,
    duration: u64,
}

/// `decrypt --format json` output.
#[derive(Debug, Serialize)]
struct ReleaseJson<'a> {
    task_id: String,
    measurement: String,
    report_count: u64,
    batch: BatchJson,
    dp: String,
    values: &'a [i128],
}

/// Writes `release` in `format`.
pub fn write(format: OutputFormat, release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    match format {
        OutputFormat::Table => table(release, out),
        OutputFormat::Json => json(release, out),
        OutputFormat::Csv => csv(release, out),
    }
}

/// The human-readable table.
pub fn table(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    let agg = release.aggregate;
    writeln!(out, "Task         {}", task_id(&agg.task_id))?;
    writeln!(out, "Measurement  {}", agg.measurement)?;
    writeln!(
        out,
        "Batch        {}",
        batch_interval(agg.batch_start, agg.batch_duration)
    )?;
    writeln!(out, "Reports      {}", agg.report_count)?;
    writeln!(out, "Noise        {}", describe_dp(&agg.dp))?;
    writeln!(out)?;
    let labels: Vec<String> = (0..release.values.len())
        .map(|i| value_label(&agg.measurement, i))
        .collect();
    let values: Vec<String> = release.values.iter().map(i128::to_string).collect();
    let label_width = labels
        .iter()
        .map(String::len)
        .chain(["index".len()])
        .max()
        .unwrap_or(0);
    let value_width = values
        .iter()
        .map(String::len)
        .chain(["value".len()])
        .max()
        .unwrap_or(0);
    writeln!(out, "{:<label_width$}  {:>value_width$}", "index", "value")?;
    for (label, value) in labels.iter().zip(&values) {
        writeln!(out, "{label:<label_width$}  {value:>value_width$}")?;
    }
    Ok(())
}

/// One JSON object on one line.
pub fn json(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    let agg = release.aggregate;
    let doc = ReleaseJson {
        task_id: task_id(&agg.task_id),
        measurement: agg.measurement.to_string(),
        report_count: agg.report_count,
        batch: BatchJson {
            start: agg.batch_start,
            duration: agg.batch_duration,
        },
        dp: agg.dp.to_string(),
        values: release.values,
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

/// `index,value` lines after a header line.
pub fn csv(release: &Release<'_>, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "index,value")?;
    for (i, v) in release.values.iter().enumerate() {
        writeln!(out, "{i},{v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hetally_crypto::aggregate::Encoding;
    use hetally_crypto::dp::Rational;
    use hetally_crypto::keyfile::Scheme;

    use super::*;

    fn aggregate(measurement: &str, dp: DpMechanism) -> AggregateFile {
        AggregateFile {
            task_id: [0xfb; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [7; 32],
            measurement: measurement.parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 1_714_521_600,
            batch_duration: 3600,
            report_count: 12,
            dp,
            ciphertexts: vec![],
        }
    }

    fn render(format: OutputFormat, agg: &AggregateFile, values: &[i128]) -> String {
        let mut out = Vec::new();
        write(
            format,
            &Release {
                aggregate: agg,
                values,
            },
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn task_ids_are_base64url_without_padding() {
        let id = task_id(&[0xfb; 32]);
        assert_eq!(id.len(), 43);
        assert!(!id.contains(['=', '+', '/']), "{id}");
        assert!(id.starts_with("-_v7"), "{id}");
    }

    #[test]
    fn json_shape() {
        let agg = aggregate("histogram:3", DpMechanism::None);
        let text = render(OutputFormat::Json, &agg, &[5, -1, 8]);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "task_id": task_id(&[0xfb; 32]),
                "measurement": "histogram:3",
                "report_count": 12,
                "batch": {"start": 1_714_521_600u64, "duration": 3600},
                "dp": "none",
                "values": [5, -1, 8],
            })
        );
    }

    #[test]
    fn table_labels_buckets_and_shows_the_header() {
        let agg = aggregate(
            "histogram:3",
            DpMechanism::Laplace {
                epsilon: Rational::new(1, 2),
            },
        );
        let text = render(OutputFormat::Table, &agg, &[5, -1, 1234]);
        assert!(text.contains("Batch        2024-05-01T00:00:00Z to 2024-05-01T01:00:00Z (3600 s)"));
        assert!(text.contains("Reports      12"));
        assert!(text.contains("Noise        laplace:0.5 (discrete Laplace"));
        assert!(text.contains(&format!("Task         {}", task_id(&[0xfb; 32]))));
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("index"))
            .collect();
        assert_eq!(
            rows,
            [
                "index     value",
                "bucket 0      5",
                "bucket 1     -1",
                "bucket 2   1234"
            ]
        );

        let agg = aggregate("sum:8", DpMechanism::None);
        let text = render(OutputFormat::Table, &agg, &[99]);
        assert!(text.ends_with("index  value\n0         99\n"), "{text}");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_value() {
        let agg = aggregate("sumvec:3:4", DpMechanism::None);
        assert_eq!(
            render(OutputFormat::Csv, &agg, &[1, 0, -2]),
            "index,value\n0,1\n1,0\n2,-2\n"
        );
    }

    #[test]
    fn intervals_past_year_9999_render() {
        let s = batch_interval(u64::MAX, u64::MAX);
        assert!(s.contains(" to ") && s.ends_with(&format!("({} s)", u64::MAX)));
    }
}
