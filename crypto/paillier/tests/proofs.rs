//! Input proofs (issue 8) on a real 2048-bit key: completeness, soundness
//! against the forgeries the issue lists, and batch verification that
//! rejects exactly the bad reports.
//!
//! Every random draw comes from a seeded ChaCha20, so failures reproduce.

use std::sync::OnceLock;

use hetally_dp::DpMechanism;
use hetally_paillier::proofs::{CHALLENGE_BYTES, RESPONSE_BYTES};
use hetally_paillier::{
    Ciphertext, InputProofs, PaillierAggregator, PaillierEncrypter, ProofError, SecretKey,
};
use hetally_protocol::aggregate::Encoding;
use hetally_protocol::roles::{Aggregator, Encrypter, SchemeError};
use hetally_protocol::{Measurement, ReportContext, ReportId, TaskDefinition, TaskId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rug::integer::Order;
use rug::Integer;

type PublicKey = hetally_paillier::PublicKey<Integer>;

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(2024);
        SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap()
    })
}

fn pk() -> PublicKey {
    key().public_key().clone()
}

/// One prover/verifier per measurement type, so the 10 MB table for H is
/// built once per type.
type Cache = std::sync::Mutex<Vec<(String, &'static InputProofs<Integer>)>>;

fn proofs(measurement: &str) -> &'static InputProofs<Integer> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    if let Some((_, p)) = cache.iter().find(|(m, _)| m == measurement) {
        return p;
    }
    let p: &'static InputProofs<Integer> = Box::leak(Box::new(
        InputProofs::new(pk(), measurement.parse().unwrap()).unwrap(),
    ));
    cache.push((measurement.to_string(), p));
    p
}

const TASK: TaskId = TaskId([7; 32]);

fn ctx(id: &ReportId) -> ReportContext<'_> {
    ReportContext {
        task_id: &TASK,
        report_id: id,
        time: 1_700_000_040,
    }
}

/// A Paillier task of `measurement` under the test key.
fn definition(measurement: Measurement, input_proofs: bool) -> TaskDefinition {
    let public_key = pk().to_bytes();
    let layout = hetally_paillier::scheme::layout_for(
        &public_key,
        &measurement,
        &DpMechanism::None,
        None,
        None,
        1 << 20,
    )
    .unwrap();
    TaskDefinition {
        measurement,
        min_batch_size: 1,
        max_batch_size: 1 << 20,
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        public_key,
        layout,
        input_proofs,
        relation: None,
        trustee_noise: None,
    }
}

fn is_invalid(r: &Result<Vec<Ciphertext<Integer>>, ProofError>) -> bool {
    matches!(r, Err(ProofError::Invalid { .. }))
}

fn decrypt_values(r: Result<Vec<Ciphertext<Integer>>, ProofError>) -> Vec<Integer> {
    r.unwrap()
        .iter()
        .map(|c| key().decrypt(c).unwrap())
        .collect()
}

#[test]
fn honest_reports_verify_for_every_type() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for m in ["count", "sum:8", "histogram:5", "sumvec:3:4"] {
        let p = proofs(m);
        let measurement: Measurement = m.parse().unwrap();
        for _ in 0..3 {
            let values = measurement.random_value(&mut rng);
            let id = ReportId::random(&mut rng);
            let payload = p.prove(&values, &ctx(&id), &mut rng).unwrap();
            assert_eq!(payload.len(), p.payload_len(), "{m}");
            let got = decrypt_values(p.verify(&payload, &ctx(&id)));
            let want: Vec<Integer> = values.iter().map(|v| Integer::from(*v)).collect();
            assert_eq!(
                got, want,
                "{m}: the derived value ciphertexts decrypt to the values"
            );
        }
        // The prover refuses invalid values outright.
        let bad = vec![measurement.max_value() + 1; measurement.len()];
        let id = ReportId([1; 16]);
        assert!(p.prove(&bad, &ctx(&id), &mut rng).is_err(), "{m}");
    }
}

#[test]
fn honest_prover_on_two_or_minus_one_is_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let p = proofs("count");
    let id = ReportId([2; 16]);
    let minus_one = Integer::from(pk().n() - 1u32);
    for m in [Integer::from(2), minus_one, Integer::from(1_000_000)] {
        let payload = p
            .prove_unchecked(std::slice::from_ref(&m), &ctx(&id), &mut rng)
            .unwrap();
        assert!(is_invalid(&p.verify(&payload, &ctx(&id))), "plaintext {m}");
    }
    // The same code path on 0 and 1 is accepted.
    for m in [0, 1] {
        let payload = p
            .prove_unchecked(&[Integer::from(m)], &ctx(&id), &mut rng)
            .unwrap();
        assert_eq!(decrypt_values(p.verify(&payload, &ctx(&id))), [m]);
    }
}

