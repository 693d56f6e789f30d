//! `hetally-client dap ...`: DAP-09 tasks on a leader/helper pair of
//! `hetally-server`s (the two-server Prio3 mode). Thin over [`crate::dap`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hetally_dap::hpke::CollectorCredential;
use hetally_dap::vdaf::{DpStrategy, VdafSpec};
use rand::SeedableRng;

use crate::cli::CliError;
use crate::dap::{self, DapClientError, DapMeasurement, DapTaskConfig};
use crate::ClientOptions;

/// DAP subcommands.
#[derive(Debug, Subcommand)]
pub enum DapCommand {
    /// Create a DAP task on both aggregators (needs both admin tokens).
    ///
    /// Makes a fresh task id, Prio3 verification key and aggregator token,
    /// and provisions the helper, then the leader. The collector's HPKE
    /// config and token come from its credential (`hetally-keytool keygen
    /// --scheme dap-hpke`).
    ///
    /// Example: hetally-client dap task-create --leader http://a:8080/dap/ --helper http://b:8080/dap/ --leader-admin-token-file a/admin.token --helper-admin-token-file b/admin.token --vdaf prio3histogram:10 --min-batch-size 100 --time-precision 3600 --collector-credential keys/collector-credential.json
    TaskCreate(TaskCreateArgs),
    /// Upload one measurement with janus_client.
    ///
    /// Example: hetally-client dap send --leader http://a:8080/dap/ --helper http://b:8080/dap/ --task TASK_ID --vdaf prio3histogram:10 --time-precision 3600 --value 3
    Send(SendArgs),
    /// Upload many random measurements with janus_client; write their
    /// true sum ({"report_count":N,"values":[..]}) to --truth-out.
    Simulate(SimulateArgs),
    /// Collect a batch interval with janus_collector and print it; values
    /// above p/2 (DP noise below zero) are printed as negative numbers.
    ///
    /// Example: hetally-client dap collect --leader http://a:8080/dap/ --task TASK_ID --vdaf prio3histogram:10 --collector-credential keys/collector-credential.json --start 1700000000 --duration 3600
    Collect(CollectArgs),
    /// Rotate a task's HPKE configuration on one aggregator (its admin
    /// token): the aggregator makes a new key pair and serves its
    /// configuration from then on; the previous ones keep decrypting
    /// reports for the grace period (the server's --hpke-grace-secs, or
    /// --retire-previous-after), then uploads naming them get
    /// outdatedConfig. Run it on the leader and on the helper separately.
    ///
    /// Example: hetally-client dap hpke-rotate --aggregator http://a:8080/dap/ --admin-token-file a/admin.token --task TASK_ID
    HpkeRotate(HpkeRotateArgs),
}

/// Arguments of `dap hpke-rotate`.
#[derive(Debug, Args)]
pub struct HpkeRotateArgs {
    /// The aggregator's DAP endpoint (`http://HOST:PORT/dap/`).
    #[arg(long)]
    aggregator: String,
    /// Its admin token file.
    #[arg(long)]
    admin_token_file: PathBuf,
    /// Task id (base64url).
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// Seconds the previous configurations keep decrypting [default: the
    /// server's --hpke-grace-secs]; 0 retires them at once.
    #[arg(long)]
    retire_previous_after: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Where a task lives and what it measures.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The leader's DAP endpoint (`http://HOST:PORT/dap/`).
    #[arg(long)]
    leader: String,
    /// The helper's DAP endpoint.
    #[arg(long)]
    helper: String,
    /// Task id (base64url).
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// The task's VDAF: prio3count, prio3sum:BITS,
    /// prio3histogram:LENGTH[:CHUNK] or prio3sumvec:LENGTH:BITS[:CHUNK].
    #[arg(long)]
    vdaf: String,
    /// The task's time precision, seconds.
    #[arg(long)]
    time_precision: u64,
}

