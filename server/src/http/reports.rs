//! Report upload: `PUT /tasks/{task_id}/reports`.

use actix_web::{web, HttpRequest, HttpResponse};
use hetally_protocol::report::REPORT_MEDIA_TYPE;

use super::expect_media_type;
use super::tasks::parse_task_id;
use super::AppState;
use crate::aggregator::{Aggregator, Error};
use crate::body;

/// Answers 201 only after the report is committed to disk.
pub(crate) async fn upload(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    expect_media_type(&req, REPORT_MEDIA_TYPE)?;
    let body = body::read(&req, payload, Aggregator::max_upload_len(&task)).await?;
    state.upload(task, body).await?;
    Ok(HttpResponse::Created().finish())
}
