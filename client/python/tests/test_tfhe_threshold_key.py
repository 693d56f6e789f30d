"""Threshold TFHE public keys (docs/protocol.md 6.10): kind 04, scheme 02,
the TFHE public key body of 6.5, then u16 trustees (2 to 64) and u8
min_lambda (0 to 40), nothing after; read alone and inside TFHE task
definitions (7.2), all through the independent pure_hetally.py. The key
bytes are synthetic: only the length of the polynomials is checked."""

import hashlib
import struct

import pytest

import pure_hetally as pure

N = 2048
BODY = b"\x01" + bytes((i * 131 + 7) & 255 for i in range(16 * N))


def _key(trustees: int = 3, min_lambda: int = 16, *, kind: int = 4, tail=None) -> bytes:
    """A TFHE public key file: header, scheme 02, body, and for kind 4
    (unless `tail` replaces them) trustees and min_lambda."""
    if tail is None:
        tail = struct.pack(">HB", trustees, min_lambda) if kind == 4 else b""
    return pure.MAGIC + bytes([1, kind, 2]) + BODY + tail


def _definition(
    key: bytes,
    *,
    scheme: int = 2,
    dp: bytes = b"\x00",
    budget: bytes = b"\x00",
    flags: int = 0,
    tail: bytes = b"",
) -> bytes:
    """A version-3 TFHE definition (7.2, 7.3): histogram:16, max batch 300,
    Delta 2^52 (the example of 10.4), no CRS, replace-one; `tail` follows
    the relation byte."""
    return (
        b"\x03" + b"\x03" + struct.pack(">I", 16)
        + struct.pack(">QQQ", 1, 300, 3600)
        + dp + budget + bytes([scheme])
        + struct.pack(">I", len(key)) + key
        + b"\x34\x00"
        + bytes([flags, 2])
        + tail
    )


def test_a_threshold_key_is_read_with_its_trustees_and_min_lambda():
    key = _key(3, 16)
    assert len(key) == 32779
    pk = pure.read_tfhe_public_key(key)
    assert (pk.trustees, pk.min_lambda, pk.parameter_set) == (3, 16, 1)
    assert len(pk.a) == len(pk.b) == N
    assert pk.a[0] == int.from_bytes(BODY[1:9], "big")
    assert pk.b[-1] == int.from_bytes(BODY[-8:], "big")
    # The fingerprint hashes the whole threshold file (6.7, 6.10).
    assert pk.fingerprint == hashlib.sha256(key).digest()
    assert pk.fingerprint != pure.read_tfhe_public_key(_key(kind=1)).fingerprint
    for trustees, min_lambda in [(2, 0), (64, 40), (5, 1)]:
        pk = pure.read_tfhe_public_key(_key(trustees, min_lambda))
        assert (pk.trustees, pk.min_lambda) == (trustees, min_lambda)


def test_a_plain_tfhe_key_has_no_trustees():
    key = _key(kind=1)
    assert len(key) == 32776
    pk = pure.read_tfhe_public_key(key)
    assert pk.trustees is None and pk.min_lambda is None


GOOD = _key()
BAD_KEYS = [
    ("N = 0", _key(0), "trustees"),
    ("N = 1", _key(1), "trustees"),
    ("N = 65", _key(65), "trustees"),
    ("N = 65535", _key(65535), "trustees"),
    ("min_lambda = 41", _key(3, 41), "min_lambda"),
    ("min_lambda = 255", _key(3, 255), "min_lambda"),
    ("min_lambda missing", GOOD[:-1], "truncated"),
    ("N and min_lambda missing", GOOD[:-3], "truncated"),
    ("a truncated polynomial", GOOD[:1000], "truncated"),
    ("a trailing byte", GOOD + b"\x00", "trailing"),
    ("a kind-1 key with N and min_lambda after it", _key(kind=1, tail=b"\x00\x03\x10"), "trailing"),
    ("parameter set 2", GOOD[:7] + b"\x02" + GOOD[8:], "parameter set"),
    ("a Paillier scheme byte", GOOD[:6] + b"\x01" + GOOD[7:], "not a TFHE key"),
    ("kind 5 (a key share)", _key(kind=5, tail=b"\x00\x03\x10"), "kind"),
]


@pytest.mark.parametrize("what,key,message", BAD_KEYS, ids=[c[0] for c in BAD_KEYS])
def test_a_broken_threshold_key_is_refused(what, key, message):
    with pytest.raises(ValueError, match=message):
        pure.read_tfhe_public_key(key)


def test_the_paillier_reader_refuses_a_threshold_tfhe_key():
    with pytest.raises(ValueError, match="not a Paillier key"):
        pure.read_public_key(GOOD)


def test_a_definition_under_a_threshold_key_is_read():
    for trustees, min_lambda in [(3, 16), (2, 0), (64, 40)]:
        key = _key(trustees, min_lambda)
        d = pure.read_definition(_definition(key))
        assert d.scheme == 2 and d.public_key_file == key
        assert d.trustee_noise is None and d.relation == 2 and not d.input_proofs
        pk = pure.read_tfhe_public_key(d.public_key_file)
        assert (pk.trustees, pk.min_lambda) == (trustees, min_lambda)
    d = pure.read_definition(_definition(_key(kind=1)))
    assert pure.read_tfhe_public_key(d.public_key_file).trustees is None


@pytest.mark.parametrize("what,key,message", BAD_KEYS, ids=[c[0] for c in BAD_KEYS])
def test_a_definition_under_a_broken_threshold_key_is_refused(what, key, message):
    with pytest.raises(ValueError):
        pure.read_definition(_definition(key))


def test_a_definition_whose_scheme_is_not_its_keys_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        pure.read_definition(_definition(GOOD, scheme=1))


def test_trustee_noise_under_a_threshold_tfhe_key_is_refused():
    # Gaussian rho = 1/8 with budget 1, replace-one, flags 02 and
    # (contributors, honest) = (2, 1): all trustee noise needs but a
    # Paillier threshold key (7.2).
    gaussian = b"\x02" + struct.pack(">IBIB", 1, 1, 1, 8)
    budget = b"\x01" + struct.pack(">IBIB", 1, 1, 1, 1)
    for key in [_key(3, 16), _key(64, 0), _key(kind=1)]:
        with pytest.raises(ValueError, match="Paillier"):
            pure.read_definition(
                _definition(key, dp=gaussian, budget=budget, flags=2, tail=b"\x02\x01")
            )
    # Without the flag the same task is read.
    d = pure.read_definition(_definition(GOOD, dp=gaussian, budget=budget))
    assert d.dp_tag == 2 and d.trustee_noise is None


def test_a_tfhe_report_is_checked_under_a_threshold_key():
    # Section 10.6 without input proofs: one list of 16 values.
    definition = _definition(GOOD)
    tape = bytes(range(16)) + bytes(32)
    lists = struct.pack(">I", 16) + bytes(8 * (N + 16))
    report = (
        b"\x01" + tape[:16] + struct.pack(">Q", 1700002800)
        + struct.pack(">I", len(lists)) + lists
    )
    pure.check_tfhe_report(definition, report, tape, 1700002800 + 59)
    with pytest.raises(ValueError):
        pure.check_tfhe_report(_definition(GOOD + b"\x00"), report, tape, 1700002800)
