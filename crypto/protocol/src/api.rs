//! JSON messages of hetally's HTTP control plane, shared by server and
//! client. Binary payloads (reports, aggregates) use [`crate::report`] and
//! [`crate::aggregate`]; ids are base64url without padding.
//!
//! | method and path | auth | request | response |
//! |---|---|---|---|
//! | `GET /healthz` | none | | 200 `{"status":"ok"}` |
//! | `GET /openapi.json` | none | | 200, the OpenAPI 3.1 document of these routes (`server/openapi.json`) |
//! | `POST /tasks` | admin | [`CreateTaskRequest`] | 201 [`CreateTaskResponse`] |
//! | `GET /tasks` | admin | | [`TaskList`] |
//! | `GET /tasks/{id}` | none | | [`TaskInfo`] |
//! | `GET /tasks/{id}/status` | collector | | [`TaskStatusInfo`] |
//! | `GET /tasks/{id}/crs` | none | | the CRS of a TFHE task with input proofs |
//! | `PUT /tasks/{id}/reports` | none | report bytes | 201, empty |
//! | `POST /tasks/{id}/releases` | collector | [`ReleaseRequest`] | 201 (made by this request) or 200 (an earlier release), aggregate bytes |
//! | `GET /tasks/{id}/releases` | collector | | [`ReleaseList`] |
//! | `PUT /tasks/{id}/releases/{start}/noise` | trustee | noise contribution bytes | 201 (stored) or 200 (the same file again), [`NoiseContributionReceipt`] |
//!
//! A release of a task whose trustees draw its noise answers 202 with
//! [`AwaitingNoise`] until its trustees have contributed.

use serde::{Deserialize, Serialize};

/// Body of `POST /tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// The collector's public key file, standard base64.
    pub public_key: String,
    /// Measurement type, e.g. `histogram:11`.
    pub measurement: String,
    /// Fewest reports per release.
    pub min_batch_size: u64,
    /// Most reports per release; the server's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u64>,
    /// Seconds.
    pub time_precision: u64,
    /// DP mechanism (`none`, `laplace:EPS`, `gaussian:RHO`,
    /// `gaussian-eps:EPS:DELTA`); `none` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    /// Total privacy budget; required with a DP mechanism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Whether reports must carry zero-knowledge proofs of validity
    /// (`docs/proofs.md`); true if absent. `false` trusts every client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_proofs: Option<bool>,
    /// The neighbouring relation of the DP guarantee, `replace-one` (the
    /// default: the batch size is public) or `add-remove` (the report count
    /// is released with noise, never exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// Seconds after which a report is too old to be accepted
    /// (`reportExpired`) and the reports of intervals never released are
    /// deleted; the server's default (`--report-expiry-age-secs`, 7 days)
    /// if absent. At least the time precision. An operational setting, not
    /// part of the definition nor of the task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_expiry_age: Option<u64>,
    /// Noise drawn by the trustees of a threshold key instead of the
    /// server: `CONTRIBUTORS` or `CONTRIBUTORS/HONEST` (docs/threshold.md);
    /// the server draws it if absent. Part of the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee_noise: Option<String>,
}

/// A task as the server describes it. The binary `definition` is the
/// authority: a client hashes it, checks the hash against the task id and
/// takes every parameter from it (docs/protocol.md section 7.6). The other
/// fields restate it as plain JSON, for people and for tools that do not
/// decode definitions; they are informative.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task id.
    pub task_id: String,
    /// Canonical definition, base64url: clients hash it to check the id.
    pub definition: String,
    /// `paillier` or `tfhe`.
    pub scheme: String,
    /// Measurement type.
    pub measurement: String,
    /// Fewest reports per release.
    pub min_batch_size: u64,
    /// Most reports per release.
    pub max_batch_size: u64,
    /// Seconds.
    pub time_precision: u64,
    /// DP mechanism.
    pub dp: String,
    /// Total privacy budget, if DP is on.
    pub budget: Option<String>,
    /// SHA-256 fingerprint of the collector key, hex.
    pub key_fingerprint: String,
    /// Whether reports must carry input proofs.
    #[serde(default)]
    pub input_proofs: bool,
    /// The neighbouring relation: `replace-one`, `add-remove`, or `legacy`
    /// for a task created before relations were declared (its guarantee is
    /// replace-one's; see `guarantee`).
    #[serde(default)]
    pub relation: String,
    /// The DP guarantee one release gives, in words: mechanism, relation,
    /// sensitivity and privacy parameter that hold.
    #[serde(default)]
    pub guarantee: String,
    /// SHA-256 of the task's CRS, hex, for TFHE tasks with input proofs
    /// (the CRS itself is at `GET /tasks/{id}/crs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crs_sha256: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Seconds after which reports expire (see
    /// [`CreateTaskRequest::report_expiry_age`]); 0 from a server that
    /// predates it.
    #[serde(default)]
    pub report_expiry_age: u64,
    /// Paillier: the slot width w in bits (docs/protocol.md section 9.2),
    /// with room for the DP noise's tail bound; the same number as the
    /// definition's layout. `None` for TFHE tasks, which pack no slots
    /// (each value is an LWE ciphertext of its own, scaled by Delta; see
    /// `delta_log2`), and from a server that predates the field.
    #[serde(default)]
    pub slot_bits: Option<u32>,
    /// Paillier: slots per ciphertext, `floor((modulus_bits - 2) /
    /// slot_bits)`; `None` as `slot_bits` is.
    #[serde(default)]
    pub slots_per_ciphertext: Option<u32>,
    /// TFHE: log2 of the plaintext scale Delta (section 10.4); `None` for
    /// Paillier tasks and from a server that predates the field.
    #[serde(default)]
    pub delta_log2: Option<u32>,
    /// Ciphertexts a report carries: Paillier, the packed ciphertexts of a
    /// payload without proofs (section 9.3), which is also what the server
    /// keeps of a report with proofs (that payload carries one ciphertext
    /// per bit instead, section 9.4); TFHE, the compact ciphertext lists
    /// (section 10.3). 0 from a server that predates the field.
    #[serde(default)]
    pub ciphertexts_per_report: u64,
}

