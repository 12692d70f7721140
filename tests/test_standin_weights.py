"""`tools.make_standin_weights` writes the weights layout in the published formats; the same loaders
that read the real files read these (and say loudly that they are stand-ins)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from infer.lib.errors import WeightsError
from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
from infer.lib.weights import (
    HUBERT,
    MOSSFORMER2,
    RMVPE,
    STANDIN_MANIFEST,
    pretrained_names,
)
from tools import make_standin_weights

G, D = pretrained_names("v2", "40k", True)


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins for the feature, pitch and enhancement networks (tiny HuBERT, full-size others)."""
    out = tmp_path_factory.mktemp("standin")
    rc = make_standin_weights.main(["--out", str(out), "--tiny-hubert", "--names", HUBERT, RMVPE, MOSSFORMER2])
    assert rc == 0
    return out


@pytest.fixture
def rvc_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that also sees the project's loggers (setup_logging stops them propagating to root)."""
    logger = logging.getLogger("rvc")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_layout_and_listing(standin_dir: Path) -> None:
    for name in (HUBERT, RMVPE, f"{MOSSFORMER2}/last_best_checkpoint", f"{MOSSFORMER2}/last_best_checkpoint.pt"):
        assert (standin_dir / name).is_file(), name
    listing = json.loads((standin_dir / STANDIN_MANIFEST).read_text())
    assert "STAND-IN" in listing["warning"]
    assert set(listing["files"]) >= {HUBERT, RMVPE, f"{MOSSFORMER2}/last_best_checkpoint.pt"}
    assert listing["files"][HUBERT]["size"] == (standin_dir / HUBERT).stat().st_size


def test_offline_downloader_accepts_the_standin_folder(standin_dir: Path, rvc_logs: pytest.LogCaptureFixture) -> None:
    dl = WeightDownloader(WeightsSettings(weights_dir=standin_dir, offline=True))
    paths = dl.fetch([HUBERT, RMVPE, MOSSFORMER2])
    assert paths[MOSSFORMER2] == standin_dir / MOSSFORMER2
    assert "STAND-IN" in rvc_logs.text


def test_hubert_standin_loads_through_load_hubert(standin_dir: Path, rvc_logs: pytest.LogCaptureFixture) -> None:
    from infer.lib.hubert import load_hubert

    model = load_hubert(standin_dir / HUBERT)
    assert model.standin is not None
    assert "stand-in weights" in rvc_logs.text
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)) * 0.1
    with torch.inference_mode():
        feats = model.extract(wav, None, "v2")
    assert feats.shape[:2] == (1, 49) and torch.isfinite(feats).all()


def test_rmvpe_standin_loads_through_load_rmvpe(standin_dir: Path, rvc_logs: pytest.LogCaptureFixture) -> None:
    from infer.lib.rmvpe import load_rmvpe

    model = load_rmvpe(standin_dir / RMVPE)
    t = np.arange(8000, dtype=np.float32) / 16000
    f0 = model.infer_from_audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    assert f0.shape == (8000 // 160 + 1,) and np.isfinite(f0).all()


def test_mossformer2_standin_loads_through_the_enhancer_loader(
    standin_dir: Path, rvc_logs: pytest.LogCaptureFixture
) -> None:
    from infer.lib.enhance import load_mossformer2

    _, standin = load_mossformer2(standin_dir / MOSSFORMER2)
    assert standin is not None
    assert "stand-in weights" in rvc_logs.text


def test_pretrained_standins_load_through_load_pretrained(tmp_path: Path) -> None:
    assert make_standin_weights.main(["--out", str(tmp_path), "--names", G, D]) == 0
    from infer.lib import checkpoint
    from infer.lib.config import load_config
    from infer.lib.models.discriminator import build_discriminator
    from infer.lib.models.synthesizer import build_generator

    cfg = load_config("v2", "40k")
    g = build_generator(cfg, use_f0=True)
    checkpoint.load_pretrained(tmp_path / G, g, "G", "v2 40k f0")
    d = build_discriminator("v2")
    checkpoint.load_pretrained(tmp_path / D, d, "D", "v2 40k")


def test_damaged_standin_is_refused(tmp_path: Path) -> None:
    make_standin_weights.main(["--out", str(tmp_path), "--tiny-hubert", "--names", HUBERT])
    with open(tmp_path / HUBERT, "r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 8)
    with pytest.raises(WeightsError, match="corrupt.*stand-in file"):
        WeightDownloader(WeightsSettings(weights_dir=tmp_path, offline=True)).fetch([HUBERT])


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    assert make_standin_weights.main(["--out", str(tmp_path), "--names", "hubert/other.pt"]) == 1
