"""The exceptions raised for HTTP failures.

The others (:class:`~hetally.HetallyError`, the base class,
:class:`~hetally.TaskMismatch`, :class:`~hetally.InvalidMeasurement` and
:class:`~hetally.UnsupportedTask`) come from the extension module.
"""

from typing import Optional

from ._core import HetallyError

PROBLEM_PREFIX = "urn:hetally:error:"


class ServerError(HetallyError):
    """The server answered with an error status.

    ``status`` is the HTTP status; ``problem_type`` the problem document's
    ``type`` (``urn:hetally:error:invalidProof``, say) when the body was
    one, and ``problem`` its short name (``invalidProof``); ``detail`` what
    the server said; ``retry_after`` its ``Retry-After`` header, if any.
    Act on ``problem``, not on ``detail``.
    """

    def __init__(
        self,
        url: str,
        status: int,
        problem_type: Optional[str] = None,
        detail: Optional[str] = None,
        retry_after: Optional[str] = None,
    ) -> None:
        self.url = url
        self.status = status
        self.problem_type = problem_type
        self.detail = detail
        self.retry_after = retry_after
        what = f" {self.problem}" if self.problem else ""
        said = f": {detail}" if detail else ""
        super().__init__(f"the server refused {url} ({status}{what}){said}")

    @property
    def problem(self) -> Optional[str]:
        """The problem type's short name, such as ``reportReplayed``."""
        if self.problem_type and self.problem_type.startswith(PROBLEM_PREFIX):
            return self.problem_type[len(PROBLEM_PREFIX):]
        return None


class Unreachable(HetallyError):
    """No answer from the server (after retries, for uploads): the
    connection failed, timed out, or TLS failed."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {url}: {reason}")
