"""One place for logging and progress.

Log lines are plain (`2026-11-25 10:00:00 INFO rvc.train: epoch 3/10 ...`) on stdout, so they read well
in cog's prediction log. Every line, tracebacks included, passes through `infer.lib.urls.redact_text`
(no URL credentials or query tokens reach a log); a job's train.log also shows paths relative to the job. `progress()` draws a tqdm bar in a terminal and otherwise logs a line every
`every` percent, so a prediction log shows progress without bar noise.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TextIO, TypeVar

from tqdm import tqdm

from infer.lib.urls import redact_text

T = TypeVar("T")
ROOT = "rvc"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """The project's line format with URLs redacted; paths under `roots` are written relative to the
    first one's parent (`/tmp/rvc-jobs/job-x/exp/G_1.pth` -> `exp/G_1.pth`)."""

    def __init__(self, roots: tuple[str, ...] = ()) -> None:
        super().__init__(_FORMAT, "%Y-%m-%d %H:%M:%S")
        self.roots = tuple(sorted((r.rstrip("/") + "/" for r in roots if r.rstrip("/")), key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        text = redact_text(super().format(record))
        for r in self.roots:
            text = text.replace(r, "")
        return text


def get_logger(name: str) -> logging.Logger:
    """A logger under the project's root (`rvc.<name>`)."""
    return logging.getLogger(f"{ROOT}.{name}" if not name.startswith(ROOT) else name)


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """The stdout handler `setup_logging` installs once; `_rvc_stdout` marks it."""

    _rvc_stdout = True


def setup_logging(level: int = logging.INFO, log_file: str | None = None) -> None:
    """Send the project's logs to stdout (and `log_file`); safe to call more than once."""
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    root.propagate = False
    fmt = RedactingFormatter()
    if not any(getattr(h, "_rvc_stdout", False) for h in root.handlers):
        h = _StdoutHandler(sys.stdout)
        h.setFormatter(fmt)
        root.addHandler(h)
    if log_file and not any(getattr(h, "baseFilename", None) == str(log_file) for h in root.handlers):
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        root.addHandler(fh)


def is_terminal() -> bool:
    """True when stderr is an interactive terminal (draw bars), False in cog and CI (log lines)."""
    return sys.stderr.isatty()


def progress(
    items: Iterable[T],
    desc: str,
    total: int | None = None,
    unit: str = "it",
    logger: logging.Logger | None = None,
    every: float = 10.0,
) -> Iterator[T]:
    """Iterate `items` showing progress: a tqdm bar in a terminal, else a log line each `every` %."""
    if total is None and isinstance(items, Sized):
        try:
            total = len(items)
        except TypeError:
            total = None
    if is_terminal():
        yield from tqdm(items, desc=desc, total=total, unit=unit)
        return
    log = logger or get_logger("progress")
    start = time.monotonic()
    next_pct = every
    n = 0
    for n, item in enumerate(items, 1):
        yield item
        if total:
            pct = 100.0 * n / total
            if pct >= next_pct or n == total:
                el = time.monotonic() - start
                eta = el / n * (total - n)
                log.info("%s: %d/%d %s (%.0f%%, %.1fs elapsed, ETA %.1fs)", desc, n, total, unit, pct, el, eta)
                while next_pct <= pct:
                    next_pct += every
    if not total:
        log.info("%s: %d %s done in %.1fs", desc, n, unit, time.monotonic() - start)
