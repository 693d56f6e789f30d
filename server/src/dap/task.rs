//! DAP task definitions and their provisioning through the admin API.
//!
//! Both aggregators of a task are provisioned with the same task id, VDAF,
//! verification key, batch rules and aggregator token; the leader also gets
//! the collector's token. Each aggregator makes its own HPKE key pair for
//! the task, served at `GET /dap/hpke_config?task_id=...`; later key pairs
//! come from rotation ([`super::hpke_keys`]), so the key pairs are not part
//! of the (immutable, cached) [`DapTask`].

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_dap::hpke::{decode_config, encode_config, generate_keypair};
use hetally_dap::messages::{HpkeConfig, Role, TaskId};
use hetally_dap::vdaf::{DapVdaf, DpStrategy, VdafSpec, VERIFY_KEY_LEN};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::DapError;
use crate::auth::hash_token;

/// Most reports in one aggregation job the helper accepts.
pub const MAX_JOB_REPORTS: usize = 100_000;

/// Room for what a report carries beside its shares: metadata, HPKE
/// framing and tags, extensions. DAP defines no extension hetally accepts,
/// so a report that needs more is refused as too large.
const REPORT_OVERHEAD: usize = 1024;

/// Largest body of any DAP request, whatever the VDAF (a report of a
/// 1M-element sumvec is about 16 MB).
const MAX_ANY_BODY: usize = 256 << 20;

/// Default tolerable clock skew, seconds.
pub const DEFAULT_CLOCK_SKEW: u64 = 60;

/// Default age after which a report is refused as late, seconds (one week).
pub const DEFAULT_REPORT_EXPIRY_AGE: u64 = 7 * 24 * 3600;

/// Body of `POST /dap/tasks` (admin token required).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DapTaskRequest {
    /// Task id, unpadded base64url of 32 bytes; the same on both
    /// aggregators.
    pub task_id: String,
    /// `leader` or `helper`.
    pub role: String,
    /// `prio3count`, `prio3sum:BITS`, `prio3histogram:LENGTH[:CHUNK]` or
    /// `prio3sumvec:LENGTH:BITS[:CHUNK]`.
    pub vdaf: String,
    /// `none` or `pure-dp-discrete-laplace:EPSILON`.
    #[serde(default = "default_dp")]
    pub dp_strategy: String,
    /// Smallest batch that may be collected.
    pub min_batch_size: u64,
    /// Time precision, seconds: report times are rounded down to it and
    /// batch intervals are multiples of it.
    pub time_precision: u64,
    /// How far in the future a report time may be, seconds.
    #[serde(default = "default_skew")]
    pub tolerable_clock_skew: u64,
    /// How old a report may be at upload, seconds.
    #[serde(default = "default_expiry")]
    pub report_expiry_age: u64,
    /// The other aggregator's DAP base URL (`http://helper:8080/dap/`).
    pub peer_url: String,
    /// Token the leader presents to the helper.
    pub aggregator_auth_token: String,
    /// Token the collector presents to the leader (leader only).
    #[serde(default)]
    pub collector_auth_token: Option<String>,
    /// The collector's HPKE configuration: unpadded base64url of its DAP
    /// encoding.
    pub collector_hpke_config: String,
    /// Prio3 verification key, unpadded base64url of 16 bytes; the same on
    /// both aggregators.
    pub vdaf_verify_key: String,
}

impl fmt::Debug for DapTaskRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DapTaskRequest")
            .field("task_id", &self.task_id)
            .field("role", &self.role)
            .field("vdaf", &self.vdaf)
            .finish_non_exhaustive()
    }
}

fn default_dp() -> String {
    "none".into()
}
fn default_skew() -> u64 {
    DEFAULT_CLOCK_SKEW
}
fn default_expiry() -> u64 {
    DEFAULT_REPORT_EXPIRY_AGE
}

