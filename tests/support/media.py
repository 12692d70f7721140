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


ESPEAK_TEXT = (
    "The quick brown fox jumps over the lazy dog. We went to the market on Tuesday, bought some apples and "
    "pears, and walked home along the river while it started to rain. Numbers like twenty three and nineteen "
    "eighty four are read aloud, and then the story begins again from the very start."
)


def make_espeak_voice(out: Path, voice: str = "en-us+f3", text: str = ESPEAK_TEXT) -> Path:
    """Speech of another voice than joe's: espeak-ng (Debian's `espeak-ng`, installed by
    tools/setup_env.sh) reading `text` (about 15 s), as a 22.05 kHz WAV."""
    import shutil

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is missing: run tools/setup_env.sh (or apt-get install espeak-ng)")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(out), text], check=True, capture_output=True)
    return out


def make_noise(out: Path, seconds: float = 20.0, sr: int = 22050, seed: int = 0) -> Path:
    """White noise at -16 dBFS RMS, no voice in it."""
    import numpy as np
    import soundfile as sf

    x = np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32) * 0.16
    sf.write(str(out), x, sr, subtype="PCM_16")
    return out


def make_music(out: Path, seconds: float = 20.0, sr: int = 22050) -> Path:
    """Music without a voice: a chord progression (C, Am, F, G, half a second per chord) of plucked
    harmonic tones with a bass line, as a WAV."""
    import numpy as np
    import soundfile as sf

    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
    beat = 0.5
    n_beat = int(beat * sr)
    t = np.arange(n_beat) / sr
    env = np.exp(-3.0 * t) * np.minimum(1.0, t / 0.01)
    out_audio = np.zeros(int(seconds * sr), np.float32)
    for b in range(int(seconds / beat)):
        chord = chords[(b // 4) % len(chords)]
        notes = [*chord, chord[0] - 12]
        tone = np.zeros(n_beat)
        for m in notes:
            f = 440.0 * 2 ** ((m - 69) / 12)
            for h in range(1, 6):
                tone += np.sin(2 * np.pi * f * h * t) / h**1.5
        out_audio[b * n_beat : (b + 1) * n_beat] = (0.08 * tone * env).astype(np.float32)
    sf.write(str(out), out_audio, sr, subtype="PCM_16")
    return out
