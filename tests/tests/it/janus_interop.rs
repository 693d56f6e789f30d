//! DAP-09 with the published janus crates: two real `hetally-server`
//! processes (leader and helper) on loopback, the unmodified `janus_client`
//! 0.7 uploading and the unmodified `janus_collector` 0.7 collecting.
//!
//! * `janus_interop_*`: 1,000 reports per VDAF, results equal to the truth;
//! * `dap_dp_*`: noise of both aggregators, statistics and negative counts;
//! * `dap_bad_input_*`: each refusal carries its DAP-09 problem type.

use std::time::Duration;

use hetally_client::dap::{self as dap_client, DapTaskConfig};
use hetally_dap::hpke::CollectorCredential;
use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_dap::messages::query_type::TimeInterval;
use hetally_dap::messages::{
    AggregateShareReq, BatchSelector, CollectionReq, Duration as DapDuration, HpkeConfig,
    HpkeConfigList, InputShareAad, Interval, PlaintextInputShare, Query, Report, ReportId,
    ReportIdChecksum, ReportMetadata, Role, TaskId, Time,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::prio::vdaf::prio3::{Prio3Count, Prio3Histogram, Prio3Sum, Prio3SumVec};
use hetally_dap::prio::vdaf::{self, Client as _};
use hetally_dap::vdaf::{DpStrategy, VdafSpec};
use hetally_tests::*;
use janus_collector::{Collector, PrivateCollectorCredential};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use url::Url;

const PRECISION: u64 = 60;

/// A leader and a helper, each a `hetally-server` process with its own
/// store (SQLite, or PostgreSQL with HETALLY_TEST_STORE=postgres).
struct Pair {
    _dir: tempfile::TempDir,
    leader: ServerProcess,
    helper: ServerProcess,
    credential: CollectorCredential,
    task_id: String,
    aggregator_token: String,
    spec: VdafSpec,
    http: reqwest::Client,
}

impl Pair {
    fn leader_dap(&self) -> Url {
        Url::parse(&format!("{}/dap/", self.leader.url)).unwrap()
    }
    fn helper_dap(&self) -> Url {
        Url::parse(&format!("{}/dap/", self.helper.url)).unwrap()
    }
    fn task(&self) -> TaskId {
        self.task_id.parse().unwrap()
    }
    /// The unmodified `janus_collector`, its credential read by janus's own
    /// `PrivateCollectorCredential` parser from the JSON hetally writes.
    fn collector<V: vdaf::Collector>(&self, vdaf: V) -> Collector<V> {
        let credential: PrivateCollectorCredential =
            serde_json::from_str(&self.credential.to_json()).unwrap();
        Collector::builder(
            self.task(),
            self.leader_dap(),
            credential.authentication_token(),
            credential.hpke_keypair(),
            vdaf,
        )
        .with_collect_poll_backoff(dap_client::poll_backoff(Duration::from_secs(180)))
        .build()
        .unwrap()
    }
    fn url(&self, server: &ServerProcess, path: &str) -> String {
        format!("{}/dap/{}", server.url, path.trim_start_matches('/'))
    }
}

async fn pair(vdaf: &str, dp: &str, min_batch: u64) -> Pair {
    pair_with(vdaf, dp, min_batch, &[]).await
}

/// [`pair`] with extra flags for the leader.
async fn pair_with(vdaf: &str, dp: &str, min_batch: u64, leader_args: &[&str]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = dir.path().join("leader");
    let database = hetally_tests::use_postgres()
        .then(|| hetally_tests::postgres_database(&leader_dir.display().to_string()));
    let leader =
        ServerProcess::start_with(&leader_dir, 0, database.as_deref(), leader_args).unwrap();
    let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
    let credential = CollectorCredential::generate(1, "collector-token-0123456789".into()).unwrap();
    let spec: VdafSpec = vdaf.parse().unwrap();
    let http = reqwest::Client::new();
    let config = DapTaskConfig {
        leader: dap_client::endpoint(&format!("{}/dap", leader.url)).unwrap(),
        helper: dap_client::endpoint(&format!("{}/dap", helper.url)).unwrap(),
        vdaf: spec,
        dp: dp.parse::<DpStrategy>().unwrap(),
        min_batch_size: min_batch,
        time_precision: PRECISION,
        collector_hpke_config: credential.hpke_config().unwrap(),
        collector_token: credential.token.clone(),
    };
    let token = |s: &ServerProcess| {
        std::fs::read_to_string(s.admin_token_file())
            .unwrap()
            .trim()
            .to_string()
    };
    let secrets = dap_client::TaskSecrets::random();
    let task =
        dap_client::provision_with(&http, &config, &token(&leader), &token(&helper), &secrets)
            .await
            .unwrap();
    Pair {
        _dir: dir,
        leader,
        helper,
        credential,
        task_id: task.task_id,
        aggregator_token: secrets.aggregator_token,
        spec,
        http,
    }
}

/// An interval that holds every report of the test: from ten minutes
/// before now to twenty minutes after, aligned to the precision.
fn test_interval() -> Interval {
    let start = now() / PRECISION * PRECISION - 10 * PRECISION;
    Interval::new(
        Time::from_seconds_since_epoch(start),
        DapDuration::from_seconds(30 * PRECISION),
    )
    .unwrap()
}

/// Uploads with the unmodified `janus_client`, eight clients in parallel.
async fn upload_all<V>(p: &Pair, vdaf: V, measurements: Vec<V::Measurement>)
where
    V: vdaf::Client<16> + Clone + Send + Sync + 'static,
    V::Measurement: Send + Sync + 'static,
{
    let lanes = 8;
    let mut clients = Vec::new();
    for _ in 0..lanes {
        clients.push(
            janus_client::Client::new(
                p.task(),
                p.leader_dap(),
                p.helper_dap(),
                DapDuration::from_seconds(PRECISION),
                vdaf.clone(),
            )
            .await
            .unwrap(),
        );
    }
    let mut per: Vec<Vec<V::Measurement>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, m) in measurements.into_iter().enumerate() {
        per[i % lanes].push(m);
    }
    let futs = clients.into_iter().zip(per).map(|(c, ms)| async move {
        for m in &ms {
            c.upload(m).await.unwrap();
        }
    });
    futures::future::join_all(futs).await;
}

