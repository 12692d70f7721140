"""Speech enhancement (ClearerVoice-Studio's MossFormer2_SE_48K) and silence trimming.

`AudioEnhancer(checkpoint_dir, device)` builds the MossFormer2_SE_48K network from the `clearvoice`
package's own model class and runs clearvoice's own 48 kHz decoding function (fbank + deltas ->
mask -> masked STFT -> iSTFT), but loads the weights itself from an explicit folder:

    <weights_dir>/mossformer2/MossFormer2_SE_48K/
        last_best_checkpoint        text: the checkpoint file's name on the first line
        last_best_checkpoint.pt     torch.save({"model": state_dict, ...})   (keys may carry "module.")

This is the layout clearvoice's Hugging Face repository (alibabasglab/MossFormer2_SE_48K) has. We do
not use `clearvoice.ClearVoice`: it looks for `checkpoints/<model>` relative to the current
directory, downloads there, and when that fails only prints a warning and goes on with RANDOM
weights. Here a missing or mismatched checkpoint raises `WeightsError`, loading is strict, and after
loading a few tensors are compared with the file to prove the real weights are in the network.

Audio is processed in chunks of `chunk_s` seconds with `overlap_s` seconds of linear cross-fade, so
memory stays bounded for any length; the model runs at 48 kHz and the result is resampled back to
the caller's rate. `get_enhancer()` keeps one instance per process.

`trim_silence(audio, sr, top_db)` removes leading and trailing silence only (librosa's rule), keeping
pauses; `trim_range` gives the same cut as a sample range, for file-backed audio too.
"""

from __future__ import annotations

import os
import threading
import warnings
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infer.lib.errors import WeightsError
from infer.lib.log import get_logger

if TYPE_CHECKING:
    from infer.lib.slicer import Samples

_log = get_logger("enhance")

MODEL_NAME = "MossFormer2_SE_48K"
MODEL_SR = 48000
POINTER_FILE = "last_best_checkpoint"
CHECKPOINT_FILE = "last_best_checkpoint.pt"
# The decoding settings of clearvoice's config/inference/MossFormer2_SE_48K.yaml (clearvoice 0.1.2).
_ONE_TIME_DECODE_S = 20
_WIN_LEN = 1920
_DECODE_ARGS = dict(
    network=MODEL_NAME,
    sampling_rate=MODEL_SR,
    one_time_decode_length=_ONE_TIME_DECODE_S,
    decode_window=4,
    win_type="hamming",
    win_len=_WIN_LEN,
    win_inc=384,
    fft_len=1920,
    num_mels=60,
)
_MIN_SAMPLES = 2 * _WIN_LEN


def mossformer2_dir(weights_dir: str | os.PathLike[str]) -> Path:
    """The checkpoint folder inside a weights folder: `<weights_dir>/mossformer2/MossFormer2_SE_48K`."""
    return Path(weights_dir) / "mossformer2" / MODEL_NAME


def build_mossformer2_se_48k():
    """The MossFormer2_SE_48K network (clearvoice's class, untrained), in eval mode."""
    from clearvoice.models.mossformer2_se.mossformer2_se_wrapper import MossFormer2_SE_48K

    return MossFormer2_SE_48K(Namespace()).model.eval()


def _checkpoint_path(checkpoint_dir: Path) -> Path:
    pointer = checkpoint_dir / POINTER_FILE
    if not checkpoint_dir.is_dir():
        raise WeightsError(
            f"MossFormer2 weights are missing: {checkpoint_dir} does not exist "
            "(fetch them with `python -m tools.download_weights`, or turn audio enhancement off)"
        )
    if not pointer.is_file():
        raise WeightsError(f"MossFormer2 weights are incomplete: {pointer} is missing")
    name = (
        pointer.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip() if pointer.stat().st_size else ""
    )
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise WeightsError(f"{pointer} does not name a checkpoint file in its folder (got {name!r})")
    ckpt = checkpoint_dir / name
    if not ckpt.is_file():
        raise WeightsError(f"MossFormer2 weights are incomplete: {ckpt} (named in {pointer.name}) is missing")
    return ckpt


