#!/usr/bin/env bash
# The TFHE backend in one run (issue 5): hetally's criterion bench
# (benches/benches/tfhe.rs: memory bandwidth, summing stored
# histogram:1024 reports, encrypt, CRS, prove and verify with both TFHE-rs
# compute loads, sizes), then OpenFHE BFV additions of 1,024-counter
# ciphertexts (scripts/bench-openfhe.sh, one and two OpenMP threads).
# Figures go to BENCHMARKS.md. Needs network access to crates.io and PyPI
# the first time, and pyenv's CPython 3.10 for OpenFHE's wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== hetally: TFHE backend"
cargo bench -q -p hetally-benches --bench tfhe -- --noplot 2>&1 \
  | grep -E '^(tfhe|\s+(time|thrpt):)'
echo "== OpenFHE BFV"
scripts/bench-openfhe.sh "$@"
