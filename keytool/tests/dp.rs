//! The collector's DP tools as a user runs them: `hetally-keytool decrypt`
//! (intervals, `--confidence`, `--clamp`, `--plot`) and `dp-plan`, the real
//! binary on real files.
//!
//! Every aggregate here is made the way the service makes it: reports
//! encrypted with the task's encrypter under a real 2048-bit Paillier key,
//! checked and summed by its aggregator, and released with noise drawn by
//! `Noise::sample` and added under encryption by `DynAggregator::release`
//! (what `server/src/aggregator/release.rs` does), from seeded ChaCha20
//! generators so that every run is the same. The statistical tests check
//! what the binary prints against the true sums: the printed intervals
//! cover them as often as promised, and a planned epsilon delivers the
//! planned error. Run with `--nocapture` for the figures.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hetally_dp::{DpMechanism, Noise, Relation};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::roles::ErasedSum;
use hetally_protocol::{DynAggregator, Measurement, ReportContext, ReportId, TaskId};
use hetally_schemes::paillier::{PaillierDecrypter, SecretKey};
use hetally_schemes::{SecretKeyFile, TaskParams};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use tempfile::TempDir;

mod common;

use common::{assert_clean_failure, assert_success, keytool, p, Output};

// ---------------------------------------------------------------------------
// Running the binary

const EXIT_USAGE: i32 = 2;

// ---------------------------------------------------------------------------
// Keys and aggregates, made with the crypto crate as the service makes them

struct Keys {
    _dir: TempDir,
    sk_path: PathBuf,
    sk: SecretKeyFile,
}

/// The collector's key pair, from a fixed seed, with the secret key on disk.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let sk = SecretKeyFile::Paillier(PaillierDecrypter::new(
            SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let sk_path = dir.path().join("collector.sk");
        fs::write(&sk_path, sk.to_bytes()).unwrap();
        Keys {
            _dir: dir,
            sk_path,
            sk,
        }
    })
}

const BATCH_START: u64 = 1_714_521_600; // 2024-05-01T00:00:00Z
const MAX_BATCH_SIZE: u64 = 1 << 20;

/// A task's encrypted batch sum and the plain sums it holds.
struct Batch {
    measurement: Measurement,
    dp: DpMechanism,
    relation: Option<Relation>,
    backend: Arc<dyn DynAggregator>,
    sum: ErasedSum,
    reports: u64,
    truth: Vec<i128>,
}

/// `reports` random reports of a replace-one task, encrypted with the
/// task's backend, checked and summed by it.
fn batch(measurement: &str, dp: &str, reports: usize, rng: &mut ChaCha20Rng) -> Batch {
    batch_of(measurement, dp, Some(Relation::ReplaceOne), reports, rng)
}

/// [`batch`] for a task of `relation` (`None`: a task created before
/// relations were declared).
fn batch_of(
    measurement: &str,
    dp: &str,
    relation: Option<Relation>,
    reports: usize,
    rng: &mut ChaCha20Rng,
) -> Batch {
    let measurement: Measurement = measurement.parse().unwrap();
    let dp: DpMechanism = dp.parse().unwrap();
    let params = TaskParams {
        measurement,
        min_batch_size: 1,
        max_batch_size: Some(MAX_BATCH_SIZE),
        time_precision: 60,
        budget: (dp != DpMechanism::None).then(|| "1000".parse().unwrap()),
        dp: dp.clone(),
        input_proofs: false,
        relation,
        trustee_noise: None,
    };
    let (definition, _) = hetally_schemes::define_task(
        keys().sk.public_key().to_bytes(),
        params,
        MAX_BATCH_SIZE,
        rng,
    )
    .unwrap();
    let client = hetally_schemes::encrypter(&definition, None).unwrap();
    let backend = hetally_schemes::aggregator(&definition, None).unwrap();
    let task_id = TaskId([9; 32]);
    let mut truth = vec![0i128; measurement.len()];
    let mut stored = Vec::with_capacity(reports);
    for i in 0..reports {
        let values = measurement.random_value(rng);
        for (t, v) in truth.iter_mut().zip(&values) {
            *t += i128::from(*v);
        }
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let ctx = ReportContext {
            task_id: &task_id,
            report_id: &ReportId(id),
            time: BATCH_START + i as u64,
        };
        let payload = client.encrypt(&values, &ctx, rng).unwrap();
        stored.push(
            backend
                .check_to_stored(&[(&payload, ctx)])
                .pop()
                .unwrap()
                .unwrap(),
        );
    }
    let sum = backend.sum_stored(stored).unwrap();
    Batch {
        measurement,
        dp,
        relation,
        backend,
        sum,
        reports: reports as u64,
        truth,
    }
}

