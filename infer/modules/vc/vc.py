"""`VC`: load voice models and indexes (cached by content) and convert audio with them.

    vc = VC()                                   # device: CUDA when present, else CPU
    audio, sr = vc.convert(wav, 44100, model="voice.pth", index="added_IVF..._v2.index",
                           f0_up_key=0, f0_method="rmvpe", index_rate=0.75)
    vc.convert_file("in.mp3", "out.wav", model="voice.pth")

Models are small-model files written by us, by RVC WebUI or by Applio (v1/v2, with or without pitch
guidance, 32k/40k/48k), read with `infer.lib.checkpoint.load_small_model` (safe loading). A model or
index is identified by the sha256 of its bytes, so a renamed copy is not loaded twice and a file
replaced under the same name is loaded again. HuBERT and the pitch extractors are loaded once per
`VC` and shared by all models.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infer.lib.audio import average_channels, resample
from infer.lib.config import CONTENT_DIMS
from infer.lib.errors import UserInputError
from infer.lib.fileio import atomic_path, sha256_file
from infer.lib.log import get_logger
from infer.lib.model_variant import CONTENT_VERSIONS
from infer.modules.vc.pipeline import (
    HUBERT_SR,
    ConversionStats,
    ConvertParams,
    FeatureIndex,
    Pipeline,
    WindowConfig,
)

_log = get_logger("vc")

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LoadedModel:
    """A voice model ready to convert: its synthesizer (eval mode, on the VC's device) and facts."""

    sha256: str
    path: Path
    net_g: Any  # infer.lib.models.synthesizer.Synthesizer
    version: str  # "v1" | "v2"
    sample_rate: int  # Hz
    use_f0: bool
    n_speakers: int
    info: str

    @property
    def content_dim(self) -> int:
        return CONTENT_DIMS[self.version]

    def describe(self) -> str:
        pitch = "with pitch guidance" if self.use_f0 else "without pitch guidance"
        return f"{self.path.name}: RVC {self.version} {self.sample_rate // 1000}k {pitch}, {self.n_speakers} speaker(s)"


@dataclass(frozen=True)
class LoadedIndex:
    """A retrieval index with all its vectors in memory."""

    sha256: str
    path: Path
    features: FeatureIndex

    @property
    def dim(self) -> int:
        return self.features.dim


@dataclass(frozen=True)
class Conversion:
    """The result of `VC.convert_detailed`: audio float32 [T] in [-1, 1] at `sample_rate` Hz."""

    audio: np.ndarray
    sample_rate: int
    model: LoadedModel
    index: LoadedIndex | None
    params: ConvertParams
    stats: ConversionStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model.path),
            "model_sha256": self.model.sha256,
            "index": str(self.index.path) if self.index else None,
            "sample_rate": self.sample_rate,
            "seconds": len(self.audio) / self.sample_rate,
            "params": self.params.to_dict(),
            "stats": self.stats.to_dict(),
        }


