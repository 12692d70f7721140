"""The local web UI: train a voice model and convert audio with it, in the browser.

    python infer-web.py                      # http://127.0.0.1:7865
    python infer-web.py --host 0.0.0.0       # reachable from other machines (Docker does this)

Train tab: upload recordings (audio files or zips) and/or paste URLs, choose the same options as the
Cog/Replicate API (the form is built from `infer.lib.options.TrainOptions`: same labels, choices and
defaults), watch the log and the progress (`stage i/N`, `epoch e/E`, ETA), cancel, download the zip.
The job runs through the very same runner as the API (`infer.modules.train.job.run_job`), so results
match the API's.

A job belongs to the server's worker (`TrainService`), not to the browser tab that started it:
closing or reloading the tab leaves it running, and any tab opened later re-attaches to it (its log,
status and result). One job runs at a time; Train while a job runs shows that job instead of starting
a second one.

Convert tab: a trained model (the zip from the Train tab, or a `.pth` from RVC WebUI / Applio, with
its `.index` optionally), an input recording, the conversion options; the result plays in the page.

Works offline: no analytics, no update checks, no hub look-ups, system fonts only. Weights come from
`RVC_WEIGHTS_DIR` like everywhere else (see README).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

AUDIO_UPLOAD_TYPES = [".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus", ".webm", ".mp4", ".mkv", ".zip"]
LOG_LINES = 400
POLL_S = 0.5
CANCEL_GRACE_S = 3.0
# keeps the log box on its newest line (gradio's autoscroll does not follow a read-only box)
FOLLOW_LOG_JS = """
() => {
  const follow = () => {
    const box = document.querySelector('#train-log textarea');
    if (box && box.dataset.followed !== String(box.value.length)) {
      box.scrollTop = box.scrollHeight;
      box.dataset.followed = String(box.value.length);
    }
  };
  setInterval(follow, 300);
}
"""

# (log, status, result zip, model for the Convert tab, preview.wav)
Outputs = tuple[str, str, str | None, str | None, str | None]


# ------------------------------------------------------------------------------------------------
# Train
# ------------------------------------------------------------------------------------------------
def split_uploads(paths: list[str] | None) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Uploaded files as (zips, audio files); both keep their uploaded names (gradio stores each upload
    under its original name), so the log names them as the user does."""
    zips: list[Path] = []
    files: list[Path] = []
    for p in paths or []:
        if not p:
            continue
        path = Path(p)
        (zips if zipfile.is_zipfile(path) else files).append(path)
    return tuple(zips), tuple(files)


def error_text(e: BaseException) -> str:
    """A user error as the page shows it: the form field's label first, when the error names one."""
    from infer.lib.options import label

    fld = getattr(e, "field", None)
    labels = {"wav_urls": URLS_LABEL, "dataset": FILES_LABEL, "files": FILES_LABEL, "resume_from": RESUME_LABEL}
    name = labels.get(fld) or (label(fld) if fld else None)
    return f"Error in “{name}”: {e}" if name else f"Error: {e}"


FILES_LABEL = "Recordings (audio/video files or zips of them)"
URLS_LABEL = "...and/or URLs, one per line (http, https, data:)"
RESUME_LABEL = "Resume from (a zip this trainer returned with checkpoints)"


class _JobLog(logging.Handler):
    """The project's log lines, while a job runs, into that job's log (one job runs at a time), URLs
    redacted as in every other log."""

    def __init__(self, job: TrainJob) -> None:
        super().__init__(logging.INFO)
        self.job = job
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        from infer.lib.urls import redact_text

        try:
            self.job.add_line(redact_text(self.format(record)))  # no URL credentials or tokens on the page
        except Exception:  # noqa: BLE001 - logging must never break the job
            pass


