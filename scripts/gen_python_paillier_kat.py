#!/usr/bin/env python3
"""Known-answer vectors for hetally's Paillier, made by python-paillier.

Writes crypto/paillier/tests/data/python_paillier_kat.json: a 2048-bit key (its
primes, so hetally can rebuild the secret key), and for each case the
plaintext m, the randomness r and the ciphertext c = (1 + n)^m r^n mod n^2
that phe's raw_encrypt produced, plus phe's homomorphic sum of all the
ciphertexts. crypto/paillier/tests/kat_python_paillier.rs checks hetally against it.

Run: "$(scripts/python-env.sh)" scripts/gen_python_paillier_kat.py
"""
import json
import secrets
import sys

import phe
from phe import paillier

OUT = sys.argv[1] if len(sys.argv) > 1 else "crypto/paillier/tests/data/python_paillier_kat.json"


def main():
    pub, priv = paillier.generate_paillier_keypair(n_length=2048)
    n = pub.n
    plaintexts = [0, 1, 2, 255, 65535, 2**64 - 1, n // 2, n - 1]
    plaintexts += [secrets.randbelow(n) for _ in range(8)]
    cases = []
    for m in plaintexts:
        r = secrets.randbelow(n - 1) + 1
        c = pub.raw_encrypt(m, r_value=r)
        assert priv.raw_decrypt(c) == m
        cases.append({"m": str(m), "r": str(r), "c": str(c)})
    # phe's own homomorphic addition of every ciphertext.
    total = paillier.EncryptedNumber(pub, int(cases[0]["c"]))
    for case in cases[1:]:
        total = total + paillier.EncryptedNumber(pub, int(case["c"]))
    sum_c = total.ciphertext(be_secure=False)
    assert priv.raw_decrypt(sum_c) == sum(int(x["m"]) for x in cases) % n
    doc = {
        "generator": f"python-paillier (phe) {phe.__version__}, scripts/gen_python_paillier_kat.py",
        "n": str(n),
        "p": str(priv.p),
        "q": str(priv.q),
        "cases": cases,
        "sum_c": str(sum_c),
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
