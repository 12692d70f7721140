"""A content-addressed cache for extracted arrays (pitch, features).

A key is the sha256 of the input file's bytes plus the settings that change the result (method,
model file hash, version, ...), so a re-run on the same audio with more epochs extracts nothing again,
and any change of input or setting misses. Values are `.npy` files written atomically; concurrent
writers of the same key are harmless (last rename wins, both wrote the same bytes).

The default root is `$RVC_CACHE_DIR`, else `~/.cache/rvc/extract`; pass `root=None` to disable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.fileio import atomic_np_save, sha256_file


def default_cache_root() -> Path:
    """`$RVC_CACHE_DIR` or `~/.cache/rvc/extract` (not created until something is written)."""
    env = os.environ.get("RVC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rvc" / "extract"


class ArrayCache:
    """`get(key)` / `put(key, array)`; `key(path, settings)` builds a key. Disabled when `root` is None."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None

    @property
    def enabled(self) -> bool:
        return self.root is not None

    @staticmethod
    def key(path: Path | str, settings: dict[str, Any]) -> str:
        """sha256 over the file's content hash and the JSON of `settings` (sorted keys)."""
        h = hashlib.sha256()
        h.update(sha256_file(path).encode())
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def _path(self, key: str, name: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.{name}.npy"

    def get(self, key: str, name: str = "value") -> np.ndarray | None:
        """The cached array, or None (also when disabled or unreadable)."""
        if self.root is None:
            return None
        p = self._path(key, name)
        try:
            return np.load(p, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, key: str, array: np.ndarray, name: str = "value") -> None:
        if self.root is not None:
            atomic_np_save(self._path(key, name), np.asarray(array))