/// The public parameters of a task, stored as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DapParameters {
    /// VDAF, canonical text.
    pub vdaf: String,
    /// DP strategy, canonical text.
    pub dp_strategy: String,
    /// Minimum batch size.
    pub min_batch_size: u64,
    /// Time precision, seconds.
    pub time_precision: u64,
    /// Tolerable clock skew, seconds.
    pub tolerable_clock_skew: u64,
    /// Report expiry age, seconds.
    pub report_expiry_age: u64,
    /// Peer's DAP base URL, with a trailing slash.
    pub peer_url: String,
    /// Collector HPKE config, base64url.
    pub collector_hpke_config: String,
}

/// A provisioned DAP task.
pub struct DapTask {
    /// Task id.
    pub task_id: TaskId,
    /// This aggregator's role.
    pub role: Role,
    /// Public parameters.
    pub params: DapParameters,
    /// The VDAF.
    pub spec: VdafSpec,
    /// Its prio instance.
    pub vdaf: DapVdaf,
    /// DP strategy.
    pub dp: DpStrategy,
    /// Peer base URL.
    pub peer_url: url::Url,
    /// Collector's HPKE config.
    pub collector_hpke_config: HpkeConfig,
    /// Prio3 verification key (secret).
    pub verify_key: [u8; VERIFY_KEY_LEN],
    /// Leader: the token sent to the helper (secret).
    pub peer_auth_token: Option<String>,
    /// Helper: SHA-256 of the token the leader must present.
    pub aggregator_token_hash: Option<[u8; 32]>,
    /// Leader: SHA-256 of the collector's token.
    pub collector_token_hash: Option<[u8; 32]>,
    /// Body limits of the task's routes, worked out from the VDAF.
    pub limits: BodyLimits,
}

/// The largest bodies a task's DAP routes read, from the sizes of the
/// VDAF's shares: an unauthenticated upload can make the leader buffer one
/// report of this task's size, not the 256 MiB any VDAF might need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// `PUT .../reports`: one report.
    pub upload: usize,
    /// `PUT .../aggregation_jobs/{id}`: up to [`MAX_JOB_REPORTS`] report
    /// shares with their leader prepare messages.
    pub aggregation_job: usize,
}

impl BodyLimits {
    fn of(spec: &VdafSpec) -> Result<Self, DapError> {
        let lens = spec
            .share_lens()
            .map_err(|e| DapError::Internal(format!("sizing the VDAF's shares: {e}")))?;
        let upload = lens.public + lens.leader + lens.helper + REPORT_OVERHEAD;
        // A prepare init holds the report share (public share and helper's
        // encrypted share) and the leader's first prepare message, which is
        // at most its input share's size.
        let per_report = lens.public + lens.helper + lens.leader + REPORT_OVERHEAD;
        Ok(BodyLimits {
            upload: upload.min(MAX_ANY_BODY),
            aggregation_job: per_report.saturating_mul(MAX_JOB_REPORTS).min(MAX_ANY_BODY),
        })
    }

    /// Reports per leader aggregation job: at most `job_size`, and few
    /// enough that the job's request stays well under the helper's limit.
    pub fn job_reports(&self, job_size: u64) -> u64 {
        let per_report = self.upload as u64;
        job_size.min((MAX_ANY_BODY as u64 / 4 / per_report).max(1))
    }
}

impl fmt::Debug for DapTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DapTask")
            .field("task_id", &self.task_id)
            .field("role", &self.role)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A task's row with its secrets in plaintext, as it goes to and comes
/// from the store (`crate::datastore::dap` seals and opens the secret
/// columns; see the `dap_tasks` table).
#[derive(Clone)]
pub struct DapTaskRow {
    /// Task id bytes.
    pub task_id: Vec<u8>,
    /// `leader` / `helper`.
    pub role: String,
    /// [`DapParameters`] as JSON.
    pub parameters: String,
    /// Verification key.
    pub vdaf_verify_key: Vec<u8>,
    /// The task's first HPKE key pair as JSON, on its way into the store
    /// (which keeps key pairs in `dap_hpke_keys`); empty when read back.
    pub hpke_keypair: String,
    /// Leader's outgoing token.
    pub peer_auth_token: Option<String>,
    /// Helper's incoming token hash.
    pub aggregator_token_hash: Option<Vec<u8>>,
    /// Leader's collector token hash.
    pub collector_token_hash: Option<Vec<u8>>,
}

