//! The SQLite store: one database file in the data directory.
//!
//! WAL journal, `synchronous=FULL` (a commit is fsynced before it returns),
//! one writer connection (so this process's write transactions queue instead
//! of failing with `SQLITE_BUSY`) and a small pool of readers. Write
//! transactions start with `BEGIN IMMEDIATE` so they take the write lock up
//! front.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use hetally_crypto::dp::Rational;
use hetally_crypto::{ReportId, TaskId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::mpsc;

use super::{
    ClaimDecision, ClaimFacts, InsertOutcome, NewReport, ReleaseRecord, ReleaseState, StoreError,
    TaskRecord,
};

/// File name of the database inside the data directory.
pub(super) const DB_FILE: &str = "hetally.db";

#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    path: PathBuf,
    writer: SqlitePool,
    readers: SqlitePool,
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

fn task_from_row(row: &SqliteRow) -> Result<TaskRecord, StoreError> {
    let hash: Vec<u8> = row.try_get("collector_token_hash")?;
    Ok(TaskRecord {
        task_id: task_id(row.try_get("task_id")?)?,
        definition: row.try_get("definition")?,
        collector_token_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?,
        budget_spent: rational(row.try_get("budget_spent")?)?,
        created_at: row.try_get("created_at")?,
    })
}

const RELEASE_COLUMNS: &str =
    "task_id, batch_start, batch_duration, report_count, state, mechanism, cost, \
                               budget_spent_after, requested_at, released_at";

fn release_from_row(row: &SqliteRow, with_aggregate: bool) -> Result<ReleaseRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(ReleaseRecord {
        task_id: task_id(row.try_get("task_id")?)?,
        batch_start: to_u64(row.try_get("batch_start")?, "batch start")?,
        batch_duration: to_u64(row.try_get("batch_duration")?, "batch duration")?,
        report_count: to_u64(row.try_get("report_count")?, "report count")?,
        state: match state.as_str() {
            "pending" => ReleaseState::Pending,
            "done" => ReleaseState::Done,
            other => return Err(StoreError::Corrupt(format!("release state {other:?}"))),
        },
        aggregate: if with_aggregate {
            row.try_get("aggregate")?
        } else {
            None
        },
        mechanism: row.try_get("mechanism")?,
        cost: rational(row.try_get("cost")?)?,
        budget_spent_after: rational(row.try_get("budget_spent_after")?)?,
        requested_at: row.try_get("requested_at")?,
        released_at: row.try_get("released_at")?,
    })
}

