//! `hetally-keytool` as a user runs it: the real binary, real files.
//!
//! Keys are expensive (about a second each), so one key pair made by the
//! binary's own `keygen` and one second key pair for wrong-key tests are
//! shared by every test, as are the aggregates built from them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hetally_dp::{DpMechanism, Relation};
use hetally_protocol::aggregate::{AggregateFile, Encoding, ReportCount};
use hetally_protocol::codec::{self, Reader};
use hetally_protocol::{Measurement, Scheme};
use hetally_schemes::paillier::{self, Packing, PaillierDecrypter};
use hetally_schemes::{PublicKeyFile, SecretKeyFile};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rug::integer::Order;
use rug::Integer;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

mod common;

use common::{assert_success, keytool, p, Output};

// ---------------------------------------------------------------------------
// Running the binary

/// [`common::assert_clean_failure`], and the line starts as every keytool
/// error does.
#[track_caller]
fn assert_clean_failure(out: &Output, code: i32, needles: &[&str]) {
    common::assert_clean_failure(out, code, needles);
    assert!(
        out.stderr.starts_with("hetally-keytool: error: "),
        "{}",
        out.stderr
    );
}

// Exit codes, as documented in `hetally-keytool --help`.
const EXIT_USAGE: i32 = 2;
const EXIT_IO: i32 = 3;
const EXIT_CORRUPT: i32 = 4;
const EXIT_WRONG_KIND: i32 = 5;
const EXIT_WRONG_KEY: i32 = 6;
const EXIT_EXISTS: i32 = 7;
const EXIT_OUT_OF_RANGE: i32 = 8;

// ---------------------------------------------------------------------------
// Shared keys and aggregates

struct Keys {
    _dir: TempDir,
    sk_path: PathBuf,
    pk_path: PathBuf,
    keygen_stdout: String,
    sk: SecretKeyFile,
    pk: PublicKeyFile,
}

/// The collector's key pair, made by `hetally-keytool keygen`.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("keys");
        let out = keytool(["keygen", "--scheme", "paillier", "--out", p(&out_dir)]);
        assert_success(&out);
        let sk_path = out_dir.join("collector.sk");
        let pk_path = out_dir.join("collector.pk");
        let sk = SecretKeyFile::read(&sk_path).unwrap();
        let pk = PublicKeyFile::read(&pk_path).unwrap();
        Keys {
            _dir: dir,
            sk_path,
            pk_path,
            keygen_stdout: out.stdout,
            sk,
            pk,
        }
    })
}

fn paillier_pk(pk: &PublicKeyFile) -> &paillier::PublicKey<Integer> {
    match pk {
        PublicKeyFile::Paillier(pk) => pk,
        _ => panic!("the tests use Paillier keys"),
    }
}

/// Another collector's secret key, for wrong-key tests.
fn other_key() -> &'static (TempDir, PathBuf) {
    static OTHER: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    OTHER.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let sk = paillier::SecretKey::generate(2048, &mut rng, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sk");
        fs::write(
            &path,
            SecretKeyFile::Paillier(PaillierDecrypter::new(sk)).to_bytes(),
        )
        .unwrap();
        (dir, path)
    })
}

const REPORTS: usize = 1000;
const BATCH_START: u64 = 1_714_521_600; // 2024-05-01T00:00:00Z
const BATCH_DURATION: u64 = 3600;

/// An aggregate and the plain sums it must decrypt to.
struct Fixture {
    file: AggregateFile,
    expected: Vec<i128>,
}

impl Fixture {
    fn bytes(&self) -> Vec<u8> {
        self.file.to_bytes()
    }
}

fn task_id(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut id = [0u8; 32];
    rng.fill_bytes(&mut id);
    id
}

/// Encrypts each report's packed plaintexts and sums them homomorphically,
/// as clients and the server would.
fn encrypt_and_sum(
    measurement: Measurement,
    reports: &[Vec<u64>],
    packing: Packing,
    rng: &mut ChaCha20Rng,
) -> Vec<Vec<u8>> {
    let pk = paillier_pk(&keys().pk);
    let per_report: Vec<Vec<paillier::Ciphertext<Integer>>> = reports
        .iter()
        .map(|values| {
            measurement.validate(values).unwrap();
            packing
                .pack_u64::<Integer>(values)
                .unwrap()
                .iter()
                .map(|m| pk.encrypt(m, rng).unwrap())
                .collect()
        })
        .collect();
    let ciphertexts_per_report = per_report[0].len();
    (0..ciphertexts_per_report)
        .map(|j| {
            let column: Vec<paillier::Ciphertext<Integer>> =
                per_report.iter().map(|r| r[j].clone()).collect();
            pk.ciphertext_to_bytes(&pk.sum(&column))
        })
        .collect()
}

