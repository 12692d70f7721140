"""Training stage: pitch of every 16 kHz segment, written as the reference does.

Reads `exp.wavs16k_dir/*.wav` (16 kHz mono segments from the preprocess stage) and writes, per segment
`<name>.wav`:
  - `exp.f0nsf_file(name)` = `2b-f0nsf/<name>.wav.npy`: f0 in Hz, float32 [frames] (0 = unvoiced);
  - `exp.f0_file(name)` = `2a_f0/<name>.wav.npy`: coarse pitch, int64 1..255 [frames].

Frame counts: a segment of T samples gets T // 160 + 1 pitch frames (10 ms, centred), pm T // 160 (as the
reference's `extract_f0_print.py`: Praat's frames zero-padded to T // 160, centred).
HuBERT features of the same segment have (T - 400) // 320 + 1 frames (20 ms, no padding). The training
data loader repeats each feature frame twice and trims features and pitch to the shorter of the two
(and to the spectrogram length), as the reference `TextAudioLoaderMultiNSFsid.get_labels` does; since
2 * ((T - 400) // 320 + 1) <= T // 160, pitch always covers the features and only its tail is cut.

Speed: pm, dio and harvest run in a thread pool in this process (WORLD releases the GIL; Praat is so
fast that starting processes cost more than the work on a minute of audio); the torch methods on the
CPU run in a process pool over files (each worker loads its model once and uses cores / workers
threads; RMVPE workers take up to `RMVPE_CPU_BATCH` segments of equal padded length at once, which
shares the network's bottleneck and GRU between them); CUDA methods run in this process, RMVPE batching
segments of equal padded length. Measured speeds: bench/README.md. Results are cached by (file content, method settings) in `cache`, so a
re-run extracts nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.audio import list_segments, read_wav16k
from infer.lib.cache import ArrayCache
from infer.lib.errors import RVCError, UserInputError
from infer.lib.f0 import NEEDS_WEIGHTS_FILE, SAMPLE_RATE, F0Extractor, F0Settings, coarse_f0
from infer.lib.fileio import atomic_np_save
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger, progress

_log = get_logger("extract_f0")


@dataclass(frozen=True)
class F0Report:
    """What the stage did. Seconds are wall time; `voiced_fraction` is over all frames of all files."""

    method: str
    device: str
    n_files: int
    n_extracted: int
    n_cached: int
    failed: tuple[str, ...] = field(default_factory=tuple)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    voiced_fraction: float = 0.0
    n_workers: int = 1

    @property
    def rtf(self) -> float:
        """Wall seconds per second of audio."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = list(self.failed)
        d["rtf"] = self.rtf
        return d


THREADED_METHODS = ("pm", "dio", "harvest")  # no torch: threads in this process, no process start-up
RMVPE_CPU_BATCH = 8  # segments a CPU worker runs through RMVPE together

# ---------------------------------------------------------------------------- pool worker state
_WORKER: F0Extractor | None = None


def _worker_init(settings: F0Settings, threads: int) -> None:
    global _WORKER
    if settings.uses_torch:
        import torch

        torch.set_num_threads(threads)
    _WORKER = F0Extractor.from_settings(settings).load()


def _compute(extractor: F0Extractor, path: str) -> tuple[str, np.ndarray | None, str | None]:
    try:
        return path, extractor.compute(read_wav16k(Path(path))), None
    except Exception as e:  # reported per file by the parent
        return path, None, f"{type(e).__name__}: {e}"


def _worker_compute_many(paths: list[str]) -> list[tuple[str, np.ndarray | None, str | None]]:
    """In a pool worker: one clip alone, or several at once (`compute_many`); a failed batch is retried
    clip by clip so that one bad file fails alone."""
    assert _WORKER is not None
    if len(paths) == 1:
        return [_compute(_WORKER, paths[0])]
    try:
        outs = _WORKER.compute_many([read_wav16k(Path(p)) for p in paths])
    except Exception:
        return [_compute(_WORKER, p) for p in paths]
    return [(p, f0, None) for p, f0 in zip(paths, outs, strict=True)]


