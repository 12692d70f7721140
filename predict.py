"""The Cog predictor: recordings of one voice in, a zip with a trained RVC voice model out.

`Predictor.setup()` runs once per container: it fetches the base weights when they are not baked
into the image (HuBERT, RMVPE, the default variant's pretrained pair; never more) and loads what every
job shares (`SharedModels`). `Predictor.predict()` checks every input before any long work
(`request_from_inputs`: the options are `infer.lib.options.TrainOptions`), then hands the job to the
job runner (`infer.modules.train.job.run_job`) in a workspace of its own and returns the zip. The
runner's progress goes to the prediction's metrics: `progress.stage`, `progress.stage_index`,
`progress.stage_count`, `progress.epoch`, `progress.epochs` and `progress.eta_s`.

The signature repeats `TrainOptions`' choices, defaults and bounds as literals because cog needs them
so: `cog build` reads predict.py statically and resolves only literals and predict.py's own module-level
constants (an imported default would silently become None, imported choices fail the build).
`tests/test_options.py` checks every one against `TrainOptions`. `dataset_zip` and `epochs` are
deprecated aliases of `dataset` and `epoch`.

Environment (all optional):
- `RVC_WEIGHTS_DIR`, `RVC_WEIGHTS_BASE_URL`, `RVC_OFFLINE`: see `infer/lib/weight_downloader.py`.
- `RVC_JOBS_DIR`: where the per-prediction folders go (default: the system temp dir). Several processes
  may share it: each job folder is locked while in use, and only unlocked ones are purged.
- `RVC_CACHE_DIR`: keep the extraction cache there across jobs, bounded by `RVC_CACHE_MAX_GB`
  (default 20, least recently used first); unset, each job's cache is in its folder and goes with it.
- `RVC_ALLOW_PRIVATE_URLS`, `RVC_DOWNLOAD_DEADLINE_S`: see `infer/lib/urls.py`, `infer/lib/wav_downloader.py`.
- `RVC_TEST_TINY_MODEL=1`: TEST ONLY. Trains a tiny network (hidden width 16, 2 layers) so the HTTP
  API and web UI tests finish on CPU. A model trained this way is useless; never set it in production.
"""

import os
import pathlib
from typing import Any

from cog import BasePredictor, Input, Path

from infer.lib.errors import UserInputError
from infer.lib.log import get_logger, setup_logging
from infer.lib.options import API_NAMES, TrainOptions
from infer.modules.train.job import JobInputs, SharedModels, Workspace, check_zip, run_job

log = get_logger("predict")


def request_from_inputs(
    wav_urls: list[str] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    dataset_zip: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    **api_options: Any,
) -> tuple[TrainOptions, JobInputs]:
    """The Predictor's inputs (API names) checked: the options and the audio, or `UserInputError`.

    `dataset_zip` and `epochs` are the deprecated aliases of `dataset` and `epoch`; giving both names
    of one input with different values is an error.
    """
    if dataset_zip is not None:
        if dataset is not None and pathlib.Path(dataset) != pathlib.Path(dataset_zip):
            raise UserInputError(
                "give the zip as `dataset` or as `dataset_zip` (deprecated), not both", field="dataset"
            )
        dataset = dataset_zip
    if epochs is not None:
        if api_options.get("epoch") is not None and int(api_options["epoch"]) != int(epochs):
            raise UserInputError("give `epoch` or `epochs` (deprecated), not both", field="epochs")
        api_options["epoch"] = epochs
    unknown = sorted(set(api_options) - set(API_NAMES))
    if unknown:
        raise TypeError(f"unknown input(s): {unknown}")
    fields = {API_NAMES[k]: v for k, v in api_options.items() if v is not None or k == "seed"}
    resume = str(check_zip(resume_from, "resume_from")) if resume_from else None
    inputs = JobInputs(urls=tuple(wav_urls or ()), zips=(pathlib.Path(dataset),) if dataset else ())
    if isinstance(fields.get("experiment_name"), str):
        fields["experiment_name"] = fields["experiment_name"].strip()
    return TrainOptions(**fields, resume_from=resume), inputs


