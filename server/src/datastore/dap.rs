//! The DAP tables (migrations `0004_dap.sql`, `0005_dap_report_shares.sql`
//! and `0006_leases.sql`), on the server's SQLite or PostgreSQL database.
//!
//! Reads go through [`DapStore`]; every change runs in a [`DapTx`] write
//! transaction that the caller commits, so a handler can check and write
//! atomically (replay and overlap checks with the inserts they guard) and
//! answer 2xx only after the commit. SQLite write transactions start with
//! `BEGIN IMMEDIATE` on the single writer connection; on PostgreSQL a
//! transaction first locks its task row (`FOR UPDATE`), which serialises the
//! writers of one task across replicas.
//!
//! Task secrets are sealed with the datastore keys ([`Crypter`]) on their
//! way in and opened on their way out, so that nothing above this module
//! sees a sealed value and no secret reaches the database in plaintext:
//! `dap_tasks.vdaf_verify_key`, `dap_tasks.peer_auth_token` (sealed, then
//! unpadded base64url in its text column) and `dap_hpke_keys.keypair`
//! (migration `0009_dap_secrets.sql`). Incoming tokens are stored as
//! SHA-256 hashes and are not sealed. [`DapStore::secure_secrets`] runs on
//! start: it seals the plaintext rows of databases from before, re-seals
//! values sealed under an older datastore key, and fails, naming the task,
//! if a value opens under none.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_dap::janus_core::hpke::HpkeKeypair;
use hetally_dap::messages::problem_type::DapProblemType;
use hetally_dap::messages::TaskId;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::dap::hpke_keys::HpkeKey;
use crate::dap::task::{DapTask, DapTaskRow};
use crate::dap::DapError;
use crate::datastore::crypter::{Crypter, CrypterError, SecretSlot};
use crate::datastore::{placeholders as sql, Datastore, StoreError};
use crate::lease::{self, JobTable, KeyKind, KeyValue, Lease, LeasePolicy};

/// The leader's aggregation jobs, as [`crate::lease`] sees them.
const AGGREGATION_JOBS: JobTable = JobTable {
    name: "dap_aggregation_jobs",
    key: &[("task_id", KeyKind::Blob), ("job_id", KeyKind::Blob)],
};

/// The leader's collection jobs, as [`crate::lease`] sees them.
const COLLECTION_JOBS: JobTable = JobTable {
    name: "dap_collection_jobs",
    key: &[
        ("task_id", KeyKind::Blob),
        ("collection_job_id", KeyKind::Blob),
    ],
};

/// The state of a leader aggregation job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregationJobState {
    /// Made, not yet finished (it may be leased).
    Pending,
    /// Its output shares are in the buckets.
    Done,
}

impl AggregationJobState {
    /// The code stored in the `state` column.
    pub fn code(self) -> &'static str {
        match self {
            AggregationJobState::Pending => "pending",
            AggregationJobState::Done => "done",
        }
    }
}

/// The state of a leader collection job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionState {
    /// Created; the leader finishes it once its interval is aggregated.
    Start,
    /// Both encrypted shares are stored.
    Finished,
    /// It failed for good ([`CollectionFailure`]); it no longer holds its
    /// interval.
    Failed,
    /// Abandoned by the collector; it still holds its interval.
    Deleted,
}

impl CollectionState {
    /// The code stored in the `state` column.
    pub fn code(self) -> &'static str {
        match self {
            CollectionState::Start => "start",
            CollectionState::Finished => "finished",
            CollectionState::Failed => "failed",
            CollectionState::Deleted => "deleted",
        }
    }

    fn from_code(code: &str) -> Result<Self, DapError> {
        Ok(match code {
            "start" => CollectionState::Start,
            "finished" => CollectionState::Finished,
            "failed" => CollectionState::Failed,
            "deleted" => CollectionState::Deleted,
            other => {
                return Err(DapError::Store(StoreError::Corrupt(format!(
                    "collection job state {other:?}"
                ))))
            }
        })
    }
}

/// Why a collection job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionFailure {
    /// The batch held fewer reports than the task's minimum.
    InvalidBatchSize {
        /// Reports in the batch.
        count: u64,
        /// The task's minimum.
        min: u64,
    },
    /// The helper refused the aggregate share with a DAP problem.
    HelperRefused {
        /// The problem type it answered.
        kind: DapProblemType,
        /// Its detail.
        detail: String,
    },
    /// The helper could not be brought to answer after every attempt.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        detail: String,
    },
    /// A failure recorded by an earlier build in a form this one does not
    /// read.
    Other(String),
}

impl CollectionFailure {
    /// The code stored in `failure_code`.
    fn code(&self) -> &'static str {
        match self {
            CollectionFailure::InvalidBatchSize { .. } => "invalid_batch_size",
            CollectionFailure::HelperRefused { .. } => "helper_refused",
            CollectionFailure::GaveUp { .. } => "gave_up",
            CollectionFailure::Other(_) => "other",
        }
    }
}

/// What became of an uploaded report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Stored (and committed).
    Stored,
    /// A report with this id was stored before: a replay.
    Replayed,
    /// The report's time falls in an interval already collected.
    Collected,
}

/// A stored report on the leader.
#[derive(Clone)]
pub struct StoredReport {
    /// Report id.
    pub report_id: [u8; 16],
    /// Report time.
    pub time: u64,
    /// Encoded public share.
    pub public_share: Vec<u8>,
    /// The leader's decrypted input share payload.
    pub leader_input_share: Vec<u8>,
    /// The helper's encrypted input share (encoded `HpkeCiphertext`).
    pub helper_encrypted: Vec<u8>,
}

/// A leader aggregation job leased to this process.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    /// Task.
    pub task_id: TaskId,
    /// Aggregation job id.
    pub job_id: [u8; 16],
    /// The lease: its token must still be on the job when it is finished.
    pub lease: Lease,
}

/// A leader collection job leased to this process.
#[derive(Debug, Clone)]
pub struct LeasedCollection {
    /// The job.
    pub job: CollectionJobRow,
    /// The lease.
    pub lease: Lease,
}

/// One bucket's stored aggregate.
#[derive(Debug, Clone)]
pub struct BucketAggregate {
    /// Bucket start.
    pub bucket_start: u64,
    /// Encoded aggregate share.
    pub share: Vec<u8>,
    /// Reports in it.
    pub report_count: u64,
    /// XOR of SHA-256 of the report ids.
    pub checksum: [u8; 32],
}

/// A leader collection job.
#[derive(Debug, Clone)]
pub struct CollectionJobRow {
    /// Task.
    pub task_id: TaskId,
    /// Job id.
    pub collection_job_id: [u8; 16],
    /// Interval start.
    pub batch_start: u64,
    /// Interval length.
    pub batch_duration: u64,
    /// Encoded aggregation parameter.
    pub aggregation_param: Vec<u8>,
    /// Where it is.
    pub state: CollectionState,
    /// Reports, once finished.
    pub report_count: Option<u64>,
    /// Leader's encrypted share (encoded `HpkeCiphertext`).
    pub leader_share: Option<Vec<u8>>,
    /// Helper's encrypted share.
    pub helper_share: Option<Vec<u8>>,
    /// Why it failed, once failed.
    pub failure: Option<CollectionFailure>,
}

