//! DAP task secrets at rest (issue 17), on SQLite and on PostgreSQL:
//!
//! * the verification key, the leader's token for the helper and the HPKE
//!   private key are not in the database in plaintext, and come back
//!   intact;
//! * a sealed value copied into another task's row does not open: the
//!   start-up pass refuses, naming the task;
//! * datastore key rotation: with a new key first and the old one kept,
//!   the start-up pass re-seals everything, after which the old key can go;
//! * a plaintext row from before migration 0009 is sealed on start, its
//!   HPKE key pair moved to `dap_hpke_keys`;
//! * the server binary: PostgreSQL without a key, or a wrong key, stops the
//!   start with a clear error that names the task and shows no key; SQLite
//!   without a key generates one, mode 0600.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_dap::hpke::{encode_config, generate_keypair};
use hetally_dap::messages::TaskId;
use hetally_server::dap::task::{DapTask, DapTaskRequest};
use hetally_server::dap::DapError;
use hetally_server::datastore::crypter::{Crypter, DatastoreKeys};
use hetally_server::datastore::dap::DapStore;
use hetally_server::datastore::{Datastore, StoreConfig};

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const K2: &str = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8";
const VERIFY_KEY: [u8; 16] = *b"verify-key-16byt";
const PEER_TOKEN: &str = "the-leaders-token-for-the-helper";
const NOW: u64 = 1_800_000_000;

fn crypter(keys: &str) -> Arc<Crypter> {
    Arc::new(Crypter::new(&DatastoreKeys::parse(keys, "test").unwrap()))
}

fn request(task_id: TaskId) -> DapTaskRequest {
    let collector = generate_keypair(1).unwrap();
    serde_json::from_value(serde_json::json!({
        "task_id": task_id.to_string(),
        "role": "leader",
        "vdaf": "prio3count",
        "min_batch_size": 10,
        "time_precision": 60,
        "peer_url": "http://127.0.0.1:9/dap/",
        "aggregator_auth_token": PEER_TOKEN,
        "collector_auth_token": "collector-token",
        "collector_hpke_config": encode_config(collector.config()),
        "vdaf_verify_key": URL_SAFE_NO_PAD.encode(VERIFY_KEY),
    }))
    .unwrap()
}

/// Provisions a leader task `id` through `store`; returns the private key
/// of its HPKE key pair in the form its JSON holds it.
async fn provision(store: &DapStore, id: u8) -> String {
    let (_, row) = DapTask::provision(&request(TaskId::from([id; 32]))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&row.hpke_keypair).unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.put_task(&row, NOW).await.unwrap());
    tx.commit().await.unwrap();
    json["private_key"].as_str().unwrap().to_string()
}

/// The database under test, opened a second time for raw SQL.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    /// Every byte of every column of the DAP task and key tables, as one
    /// blob per row.
    async fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (table, cols) in [
            (
                "dap_tasks",
                "vdaf_verify_key, CAST(hpke_keypair AS BLOB), CAST(COALESCE(peer_auth_token, '') AS BLOB)",
            ),
            ("dap_hpke_keys", "keypair, keypair, keypair"),
        ] {
            let q = format!("SELECT {cols} FROM {table}");
            match self {
                Raw::Sqlite(p) => {
                    for r in sqlx::query(&q).fetch_all(p).await.unwrap() {
                        for i in 0..3 {
                            out.extend(sqlx::Row::get::<Vec<u8>, _>(&r, i));
                        }
                    }
                }
                Raw::Postgres(p) => {
                    let q = q.replace("AS BLOB", "AS BYTEA").replace(
                        "CAST(hpke_keypair AS BYTEA)",
                        "convert_to(hpke_keypair, 'UTF8')",
                    );
                    let q = q.replace(
                        "CAST(COALESCE(peer_auth_token, '') AS BYTEA)",
                        "convert_to(COALESCE(peer_auth_token, ''), 'UTF8')",
                    );
                    for r in sqlx::query(&q).fetch_all(p).await.unwrap() {
                        for i in 0..3 {
                            out.extend(sqlx::Row::get::<Vec<u8>, _>(&r, i));
                        }
                    }
                }
            }
        }
        out
    }

    /// Runs a statement with `$1`/`?1` style placeholders written `?N`.
    async fn exec(&self, sql: &str, binds: Vec<Vec<u8>>) {
        match self {
            Raw::Sqlite(p) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.execute(p).await.unwrap();
            }
            Raw::Postgres(p) => {
                let sql = sql.replace('?', "$");
                let mut q = sqlx::query(&sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.execute(p).await.unwrap();
            }
        }
    }

    /// Inserts `row` as a server from before migration 0009 stored it.
    async fn insert_legacy(&self, row: &hetally_server::dap::task::DapTaskRow) {
        let sql = "INSERT INTO dap_tasks (task_id, role, parameters, vdaf_verify_key, \
                   hpke_keypair, peer_auth_token, collector_token_hash, created_at) \
                   VALUES (?1, 'leader', ?2, ?3, ?4, ?5, ?6, 1)";
        macro_rules! insert {
            ($pool:expr, $sql:expr) => {
                sqlx::query($sql)
                    .bind(row.task_id.clone())
                    .bind(row.parameters.clone())
                    .bind(row.vdaf_verify_key.clone())
                    .bind(row.hpke_keypair.clone())
                    .bind(PEER_TOKEN)
                    .bind(row.collector_token_hash.clone())
                    .execute($pool)
                    .await
                    .unwrap()
            };
        }
        match self {
            Raw::Sqlite(p) => {
                insert!(p, sql);
            }
            Raw::Postgres(p) => {
                insert!(p, &sql.replace('?', "$"));
            }
        }
    }
}

