//! The TFHE (LWE) scheme: keys, compact lists, sums, bias removal,
//! capacity, encodings and zk-pok proofs.
//!
//! Proofs cost seconds each, so only a few lists are proven here; sums use
//! many unproven lists.

use std::sync::OnceLock;
use std::time::Instant;

use hetally_lwe::{
    list_lengths, sum_lists, CiphertextList, ComputeLoad, Crs, Delta, LweError, ParameterSet,
    Proof, PublicKey, SecretKey, PKE_ZKV2_2048,
};
use hetally_protocol::codec::{Reader, Writer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// One key pair for the whole test binary (key generation is cheap, but
/// the bias table is computed once per key).
fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::generate(PKE_ZKV2_2048, &mut rng(1)))
}

fn params() -> ParameterSet {
    PKE_ZKV2_2048
}

#[test]
fn keys_round_trip_and_hide_secrets() {
    let sk = key();
    let pk = sk.public_key();
    let mut w = Writer::new();
    sk.encode_body(&mut w);
    let bytes = w.finish();
    let mut r = Reader::new(&bytes);
    let back = SecretKey::decode_body(&mut r).unwrap();
    r.finish("secret key").unwrap();
    assert_eq!(back.public_key(), pk);
    assert_eq!(back.public_key().fingerprint(), pk.fingerprint());

    let mut w = Writer::new();
    pk.encode_body(&mut w);
    let pk_bytes = w.finish();
    assert_eq!(pk_bytes.len(), 1 + 8 * 2 * 2048);
    let mut r = Reader::new(&pk_bytes);
    assert_eq!(&PublicKey::decode_body(&mut r).unwrap(), pk);
    r.finish("public key").unwrap();

    let shown = format!("{sk:?}");
    assert!(shown.contains("redacted"), "{shown}");
    assert!(
        shown.len() < 300,
        "Debug must not dump key material: {shown}"
    );
    assert!(format!("{pk:?}").len() < 300);
}

#[test]
fn tampered_keys_are_rejected() {
    let sk = key();
    let mut w = Writer::new();
    sk.encode_body(&mut w);
    let bytes = w.finish();

    // Truncated.
    let mut r = Reader::new(&bytes[..bytes.len() - 1]);
    assert!(matches!(
        SecretKey::decode_body(&mut r),
        Err(LweError::Codec(_))
    ));
    // Unknown parameter set.
    let mut bad = bytes.clone();
    bad[0] = 9;
    assert!(matches!(
        SecretKey::decode_body(&mut Reader::new(&bad)),
        Err(LweError::UnknownParameterSet(9))
    ));
    // A secret coefficient that is not a bit.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] = 2;
    assert!(matches!(
        SecretKey::decode_body(&mut Reader::new(&bad)),
        Err(LweError::InvalidKey(_))
    ));
    // Another key's public half with this secret key.
    let other = SecretKey::generate(params(), &mut rng(2));
    let mut w = Writer::new();
    other.public_key().encode_body(&mut w);
    let mut spliced = w.finish();
    spliced.extend_from_slice(&bytes[1 + 8 * 2 * 2048..]);
    assert!(matches!(
        SecretKey::decode_body(&mut Reader::new(&spliced)),
        Err(LweError::InvalidKey(_))
    ));
}

#[test]
fn round_trip_vector_over_several_lists() {
    let sk = key();
    let delta = Delta::new(34).unwrap();
    let mut r = rng(3);
    let values: Vec<u64> = (0..3000).map(|_| r.gen_range(0..1000)).collect();
    assert_eq!(list_lengths(3000, 2048), vec![1500, 1500]);
    let lists = sk
        .public_key()
        .encrypt_vector(&values, delta, &mut r)
        .unwrap();
    assert_eq!(lists.len(), 2);
    let mut decrypted = Vec::new();
    for l in &lists {
        decrypted.extend(sk.decrypt(l, 1, delta).unwrap());
    }
    let expected: Vec<i128> = values.iter().map(|&v| i128::from(v)).collect();
    assert_eq!(decrypted, expected);
}

