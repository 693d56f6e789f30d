//! The HE API's HTTP surface: thin actix-web handlers that parse,
//! authenticate and call the [`Aggregator`]. Routes and messages are listed
//! in [`hetally_protocol::api`] and described, with every status and media
//! type, by the OpenAPI document served at `/openapi.json` ([`openapi`]);
//! errors become problem documents through [`crate::problem`], with the
//! types of [`hetally_protocol::problem`].

pub mod cors;
pub mod openapi;
mod releases;
mod reports;
pub mod tasks;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use hetally_protocol::problem::ProblemType;
use hetally_protocol::SchemeError;
use serde::de::DeserializeOwned;

use crate::aggregator::{Aggregator, Error};
use crate::body::{self, BodyError};
use crate::problem::{respond, ProblemDocument};
use cors::CorsPolicy;

/// Shared state of every handler.
pub type AppState = web::Data<Aggregator>;

/// Largest JSON body of the control-plane endpoints; public keys in task
/// definitions are the biggest part (a TFHE key is about 34 KB).
pub(crate) const MAX_JSON_BODY: usize = 1 << 20;

/// Registers every route. The routes a web page calls answer cross-origin
/// requests as `cors` says ([`cors`]); the admin and collector routes
/// never do.
pub fn configure(cfg: &mut web::ServiceConfig, cors: &CorsPolicy) {
    // Uploads first: routes are tried in the order they are registered,
    // and uploads are nearly all of the requests.
    PageRoutes { cfg, cors }.route("/tasks/{task_id}/reports", web::put().to(reports::upload));
    cfg.route("/healthz", web::get().to(healthz))
        .route("/tasks", web::post().to(tasks::create))
        .route("/tasks", web::get().to(tasks::list))
        .route("/tasks/{task_id}/status", web::get().to(tasks::status))
        .route(
            "/tasks/{task_id}/releases",
            web::post().to(releases::create),
        )
        .route("/tasks/{task_id}/releases", web::get().to(releases::list))
        .route(
            "/tasks/{task_id}/releases/{batch_start}/noise",
            web::put().to(releases::contribute),
        );
    PageRoutes { cfg, cors }
        .route("/openapi.json", web::get().to(openapi::document))
        .route("/tasks/{task_id}", web::get().to(tasks::get))
        .route("/tasks/{task_id}/crs", web::get().to(tasks::crs));
}

/// Registers the routes a web page calls, one path each, under the CORS
/// policy. With CORS on, the middleware wraps the path's whole resource, so
/// that it also answers the path's `OPTIONS` preflight (and another method
/// on the path gets 405 rather than 404); with it off, the route is
/// registered as the others are.
struct PageRoutes<'a> {
    cfg: &'a mut web::ServiceConfig,
    cors: &'a CorsPolicy,
}

impl PageRoutes<'_> {
    fn route(self, path: &str, route: actix_web::Route) -> Self {
        match self.cors.middleware() {
            Some(cors) => {
                self.cfg
                    .service(web::resource(path).wrap(cors).route(route));
            }
            None => {
                self.cfg.route(path, route);
            }
        }
        self
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Fails unless the request's media type is `expected`.
pub(crate) fn expect_media_type(req: &HttpRequest, expected: &'static str) -> Result<(), Error> {
    let found = body::media_type(req);
    if found != expected {
        return Err(Error::UnsupportedMediaType { found, expected });
    }
    Ok(())
}

/// Reads and parses a JSON body.
pub(crate) async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, Error> {
    expect_media_type(req, "application/json")?;
    let body = body::read(req, payload, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { len, max } => Error::PayloadTooLarge { len, max },
            other => Error::BadRequest(other.to_string()),
        }
    }
}

impl Error {
    /// The problem type this error is answered with.
    pub fn problem_type(&self) -> ProblemType {
        use ProblemType as P;
        match self {
            Error::UnknownTask(_) => P::UnrecognizedTask,
            Error::NotFound(_) => P::NotFound,
            Error::MissingToken(_) => P::MissingToken,
            Error::WrongToken(_) => P::WrongToken,
            Error::InvalidTask(_) => P::InvalidTask,
            Error::TaskExists(_) => P::TaskExists,
            Error::BadRequest(_) => P::BadRequest,
            Error::UnsupportedMediaType { .. } => P::UnsupportedMediaType,
            Error::PayloadTooLarge { .. } => P::PayloadTooLarge,
            Error::MalformedReport(_) => P::InvalidMessage,
            Error::InvalidReport(e) => match e {
                SchemeError::WrongCiphertextCount { .. } => P::WrongCiphertextCount,
                SchemeError::InvalidCiphertext { .. } => P::InvalidCiphertext,
                SchemeError::Malformed(_) => P::InvalidMessage,
                SchemeError::InvalidProof(_) => P::InvalidProof,
                _ => P::InvalidReport,
            },
            Error::MisalignedReportTime { .. } => P::MisalignedTime,
            Error::ReportTooEarly { .. } => P::ReportTooEarly,
            Error::ReportExpired { .. } => P::ReportExpired,
            Error::ReportReplayed(_) => P::ReportReplayed,
            Error::BatchCollected(_) => P::BatchCollected,
            Error::MisalignedInterval { .. } => P::BatchInvalid,
            Error::BatchTooSmall { .. } | Error::BatchTooLarge { .. } => P::InvalidBatchSize,
            Error::BatchOverlap { .. } => P::BatchOverlap,
            Error::BatchWithheld { .. } => P::BatchWithheld,
            Error::BudgetExhausted(_) => P::BudgetExhausted,
            Error::NoiseRefused(_) => P::NoiseRefused,
            // Answered 202 with the release's progress by the release
            // handler, never as a problem.
            Error::AwaitingNoise { .. } => P::Internal,
            Error::Overloaded(_) => P::TooManyRequests,
            Error::Store(_) | Error::Internal(_) => P::Internal,
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem_type().status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let kind = self.problem_type();
        let mut problem = ProblemDocument::new(self.status_code(), kind.uri(), self.to_string());
        if let Error::BatchWithheld { noisy, .. } = self {
            problem
                .extensions
                .push(("noisy_report_count", serde_json::json!(noisy)));
        }
        if let Error::Overloaded(full) = self {
            problem.retry_after = Some(full.retry_after);
        }
        respond(problem)
    }
}
