"""The Predictor's own logic: its inputs checked into (options, audio), the deprecated aliases."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from infer.lib.errors import UserInputError
from infer.lib.options import TrainOptions
from infer.modules.train.job import JobInputs
from predict import request_from_inputs


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("voice/a.wav", b"RIFF....WAVE")
    return z


def test_defaults_match_the_seed_api(dataset_zip):
    options, inputs = request_from_inputs(dataset=dataset_zip)
    assert options == TrainOptions()
    assert (options.sample_rate, options.version, options.f0method, options.epochs, options.batch_size) == (
        "48k",
        "v2",
        "rmvpe_gpu",
        10,
        7,
    )
    assert options.enhance_audio and options.trim_silence and not options.include_checkpoints
    assert inputs.zips == (dataset_zip,) and inputs.urls == () and options.seed is None


def test_urls_are_cleaned_and_redacted_in_the_log_view():
    _, inputs = request_from_inputs(
        wav_urls=[" https://x.org/a.wav?sig=SECRET ", "", "data:audio/wav;base64," + "A" * 100]
    )
    assert inputs.urls[0] == "https://x.org/a.wav?sig=SECRET"
    shown = inputs.to_dict()["wav_urls"]
    assert shown[0] == "https://x.org/a.wav" and "SECRET" not in str(shown)
    assert len(shown[1]) < 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no training audio"),
        ({"wav_urls": ["", "  "]}, "no training audio"),
        ({"wav_urls": ["file:///etc/passwd"]}, "http(s) URLs or data: URIs"),
        ({"wav_urls": ["ftp://x/a.wav"]}, "http(s) URLs"),
        # the options' own checks are tests/test_options.py's: here, that they reach them under API names
        ({"epoch": 1001}, "epochs"),
        ({"experiment_name": " "}, "experiment_name"),
        ({"batch_size": "lots"}, "batch_size"),
    ],
)
def test_bad_inputs_give_one_clear_message(kwargs, message):
    if kwargs and "wav_urls" not in kwargs:
        kwargs = {"wav_urls": ["https://example.org/a.wav"], **kwargs}
    with pytest.raises(UserInputError) as err:
        request_from_inputs(**kwargs)
    assert message in str(err.value)


def test_dataset_and_resume_must_be_zips(tmp_path, dataset_zip):
    not_zip = tmp_path / "voice.wav"
    not_zip.write_bytes(b"RIFF0000WAVEfmt ")
    with pytest.raises(UserInputError, match="dataset must be a .zip"):
        request_from_inputs(dataset=not_zip)
    with pytest.raises(UserInputError, match="resume_from must be a .zip"):
        request_from_inputs(dataset=dataset_zip, resume_from=not_zip)
    with pytest.raises(UserInputError, match="missing"):
        request_from_inputs(dataset=tmp_path / "gone.zip")


def test_deprecated_aliases_are_used_not_dropped(dataset_zip, tmp_path):
    options, inputs = request_from_inputs(dataset_zip=dataset_zip, epochs=42)
    assert inputs.zips == (dataset_zip,) and options.epochs == 42
    options, _ = request_from_inputs(dataset=dataset_zip, dataset_zip=dataset_zip, epoch=42, epochs=42)
    assert options.epochs == 42
    with pytest.raises(UserInputError, match="not both"):
        request_from_inputs(dataset=dataset_zip, epoch=10, epochs=42)
    other = tmp_path / "other.zip"
    other.write_bytes(dataset_zip.read_bytes())
    with pytest.raises(UserInputError, match="not both"):
        request_from_inputs(dataset=dataset_zip, dataset_zip=other)


def test_the_predictor_has_no_train_method():
    """`train` is cog's name for the training entry point (coglet would report a sync train())."""
    from predict import Predictor

    assert not hasattr(Predictor, "train")


def test_job_inputs_keep_local_file_names(tmp_path):
    f = tmp_path / "My Voice 01.wav"
    f.write_bytes(b"RIFF")
    assert JobInputs(files=(f,)).to_dict()["files"] == ["My Voice 01.wav"]
