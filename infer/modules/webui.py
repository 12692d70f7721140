"""What the web UI (`infer-web.py`) runs, apart from its page: the training worker and the converter.

`TrainService` is the process's training worker: one job at a time (`TrainJob`), run by the same job
runner as the API (`infer.modules.train.job.run_job`) in a thread of its own, so a job outlives the
browser tab that started it and any tab re-attaches to it. `job_from_form` checks the Train form into
the job's inputs and `TrainOptions`. `ConvertService` converts with a trained model (the zip from the
Train tab, or a `.pth` with its optional `.index`); `model_from_upload` finds the model in an upload.
Nothing here imports gradio: the page gets plain values and generators of `Outputs`.
"""

from __future__ import annotations

import ctypes
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infer.lib.dataset_zip import MiB, ZipLimits
from infer.lib.errors import CancelledError, UserInputError
from infer.lib.fileio import copy_capped
from infer.lib.options import TrainOptions, label
from infer.lib.resume_state import SizeCaps
from infer.lib.urls import redact_text
from infer.modules.train.job import JobInputs, SharedModels, Workspace, check_zip, run_job
from infer.modules.train.progress import ProgressEvent

LOG_LINES = 400
POLL_S = 0.5
CANCEL_GRACE_S = 3.0
FILES_LABEL = "Recordings (audio/video files or zips of them)"
URLS_LABEL = "...and/or URLs, one per line (http, https, data:)"
RESUME_LABEL = "Resume from (a zip this trainer returned with checkpoints)"
#: The Train form's option controls, in the order `TrainService.start` takes their values.
FORM_OPTIONS: tuple[str, ...] = (
    "sample_rate",
    "version",
    "f0method",
    "epochs",
    "batch_size",
    "enhance_audio",
    "trim_silence",
    "experiment_name",
    "save_every_epoch",
    "include_checkpoints",
    "seed",
    "resume_from",
    "keep_other_speakers",
)

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
    fld = getattr(e, "field", None)
    if not fld or not isinstance(fld, str):
        return f"Error: {e}"
    labels = {"wav_urls": URLS_LABEL, "dataset": FILES_LABEL, "files": FILES_LABEL, "resume_from": RESUME_LABEL}
    return f"Error in “{labels.get(fld) or label(fld)}”: {e}"


class _JobLog(logging.Handler):
    """The project's log lines, while a job runs, into that job's log (one job runs at a time), URLs
    redacted as in every other log."""

    def __init__(self, job: TrainJob) -> None:
        super().__init__(logging.INFO)
        self.job = job
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.job.add_line(redact_text(self.format(record)))  # no URL credentials or tokens on the page
        except Exception:  # noqa: BLE001 - logging must never break the job
            pass


class TrainJob:
    """One training job: run by the service's worker thread, watched by any number of tabs."""

    def __init__(self, options: TrainOptions, inputs: JobInputs, work_dir: Path) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.options = options
        self.inputs = inputs
        self.work_dir = work_dir
        self.cancel = threading.Event()
        self.lines: list[str] = []
        self.event: ProgressEvent | None = None
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

    def on_event(self, event: ProgressEvent) -> None:
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
                self._shared = SharedModels.load()
            return self._shared

    # -- starting, cancelling and watching a job ---------------------------------------------------
    def start(self, files: list[str] | None, urls_text: str, *form: Any) -> Iterator[Outputs]:
        """Generator for gradio: start a job from the form (`files`, `urls_text`, then the values of
        `FORM_OPTIONS` in order) unless one runs (then show that one), and follow it until it ends."""
        with self._lock:
            running = self.job if self.job is not None and self.job.running else None
            if running is None:
                try:
                    inputs, options = job_from_form(files, urls_text, dict(zip(FORM_OPTIONS, form, strict=True)))
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
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a whole number, got {value!r}", field=name) from None
    if not f.is_integer():
        raise UserInputError(f"{name} must be a whole number, got {value!r}", field=name)
    return int(f)


def job_from_form(files: list[str] | None, urls_text: str, form: dict[str, Any]) -> tuple[JobInputs, TrainOptions]:
    """The audio and the options of the Train form, checked (`UserInputError` names the bad field).
    `form`: {option name: the control's value} for `FORM_OPTIONS` (numbers arrive as floats, the seed
    as text, `resume_from` as an uploaded file's path or None)."""
    values = dict(form)
    seed = str(values.pop("seed") or "").strip()
    if seed and not seed.isdecimal():
        raise UserInputError(f"seed must be a whole number or empty, got {seed!r}", field="seed")
    zips, audio = split_uploads(files)
    urls = tuple(u.strip() for u in (urls_text or "").splitlines() if u.strip())
    inputs = JobInputs(urls=urls, zips=zips, files=audio)
    resume = values.pop("resume_from")
    for name in ("epochs", "save_every_epoch"):
        values[name] = _whole(values[name], name)
    for name in ("enhance_audio", "trim_silence", "include_checkpoints", "keep_other_speakers"):
        values[name] = bool(values[name])
    values["batch_size"] = str(values["batch_size"])
    values["experiment_name"] = (values["experiment_name"] or "").strip()
    options = TrainOptions(
        **values,
        seed=int(seed) if seed else None,
        resume_from=str(check_zip(resume, "resume_from")) if resume else None,
    )
    return inputs, options


def _interrupt_later(job: TrainJob) -> None:
    """When the cancel flag has not stopped the job within `CANCEL_GRACE_S` (a stage that checks it only
    between steps), raise `CancelledError` in its thread, as cog raises its cancel exception in a
    prediction's; the runner then stops child processes and cleans up. A job whose runner has sent its
    final event is already cleaning up: it is left to finish that (an exception there would leave its
    workspace behind)."""
    thread = job.thread
    if thread is None:
        return
    thread.join(CANCEL_GRACE_S)
    stopping = job.event is not None and job.event.status != "running"
    if thread.is_alive() and thread.ident is not None and job.running and not stopping:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(CancelledError))


def summary_from_zip(zip_path: Path) -> str:
    """Plain lines from the zip's model card: how close the preview sounds, the files left out and why."""
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
# what an uploaded model zip may unpack to: a voice model as large as a resume zip's, an index as one dataset file
UPLOAD_MODEL_MAX_BYTES = SizeCaps().best_model
UPLOAD_INDEX_MAX_BYTES = ZipLimits().max_file_bytes


def _copy_from_upload(zf: zipfile.ZipFile, member: str, work_dir: Path, cap: int, zip_name: str) -> Path:
    """`member` copied into `work_dir` under its plain name, counting the bytes that come out."""
    dst = work_dir / Path(member).name
    with zf.open(member) as src:
        if not copy_capped(src, dst, cap):
            raise UserInputError(
                f"{zip_name}: {Path(member).name} is larger than {cap // MiB} MiB; not a model of ours"
            )
    return dst


def model_from_upload(model_file: str, index_file: str | None, work_dir: Path) -> tuple[Path, Path | None]:
    """(model .pth, index or None) from an uploaded zip (ours) or a .pth (+ optional .index)."""
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
            model = _copy_from_upload(zf, pths[0], work_dir, UPLOAD_MODEL_MAX_BYTES, src.name)
            if index is None:
                idx = [n for n in names if n.lower().endswith(".index")]
                if idx:
                    index = _copy_from_upload(zf, idx[0], work_dir, UPLOAD_INDEX_MAX_BYTES, src.name)
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
