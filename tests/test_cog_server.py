"""The real HTTP API: cog 0.23.1's own server running predict.py:Predictor on 127.0.0.1.

Stand-in weights (real formats), RVC_OFFLINE=1, and the TEST-ONLY tiny network and discriminator
(RVC_TEST_TINY_MODEL=1) so a whole training job takes well under a minute on CPU. Audio reaches the
Predictor as `wav_urls` served by a local HTTP server, exactly as Replicate callers send them.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from infer.lib.cache import ArrayCache
from tests.support import REPO_ROOT
from tests.support.http_server import LocalHTTPServer, WebhookReceiver
from tests.support.product import cog_server, descendants, product_env

JOB = {
    "sample_rate": "40k",
    "version": "v2",
    "f0method": "pm",
    "epoch": 1,
    "batch_size": "16",  # a few steps per epoch
    "enhance_audio": False,
    "trim_silence": True,
    "experiment_name": "joe",
    "seed": 7,
}
CEILING_S = 600  # for events that come within seconds or a minute: only a hung job takes this long


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, joe_1min: Path, product_weights: Path, extract_cache: ArrayCache
) -> Iterator[dict[str, Any]]:
    jobs = tmp_path_factory.mktemp("jobs")
    log = tmp_path_factory.mktemp("logs") / "cog.log"
    env = product_env(product_weights, jobs, extract_cache)
    with LocalHTTPServer() as audio, cog_server(env, log) as (base, pid):
        urls = []
        # 40 s of speech: over the 30 s the data check asks for, quick to extract
        for wav in [joe_1min / f"joe_00{i}.wav" for i in (1, 2, 3)]:
            audio.add(f"/{wav.name}", body=wav.read_bytes(), content_type="audio/wav")
            urls.append(audio.url(f"/{wav.name}"))
        yield {
            "base": base,
            "urls": urls,
            "jobs": jobs,
            "log": log,
            "pid": pid,
            "procs": len(descendants(pid)),
            "audio": audio,
        }


def _zip_of_text() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "no audio in here")
    return buf.getvalue()


def _post(base: str, body: dict[str, Any], timeout: float = CEILING_S, **headers: str) -> requests.Response:
    """POST a prediction; while the server still frees the slot of the previous one (409), wait."""
    deadline = time.monotonic() + CEILING_S
    while True:
        r = requests.post(f"{base}/predictions", json=body, timeout=timeout, headers=headers)
        if r.status_code != 409 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def _cancel(server: dict[str, Any], hook: WebhookReceiver, prediction_id: str) -> tuple[dict[str, Any] | None, float]:
    """Cancel a running prediction; its final webhook event and the seconds it took to come."""
    t0 = time.monotonic()
    c = requests.post(f"{server['base']}/predictions/{prediction_id}/cancel", timeout=30)
    assert c.status_code == 200, c.text
    done = hook.wait_for(lambda e: e.get("status") in ("canceled", "failed", "succeeded"), timeout=CEILING_S)
    return done, time.monotonic() - t0


def test_openapi_is_the_committed_schema(server):
    served = requests.get(server["base"] + "/openapi.json", timeout=10).json()
    committed = json.loads((REPO_ROOT / ".cog" / "openapi_schema.json").read_text())
    assert served["components"]["schemas"]["Input"] == committed["components"]["schemas"]["Input"]
    assert served["paths"].keys() == committed["paths"].keys()


@pytest.mark.parametrize(
    "bad",
    [{"epoch": 0}, {"epoch": 5000}, {"sample_rate": "44k"}, {"f0method": "yin"}, {"batch_size": "lots"}],
)
def test_invalid_input_is_rejected_with_422(server, bad):
    r = _post(server["base"], {"input": {"wav_urls": server["urls"], **bad}}, timeout=30)
    assert r.status_code == 422, r.text
    field = next(iter(bad))
    assert any(field in json.dumps(d["loc"]) for d in r.json()["detail"]), r.text


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "no training audio"),
        ({"wav_urls": ["file:///etc/passwd"]}, "http(s) URLs or data: URIs"),
        ({"wav_urls": ["http://127.0.0.1:9/x.wav"], "experiment_name": "../etc"}, "experiment_name"),
        # a file input (cog downloads data: and http URLs for `Path` inputs) that is not a zip
        ({"dataset": "data:application/zip;base64," + base64.b64encode(b"not a zip").decode()}, "must be a .zip"),
        # the deprecated alias is used, not dropped: its (audio-less) zip is what fails
        ({"dataset_zip": "data:application/zip;base64," + base64.b64encode(_zip_of_text()).decode()}, "no audio"),
    ],
)
def test_user_errors_fail_with_our_message(server, inputs, message):
    r = _post(server["base"], {"input": inputs}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed"
    assert message in body["error"]
    assert "Traceback" not in body["error"]


def test_train_over_http_returns_a_loadable_model_and_index(server, tmp_path):
    t0 = time.monotonic()
    r = _post(server["base"], {"input": {"wav_urls": server["urls"], **JOB}})
    took = time.monotonic() - t0
    body = r.json()
    assert r.status_code == 200 and body["status"] == "succeeded", (body.get("error"), body.get("logs", "")[-3000:])
    out = body["output"]
    assert out.startswith("data:application/zip;base64,") or out.startswith("data:application/"), out[:60]
    data = base64.b64decode(out.split(",", 1)[1])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
        card = json.loads(zf.read("model_card.json"))
    assert "joe.pth" in names, names
    assert card["dataset"]["speech_s"] > 30 and len(card["dataset"]["files"]) == 3
    assert isinstance(card["quality"]["preview_speaker_similarity"], float), card["quality"]
    index_names = [n for n in names if n.startswith("added_IVF") and n.endswith("_joe_v2.index")]
    assert index_names, names

    from infer.lib.checkpoint import load_small_model

    sm = load_small_model(tmp_path / "joe.pth")
    assert sm.version == "v2" and sm.sample_rate in ("40k", 40000)
    import faiss

    index = faiss.read_index(str(tmp_path / index_names[0]))
    assert index.ntotal > 0 and index.d == 768

    # one numbered stage list, the same in the log headers and the metrics; final progress at the end
    from infer.modules.train.progress import job_stages

    logs = body["logs"]
    stages = job_stages(True)
    n = len(stages)
    assert n >= 8
    for i, stage in enumerate(stages, 1):
        assert f"[stage {i}/{n}] {stage}\n" in logs, stage
        assert f"[stage {i}/{n}] {stage} done in " in logs, stage
    assert "== stage" not in logs and f"/{n + 1}]" not in logs
    assert body["metrics"]["progress"] == {
        "stage": "package",
        "stage_index": n,
        "stage_count": n,
        "epoch": JOB["epoch"],
        "epochs": JOB["epoch"],
        "eta_s": 0.0,
    }, body["metrics"]
    assert f"epoch {JOB['epoch']}/{JOB['epoch']}" in logs
    assert "almost no voiced frames" not in logs  # the silent mute entry is not the user's audio
    assert "stand-in" in logs.lower()  # the loud warning reaches the prediction log
    assert "s of speech in" in logs and "preview speaker similarity" in logs
    # the job folder's large intermediates are gone; only the returned archive (and the job's lock) remain
    leftovers = [p for p in server["jobs"].rglob("*") if p.is_file() and p.name != ".lock"]
    assert all(p.suffix == ".zip" for p in leftovers), leftovers
    print(f"tiny training job over HTTP: {took:.1f}s")


def _progress(event: dict[str, Any]) -> dict[str, Any]:
    progress: dict[str, Any] = (event.get("metrics") or {}).get("progress") or {}
    return progress


def _start_async(server: dict[str, Any], hook: WebhookReceiver, prediction_id: str, inputs: dict[str, Any]) -> None:
    """Start a prediction that reports to `hook` (its start, logs and completion)."""
    body = {
        "id": prediction_id,
        "input": inputs,
        "webhook": hook.url("/hook"),
        "webhook_events_filter": ["start", "logs", "completed"],
    }
    r = _post(server["base"], body, timeout=30, Prefer="respond-async")
    assert r.status_code == 202, r.text


def test_async_prediction_cancelled_mid_training_ends_promptly(server):
    epochs = 1000
    with WebhookReceiver() as hook:
        _start_async(server, hook, "cancel-me", {"wav_urls": server["urls"], **JOB, "epoch": epochs})
        # the epochs progress in the metrics while the job trains (webhooks carry them)
        started = hook.wait_for(lambda e: _progress(e).get("epoch", 0) >= 1, timeout=CEILING_S)
        assert started is not None, hook.events[-1:] if hook.events else "no webhook events"
        p = _progress(started)
        assert p["stage"] == "train" and p["epochs"] == epochs
        assert p["stage_index"] == p["stage_count"] - 2 and p["eta_s"] > 0
        time.sleep(3)  # inside the epochs
        at_cancel = max(_progress(e).get("epoch", 0) for e in hook.events)
        done, took = _cancel(server, hook, "cancel-me")
        last = max(_progress(e).get("epoch", 0) for e in hook.events)
    assert done is not None and done["status"] == "canceled", done
    # promptly: at the next training step (the webhooks may lag an epoch behind), not epochs later
    assert last <= at_cancel + 2, f"trained on to epoch {last} after the cancel at epoch {at_cancel}"
    assert "cancel" in (done.get("logs") or "").lower()
    # no process the job started (pool workers, ffmpeg) outlives the cancel
    deadline = time.monotonic() + CEILING_S
    while len(descendants(server["pid"])) > server["procs"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(descendants(server["pid"])) <= server["procs"]
    # the server is usable again afterwards
    health = requests.get(server["base"] + "/health-check", timeout=30).json()
    assert health["status"] in ("READY", "BUSY")
    print(f"cancel during training: {took:.1f}s")


def test_cancel_during_a_stalled_download_ends_within_seconds(server):
    """A server that sends headers and then nothing: cog's cancel reaches the download threads."""
    audio = server["audio"]
    url = audio.add("/stall.wav", b"x" * 100, delay_s=300)
    with WebhookReceiver() as hook:
        _start_async(server, hook, "cancel-download", {"wav_urls": [url], **JOB})
        deadline = time.monotonic() + CEILING_S
        while audio.hits["/stall.wav"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert audio.hits["/stall.wav"] == 1
        time.sleep(1)
        done, took = _cancel(server, hook, "cancel-download")
    assert done is not None and done["status"] == "canceled", done
    # within seconds: well before the download's 60 s read timeout would have ended it
    assert took < 30, f"cancel took {took:.1f}s"
    time.sleep(1)
    assert audio.hits["/stall.wav"] == 1  # not retried after the cancel
    print(f"cancel during a stalled download: {took:.1f}s")
