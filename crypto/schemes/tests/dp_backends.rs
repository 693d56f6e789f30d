//! DP noise through the real encrypt-add-decrypt path of every backend
//! (Paillier and TFHE): what the collector decrypts must follow the exact
//! noise distribution.
//!
//! `dp_sampling.rs` tests the samplers on their own. This file tests what a
//! release does with their draws, end to end, on a real key (Paillier 2048
//! bits; TFHE-rs's published compact-public-key set):
//! clients encrypt reports with the task's encrypter, the server checks and
//! sums them (`DynAggregator::sum_stored`, through the shares' stored
//! form), and each release samples noise exactly as
//! `server/src/aggregator/release.rs` does (`Noise::sample`, then
//! `DynAggregator::release`, which encrypts it under the collector's key
//! and adds it to the sum: Paillier packs it into slots and multiplies,
//! TFHE encrypts a noise list and adds it word by word). The released
//! ciphertexts go into an aggregate file, through its byte encoding, and
//! `SecretKeyFile::decrypt` (what `hetally-keytool decrypt` calls) opens
//! them with the secret key. Decrypted value minus true sum is
//! the noise the collector sees.
//!
//! Why one 1,000-value release twenty times is faithful to 20,000 releases
//! of one value: the mechanism draws every value of a release independently
//! from the same distribution (`Noise::sample(len)` is `len` independent
//! draws), so the 1,000 noise values of one release are 1,000 independent
//! draws, and twenty releases of one encrypted sum give 20,000. What a
//! single-value release would not exercise, this one does: noise packed
//! side by side in slots, negative noise borrowing from the next slot (most
//! true bucket counts here are 0, so half the slots go negative), slot and
//! ciphertext boundaries, and the signed unpacking on decryption. Each test
//! also checks that every decrypted noise value equals the value drawn, so
//! the path is exact, not merely right in distribution.
//!
//! The goodness-of-fit check is the one of `dp_sampling.rs`: Pearson's
//! chi-square against the exact pmf (`dp::stats::chi_square`, tails pooled
//! so every bin expects at least 5 draws), p-value from `statrs`, plus the
//! sample variance against the pmf's. Every random draw comes from a seeded
//! ChaCha20, so the tests are deterministic. Run with `--nocapture` for the
//! figures.

use std::sync::{Arc, OnceLock};

use hetally_dp::stats::{chi_square, mean_and_variance};
use hetally_dp::{DpMechanism, Noise, Relation};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::roles::ErasedSum;
use hetally_protocol::{
    DynAggregator, Measurement, ReportContext, ReportId, Scheme, TaskDefinition, TaskId,
};
use hetally_schemes::lwe::{self, scheme::TfheDecrypter};
use hetally_schemes::paillier::{PaillierDecrypter, SecretKey};
use hetally_schemes::SecretKeyFile;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Releases of one encrypted sum.
const RELEASES: usize = 20;
/// Values per release: 20 × 1,000 = 20,000 noise draws.
const VALUES: u32 = 1000;
/// Reports in the batch.
const REPORTS: usize = 50;
/// The task's largest batch, which sizes the slots (Paillier) or Delta
/// (TFHE) as a real task would. TFHE's plaintext space is 64 - log2(Delta)
/// bits, so its tasks declare smaller batches.
fn max_batch_size(scheme: Scheme) -> u64 {
    match scheme {
        Scheme::Tfhe => 1000,
        _ => 1 << 20,
    }
}

/// The collector's key pair of `scheme`, generated once from a fixed seed.
fn key(scheme: Scheme) -> &'static SecretKeyFile {
    static PAILLIER: OnceLock<SecretKeyFile> = OnceLock::new();
    static TFHE: OnceLock<SecretKeyFile> = OnceLock::new();
    match scheme {
        Scheme::Tfhe => TFHE.get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(2025);
            SecretKeyFile::Tfhe(TfheDecrypter::new(lwe::SecretKey::generate(
                lwe::PKE_ZKV2_2048,
                &mut rng,
            )))
        }),
        _ => PAILLIER.get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(2024);
            SecretKeyFile::Paillier(PaillierDecrypter::new(
                SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap(),
            ))
        }),
    }
}

/// A task with an encrypted batch sum, ready to release.
struct Batch {
    scheme: Scheme,
    measurement: Measurement,
    dp: DpMechanism,
    aggregator: Arc<dyn DynAggregator>,
    sum: ErasedSum,
    truth: Vec<i128>,
}

