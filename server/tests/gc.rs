//! Report expiry and the garbage collector (issue 17, finding 3), on SQLite
//! and on PostgreSQL, with a mock clock:
//!
//! * a report older than the task's expiry age (or stamped 0) is refused
//!   with `ReportExpired`; the age is per task, with the server's default;
//! * after a release, a run deletes exactly the released batch's reports,
//!   jobs and partial sums and the expired intervals' (also those stamped
//!   0), nothing of unreleased or pending batches; releases stay, with
//!   their aggregates; a second run deletes nothing; a replay of a deleted
//!   report is still refused;
//! * two collectors on two handles of one database never both run, and a
//!   collector that died holding the lease is replaced once it expires;
//! * DAP leader: once a collection job is finished, its interval's reports
//!   (with their shares), aggregation job and bucket are deleted, and the
//!   expired interval's; the collection job stays and a replay is still
//!   refused; DAP helper: the replay records, buckets and old job answers
//!   of collected and expired intervals are deleted, the aggregate share
//!   stays.

use std::sync::Arc;

use hetally_protocol::dp::{DpMechanism, Rational, Relation};
use hetally_protocol::{Measurement, Report, ReportId, TaskId};
use hetally_schemes::TaskParams;
use hetally_server::aggregator::{Aggregator, Error, NewTask};
use hetally_server::clock::MockClock;
use hetally_server::datastore::{
    BatchChunk, ClaimDecision, Datastore, InsertOutcome, NewReport, StoreConfig, TaskRecord,
};
use hetally_server::gc::{Collector, GcConfig, GcOutcome, GcReport};
use hetally_server::lease::LeasePolicy;
use tokio::sync::mpsc;

const DAY: u64 = 24 * 3600;
/// A time aligned to the tasks' precision (60 s).
const T0: u64 = 1_800_000_000;
const WEEK: u64 = 7 * DAY;

fn public_key() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk) = hetally_tests::keygen(dir.path());
    std::fs::read(pk).unwrap()
}

/// A task record with a real definition (the collector reads the time
/// precision from it).
fn task_record(pk: &[u8], min_batch_size: u64) -> TaskRecord {
    let params = TaskParams {
        measurement: Measurement::Count,
        min_batch_size,
        max_batch_size: Some(1000),
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        input_proofs: false,
        relation: Some(Relation::ReplaceOne),
        trustee_noise: None,
    };
    let (definition, _) =
        hetally_schemes::define_task(pk.to_vec(), params, 1000, &mut rand::rngs::OsRng).unwrap();
    TaskRecord {
        task_id: definition.id(),
        definition: definition.to_bytes(),
        collector_token_hash: [9; 32],
        budget_spent: Rational::zero(),
        created_at: T0 as i64,
        crs: None,
        report_expiry_age: WEEK,
        trustee_token_hashes: None,
    }
}

fn report(task: &TaskId, n: u32, time: u64) -> NewReport {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    NewReport {
        task_id: *task,
        report_id: ReportId(id),
        time,
        payload: n.to_be_bytes().to_vec(),
    }
}

fn gc_config() -> GcConfig {
    GcConfig {
        interval: Some(std::time::Duration::from_secs(300)),
        // Small chunks, so a run takes several transactions.
        chunk: 4,
        lease: LeasePolicy {
            lease_secs: 600,
            backoff_base_secs: 10,
            backoff_cap_secs: 600,
            max_attempts: None,
        },
    }
}

/// Reports of `[start, start + duration)` a release would read (in
/// finished jobs, and loose).
async fn batch_reports(store: &Datastore, task: &TaskId, start: u64, duration: u64) -> u64 {
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let store = store.clone();
        let id = *task;
        tokio::spawn(async move { store.read_batch(&id, start, duration, 100, tx).await })
    };
    let mut n = 0;
    while let Some(chunk) = rx.recv().await {
        n += match chunk {
            BatchChunk::Partials(p) => p.iter().map(|(c, _)| c).sum::<u64>(),
            BatchChunk::Payloads(p) => p.len() as u64,
        };
    }
    reader.await.unwrap().unwrap();
    n
}

