//! Known-answer test against python-paillier (`phe`), an independent
//! implementation with the same g = n + 1 convention.
//!
//! `tests/data/python_paillier_kat.json` was written by
//! `scripts/gen_python_paillier_kat.py`: a 2048-bit key made by phe, and
//! ciphertexts phe produced for chosen plaintexts and randomness. hetally
//! must rebuild the same key from the primes, produce bit-identical
//! ciphertexts from the same (m, r), decrypt phe's ciphertexts, and agree
//! with phe's homomorphic sum.

use hetally_paillier::SecretKey;
use rug::Integer;
use serde_json::Value;

const KAT: &str = include_str!("data/python_paillier_kat.json");

fn int(v: &Value) -> Integer {
    v.as_str()
        .expect("decimal string")
        .parse()
        .expect("decimal integer")
}

struct Kat {
    sk: SecretKey,
    cases: Vec<(Integer, Integer, Integer)>,
    sum_c: Integer,
}

fn kat() -> Kat {
    let doc: Value = serde_json::from_str(KAT).expect("KAT file is JSON");
    let (n, p, q) = (int(&doc["n"]), int(&doc["p"]), int(&doc["q"]));
    // The fast-form base h is hetally's own addition; any -x^2 will do for
    // the standard-form ciphertexts phe makes.
    let h = Integer::from(&n - 4);
    let sk = SecretKey::from_parts(p, q, h).expect("phe's primes make a valid key");
    assert_eq!(sk.public_key().n(), &n, "same modulus as phe");
    let cases = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| (int(&c["m"]), int(&c["r"]), int(&c["c"])))
        .collect::<Vec<_>>();
    assert!(cases.len() >= 16);
    Kat {
        sk,
        cases,
        sum_c: int(&doc["sum_c"]),
    }
}

#[test]
fn encryption_with_phes_randomness_gives_phes_ciphertexts() {
    let kat = kat();
    let pk = kat.sk.public_key();
    for (m, r, c) in &kat.cases {
        let ours = pk.encrypt_with_randomness(m, r).expect("encrypt");
        assert_eq!(ours.as_integer(), c, "ciphertext of m = {m}");
    }
}

#[test]
fn phes_ciphertexts_decrypt_to_their_plaintexts() {
    let kat = kat();
    let pk = kat.sk.public_key();
    for (m, _, c) in &kat.cases {
        let ct = pk
            .validate_ciphertext(c.clone())
            .expect("phe's ciphertext passes validation");
        assert_eq!(&kat.sk.decrypt(&ct).expect("decrypt"), m);
        assert_eq!(&kat.sk.decrypt_sequential(&ct), m);
    }
}

#[test]
fn homomorphic_sum_agrees_with_phe() {
    let kat = kat();
    let pk = kat.sk.public_key();
    let cts: Vec<_> = kat
        .cases
        .iter()
        .map(|(_, _, c)| pk.validate_ciphertext(c.clone()).expect("valid"))
        .collect();
    let sum = pk.sum(&cts);
    assert_eq!(sum.as_integer(), &kat.sum_c, "same product mod n^2 as phe");
    let expected = kat
        .cases
        .iter()
        .fold(Integer::new(), |acc, (m, _, _)| acc + m)
        % pk.n();
    assert_eq!(kat.sk.decrypt(&sum).expect("decrypt"), expected);
}
