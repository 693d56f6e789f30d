//! The DAP-09 HTTP surface, mounted under `/dap/` (so a task's DAP
//! endpoint is `http://host:port/dap/`):
//!
//! | method, path | who | what |
//! |---|---|---|
//! | `POST /dap/tasks` | admin | provision a task ([`super::task`]) |
//! | `GET /dap/hpke_config?task_id=` | client | this aggregator's active HPKE config (a list of one) |
//! | `POST /dap/tasks/{id}/hpke_configs` | admin | rotate the task's HPKE config ([`super::hpke_keys`]), 201 |
//! | `PUT /dap/tasks/{id}/reports` | client | upload a report (leader) |
//! | `PUT /dap/tasks/{id}/aggregation_jobs/{job}` | leader | initialise an aggregation job (helper) |
//! | `POST /dap/tasks/{id}/aggregate_shares` | leader | the helper's aggregate share |
//! | `PUT /dap/tasks/{id}/collection_jobs/{job}` | collector | start a collection (leader), 201 |
//! | `POST /dap/tasks/{id}/collection_jobs/{job}` | collector | poll: 202 until ready, then 200 |
//! | `DELETE /dap/tasks/{id}/collection_jobs/{job}` | collector | abandon, 204 |
//!
//! Handlers decode (janus_messages; trailing bytes rejected, bodies capped
//! per route from the task's VDAF, [`crate::body`]), authenticate (bearer
//! or `DAP-Auth-Token`, compared as SHA-256 hashes in constant time), and
//! hand over to [`super::helper`] / [`super::leader`]. Every problem
//! document about a known task names it (`taskid`).

use std::future::Future;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use hetally_dap::hpke::encode_config;
use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_dap::messages::query_type::TimeInterval;
use hetally_dap::messages::{
    AggregateShareReq, AggregationJobId, AggregationJobInitializeReq, Collection, CollectionJobId,
    CollectionReq, HpkeCiphertext, HpkeConfigList, InputShareAad, PartialBatchSelector,
    PlaintextInputShare, Report, Role, TaskId,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::vdaf::{check_aggregation_parameter, check_shares, DpStrategy};
use hetally_dap::with_dap_vdaf;

use super::aggregation::interval;
use super::hpke_keys::{HpkeKeySet, RetiringConfig, RotateRequest, RotateResponse};
use super::leader::failure_error;
use super::task::{DapTask, DapTaskRequest, DapTaskResponse};
use super::{helper, DapError, DapFailure, DapState};
use crate::auth::{dap_token, token_matches};
use crate::body;
use crate::datastore::dap::{CollectionJobRow, CollectionState, StoredReport, UploadOutcome};

/// Largest body of the admin JSON and of the small DAP messages (collection
/// and aggregate share requests).
const MAX_SMALL: usize = 64 << 10;

type Shared = web::Data<DapState>;

/// Registers the DAP routes (inside the `/dap` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks", web::post().to(create_task))
        .route("/hpke_config", web::get().to(hpke_config))
        .route(
            "/tasks/{task_id}/hpke_configs",
            web::post().to(rotate_hpke_config),
        )
        .route("/tasks/{task_id}/reports", web::put().to(upload))
        .route(
            "/tasks/{task_id}/aggregation_jobs/{job_id}",
            web::put().to(aggregation_job_init),
        )
        .route(
            "/tasks/{task_id}/aggregate_shares",
            web::post().to(aggregate_share),
        )
        .route(
            "/tasks/{task_id}/collection_jobs/{job_id}",
            web::put().to(collection_create),
        )
        .route(
            "/tasks/{task_id}/collection_jobs/{job_id}",
            web::post().to(collection_poll),
        )
        .route(
            "/tasks/{task_id}/collection_jobs/{job_id}",
            web::delete().to(collection_delete),
        );
}

/// Checks a request's token against a stored hash, in constant time.
fn authorize(req: &HttpRequest, expected: Option<&[u8; 32]>) -> Result<(), DapError> {
    let token = dap_token(req).ok_or(DapError::Unauthorized("no token presented"))?;
    let expected = expected.ok_or(DapError::Unauthorized("this task takes no such token"))?;
    if token_matches(token, expected) {
        Ok(())
    } else {
        Err(DapError::Unauthorized("wrong token"))
    }
}

