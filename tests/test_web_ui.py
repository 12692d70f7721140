"""The web UI end to end in headless Chromium: train a tiny job, download the zip, convert a file.

`infer-web.py` runs as a real process on 127.0.0.1 with stand-in weights, RVC_OFFLINE=1 and the
TEST-ONLY tiny network; Debian's chromium is driven by Playwright like a user would drive it.
"""

from __future__ import annotations

import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from infer.lib.cache import ArrayCache
from infer.lib.errors import UserInputError
from infer.modules import webui as web
from tests.support.product import product_env, web_ui_server

CHROMIUM = Path("/usr/bin/chromium")
ENDED = r"^(Done|Error|Internal|Cancelled\.)"  # the status of a job that ended
JOB_CEILING_S = 1800  # only a hung job takes this long
T = TypeVar("T")
UI_TIMEOUT_MS = 120_000  # for what the page shows within a second or two of its cause
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


@pytest.mark.parametrize("seed", ["x1", "-1", "1.5", "²"])
def test_a_seed_that_is_not_a_whole_number_names_the_seed_field(seed):
    from infer.lib.options import DEFAULTS

    form = {**{n: DEFAULTS[n] for n in web.FORM_OPTIONS}, "seed": seed}
    with pytest.raises(UserInputError) as err:
        web.job_from_form(None, "", form)
    assert err.value.field == "seed"


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
    assert model.read_bytes() == b"final" and index is not None and index.read_bytes() == b"idx"
    txt = tmp_path / "notes.txt"
    txt.write_text("not a model")
    with pytest.raises(UserInputError, match=".pth"):
        web.model_from_upload(str(txt), None, work)
    with pytest.raises(UserInputError, match="choose a model"):
        web.model_from_upload("", None, work)


def test_model_from_upload_counts_what_comes_out_of_the_zip(tmp_path, monkeypatch):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("voice.pth", b"\0" * (4 << 20))  # 4 MiB of zeros deflate to a few KiB
        zf.writestr("voice.index", b"\0" * (4 << 20))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(web, "UPLOAD_MODEL_MAX_BYTES", 1 << 20)
    with pytest.raises(UserInputError, match="voice.pth is larger than 1 MiB"):
        web.model_from_upload(str(z), None, work)
    monkeypatch.setattr(web, "UPLOAD_MODEL_MAX_BYTES", 8 << 20)
    monkeypatch.setattr(web, "UPLOAD_INDEX_MAX_BYTES", 1 << 20)
    with pytest.raises(UserInputError, match="voice.index is larger than 1 MiB"):
        web.model_from_upload(str(z), None, work)
    assert [p.name for p in work.iterdir()] == ["voice.pth"]  # the refused index left nothing behind


@pytest.fixture(scope="module")
def web_ui(
    tmp_path_factory: pytest.TempPathFactory, product_weights: Path, extract_cache: ArrayCache
) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium (/usr/bin/chromium) is not installed; `make setup` installs it")
    jobs = tmp_path_factory.mktemp("jobs")
    log_path = tmp_path_factory.mktemp("logs") / "web.log"
    with web_ui_server(product_env(product_weights, jobs, extract_cache), log_path) as url:
        yield {"url": url, "log": log_path, "jobs": jobs}


@contextmanager
def _browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium context (downloads allowed) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        try:
            yield ctx
        finally:
            ctx.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill_job(page: Any, wavs: list[str], name: str, epochs: int) -> None:
    from playwright.sync_api import expect

    page.locator("#train-files input[type=file]").set_input_files(wavs)
    # several files show as a table, the name and its extension in separate elements
    for w in wavs:
        expect(page.locator("#train-files")).to_contain_text(Path(w).stem, timeout=UI_TIMEOUT_MS)
    _pick(page, "train-f0method", "pm")
    page.locator("#train-epoch input").fill(str(epochs))
    page.locator("#train-save-every input").fill("1000")
    page.locator("#train-batch input, #train-batch textarea").first.fill("8")
    page.locator("#train-enhance input").uncheck()
    page.locator("#train-name input, #train-name textarea").first.fill(name)


def _until(page: Any, read: Callable[[], T], ok: Callable[[T], object], ceiling_s: float) -> list[T]:
    """Every distinct value `read()` gives (polled on the page) until `ok` holds for the last one; an
    assertion error after `ceiling_s`."""
    seen: list[T] = []
    deadline = time.monotonic() + ceiling_s
    while not seen or not ok(seen[-1]):
        assert time.monotonic() < deadline, f"not there within {ceiling_s} s; last seen: {seen[-3:]}"
        value = read()
        if not seen or value != seen[-1]:
            seen.append(value)
        page.wait_for_timeout(200)
    return seen


def _follow(page: Any, box: Any, until: str) -> list[str]:
    """Every value the text `box` shows until one matches `until` (a job's end or a state it reaches):
    the job's own event ends the wait; `JOB_CEILING_S` only stops a hung job."""
    return _until(page, box.input_value, lambda v: re.search(until, v), JOB_CEILING_S)


def _job_folders(web_ui: dict[str, Any]) -> list[str]:
    return sorted(p.name for p in Path(web_ui["jobs"]).glob("job-*") if (p / "exp").exists())


