//! What input proofs cost (issue 8), beside Prio3 for the same measurement.
//!
//! For `count` and `histogram:16` on a 2048-bit Paillier key, through the
//! task's roles exactly as the client and server call them:
//!
//! * `prove`: the client's `Encrypter::encrypt` with input proofs, one
//!   report (encryption of every bit, the proofs, the encoding), over GMP
//!   (what `hetally-client` uses);
//! * `prove_pure`: the same with the client core's pure-Rust big integers
//!   (`num-bigint`, what apps embed; the same bytes as `prove`);
//! * `verify_single`: the aggregator's `check` of one report (decode, unit
//!   checks, challenge, one multi-exponentiation for the report's
//!   equations, derivation of the packed stored ciphertext);
//! * `verify_batched`: `check` of [`BATCH`] reports at once (one random
//!   linear combination over all of them), and of the first 16, 32 and 64
//!   of them (the batches a server with few uploads in flight forms);
//! * `check_no_proofs`: `check` of one report of a task without proofs,
//!   for scale.
//!
//! Verification runs inside a one-thread rayon pool, so its figures are per
//! core; `verify_batched_all_cores` repeats the batches on the whole pool.
//!
//! Prio3 (prio 0.16, two aggregators): `shard` is the client's work;
//! `prepare` is both aggregators' `prepare_init`, the prepare-message
//! combination and both `prepare_next` for one report, i.e. the whole
//! validity check of a report summed over the two servers.
//!
//! Fixed seeds throughout. Run with
//! `cargo bench -p hetally-benches --bench proofs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hetally_benches::task;
use hetally_dp::DpMechanism;
use hetally_protocol::{Measurement, ReportContext, ReportId, TaskId};
use hetally_schemes::paillier::SecretKey;
use hetally_schemes::Arithmetic;
use prio::vdaf::prio3::{optimal_chunk_length, Prio3};
use prio::vdaf::{Aggregator, Client};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Reports per verification batch.
const BATCH: usize = 256;
/// Smaller batches, also timed per report.
const SMALL_BATCHES: [usize; 3] = [16, 32, 64];
const MAX_BATCH_SIZE: u64 = u32::MAX as u64;
const TASK: TaskId = TaskId([1; 32]);

fn ctx(id: &ReportId) -> ReportContext<'_> {
    ReportContext {
        task_id: &TASK,
        report_id: id,
        time: 1_700_000_000,
    }
}

fn paillier(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
    let pk = sk.public_key().to_bytes();
    let one_core = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (label, m) in [("count", "count"), ("histogram16", "histogram:16")] {
        let measurement: Measurement = m.parse().unwrap();
        let proven_task = task(&pk, measurement, DpMechanism::None, MAX_BATCH_SIZE, true);
        let plain_task = task(&pk, measurement, DpMechanism::None, MAX_BATCH_SIZE, false);
        let proven = hetally_schemes::encrypter_with(&proven_task, None, Arithmetic::Gmp).unwrap();
        let proven_pure =
            hetally_schemes::encrypter_with(&proven_task, None, Arithmetic::Pure).unwrap();
        let plain = hetally_schemes::encrypter_with(&plain_task, None, Arithmetic::Gmp).unwrap();
        let verifier = hetally_schemes::aggregator(&proven_task, None).unwrap();
        let plain_verifier = hetally_schemes::aggregator(&plain_task, None).unwrap();
        let ids: Vec<ReportId> = (0..BATCH).map(|_| ReportId::random(&mut rng)).collect();
        let payloads: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| {
                proven
                    .encrypt(&measurement.random_value(&mut rng), &ctx(id), &mut rng)
                    .unwrap()
            })
            .collect();
        let plain_payload = plain
            .encrypt(&measurement.random_value(&mut rng), &ctx(&ids[0]), &mut rng)
            .unwrap();
        eprintln!(
            "{label}: {} bytes with proofs, {} without",
            payloads[0].len(),
            plain_payload.len()
        );
        let batch: Vec<(&[u8], ReportContext<'_>)> = payloads
            .iter()
            .zip(&ids)
            .map(|(p, id)| (p.as_slice(), ctx(id)))
            .collect();

        let mut g = c.benchmark_group(format!("proofs/{label}"));
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        let values = measurement.random_value(&mut rng);
        g.bench_function("prove", |b| {
            b.iter(|| black_box(proven.encrypt(&values, &ctx(&ids[0]), &mut rng).unwrap()))
        });
        g.bench_function("prove_pure", |b| {
            b.iter(|| {
                black_box(
                    proven_pure
                        .encrypt(&values, &ctx(&ids[0]), &mut rng)
                        .unwrap(),
                )
            })
        });
        g.bench_function("verify_single", |b| {
            one_core.install(|| {
                b.iter(|| {
                    let out = verifier.check_to_stored(&[(&payloads[0], ctx(&ids[0]))]);
                    assert!(out[0].is_ok());
                    black_box(out)
                })
            })
        });
        // Batches as small as a server with few uploads in flight forms
        // (issue 17), and the full one.
        for size in SMALL_BATCHES.into_iter().chain([BATCH]) {
            let part = &batch[..size];
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function(BenchmarkId::new("verify_batched", size), |b| {
                one_core.install(|| {
                    b.iter(|| {
                        let out = verifier.check_to_stored(part);
                        assert!(out.iter().all(Result::is_ok));
                        black_box(out)
                    })
                })
            });
        }
        // The same on the whole pool: a small batch's multi-exponentiation
        // is split by bit position across the cores.
        for size in SMALL_BATCHES.into_iter().chain([BATCH]) {
            let part = &batch[..size];
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function(BenchmarkId::new("verify_batched_all_cores", size), |b| {
                b.iter(|| black_box(verifier.check_to_stored(part)))
            });
        }
        g.throughput(Throughput::Elements(1));
        g.bench_function("check_no_proofs", |b| {
            b.iter(|| {
                let out = plain_verifier.check_to_stored(&[(&plain_payload, ctx(&ids[0]))]);
                assert!(out[0].is_ok());
                black_box(out)
            })
        });
        g.finish();
    }
}

