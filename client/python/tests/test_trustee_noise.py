"""Trustee noise (docs/protocol.md 7.2, 5.3, 5.4, 9.2 and 12.1 with the
trustee-noise additions): version-3 task definitions with flags bit 1 and
their two bytes (contributors, honest), the slot width from the tail bound
of a sum of `contributors` shares, and version-3 aggregate files, all
through the independent pure_hetally.py."""

import json
import math
import struct
from fractions import Fraction

import pytest

import pure_hetally as pure
from conftest import VECTORS

LN2_UP = Fraction(6931471805599454, 10**16)


def _threshold_vector() -> bytes:
    doc = json.loads((VECTORS / "task-ids.json").read_text())
    case = next(c for c in doc["cases"] if "3-of-5 threshold key" in c["name"])
    return bytes.fromhex(case["definition"])


THRESHOLD_DEFINITION = _threshold_vector()
THRESHOLD_KEY = pure.read_definition(THRESHOLD_DEFINITION).public_key_file
PLAIN_KEY = bytes.fromhex(
    json.loads((VECTORS / "reports" / "paillier-count.json").read_text())["public_key"]
)


def _magnitude(v: int) -> bytes:
    return v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")


def _rational(num: int, den: int) -> bytes:
    a, b = _magnitude(num), _magnitude(den)
    return struct.pack(">I", len(a)) + a + struct.pack(">I", len(b)) + b


GAUSSIAN_2_40 = b"\x02" + _rational(1, 1 << 40)  # rho = 2^-40
BUDGET_1 = b"\x01" + _rational(1, 1)


def _definition(
    *,
    measurement: bytes = b"\x03" + struct.pack(">I", 16),
    max_batch: int = 1000,
    dp: bytes = GAUSSIAN_2_40,
    budget: bytes = BUDGET_1,
    key: bytes = THRESHOLD_KEY,
    slot_bits: int,
    flags: int = 3,
    relation: int = 2,
    tail: bytes = b"",
    version: int = 3,
) -> bytes:
    """A Paillier definition (7.2); `tail` follows the relation byte."""
    return (
        bytes([version]) + measurement
        + struct.pack(">QQQ", 1, max_batch, 3600)
        + dp + budget + b"\x01"
        + struct.pack(">I", len(key)) + key
        + struct.pack(">I", slot_bits)
        + bytes([flags]) + (bytes([relation]) if version == 3 else b"")
        + tail
    )


def _sigma(v: Fraction) -> Fraction:
    """Section 5.3's rounding, written out again here: exact root of a
    rational square, else the decimal with p places just above the root,
    p = 9 - floor(log10(root))."""
    rn, rd = math.isqrt(v.numerator), math.isqrt(v.denominator)
    if rn * rn == v.numerator and rd * rd == v.denominator:
        return Fraction(rn, rd)
    places = max(9 - math.floor(math.log10(math.sqrt(v))), 0)
    scaled = v * 10 ** (2 * places)
    m = math.isqrt(math.ceil(scaled))
    while m * m < scaled:
        m += 1
    return Fraction(m, 10**places)


def expected_slot_bits(rho_den: int, contributors: int, honest: int, max_batch: int) -> int:
    """A replace-one histogram (L2^2 = 2, max value 1) with gaussian
    rho = 1/rho_den: sigma^2 = rho_den, share = sigma(rho_den / honest),
    t the smallest integer with (t+1)^2 >= 2 * contributors * share^2 *
    65 * ln2_upper, w = bitlen(max_batch + t) + 2."""
    share = _sigma(Fraction(rho_den, honest))
    bound = 2 * contributors * share * share * 65 * LN2_UP
    # the smallest t: start just below the root and step up
    t = max(math.isqrt(math.floor(bound)) - 2, 0)
    while (t + 1) ** 2 < bound:
        t += 1
    return (max_batch + t).bit_length() + 2


def _trustee(contributors: int = 3, honest: int = 2, rho_den: int = 1 << 40, **kw) -> bytes:
    max_batch = kw.get("max_batch", 1000)
    if "slot_bits" not in kw:
        kw["slot_bits"] = expected_slot_bits(rho_den, contributors, honest, max_batch)
    if rho_den != 1 << 40:
        kw.setdefault("dp", b"\x02" + _rational(1, rho_den))
    return _definition(tail=bytes([contributors, honest]), **kw)


