//! Tasks created before relations were declared (task encodings 1 and 2,
//! `relation` absent) keep decoding and serving, and every tool states the
//! guarantee that truly holds for them: their report counts were public,
//! so replace-one holds, and their histograms were calibrated for L1
//! sensitivity 1 where replace-one needs 2, so a `laplace:1` histogram is
//! 2-DP and each release spends 2 of the budget.

use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::dp::Rational;
use hetally_schemes::TaskParams;
use hetally_server::auth::hash_token;
use hetally_server::datastore::{Datastore, StoreConfig, TaskRecord};
use hetally_tests::{keygen, now, run_ok, ServerProcess};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_tasks_keep_working_and_state_the_guarantee_that_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let params = TaskParams {
        measurement: "histogram:4".parse().unwrap(),
        min_batch_size: 1,
        max_batch_size: Some(1000),
        time_precision: 60,
        dp: "laplace:1".parse().unwrap(),
        budget: Some(Rational::from_integer(10)),
        input_proofs: true,
        relation: None,
        trustee_noise: None,
    };
    let (definition, _) = hetally_schemes::define_task(
        std::fs::read(&pk).unwrap(),
        params,
        1000,
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    assert_eq!(
        definition.to_bytes()[0],
        2,
        "the encoding builds made before"
    );
    let token = "legacy-collector-token";
    let store = Datastore::open(&StoreConfig::Sqlite {
        data_dir: data.clone(),
    })
    .await
    .unwrap();
    store
        .put_task(&TaskRecord {
            task_id: definition.id(),
            definition: definition.to_bytes(),
            collector_token_hash: hash_token(token),
            budget_spent: Rational::zero(),
            created_at: 0,
            crs: None,
            report_expiry_age: 7 * 24 * 3600,
            trustee_token_hashes: None,
        })
        .await
        .unwrap();
    drop(store);
    // SQLite in both test passes: the task was written there.
    let server = ServerProcess::start_with(&data, 0, None, &[]).unwrap();
    let task = definition.id().to_string();

    let info: Value = reqwest::get(format!("{}/tasks/{task}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["relation"], "legacy");
    let guarantee = info["guarantee"].as_str().unwrap();
    assert!(guarantee.contains("pure 2-DP"), "{guarantee}");
    assert!(guarantee.contains("predates"), "{guarantee}");

    let client = hetally_tests::connect_client(&server, &task).await;
    let now = now();
    let base = now - now % 60 - 120;
    for bucket in [0u64, 1, 1] {
        let values: Vec<u64> = (0..4).map(|i| u64::from(i == bucket)).collect();
        let report = client.prepare(&values, base).unwrap();
        client.upload(&report).await.unwrap();
    }
    let response = reqwest::Client::new()
        .post(format!("{}/tasks/{task}/releases", server.url))
        .bearer_auth(token)
        .json(&json!({ "start": base, "duration": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["hetally-report-count"], "3");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes[4], 1, "a version-1 aggregate file, as before");
    let file = AggregateFile::from_bytes(&bytes).unwrap();
    assert_eq!(file.relation, None);
    assert_eq!(file.report_count, ReportCount::Exact(3));

    // The release spent what holds: 2, not the stated 1.
    let status: Value = reqwest::Client::new()
        .get(format!("{}/tasks/{task}/status", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["reports"], 3);
    assert_eq!(status["budget"]["spent"], "2");

    // The collector's tool says the same.
    let path = dir.path().join("legacy.htly");
    std::fs::write(&path, &bytes).unwrap();
    let table = run_ok(
        "hetally-keytool",
        &[
            "decrypt",
            "--key",
            &sk.display().to_string(),
            &path.display().to_string(),
        ],
    );
    assert!(table.contains("Relation     none declared"), "{table}");
    assert!(table.contains("pure 2-DP per release"), "{table}");
    assert!(table.contains("scale 1 on each value"), "{table}");
}
