//! Property tests of the protocol's formats (issue 18): every encoding
//! round-trips, and every decoder is canonical, so that no two byte strings
//! decode to the same value. A task id is the hash of a definition's bytes
//! and a key fingerprint the hash of a key file's, so a second encoding of
//! the same value would be a second id for it.
//!
//! The canonical-decoding properties mutate a valid encoding (flip a bit,
//! cut it short, add bytes) and require that whatever the decoder still
//! accepts encodes back to exactly the bytes it was given. One exception is
//! documented (`docs/protocol.md`, 5.1): the decoder reads a rational that
//! is not in lowest terms, or has leading zero bytes, as its value, so the
//! mechanism's parameter and the budget have more than one encoding (a task
//! id is still checked against the bytes as received, so this cannot make
//! a tampered definition match an id). Those properties therefore hold
//! their mutated values to exact bytes only when they carry no rational,
//! and a property of its own pins the documented leniency down.
//!
//! Everything here is plain encoding work, microseconds per case, so the
//! properties run 256 cases (proptest's default).

use hetally_protocol::aggregate::{AggregateFile, Encoding, ReportCount, MAX_SLOT_BITS};
use hetally_protocol::codec::{CodecError, FileKind, Reader, Writer};
use hetally_protocol::dp::{DpMechanism, Rational, Relation};
use hetally_protocol::keyfile;
use hetally_protocol::measurement::{MAX_BITS, MAX_LENGTH};
use hetally_protocol::report::MAX_REPORT_PAYLOAD;
use hetally_protocol::task::MAX_TIME_PRECISION;
use hetally_protocol::{Layout, Measurement, Report, ReportId, Scheme, TaskDefinition, TaskId};
use num_bigint::BigUint;
use num_rational::Ratio;
use proptest::prelude::*;

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

fn measurement() -> impl Strategy<Value = Measurement> {
    measurement_of_length(MAX_LENGTH)
}

/// A measurement of at most `max` values.
fn measurement_of_length(max: u32) -> impl Strategy<Value = Measurement> {
    prop_oneof![
        Just(Measurement::Count),
        (1..=MAX_BITS).prop_map(|bits| Measurement::new_sum(bits).unwrap()),
        (2..=max).prop_map(|buckets| Measurement::new_histogram(buckets).unwrap()),
        (1..=max, 1..=MAX_BITS)
            .prop_map(|(length, bits)| Measurement::new_sumvec(length, bits).unwrap()),
    ]
}

/// A positive rational as a task states one: small fractions, decimals, and
/// fractions of up to 512-bit numerators and denominators (the encoding's
/// limit).
fn rational() -> impl Strategy<Value = Rational> {
    let big = || {
        prop::collection::vec(any::<u8>(), 1..=64)
            .prop_map(|b| BigUint::from_bytes_be(&b))
            .prop_filter("positive", |n| n.bits() > 0)
    };
    prop_oneof![
        (1u64..1000, 1u64..1000).prop_map(|(n, d)| Rational::new(n, d)),
        (1u64.., 0u32..20).prop_map(|(n, e)| Rational::new(n, 10u64.pow(e))),
        (big(), big()).prop_map(|(n, d)| Rational::from_ratio(Ratio::new(n, d))),
    ]
}

fn mechanism() -> impl Strategy<Value = DpMechanism> {
    prop_oneof![
        Just(DpMechanism::None),
        rational().prop_map(|epsilon| DpMechanism::Laplace { epsilon }),
        rational().prop_map(|rho| DpMechanism::Gaussian { rho }),
    ]
}

fn relation() -> impl Strategy<Value = Option<Relation>> {
    prop_oneof![
        Just(None),
        Just(Some(Relation::AddRemove)),
        Just(Some(Relation::ReplaceOne)),
    ]
}

/// A key file's framing with an arbitrary body: the protocol reads only the
/// framing (the body is the scheme's).
fn public_key(scheme: Scheme) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(move |body| {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::PublicKey, scheme);
        w.bytes(&body);
        w.finish()
    })
}

/// A layout of either scheme. A TFHE layout's Delta is encoded in one byte
/// (the scheme only derives 27..=60), so it is drawn from the byte's range.
fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        any::<u32>().prop_map(|slot_bits| Layout::Paillier { slot_bits }),
        (0u32..=255, prop::option::of(any::<[u8; 32]>())).prop_map(|(delta_log2, crs_hash)| {
            Layout::Tfhe {
                delta_log2,
                crs_hash,
            }
        }),
    ]
}

