//! `hetally-server`: see `hetally-server --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hetally_server::{run, ServerConfig};

/// hetally's aggregation server.
///
/// Accepts encrypted reports (`PUT /tasks/{id}/reports`), stores them
/// durably in an embedded SQLite database, and releases encrypted,
/// DP-noised aggregates of non-overlapping batches to the collector. On the
/// first start it creates the database and an admin token
/// (`DATA_DIR/admin.token`, mode 0600) for `hetally-client task create`.
///
/// Example: hetally-server --data-dir ./hetally-data --listen 127.0.0.1:8080
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory for the database and the admin token.
    #[arg(long, env = "HETALLY_DATA_DIR", default_value = "./hetally-data")]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "HETALLY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// HTTP worker threads [default: one per CPU core].
    #[arg(long)]
    workers: Option<usize>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HETALLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let config = ServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        workers: args.workers,
    };
    match actix_web::rt::System::new().block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hetally-server: {e}");
            ExitCode::FAILURE
        }
    }
}
