//! The `hetally-client` command line: argument parsing and output. Each
//! command is a few lines over the library.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use hetally_protocol::api::{CreateTaskRequest, TaskInfo};
use hetally_protocol::codec::FileKind;
use hetally_protocol::dp::{MechanismSpec, Relation};
use hetally_protocol::keyfile;
use hetally_protocol::{Measurement, TaskId};
use reqwest::Url;
use serde_json::json;

use crate::simulate::random_seed;
use crate::{
    fetch_task_with, parse_server_url, parse_server_urls, simulate, AdminClient, Client,
    ClientError, ClientOptions, CollectorClient, RetryPolicy, SimulateOptions, TrusteeClient,
};
use hetally_client_core::Arithmetic;

/// Send encrypted measurements to a hetally server, manage tasks, collect
/// releases.
///
/// A typical flow: the collector makes a key pair with `hetally-keytool
/// keygen`; the operator creates a task with `task create` (which prints the
/// task id and the collector token); apps `send` measurements; the collector
/// `collect`s a batch and decrypts it offline with `hetally-keytool decrypt`.
#[derive(Debug, Parser)]
#[command(name = "hetally-client", version, about, long_about)]
pub struct Cli {
    /// A PEM file of CA certificates to trust for https:// servers besides
    /// the system's (a server whose certificate a private CA signed, or a
    /// self-signed one).
    #[arg(long, global = true, env = "HETALLY_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, show and list tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Encrypt one measurement and upload it.
    ///
    /// Example: hetally-client send --server http://127.0.0.1:8080 --task TASK_ID --value 3
    Send(SendArgs),
    /// Upload many random valid measurements and write their true sum.
    ///
    /// Reports are encrypted first (on every core), then uploaded with
    /// CONCURRENCY requests in flight; the upload rate is printed at the
    /// end. The truth file holds the element-wise sum of the acknowledged
    /// reports: {"report_count":N,"values":[..]}.
    ///
    /// Example: hetally-client simulate --server http://127.0.0.1:8080 --task TASK_ID --reports 10000 --truth-out truth.json
    Simulate(SimulateArgs),
    /// Release (or re-fetch) the encrypted aggregate of a batch interval.
    ///
    /// The interval [START, START+DURATION) must be aligned to the task's
    /// time precision, hold at least its minimum batch size, and not overlap
    /// an earlier release. Asking again for the same interval returns the
    /// same bytes.
    ///
    /// Example: hetally-client collect --server http://127.0.0.1:8080 --task TASK_ID --token-file collector.token --start 1700000000 --duration 3600 --out batch.agg
    Collect(CollectArgs),
    /// Trustees: draw this trustee's DP noise for a pending release,
    /// encrypt it under the task's key and upload it.
    ///
    /// For a task whose trustees draw its noise (task create
    /// --trustee-noise). After the collector's `collect` has claimed the
    /// batch (it answers that the release waits for noise), each
    /// contributing trustee runs this once with its own token; the shares
    /// are drawn from the operating system's randomness, never written
    /// anywhere, and only their encryption leaves this machine. Running it
    /// again for the same release is refused (a trustee contributes once).
    ///
    /// Example: hetally-client contribute-noise --server https://hetally.example --task TASK_ID --start 1700000000 --trustee 2 --token-file trustee-2.token
    ContributeNoise(ContributeNoiseArgs),
    /// Show a task's releases: the audit log (time, interval, reports,
    /// mechanism, budget spent and left).
    Releases(CollectorArgs),
    /// Show a task's report counts and privacy budget.
    Status(CollectorArgs),
    /// DAP-09 tasks on a leader/helper pair (two-server Prio3): create,
    /// send, simulate, collect.
    #[command(subcommand)]
    #[cfg(feature = "dap")]
    Dap(crate::dap_cli::DapCommand),
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Create a task (needs the server's admin token).
    ///
    /// Prints the task id and the collector token. The token is shown only
    /// once: give it to the collector (with --token-out it is written to a
    /// file with mode 0600).
    ///
    /// Example: hetally-client task create --server http://127.0.0.1:8080 --admin-token-file hetally-data/admin.token --public-key keys/collector.pk --measurement histogram:11 --min-batch-size 100 --time-precision 60
    Create(Box<TaskCreateArgs>),
    /// Show a task, after checking its definition hashes to its id.
    Get(TaskGetArgs),
    /// List every task (needs the admin token).
    List(TaskListArgs),
}

#[derive(Debug, Args)]
struct ServerArg {
    /// The server's base URL.
    #[arg(long, env = "HETALLY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
}

#[derive(Debug, Args)]
struct TaskCreateArgs {
    #[command(flatten)]
    server: ServerArg,
    /// File holding the server's admin token (DATA_DIR/admin.token).
    #[arg(long)]
    admin_token_file: PathBuf,
    /// The collector's public key file (from `hetally-keytool keygen`); its
    /// scheme (paillier or tfhe) is the task's backend.
    #[arg(long)]
    public_key: PathBuf,
    /// count, sum:BITS, histogram:BUCKETS or sumvec:LENGTH:BITS.
    #[arg(long)]
    measurement: String,
    /// Fewest reports a release may hold.
    #[arg(long)]
    min_batch_size: u64,
    /// Most reports a release may hold. Paillier: default 2^32-1; smaller
    /// values pack more counters per ciphertext. TFHE: default and maximum
    /// are the largest batch the LWE noise and plaintext space allow for
    /// the measurement and DP mechanism (the server says how many when a
    /// value is too large); smaller values allow a smaller Delta.
    #[arg(long)]
    max_batch_size: Option<u64>,
    /// Report times are rounded down to this many seconds; batch intervals
    /// are multiples of it.
    #[arg(long)]
    time_precision: u64,
    /// Noise on every release: none, laplace:EPSILON (pure DP),
    /// gaussian:RHO (zCDP) or gaussian-eps:EPSILON:DELTA (converted to rho).
    #[arg(long, default_value = "none")]
    dp: String,
    /// Total privacy budget over all releases (epsilon for laplace, rho for
    /// gaussian); required with --dp.
    #[arg(long)]
    budget: Option<String>,
    /// Which batches the DP guarantee treats as neighbours (part of the task
    /// id). `replace-one`: same-size batches differing in one report's
    /// value; the report count of every release is public, and a histogram
    /// is calibrated for L1 sensitivity 2. `add-remove`: batches differing
    /// by one report; the report count is released only with noise (the
    /// same noise as the values, covered by the same epsilon or rho), the
    /// collector never sees an exact count, and a batch whose noisy count
    /// falls outside the batch size limits is withheld. Add-remove needs
    /// --dp and the paillier scheme. See docs/dp.md.
    #[arg(long, default_value = "replace-one", value_parser = parse_relation)]
    relation: Relation,
    /// Accept reports without zero-knowledge proofs of validity. By default
    /// every report proves that it encrypts a valid measurement (a 0/1
    /// count, an in-range sum, a one-hot histogram) and the server rejects
    /// those that do not. With this flag the server TRUSTS EVERY CLIENT: one
    /// report can add any value to an aggregate. Reports are smaller and
    /// cheaper without proofs; see docs/proofs.md (Paillier) and
    /// docs/tfhe.md (TFHE: seconds of proving per report, and the server
    /// makes the task's CRS when the task is created).
    #[arg(long)]
    no_input_proofs: bool,
    /// Seconds after which a report is too old to be accepted (the server
    /// answers reportExpired) and the reports of intervals never released
    /// are deleted by the server's garbage collector; at least the time
    /// precision. Not part of the task id [default: the server's
    /// --report-expiry-age-secs, 7 days].
    #[arg(long)]
    report_expiry_age_secs: Option<u64>,
    /// Have the trustees of a threshold key draw the DP noise instead of
    /// the server: CONTRIBUTORS (distinct trustees who each add a share to
    /// every release) or CONTRIBUTORS/HONEST (how many of them the
    /// guarantee assumes honest; default 1, each share then carries the
    /// whole noise). Needs --dp gaussian:RHO, replace-one and a key from
    /// `hetally-keytool keygen --trustees N --threshold T`. The server
    /// issues one token per trustee (see --trustee-tokens-out). See
    /// docs/threshold.md.
    #[arg(long, value_name = "CONTRIBUTORS[/HONEST]")]
    trustee_noise: Option<String>,
    /// With --trustee-noise: write trustee I's token to DIR/trustee-I.token
    /// (mode 0600) instead of printing the tokens.
    #[arg(long, value_name = "DIR")]
    trustee_tokens_out: Option<PathBuf>,
    /// Also write the collector token to this file (mode 0600).
    #[arg(long)]
    token_out: Option<PathBuf>,
    /// Print {"task_id":..,"collector_token":..} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TaskGetArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TaskListArgs {
    #[command(flatten)]
    server: ServerArg,
    /// File holding the server's admin token.
    #[arg(long)]
    admin_token_file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ReplicasArg {
    /// The server's base URL, or several replicas' URLs separated by commas
    /// (uploads are spread over them and retried on the next).
    #[arg(long, env = "HETALLY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
}

#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    server: ReplicasArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// The measurement: 0/1 for count, a number for sum, a bucket index for
    /// histogram, comma-separated numbers for sumvec.
    #[arg(long, allow_hyphen_values = true)]
    value: String,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    server: ReplicasArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// Number of reports.
    #[arg(long)]
    reports: u64,
    /// Seed for the random values [default: random]; encryption randomness
    /// is always fresh.
    #[arg(long)]
    seed: Option<u64>,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Report time, Unix seconds [default: now].
    #[arg(long)]
    time: Option<u64>,
    /// Upload attempts per report, including the first.
    #[arg(long, default_value_t = RetryPolicy::default().attempts)]
    attempts: u32,
    /// Where to write the true aggregate (JSON).
    #[arg(long)]
    truth_out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CollectorArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// File holding the task's collector token.
    #[arg(long)]
    token_file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CollectArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// File holding the task's collector token.
    #[arg(long)]
    token_file: PathBuf,
    /// Batch interval start, Unix seconds.
    #[arg(long)]
    start: u64,
    /// Batch interval length, seconds.
    #[arg(long)]
    duration: u64,
    /// Where to write the aggregate file.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
    /// A task whose trustees draw its noise: keep asking, as the server's
    /// Retry-After says, for up to this many seconds while the release
    /// waits for their contributions. Without it (0) the command exits
    /// with code 6 and says how many have contributed.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    wait: u64,
}

#[derive(Debug, Args)]
struct ContributeNoiseArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The task id. Ids are base64url and may start with '-':
    /// `--task -abc…` and `--task=-abc…` both work.
    #[arg(long, allow_hyphen_values = true)]
    task: String,
    /// The release's batch start, Unix seconds (what the collector asked
    /// for).
    #[arg(long)]
    start: u64,
    /// This trustee's index, as in its key share (trustee-I.share).
    #[arg(long)]
    trustee: u16,
    /// File holding this trustee's token (from task create).
    #[arg(long)]
    token_file: PathBuf,
    /// Print the server's receipt as JSON.
    #[arg(long)]
    json: bool,
}

