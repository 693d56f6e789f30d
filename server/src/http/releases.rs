//! Releases: collect a batch (`POST`) and read the audit log (`GET`, the
//! collector or the operator). Under add/remove no exact report count
//! reaches the collector: the aggregate file, the header and the audit log
//! carry the noisy count; only the operator's audit log has the exact one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hetally_protocol::api::{ReleaseInfo, ReleaseList, ReleaseRequest};
use hetally_protocol::report::{
    AGGREGATE_MEDIA_TYPE, NOISY_REPORT_COUNT_HEADER, REPORT_COUNT_HEADER,
};

use super::read_json;
use super::tasks::parse_task_id;
use super::AppState;
use crate::aggregator::Error;
use crate::auth::bearer;

pub(crate) async fn create(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    state.check_collector(&task, bearer(&req))?;
    let body: ReleaseRequest = read_json(&req, payload).await?;
    let outcome = state.release(task, body.start, body.duration).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let count = match outcome.record.noisy_report_count {
        Some(noisy) => (NOISY_REPORT_COUNT_HEADER, noisy.to_string()),
        None => (REPORT_COUNT_HEADER, outcome.record.report_count.to_string()),
    };
    Ok(HttpResponse::build(status)
        .content_type(AGGREGATE_MEDIA_TYPE)
        .insert_header(count)
        .body(outcome.aggregate))
}

pub(crate) async fn list(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    let exact = state
        .check_reader(&task, bearer(&req))?
        .sees_exact_counts(&task);
    let total = task.definition.budget.clone();
    let releases = state
        .store()
        .list_releases(&task.id)
        .await?
        .into_iter()
        .map(|r| ReleaseInfo {
            batch_start: r.batch_start,
            batch_duration: r.batch_duration,
            report_count: exact.then_some(r.report_count),
            noisy_report_count: r.noisy_report_count,
            state: r.state.name().into(),
            mechanism: r.mechanism,
            cost: r.cost.to_string(),
            budget_remaining_after: total.as_ref().map(|t| {
                t.checked_sub(&r.budget_spent_after)
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "0".into())
            }),
            budget_spent_after: r.budget_spent_after.to_string(),
            requested_at: r.requested_at,
            released_at: r.released_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ReleaseList {
        task_id: task.id.to_string(),
        releases,
    }))
}
