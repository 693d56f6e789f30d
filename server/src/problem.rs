//! The one place where errors become HTTP responses: RFC 7807 problem
//! documents (`application/problem+json`), for the HE API
//! (`urn:hetally:error:*`, [`hetally_protocol::problem`]) and the DAP API
//! (`urn:ietf:params:ppm:dap:error:*`) alike.
//!
//! Each error type says what it is ([`ProblemDocument`]); [`respond`]
//! writes it: server errors are answered with a generic detail (the cause
//! may name internals), 401 answers carry `WWW-Authenticate`, 429 and 503
//! answers carry `Retry-After`, and DAP problems name their task. The
//! problem type and the reason (for server errors, the cause) go in the
//! response's extensions as a [`ProblemSummary`], never on the wire: the
//! request middleware (`crate::run`) logs them, refusals at debug and
//! server errors at error, and counts uploads by problem type.

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

/// What a problem response was about, kept in its extensions for the
/// request middleware to log and count (see the module docs).
#[derive(Debug, Clone)]
pub struct ProblemSummary {
    type_uri: String,
    /// The reason given to the client; for a server error, the cause
    /// (which the client does not see).
    pub detail: String,
}

impl ProblemSummary {
    /// The problem type's short name: `reportReplayed` for both
    /// `urn:hetally:error:reportReplayed` and
    /// `urn:ietf:params:ppm:dap:error:reportReplayed`; other URIs whole.
    pub fn name(&self) -> &str {
        ["urn:hetally:error:", "urn:ietf:params:ppm:dap:error:"]
            .iter()
            .find_map(|prefix| self.type_uri.strip_prefix(prefix))
            .unwrap_or(&self.type_uri)
    }

    /// The full problem type URI.
    pub fn type_uri(&self) -> &str {
        &self.type_uri
    }
}

/// The response for `problem`; see the module docs.
pub fn respond(problem: ProblemDocument) -> HttpResponse {
    let status = problem.status;
    let (detail, summary_detail) = if status.is_server_error() {
        (
            "the server failed to handle this request; it has been logged, try again later"
                .to_string(),
            problem.detail,
        )
    } else {
        (problem.detail.clone(), problem.detail)
    };
    let summary = ProblemSummary {
        type_uri: problem.type_uri.clone(),
        detail: summary_detail,
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
    let mut response = response.body(body.to_string());
    response.extensions_mut().insert(summary);
    response
}
