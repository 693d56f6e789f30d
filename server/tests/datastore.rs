//! One datastore test suite, run against SQLite and PostgreSQL: the same
//! behaviour on both stores, down to lease expiry and the exactly-once
//! partition of a batch between job partial sums and loose reports.

use std::collections::BTreeSet;

use hetally_protocol::dp::Rational;
use hetally_protocol::{ReportId, TaskId};
use hetally_server::datastore::{
    BatchChunk, ClaimDecision, ContributionOutcome, Datastore, InsertOutcome, NewContribution,
    NewReport, ReleaseState, StoreConfig, StoreError, TaskRecord,
};
use hetally_server::lease::LeasePolicy;
use tokio::sync::mpsc;

fn task(n: u8) -> TaskRecord {
    TaskRecord {
        task_id: TaskId([n; 32]),
        // The store treats the definition as opaque bytes.
        definition: vec![n; 40],
        collector_token_hash: [n.wrapping_add(1); 32],
        budget_spent: Rational::zero(),
        created_at: 1_700_000_000,
        crs: None,
        report_expiry_age: 7 * 24 * 3600,
        trustee_token_hashes: None,
    }
}

fn report(task: &TaskRecord, i: u32, time: u64) -> NewReport {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&i.to_be_bytes());
    NewReport {
        task_id: task.task_id,
        report_id: ReportId(id),
        time,
        payload: i.to_be_bytes().to_vec(),
    }
}

async fn read_all(
    store: &Datastore,
    t: &TaskRecord,
    start: u64,
    duration: u64,
) -> (u64, BTreeSet<Vec<u8>>, u64) {
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let store = store.clone();
        let id = t.task_id;
        tokio::spawn(async move { store.read_batch(&id, start, duration, 7, tx).await })
    };
    let (mut in_partials, mut loose, mut loose_count) = (0, BTreeSet::new(), 0);
    while let Some(chunk) = rx.recv().await {
        match chunk {
            BatchChunk::Partials(p) => in_partials += p.iter().map(|(n, _)| n).sum::<u64>(),
            BatchChunk::Payloads(p) => {
                loose_count += p.len() as u64;
                loose.extend(p);
            }
        }
    }
    reader.await.unwrap().unwrap();
    (in_partials, loose, loose_count)
}

