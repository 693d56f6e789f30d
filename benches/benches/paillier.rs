//! Paillier at 2048 bits: what a client, the server and the collector pay.
//!
//! * `paillier/encrypt/*`: one encryption in the fast (short-exponent
//!   fixed-base, the default) and the standard (full r^n) form.
//! * `paillier/decrypt/*`: one CRT decryption, with the two halves on two
//!   threads and on one.
//! * `paillier/add`: one homomorphic addition (multiply mod n^2).
//! * `paillier/sum_10000/*`: `PublicKey::sum` over 10,000 ciphertexts in a
//!   rayon pool of 1 and of 2 threads: additions per second per core and
//!   on both cores. Criterion's throughput line gives the rate.
//!
//! The key and ciphertexts come from fixed seeds. Run with
//! `cargo bench -p hetally-benches --bench paillier`. The same operations
//! in python-paillier and kzen-paillier are measured by
//! `scripts/bench-paillier-compare.sh`, which runs this bench too.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hetally_schemes::paillier::{Ciphertext, EncryptionMode, SecretKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use rug::Integer;

const SUM_LEN: usize = 10_000;

fn paillier(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).expect("keygen");
    let pk = sk.public_key().clone();
    pk.precompute();

    let mut group = c.benchmark_group("paillier/encrypt");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    for (label, mode) in [
        ("fast", EncryptionMode::Fast),
        ("standard", EncryptionMode::Standard),
    ] {
        let m = Integer::from(1);
        group.bench_function(label, |b| {
            b.iter(|| black_box(pk.encrypt_with_mode(&m, mode, &mut rng).expect("encrypt")))
        });
    }
    group.finish();

    let ct = pk
        .encrypt(&Integer::from(123_456_789u64), &mut rng)
        .expect("encrypt");
    let mut group = c.benchmark_group("paillier/decrypt");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("crt_2_threads", |b| {
        b.iter(|| black_box(sk.decrypt(&ct).expect("decrypt")))
    });
    group.bench_function("crt_1_thread", |b| {
        b.iter(|| black_box(sk.decrypt_sequential(&ct)))
    });
    group.finish();

    // Ciphertexts of small random values, made in parallel (setup only).
    let seeds: Vec<u64> = (0..SUM_LEN).map(|_| rng.gen()).collect();
    let cts: Vec<Ciphertext<Integer>> = seeds
        .par_iter()
        .map(|&s| {
            let mut r = ChaCha20Rng::seed_from_u64(s);
            pk.encrypt(&Integer::from(s % 1000), &mut r)
                .expect("encrypt")
        })
        .collect();
    let expected: u64 = seeds.iter().map(|s| s % 1000).sum();
    assert_eq!(sk.decrypt(&pk.sum(&cts)).expect("decrypt"), expected);

    c.bench_function("paillier/add", |b| {
        let mut acc = cts[0].clone();
        let mut i = 1;
        b.iter(|| {
            pk.add_assign(&mut acc, &cts[i]);
            i = (i + 1) % SUM_LEN;
        })
    });

    let mut group = c.benchmark_group("paillier/sum_10000");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(SUM_LEN as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| pool.install(|| black_box(pk.sum(&cts))))
        });
    }
    group.finish();
}

criterion_group!(benches, paillier);
criterion_main!(benches);
