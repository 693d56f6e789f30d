"""hetally: send encrypted, privacy-preserving telemetry reports.

A :class:`Client` fetches a task from a hetally server, checks it against
the task id the collector gave you (so a server that substitutes its own
public key is refused), and sends encrypted reports::

    import hetally

    client = hetally.Client("https://telemetry.example", TASK_ID)
    client.send(1)

The encryption and input proofs are hetally's Rust client core (the
extension module ``hetally._core``); HTTP is the standard library's
``urllib``. ``docs/python.md`` in the repository is the user guide.
"""

from ._core import (
    ARITHMETIC,
    REPORT_MEDIA_TYPE,
    TFHE_SUPPORTED,
    HetallyError,
    InvalidMeasurement,
    PreparedReport,
    RetryPolicy,
    Task,
    TaskMismatch,
    UnsupportedTask,
)
from ._errors import ServerError, Unreachable
from ._client import Client

__version__ = "0.1.0"

__all__ = [
    "ARITHMETIC",
    "REPORT_MEDIA_TYPE",
    "TFHE_SUPPORTED",
    "Client",
    "HetallyError",
    "InvalidMeasurement",
    "PreparedReport",
    "RetryPolicy",
    "ServerError",
    "Task",
    "TaskMismatch",
    "Unreachable",
    "UnsupportedTask",
]
