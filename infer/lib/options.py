"""The options of one training job, written once: `TrainOptions`.

Every front end takes its options from here: the Predictor's inputs (cog needs literal values in the
signature, so `tests/test_options.py` checks the signature against this class), `tools/train.py`'s
flags (built from the fields), the web UI's form (labels, choices and defaults read from here) and the
pipeline (it runs on a `TrainOptions`). Each field's metadata holds its form label (`label`; errors name
fields by it), its name in the cog API when that differs (`api`), its bounds (`ge`, `le`) and whether
the cog API exposes it (`public`).

The defaults are the seed's API defaults: sample_rate 48k, v2, rmvpe_gpu, 10 epochs, batch size "7",
a checkpoint every 50 epochs, enhancement and trimming on, a random seed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from infer.lib.errors import UserInputError

SampleRate = Literal["32k", "40k", "48k"]
Version = Literal["v1", "v2"]
F0Method = Literal["pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu"]

SAMPLE_RATES: tuple[str, ...] = get_args(SampleRate)
VERSIONS: tuple[str, ...] = get_args(Version)
F0_METHODS: tuple[str, ...] = get_args(F0Method)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BATCH_RE = re.compile(r"^\s*([Aa][Uu][Tt][Oo]|[0-9]+)\s*$")
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 128
MAX_SEED = 2**32 - 1


def _opt(default: Any, label: str, *, api: str | None = None, public: bool = True, **bounds: Any) -> Any:
    return field(default=default, metadata={"label": label, "api": api, "public": public, **bounds})


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training job.

    sample_rate / version: the model variant. f0method: pitch method (`rmvpe_gpu` runs RMVPE on the
    CPU where there is no GPU, see `for_device`). epochs: total epochs (a resumed run continues up to
    this number; the cog API calls it `epoch`). batch_size: segments per step and GPU, an int or
    "auto" (text as the API takes it is parsed here). save_every_epoch: checkpoint interval.
    enhance_audio / trim_silence: preprocessing steps. experiment_name: names the files in the zip.
    resume_from: a zip this pipeline wrote with checkpoints in it. include_checkpoints: put the G/D
    checkpoints in the zip. seed: data order, held-out choice, initialisation (None: the runner picks
    one and logs it). keep_other_speakers: train on files whose voice the data check finds to be another
    person's too. Not in the cog API: use_f0 (pitch-guided model), device ("cpu", "cuda",
    "cuda:1", None = best available), gpus (DDP processes, 0 = every GPU), from_scratch (no pretrained
    G/D), learning_rate (override), holdout (held-out segments, None = automatic), preview (convert a
    held-out clip into `preview.wav`), speaker_id (written to the filelist).
    """

    sample_rate: SampleRate = _opt("48k", "Sample rate")
    version: Version = _opt("v2", "Version")
    f0method: F0Method = _opt("rmvpe_gpu", "Pitch method")
    epochs: int = _opt(10, "Epochs", api="epoch", ge=1, le=MAX_EPOCHS)
    batch_size: int | str = _opt("7", "Batch size", ge=1, le=MAX_BATCH_SIZE)
    enhance_audio: bool = _opt(True, "Enhance audio (denoise)")
    trim_silence: bool = _opt(True, "Trim silence")
    experiment_name: str = _opt("rvc_model", "Model name")
    save_every_epoch: int = _opt(50, "Save every N epochs", ge=1, le=MAX_EPOCHS)
    resume_from: str | None = _opt(None, "Resume from (a zip with checkpoints)")
    include_checkpoints: bool = _opt(False, "Include checkpoints in the zip")
    seed: int | None = _opt(None, "Seed", ge=0, le=MAX_SEED)
    keep_other_speakers: bool = _opt(False, "Keep files of other speakers")
    use_f0: bool = _opt(True, "Pitch-guided model", public=False)
    device: str | None = _opt(None, "Device", public=False)
    gpus: int = _opt(0, "GPUs", public=False, ge=0)
    from_scratch: bool = _opt(False, "Train from scratch", public=False)
    learning_rate: float | None = _opt(None, "Learning rate", public=False)
    holdout: int | None = _opt(None, "Held-out segments", public=False, ge=0)
    preview: bool = _opt(True, "Preview", public=False)
    speaker_id: int = _opt(0, "Speaker id", public=False, ge=0, le=108)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, msg: str) -> None:
            if not ok:
                raise UserInputError(f"{name} {msg}", field=name)

        for name in ("sample_rate", "version", "f0method"):
            value, allowed = getattr(self, name), choices(name)
            need(value in allowed, name, f"must be one of {', '.join(allowed)}, got {value!r}")
        need(
            bool(NAME_RE.match(str(self.experiment_name))),
            "experiment_name",
            "names the files in the zip: 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit; "
            f"got {self.experiment_name!r}",
        )
        object.__setattr__(self, "batch_size", parse_batch_size(self.batch_size))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            lo, hi = f.metadata.get("ge"), f.metadata.get("le")
            if f.name == "batch_size" or value is None or (lo is None and hi is None):
                continue
            need(
                isinstance(value, int) and not isinstance(value, bool), f.name, f"must be a whole number, got {value!r}"
            )
            if hi is None:
                need(value >= lo, f.name, f"must be >= {lo}, got {value}")
            else:
                need(lo <= value <= hi, f.name, f"must be between {lo} and {hi}, got {value}")
        need(
            self.learning_rate is None or self.learning_rate > 0,
            "learning_rate",
            f"must be > 0, got {self.learning_rate}",
        )
        if self.resume_from is not None:
            need(
                Path(self.resume_from).is_file(), "resume_from", f"must be a file; {Path(self.resume_from).name} is not"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_device(self, device: Any) -> TrainOptions:
        """These options as they run on `device`: `rmvpe_gpu` without a GPU runs RMVPE on the CPU (same
        numbers, slower)."""
        if self.f0method == "rmvpe_gpu" and not str(device).startswith("cuda"):
            return dataclasses.replace(self, f0method="rmvpe")
        return self


def parse_batch_size(value: str | int) -> int | str:
    """`"auto"` or a whole number 1..MAX_BATCH_SIZE (text matching the API's `BATCH_RE`, or an int)."""
    if isinstance(value, bool):
        raise UserInputError(f"batch_size must be a whole number (e.g. 7) or 'auto', got {value!r}", field="batch_size")
    m = BATCH_RE.match(str(value))
    if m is None:
        raise UserInputError(f"batch_size must be a whole number (e.g. 7) or 'auto', got {value!r}", field="batch_size")
    text = m.group(1).lower()
    if text == "auto":
        return "auto"
    n = int(text)
    if not 1 <= n <= MAX_BATCH_SIZE:
        raise UserInputError(
            f"batch_size must be between 1 and {MAX_BATCH_SIZE} (or 'auto'), got {n}", field="batch_size"
        )
    return n


OPTION_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainOptions)}
DEFAULTS: dict[str, Any] = {n: f.default for n, f in OPTION_FIELDS.items()}
# API input name -> field name, for the public options (the cog API calls `epochs` "epoch")
API_NAMES: dict[str, str] = {
    (f.metadata["api"] or n): n for n, f in OPTION_FIELDS.items() if f.metadata.get("public", True)
}


def label(name: str) -> str:
    """The form label of an option (or of an API input name); the name itself when it has none."""
    f = OPTION_FIELDS.get(API_NAMES.get(name, name))
    return f.metadata["label"] if f is not None else name


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of a Literal-typed option (its type annotation's arguments)."""
    return get_args(get_type_hints(TrainOptions)[name])
