"""ffmpeg probe/convert/load on real files of every common format, and refusal of bad ones."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from infer.lib.audio import (
    AudioDecodeError,
    convert_to_wav,
    decode_blocks,
    describe_bad_file,
    load_audio,
    probe,
    probe_all,
    resample,
    to_mono,
)
from infer.lib.errors import UserInputError
from tests.support.media import make_media


@pytest.fixture(scope="module")
def media(joe_1min, tmp_path_factory):
    return make_media(joe_1min / "joe_000.wav", tmp_path_factory.mktemp("media"), seconds=2.0)


@pytest.mark.parametrize("ext", ["wav", "mp3", "flac", "ogg", "m4a", "opus", "mp4"])
def test_every_format_loads_as_mono_float(media, ext):
    info = probe(media[ext])
    assert abs(info.duration_s - 2.0) < 0.1
    assert info.has_video == (ext == "mp4")
    audio = load_audio(media[ext], 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # codecs add priming/padding, but never more than a few tens of ms
    assert abs(audio.shape[0] - 32000) < 0.05 * 16000
    assert 0.05 < np.abs(audio).max() <= 1.01  # real speech, not silence


def test_lossy_decodes_match_the_source(media):
    ref = load_audio(media["wav"], 16000)
    flac = load_audio(media["flac"], 16000)
    np.testing.assert_allclose(flac, ref, atol=1e-4)  # lossless: identical up to float rounding
    mp3 = load_audio(media["mp3"], 16000)
    # mp3 is delayed by the encoder; the spectra still agree closely
    n = min(ref.size, mp3.size)
    spec = lambda x: np.abs(np.fft.rfft(x[:n]))  # noqa: E731
    assert np.corrcoef(spec(ref), spec(mp3))[0, 1] > 0.9


def test_convert_to_wav_writes_mono_float_at_source_rate(media, tmp_path):
    out = tmp_path / "v.wav"
    convert_to_wav(media["mp4"], out)
    info = sf.info(str(out))
    assert (info.channels, info.samplerate, info.subtype) == (1, 22050, "FLOAT")
    assert abs(info.frames / info.samplerate - 2.0) < 0.1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp file left


def test_bad_files_are_reported_with_reason(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    html = tmp_path / "page.wav"
    html.write_bytes(b"<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "empty" in (describe_bad_file(empty) or "")
    assert "HTML" in (describe_bad_file(html) or "")
    with pytest.raises(UserInputError, match="empty"):
        probe(empty)
    with pytest.raises(AudioDecodeError, match="HTML page"):
        load_audio(html, 16000)
    with pytest.raises(AudioDecodeError, match="junk.mp3"):
        probe(junk)
    with pytest.raises(AudioDecodeError, match="no such file"):
        load_audio(tmp_path / "missing.wav", 16000)


def test_video_without_audio_is_refused(tmp_path):
    import subprocess

    p = tmp_path / "silent_video.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", str(p)],
        check=True,
    )  # fmt: skip
    with pytest.raises(AudioDecodeError, match="no audio track"):
        probe(p)


@pytest.mark.parametrize("sr", [16000, 22050, 40000])
def test_wav_and_flac_fast_path_matches_ffmpeg(joe_1min, tmp_path, sr):
    """libsndfile + soxr (in-process) give ffmpeg's samples: same length, same stereo mix, same probe."""
    import subprocess
    from pathlib import Path

    from infer.lib import audio as A

    src = joe_1min / "joe_000.wav"  # 22050 Hz mono PCM_16
    stereo = tmp_path / "stereo.flac"  # right = 0.5 * left
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(src), "-t", "4", "-af", "pan=stereo|c0=c0|c1=0.5*c0",
         "-c:a", "flac", str(stereo)],
        check=True,
    )  # fmt: skip
    for path in (src, stereo):
        fast, slow = A._load_sndfile(Path(path), sr), A._load_ffmpeg(Path(path), sr)
        assert fast.dtype == np.float32 and fast.shape == slow.shape
        err = np.std(fast - slow) / np.std(slow)
        assert err < (1e-6 if sr == 22050 else 0.01), (path.name, sr, err)  # resamplers differ near Nyquist
        assert load_audio(path, sr).shape == fast.shape
    info = probe(stereo)
    assert (info.channels, info.sample_rate, info.codec, info.container, info.has_video) == (
        2,
        22050,
        "flac",
        "flac",
        False,
    )
    assert abs(info.duration_s - 4.0) < 1e-3
    assert probe(src).codec == "pcm_s16le"


@pytest.mark.parametrize("sr", [40000, 48000, 32000, 22050, 44100])
def test_resample_is_librosa_resample(speech_quiet_ends, sr):
    speech = speech_quiet_ends
    x = speech[: 3 * 40000 + 123] if sr == 40000 else librosa.resample(speech[:120123], orig_sr=40000, target_sr=sr)
    ref = librosa.resample(x, orig_sr=sr, target_sr=16000)
    got = resample(x, sr, 16000)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    assert resample(x, 16000, 16000) is x


def test_probe_all_in_parallel_keeps_file_order_and_lists_every_bad_file(tmp_path, joe_1min):
    wavs = sorted(joe_1min.glob("*.wav"))
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


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_decode_blocks_stream_the_whole_file_resample(media, tmp_path, ext):
    """Blocks of any size give, concatenated, `resample(to_mono(samples), rate, sr)` over the whole file;
    mp3 (not a libsndfile format here) goes through a float WAV that is removed afterwards."""
    src = media[ext]
    if ext == "flac":
        whole, rate = sf.read(str(src), dtype="float32", always_2d=True)
        mono = to_mono(whole)
    else:
        convert_to_wav(src, tmp_path / "ref.wav")
        mono, rate = sf.read(str(tmp_path / "ref.wav"), dtype="float32")
    for sr, block_s in ((40000, 0.13), (16000, 1e6), (rate, 0.5)):
        blocks = list(decode_blocks(src, sr, block_s, tmp_path))
        np.testing.assert_array_equal(np.concatenate([x for x, _ in blocks]), mono)
        np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), resample(mono, rate, sr))
    assert not (tmp_path / "source.wav").exists()
