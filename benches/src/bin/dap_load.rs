//! `dap-load`: the DAP-09 load benchmark's client (run by
//! `benches/dap-load.sh`, which starts the two servers).
//!
//! Against a leader and a helper `hetally-server` it
//! 1. provisions a fresh task on both through their admin APIs;
//! 2. shards the reports with prio and seals both input shares with HPKE
//!    exactly as `janus_client` does (the client's work, timed apart);
//! 3. measures, on every core with rayon, the raw prio preparation of the
//!    same reports: both aggregators' `prepare_init`, the prepare message,
//!    both `prepare_next` and the aggregation of the output shares, with no
//!    HPKE, HTTP or storage — the baseline;
//! 4. measures HPKE opening of both input shares of every report on every
//!    core (the one cryptographic cost the service adds to preparation);
//! 5. uploads the sealed reports to the leader, `--concurrency` requests in
//!    flight, then collects the batch with the unmodified `janus_collector`
//!    and checks it equals the truth;
//! 6. prints one line `RESULT key=value ...`, with the service's rate over
//!    the raw preparation rate (`ratio`) and over the rate of preparation
//!    plus HPKE opening together (`ratio_to_prepare_plus_hpke`).
//!
//! The service rate is N over the time from the first upload to the
//! collection result (the leader's job driver aggregates while uploads go
//! on; the collection finishes once every report is aggregated).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use futures::StreamExt;
use hetally_client::dap::{self as dap_client, DapMeasurement, DapTaskConfig, TaskSecrets};
use hetally_dap::hpke::{generate_keypair, CollectorCredential};
use hetally_dap::janus_core::hpke::{self, HpkeApplicationInfo, HpkeKeypair, Label};
use hetally_dap::messages::{
    HpkeConfig, HpkeConfigList, InputShareAad, PlaintextInputShare, Report, ReportId,
    ReportMetadata, Role, TaskId, Time,
};
use hetally_dap::prio::codec::{Decode, Encode};
use hetally_dap::prio::vdaf::{Aggregator, Client, PrepareTransition, Vdaf};
use hetally_dap::vdaf::{DapVdaf, DpStrategy, VdafSpec};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use url::Url;

/// Time precision of the benchmark's task, seconds.
const PRECISION: u64 = 60;

