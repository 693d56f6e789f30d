//! One misbehaving client in a task without input proofs does not make its
//! batch unreadable (issue 18): 999 honest reports and one whose plaintext
//! sets the sign bit of its slot go through the real server; the release
//! decrypts, the affected slots are flagged, the other values are exact,
//! and `hetally-keytool decrypt` exits with its own code (8), not the
//! corrupt-file code (4), which a damaged file still gets.

use std::process::Output;

use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::{Layout, Report, ReportId};
use hetally_schemes::paillier::{PaillierEncrypter, Pure};
use hetally_tests::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;

/// `decrypt` of the release: out-of-range values.
const EXIT_OUT_OF_RANGE: i32 = 8;
/// `decrypt` of a damaged file.
const EXIT_CORRUPT: i32 = 4;

fn keytool_decrypt(sk: &std::path::Path, agg: &std::path::Path, extra: &[&str]) -> Output {
    let (sk, agg) = (sk.display().to_string(), agg.display().to_string());
    let mut args = vec!["decrypt", "--key", sk.as_str(), agg.as_str()];
    args.extend_from_slice(extra);
    run("hetally-keytool", &args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_out_of_range_report_is_flagged_not_a_corrupt_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let reports = 1000u64;
    let (task, token) = create_task(&server, &pk, "histogram:4", reports, &["--no-input-proofs"]);
    let time = now();
    let start = time - time % 60;

    // 999 honest reports.
    let truth_path = dir.path().join("truth.json");
    run_ok(
        "hetally-client",
        &[
            "simulate",
            "--server",
            &server.url,
            "--task",
            &task,
            "--reports",
            &(reports - 1).to_string(),
            "--seed",
            "18",
            "--time",
            &time.to_string(),
            "--truth-out",
            &truth_path.display().to_string(),
            "--json",
        ],
    );
    let truth: Vec<i128> = read_json(&truth_path)["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| i128::from(v.as_i64().unwrap()))
        .collect();

    // One report whose plaintext sets the sign bit of bucket 1's slot, made
    // with the scheme's unchecked encryption and uploaded over HTTP: the
    // server cannot tell it from a valid one without input proofs.
    let client = connect_client(&server, &task).await;
    let definition = client.definition().clone();
    let Layout::Paillier { slot_bits: w } = definition.layout else {
        panic!("a Paillier task");
    };
    let encrypter = PaillierEncrypter::<Pure>::new(&definition).unwrap();
    let sign_bit = 1i128 << (w - 1);
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let payload = encrypter
        .encrypt_unchecked(&[0, sign_bit, 0, 0], &mut rng)
        .unwrap();
    let bad = Report {
        id: ReportId([18; 16]),
        time: start,
        payload,
    };
    let response = reqwest::Client::new()
        .put(format!("{}/tasks/{task}/reports", server.url))
        .header("content-type", REPORT_MEDIA_TYPE)
        .body(bad.to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "the server takes it");

    let agg = dir.path().join("batch.agg");
    collect(&server, &task, &token, start, 60, &agg);

    // JSON: every value, with the flagged slots.
    let out = keytool_decrypt(&sk, &agg, &["--format", "json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_OUT_OF_RANGE), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report_count"], reports);
    let values: Vec<i128> = json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| i128::from(v.as_i64().unwrap()))
        .collect();
    // Bucket 1 wrapped negative and borrowed one from bucket 2; buckets 0
    // and 3 are the honest sums, exactly.
    assert_eq!(values[0], truth[0]);
    assert_eq!(values[1], truth[1] - sign_bit);
    assert_eq!(values[2], truth[2] + 1);
    assert_eq!(values[3], truth[3]);
    let flagged = json["flagged"].as_array().unwrap();
    let summary: Vec<(Option<u64>, &str, Option<u64>)> = flagged
        .iter()
        .map(|f| {
            (
                f["index"].as_u64(),
                f["kind"].as_str().unwrap(),
                f["slot"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some(0), "adjacent", Some(0)),
            (Some(1), "out_of_range", Some(1)),
            (Some(2), "adjacent", Some(2)),
        ],
        "{json}"
    );
    assert_eq!(flagged[1]["ciphertext"], 0);
    assert_eq!(flagged[1]["label"], "bucket 1");
    assert_eq!(flagged[1]["decrypted"], values[1] as i64);
    // The warning names the values, the likely cause and --clamp.
    for needle in [
        "hetally-keytool: warning:",
        "3 values are not reliable",
        "bucket 1 (ciphertext 0, slot 1)",
        "--no-input-proofs",
        "not corrupt",
        "--clamp would move them into 0..=1000",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }

    // The table marks the flagged rows; --clamp still exits 8 and says
    // what it did to them.
    let out = keytool_decrypt(&sk, &agg, &["--clamp"]);
    assert_eq!(out.status.code(), Some(EXIT_OUT_OF_RANGE));
    let table = text(&out.stdout);
    assert!(
        table.contains("Flagged      3 values (marked !) are not reliable"),
        "{table}"
    );
    let marked: Vec<&str> = table.lines().filter(|l| l.ends_with("  !")).collect();
    assert_eq!(marked.len(), 3, "{table}");
    assert!(marked[1].starts_with("bucket 1"), "{table}");
    assert!(
        text(&out.stderr).contains("--clamp moved them into 0..=1000"),
        "{}",
        text(&out.stderr)
    );

    // A damaged file is still corrupt: exit 4 and its own message.
    let mut bytes = std::fs::read(&agg).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x10;
    let damaged = dir.path().join("damaged.agg");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = keytool_decrypt(&sk, &damaged, &["--format", "json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_CORRUPT), "{stderr}");
    assert!(stderr.contains("corrupt aggregate"), "{stderr}");
    assert!(stderr.contains("random bits"), "{stderr}");
    assert!(out.stdout.is_empty());
}
