//! Tests of threshold decryption. They deal keys from a committed pair of
//! 1024-bit safe primes (found once with [`keygen::generate_safe_primes`]
//! in a release build) so that no test waits for a safe-prime search,
//! except the one that checks the search itself.

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::Packing;

/// A safe prime p = 2p' + 1 of 1024 bits.
const P_HEX: &str = "d0899767031d202ffb2398e8a4f33d05527b23fbb144249fe22ecf47642de0dad66a72ee4327e417d947c8c2d206625539864e8bc32969273702c520031da81a594d501efb14ce16b11fc33a689f246001575de14a37173d451e46642328c15b343d9b251444f71df2fe4b5cf5c96ab3386344191117abc4b9d495bc154c97df";

/// Another, far from [`P_HEX`].
const Q_HEX: &str = "c6ec6150318988ecc8bfa454d2570d1eecd43fe1c63a30415e3b2c672058800d64aa3e1783401561bf8ab724a9f4dd49915d6b0da9b0e544b0c46efefc6d09aeee2a1dff5efb52266a9b5d98da68ae4724293dae011d34084344035de6720d4b1c30254fccbff195fc8fede876d0460149518370c91078b46940a9c8e05feb87";

const CONTEXT: &[u8] = b"task 1234 / release 1";

fn primes() -> (Integer, Integer) {
    let p = Integer::from_str_radix(P_HEX, 16).unwrap();
    let q = Integer::from_str_radix(Q_HEX, 16).unwrap();
    (p, q)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A key dealt from the committed primes with a fixed seed.
fn dealt(trustees: u16, threshold: u16, seed: u64) -> (ThresholdPublicKey, Vec<KeyShare>) {
    let (p, q) = primes();
    let mut rng = rng(seed);
    let n = Integer::from(&p * &q);
    let h = keygen::generate_h(&n, &mut rng);
    let params = ThresholdParams::new(trustees, threshold).unwrap();
    deal(p, q, h, params, &mut rng).unwrap()
}

/// The 3-of-5 key most tests share.
fn three_of_five() -> &'static (ThresholdPublicKey, Vec<KeyShare>) {
    static KEY: OnceLock<(ThresholdPublicKey, Vec<KeyShare>)> = OnceLock::new();
    KEY.get_or_init(|| dealt(5, 3, 35))
}

/// Signed slot values of the packed vector in [`Release`]: 50 slots of 40
/// bits, one plaintext.
fn packed_values() -> Vec<i128> {
    (0..50)
        .map(|i: i128| if i % 3 == 0 { -(i * 1000) } else { i * i })
        .collect()
}

/// A release: ciphertexts of n - 1, a random value, and a packed vector
/// with negative slots. Three ciphertexts: every test verifies many proofs
/// over them, at about 85 ms per proof.
struct Release {
    cts: Vec<Ciphertext<Integer>>,
    /// The plaintexts in [0, n).
    expected: Vec<Integer>,
    packing: Packing,
}

fn release(key: &ThresholdPublicKey, rng: &mut ChaCha20Rng) -> Release {
    let pk = key.public_key();
    let n = pk.n();
    let mut expected = vec![Integer::from(n - 1u32), random_below(n, rng)];
    let mut cts: Vec<Ciphertext<Integer>> = expected
        .iter()
        .map(|m| pk.encrypt(m, rng).unwrap())
        .collect();
    let packing = Packing::new(40, pk.modulus_bits()).unwrap();
    for p in packing.pack::<Integer>(&packed_values()).unwrap() {
        cts.push(pk.encrypt_signed(&p, rng).unwrap());
        expected.push(p.rem_euclid(n));
    }
    Release {
        cts,
        expected,
        packing,
    }
}

/// The 3-of-5 key, a release under it, and every trustee's partial.
fn three_of_five_release() -> &'static (Release, Vec<PartialDecryption>) {
    static RELEASE: OnceLock<(Release, Vec<PartialDecryption>)> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let (key, shares) = three_of_five();
        let mut rng = rng(1);
        let release = release(key, &mut rng);
        let parts = shares
            .iter()
            .map(|s| s.partial_decrypt(&release.cts, CONTEXT, &mut rng).unwrap())
            .collect();
        (release, parts)
    })
}

fn rejected(trustee: u16, reason: ThresholdError) -> Rejection {
    Rejection { trustee, reason }
}

#[test]
fn committed_primes_are_safe_primes() {
    let (p, q) = primes();
    for x in [&p, &q] {
        assert_eq!(x.significant_bits(), 1024);
        assert!(x.get_bit(1022), "top two bits set");
        assert!(keygen::is_safe_prime(x));
    }
    keygen::check_primes(&p, &q).unwrap();
    assert_eq!(Integer::from(&p * &q).significant_bits(), 2048);
}

#[test]
fn params_are_validated() {
    for (n, t) in [(2, 2), (5, 3), (64, 2), (64, 64)] {
        let params = ThresholdParams::new(n, t).unwrap();
        assert_eq!((params.trustees(), params.threshold()), (n, t));
    }
    for (n, t) in [(0, 0), (1, 1), (5, 1), (5, 0), (3, 4), (65, 2), (65, 65)] {
        assert!(
            matches!(
                ThresholdParams::new(n, t),
                Err(ThresholdError::InvalidParams(_))
            ),
            "{t} of {n}"
        );
    }
    assert_eq!(ThresholdParams::new(5, 3).unwrap().delta(), 120);
}

