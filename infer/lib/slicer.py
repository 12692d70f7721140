"""Cutting long recordings at silences (the reference RVC slicer's behaviour, our own code).

The waveform's RMS is computed per hop (`frame_rms`: `librosa.feature.rms`'s values with centred frames
and zero padding, computed block by block without librosa). A run of
frames below `threshold_db` that is at least `min_interval_ms` long, once the current clip is at least
`min_length_ms` long, becomes a cut; of the silence at most `max_sil_kept_ms` is kept on each side,
the cut points placed at the quietest frames. Leading silence longer than `max_sil_kept_ms` is cut
away; trailing silence of at least `min_interval_ms` too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np


class Samples(Protocol):
    """Mono audio [T]: a float array, or a file-backed sequence that reads `x[a:b]` on demand."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


def frame_rms(audio: Samples, frame_length: int, hop_length: int, block: int = 8192) -> np.ndarray:
    """RMS of centred, zero-padded frames: float32 [1 + T // hop_length] for `audio` [T].

    Bit for bit `librosa.feature.rms(y=audio, frame_length=..., hop_length=..., center=True,
    pad_mode="constant")[0]` (same frame layout, float32 squares, same reduction), but `block` frames
    at a time, reading only the samples those frames cover: memory stays small whatever the length
    (librosa squares every frame at once: frame_length / hop_length times the audio), `audio` may be
    anything `Samples` (a file-backed sequence), and librosa's feature modules are not needed.
    """
    total = len(audio)
    pad = frame_length // 2
    if total + 2 * pad < frame_length:
        raise ValueError(f"audio of {total} samples is too short for {frame_length}-sample frames")
    n = 1 + (total + 2 * pad - frame_length) // hop_length
    out = np.empty(n, dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        lo, hi = a * hop_length - pad, (b - 1) * hop_length + frame_length - pad  # samples of frames a..b-1
        chunk = np.asarray(audio[max(lo, 0) : min(hi, total)])
        if lo < 0 or hi > total:
            chunk = np.pad(chunk, (max(0, -lo), max(0, hi - total)))
        frames = np.lib.stride_tricks.sliding_window_view(chunk, frame_length)[::hop_length].T  # [frame, b - a]
        out[a:b] = np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=0))
    return out


@dataclass(frozen=True)
class SlicerParams:
    """The slicer's settings (the reference preprocessing values by default)."""

    threshold_db: float = -42.0
    min_length_ms: int = 1500
    min_interval_ms: int = 400
    hop_ms: int = 15
    max_sil_kept_ms: int = 500

    def __post_init__(self) -> None:
        if not self.min_length_ms >= self.min_interval_ms >= self.hop_ms > 0:
            raise ValueError("SlicerParams: need min_length_ms >= min_interval_ms >= hop_ms > 0")
        if self.max_sil_kept_ms < self.hop_ms:
            raise ValueError("SlicerParams: need max_sil_kept_ms >= hop_ms")

    def to_dict(self) -> dict:
        return asdict(self)


class Slicer:
    """`Slicer(sr, params).slice(audio[T]) -> list of views of audio` (in order, non-overlapping)."""

    def __init__(self, sr: int, params: SlicerParams | None = None):
        p = params or SlicerParams()
        self.params = p
        self.sr = int(sr)
        self.threshold = 10 ** (p.threshold_db / 20.0)
        self.hop = round(sr * p.hop_ms / 1000)
        interval_samples = sr * p.min_interval_ms / 1000
        self.win = min(round(interval_samples), 4 * self.hop)
        self.min_length = round(sr * p.min_length_ms / 1000 / self.hop)  # in frames
        self.min_interval = round(interval_samples / self.hop)
        self.max_sil_kept = round(sr * p.max_sil_kept_ms / 1000 / self.hop)

    def silence_tags(self, audio: Samples) -> tuple[list[tuple[int, int]], int]:
        """The silent ranges to cut, in frames, and the number of frames."""
        rms = frame_rms(audio, self.win, self.hop)
        n = rms.shape[0]
        tags: list[tuple[int, int]] = []
        sil_start: int | None = None
        clip_start = 0
        keep = self.max_sil_kept
        for i in range(n):
            if rms[i] < self.threshold:
                if sil_start is None:
                    sil_start = i
                continue
            if sil_start is None:
                continue
            leading = sil_start == 0 and i > keep
            middle = i - sil_start >= self.min_interval and i - clip_start >= self.min_length
            if not leading and not middle:
                sil_start = None
                continue
            if i - sil_start <= keep:
                pos = sil_start + int(rms[sil_start : i + 1].argmin())
                tags.append((0, pos) if sil_start == 0 else (pos, pos))
                clip_start = pos
            elif i - sil_start <= 2 * keep:
                pos = i - keep + int(rms[i - keep : sil_start + keep + 1].argmin())
                pos_l = sil_start + int(rms[sil_start : sil_start + keep + 1].argmin())
                pos_r = i - keep + int(rms[i - keep : i + 1].argmin())
                if sil_start == 0:
                    tags.append((0, pos_r))
                    clip_start = pos_r
                else:
                    tags.append((min(pos_l, pos), max(pos_r, pos)))
                    clip_start = max(pos_r, pos)
            else:
                pos_l = sil_start + int(rms[sil_start : sil_start + keep + 1].argmin())
                pos_r = i - keep + int(rms[i - keep : i + 1].argmin())
                tags.append((0, pos_r) if sil_start == 0 else (pos_l, pos_r))
                clip_start = pos_r
            sil_start = None
        if sil_start is not None and n - sil_start >= self.min_interval:
            end = min(n, sil_start + keep)
            pos = sil_start + int(rms[sil_start : end + 1].argmin())
            tags.append((pos, n + 1))
        return tags, n

    def ranges(self, audio: Samples) -> list[tuple[int, int]]:
        """The chunks of `slice` as [(start, end)] sample ranges (in order, non-overlapping, non-empty).

        `audio` [T] may be file-backed (`Samples`): only its RMS frames are held in memory.
        """
        total = len(audio)
        if total <= self.min_length:  # (samples against frames: the reference's own comparison)
            return [(0, total)]
        tags, n = self.silence_tags(audio)
        if not tags:
            return [(0, total)]
        bounds = []  # chunk boundaries in frames
        if tags[0][0] > 0:
            bounds.append((0, tags[0][0]))
        bounds += [(a_end, b_start) for (_, a_end), (b_start, _) in zip(tags[:-1], tags[1:])]
        if tags[-1][1] < n:
            bounds.append((tags[-1][1], n))
        spans = [(begin * self.hop, min(total, end * self.hop)) for begin, end in bounds]
        return [(a, b) for a, b in spans if b > a]

    def slice(self, audio: np.ndarray) -> list[np.ndarray]:
        """Split mono `audio` [T] at long silences; short audio (<= min length) comes back whole (views)."""
        if audio.ndim != 1:
            raise ValueError(f"Slicer expects mono audio [T], got shape {audio.shape}")
        return [audio[a:b] for a, b in self.ranges(audio)]
