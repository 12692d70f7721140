"""One numbered stage list and one stream of progress events for a training job.

`job_stages(use_f0)` is the stage list every front end shows, in order:

    collect audio, check audio, check speech, weights, preprocess, features, pitch (models with
    pitch), train, index, package

`JobProgress` writes the log headers (`[stage i/N] name`, then `[stage i/N] name done in 1.2s`) and
sends a `ProgressEvent` to `on_event` whenever the stage, the epoch or the ETA changes, and a final
one when the job ends. Epochs come from the training loop's per-epoch log record (its `progress`
extra: epoch, epochs, eta_s), so the loop needs no callback. `job_log(path)` copies the project's log
lines into the experiment's train.log while a job runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infer.lib.log import ROOT, RedactingFormatter, get_logger, setup_logging

_log = get_logger("job")

STAGES: tuple[str, ...] = (
    "collect audio",
    "check audio",
    "check speech",
    "weights",
    "preprocess",
    "features",
    "pitch",
    "train",
    "index",
    "package",
)
Status = Literal["running", "succeeded", "failed", "canceled"]


def job_stages(use_f0: bool = True) -> tuple[str, ...]:
    """The stages of a job: all of `STAGES`, without `pitch` for a model without pitch guidance."""
    return STAGES if use_f0 else tuple(s for s in STAGES if s != "pitch")


@dataclass(frozen=True)
class ProgressEvent:
    """Where a job is. stage_index is 1-based (0 before the first stage); epoch counts finished epochs
    (0 before training); eta_s: seconds of training left (None until the first epoch ends)."""

    stage: str
    stage_index: int
    stage_count: int
    epoch: int
    epochs: int
    eta_s: float | None
    status: Status = "running"

    def metrics(self) -> dict[str, Any]:
        """The cog prediction metrics (`progress.<key>`); eta_s only once known."""
        out: dict[str, Any] = {
            "stage": self.stage,
            "stage_index": self.stage_index,
            "stage_count": self.stage_count,
            "epoch": self.epoch,
            "epochs": self.epochs,
        }
        if self.eta_s is not None:
            out["eta_s"] = round(float(self.eta_s), 1)
        return out

    def status_line(self) -> str:
        """`stage 7/9 train · epoch 3/10 · ETA 1:05` for people."""
        parts = [f"stage {self.stage_index}/{self.stage_count} {self.stage}" if self.stage_index else "starting"]
        if self.epoch or self.stage == "train":
            parts.append(f"epoch {self.epoch}/{self.epochs}")
        if self.eta_s is not None and self.status == "running" and self.stage == "train":
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        return " · ".join(parts)


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


EventCallback = Callable[[ProgressEvent], None]


class JobProgress:
    """The stage headers and progress events of one job (see the module docstring)."""

    def __init__(self, stages: tuple[str, ...], epochs: int, on_event: EventCallback | None = None) -> None:
        self.stages = tuple(stages)
        self.on_event = on_event
        self.times: dict[str, float] = {}
        self._lock = threading.Lock()
        self._event = ProgressEvent("", 0, len(self.stages), 0, int(epochs), None)

    @property
    def event(self) -> ProgressEvent:
        return self._event

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._event = dataclasses.replace(self._event, **changes)
            ev = self._event
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - a progress consumer never breaks the job
                _log.debug("progress callback failed", exc_info=True)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Log `[stage i/N] name`, send the event, time the block, log `... done in Xs`."""
        i = self.stages.index(name) + 1
        n = len(self.stages)
        _log.info("[stage %d/%d] %s", i, n, name)
        self._update(stage=name, stage_index=i)
        t0 = time.monotonic()
        if name == "train":
            with _EpochWatcher(self):
                yield
        else:
            yield
        self.times[name] = round(time.monotonic() - t0, 3)
        _log.info("[stage %d/%d] %s done in %.1fs", i, n, name, self.times[name])

    def epoch(self, epoch: int, epochs: int, eta_s: float | None) -> None:
        self._update(epoch=int(epoch), epochs=int(epochs), eta_s=eta_s)

    def finish(self, status: Status) -> None:
        """The final event: on success every stage and epoch done, ETA 0."""
        if status == "succeeded":
            last = self.stages[-1]
            self._update(status=status, stage=last, stage_index=len(self.stages), epoch=self._event.epochs, eta_s=0.0)
        else:
            self._update(status=status)


class _EpochWatcher(logging.Handler):
    """While installed on the `rvc` logger, turns the training loop's per-epoch records into events."""

    def __init__(self, progress: JobProgress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.thread = threading.get_ident()  # the job's thread: other jobs in this process log elsewhere

    def emit(self, record: logging.LogRecord) -> None:
        p = getattr(record, "progress", None)
        if isinstance(p, dict) and "epoch" in p and record.thread == self.thread:
            self.progress.epoch(p["epoch"], p.get("epochs", self.progress.event.epochs), p.get("eta_s"))

    def __enter__(self) -> _EpochWatcher:
        logging.getLogger("rvc").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("rvc").removeHandler(self)


@contextlib.contextmanager
def job_log(path: Path) -> Iterator[None]:
    """Log lines of the project go to `path` (the experiment's train.log) while inside; stdout too."""
    setup_logging()
    handler = logging.FileHandler(path)
    # paths relative to the job folder (the experiment folder's parent): no host paths in the zip
    job = Path(path).resolve().parent.parent
    handler.setFormatter(RedactingFormatter((str(job), str(Path(path).parent.parent))))
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
