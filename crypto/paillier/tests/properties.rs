//! Property tests of the Paillier scheme's own formats and packing (issue
//! 18). The laws every scheme's roles keep (merge, batch verification, exact
//! sums, noise) are tested for Paillier and TFHE alike in
//! `crypto/schemes/tests/properties.rs`; this file covers what only Paillier
//! has: slot packing, the ciphertext encoding and the key files.
//!
//! One 2048-bit key, generated once from a fixed seed (key generation takes
//! seconds); the encryption randomness of each case comes from a seed that
//! proptest draws, so every failure reproduces from its case.

use std::sync::OnceLock;

use hetally_paillier::arith::Int;
use hetally_paillier::{Gmp, Packing, PublicKey, Pure, SecretKey, MAX_SLOT_BITS};
use num_bigint::BigInt;
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
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap()
    })
}

/// A packing of either supported modulus size, and values that fit its
/// slots: mostly anywhere in the slot's range, sometimes at its ends.
fn packed_values() -> impl Strategy<Value = (Packing, Vec<i128>)> {
    (2..=MAX_SLOT_BITS, prop_oneof![Just(2048u32), Just(3072)]).prop_flat_map(|(w, modulus)| {
        let packing = Packing::new(w, modulus).unwrap();
        let max = packing.max_abs();
        let value = prop_oneof![
            4 => -max..=max,
            1 => Just(max),
            1 => Just(-max),
            1 => (-3i128..=3).prop_map(move |v| v.clamp(-max, max)),
        ];
        // Up to three plaintexts' worth, so that plaintext boundaries and a
        // partly filled last plaintext are covered.
        let most = 3 * packing.slots_per_plaintext() as usize;
        (
            Just(packing),
            prop::collection::vec(value, 1..=most.min(400)),
        )
    })
}

/// A plaintext below n: small, any size up to n's, or the ends of the range.
fn plaintext() -> impl Strategy<Value = Gmp> {
    let n = key().public_key().n().clone();
    prop_oneof![
        any::<u64>().prop_map(Gmp::from),
        prop::collection::vec(any::<u8>(), 1..=256)
            .prop_map(move |b| Gmp::from_be_bytes(&b).rem_euclid(&n)),
        Just(Gmp::from(0)),
        Just(Gmp::from(key().public_key().n() - 1u32)),
    ]
}

/// One bit of a file flipped.
fn flip() -> impl Strategy<Value = (prop::sample::Index, u8)> {
    (any::<prop::sample::Index>(), 0u8..8)
}

proptest! {
    // Packing is pure arithmetic on small integers: 256 cases (proptest's
    // default) take milliseconds.
    #![proptest_config(config(256))]

    #[test]
    fn packing_round_trips((packing, values) in packed_values()) {
        let packed: Vec<BigInt> = packing.pack(&values).unwrap();
        prop_assert_eq!(packed.len(), packing.plaintext_count(values.len()));
        prop_assert_eq!(packing.unpack(&packed, values.len()).unwrap(), values);
    }

    /// Adding packed plaintexts adds their slots, as long as each sum stays
    /// in the slot's range: what makes one ciphertext multiplication add a
    /// whole vector.
    #[test]
    fn packed_plaintexts_add_slot_by_slot(
        (packing, a) in packed_values(),
        seed in any::<u64>(),
    ) {
        use rand::Rng;
        let max = packing.max_abs();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        // b is drawn so that every a + b fits.
        let b: Vec<i128> = a
            .iter()
            .map(|&x| rng.gen_range((-max - x.min(0))..=(max - x.max(0))))
            .collect();
        let pa: Vec<BigInt> = packing.pack(&a).unwrap();
        let pb: Vec<BigInt> = packing.pack(&b).unwrap();
        let sum: Vec<BigInt> = pa.iter().zip(&pb).map(|(x, y)| x + y).collect();
        let want: Vec<i128> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        prop_assert_eq!(packing.unpack(&sum, a.len()).unwrap(), want);
    }
}

proptest! {
    // One encryption (about a millisecond) and one decryption (a few) per
    // case: 64 cases.
    #![proptest_config(config(64))]

    #[test]
    fn ciphertexts_round_trip_and_decrypt(m in plaintext(), seed in any::<u64>()) {
        let sk = key();
        let pk = sk.public_key();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let c = pk.encrypt(&m, &mut rng).unwrap();
        let bytes = pk.ciphertext_to_bytes(&c);
        prop_assert_eq!(bytes.len(), pk.ciphertext_len());
        let back = pk.ciphertext_from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &c);
        prop_assert_eq!(sk.decrypt(&back).unwrap(), m.clone());
        // The pure-Rust backend reads the same bytes as the same ciphertext.
        let pure = pk.convert::<Pure>();
        let c_pure = pure.ciphertext_from_bytes(&bytes).unwrap();
        prop_assert_eq!(pure.ciphertext_to_bytes(&c_pure), bytes);
    }

    /// Key files decode canonically: whatever a decoder accepts after a bit
    /// flip encodes back to exactly the bytes it read (a different key, so a
    /// different fingerprint), under both big-integer backends. Decoding a
    /// secret key tests its primes: a few milliseconds per case.
    #[test]
    fn key_files_decode_canonically((index, bit) in flip(), secret in any::<bool>()) {
        let sk = key();
        let file = if secret { sk.to_bytes() } else { sk.public_key().to_bytes() };
        let mut mutated = file.clone();
        mutated[index.index(file.len())] ^= 1 << bit;
        if secret {
            if let Ok(back) = SecretKey::from_bytes(&mutated) {
                prop_assert_eq!(back.to_bytes(), mutated);
            }
        } else {
            if let Ok(back) = PublicKey::<Gmp>::from_bytes(&mutated) {
                prop_assert_eq!(back.to_bytes(), mutated.clone());
                prop_assert_ne!(back.fingerprint(), sk.public_key().fingerprint());
            }
            if let Ok(back) = PublicKey::<Pure>::from_bytes(&mutated) {
                prop_assert_eq!(back.to_bytes(), mutated);
            }
        }
    }
}

#[test]
fn key_files_round_trip() {
    let sk = key();
    let pk = sk.public_key();
    let public = pk.to_bytes();
    assert_eq!(PublicKey::<Gmp>::from_bytes(&public).unwrap(), *pk);
    assert_eq!(
        PublicKey::<Pure>::from_bytes(&public).unwrap().to_bytes(),
        public
    );
    let secret = sk.to_bytes();
    let back = SecretKey::from_bytes(&secret).unwrap();
    assert_eq!(back.to_bytes(), secret);
    assert_eq!(back.public_key(), pk);
}
