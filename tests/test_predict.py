"""The Predictor's own logic: input validation, the workspace (FileManager), child processes."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from infer.lib.errors import UserInputError
from predict import FileManager, TrainRequest, _children_of, parse_batch_size, terminate_children, validate_request


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("voice/a.wav", b"RIFF....WAVE")
    return z


def test_defaults_match_the_seed_api(dataset_zip):
    r = validate_request(dataset=dataset_zip)
    assert isinstance(r, TrainRequest)
    assert (r.sample_rate, r.version, r.f0method, r.epochs, r.batch_size) == ("48k", "v2", "rmvpe_gpu", 10, 7)
    assert r.enhance_audio and r.trim_silence and not r.include_checkpoints
    assert r.dataset == dataset_zip and r.wav_urls == () and r.seed is None


def test_urls_are_cleaned_and_redacted_in_the_log_view():
    r = validate_request(wav_urls=[" https://x.org/a.wav?sig=SECRET ", "", "data:audio/wav;base64," + "A" * 100])
    assert r.wav_urls[0] == "https://x.org/a.wav?sig=SECRET"
    shown = r.to_dict()["wav_urls"]
    assert shown[0] == "https://x.org/a.wav" and "SECRET" not in str(shown)
    assert len(shown[1]) < 40


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (" 16 ", 16), ("auto", "auto"), ("AUTO", "auto"), (3, 3)])
def test_batch_size_accepts_numbers_and_auto(value, expected):
    assert parse_batch_size(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "seven", "7.5", "", "100000"])
def test_batch_size_refuses_the_rest(value):
    with pytest.raises(UserInputError, match="batch_size"):
        parse_batch_size(value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no training audio"),
        ({"wav_urls": ["", "  "]}, "no training audio"),
        ({"wav_urls": ["file:///etc/passwd"]}, "http(s) URLs or data: URIs"),
        ({"wav_urls": ["ftp://x/a.wav"]}, "http(s) URLs"),
        ({"sample_rate": "44k"}, "sample_rate"),
        ({"version": "v3"}, "version"),
        ({"f0method": "yin"}, "f0method"),
        ({"epoch": 0}, "epoch"),
        ({"epoch": 1001}, "epoch"),
        ({"save_every_epoch": 0}, "save_every_epoch"),
        ({"experiment_name": "../../etc"}, "experiment_name"),
        ({"experiment_name": ""}, "experiment_name"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_inputs_give_one_clear_message(kwargs, message):
    if kwargs and "wav_urls" not in kwargs:
        kwargs = {"wav_urls": ["https://example.org/a.wav"], **kwargs}
    with pytest.raises(UserInputError) as err:
        validate_request(**kwargs)
    assert message in str(err.value)


def test_dataset_and_resume_must_be_zips(tmp_path, dataset_zip):
    not_zip = tmp_path / "voice.wav"
    not_zip.write_bytes(b"RIFF0000WAVEfmt ")
    with pytest.raises(UserInputError, match="dataset must be a .zip"):
        validate_request(dataset=not_zip)
    with pytest.raises(UserInputError, match="resume_from must be a .zip"):
        validate_request(dataset=dataset_zip, resume_from=not_zip)
    with pytest.raises(UserInputError, match="missing"):
        validate_request(dataset=tmp_path / "gone.zip")


def test_file_manager_gives_each_job_a_fresh_folder_and_cleans_up(tmp_path):
    fm = FileManager(tmp_path)
    first = fm.start()
    (fm.exp_dir / "3_feature768").mkdir()
    (fm.exp_dir / "3_feature768" / "big.npy").write_bytes(b"0" * 1000)
    (fm.inputs_dir / "a.wav").write_bytes(b"0" * 1000)
    archive = fm.output_archive("voice")
    archive.write_bytes(b"PK")
    fm.finish(success=True)
    assert archive.is_file()  # returned to cog, uploaded after predict() returns
    assert not fm.exp_dir.exists() and not fm.inputs_dir.exists()

    second = fm.start()
    assert second != first and not first.exists()  # an earlier job's files are never reused
    assert sorted(p.name for p in second.iterdir()) == [".lock", "exp", "inputs", "out"]
    assert not any(second.rglob("*.zip"))
    (fm.exp_dir / "G_2.pth").write_bytes(b"0")
    fm.finish(success=False)
    assert not second.exists()  # a failed job leaves nothing


def test_file_manager_needs_start(tmp_path):
    with pytest.raises(RuntimeError):
        _ = FileManager(tmp_path).exp_dir


def test_terminate_children_stops_the_whole_tree():
    # a child that itself starts a grandchild, both long-running
    code = "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while len(_children_of(child.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [child.pid, *_children_of(child.pid)]
        assert len(tree) == 2
        t0 = time.monotonic()
        n = terminate_children(grace=2.0)
        assert n >= 2
        assert child.wait(5) is not None
        assert time.monotonic() - t0 < 5
        for pid in tree:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        if child.poll() is None:
            child.kill()


def test_a_failed_job_reports_the_user_error_and_leaves_no_files(tmp_path, caplog):
    """The job path up to the first user error, without weights: a zip with no audio in it."""
    import torch

    from infer.lib.weights import WeightsSettings
    from predict import Predictor

    z = tmp_path / "notes.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "no audio here")
    p = Predictor()
    p.device = torch.device("cpu")
    p.files = FileManager(tmp_path / "jobs")
    p.shared = {}
    p.weights_settings = WeightsSettings(weights_dir=tmp_path / "no-weights", offline=True)
    request = validate_request(dataset=z, f0method="pm", enhance_audio=False)
    stages: list[str] = []
    with pytest.raises(UserInputError) as err:
        p.train(request, on_stage=lambda i, n, name: stages.append(name))
    assert "audio" in str(err.value)
    assert stages == ["check inputs", "collect audio"]
    assert not any((tmp_path / "jobs").iterdir())  # the failed job's folder is gone
