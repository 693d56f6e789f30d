//! The one place where errors become HTTP responses: RFC 7807 problem
//! documents (`application/problem+json`) with a stable `type` URN per error.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use hetally_crypto::backend::BackendError;
use serde_json::json;

use crate::aggregator::Error;

/// Media type of problem documents.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

impl Error {
    /// Status and the short name in `urn:hetally:error:<name>`.
    fn classify(&self) -> (StatusCode, &'static str) {
        match self {
            Error::UnknownTask(_) => (StatusCode::NOT_FOUND, "unrecognizedTask"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "notFound"),
            Error::MissingToken(_) => (StatusCode::UNAUTHORIZED, "missingToken"),
            Error::WrongToken(_) => (StatusCode::FORBIDDEN, "wrongToken"),
            Error::InvalidTask(_) => (StatusCode::BAD_REQUEST, "invalidTask"),
            Error::TaskExists(_) => (StatusCode::CONFLICT, "taskExists"),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "badRequest"),
            Error::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupportedMediaType")
            }
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payloadTooLarge"),
            Error::InvalidReport(e) => (
                StatusCode::BAD_REQUEST,
                match e {
                    BackendError::WrongCiphertextCount { .. } => "wrongCiphertextCount",
                    BackendError::InvalidCiphertext { .. } => "invalidCiphertext",
                    BackendError::Malformed(_) => "invalidMessage",
                    BackendError::InvalidProof(_) | BackendError::InvalidTfheProof { .. } => {
                        "invalidProof"
                    }
                    _ => "invalidReport",
                },
            ),
            Error::MisalignedReportTime { .. } => (StatusCode::BAD_REQUEST, "misalignedTime"),
            Error::ReportTooEarly { .. } => (StatusCode::BAD_REQUEST, "reportTooEarly"),
            Error::ReportReplayed(_) => (StatusCode::CONFLICT, "reportReplayed"),
            Error::BatchCollected(_) => (StatusCode::CONFLICT, "batchCollected"),
            Error::MisalignedInterval { .. } => (StatusCode::BAD_REQUEST, "batchInvalid"),
            Error::BatchTooSmall { .. } | Error::BatchTooLarge { .. } => {
                (StatusCode::BAD_REQUEST, "invalidBatchSize")
            }
            Error::BatchOverlap { .. } => (StatusCode::CONFLICT, "batchOverlap"),
            Error::BudgetExhausted(_) => (StatusCode::CONFLICT, "budgetExhausted"),
            Error::Store(_) | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, name) = self.classify();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the server failed to handle this request; it has been logged, try again later"
                .to_string()
        } else {
            self.to_string()
        };
        let body = json!({
            "type": format!("urn:hetally:error:{name}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_MEDIA_TYPE),
        ));
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.body(body.to_string())
    }
}