class Predictor(BasePredictor):
    """Train an RVC voice model from recordings of one voice; returns a zip with the model and index."""

    def setup(self) -> None:
        """Load what every job shares, once: the base weights (fetched only if missing) and the device."""
        setup_logging()
        self.shared = SharedModels.load()
        self.jobs_base = Workspace.default_base()
        self.workspace: Workspace | None = None  # the last job's: its archive is uploaded after predict()
        log.info("setup done: device %s, jobs under %s", self.shared.device, self.jobs_base)

    def predict(
        self,
        wav_urls: list[str] | None = Input(  # noqa: B008
            default=None,
            description="Links to recordings of the voice to clone (http/https URLs or data: URIs). Any format "
            "ffmpeg reads works: wav, mp3, flac, ogg, m4a, even video files. Give this, `dataset`, or both.",
        ),
        dataset: Path | None = Input(  # noqa: B008
            default=None,
            description="A zip of recordings of the voice (any folder layout and audio format; junk such as "
            "__MACOSX is skipped). Give this, `wav_urls`, or both.",
            accept=".zip",
        ),
        sample_rate: str = Input(
            default="48k",
            choices=["32k", "40k", "48k"],
            description="Sample rate of the model. 48k for clean studio audio, 40k is the common choice, 32k "
            "for phone-quality recordings.",
        ),
        version: str = Input(
            default="v2",
            choices=["v1", "v2"],
            description="RVC model version. v2 (768-dim HuBERT features) sounds better; v1 for old tools.",
        ),
        f0method: str = Input(
            default="rmvpe_gpu",
            choices=["pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu"],
            description="Pitch extraction method. `rmvpe_gpu` recommended (fast and accurate); `rmvpe` is the "
            "same on CPU; crepe/fcpe are neural alternatives; pm, dio and harvest are classic and faster.",
        ),
        epoch: int = Input(
            default=10,
            ge=1,
            le=1000,
            description="Training epochs (passes over the dataset). 10-20 for a quick test, 100-300 for a "
            "good voice from 10+ minutes of audio.",
        ),
        batch_size: str = Input(
            default="7",
            regex="^\\s*([Aa][Uu][Tt][Oo]|[0-9]+)\\s*$",
            description="Segments per training step: a whole number (e.g. 7) or 'auto' to pick from free GPU "
            "memory. Lower it if training runs out of memory.",
        ),
        enhance_audio: bool = Input(
            default=True,
            description="Remove background noise and reverb with MossFormer2 before training. Turn off for "
            "already clean studio recordings.",
        ),
        trim_silence: bool = Input(
            default=True,
            description="Trim leading and trailing silence from each recording (pauses inside are kept).",
        ),
        experiment_name: str = Input(
            default="rvc_model",
            description="Name of the voice model: names the files in the zip (`<name>.pth`, the index). "
            "Letters, digits, '_', '-' and '.'.",
        ),
        save_every_epoch: int = Input(
            default=50,
            ge=1,
            le=1000,
            description="Save a training checkpoint every N epochs (the last epoch is always saved).",
        ),
        resume_from: Path | None = Input(  # noqa: B008
            default=None,
            description="Continue training from a zip this model returned earlier with include_checkpoints "
            "on. `epoch` counts the total, so pick a larger number than before.",
            accept=".zip",
        ),
        include_checkpoints: bool = Input(
            default=False,
            description="Also put the full training checkpoints (G/D, several hundred MB) in the zip, so "
            "training can continue later with resume_from.",
        ),
        seed: int | None = Input(
            default=None,
            ge=0,
            le=4294967295,
            description="Random seed for reproducible training. Leave empty for a random one.",
        ),
        keep_other_speakers: bool = Input(
            default=False,
            description="Files whose voice sounds like another person's (speaker similarity to the dataset's "
            "main voice under 0.70) are named in the log and left out of training; turn this on to keep them.",
        ),
        dataset_zip: Path | None = Input(  # noqa: B008
            default=None,
            description="Deprecated: the same as `dataset` (the name other RVC trainers use). Give the zip as "
            "`dataset` instead.",
            deprecated=True,
            accept=".zip",
        ),
        epochs: int | None = Input(
            default=None,
            ge=1,
            le=1000,
            description="Deprecated: the same as `epoch` (this project's command-line flag). Give the number "
            "of epochs as `epoch` instead.",
            deprecated=True,
        ),
    ) -> Path:
        """Train a voice model and return the zip (model `.pth`, index, reports, preview)."""
        given = {k: v for k, v in locals().items() if k != "self"}  # every input, by its API name
        options, inputs = request_from_inputs(**given)
        scope = self.scope  # the prediction's metrics; events may come from the job's threads

        def on_event(ev: Any) -> None:
            for key, value in ev.metrics().items():
                scope.record_metric(f"progress.{key}", value)

        if self.workspace is not None:  # the previous job's archive has been handed over by now
            self.workspace.release()
        self.workspace = Workspace.create(self.jobs_base)
        result = run_job(options, inputs, self.workspace, shared_models=self.shared, on_event=on_event)
        assert result.zip_path is not None
        return Path(result.zip_path)