#[derive(Parser, Debug)]
#[command(
    name = "dap-load",
    about = "DAP-09 load benchmark client: raw prio preparation vs a leader and a helper \
             hetally-server, upload to collection",
    long_about = None
)]
struct Args {
    /// The leader's base URL (`http://127.0.0.1:8080`).
    #[arg(long)]
    leader: String,
    /// The helper's base URL.
    #[arg(long)]
    helper: String,
    /// The leader's admin token file.
    #[arg(long)]
    leader_admin_token_file: PathBuf,
    /// The helper's admin token file.
    #[arg(long)]
    helper_admin_token_file: PathBuf,
    /// VDAF: prio3count, prio3sum:BITS, prio3histogram:LENGTH[:CHUNK],
    /// prio3sumvec:LENGTH:BITS[:CHUNK].
    #[arg(long, default_value = "prio3count")]
    vdaf: String,
    /// Reports to upload.
    #[arg(long, default_value_t = 10_000)]
    reports: usize,
    /// Uploads in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to wait for the collection, seconds.
    #[arg(long, default_value_t = 1800)]
    max_wait: u64,
    /// Seed of the measurements.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_token(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

/// A report sealed for upload, and what the local measurements keep of it.
struct Sealed {
    body: Vec<u8>,
}

/// What one VDAF's local phases measured.
struct Local {
    reports: Vec<Sealed>,
    shard_s: f64,
    prepare_s: f64,
    hpke_s: f64,
}

async fn hpke_config(http: &reqwest::Client, dap: &Url, task_id: &str) -> Result<HpkeConfig> {
    let url = dap.join(&format!("hpke_config?task_id={task_id}"))?;
    let resp = http.get(url.clone()).send().await?;
    ensure!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
    let list = HpkeConfigList::get_decoded(&resp.bytes().await?)
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    list.hpke_configs()
        .first()
        .cloned()
        .with_context(|| format!("{url}: no HPKE configuration"))
}

/// One report as prio sharded it: id (the nonce), public share, the two
/// input shares.
type Sharded<V> = (
    ReportId,
    <V as Vdaf>::PublicShare,
    Vec<<V as Vdaf>::InputShare>,
);

/// Shards and seals the reports of one VDAF; returns the shares, the
/// sealed reports and the seconds it took.
fn local_phases<V>(
    vdaf: &V,
    task_id: TaskId,
    measurements: &[V::Measurement],
    leader_cfg: &HpkeConfig,
    helper_cfg: &HpkeConfig,
    time: u64,
) -> Result<(Vec<Sharded<V>>, Vec<Sealed>, f64)>
where
    V: Client<16> + Sync,
    V::Measurement: Sync,
    V::PublicShare: Send,
    V::InputShare: Send,
{
    let start = Instant::now();
    let made: Vec<_> = measurements
        .par_iter()
        .map(|m| -> Result<_> {
            let id: ReportId = rand::random();
            let (public, shares) = vdaf.shard(m, id.as_ref())?;
            let public_bytes = public.get_encoded()?;
            let metadata = ReportMetadata::new(id, Time::from_seconds_since_epoch(time));
            let aad = InputShareAad::new(task_id, metadata.clone(), public_bytes.clone())
                .get_encoded()?;
            let seal = |cfg: &HpkeConfig, role: Role, share: &V::InputShare| -> Result<_> {
                let pt =
                    PlaintextInputShare::new(Vec::new(), share.get_encoded()?).get_encoded()?;
                Ok(hpke::seal(
                    cfg,
                    &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &role),
                    &pt,
                    &aad,
                )?)
            };
            let leader = seal(leader_cfg, Role::Leader, &shares[0])?;
            let helper = seal(helper_cfg, Role::Helper, &shares[1])?;
            let body = Report::new(metadata, public_bytes, leader, helper).get_encoded()?;
            Ok(((id, public, shares), Sealed { body }))
        })
        .collect::<Result<_>>()?;
    let elapsed = start.elapsed().as_secs_f64();
    let (shares, sealed) = made.into_iter().unzip();
    Ok((shares, sealed, elapsed))
}

/// The baseline: both aggregators' preparation and aggregation of every
/// report, on every core. Returns seconds.
fn raw_prepare<V>(vdaf: &V, verify_key: &[u8; 16], shares: &[Sharded<V>]) -> Result<f64>
where
    V: Aggregator<16, 16, AggregationParam = ()> + Sync,
    V::PublicShare: Sync,
    V::InputShare: Sync,
    V::OutputShare: Send,
    V::AggregateShare: Send,
{
    let start = Instant::now();
    let outputs: Vec<(V::OutputShare, V::OutputShare)> = shares
        .par_iter()
        .map(|(id, public, input)| -> Result<_> {
            let nonce = id.as_ref();
            let (s0, p0) = vdaf.prepare_init(verify_key, 0, &(), nonce, public, &input[0])?;
            let (s1, p1) = vdaf.prepare_init(verify_key, 1, &(), nonce, public, &input[1])?;
            let msg = vdaf.prepare_shares_to_prepare_message(&(), [p0, p1])?;
            let out = |t| match t {
                PrepareTransition::Finish(out) => Ok(out),
                _ => bail!("Prio3 takes one round"),
            };
            let o0 = out(vdaf.prepare_next(s0, msg.clone())?)?;
            let o1 = out(vdaf.prepare_next(s1, msg)?)?;
            Ok((o0, o1))
        })
        .collect::<Result<_>>()?;
    let (leader, helper): (Vec<_>, Vec<_>) = outputs.into_iter().unzip();
    let (a, b) = rayon::join(
        || vdaf.aggregate(&(), leader),
        || vdaf.aggregate(&(), helper),
    );
    std::hint::black_box((a?, b?));
    Ok(start.elapsed().as_secs_f64())
}

