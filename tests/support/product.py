"""Helpers for the product tests (cog HTTP server, web UI): stand-in weights, servers on 127.0.0.1.

Nothing is mocked: the cog server is cog 0.23.1's own (`python -m cog.server.http`, coglet), the web
UI is `infer-web.py`, both started as real processes and spoken to over real sockets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.support import REPO_ROOT

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_standin_weights(out: Path, version: str = "v2", sample_rate: str = "40k") -> Path:
    """Write one job's stand-in weights (HuBERT full size, RMVPE, the pretrained f0 pair; real on-disk
    formats, marked stand-in) with D's tool. Full-size HuBERT: the v2 network needs 768-dim features."""
    if (out / "STANDIN_WEIGHTS.json").is_file():
        return out
    cmd = [sys.executable, "-m", "tools.make_standin_weights", "--out", str(out)]
    cmd += ["--version", version, "--sample-rate", sample_rate, "--f0", "--f0-method", "rmvpe"]
    subprocess.run(cmd, cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=900)
    return out


def product_env(weights_dir: Path, jobs_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: stand-in weights, offline, the TEST-ONLY tiny network."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        RVC_WEIGHTS_DIR=str(weights_dir),
        RVC_OFFLINE="1",
        RVC_TEST_TINY_MODEL="1",
        RVC_JOBS_DIR=str(jobs_dir),
        RVC_ALLOW_PRIVATE_URLS="1",  # the audio is served on 127.0.0.1
        # the extraction cache is shared by every job of the session (same audio -> features computed once)
        RVC_CACHE_DIR=str(weights_dir.parent / "rvc-extract-cache"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
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
def cog_server(env: dict[str, str], log_path: Path, ready_timeout: float = 300.0) -> Iterator[tuple[str, int]]:
    """cog 0.23.1's HTTP server on 127.0.0.1 running predict.py:Predictor; yields (base URL, its pid)."""
    port = free_port()
    env = dict(env, PORT=str(port), COG_PREDICT_TYPE_STUB="predict.py:Predictor", COG_LOG_LEVEL="info")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        status = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"cog server exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                body = requests.get(base + "/health-check", timeout=5).json()
                status = body.get("status")
                if status == "READY":
                    break
                if status in ("SETUP_FAILED", "DEFUNCT"):
                    raise RuntimeError(f"cog setup failed:\n{json.dumps(body.get('setup'), indent=1)[-4000:]}")
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"cog server not READY after {ready_timeout}s (last {status}):\n{log_path.read_text()[-4000:]}"
            )
        yield base, proc.pid
    finally:
        stop_process(proc)


class WebhookReceiver:
    """Collects the JSON bodies cog POSTs to a webhook URL (async predictions)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                with receiver.cond:
                    receiver.events.append(body)
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, pred, timeout: float) -> dict | None:
        """The first event satisfying `pred` (waiting up to `timeout` s), else None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


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
