#!/usr/bin/env bash
# OpenFHE BFV baseline: additions of 1,024-counter ciphertexts, measured with
# OMP_NUM_THREADS=1 and then 2 in one run. Extra arguments are passed on to
# scripts/bench_openfhe.py (e.g. --count 1000; see its --help). Each run ends
# with a line `RESULT {json}`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=$("$here/openfhe-env.sh")
for threads in 1 2; do
  OMP_NUM_THREADS=$threads "$py" "$here/bench_openfhe.py" "$@"
done