#[test]
fn lagrange_coefficients_interpolate_at_zero() {
    // Σ λ_i f(i) = Δ f(0) over the integers, for every 3-subset of 1..=5
    // and for all 64 trustees of the largest key.
    let f = |coefficients: &[Integer], x: u16| -> Integer {
        coefficients
            .iter()
            .rev()
            .fold(Integer::new(), |acc, a| acc * x + a)
    };
    let mut rng = rng(64);
    let delta5 = ThresholdParams::new(5, 3).unwrap().delta();
    let poly: Vec<Integer> = (0..3).map(|_| random_bits(100, &mut rng)).collect();
    for a in 1..=5u16 {
        for b in a + 1..=5 {
            for c in b + 1..=5 {
                let set = [a, b, c];
                let sum: Integer = lagrange_coefficients(&delta5, &set)
                    .iter()
                    .zip(set)
                    .map(|(l, i)| l * f(&poly, i))
                    .sum();
                assert_eq!(sum, Integer::from(&delta5 * &poly[0]), "{set:?}");
            }
        }
    }
    let delta64 = ThresholdParams::new(64, 64).unwrap().delta();
    let poly: Vec<Integer> = (0..64).map(|_| random_bits(300, &mut rng)).collect();
    let set: Vec<u16> = (1..=64).collect();
    let sum: Integer = lagrange_coefficients(&delta64, &set)
        .iter()
        .zip(&set)
        .map(|(l, &i)| l * f(&poly, i))
        .sum();
    assert_eq!(sum, Integer::from(&delta64 * &poly[0]));
}

#[test]
fn every_three_of_five_subset_decrypts_exactly() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let mut subsets = 0;
    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                // Out of order on purpose: the result does not depend on it.
                let chosen = [parts[c].clone(), parts[a].clone(), parts[b].clone()];
                let out = key.combine(&release.cts, CONTEXT, &chosen).unwrap();
                assert_eq!(out.plaintexts, release.expected, "trustees {a} {b} {c}");
                let used: Vec<u16> = [a, b, c].iter().map(|&i| i as u16 + 1).collect();
                assert_eq!(out.used, used);
                assert!(out.rejected.is_empty());
                subsets += 1;
            }
        }
    }
    assert_eq!(subsets, 10);

    // All five: the three smallest indices are used, nothing rejected.
    let out = key.combine(&release.cts, CONTEXT, parts).unwrap();
    assert_eq!(out.used, vec![1, 2, 3]);
    assert!(out.rejected.is_empty());
    assert_eq!(out.plaintexts, release.expected);

    // The packed vector unpacks with the existing code, negative slots
    // included, after the same signed mapping as decrypt_all_signed.
    let pk = key.public_key();
    let signed: Vec<Integer> = out.plaintexts[2..]
        .iter()
        .map(|m| pk.to_signed(m.clone()))
        .collect();
    let values = packed_values();
    assert_eq!(
        release.packing.unpack(&signed, values.len()).unwrap(),
        values
    );
}

#[test]
fn two_of_two_and_five_of_five() {
    for (trustees, threshold) in [(2, 2), (5, 5)] {
        let (key, shares) = dealt(trustees, threshold, u64::from(trustees) * 100);
        let mut rng = rng(u64::from(trustees));
        let pk = key.public_key();
        let expected = [
            Integer::from(0),
            Integer::from(1),
            random_below(pk.n(), &mut rng),
        ];
        let cts: Vec<Ciphertext<Integer>> = expected
            .iter()
            .map(|m| pk.encrypt(m, &mut rng).unwrap())
            .collect();
        let cts = &cts[..];
        let parts: Vec<PartialDecryption> = shares
            .iter()
            .map(|s| s.partial_decrypt(cts, CONTEXT, &mut rng).unwrap())
            .collect();
        let out = key.combine(cts, CONTEXT, &parts).unwrap();
        assert_eq!(out.plaintexts, expected);
        assert_eq!(out.used, (1..=trustees).collect::<Vec<_>>());
        let short = &parts[1..];
        assert_eq!(
            key.combine(cts, CONTEXT, short),
            Err(ThresholdError::NotEnough {
                valid: usize::from(threshold) - 1,
                needed: usize::from(threshold),
                rejected: vec![],
            })
        );
    }
}

#[test]
fn two_partials_of_three_are_not_enough() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let err = key.combine(&release.cts, CONTEXT, &parts[3..]).unwrap_err();
    assert_eq!(
        err,
        ThresholdError::NotEnough {
            valid: 2,
            needed: 3,
            rejected: vec![]
        }
    );
    assert_eq!(
        err.to_string(),
        "only 2 valid partial decryptions from distinct trustees, 3 needed"
    );
    assert!(matches!(
        key.combine(&release.cts, CONTEXT, &[]),
        Err(ThresholdError::NotEnough { valid: 0, .. })
    ));
}