impl SqliteStore {
    pub(super) async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(600))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            path,
            writer,
            readers,
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    pub(super) async fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO tasks (task_id, definition, collector_token_hash, budget_spent, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(&task.task_id.0[..])
        .bind(&task.definition)
        .bind(&task.collector_token_hash[..])
        .bind(task.budget_spent.to_string())
        .bind(task.created_at)
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
        let row = sqlx::query("SELECT * FROM tasks WHERE task_id = ?1")
            .bind(&task_id.0[..])
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    pub(super) async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tasks ORDER BY created_at, task_id")
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn insert_reports(
        &self,
        reports: &[NewReport],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(reports.len());
        for r in reports {
            let time = to_i64(r.time, "report time")?;
            let released: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM releases WHERE task_id = ?1 AND batch_start <= ?2 AND ?2 < batch_start + batch_duration",
            )
            .bind(&r.task_id.0[..])
            .bind(time)
            .fetch_optional(&mut *tx)
            .await?;
            if released.is_some() {
                outcomes.push(InsertOutcome::IntervalReleased);
                continue;
            }
            let inserted = sqlx::query(
                "INSERT INTO reports (task_id, report_id, time, payload) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (task_id, report_id) DO NOTHING",
            )
            .bind(&r.task_id.0[..])
            .bind(&r.report_id.0[..])
            .bind(time)
            .bind(&r.payload)
            .execute(&mut *tx)
            .await?;
            outcomes.push(if inserted.rows_affected() == 1 {
                InsertOutcome::Stored
            } else {
                InsertOutcome::Duplicate
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn report_counts(&self, task_id: &TaskId) -> Result<(u64, u64), StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE task_id = ?1")
            .bind(&task_id.0[..])
            .fetch_one(&self.readers)
            .await?;
        let unreleased: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reports r WHERE r.task_id = ?1 AND NOT EXISTS ( \
               SELECT 1 FROM releases x WHERE x.task_id = r.task_id \
               AND r.time >= x.batch_start AND r.time < x.batch_start + x.batch_duration)",
        )
        .bind(&task_id.0[..])
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let task_row = sqlx::query("SELECT * FROM tasks WHERE task_id = ?1")
            .bind(&task_id.0[..])
            .fetch_one(&mut *tx)
            .await?;
        let task = task_from_row(&task_row)?;
        let report_count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reports WHERE task_id = ?1 AND time >= ?2 AND time < ?3",
        )
        .bind(&task_id.0[..])
        .bind(start_i)
        .bind(end_i)
        .fetch_one(&mut *tx)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE task_id = ?1 \
             AND batch_start < ?3 AND ?2 < batch_start + batch_duration ORDER BY batch_start"
        ))
        .bind(&task_id.0[..])
        .bind(start_i)
        .bind(end_i)
        .fetch_all(&mut *tx)
        .await?;
        let mut same_interval = None;
        let mut overlapping = Vec::new();
        for row in &rows {
            let r = release_from_row(row, false)?;
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
        let record = match decision {
            ClaimDecision::UseExisting => {
                tx.rollback().await?;
                let row =
                    sqlx::query("SELECT * FROM releases WHERE task_id = ?1 AND batch_start = ?2")
                        .bind(&task_id.0[..])
                        .bind(start_i)
                        .fetch_one(&self.writer)
                        .await?;
                return Ok(Ok(release_from_row(&row, true)?));
            }
            ClaimDecision::Claim {
                mechanism,
                cost,
                budget_spent_after,
            } => {
                sqlx::query(
                    "INSERT INTO releases (task_id, batch_start, batch_duration, report_count, state, mechanism, \
                     cost, budget_spent_after, requested_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8)",
                )
                .bind(&task_id.0[..])
                .bind(start_i)
                .bind(duration_i)
                .bind(report_count)
                .bind(&mechanism)
                .bind(cost.to_string())
                .bind(budget_spent_after.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE tasks SET budget_spent = ?2 WHERE task_id = ?1")
                    .bind(&task_id.0[..])
                    .bind(budget_spent_after.to_string())
                    .execute(&mut *tx)
                    .await?;
                ReleaseRecord {
                    task_id: *task_id,
                    batch_start: start,
                    batch_duration: duration,
                    report_count: facts.report_count,
                    state: ReleaseState::Pending,
                    aggregate: None,
                    mechanism,
                    cost,
                    budget_spent_after,
                    requested_at: now,
                    released_at: None,
                }
            }
        };
        tx.commit().await?;
        Ok(Ok(record))
    }

    pub(super) async fn stream_payloads(
        &self,
        task_id: &TaskId,
        start: u64,
        duration: u64,
        chunk: usize,
        sink: mpsc::Sender<Vec<Vec<u8>>>,
    ) -> Result<u64, StoreError> {
        let start_i = to_i64(start, "batch start")?;
        let end_i = to_i64(start.saturating_add(duration), "batch end")?;
        let mut rows = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT payload FROM reports WHERE task_id = ?1 AND time >= ?2 AND time < ?3",
        )
        .bind(&task_id.0[..])
        .bind(start_i)
        .bind(end_i)
        .fetch(&self.readers);
        let mut sent = 0u64;
        let mut buf = Vec::with_capacity(chunk);
        while let Some(payload) = rows.try_next().await? {
            buf.push(payload);
            if buf.len() == chunk {
                sent += buf.len() as u64;
                if sink
                    .send(std::mem::replace(&mut buf, Vec::with_capacity(chunk)))
                    .await
                    .is_err()
                {
                    return Ok(sent);
                }
            }
        }
        if !buf.is_empty() {
            sent += buf.len() as u64;
            let _ = sink.send(buf).await;
        }
        Ok(sent)
    }

    pub(super) async fn finish_release(
        &self,
        task_id: &TaskId,
        start: u64,
        aggregate: &[u8],
        now: i64,
    ) -> Result<ReleaseRecord, StoreError> {
        let start_i = to_i64(start, "batch start")?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE releases SET state = 'done', aggregate = ?3, released_at = ?4 \
             WHERE task_id = ?1 AND batch_start = ?2 AND state = 'pending'",
        )
        .bind(&task_id.0[..])
        .bind(start_i)
        .bind(aggregate)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM releases WHERE task_id = ?1 AND batch_start = ?2")
            .bind(&task_id.0[..])
            .bind(start_i)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        release_from_row(&row, true)
    }

    pub(super) async fn list_releases(
        &self,
        task_id: &TaskId,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE task_id = ?1 ORDER BY batch_start"
        ))
        .bind(&task_id.0[..])
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|r| release_from_row(r, false)).collect()
    }
}

#[allow(dead_code)]
fn _report_id_is_16_bytes(id: ReportId) -> [u8; 16] {
    id.0
}
