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

The stage is the skeleton of `infer.modules.train.extract` with pitch as its compute step: pm, dio and
harvest run in threads (they release the GIL), the torch methods on the CPU in a process pool (RMVPE
workers take up to `RMVPE_CPU_BATCH` segments of equal padded length at once, which shares the
network's bottleneck and GRU between them), CUDA methods in this process (RMVPE batching segments of
equal padded length). Measured speeds: bench/README.md. Results are cached by (file content, method
settings) in `cache`, so a re-run extracts nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from infer.lib.audio import read_wav16k
from infer.lib.cache import ArrayCache
from infer.lib.f0 import NEEDS_WEIGHTS_FILE, F0Extractor, F0Settings, coarse_f0
from infer.lib.fileio import atomic_np_save
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger
from infer.modules.train.extract import ComputeMany, Extraction, ExtractReport, Schedule, check_segments, plan

_log = get_logger("extract_f0")


@dataclass(frozen=True, kw_only=True)
class F0Report(ExtractReport):
    """What the stage did; `voiced_fraction` is over all frames of all files."""

    method: str
    voiced_fraction: float = 0.0
    n_workers: int = 1


THREADED_METHODS = ("pm", "dio", "harvest")  # no torch: threads in this process, no process start-up
RMVPE_CPU_BATCH = 8  # segments a CPU worker runs through RMVPE together
GPU_BATCH = 16  # segments RMVPE runs together on CUDA


def _pitch(extractor: F0Extractor) -> ComputeMany:
    """The compute step: one segment alone, several at once (`compute_many`)."""

    def compute(paths: list[Path]) -> list[np.ndarray]:
        audios = [read_wav16k(p) for p in paths]
        return [extractor.compute(audios[0])] if len(audios) == 1 else extractor.compute_many(audios)

    return compute


def _load_in_worker(settings: F0Settings, threads: int) -> ComputeMany:
    """The compute step in a pool process: its own extractor, `threads` torch threads."""
    if settings.uses_torch:
        import torch

        torch.set_num_threads(threads)
    return _pitch(F0Extractor.from_settings(settings).load())


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


def _groups(todo: list[Path], n_samples: dict[Path, int], settings: F0Settings, schedule: Schedule) -> list[list[Path]]:
    """The segments each compute call takes: RMVPE batches (see `_rmvpe_groups`, `GPU_BATCH`), else one."""
    if settings.method not in NEEDS_WEIGHTS_FILE:
        return [[p] for p in todo]
    if schedule.where == "processes":
        return _rmvpe_groups(todo, n_samples, schedule.workers)
    batch = GPU_BATCH if settings.device.startswith("cuda") else 1
    return [todo[i : i + batch] for i in range(0, len(todo), batch)]


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
    rmvpe = str(rmvpe_path) if rmvpe_path is not None else None
    settings = F0Settings(method=method, device=str(device), crepe_model=crepe_model, rmvpe_path=rmvpe)
    extractor = F0Extractor.from_settings(settings)  # validates device and weights up front
    settings = extractor.settings
    segments = check_segments(exp.wavs16k_dir, "f0")
    exp.f0_dir.mkdir(parents=True, exist_ok=True)
    exp.f0nsf_dir.mkdir(parents=True, exist_ok=True)
    frames = [0, 0]  # voiced, all

    def write(p: Path, f0_hz: np.ndarray) -> bool:
        f0_hz = np.asarray(f0_hz, dtype=np.float32)
        atomic_np_save(exp.f0nsf_file(p.name), f0_hz)
        atomic_np_save(exp.f0_file(p.name), coarse_f0(f0_hz))
        frames[0], frames[1] = frames[0] + int((f0_hz > 0).sum()), frames[1] + len(f0_hz)
        return True

    run = Extraction(
        segments, f"f0 {method}", cache, "f0", settings.cache_settings, write,
        outputs=lambda p: [exp.f0nsf_file(p.name), exp.f0_file(p.name)],
    )  # fmt: skip
    todo = run.take_cached()
    on_gpu = settings.device.startswith("cuda")
    schedule = plan(len(todo), n_workers, on_gpu=on_gpu, threadable=settings.method in THREADED_METHODS)
    if todo and schedule.where != "processes":
        extractor.load()
    groups = _groups(todo, segments.lengths, settings, schedule)
    run.run(groups, schedule, compute=_pitch(extractor), load=partial(_load_in_worker, settings))
    run.check_usable(f"pitch extraction ({method})")
    report = F0Report(
        method=method, device=settings.device, n_files=len(segments.lengths), n_extracted=run.n_extracted,
        n_cached=run.n_cached, failed=tuple(run.failed), audio_seconds=round(segments.audio_seconds, 3),
        wall_seconds=round(time.monotonic() - start, 3), n_workers=schedule.workers,
        voiced_fraction=round(frames[0] / frames[1], 4) if frames[1] else 0.0,
    )  # fmt: skip
    _log_report(report, check_voiced and frames[1] > 0)
    return report


def _log_report(report: F0Report, check_voiced: bool) -> None:
    _log.info(
        "f0 %s: %d segments (%d extracted, %d cached, %d failed), %.1fs audio in %.1fs (RTF %.4f), %.0f%% voiced",
        report.method, report.n_files, report.n_extracted, report.n_cached, len(report.failed),
        report.audio_seconds, report.wall_seconds, report.rtf, 100 * report.voiced_fraction,
    )  # fmt: skip
    if check_voiced and report.voiced_fraction < 0.05:
        _log.warning(
            "f0 %s: almost no voiced frames (%.1f%%): check the audio (or stand-in weights)",
            report.method, 100 * report.voiced_fraction,
        )  # fmt: skip
