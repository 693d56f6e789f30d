"""OpenFHE BFV baseline for hetally: additive aggregation of 1,024-counter
histograms, each report one packed BFV ciphertext.

The context is what a user summing such histograms would pick, and the
cheapest OpenFHE allows for it: BFVRNS, HEStd_128_classic, plaintext modulus
65537 (counts up to 32768 decode exactly), batch size 1,024, multiplicative
depth 0 (only additions), features PKE and LEVELEDSHE (EvalAdd needs the
latter). OpenFHE chooses the ring dimension.

Measured, with the OpenMP thread count taken from OMP_NUM_THREADS:
  (a) one EvalAdd of two fresh ciphertexts: median, p10 and p90 of --adds runs;
  (b) the sum of --count distinct fresh encryptions of random 0/1 vectors,
      acc = EvalAdd(acc, ct), count - 1 additions: wall time and adds/s; the
      decrypted sum must equal the plaintext sum exactly. For reference the same
      sum is also timed with EvalAddInPlace and with one EvalAddMany call
      (which needs ADVANCEDSHE, enabled for it last);
  (c) public-key encryption of one encoded plaintext: median (the packing
      into a plaintext, MakePackedPlaintext, is timed apart);
  (d) the size of one ciphertext in OpenFHE's binary serialization.
Times include the Python binding's call overhead (about a microsecond).
The last line printed is `RESULT {json}`.
"""

import argparse
import gc
import importlib.metadata
import json
import os
import random
import statistics
import sys
import time

import openfhe

SLOTS = 1024
PLAINTEXT_MODULUS = 65537


def quantile(sorted_values, q):
    """Nearest-rank quantile of an already sorted list."""
    i = round(q * (len(sorted_values) - 1))
    return sorted_values[i]


def make_context():
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(PLAINTEXT_MODULUS)
    params.SetBatchSize(SLOTS)
    params.SetMultiplicativeDepth(0)
    params.SetSecurityLevel(openfhe.SecurityLevel.HEStd_128_classic)
    cc = openfhe.GenCryptoContext(params)
    cc.Enable(openfhe.PKESchemeFeature.PKE)
    cc.Enable(openfhe.PKESchemeFeature.LEVELEDSHE)
    return cc


def decrypt_counts(cc, secret_key, ct):
    pt = cc.Decrypt(secret_key, ct)
    pt.SetLength(SLOTS)
    return list(pt.GetPackedValue())


