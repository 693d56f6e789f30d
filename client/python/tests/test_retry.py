"""The core's retry policy as the SDK sees it (client/core/src/retry.rs)."""

import pytest

import hetally


def test_transient_failures_back_off_and_refusals_are_final():
    p = hetally.RetryPolicy()
    assert p.attempts == 12
    assert p.after(1, 201, None, None, 1.0) == ("stored", 0.0)
    assert p.after(1, None, None, None, 1.0) == ("retry", 0.1)
    assert p.after(3, 503, "urn:hetally:error:internal", None, 0.5) == ("retry", 0.2)
    assert p.after(12, None, None, None, 1.0) == ("give_up", 0.0)
    assert p.after(1, 400, "urn:hetally:error:invalidProof", None, 1.0) == ("give_up", 0.0)


def test_retry_after_is_honoured_up_to_its_cap():
    p = hetally.RetryPolicy()
    assert p.after(1, 429, None, "7", 1.0) == ("retry", 7.0)
    assert p.after(1, 429, None, "2", 0.5) == ("retry", 3.0)
    assert p.after(1, 429, None, "3600", 1.0) == ("give_up", 0.0)
    # An HTTP date counts from now: one in the past means no wait.
    assert p.after(2, 429, None, "Wed, 21 Oct 2015 07:28:00 GMT", 1.0) == ("retry", 0.0)
    # A value that is neither form is ignored, so the backoff applies.
    assert p.after(2, 429, None, "soon", 1.0) == ("retry", 0.2)


def test_a_replay_answer_to_a_retry_means_stored():
    p = hetally.RetryPolicy()
    replay = (409, "urn:hetally:error:reportReplayed", None)
    assert p.after(1, *replay, 1.0) == ("give_up", 0.0)
    assert p.after(2, *replay, 1.0) == ("stored", 0.0)


def test_a_policy_of_one_attempt_never_retries():
    p = hetally.RetryPolicy(attempts=1)
    assert p.after(1, None, None, None, 1.0) == ("give_up", 0.0)
    with pytest.raises(ValueError, match="attempts"):
        hetally.RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="initial_delay"):
        hetally.RetryPolicy(initial_delay=-1.0)


def test_the_exceptions_form_one_hierarchy():
    for e in (hetally.TaskMismatch, hetally.InvalidMeasurement, hetally.UnsupportedTask,
              hetally.ServerError, hetally.Unreachable):
        assert issubclass(e, hetally.HetallyError)
    e = hetally.ServerError("http://x/tasks", 400, "urn:hetally:error:badRequest", "no")
    assert e.problem == "badRequest" and e.status == 400


def test_unreachable_after_retries():
    import socket

    # A port nothing listens on: bind one, and close it without listening.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(hetally.Unreachable):
        hetally.Client(
            f"http://127.0.0.1:{port}", "A" * 43,
            retries=hetally.RetryPolicy(attempts=2, initial_delay=0.01),
        )
