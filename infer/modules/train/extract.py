"""The skeleton of the per-segment extraction stages (pitch: `extract_f0`, HuBERT features: `extract_features`).

A stage lists and checks the 16 kHz segments of `exp.wavs16k_dir` before any work (`check_segments`),
writes what the cache holds (`Extraction.take_cached`), computes the rest where `plan` says
(`Extraction.run`), writes and caches each result, and reports (`ExtractReport`). A stage supplies only
its compute step (`ComputeMany`: segments -> one array each), its writer and its cache settings.

Scheduling, decided here only (`plan`):
- on a GPU, or with one worker: in this process, one group after the other;
- computations that release the GIL and need no torch (WORLD, Praat): a pool of threads in this process
  (no process start-up, which costs more than Praat's work on a minute of audio);
- otherwise a pool of spawned processes (no fork of a process that may hold torch threads), each
  loading its model once (`Extraction.run`'s `load`) and using cores / workers threads.
A group of segments computed together that fails is retried segment by segment, so one bad segment
fails alone; a failed segment's outputs from an earlier run are removed, so none stands in for it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.audio import SEGMENT_RATE, list_segments
from infer.lib.cache import ArrayCache
from infer.lib.errors import RVCError, UserInputError
from infer.lib.log import get_logger, progress

_log = get_logger("extract")

ComputeMany = Callable[[list[Path]], list[np.ndarray]]  # segments -> one result each, in order
Outcome = tuple[Path, np.ndarray | None, str | None]  # segment, its result (None: failed), the error


@dataclass(frozen=True, kw_only=True)
class ExtractReport:
    """What an extraction stage did. Seconds are wall time."""

    device: str
    n_files: int
    n_extracted: int
    n_cached: int
    failed: tuple[str, ...] = field(default_factory=tuple)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def rtf(self) -> float:
        """Wall seconds per second of audio."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["rtf"] = self.rtf
        return d


@dataclass(frozen=True)
class Segments:
    """The checked segments of a stage: paths in name order and their lengths in samples at 16 kHz."""

    folder: Path
    lengths: dict[Path, int]

    @property
    def paths(self) -> list[Path]:
        return list(self.lengths)

    @property
    def audio_seconds(self) -> float:
        return sum(self.lengths.values()) / SEGMENT_RATE


def check_segments(folder: Path, stage: str, min_samples: int = 1) -> Segments:
    """The segments of `folder` (see `list_segments`), each a readable 16 kHz wav of at least
    `min_samples` samples; `UserInputError` naming the first that is not, or when there are none."""
    import soundfile as sf

    paths = list_segments(folder)
    if not paths:
        raise UserInputError(f"no 16 kHz segments in {folder}: run the preprocess stage first")
    lengths: dict[Path, int] = {}
    for p in paths:
        try:
            info = sf.info(str(p))
        except Exception as e:  # libsndfile cannot parse it
            raise UserInputError(f"{p} is not a readable wav file ({e}); re-run the preprocess stage") from e
        if info.samplerate != SEGMENT_RATE:
            raise UserInputError(f"{p} is {info.samplerate} Hz; the {stage} stage needs the 16 kHz segments")
        if info.frames < min_samples:
            ms = 1000 * min_samples / SEGMENT_RATE
            raise UserInputError(
                f"{p} is shorter than {ms:g} ms ({info.frames} samples); remove it or re-run preprocess"
            )
        lengths[p] = int(info.frames)
    return Segments(folder, lengths)