/// HPKE opening of both input shares of every report, as the leader and
/// the helper do it, on every core. Returns seconds.
fn hpke_open_all(
    task_id: TaskId,
    reports: &[Sealed],
    leader_key: &HpkeKeypair,
    helper_key: &HpkeKeypair,
) -> Result<f64> {
    let start = Instant::now();
    reports.par_iter().try_for_each(|r| -> Result<()> {
        let report = Report::get_decoded(&r.body)?;
        let aad = InputShareAad::new(
            task_id,
            report.metadata().clone(),
            report.public_share().to_vec(),
        )
        .get_encoded()?;
        for (key, role, ct) in [
            (
                leader_key,
                Role::Leader,
                report.leader_encrypted_input_share(),
            ),
            (
                helper_key,
                Role::Helper,
                report.helper_encrypted_input_share(),
            ),
        ] {
            let pt = hpke::open(
                key,
                &HpkeApplicationInfo::new(&Label::InputShare, &Role::Client, &role),
                ct,
                &aad,
            )?;
            std::hint::black_box(PlaintextInputShare::get_decoded(&pt)?);
        }
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

fn typed_local<V>(
    vdaf: &V,
    task_id: TaskId,
    measurements: Vec<V::Measurement>,
    cfgs: (&HpkeConfig, &HpkeConfig),
    time: u64,
) -> Result<Local>
where
    V: Client<16> + Aggregator<16, 16, AggregationParam = ()> + Sync,
    V::Measurement: Sync,
    V::PublicShare: Send + Sync,
    V::InputShare: Send + Sync,
    V::OutputShare: Send,
    V::AggregateShare: Send,
{
    let (shares, reports, shard_s) =
        local_phases(vdaf, task_id, &measurements, cfgs.0, cfgs.1, time)?;
    // The baseline's own verification key: the server's never leaves the
    // admin request, and preparation costs the same with any key.
    let mut verify_key = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut verify_key);
    let prepare_s = raw_prepare(vdaf, &verify_key, &shares)?;
    drop(shares);
    // HPKE needs keys the benchmark holds; seal a copy of the reports
    // under two fresh key pairs just for timing their opening.
    let leader_key = generate_keypair(1)?;
    let helper_key = generate_keypair(2)?;
    let (_, copies, _) = local_phases(
        vdaf,
        task_id,
        &measurements,
        leader_key.config(),
        helper_key.config(),
        time,
    )?;
    let hpke_s = hpke_open_all(task_id, &copies, &leader_key, &helper_key)?;
    Ok(Local {
        reports,
        shard_s,
        prepare_s,
        hpke_s,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.reports > 0, "--reports must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let spec: VdafSpec = args
        .vdaf
        .parse()
        .map_err(|e| anyhow::anyhow!("--vdaf {}: {e}", args.vdaf))?;
    let leader = dap_client::endpoint(&format!("{}/dap", args.leader.trim_end_matches('/')))?;
    let helper = dap_client::endpoint(&format!("{}/dap", args.helper.trim_end_matches('/')))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()?;
    let credential = CollectorCredential::generate(1, TaskSecrets::random().aggregator_token)?;
    let config = DapTaskConfig {
        leader: leader.clone(),
        helper: helper.clone(),
        vdaf: spec,
        dp: DpStrategy::None,
        min_batch_size: 1,
        time_precision: PRECISION,
        collector_hpke_config: credential.hpke_config()?,
        collector_token: credential.token.clone(),
    };
    let task = dap_client::provision_with(
        &http,
        &config,
        &read_token(&args.leader_admin_token_file)?,
        &read_token(&args.helper_admin_token_file)?,
        &TaskSecrets::random(),
    )
    .await?;
    let task_id: TaskId = task
        .task_id
        .parse()
        .map_err(|_| anyhow::anyhow!("bad task id"))?;
    let leader_cfg = hpke_config(&http, &leader, &task.task_id).await?;
    let helper_cfg = hpke_config(&http, &helper, &task.task_id).await?;

    // The measurements and their truth.
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let measurements: Vec<DapMeasurement> = (0..args.reports)
        .map(|_| DapMeasurement::random(&spec, &mut rng))
        .collect();
    let mut truth: Vec<u128> = Vec::new();
    for m in &measurements {
        let v = m.as_vector();
        if truth.len() < v.len() {
            truth.resize(v.len(), 0);
        }
        for (t, x) in truth.iter_mut().zip(v) {
            *t += x;
        }
    }

    let time = now() / PRECISION * PRECISION;
    let vdaf = spec.instantiate()?;
    macro_rules! local {
        ($v:expr, $variant:ident) => {{
            let ms = measurements
                .iter()
                .map(|m| match m {
                    DapMeasurement::$variant(x) => x.clone(),
                    _ => unreachable!("random() makes measurements of the spec"),
                })
                .collect();
            typed_local(&$v, task_id, ms, (&leader_cfg, &helper_cfg), time)
        }};
    }
    eprintln!(
        "dap-load: {} reports of {spec}: sharding, raw preparation, HPKE",
        args.reports
    );
    let local = tokio::task::block_in_place(|| match vdaf {
        DapVdaf::Count(v) => local!(v, Count),
        DapVdaf::Sum(v) => local!(v, Sum),
        DapVdaf::Histogram(v) => local!(v, Histogram),
        DapVdaf::SumVec(v) => local!(v, SumVec),
    })?;
    let n = args.reports as f64;

    // Upload, then collect.
    eprintln!(
        "dap-load: uploading to {leader} with {} in flight",
        args.concurrency
    );
    let bar = indicatif::ProgressBar::new(args.reports as u64);
    let url = leader.join(&format!("tasks/{}/reports", task.task_id))?;
    let start = Instant::now();
    let bodies = local.reports.into_iter().map(|s| s.body);
    let mut uploads = futures::stream::iter(bodies)
        .map(|body| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let resp = http
                    .put(url)
                    .header(reqwest::header::CONTENT_TYPE, Report::MEDIA_TYPE)
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                if !status.is_success() {
                    bail!("upload: HTTP {status}: {}", resp.text().await?);
                }
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    while let Some(r) = uploads.next().await {
        r?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let upload_s = start.elapsed().as_secs_f64();
    eprintln!("dap-load: uploaded in {upload_s:.2} s; collecting");
    let interval_start = time - 10 * PRECISION;
    // Poll every 50 ms: janus_collector's own schedule backs off to
    // seconds, which would be measured as the service's time.
    let poll = dap_client::ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(50),
        multiplier: 1.0,
        max_elapsed_time: Some(Duration::from_secs(args.max_wait)),
        ..Default::default()
    };
    let collection = dap_client::collect(
        &task.task_id,
        &leader,
        &spec,
        &credential,
        interval_start,
        30 * PRECISION,
        poll,
    )
    .await?;
    let service_s = start.elapsed().as_secs_f64();
    ensure!(
        collection.report_count == args.reports as u64,
        "collected {} reports, uploaded {}",
        collection.report_count,
        args.reports
    );
    let mut expected = truth.clone();
    expected.resize(collection.raw.len().max(truth.len()), 0);
    ensure!(
        collection.raw == expected,
        "the collected aggregate differs from the truth"
    );

    let raw = n / local.prepare_s;
    let service = n / service_s;
    // What the two aggregators could reach if preparation and HPKE were
    // all they did: DAP-09 makes each open one HPKE ciphertext per report.
    let bound = n / (local.prepare_s + local.hpke_s);
    println!(
        "RESULT vdaf={spec} reports={} concurrency={} threads={} raw_prepare_per_s={:.0} \
         hpke_open_per_s={:.0} prepare_plus_hpke_per_s={:.0} client_shard_seal_per_s={:.0} \
         upload_per_s={:.0} service_per_s={:.0} service_s={:.2} ratio={:.3} \
         ratio_to_prepare_plus_hpke={:.3} exact=true",
        args.reports,
        args.concurrency,
        rayon::current_num_threads(),
        raw,
        n / local.hpke_s,
        bound,
        n / local.shard_s,
        n / upload_s,
        service,
        service_s,
        service / raw,
        service / bound,
    );
    Ok(())
}
