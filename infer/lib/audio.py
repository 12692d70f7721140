"""Audio I/O for every stage: decoding any audio (or video with an audio track), downmixing, resampling.

Reading files, through the `ffprobe`/`ffmpeg` executables run with argument lists (no shell) and their
stderr captured, so a failure carries ffmpeg's own reason:

- `probe(path) -> AudioInfo`: duration, sample rate, channels, codec of the first audio stream
  (`probe_all(files)`: many at once, one error listing every unreadable file);
- `convert_to_wav(src, dst)`: any format ffmpeg reads -> mono WAV, 32-bit float, at the source rate;
- `load_audio(path, sr) -> np.ndarray`: decoded, downmixed and resampled, float32 mono in [-1, 1]
  (values slightly above 1 are kept as decoded), shape [samples];
- `decode_blocks(path, sr, block_s, work_dir)`: the same samples as `load_audio`'s fast path, streamed
  in blocks (preprocessing: memory does not grow with a recording's length);
- `decode_check(path)`: decode the first seconds only (a cheap check before long work).

Samples: `to_mono` (ffmpeg's `-ac 1` mix), `average_channels` (the reference's `readwave` mix),
`resample` (soxr HQ; with `fix_length`, exactly `librosa.resample`); `SampleFile` holds samples on
disk. `AUDIO_EXTENSIONS`: what counts as audio in folders and zips. The extraction stages read the
16 kHz segments preprocessing wrote with `list_segments(folder)` and `read_wav16k(path)`.

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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from infer.lib.errors import UserInputError

FFMPEG = os.environ.get("RVC_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("RVC_FFPROBE", "ffprobe")

# The WAV format `convert_to_wav` writes: mono, 32-bit float (no clipping of decoder overshoot, no
# quantisation), at the source's own sample rate (preprocessing resamples to the training rate).
WAV_CODEC = "pcm_f32le"
PROBE_THREADS = 8  # ffprobe start-up dominates probing: run several at once

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


class _SndInfo(Protocol):
    """The fields of libsndfile's header (`soundfile.info`) the fast path reads."""

    format: str
    subtype: str
    channels: int
    samplerate: int
    frames: int


def _sndfile_info(path: Path) -> _SndInfo | None:
    """libsndfile's header of `path` when the fast path can read it (see the module docstring), else None."""
    import soundfile as sf

    try:
        info: _SndInfo = sf.info(str(path))
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


def _refuse_obvious(path: Path) -> None:
    """`AudioDecodeError` when the bytes of `path` are obviously not media (see `describe_bad_file`)."""
    obvious = describe_bad_file(path)
    if obvious:
        raise AudioDecodeError(f"{path.name}: {obvious}")


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Probe `path` with ffprobe; raise `AudioDecodeError` when it has no readable audio stream."""
    path = Path(path)
    _refuse_obvious(path)
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


def _probe_one(path: Path) -> tuple[dict | None, str | None]:
    try:
        return probe(path).to_dict(), None
    except AudioDecodeError as e:
        return None, f"  {e}"


def probe_all(files: list[Path], threads: int = PROBE_THREADS) -> list[dict]:
    """`probe` every file (`threads` at a time: ffprobe start-up dominates where it runs; results in file
    order); one `UserInputError` naming each unreadable file."""
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(files)))) as pool:
        results = list(pool.map(_probe_one, files))
    infos = [info for info, _ in results if info is not None]
    bad = [err for _, err in results if err is not None]
    if bad:
        raise UserInputError(f"{len(bad)} of {len(files)} input file(s) are not readable audio:\n" + "\n".join(bad))
    return infos


def _to_float(v: object) -> float | None:
    if not isinstance(v, int | float | str):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if np.isfinite(f) and f > 0 else None


def convert_to_wav(src: str | os.PathLike[str], dst: str | os.PathLike[str], sample_rate: int | None = None) -> None:
    """Decode the first audio stream of `src` into a mono 32-bit float WAV at `dst`.

    `sample_rate` None keeps the source rate. `dst` is written to a temporary name and renamed, so
    it is never left half written. Raises `AudioDecodeError` with ffmpeg's reason.
    """
    from infer.lib.fileio import atomic_path

    src, dst = Path(src), Path(dst)
    _refuse_obvious(src)
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
    """The fast path of `load_audio`: libsndfile decode, `to_mono`, soxr HQ resampling to `sr`."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - a damaged body after a valid header
        raise AudioDecodeError(f"{path.name}: the audio could not be decoded ({e})") from e
    audio = resample(to_mono(audio), rate, sr, fix_length=False)
    if audio.size == 0:
        raise AudioDecodeError(f"{path.name}: no audio could be decoded (the file is truncated or empty)")
    return np.ascontiguousarray(audio)


