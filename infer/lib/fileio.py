"""Atomic file writes and hashing: a file is either the old complete one or the new complete one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    `suffix` defaults to `path`'s own suffix, so libraries that pick a format by extension still work.
    On error the temporary file is removed and `path` is untouched; a full disk (ENOSPC, or a library's
    write error with the disk nearly full) becomes `DiskFullError` naming the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.tmp-", suffix=path.suffix if suffix is None else suffix
    )
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        from infer.lib.diskspace import disk_full_error, is_disk_full

        full = isinstance(e, Exception) and is_disk_full(e, path.parent)  # measured before the unlink frees space
        tmp_path.unlink(missing_ok=True)
        if full:
            raise disk_full_error(path.parent, f"writing {path.name}") from e
        raise


class _TooLarge(Exception):
    pass


def copy_capped(src: IO[bytes], path: str | os.PathLike[str], cap: int) -> bool:
    """Copy the stream `src` to `path` atomically, at most `cap` bytes.

    The bytes are counted as they come out (a zip member's declared size can lie). False, with nothing
    written, when more than `cap` bytes come out.
    """
    n = 0
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            while block := src.read(1 << 20):
                n += len(block)
                if n > cap:
                    raise _TooLarge
                out.write(block)
    except _TooLarge:
        return False
    return True


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """`torch.save` to a temporary file, then rename."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_np_save(path: str | os.PathLike[str], arr: Any) -> None:
    """`np.save` to exactly `path` (which should end in .npy), atomically."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr, allow_pickle=False)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