@dataclass(frozen=True)
class Schedule:
    """Where the compute step runs: "serial" (this process), "threads" or "processes" (`workers` of
    them, each process with `threads` torch threads)."""

    where: str
    workers: int = 1
    threads: int = 1


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan(n_todo: int, n_workers: int | None, *, on_gpu: bool, threadable: bool) -> Schedule:
    """The scheduling policy (see the module docstring) for `n_todo` segments; `n_workers` None: all
    cores; `threadable`: the computation releases the GIL and needs no torch."""
    cores = cpu_count()
    workers = 1 if on_gpu else max(1, min(n_workers or cores, n_todo))
    if workers == 1:
        return Schedule("serial")
    if threadable:
        return Schedule("threads", workers)
    return Schedule("processes", workers, max(1, cores // workers))


def compute_group(compute: ComputeMany, group: list[Path], label: str) -> list[Outcome]:
    """`compute(group)`; when that fails, each segment alone, so that one bad segment fails alone."""
    try:
        return [(p, r, None) for p, r in zip(group, compute(group), strict=True)]
    except Exception as e:
        if len(group) == 1:
            return [(group[0], None, f"{type(e).__name__}: {e}")]
        _log.warning("%s: a batch of %d failed (%s: %s); retrying one by one", label, len(group), type(e).__name__, e)
    return [out for p in group for out in compute_group(compute, [p], label)]


# ------------------------------------------------------------------------- process pool worker state
_WORKER: ComputeMany | None = None


def _worker_init(load: Callable[[int], ComputeMany], threads: int) -> None:
    global _WORKER
    _WORKER = load(threads)


def _worker_run(group: list[Path], label: str) -> list[Outcome]:
    assert _WORKER is not None, "the pool's initializer did not run"
    return compute_group(_WORKER, group, label)


class Extraction:
    """One run of a stage over checked segments: cached results written, the rest computed and written.

    `write(segment, result) -> bool` writes a result where the stage keeps it; False rejects it (it is
    then neither counted nor cached). `outputs(segment)`: the files a failed segment must not leave
    behind. `accept(cached)`: whether a cached array is usable. Counts: `n_cached`, `n_extracted`,
    `failed` and `rejected` (segment names).
    """

    def __init__(
        self,
        segments: Segments,
        label: str,
        cache: ArrayCache,
        cache_kind: str,
        cache_settings: Callable[[], dict[str, Any]],
        write: Callable[[Path, np.ndarray], bool],
        outputs: Callable[[Path], list[Path]],
        accept: Callable[[np.ndarray], bool] = lambda a: True,
    ) -> None:
        self.segments, self.label, self.cache, self.cache_kind = segments, label, cache, cache_kind
        self.write, self.outputs, self.accept = write, outputs, accept
        settings = cache_settings() if cache.enabled else {}
        self.keys = {p: ArrayCache.key(p, settings) for p in segments.paths} if cache.enabled else {}
        self.n_cached = self.n_extracted = 0
        self.failed: list[str] = []
        self.rejected: list[str] = []

    def take_cached(self) -> list[Path]:
        """Write every cached result; the segments left to compute, in order."""
        todo: list[Path] = []
        for p in self.segments.paths:
            hit = self.cache.get(self.keys[p], self.cache_kind) if self.cache.enabled else None
            if hit is not None and self.accept(hit) and self.write(p, hit):
                self.n_cached += 1
            else:
                todo.append(p)
        if self.n_cached:
            _log.info("%s: %d of %d segments from the cache", self.label, self.n_cached, len(self.segments.lengths))
        return todo

    def run(
        self,
        groups: list[list[Path]],
        schedule: Schedule,
        compute: ComputeMany | None = None,
        load: Callable[[int], ComputeMany] | None = None,
    ) -> None:
        """Compute `groups` (segments computed together) on `schedule`: `compute` in this process
        ("serial", "threads"), `load(threads)` -> the compute step in each pool process ("processes";
        a top-level function or a partial of one, so that it pickles)."""
        unit = "seg" if all(len(g) == 1 for g in groups) else "batch"
        for outcome in progress(self._outcomes(groups, schedule, compute, load), self.label, total=len(groups), unit=unit, logger=_log):  # fmt: skip
            for p, result, err in outcome:
                self._done(p, result, err)

    def _outcomes(
        self,
        groups: list[list[Path]],
        schedule: Schedule,
        compute: ComputeMany | None,
        load: Callable[[int], ComputeMany] | None,
    ) -> Iterator[list[Outcome]]:
        if schedule.where == "processes":
            assert load is not None, "a process pool needs `load`"
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                schedule.workers, mp_context=ctx, initializer=_worker_init, initargs=(load, schedule.threads)
            ) as pool:
                yield from _as_done([pool.submit(_worker_run, g, self.label) for g in groups])
            return
        assert compute is not None, "serial and threaded runs need `compute`"
        if schedule.where == "threads":
            with ThreadPoolExecutor(schedule.workers) as tpool:
                yield from _as_done([tpool.submit(compute_group, compute, g, self.label) for g in groups])
            return
        for g in groups:
            yield compute_group(compute, g, self.label)

    def _done(self, p: Path, result: np.ndarray | None, err: str | None) -> None:
        if result is None:
            _log.error("%s failed for %s: %s", self.label, p.name, err)
            self.failed.append(p.name)
            for out in self.outputs(p):  # no stale file from an earlier run may stand in for it
                out.unlink(missing_ok=True)
        elif self.write(p, result):
            if self.cache.enabled:
                self.cache.put(self.keys[p], result, self.cache_kind)
            self.n_extracted += 1
        else:
            self.rejected.append(p.name)

    def check_usable(self, what: str) -> None:
        """RVCError when no segment gave a usable result."""
        n = len(self.segments.lengths)
        if len(self.failed) + len(self.rejected) == n:
            raise RVCError(
                f"{what} produced nothing usable for the {n} segments in {self.segments.folder}; see the log"
            )


def _as_done(futures: Iterable[Future[list[Outcome]]]) -> Iterator[list[Outcome]]:
    for fut in as_completed(list(futures)):
        yield fut.result()
