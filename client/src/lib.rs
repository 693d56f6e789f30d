//! hetally's client library and CLI: the uploader beside the client core,
//! task administration, and collection.
//!
//! * [`Client`] is an uploader on top of the sans-IO client core
//!   ([`hetally_client_core`]): it fetches the task, has the core **check
//!   that its definition hashes to the task id** (so a server cannot
//!   substitute its own public key), prepares reports with the core, and
//!   uploads them with retries, exponential backoff and `Retry-After`
//!   ([`hetally_client_core::retry`]).
//! * [`AdminClient`] creates and lists tasks with the admin token.
//! * [`CollectorClient`] requests releases and reads the audit log with a
//!   task's collector token.
//! * [`dap`] (feature `dap`): the DAP-09 mode through the published
//!   `janus_client` and `janus_collector`.
//!
//! The `hetally-client` binary (`src/main.rs`, [`cli`]) wraps all of them.

pub mod cli;
#[cfg(feature = "dap")]
pub mod dap;
#[cfg(feature = "dap")]
pub mod dap_cli;
mod simulate;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_client_core::retry::{parse_retry_after, Attempt, Outcome};
use hetally_client_core::{Arithmetic, CoreError, Task};
use hetally_protocol::api::{
    AwaitingNoise, CreateTaskRequest, CreateTaskResponse, NoiseContributionReceipt, Problem,
    ReleaseList, ReleaseRequest, TaskInfo, TaskList, TaskStatusInfo,
};
use hetally_protocol::problem::ProblemType;
use hetally_protocol::report::{
    AGGREGATE_MEDIA_TYPE, NOISE_CONTRIBUTION_MEDIA_TYPE, REPORT_MEDIA_TYPE,
};
use hetally_protocol::task::TaskError;
use hetally_protocol::{Report, ReportId, TaskDefinition, TaskId};
use rand::Rng;
use reqwest::{StatusCode, Url};
use thiserror::Error;

pub use hetally_client_core::retry::RetryPolicy;
pub use simulate::{simulate, SimulateOptions, SimulateSummary};

/// Errors from the client.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached (after retries, for uploads). The
    /// message carries the whole cause chain (for HTTPS, say, "invalid
    /// peer certificate: UnknownIssuer").
    #[error("cannot reach {url}: {}", error_chain(source))]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("server refused ({status}): {detail}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The problem type URN, if the server sent a problem document.
        kind: Option<String>,
        /// What the server said.
        detail: String,
        /// Its `Retry-After`, seconds.
        retry_after: Option<u64>,
    },
    /// The task served does not match the task id.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The client core refused the task or the measurement.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The server's answer could not be understood.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A bad URL or argument.
    #[error("{0}")]
    Usage(String),
    /// The release waits for its trustees' noise (a task whose trustees
    /// draw it): ask again later.
    #[error(
        "the release waits for its trustees' noise: {} of {} contributions (from trustees {:?}); \
         ask again once the others have run `hetally-client contribute-noise`",
        .0.contributions,
        .0.needed,
        .0.trustees
    )]
    AwaitingNoise(AwaitingNoise),
}

impl ClientError {
    /// The problem type's short name (`reportReplayed`), if any.
    pub fn problem_name(&self) -> Option<&str> {
        match self {
            ClientError::Server { kind: Some(k), .. } => k.strip_prefix("urn:hetally:error:"),
            _ => None,
        }
    }

    /// What an upload attempt got, for the retry policy.
    fn attempt(&self) -> Option<Attempt> {
        match self {
            ClientError::Unreachable { .. } => Some(Attempt::Unreachable),
            ClientError::Server {
                status,
                kind,
                retry_after,
                ..
            } => Some(Attempt::Answer {
                status: *status,
                problem: kind.as_deref().and_then(ProblemType::from_uri),
                retry_after: *retry_after,
            }),
            _ => None,
        }
    }
}

/// An error and its sources, joined with ": " (reqwest's own message
/// names the URL, not why the request failed).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// Joins a path to the server's base URL.
fn endpoint(base: &Url, path: &str) -> Result<Url, ClientError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(path.trim_start_matches('/'))
        .map_err(|e| ClientError::Usage(format!("bad server URL {base}: {e}")))
}