impl Batch {
    /// One release with fresh noise, as the server makes it: the aggregate
    /// file's bytes.
    fn release(&self, rng: &mut ChaCha20Rng) -> Vec<u8> {
        let noise = Noise::for_task(&self.measurement, &self.dp, self.relation).unwrap();
        let drawn = noise.sample(self.measurement.len(), rng).unwrap();
        let ciphertexts = self
            .backend
            .release(&self.sum, self.reports, &drawn, rng)
            .unwrap();
        AggregateFile {
            task_id: [9; 32],
            scheme: self.backend.scheme(),
            key_fingerprint: self.backend.key_fingerprint(),
            measurement: self.measurement,
            encoding: self.backend.encoding(),
            batch_start: BATCH_START,
            batch_duration: 3600,
            relation: self.relation,
            report_count: ReportCount::Exact(self.reports),
            dp: self.dp.clone(),
            ciphertexts,
            trustee_noise: None,
        }
        .to_bytes()
    }
}

/// Runs `decrypt --format json` on `aggregate` and parses the output.
fn decrypt_json(aggregate: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["decrypt", "--key", p(&keys().sk_path), "--format", "json"];
    args.extend_from_slice(extra);
    args.push(p(aggregate));
    let out = keytool(&args);
    assert_success(&out);
    serde_json::from_str(&out.stdout).unwrap()
}

fn ints(v: &Value) -> Vec<i128> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| i128::from(x.as_i64().unwrap()))
        .collect()
}

fn intervals(v: &Value) -> Vec<(i128, i128)> {
    v["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let pair = ints(pair);
            assert_eq!(pair.len(), 2);
            (pair[0], pair[1])
        })
        .collect()
}

/// A histogram:11 release under laplace:1 and replace-one (L1 sensitivity
/// 2, so scale 2, ±6 at 95%) of 40 reports, with its true sums.
fn laplace_release() -> &'static (TempDir, PathBuf, Vec<i128>) {
    static R: OnceLock<(TempDir, PathBuf, Vec<i128>)> = OnceLock::new();
    R.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let b = batch("histogram:11", "laplace:1", 40, &mut rng);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.htly");
        fs::write(&path, b.release(&mut rng)).unwrap();
        (dir, path, b.truth)
    })
}

// ---------------------------------------------------------------------------
// decrypt: intervals, confidence, clamping

#[test]
fn decrypt_shows_each_value_with_its_interval_in_every_format() {
    let (_dir, agg, truth) = laplace_release();
    let v = decrypt_json(agg, &[]);
    let values = ints(&v["values"]);
    assert_eq!(values.len(), 11);
    // The noise is real: some value differs from its true sum.
    assert_ne!(&values, truth);
    assert_eq!(v["dp"]["mechanism"], "laplace:1");
    assert_eq!(v["relation"], "replace-one");
    assert_eq!(v["guarantee"]["epsilon"], "1");
    assert_eq!(v["guarantee"]["l1_sensitivity"], "2");
    assert_eq!(v["guarantee"]["declared"], true);
    assert_eq!(v["dp"]["distribution"], "discrete_laplace");
    assert_eq!(v["dp"]["scale"], "2");
    assert_eq!(v["dp"]["confidence"], 0.95);
    assert_eq!(v["dp"]["half_width"], 6);
    assert_eq!(v["dp"]["exact"], false);
    assert_eq!(v["clamp"], Value::Null);
    let iv = intervals(&v);
    for (value, (low, high)) in values.iter().zip(&iv) {
        assert_eq!((*low, *high), (value - 6, value + 6));
    }

    // CSV: the same numbers.
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--format",
        "csv",
        p(agg),
    ]);
    assert_success(&out);
    let mut want = String::from("index,value,low,high\n");
    for (i, (value, (low, high))) in values.iter().zip(&iv).enumerate() {
        want += &format!("{i},{value},{low},{high}\n");
    }
    assert_eq!(out.stdout, want);

    // Table: a header line for the intervals, and a column.
    let out = keytool(["decrypt", "--key", p(&keys().sk_path), p(agg)]);
    assert_success(&out);
    for needle in [
        "Noise        laplace:1 (discrete Laplace noise on each value)",
        "Relation     replace-one (neighbouring batches have the same size",
        "Guarantee    pure 1-DP per release for replace-one neighbours: discrete Laplace noise of \
         scale 2 on each value, L1 sensitivity 2",
        "Scale        2 (standard deviation 2.799)",
        "Intervals    ±6 at 95% confidence: each contains the true sum with probability at least 95%",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} not in {}", out.stdout);
    }
    let header = out.stdout.lines().find(|l| l.starts_with("index")).unwrap();
    assert!(header.ends_with("value  95% interval"), "{header}");
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("bucket "))
        .collect();
    assert_eq!(rows.len(), 11);
    for (row, (value, (low, high))) in rows.iter().zip(values.iter().zip(&iv)) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let shown = format!("{} [{low}, {high}]", value);
        assert_eq!(
            cells[2..].join(" ").replace("[ ", "[").replace(",  ", ", "),
            shown,
            "{row}"
        );
    }
}

