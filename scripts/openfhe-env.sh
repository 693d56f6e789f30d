#!/usr/bin/env bash
# Makes (once) a virtualenv with OpenFHE's Python wrapper (`openfhe` from
# PyPI), the BFV baseline hetally's TFHE backend is measured against, and
# prints the path of its python on stdout; everything else goes to stderr.
# The `openfhe` wheel carries a CPython 3.10 extension module, so the venv is
# made with pyenv's CPython 3.10 whatever python3 is on the PATH.
# Used by scripts/bench-openfhe.sh.
set -euo pipefail
venv="${HETALLY_OPENFHE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hetally/openfhe-venv}"
# The wheel's version: OpenFHE 1.6.1, wrapper release 0, built on Ubuntu 22.04.
version=1.6.1.0.22.4

check='import importlib.metadata as m, sys, openfhe
sys.exit(m.version("openfhe") != sys.argv[1])'

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "$check" "$version" 2>/dev/null; then
  roots=()
  r=$(pyenv root 2>/dev/null || true)
  [[ -z "$r" ]] || roots+=("$r")
  for r in /root/.pyenv "$HOME/.pyenv"; do
    [[ " ${roots[*]} " == *" $r "* ]] || roots+=("$r")
  done
  py310=""
  for r in "${roots[@]}"; do
    py310=$(ls -d "$r"/versions/3.10.*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -z "$py310" ]] || break
  done
  if [[ -z "$py310" ]]; then
    echo "openfhe-env: no pyenv CPython 3.10 found under: ${roots[*]/%//versions}" >&2
    echo "openfhe-env: the openfhe wheel on PyPI carries a CPython 3.10 extension; install one with 'pyenv install 3.10'." >&2
    exit 1
  fi
  echo "openfhe-env: making $venv with $py310" >&2
  if [[ -f "$venv/pyvenv.cfg" ]]; then
    "$py310" -m venv --clear "$venv" >&2
  else
    "$py310" -m venv "$venv" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openfhe==$version" >&2
  if ! "$venv/bin/python" -c "$check" "$version" >&2; then
    echo "openfhe-env: openfhe==$version installed in $venv but does not import" >&2
    exit 1
  fi
fi
echo "$venv/bin/python"
