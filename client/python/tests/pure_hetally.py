"""An independent implementation of hetally's Paillier client and of the
collector's decryption, in pure Python, written from docs/protocol.md alone
(not from the Rust sources): key files (section 6), task definitions, ids
and slot widths (7, 9.2 with 5.3 and 5.4), the report envelope (8),
Paillier payloads with and without input proofs and their verification
(9), and Paillier and TFHE aggregate files (12, with 10.1 to 10.3). The
randomness a client draws is read from a tape in the order section 15.3
gives.

The tests compare what it computes with the test vectors and with the Rust
core, and upload a report it built to a real server. It is test code: it
checks what it needs and no more, and it is slow.
"""

import base64
import hashlib
import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Optional, Tuple

TASK_DOMAIN = b"hetally task definition v1"
PROOF_DOMAIN = b"hetally paillier input proof v1"
MAGIC = b"HTLY"
SHORT_EXPONENT_BITS = 256
MASK_BITS = 536
CHALLENGE_BITS = 128
CHALLENGE_BYTES = 16
RESPONSE_BYTES = 68


def b64url(data: bytes) -> str:
    """Base64url without padding (section 2.4)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def task_id(definition: bytes) -> str:
    """Section 7.4."""
    return b64url(hashlib.sha256(TASK_DOMAIN + definition).digest())


class Reader:
    """Reads the primitives of section 3, failing on truncation."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def var_bytes(self, cap: int) -> bytes:
        n = self.u32()
        if n > cap:
            raise ValueError(f"length {n} over the cap {cap}")
        return self.take(n)

    def big(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing bytes")


# ---- section 4: measurements --------------------------------------------


@dataclass
class Measurement:
    kind: str  # count, sum, histogram, sumvec
    length: int
    value_bits: int
    encoding: bytes

    @property
    def max_value(self) -> int:
        return (1 << self.value_bits) - 1

    @property
    def text(self) -> str:
        """The text form of section 4.3."""
        if self.kind == "count":
            return "count"
        if self.kind == "sum":
            return f"sum:{self.value_bits}"
        if self.kind == "histogram":
            return f"histogram:{self.length}"
        return f"sumvec:{self.length}:{self.value_bits}"

    @property
    def one_hot(self) -> bool:
        return self.kind == "histogram"


def read_measurement(r: Reader) -> Measurement:
    start = r.pos
    tag = r.u8()
    if tag == 1:
        kind, length, bits = "count", 1, 1
    elif tag == 2:
        kind, length, bits = "sum", 1, r.u32()
    elif tag == 3:
        kind, length, bits = "histogram", r.u32(), 1
    elif tag == 4:
        kind = "sumvec"
        length = r.u32()
        bits = r.u32()
    else:
        raise ValueError(f"measurement tag {tag}")
    return Measurement(kind, length, bits, r.data[start : r.pos])


def parse_measurement(text: str) -> Measurement:
    """The text form of section 4.3 (for tests that start from text)."""
    parts = text.strip().split(":")
    if parts[0] == "count":
        enc = b"\x01"
    elif parts[0] == "sum":
        enc = b"\x02" + struct.pack(">I", int(parts[1]))
    elif parts[0] == "histogram":
        enc = b"\x03" + struct.pack(">I", int(parts[1]))
    elif parts[0] == "sumvec":
        enc = b"\x04" + struct.pack(">II", int(parts[1]), int(parts[2]))
    else:
        raise ValueError(text)
    return read_measurement(Reader(enc))


# ---- section 6: keys ------------------------------------------------------


@dataclass
class PaillierPublicKey:
    modulus_bits: int
    n: int
    h: int
    file: bytes
    trustees: Optional[int] = None  # N of a threshold key (6.8), else None

    @property
    def n2(self) -> int:
        return self.n * self.n

    @property
    def ct_len(self) -> int:
        return (self.n2.bit_length() + 7) // 8

    @property
    def H(self) -> int:
        return pow(self.h, self.n, self.n2)

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.file).digest()


@dataclass
class PaillierSecretKey:
    public: PaillierPublicKey
    p: int
    q: int


def _header(r: Reader, *kinds: int) -> int:
    if r.take(4) != MAGIC:
        raise ValueError("not a hetally file")
    if r.u8() != 1:
        raise ValueError("file format version")
    kind = r.u8()
    if kind not in kinds:
        raise ValueError("wrong file kind")
    return kind