/// The helper's stored answer to an aggregate share request.
#[derive(Debug, Clone)]
pub struct AggregateShareRow {
    /// Reports.
    pub report_count: u64,
    /// Checksum.
    pub checksum: [u8; 32],
    /// Encoded `HpkeCiphertext`.
    pub encrypted_share: Vec<u8>,
}

fn i(v: u64) -> Result<i64, DapError> {
    i64::try_from(v).map_err(|_| DapError::InvalidMessage(format!("{v} is out of range")))
}

fn u(v: i64) -> Result<u64, DapError> {
    u64::try_from(v).map_err(|_| DapError::Store(StoreError::Corrupt(format!("negative {v}"))))
}

fn arr<const N: usize>(v: Vec<u8>) -> Result<[u8; N], DapError> {
    v.try_into()
        .map_err(|_| DapError::Store(StoreError::Corrupt(format!("expected {N} bytes"))))
}

/// Handle on the DAP tables.
#[derive(Debug, Clone)]
pub struct DapStore {
    postgres: bool,
    writer: AnyPool,
    readers: AnyPool,
    crypter: Arc<Crypter>,
}

/// A write transaction on the DAP tables.
pub struct DapTx {
    postgres: bool,
    tx: Transaction<'static, Any>,
    crypter: Arc<Crypter>,
}

/// `dap_tasks` columns holding sealed secrets.
const TASKS: &str = "dap_tasks";
const VERIFY_KEY: &str = "vdaf_verify_key";
const PEER_TOKEN: &str = "peer_auth_token";
/// `dap_hpke_keys.keypair`.
const HPKE_KEYS: &str = "dap_hpke_keys";
const KEYPAIR: &str = "keypair";

fn task_slot<'a>(column: &'static str, task_id: &'a [u8]) -> SecretSlot<'a> {
    SecretSlot {
        table: TASKS,
        column,
        row: task_id,
    }
}

/// The row key of an HPKE key pair: task id, then config id.
fn hpke_row(task_id: &[u8], config_id: u8) -> Vec<u8> {
    let mut row = task_id.to_vec();
    row.push(config_id);
    row
}

fn secrets_error(task_id: &[u8], source: CrypterError) -> DapError {
    DapError::Secrets {
        task_id: TaskId::try_from(task_id)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| hex::encode(task_id)),
        source,
    }
}

/// Opens a sealed text column (base64url of the sealed bytes).
fn open_text(
    crypter: &Crypter,
    slot: SecretSlot<'_>,
    text: &str,
) -> Result<(String, bool), CrypterError> {
    let sealed = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CrypterError::Malformed {
            table: slot.table,
            column: slot.column,
            len: text.len(),
        })?;
    let opened = crypter.open(slot, &sealed)?;
    let text =
        String::from_utf8(opened.plaintext.to_vec()).map_err(|_| CrypterError::Malformed {
            table: slot.table,
            column: slot.column,
            len: sealed.len(),
        })?;
    Ok((text, opened.stale))
}

fn seal_text(crypter: &Crypter, slot: SecretSlot<'_>, text: &str) -> Result<String, CrypterError> {
    Ok(URL_SAFE_NO_PAD.encode(crypter.seal(slot, text.as_bytes())?))
}

/// A `dap_tasks` row with its secrets opened.
fn open_task_row(crypter: &Crypter, row: &AnyRow) -> Result<DapTaskRow, DapError> {
    let task_id: Vec<u8> = row.try_get("task_id")?;
    let sealed: i64 = row.try_get("secrets_sealed")?;
    if sealed != 1 {
        return Err(DapError::Internal(format!(
            "DAP task {}: its secrets are stored in plaintext by an older server; restart this              one to seal them",
            TaskId::try_from(task_id.as_slice())
                .map(|t| t.to_string())
                .unwrap_or_default()
        )));
    }
    let err = |e| secrets_error(&task_id, e);
    let sealed_key: Vec<u8> = row.try_get(VERIFY_KEY)?;
    let verify_key = crypter
        .open(task_slot(VERIFY_KEY, &task_id), &sealed_key)
        .map_err(err)?;
    let peer_auth_token = row
        .try_get::<Option<String>, _>(PEER_TOKEN)?
        .map(|t| open_text(crypter, task_slot(PEER_TOKEN, &task_id), &t).map(|(t, _)| t))
        .transpose()
        .map_err(err)?;
    Ok(DapTaskRow {
        task_id: task_id.clone(),
        role: row.try_get("role")?,
        parameters: row.try_get("parameters")?,
        vdaf_verify_key: verify_key.plaintext.to_vec(),
        hpke_keypair: String::new(),
        peer_auth_token,
        aggregator_token_hash: row.try_get("aggregator_token_hash")?,
        collector_token_hash: row.try_get("collector_token_hash")?,
    })
}

/// An HPKE key pair row, opened.
fn open_hpke_row(
    crypter: &Crypter,
    task_id: &[u8],
    row: &AnyRow,
) -> Result<(HpkeKey, bool), DapError> {
    let config_id = u8::try_from(row.try_get::<i64, _>("config_id")?)
        .map_err(|_| DapError::Store(StoreError::Corrupt("HPKE config id".into())))?;
    let sealed: Vec<u8> = row.try_get(KEYPAIR)?;
    let row_key = hpke_row(task_id, config_id);
    let opened = crypter
        .open(
            SecretSlot {
                table: HPKE_KEYS,
                column: KEYPAIR,
                row: &row_key,
            },
            &sealed,
        )
        .map_err(|e| secrets_error(task_id, e))?;
    let keypair: HpkeKeypair = serde_json::from_slice(&opened.plaintext)
        .map_err(|e| DapError::Store(StoreError::Corrupt(format!("HPKE key pair: {e}"))))?;
    if u8::from(*keypair.config().id()) != config_id {
        return Err(DapError::Store(StoreError::Corrupt(
            "HPKE key pair under another config id".into(),
        )));
    }
    Ok((
        HpkeKey {
            keypair,
            created_at: u(row.try_get("created_at")?)?,
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(u)
                .transpose()?,
        },
        opened.stale,
    ))
}

/// What [`DapStore::secure_secrets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretsPass {
    /// Tasks whose secrets were checked.
    pub tasks: u64,
    /// Tasks stored in plaintext (before migration 0009), now sealed.
    pub migrated: u64,
    /// Sealed values that opened under an older datastore key and were
    /// sealed again under the first.
    pub resealed: u64,
    /// HPKE key pairs past their expiry, deleted.
    pub expired_hpke_keys: u64,
}

