"""The committed OpenAPI schema stays in sync with the Predictor (install routes: tests/test_install.py)."""

from __future__ import annotations

import json
import re

from tools.gen_schema import SCHEMA_PATH, build_schema, render

# The seed's documented inputs: existing API callers send these names and rely on these defaults.
SEED_DEFAULTS = {"sample_rate": "48k", "version": "v2", "f0method": "rmvpe_gpu", "epoch": 10, "batch_size": "7"}
# The public inputs, in the form's order.
PUBLIC_INPUTS = [
    "wav_urls",
    "dataset",
    "sample_rate",
    "version",
    "f0method",
    "epoch",
    "batch_size",
    "enhance_audio",
    "trim_silence",
    "experiment_name",
    "save_every_epoch",
    "resume_from",
    "include_checkpoints",
    "seed",
    "keep_other_speakers",
    # deprecated aliases (of dataset and epoch), last
    "dataset_zip",
    "epochs",
]


def test_committed_schema_is_up_to_date():
    committed = SCHEMA_PATH.read_text()
    fresh = render(build_schema())
    assert committed == fresh, "run `python -m tools.gen_schema` and commit .cog/openapi_schema.json"


def test_schema_inputs_match_the_documented_api():
    schema = json.loads(SCHEMA_PATH.read_text())
    comps = schema["components"]["schemas"]
    props = comps["Input"]["properties"]
    assert list(props) == PUBLIC_INPUTS
    assert [props[n]["x-order"] for n in PUBLIC_INPUTS] == list(range(len(PUBLIC_INPUTS)))
    for name, default in SEED_DEFAULTS.items():
        assert props[name]["default"] == default, name
    assert comps["sample_rate"]["enum"] == ["32k", "40k", "48k"]
    assert comps["version"]["enum"] == ["v1", "v2"]
    assert comps["f0method"]["enum"] == ["pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu"]
    # optional inputs are nullable and not required (cog marks default=None inputs required otherwise)
    assert "required" not in comps["Input"]
    for name in ("wav_urls", "dataset", "resume_from", "seed", "dataset_zip", "epochs"):
        assert props[name].get("nullable") is True, name
    assert props["wav_urls"]["type"] == "array" and props["wav_urls"]["items"] == {"type": "string"}
    assert props["dataset"]["format"] == "uri" and props["resume_from"]["format"] == "uri"
    assert [n for n, p in props.items() if p.get("deprecated")] == ["dataset_zip", "epochs"]
    assert all(props[n]["x-cog-accept"] == ".zip" for n in ("dataset", "resume_from", "dataset_zip"))
    assert props["epoch"]["minimum"] == 1 and props["epoch"]["maximum"] == 1000
    assert props["enhance_audio"]["default"] is True and props["trim_silence"]["default"] is True
    for name, prop in props.items():
        assert len(prop.get("description", "")) > 30, f"{name} needs a description a playground user understands"
    assert comps["Output"] == {"title": "Output", "type": "string", "format": "uri"}
    assert schema["openapi"] == "3.0.2"
    assert set(schema["paths"]) == {"/", "/health-check", "/predictions", "/predictions/{prediction_id}/cancel"}


def test_batch_size_pattern_accepts_numbers_and_auto():
    props = json.loads(SCHEMA_PATH.read_text())["components"]["schemas"]["Input"]["properties"]
    pat = re.compile(props["batch_size"]["pattern"])
    for ok in ("7", "16", "auto", "AUTO", " 8 "):
        assert pat.search(ok), ok
    for bad in ("", "seven", "7.5", "-3", "auto8"):
        assert not pat.search(bad), bad