/// Aggregates of tasks created before relations were declared (version-1
/// files) still decrypt, and the guarantee printed is the one that holds:
/// their noise was calibrated for a histogram sensitivity of 1, but their
/// report counts are public, so a `laplace:1` histogram is 2-DP.
#[test]
fn decrypt_states_the_guarantee_that_holds_for_legacy_tasks() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let b = batch_of("histogram:4", "laplace:1", None, 30, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    let agg = dir.path().join("legacy.htly");
    let bytes = b.release(&mut rng);
    assert_eq!(bytes[4], 1, "a version-1 aggregate file");
    fs::write(&agg, bytes).unwrap();
    let v = decrypt_json(&agg, &[]);
    assert_eq!(v["relation"], "legacy");
    assert_eq!(v["dp"]["scale"], "1", "calibrated for L1 = 1");
    assert_eq!(v["guarantee"]["declared"], false);
    assert_eq!(v["guarantee"]["relation"], "replace-one");
    assert_eq!(v["guarantee"]["epsilon"], "2");
    assert_eq!(v["guarantee"]["holds"], "laplace:2");
    let out = keytool(["decrypt", "--key", p(&keys().sk_path), p(&agg)]);
    assert_success(&out);
    for needle in [
        "Relation     none declared",
        "Guarantee    pure 2-DP per release for replace-one neighbours",
        "predates declared relations: it states laplace:1",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} not in {}",
            out.stdout
        );
    }
    let out = keytool(["inspect", p(&agg)]);
    assert_success(&out);
    assert!(
        out.stdout.contains("Guarantee     2-DP (replace-one)"),
        "{}",
        out.stdout
    );
}

