//! The two big-integer backends (pure-Rust `num-bigint`, what the client
//! core ships with, and GMP, what the server runs) compute the same bytes:
//! given the same random bytes, a report encrypted and proven by one is
//! byte-for-byte the report the other makes, and the server's verifier
//! accepts what the pure-Rust prover made.

use hetally_dp::DpMechanism;
use hetally_paillier::{Gmp, PaillierAggregator, PaillierEncrypter, Pure, SecretKey};
use hetally_protocol::roles::{Aggregator, Encrypter};
use hetally_protocol::{Measurement, ReportContext, ReportId, TaskDefinition, TaskId};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn definition(pk: &[u8], measurement: Measurement, input_proofs: bool) -> TaskDefinition {
    let layout = hetally_paillier::scheme::layout_for(
        pk,
        &measurement,
        &DpMechanism::None,
        None,
        None,
        100_000,
    )
    .unwrap();
    TaskDefinition {
        measurement,
        min_batch_size: 1,
        max_batch_size: 100_000,
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        public_key: pk.to_vec(),
        layout,
        input_proofs,
        relation: None,
        trustee_noise: None,
    }
}

#[test]
fn pure_rust_and_gmp_reports_agree_byte_for_byte_and_verify() {
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
    let pk = sk.public_key().to_bytes();
    let task_id = TaskId([5; 32]);
    for m in ["count", "sum:8", "histogram:16", "sumvec:3:4"] {
        let measurement: Measurement = m.parse().unwrap();
        for input_proofs in [true, false] {
            let def = definition(&pk, measurement, input_proofs);
            let gmp = PaillierEncrypter::<Gmp>::new(&def).unwrap();
            let pure = PaillierEncrypter::<Pure>::new(&def).unwrap();
            let server = PaillierAggregator::<Gmp>::new(&def).unwrap();
            for seed in 0..3u64 {
                let values = measurement.random_value(&mut rng);
                let id = ReportId([seed as u8; 16]);
                let ctx = ReportContext {
                    task_id: &task_id,
                    report_id: &id,
                    time: 1_700_000_040,
                };
                let a = gmp
                    .encrypt(&values, &ctx, &mut ChaCha20Rng::seed_from_u64(seed))
                    .unwrap();
                let b = pure
                    .encrypt(&values, &ctx, &mut ChaCha20Rng::seed_from_u64(seed))
                    .unwrap();
                assert_eq!(a, b, "{m}, proofs {input_proofs}, seed {seed}");
                let verdict = server.check(&[(&b, ctx)]).pop().unwrap();
                assert!(verdict.is_ok(), "{m}: {verdict:?}");
            }
        }
    }
}

#[test]
fn keys_and_packing_agree_across_backends() {
    let mut rng = ChaCha20Rng::seed_from_u64(78);
    let sk = SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
    let gmp = sk.public_key().clone();
    let pure = gmp.convert::<Pure>();
    assert_eq!(gmp.to_bytes(), pure.to_bytes());
    assert_eq!(gmp.fingerprint(), pure.fingerprint());
    assert_eq!(gmp.ciphertext_len(), pure.ciphertext_len());
    let packing = hetally_paillier::Packing::new(40, 2048).unwrap();
    let values: Vec<i128> = (0..120).map(|i| (i * 7919) % 1001 - 500).collect();
    let a: Vec<Gmp> = packing.pack(&values).unwrap();
    let b: Vec<Pure> = packing.pack(&values).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.to_string(), y.to_string());
    }
    assert_eq!(packing.unpack(&b, values.len()).unwrap(), values);
    // Fast-form encryptions from the same bytes are the same ciphertext.
    let m = Gmp::from(123_456u32);
    let ca = gmp.encrypt(&m, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let cb = pure
        .encrypt(&Pure::from(123_456u32), &mut ChaCha20Rng::seed_from_u64(1))
        .unwrap();
    assert_eq!(gmp.ciphertext_to_bytes(&ca), pure.ciphertext_to_bytes(&cb));
    assert_eq!(sk.decrypt(&ca).unwrap(), m);
}
