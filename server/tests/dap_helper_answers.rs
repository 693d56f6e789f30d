//! The DAP leader reads the helper's answers with a cap worked out from
//! the job (issue 17): a hostile "helper" that answers an aggregation job
//! or an aggregate-share request with 64 MiB, announced in
//! `Content-Length` or streamed without one, is cut off after a few
//! kilobytes, and the job backs off instead of the leader buffering the
//! lot (it read up to the task's largest aggregation-job body before,
//! 110 MB for `prio3count`). On SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use hetally_dap::hpke::{encode_config, generate_keypair};
use hetally_dap::messages::{
    AggregateShare, AggregationJobResp, HpkeCiphertext, HpkeConfigId, TaskId,
};
use hetally_dap::prio::codec::Encode;
use hetally_dap::prio::field::Field64;
use hetally_dap::prio::vdaf::prio3::Prio3Count;
use hetally_dap::prio::vdaf::{Client as _, OutputShare};
use hetally_server::clock::{Clock, MockClock};
use hetally_server::dap::aggregation::checksum_add;
use hetally_server::dap::leader::{commit_job, tick, DriverConfig};
use hetally_server::dap::task::{DapTask, DapTaskRequest};
use hetally_server::dap::DapState;
use hetally_server::datastore::dap::{CollectionJobRow, CollectionState, StoredReport};
use hetally_server::datastore::{Datastore, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const T0: u64 = 1_800_000_000;
const REPORTS: u64 = 12;
/// What the hostile helper tries to make the leader read.
const HOSTILE_BODY: usize = 64 << 20;

/// How the hostile helper sends its oversized body.
#[derive(Clone, Copy)]
enum Framing {
    /// `Content-Length: 64 MiB`, then the bytes.
    ContentLength,
    /// No length: the body runs until the connection closes.
    UntilClose,
}

/// A "helper" that reads one request and answers 200 with `media` and a
/// 64 MiB body. Its channel says whether the whole body went out (the
/// leader read it all) or the leader hung up first.
async fn hostile_helper(
    media: &'static str,
    framing: Framing,
) -> (String, oneshot::Receiver<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/dap/", listener.local_addr().unwrap());
    let (done, outcome) = oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        read_request(&mut conn).await;
        let length = match framing {
            Framing::ContentLength => format!("content-length: {HOSTILE_BODY}\r\n"),
            Framing::UntilClose => String::new(),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {media}\r\n{length}connection: close\r\n\r\n"
        );
        let chunk = vec![0u8; 64 << 10];
        let mut delivered = conn.write_all(head.as_bytes()).await.is_ok();
        let mut sent = 0;
        while delivered && sent < HOSTILE_BODY {
            delivered = conn.write_all(&chunk).await.is_ok();
            sent += chunk.len();
        }
        delivered = delivered && conn.shutdown().await.is_ok();
        let _ = done.send(delivered);
    });
    (url, outcome)
}

/// Reads an HTTP/1.1 request's head and its `Content-Length` body.
async fn read_request(conn: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut byte).await.unwrap();
        assert!(n > 0, "the leader closed before sending its request");
        buf.extend_from_slice(&byte[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = conn.read(&mut byte).await.unwrap();
        assert!(n > 0, "the leader closed mid-request");
        buf.extend_from_slice(&byte[..n]);
    }
}