fn build(measurement: Measurement, seed: u64) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let reports: Vec<Vec<u64>> = (0..REPORTS)
        .map(|_| measurement.random_value(&mut rng))
        .collect();
    let mut expected = vec![0i128; measurement.len()];
    for r in &reports {
        for (e, v) in expected.iter_mut().zip(r) {
            *e += i128::from(*v);
        }
    }
    let max_sum = Integer::from(REPORTS as u64 * measurement.max_value());
    let packing = Packing::for_max_abs(&max_sum, 2048).unwrap();
    let ciphertexts = encrypt_and_sum(measurement, &reports, packing, &mut rng);
    let file = AggregateFile {
        task_id: task_id(&mut rng),
        scheme: Scheme::Paillier,
        key_fingerprint: keys().pk.fingerprint(),
        measurement,
        encoding: Encoding::PaillierPacked {
            slot_bits: packing.slot_bits(),
        },
        batch_start: BATCH_START,
        batch_duration: BATCH_DURATION,
        relation: Some(Relation::ReplaceOne),
        report_count: ReportCount::Exact(REPORTS as u64),
        dp: DpMechanism::None,
        ciphertexts,
        trustee_noise: None,
    };
    Fixture { file, expected }
}

/// 1000 random `sum:8` reports, one ciphertext each, summed.
fn sum_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build(Measurement::new_sum(8).unwrap(), 1))
}

/// 1000 random `histogram:11` reports, 11 slots packed in one ciphertext.
fn histogram_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build(Measurement::new_histogram(11).unwrap(), 2))
}

/// Writes `bytes` to a fresh file, returning the directory that owns it.
fn write_temp(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn decrypt(agg: &Path, format: &str) -> Output {
    keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--format",
        format,
        p(agg),
    ])
}

fn values_of_json(stdout: &str) -> Vec<i128> {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| i128::from(x.as_i64().unwrap()))
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------
// keygen

#[test]
fn keygen_writes_a_0600_secret_key_and_a_public_key() {
    let k = keys();
    #[cfg(unix)]
    assert_eq!(mode(&k.sk_path), 0o600);
    assert!(k.pk_path.is_file());
    assert_eq!(k.sk.public_key(), k.pk, "the two files are one key pair");
    assert_eq!(paillier_pk(&k.pk).modulus_bits(), 2048);
    let fp = hex::encode(k.pk.fingerprint());
    for needle in [p(&k.sk_path), p(&k.pk_path), fp.as_str(), "never copy it"] {
        assert!(
            k.keygen_stdout.contains(needle),
            "{needle} not in {}",
            k.keygen_stdout
        );
    }
}

#[test]
fn keygen_refuses_to_overwrite_without_force_and_replaces_with_it() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("collector.sk");
    let pk = dir.path().join("collector.pk");
    fs::copy(&k.sk_path, &sk).unwrap();
    fs::copy(&k.pk_path, &pk).unwrap();
    let (sk_before, pk_before) = (fs::read(&sk).unwrap(), fs::read(&pk).unwrap());

    let out = keytool(["keygen", "--scheme", "paillier", "--out", p(dir.path())]);
    assert_clean_failure(&out, EXIT_EXISTS, &[p(&sk), p(&pk), "--force"]);
    assert_eq!(fs::read(&sk).unwrap(), sk_before);
    assert_eq!(fs::read(&pk).unwrap(), pk_before);

    // Either file alone blocks the run, and nothing is written.
    fs::remove_file(&sk).unwrap();
    let out = keytool(["keygen", "--scheme", "paillier", "--out", p(dir.path())]);
    assert_clean_failure(&out, EXIT_EXISTS, &[p(&pk), "--force"]);
    assert!(!sk.exists(), "no secret key written by a refused run");
    assert_eq!(fs::read(&pk).unwrap(), pk_before);
    fs::copy(&k.sk_path, &sk).unwrap();

    let out = keytool([
        "keygen",
        "--scheme",
        "paillier",
        "--out",
        p(dir.path()),
        "--force",
    ]);
    assert_success(&out);
    assert!(out.stdout.contains("Replaced"), "{}", out.stdout);
    let new_sk = SecretKeyFile::read(&sk).unwrap();
    let new_pk = PublicKeyFile::read(&pk).unwrap();
    assert_ne!(new_pk, k.pk, "a fresh key");
    assert_eq!(new_sk.public_key(), new_pk);
    #[cfg(unix)]
    assert_eq!(mode(&sk), 0o600);
    // No temporary files left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn keygen_3072_bits() {
    let dir = tempfile::tempdir().unwrap();
    let out = keytool([
        "keygen",
        "--scheme",
        "paillier",
        "--bits",
        "3072",
        "--out",
        p(dir.path()),
    ]);
    assert_success(&out);
    assert!(out.stdout.contains("3072-bit"), "{}", out.stdout);
    let pk = PublicKeyFile::read(&dir.path().join("collector.pk")).unwrap();
    assert_eq!(paillier_pk(&pk).modulus_bits(), 3072);
    let sk = SecretKeyFile::read(&dir.path().join("collector.sk")).unwrap();
    assert_eq!(sk.public_key(), pk);
}

