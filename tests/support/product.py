"""The product servers for tests (cog HTTP server, web UI) on 127.0.0.1, with stand-in weights.

Nothing is mocked: the cog server is cog 0.23.1's own (`python -m cog.server.http`, coglet), the web
UI is `infer-web.py`, both started as real processes and spoken to over real sockets. They run with
the session's stand-in weights (`product_weights`), RVC_OFFLINE=1, the TEST-ONLY tiny network and
discriminator (RVC_TEST_TINY_MODEL=1) and the session's extraction cache, so the same audio is
extracted once for every job of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from infer.lib.cache import ArrayCache
from tests.support import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
READY_CEILING_S = 600.0  # a server that neither comes up nor exits by then is stuck


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def product_weights(standin_weights_dir: Path, standin_hubert: Path, standin_rmvpe: Path) -> Path:
    """The weights folder of the product servers: the session's stand-in HuBERT and RMVPE (both
    loaded by the Predictor's setup). The jobs train the tiny network from scratch: no pretrained pair."""
    return standin_weights_dir


def product_env(weights_dir: Path, jobs_dir: Path, cache: ArrayCache, **extra: str) -> dict[str, str]:
    """The environment of a test server: stand-in weights, offline, the TEST-ONLY tiny network, the
    extraction cache `cache` (the session's: the same audio is extracted once)."""
    assert cache.root is not None
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        RVC_WEIGHTS_DIR=str(weights_dir),
        RVC_OFFLINE="1",
        RVC_TEST_TINY_MODEL="1",
        RVC_JOBS_DIR=str(jobs_dir),
        RVC_ALLOW_PRIVATE_URLS="1",  # the audio is served on 127.0.0.1
        RVC_CACHE_DIR=str(cache.root),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it does not go."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@contextmanager
def server_process(
    name: str, cmd: list[str], env: dict[str, str], log_path: Path, ready: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server `name` as `cmd` (its own process group, output to `log_path`), wait until `ready()` says it serves
    (its errors: not yet) or it exits (an error with its log), yield it, stop it."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + READY_CEILING_S
        while not _ready(ready):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not serving after {READY_CEILING_S}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield proc
    finally:
        stop_process(proc)


def _ready(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except requests.RequestException:
        return False


@contextmanager
def cog_server(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """cog 0.23.1's HTTP server on 127.0.0.1 running predict.py:Predictor; yields (base URL, its pid)."""
    port = free_port()
    env = dict(env, PORT=str(port), COG_PREDICT_TYPE_STUB="predict.py:Predictor", COG_LOG_LEVEL="info")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        body = requests.get(base + "/health-check", timeout=5).json()
        if body.get("status") in ("SETUP_FAILED", "DEFUNCT"):
            raise RuntimeError(f"cog setup failed ({body.get('status')}):\n{str(body.get('setup'))[-4000:]}")
        return bool(body.get("status") == "READY")

    cmd = [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"]
    with server_process("the cog server", cmd, env, log_path, ready) as proc:
        yield base, proc.pid


@contextmanager
def web_ui_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`infer-web.py` on 127.0.0.1; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "infer-web.py", "--host", "127.0.0.1", "--port", str(port)]
    with server_process("infer-web.py", cmd, env, log_path, lambda: requests.get(url, timeout=5).status_code == 200):
        yield url


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