/// Arguments of `dap task-create`.
#[derive(Debug, Args)]
pub struct TaskCreateArgs {
    /// The leader's DAP endpoint (`http://HOST:PORT/dap/`).
    #[arg(long)]
    leader: String,
    /// The helper's DAP endpoint.
    #[arg(long)]
    helper: String,
    /// The leader's admin token file.
    #[arg(long)]
    leader_admin_token_file: PathBuf,
    /// The helper's admin token file.
    #[arg(long)]
    helper_admin_token_file: PathBuf,
    /// prio3count, prio3sum:BITS, prio3histogram:LENGTH[:CHUNK] or
    /// prio3sumvec:LENGTH:BITS[:CHUNK].
    #[arg(long)]
    vdaf: String,
    /// none, or pure-dp-discrete-laplace:EPSILON (histogram and sumvec):
    /// each aggregator adds discrete Laplace noise of scale
    /// sensitivity/EPSILON to its aggregate share.
    #[arg(long, default_value = "none")]
    dp: String,
    /// Fewest reports a batch may hold.
    #[arg(long)]
    min_batch_size: u64,
    /// Report times are rounded down to this many seconds; batch
    /// intervals are multiples of it.
    #[arg(long)]
    time_precision: u64,
    /// The collector's credential (janus_collector JSON); only its public
    /// HPKE config and its token are sent.
    #[arg(long)]
    collector_credential: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `dap send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// The measurement: 0/1, an integer, a bucket index, or
    /// comma-separated integers (sumvec).
    #[arg(long, allow_hyphen_values = true)]
    value: String,
}

/// Arguments of `dap simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Reports to upload.
    #[arg(long)]
    reports: u64,
    /// Uploads in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seed of the random measurements (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the truth.
    #[arg(long)]
    truth_out: Option<PathBuf>,
}

/// Arguments of `dap collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The leader's DAP endpoint.
    #[arg(long)]
    leader: String,
    /// Task id (base64url).
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// The task's VDAF.
    #[arg(long)]
    vdaf: String,
    /// The collector's credential (janus_collector JSON, from
    /// `hetally-keytool keygen --scheme dap-hpke`).
    #[arg(long)]
    collector_credential: PathBuf,
    /// Batch interval start, Unix seconds (a multiple of the precision).
    #[arg(long)]
    start: u64,
    /// Batch interval length, seconds (a multiple of the precision).
    #[arg(long)]
    duration: u64,
    /// Give up after this many seconds of polling. The collection job
    /// goes on at the leader: run the command again with the --job-id it
    /// printed to pick up its result.
    #[arg(long, default_value_t = 300)]
    max_wait: u64,
    /// Resume the collection job with this id (base64url, printed on
    /// stderr when a collection starts) instead of starting a new one. The
    /// interval must be the same; asking for it under a new id once a job
    /// holds it is refused (batchQueriedTooManyTimes).
    #[arg(long, allow_hyphen_values = true)]
    job_id: Option<String>,
}

impl From<DapClientError> for CliError {
    fn from(e: DapClientError) -> Self {
        let code = match &e {
            DapClientError::Usage(_) => 2,
            DapClientError::Server(_) => 4,
            _ => 1,
        };
        CliError {
            message: e.to_string(),
            code,
        }
    }
}