fn expect_media_type(req: &HttpRequest, expected: &'static str) -> Result<(), DapError> {
    let found = body::media_type(req);
    if found != expected {
        return Err(DapError::UnsupportedMediaType { found, expected });
    }
    Ok(())
}

/// Runs a handler's work for the task named in its path; its errors answer
/// with problem documents that name the task.
async fn for_task<T, F, Fut>(raw_task_id: &str, work: F) -> Result<T, DapFailure>
where
    F: FnOnce(TaskId) -> Fut,
    Fut: Future<Output = Result<T, DapError>>,
{
    let task_id = parse_task_id(raw_task_id)?;
    work(task_id).await.map_err(|e| e.in_task(task_id))
}

fn decode<T: Decode>(bytes: &[u8], what: &str) -> Result<T, DapError> {
    T::get_decoded(bytes).map_err(|e| DapError::InvalidMessage(format!("{what}: {e}")))
}

fn encode<T: Encode>(msg: &T) -> Result<Vec<u8>, DapError> {
    msg.get_encoded()
        .map_err(|e| DapError::Internal(format!("encoding: {e}")))
}

fn parse_task_id(text: &str) -> Result<TaskId, DapError> {
    // Strictly the 43 characters of base64url of 32 bytes: no padding, no
    // whitespace (janus_messages' parser enforces both).
    text.parse().map_err(|_| {
        DapError::InvalidMessage(format!("task id {text:?} is not base64url of 32 bytes"))
    })
}

fn binary(media: &'static str, status: actix_web::http::StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(media)))
        .body(body)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DapError> + Send + 'static,
) -> Result<T, DapError> {
    web::block(f)
        .await
        .map_err(|e| DapError::Internal(format!("worker thread: {e}")))?
}

async fn create_task(
    req: HttpRequest,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let token = dap_token(&req).ok_or(DapError::Unauthorized("no admin token presented"))?;
    if !token_matches(token, &state.admin_token_hash) {
        return Err(DapError::Unauthorized("wrong admin token").into());
    }
    expect_media_type(&req, "application/json")?;
    let body = body::read(&req, payload, MAX_SMALL)
        .await
        .map_err(DapError::from)?;
    let request: DapTaskRequest = serde_json::from_slice(&body)
        .map_err(|e| DapError::InvalidTask(format!("invalid JSON: {e}")))?;
    let (task, row) = blocking(move || DapTask::provision(&request)).await?;
    let hpke_config = row.hpke_config()?;
    let mut tx = state.store.begin().await?;
    if !tx.put_task(&row, state.clock.now()).await? {
        return Err(DapError::Conflict(format!("task {} already exists", task.task_id)).into());
    }
    tx.commit().await?;
    tracing::info!(task_id = %task.task_id, role = %task.role, vdaf = %task.spec, "DAP task created");
    Ok(HttpResponse::Created().json(DapTaskResponse {
        task_id: task.task_id.to_string(),
        role: task.role.as_str().to_string(),
        vdaf: task.spec.to_string(),
        relation: DpStrategy::RELATION.to_string(),
        guarantee: task.dp.guarantee(&task.spec),
        hpke_config: encode_config(&hpke_config),
    }))
}