def decode_check(path: str | os.PathLike[str], seconds: float = 2.0) -> None:
    """Decode the first `seconds` of `path`'s audio (a cheap check before any long work); raise
    `AudioDecodeError` naming the file and the reason when nothing can be decoded."""
    path = Path(path)
    _refuse_obvious(path)
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
    """A 16 kHz segment wav as float32 mono [T] (`average_channels`, as the reference's `readwave`);
    ValueError for another rate."""
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SEGMENT_RATE:
        raise ValueError(f"{path.name} is {sr} Hz, expected {SEGMENT_RATE}")
    return average_channels(audio)


# ---------------------------------------------------------------------------------------- samples
class SampleFile:
    """Mono float32 samples in a raw temporary file: appended in blocks, read back by range (`x[a:b]`),
    so a long recording is never held in memory whole (an hour at 48 kHz is 0.7 GB per copy)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "w+b")  # noqa: SIM115 - closed by close()
        self._n = 0

    def append(self, x: np.ndarray) -> None:
        self._f.seek(0, os.SEEK_END)
        self._f.write(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        self._n += int(x.shape[0])

    def truncate(self, n: int) -> None:
        self._n = min(self._n, n)
        self._f.truncate(4 * self._n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: slice) -> np.ndarray:
        a, b, step = index.indices(self._n)
        if step != 1:
            raise ValueError("SampleFile reads contiguous ranges only")
        out = np.empty(max(0, b - a), dtype=np.float32)
        if out.size:
            self._f.seek(4 * a)
            self._f.readinto(out.data.cast("B"))
        return out

    def close(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """float32 [n, channels] -> [n] as ffmpeg's `-ac 1` mixes: stereo (L + R) / sqrt(2), one channel as
    it is, more channels averaged."""
    if audio.shape[1] == 2:
        return (audio[:, 0] + audio[:, 1]) * np.float32(np.sqrt(0.5))
    return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)


def average_channels(audio: np.ndarray, axis: int = 1) -> np.ndarray:
    """float32 [n, channels] (channels on `axis`) -> [n]: the channels' mean, the reference's mix for
    segments and training wavs (one channel is returned as it is)."""
    if audio.shape[axis] == 1:
        return np.ascontiguousarray(audio[:, 0] if axis == 1 else audio[0])
    return audio.mean(axis=axis, dtype=np.float32)


def resampled_length(n: int, sr: int, target_sr: int) -> int:
    """`librosa.resample`'s output length for `n` samples: ceil(n * target_sr / sr)."""
    return int(np.ceil(n * target_sr / sr))


def resample(x: np.ndarray, sr: int, target_sr: int, *, fix_length: bool = True) -> np.ndarray:
    """Mono `x` [T] at `sr` Hz -> [T'] at `target_sr` (soxr HQ); `x` itself when the rates agree.

    `fix_length` True: `librosa.resample(x, orig_sr=sr, target_sr=target_sr)` sample for sample, without
    importing librosa (length `resampled_length`, zero-padded or cut; `x`'s dtype). False: soxr's own
    length (rounded, where librosa's is ceil'ed), float32.
    """
    if sr == target_sr:
        return x
    import soxr

    y = soxr.resample(x, sr, target_sr, quality="soxr_hq")
    if not fix_length:
        return y.astype(np.float32, copy=False)
    n = resampled_length(x.shape[0], sr, target_sr)
    y = y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))
    return np.asarray(y, dtype=x.dtype)


_HOLD = 64  # resampled samples held back until the end, where the total length is fixed


def decode_blocks(
    path: str | os.PathLike[str], sr: int, block_s: float, work_dir: str | os.PathLike[str]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream `path` in blocks of `block_s` source seconds: (mono source samples, resampled samples).

    Mono as `to_mono`; the resampled samples of all blocks together are exactly `resample(mono, rate,
    sr)` over the whole file (soxr's stream state carried across blocks, the length fixed at the end),
    float32 at `sr`. Files libsndfile does not read (see `_sndfile_info`) are first decoded by
    `convert_to_wav` into `work_dir/source.wav` (removed when done). Raises `AudioDecodeError`.
    """
    import soundfile as sf
    import soxr

    src, tmp = Path(path), Path(work_dir) / "source.wav"
    try:
        if _sndfile_info(src) is None:
            convert_to_wav(src, tmp)  # mono float at the source rate
            src = tmp
        with sf.SoundFile(str(src)) as f:
            rate = int(f.samplerate)
            rs = soxr.ResampleStream(rate, sr, 1, dtype="float32", quality="soxr_hq") if rate != sr else None
            block = max(1, int(block_s * rate))
            n_source = n_out = 0
            held = np.zeros(0, np.float32)
            while True:
                x = to_mono(f.read(block, dtype="float32", always_2d=True))
                last = x.shape[0] < block
                n_source += x.shape[0]
                y = x
                if rs is not None:  # the last samples wait until the total length is known
                    held = np.concatenate([held, rs.resample_chunk(x, last=last)])
                    cut = max(0, resampled_length(n_source, rate, sr) - n_out if last else len(held) - _HOLD)
                    y, held = np.pad(held[:cut], (0, max(0, cut - len(held)))), held[cut:]
                    n_out += cut
                yield x, y
                if last:
                    return
    finally:
        tmp.unlink(missing_ok=True)