#[test]
fn keygen_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keys");
    for bits in ["1024", "4096", "2048x", "0"] {
        let out = keytool([
            "keygen",
            "--scheme",
            "paillier",
            "--bits",
            bits,
            "--out",
            p(&target),
        ]);
        assert_eq!(out.code, EXIT_USAGE, "{bits}: {}", out.stderr);
        assert!(out.stderr.contains("2048 or 3072"), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    let out = keytool(["keygen", "--scheme", "rsa", "--out", p(&target)]);
    assert_eq!(out.code, EXIT_USAGE, "{}", out.stderr);
    let out = keytool(["keygen", "--out", p(&target)]);
    assert_eq!(out.code, EXIT_USAGE, "--scheme is required: {}", out.stderr);
    assert!(!target.exists(), "nothing created by rejected runs");
}

#[test]
fn threshold_keygen_checks_its_arguments_and_writes_shares_not_a_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("committee");
    let t = p(&target);
    for (args, needle) in [
        (vec!["--trustees", "5"], "--threshold"),
        (vec!["--threshold", "3"], "--trustees"),
        (vec!["--trustees", "3", "--threshold", "4"], "threshold"),
        (vec!["--trustees", "1", "--threshold", "1"], "1"),
        (vec!["--trustees", "65", "--threshold", "3"], "65"),
    ] {
        let mut argv = vec!["keygen", "--scheme", "paillier", "--out", &t];
        argv.extend(&args);
        let out = keytool(argv);
        assert_eq!(out.code, EXIT_USAGE, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    // TFHE keys are N-of-N, and only TFHE keys take a smudging lambda.
    for (scheme, args, needle) in [
        (
            "tfhe",
            vec!["--trustees", "3", "--threshold", "2"],
            "paillier",
        ),
        (
            "tfhe",
            vec!["--trustees", "3", "--smudging-lambda", "41"],
            "41",
        ),
        ("tfhe", vec!["--smudging-lambda", "8"], "--trustees"),
        (
            "paillier",
            vec![
                "--trustees",
                "3",
                "--threshold",
                "2",
                "--smudging-lambda",
                "8",
            ],
            "--scheme tfhe",
        ),
        ("dap-hpke", vec!["--trustees", "3"], "--trustees"),
    ] {
        let mut argv = vec!["keygen", "--scheme", scheme, "--out", &t];
        argv.extend(&args);
        let out = keytool(argv);
        assert_eq!(out.code, EXIT_USAGE, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert!(!target.exists(), "nothing created by rejected runs");

    let argv = [
        "keygen",
        "--scheme",
        "paillier",
        "--trustees",
        "3",
        "--threshold",
        "2",
        "--out",
        t,
    ];
    let out = keytool(argv);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("any 2 of 3 trustees"), "{}", out.stdout);
    assert!(!target.join("collector.sk").exists());
    for i in 1..=3 {
        assert_eq!(mode(&target.join(format!("trustee-{i}.share"))), 0o600);
    }
    let out = keytool(["inspect", p(&target.join("collector.pk"))]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("threshold public key"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Trustees     3, any 2"),
        "{}",
        out.stdout
    );
    // inspect shows a share without its secret.
    let out = keytool(["inspect", p(&target.join("trustee-2.share"))]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Trustee          2 of 3"),
        "{}",
        out.stdout
    );
    let out = keytool(["inspect", "--json", p(&target.join("trustee-2.share"))]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["kind"], "key_share");
    assert_eq!(json["trustee"], 2);
    assert!(json.get("share").is_none() && !out.stdout.contains("s_i"));
    // A second run would replace the shares: refused without --force.
    let out = keytool(argv);
    assert_clean_failure(&out, EXIT_EXISTS, &["trustee-1.share", "--force"]);
}

#[test]
fn keygen_into_a_path_that_is_a_file_fails_cleanly() {
    let (_dir, file) = write_temp("not-a-dir", b"x");
    let out = keytool(["keygen", "--scheme", "paillier", "--out", p(&file)]);
    assert_clean_failure(&out, EXIT_IO, &[p(&file)]);
}

// ---------------------------------------------------------------------------
// pubkey

#[test]
fn pubkey_prints_the_sha256_of_the_key_file() {
    let k = keys();
    let out = keytool(["pubkey", p(&k.pk_path)]);
    assert_success(&out);
    let want = hex::encode(Sha256::digest(fs::read(&k.pk_path).unwrap()));
    assert_eq!(out.stdout, format!("{want}\n"));
    assert_eq!(want, hex::encode(k.pk.fingerprint()));

    // A secret key file gives the fingerprint of its public half.
    let out = keytool(["pubkey", p(&k.sk_path)]);
    assert_success(&out);
    assert_eq!(out.stdout, format!("{want}\n"));
}

#[test]
fn pubkey_json_has_scheme_n_and_fingerprint() {
    let k = keys();
    let out = keytool(["pubkey", "--json", p(&k.pk_path)]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let pk = paillier_pk(&k.pk);
    assert_eq!(v["scheme"], "paillier");
    assert_eq!(v["n"], pk.n().to_string());
    assert_eq!(v["fingerprint"], hex::encode(k.pk.fingerprint()));
    assert_eq!(v["modulus_bits"], 2048);
    assert_eq!(v.as_object().unwrap().len(), 4);
}

#[test]
fn pubkey_of_an_aggregate_is_refused() {
    let (_dir, agg) = write_temp("agg.htly", &sum_fixture().bytes());
    let out = keytool(["pubkey", p(&agg)]);
    assert_clean_failure(
        &out,
        EXIT_WRONG_KIND,
        &[p(&agg), "is an aggregate", "collector.pk"],
    );
}

// ---------------------------------------------------------------------------
// inspect

#[test]
fn inspect_public_key() {
    let k = keys();
    let fp = hex::encode(k.pk.fingerprint());
    let out = keytool(["inspect", p(&k.pk_path)]);
    assert_success(&out);
    for needle in ["public key", "paillier", "2048-bit", fp.as_str()] {
        assert!(
            out.stdout.contains(needle),
            "{needle} not in {}",
            out.stdout
        );
    }
    let out = keytool(["inspect", "--json", p(&k.pk_path)]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "public_key");
    assert_eq!(v["scheme"], "paillier");
    assert_eq!(v["modulus_bits"], 2048);
    assert_eq!(v["fingerprint"], fp);
    assert_eq!(v["file_bytes"], fs::metadata(&k.pk_path).unwrap().len());
}

/// The primes p and q, read from the secret key file with the codec.
fn primes_of(sk_file: &Path, pk: &paillier::PublicKey<Integer>) -> [Integer; 2] {
    let bytes = fs::read(sk_file).unwrap();
    let mut r = Reader::new(&bytes);
    assert_eq!(
        codec::read_header(&mut r).unwrap(),
        codec::FileKind::SecretKey
    );
    assert_eq!(r.u8("scheme").unwrap(), Scheme::Paillier.to_byte());
    let bits = r.u16("bits").unwrap() as usize;
    let half = bits / 16;
    let p = Integer::from_digits(r.bytes(half, "p").unwrap(), Order::Msf);
    let q = Integer::from_digits(r.bytes(half, "q").unwrap(), Order::Msf);
    assert_eq!(
        Integer::from(&p * &q),
        *pk.n(),
        "these really are the primes"
    );
    [p, q]
}

#[test]
fn inspect_secret_key_shows_no_secret_material() {
    let k = keys();
    let fp = hex::encode(k.pk.fingerprint());
    let primes = primes_of(&k.sk_path, paillier_pk(&k.pk));
    let text = keytool(["inspect", p(&k.sk_path)]);
    assert_success(&text);
    for needle in ["secret key", "paillier", "2048-bit", fp.as_str()] {
        assert!(
            text.stdout.contains(needle),
            "{needle} not in {}",
            text.stdout
        );
    }
    let json = keytool(["inspect", "--json", p(&k.sk_path)]);
    assert_success(&json);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["kind"], "secret_key");
    assert_eq!(v["fingerprint"], fp);

    for out in [&text, &json] {
        let shown = format!("{}{}", out.stdout, out.stderr);
        for prime in &primes {
            let hex = prime.to_string_radix(16);
            let forms = [
                prime.to_string(),
                hex.clone(),
                hex.to_uppercase(),
                STANDARD.encode(prime.to_digits::<u8>(Order::Msf)),
                // Any 64-bit chunk of either prime, as a partial leak.
                hex[..16].to_string(),
                hex[hex.len() - 16..].to_string(),
                prime.to_string()[..20].to_string(),
            ];
            for form in forms {
                assert!(!shown.contains(&form), "secret material {form} in {shown}");
            }
        }
    }
}

#[test]
fn inspect_aggregate() {
    let f = histogram_fixture();
    let (_dir, agg) = write_temp("release.htly", &f.bytes());
    let task = URL_SAFE_NO_PAD.encode(f.file.task_id);
    let key_fp = hex::encode(keys().pk.fingerprint());
    let out = keytool(["inspect", p(&agg)]);
    assert_success(&out);
    for needle in [
        "aggregate",
        task.as_str(),
        "paillier",
        "histogram:11",
        "2024-05-01T00:00:00Z to 2024-05-01T01:00:00Z (3600 s)",
        "Reports       1000",
        "none",
        "12-bit slots, 170 per ciphertext (a 2048-bit key)",
        "1 x 512 bytes",
        key_fp.as_str(),
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} not in {}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("Warning"), "{}", out.stdout);

    let out = keytool(["inspect", "--json", p(&agg)]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "aggregate");
    assert_eq!(v["task_id"], task);
    assert_eq!(v["scheme"], "paillier");
    assert_eq!(v["measurement"], "histogram:11");
    assert_eq!(v["values"], 11);
    assert_eq!(v["batch"]["start"], BATCH_START);
    assert_eq!(v["batch"]["duration"], BATCH_DURATION);
    assert_eq!(v["batch"]["start_utc"], "2024-05-01T00:00:00Z");
    assert_eq!(v["batch"]["end_utc"], "2024-05-01T01:00:00Z");
    assert_eq!(v["report_count"], 1000);
    assert_eq!(v["dp"], "none");
    assert_eq!(v["layout"]["slot_bits"], 12);
    assert_eq!(v["layout"]["slots_per_ciphertext"], 170);
    assert_eq!(v["ciphertexts"]["count"], 1);
    assert_eq!(v["ciphertexts"]["bytes_each"], 512);
    assert_eq!(v["key_fingerprint"], key_fp);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_rejects_what_is_not_a_hetally_file() {
    let (_dir, text) = write_temp("notes.txt", b"these are not the droids\n");
    let out = keytool(["inspect", p(&text)]);
    assert_clean_failure(&out, EXIT_CORRUPT, &[p(&text), "not a hetally file"]);
    let (_dir, empty) = write_temp("empty", b"");
    let out = keytool(["inspect", p(&empty)]);
    assert_clean_failure(&out, EXIT_CORRUPT, &[p(&empty), "empty"]);
}

// ---------------------------------------------------------------------------
// decrypt: end to end

#[test]
fn decrypt_sum_json_is_exactly_the_plain_sum() {
    let f = sum_fixture();
    let (_dir, agg) = write_temp("sum.htly", &f.bytes());
    let out = decrypt(&agg, "json");
    assert_success(&out);
    assert_eq!(out.stdout.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "task_id": URL_SAFE_NO_PAD.encode(f.file.task_id),
            "measurement": "sum:8",
            "relation": "replace-one",
            "report_count": 1000,
            "guarantee": {
                "relation": "replace-one",
                "declared": true,
                "holds": "none",
                "l1_sensitivity": "255",
                "l2_sensitivity_squared": "65025",
                "text": "none: no noise is added, releases are exact sums and give no DP guarantee",
            },
            "batch": {"start": BATCH_START, "duration": BATCH_DURATION},
            "dp": {
                "mechanism": "none",
                "distribution": "none",
                "std_dev": 0.0,
                "confidence": 0.95,
                "half_width": 0,
                "exact": true,
            },
            "values": [f.expected[0] as i64],
            "intervals": [[f.expected[0] as i64, f.expected[0] as i64]],
            "clamp": null,
            "flagged": [],
        })
    );
    // 1000 values of up to 255: a sum far from trivial.
    assert!(f.expected[0] > 100_000, "{}", f.expected[0]);
}

#[test]
fn decrypt_histogram_in_every_format() {
    let f = histogram_fixture();
    assert_eq!(f.expected.iter().sum::<i128>(), REPORTS as i128);
    let (dir, agg) = write_temp("hist.htly", &f.bytes());

    let json = decrypt(&agg, "json");
    assert_success(&json);
    assert_eq!(values_of_json(&json.stdout), f.expected);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["measurement"], "histogram:11");

    let csv = decrypt(&agg, "csv");
    assert_success(&csv);
    let mut want = String::from("index,value,low,high\n");
    for (i, v) in f.expected.iter().enumerate() {
        want += &format!("{i},{v},{v},{v}\n");
    }
    assert_eq!(csv.stdout, want);

    let table = decrypt(&agg, "table");
    assert_success(&table);
    let task = URL_SAFE_NO_PAD.encode(f.file.task_id);
    for needle in [
        task.as_str(),
        "histogram:11",
        "2024-05-01T00:00:00Z to 2024-05-01T01:00:00Z",
        "Reports      1000",
        "Noise        none",
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle:?} not in {}",
            table.stdout
        );
    }
    let rows: Vec<(String, i128)> = table
        .stdout
        .lines()
        .filter(|l| l.starts_with("bucket "))
        .map(|l| {
            let (label, value) = l.rsplit_once(' ').unwrap();
            (label.trim().to_string(), value.parse().unwrap())
        })
        .collect();
    let want: Vec<(String, i128)> = f
        .expected
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("bucket {i}"), *v))
        .collect();
    assert_eq!(rows, want);

    // The default format is the table.
    let default = keytool(["decrypt", "--key", p(&keys().sk_path), p(&agg)]);
    assert_success(&default);
    assert_eq!(default.stdout, table.stdout);

    // --out writes the same bytes to a file.
    let csv_file = dir.path().join("counts.csv");
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--format",
        "csv",
        "--out",
        p(&csv_file),
        p(&agg),
    ]);
    assert_success(&out);
    assert!(out.stdout.contains(p(&csv_file)), "{}", out.stdout);
    assert_eq!(fs::read_to_string(&csv_file).unwrap(), csv.stdout);

    // --out never replaces an input.
    for input in [&agg, &keys().sk_path] {
        let before = fs::read(input).unwrap();
        let out = keytool([
            "decrypt",
            "--key",
            p(&keys().sk_path),
            "--out",
            p(input),
            p(&agg),
        ]);
        assert_clean_failure(&out, EXIT_USAGE, &[p(input), "choose another output file"]);
        assert_eq!(fs::read(input).unwrap(), before);
    }
}

