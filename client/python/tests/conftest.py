"""Shared fixtures: where the repository, its test vectors and the
workspace's debug binaries are."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VECTORS = REPO / "test-vectors" / "v1"

# pure_hetally.py sits beside the tests; it is not part of the package.
sys.path.insert(0, str(HERE))


def bin_dir() -> Path:
    """The debug binaries: $HETALLY_BIN_DIR, else $CARGO_TARGET_DIR/debug,
    else target/debug in the repository (run-tests.sh builds them)."""
    if os.environ.get("HETALLY_BIN_DIR"):
        return Path(os.environ["HETALLY_BIN_DIR"])
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "debug"


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build the server binaries first "
            "(`cargo build --workspace --bins`, or run client/python/run-tests.sh)"
        )
    return path
