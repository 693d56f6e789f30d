#!/usr/bin/env bash
# Makes (once) a virtualenv with OpenFHE's Python wrapper, the BFV baseline
# the TFHE backend is measured against, and prints the path of its python.
# The `openfhe` wheel on PyPI carries a CPython 3.10 extension, so the venv
# is made with pyenv's 3.10 interpreter.
set -euo pipefail
venv="${HETALLY_OPENFHE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hetally/openfhe-venv}"
version=1.6.1.0.22.4
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import openfhe' 2>/dev/null; then
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  py310=$(ls -d "$root"/versions/3.10.*/bin/python 2>/dev/null | sort -V | tail -1 || true)
  if [[ -z "$py310" ]]; then
    echo "openfhe-env: no CPython 3.10 under $root/versions (pyenv install 3.10)" >&2
    exit 1
  fi
  "$py310" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "openfhe==$version" >&2
fi
echo "$venv/bin/python"
