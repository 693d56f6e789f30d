//! DAP-09 tasks from the client side: provisioning both aggregators,
//! uploading with the published `janus_client`, collecting with the
//! published `janus_collector`.
//!
//! The janus crates are used unmodified; this module only picks the prio
//! VDAF instance for a task's [`VdafSpec`], spreads uploads over several
//! `janus_client::Client`s (each holds a lock for the whole of an upload),
//! and maps the collected field elements back to signed integers
//! ([`hetally_dap::vdaf::signed`]): with DP noise a true count of 0
//! can come out as -3, which `janus_collector` returns as p - 3.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_dap::hpke::{encode_config, CollectorCredential};
use hetally_dap::messages::{
    CollectionJobId, Duration as DapDuration, HpkeConfig, Interval, Query, TaskId, Time,
};
use hetally_dap::vdaf::{signed, DapVdaf, DpStrategy, VdafSpec};
pub use janus_collector::ExponentialBackoff;
use janus_collector::{AuthenticationToken, Collector};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

/// Errors of this module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DapClientError {
    /// A parameter is wrong.
    #[error("{0}")]
    Usage(String),
    /// An aggregator refused a request or could not be reached.
    #[error("{0}")]
    Server(String),
    /// `janus_client` failed.
    #[error("upload failed: {0}")]
    Upload(String),
    /// `janus_collector` failed.
    #[error("collection failed: {0}")]
    Collect(String),
}

/// What a DAP task is made of, as both aggregators are provisioned.
#[derive(Clone)]
pub struct DapTaskConfig {
    /// Leader's DAP endpoint (`http://leader:8080/dap/`).
    pub leader: Url,
    /// Helper's DAP endpoint.
    pub helper: Url,
    /// The VDAF.
    pub vdaf: VdafSpec,
    /// DP strategy (both aggregators noise their shares).
    pub dp: DpStrategy,
    /// Minimum batch size.
    pub min_batch_size: u64,
    /// Time precision, seconds.
    pub time_precision: u64,
    /// The collector's HPKE configuration.
    pub collector_hpke_config: HpkeConfig,
    /// The collector's bearer token.
    pub collector_token: String,
}

/// The result of [`provision`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionedTask {
    /// Task id, base64url.
    pub task_id: String,
    /// Leader's endpoint.
    pub leader: String,
    /// Helper's endpoint.
    pub helper: String,
    /// VDAF, canonical text.
    pub vdaf: String,
    /// DP strategy, canonical text.
    pub dp_strategy: String,
    /// The neighbouring relation of the DP guarantee: always `replace-one`
    /// (DAP publishes report counts).
    #[serde(default)]
    pub relation: String,
    /// The guarantee one collection gives, in words.
    #[serde(default)]
    pub guarantee: String,
    /// Time precision, seconds.
    pub time_precision: u64,
    /// Minimum batch size.
    pub min_batch_size: u64,
}