#[test]
fn decrypt_confidence_changes_the_width() {
    let (_dir, agg, _) = laplace_release();
    // Scale 2: P(|X| > k) = 2 q^(k+1) / (1 + q), q = exp(-1/2): k = 14 at
    // 99.9%, 3 at 80%.
    for (flag, want) in [("99.9%", 14), ("0.8", 3), ("95%", 6)] {
        let v = decrypt_json(agg, &["--confidence", flag]);
        assert_eq!(v["dp"]["half_width"], want, "{flag}");
    }
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--confidence",
        "99.9%",
        p(agg),
    ]);
    assert!(
        out.stdout.contains("±14 at 99.9% confidence"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("99.9% interval"), "{}", out.stdout);
    for bad in ["100%", "0", "95", "high"] {
        let out = keytool([
            "decrypt",
            "--key",
            p(&keys().sk_path),
            "--confidence",
            bad,
            p(agg),
        ]);
        assert_eq!(out.code, EXIT_USAGE, "{bad}: {}", out.stderr);
        assert!(out.stderr.contains("confidence"), "{bad}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
}

#[test]
fn decrypt_clamp_keeps_values_possible_and_says_so() {
    // 10 reports over 11 buckets: most true counts are 0 or 1, so noise of
    // scale 2 pushes several below 0.
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let b = batch("histogram:11", "laplace:1", 10, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    let agg = dir.path().join("small.htly");
    fs::write(&agg, b.release(&mut rng)).unwrap();

    let raw = decrypt_json(&agg, &[]);
    let raw_values = ints(&raw["values"]);
    assert!(raw_values.iter().any(|v| *v < 0), "{raw_values:?}");
    let v = decrypt_json(&agg, &["--clamp"]);
    let values = ints(&v["values"]);
    let changed = raw_values.iter().filter(|x| !(0..=10).contains(*x)).count();
    assert_eq!(
        v["clamp"],
        serde_json::json!({"low": 0, "high": 10, "values_changed": changed})
    );
    for ((raw, clamped), ((low, high), truth)) in raw_values
        .iter()
        .zip(&values)
        .zip(intervals(&v).iter().zip(&b.truth))
    {
        assert_eq!(*clamped, (*raw).clamp(0, 10));
        assert_eq!(
            (*low, *high),
            ((raw - 6).clamp(0, 10), (raw + 6).clamp(0, 10))
        );
        // Clamping never loses a covered true sum.
        if (raw - 6..=raw + 6).contains(truth) {
            assert!((*low..=*high).contains(truth));
        }
    }

    let out = keytool(["decrypt", "--key", p(&keys().sk_path), "--clamp", p(&agg)]);
    assert_success(&out);
    assert!(
        out.stdout.contains(&format!(
            "Clamped      to 0..=10; {changed} values changed (post-processing: the DP guarantee is unchanged)"
        )),
        "{}",
        out.stdout
    );
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--clamp",
        "--format",
        "csv",
        p(&agg),
    ]);
    assert_success(&out);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("index,value,low,high,clamped"));
    let flags: Vec<bool> = lines
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let want: Vec<bool> = raw_values.iter().map(|x| !(0..=10).contains(x)).collect();
    assert_eq!(flags, want);
}

#[test]
fn decrypt_without_dp_says_the_values_are_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let b = batch("sumvec:3:4", "none", 25, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    let agg = dir.path().join("exact.htly");
    fs::write(&agg, b.release(&mut rng)).unwrap();
    let v = decrypt_json(&agg, &["--clamp"]);
    assert_eq!(ints(&v["values"]), b.truth);
    assert_eq!(v["dp"]["exact"], true);
    assert_eq!(v["dp"]["distribution"], "none");
    assert_eq!(v["dp"]["half_width"], 0);
    let want: Vec<(i128, i128)> = b.truth.iter().map(|t| (*t, *t)).collect();
    assert_eq!(intervals(&v), want);
    assert_eq!(v["clamp"]["values_changed"], 0);
    let out = keytool(["decrypt", "--key", p(&keys().sk_path), p(&agg)]);
    assert_success(&out);
    assert!(out
        .stdout
        .contains("Noise        none (the values are exact sums)"));
    assert!(!out.stdout.contains("interval"), "{}", out.stdout);
}

#[test]
fn decrypt_of_a_mechanism_no_server_could_calibrate_is_refused() {
    // Noise of scale 2^62 / 1e-40 is beyond what any task accepts.
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let b = batch("sum:62", "none", 2, &mut rng);
    let mut file = AggregateFile::from_bytes(&b.release(&mut rng)).unwrap();
    file.dp = "laplace:1e-40".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agg = dir.path().join("odd.htly");
    fs::write(&agg, file.to_bytes()).unwrap();
    let out = keytool(["decrypt", "--key", p(&keys().sk_path), p(&agg)]);
    assert_clean_failure(
        &out,
        4,
        &[
            p(&agg),
            "cannot be calibrated for sum:62",
            "download the aggregate",
        ],
    );
}

// ---------------------------------------------------------------------------
// decrypt --plot

