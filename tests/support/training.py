"""Helpers for the training tests: a tiny network on ../shared/data/joe_1min through the real stages.

`make_tiny_config()` is the real config with a network small enough for CPU tests. `tiny_modules()` is
a `TrainModules` with that tiny synthesizer (3200-sample slices), a
discriminator with one period (plus the scale discriminator), from scratch, pitch by pm, and a
stand-in HuBERT base in the fairseq format (the real network with deterministic weights).
`copy_experiment()` gives a test its own copy of an experiment folder.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from infer.lib.config import RVCConfig, load_config, tiny_network
from infer.lib.layout import ExperimentLayout

_CACHE: dict[str, Any] = {}
TINY_D_PERIODS = (2,)


def make_tiny_config(version: str = "v2", sample_rate: str = "40k") -> RVCConfig:
    """The real config for (version, sample_rate) with a network small enough for CPU tests."""
    cfg = tiny_network(load_config(version, sample_rate))
    train = dataclasses.replace(cfg.train, batch_size=2, log_interval=1)
    return dataclasses.replace(cfg, train=train)


def tiny_train_config() -> RVCConfig:
    cfg = make_tiny_config("v2", "40k")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, segment_size=3200))


def standin_hubert(tmp_path_factory: Any) -> Path:
    """A stand-in full-size HuBERT (`hubert_base.pt` layout), written once per session."""
    if "hubert" not in _CACHE:
        from tools.standin_writers import write_standin_hubert

        d = tmp_path_factory.mktemp("weights")
        _CACHE["hubert"] = write_standin_hubert(d / "hubert" / "hubert_base.pt", "base")
    return _CACHE["hubert"]


def tiny_options(**kw: Any) -> Any:
    from infer.modules.train.pipeline import TrainOptions

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


def tiny_modules(workdir: Path, tmp_path_factory: Any, **kw: Any) -> Any:
    from infer.lib.cache import ArrayCache
    from infer.modules.train.pipeline import TrainModules

    if "cache" not in _CACHE:
        _CACHE["cache"] = ArrayCache(tmp_path_factory.mktemp("extract-cache"))
    return TrainModules(
        tiny_options(**kw),
        workdir,
        weight_paths={"hubert/hubert_base.pt": standin_hubert(tmp_path_factory)},
        config=tiny_train_config(),
        cache=_CACHE["cache"],
        train_overrides={"discriminator_periods": TINY_D_PERIODS, "log_every": 2},
    )


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
