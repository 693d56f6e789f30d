//! `decrypt`: opens a released aggregate with the collector's secret key.
//!
//! Steps: read and validate both files (each names itself in any error),
//! check the key's fingerprint is the one the aggregate was encrypted under,
//! decrypt and unpack the slots, check the values are possible for the
//! stated report count when the release carries no noise, put a confidence
//! interval on each value (and clamp, if asked: [`crate::interval`]), then
//! render and, if asked, plot.
//!
//! Paillier ciphertexts carry no integrity check of their own. A damaged
//! ciphertext still decrypts, to a random plaintext, which the slot layout
//! almost always rejects (bits above the last slot); the plausibility check
//! catches more for noise-free releases.

use std::io::Write;
use std::path::Path;

use hetally_dp::DpMechanism;
use hetally_protocol::aggregate::AggregateFile;
use hetally_protocol::keyfile::{self, KeyFileError};
use hetally_schemes::SecretKeyFile;

use crate::cli::DecryptArgs;
use crate::error::KeytoolError;
use crate::files::{self, AGGREGATE_ROLE, SECRET_KEY_ROLE};
use crate::interval::Estimates;
use crate::plot;
use crate::render::{self, Release};

/// Decrypts `aggregate` (read from `aggregate_path`) with `key` (read from
/// `key_path`), checking that the key matches and that the values are
/// possible.
pub fn decrypt(
    key: &SecretKeyFile,
    key_path: &Path,
    aggregate: &AggregateFile,
    aggregate_path: &Path,
) -> Result<Vec<i128>, KeytoolError> {
    let to_error = |e| files::aggregate_error(aggregate_path, Some(key_path), e);
    // `decrypt` checks the key's scheme and fingerprint before anything else.
    let values = key.decrypt(aggregate).map_err(to_error)?;
    check_plausible(aggregate, &values).map_err(|reason| KeytoolError::Inconsistent {
        path: aggregate_path.display().to_string(),
        reason,
    })?;
    Ok(values)
}

/// For a release without noise, checks the values can be the sum of
/// `report_count` valid reports: each between 0 and `report_count` times
/// the largest value of one report, and for histograms (one-hot reports)
/// summing to `report_count` exactly. Noisy values can leave those ranges,
/// so they are not checked here.
pub fn check_plausible(aggregate: &AggregateFile, values: &[i128]) -> Result<(), String> {
    if !matches!(aggregate.dp, DpMechanism::None) {
        return Ok(());
    }
    // Only add/remove tasks have a noisy count, and they always have noise.
    let Some(reports) = aggregate.report_count.exact() else {
        return Ok(());
    };
    let measurement = &aggregate.measurement;
    let max = i128::from(reports) * i128::from(measurement.max_value());
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(0..=max).contains(*v))
    {
        return Err(format!(
            "value {} is {v}, outside 0..={max} for {reports} {measurement} reports without noise",
            render::value_label(measurement, i)
        ));
    }
    if measurement.is_one_hot() {
        let total: i128 = values.iter().sum();
        if total != i128::from(reports) {
            return Err(format!(
                "the buckets add up to {total}, but the file says it sums {reports} reports"
            ));
        }
    }
    Ok(())
}

