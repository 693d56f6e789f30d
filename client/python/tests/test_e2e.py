"""End to end against a real hetally-server: the SDK sends reports, the
collector releases the batch with hetally-client and decrypts it with
hetally-keytool, and the sums are exact. A report built by the independent
pure-Python implementation is accepted too, and the SDK's errors carry what
the server said."""

import base64
import json
import os
import random
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import hetally

import pure_hetally as pure
from conftest import binary

PRECISION = 60


def run(name: str, *args: str) -> str:
    out = subprocess.run(
        [str(binary(name)), *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"{name} {args} failed ({out.returncode}):\n{out.stderr}"
    return out.stdout


class Server:
    """A hetally-server on a port of its own, on SQLite in a temporary
    directory, with a collector key pair."""

    def __init__(self, root: Path) -> None:
        self.root = root
        run("hetally-keytool", "keygen", "--scheme", "paillier", "--out", str(root / "keys"))
        self.tasks = 0
        self.sk = root / "keys" / "collector.sk"
        self.pk = root / "keys" / "collector.pk"
        self.proc = subprocess.Popen(
            [
                str(binary("hetally-server")),
                "--data-dir", str(root / "data"),
                "--listen", "127.0.0.1:0",
                "--workers", "2",
            ],
            stdout=subprocess.PIPE,
            stderr=open(root / "server.log", "wb"),
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        prefix = "hetally-server listening on "
        if not line.startswith(prefix):
            self.proc.kill()
            raise RuntimeError(f"hetally-server did not start: {line!r}; see {root}/server.log")
        self.url = line[len(prefix):].split()[0]

    def create_task(self, measurement: str, *extra: str) -> tuple:
        # A task id is the hash of the definition: each task made here gets
        # a max batch size of its own, so that no two collide.
        self.tasks += 1
        out = json.loads(
            run(
                "hetally-client", "task", "create",
                "--server", self.url,
                "--admin-token-file", str(self.root / "data" / "admin.token"),
                "--public-key", str(self.pk),
                "--measurement", measurement,
                "--min-batch-size", "1",
                "--max-batch-size", str(1000 + self.tasks),
                "--time-precision", str(PRECISION),
                "--json", *extra,
            )
        )
        token = self.root / f"{self.tasks}.token"
        token.write_text(out["collector_token"])
        return out["task_id"], token

    def collect(self, task_id: str, token: Path, start: int, duration: int = PRECISION) -> dict:
        out = self.root / f"{start}-{task_id[:8]}.agg"
        run(
            "hetally-client", "collect", "--server", self.url, f"--task={task_id}",
            "--token-file", str(token), "--start", str(start),
            "--duration", str(duration), "--out", str(out),
        )
        return json.loads(
            run("hetally-keytool", "decrypt", "--key", str(self.sk), str(out), "--format", "json")
        )

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hetally"))
    yield s
    s.stop()


def batch_time() -> int:
    """A report time well inside the current interval: every report of a
    test carries it, so that one release holds them all."""
    now = int(time.time())
    return now - now % PRECISION


def test_count_with_input_proofs_is_exact(server):
    task_id, token = server.create_task("count")
    client = hetally.Client(server.url, task_id)
    assert client.task.input_proofs and client.task.measurement == "count"
    t = batch_time()
    rng = random.Random(7)
    values = [rng.randint(0, 1) for _ in range(30)]
    ids = {client.send(v, time=t) for v in values}
    assert len(ids) == len(values)
    got = server.collect(task_id, token, t)
    assert got["values"] == [sum(values)]
    assert got["report_count"] == len(values)


def test_histogram_with_input_proofs_is_exact(server):
    task_id, token = server.create_task("histogram:4")
    client = hetally.Client(server.url, task_id)
    t = batch_time()
    rng = random.Random(11)
    truth = [0, 0, 0, 0]
    for i in range(20):
        bucket = rng.randrange(4)
        truth[bucket] += 1
        # The three forms a value can take: a bucket index, the text the
        # CLI takes, and the measurement's one-hot vector.
        value = [bucket, str(bucket), [int(b == bucket) for b in range(4)]][i % 3]
        client.send(value, time=t)
    got = server.collect(task_id, token, t)
    assert got["values"] == truth
    assert got["report_count"] == 20


def test_a_hand_built_report_is_accepted(server):
    """A report built by pure_hetally.py from docs/protocol.md alone,
    uploaded with plain urllib, next to reports from the SDK."""
    import urllib.request

    task_id, token = server.create_task("sumvec:3:8", "--no-input-proofs")
    client = hetally.Client(server.url, task_id)
    assert not client.task.input_proofs
    t = batch_time()
    sdk_values = [[1, 2, 3], [200, 0, 255], [7, 7, 7]]
    for v in sdk_values:
        client.send(v, time=t)
    definition = client.task.definition
    d = pure.read_definition(definition)
    k = pure.slots_per_plaintext(pure.read_public_key(d.public_key_file).modulus_bits, d.slot_bits)
    tape = os.urandom(16 + 32 * -(-3 // k))
    hand = [9, 100, 250]
    body = pure.build_report(definition, hand, t, tape)
    request = urllib.request.Request(
        f"{server.url}/tasks/{task_id}/reports",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/vnd.hetally.report"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201, 204)
    got = server.collect(task_id, token, t)
    assert got["values"] == [sum(col) for col in zip(*sdk_values, hand)]
    assert got["report_count"] == 4


def test_a_hand_built_proven_report_is_accepted(server):
    task_id, token = server.create_task("histogram:3")
    client = hetally.Client(server.url, task_id)
    t = batch_time()
    client.send(0, time=t)
    # 16 bytes of id; per bit 32 + 67 + 16 + 67; then the sum's mask.
    tape = os.urandom(16 + 3 * (32 + 67 + 16 + 67) + 67)
    body = pure.build_report(client.task.definition, [0, 0, 1], t, tape)
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/{client.upload_path}",
        data=body,
        method="PUT",
        headers={"Content-Type": client.media_type},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201, 204)
    got = server.collect(task_id, token, t)
    assert got["values"] == [1, 0, 1]


def test_the_example_runs(server):
    """client/python/examples/send.py, the example docs/python.md and the
    README show, sends two reports: one with send, one with prepare and
    urllib."""
    import sys

    task_id, token = server.create_task("histogram:4")
    t = batch_time()
    example = Path(__file__).resolve().parents[1] / "examples" / "send.py"
    out = subprocess.run(
        [sys.executable, str(example), server.url, task_id, "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("sent ") == 2 and " 201" in out.stdout
    # The reports carry the time they were sent at: two intervals cover
    # them even if a minute began while the example ran.
    got = server.collect(task_id, token, t, 2 * PRECISION)
    assert got["values"] == [0, 0, 2, 0]


def test_prepare_gives_bytes_for_your_own_http_stack(server):
    task_id, _ = server.create_task("sum:8", "--no-input-proofs")
    client = hetally.Client(server.url, task_id)
    t = batch_time()
    report = client.prepare(200, time=t + 7)
    assert report.time == t  # rounded down to the precision
    assert isinstance(report.bytes, bytes) and bytes(report) == report.bytes
    assert client.upload_url == f"{server.url}/tasks/{task_id}/reports"
    assert client.media_type == hetally.REPORT_MEDIA_TYPE == "application/vnd.hetally.report"
    client.upload(report)
    # The same bytes again are a replay: refused (409), with its type.
    with pytest.raises(hetally.ServerError) as e:
        client.upload(report)
    assert e.value.status == 409 and e.value.problem == "reportReplayed"


def test_a_refusal_surfaces_as_server_error_with_its_type(server):
    task_id, _ = server.create_task("count", "--no-input-proofs")
    client = hetally.Client(server.url, task_id, retries=0)
    with pytest.raises(hetally.ServerError) as e:
        client.send(1, time=batch_time() + 3600)
    assert e.value.status == 400
    assert e.value.problem == "reportTooEarly"
    assert e.value.problem_type == "urn:hetally:error:reportTooEarly"
    assert "reportTooEarly" in str(e.value)


def test_invalid_measurements_are_refused_before_upload(server):
    task_id, _ = server.create_task("histogram:4", "--no-input-proofs")
    client = hetally.Client(server.url, task_id)
    for bad in (4, [1, 1, 0, 0], [0, 0, 0], -1, "x", [0.5, 0, 0, 0], 2**64):
        with pytest.raises(hetally.InvalidMeasurement):
            client.prepare(bad)


def test_an_unknown_task_is_a_404(server):
    with pytest.raises(hetally.ServerError) as e:
        hetally.Client(server.url, "A" * 43)
    assert e.value.status == 404 and e.value.problem == "unrecognizedTask"
    with pytest.raises(ValueError, match="not a task id"):
        hetally.Client(server.url, "A" * 42 + "=")


class FakeServer:
    """A stand-in server on loopback answering from a table of canned
    responses, for what a real server cannot be made to do on demand."""

    def __init__(self, routes: dict) -> None:
        self.routes = routes
        self.requests: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, time.monotonic(), self.rfile.read(length)))
                answers = outer.routes.get((self.command, self.path))
                if not answers:
                    status, headers, body = 404, {}, b""
                else:
                    status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _task_info(server, task_id: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/tasks/{task_id}", timeout=30) as answer:
        return answer.read()


def test_a_substituted_key_is_refused(server, tmp_path):
    """A server that answers for the task id with a definition under a key
    of its own is caught: the definition no longer hashes to the id."""
    task_id, _ = server.create_task("count")
    original_info = _task_info(server, task_id)
    info = json.loads(original_info)
    original = base64.urlsafe_b64decode(info["definition"] + "==")
    d = pure.read_definition(original)
    run("hetally-keytool", "keygen", "--scheme", "paillier", "--out", str(tmp_path))
    other_key = (tmp_path / "collector.pk").read_bytes()
    assert len(other_key) == len(d.public_key_file)
    substituted = original.replace(d.public_key_file, other_key)
    assert substituted != original
    info["definition"] = pure.b64url(substituted)
    route = ("GET", f"/tasks/{task_id}")
    fake = FakeServer({route: [(200, {}, json.dumps(info).encode())]})
    try:
        with pytest.raises(hetally.TaskMismatch, match="may have altered"):
            hetally.Client(fake.url, task_id)
        # The same stand-in serving the real definition is accepted: what
        # was refused was the key.
        fake.routes[route] = [(200, {}, original_info)]
        assert hetally.Client(fake.url, task_id).task.definition == original
    finally:
        fake.close()


def test_retry_after_is_honoured(server):
    """A 503 with Retry-After: 1, then a 201: the SDK waits at least a
    second and sends the same bytes again."""
    task_id, _ = server.create_task("count", "--no-input-proofs")
    info = _task_info(server, task_id)
    path = f"/tasks/{task_id}/reports"
    busy = json.dumps(
        {"type": "urn:hetally:error:tooManyRequests", "title": "Too Many Requests",
         "status": 429, "detail": "busy"}
    ).encode()
    fake = FakeServer(
        {
            ("GET", f"/tasks/{task_id}"): [(200, {}, info)],
            ("PUT", path): [(429, {"Retry-After": "1"}, busy), (201, {}, b"")],
        }
    )
    try:
        client = hetally.Client(fake.url, task_id)
        report_id = client.send(1)
        puts = [r for r in fake.requests if r[0] == "PUT"]
        assert len(puts) == 2
        assert puts[1][2] - puts[0][2] >= 1.0
        assert puts[0][3] == puts[1][3]
        assert pure.b64url(puts[0][3][1:17]) == report_id
    finally:
        fake.close()


def test_a_refusal_is_not_retried():
    task_id = "B" * 43
    fake = FakeServer({("GET", f"/tasks/{task_id}"): [(400, {"Content-Type": "application/problem+json"}, json.dumps({"type": "urn:hetally:error:badRequest", "title": "Bad Request", "status": 400, "detail": "no"}).encode())]})
    try:
        with pytest.raises(hetally.ServerError) as e:
            hetally.Client(fake.url, task_id)
        assert e.value.problem == "badRequest" and e.value.detail == "no"
        assert len(fake.requests) == 1
    finally:
        fake.close()