#[test]
fn list_encoding_round_trips_and_rejects_tampering() {
    let sk = key();
    let delta = Delta::new(34).unwrap();
    let list = sk
        .public_key()
        .encrypt(&[1, 2, 3, -4], delta, &mut rng(4))
        .unwrap();
    let bytes = list.to_bytes();
    assert_eq!(bytes.len(), CiphertextList::encoded_len(params(), 4));
    let back = CiphertextList::from_bytes(&bytes, params(), 4).unwrap();
    assert_eq!(back, list);
    assert_eq!(sk.decrypt(&back, 1, delta).unwrap(), vec![1, 2, 3, -4]);

    // Truncated, trailing byte, wrong expected length, oversized count.
    assert!(CiphertextList::from_bytes(&bytes[..bytes.len() - 1], params(), 4).is_err());
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        CiphertextList::from_bytes(&long, params(), 4),
        Err(LweError::Codec(_))
    ));
    assert!(matches!(
        CiphertextList::from_bytes(&bytes, params(), 5),
        Err(LweError::LengthMismatch { .. })
    ));
    let mut huge = bytes.clone();
    huge[..4].copy_from_slice(&100_000u32.to_be_bytes());
    assert!(CiphertextList::from_bytes(&huge, params(), 100_000).is_err());
    let mut zero = bytes;
    zero[..4].copy_from_slice(&0u32.to_be_bytes());
    assert!(CiphertextList::from_bytes(&zero, params(), 0).is_err());
}

#[test]
fn sum_of_many_lists_decrypts_exactly_and_matches_expanded_sum() {
    let sk = key();
    let pk = sk.public_key();
    let delta = Delta::new(34).unwrap();
    let k = 2000;
    let len = 64;
    let mut r = rng(5);
    let mut expected = vec![0i128; len];
    let started = Instant::now();
    let lists: Vec<CiphertextList> = (0..k)
        .map(|_| {
            let values: Vec<i128> = (0..len).map(|_| r.gen_range(0..2)).collect();
            for (e, v) in expected.iter_mut().zip(&values) {
                *e += v;
            }
            pk.encrypt(&values, delta, &mut r).unwrap()
        })
        .collect();
    let encrypt_time = started.elapsed();
    let started = Instant::now();
    let sum = sum_lists(&lists).unwrap().unwrap();
    let sum_time = started.elapsed();
    let started = Instant::now();
    assert_eq!(sk.decrypt(&sum, k, delta).unwrap(), expected);
    eprintln!(
        "{k} lists of {len}: encrypt {:?} per list, sum {sum_time:?}, decrypt {:?}",
        encrypt_time / k as u32,
        started.elapsed()
    );

    // Summing compact lists equals summing their expansions: expansion is
    // linear, so the server never needs to expand.
    let mut expanded_sum = vec![0u64; lists[0].expand().len()];
    for l in &lists[..10] {
        for (a, b) in expanded_sum.iter_mut().zip(l.expand()) {
            *a = a.wrapping_add(b);
        }
    }
    assert_eq!(
        sum_lists(&lists[..10]).unwrap().unwrap().expand(),
        expanded_sum
    );
    assert!(sum_lists(&[]).unwrap().is_none());
    let other = pk.encrypt(&[1], delta, &mut r).unwrap();
    assert!(matches!(
        sum_lists(&[lists[0].clone(), other]),
        Err(LweError::LengthMismatch { .. })
    ));
}

