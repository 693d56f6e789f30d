//! The one job-lease implementation, for every kind of background job
//! (HE aggregation jobs, DAP leader aggregation jobs, DAP collection jobs),
//! after janus's `datastore/leases.rs`.
//!
//! A job row carries four columns: `lease_token` (random, per lease),
//! `lease_expiry` (Unix seconds), `attempts` and `next_attempt_at`.
//!
//! * [`acquire`] leases one ready job whose lease is free or expired and
//!   whose backoff has passed, with a fresh token, and counts the attempt.
//!   On PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`, so replicas never
//!   wait for each other's jobs.
//! * [`holds`] is checked inside the transaction that finishes a job: a
//!   holder whose lease was taken over (it ran past its expiry and another
//!   replica leased the job again) finds another token and must discard its
//!   work, so a job is counted once.
//! * [`back_off`] gives a failed job back with its next attempt delayed
//!   exponentially ([`LeasePolicy::backoff`]), so a peer that is down sees
//!   retries at growing intervals, not a hot loop.

use std::time::Duration;

use rand::RngCore;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::datastore::placeholders;

/// How long leases last and how failed jobs back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// Seconds a holder has before others may take the job over.
    pub lease_secs: u64,
    /// Delay before the second attempt; doubles with each failure.
    pub backoff_base_secs: u64,
    /// Longest delay between attempts.
    pub backoff_cap_secs: u64,
    /// Attempts after which a job that keeps failing is given up (for the
    /// kinds of jobs that can fail for good); `None`: never.
    pub max_attempts: Option<u32>,
}

impl LeasePolicy {
    /// The delay after the `attempts`-th failed attempt: the base doubled
    /// `attempts - 1` times, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let secs = self
            .backoff_base_secs
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_cap_secs);
        Duration::from_secs(secs)
    }

    /// True if a job that has failed `attempts` times should be given up.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }
}

/// A lease on one job, held by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The token the finishing transaction must still find on the row.
    pub token: [u8; 16],
    /// Attempts at the job, this one included.
    pub attempts: u32,
    /// When the lease expires, Unix seconds.
    pub expiry: i64,
}

/// A table of leasable jobs: its name and key columns.
#[derive(Debug, Clone, Copy)]
pub struct JobTable {
    /// The table.
    pub name: &'static str,
    /// Key columns and their kinds, in bind order.
    pub key: &'static [(&'static str, KeyKind)],
}

/// The SQL type of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An integer.
    Int,
    /// A byte string.
    Blob,
}

/// One key column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Blob(Vec<u8>),
}

impl JobTable {
    /// `k1 = ?{first} AND k2 = ?{first+1} ...`
    fn key_clause(&self, first: usize) -> String {
        self.key
            .iter()
            .enumerate()
            .map(|(i, (col, _))| format!("{col} = ?{}", first + i))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn key_of(&self, row: &AnyRow) -> Result<Vec<KeyValue>, sqlx::Error> {
        self.key
            .iter()
            .map(|(col, kind)| {
                Ok(match kind {
                    KeyKind::Int => KeyValue::Int(row.try_get(*col)?),
                    KeyKind::Blob => KeyValue::Blob(row.try_get(*col)?),
                })
            })
            .collect()
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_key<'q>(mut q: AnyQuery<'q>, key: &[KeyValue]) -> AnyQuery<'q> {
    for k in key {
        q = match k {
            KeyValue::Int(v) => q.bind(*v),
            KeyValue::Blob(v) => q.bind(v.clone()),
        };
    }
    q
}

/// Leases the first job of `table`, in `order`, that satisfies `ready` (an
/// SQL condition without placeholders) and whose lease and backoff allow
/// it; `set` adds assignments to the leasing update (such as
/// `, state = 'running'`). Returns the job's `columns` and the lease. Call
/// inside a write transaction and commit it.
#[allow(clippy::too_many_arguments)]
pub async fn acquire(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &JobTable,
    columns: &str,
    ready: &str,
    order: &str,
    set: &str,
    now: i64,
    policy: &LeasePolicy,
) -> Result<Option<(AnyRow, Lease)>, sqlx::Error> {
    let pick = placeholders(
        postgres,
        &format!(
            "SELECT {columns}, attempts FROM {name} WHERE ({ready}) \
             AND (lease_expiry IS NULL OR lease_expiry < ?1) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?1) \
             ORDER BY {order} LIMIT 1{lock}",
            name = table.name,
            lock = if postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            },
        ),
    );
    let Some(row) = sqlx::query(&pick)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let key = table.key_of(&row)?;
    let attempts = u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX - 1) + 1;
    let mut token = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let expiry = now.saturating_add(i64::try_from(policy.lease_secs).unwrap_or(i64::MAX));
    let update = placeholders(
        postgres,
        &format!(
            "UPDATE {name} SET lease_token = ?1, lease_expiry = ?2, attempts = attempts + 1{set} \
             WHERE {key}",
            name = table.name,
            key = table.key_clause(3),
        ),
    );
    let q = sqlx::query(&update).bind(token.to_vec()).bind(expiry);
    bind_key(q, &key).execute(&mut *conn).await?;
    Ok(Some((
        row,
        Lease {
            token,
            attempts,
            expiry,
        },
    )))
}

