//! CORS (issue 20): `--cors-origin` lets pages of the listed origins call
//! the routes a page needs, and nothing else.
//!
//! * default: no CORS header on any answer, preflights included;
//! * listed origins: a preflight for an upload (`PUT`, `Content-Type:
//!   application/vnd.hetally.report`) succeeds with the origin echoed,
//!   the methods, the header and a bounded max-age; real answers
//!   (successes and problem documents alike) carry the origin and expose
//!   `Retry-After`; an unlisted origin, or a preflight asking for
//!   `Authorization`, gets no CORS header;
//! * `*`: every origin, answered with `*`;
//! * the admin and collector routes never answer with CORS headers, to a
//!   listed origin or to `*`;
//! * bad `--cors-origin` values stop the start with the form expected;
//!   `HETALLY_CORS_ORIGIN` takes a comma-separated list.

use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_tests::*;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

const PAGE: &str = "http://127.0.0.1:8000";
const OTHER_PAGE: &str = "https://app.example.com";
const STRANGER: &str = "https://evil.example";

struct Env {
    _dir: tempfile::TempDir,
    server: ServerProcess,
    task: String,
    collector_token: String,
    admin_token: String,
    http: reqwest::Client,
}

/// A server started with `extra` flags and `env`, and a count task.
fn env_with(extra: &[&str], env: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let server =
        ServerProcess::start_with_env(&dir.path().join("data"), 0, None, extra, env).unwrap();
    let (task, token_file) = create_task(&server, &pk, "count", 1, &[]);
    let collector_token = std::fs::read_to_string(token_file).unwrap();
    let admin_token = std::fs::read_to_string(server.admin_token_file())
        .unwrap()
        .trim()
        .to_string();
    Env {
        _dir: dir,
        server,
        task,
        collector_token,
        admin_token,
        http: reqwest::Client::new(),
    }
}

