"""Shared fixtures: where the repository, ../shared/reference and ../shared/data are; audio for tests.

The fixtures of `tests/support/standins.py` (stand-in weights), `tests/support/training.py` (tiny
configs, extraction cache, tiny trainings, the session's one trained run) and
`tests/support/product.py` (the product servers' weights) are loaded as plugins.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO_ROOT, SHARED_DIR

pytest_plugins = ["tests.support.standins", "tests.support.training", "tests.support.product"]


@pytest.fixture(scope="session", autouse=True)
def _allow_private_urls() -> None:
    """The tests serve files on 127.0.0.1: allow private hosts (the cog and web UI servers they start
    inherit it). Tests of the refusal remove it with monkeypatch."""
    os.environ["RVC_ALLOW_PRIVATE_URLS"] = "1"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: tests need ../shared beside the repository (or RVC_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _need(SHARED_DIR / "reference")


@pytest.fixture(scope="session")
def joe_1min() -> Path:
    return _need(SHARED_DIR / "data" / "joe_1min")


@pytest.fixture(scope="session")
def joe_10min() -> Path:
    return _need(SHARED_DIR / "data" / "joe_10min")


@pytest.fixture(scope="session")
def other_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Audio that is not joe: another voice (espeak-ng), white noise, and music without a voice (20 s each)."""
    from tests.support.media import make_espeak_voice, make_music, make_noise

    d = tmp_path_factory.mktemp("other-audio")
    return {
        "voice": make_espeak_voice(d / "anna.wav"),
        "noise": make_noise(d / "noise.wav"),
        "music": make_music(d / "music.wav"),
    }


@pytest.fixture(scope="session")
def speech_quiet_ends(joe_1min: Path) -> np.ndarray:
    """12 s of joe at 40 kHz with 1.5 s of near-silence before and 2 s after (float32)."""
    import librosa
    import soundfile as sf

    audio, sr = sf.read(str(sorted(Path(joe_1min).glob("*.wav"))[0]), dtype="float32")
    audio = librosa.resample(audio[: 12 * sr], orig_sr=sr, target_sr=40000)
    rng = np.random.default_rng(0)

    def quiet(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 1e-4).astype(np.float32)

    return np.concatenate([quiet(60000), audio, quiet(80000)])
