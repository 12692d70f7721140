"""Faults around a job: SIGTERM, a full disk, processes sharing RVC_JOBS_DIR, the extraction cache."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from infer.lib.diskspace import disk_full_error, ensure_free_space, is_disk_full
from infer.lib.errors import DiskFullError, UserInputError
from infer.lib.jobguard import JobLock, is_locked, purge_unlocked
from tests.support import REPO_ROOT
from tests.support.http_server import LocalHTTPServer


def test_purge_spares_job_folders_locked_by_a_live_process(tmp_path: Path) -> None:
    from infer.modules.train.job import Workspace

    a = Workspace.create(tmp_path)
    b = Workspace.create(tmp_path)  # another process (or job) starting must not delete a's running job
    job_a, job_b = a.root, b.root
    assert job_a.is_dir() and job_b.is_dir() and is_locked(job_a)
    b.finish(success=True)
    a.finish(success=True)
    a.release()  # a's archive handed over; b's finished folder is still held until b releases it
    Workspace.create(tmp_path)
    assert job_b.is_dir() and not job_a.exists()


def test_folders_of_a_killed_process_are_purged(tmp_path: Path) -> None:
    held = tmp_path / "job-killed"
    held.mkdir()
    code = f"import time; from pathlib import Path; from infer.lib.jobguard import JobLock; JobLock(Path({str(held)!r})).acquire(); print('ok', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ok"
        assert purge_unlocked(tmp_path, "job-") == [] and held.is_dir()
        proc.kill()  # SIGKILL: no clean-up ran, the kernel freed the lock
        proc.wait(10)
        assert purge_unlocked(tmp_path, "job-") == [held] and not held.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_new_folder_without_its_lock_yet_is_not_purged(tmp_path: Path) -> None:
    (tmp_path / "job-new").mkdir()
    assert purge_unlocked(tmp_path, "job-") == []
    old = tmp_path / "job-old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert purge_unlocked(tmp_path, "job-") == [old]
    lock = JobLock(tmp_path / "job-new").acquire()
    lock.release()
    assert purge_unlocked(tmp_path, "job-") == [tmp_path / "job-new"]


def test_extraction_cache_is_per_job_unless_rvc_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from infer.modules.train.job import Workspace

    monkeypatch.delenv("RVC_CACHE_DIR", raising=False)
    ws = Workspace.create(tmp_path / "jobs")
    job = ws.root
    cache = ws.cache()
    assert cache.root == job / "cache"
    cache.put("ab" + "0" * 62, np.zeros(4))
    ws.finish(success=True)
    assert not (job / "cache").exists()  # features of the user's audio go with the job
    monkeypatch.setenv("RVC_CACHE_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("RVC_CACHE_MAX_GB", "1")
    cache = Workspace.create(tmp_path / "jobs").cache()
    assert cache.root == tmp_path / "shared" and cache.max_bytes == 1 << 30


def test_enospc_is_recognised_and_named(tmp_path: Path) -> None:
    with pytest.raises(OSError) as e, open("/dev/full", "wb") as f:  # a real ENOSPC
        f.write(b"x" * 10)
        f.flush()
    assert e.value.errno == errno.ENOSPC and is_disk_full(e.value)
    try:
        raise RuntimeError("unexpected pos 704 vs 598") from e.value
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(RuntimeError("shape mismatch"), tmp_path)
    err = disk_full_error(tmp_path, "training checkpoints", need=3 << 30)
    assert isinstance(err, DiskFullError) and isinstance(err, UserInputError)
    assert str(tmp_path) in str(err) and "3.0 GiB is needed" in str(err) and "RVC_JOBS_DIR" in str(err)


def test_free_space_check_names_the_folder_and_the_need(tmp_path: Path) -> None:
    ensure_free_space(tmp_path, 1, "a test")
    with pytest.raises(
        DiskFullError, match=rf"not enough disk space in {tmp_path} for a test .* 1000000.0 GiB is needed"
    ):
        ensure_free_space(tmp_path, 10**6 << 30, "a test")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (needs mount rights: root or a user namespace)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_while_saving_a_checkpoint_is_a_clear_error(small_disk: Path) -> None:
    import torch

    from infer.lib.fileio import atomic_torch_save

    with pytest.raises(DiskFullError, match=rf"not enough disk space in {small_disk} for writing G_1.pth"):
        atomic_torch_save({"w": torch.zeros(4 << 20)}, small_disk / "G_1.pth")  # 16 MiB into 4
    assert list(small_disk.iterdir()) == []  # the partial file is gone


_SIGTERM_JOB = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    os.environ.update(RVC_WEIGHTS_DIR=str(Path(sys.argv[2]) / "no-weights"), RVC_OFFLINE="1")
    from infer.modules.train.job import Workspace, run_job
    from predict import request_from_inputs
    options, inputs = request_from_inputs(wav_urls=[sys.argv[1]], f0method="pm", enhance_audio=False)
    run_job(options, inputs, Workspace.create(Path(sys.argv[2])))
    """
)


