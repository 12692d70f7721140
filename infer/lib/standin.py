"""The stand-in weights marker.

`python -m tools.make_standin_weights` writes files in exactly the published on-disk formats but with
deterministic random values, so tests and the offline demo can run the whole pipeline. Each such file
carries a marker that every loader detects with `pop_standin_marker` and reports with `warn_standin`,
loudly: a voice trained from stand-in weights is not usable.

Where the marker lives:
- dict-layout files (pretrained G/D `{"model": ...}`, fairseq checkpoints, MossFormer2 checkpoints):
  a top-level key `STANDIN_KEY` whose value is a short description string;
- bare state dicts (`rmvpe.pt`): a key `STANDIN_KEY` holding a uint8 tensor of that string.
Loaders remove the key before `load_state_dict`, so strict loading works on both real and stand-in files.
"""

from __future__ import annotations

from typing import Any

from infer.lib.log import get_logger

STANDIN_KEY = "_rvc_standin"
STANDIN_WARNING = "stand-in weights: the trained voice will not be usable"

_log = get_logger("weights")


def standin_value(description: str) -> Any:
    """The marker value for a bare state dict (a uint8 tensor holding `description`)."""
    import torch

    return torch.tensor(list(description.encode("utf-8")), dtype=torch.uint8)


def pop_standin_marker(d: dict[str, Any]) -> str | None:
    """Remove the marker from `d` (in place); return its description, or None for real weights."""
    if not isinstance(d, dict) or STANDIN_KEY not in d:
        return None
    v = d.pop(STANDIN_KEY)
    if isinstance(v, str):
        return v
    try:
        return bytes(v.tolist()).decode("utf-8", "replace")
    except Exception:
        return "stand-in"


def warn_standin(what: str, description: str | None = None) -> None:
    """Log, loudly, that `what` was loaded from stand-in weights."""
    bar = "!" * 78
    _log.warning(bar)
    _log.warning("%s: %s (%s)", what, STANDIN_WARNING, description or "stand-in")
    _log.warning(bar)
