#!/usr/bin/env python3
"""python-paillier (phe with gmpy2) at 2048 bits: the figures hetally's
Paillier bench is compared with. Prints one line per operation: the median
time of one operation over several timed repeats.

Run through scripts/bench-paillier-compare.sh, or:
  "$(scripts/python-env.sh)" scripts/bench_python_paillier.py
"""
import statistics
import timeit

import gmpy2  # noqa: F401  (phe uses it when importable; fail if absent)
from phe import paillier


def median_per_op(stmt, number, repeat=7):
    times = timeit.repeat(stmt, number=number, repeat=repeat)
    return statistics.median(t / number for t in times)


def show(name, seconds):
    if seconds >= 1e-3:
        print(f"python-paillier {name:<28} {seconds * 1e3:9.3f} ms")
    else:
        print(f"python-paillier {name:<28} {seconds * 1e6:9.3f} us")


def main():
    pub, priv = paillier.generate_paillier_keypair(n_length=2048)
    a = pub.encrypt(3)
    b = pub.encrypt(5)
    ca, cb = a.ciphertext(be_secure=False), b.ciphertext(be_secure=False)
    nsq = pub.nsquare

    show("add (EncryptedNumber +)", median_per_op(lambda: a + b, 2000))
    show("add (raw mulmod n^2)", median_per_op(lambda: a._raw_add(ca, cb), 5000))
    show("encrypt", median_per_op(lambda: pub.encrypt(1), 20))
    show("decrypt", median_per_op(lambda: priv.decrypt(a), 50))
    assert priv.decrypt(a + b) == 8
    assert nsq == pub.n * pub.n


if __name__ == "__main__":
    main()
