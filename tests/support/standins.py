"""Stand-in weights for the session, as fixtures: the published on-disk formats with deterministic
values and the stand-in marker (`tools.make_standin_weights`), each written once into one folder in
the `RVC_WEIGHTS_DIR` layout (`standin_weights_dir`), which the product servers use as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from infer.lib.weights import HUBERT, RMVPE


def _write(weights_dir: Path, name: str) -> Path:
    from tools.make_standin_weights import write_standins

    (path,) = write_standins(weights_dir, [name])
    return path


@pytest.fixture(scope="session")
def standin_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's stand-in weights folder; the fixtures below write into it."""
    return tmp_path_factory.mktemp("standin-weights")


@pytest.fixture(scope="session")
def standin_hubert(standin_weights_dir: Path) -> Path:
    """A stand-in full-size HuBERT base (`hubert/hubert_base.pt`, fairseq format): the v2 networks
    take its 768-dim features."""
    return _write(standin_weights_dir, HUBERT)


@pytest.fixture(scope="session")
def standin_rmvpe(standin_weights_dir: Path) -> Path:
    """A stand-in full-size RMVPE (`rmvpe/rmvpe.pt`)."""
    return _write(standin_weights_dir, RMVPE)
