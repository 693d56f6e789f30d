//! What the TFHE backend costs (issue 5), for `histogram:1024` reports
//! (one compact list of 1,024 values each), through the task backend
//! exactly as the client and server call it, with the machine's memory
//! bandwidth measured in the same run as the yardstick for summing.
//!
//! * `membw/read`: wrapping sum of a 512 MiB `u64` buffer on the whole
//!   rayon pool: how fast this machine streams memory into the cores.
//! * `sum/{1,2}_threads`: `AdditiveBackend::sum` of [`SUM_REPORTS`] stored
//!   reports (24.6 KB each) in a rayon pool of that size; throughput in
//!   bytes of stored lists read.
//! * `encrypt`: `AdditiveBackend::encrypt` without proofs, one report.
//! * `crs/decode_and_check`: decoding the task's CRS with TFHE-rs's
//!   conformance checks, what a server or client does once per task.
//! * `prove/{proof,verify}_load`: `encrypt` with a zk-pok proof, one report,
//!   with TFHE-rs's `ComputeLoad::Proof` (hetally's choice) and, for
//!   comparison, `ComputeLoad::Verify`.
//! * `verify/{proof,verify}_load`: `check_payload` of one proven report in
//!   a one-thread pool (per core).
//! * `verify/batch_all_cores`: `check_payloads` of [`VERIFY_BATCH`] proven
//!   reports on the whole pool (rayon across reports), per batch.
//!
//! Sizes (key, CRS, list, proof) are printed to stderr. Fixed seeds
//! throughout. Run with `cargo bench -p hetally-benches --bench tfhe`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hetally_benches::{task, task_with_crs};
use hetally_dp::DpMechanism;
use hetally_protocol::roles::{Aggregator, Encrypter};
use hetally_protocol::{Measurement, ReportContext, ReportId, TaskId};
use hetally_schemes::lwe::scheme::{Lists, TfheAggregator, TfheEncrypter};
use hetally_schemes::lwe::{self, ComputeLoad};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

/// Stored reports summed per iteration.
const SUM_REPORTS: usize = 2_000;
/// Proven reports per batch verification.
const VERIFY_BATCH: usize = 4;
/// The task's largest batch (sets Delta).
const MAX_BATCH_SIZE: u64 = 10_000;
const TASK: TaskId = TaskId([1; 32]);

fn ctx(id: &ReportId) -> ReportContext<'_> {
    ReportContext {
        task_id: &TASK,
        report_id: id,
        time: 1_700_000_000,
    }
}

