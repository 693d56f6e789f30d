//! Several replicas on one PostgreSQL database: uploads spread over them,
//! aggregation jobs survive a replica killed with `kill -9`, and racing
//! collections produce one release with the budget spent once. These tests
//! always use PostgreSQL (HETALLY_TEST_POSTGRES_URL, default the local
//! server) and fail if it is unreachable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hetally_tests::*;
use serde_json::{json, Value};

struct Cluster {
    _dir: tempfile::TempDir,
    db: String,
    token_file: std::path::PathBuf,
    replicas: Vec<Option<ServerProcess>>,
}

/// `n` replicas on a fresh database; `extra(i)` gives replica i's extra
/// arguments.
fn cluster(n: usize, extra: impl Fn(usize) -> Vec<&'static str>) -> Cluster {
    let mut cluster = empty_cluster();
    for i in 0..n {
        cluster.add_replica(&extra(i));
    }
    cluster
}

/// A fresh database and no replica yet.
fn empty_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = postgres_database(&dir.path().display().to_string());
    let token_file = dir.path().join("admin.token");
    Cluster {
        _dir: dir,
        db,
        token_file,
        replicas: Vec::new(),
    }
}

impl Cluster {
    fn add_replica(&mut self, extra: &[&str]) {
        self.add_replica_with_env(extra, &[]);
    }

    /// A replica with extra arguments and environment variables, on a port
    /// the system picks.
    fn add_replica_with_env(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        let token_arg = self.token_file.display().to_string();
        let mut args = vec!["--admin-token-file", token_arg.as_str()];
        args.extend_from_slice(extra);
        let data = self._dir.path().join(format!("r{}", self.replicas.len()));
        let server = ServerProcess::start_with_env(&data, 0, Some(&self.db), &args, env).unwrap();
        self.replicas.push(Some(server));
    }

    fn url(&self, i: usize) -> String {
        self.replicas[i].as_ref().unwrap().url.clone()
    }

    fn create_task(
        &self,
        pk: &std::path::Path,
        measurement: &str,
        extra: &[&str],
    ) -> (String, String) {
        let mut args = vec![
            "task",
            "create",
            "--server",
            "",
            "--admin-token-file",
            "",
            "--public-key",
            "",
            "--measurement",
            measurement,
            "--min-batch-size",
            "10",
            "--time-precision",
            "60",
            "--json",
        ];
        let url = self.url(0);
        let token = self.token_file.display().to_string();
        let pk = pk.display().to_string();
        args[3] = &url;
        args[5] = &token;
        args[7] = &pk;
        args.extend_from_slice(extra);
        let out: Value = serde_json::from_str(&run_ok("hetally-client", &args)).unwrap();
        (
            out["task_id"].as_str().unwrap().to_string(),
            out["collector_token"].as_str().unwrap().to_string(),
        )
    }

    fn jobs(&self, state: &str) -> i64 {
        postgres_i64(
            &self.db,
            &format!("SELECT COUNT(*) FROM aggregation_jobs WHERE state = '{state}'"),
        )
    }
}

