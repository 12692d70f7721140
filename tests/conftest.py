"""Shared fixtures: where the repository, ../shared/reference and ../shared/data are; tiny configs."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from infer.lib.config import RVCConfig, load_config, tiny_network

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RVC_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


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


def make_tiny_config(version: str = "v2", sample_rate: str = "40k") -> RVCConfig:
    """The real config for (version, sample_rate) with a network small enough for CPU tests."""
    cfg = tiny_network(load_config(version, sample_rate))
    train = dataclasses.replace(cfg.train, batch_size=2, log_interval=1)
    return dataclasses.replace(cfg, train=train)


@pytest.fixture
def tiny_config() -> Callable[..., RVCConfig]:
    """Factory: `tiny_config("v2", "40k")`."""
    return make_tiny_config


@pytest.fixture(scope="session")
def other_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Audio that is not joe: another voice (espeak-ng), white noise, and music without a voice (20 s each)."""
    from tests.media import make_espeak_voice, make_music, make_noise

    d = tmp_path_factory.mktemp("other-audio")
    return {
        "voice": make_espeak_voice(d / "anna.wav"),
        "noise": make_noise(d / "noise.wav"),
        "music": make_music(d / "music.wav"),
    }
