//! The one place where errors become HTTP responses: RFC 7807 problem
//! documents (`application/problem+json`), for the HE API
//! (`urn:hetally:error:*`, [`hetally_protocol::problem`]) and the DAP API
//! (`urn:ietf:params:ppm:dap:error:*`) alike.
//!
//! Each error type says what it is ([`ProblemDocument`]); [`respond`]
//! writes it: server errors are logged with their cause and answered with
//! a generic detail (the cause may name internals), refusals are logged at
//! debug with their reason, 401 answers carry `WWW-Authenticate`, 429 and
//! 503 answers carry `Retry-After`, and DAP problems name their task.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

pub use hetally_protocol::problem::PROBLEM_MEDIA_TYPE;

/// What an error answers with.
#[derive(Debug, Clone)]
pub struct ProblemDocument {
    /// HTTP status.
    pub status: StatusCode,
    /// The problem type URI (`about:blank` when there is none).
    pub type_uri: String,
    /// A short title; the status's reason phrase when `None`.
    pub title: Option<String>,
    /// What was wrong and what to do.
    pub detail: String,
    /// The DAP task the problem is about (DAP-09 section 3.2).
    pub task_id: Option<String>,
    /// Seconds the client should wait before trying again.
    pub retry_after: Option<u64>,
    /// Extension members (RFC 7807 section 3.2), written as given.
    pub extensions: Vec<(&'static str, serde_json::Value)>,
}

impl ProblemDocument {
    /// A problem of `status` and type `type_uri` with `detail`.
    pub fn new(status: StatusCode, type_uri: impl Into<String>, detail: impl Into<String>) -> Self {
        ProblemDocument {
            status,
            type_uri: type_uri.into(),
            title: None,
            detail: detail.into(),
            task_id: None,
            retry_after: None,
            extensions: Vec::new(),
        }
    }
}

/// The response for `problem`; see the module docs.
pub fn respond(problem: ProblemDocument) -> HttpResponse {
    let status = problem.status;
    let detail = if status.is_server_error() {
        tracing::error!(status = status.as_u16(), problem = %problem.type_uri, error = %problem.detail, "request failed");
        "the server failed to handle this request; it has been logged, try again later".to_string()
    } else {
        tracing::debug!(status = status.as_u16(), problem = %problem.type_uri, reason = %problem.detail, "request refused");
        problem.detail
    };
    let mut body = json!({
        "type": problem.type_uri,
        "title": problem
            .title
            .as_deref()
            .or(status.canonical_reason())
            .unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(task_id) = problem.task_id {
        body["taskid"] = json!(task_id);
    }
    for (name, value) in problem.extensions {
        body[name] = value;
    }
    let mut response = HttpResponse::build(status);
    response.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_MEDIA_TYPE),
    ));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
    }
    if let Some(seconds) = problem.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.body(body.to_string())
}
