//! `decrypt`: opens a released aggregate with the collector's secret key.
//!
//! Steps: read and validate both files (each names itself in any error),
//! check the key's fingerprint is the one the aggregate was encrypted under,
//! decrypt and unpack the slots, flag the values no batch of valid reports
//! can produce, put a confidence interval on each value (and clamp, if
//! asked: [`crate::interval`]), then render and, if asked, plot.
//!
//! **Corrupt or out of range.** Paillier ciphertexts carry no integrity
//! check of their own. A damaged ciphertext still decrypts, to random
//! bits, which the slot layout tells apart (about half of its slots out of
//! range, [`hetally_paillier::packing::Packing::unpack_flagged`]): that
//! file is refused as corrupt. A task created with `--no-input-proofs`
//! cannot check what its clients encrypt, so one client can send a value
//! out of range: its bits land above its slot or in the slot's sign bit,
//! and the sum is no longer what valid reports give. That release is not
//! corrupt (downloading it again gives the same bytes), and its other
//! values are still the batch's sums: it is decrypted, the places that
//! cannot come from valid reports are flagged ([`Flag`]), and the command
//! ends with [`crate::Outcome::Flagged`] (exit code
//! [`crate::error::EXIT_OUT_OF_RANGE`]). Flags come from the scheme's
//! layout ([`hetally_protocol::aggregate::SlotFlag`]) and from the values
//! themselves: a value outside what the report count and the noise's
//! tail bound allow, and, without noise, histogram buckets that do not add
//! up to the report count.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use hetally_dp::Noise;
use hetally_protocol::aggregate::{AggregateFile, Decryption, ReportCount, SlotProblem};
use hetally_protocol::keyfile::{self, KeyFileError};
use hetally_schemes::SecretKeyFile;

use crate::cli::{DecryptArgs, ReleaseOutput};
use crate::error::KeytoolError;
use crate::files::{self, AGGREGATE_ROLE, SECRET_KEY_ROLE};
use crate::interval::{ClampRange, Estimates};
use crate::plot;
use crate::render::{self, Release};
use crate::Outcome;

/// Per-value probability, as a power of 2, that honest noise takes a value
/// past the bound [`range_flags`] allows: the same 2^-64 the Paillier slot
/// layout makes room for.
const NOISE_TAIL_LOG2: u32 = 64;

/// A place of a decrypted release that no batch of valid reports can
/// produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The measurement value concerned; `None` for bits outside every value
    /// and for the release as a whole.
    pub index: Option<usize>,
    /// The value as decrypted; `None` with `index`.
    pub decrypted: Option<i128>,
    /// The ciphertext and slot, when the scheme's layout showed it.
    pub place: Option<(usize, usize)>,
    /// What kind of flag: `out_of_range`, `adjacent`, `past_last_value`,
    /// `above_last_slot` (from the layout), `impossible_value` or
    /// `bucket_total` (from the values).
    pub kind: &'static str,
    /// What is wrong, for people.
    pub reason: String,
}

/// A decrypted release: its values and what is flagged in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// One value per measurement value, as decrypted.
    pub values: Vec<i128>,
    /// Values and places that cannot come from valid reports; empty for a
    /// release of valid reports.
    pub flags: Vec<Flag>,
}

/// Decrypts `aggregate` (read from `aggregate_path`) with `key` (read from
/// `key_path`), checking that the key matches, and flags what no batch of
/// valid reports can produce (see the module docs). `noise` is the noise
/// the release carries ([`Estimates::noise`]).
pub fn decrypt(
    key: &SecretKeyFile,
    key_path: &Path,
    aggregate: &AggregateFile,
    aggregate_path: &Path,
    noise: &Noise,
) -> Result<Decrypted, KeytoolError> {
    let to_error = |e| files::aggregate_error(aggregate_path, Some(key_path), e);
    // `decrypt_flagged` checks the key's scheme and fingerprint first.
    let decryption = key.decrypt_flagged(aggregate).map_err(to_error)?;
    Ok(flag(decryption, aggregate, noise))
}

