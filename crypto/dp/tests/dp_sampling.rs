//! Statistical tests of the exact noise samplers and of the distribution
//! facts derived from their pmfs: goodness of fit, variance, interval
//! coverage and tail-bound soundness. Every random draw comes from a seeded
//! ChaCha20, so the tests are deterministic.
//!
//! Run with `--nocapture` to see the figures.

use hetally_dp::stats::{chi_square, mean_and_variance};
use hetally_dp::{DpMechanism, Noise, Relation};
use hetally_protocol::Measurement;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const DRAWS: usize = 20_000;

fn noise(measurement: &str, mechanism: &str) -> Noise {
    let m: Measurement = measurement.parse().unwrap();
    let d: DpMechanism = mechanism.parse().unwrap();
    Noise::for_task(&m, &d, Some(Relation::ReplaceOne)).unwrap()
}

/// The noise configurations under test: both families, integer and
/// fractional parameters, and a Gaussian wide enough (sigma > 1024) to use
/// the Euler–Maclaurin sums rather than term-by-term ones.
fn cases() -> Vec<(&'static str, Noise)> {
    vec![
        (
            "count laplace:0.4 (scale 2.5)",
            noise("count", "laplace:0.4"),
        ),
        (
            "histogram:11 laplace:0.6 (replace-one L1 2: scale 10/3)",
            noise("histogram:11", "laplace:0.6"),
        ),
        ("sum:4 laplace:2 (scale 7.5)", noise("sum:4", "laplace:2")),
        (
            "count gaussian:0.01 (sigma ~7.07)",
            noise("count", "gaussian:0.01"),
        ),
        (
            "count gaussian:1/8 (sigma 2)",
            noise("count", "gaussian:1/8"),
        ),
        (
            "sum:12 gaussian:1 (sigma ~2895.6)",
            noise("sum:12", "gaussian:1"),
        ),
    ]
}

/// Pearson's test against the exact pmf; returns the p-value.
fn p_value(noise: &Noise, samples: &[i128]) -> (f64, usize) {
    let fit = chi_square(noise, samples).unwrap();
    let chi2 = ChiSquared::new(fit.degrees_of_freedom as f64).unwrap();
    (1.0 - chi2.cdf(fit.statistic), fit.bins.len())
}

#[test]
fn samplers_fit_the_exact_pmf_and_variance() {
    for (i, (name, noise)) in cases().into_iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + i as u64);
        let samples = noise.sample(DRAWS, &mut rng).unwrap();
        let (p, bins) = p_value(&noise, &samples);
        let (mean, var) = mean_and_variance(&samples);
        let ratio = var / noise.variance();
        println!(
            "{name}: chi-square p = {p:.4} over {bins} bins; mean {mean:.3}; \
             variance {var:.3} vs {:.3} (ratio {ratio:.4})",
            noise.variance()
        );
        assert!(p > 0.001, "{name}: chi-square p = {p}");
        assert!((ratio - 1.0).abs() < 0.05, "{name}: variance ratio {ratio}");
        // The mean is zero: allow five standard errors.
        let se = (noise.variance() / DRAWS as f64).sqrt();
        assert!(
            mean.abs() < 5.0 * se,
            "{name}: mean {mean}, standard error {se}"
        );
    }
}

#[test]
fn chi_square_rejects_the_wrong_distribution() {
    // The check has power: Laplace draws judged against a Gaussian of the
    // same variance, and draws from a slightly wider Laplace, both fail.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let laplace = noise("count", "laplace:0.4");
    let samples = laplace.sample(DRAWS, &mut rng).unwrap();
    let gaussian = Noise::DiscreteGaussian {
        sigma: hetally_dp::Rational::from_f64_floor(laplace.std_dev()).unwrap(),
    };
    let (p, _) = p_value(&gaussian, &samples);
    println!("Laplace(2.5) draws against a Gaussian of equal variance: p = {p:e}");
    assert!(p < 1e-6);
    let wider = noise("count", "laplace:0.36");
    let (p, _) = p_value(&laplace, &wider.sample(DRAWS, &mut rng).unwrap());
    println!("Laplace(2.78) draws against Laplace(2.5): p = {p:e}");
    assert!(p < 0.001);
}

#[test]
fn confidence_intervals_cover_the_true_value() {
    // 200 releases of a count whose true value is 1000; the 95% interval
    // around each noisy value must contain 1000 in 91-99% of them.
    let truth: i128 = 1000;
    for (name, noise) in cases() {
        let k = noise.interval_half_width(0.95).unwrap() as i128;
        let mut covered = 0;
        for trial in 0..200u64 {
            let mut rng = ChaCha20Rng::seed_from_u64(50_000 + trial);
            let noisy = truth + noise.sample(1, &mut rng).unwrap()[0];
            if (noisy - k..=noisy + k).contains(&truth) {
                covered += 1;
            }
        }
        let exact = 1.0 - noise.tail_probability(k as u128);
        println!("{name}: ±{k} at 95% (exact coverage {exact:.4}); covered {covered}/200");
        assert!((182..=198).contains(&covered), "{name}: {covered}/200");
        assert!(exact >= 0.95);
    }
}

