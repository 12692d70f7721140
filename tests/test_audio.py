"""ffmpeg probe/convert/load on real files of every common format, and refusal of bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from infer.lib.audio import AudioDecodeError, convert_to_wav, describe_bad_file, load_audio, probe
from infer.lib.errors import UserInputError
from tests.media import make_media


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
    assert "empty" in describe_bad_file(empty)
    assert "HTML" in describe_bad_file(html)
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
