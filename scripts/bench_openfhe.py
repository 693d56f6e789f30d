"""OpenFHE BFV additions of 1,024-counter ciphertexts: the baseline for
hetally's TFHE backend (BENCHMARKS.md, scripts/bench-tfhe-compare.sh).

A user aggregating 1,024-bucket histograms with OpenFHE would encrypt each
report as one packed BFV ciphertext (batch size 1,024) and add ciphertexts.
The context is the cheapest OpenFHE allows for that: BFVRNS, 128-bit
classic security, plaintext modulus 65537, multiplicative depth 0, PKE and
leveled SHE only. Measured: one EvalAdd (median of many), summing --count
fresh ciphertexts (checked exactly against the plaintext sum), encryption,
and the serialized ciphertext size. OMP_NUM_THREADS is taken from the
environment. The last line is `RESULT {json}`.
"""

import argparse
import json
import os
import random
import statistics
import time

import openfhe as o


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000,
                    help="ciphertexts summed in the throughput run (default 1000)")
    ap.add_argument("--adds", type=int, default=2000,
                    help="repetitions of the single-add timing (default 2000)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    slots = 1024

    params = o.CCParamsBFVRNS()
    params.SetPlaintextModulus(65537)
    params.SetMultiplicativeDepth(0)
    params.SetBatchSize(slots)
    params.SetSecurityLevel(o.SecurityLevel.HEStd_128_classic)
    cc = o.GenCryptoContext(params)
    cc.Enable(o.PKESchemeFeature.PKE)
    cc.Enable(o.PKESchemeFeature.LEVELEDSHE)
    keys = cc.KeyGen()

    def fresh():
        values = [0] * slots
        values[rng.randrange(slots)] = 1
        return values, cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(values))

    encrypt_ns = []
    truth = [0] * slots
    cts = []
    for _ in range(args.count):
        t0 = time.perf_counter_ns()
        values, ct = fresh()
        encrypt_ns.append(time.perf_counter_ns() - t0)
        truth = [a + b for a, b in zip(truth, values)]
        cts.append(ct)

    a, b = cts[0], cts[1]
    add_ns = []
    for _ in range(args.adds):
        t0 = time.perf_counter_ns()
        cc.EvalAdd(a, b)
        add_ns.append(time.perf_counter_ns() - t0)

    t0 = time.perf_counter_ns()
    acc = cts[0]
    for ct in cts[1:]:
        acc = cc.EvalAdd(acc, ct)
    sum_s = (time.perf_counter_ns() - t0) / 1e9
    plain = cc.Decrypt(keys.secretKey, acc)
    plain.SetLength(slots)
    got = list(plain.GetPackedValue())
    assert got == truth, "OpenFHE sum does not match the plaintext sum"

    size = len(o.Serialize(cts[0], o.BINARY))
    result = {
        "openfhe_version": o.__version__ if hasattr(o, "__version__") else "1.6.1.0.22.4",
        "ring_dimension": cc.GetRingDimension(),
        "batch_size": slots,
        "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "add_median_us": statistics.median(add_ns) / 1e3,
        "add_p10_us": percentile(add_ns, 0.1) / 1e3,
        "add_p90_us": percentile(add_ns, 0.9) / 1e3,
        "sum_count": args.count,
        "sum_seconds": sum_s,
        "adds_per_second": (args.count - 1) / sum_s,
        "encrypt_median_ms": statistics.median(encrypt_ns) / 1e6,
        "ciphertext_bytes": size,
    }
    print(f"OpenFHE BFV, ring dimension {result['ring_dimension']}, {slots} slots, "
          f"OMP_NUM_THREADS={result['omp_threads']}")
    print(f"  EvalAdd: median {result['add_median_us']:.1f} us "
          f"(p10 {result['add_p10_us']:.1f}, p90 {result['add_p90_us']:.1f})")
    print(f"  sum of {args.count}: {sum_s:.3f} s, {result['adds_per_second']:.0f} adds/s (exact)")
    print(f"  encrypt: median {result['encrypt_median_ms']:.2f} ms; ciphertext {size} bytes")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
