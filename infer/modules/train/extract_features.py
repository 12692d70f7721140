"""Training stage: HuBERT content features of every 16 kHz segment, written as the reference does.

Reads `exp.wavs16k_dir/*.wav` (16 kHz mono segments from the preprocess stage) and writes, per segment
`<name>.wav`, `exp.feature_file(name)` = `3_feature256|768/<name>.npy`: float32 [frames, 256 (v1) | 768 (v2)],
50 frames per second, `frames = (T - 400) // 320 + 1` for T samples (the reference
`extract_feature_print.py`: v1 = layer 9 then `final_proj`, v2 = layer 12, padding mask all False, the
waveform layer-normalised only when the checkpoint's `task.normalize` says so; hubert_base.pt: no).

Features with NaN are not written (as the reference, which cannot train on them); unlike the reference
they are listed in the report and logged as errors, and a stale file of that name is removed.

Speed: the model is loaded once; segments of similar length run together in one forward pass
(`HubertModel.extract_many`: equal lengths, which preprocess makes of most segments, need no padding;
otherwise the padding is masked everywhere, the first conv layer's GroupNorm included), so each
segment's numbers are those of a pass on its own, to float rounding. On the CPU only equal lengths are
batched (`MIN_FILL`: padding is paid for in full there). fp16 on CUDA, fp32 on CPU.
Results are cached by (file content, weights, version, dtype) in `cache`, so a re-run extracts nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infer.lib.audio import list_segments, read_wav16k
from infer.lib.cache import ArrayCache
from infer.lib.errors import RVCError, UserInputError
from infer.lib.fileio import atomic_np_save, sha256_file
from infer.lib.hubert import SAMPLE_RATE, HubertModel, load_hubert
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger, progress

_log = get_logger("extract_features")

# Audio seconds per forward pass (equal-length segments are stacked up to this much).
DEFAULT_BATCH_SECONDS = {"cpu": 30.0, "cuda": 240.0}
# The shortest segment a batch may hold, as a fraction of its longest. On the CPU padded frames cost as
# much as real ones and HuBERT is compute-bound, so only equal lengths share a pass there (joe_1min: 13.2 s
# with up to 25% padding, 11.7 s one segment a pass); on a GPU a little padding buys fuller batches.
MIN_FILL = {"cpu": 1.0, "cuda": 0.75}


@dataclass(frozen=True)
class FeatureReport:
    """What the stage did. Seconds are wall time (model loading included in `wall_seconds`)."""

    version: str
    device: str
    dtype: str
    dim: int
    n_files: int
    n_extracted: int
    n_cached: int
    n_forward_passes: int = 0
    nan_files: tuple[str, ...] = field(default_factory=tuple)
    failed: tuple[str, ...] = field(default_factory=tuple)
    audio_seconds: float = 0.0
    load_seconds: float = 0.0
    wall_seconds: float = 0.0
    standin_weights: bool = False

    @property
    def rtf(self) -> float:
        """Wall seconds per second of audio."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    @property
    def n_written(self) -> int:
        return self.n_files - len(self.nan_files) - len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nan_files"] = list(self.nan_files)
        d["failed"] = list(self.failed)
        d["rtf"] = self.rtf
        d["n_written"] = self.n_written
        return d


