//! Prometheus metrics, served at `GET /metrics` to the operator alone.
//!
//! The `metrics` crate's recorder is process-global: [`install`] sets up
//! the Prometheus recorder once per process ([`OnceLock`]) and every server
//! started in the process shares it, so a test binary that starts several
//! servers sees the sum of their counts. Histogram samples wait in the
//! recorder until drained, so a background thread runs its upkeep every
//! few seconds whether anyone scrapes or not.
//!
//! Privacy: the upload counters would tell the collector exact report
//! counts, which add/remove DP tasks hide from it (docs/dp.md). The scrape
//! endpoint therefore takes the admin token ([`Aggregator::check_admin`]),
//! like every other operator route.
//!
//! Every metric is named here ([`names`]) and described in [`install`];
//! docs/operations.md lists them. Label values are bounded: route
//! *patterns*, never raw paths; problem type names, never details; task ids
//! only of tasks the operator created.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, Counter, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::aggregator::{Aggregator, Error};
use crate::auth::bearer;

/// Metric names: `hetally_*`, with their unit in the name.
pub mod names {
    /// Counter `{api, outcome}`: uploads, by API (`he`, `dap`) and outcome
    /// (`accepted`, or the problem type name of the refusal).
    pub const UPLOADS: &str = "hetally_uploads_total";
    /// Counter `{route, method, status}`: HTTP requests by route pattern,
    /// method and status class (`2xx` ...).
    pub const HTTP_REQUESTS: &str = "hetally_http_requests_total";
    /// Histogram `{route, method}`: seconds from the request's head to its
    /// response.
    pub const HTTP_DURATION: &str = "hetally_http_request_duration_seconds";
    /// Gauge `{api}`: age of the oldest report in no aggregation job,
    /// sampled at scrape time.
    pub const AGGREGATION_LAG: &str = "hetally_aggregation_lag_seconds";
    /// Counter `{api, outcome}`: aggregation jobs finished by this process
    /// (`done`, `failed`, `lease_lost`).
    pub const AGGREGATION_JOBS: &str = "hetally_aggregation_jobs_total";
    /// Counter `{task_id, outcome}`: HE releases made by this process
    /// (`released`, `withheld`).
    pub const RELEASES: &str = "hetally_releases_total";
    /// Counter `{task_id, outcome}`: trustees' noise contributions answered
    /// (`stored`, `repeated`, `refused`).
    pub const NOISE_CONTRIBUTIONS: &str = "hetally_noise_contributions_total";
    /// Counter `{task_id}`: DAP collection jobs this leader finished.
    pub const DAP_COLLECTIONS: &str = "hetally_dap_collections_total";
    /// Gauge `{task_id}`: DP budget an HE task has spent, as a float.
    pub const BUDGET_SPENT: &str = "hetally_dp_budget_spent";
    /// Gauge `{pool, state}`: database connections in use and idle.
    pub const DB_CONNECTIONS: &str = "hetally_db_connections";
    /// Gauge: when the process started, Unix seconds.
    pub const START_TIME: &str = "hetally_process_start_time_seconds";
    /// Histogram: seconds to verify one batch of reports.
    pub const VERIFY_SECONDS: &str = "hetally_verify_seconds";
    /// Histogram: reports per verified batch.
    pub const VERIFY_BATCH_REPORTS: &str = "hetally_verify_batch_reports";
    /// Gauge `{queue}`: jobs waiting in a queue (`verifier`, `writer`,
    /// `dap_writer`).
    pub const QUEUE_DEPTH: &str = "hetally_queue_depth";
    /// Counter `{queue}`: requests refused with 429 because a queue was
    /// full.
    pub const SHED: &str = "hetally_shed_total";
    /// Counter `{kind}`: rows the garbage collector deleted.
    pub const GC_DELETED: &str = "hetally_gc_deleted_total";
    /// Counter `{outcome}`: garbage-collector runs.
    pub const GC_RUNS: &str = "hetally_gc_runs_total";
}

/// Buckets of request durations, seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of batch verification times, seconds.
const VERIFY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of reports per verified batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// How often the recorder's upkeep drains histogram samples.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder on first call and returns
/// its handle; later calls return the same handle. `None` if another
/// recorder was installed in this process first (metrics are then not
/// served; the failure is logged once).
pub fn install() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = [
                (names::HTTP_DURATION, HTTP_BUCKETS),
                (names::VERIFY_SECONDS, VERIFY_BUCKETS),
                (names::VERIFY_BATCH_REPORTS, BATCH_BUCKETS),
            ]
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                b.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            });
            let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install the metrics recorder; /metrics will be empty");
                    return None;
                }
            };
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are drained at scrape time only");
            }
            describe();
            let start = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            gauge!(names::START_TIME).set(start);
            Some(handle)
        })
        .as_ref()
}

