//! kzen-paillier at 2048 bits, the same operations as hetally's
//! `paillier` bench: one addition, one encryption, one decryption (kzen
//! decrypts its CRT halves on two threads). Run by
//! `scripts/bench-paillier-compare.sh`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kzen_paillier::*;

fn kzen(c: &mut Criterion) {
    let (ek, dk) = Paillier::keypair_with_modulus_size(2048).keys();
    let a: RawCiphertext<'_> = Paillier::encrypt(&ek, RawPlaintext::from(BigInt::from(3)));
    let b: RawCiphertext<'_> = Paillier::encrypt(&ek, RawPlaintext::from(BigInt::from(5)));
    let sum: RawPlaintext<'_> = Paillier::decrypt(&dk, Paillier::add(&ek, a.clone(), b.clone()));
    assert_eq!(sum, RawPlaintext::from(BigInt::from(8)));

    c.bench_function("kzen/add", |bench| {
        bench.iter(|| black_box(Paillier::add(&ek, a.clone(), b.clone())))
    });
    let mut group = c.benchmark_group("kzen");
    group.sample_size(30).measurement_time(Duration::from_secs(8));
    group.bench_function("encrypt", |bench| {
        bench.iter(|| {
            let c: RawCiphertext<'_> = Paillier::encrypt(&ek, RawPlaintext::from(BigInt::from(1)));
            black_box(c)
        })
    });
    group.bench_function("decrypt", |bench| {
        bench.iter(|| {
            let m: RawPlaintext<'_> = Paillier::decrypt(&dk, a.clone());
            black_box(m)
        })
    });
    group.finish();
}

criterion_group!(benches, kzen);
criterion_main!(benches);
