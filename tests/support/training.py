"""Tiny trainings on ../shared/data/joe_1min through the real stages, as fixtures.

`make_tiny_config()` is the real config with a network small enough for CPU tests (the fixture
`tiny_config` is that factory). The fixtures:

- `extract_cache`: the session's extraction cache (the folder the product servers share too), so
  the same audio is extracted once.
- `tiny_modules(workdir, **options)`: a `TrainModules` with the tiny synthesizer (3200-sample
  slices), a one-period discriminator (plus the scale discriminator), from scratch, pitch by pm.
- `trained_run`: ONE whole run shared by every test that needs a trained experiment: check ->
  preprocess -> features -> f0 -> filelist -> 2 epochs -> index -> zip, on joe's speech mixed with
  another voice, white noise and music (which the check leaves out). Tests that train further work
  on a copy (`copy_experiment`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infer.lib.cache import ArrayCache
from infer.lib.config import TINY_DISCRIMINATOR_PERIODS, RVCConfig, load_config, tiny_network
from infer.lib.layout import ExperimentLayout
from infer.lib.options import TrainOptions
from infer.lib.weights import HUBERT
from infer.modules.train.pipeline import PipelineResult, TrainModules

TinyModules = Callable[..., TrainModules]


def make_tiny_config(version: str = "v2", sample_rate: str = "40k") -> RVCConfig:
    """The real config for (version, sample_rate) with a network small enough for CPU tests."""
    cfg = tiny_network(load_config(version, sample_rate))
    train = dataclasses.replace(cfg.train, batch_size=2, log_interval=1)
    return dataclasses.replace(cfg, train=train)


def tiny_train_config() -> RVCConfig:
    cfg = make_tiny_config("v2", "40k")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, segment_size=3200))


def tiny_options(**kw: Any) -> TrainOptions:
    base: dict[str, Any] = dict(
        experiment_name="joe",
        version="v2",
        sample_rate="40k",
        f0method="pm",
        epochs=2,
        batch_size=8,
        save_every_epoch=1,
        enhance_audio=False,
        from_scratch=True,
        device="cpu",
        learning_rate=1e-3,
        holdout=2,
        seed=1234,
    )
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture
def tiny_config() -> Callable[..., RVCConfig]:
    """Factory: `tiny_config("v2", "40k")` (`make_tiny_config`)."""
    return make_tiny_config


@pytest.fixture(scope="session")
def extract_cache(tmp_path_factory: pytest.TempPathFactory) -> ArrayCache:
    """The session's extraction cache (its folder is the product servers' RVC_CACHE_DIR too)."""
    return ArrayCache(tmp_path_factory.mktemp("extract-cache"))


@pytest.fixture(scope="session")
def tiny_modules(standin_hubert: Path, extract_cache: ArrayCache) -> TinyModules:
    """Factory: `tiny_modules(workdir, **options)` -> a `TrainModules` on `workdir` (options as
    `tiny_options`), the session's stand-in HuBERT (`standin_hubert`) and extraction cache."""

    def make(workdir: Path, **kw: Any) -> TrainModules:
        return TrainModules(
            tiny_options(**kw),
            workdir,
            weight_paths={HUBERT: standin_hubert},
            config=tiny_train_config(),
            cache=extract_cache,
            train_overrides={"discriminator_periods": TINY_DISCRIMINATOR_PERIODS, "log_every": 2},
        )

    return make


@dataclass(frozen=True)
class TrainedRun:
    """The session's one whole tiny run: its modules (experiment folder, reports), result and zip."""

    tm: TrainModules
    result: PipelineResult
    root: Path

    @property
    def zip(self) -> Path:
        assert self.result.zip_path is not None
        return Path(self.result.zip_path)

    @property
    def exp(self) -> ExperimentLayout:
        return self.tm.exp

    @property
    def report(self) -> dict[str, Any]:
        """The train stage's report (history, held-out mel losses, steps)."""
        assert self.tm._train_report is not None
        return self.tm._train_report


@pytest.fixture(scope="session")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_modules: TinyModules,
    joe_1min: Path,
    other_audio: dict[str, Path],
) -> TrainedRun:
    """check -> preprocess -> features -> f0 -> filelist -> 2 epochs -> index -> zip (checkpoints
    included), on joe's four files mixed with another voice, white noise and music."""
    root = tmp_path_factory.mktemp("trained-run")
    tm = tiny_modules(root / "exp", include_checkpoints=True)
    inputs = [*sorted(joe_1min.glob("*.wav")), other_audio["voice"], other_audio["noise"], other_audio["music"]]
    return TrainedRun(tm=tm, result=tm.run(inputs, root / "joe.zip"), root=root)


def copy_experiment(src: ExperimentLayout, dst: Path, keep_training: bool = False) -> ExperimentLayout:
    """A private copy of an experiment folder (filelist rewritten to point into the copy).

    Without `keep_training` the copy is as before the train stage: no checkpoints, state, models,
    TensorBoard logs or index.
    """
    from infer.modules.train.state import STATE_FILE

    def skip(_d: str, names: list[str]) -> set[str]:
        if keep_training:
            return set()
        return {n for n in names if n.endswith((".pth", ".index")) or n in (STATE_FILE, "tensorboard", "train.log")}

    shutil.copytree(src.root, dst, ignore=skip)
    exp = ExperimentLayout(dst, src.version)
    text = exp.filelist_path.read_text().replace(str(src.root.resolve()), str(dst.resolve()))
    exp.filelist_path.write_text(text)
    return exp