#[test]
fn bias_is_the_linear_term_and_removing_it_leaves_small_noise() {
    let sk = key();
    let pk = sk.public_key();
    let delta = Delta::new(34).unwrap();
    let k: u64 = 1000;
    let len = 256;
    let mut r = rng(6);
    let lists: Vec<CiphertextList> = (0..k)
        .map(|_| pk.encrypt(&vec![0; len], delta, &mut r).unwrap())
        .collect();
    let sum = sum_lists(&lists).unwrap().unwrap();
    let phases = sk.phases(&sum);
    let bias = sk.bias();
    let mut raw_max = 0f64;
    let mut residual_max = 0f64;
    for (p, e) in phases.iter().zip(bias) {
        let raw = *p as i64 as f64;
        let residual = raw - (k as f64) * (*e as f64) / 2.0;
        raw_max = raw_max.max(raw.abs());
        residual_max = residual_max.max(residual.abs());
    }
    // The bias term alone is K/2 * |E_j|, |E_j| around sqrt(n) * 2^17 / sqrt(3)
    // ~ 2^21.6: about 2^30.5 at K = 1000. What remains grows like sqrt(K):
    // its standard deviation is about sqrt(K * 3n/4 * 2^34 / 3) ~ 2^26.
    eprintln!(
        "K = {k}: max |raw noise| 2^{:.1}, max |after bias removal| 2^{:.1}",
        raw_max.log2(),
        residual_max.log2()
    );
    assert!(raw_max > 2f64.powi(28), "the linear bias should be visible");
    assert!(residual_max < 2f64.powi(29), "{residual_max}");
    assert!(residual_max * 8.0 < raw_max);
}

#[test]
fn negative_noise_decodes() {
    let sk = key();
    let pk = sk.public_key();
    let delta = Delta::new(34).unwrap();
    let mut r = rng(7);
    let reports: Vec<CiphertextList> = (0..5)
        .map(|_| pk.encrypt(&[1, 0, 1, 0, 1], delta, &mut r).unwrap())
        .collect();
    let noise = [-7i128, -1, 0, 3, -1_000_000];
    let mut sum = sum_lists(&reports).unwrap().unwrap();
    sum.add_assign(&pk.encrypt(&noise, delta, &mut r).unwrap())
        .unwrap();
    assert_eq!(
        sk.decrypt(&sum, 6, delta).unwrap(),
        vec![-2, -1, 5, 3, 5 - 1_000_000]
    );
}

#[test]
fn sum_at_maximum_batch_size_decrypts_and_one_more_is_refused() {
    let sk = key();
    let pk = sk.public_key();
    let delta = Delta::new(32).unwrap();
    let max = params().max_encryptions(delta);
    assert_eq!(max, 1326);
    let len = 32;
    let mut r = rng(8);
    let mut expected = vec![0i128; len];
    let lists: Vec<CiphertextList> = (0..max)
        .map(|_| {
            let values: Vec<i128> = (0..len).map(|_| r.gen_range(0..16)).collect();
            for (e, v) in expected.iter_mut().zip(&values) {
                *e += v;
            }
            pk.encrypt(&values, delta, &mut r).unwrap()
        })
        .collect();
    let sum = sum_lists(&lists).unwrap().unwrap();
    assert_eq!(sk.decrypt(&sum, max, delta).unwrap(), expected);
    assert!(matches!(
        sk.decrypt(&sum, max + 1, delta),
        Err(LweError::CapacityExceeded { encryptions, max: m }) if encryptions == max + 1 && m == max
    ));
    assert!(params().min_delta_for(max + 1).unwrap() > delta);
}

/// One CRS for lists of 8 one-bit values, shared by the proof tests.
fn crs() -> &'static Crs {
    static CRS: OnceLock<Crs> = OnceLock::new();
    CRS.get_or_init(|| {
        let started = Instant::now();
        let crs = Crs::generate(params(), Delta::new(34).unwrap(), 1, 8, &mut rng(9)).unwrap();
        eprintln!(
            "CRS for 8 values: {} bytes, generated in {:?}",
            crs.to_bytes().len(),
            started.elapsed()
        );
        crs
    })
}

