//! The one datastore implementation, for SQLite and PostgreSQL alike.
//!
//! Queries go through sqlx's `Any` driver and are written once, with
//! SQLite's explicit `?N` placeholders; [`Dialect::sql`] rewrites them to
//! PostgreSQL's `$N`. The dialects differ only where they must:
//!
//! * **SQLite**: one writer connection and write transactions that start with
//!   `BEGIN IMMEDIATE`, so this process's writes queue instead of failing with
//!   `SQLITE_BUSY`; WAL journal and `synchronous=FULL`, so a commit is on
//!   disk. A SQLite file serves one server process.
//! * **PostgreSQL**: one pool shared by several replicas' worth of work;
//!   row locks keep releases, budgets and uploads consistent across replicas:
//!   a release claim locks its task row `FOR UPDATE`, an upload locks it `FOR
//!   SHARE`, so an upload either commits before the claim counts the batch
//!   or sees the release and is refused. Aggregation jobs are claimed with
//!   `FOR UPDATE SKIP LOCKED`, so replicas never wait for each other's jobs.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use hetally_protocol::dp::Rational;
use hetally_protocol::TaskId;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::mpsc;

use super::{
    BatchChunk, BatchRead, ClaimDecision, ClaimFacts, ContributionOutcome, GcDeleted,
    InsertOutcome, JobLease, NewContribution, NewReport, ReleaseRecord, ReleaseState, StoreConfig,
    StoreError, TaskRecord,
};
use super::{OldestUnassigned, PoolUse};
use crate::lease::{self, JobTable, KeyKind, KeyValue, Lease, LeasePolicy};
use sha2::{Digest, Sha256};

/// The HE aggregation jobs, as [`crate::lease`] sees them.
const AGGREGATION_JOBS: JobTable = JobTable {
    name: "aggregation_jobs",
    key: &[("job_id", KeyKind::Int)],
};

/// The garbage collector's one-row lease ([`crate::gc`]).
const GC_LEASE: JobTable = JobTable {
    name: "gc_lease",
    key: &[("id", KeyKind::Int)],
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// File name of the SQLite database inside the data directory.
pub(super) const DB_FILE: &str = "hetally.db";

/// Reports per multi-row INSERT (4 bound values each; SQLite allows 32,766
/// and PostgreSQL 65,535 per statement).
const INSERT_CHUNK: usize = 256;

/// `text` with SQLite's `?N` placeholders, rewritten to `$N` if `postgres`
/// (the DAP tables' queries and [`crate::lease`] use it too).
pub(crate) fn placeholders(postgres: bool, text: &str) -> String {
    if !postgres {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Rewrites `?N` placeholders to `$N` for PostgreSQL.
    fn sql(self, text: &str) -> String {
        placeholders(self == Dialect::Postgres, text)
    }

    fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    fn begin_snapshot(self) -> &'static str {
        match self {
            // A read transaction in WAL mode sees one snapshot.
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// A row-lock clause (PostgreSQL only; SQLite's write transaction
    /// already excludes every other writer).
    fn lock(self, clause: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => clause,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct SqlStore {
    dialect: Dialect,
    description: String,
    writer: AnyPool,
    readers: AnyPool,
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("{what} {v} does not fit a database integer")))
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("negative {what} {v} in the database")))
}

fn rational(text: &str) -> Result<Rational, StoreError> {
    Rational::from_str(text).map_err(|e| StoreError::Corrupt(format!("budget value: {e}")))
}

fn task_id(bytes: Vec<u8>) -> Result<TaskId, StoreError> {
    Ok(TaskId(bytes.try_into().map_err(|_| {
        StoreError::Corrupt("task id is not 32 bytes".into())
    })?))
}

/// The `trustee` column of a noise contribution row.
fn trustee_of(row: &AnyRow) -> Result<u16, StoreError> {
    u16::try_from(row.try_get::<i64, _>("trustee")?)
        .map_err(|_| StoreError::Corrupt("trustee index out of range".into()))
}

fn task_from_row(row: &AnyRow) -> Result<TaskRecord, StoreError> {
    let hash: Vec<u8> = row.try_get("collector_token_hash")?;
    Ok(TaskRecord {
        task_id: task_id(row.try_get("task_id")?)?,
        definition: row.try_get("definition")?,
        collector_token_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?,
        budget_spent: rational(&row.try_get::<String, _>("budget_spent")?)?,
        created_at: row.try_get("created_at")?,
        crs: row.try_get("crs")?,
        report_expiry_age: to_u64(row.try_get("report_expiry_age")?, "report expiry age")?,
        trustee_token_hashes: row
            .try_get::<Option<Vec<u8>>, _>("trustee_token_hashes")?
            .map(|bytes| {
                if bytes.is_empty() || bytes.len() % 32 != 0 {
                    return Err(StoreError::Corrupt(
                        "trustee token hashes are not a list of 32-byte hashes".into(),
                    ));
                }
                Ok(bytes
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32-byte chunks"))
                    .collect())
            })
            .transpose()?,
    })
}

const TASK_COLUMNS: &str = "task_id, definition, collector_token_hash, budget_spent, created_at, \
     crs, report_expiry_age, trustee_token_hashes";

const RELEASE_COLUMNS: &str =
    "task_id, batch_start, batch_duration, report_count, noisy_report_count, state, mechanism, \
     cost, budget_spent_after, requested_at, released_at";

fn release_from_row(row: &AnyRow, aggregate: Option<Vec<u8>>) -> Result<ReleaseRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(ReleaseRecord {
        task_id: task_id(row.try_get("task_id")?)?,
        batch_start: to_u64(row.try_get("batch_start")?, "batch start")?,
        batch_duration: to_u64(row.try_get("batch_duration")?, "batch duration")?,
        report_count: to_u64(row.try_get("report_count")?, "report count")?,
        noisy_report_count: row.try_get("noisy_report_count")?,
        state: match state.as_str() {
            "pending" => ReleaseState::Pending,
            "done" => ReleaseState::Done,
            "withheld" => ReleaseState::Withheld,
            other => return Err(StoreError::Corrupt(format!("release state {other:?}"))),
        },
        aggregate,
        mechanism: row.try_get("mechanism")?,
        cost: rational(&row.try_get::<String, _>("cost")?)?,
        budget_spent_after: rational(&row.try_get::<String, _>("budget_spent_after")?)?,
        requested_at: row.try_get("requested_at")?,
        released_at: row.try_get("released_at")?,
    })
}