// ---------------------------------------------------------------------------
// decrypt: rejections

#[test]
fn decrypt_with_another_collectors_key_is_refused() {
    let (_dir, agg) = write_temp("sum.htly", &sum_fixture().bytes());
    let other = &other_key().1;
    let out = keytool(["decrypt", "--key", p(other), p(&agg)]);
    let want_fp = hex::encode(&keys().pk.fingerprint()[..8]);
    assert_clean_failure(
        &out,
        EXIT_WRONG_KEY,
        &[p(other), p(&agg), "is not the key", want_fp.as_str()],
    );
}

#[test]
fn decrypt_of_a_truncated_aggregate_is_refused() {
    let bytes = histogram_fixture().bytes();
    for len in [3, 6, 20, 80, bytes.len() / 2, bytes.len() - 1] {
        let (_dir, agg) = write_temp("cut.htly", &bytes[..len]);
        let out = decrypt(&agg, "json");
        assert_clean_failure(&out, EXIT_CORRUPT, &[p(&agg)]);
        if len > 6 {
            assert!(
                out.stderr.contains("corrupt aggregate"),
                "{len}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("download the aggregate"),
                "{}",
                out.stderr
            );
        }
    }
}

#[test]
fn decrypt_of_a_corrupted_ciphertext_is_refused() {
    for f in [sum_fixture(), histogram_fixture()] {
        let bytes = f.bytes();
        // The single ciphertext takes the last 512 bytes.
        for offset in [bytes.len() - 512, bytes.len() - 300, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[offset] ^= 0x10;
            let (_dir, agg) = write_temp("flipped.htly", &bad);
            let out = decrypt(&agg, "json");
            assert_clean_failure(&out, EXIT_CORRUPT, &[p(&agg)]);
        }
    }
}

