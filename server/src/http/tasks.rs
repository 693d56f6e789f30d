//! Task endpoints: create and list (admin), get (public), status (the
//! collector, or the operator with the admin token).

use std::str::FromStr;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hetally_protocol::api::{
    BudgetInfo, CreateTaskRequest, CreateTaskResponse, TaskInfo, TaskList, TaskStatusInfo,
};
use hetally_protocol::codec::{FileKind, Reader};
use hetally_protocol::dp::{DpMechanism, Rational, Relation, TrusteeNoise};
use hetally_protocol::keyfile;
use hetally_protocol::{Layout, Measurement, TaskDefinition, TaskId};

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

/// What a client needs of a task's layout, restated as plain numbers for
/// [`TaskInfo`]: the layout's own parameter and how many ciphertexts a
/// report carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayoutFacts {
    /// Paillier: slot width.
    pub(crate) slot_bits: Option<u32>,
    /// Paillier: slots per ciphertext.
    pub(crate) slots_per_ciphertext: Option<u32>,
    /// TFHE: log2 of Delta.
    pub(crate) delta_log2: Option<u32>,
    /// Paillier: packed ciphertexts; TFHE: compact lists.
    pub(crate) ciphertexts_per_report: u64,
    /// Paillier: the bytes of one ciphertext, `2 ceil(bits(n) / 8)`.
    pub(crate) ciphertext_bytes: Option<u64>,
}

/// The [`LayoutFacts`] of a definition, read from its layout and its key
/// file's framing: the Paillier modulus size, or the TFHE parameter set
/// (which fixes the LWE dimension, the most values one list holds). The
/// definition was checked whole when the task was created or loaded, so
/// the key is not validated again here (that would cost a modular
/// exponentiation on every `GET /tasks/{id}`).
pub(crate) fn layout_facts(def: &TaskDefinition) -> Result<LayoutFacts, Error> {
    let broken = |e: String| Error::Internal(format!("a stored task's definition: {e}"));
    let mut key = Reader::new(&def.public_key);
    keyfile::read_key_header(&mut key, FileKind::PublicKey).map_err(|e| broken(e.to_string()))?;
    let len = def.measurement.len();
    match def.layout {
        Layout::Paillier { slot_bits } => {
            let modulus_bits =
                u32::from(key.u16("modulus size").map_err(|e| broken(e.to_string()))?);
            let packing = hetally_schemes::paillier::Packing::new(slot_bits, modulus_bits)
                .map_err(|e| broken(e.to_string()))?;
            Ok(LayoutFacts {
                slot_bits: Some(slot_bits),
                slots_per_ciphertext: Some(packing.slots_per_plaintext()),
                delta_log2: None,
                ciphertexts_per_report: packing.plaintext_count(len) as u64,
                ciphertext_bytes: Some(2 * u64::from(modulus_bits).div_ceil(8)),
            })
        }
        Layout::Tfhe { delta_log2, .. } => {
            let set = key
                .u8("TFHE parameter set")
                .map_err(|e| broken(e.to_string()))?;
            Ok(LayoutFacts {
                slot_bits: None,
                slots_per_ciphertext: None,
                delta_log2: Some(delta_log2),
                ciphertexts_per_report: tfhe_lists(set, len)? as u64,
                ciphertext_bytes: None,
            })
        }
    }
}

/// How many compact lists a TFHE report of `len` values carries under
/// parameter set `set` (docs/protocol.md section 10.3).
#[cfg(feature = "tfhe")]
fn tfhe_lists(set: u8, len: usize) -> Result<usize, Error> {
    let params = hetally_schemes::lwe::ParameterSet::from_id(set)
        .map_err(|e| Error::Internal(format!("a stored task's definition: {e}")))?;
    Ok(hetally_schemes::lwe::list_lengths(len, params.lwe_dimension).len())
}

/// Without TFHE support no TFHE task loads, so this is never reached.
#[cfg(not(feature = "tfhe"))]
fn tfhe_lists(_set: u8, _len: usize) -> Result<usize, Error> {
    Err(Error::Internal(
        "this build has no TFHE support, yet holds a TFHE task".into(),
    ))
}

pub(crate) fn task_info(task: &TaskState) -> Result<TaskInfo, Error> {
    let def = &task.definition;
    let facts = layout_facts(def)?;
    Ok(TaskInfo {
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
        slot_bits: facts.slot_bits,
        slots_per_ciphertext: facts.slots_per_ciphertext,
        delta_log2: facts.delta_log2,
        ciphertexts_per_report: facts.ciphertexts_per_report,
    })
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
        trustee_noise: req
            .trustee_noise
            .as_deref()
            .map(TrusteeNoise::from_str)
            .transpose()
            .map_err(|e| invalid(format!("trustee_noise: {e}")))?,
    })
}

pub(crate) async fn create(
    state: AppState,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    state.check_admin(bearer(&req))?;
    let body: CreateTaskRequest = read_json(&req, payload).await?;
    let (task, tokens) = state.create_task(new_task(body)?).await?;
    Ok(HttpResponse::Created().json(CreateTaskResponse {
        task_id: task.id.to_string(),
        collector_token: tokens.collector,
        trustee_tokens: tokens.trustees,
        task: task_info(&task)?,
    }))
}

pub(crate) async fn list(state: AppState, req: HttpRequest) -> Result<HttpResponse, Error> {
    state.check_admin(bearer(&req))?;
    let tasks = state.list_tasks().await?;
    Ok(HttpResponse::Ok().json(TaskList {
        tasks: tasks
            .iter()
            .map(|t| task_info(t))
            .collect::<Result<_, _>>()?,
    }))
}

pub(crate) async fn get(state: AppState, path: web::Path<String>) -> Result<HttpResponse, Error> {
    let task = state.task(&parse_task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(task_info(&task)?))
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
