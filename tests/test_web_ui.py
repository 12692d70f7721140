"""The web UI end to end in headless Chromium: train a tiny job, download the zip, convert a file.

`infer-web.py` runs as a real process on 127.0.0.1 with stand-in weights, RVC_OFFLINE=1 and the
TEST-ONLY tiny network; Debian's chromium is driven by Playwright like a user would drive it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from infer.lib.errors import UserInputError
from infer.modules import webui as web
from tests.support.product import REPO_ROOT, free_port, make_standin_weights, product_env, stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_uploads_keep_their_names(tmp_path, joe_1min):
    wav = sorted(joe_1min.glob("*.wav"))[0]
    inner = tmp_path / "more.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(wav, "nested/dir/b.wav")
    zips, files = web.split_uploads([str(wav), str(inner), ""])
    assert zips == (inner,) and files == (wav,)  # used in place: the log names them as uploaded
    assert web.split_uploads(None) == ((), ())


def test_errors_name_the_form_field_by_its_label():
    from infer.lib.options import TrainOptions

    with pytest.raises(UserInputError) as err:
        TrainOptions(epochs=0)
    assert web.error_text(err.value).startswith("Error in “Epochs”: ")
    assert web.error_text(UserInputError("no training audio", field="dataset")).startswith(
        f"Error in “{web.FILES_LABEL}”"
    )
    assert web.error_text(UserInputError("plain")) == "Error: plain"


def test_model_from_upload_picks_the_final_model_and_index(tmp_path):
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("voice_best_epoch3.pth", b"best")
        zf.writestr("voice.pth", b"final")
        zf.writestr("added_IVF4_Flat_nprobe_1_voice_v2.index", b"idx")
        zf.writestr("checkpoints/G_10.pth", b"g")
    work = tmp_path / "work"
    work.mkdir()
    model, index = web.model_from_upload(str(z), None, work)
    assert model.read_bytes() == b"final" and index.read_bytes() == b"idx"
    txt = tmp_path / "notes.txt"
    txt.write_text("not a model")
    with pytest.raises(UserInputError, match=".pth"):
        web.model_from_upload(str(txt), None, work)
    with pytest.raises(UserInputError, match="choose a model"):
        web.model_from_upload("", None, work)


@pytest.fixture(scope="module")
def web_ui(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium (/usr/bin/chromium) is not installed; `make setup` installs it")
    weights = make_standin_weights(tmp_path_factory.getbasetemp() / "standin-v2-40k")
    jobs = tmp_path_factory.mktemp("jobs")
    log_path = tmp_path_factory.mktemp("logs") / "web.log"
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "infer-web.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=product_env(weights, jobs),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"infer-web.py exited:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"web UI did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "log": log_path, "jobs": jobs}
    finally:
        stop_process(proc)


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


@pytest.mark.browser
def test_train_download_and_convert_in_the_browser(web_ui, joe_1min, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    # 40 s of speech: over the 30 s the data check asks for, quick to extract
    wavs = [str(joe_1min / f"joe_00{i}.wav") for i in (1, 2, 3)]
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        try:
            page = ctx.new_page()
            page.goto(web_ui["url"], wait_until="domcontentloaded")
            # --- Train tab -------------------------------------------------------------------
            page.locator("#train-files input[type=file]").set_input_files(wavs)
            # several files show as a table, the name and its extension in separate elements
            expect(page.locator("#train-files")).to_contain_text(Path(wavs[-1]).stem, timeout=30_000)
            _pick(page, "train-f0method", "pm")
            page.locator("#train-epoch input").fill("1")
            page.locator("#train-batch input, #train-batch textarea").first.fill("16")
            page.locator("#train-enhance input").uncheck()
            page.locator("#train-name input, #train-name textarea").first.fill("webjoe")
            page.locator("#train-button").click()
            status = page.locator("#train-status textarea")
            expect(status).to_have_value(re.compile(r"^(Done|Error|Internal)"), timeout=600_000)
            assert status.input_value().startswith("Done"), (
                status.input_value(),
                page.locator("#train-log textarea").input_value()[-3000:],
            )
            assert "Preview speaker similarity" in status.input_value(), status.input_value()
            log_text = page.locator("#train-log textarea").input_value()
            assert "[stage 8/10] train" in log_text and "== stage" not in log_text
            with page.expect_download(timeout=60_000) as dl_info:
                page.locator("#train-result a").first.click()
            zip_path = tmp_path / "downloaded.zip"
            dl_info.value.save_as(zip_path)
            with zipfile.ZipFile(zip_path) as zf:
                names = zf.namelist()
            assert "webjoe.pth" in names and any(n.endswith("_webjoe_v2.index") for n in names), names
            # --- Convert tab (the trained zip is already selected there) ---------------------
            page.get_by_role("tab", name="Convert").click()
            expect(page.locator("#convert-model")).to_contain_text("webjoe", timeout=30_000)
            page.locator("#convert-input input[type=file]").set_input_files(wavs[0])
            _pick(page, "convert-f0method", "pm")
            page.locator("#convert-button").click()
            c_status = page.locator("#convert-status textarea")
            expect(c_status).to_have_value(re.compile(r"^(Converted|Error|Internal)"), timeout=180_000)
            assert c_status.input_value().startswith("Converted"), c_status.input_value()
            # the player's <audio> element(s) (gradio renders one for the waveform player, and a fallback)
            audio = page.locator("#convert-output audio")
            expect(audio.first).to_be_attached(timeout=30_000)
            deadline = time.monotonic() + 30
            while not any(a.get_attribute("src") for a in audio.all()) and time.monotonic() < deadline:
                time.sleep(0.25)
            srcs = [a.get_attribute("src") for a in audio.all()]
            assert any(srcs), srcs
        finally:
            ctx.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _fill_job(page, wavs: list[str], name: str, epochs: int) -> None:
    from playwright.sync_api import expect

    page.locator("#train-files input[type=file]").set_input_files(wavs)
    for w in wavs:
        expect(page.locator("#train-files")).to_contain_text(Path(w).stem, timeout=30_000)
    _pick(page, "train-f0method", "pm")
    page.locator("#train-epoch input").fill(str(epochs))
    page.locator("#train-save-every input").fill("1000")
    page.locator("#train-batch input, #train-batch textarea").first.fill("8")
    page.locator("#train-enhance input").uncheck()
    page.locator("#train-name input, #train-name textarea").first.fill(name)


def _job_folders(web_ui) -> list[str]:
    return sorted(p.name for p in Path(web_ui["jobs"]).glob("job-*") if (p / "exp").exists())


@pytest.mark.browser
def test_a_job_outlives_its_tab_and_can_be_cancelled(web_ui, joe_1min, tmp_path):
    """Tab 1 starts a job and closes; tab 2 re-attaches to it (log, status, result), its Train click
    starts no second job while the first runs; a later job is cancelled with the Cancel button."""
    from playwright.sync_api import expect, sync_playwright

    wav = [str(joe_1min / f"joe_00{i}.wav") for i in (1, 2, 3)]  # 40 s of speech: the data check's minimum
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab1 = ctx.new_page()
            tab1.goto(web_ui["url"], wait_until="domcontentloaded")
            _fill_job(tab1, wav, "tabjoe", epochs=2)
            tab1.locator("#train-button").click()
            expect(tab1.locator("#train-status textarea")).to_have_value(re.compile(r"stage \d+/\d+"), timeout=120_000)
            tab1.close()  # the job goes on without its tab

            tab2 = ctx.new_page()
            tab2.goto(web_ui["url"], wait_until="domcontentloaded")
            status = tab2.locator("#train-status textarea")
            log = tab2.locator("#train-log textarea")
            expect(status).to_have_value(re.compile(r"^Training\.\.\. stage \d+/10 "), timeout=60_000)
            expect(log).to_have_value(re.compile(re.escape("[stage 1/10] collect audio")), timeout=30_000)
            expect(log).to_have_value(re.compile("joe_001.wav"), timeout=60_000)  # the upload keeps its name
            running = _job_folders(web_ui)
            assert len(running) == 1
            # Train in the second tab while the job runs: shown that job, no second one started
            _fill_job(tab2, wav, "otherjoe", epochs=2)
            tab2.locator("#train-button").click()
            expect(status).to_have_value(re.compile("already running"), timeout=30_000)
            assert _job_folders(web_ui) == running
            expect(status).to_have_value(re.compile(r"epoch 1/2 · ETA \d+:\d\d"), timeout=600_000)
            expect(status).to_have_value(re.compile(r"^(Done|Error|Internal|Cancel)"), timeout=600_000)
            assert status.input_value().startswith("Done: tabjoe.zip"), (
                status.input_value(),
                log.input_value()[-3000:],
            )
            expect(tab2.locator("#train-result")).to_contain_text("tabjoe", timeout=30_000)
            assert "[stage 10/10] package done in" in log.input_value()
            # the log box follows its newest line
            at_end = "(t) => t.scrollHeight - t.scrollTop - t.clientHeight < 4 && t.scrollHeight > t.clientHeight"
            deadline = time.monotonic() + 10
            while not log.evaluate(at_end) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert log.evaluate(at_end)

            # a new job from this tab, cancelled while it runs (features or later)
            _fill_job(tab2, wav, "canceljoe", epochs=1000)
            tab2.locator("#train-button").click()
            expect(status).to_have_value(re.compile(r"stage [6-8]/10"), timeout=300_000)
            t0 = time.monotonic()
            tab2.locator("#train-cancel").click()
            expect(status).to_have_value("Cancelled.", timeout=60_000)
            assert time.monotonic() - t0 < 30
            assert _job_folders(web_ui) == []  # the cancelled job's workspace is gone
            assert "job cancelled" in log.input_value()
        finally:
            ctx.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_preview_from_zip(tmp_path):
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("preview.wav", b"RIFFdata")
    out = web.preview_from_zip(z, tmp_path)
    assert out and Path(out).read_bytes() == b"RIFFdata"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("voice.pth", b"x")
    assert web.preview_from_zip(z, tmp_path) is None