const N: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_interop_count() {
    let p = pair("prio3count", "none", 100).await;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ms: Vec<bool> = (0..N).map(|_| rng.gen()).collect();
    let truth = ms.iter().filter(|&&b| b).count() as u64;
    let vdaf = Prio3Count::new_count(2).unwrap();
    upload_all(&p, vdaf, ms).await;
    assert_eq!(collect_count(&p).await, (N as u64, truth));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_interop_sum() {
    let p = pair("prio3sum:16", "none", 100).await;
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ms: Vec<u128> = (0..N).map(|_| rng.gen_range(0..1u128 << 16)).collect();
    let truth: u128 = ms.iter().sum();
    let vdaf = Prio3Sum::new_sum(2, 16).unwrap();
    upload_all(&p, vdaf.clone(), ms).await;
    let c = p
        .collector(vdaf)
        .collect(Query::new_time_interval(test_interval()), &())
        .await
        .unwrap();
    assert_eq!(c.report_count(), N as u64);
    assert_eq!(*c.aggregate_result(), truth);
}

fn histogram_vdaf(spec: &VdafSpec) -> Prio3Histogram {
    let VdafSpec::Histogram {
        length,
        chunk_length,
    } = *spec
    else {
        panic!("not a histogram")
    };
    Prio3Histogram::new_histogram(2, length, chunk_length).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_interop_histogram() {
    let p = pair("prio3histogram:16", "none", 100).await;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ms: Vec<usize> = (0..N).map(|_| rng.gen_range(0..16)).collect();
    let mut truth = vec![0u128; 16];
    for &m in &ms {
        truth[m] += 1;
    }
    let vdaf = histogram_vdaf(&p.spec);
    upload_all(&p, vdaf.clone(), ms).await;
    let c = p
        .collector(vdaf)
        .collect(Query::new_time_interval(test_interval()), &())
        .await
        .unwrap();
    assert_eq!(c.report_count(), N as u64);
    assert_eq!(*c.aggregate_result(), truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_interop_sumvec() {
    let p = pair("prio3sumvec:8:4", "none", 100).await;
    let VdafSpec::SumVec {
        length,
        bits,
        chunk_length,
    } = p.spec
    else {
        unreachable!()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ms: Vec<Vec<u128>> = (0..N)
        .map(|_| {
            (0..length)
                .map(|_| rng.gen_range(0..1u128 << bits))
                .collect()
        })
        .collect();
    let mut truth = vec![0u128; length];
    for m in &ms {
        for (t, v) in truth.iter_mut().zip(m) {
            *t += v;
        }
    }
    let vdaf = Prio3SumVec::new_sum_vec(2, bits, length, chunk_length).unwrap();
    upload_all(&p, vdaf.clone(), ms).await;
    let c = p
        .collector(vdaf)
        .collect(Query::new_time_interval(test_interval()), &())
        .await
        .unwrap();
    assert_eq!(c.report_count(), N as u64);
    assert_eq!(*c.aggregate_result(), truth);
}

/// Variance of discrete Laplace noise of scale t: 2e^{-1/t} / (1 - e^{-1/t})^2.
fn discrete_laplace_variance(t: f64) -> f64 {
    let a = (-1.0 / t).exp();
    2.0 * a / (1.0 - a).powi(2)
}

/// Both aggregators noise their shares: each bucket of the collected
/// histogram carries the sum of two independent discrete Laplace samples of
/// scale sensitivity/epsilon (histogram sensitivity 2 under substitution),
/// so empty buckets average 0 with twice one sampler's variance, and about
/// half of them come out negative, as negative numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_dp_histogram_noise_of_both_aggregators() {
    let buckets = 2000;
    let p = pair(
        &format!("prio3histogram:{buckets}"),
        "pure-dp-discrete-laplace:1",
        50,
    )
    .await;
    let reports = 60;
    let vdaf = histogram_vdaf(&p.spec);
    upload_all(&p, vdaf.clone(), vec![0usize; reports]).await;
    let interval = test_interval();
    let got = dap_client::collect(
        &p.task_id,
        &p.leader_dap(),
        &p.spec,
        &p.credential,
        interval.start().as_seconds_since_epoch(),
        interval.duration().as_seconds(),
        dap_client::poll_backoff(Duration::from_secs(180)),
    )
    .await
    .unwrap();
    assert_eq!(got.report_count, reports as u64);
    assert_eq!(got.values.len(), buckets);
    check_two_aggregator_noise(&got.values[1..], &got.raw[1..], 2.0, p.spec.field_modulus());
    assert!(
        (got.values[0] - reports as i128).abs() < 60,
        "bucket 0: {}",
        got.values[0]
    );
}

/// Checks that `values` (collected elements whose true value is 0) carry
/// the noise of two aggregators, each discrete Laplace of scale `scale`:
/// mean 0, twice one sampler's variance (clearly more than one sampler's),
/// about half negative, reported as negative numbers while
/// `janus_collector`'s `raw` values are the field elements p - |v|.
fn check_two_aggregator_noise(values: &[i128], raw: &[u128], scale: f64, modulus: u128) {
    let noise: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let n = noise.len() as f64;
    let mean = noise.iter().sum::<f64>() / n;
    let var = noise.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let one = discrete_laplace_variance(scale);
    let expected = 2.0 * one;
    // Standard error of the sample variance: sigma^2 sqrt((kurtosis-1)/n),
    // the kurtosis of a sum of two Laplace-like variables being about 4.5.
    let se_var = expected * (3.5 / n).sqrt();
    assert!(
        (var - expected).abs() < 5.0 * se_var,
        "variance {var}, expected {expected} (two aggregators of scale {scale})"
    );
    assert!(mean.abs() < 5.0 * (expected / n).sqrt(), "mean {mean}");
    // One aggregator's noise alone would have half this variance.
    assert!(
        var > 1.5 * one,
        "variance {var} is one aggregator's ({one})"
    );
    let negative = values.iter().filter(|&&v| v < 0).count();
    assert!(negative as f64 > 0.3 * n, "{negative} negative of {n}");
    for (v, r) in values.iter().zip(raw) {
        if *v < 0 {
            assert!(*r > modulus / 2);
            assert_eq!(modulus - r, v.unsigned_abs());
        } else {
            assert_eq!(*r, *v as u128);
        }
    }
}

/// The same for a sumvec: each element carries two discrete Laplace
/// samples of scale (2^BITS - 1) * LENGTH / epsilon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_dp_sumvec_noise_of_both_aggregators() {
    let length = 2000;
    let p = pair(
        &format!("prio3sumvec:{length}:1"),
        "pure-dp-discrete-laplace:4",
        20,
    )
    .await;
    let VdafSpec::SumVec { chunk_length, .. } = p.spec else {
        unreachable!()
    };
    let reports = 30;
    let vdaf = Prio3SumVec::new_sum_vec(2, 1, length, chunk_length).unwrap();
    upload_all(&p, vdaf, vec![vec![0u128; length]; reports]).await;
    let interval = test_interval();
    let got = dap_client::collect(
        &p.task_id,
        &p.leader_dap(),
        &p.spec,
        &p.credential,
        interval.start().as_seconds_since_epoch(),
        interval.duration().as_seconds(),
        dap_client::poll_backoff(Duration::from_secs(180)),
    )
    .await
    .unwrap();
    assert_eq!(got.report_count, reports as u64);
    assert_eq!(got.values.len(), length);
    // Sensitivity 1 * 2000, epsilon 4: scale 500.
    check_two_aggregator_noise(&got.values, &got.raw, 500.0, p.spec.field_modulus());
}

// ---------------------------------------------------------------------------
// Bad input.

/// The problem document's `type`.
async fn problem_type(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    assert_eq!(
        ct, "application/problem+json",
        "status {status}, body {body}"
    );
    (status, body["type"].as_str().unwrap_or("").to_string())
}

const DAP: &str = "urn:ietf:params:ppm:dap:error:";

async fn hpke_config(p: &Pair, server: &ServerProcess) -> HpkeConfig {
    let resp = p
        .http
        .get(format!(
            "{}?task_id={}",
            p.url(server, "hpke_config"),
            p.task_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], HpkeConfigList::MEDIA_TYPE);
    HpkeConfigList::get_decoded(&resp.bytes().await.unwrap())
        .unwrap()
        .hpke_configs()[0]
        .clone()
}

/// A count report made by hand (as janus_client would), optionally with
/// the helper's input share altered before encryption: it then decrypts
/// fine but fails the helper's proof check.
async fn count_report(p: &Pair, value: bool, tamper_helper: bool) -> Vec<u8> {
    count_report_at(p, value, tamper_helper, now() / PRECISION * PRECISION).await
}

/// [`count_report`] with the given report time.
async fn count_report_at(p: &Pair, value: bool, tamper_helper: bool, time: u64) -> Vec<u8> {
    let leader_cfg = hpke_config(p, &p.leader).await;
    let helper_cfg = hpke_config(p, &p.helper).await;
    let vdaf = Prio3Count::new_count(2).unwrap();
    let id: ReportId = rand::random();
    let (public, shares) = vdaf.shard(&value, id.as_ref()).unwrap();
    let public = public.get_encoded().unwrap();
    let metadata = ReportMetadata::new(id, Time::from_seconds_since_epoch(time));
    let aad = InputShareAad::new(p.task(), metadata.clone(), public.clone())
        .get_encoded()
        .unwrap();
    let mut cts = Vec::new();
    for (i, (cfg, role)) in [(&leader_cfg, Role::Leader), (&helper_cfg, Role::Helper)]
        .into_iter()
        .enumerate()
    {
        let mut payload = shares[i].get_encoded().unwrap();
        if tamper_helper && role == Role::Helper {
            payload[0] ^= 0x80;
        }
        let pt = PlaintextInputShare::new(Vec::new(), payload)
            .get_encoded()
            .unwrap();
        cts.push(
            hpke::seal(
                cfg,
                &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &role),
                &pt,
                &aad,
            )
            .unwrap(),
        );
    }
    let helper = cts.pop().unwrap();
    let leader = cts.pop().unwrap();
    Report::new(metadata, public, leader, helper)
        .get_encoded()
        .unwrap()
}

async fn put_report(p: &Pair, body: Vec<u8>, media: &str) -> reqwest::Response {
    p.http
        .put(p.url(&p.leader, &format!("tasks/{}/reports", p.task_id)))
        .header("content-type", media)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Collects the whole test interval of a prio3count task with the
/// unmodified `janus_collector`: (report count, count).
async fn collect_count(p: &Pair) -> (u64, u64) {
    let c = p
        .collector(Prio3Count::new_count(2).unwrap())
        .collect(Query::new_time_interval(test_interval()), &())
        .await
        .unwrap();
    (c.report_count(), *c.aggregate_result())
}

/// A helper whose task expires reports sooner than the leader's answers
/// `report_dropped` for a report the leader accepted but the helper may no
/// longer tell from a replay (its replay record could have been
/// garbage-collected): the report is left out of the batch, the others are
/// counted. The helper's task is created with `report_expiry_age` 120 s by
/// hand (`provision_with` gives both aggregators the same parameters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_helper_drops_a_report_past_its_own_expiry() {
    let credential = CollectorCredential::generate(1, "collector-token-0123456789".into()).unwrap();
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let strict = ServerProcess::start(&dir.path().join("strict")).unwrap();
    let leader2 = ServerProcess::start(&dir.path().join("leader2")).unwrap();
    let secrets = dap_client::TaskSecrets::random();
    let token = |s: &ServerProcess| {
        std::fs::read_to_string(s.admin_token_file())
            .unwrap()
            .trim()
            .to_string()
    };
    let body = |role: &str, peer: &ServerProcess, expiry: Option<u64>| {
        let mut v = json!({
            "task_id": secrets.task_id,
            "role": role,
            "vdaf": "prio3count",
            "dp_strategy": "none",
            "min_batch_size": 1,
            "time_precision": PRECISION,
            "peer_url": format!("{}/dap/", peer.url),
            "aggregator_auth_token": secrets.aggregator_token,
            "collector_hpke_config": hetally_dap::hpke::encode_config(&credential.hpke_config().unwrap()),
            "vdaf_verify_key": secrets.verify_key,
        });
        if let Some(expiry) = expiry {
            v["report_expiry_age"] = json!(expiry);
        }
        if role == "leader" {
            v["collector_auth_token"] = json!(credential.token);
        }
        v
    };
    for (server, role, peer, expiry) in [
        (&strict, "helper", &leader2, Some(120)),
        (&leader2, "leader", &strict, None),
    ] {
        let resp = http
            .post(format!("{}/dap/tasks", server.url))
            .bearer_auth(token(server))
            .json(&body(role, peer, expiry))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "{role}: {}",
            resp.text().await.unwrap()
        );
    }
    let q = Pair {
        _dir: dir,
        leader: leader2,
        helper: strict,
        credential,
        task_id: secrets.task_id.clone(),
        aggregator_token: secrets.aggregator_token.clone(),
        spec: "prio3count".parse().unwrap(),
        http,
    };
    // Five minutes old: inside the leader's 7 days, past the helper's 120 s.
    let now = hetally_tests::now();
    let old = now - now % PRECISION - 300;
    let resp = put_report(
        &q,
        count_report_at(&q, true, false, old).await,
        Report::MEDIA_TYPE,
    )
    .await;
    assert_eq!(resp.status(), 201, "the leader accepts it");
    for value in [true, false, true] {
        let resp = put_report(&q, count_report(&q, value, false).await, Report::MEDIA_TYPE).await;
        assert_eq!(resp.status(), 201);
    }
    // The old report is dropped by the helper: 3 reports, 2 of them ones.
    assert_eq!(collect_count(&q).await, (3, 2));
}

/// A tampered helper share is rejected in preparation and left out of the
/// batch: the collection counts only the good reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_tampered_share_excluded() {
    let p = pair("prio3count", "none", 10).await;
    for _ in 0..3 {
        let r = count_report(&p, true, true).await;
        assert_eq!(put_report(&p, r, Report::MEDIA_TYPE).await.status(), 201);
    }
    let mut truth = 0;
    for i in 0..20 {
        let v = i % 3 == 0;
        truth += u64::from(v);
        let r = count_report(&p, v, false).await;
        assert_eq!(put_report(&p, r, Report::MEDIA_TYPE).await.status(), 201);
    }
    assert_eq!(collect_count(&p).await, (20, truth));
}

