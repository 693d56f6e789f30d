//! Server lifecycle: first start creates the database and a 0600 admin
//! token; SIGTERM stops it cleanly after in-flight requests; a restart keeps
//! every task and report.

use std::os::unix::fs::PermissionsExt;

use hetally_tests::*;
use serde_json::Value;

#[test]
fn first_start_sigterm_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server = ServerProcess::start(&data).unwrap();
    let token_file = server.admin_token_file();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin.token must be private");
    assert!(data.join("hetally.db").exists());
    let token = std::fs::read_to_string(&token_file).unwrap();

    let (task, collector) = create_task(&server, &pk, "count", 1, &[]);
    run_ok(
        "hetally-client",
        &["send", "--server", &server.url, "--task", &task, "--value", "1"],
    );
    let status = server.terminate().unwrap();
    assert!(status.success(), "SIGTERM exits cleanly: {status}");

    // The restarted server keeps its token, its task and its report.
    let server = ServerProcess::start(&data).unwrap();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let out = run_ok(
        "hetally-client",
        &["status", "--server", &server.url, "--task", &task, "--token-file", &collector.display().to_string(), "--json"],
    );
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["reports"], 1);
    let listed: Value = serde_json::from_str(&run_ok(
        "hetally-client",
        &["task", "list", "--server", &server.url, "--admin-token-file", &token_file.display().to_string(), "--json"],
    ))
    .unwrap();
    assert_eq!(listed["tasks"][0]["task_id"], task.as_str());
}

#[test]
fn server_help_explains_itself() {
    let out = run_ok("hetally-server", &["--help"]);
    for needle in ["--data-dir", "--listen", "admin.token", "Example"] {
        assert!(out.contains(needle), "--help mentions {needle}:\n{out}");
    }
    let out = run_ok("hetally-client", &["--help"]);
    for needle in ["task", "send", "simulate", "collect", "releases", "status"] {
        assert!(out.contains(needle), "--help mentions {needle}:\n{out}");
    }
    let out = run("hetally-server", &["--listen", "not-an-address", "--data-dir", &tempfile::tempdir().unwrap().path().display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on not-an-address"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}
