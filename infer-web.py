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


def option_control(name: str, elem_id: str) -> Any:
    """The form control of a `TrainOptions` field: a dropdown of its choices, a checkbox, a whole
    number within its bounds, or a text box (batch_size: a number or "auto"); label and default from
    `infer.lib.options`."""
    import gradio as gr

    f = OPTION_FIELDS[name]
    if name in ("sample_rate", "version", "f0method"):
        return gr.Dropdown(list(choices(name)), value=DEFAULTS[name], label=label(name), elem_id=elem_id)
    if isinstance(DEFAULTS[name], bool):
        return gr.Checkbox(value=DEFAULTS[name], label=label(name), elem_id=elem_id)
    if isinstance(DEFAULTS[name], int):
        lo, hi = f.metadata.get("ge"), f.metadata.get("le")
        return gr.Number(value=DEFAULTS[name], minimum=lo, maximum=hi, precision=0, label=label(name), elem_id=elem_id)
    return gr.Textbox(value=DEFAULTS[name], label=label(name), elem_id=elem_id)


def train_tab() -> dict[str, Any]:
    """The Train tab's controls: `files`, `urls`, one per `FORM_OPTIONS` name, the buttons and the outputs."""
    import gradio as gr

    c: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            c["files"] = gr.File(
                label=FILES_LABEL, file_count="multiple", file_types=AUDIO_UPLOAD_TYPES, elem_id="train-files"
            )
            c["urls"] = gr.Textbox(label=URLS_LABEL, lines=3, elem_id="train-urls")
            with gr.Row():
                c["sample_rate"] = option_control("sample_rate", "train-sample-rate")
                c["version"] = option_control("version", "train-version")
                c["f0method"] = option_control("f0method", "train-f0method")
            with gr.Row():
                c["epochs"] = option_control("epochs", "train-epoch")
                c["batch_size"] = option_control("batch_size", "train-batch")
                c["save_every_epoch"] = option_control("save_every_epoch", "train-save-every")
            with gr.Row():
                c["enhance_audio"] = option_control("enhance_audio", "train-enhance")
                c["trim_silence"] = option_control("trim_silence", "train-trim")
                c["include_checkpoints"] = option_control("include_checkpoints", "train-include-checkpoints")
                c["keep_other_speakers"] = option_control("keep_other_speakers", "train-keep-other-speakers")
            with gr.Row():
                c["experiment_name"] = option_control("experiment_name", "train-name")
                c["seed"] = gr.Textbox(value="", label=label("seed") + " (empty: random)", elem_id="train-seed")
            c["resume_from"] = gr.File(label=RESUME_LABEL, file_types=[".zip"], elem_id="train-resume")
            with gr.Row():
                c["train"] = gr.Button("Train", variant="primary", elem_id="train-button")
                c["cancel"] = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
        with gr.Column():
            c["status"] = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="train-status")
            c["log"] = gr.Textbox(
                label="Log", lines=18, max_lines=18, interactive=False, autoscroll=True, elem_id="train-log"
            )
            c["result"] = gr.File(label="Trained model (zip)", interactive=False, elem_id="train-result")
            c["preview"] = gr.Audio(
                label="Preview: some of your held-out audio in the trained voice",
                type="filepath",
                interactive=False,
                elem_id="train-preview",
            )
    return c


def convert_tab() -> tuple[list[Any], Any, list[Any]]:
    """The Convert tab: (its inputs in `ConvertService.run`'s order, the button, [result audio, status])."""
    import gradio as gr

    with gr.Row():
        with gr.Column():
            inputs = [
                gr.File(
                    label="Voice model: the zip from Train, or a .pth",
                    file_types=[".zip", ".pth"],
                    elem_id="convert-model",
                ),
                gr.File(label="Index (.index, optional)", file_types=[".index"], elem_id="convert-index"),
                gr.Audio(
                    label="Audio to convert", type="filepath", sources=["upload", "microphone"], elem_id="convert-input"
                ),
            ]
            with gr.Row():
                inputs.append(gr.Slider(-24, 24, value=0, step=1, label="Pitch shift (semitones)"))
                inputs.append(
                    gr.Dropdown(
                        [m for m in F0_METHODS if m != "rmvpe_gpu"],
                        value="rmvpe",
                        label="Pitch method",
                        elem_id="convert-f0method",
                    )
                )
            with gr.Row():
                inputs.append(gr.Slider(0, 1, value=0.75, step=0.05, label="Index rate"))
                inputs.append(gr.Slider(0, 7, value=3, step=1, label="Pitch median filter radius"))
            with gr.Row():
                rates = [0, 16000, 22050, 32000, 40000, 44100, 48000]
                inputs.append(gr.Dropdown(rates, value=0, label="Output rate (0: model's)"))
                inputs.append(gr.Slider(0, 1, value=0.25, step=0.05, label="Volume envelope mix"))
                inputs.append(gr.Slider(0, 0.5, value=0.33, step=0.01, label="Protect consonants"))
            button = gr.Button("Convert", variant="primary", elem_id="convert-button")
        with gr.Column():
            status = gr.Textbox(label="Status", interactive=False, elem_id="convert-status")
            audio_out = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="convert-output")
    return inputs, button, [audio_out, status]


def build_ui() -> Any:
    """The page: the Train and Convert tabs wired to one `TrainService` and one `ConvertService`."""
    import gradio as gr

    trainer = TrainService()
    converter = ConvertService()
    with gr.Blocks(title="RVC voice trainer", analytics_enabled=False) as demo:
        gr.Markdown(
            "# RVC voice trainer\nTrain a voice model from recordings of one voice, then convert audio with it."
        )
        with gr.Tab("Train", id="train"):
            t = train_tab()
        with gr.Tab("Convert", id="convert"):
            convert_inputs, convert_btn, convert_outputs = convert_tab()
        # the finished model goes to the Convert tab's model input
        train_outputs = [t["log"], t["status"], t["result"], convert_inputs[0], t["preview"]]
        # a job outlives the tab that started it: these events only watch it, so they never queue
        # behind each other (the service runs one job at a time by itself)
        attached = demo.load(trainer.attach, outputs=train_outputs, concurrency_limit=None)
        t["train"].click(
            trainer.start,
            inputs=[t["files"], t["urls"], *(t[name] for name in FORM_OPTIONS)],
            outputs=train_outputs,
            concurrency_limit=None,
            cancels=[attached],  # this click's own stream takes over from the page-load one
        )
        t["cancel"].click(trainer.cancel, outputs=[t["status"]], concurrency_limit=None)
        convert_btn.click(converter.run, inputs=convert_inputs, outputs=convert_outputs, concurrency_limit=1)
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