async fn claim(store: &Datastore, task: &TaskId, start: u64, duration: u64, now: i64) {
    store
        .claim_release(task, start, duration, now, |_| {
            Ok::<_, ()>(ClaimDecision::Claim {
                noisy_report_count: None,
                withheld: false,
                mechanism: "none".into(),
                cost: Rational::zero(),
                budget_spent_after: Rational::zero(),
            })
        })
        .await
        .unwrap()
        .unwrap();
}

/// Runs every pending aggregation job to completion.
async fn run_jobs(store: &Datastore, now: i64) -> u64 {
    let policy = gc_config().lease;
    store.create_jobs(3, 10_000, now).await.unwrap();
    let mut done = 0;
    while let Some(job) = store.claim_job("test", now, &policy).await.unwrap() {
        assert!(store
            .complete_job(job.job_id, &job.lease, b"partial", now)
            .await
            .unwrap());
        done += 1;
    }
    done
}

async fn collection_suite(store: Datastore, other: Datastore, pk: &[u8]) {
    let a = task_record(pk, 1);
    let b = task_record(pk, 2);
    store.put_task(&a).await.unwrap();
    store.put_task(&b).await.unwrap();
    let (ta, tb) = (a.task_id, b.task_id);
    let now = T0 + 8 * DAY;
    let nowi = now as i64;

    // Task A:
    // released:   [T0 + 2d, +120): 7 reports in two buckets, 6 of them in jobs;
    let released = T0 + 2 * DAY;
    // unreleased: T0 + 3d, 4 reports (kept);
    let unreleased = T0 + 3 * DAY;
    // pending:    [T0 + 12h, +60), expired but claimed, release not finished
    //             (kept: its aggregate is being computed);
    let pending = T0 + DAY / 2;
    // expired:    time 0 and T0, 5 reports never released (deleted).
    let mut n = 0u32;
    let mut batch = Vec::new();
    for (time, count) in [
        (released, 3),
        (released + 60, 3),
        (unreleased, 4),
        (pending, 3),
        (0, 2),
        (T0, 3),
    ] {
        for _ in 0..count {
            n += 1;
            batch.push(report(&ta, n, time));
        }
    }
    // Task B: expired reports of its own, and a recent one.
    for (i, time) in [(1u32, T0), (2, T0 + 60), (3, now - 60)] {
        batch.push(report(&tb, 1000 + i, time));
    }
    assert!(store
        .insert_reports(&batch)
        .await
        .unwrap()
        .iter()
        .all(|o| *o == InsertOutcome::Stored));
    let jobs = run_jobs(&store, nowi).await;
    assert!(jobs >= 6, "{jobs} jobs");
    // One more released report in no job.
    let loose = report(&ta, 500, released + 60);
    store
        .insert_reports(std::slice::from_ref(&loose))
        .await
        .unwrap();
    claim(&store, &ta, released, 120, nowi).await;
    store
        .finish_release(&ta, released, b"aggregate", nowi)
        .await
        .unwrap();
    claim(&store, &ta, pending, 60, nowi).await;
    let (before_a, _) = store.report_counts(&ta).await.unwrap();
    assert_eq!(before_a, 19);
    let (_, _, jobs_done_before) = store.job_counts().await.unwrap();

    let collector = Collector::new(store.clone());
    let config = gc_config();
    let GcOutcome::Done(first) = collector.run_once(now, &config).await.unwrap() else {
        panic!("the first run did not run");
    };
    // A: 7 released + 5 expired; B: 2 expired.
    assert_eq!(first.reports, 7 + 5 + 2, "{first:?}");
    let (after_a, _) = store.report_counts(&ta).await.unwrap();
    assert_eq!(after_a, 4 + 3, "unreleased and pending reports stay");
    assert_eq!(store.report_counts(&tb).await.unwrap().0, 1);
    let (_, _, jobs_done_after) = store.job_counts().await.unwrap();
    assert_eq!(jobs_done_before - jobs_done_after, first.jobs);
    // Jobs (one per bucket of up to 3 reports): the two released buckets',
    // A's two expired buckets' (0 and T0), B's two expired buckets'.
    assert_eq!(first.jobs, 2 + 2 + 2, "{first:?}");
    // The pending release still reads its whole batch; the unreleased one
    // is intact.
    assert_eq!(batch_reports(&store, &ta, pending, 60).await, 3);
    assert_eq!(batch_reports(&store, &ta, unreleased, 60).await, 4);
    assert_eq!(batch_reports(&store, &ta, released, 120).await, 0);

    // Releases (the audit log) and their aggregates stay.
    let log = store.list_releases(&ta).await.unwrap();
    assert_eq!(log.len(), 2);
    let kept = store
        .claim_release(&ta, released, 120, nowi, |_| {
            Ok::<_, ()>(ClaimDecision::UseExisting)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.report_count, 7);
    assert_eq!(kept.aggregate.as_deref(), Some(&b"aggregate"[..]));

    // A replay of a deleted report of the released batch is still refused,
    // not stored again.
    assert_eq!(
        store.insert_reports(&[loose]).await.unwrap(),
        vec![InsertOutcome::IntervalReleased]
    );
    assert_eq!(store.report_counts(&ta).await.unwrap().0, 7);

    // The next run is not due yet; once it is, it deletes nothing.
    assert_eq!(
        collector.run_once(now + 60, &config).await.unwrap(),
        GcOutcome::SkippedLease
    );
    assert_eq!(
        collector.run_once(now + 301, &config).await.unwrap(),
        GcOutcome::Done(GcReport::default())
    );

    // Two collectors on two handles at once: one runs, the other skips.
    let second = Collector::new(other.clone());
    let t = now + 700;
    let (x, y) = tokio::join!(collector.run_once(t, &config), second.run_once(t, &config));
    let mut outcomes = [x.unwrap(), y.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, GcOutcome::SkippedLease));
    assert_eq!(
        outcomes,
        [
            GcOutcome::Done(GcReport::default()),
            GcOutcome::SkippedLease
        ]
    );

    // A collector that died holding the lease: the others skip until the
    // lease expires, then one takes over and finishes the work.
    let t = t + 301;
    let held = other
        .acquire_gc_lease(t as i64, &config.lease)
        .await
        .unwrap();
    assert!(held.is_some());
    // The pending release is finished meanwhile: its interval is now
    // collectable, and is collected by the one that takes over.
    store
        .finish_release(&ta, pending, b"aggregate", t as i64)
        .await
        .unwrap();
    assert_eq!(
        collector.run_once(t + 10, &config).await.unwrap(),
        GcOutcome::SkippedLease
    );
    let GcOutcome::Done(late) = collector.run_once(t + 601, &config).await.unwrap() else {
        panic!("the lease of a dead collector was not taken over");
    };
    assert_eq!(late.reports, 3, "{late:?}");
    assert_eq!(store.report_counts(&ta).await.unwrap().0, 4);
    assert_eq!(store.list_releases(&ta).await.unwrap().len(), 2);
}

