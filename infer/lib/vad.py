"""Speech presence: where in a recording someone speaks (Silero VAD, the model in the `silero-vad` wheel).

`SpeechDetector().speech(audios)` takes mono float32 arrays at 16 kHz and returns, per array, the
speech regions as `[(start, end)]` sample ranges. The network (`silero_vad/data/silero_vad.jit`,
about 2 MB, shipped inside the wheel: nothing is downloaded) gives one speech probability per 512
samples (32 ms); silero-vad's own `get_speech_timestamps_from_probs` turns them into regions with its
defaults (threshold 0.5, exit threshold 0.35, speech at least 250 ms, silences of 100 ms split, 30 ms
padding each side).

Speed: the network is a small recurrent model run one 32 ms window at a time, so one call per window
costs more in call overhead than in arithmetic. Recordings are cut into pieces of `CHUNK_S` (5)
seconds and all pieces run side by side as one batch (`audio_forward` on [pieces, samples]), each
piece preceded by `PREROLL` (0.5 s) of the audio before it so the network's state has settled when
its own windows start; the regions differ from one piece per file only near piece starts. A
recording no longer than a piece gets exactly silero's own `get_speech_timestamps` regions (tested).

The network runs on one torch thread (`one_thread`): for a model this small, a second thread costs
more in synchronisation than it gains, badly so on a loaded machine. Measured speeds: bench/README.md.

`get_speech_detector()` gives the process's one detector (loaded on first use, about 0.05 s).
Importing `silero_vad` sets torch's thread count to 1 for the whole process; `load_silero_model`
puts the caller's count back.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SR = 16000
WINDOW = 512  # samples per probability at 16 kHz (32 ms)
CHUNK_S = 5.0  # seconds per batched piece
PREROLL = 16 * WINDOW  # samples before a piece the network runs on first (0.5 s), their output dropped
BATCH = 128  # pieces per network call (128 x 5.5 s = 45 MB of float32 input)


@dataclass(frozen=True)
class SpeechParams:
    """silero-vad's post-processing settings (its defaults)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    pad_ms: int = 30


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside, the caller's count restored after (process-wide setting)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load_silero_model() -> torch.jit.ScriptModule:
    """The JIT Silero VAD model from the wheel, on the CPU, torch's thread count left as it was."""
    import torch

    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # importlib.resources.path, torch.jit.load
            from silero_vad import load_silero_vad

            model = load_silero_vad(onnx=False)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model


class SpeechDetector:
    """Speech regions and probabilities of 16 kHz mono audio (thread-safe: one call at a time)."""

    def __init__(self, params: SpeechParams | None = None) -> None:
        self.params = params or SpeechParams()
        self.model = load_silero_model()
        self._lock = threading.Lock()

    def probabilities(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per array [n] at 16 kHz: speech probabilities [ceil(n / 512)] in [0, 1], float32."""
        import torch

        pieces: list[tuple[int, int, int]] = []  # (audio index, start, end); the probabilities of [start, end)
        step = int(CHUNK_S * SR) // WINDOW * WINDOW
        for i, a in enumerate(audios):
            pieces += [(i, s, min(len(a), s + step)) for s in range(0, len(a), step)]
        pieces.sort(key=lambda p: p[2] - p[1], reverse=True)  # similar lengths together: little padding
        probs: dict[tuple[int, int], np.ndarray] = {}
        with self._lock, torch.inference_mode(), one_thread():
            for b in range(0, len(pieces), BATCH):
                group = pieces[b : b + BATCH]
                n = PREROLL + -(-(group[0][2] - group[0][1]) // WINDOW) * WINDOW
                x = torch.zeros(len(group), n)
                for row, (i, s, e) in enumerate(group):
                    lead = min(s, PREROLL)  # the network's state settles on the audio before the piece
                    seg = np.ascontiguousarray(audios[i][s - lead : e], dtype=np.float32)
                    x[row, PREROLL - lead : PREROLL - lead + len(seg)] = torch.from_numpy(seg)
                out = self.model.audio_forward(x, SR).numpy()
                for row, (i, s, e) in enumerate(group):
                    probs[(i, s)] = out[row, PREROLL // WINDOW : PREROLL // WINDOW + -(-(e - s) // WINDOW)]
        result = []
        for i, a in enumerate(audios):
            parts = [probs[(i, s)] for s in range(0, len(a), step)]
            result.append(np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32))
        return result

    def warm_up(self) -> None:
        """Run the network twice on silence: TorchScript optimises a model on its first calls (seconds)."""
        for _ in range(2):
            self.probabilities([np.zeros(2 * WINDOW * 8, np.float32)] * 2)

    def regions(self, probs: np.ndarray, n_samples: int) -> list[tuple[int, int]]:
        """Speech regions [(start, end)] in samples from one array's probabilities (silero's rules)."""
        from silero_vad import get_speech_timestamps_from_probs

        if n_samples == 0 or probs.size == 0:
            return []
        p = self.params
        ts = get_speech_timestamps_from_probs(
            probs.tolist(),
            sampling_rate=SR,
            threshold=p.threshold,
            min_speech_duration_ms=p.min_speech_ms,
            min_silence_duration_ms=p.min_silence_ms,
            speech_pad_ms=p.pad_ms,
            audio_length_samples=n_samples,
        )
        return [(int(t["start"]), int(t["end"])) for t in ts]

    def speech(self, audios: Sequence[np.ndarray]) -> list[list[tuple[int, int]]]:
        """Per array at 16 kHz: its speech regions as [(start, end)] sample ranges."""
        return [self.regions(p, len(a)) for p, a in zip(self.probabilities(audios), audios, strict=True)]


def speech_seconds(regions: Sequence[tuple[int, int]], sr: int = SR) -> float:
    """Total length of `regions` (non-overlapping sample ranges at `sr`) in seconds."""
    return sum(e - s for s, e in regions) / sr


def overlap_seconds(regions: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end) covered by `regions` (sorted, non-overlapping (start, end) in seconds)."""
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in regions if s < end and e > start)


_shared: SpeechDetector | None = None
_shared_lock = threading.Lock()


def get_speech_detector() -> SpeechDetector:
    """The process's one `SpeechDetector`, loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SpeechDetector()
        return _shared