#[test]
fn a_partial_made_with_another_keys_share_is_named() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    // The same primes dealt again: another polynomial, other shares.
    let (other_key, other_shares) = dealt(5, 3, 36);
    assert_ne!(other_key.fingerprint(), key.fingerprint());
    // Trustee 2 holding the other dealing's share but this key's public
    // part (say, a mixed-up share file): its proof fails.
    let wrong = KeyShare {
        key: key.clone(),
        index: 2,
        share: other_shares[1].share.clone(),
    };
    let mut rng = rng(2);
    let bad = wrong
        .partial_decrypt(&release.cts, CONTEXT, &mut rng)
        .unwrap();
    assert_eq!(
        key.verify_partial(&bad, &release.cts, CONTEXT),
        Err(ThresholdError::InvalidProof {
            trustee: 2,
            position: 0
        })
    );
    let invalid = ThresholdError::InvalidProof {
        trustee: 2,
        position: 0,
    };
    // With only two valid partials left: not enough, and trustee 2 named.
    let err = key
        .combine(
            &release.cts,
            CONTEXT,
            &[parts[0].clone(), bad.clone(), parts[2].clone()],
        )
        .unwrap_err();
    assert_eq!(
        err,
        ThresholdError::NotEnough {
            valid: 2,
            needed: 3,
            rejected: vec![rejected(2, invalid.clone())]
        }
    );
    assert!(err
        .to_string()
        .contains("trustee 2's partial decryption has an invalid proof"));
    // With three valid ones besides it: decrypts, and still names trustee 2.
    let out = key
        .combine(
            &release.cts,
            CONTEXT,
            &[parts[0].clone(), bad, parts[2].clone(), parts[4].clone()],
        )
        .unwrap();
    assert_eq!(out.plaintexts, release.expected);
    assert_eq!(out.used, vec![1, 3, 5]);
    assert_eq!(out.rejected, vec![rejected(2, invalid)]);

    // A partial made under the other key altogether names its trustee too.
    let foreign = other_shares[3]
        .partial_decrypt(&release.cts, CONTEXT, &mut rng)
        .unwrap();
    assert_eq!(
        key.verify_partial(&foreign, &release.cts, CONTEXT),
        Err(ThresholdError::KeyMismatch { trustee: 4 })
    );
    // ... and relabelled as made under this key, its proof fails.
    let mut relabelled = foreign;
    relabelled.key = key.clone();
    assert_eq!(
        key.verify_partial(&relabelled, &release.cts, CONTEXT),
        Err(ThresholdError::InvalidProof {
            trustee: 4,
            position: 0
        })
    );
    // Every invalid partial is named, not only the first.
    let err = key
        .combine(
            &release.cts,
            CONTEXT,
            &[
                wrong
                    .partial_decrypt(&release.cts, CONTEXT, &mut rng)
                    .unwrap(),
                relabelled,
            ],
        )
        .unwrap_err();
    let ThresholdError::NotEnough { rejected, .. } = err else {
        panic!("expected NotEnough, got {err:?}");
    };
    let named: Vec<u16> = rejected.iter().map(|r| r.trustee).collect();
    assert_eq!(named, vec![2, 4]);
    assert!(rejected
        .iter()
        .all(|r| matches!(r.reason, ThresholdError::InvalidProof { .. })));
}

/// Offset of the first value in a partial decryption file with `context`.
fn first_value_offset(key: &ThresholdPublicKey, context: &[u8]) -> usize {
    // Header, the carried key's body (its file less the header), index,
    // context, count.
    7 + (key.to_bytes().len() - 7) + 2 + 4 + context.len() + 4
}

#[test]
fn a_flipped_byte_in_a_value_or_a_proof_is_rejected_and_named() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let bytes = parts[2].to_bytes();
    let ct = key.public_key().ciphertext_len();
    let base = first_value_offset(key, CONTEXT);
    // In ciphertext 1's entry: the value, e, z.
    let entry = ct + 16 + key.inner.z_len;
    for (what, offset) in [
        ("value", base + entry + 100),
        ("challenge", base + entry + ct + 5),
        ("response", base + entry + ct + 16 + 300),
    ] {
        let mut tampered = bytes.clone();
        tampered[offset] ^= 0x10;
        let part = key.partial_from_bytes(&tampered).unwrap();
        assert_eq!(
            key.verify_partial(&part, &release.cts, CONTEXT),
            Err(ThresholdError::InvalidProof {
                trustee: 3,
                position: 1
            }),
            "{what}"
        );
        let out = key
            .combine(
                &release.cts,
                CONTEXT,
                &[part, parts[0].clone(), parts[1].clone(), parts[3].clone()],
            )
            .unwrap();
        assert_eq!(out.plaintexts, release.expected, "{what}");
        assert_eq!(out.used, vec![1, 2, 4]);
        assert_eq!(
            out.rejected,
            vec![rejected(
                3,
                ThresholdError::InvalidProof {
                    trustee: 3,
                    position: 1
                }
            )],
            "{what}"
        );
    }
    // The untouched encoding still verifies.
    let part = key.partial_from_bytes(&bytes).unwrap();
    key.verify_partial(&part, &release.cts, CONTEXT).unwrap();
}

#[test]
fn partials_are_bound_to_their_context() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let other = b"task 1234 / release 2";
    assert_eq!(
        key.verify_partial(&parts[0], &release.cts, other),
        Err(ThresholdError::ContextMismatch { trustee: 1 })
    );
    let err = key.combine(&release.cts, other, &parts[..3]).unwrap_err();
    assert_eq!(
        err,
        ThresholdError::NotEnough {
            valid: 0,
            needed: 3,
            rejected: (1..=3)
                .map(|t| rejected(t, ThresholdError::ContextMismatch { trustee: t }))
                .collect()
        }
    );
    // Relabelling the context does not help: the proofs bind it.
    let mut relabelled = parts[0].clone();
    relabelled.context = other.to_vec();
    assert_eq!(
        key.verify_partial(&relabelled, &release.cts, other),
        Err(ThresholdError::InvalidProof {
            trustee: 1,
            position: 0
        })
    );
    // Nor does relabelling the trustee index.
    let mut moved = parts[0].clone();
    moved.index = 4;
    assert_eq!(
        key.verify_partial(&moved, &release.cts, CONTEXT),
        Err(ThresholdError::InvalidProof {
            trustee: 4,
            position: 0
        })
    );
    // A context over the cap is refused up front.
    let long = vec![0u8; MAX_CONTEXT_BYTES + 1];
    assert_eq!(
        key.verify_partial(&parts[0], &release.cts, &long),
        Err(ThresholdError::ContextTooLong {
            len: MAX_CONTEXT_BYTES + 1
        })
    );
}

