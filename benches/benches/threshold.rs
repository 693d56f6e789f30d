//! What threshold decryption costs (issue 21), for a 2048-bit Paillier key
//! split 3 of 5:
//!
//! * `keygen`: `generate_threshold`, the dealer's whole work (two safe
//!   primes, the split, the verification values); its time varies a lot
//!   with where the primes fall, so read the median;
//! * `partial_decrypt`: one trustee's partial decryption of a
//!   `histogram:1024` release (every ciphertext, with its proof), on the
//!   whole rayon pool as `hetally-keytool partial-decrypt` runs it;
//! * `combine`: verifying three trustees' partials of that release and
//!   combining them, as `hetally-keytool combine` does;
//! * `contribute_noise`: one trustee's noise contribution to a
//!   `histogram:1024` release of a task whose trustees draw the noise
//!   (`gaussian:1/8`, 3 contributors): drawing 1,024 discrete Gaussian
//!   shares and encrypting them packed, as `hetally-client
//!   contribute-noise` does before it uploads (`noise_contribution`);
//! * `tfhe_partial_decrypt` and `tfhe_combine`: the TFHE N-of-N library
//!   (`hetally_lwe::threshold`, not offered by the keytool: see
//!   docs/threshold.md) on a `histogram:1024` aggregate of 4 encryptions at
//!   Delta 2^50, with 3 trustees.
//!
//! The size of one partial decryption file is printed. Fixed seeds. Run
//! with `cargo bench -p hetally-benches --bench threshold`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hetally_benches::task;
use hetally_dp::DpMechanism;
use hetally_protocol::{Layout, Measurement};
use hetally_schemes::paillier::threshold::{generate_threshold, ThresholdParams};
use hetally_schemes::paillier::{Packing, PublicKey};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rug::Integer;

fn threshold(c: &mut Criterion) {
    let params = ThresholdParams::new(5, 3).unwrap();
    let mut g = c.benchmark_group("threshold");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut seed = 0;
    g.bench_function("keygen/2048/3of5", |b| {
        b.iter(|| {
            seed += 1;
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            black_box(generate_threshold(2048, params, &mut rng, &mut |_| {}).unwrap())
        })
    });

    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (key, shares) = generate_threshold(2048, params, &mut rng, &mut |_| {}).unwrap();
    let measurement: Measurement = "histogram:1024".parse().unwrap();
    let definition = task(
        &key.to_bytes(),
        measurement,
        DpMechanism::None,
        1_000_000,
        true,
    );
    let Layout::Paillier { slot_bits } = definition.layout else {
        unreachable!("a Paillier task")
    };
    let pk: &PublicKey<Integer> = key.public_key();
    let count = Packing::new(slot_bits, pk.modulus_bits())
        .unwrap()
        .plaintext_count(measurement.len());
    let cts: Vec<_> = (0..count)
        .map(|i| pk.encrypt(&Integer::from(i), &mut rng).unwrap())
        .collect();
    let context = b"bench release";
    let parts: Vec<_> = shares[..3]
        .iter()
        .map(|s| s.partial_decrypt(&cts, context, &mut rng).unwrap())
        .collect();
    eprintln!(
        "histogram:1024 in {slot_bits}-bit slots: {count} ciphertexts; one partial decryption \
         file is {} bytes",
        parts[0].to_bytes().len()
    );
    g.bench_function("partial_decrypt/histogram1024", |b| {
        b.iter(|| black_box(shares[0].partial_decrypt(&cts, context, &mut rng).unwrap()))
    });
    g.bench_function("combine/histogram1024/3", |b| {
        b.iter(|| {
            let out = key.combine(&cts, context, &parts).unwrap();
            assert_eq!(out.plaintexts[1], 1);
            black_box(out)
        })
    });

    // Trustee noise: the same key, a task whose 3 trustees draw the noise.
    let params = hetally_schemes::TaskParams {
        measurement,
        min_batch_size: 1,
        max_batch_size: Some(1_000_000),
        time_precision: 60,
        dp: "gaussian:1/8".parse().unwrap(),
        budget: Some("10".parse().unwrap()),
        input_proofs: true,
        relation: Some(hetally_dp::Relation::ReplaceOne),
        trustee_noise: Some(hetally_dp::TrusteeNoise {
            contributors: 3,
            honest: 1,
        }),
    };
    let (noisy, _) =
        hetally_schemes::define_task(key.to_bytes(), params, 1_000_000, &mut rng).unwrap();
    let file = hetally_client::noise_contribution(&noisy, 0, 1).unwrap();
    eprintln!(
        "histogram:1024 with trustee noise: one noise contribution file is {} bytes",
        file.len()
    );
    g.bench_function("contribute_noise/histogram1024", |b| {
        b.iter(|| black_box(hetally_client::noise_contribution(&noisy, 0, 1).unwrap()))
    });

    // TFHE N-of-N, 3 trustees.
    use hetally_protocol::aggregate::{AggregateFile, Encoding, ReportCount};
    use hetally_schemes::lwe::{sum_lists, threshold as lwe_threshold, Delta, PKE_ZKV2_2048};
    let declared = hetally_schemes::lwe::Trustees {
        count: 3,
        min_lambda: 0,
    };
    let (tpk, tshares) =
        lwe_threshold::generate_threshold(PKE_ZKV2_2048, declared, &mut rng).unwrap();
    let delta = Delta::new(50).unwrap();
    let values: Vec<i128> = (0..1024).map(|i| i128::from(i % 3 == 0)).collect();
    let lists: Vec<_> = (0..4)
        .map(|_| tpk.encrypt(&values, delta, &mut rng).unwrap())
        .collect();
    let sum = sum_lists(&lists).unwrap().unwrap();
    let file = AggregateFile {
        task_id: [7; 32],
        scheme: hetally_protocol::Scheme::Tfhe,
        key_fingerprint: tpk.fingerprint(),
        measurement,
        encoding: Encoding::TfheLists {
            parameter_set: tpk.params().id,
            delta_log2: delta.log2(),
        },
        batch_start: 0,
        batch_duration: 60,
        relation: Some(hetally_dp::Relation::ReplaceOne),
        // n reports and the release noise: n + 1 encryptions.
        report_count: ReportCount::Exact(3),
        dp: DpMechanism::None,
        trustee_noise: None,
        ciphertexts: vec![sum.to_bytes()],
    };
    let tparts: Vec<_> = tshares
        .iter()
        .map(|s| s.partial_decrypt(&file, context, 0, &mut rng).unwrap())
        .collect();
    eprintln!(
        "TFHE histogram:1024 at Delta 2^50, 3 trustees: smudging lambda {}; one partial \
         decryption file is {} bytes",
        tparts[0].lambda(),
        tparts[0].to_bytes().len()
    );
    g.bench_function("tfhe_partial_decrypt/histogram1024", |b| {
        b.iter(|| {
            black_box(
                tshares[0]
                    .partial_decrypt(&file, context, 0, &mut rng)
                    .unwrap(),
            )
        })
    });
    g.bench_function("tfhe_combine/histogram1024/3", |b| {
        b.iter(|| black_box(lwe_threshold::combine(&tparts, &file, context).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, threshold);
criterion_main!(benches);
