//! Report upload: `PUT /tasks/{task_id}/reports`.

use actix_web::{web, HttpRequest, HttpResponse};
use hetally_crypto::report::REPORT_MEDIA_TYPE;

use super::body::{expect_media_type, read_limited};
use super::tasks::parse_task_id;
use super::AppState;
use crate::aggregator::{unix_now, Aggregator, Error};

/// Answers 201 only after the report is committed to disk.
pub(crate) async fn upload(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    expect_media_type(&req, REPORT_MEDIA_TYPE)?;
    let body = read_limited(&req, payload, Aggregator::max_upload_len(&task)).await?;
    state.upload(task, body, unix_now()).await?;
    Ok(HttpResponse::Created().finish())
}
