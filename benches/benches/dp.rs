//! What DP costs a release: noise sampling plus encryption of the noise,
//! for a 1,024-bucket histogram task on a 2048-bit Paillier key.
//!
//! `release/*` is what `server/src/aggregator/release.rs` does once a
//! batch is summed: `Noise::sample` for every bucket, then
//! `AdditiveBackend::release`, which packs the noise into the task's slots,
//! encrypts it and multiplies it into the encrypted sum. With `none` the
//! noise is all zeros and `release` adds nothing, so the difference is the
//! price of DP. `sample/*` is the sampling alone. Scales 10 and 1,000 show
//! how the exact samplers' cost grows with the noise.
//!
//! Fixed seeds throughout (key, reports, noise). Run with
//! `cargo bench -p hetally-benches --bench dp`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hetally_benches::task;
use hetally_dp::{DpMechanism, Noise, Relation};
use hetally_protocol::aggregate::Encoding;
use hetally_protocol::{Measurement, ReportContext, ReportId, TaskId};
use hetally_schemes::paillier::{Packing, SecretKey};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const BUCKETS: u32 = 1024;
const MAX_BATCH_SIZE: u64 = 1 << 20;

/// The mechanisms compared, with a label: none, and both families at
/// scale / sigma 10 and 1,000 (a replace-one histogram has L1 sensitivity 2
/// and squared L2 sensitivity 2, so scale = 2 / epsilon and
/// sigma^2 = 1 / rho).
const MECHANISMS: [(&str, &str); 5] = [
    ("none", "none"),
    ("laplace_scale10", "laplace:0.2"),
    ("gaussian_sigma10", "gaussian:0.01"),
    ("laplace_scale1000", "laplace:0.002"),
    ("gaussian_sigma1000", "gaussian:0.000001"),
];

/// The relation the bench tasks declare.
const RELATION: Relation = Relation::ReplaceOne;

fn dp(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
    let pk = sk.public_key().to_bytes();
    let measurement = Measurement::new_histogram(BUCKETS).unwrap();
    let task_id = TaskId([1; 32]);

    let mut release = c.benchmark_group("dp/release_1024_buckets");
    release
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(10));
    for (label, mechanism) in MECHANISMS {
        let dp: DpMechanism = mechanism.parse().unwrap();
        let def = task(&pk, measurement, dp.clone(), MAX_BATCH_SIZE, false);
        let client = hetally_schemes::encrypter(&def, None).unwrap();
        let backend = hetally_schemes::aggregator(&def, None).unwrap();
        // A sum of a few reports: the cost of a release does not depend on
        // what the sum holds.
        let stored: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                let ctx = ReportContext {
                    task_id: &task_id,
                    report_id: &ReportId([i; 16]),
                    time: 0,
                };
                let payload = client
                    .encrypt(&measurement.random_value(&mut rng), &ctx, &mut rng)
                    .unwrap();
                backend
                    .check_to_stored(&[(&payload, ctx)])
                    .pop()
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let sum = backend.sum_stored(stored).unwrap();
        if let Encoding::PaillierPacked { slot_bits } = backend.encoding() {
            let packing = Packing::new(slot_bits, 2048).unwrap();
            eprintln!(
                "{label}: {slot_bits}-bit slots, {} ciphertexts per release",
                packing.plaintext_count(measurement.len())
            );
        }
        let noise = Noise::for_task(&measurement, &dp, Some(RELATION)).unwrap();
        let mut noise_rng = ChaCha20Rng::seed_from_u64(2);
        release.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let values = noise.sample(measurement.len(), &mut noise_rng).unwrap();
                black_box(backend.release(&sum, 4, &values, &mut noise_rng).unwrap())
            })
        });
    }
    release.finish();

    let mut sample = c.benchmark_group("dp/sample_1024_values");
    sample
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(10));
    for (label, mechanism) in &MECHANISMS[1..] {
        let dp: DpMechanism = mechanism.parse().unwrap();
        let noise = Noise::for_task(&measurement, &dp, Some(RELATION)).unwrap();
        let mut noise_rng = ChaCha20Rng::seed_from_u64(3);
        sample.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| black_box(noise.sample(BUCKETS as usize, &mut noise_rng).unwrap()))
        });
    }
    sample.finish();
}

criterion_group!(benches, dp);
criterion_main!(benches);
