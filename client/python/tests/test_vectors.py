"""The test vectors of test-vectors/v1 (docs/protocol.md), checked through
the SDK's Rust core and through the independent pure-Python
implementation (pure_hetally.py)."""

import json
from pathlib import Path

import pytest

import hetally
from hetally import _core

import pure_hetally as pure
from conftest import VECTORS


def _load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    assert doc["version"] == 1, f"{path}: version {doc['version']}"
    assert doc["description"], f"{path}: no description"
    return doc


def _files(sub: str) -> list:
    return sorted((VECTORS / sub).glob("*.json")) if (VECTORS / sub).is_dir() else []


REPORT_FILES = _files("reports")
AGGREGATE_FILES = _files("aggregates")
REPORT_CASES = [
    pytest.param(path, i, id=f"{path.stem}-{i}")
    for path in REPORT_FILES
    for i in range(len(_load(path)["cases"]))
]
PROOF_CASES = [
    p for p in REPORT_CASES
    if _load(p.values[0])["scheme"] == "paillier" and _load(p.values[0])["input_proofs"]
]


def test_the_vectors_are_there():
    """The folder exists and has every kind of file (a missing folder must
    fail, not pass with nothing checked)."""
    assert (VECTORS / "task-ids.json").is_file(), f"{VECTORS}/task-ids.json is missing"
    assert PROOF_CASES, "no Paillier report vectors with input proofs"
    assert REPORT_FILES, f"no report vectors under {VECTORS}/reports"
    assert AGGREGATE_FILES, f"no aggregate vectors under {VECTORS}/aggregates"
    schemes = {_load(p)["scheme"] for p in REPORT_FILES}
    assert "paillier" in schemes


def test_task_ids():
    doc = _load(VECTORS / "task-ids.json")
    assert doc["cases"]
    for case in doc["cases"]:
        definition = bytes.fromhex(case["definition"])
        # Independently: SHA-256 over the domain tag and the definition.
        assert pure.task_id(definition) == case["task_id"], case["name"]
        d = pure.read_definition(definition)
        if d.scheme == 1:
            # Section 9.2 (with 5.3 and 5.4 for DP): the slot width derived
            # independently is the one the definition states.
            assert pure.slot_width(d) == d.slot_bits, case["name"]
        if d.scheme == 2 and not hetally.TFHE_SUPPORTED:
            with pytest.raises(hetally.UnsupportedTask, match="TFHE tasks are not supported"):
                _core.Task.from_definition(case["task_id"], definition)
            continue
        if d.scheme == 2 and d.input_proofs:
            continue  # needs its CRS, which task-ids.json does not carry
        task = _core.Task.from_definition(case["task_id"], definition)
        assert task.id == case["task_id"]
        assert task.definition == definition


def test_a_definition_that_does_not_hash_to_the_id_is_refused():
    doc = _load(VECTORS / "task-ids.json")
    case = next(
        c for c in doc["cases"] if pure.read_definition(bytes.fromhex(c["definition"])).scheme == 1
    )
    definition = bytes.fromhex(case["definition"])
    other = next(c["task_id"] for c in doc["cases"] if c["task_id"] != case["task_id"])
    with pytest.raises(hetally.TaskMismatch, match="does not match task id"):
        _core.Task.from_definition(other, definition)


def _report_task(doc: dict) -> "_core.Task":
    crs = bytes.fromhex(doc["crs"]) if doc.get("crs") else None
    return _core.Task.from_definition(doc["task_id"], bytes.fromhex(doc["definition"]), crs)