/// Reports older than the task's expiry age are refused with their own
/// error, before anything else is checked; the age is the task's own, or
/// the server's default.
async fn expiry_suite(store: Datastore, pk: &[u8]) {
    let now = T0 + 30 * DAY + 17;
    let clock = MockClock::new(now);
    let (aggregator, _writer) = Aggregator::new(store.clone(), [0; 32], Arc::new(clock));
    let aggregator = aggregator.with_default_report_expiry_age(2 * DAY);
    let new_task = |age: Option<u64>, min: u64| NewTask {
        public_key: pk.to_vec(),
        measurement: Measurement::Count,
        min_batch_size: min,
        max_batch_size: Some(1000),
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        input_proofs: false,
        relation: Relation::ReplaceOne,
        report_expiry_age: age,
        trustee_noise: None,
    };
    let (task, _) = aggregator
        .create_task(new_task(Some(3600), 1))
        .await
        .unwrap();
    assert_eq!(task.report_expiry_age, 3600);
    let stored = store.get_task(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.report_expiry_age, 3600);
    let (default, _) = aggregator.create_task(new_task(None, 2)).await.unwrap();
    assert_eq!(default.report_expiry_age, 2 * DAY);
    // Shorter than the time precision: a fresh report could be refused.
    assert!(matches!(
        aggregator.create_task(new_task(Some(30), 3)).await,
        Err(Error::InvalidTask(_))
    ));

    let upload = |time: u64, n: u8| {
        Report {
            id: ReportId([n; 16]),
            time,
            // Never looked at: the time is checked first.
            payload: vec![1, 2, 3],
        }
        .to_bytes()
    };
    let oldest = (now - 3600) / 60 * 60;
    for (time, n) in [(0, 1), (oldest - 60, 2), (T0, 3)] {
        match aggregator.upload(task.clone(), upload(time, n)).await {
            Err(Error::ReportExpired {
                time: t,
                age,
                oldest: o,
            }) => {
                assert_eq!((t, age, o), (time, 3600, oldest));
            }
            other => panic!("a report of time {time} got {other:?}"),
        }
    }
    // The oldest time accepted gets past the time checks (to the payload
    // check, which this payload fails).
    for time in [oldest, now / 60 * 60] {
        let result = aggregator.upload(task.clone(), upload(time, 9)).await;
        assert!(
            !matches!(result, Err(Error::ReportExpired { .. }) | Ok(_)),
            "{result:?}"
        );
    }
    // The default task's age is two days.
    let result = aggregator
        .upload(default.clone(), upload(now / 60 * 60 - DAY, 4))
        .await;
    assert!(
        !matches!(result, Err(Error::ReportExpired { .. })),
        "{result:?}"
    );
    let result = aggregator
        .upload(default.clone(), upload(now / 60 * 60 - 3 * DAY, 5))
        .await;
    assert!(
        matches!(result, Err(Error::ReportExpired { .. })),
        "{result:?}"
    );
}