fn failure_of(row: &AnyRow) -> Result<Option<CollectionFailure>, DapError> {
    let code: Option<String> = row.try_get("failure_code")?;
    let detail = row
        .try_get::<Option<String>, _>("error")?
        .unwrap_or_default();
    let number = |col: &str| -> Result<u64, DapError> {
        u(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
    };
    Ok(match code.as_deref() {
        None => None,
        Some("invalid_batch_size") => Some(CollectionFailure::InvalidBatchSize {
            count: number("failure_count")?,
            min: number("failure_min")?,
        }),
        Some("helper_refused") => {
            let uri: Option<String> = row.try_get("failure_problem")?;
            match uri.as_deref().map(str::parse::<DapProblemType>) {
                Some(Ok(kind)) => Some(CollectionFailure::HelperRefused { kind, detail }),
                _ => Some(CollectionFailure::Other(detail)),
            }
        }
        Some("gave_up") => Some(CollectionFailure::GaveUp {
            attempts: u32::try_from(number("failure_count")?).unwrap_or(u32::MAX),
            detail,
        }),
        Some(_) => Some(CollectionFailure::Other(detail)),
    })
}

fn collection_row(row: &AnyRow) -> Result<CollectionJobRow, DapError> {
    let task_id: Vec<u8> = row.try_get("task_id")?;
    Ok(CollectionJobRow {
        task_id: TaskId::try_from(task_id.as_slice())
            .map_err(|_| DapError::Store(StoreError::Corrupt("task id".into())))?,
        collection_job_id: arr(row.try_get("collection_job_id")?)?,
        batch_start: u(row.try_get("batch_start")?)?,
        batch_duration: u(row.try_get("batch_duration")?)?,
        aggregation_param: row.try_get("aggregation_param")?,
        state: CollectionState::from_code(&row.try_get::<String, _>("state")?)?,
        report_count: row
            .try_get::<Option<i64>, _>("report_count")?
            .map(u)
            .transpose()?,
        leader_share: row.try_get("leader_share")?,
        helper_share: row.try_get("helper_share")?,
        failure: failure_of(row)?,
    })
}

const COLLECTION_COLUMNS: &str = "task_id, collection_job_id, batch_start, batch_duration, \
     aggregation_param, state, report_count, leader_share, helper_share, error, failure_code, \
     failure_count, failure_min, failure_problem";

impl DapStore {
    /// The DAP tables of `store`'s database.
    /// Secrets are sealed and opened with `crypter`.
    pub fn new(store: &Datastore, crypter: Arc<Crypter>) -> Self {
        let (postgres, writer, readers) = store.pools();
        DapStore {
            postgres,
            writer,
            readers,
            crypter,
        }
    }

    fn sql(&self, text: &str) -> String {
        sql(self.postgres, text)
    }

    /// Leader: stores a batch of uploaded reports in one transaction (the
    /// upload group commit) and returns what became of each, in order. The
    /// tasks are locked in a fixed order; each report is checked against
    /// the collected intervals and the stored report ids of its task, and
    /// every `Stored` one is durable once this returns.
    pub async fn insert_reports(
        &self,
        reports: &[(TaskId, StoredReport)],
    ) -> Result<Vec<UploadOutcome>, DapError> {
        let mut tx = self.begin().await?;
        let tasks: BTreeSet<&TaskId> = reports.iter().map(|(t, _)| t).collect();
        for task_id in tasks {
            tx.lock_task(task_id).await?;
        }
        let mut collected: HashMap<(TaskId, u64), bool> = HashMap::new();
        let mut outcomes = Vec::with_capacity(reports.len());
        for (task_id, report) in reports {
            let in_collected = match collected.get(&(*task_id, report.time)) {
                Some(&c) => c,
                None => {
                    let c = tx.leader_time_collected(task_id, report.time).await?;
                    collected.insert((*task_id, report.time), c);
                    c
                }
            };
            outcomes.push(if in_collected {
                UploadOutcome::Collected
            } else if tx.insert_report(task_id, report).await? {
                UploadOutcome::Stored
            } else {
                UploadOutcome::Replayed
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<DapTx, DapError> {
        let tx = self
            .writer
            .begin_with(if self.postgres {
                "BEGIN"
            } else {
                "BEGIN IMMEDIATE"
            })
            .await?;
        Ok(DapTx {
            postgres: self.postgres,
            tx,
            crypter: self.crypter.clone(),
        })
    }

    /// Looks a task up.
    pub async fn get_task(&self, task_id: &TaskId) -> Result<Option<DapTask>, DapError> {
        let q = self.sql("SELECT * FROM dap_tasks WHERE task_id = ?1");
        let row = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .fetch_optional(&self.readers)
            .await?;
        row.map(|r| DapTask::from_row(open_task_row(&self.crypter, &r)?))
            .transpose()
    }

    /// A task's HPKE key pairs, opened (expired ones included; the caller
    /// filters by time).
    pub async fn hpke_keys(&self, task_id: &TaskId) -> Result<Vec<HpkeKey>, DapError> {
        let q = self.sql(
            "SELECT config_id, keypair, created_at, expires_at FROM dap_hpke_keys \
             WHERE task_id = ?1",
        );
        let rows = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|r| Ok(open_hpke_row(&self.crypter, task_id.as_ref(), r)?.0))
            .collect()
    }

    /// On start: seals the secrets of tasks stored in plaintext (databases
    /// from before migration 0009, whose HPKE key pair moves into
    /// `dap_hpke_keys`), re-seals values that opened under an older
    /// datastore key, and deletes expired HPKE key pairs; one transaction
    /// per task, so that replicas starting together do the work once.
    /// Fails on the first task with a value that opens under no key, naming
    /// it: the server must not start without its secrets.
    pub async fn secure_secrets(&self, now: u64) -> Result<SecretsPass, DapError> {
        let ids: Vec<Vec<u8>> = sqlx::query("SELECT task_id FROM dap_tasks ORDER BY task_id")
            .fetch_all(&self.readers)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut pass = SecretsPass::default();
        for id in ids {
            let task_id = TaskId::try_from(id.as_slice())
                .map_err(|_| DapError::Store(StoreError::Corrupt("task id".into())))?;
            let mut tx = self.begin().await?;
            tx.lock_task(&task_id).await?;
            tx.secure_task(&task_id, now, &mut pass).await?;
            tx.commit().await?;
            pass.tasks += 1;
        }
        Ok(pass)
    }

    /// The reports of a leader aggregation job.
    pub async fn job_reports(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Vec<StoredReport>, DapError> {
        let q = self.sql(
            "SELECT r.report_id, r.time, s.public_share, s.leader_input_share, \
             s.helper_encrypted FROM dap_reports r JOIN dap_report_shares s \
             ON s.task_id = r.task_id AND s.report_id = r.report_id \
             WHERE r.task_id = ?1 AND r.job_id = ?2 ORDER BY r.time, r.report_id",
        );
        let rows = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(job_id.to_vec())
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredReport {
                    report_id: arr(r.try_get("report_id")?)?,
                    time: u(r.try_get("time")?)?,
                    public_share: r.try_get("public_share")?,
                    leader_input_share: r.try_get("leader_input_share")?,
                    helper_encrypted: r.try_get("helper_encrypted")?,
                })
            })
            .collect()
    }

    /// One collection job.
    pub async fn collection_job(
        &self,
        task_id: &TaskId,
        id: &[u8; 16],
    ) -> Result<Option<CollectionJobRow>, DapError> {
        collection_job(&self.readers, self.postgres, task_id, id).await
    }

    /// Leader: reports in `[start, end)` not yet through a finished
    /// aggregation job.
    pub async fn unaggregated_reports(
        &self,
        task_id: &TaskId,
        start: u64,
        end: u64,
    ) -> Result<u64, DapError> {
        let q = self.sql(
            "SELECT COUNT(*) FROM dap_reports r LEFT JOIN dap_aggregation_jobs j \
             ON j.task_id = r.task_id AND j.job_id = r.job_id \
             WHERE r.task_id = ?1 AND r.time >= ?2 AND r.time < ?3 \
             AND (r.job_id IS NULL OR j.state IS NULL OR j.state <> 'done')",
        );
        let n: i64 = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(start)?)
            .bind(i(end)?)
            .fetch_one(&self.readers)
            .await?
            .try_get(0)?;
        u(n)
    }

    /// Buckets of `[start, end)` with their aggregates.
    pub async fn buckets(
        &self,
        task_id: &TaskId,
        start: u64,
        end: u64,
    ) -> Result<Vec<BucketAggregate>, DapError> {
        buckets(&self.readers, self.postgres, task_id, start, end).await
    }
}

async fn collection_job<'e, E>(
    executor: E,
    postgres: bool,
    task_id: &TaskId,
    id: &[u8; 16],
) -> Result<Option<CollectionJobRow>, DapError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let q = sql(
        postgres,
        &format!(
            "SELECT {COLLECTION_COLUMNS} FROM dap_collection_jobs \
             WHERE task_id = ?1 AND collection_job_id = ?2"
        ),
    );
    let row = sqlx::query(&q)
        .bind(task_id.as_ref().to_vec())
        .bind(id.to_vec())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(collection_row).transpose()
}