class _LRU:
    """A bounded map that forgets the least recently used entry first (capacity 0: keeps nothing).
    `hits`: lookups that found their key."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0

    def get(self, key: Hashable) -> Any | None:
        if key not in self.items:
            return None
        self.items.move_to_end(key)
        self.hits += 1
        return self.items[key]

    def put(self, key: Hashable, value: Any) -> None:
        if not self.capacity:
            return
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self.items:
            return self.get(key)
        value = compute()
        self.put(key, value)
        return value


class _ContentCache(_LRU):
    """Loaded objects keyed by file content (sha256), at least one kept, with a stat-keyed hash memo."""

    def __init__(self, capacity: int) -> None:
        super().__init__(max(1, capacity))
        self._hashes: dict[tuple[str, int, int, int], str] = {}

    def digest(self, path: Path) -> str:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(path)
        return self._hashes[key]


class _Memo(_LRU):
    """Recent content features and pitch curves of conversion windows, keyed by the window's samples.

    Converting the same input again with other settings (pitch shift, index rate, another model of
    the same version) skips HuBERT and the pitch extractor, the slow part on a CPU.
    """

    @staticmethod
    def digest(samples: np.ndarray | torch.Tensor) -> str:
        arr = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
        return hashlib.sha1(np.ascontiguousarray(arr, dtype=np.float32).tobytes()).hexdigest()


class _MemoEncoder:
    """HuBERT through the memo (features kept on the CPU, returned on the encoder's device)."""

    def __init__(self, encoder: Any, memo: _Memo, tag: str) -> None:
        self.encoder, self.memo, self.tag = encoder, memo, tag

    def extract(self, wav16k: torch.Tensor, padding_mask: torch.Tensor | None, version: str) -> torch.Tensor:
        if padding_mask is not None:
            return self.encoder.extract(wav16k, padding_mask, version)
        key = ("features", self.tag, version, tuple(wav16k.shape), self.memo.digest(wav16k))
        feats = self.memo.get_or_compute(key, lambda: self.encoder.extract(wav16k, None, version).float().cpu())
        return feats.to(wav16k.device)


def _existing_file(path: PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserInputError(f"{what} {p} does not exist (or is not a file)")
    if p.stat().st_size == 0:
        raise UserInputError(f"{what} {p} is empty")
    return p


def read_feature_index(path: Path) -> FeatureIndex:
    """Read a faiss index and all its vectors; UserInputError when the file is not a faiss index."""
    import faiss

    try:
        index = faiss.read_index(str(path))
    except Exception as e:  # faiss raises RuntimeError with a C++ message
        raise UserInputError(
            f"{path.name} is not a FAISS index file (the .index written by training next to the model): {str(e).splitlines()[0][:200]}"
        ) from None
    if index.ntotal == 0:
        raise UserInputError(f"{path.name} is an empty index (no feature vectors): train the index again")
    try:
        vectors = index.reconstruct_n(0, index.ntotal)
    except RuntimeError:
        ivf = faiss.extract_index_ivf(index)
        ivf.make_direct_map()
        vectors = index.reconstruct_n(0, index.ntotal)
    return FeatureIndex(index=index, vectors=np.ascontiguousarray(vectors, dtype=np.float32))


class VC:
    """Voice conversion with RVC models; see the module docstring.

    device: "cpu", "cuda", ... (default: CUDA when available). half: fp16 for HuBERT and the
    synthesizer (default: True on CUDA). hubert_path: `hubert_base.pt` (default: fetched into the
    weights folder by `infer.lib.weights`). rmvpe_path: `rmvpe.pt` for the rmvpe methods (same
    default). window: how long inputs are cut (default: the reference choice for the device).
    max_models / max_indexes: models / indexes kept loaded (least recently used ones are dropped).
    memo_windows: content features and pitch curves of this many recent windows are kept, so the
    same input converted again with other settings skips HuBERT and pitch extraction (0 = off).
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        half: bool | None = None,
        hubert_path: PathLike | None = None,
        rmvpe_path: PathLike | None = None,
        window: WindowConfig | None = None,
        max_models: int = 2,
        max_indexes: int = 2,
        memo_windows: int = 16,
    ) -> None:
        from infer.lib.device import pick_device

        self.device = pick_device(str(device) if device is not None else None)
        self.half = (self.device.type == "cuda") if half is None else bool(half)
        if self.half and self.device.type != "cuda":
            raise UserInputError("half precision (fp16) conversion needs a CUDA device; use half=False on CPU")
        self.hubert_path = Path(hubert_path) if hubert_path is not None else None
        self.rmvpe_path = Path(rmvpe_path) if rmvpe_path is not None else None
        self.window = window or WindowConfig.for_device(self.device, self.half)
        self._models = _ContentCache(max_models)
        self._indexes = _ContentCache(max_indexes)
        self._hubert: Any = None
        self._f0: dict[str, Any] = {}
        self._memo = _Memo(memo_windows)

    # ------------------------------------------------------------------------------ shared weights
    def _weight(self, name: str) -> Path:
        from infer.lib.weight_downloader import WeightDownloader

        return WeightDownloader().fetch([name])[name]

    def hubert(self) -> Any:
        """The HuBERT content encoder (loaded once)."""
        if self._hubert is None:
            from infer.lib.hubert import load_hubert

            path = self.hubert_path or self._weight("hubert/hubert_base.pt")
            _log.info("loading HuBERT from %s", path)
            self._hubert = load_hubert(str(path), self.device, half=self.half)
        return self._hubert

    def f0_extractor(self, method: str) -> Any:
        """The pitch extractor for `method` (loaded once per method)."""
        if method not in self._f0:
            from infer.lib.f0 import NEEDS_WEIGHTS_FILE, F0Extractor

            kwargs: dict[str, Any] = {}
            if method in ("crepe", "fcpe", "rmvpe"):
                kwargs["device"] = str(self.device)
            if method in NEEDS_WEIGHTS_FILE:
                kwargs["rmvpe_path"] = str(self.rmvpe_path or self._weight("rmvpe/rmvpe.pt"))
            self._f0[method] = F0Extractor(method, **kwargs).load()
        return self._f0[method]

    # ------------------------------------------------------------------------------ models, indexes
    def load_model(self, path: PathLike | LoadedModel) -> LoadedModel:
        """Load (or take from the cache) the voice model in `path`; UserInputError for wrong files."""
        if isinstance(path, LoadedModel):
            return path
        p = _existing_file(path, "model file")
        digest = self._models.digest(p)
        cached = self._models.get(digest)
        if cached is not None:
            return cached if cached.path == p else _replace_path(cached, p)
        from infer.lib.checkpoint import build_generator_from_small_model, load_small_model

        try:
            small = load_small_model(p)
        except UserInputError:
            raise
        except Exception as e:  # a pickle error, a zip error, a dict without the keys we need...
            raise UserInputError(
                f"{p.name} is not an RVC voice model (.pth small model from training, RVC WebUI or Applio): "
                f"{type(e).__name__}: {str(e)[:200]}"
            ) from None
        embedder = small.extras.get("embedder_model")
        if embedder not in (None, "", "contentvec", "hubert_base", "hubert"):
            _log.warning(
                "%s was trained on %r features (an Applio option); this converter uses HuBERT base "
                "(contentvec): the voice will sound wrong",
                p.name,
                embedder,
            )
        net_g = build_generator_from_small_model(small, self.device)
        net_g = net_g.half() if self.half else net_g.float()
        net_g.eval()
        model = LoadedModel(
            sha256=digest,
            path=p,
            net_g=net_g,
            version=str(net_g.cfg.version),
            sample_rate=int(net_g.cfg.sr),
            use_f0=bool(net_g.use_f0),
            n_speakers=int(net_g.emb_g.weight.shape[0]),
            info=str(getattr(small, "info", "") or ""),
        )
        _log.info("loaded %s", model.describe())
        self._models.put(digest, model)
        return model

    def load_index(self, path: PathLike | LoadedIndex, model: LoadedModel | None = None) -> LoadedIndex:
        """Load (or take from the cache) a retrieval index; checks its width against `model`'s."""
        if isinstance(path, LoadedIndex):
            index = path
        else:
            p = _existing_file(path, "index file")
            digest = self._indexes.digest(p)
            cached = self._indexes.get(digest)
            if cached is None:
                cached = LoadedIndex(sha256=digest, path=p, features=read_feature_index(p))
                _log.info("loaded index %s (%d vectors of %d dims)", p.name, cached.features.size, cached.dim)
                self._indexes.put(digest, cached)
            index = cached
        if model is not None and index.dim != model.content_dim:
            kind = f"a {CONTENT_VERSIONS[index.dim]} index" if index.dim in CONTENT_VERSIONS else "not an RVC index"
            raise UserInputError(
                f"index {index.path.name} holds {index.dim}-dim features ({kind}) but model {model.path.name} "
                f"is {model.version} and uses {model.content_dim}-dim features: pick the index trained "
                "together with this model (its file name ends in _{model.version}.index)"
            )
        return index

    def clear(self) -> None:
        """Drop every loaded model, index and extractor (frees memory)."""
        self._models = _ContentCache(self._models.capacity)
        self._indexes = _ContentCache(self._indexes.capacity)
        self._hubert = None
        self._f0.clear()
        self._memo = _Memo(self._memo.capacity)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------ conversion
    def convert_detailed(
        self,
        audio: np.ndarray,
        sr: int,
        model: PathLike | LoadedModel,
        index: PathLike | LoadedIndex | None = None,
        params: ConvertParams | None = None,
    ) -> Conversion:
        """Convert `audio` (float [T] mono or [T, channels], at `sr` Hz) with `model` (and `index`)."""
        params = params or ConvertParams()
        loaded = self.load_model(model)
        idx = self.load_index(index, loaded) if index is not None and str(index) != "" else None
        x = _to_mono_16k(audio, sr)
        pitch_fn: Any = None
        if loaded.use_f0:
            extractor = self.f0_extractor(params.f0_method)
            method = params.f0_method

            def cached_pitch(seg: np.ndarray, n_frames: int) -> np.ndarray:
                key = ("f0", method, n_frames, len(seg), self._memo.digest(seg))
                return self._memo.get_or_compute(key, lambda: extractor.compute(seg, n_frames))

            pitch_fn = cached_pitch

        pipeline = Pipeline(
            loaded.net_g,
            _MemoEncoder(self.hubert(), self._memo, str(self.hubert_path or "default")),
            version=loaded.version,
            content_dim=loaded.content_dim,
            sample_rate=loaded.sample_rate,
            hop=loaded.sample_rate // 100,
            use_f0=loaded.use_f0,
            n_speakers=loaded.n_speakers,
            pitch_fn=pitch_fn,
            index=idx.features if idx is not None else None,
            device=self.device,
            window=self.window,
        )
        out, rate, stats = pipeline.run(x, params)
        _log.info(
            "converted %.1fs in %.1fs (%d window(s); features %.1fs, f0 %.1fs, synthesis %.1fs)%s",
            stats.input_seconds,
            stats.seconds_total,
            stats.windows,
            stats.seconds_features,
            stats.seconds_f0,
            stats.seconds_synthesis,
            f"; index {idx.path.name} at {params.index_rate}" if stats.index_used and idx else "",
        )
        return Conversion(audio=out, sample_rate=rate, model=loaded, index=idx, params=params, stats=stats)

    def convert(
        self,
        audio: np.ndarray,
        sr: int,
        model: PathLike | LoadedModel,
        index: PathLike | LoadedIndex | None = None,
        *,
        f0_up_key: float = 0,
        f0_method: str = "rmvpe",
        index_rate: float = 0.75,
        filter_radius: int = 3,
        resample_sr: int = 0,
        rms_mix_rate: float = 0.25,
        protect: float = 0.33,
        speaker_id: int = 0,
        seed: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Convert `audio` at `sr` Hz; returns (audio float32 [T'] in [-1, 1], output rate in Hz).

        The parameters are `ConvertParams`'s (see there); the output rate is the model's, or
        `resample_sr` when set.
        """
        params = ConvertParams(
            f0_up_key=f0_up_key,
            f0_method=f0_method,
            index_rate=index_rate,
            filter_radius=filter_radius,
            resample_sr=resample_sr,
            rms_mix_rate=rms_mix_rate,
            protect=protect,
            speaker_id=speaker_id,
            seed=seed,
        )
        result = self.convert_detailed(audio, sr, model, index, params)
        return result.audio, result.sample_rate

    def convert_file(
        self,
        input_path: PathLike,
        output_path: PathLike,
        model: PathLike | LoadedModel,
        index: PathLike | LoadedIndex | None = None,
        params: ConvertParams | None = None,
    ) -> Conversion:
        """Decode `input_path` (any format ffmpeg reads), convert, write `output_path` (atomically).

        The output format follows the extension (.wav 16-bit PCM, .flac, .ogg); models and index are
        checked before the audio is decoded.
        """
        loaded = self.load_model(model)
        idx = self.load_index(index, loaded) if index is not None and str(index) != "" else None
        out_path = Path(output_path)
        fmt = _output_format(out_path)
        from infer.lib.audio import load_audio

        audio = load_audio(input_path, HUBERT_SR)
        result = self.convert_detailed(audio, HUBERT_SR, loaded, idx, params)
        write_audio(out_path, result.audio, result.sample_rate, fmt)
        return result


# ------------------------------------------------------------------------------------ helpers
def _replace_path(model: LoadedModel, path: Path) -> LoadedModel:
    from dataclasses import replace

    return replace(model, path=path)


def _to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """float [T] or [T, C] at `sr` -> float32 [T'] at 16 kHz (soxr)."""
    x = np.asarray(audio)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:  # [T, C], or [C, T] when the second axis is too long for channels
        x = average_channels(x, axis=1 if x.shape[1] <= 8 else 0)
    if x.ndim != 1:
        raise UserInputError(f"expected audio shaped [samples] or [samples, channels], got {x.shape}")
    if not isinstance(sr, int | np.integer) or sr < 1000:
        raise UserInputError(f"sample rate must be an integer number of Hz, got {sr!r}")
    if len(x):
        x = resample(x, int(sr), HUBERT_SR, fix_length=False)
    return x


_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def _output_format(path: Path) -> tuple[str, str]:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(f"output {path.name}: unsupported extension; use one of {', '.join(_FORMATS)}")
    return fmt


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int, fmt: tuple[str, str] | None = None) -> Path:
    """Write float audio [T] to `path` atomically (.wav 16-bit PCM, .flac, .ogg by extension)."""
    import soundfile as sf

    path = Path(path)
    container, subtype = fmt or _output_format(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, format=container, subtype=subtype)
    return path


def pick_preview_excerpt(audio: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """The `seconds`-long stretch of `audio` with the most energy (all of it when shorter)."""
    n = int(round(seconds * sr))
    if len(audio) <= n:
        return audio
    hop = max(1, sr // 10)
    energy = np.square(audio.astype(np.float64))
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    starts = np.arange(0, len(audio) - n + 1, hop)
    best = int(starts[np.argmax(csum[starts + n] - csum[starts])])
    return audio[best : best + n]


def write_preview(
    out_path: PathLike,
    model: PathLike | LoadedModel,
    source: np.ndarray,
    source_sr: int,
    index: PathLike | LoadedIndex | None = None,
    *,
    vc: VC | None = None,
    seconds: float = 8.0,
    params: ConvertParams | None = None,
) -> Conversion:
    """Convert the loudest `seconds` of `source` (held-out audio of the user's voice) to `out_path`.

    For the training run's `preview.wav`; `vc` reuses loaded weights (a new CPU/GPU `VC` otherwise).
    """
    vc = vc or VC()
    excerpt = pick_preview_excerpt(np.asarray(source, np.float32), source_sr, seconds)
    result = vc.convert_detailed(excerpt, source_sr, model, index, params)
    write_audio(out_path, result.audio, result.sample_rate)
    return result