#[test]
fn decrypt_of_a_corrupted_header_is_refused() {
    let bytes = histogram_fixture().bytes();
    // Layout: magic 0..4, version 4, kind 5, scheme 6, task id 7..39,
    // key fingerprint 39..71, measurement tag 71.
    let cases: [(usize, u8, i32, &str); 6] = [
        (0, 0x01, EXIT_CORRUPT, "not a hetally file"),
        (4, 0x04, EXIT_WRONG_KIND, "format version 6"),
        (5, 0x02, EXIT_WRONG_KIND, "is a public key"),
        (6, 0x04, EXIT_WRONG_KIND, "scheme"),
        (50, 0x01, EXIT_WRONG_KEY, "is not the key"),
        (71, 0xff, EXIT_CORRUPT, "measurement"),
    ];
    for (offset, mask, code, needle) in cases {
        let mut bad = bytes.clone();
        bad[offset] ^= mask;
        let (_dir, agg) = write_temp("header.htly", &bad);
        let out = decrypt(&agg, "json");
        assert_clean_failure(&out, code, &[p(&agg), needle]);
    }
}

#[test]
fn decrypt_of_an_aggregate_with_trailing_bytes_is_refused() {
    let mut bytes = sum_fixture().bytes();
    bytes.extend_from_slice(b"\0junk");
    let (_dir, agg) = write_temp("long.htly", &bytes);
    let out = decrypt(&agg, "json");
    assert_clean_failure(&out, EXIT_CORRUPT, &[p(&agg), "trailing"]);
}