def test_the_threshold_vector_is_this_files_encoding_with_dp_none():
    rebuilt = _definition(
        max_batch=1000000, dp=b"\x00", budget=b"\x00", slot_bits=22, flags=1
    )
    assert rebuilt == THRESHOLD_DEFINITION
    d = pure.read_definition(THRESHOLD_DEFINITION)
    assert d.trustee_noise is None
    assert pure.read_public_key(THRESHOLD_KEY).trustees == 5
    assert pure.read_public_key(PLAIN_KEY).trustees is None


def test_the_vector_with_gaussian_trustee_noise_is_accepted():
    # The vector's own bytes: dp none -> gaussian 2^-40, budget 1, flags
    # 03, the two bytes after the relation, slot bits re-derived.
    v = THRESHOLD_DEFINITION
    dp_at = 1 + 5 + 24
    assert v[dp_at : dp_at + 3] == b"\x00\x00\x01"
    w = expected_slot_bits(1 << 40, 3, 2, 1000000)
    modified = (
        v[:dp_at] + GAUSSIAN_2_40 + BUDGET_1 + v[dp_at + 2 : -6]
        + struct.pack(">I", w) + b"\x03\x02" + b"\x03\x02"
    )
    d = pure.read_definition(modified)
    assert d.trustee_noise == (3, 2)
    assert d.input_proofs and d.relation == 2 and d.slot_bits == w
    assert pure.slot_width(d) == w


def test_the_slot_width_uses_the_sum_of_the_shares():
    # Server noise of sigma^2 = 2^40 needs 26-bit slots at max batch 1000;
    # five shares of sigma 2^20 (one honest) need 27.
    assert expected_slot_bits(1 << 40, 1, 1, 1000) == 26
    assert expected_slot_bits(1 << 40, 5, 1, 1000) == 27
    plain = pure.read_definition(_definition(slot_bits=26, flags=1))
    assert plain.trustee_noise is None and pure.slot_width(plain) == 26
    cases = [
        (5, 1, 1 << 40),  # exact share 2^20
        (5, 4, 1 << 40),  # exact share 2^19
        (5, 5, 1 << 40),  # rounded share
        (3, 2, 1 << 40),  # rounded share
        (1, 1, 1 << 40),
        (4, 3, 8),
        (2, 1, 1 << 100),
    ]
    for contributors, honest, rho_den in cases:
        d = pure.read_definition(_trustee(contributors, honest, rho_den))
        assert d.trustee_noise == (contributors, honest)
        assert pure.slot_width(d) == d.slot_bits == expected_slot_bits(
            rho_den, contributors, honest, 1000
        ), (contributors, honest, rho_den)
    wrong = pure.read_definition(_trustee(5, 1, slot_bits=26))
    assert pure.slot_width(wrong) == 27
    # Input proofs are independent of the flag.
    d = pure.read_definition(_trustee(flags=2))
    assert not d.input_proofs and d.trustee_noise == (3, 2)


@pytest.mark.parametrize(
    "what,definition",
    [
        ("honest = 0", _trustee(3, 0, slot_bits=30)),
        ("honest > contributors", _trustee(2, 3)),
        ("contributors > N", _trustee(6, 1)),
        ("contributors 255", _trustee(255, 1)),
        ("dp laplace", _trustee(dp=b"\x01" + _rational(1, 1), slot_bits=20)),
        ("dp none", _trustee(dp=b"\x00", budget=b"\x00", slot_bits=20)),
        ("add-remove", _trustee(relation=1, slot_bits=30)),
        ("not a threshold key", _trustee(key=PLAIN_KEY, slot_bits=27)),
        ("flags 7 (bit 2 set)", _trustee(flags=7)),
        ("flags 4", _definition(flags=4, slot_bits=27)),
        ("a trailing byte", _trustee() + b"\x00"),
        ("honest missing", _trustee()[:-1]),
        ("both bytes missing", _trustee()[:-2]),
        ("the bytes without the flag", _trustee(flags=1)),
        ("version 2 with flags 03", _definition(version=2, flags=3, slot_bits=27)),
    ],
)
def test_a_broken_trustee_definition_is_refused(what, definition):
    with pytest.raises(ValueError):
        pure.read_definition(definition)


