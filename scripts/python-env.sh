#!/usr/bin/env bash
# Makes (once) a virtualenv with python-paillier (phe) and gmpy2, the
# independent implementation hetally is checked and measured against, and
# prints the path of its python. Used by the KAT generator and the
# comparison bench.
set -euo pipefail
venv="${HETALLY_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hetally/py-venv}"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import phe, gmpy2' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet 'phe==1.5.0' 'gmpy2>=2.1' >&2
fi
echo "$venv/bin/python"