/// Uploads share commits (group commit). The same report sent eight times
/// at once, among 40 other uploads in flight, is stored exactly once and
/// refused as a replay the other seven times, in whichever commit each copy
/// lands; every other upload is acknowledged and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_concurrent_replays() {
    let p = pair("prio3count", "none", 10).await;
    let twin = count_report(&p, true, false).await;
    let mut bodies = Vec::new();
    let mut truth = 1;
    for i in 0..40 {
        bodies.push((false, count_report(&p, i % 2 == 0, false).await));
        truth += u64::from(i % 2 == 0);
        if i % 5 == 0 {
            bodies.push((true, twin.clone()));
        }
    }
    let answers = futures::future::join_all(bodies.into_iter().map(|(is_twin, body)| {
        let p = &p;
        async move {
            let resp = put_report(p, body, Report::MEDIA_TYPE).await;
            if resp.status() == 201 {
                (is_twin, 201, String::new())
            } else {
                let (status, kind) = problem_type(resp).await;
                (is_twin, status, kind)
            }
        }
    }))
    .await;
    let twins: Vec<_> = answers.iter().filter(|a| a.0).collect();
    assert_eq!(twins.len(), 8);
    assert_eq!(twins.iter().filter(|a| a.1 == 201).count(), 1);
    for (_, status, kind) in twins.iter().filter(|a| a.1 != 201) {
        assert_eq!(
            (*status, kind.as_str()),
            (400, &*format!("{DAP}reportRejected"))
        );
    }
    assert!(answers.iter().filter(|a| !a.0).all(|a| a.1 == 201));
    assert_eq!(collect_count(&p).await, (41, truth));
}