/// The [`Decrypted`] form of a decryption: the layout's flags, then those
/// the values themselves show ([`range_flags`]).
pub(crate) fn flag(decryption: Decryption, aggregate: &AggregateFile, noise: &Noise) -> Decrypted {
    let mut flags: Vec<Flag> = decryption
        .flags
        .iter()
        .map(|f| Flag {
            index: f.value,
            decrypted: f.value.and_then(|i| decryption.values.get(i).copied()),
            place: Some((f.ciphertext, f.slot)),
            kind: f.problem.name(),
            reason: match f.problem {
                SlotProblem::AboveLastSlot { .. } | SlotProblem::PastLastValue { .. } => {
                    format!("ciphertext {} {}", f.ciphertext, f.problem)
                }
                _ => f.problem.to_string(),
            },
        })
        .collect();
    let flagged: Vec<bool> = (0..decryption.values.len())
        .map(|i| flags.iter().any(|f| f.index == Some(i)))
        .collect();
    flags.extend(range_flags(aggregate, &decryption.values, &flagged, noise));
    Decrypted {
        values: decryption.values,
        flags,
    }
}

/// Flags what the values themselves show cannot come from valid reports:
/// a value outside `[-t, reports × max + t]`, with `t` the noise's tail
/// bound at 2^-64 (0 without noise; under add/remove the noisy count gets
/// it too), and, when nothing else is flagged and there is no noise,
/// histogram buckets that do not add up to the report count. Values the
/// layout already flagged (`flagged`) are not flagged again.
pub fn range_flags(
    aggregate: &AggregateFile,
    values: &[i128],
    flagged: &[bool],
    noise: &Noise,
) -> Vec<Flag> {
    let measurement = &aggregate.measurement;
    let tail = i128::try_from(noise.tail_bound(NOISE_TAIL_LOG2)).unwrap_or(i128::MAX);
    let reports = match aggregate.report_count {
        ReportCount::Exact(n) => i128::from(n),
        ReportCount::Noisy(n) => i128::from(n).max(0).saturating_add(tail),
    };
    let high = reports
        .saturating_mul(i128::from(measurement.max_value()))
        .saturating_add(tail);
    let low = -tail;
    let range = match noise {
        Noise::None => format!(
            "{low}..={high}, what {} reports of {measurement} sum to",
            aggregate.report_count.released()
        ),
        _ => format!(
            "{low}..={high}, what {} reports of {measurement} sum to plus noise (which leaves \
             that range with probability below 2^-{NOISE_TAIL_LOG2})",
            match aggregate.report_count {
                ReportCount::Exact(n) => n.to_string(),
                ReportCount::Noisy(n) => format!("~{n}"),
            }
        ),
    };
    let mut flags: Vec<Flag> = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !flagged.get(*i).copied().unwrap_or(false) && !(low..=high).contains(*v))
        .map(|(i, v)| Flag {
            index: Some(i),
            decrypted: Some(*v),
            place: None,
            kind: "impossible_value",
            reason: format!("is {v}, outside {range}"),
        })
        .collect();
    // A value the layout flagged puts the total off anyway: the total is
    // only news when nothing else is.
    let any_flagged = flagged.iter().any(|f| *f) || !flags.is_empty();
    if !any_flagged && matches!(noise, Noise::None) && measurement.is_one_hot() {
        if let Some(reports) = aggregate.report_count.exact() {
            let total = values.iter().fold(0i128, |sum, v| sum.saturating_add(*v));
            if total != i128::from(reports) {
                flags.push(Flag {
                    index: None,
                    decrypted: None,
                    place: None,
                    kind: "bucket_total",
                    reason: format!(
                        "the buckets add up to {total}, but the file says it sums {reports} \
                         reports of one bucket each"
                    ),
                });
            }
        }
    }
    flags
}

