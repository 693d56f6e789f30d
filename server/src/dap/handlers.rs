//! The DAP-09 HTTP surface, mounted under `/dap/` (so a task's DAP
//! endpoint is `http://host:port/dap/`):
//!
//! | method, path | who | what |
//! |---|---|---|
//! | `POST /dap/tasks` | admin | provision a task ([`super::task`]) |
//! | `GET /dap/hpke_config?task_id=` | client | this aggregator's HPKE config list |
//! | `PUT /dap/tasks/{id}/reports` | client | upload a report (leader) |
//! | `PUT /dap/tasks/{id}/aggregation_jobs/{job}` | leader | initialise an aggregation job (helper) |
//! | `POST /dap/tasks/{id}/aggregate_shares` | leader | the helper's aggregate share |
//! | `PUT /dap/tasks/{id}/collection_jobs/{job}` | collector | start a collection (leader), 201 |
//! | `POST /dap/tasks/{id}/collection_jobs/{job}` | collector | poll: 202 until ready, then 200 |
//! | `DELETE /dap/tasks/{id}/collection_jobs/{job}` | collector | abandon, 204 |
//!
//! Handlers decode (janus_messages; trailing bytes rejected, bodies capped),
//! authenticate (bearer or `DAP-Auth-Token`, compared as SHA-256 hashes in
//! constant time), and hand over to [`super::helper`] / [`super::leader`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use hetally_crypto::dap::hpke::encode_config;
use hetally_crypto::dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_crypto::dap::messages::query_type::TimeInterval;
use hetally_crypto::dap::messages::{
    AggregateShareReq, AggregationJobId, AggregationJobInitializeReq, Collection, CollectionJobId,
    CollectionReq, HpkeCiphertext, HpkeConfigList, InputShareAad, PartialBatchSelector,
    PlaintextInputShare, Report, Role, TaskId,
};
use hetally_crypto::dap::prio::codec::{Decode, Encode};
use hetally_crypto::dap::vdaf::{check_aggregation_parameter, check_shares};
use hetally_crypto::with_dap_vdaf;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::store::{CollectionJobRow, StoredReport, UploadOutcome};
use super::task::{DapTask, DapTaskRequest, DapTaskResponse};
use super::{helper, now, DapError, DapState};

/// Largest DAP request body (a report of a 1M-element sumvec is ~ 16 MB;
/// an aggregation job of 1000 such reports would not fit, and the leader
/// makes smaller jobs for large VDAFs).
const MAX_BODY: usize = 256 << 20;

/// Largest admin JSON body.
const MAX_JSON: usize = 1 << 20;

type Shared = web::Data<DapState>;

/// Registers the DAP routes (inside the `/dap` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks", web::post().to(create_task))
        .route("/hpke_config", web::get().to(hpke_config))
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