async fn buckets<'e, E>(
    executor: E,
    postgres: bool,
    task_id: &TaskId,
    start: u64,
    end: u64,
) -> Result<Vec<BucketAggregate>, DapError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let q = sql(
        postgres,
        "SELECT bucket_start, aggregate_share, report_count, checksum FROM dap_batch_aggregations \
         WHERE task_id = ?1 AND bucket_start >= ?2 AND bucket_start < ?3 ORDER BY bucket_start",
    );
    let rows = sqlx::query(&q)
        .bind(task_id.as_ref().to_vec())
        .bind(i(start)?)
        .bind(i(end)?)
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(BucketAggregate {
                bucket_start: u(r.try_get("bucket_start")?)?,
                share: r.try_get("aggregate_share")?,
                report_count: u(r.try_get("report_count")?)?,
                checksum: arr(r.try_get("checksum")?)?,
            })
        })
        .collect()
}

impl DapTx {
    fn sql(&self, text: &str) -> String {
        sql(self.postgres, text)
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DapError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Locks the task's row until commit (PostgreSQL; SQLite's write
    /// transaction already excludes other writers).
    pub async fn lock_task(&mut self, task_id: &TaskId) -> Result<(), DapError> {
        if self.postgres {
            sqlx::query("SELECT task_id FROM dap_tasks WHERE task_id = $1 FOR UPDATE")
                .bind(task_id.as_ref().to_vec())
                .fetch_optional(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Stores a new task, its secrets sealed, and its first HPKE key pair
    /// (`row.hpke_keypair`, JSON) as the active one; false if a task with
    /// this id exists.
    pub async fn put_task(&mut self, row: &DapTaskRow, now: u64) -> Result<bool, DapError> {
        let id = row.task_id.as_slice();
        let err = |e| secrets_error(id, e);
        let verify_key = self
            .crypter
            .seal(task_slot(VERIFY_KEY, id), &row.vdaf_verify_key)
            .map_err(err)?;
        let peer_token = row
            .peer_auth_token
            .as_deref()
            .map(|t| seal_text(&self.crypter, task_slot(PEER_TOKEN, id), t))
            .transpose()
            .map_err(err)?;
        let keypair: HpkeKeypair = serde_json::from_str(&row.hpke_keypair)
            .map_err(|e| DapError::Internal(format!("the task's HPKE key pair: {e}")))?;
        let q = self.sql(
            "INSERT INTO dap_tasks (task_id, role, parameters, vdaf_verify_key, hpke_keypair, \
             peer_auth_token, aggregator_token_hash, collector_token_hash, created_at, \
             secrets_sealed) VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7, ?8, 1) \
             ON CONFLICT (task_id) DO NOTHING",
        );
        let done = sqlx::query(&q)
            .bind(row.task_id.clone())
            .bind(row.role.clone())
            .bind(row.parameters.clone())
            .bind(verify_key)
            .bind(peer_token)
            .bind(row.aggregator_token_hash.clone())
            .bind(row.collector_token_hash.clone())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let task_id = TaskId::try_from(id)
            .map_err(|_| DapError::InvalidTask("task id is not 32 bytes".into()))?;
        self.put_hpke_key(&task_id, &keypair, now).await?;
        Ok(true)
    }

    /// Stores an HPKE key pair of a task, sealed, as its active one (the
    /// caller retires the previous ones first: [`DapTx::retire_hpke_keys`]).
    pub async fn put_hpke_key(
        &mut self,
        task_id: &TaskId,
        keypair: &HpkeKeypair,
        now: u64,
    ) -> Result<(), DapError> {
        let config_id = u8::from(*keypair.config().id());
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(keypair).map_err(|e| DapError::Internal(e.to_string()))?,
        );
        let row_key = hpke_row(task_id.as_ref(), config_id);
        let sealed = self
            .crypter
            .seal(
                SecretSlot {
                    table: HPKE_KEYS,
                    column: KEYPAIR,
                    row: &row_key,
                },
                &json,
            )
            .map_err(|e| secrets_error(task_id.as_ref(), e))?;
        let q = self.sql(
            "INSERT INTO dap_hpke_keys (task_id, config_id, keypair, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        );
        sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i64::from(config_id))
            .bind(sealed)
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The config ids of every stored HPKE key pair of a task, expired or
    /// not.
    pub async fn hpke_config_ids(&mut self, task_id: &TaskId) -> Result<Vec<u8>, DapError> {
        let q = self.sql("SELECT config_id FROM dap_hpke_keys WHERE task_id = ?1");
        let rows = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| {
                u8::try_from(r.try_get::<i64, _>(0)?)
                    .map_err(|_| DapError::Store(StoreError::Corrupt("HPKE config id".into())))
            })
            .collect()
    }

    /// Gives every HPKE key pair of a task that would decrypt past
    /// `expires_at` that expiry (the active one included), then deletes
    /// those expired at `now`; returns how many were deleted.
    pub async fn retire_hpke_keys(
        &mut self,
        task_id: &TaskId,
        expires_at: u64,
        now: u64,
    ) -> Result<u64, DapError> {
        let q = self.sql(
            "UPDATE dap_hpke_keys SET expires_at = ?1 WHERE task_id = ?2 \
             AND (expires_at IS NULL OR expires_at > ?1)",
        );
        sqlx::query(&q)
            .bind(i(expires_at)?)
            .bind(task_id.as_ref().to_vec())
            .execute(&mut *self.tx)
            .await?;
        self.delete_expired_hpke_keys(task_id, now).await
    }

    /// Deletes a task's HPKE key pairs expired at `now`.
    pub async fn delete_expired_hpke_keys(
        &mut self,
        task_id: &TaskId,
        now: u64,
    ) -> Result<u64, DapError> {
        let q = self.sql("DELETE FROM dap_hpke_keys WHERE task_id = ?1 AND expires_at <= ?2");
        Ok(sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    /// [`DapStore::secure_secrets`] for one task, whose row is locked.
    async fn secure_task(
        &mut self,
        task_id: &TaskId,
        now: u64,
        pass: &mut SecretsPass,
    ) -> Result<(), DapError> {
        let id = task_id.as_ref();
        let err = |e| secrets_error(id, e);
        let q = self.sql(
            "SELECT vdaf_verify_key, hpke_keypair, peer_auth_token, secrets_sealed, created_at \
             FROM dap_tasks WHERE task_id = ?1",
        );
        let row = sqlx::query(&q)
            .bind(id.to_vec())
            .fetch_one(&mut *self.tx)
            .await?;
        let verify_key: Vec<u8> = row.try_get(0)?;
        let legacy_keypair: String = row.try_get(1)?;
        let token: Option<String> = row.try_get(2)?;
        let sealed: i64 = row.try_get(3)?;
        let created_at: i64 = row.try_get(4)?;
        let (verify_key, token, changed) = if sealed == 1 {
            let opened = self
                .crypter
                .open(task_slot(VERIFY_KEY, id), &verify_key)
                .map_err(err)?;
            let token = token
                .map(|t| open_text(&self.crypter, task_slot(PEER_TOKEN, id), &t))
                .transpose()
                .map_err(err)?;
            let stale = opened.stale || token.as_ref().is_some_and(|(_, s)| *s);
            pass.resealed +=
                u64::from(opened.stale) + u64::from(token.as_ref().is_some_and(|(_, s)| *s));
            (
                opened.plaintext,
                token.map(|(t, _)| zeroize::Zeroizing::new(t)),
                stale,
            )
        } else {
            // A row from before migration 0009: plaintext columns, and its
            // one HPKE key pair in the legacy column.
            if !legacy_keypair.trim().is_empty() {
                let keypair: HpkeKeypair = serde_json::from_str(&legacy_keypair).map_err(|e| {
                    DapError::Store(StoreError::Corrupt(format!(
                        "DAP task {task_id}: legacy HPKE key pair: {e}"
                    )))
                })?;
                let config_id = u8::from(*keypair.config().id());
                if !self.hpke_config_ids(task_id).await?.contains(&config_id) {
                    self.put_hpke_key(task_id, &keypair, u(created_at)?).await?;
                }
            }
            pass.migrated += 1;
            (
                zeroize::Zeroizing::new(verify_key),
                token.map(zeroize::Zeroizing::new),
                true,
            )
        };
        if changed {
            let verify_key = self
                .crypter
                .seal(task_slot(VERIFY_KEY, id), &verify_key)
                .map_err(err)?;
            let token = token
                .as_deref()
                .map(|t| seal_text(&self.crypter, task_slot(PEER_TOKEN, id), t))
                .transpose()
                .map_err(err)?;
            let q = self.sql(
                "UPDATE dap_tasks SET vdaf_verify_key = ?1, peer_auth_token = ?2, \
                 hpke_keypair = '', secrets_sealed = 1 WHERE task_id = ?3",
            );
            sqlx::query(&q)
                .bind(verify_key)
                .bind(token)
                .bind(id.to_vec())
                .execute(&mut *self.tx)
                .await?;
        }
        // The HPKE key pairs: every one must open; stale ones are re-sealed.
        let q = self.sql(
            "SELECT config_id, keypair, created_at, expires_at FROM dap_hpke_keys \
             WHERE task_id = ?1",
        );
        let rows = sqlx::query(&q)
            .bind(id.to_vec())
            .fetch_all(&mut *self.tx)
            .await?;
        let mut stale_keys = Vec::new();
        for r in &rows {
            let (key, stale) = open_hpke_row(&self.crypter, id, r)?;
            if stale {
                stale_keys.push(key);
            }
        }
        for key in stale_keys {
            let config_id = u8::from(*key.keypair.config().id());
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec(&key.keypair).map_err(|e| DapError::Internal(e.to_string()))?,
            );
            let row_key = hpke_row(id, config_id);
            let sealed = self
                .crypter
                .seal(
                    SecretSlot {
                        table: HPKE_KEYS,
                        column: KEYPAIR,
                        row: &row_key,
                    },
                    &json,
                )
                .map_err(err)?;
            let q = self
                .sql("UPDATE dap_hpke_keys SET keypair = ?1 WHERE task_id = ?2 AND config_id = ?3");
            sqlx::query(&q)
                .bind(sealed)
                .bind(id.to_vec())
                .bind(i64::from(config_id))
                .execute(&mut *self.tx)
                .await?;
            pass.resealed += 1;
        }
        pass.expired_hpke_keys += self.delete_expired_hpke_keys(task_id, now).await?;
        Ok(())
    }

    /// Leader: whether `time` falls in an interval held by a collection job.
    pub async fn leader_time_collected(
        &mut self,
        task_id: &TaskId,
        time: u64,
    ) -> Result<bool, DapError> {
        let q = self.sql(
            "SELECT 1 FROM dap_collection_jobs WHERE task_id = ?1 AND state <> 'failed' \
             AND batch_start <= ?2 AND batch_start + batch_duration > ?2 LIMIT 1",
        );
        Ok(sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(time)?)
            .fetch_optional(&mut *self.tx)
            .await?
            .is_some())
    }

    /// Leader: stores an uploaded report; false if its id was seen.
    pub async fn insert_report(
        &mut self,
        task_id: &TaskId,
        r: &StoredReport,
    ) -> Result<bool, DapError> {
        let q = self.sql(
            "INSERT INTO dap_reports (task_id, report_id, time) VALUES (?1, ?2, ?3) \
             ON CONFLICT (task_id, report_id) DO NOTHING",
        );
        let done = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(r.report_id.to_vec())
            .bind(i(r.time)?)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // The shares apart (migration 0005), so that assigning the report
        // to a job does not rewrite them.
        let q = self.sql(
            "INSERT INTO dap_report_shares (task_id, report_id, public_share, \
             leader_input_share, helper_encrypted) VALUES (?1, ?2, ?3, ?4, ?5)",
        );
        sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(r.report_id.to_vec())
            .bind(r.public_share.as_slice())
            .bind(r.leader_input_share.as_slice())
            .bind(r.helper_encrypted.as_slice())
            .execute(&mut *self.tx)
            .await?;
        Ok(true)
    }

    /// Leader: puts up to `size` unassigned reports of `task_id` into a new
    /// pending aggregation job `job_id`; returns how many.
    pub async fn create_job(
        &mut self,
        task_id: &TaskId,
        job_id: &[u8; 16],
        size: u64,
        now: u64,
    ) -> Result<u64, DapError> {
        let insert = self.sql(
            "INSERT INTO dap_aggregation_jobs (task_id, job_id, state, report_count, created_at) \
             VALUES (?1, ?2, 'pending', 0, ?3)",
        );
        sqlx::query(&insert)
            .bind(task_id.as_ref().to_vec())
            .bind(job_id.to_vec())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        let assign = self.sql(
            "UPDATE dap_reports SET job_id = ?1 WHERE task_id = ?2 AND report_id IN \
             (SELECT report_id FROM dap_reports WHERE task_id = ?2 AND job_id IS NULL \
              ORDER BY time LIMIT ?3)",
        );
        let n = sqlx::query(&assign)
            .bind(job_id.to_vec())
            .bind(task_id.as_ref().to_vec())
            .bind(i(size)?)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let count = self.sql(
            "UPDATE dap_aggregation_jobs SET report_count = ?1 WHERE task_id = ?2 AND job_id = ?3",
        );
        sqlx::query(&count)
            .bind(i(n)?)
            .bind(task_id.as_ref().to_vec())
            .bind(job_id.to_vec())
            .execute(&mut *self.tx)
            .await?;
        Ok(n)
    }

    /// Leader tasks with unassigned reports.
    pub async fn tasks_with_unassigned_reports(&mut self) -> Result<Vec<TaskId>, DapError> {
        let rows = sqlx::query(
            "SELECT DISTINCT r.task_id FROM dap_reports r JOIN dap_tasks t ON t.task_id = r.task_id \
             WHERE r.job_id IS NULL AND t.role = 'leader'",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.try_get(0)?;
                TaskId::try_from(id.as_slice())
                    .map_err(|_| DapError::Store(StoreError::Corrupt("task id".into())))
            })
            .collect()
    }

    /// Leader: leases one pending aggregation job whose lease is free or
    /// expired and whose backoff has passed.
    pub async fn lease_job(
        &mut self,
        now: u64,
        policy: &LeasePolicy,
    ) -> Result<Option<LeasedJob>, DapError> {
        let leased = lease::acquire(
            &mut self.tx,
            self.postgres,
            &AGGREGATION_JOBS,
            "task_id, job_id",
            "state = 'pending' AND request_hash IS NULL",
            "created_at",
            "",
            i(now)?,
            policy,
        )
        .await?;
        let Some((row, lease)) = leased else {
            return Ok(None);
        };
        let task_id: Vec<u8> = row.try_get("task_id")?;
        Ok(Some(LeasedJob {
            task_id: TaskId::try_from(task_id.as_slice())
                .map_err(|_| DapError::Store(StoreError::Corrupt("task id".into())))?,
            job_id: arr(row.try_get("job_id")?)?,
            lease,
        }))
    }

    /// Leader: marks a leased aggregation job done, if this process still
    /// holds its lease; false (and nothing changed) otherwise. Call before
    /// adding the job's output shares, in the same transaction, and roll
    /// back on false: a job whose lease was taken over is counted once, by
    /// whoever holds it.
    pub async fn finish_job(&mut self, job: &LeasedJob) -> Result<bool, DapError> {
        let key = [
            KeyValue::Blob(job.task_id.as_ref().to_vec()),
            KeyValue::Blob(job.job_id.to_vec()),
        ];
        if !lease::holds(
            &mut self.tx,
            self.postgres,
            &AGGREGATION_JOBS,
            &key,
            &job.lease,
        )
        .await?
        {
            return Ok(false);
        }
        let q = self.sql(&format!(
            "UPDATE dap_aggregation_jobs SET state = '{done}' WHERE task_id = ?1 AND job_id = ?2",
            done = AggregationJobState::Done.code()
        ));
        sqlx::query(&q)
            .bind(job.task_id.as_ref().to_vec())
            .bind(job.job_id.to_vec())
            .execute(&mut *self.tx)
            .await?;
        lease::release(&mut self.tx, self.postgres, &AGGREGATION_JOBS, &key).await?;
        Ok(true)
    }

    /// Leader: gives a failed aggregation job back, its next attempt
    /// delayed by the policy's backoff.
    pub async fn back_off_job(
        &mut self,
        job: &LeasedJob,
        now: u64,
        policy: &LeasePolicy,
    ) -> Result<bool, DapError> {
        let key = [
            KeyValue::Blob(job.task_id.as_ref().to_vec()),
            KeyValue::Blob(job.job_id.to_vec()),
        ];
        Ok(lease::back_off(
            &mut self.tx,
            self.postgres,
            &AGGREGATION_JOBS,
            &key,
            &job.lease,
            i(now)?,
            policy,
        )
        .await?)
    }

    /// Leader: leases one collection job in state `start` whose lease is
    /// free or expired and whose backoff has passed.
    pub async fn lease_collection(
        &mut self,
        now: u64,
        policy: &LeasePolicy,
    ) -> Result<Option<LeasedCollection>, DapError> {
        let leased = lease::acquire(
            &mut self.tx,
            self.postgres,
            &COLLECTION_JOBS,
            COLLECTION_COLUMNS,
            "state = 'start'",
            "created_at",
            "",
            i(now)?,
            policy,
        )
        .await?;
        leased
            .map(|(row, lease)| {
                Ok(LeasedCollection {
                    job: collection_row(&row)?,
                    lease,
                })
            })
            .transpose()
    }

    /// Leader: whether this process still holds the lease of a collection
    /// job (locks its row until commit).
    pub async fn holds_collection(&mut self, leased: &LeasedCollection) -> Result<bool, DapError> {
        Ok(lease::holds(
            &mut self.tx,
            self.postgres,
            &COLLECTION_JOBS,
            &collection_key(&leased.job),
            &leased.lease,
        )
        .await?)
    }

    /// Leader: gives a collection job that could not be finished now back,
    /// its next attempt delayed: by the policy's backoff after a failure,
    /// or by `wait` (without counting an attempt against it) when its
    /// interval is simply not aggregated yet.
    pub async fn back_off_collection(
        &mut self,
        leased: &LeasedCollection,
        now: u64,
        policy: &LeasePolicy,
        wait: Option<u64>,
    ) -> Result<bool, DapError> {
        let key = collection_key(&leased.job);
        match wait {
            None => Ok(lease::back_off(
                &mut self.tx,
                self.postgres,
                &COLLECTION_JOBS,
                &key,
                &leased.lease,
                i(now)?,
                policy,
            )
            .await?),
            Some(wait) => {
                let q = self.sql(
                    "UPDATE dap_collection_jobs SET lease_token = NULL, lease_expiry = NULL, \
                     next_attempt_at = ?1, attempts = attempts - 1 \
                     WHERE lease_token = ?2 AND task_id = ?3 AND collection_job_id = ?4",
                );
                Ok(sqlx::query(&q)
                    .bind(i(now.saturating_add(wait))?)
                    .bind(leased.lease.token.to_vec())
                    .bind(leased.job.task_id.as_ref().to_vec())
                    .bind(leased.job.collection_job_id.to_vec())
                    .execute(&mut *self.tx)
                    .await?
                    .rows_affected()
                    == 1)
            }
        }
    }

    /// Helper: the stored request hash and response of an aggregation job.
    pub async fn helper_job(
        &mut self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, DapError> {
        let q = self.sql(
            "SELECT request_hash, response FROM dap_aggregation_jobs \
             WHERE task_id = ?1 AND job_id = ?2",
        );
        let row = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| {
            let hash: Option<Vec<u8>> = r.try_get(0)?;
            let resp: Option<Vec<u8>> = r.try_get(1)?;
            Ok((hash.unwrap_or_default(), resp.unwrap_or_default()))
        })
        .transpose()
    }

    /// Helper: records a finished aggregation job and its response.
    pub async fn put_helper_job(
        &mut self,
        task_id: &TaskId,
        job_id: &[u8; 16],
        report_count: u64,
        request_hash: &[u8],
        response: &[u8],
        now: u64,
    ) -> Result<(), DapError> {
        let q = self.sql(
            "INSERT INTO dap_aggregation_jobs (task_id, job_id, state, report_count, request_hash, \
             response, created_at) VALUES (?1, ?2, 'done', ?3, ?4, ?5, ?6)",
        );
        sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(job_id.to_vec())
            .bind(i(report_count)?)
            .bind(request_hash.to_vec())
            .bind(response.to_vec())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Helper: records an aggregated report id; false if it was seen.
    pub async fn insert_helper_report(
        &mut self,
        task_id: &TaskId,
        report_id: &[u8; 16],
        time: u64,
    ) -> Result<bool, DapError> {
        let q = self.sql(
            "INSERT INTO dap_helper_reports (task_id, report_id, time) VALUES (?1, ?2, ?3) \
             ON CONFLICT (task_id, report_id) DO NOTHING",
        );
        Ok(sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(report_id.to_vec())
            .bind(i(time)?)
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 1)
    }

    /// Helper: intervals already handed out as aggregate shares.
    pub async fn helper_collected_intervals(
        &mut self,
        task_id: &TaskId,
    ) -> Result<Vec<(u64, u64)>, DapError> {
        let q = self
            .sql("SELECT batch_start, batch_duration FROM dap_aggregate_shares WHERE task_id = ?1");
        let rows = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| Ok((u(r.try_get(0)?)?, u(r.try_get(1)?)?)))
            .collect()
    }

    /// Buckets of `[start, end)`, read inside the transaction.
    pub async fn buckets(
        &mut self,
        task_id: &TaskId,
        start: u64,
        end: u64,
    ) -> Result<Vec<BucketAggregate>, DapError> {
        buckets(&mut *self.tx, self.postgres, task_id, start, end).await
    }

    /// Writes a bucket's aggregate (insert or replace).
    pub async fn put_bucket(
        &mut self,
        task_id: &TaskId,
        b: &BucketAggregate,
    ) -> Result<(), DapError> {
        let q = self.sql(
            "INSERT INTO dap_batch_aggregations (task_id, bucket_start, aggregate_share, \
             report_count, checksum) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (task_id, bucket_start) DO UPDATE SET \
             aggregate_share = excluded.aggregate_share, report_count = excluded.report_count, \
             checksum = excluded.checksum",
        );
        sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(b.bucket_start)?)
            .bind(b.share.clone())
            .bind(i(b.report_count)?)
            .bind(b.checksum.to_vec())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Helper: the stored aggregate share of exactly this interval.
    pub async fn aggregate_share(
        &mut self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
    ) -> Result<Option<AggregateShareRow>, DapError> {
        let q = self.sql(
            "SELECT report_count, checksum, encrypted_share FROM dap_aggregate_shares \
             WHERE task_id = ?1 AND batch_start = ?2 AND batch_duration = ?3",
        );
        let row = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(start)?)
            .bind(i(duration)?)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| {
            Ok(AggregateShareRow {
                report_count: u(r.try_get(0)?)?,
                checksum: arr(r.try_get(1)?)?,
                encrypted_share: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Helper: stores the aggregate share handed out for an interval.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_aggregate_share(
        &mut self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        aggregation_param: &[u8],
        row: &AggregateShareRow,
        now: u64,
    ) -> Result<(), DapError> {
        let q = self.sql(
            "INSERT INTO dap_aggregate_shares (task_id, batch_start, batch_duration, \
             aggregation_param, report_count, checksum, encrypted_share, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        );
        sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .bind(i(start)?)
            .bind(i(duration)?)
            .bind(aggregation_param.to_vec())
            .bind(i(row.report_count)?)
            .bind(row.checksum.to_vec())
            .bind(row.encrypted_share.clone())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Leader: collection jobs of the task that hold an interval (every
    /// state but `failed`).
    pub async fn holding_collection_jobs(
        &mut self,
        task_id: &TaskId,
    ) -> Result<Vec<CollectionJobRow>, DapError> {
        let q = self.sql(&format!(
            "SELECT {COLLECTION_COLUMNS} FROM dap_collection_jobs \
             WHERE task_id = ?1 AND state <> 'failed'"
        ));
        let rows = sqlx::query(&q)
            .bind(task_id.as_ref().to_vec())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(collection_row).collect()
    }

    /// Leader: one collection job, inside the transaction.
    pub async fn collection_job(
        &mut self,
        task_id: &TaskId,
        id: &[u8; 16],
    ) -> Result<Option<CollectionJobRow>, DapError> {
        collection_job(&mut *self.tx, self.postgres, task_id, id).await
    }

    /// Leader: a new collection job in state `start`.
    pub async fn put_collection_job(
        &mut self,
        job: &CollectionJobRow,
        now: u64,
    ) -> Result<(), DapError> {
        let q = self.sql(
            "INSERT INTO dap_collection_jobs (task_id, collection_job_id, batch_start, \
             batch_duration, aggregation_param, state, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'start', ?6)",
        );
        sqlx::query(&q)
            .bind(job.task_id.as_ref().to_vec())
            .bind(job.collection_job_id.to_vec())
            .bind(i(job.batch_start)?)
            .bind(i(job.batch_duration)?)
            .bind(job.aggregation_param.clone())
            .bind(i(now)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Leader: moves a collection job to its state, with its result or
    /// failure, and clears its lease.
    pub async fn update_collection_job(&mut self, job: &CollectionJobRow) -> Result<(), DapError> {
        let (count, min, problem, detail) = match &job.failure {
            None => (None, None, None, None),
            Some(CollectionFailure::InvalidBatchSize { count, min }) => {
                (Some(i(*count)?), Some(i(*min)?), None, None)
            }
            Some(CollectionFailure::HelperRefused { kind, detail }) => (
                None,
                None,
                Some(kind.type_uri().to_string()),
                Some(detail.clone()),
            ),
            Some(CollectionFailure::GaveUp { attempts, detail }) => (
                Some(i(u64::from(*attempts))?),
                None,
                None,
                Some(detail.clone()),
            ),
            Some(CollectionFailure::Other(detail)) => (None, None, None, Some(detail.clone())),
        };
        let q = self.sql(
            "UPDATE dap_collection_jobs SET state = ?1, report_count = ?2, leader_share = ?3, \
             helper_share = ?4, error = ?5, failure_code = ?6, failure_count = ?7, \
             failure_min = ?8, failure_problem = ?9, lease_token = NULL, lease_expiry = NULL \
             WHERE task_id = ?10 AND collection_job_id = ?11",
        );
        sqlx::query(&q)
            .bind(job.state.code())
            .bind(job.report_count.map(i).transpose()?)
            .bind(job.leader_share.clone())
            .bind(job.helper_share.clone())
            .bind(detail)
            .bind(job.failure.as_ref().map(|f| f.code()))
            .bind(count)
            .bind(min)
            .bind(problem)
            .bind(job.task_id.as_ref().to_vec())
            .bind(job.collection_job_id.to_vec())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

/// What a DAP garbage-collection step deleted ([`DapStore::gc_task_chunk`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DapGcDeleted {
    /// Reports: the leader's reports with their shares, or the helper's
    /// replay records.
    pub reports: u64,
    /// Aggregation jobs (the leader's finished ones, or the helper's stored
    /// answers).
    pub jobs: u64,
    /// Time buckets of output-share sums.
    pub buckets: u64,
}

impl DapGcDeleted {
    /// True if nothing was deleted.
    pub fn is_empty(&self) -> bool {
        self.reports == 0 && self.jobs == 0 && self.buckets == 0
    }
}

/// A DAP task as the garbage collector sees it.
#[derive(Debug, Clone)]
pub struct DapGcTask {
    /// The task.
    pub task_id: TaskId,
    /// True on the leader, false on the helper.
    pub leader: bool,
    /// Its public parameters, as stored (JSON of
    /// [`crate::dap::task::DapParameters`]).
    pub parameters: String,
}

impl DapStore {
    /// Every DAP task, with its role and public parameters (for the garbage
    /// collector; no secrets are read).
    pub async fn gc_tasks(&self) -> Result<Vec<DapGcTask>, DapError> {
        let rows = sqlx::query("SELECT task_id, role, parameters FROM dap_tasks ORDER BY task_id")
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.try_get(0)?;
                Ok(DapGcTask {
                    task_id: TaskId::try_from(id.as_slice())
                        .map_err(|_| DapError::Store(StoreError::Corrupt("task id".into())))?,
                    leader: r.try_get::<String, _>(1)? == "leader",
                    parameters: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Garbage collection of one DAP task, one bounded transaction:
    /// deletes up to about `chunk` rows of each kind whose time falls in a
    /// collected interval (the leader: a finished collection job's; the
    /// helper: an aggregate share handed out), or before `cutoff` (the
    /// oldest report time still accepted) in no such interval nor in one
    /// a collection job still holds. On the leader: reports with their
    /// shares (never those of an aggregation job still running), finished
    /// aggregation jobs left without reports, buckets. On the helper:
    /// replay records, buckets, and stored aggregation-job answers older
    /// than the cutoff. Collection jobs and aggregate shares are kept for
    /// ever. Call again until it deletes nothing.
    pub async fn gc_task_chunk(
        &self,
        task: &DapGcTask,
        cutoff: u64,
        chunk: u64,
    ) -> Result<DapGcDeleted, DapError> {
        let id = task.task_id.as_ref().to_vec();
        let chunk = i(chunk.max(1))?;
        let mut tx = self.begin().await?;
        tx.lock_task(&task.task_id).await?;
        let held = if task.leader {
            "SELECT batch_start, batch_duration, state FROM dap_collection_jobs \
             WHERE task_id = ?1 AND state <> 'failed'"
        } else {
            "SELECT batch_start, batch_duration, 'finished' AS state FROM dap_aggregate_shares \
             WHERE task_id = ?1"
        };
        let rows = sqlx::query(&self.sql(held))
            .bind(id.clone())
            .fetch_all(&mut *tx.tx)
            .await?;
        // A collection job that is not finished (or was abandoned) still
        // holds its interval: nothing of it is deleted.
        let intervals = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<String, _>(2)? != CollectionState::Finished.code(),
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let mut deleted = DapGcDeleted::default();
        let ranges = super::sql::deletable_ranges(&intervals, i(cutoff)?);
        let mut budget = chunk;
        for &(start, end) in &ranges {
            if budget <= 0 {
                break;
            }
            let reports = if task.leader {
                let pick = self.sql(
                    "SELECT report_id FROM dap_reports r WHERE r.task_id = ?1 AND r.time >= ?2 \
                     AND r.time < ?3 AND (r.job_id IS NULL OR EXISTS (SELECT 1 FROM \
                     dap_aggregation_jobs j WHERE j.task_id = r.task_id AND j.job_id = r.job_id \
                     AND j.state = 'done')) LIMIT ?4",
                );
                let ids: Vec<Vec<u8>> = sqlx::query_scalar(&pick)
                    .bind(id.clone())
                    .bind(start)
                    .bind(end)
                    .bind(budget)
                    .fetch_all(&mut *tx.tx)
                    .await?;
                let delete_shares =
                    self.sql("DELETE FROM dap_report_shares WHERE task_id = ?1 AND report_id = ?2");
                let delete_report =
                    self.sql("DELETE FROM dap_reports WHERE task_id = ?1 AND report_id = ?2");
                for report_id in &ids {
                    for q in [&delete_shares, &delete_report] {
                        sqlx::query(q)
                            .bind(id.clone())
                            .bind(report_id.clone())
                            .execute(&mut *tx.tx)
                            .await?;
                    }
                }
                ids.len() as u64
            } else {
                sqlx::query(&self.sql(
                    "DELETE FROM dap_helper_reports WHERE task_id = ?1 AND report_id IN \
                     (SELECT report_id FROM dap_helper_reports WHERE task_id = ?1 \
                      AND time >= ?2 AND time < ?3 LIMIT ?4)",
                ))
                .bind(id.clone())
                .bind(start)
                .bind(end)
                .bind(budget)
                .execute(&mut *tx.tx)
                .await?
                .rows_affected()
            };
            deleted.reports += reports;
            budget -= reports as i64;
            if budget <= 0 {
                break;
            }
            let buckets = sqlx::query(&self.sql(
                "DELETE FROM dap_batch_aggregations WHERE task_id = ?1 AND bucket_start IN \
                 (SELECT bucket_start FROM dap_batch_aggregations WHERE task_id = ?1 \
                  AND bucket_start >= ?2 AND bucket_start < ?3 LIMIT ?4)",
            ))
            .bind(id.clone())
            .bind(start)
            .bind(end)
            .bind(budget)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
            deleted.buckets += buckets;
            budget -= buckets as i64;
        }
        if budget > 0 {
            // Jobs: the leader's finished jobs whose reports are all gone
            // (wherever they were), the helper's stored answers older than
            // the cutoff (a leader retries a job within minutes, not days).
            let q = if task.leader {
                self.sql(
                    "DELETE FROM dap_aggregation_jobs WHERE task_id = ?1 AND job_id IN \
                     (SELECT job_id FROM dap_aggregation_jobs j WHERE j.task_id = ?1 \
                      AND j.state = 'done' AND NOT EXISTS (SELECT 1 FROM dap_reports r \
                      WHERE r.task_id = j.task_id AND r.job_id = j.job_id) LIMIT ?2)",
                )
            } else {
                self.sql(
                    "DELETE FROM dap_aggregation_jobs WHERE task_id = ?1 AND job_id IN \
                     (SELECT job_id FROM dap_aggregation_jobs WHERE task_id = ?1 \
                      AND created_at < ?3 LIMIT ?2)",
                )
            };
            let mut query = sqlx::query(&q).bind(id.clone()).bind(budget);
            if !task.leader {
                query = query.bind(i(cutoff)?);
            }
            deleted.jobs += query.execute(&mut *tx.tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

fn collection_key(job: &CollectionJobRow) -> [KeyValue; 2] {
    [
        KeyValue::Blob(job.task_id.as_ref().to_vec()),
        KeyValue::Blob(job.collection_job_id.to_vec()),
    ]
}
