"""The one option schema (`infer.lib.options.TrainOptions`) and every front end that must agree with it:
the Predictor's signature (cog's own inspector), `tools/train.py`'s flags, the web UI's form, the pipeline.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from typing import Any

import pytest

from infer.lib.errors import UserInputError
from infer.lib.options import (
    API_NAMES,
    BATCH_RE,
    DEFAULTS,
    OPTION_FIELDS,
    TrainOptions,
    choices,
    label,
    parse_batch_size,
)
from tests.support import REPO_ROOT

SEED_API_DEFAULTS = {
    "sample_rate": "48k",
    "version": "v2",
    "f0method": "rmvpe_gpu",
    "epochs": 10,
    "batch_size": "7",
    "enhance_audio": True,
    "trim_silence": True,
    "experiment_name": "rvc_model",
    "save_every_epoch": 50,
    "resume_from": None,
    "include_checkpoints": False,
    "seed": None,
    "keep_other_speakers": False,  # not in the seed's API: after its inputs
}
PUBLIC = [n for n, f in OPTION_FIELDS.items() if f.metadata["public"]]


def test_defaults_are_the_seed_api_defaults():
    assert {n: DEFAULTS[n] for n in SEED_API_DEFAULTS} == SEED_API_DEFAULTS
    assert PUBLIC == list(SEED_API_DEFAULTS)
    o = TrainOptions()
    assert o.batch_size == 7 and o.epochs == 10 and o.seed is None  # "7" parsed once, here
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.epochs = 3  # type: ignore[misc]  # the read-only error under test; mypy reports it too


def test_the_predictor_signature_matches_the_schema():
    from tools.gen_schema import build_schema

    schema = build_schema()["components"]["schemas"]
    props = schema["Input"]["properties"]
    api = {field: name for name, field in API_NAMES.items()}  # field -> API input name
    assert set(props) == set(API_NAMES) | {"wav_urls", "dataset", "dataset_zip", "epochs"}
    for name in PUBLIC:
        prop = props[api[name]]
        assert prop["default"] == DEFAULTS[name], name
        f = OPTION_FIELDS[name]
        if name in ("sample_rate", "version", "f0method"):
            assert schema[name]["enum"] == list(choices(name)), name
        if name != "batch_size":
            assert prop.get("minimum") == f.metadata.get("ge"), name
            assert prop.get("maximum") == f.metadata.get("le"), name
    assert props["batch_size"]["pattern"] == BATCH_RE.pattern
    # the deprecated aliases: same bounds as what they stand for
    assert props["epochs"]["deprecated"] and props["dataset_zip"]["deprecated"]
    assert (props["epochs"]["minimum"], props["epochs"]["maximum"]) == (
        props["epoch"]["minimum"],
        props["epoch"]["maximum"],
    )
    for name in ("dataset", "dataset_zip", "resume_from"):
        assert props[name]["x-cog-accept"] == ".zip", name


def test_tools_train_flags_come_from_the_schema():
    from tools.train import build_parser, options_from_args

    a = build_parser().parse_args(["x.wav", "--out", "y.zip"])
    assert options_from_args(a) == TrainOptions()
    actions = {act.dest: act for act in build_parser()._actions}
    assert set(OPTION_FIELDS) <= set(actions)
    for name in ("sample_rate", "version", "f0method"):
        got = actions[name].choices
        assert got is not None and tuple(got) == choices(name)
    a = build_parser().parse_args(["x.wav", "--out", "y.zip", "--epochs", "3", "--no-f0", "--batch-size", "auto"])
    o = options_from_args(a)
    assert (o.epochs, o.use_f0, o.batch_size) == (3, False, "auto")


def test_the_web_form_comes_from_the_schema():
    spec = importlib.util.spec_from_file_location("infer_web", REPO_ROOT / "infer-web.py")
    assert spec is not None and spec.loader is not None
    web = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web)
    demo = web.build_ui()
    by_label: dict[str, Any] = {}
    for block in demo.blocks.values():
        lab = getattr(block, "label", None)
        if lab:
            by_label.setdefault(lab, block)
    for name in PUBLIC:
        if name in ("resume_from", "seed"):
            continue
        block = by_label[label(name)]
        value = block.value
        assert value == DEFAULTS[name] or str(value) == str(DEFAULTS[name]), (name, value)
        if name in ("sample_rate", "version", "f0method"):
            assert [c[1] if isinstance(c, tuple) else c for c in block.choices] == list(choices(name))
    assert web.RESUME_LABEL in by_label and web.FILES_LABEL in by_label


def test_the_web_forms_defaults_make_the_default_options():
    """The Train form's values as gradio sends them (numbers as floats, the seed as text) checked into options."""
    from infer.modules.webui import FORM_OPTIONS, job_from_form

    form = {
        n: float(DEFAULTS[n]) if isinstance(DEFAULTS[n], int) and n != "seed" else DEFAULTS[n] for n in FORM_OPTIONS
    }
    form["seed"] = ""
    inputs, options = job_from_form(None, " https://x.org/a.wav \n\n", form)
    assert options == TrainOptions() and inputs.urls == ("https://x.org/a.wav",)
    url = "https://x.org/a.wav"
    assert job_from_form(None, url, {**form, "seed": " 42 "})[1].seed == 42
    for name, value in (("epochs", 2.5), ("seed", "x"), ("save_every_epoch", None), ("sample_rate", "44k")):
        with pytest.raises(UserInputError) as err:
            job_from_form(None, url, {**form, name: value})
        assert err.value.field == name


