//! The DAP leader's background jobs under the one lease implementation
//! (`hetally_server::lease`), on SQLite and on PostgreSQL, with a mock
//! clock so that leases expire and backoffs pass without sleeping:
//!
//! * an aggregation job finished after its lease was taken over is
//!   discarded, so its reports are counted once (they were counted twice
//!   when finishing did not check the lease);
//! * a collection job whose helper is down is retried at growing
//!   intervals, not in a loop, and does not hold up other work;
//! * a collection job that cannot be driven at all backs off alone: the
//!   jobs behind it are still driven in the same tick.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hetally_dap::hpke::{encode_config, generate_keypair};
use hetally_dap::messages::TaskId;
use hetally_dap::prio::field::Field64;
use hetally_dap::prio::vdaf::prio3::Prio3Count;
use hetally_dap::prio::vdaf::OutputShare;
use hetally_server::clock::{Clock, MockClock};
use hetally_server::dap::aggregation::checksum_add;
use hetally_server::dap::leader::{commit_job, tick, DriverConfig};
use hetally_server::dap::task::{DapTask, DapTaskRequest};
use hetally_server::dap::DapState;
use hetally_server::datastore::dap::{CollectionJobRow, CollectionState, StoredReport};
use hetally_server::datastore::{Datastore, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T0: u64 = 1_800_000_000;
const REPORTS: u64 = 12;

fn driver() -> DriverConfig {
    let mut d = DriverConfig::default();
    d.aggregation.lease_secs = 60;
    d.collection.lease_secs = 60;
    for p in [&mut d.aggregation, &mut d.collection] {
        p.backoff_base_secs = 1;
        p.backoff_cap_secs = 64;
    }
    d
}

/// The provisioning request of a leader task `task_id` for `prio3count`
/// whose helper is at `peer_url`.
fn task_request(task_id: TaskId, peer_url: &str) -> DapTaskRequest {
    let collector = generate_keypair(1).unwrap();
    serde_json::from_value(serde_json::json!({
        "task_id": task_id.to_string(),
        "role": "leader",
        "vdaf": "prio3count",
        "min_batch_size": 10,
        "time_precision": 60,
        "peer_url": peer_url,
        "aggregator_auth_token": "aggregator-token",
        "collector_auth_token": "collector-token",
        "collector_hpke_config": encode_config(collector.config()),
        "vdaf_verify_key": "AAAAAAAAAAAAAAAAAAAAAA",
    }))
    .unwrap()
}

/// A leader task for `prio3count` whose helper is at `peer_url`.
async fn leader(store: &Datastore, clock: &MockClock, peer_url: &str) -> (DapState, Arc<DapTask>) {
    let (state, _writer) = DapState::new(
        store,
        [0; 32],
        Arc::new(clock.clone()),
        driver(),
        Arc::new(hetally_server::datastore::crypter::Crypter::ephemeral()),
    )
    .unwrap();
    let (task, row) = DapTask::provision(&task_request(TaskId::from([7u8; 32]), peer_url)).unwrap();
    let mut tx = state.store().begin().await.unwrap();
    assert!(tx.put_task(&row, clock.now()).await.unwrap());
    tx.commit().await.unwrap();
    let task = state.task(&task.task_id).await.unwrap();
    (state, task)
}

/// Output shares of `REPORTS` reports of 1, in the bucket of `T0`, as the
/// leader's preparation would make them.
fn shares(task: &DapTask) -> BTreeMap<u64, (Vec<OutputShare<Field64>>, [u8; 32])> {
    let mut checksum = [0u8; 32];
    let outs = (0..REPORTS)
        .map(|i| {
            checksum_add(&mut checksum, &[i as u8; 16]);
            OutputShare::from(vec![Field64::from(1u64)])
        })
        .collect();
    BTreeMap::from([(task.bucket_of(T0), (outs, checksum))])
}

async fn lease_takeover(store: Datastore) {
    let clock = MockClock::new(T0);
    let (state, task) = leader(&store, &clock, "http://127.0.0.1:9/dap/").await;
    let reports: Vec<(TaskId, StoredReport)> = (0..REPORTS)
        .map(|i| {
            (
                task.task_id,
                StoredReport {
                    report_id: [i as u8; 16],
                    time: T0,
                    public_share: Vec::new(),
                    leader_input_share: Vec::new(),
                    helper_encrypted: Vec::new(),
                },
            )
        })
        .collect();
    store_reports(&state, &reports).await;
    let mut tx = state.store().begin().await.unwrap();
    assert_eq!(
        tx.create_job(&task.task_id, &[1; 16], 100, T0)
            .await
            .unwrap(),
        REPORTS
    );
    tx.commit().await.unwrap();

    // Replica A leases the job; it runs past its lease, and replica B
    // takes the job over.
    let policy = driver().aggregation;
    let mut tx = state.store().begin().await.unwrap();
    let a = tx.lease_job(T0, &policy).await.unwrap().unwrap();
    assert!(tx.lease_job(T0, &policy).await.unwrap().is_none());
    tx.commit().await.unwrap();
    clock.advance(61);
    let mut tx = state.store().begin().await.unwrap();
    let b = tx.lease_job(T0 + 61, &policy).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.job_id, b.job_id);
    assert_ne!(a.lease.token, b.lease.token);
    assert_eq!(b.lease.attempts, 2);

    // B finishes; A's late finish is discarded.
    let vdaf = Prio3Count::new_count(2).unwrap();
    assert!(commit_job(&state, &task, &vdaf, &b, shares(&task))
        .await
        .unwrap());
    assert!(!commit_job(&state, &task, &vdaf, &a, shares(&task))
        .await
        .unwrap());
    let buckets = state
        .store()
        .buckets(&task.task_id, T0 - 600, T0 + 600)
        .await
        .unwrap();
    let counted: u64 = buckets.iter().map(|b| b.report_count).sum();
    assert_eq!(counted, REPORTS, "the job's reports are counted once");
    assert_eq!(
        state
            .store()
            .unaggregated_reports(&task.task_id, T0 - 600, T0 + 600)
            .await
            .unwrap(),
        0
    );
}