#[test]
fn decrypt_of_an_aggregate_whose_ciphertext_count_breaks_its_layout_is_refused() {
    let f = histogram_fixture();
    let mut file = f.file.clone();
    file.ciphertexts.push(file.ciphertexts[0].clone());
    let (_dir, agg) = write_temp("two.htly", &file.to_bytes());
    let out = decrypt(&agg, "json");
    assert_clean_failure(
        &out,
        EXIT_CORRUPT,
        &[p(&agg), "need 1 ciphertexts, the file has 2"],
    );

    file.ciphertexts.clear();
    let (_dir, agg) = write_temp("none.htly", &file.to_bytes());
    let out = decrypt(&agg, "json");
    assert_clean_failure(&out, EXIT_CORRUPT, &[p(&agg)]);
}

#[test]
fn decrypt_of_values_impossible_for_the_report_count_flags_them() {
    // Ciphertexts valid under the key but a header claiming fewer reports:
    // the buckets cannot add up. The values are still shown, flagged.
    let f = histogram_fixture();
    let mut file = f.file.clone();
    file.report_count = ReportCount::Exact(999);
    let (_dir, agg) = write_temp("count.htly", &file.to_bytes());
    let out = decrypt(&agg, "json");
    assert_eq!(out.code, EXIT_OUT_OF_RANGE, "{}", out.stderr);
    assert_eq!(values_of_json(&out.stdout), f.expected);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["flagged"][0]["kind"], "bucket_total", "{v}");
    for needle in [p(&agg), "add up to 1000", "999", "warning"] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} not in {}",
            out.stderr
        );
    }
}

