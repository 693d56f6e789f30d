//! A DAP collection that the collector stopped waiting for can be resumed
//! (issue 17). `hetally-client dap collect` prints its collection job id
//! before it polls; when it gives up, the same command with `--job-id`
//! re-PUTs that job (the leader answers an identical PUT of an existing job
//! with 201 again) and polls it to the end. Before, each `dap collect`
//! started a job under a new random id, so asking again got
//! `batchQueriedTooManyTimes` and the batch was lost to the collector.
//!
//! The leader first runs without its job driver, so the first collection
//! cannot finish whatever the machine's speed; it is then restarted with
//! the driver on the same store.

use std::path::Path;
use std::process::Output;

use hetally_tests::*;
use serde_json::Value;

const PRECISION: u64 = 60;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn leader_on(dir: &Path, extra: &[&str]) -> ServerProcess {
    let database = use_postgres().then(|| postgres_database(&dir.display().to_string()));
    ServerProcess::start_with(dir, 0, database.as_deref(), extra).unwrap()
}

#[test]
fn dap_collect_resumes_with_its_job_id() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = dir.path().join("leader");
    let leader = leader_on(&leader_dir, &["--no-job-driver"]);
    let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
    let keys = dir.path().join("keys");
    run_ok(
        "hetally-keytool",
        &[
            "keygen",
            "--scheme",
            "dap-hpke",
            "--out",
            keys.to_str().unwrap(),
        ],
    );
    let cred = keys.join("collector-credential.json");
    let cred = cred.to_str().unwrap();
    let helper_url = format!("{}/dap/", helper.url);
    let precision = PRECISION.to_string();
    let vdaf = "prio3count";
    let created: Value = serde_json::from_str(&run_ok(
        "hetally-client",
        &[
            "dap",
            "task-create",
            "--leader",
            &format!("{}/dap/", leader.url),
            "--helper",
            &helper_url,
            "--leader-admin-token-file",
            leader.admin_token_file().to_str().unwrap(),
            "--helper-admin-token-file",
            helper.admin_token_file().to_str().unwrap(),
            "--vdaf",
            vdaf,
            "--min-batch-size",
            "10",
            "--time-precision",
            &precision,
            "--collector-credential",
            cred,
            "--json",
        ],
    ))
    .unwrap();
    let task = created["task_id"].as_str().unwrap().to_string();
    let out = run_ok(
        "hetally-client",
        &[
            "dap",
            "simulate",
            "--leader",
            &format!("{}/dap/", leader.url),
            "--helper",
            &helper_url,
            "--task",
            &task,
            "--vdaf",
            vdaf,
            "--time-precision",
            &precision,
            "--reports",
            "20",
            "--seed",
            "3",
        ],
    );
    assert!(out.contains("uploaded 20 reports"), "{out}");

    let start = (now() / PRECISION * PRECISION - 10 * PRECISION).to_string();
    let duration = (30 * PRECISION).to_string();
    let collect = |leader: &ServerProcess, more: &[&str]| {
        let leader_url = format!("{}/dap/", leader.url);
        let mut args = vec![
            "dap",
            "collect",
            "--leader",
            &leader_url,
            "--task",
            &task,
            "--vdaf",
            vdaf,
            "--collector-credential",
            cred,
            "--start",
            &start,
            "--duration",
            &duration,
        ];
        args.extend_from_slice(more);
        run("hetally-client", &args)
    };

    // The leader aggregates nothing: the collector gives up, having printed
    // its job id.
    let first = collect(&leader, &["--max-wait", "2"]);
    assert!(!first.status.success(), "{}", stderr(&first));
    let job_id = stderr(&first)
        .lines()
        .find_map(|l| l.strip_prefix("collection job "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no job id printed: {}", stderr(&first)));
    assert!(
        stderr(&first).contains(&format!("--job-id {job_id}")),
        "the error says how to resume: {}",
        stderr(&first)
    );

    // Asking again under a new id is still refused, as DAP-09 says.
    let again = collect(&leader, &["--max-wait", "2"]);
    assert!(!again.status.success());
    // (janus_collector prints the problem's title and detail, not its type.)
    assert!(
        stderr(&again).contains("batchQueriedTooManyTimes")
            || stderr(&again).contains("already been collected"),
        "{}",
        stderr(&again)
    );

    // The leader comes back with its driver; the collector resumes its job.
    leader.kill9();
    let leader = leader_on(&leader_dir, &[]);
    let resumed = collect(&leader, &["--max-wait", "300", "--job-id", &job_id]);
    assert!(
        resumed.status.success(),
        "resume: {}\n{}",
        stderr(&resumed),
        String::from_utf8_lossy(&resumed.stdout)
    );
    let got: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(got["job_id"], job_id.as_str());
    assert_eq!(got["report_count"], 20);
    // And again, once finished: the same job answers the same result.
    let repeat = collect(&leader, &["--job-id", &job_id]);
    assert!(repeat.status.success(), "{}", stderr(&repeat));
    let again: Value = serde_json::from_slice(&repeat.stdout).unwrap();
    assert_eq!(again["values"], got["values"]);
    drop(helper);
}
