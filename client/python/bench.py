"""Median time to prepare a `count` report with input proofs: the Python
SDK (`hetally.Client.prepare`, value parsing included) beside the
Rust client core's `Task::prepare` timed inside Rust, in one process, one
build, one arithmetic (the wheel's: pure-Rust unless built with `gmp`).

The task is the one of test-vectors/v1/reports/paillier-count-proofs.json
(a 2048-bit key); no server is needed.

    python client/python/bench.py [N]      (default N = 50)
"""

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import hetally
from hetally import _core

VECTOR = Path(__file__).resolve().parents[2] / "test-vectors/v1/reports/paillier-count-proofs.json"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    doc = json.loads(VECTOR.read_text())
    task = _core.Task.from_definition(doc["task_id"], bytes.fromhex(doc["definition"]))
    assert task.measurement == "count" and task.input_proofs
    # The SDK's own path, `Client.prepare`, on the checked task (a Client
    # made without fetching: there is no server here).
    client = hetally.Client.__new__(hetally.Client)
    client.task = task
    now = int(time.time())
    # Warm up both paths (tables, allocator), then time them interleaved in
    # rounds so that a change in machine load touches both alike.
    client.prepare(1, time=now)
    _core._time_core_prepare(task, [1], now, 1)
    python, rust = [], []
    for i in range(n):
        start = time.perf_counter()
        report = client.prepare(i % 2, time=now)
        python.append(time.perf_counter() - start)
        assert len(report.bytes) == 1 + 16 + 8 + 4 + 1693
        rust += _core._time_core_prepare(task, [i % 2], now, 1)
    med_py, med_rs = statistics.median(python), statistics.median(rust)
    print(f"hetally {hetally.__version__}, arithmetic {hetally.ARITHMETIC}, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}")
    print(f"count with input proofs, 2048-bit key, N = {n} each")
    print(f"  Python SDK (Client.prepare): median {med_py * 1e3:.2f} ms")
    print(f"  Rust core (Task::prepare, timed in Rust): median {med_rs * 1e3:.2f} ms")
    print(f"  ratio Python/Rust: {med_py / med_rs:.3f}")


if __name__ == "__main__":
    main()