/// Smallest `t` with `P(|X| > t) <= bound`, from the pmf.
fn exact_quantile(noise: &Noise, bound: f64) -> u128 {
    let (mut lo, mut hi) = (0u128, 1u128);
    while noise.tail_probability(hi) > bound {
        hi *= 2;
    }
    if noise.tail_probability(0) <= bound {
        return 0;
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if noise.tail_probability(mid) <= bound {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[test]
fn tail_bounds_are_sound_and_tight() {
    for (name, noise) in cases() {
        for log2_failure in [20u32, 40, 64, 128] {
            let t = noise.tail_bound(log2_failure);
            let bound = 2f64.powi(-(log2_failure as i32));
            let p = noise.tail_probability(t);
            let exact = exact_quantile(&noise, bound);
            let ratio = t as f64 / exact as f64;
            println!(
                "{name}: 2^-{log2_failure}: bound {t}, exact quantile {exact} (ratio {ratio:.3}), \
                 P(|X| > bound) = {p:e}"
            );
            assert!(p < bound, "{name}: P(|X| > {t}) = {p} >= 2^-{log2_failure}");
            assert!(
                t >= exact,
                "{name}: bound {t} below the exact quantile {exact}"
            );
            // Sound but not wasteful. The Gaussian bound drops the Mills
            // ratio factor of the exact tail, which costs about 10% at 2^-20
            // and less further out; the Laplace one only a unit or two.
            assert!(
                t as f64 <= 1.12 * exact as f64 + 2.0,
                "{name}: {t} vs {exact}"
            );
        }
        // No draw of a release of DRAWS values escapes the union bound.
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let t = noise.tail_bound_for_all(DRAWS, 20) as i128;
        let samples = noise.sample(DRAWS, &mut rng).unwrap();
        assert!(samples.iter().all(|x| x.abs() <= t), "{name}");
    }
}

#[test]
fn no_noise_is_exactly_zero() {
    let none = noise("histogram:5", "none");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    assert_eq!(none.sample(5, &mut rng).unwrap(), vec![0; 5]);
    assert_eq!(none.variance(), 0.0);
    assert_eq!(none.interval_half_width(0.99).unwrap(), 0);
    assert_eq!(none.tail_bound(128), 0);
}

#[test]
fn seeded_sampling_is_reproducible_and_production_rng_works() {
    let n = noise("histogram:11", "gaussian:0.05");
    let a = n.sample(11, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    let b = n.sample(11, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, n.sample(11, &mut ChaCha20Rng::seed_from_u64(6)).unwrap());
    // What the server does: a CSPRNG seeded by the operating system.
    let fresh = n.sample(11, &mut ChaCha20Rng::from_entropy()).unwrap();
    assert_eq!(fresh.len(), 11);
}

#[test]
fn trustee_shares_sum_to_the_analysed_distribution() {
    // A histogram:16 task, gaussian:1/8 (replace-one L2^2 = 2, so sigma^2 =
    // 8), noise from 3 trustees. Honest 1: each share has sigma^2 8 (the
    // table of the convolution is built term by term below sigma 4);
    // honest 3: each has sigma^2 8/3. Each trustee draws its own shares;
    // the summed draws must fit the summed distribution, and not the
    // single discrete Gaussian of the task.
    let m: Measurement = "histogram:16".parse().unwrap();
    let d: DpMechanism = "gaussian:1/8".parse().unwrap();
    for (honest, seed) in [(1u8, 71u64), (3, 72)] {
        let trustees = hetally_dp::TrusteeNoise {
            contributors: 3,
            honest,
        };
        let summed = Noise::for_trustees(&m, &d, Some(Relation::ReplaceOne), &trustees).unwrap();
        let share = summed.share().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let per_trustee: Vec<Vec<i128>> = (0..3)
            .map(|_| share.sample(DRAWS, &mut rng).unwrap())
            .collect();
        let sums: Vec<i128> = (0..DRAWS)
            .map(|i| per_trustee.iter().map(|s| s[i]).sum())
            .collect();
        let (p, bins) = p_value(&summed, &sums);
        let (_, var) = mean_and_variance(&sums);
        println!(
            "3 trustees, honest {honest} ({summed}): p = {p:.4} over {bins} bins; variance \
             {var:.3} vs {:.3}",
            summed.variance()
        );
        assert!(p > 0.001, "honest {honest}: p = {p}");
        assert!((var / summed.variance() - 1.0).abs() < 0.05);
        if honest == 1 {
            // Three full shares are not the task's single Gaussian.
            let (p, _) = p_value(&noise("histogram:16", "gaussian:1/8"), &sums);
            assert!(p < 1e-6, "the sum fits one share's distribution: p = {p}");
        }
    }
}