async fn store_reports(state: &DapState, reports: &[(TaskId, StoredReport)]) {
    state.store().insert_reports(reports).await.unwrap();
}

/// A helper that is down: it answers every request with 503 and records
/// when (by the mock clock) each arrived.
async fn down_helper(clock: MockClock) -> (String, Arc<Mutex<Vec<u64>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/dap/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            record.lock().unwrap().push(clock.now());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (url, seen)
}

/// Aggregates `REPORTS` reports into the bucket of `T0` (an aggregation
/// job leased and committed), so that the interval can be collected.
async fn aggregated_interval(state: &DapState, task: &DapTask) {
    let vdaf = Prio3Count::new_count(2).unwrap();
    let mut tx = state.store().begin().await.unwrap();
    tx.create_job(&task.task_id, &[2; 16], 100, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = state.store().begin().await.unwrap();
    let job = tx
        .lease_job(T0, &driver().aggregation)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert!(commit_job(state, task, &vdaf, &job, shares(task))
        .await
        .unwrap());
}

/// Stores a new collection job `id` of `task` for the bucket of `T0`,
/// created at `created_at`.
async fn collection_job(state: &DapState, task_id: TaskId, id: u8, created_at: u64) {
    let mut tx = state.store().begin().await.unwrap();
    tx.put_collection_job(
        &CollectionJobRow {
            task_id,
            collection_job_id: [id; 16],
            batch_start: T0 - T0 % 60,
            batch_duration: 60,
            aggregation_param: Vec::new(),
            state: CollectionState::Start,
            report_count: None,
            leader_share: None,
            helper_share: None,
            failure: None,
        },
        created_at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn retries_back_off(store: Datastore) {
    let clock = MockClock::new(T0);
    let (url, seen) = down_helper(clock.clone()).await;
    let (state, task) = leader(&store, &clock, &url).await;
    // An interval whose reports are all aggregated (a bucket of 12), and a
    // collection job for it: the leader asks the helper for its share.
    aggregated_interval(&state, &task).await;
    assert_eq!(task.bucket_of(T0), T0 - T0 % 60);
    collection_job(&state, task.task_id, 3, T0).await;

    // Two simulated minutes, the driver ticking twice a second.
    for half_seconds in 0..240u64 {
        clock.set(T0 + half_seconds / 2);
        tick(&state).await.unwrap();
    }
    let times = seen.lock().unwrap().clone();
    let offsets: Vec<u64> = times.iter().map(|t| t - T0).collect();
    // Attempts at 0, 1, 3, 7, 15, 31, 63, 127... (backoff 1, 2, 4, ... s):
    // seven in two minutes, where a loop would have sent hundreds.
    assert!(
        (5..=8).contains(&times.len()),
        "requests to the down helper at {offsets:?}"
    );
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|w| w[1] > w[0]),
        "the gaps between retries grow: {gaps:?} (at {offsets:?})"
    );
    let job = state
        .store()
        .collection_job(&task.task_id, &[3; 16])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.state,
        CollectionState::Start,
        "still waiting, not failed"
    );
}

