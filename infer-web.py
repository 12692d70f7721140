"""The local web UI: train a voice model and convert audio with it, in the browser.

    python infer-web.py                      # http://127.0.0.1:7865
    python infer-web.py --host 0.0.0.0       # reachable from other machines (Docker does this)

Train tab: upload recordings (audio files or zips) and/or paste URLs, choose the same options as the
Cog/Replicate API (the form is built from `infer.lib.options.TrainOptions`: same labels, choices and
defaults), watch the log and the progress (`stage i/N`, `epoch e/E`, ETA), cancel, download the zip.
The job runs through the very same runner as the API (`infer.modules.train.job.run_job`), so results
match the API's.

A job belongs to the server's worker (`TrainService`, in `infer.modules.webui` with the converter),
not to the browser tab that started it: closing or reloading the tab leaves it running, and any tab
opened later re-attaches to it (its log, status and result). One job runs at a time; Train while a
job runs shows that job instead of starting a second one.

Convert tab: a trained model (the zip from the Train tab, or a `.pth` from RVC WebUI / Applio, with
its `.index` optionally), an input recording, the conversion options; the result plays in the page.

Works offline: no analytics, no update checks, no hub look-ups, system fonts only. Weights come from
`RVC_WEIGHTS_DIR` like everywhere else (see README).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from infer.lib.audio import AUDIO_EXTENSIONS  # noqa: E402
from infer.lib.options import DEFAULTS, F0_METHODS, OPTION_FIELDS, choices, label  # noqa: E402
from infer.modules.webui import (  # noqa: E402
    FILES_LABEL,
    FORM_OPTIONS,
    RESUME_LABEL,
    URLS_LABEL,
    ConvertService,
    TrainService,
)

AUDIO_UPLOAD_TYPES = [*sorted(AUDIO_EXTENSIONS), ".zip"]
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


def build_ui() -> Any:
    import gradio as gr

    trainer = TrainService()
    converter = ConvertService()

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

    form: dict[str, Any] = {}  # the Train form's option controls, by option name

    with gr.Blocks(title="RVC voice trainer", analytics_enabled=False) as demo:
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
                        form["sample_rate"] = dropdown("sample_rate", "train-sample-rate")
                        form["version"] = dropdown("version", "train-version")
                        form["f0method"] = dropdown("f0method", "train-f0method")
                    with gr.Row():
                        form["epochs"] = number("epochs", "train-epoch")
                        form["batch_size"] = gr.Textbox(
                            value=DEFAULTS["batch_size"], label=label("batch_size"), elem_id="train-batch"
                        )
                        form["save_every_epoch"] = number("save_every_epoch", "train-save-every")
                    with gr.Row():
                        form["enhance_audio"] = checkbox("enhance_audio", "train-enhance")
                        form["trim_silence"] = checkbox("trim_silence", "train-trim")
                        form["include_checkpoints"] = checkbox("include_checkpoints", "train-include-checkpoints")
                        form["keep_other_speakers"] = checkbox("keep_other_speakers", "train-keep-other-speakers")
                    with gr.Row():
                        form["experiment_name"] = gr.Textbox(
                            value=DEFAULTS["experiment_name"], label=label("experiment_name"), elem_id="train-name"
                        )
                        form["seed"] = gr.Textbox(
                            value="", label=label("seed") + " (empty: random)", elem_id="train-seed"
                        )
                    form["resume_from"] = gr.File(label=RESUME_LABEL, file_types=[".zip"], elem_id="train-resume")
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
            inputs=[files, urls, *(form[name] for name in FORM_OPTIONS)],
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

    import gradio as gr

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
        theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        js=FOLLOW_LOG_JS,
        max_file_size="4gb",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
