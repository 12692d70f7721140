"""Free disk space: a check before long work, and one clear message when a disk fills up anyway."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from infer.lib.errors import DiskFullError

GiB = 1 << 30
MiB = 1 << 20


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Free bytes on the file system holding `folder` (its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _size(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def disk_full_error(folder: Path, what: str, need: int | None = None) -> DiskFullError:
    """The one message for a full disk: the folder, what was being done, the space needed if known."""
    try:
        free = free_bytes(folder)
    except OSError:
        free = 0
    want = f"; about {_size(need)} is needed" if need else ""
    return DiskFullError(
        f"not enough disk space in {folder} for {what} ({_size(free)} free{want}); free some space "
        "or point RVC_JOBS_DIR at a larger disk"
    )


def ensure_free_space(folder: str | os.PathLike[str], need: int, what: str) -> None:
    """Raise `DiskFullError` when `folder`'s file system has less than `need` bytes free."""
    if free_bytes(folder) < need:
        raise disk_full_error(Path(folder), what, need)


def is_disk_full(e: BaseException, folder: str | os.PathLike[str] | None = None, slack: int = 16 * MiB) -> bool:
    """True when `e` (or an exception in its chain) is ENOSPC/EDQUOT, or, for the errors libraries raise
    without an errno (torch.save: `unexpected pos`, `file write failed`), when `folder` has under `slack`
    bytes free."""
    seen = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        x = x.__cause__ or x.__context__
    if folder is not None and isinstance(e, (OSError, RuntimeError)):
        try:
            return free_bytes(folder) < slack
        except OSError:
            return False
    return False