/// Parses a comma-separated list of server URLs (replicas).
pub fn parse_server_urls(s: &str) -> Result<Vec<Url>, ClientError> {
    s.split(',').map(|u| parse_server_url(u.trim())).collect()
}

/// Parses a server URL.
pub fn parse_server_url(s: &str) -> Result<Url, ClientError> {
    let url =
        Url::parse(s).map_err(|e| ClientError::Usage(format!("bad server URL {s:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Usage(format!(
            "server URL {s:?} must start with http:// or https://"
        )));
    }
    Ok(url)
}

/// How the clients connect to servers: today, CA certificates trusted
/// for HTTPS besides the system's (a server with a private CA or a
/// self-signed certificate). The default trusts the system's roots only.
///
/// ```no_run
/// # fn main() -> Result<(), hetally_client::ClientError> {
/// let options = hetally_client::ClientOptions::new()
///     .with_ca_file(std::path::Path::new("/etc/hetally/ca.pem"))?;
/// # let _ = options; Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    extra_roots: Vec<reqwest::Certificate>,
}

impl ClientOptions {
    /// The system's roots only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts every certificate in `pem` (one or more PEM
    /// `CERTIFICATE` blocks).
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let roots = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Usage(format!("CA certificates: {e}")))?;
        if roots.is_empty() {
            return Err(ClientError::Usage(
                "CA certificates: no PEM \"BEGIN CERTIFICATE\" block found".into(),
            ));
        }
        self.extra_roots.extend(roots);
        Ok(self)
    }

    /// Also trusts every certificate in the PEM file at `path`.
    pub fn with_ca_file(self, path: &std::path::Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Usage(format!("CA file {}: {e}", path.display())))?;
        self.with_ca_pem(&pem)
            .map_err(|e| ClientError::Usage(format!("CA file {}: {e}", path.display())))
    }

    /// The HTTP client every hetally client uses, with these options (the
    /// DAP mode hands it to `janus_client` and `janus_collector`).
    pub fn http_client(&self) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("hetally-client/", env!("CARGO_PKG_VERSION")));
        if !self.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(self.extra_roots.iter().cloned());
        }
        builder
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot start the HTTP client: {e}")))
    }
}

/// Builds the HTTP client with the default options.
fn http_client() -> Result<reqwest::Client, ClientError> {
    ClientOptions::default().http_client()
}

/// Turns a non-success response into [`ClientError::Server`].
async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = response.text().await.unwrap_or_default();
    let (kind, detail) = match serde_json::from_str::<Problem>(&text) {
        Ok(p) => (Some(p.kind), p.detail),
        Err(_) => (
            None,
            if text.is_empty() {
                status.to_string()
            } else {
                text
            },
        ),
    };
    Err(ClientError::Server {
        status: status.as_u16(),
        kind,
        detail,
        retry_after,
    })
}

