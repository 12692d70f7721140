"""A tiny synthetic experiment folder for the GPU checks and the CUDA-emulation tests.

`tiny_experiment(root)` writes, in seconds and without any weights, what the training stage reads:
`config.json` (the v2/40k config with the tiny synthesizer and 3200-sample slices), `n` segments of
noise with pitch and 768-dim features (1600-sample training slices), and `filelist.txt`. `tiny_settings(exp, **kw)` are the
`TrainSettings` of a from-scratch run on it with a one-period discriminator.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.config import TINY_DISCRIMINATOR_PERIODS, RVCConfig, load_config, tiny_network
from infer.lib.layout import ExperimentLayout


def tiny_config() -> RVCConfig:
    cfg = tiny_network(load_config("v2", "40k"))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, segment_size=1600, log_interval=1))


def tiny_experiment(root: Path, n: int = 8, seconds: float = 1.5, seed: int = 0) -> ExperimentLayout:
    """`n` segments of `seconds` of noise at 40 kHz, with pitch (220 Hz) and random 768-dim features."""
    import soundfile as sf

    cfg = tiny_config()
    exp = ExperimentLayout(Path(root), "v2")
    exp.make_dirs()
    exp.config_path.write_text(json.dumps(cfg.to_dict()))
    rng = np.random.default_rng(seed)
    samples = int(seconds * 40000)
    frames = samples // cfg.data.hop_length
    lines = []
    for i in range(n):
        name = f"0_{i}.wav"
        sf.write(exp.gt_wavs_dir / name, (rng.standard_normal(samples) * 3000).astype(np.int16), 40000)
        np.save(exp.feature_file(name), rng.standard_normal((frames // 2, 768)).astype(np.float32))
        np.save(exp.f0_file(name), np.full(frames, 50, np.int64))
        np.save(exp.f0nsf_file(name), np.full(frames, 220.0, np.float32))
        lines.append(f"{exp.gt_wavs_dir / name}|{exp.feature_file(name)}|{exp.f0_file(name)}|{exp.f0nsf_file(name)}|0")
    exp.filelist_path.write_text("\n".join(lines) + "\n")
    return exp


def tiny_settings(exp: ExperimentLayout, **kw: Any) -> Any:
    from infer.modules.train.train import TrainSettings

    base: dict[str, Any] = {
        "exp_root": str(exp.root),
        "version": "v2",
        "sample_rate": "40k",
        "use_f0": True,
        "name": "tiny",
        "epochs": 1,
        "from_scratch": True,
        "batch_size": 4,
        "save_every_epoch": 1,
        "world_size": 1,
        "num_workers": 0,
        "holdout": 0,
        "log_every": 1,
        "learning_rate": 1e-3,
        "discriminator_periods": TINY_DISCRIMINATOR_PERIODS,
    }
    return TrainSettings(**(base | kw))
