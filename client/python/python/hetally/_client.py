"""The client: fetches and checks a task, prepares and uploads reports.

All cryptography and every check of the task happen in the Rust core
(``hetally._core``); this module only does HTTP, with ``urllib``, and
follows the core's retry policy.
"""

import http.client
import json
import random
import re
import ssl
import time as _time
import urllib.error
import urllib.request
from typing import Iterable, Optional, Tuple, Union
from urllib.parse import urljoin

from ._core import (
    REPORT_MEDIA_TYPE,
    InvalidMeasurement,
    PreparedReport,
    RetryPolicy,
    Task,
)
from ._errors import ServerError, Unreachable

#: What :meth:`Client.send` and :meth:`Client.prepare` take: an ``int``
#: (a count's 0 or 1, a sum, a histogram's bucket index), a list of ints
#: (the measurement's values; a histogram's one-hot vector), or text as the
#: ``hetally-client`` CLI takes it (``"1"``, ``"3,0,7"``).
Value = Union[int, str, Iterable[int]]

_TASK_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_U64_MAX = (1 << 64) - 1


class Client:
    """A client of one task on one hetally server.

    ``Client(server, task_id)`` fetches ``GET {server}/tasks/{task_id}``
    (and ``/crs`` when the task needs it), and the core checks that the
    definition hashes to ``task_id`` and is valid; otherwise
    :class:`~hetally.TaskMismatch` is raised. Take ``task_id`` from the
    collector, never from the server itself: that check is what detects a
    server that substitutes its own public key.

    ``ca_file`` is a PEM file of certificate authorities to trust for
    ``https`` (default: the system's); ``timeout`` the seconds one request
    may take; ``retries`` how many times a failed request is tried again
    (transient failures only: no answer, 5xx, 408, 429), or a
    :class:`~hetally.RetryPolicy`.
    """

    def __init__(
        self,
        server: str,
        task_id: str,
        *,
        ca_file: Optional[str] = None,
        timeout: float = 30.0,
        retries: Union[int, RetryPolicy] = 11,
    ) -> None:
        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise ValueError(f"server must be an http:// or https:// URL, got {server!r}")
        if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
            raise ValueError(
                f"{task_id!r} is not a task id (exactly 43 characters of base64url, "
                "A-Z a-z 0-9 - _, without padding or spaces)"
            )
        self.server = server if server.endswith("/") else server + "/"
        self.timeout = timeout
        if isinstance(retries, RetryPolicy):
            self.retry_policy = retries
        elif isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
            self.retry_policy = RetryPolicy(attempts=retries + 1)
        else:
            raise ValueError(f"retries must be a non-negative int or a RetryPolicy, got {retries!r}")
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None
        info = self._request("GET", f"tasks/{task_id}")
        crs = None
        if Task.info_needs_crs(info):
            crs = self._request("GET", f"tasks/{task_id}/crs")
        #: The checked task (:class:`hetally.Task`).
        self.task: Task = Task.from_info(task_id, info, crs)

    @property
    def task_id(self) -> str:
        """The task id, base64url."""
        return self.task.id

    @property
    def upload_path(self) -> str:
        """The path reports are uploaded to, relative to the server URL."""
        return self.task.upload_path

    @property
    def upload_url(self) -> str:
        """The URL to ``PUT`` reports to."""
        return urljoin(self.server, self.task.upload_path)

    #: The media type of a report upload (``Content-Type``).
    media_type = REPORT_MEDIA_TYPE

    def values(self, value: Value) -> list:
        """The measurement's values for ``value`` (see :data:`Value`)."""
        if isinstance(value, str):
            return self.task.parse_value(value)
        if isinstance(value, int):
            if value < 0 or value > _U64_MAX:
                raise InvalidMeasurement(f"{value} is not a valid value: values are 0 to 2^64 - 1")
            return self.task.parse_value(str(int(value)))
        try:
            values = list(value)
        except TypeError:
            raise InvalidMeasurement(
                f"a value is an int, a list of ints or text, not {type(value).__name__}"
            ) from None
        for v in values:
            if not isinstance(v, int):
                raise InvalidMeasurement(f"values must be ints, got {v!r}")
            if v < 0 or v > _U64_MAX:
                raise InvalidMeasurement(f"{v} is not a valid value: values are 0 to 2^64 - 1")
        return [int(v) for v in values]

    def prepare(self, value: Value, time: Optional[int] = None) -> PreparedReport:
        """Encrypts (and, where the task asks, proves) a measurement into a
        report, timestamped ``time`` (Unix seconds; default now) rounded
        down to the task's time precision. For apps with their own HTTP
        stack: ``PUT`` its ``bytes`` to :attr:`upload_url` with
        ``Content-Type`` :attr:`media_type`, and resend the same bytes on a
        transient failure."""
        if time is None:
            time = int(_time.time())
        return self.task.prepare(self.values(value), time)

    def upload(self, report: PreparedReport) -> None:
        """Uploads a prepared report, retrying transient failures as the
        core's policy says (honouring ``Retry-After``). A
        ``reportReplayed`` answer to a retry means an earlier attempt was
        stored, and counts as success."""
        self._request("PUT", self.task.upload_path, report.bytes, REPORT_MEDIA_TYPE)

    def send(self, value: Value, time: Optional[int] = None) -> str:
        """Prepares and uploads one measurement; returns the report id."""
        report = self.prepare(value, time)
        self.upload(report)
        return report.id

    def __repr__(self) -> str:
        return f"Client(server={self.server!r}, task={self.task!r})"

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
    ) -> bytes:
        url = urljoin(self.server, path)
        n = 1
        while True:
            try:
                return self._once(method, url, body, content_type)
            except ServerError as e:
                error: Union[ServerError, Unreachable] = e
                decision, delay = self.retry_policy.after(
                    n, e.status, e.problem_type, e.retry_after, random.uniform(0.5, 1.0)
                )
            except Unreachable as e:
                error = e
                decision, delay = self.retry_policy.after(
                    n, None, None, None, random.uniform(0.5, 1.0)
                )
            if decision == "stored" and method == "PUT":
                return b""
            if decision != "retry":
                raise error
            _time.sleep(delay)
            n += 1

    def _once(
        self, method: str, url: str, body: Optional[bytes], content_type: Optional[str]
    ) -> bytes:
        headers = {"Accept": "application/json, application/problem+json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as answer:
                return answer.read()
        except urllib.error.HTTPError as e:
            problem_type, detail = _problem(e.read())
            raise ServerError(
                url, e.code, problem_type, detail or e.reason, e.headers.get("Retry-After")
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable(url, str(reason)) from None


def _problem(body: bytes) -> Tuple[Optional[str], Optional[str]]:
    """The ``type`` and ``detail`` of a problem document, if ``body`` is
    one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    kind, detail = doc.get("type"), doc.get("detail")
    return (
        kind if isinstance(kind, str) else None,
        detail if isinstance(detail, str) else None,
    )
