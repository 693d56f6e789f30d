//! `hetally-keytool` with `--scheme tfhe`: the real binary, real files.

mod common;

use std::fs;

use common::{assert_clean_failure, assert_success, keytool, p};
use hetally_dp::{DpMechanism, Relation};
use hetally_protocol::aggregate::{AggregateFile, Encoding, ReportCount};
use hetally_protocol::{Measurement, ReportContext, ReportId, Scheme, TaskId};
use hetally_schemes::lwe::{Delta, PKE_ZKV2_2048};
use hetally_schemes::{PublicKeyFile, SecretKeyFile, TaskParams};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

#[test]
fn keygen_tfhe_writes_a_private_secret_key_and_a_matching_public_key() {
    let dir = TempDir::new().unwrap();
    let out = keytool(["keygen", "--scheme", "tfhe", "--out", p(dir.path())]);
    assert_success(&out);
    let sk_path = dir.path().join("collector.sk");
    let pk_path = dir.path().join("collector.pk");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&sk_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let sk = SecretKeyFile::read(&sk_path).unwrap();
    let pk = PublicKeyFile::read(&pk_path).unwrap();
    assert_eq!(sk.scheme(), Scheme::Tfhe);
    assert_eq!(sk.public_key(), pk);
    let PublicKeyFile::Tfhe(lwe_pk) = &pk else {
        panic!("not a tfhe key: {pk:?}");
    };
    assert_eq!(lwe_pk.params(), PKE_ZKV2_2048);

    let fp = hex::encode(Sha256::digest(fs::read(&pk_path).unwrap()));
    assert_eq!(fp, hex::encode(pk.fingerprint()));
    assert!(out.stdout.contains("TFHE key pair"), "{}", out.stdout);
    assert!(out.stdout.contains(&fp), "{}", out.stdout);

    // pubkey: of the public key and of the secret key's public half.
    for path in [&pk_path, &sk_path] {
        let out = keytool(["pubkey", p(path)]);
        assert_success(&out);
        assert_eq!(out.stdout, format!("{fp}\n"));
    }
    let out = keytool(["pubkey", "--json", p(&pk_path)]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["scheme"], "tfhe");
    assert_eq!(v["fingerprint"], fp);

    // inspect: scheme, parameter set and fingerprint, never the secret.
    let out = keytool(["inspect", p(&sk_path)]);
    assert_success(&out);
    for needle in ["secret key", "tfhe", "LWE dimension 2048", fp.as_str()] {
        assert!(
            out.stdout.contains(needle),
            "{needle} not in {}",
            out.stdout
        );
    }
    let out = keytool(["inspect", "--json", p(&pk_path)]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "public_key");
    assert_eq!(v["scheme"], "tfhe");
    assert_eq!(v["lwe_dimension"], 2048);
    assert_eq!(v["parameter_set"], PKE_ZKV2_2048.tfhe_name);
    assert_eq!(v["fingerprint"], fp);
    assert_eq!(v["file_bytes"], fs::metadata(&pk_path).unwrap().len());

    // A second run refuses to overwrite.
    let out = keytool(["keygen", "--scheme", "tfhe", "--out", p(dir.path())]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
}

#[test]
fn a_damaged_tfhe_secret_key_is_refused() {
    let dir = TempDir::new().unwrap();
    assert_success(&keytool([
        "keygen",
        "--scheme",
        "tfhe",
        "--out",
        p(dir.path()),
    ]));
    let sk_path = dir.path().join("collector.sk");
    let mut bytes = fs::read(&sk_path).unwrap();
    // The last byte is a secret key coefficient: 2 is not a bit.
    let last = bytes.len() - 1;
    bytes[last] = 2;
    fs::write(&sk_path, &bytes).unwrap();
    let out = keytool(["inspect", p(&sk_path)]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("0 or 1"), "{}", out.stderr);
}

/// A TFHE aggregate made as the server makes one: reports encrypted by the
/// task backend, summed, released with a noise list.
fn tfhe_aggregate(sk_path: &std::path::Path, reports: &[u64]) -> AggregateFile {
    let sk = SecretKeyFile::read(sk_path).unwrap();
    assert_eq!(sk.scheme(), Scheme::Tfhe);
    let pk = sk.public_key();
    let measurement = Measurement::Count;
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let params = TaskParams {
        measurement,
        min_batch_size: 1,
        max_batch_size: Some(1000),
        time_precision: 60,
        dp: DpMechanism::None,
        budget: None,
        input_proofs: false,
        relation: Some(Relation::ReplaceOne),
        trustee_noise: None,
    };
    let (definition, _) =
        hetally_schemes::define_task(pk.to_bytes(), params, 1000, &mut rng).unwrap();
    let client = hetally_schemes::encrypter(&definition, None).unwrap();
    let backend = hetally_schemes::aggregator(&definition, None).unwrap();
    let task_id = TaskId([3; 32]);
    let stored: Vec<Vec<u8>> = reports
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let id = ReportId([i as u8; 16]);
            let ctx = ReportContext {
                task_id: &task_id,
                report_id: &id,
                time: 1_700_000_000,
            };
            let payload = client.encrypt(&[v], &ctx, &mut rng).unwrap();
            backend
                .check_to_stored(&[(&payload, ctx)])
                .pop()
                .unwrap()
                .unwrap()
        })
        .collect();
    let report_count = stored.len() as u64;
    let sum = backend.sum_stored(stored).unwrap();
    AggregateFile {
        task_id: task_id.0,
        scheme: Scheme::Tfhe,
        key_fingerprint: pk.fingerprint(),
        measurement,
        encoding: backend.encoding(),
        batch_start: 1_700_000_000,
        batch_duration: 3600,
        relation: Some(Relation::ReplaceOne),
        report_count: ReportCount::Exact(report_count),
        dp: DpMechanism::None,
        ciphertexts: backend.release(&sum, report_count, &[0], &mut rng).unwrap(),
        trustee_noise: None,
    }
}

#[test]
fn decrypt_tfhe_aggregate_and_refuse_one_over_its_capacity() {
    let dir = TempDir::new().unwrap();
    assert_success(&keytool([
        "keygen",
        "--scheme",
        "tfhe",
        "--out",
        p(dir.path()),
    ]));
    let sk_path = dir.path().join("collector.sk");
    let agg = tfhe_aggregate(&sk_path, &[1, 0, 1, 1, 0, 1, 1]);
    let agg_path = dir.path().join("batch.agg");
    fs::write(&agg_path, agg.to_bytes()).unwrap();
    let out = keytool([
        "decrypt",
        "--key",
        p(&sk_path),
        "--format",
        "json",
        p(&agg_path),
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["values"], serde_json::json!([5]));
    assert_eq!(v["report_count"], 7);

    // The same ciphertexts claiming more reports than Delta holds: the
    // keytool refuses before decrypting (the bias removal and the error
    // bound both depend on the count).
    let Encoding::TfheLists { delta_log2, .. } = agg.encoding else {
        panic!("not a TFHE layout");
    };
    let capacity = PKE_ZKV2_2048.max_encryptions(Delta::new(delta_log2).unwrap());
    let over = AggregateFile {
        report_count: ReportCount::Exact(capacity),
        ..agg
    };
    let over_path = dir.path().join("over.agg");
    fs::write(&over_path, over.to_bytes()).unwrap();
    let out = keytool(["decrypt", "--key", p(&sk_path), p(&over_path)]);
    assert_clean_failure(
        &out,
        4,
        &[&format!("exceed the capacity of {capacity}"), "2^-40"],
    );
}