/// Layout offsets of a count payload: version, count, then the fields.
struct CountLayout {
    ct: usize,
}

impl CountLayout {
    fn c(&self) -> std::ops::Range<usize> {
        5..5 + self.ct
    }
    fn a0(&self) -> std::ops::Range<usize> {
        let s = 5 + self.ct;
        s..s + self.ct
    }
    fn a1(&self) -> std::ops::Range<usize> {
        let s = 5 + 2 * self.ct;
        s..s + self.ct
    }
    fn e0(&self) -> std::ops::Range<usize> {
        let s = 5 + 3 * self.ct;
        s..s + CHALLENGE_BYTES
    }
    fn z0(&self) -> std::ops::Range<usize> {
        let s = self.e0().end;
        s..s + RESPONSE_BYTES
    }
    fn z1(&self) -> std::ops::Range<usize> {
        let s = self.z0().end;
        s..s + RESPONSE_BYTES
    }
}

fn fixed(x: &Integer, len: usize) -> Vec<u8> {
    let d = x.to_digits::<u8>(Order::Msf);
    let mut out = vec![0; len - d.len()];
    out.extend(d);
    out
}

/// A forger without any witness: simulates both branches (random e0, e1,
/// z0, z1; a_j = H^z_j u_j^-e_j) so each equation holds, and hopes that
/// e0 + e1 equals the hash. It never does.
#[test]
fn simulated_both_branches_forgery_of_two_is_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let pk = pk();
    let p = proofs("count");
    let id = ReportId([3; 16]);
    let n2 = pk.n_squared().clone();
    let hn = Integer::from(pk.h().pow_mod_ref(pk.n(), &n2).unwrap());
    let layout = CountLayout {
        ct: pk.ciphertext_len(),
    };
    let honest = p.prove(&[1], &ctx(&id), &mut rng).unwrap();
    for m in [Integer::from(2), Integer::from(pk.n() - 1u32)] {
        let c = pk.encrypt(&m, &mut rng).unwrap().as_integer().clone();
        let g_inv = Integer::from(&n2 + 1u32) - pk.n();
        let u = [c.clone(), Integer::from(&c * &g_inv) % &n2];
        let mut payload = honest.clone();
        payload[layout.c()].copy_from_slice(&fixed(&c, layout.ct));
        let mut e = Vec::new();
        for (j, range_a, range_z) in [(0, layout.a0(), layout.z0()), (1, layout.a1(), layout.z1())]
        {
            let ej = Integer::from(rng.gen::<u128>());
            let zj = Integer::from(rng.gen::<u128>()) << 400u32;
            let hz = Integer::from(hn.pow_mod_ref(&zj, &n2).unwrap());
            let ue = Integer::from(u[j].pow_mod_ref(&ej, &n2).unwrap())
                .invert(&n2)
                .unwrap();
            let aj = hz * ue % &n2;
            payload[range_a].copy_from_slice(&fixed(&aj, layout.ct));
            payload[range_z].copy_from_slice(&fixed(&zj, RESPONSE_BYTES));
            e.push(ej);
        }
        payload[layout.e0()].copy_from_slice(&fixed(&e[0], CHALLENGE_BYTES));
        assert!(is_invalid(&p.verify(&payload, &ctx(&id))), "plaintext {m}");
    }
}

#[test]
fn proof_is_bound_to_ciphertext_report_task_time_and_key() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let p = proofs("count");
    let id = ReportId([4; 16]);
    let payload = p.prove(&[1], &ctx(&id), &mut rng).unwrap();
    p.verify(&payload, &ctx(&id)).unwrap();

    // Another ciphertext of the same bit, with the original proof.
    let layout = CountLayout {
        ct: pk().ciphertext_len(),
    };
    let other = p.prove(&[1], &ctx(&id), &mut rng).unwrap();
    let mut swapped = payload.clone();
    swapped[layout.c()].copy_from_slice(&other[layout.c()]);
    assert!(
        is_invalid(&p.verify(&swapped, &ctx(&id))),
        "other ciphertext"
    );

    // Another report id, task or time.
    let other_id = ReportId([5; 16]);
    assert!(
        is_invalid(&p.verify(&payload, &ctx(&other_id))),
        "report id"
    );
    let other_task = TaskId([8; 32]);
    let moved = ReportContext {
        task_id: &other_task,
        report_id: &id,
        time: 1_700_000_040,
    };
    assert!(is_invalid(&p.verify(&payload, &moved)), "task");
    let later = ReportContext {
        time: 1_700_000_100,
        ..ctx(&id)
    };
    assert!(is_invalid(&p.verify(&payload, &later)), "time");

    // Another key: a second key pair, same measurement.
    let mut krng = ChaCha20Rng::seed_from_u64(99);
    let sk2 = SecretKey::generate(2048, &mut krng, &mut |_| {}).unwrap();
    let p2 = InputProofs::new(sk2.public_key().clone(), Measurement::Count).unwrap();
    assert!(p2.verify(&payload, &ctx(&id)).is_err(), "key");

    // Flipping any single byte of the proof breaks it.
    for pos in [
        layout.a0().start + 100,
        layout.e0().start,
        layout.z1().end - 1,
    ] {
        let mut bad = payload.clone();
        bad[pos] ^= 1;
        assert!(p.verify(&bad, &ctx(&id)).is_err(), "byte {pos}");
    }
}

