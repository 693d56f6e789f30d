#!/usr/bin/env bash
# OpenFHE BFV additions of 1,024-counter ciphertexts with one and then two
# OpenMP threads, in one run (scripts/bench_openfhe.py; extra arguments are
# passed on, e.g. --count 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(scripts/openfhe-env.sh)
for threads in 1 2; do
  OMP_NUM_THREADS=$threads "$py" scripts/bench_openfhe.py "$@"
done
