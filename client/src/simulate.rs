//! `simulate`: many random valid reports over many connections.
//!
//! Two phases, each with a progress bar: reports are first encrypted on
//! every core (rayon), then uploaded with `concurrency` requests in flight.
//! Splitting them means the upload rate measures the server, not the
//! client's encryption. The true aggregate counts only acknowledged reports,
//! so it is exactly what a collection of the whole interval must decrypt to.

use std::time::Instant;

use futures::StreamExt;
use hetally_protocol::Report;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Client, ClientError};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Reports to send.
    pub reports: u64,
    /// Seed for the measured values (encryption randomness is always fresh).
    pub seed: u64,
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Report time, Unix seconds (rounded down to the task's precision).
    pub time: u64,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct SimulateSummary {
    /// Reports the server acknowledged.
    pub acknowledged: u64,
    /// Reports that failed, and the first few reasons.
    pub failed: u64,
    /// Up to five distinct failure messages.
    pub errors: Vec<String>,
    /// Element-wise sum of the acknowledged reports' values.
    pub truth: Vec<u128>,
    /// Seconds spent encrypting.
    pub encrypt_secs: f64,
    /// Seconds spent uploading.
    pub upload_secs: f64,
}

/// A progress bar on stderr (hidden unless `show`; indicatif draws nothing
/// when stderr is not a terminal).
pub(crate) fn bar(len: u64, message: &'static str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            // The template is a constant known to parse.
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Runs a simulation against `client`'s task.
pub async fn simulate(
    client: &Client,
    opts: &SimulateOptions,
) -> Result<SimulateSummary, ClientError> {
    let measurement = client.definition().measurement;
    let mut values_rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let values: Vec<Vec<u64>> = (0..opts.reports)
        .map(|_| measurement.random_value(&mut values_rng))
        .collect();

    let encrypt_bar = bar(opts.reports, "encrypting", opts.progress);
    let started = Instant::now();
    let encrypter = client.clone();
    let time = opts.time;
    let eb = encrypt_bar.clone();
    let (values, reports) = tokio::task::spawn_blocking(move || {
        let reports: Result<Vec<Report>, ClientError> = values
            .par_iter()
            .map(|v| {
                let r = encrypter.prepare(v, time);
                eb.inc(1);
                r
            })
            .collect();
        (values, reports)
    })
    .await
    .map_err(|e| ClientError::Usage(format!("encryption failed: {e}")))?;
    let reports = reports?;
    encrypt_bar.finish();
    let encrypt_secs = started.elapsed().as_secs_f64();

    let upload_bar = bar(opts.reports, "uploading", opts.progress);
    let started = Instant::now();
    let results: Vec<(usize, Result<(), ClientError>)> =
        futures::stream::iter(reports.iter().enumerate())
            .map(|(i, r)| {
                let upload_bar = upload_bar.clone();
                async move {
                    let result = client.upload(r).await;
                    upload_bar.inc(1);
                    (i, result)
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    upload_bar.finish();
    let upload_secs = started.elapsed().as_secs_f64();

    let mut truth = vec![0u128; measurement.len()];
    let mut acknowledged = 0;
    let mut failed = 0;
    let mut errors: Vec<String> = Vec::new();
    for (i, result) in results {
        match result {
            Ok(()) => {
                acknowledged += 1;
                for (t, v) in truth.iter_mut().zip(&values[i]) {
                    *t += u128::from(*v);
                }
            }
            Err(e) => {
                failed += 1;
                let msg = e.to_string();
                if errors.len() < 5 && !errors.contains(&msg) {
                    errors.push(msg);
                }
            }
        }
    }
    Ok(SimulateSummary {
        acknowledged,
        failed,
        errors,
        truth,
        encrypt_secs,
        upload_secs,
    })
}

/// A random seed when the user gives none.
pub(crate) fn random_seed() -> u64 {
    rand::rngs::OsRng.next_u64()
}
