//! Migration 0005 moves the leader's DAP report shares out of `dap_reports`
//! into `dap_report_shares`. A database at migration 0004 holding a report
//! must come out of the upgrade with the report, its shares and its job
//! intact, on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};

use hetally_dap::messages::TaskId;
use hetally_server::datastore::dap::DapStore;
use hetally_server::datastore::{Datastore, StoreConfig};
use sqlx::migrate::Migrator;

const TASK: [u8; 32] = [7; 32];
const REPORT: [u8; 16] = [9; 16];
const JOB: [u8; 16] = [3; 16];

/// The migrations of `dialect` up to and including 0004, in a directory of
/// their own.
fn migrations_up_to_0004(dialect: &str, into: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let dst = into.join(format!("migrations-{dialect}"));
    std::fs::create_dir_all(&dst).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, dst.join(&name)).unwrap();
            copied += 1;
        }
    }
    assert_eq!(copied, 4, "migrations 0001 to 0004 of {dialect}");
    dst
}

/// What a 0004 database held: a leader task and one report in a job, the
/// shares in the report row. `$n` is the placeholder style.
macro_rules! seed_0004 {
    ($pool:expr, $p:expr) => {{
        let p = $p;
        sqlx::query(&format!(
            "INSERT INTO dap_tasks (task_id, role, parameters, vdaf_verify_key, hpke_keypair, \
             created_at) VALUES ({}, 'leader', '{{}}', {}, '{{}}', 1)",
            p(1),
            p(2)
        ))
        .bind(TASK.to_vec())
        .bind(vec![0u8; 16])
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO dap_reports (task_id, report_id, time, public_share, \
             leader_input_share, helper_encrypted, job_id) VALUES ({}, {}, 600, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        ))
        .bind(TASK.to_vec())
        .bind(REPORT.to_vec())
        .bind(b"public".to_vec())
        .bind(vec![0xabu8; 20_000])
        .bind(b"helper ciphertext".to_vec())
        .bind(JOB.to_vec())
        .execute($pool)
        .await
        .unwrap();
    }};
}

/// Opens the store (which runs every migration) and reads the job back.
async fn check_upgraded(config: StoreConfig) {
    let store = Datastore::open(&config).await.unwrap();
    let dap = DapStore::new(
        &store,
        std::sync::Arc::new(hetally_server::datastore::crypter::Crypter::ephemeral()),
    );
    let task = TaskId::from(TASK);
    let reports = dap.job_reports(&task, &JOB).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.report_id, REPORT);
    assert_eq!(r.time, 600);
    assert_eq!(r.public_share, b"public");
    assert_eq!(r.leader_input_share, vec![0xab; 20_000]);
    assert_eq!(r.helper_encrypted, b"helper ciphertext");
    // The report id still guards against replay.
    let again = hetally_server::datastore::dap::StoredReport {
        report_id: REPORT,
        time: 600,
        public_share: Vec::new(),
        leader_input_share: Vec::new(),
        helper_encrypted: Vec::new(),
    };
    let outcome = dap.insert_reports(&[(task, again)]).await.unwrap();
    assert_eq!(
        outcome,
        vec![hetally_server::datastore::dap::UploadOutcome::Replayed]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_0004_reports_keep_their_shares() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_up_to_0004("sqlite", dir.path());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("hetally.db"))
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        Migrator::new(migrations.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        seed_0004!(&pool, |n: usize| format!("?{n}"));
        pool.close().await;
    }
    check_upgraded(StoreConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_0004_reports_keep_their_shares() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_up_to_0004("postgres", dir.path());
    let url = hetally_tests::postgres_database("dap migration 0005");
    {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        Migrator::new(migrations.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        seed_0004!(&pool, |n: usize| format!("${n}"));
        pool.close().await;
    }
    check_upgraded(StoreConfig::Postgres {
        url,
        max_connections: 4,
    })
    .await;
}