fn usage(m: impl Into<String>) -> CliError {
    CliError {
        message: m.into(),
        code: 2,
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

fn spec(text: &str) -> Result<VdafSpec, CliError> {
    text.parse().map_err(|e| usage(format!("--vdaf: {e}")))
}

/// Runs a `dap` subcommand, connecting with `options` (CA certificates).
pub async fn run(cmd: DapCommand, options: &ClientOptions) -> Result<(), CliError> {
    let http = options.http_client()?;
    match cmd {
        DapCommand::TaskCreate(a) => {
            let cred = CollectorCredential::from_json(&read(&a.collector_credential)?)
                .map_err(|e| usage(e.to_string()))?;
            let config = DapTaskConfig {
                leader: dap::endpoint(&a.leader)?,
                helper: dap::endpoint(&a.helper)?,
                vdaf: spec(&a.vdaf)?,
                dp: a
                    .dp
                    .parse::<DpStrategy>()
                    .map_err(|e| usage(format!("--dp: {e}")))?,
                min_batch_size: a.min_batch_size,
                time_precision: a.time_precision,
                collector_hpke_config: cred.hpke_config().map_err(|e| usage(e.to_string()))?,
                collector_token: cred.token.clone(),
            };
            let token = |p: &PathBuf| -> Result<String, CliError> {
                Ok(String::from_utf8_lossy(&read(p)?).trim().to_string())
            };
            let task = dap::provision(
                &http,
                &config,
                &token(&a.leader_admin_token_file)?,
                &token(&a.helper_admin_token_file)?,
            )
            .await?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&task).unwrap_or_default()
                );
            } else {
                println!("task id     {}", task.task_id);
                println!("vdaf        {}", task.vdaf);
                println!("dp          {}", task.dp_strategy);
                println!("relation    {}", task.relation);
                println!("guarantee   {}", task.guarantee);
                println!("leader      {}", task.leader);
                println!("helper      {}", task.helper);
            }
            Ok(())
        }
        DapCommand::Send(a) => {
            let spec = spec(&a.task.vdaf)?;
            let m = DapMeasurement::parse(&spec, &a.value)?;
            dap::upload(
                &a.task.task,
                &dap::endpoint(&a.task.leader)?,
                &dap::endpoint(&a.task.helper)?,
                &spec,
                a.task.time_precision,
                vec![m],
                1,
                false,
                &http,
            )
            .await?;
            println!("uploaded 1 report");
            Ok(())
        }
        DapCommand::Simulate(a) => {
            let spec = spec(&a.task.vdaf)?;
            let seed = a.seed.unwrap_or_else(rand::random);
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let ms: Vec<DapMeasurement> = (0..a.reports)
                .map(|_| DapMeasurement::random(&spec, &mut rng))
                .collect();
            let mut truth: Vec<u128> = Vec::new();
            for m in &ms {
                let v = m.as_vector();
                if truth.len() < v.len() {
                    truth.resize(v.len(), 0);
                }
                for (t, x) in truth.iter_mut().zip(v) {
                    *t += x;
                }
            }
            if let VdafSpec::Histogram { length, .. } = spec {
                truth.resize(length, 0);
            }
            let started = std::time::Instant::now();
            let n = dap::upload(
                &a.task.task,
                &dap::endpoint(&a.task.leader)?,
                &dap::endpoint(&a.task.helper)?,
                &spec,
                a.task.time_precision,
                ms,
                a.concurrency,
                true,
                &http,
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "uploaded {n} reports in {secs:.2} s ({:.0} reports/s), seed {seed}",
                n as f64 / secs
            );
            if let Some(path) = a.truth_out {
                let body = serde_json::json!({
                    "report_count": n,
                    "values": truth.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                });
                std::fs::write(&path, body.to_string())
                    .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            }
            Ok(())
        }
        DapCommand::HpkeRotate(a) => {
            let token = String::from_utf8_lossy(&read(&a.admin_token_file)?)
                .trim()
                .to_string();
            let r = dap::rotate_hpke_config(
                &http,
                &dap::endpoint(&a.aggregator)?,
                &a.task,
                &token,
                a.retire_previous_after,
            )
            .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!("task id      {}", r.task_id);
                println!("config id    {} (active)", r.config_id);
                println!("hpke config  {}", r.hpke_config);
                for p in &r.previous {
                    println!(
                        "config id    {} decrypts until {}",
                        p.config_id, p.expires_at
                    );
                }
            }
            Ok(())
        }
        DapCommand::Collect(a) => {
            let spec = spec(&a.vdaf)?;
            let cred = CollectorCredential::from_json(&read(&a.collector_credential)?)
                .map_err(|e| usage(e.to_string()))?;
            let job_id = match a.job_id {
                Some(id) => {
                    dap::parse_collection_job_id(&id)?;
                    eprintln!("resuming collection job {id}");
                    id
                }
                None => {
                    let id = dap::new_collection_job_id();
                    eprintln!(
                        "collection job {id} (if this command stops before the result, run it \
                         again with --job-id {id})"
                    );
                    id
                }
            };
            let c = dap::collect_with(
                &a.task,
                &dap::endpoint(&a.leader)?,
                &spec,
                &cred,
                a.start,
                a.duration,
                dap::poll_backoff(Duration::from_secs(a.max_wait)),
                &job_id,
                &http,
            )
            .await?;
            let body = serde_json::json!({
                "job_id": job_id,
                "report_count": c.report_count,
                "start": c.start,
                "duration": c.duration,
                "values": c.values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            });
            println!("{body}");
            Ok(())
        }
    }
}
