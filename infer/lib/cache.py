"""A content-addressed cache for extracted arrays (pitch, features).

A key is the sha256 of the input file's bytes plus the settings that change the result (method,
model file hash, version, ...), so a re-run on the same audio with more epochs extracts nothing again,
and any change of input or setting misses. Values are `.npy` files written atomically; concurrent
writers of the same key are harmless (last rename wins, both wrote the same bytes).

The default root is `$RVC_CACHE_DIR`, else `~/.cache/rvc/extract`; pass `root=None` to disable.
A cache is bounded by `max_bytes` (default `$RVC_CACHE_MAX_GB`, 20 GiB): past it, the least recently
used values (by file modification time, refreshed on every hit) are deleted. The Predictor keeps its
cache inside the job folder (deleted with it) unless `RVC_CACHE_DIR` is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.errors import ConfigError
from infer.lib.fileio import atomic_np_save, sha256_file

CACHE_DIR_ENV = "RVC_CACHE_DIR"
CACHE_MAX_ENV = "RVC_CACHE_MAX_GB"


def default_cache_root() -> Path:
    """`$RVC_CACHE_DIR` or `~/.cache/rvc/extract` (not created until something is written)."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "rvc" / "extract"


def default_cache_max_bytes() -> int:
    """`$RVC_CACHE_MAX_GB` (GiB, may be fractional) in bytes; 20 GiB when unset."""
    raw = os.environ.get(CACHE_MAX_ENV, "").strip()
    try:
        gb = float(raw) if raw else 20.0
    except ValueError:
        raise ConfigError(f"{CACHE_MAX_ENV} must be a number of GiB, got {raw!r}") from None
    if not gb > 0:
        raise ConfigError(f"{CACHE_MAX_ENV} must be > 0, got {raw!r}")
    return int(gb * (1 << 30))


class ArrayCache:
    """`get(key)` / `put(key, array)`; `key(path, settings)` builds a key. Disabled when `root` is None.

    `max_bytes`: size bound (None: `default_cache_max_bytes()`); least recently used values go first.
    """

    def __init__(self, root: Path | None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.max_bytes = default_cache_max_bytes() if max_bytes is None else int(max_bytes)
        self._size: int | None = None  # bytes under root, scanned on the first put
        self._lock = threading.Lock()

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
            arr = np.load(p, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None
        with contextlib.suppress(OSError):
            os.utime(p)  # recently used
        return arr

    def put(self, key: str, array: np.ndarray, name: str = "value") -> None:
        if self.root is None:
            return
        p = self._path(key, name)
        atomic_np_save(p, np.asarray(array))
        with self._lock:
            if self._size is None:
                self._size = sum(f.stat().st_size for f in self._files())
            else:
                with contextlib.suppress(OSError):
                    self._size += p.stat().st_size
            if self._size > self.max_bytes:
                self._evict()

    def _files(self) -> list[Path]:
        assert self.root is not None
        return [f for f in self.root.glob("??/*.npy") if f.is_file()] if self.root.is_dir() else []

    def _evict(self) -> None:
        """Delete the least recently used values until the cache is at most 90% of `max_bytes`."""
        entries = []
        for f in self._files():
            with contextlib.suppress(OSError):
                st = f.stat()
                entries.append((st.st_mtime, st.st_size, f))
        entries.sort()
        total = sum(e[1] for e in entries)
        target = int(self.max_bytes * 0.9)
        for _, size, f in entries:
            if total <= target:
                break
            with contextlib.suppress(OSError):
                f.unlink()
                total -= size
        self._size = total