impl DapTaskRow {
    /// The configuration of the HPKE key pair the row carries (a row made
    /// by [`DapTask::provision`]).
    pub fn hpke_config(&self) -> Result<HpkeConfig, DapError> {
        let keypair: hetally_dap::janus_core::hpke::HpkeKeypair =
            serde_json::from_str(&self.hpke_keypair)
                .map_err(|e| DapError::Internal(format!("the task's HPKE key pair: {e}")))?;
        Ok(keypair.config().clone())
    }
}

fn hash32(v: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, DapError> {
    v.map(|b| {
        b.try_into()
            .map_err(|_| DapError::Internal("stored token hash is not 32 bytes".into()))
    })
    .transpose()
}

impl DapTask {
    /// Validates an admin request and makes the task and its row, which
    /// carries a fresh HPKE key pair ([`DapTaskRow::hpke_config`]).
    pub fn provision(req: &DapTaskRequest) -> Result<(DapTask, DapTaskRow), DapError> {
        let invalid = |m: String| DapError::InvalidTask(m);
        let task_id: TaskId = req
            .task_id
            .parse()
            .map_err(|_| invalid("task_id must be unpadded base64url of 32 bytes".into()))?;
        let role = match req.role.as_str() {
            "leader" => Role::Leader,
            "helper" => Role::Helper,
            other => {
                return Err(invalid(format!(
                    "role {other:?}: expected leader or helper"
                )))
            }
        };
        let spec: VdafSpec = req
            .vdaf
            .parse()
            .map_err(|e| invalid(format!("vdaf: {e}")))?;
        let dp: DpStrategy = req
            .dp_strategy
            .parse()
            .map_err(|e| invalid(format!("dp_strategy: {e}")))?;
        if dp != DpStrategy::None && !spec.supports_dp() {
            return Err(invalid(format!(
                "dp_strategy {dp} needs prio3histogram or prio3sumvec, not {spec}"
            )));
        }
        if req.min_batch_size == 0 {
            return Err(invalid("min_batch_size must be at least 1".into()));
        }
        if req.time_precision == 0 || req.time_precision > 365 * 24 * 3600 {
            return Err(invalid("time_precision must be 1 second to 1 year".into()));
        }
        if req.aggregator_auth_token.trim().is_empty() {
            return Err(invalid("aggregator_auth_token is empty".into()));
        }
        let collector_token_hash = match (role, &req.collector_auth_token) {
            (Role::Leader, Some(t)) if !t.trim().is_empty() => Some(hash_token(t.trim())),
            (Role::Leader, _) => {
                return Err(invalid("a leader task needs collector_auth_token".into()))
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "collector_auth_token belongs on the leader only".into(),
                ))
            }
            _ => None,
        };
        let collector_hpke_config = decode_config(&req.collector_hpke_config)
            .map_err(|e| invalid(format!("collector_hpke_config: {e}")))?;
        let key = URL_SAFE_NO_PAD
            .decode(req.vdaf_verify_key.trim())
            .ok()
            .and_then(|k| <[u8; VERIFY_KEY_LEN]>::try_from(k).ok())
            .ok_or_else(|| {
                invalid("vdaf_verify_key must be unpadded base64url of 16 bytes".into())
            })?;
        let peer_url = parse_peer_url(&req.peer_url)?;
        let params = DapParameters {
            vdaf: spec.to_string(),
            dp_strategy: dp.to_string(),
            min_batch_size: req.min_batch_size,
            time_precision: req.time_precision,
            tolerable_clock_skew: req.tolerable_clock_skew,
            report_expiry_age: req.report_expiry_age,
            peer_url: peer_url.to_string(),
            collector_hpke_config: encode_config(&collector_hpke_config),
        };
        // A random config id: a client holding a stale config of another
        // task gets outdatedConfig rather than a decryption failure.
        let hpke_keypair = generate_keypair((rand::rngs::OsRng.next_u32() & 0xff) as u8)
            .map_err(|e| DapError::Internal(e.to_string()))?;
        let (peer_auth_token, aggregator_token_hash) = match role {
            Role::Leader => (Some(req.aggregator_auth_token.trim().to_string()), None),
            _ => (None, Some(hash_token(req.aggregator_auth_token.trim()))),
        };
        let row = DapTaskRow {
            task_id: task_id.as_ref().to_vec(),
            role: req.role.clone(),
            parameters: serde_json::to_string(&params)
                .map_err(|e| DapError::Internal(e.to_string()))?,
            vdaf_verify_key: key.to_vec(),
            hpke_keypair: serde_json::to_string(&hpke_keypair)
                .map_err(|e| DapError::Internal(e.to_string()))?,
            peer_auth_token: peer_auth_token.clone(),
            aggregator_token_hash: aggregator_token_hash.map(|h| h.to_vec()),
            collector_token_hash: collector_token_hash.map(|h| h.to_vec()),
        };
        let task = DapTask::from_row(row.clone())?;
        Ok((task, row))
    }

    /// Rebuilds a task from its stored row.
    pub fn from_row(row: DapTaskRow) -> Result<DapTask, DapError> {
        let corrupt = |m: String| DapError::Internal(format!("stored DAP task: {m}"));
        let task_id =
            TaskId::try_from(row.task_id.as_slice()).map_err(|_| corrupt("task id".into()))?;
        let role = match row.role.as_str() {
            "leader" => Role::Leader,
            "helper" => Role::Helper,
            other => return Err(corrupt(format!("role {other:?}"))),
        };
        let params: DapParameters =
            serde_json::from_str(&row.parameters).map_err(|e| corrupt(e.to_string()))?;
        let spec: VdafSpec = params.vdaf.parse().map_err(|e| corrupt(format!("{e}")))?;
        let vdaf = spec.instantiate().map_err(|e| corrupt(e.to_string()))?;
        let dp: DpStrategy = params
            .dp_strategy
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?;
        let peer_url = parse_peer_url(&params.peer_url)?;
        let collector_hpke_config =
            decode_config(&params.collector_hpke_config).map_err(|e| corrupt(e.to_string()))?;
        let verify_key = <[u8; VERIFY_KEY_LEN]>::try_from(row.vdaf_verify_key.as_slice())
            .map_err(|_| corrupt("verify key length".into()))?;
        let limits = BodyLimits::of(&spec)?;
        Ok(DapTask {
            task_id,
            role,
            params,
            spec,
            vdaf,
            dp,
            peer_url,
            collector_hpke_config,
            verify_key,
            peer_auth_token: row.peer_auth_token,
            aggregator_token_hash: hash32(row.aggregator_token_hash)?,
            collector_token_hash: hash32(row.collector_token_hash)?,
            limits,
        })
    }

    /// The start of the time-precision bucket holding `time`.
    pub fn bucket_of(&self, time: u64) -> u64 {
        time - time % self.params.time_precision
    }

    /// Checks that `[start, start + duration)` is a non-empty interval
    /// aligned to the task's time precision that ends within the range of
    /// a DAP time (and of a database integer): an interval the leader could
    /// not aggregate is refused at the door.
    pub fn check_interval(&self, start: u64, duration: u64) -> Result<(), DapError> {
        let p = self.params.time_precision;
        if duration == 0
            || !start.is_multiple_of(p)
            || !duration.is_multiple_of(p)
            || start
                .checked_add(duration)
                .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(DapError::BatchInvalid(format!(
                "interval [{start}, +{duration}) must be non-empty, aligned to the time \
                 precision {p} s, and end by {}",
                i64::MAX
            )));
        }
        Ok(())
    }
}

fn parse_peer_url(text: &str) -> Result<url::Url, DapError> {
    let mut url = url::Url::parse(text.trim())
        .map_err(|e| DapError::InvalidTask(format!("peer_url {text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DapError::InvalidTask(format!(
            "peer_url {text:?}: expected an http or https URL"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// What `POST /dap/tasks` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DapTaskResponse {
    /// Task id.
    pub task_id: String,
    /// Role here.
    pub role: String,
    /// VDAF, canonical text.
    pub vdaf: String,
    /// The neighbouring relation of the DP guarantee (`replace-one`).
    pub relation: String,
    /// The DP guarantee one collection gives, in words.
    pub guarantee: String,
    /// This aggregator's HPKE config for the task, base64url.
    pub hpke_config: String,
}