def timed(fn):
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        out = fn()
        return out, time.perf_counter_ns() - t0
    finally:
        gc.enable()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000,
                    help="ciphertexts encrypted and summed in (b) and (c); at least 2, "
                         "at most 32767 so the counts decode exactly (default 1000)")
    ap.add_argument("--adds", type=int, default=2000,
                    help="repetitions of the single EvalAdd timing (a) (default 2000)")
    ap.add_argument("--seed", type=int, default=1,
                    help="seed of the random 0/1 vectors (not of OpenFHE's own "
                         "randomness) (default 1)")
    args = ap.parse_args()
    if not 2 <= args.count <= (PLAINTEXT_MODULUS - 1) // 2:
        ap.error("--count must be between 2 and 32767")
    if args.adds < 10:
        ap.error("--adds must be at least 10")

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    wheel_version = importlib.metadata.version("openfhe")
    rng = random.Random(args.seed)

    cc = make_context()
    keys = cc.KeyGen()
    ring_dimension = cc.GetRingDimension()
    print(f"OpenFHE {wheel_version} (wrapper {getattr(openfhe, '__version__', '?')}), "
          f"Python {sys.version.split()[0]}, OMP_NUM_THREADS={threads}", flush=True)
    print(f"BFVRNS, HEStd_128_classic, t={PLAINTEXT_MODULUS}, depth 0, "
          f"batch {cc.GetBatchSize()}, ring dimension {ring_dimension}", flush=True)

    # (c) encryption of --count distinct random 0/1 vectors.
    vectors = [[rng.getrandbits(1) for _ in range(SLOTS)] for _ in range(args.count)]
    truth = [sum(col) for col in zip(*vectors)]
    encode_ns, encrypt_ns, cts = [], [], []
    gc.collect()
    gc.disable()
    for v in vectors:
        t0 = time.perf_counter_ns()
        pt = cc.MakePackedPlaintext(v)
        t1 = time.perf_counter_ns()
        ct = cc.Encrypt(keys.publicKey, pt)
        t2 = time.perf_counter_ns()
        encode_ns.append(t1 - t0)
        encrypt_ns.append(t2 - t1)
        cts.append(ct)
    gc.enable()
    if decrypt_counts(cc, keys.secretKey, cts[0]) != vectors[0]:
        raise AssertionError("a fresh ciphertext does not decrypt to its vector")

    # (d) binary serialization of one ciphertext.
    ciphertext_bytes = len(openfhe.Serialize(cts[0], openfhe.BINARY))

    # (a) one EvalAdd of two fresh ciphertexts; the result is dropped each time,
    # so its allocation and release are part of the figure.
    a, b = cts[0], cts[1]
    for _ in range(min(100, args.adds)):
        cc.EvalAdd(a, b)
    add_ns = []
    gc.collect()
    gc.disable()
    for _ in range(args.adds):
        t0 = time.perf_counter_ns()
        cc.EvalAdd(a, b)
        add_ns.append(time.perf_counter_ns() - t0)
    gc.enable()
    add_ns.sort()

    # (b) the sum of all --count ciphertexts, count - 1 additions.
    def chain():
        acc = cc.EvalAdd(cts[0], cts[1])
        for ct in cts[2:]:
            acc = cc.EvalAdd(acc, ct)
        return acc

    total, sum_ns = timed(chain)
    got = decrypt_counts(cc, keys.secretKey, total)
    assert got == truth, "EvalAdd sum: decrypted counts differ from the plaintext sum"

    acc = cts[0].Clone()  # not timed: EvalAddInPlace must not change cts[0]

    def in_place():
        for ct in cts[1:]:
            cc.EvalAddInPlace(acc, ct)
        return acc

    total, inplace_ns = timed(in_place)
    assert decrypt_counts(cc, keys.secretKey, total) == truth, \
        "EvalAddInPlace sum: decrypted counts differ from the plaintext sum"

    # EvalAddMany is gated behind ADVANCEDSHE; enabling a feature changes no
    # parameter, so the figures above are unaffected.
    cc.Enable(openfhe.PKESchemeFeature.ADVANCEDSHE)
    total, many_ns = timed(lambda: cc.EvalAddMany(cts))
    assert decrypt_counts(cc, keys.secretKey, total) == truth, \
        "EvalAddMany sum: decrypted counts differ from the plaintext sum"

    adds = args.count - 1
    result = {
        "openfhe_version": wheel_version,
        "ring_dimension": ring_dimension,
        "batch_size": cc.GetBatchSize(),
        "omp_threads": threads,
        "add_median_us": round(statistics.median(add_ns) / 1e3, 3),
        "add_p10_us": round(quantile(add_ns, 0.10) / 1e3, 3),
        "add_p90_us": round(quantile(add_ns, 0.90) / 1e3, 3),
        "sum_count": args.count,
        "sum_seconds": round(sum_ns / 1e9, 6),
        "adds_per_second": round(adds / (sum_ns / 1e9), 1),
        "encrypt_median_ms": round(statistics.median(encrypt_ns) / 1e6, 4),
        "ciphertext_bytes": ciphertext_bytes,
        # Extras, beyond the keys above.
        "encode_median_ms": round(statistics.median(encode_ns) / 1e6, 4),
        "sum_inplace_seconds": round(inplace_ns / 1e9, 6),
        "sum_addmany_seconds": round(many_ns / 1e9, 6),
        "plaintext_modulus": PLAINTEXT_MODULUS,
        "multiplicative_depth": 0,
        "security": "HEStd_128_classic",
        "add_reps": args.adds,
    }

    print(f"(a) EvalAdd, {args.adds} runs: median {result['add_median_us']:.2f} us "
          f"(p10 {result['add_p10_us']:.2f}, p90 {result['add_p90_us']:.2f})")
    print(f"(b) sum of {args.count} ciphertexts ({adds} EvalAdd): "
          f"{result['sum_seconds'] * 1e3:.1f} ms, {result['adds_per_second']:,.0f} adds/s, "
          f"decrypted sum exact")
    print(f"    same sum with EvalAddInPlace: {inplace_ns / 1e6:.1f} ms "
          f"({adds / (inplace_ns / 1e9):,.0f} adds/s); one EvalAddMany: {many_ns / 1e6:.1f} ms")
    print(f"(c) encrypt: median {result['encrypt_median_ms']:.3f} ms "
          f"(packing into a plaintext apart: {result['encode_median_ms']:.3f} ms)")
    print(f"(d) ciphertext, binary serialization: {ciphertext_bytes:,} bytes "
          f"for {SLOTS} counters (ring dimension {ring_dimension})")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