#[test]
fn duplicate_and_unknown_trustees() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let duplicate = rejected(1, ThresholdError::DuplicateTrustee { trustee: 1 });
    assert_eq!(
        key.combine(
            &release.cts,
            CONTEXT,
            &[parts[0].clone(), parts[0].clone(), parts[1].clone()]
        ),
        Err(ThresholdError::NotEnough {
            valid: 2,
            needed: 3,
            rejected: vec![duplicate.clone()]
        })
    );
    let out = key
        .combine(
            &release.cts,
            CONTEXT,
            &[
                parts[0].clone(),
                parts[0].clone(),
                parts[1].clone(),
                parts[2].clone(),
            ],
        )
        .unwrap();
    assert_eq!(out.plaintexts, release.expected);
    assert_eq!(out.used, vec![1, 2, 3]);
    assert_eq!(out.rejected, vec![duplicate]);

    // A bad partial claiming index 1 does not shadow the good one after it.
    let mut bad = parts[0].clone();
    bad.values[0] = parts[1].values[0].clone();
    let out = key
        .combine(
            &release.cts,
            CONTEXT,
            &[bad, parts[0].clone(), parts[1].clone(), parts[2].clone()],
        )
        .unwrap();
    assert_eq!(out.used, vec![1, 2, 3]);
    assert_eq!(
        out.rejected,
        vec![rejected(
            1,
            ThresholdError::InvalidProof {
                trustee: 1,
                position: 0
            }
        )]
    );

    for index in [0, 6, u16::MAX] {
        let mut unknown = parts[0].clone();
        unknown.index = index;
        let expected = ThresholdError::UnknownTrustee {
            trustee: index,
            trustees: 5,
        };
        assert_eq!(
            key.verify_partial(&unknown, &release.cts, CONTEXT),
            Err(expected.clone())
        );
        // Its encoding does not even decode.
        assert_eq!(
            key.partial_from_bytes(&unknown.to_bytes()),
            Err(expected.clone())
        );
        if index == 6 {
            let out = key
                .combine(
                    &release.cts,
                    CONTEXT,
                    &[
                        unknown,
                        parts[1].clone(),
                        parts[2].clone(),
                        parts[3].clone(),
                    ],
                )
                .unwrap();
            assert_eq!(out.rejected, vec![rejected(index, expected)]);
            assert_eq!(out.used, vec![2, 3, 4]);
        }
    }
}

#[test]
fn ciphertext_counts_and_foreign_ciphertexts() {
    let (key, shares) = three_of_five();
    let (release, parts) = three_of_five_release();
    assert_eq!(
        key.verify_partial(&parts[0], &release.cts[..2], CONTEXT),
        Err(ThresholdError::WrongCiphertextCount {
            trustee: 1,
            expected: 2,
            found: release.cts.len()
        })
    );
    let out = key.combine(&release.cts[..2], CONTEXT, parts);
    assert!(matches!(
        out,
        Err(ThresholdError::NotEnough { valid: 0, ref rejected, .. })
            if rejected.len() == 5
    ));
    // A value that is not a unit below n^2 for this key is refused by
    // every entry point before any partial is looked at.
    let n = key.public_key().n().clone();
    let mut cts = release.cts.clone();
    cts[2] = Ciphertext(n);
    let mut rng = rng(9);
    assert_eq!(
        shares[0]
            .partial_decrypt(&cts, CONTEXT, &mut rng)
            .unwrap_err(),
        ThresholdError::InvalidCiphertext { position: 2 }
    );
    assert_eq!(
        key.verify_partial(&parts[0], &cts, CONTEXT),
        Err(ThresholdError::InvalidCiphertext { position: 2 })
    );
    assert_eq!(
        key.combine(&cts, CONTEXT, parts),
        Err(ThresholdError::InvalidCiphertext { position: 2 })
    );
    cts[2] = Ciphertext(key.public_key().n_squared().clone());
    assert_eq!(
        key.combine(&cts, CONTEXT, parts),
        Err(ThresholdError::InvalidCiphertext { position: 2 })
    );
    // An empty release is trivially decrypted.
    let empty: Vec<PartialDecryption> = shares[..3]
        .iter()
        .map(|s| s.partial_decrypt(&[], CONTEXT, &mut rng).unwrap())
        .collect();
    let out = key.combine(&[], CONTEXT, &empty).unwrap();
    assert!(out.plaintexts.is_empty());
}

#[test]
fn inconsistent_values_are_detected_when_combining() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let mut forged = parts[2].clone();
    let mut rng = rng(10);
    forged.values[0] = loop {
        let x = random_below(key.public_key().n_squared(), &mut rng);
        if is_unit_below_n_squared(&x, key.public_key()) {
            break x;
        }
    };
    let chosen = [&parts[0], &parts[1], &forged];
    assert_eq!(
        key.combine_verified(&chosen, release.cts.len()),
        Err(ThresholdError::Inconsistent)
    );
    let honest = [&parts[0], &parts[1], &parts[2]];
    assert_eq!(
        key.combine_verified(&honest, release.cts.len()).unwrap(),
        release.expected
    );
}