/// Any definition that passes [`TaskDefinition::check`]: fields are drawn
/// so that most combinations are consistent, and the rest are filtered.
fn definition() -> impl Strategy<Value = TaskDefinition> {
    definition_with(mechanism())
}

fn definition_with(
    mechanism: impl Strategy<Value = DpMechanism>,
) -> impl Strategy<Value = TaskDefinition> {
    (
        measurement(),
        1u64..=u64::MAX,
        any::<u64>(),
        1..=MAX_TIME_PRECISION,
        mechanism,
        rational(),
        layout(),
        any::<bool>(),
        relation(),
    )
        .prop_flat_map(
            |(measurement, min, extra, precision, dp, budget, layout, proofs, relation)| {
                let input_proofs = match layout {
                    Layout::Tfhe { crs_hash, .. } => crs_hash.is_some(),
                    Layout::Paillier { .. } => proofs,
                };
                let budget = (dp != DpMechanism::None).then_some(budget);
                public_key(layout.scheme()).prop_map(move |public_key| TaskDefinition {
                    measurement,
                    min_batch_size: min,
                    max_batch_size: min.saturating_add(extra),
                    time_precision: precision,
                    dp: dp.clone(),
                    budget: budget.clone(),
                    public_key,
                    layout,
                    input_proofs,
                    relation,
                    trustee_noise: None,
                })
            },
        )
        .prop_filter("a consistent definition", |d| d.check().is_ok())
}

fn aggregate() -> impl Strategy<Value = AggregateFile> {
    aggregate_with(mechanism())
}

fn aggregate_with(
    mechanism: impl Strategy<Value = DpMechanism>,
) -> impl Strategy<Value = AggregateFile> {
    let encoding = prop_oneof![
        (2..=MAX_SLOT_BITS).prop_map(|slot_bits| Encoding::PaillierPacked { slot_bits }),
        (any::<u8>(), any::<u32>()).prop_map(|(parameter_set, delta_log2)| {
            Encoding::TfheLists {
                parameter_set,
                delta_log2,
            }
        }),
    ];
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        measurement(),
        encoding,
        any::<u64>(),
        any::<u64>(),
        relation(),
        any::<u64>(),
        mechanism,
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..6),
    )
        .prop_map(
            |(
                task_id,
                fingerprint,
                measurement,
                encoding,
                start,
                duration,
                relation,
                count,
                dp,
                ciphertexts,
            )| {
                AggregateFile {
                    task_id,
                    scheme: encoding.scheme(),
                    key_fingerprint: fingerprint,
                    measurement,
                    encoding,
                    batch_start: start,
                    batch_duration: duration,
                    relation,
                    report_count: match relation {
                        Some(Relation::AddRemove) => ReportCount::Noisy(count as i64),
                        _ => ReportCount::Exact(count),
                    },
                    dp,
                    ciphertexts,
                    trustee_noise: None,
                }
            },
        )
}