#[test]
fn histogram_with_two_or_no_buckets_set_is_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let p = proofs("histogram:16");
    let id = ReportId([6; 16]);
    let mut two = vec![Integer::from(0); 16];
    two[3] = Integer::from(1);
    two[9] = Integer::from(1);
    let payload = p.prove_unchecked(&two, &ctx(&id), &mut rng).unwrap();
    assert!(is_invalid(&p.verify(&payload, &ctx(&id))), "two buckets");
    let none = vec![Integer::from(0); 16];
    let payload = p.prove_unchecked(&none, &ctx(&id), &mut rng).unwrap();
    assert!(is_invalid(&p.verify(&payload, &ctx(&id))), "no bucket");
    let mut one = vec![Integer::from(0); 16];
    one[15] = Integer::from(1);
    let payload = p.prove_unchecked(&one, &ctx(&id), &mut rng).unwrap();
    p.verify(&payload, &ctx(&id)).unwrap();
}

#[test]
fn sum_bit_of_two_is_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let p = proofs("sum:8");
    let id = ReportId([7; 16]);
    // 0b00000010 written with a "bit" of 2 in position 0: the value 2 the
    // honest way would be fine, but no bit may be 2 (that is how 2^9 would
    // sneak into an 8-bit sum through the top bit).
    let mut bits = vec![Integer::from(0); 8];
    bits[7] = Integer::from(2);
    let payload = p.prove_unchecked(&bits, &ctx(&id), &mut rng).unwrap();
    assert!(is_invalid(&p.verify(&payload, &ctx(&id))));
}

#[test]
fn malformed_payloads_are_rejected_without_panicking() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let p = proofs("histogram:16");
    let id = ReportId([8; 16]);
    let payload = p
        .prove(
            &Measurement::Histogram { buckets: 16 }.random_value(&mut rng),
            &ctx(&id),
            &mut rng,
        )
        .unwrap();
    p.verify(&payload, &ctx(&id)).unwrap();
    // Truncated anywhere, including inside the last response.
    for cut in [0, 1, 4, 5, 600, payload.len() / 2, payload.len() - 1] {
        let r = p.verify(&payload[..cut], &ctx(&id));
        assert!(
            matches!(
                r,
                Err(ProofError::Malformed(_)) | Err(ProofError::WrongBitCount { .. })
            ),
            "cut at {cut}: {r:?}"
        );
    }
    // Trailing bytes, wrong version, wrong bit count.
    let mut long = payload.clone();
    long.push(0);
    assert!(matches!(
        p.verify(&long, &ctx(&id)),
        Err(ProofError::Malformed(_))
    ));
    let mut v2 = payload.clone();
    v2[0] = 2;
    assert!(matches!(
        p.verify(&v2, &ctx(&id)),
        Err(ProofError::Malformed(_))
    ));
    let mut count = payload.clone();
    count[4] = 15;
    assert!(matches!(
        p.verify(&count, &ctx(&id)),
        Err(ProofError::WrongBitCount { .. })
    ));
    // A ciphertext of 0, of n (not a unit), of n^2 (out of range).
    let pk = pk();
    let len = pk.ciphertext_len();
    for bad in [Integer::new(), pk.n().clone()] {
        let mut b = payload.clone();
        b[5..5 + len].copy_from_slice(&fixed(&bad, len));
        assert!(
            matches!(p.verify(&b, &ctx(&id)), Err(ProofError::NotAUnit(_))),
            "{bad}"
        );
    }
    let mut b = payload.clone();
    b[5..5 + len].fill(0xff);
    assert!(matches!(
        p.verify(&b, &ctx(&id)),
        Err(ProofError::NotAUnit(_))
    ));
    // The aggregator maps these to the upload errors the server reports.
    let server = PaillierAggregator::<Integer>::new(&definition(
        Measurement::Histogram { buckets: 16 },
        true,
    ))
    .unwrap();
    let check = |payload: &[u8], id: &ReportId| server.check(&[(payload, ctx(id))]).pop().unwrap();
    assert!(matches!(
        check(&payload[..100], &id),
        Err(SchemeError::Malformed(_))
    ));
    assert!(matches!(
        check(&payload, &ReportId([9; 16])),
        Err(SchemeError::InvalidProof(_))
    ));
}