/// Response of `POST /tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTaskResponse {
    /// The new task's id.
    pub task_id: String,
    /// The collector token, shown only here.
    pub collector_token: String,
    /// A task with trustee noise: each trustee's token, trustee 1 first,
    /// shown only here (the server keeps their hashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee_tokens: Option<Vec<String>>,
    /// The task.
    pub task: TaskInfo,
}

/// Response of `GET /tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskList {
    /// Every task.
    pub tasks: Vec<TaskInfo>,
}

/// The privacy budget of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetInfo {
    /// `epsilon` or `rho`.
    pub unit: String,
    /// Total.
    pub total: String,
    /// Spent by releases so far.
    pub spent: String,
    /// Left.
    pub remaining: String,
}

/// Response of `GET /tasks/{id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatusInfo {
    /// The task id.
    pub task_id: String,
    /// Reports stored. Absent for the collector of an add-remove task, whose
    /// report counts never leave the server exactly (the admin token sees
    /// them).
    pub reports: Option<u64>,
    /// Reports not in any release; absent as `reports` is.
    pub unreleased_reports: Option<u64>,
    /// Releases made.
    pub releases: u64,
    /// Budget, if DP is on.
    pub budget: Option<BudgetInfo>,
}

/// Body of `POST /tasks/{id}/releases`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Batch interval start, Unix seconds, a multiple of the time precision.
    pub start: u64,
    /// Batch interval length, seconds, a positive multiple of the precision.
    pub duration: u64,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Batch interval start.
    pub batch_start: u64,
    /// Batch interval length.
    pub batch_duration: u64,
    /// Reports in the batch; absent under add-remove (see
    /// `noisy_report_count`).
    pub report_count: Option<u64>,
    /// Under add-remove: the report count as released, with noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noisy_report_count: Option<i64>,
    /// `pending`, `done`, or `withheld` (add-remove: the noisy count fell
    /// outside the task's batch size limits, so no values were released).
    pub state: String,
    /// DP mechanism.
    pub mechanism: String,
    /// Budget this release spent.
    pub cost: String,
    /// Budget spent after it.
    pub budget_spent_after: String,
    /// Budget left after it, if the task has a budget.
    pub budget_remaining_after: Option<String>,
    /// When the batch was claimed, Unix seconds.
    pub requested_at: i64,
    /// When its aggregate was stored, Unix seconds.
    pub released_at: Option<i64>,
    /// A task with trustee noise: the trustees who contributed noise to
    /// this release, in the order their contributions arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_contributions: Option<Vec<NoiseContributionInfo>>,
}

/// One trustee's noise contribution, as the audit log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseContributionInfo {
    /// The trustee, 1-based.
    pub trustee: u16,
    /// When it arrived, Unix seconds.
    pub received_at: i64,
}

/// Body of a 202 answer to `POST /tasks/{id}/releases` for a task whose
/// trustees draw the noise: the batch is claimed and summed, and the
/// release waits for their contributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingNoise {
    /// Always `awaiting-noise`.
    pub state: String,
    /// Batch interval start.
    pub batch_start: u64,
    /// Batch interval length.
    pub batch_duration: u64,
    /// Contributions stored so far.
    pub contributions: usize,
    /// Contributions the release takes.
    pub needed: usize,
    /// The trustees who have contributed.
    pub trustees: Vec<u16>,
}

/// Response of `PUT /tasks/{id}/releases/{start}/noise`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseContributionReceipt {
    /// The contributing trustee.
    pub trustee: u16,
    /// Contributions the release holds now.
    pub contributions: usize,
    /// Contributions the release takes.
    pub needed: usize,
}

/// Response of `GET /tasks/{id}/releases`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseList {
    /// The task id.
    pub task_id: String,
    /// Releases, oldest batch first.
    pub releases: Vec<ReleaseInfo>,
}

/// A problem document (RFC 7807), as the server sends errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:hetally:error:<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// HTTP reason phrase.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What was wrong and what to do.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_info_without_the_layout_fields_still_parses() {
        // An answer of a server that predates the layout fields.
        let old = serde_json::json!({
            "task_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "definition": "AQ",
            "scheme": "paillier",
            "measurement": "count",
            "min_batch_size": 1,
            "max_batch_size": 10,
            "time_precision": 60,
            "dp": "none",
            "budget": null,
            "key_fingerprint": "00",
            "input_proofs": true,
            "created_at": 0
        });
        let info: TaskInfo = serde_json::from_value(old).unwrap();
        assert_eq!(info.slot_bits, None);
        assert_eq!(info.slots_per_ciphertext, None);
        assert_eq!(info.delta_log2, None);
        assert_eq!(info.ciphertexts_per_report, 0);
        // A new answer carries them, TFHE's as null.
        let new = serde_json::to_value(TaskInfo {
            slot_bits: None,
            delta_log2: Some(39),
            ciphertexts_per_report: 1,
            ..info
        })
        .unwrap();
        assert_eq!(new["slot_bits"], serde_json::Value::Null);
        assert_eq!(new["delta_log2"], 39);
        assert_eq!(new["ciphertexts_per_report"], 1);
    }
}