def _weights_id(model: HubertModel) -> str:
    """What identifies the weights in cache keys: the file's sha256 when loaded from a file, else a hash
    of the parameters. Computed once per model object."""
    cached = getattr(model, "_rvc_weights_id", None)
    if isinstance(cached, str):
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
    model._rvc_weights_id = ident
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
    paths = list_segments(exp.wavs16k_dir)
    if not paths:
        raise UserInputError(f"no 16 kHz segments in {exp.wavs16k_dir}: run the preprocess stage first")
    import soundfile as sf

    lengths: dict[Path, int] = {}
    for p in paths:
        try:
            info = sf.info(str(p))
        except RuntimeError as e:
            raise UserInputError(f"{p} is not a readable wav file ({e}); run the preprocess stage again") from e
        if info.samplerate != SAMPLE_RATE:
            raise UserInputError(f"{p} is {info.samplerate} Hz; the feature stage needs the 16 kHz segments")
        if info.frames < 400:
            raise UserInputError(f"{p} is shorter than 25 ms ({info.frames} samples); remove it or re-run preprocess")
        lengths[p] = int(info.frames)
    audio_seconds = sum(lengths.values()) / SAMPLE_RATE

    t_load = time.monotonic()
    if isinstance(hubert, HubertModel):
        model = hubert
    else:
        dev = torch.device(device) if device is not None else None
        if dev is None:
            dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = load_hubert(hubert, dev, half=dev.type == "cuda" if half is None else half)
    load_seconds = time.monotonic() - t_load
    model.prepare_inference()
    dim = model.output_dim(version)

    exp.feature_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[Path, str] = {}
    if cache.enabled:
        settings = {
            "stage": "hubert_features",
            "weights": _weights_id(model),
            "version": version,
            "dtype": str(model.dtype),
            "normalize": model.cfg.normalize,
        }
        keys = {p: ArrayCache.key(p, settings) for p in paths}

    n_cached = 0
    todo: dict[Path, int] = {}
    for p in paths:
        hit = cache.get(keys[p], f"hubert_{version}") if cache.enabled else None
        if hit is not None and hit.ndim == 2 and hit.shape[1] == dim:
            atomic_np_save(exp.feature_file(p.name), hit.astype(np.float32, copy=False))
            n_cached += 1
        else:
            todo[p] = lengths[p]
    if n_cached:
        _log.info("features %s: %d of %d segments from the cache", version, n_cached, len(paths))

    kind = model.device.type
    seconds = batch_seconds if batch_seconds is not None else DEFAULT_BATCH_SECONDS.get(kind, 30.0)
    batches = _batches(todo, int(seconds * SAMPLE_RATE), MIN_FILL.get(kind, 1.0))
    nan_files: list[str] = []
    failed: list[str] = []
    n_extracted = 0
    n_passes = 0

    def run(group: list[Path]) -> list[tuple[Path, np.ndarray]]:
        nonlocal n_passes
        n_passes += 1
        wavs = [torch.from_numpy(read_wav16k(p)) for p in group]
        with torch.inference_mode():
            feats = [f.float().cpu().numpy() for f in model.extract_many(wavs, version)]
        return list(zip(group, feats))

    for group in progress(batches, f"features {version}", unit="batch", logger=_log):
        try:
            results = run(group)
        except Exception as e:  # a bad batch must not lose the others: retry its segments one by one
            results = []
            if len(group) == 1:
                _log.error("features failed for %s: %s: %s", group[0].name, type(e).__name__, e)
                failed.append(group[0].name)
                continue
            _log.warning(
                "features: a batch of %d failed (%s: %s); retrying one by one", len(group), type(e).__name__, e
            )
            for p in group:
                try:
                    results += run([p])
                except Exception as e1:
                    _log.error("features failed for %s: %s: %s", p.name, type(e1).__name__, e1)
                    failed.append(p.name)
        for p, f in results:
            out = exp.feature_file(p.name)
            if not np.isfinite(f).all():
                _log.error("features of %s contain NaN/inf: not written (segment left out of training)", p.name)
                nan_files.append(p.name)
                out.unlink(missing_ok=True)
                continue
            f = np.ascontiguousarray(f, dtype=np.float32)
            atomic_np_save(out, f)
            if cache.enabled:
                cache.put(keys[p], f, f"hubert_{version}")
            n_extracted += 1

    for name in failed:  # no stale file from an earlier run may stand in for a failed segment
        exp.feature_file(name).unlink(missing_ok=True)
    if len(failed) + len(nan_files) == len(paths):
        raise RVCError(f"feature extraction produced nothing usable for the {len(paths)} segments in {exp.wavs16k_dir}")
    report = FeatureReport(
        version=version,
        device=str(model.device),
        dtype=str(model.dtype).removeprefix("torch."),
        dim=dim,
        n_files=len(paths),
        n_extracted=n_extracted,
        n_cached=n_cached,
        n_forward_passes=n_passes,
        nan_files=tuple(sorted(nan_files)),
        failed=tuple(sorted(failed)),
        audio_seconds=audio_seconds,
        load_seconds=load_seconds,
        wall_seconds=time.monotonic() - start,
        standin_weights=model.standin is not None,
    )
    _log.info(
        "features %s: %d segments (%d extracted, %d cached, %d NaN, %d failed), %.1f s audio in %.1f s (RTF %.3f)",
        version,
        report.n_files,
        n_extracted,
        n_cached,
        len(nan_files),
        len(failed),
        audio_seconds,
        report.wall_seconds,
        report.rtf,
    )
    return report