/// True if `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `bytes` to `path` (replacing it, mode 0644 as any output).
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), KeytoolError> {
    keyfile::write_public_file(path, bytes, true).map_err(|e| match e {
        KeyFileError::Io { source, .. } => KeytoolError::Write {
            path: path.display().to_string(),
            source,
        },
        other => KeytoolError::Write {
            path: path.display().to_string(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Runs `decrypt`.
pub fn run(args: &DecryptArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    for (flag, path) in [("--out", &args.out), ("--plot", &args.plot)] {
        let Some(path) = path else { continue };
        if same_file(path, &args.key) || same_file(path, &args.aggregate) {
            return Err(KeytoolError::OutputIsInput {
                flag,
                path: path.display().to_string(),
            });
        }
    }
    if let (Some(a), Some(b)) = (&args.out, &args.plot) {
        if a == b || same_file(a, b) {
            return Err(KeytoolError::SameOutput {
                path: a.display().to_string(),
            });
        }
    }
    let key = files::read_secret_key(&args.key, SECRET_KEY_ROLE)?;
    let aggregate = files::read_aggregate(&args.aggregate, AGGREGATE_ROLE)?;
    let values = decrypt(&key, &args.key, &aggregate, &args.aggregate)?;
    drop(key);
    let estimates =
        Estimates::new(&aggregate, &values, args.confidence, args.clamp).map_err(|e| {
            // The confidence was checked by clap, so only a mechanism that
            // cannot be calibrated for the measurement (no server writes
            // one) fails here.
            KeytoolError::Corrupt {
                path: args.aggregate.display().to_string(),
                kind: "aggregate",
                reason: format!(
                    "its DP mechanism {} cannot be calibrated for {} ({e})",
                    aggregate.dp, aggregate.measurement
                ),
                remedy: "download the aggregate from the server again",
            }
        })?;
    let release = Release {
        aggregate: &aggregate,
        estimates: &estimates,
    };
    if let Some(path) = &args.plot {
        let svg = plot::svg(&release).map_err(|reason| KeytoolError::Plot {
            path: path.display().to_string(),
            reason,
        })?;
        write_output(path, svg.as_bytes())?;
    }
    match &args.out {
        None => render::write(args.format, &release, out).map_err(KeytoolError::Output),
        Some(path) => {
            let mut bytes = Vec::new();
            render::write(args.format, &release, &mut bytes).map_err(KeytoolError::Output)?;
            write_output(path, &bytes)?;
            write!(
                out,
                "Wrote {} decrypted values to {}",
                values.len(),
                path.display()
            )
            .map_err(KeytoolError::Output)?;
            if let Some(plot) = &args.plot {
                write!(out, " and the plot to {}", plot.display()).map_err(KeytoolError::Output)?;
            }
            writeln!(out).map_err(KeytoolError::Output)
        }
    }
}

#[cfg(test)]
mod tests {
    use hetally_dp::Rational;
    use hetally_protocol::aggregate::Encoding;
    use hetally_protocol::Scheme;

    use super::*;

    fn aggregate(measurement: &str, reports: u64, dp: DpMechanism) -> AggregateFile {
        AggregateFile {
            task_id: [1; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [2; 32],
            measurement: measurement.parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 0,
            batch_duration: 60,
            relation: Some(hetally_dp::Relation::ReplaceOne),
            report_count: hetally_protocol::aggregate::ReportCount::Exact(reports),
            dp,
            ciphertexts: vec![],
        }
    }

    #[test]
    fn noise_free_values_must_be_possible() {
        let h = aggregate("histogram:3", 10, DpMechanism::None);
        assert!(check_plausible(&h, &[3, 3, 4]).is_ok());
        let e = check_plausible(&h, &[3, 3, 5]).unwrap_err();
        assert!(e.contains("add up to 11"), "{e}");
        let e = check_plausible(&h, &[-1, 6, 5]).unwrap_err();
        assert!(e.contains("bucket 0 is -1"), "{e}");

        let s = aggregate("sum:8", 4, DpMechanism::None);
        assert!(check_plausible(&s, &[1020]).is_ok());
        assert!(check_plausible(&s, &[1021]).is_err());
        assert!(check_plausible(&aggregate("count", 0, DpMechanism::None), &[0]).is_ok());
    }

    #[test]
    fn noisy_values_are_not_range_checked() {
        let noisy = aggregate(
            "histogram:3",
            10,
            DpMechanism::Gaussian {
                rho: Rational::new(1, 10),
            },
        );
        assert!(check_plausible(&noisy, &[-2, 7, 9]).is_ok());
    }
}