/// Admin: rotates a task's HPKE configuration (module docs of
/// [`super::hpke_keys`]). The body is empty or
/// `{"retire_previous_after_secs": N}`.
async fn rotate_hpke_config(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    for_task(&path, |task_id| async move {
        let token = dap_token(&req).ok_or(DapError::Unauthorized("no admin token presented"))?;
        if !token_matches(token, &state.admin_token_hash) {
            return Err(DapError::Unauthorized("wrong admin token"));
        }
        let body = body::read(&req, payload, MAX_SMALL).await?;
        let request = if body.iter().all(u8::is_ascii_whitespace) {
            RotateRequest::default()
        } else {
            expect_media_type(&req, "application/json")?;
            serde_json::from_slice::<RotateRequest>(&body)
                .map_err(|e| DapError::InvalidMessage(format!("invalid JSON: {e}")))?
        };
        let retire_after = request
            .retire_previous_after_secs
            .unwrap_or(state.hpke_grace_secs);
        let rotation = state.rotate_hpke_config(&task_id, retire_after).await?;
        let config_id = u8::from(*rotation.config.id());
        tracing::info!(%task_id, config_id, retire_after, "DAP HPKE configuration rotated");
        let now = state.clock.now();
        Ok(HttpResponse::Created().json(RotateResponse {
            task_id: task_id.to_string(),
            hpke_config: encode_config(&rotation.config),
            config_id,
            previous: rotation
                .keys
                .keys()
                .iter()
                .filter_map(|k| {
                    k.expires_at
                        .filter(|&e| e > now)
                        .map(|expires_at| RetiringConfig {
                            config_id: u8::from(*k.keypair.config().id()),
                            expires_at,
                        })
                })
                .collect(),
        }))
    })
    .await
}

#[derive(serde::Deserialize)]
struct HpkeConfigQuery {
    task_id: Option<String>,
}

async fn hpke_config(
    query: web::Query<HpkeConfigQuery>,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let raw = query.task_id.as_deref().ok_or(DapError::MissingTaskId)?;
    for_task(raw, |task_id| async move {
        state.task(&task_id).await?;
        let keys = state.hpke_keys(&task_id).await?;
        let active = keys.active().ok_or_else(|| {
            DapError::Internal("the task has no active HPKE configuration".into())
        })?;
        let list = HpkeConfigList::new(vec![active.config().clone()]);
        let mut resp = binary(
            HpkeConfigList::MEDIA_TYPE,
            actix_web::http::StatusCode::OK,
            encode(&list)?,
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=86400"),
        );
        Ok(resp)
    })
    .await
}

/// Leader: report upload. The leader's share is decrypted and checked to
/// decode now, so a report we could never aggregate is refused at once;
/// the report is committed (group commit, [`DapState::store_upload`])
/// before the 201 (DAP-09 section 4.4.2).
async fn upload(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    for_task(&path, |task_id| async move {
        let task = state.task_in_role(&task_id, Role::Leader).await?;
        expect_media_type(&req, Report::MEDIA_TYPE)?;
        let body = body::read(&req, payload, task.limits.upload).await?;
        let t = task.clone();
        let now = state.clock.now();
        let report: Report = decode(&body, "report")?;
        let keys = state
            .hpke_keys_for(
                &task_id,
                [*report.leader_encrypted_input_share().config_id()],
                now,
            )
            .await?;
        let stored = blocking(move || open_report(&t, &keys, report, now)).await?;
        match state.store_upload(task_id, stored).await? {
            UploadOutcome::Stored => Ok(HttpResponse::Created().finish()),
            UploadOutcome::Collected => Err(DapError::ReportRejected(
                "the report's batch interval has already been collected".into(),
            )),
            UploadOutcome::Replayed => Err(DapError::ReportRejected(
                "a report with this id was already uploaded (replay)".into(),
            )),
        }
    })
    .await
}

