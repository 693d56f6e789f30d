//! The OpenAPI contract (issue 19): the server's answers and its OpenAPI
//! document (`server/openapi.json`, served at `/openapi.json`) cannot drift
//! apart.
//!
//! [`the_server_answers_as_its_openapi_document_says`] starts a real
//! `hetally-server`, fetches the document from it, and drives every route
//! in it with valid and invalid requests (no or wrong token, unknown and
//! malformed task ids, wrong media types, bodies too large, malformed
//! bodies, replays, bad times, forged payloads, overlapping and withheld
//! releases, an exhausted budget, a flood against tiny queues). Every
//! answer is checked against the document:
//!
//! * its status is documented for the route and method;
//! * its `Content-Type` is one of that answer's documented media types, and
//!   an answer documented without a body has none;
//! * a JSON body validates, with JSON Schema 2020-12, against the
//!   documented schema (its `#/components/schemas/...` references
//!   resolved), problem documents included: their `type` must be one the
//!   document allows for that route and status;
//! * the headers documented as required are present and match their
//!   schemas.
//!
//! Then the reverse: every route and method of the document was exercised,
//! and every documented status of each was seen, except the few listed in
//! [`NOT_EXERCISED`] with the reason. [`every_route_the_server_registers_is_documented`]
//! reads the route table from the server's source and compares it with the
//! document both ways, and checks the document's problem types against
//! `hetally_protocol::problem`.
//!
//! [`task_info_fields_match_the_definition`] checks the plain JSON layout
//! fields of `GET /tasks/{id}` against what the binary definition implies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hetally_client::Client;
use hetally_protocol::api::TaskInfo;
use hetally_protocol::problem::{ProblemType, PROBLEM_MEDIA_TYPE};
use hetally_protocol::report::REPORT_MEDIA_TYPE;
use hetally_protocol::{Layout, Report, TaskDefinition, TaskId};
use hetally_tests::*;
use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::{json, Value};

/// The document as kept in the repository (the server builds it in).
const DOCUMENT_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/openapi.json");

/// The server's source files that register HE routes: `http::configure`
/// and `/metrics` in `run` (DAP routes are under `/dap/` and out of scope).
const ROUTE_SOURCES: [(&str, &str); 2] = [
    (
        "server/src/http.rs",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../server/src/http.rs"
        )),
    ),
    (
        "server/src/lib.rs",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/src/lib.rs")),
    ),
];

/// Documented answers this test does not provoke, with the reason. Every
/// other documented status of every route must be seen.
const NOT_EXERCISED: &[(&str, &str, u16, &str)] = &[
    ("get", "/metrics", 500, "a datastore failure"),
    ("post", "/tasks", 500, "a datastore failure"),
    ("get", "/tasks", 500, "a datastore failure"),
    ("get", "/tasks/{task_id}", 500, "a datastore failure"),
    ("get", "/tasks/{task_id}/status", 500, "a datastore failure"),
    ("get", "/tasks/{task_id}/crs", 500, "a datastore failure"),
    (
        "put",
        "/tasks/{task_id}/reports",
        500,
        "a datastore failure",
    ),
    (
        "post",
        "/tasks/{task_id}/releases",
        500,
        "a datastore failure",
    ),
    (
        "get",
        "/tasks/{task_id}/releases",
        500,
        "a datastore failure",
    ),
    (
        "put",
        "/tasks/{task_id}/releases/{batch_start}/noise",
        500,
        "a datastore failure",
    ),
];

/// The 43-character id of no task (32 zero bytes).
const UNKNOWN_TASK: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Not a task id at all.
const MALFORMED_TASK: &str = "not-a-task-id";

/// One answer of the server, already checked against the document.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a JSON body was expected ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The problem type's short name, or `-` if the body is not a problem.
    fn problem(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string))
            .and_then(|t| ProblemType::from_uri(&t))
            .map_or_else(|| "-".to_string(), |p| p.name().to_string())
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }

    /// Asserts the server's behaviour (what this test asked for), apart
    /// from the contract: the status and, for errors, the problem type.
    fn expect(&self, status: u16, problem: Option<&str>, what: &str) -> &Self {
        let found = self.problem();
        assert!(
            self.status == status && problem.is_none_or(|p| p == found),
            "{what}: expected {status} {}, got {} {found}: {}",
            problem.unwrap_or(""),
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
        );
        self
    }
}

/// The document, and what was seen and found wrong while driving the
/// server.
struct Contract {
    doc: Value,
    http: reqwest::Client,
    base: String,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    /// (method, path template, status) of every answer.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
    /// Problem types answered, by short name.
    problems: Mutex<BTreeSet<String>>,
    violations: Mutex<Vec<String>>,
}

/// The media type of a `Content-Type` value: without parameters,
/// lower-cased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