#[test]
fn decrypt_plot_draws_the_values_with_error_bars() {
    let (dir, agg, _) = laplace_release();
    let svg = dir.path().join("release.svg");
    let json = decrypt_json(agg, &["--plot", p(&svg)]);
    assert_eq!(ints(&json["values"]).len(), 11, "stdout is still the JSON");
    let doc = fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg"), "{}", &doc[..100]);
    for needle in [
        "histogram:11 · 40 reports · DP laplace:1 · 1-DP (replace-one)",
        &format!("task {}", json["task_id"].as_str().unwrap()),
        "whiskers: 95% intervals (±6)",
        "bucket",
    ] {
        assert!(doc.contains(needle), "{needle:?} not in the SVG");
    }

    // With --out, the confirmation names both files.
    let csv = dir.path().join("values.csv");
    let svg2 = dir.path().join("clamped.svg");
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--format",
        "csv",
        "--clamp",
        "--out",
        p(&csv),
        "--plot",
        p(&svg2),
        p(agg),
    ]);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!(
            "Wrote 11 decrypted values to {} and the plot to {}\n",
            p(&csv),
            p(&svg2)
        )
    );
    assert!(fs::read_to_string(&svg2)
        .unwrap()
        .contains("bars: values clamped to 0..=40"));

    // Never over an input, nor over --out.
    let before = fs::read(agg).unwrap();
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--plot",
        p(agg),
        p(agg),
    ]);
    assert_clean_failure(
        &out,
        EXIT_USAGE,
        &["--plot", p(agg), "choose another output file"],
    );
    assert_eq!(fs::read(agg).unwrap(), before);
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--out",
        p(&csv),
        "--plot",
        p(&csv),
        p(agg),
    ]);
    assert_clean_failure(&out, EXIT_USAGE, &["--out and --plot both name", p(&csv)]);
    // A plot into a missing directory is a write error naming the path.
    let missing = dir.path().join("no/such/dir/plot.svg");
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--plot",
        p(&missing),
        p(agg),
    ]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains(p(&missing)), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Interval coverage over seeded trials

/// Runs `trials` seeded releases of `histogram:11` under `dp` through the
/// binary; returns (trials whose bucket-0 interval covers the true sum,
/// covered intervals over all buckets, intervals in all, half-width).
fn coverage(dp: &str, trials: u64, seed: u64) -> (usize, usize, usize, u128) {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, mut all, mut total) = (0, 0, 0);
    let mut half_width = None;
    for trial in 0..trials {
        let mut rng = ChaCha20Rng::seed_from_u64(seed + trial);
        let b = batch("histogram:11", dp, 20, &mut rng);
        let path = dir.path().join(format!("trial-{trial}.htly"));
        fs::write(&path, b.release(&mut rng)).unwrap();
        let v = decrypt_json(&path, &[]);
        let k = v["dp"]["half_width"].as_u64().unwrap() as u128;
        assert_eq!(
            *half_width.get_or_insert(k),
            k,
            "one half-width per mechanism"
        );
        for (i, ((low, high), truth)) in intervals(&v).iter().zip(&b.truth).enumerate() {
            let covered = (*low..=*high).contains(truth);
            all += usize::from(covered);
            total += 1;
            if i == 0 {
                first += usize::from(covered);
            }
        }
        fs::remove_file(&path).unwrap();
    }
    (first, all, total, half_width.unwrap_or(0))
}

#[test]
fn printed_intervals_cover_the_true_value_in_200_seeded_trials() {
    for (dp, seed) in [("laplace:1", 10_000), ("gaussian:1/4", 20_000)] {
        let noise = Noise::for_task(
            &"histogram:11".parse().unwrap(),
            &dp.parse().unwrap(),
            Some(Relation::ReplaceOne),
        )
        .unwrap();
        let (first, all, total, k) = coverage(dp, 200, seed);
        let exact = 1.0 - noise.tail_probability(k);
        println!(
            "{dp}: ±{k} at 95% (exact coverage {exact:.4}); bucket 0 covered in {first}/200 trials \
             ({:.1}%); all buckets {all}/{total} ({:.2}%)",
            first as f64 / 2.0,
            all as f64 / total as f64 * 100.0
        );
        assert!((182..=198).contains(&first), "{dp}: {first}/200");
        // Pooled over every bucket: consistent with the exact coverage.
        let n = total as f64;
        let sd = (n * exact * (1.0 - exact)).sqrt();
        assert!(
            (all as f64 - n * exact).abs() < 4.0 * sd,
            "{dp}: {all}/{total} vs exact {exact}"
        );
    }
}

// ---------------------------------------------------------------------------
// dp-plan

fn dp_plan(args: &[&str]) -> Output {
    let mut all = vec!["dp-plan"];
    all.extend_from_slice(args);
    keytool(all)
}

