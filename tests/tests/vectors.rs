//! Checks every protocol test vector in `test-vectors/v1` (schema in
//! `test-vectors/README.md`), as any implementation of the protocol should:
//!
//! * `task-ids.json`: each definition decodes and hashes to its task id;
//! * `reports/*.json`: each report is reproduced byte for byte from the
//!   task, the values, the time and the randomness tape
//!   (`Task::prepare_from_tape`, with both big-integer backends for
//!   Paillier), and the server's scheme code accepts it (its input proofs
//!   verify);
//! * `aggregates/*.json`: each aggregate file decrypts with the secret key,
//!   as `hetally-keytool decrypt` does, to exactly `values`.
//!
//! The folder must hold exactly the files the generator writes
//! (`hetally_tests::vectors::FILES`): a missing, unreadable or unknown
//! file fails, and so does a field the schema does not have. Running the
//! generator again must write the same bytes.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};
use hetally_client_core::{Arithmetic, CoreError, Task};
use hetally_protocol::aggregate::{AggregateFile, ReportCount};
use hetally_protocol::report::payload_cap;
use hetally_protocol::task::task_id_of;
use hetally_protocol::{Report, ReportContext, TaskDefinition, TaskId};
use hetally_schemes::SecretKeyFile;
use hetally_tests::vectors::{self, FILES};
use serde_json::{Map, Value};

/// Every file below `dir`, as paths relative to it with `/` separators.
fn files_below(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading the folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| anyhow::anyhow!("a file name that is not UTF-8: {n:?}"))?;
        let path = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            files_below(&entry.path(), &format!("{path}/"), out)?;
        } else {
            out.insert(path);
        }
    }
    Ok(())
}

/// A vector file's object, checked to have exactly `fields` (beside
/// `version` 1 and a `description`).
fn read(name: &str, fields: &[&str], optional: &[&str]) -> Result<Map<String, Value>> {
    let path = vectors::dir().join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let Value::Object(map) = serde_json::from_str(&text)? else {
        bail!("not a JSON object");
    };
    ensure!(
        map.get("version") == Some(&Value::from(1)),
        "version is not 1"
    );
    ensure!(
        map.get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty()),
        "no description"
    );
    check_fields(
        &map,
        &[&["version", "description"], fields].concat(),
        optional,
    )?;
    Ok(map)
}

fn check_fields(map: &Map<String, Value>, fields: &[&str], optional: &[&str]) -> Result<()> {
    for f in fields {
        ensure!(map.contains_key(*f), "field {f:?} is missing");
    }
    for k in map.keys() {
        ensure!(
            fields.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "unknown field {k:?}"
        );
    }
    Ok(())
}

fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("{key:?} is not a string"))
}

fn hex_field(map: &Map<String, Value>, key: &str) -> Result<Vec<u8>> {
    let text = str_field(map, key)?;
    ensure!(
        !text.bytes().any(|b| b.is_ascii_uppercase()),
        "{key:?} is not lowercase hex"
    );
    hex::decode(text).with_context(|| format!("{key:?} is not hex"))
}

fn u64_field(map: &Map<String, Value>, key: &str) -> Result<u64> {
    map.get(key)
        .and_then(Value::as_u64)
        .with_context(|| format!("{key:?} is not an unsigned integer"))
}

fn array<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>> {
    let items = map
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("{key:?} is not an array"))?;
    ensure!(!items.is_empty(), "{key:?} is empty");
    Ok(items)
}

fn object(value: &Value) -> Result<&Map<String, Value>> {
    value.as_object().context("a case is not an object")
}