def _rmvpe_groups(paths: list[Path], n_samples: dict[Path, int], workers: int) -> list[list[Path]]:
    """Segments with the same padded RMVPE frame count (`infer_batch` runs them as one batch with the
    numbers each has alone), in groups of at most `RMVPE_CPU_BATCH` and small enough that every worker
    gets a share of each length; the groups in the order of their first path."""
    from infer.lib.rmvpe import PAD_MULTIPLE, n_frames_for

    by_len: dict[int, list[Path]] = {}
    for p in paths:
        by_len.setdefault(-(-n_frames_for(n_samples[p]) // PAD_MULTIPLE), []).append(p)
    groups = []
    for same in by_len.values():
        size = max(1, min(RMVPE_CPU_BATCH, -(-len(same) // max(1, workers))))
        groups += [same[i : i + size] for i in range(0, len(same), size)]
    first = {p: i for i, p in enumerate(paths)}
    return sorted(groups, key=lambda g: first[g[0]])


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def extract_f0(
    exp: ExperimentLayout,
    method: str,
    cache: ArrayCache,
    device: str = "cpu",
    rmvpe_path: str | Path | None = None,
    n_workers: int | None = None,
    crepe_model: str = "full",
    check_voiced: bool = True,
) -> F0Report:
    """Extract pitch for every segment of `exp.wavs16k_dir`; see the module docstring for outputs.

    `method` in F0_METHODS; `device` for crepe/fcpe/rmvpe ("rmvpe_gpu" always uses CUDA);
    `n_workers` processes for CPU work (default: all cores). Raises UserInputError before any work
    when the folder is empty, a segment is not 16 kHz, the method is unknown or weights are missing.
    Files that fail are logged and listed in the report; RVCError if every file fails.
    `check_voiced`: warn when almost no frame is voiced (off for the silent mute entry).
    """
    start = time.monotonic()
    settings = F0Settings(
        method=method,
        device=str(device),
        crepe_model=crepe_model,
        rmvpe_path=str(rmvpe_path) if rmvpe_path is not None else None,
    )
    extractor = F0Extractor.from_settings(settings)  # validates device and weights up front
    settings = extractor.settings
    paths = list_segments(exp.wavs16k_dir)
    if not paths:
        raise UserInputError(f"no 16 kHz segments in {exp.wavs16k_dir}: run the preprocess stage first")
    import soundfile as sf

    n_samples: dict[Path, int] = {}
    for p in paths:
        try:
            info = sf.info(str(p))
        except Exception as e:  # libsndfile cannot parse it
            raise UserInputError(f"{p} is not a readable wav file ({e}); re-run the preprocess stage") from e
        if info.samplerate != SAMPLE_RATE:
            raise UserInputError(f"{p} is {info.samplerate} Hz; the f0 stage needs the 16 kHz segments of preprocess")
        n_samples[p] = int(info.frames)
    audio_seconds = sum(n_samples.values()) / SAMPLE_RATE
    exp.f0_dir.mkdir(parents=True, exist_ok=True)
    exp.f0nsf_dir.mkdir(parents=True, exist_ok=True)

    cache_settings = settings.cache_settings()
    keys = {p: ArrayCache.key(p, cache_settings) for p in paths} if cache.enabled else {}
    voiced = total = 0
    n_cached = 0
    todo: list[Path] = []
    for p in paths:
        hit = cache.get(keys[p], "f0") if cache.enabled else None
        if hit is not None:
            _write(exp, p.name, hit)
            voiced, total = voiced + int((hit > 0).sum()), total + len(hit)
            n_cached += 1
        else:
            todo.append(p)
    if n_cached:
        _log.info("f0 %s: %d of %d segments from the cache", method, n_cached, len(paths))

    failed: list[str] = []

    def done(p: Path, f0: np.ndarray | None, err: str | None) -> None:
        nonlocal voiced, total
        if f0 is None:
            _log.error("f0 %s failed for %s: %s", method, p.name, err)
            failed.append(p.name)
            return
        _write(exp, p.name, f0)
        if cache.enabled:
            cache.put(keys[p], f0, "f0")
        voiced, total = voiced + int((f0 > 0).sum()), total + len(f0)

    cores = _cpu_count()
    on_gpu = settings.device.startswith("cuda")
    workers = 1 if on_gpu else max(1, min(n_workers or cores, len(todo)))
    if todo and workers > 1 and settings.method in THREADED_METHODS:
        extractor.load()
        with ThreadPoolExecutor(workers) as tpool:
            futs = [tpool.submit(_compute, extractor, str(p)) for p in todo]
            for fut in progress(as_completed(futs), f"f0 {method}", total=len(futs), unit="seg", logger=_log):
                path, f0, err = fut.result()
                done(Path(path), f0, err)
    elif todo and workers > 1:
        threads = max(1, cores // workers)
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(settings, threads)
        ) as pool:
            if settings.method in NEEDS_WEIGHTS_FILE:  # RMVPE: a worker's batch shares the bottleneck and GRU
                groups = _rmvpe_groups(todo, n_samples, workers)
                futs = [pool.submit(_worker_compute_many, [str(p) for p in g]) for g in groups]
            else:
                futs = [pool.submit(_worker_compute_many, [str(p)]) for p in todo]
            bar = progress(as_completed(futs), f"f0 {method}", total=len(futs), unit="batch", logger=_log)
            for fut in bar:
                for path, f0, err in fut.result():
                    done(Path(path), f0, err)
    elif todo:
        extractor.load()
        batch = 16 if on_gpu and settings.method in ("rmvpe", "rmvpe_gpu") else 1
        groups = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        for group in progress(groups, f"f0 {method}", unit="batch" if batch > 1 else "seg", logger=_log):
            try:
                audios = [read_wav16k(p) for p in group]
                outs = extractor.compute_many(audios) if batch > 1 else [extractor.compute(audios[0])]
                for p, f0 in zip(group, outs, strict=True):
                    done(p, f0, None)
            except Exception as e:
                for p in group:
                    done(p, None, f"{type(e).__name__}: {e}")
    if failed and len(failed) == len(paths):
        raise RVCError(f"pitch extraction ({method}) failed for every segment; see the log")
    report = F0Report(
        method=method,
        device=settings.device,
        n_files=len(paths),
        n_extracted=len(todo) - len(failed),
        n_cached=n_cached,
        failed=tuple(failed),
        audio_seconds=round(audio_seconds, 3),
        wall_seconds=round(time.monotonic() - start, 3),
        voiced_fraction=round(voiced / total, 4) if total else 0.0,
        n_workers=workers,
    )
    _log.info(
        "f0 %s: %d segments (%d extracted, %d cached, %d failed), %.1fs audio in %.1fs (RTF %.4f), %.0f%% voiced",
        method,
        report.n_files,
        report.n_extracted,
        report.n_cached,
        len(failed),
        report.audio_seconds,
        report.wall_seconds,
        report.rtf,
        100 * report.voiced_fraction,
    )
    if check_voiced and total and report.voiced_fraction < 0.05:
        _log.warning(
            "f0 %s: almost no voiced frames (%.1f%%): check the audio (or stand-in weights)",
            method,
            100 * report.voiced_fraction,
        )
    return report


def _write(exp: ExperimentLayout, name: str, f0_hz: np.ndarray) -> None:
    f0_hz = np.asarray(f0_hz, dtype=np.float32)
    atomic_np_save(exp.f0nsf_file(name), f0_hz)
    atomic_np_save(exp.f0_file(name), coarse_f0(f0_hz))
