"""HTTP downloads: one retry policy and one way to read a streamed body, for every downloader.

`RetryPolicy` says how often and how long to wait; `call_with_retries(attempt, policy, label)` runs
one attempt after another until it returns or fails for good:

- an attempt reports a transient failure by raising `TransientError` (a dropped connection, a
  timeout, a truncated body, HTTP 408/429/5xx: `is_transient_status`); anything else ends at once;
- the wait before retry n (1-based) is `backoff_s * 2 ** (n - 1)`, a random 50-100 % of it when
  `jitter`, raised to the server's `Retry-After` (`retry_after_s`) when it sent one, and never more
  than `max_backoff_s`;
- a `deadline` (time.monotonic) ends the retries when the next wait would pass it; a `cancel` event
  ends the waiting at once.

`body_chunks(resp, size)` hands over a streamed `requests` response body as it arrives.
`TransferWatchdog` ends running transfers (`Transfer`) that pass their deadline, fall below a minimum
average rate or are cancelled, by shutting their sockets down.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from infer.lib.log import get_logger
from infer.lib.urls import redact_text

_log = get_logger("http")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How a downloader retries transient failures (see the module docstring).

    `retries`: attempts after the first. `backoff_s`: the first wait, doubled each retry.
    `max_backoff_s`: the longest wait, `Retry-After` included. `jitter`: wait a random 50-100 % of
    the backoff, so that clients failing together do not retry together.
    """

    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("retries, backoff_s and max_backoff_s must be >= 0")

    def wait_s(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        wait = self.backoff_s * 2 ** (retry - 1)
        if self.jitter:
            wait *= 0.5 + random.random() / 2
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(self.max_backoff_s, wait)


class TransientError(Exception):
    """A failure another attempt may get past; `retry_after`: the server's Retry-After in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """The attempts ended on a transient failure: `last` (the failure), `attempts` (made),
    `past_deadline` (True when the deadline, not the retry count, stopped them)."""

    def __init__(self, last: TransientError, attempts: int, past_deadline: bool) -> None:
        super().__init__(last.reason)
        self.last = last
        self.attempts = attempts
        self.past_deadline = past_deadline


class Cancelled(Exception):
    """The caller's cancel event was set: no further attempt is made."""


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    label: str,
    *,
    deadline: float | None = None,
    cancel: threading.Event | None = None,
    log: logging.Logger = _log,
) -> tuple[T, int]:
    """`attempt()`'s result and the number of attempts made, retrying on `TransientError`.

    `label` names the download in the retry warnings (already redacted), logged to `log`. Raises `RetriesExhausted`
    when the retries run out or the next wait would pass `deadline`, `Cancelled` when `cancel` is set
    before an attempt or during a wait, and whatever else `attempt` raises, at once.
    """
    n = 0
    while True:
        n += 1
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        try:
            return attempt(), n
        except TransientError as e:
            if n > policy.retries:
                raise RetriesExhausted(e, n, past_deadline=False) from e
            wait = policy.wait_s(n, e.retry_after)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise RetriesExhausted(e, n, past_deadline=True) from e
            log.warning("%s: %s; retry %d/%d in %.1f s", label, redact_text(e.reason), n, policy.retries, wait)
            if cancel is None:
                time.sleep(wait)
            elif cancel.wait(wait):
                raise Cancelled() from None


def is_transient_status(code: int) -> bool:
    """HTTP statuses worth another attempt: 408 (request timeout), 429 (too many requests), 5xx."""
    return code in (408, 429) or code >= 500


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The `Retry-After` header in seconds (delta-seconds form), None when absent or a date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def status_error(code: int, reason: str, headers: Mapping[str, str]) -> TransientError | None:
    """A `TransientError` for a transient HTTP status (with its Retry-After), None for any other."""
    if not is_transient_status(code):
        return None
    return TransientError(f"HTTP {code} {reason}".strip(), retry_after_s(headers))


def body_chunks(resp: Any, size: int) -> Iterator[bytes]:
    """The body of a streamed `requests` response as it arrives, decoded (gzip/deflate).

    `read1` hands over whatever one socket read gave: a trickle is seen chunk by chunk, and every
    byte received before a dropped connection reaches the caller (so a resume loses nothing). Without
    `read1` (urllib3 1.x), fixed-size chunks.
    """
    raw = resp.raw
    if hasattr(raw, "read1"):
        while chunk := raw.read1(size, decode_content=True):
            yield chunk
    else:
        for chunk in resp.iter_content(size):
            if chunk:
                yield chunk


def content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range` header: `bytes 100-199/200` -> (100, 200),
    `bytes */200` -> (None, 200); None for what is absent, unknown (`*`) or malformed."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes ") :].strip().partition("/")
    first = span.split("-", 1)[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


@dataclass
class Transfer:
    """One running attempt, watched by `TransferWatchdog`: its socket, its start and the bytes it received."""

    deadline: float  # time.monotonic() past which it is aborted
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    sock: socket.socket | None = None
    reason: str | None = None  # "cancelled", "deadline" or "slow" once aborted

    def abort(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()


class TransferWatchdog:
    """A thread (while entered) that aborts the watched transfers when `cancel` is set, past their
    deadline, or below `min_rate_bytes_s` on average once `min_rate_after_s` have passed."""

    def __init__(
        self, cancel: threading.Event, min_rate_bytes_s: float, min_rate_after_s: float, name: str = "watchdog"
    ) -> None:
        self.cancel = cancel
        self.min_rate_bytes_s = min_rate_bytes_s
        self.min_rate_after_s = min_rate_after_s
        self._lock = threading.Lock()
        self._transfers: dict[int, Transfer] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> TransferWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @contextlib.contextmanager
    def watch(self, t: Transfer) -> Iterator[Transfer]:
        with self._lock:
            self._transfers[id(t)] = t
        try:
            yield t
        finally:
            with self._lock:
                self._transfers.pop(id(t), None)

    def abort_all(self, reason: str) -> None:
        with self._lock:
            ts = list(self._transfers.values())
        for t in ts:
            t.abort(reason)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self.cancel.is_set():
                self.abort_all("cancelled")
                continue
            now = time.monotonic()
            with self._lock:
                ts = list(self._transfers.values())
            for t in ts:
                el = now - t.started
                if now > t.deadline:
                    t.abort("deadline")
                elif el > self.min_rate_after_s and t.received / el < self.min_rate_bytes_s:
                    t.abort("slow")
