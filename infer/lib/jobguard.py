"""What keeps one job from harming another, and a stopped job from leaving a mess.

- `JobLock`: an exclusive `flock` on `<job folder>/.lock`, held while the job folder is in use (by
  the process that made it). Folders whose lock is free belong to no live process: `purge_unlocked`
  deletes only those, so processes that share `RVC_JOBS_DIR` never delete each other's running
  jobs. The kernel frees the lock when its process dies, even by SIGKILL.
- `die_with_parent()`: a worker process (DDP) gets SIGTERM when the process that started it dies,
  even by SIGKILL, so no orphan keeps training (Linux; elsewhere nothing happens).
- `sigterm_stops(cancel)`: while inside (main thread), SIGTERM sets `cancel` so the running stage
  stops cleanly (training saves a checkpoint) and is remembered; on leaving, after the caller's
  clean-up, "job stopped" is logged and the signal is delivered again to the previous handler, so
  the process still exits as it was asked to.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infer.lib.log import get_logger

_log = get_logger("job")
LOCK_NAME = ".lock"


class JobLock:
    """An exclusive lock on `<folder>/.lock`; `acquire()` creates it, `release()` frees it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> JobLock:
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(folder: Path) -> bool:
    """True when a live process holds `folder`'s lock."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def purge_unlocked(base: Path, prefix: str, keep: Path | None = None, min_age_s: float = 60.0) -> list[Path]:
    """Delete the `prefix*` folders under `base` that no live process holds (see the module docstring).

    A folder without a lock file is deleted only when older than `min_age_s` (one being created right
    now has no lock yet). Returns the folders deleted.
    """
    gone = []
    now = time.time()
    for d in sorted(Path(base).glob(f"{prefix}*")):
        if not d.is_dir() or d.is_symlink() or d == keep:
            continue
        if not (d / LOCK_NAME).exists():
            try:
                if now - d.stat().st_mtime < min_age_s:
                    continue
            except OSError:
                continue
        elif is_locked(d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        gone.append(d)
    return gone


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG); True if set."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(1, int(sig), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG = 1
            return False
    except (OSError, AttributeError):
        return False
    return True


@dataclass
class StopState:
    """Whether SIGTERM arrived while inside `sigterm_stops`."""

    received: bool = False


class _StopHandler:
    """The SIGTERM handler of `sigterm_stops`: records the signal and sets `cancel`.

    `_rvc_chain` marks it for inner handlers (training), which call it too.
    """

    _rvc_chain = True

    def __init__(self, state: StopState, cancel: threading.Event) -> None:
        self.state = state
        self.cancel = cancel

    def __call__(self, signum: int, frame: Any) -> None:
        self.state.received = True
        self.cancel.set()


@contextlib.contextmanager
def sigterm_stops(cancel: threading.Event, reraise: bool = True) -> Iterator[StopState]:
    """See the module docstring. Outside the main thread nothing is installed."""
    state = StopState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    old = signal.signal(signal.SIGTERM, _StopHandler(state, cancel))
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, old)
        if state.received:
            _log.warning("job stopped (SIGTERM): intermediates removed")
            if reraise:
                signal.raise_signal(signal.SIGTERM)
