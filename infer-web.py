"""The local web UI: train a voice model and convert audio with it, in the browser.

    python infer-web.py                      # http://127.0.0.1:7865
    python infer-web.py --host 0.0.0.0       # reachable from other machines (Docker does this)

Train tab: upload recordings (audio files or zips) and/or paste URLs, choose the same options as the
Cog/Replicate API, watch the log and the stage progress, download the zip. It runs the very same code
as `predict.py` (`Predictor.train`), so results match the API's.

Convert tab: a trained model (the zip from the Train tab, or a `.pth` from RVC WebUI / Applio, with
its `.index` optionally), an input recording, the conversion options; the result plays in the page.

Works offline: no analytics, no update checks, no hub look-ups, system fonts only. Weights come from
`RVC_WEIGHTS_DIR` like everywhere else (see README).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
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
PIPELINE_STAGE_RE = re.compile(r"== stage (\w+) ==$")


# ------------------------------------------------------------------------------------------------
# Train
# ------------------------------------------------------------------------------------------------
class _QueueHandler(logging.Handler):
    """Collects the project's log records (formatted) for the page's live log."""

    def __init__(self, q: queue.Queue[str]) -> None:
        super().__init__(logging.INFO)
        self.q = q
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.q.put_nowait(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the job
            pass


def uploads_to_dataset_zip(paths: list[str], work_dir: Path) -> Path | None:
    """The uploaded files as one dataset zip: a single uploaded zip as is, otherwise everything
    (audio files, and the members of uploaded zips) packed into `work_dir/uploads.zip`."""
    paths = [p for p in paths or [] if p]
    if not paths:
        return None
    if len(paths) == 1 and zipfile.is_zipfile(paths[0]):
        return Path(paths[0])
    out = work_dir / "uploads.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
        for i, p in enumerate(paths):
            src = Path(p)
            if zipfile.is_zipfile(src):
                # members keep their relative names under a per-upload folder; dataset_zip checks safety
                with zipfile.ZipFile(src) as zin:
                    for info in zin.infolist():
                        if info.is_dir():
                            continue
                        with zin.open(info) as fin, zout.open(f"upload{i}/{info.filename}", "w") as fout:
                            shutil.copyfileobj(fin, fout, 1 << 20)
            else:
                zout.write(src, f"upload{i}/{src.name}")
    return out


class TrainService:
    """One Predictor for the process (set up on first use), one job at a time."""

    def __init__(self) -> None:
        self._predictor: Any = None
        self._lock = threading.Lock()

    def predictor(self) -> Any:
        if self._predictor is None:
            from predict import Predictor

            p = Predictor()
            p.setup()
            self._predictor = p
        return self._predictor

    def run(
        self,
        files: list[str] | None,
        urls_text: str,
        sample_rate: str,
        version: str,
        f0method: str,
        epoch: float,
        batch_size: str,
        enhance_audio: bool,
        trim_silence: bool,
        experiment_name: str,
        save_every_epoch: float,
        include_checkpoints: bool,
        seed_text: str,
        keep_other_speakers: bool = False,
    ) -> Iterator[tuple[str, str, str | None, str | None]]:
        """Generator for gradio: yields (log, status, zip path, zip path for the Convert tab, preview.wav)."""
        from infer.lib.errors import UserInputError
        from predict import validate_request

        lines: list[str] = []
        q: queue.Queue[str] = queue.Queue()
        handler = _QueueHandler(q)
        state: dict[str, Any] = {"stage": "starting", "result": None, "error": None}

        def drain() -> str:
            while True:
                try:
                    line = q.get_nowait()
                except queue.Empty:
                    break
                lines.append(line)
                m = PIPELINE_STAGE_RE.search(line)
                if m:
                    state["stage"] = f"{state['stage'].split(' / ')[0]} / {m.group(1)}"
            del lines[:-LOG_LINES]
            return "\n".join(lines)

        if not self._lock.acquire(blocking=False):
            yield "", "Another training job is running; wait for it to finish.", None, None, None
            return
        rvc_logger = logging.getLogger("rvc")
        rvc_logger.addHandler(handler)
        tmp = Path(tempfile.mkdtemp(prefix="rvc-web-"))
        try:
            try:
                seed = int(seed_text) if str(seed_text or "").strip() else None
            except ValueError:
                raise UserInputError(f"seed must be a whole number or empty, got {seed_text!r}") from None
            dataset = uploads_to_dataset_zip(files or [], tmp)
            urls = [u.strip() for u in (urls_text or "").splitlines() if u.strip()]
            request = validate_request(
                wav_urls=urls,
                dataset=dataset,
                sample_rate=sample_rate,
                version=version,
                f0method=f0method,
                epoch=int(epoch),
                batch_size=batch_size,
                enhance_audio=enhance_audio,
                trim_silence=trim_silence,
                experiment_name=experiment_name,
                save_every_epoch=int(save_every_epoch),
                include_checkpoints=include_checkpoints,
                seed=seed,
                keep_other_speakers=keep_other_speakers,
            )

            def on_stage(i: int, n: int, name: str) -> None:
                state["stage"] = f"stage {i}/{n}: {name}"

            def work() -> None:
                try:
                    state["stage"] = "loading models (first job only)"
                    predictor = self.predictor()
                    archive = predictor.train(request, on_stage=on_stage)
                    final = tmp / archive.name  # out of the job folder: the next job purges that
                    shutil.copy2(archive, final)
                    state["result"] = str(final)
                except BaseException as e:  # noqa: BLE001 - reported on the page
                    state["error"] = e

            t = threading.Thread(target=work, name="rvc-train", daemon=True)
            t.start()
            while t.is_alive():
                t.join(0.5)
                yield drain(), f"Training... {state['stage']}", None, None, None
            err = state["error"]
            if err is None:
                preview = preview_from_zip(Path(state["result"]), tmp)
                done = f"Done: {Path(state['result']).name}"
                summary = summary_from_zip(Path(state["result"]))
                yield drain(), done + (f"\n{summary}" if summary else ""), state["result"], state["result"], preview
            elif isinstance(err, UserInputError):
                yield drain(), f"Error: {err}", None, None, None
            else:
                yield (
                    drain(),
                    f"Internal error ({type(err).__name__}: {err}); the log has the details.",
                    None,
                    None,
                    None,
                )
        except UserInputError as e:
            yield drain(), f"Error: {e}", None, None, None
        finally:
            rvc_logger.removeHandler(handler)
            self._lock.release()


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
            from infer.lib.weights import HUBERT, RMVPE, WeightDownloader, WeightsSettings
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

    from predict import F0_METHODS, MAX_EPOCHS, SAMPLE_RATES, VERSIONS

    trainer = TrainService()
    converter = ConvertService()
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

    with gr.Blocks(title="RVC voice trainer", analytics_enabled=False) as demo:
        demo.theme_for_launch = theme  # type: ignore[attr-defined]
        gr.Markdown(
            "# RVC voice trainer\nTrain a voice model from recordings of one voice, then convert audio with it."
        )
        with gr.Tab("Train", id="train"):
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label="Recordings (audio/video files or zips of them)",
                        file_count="multiple",
                        file_types=AUDIO_UPLOAD_TYPES,
                        elem_id="train-files",
                    )
                    urls = gr.Textbox(
                        label="...and/or URLs, one per line (http, https, data:)", lines=3, elem_id="train-urls"
                    )
                    with gr.Row():
                        sample_rate = gr.Dropdown(list(SAMPLE_RATES), value="48k", label="Sample rate")
                        version = gr.Dropdown(list(VERSIONS), value="v2", label="Version")
                        f0method = gr.Dropdown(
                            list(F0_METHODS), value="rmvpe_gpu", label="Pitch method", elem_id="train-f0method"
                        )
                    with gr.Row():
                        epoch = gr.Number(
                            value=10, minimum=1, maximum=MAX_EPOCHS, precision=0, label="Epochs", elem_id="train-epoch"
                        )
                        batch_size = gr.Textbox(value="7", label="Batch size (number or 'auto')", elem_id="train-batch")
                        save_every = gr.Number(
                            value=50, minimum=1, maximum=MAX_EPOCHS, precision=0, label="Save every N epochs"
                        )
                    with gr.Row():
                        enhance = gr.Checkbox(value=True, label="Enhance audio (denoise)", elem_id="train-enhance")
                        trim = gr.Checkbox(value=True, label="Trim silence")
                        include_ckpt = gr.Checkbox(value=False, label="Include checkpoints in the zip")
                        keep_other = gr.Checkbox(
                            value=False,
                            label="Keep files of other speakers",
                            elem_id="train-keep-other-speakers",
                        )
                    with gr.Row():
                        name = gr.Textbox(value="rvc_model", label="Model name", elem_id="train-name")
                        seed = gr.Textbox(value="", label="Seed (empty: random)")
                    train_btn = gr.Button("Train", variant="primary", elem_id="train-button")
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

        train_btn.click(
            trainer.run,
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
                keep_other,
            ],
            outputs=[log_box, status, result, model_file, preview_audio],
            concurrency_limit=1,
        )
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
        max_file_size="4gb",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