#[test]
fn homomorphic_sum_decrypts_to_the_sum() {
    let (key, shares) = three_of_five();
    let pk = key.public_key();
    let mut rng = rng(11);
    let mut expect = Integer::new();
    let cts: Vec<Ciphertext<Integer>> = (0..300)
        .map(|_| {
            let m: Integer = random_bits(64, &mut rng);
            expect += &m;
            pk.encrypt_with_mode(&m, crate::EncryptionMode::Fast, &mut rng)
                .unwrap()
        })
        .collect();
    let total = [pk.sum(&cts)];
    let parts: Vec<PartialDecryption> = [1, 3, 4]
        .iter()
        .map(|&i| shares[i].partial_decrypt(&total, b"sum", &mut rng).unwrap())
        .collect();
    let out = key.combine(&total, b"sum", &parts).unwrap();
    assert_eq!(out.plaintexts, vec![expect]);
    assert_eq!(out.used, vec![2, 4, 5]);
}

#[test]
fn threshold_key_file_round_trips_and_rejects_bad_input() {
    let (key, shares) = three_of_five();
    let bytes = key.to_bytes();
    let ct = key.public_key().ciphertext_len();
    // Framing, public key body, N and T, v and five v_i.
    assert_eq!(bytes.len(), 7 + 2 + 256 + 256 + 4 + 6 * ct);
    assert_eq!(&bytes[..7], b"HTLY\x01\x04\x01");
    let back = ThresholdPublicKey::from_bytes(&bytes).unwrap();
    assert_eq!(&back, key);
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.public_key(), key.public_key());
    assert_eq!(back.params(), key.params());
    assert_eq!(key.fingerprint(), <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(back.verification_value(3), key.verification_value(3));
    assert_eq!(key.verification_value(0), None);
    assert_eq!(key.verification_value(6), None);
    let shown = format!("{key:?}");
    assert!(shown.contains("trustees: 5") && shown.contains("threshold: 3"));

    // Trailing and missing bytes.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        ThresholdPublicKey::from_bytes(&long),
        Err(ThresholdError::Codec(CodecError::TrailingBytes { .. }))
    ));
    for cut in [
        0,
        5,
        7,
        8,
        100,
        7 + 2 + 512,
        7 + 2 + 512 + 3,
        bytes.len() - ct,
        bytes.len() - 1,
    ] {
        assert!(
            ThresholdPublicKey::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // The encryption key read from the file is the same file, with T of N.
    assert_eq!(key.public_key().to_bytes(), bytes);
    assert_eq!(key.public_key().fingerprint(), key.fingerprint());
    assert_eq!(key.public_key().trustees(), Some((5, 3)));
    // Other files are not threshold keys.
    let plain =
        PublicKey::<Integer>::new(key.public_key().n().clone(), key.public_key().h().clone())
            .unwrap();
    assert_eq!(plain.trustees(), None);
    assert!(matches!(
        ThresholdPublicKey::from_bytes(&plain.to_bytes()),
        Err(ThresholdError::Codec(CodecError::WrongKind { .. }))
    ));
    assert!(matches!(
        ThresholdPublicKey::from_bytes(&shares[0].to_bytes()),
        Err(ThresholdError::Codec(CodecError::WrongKind { .. }))
    ));

    // Bodies with bad parameters or bad verification values.
    let pk = key.public_key();
    let body = |trustees: u16, threshold: u16, v: &Integer, vs: &[Integer]| {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::ThresholdPublicKey, Scheme::Paillier);
        pk.encode_body(&mut w);
        w.u16(trustees).u16(threshold);
        for x in std::iter::once(v).chain(vs) {
            w.bytes(&x.to_be_bytes_padded(ct));
        }
        w.finish()
    };
    let v = key.verification_base().clone();
    let vs: Vec<Integer> = (1..=5)
        .map(|i| key.verification_value(i).unwrap().clone())
        .collect();
    assert_eq!(
        ThresholdPublicKey::from_bytes(&body(5, 3, &v, &vs)).unwrap(),
        *key
    );
    for (trustees, threshold) in [(5, 1), (5, 6), (65, 3), (0, 0)] {
        assert!(matches!(
            ThresholdPublicKey::from_bytes(&body(trustees, threshold, &v, &vs)),
            Err(ThresholdError::InvalidParams(_))
        ));
    }
    // Four values where five trustees need five.
    assert!(ThresholdPublicKey::from_bytes(&body(5, 3, &v, &vs[..4])).is_err());
    let n = pk.n().clone();
    let n2_minus_1 = Integer::from(pk.n_squared() - 1u32);
    let max = Integer::from_be_bytes(&vec![0xff; ct]);
    for bad in [
        Integer::new(),
        Integer::from(1),
        n.clone(),
        Integer::from(&n * 3u32),
        max,
    ] {
        assert!(
            ThresholdPublicKey::from_bytes(&body(5, 3, &bad, &vs)).is_err(),
            "v = {bad}"
        );
        let mut bad_vs = vs.clone();
        bad_vs[4] = bad.clone();
        if bad != 1 {
            assert!(
                ThresholdPublicKey::from_bytes(&body(5, 3, &v, &bad_vs)).is_err(),
                "v_5 = {bad}"
            );
        }
    }
    // n^2 - 1 is a unit: accepted as a value (its proofs would fail).
    let mut edge = vs.clone();
    edge[0] = n2_minus_1;
    assert!(ThresholdPublicKey::from_bytes(&body(5, 3, &v, &edge)).is_ok());
}