impl Contract {
    fn new(doc: Value, base: &str) -> Self {
        Contract {
            doc,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            validators: Mutex::new(HashMap::new()),
            seen: Mutex::new(BTreeSet::new()),
            problems: Mutex::new(BTreeSet::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn violation(&self, v: String) {
        eprintln!("CONTRACT VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The operation of `method` (lower case) on `template`.
    fn operation(&self, method: &str, template: &str) -> Option<&Value> {
        self.doc["paths"].get(template)?.get(method)
    }

    /// Validates `instance` against a schema of the document; `key` names
    /// the schema (and caches its validator). The document's components
    /// go beside the schema so that its `#/components/...` references
    /// resolve.
    fn validate(&self, key: &str, schema: &Value, instance: &Value) -> Vec<String> {
        let validator = {
            let mut cache = self.validators.lock().unwrap();
            match cache.get(key) {
                Some(v) => v.clone(),
                None => {
                    let mut root = schema.clone();
                    match root.as_object_mut() {
                        Some(obj) => {
                            obj.insert("components".into(), self.doc["components"].clone());
                        }
                        None => return vec![format!("the schema of {key} is not an object")],
                    }
                    match jsonschema::draft202012::options().build(&root) {
                        Ok(v) => {
                            let v = Arc::new(v);
                            cache.insert(key.to_string(), v.clone());
                            v
                        }
                        Err(e) => {
                            return vec![format!("the schema of {key} does not compile: {e}")]
                        }
                    }
                }
            }
        };
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect()
    }

    /// Validates a request body this test sends as valid against the
    /// route's documented request schema.
    fn check_request(&self, method: &str, template: &str, body: &Value) {
        let here = format!("{} {template} request body", method.to_uppercase());
        let Some(schema) = self
            .operation(method, template)
            .and_then(|op| op.pointer("/requestBody/content/application~1json/schema"))
        else {
            self.violation(format!(
                "{here}: no application/json request schema documented"
            ));
            return;
        };
        for e in self.validate(&here, schema, body) {
            self.violation(format!("{here}: {e}"));
        }
    }

    /// Sends `req` (to `template`, by `method` in lower case) and checks
    /// the answer against the document.
    async fn call(&self, method: &str, template: &str, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {template}: no answer: {e}"));
        let answer = Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("reading the body").to_vec(),
        };
        self.check(method, template, &answer);
        answer
    }

    fn check(&self, method: &str, template: &str, a: &Answer) {
        let here = format!("{} {template} -> {}", method.to_uppercase(), a.status);
        let Some(op) = self.operation(method, template) else {
            self.violation(format!(
                "{} {template} is not in the document",
                method.to_uppercase()
            ));
            return;
        };
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_string(), template.to_string(), a.status));
        let Some(documented) = op["responses"].get(a.status.to_string()) else {
            let listed: Vec<&String> = op["responses"]
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            self.violation(format!(
                "{here}: status not documented (documented: {listed:?}); body {}",
                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
            ));
            return;
        };
        let media = a
            .headers
            .get("content-type")
            .map(|v| essence(v.to_str().unwrap_or_default()));
        match documented.get("content").and_then(Value::as_object) {
            None => {
                if !a.body.is_empty() || media.is_some() {
                    self.violation(format!(
                        "{here}: documented without a body, but the answer has {} bytes of {media:?}",
                        a.body.len()
                    ));
                }
            }
            Some(content) => match media {
                None => self.violation(format!(
                    "{here}: no Content-Type, documented: {:?}",
                    content.keys().collect::<Vec<_>>()
                )),
                Some(media) => match content.iter().find(|(k, _)| k.eq_ignore_ascii_case(&media)) {
                    None => self.violation(format!(
                        "{here}: Content-Type {media} is not documented ({:?})",
                        content.keys().collect::<Vec<_>>()
                    )),
                    Some((key, entry)) if is_json(&media) => {
                        let body: Value = match serde_json::from_slice(&a.body) {
                            Ok(v) => v,
                            Err(e) => {
                                self.violation(format!("{here}: {media} body is not JSON: {e}"));
                                return;
                            }
                        };
                        match entry.get("schema") {
                            Some(schema) => {
                                let id = format!("{here} {key}");
                                for e in self.validate(&id, schema, &body) {
                                    self.violation(format!("{here}: body {e}"));
                                }
                            }
                            None => self.violation(format!("{here}: {media} has no schema")),
                        }
                        if media == PROBLEM_MEDIA_TYPE {
                            self.check_problem(&here, a.status, &body);
                        }
                    }
                    Some(_) => {}
                },
            },
        }
        if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
            for (name, spec) in headers {
                let value = a.header(name);
                if spec["required"] == json!(true) && value.is_none() {
                    self.violation(format!("{here}: required header {name} is missing"));
                }
                if let (Some(value), Some(schema)) = (value, spec.get("schema")) {
                    let id = format!("{here} header {name}");
                    for e in self.validate(&id, schema, &Value::String(value)) {
                        self.violation(format!("{here}: header {name}: {e}"));
                    }
                }
            }
        }
    }

    /// A problem document's type must be one of hetally's, answered with
    /// its own status.
    fn check_problem(&self, here: &str, status: u16, body: &Value) {
        let uri = body["type"].as_str().unwrap_or_default();
        match ProblemType::from_uri(uri) {
            None => self.violation(format!("{here}: problem type {uri:?} is not hetally's")),
            Some(p) => {
                if p.status() != status {
                    self.violation(format!(
                        "{here}: problem {p} belongs to status {}",
                        p.status()
                    ));
                }
                self.problems.lock().unwrap().insert(p.name().to_string());
            }
        }
    }

    /// The reverse check: every route and method of the document was
    /// exercised, and every documented status of each was seen (or is in
    /// [`NOT_EXERCISED`]).
    fn check_coverage(&self) {
        let seen = self.seen.lock().unwrap().clone();
        for (template, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                let exercised = seen.iter().any(|(m, t, _)| m == method && t == template);
                if !exercised {
                    self.violation(format!(
                        "{} {template} is in the document but the test never called it",
                        method.to_uppercase()
                    ));
                    continue;
                }
                for code in responses.keys() {
                    let code: u16 = code.parse().unwrap_or_else(|_| {
                        panic!("{method} {template}: status {code:?} is not a number")
                    });
                    let excused = NOT_EXERCISED
                        .iter()
                        .any(|(m, t, c, _)| *m == method && *t == template && *c == code);
                    if !excused && !seen.contains(&(method.clone(), template.clone(), code)) {
                        self.violation(format!(
                            "{} {template}: documented status {code} was never seen",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
        for (m, t, c, why) in NOT_EXERCISED {
            if self
                .operation(m, t)
                .and_then(|op| op["responses"].get(c.to_string()))
                .is_none()
            {
                self.violation(format!(
                    "NOT_EXERCISED names {m} {t} {c} ({why}), which the document lacks"
                ));
            }
        }
    }

    fn finish(&self) {
        self.check_coverage();
        let seen = self.problems.lock().unwrap().clone();
        let unseen: Vec<&str> = ProblemType::ALL
            .iter()
            .map(|p| p.name())
            .filter(|n| !seen.contains(*n))
            .collect();
        println!(
            "contract: {} distinct (method, route, status) answers checked; {} problem types \
             seen; not provoked: {unseen:?}",
            self.seen.lock().unwrap().len(),
            seen.len()
        );
        let violations = self.violations.lock().unwrap();
        assert!(
            violations.is_empty(),
            "{} contract violations:\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
}

/// The routes registered in a source file: every `.route("PATH",
/// web::METHOD()` (the method in lower case).
fn routes_in_source(src: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let Some(open) = rest.find('"') else { break };
        if !rest[..open].trim().is_empty() {
            continue;
        }
        let after = &rest[open + 1..];
        let close = after.find('"').expect("a closed path literal");
        let path = &after[..close];
        let after = &after[close + 1..];
        let web = after.find("web::").expect("web::METHOD() after the path");
        let method: String = after[web + "web::".len()..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        routes.push((method, path.to_string()));
    }
    routes
}

#[test]
fn every_route_the_server_registers_is_documented() {
    let doc: Value = serde_json::from_slice(&std::fs::read(DOCUMENT_FILE).unwrap())
        .expect("server/openapi.json is JSON");
    let mut registered = BTreeSet::new();
    for (file, src) in ROUTE_SOURCES {
        let routes = routes_in_source(src);
        assert!(!routes.is_empty(), "no .route(...) found in {file}");
        registered.extend(routes);
    }
    assert!(
        registered.len() >= 10,
        "the route scan found only {registered:?}: has the route table's shape changed?"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if method != "parameters" {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unregistered.is_empty(),
        "the server registers routes the document lacks: {undocumented:?}; the document has \
         routes the server does not register: {unregistered:?}"
    );

    // The problem types: exactly hetally_protocol's, with their
    // descriptions and statuses.
    let kinds = &doc["components"]["schemas"]["ProblemType"];
    let uris: Vec<String> = ProblemType::ALL.iter().map(|p| p.uri()).collect();
    let descriptions: Vec<&str> = ProblemType::ALL.iter().map(|p| p.description()).collect();
    let statuses: Vec<u16> = ProblemType::ALL.iter().map(|p| p.status()).collect();
    assert_eq!(kinds["enum"], json!(uris), "ProblemType enum");
    assert_eq!(
        kinds["x-enum-descriptions"],
        json!(descriptions),
        "ProblemType descriptions"
    );
    assert_eq!(
        kinds["x-enum-statuses"],
        json!(statuses),
        "ProblemType statuses"
    );
    // Each answer's narrowed list of problem types names only types of
    // its own status.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (code, r) in responses {
                let Some(schema) = r.pointer("/content/application~1problem+json/schema") else {
                    continue;
                };
                let names = schema
                    .pointer("/allOf/1/properties/type/enum")
                    .and_then(Value::as_array)
                    .unwrap_or_else(|| panic!("{method} {path} {code}: no list of problem types"));
                for uri in names {
                    let p = ProblemType::from_uri(uri.as_str().unwrap_or_default())
                        .unwrap_or_else(|| panic!("{method} {path} {code}: unknown type {uri}"));
                    assert_eq!(
                        p.status().to_string(),
                        *code,
                        "{method} {path}: {p} listed under {code}"
                    );
                }
            }
        }
    }
}

/// A server of the contract test: its URL and admin token.
struct Server {
    process: ServerProcess,
    admin: String,
}

impl Server {
    /// On SQLite, or with `HETALLY_TEST_STORE=postgres` on a PostgreSQL
    /// database of its own, as the other modules' servers.
    fn start(dir: &std::path::Path, extra: &[&str]) -> Self {
        let database = use_postgres().then(|| postgres_database(&dir.display().to_string()));
        let process = ServerProcess::start_with(dir, 0, database.as_deref(), extra).unwrap();
        let admin = std::fs::read_to_string(process.admin_token_file())
            .unwrap()
            .trim()
            .to_string();
        Server { process, admin }
    }
}

/// A `POST /tasks` body.
fn task_body(public_key: &std::path::Path, measurement: &str, extra: Value) -> Value {
    let mut body = json!({
        "public_key": STANDARD.encode(std::fs::read(public_key).unwrap()),
        "measurement": measurement,
        "min_batch_size": 1,
        "time_precision": 60,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A created task: id and collector token.
struct Task {
    id: String,
    token: String,
}

async fn create(c: &Contract, admin: &str, body: Value) -> Task {
    c.check_request("post", "/tasks", &body);
    let a = c
        .call(
            "post",
            "/tasks",
            c.http.post(c.url("/tasks")).bearer_auth(admin).json(&body),
        )
        .await;
    a.expect(201, None, "creating a task");
    let v = a.json();
    Task {
        id: v["task_id"].as_str().unwrap().to_string(),
        token: v["collector_token"].as_str().unwrap().to_string(),
    }
}

async fn client(base: &str, task: &str) -> Client {
    Client::connect(Url::parse(base).unwrap(), TaskId::from_str(task).unwrap())
        .await
        .unwrap()
}

fn now_aligned() -> u64 {
    let t = now();
    t - t % 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_answers_as_its_openapi_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let (_, tfhe_pk) = keygen_scheme(&dir.path().join("tfhe-keys"), "tfhe");
    let server = Server::start(&dir.path().join("data"), &[]);
    let base = server.process.url.clone();
    let admin = server.admin.as_str();

    // The document, as served; it must be the repository's file.
    let http = reqwest::Client::new();
    let served = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = served.json().await.expect("/openapi.json is JSON");
    let file: Value = serde_json::from_slice(&std::fs::read(DOCUMENT_FILE).unwrap()).unwrap();
    assert_eq!(
        doc, file,
        "the server serves a document other than server/openapi.json"
    );
    let c = Contract::new(doc, &base);

    // --- operations routes ---
    c.call("get", "/healthz", c.http.get(c.url("/healthz")))
        .await
        .expect(200, None, "healthz");
    let a = c
        .call("get", "/openapi.json", c.http.get(c.url("/openapi.json")))
        .await;
    a.expect(200, None, "openapi.json");
    let etag = a.header("etag").expect("an ETag");
    c.call(
        "get",
        "/openapi.json",
        c.http
            .get(c.url("/openapi.json"))
            .header("if-none-match", &etag),
    )
    .await
    .expect(304, None, "openapi.json with its own tag");
    c.call(
        "get",
        "/openapi.json",
        c.http
            .get(c.url("/openapi.json"))
            .header("if-none-match", "\"another\""),
    )
    .await
    .expect(200, None, "openapi.json with another tag");
    c.call("get", "/metrics", c.http.get(c.url("/metrics")))
        .await
        .expect(401, Some("missingToken"), "metrics without a token");
    c.call(
        "get",
        "/metrics",
        c.http.get(c.url("/metrics")).bearer_auth("wrong"),
    )
    .await
    .expect(403, Some("wrongToken"), "metrics with a wrong token");

    // --- POST /tasks and GET /tasks ---
    let count_body = task_body(
        &pk,
        "count",
        json!({"input_proofs": false, "max_batch_size": 1000}),
    );
    let task = create(&c, admin, count_body.clone()).await;
    let tasks_url = c.url("/tasks");
    c.call(
        "post",
        "/tasks",
        c.http.post(&tasks_url).bearer_auth(admin).json(&count_body),
    )
    .await
    .expect(409, Some("taskExists"), "the same task again");
    c.call("post", "/tasks", c.http.post(&tasks_url).json(&count_body))
        .await
        .expect(401, Some("missingToken"), "create without a token");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth("wrong")
            .json(&count_body),
    )
    .await
    .expect(403, Some("wrongToken"), "create with a wrong token");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth(&task.token)
            .json(&count_body),
    )
    .await
    .expect(403, Some("wrongToken"), "create with a collector token");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth(admin)
            .json(&task_body(&pk, "bogus:3", json!({}))),
    )
    .await
    .expect(400, Some("invalidTask"), "an unknown measurement");
    c.call(
        "post",
        "/tasks",
        c.http.post(&tasks_url).bearer_auth(admin).json(&task_body(
            &pk,
            "count",
            json!({"colour": "red"}),
        )),
    )
    .await
    .expect(400, Some("badRequest"), "an unknown member");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body("{\"measurement\": "),
    )
    .await
    .expect(400, Some("badRequest"), "malformed JSON");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth(admin)
            .header("content-type", "text/plain")
            .body(count_body.to_string()),
    )
    .await
    .expect(415, Some("unsupportedMediaType"), "text/plain");
    c.call(
        "post",
        "/tasks",
        c.http
            .post(&tasks_url)
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body(vec![b' '; (1 << 20) + 1]),
    )
    .await
    .expect(413, Some("payloadTooLarge"), "a body over 1 MiB");
    c.call("get", "/tasks", c.http.get(&tasks_url).bearer_auth(admin))
        .await
        .expect(200, None, "list");
    c.call("get", "/tasks", c.http.get(&tasks_url))
        .await
        .expect(401, Some("missingToken"), "list without a token");
    c.call(
        "get",
        "/tasks",
        c.http.get(&tasks_url).bearer_auth(&task.token),
    )
    .await
    .expect(403, Some("wrongToken"), "list with a collector token");

    // The other tasks: with proofs, DP under add-remove, TFHE with a CRS.
    let proven = create(&c, admin, task_body(&pk, "count", json!({}))).await;
    let add_remove = create(
        &c,
        admin,
        task_body(
            &pk,
            "count",
            json!({"input_proofs": false, "dp": "laplace:1", "budget": "1",
                   "relation": "add-remove", "min_batch_size": 1000, "max_batch_size": 10000}),
        ),
    )
    .await;
    let tfhe = create(&c, admin, task_body(&tfhe_pk, "count", json!({}))).await;

    // --- GET /tasks/{id} and /crs ---
    let t = "/tasks/{task_id}";
    for (id, status, problem) in [
        (task.id.as_str(), 200, None),
        (tfhe.id.as_str(), 200, None),
        (UNKNOWN_TASK, 404, Some("unrecognizedTask")),
        (MALFORMED_TASK, 400, Some("badRequest")),
    ] {
        c.call("get", t, c.http.get(c.url(&format!("/tasks/{id}"))))
            .await
            .expect(status, problem, "get task");
    }
    let t = "/tasks/{task_id}/crs";
    for (id, status, problem) in [
        (tfhe.id.as_str(), 200, None),
        (task.id.as_str(), 404, Some("notFound")),
        (UNKNOWN_TASK, 404, Some("unrecognizedTask")),
        (MALFORMED_TASK, 400, Some("badRequest")),
    ] {
        c.call("get", t, c.http.get(c.url(&format!("/tasks/{id}/crs"))))
            .await
            .expect(status, problem, "get CRS");
    }

    // --- PUT /tasks/{id}/reports ---
    let t = "/tasks/{task_id}/reports";
    let t0 = now_aligned();
    let upload = |id: &str, body: Vec<u8>, media: &str| {
        c.http
            .put(c.url(&format!("/tasks/{id}/reports")))
            .header("content-type", media)
            .body(body)
    };
    let counter = client(&base, &task.id).await;
    let report = counter.prepare(&[1], t0).unwrap();
    c.call(
        "put",
        t,
        upload(&task.id, report.to_bytes(), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(201, None, "a report");
    c.call(
        "put",
        t,
        upload(&task.id, report.to_bytes(), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(409, Some("reportReplayed"), "the same report again");
    let second = counter.prepare(&[0], t0).unwrap();
    c.call(
        "put",
        t,
        upload(&task.id, second.to_bytes(), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(201, None, "a second report");
    let fresh = |time: u64, payload: Vec<u8>| {
        let mut r = counter.prepare(&[1], t0).unwrap();
        r.time = time;
        if !payload.is_empty() {
            r.payload = payload;
        }
        r.to_bytes()
    };
    let ciphertext = report.payload[4..].to_vec();
    let mut two = vec![0, 0, 0, 2];
    two.extend_from_slice(&ciphertext);
    two.extend_from_slice(&ciphertext);
    let mut zero = vec![0, 0, 0, 1];
    zero.extend(std::iter::repeat_n(0u8, ciphertext.len()));
    let bad_reports: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"not a report".to_vec(),
            REPORT_MEDIA_TYPE,
            400,
            "invalidMessage",
        ),
        (
            fresh(t0, two),
            REPORT_MEDIA_TYPE,
            400,
            "wrongCiphertextCount",
        ),
        (fresh(t0, zero), REPORT_MEDIA_TYPE, 400, "invalidCiphertext"),
        (
            fresh(t0 + 1, vec![]),
            REPORT_MEDIA_TYPE,
            400,
            "misalignedTime",
        ),
        (
            fresh(t0 + 3600, vec![]),
            REPORT_MEDIA_TYPE,
            400,
            "reportTooEarly",
        ),
        (fresh(60, vec![]), REPORT_MEDIA_TYPE, 400, "reportExpired"),
        (fresh(t0, vec![]), "text/plain", 415, "unsupportedMediaType"),
        (
            fresh(t0, vec![]),
            "application/json",
            415,
            "unsupportedMediaType",
        ),
        (
            vec![1u8; 1 << 16],
            REPORT_MEDIA_TYPE,
            413,
            "payloadTooLarge",
        ),
    ];
    for (body, media, status, problem) in bad_reports {
        c.call("put", t, upload(&task.id, body, media))
            .await
            .expect(status, Some(problem), problem);
    }
    c.call(
        "put",
        t,
        upload(UNKNOWN_TASK, fresh(t0, vec![]), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(404, Some("unrecognizedTask"), "upload to no task");
    c.call(
        "put",
        t,
        upload(MALFORMED_TASK, fresh(t0, vec![]), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(400, Some("badRequest"), "upload to a malformed id");
    // A proof that does not verify: the last byte of the last response.
    let prover = client(&base, &proven.id).await;
    let mut forged = tokio::task::block_in_place(|| prover.prepare(&[1], t0).unwrap());
    *forged.payload.last_mut().unwrap() ^= 1;
    c.call(
        "put",
        t,
        upload(&proven.id, forged.to_bytes(), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(400, Some("invalidProof"), "a forged proof");

    // --- status ---
    let t = "/tasks/{task_id}/status";
    let status_of = |id: &str| c.http.get(c.url(&format!("/tasks/{id}/status")));
    c.call("get", t, status_of(&task.id).bearer_auth(&task.token))
        .await
        .expect(200, None, "status, collector");
    c.call(
        "get",
        t,
        status_of(&add_remove.id).bearer_auth(&add_remove.token),
    )
    .await
    .expect(200, None, "status, add-remove collector");
    c.call("get", t, status_of(&add_remove.id).bearer_auth(admin))
        .await
        .expect(200, None, "status, admin");
    c.call("get", t, status_of(&task.id)).await.expect(
        401,
        Some("missingToken"),
        "status without a token",
    );
    c.call("get", t, status_of(&task.id).bearer_auth(&proven.token))
        .await
        .expect(403, Some("wrongToken"), "status with another task's token");
    c.call("get", t, status_of(UNKNOWN_TASK).bearer_auth(admin))
        .await
        .expect(404, Some("unrecognizedTask"), "status of no task");
    c.call("get", t, status_of(MALFORMED_TASK).bearer_auth(admin))
        .await
        .expect(400, Some("badRequest"), "status of a malformed id");

    // --- POST /tasks/{id}/releases ---
    let t = "/tasks/{task_id}/releases";
    let release = |id: &str, token: &str, body: &Value| {
        c.check_request("post", t, body);
        c.http
            .post(c.url(&format!("/tasks/{id}/releases")))
            .bearer_auth(token)
            .json(body)
    };
    let interval = json!({"start": t0, "duration": 60});
    let a = c
        .call("post", t, release(&task.id, &task.token, &interval))
        .await;
    a.expect(201, None, "a release");
    assert_eq!(a.header("hetally-report-count").as_deref(), Some("2"));
    assert_eq!(a.header("hetally-noisy-report-count"), None);
    let again = c
        .call("post", t, release(&task.id, &task.token, &interval))
        .await;
    again.expect(200, None, "the same release again");
    assert_eq!(again.body, a.body, "an earlier release answers its bytes");
    c.call(
        "put",
        "/tasks/{task_id}/reports",
        upload(&task.id, fresh(t0, vec![]), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(
        409,
        Some("batchCollected"),
        "a report into a released batch",
    );
    let releases_url = c.url(&format!("/tasks/{}/releases", task.id));
    let release_cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            release(
                &task.id,
                &task.token,
                &json!({"start": t0 - 60, "duration": 120}),
            ),
            409,
            "batchOverlap",
        ),
        (
            release(
                &task.id,
                &task.token,
                &json!({"start": t0 - 3600, "duration": 60}),
            ),
            400,
            "invalidBatchSize",
        ),
        (
            release(
                &task.id,
                &task.token,
                &json!({"start": t0 + 1, "duration": 60}),
            ),
            400,
            "batchInvalid",
        ),
        (
            release(&task.id, &task.token, &json!({"start": t0, "duration": 0})),
            400,
            "batchInvalid",
        ),
        (
            c.http
                .post(&releases_url)
                .bearer_auth(&task.token)
                .json(&json!({"start": t0, "duration": 60, "extra": 1})),
            400,
            "badRequest",
        ),
        (
            c.http
                .post(&releases_url)
                .bearer_auth(&task.token)
                .header("content-type", "application/json")
                .body("[1, 2"),
            400,
            "badRequest",
        ),
        (
            c.http.post(&releases_url).json(&interval),
            401,
            "missingToken",
        ),
        (
            c.http
                .post(&releases_url)
                .bearer_auth(admin)
                .json(&interval),
            403,
            "wrongToken",
        ),
        (
            c.http
                .post(&releases_url)
                .bearer_auth(&task.token)
                .header("content-type", "text/plain")
                .body(interval.to_string()),
            415,
            "unsupportedMediaType",
        ),
        (
            c.http
                .post(&releases_url)
                .bearer_auth(&task.token)
                .header("content-type", "application/json")
                .body(vec![b' '; (1 << 20) + 1]),
            413,
            "payloadTooLarge",
        ),
        (
            release(UNKNOWN_TASK, &task.token, &interval),
            404,
            "unrecognizedTask",
        ),
        (
            release(MALFORMED_TASK, &task.token, &interval),
            400,
            "badRequest",
        ),
    ];
    for (req, status, problem) in release_cases {
        c.call("post", t, req)
            .await
            .expect(status, Some(problem), problem);
    }
    // Add-remove: an empty batch's noisy count is far below the minimum
    // of 1000, so the release is withheld; its budget is spent, so a
    // later release finds the budget exhausted.
    let a = c
        .call(
            "post",
            t,
            release(
                &add_remove.id,
                &add_remove.token,
                &json!({"start": t0 - 7200, "duration": 60}),
            ),
        )
        .await;
    a.expect(
        409,
        Some("batchWithheld"),
        "an add-remove batch below the minimum",
    );
    assert!(a.json()["noisy_report_count"].is_i64(), "{}", a.json());
    let mut exhausted = false;
    for i in 1..=4u64 {
        let a = c
            .call(
                "post",
                t,
                release(
                    &add_remove.id,
                    &add_remove.token,
                    &json!({"start": t0 - 7200 + 60 * i, "duration": 60}),
                ),
            )
            .await;
        if a.status == 409 && a.problem() == "budgetExhausted" {
            exhausted = true;
            break;
        }
        a.expect(409, Some("batchWithheld"), "a release while budget remains");
    }
    assert!(exhausted, "a budget of 1 never ran out");

    // --- PUT /tasks/{id}/releases/{start}/noise ---
    let t = "/tasks/{task_id}/releases/{batch_start}/noise";
    let noise = |id: &str, start: &str| {
        c.http
            .put(c.url(&format!("/tasks/{id}/releases/{start}/noise")))
            .header(
                "content-type",
                hetally_protocol::report::NOISE_CONTRIBUTION_MEDIA_TYPE,
            )
            .body(vec![0u8; 8])
    };
    c.call(
        "put",
        t,
        noise(&task.id, &t0.to_string()).bearer_auth(&task.token),
    )
    .await
    .expect(404, Some("notFound"), "noise for a task the server noises");
    c.call("put", t, noise(UNKNOWN_TASK, "60")).await.expect(
        404,
        Some("unrecognizedTask"),
        "noise for no task",
    );
    c.call("put", t, noise(MALFORMED_TASK, "60")).await.expect(
        400,
        Some("badRequest"),
        "noise for a malformed id",
    );
    c.call("put", t, noise(&task.id, "soon")).await.expect(
        400,
        Some("badRequest"),
        "noise for a malformed start",
    );

    // The trustee noise round, on a 2-of-2 threshold key: a task whose
    // two trustees draw its noise, one report, a release that waits (202),
    // contributions stored (201), repeated (200) and refused.
    let committee = dir.path().join("committee");
    run_ok(
        "hetally-keytool",
        &[
            "keygen",
            "--scheme",
            "paillier",
            "--trustees",
            "2",
            "--threshold",
            "2",
            "--out",
            &committee.display().to_string(),
        ],
    );
    let body = task_body(
        &committee.join("collector.pk"),
        "count",
        json!({"dp": "gaussian:1/8", "budget": "10", "trustee_noise": "2", "input_proofs": false}),
    );
    c.check_request("post", "/tasks", &body);
    let made = c
        .call(
            "post",
            "/tasks",
            c.http.post(c.url("/tasks")).bearer_auth(admin).json(&body),
        )
        .await;
    made.expect(201, None, "a task with trustee noise");
    let made = made.json();
    let noisy = Task {
        id: made["task_id"].as_str().unwrap().to_string(),
        token: made["collector_token"].as_str().unwrap().to_string(),
    };
    let trustee: Vec<String> = made["trustee_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(trustee.len(), 2);
    let noisy_client = client(&base, &noisy.id).await;
    let report = noisy_client.prepare(&[1], t0).unwrap();
    c.call(
        "put",
        "/tasks/{task_id}/reports",
        upload(&noisy.id, report.to_bytes(), REPORT_MEDIA_TYPE),
    )
    .await
    .expect(201, None, "a report to the trustee-noise task");
    let waiting = c
        .call(
            "post",
            "/tasks/{task_id}/releases",
            release(&noisy.id, &noisy.token, &interval),
        )
        .await;
    waiting.expect(202, None, "a release waiting for noise");
    assert_eq!(waiting.json()["needed"], 2);
    let media = hetally_protocol::report::NOISE_CONTRIBUTION_MEDIA_TYPE;
    let put = |token: Option<&str>, content_type: &str, body: Vec<u8>| {
        let r = c
            .http
            .put(c.url(&format!("/tasks/{}/releases/{t0}/noise", noisy.id)))
            .header("content-type", content_type)
            .body(body);
        match token {
            Some(token) => r.bearer_auth(token),
            None => r,
        }
    };
    let contribution =
        |i: u16| hetally_client::noise_contribution(noisy_client.definition(), t0, i).unwrap();
    let first = contribution(1);
    let cases: Vec<(reqwest::RequestBuilder, u16, Option<&str>, &str)> = vec![
        (
            put(None, media, first.clone()),
            401,
            Some("missingToken"),
            "noise without a token",
        ),
        (
            put(Some(&noisy.token), media, first.clone()),
            403,
            Some("wrongToken"),
            "noise with the collector's token",
        ),
        (
            put(Some(&trustee[0]), "application/octet-stream", first.clone()),
            415,
            Some("unsupportedMediaType"),
            "noise of another media type",
        ),
        (
            put(Some(&trustee[0]), media, vec![0; 1 << 20]),
            413,
            Some("payloadTooLarge"),
            "an oversized contribution",
        ),
        (
            put(Some(&trustee[1]), media, first.clone()),
            400,
            Some("badRequest"),
            "trustee 1's contribution with trustee 2's token",
        ),
        (
            put(Some(&trustee[0]), media, first.clone()),
            201,
            None,
            "trustee 1's contribution",
        ),
        (
            put(Some(&trustee[0]), media, first.clone()),
            200,
            None,
            "the same contribution again",
        ),
        (
            put(Some(&trustee[0]), media, contribution(1)),
            409,
            Some("noiseRefused"),
            "another contribution of trustee 1",
        ),
        (
            put(Some(&trustee[1]), media, contribution(2)),
            201,
            None,
            "trustee 2's contribution",
        ),
    ];
    for (request, status, problem, what) in cases {
        c.call("put", t, request)
            .await
            .expect(status, problem, what);
    }
    let released = c
        .call(
            "post",
            "/tasks/{task_id}/releases",
            release(&noisy.id, &noisy.token, &interval),
        )
        .await;
    released.expect(201, None, "the release with its trustees' noise");

    // --- GET /tasks/{id}/releases ---
    let t = "/tasks/{task_id}/releases";
    let list = |id: &str| c.http.get(c.url(&format!("/tasks/{id}/releases")));
    c.call("get", t, list(&task.id).bearer_auth(&task.token))
        .await
        .expect(200, None, "audit log, collector");
    let log = c
        .call(
            "get",
            t,
            list(&add_remove.id).bearer_auth(&add_remove.token),
        )
        .await;
    log.expect(200, None, "audit log, add-remove collector");
    assert!(log.json()["releases"][0]["report_count"].is_null());
    c.call("get", t, list(&add_remove.id).bearer_auth(admin))
        .await
        .expect(200, None, "audit log, admin");
    c.call("get", t, list(&task.id)).await.expect(
        401,
        Some("missingToken"),
        "audit log without a token",
    );
    c.call("get", t, list(&task.id).bearer_auth("wrong"))
        .await
        .expect(403, Some("wrongToken"), "audit log with a wrong token");
    c.call("get", t, list(UNKNOWN_TASK).bearer_auth(admin))
        .await
        .expect(404, Some("unrecognizedTask"), "audit log of no task");
    c.call("get", t, list(MALFORMED_TASK).bearer_auth(admin))
        .await
        .expect(400, Some("badRequest"), "audit log of a malformed id");

    // Metrics last, so that they have something to say.
    c.call(
        "get",
        "/metrics",
        c.http.get(c.url("/metrics")).bearer_auth(admin),
    )
    .await
    .expect(200, None, "metrics");

    // --- 429: a flood of proof-carrying uploads against queues of one ---
    let busy = Server::start(
        &dir.path().join("busy"),
        &["--verify-queue-reports", "1", "--write-queue-reports", "1"],
    );
    let busy_c = Contract::new(c.doc.clone(), &busy.process.url);
    let flood_task = create(&busy_c, &busy.admin, task_body(&pk, "count", json!({}))).await;
    let flood_client = client(&busy.process.url, &flood_task.id).await;
    let reports: Vec<Report> = tokio::task::block_in_place(|| {
        (0..48)
            .map(|i| flood_client.prepare(&[i % 2], t0).unwrap())
            .collect()
    });
    let answers = futures::future::join_all(reports.iter().map(|r| {
        busy_c.call(
            "put",
            "/tasks/{task_id}/reports",
            busy_c
                .http
                .put(busy_c.url(&format!("/tasks/{}/reports", flood_task.id)))
                .header("content-type", REPORT_MEDIA_TYPE)
                .body(r.to_bytes()),
        )
    }))
    .await;
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for a in &answers {
        *by_status.entry(a.status).or_default() += 1;
        if a.status == 429 {
            a.expect(429, Some("tooManyRequests"), "the flood");
        } else {
            a.expect(201, None, "the flood");
        }
    }
    println!("flood of 48 proof-carrying uploads against queues of 1: {by_status:?}");
    // What the busy server answered counts for the coverage too.
    c.seen
        .lock()
        .unwrap()
        .extend(busy_c.seen.lock().unwrap().iter().cloned());
    c.problems
        .lock()
        .unwrap()
        .extend(busy_c.problems.lock().unwrap().iter().cloned());
    c.violations
        .lock()
        .unwrap()
        .extend(busy_c.violations.lock().unwrap().iter().cloned());

    c.finish();
}

/// What a definition implies for the plain layout fields of `TaskInfo`,
/// re-derived here from the definition alone.
fn check_layout_fields(info: &TaskInfo) -> TaskDefinition {
    let bytes = URL_SAFE_NO_PAD.decode(&info.definition).unwrap();
    let def = TaskDefinition::verify(&bytes, &TaskId::from_str(&info.task_id).unwrap()).unwrap();
    let key = hetally_schemes::PublicKeyFile::from_bytes(&def.public_key)
        .unwrap()
        .details();
    let len = def.measurement.len() as u64;
    assert_eq!(info.scheme, def.scheme().to_string());
    assert_eq!(info.measurement, def.measurement.to_string());
    assert_eq!(info.input_proofs, def.input_proofs);
    assert_eq!(info.time_precision, def.time_precision);
    match def.layout {
        Layout::Paillier { slot_bits } => {
            let modulus_bits = key.modulus_bits.unwrap();
            // The slot width the packing layout derives, DP tail included.
            let derived = hetally_schemes::paillier::layout::slot_bits(
                modulus_bits,
                &def.measurement,
                &def.dp,
                def.relation,
                def.trustee_noise.as_ref(),
                def.max_batch_size,
            )
            .unwrap();
            assert_eq!(slot_bits, derived, "the definition's layout");
            assert_eq!(info.slot_bits, Some(slot_bits), "slot_bits");
            let k = (modulus_bits - 2) / slot_bits;
            assert_eq!(info.slots_per_ciphertext, Some(k), "slots_per_ciphertext");
            assert_eq!(info.ciphertexts_per_report, len.div_ceil(u64::from(k)));
            assert_eq!(info.delta_log2, None);
        }
        Layout::Tfhe { delta_log2, .. } => {
            let n = key.lwe_dimension.unwrap() as u64;
            assert_eq!(info.slot_bits, None, "TFHE has no slots");
            assert_eq!(info.slots_per_ciphertext, None);
            assert_eq!(info.delta_log2, Some(delta_log2), "delta_log2");
            assert_eq!(info.ciphertexts_per_report, len.div_ceil(n), "TFHE lists");
        }
    }
    def
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_info_fields_match_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(&dir.path().join("keys"));
    let (_, tfhe_pk) = keygen_scheme(&dir.path().join("tfhe-keys"), "tfhe");
    let server = Server::start(&dir.path().join("data"), &[]);
    let c = Contract::new(Value::Null, &server.process.url);
    let info = |id: String| {
        let http = c.http.clone();
        let url = c.url(&format!("/tasks/{id}"));
        async move {
            let info: TaskInfo = http.get(url).send().await.unwrap().json().await.unwrap();
            info
        }
    };
    let no_proofs = json!({"input_proofs": false});
    // (body, slot width, slots per ciphertext, ciphertexts per report),
    // the widths from docs/protocol.md section 9.2 (2048-bit key).
    let paillier = [
        (
            task_body(
                &pk,
                "count",
                json!({"input_proofs": false, "max_batch_size": 1000}),
            ),
            12,
            170,
            1,
        ),
        // The DP noise's tail bound (46 for laplace:1) widens the slot.
        (
            task_body(
                &pk,
                "count",
                json!({"input_proofs": false, "max_batch_size": 1000,
                       "dp": "laplace:1", "budget": "1"}),
            ),
            13,
            157,
            1,
        ),
        // 100 buckets at 60 slots per ciphertext: two ciphertexts.
        (
            task_body(&pk, "histogram:100", no_proofs.clone()),
            34,
            60,
            2,
        ),
        (task_body(&pk, "histogram:100", json!({})), 34, 60, 2),
    ];
    for (body, w, k, cts) in paillier {
        let task = create_plain(&c, &server.admin, &body).await;
        let info = info(task.clone()).await;
        let def = check_layout_fields(&info);
        assert_eq!(
            (
                info.slot_bits,
                info.slots_per_ciphertext,
                info.ciphertexts_per_report
            ),
            (Some(w), Some(k), cts),
            "{body}"
        );
        // A real report without proofs carries that many ciphertexts
        // (the count field of section 9.3).
        if !def.input_proofs {
            let client = client(&server.process.url, &task).await;
            // One bucket set (a histogram needs exactly one), or a 1.
            let mut values = vec![0; def.measurement.len()];
            values[0] = 1;
            let report = client.prepare(&values, now()).unwrap();
            let count = u32::from_be_bytes(report.payload[..4].try_into().unwrap());
            assert_eq!(u64::from(count), info.ciphertexts_per_report, "{body}");
        }
    }
    // Add-remove makes room for the count noise's tail too: re-derived by
    // check_layout_fields, and wider than replace-one's.
    let add_remove = create_plain(
        &c,
        &server.admin,
        &task_body(
            &pk,
            "sum:8",
            json!({"input_proofs": false, "max_batch_size": 1000, "dp": "laplace:1",
                   "budget": "1", "relation": "add-remove"}),
        ),
    )
    .await;
    let info_ar = info(add_remove).await;
    check_layout_fields(&info_ar);
    assert_eq!(
        info_ar.slot_bits,
        Some(24),
        "docs: sum:8, laplace:1, add-remove"
    );
    // TFHE: no slots; Delta, and lists of at most n = 2048 values.
    let tfhe = create_plain(
        &c,
        &server.admin,
        &task_body(&tfhe_pk, "histogram:3000", no_proofs.clone()),
    )
    .await;
    let info_t = info(tfhe).await;
    check_layout_fields(&info_t);
    assert_eq!(info_t.ciphertexts_per_report, 2);
    // An answer from a server that predates the fields still parses.
    let mut old = serde_json::to_value(&info_t).unwrap();
    for field in [
        "slot_bits",
        "slots_per_ciphertext",
        "delta_log2",
        "ciphertexts_per_report",
    ] {
        old.as_object_mut().unwrap().remove(field);
    }
    let old: TaskInfo = serde_json::from_value(old).unwrap();
    assert_eq!((old.slot_bits, old.ciphertexts_per_report), (None, 0));
}

/// `POST /tasks` without the contract bookkeeping; returns the task id.
async fn create_plain(c: &Contract, admin: &str, body: &Value) -> String {
    let r = c
        .http
        .post(c.url("/tasks"))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}: {v}");
    v["task_id"].as_str().unwrap().to_string()
}