/// A DAP endpoint URL with a trailing slash (janus joins relative paths).
pub fn endpoint(url: &str) -> Result<Url, DapClientError> {
    let mut url =
        Url::parse(url.trim()).map_err(|e| DapClientError::Usage(format!("URL {url:?}: {e}")))?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Provisions a new task on both aggregators with a fresh task id, Prio3
/// verification key and aggregator token (they never leave the two admin
/// requests).
pub async fn provision(
    http: &reqwest::Client,
    config: &DapTaskConfig,
    leader_admin_token: &str,
    helper_admin_token: &str,
) -> Result<ProvisionedTask, DapClientError> {
    provision_with(
        http,
        config,
        leader_admin_token,
        helper_admin_token,
        &TaskSecrets::random(),
    )
    .await
}

/// The values both aggregators of a task share.
#[derive(Clone)]
pub struct TaskSecrets {
    /// Task id, base64url of 32 bytes.
    pub task_id: String,
    /// Prio3 verification key, base64url of 16 bytes.
    pub verify_key: String,
    /// Token the leader presents to the helper.
    pub aggregator_token: String,
}

impl std::fmt::Debug for TaskSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSecrets")
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

impl TaskSecrets {
    /// Fresh random values from the operating system.
    pub fn random() -> Self {
        TaskSecrets {
            task_id: random_b64(32),
            verify_key: random_b64(16),
            aggregator_token: random_b64(32),
        }
    }
}

/// [`provision`] with given task id, verification key and aggregator
/// token.
pub async fn provision_with(
    http: &reqwest::Client,
    config: &DapTaskConfig,
    leader_admin_token: &str,
    helper_admin_token: &str,
    secrets: &TaskSecrets,
) -> Result<ProvisionedTask, DapClientError> {
    let task_id = secrets.task_id.clone();
    let verify_key = &secrets.verify_key;
    let aggregator_token = &secrets.aggregator_token;
    let body = |role: &str, peer: &Url| {
        let mut v = serde_json::json!({
            "task_id": task_id,
            "role": role,
            "vdaf": config.vdaf.to_string(),
            "dp_strategy": config.dp.to_string(),
            "min_batch_size": config.min_batch_size,
            "time_precision": config.time_precision,
            "peer_url": peer.as_str(),
            "aggregator_auth_token": aggregator_token,
            "collector_hpke_config": encode_config(&config.collector_hpke_config),
            "vdaf_verify_key": verify_key,
        });
        if role == "leader" {
            v["collector_auth_token"] = serde_json::json!(config.collector_token);
        }
        v
    };
    // Helper first: the leader's job driver may start talking to it at once.
    for (url, role, peer, token) in [
        (&config.helper, "helper", &config.leader, helper_admin_token),
        (&config.leader, "leader", &config.helper, leader_admin_token),
    ] {
        let resp = http
            .post(
                url.join("tasks")
                    .map_err(|e| DapClientError::Usage(e.to_string()))?,
            )
            .bearer_auth(token)
            .json(&body(role, peer))
            .send()
            .await
            .map_err(|e| DapClientError::Server(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(DapClientError::Server(format!(
                "creating the task on the {role} ({url}) failed: {status}: {text}"
            )));
        }
    }
    Ok(ProvisionedTask {
        task_id,
        leader: config.leader.to_string(),
        helper: config.helper.to_string(),
        vdaf: config.vdaf.to_string(),
        dp_strategy: config.dp.to_string(),
        relation: DpStrategy::RELATION.to_string(),
        guarantee: config.dp.guarantee(&config.vdaf),
        time_precision: config.time_precision,
        min_batch_size: config.min_batch_size,
    })
}

/// One measurement of a DAP task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DapMeasurement {
    /// prio3count.
    Count(bool),
    /// prio3sum.
    Sum(u128),
    /// prio3histogram: the bucket index.
    Histogram(usize),
    /// prio3sumvec.
    SumVec(Vec<u128>),
}

impl DapMeasurement {
    /// Parses a measurement for `spec`: `0`/`1`, an integer, a bucket
    /// index, or comma-separated integers.
    pub fn parse(spec: &VdafSpec, text: &str) -> Result<Self, DapClientError> {
        let bad = |m: String| DapClientError::Usage(m);
        let int = |s: &str| {
            s.trim()
                .parse::<u128>()
                .map_err(|_| bad(format!("{s:?} is not a non-negative integer")))
        };
        let m = match *spec {
            VdafSpec::Count => match text.trim() {
                "0" => DapMeasurement::Count(false),
                "1" => DapMeasurement::Count(true),
                other => return Err(bad(format!("a count is 0 or 1, not {other:?}"))),
            },
            VdafSpec::Sum { .. } => DapMeasurement::Sum(int(text)?),
            VdafSpec::Histogram { .. } => DapMeasurement::Histogram(int(text)? as usize),
            VdafSpec::SumVec { .. } => {
                DapMeasurement::SumVec(text.split(',').map(int).collect::<Result<_, _>>()?)
            }
        };
        m.check(spec)?;
        Ok(m)
    }

    /// Checks the measurement fits `spec`.
    pub fn check(&self, spec: &VdafSpec) -> Result<(), DapClientError> {
        let fits = |v: u128, bits: usize| bits >= 128 || v < (1u128 << bits);
        let ok = match (self, spec) {
            (DapMeasurement::Count(_), VdafSpec::Count) => true,
            (DapMeasurement::Sum(v), VdafSpec::Sum { bits }) => fits(*v, *bits),
            (DapMeasurement::Histogram(i), VdafSpec::Histogram { length, .. }) => i < length,
            (DapMeasurement::SumVec(v), VdafSpec::SumVec { length, bits, .. }) => {
                v.len() == *length && v.iter().all(|x| fits(*x, *bits))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(DapClientError::Usage(format!(
                "{self:?} is not a valid {spec} measurement"
            )))
        }
    }

    /// The measurement as a vector of the aggregate's length (for truth
    /// files).
    pub fn as_vector(&self) -> Vec<u128> {
        match self {
            DapMeasurement::Count(b) => vec![u128::from(*b)],
            DapMeasurement::Sum(v) => vec![*v],
            DapMeasurement::Histogram(i) => {
                let mut v = vec![0; *i + 1];
                v[*i] = 1;
                v
            }
            DapMeasurement::SumVec(v) => v.clone(),
        }
    }

    /// A uniformly random valid measurement of `spec`.
    pub fn random(spec: &VdafSpec, rng: &mut impl rand::Rng) -> Self {
        let below = |bits: usize, rng: &mut dyn rand::RngCore| {
            let v = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            if bits >= 128 {
                v
            } else {
                v & ((1u128 << bits) - 1)
            }
        };
        match *spec {
            VdafSpec::Count => DapMeasurement::Count(rng.gen()),
            VdafSpec::Sum { bits } => DapMeasurement::Sum(below(bits, rng)),
            VdafSpec::Histogram { length, .. } => {
                DapMeasurement::Histogram(rng.gen_range(0..length))
            }
            VdafSpec::SumVec { length, bits, .. } => {
                DapMeasurement::SumVec((0..length).map(|_| below(bits, rng)).collect())
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_typed<V>(
    task_id: TaskId,
    leader: &Url,
    helper: &Url,
    time_precision: u64,
    vdaf: V,
    measurements: Vec<V::Measurement>,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
    http: &reqwest::Client,
) -> Result<u64, DapClientError>
where
    V: prio::vdaf::Client<16> + Clone + Send + Sync + 'static,
    V::Measurement: Send + Sync + 'static,
{
    let concurrency = concurrency.clamp(1, 256);
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(measurements.len().max(1)) {
        clients.push(
            janus_client::Client::builder(
                task_id,
                leader.clone(),
                helper.clone(),
                DapDuration::from_seconds(time_precision),
                vdaf.clone(),
            )
            .with_http_client(http.clone())
            .build()
            .await
            .map_err(|e| DapClientError::Upload(e.to_string()))?,
        );
    }
    let n = clients.len();
    let mut lanes: Vec<Vec<V::Measurement>> = (0..n).map(|_| Vec::new()).collect();
    for (i, m) in measurements.into_iter().enumerate() {
        lanes[i % n].push(m);
    }
    let futures = clients
        .into_iter()
        .zip(lanes)
        .map(|(client, lane)| async move {
            let mut done = 0u64;
            for m in &lane {
                client
                    .upload(m)
                    .await
                    .map_err(|e| DapClientError::Upload(e.to_string()))?;
                done += 1;
                progress.inc(1);
            }
            Ok::<u64, DapClientError>(done)
        });
    let mut total = 0;
    for r in futures::future::join_all(futures).await {
        total += r?;
    }
    Ok(total)
}

/// Uploads measurements of one task through the leader with
/// `janus_client`, `concurrency` uploads in flight, with a progress bar on
/// stderr if `progress`. Returns the number acknowledged (all of them, or
/// an error).
#[allow(clippy::too_many_arguments)]
pub async fn upload(
    task_id: &str,
    leader: &Url,
    helper: &Url,
    spec: &VdafSpec,
    time_precision: u64,
    measurements: Vec<DapMeasurement>,
    concurrency: usize,
    progress: bool,
    http: &reqwest::Client,
) -> Result<u64, DapClientError> {
    let task_id: TaskId = task_id.parse().map_err(|_| {
        DapClientError::Usage(format!("task id {task_id:?} is not base64url of 32 bytes"))
    })?;
    for m in &measurements {
        m.check(spec)?;
    }
    let vdaf = spec
        .instantiate()
        .map_err(|e| DapClientError::Usage(e.to_string()))?;
    let bar = crate::simulate::bar(measurements.len() as u64, "uploading", progress);
    macro_rules! go {
        ($v:expr, $variant:ident) => {{
            let ms = measurements
                .into_iter()
                .map(|m| match m {
                    DapMeasurement::$variant(x) => x,
                    // check() above matched every measurement to the spec.
                    _ => unreachable!("measurement checked against the VDAF"),
                })
                .collect();
            upload_typed(
                task_id,
                leader,
                helper,
                time_precision,
                $v,
                ms,
                concurrency,
                &bar,
                http,
            )
            .await
        }};
    }
    let result = match vdaf {
        DapVdaf::Count(v) => go!(v, Count),
        DapVdaf::Sum(v) => go!(v, Sum),
        DapVdaf::Histogram(v) => go!(v, Histogram),
        DapVdaf::SumVec(v) => go!(v, SumVec),
    };
    bar.finish_and_clear();
    result
}

/// A collected aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DapCollection {
    /// Reports in the batch.
    pub report_count: u64,
    /// Interval start.
    pub start: u64,
    /// Interval length.
    pub duration: u64,
    /// The aggregate, field elements mapped to signed integers.
    pub values: Vec<i128>,
    /// The aggregate as `janus_collector` returned it.
    pub raw: Vec<u128>,
}

/// How often the collector polls.
pub fn poll_backoff(max_wait: Duration) -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(2),
        multiplier: 1.5,
        max_elapsed_time: Some(max_wait),
        ..Default::default()
    }
}

async fn collect_typed<V, F>(
    collector: Collector<V>,
    job_id: CollectionJobId,
    interval: Interval,
    to_vec: F,
) -> Result<(u64, Vec<u128>), DapClientError>
where
    V: prio::vdaf::Collector<AggregationParam = ()>,
    F: FnOnce(V::AggregateResult) -> Vec<u128>,
{
    // PUT with the caller's job id: the leader answers a repeated, identical
    // PUT of an existing job with 201 again, so this starts the job or
    // resumes it, and then polls it.
    let job = collector
        .start_collection_with_id(job_id, Query::new_time_interval(interval), &())
        .await
        .map_err(|e| DapClientError::Collect(format!("starting collection job {job_id}: {e}")))?;
    let c = collector.poll_until_complete(&job).await.map_err(|e| {
        DapClientError::Collect(format!(
            "collection job {job_id}: {e} (resume it with --job-id {job_id})"
        ))
    })?;
    let count = c.report_count();
    // AggregateResult is not Clone for every VDAF; take it by value.
    let result = into_result(c);
    Ok((count, to_vec(result)))
}

fn into_result<T, Q: janus_messages::query_type::QueryType>(
    c: janus_collector::Collection<T, Q>,
) -> T
where
    T: Clone,
{
    c.aggregate_result().clone()
}

/// A fresh random collection job id (base64url of 16 bytes), for
/// [`collect`]. Keep it until the collection is done: the same id resumes
/// the job, where a new one would be refused (`batchQueriedTooManyTimes`)
/// once the leader has started the first.
pub fn new_collection_job_id() -> String {
    random_b64(16)
}

/// Parses a collection job id (base64url of 16 bytes).
pub fn parse_collection_job_id(text: &str) -> Result<CollectionJobId, DapClientError> {
    text.parse().map_err(|_| {
        DapClientError::Usage(format!(
            "collection job id {text:?} is not base64url of 16 bytes"
        ))
    })
}

/// Collects `[start, start + duration)` of a task with `janus_collector`
/// and the collector's credential, polling the collection job on the
/// schedule `backoff` (usually [`poll_backoff`]; the load benchmark polls
/// every 50 ms, so that the schedule does not blur the aggregators' time).
/// The job gets a fresh id; [`collect_with`] takes the id (to resume a
/// job) and the HTTP client (for extra CA certificates).
pub async fn collect(
    task_id: &str,
    leader: &Url,
    spec: &VdafSpec,
    credential: &CollectorCredential,
    start: u64,
    duration: u64,
    backoff: ExponentialBackoff,
) -> Result<DapCollection, DapClientError> {
    let http = crate::ClientOptions::default()
        .http_client()
        .map_err(|e| DapClientError::Usage(e.to_string()))?;
    collect_with(
        task_id,
        leader,
        spec,
        credential,
        start,
        duration,
        backoff,
        &new_collection_job_id(),
        &http,
    )
    .await
}

/// [`collect`] as collection job `job_id` (from [`new_collection_job_id`];
/// the same id again resumes the job, finished or not) over `http`.
#[allow(clippy::too_many_arguments)]
pub async fn collect_with(
    task_id: &str,
    leader: &Url,
    spec: &VdafSpec,
    credential: &CollectorCredential,
    start: u64,
    duration: u64,
    backoff: ExponentialBackoff,
    job_id: &str,
    http: &reqwest::Client,
) -> Result<DapCollection, DapClientError> {
    let job_id = parse_collection_job_id(job_id)?;
    let task_id: TaskId = task_id.parse().map_err(|_| {
        DapClientError::Usage(format!("task id {task_id:?} is not base64url of 32 bytes"))
    })?;
    let keypair = credential
        .keypair()
        .map_err(|e| DapClientError::Usage(e.to_string()))?;
    let token = AuthenticationToken::new_bearer_token_from_string(credential.token.clone())
        .map_err(|e| DapClientError::Usage(format!("collector token: {e}")))?;
    let interval = Interval::new(
        Time::from_seconds_since_epoch(start),
        DapDuration::from_seconds(duration),
    )
    .map_err(|e| DapClientError::Usage(format!("interval: {e}")))?;
    let vdaf = spec
        .instantiate()
        .map_err(|e| DapClientError::Usage(e.to_string()))?;
    macro_rules! go {
        ($v:expr, $f:expr) => {{
            let collector = Collector::builder(task_id, leader.clone(), token, keypair, $v)
                .with_collect_poll_backoff(backoff.clone())
                .with_http_client(http.clone())
                .build()
                .map_err(|e| DapClientError::Collect(e.to_string()))?;
            collect_typed(collector, job_id, interval, $f).await?
        }};
    }
    let (report_count, raw) = match vdaf {
        DapVdaf::Count(v) => go!(v, |r: u64| vec![u128::from(r)]),
        DapVdaf::Sum(v) => go!(v, |r: u128| vec![r]),
        DapVdaf::Histogram(v) => go!(v, |r: Vec<u128>| r),
        DapVdaf::SumVec(v) => go!(v, |r: Vec<u128>| r),
    };
    let p = spec.field_modulus();
    Ok(DapCollection {
        report_count,
        start,
        duration,
        values: raw.iter().map(|&v| signed(v, p)).collect(),
        raw,
    })
}

/// What an aggregator answers a rotation of a task's HPKE configuration
/// (`POST /dap/tasks/{id}/hpke_configs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HpkeRotation {
    /// Task id.
    pub task_id: String,
    /// The new active configuration, unpadded base64url.
    pub hpke_config: String,
    /// Its config id.
    pub config_id: u8,
    /// The previous configurations that still decrypt, and until when.
    pub previous: Vec<RetiringHpkeConfig>,
}

/// A rotated-out configuration in its grace period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiringHpkeConfig {
    /// Its config id.
    pub config_id: u8,
    /// Unix seconds from which it no longer decrypts.
    pub expires_at: u64,
}

/// Rotates a task's HPKE configuration on one aggregator (its admin
/// token): a new configuration becomes the one it serves; the previous
/// ones keep decrypting for `retire_previous_after` seconds (`None`: the
/// server's `--hpke-grace-secs`; 0: not at all).
pub async fn rotate_hpke_config(
    http: &reqwest::Client,
    aggregator: &Url,
    task_id: &str,
    admin_token: &str,
    retire_previous_after: Option<u64>,
) -> Result<HpkeRotation, DapClientError> {
    let url = aggregator
        .join(&format!("tasks/{task_id}/hpke_configs"))
        .map_err(|e| DapClientError::Usage(format!("task id {task_id:?}: {e}")))?;
    let mut req = http.post(url.clone()).bearer_auth(admin_token);
    if let Some(secs) = retire_previous_after {
        req = req.json(&serde_json::json!({ "retire_previous_after_secs": secs }));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| DapClientError::Server(format!("{url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(DapClientError::Server(format!(
            "rotating the HPKE configuration at {url} failed: {status}: {text}"
        )));
    }
    resp.json()
        .await
        .map_err(|e| DapClientError::Server(format!("{url}: unreadable answer: {e}")))
}