class TrainJob:
    """One training job: run by the service's worker thread, watched by any number of tabs."""

    def __init__(self, options: Any, inputs: Any, work_dir: Path) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.options = options
        self.inputs = inputs
        self.work_dir = work_dir
        self.cancel = threading.Event()
        self.lines: list[str] = []
        self.event: Any = None
        self.state = "starting"  # starting, running, succeeded, failed, canceled
        self.message = "Starting: loading the models (first job only)..."
        self.result: str | None = None
        self.preview: str | None = None
        self.notice = ""  # shown before the status in every tab while the job runs
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def add_line(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            del self.lines[: -LOG_LINES * 4]

    def on_event(self, event: Any) -> None:
        self.event = event
        if self.state == "starting":
            self.state = "running"

    def status(self) -> str:
        if self.state == "starting":
            return self.message
        if self.running:
            what = self.event.status_line() if self.event is not None else "starting"
            return self.notice + ("Cancelling... " if self.cancel.is_set() else "Training... ") + what
        return self.message

    def outputs(self) -> Outputs:
        with self._lock:
            log_text = "\n".join(self.lines[-LOG_LINES:])
        done = self.state == "succeeded"
        return log_text, self.status(), self.result if done else None, self.result if done else None, self.preview


class TrainService:
    """The process's training worker: the shared models (loaded on first use) and the current job."""

    def __init__(self, jobs_base: Path | None = None) -> None:
        self._shared: Any = None
        self._shared_lock = threading.Lock()
        self._lock = threading.Lock()
        self.job: TrainJob | None = None
        self.jobs_base = jobs_base

    def shared(self) -> Any:
        with self._shared_lock:
            if self._shared is None:
                from infer.modules.train.job import SharedModels

                self._shared = SharedModels.load()
            return self._shared

    # -- starting, cancelling and watching a job ---------------------------------------------------
    def start(
        self,
        files: list[str] | None,
        urls_text: str,
        sample_rate: str,
        version: str,
        f0method: str,
        epochs: float,
        batch_size: str,
        enhance_audio: bool,
        trim_silence: bool,
        experiment_name: str,
        save_every_epoch: float,
        include_checkpoints: bool,
        seed_text: str,
        resume_from: str | None = None,
        keep_other_speakers: bool = False,
    ) -> Iterator[Outputs]:
        """Generator for gradio: start a job from the form (unless one runs: then show that one) and
        follow it until it ends."""
        from infer.lib.errors import UserInputError
        from infer.lib.options import TrainOptions
        from infer.modules.train.job import JobInputs, check_zip

        with self._lock:
            running = self.job if self.job is not None and self.job.running else None
            if running is None:
                try:
                    text = str(seed_text or "").strip()
                    if text and not text.isdigit():
                        raise UserInputError(f"seed must be a whole number or empty, got {seed_text!r}", field="seed")
                    zips, audio = split_uploads(files)
                    urls = tuple(u.strip() for u in (urls_text or "").splitlines() if u.strip())
                    inputs = JobInputs(urls=urls, zips=zips, files=audio)
                    options = TrainOptions(
                        sample_rate=sample_rate,
                        version=version,
                        f0method=f0method,
                        epochs=_whole(epochs, "epochs"),
                        batch_size=str(batch_size),
                        enhance_audio=bool(enhance_audio),
                        trim_silence=bool(trim_silence),
                        experiment_name=(experiment_name or "").strip(),
                        save_every_epoch=_whole(save_every_epoch, "save_every_epoch"),
                        resume_from=str(check_zip(resume_from, "resume_from")) if resume_from else None,
                        include_checkpoints=bool(include_checkpoints),
                        seed=int(text) if text else None,
                        keep_other_speakers=bool(keep_other_speakers),
                    )
                except UserInputError as e:
                    yield "", error_text(e), None, None, None
                    return
                job = TrainJob(options, inputs, Path(tempfile.mkdtemp(prefix="rvc-web-")))
                self.job = job
                job.thread = threading.Thread(target=self._work, args=(job,), name=f"rvc-train-{job.id}", daemon=True)
                job.thread.start()
            else:
                job = running
                job.notice = "A training job is already running (one at a time); this is its progress. "
                logging.getLogger("rvc.web").info("Train clicked while job %s runs: showing that job", job.id)
        yield from self.watch(job)

    def attach(self) -> Iterator[Outputs]:
        """Generator for a page (re)load: follow the current (or last) job, if any."""
        job = self.job
        if job is None:
            yield "", "", None, None, None
            return
        yield from self.watch(job)

    def watch(self, job: TrainJob) -> Iterator[Outputs]:
        while job.running:
            yield job.outputs()
            time.sleep(POLL_S)
        yield job.outputs()

    def cancel(self) -> str:
        """Stop the running job as the API's cancel does: at once, child processes stopped, the
        workspace cleaned up."""
        job = self.job
        if job is None or not job.running:
            return "No training job is running."
        job.cancel.set()  # the training loop stops at its next step
        threading.Thread(target=_interrupt_later, args=(job,), daemon=True).start()
        return "Cancelling..."

    # -- the worker ----------------------------------------------------------------------------------
    def _work(self, job: TrainJob) -> None:
        from infer.lib.errors import CancelledError, UserInputError
        from infer.modules.train.job import Workspace, run_job

        handler = _JobLog(job)
        rvc = logging.getLogger("rvc")
        rvc.addHandler(handler)
        try:
            shared = self.shared()
            if job.cancel.is_set():
                raise CancelledError("cancelled before the job started")
            job.state = "running"
            workspace = Workspace.create(self.jobs_base)
            result = run_job(
                job.options, job.inputs, workspace, shared_models=shared, on_event=job.on_event, cancel=job.cancel
            )
            assert result.zip_path is not None
            final = job.work_dir / result.zip_path.name  # out of the job folder: a later job purges that
            shutil.copy2(result.zip_path, final)
            workspace.release()
            job.result = str(final)
            job.preview = preview_from_zip(final, job.work_dir)
            summary = summary_from_zip(final)
            job.message = f"Done: {final.name}" + (f"\n{summary}" if summary else "")
            job.state = "succeeded"
        except UserInputError as e:
            job.message = error_text(e)
            job.state = "failed"
        except (CancelledError, KeyboardInterrupt):
            job.message = "Cancelled."
            job.state = "canceled"
        except BaseException as e:  # noqa: BLE001 - reported on the page
            if job.cancel.is_set():
                job.message = "Cancelled."
                job.state = "canceled"
            else:
                logging.getLogger("rvc.web").exception("training job failed")
                job.message = f"Internal error ({type(e).__name__}: {e}); the log has the details."
                job.state = "failed"
        finally:
            rvc.removeHandler(handler)


def _whole(value: Any, name: str) -> int:
    from infer.lib.errors import UserInputError

    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a whole number, got {value!r}", field=name) from None
    if not f.is_integer():
        raise UserInputError(f"{name} must be a whole number, got {value!r}", field=name)
    return int(f)


def _interrupt_later(job: TrainJob) -> None:
    """When the cancel flag has not stopped the job within `CANCEL_GRACE_S` (a stage that checks it only
    between steps), raise `CancelledError` in its thread, as cog raises its cancel exception in a
    prediction's; the runner then stops child processes and cleans up."""
    from infer.lib.errors import CancelledError

    thread = job.thread
    if thread is None:
        return
    thread.join(CANCEL_GRACE_S)
    if thread.is_alive() and thread.ident is not None and job.running:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(CancelledError))


