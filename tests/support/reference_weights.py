"""The reference's deterministic stand-in weights (`../shared/reference/deterministic_weights.py`): the
state dicts the reference fixtures were computed with, for tests that compare against them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch


def deterministic_state_dict(reference_dir: Path, net: str) -> dict[str, torch.Tensor]:
    """The deterministic state dict of `net` ("RMVPE", ...) in the shapes of `rvc_state_dicts.json`."""
    spec = importlib.util.spec_from_file_location("deterministic_weights", reference_dir / "deterministic_weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shapes = json.loads((reference_dir / "rvc_state_dicts.json").read_text())[net]["state_dict"]
    return module.deterministic_state_dict(shapes)


def save_deterministic_weights(reference_dir: Path, net: str, path: Path) -> Path:
    """`deterministic_state_dict(reference_dir, net)` saved with `torch.save` at `path`; returns `path`."""
    torch.save(deterministic_state_dict(reference_dir, net), path)
    return path