/// Sets every metric's description (the `# HELP` line).
fn describe() {
    use names::*;
    describe_counter!(
        UPLOADS,
        "Report uploads by API (he, dap) and outcome (accepted, or the refusal's problem type)"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route pattern, method and status class"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's head to its response, by route pattern and method"
    );
    describe_gauge!(
        AGGREGATION_LAG,
        Unit::Seconds,
        "Age (by report time) of the oldest stored report in no aggregation job yet, sampled at scrape; 0 when none"
    );
    describe_counter!(
        AGGREGATION_JOBS,
        "Aggregation jobs this process finished, by API and outcome (done, failed, lease_lost)"
    );
    describe_counter!(
        RELEASES,
        "HE releases this process made, by task and outcome (released, withheld)"
    );
    describe_counter!(
        NOISE_CONTRIBUTIONS,
        "Trustees' noise contributions answered, by task and outcome (stored, repeated, refused)"
    );
    describe_counter!(
        DAP_COLLECTIONS,
        "DAP collection jobs this leader finished, by task"
    );
    describe_gauge!(
        BUDGET_SPENT,
        "DP budget an HE task has spent (epsilon, or rho under zCDP), set at start and on each release"
    );
    describe_gauge!(
        DB_CONNECTIONS,
        "Database connections by pool (writer, reader; shared on PostgreSQL) and state (in_use, idle), sampled at scrape"
    );
    describe_gauge!(
        START_TIME,
        Unit::Seconds,
        "When this process started, Unix seconds"
    );
    describe_histogram!(
        VERIFY_SECONDS,
        Unit::Seconds,
        "Time to verify one batch of uploaded reports"
    );
    describe_histogram!(VERIFY_BATCH_REPORTS, "Reports per verified batch");
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs waiting in a queue (verifier, writer, dap_writer)"
    );
    describe_counter!(
        SHED,
        "Requests answered 429 because a queue was full, by queue"
    );
    describe_counter!(GC_DELETED, "Rows the garbage collector deleted, by kind");
    describe_counter!(GC_RUNS, "Garbage-collector runs, by outcome");
}

/// Which API an upload route belongs to, from the route pattern.
fn upload_api(method: &Method, pattern: &str) -> Option<&'static str> {
    if method != Method::PUT {
        return None;
    }
    match pattern {
        "/tasks/{task_id}/reports" => Some("he"),
        "/dap/tasks/{task_id}/reports" => Some("dap"),
        _ => None,
    }
}

/// A static label for common methods (others share `other`).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The status class label.
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counters of accepted uploads, looked up once: the hot path of an
/// upload does no registry lookup.
fn accepted(api: &'static str) -> &'static Counter {
    static HE: OnceLock<Counter> = OnceLock::new();
    static DAP: OnceLock<Counter> = OnceLock::new();
    let cell = if api == "dap" { &DAP } else { &HE };
    cell.get_or_init(|| counter!(names::UPLOADS, "api" => api, "outcome" => "accepted"))
}

/// Records one finished request: called by the request middleware with
/// the route pattern (`None` when no route matched), the answer's status,
/// the name of its problem type if it was a problem document, and its
/// duration.
pub fn record_request(
    method: &Method,
    pattern: Option<String>,
    status: StatusCode,
    problem: Option<&str>,
    elapsed: Duration,
) {
    let method_label = method_label(method);
    if let Some(api) = pattern.as_deref().and_then(|p| upload_api(method, p)) {
        if status.is_success() {
            accepted(api).increment(1);
        } else {
            let outcome = match problem {
                Some(name) => name.to_string(),
                None => format!("http_{}", status.as_u16()),
            };
            counter!(names::UPLOADS, "api" => api, "outcome" => outcome).increment(1);
        }
    }
    let route = pattern.unwrap_or_else(|| "unmatched".to_string());
    counter!(
        names::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method_label,
        "status" => status_label(status)
    )
    .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "route" => route, "method" => method_label)
        .record(elapsed.as_secs_f64());
}

/// `GET /metrics`: the Prometheus text format, for the admin token only.
/// Gauges that describe shared state (pool use, aggregation lag) are
/// sampled now, so that they are fresh whoever runs the job drivers.
pub async fn scrape(state: web::Data<Aggregator>, req: HttpRequest) -> Result<HttpResponse, Error> {
    state.check_admin(bearer(&req))?;
    let store = state.store();
    for pool in store.pool_use() {
        gauge!(names::DB_CONNECTIONS, "pool" => pool.name, "state" => "in_use")
            .set(f64::from(pool.in_use));
        gauge!(names::DB_CONNECTIONS, "pool" => pool.name, "state" => "idle")
            .set(f64::from(pool.idle));
    }
    let now = state.clock().now_i64();
    let oldest = store.oldest_unassigned_report_times().await?;
    for (api, time) in [("he", oldest.he), ("dap", oldest.dap)] {
        let lag = time.map_or(0, |t| now.saturating_sub(t).max(0));
        gauge!(names::AGGREGATION_LAG, "api" => api).set(lag as f64);
    }
    let body = install().map(|h| h.render()).unwrap_or_default();
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// Sets the DP-budget gauge of an HE task (`spent` as a float).
pub fn set_budget_spent(task_id: &impl ToString, spent: f64) {
    gauge!(names::BUDGET_SPENT, "task_id" => task_id.to_string()).set(spent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders_what_was_recorded() {
        let first = install().expect("no other recorder in this test binary");
        let second = install().expect("the same recorder");
        assert!(std::ptr::eq(first, second));
        record_request(
            &Method::PUT,
            Some("/tasks/{task_id}/reports".into()),
            StatusCode::CONFLICT,
            Some("reportReplayed"),
            Duration::from_millis(3),
        );
        let text = first.render();
        assert!(
            text.contains(r#"hetally_uploads_total{api="he",outcome="reportReplayed"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"hetally_http_requests_total{route="/tasks/{task_id}/reports",method="PUT",status="4xx"} 1"#
        ));
        assert!(text.contains("# TYPE hetally_http_request_duration_seconds histogram"));
        assert!(text.contains("hetally_process_start_time_seconds "));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            upload_api(&Method::PUT, "/dap/tasks/{task_id}/reports"),
            Some("dap")
        );
        assert_eq!(upload_api(&Method::GET, "/tasks/{task_id}/reports"), None);
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_label(StatusCode::TOO_MANY_REQUESTS), "4xx");
    }
}