/// `histogram_fixture` plus one report that set the sign bit of bucket
/// `bucket`'s slot: what a client of a task without input proofs can send.
fn with_out_of_range_report(bucket: u32) -> (AggregateFile, i128) {
    let f = histogram_fixture();
    let Encoding::PaillierPacked { slot_bits: w } = f.file.encoding else {
        unreachable!("a Paillier fixture")
    };
    let pk = paillier_pk(&keys().pk);
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let bad = pk
        .encrypt(&(Integer::from(1) << (w * bucket + w - 1)), &mut rng)
        .unwrap();
    let sum = pk.ciphertext_from_bytes(&f.file.ciphertexts[0]).unwrap();
    let mut file = f.file.clone();
    file.ciphertexts[0] = pk.ciphertext_to_bytes(&pk.add(&sum, &bad));
    file.report_count = ReportCount::Exact(REPORTS as u64 + 1);
    (file, 1i128 << (w - 1))
}

#[test]
fn decrypt_of_an_out_of_range_report_flags_its_slots_and_exits_8() {
    let expected = &histogram_fixture().expected;
    let (file, sign_bit) = with_out_of_range_report(4);
    let (_dir, agg) = write_temp("bad-client.htly", &file.to_bytes());

    let out = decrypt(&agg, "json");
    assert_eq!(out.code, EXIT_OUT_OF_RANGE, "{}", out.stderr);
    let values = values_of_json(&out.stdout);
    // Bucket 4 wrapped negative and borrowed one from bucket 5; every
    // other bucket is exact.
    for (i, (v, e)) in values.iter().zip(expected).enumerate() {
        let want = match i {
            4 => e - sign_bit,
            5 => e + 1,
            _ => *e,
        };
        assert_eq!(*v, want, "bucket {i}");
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let flagged: Vec<(i64, String)> = v["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["index"].as_i64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        flagged,
        [
            (3, "adjacent".to_string()),
            (4, "out_of_range".to_string()),
            (5, "adjacent".to_string())
        ]
    );
    assert_eq!(v["flagged"][1]["slot"], 4);
    assert_eq!(v["flagged"][1]["ciphertext"], 0);
    assert!(
        out.stderr.starts_with("hetally-keytool: warning: "),
        "{}",
        out.stderr
    );
    for needle in [
        p(&agg),
        "3 values are not reliable",
        "bucket 4 (ciphertext 0, slot 4): decodes to",
        "--no-input-proofs",
        "--clamp would move them into 0..=1001",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} not in {}",
            out.stderr
        );
    }

    // CSV marks the flagged rows; --clamp still exits 8, and moves the
    // negative bucket to 0 like any other value.
    let out = keytool([
        "decrypt",
        "--key",
        p(&keys().sk_path),
        "--format",
        "csv",
        "--clamp",
        p(&agg),
    ]);
    assert_eq!(out.code, EXIT_OUT_OF_RANGE, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "index,value,low,high,clamped,flagged");
    assert_eq!(lines[5], "4,0,0,0,true,true");
    assert!(lines[1].ends_with(",false,false"), "{}", lines[1]);
    assert!(
        out.stderr.contains("--clamp moved them into 0..=1001"),
        "{}",
        out.stderr
    );
}

#[test]
fn decrypt_of_a_sum_with_random_bits_is_corrupt_not_out_of_range() {
    // A ciphertext of random bits added to the sum (what a damaged file, or
    // a client encrypting garbage, gives): most slots are out of range, so
    // the file is refused as corrupt rather than decrypted with flags.
    let f = histogram_fixture();
    let pk = paillier_pk(&keys().pk);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut bytes = [0u8; 250];
    rng.fill_bytes(&mut bytes);
    let garbage = pk
        .encrypt(&Integer::from_digits(&bytes, Order::Msf), &mut rng)
        .unwrap();
    let sum = pk.ciphertext_from_bytes(&f.file.ciphertexts[0]).unwrap();
    let mut file = f.file.clone();
    file.ciphertexts[0] = pk.ciphertext_to_bytes(&pk.add(&sum, &garbage));
    let (_dir, agg) = write_temp("garbage.htly", &file.to_bytes());
    let out = decrypt(&agg, "json");
    assert_clean_failure(
        &out,
        EXIT_CORRUPT,
        &[
            p(&agg),
            "corrupt aggregate",
            "random bits",
            "download the aggregate",
        ],
    );
}