/// Clients encrypt `REPORTS` random reports with the task's encrypter; the
/// server checks each payload and sums them.
fn batch(scheme: Scheme, measurement: &str, dp: &str, rng: &mut ChaCha20Rng) -> Batch {
    let measurement: Measurement = measurement.parse().unwrap();
    let dp: DpMechanism = dp.parse().unwrap();
    let public_key = key(scheme).public_key().to_bytes();
    let max_batch_size = max_batch_size(scheme);
    let (layout, _) = hetally_schemes::new_task_layout(
        &public_key,
        &measurement,
        &dp,
        Some(Relation::ReplaceOne),
        None,
        max_batch_size,
        false,
        rng,
    )
    .unwrap();
    let definition = TaskDefinition {
        measurement,
        min_batch_size: 1,
        max_batch_size,
        time_precision: 60,
        budget: (dp != DpMechanism::None).then(|| "100".parse().unwrap()),
        dp: dp.clone(),
        public_key,
        layout,
        input_proofs: false,
        relation: Some(Relation::ReplaceOne),
        trustee_noise: None,
    };
    definition.check().unwrap();
    let encrypter = hetally_schemes::encrypter(&definition, None).unwrap();
    let aggregator = hetally_schemes::aggregator(&definition, None).unwrap();
    let task_id = TaskId([7; 32]);
    let mut truth = vec![0i128; measurement.len()];
    let mut stored = Vec::with_capacity(REPORTS);
    for i in 0..REPORTS {
        let values = measurement.random_value(rng);
        for (t, v) in truth.iter_mut().zip(&values) {
            *t += i128::from(*v);
        }
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let report_id = ReportId(id);
        let ctx = ReportContext {
            task_id: &task_id,
            report_id: &report_id,
            time: 1_714_521_600 + i as u64,
        };
        let payload = encrypter.encrypt(&values, &ctx, rng).unwrap();
        stored.push(
            aggregator
                .check_to_stored(&[(&payload, ctx)])
                .pop()
                .unwrap()
                .unwrap(),
        );
    }
    let sum = aggregator.sum_stored(stored).unwrap();
    Batch {
        scheme,
        measurement,
        dp,
        aggregator,
        sum,
        truth,
    }
}

/// One release as the server makes it, decrypted as the keytool does;
/// returns the noise drawn and the noise decrypted.
fn release_and_decrypt(
    batch: &Batch,
    noise: &Noise,
    rng: &mut ChaCha20Rng,
) -> (Vec<i128>, Vec<i128>) {
    let drawn = noise.sample(batch.measurement.len(), rng).unwrap();
    let ciphertexts = batch
        .aggregator
        .release(&batch.sum, REPORTS as u64, &drawn, rng)
        .unwrap();
    let file = AggregateFile {
        task_id: [7; 32],
        scheme: batch.aggregator.scheme(),
        key_fingerprint: batch.aggregator.key_fingerprint(),
        measurement: batch.measurement,
        encoding: batch.aggregator.encoding(),
        batch_start: 1_714_521_600,
        batch_duration: 3600,
        relation: Some(Relation::ReplaceOne),
        report_count: ReportCount::Exact(REPORTS as u64),
        dp: batch.dp.clone(),
        ciphertexts,
        trustee_noise: None,
    };
    let file = AggregateFile::from_bytes(&file.to_bytes()).unwrap();
    let values = key(batch.scheme).decrypt(&file).unwrap();
    let decrypted = values
        .iter()
        .zip(&batch.truth)
        .map(|(v, t)| v - t)
        .collect();
    (drawn, decrypted)
}