fn driver() -> DriverConfig {
    let mut d = DriverConfig::default();
    for p in [&mut d.aggregation, &mut d.collection] {
        p.lease_secs = 60;
        p.backoff_base_secs = 1;
        p.backoff_cap_secs = 64;
    }
    d
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
    let collector = generate_keypair(1).unwrap();
    let request: DapTaskRequest = serde_json::from_value(serde_json::json!({
        "task_id": TaskId::from([7u8; 32]).to_string(),
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
    .unwrap();
    let (task, row) = DapTask::provision(&request).unwrap();
    let mut tx = state.store().begin().await.unwrap();
    assert!(tx.put_task(&row, clock.now()).await.unwrap());
    tx.commit().await.unwrap();
    let task = state.task(&task.task_id).await.unwrap();
    (state, task)
}

/// `REPORTS` real `prio3count` reports of 1 at `T0` (the helper's share
/// is never opened by the leader, so its ciphertext is a placeholder).
fn reports(task: &DapTask) -> Vec<(TaskId, StoredReport)> {
    let vdaf = Prio3Count::new_count(2).unwrap();
    (0..REPORTS)
        .map(|i| {
            let report_id = [i as u8 + 1; 16];
            let (public, inputs) = vdaf.shard(&true, &report_id).unwrap();
            let helper = HpkeCiphertext::new(HpkeConfigId::from(1), vec![0; 32], vec![0; 64]);
            (
                task.task_id,
                StoredReport {
                    report_id,
                    time: T0,
                    public_share: public.get_encoded().unwrap(),
                    leader_input_share: inputs[0].get_encoded().unwrap(),
                    helper_encrypted: helper.get_encoded().unwrap(),
                },
            )
        })
        .collect()
}

async fn delivered(outcome: oneshot::Receiver<bool>) -> bool {
    tokio::time::timeout(Duration::from_secs(120), outcome)
        .await
        .expect("the hostile helper finished within two minutes")
        .expect("the hostile helper reported")
}

async fn oversized_aggregation_answer(store: Datastore, framing: Framing) {
    let clock = MockClock::new(T0);
    let (url, outcome) = hostile_helper(AggregationJobResp::MEDIA_TYPE, framing).await;
    let (state, task) = leader(&store, &clock, &url).await;
    assert!(
        task.limits.aggregation_job > HOSTILE_BODY,
        "the task's largest aggregation-job body, what the leader read up to before, \
         would have let the hostile answer through"
    );
    state.store().insert_reports(&reports(&task)).await.unwrap();

    // The driver groups the reports into a job and sends it: the answer
    // is refused, and the job backs off.
    tick(&state)
        .await
        .expect("a refused answer does not fail the tick");
    assert!(
        !delivered(outcome).await,
        "the leader stopped reading the helper's 64 MiB answer"
    );
    let buckets = state
        .store()
        .buckets(&task.task_id, T0 - 600, T0 + 600)
        .await
        .unwrap();
    assert!(buckets.is_empty(), "nothing was aggregated");
    let mut tx = state.store().begin().await.unwrap();
    assert!(
        tx.lease_job(T0, &driver().aggregation)
            .await
            .unwrap()
            .is_none(),
        "the job backs off"
    );
    assert!(
        tx.lease_job(T0 + 2, &driver().aggregation)
            .await
            .unwrap()
            .is_some(),
        "and is retried after the backoff"
    );
    tx.commit().await.unwrap();
}

async fn oversized_aggregate_share(store: Datastore, framing: Framing) {
    let clock = MockClock::new(T0);
    let (url, outcome) = hostile_helper(AggregateShare::MEDIA_TYPE, framing).await;
    let (state, task) = leader(&store, &clock, &url).await;

    // An aggregated interval of `REPORTS` reports and a collection job for
    // it: the leader asks the helper for its aggregate share.
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
    let mut checksum = [0u8; 32];
    let outs = (0..REPORTS)
        .map(|i| {
            checksum_add(&mut checksum, &[i as u8; 16]);
            OutputShare::from(vec![Field64::from(1u64)])
        })
        .collect();
    let shares = [(task.bucket_of(T0), (outs, checksum))]
        .into_iter()
        .collect();
    assert!(commit_job(&state, &task, &vdaf, &job, shares)
        .await
        .unwrap());
    let mut tx = state.store().begin().await.unwrap();
    tx.put_collection_job(
        &CollectionJobRow {
            task_id: task.task_id,
            collection_job_id: [3; 16],
            batch_start: T0 - T0 % 60,
            batch_duration: 60,
            aggregation_param: Vec::new(),
            state: CollectionState::Start,
            report_count: None,
            leader_share: None,
            helper_share: None,
            failure: None,
        },
        T0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    tick(&state)
        .await
        .expect("a refused answer does not fail the tick");
    assert!(
        !delivered(outcome).await,
        "the leader stopped reading the helper's 64 MiB aggregate share"
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
        "backed off, to be retried"
    );
    assert!(job.helper_share.is_none());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_streamed_oversized_aggregation_answer_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    oversized_aggregation_answer(sqlite(&dir).await, Framing::UntilClose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_announced_oversized_aggregation_answer_is_refused() {
    oversized_aggregation_answer(
        postgres("hostile helper aggregation").await,
        Framing::ContentLength,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_announced_oversized_aggregate_share_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    oversized_aggregate_share(sqlite(&dir).await, Framing::ContentLength).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_streamed_oversized_aggregate_share_is_cut_off() {
    oversized_aggregate_share(
        postgres("hostile helper aggregate share").await,
        Framing::UntilClose,
    )
    .await;
}
