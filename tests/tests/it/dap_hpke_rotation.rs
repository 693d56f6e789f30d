//! DAP HPKE key rotation (issue 17) on a real leader and helper:
//! `POST /dap/tasks/{id}/hpke_configs` (admin) makes a new active
//! configuration, served by `hpke_config`; the previous ones keep
//! decrypting for their grace period, on the leader (at upload) and on the
//! helper (in aggregation); once retired, an upload naming one is answered
//! `outdatedConfig` with the task id, and the helper rejects reports
//! encrypted to its retired configuration.

use std::time::Duration;

use hetally_client::dap::{self as dap_client, DapTaskConfig};
use hetally_dap::hpke::{decode_config, CollectorCredential};
use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, Label};
use hetally_dap::messages::{
    Duration as DapDuration, HpkeConfig, HpkeConfigList, InputShareAad, Interval,
    PlaintextInputShare, Query, Report, ReportId, ReportMetadata, Role, TaskId, Time,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::prio::vdaf::prio3::Prio3Count;
use hetally_dap::prio::vdaf::Client as _;
use hetally_dap::vdaf::{DpStrategy, VdafSpec};
use hetally_tests::*;
use janus_collector::{Collector, PrivateCollectorCredential};
use serde_json::Value;
use url::Url;

const PRECISION: u64 = 60;

struct Pair {
    _dir: tempfile::TempDir,
    leader: ServerProcess,
    helper: ServerProcess,
    credential: CollectorCredential,
    task_id: String,
    http: reqwest::Client,
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let leader = ServerProcess::start(&dir.path().join("leader")).unwrap();
        Pair::with_leader(dir, leader).await
    }

    /// A task on `leader` and a new helper.
    async fn with_leader(dir: tempfile::TempDir, leader: ServerProcess) -> Pair {
        let helper = ServerProcess::start(&dir.path().join("helper")).unwrap();
        let credential =
            CollectorCredential::generate(1, "collector-token-rotation".into()).unwrap();
        let http = reqwest::Client::new();
        let config = DapTaskConfig {
            leader: dap_client::endpoint(&format!("{}/dap", leader.url)).unwrap(),
            helper: dap_client::endpoint(&format!("{}/dap", helper.url)).unwrap(),
            vdaf: "prio3count".parse::<VdafSpec>().unwrap(),
            dp: "none".parse::<DpStrategy>().unwrap(),
            min_batch_size: 1,
            time_precision: PRECISION,
            collector_hpke_config: credential.hpke_config().unwrap(),
            collector_token: credential.token.clone(),
        };
        let secrets = dap_client::TaskSecrets::random();
        let task = dap_client::provision_with(
            &http,
            &config,
            &admin_token(&leader),
            &admin_token(&helper),
            &secrets,
        )
        .await
        .unwrap();
        Pair {
            _dir: dir,
            leader,
            helper,
            credential,
            task_id: task.task_id,
            http,
        }
    }

    fn task(&self) -> TaskId {
        self.task_id.parse().unwrap()
    }

    /// The configuration `server` serves for the task.
    async fn served_config(&self, server: &ServerProcess) -> HpkeConfig {
        let resp = self
            .http
            .get(format!(
                "{}/dap/hpke_config?task_id={}",
                server.url, self.task_id
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let list = HpkeConfigList::get_decoded(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(list.hpke_configs().len(), 1);
        list.hpke_configs()[0].clone()
    }

    /// `POST /dap/tasks/{id}/hpke_configs` on `server` with `body` (None:
    /// no body): (status, JSON answer).
    async fn rotate(&self, server: &ServerProcess, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!(
                "{}/dap/tasks/{}/hpke_configs",
                server.url, self.task_id
            ))
            .bearer_auth(admin_token(server));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Rotates and returns the new configuration, checking that the answer
    /// names the one `hpke_config` now serves.
    async fn rotate_ok(&self, server: &ServerProcess, retire: Option<u64>) -> (HpkeConfig, Value) {
        let body = retire.map(|s| serde_json::json!({ "retire_previous_after_secs": s }));
        let (status, answer) = self.rotate(server, body).await;
        assert_eq!(status, 201, "{answer}");
        let config = decode_config(answer["hpke_config"].as_str().unwrap()).unwrap();
        assert_eq!(
            u8::from(*config.id()) as u64,
            answer["config_id"].as_u64().unwrap()
        );
        assert_eq!(self.served_config(server).await, config);
        (config, answer)
    }

    /// A count report of 1 at `time`, its shares encrypted to `leader` and
    /// `helper` (as a client holding those configurations would).
    fn report(&self, leader: &HpkeConfig, helper: &HpkeConfig, time: u64) -> Vec<u8> {
        let vdaf = Prio3Count::new_count(2).unwrap();
        let id: ReportId = rand::random();
        let (public, shares) = vdaf.shard(&true, id.as_ref()).unwrap();
        let public = public.get_encoded().unwrap();
        let metadata = ReportMetadata::new(id, Time::from_seconds_since_epoch(time));
        let aad = InputShareAad::new(self.task(), metadata.clone(), public.clone())
            .get_encoded()
            .unwrap();
        let seal = |cfg: &HpkeConfig, role: Role, share: Vec<u8>| {
            let pt = PlaintextInputShare::new(Vec::new(), share)
                .get_encoded()
                .unwrap();
            hpke::seal(
                cfg,
                &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &role),
                &pt,
                &aad,
            )
            .unwrap()
        };
        let l = seal(leader, Role::Leader, shares[0].get_encoded().unwrap());
        let h = seal(helper, Role::Helper, shares[1].get_encoded().unwrap());
        Report::new(metadata, public, l, h).get_encoded().unwrap()
    }

    /// Uploads a report: (status, problem document or Null).
    async fn upload(&self, body: Vec<u8>) -> (u16, Value) {
        self.upload_to(&self.leader, body).await
    }

    /// Uploads a report to `server` (a leader replica).
    async fn upload_to(&self, server: &ServerProcess, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .put(format!("{}/dap/tasks/{}/reports", server.url, self.task_id))
            .header("content-type", Report::MEDIA_TYPE)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Collects the bucket starting at `start` with the unmodified
    /// `janus_collector`: (report count, sum).
    async fn collect(&self, start: u64) -> (u64, u64) {
        let credential: PrivateCollectorCredential =
            serde_json::from_str(&self.credential.to_json()).unwrap();
        let collector = Collector::builder(
            self.task(),
            Url::parse(&format!("{}/dap/", self.leader.url)).unwrap(),
            credential.authentication_token(),
            credential.hpke_keypair(),
            Prio3Count::new_count(2).unwrap(),
        )
        .with_collect_poll_backoff(dap_client::poll_backoff(Duration::from_secs(180)))
        .build()
        .unwrap();
        let interval = Interval::new(
            Time::from_seconds_since_epoch(start),
            DapDuration::from_seconds(PRECISION),
        )
        .unwrap();
        let c = collector
            .collect(Query::new_time_interval(interval), &())
            .await
            .unwrap();
        (c.report_count(), *c.aggregate_result())
    }
}

fn admin_token(server: &ServerProcess) -> String {
    std::fs::read_to_string(server.admin_token_file())
        .unwrap()
        .trim()
        .to_string()
}

fn assert_outdated(p: &Pair, (status, doc): (u16, Value)) {
    assert_eq!(status, 400, "{doc}");
    assert_eq!(
        doc["type"], "urn:ietf:params:ppm:dap:error:outdatedConfig",
        "{doc}"
    );
    assert_eq!(doc["taskid"], p.task_id.as_str(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_hpke_rotation_grace_then_outdated_config() {
    let p = Pair::start().await;
    // Two buckets in the recent past: the first collected before the
    // helper retires its old configuration, the second after.
    let first = now() / PRECISION * PRECISION - 3 * PRECISION;
    let second = first + PRECISION;
    let leader_1 = p.served_config(&p.leader).await;
    let helper_1 = p.served_config(&p.helper).await;

    // Rotation with the default grace: a new active configuration on each
    // aggregator; the old ones are listed as still decrypting.
    let (leader_2, answer) = p.rotate_ok(&p.leader, None).await;
    assert_ne!(leader_2.id(), leader_1.id());
    assert_eq!(answer["task_id"], p.task_id.as_str());
    let previous = answer["previous"].as_array().unwrap();
    assert_eq!(previous.len(), 1, "{answer}");
    assert_eq!(previous[0]["config_id"], u8::from(*leader_1.id()));
    let expires = previous[0]["expires_at"].as_u64().unwrap();
    assert!(
        expires >= now() + 8 * 24 * 3600 - 60,
        "default grace: {answer}"
    );
    let (helper_2, _) = p.rotate_ok(&p.helper, None).await;

    // Within the grace, both generations decrypt, on both aggregators.
    assert_eq!(p.upload(p.report(&leader_1, &helper_1, first)).await.0, 201);
    assert_eq!(p.upload(p.report(&leader_2, &helper_2, first)).await.0, 201);
    assert_eq!(p.upload(p.report(&leader_2, &helper_1, first)).await.0, 201);

    // The leader retires every previous configuration at once.
    let (leader_3, answer) = p.rotate_ok(&p.leader, Some(0)).await;
    assert_eq!(answer["previous"], serde_json::json!([]), "{answer}");
    assert_outdated(&p, p.upload(p.report(&leader_1, &helper_2, first)).await);
    assert_outdated(&p, p.upload(p.report(&leader_2, &helper_2, first)).await);
    assert_eq!(p.upload(p.report(&leader_3, &helper_1, first)).await.0, 201);
    // Every accepted report was opened by the helper too.
    assert_eq!(p.collect(first).await, (4, 4));

    // The helper retires its old configurations: a report whose helper
    // share is encrypted to one is accepted by the leader (which cannot
    // tell) but rejected by the helper, and so not in the batch.
    let (helper_3, _) = p.rotate_ok(&p.helper, Some(0)).await;
    assert_eq!(
        p.upload(p.report(&leader_3, &helper_1, second)).await.0,
        201
    );
    assert_eq!(
        p.upload(p.report(&leader_3, &helper_2, second)).await.0,
        201
    );
    assert_eq!(
        p.upload(p.report(&leader_3, &helper_3, second)).await.0,
        201
    );
    assert_eq!(p.collect(second).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_hpke_rotation_admin_route_refusals() {
    let p = Pair::start().await;
    let url = format!("{}/dap/tasks/{}/hpke_configs", p.leader.url, p.task_id);
    // No token, wrong token: 403 unauthorizedRequest.
    for req in [
        p.http.post(&url),
        p.http.post(&url).bearer_auth("not-the-admin-token"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(
            doc["type"],
            "urn:ietf:params:ppm:dap:error:unauthorizedRequest"
        );
        assert_eq!(doc["taskid"], p.task_id.as_str());
    }
    // The aggregator token is not the admin token.
    let resp = p
        .http
        .post(&url)
        .header("DAP-Auth-Token", "collector-token-rotation")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Unknown task: 404 unrecognizedTask with its id.
    let other = TaskId::from([3u8; 32]).to_string();
    let resp = p
        .http
        .post(format!("{}/dap/tasks/{other}/hpke_configs", p.leader.url))
        .bearer_auth(admin_token(&p.leader))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc["type"],
        "urn:ietf:params:ppm:dap:error:unrecognizedTask"
    );
    assert_eq!(doc["taskid"], other.as_str());
    // Bad bodies: 400 naming the task; nothing rotated.
    let before = p.served_config(&p.leader).await;
    for body in [
        r#"{"retire_previous_after_secs": -1}"#,
        r#"{"retire_after": 5}"#,
        "not json",
    ] {
        let resp = p
            .http
            .post(&url)
            .bearer_auth(admin_token(&p.leader))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["taskid"], p.task_id.as_str(), "{body}");
    }
    assert_eq!(p.served_config(&p.leader).await, before);
    // The empty body of a plain POST is the default rotation.
    let resp = p
        .http
        .post(&url)
        .bearer_auth(admin_token(&p.leader))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_ne!(p.served_config(&p.leader).await, before);
}

/// `hetally-client dap hpke-rotate`: the operator's way to the same route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_hpke_rotation_cli() {
    let p = Pair::start().await;
    let old_leader = p.served_config(&p.leader).await;
    let helper = p.served_config(&p.helper).await;
    let args = [
        "dap".to_string(),
        "hpke-rotate".into(),
        "--aggregator".into(),
        format!("{}/dap/", p.leader.url),
        "--admin-token-file".into(),
        p.leader.admin_token_file().display().to_string(),
        "--task".into(),
        p.task_id.clone(),
        "--retire-previous-after".into(),
        "0".into(),
        "--json".into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok("hetally-client", &args)
    })
    .await
    .unwrap();
    let answer: Value = serde_json::from_str(&out).unwrap();
    let new_leader = p.served_config(&p.leader).await;
    assert_eq!(
        answer["config_id"].as_u64().unwrap(),
        u64::from(u8::from(*new_leader.id()))
    );
    assert_ne!(new_leader, old_leader);
    let time = now() / PRECISION * PRECISION;
    assert_outdated(&p, p.upload(p.report(&old_leader, &helper, time)).await);
    assert_eq!(p.upload(p.report(&new_leader, &helper, time)).await.0, 201);
}

/// Two leader replicas on one PostgreSQL database: a rotation made on one
/// is honoured by the other for the first report that uses it (an unknown
/// config id reloads the cached key set), not refused as outdated until
/// its cache expires; the old configuration still decrypts there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_hpke_rotation_seen_by_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let db = postgres_database(&format!("{} rotation replicas", dir.path().display()));
    let token = dir.path().join("admin.token");
    let token_arg = token.display().to_string();
    let args = ["--admin-token-file", token_arg.as_str(), "--no-job-driver"];
    let a = ServerProcess::start_with(&dir.path().join("a"), 0, Some(&db), &args).unwrap();
    let b = ServerProcess::start_with(&dir.path().join("b"), 0, Some(&db), &args).unwrap();
    // Where the helpers of this file look for a server's admin token.
    for server in [&a, &b] {
        std::fs::create_dir_all(&server.data_dir).unwrap();
        std::fs::copy(&token, server.admin_token_file()).unwrap();
    }
    let p = Pair::with_leader(dir, a).await;
    let helper = p.served_config(&p.helper).await;
    // Replica b caches the task's first configuration.
    let first = p.served_config(&b).await;
    let (second, _) = p.rotate_ok(&p.leader, None).await;
    let time = now() / PRECISION * PRECISION;
    // Past the one-second brake on reloads (clients sending random ids),
    // the first report naming the new id makes b read the keys again, well
    // before its cache's minute is up.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        p.upload_to(&b, p.report(&second, &helper, time)).await.0,
        201
    );
    assert_eq!(
        p.upload_to(&b, p.report(&first, &helper, time)).await.0,
        201
    );
    // A config id nobody has is still outdated there.
    let mut other = second.clone();
    for id in 0..=u8::MAX {
        if id != u8::from(*first.id()) && id != u8::from(*second.id()) {
            other = HpkeConfig::new(
                id.into(),
                *second.kem_id(),
                *second.kdf_id(),
                *second.aead_id(),
                second.public_key().clone(),
            );
            break;
        }
    }
    assert_outdated(&p, p.upload_to(&b, p.report(&other, &helper, time)).await);
}
