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

pub(super) fn keytool(args: &[&str]) -> Output {
    run("hetally-keytool", args)
}

pub(super) fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(super) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `partial-decrypt` of `release` by `trustees` (files in `dir`), then
/// `combine --format json`, which must succeed; its output, parsed.
fn decrypt_by(committee: &Path, trustees: &[u16], release: &Path, dir: &Path) -> Value {
    let parts: Vec<PathBuf> = trustees
        .iter()
        .map(|&i| partial(committee, i, release, dir))
        .collect();
    let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    let out = combine(release, &refs);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `keygen --scheme paillier --trustees N --threshold T --out DIR`.
fn keygen_committee(dir: &Path, trustees: u16, threshold: u16) {
    let (n, t) = (trustees.to_string(), threshold.to_string());
    let out = keytool(&[
        "keygen",
        "--scheme",
        "paillier",
        "--trustees",
        &n,
        "--threshold",
        &t,
        "--out",
        &path(dir),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Checks what `keygen --trustees` wrote into `committee`: no whole key, a
/// share of mode 0600 for each of `trustees`; returns `inspect --json` of
/// its public key.
pub(super) fn check_committee(committee: &Path, trustees: u16) -> Value {
    assert!(!committee.join("collector.sk").exists(), "no whole key");
    for i in 1..=trustees {
        use std::os::unix::fs::PermissionsExt;
        let share = committee.join(format!("trustee-{i}.share"));
        let mode = std::fs::metadata(&share).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", share.display());
    }
    let pk = committee.join("collector.pk");
    serde_json::from_str(&run_ok(
        "hetally-keytool",
        &["inspect", "--json", &path(&pk)],
    ))
    .unwrap()
}

/// `partial-decrypt` of `release` with trustee `i`'s share, into `dir/I.part`.
pub(super) fn partial(committee: &Path, i: u16, release: &Path, dir: &Path) -> PathBuf {
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
pub(super) fn combine(release: &Path, parts: &[&Path]) -> Output {
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
    keygen_committee(&committee, 5, 3);
    let pk = committee.join("collector.pk");
    let inspected = check_committee(&committee, 5);
    assert_eq!(inspected["trustees"], 5, "{inspected}");
    assert_eq!(inspected["threshold"], 3, "{inspected}");

    let server = ServerProcess::start(&dir.path().join("data")).unwrap();
    let (task, token_file) = create_task(&server, &pk, "histogram:16", 100, &[]);
    // A past minute, and the one after it is past too: their batches can
    // be collected at once, without waiting for the current minute to end.
    let time = now() - now() % 60 - 120;
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

/// A threshold key, a server and a task whose trustees draw its noise
/// (`gaussian:1/8`, budget 10), with the trustees' tokens in files.
struct TrusteeNoiseTask {
    committee: PathBuf,
    server: ServerProcess,
    task: String,
    token_file: PathBuf,
    tokens: PathBuf,
}

impl TrusteeNoiseTask {
    fn start(
        dir: &Path,
        (trustees, threshold): (u16, u16),
        measurement: &str,
        min_batch: u64,
        trustee_noise: &str,
        extra: &[&str],
    ) -> Self {
        let committee = dir.join("committee");
        keygen_committee(&committee, trustees, threshold);
        let server = ServerProcess::start(&dir.join("data")).unwrap();
        let tokens = dir.join("tokens");
        let tokens_arg = path(&tokens);
        let mut args = vec![
            "--dp",
            "gaussian:1/8",
            "--budget",
            "10",
            "--trustee-noise",
            trustee_noise,
            "--trustee-tokens-out",
            &tokens_arg,
        ];
        args.extend_from_slice(extra);
        let (task, token_file) = create_task(
            &server,
            &committee.join("collector.pk"),
            measurement,
            min_batch,
            &args,
        );
        TrusteeNoiseTask {
            committee,
            server,
            task,
            token_file,
            tokens,
        }
    }
}

/// A raw request to the noise route.
fn noise_request(
    http: &reqwest::Client,
    server: &ServerProcess,
    task: &str,
    start: u64,
) -> reqwest::RequestBuilder {
    http.put(format!(
        "{}/tasks/{task}/releases/{start}/noise",
        server.url
    ))
}

/// The problem type's short name of an answer's body.
async fn problem_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let kind = body["type"]
        .as_str()
        .unwrap_or("-")
        .trim_start_matches("urn:hetally:error:")
        .to_string();
    (status, kind)
}

/// `hetally-client contribute-noise` as trustee `trustee` with the token in
/// `token_file`.
fn contribute(
    server: &ServerProcess,
    task: &str,
    start: u64,
    trustee: u16,
    token_file: &Path,
) -> Output {
    run(
        "hetally-client",
        &[
            "contribute-noise",
            "--server",
            &server.url,
            "--task",
            task,
            "--start",
            &start.to_string(),
            "--trustee",
            &trustee.to_string(),
            "--token-file",
            &path(token_file),
        ],
    )
}

/// Issue 21, distributed noise, over real HTTP: a 3-of-5 key, a
/// `histogram:16` task with Gaussian noise drawn by 3 trustees (each share
/// carrying the whole variance: honest 1), 1,000 proven reports. The
/// collector's request claims the batch and waits (202); trustees 1, 3 and
/// 5 contribute with their own tokens; the release then carries the sum of
/// their shares, and `combine` prints the noisy histogram with intervals.
/// Refused on the way: the collector's token and no token as a trustee's,
/// another trustee's token, another media type, an oversized body, a
/// contribution for a batch nobody asked for, a second different
/// contribution, a fourth one. The server never drew noise: once released,
/// it keeps neither the noise-free sum nor the encrypted shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trustees_draw_the_noise_and_the_server_never_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let TrusteeNoiseTask {
        committee,
        server,
        task,
        token_file,
        tokens,
    } = TrusteeNoiseTask::start(dir.path(), (5, 3), "histogram:16", 100, "3", &[]);
    let token = |i: u16| tokens.join(format!("trustee-{i}.token"));
    for i in 1..=5 {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(token(i)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "trustee {i}'s token file");
    }
    let info = task_json(&server, &task);
    let guarantee = info["guarantee"].as_str().unwrap();
    assert!(
        guarantee.contains("assuming at least 1 of the 3 trustees"),
        "{guarantee}"
    );

    // A past minute, and the one after it is past too: their batches can
    // be collected at once, without waiting for the current minute to end.
    let time = now() - now() % 60 - 120;
    let truth_path = dir.path().join("truth.json");
    simulate(&server, &task, REPORTS, 31, time, Some(&truth_path));
    let truth = read_json(&truth_path);
    let release = dir.path().join("release.htly");
    let out = try_collect(&server, &task, &token_file, time, 60, &release);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("0 of 3"), "{}", text(&out));
    assert!(!release.exists());

    // The same over raw HTTP: 202 with the release's progress.
    let http = reqwest::Client::new();
    let collector = std::fs::read_to_string(&token_file).unwrap();
    let resp = http
        .post(format!("{}/tasks/{task}/releases", server.url))
        .bearer_auth(collector.trim())
        .json(&serde_json::json!({"start": time, "duration": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert!(resp.headers().get("retry-after").is_some());
    let waiting: hetally_protocol::api::AwaitingNoise = resp.json().await.unwrap();
    assert_eq!((waiting.contributions, waiting.needed), (0, 3));

    // Refusals before any share is stored.
    let media = hetally_protocol::report::NOISE_CONTRIBUTION_MEDIA_TYPE;
    let trustee1 = std::fs::read_to_string(token(1)).unwrap();
    let body = vec![0u8; 64];
    let cases = [
        (
            noise_request(&http, &server, &task, time)
                .bearer_auth(collector.trim())
                .header("content-type", media)
                .body(body.clone()),
            (403, "wrongToken"),
        ),
        (
            noise_request(&http, &server, &task, time)
                .header("content-type", media)
                .body(body.clone()),
            (401, "missingToken"),
        ),
        (
            noise_request(&http, &server, &task, time)
                .bearer_auth(trustee1.trim())
                .header("content-type", "application/octet-stream")
                .body(body.clone()),
            (415, "unsupportedMediaType"),
        ),
        (
            noise_request(&http, &server, &task, time)
                .bearer_auth(trustee1.trim())
                .header("content-type", media)
                .body(vec![0u8; 1 << 20]),
            (413, "payloadTooLarge"),
        ),
        (
            noise_request(&http, &server, &task, time)
                .bearer_auth(trustee1.trim())
                .header("content-type", media)
                .body(body.clone()),
            (400, "badRequest"),
        ),
    ];
    for (request, expected) in cases {
        let (status, kind) = problem_of(request.send().await.unwrap()).await;
        assert_eq!((status, kind.as_str()), expected);
    }
    // Trustee 2's token, claiming to be trustee 1.
    let out = contribute(&server, &task, time, 1, &token(2));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("token is trustee 2's"),
        "{}",
        text(&out)
    );
    // A batch nobody asked to release.
    let out = contribute(&server, &task, time + 60, 1, &token(1));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("notFound") || text(&out).contains("no release"),
        "{}",
        text(&out)
    );

    // Trustees 1, 3 and 5 contribute.
    for (n, i) in [1u16, 3, 5].into_iter().enumerate() {
        let out = contribute(&server, &task, time, i, &token(i));
        assert!(out.status.success(), "{}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("stored") && said.contains(&format!("{} of the 3", n + 1)),
            "{said}"
        );
    }
    // Trustee 1 again (fresh shares, so a different file), and trustee 2.
    for i in [1u16, 2] {
        let out = contribute(&server, &task, time, i, &token(i));
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        assert!(text(&out).contains("(409)"), "{}", text(&out));
    }

    // Three stored and two refused, as the operator's metrics count them
    // (the 404 of the unclaimed batch is a refusal too).
    let admin = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let scrape = scrape_metrics(&server, admin.trim()).await;
    let sample = |outcome: &str| {
        scrape
            .lines()
            .find(|l| {
                l.starts_with("hetally_noise_contributions_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(sample("stored"), Some(3.0), "{scrape}");
    assert_eq!(sample("refused"), Some(3.0), "{scrape}");

    // The collector's next request makes the release.
    collect(&server, &task, &token_file, time, 60, &release);
    let log = collector_json(&server, "releases", &task, &token_file);
    let row = &log["releases"][0];
    assert_eq!(row["state"], "done", "{log}");
    let who: Vec<u64> = row["noise_contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["trustee"].as_u64().unwrap())
        .collect();
    assert_eq!(who, [1, 3, 5], "{log}");

    // The server keeps neither the noise-free sum nor the shares.
    if !use_postgres() {
        let db = server.data_dir.join("hetally.db");
        let count = |sql: &str| sqlite_i64(&db, sql);
        assert_eq!(count("SELECT COUNT(*) FROM release_sums"), 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM noise_contributions WHERE contribution IS NOT NULL"),
            0
        );
        assert_eq!(count("SELECT COUNT(*) FROM noise_contributions"), 3);
    }

    // Three trustees decrypt: the noisy histogram, with intervals.
    let json = decrypt_by(&committee, &[2, 3, 4], &release, dir.path());
    assert_eq!(json["report_count"], REPORTS, "{json}");
    assert_eq!(
        json["dp"]["distribution"], "summed_discrete_gaussian",
        "{json}"
    );
    assert!(
        json["guarantee"]["text"]
            .as_str()
            .unwrap()
            .contains("at least 1 of the 3 trustees"),
        "{json}"
    );
    let values: Vec<i64> = json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let exact: Vec<i64> = truth["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    // Three shares of sigma^2 = L2^2 / (2 rho) / honest = 2 / (1/4) = 8
    // each: the sum has variance 24, and its tail bound at 2^-64 for 16
    // values is 47 ((t+1)^2 >= 2 * 24 * 69 ln 2 = 2295.7).
    let noise: Vec<i64> = values.iter().zip(&exact).map(|(v, t)| v - t).collect();
    assert!(noise.iter().all(|n| n.abs() <= 47), "{noise:?}");
    assert!(noise.iter().any(|n| *n != 0), "no noise at all: {noise:?}");
    let intervals = json["intervals"].as_array().unwrap();
    let covered = intervals
        .iter()
        .zip(&exact)
        .filter(|(iv, t)| iv[0].as_i64().unwrap() <= **t && **t <= iv[1].as_i64().unwrap())
        .count();
    assert!(covered >= 12, "95% intervals cover {covered} of 16: {json}");

    // The budget was charged rho (honest 1: no summation term).
    let status = collector_json(&server, "status", &task, &token_file);
    assert_eq!(status["budget"]["spent"], "0.125", "{status}");
}

/// The Pearson statistic's critical value at significance `p = 0.001`
/// (Wilson–Hilferty: the cube root of a chi-square over its degrees of
/// freedom is nearly normal; z = 3.0902 for 0.001), to within a fraction
/// of a percent at the degrees of freedom used here.
fn chi_square_critical_0_001(dof: usize) -> f64 {
    let k = dof as f64;
    let z = 3.0902;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// The noise statistics through the real path: six releases of a
/// `histogram:1024` task (one report each) whose noise three trustees draw
/// with `contribute-noise` (3/3: each share a third of the variance), each
/// collected over HTTP, partially decrypted by three trustees and combined.
/// The 6,144 released values minus the true ones are the summed shares:
/// they must fit the analysed distribution (the sum of three discrete
/// Gaussians, convolved exactly) by Pearson's test, and not a single
/// share's distribution nor the task's one discrete Gaussian.
#[test]
fn summed_trustee_noise_through_the_server_fits_the_analysed_distribution() {
    use hetally_dp::stats::chi_square;
    use hetally_dp::{DpMechanism, Noise, Relation, TrusteeNoise};

    let dir = tempfile::tempdir().unwrap();
    let TrusteeNoiseTask {
        committee,
        server,
        task,
        token_file,
        tokens,
    } = TrusteeNoiseTask::start(
        dir.path(),
        (3, 3),
        "histogram:1024",
        1,
        "3/3",
        &["--no-input-proofs"],
    );
    let base = now() - now() % 60 - 600;
    let mut samples: Vec<i128> = Vec::new();
    for round in 0..6u64 {
        let time = base + 60 * round;
        let truth_path = dir.path().join(format!("truth-{round}.json"));
        simulate(&server, &task, 1, 40 + round, time, Some(&truth_path));
        let release = dir.path().join(format!("release-{round}.htly"));
        let collect = || try_collect(&server, &task, &token_file, time, 60, &release);
        assert_eq!(collect().status.code(), Some(6));
        for i in 1..=3u16 {
            let token = tokens.join(format!("trustee-{i}.token"));
            let out = contribute(&server, &task, time, i, &token);
            assert!(out.status.success(), "{}", text(&out));
        }
        let out = collect();
        assert!(out.status.success(), "{}", text(&out));
        let round_dir = dir.path().join(format!("parts-{round}"));
        std::fs::create_dir(&round_dir).unwrap();
        let json = decrypt_by(&committee, &[1, 2, 3], &release, &round_dir);
        let truth = read_json(&truth_path);
        for (v, t) in json["values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(truth["values"].as_array().unwrap())
        {
            samples.push(i128::from(v.as_i64().unwrap() - t.as_i64().unwrap()));
        }
    }
    assert_eq!(samples.len(), 6 * 1024);

    let m: hetally_protocol::Measurement = "histogram:1024".parse().unwrap();
    let dp: DpMechanism = "gaussian:1/8".parse().unwrap();
    let rep = Some(Relation::ReplaceOne);
    let trustees = TrusteeNoise {
        contributors: 3,
        honest: 3,
    };
    let summed = Noise::for_release(&m, &dp, rep, Some(&trustees)).unwrap();
    let fit = chi_square(&summed, &samples).unwrap();
    let critical = chi_square_critical_0_001(fit.degrees_of_freedom);
    println!(
        "summed trustee noise ({summed}): chi-square {:.1} over {} degrees of freedom \
         (critical {critical:.1} at 0.001)",
        fit.statistic, fit.degrees_of_freedom
    );
    assert!(fit.statistic < critical, "{fit:?}");
    // The test can tell: one share alone, and the task's single Gaussian
    // (variance 8, a third of... no: the same variance, but a share is
    // narrower), are rejected.
    let share = summed.share().unwrap();
    let wrong = chi_square(&share, &samples).unwrap();
    assert!(
        wrong.statistic > 10.0 * chi_square_critical_0_001(wrong.degrees_of_freedom),
        "one share's distribution fits too: {wrong:?}"
    );
}