def load_mossformer2(checkpoint_dir: str | os.PathLike[str], device: str = "cpu"):
    """Build the network and load the checkpoint from `checkpoint_dir`; return (model, standin_description|None).

    Raises `WeightsError` when files are missing, unreadable, or do not match the network exactly.
    """
    import torch

    from infer.lib.standin import pop_standin_marker, warn_standin

    ckpt_path = _checkpoint_path(Path(checkpoint_dir))
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(f"cannot read the MossFormer2 checkpoint {ckpt_path}: {e}") from e
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{ckpt_path} is not a MossFormer2 checkpoint (got {type(ckpt).__name__})")
    standin = pop_standin_marker(ckpt)
    state = ckpt.get("model", ckpt)
    if not isinstance(state, dict):
        raise WeightsError(f"{ckpt_path}: 'model' is not a state dict")
    standin = pop_standin_marker(state) or standin
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    model = build_mossformer2_se_48k()
    expected = model.state_dict(keep_vars=True)
    # Trained tensors must all come from the file. Computed tables (positional/rotary frequencies: buffers
    # and frozen parameters) may be absent in files saved with other library versions: then the
    # network's own values stay. Extra keys in the file are reported and ignored.
    trained = {k for k, v in expected.items() if isinstance(v, torch.nn.Parameter) and v.requires_grad}
    missing = sorted(set(expected) - set(state))
    missing_trained = [k for k in missing if k in trained]
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing_trained or wrong:
        raise WeightsError(
            f"{ckpt_path} does not match MossFormer2_SE_48K: {len(missing_trained)} trained tensors missing "
            f"{missing_trained[:3]}, {len(wrong)} with wrong shapes {wrong[:3]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}"
        )
    if missing or unexpected:
        _log.info(
            "%s: %d computed table(s) not in the file (kept as computed), %d extra key(s) ignored %s",
            ckpt_path.name, len(missing), len(unexpected), unexpected[:3],
        )  # fmt: skip
    full = {k: v.detach() for k, v in expected.items()}
    full.update({k: state[k].float() for k in expected if k in state})
    model.load_state_dict(full, strict=True)
    # Prove the file's numbers are in the network: every trained tensor equals the file's.
    loaded = model.state_dict()
    for k in sorted(trained):
        if not torch.equal(loaded[k], state[k].float()):
            raise WeightsError(f"MossFormer2 weights did not load: {k} differs from {ckpt_path}")
    if standin is not None:
        warn_standin("MossFormer2_SE_48K (audio enhancement)", standin)
    model.to(device)
    _log.info("loaded %s from %s%s", MODEL_NAME, ckpt_path, " (STAND-IN)" if standin else "")
    return model, standin


