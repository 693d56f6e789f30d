//! Threshold decryption over real HTTP (issue 21): a 3-of-5 Paillier key
//! made by `hetally-keytool keygen --trustees 5 --threshold 3`, a
//! `histogram:16` task with input proofs created with its public key, 1,000
//! proven reports from `hetally-client simulate`, a release collected from
//! the server, partial decryptions by three trustees, and `combine`, which
//! prints exactly the true histogram. And the refusals: two partials decrypt
//! nothing; a partial made with another trustee's share is rejected and its
//! trustee named; a tampered partial is rejected and named; a partial of
//! another release is rejected.

use std::path::{Path, PathBuf};
use std::process::Output;

use hetally_tests::*;
use serde_json::Value;

const REPORTS: u64 = 1000;

fn keytool(args: &[&str]) -> Output {
    run("hetally-keytool", args)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `partial-decrypt` of `release` with trustee `i`'s share, into `dir/I.part`.
fn partial(committee: &Path, i: u16, release: &Path, dir: &Path) -> PathBuf {
    let part = dir.join(format!("{i}.part"));
    let out = keytool(&[
        "partial-decrypt",
        "--share",
        &path(&committee.join(format!("trustee-{i}.share"))),
        &path(release),
        "--out",
        &path(&part),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    part
}

/// `combine --format json` of `release` with `parts`.
fn combine(release: &Path, parts: &[&Path]) -> Output {
    let mut args = vec![
        "combine".to_string(),
        "--format".into(),
        "json".into(),
        path(release),
    ];
    args.extend(parts.iter().map(|p| path(p)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    keytool(&args)
}

#[test]
fn three_of_five_trustees_decrypt_a_proven_histogram_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let committee = dir.path().join("committee");
    let out = keytool(&[
        "keygen",
        "--scheme",
        "paillier",
        "--trustees",
        "5",
        "--threshold",
        "3",
        "--out",
        &path(&committee),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let pk = committee.join("collector.pk");
    assert!(!committee.join("collector.sk").exists(), "no whole key");
    for i in 1..=5 {
        use std::os::unix::fs::PermissionsExt;
        let share = committee.join(format!("trustee-{i}.share"));
        let mode = std::fs::metadata(&share).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", share.display());
    }
    let inspected: Value = serde_json::from_str(&run_ok(
        "hetally-keytool",
        &["inspect", "--json", &path(&pk)],
    ))
    .unwrap();
    assert_eq!(inspected["trustees"], 5, "{inspected}");
    assert_eq!(inspected["threshold"], 3, "{inspected}");

    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token_file) = create_task(&server, &pk, "histogram:16", 100, &[]);
    let time = now() - now() % 60;
    let truth_path = dir.path().join("truth.json");
    simulate(&server, &task, REPORTS, 21, time, Some(&truth_path));
    let release = dir.path().join("release.htly");
    collect(&server, &task, &token_file, time, 60, &release);
    let truth = read_json(&truth_path);

    // Trustees 1, 3 and 5 decrypt; combine prints the exact histogram.
    let parts: Vec<PathBuf> = [1, 3, 5]
        .iter()
        .map(|&i| partial(&committee, i, &release, dir.path()))
        .collect();
    let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let out = combine(&release, &refs);
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report_count"], REPORTS, "{json}");
    assert_eq!(json["values"], truth["values"], "{json}");
    assert_eq!(json["values"].as_array().unwrap().len(), 16);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trustees 1, 3, 5"), "{stderr}");

    // Any other three do too (2, 4, 5), and four are fine.
    let more: Vec<PathBuf> = [2, 4]
        .iter()
        .map(|&i| partial(&committee, i, &release, dir.path()))
        .collect();
    let out = combine(&release, &[&more[0], &more[1], &parts[2]]);
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["values"], truth["values"]);

    // Two partials decrypt nothing (exit code 9).
    let out = combine(&release, &[&parts[0], &parts[1]]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());

    // A partial made with the wrong share: trustee 2's partial presented
    // as trustee 4's (the index follows the carried key, whose body is the
    // public key file less its 7-byte header), as a trustee who picked up
    // another's share file would send it.
    let pk_len = std::fs::read(&pk).unwrap().len();
    let mut forged = std::fs::read(&more[0]).unwrap();
    assert_eq!(&forged[pk_len..pk_len + 2], &2u16.to_be_bytes());
    forged[pk_len..pk_len + 2].copy_from_slice(&4u16.to_be_bytes());
    let wrong = dir.path().join("wrong4.part");
    std::fs::write(&wrong, &forged).unwrap();
    let out = combine(&release, &[&parts[0], &wrong, &parts[1]]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trustee 4"), "{stderr}");
    // With a third valid partial the release still decrypts, and the bad
    // one is named.
    let out = combine(&release, &[&parts[0], &wrong, &parts[1], &parts[2]]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rejected trustee 4") && stderr.contains("wrong4.part"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["values"], truth["values"]);

    // A tampered partial: one byte of trustee 3's first value changed.
    let mut tampered = std::fs::read(&parts[1]).unwrap();
    let last = tampered.len() - 1;
    tampered[last - 700] ^= 1;
    let tampered_path = dir.path().join("tampered3.part");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let out = combine(&release, &[&parts[0], &tampered_path, &parts[2]]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("trustee 3") || all.contains("tampered3.part"),
        "{all}"
    );

    // A partial of another release: the same batch collected again as a
    // different file is the same bytes, so make another release instead.
    let later = time + 60;
    simulate(&server, &task, 100, 22, later, None);
    let other = dir.path().join("other.htly");
    collect(&server, &task, &token_file, later, 60, &other);
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other_part = partial(&committee, 2, &other, &other_dir);
    let out = combine(&release, &[&parts[0], &other_part, &parts[2]]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trustee 2"));
}