#[test]
fn decrypt_with_the_wrong_kind_of_file_is_refused() {
    let k = keys();
    let (_dir, agg) = write_temp("sum.htly", &sum_fixture().bytes());

    let out = keytool(["decrypt", "--key", p(&k.pk_path), p(&agg)]);
    assert_clean_failure(
        &out,
        EXIT_WRONG_KIND,
        &[
            p(&k.pk_path),
            "is a public key",
            "--key must be a secret key",
            "collector.sk",
        ],
    );

    let out = keytool(["decrypt", "--key", p(&agg), p(&agg)]);
    assert_clean_failure(&out, EXIT_WRONG_KIND, &[p(&agg), "is an aggregate"]);

    let out = keytool(["decrypt", "--key", p(&k.sk_path), p(&k.sk_path)]);
    assert_clean_failure(
        &out,
        EXIT_WRONG_KIND,
        &[p(&k.sk_path), "must be an aggregate"],
    );
}

#[test]
fn decrypt_with_a_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.htly");
    let (_agg_dir, agg) = write_temp("sum.htly", &sum_fixture().bytes());

    let out = keytool(["decrypt", "--key", p(&keys().sk_path), p(&missing)]);
    assert_clean_failure(&out, EXIT_IO, &[p(&missing), "cannot read"]);
    let out = keytool(["decrypt", "--key", p(&missing), p(&agg)]);
    assert_clean_failure(&out, EXIT_IO, &[p(&missing), "cannot read"]);
}

#[cfg(unix)]
#[test]
fn decrypt_with_an_unreadable_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    // Root reads mode-000 files regardless; then the binary runs as
    // `nobody` instead, in a directory it may enter.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let sk = dir.path().join("collector.sk");
    let agg = dir.path().join("sum.htly");
    fs::copy(&keys().sk_path, &sk).unwrap();
    fs::write(&agg, sum_fixture().bytes()).unwrap();
    fs::set_permissions(&agg, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&sk, fs::Permissions::from_mode(0o000)).unwrap();
    let as_root = fs::read(&sk).is_ok();

    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hetally-keytool"));
        cmd.args(args).stdin(Stdio::null());
        if as_root {
            const NOBODY: u32 = 65534;
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let out = cmd.output().expect("run hetally-keytool");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    };
    if as_root {
        // The binary must be reachable by `nobody` for this to test anything.
        let probe = run(&["inspect", p(&agg)]);
        if probe.code != 0 {
            eprintln!(
                "skipped: cannot run hetally-keytool as nobody: {}",
                probe.stderr
            );
            return;
        }
    }
    let out = run(&["decrypt", "--key", p(&sk), p(&agg)]);
    assert_clean_failure(&out, EXIT_IO, &[p(&sk), "cannot read", "ermission denied"]);

    fs::set_permissions(&sk, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&agg, fs::Permissions::from_mode(0o000)).unwrap();
    let out = run(&["decrypt", "--key", p(&sk), p(&agg)]);
    assert_clean_failure(&out, EXIT_IO, &[p(&agg), "cannot read", "ermission denied"]);
}

#[test]
fn a_random_key_file_is_corrupt_not_a_panic() {
    // A secret key whose primes are not prime.
    let mut bytes = fs::read(&keys().sk_path).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let len = bytes.len();
    rng.fill_bytes(&mut bytes[9..len - 10]);
    let (_dir, sk) = write_temp("garbage.sk", &bytes);
    let (_agg_dir, agg) = write_temp("sum.htly", &sum_fixture().bytes());
    let out = keytool(["decrypt", "--key", p(&sk), p(&agg)]);
    assert_clean_failure(
        &out,
        EXIT_CORRUPT,
        &[p(&sk), "corrupt secret key", "backup"],
    );
}

// ---------------------------------------------------------------------------
// help

#[test]
fn every_command_has_help_with_an_example() {
    let top = keytool(["--help"]);
    assert_success(&top);
    assert!(top.stdout.contains("Exit codes"), "{}", top.stdout);
    assert!(
        top.stdout
            .contains("8  decrypt wrote the values, but some cannot come from valid reports"),
        "{}",
        top.stdout
    );
    for command in ["keygen", "pubkey", "inspect", "decrypt", "dp-plan"] {
        let out = keytool([command, "--help"]);
        assert_success(&out);
        assert!(out.stdout.contains("Example"), "{command}: {}", out.stdout);
        assert!(top.stdout.contains(command));
    }
}