/// Shards one report and runs both aggregators' preparation.
fn prio3_report<V>(vdaf: &V, measurement: &V::Measurement, nonce: &[u8; 16])
where
    V: Client<16> + Aggregator<16, 16, AggregationParam = ()>,
{
    let verify_key = [7u8; 16];
    let (public_share, input_shares) = vdaf.shard(measurement, nonce).unwrap();
    prio3_prepare(vdaf, &verify_key, nonce, &public_share, &input_shares);
}

fn prio3_prepare<V>(
    vdaf: &V,
    verify_key: &[u8; 16],
    nonce: &[u8; 16],
    public_share: &V::PublicShare,
    input_shares: &[V::InputShare],
) where
    V: Aggregator<16, 16, AggregationParam = ()>,
{
    let (s0, p0) = vdaf
        .prepare_init(verify_key, 0, &(), nonce, public_share, &input_shares[0])
        .unwrap();
    let (s1, p1) = vdaf
        .prepare_init(verify_key, 1, &(), nonce, public_share, &input_shares[1])
        .unwrap();
    let msg = vdaf
        .prepare_shares_to_prepare_message(&(), [p0, p1])
        .unwrap();
    black_box(vdaf.prepare_next(s0, msg.clone()).unwrap());
    black_box(vdaf.prepare_next(s1, msg).unwrap());
}

fn prio3(c: &mut Criterion) {
    let nonce = [3u8; 16];
    let verify_key = [7u8; 16];
    let mut g = c.benchmark_group("proofs/prio3_count");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let count = Prio3::new_count(2).unwrap();
    g.bench_function("shard", |b| {
        b.iter(|| black_box(count.shard(&true, &nonce).unwrap()))
    });
    let (ps, is) = count.shard(&true, &nonce).unwrap();
    g.bench_function("prepare", |b| {
        b.iter(|| prio3_prepare(&count, &verify_key, &nonce, &ps, &is))
    });
    g.bench_function("shard_and_prepare", |b| {
        b.iter(|| prio3_report(&count, &true, &nonce))
    });
    g.finish();

    let mut g = c.benchmark_group("proofs/prio3_histogram16");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let hist = Prio3::new_histogram(2, 16, optimal_chunk_length(16)).unwrap();
    g.bench_function("shard", |b| {
        b.iter(|| black_box(hist.shard(&5usize, &nonce).unwrap()))
    });
    let (ps, is) = hist.shard(&5usize, &nonce).unwrap();
    g.bench_function("prepare", |b| {
        b.iter(|| prio3_prepare(&hist, &verify_key, &nonce, &ps, &is))
    });
    g.bench_function("shard_and_prepare", |b| {
        b.iter(|| prio3_report(&hist, &5usize, &nonce))
    });
    g.finish();
}

criterion_group!(benches, paillier, prio3);
criterion_main!(benches);