def test_sigterm_during_download_stops_the_job_and_removes_its_files(tmp_path: Path) -> None:
    with LocalHTTPServer() as srv:
        url = srv.add("/stall.wav", b"x" * 100, delay_s=300)
        env = {**os.environ, "RVC_ALLOW_PRIVATE_URLS": "1", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-c", _SIGTERM_JOB, url, str(tmp_path / "jobs")],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while srv.hits["/stall.wav"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert srv.hits["/stall.wav"] == 1
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=300)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGTERM, out
    assert elapsed < 30, (elapsed, out)  # at once: well before the download's 60 s read timeout
    assert "job stopped (SIGTERM)" in out and "Traceback" not in out, out
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == []  # no job folder left
    assert srv.hits["/stall.wav"] == 1


def test_a_worker_dies_with_its_killed_parent(tmp_path: Path) -> None:
    """DDP workers call die_with_parent: a SIGKILLed job leaves no orphan training on."""
    pid_file = tmp_path / "child.pid"
    child = (
        "import os, signal, sys, time; from infer.lib.jobguard import die_with_parent; "
        "assert die_with_parent(); open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    )
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}, {str(pid_file)!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30  # the kernel ends it with its parent; only a survivor lasts this long
        while (
            Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        ):
            assert time.monotonic() < deadline, "the child outlived its killed parent"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_connected_peer_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolved to a public address but connects to a private one (DNS rebinding)."""
    import socket

    from infer.lib.urls import DestinationRefused, check_peer

    monkeypatch.delenv("RVC_ALLOW_PRIVATE_URLS", raising=False)
    with LocalHTTPServer() as srv:
        host, port = srv.url("/").split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:
            with pytest.raises(DestinationRefused, match="the host rebound.example is on a loopback"):
                check_peer(sock, "rebound.example")
            monkeypatch.setenv("RVC_ALLOW_PRIVATE_URLS", "rebound.example")
            check_peer(sock, "rebound.example")


def test_a_full_disk_while_downloading_blames_the_disk_not_the_urls(small_disk: Path) -> None:
    from infer.lib.wav_downloader import DownloadSettings, WavDownloader

    with LocalHTTPServer() as srv:
        url = srv.add("/big.wav", b"\0" * (8 << 20))
        with pytest.raises(DiskFullError, match=rf"not enough disk space in {small_disk}/dl for downloading the audio"):
            WavDownloader(DownloadSettings(retries=0)).download([url], small_disk / "dl")


def test_sigterm_during_training_reaches_both_the_trainer_and_the_job() -> None:
    """Training installs its own SIGTERM handler (checkpoint, then stop); the job's still learns of it."""
    import threading

    from infer.lib.jobguard import sigterm_stops
    from infer.modules.train.launch import sigterm_sets

    job_cancel, train_cancel = threading.Event(), threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_stops(job_cancel, reraise=False) as stop:
        with sigterm_sets(train_cancel):
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 60
            while not train_cancel.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
    assert train_cancel.is_set() and job_cancel.is_set() and stop.received
    assert signal.getsignal(signal.SIGTERM) == before