/// The definition of a file, checked against its task id.
fn definition(map: &Map<String, Value>) -> Result<(TaskId, TaskDefinition, Vec<u8>)> {
    let bytes = hex_field(map, "definition")?;
    let id = TaskId::from_str(str_field(map, "task_id")?)?;
    let definition = TaskDefinition::verify(&bytes, &id)?;
    ensure!(
        hex_field(map, "public_key")? == definition.public_key,
        "public_key is not the definition's key"
    );
    ensure!(
        str_field(map, "scheme")? == definition.scheme().to_string(),
        "scheme is not the definition's"
    );
    ensure!(
        str_field(map, "measurement")? == definition.measurement.to_string(),
        "measurement is not the definition's"
    );
    Ok((id, definition, bytes))
}

fn check_task_ids() -> Result<()> {
    let map = read("task-ids.json", &["cases"], &[])?;
    let mut versions = BTreeSet::new();
    let mut schemes = BTreeSet::new();
    for case in array(&map, "cases")? {
        let case = object(case)?;
        check_fields(case, &["name", "definition", "task_id"], &[])?;
        let name = str_field(case, "name")?;
        let bytes = hex_field(case, "definition")?;
        let definition = TaskDefinition::from_bytes(&bytes).with_context(|| name.to_string())?;
        ensure!(
            task_id_of(&bytes).to_string() == str_field(case, "task_id")?,
            "{name}: the definition does not hash to the task id"
        );
        ensure!(
            definition.id() == task_id_of(&bytes),
            "{name}: re-encoding changes the id"
        );
        if !definition.needs_crs() {
            hetally_schemes::check_definition(&definition, None)
                .with_context(|| name.to_string())?;
        }
        versions.insert(bytes[0]);
        schemes.insert(definition.scheme().to_string());
    }
    ensure!(
        versions == BTreeSet::from([1, 2, 3]),
        "task-ids.json covers encoding versions {versions:?}, not 1, 2 and 3"
    );
    ensure!(
        schemes.len() == 2,
        "task-ids.json covers the schemes {schemes:?} only"
    );
    Ok(())
}

fn arithmetics(definition: &TaskDefinition) -> Vec<Arithmetic> {
    match definition.scheme() {
        hetally_protocol::Scheme::Paillier => vec![Arithmetic::Pure, Arithmetic::Gmp],
        _ => vec![Arithmetic::fastest()],
    }
}