/// A leader whose upload writer holds one report at a time answers the
/// uploads it cannot queue with 429, `Retry-After` and a problem document
/// naming the task, and stores nothing of them; every report it
/// acknowledged is collected, and the refused ones, sent again after
/// `Retry-After`, are acknowledged in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_full_writer_answers_429_and_loses_nothing() {
    let p = pair_with("prio3count", "none", 1, &["--write-queue-reports", "1"]).await;
    let mut pending = Vec::new();
    let mut truth = 0;
    for i in 0..60 {
        pending.push(count_report(&p, i % 3 == 0, false).await);
        truth += u64::from(i % 3 == 0);
    }
    let total = pending.len() as u64;
    let mut refused_once = 0;
    for round in 0..50 {
        if pending.is_empty() {
            break;
        }
        let answers = futures::future::join_all(pending.iter().map(|body| {
            let p = &p;
            async move {
                let resp = put_report(p, body.clone(), Report::MEDIA_TYPE).await;
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                let body: Value =
                    serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
                (status, retry_after, body)
            }
        }))
        .await;
        let mut again = Vec::new();
        let mut wait = 0;
        for (body, (status, retry_after, problem)) in pending.into_iter().zip(answers) {
            match status {
                201 => {}
                429 => {
                    refused_once += 1;
                    let seconds = retry_after.expect("a 429 carries Retry-After");
                    assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
                    assert_eq!(problem["status"], 429, "{problem}");
                    assert_eq!(problem["taskid"], p.task_id.to_string(), "{problem}");
                    wait = wait.max(seconds);
                    again.push(body);
                }
                other => panic!("round {round}: status {other}: {problem}"),
            }
        }
        pending = again;
        if !pending.is_empty() {
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        }
    }
    assert!(
        pending.is_empty(),
        "{} reports never acknowledged",
        pending.len()
    );
    assert!(
        refused_once > 0,
        "60 concurrent uploads against a writer of one were all queued"
    );
    println!("{refused_once} uploads refused with 429 and sent again");
    assert_eq!(collect_count(&p).await, (total, truth));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_replay_media_type_and_tokens() {
    let p = pair("prio3count", "none", 10).await;
    let r = count_report(&p, true, false).await;
    // Wrong media type.
    let (status, kind) =
        problem_type(put_report(&p, r.clone(), "application/octet-stream").await).await;
    assert_eq!(
        (status, kind.as_str()),
        (415, &*format!("{DAP}invalidMessage"))
    );
    // Accepted once, refused as a replay the second time.
    assert_eq!(
        put_report(&p, r.clone(), Report::MEDIA_TYPE).await.status(),
        201
    );
    let (status, kind) = problem_type(put_report(&p, r, Report::MEDIA_TYPE).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}reportRejected"))
    );
    // Garbage and trailing bytes.
    let mut r = count_report(&p, true, false).await;
    r.push(0);
    let (status, kind) = problem_type(put_report(&p, r, Report::MEDIA_TYPE).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}invalidMessage"))
    );
    // Unknown task.
    let other = TaskId::from([9u8; 32]);
    let resp = p
        .http
        .get(format!(
            "{}?task_id={other}",
            p.url(&p.leader, "hpke_config")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (404, format!("{DAP}unrecognizedTask"))
    );
    let resp = p
        .http
        .get(p.url(&p.leader, "hpke_config"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (400, format!("{DAP}missingTaskID"))
    );

    // A wrong aggregator token at the helper.
    let job = "AAAAAAAAAAAAAAAAAAAAAA";
    for auth in [Some("Bearer not-the-token"), None] {
        let mut req = p
            .http
            .put(p.url(
                &p.helper,
                &format!("tasks/{}/aggregation_jobs/{job}", p.task_id),
            ))
            .header("content-type", "application/dap-aggregation-job-init-req")
            .body(vec![0u8; 8]);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(
            problem_type(req.send().await.unwrap()).await,
            (403, format!("{DAP}unauthorizedRequest"))
        );
    }
    // A wrong collector token at the leader.
    let creq =
        CollectionReq::<TimeInterval>::new(Query::new_time_interval(test_interval()), Vec::new())
            .get_encoded()
            .unwrap();
    let resp = p
        .http
        .put(p.url(
            &p.leader,
            &format!("tasks/{}/collection_jobs/{job}", p.task_id),
        ))
        .header("content-type", CollectionReq::<TimeInterval>::MEDIA_TYPE)
        .header("authorization", "Bearer wrong")
        .body(creq.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (403, format!("{DAP}unauthorizedRequest"))
    );
    // The aggregator token is not a collector token either.
    let resp = p
        .http
        .post(p.url(
            &p.leader,
            &format!("tasks/{}/collection_jobs/{job}", p.task_id),
        ))
        .header("authorization", format!("Bearer {}", "x".repeat(10)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (403, format!("{DAP}unauthorizedRequest"))
    );
}

async fn put_collection(p: &Pair, job: &str, interval: Interval) -> reqwest::Response {
    let creq = CollectionReq::<TimeInterval>::new(Query::new_time_interval(interval), Vec::new())
        .get_encoded()
        .unwrap();
    p.http
        .put(p.url(
            &p.leader,
            &format!("tasks/{}/collection_jobs/{job}", p.task_id),
        ))
        .header("content-type", CollectionReq::<TimeInterval>::MEDIA_TYPE)
        .bearer_auth(&p.credential.token)
        .body(creq)
        .send()
        .await
        .unwrap()
}

async fn poll_collection(p: &Pair, job: &str) -> reqwest::Response {
    for _ in 0..600 {
        let resp = p
            .http
            .post(p.url(
                &p.leader,
                &format!("tasks/{}/collection_jobs/{job}", p.task_id),
            ))
            .bearer_auth(&p.credential.token)
            .send()
            .await
            .unwrap();
        if resp.status() != 202 {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("collection job never finished");
}

/// Too few reports: the leader's collection job fails with
/// invalidBatchSize, and so does the helper asked directly; an
/// overlapping or repeated interval is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_batch_size_and_overlap() {
    let p = pair("prio3count", "none", 10).await;
    for _ in 0..3 {
        let r = count_report(&p, true, false).await;
        assert_eq!(put_report(&p, r, Report::MEDIA_TYPE).await.status(), 201);
    }
    let interval = test_interval();
    let job1 = "AQEBAQEBAQEBAQEBAQEBAQ";
    assert_eq!(put_collection(&p, job1, interval).await.status(), 201);
    let (status, kind) = problem_type(poll_collection(&p, job1).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}invalidBatchSize"))
    );

    // The helper, asked for an empty batch with a matching (zero)
    // checksum, refuses it as too small; with a wrong count, as a mismatch.
    let start = interval.start().as_seconds_since_epoch() - 3600;
    let empty = Interval::new(
        Time::from_seconds_since_epoch(start),
        DapDuration::from_seconds(PRECISION),
    )
    .unwrap();
    let aggregator_token = p.aggregator_token.clone();
    for (count, expected) in [(0, "invalidBatchSize"), (5, "batchMismatch")] {
        let req = AggregateShareReq::<TimeInterval>::new(
            BatchSelector::new_time_interval(empty),
            Vec::new(),
            count,
            ReportIdChecksum::default(),
        );
        let resp = p
            .http
            .post(p.url(&p.helper, &format!("tasks/{}/aggregate_shares", p.task_id)))
            .header(
                "content-type",
                AggregateShareReq::<TimeInterval>::MEDIA_TYPE,
            )
            .bearer_auth(&aggregator_token)
            .body(req.get_encoded().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(problem_type(resp).await, (400, format!("{DAP}{expected}")));
    }

    // Fill the batch up and collect it.
    for _ in 0..10 {
        let r = count_report(&p, true, false).await;
        assert_eq!(put_report(&p, r, Report::MEDIA_TYPE).await.status(), 201);
    }
    let job2 = "AgICAgICAgICAgICAgICAg";
    assert_eq!(put_collection(&p, job2, interval).await.status(), 201);
    // Asking again with the same id is idempotent.
    assert_eq!(put_collection(&p, job2, interval).await.status(), 201);
    let resp = poll_collection(&p, job2).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/dap-collection");

    // Same interval, new job: queried too many times. Overlapping: overlap.
    let (status, kind) =
        problem_type(put_collection(&p, "AwMDAwMDAwMDAwMDAwMDAw", interval).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}batchQueriedTooManyTimes"))
    );
    let shifted = Interval::new(
        Time::from_seconds_since_epoch(interval.start().as_seconds_since_epoch() + PRECISION),
        *interval.duration(),
    )
    .unwrap();
    let (status, kind) =
        problem_type(put_collection(&p, "BAQEBAQEBAQEBAQEBAQEBA", shifted).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}batchOverlap"))
    );
    // A report for the collected interval is refused.
    let r = count_report(&p, true, false).await;
    let (status, kind) = problem_type(put_report(&p, r, Report::MEDIA_TYPE).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}reportRejected"))
    );
    // A misaligned interval is not a batch.
    let odd = Interval::new(
        Time::from_seconds_since_epoch(start + 1),
        DapDuration::from_seconds(PRECISION),
    )
    .unwrap();
    let (status, kind) =
        problem_type(put_collection(&p, "BQUFBQUFBQUFBQUFBQUFBQ", odd).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}batchInvalid"))
    );
}

