"""The training stage: GAN training of the synthesizer on one process, or several with DDP.

Reference semantics (RVC WebUI 20240604): AdamW (lr, betas, eps from the config), ExponentialLR
stepped once per epoch (`lr_decay`), loss = adversarial + feature matching + `c_mel` * mel L1 +
`c_kl` * KL, length-bucketed batches, random segment slicing inside the generator, warm start from
the pretrained G/D of the variant.

On top of that:
- precision from `infer.lib.device.training_precision` (bf16 autocast on GPUs with native bf16, fp16 +
  GradScaler on other tensor-core GPUs, fp32 on the CPU), TF32 on Ampere and newer; a step whose loss or
  gradients are not finite is skipped and counted, except the GradScaler's own overflow steps while it
  lowers its scale (counted apart, `scaler_overflows` in the epoch history);
- DDP over several processes (NCCL on CUDA, gloo on CPU) spawned with torch.multiprocessing, or
  started by `torchrun` (reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT);
- `batch_size="auto"` from free GPU memory (`batch_size.AUTO_BATCH`), the minimum over the DDP ranks; a
  GPU out-of-memory (`infer.lib.device.is_out_of_memory`) halves the batch and retries the epoch (single
  process), down to 1, from a consistent state: gradients cleared, a fresh GradScaler with the last
  scale, the step counters of the lost partial epoch taken back;
- checkpoints `G_<step>.pth` / `D_<step>.pth` in the reference layout (`iteration` = completed epochs)
  every `save_every_epoch` epochs and at the end, atomic, only the latest kept, plus `train_state.json`
  (`state.TrainState`: step, scheduler, scaler, history) so a resumed run continues exactly;
- a few held-out segments scored each epoch (mel L1 of the conversion path against the real audio);
  the small model of the best held-out epoch is exported beside the final one;
- a log line every `log_every` steps and per epoch (losses, lr, steps/s, ETA), tqdm in a terminal,
  TensorBoard event files; cancellation (an Event or SIGTERM) saves a checkpoint and raises
  `CancelledError` at the next step.

Where each part lives: this module holds the stage's settings, report and entry point `train`;
`launch` starts the processes (in this one, spawned DDP workers, or under torchrun); `loop` is one
process's training (`_Trainer`: setup, step, epoch, held-out score, checkpoints, export); `state` the
resume state; `batch_size` the batch size per process; `data` the segments, batches and sampler.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from infer.lib.config import RVCConfig, config_from_dict
from infer.lib.device import PRECISIONS, pick_device
from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout

REPORT_FILE = "train.json"


@dataclass(frozen=True)
class TrainSettings:
    """What the training stage needs besides the experiment folder's files (all picklable).

    The network configuration is read from `exp.config_path` (the reference JSON layout).
    `batch_size`: per process, an int or "auto". `world_size`: processes (0 = one per visible GPU,
    1 on CPU). `precision`: "auto" (by device) or a forced "fp32" / "fp16" / "bf16". `pretrained_g/d`: warm-start files; both None only with `from_scratch=True`.
    `learning_rate`: overrides the config's. `holdout`: held-out segments (None = automatic).
    `memory_limit_mb`: datasets estimated below this are kept in memory, larger ones stream.
    `log_every`: steps between progress lines (None = the config's `log_interval`, at most one
    tenth of an epoch's steps). `discriminator_periods`: a smaller multi-period discriminator than
    the version's (tests and experiments from scratch; the pretrained D files need the standard one).
    """

    exp_root: str
    version: str
    sample_rate: str
    use_f0: bool
    name: str
    epochs: int
    batch_size: int | str = "auto"
    save_every_epoch: int = 10
    pretrained_g: str | None = None
    pretrained_d: str | None = None
    from_scratch: bool = False
    seed: int = 1234
    device: str | None = None
    world_size: int = 0
    learning_rate: float | None = None
    holdout: int | None = None
    memory_limit_mb: int = 2048
    num_workers: int = 4
    log_every: int | None = None
    speaker_id: int = 0
    export_extras: dict[str, Any] = field(default_factory=dict)
    discriminator_periods: tuple[int, ...] | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserInputError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.epochs < 1:
            raise UserInputError(f"epochs must be >= 1, got {self.epochs}")
        if self.save_every_epoch < 1:
            raise UserInputError(f"save_every_epoch must be >= 1, got {self.save_every_epoch}")
        bs = self.batch_size
        if not (bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1)):
            raise UserInputError(f"batch_size must be a positive integer or 'auto', got {bs!r}")
        if not self.from_scratch and (not self.pretrained_g or not self.pretrained_d):
            raise UserInputError(
                "training needs the pretrained generator and discriminator (pretrained_g/pretrained_d); "
                "training from scratch must be asked for explicitly (from_scratch=True)"
            )
        if self.discriminator_periods is not None and not self.from_scratch:
            raise UserInputError("discriminator_periods other than the version's only fit training from scratch")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserInputError(f"learning_rate must be > 0, got {self.learning_rate}")

    @property
    def exp(self) -> ExperimentLayout:
        return ExperimentLayout(Path(self.exp_root), self.version)


@dataclass(frozen=True)
class TrainReport:
    """The outcome of the training stage (losses are means over an epoch; mel losses are plain L1)."""

    start_epoch: int
    epochs: int
    steps: int
    batch_size: int
    world_size: int
    device: str
    precision: str
    n_train_segments: int
    n_holdout_segments: int
    holdout_segments: list[str]
    in_memory: bool
    skipped_steps: int
    final_losses: dict[str, float]
    initial_holdout_mel: float | None
    final_holdout_mel: float | None
    best_epoch: int | None
    best_holdout_mel: float | None
    model_path: str
    best_model_path: str | None
    checkpoint_g: str
    checkpoint_d: str
    history: list[dict[str, Any]]
    seconds: float
    from_scratch: bool
    standin_weights: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainReport:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def load_run_config(exp: ExperimentLayout, version: str, sample_rate: str) -> RVCConfig:
    """The experiment's `config.json` as an `RVCConfig`."""
    path = exp.config_path
    if not path.is_file():
        raise UserInputError(f"{path} is missing: the pipeline writes it before training")
    return config_from_dict(json.loads(path.read_text()), version, sample_rate, source=str(path))


def train(settings: TrainSettings, cancel: threading.Event | None = None, log_file: str | None = None) -> TrainReport:
    """The training stage. Runs in this process, or spawns `world_size` DDP processes, or (under
    `torchrun`, WORLD_SIZE set) runs as this process's rank. Returns rank 0's `TrainReport`.

    `cancel`: set it (or send SIGTERM) to stop at the next step; a checkpoint is saved and
    `CancelledError` raised.
    """
    from infer.modules.train.launch import run_here, spawn_workers

    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        return run_here(settings, rank, world, int(os.environ.get("LOCAL_RANK", rank)), cancel)
    dev = pick_device(settings.device)
    world = settings.world_size
    if world <= 0:
        world = max(1, torch.cuda.device_count()) if dev.type == "cuda" else 1
    if world == 1:
        return run_here(settings, 0, 1, 0, cancel)
    return spawn_workers(settings, world, cancel, log_file)
