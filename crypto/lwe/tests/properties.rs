//! Property tests of the TFHE (LWE) scheme's own formats and encodings
//! (issue 18). The laws every scheme's roles keep (merge, batch
//! verification, exact sums, noise) are tested for TFHE and Paillier alike
//! in `crypto/schemes/tests/properties.rs`, which also round-trips a CRS and
//! proofs (making a CRS costs seconds, so it is made once, there); this
//! file covers the compact lists, Delta, the list split and the key files.

use std::sync::OnceLock;

use hetally_lwe::{list_lengths, CiphertextList, Delta, LweError, SecretKey, PKE_ZKV2_2048};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// `cases` cases. Failures are not written to regression files (proptest
/// cannot place them beside an integration test); the minimal failing
/// input it prints reproduces the case, as every random draw of a case
/// derives from it.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::generate(PKE_ZKV2_2048, &mut ChaCha20Rng::seed_from_u64(18)))
}

fn delta() -> impl Strategy<Value = Delta> {
    (Delta::MIN_LOG2..=Delta::MAX_LOG2).prop_map(|log2| Delta::new(log2).unwrap())
}

/// A value Delta's plaintext space holds: anywhere in it, or at its ends.
fn value(delta: Delta) -> impl Strategy<Value = i128> {
    let max = i128::from(delta.max_abs_value());
    prop_oneof![
        4 => -max - 1..=max,
        1 => Just(max),
        1 => Just(-max - 1),
        1 => -3i128..=3,
    ]
}

proptest! {
    // Encoding work and integer arithmetic: 256 cases (proptest's default).
    #![proptest_config(config(256))]

    /// Lists of arbitrary words (any word is a valid element of Z_2^64).
    #[test]
    fn lists_round_trip(
        count in 1usize..=PKE_ZKV2_2048.lwe_dimension,
        seed in any::<u64>(),
    ) {
        use rand::Rng;
        let n = PKE_ZKV2_2048.lwe_dimension;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let words: Vec<u64> = (0..n + count).map(|_| rng.gen()).collect();
        let list = CiphertextList::from_words(PKE_ZKV2_2048, count, words).unwrap();
        let bytes = list.to_bytes();
        prop_assert_eq!(bytes.len(), CiphertextList::encoded_len(PKE_ZKV2_2048, count));
        let back = CiphertextList::from_bytes(&bytes, PKE_ZKV2_2048, count).unwrap();
        prop_assert_eq!(&back, &list);
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        // A list of another length is not this one.
        let other = if count > 1 { count - 1 } else { 2 };
        let refused = matches!(
            CiphertextList::from_bytes(&bytes, PKE_ZKV2_2048, other),
            Err(LweError::LengthMismatch { .. })
        );
        prop_assert!(refused);
    }

    /// Rounding removes any error below Delta / 2 in either direction.
    #[test]
    fn delta_decodes_what_it_encodes_through_small_errors(
        (delta, m) in delta().prop_flat_map(|d| (Just(d), value(d))),
        error in any::<i64>(),
    ) {
        let half = 1i64 << (delta.log2() - 1);
        let error = error.rem_euclid(2 * half) - half;
        prop_assert_eq!(delta.decode(delta.encode(m)), m);
        prop_assert_eq!(delta.decode(delta.encode(m).wrapping_add(error as u64)), m);
    }

    /// A vector is split into as few lists as the dimension allows, of
    /// lengths differing by at most one.
    #[test]
    fn list_split_covers_the_vector(total in 0usize..200_000, max in 1usize..5000) {
        let lengths = list_lengths(total, max);
        prop_assert_eq!(lengths.iter().sum::<usize>(), total);
        prop_assert_eq!(lengths.len(), total.div_ceil(max));
        prop_assert!(lengths.iter().all(|&l| (1..=max).contains(&l)));
        if let (Some(lo), Some(hi)) = (lengths.iter().min(), lengths.iter().max()) {
            prop_assert!(hi - lo <= 1);
        }
    }
}

proptest! {
    // Each case encrypts one list (a few milliseconds) and expands and
    // decrypts it: 32 cases.
    #![proptest_config(config(32))]

    #[test]
    fn one_encryption_decrypts_exactly(
        (delta, values) in delta()
            .prop_filter("Delta holds one encryption", |d| PKE_ZKV2_2048.max_encryptions(*d) >= 1)
            .prop_flat_map(|d| (Just(d), prop::collection::vec(value(d), 1..=64))),
        seed in any::<u64>(),
    ) {
        let sk = key();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let list = sk.public_key().encrypt(&values, delta, &mut rng).unwrap();
        let back = CiphertextList::from_bytes(&list.to_bytes(), PKE_ZKV2_2048, values.len())
            .unwrap();
        prop_assert_eq!(sk.decrypt(&back, 1, delta).unwrap(), values);
    }
}

proptest! {
    // Key generation, and decoding a secret key (which checks the pair with
    // one negacyclic convolution of dimension 2,048), take tens of
    // milliseconds: 8 cases of fresh keys.
    #![proptest_config(config(8))]

    #[test]
    fn key_files_round_trip(seed in any::<u64>()) {
        let sk = SecretKey::generate(PKE_ZKV2_2048, &mut ChaCha20Rng::seed_from_u64(seed));
        let public = sk.public_key().to_bytes();
        let pk = hetally_lwe::PublicKey::from_bytes(&public).unwrap();
        prop_assert_eq!(&pk, sk.public_key());
        prop_assert_eq!(pk.to_bytes(), public);
        let secret = sk.to_bytes();
        let back = SecretKey::from_bytes(&secret).unwrap();
        prop_assert_eq!(back.to_bytes(), secret);
        prop_assert_eq!(back.public_key(), sk.public_key());
    }
}
