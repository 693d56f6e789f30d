#!/usr/bin/env bash
# Builds and tests the hetally Python SDK, as a user installs it:
#   1. a virtual environment ($HETALLY_PY_VENV, default hetally-py-venv in
#      the cargo target directory), made if missing;
#   2. maturin and pytest into it (pinned in requirements-dev.txt);
#   3. `pip install ./client/python`: the real user path (a release build
#      of the extension module, pure-Rust arithmetic);
#   4. the workspace's debug binaries (hetally-server, -client, -keytool)
#      for the end-to-end tests (cargo build; a no-op when up to date);
#   5. pytest on client/python/tests (extra arguments are passed on).
#
# Environment: CARGO_TARGET_DIR (shared with cargo; default target/),
# HETALLY_PY_VENV, PYTHON (the interpreter for the venv, default python3),
# HETALLY_BIN_DIR (use the hetally-server, -client and -keytool there
# instead of building them), HETALLY_PY_DEVELOP=1 (build with `maturin
# develop`, a debug build for working on the SDK, instead of pip install).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ "$target" == /* ]] || target=$PWD/$target  # pip and cargo run from other folders
export CARGO_TARGET_DIR=$target
venv=${HETALLY_PY_VENV:-$target/hetally-py-venv}
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null; then
  echo "run-tests.sh: $python not found: install Python 3.9 or later" >&2
  exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating the virtual environment $venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || {
    echo "run-tests.sh: cannot create a virtual environment with $python (on Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
py=$venv/bin/python
echo "== installing maturin and pytest"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"

if [[ "${HETALLY_PY_DEVELOP:-0}" == 1 ]]; then
  echo "== maturin develop (debug build)"
  (cd "$here" && VIRTUAL_ENV=$venv "$venv/bin/maturin" develop --quiet)
else
  echo "== pip install ./client/python"
  "$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here"
fi

# Always asked for, so the tests never run stale binaries; cargo does
# nothing when they are up to date. HETALLY_BIN_DIR names binaries built
# elsewhere instead.
if [[ -z "${HETALLY_BIN_DIR:-}" ]]; then
  echo "== the server binaries (cargo build --workspace --bins)"
  (cd "$repo" && cargo build --workspace --bins --quiet)
  export HETALLY_BIN_DIR=$target/debug
fi

echo "== pytest"
cd "$here"
exec "$py" -m pytest tests "$@"
