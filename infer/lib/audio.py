"""Reading any audio (or video with an audio track) through ffmpeg.

Three operations, all thin wrappers over the `ffprobe`/`ffmpeg` executables run with argument lists
(no shell) and their stderr captured, so a failure carries ffmpeg's own reason:

- `probe(path) -> AudioInfo`: duration, sample rate, channels, codec of the first audio stream;
- `convert_to_wav(src, dst)`: any format ffmpeg reads -> mono WAV, 32-bit float, at the source rate;
- `load_audio(path, sr) -> np.ndarray`: decoded, downmixed and resampled by ffmpeg, float32 mono in
  [-1, 1] (values slightly above 1 are kept as decoded), shape [samples].

The extraction stages read the 16 kHz segments preprocessing wrote with `list_segments(folder)` and
`read_wav16k(path)` (libsndfile, channels averaged as the reference's `readwave`).

Uncompressed and FLAC files (WAV/AIFF/FLAC with PCM or float samples, mono or stereo: every file the
WavDownloader writes) take a fast path instead: libsndfile reads the header and the samples in this
process, and soxr (HQ, as `librosa.resample`) resamples. Starting ffprobe and ffmpeg once per file
cost more than all of preprocessing's arithmetic; the samples agree with ffmpeg's to its resampler's
precision. Every other file goes through ffmpeg.

A file ffmpeg cannot read raises `AudioDecodeError` (a `UserInputError`) whose message names the file
and says why; `describe_bad_file` turns the first bytes of a file into a human reason ("an HTML page").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from infer.lib.errors import UserInputError

FFMPEG = os.environ.get("RVC_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("RVC_FFPROBE", "ffprobe")

# The WAV format `convert_to_wav` writes: mono, 32-bit float (no clipping of decoder overshoot, no
# quantisation), at the source's own sample rate (preprocessing resamples to the training rate).
WAV_CODEC = "pcm_f32le"

# Extensions we treat as audio/video when scanning folders and zips (ffmpeg decides in the end).
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .mp3 .flac .ogg .oga .opus .m4a .mp4 .m4v .aac .wma .aif .aiff .aifc .caf .amr .3gp .3g2 "
    ".webm .mkv .mka .mov .avi .wv .ape .ac3 .mpga .mp2 .au .snd .spx .ts .flv".split()
)


class AudioDecodeError(UserInputError):
    """ffmpeg could not read a file as audio."""


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about a file's first audio stream."""

    path: str
    duration_s: float  # seconds (0.0 when unknown)
    sample_rate: int  # Hz
    channels: int
    codec: str
    container: str
    has_video: bool

    def to_dict(self) -> dict:
        return asdict(self)


# libsndfile reads these exactly like ffmpeg (lossless, no decoder delay): the fast path.
_SNDFILE_FORMATS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "W64": "w64", "AIFF": "aiff", "FLAC": "flac"}
_SNDFILE_CODECS = {
    "PCM_U8": "pcm_u8", "PCM_S8": "pcm_s8", "PCM_16": "pcm_s16le", "PCM_24": "pcm_s24le", "PCM_32": "pcm_s32le",
    "FLOAT": "pcm_f32le", "DOUBLE": "pcm_f64le",
}  # fmt: skip