/// The warning `decrypt` ends with when something is flagged: which values
/// and places, the likely cause, and what `--clamp` does to them.
pub fn warning(
    aggregate: &AggregateFile,
    aggregate_path: &Path,
    flags: &[Flag],
    clamp: bool,
) -> String {
    let measurement = &aggregate.measurement;
    let mut values: Vec<usize> = flags.iter().filter_map(|f| f.index).collect();
    values.sort_unstable();
    values.dedup();
    let mut text = format!(
        "{}: the release holds what no batch of valid reports can{}",
        aggregate_path.display(),
        match values.len() {
            0 => ":".to_string(),
            1 => "; 1 value is not reliable:".to_string(),
            n => format!("; {n} values are not reliable:"),
        }
    );
    for f in flags {
        let what = match (f.index, f.place) {
            (Some(i), Some((c, s))) => format!(
                "{} (ciphertext {c}, slot {s})",
                render::value_label(measurement, i)
            ),
            (Some(i), None) => render::value_label(measurement, i),
            (None, _) => "the release".to_string(),
        };
        let _ = write!(text, "\n  {what}: {}", f.reason);
    }
    let range = ClampRange::of(aggregate);
    let bounds = match range.high {
        Some(high) => format!("{}..={high}", range.low),
        None => format!(
            "{}.. (no upper bound: the exact count is not public)",
            range.low
        ),
    };
    let others = match aggregate.dp {
        hetally_dp::DpMechanism::None => "the exact sums of all the reports",
        _ => "the sums of all the reports plus noise",
    };
    let clamp_note = if clamp {
        format!(
            "--clamp moved them into {bounds} like any other value: that hides them, it does not \
             recover their true sums"
        )
    } else {
        format!(
            "--clamp would move them into {bounds} like any other value: that hides them, it \
             does not recover their true sums"
        )
    };
    let _ = write!(
        text,
        "\nLikely cause: the task was created with --no-input-proofs and a client sent a value \
         out of range (bits above its slot, or the slot's sign bit); without proofs the server \
         cannot check what clients encrypt. (A task with input proofs cannot accept such a \
         report: then tell the server operator.) The file is not corrupt: downloading it again \
         gives the same bytes.\n\
         The other values are {others}. {clamp_note}. Tasks with input proofs (the default) \
         refuse such reports at upload."
    );
    text
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
pub fn run(args: &DecryptArgs, out: &mut dyn Write) -> Result<Outcome, KeytoolError> {
    check_outputs(&args.output, &[&args.key, &args.aggregate])?;
    let key = files::read_secret_key(&args.key, SECRET_KEY_ROLE)?;
    let aggregate = files::read_aggregate(&args.aggregate, AGGREGATE_ROLE)?;
    let noise = release_noise(&aggregate, &args.aggregate)?;
    let decrypted = decrypt(&key, &args.key, &aggregate, &args.aggregate, &noise)?;
    drop(key);
    present(&args.output, &aggregate, &args.aggregate, decrypted, out)
}

/// Refuses outputs that would overwrite an input, or each other.
pub(crate) fn check_outputs(output: &ReleaseOutput, inputs: &[&Path]) -> Result<(), KeytoolError> {
    for (flag, path) in [("--out", &output.out), ("--plot", &output.plot)] {
        let Some(path) = path else { continue };
        if inputs.iter().any(|input| same_file(path, input)) {
            return Err(KeytoolError::OutputIsInput {
                flag,
                path: path.display().to_string(),
            });
        }
    }
    if let (Some(a), Some(b)) = (&output.out, &output.plot) {
        if a == b || same_file(a, b) {
            return Err(KeytoolError::SameOutput {
                path: a.display().to_string(),
            });
        }
    }
    Ok(())
}

/// The error of a mechanism that cannot be calibrated for the aggregate's
/// measurement (no server writes one).
fn uncalibrated(aggregate: &AggregateFile, path: &Path, e: hetally_dp::DpError) -> KeytoolError {
    KeytoolError::Corrupt {
        path: path.display().to_string(),
        kind: "aggregate",
        reason: format!(
            "its DP mechanism {} cannot be calibrated for {} ({e})",
            aggregate.dp, aggregate.measurement
        ),
        remedy: "download the aggregate from the server again",
    }
}

/// The noise the release carries, from its mechanism and relation.
pub(crate) fn release_noise(aggregate: &AggregateFile, path: &Path) -> Result<Noise, KeytoolError> {
    Ok(hetally_dp::Guarantee::for_release(
        &aggregate.measurement,
        &aggregate.dp,
        aggregate.relation,
        aggregate.trustee_noise.as_ref(),
    )
    .map_err(|e| uncalibrated(aggregate, path, e))?
    .noise)
}

/// Shows a decrypted release as `output` asks: intervals, clamping, the
/// table, JSON or CSV on `out` or in a file, and the plot; ends with
/// [`Outcome::Flagged`] if some values cannot come from valid reports.
pub(crate) fn present(
    output: &ReleaseOutput,
    aggregate: &AggregateFile,
    aggregate_path: &Path,
    decrypted: Decrypted,
    out: &mut dyn Write,
) -> Result<Outcome, KeytoolError> {
    let values = decrypted.values;
    let estimates = Estimates::new(aggregate, &values, output.confidence, output.clamp)
        .map_err(|e| uncalibrated(aggregate, aggregate_path, e))?;
    let release = Release {
        aggregate,
        estimates: &estimates,
        flags: &decrypted.flags,
    };
    if let Some(path) = &output.plot {
        let svg = plot::svg(&release).map_err(|reason| KeytoolError::Plot {
            path: path.display().to_string(),
            reason,
        })?;
        write_output(path, svg.as_bytes())?;
    }
    match &output.out {
        None => render::write(output.format, &release, out).map_err(KeytoolError::Output)?,
        Some(path) => {
            let mut bytes = Vec::new();
            render::write(output.format, &release, &mut bytes).map_err(KeytoolError::Output)?;
            write_output(path, &bytes)?;
            write!(
                out,
                "Wrote {} decrypted values to {}",
                values.len(),
                path.display()
            )
            .map_err(KeytoolError::Output)?;
            if let Some(plot) = &output.plot {
                write!(out, " and the plot to {}", plot.display()).map_err(KeytoolError::Output)?;
            }
            writeln!(out).map_err(KeytoolError::Output)?;
        }
    }
    if decrypted.flags.is_empty() {
        return Ok(Outcome::Done);
    }
    Ok(Outcome::Flagged(warning(
        aggregate,
        aggregate_path,
        &decrypted.flags,
        output.clamp,
    )))
}

#[cfg(test)]
mod tests {
    use hetally_dp::{DpMechanism, Rational};
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
            trustee_noise: None,
        }
    }

    fn flags(agg: &AggregateFile, values: &[i128]) -> Vec<Flag> {
        let noise = hetally_dp::Guarantee::for_release(
            &agg.measurement,
            &agg.dp,
            agg.relation,
            agg.trustee_noise.as_ref(),
        )
        .unwrap()
        .noise;
        range_flags(agg, values, &vec![false; values.len()], &noise)
    }

    #[test]
    fn noise_free_values_must_be_possible() {
        let h = aggregate("histogram:3", 10, DpMechanism::None);
        assert!(flags(&h, &[3, 3, 4]).is_empty());
        let f = flags(&h, &[3, 3, 5]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, "bucket_total");
        assert!(f[0].reason.contains("add up to 11"), "{f:?}");
        let f = flags(&h, &[-1, 6, 5]);
        assert_eq!((f[0].index, f[0].kind), (Some(0), "impossible_value"));
        assert!(f[0].reason.starts_with("is -1, outside 0..=10"), "{f:?}");

        let s = aggregate("sum:8", 4, DpMechanism::None);
        assert!(flags(&s, &[1020]).is_empty());
        assert_eq!(flags(&s, &[1021]).len(), 1);
        assert!(flags(&aggregate("count", 0, DpMechanism::None), &[0]).is_empty());
        // What the layout flagged already is not flagged again.
        let noise = Noise::None;
        assert!(range_flags(&s, &[5000], &[true], &noise).is_empty());
    }

    #[test]
    fn noisy_values_may_leave_the_range_by_the_noise_tail_only() {
        let noisy = aggregate(
            "histogram:3",
            10,
            DpMechanism::Gaussian {
                rho: Rational::new(1, 10),
            },
        );
        // Noise can push a bucket below 0 or the total off.
        assert!(flags(&noisy, &[-2, 7, 9]).is_empty());
        // But not by more than its 2^-64 tail bound.
        let f = flags(&noisy, &[-2, 7, 100_000]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].index, Some(2));
        assert!(f[0].reason.contains("plus noise"), "{f:?}");
        assert!(!flags(&noisy, &[-100_000, 7, 9]).is_empty());
    }

    #[test]
    fn the_warning_names_the_values_the_cause_and_clamping() {
        let h = aggregate("histogram:3", 1000, DpMechanism::None);
        let flags = vec![
            Flag {
                index: Some(1),
                decrypted: Some(-3795),
                place: Some((0, 1)),
                kind: "out_of_range",
                reason: "decodes to -3795, outside the ±2048 the layout keeps for sums and noise"
                    .into(),
            },
            Flag {
                index: Some(2),
                decrypted: Some(201),
                place: Some((0, 2)),
                kind: "adjacent",
                reason: "reads 201 but lies next to out-of-range bits, so it may be off".into(),
            },
        ];
        let text = warning(&h, Path::new("batch.htly"), &flags, false);
        assert!(
            text.starts_with(
                "batch.htly: the release holds what no batch of valid reports can; 2 values are \
                 not reliable:"
            ),
            "{text}"
        );
        assert!(
            text.contains("The other values are the exact sums"),
            "{text}"
        );
        assert!(text.contains("\n  bucket 1 (ciphertext 0, slot 1): decodes to -3795"));
        assert!(text.contains("--no-input-proofs"), "{text}");
        assert!(
            text.contains("--clamp would move them into 0..=1000"),
            "{text}"
        );
        let text = warning(&h, Path::new("batch.htly"), &flags, true);
        assert!(text.contains("--clamp moved them into 0..=1000"), "{text}");
    }
}