@pytest.mark.parametrize("path,index", REPORT_CASES)
def test_report_vector_through_the_core(path: Path, index: int):
    doc = _load(path)
    case = doc["cases"][index]
    if doc["scheme"] == "tfhe" and not hetally.TFHE_SUPPORTED:
        pytest.skip("TFHE vector: this build of the SDK has no `tfhe` feature (docs/python.md)")
    task = _report_task(doc)
    assert task.measurement == doc["measurement"]
    assert task.input_proofs == doc["input_proofs"]
    tape = bytes.fromhex(case["randomness"])
    report = _core._prepare_from_tape(task, case["values"], case["time"], tape)
    assert report.bytes.hex() == case["report"]
    assert report.id == pure.b64url(bytes.fromhex(case["report_id"]))
    assert report.time == case["report_time"]
    # A tape must be used up exactly.
    with pytest.raises(hetally.HetallyError, match="tape"):
        _core._prepare_from_tape(task, case["values"], case["time"], tape + b"\x00")
    with pytest.raises(hetally.HetallyError, match="tape"):
        _core._prepare_from_tape(task, case["values"], case["time"], tape[:-1])


@pytest.mark.parametrize("path,index", REPORT_CASES)
def test_report_vector_independently(path: Path, index: int):
    """pure_hetally.py, written from docs/protocol.md, rebuilds the exact
    report bytes from the tape."""
    doc = _load(path)
    case = doc["cases"][index]
    definition = bytes.fromhex(doc["definition"])
    if doc["scheme"] == "tfhe":
        # TFHE-rs's own sampling cannot be redone without it (section
        # 15.3): the envelope, the tape's length and the lists are checked.
        assert pure.task_id(definition) == doc["task_id"]
        pure.check_tfhe_report(
            definition, bytes.fromhex(case["report"]), bytes.fromhex(case["randomness"]),
            case["time"],
        )
        return
    assert pure.task_id(definition) == doc["task_id"]
    assert pure.read_definition(definition).public_key_file.hex() == doc["public_key"]
    report = pure.build_report(
        definition, case["values"], case["time"], bytes.fromhex(case["randomness"])
    )
    assert report.hex() == case["report"]


@pytest.mark.parametrize("path,index", PROOF_CASES)
def test_report_vector_proofs_verify_independently(path: Path, index: int):
    """The independent verifier (section 9.7) accepts every proof of the
    Paillier vectors with input proofs, and refuses each one with a
    response changed by one."""
    doc = _load(path)
    definition = bytes.fromhex(doc["definition"])
    report = bytes.fromhex(doc["cases"][index]["report"])
    assert pure.verify_report(definition, report)
    # The last byte is the low byte of the last response (z1 of the last
    # bit, or z_sum of a histogram).
    tampered = report[:-1] + bytes([report[-1] ^ 1])
    assert not pure.verify_report(definition, tampered)


@pytest.mark.parametrize("path", AGGREGATE_FILES, ids=lambda p: p.stem)
def test_aggregate_vector_independently(path: Path):
    doc = _load(path)
    if doc["scheme"] == "tfhe":
        sk = pure.read_tfhe_secret_key(bytes.fromhex(doc["secret_key"]))
        assert sk.public_file.hex() == doc["public_key"], "section 6.7: rebuilt public key"
        agg = pure.decrypt_tfhe_aggregate(sk, bytes.fromhex(doc["aggregate"]))
        assert pure.b64url(agg.task_id) == doc["task_id"]
        assert agg.report_count == doc["report_count"]
        assert agg.values == doc["values"]
        return
    sk = pure.read_secret_key(bytes.fromhex(doc["secret_key"]))
    assert sk.public.file.hex() == doc["public_key"], "section 6.7: rebuilt public key"
    definition = bytes.fromhex(doc["definition"])
    assert pure.task_id(definition) == doc["task_id"]
    agg = pure.decrypt_aggregate(sk, bytes.fromhex(doc["aggregate"]))
    assert pure.b64url(agg.task_id) == doc["task_id"]
    assert agg.relation == pure.read_definition(definition).relation
    if agg.relation != 1:
        # Add-remove files carry the noisy count (section 11.2) where the
        # vector gives the exact one.
        assert agg.report_count == doc["report_count"]
    assert agg.values == doc["values"]
    assert agg.measurement.text == doc["measurement"]
