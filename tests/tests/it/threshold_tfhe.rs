//! TFHE threshold decryption over real HTTP (issue 21): an N-of-N key made
//! by `hetally-keytool keygen --scheme tfhe --trustees 3` (least smudging
//! lambda 16), `histogram:16` tasks under it on a real server, 300 reports
//! from `hetally-client simulate`, releases collected from the server, a
//! partial decryption by each trustee and `combine`:
//!
//! * without DP the histogram comes out exactly;
//! * with `gaussian:1/2` it comes out with the server's noise, within the
//!   noise's tail bound and with intervals;
//! * two partials decrypt nothing and name the missing trustee; a tampered
//!   partial, a partial of another release and a share of another key are
//!   refused and named.

use std::path::{Path, PathBuf};

use hetally_tests::*;
use serde_json::Value;

use super::threshold::{check_committee, combine, keytool, partial, path, text};

const REPORTS: u64 = 300;
const TRUSTEES: u16 = 3;

/// `keygen --scheme tfhe --trustees 3 --out DIR`; its stdout.
fn keygen_committee(dir: &Path) -> String {
    let out = keytool(&[
        "keygen",
        "--scheme",
        "tfhe",
        "--trustees",
        &TRUSTEES.to_string(),
        "--out",
        &path(dir),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every trustee's partial of `release`, in `dir`.
fn all_partials(committee: &Path, release: &Path, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (1..=TRUSTEES)
        .map(|i| partial(committee, i, release, dir))
        .collect()
}

fn values_of(json: &Value) -> Vec<i64> {
    json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[test]
fn three_trustees_decrypt_tfhe_releases_exactly_and_with_noise() {
    let dir = tempfile::tempdir().unwrap();
    let committee = dir.path().join("committee");
    let said = keygen_committee(&committee);
    assert!(said.contains("below 2^-16 + 2^-40"), "{said}");
    let pk = committee.join("collector.pk");
    let inspected = check_committee(&committee, TRUSTEES);
    assert_eq!(inspected["scheme"], "tfhe", "{inspected}");
    assert_eq!(inspected["trustees"], 3, "{inspected}");
    assert_eq!(inspected["threshold"], 3, "{inspected}");
    let share_text = run_ok(
        "hetally-keytool",
        &["inspect", &path(&committee.join("trustee-2.share"))],
    );
    assert!(
        share_text.contains("2 of 3 (all 3 decrypt together)"),
        "{share_text}"
    );

    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    // Two past minutes: their batches can be collected at once.
    let time = now() - now() % 60 - 120;

    // Without DP: the exact histogram.
    let (task, token_file) = create_task(
        &server,
        &pk,
        "histogram:16",
        100,
        &["--no-input-proofs", "--max-batch-size", "300"],
    );
    let definition = task_json(&server, &task);
    assert_eq!(
        definition["delta_log2"], 52,
        "room for smudging (2^31 under a plain key): {definition}"
    );
    let truth_path = dir.path().join("truth.json");
    simulate(&server, &task, REPORTS, 41, time, Some(&truth_path));
    let truth = read_json(&truth_path);
    let release = dir.path().join("release.htly");
    collect(&server, &task, &token_file, time, 60, &release);
    let parts = all_partials(&committee, &release, &dir.path().join("exact"));
    // A partial says how well it hides the release's noise: lambda 16 at
    // 301 encryptions and Delta 2^52.
    let out = keytool(&[
        "partial-decrypt",
        "--share",
        &path(&committee.join("trustee-1.share")),
        &path(&release),
        "--out",
        &path(&dir.path().join("again.part")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("statistical distance below 2^-16 + 2^-40"),
        "{}",
        text(&out)
    );
    let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let out = combine(&release, &refs);
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report_count"], REPORTS, "{json}");
    assert_eq!(json["values"], truth["values"], "{json}");
    assert_eq!(values_of(&json).iter().sum::<i64>(), REPORTS as i64);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trustees 1, 2, 3"), "{stderr}");
    // In any order.
    let out = combine(&release, &[refs[2], refs[0], refs[1]]);
    assert!(out.status.success(), "{}", text(&out));

    // Two partials decrypt nothing (exit code 9), and say who is missing.
    let out = combine(&release, &refs[..2]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    assert!(text(&out).contains("trustee(s) 3 of 3"), "{}", text(&out));
    // One trustee twice is not two trustees.
    let out = combine(&release, &[refs[0], refs[1], refs[1]]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(text(&out).contains("trustee 2"), "{}", text(&out));

    // A tampered partial: one byte of trustee 2's values changed.
    let mut tampered = std::fs::read(&parts[1]).unwrap();
    let at = tampered.len() - 32 - 8;
    tampered[at] ^= 1;
    let tampered_path = dir.path().join("tampered2.part");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let out = combine(&release, &[refs[0], &tampered_path, refs[2]]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("tampered2.part") || text(&out).contains("trustee 2"),
        "{}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());

    // A share of another key is refused before it decrypts anything.
    let other_committee = dir.path().join("other-committee");
    keygen_committee(&other_committee);
    let out = keytool(&[
        "partial-decrypt",
        "--share",
        &path(&other_committee.join("trustee-1.share")),
        &path(&release),
        "--out",
        &path(&dir.path().join("foreign.part")),
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("trustee 1's share"), "{}", text(&out));
    assert!(!dir.path().join("foreign.part").exists());

    // With DP: the server's noise, inside its tail bound, with intervals.
    let (noisy_task, noisy_token) = create_task(
        &server,
        &pk,
        "histogram:16",
        100,
        &[
            "--no-input-proofs",
            "--max-batch-size",
            "300",
            "--dp",
            "gaussian:1/2",
            "--budget",
            "10",
        ],
    );
    let later = time + 60;
    let noisy_truth_path = dir.path().join("noisy-truth.json");
    simulate(
        &server,
        &noisy_task,
        REPORTS,
        42,
        later,
        Some(&noisy_truth_path),
    );
    let noisy_truth = values_of(&read_json(&noisy_truth_path));
    let noisy = dir.path().join("noisy.htly");
    collect(&server, &noisy_task, &noisy_token, later, 60, &noisy);
    let parts = all_partials(&committee, &noisy, &dir.path().join("noisy"));
    let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let out = combine(&noisy, &refs);
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dp"]["distribution"], "discrete_gaussian", "{json}");
    // sigma^2 = L2^2 / (2 rho) = 2 for a histogram under replace-one; the
    // tail bound at 2^-64 over 16 values is 13 ((t + 1)^2 >= 2 * 2 * 69 ln 2
    // = 191.3).
    let noise: Vec<i64> = values_of(&json)
        .iter()
        .zip(&noisy_truth)
        .map(|(v, t)| v - t)
        .collect();
    assert!(noise.iter().all(|n| n.abs() <= 13), "{noise:?}");
    assert!(noise.iter().any(|n| *n != 0), "no noise at all: {noise:?}");
    let intervals = json["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 16, "{json}");
    let covered = intervals
        .iter()
        .zip(&noisy_truth)
        .filter(|(iv, t)| iv[0].as_i64().unwrap() <= **t && **t <= iv[1].as_i64().unwrap())
        .count();
    assert!(covered >= 12, "95% intervals cover {covered} of 16: {json}");

    // A partial of the first release does not decrypt the second.
    let out = combine(
        &noisy,
        &[refs[0], &dir.path().join("exact/2.part"), refs[2]],
    );
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(text(&out).contains("trustee 2"), "{}", text(&out));
}
