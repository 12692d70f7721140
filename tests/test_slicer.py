"""`infer.lib.slicer`: cuts at long silences only; the block-wise frame RMS gives librosa's result exactly."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from infer.lib.slicer import frame_rms


@pytest.mark.parametrize(("frame", "hop", "block"), [(2400, 600, 8192), (2048, 512, 7), (64, 16, 1), (255, 100, 3)])
def test_frame_rms_is_librosa_rms_bit_for_bit(speech_quiet_ends, frame, hop, block):
    speech = speech_quiet_ends
    ref = librosa.feature.rms(y=speech, frame_length=frame, hop_length=hop, center=True, pad_mode="constant")[0]
    got = frame_rms(speech, frame, hop, block=block)
    assert got.dtype == ref.dtype == np.float32
    assert np.array_equal(got, ref)
    x64 = speech[:50000].astype(np.float64)
    ref64 = librosa.feature.rms(y=x64, frame_length=frame, hop_length=hop, center=True, pad_mode="constant")[0]
    assert np.array_equal(frame_rms(x64, frame, hop, block=block), ref64)


def test_slicer_cuts_long_silences_only():
    from infer.lib.slicer import Slicer, SlicerParams

    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    z = lambda s: np.zeros(int(s * sr), np.float32)  # noqa: E731
    # tone 2 s | 1 s silence (cut, 0.5 s kept before the next tone) | tone | 0.2 s pause (kept) | tone | 1 s tail
    audio = np.concatenate([tone, z(1.0), tone, z(0.2), tone, z(1.0)])
    chunks = Slicer(sr).slice(audio)
    assert len(chunks) == 2
    assert abs(len(chunks[0]) / sr - 2.0) < 0.08
    assert abs(len(chunks[1]) / sr - 4.7) < 0.08
    # chunks are views of the input: the second starts 0.5 s before the second tone (at 3.0 s)
    start = (chunks[1].__array_interface__["data"][0] - audio.__array_interface__["data"][0]) // audio.itemsize
    assert np.shares_memory(chunks[0], audio) and abs(start / sr - 2.5) < 0.05
    assert Slicer(sr).ranges(audio) == [(0, len(chunks[0])), (start, start + len(chunks[1]))]
    assert Slicer(sr).ranges(tone) == [(0, tone.size)]  # no silence: the whole input back
    assert np.array_equal(Slicer(sr).slice(tone)[0], tone)
    with pytest.raises(ValueError):
        SlicerParams(min_length_ms=100, min_interval_ms=400)
