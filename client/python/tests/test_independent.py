"""The independent pure-Python implementation (pure_hetally.py, from
docs/protocol.md alone) against the SDK's Rust core, on fresh keys and
random tapes: task ids, slot widths and report bytes must agree exactly.
(test_vectors.py checks both against the recorded vectors, and test_e2e.py
uploads hand-built reports to a real server.)"""

import os
import random

import pytest

import hetally
from hetally import _core

import pure_hetally as pure
from test_e2e import run


@pytest.fixture(scope="module")
def public_key(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("keys")
    run("hetally-keytool", "keygen", "--scheme", "paillier", "--out", str(out))
    return (out / "collector.pk").read_bytes()


CASES = [
    ("count", False, [1]),
    ("sum:8", False, [201]),
    ("histogram:5", False, [0, 0, 0, 1, 0]),
    ("sumvec:200:16", False, [random.Random(i).randrange(1 << 16) for i in range(200)]),
    ("count", True, [1]),
    ("count", True, [0]),
    ("sum:3", True, [5]),
    ("histogram:4", True, [0, 1, 0, 0]),
]


@pytest.mark.parametrize("measurement,proofs,values", CASES, ids=lambda c: str(c)[:20])
def test_same_bytes_as_the_core(public_key, measurement, proofs, values):
    definition = pure.encode_definition(measurement, public_key, input_proofs=proofs)
    task_id = pure.task_id(definition)
    # The core accepts the definition: same task id, same slot width.
    task = _core.Task.from_definition(task_id, definition)
    assert task.measurement == measurement and task.input_proofs == proofs
    tape = os.urandom(pure.tape_length(definition))
    time = 1_700_000_123
    expected = _core._prepare_from_tape(task, values, time, tape)
    assert pure.build_report(definition, values, time, tape) == expected.bytes


def test_a_wrong_slot_width_is_refused_by_the_core(public_key):
    definition = bytearray(pure.encode_definition("count", public_key, input_proofs=False))
    # The slot width is the u32 before the flags and relation bytes.
    definition[-3] += 1
    with pytest.raises(hetally.TaskMismatch):
        _core.Task.from_definition(pure.task_id(bytes(definition)), bytes(definition))