class AudioEnhancer:
    """MossFormer2_SE_48K speech enhancement; `enhance(audio[T], sr) -> audio[T]` at the same rate."""

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike[str],
        device: str = "cpu",
        chunk_s: float = 10.0,
        overlap_s: float = 1.0,
    ):
        if not 0 < overlap_s < chunk_s <= _ONE_TIME_DECODE_S:
            raise ValueError("AudioEnhancer: need 0 < overlap_s < chunk_s <= 20")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = str(device)
        self.chunk = int(chunk_s * MODEL_SR)
        self.overlap = int(overlap_s * MODEL_SR)
        self.model, self.standin = load_mossformer2(self.checkpoint_dir, self.device)
        if self.device.startswith("cuda"):
            from infer.lib.device import track_gpu_model

            track_gpu_model(self.model)  # moved aside while training runs (one instance per process)
        self._args = Namespace(**_DECODE_ARGS)

    @property
    def is_standin(self) -> bool:
        return self.standin is not None

    def _run(self, x: np.ndarray) -> np.ndarray:
        """One chunk at 48 kHz ([n] float32, n <= 20 s) through clearvoice's decoder."""
        import torch
        from clearvoice.utils.decode import decode_one_audio_mossformer2_se_48k

        n = x.shape[0]
        if n < _MIN_SAMPLES:
            x = np.pad(x, (0, _MIN_SAMPLES - n))
        with torch.inference_mode(), warnings.catch_warnings():
            # clearvoice's iSTFT pads the last frame and says so on every call
            warnings.filterwarnings("ignore", message="The length of signal is shorter", category=UserWarning)
            warnings.filterwarnings("ignore", message="stft with return_complex=False", category=UserWarning)
            y = decode_one_audio_mossformer2_se_48k(
                self.model, torch.device(self.device), x[None, :].astype(np.float32), self._args
            )
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if y.shape[0] < n:
            y = np.pad(y, (0, n - y.shape[0]))
        return y[:n]

    def enhance_48k(self, audio: np.ndarray) -> np.ndarray:
        """Enhance mono 48 kHz `audio` [T] in overlapping chunks; returns float32 [T]."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        total = audio.shape[0]
        if total <= self.chunk:
            return self._run(audio)
        out = np.zeros(total, dtype=np.float32)
        step = self.chunk - self.overlap
        fade_in = np.linspace(0.0, 1.0, self.overlap, dtype=np.float32)
        start = 0
        while start < total:
            end = min(start + self.chunk, total)
            y = self._run(audio[start:end])
            if start > 0:
                ov = min(self.overlap, end - start)
                y[:ov] *= fade_in[:ov]
                out[start : start + ov] *= 1.0 - fade_in[:ov]
            out[start:end] += y
            if end == total:
                break
            start += step
        return out

    def enhance(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Enhance mono `audio` [T] at `sr` Hz: resampled to 48 kHz for the model and back; float32 [T]."""
        from infer.lib.audio import resample

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            return audio
        y = resample(self.enhance_48k(resample(audio, sr, MODEL_SR)), MODEL_SR, sr)  # as `librosa.resample`
        y = y[: audio.shape[0]]
        if y.shape[0] < audio.shape[0]:
            y = np.pad(y, (0, audio.shape[0] - y.shape[0]))
        return y.astype(np.float32, copy=False)


_shared: dict[tuple[str, str], AudioEnhancer] = {}
_shared_lock = threading.Lock()


def get_enhancer(checkpoint_dir: str | os.PathLike[str], device: str = "cpu") -> AudioEnhancer:
    """The process's one `AudioEnhancer` for (checkpoint_dir, device), loaded on first use."""
    key = (str(Path(checkpoint_dir).resolve()), str(device))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = AudioEnhancer(checkpoint_dir, device)
        return _shared[key]


def trim_silence(audio: np.ndarray, sr: int, top_db: float = 40.0) -> np.ndarray:
    """Remove leading and trailing silence (quieter than `top_db` below the peak); pauses inside stay.

    Frames of 2048/512 samples at 44.1 kHz scaled to `sr`. Returns a view of `audio`; an all-silent
    input comes back empty. The same cut as `librosa.effects.trim(audio, top_db=top_db, frame_length,
    hop_length)` (frame RMS in dB below the loudest frame), computed by `frame_rms` in blocks.
    """
    lo, hi = trim_range(audio, sr, top_db)
    return audio[lo:hi]


def trim_range(audio: Samples, sr: int, top_db: float = 40.0, peak: float | None = None) -> tuple[int, int]:
    """`trim_silence`'s cut as a sample range [lo, hi) ((0, 0) when all silent). `audio` may be
    file-backed (`Samples`, read in blocks); `peak` (max |sample|) saves a pass over it when known."""
    from infer.lib.slicer import frame_rms

    total = len(audio)
    if peak is None:
        peak = float(np.abs(np.asarray(audio[0:total])).max()) if total else 0.0
    if total == 0 or peak < 1e-5:  # empty or digital silence (below -100 dBFS)
        return 0, 0
    scale = sr / 44100
    frame = max(64, int(2 ** round(np.log2(2048 * scale))))
    hop = frame // 4
    rms = frame_rms(audio, frame, hop)
    ref = rms.max()  # amplitude_to_db(rms, ref=np.max, amin=1e-5) > -top_db, as librosa computes it
    db = 10.0 * np.log10(np.maximum(1e-10, np.square(rms)))
    db -= 10.0 * np.log10(np.maximum(1e-10, ref**2))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]) * hop, min(total, (int(loud[-1]) + 1) * hop)