def test_the_pipeline_runs_on_the_schema():
    from infer.modules.train import pipeline

    assert pipeline.TrainOptions is TrainOptions


def test_the_network_config_knows_every_variant():
    from infer.lib.config import SAMPLE_RATES, load_config

    assert SAMPLE_RATES == {"32k": 32000, "40k": 40000, "48k": 48000}
    for version in choices("version"):
        for rate in choices("sample_rate"):
            assert load_config(version, rate).data.sampling_rate == SAMPLE_RATES[rate]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sample_rate": "44k"}, "sample_rate"),
        ({"version": "v3"}, "version"),
        ({"f0method": "yin"}, "f0method"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1001}, "epochs"),
        ({"save_every_epoch": 0}, "save_every_epoch"),
        ({"experiment_name": "../../etc"}, "experiment_name"),
        ({"experiment_name": ""}, "experiment_name"),
        ({"seed": -1}, "seed"),
        ({"batch_size": "seven"}, "batch_size"),
        ({"resume_from": "/no/such.zip"}, "resume_from"),
    ],
)
def test_a_bad_option_names_its_field(kwargs, field):
    with pytest.raises(UserInputError) as err:
        TrainOptions(**kwargs)
    assert err.value.field == field
    assert field in str(err.value)


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (" 16 ", 16), ("auto", "auto"), ("AUTO", "auto"), (3, 3)])
def test_batch_size_accepts_numbers_and_auto(value, expected):
    assert parse_batch_size(value) == expected
    assert isinstance(value, int) or re.search(BATCH_RE, value)


@pytest.mark.parametrize("value", ["0", "-2", "seven", "7.5", "", "100000", True, "²", "３"])
def test_batch_size_refuses_the_rest(value):
    with pytest.raises(UserInputError, match="batch_size"):
        parse_batch_size(value)


def test_labels():
    assert label("epochs") == label("epoch") == "Epochs"
    assert label("sample_rate") == "Sample rate"


def test_rmvpe_gpu_runs_on_the_cpu_without_a_gpu():
    o = TrainOptions()
    assert o.for_device("cpu").f0method == "rmvpe" and o.for_device("cuda:0") is o
    assert TrainOptions(f0method="pm").for_device("cpu").f0method == "pm"


def test_setup_prefetches_the_default_variants_pretrained_pair():
    from infer.lib.weights import HUBERT, RMVPE, base_weights, pretrained_names

    assert base_weights() == [HUBERT, RMVPE, *pretrained_names(DEFAULTS["version"], DEFAULTS["sample_rate"], True)]
    assert base_weights()[2:] == ["pretrained_v2/f0G48k.pth", "pretrained_v2/f0D48k.pth"]