/// When the helper refuses the aggregate share request with a DAP problem
/// (here its minimum batch size, 50, is above the leader's, 10, and the
/// batch holds 20), the leader fails the collection job with the helper's
/// problem type instead of answering 202 for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_helper_refusal_fails_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let leader = ServerProcess::start(&dir.path().join("leader")).unwrap();
    let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
    let credential = CollectorCredential::generate(1, "collector-token-0123456789".into()).unwrap();
    let secrets = dap_client::TaskSecrets::random();
    let http = reqwest::Client::new();
    for (server, role, peer, min) in [
        (&helper, "helper", &leader, 50),
        (&leader, "leader", &helper, 10),
    ] {
        let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
        let mut body = serde_json::json!({
            "task_id": secrets.task_id,
            "role": role,
            "vdaf": "prio3count",
            "dp_strategy": "none",
            "min_batch_size": min,
            "time_precision": PRECISION,
            "peer_url": format!("{}/dap/", peer.url),
            "aggregator_auth_token": secrets.aggregator_token,
            "collector_hpke_config": hetally_dap::hpke::encode_config(
                &credential.hpke_config().unwrap()
            ),
            "vdaf_verify_key": secrets.verify_key,
        });
        if role == "leader" {
            body["collector_auth_token"] = serde_json::json!(credential.token);
        }
        let resp = http
            .post(format!("{}/dap/tasks", server.url))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{role}: {}", resp.status());
    }
    let p = Pair {
        _dir: dir,
        leader,
        helper,
        credential,
        task_id: secrets.task_id.clone(),
        aggregator_token: secrets.aggregator_token.clone(),
        spec: VdafSpec::Count,
        http,
    };
    for _ in 0..20 {
        let r = count_report(&p, true, false).await;
        assert_eq!(put_report(&p, r, Report::MEDIA_TYPE).await.status(), 201);
    }
    let job = "BQUFBQUFBQUFBQUFBQUFBQ";
    assert_eq!(put_collection(&p, job, test_interval()).await.status(), 201);
    let resp = poll_collection(&p, job).await;
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (400, &*format!("{DAP}invalidBatchSize")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("helper"),
        "{body}"
    );
    // It stays failed.
    let (status, kind) = problem_type(poll_collection(&p, job).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}invalidBatchSize"))
    );
}