async fn send(
    url: &Url,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ClientError> {
    let response = request
        .send()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    check(response).await
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    token: Option<&str>,
) -> Result<T, ClientError> {
    let mut req = http.get(url.clone());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(&url, req)
        .await?
        .json()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Fetches a task and verifies its definition against the id.
pub async fn fetch_task(
    server: &Url,
    task_id: &TaskId,
) -> Result<(TaskInfo, TaskDefinition), ClientError> {
    fetch_task_with(server, task_id, &ClientOptions::default()).await
}

/// [`fetch_task`] with the given connection options.
pub async fn fetch_task_with(
    server: &Url,
    task_id: &TaskId,
    options: &ClientOptions,
) -> Result<(TaskInfo, TaskDefinition), ClientError> {
    let http = options.http_client()?;
    let info: TaskInfo =
        get_json(&http, endpoint(server, &format!("tasks/{task_id}"))?, None).await?;
    let bytes = URL_SAFE_NO_PAD
        .decode(&info.definition)
        .map_err(|_| ClientError::Protocol("the task definition is not base64url".into()))?;
    let definition = TaskDefinition::verify(&bytes, task_id)?;
    Ok((info, definition))
}

/// Fetches the CRS of a TFHE task with input proofs. The client core checks
/// it against the hash in the verified definition.
pub async fn fetch_crs(server: &Url, task_id: &TaskId) -> Result<Vec<u8>, ClientError> {
    fetch_crs_from(&http_client()?, server, task_id).await
}

async fn fetch_crs_from(
    http: &reqwest::Client,
    server: &Url,
    task_id: &TaskId,
) -> Result<Vec<u8>, ClientError> {
    let url = endpoint(server, &format!("tasks/{task_id}/crs"))?;
    let response = send(&url, http.get(url.clone())).await?;
    // TFHE-rs CRSs of the largest tasks are tens of megabytes.
    let cap = (128 << 20) + 64;
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ClientError::Protocol(format!(
            "the task's CRS is larger than {cap} bytes"
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ClientError::Protocol(format!("reading the task's CRS: {e}")))?;
    if bytes.len() > cap {
        return Err(ClientError::Protocol(format!(
            "the task's CRS is larger than {cap} bytes"
        )));
    }
    Ok(bytes.to_vec())
}

/// An app's handle on one task; see the crate docs.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Replicas to upload to; the first one is where the task was fetched.
    servers: Vec<Url>,
    task: Task,
    retry: RetryPolicy,
}

impl Client {
    /// Fetches the task from the server and has the client core verify
    /// that it hashes to `task_id`; fails with [`TaskError::IdMismatch`] if
    /// the server serves anything else (for instance a swapped public key).
    pub async fn connect(server: Url, task_id: TaskId) -> Result<Self, ClientError> {
        Self::connect_replicas(vec![server], task_id).await
    }

    /// Like [`Client::connect`] for several replicas of one service: the
    /// task is fetched (and verified) from the first, uploads are spread
    /// over all of them by report id, and a retry moves on to the next
    /// replica, so a replica that dies costs a retry, not a report.
    pub async fn connect_replicas(servers: Vec<Url>, task_id: TaskId) -> Result<Self, ClientError> {
        Self::connect_with(servers, task_id, Arithmetic::fastest()).await
    }

    /// [`Client::connect_replicas`] with the given arithmetic for Paillier
    /// tasks (the same bytes either way).
    pub async fn connect_with(
        servers: Vec<Url>,
        task_id: TaskId,
        arithmetic: Arithmetic,
    ) -> Result<Self, ClientError> {
        Self::connect_with_options(servers, task_id, arithmetic, &ClientOptions::default()).await
    }

    /// [`Client::connect_with`] with the given connection options (extra
    /// CA certificates).
    pub async fn connect_with_options(
        servers: Vec<Url>,
        task_id: TaskId,
        arithmetic: Arithmetic,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let first = servers
            .first()
            .ok_or_else(|| ClientError::Usage("no server URL given".into()))?;
        let http = options.http_client()?;
        let url = endpoint(first, &format!("tasks/{task_id}"))?;
        let info = send(&url, http.get(url.clone()))
            .await?
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let parsed: TaskInfo =
            serde_json::from_slice(&info).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let crs = if parsed.crs_sha256.is_some() {
            Some(fetch_crs_from(&http, first, &task_id).await?)
        } else {
            None
        };
        // Checking a TFHE CRS (megabytes of curve points) takes a while.
        let task = tokio::task::spawn_blocking(move || {
            Task::from_info(&task_id, &info, crs.as_deref(), arithmetic)
        })
        .await
        .map_err(|e| ClientError::Protocol(format!("checking the task: {e}")))?
        .map_err(|e| match e {
            // A definition that does not hash to the id is the error apps
            // must tell apart: the server may be substituting a key.
            CoreError::Task(e) => ClientError::Task(e),
            other => ClientError::Core(other),
        })?;
        Ok(Client {
            http,
            servers,
            task,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The verified task definition.
    pub fn definition(&self) -> &TaskDefinition {
        self.task.definition()
    }

    /// The task id.
    pub fn task_id(&self) -> &TaskId {
        self.task.id()
    }

    /// The client core's handle on the task.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// Encrypts a measurement into a report timestamped `unix_time` (rounded
    /// down to the task's precision), with a fresh random report id.
    pub fn prepare(&self, values: &[u64], unix_time: u64) -> Result<Report, ClientError> {
        Ok(self
            .task
            .prepare_report(values, unix_time, &mut rand::rngs::OsRng)?)
    }

    /// Uploads a prepared report, retrying transient failures with
    /// exponential backoff and jitter, and waiting as long as a `429` or
    /// `503` answer's `Retry-After` asks. A `reportReplayed` answer to a
    /// retry means an earlier attempt was stored, and counts as success.
    pub async fn upload(&self, report: &Report) -> Result<(), ClientError> {
        let path = self.task.upload_path();
        let urls = self
            .servers
            .iter()
            .map(|s| endpoint(s, &path))
            .collect::<Result<Vec<_>, _>>()?;
        let first = usize::from(report.id.0[0]) % urls.len();
        let body = report.to_bytes();
        let mut n = 1;
        loop {
            let url = &urls[(first + n as usize - 1) % urls.len()];
            let request = self
                .http
                .put(url.clone())
                .header(reqwest::header::CONTENT_TYPE, REPORT_MEDIA_TYPE)
                .body(body.clone());
            let error = match send(url, request).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let Some(attempt) = error.attempt() else {
                return Err(error);
            };
            let jitter = rand::thread_rng().gen_range(0.5..=1.0);
            match self.retry.after(n, &attempt, jitter) {
                Outcome::Stored => return Ok(()),
                Outcome::GiveUp => return Err(error),
                Outcome::RetryAfter(delay) => {
                    tracing::debug!(attempt = n, ?delay, error = %error, "upload failed, retrying");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
            }
        }
    }

    /// Encrypts and uploads one measurement, timestamped now.
    pub async fn send(&self, values: &[u64]) -> Result<ReportId, ClientError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let report = self.prepare(values, now)?;
        self.upload(&report).await?;
        Ok(report.id)
    }
}

/// Task administration with the admin token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    server: Url,
    token: String,
}

impl AdminClient {
    /// A client for `server` using the admin token.
    pub fn new(server: Url, token: String) -> Result<Self, ClientError> {
        Self::with_options(server, token, &ClientOptions::default())
    }

    /// [`AdminClient::new`] with the given connection options.
    pub fn with_options(
        server: Url,
        token: String,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(AdminClient {
            http: options.http_client()?,
            server,
            token,
        })
    }

    /// Creates a task; the response carries the collector token, which the
    /// server shows only once.
    pub async fn create_task(
        &self,
        request: &CreateTaskRequest,
    ) -> Result<CreateTaskResponse, ClientError> {
        let url = endpoint(&self.server, "tasks")?;
        send(
            &url,
            self.http
                .post(url.clone())
                .bearer_auth(&self.token)
                .json(request),
        )
        .await?
        .json()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Lists every task.
    pub async fn list_tasks(&self) -> Result<TaskList, ClientError> {
        get_json(
            &self.http,
            endpoint(&self.server, "tasks")?,
            Some(&self.token),
        )
        .await
    }
}

/// A released aggregate as the server returned it.
#[derive(Debug, Clone)]
pub struct Release {
    /// The aggregate file bytes.
    pub aggregate: Vec<u8>,
    /// True if this request created the release, false if it was an
    /// earlier release of the same interval.
    pub created: bool,
}

/// The collector's handle on a task.
#[derive(Debug, Clone)]
pub struct CollectorClient {
    http: reqwest::Client,
    server: Url,
    task_id: TaskId,
    token: String,
}

impl CollectorClient {
    /// A client for one task using its collector token.
    pub fn new(server: Url, task_id: TaskId, token: String) -> Result<Self, ClientError> {
        Self::with_options(server, task_id, token, &ClientOptions::default())
    }

    /// [`CollectorClient::new`] with the given connection options.
    pub fn with_options(
        server: Url,
        task_id: TaskId,
        token: String,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(CollectorClient {
            http: options.http_client()?,
            server,
            task_id,
            token,
        })
    }

    /// Releases the batch `[start, start + duration)` (or fetches the
    /// earlier release of exactly that interval).
    pub async fn release(&self, start: u64, duration: u64) -> Result<Release, ClientError> {
        let url = endpoint(&self.server, &format!("tasks/{}/releases", self.task_id))?;
        let response = send(
            &url,
            self.http
                .post(url.clone())
                .bearer_auth(&self.token)
                .json(&ReleaseRequest { start, duration }),
        )
        .await?;
        if response.status() == StatusCode::ACCEPTED {
            let waiting: AwaitingNoise = response
                .json()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Err(ClientError::AwaitingNoise(waiting));
        }
        let created = response.status() == StatusCode::CREATED;
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !media.starts_with(AGGREGATE_MEDIA_TYPE) {
            return Err(ClientError::Protocol(format!(
                "expected an aggregate, got {media:?}"
            )));
        }
        let aggregate = response
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_vec();
        Ok(Release { aggregate, created })
    }

    /// The audit log of the task's releases.
    pub async fn releases(&self) -> Result<ReleaseList, ClientError> {
        let url = endpoint(&self.server, &format!("tasks/{}/releases", self.task_id))?;
        get_json(&self.http, url, Some(&self.token)).await
    }

    /// Report counts and budget.
    pub async fn status(&self) -> Result<TaskStatusInfo, ClientError> {
        let url = endpoint(&self.server, &format!("tasks/{}/status", self.task_id))?;
        get_json(&self.http, url, Some(&self.token)).await
    }
}

/// A trustee's handle on a task whose trustees draw its noise: draws its
/// shares, encrypts them and uploads them (docs/threshold.md).
#[derive(Debug, Clone)]
pub struct TrusteeClient {
    http: reqwest::Client,
    server: Url,
    task_id: TaskId,
    trustee: u16,
    token: String,
}

impl TrusteeClient {
    /// A client for trustee `trustee` (1-based) with its token.
    pub fn with_options(
        server: Url,
        task_id: TaskId,
        trustee: u16,
        token: String,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(TrusteeClient {
            http: options.http_client()?,
            server,
            task_id,
            trustee,
            token,
        })
    }

    /// Fetches and verifies the task, draws this trustee's noise shares for
    /// the release of the batch starting at `start` from the operating
    /// system's randomness, encrypts them under the task's key and uploads
    /// them. The shares are wiped from memory once encrypted.
    pub async fn contribute(
        &self,
        start: u64,
        options: &ClientOptions,
    ) -> Result<(NoiseContributionReceipt, bool), ClientError> {
        let (_, definition) = fetch_task_with(&self.server, &self.task_id, options).await?;
        let trustee = self.trustee;
        let file =
            tokio::task::spawn_blocking(move || noise_contribution(&definition, start, trustee))
                .await
                .map_err(|e| ClientError::Protocol(format!("drawing the noise failed: {e}")))??;
        let url = endpoint(
            &self.server,
            &format!("tasks/{}/releases/{start}/noise", self.task_id),
        )?;
        let response = send(
            &url,
            self.http
                .put(url.clone())
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, NOISE_CONTRIBUTION_MEDIA_TYPE)
                .body(file),
        )
        .await?;
        let created = response.status() == StatusCode::CREATED;
        let receipt = response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((receipt, created))
    }
}

/// One trustee's noise contribution file for `definition`'s release at
/// `start`: shares drawn from the task's share distribution
/// (`hetally_dp::Noise::share`) with a generator seeded by the operating
/// system, then encrypted.
pub fn noise_contribution(
    definition: &TaskDefinition,
    start: u64,
    trustee: u16,
) -> Result<Vec<u8>, ClientError> {
    use rand::SeedableRng;
    use zeroize::Zeroize;
    let noise = hetally_dp::Noise::for_release(
        &definition.measurement,
        &definition.dp,
        definition.relation,
        definition.trustee_noise.as_ref(),
    )
    .map_err(|e| ClientError::Usage(e.to_string()))?;
    let share = noise.share().ok_or_else(|| {
        ClientError::Usage("this task's noise is drawn by the server, not by its trustees".into())
    })?;
    let mut rng = rand_chacha::ChaCha20Rng::from_entropy();
    let mut values = share
        .sample(definition.measurement.len(), &mut rng)
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let file = hetally_schemes::paillier::encrypt_noise_contribution(
        definition, start, trustee, &values, &mut rng,
    );
    values.zeroize();
    Ok(file
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .to_bytes())
}
