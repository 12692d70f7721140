"""A weights file on disk: what it should be, what is wrong with it, and the stamp remembering its sha256.

`file_problem(path, Expected(size, sha256))` says what is wrong with a file (None when it is intact). Its
sha256 is computed once and remembered in a hidden stamp file beside it (`.<name>.verified.json`),
keyed by size and mtime, so a cached file is checked cheaply on every use. A stand-in weights folder
lists its files with their own size and sha256 in `STANDIN_MANIFEST` (`record_standins` writes it,
`read_standin_listing` reads it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infer.lib.errors import WeightsError
from infer.lib.fileio import atomic_write_text, sha256_file
from infer.lib.log import get_logger
from infer.lib.weights import STANDIN_MANIFEST

_log = get_logger("weights")

_STAMP_SUFFIX = ".verified.json"


def hidden_path(path: Path, suffix: str) -> Path:
    """A hidden companion file beside `path` (listing code skips names starting with '.')."""
    return path.with_name(f".{path.name}{suffix}")


def stamp_path(path: Path) -> Path:
    return hidden_path(path, _STAMP_SUFFIX)


def _read_stamp(path: Path, st: os.stat_result) -> str | None:
    """The sha256 remembered for `path` if the stamp matches its current size and mtime."""
    try:
        data = json.loads(stamp_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("size") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns:
        sha = data.get("sha256")
        return sha if isinstance(sha, str) else None
    return None


def write_stamp(path: Path, sha: str) -> None:
    st = path.stat()
    try:
        atomic_write_text(stamp_path(path), json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}))
    except OSError as e:  # a read-only weights folder (baked into an image) still works
        _log.debug("could not write the stamp for %s: %s", path, e)


def file_sha256(path: Path) -> str:
    """sha256 of `path`, from its stamp when size and mtime are unchanged, else hashed (and stamped)."""
    st = path.stat()
    sha = _read_stamp(path, st)
    if sha is None:
        sha = sha256_file(path)
        write_stamp(path, sha)
    return sha


@dataclass(frozen=True)
class Expected:
    """A file's expected size in bytes and sha256 (lowercase hex); None where unknown."""

    size: int | None
    sha256: str | None

    def mismatch(self, path: Path, size: int, sha256_of: Callable[[Path], str]) -> str | None:
        """What makes `path` (of `size` bytes) differ from this, None when nothing does; `sha256_of`
        hashes it, only when the size is right."""
        if self.size is not None and size != self.size:
            return f"size {size} bytes, expected {self.size} (truncated or corrupt)"
        if self.sha256 is not None:
            sha = sha256_of(path)
            if sha != self.sha256:
                return f"sha256 {sha}, expected {self.sha256} (corrupt)"
        return None


def file_problem(path: Path, expect: Expected) -> str | None:
    """None when `path` is present and matches `expect`, else what is wrong (for messages)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if not path.is_file():
        return "not a file"
    return expect.mismatch(path, st.st_size, file_sha256)


def read_standin_listing(weights_dir: Path) -> dict[str, Expected]:
    """{name: Expected} of the stand-in files `weights_dir` lists, {} when it is no stand-in folder."""
    path = weights_dir / STANDIN_MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {k: Expected(int(v["size"]), str(v["sha256"])) for k, v in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path} is unreadable ({e}); write the stand-in folder again") from e


def record_standins(weights_dir: str | os.PathLike[str], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Mark files under `weights_dir` as stand-ins: add them (size, sha256) to `STANDIN_MANIFEST` and
    stamp them. Called by `tools.make_standin_weights` after writing; returns the updated file list."""
    weights_dir = Path(weights_dir)
    listing = weights_dir / STANDIN_MANIFEST
    files: dict[str, dict[str, Any]] = {}
    if listing.is_file():
        files = json.loads(listing.read_text()).get("files", {})
    for name in names:
        path = weights_dir / name
        sha = sha256_file(path)
        write_stamp(path, sha)
        files[name] = {"size": path.stat().st_size, "sha256": sha}
    doc = {
        "warning": "STAND-IN WEIGHTS (deterministic random values): for tests and the offline demo only; "
        "a voice trained from them is not usable",
        "written_by": "python -m tools.make_standin_weights",
        "files": dict(sorted(files.items())),
    }
    atomic_write_text(listing, json.dumps(doc, indent=1) + "\n")
    return files