#[test]
fn dp_plan_answers_in_text_and_json() {
    let args = [
        "--measurement",
        "histogram:11",
        "--reports",
        "1000",
        "--max-error",
        "5%",
        "--confidence",
        "95%",
    ];
    let out = dp_plan(&args);
    assert_success(&out);
    for needle in [
        "Measurement  histogram:11, 1000 reports per batch",
        "Target       ±50 at 95% confidence (5% of 1000, the largest possible value)",
        "Mechanism    laplace:0.119",
        "Guarantee    pure 0.119-DP per release for replace-one neighbours: discrete Laplace \
         noise of scale 2000/119 on each value, L1 sensitivity 2",
        "Noise        discrete Laplace, scale 2000/119 (≈ 16.81)",
        "Error        ±50 at 95% confidence (5% of 1000, the largest possible value): each released value is within ±50",
        "--dp laplace:0.119 --relation replace-one",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} not in {}", out.stdout);
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = dp_plan(&json_args);
    assert_success(&out);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["mechanism"], "laplace:0.119");
    assert_eq!(v["relation"], "replace-one");
    assert_eq!(v["l1_sensitivity"], "2");
    assert_eq!(v["parameter"], "epsilon");
    assert_eq!(v["value"], "0.119");
    assert_eq!(v["distribution"], "discrete_laplace");
    assert_eq!(v["scale"], "2000/119");
    assert_eq!(
        v["target"],
        serde_json::json!({"max_error": "5%", "absolute": 50})
    );
    assert_eq!(v["half_width"], 50);
    assert_eq!(v["full_scale"], 1000);
    assert_eq!(v["approx_dp"]["delta"], 0.0);

    json_args.extend(["--mechanism", "gaussian"]);
    let v: Value = serde_json::from_str(&dp_plan(&json_args).stdout).unwrap();
    assert_eq!(v["mechanism"], "gaussian:0.00151");
    assert_eq!(v["parameter"], "rho");
    assert!(v["sigma"].as_str().unwrap().starts_with("25.73"), "{v}");
    assert_eq!(v["approx_dp"]["delta"], 1e-6);
    assert!(v["half_width"].as_u64().unwrap() <= 50);
}

#[test]
fn dp_plan_reverse_gives_the_error_decrypt_prints() {
    // The release above is histogram:11 laplace:1: decrypt printed ±6.
    let out = dp_plan(&["--measurement", "histogram:11", "--epsilon", "1", "--json"]);
    assert_success(&out);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["half_width"], 6);
    assert_eq!(v["target"], Value::Null);
    assert_eq!(v["full_scale"], Value::Null);
    let out = dp_plan(&[
        "--measurement",
        "histogram:11",
        "--reports",
        "40",
        "--epsilon",
        "1",
    ]);
    assert_success(&out);
    assert!(
        out.stdout
            .contains("Error        ±6 at 95% confidence (15% of 40, the largest possible value)"),
        "{}",
        out.stdout
    );
    let out = dp_plan(&[
        "--measurement",
        "count",
        "--rho",
        "0.01",
        "--confidence",
        "0.95",
    ]);
    assert_success(&out);
    assert!(
        out.stdout.contains("Error        ±14 at 95%"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("implies ("), "{}", out.stdout);
}