/// One answer: status and headers.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    what: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// The comma-separated values of `name`, lower-cased.
    fn list(&self, name: &str) -> Vec<String> {
        self.header(name)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn assert_allows(&self, origin: &str) {
        assert_eq!(
            self.header("access-control-allow-origin").as_deref(),
            Some(origin),
            "{}: Access-Control-Allow-Origin",
            self.what
        );
        assert_eq!(
            self.header("access-control-allow-credentials"),
            None,
            "{}: credentials are never allowed",
            self.what
        );
    }

    /// No `Access-Control-Allow-Origin`: the browser hides the answer.
    fn assert_no_allow_origin(&self) {
        assert_eq!(
            self.header("access-control-allow-origin"),
            None,
            "{}: no Access-Control-Allow-Origin was expected",
            self.what
        );
    }

    /// No `Access-Control-*` header at all.
    fn assert_no_cors(&self) {
        let found: Vec<_> = self
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(
            found.is_empty(),
            "{}: no CORS header was expected, got {found:?}",
            self.what
        );
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let answer = Answer {
            status: res.status(),
            headers: res.headers().clone(),
            what: what.to_string(),
        };
        // Read the body, so that the connection is reused cleanly.
        let _ = res.bytes().await;
        answer
    }

    /// An `OPTIONS` preflight from `origin` for `method` on `path`, asking
    /// for `headers` (comma separated, or none).
    async fn preflight(&self, origin: &str, method: &str, path: &str, headers: &str) -> Answer {
        let mut req = self
            .http
            .request(Method::OPTIONS, self.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method);
        if !headers.is_empty() {
            req = req.header("access-control-request-headers", headers);
        }
        self.send(&format!("preflight {method} {path} from {origin}"), req)
            .await
    }

    /// The upload preflight a browser sends for `PUT /tasks/{id}/reports`.
    async fn upload_preflight(&self, origin: &str) -> Answer {
        let path = format!("/tasks/{}/reports", self.task);
        self.preflight(origin, "PUT", &path, "content-type").await
    }

    async fn get(&self, origin: &str, path: &str) -> Answer {
        let req = self.http.get(self.url(path)).header("origin", origin);
        self.send(&format!("GET {path} from {origin}"), req).await
    }

    /// Uploads a real report (value 1) from `origin`.
    async fn upload(&self, origin: &str) -> Answer {
        let client = connect_client(&self.server, &self.task).await;
        let report = client.prepare(&[1], now()).unwrap();
        self.put_report(origin, report.to_bytes()).await
    }

    async fn put_report(&self, origin: &str, body: Vec<u8>) -> Answer {
        let path = format!("/tasks/{}/reports", self.task);
        let req = self
            .http
            .put(self.url(&path))
            .header("origin", origin)
            .header("content-type", REPORT_MEDIA_TYPE)
            .body(body);
        self.send(&format!("PUT {path} from {origin}"), req).await
    }

    /// Every admin and collector route, with its token, from `origin`;
    /// each answers as usual and with no CORS header. Their preflights are
    /// refused without CORS headers too.
    async fn assert_admin_routes_have_no_cors(&self, origin: &str) {
        let task = &self.task;
        let admin = &self.admin_token;
        let collector = &self.collector_token;
        let routes: [(Method, String, &str, StatusCode); 6] = [
            (Method::GET, "/tasks".into(), admin, StatusCode::OK),
            (
                Method::GET,
                format!("/tasks/{task}/status"),
                collector,
                StatusCode::OK,
            ),
            (
                Method::GET,
                format!("/tasks/{task}/releases"),
                collector,
                StatusCode::OK,
            ),
            (Method::GET, "/metrics".into(), admin, StatusCode::OK),
            (Method::GET, "/healthz".into(), "", StatusCode::OK),
            // An empty body: refused as a bad request, after the token.
            (
                Method::POST,
                format!("/tasks/{task}/releases"),
                collector,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
        ];
        for (method, path, token, status) in routes {
            let what = format!("{method} {path} from {origin}");
            let mut req = self
                .http
                .request(method.clone(), self.url(&path))
                .header("origin", origin);
            if !token.is_empty() {
                req = req.bearer_auth(token);
            }
            let answer = self.send(&what, req).await;
            assert_eq!(answer.status, status, "{what}");
            answer.assert_no_cors();
            let answer = self
                .preflight(origin, method.as_str(), &path, "authorization,content-type")
                .await;
            assert!(
                !answer.status.is_success(),
                "{}: {}",
                answer.what,
                answer.status
            );
            answer.assert_no_cors();
        }
        // Task creation: a preflight for it is refused the same way.
        let answer = self
            .preflight(origin, "POST", "/tasks", "authorization,content-type")
            .await;
        assert!(!answer.status.is_success(), "{}", answer.what);
        answer.assert_no_cors();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origin_no_answer_carries_cors_headers() {
    let env = env_with(&[], &[]);
    let preflight = env.upload_preflight(PAGE).await;
    assert!(
        !preflight.status.is_success(),
        "a preflight with CORS off: {}",
        preflight.status
    );
    preflight.assert_no_cors();
    let task = env.task.clone();
    for path in [
        format!("/tasks/{task}"),
        format!("/tasks/{task}/crs"),
        "/openapi.json".to_string(),
    ] {
        env.get(PAGE, &path).await.assert_no_cors();
    }
    let upload = env.upload(PAGE).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.what);
    upload.assert_no_cors();
    env.assert_admin_routes_have_no_cors(PAGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_may_upload_and_others_may_not() {
    let env = env_with(&["--cors-origin", PAGE, "--cors-origin", OTHER_PAGE], &[]);
    let task = env.task.clone();

    // The upload's preflight, from each listed origin.
    for origin in [PAGE, OTHER_PAGE] {
        let answer = env.upload_preflight(origin).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.what);
        answer.assert_allows(origin);
        assert!(
            answer
                .list("access-control-allow-methods")
                .contains(&"put".into()),
            "{}: methods {:?}",
            answer.what,
            answer.header("access-control-allow-methods")
        );
        assert!(
            answer
                .list("access-control-allow-headers")
                .contains(&"content-type".into()),
            "{}: headers {:?}",
            answer.what,
            answer.header("access-control-allow-headers")
        );
        assert_eq!(
            answer.header("access-control-max-age").as_deref(),
            Some("7200"),
            "{}: preflights are cached, for a bounded time",
            answer.what
        );
        assert!(
            answer.list("vary").contains(&"origin".into()),
            "{}: Vary {:?}",
            answer.what,
            answer.header("vary")
        );
    }
    // The GET routes' preflights (a page sending If-None-Match).
    for path in [format!("/tasks/{task}"), format!("/tasks/{task}/crs")] {
        let answer = env.preflight(PAGE, "GET", &path, "if-none-match").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.what);
        answer.assert_allows(PAGE);
    }

    // Refused preflights: an unlisted origin (even one differing only in
    // its port or scheme), a header the policy does not allow
    // (Authorization: no credentials), a method it does not allow.
    for origin in [STRANGER, "http://127.0.0.1:8001", "https://127.0.0.1:8000"] {
        let answer = env.upload_preflight(origin).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.what);
        answer.assert_no_allow_origin();
    }
    let path = format!("/tasks/{task}/reports");
    let answer = env
        .preflight(PAGE, "PUT", &path, "content-type,authorization")
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.what);
    answer.assert_no_allow_origin();
    let answer = env.preflight(PAGE, "DELETE", &path, "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.what);
    answer.assert_no_allow_origin();

    // The real requests of a page: the answers name the origin and expose
    // Retry-After, successes and problems alike.
    let upload = env.upload(PAGE).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.what);
    upload.assert_allows(PAGE);
    let exposed = upload.list("access-control-expose-headers");
    assert!(
        exposed.contains(&"retry-after".into()) && exposed.contains(&"etag".into()),
        "{}: exposed {exposed:?}",
        upload.what
    );
    let garbage = env.put_report(OTHER_PAGE, vec![1, 2, 3]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{}", garbage.what);
    assert_eq!(
        garbage.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{}",
        garbage.what
    );
    garbage.assert_allows(OTHER_PAGE);
    let info = env.get(PAGE, &format!("/tasks/{task}")).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.what);
    info.assert_allows(PAGE);
    // A Paillier task has no CRS: a 404 problem, readable by the page.
    let crs = env.get(PAGE, &format!("/tasks/{task}/crs")).await;
    assert_eq!(crs.status, StatusCode::NOT_FOUND, "{}", crs.what);
    crs.assert_allows(PAGE);
    let unknown = env
        .get(PAGE, "/tasks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.what);
    unknown.assert_allows(PAGE);
    let doc = env.get(PAGE, "/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.what);
    doc.assert_allows(PAGE);

    // An unlisted origin is served (the browser, not the server, keeps
    // the answer from the page), but without Allow-Origin.
    let stranger = env.upload(STRANGER).await;
    assert_eq!(stranger.status, StatusCode::CREATED, "{}", stranger.what);
    stranger.assert_no_allow_origin();
    let stranger = env.get(STRANGER, &format!("/tasks/{task}")).await;
    assert_eq!(stranger.status, StatusCode::OK, "{}", stranger.what);
    stranger.assert_no_allow_origin();
    // A client that sends no Origin (curl, the CLIs) sees no difference.
    let plain = env
        .send(
            "GET /tasks/{id} without Origin",
            env.http.get(env.url(&format!("/tasks/{task}"))),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    plain.assert_no_allow_origin();

    env.assert_admin_routes_have_no_cors(PAGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_allows_every_origin_but_not_the_admin_routes() {
    // Given through the environment, as a deployment would.
    let env = env_with(&[], &[("HETALLY_CORS_ORIGIN", "*")]);
    for origin in [PAGE, STRANGER] {
        let answer = env.upload_preflight(origin).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.what);
        answer.assert_allows("*");
        let upload = env.upload(origin).await;
        assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.what);
        upload.assert_allows("*");
    }
    env.assert_admin_routes_have_no_cors(STRANGER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_takes_a_comma_separated_list() {
    let list = format!("{PAGE},{OTHER_PAGE}");
    let env = env_with(&[], &[("HETALLY_CORS_ORIGIN", &list)]);
    for origin in [PAGE, OTHER_PAGE] {
        env.upload_preflight(origin).await.assert_allows(origin);
    }
    env.upload_preflight(STRANGER)
        .await
        .assert_no_allow_origin();
}

#[test]
fn bad_cors_origins_stop_the_start_with_the_form_expected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    for (flags, expected) in [
        (
            vec!["--cors-origin", "https://app.example.com/"],
            "write https://app.example.com",
        ),
        (
            vec!["--cors-origin", "https://app.example.com:443"],
            "write https://app.example.com",
        ),
        (vec!["--cors-origin", "app.example.com"], "scheme://host"),
        (vec!["--cors-origin", "null"], "scheme://host"),
        (
            vec!["--cors-origin", "ftp://files.example"],
            "http or https",
        ),
        (
            vec!["--cors-origin", "*", "--cors-origin", PAGE],
            "give it alone",
        ),
    ] {
        let mut args = vec!["--data-dir", &data, "--listen", "127.0.0.1:0"];
        args.extend(&flags);
        let out = run("hetally-server", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{flags:?}: the error should say {expected:?}:\n{stderr}"
        );
    }
    let help = run_ok("hetally-server", &["--help"]);
    for needle in ["--cors-origin", "HETALLY_CORS_ORIGIN"] {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
}
