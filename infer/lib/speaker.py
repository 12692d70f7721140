"""Who is speaking: speaker embeddings (resemblyzer's GE2E encoder) and how alike two voices are.

`SpeakerEncoder().embed(speech_arrays)` gives one 256-dim unit vector per array of 16 kHz speech.
The encoder is resemblyzer 0.1.4's `VoiceEncoder` with the `pretrained.pt` its wheel ships (17 MB, a
3-layer LSTM over 40-band mel frames; nothing is downloaded). An embedding is the normalised mean of
the embeddings of non-overlapping 1.6 s pieces ("partials") of the speech, at most
`PARTIALS_PER_MINUTE` per minute, spread evenly; every partial of every array goes through the
network in one batch, on one torch thread (see `infer.lib.vad`): 10 minutes of speech take about
0.7 s on a quiet CPU core, where resemblyzer's own `embed_utterance` (overlapping partials, one
batch per file) took about 30 s.

Similarity is the cosine of two embeddings (the dot product of unit vectors). Calibration on this
encoder (figures in `docs` of `infer/modules/train/datacheck.py` and the README):

- the same voice, clean: 0.95-0.99 (joe_10min's files to their centre 0.98-0.99, any two files >= 0.95);
- the same voice through noise (pink, about 20 dB SNR) 0.85, reverberation 0.87, a telephone band
  (300-3400 Hz at 8 kHz) 0.73;
- other voices: 0.47-0.58 (five espeak-ng voices and four other-language espeak voices against joe);
  the literature on this encoder gives 0.5-0.75 for different real people.

So `OTHER_SPEAKER` = 0.70: below it a file is "someone else" (no same-voice condition tried went
below 0.73); `UNSURE_SPEAKER` = 0.80: between the two a file is kept with a warning (another voice,
or very different recording conditions).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from resemblyzer import VoiceEncoder

SR = 16000
PARTIAL_FRAMES = 160  # 10 ms mel frames per partial: 1.6 s
PARTIAL_SAMPLES = PARTIAL_FRAMES * 160
PARTIALS_PER_MINUTE = 6
MIN_PARTIALS = 4  # an array gets at least this many partials when its speech is long enough
OTHER_SPEAKER = 0.70
UNSURE_SPEAKER = 0.80
SAME_GROUP = 0.80  # two files at least this alike count as one voice when finding the main speaker
EMBED_DIM = 256
MAX_CANDIDATES = 1000


def load_voice_encoder(device: str = "cpu") -> VoiceEncoder:
    """resemblyzer's `VoiceEncoder` with its wheel's `pretrained.pt` (a state dict; torch.load's
    default `weights_only=True` in torch >= 2.6 reads it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.morphology, pkg_resources
        from resemblyzer import VoiceEncoder

    enc = VoiceEncoder(device=device, verbose=False)
    enc.eval()
    return enc


class SpeakerEncoder:
    """Speaker embeddings of 16 kHz speech (thread-safe: one call at a time)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.model = load_voice_encoder(device)
        self._lock = threading.Lock()

    @staticmethod
    def partial_starts(n_samples: int) -> list[int]:
        """Start samples of the partials of an array of `n_samples`: non-overlapping 1.6 s pieces, at
        most max(MIN_PARTIALS, PARTIALS_PER_MINUTE per minute), evenly spread; one (zero-padded) when
        the array is shorter than a partial, none when it is empty."""
        if n_samples <= 0:
            return []
        n_full = n_samples // PARTIAL_SAMPLES
        if n_full == 0:
            return [0]
        cap = max(MIN_PARTIALS, int(np.ceil(PARTIALS_PER_MINUTE * n_samples / (60 * SR))))
        idx = np.linspace(0, n_full - 1, min(n_full, cap)).round().astype(int)
        return [int(i) * PARTIAL_SAMPLES for i in sorted(set(idx.tolist()))]

    def embed_partials(self, speech: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per array of 16 kHz speech: its partials' embeddings [n_partials, 256] (unit rows; [0, 256]
        for an empty array)."""
        import torch

        pieces: list[np.ndarray] = []
        owner: list[int] = []
        for i, x in enumerate(speech):
            for s in self.partial_starts(len(x)):
                piece = np.zeros(PARTIAL_SAMPLES, np.float32)
                seg = np.asarray(x[s : s + PARTIAL_SAMPLES], dtype=np.float32)
                piece[: len(seg)] = seg
                pieces.append(piece)
                owner.append(i)
        mels = mel_frames(np.stack(pieces)) if pieces else np.zeros((0, PARTIAL_FRAMES, 40), np.float32)
        out = [np.zeros((0, EMBED_DIM), np.float32) for _ in speech]
        if not pieces:
            return out
        from infer.lib.vad import one_thread

        with self._lock, torch.inference_mode(), one_thread():
            batch = torch.from_numpy(mels).to(self.model.device)
            emb = torch.cat([self.model(batch[b : b + 256]) for b in range(0, len(batch), 256)]).cpu().numpy()
        own = np.asarray(owner)
        return [emb[own == i] if (own == i).any() else out[i] for i in range(len(speech))]

    def warm_up(self) -> None:
        """One embedding of noise: the first librosa and LSTM calls load and prepare code (seconds)."""
        self.embed([np.random.default_rng(0).standard_normal(PARTIAL_SAMPLES).astype(np.float32)])

    def embed(self, speech: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """Per array of 16 kHz speech: its embedding [256] (unit vector), None for an empty array."""
        return [mean_embedding(p) if len(p) else None for p in self.embed_partials(speech)]


def mel_frames(pieces: np.ndarray) -> np.ndarray:
    """resemblyzer's encoder input for pieces [n, 25600] of 16 kHz audio: mel power frames [n, 160, 40]
    (its `wav_to_mel_spectrogram`: 25 ms windows, 10 ms hop, 40 bands), all pieces in one librosa call."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from resemblyzer import hparams as hp

    mel = librosa.feature.melspectrogram(
        y=pieces,
        sr=hp.sampling_rate,
        n_fft=int(hp.sampling_rate * hp.mel_window_length / 1000),
        hop_length=int(hp.sampling_rate * hp.mel_window_step / 1000),
        n_mels=hp.mel_n_channels,
    )  # [n, 40, 161]
    return np.ascontiguousarray(mel.transpose(0, 2, 1)[:, :PARTIAL_FRAMES], dtype=np.float32)


def mean_embedding(vectors: np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """The normalised (weighted) mean of unit vectors [n, 256] -> [256]."""
    m = np.average(np.asarray(vectors, dtype=np.float64), axis=0, weights=weights)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1: the same voice; see the module docstring's scale)."""
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def main_speaker(embeddings: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[np.ndarray, list[int]]:
    """The dataset's own voice: (centre [256], indices of the files in its group).

    The group is the largest (by `weights`, seconds of speech) set of files at least `SAME_GROUP` alike
    to one of them; the centre is the weighted mean of that group's embeddings. A few files of another
    voice, or a file of noise that slipped through, do not pull the centre towards them.
    """
    e = np.stack([np.asarray(v, dtype=np.float32) for v in embeddings])
    w = np.asarray(weights, dtype=np.float64)
    # every file is a candidate centre up to MAX_CANDIDATES, then an even spread of them (memory
    # [candidates, files]: 10,000 clips of a dataset zip stay at 40 MB)
    cand = np.unique(np.linspace(0, len(e) - 1, min(len(e), MAX_CANDIDATES)).round().astype(int))
    sim = e[cand] @ e.T
    support = [(float(w[sim[k] >= SAME_GROUP].sum()), float(sim[k] @ w), int(i)) for k, i in enumerate(cand)]
    best = max(support)
    row = sim[int(np.flatnonzero(cand == best[2])[0])]
    group = [int(j) for j in np.flatnonzero(row >= SAME_GROUP)]
    return mean_embedding(e[group], w[group]), group


def reading(sim: float) -> str:
    """A plain reading of a similarity to the training speaker, e.g. "0.86: close to the speaker"."""
    if sim >= 0.90:
        words = "sounds like the speaker"
    elif sim >= UNSURE_SPEAKER:
        words = "close to the speaker"
    elif sim >= OTHER_SPEAKER:
        words = "somewhat like the speaker"
    else:
        words = "does not sound like the speaker"
    return f"{sim:.2f}: {words}"


_shared: dict[str, SpeakerEncoder] = {}
_shared_lock = threading.Lock()


def get_speaker_encoder(device: str = "cpu") -> SpeakerEncoder:
    """The process's one `SpeakerEncoder` for `device`, loaded on first use (about 1 s: librosa)."""
    with _shared_lock:
        if device not in _shared:
            _shared[device] = SpeakerEncoder(device)
        return _shared[device]
