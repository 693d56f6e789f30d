//! Unit tests of the GMP-backed key, encryption and decryption.

use std::sync::OnceLock;

use hetally_protocol::codec::{FileKind, Reader, Writer};
use hetally_protocol::keyfile;
use hetally_protocol::Scheme;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rug::Integer;

use crate::arith::{random_bits, Int};
use crate::{
    Ciphertext, EncryptionMode, KeygenProgress, Packing, PaillierError, PublicKey, SecretKey,
};

/// One 2048-bit key shared by the tests of this module, made from a fixed
/// seed so failures reproduce.
fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(2048);
        SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap()
    })
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

#[test]
fn keygen_sizes_and_progress() {
    let sk = key();
    let pk = sk.public_key();
    assert_eq!(pk.modulus_bits(), 2048);
    assert_eq!(pk.n().significant_bits(), 2048);
    assert_eq!(pk.ciphertext_len(), 512);
    let mut found = 0;
    let mut candidates = 0;
    let mut rng = ChaCha20Rng::seed_from_u64(3072);
    let sk3 = SecretKey::generate(3072, &mut rng, &mut |e| match e {
        KeygenProgress::Candidate { .. } => candidates += 1,
        KeygenProgress::PrimeFound { .. } => found += 1,
        other => panic!("ordinary keygen reported {other:?}"),
    })
    .unwrap();
    assert_eq!(sk3.public_key().modulus_bits(), 3072);
    assert!(found >= 2 && candidates >= found);
    assert!(matches!(
        SecretKey::generate(1024, &mut rng, &mut |_| {}),
        Err(PaillierError::UnsupportedModulusBits(1024))
    ));
}

#[test]
fn round_trip_boundaries_both_modes() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    let n_minus_1 = Integer::from(pk.n() - 1u32);
    for mode in [EncryptionMode::Fast, EncryptionMode::Standard] {
        for m in [
            Integer::from(0),
            Integer::from(1),
            n_minus_1.clone(),
            Integer::from(pk.n() >> 1),
        ] {
            let c = pk.encrypt_with_mode(&m, mode, &mut rng).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m, "mode {mode:?}");
        }
        // Two encryptions of the same value differ.
        let a = pk
            .encrypt_with_mode(&Integer::from(5), mode, &mut rng)
            .unwrap();
        let b = pk
            .encrypt_with_mode(&Integer::from(5), mode, &mut rng)
            .unwrap();
        assert_ne!(a, b);
    }
    assert_eq!(
        pk.encrypt(pk.n(), &mut rng),
        Err(PaillierError::PlaintextOutOfRange)
    );
    assert_eq!(
        pk.encrypt(&Integer::from(-1), &mut rng),
        Err(PaillierError::PlaintextOutOfRange)
    );
}

#[test]
fn witness_opens_the_ciphertext() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    for mode in [EncryptionMode::Fast, EncryptionMode::Standard] {
        let m = Integer::from(42);
        let (c, w) = pk.encrypt_with_witness(&m, mode, &mut rng).unwrap();
        let again = pk.encrypt_with_randomness(&m, &w).unwrap();
        assert_eq!(c, again, "mode {mode:?}");
    }
}

#[test]
fn homomorphic_sum_of_10000() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    let mut expect = Integer::new();
    let cts: Vec<Ciphertext<Integer>> = (0..10_000)
        .map(|_| {
            let m: Integer = random_bits(64, &mut rng);
            expect += &m;
            pk.encrypt(&m, &mut rng).unwrap()
        })
        .collect();
    let total = pk.sum(&cts);
    assert_eq!(sk.decrypt(&total).unwrap(), expect);
    // Sequential accumulation agrees with the parallel sum.
    let mut acc = pk.zero_ciphertext();
    for c in &cts {
        pk.add_assign(&mut acc, c);
    }
    assert_eq!(acc, total);
}

#[test]
fn additions_wrap_mod_n_and_scalar_multiplication() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    let n_minus_1 = Integer::from(pk.n() - 1u32);
    let a = pk.encrypt(&n_minus_1, &mut rng).unwrap();
    let b = pk.encrypt(&Integer::from(3), &mut rng).unwrap();
    assert_eq!(sk.decrypt(&pk.add(&a, &b)).unwrap(), 2);
    let c = pk.mul_const(&b, &Integer::from(1000));
    assert_eq!(sk.decrypt(&c).unwrap(), 3000);
}

#[test]
fn signed_plaintexts() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    let minus5 = pk.encrypt_signed(&Integer::from(-5), &mut rng).unwrap();
    let plus3 = pk.encrypt_signed(&Integer::from(3), &mut rng).unwrap();
    let sum = pk.add(&minus5, &plus3);
    assert_eq!(pk.to_signed(sk.decrypt(&sum).unwrap()), -2);
    assert_eq!(
        pk.encrypt_signed(pk.n(), &mut rng),
        Err(PaillierError::PlaintextOutOfRange)
    );
}

