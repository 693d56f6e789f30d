//! DAP errors as RFC 7807 problem documents, with the DAP-09 problem types
//! (`urn:ietf:params:ppm:dap:error:*`, from `janus_messages`) where the
//! draft defines one.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use hetally_crypto::dap::messages::problem_type::DapProblemType;
use serde_json::json;

use super::DapError;
use crate::http::problem::PROBLEM_MEDIA_TYPE;

impl DapError {
    fn classify(&self) -> (StatusCode, Option<DapProblemType>) {
        use DapProblemType as P;
        match self {
            DapError::UnrecognizedTask(_) => (StatusCode::NOT_FOUND, Some(P::UnrecognizedTask)),
            DapError::MissingTaskId => (StatusCode::BAD_REQUEST, Some(P::MissingTaskId)),
            DapError::InvalidMessage(_) => (StatusCode::BAD_REQUEST, Some(P::InvalidMessage)),
            DapError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some(P::InvalidMessage))
            }
            DapError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, Some(P::InvalidMessage))
            }
            DapError::Unauthorized(_) => (StatusCode::FORBIDDEN, Some(P::UnauthorizedRequest)),
            DapError::ReportRejected(_) => (StatusCode::BAD_REQUEST, Some(P::ReportRejected)),
            DapError::ReportTooEarly { .. } => (StatusCode::BAD_REQUEST, Some(P::ReportTooEarly)),
            DapError::OutdatedConfig(_) => (StatusCode::BAD_REQUEST, Some(P::OutdatedConfig)),
            DapError::BatchInvalid(_) => (StatusCode::BAD_REQUEST, Some(P::BatchInvalid)),
            DapError::InvalidBatchSize { .. } => {
                (StatusCode::BAD_REQUEST, Some(P::InvalidBatchSize))
            }
            DapError::BatchQueriedTooManyTimes => {
                (StatusCode::BAD_REQUEST, Some(P::BatchQueriedTooManyTimes))
            }
            DapError::BatchOverlap(_) => (StatusCode::BAD_REQUEST, Some(P::BatchOverlap)),
            DapError::BatchMismatch(_) => (StatusCode::BAD_REQUEST, Some(P::BatchMismatch)),
            DapError::UnrecognizedAggregationJob => {
                (StatusCode::NOT_FOUND, Some(P::UnrecognizedAggregationJob))
            }
            DapError::UnrecognizedCollectionJob => (StatusCode::NOT_FOUND, None),
            DapError::Conflict(_) => (StatusCode::CONFLICT, None),
            DapError::InvalidTask(_) => (StatusCode::BAD_REQUEST, Some(P::InvalidTask)),
            DapError::Peer(_) => (StatusCode::BAD_GATEWAY, None),
            DapError::HelperRefused { kind, .. } => (StatusCode::BAD_REQUEST, Some(*kind)),
            DapError::Store(_) | DapError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        }
    }

    /// The DAP problem type name this error is reported with (stored with
    /// failed collection jobs).
    pub fn problem_type(&self) -> Option<&'static str> {
        self.classify().1.map(|p| p.type_uri())
    }
}

impl ResponseError for DapError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, kind) = self.classify();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "DAP request failed");
            "the server failed to handle this request; it has been logged, try again later"
                .to_string()
        } else {
            self.to_string()
        };
        let mut body = json!({
            "type": kind.map(|k| k.type_uri()).unwrap_or("about:blank"),
            "title": kind
                .map(|k| k.description())
                .or(status.canonical_reason())
                .unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let DapError::UnrecognizedTask(id) = self {
            body["taskid"] = json!(id.to_string());
        }
        HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROBLEM_MEDIA_TYPE),
            ))
            .body(body.to_string())
    }
}