/// Time-checks and decrypts an uploaded report. A report encrypted to a
/// config id the task does not have (never had, or past its grace) is
/// `outdatedConfig`: the client should fetch `hpke_config` again.
fn open_report(
    task: &DapTask,
    keys: &HpkeKeySet,
    report: Report,
    now: u64,
) -> Result<StoredReport, DapError> {
    let time = report.metadata().time().as_seconds_since_epoch();
    let limit = now.saturating_add(task.params.tolerable_clock_skew);
    if time > limit {
        return Err(DapError::ReportTooEarly { time, limit });
    }
    // The garbage collector deletes what is older than the same cutoff, so
    // a report it deleted is never stored again.
    let oldest = crate::gc::oldest_accepted(
        now,
        task.params.report_expiry_age,
        task.params.time_precision,
    );
    if time < oldest {
        return Err(DapError::ReportRejected(format!(
            "report time {time} is older than the task's report expiry age ({} s): the oldest \
             report time accepted now is {oldest}",
            task.params.report_expiry_age
        )));
    }
    let ct = report.leader_encrypted_input_share();
    let keypair = keys
        .get(ct.config_id(), now)
        .ok_or(DapError::OutdatedConfig(u8::from(*ct.config_id())))?;
    let aad = encode(&InputShareAad::new(
        task.task_id,
        report.metadata().clone(),
        report.public_share().to_vec(),
    ))?;
    let plaintext = hpke::open(
        keypair,
        &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &Role::Leader),
        ct,
        &aad,
    )
    .map_err(|_| DapError::ReportRejected("the leader's input share does not decrypt".into()))?;
    let share: PlaintextInputShare = decode(&plaintext, "plaintext input share")?;
    helper::check_extensions(share.extensions())
        .map_err(|e| DapError::InvalidMessage(e.to_string()))?;
    // The shares must decode as the task's VDAF's.
    with_dap_vdaf!(&task.vdaf, |v| {
        check_shares(v, 0, report.public_share(), share.payload())
    })
    .map_err(|e| DapError::InvalidMessage(format!("report shares: {e}")))?;
    Ok(StoredReport {
        report_id: *report.metadata().id().as_ref(),
        time,
        public_share: report.public_share().to_vec(),
        leader_input_share: share.payload().to_vec(),
        helper_encrypted: encode::<HpkeCiphertext>(report.helper_encrypted_input_share())?,
    })
}

async fn aggregation_job_init(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let (task_id, job_id) = path.into_inner();
    for_task(&task_id, |task_id| async move {
        let job_id: AggregationJobId = job_id.parse().map_err(|_| {
            DapError::InvalidMessage("aggregation job id is not base64url of 16 bytes".into())
        })?;
        let task = state.task_in_role(&task_id, Role::Helper).await?;
        authorize(&req, task.aggregator_token_hash.as_ref())?;
        expect_media_type(
            &req,
            AggregationJobInitializeReq::<TimeInterval>::MEDIA_TYPE,
        )?;
        let body = body::read(&req, payload, task.limits.aggregation_job).await?;
        let response = helper::aggregation_job_init(&state, task, *job_id.as_ref(), body).await?;
        Ok(binary(
            hetally_dap::messages::AggregationJobResp::MEDIA_TYPE,
            actix_web::http::StatusCode::OK,
            response,
        ))
    })
    .await
}

async fn aggregate_share(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    for_task(&path, |task_id| async move {
        let task = state.task_in_role(&task_id, Role::Helper).await?;
        authorize(&req, task.aggregator_token_hash.as_ref())?;
        expect_media_type(&req, AggregateShareReq::<TimeInterval>::MEDIA_TYPE)?;
        let body = body::read(&req, payload, MAX_SMALL).await?;
        let request: AggregateShareReq<TimeInterval> = decode(&body, "aggregate share request")?;
        let response = helper::aggregate_share(&state, task, request).await?;
        Ok(binary(
            hetally_dap::messages::AggregateShare::MEDIA_TYPE,
            actix_web::http::StatusCode::OK,
            response,
        ))
    })
    .await
}

fn parse_job_id(raw: &str) -> Result<[u8; 16], DapError> {
    let job: CollectionJobId = raw.parse().map_err(|_| {
        DapError::InvalidMessage("collection job id is not base64url of 16 bytes".into())
    })?;
    Ok(*job.as_ref())
}