/// Releases `RELEASES` times and checks the 20,000 decrypted noise values
/// against the exact distribution. At least `min_negative_slots` released
/// values must be negative (a slot that borrows from the next one).
fn check(
    scheme: Scheme,
    name: &str,
    measurement: &str,
    dp: &str,
    seed: u64,
    min_negative_slots: usize,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let batch = batch(scheme, measurement, dp, &mut rng);
    assert_eq!(batch.measurement.len(), VALUES as usize);
    // The noise the collector's tools assume: the same calibration as the
    // server's.
    let noise = Noise::for_task(&batch.measurement, &batch.dp, Some(Relation::ReplaceOne)).unwrap();
    let mut samples = Vec::with_capacity(RELEASES * VALUES as usize);
    for _ in 0..RELEASES {
        let (drawn, decrypted) = release_and_decrypt(&batch, &noise, &mut rng);
        assert_eq!(
            decrypted, drawn,
            "{name}: decryption must return the noise drawn"
        );
        samples.extend(decrypted);
    }
    let negative = samples.iter().filter(|&&x| x < 0).count();
    let borrowed = samples
        .iter()
        .zip(batch.truth.iter().cycle())
        .filter(|(x, t)| **t + **x < 0)
        .count();

    let fit = chi_square(&noise, &samples).unwrap();
    let chi2 = ChiSquared::new(fit.degrees_of_freedom as f64).unwrap();
    let p = 1.0 - chi2.cdf(fit.statistic);
    let (mean, variance) = mean_and_variance(&samples);
    let ratio = variance / noise.variance();
    println!(
        "{name}: {} draws through {scheme} ({:?}); chi-square {:.1} on {} df, p = {p:.4}; \
         mean {mean:.3}; variance {variance:.2} vs {:.2} (ratio {ratio:.4}); \
         {negative} negative noise values, {borrowed} negative slot values",
        samples.len(),
        batch.aggregator.encoding(),
        fit.statistic,
        fit.degrees_of_freedom,
        noise.variance()
    );
    assert_eq!(samples.len(), 20_000);
    assert!(p > 0.001, "{name}: chi-square p = {p}");
    assert!((ratio - 1.0).abs() < 0.05, "{name}: variance ratio {ratio}");
    let se = (noise.variance() / samples.len() as f64).sqrt();
    assert!(
        mean.abs() < 5.0 * se,
        "{name}: mean {mean}, standard error {se}"
    );
    // The path under test really carried negative noise, and negative slot
    // values where asked.
    assert!(
        negative > 9000,
        "{name}: only {negative} negative noise values"
    );
    assert!(
        borrowed >= min_negative_slots,
        "{name}: only {borrowed} negative slot values"
    );
}

#[test]
fn discrete_laplace_through_paillier_fits_the_exact_pmf() {
    // Scale 1 / 0.1 = 10; most buckets of 50 reports over 1,000 are 0.
    check(
        Scheme::Paillier,
        "histogram:1000 laplace:0.1 (scale 10)",
        "histogram:1000",
        "laplace:0.1",
        11,
        5000,
    );
}

#[test]
fn discrete_gaussian_through_paillier_fits_the_exact_pmf() {
    // sigma^2 = 1 / (2 × 0.005) = 100.
    check(
        Scheme::Paillier,
        "histogram:1000 gaussian:0.005 (sigma 10)",
        "histogram:1000",
        "gaussian:0.005",
        12,
        5000,
    );
}

#[test]
fn wide_noise_on_a_sum_vector_through_paillier_fits_the_exact_pmf() {
    // sumvec:1000:8: L1 = 255,000 and L2^2 = 65,025,000. Laplace scale
    // 2,550; Gaussian sigma ≈ 1,803, above the 1,024 where the pmf sums
    // switch to Euler–Maclaurin. Sums of 50 reports are around 6,400 here,
    // so few released values go negative, but half the noise values do, and
    // the noise plaintext itself borrows across its slots.
    check(
        Scheme::Paillier,
        "sumvec:1000:8 laplace:100 (scale 2550)",
        "sumvec:1000:8",
        "laplace:100",
        13,
        0,
    );
    check(
        Scheme::Paillier,
        "sumvec:1000:8 gaussian:10 (sigma ≈ 1803)",
        "sumvec:1000:8",
        "gaussian:10",
        14,
        0,
    );
}

#[test]
fn discrete_laplace_through_tfhe_fits_the_exact_pmf() {
    check(
        Scheme::Tfhe,
        "histogram:1000 laplace:0.1 (scale 10)",
        "histogram:1000",
        "laplace:0.1",
        21,
        5000,
    );
}

#[test]
fn discrete_gaussian_through_tfhe_fits_the_exact_pmf() {
    check(
        Scheme::Tfhe,
        "histogram:1000 gaussian:0.005 (sigma 10)",
        "histogram:1000",
        "gaussian:0.005",
        22,
        5000,
    );
}

#[test]
fn wide_noise_on_a_sum_vector_through_tfhe_fits_the_exact_pmf() {
    check(
        Scheme::Tfhe,
        "sumvec:1000:8 laplace:100 (scale 2550)",
        "sumvec:1000:8",
        "laplace:100",
        23,
        0,
    );
}