/// Reports too far in the future are refused with reportTooEarly, reports
/// older than the report expiry age with reportRejected; neither is
/// stored (the batch then holds only the good report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_bad_input_report_times() {
    let p = pair("prio3count", "none", 1).await;
    let aligned = now() / PRECISION * PRECISION;
    let early = count_report_at(&p, true, false, aligned + 10 * PRECISION).await;
    let (status, kind) = problem_type(put_report(&p, early, Report::MEDIA_TYPE).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}reportTooEarly"))
    );
    let late = count_report_at(&p, true, false, aligned - 8 * 24 * 3600).await;
    let (status, kind) = problem_type(put_report(&p, late, Report::MEDIA_TYPE).await).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, &*format!("{DAP}reportRejected"))
    );
    let good = count_report(&p, false, false).await;
    assert_eq!(put_report(&p, good, Report::MEDIA_TYPE).await.status(), 201);
    assert_eq!(collect_count(&p).await, (1, 0));
}

/// The command-line path a user takes: `hetally-keytool keygen --scheme
/// dap-hpke`, `hetally-client dap task-create`, `simulate` (writing the
/// truth), `send`, `collect`; the collection equals the truth plus the sent
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_cli_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let leader = ServerProcess::start(&dir.path().join("leader")).unwrap();
    let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
    let keys = dir.path().join("keys");
    let out = run_ok(
        "hetally-keytool",
        &[
            "keygen",
            "--scheme",
            "dap-hpke",
            "--out",
            keys.to_str().unwrap(),
        ],
    );
    assert!(out.contains("collector-credential.json"), "{out}");
    let cred = keys.join("collector-credential.json");
    let cred = cred.to_str().unwrap();
    let (l, h) = (
        format!("{}/dap/", leader.url),
        format!("{}/dap/", helper.url),
    );
    let (lt, ht) = (leader.admin_token_file(), helper.admin_token_file());
    let vdaf = "prio3histogram:5";
    let precision = PRECISION.to_string();
    let created: Value = serde_json::from_str(&run_ok(
        "hetally-client",
        &[
            "dap",
            "task-create",
            "--leader",
            &l,
            "--helper",
            &h,
            "--leader-admin-token-file",
            lt.to_str().unwrap(),
            "--helper-admin-token-file",
            ht.to_str().unwrap(),
            "--vdaf",
            vdaf,
            "--min-batch-size",
            "20",
            "--time-precision",
            &precision,
            "--collector-credential",
            cred,
            "--json",
        ],
    ))
    .unwrap();
    let task = created["task_id"].as_str().unwrap().to_string();
    let truth_path = dir.path().join("truth.json");
    let task_args = [
        "--leader",
        &l,
        "--helper",
        &h,
        "--task",
        &task,
        "--vdaf",
        vdaf,
        "--time-precision",
        &precision,
    ];
    fn argv(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let with = |cmd: &'static str, more: &[&str]| -> Vec<String> {
        let mut v = vec!["dap".to_string(), cmd.to_string()];
        v.extend(task_args.iter().map(|s| s.to_string()));
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    let sim = with(
        "simulate",
        &[
            "--reports",
            "40",
            "--seed",
            "7",
            "--truth-out",
            truth_path.to_str().unwrap(),
        ],
    );
    let out = run_ok("hetally-client", &argv(&sim));
    assert!(out.contains("uploaded 40 reports"), "{out}");
    run_ok("hetally-client", &argv(&with("send", &["--value", "4"])));
    // A measurement outside the VDAF is a usage error, before any upload.
    let bad = run("hetally-client", &argv(&with("send", &["--value", "5"])));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid"));

    let interval = test_interval();
    let start = interval.start().as_seconds_since_epoch().to_string();
    let duration = interval.duration().as_seconds().to_string();
    let got: Value = serde_json::from_str(&run_ok(
        "hetally-client",
        &[
            "dap",
            "collect",
            "--leader",
            &l,
            "--task",
            &task,
            "--vdaf",
            vdaf,
            "--collector-credential",
            cred,
            "--start",
            &start,
            "--duration",
            &duration,
        ],
    ))
    .unwrap();
    let ints = |v: &Value| -> Vec<i128> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().parse().unwrap())
            .collect()
    };
    let mut expected = ints(&read_json(&truth_path)["values"]);
    expected[4] += 1;
    assert_eq!(got["report_count"], 41);
    assert_eq!(ints(&got["values"]), expected);
}