/// Errors of the command line: a message and an exit code.
#[derive(Debug)]
pub struct CliError {
    /// One line for stderr.
    pub message: String,
    /// Process exit code.
    pub code: u8,
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Usage(_) => 2,
            ClientError::Unreachable { .. } => 3,
            ClientError::Server { .. } => 4,
            ClientError::Task(_) => 5,
            ClientError::AwaitingNoise(_) => 6,
            _ => 1,
        };
        CliError {
            message: e.to_string(),
            code,
        }
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        code: 2,
    }
}

fn read_token(path: &Path) -> Result<String, CliError> {
    let token = fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read token file {}: {e}", path.display())))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(usage(format!("token file {} is empty", path.display())));
    }
    Ok(token)
}

fn task_id(s: &str) -> Result<TaskId, CliError> {
    TaskId::from_str(s).map_err(|e| usage(e.to_string()))
}

fn server(arg: &ServerArg) -> Result<Url, CliError> {
    Ok(parse_server_url(&arg.server)?)
}

fn replicas(arg: &ReplicasArg) -> Result<Vec<Url>, CliError> {
    Ok(parse_server_urls(&arg.server)?)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn print_json(value: &impl serde::Serialize) {
    // Serialising plain data structures cannot fail.
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

fn parse_relation(s: &str) -> Result<Relation, String> {
    Relation::from_str(s).map_err(|e| e.to_string())
}

fn print_task(info: &TaskInfo) {
    println!("task id:         {}", info.task_id);
    println!("scheme:          {}", info.scheme);
    println!("measurement:     {}", info.measurement);
    println!(
        "batch size:      {} to {} reports",
        info.min_batch_size, info.max_batch_size
    );
    println!("time precision:  {} s", info.time_precision);
    if info.report_expiry_age > 0 {
        println!("report expiry:   {} s", info.report_expiry_age);
    }
    println!("dp:              {}", info.dp);
    println!("relation:        {}", info.relation);
    println!("guarantee:       {}", info.guarantee);
    if let Some(b) = &info.budget {
        println!("budget:          {b}");
    }
    println!("key fingerprint: {}", info.key_fingerprint);
    if let Some(h) = &info.crs_sha256 {
        println!("crs sha-256:     {h}");
    }
    println!(
        "input proofs:    {}",
        if info.input_proofs {
            "on (the server verifies every report)"
        } else {
            "off (the server trusts every client)"
        }
    );
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let options = match &cli.ca_file {
        Some(path) => ClientOptions::new().with_ca_file(path)?,
        None => ClientOptions::new(),
    };
    let options = &options;
    match cli.command {
        #[cfg(feature = "dap")]
        Command::Dap(c) => crate::dap_cli::run(c, options).await,
        Command::Task(TaskCommand::Create(a)) => task_create(*a, options).await,
        Command::Task(TaskCommand::Get(a)) => {
            let (info, _) =
                fetch_task_with(&server(&a.server)?, &task_id(&a.task)?, options).await?;
            if a.json {
                print_json(&info);
            } else {
                print_task(&info);
                println!("(definition verified against the task id)");
            }
            Ok(())
        }
        Command::Task(TaskCommand::List(a)) => {
            let admin = AdminClient::with_options(
                server(&a.server)?,
                read_token(&a.admin_token_file)?,
                options,
            )?;
            let list = admin.list_tasks().await?;
            if a.json {
                print_json(&list);
            } else {
                for t in &list.tasks {
                    println!(
                        "{}  {:<16} {:<14} {}",
                        t.task_id, t.measurement, t.dp, t.scheme
                    );
                }
                println!("{} task(s)", list.tasks.len());
            }
            Ok(())
        }
        Command::Send(a) => {
            let client = Client::connect_with_options(
                replicas(&a.server)?,
                task_id(&a.task)?,
                Arithmetic::fastest(),
                options,
            )
            .await?;
            let values = client
                .definition()
                .measurement
                .parse_value(&a.value)
                .map_err(|e| usage(e.to_string()))?;
            let id = client.send(&values).await?;
            println!("sent report {id}");
            Ok(())
        }
        Command::Simulate(a) => simulate_command(a, options).await,
        Command::Collect(a) => {
            if a.out.exists() && !a.force {
                return Err(usage(format!(
                    "{} exists (pass --force to overwrite it)",
                    a.out.display()
                )));
            }
            let collector = CollectorClient::with_options(
                server(&a.server)?,
                task_id(&a.task)?,
                read_token(&a.token_file)?,
                options,
            )?;
            let deadline = std::time::Instant::now() + Duration::from_secs(a.wait);
            let release = loop {
                match collector.release(a.start, a.duration).await {
                    Err(ClientError::AwaitingNoise(w)) if std::time::Instant::now() < deadline => {
                        eprintln!(
                            "waiting for the trustees' noise: {} of {} contributions",
                            w.contributions, w.needed
                        );
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        tokio::time::sleep(left.min(Duration::from_secs(2))).await;
                    }
                    other => break other?,
                }
            };
            keyfile::write_public_file(&a.out, &release.aggregate, a.force).map_err(|e| {
                CliError {
                    message: e.to_string(),
                    code: 3,
                }
            })?;
            let what = if release.created {
                "released"
            } else {
                "fetched the earlier release of"
            };
            println!(
                "{what} batch [{}, {}) -> {} ({} bytes); decrypt it with hetally-keytool decrypt",
                a.start,
                a.start + a.duration,
                a.out.display(),
                release.aggregate.len()
            );
            Ok(())
        }
        Command::ContributeNoise(a) => {
            if a.trustee == 0 {
                return Err(usage(
                    "trustees are numbered from 1 (--trustee 1 is the first)",
                ));
            }
            let trustee = TrusteeClient::with_options(
                server(&a.server)?,
                task_id(&a.task)?,
                a.trustee,
                read_token(&a.token_file)?,
                options,
            )?;
            let (receipt, created) = trustee.contribute(a.start, options).await?;
            if a.json {
                print_json(&receipt);
            } else {
                let what = if created {
                    "stored"
                } else {
                    "already stored (the same file)"
                };
                println!(
                    "trustee {}'s noise for the batch starting at {}: {what}; the release has {} \
                     of the {} contributions it takes",
                    receipt.trustee, a.start, receipt.contributions, receipt.needed
                );
            }
            Ok(())
        }
        Command::Releases(a) => {
            let collector = CollectorClient::with_options(
                server(&a.server)?,
                task_id(&a.task)?,
                read_token(&a.token_file)?,
                options,
            )?;
            let list = collector.releases().await?;
            if a.json {
                print_json(&list);
            } else {
                println!(
                    "{:<12} {:>8} {:>9} {:<8} {:<18} {:>10} {:>12}",
                    "start", "duration", "reports", "state", "mechanism", "cost", "budget left"
                );
                for r in &list.releases {
                    // Add-remove tasks: the count as released, with noise.
                    let reports = match (r.report_count, r.noisy_report_count) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(noisy)) => format!("~{noisy}"),
                        (None, None) => "-".into(),
                    };
                    println!(
                        "{:<12} {:>8} {:>9} {:<8} {:<18} {:>10} {:>12}",
                        r.batch_start,
                        r.batch_duration,
                        reports,
                        r.state,
                        r.mechanism,
                        r.cost,
                        r.budget_remaining_after.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        Command::Status(a) => {
            let collector = CollectorClient::with_options(
                server(&a.server)?,
                task_id(&a.task)?,
                read_token(&a.token_file)?,
                options,
            )?;
            let status = collector.status().await?;
            if a.json {
                print_json(&status);
            } else {
                let hidden = "hidden (add-remove: report counts leave the server only with noise)";
                let count =
                    |n: Option<u64>| n.map_or_else(|| hidden.to_string(), |n| n.to_string());
                println!("reports stored:     {}", count(status.reports));
                println!("not yet released:   {}", count(status.unreleased_reports));
                println!("releases:           {}", status.releases);
                if let Some(b) = &status.budget {
                    println!(
                        "budget ({}):   {} spent of {}, {} left",
                        b.unit, b.spent, b.total, b.remaining
                    );
                }
            }
            Ok(())
        }
    }
}

async fn task_create(a: TaskCreateArgs, options: &ClientOptions) -> Result<(), CliError> {
    // The server parses and checks the key; here only that it is a public
    // key file, so a secret key is never sent by mistake.
    let key = keyfile::read_capped(&a.public_key)
        .map_err(|e| usage(format!("{}: {e}", a.public_key.display())))?;
    keyfile::key_file_scheme(&key, FileKind::PublicKey).map_err(|e| {
        usage(format!(
            "{} is not a collector public key ({e}); pass the collector.pk that \
             `hetally-keytool keygen` made",
            a.public_key.display()
        ))
    })?;
    Measurement::from_str(&a.measurement).map_err(|e| usage(e.to_string()))?;
    let spec = MechanismSpec::from_str(&a.dp).map_err(|e| usage(e.to_string()))?;
    if !a.json && matches!(spec, MechanismSpec::GaussianEps { .. }) {
        eprintln!("{}", spec.explain());
    }
    let admin = AdminClient::with_options(
        server(&a.server)?,
        read_token(&a.admin_token_file)?,
        options,
    )?;
    let response = admin
        .create_task(&CreateTaskRequest {
            public_key: STANDARD.encode(&key),
            measurement: a.measurement,
            min_batch_size: a.min_batch_size,
            max_batch_size: a.max_batch_size,
            time_precision: a.time_precision,
            dp: Some(spec.mechanism().to_string()),
            budget: a.budget,
            input_proofs: Some(!a.no_input_proofs),
            relation: Some(a.relation.name().to_string()),
            report_expiry_age: a.report_expiry_age_secs,
            trustee_noise: a.trustee_noise.clone(),
        })
        .await?;
    let trustee_tokens = response.trustee_tokens.clone().unwrap_or_default();
    if let Some(dir) = &a.trustee_tokens_out {
        fs::create_dir_all(dir).map_err(|e| CliError {
            message: format!("cannot create {}: {e}", dir.display()),
            code: 3,
        })?;
        for (i, token) in trustee_tokens.iter().enumerate() {
            let path = dir.join(format!("trustee-{}.token", i + 1));
            keyfile::write_private_file(&path, format!("{token}\n").as_bytes(), false).map_err(
                |e| CliError {
                    message: e.to_string(),
                    code: 3,
                },
            )?;
        }
    }
    if let Some(path) = &a.token_out {
        keyfile::write_private_file(
            path,
            format!("{}\n", response.collector_token).as_bytes(),
            false,
        )
        .map_err(|e| CliError {
            message: e.to_string(),
            code: 3,
        })?;
    }
    if a.json {
        let mut out =
            json!({ "task_id": response.task_id, "collector_token": response.collector_token });
        if a.trustee_tokens_out.is_none() && !trustee_tokens.is_empty() {
            out["trustee_tokens"] = json!(trustee_tokens);
        }
        print_json(&out);
    } else {
        print_task(&response.task);
        println!("collector token: {}", response.collector_token);
        println!(
            "(the collector token is shown only once: give it to the collector and keep it secret)"
        );
        if !trustee_tokens.is_empty() {
            match &a.trustee_tokens_out {
                Some(dir) => println!(
                    "trustee tokens: {}/trustee-1.token .. trustee-{}.token (give each to its \
                     trustee only)",
                    dir.display(),
                    trustee_tokens.len()
                ),
                None => {
                    for (i, token) in trustee_tokens.iter().enumerate() {
                        println!("trustee {} token: {token}", i + 1);
                    }
                    println!(
                        "(each trustee token is shown only once: give it to its trustee only)"
                    );
                }
            }
        }
    }
    Ok(())
}

async fn simulate_command(a: SimulateArgs, options: &ClientOptions) -> Result<(), CliError> {
    let client = Client::connect_with_options(
        replicas(&a.server)?,
        task_id(&a.task)?,
        Arithmetic::fastest(),
        options,
    )
    .await?
    .with_retry(RetryPolicy {
        attempts: a.attempts.max(1),
        ..RetryPolicy::default()
    });
    let opts = SimulateOptions {
        reports: a.reports,
        seed: a.seed.unwrap_or_else(random_seed),
        concurrency: a.concurrency,
        time: a.time.unwrap_or_else(now),
        progress: !a.json,
    };
    let summary = simulate(&client, &opts).await?;
    let truth = json!({ "report_count": summary.acknowledged, "values": summary.truth });
    if let Some(path) = &a.truth_out {
        let text = serde_json::to_string_pretty(&truth).expect("serialisable");
        keyfile::write_public_file(path, text.as_bytes(), true).map_err(|e| CliError {
            message: e.to_string(),
            code: 3,
        })?;
    }
    let rate = summary.acknowledged as f64 / summary.upload_secs.max(1e-9);
    if a.json {
        print_json(&json!({
            "acknowledged": summary.acknowledged,
            "failed": summary.failed,
            "errors": summary.errors,
            "seed": opts.seed,
            "encrypt_seconds": summary.encrypt_secs,
            "upload_seconds": summary.upload_secs,
            "uploads_per_second": rate,
        }));
    } else {
        println!(
            "acknowledged {} of {} reports; encrypting took {:.2} s, uploading {:.2} s ({:.0} reports/s)",
            summary.acknowledged, a.reports, summary.encrypt_secs, summary.upload_secs, rate
        );
        if let Some(path) = &a.truth_out {
            println!("true aggregate written to {}", path.display());
        }
    }
    if summary.failed > 0 {
        return Err(CliError {
            message: format!(
                "{} report(s) failed (the truth counts only acknowledged ones): {}",
                summary.failed,
                summary.errors.join("; ")
            ),
            code: 4,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    /// Task ids are base64url, so one in 32 starts with '-'; clap must take
    /// it as the value of --task, not as a flag.
    #[test]
    fn task_ids_starting_with_a_hyphen_parse() {
        let id = "-TFc2RifaN1IfxWM_QF84wOTAIWSboIgGR466zG90XU";
        let cli = Cli::try_parse_from([
            "hetally-client",
            "releases",
            "--task",
            id,
            "--token-file",
            "t",
        ])
        .expect("parses");
        match cli.command {
            Command::Releases(a) => assert_eq!(a.task, id),
            other => panic!("parsed as {other:?}"),
        }
        for sub in [
            &["send", "--task", id, "--value", "1"][..],
            &["simulate", "--task", id, "--reports", "1"],
            &[
                "collect",
                "--task",
                id,
                "--token-file",
                "t",
                "--start",
                "0",
                "--duration",
                "60",
                "--out",
                "o",
            ],
            &["status", "--task", id, "--token-file", "t"],
            &["task", "get", "--task", id],
        ] {
            let args = std::iter::once("hetally-client").chain(sub.iter().copied());
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{sub:?}: {e}"));
        }
    }
}
