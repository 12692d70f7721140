"""The stand-in weights marker.

`python -m tools.make_standin_weights` writes files in exactly the published on-disk formats but with
deterministic random values, so tests and the offline demo can run the whole pipeline. Each such file
carries a marker that every loader detects with `pop_standin_marker` and reports with `warn_standin`,
loudly: a voice trained from stand-in weights is not usable.

Where the marker lives:
- dict-layout files (pretrained G/D `{"model": ...}`, fairseq checkpoints, MossFormer2 checkpoints):
  a top-level key `STANDIN_KEY` whose value is a short description string (the reference loaders
  read only their own keys of these dicts, so they accept the files unchanged);
- bare state dicts (`rmvpe.pt`): nothing in the file, which is exactly the published layout (the
  reference loads it with a strict `load_state_dict`); the marker is a sidecar file
  `<name>.standin` holding the description (`write_sidecar` / `read_sidecar`), and the file is listed
  in the stand-in folder's `STANDIN_WEIGHTS.json` like every stand-in. Older stand-ins with a
  `STANDIN_KEY` uint8 tensor in the state dict are still recognised.
Loaders remove the key before `load_state_dict`, so strict loading works on both real and stand-in files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infer.lib.log import get_logger

STANDIN_KEY = "_rvc_standin"
SIDECAR_SUFFIX = ".standin"
STANDIN_WARNING = "stand-in weights: the trained voice will not be usable"

_log = get_logger("weights")


def sidecar_path(path: str | Path) -> Path:
    """Where the marker of a bare-state-dict stand-in lives: `<path>.standin`."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | Path, description: str) -> Path:
    """Mark the stand-in `path` by its sidecar file (holding `description`); returns the sidecar's path."""
    from infer.lib.fileio import atomic_write_text

    side = sidecar_path(path)
    atomic_write_text(side, description + "\n")
    return side


def read_sidecar(path: str | Path) -> str | None:
    """The description in `path`'s sidecar, or None when `path` has none (real weights)."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    return side.read_text(encoding="utf-8", errors="replace").strip()[:200] or "stand-in"


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