/// A change to a valid encoding: one bit flipped, the end cut off, or bytes
/// added at the end.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Mutation::Append),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match m {
        Mutation::Flip(i, bit) => out[i.index(bytes.len())] ^= 1 << bit,
        Mutation::Truncate(i) => out.truncate(i.index(bytes.len())),
        Mutation::Append(extra) => out.extend_from_slice(extra),
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn measurements_round_trip_in_text_and_binary(m in measurement()) {
        prop_assert_eq!(m.to_string().parse::<Measurement>().unwrap(), m);
        let mut w = Writer::new();
        m.encode(&mut w);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(Measurement::decode(&mut r).unwrap(), m);
        prop_assert!(r.finish("measurement").is_ok());
    }

    #[test]
    fn random_values_are_valid_measurements(
        // Longer vectors are slower to draw and say nothing more.
        m in measurement_of_length(4096),
        seed in any::<u64>(),
    ) {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let values = m.random_value(&mut rng);
        prop_assert!(m.validate(&values).is_ok());
    }

    #[test]
    fn mechanisms_round_trip_in_text_and_binary(dp in mechanism()) {
        prop_assert_eq!(&dp.to_string().parse::<DpMechanism>().unwrap(), &dp);
        let mut w = Writer::new();
        dp.encode(&mut w);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(&DpMechanism::decode(&mut r).unwrap(), &dp);
        prop_assert!(r.finish("mechanism").is_ok());
    }

    #[test]
    fn ids_round_trip_in_text(report in any::<[u8; 16]>(), task in any::<[u8; 32]>()) {
        let report = ReportId(report);
        prop_assert_eq!(report.to_string().parse::<ReportId>().unwrap(), report);
        let task = TaskId(task);
        prop_assert_eq!(task.to_string().parse::<TaskId>().unwrap(), task);
    }

    #[test]
    fn reports_round_trip_and_respect_the_payload_limit(
        id in any::<[u8; 16]>(),
        time in any::<u64>(),
        payload in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let report = Report { id: ReportId(id), time, payload };
        let bytes = report.to_bytes();
        let len = report.payload.len();
        prop_assert_eq!(&Report::from_bytes(&bytes, len).unwrap(), &report);
        prop_assert_eq!(&Report::from_bytes(&bytes, MAX_REPORT_PAYLOAD).unwrap(), &report);
        if len > 0 {
            let over = matches!(
                Report::from_bytes(&bytes, len - 1),
                Err(CodecError::TooLong { .. })
            );
            prop_assert!(over, "a payload over the limit must be refused");
        }
    }

    #[test]
    fn reports_decode_canonically(
        id in any::<[u8; 16]>(),
        time in any::<u64>(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        m in mutation(),
    ) {
        let bytes = Report { id: ReportId(id), time, payload }.to_bytes();
        let mutated = mutate(&bytes, &m);
        if let Ok(report) = Report::from_bytes(&mutated, MAX_REPORT_PAYLOAD) {
            prop_assert_eq!(report.to_bytes(), mutated);
        }
    }

    #[test]
    fn task_definitions_round_trip_and_hash_to_their_id(d in definition()) {
        let bytes = d.to_bytes();
        let back = TaskDefinition::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        prop_assert_eq!(TaskDefinition::verify(&bytes, &d.id()).unwrap(), d);
    }

    #[test]
    fn task_definitions_decode_canonically(
        d in definition_with(Just(DpMechanism::None)),
        m in mutation(),
    ) {
        let mutated = mutate(&d.to_bytes(), &m);
        if let Ok(back) = TaskDefinition::from_bytes(&mutated) {
            // A flipped mechanism tag can make rationals out of the bytes
            // that follow: see the module docs.
            if back.dp == DpMechanism::None && back.budget.is_none() {
                prop_assert_eq!(back.to_bytes(), mutated);
            }
        }
    }

    #[test]
    fn aggregate_files_round_trip(file in aggregate()) {
        let bytes = file.to_bytes();
        let back = AggregateFile::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &file);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn aggregate_files_decode_canonically(
        file in aggregate_with(Just(DpMechanism::None)),
        m in mutation(),
    ) {
        let mutated = mutate(&file.to_bytes(), &m);
        if let Ok(back) = AggregateFile::from_bytes(&mutated) {
            if back.dp == DpMechanism::None {
                prop_assert_eq!(back.to_bytes(), mutated);
            }
        }
    }

    /// The documented leniency (`docs/protocol.md`, 5.1): a rational written
    /// unreduced, or with leading zero bytes, decodes to its value, which
    /// encodes canonically.
    #[test]
    fn unreduced_and_padded_rationals_decode_to_their_value(
        r in rational(),
        factor in 1u32..1000,
        pad in (0usize..3, 0usize..3),
    ) {
        let padded = |n: &BigUint, zeros: usize| {
            let mut bytes = vec![0; zeros];
            bytes.extend(n.to_bytes_be());
            bytes
        };
        let numer = padded(&(r.as_ratio().numer() * factor), pad.0);
        let denom = padded(&(r.as_ratio().denom() * factor), pad.1);
        prop_assume!(numer.len() <= 64 && denom.len() <= 64);
        let mut w = Writer::new();
        w.var_bytes(&numer).var_bytes(&denom);
        let bytes = w.finish();
        let mut reader = Reader::new(&bytes);
        let back = Rational::decode(&mut reader).unwrap();
        prop_assert!(reader.finish("rational").is_ok());
        prop_assert_eq!(&back, &r);
        let mut canonical = Writer::new();
        r.encode(&mut canonical);
        let mut again = Writer::new();
        back.encode(&mut again);
        prop_assert_eq!(again.finish(), canonical.finish());
    }
}