/// The token a request presents: `DAP-Auth-Token: T` or
/// `Authorization: Bearer T`.
fn presented_token(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req.headers().get("DAP-Auth-Token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    crate::http::bearer_token(req)
}

/// Checks a request's token against a stored hash, in constant time.
fn authorize(req: &HttpRequest, expected: Option<&[u8; 32]>) -> Result<(), DapError> {
    let token = presented_token(req).ok_or(DapError::Unauthorized("no token presented"))?;
    let expected = expected.ok_or(DapError::Unauthorized("this task takes no such token"))?;
    let hash = crate::aggregator::hash_token(token);
    if bool::from(hash.ct_eq(expected)) {
        Ok(())
    } else {
        Err(DapError::Unauthorized("wrong token"))
    }
}

fn expect_media_type(req: &HttpRequest, expected: &'static str) -> Result<(), DapError> {
    let found = crate::http::body::media_type(req);
    if found != expected {
        return Err(DapError::UnsupportedMediaType { found, expected });
    }
    Ok(())
}

async fn read_body(mut payload: web::Payload, max: usize) -> Result<Vec<u8>, DapError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| DapError::InvalidMessage(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > max {
            return Err(DapError::PayloadTooLarge((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn decode<T: Decode>(bytes: &[u8], what: &str) -> Result<T, DapError> {
    T::get_decoded(bytes).map_err(|e| DapError::InvalidMessage(format!("{what}: {e}")))
}

fn encode<T: Encode>(msg: &T) -> Result<Vec<u8>, DapError> {
    msg.get_encoded()
        .map_err(|e| DapError::Internal(format!("encoding: {e}")))
}

fn parse_task_id(text: &str) -> Result<TaskId, DapError> {
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
) -> Result<HttpResponse, DapError> {
    let token = presented_token(&req).ok_or(DapError::Unauthorized("no admin token presented"))?;
    let hash = crate::aggregator::hash_token(token);
    if !bool::from(hash.ct_eq(&state.admin_token_hash)) {
        return Err(DapError::Unauthorized("wrong admin token"));
    }
    expect_media_type(&req, "application/json")?;
    let body = read_body(payload, MAX_JSON).await?;
    let request: DapTaskRequest = serde_json::from_slice(&body)
        .map_err(|e| DapError::InvalidTask(format!("invalid JSON: {e}")))?;
    let (task, row) = blocking(move || DapTask::provision(&request)).await?;
    let mut tx = state.store.begin().await?;
    if !tx.put_task(&row, now()).await? {
        return Err(DapError::Conflict(format!(
            "task {} already exists",
            task.task_id
        )));
    }
    tx.commit().await?;
    tracing::info!(task_id = %task.task_id, role = %task.role, vdaf = %task.spec, "DAP task created");
    Ok(HttpResponse::Created().json(DapTaskResponse {
        task_id: task.task_id.to_string(),
        role: task.role.as_str().to_string(),
        vdaf: task.spec.to_string(),
        hpke_config: encode_config(task.hpke_keypair.config()),
    }))
}

#[derive(serde::Deserialize)]
struct HpkeConfigQuery {
    task_id: Option<String>,
}

async fn hpke_config(
    query: web::Query<HpkeConfigQuery>,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let task_id = parse_task_id(query.task_id.as_deref().ok_or(DapError::MissingTaskId)?)?;
    let task = state.task(&task_id).await?;
    let list = HpkeConfigList::new(vec![task.hpke_keypair.config().clone()]);
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
}

/// Leader: report upload. The leader's share is decrypted and checked to
/// decode now, so a report we could never aggregate is refused at once;
/// the report is committed (group commit, [`DapState::store_upload`])
/// before the 200.
async fn upload(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let task_id = parse_task_id(&path)?;
    let task = state.task_in_role(&task_id, Role::Leader).await?;
    expect_media_type(&req, Report::MEDIA_TYPE)?;
    let body = read_body(payload, MAX_BODY).await?;
    let t = task.clone();
    let stored = blocking(move || open_report(&t, &body)).await?;
    match state.store_upload(task_id, stored).await? {
        UploadOutcome::Stored => Ok(HttpResponse::Ok().finish()),
        UploadOutcome::Collected => Err(DapError::ReportRejected(
            "the report's batch interval has already been collected".into(),
        )),
        UploadOutcome::Replayed => Err(DapError::ReportRejected(
            "a report with this id was already uploaded (replay)".into(),
        )),
    }
}

/// Decodes, time-checks and decrypts an uploaded report.
fn open_report(task: &DapTask, body: &[u8]) -> Result<StoredReport, DapError> {
    let report: Report = decode(body, "report")?;
    let time = report.metadata().time().as_seconds_since_epoch();
    let now = now();
    let limit = now.saturating_add(task.params.tolerable_clock_skew);
    if time > limit {
        return Err(DapError::ReportTooEarly { time, limit });
    }
    if time < now.saturating_sub(task.params.report_expiry_age) {
        return Err(DapError::ReportRejected(format!(
            "report time {time} is older than the task's report expiry age ({} s)",
            task.params.report_expiry_age
        )));
    }
    let ct = report.leader_encrypted_input_share();
    if ct.config_id() != task.hpke_keypair.config().id() {
        return Err(DapError::OutdatedConfig(u8::from(*ct.config_id())));
    }
    let aad = encode(&InputShareAad::new(
        task.task_id,
        report.metadata().clone(),
        report.public_share().to_vec(),
    ))?;
    let plaintext = hpke::open(
        &task.hpke_keypair,
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
) -> Result<HttpResponse, DapError> {
    let (task_id, job_id) = path.into_inner();
    let task_id = parse_task_id(&task_id)?;
    let job_id: AggregationJobId = job_id.parse().map_err(|_| {
        DapError::InvalidMessage("aggregation job id is not base64url of 16 bytes".into())
    })?;
    let task = state.task_in_role(&task_id, Role::Helper).await?;
    authorize(&req, task.aggregator_token_hash.as_ref())?;
    expect_media_type(
        &req,
        AggregationJobInitializeReq::<TimeInterval>::MEDIA_TYPE,
    )?;
    let body = read_body(payload, MAX_BODY).await?;
    let response = helper::aggregation_job_init(&state, task, *job_id.as_ref(), body).await?;
    Ok(binary(
        hetally_crypto::dap::messages::AggregationJobResp::MEDIA_TYPE,
        actix_web::http::StatusCode::OK,
        response,
    ))
}

async fn aggregate_share(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let task_id = parse_task_id(&path)?;
    let task = state.task_in_role(&task_id, Role::Helper).await?;
    authorize(&req, task.aggregator_token_hash.as_ref())?;
    expect_media_type(&req, AggregateShareReq::<TimeInterval>::MEDIA_TYPE)?;
    let body = read_body(payload, MAX_JSON).await?;
    let request: AggregateShareReq<TimeInterval> = decode(&body, "aggregate share request")?;
    let response = helper::aggregate_share(&state, task, request).await?;
    Ok(binary(
        hetally_crypto::dap::messages::AggregateShare::MEDIA_TYPE,
        actix_web::http::StatusCode::OK,
        response,
    ))
}

fn parse_collection_path(path: (String, String)) -> Result<(TaskId, [u8; 16]), DapError> {
    let task_id = parse_task_id(&path.0)?;
    let job: CollectionJobId = path.1.parse().map_err(|_| {
        DapError::InvalidMessage("collection job id is not base64url of 16 bytes".into())
    })?;
    Ok((task_id, *job.as_ref()))
}

/// Checks that `[start, start + duration)` is a non-empty interval aligned
/// to the task's time precision.
pub(crate) fn check_interval(task: &DapTask, start: u64, duration: u64) -> Result<(), DapError> {
    let p = task.params.time_precision;
    if duration == 0
        || !start.is_multiple_of(p)
        || !duration.is_multiple_of(p)
        || start.checked_add(duration).is_none()
    {
        return Err(DapError::BatchInvalid(format!(
            "interval [{start}, +{duration}) must be non-empty and aligned to the time precision {p} s"
        )));
    }
    Ok(())
}

async fn collection_create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let (task_id, job_id) = parse_collection_path(path.into_inner())?;
    let task = state.task_in_role(&task_id, Role::Leader).await?;
    authorize(&req, task.collector_token_hash.as_ref())?;
    expect_media_type(&req, CollectionReq::<TimeInterval>::MEDIA_TYPE)?;
    let body = read_body(payload, MAX_JSON).await?;
    let request: CollectionReq<TimeInterval> = decode(&body, "collection request")?;
    check_aggregation_parameter(request.aggregation_parameter())
        .map_err(|e| DapError::InvalidMessage(format!("aggregation parameter: {e}")))?;
    let interval = request.query().batch_interval();
    let start = interval.start().as_seconds_since_epoch();
    let duration = interval.duration().as_seconds();
    check_interval(&task, start, duration)?;
    let end = start + duration;
    let job = CollectionJobRow {
        task_id,
        collection_job_id: job_id,
        batch_start: start,
        batch_duration: duration,
        aggregation_param: request.aggregation_parameter().to_vec(),
        state: "start".into(),
        report_count: None,
        leader_share: None,
        helper_share: None,
        error: None,
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
    tx.put_collection_job(&job, now()).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().finish())
}

async fn collection_poll(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let (task_id, job_id) = parse_collection_path(path.into_inner())?;
    let task = state.task_in_role(&task_id, Role::Leader).await?;
    authorize(&req, task.collector_token_hash.as_ref())?;
    let job = state
        .store
        .collection_job(&task_id, &job_id)
        .await?
        .ok_or(DapError::UnrecognizedCollectionJob)?;
    match job.state.as_str() {
        "start" => Ok(HttpResponse::Accepted()
            .insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")))
            .finish()),
        "finished" => {
            let leader: HpkeCiphertext = decode(
                job.leader_share.as_deref().unwrap_or_default(),
                "stored share",
            )?;
            let helper: HpkeCiphertext = decode(
                job.helper_share.as_deref().unwrap_or_default(),
                "stored share",
            )?;
            let interval = super::leader::interval(job.batch_start, job.batch_duration)?;
            let collection = Collection::<TimeInterval>::new(
                PartialBatchSelector::new_time_interval(),
                job.report_count.unwrap_or(0),
                interval,
                leader,
                helper,
            );
            Ok(binary(
                Collection::<TimeInterval>::MEDIA_TYPE,
                actix_web::http::StatusCode::OK,
                encode(&collection)?,
            ))
        }
        "failed" => Err(super::leader::stored_failure(&job)),
        _ => Err(DapError::UnrecognizedCollectionJob),
    }
}

async fn collection_delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Shared,
) -> Result<HttpResponse, DapError> {
    let (task_id, job_id) = parse_collection_path(path.into_inner())?;
    let task = state.task_in_role(&task_id, Role::Leader).await?;
    authorize(&req, task.collector_token_hash.as_ref())?;
    let mut tx = state.store.begin().await?;
    tx.lock_task(&task_id).await?;
    let mut job = tx
        .collection_job(&task_id, &job_id)
        .await?
        .ok_or(DapError::UnrecognizedCollectionJob)?;
    // A deleted job keeps holding its interval: its batch may already have
    // been released to the helper's share.
    if job.state != "failed" {
        job.state = "deleted".into();
        tx.update_collection_job(&job).await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// SHA-256 of a request body (the helper's idempotency key).
pub(crate) fn body_hash(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body).to_vec()
}
