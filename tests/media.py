"""Real media files for tests, made with ffmpeg from a few seconds of real speech."""

from __future__ import annotations

import subprocess
from pathlib import Path

# extension -> extra ffmpeg output arguments
FORMATS: dict[str, list[str]] = {
    "wav": ["-c:a", "pcm_s16le"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "3"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "opus": ["-c:a", "libopus", "-b:a", "48k"],
}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_media(source_wav: Path, out_dir: Path, seconds: float = 2.0, stereo: bool = True) -> dict[str, Path]:
    """`seconds` of `source_wav` as wav/mp3/flac/ogg/m4a/opus (stereo, 44.1 kHz) and an mp4 video.

    Returns {"wav": path, ..., "mp4": path}.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for ext, codec in FORMATS.items():
        p = out_dir / f"speech.{ext}"
        _ffmpeg(
            "-t",
            str(seconds),
            "-i",
            str(source_wav),
            "-ac",
            "2" if stereo else "1",
            "-ar",
            "44100" if ext != "opus" else "48000",
            *codec,
            str(p),
        )
        out[ext] = p
    video = out_dir / "speech.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:duration={seconds}",
        "-t", str(seconds), "-i", str(source_wav),
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-shortest", str(video),
    )  # fmt: skip
    out["mp4"] = video
    return out