async fn sqlite(dir: &std::path::Path) -> Datastore {
    Datastore::open(&StoreConfig::Sqlite {
        data_dir: dir.to_path_buf(),
    })
    .await
    .unwrap()
}

async fn postgres(url: &str) -> Datastore {
    Datastore::open(&StoreConfig::Postgres {
        url: url.to_string(),
        max_connections: 4,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_garbage_collection() {
    let pk = public_key();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let other = sqlite(dir.path()).await;
    collection_suite(store, other, &pk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_garbage_collection() {
    let pk = public_key();
    let url = hetally_tests::postgres_database("server gc suite");
    let store = postgres(&url).await;
    let other = postgres(&url).await;
    collection_suite(store, other, &pk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_report_expiry() {
    let pk = public_key();
    let dir = tempfile::tempdir().unwrap();
    expiry_suite(sqlite(dir.path()).await, &pk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_report_expiry() {
    let pk = public_key();
    let url = hetally_tests::postgres_database("server report expiry");
    expiry_suite(postgres(&url).await, &pk).await;
}

/// DAP leader: after a collection finishes, a run deletes the interval's
/// reports (with their shares), its finished aggregation job and its
/// bucket, and the expired interval's, and keeps the collection job, the
/// reports still to aggregate and their buckets; a replay of a deleted
/// report of the collected interval is still refused.
async fn dap_leader_suite(store: Datastore) {
    use hetally_dap::hpke::{encode_config, generate_keypair};
    use hetally_dap::messages::TaskId as DapTaskId;
    use hetally_dap::prio::field::Field64;
    use hetally_dap::prio::vdaf::prio3::Prio3Count;
    use hetally_dap::prio::vdaf::OutputShare;
    use hetally_server::dap::aggregation::checksum_add;
    use hetally_server::dap::leader::{commit_job, DriverConfig};
    use hetally_server::dap::task::{DapTask, DapTaskRequest};
    use hetally_server::dap::DapState;
    use hetally_server::datastore::dap::{
        CollectionJobRow, CollectionState, StoredReport, UploadOutcome,
    };
    use std::collections::BTreeMap;

    let now = T0 + 8 * DAY;
    let clock = MockClock::new(now);
    let (state, _writer) = DapState::new(
        &store,
        [0; 32],
        Arc::new(clock.clone()),
        DriverConfig::default(),
        Arc::new(hetally_server::datastore::crypter::Crypter::ephemeral()),
    )
    .unwrap();
    let collector = generate_keypair(1).unwrap();
    let request: DapTaskRequest = serde_json::from_value(serde_json::json!({
        "task_id": DapTaskId::from([5u8; 32]).to_string(),
        "role": "leader",
        "vdaf": "prio3count",
        "min_batch_size": 1,
        "time_precision": 60,
        "peer_url": "http://127.0.0.1:9/dap/",
        "aggregator_auth_token": "aggregator-token",
        "collector_auth_token": "collector-token",
        "collector_hpke_config": encode_config(collector.config()),
        "vdaf_verify_key": "AAAAAAAAAAAAAAAAAAAAAA",
    }))
    .unwrap();
    let (task, row) = DapTask::provision(&request).unwrap();
    let mut tx = state.store().begin().await.unwrap();
    assert!(tx.put_task(&row, now).await.unwrap());
    tx.commit().await.unwrap();
    let task = state.task(&task.task_id).await.unwrap();
    let id = task.task_id;
    let stored = |n: u8, time: u64| {
        (
            id,
            StoredReport {
                report_id: [n; 16],
                time,
                public_share: Vec::new(),
                leader_input_share: vec![n],
                helper_encrypted: vec![n],
            },
        )
    };
    // Cutoff: T0 + 1 day. Expired: 3 reports at T0 (aggregated), then one
    // more never aggregated; collected: 12 at T0 + 2d; recent: 2 at T0 + 3d.
    let expired = T0;
    let collected = T0 + 2 * DAY;
    let recent = T0 + 3 * DAY;
    let mut first: Vec<_> = (0..3).map(|n| stored(n, expired)).collect();
    first.extend((10..22).map(|n| stored(n, collected)));
    assert!(state
        .store()
        .insert_reports(&first)
        .await
        .unwrap()
        .iter()
        .all(|o| *o == UploadOutcome::Stored));
    let mut tx = state.store().begin().await.unwrap();
    assert_eq!(tx.create_job(&id, &[1; 16], 3, now).await.unwrap(), 3);
    assert_eq!(tx.create_job(&id, &[2; 16], 100, now).await.unwrap(), 12);
    tx.commit().await.unwrap();
    let vdaf = Prio3Count::new_count(2).unwrap();
    let policy = DriverConfig::default().aggregation;
    for _ in 0..2 {
        let mut tx = state.store().begin().await.unwrap();
        let job = tx.lease_job(now, &policy).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        let (time, ids) = if job.job_id == [1; 16] {
            (expired, 0u8..3)
        } else {
            (collected, 10u8..22)
        };
        let mut checksum = [0u8; 32];
        let outs = ids
            .map(|n| {
                checksum_add(&mut checksum, &[n; 16]);
                OutputShare::from(vec![Field64::from(1u64)])
            })
            .collect();
        let shares = BTreeMap::from([(task.bucket_of(time), (outs, checksum))]);
        assert!(commit_job(&state, &task, &vdaf, &job, shares)
            .await
            .unwrap());
    }
    let later = [
        stored(30, expired + 60),
        stored(31, recent),
        stored(32, recent),
    ];
    state.store().insert_reports(&later).await.unwrap();
    // The collected interval's job is finished.
    let job = CollectionJobRow {
        task_id: id,
        collection_job_id: [7; 16],
        batch_start: collected,
        batch_duration: 60,
        aggregation_param: Vec::new(),
        state: CollectionState::Start,
        report_count: None,
        leader_share: None,
        helper_share: None,
        failure: None,
    };
    let mut tx = state.store().begin().await.unwrap();
    tx.put_collection_job(&job, now).await.unwrap();
    tx.commit().await.unwrap();
    let bucket_count = |start: u64| {
        let store = state.store().clone();
        async move {
            store
                .buckets(&id, start, start + 60)
                .await
                .unwrap()
                .iter()
                .map(|b| b.report_count)
                .sum::<u64>()
        }
    };
    assert_eq!(bucket_count(collected).await, 12);
    assert_eq!(bucket_count(expired).await, 3);

    let gc = Collector::new(store.clone()).with_dap(state.store().clone());
    let config = gc_config();
    // While the collection job is not finished, its interval is held.
    let GcOutcome::Done(held) = gc.run_once(now, &config).await.unwrap() else {
        panic!("no run");
    };
    assert_eq!(
        (held.dap_reports, held.dap_jobs, held.dap_buckets),
        (4, 1, 1),
        "only the expired interval: {held:?}"
    );
    assert_eq!(bucket_count(collected).await, 12);
    assert_eq!(bucket_count(expired).await, 0);
    assert_eq!(
        state
            .store()
            .job_reports(&id, &[2; 16])
            .await
            .unwrap()
            .len(),
        12
    );

    let finished = CollectionJobRow {
        state: CollectionState::Finished,
        report_count: Some(12),
        leader_share: Some(vec![1, 2, 3]),
        helper_share: Some(vec![4, 5, 6]),
        ..job
    };
    let mut tx = state.store().begin().await.unwrap();
    tx.update_collection_job(&finished).await.unwrap();
    tx.commit().await.unwrap();
    let GcOutcome::Done(done) = gc.run_once(now + 301, &config).await.unwrap() else {
        panic!("no run");
    };
    assert_eq!(
        (done.dap_reports, done.dap_jobs, done.dap_buckets),
        (12, 1, 1),
        "{done:?}"
    );
    assert!(state
        .store()
        .job_reports(&id, &[2; 16])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(bucket_count(collected).await, 0);
    // Kept: the recent reports (still to aggregate) and the collection job
    // with its shares.
    assert_eq!(
        state
            .store()
            .unaggregated_reports(&id, recent, recent + 60)
            .await
            .unwrap(),
        2
    );
    let kept = state
        .store()
        .collection_job(&id, &[7; 16])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, CollectionState::Finished);
    assert_eq!(kept.leader_share.as_deref(), Some(&[1u8, 2, 3][..]));
    // Replays of deleted reports are refused, not stored again.
    assert_eq!(
        state
            .store()
            .insert_reports(&[stored(15, collected)])
            .await
            .unwrap(),
        vec![UploadOutcome::Collected]
    );
    // A second run deletes nothing.
    assert_eq!(
        gc.run_once(now + 602, &config).await.unwrap(),
        GcOutcome::Done(GcReport::default())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dap_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    dap_leader_suite(sqlite(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dap_garbage_collection() {
    let url = hetally_tests::postgres_database("server dap gc suite");
    dap_leader_suite(postgres(&url).await).await;
}

/// DAP helper: a run deletes the replay records and buckets of the
/// interval it handed out an aggregate share for and of expired
/// intervals, and its stored aggregation-job answers older than the
/// cutoff; it keeps the aggregate share, the recent records, buckets and
/// answers.
async fn dap_helper_suite(store: Datastore) {
    use hetally_dap::hpke::{encode_config, generate_keypair};
    use hetally_dap::messages::TaskId as DapTaskId;
    use hetally_server::dap::leader::DriverConfig;
    use hetally_server::dap::task::{DapTask, DapTaskRequest};
    use hetally_server::dap::DapState;
    use hetally_server::datastore::dap::{AggregateShareRow, BucketAggregate};

    let now = T0 + 8 * DAY;
    let (state, _writer) = DapState::new(
        &store,
        [0; 32],
        Arc::new(MockClock::new(now)),
        DriverConfig::default(),
        Arc::new(hetally_server::datastore::crypter::Crypter::ephemeral()),
    )
    .unwrap();
    let collector = generate_keypair(1).unwrap();
    let request: DapTaskRequest = serde_json::from_value(serde_json::json!({
        "task_id": DapTaskId::from([6u8; 32]).to_string(),
        "role": "helper",
        "vdaf": "prio3count",
        "min_batch_size": 1,
        "time_precision": 60,
        "peer_url": "http://127.0.0.1:9/dap/",
        "aggregator_auth_token": "aggregator-token",
        "collector_hpke_config": encode_config(collector.config()),
        "vdaf_verify_key": "AAAAAAAAAAAAAAAAAAAAAA",
    }))
    .unwrap();
    let (task, row) = DapTask::provision(&request).unwrap();
    let id = task.task_id;
    let (expired, collected, recent) = (T0, T0 + 2 * DAY, T0 + 3 * DAY);
    let mut tx = state.store().begin().await.unwrap();
    assert!(tx.put_task(&row, now).await.unwrap());
    let mut n = 0u8;
    for (time, count) in [(expired, 2), (collected, 3), (recent, 4)] {
        for _ in 0..count {
            n += 1;
            assert!(tx.insert_helper_report(&id, &[n; 16], time).await.unwrap());
        }
        let bucket = BucketAggregate {
            bucket_start: time,
            share: vec![1],
            report_count: count,
            checksum: [0; 32],
        };
        tx.put_bucket(&id, &bucket).await.unwrap();
    }
    // Answers to the leader's aggregation jobs: one old, one recent.
    tx.put_helper_job(&id, &[1; 16], 2, b"hash", b"old answer", expired)
        .await
        .unwrap();
    tx.put_helper_job(&id, &[2; 16], 4, b"hash", b"recent answer", recent)
        .await
        .unwrap();
    let share = AggregateShareRow {
        report_count: 3,
        checksum: [0; 32],
        encrypted_share: vec![7, 7],
    };
    tx.put_aggregate_share(&id, collected, 60, &[], &share, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let gc = Collector::new(store.clone()).with_dap(state.store().clone());
    let config = gc_config();
    let GcOutcome::Done(done) = gc.run_once(now, &config).await.unwrap() else {
        panic!("no run");
    };
    assert_eq!(
        (done.dap_reports, done.dap_jobs, done.dap_buckets),
        (2 + 3, 1, 2),
        "{done:?}"
    );
    let mut tx = state.store().begin().await.unwrap();
    let buckets: Vec<u64> = tx
        .buckets(&id, 0, now)
        .await
        .unwrap()
        .iter()
        .map(|b| b.bucket_start)
        .collect();
    assert_eq!(buckets, vec![recent]);
    assert!(tx.helper_job(&id, &[1; 16]).await.unwrap().is_none());
    assert!(tx.helper_job(&id, &[2; 16]).await.unwrap().is_some());
    let kept = tx
        .aggregate_share(&id, collected, 60)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.encrypted_share, vec![7, 7]);
    // The recent replay records are kept (a replay is still seen); the
    // collected interval's are gone (its replays are refused because the
    // interval is collected, the expired ones' because they are too old).
    assert!(!tx
        .insert_helper_report(&id, &[9; 16], recent)
        .await
        .unwrap());
    assert!(tx
        .insert_helper_report(&id, &[3; 16], collected)
        .await
        .unwrap());
    drop(tx);
    assert_eq!(
        gc.run_once(now + 301, &config).await.unwrap(),
        GcOutcome::Done(GcReport::default())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dap_helper_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    dap_helper_suite(sqlite(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dap_helper_garbage_collection() {
    let url = hetally_tests::postgres_database("server dap helper gc suite");
    dap_helper_suite(postgres(&url).await).await;
}
