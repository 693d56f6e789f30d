#!/usr/bin/env bash
# Paillier at 2048 bits, hetally beside the implementations users would
# otherwise pick, in one run: the big-integer candidates, hetally's own
# Paillier bench, python-paillier (phe + gmpy2) and kzen-paillier.
# Figures go to BENCHMARKS.md. Needs network access to crates.io and PyPI
# the first time; kzen-paillier needs the system GMP (libgmp-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { [[ -e /usr/include/gmp.h ]] || [[ -e /usr/include/x86_64-linux-gnu/gmp.h ]]; }; then
  echo "installing libgmp-dev for kzen-paillier" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev >&2
fi
py=$(scripts/python-env.sh)

echo "== hetally: big-integer candidates"
cargo bench -q -p hetally-benches --bench bigint -- --noplot 2>&1 | grep -E '^(bigint|\s+time:)'
echo "== hetally: Paillier"
cargo bench -q -p hetally-benches --bench paillier -- --noplot 2>&1 | grep -E '^(paillier|\s+(time|thrpt):)'
echo "== kzen-paillier"
(cd benches/kzen && cargo bench -q --bench kzen -- --noplot 2>&1 | grep -E '^(kzen|\s+time:)')
echo "== python-paillier"
"$py" scripts/bench_python_paillier.py