#[test]
fn key_share_file_round_trips_and_rejects_bad_input() {
    let (key, shares) = three_of_five();
    let share = &shares[3];
    let bytes = share.to_bytes();
    let ct = key.public_key().ciphertext_len();
    let key_body = key.to_bytes().len() - 7;
    assert_eq!(bytes.len(), 7 + key_body + 2 + ct);
    assert_eq!(&bytes[..7], b"HTLY\x01\x05\x01");
    let back = KeyShare::from_bytes(&bytes).unwrap();
    assert_eq!(back.index(), 4);
    assert_eq!(back.public_key(), key);
    assert_eq!(back.share, share.share);

    // Debug never shows the share.
    let shown = format!("{back:?}");
    assert!(shown.contains("redacted") && shown.contains("index: 4"));
    let digits = share.share.to_string();
    let hex = share.share.to_string_radix(16);
    assert!(!shown.contains(&digits[..24]) && !shown.contains(&hex[..24]));

    // The decoded share decrypts.
    let (release, parts) = three_of_five_release();
    let mut rng = rng(12);
    let part = back
        .partial_decrypt(&release.cts, CONTEXT, &mut rng)
        .unwrap();
    assert_eq!(part.values, parts[3].values);
    key.verify_partial(&part, &release.cts, CONTEXT).unwrap();

    let index_at = 7 + key_body;
    // A flipped bit in the share, or another trustee's index.
    let mut corrupt = bytes.clone();
    corrupt[index_at + 2 + ct / 2] ^= 0x01;
    assert!(matches!(
        KeyShare::from_bytes(&corrupt),
        Err(ThresholdError::Paillier(PaillierError::InvalidKey(_)))
    ));
    let mut moved = bytes.clone();
    moved[index_at + 1] = 2;
    assert!(matches!(
        KeyShare::from_bytes(&moved),
        Err(ThresholdError::Paillier(PaillierError::InvalidKey(_)))
    ));
    for index in [0u16, 6] {
        let mut unknown = bytes.clone();
        unknown[index_at..index_at + 2].copy_from_slice(&index.to_be_bytes());
        assert_eq!(
            KeyShare::from_bytes(&unknown).unwrap_err(),
            ThresholdError::UnknownTrustee {
                trustee: index,
                trustees: 5
            }
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        KeyShare::from_bytes(&long),
        Err(ThresholdError::Codec(CodecError::TrailingBytes { .. }))
    ));
    for cut in [0, 7, index_at, index_at + 1, index_at + 2, bytes.len() - 1] {
        assert!(KeyShare::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        KeyShare::from_bytes(&key.to_bytes()),
        Err(ThresholdError::Codec(CodecError::WrongKind { .. }))
    ));
}

#[test]
fn partial_decryption_file_round_trips_and_rejects_bad_input() {
    let (key, _) = three_of_five();
    let (release, parts) = three_of_five_release();
    let part = &parts[1];
    let bytes = part.to_bytes();
    let ct = key.public_key().ciphertext_len();
    let z_len = key.inner.z_len;
    // R = 4096 + bits(120) + 256 = 4359, z below 2^4360: 545 bytes.
    assert_eq!(z_len, 545);
    let base = first_value_offset(key, CONTEXT);
    assert_eq!(bytes.len(), base + release.cts.len() * (ct + 16 + z_len));
    assert_eq!(&bytes[..7], b"HTLY\x01\x06\x01");
    // The carried key is the key's file less its header.
    let key_end = key.to_bytes().len();
    assert_eq!(&bytes[7..key_end], &key.to_bytes()[7..]);
    assert_eq!(&bytes[key_end..key_end + 2], &[0, 2]);
    let back = key.partial_from_bytes(&bytes).unwrap();
    assert_eq!(&back, part);
    assert_eq!(back.index(), 2);
    assert_eq!(back.context(), CONTEXT);
    assert_eq!(back.key_fingerprint(), key.fingerprint());
    assert_eq!(back.values().len(), release.cts.len());
    key.verify_partial(&back, &release.cts, CONTEXT).unwrap();

    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        key.partial_from_bytes(&long),
        Err(ThresholdError::Codec(CodecError::TrailingBytes { .. }))
    ));
    for cut in [
        0,
        7,
        key_end,
        key_end + 2,
        key_end + 5,
        base - 1,
        base,
        base + ct,
        bytes.len() - 1,
    ] {
        assert!(
            key.partial_from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Under another key: refused, naming the trustee.
    let (other, _) = dealt(5, 3, 37);
    assert_eq!(
        other.partial_from_bytes(&bytes),
        Err(ThresholdError::KeyMismatch { trustee: 2 })
    );
    // A value of 0, of n, or at least n^2; a z over its bound.
    let n = key.public_key().n().clone();
    for bad in [Integer::new(), n, key.public_key().n_squared().clone()] {
        let mut tampered = bytes.clone();
        tampered[base..base + ct].copy_from_slice(&bad.to_be_bytes_padded(ct));
        assert!(matches!(
            key.partial_from_bytes(&tampered),
            Err(ThresholdError::Codec(CodecError::Invalid { .. }))
        ));
    }
    // Here z's bound, 2^4360, is a whole number of bytes; an oversized z
    // can only be built in memory, and its proof fails.
    assert_eq!(z_len * 8, key.inner.r_bits as usize + 1);
    let mut big_z = part.clone();
    big_z.proofs[0].z = Integer::from(1) << (key.inner.r_bits + 1);
    assert_eq!(
        key.verify_partial(&big_z, &release.cts, CONTEXT),
        Err(ThresholdError::InvalidProof {
            trustee: 2,
            position: 0
        })
    );
    // With two trustees, R = 4096 + 2 + 256 = 4354 and z has five spare
    // bits in its 545 bytes: setting them is refused when decoding.
    let (small, small_shares) = dealt(2, 2, 38);
    assert_eq!(small.inner.r_bits, 4354);
    let mut rng = rng(15);
    let small_bytes = small_shares[0]
        .partial_decrypt(&release.cts[..1], CONTEXT, &mut rng)
        .unwrap()
        .to_bytes();
    small.partial_from_bytes(&small_bytes).unwrap();
    let small_base = first_value_offset(&small, CONTEXT);
    let mut big_z = small_bytes;
    big_z[small_base + ct + 16] |= 0x80;
    assert!(matches!(
        small.partial_from_bytes(&big_z),
        Err(ThresholdError::Codec(CodecError::Invalid { .. }))
    ));
    // A count over the cap, and a context over its cap.
    let mut huge = bytes.clone();
    huge[base - 4..base].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        key.partial_from_bytes(&huge),
        Err(ThresholdError::Codec(CodecError::TooLong { .. }))
    ));
    let mut long_context = bytes.clone();
    long_context[key_end + 2..key_end + 6]
        .copy_from_slice(&(MAX_CONTEXT_BYTES as u32 + 1).to_be_bytes());
    assert!(matches!(
        key.partial_from_bytes(&long_context),
        Err(ThresholdError::Codec(CodecError::TooLong { .. }))
    ));
    assert!(matches!(
        key.partial_from_bytes(&key.to_bytes()),
        Err(ThresholdError::Codec(CodecError::WrongKind { .. }))
    ));
}

