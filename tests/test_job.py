"""The job runner: workspaces, the numbered stage list and its events, checks before any weight download,
clean-up and child processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.lib.errors import UserInputError
from infer.lib.options import TrainOptions
from infer.lib.weight_downloader import WeightsSettings
from infer.modules.train.job import JobInputs, Workspace, children_of, run_job, terminate_children
from infer.modules.train.progress import STAGES, JobProgress, ProgressEvent, job_stages


def test_a_workspace_per_job_cleaned_up_and_never_purged_while_in_use(tmp_path):
    first = Workspace.create(tmp_path)
    (first.exp_dir / "3_feature768").mkdir()
    (first.exp_dir / "3_feature768" / "big.npy").write_bytes(b"0" * 1000)
    (first.inputs_dir / "a.wav").write_bytes(b"0" * 1000)
    second = Workspace.create(tmp_path)  # a second job of this process while the first runs
    assert second.root != first.root and first.root.is_dir()  # the running job's folder is left alone
    archive = first.output_archive("voice")
    archive.write_bytes(b"PK")
    first.finish(success=True)
    assert archive.is_file()  # returned to the caller, uploaded after predict() returns
    assert not first.exp_dir.exists() and not first.inputs_dir.exists()
    assert sorted(p.name for p in second.root.iterdir()) == [".lock", "exp", "inputs", "out"]
    (second.exp_dir / "G_2.pth").write_bytes(b"0")
    second.finish(success=False)
    assert not second.root.exists()  # a failed job leaves nothing
    third = Workspace.create(tmp_path)
    assert first.root.is_dir()  # locked until its archive is handed over
    first.release()
    third.finish(success=False)
    third = Workspace.create(tmp_path)
    assert not first.root.exists()  # released folders of finished jobs go when a later job starts
    assert [p.name for p in tmp_path.iterdir()] == [third.root.name]
    third.finish(success=False)


def test_progress_events_and_stage_headers(caplog):
    events: list[ProgressEvent] = []
    p = JobProgress(job_stages(True), epochs=3, on_event=events.append)
    assert len(p.stages) == len(STAGES) == 10 and len(job_stages(False)) == 9
    with caplog.at_level(logging.INFO, logger="rvc"):
        with p.stage("collect audio"):
            pass
        with p.stage("train"):
            # the training loop's per-epoch record (train.py) becomes an epoch event
            logging.getLogger("rvc.train").info(
                "epoch 1/3", extra={"progress": {"epoch": 1, "epochs": 3, "eta_s": 20.0}}
            )
        p.finish("succeeded")
    assert "[stage 1/10] collect audio" in caplog.text and "[stage 8/10] train" in caplog.text
    assert [(e.stage, e.stage_index, e.epoch, e.eta_s) for e in events] == [
        ("collect audio", 1, 0, None),
        ("train", 8, 0, None),
        ("train", 8, 1, 20.0),
        ("package", 10, 3, 0.0),
    ]
    assert events[2].status_line() == "stage 8/10 train · epoch 1/3 · ETA 0:20"
    assert events[-1].metrics() == {
        "stage": "package",
        "stage_index": 10,
        "stage_count": 10,
        "epoch": 3,
        "epochs": 3,
        "eta_s": 0.0,
    }
    assert events[-1].status == "succeeded"


def _run_failing(tmp_path: Path, zip_members: dict[str, bytes]) -> tuple[UserInputError, list[ProgressEvent]]:
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in zip_members.items():
            zf.writestr(name, data)
    events: list[ProgressEvent] = []
    jobs = tmp_path / "jobs"
    options = TrainOptions(f0method="pm", enhance_audio=False, sample_rate="40k", device="cpu")
    with pytest.raises(UserInputError) as err:
        # no weights at all, offline: a job that reached the weights stage would fail there instead
        run_job(options, JobInputs(zips=(z,)), Workspace.create(jobs), on_event=events.append)
    assert not any(jobs.iterdir())  # the failed job's folder is gone
    return err.value, events


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RVC_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("RVC_OFFLINE", "1")
    monkeypatch.delenv("RVC_TEST_TINY_MODEL", raising=False)
    assert WeightsSettings.from_env().offline


def test_a_zip_without_audio_fails_in_collect_audio(tmp_path, no_weights):
    err, events = _run_failing(tmp_path, {"readme.txt": b"no audio here"})
    assert "audio" in str(err)
    assert [e.stage for e in events] == ["collect audio", "collect audio"] and events[-1].status == "failed"


def test_an_unreadable_file_is_refused_before_the_weights_stage(tmp_path, no_weights):
    good = tmp_path / "good.wav"
    sf.write(good, 0.1 * np.sin(np.arange(16000) / 10.0).astype(np.float32), 16000)
    err, events = _run_failing(
        tmp_path,
        {
            "good.wav": good.read_bytes(),
            "broken.mp3": b"\xff\xfb\x90\x00" + b"\x00garbage" * 500,
            "page.wav": b"<html>x",
        },
    )
    msg = str(err)
    assert "2 of 3 input file(s) are not readable audio" in msg and "broken.mp3" in msg and "page.wav" in msg
    assert "good.wav" not in msg
    assert [e.stage for e in events] == ["collect audio", "check audio", "check audio"]
    assert "weights" not in [e.stage for e in events]


def test_terminate_children_stops_the_whole_tree():
    # a child that itself starts a grandchild, both long-running
    code = "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while len(children_of(child.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [child.pid, *children_of(child.pid)]
        assert len(tree) == 2
        n = terminate_children(grace=2.0)
        assert n >= 2
        assert child.wait(30) is not None  # a child left running sleeps for 60 s
        for pid in tree:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        if child.poll() is None:
            child.kill()