@pytest.mark.browser
def test_train_follow_in_another_tab_download_and_convert(web_ui, joe_1min, tmp_path):
    """Tab 1 starts a job and closes; tab 2 re-attaches to it (log, status, progress), its Train click
    starts no second job while the first runs; tab 2 then downloads the zip and converts a file with it."""
    from playwright.sync_api import expect

    wavs = [str(joe_1min / f"joe_00{i}.wav") for i in (1, 2, 3)]  # 40 s of speech: the data check's minimum
    with _browser(tmp_path) as ctx:
        tab1 = ctx.new_page()
        tab1.goto(web_ui["url"], wait_until="domcontentloaded")
        _fill_job(tab1, wavs, "webjoe", epochs=2)
        tab1.locator("#train-button").click()
        started = _follow(tab1, tab1.locator("#train-status textarea"), rf"stage \d+/\d+|{ENDED}")
        assert re.search(r"stage \d+/\d+", started[-1]), started
        tab1.close()  # the job goes on without its tab

        page = ctx.new_page()
        page.goto(web_ui["url"], wait_until="domcontentloaded")
        status = page.locator("#train-status textarea")
        log = page.locator("#train-log textarea")
        expect(status).to_have_value(re.compile(r"^Training\.\.\. stage \d+/10 "), timeout=UI_TIMEOUT_MS)
        expect(log).to_have_value(re.compile(re.escape("[stage 1/10] collect audio")), timeout=UI_TIMEOUT_MS)
        expect(log).to_have_value(re.compile("joe_001.wav"), timeout=UI_TIMEOUT_MS)  # the upload keeps its name
        running = _job_folders(web_ui)
        assert len(running) == 1
        # Train in the second tab while the job runs: shown that job, no second one started
        _fill_job(page, wavs, "otherjoe", epochs=2)
        page.locator("#train-button").click()
        expect(status).to_have_value(re.compile("already running"), timeout=UI_TIMEOUT_MS)
        assert _job_folders(web_ui) == running
        shown = _follow(page, status, ENDED)
        assert any(re.search(r"epoch 1/2 · ETA \d+:\d\d", s) for s in shown), shown
        final = status.input_value()
        assert final.startswith("Done: webjoe.zip"), (final, log.input_value()[-3000:])
        assert "Preview speaker similarity" in final, final
        expect(page.locator("#train-result")).to_contain_text("webjoe", timeout=UI_TIMEOUT_MS)
        log_text = log.input_value()
        assert "[stage 8/10] train" in log_text and "[stage 10/10] package done in" in log_text
        assert "== stage" not in log_text
        # the log box follows its newest line
        at_end = "(t) => t.scrollHeight - t.scrollTop - t.clientHeight < 4 && t.scrollHeight > t.clientHeight"
        _until(page, lambda: log.evaluate(at_end), bool, UI_TIMEOUT_MS / 1000)

        # --- the zip, downloaded from the result -----------------------------------------------
        with page.expect_download(timeout=UI_TIMEOUT_MS) as dl_info:
            page.locator("#train-result a").first.click()
        zip_path = tmp_path / "downloaded.zip"
        dl_info.value.save_as(zip_path)
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
        assert "webjoe.pth" in names and any(n.endswith("_webjoe_v2.index") for n in names), names

        # --- Convert tab (the trained zip is already selected there) ---------------------------
        page.get_by_role("tab", name="Convert").click()
        expect(page.locator("#convert-model")).to_contain_text("webjoe", timeout=UI_TIMEOUT_MS)
        page.locator("#convert-input input[type=file]").set_input_files(wavs[0])
        _pick(page, "convert-f0method", "pm")
        page.locator("#convert-button").click()
        c_status = page.locator("#convert-status textarea")
        converted = _follow(page, c_status, r"^(Converted|Error|Internal)")
        assert converted[-1].startswith("Converted"), converted[-1]
        # the player's <audio> element(s) (gradio renders one for the waveform player, and a fallback)
        audio = page.locator("#convert-output audio")
        expect(audio.first).to_be_attached(timeout=UI_TIMEOUT_MS)
        _until(page, lambda: [a.get_attribute("src") for a in audio.all()], any, UI_TIMEOUT_MS / 1000)


@pytest.mark.browser
def test_a_running_job_is_cancelled_with_the_cancel_button(web_ui, joe_1min, tmp_path):
    """A job cancelled while it runs (features or later) stops, says so, and leaves no workspace."""
    from playwright.sync_api import expect

    wavs = [str(joe_1min / f"joe_00{i}.wav") for i in (1, 2, 3)]
    with _browser(tmp_path) as ctx:
        page = ctx.new_page()
        page.goto(web_ui["url"], wait_until="domcontentloaded")
        status = page.locator("#train-status textarea")
        _fill_job(page, wavs, "canceljoe", epochs=1000)
        page.locator("#train-button").click()
        # the page shows this job (not the session's previous one, which it attached to on load)
        expect(status).to_have_value(re.compile(r"^(Starting|Training)"), timeout=UI_TIMEOUT_MS)
        reached = _follow(page, status, rf"stage [6-8]/10|{ENDED}")
        assert re.search(r"stage [6-8]/10", reached[-1]), reached
        page.locator("#train-cancel").click()
        ended = _follow(page, status, ENDED)
        assert ended[-1] == "Cancelled.", ended
        assert _job_folders(web_ui) == []  # the cancelled job's workspace is gone
        assert "job cancelled" in page.locator("#train-log textarea").input_value()


def test_preview_from_zip(tmp_path):
    z = tmp_path / "voice.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("preview.wav", b"RIFFdata")
    out = web.preview_from_zip(z, tmp_path)
    assert out and Path(out).read_bytes() == b"RIFFdata"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("voice.pth", b"x")
    assert web.preview_from_zip(z, tmp_path) is None