fn check_reports(name: &str) -> Result<()> {
    let map = read(
        name,
        &[
            "scheme",
            "measurement",
            "input_proofs",
            "public_key",
            "definition",
            "task_id",
            "cases",
        ],
        &["crs"],
    )?;
    let (id, definition, bytes) = definition(&map)?;
    ensure!(
        map.get("input_proofs").and_then(Value::as_bool) == Some(definition.input_proofs),
        "input_proofs is not the definition's"
    );
    let crs = map
        .contains_key("crs")
        .then(|| hex_field(&map, "crs"))
        .transpose()?;
    ensure!(
        crs.is_some() == definition.needs_crs(),
        "crs is present exactly when the task needs one"
    );
    let aggregator = hetally_schemes::aggregator(&definition, crs.as_deref())?;
    let mut reports = Vec::new();
    for (index, case) in array(&map, "cases")?.iter().enumerate() {
        let case = object(case)?;
        check_fields(
            case,
            &[
                "values",
                "time",
                "randomness",
                "report_id",
                "report_time",
                "report",
            ],
            &[],
        )?;
        let values: Vec<u64> = array(case, "values")?
            .iter()
            .map(|v| v.as_u64().context("a value is not an unsigned integer"))
            .collect::<Result<_>>()?;
        let time = u64_field(case, "time")?;
        let tape = hex_field(case, "randomness")?;
        let expected = hex_field(case, "report")?;
        for arithmetic in arithmetics(&definition) {
            let task = Task::from_definition(&id, &bytes, crs.as_deref(), arithmetic)?;
            let prepared = task
                .prepare_from_tape(&values, time, &tape)
                .with_context(|| format!("case {index}"))?;
            ensure!(
                prepared.bytes == expected,
                "case {index}: the report made from the tape ({arithmetic:?}) differs"
            );
            ensure!(
                prepared.id.0.as_slice() == hex_field(case, "report_id")?,
                "case {index}: report_id"
            );
            ensure!(
                prepared.time == u64_field(case, "report_time")?,
                "case {index}: report_time"
            );
        }
        let report = Report::from_bytes(&expected, payload_cap(aggregator.max_payload_len()))?;
        ensure!(
            report.time == u64_field(case, "report_time")?,
            "case {index}: the envelope's time"
        );
        reports.push(report);
    }
    let batch: Vec<(&[u8], ReportContext<'_>)> = reports
        .iter()
        .map(|r| {
            (
                r.payload.as_slice(),
                ReportContext {
                    task_id: &id,
                    report_id: &r.id,
                    time: r.time,
                },
            )
        })
        .collect();
    for (index, checked) in aggregator.check_to_stored(&batch).into_iter().enumerate() {
        checked.with_context(|| format!("case {index}: the server refuses the report"))?;
    }
    Ok(())
}

fn check_aggregate(name: &str) -> Result<()> {
    let map = read(
        name,
        &[
            "scheme",
            "measurement",
            "secret_key",
            "public_key",
            "definition",
            "task_id",
            "aggregate",
            "report_count",
            "values",
        ],
        &[],
    )?;
    let (id, definition, _) = definition(&map)?;
    let key = SecretKeyFile::from_bytes(&hex_field(&map, "secret_key")?)?;
    ensure!(
        key.public_key().to_bytes() == definition.public_key,
        "the secret key does not belong to the public key"
    );
    let file = AggregateFile::from_bytes(&hex_field(&map, "aggregate")?)?;
    ensure!(file.task_id == id.0, "the aggregate is of another task");
    ensure!(
        file.measurement == definition.measurement,
        "the aggregate's measurement"
    );
    ensure!(
        file.relation == definition.relation,
        "the aggregate's relation"
    );
    ensure!(file.dp == definition.dp, "the aggregate's mechanism");
    let count = u64_field(&map, "report_count")?;
    match file.report_count {
        ReportCount::Exact(n) => ensure!(n == count, "the file counts {n} reports, not {count}"),
        ReportCount::Noisy(_) => ensure!(
            definition.relation == Some(hetally_dp::Relation::AddRemove),
            "a noisy count in a task that is not add-remove"
        ),
    }
    let expected: Vec<i128> = array(&map, "values")?
        .iter()
        .map(|v| {
            v.as_i64()
                .map(i128::from)
                .or_else(|| v.as_u64().map(i128::from))
                .context("a value is not an integer")
        })
        .collect::<Result<_>>()?;
    // What `hetally-keytool decrypt` calls.
    let decrypted = key.decrypt_flagged(&file)?;
    ensure!(
        decrypted.flags.is_empty(),
        "the decrypted values are flagged"
    );
    ensure!(
        decrypted.values == expected,
        "the aggregate decrypts to {:?}, the vector says {expected:?}",
        decrypted.values
    );
    Ok(())
}

#[test]
fn every_vector_checks() {
    let mut present = BTreeSet::new();
    files_below(&vectors::dir(), "", &mut present).expect("the test-vectors/v1 folder is readable");
    let expected: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
    let missing: Vec<_> = expected.difference(&present).collect();
    let unknown: Vec<_> = present.difference(&expected).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "test-vectors/v1 has files missing {missing:?} and unknown files {unknown:?}; \
         regenerate with `cargo run -p hetally-tests --bin gen-test-vectors`"
    );
    let mut failures = Vec::new();
    for name in FILES {
        let result = if *name == "task-ids.json" {
            check_task_ids()
        } else if name.starts_with("reports/") {
            check_reports(name)
        } else if name.starts_with("aggregates/") {
            check_aggregate(name)
        } else {
            Err(anyhow::anyhow!("no check for this file"))
        };
        if let Err(e) = result {
            failures.push(format!("{name}: {e:#}"));
        }
    }
    assert!(
        failures.is_empty(),
        "test vectors failed:\n{}",
        failures.join("\n")
    );
}

