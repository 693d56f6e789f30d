//! Which big-integer library the Paillier backend is built on.
//!
//! The two operations that decide it, at a 2048-bit modulus n:
//!
//! * `bigint/mulmod_n2/*`: a * b mod n^2 for 4096-bit a and b: one
//!   homomorphic addition, the server's hot loop.
//! * `bigint/powmod_n_n2/*`: r^n mod n^2 with a 2048-bit exponent: the
//!   cost of a textbook (standard-form) encryption.
//!
//! Candidates: GMP through `rug` (what hetally uses), `num-bigint` (pure
//! Rust, the usual default) and `crypto-bigint` 0.6 Montgomery forms
//! (constant-time, fixed width; its operands are kept in Montgomery form,
//! which favours it: conversion in and out is not timed).
//!
//! The operands come from a real 2048-bit key made from a fixed seed, so
//! every run measures the same numbers. Run with
//! `cargo bench -p hetally-benches --bench bigint`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, U2048, U4096};
use hetally_schemes::paillier::SecretKey;
use num_bigint::BigUint;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rug::integer::Order;
use rug::Integer;

/// `x` as exactly `len` big-endian bytes.
fn be_bytes(x: &Integer, len: usize) -> Vec<u8> {
    let digits = x.to_digits::<u8>(Order::MsfBe);
    assert!(digits.len() <= len, "operand wider than {len} bytes");
    let mut out = vec![0u8; len - digits.len()];
    out.extend_from_slice(&digits);
    out
}

fn to_num(x: &Integer) -> BigUint {
    BigUint::from_bytes_be(&x.to_digits::<u8>(Order::MsfBe))
}

fn bigint(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).expect("keygen");
    let pk = sk.public_key();
    let n = pk.n().clone();
    let n2 = pk.n_squared().clone();
    // Two real ciphertexts (uniform-looking 4096-bit units) and a random r.
    let a = pk.encrypt(&Integer::from(3), &mut rng).expect("encrypt");
    let b = pk.encrypt(&Integer::from(5), &mut rng).expect("encrypt");
    let (a, b) = (a.as_integer().clone(), b.as_integer().clone());
    let r = Integer::from(&n - 12345);

    // num-bigint forms.
    let (na, nb, nn, nn2, nr) = (to_num(&a), to_num(&b), to_num(&n), to_num(&n2), to_num(&r));

    // crypto-bigint forms: n^2 is odd, so Montgomery arithmetic applies.
    let modulus = Odd::new(U4096::from_be_slice(&be_bytes(&n2, 512))).expect("n^2 is odd");
    let params = MontyParams::new(modulus);
    let ca = MontyForm::new(&U4096::from_be_slice(&be_bytes(&a, 512)), params);
    let cb = MontyForm::new(&U4096::from_be_slice(&be_bytes(&b, 512)), params);
    let cr = MontyForm::new(&U4096::from_be_slice(&be_bytes(&r, 512)), params);
    let cn = U2048::from_be_slice(&be_bytes(&n, 256));

    // All three agree before anything is timed.
    let expect = Integer::from(&a * &b) % &n2;
    assert_eq!(to_num(&expect), (&na * &nb) % &nn2);
    assert_eq!(
        be_bytes(&expect, 512),
        (ca * cb).retrieve().to_be_bytes().to_vec()
    );

    let mut group = c.benchmark_group("bigint/mulmod_n2");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("rug", |bench| {
        let mut acc = a.clone();
        bench.iter(|| {
            acc *= &b;
            acc %= &n2;
            black_box(&acc);
        })
    });
    group.bench_function("num-bigint", |bench| {
        bench.iter(|| black_box((&na * &nb) % &nn2))
    });
    group.bench_function("crypto-bigint-monty", |bench| {
        bench.iter(|| black_box(black_box(ca) * black_box(cb)))
    });
    group.finish();

    let mut group = c.benchmark_group("bigint/powmod_n_n2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("rug", |bench| {
        bench.iter(|| black_box(r.clone().pow_mod(&n, &n2).expect("positive exponent")))
    });
    group.bench_function("num-bigint", |bench| {
        bench.iter(|| black_box(nr.modpow(&nn, &nn2)))
    });
    group.bench_function("crypto-bigint-monty", |bench| {
        bench.iter(|| black_box(cr.pow(&cn)))
    });
    group.finish();
}

criterion_group!(benches, bigint);
criterion_main!(benches);