def summary_from_zip(zip_path: Path) -> str:
    """Plain lines from the zip's model card: how close the preview sounds, the files left out and why."""
    import json

    try:
        with zipfile.ZipFile(zip_path) as zf:
            card = json.loads(zf.read("model_card.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return ""
    lines = []
    ds = card.get("dataset") or {}
    if ds.get("speech_s") is not None:
        lines.append(f"Speech trained on: {ds['speech_s'] / 60:.1f} min")
    for f in ds.get("excluded_files") or []:
        lines.append(f"Left out: {f['name']} ({f['reason']})")
    q = card.get("quality") or {}
    if q.get("preview_reading"):
        line = f"Preview speaker similarity {q['preview_reading']}"
        if q.get("heldout_speaker_similarity") is not None:
            line += f" (held-out originals {q['heldout_speaker_similarity']:.2f})"
        if q.get("note"):
            line += f"; low because {q['note']}"
        lines.append(line)
    return "\n".join(lines)


def preview_from_zip(zip_path: Path, work_dir: Path) -> str | None:
    """The zip's `preview.wav` (held-out audio converted by the trained model) as a file, if it has one."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            if "preview.wav" not in zf.namelist():
                return None
            out = work_dir / f"{zip_path.stem}_preview.wav"
            with zf.open("preview.wav") as fin, open(out, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            return str(out)
    except (OSError, zipfile.BadZipFile):
        return None


# ------------------------------------------------------------------------------------------------
# Convert
# ------------------------------------------------------------------------------------------------
def model_from_upload(model_file: str, index_file: str | None, work_dir: Path) -> tuple[Path, Path | None]:
    """(model .pth, index or None) from an uploaded zip (ours) or a .pth (+ optional .index)."""
    from infer.lib.errors import UserInputError

    if not model_file:
        raise UserInputError("choose a model: the zip from the Train tab or a .pth file")
    src = Path(model_file)
    index = Path(index_file) if index_file else None
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            pths = [n for n in names if n.lower().endswith(".pth") and not Path(n).name.startswith(("G_", "D_"))]
            if not pths:
                raise UserInputError(f"{src.name} holds no voice model (.pth)")
            # the final model, not the best-epoch copy, unless that is all there is
            pths.sort(key=lambda n: ("best" in Path(n).name.lower(), n.count("/"), len(n)))
            chosen = pths[0]
            model = work_dir / Path(chosen).name
            with zf.open(chosen) as fin, open(model, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            if index is None:
                idx = [n for n in names if n.lower().endswith(".index")]
                if idx:
                    index = work_dir / Path(idx[0]).name
                    with zf.open(idx[0]) as fin, open(index, "wb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
        return model, index
    if src.suffix.lower() != ".pth":
        raise UserInputError(f"{src.name}: choose a .pth model file or the .zip from the Train tab")
    return src, index


class ConvertService:
    """One `VC` for the process (HuBERT and pitch extractors loaded once)."""

    def __init__(self) -> None:
        self._vc: Any = None
        self._lock = threading.Lock()

    def vc(self) -> Any:
        if self._vc is None:
            from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
            from infer.lib.weights import HUBERT, RMVPE
            from infer.modules.vc import VC

            wd = WeightDownloader(WeightsSettings.from_env())
            self._vc = VC(hubert_path=wd.fetch([HUBERT])[HUBERT], rmvpe_path=wd.path(RMVPE))
        return self._vc

    def run(
        self,
        model_file: str | None,
        index_file: str | None,
        audio_file: str | None,
        f0_up_key: float,
        f0_method: str,
        index_rate: float,
        filter_radius: float,
        resample_sr: float,
        rms_mix_rate: float,
        protect: float,
    ) -> tuple[str | None, str]:
        from infer.lib.errors import UserInputError
        from infer.modules.vc import ConvertParams

        try:
            if not audio_file:
                raise UserInputError("choose or record the audio to convert")
            with self._lock:
                work = Path(tempfile.mkdtemp(prefix="rvc-convert-"))
                model, index = model_from_upload(model_file or "", index_file, work)
                params = ConvertParams(
                    f0_up_key=float(f0_up_key),
                    f0_method=f0_method,
                    index_rate=float(index_rate),
                    filter_radius=int(filter_radius),
                    resample_sr=int(resample_sr),
                    rms_mix_rate=float(rms_mix_rate),
                    protect=float(protect),
                )
                t0 = time.monotonic()
                out = work / f"{Path(audio_file).stem}_{model.stem}.wav"
                result = self.vc().convert_file(audio_file, out, model, index, params)
                took = time.monotonic() - t0
            secs = len(result.audio) / result.sample_rate
            note = f"Converted {secs:.1f} s of audio in {took:.1f} s with {model.name}"
            note += f" and {index.name}" if index else " (no index)"
            return str(out), note
        except UserInputError as e:
            return None, f"Error: {e}"
        except Exception as e:  # noqa: BLE001 - shown on the page, traceback in the log
            logging.getLogger("rvc.web").exception("conversion failed")
            return None, f"Internal error ({type(e).__name__}: {e}); the log has the details."


# ------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------
def build_ui() -> Any:
    import gradio as gr

    from infer.lib.options import DEFAULTS, F0_METHODS, OPTION_FIELDS, choices, label

    trainer = TrainService()
    converter = ConvertService()
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

    def number(name: str, elem_id: str | None = None) -> Any:
        f = OPTION_FIELDS[name]
        return gr.Number(
            value=DEFAULTS[name],
            minimum=f.metadata.get("ge"),
            maximum=f.metadata.get("le"),
            precision=0,
            label=label(name),
            elem_id=elem_id,
        )

    def dropdown(name: str, elem_id: str | None = None) -> Any:
        return gr.Dropdown(list(choices(name)), value=DEFAULTS[name], label=label(name), elem_id=elem_id)

    def checkbox(name: str, elem_id: str | None = None) -> Any:
        return gr.Checkbox(value=DEFAULTS[name], label=label(name), elem_id=elem_id)

    with gr.Blocks(title="RVC voice trainer", analytics_enabled=False) as demo:
        demo.theme_for_launch = theme  # type: ignore[attr-defined]
        gr.Markdown(
            "# RVC voice trainer\nTrain a voice model from recordings of one voice, then convert audio with it."
        )
        with gr.Tab("Train", id="train"):
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=FILES_LABEL, file_count="multiple", file_types=AUDIO_UPLOAD_TYPES, elem_id="train-files"
                    )
                    urls = gr.Textbox(label=URLS_LABEL, lines=3, elem_id="train-urls")
                    with gr.Row():
                        sample_rate = dropdown("sample_rate", "train-sample-rate")
                        version = dropdown("version", "train-version")
                        f0method = dropdown("f0method", "train-f0method")
                    with gr.Row():
                        epoch = number("epochs", "train-epoch")
                        batch_size = gr.Textbox(
                            value=DEFAULTS["batch_size"], label=label("batch_size"), elem_id="train-batch"
                        )
                        save_every = number("save_every_epoch", "train-save-every")
                    with gr.Row():
                        enhance = checkbox("enhance_audio", "train-enhance")
                        trim = checkbox("trim_silence", "train-trim")
                        include_ckpt = checkbox("include_checkpoints", "train-include-checkpoints")
                        keep_other = checkbox("keep_other_speakers", "train-keep-other-speakers")
                    with gr.Row():
                        name = gr.Textbox(
                            value=DEFAULTS["experiment_name"], label=label("experiment_name"), elem_id="train-name"
                        )
                        seed = gr.Textbox(value="", label=label("seed") + " (empty: random)", elem_id="train-seed")
                    resume = gr.File(label=RESUME_LABEL, file_types=[".zip"], elem_id="train-resume")
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary", elem_id="train-button")
                        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
                with gr.Column():
                    status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="train-status")
                    log_box = gr.Textbox(
                        label="Log", lines=18, max_lines=18, interactive=False, autoscroll=True, elem_id="train-log"
                    )
                    result = gr.File(label="Trained model (zip)", interactive=False, elem_id="train-result")
                    preview_audio = gr.Audio(
                        label="Preview: some of your held-out audio in the trained voice",
                        type="filepath",
                        interactive=False,
                        elem_id="train-preview",
                    )
        with gr.Tab("Convert", id="convert"):
            with gr.Row():
                with gr.Column():
                    model_file = gr.File(
                        label="Voice model: the zip from Train, or a .pth",
                        file_types=[".zip", ".pth"],
                        elem_id="convert-model",
                    )
                    index_file = gr.File(
                        label="Index (.index, optional)", file_types=[".index"], elem_id="convert-index"
                    )
                    audio_in = gr.Audio(
                        label="Audio to convert",
                        type="filepath",
                        sources=["upload", "microphone"],
                        elem_id="convert-input",
                    )
                    with gr.Row():
                        f0_up_key = gr.Slider(-24, 24, value=0, step=1, label="Pitch shift (semitones)")
                        c_f0method = gr.Dropdown(
                            [m for m in F0_METHODS if m != "rmvpe_gpu"],
                            value="rmvpe",
                            label="Pitch method",
                            elem_id="convert-f0method",
                        )
                    with gr.Row():
                        index_rate = gr.Slider(0, 1, value=0.75, step=0.05, label="Index rate")
                        filter_radius = gr.Slider(0, 7, value=3, step=1, label="Pitch median filter radius")
                    with gr.Row():
                        resample_sr = gr.Dropdown(
                            [0, 16000, 22050, 32000, 40000, 44100, 48000], value=0, label="Output rate (0: model's)"
                        )
                        rms_mix_rate = gr.Slider(0, 1, value=0.25, step=0.05, label="Volume envelope mix")
                        protect = gr.Slider(0, 0.5, value=0.33, step=0.01, label="Protect consonants")
                    convert_btn = gr.Button("Convert", variant="primary", elem_id="convert-button")
                with gr.Column():
                    convert_status = gr.Textbox(label="Status", interactive=False, elem_id="convert-status")
                    audio_out = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="convert-output")

        train_outputs = [log_box, status, result, model_file, preview_audio]
        # a job outlives the tab that started it: these events only watch it, so they never queue
        # behind each other (the service runs one job at a time by itself)
        attached = demo.load(trainer.attach, outputs=train_outputs, concurrency_limit=None)
        train_btn.click(
            trainer.start,
            inputs=[
                files,
                urls,
                sample_rate,
                version,
                f0method,
                epoch,
                batch_size,
                enhance,
                trim,
                name,
                save_every,
                include_ckpt,
                seed,
                resume,
                keep_other,
            ],
            outputs=train_outputs,
            concurrency_limit=None,
            cancels=[attached],  # this click's own stream takes over from the page-load one
        )
        cancel_btn.click(trainer.cancel, outputs=[status], concurrency_limit=None)
        convert_btn.click(
            converter.run,
            inputs=[
                model_file,
                index_file,
                audio_in,
                f0_up_key,
                c_f0method,
                index_rate,
                filter_radius,
                resample_sr,
                rms_mix_rate,
                protect,
            ],
            outputs=[audio_out, convert_status],
            concurrency_limit=1,
        )
    return demo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="RVC voice trainer: local web UI")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7865")))
    args = ap.parse_args(argv)

    from infer.lib.log import setup_logging

    setup_logging()
    demo = build_ui()
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        inbrowser=False,
        footer_links=[],
        theme=demo.theme_for_launch,
        js=FOLLOW_LOG_JS,
        max_file_size="4gb",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