async fn collection_create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let (task_id, job_id) = path.into_inner();
    for_task(&task_id, |task_id| async move {
        let job_id = parse_job_id(&job_id)?;
        let task = state.task_in_role(&task_id, Role::Leader).await?;
        authorize(&req, task.collector_token_hash.as_ref())?;
        expect_media_type(&req, CollectionReq::<TimeInterval>::MEDIA_TYPE)?;
        let body = body::read(&req, payload, MAX_SMALL).await?;
        let request: CollectionReq<TimeInterval> = decode(&body, "collection request")?;
        check_aggregation_parameter(request.aggregation_parameter())
            .map_err(|e| DapError::InvalidMessage(format!("aggregation parameter: {e}")))?;
        let interval = request.query().batch_interval();
        let start = interval.start().as_seconds_since_epoch();
        let duration = interval.duration().as_seconds();
        task.check_interval(start, duration)?;
        let end = start + duration;
        let job = CollectionJobRow {
            task_id,
            collection_job_id: job_id,
            batch_start: start,
            batch_duration: duration,
            aggregation_param: request.aggregation_parameter().to_vec(),
            state: CollectionState::Start,
            report_count: None,
            leader_share: None,
            helper_share: None,
            failure: None,
        };
        let mut tx = state.store.begin().await?;
        tx.lock_task(&task_id).await?;
        if let Some(existing) = tx.collection_job(&task_id, &job_id).await? {
            if existing.batch_start == start && existing.batch_duration == duration {
                return Ok(HttpResponse::Created().finish());
            }
            return Err(DapError::Conflict(
                "a collection job with this id exists for another interval".into(),
            ));
        }
        for other in tx.holding_collection_jobs(&task_id).await? {
            let o_end = other.batch_start + other.batch_duration;
            if other.batch_start == start && other.batch_duration == duration {
                return Err(DapError::BatchQueriedTooManyTimes);
            }
            if other.batch_start < end && start < o_end {
                return Err(DapError::BatchOverlap(format!(
                    "[{}, {o_end})",
                    other.batch_start
                )));
            }
        }
        tx.put_collection_job(&job, state.clock.now()).await?;
        tx.commit().await?;
        Ok(HttpResponse::Created().finish())
    })
    .await
}

async fn collection_poll(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let (task_id, job_id) = path.into_inner();
    for_task(&task_id, |task_id| async move {
        let job_id = parse_job_id(&job_id)?;
        let task = state.task_in_role(&task_id, Role::Leader).await?;
        authorize(&req, task.collector_token_hash.as_ref())?;
        let job = state
            .store
            .collection_job(&task_id, &job_id)
            .await?
            .ok_or(DapError::UnrecognizedCollectionJob)?;
        match job.state {
            CollectionState::Start => Ok(HttpResponse::Accepted()
                .insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")))
                .finish()),
            CollectionState::Finished => {
                let leader: HpkeCiphertext = decode(
                    job.leader_share.as_deref().unwrap_or_default(),
                    "stored share",
                )?;
                let helper: HpkeCiphertext = decode(
                    job.helper_share.as_deref().unwrap_or_default(),
                    "stored share",
                )?;
                let collection = Collection::<TimeInterval>::new(
                    PartialBatchSelector::new_time_interval(),
                    job.report_count.unwrap_or(0),
                    interval(job.batch_start, job.batch_duration)?,
                    leader,
                    helper,
                );
                Ok(binary(
                    Collection::<TimeInterval>::MEDIA_TYPE,
                    actix_web::http::StatusCode::OK,
                    encode(&collection)?,
                ))
            }
            CollectionState::Failed => Err(failure_error(job.failure.as_ref())),
            CollectionState::Deleted => Err(DapError::UnrecognizedCollectionJob),
        }
    })
    .await
}

async fn collection_delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Shared,
) -> Result<HttpResponse, DapFailure> {
    let (task_id, job_id) = path.into_inner();
    for_task(&task_id, |task_id| async move {
        let job_id = parse_job_id(&job_id)?;
        let task = state.task_in_role(&task_id, Role::Leader).await?;
        authorize(&req, task.collector_token_hash.as_ref())?;
        let mut tx = state.store.begin().await?;
        tx.lock_task(&task_id).await?;
        let mut job = tx
            .collection_job(&task_id, &job_id)
            .await?
            .ok_or(DapError::UnrecognizedCollectionJob)?;
        // A deleted job keeps holding its interval: its batch may already
        // have been released to the helper's share.
        if job.state != CollectionState::Failed {
            job.state = CollectionState::Deleted;
            tx.update_collection_job(&job).await?;
        }
        tx.commit().await?;
        Ok(HttpResponse::NoContent().finish())
    })
    .await
}