#[test]
fn packed_negative_slots_through_encryption() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = rng();
    let packing = Packing::new(40, pk.modulus_bits()).unwrap();
    let counts: Vec<u64> = (0..100).map(|i| i % 4).collect();
    let noise: Vec<i128> = (0..100).map(|i| if i % 2 == 0 { -7 } else { 5 }).collect();
    let mut acc: Vec<Ciphertext<Integer>> = packing
        .pack_u64::<Integer>(&counts)
        .unwrap()
        .iter()
        .map(|p| pk.encrypt(p, &mut rng).unwrap())
        .collect();
    for (a, p) in acc.iter_mut().zip(packing.pack::<Integer>(&noise).unwrap()) {
        let c = pk.encrypt_signed(&p, &mut rng).unwrap();
        pk.add_assign(a, &c);
    }
    let plain = sk.decrypt_all_signed(&acc);
    let values = packing.unpack(&plain, 100).unwrap();
    for (i, v) in values.iter().enumerate() {
        let expect = (i % 4) as i128 + if i % 2 == 0 { -7 } else { 5 };
        assert_eq!(*v, expect, "slot {i}");
    }
    assert!(values.iter().any(|v| *v < 0));
}

#[test]
fn untrusted_ciphertexts_are_range_checked() {
    let pk = key().public_key();
    let len = pk.ciphertext_len();
    let bytes = |x: &Integer| x.to_be_bytes_padded(len);
    let n2 = pk.n_squared().clone();
    assert!(pk.ciphertext_from_bytes(&bytes(&Integer::from(0))).is_err());
    assert!(pk.ciphertext_from_bytes(&bytes(&n2)).is_err());
    assert!(pk.ciphertext_from_bytes(&vec![0xff; len]).is_err());
    // n and its multiples are not units.
    assert!(pk.ciphertext_from_bytes(&bytes(pk.n())).is_err());
    assert!(pk
        .ciphertext_from_bytes(&bytes(&Integer::from(pk.n() * 7u32)))
        .is_err());
    // Wrong lengths.
    assert!(pk
        .ciphertext_from_bytes(&bytes(&Integer::from(2))[1..])
        .is_err());
    let mut long = bytes(&Integer::from(2));
    long.insert(0, 0);
    assert!(pk.ciphertext_from_bytes(&long).is_err());
    // Largest valid value.
    let top = Integer::from(&n2 - 1u32);
    assert!(pk.ciphertext_from_bytes(&bytes(&top)).is_ok());
    let mut rng = rng();
    let c = pk.encrypt(&Integer::from(9), &mut rng).unwrap();
    assert_eq!(
        pk.ciphertext_from_bytes(&pk.ciphertext_to_bytes(&c))
            .unwrap(),
        c
    );
}

#[test]
fn key_encodings_round_trip_and_reject_tampering() {
    let sk = key();
    let pk = sk.public_key();
    let bytes = pk.to_bytes();
    let mut r = Reader::new(&bytes);
    assert_eq!(
        keyfile::read_key_header(&mut r, FileKind::PublicKey).unwrap(),
        Scheme::Paillier
    );
    let back = PublicKey::<Integer>::decode_body(&mut r).unwrap();
    r.finish("pk").unwrap();
    assert_eq!(&back, pk);
    assert_eq!(back.fingerprint(), pk.fingerprint());

    let mut w = Writer::new();
    sk.encode_body(&mut w);
    let sk_bytes = w.finish();
    let back = SecretKey::decode_body(&mut Reader::new(&sk_bytes)).unwrap();
    assert_eq!(back.public_key(), pk);

    // Flipping a bit of p makes it composite (or the key inconsistent).
    let mut bad = sk_bytes.clone();
    bad[2 + 127] ^= 0x02;
    assert!(SecretKey::decode_body(&mut Reader::new(&bad)).is_err());
    // Truncated.
    assert!(SecretKey::decode_body(&mut Reader::new(&sk_bytes[..sk_bytes.len() - 1])).is_err());
    // An even modulus.
    let mut w = Writer::new();
    w.u16(2048);
    let even = Integer::from(Integer::u_pow_u(2, 2047)) + 2u32;
    w.bytes(&even.to_be_bytes_padded(256))
        .bytes(&Integer::from(3).to_be_bytes_padded(256));
    assert!(PublicKey::<Integer>::decode_body(&mut Reader::new(&w.finish())).is_err());
    // Whole files round trip, and a public key is no secret key.
    assert_eq!(PublicKey::<Integer>::from_bytes(&bytes).unwrap(), *pk);
    assert_eq!(
        SecretKey::from_bytes(&sk.to_bytes()).unwrap().public_key(),
        pk
    );
    assert!(SecretKey::from_bytes(&bytes).is_err());
}

#[test]
fn debug_hides_secrets() {
    let sk = key();
    let shown = format!("{sk:?}");
    assert!(shown.contains("redacted"));
    // p is the first 128 bytes after the framing (6 + 1) and the size (2).
    let file = sk.to_bytes();
    let p = Integer::from_be_bytes(&file[9..9 + 128]);
    let p_dec = p.to_string();
    let p_hex = p.to_string_radix(16);
    assert!(!shown.contains(&p_dec[..20]) && !shown.contains(&p_hex[..20]));
}

#[test]
fn wrong_key_is_detected_when_decrypting_bytes() {
    let sk = key();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let other = SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
    let c = other
        .public_key()
        .encrypt(&Integer::from(1), &mut rng)
        .unwrap();
    let bytes = other.public_key().ciphertext_to_bytes(&c);
    // Either it is out of range for this key, or it decrypts to garbage;
    // here the moduli differ so the value is likely out of range.
    match sk.decrypt_bytes(&bytes) {
        Err(PaillierError::WrongKey) => {}
        Ok(m) => assert_ne!(m, 1),
        Err(e) => panic!("unexpected {e}"),
    }
}