/// Creates the data directory (mode 0700) and the database file (mode
/// 0600) where they do not exist yet, so that reports, task secrets and
/// the admin token are readable by the server's user alone. SQLite gives
/// its `-wal` and `-shm` files the database file's mode. Existing paths
/// keep the mode an operator gave them.
fn create_owner_only(data_dir: &std::path::Path, db: &std::path::Path) -> Result<(), StoreError> {
    let io = |what: &str, path: &std::path::Path, e: std::io::Error| {
        StoreError::Io(format!("cannot create {what} {}: {e}", path.display()))
    };
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dir.mode(0o700);
        file.mode(0o600);
    }
    dir.create(data_dir)
        .map_err(|e| io("data directory", data_dir, e))?;
    file.open(db).map_err(|e| io("database file", db, e))?;
    Ok(())
}

impl SqlStore {
    pub(super) async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        match config {
            StoreConfig::Sqlite { data_dir } => {
                let path = data_dir.join(DB_FILE);
                create_owner_only(data_dir, &path)?;
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let writer = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(600))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                SQLITE_MIGRATIONS.run(&writer).await?;
                let readers = AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 30000; PRAGMA query_only = ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&format!("sqlite://{}?mode=ro", path.display()))
                    .await?;
                Ok(SqlStore {
                    dialect: Dialect::Sqlite,
                    description: format!("sqlite:{}", path.display()),
                    writer,
                    readers,
                })
            }
            StoreConfig::Postgres {
                url,
                max_connections,
            } => {
                let pool = AnyPoolOptions::new()
                    .max_connections(*max_connections)
                    .acquire_timeout(Duration::from_secs(60))
                    .connect(url)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                // Describe without the password.
                let description = match url::Url::parse(url) {
                    Ok(mut u) => {
                        let _ = u.set_password(None);
                        u.to_string()
                    }
                    Err(_) => "postgres".to_string(),
                };
                Ok(SqlStore {
                    dialect: Dialect::Postgres,
                    description,
                    writer: pool.clone(),
                    readers: pool,
                })
            }
        }
    }

    /// Whether this is PostgreSQL, the writer pool and the reader pool,
    /// for the DAP tables ([`super::dap`]).
    #[cfg(feature = "dap")]
    pub(super) fn pools(&self) -> (bool, AnyPool, AnyPool) {
        (
            self.dialect == Dialect::Postgres,
            self.writer.clone(),
            self.readers.clone(),
        )
    }

    pub(super) fn describe(&self) -> String {
        self.description.clone()
    }

    pub(super) fn pool_use(&self) -> Vec<PoolUse> {
        let use_of = |name, pool: &AnyPool| {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            PoolUse {
                name,
                in_use: pool.size().saturating_sub(idle),
                idle,
            }
        };
        match self.dialect {
            Dialect::Sqlite => vec![
                use_of("writer", &self.writer),
                use_of("reader", &self.readers),
            ],
            // One pool serves both.
            Dialect::Postgres => vec![use_of("shared", &self.writer)],
        }
    }

    pub(super) async fn oldest_unassigned_report_times(
        &self,
    ) -> Result<OldestUnassigned, StoreError> {
        let he: Option<i64> =
            sqlx::query_scalar("SELECT MIN(time) FROM reports WHERE job_id IS NULL")
                .fetch_one(&self.readers)
                .await?;
        let dap: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(r.time) FROM dap_reports r JOIN dap_tasks t ON t.task_id = r.task_id \
             WHERE r.job_id IS NULL AND t.role = 'leader'",
        )
        .fetch_one(&self.readers)
        .await?;
        Ok(OldestUnassigned { he, dap })
    }

    fn sql(&self, text: &str) -> String {
        self.dialect.sql(text)
    }

    pub(super) async fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO tasks (task_id, definition, collector_token_hash, budget_spent, created_at, \
             crs, report_expiry_age, trustee_token_hashes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (task_id) DO NOTHING",
        );
        let result = sqlx::query(&sql)
            .bind(task.task_id.0.to_vec())
            .bind(task.definition.clone())
            .bind(task.collector_token_hash.to_vec())
            .bind(task.budget_spent.to_string())
            .bind(task.created_at)
            .bind(task.crs.clone())
            .bind(to_i64(task.report_expiry_age, "report expiry age")?)
            .bind(task.trustee_token_hashes.as_ref().map(|h| h.concat()))
            .execute(&self.writer)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "task {} already exists",
                task.task_id
            )));
        }
        Ok(())
    }

    pub(super) async fn get_task(
        &self,
        task_id: &TaskId,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let sql = self.sql(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"
        ));
        let row = sqlx::query(&sql)
            .bind(task_id.0.to_vec())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    pub(super) async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at, task_id");
        let rows = sqlx::query(&sql).fetch_all(&self.readers).await?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn insert_reports(
        &self,
        reports: &[NewReport],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let lock_task = self.sql(&format!(
            "SELECT task_id FROM tasks WHERE task_id = ?1{}",
            self.dialect.lock(" FOR SHARE")
        ));
        let released =
            self.sql("SELECT batch_start, batch_duration FROM releases WHERE task_id = ?1");
        let mut tasks: Vec<&TaskId> = reports.iter().map(|r| &r.task_id).collect();
        tasks.sort();
        tasks.dedup();
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // Lock task rows in a fixed order, so concurrent batches cannot
        // deadlock, and so that no release claim runs between our check and
        // our insert. Then read the tasks' released intervals once: with the
        // locks held they cannot change before we commit.
        let mut intervals: HashMap<&TaskId, Vec<(i64, i64)>> = HashMap::new();
        for t in tasks {
            sqlx::query(&lock_task)
                .bind(t.0.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
            let rows = sqlx::query(&released)
                .bind(t.0.to_vec())
                .fetch_all(&mut *tx)
                .await?;
            let spans = rows
                .iter()
                .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            intervals.insert(t, spans);
        }
        let mut outcomes = vec![InsertOutcome::Duplicate; reports.len()];
        let mut fresh = Vec::with_capacity(reports.len());
        for (i, r) in reports.iter().enumerate() {
            let time = to_i64(r.time, "report time")?;
            let in_release = intervals
                .get(&r.task_id)
                .is_some_and(|spans| spans.iter().any(|&(s, d)| s <= time && time < s + d));
            if in_release {
                outcomes[i] = InsertOutcome::IntervalReleased;
            } else {
                fresh.push((i, time));
            }
        }
        // Multi-row inserts: one round trip per chunk rather than per report.
        // RETURNING names the rows that went in; a report id that is not
        // returned was already stored (or came twice in this batch).
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let mut sql =
                String::from("INSERT INTO reports (task_id, report_id, time, payload) VALUES ");
            for k in 0..chunk.len() {
                let b = 4 * k;
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(?{}, ?{}, ?{}, ?{})", b + 1, b + 2, b + 3, b + 4));
            }
            sql.push_str(
                " ON CONFLICT (task_id, report_id) DO NOTHING RETURNING task_id, report_id",
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql);
            for &(i, time) in chunk {
                let r = &reports[i];
                query = query
                    .bind(r.task_id.0.to_vec())
                    .bind(r.report_id.0.to_vec())
                    .bind(time)
                    .bind(r.payload.clone());
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let mut inserted = rows
                .iter()
                .map(|row| Ok((row.try_get::<Vec<u8>, _>(0)?, row.try_get::<Vec<u8>, _>(1)?)))
                .collect::<Result<HashSet<_>, sqlx::Error>>()?;
            for &(i, _) in chunk {
                let r = &reports[i];
                let key = (r.task_id.0.to_vec(), r.report_id.0.to_vec());
                if inserted.remove(&key) {
                    outcomes[i] = InsertOutcome::Stored;
                }
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn report_precheck(
        &self,
        task_id: &TaskId,
        reports: &[(hetally_protocol::ReportId, u64)],
    ) -> Result<Vec<Option<InsertOutcome>>, StoreError> {
        let mut outcomes = vec![None; reports.len()];
        // Released first, as in `insert_reports`: a duplicate inside a
        // released interval is answered as released. A batch's reports
        // share a handful of times, so one lookup per distinct time.
        let mut times: Vec<u64> = reports.iter().map(|&(_, t)| t).collect();
        times.sort_unstable();
        times.dedup();
        let released = self.sql(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM releases WHERE task_id = ?1 \
             AND batch_start <= ?2 AND ?2 < batch_start + batch_duration",
        );
        let mut released_times = HashSet::new();
        for time in times {
            let n: i64 = sqlx::query_scalar(&released)
                .bind(task_id.0.to_vec())
                .bind(to_i64(time, "report time")?)
                .fetch_one(&self.readers)
                .await?;
            if n > 0 {
                released_times.insert(time);
            }
        }
        let mut open = Vec::with_capacity(reports.len());
        for (i, (id, time)) in reports.iter().enumerate() {
            if released_times.contains(time) {
                outcomes[i] = Some(InsertOutcome::IntervalReleased);
            } else {
                open.push((i, id));
            }
        }
        // Stored ids: one indexed `IN` lookup per chunk.
        for chunk in open.chunks(INSERT_CHUNK) {
            let mut sql =
                String::from("SELECT report_id FROM reports WHERE task_id = ?1 AND report_id IN (");
            for k in 0..chunk.len() {
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("?{}", k + 2));
            }
            sql.push(')');
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql).bind(task_id.0.to_vec());
            for (_, id) in chunk {
                query = query.bind(id.0.to_vec());
            }
            let stored = query
                .fetch_all(&self.readers)
                .await?
                .iter()
                .map(|row| row.try_get::<Vec<u8>, _>(0))
                .collect::<Result<HashSet<_>, sqlx::Error>>()?;
            for &(i, id) in chunk {
                if stored.contains(id.0.as_slice()) {
                    outcomes[i] = Some(InsertOutcome::Duplicate);
                }
            }
        }
        Ok(outcomes)
    }

    pub(super) async fn report_counts(&self, task_id: &TaskId) -> Result<(u64, u64), StoreError> {
        let total: i64 =
            sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM reports WHERE task_id = ?1"))
                .bind(task_id.0.to_vec())
                .fetch_one(&self.readers)
                .await?;
        let unreleased: i64 = sqlx::query_scalar(&self.sql(
            "SELECT COUNT(*) FROM reports r WHERE r.task_id = ?1 AND NOT EXISTS ( \
               SELECT 1 FROM releases x WHERE x.task_id = r.task_id \
               AND r.time >= x.batch_start AND r.time < x.batch_start + x.batch_duration)",
        ))
        .bind(task_id.0.to_vec())
        .fetch_one(&self.readers)
        .await?;
        Ok((to_u64(total, "count")?, to_u64(unreleased, "count")?))
    }

    pub(super) async fn claim_release<E, F>(
        &self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        now: i64,
        decide: F,
    ) -> Result<Result<ReleaseRecord, E>, StoreError>
    where
        F: FnOnce(&ClaimFacts) -> Result<ClaimDecision, E> + Send,
        E: Send,
    {
        let start_i = to_i64(start, "batch start")?;
        let duration_i = to_i64(duration, "batch duration")?;
        let end_i = to_i64(start.saturating_add(duration), "batch end")?;
        let id = task_id.0.to_vec();
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // Locking the task row serialises release claims of one task across
        // replicas, and excludes uploads to it until we commit.
        let task_row = sqlx::query(&self.sql(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1{}",
            self.dialect.lock(" FOR UPDATE")
        )))
        .bind(id.clone())
        .fetch_one(&mut *tx)
        .await?;
        let task = task_from_row(&task_row)?;
        let report_count: i64 =
            sqlx::query_scalar(&self.sql(
                "SELECT COUNT(*) FROM reports WHERE task_id = ?1 AND time >= ?2 AND time < ?3",
            ))
            .bind(id.clone())
            .bind(start_i)
            .bind(end_i)
            .fetch_one(&mut *tx)
            .await?;
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE task_id = ?1 \
             AND batch_start < ?3 AND ?2 < batch_start + batch_duration ORDER BY batch_start"
        )))
        .bind(id.clone())
        .bind(start_i)
        .bind(end_i)
        .fetch_all(&mut *tx)
        .await?;
        let mut same_interval = None;
        let mut overlapping = Vec::new();
        for row in &rows {
            let r = release_from_row(row, None)?;
            if r.batch_start == start && r.batch_duration == duration {
                same_interval = Some(r);
            } else {
                overlapping.push(r);
            }
        }
        let facts = ClaimFacts {
            task,
            report_count: to_u64(report_count, "count")?,
            same_interval,
            overlapping,
        };
        let decision = match decide(&facts) {
            Ok(d) => d,
            Err(e) => {
                tx.rollback().await?;
                return Ok(Err(e));
            }
        };
        match decision {
            ClaimDecision::UseExisting => {
                tx.rollback().await?;
                Ok(Ok(self.get_release(task_id, start).await?))
            }
            ClaimDecision::Claim {
                noisy_report_count,
                withheld,
                mechanism,
                cost,
                budget_spent_after,
            } => {
                let state = if withheld {
                    ReleaseState::Withheld
                } else {
                    ReleaseState::Pending
                };
                sqlx::query(&self.sql(
                    "INSERT INTO releases (task_id, batch_start, batch_duration, report_count, \
                     noisy_report_count, state, mechanism, cost, budget_spent_after, requested_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                ))
                .bind(id.clone())
                .bind(start_i)
                .bind(duration_i)
                .bind(report_count)
                .bind(noisy_report_count)
                .bind(state.name())
                .bind(mechanism.clone())
                .bind(cost.to_string())
                .bind(budget_spent_after.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(&self.sql("UPDATE tasks SET budget_spent = ?2 WHERE task_id = ?1"))
                    .bind(id)
                    .bind(budget_spent_after.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Ok(ReleaseRecord {
                    task_id: *task_id,
                    batch_start: start,
                    batch_duration: duration,
                    report_count: facts.report_count,
                    noisy_report_count,
                    state,
                    aggregate: None,
                    mechanism,
                    cost,
                    budget_spent_after,
                    requested_at: now,
                    released_at: None,
                }))
            }
        }
    }

    async fn get_release(&self, task_id: &TaskId, start: u64) -> Result<ReleaseRecord, StoreError> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {RELEASE_COLUMNS}, aggregate FROM releases WHERE task_id = ?1 AND batch_start = ?2"
        )))
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .fetch_one(&self.writer)
        .await?;
        let aggregate: Option<Vec<u8>> = row.try_get("aggregate")?;
        release_from_row(&row, aggregate)
    }

    pub(super) async fn read_batch(
        &self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        chunk: usize,
        sink: mpsc::Sender<BatchChunk>,
    ) -> Result<BatchRead, StoreError> {
        let id = task_id.0.to_vec();
        let start_i = to_i64(start, "batch start")?;
        let end_i = to_i64(start.saturating_add(duration), "batch end")?;
        // One snapshot for both reads, so each report is counted exactly
        // once: either inside a finished job's partial sum, or on its own.
        let mut tx = self
            .readers
            .begin_with(self.dialect.begin_snapshot())
            .await?;
        let partials = sqlx::query(&self.sql(
            "SELECT report_count, partial_sum FROM aggregation_jobs WHERE task_id = ?1 \
             AND bucket_start >= ?2 AND bucket_start < ?3 AND state = 'done'",
        ))
        .bind(id.clone())
        .bind(start_i)
        .bind(end_i)
        .fetch_all(&mut *tx)
        .await?;
        let mut read = BatchRead::default();
        let mut sums = Vec::with_capacity(partials.len());
        for row in &partials {
            let count = to_u64(row.try_get("report_count")?, "job report count")?;
            let sum: Option<Vec<u8>> = row.try_get("partial_sum")?;
            let sum =
                sum.ok_or_else(|| StoreError::Corrupt("a done job has no partial sum".into()))?;
            read.jobs += 1;
            read.reports_in_jobs += count;
            sums.push((count, sum));
        }
        if !sums.is_empty() && sink.send(BatchChunk::Partials(sums)).await.is_err() {
            return Ok(read);
        }
        let sql = self.sql(
            "SELECT r.payload FROM reports r WHERE r.task_id = ?1 AND r.time >= ?2 AND r.time < ?3 \
             AND NOT EXISTS (SELECT 1 FROM aggregation_jobs j WHERE j.job_id = r.job_id AND j.state = 'done')",
        );
        {
            let mut rows = sqlx::query_scalar::<_, Vec<u8>>(&sql)
                .bind(id)
                .bind(start_i)
                .bind(end_i)
                .fetch(&mut *tx);
            let mut buf = Vec::with_capacity(chunk);
            while let Some(payload) = rows.try_next().await? {
                buf.push(payload);
                if buf.len() == chunk {
                    read.loose_reports += buf.len() as u64;
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk));
                    if sink.send(BatchChunk::Payloads(full)).await.is_err() {
                        return Ok(read);
                    }
                }
            }
            if !buf.is_empty() {
                read.loose_reports += buf.len() as u64;
                let _ = sink.send(BatchChunk::Payloads(buf)).await;
            }
        }
        tx.commit().await?;
        Ok(read)
    }

    pub(super) async fn finish_release(
        &self,
        task_id: &TaskId,
        start: u64,
        aggregate: &[u8],
        now: i64,
    ) -> Result<ReleaseRecord, StoreError> {
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        sqlx::query(&self.sql(
            "UPDATE releases SET state = 'done', aggregate = ?3, released_at = ?4 \
             WHERE task_id = ?1 AND batch_start = ?2 AND state = 'pending'",
        ))
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .bind(aggregate.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A trustee-noise release: its noise-free sum and the encrypted
        // shares go with the transaction that publishes their product.
        sqlx::query(&self.sql("DELETE FROM release_sums WHERE task_id = ?1 AND batch_start = ?2"))
            .bind(task_id.0.to_vec())
            .bind(to_i64(start, "batch start")?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&self.sql(
            "UPDATE noise_contributions SET contribution = NULL \
             WHERE task_id = ?1 AND batch_start = ?2",
        ))
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_release(task_id, start).await
    }

    pub(super) async fn put_release_sum(
        &self,
        task_id: &TaskId,
        start: u64,
        sum: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        sqlx::query(&self.sql(
            "INSERT INTO release_sums (task_id, batch_start, sum, computed_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (task_id, batch_start) DO NOTHING",
        ))
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .bind(sum.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let stored: Vec<u8> = sqlx::query(
            &self.sql("SELECT sum FROM release_sums WHERE task_id = ?1 AND batch_start = ?2"),
        )
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .fetch_one(&mut *tx)
        .await?
        .try_get("sum")?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn release_sum(
        &self,
        task_id: &TaskId,
        start: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(
            &self.sql("SELECT sum FROM release_sums WHERE task_id = ?1 AND batch_start = ?2"),
        )
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| r.try_get("sum")).transpose()?)
    }

    pub(super) async fn add_noise_contribution(
        &self,
        c: &NewContribution<'_>,
        needed: usize,
    ) -> Result<ContributionOutcome, StoreError> {
        let id = c.task_id.0.to_vec();
        let start = to_i64(c.batch_start, "batch start")?;
        let digest: Vec<u8> = Sha256::digest(c.bytes).to_vec();
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // Lock the release row (PostgreSQL), so that two trustees' uploads
        // and a finishing request are ordered.
        let state: Option<String> = sqlx::query(&self.sql(&format!(
            "SELECT state FROM releases WHERE task_id = ?1 AND batch_start = ?2{}",
            self.dialect.lock(" FOR UPDATE")
        )))
        .bind(id.clone())
        .bind(start)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("state"))
        .transpose()?;
        let Some(state) = state else {
            return Ok(ContributionOutcome::NoRelease);
        };
        let earlier: Option<Vec<u8>> = sqlx::query(&self.sql(
            "SELECT digest FROM noise_contributions \
             WHERE task_id = ?1 AND batch_start = ?2 AND trustee = ?3",
        ))
        .bind(id.clone())
        .bind(start)
        .bind(i64::from(c.trustee))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("digest"))
        .transpose()?;
        if let Some(earlier) = earlier {
            return Ok(if earlier == digest {
                ContributionOutcome::AlreadyStored
            } else {
                ContributionOutcome::Conflict
            });
        }
        if state != ReleaseState::Pending.name() {
            return Ok(if state == ReleaseState::Done.name() {
                ContributionOutcome::Full
            } else {
                ContributionOutcome::NoRelease
            });
        }
        let have: i64 = sqlx::query(&self.sql(
            "SELECT COUNT(*) AS n FROM noise_contributions WHERE task_id = ?1 AND batch_start = ?2",
        ))
        .bind(id.clone())
        .bind(start)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let have = usize::try_from(have).unwrap_or(usize::MAX);
        if have >= needed {
            return Ok(ContributionOutcome::Full);
        }
        sqlx::query(&self.sql(
            "INSERT INTO noise_contributions \
             (task_id, batch_start, trustee, digest, contribution, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        ))
        .bind(id)
        .bind(start)
        .bind(i64::from(c.trustee))
        .bind(digest)
        .bind(c.bytes.to_vec())
        .bind(c.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ContributionOutcome::Stored(have + 1))
    }

    pub(super) async fn noise_contributions(
        &self,
        task_id: &TaskId,
        start: u64,
    ) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT trustee, contribution FROM noise_contributions \
             WHERE task_id = ?1 AND batch_start = ?2 AND contribution IS NOT NULL ORDER BY trustee",
        ))
        .bind(task_id.0.to_vec())
        .bind(to_i64(start, "batch start")?)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| Ok((trustee_of(r)?, r.try_get("contribution")?)))
            .collect()
    }

    pub(super) async fn list_noise_contributions(
        &self,
        task_id: &TaskId,
    ) -> Result<Vec<(u64, u16, i64)>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT batch_start, trustee, received_at FROM noise_contributions \
             WHERE task_id = ?1 ORDER BY batch_start, received_at, trustee",
        ))
        .bind(task_id.0.to_vec())
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    to_u64(r.try_get("batch_start")?, "batch start")?,
                    trustee_of(r)?,
                    r.try_get("received_at")?,
                ))
            })
            .collect()
    }

    pub(super) async fn list_releases(
        &self,
        task_id: &TaskId,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE task_id = ?1 ORDER BY batch_start"
        )))
        .bind(task_id.0.to_vec())
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|r| release_from_row(r, None)).collect()
    }

    pub(super) async fn create_jobs(
        &self,
        max_job_reports: u64,
        scan: u64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // SKIP LOCKED: reports another replica is grouping right now are
        // left to it.
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT id, task_id, time FROM reports WHERE job_id IS NULL ORDER BY task_id, time, id LIMIT ?1{}",
            self.dialect.lock(" FOR UPDATE SKIP LOCKED")
        )))
        .bind(to_i64(scan, "scan limit")?)
        .fetch_all(&mut *tx)
        .await?;
        let mut groups: Vec<(Vec<u8>, i64, Vec<i64>)> = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let task: Vec<u8> = row.try_get("task_id")?;
            let time: i64 = row.try_get("time")?;
            match groups.last_mut() {
                Some((t, b, ids))
                    if *t == task && *b == time && (ids.len() as u64) < max_job_reports =>
                {
                    ids.push(id)
                }
                _ => groups.push((task, time, vec![id])),
            }
        }
        let insert_job = self.sql(
            "INSERT INTO aggregation_jobs (task_id, bucket_start, report_count, state, created_at) \
             VALUES (?1, ?2, ?3, 'pending', ?4) RETURNING job_id",
        );
        let assign = self.sql("UPDATE reports SET job_id = ?1 WHERE id = ?2");
        for (task, bucket, ids) in &groups {
            let job_id: i64 = sqlx::query_scalar(&insert_job)
                .bind(task.clone())
                .bind(*bucket)
                .bind(ids.len() as i64)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            for id in ids {
                sqlx::query(&assign)
                    .bind(job_id)
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(groups.len() as u64)
    }

    pub(super) async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<Option<JobLease>, StoreError> {
        let postgres = self.dialect == Dialect::Postgres;
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // The owner is a diagnostic label (host, pid, random suffix); only
        // characters that cannot end the SQL string literal are kept.
        let owner: String = owner
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        let set = format!(", state = 'running', lease_owner = '{owner}'");
        let leased = lease::acquire(
            &mut tx,
            postgres,
            &AGGREGATION_JOBS,
            "job_id, task_id, bucket_start, report_count",
            "state <> 'done'",
            "job_id",
            &set,
            now,
            policy,
        )
        .await?;
        tx.commit().await?;
        let Some((row, lease)) = leased else {
            return Ok(None);
        };
        Ok(Some(JobLease {
            job_id: row.try_get("job_id")?,
            lease,
            task_id: task_id(row.try_get("task_id")?)?,
            bucket_start: to_u64(row.try_get("bucket_start")?, "bucket start")?,
            report_count: to_u64(row.try_get("report_count")?, "job report count")?,
        }))
    }

    pub(super) async fn job_payloads(&self, job_id: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar(&self.sql("SELECT payload FROM reports WHERE job_id = ?1"))
                .bind(job_id)
                .fetch_all(&self.readers)
                .await?,
        )
    }

    pub(super) async fn complete_job(
        &self,
        job_id: i64,
        lease: &Lease,
        partial: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let postgres = self.dialect == Dialect::Postgres;
        let key = [KeyValue::Int(job_id)];
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        if !lease::holds(&mut tx, postgres, &AGGREGATION_JOBS, &key, lease).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(&self.sql(
            "UPDATE aggregation_jobs SET state = 'done', partial_sum = ?2, finished_at = ?3 \
             WHERE job_id = ?1",
        ))
        .bind(job_id)
        .bind(partial.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        lease::release(&mut tx, postgres, &AGGREGATION_JOBS, &key).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn fail_job(
        &self,
        job_id: i64,
        lease: &Lease,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<bool, StoreError> {
        let postgres = self.dialect == Dialect::Postgres;
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        let given_back = lease::back_off(
            &mut tx,
            postgres,
            &AGGREGATION_JOBS,
            &[KeyValue::Int(job_id)],
            lease,
            now,
            policy,
        )
        .await?;
        tx.commit().await?;
        Ok(given_back)
    }

    pub(super) async fn job_counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM aggregation_jobs GROUP BY state")
            .fetch_all(&self.readers)
            .await?;
        let (mut pending, mut running, mut done) = (0, 0, 0);
        for row in &rows {
            let n = to_u64(row.try_get("n")?, "count")?;
            match row.try_get::<String, _>("state")?.as_str() {
                "pending" => pending = n,
                "running" => running = n,
                _ => done = n,
            }
        }
        Ok((pending, running, done))
    }
}

/// The time ranges `[start, end)` of a task whose reports and jobs the
/// garbage collector may delete: the intervals of releases that are done
/// or withheld, and everything before `cutoff` that no release (of any
/// state) covers. Sorted, and merged where they touch. `releases` are
/// (start, duration, pending).
pub(super) fn deletable_ranges(releases: &[(i64, i64, bool)], cutoff: i64) -> Vec<(i64, i64)> {
    let mut held: Vec<(i64, i64)> = releases
        .iter()
        .map(|&(s, d, _)| (s, s.saturating_add(d)))
        .collect();
    held.sort_unstable();
    let mut ranges: Vec<(i64, i64)> = releases
        .iter()
        .filter(|&&(_, _, pending)| !pending)
        .map(|&(s, d, _)| (s, s.saturating_add(d)))
        .collect();
    // The gaps between held intervals, below the cutoff.
    let mut from = 0i64;
    for &(s, e) in &held {
        if s >= cutoff {
            break;
        }
        if s > from {
            ranges.push((from, s));
        }
        from = from.max(e);
    }
    if from < cutoff {
        ranges.push((from, cutoff));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Most aggregation jobs one garbage-collection transaction deletes.
const GC_JOBS_PER_CHUNK: i64 = 64;

impl SqlStore {
    pub(super) async fn gc_task_chunk(
        &self,
        task_id: &TaskId,
        cutoff: u64,
        chunk: u64,
    ) -> Result<GcDeleted, StoreError> {
        let id = task_id.0.to_vec();
        let cutoff = to_i64(cutoff, "expiry cutoff")?;
        let chunk = to_i64(chunk.max(1), "chunk")?;
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        // FOR SHARE excludes release claims (FOR UPDATE) of the task until
        // we commit, but not uploads: a claim either counts the batch
        // before we delete anything of it, or its release row is seen
        // below and its interval left alone.
        sqlx::query(&self.sql(&format!(
            "SELECT task_id FROM tasks WHERE task_id = ?1{}",
            self.dialect.lock(" FOR SHARE")
        )))
        .bind(id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let rows = sqlx::query(
            &self.sql("SELECT batch_start, batch_duration, state FROM releases WHERE task_id = ?1"),
        )
        .bind(id.clone())
        .fetch_all(&mut *tx)
        .await?;
        let releases = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<String, _>(2)? == ReleaseState::Pending.name(),
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let pick_jobs = self.sql(&format!(
            "SELECT job_id, report_count FROM aggregation_jobs WHERE task_id = ?1 \
             AND bucket_start >= ?2 AND bucket_start < ?3 ORDER BY job_id LIMIT ?4{}",
            self.dialect.lock(" FOR UPDATE SKIP LOCKED")
        ));
        let delete_job_reports = self.sql("DELETE FROM reports WHERE job_id = ?1");
        let delete_job = self.sql("DELETE FROM aggregation_jobs WHERE job_id = ?1");
        let delete_loose = self.sql(&format!(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE task_id = ?1 \
             AND job_id IS NULL AND time >= ?2 AND time < ?3 LIMIT ?4{})",
            self.dialect.lock(" FOR UPDATE SKIP LOCKED")
        ));
        let mut deleted = GcDeleted::default();
        let mut budget = chunk;
        for (start, end) in deletable_ranges(&releases, cutoff) {
            if budget <= 0 {
                break;
            }
            // Whole jobs with their reports, in one transaction: a job's
            // partial sum never outlives, or is outlived by, its reports.
            let jobs = sqlx::query(&pick_jobs)
                .bind(id.clone())
                .bind(start)
                .bind(end)
                .bind(GC_JOBS_PER_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            for job in &jobs {
                let job_id: i64 = job.try_get(0)?;
                let count: i64 = job.try_get(1)?;
                if budget <= 0 || (count > budget && budget < chunk) {
                    // Left for the next transaction (a job larger than
                    // the whole chunk goes alone).
                    budget = 0;
                    break;
                }
                let reports = sqlx::query(&delete_job_reports)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(&delete_job)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
                deleted.jobs += 1;
                deleted.reports += reports;
                budget -= count.max(reports as i64).max(1);
            }
            if budget <= 0 {
                break;
            }
            let loose = sqlx::query(&delete_loose)
                .bind(id.clone())
                .bind(start)
                .bind(end)
                .bind(budget)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            deleted.reports += loose;
            budget -= loose as i64;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Leases the garbage collector's one-row lease (`gc_lease`) if it is
    /// free and the next run is due.
    pub(super) async fn acquire_gc_lease(
        &self,
        now: i64,
        policy: &LeasePolicy,
    ) -> Result<Option<Lease>, StoreError> {
        let postgres = self.dialect == Dialect::Postgres;
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        let leased = lease::acquire(
            &mut tx, postgres, &GC_LEASE, "id", "id = 1", "id", "", now, policy,
        )
        .await?;
        tx.commit().await?;
        Ok(leased.map(|(_, lease)| lease))
    }

    /// Gives the garbage collector's lease back, with the next run due at
    /// `next_run` (on success) or after the policy's backoff (on failure).
    /// False if the lease had been taken over meanwhile.
    pub(super) async fn finish_gc_lease(
        &self,
        lease: &Lease,
        succeeded: bool,
        now: i64,
        next_run: i64,
        policy: &LeasePolicy,
    ) -> Result<bool, StoreError> {
        let postgres = self.dialect == Dialect::Postgres;
        let key = [KeyValue::Int(1)];
        let mut tx = self.writer.begin_with(self.dialect.begin_write()).await?;
        let given_back = if succeeded {
            sqlx::query(&self.sql(
                "UPDATE gc_lease SET lease_token = NULL, lease_expiry = NULL, attempts = 0, \
                 next_attempt_at = ?1, last_run_at = ?2 WHERE id = 1 AND lease_token = ?3",
            ))
            .bind(next_run)
            .bind(now)
            .bind(lease.token.to_vec())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        } else {
            lease::back_off(&mut tx, postgres, &GC_LEASE, &key, lease, now, policy).await?
        };
        tx.commit().await?;
        Ok(given_back)
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn deletable_ranges_are_released_intervals_and_unheld_expired_time() {
        use super::deletable_ranges;
        // Done [100, 160), pending [160, 220), withheld [300, 360); cutoff 400.
        let releases = [(100, 60, false), (160, 60, true), (300, 60, false)];
        assert_eq!(deletable_ranges(&releases, 400), vec![(0, 160), (220, 400)]);
        // Cutoff inside the pending release: nothing of it, nor after it
        // but the done release.
        assert_eq!(deletable_ranges(&releases, 180), vec![(0, 160), (300, 360)]);
        // No releases.
        assert_eq!(deletable_ranges(&[], 60), vec![(0, 60)]);
        assert_eq!(deletable_ranges(&[], 0), vec![]);
        // A done release after the cutoff.
        assert_eq!(
            deletable_ranges(&[(500, 60, false)], 60),
            vec![(0, 60), (500, 560)]
        );
    }

    #[test]
    fn placeholders_are_rewritten_for_postgres() {
        let q = "SELECT a FROM t WHERE x = ?1 AND y < ?12 AND z = '?'";
        assert_eq!(Dialect::Sqlite.sql(q), q);
        assert_eq!(
            Dialect::Postgres.sql(q),
            "SELECT a FROM t WHERE x = $1 AND y < $12 AND z = '?'"
        );
    }
}