def _sndfile_info(path: Path) -> object | None:
    """libsndfile's header of `path` when the fast path can read it (see the module docstring), else None."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - not a libsndfile format: ffmpeg decides
        return None
    ok = info.format in _SNDFILE_FORMATS and (info.subtype in _SNDFILE_CODECS or info.format == "FLAC")
    return info if ok and 1 <= info.channels <= 2 and info.samplerate > 0 and info.frames > 0 else None


def _require(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise RuntimeError(f"{tool} is not installed (install ffmpeg, e.g. `apt-get install ffmpeg`)")
    return exe


def _last_lines(text: str, n: int = 3, path: Path | None = None) -> str:
    """The last `n` lines of ffmpeg's stderr, without its `[demuxer @ 0x...]` prefixes and the file's path."""
    if path is not None:
        text = text.replace(f"{path}: ", "").replace(str(path), "the file")
    text = re.sub(r"\[[^\]]* @ 0x[0-9a-fA-F]+\] ?", "", text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-n:]) if lines else "no output"


def describe_bad_file(path: str | os.PathLike[str]) -> str | None:
    """A human reason when the bytes of `path` are obviously not media (empty, HTML, JSON, text)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        return f"cannot read the file ({e.strerror})"
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(p, "rb") as f:
        head = f.read(512)
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in low[:256]:
        return "the server returned an HTML page, not audio (use a direct download link, not a share/preview page)"
    if low.startswith((b"{", b"[")):
        return "the file is JSON/text, not audio (the link may point at an API error response)"
    if low.startswith(b"<?xml"):
        return "the file is XML, not audio (the link may point at an error page or a storage API response)"
    return None


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Probe `path` with ffprobe; raise `AudioDecodeError` when it has no readable audio stream."""
    path = Path(path)
    obvious = describe_bad_file(path)
    if obvious:
        raise AudioDecodeError(f"{path.name}: {obvious}")
    info = _sndfile_info(path)
    if info is not None:
        return AudioInfo(
            path=str(path),
            duration_s=info.frames / info.samplerate,
            sample_rate=int(info.samplerate),
            channels=int(info.channels),
            codec="flac" if info.format == "FLAC" else _SNDFILE_CODECS[info.subtype],
            container=_SNDFILE_FORMATS[info.format],
            has_video=False,
        )
    cmd = [
        _require(FFPROBE), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AudioDecodeError(
            f"{path.name}: not a readable audio or video file ({_last_lines(proc.stderr, path=path)})"
        )
    try:
        data = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as e:
        raise AudioDecodeError(f"{path.name}: ffprobe gave unreadable output ({e})") from e
    streams = data.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise AudioDecodeError(f"{path.name}: the file has no audio track")
    a = audio[0]
    fmt = data.get("format", {})
    duration = _to_float(a.get("duration")) or _to_float(fmt.get("duration")) or 0.0
    sample_rate = int(_to_float(a.get("sample_rate")) or 0)
    if sample_rate <= 0:
        raise AudioDecodeError(f"{path.name}: the audio track has no valid sample rate")
    return AudioInfo(
        path=str(path),
        duration_s=float(duration),
        sample_rate=sample_rate,
        channels=int(a.get("channels") or 0),
        codec=str(a.get("codec_name", "?")),
        container=str(fmt.get("format_name", "?")),
        has_video=any(
            s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic") for s in streams
        ),
    )


def _to_float(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def convert_to_wav(src: str | os.PathLike[str], dst: str | os.PathLike[str], sample_rate: int | None = None) -> None:
    """Decode the first audio stream of `src` into a mono 32-bit float WAV at `dst`.

    `sample_rate` None keeps the source rate. `dst` is written to a temporary name and renamed, so
    it is never left half written. Raises `AudioDecodeError` with ffmpeg's reason.
    """
    from infer.lib.fileio import atomic_path

    src, dst = Path(src), Path(dst)
    obvious = describe_bad_file(src)
    if obvious:
        raise AudioDecodeError(f"{src.name}: {obvious}")
    with atomic_path(dst, suffix=".wav") as tmp:
        cmd = [
            _require(FFMPEG), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-c:a", WAV_CODEC,
        ]  # fmt: skip
        if sample_rate:
            cmd += ["-ar", str(int(sample_rate))]
        cmd += ["-f", "wav", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AudioDecodeError(
                f"{src.name}: ffmpeg could not decode the audio ({_last_lines(proc.stderr, path=src)})"
            )
        import soundfile as sf

        try:
            frames = sf.info(str(tmp)).frames
        except Exception as e:  # noqa: BLE001 - report any reader failure as a decode failure
            raise AudioDecodeError(f"{src.name}: the decoded audio is unreadable ({e})") from e
        if frames == 0:
            raise AudioDecodeError(f"{src.name}: no audio could be decoded (the file is truncated or empty)")


def load_audio(path: str | os.PathLike[str], sr: int) -> np.ndarray:
    """Decode `path` to float32 mono at `sr` Hz: shape [samples].

    WAV/AIFF/FLAC through libsndfile and soxr (the fast path), anything else through ffmpeg.
    Multi-channel audio is mixed to mono as ffmpeg's `-ac 1` does (stereo: (L + R) / sqrt(2)); video
    files give their first audio track. Raises `AudioDecodeError` when the file cannot be read or it
    decodes to nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if _sndfile_info(path) is not None:
        return _load_sndfile(path, sr)
    return _load_ffmpeg(path, sr)


