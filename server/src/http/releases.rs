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

use std::collections::BTreeMap;

use actix_web::http::header;
use hetally_protocol::api::{AwaitingNoise, NoiseContributionInfo, NoiseContributionReceipt};
use hetally_protocol::report::NOISE_CONTRIBUTION_MEDIA_TYPE;

use super::tasks::{layout_facts, parse_task_id};
use super::AppState;
use super::{expect_media_type, read_json};
use crate::aggregator::Error;
use crate::auth::bearer;
use crate::body;
use crate::datastore::{ContributionOutcome, NewContribution};
use crate::metrics::names;
use ::metrics::counter;

/// Seconds a collector is asked to wait before asking again for a release
/// that waits for its trustees' noise.
const AWAITING_NOISE_RETRY_SECS: u64 = 30;

pub(crate) async fn create(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    state.check_collector(&task, bearer(&req))?;
    let body: ReleaseRequest = read_json(&req, payload).await?;
    let outcome = match state.release(task, body.start, body.duration).await {
        Err(Error::AwaitingNoise {
            start,
            duration,
            trustees,
            have,
            needed,
        }) => {
            return Ok(HttpResponse::Accepted()
                .insert_header((header::RETRY_AFTER, AWAITING_NOISE_RETRY_SECS.to_string()))
                .json(AwaitingNoise {
                    state: "awaiting-noise".into(),
                    batch_start: start,
                    batch_duration: duration,
                    contributions: have,
                    needed,
                    trustees,
                }))
        }
        other => other?,
    };
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
    let mut contributions: BTreeMap<u64, Vec<NoiseContributionInfo>> = BTreeMap::new();
    if task.definition.trustee_noise.is_some() {
        for (start, trustee, received_at) in
            state.store().list_noise_contributions(&task.id).await?
        {
            contributions
                .entry(start)
                .or_default()
                .push(NoiseContributionInfo {
                    trustee,
                    received_at,
                });
        }
    }
    let trustee_noise = task.definition.trustee_noise.is_some();
    let releases = state
        .store()
        .list_releases(&task.id)
        .await?
        .into_iter()
        .map(|r| ReleaseInfo {
            noise_contributions: trustee_noise
                .then(|| contributions.remove(&r.batch_start).unwrap_or_default()),
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

/// `PUT /tasks/{task_id}/releases/{start}/noise`: one trustee's encrypted
/// noise for the pending release of the batch starting at `start`
/// (docs/threshold.md). The token says which trustee; the file must name
/// the same one, this task and this batch, and hold valid ciphertexts.
/// 201 when stored, 200 when the trustee sent exactly this file before;
/// the release itself is finished by the collector's next request.
pub(crate) async fn contribute(
    state: AppState,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (task_id, start) = path.into_inner();
    let task = state.task(&parse_task_id(&task_id)?).await?;
    let start: u64 = start.parse().map_err(|_| {
        Error::BadRequest(format!(
            "{start:?} is not a batch start: give the release's start in Unix seconds"
        ))
    })?;
    let trustee = state.check_trustee(&task, bearer(&req))?;
    let Some(trustees) = task.definition.trustee_noise else {
        return Err(Error::Internal(
            "a task with trustee tokens has no trustee noise".into(),
        ));
    };
    expect_media_type(&req, NOISE_CONTRIBUTION_MEDIA_TYPE)?;
    let facts = layout_facts(&task.definition)?;
    // Header, task id, batch start, trustee, count; then per ciphertext its
    // length and bytes.
    let limit = 6
        + 32
        + 8
        + 2
        + 4
        + facts
            .ciphertexts_per_report
            .saturating_mul(4 + facts.ciphertext_bytes.unwrap_or(0));
    let body = body::read(&req, payload, usize::try_from(limit).unwrap_or(usize::MAX)).await?;
    let definition = task.definition.clone();
    let bytes = body.to_vec();
    let checked = tokio::task::spawn_blocking(move || {
        hetally_schemes::paillier::check_noise_contribution(&definition, start, trustee, &bytes)
            .map(|_| bytes)
    })
    .await
    .map_err(|e| Error::Internal(format!("checking a noise contribution failed: {e}")))?
    .map_err(|e| Error::BadRequest(format!("noise contribution: {e}")))?;
    let needed = usize::from(trustees.contributors);
    let outcome = state
        .store()
        .add_noise_contribution(
            &NewContribution {
                task_id: &task.id,
                batch_start: start,
                trustee,
                bytes: &checked,
                now: state.now(),
            },
            needed,
        )
        .await?;
    let outcome_name = match outcome {
        ContributionOutcome::Stored(_) => "stored",
        ContributionOutcome::AlreadyStored => "repeated",
        _ => "refused",
    };
    counter!(names::NOISE_CONTRIBUTIONS, "task_id" => task.id.to_string(), "outcome" => outcome_name)
        .increment(1);
    let receipt = |status: StatusCode, contributions: usize| {
        tracing::info!(task_id = %task.id, start, trustee, contributions, needed, "noise contribution");
        HttpResponse::build(status).json(NoiseContributionReceipt {
            trustee,
            contributions,
            needed,
        })
    };
    match outcome {
        ContributionOutcome::Stored(n) => Ok(receipt(StatusCode::CREATED, n)),
        ContributionOutcome::AlreadyStored => {
            let n = state
                .store()
                .noise_contributions(&task.id, start)
                .await?
                .len();
            Ok(receipt(StatusCode::OK, n))
        }
        ContributionOutcome::Conflict => Err(Error::NoiseRefused(format!(
            "trustee {trustee} already sent a different noise contribution for the batch \
             starting at {start}; a trustee contributes once per release"
        ))),
        ContributionOutcome::Full => Err(Error::NoiseRefused(format!(
            "the release of the batch starting at {start} already has the {needed} noise \
             contributions it takes"
        ))),
        ContributionOutcome::NoRelease => Err(Error::NotFound(format!(
            "no release of this task starts at {start} and waits for noise: the collector \
             requests the release first (POST /tasks/{{id}}/releases), then trustees contribute"
        ))),
    }
}