fn one_hot(rng: &mut ChaCha20Rng) -> Vec<u64> {
    let mut v = vec![0u64; 1024];
    v[rng.gen_range(0..1024)] = 1;
    v
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn tfhe(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = lwe::SecretKey::generate(lwe::PKE_ZKV2_2048, &mut rng);
    let pk = sk.public_key().clone();
    let measurement = Measurement::Histogram { buckets: 1024 };
    let pk_file = pk.to_bytes();
    let plain_task = task(
        &pk_file,
        measurement,
        DpMechanism::None,
        MAX_BATCH_SIZE,
        false,
    );
    let plain = TfheEncrypter::new(&plain_task, None).unwrap();
    let plain_agg = TfheAggregator::new(&plain_task, None).unwrap();
    eprintln!(
        "tfhe: {} / Delta 2^{} / public key {} bytes",
        lwe::PKE_ZKV2_2048.tfhe_name,
        plain.delta().log2(),
        pk_file.len()
    );

    // Memory bandwidth of the whole pool, the yardstick for summing.
    let buffer: Vec<u64> = (0..(512usize << 20) / 8).map(|i| i as u64).collect();
    let mut g = c.benchmark_group("tfhe/membw");
    g.sample_size(10)
        .throughput(Throughput::Bytes(buffer.len() as u64 * 8));
    g.bench_function("read", |b| {
        b.iter(|| {
            buffer
                .par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    g.finish();
    drop(buffer);

    // Summing stored reports: what the server does per release.
    let ids: Vec<ReportId> = (0..SUM_REPORTS)
        .map(|i| ReportId((i as u128).to_le_bytes()))
        .collect();
    let stored: Vec<Lists> = ids
        .iter()
        .map(|id| {
            let payload = plain
                .encrypt(&one_hot(&mut rng), &ctx(id), &mut rng)
                .unwrap();
            plain_agg
                .check(&[(&payload, ctx(id))])
                .pop()
                .unwrap()
                .unwrap()
        })
        .collect();
    let report_bytes = plain_agg.encode_share(&stored[0]).len();
    let stored_bytes = report_bytes * stored.len();
    eprintln!("tfhe: stored histogram:1024 report {report_bytes} bytes");
    let mut g = c.benchmark_group("tfhe/sum");
    g.sample_size(20)
        .throughput(Throughput::Bytes(stored_bytes as u64));
    for threads in [1, 2] {
        let pool = pool(threads);
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| pool.install(|| plain_agg.sum(black_box(&stored))))
        });
    }
    g.finish();
    drop(stored);

    let mut g = c.benchmark_group("tfhe/encrypt");
    g.sample_size(20);
    g.bench_function("no_proof", |b| {
        b.iter(|| {
            plain
                .encrypt(&one_hot(&mut rng), &ctx(&ids[0]), &mut rng)
                .unwrap()
        })
    });
    g.finish();

    let started = Instant::now();
    let (proven_task, crs_bytes) = task_with_crs(
        &pk_file,
        measurement,
        DpMechanism::None,
        MAX_BATCH_SIZE,
        true,
    );
    let crs_bytes = crs_bytes.expect("a TFHE task with proofs has a CRS");
    let crs = Arc::new(lwe::Crs::from_bytes(&crs_bytes).unwrap());
    eprintln!(
        "tfhe: CRS for 1,024 one-bit values generated in {:.1} s, {} bytes",
        started.elapsed().as_secs_f64(),
        crs.to_bytes().len()
    );
    // What every server (at task load) and client (at connect) does with
    // the CRS it receives: TFHE-rs's conformance check of every point.
    let mut g = c.benchmark_group("tfhe/crs");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("decode_and_check", |b| {
        b.iter(|| lwe::Crs::from_bytes(black_box(crs.to_bytes())).unwrap())
    });
    g.finish();

    let proven = TfheEncrypter::new(&proven_task, Some(&crs_bytes)).unwrap();
    let proven_agg = TfheAggregator::new(&proven_task, Some(&crs_bytes)).unwrap();
    let one_core = pool(1);

    let mut g = c.benchmark_group("tfhe/prove");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("proof_load", |b| {
        b.iter(|| {
            proven
                .encrypt(&one_hot(&mut rng), &ctx(&ids[0]), &mut rng)
                .unwrap()
        })
    });
    // ComputeLoad::Verify, through the lwe layer (the scheme always asks
    // for ComputeLoad::Proof).
    let values = one_hot(&mut rng);
    g.bench_function("verify_load", |b| {
        b.iter(|| {
            pk.encrypt_and_prove(&crs, &values, b"bench", ComputeLoad::Verify, &mut rng)
                .unwrap()
        })
    });
    g.finish();

    let payloads: Vec<Vec<u8>> = ids[..VERIFY_BATCH]
        .iter()
        .map(|id| {
            proven
                .encrypt(&one_hot(&mut rng), &ctx(id), &mut rng)
                .unwrap()
        })
        .collect();
    let (list, proof) = pk
        .encrypt_and_prove(&crs, &values, b"bench", ComputeLoad::Proof, &mut rng)
        .unwrap();
    let (list_v, proof_v) = pk
        .encrypt_and_prove(&crs, &values, b"bench", ComputeLoad::Verify, &mut rng)
        .unwrap();
    eprintln!(
        "tfhe: proven payload {} bytes (list {} + proof {}); ComputeLoad::Verify proof {} bytes",
        payloads[0].len(),
        list.to_bytes().len(),
        proof.to_bytes().len(),
        proof_v.to_bytes().len()
    );
    let mut g = c.benchmark_group("tfhe/verify");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("proof_load", |b| {
        b.iter(|| {
            one_core.install(|| {
                proven_agg
                    .check(&[(black_box(&payloads[0]), ctx(&ids[0]))])
                    .pop()
                    .unwrap()
                    .unwrap()
            })
        })
    });
    g.bench_function("verify_load", |b| {
        b.iter(|| one_core.install(|| pk.verify(&crs, &list_v, &proof_v, b"bench").unwrap()))
    });
    let batch: Vec<(&[u8], ReportContext<'_>)> = payloads
        .iter()
        .zip(&ids)
        .map(|(p, id)| (p.as_slice(), ctx(id)))
        .collect();
    g.throughput(Throughput::Elements(VERIFY_BATCH as u64));
    g.bench_function("batch_all_cores", |b| {
        b.iter(|| {
            for r in proven_agg.check(black_box(&batch)) {
                r.unwrap();
            }
        })
    });
    g.finish();
    drop(list);
}

criterion_group!(benches, tfhe);
criterion_main!(benches);
