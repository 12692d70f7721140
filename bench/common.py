"""Helpers shared by the benchmarks: where the data sets and the stand-ins are, device description,
peak memory of a process tree, a local HTTP server, audio durations and table formatting. Nothing
happens at import.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

GiB = 1 << 30
SHARED = Path(os.environ.get("RVC_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


def data_dir(name: str) -> Path:
    """A data set: `name` itself when it is a folder, else `name` under ../shared/data."""
    p = Path(name)
    return p if p.is_dir() else SHARED / "data" / name


def bench_cache_dir() -> Path:
    """Where the benchmarks keep what they write once (stand-in weights): `$RVC_CACHE_DIR`, else ~/.cache/rvc."""
    return Path(os.environ.get("RVC_CACHE_DIR", Path.home() / ".cache" / "rvc"))


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, torch threads and version, GPU, load."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except Exception:
        pass
    return info


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants now (bytes; shared pages counted per process)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        todo += _children(p)
    return total


class PeakSampler:
    """Samples `tree_rss_bytes(pid)` every `interval` seconds in a thread; `.peak` is the maximum (bytes).

    Use as a context manager around the work. Short spikes between samples can be missed, so the
    figures are reported together with the kernel's `ru_maxrss` high-water marks.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.05) -> None:
        self.pid = pid or os.getpid()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_bytes(self.pid))


def rusage_peaks() -> dict[str, float]:
    """Kernel high-water marks of this process and of its reaped children (GB; Linux reports KiB)."""
    return {
        "maxrss_self_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB, 3),
        "maxrss_children_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GiB, 3),
    }


# --------------------------------------------------------------------------------------------------
# Local HTTP server (the download stage)
# --------------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1 (a free port) while inside; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------------------------------
# Audio and formatting
# --------------------------------------------------------------------------------------------------


def audio_files(folder: Path) -> list[Path]:
    """The audio files of a data folder (`infer.lib.audio.AUDIO_EXTENSIONS`), sorted (hidden files skipped)."""
    from infer.lib.audio import AUDIO_EXTENSIONS

    files = Path(folder).iterdir()
    return sorted(p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))


def audio_seconds(files: Sequence[Path]) -> float:
    """Total duration of `files` (seconds), read from their headers (`infer.lib.audio.probe`)."""
    from infer.lib.audio import probe

    return float(sum(probe(f).duration_s for f in files))


class Stopwatch:
    """`with Stopwatch() as sw: ...; sw.seconds` (monotonic wall time)."""

    def __enter__(self) -> Stopwatch:
        self.t0 = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.t0


def fmt(v: Any, digits: int = 2) -> str:
    """A table cell: '-' for None, rounded floats, plain text otherwise."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], json_path: Path | None) -> None:
    """Print `rows` as a markdown table of `columns` ((header, key) pairs; a missing or None value is
    '-', other values as they are), then write the rows as JSON to `json_path` when given."""
    cells = [["-" if r.get(key) is None else str(r[key]) for _, key in columns] for r in rows]
    print("\n" + markdown_table([header for header, _ in columns], cells))
    if json_path:
        json_path.write_text(json.dumps(list(rows), indent=2))