/// Applies one to three random mutations: bit flips, random bytes, runs of
/// 0xff (huge lengths and counts), truncation, insertion, appending.
fn mutate(bytes: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        if out.is_empty() {
            out.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..out.len());
        match rng.gen_range(0..6) {
            0 => out[at] ^= 1 << rng.gen_range(0..8),
            1 => out[at] = rng.gen(),
            2 => {
                let end = (at + 4).min(out.len());
                out[at..end].fill(0xff);
            }
            3 => out.truncate(at),
            4 => out.insert(at, rng.gen()),
            _ => out.extend((0..rng.gen_range(1..8)).map(|_| rng.gen::<u8>())),
        }
    }
    out
}

#[test]
fn hostile_mutations_are_errors_not_panics() {
    let (key, shares) = three_of_five();
    let (_, parts) = three_of_five_release();
    let mut rng = rng(13);
    let files = [key.to_bytes(), shares[0].to_bytes(), parts[0].to_bytes()];
    let mut errors = 0;
    let rounds = 100;
    for _ in 0..rounds {
        // Mostly in the framing and the small fields, where parsing
        // decisions are made; sometimes anywhere.
        for (kind, file) in files.iter().enumerate() {
            let prefix = if rng.gen_bool(0.5) {
                64.min(file.len())
            } else {
                file.len()
            };
            let mut mutated = mutate(&file[..prefix], &mut rng);
            mutated.extend_from_slice(&file[prefix..]);
            let failed = match kind {
                0 => ThresholdPublicKey::from_bytes(&mutated).is_err(),
                1 => KeyShare::from_bytes(&mutated).is_err(),
                _ => key.partial_from_bytes(&mutated).is_err(),
            };
            // A mutation may leave a valid encoding (a flipped bit in a
            // verification value or a proof response): only panics fail.
            errors += usize::from(failed);
        }
    }
    // Most mutations break something: the decoders do look at the bytes.
    assert!(
        errors > rounds,
        "only {errors} errors in {} decodings",
        3 * rounds
    );
    // Pure noise and empty input.
    for len in [0, 1, 6, 7, 8, 64, 600] {
        let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(ThresholdPublicKey::from_bytes(&noise).is_err());
        assert!(KeyShare::from_bytes(&noise).is_err());
        assert!(key.partial_from_bytes(&noise).is_err());
    }
}

#[test]
fn the_dealer_refuses_primes_that_are_not_safe() {
    let (p, q) = primes();
    let mut rng = rng(14);
    let params = ThresholdParams::new(3, 2).unwrap();
    // The next prime after q is (almost surely) not a safe prime.
    let not_safe = Integer::from(q.next_prime_ref());
    assert!(!keygen::is_safe_prime(&not_safe));
    let n = Integer::from(&p * &not_safe);
    let h = keygen::generate_h(&n, &mut rng);
    assert!(matches!(
        deal(p.clone(), not_safe, h, params, &mut rng),
        Err(PaillierError::InvalidKey(_))
    ));
    // The same prime twice, and a size this build does not support.
    let n = Integer::from(&p * &p);
    let h = keygen::generate_h(&n, &mut rng);
    assert!(deal(p.clone(), p.clone(), h, params, &mut rng).is_err());
    assert!(matches!(
        generate_threshold(1024, params, &mut rng, &mut |_| {}),
        Err(PaillierError::UnsupportedModulusBits(1024))
    ));
}