/// The report of case 0 of a report vector, and the report prepared from
/// its tape changed by `tape`.
type Prepared = (Vec<u8>, Result<Vec<u8>, CoreError>);

/// [`Prepared`] for the report vector `name`.
fn prepare(name: &str, tape: impl FnOnce(&[u8]) -> Vec<u8>) -> Result<Prepared> {
    let map = read(
        name,
        &[
            "scheme",
            "measurement",
            "input_proofs",
            "public_key",
            "definition",
            "task_id",
            "cases",
        ],
        &["crs"],
    )?;
    let (id, _, bytes) = definition(&map)?;
    let task = Task::from_definition(&id, &bytes, None, Arithmetic::fastest())?;
    let case = object(&array(&map, "cases")?[0])?;
    let values: Vec<u64> = array(case, "values")?
        .iter()
        .map(|v| v.as_u64().context("a value"))
        .collect::<Result<_>>()?;
    let tape = tape(&hex_field(case, "randomness")?);
    let prepared = task
        .prepare_from_tape(&values, u64_field(case, "time")?, &tape)
        .map(|p| p.bytes);
    Ok((hex_field(case, "report")?, prepared))
}

#[test]
fn the_tape_decides_the_report_and_must_be_used_up_exactly() {
    for name in [
        "reports/paillier-count.json",
        "reports/paillier-histogram-proofs.json",
        "reports/tfhe-count.json",
    ] {
        let (expected, same) = prepare(name, <[u8]>::to_vec).unwrap();
        assert_eq!(same.unwrap(), expected, "{name}");
        // Byte 0 is the report id's first, byte 16 the first of the
        // encryption randomness (a Paillier exponent's top byte, or the
        // seed of TFHE-rs's noise generator): changing either changes the
        // report.
        for at in [0, 16] {
            let (_, changed) = prepare(name, |t| {
                let mut t = t.to_vec();
                t[at] ^= 0x01;
                t
            })
            .unwrap();
            assert_ne!(changed.unwrap(), expected, "{name}: byte {at} changed");
        }
        if name.contains("tfhe") {
            // The second seed of a list seeds TFHE-rs's mask generator,
            // which compact public-key encryption does not use
            // (docs/protocol.md 15.3): drawn, but without effect.
            let (_, unchanged) = prepare(name, |t| {
                let mut t = t.to_vec();
                t[47] ^= 0x01;
                t
            })
            .unwrap();
            assert_eq!(
                unchanged.unwrap(),
                expected,
                "{name}: the mask seed changed"
            );
        }
        let (_, short) = prepare(name, |t| t[..t.len() - 1].to_vec()).unwrap();
        assert!(
            matches!(short, Err(CoreError::TapeTooShort { len, needed }) if needed == len + 1),
            "{name}: {short:?}"
        );
        let (_, long) = prepare(name, |t| [t, &[0]].concat()).unwrap();
        assert!(
            matches!(long, Err(CoreError::TapeNotUsedUp { len, used }) if used + 1 == len),
            "{name}: {long:?}"
        );
    }
}

/// The generator is deterministic and in step with the files: regenerating
/// writes exactly the committed bytes (`test-vectors/README.md`).
#[test]
fn regenerating_writes_the_same_bytes() {
    let out = tempfile::tempdir().unwrap();
    vectors::generate(out.path()).unwrap();
    for name in FILES {
        let fresh = std::fs::read(out.path().join(name)).unwrap();
        let committed = std::fs::read(vectors::dir().join(name)).unwrap();
        assert!(
            fresh == committed,
            "{name} differs from what the generator writes now: if the change is intended (a \
             wire-format change, see docs/protocol.md), regenerate with `cargo run -p \
             hetally-tests --bin gen-test-vectors`"
        );
    }
}
