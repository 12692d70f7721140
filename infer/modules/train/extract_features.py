"""Training stage: HuBERT content features of every 16 kHz segment, written as the reference does.

Reads `exp.wavs16k_dir/*.wav` (16 kHz mono segments from the preprocess stage) and writes, per segment
`<name>.wav`, `exp.feature_file(name)` = `3_feature256|768/<name>.npy`: float32 [frames, 256 (v1) | 768 (v2)],
50 frames per second, `frames = (T - 400) // 320 + 1` for T samples (the reference
`extract_feature_print.py`: v1 = layer 9 then `final_proj`, v2 = layer 12, padding mask all False, the
waveform layer-normalised only when the checkpoint's `task.normalize` says so; hubert_base.pt: no).

Features with NaN are not written (as the reference, which cannot train on them); unlike the reference
they are listed in the report and logged as errors, and a stale file of that name is removed.

The stage is the skeleton of `infer.modules.train.extract` with HuBERT as its compute step, run in this
process. Speed: the model is loaded once; segments of similar length run together in one forward pass
(`HubertModel.extract_many`: equal lengths, which preprocess makes of most segments, need no padding;
otherwise the padding is masked everywhere, the first conv layer's GroupNorm included), so each
segment's numbers are those of a pass on its own, to float rounding. On the CPU only equal lengths are
batched (`MIN_FILL`: padding is paid for in full there). fp16 on CUDA, fp32 on CPU.
Results are cached by (file content, weights, version, dtype) in `cache`, so a re-run extracts nothing.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infer.lib.audio import read_wav16k
from infer.lib.cache import ArrayCache
from infer.lib.fileio import atomic_np_save, sha256_file
from infer.lib.hubert import SAMPLE_RATE, HubertModel, load_hubert
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger
from infer.modules.train.extract import Extraction, ExtractReport, check_segments, plan

_log = get_logger("extract_features")

# Audio seconds per forward pass (equal-length segments are stacked up to this much).
DEFAULT_BATCH_SECONDS = {"cpu": 30.0, "cuda": 240.0}
# The shortest segment a batch may hold, as a fraction of its longest. On the CPU padded frames cost as
# much as real ones and HuBERT is compute-bound, so only equal lengths share a pass there; on a GPU a
# little padding buys fuller batches.
MIN_FILL = {"cpu": 1.0, "cuda": 0.75}
MIN_SAMPLES = 400  # one HuBERT frame: 25 ms
_WEIGHTS_IDS: weakref.WeakKeyDictionary[HubertModel, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, kw_only=True)
class FeatureReport(ExtractReport):
    """What the stage did (model loading included in `wall_seconds`)."""

    version: str
    dtype: str
    dim: int
    n_forward_passes: int = 0
    nan_files: tuple[str, ...] = field(default_factory=tuple)
    load_seconds: float = 0.0
    standin_weights: bool = False

    @property
    def n_written(self) -> int:
        return self.n_files - len(self.nan_files) - len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "n_written": self.n_written}


def _weights_id(model: HubertModel) -> str:
    """What identifies the weights in cache keys: the file's sha256 when loaded from a file, else a hash
    of the parameters. Computed once per model object."""
    cached = _WEIGHTS_IDS.get(model)
    if cached is not None:
        return cached
    path = model.source_path
    if path is not None and Path(path).is_file():
        ident = sha256_file(path)
    else:
        import hashlib

        h = hashlib.sha256()
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
        ident = h.hexdigest()
    _WEIGHTS_IDS[model] = ident
    return ident


def _batches(lengths: dict[Path, int], max_samples: int, min_fill: float = 0.75) -> list[list[Path]]:
    """Group paths by length, longest first: a batch holds at most `max_samples` padded samples and only
    segments at least `min_fill` of its longest (little padding); equal lengths need none."""
    order = sorted(lengths, key=lambda p: (-lengths[p], p.name))
    out: list[list[Path]] = []
    for p in order:
        if out:
            batch = out[-1]
            longest = lengths[batch[0]]
            if (len(batch) + 1) * longest <= max_samples and lengths[p] >= min_fill * longest:
                batch.append(p)
                continue
        out.append([p])
    return out


def _load(hubert: HubertModel | str | Path, device: str | torch.device | None, half: bool | None) -> HubertModel:
    """`hubert` as it is, or loaded from its path on `device` (default: CUDA when present), fp16 on
    CUDA unless `half` is False."""
    if isinstance(hubert, HubertModel):
        return hubert
    dev = torch.device(device) if device is not None else None
    if dev is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return load_hubert(hubert, dev, half=dev.type == "cuda" if half is None else half)


def extract_features(
    exp: ExperimentLayout,
    hubert: HubertModel | str | Path,
    device: str | torch.device | None,
    cache: ArrayCache,
    *,
    half: bool | None = None,
    batch_seconds: float | None = None,
) -> FeatureReport:
    """HuBERT features for every segment of `exp.wavs16k_dir` (see the module docstring for outputs).

    `hubert`: a loaded `HubertModel` (used as is, on its device) or the path of `hubert_base.pt`
    (loaded on `device`, default: CUDA when present; fp16 on CUDA unless `half=False`). `exp.version`
    picks v1 (256) or v2 (768). Raises UserInputError before any work when there are no segments or a
    segment is not 16 kHz or too short; RVCError when every segment fails.
    """
    start = time.monotonic()
    version = exp.version
    segments = check_segments(exp.wavs16k_dir, "feature", MIN_SAMPLES)
    t_load = time.monotonic()
    model = _load(hubert, device, half)
    load_seconds = time.monotonic() - t_load
    model.prepare_inference()
    dim = model.output_dim(version)
    exp.feature_dir.mkdir(parents=True, exist_ok=True)
    n_passes = 0

    def compute(group: list[Path]) -> list[np.ndarray]:
        nonlocal n_passes
        n_passes += 1
        wavs = [torch.from_numpy(read_wav16k(p)) for p in group]
        with torch.inference_mode():
            return [f.float().cpu().numpy() for f in model.extract_many(wavs, version)]

    settings = lambda: {  # noqa: E731
        "stage": "hubert_features", "weights": _weights_id(model), "version": version,
        "dtype": str(model.dtype), "normalize": model.cfg.normalize,
    }  # fmt: skip
    run = Extraction(
        segments, f"features {version}", cache, f"hubert_{version}", settings, partial(_write, exp),
        outputs=lambda p: [exp.feature_file(p.name)], accept=lambda a: a.ndim == 2 and a.shape[1] == dim,
    )  # fmt: skip
    todo = run.take_cached()
    kind = model.device.type
    seconds = batch_seconds if batch_seconds is not None else DEFAULT_BATCH_SECONDS.get(kind, 30.0)
    batches = _batches({p: segments.lengths[p] for p in todo}, int(seconds * SAMPLE_RATE), MIN_FILL.get(kind, 1.0))
    run.run(batches, plan(len(todo), 1, on_gpu=kind == "cuda", threadable=False), compute=compute)
    run.check_usable("feature extraction")
    report = FeatureReport(
        version=version, device=str(model.device), dtype=str(model.dtype).removeprefix("torch."), dim=dim,
        n_files=len(segments.lengths), n_extracted=run.n_extracted, n_cached=run.n_cached,
        n_forward_passes=n_passes, nan_files=tuple(sorted(run.rejected)), failed=tuple(sorted(run.failed)),
        audio_seconds=segments.audio_seconds, load_seconds=load_seconds, wall_seconds=time.monotonic() - start,
        standin_weights=model.standin is not None,
    )  # fmt: skip
    _log.info(
        "features %s: %d segments (%d extracted, %d cached, %d NaN, %d failed), %.1f s audio in %.1f s (RTF %.3f)",
        version, report.n_files, report.n_extracted, report.n_cached, len(report.nan_files), len(report.failed),
        report.audio_seconds, report.wall_seconds, report.rtf,
    )  # fmt: skip
    return report


def _write(exp: ExperimentLayout, p: Path, f: np.ndarray) -> bool:
    """Write the features of segment `p`; features with NaN/inf are not written (and an earlier file of
    that name is removed): False."""
    out = exp.feature_file(p.name)
    if not np.isfinite(f).all():
        _log.error("features of %s contain NaN/inf: not written (segment left out of training)", p.name)
        out.unlink(missing_ok=True)
        return False
    atomic_np_save(out, np.ascontiguousarray(f, dtype=np.float32))
    return True