def _load_ffmpeg(path: Path, sr: int) -> np.ndarray:
    """`load_audio` through an ffmpeg process (every format; the reference RVC way)."""
    cmd = [
        _require(FFMPEG), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(int(sr)), "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        reason = describe_bad_file(path) or _last_lines(proc.stderr.decode("utf-8", "replace"), path=path)
        raise AudioDecodeError(f"{path.name}: ffmpeg could not decode the audio ({reason})")
    audio = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    if audio.size == 0:
        raise AudioDecodeError(f"{path.name}: no audio could be decoded (the file is truncated or empty)")
    return audio


def _load_sndfile(path: Path, sr: int) -> np.ndarray:
    """The fast path of `load_audio`: libsndfile decode, channel mean, soxr HQ resampling to `sr`."""
    import soundfile as sf
    import soxr

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - a damaged body after a valid header
        raise AudioDecodeError(f"{path.name}: the audio could not be decoded ({e})") from e
    if audio.shape[1] == 2:  # ffmpeg's stereo -> mono matrix (what `-ac 1` gives): (L + R) / sqrt(2)
        audio = (audio[:, 0] + audio[:, 1]) * np.float32(np.sqrt(0.5))
    else:
        audio = audio[:, 0]
    if rate != sr:
        audio = soxr.resample(audio, rate, sr, quality="soxr_hq").astype(np.float32, copy=False)
    if audio.size == 0:
        raise AudioDecodeError(f"{path.name}: no audio could be decoded (the file is truncated or empty)")
    return np.ascontiguousarray(audio)


def decode_check(path: str | os.PathLike[str], seconds: float = 2.0) -> None:
    """Decode the first `seconds` of `path`'s audio (a cheap check before any long work); raise
    `AudioDecodeError` naming the file and the reason when nothing can be decoded."""
    path = Path(path)
    obvious = describe_bad_file(path)
    if obvious:
        raise AudioDecodeError(f"{path.name}: {obvious}")
    info = _sndfile_info(path)
    if info is not None:
        import soundfile as sf

        try:
            audio, _ = sf.read(str(path), frames=max(1, int(seconds * info.samplerate)), dtype="float32")
        except Exception as e:  # noqa: BLE001 - a damaged body after a valid header
            raise AudioDecodeError(f"{path.name}: the audio could not be decoded ({e})") from e
        n = len(audio)
    else:
        cmd = [
            _require(FFMPEG), "-nostdin", "-hide_banner", "-loglevel", "error", "-t", str(seconds), "-i", str(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", "16000", "-",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            reason = _last_lines(proc.stderr.decode("utf-8", "replace"), path=path)
            raise AudioDecodeError(f"{path.name}: ffmpeg could not decode the audio ({reason})")
        n = len(proc.stdout) // 4
    if n == 0:
        raise AudioDecodeError(f"{path.name}: no audio could be decoded (the file is truncated or empty)")


SEGMENT_RATE = 16000  # the rate of the segments in `1_16k_wavs` (HuBERT's and the pitch extractors')


def list_segments(folder: Path) -> list[Path]:
    """The `.wav` files of a segment folder, sorted by name (hidden temporary files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".wav" and not p.name.startswith("."))


def read_wav16k(path: Path) -> np.ndarray:
    """A 16 kHz segment wav as float32 mono [T] (channels averaged, as the reference's `readwave`);
    ValueError for another rate."""
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SEGMENT_RATE:
        raise ValueError(f"{path.name} is {sr} Hz, expected {SEGMENT_RATE}")
    return audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