def read_public_key(data: bytes) -> PaillierPublicKey:
    """Section 6.1 and 6.2; a threshold public key (6.8) is one too. TFHE
    keys, threshold ones included, are read by read_tfhe_public_key."""
    r = Reader(data)
    kind = _header(r, 1, 4)
    if r.u8() != 1:
        raise ValueError("not a Paillier key")
    bits = r.u16()
    if bits not in (2048, 3072):
        raise ValueError("modulus size")
    n = r.big(bits // 8)
    h = r.big(bits // 8)
    trustees = None
    if kind == 4:
        trustees, threshold = r.u16(), r.u16()
        if not 2 <= threshold <= trustees <= 64:
            raise ValueError("threshold")
        n2 = n * n
        for _ in range(trustees + 1):
            v = r.big((n2.bit_length() + 7) // 8)
            if not 0 < v < n2 or math.gcd(v, n) != 1:
                raise ValueError("verification value")
    r.end()
    if n.bit_length() != bits or n % 2 == 0 or not 1 < h < n or math.gcd(h, n) != 1:
        raise ValueError("invalid Paillier public key")
    return PaillierPublicKey(bits, n, h, data, trustees)


def read_secret_key(data: bytes) -> PaillierSecretKey:
    """Section 6.3, with the public key rebuilt as section 6.7 says."""
    r = Reader(data)
    _header(r, 2)
    if r.u8() != 1:
        raise ValueError("not a Paillier key")
    bits = r.u16()
    p = r.big(bits // 16)
    q = r.big(bits // 16)
    h = r.big(bits // 8)
    r.end()
    n = p * q
    body = struct.pack(">H", bits) + n.to_bytes(bits // 8, "big") + h.to_bytes(bits // 8, "big")
    public = read_public_key(MAGIC + b"\x01\x01" + b"\x01" + body)
    return PaillierSecretKey(public, p, q)


# ---- section 7: task definitions -------------------------------------------


@dataclass
class Definition:
    version: int
    measurement: Measurement
    min_batch_size: int
    max_batch_size: int
    time_precision: int
    dp_tag: int
    dp_param: Optional[Tuple[int, int]]
    scheme: int
    public_key_file: bytes
    slot_bits: Optional[int]
    input_proofs: bool
    relation: Optional[int]
    # (contributors, honest) when version 3's flags bit 1 is set
    trustee_noise: Optional[Tuple[int, int]] = None


def _check_trustee_noise(
    contributors: int, honest: int, dp_tag: int, relation: Optional[int], scheme: int
) -> None:
    """The rules every trustee-noise task and aggregate obey."""
    if not 1 <= honest <= contributors:
        raise ValueError("trustee noise needs 1 <= honest <= contributors")
    if dp_tag != 2 or relation != 2:
        raise ValueError("trustee noise needs gaussian noise and replace-one")
    if scheme != 1:
        raise ValueError("trustee noise needs the Paillier scheme")


def _rational(r: Reader) -> Tuple[int, int]:
    num = int.from_bytes(r.var_bytes(64), "big")
    den = int.from_bytes(r.var_bytes(64), "big")
    if den == 0:
        raise ValueError("zero denominator")
    return num, den


def read_definition(data: bytes) -> Definition:
    """Section 7.2 (Paillier and TFHE layouts of 7.3)."""
    r = Reader(data)
    version = r.u8()
    if version not in (1, 2, 3):
        raise ValueError(f"definition version {version}")
    m = read_measurement(r)
    min_batch, max_batch, precision = r.u64(), r.u64(), r.u64()
    dp_tag = r.u8()
    dp_param = None
    if dp_tag in (1, 2):
        dp_param = _rational(r)
    elif dp_tag != 0:
        raise ValueError("dp tag")
    budget_flag = r.u8()
    if budget_flag == 1:
        _rational(r)
    elif budget_flag != 0:
        raise ValueError("budget flag")
    scheme = r.u8()
    key = r.var_bytes(64 << 20)
    if key[6:7] != bytes([scheme]):
        raise ValueError("the definition's scheme differs from its public key's")
    slot_bits = None
    if scheme == 1:
        slot_bits = r.u32()
    elif scheme == 2:
        # a TFHE public key, plain (6.5) or threshold (6.10)
        read_tfhe_public_key(key)
        r.u8()
        if r.u8() == 1:
            r.take(32)
    else:
        raise ValueError("scheme")
    flags = 0
    relation = None
    trustee_noise = None
    if version >= 2:
        flags = r.u8()
        # version 3: bit 0 input proofs, bit 1 trustee noise
        if flags not in ((1,) if version == 2 else (0, 1, 2, 3)):
            raise ValueError("flags")
    if version == 3:
        relation = r.u8()
        if relation not in (1, 2):
            raise ValueError("relation")
        if flags & 2:
            trustee_noise = (r.u8(), r.u8())
    r.end()
    if trustee_noise is not None:
        contributors, honest = trustee_noise
        _check_trustee_noise(contributors, honest, dp_tag, relation, scheme)
        trustees = read_public_key(key).trustees
        if trustees is None or contributors > trustees:
            raise ValueError("trustee noise needs a threshold key of at least `contributors` trustees")
    return Definition(
        version, m, min_batch, max_batch, precision, dp_tag, dp_param, scheme, key, slot_bits,
        flags & 1 == 1, relation, trustee_noise,
    )


LN2_UP = Fraction(6931471805599454, 10**16)


def _isqrt_ceil(x: int) -> int:
    """The smallest integer m with m^2 >= x (x >= 0)."""
    m = math.isqrt(x)
    return m if m * m >= x else m + 1


def sensitivities(m: Measurement, relation: Optional[int]) -> Tuple[int, int]:
    """L1 and L2^2 of section 5.3 (relation 1 add-remove, 2 replace-one,
    None legacy)."""
    mx = m.max_value
    if m.kind == "count":
        return (2, 2) if relation == 1 else (1, 1)
    if m.kind == "histogram":
        return (2, 2) if relation in (1, 2) else (1, 1)
    n = m.length  # sum (length 1) and sumvec
    l1, l2 = n * mx, n * mx * mx
    return (l1 + 1, l2 + 1) if relation == 1 else (l1, l2)


def sigma_at_least(v: Fraction) -> Fraction:
    """Sigma for the variance v (section 5.3): the exact square root if v
    is the square of a rational, else the smallest decimal with about 10
    significant digits above it."""
    rn, rd = math.isqrt(v.numerator), math.isqrt(v.denominator)
    if rn * rn == v.numerator and rd * rd == v.denominator:
        return Fraction(rn, rd)
    a = math.sqrt(float(v.numerator) / float(v.denominator))
    mag = math.floor(math.log10(a)) if a > 0 else 0
    p = min(max(9 - mag, 0), 300)
    return Fraction(_isqrt_ceil(math.ceil(v * 10 ** (2 * p))), 10**p)


def tail_bound(d: Definition, bits: int = 64) -> int:
    """tail_bound(bits) of section 5.4 for the task's noise (section 5.3).
    With trustee noise the release holds the sum of `contributors` shares,
    each of parameter sigma_at_least(sigma^2 / honest): the Gaussian bound
    with sigma^2 replaced by contributors * share^2."""
    if d.dp_tag == 0:
        return 0
    B = (bits + 1) * LN2_UP
    l1, l2 = sensitivities(d.measurement, d.relation)
    param = Fraction(*d.dp_param)
    if d.dp_tag == 1:
        scale = l1 / param
        t = math.ceil(scale * B)
    else:
        v = Fraction(l2) / (2 * param)
        if d.trustee_noise is None:
            variance = sigma_at_least(v) ** 2
        else:
            contributors, honest = d.trustee_noise
            share = sigma_at_least(v / honest)
            if share > 1 << 100:
                raise ValueError("a trustee's noise share has sigma over 2^100")
            variance = contributors * share * share
        t = _isqrt_ceil(math.ceil(2 * variance * B)) - 1
    return min(t, (1 << 128) - 1)


def slot_width(d: Definition) -> int:
    """The slot width w of section 9.2."""
    t = tail_bound(d)
    mx = d.measurement.max_value
    if d.relation == 1:
        max_abs = (d.max_batch_size + t) * mx + t
    else:
        max_abs = d.max_batch_size * mx + t
    return max(max_abs.bit_length(), 1) + 2


def encode_definition(
    measurement: str,
    public_key_file: bytes,
    *,
    min_batch_size: int = 1,
    max_batch_size: int = 4294967295,
    time_precision: int = 60,
    input_proofs: bool = True,
) -> bytes:
    """The version-3 encoding (section 7.2) of a Paillier task without DP,
    replace-one, with the slot width derived as section 9.2 says."""
    m = parse_measurement(measurement)
    pk = read_public_key(public_key_file)
    d = Definition(3, m, min_batch_size, max_batch_size, time_precision, 0, None, 1,
                   public_key_file, None, input_proofs, 2)
    w = slot_width(d)
    if not 2 <= w <= 127 or w + 2 > pk.modulus_bits:
        raise ValueError(f"slot width {w} out of range")
    return (
        b"\x03" + m.encoding
        + struct.pack(">QQQ", min_batch_size, max_batch_size, time_precision)
        + b"\x00" + b"\x00" + b"\x01"
        + struct.pack(">I", len(public_key_file)) + public_key_file
        + struct.pack(">I", w)
        + (b"\x01" if input_proofs else b"\x00")
        + b"\x02"
    )


def tape_length(definition: bytes) -> int:
    """How many random bytes a Paillier report of this task draws
    (section 15): the report id, then per packed plaintext a 256-bit
    exponent (no proofs), or per bit an exponent, a mask, a challenge share
    and a response, and for a histogram one more mask (proofs)."""
    d = read_definition(definition)
    pk = read_public_key(d.public_key_file)
    m = d.measurement
    if not d.input_proofs:
        k = slots_per_plaintext(pk.modulus_bits, d.slot_bits)
        return 16 + 32 * -(-m.length // k)
    per_bit = 32 + MASK_BITS // 8 + CHALLENGE_BYTES + MASK_BITS // 8
    return 16 + m.length * m.value_bits * per_bit + (MASK_BITS // 8 if m.one_hot else 0)


def slots_per_plaintext(modulus_bits: int, w: int) -> int:
    return (modulus_bits - 2) // w


# ---- sections 8, 9: reports -----------------------------------------------


class Tape:
    """Random bytes drawn in order from a test vector's tape (section 15)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("the tape is too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def bits(self, bits: int) -> int:
        """A uniform integer below 2^bits: ceil(bits/8) bytes, big-endian,
        with the excess high bits of the first byte cleared."""
        nbytes = (bits + 7) // 8
        x = int.from_bytes(self.take(nbytes), "big")
        return x & ((1 << bits) - 1)

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} bytes of the tape left over")


def envelope(report_id: bytes, time: int, payload: bytes) -> bytes:
    """Section 8.1."""
    return b"\x01" + report_id + struct.pack(">Q", time) + struct.pack(">I", len(payload)) + payload


def pack(values: List[int], w: int, k: int) -> List[int]:
    """Section 9.2: plaintexts of k slots of w bits, least significant slot
    first."""
    out = []
    for j in range(0, len(values), k):
        p = 0
        for t, v in enumerate(values[j : j + k]):
            p += v << (w * t)
        out.append(p)
    return out


def encrypt_fast(pk: PaillierPublicKey, m: int, alpha: int) -> int:
    """Section 9.1, fast form."""
    return (1 + (m % pk.n) * pk.n) * pow(pk.H, alpha, pk.n2) % pk.n2


def report_without_proofs(
    definition: bytes, values: List[int], unix_time: int, tape: Tape
) -> bytes:
    """A Paillier report without input proofs (sections 8.1, 9.2, 9.3)."""
    d = read_definition(definition)
    pk = read_public_key(d.public_key_file)
    time = unix_time - unix_time % d.time_precision
    report_id = tape.take(16)
    w = d.slot_bits
    k = slots_per_plaintext(pk.modulus_bits, w)
    plaintexts = pack(values, w, k)
    payload = struct.pack(">I", len(plaintexts))
    for p in plaintexts:
        alpha = tape.bits(SHORT_EXPONENT_BITS)
        payload += encrypt_fast(pk, p, alpha).to_bytes(pk.ct_len, "big")
    tape.finish()
    return envelope(report_id, time, payload)


def _field(label: bytes, value: bytes) -> bytes:
    return struct.pack(">I", len(label)) + label + struct.pack(">Q", len(value)) + value


def report_with_proofs(definition: bytes, values: List[int], unix_time: int, tape: Tape) -> bytes:
    """A Paillier report with input proofs (sections 9.4 to 9.6)."""
    d = read_definition(definition)
    pk = read_public_key(d.public_key_file)
    n, n2, H, L = pk.n, pk.n2, pk.H, pk.ct_len
    Q = 1 << CHALLENGE_BITS
    m = d.measurement
    time = unix_time - unix_time % d.time_precision
    report_id = tape.take(16)
    bits = [(v >> j) & 1 for v in values for j in range(m.value_bits)]
    cts, commitments, secrets = [], [], []
    for b in bits:
        alpha = tape.bits(SHORT_EXPONENT_BITS)
        c = encrypt_fast(pk, b, alpha)
        s = tape.bits(MASK_BITS)
        e_f = tape.bits(CHALLENGE_BITS)
        z_f = tape.bits(MASK_BITS)
        f = 1 - b
        u_f = c if f == 0 else c * (1 - n) % n2
        a_f = pow(H, z_f, n2) * pow(pow(u_f, -1, n2), e_f, n2) % n2
        a_b = pow(H, s, n2)
        a = [0, 0]
        a[b], a[f] = a_b, a_f
        cts.append(c)
        commitments.append(a)
        secrets.append((b, alpha, s, e_f, z_f))
    a_sum = None
    if m.one_hot:
        s_sum = tape.bits(MASK_BITS)
        a_sum = pow(H, s_sum, n2)
    tape.finish()
    transcript = _field(b"domain", PROOF_DOMAIN)
    transcript += _field(b"task id", hashlib.sha256(TASK_DOMAIN + definition).digest())
    transcript += _field(b"report id", report_id)
    transcript += _field(b"time", struct.pack(">Q", time))
    transcript += _field(b"public key", pk.fingerprint)
    transcript += _field(b"measurement", m.encoding)
    transcript += _field(b"bits", struct.pack(">Q", len(bits)))
    for c in cts:
        transcript += _field(b"ciphertext", c.to_bytes(L, "big"))
    for a0, a1 in commitments:
        transcript += _field(b"a0", a0.to_bytes(L, "big")) + _field(b"a1", a1.to_bytes(L, "big"))
    if a_sum is not None:
        transcript += _field(b"a sum", a_sum.to_bytes(L, "big"))
    e = int.from_bytes(hashlib.sha256(transcript).digest()[:CHALLENGE_BYTES], "big")
    payload = b"\x01" + struct.pack(">I", len(bits))
    payload += b"".join(c.to_bytes(L, "big") for c in cts)
    for (b, alpha, s, e_f, z_f), a in zip(secrets, commitments):
        e_b = (e - e_f) % Q
        z = [0, 0]
        z[b], z[1 - b] = s + e_b * alpha, z_f
        e0 = e_b if b == 0 else e_f
        payload += a[0].to_bytes(L, "big") + a[1].to_bytes(L, "big")
        payload += e0.to_bytes(CHALLENGE_BYTES, "big")
        payload += z[0].to_bytes(RESPONSE_BYTES, "big") + z[1].to_bytes(RESPONSE_BYTES, "big")
    if a_sum is not None:
        z_sum = s_sum + e * sum(sec[1] for sec in secrets)
        payload += a_sum.to_bytes(L, "big") + z_sum.to_bytes(RESPONSE_BYTES, "big")
    return envelope(report_id, time, payload)


def _transcript_challenge(definition, pk, m, report_id, time, cts, commitments, a_sum) -> int:
    """The challenge e of section 9.6."""
    L = pk.ct_len
    t = _field(b"domain", PROOF_DOMAIN)
    t += _field(b"task id", hashlib.sha256(TASK_DOMAIN + definition).digest())
    t += _field(b"report id", report_id)
    t += _field(b"time", struct.pack(">Q", time))
    t += _field(b"public key", pk.fingerprint)
    t += _field(b"measurement", m.encoding)
    t += _field(b"bits", struct.pack(">Q", len(cts)))
    for c in cts:
        t += _field(b"ciphertext", c.to_bytes(L, "big"))
    for a0, a1 in commitments:
        t += _field(b"a0", a0.to_bytes(L, "big")) + _field(b"a1", a1.to_bytes(L, "big"))
    if a_sum is not None:
        t += _field(b"a sum", a_sum.to_bytes(L, "big"))
    return int.from_bytes(hashlib.sha256(t).digest()[:CHALLENGE_BYTES], "big")


def verify_report(definition: bytes, report: bytes) -> bool:
    """Section 9.7 for a task with input proofs: decodes the envelope and
    the payload and checks every equation. Returns False for a proof that
    does not verify; raises ValueError for a report that does not decode."""
    d = read_definition(definition)
    pk = read_public_key(d.public_key_file)
    n, n2, H, L = pk.n, pk.n2, pk.H, pk.ct_len
    Q = 1 << CHALLENGE_BITS
    m = d.measurement
    r = Reader(report)
    if r.u8() != 1:
        raise ValueError("report version")
    report_id = r.take(16)
    time = r.u64()
    p = Reader(r.var_bytes(16 << 20))
    r.end()
    if p.u8() != 1:
        raise ValueError("proof payload version")
    bits = p.u32()
    if bits != m.length * m.value_bits:
        raise ValueError("wrong ciphertext count")
    cts = [p.big(L) for _ in range(bits)]
    proofs = []
    for _ in range(bits):
        a0, a1 = p.big(L), p.big(L)
        e0 = p.big(CHALLENGE_BYTES)
        z0, z1 = p.big(RESPONSE_BYTES), p.big(RESPONSE_BYTES)
        proofs.append((a0, a1, e0, z0, z1))
    a_sum = z_sum = None
    if m.one_hot:
        a_sum, z_sum = p.big(L), p.big(RESPONSE_BYTES)
    p.end()
    elements = cts + [x for pr in proofs for x in pr[:2]] + ([a_sum] if a_sum is not None else [])
    if any(not 1 <= x < n2 or math.gcd(x, n) != 1 for x in elements):
        return False
    e = _transcript_challenge(
        definition, pk, m, report_id, time, cts, [pr[:2] for pr in proofs], a_sum
    )
    g = lambda x: (1 + (x % n) * n) % n2  # noqa: E731  g^x, section 9.5
    for c, (a0, a1, e0, z0, z1) in zip(cts, proofs):
        e1 = (e - e0) % Q
        if pow(H, z0, n2) != a0 * pow(c, e0, n2) % n2:
            return False
        if pow(H, z1, n2) * g(e1) % n2 != a1 * pow(c, e1, n2) % n2:
            return False
    if a_sum is not None:
        C = 1
        for c in cts:
            C = C * c % n2
        if pow(H, z_sum, n2) * g(e) % n2 != a_sum * pow(C, e, n2) % n2:
            return False
    return True


def build_report(definition: bytes, values: List[int], unix_time: int, tape: bytes) -> bytes:
    d = read_definition(definition)
    if d.scheme != 1:
        raise ValueError("only Paillier reports are built here")
    build = report_with_proofs if d.input_proofs else report_without_proofs
    return build(definition, values, unix_time, Tape(tape))


# ---- section 12: aggregates ------------------------------------------------


def decrypt(sk: PaillierSecretKey, c: int) -> int:
    """Section 9.1, decryption by CRT; the plaintext read as signed."""
    p, q = sk.p, sk.q
    n = p * q
    g = n + 1

    def half(pr: int) -> int:
        pr2 = pr * pr
        lp = lambda x: (x - 1) // pr  # noqa: E731
        hp = pow(lp(pow(g, pr - 1, pr2)), -1, pr)
        return lp(pow(c, pr - 1, pr2)) * hp % pr

    mp, mq = half(p), half(q)
    m = mp + p * ((mq - mp) * pow(p, -1, q) % q)
    return m - n if m > n // 2 else m


def unpack(p: int, w: int, count: int) -> List[int]:
    """Section 9.2, unpacking, failing on overflow."""
    out = []
    for _ in range(count):
        low = p % (1 << w)
        v = low if low < (1 << (w - 1)) else low - (1 << w)
        out.append(v)
        p = (p - v) >> w
    if p != 0:
        raise ValueError("the plaintext overflowed its slots")
    return out


@dataclass
class Aggregate:
    task_id: bytes
    measurement: Measurement
    slot_bits: int
    batch_start: int
    batch_duration: int
    relation: Optional[int]
    report_count: int
    values: List[int]
    # (contributors, honest) of a version-3 (trustee-noise) aggregate
    trustee_noise: Optional[Tuple[int, int]] = None


@dataclass
class PaillierAggregateFile:
    """The fields of a Paillier aggregate file (section 12.1), not decrypted."""
    version: int
    task_id: bytes
    key_fingerprint: bytes
    measurement: Measurement
    slot_bits: int
    batch_start: int
    batch_duration: int
    relation: Optional[int]
    trustee_noise: Optional[Tuple[int, int]]
    report_count: int
    dp_tag: int
    ciphertexts: List[bytes]


def read_paillier_aggregate(data: bytes) -> PaillierAggregateFile:
    """Sections 12.1 and 12.2 for a Paillier aggregate: format version 1
    (legacy), 2 (with the relation) or 3 (version 2 with the trustee-noise
    bytes `contributors`, `honest` after the relation)."""
    r = Reader(data)
    if r.take(4) != MAGIC:
        raise ValueError("not a hetally file")
    version = r.u8()
    if version not in (1, 2, 3) or r.u8() != 3:
        raise ValueError("not an aggregate file")
    if r.u8() != 1:
        raise ValueError("not a Paillier aggregate")
    tid = r.take(32)
    fingerprint = r.take(32)
    m = read_measurement(r)
    if r.u8() != 1:
        raise ValueError("encoding tag")
    w = r.u32()
    start, duration = r.u64(), r.u64()
    relation = r.u8() if version >= 2 else None
    trustee_noise = (r.u8(), r.u8()) if version == 3 else None
    count = r.u64()
    if relation == 1 and count >= 1 << 63:
        count -= 1 << 64
    dp = r.u8()
    if dp in (1, 2):
        _rational(r)
    elif dp != 0:
        raise ValueError("dp tag")
    n_ct = r.u32()
    cts = [r.var_bytes(64 << 20) for _ in range(n_ct)]
    r.end()
    if trustee_noise is not None:
        _check_trustee_noise(*trustee_noise, dp, relation, 1)
    return PaillierAggregateFile(
        version, tid, fingerprint, m, w, start, duration, relation, trustee_noise, count, dp, cts
    )


def decrypt_aggregate(sk: PaillierSecretKey, data: bytes) -> Aggregate:
    """Sections 12.1 to 12.3."""
    f = read_paillier_aggregate(data)
    if f.key_fingerprint != sk.public.fingerprint:
        raise ValueError("the aggregate is under another key")
    m, w, cts = f.measurement, f.slot_bits, f.ciphertexts
    pk = sk.public
    k = slots_per_plaintext(pk.modulus_bits, w)
    if len(cts) != -(-m.length // k):
        raise ValueError("ciphertext count")
    values: List[int] = []
    for j, ct in enumerate(cts):
        if len(ct) != pk.ct_len:
            raise ValueError("ciphertext length")
        c = int.from_bytes(ct, "big")
        if not 1 <= c < pk.n2 or math.gcd(c, pk.n) != 1:
            raise ValueError("invalid ciphertext")
        values += unpack(decrypt(sk, c), w, min(k, m.length - j * k))
    return Aggregate(
        f.task_id, m, w, f.batch_start, f.batch_duration, f.relation, f.report_count, values,
        f.trustee_noise,
    )


# ---- TFHE (sections 6.5, 6.6, 6.10, 10.1 to 10.3, 12.4) ---------------------

TFHE_N = 2048
MASK64 = (1 << 64) - 1


@dataclass
class TfhePublicKey:
    parameter_set: int
    a: List[int]
    b: List[int]
    file: bytes
    trustees: Optional[int] = None  # N of a threshold key (6.10), else None
    min_lambda: Optional[int] = None  # a threshold key's least smudging lambda

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.file).digest()


def read_tfhe_public_key(data: bytes) -> TfhePublicKey:
    """Sections 6.1 and 6.5; a threshold public key (6.10) is one too: the
    same body, then u16 trustees (2 to 64) and u8 min_lambda (0 to 40)."""
    r = Reader(data)
    kind = _header(r, 1, 4)
    if r.u8() != 2:
        raise ValueError("not a TFHE key")
    pset = r.u8()
    if pset != 1:
        raise ValueError("parameter set")
    a = list(struct.unpack(f">{TFHE_N}Q", r.take(8 * TFHE_N)))
    b = list(struct.unpack(f">{TFHE_N}Q", r.take(8 * TFHE_N)))
    trustees = min_lambda = None
    if kind == 4:
        trustees, min_lambda = r.u16(), r.u8()
        if not 2 <= trustees <= 64:
            raise ValueError(f"trustees: a threshold TFHE key has 2 to 64, not {trustees}")
        if min_lambda > 40:
            raise ValueError(f"min_lambda: at most 40, not {min_lambda}")
    r.end()
    return TfhePublicKey(pset, a, b, data, trustees, min_lambda)


@dataclass
class TfheSecretKey:
    parameter_set: int
    a: List[int]
    b: List[int]
    s: List[int]
    public_file: bytes

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.public_file).digest()


def read_tfhe_secret_key(data: bytes) -> TfheSecretKey:
    """Sections 6.5 and 6.6 (the coefficient check of 6.6 is left out)."""
    r = Reader(data)
    _header(r, 2)
    if r.u8() != 2:
        raise ValueError("not a TFHE key")
    body_start = r.pos
    pset = r.u8()
    if pset != 1:
        raise ValueError("parameter set")
    a = [r.u64() for _ in range(TFHE_N)]
    b = [r.u64() for _ in range(TFHE_N)]
    public_body = data[body_start : r.pos]
    s = list(r.take(TFHE_N))
    r.end()
    if any(x > 1 for x in s):
        raise ValueError("secret key coefficient")
    return TfheSecretKey(pset, a, b, s, MAGIC + b"\x01\x01" + b"\x02" + public_body)


def tfhe_list_lengths(length: int) -> List[int]:
    """Section 10.3."""
    lists = -(-length // TFHE_N)
    base, extra = divmod(length, lists)
    return [base + 1 if i < extra else base for i in range(lists)]


def _times_ones(p: List[int]) -> List[int]:
    """p * (1, 1, ..., 1) in R = Z_(2^64)[X]/(X^n + 1): coefficient i is the
    sum of p_k for k <= i minus the sum of p_k for k > i."""
    total = sum(p)
    out, prefix = [], 0
    for x in p:
        prefix += x
        out.append((2 * prefix - total) & MASK64)
    return out


def _phase(mask: List[int], body: int, j: int, s: List[int]) -> int:
    """phase_j of section 10.2: body_j minus <mask * X^j, s>, mod 2^64."""
    n = len(mask)
    acc = 0
    for i in range(n):
        if s[i]:
            acc += mask[i - j] if i >= j else -mask[n + i - j]
    return (body - acc) & MASK64


def _signed64(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _decode_delta(x: int, d: int) -> int:
    """Section 10.1."""
    r = ((x + (1 << (d - 1))) & MASK64) >> d
    bits = 64 - d
    r &= (1 << bits) - 1
    return r - (1 << bits) if r >= 1 << (bits - 1) else r


def decrypt_tfhe_aggregate(sk: TfheSecretKey, data: bytes) -> Aggregate:
    """Sections 12.1, 12.2 and 12.4 (without the capacity check of step 3)."""
    r = Reader(data)
    if r.take(4) != MAGIC:
        raise ValueError("not a hetally file")
    version = r.u8()
    # Version 3 (trustee noise) is Paillier only.
    if version not in (1, 2) or r.u8() != 3:
        raise ValueError("not an aggregate file")
    if r.u8() != 2:
        raise ValueError("not a TFHE aggregate")
    tid = r.take(32)
    if r.take(32) != sk.fingerprint:
        raise ValueError("the aggregate is under another key")
    m = read_measurement(r)
    if r.u8() != 2:
        raise ValueError("encoding tag")
    if r.u8() != sk.parameter_set:
        raise ValueError("parameter set")
    d = r.u32()
    if not 27 <= d <= 60:
        raise ValueError("delta_log2")
    start, duration = r.u64(), r.u64()
    relation = r.u8() if version == 2 else None
    if relation == 1:
        raise ValueError("a TFHE aggregate cannot be add-remove")
    count = r.u64()
    dp = r.u8()
    if dp in (1, 2):
        _rational(r)
    lengths = tfhe_list_lengths(m.length)
    if r.u32() != len(lengths):
        raise ValueError("ciphertext count")
    lists = []
    for want in lengths:
        lr = Reader(r.var_bytes(64 << 20))
        if lr.u32() != want:
            raise ValueError("list length")
        mask = [lr.u64() for _ in range(TFHE_N)]
        bodies = [lr.u64() for _ in range(want)]
        lr.end()
        lists.append((mask, bodies))
    r.end()
    k = min(count + 1, MASK64)
    # Step 4: the bias vector, only at the positions the lists use.
    bias_mask = _times_ones(sk.a)
    bias_t = _times_ones(sk.b)
    values = []
    for mask, bodies in lists:
        for j, body in enumerate(bodies):
            e_j = _signed64(_phase(bias_mask, bias_t[TFHE_N - 1 - j], j, sk.s))
            mean = abs(k * e_j) // 2 * (1 if e_j >= 0 else -1)  # truncated towards zero
            x = (_phase(mask, body, j, sk.s) - mean) & MASK64
            values.append(_decode_delta(x, d))
    return Aggregate(tid, m, 0, start, duration, relation, count, values)


def check_tfhe_report(definition: bytes, report: bytes, tape: bytes, unix_time: int) -> None:
    """What an implementation without TFHE-rs can check of a TFHE report
    vector (section 15.3): the envelope (id from the tape, time), the tape's
    length, and the list encodings of sections 10.2 and 10.6."""
    d = read_definition(definition)
    if d.scheme != 2:
        raise ValueError("not a TFHE task")
    lengths = tfhe_list_lengths(d.measurement.length)
    if len(tape) != 16 + 32 * len(lengths):
        raise ValueError("tape length")
    r = Reader(report)
    if r.u8() != 1:
        raise ValueError("report version")
    if r.take(16) != tape[:16]:
        raise ValueError("the report id is not the tape's first 16 bytes")
    if r.u64() != unix_time - unix_time % d.time_precision:
        raise ValueError("report time")
    p = Reader(r.var_bytes(16 << 20))
    r.end()
    for want in lengths:
        if p.u32() != want:
            raise ValueError("list length")
        p.take(8 * (TFHE_N + want))
        if d.input_proofs:
            p.var_bytes(64 << 10)
    p.end()