#[test]
fn batch_rejects_exactly_the_bad_reports() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let p = proofs("count");
    let ids: Vec<ReportId> = (0..64).map(|_| ReportId::random(&mut rng)).collect();
    let mut payloads: Vec<Vec<u8>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| p.prove(&[(i % 2) as u64], &ctx(id), &mut rng).unwrap())
        .collect();
    // Report 37 encrypts 2 with the honest prover's proof; report 5 is
    // truncated; report 50's proof is for another report id.
    payloads[37] = p
        .prove_unchecked(&[Integer::from(2)], &ctx(&ids[37]), &mut rng)
        .unwrap();
    payloads[5].pop();
    payloads[50] = p.prove(&[1], &ctx(&ids[49]), &mut rng).unwrap();
    let batch: Vec<(&[u8], ReportContext<'_>)> = payloads
        .iter()
        .zip(&ids)
        .map(|(p, id)| (p.as_slice(), ctx(id)))
        .collect();
    let mut vrng = ChaCha20Rng::seed_from_u64(9);
    let results = p.verify_batch_with_rng(&batch, &mut vrng);
    for (i, r) in results.into_iter().enumerate() {
        match i {
            5 => assert!(matches!(r, Err(ProofError::Malformed(_))), "{i}"),
            37 | 50 => assert!(is_invalid(&r), "{i}"),
            _ => assert_eq!(decrypt_values(r), [(i % 2) as u64], "{i}"),
        }
    }
    // One bad report alone among many honest ones, through the OS RNG.
    let results = p.verify_batch(&batch[30..40]);
    let bad: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i + 30)
        .collect();
    assert_eq!(bad, [37]);
}

/// Completeness at scale: 10,000 honest `histogram:16` reports verify in
/// batches through the backend, and their packed stored ciphertexts sum
/// and decrypt to the exact histogram.
#[test]
fn ten_thousand_honest_histogram_reports_verify_and_sum_exactly() {
    use rayon::prelude::*;
    const REPORTS: usize = 10_000;
    let measurement = Measurement::Histogram { buckets: 16 };
    let def = definition(measurement, true);
    let client = PaillierEncrypter::<Integer>::new(&def).unwrap();
    let server = PaillierAggregator::<Integer>::new(&def).unwrap();
    let reports: Vec<(ReportId, Vec<u64>, Vec<u8>)> = (0..REPORTS)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha20Rng::seed_from_u64(1000 + i as u64);
            let id = ReportId::random(&mut rng);
            let values = measurement.random_value(&mut rng);
            let payload = client.encrypt(&values, &ctx(&id), &mut rng).unwrap();
            (id, values, payload)
        })
        .collect();
    let mut truth = vec![0i128; 16];
    for (_, values, _) in &reports {
        for (t, v) in truth.iter_mut().zip(values) {
            *t += i128::from(*v);
        }
    }
    let mut stored = Vec::with_capacity(REPORTS);
    for chunk in reports.chunks(1000) {
        let batch: Vec<(&[u8], ReportContext<'_>)> = chunk
            .iter()
            .map(|(id, _, p)| (p.as_slice(), ctx(id)))
            .collect();
        for r in server.check(&batch) {
            stored.push(r.unwrap());
        }
    }
    let sum = server.sum(&stored);
    let released = server
        .release(
            &sum,
            REPORTS as u64,
            &[0; 16],
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
    let Encoding::PaillierPacked { slot_bits } = server.encoding() else {
        panic!("a Paillier aggregator uses packed slots");
    };
    let packing = hetally_paillier::Packing::new(slot_bits, 2048).unwrap();
    let plaintexts: Vec<Integer> = released
        .iter()
        .map(|b| {
            let c = pk().ciphertext_from_bytes(b).unwrap();
            pk().to_signed(key().decrypt(&c).unwrap())
        })
        .collect();
    assert_eq!(packing.unpack(&plaintexts, 16).unwrap(), truth);
}

#[test]
fn oversized_proof_tasks_are_refused() {
    let m = Measurement::SumVec {
        length: 65_536,
        bits: 62,
    };
    assert!(matches!(
        InputProofs::new(pk(), m),
        Err(ProofError::TooLarge { .. })
    ));
}
