"""The retry mechanism both downloaders share: waits, Retry-After, deadline, cancel, header parsing."""

from __future__ import annotations

import threading
import time

import pytest

from infer.lib.http_get import (
    Cancelled,
    RetriesExhausted,
    RetryPolicy,
    TransientError,
    call_with_retries,
    content_range,
    retry_after_s,
    status_error,
)


def test_waits_double_are_capped_and_raised_to_retry_after() -> None:
    p = RetryPolicy(retries=5, backoff_s=1.0, max_backoff_s=5.0)
    assert [p.wait_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert p.wait_s(1, retry_after=3.0) == 3.0 and p.wait_s(1, retry_after=100.0) == 5.0
    jittered = RetryPolicy(retries=1, backoff_s=2.0, jitter=True)
    assert all(1.0 <= jittered.wait_s(1) <= 2.0 for _ in range(50))
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def test_transient_failures_are_retried_others_are_not() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("HTTP 503")
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(retries=3, backoff_s=0.0), "x") == ("ok", 3)

    def broken() -> str:
        raise TransientError("HTTP 503")

    with pytest.raises(RetriesExhausted) as e:
        call_with_retries(broken, RetryPolicy(retries=2, backoff_s=0.0), "x")
    assert e.value.attempts == 3 and not e.value.past_deadline and e.value.last.reason == "HTTP 503"

    def refused() -> str:
        calls.append(1)
        raise ValueError("HTTP 404")

    calls.clear()
    with pytest.raises(ValueError):
        call_with_retries(refused, RetryPolicy(retries=3, backoff_s=0.0), "x")
    assert len(calls) == 1


def test_deadline_and_cancel_end_the_retries() -> None:
    def broken() -> str:
        raise TransientError("timeout", retry_after=10.0)

    t0 = time.monotonic()
    with pytest.raises(RetriesExhausted) as e:
        call_with_retries(broken, RetryPolicy(retries=5, backoff_s=0.0), "x", deadline=time.monotonic() + 5.0)
    assert e.value.past_deadline and e.value.attempts == 1 and time.monotonic() - t0 < 1.0

    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        call_with_retries(broken, RetryPolicy(retries=5, backoff_s=30.0), "x", cancel=cancel)
    assert time.monotonic() - t0 < 2.0


def test_headers() -> None:
    assert content_range("bytes 100-199/200") == (100, 200)
    assert content_range("bytes */200") == (None, 200)
    assert content_range("bytes 0-9/*") == (0, None)
    assert content_range(None) == (None, None) and content_range("garbage") == (None, None)
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None and retry_after_s({}) is None
    for code in (408, 429, 500, 503):
        err = status_error(code, "Busy", {"Retry-After": "2"})
        assert err is not None and err.reason == f"HTTP {code} Busy" and err.retry_after == 2.0
    assert status_error(404, "Not Found", {}) is None and status_error(403, "", {}) is None