#[test]
fn generate_threshold_makes_a_working_2048_bit_key() {
    // About a second with this seed; the search itself is tested at small
    // sizes in `keygen`.
    let mut rng = rng(2048);
    let params = ThresholdParams::new(3, 2).unwrap();
    let mut candidates = [0u32; 2];
    let mut found = Vec::new();
    let (key, shares) = generate_threshold(2048, params, &mut rng, &mut |e| match e {
        KeygenProgress::SafeCandidate { prime } => candidates[usize::from(prime)] += 1,
        KeygenProgress::PrimeFound { prime } => found.push(prime),
        other => panic!("unexpected {other:?}"),
    })
    .unwrap();
    assert_eq!(found, vec![0, 1]);
    assert!(candidates.iter().all(|&c| c > 0), "{candidates:?}");
    assert_eq!(key.public_key().modulus_bits(), 2048);
    assert_eq!(key.params(), params);
    assert_eq!(shares.len(), 3);
    let m = Integer::from(0xdead_beef_u32);
    let cts = [key.public_key().encrypt(&m, &mut rng).unwrap()];
    let parts: Vec<PartialDecryption> = shares[1..]
        .iter()
        .map(|s| s.partial_decrypt(&cts, CONTEXT, &mut rng).unwrap())
        .collect();
    let out = key.combine(&cts, CONTEXT, &parts).unwrap();
    assert_eq!(out.plaintexts, vec![m]);
    assert_eq!(out.used, vec![2, 3]);
}

/// A trustee-noise task (docs/threshold.md, "Distributed noise") under the
/// 3-of-5 key: histogram:16, gaussian:1/8, noise from 3 trustees.
fn trustee_noise_task(key: &ThresholdPublicKey) -> hetally_protocol::TaskDefinition {
    use hetally_dp::{DpMechanism, Relation, TrusteeNoise};
    let measurement: hetally_protocol::Measurement = "histogram:16".parse().unwrap();
    let dp: DpMechanism = "gaussian:1/8".parse().unwrap();
    let trustees = TrusteeNoise {
        contributors: 3,
        honest: 1,
    };
    let public_key = key.to_bytes();
    let relation = Some(Relation::ReplaceOne);
    let layout = crate::scheme::layout_for(
        &public_key,
        &measurement,
        &dp,
        relation,
        Some(trustees),
        1000,
    )
    .unwrap();
    let definition = hetally_protocol::TaskDefinition {
        measurement,
        min_batch_size: 1,
        max_batch_size: 1000,
        time_precision: 60,
        dp,
        budget: Some("1".parse().unwrap()),
        public_key,
        layout,
        input_proofs: false,
        relation,
        trustee_noise: Some(trustees),
    };
    definition.check().unwrap();
    crate::scheme::check_definition(&definition).unwrap();
    definition
}

#[test]
fn noise_contributions_add_encrypted_shares_the_trustees_can_decrypt() {
    let (key, shares) = three_of_five();
    let definition = trustee_noise_task(key);
    let pk = key.public_key();
    let hetally_protocol::Layout::Paillier { slot_bits } = definition.layout else {
        panic!("a Paillier layout")
    };
    let packing = Packing::new(slot_bits, pk.modulus_bits()).unwrap();
    let mut rng = rng(404);
    // The release's sum: bucket i holds i reports.
    let counts: Vec<i128> = (0..16).collect();
    let mut acc: Vec<Integer> = packing
        .pack::<Integer>(&counts)
        .unwrap()
        .iter()
        .map(|m| pk.encrypt(m, &mut rng).unwrap().as_integer().clone())
        .collect();
    // Three trustees' shares, encrypted and checked as the server checks.
    let mut total = vec![0i128; 16];
    for trustee in [1u16, 3, 5] {
        let noise: Vec<i128> = (0..16)
            .map(|i| (i as i128 - 8) * i128::from(trustee))
            .collect();
        for (t, n) in total.iter_mut().zip(&noise) {
            *t += n;
        }
        let c =
            crate::encrypt_noise_contribution(&definition, 600, trustee, &noise, &mut rng).unwrap();
        let bytes = c.to_bytes();
        let checked = crate::check_noise_contribution(&definition, 600, trustee, &bytes).unwrap();
        assert_eq!(checked, c);
        // Bound to its batch and its trustee; its ciphertexts are checked.
        assert!(crate::check_noise_contribution(&definition, 660, trustee, &bytes).is_err());
        assert!(crate::check_noise_contribution(&definition, 600, 2, &bytes).is_err());
        let mut short = c.clone();
        short.ciphertexts.pop();
        assert!(
            crate::check_noise_contribution(&definition, 600, trustee, &short.to_bytes()).is_err()
        );
        let mut zero = c.clone();
        zero.ciphertexts[0] = vec![0; pk.ciphertext_len()];
        assert!(
            crate::check_noise_contribution(&definition, 600, trustee, &zero.to_bytes()).is_err()
        );
        for (a, ct) in acc.iter_mut().zip(&c.ciphertexts) {
            let ct = pk.ciphertext_from_bytes(ct).unwrap();
            *a = Integer::from(&*a * ct.as_integer()) % pk.n_squared();
        }
    }
    // Three trustees decrypt the noisy sum: counts plus the summed shares.
    let cts: Vec<Ciphertext<Integer>> = acc
        .into_iter()
        .map(|c| pk.validate_ciphertext(c).unwrap())
        .collect();
    let parts: Vec<PartialDecryption> = [0usize, 2, 4]
        .iter()
        .map(|&i| shares[i].partial_decrypt(&cts, CONTEXT, &mut rng).unwrap())
        .collect();
    let out = key.combine(&cts, CONTEXT, &parts).unwrap();
    let signed: Vec<Integer> = out
        .plaintexts
        .into_iter()
        .map(|m| pk.to_signed(m))
        .collect();
    let values = packing.unpack(&signed, 16).unwrap();
    let expected: Vec<i128> = counts.iter().zip(&total).map(|(c, n)| c + n).collect();
    assert_eq!(values, expected);
    // A task whose server draws the noise takes no contributions.
    let mut server_noise = definition.clone();
    server_noise.trustee_noise = None;
    assert!(crate::encrypt_noise_contribution(&server_noise, 600, 1, &[0; 16], &mut rng).is_err());
}