def test_the_refusals_are_for_the_rule_broken():
    def message(definition: bytes) -> str:
        with pytest.raises(ValueError) as e:
            pure.read_definition(definition)
        return str(e.value)

    assert "honest" in message(_trustee(3, 0, slot_bits=30))
    assert "honest" in message(_trustee(2, 3))
    assert "threshold key" in message(_trustee(6, 1))
    assert "gaussian" in message(_trustee(dp=b"\x00", budget=b"\x00", slot_bits=20))
    assert "replace-one" in message(_trustee(relation=1, slot_bits=30))
    assert "threshold key" in message(_trustee(key=PLAIN_KEY, slot_bits=27))
    assert "flags" in message(_trustee(flags=7))
    assert "trailing" in message(_trustee() + b"\x00")
    # contributors = N and honest = contributors are allowed
    assert pure.read_definition(_trustee(5, 5)).trustee_noise == (5, 5)


# ---- aggregate files, version 3 (section 12.1) ------------------------------


def _aggregate(
    version: int = 3,
    tail: bytes = b"\x03\x02",
    relation: int = 2,
    dp: bytes = GAUSSIAN_2_40,
    scheme: int = 1,
) -> bytes:
    return (
        pure.MAGIC + bytes([version, 3, scheme])
        + bytes(range(32)) + bytes(32)
        + b"\x03" + struct.pack(">I", 16)
        + b"\x01" + struct.pack(">I", 27)
        + struct.pack(">QQ", 1700000000, 3600)
        + (bytes([relation]) if version >= 2 else b"")
        + (tail if version == 3 else b"")
        + struct.pack(">Q", 1000)
        + dp
        + struct.pack(">I", 1) + struct.pack(">I", 4) + b"\x01\x02\x03\x04"
    )


def test_a_version_3_aggregate_is_read():
    f = pure.read_paillier_aggregate(_aggregate())
    assert f.version == 3
    assert f.trustee_noise == (3, 2)
    assert f.relation == 2 and f.report_count == 1000 and f.dp_tag == 2
    assert f.slot_bits == 27 and f.task_id == bytes(range(32))
    assert f.ciphertexts == [b"\x01\x02\x03\x04"]
    v2 = pure.read_paillier_aggregate(_aggregate(version=2))
    assert v2.version == 2 and v2.trustee_noise is None and v2.report_count == 1000


@pytest.mark.parametrize(
    "what,data",
    [
        ("honest = 0", _aggregate(tail=b"\x03\x00")),
        ("honest > contributors", _aggregate(tail=b"\x02\x03")),
        ("dp laplace", _aggregate(dp=b"\x01" + _rational(1, 1))),
        ("dp none", _aggregate(dp=b"\x00")),
        ("add-remove", _aggregate(relation=1)),
        ("TFHE", _aggregate(scheme=2)),
        ("the two bytes missing", _aggregate(tail=b"")),
        ("a trailing byte", _aggregate() + b"\x00"),
        ("version 4", _aggregate(version=4)),
    ],
)
def test_a_broken_version_3_aggregate_is_refused(what, data):
    with pytest.raises(ValueError):
        pure.read_paillier_aggregate(data)


def test_the_paillier_aggregate_vectors_still_read():
    for path in sorted((VECTORS / "aggregates").glob("paillier-*.json")):
        doc = json.loads(path.read_text())
        f = pure.read_paillier_aggregate(bytes.fromhex(doc["aggregate"]))
        assert f.version in (1, 2) and f.trustee_noise is None, path.name
        sk = pure.read_secret_key(bytes.fromhex(doc["secret_key"]))
        agg = pure.decrypt_aggregate(sk, bytes.fromhex(doc["aggregate"]))
        assert agg.values == doc["values"], path.name
        assert agg.trustee_noise is None


def test_the_task_id_vectors_still_derive_their_slot_widths():
    doc = json.loads((VECTORS / "task-ids.json").read_text())
    for case in doc["cases"]:
        d = pure.read_definition(bytes.fromhex(case["definition"]))
        if d.scheme == 1:
            assert pure.slot_width(d) == d.slot_bits, case["name"]
        if d.trustee_noise is not None:
            assert d.dp_tag == 2 and d.relation == 2, case["name"]