#[test]
fn dp_plan_rejects_questions_it_cannot_answer() {
    let out = dp_plan(&["--measurement", "histogram:11", "--max-error", "5%"]);
    assert_clean_failure(&out, EXIT_USAGE, &["--reports N", "--max-error 50"]);
    let out = dp_plan(&[
        "--measurement",
        "count",
        "--rho",
        "0.1",
        "--mechanism",
        "laplace",
    ]);
    assert_clean_failure(&out, EXIT_USAGE, &["--rho", "drop --mechanism"]);
    let out = dp_plan(&["--measurement", "sum:62", "--epsilon", "1e-40"]);
    assert_clean_failure(&out, EXIT_USAGE, &["use a larger epsilon"]);
    // clap's own errors: missing or conflicting flags, bad values.
    for (args, needle) in [
        (vec!["--measurement", "count"], "--max-error"),
        (
            vec![
                "--measurement",
                "count",
                "--max-error",
                "5",
                "--epsilon",
                "1",
            ],
            "cannot be used with",
        ),
        (
            vec!["--measurement", "histogram", "--max-error", "5"],
            "unknown measurement type",
        ),
        (
            vec!["--measurement", "count", "--max-error", "five"],
            "absolute error such as 50",
        ),
        (
            vec!["--measurement", "count", "--epsilon", "0"],
            "greater than zero",
        ),
        (
            vec!["--measurement", "count", "--epsilon", "1", "--rho", "1"],
            "cannot be used with",
        ),
    ] {
        let out = dp_plan(&args);
        assert_eq!(out.code, EXIT_USAGE, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
}

#[test]
fn dp_plan_and_decrypt_help_explain_with_examples() {
    for command in ["dp-plan", "decrypt"] {
        let out = keytool([command, "--help"]);
        assert_success(&out);
        assert!(out.stdout.contains("Example"), "{command}: {}", out.stdout);
    }
    let out = keytool(["dp-plan", "--help"]);
    assert!(out.stdout.contains("--max-error 5%"));
    let out = keytool(["decrypt", "--help"]);
    for needle in ["--clamp", "--plot", "--confidence", "post-processing"] {
        assert!(out.stdout.contains(needle), "{needle}: {}", out.stdout);
    }
}

// ---------------------------------------------------------------------------
// dp-plan against decrypted error

/// Plans with `dp-plan --json`, releases `releases` aggregates of a
/// 1,000-report `histogram:11` batch at the planned parameter, decrypts
/// each with the binary and counts the values within the target error.
fn plan_then_measure(mechanism: &str, releases: u64, seed: u64) {
    let out = dp_plan(&[
        "--measurement",
        "histogram:11",
        "--reports",
        "1000",
        "--max-error",
        "5%",
        "--confidence",
        "95%",
        "--mechanism",
        mechanism,
        "--json",
    ]);
    assert_success(&out);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let planned = plan["mechanism"].as_str().unwrap().to_string();
    let target = plan["target"]["absolute"].as_u64().unwrap() as i128;
    let half_width = plan["half_width"].as_u64().unwrap();
    assert_eq!(target, 50);

    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let b = batch("histogram:11", &planned, 1000, &mut rng);
    let noise = Noise::for_task(&b.measurement, &b.dp, b.relation).unwrap();
    let exact = 1.0 - noise.tail_probability(target as u128);
    let dir = tempfile::tempdir().unwrap();
    let (mut within, mut total) = (0usize, 0usize);
    let mut errors = Vec::new();
    for r in 0..releases {
        let path = dir.path().join(format!("release-{r}.htly"));
        fs::write(&path, b.release(&mut rng)).unwrap();
        let v = decrypt_json(&path, &[]);
        // decrypt prints the interval the planner promised.
        assert_eq!(v["dp"]["half_width"].as_u64().unwrap(), half_width);
        for (value, truth) in ints(&v["values"]).iter().zip(&b.truth) {
            let error = (value - truth).abs();
            within += usize::from(error <= target);
            total += 1;
            errors.push(error);
        }
        fs::remove_file(&path).unwrap();
    }
    errors.sort_unstable();
    let p95 = errors[(errors.len() * 95).div_ceil(100) - 1];
    let observed = within as f64 / total as f64;
    let n = total as f64;
    println!(
        "dp-plan histogram:11, 1000 reports, ±5% (±{target}) at 95% → {planned} \
         (planned ±{half_width}, exact P(|X| ≤ {target}) = {exact:.4}); {releases} releases, \
         {total} decrypted values: {within} within ±{target} ({:.2}%), 95th percentile of \
         |error| {p95}",
        observed * 100.0
    );
    assert!(exact >= 0.95, "{planned}: exact coverage {exact}");
    // Consistent with the exact coverage (four standard deviations) ...
    let sd = (n * exact * (1.0 - exact)).sqrt();
    assert!(
        (within as f64 - n * exact).abs() < 4.0 * sd,
        "{planned}: {within}/{total} vs {exact}"
    );
    // ... and hence with the promise of at least 95%.
    assert!(
        observed >= 0.95 - 4.0 * (0.95 * 0.05 / n).sqrt(),
        "{planned}: {observed}"
    );
}

#[test]
fn planned_epsilon_delivers_the_planned_error_on_decrypted_releases() {
    plan_then_measure("laplace", 100, 40_000);
}

#[test]
fn planned_rho_delivers_the_planned_error_on_decrypted_releases() {
    plan_then_measure("gaussian", 100, 50_000);
}
