//! TLS on the server's listener and the clients' CA file (issue 17), with
//! throw-away certificates each test makes ([`TestCertificates`]):
//!
//! * a server given `--tls-cert` / `--tls-key` says `https` on its
//!   "listening on" line; `hetally-client --ca-file` (or
//!   `HETALLY_CA_FILE`) creates a task and uploads over HTTPS, without the
//!   CA file the upload fails with a certificate error, and plain HTTP to
//!   the TLS port gets no answer;
//! * a mismatched key, a missing file or a lone `--tls-cert` stop the
//!   start with a clear error; a key readable by others is served with a
//!   warning; plain HTTP on a non-loopback address warns, naming the flag.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hetally_tests::tls::TestCertificates;
use hetally_tests::{bin, keygen};

/// Fresh test certificates in `dir`, the server key with `mode`; with
/// `mismatched`, `key` is a key of no certificate.
fn cert_and_key(dir: &Path, mismatched: bool, mode: u32) -> (TestCertificates, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let certs = TestCertificates::write(dir);
    let key = if mismatched {
        certs.other_key.clone()
    } else {
        certs.key.clone()
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    (certs, key)
}

/// A `hetally-server` on `listen` with `extra` flags, its stderr in
/// `dir/server.log`; killed when dropped.
struct Server {
    child: Child,
    /// The "listening on" line's URL (`https://127.0.0.1:PORT`).
    url: String,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the server; `Err` holds its exit and log if it did not start.
    fn start(dir: &Path, listen: &str, extra: &[&str]) -> Result<Server, (Output, String)> {
        let log = dir.join("server.log");
        let mut child = Command::new(bin("hetally-server"))
            .args(["--data-dir", &dir.join("data").display().to_string()])
            .args(["--listen", listen, "--workers", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("hetally-server listening on ")
            .map(str::to_string);
        let port = url
            .as_deref()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok());
        match (url, port) {
            (Some(url), Some(port)) => Ok(Server {
                child,
                url,
                port,
                log,
            }),
            _ => {
                let out = child.wait_with_output().unwrap();
                Err((out, std::fs::read_to_string(&log).unwrap_or_default()))
            }
        }
    }

    /// Waits for a plain-HTTP answer to `GET /healthz` (by then the
    /// server has logged everything it logs at start).
    fn wait_answering(&self) {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("hetally-client"))
        .args(args)
        .env_remove("HETALLY_CA_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn https_upload_needs_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, key) = cert_and_key(dir.path(), false, 0o600);
    let cert = certs.cert.clone();
    let server = Server::start(
        dir.path(),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    )
    .unwrap_or_else(|(out, log)| panic!("the TLS server did not start: {}\n{log}", text(&out)));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "the listening line says https: {}",
        server.url
    );
    let ca = certs.ca.display().to_string();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (_, pk) = keygen(&keys);
    let admin_token = dir.path().join("data/admin.token").display().to_string();

    // With the CA file: a task is created and a report uploaded.
    let out = client(
        &[
            "--ca-file",
            &ca,
            "task",
            "create",
            "--server",
            &server.url,
            "--admin-token-file",
            &admin_token,
            "--public-key",
            &pk.display().to_string(),
            "--measurement",
            "count",
            "--min-batch-size",
            "1",
            "--time-precision",
            "60",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "task create over https: {}",
        text(&out)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = created["task_id"].as_str().unwrap().to_string();
    let send = |extra_env: &[(&str, &str)], ca_flag: bool, url: &str| {
        let mut args = Vec::new();
        if ca_flag {
            args.extend(["--ca-file", ca.as_str()]);
        }
        args.extend(["send", "--server", url, "--task", &task, "--value", "1"]);
        client(&args, extra_env)
    };
    let out = send(&[], true, &server.url);
    assert!(out.status.success(), "upload over https: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent report"));
    // The CA file from the environment works the same.
    let out = send(&[("HETALLY_CA_FILE", &ca)], false, &server.url);
    assert!(out.status.success(), "HETALLY_CA_FILE: {}", text(&out));

    // Without it the server's certificate is not trusted.
    let out = send(&[], false, &server.url);
    assert!(!out.status.success(), "no CA file: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("certificate"),
        "the error names the certificate: {}",
        text(&out)
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = format!("http://127.0.0.1:{}", server.port);
    let out = send(&[], true, &plain);
    assert!(!out.status.success(), "plain HTTP: {}", text(&out));
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    server.stop();
}

#[test]
fn bad_tls_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = |cert: &Path, key: &Path| {
        Server::start(
            dir.path(),
            "127.0.0.1:0",
            &[
                "--tls-cert",
                &cert.display().to_string(),
                "--tls-key",
                &key.display().to_string(),
            ],
        )
    };
    // A key that is not the certificate's.
    let (certs, other) = cert_and_key(dir.path(), true, 0o600);
    let cert = certs.cert.clone();
    let Err((out, log)) = start(&cert, &other) else {
        panic!("a mismatched key was served");
    };
    assert!(!out.status.success());
    assert!(
        log.contains("does not belong to the first certificate"),
        "mismatch: {log}"
    );
    // A missing file is named.
    let missing = dir.path().join("missing.pem");
    let Err((_, log)) = start(&missing, &other) else {
        panic!("a missing certificate was served");
    };
    assert!(
        log.contains("missing.pem") && log.contains("TLS certificate"),
        "missing: {log}"
    );
    // The key where the certificate should be: no certificate in it.
    let Err((_, log)) = start(&other, &other) else {
        panic!("a key file was served as a certificate");
    };
    assert!(log.contains("no certificate"), "no certificate: {log}");
    // --tls-cert alone is a usage error.
    let out = Command::new(bin("hetally-server"))
        .args(["--tls-cert", &cert.display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-key"),
        "{}",
        text(&out)
    );

    // A key readable by others is served, with a warning.
    let (_, key) = cert_and_key(dir.path(), false, 0o644);
    let server = start(&cert, &key).unwrap_or_else(|(out, log)| {
        panic!("a group-readable key was refused: {}\n{log}", text(&out))
    });
    let log = server.stop();
    assert!(log.contains("chmod 600"), "key permissions warning: {log}");
}

#[test]
fn plain_http_off_loopback_warns() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "0.0.0.0:0", &[])
        .unwrap_or_else(|(out, log)| panic!("did not start: {}\n{log}", text(&out)));
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
    server.wait_answering();
    let log = server.stop();
    assert!(
        log.contains("plain HTTP on a non-loopback address") && log.contains("--tls-cert"),
        "warning: {log}"
    );
    // Loopback: no warning.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0", &[])
        .unwrap_or_else(|(out, log)| panic!("did not start: {}\n{log}", text(&out)));
    server.wait_answering();
    let log = server.stop();
    assert!(!log.contains("non-loopback"), "{log}");
}

/// DAP over HTTPS: a helper serving TLS with the test certificate, a
/// leader that trusts its CA through `--helper-ca-file`, and the CLI
/// (provisioning, janus_client fetching the helper's HPKE config,
/// janus_collector) through `--ca-file`: the collection counts every report.
#[test]
fn dap_leader_reaches_an_https_helper() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, key) = cert_and_key(dir.path(), false, 0o600);
    let cert = certs.cert.clone();
    let ca = certs.ca.display().to_string();
    let helper_dir = dir.path().join("helper");
    std::fs::create_dir_all(&helper_dir).unwrap();
    let helper = Server::start(
        &helper_dir,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    )
    .unwrap_or_else(|(out, log)| panic!("helper: {}\n{log}", text(&out)));
    let leader_dir = dir.path().join("leader");
    std::fs::create_dir_all(&leader_dir).unwrap();
    let leader = Server::start(&leader_dir, "127.0.0.1:0", &["--helper-ca-file", &ca])
        .unwrap_or_else(|(out, log)| panic!("leader: {}\n{log}", text(&out)));
    let keys = dir.path().join("keys");
    hetally_tests::run_ok(
        "hetally-keytool",
        &[
            "keygen",
            "--scheme",
            "dap-hpke",
            "--out",
            keys.to_str().unwrap(),
        ],
    );
    let cred = keys.join("collector-credential.json").display().to_string();
    let (l, h) = (
        format!("{}/dap/", leader.url),
        format!("{}/dap/", helper.url),
    );
    let ok = |args: &[&str]| {
        let mut all = vec!["--ca-file", ca.as_str()];
        all.extend_from_slice(args);
        let out = client(&all, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let token = |d: &Path| d.join("data/admin.token").display().to_string();
    let created: serde_json::Value = serde_json::from_str(&ok(&[
        "dap",
        "task-create",
        "--leader",
        &l,
        "--helper",
        &h,
        "--leader-admin-token-file",
        &token(&leader_dir),
        "--helper-admin-token-file",
        &token(&helper_dir),
        "--vdaf",
        "prio3count",
        "--min-batch-size",
        "10",
        "--time-precision",
        "60",
        "--collector-credential",
        &cred,
        "--json",
    ]))
    .unwrap();
    let task = created["task_id"].as_str().unwrap().to_string();
    let out = ok(&[
        "dap",
        "simulate",
        "--leader",
        &l,
        "--helper",
        &h,
        "--task",
        &task,
        "--vdaf",
        "prio3count",
        "--time-precision",
        "60",
        "--reports",
        "12",
        "--seed",
        "5",
    ]);
    assert!(out.contains("uploaded 12 reports"), "{out}");
    let start = (hetally_tests::now() / 60 * 60 - 600).to_string();
    let got: serde_json::Value = serde_json::from_str(&ok(&[
        "dap",
        "collect",
        "--leader",
        &l,
        "--task",
        &task,
        "--vdaf",
        "prio3count",
        "--collector-credential",
        &cred,
        "--start",
        &start,
        "--duration",
        "1800",
    ]))
    .unwrap();
    assert_eq!(got["report_count"], 12, "{got}");
    leader.stop();
    helper.stop();
}