#[test]
fn three_replicas_survive_a_kill9_during_aggregation() {
    // Only replica 1 runs aggregation jobs, and it keeps each job's lease
    // for ten minutes after summing it (HETALLY_INSECURE_TEST_JOB_HOLD_MS,
    // debug builds only): it is killed while holding a lease, certainly,
    // and a fourth replica that joins afterwards must take the job over.
    let job_args = ["--job-size", "3000", "--job-lease-secs", "3"];
    let mut cluster = empty_cluster();
    let driverless = [&job_args[..], &["--no-job-driver"]].concat();
    cluster.add_replica(&driverless);
    cluster.add_replica_with_env(
        &job_args,
        &[("HETALLY_INSECURE_TEST_JOB_HOLD_MS", "600000")],
    );
    cluster.add_replica(&driverless);
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    // A durability and scale-out test: proofs would only make it slower
    // (tests/tests/it/proofs.rs covers them).
    let (task, token) = cluster.create_task(&pk, "histogram:16", &["--no-input-proofs"]);
    let token_file = dir.path().join("collector.token");
    std::fs::write(&token_file, &token).unwrap();
    let victim_pid = {
        let r = cluster.replicas[1].as_ref().unwrap();
        r.pid()
    };
    let time = now();
    let truth = dir.path().join("truth.json");
    let servers = format!("{},{},{}", cluster.url(0), cluster.url(1), cluster.url(2));
    let reports = 20_000u64;
    let simulate = Command::new(bin("hetally-client"))
        .args(["simulate", "--server", &servers, "--task", &task])
        .args([
            "--reports",
            &reports.to_string(),
            "--seed",
            "5",
            "--concurrency",
            "24",
            "--attempts",
            "40",
        ])
        .args([
            "--time",
            &time.to_string(),
            "--json",
            "--truth-out",
            &truth.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait (bounded) until replica 1 holds an unexpired lease, then kill it.
    let owned_by_victim = format!("lease_owner LIKE '%-{victim_pid}-%'");
    let leased_by_victim = format!(
        "SELECT COUNT(*) FROM aggregation_jobs WHERE state = 'running' AND {owned_by_victim} \
         AND lease_expiry > EXTRACT(EPOCH FROM NOW())::BIGINT"
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    while postgres_i64(&cluster.db, &leased_by_victim) == 0 {
        assert!(
            Instant::now() < deadline,
            "replica 1 never leased a job in 240 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.replicas[1].take().unwrap().kill9();
    // The jobs the dead replica held: nobody can finish them but another
    // replica, after their lease expires.
    let orphaned_jobs = format!(
        "SELECT COALESCE(MIN(job_id), 0)::BIGINT FROM aggregation_jobs \
         WHERE state = 'running' AND {owned_by_victim}"
    );
    let orphaned = postgres_i64(
        &cluster.db,
        &format!(
            "SELECT COUNT(*) FROM aggregation_jobs WHERE state = 'running' AND {owned_by_victim}"
        ),
    );
    // It runs one job at a time, and holds each until it is killed.
    assert_eq!(orphaned, 1, "replica 1 was killed holding one job's lease");
    let orphan = postgres_i64(&cluster.db, &orphaned_jobs);
    eprintln!("killed replica 1 (pid {victim_pid}) holding the lease of job {orphan}");
    cluster.add_replica(&job_args);

    let out = simulate.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth = read_json(&truth);
    assert_eq!(truth["report_count"], reports);

    // Let the surviving replicas finish every job, including any whose
    // lease died with replica 1.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.jobs("pending") + cluster.jobs("running") > 0
        || postgres_i64(
            &cluster.db,
            "SELECT COUNT(*) FROM reports WHERE job_id IS NULL",
        ) > 0
    {
        assert!(Instant::now() < deadline, "jobs never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The orphaned job was taken over: done, on a second attempt, by a
    // replica that is not the dead one.
    let taken_over = postgres_i64(
        &cluster.db,
        &format!(
            "SELECT COUNT(*) FROM aggregation_jobs WHERE job_id = {orphan} AND state = 'done' \
             AND attempts >= 2 AND partial_sum IS NOT NULL AND NOT ({owned_by_victim})"
        ),
    );
    assert_eq!(
        taken_over, 1,
        "job {orphan}, leased by the dead replica, was finished by another"
    );
    let redone = postgres_i64(
        &cluster.db,
        "SELECT COUNT(*) FROM aggregation_jobs WHERE attempts > 1",
    );
    assert!(
        redone >= orphaned,
        "every job orphaned by the dead replica was redone ({redone} of {orphaned})"
    );
    // Every report is in exactly one finished job.
    let in_jobs = postgres_i64(
        &cluster.db,
        "SELECT COALESCE(SUM(report_count), 0)::BIGINT FROM aggregation_jobs WHERE state = 'done'",
    );
    assert_eq!(in_jobs as u64, reports);

    let agg = dir.path().join("batch.agg");
    run_ok(
        "hetally-client",
        &[
            "collect",
            "--server",
            &cluster.url(2),
            "--task",
            &task,
            "--token-file",
            &token_file.display().to_string(),
            "--start",
            &(time - time % 60).to_string(),
            "--duration",
            "60",
            "--out",
            &agg.display().to_string(),
        ],
    );
    let decrypted = decrypt_json(&sk, &agg);
    assert_eq!(decrypted["report_count"], reports);
    assert_eq!(decrypted["values"], truth["values"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_collections_release_once_and_spend_once() {
    let cluster = cluster(2, |_| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let (task, token) =
        cluster.create_task(&pk, "count", &["--dp", "laplace:0.5", "--budget", "10"]);
    let client =
        hetally_client::Client::connect(cluster.url(0).parse().unwrap(), task.parse().unwrap())
            .await
            .unwrap();
    let t = now();
    let base = t - t % 60 - 3600;
    let rounds = 6u64;
    for round in 0..rounds {
        for _ in 0..10 {
            client
                .upload(&client.prepare(&[1], base + 60 * round).unwrap())
                .await
                .unwrap();
        }
    }
    let http = reqwest::Client::new();
    let collect = |url: String, start: u64, duration: u64| {
        http.post(format!("{url}/tasks/{task}/releases"))
            .bearer_auth(&token)
            .json(&json!({ "start": start, "duration": duration }))
            .send()
    };
    // Same interval on both replicas at once: one release, identical bytes.
    for round in 0..rounds / 2 {
        let start = base + 60 * round;
        let (a, b) = tokio::join!(
            collect(cluster.url(0), start, 60),
            collect(cluster.url(1), start, 60)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert!(
            statuses.contains(&201) && statuses.iter().all(|s| *s == 200 || *s == 201),
            "{statuses:?}"
        );
        assert_eq!(
            a.bytes().await.unwrap(),
            b.bytes().await.unwrap(),
            "both see the same release"
        );
    }
    // Overlapping intervals on both replicas at once: one wins, one is
    // refused.
    let start = base + 60 * (rounds / 2);
    let (a, b) = tokio::join!(
        collect(cluster.url(0), start, 60),
        collect(cluster.url(1), start, 120)
    );
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "one release, one overlap refusal");
    let status: Value = http
        .get(format!("{}/tasks/{task}/status", cluster.url(1)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let releases = status["releases"].as_u64().unwrap();
    assert_eq!(releases, rounds / 2 + 1);
    // 0.5 per release, spent exactly once per release.
    let spent: f64 = status["budget"]["spent"].as_str().unwrap().parse().unwrap();
    assert_eq!(spent, 0.5 * releases as f64);
}

/// A TFHE task on two replicas with aggregation jobs: uploads spread over
/// both, the replicas sum disjoint jobs into partial encrypted sums, and
/// the release merges them and decrypts exactly.
#[test]
fn tfhe_task_on_two_replicas_sums_in_jobs_and_decrypts_exactly() {
    let cluster = cluster(2, |_| vec!["--job-size", "500"]);
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen_scheme(&dir.path().join("keys"), "tfhe");
    let (task, token) = cluster.create_task(
        &pk,
        "histogram:1024",
        &["--no-input-proofs", "--max-batch-size", "10000"],
    );
    let token_file = dir.path().join("collector.token");
    std::fs::write(&token_file, &token).unwrap();
    let time = now();
    let truth = dir.path().join("truth.json");
    let servers = format!("{},{}", cluster.url(0), cluster.url(1));
    let reports = 3_000u64;
    run_ok(
        "hetally-client",
        &[
            "simulate",
            "--server",
            &servers,
            "--task",
            &task,
            "--reports",
            &reports.to_string(),
            "--seed",
            "8",
            "--time",
            &time.to_string(),
            "--json",
            "--truth-out",
            &truth.display().to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.jobs("pending") + cluster.jobs("running") > 0
        || postgres_i64(
            &cluster.db,
            "SELECT COUNT(*) FROM reports WHERE job_id IS NULL",
        ) > 0
    {
        assert!(Instant::now() < deadline, "jobs never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cluster.jobs("done") >= 6, "the reports were summed in jobs");
    let agg = dir.path().join("batch.agg");
    run_ok(
        "hetally-client",
        &[
            "collect",
            "--server",
            &cluster.url(1),
            "--task",
            &task,
            "--token-file",
            &token_file.display().to_string(),
            "--start",
            &(time - time % 60).to_string(),
            "--duration",
            "60",
            "--out",
            &agg.display().to_string(),
        ],
    );
    let decrypted = decrypt_json(&sk, &agg);
    let truth = read_json(&truth);
    assert_eq!(decrypted["report_count"], reports);
    assert_eq!(decrypted["values"], truth["values"]);
}
