"""The librosa-free helpers the preprocessing workers use (issue 10) give librosa's results exactly."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from infer.lib.enhance import trim_silence
from infer.lib.slicer import frame_rms
from infer.modules.train.preprocess import resample_to_16k


@pytest.fixture(scope="module")
def speech(joe_1min) -> np.ndarray:
    """12 s of joe at 40 kHz with 1.5 s of near-silence before and 2 s after (float32)."""
    audio, sr = sf.read(str(sorted(Path(joe_1min).glob("*.wav"))[0]), dtype="float32")
    audio = librosa.resample(audio[: 12 * sr], orig_sr=sr, target_sr=40000)
    rng = np.random.default_rng(0)
    quiet = lambda n: (rng.standard_normal(n) * 1e-4).astype(np.float32)  # noqa: E731
    return np.concatenate([quiet(60000), audio, quiet(80000)])


@pytest.mark.parametrize(("frame", "hop", "block"), [(2400, 600, 8192), (2048, 512, 7), (64, 16, 1), (255, 100, 3)])
def test_frame_rms_is_librosa_rms_bit_for_bit(speech, frame, hop, block):
    ref = librosa.feature.rms(y=speech, frame_length=frame, hop_length=hop, center=True, pad_mode="constant")[0]
    got = frame_rms(speech, frame, hop, block=block)
    assert got.dtype == ref.dtype == np.float32
    assert np.array_equal(got, ref)
    x64 = speech[:50000].astype(np.float64)
    ref64 = librosa.feature.rms(y=x64, frame_length=frame, hop_length=hop, center=True, pad_mode="constant")[0]
    assert np.array_equal(frame_rms(x64, frame, hop, block=block), ref64)


@pytest.mark.parametrize("sr", [40000, 48000, 32000, 16000])
@pytest.mark.parametrize("top_db", [40.0, 20.0, 60.0])
def test_trim_silence_cuts_where_librosa_trim_does(speech, sr, top_db):
    x = speech if sr == 40000 else librosa.resample(speech, orig_sr=40000, target_sr=sr)
    frame = max(64, int(2 ** round(np.log2(2048 * sr / 44100))))
    ref, _ = librosa.effects.trim(x, top_db=top_db, frame_length=frame, hop_length=frame // 4)
    got = trim_silence(x, sr, top_db)
    assert got.shape == ref.shape and np.shares_memory(got, x)
    assert np.array_equal(got, ref)
    assert 0 < got.shape[0] < x.shape[0]  # the quiet ends really were cut


def test_trim_silence_edge_cases():
    assert trim_silence(np.zeros(1000, np.float32), 40000).shape == (0,)
    assert trim_silence(np.zeros(0, np.float32), 40000).shape == (0,)
    tone = np.sin(np.arange(40000) / 10).astype(np.float32)
    assert trim_silence(tone, 40000).shape == tone.shape  # nothing quieter than the loudest frame


@pytest.mark.parametrize("sr", [40000, 48000, 32000, 22050, 44100])
def test_resample_to_16k_is_librosa_resample(speech, sr):
    x = speech[: 3 * 40000 + 123] if sr == 40000 else librosa.resample(speech[:120123], orig_sr=40000, target_sr=sr)
    ref = librosa.resample(x, orig_sr=sr, target_sr=16000)
    got = resample_to_16k(x, sr)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    assert resample_to_16k(x, 16000) is x


def test_probe_all_in_parallel_keeps_file_order_and_lists_every_bad_file(tmp_path, joe_1min):
    from infer.lib.errors import UserInputError
    from infer.modules.train.preprocess import probe_all

    wavs = sorted(Path(joe_1min).glob("*.wav"))
    files = [wavs[i % len(wavs)] for i in range(10)]
    one_by_one = probe_all(files, threads=1)
    assert probe_all(files, threads=8) == one_by_one
    assert [round(i["duration_s"], 2) for i in one_by_one] == [round(sf.info(str(f)).duration, 2) for f in files]
    bad1, bad2 = tmp_path / "bad1.wav", tmp_path / "bad2.mp3"
    bad1.write_bytes(b"RIFF not audio")
    bad2.write_bytes(b"\x00" * 100)
    with pytest.raises(UserInputError, match="2 of 12") as e:
        probe_all([*files[:5], bad1, *files[5:], bad2], threads=8)
    assert "bad1.wav" in str(e.value) and "bad2.mp3" in str(e.value)