/// A collection job that cannot be driven (its task's stored row no longer
/// reads: here corrupted by hand) is leased first; the good job behind it
/// is still driven in the same tick, and the tick itself succeeds. Before,
/// the first failing job ended the whole tick with an error.
async fn one_bad_job_stops_nothing(store: Datastore, url_of_store: String) {
    let clock = MockClock::new(T0);
    let (url, seen) = down_helper(clock.clone()).await;
    let (state, task) = leader(&store, &clock, &url).await;
    aggregated_interval(&state, &task).await;

    // A second task, whose stored parameters are then made unreadable.
    let bad = TaskId::from([8u8; 32]);
    let (_, row) = DapTask::provision(&task_request(bad, &url)).unwrap();
    let mut tx = state.store().begin().await.unwrap();
    assert!(tx.put_task(&row, clock.now()).await.unwrap());
    tx.commit().await.unwrap();
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&url_of_store).await.unwrap();
    let corrupt = if url_of_store.starts_with("sqlite:") {
        "UPDATE dap_tasks SET parameters = 'not json' WHERE task_id = ?1"
    } else {
        "UPDATE dap_tasks SET parameters = 'not json' WHERE task_id = $1"
    };
    sqlx::query(corrupt)
        .bind(bad.as_ref().to_vec())
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    collection_job(&state, bad, 4, T0 - 10).await;
    collection_job(&state, task.task_id, 3, T0).await;
    tick(&state)
        .await
        .expect("one bad job does not fail the tick");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the good job reached the helper in the same tick"
    );
    let bad_job = state
        .store()
        .collection_job(&bad, &[4; 16])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bad_job.state,
        CollectionState::Start,
        "backed off, not lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lease_takeover_counts_a_job_once() {
    let dir = tempfile::tempdir().unwrap();
    lease_takeover(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_takeover_counts_a_job_once() {
    lease_takeover(postgres("dap lease takeover").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_bad_collection_job_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hetally.db").display());
    one_bad_job_stops_nothing(sqlite(&dir).await, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_bad_collection_job_stops_nothing() {
    let url = hetally_tests::postgres_database("dap one bad collection job");
    let store = Datastore::open(&StoreConfig::Postgres {
        url: url.clone(),
        max_connections: 4,
    })
    .await
    .unwrap();
    one_bad_job_stops_nothing(store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_down_helper_sees_retries_at_growing_intervals() {
    let dir = tempfile::tempdir().unwrap();
    retries_back_off(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_helper_sees_retries_at_growing_intervals() {
    retries_back_off(postgres("dap retry backoff").await).await;
}

async fn sqlite(dir: &tempfile::TempDir) -> Datastore {
    Datastore::open(&StoreConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap()
}

async fn postgres(key: &str) -> Datastore {
    Datastore::open(&StoreConfig::Postgres {
        url: hetally_tests::postgres_database(key),
        max_connections: 4,
    })
    .await
    .unwrap()
}