/// A fresh database of `kind` ("sqlite" or "postgres"), migrated: its
/// store config and a raw handle.
async fn database(kind: &str, dir: &Path, key: &str) -> (StoreConfig, Raw, String) {
    if kind == "sqlite" {
        let config = StoreConfig::Sqlite {
            data_dir: dir.to_path_buf(),
        };
        drop(Datastore::open(&config).await.unwrap());
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("hetally.db"));
        let raw = Raw::Sqlite(sqlx::SqlitePool::connect_with(options).await.unwrap());
        (config, raw, String::new())
    } else {
        let url = hetally_tests::postgres_database(key);
        let config = StoreConfig::Postgres {
            url: url.clone(),
            max_connections: 4,
        };
        drop(Datastore::open(&config).await.unwrap());
        let raw = Raw::Postgres(sqlx::PgPool::connect(&url).await.unwrap());
        (config, raw, url)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn sealed_in_the_database(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (config, raw, _) = database(kind, dir.path(), "secrets sealed").await;
    let store = DapStore::new(&Datastore::open(&config).await.unwrap(), crypter(K1));
    let private_key = provision(&store, 1).await;
    let bytes = raw.all_bytes().await;
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, &VERIFY_KEY), "verify key in plaintext");
    assert!(
        !contains(&bytes, PEER_TOKEN.as_bytes()),
        "token in plaintext"
    );
    assert!(
        !contains(&bytes, private_key.as_bytes()),
        "HPKE key in plaintext"
    );
    assert!(
        !contains(&bytes, b"private_key"),
        "HPKE key pair JSON in plaintext"
    );
    // And they come back intact.
    let id = TaskId::from([1; 32]);
    let task = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(task.verify_key, VERIFY_KEY);
    assert_eq!(task.peer_auth_token.as_deref(), Some(PEER_TOKEN));
    let keys = store.hpke_keys(&id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        serde_json::to_value(&keys[0].keypair).unwrap()["private_key"],
        private_key.as_str()
    );
    // The start-up pass finds nothing to do.
    let pass = store.secure_secrets(NOW).await.unwrap();
    assert_eq!((pass.tasks, pass.migrated, pass.resealed), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_secrets_are_sealed_in_the_database() {
    sealed_in_the_database("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_secrets_are_sealed_in_the_database() {
    sealed_in_the_database("postgres").await;
}

async fn moved_value_does_not_open(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (config, raw, _) = database(kind, dir.path(), "secrets moved").await;
    let store = DapStore::new(&Datastore::open(&config).await.unwrap(), crypter(K1));
    provision(&store, 1).await;
    provision(&store, 2).await;
    // Task 2's verification key replaced by task 1's sealed one (same key,
    // same datastore key: only the associated data tells them apart).
    raw.exec(
        "UPDATE dap_tasks SET vdaf_verify_key = \
         (SELECT vdaf_verify_key FROM dap_tasks WHERE task_id = ?1) WHERE task_id = ?2",
        vec![vec![1; 32], vec![2; 32]],
    )
    .await;
    let two = TaskId::from([2; 32]);
    let err = store.get_task(&two).await.unwrap_err();
    assert!(matches!(err, DapError::Secrets { .. }), "{err}");
    let err = store.secure_secrets(NOW).await.unwrap_err().to_string();
    assert!(err.contains(&two.to_string()), "{err}");
    assert!(err.contains("dap_tasks.vdaf_verify_key"), "{err}");
    assert!(!err.contains(K1), "{err}");
    // Task 1 is unharmed.
    let one = store
        .get_task(&TaskId::from([1; 32]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.verify_key, VERIFY_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sealed_value_moved_to_another_row_does_not_open() {
    moved_value_does_not_open("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sealed_value_moved_to_another_row_does_not_open() {
    moved_value_does_not_open("postgres").await;
}

async fn key_rotation(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (config, _raw, _) = database(kind, dir.path(), "key rotation").await;
    let db = Datastore::open(&config).await.unwrap();
    let id = TaskId::from([1; 32]);
    let private_key = provision(&DapStore::new(&db, crypter(K1)), 1).await;
    // The new key first, the old one kept: everything opens, and the pass
    // seals the three values again under the new key.
    let both = DapStore::new(&db, crypter(&format!("{K2}\n{K1}")));
    assert!(both.get_task(&id).await.unwrap().is_some());
    let pass = both.secure_secrets(NOW).await.unwrap();
    assert_eq!((pass.tasks, pass.resealed), (1, 3));
    assert_eq!(both.secure_secrets(NOW).await.unwrap().resealed, 0);
    // Now the old key can go.
    let new_only = DapStore::new(&db, crypter(K2));
    let task = new_only.get_task(&id).await.unwrap().unwrap();
    assert_eq!(task.verify_key, VERIFY_KEY);
    assert_eq!(task.peer_auth_token.as_deref(), Some(PEER_TOKEN));
    let keys = new_only.hpke_keys(&id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&keys[0].keypair).unwrap()["private_key"],
        private_key.as_str()
    );
    assert_eq!(new_only.secure_secrets(NOW).await.unwrap().resealed, 0);
    // And the old key alone no longer opens anything.
    let old_only = DapStore::new(&db, crypter(K1));
    assert!(old_only.get_task(&id).await.is_err());
    assert!(old_only.secure_secrets(NOW).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_datastore_key_rotation_reseals() {
    key_rotation("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_datastore_key_rotation_reseals() {
    key_rotation("postgres").await;
}

async fn legacy_row(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (config, raw, _) = database(kind, dir.path(), "legacy plaintext").await;
    // A row as a server from before migration 0009 wrote it (the migration
    // only adds `secrets_sealed`, 0 by default): plaintext verify key and
    // token, the key pair's JSON in `hpke_keypair`.
    let (_, row) = DapTask::provision(&request(TaskId::from([5; 32]))).unwrap();
    let keypair: serde_json::Value = serde_json::from_str(&row.hpke_keypair).unwrap();
    let private_key = keypair["private_key"].as_str().unwrap().to_string();
    raw.insert_legacy(&row).await;
    assert!(contains(&raw.all_bytes().await, &VERIFY_KEY));
    let store = DapStore::new(&Datastore::open(&config).await.unwrap(), crypter(K1));
    let id = TaskId::from([5; 32]);
    // Before the pass the row is refused, not read as if sealed.
    assert!(store.get_task(&id).await.is_err());
    let pass = store.secure_secrets(NOW).await.unwrap();
    assert_eq!((pass.tasks, pass.migrated), (1, 1));
    let bytes = raw.all_bytes().await;
    assert!(!contains(&bytes, &VERIFY_KEY));
    assert!(!contains(&bytes, PEER_TOKEN.as_bytes()));
    assert!(!contains(&bytes, private_key.as_bytes()));
    let task = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(task.verify_key, VERIFY_KEY);
    assert_eq!(task.peer_auth_token.as_deref(), Some(PEER_TOKEN));
    let keys = store.hpke_keys(&id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].expires_at, None);
    assert_eq!(serde_json::to_value(&keys[0].keypair).unwrap(), keypair);
    // Idempotent.
    assert_eq!(store.secure_secrets(NOW).await.unwrap().migrated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_plaintext_legacy_row_is_sealed_on_start() {
    legacy_row("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_plaintext_legacy_row_is_sealed_on_start() {
    legacy_row("postgres").await;
}

/// The server binary on a database whose secrets the given keys cannot
/// open: it stops with an error naming the task, and no key in it.
fn start_fails(dir: &Path, url: Option<&str>, keys: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(hetally_tests::bin("hetally-server"));
    cmd.args(["--data-dir", &dir.display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--no-job-driver"])
        .env_remove("HETALLY_DATASTORE_KEYS");
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    if let Some(keys) = keys {
        cmd.env("HETALLY_DATASTORE_KEYS", keys);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the server started:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_to_start_without_its_key() {
    // PostgreSQL: no key at all.
    let dir = tempfile::tempdir().unwrap();
    let url = hetally_tests::postgres_database("no datastore key");
    let err = start_fails(dir.path(), Some(&url), None);
    assert!(err.contains("needs a datastore key"), "{err}");
    // SQLite: a key generated on first use, mode 0600.
    let (config, _raw, _) = database("sqlite", dir.path(), "").await;
    let generated = dir.path().join("datastore.keys");
    let err = start_fails(dir.path(), None, Some("not-a-key"));
    assert!(err.contains("HETALLY_DATASTORE_KEYS"), "{err}");
    assert!(!generated.exists());
    let keys = DatastoreKeys::read(&{
        // Let the server make its key file, then stop it.
        let server = hetally_tests::ServerProcess::start_with(dir.path(), 0, None, &[]).unwrap();
        drop(server);
        generated.clone()
    })
    .unwrap();
    assert_eq!(keys.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&generated).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A task sealed under the generated key; then the server with another
    // key: a clear error naming the task, without the key.
    let text = std::fs::read_to_string(&generated).unwrap();
    let store = DapStore::new(
        &Datastore::open(&config).await.unwrap(),
        Arc::new(Crypter::new(&DatastoreKeys::parse(&text, "file").unwrap())),
    );
    provision(&store, 9).await;
    let err = start_fails(dir.path(), None, Some(K2));
    let task = TaskId::from([9; 32]).to_string();
    assert!(err.contains(&task), "{err}");
    assert!(err.contains("opens under none"), "{err}");
    assert!(!err.contains(K2), "{err}");
    // The right key (from the file the server made) starts it.
    let server = hetally_tests::ServerProcess::start_with(dir.path(), 0, None, &[]).unwrap();
    drop(server);
}