/// Whether this process still holds `lease` on the job `key`: the token on
/// the row is still ours. Locks the row (PostgreSQL) until the transaction
/// ends, so the check and the finishing writes are atomic.
pub async fn holds(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &JobTable,
    key: &[KeyValue],
    lease: &Lease,
) -> Result<bool, sqlx::Error> {
    let q = placeholders(
        postgres,
        &format!(
            "SELECT lease_token FROM {name} WHERE {key}{lock}",
            name = table.name,
            key = table.key_clause(1),
            lock = if postgres { " FOR UPDATE" } else { "" },
        ),
    );
    let row = bind_key(sqlx::query(&q), key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => row
            .try_get::<Option<Vec<u8>>, _>("lease_token")?
            .is_some_and(|t| t == lease.token),
        None => false,
    })
}

/// Clears the lease of a finished job (the caller sets its state in the
/// same transaction, after checking [`holds`]).
pub async fn release(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &JobTable,
    key: &[KeyValue],
) -> Result<(), sqlx::Error> {
    let q = placeholders(
        postgres,
        &format!(
            "UPDATE {name} SET lease_token = NULL, lease_expiry = NULL, next_attempt_at = NULL \
             WHERE {key}",
            name = table.name,
            key = table.key_clause(1),
        ),
    );
    bind_key(sqlx::query(&q), key).execute(&mut *conn).await?;
    Ok(())
}

/// Gives a failed job back: its lease is cleared and its next attempt
/// waits [`LeasePolicy::backoff`]. Returns false (and changes nothing) if
/// the lease was taken over meanwhile.
pub async fn back_off(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &JobTable,
    key: &[KeyValue],
    lease: &Lease,
    now: i64,
    policy: &LeasePolicy,
) -> Result<bool, sqlx::Error> {
    let delay = i64::try_from(policy.backoff(lease.attempts).as_secs()).unwrap_or(i64::MAX);
    let q = placeholders(
        postgres,
        &format!(
            "UPDATE {name} SET lease_token = NULL, lease_expiry = NULL, next_attempt_at = ?1 \
             WHERE lease_token = ?2 AND {key}",
            name = table.name,
            key = table.key_clause(3),
        ),
    );
    let q = sqlx::query(&q)
        .bind(now.saturating_add(delay))
        .bind(lease.token.to_vec());
    Ok(bind_key(q, key).execute(&mut *conn).await?.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = LeasePolicy {
            lease_secs: 60,
            backoff_base_secs: 1,
            backoff_cap_secs: 10,
            max_attempts: Some(5),
        };
        let secs: Vec<u64> = (1..=6).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
        assert!(!p.exhausted(4));
        assert!(p.exhausted(5));
        assert_eq!(p.backoff(u32::MAX).as_secs(), 10);
    }
}
