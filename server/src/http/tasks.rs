//! Task endpoints: create and list (admin), get (public), status (the
//! collector, or the operator with the admin token).

use std::str::FromStr;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hetally_protocol::api::{
    BudgetInfo, CreateTaskRequest, CreateTaskResponse, TaskInfo, TaskList, TaskStatusInfo,
};
use hetally_protocol::dp::{DpMechanism, Rational, Relation};
use hetally_protocol::{Measurement, TaskId};

use super::read_json;
use super::AppState;
use crate::aggregator::{Error, NewTask, TaskState};
use crate::auth::bearer;

pub(crate) fn parse_task_id(raw: &str) -> Result<TaskId, Error> {
    TaskId::from_str(raw).map_err(|e| Error::BadRequest(e.to_string()))
}

/// The budget unit of a mechanism.
fn budget_unit(dp: &DpMechanism) -> &'static str {
    match dp {
        DpMechanism::Gaussian { .. } => "rho",
        _ => "epsilon",
    }
}

pub(crate) fn task_info(task: &TaskState) -> TaskInfo {
    let def = &task.definition;
    TaskInfo {
        task_id: task.id.to_string(),
        definition: URL_SAFE_NO_PAD.encode(&task.definition_bytes),
        scheme: task.aggregator.scheme().to_string(),
        measurement: def.measurement.to_string(),
        min_batch_size: def.min_batch_size,
        max_batch_size: def.max_batch_size,
        time_precision: def.time_precision,
        dp: def.dp.to_string(),
        budget: def.budget.as_ref().map(Rational::to_string),
        key_fingerprint: hex::encode(task.aggregator.key_fingerprint()),
        input_proofs: def.input_proofs,
        relation: def.relation.map_or("legacy", Relation::name).to_string(),
        guarantee: task.guarantee.describe(None),
        crs_sha256: def.layout.crs_hash().map(hex::encode),
        created_at: task.created_at,
        report_expiry_age: task.report_expiry_age,
    }
}

/// Reads a task-creation request body into a new task's parameters:
/// every field parsed and checked, the key decoded (and checked when the
/// task's layout is derived from it). Public for the fuzz targets.
pub fn new_task(req: CreateTaskRequest) -> Result<NewTask, Error> {
    let invalid = |s: String| Error::InvalidTask(s);
    let key_bytes = STANDARD
        .decode(req.public_key.trim())
        .map_err(|_| invalid("public_key must be the key file in standard base64".into()))?;
    // The key is parsed and checked when the task's layout is derived
    // from it (hetally_schemes::new_task_layout).
    let public_key = key_bytes;
    let measurement =
        Measurement::from_str(&req.measurement).map_err(|e| invalid(e.to_string()))?;
    let dp = match req.dp.as_deref() {
        None => DpMechanism::None,
        Some(s) => DpMechanism::from_str(s).map_err(|e| invalid(e.to_string()))?,
    };
    let budget = req
        .budget
        .as_deref()
        .map(Rational::from_str)
        .transpose()
        .map_err(|e| invalid(format!("budget: {e}")))?;
    Ok(NewTask {
        public_key,
        measurement,
        min_batch_size: req.min_batch_size,
        max_batch_size: req.max_batch_size,
        time_precision: req.time_precision,
        dp,
        budget,
        input_proofs: req.input_proofs.unwrap_or(true),
        relation: match req.relation.as_deref() {
            None => Relation::ReplaceOne,
            Some(s) => Relation::from_str(s).map_err(|e| invalid(e.to_string()))?,
        },
        report_expiry_age: req.report_expiry_age,
    })
}

pub(crate) async fn create(
    state: AppState,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    state.check_admin(bearer(&req))?;
    let body: CreateTaskRequest = read_json(&req, payload).await?;
    let (task, token) = state.create_task(new_task(body)?).await?;
    Ok(HttpResponse::Created().json(CreateTaskResponse {
        task_id: task.id.to_string(),
        collector_token: token,
        task: task_info(&task),
    }))
}

pub(crate) async fn list(state: AppState, req: HttpRequest) -> Result<HttpResponse, Error> {
    state.check_admin(bearer(&req))?;
    let tasks = state.list_tasks().await?;
    Ok(HttpResponse::Ok().json(TaskList {
        tasks: tasks.iter().map(|t| task_info(t)).collect(),
    }))
}

pub(crate) async fn get(state: AppState, path: web::Path<String>) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(task_info(&task)))
}

/// Media type of a TFHE task's CRS (hetally's encoding, see
/// `hetally_lwe::Crs`).
pub(crate) const CRS_MEDIA_TYPE: &str = "application/vnd.hetally.tfhe-crs";

/// The CRS clients of a TFHE task with input proofs prove against; its
/// SHA-256 is in the task definition, so clients check it against the id.
pub(crate) async fn crs(state: AppState, path: web::Path<String>) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    let crs = task.crs.clone().ok_or_else(|| {
        Error::NotFound(format!(
            "task {} has no CRS: only TFHE tasks with input proofs have one",
            task.id
        ))
    })?;
    Ok(HttpResponse::Ok()
        .content_type(CRS_MEDIA_TYPE)
        .body(crs.as_ref().clone()))
}

pub(crate) async fn status(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    let reader = state.check_reader(&task, bearer(&req))?;
    let status = state.status(&task).await?;
    // Under add/remove the collector never sees an exact count.
    let exact = reader.sees_exact_counts(&task);
    let budget = task.definition.budget.as_ref().map(|total| BudgetInfo {
        unit: budget_unit(&task.definition.dp).into(),
        total: total.to_string(),
        spent: status.budget_spent.to_string(),
        remaining: total
            .checked_sub(&status.budget_spent)
            .unwrap_or_else(Rational::zero)
            .to_string(),
    });
    Ok(HttpResponse::Ok().json(TaskStatusInfo {
        task_id: task.id.to_string(),
        reports: exact.then_some(status.reports),
        unreleased_reports: exact.then_some(status.unreleased_reports),
        releases: status.releases,
        budget,
    }))
}