#[test]
fn proofs_verify_and_bind_list_metadata_crs_and_load() {
    let sk = key();
    let pk = sk.public_key();
    let crs = crs();
    let mut r = rng(10);
    let values = [1u64, 0, 1, 1, 0, 0, 1, 0];

    let started = Instant::now();
    let (list, proof) = pk
        .encrypt_and_prove(crs, &values, b"task/report-1", ComputeLoad::Proof, &mut r)
        .unwrap();
    let prove_time = started.elapsed();
    let proof_bytes = proof.to_bytes();
    let proof = Proof::from_bytes(&proof_bytes, ComputeLoad::Proof).unwrap();
    let started = Instant::now();
    pk.verify(crs, &list, &proof, b"task/report-1").unwrap();
    eprintln!(
        "prove (ComputeLoad::Proof) {prove_time:?}, verify {:?}, proof {} bytes",
        started.elapsed(),
        proof_bytes.len()
    );
    assert_eq!(
        sk.decrypt(&list, 1, crs.delta()).unwrap(),
        vec![1, 0, 1, 1, 0, 0, 1, 0]
    );

    // Another report's metadata.
    assert!(matches!(
        pk.verify(crs, &list, &proof, b"task/report-2"),
        Err(LweError::ProofRejected)
    ));
    // Another list (same values, fresh randomness).
    let other = pk
        .encrypt(&values.map(i128::from), crs.delta(), &mut r)
        .unwrap();
    assert!(matches!(
        pk.verify(crs, &other, &proof, b"task/report-1"),
        Err(LweError::ProofRejected)
    ));
    // A tampered list: one body word changed.
    let mut bytes = list.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = CiphertextList::from_bytes(&bytes, params(), 8).unwrap();
    assert!(pk.verify(crs, &tampered, &proof, b"task/report-1").is_err());
    // Another CRS with other bounds (the same statement otherwise).
    let wider = Crs::generate(params(), crs.delta(), 2, 8, &mut r).unwrap();
    assert_ne!(wider.hash(), crs.hash());
    assert!(pk.verify(&wider, &list, &proof, b"task/report-1").is_err());
    // Another key.
    let other_key = SecretKey::generate(params(), &mut rng(11));
    assert!(other_key
        .public_key()
        .verify(crs, &list, &proof, b"task/report-1")
        .is_err());
    // A server that accepts only ComputeLoad::Verify proofs refuses this one
    // when decoding, before any pairing.
    assert!(Proof::from_bytes(&proof_bytes, ComputeLoad::Verify).is_err());
    // Tampered and trailing proof bytes.
    let mut long = proof_bytes.clone();
    long.push(0);
    assert!(Proof::from_bytes(&long, ComputeLoad::Proof).is_err());
    assert!(Proof::from_bytes(&proof_bytes[..proof_bytes.len() / 2], ComputeLoad::Proof).is_err());
}

#[test]
fn values_out_of_bounds_cannot_be_proven() {
    let pk = key().public_key();
    let err = pk
        .encrypt_and_prove(crs(), &[0, 1, 2, 0], b"m", ComputeLoad::Proof, &mut rng(12))
        .unwrap_err();
    assert!(matches!(
        err,
        LweError::ValueOutOfRange {
            index: 2,
            value: 2,
            bits: 1
        }
    ));
    // More values than the CRS allows.
    assert!(matches!(
        pk.encrypt_and_prove(crs(), &[0; 9], b"m", ComputeLoad::Proof, &mut rng(12)),
        Err(LweError::TooManyValues { count: 9, max: 8 })
    ));
}

#[test]
fn crs_encoding_round_trips_and_checks_its_statement() {
    let crs = crs();
    let bytes = crs.to_bytes().to_vec();
    let back = Crs::from_bytes(&bytes).unwrap();
    assert_eq!(back.hash(), crs.hash());
    assert_eq!(back.value_bits(), 1);
    assert_eq!(back.max_values(), 8);

    let mut long = bytes.clone();
    long.push(0);
    assert!(Crs::from_bytes(&long).is_err());
    assert!(Crs::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    // A header claiming other bounds than the CRS proves.
    let mut lying = bytes.clone();
    lying[2] = 2;
    assert!(Crs::from_bytes(&lying).is_err());
    let mut lying = bytes;
    lying[3..7].copy_from_slice(&16u32.to_be_bytes());
    assert!(Crs::from_bytes(&lying).is_err());
}