async fn suite(store: Datastore) {
    // Tasks.
    let a = task(1);
    store.put_task(&a).await.unwrap();
    assert!(matches!(
        store.put_task(&a).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_task(&a.task_id)
            .await
            .unwrap()
            .unwrap()
            .definition,
        a.definition
    );
    assert!(store.get_task(&TaskId([9; 32])).await.unwrap().is_none());
    // A task whose trustees draw its noise keeps their token hashes.
    let trustees = TaskRecord {
        trustee_token_hashes: Some(vec![[11; 32], [12; 32], [13; 32]]),
        ..task(3)
    };
    store.put_task(&trustees).await.unwrap();
    assert_eq!(
        store
            .get_task(&trustees.task_id)
            .await
            .unwrap()
            .unwrap()
            .trustee_token_hashes,
        trustees.trustee_token_hashes
    );
    let b = task(2);
    store.put_task(&b).await.unwrap();
    assert_eq!(store.list_tasks().await.unwrap().len(), 3);

    // Reports: duplicates within and across batches.
    let batch: Vec<NewReport> = (0..30)
        .map(|i| report(&a, i, 600 + 60 * u64::from(i % 3)))
        .collect();
    let mut with_dup = batch.clone();
    with_dup.push(report(&a, 0, 600));
    let outcomes = store.insert_reports(&with_dup).await.unwrap();
    assert!(outcomes[..30].iter().all(|o| *o == InsertOutcome::Stored));
    assert_eq!(outcomes[30], InsertOutcome::Duplicate);
    assert_eq!(
        store.insert_reports(&batch[..1]).await.unwrap(),
        vec![InsertOutcome::Duplicate]
    );
    // The same report id in another task is a different report.
    assert_eq!(
        store.insert_reports(&[report(&b, 0, 600)]).await.unwrap(),
        vec![InsertOutcome::Stored]
    );
    assert_eq!(store.report_counts(&a.task_id).await.unwrap(), (30, 30));

    // Jobs: grouped by bucket, at most 4 reports each.
    let made = store.create_jobs(4, 1000, 1).await.unwrap();
    // Task a: three buckets of 10 reports -> 3 x ceil(10/4) jobs; task b: 1.
    assert_eq!(made, 3 * 3 + 1);
    assert_eq!(
        store.create_jobs(4, 1000, 1).await.unwrap(),
        0,
        "every report is in a job"
    );
    let policy = LeasePolicy {
        lease_secs: 10,
        backoff_base_secs: 5,
        backoff_cap_secs: 60,
        max_attempts: None,
    };
    let first = store.claim_job("A", 100, &policy).await.unwrap().unwrap();
    let second = store.claim_job("B", 100, &policy).await.unwrap().unwrap();
    assert_ne!(
        first.job_id, second.job_id,
        "a leased job is not handed out again"
    );
    assert_eq!(first.lease.attempts, 1);
    // A failed job waits out its backoff (5 s after its first failure)
    // before it is offered again.
    assert!(store
        .fail_job(second.job_id, &second.lease, 100, &policy)
        .await
        .unwrap());
    // Lease expiry: at t = 111, A's lease (until 110) has lapsed and B
    // takes the job over; A's late completion is refused, even though A
    // comes back with the token it was given.
    let mut taken_over = None;
    let mut retried = None;
    while let Some(lease) = store.claim_job("B", 111, &policy).await.unwrap() {
        if lease.job_id == first.job_id {
            taken_over = Some(lease);
            continue;
        }
        if lease.job_id == second.job_id {
            assert_eq!(lease.lease.attempts, 2);
            retried = Some(lease.clone());
        }
        let payloads = store.job_payloads(lease.job_id).await.unwrap();
        assert_eq!(payloads.len() as u64, lease.report_count);
        assert!(store
            .complete_job(lease.job_id, &lease.lease, b"sum", 111)
            .await
            .unwrap());
    }
    assert!(
        retried.is_some(),
        "the failed job is offered after its backoff"
    );
    let taken_over = taken_over.expect("the expired job is offered again");
    assert_eq!(taken_over.lease.attempts, 2);
    assert!(!store
        .complete_job(first.job_id, &first.lease, b"late", 112)
        .await
        .unwrap());
    assert!(store
        .complete_job(taken_over.job_id, &taken_over.lease, b"sum", 112)
        .await
        .unwrap());
    // Once done, a stale holder cannot fail the job back either.
    assert!(!store
        .fail_job(first.job_id, &first.lease, 113, &policy)
        .await
        .unwrap());
    let (pending, running, done) = store.job_counts().await.unwrap();
    assert_eq!(pending + running + done, made);

    // Releases. A refused claim changes nothing.
    let refused: Result<_, &str> = store
        .claim_release(&a.task_id, 600, 120, 5, |facts| {
            assert_eq!(facts.report_count, 20);
            assert!(facts.same_interval.is_none() && facts.overlapping.is_empty());
            Err("no")
        })
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), "no");
    assert!(store.list_releases(&a.task_id).await.unwrap().is_empty());
    let claimed = store
        .claim_release(&a.task_id, 600, 120, 5, |_| {
            Ok::<_, ()>(ClaimDecision::Claim {
                noisy_report_count: None,
                withheld: false,
                mechanism: "laplace:0.5".into(),
                cost: Rational::new(1, 2),
                budget_spent_after: Rational::new(1, 2),
            })
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.state, ReleaseState::Pending);
    assert_eq!(claimed.report_count, 20);
    assert_eq!(
        store
            .get_task(&a.task_id)
            .await
            .unwrap()
            .unwrap()
            .budget_spent,
        Rational::new(1, 2)
    );
    // Uploads into the claimed interval are refused, outside it accepted.
    let late = store
        .insert_reports(&[report(&a, 100, 600), report(&a, 101, 720)])
        .await
        .unwrap();
    assert_eq!(
        late,
        vec![InsertOutcome::IntervalReleased, InsertOutcome::Stored]
    );
    // Overlap facts.
    store
        .claim_release(&a.task_id, 660, 120, 6, |facts| {
            assert_eq!(facts.overlapping.len(), 1);
            Err::<ClaimDecision, _>(())
        })
        .await
        .unwrap()
        .unwrap_err();

    // The batch reads every report exactly once: in a finished job's
    // partial sum, or loose (its job unfinished).
    let (in_partials, loose, loose_count) = read_all(&store, &a, 600, 120).await;
    assert_eq!(in_partials + loose_count, 20, "each report counted once");
    assert_eq!(loose.len() as u64, loose_count, "no loose report twice");

    // A release whose trustees draw its noise (docs/threshold.md): the
    // noise-free sum is kept first come; each trustee's contribution is
    // stored once, a different one refused, and no more than needed; a
    // release that does not exist or is not pending takes none.
    let sum = store
        .put_release_sum(&a.task_id, 600, b"sum-1", 6)
        .await
        .unwrap();
    assert_eq!(sum, b"sum-1");
    let sum = store
        .put_release_sum(&a.task_id, 600, b"sum-2", 6)
        .await
        .unwrap();
    assert_eq!(sum, b"sum-1", "the first sum stays");
    let add = |start: u64, trustee: u16, bytes: &'static [u8]| {
        let store = store.clone();
        let id = a.task_id;
        async move {
            store
                .add_noise_contribution(
                    &NewContribution {
                        task_id: &id,
                        batch_start: start,
                        trustee,
                        bytes,
                        now: 6,
                    },
                    2,
                )
                .await
                .unwrap()
        }
    };
    use ContributionOutcome as C;
    assert_eq!(add(600, 2, b"two").await, C::Stored(1));
    assert_eq!(add(600, 2, b"two").await, C::AlreadyStored);
    assert_eq!(add(600, 2, b"TWO").await, C::Conflict);
    assert_eq!(add(600, 4, b"four").await, C::Stored(2));
    assert_eq!(add(600, 5, b"five").await, C::Full);
    assert_eq!(add(660, 5, b"five").await, C::NoRelease);
    assert_eq!(
        store.noise_contributions(&a.task_id, 600).await.unwrap(),
        vec![(2, b"two".to_vec()), (4, b"four".to_vec())]
    );

    // Finishing is idempotent: the first aggregate wins.
    let done = store
        .finish_release(&a.task_id, 600, b"first", 7)
        .await
        .unwrap();
    assert_eq!(done.state, ReleaseState::Done);
    let again = store
        .finish_release(&a.task_id, 600, b"second", 8)
        .await
        .unwrap();
    assert_eq!(again.aggregate.as_deref(), Some(&b"first"[..]));
    // Finishing clears the noise-free sum and the encrypted shares; the
    // audit log of who contributed stays, and a resent file is still
    // recognised.
    assert_eq!(store.release_sum(&a.task_id, 600).await.unwrap(), None);
    assert!(store
        .noise_contributions(&a.task_id, 600)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_noise_contributions(&a.task_id).await.unwrap(),
        vec![(600, 2, 6), (600, 4, 6)]
    );
    assert_eq!(add(600, 2, b"two").await, C::AlreadyStored);
    assert_eq!(add(600, 5, b"five").await, C::Full);
    let same = store
        .claim_release(&a.task_id, 600, 120, 9, |facts| {
            assert!(facts.same_interval.is_some());
            Ok::<_, ()>(ClaimDecision::UseExisting)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.aggregate.as_deref(), Some(&b"first"[..]));
    assert_eq!(store.report_counts(&a.task_id).await.unwrap(), (31, 11));

    // A withheld release (add-remove, noisy count outside the limits):
    // recorded with its noisy count, budget spent, interval closed, and
    // returned as it is when asked again.
    let withheld = store
        .claim_release(&a.task_id, 1200, 60, 10, |facts| {
            assert_eq!(facts.report_count, 0);
            Ok::<_, ()>(ClaimDecision::Claim {
                noisy_report_count: Some(-3),
                withheld: true,
                mechanism: "laplace:0.5".into(),
                cost: Rational::new(1, 2),
                budget_spent_after: Rational::new(1, 1),
            })
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(withheld.state, ReleaseState::Withheld);
    assert_eq!(withheld.noisy_report_count, Some(-3));
    let again = store
        .claim_release(&a.task_id, 1200, 60, 11, |_| {
            Ok::<_, ()>(ClaimDecision::UseExisting)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, ReleaseState::Withheld);
    assert_eq!(again.noisy_report_count, Some(-3));
    assert_eq!(again.aggregate, None);
    assert_eq!(
        store
            .insert_reports(&[report(&a, 200, 1230)])
            .await
            .unwrap(),
        vec![InsertOutcome::IntervalReleased]
    );
    let log = store.list_releases(&a.task_id).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].state, ReleaseState::Withheld);
    assert_eq!(log[0].noisy_report_count, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Datastore::open(&StoreConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    suite(store).await;
}

/// The data directory and the database (with its WAL) are created
/// owner-only: they hold every report and the tasks' secrets.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("new").join("data");
    let store = Datastore::open(&StoreConfig::Sqlite {
        data_dir: data_dir.clone(),
    })
    .await
    .unwrap();
    store.put_task(&task(1)).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700, "data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    // The database and its WAL (and shared-memory index) at least.
    assert!(files >= 2, "{files} files in the data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let url = hetally_tests::postgres_database("server datastore suite");
    let store = Datastore::open(&StoreConfig::Postgres {
        url,
        max_connections: 4,
    })
    .await
    .unwrap();
    suite(store).await;
}
