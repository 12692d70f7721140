"""The training loop: GAN training of the synthesizer on one process, or several with DDP.

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
- `batch_size="auto"` from free GPU memory (`AUTO_BATCH`), the minimum over the DDP ranks; a GPU
  out-of-memory (`infer.lib.device.is_out_of_memory`) halves the batch and retries the epoch (single
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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from infer.lib.checkpoint import unwrap_model
from infer.lib.config import RVCConfig, config_from_dict
from infer.lib.device import (
    PRECISIONS,
    Precision,
    enable_tf32,
    is_out_of_memory,
    pick_device,
    release_memory,
    training_precision,
)
from infer.lib.errors import CancelledError, UserInputError
from infer.lib.fileio import atomic_write_text
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger, is_terminal
from infer.lib.models.commons import slice_segments
from infer.modules.train.data import (
    Batch,
    BucketBatchSampler,
    SegmentDataset,
    collate,
    estimate_sample_bytes,
    split_holdout,
    wav_frames,
)
from infer.modules.train.filelist import FilelistEntry, read_filelist
from infer.modules.train.state import (
    REFERENCE_LATEST_STEP,
    TrainState,
    latest_checkpoints,
    read_state,
    state_path,
)

_log = get_logger("train")

REPORT_FILE = "train.json"
GiB = 1 << 30


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


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def load_run_config(exp: ExperimentLayout, version: str, sample_rate: str) -> RVCConfig:
    """The experiment's `config.json` as an `RVCConfig`."""
    path = exp.config_path
    if not path.is_file():
        raise UserInputError(f"{path} is missing: the pipeline writes it before training")
    return config_from_dict(json.loads(path.read_text()), version, sample_rate, source=str(path))


def _fmt_secs(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


@dataclass(frozen=True)
class AutoBatch:
    """The memory model of `batch_size="auto"` (all its constants).

    GPU memory of one training process = `fixed_bytes` (G, D, optimizer states, workspace) + batch x
    `per_item_bytes` (activations of one segment, proportional to the slice length). Only `usable` of
    the free memory is planned for. The figures (1.2 GiB a segment at 40k in half precision, 1.6x in
    fp32, 2.5 GiB fixed) are NOT measured yet and err high: a GPU measurement once found about 0.5 GiB
    a segment in fp32; `python -m bench.gpu_check` measures peak memory at batch 1/2/4/8 to set them.
    An out-of-memory still halves the batch and retries.
    """

    per_item_gib_half: float = 1.2  # at `ref_segment_size` samples
    ref_segment_size: int = 12800  # the 40k slice
    fp32_factor: float = 1.6
    fixed_gib: float = 2.5
    usable: float = 0.9
    cpu_batch: int = 4
    max_batch: int = 32

    @property
    def fixed_bytes(self) -> float:
        return self.fixed_gib * GiB

    def per_item_bytes(self, cfg: RVCConfig, half: bool) -> float:
        scale = cfg.train.segment_size / self.ref_segment_size
        return self.per_item_gib_half * GiB * scale * (1.0 if half else self.fp32_factor)


AUTO_BATCH = AutoBatch()


def auto_batch_size(cfg: RVCConfig, device: torch.device, precision: Precision, n_segments: int, world: int) -> int:
    """This process's batch size from its free GPU memory (`AUTO_BATCH`; 4 on CPU), at most 32 and at
    most the segments per process."""
    a = AUTO_BATCH
    if device.type != "cuda":
        bs = a.cpu_batch
    else:
        free, _total = torch.cuda.mem_get_info(device)
        per_item = a.per_item_bytes(cfg, half=precision.autocast_dtype is not None)
        bs = int((free * a.usable - a.fixed_bytes) // per_item)
    return max(1, min(bs, a.max_batch, max(1, n_segments // max(1, world))))


def choose_batch_size(
    cfg: RVCConfig, requested: int | str, device: torch.device, precision: Precision, n_segments: int, world: int
) -> int:
    """The batch size per process: `requested`, or for "auto" the smallest `auto_batch_size` over the
    ranks of the process group (ranks see different free memory: rank 0 also holds the parent's models,
    and ranks with different batches take different numbers of steps, then block in a collective)."""
    if requested != "auto":
        return int(requested)
    bs = auto_batch_size(cfg, device, precision, n_segments, world)
    if world > 1 and dist.is_initialized():
        on = device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([bs], dtype=torch.long, device=on)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        bs = int(t.item())
    return bs


def _finite_grad_norm(params: list[torch.nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch.stack([g.detach().float().norm(2) for g in grads])
    return float(norms.norm(2))


# --------------------------------------------------------------------------------------------------
# The worker: one process of (possibly distributed) training
# --------------------------------------------------------------------------------------------------


class _Trainer:
    def __init__(self, s: TrainSettings, rank: int, world: int, local_rank: int, cancel: Any) -> None:
        self.s = s
        self.rank = rank
        self.world = world
        self.cancel = cancel
        self.exp = s.exp
        self.cfg = load_run_config(self.exp, s.version, s.sample_rate)
        if s.learning_rate is not None:
            self.cfg = dataclasses.replace(
                self.cfg, train=dataclasses.replace(self.cfg.train, learning_rate=s.learning_rate)
            )
        dev = worker_device(s.device, world, local_rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            enable_tf32()
        self.device = dev
        self.precision = training_precision(dev, s.precision)
        self.is_main = rank == 0
        self.standin = False

    # ---------------------------------------------------------------- data
    def setup_data(self) -> None:
        entries = read_filelist(self.exp.filelist_path)
        if entries[0].use_f0 != self.s.use_f0:
            raise UserInputError(
                f"{self.exp.filelist_path} was written {'with' if entries[0].use_f0 else 'without'} pitch "
                f"but this run trains a model {'with' if self.s.use_f0 else 'without'} pitch"
            )
        dim = np.load(entries[0].feature, mmap_mode="r", allow_pickle=False).shape[-1]
        if dim != self.cfg.content_dim:
            raise UserInputError(
                f"{entries[0].feature} holds {dim}-dim content features but a {self.cfg.version} model takes "
                f"{self.cfg.content_dim}-dim ones: extract features again with the real HuBERT base for {self.cfg.version}"
            )
        train_e, held_e = split_holdout(entries, self.s.holdout, self.s.seed)
        self.train_entries: list[FilelistEntry] = train_e
        self.held_entries: list[FilelistEntry] = held_e
        frames = sum(wav_frames(str(e.gt_wav), self.cfg.data.hop_length) for e in entries)
        est = estimate_sample_bytes(self.cfg, frames)
        self.in_memory = est <= self.s.memory_limit_mb * (1 << 20)
        store = self.device if (self.in_memory and self.device.type == "cuda") else torch.device("cpu")
        self.train_ds = SegmentDataset(train_e, self.cfg, in_memory=self.in_memory, device=store)
        self.held_ds = SegmentDataset(held_e, self.cfg, in_memory=True, device=torch.device("cpu"))
        if self.is_main:
            _log.info(
                "data: %d training entries (%d mute), %d held out; %.0f MB of tensors -> %s",
                len(train_e),
                sum(e.is_mute for e in train_e),
                len(held_e),
                est / 2**20,
                f"kept in {'GPU ' if store.type == 'cuda' else ''}memory" if self.in_memory else "streamed from disk",
            )
        if self.in_memory:
            self.train_ds.preload()

    def make_loader(self, batch_size: int, epoch: int) -> tuple[BucketBatchSampler, Any]:
        sampler = BucketBatchSampler(
            self.train_ds.lengths, batch_size, num_replicas=self.world, rank=self.rank, seed=self.s.seed
        )
        sampler.set_epoch(epoch)
        if sampler.dropped and self.is_main and not getattr(self, "_warned_dropped", False):
            self._warned_dropped = True
            _log.warning("data: %d segment(s) of 0.75 s or less are not used for training", len(sampler.dropped))
        if self.in_memory:
            loader: Any = (collate([self.train_ds[i] for i in ids]) for ids in sampler)
        else:
            from torch.utils.data import DataLoader

            nw = self.s.num_workers
            loader = DataLoader(
                self.train_ds,
                batch_sampler=sampler,
                collate_fn=collate,
                num_workers=nw,
                pin_memory=self.device.type == "cuda",
                persistent_workers=False,
                prefetch_factor=4 if nw > 0 else None,
            )
        return sampler, loader

    # ---------------------------------------------------------------- models
    def setup_models(self) -> None:
        from infer.lib.models.discriminator import build_discriminator
        from infer.lib.models.synthesizer import build_generator

        torch.manual_seed(self.s.seed)
        self.net_g = build_generator(self.cfg, self.s.use_f0).to(self.device)
        if self.s.discriminator_periods:
            from infer.lib.models.discriminator import MultiPeriodDiscriminator

            self.net_d = MultiPeriodDiscriminator(tuple(self.s.discriminator_periods)).to(self.device)
        else:
            self.net_d = build_discriminator(self.cfg.version).to(self.device)
        t = self.cfg.train
        # fused: one kernel over all parameters (CPU and CUDA); the per-tensor loop costs 3-4x the time
        # (v2/40k G+D on the 2-core CPU: 1.3 instead of 4-6 CPU seconds per step, bench/README.md)
        adamw = {"betas": t.betas, "eps": t.eps, "fused": self.device.type in ("cpu", "cuda")}
        self.optim_g = torch.optim.AdamW(self.net_g.parameters(), t.learning_rate, **adamw)
        self.optim_d = torch.optim.AdamW(self.net_d.parameters(), t.learning_rate, **adamw)
        self.start_epoch = 1
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: tuple[int, float] | None = None
        self.best_model_path: str | None = None
        self.skipped = 0
        self.scaler_overflows = 0
        self.initial_holdout: float | None = None
        state = None
        found = latest_checkpoints(self.exp)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=t.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=t.lr_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)
        if found is not None:
            from infer.lib.checkpoint import load_checkpoint

            g_path, d_path, state = found
            it_g, _ = load_checkpoint(g_path, self.net_g, self.optim_g)
            it_d, _ = load_checkpoint(d_path, self.net_d, self.optim_d)
            epochs_done = int(it_g)
            if state is not None:
                self.step = state.step
                epochs_done = state.epoch
                self.sched_g.load_state_dict(state.scheduler_g)
                self.sched_d.load_state_dict(state.scheduler_d)
                if state.scaler and self.precision.use_grad_scaler:
                    self.scaler.load_state_dict(state.scaler)
                self.history = list(state.history)
                if state.best_epoch is not None and state.best_holdout_mel is not None:
                    self.best = (state.best_epoch, state.best_holdout_mel)
                self.best_model_path = state.best_model_path
                self.skipped = state.skipped_steps
                self.initial_holdout = state.initial_holdout_mel
            else:
                # A reference-made checkpoint: `iteration` is the epoch; the lr was saved in the optimizer.
                stem = g_path.stem.split("_", 1)[1]
                self.step = int(stem) if stem.isdigit() and int(stem) != REFERENCE_LATEST_STEP else 0
                for sch in (self.sched_g, self.sched_d):
                    sch.last_epoch = epochs_done
                    sch.base_lrs = [t.learning_rate for _ in sch.base_lrs]
            self.start_epoch = epochs_done + 1
            if self.is_main:
                _log.info(
                    "resuming from %s / %s: %d epoch(s) and %d step(s) done, lr %.3e",
                    g_path.name,
                    d_path.name,
                    epochs_done,
                    self.step,
                    self.optim_g.param_groups[0]["lr"],
                )
        elif self.s.from_scratch:
            if self.is_main:
                bar = "!" * 78
                _log.warning(bar)
                _log.warning("training FROM SCRATCH (no pretrained G/D): expect hours of training for a usable voice")
                _log.warning(bar)
        else:
            from infer.lib.checkpoint import load_pretrained

            variant = f"{self.cfg.version} {self.cfg.sample_rate} {'f0' if self.s.use_f0 else 'nof0'}"
            for path, model, kind in ((self.s.pretrained_g, self.net_g, "G"), (self.s.pretrained_d, self.net_d, "D")):
                res = load_pretrained(path, model, kind, variant)
                if isinstance(res, str) and res:
                    self.standin = True
                if self.is_main:
                    _log.info("warm start: pretrained %s from %s", kind, path)
        if state is not None and state.standin_weights:
            self.standin = True
        self._start_epoch = self.start_epoch
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_g = DDP(self.net_g, device_ids=ids)
            self.net_d = DDP(self.net_d, device_ids=ids)

    # ---------------------------------------------------------------- one step
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.autocast_dtype)

    def adversarial_losses(self, wave: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's adversarial and feature-matching losses, (loss_gen, loss_fm) float32 scalars, for
        real `wave` and generated `y_hat` [B, 1, N].

        The discriminator only judges here, so it runs frozen and outside DDP: the gradients of its weights
        would be thrown away (its step starts from zero) and all-reduced for nothing. The real audio runs
        without autograd (feature matching detaches it). The losses and the generator's gradients are those
        of `net_d(wave, y_hat)` with a trainable discriminator (the reference's formulation) to float
        rounding, for about a quarter less discriminator work per step.
        """
        from infer.lib.losses import feature_loss, generator_loss

        net_d = unwrap_model(self.net_d)
        params = list(net_d.parameters())
        flags = [p.requires_grad for p in params]
        net_d.requires_grad_(False)
        try:
            with self.autocast():
                with torch.no_grad():
                    _, fmap_r = net_d.run(wave)
                y_d_g, fmap_g = net_d.run(y_hat.to(wave.dtype))
        finally:
            for p, flag in zip(params, flags, strict=True):
                p.requires_grad_(flag)
        with torch.autocast(self.device.type, enabled=False):
            loss_gen, _ = generator_loss(y_d_g)
            return loss_gen, feature_loss(fmap_r, fmap_g)

    def train_step(self, b: Batch) -> dict[str, float] | None:
        from infer.lib.losses import discriminator_loss, kl_loss
        from infer.lib.mel import mel_spectrogram, spec_to_mel

        cfg = self.cfg
        seg_frames = cfg.segment_frames
        with self.autocast():
            y_hat, ids_slice, _x_mask, z_mask, (_z, z_p, m_p, logs_p, _m_q, logs_q) = self.net_g(
                b.phone, b.phone_lengths, b.pitch, b.pitchf, b.spec, b.spec_lengths, b.sid
            )
        with torch.autocast(self.device.type, enabled=False):
            mel = spec_to_mel(b.spec.float(), cfg.data)
            y_mel = slice_segments(mel, ids_slice, seg_frames)
            y_hat_mel = mel_spectrogram(y_hat.float().squeeze(1), cfg.data)
        wave = slice_segments(b.wave, ids_slice * cfg.data.hop_length, cfg.train.segment_size)
        # Discriminator
        with self.autocast():
            y_d_r, y_d_g, _, _ = self.net_d(wave, y_hat.detach())
        with torch.autocast(self.device.type, enabled=False):
            loss_d, _, _ = discriminator_loss(y_d_r, y_d_g)
        self.optim_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.unscale_(self.optim_d)
        gn_d = _finite_grad_norm(list(self.net_d.parameters()))
        finite_d = math.isfinite(float(loss_d.detach()))
        ok_d = math.isfinite(gn_d) and finite_d
        if ok_d:
            self.scaler.step(self.optim_d)
        # Generator
        with torch.autocast(self.device.type, enabled=False):
            mel_l1 = F.l1_loss(y_mel, y_hat_mel.float())
            loss_mel = mel_l1 * cfg.train.c_mel
            loss_kl = kl_loss(z_p.float(), logs_q.float(), m_p.float(), logs_p.float(), z_mask.float()) * cfg.train.c_kl
        loss_gen, loss_fm = self.adversarial_losses(wave, y_hat)
        loss_g = loss_gen + loss_fm + loss_mel + loss_kl
        self.optim_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.unscale_(self.optim_g)
        gn_g = _finite_grad_norm(list(self.net_g.parameters()))
        finite_g = math.isfinite(float(loss_g.detach()))
        ok_g = math.isfinite(gn_g) and finite_g
        if ok_g:
            self.scaler.step(self.optim_g)
        # The GradScaler's overflow: finite losses, gradients too large for fp16 at this scale. It lowers
        # the scale and skips the update itself; its first steps do this by design (below a scale of 1
        # it is no longer a warm-up and counts as a skipped step).
        overflow = (
            not (ok_d and ok_g)
            and finite_d
            and finite_g
            and self.scaler.is_enabled()
            and self.scaler.get_scale() >= 1.0
        )
        self.scaler.update()
        if overflow:
            self.scaler_overflows += 1
            _log.debug("step %d: GradScaler overflow; update skipped, scale lowered", self.step)
            return None
        if not (ok_d and ok_g):
            self.skipped += 1
            if self.is_main:
                _log.warning(
                    "step %d: non-finite %s; update skipped (%d so far)",
                    self.step,
                    "discriminator loss/gradients" if not ok_d else "generator loss/gradients",
                    self.skipped,
                )
            return None
        return {
            "loss_d": float(loss_d.detach()),
            "loss_g": float(loss_g.detach()),
            "loss_gen": float(loss_gen.detach()),
            "loss_fm": float(loss_fm.detach()),
            "loss_mel": float(loss_mel.detach()),
            "loss_kl": float(loss_kl.detach()),
            "mel_l1": float(mel_l1.detach()),
            "grad_norm_g": gn_g,
            "grad_norm_d": gn_d,
        }

    # ---------------------------------------------------------------- held-out
    @torch.no_grad()
    def holdout_mel(self) -> float | None:
        """Mean mel L1 of the conversion path (`infer`) against the real audio of held-out segments."""
        if not self.held_entries:
            return None
        from infer.lib.mel import mel_spectrogram, spec_to_mel

        g = unwrap_model(self.net_g)
        was_training = g.training
        g.eval()
        losses = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.s.seed)
            for i in range(len(self.held_ds)):
                b = collate([self.held_ds[i]]).to(self.device)
                with self.autocast():
                    audio, _, _ = g.infer(b.phone, b.phone_lengths, b.pitch, b.pitchf, b.sid)
                mel = spec_to_mel(b.spec.float(), self.cfg.data)
                n = int(b.spec_lengths[0])
                y = audio.float().squeeze(1)[:, : n * self.cfg.data.hop_length]
                y_mel = mel_spectrogram(y, self.cfg.data)
                m = min(y_mel.shape[-1], n)
                losses.append(float(F.l1_loss(y_mel[..., :m], mel[..., :m])))
        g.train(was_training)
        return sum(losses) / len(losses)

    # ---------------------------------------------------------------- saving
    def _generator_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in unwrap_model(self.net_g).state_dict().items()}

    def export(self, path: Path, epoch: int) -> Path:
        from infer.lib.checkpoint import export_small_model

        state = self._generator_state()
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise RuntimeError(f"refusing to export non-finite weights ({bad[:3]}...)")
        return export_small_model(
            state, self.cfg, self.s.use_f0, self.s.name, epoch, self.step, path, **self.s.export_extras
        )

    def save(self, epoch: int) -> None:
        """Checkpoint pair + train_state.json (rank 0), older pairs removed."""
        if not self.is_main:
            return
        from infer.lib.checkpoint import save_checkpoint

        g_path, d_path = self.exp.g_checkpoint(self.step), self.exp.d_checkpoint(self.step)
        lr = self.cfg.train.learning_rate
        save_checkpoint(g_path, unwrap_model(self.net_g), self.optim_g, lr, epoch)
        save_checkpoint(d_path, unwrap_model(self.net_d), self.optim_d, lr, epoch)
        TrainState(
            epoch=epoch,
            step=self.step,
            checkpoint_g=g_path.name,
            checkpoint_d=d_path.name,
            version=self.cfg.version,
            sample_rate=self.cfg.sample_rate,
            use_f0=self.s.use_f0,
            name=self.s.name,
            scheduler_g=self.sched_g.state_dict(),
            scheduler_d=self.sched_d.state_dict(),
            scaler=self.scaler.state_dict() if self.precision.use_grad_scaler else None,
            history=self.history,
            best_epoch=self.best[0] if self.best else None,
            best_holdout_mel=self.best[1] if self.best else None,
            best_model_path=self.best_model_path,
            skipped_steps=self.skipped,
            initial_holdout_mel=self.initial_holdout,
            standin_weights=self.standin,
            from_scratch=self.s.from_scratch,
        ).write(self.exp)
        for p in list(self.exp.checkpoint_dir.glob("G_*.pth")) + list(self.exp.checkpoint_dir.glob("D_*.pth")):
            if p not in (g_path, d_path):
                p.unlink(missing_ok=True)
        _log.info("checkpoint: %s, %s (epoch %d, step %d)", g_path.name, d_path.name, epoch, self.step)

    # ---------------------------------------------------------------- cancellation
    def cancelled(self) -> bool:
        flag = bool(self.cancel is not None and self.cancel.is_set())
        if self.world > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    # ---------------------------------------------------------------- the loop
    def run(self) -> TrainReport:
        t_start = time.monotonic()
        self.setup_data()
        self.setup_models()
        s = self.s
        bs = choose_batch_size(self.cfg, s.batch_size, self.device, self.precision, len(self.train_entries), self.world)
        if s.batch_size == "auto" and self.is_main:
            _log.info("batch size: auto -> %d per process", bs)
        writer = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(self.exp.tensorboard_dir))
        epochs = s.epochs
        if self.start_epoch > epochs and self.is_main:
            _log.info("nothing to train: the checkpoint already holds %d epoch(s)", self.start_epoch - 1)
        steps_per_epoch = len(self.make_loader(bs, self.start_epoch)[0])
        if self.is_main:
            _log.info(
                "training %s: epochs %d..%d, %d step(s)/epoch, batch %d x %d process(es), %s on %s, lr %.2e",
                s.name,
                self.start_epoch,
                epochs,
                steps_per_epoch,
                bs,
                self.world,
                self.precision.name,
                self.device,
                self.optim_g.param_groups[0]["lr"],
            )
        log_every = s.log_every or max(1, min(self.cfg.train.log_interval, steps_per_epoch // 10 or 1))
        if self.is_main and self.start_epoch == 1 and self.initial_holdout is None:
            self.initial_holdout = self.holdout_mel()
            if self.initial_holdout is not None:
                _log.info("held-out mel L1 before training: %.4f", self.initial_holdout)
        oom_logged = False
        run_t0 = time.monotonic()
        run_steps0 = self.step
        total_steps_left = max(0, epochs - self.start_epoch + 1) * steps_per_epoch
        for epoch in range(self.start_epoch, epochs + 1):
            while True:
                at_start = (self.step, self.skipped, self.scaler_overflows)
                try:
                    sums, n_ok, ep_secs = self._epoch(
                        epoch, bs, log_every, writer, run_t0, run_steps0, total_steps_left
                    )
                    break
                except RuntimeError as e:  # torch.OutOfMemoryError, or cuDNN/cuBLAS allocation failures
                    if not is_out_of_memory(e):
                        raise
                # handled outside the except block so the failed step's tensors are freed
                if self.world > 1 or bs == 1:
                    raise UserInputError(
                        f"GPU out of memory at batch size {bs}"
                        + (" on several GPUs" if self.world > 1 else "")
                        + ": use a smaller batch_size, a GPU with more memory, or shorter segments"
                    )
                self._recover_from_oom(*at_start)
                bs //= 2
                if not oom_logged:
                    _log.warning("CUDA out of memory: batch size halved to %d, epoch %d retried", bs, epoch)
                    oom_logged = True
                steps_per_epoch = len(self.make_loader(bs, epoch)[0])
            self.sched_g.step()
            self.sched_d.step()
            means = {k: v / n_ok for k, v in sums.items()} if n_ok else {}
            held = self.holdout_mel() if self.is_main else None
            rec = {
                "epoch": epoch,
                "step": self.step,
                "lr": self.optim_g.param_groups[0]["lr"],
                "seconds": round(ep_secs, 3),
                "batch_size": bs,
                **({"scaler_overflows": self.scaler_overflows - at_start[2]} if self.scaler.is_enabled() else {}),
                **{k: round(v, 6) for k, v in means.items()},
                "holdout_mel": held,
            }
            self.history.append(rec)
            if self.is_main:
                improved = held is not None and (self.best is None or held < self.best[1])
                if improved:
                    old = self.best_model_path
                    p = self.exp.root / f"{s.name}_best_e{epoch}.pth"
                    self.export(p, epoch)
                    self.best = (epoch, held)
                    self.best_model_path = p.name
                    if old and old != p.name and Path(old).name == old:
                        (self.exp.root / old).unlink(missing_ok=True)
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(f"epoch/{k}", v, epoch)
                    if held is not None:
                        writer.add_scalar("epoch/holdout_mel", held, epoch)
                    writer.flush()
                done_steps = self.step - run_steps0
                rate = done_steps / max(1e-9, time.monotonic() - run_t0)
                eta = (epochs - epoch) * steps_per_epoch / rate if rate > 0 else 0.0
                _log.info(
                    "epoch %d/%d step %d | d %.3f g %.3f fm %.3f mel %.3f kl %.3f | held-out mel %s%s | lr %.3e | "
                    "%.2f steps/s | epoch %.1fs | ETA %s",
                    epoch,
                    epochs,
                    self.step,
                    means.get("loss_d", float("nan")),
                    means.get("loss_gen", float("nan")),
                    means.get("loss_fm", float("nan")),
                    means.get("loss_mel", float("nan")),
                    means.get("loss_kl", float("nan")),
                    "-" if held is None else f"{held:.4f}",
                    " (best)" if improved else "",
                    rec["lr"],
                    rate,
                    ep_secs,
                    _fmt_secs(eta),
                    extra={"progress": {"epoch": epoch, "epochs": epochs, "eta_s": round(eta, 1)}},
                )
            if epoch % s.save_every_epoch == 0 or epoch == epochs:
                self.save(epoch)
            if self.world > 1:
                dist.barrier()
        if writer is not None:
            writer.close()
        final_epoch = max(epochs, self.start_epoch - 1)
        if self.start_epoch > epochs and not state_path(self.exp).is_file():
            self.save(final_epoch)
        report = self._final_report(bs, final_epoch, t_start) if self.is_main else None
        if self.world > 1:
            dist.barrier()
        return report  # type: ignore[return-value]

    def _recover_from_oom(self, step: int, skipped: int, scaler_overflows: int) -> None:
        """Back to a consistent state after an out-of-memory inside an epoch: no gradients, a GradScaler
        with the last scale and no optimizer mid-step (an OOM after `unscale_()` left it so), and the
        counters of the epoch's start (the retried epoch counts its steps once). The weights keep the
        updates of the steps done before the failure."""
        self.optim_g.zero_grad(set_to_none=True)
        self.optim_d.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            fresh = torch.amp.GradScaler(self.device.type, enabled=True)
            fresh.load_state_dict(self.scaler.state_dict())
            self.scaler = fresh
        self.step, self.skipped, self.scaler_overflows = step, skipped, scaler_overflows
        release_memory()

    def _final_report(self, bs: int, final_epoch: int, t_start: float) -> TrainReport:
        s = self.s
        model_path = self.export(self.exp.root / f"{s.name}.pth", final_epoch)
        st = read_state(self.exp)
        last = self.history[-1] if self.history else {}
        report = TrainReport(
            start_epoch=self._start_epoch,
            epochs=final_epoch,
            steps=self.step,
            batch_size=bs,
            world_size=self.world,
            device=str(self.device),
            precision=self.precision.name,
            n_train_segments=len(self.train_entries),
            n_holdout_segments=len(self.held_entries),
            holdout_segments=[e.gt_wav.name for e in self.held_entries],
            in_memory=self.in_memory,
            skipped_steps=self.skipped,
            final_losses={k: v for k, v in last.items() if k.startswith(("loss_", "mel_"))},
            initial_holdout_mel=self.initial_holdout,
            final_holdout_mel=last.get("holdout_mel"),
            best_epoch=self.best[0] if self.best else None,
            best_holdout_mel=self.best[1] if self.best else None,
            model_path=str(model_path),
            best_model_path=str(self.exp.root / self.best_model_path) if self.best_model_path else None,
            checkpoint_g=str(self.exp.root / st.checkpoint_g),
            checkpoint_d=str(self.exp.root / st.checkpoint_d),
            history=self.history,
            seconds=round(time.monotonic() - t_start, 3),
            from_scratch=s.from_scratch,
            standin_weights=self.standin,
        )
        atomic_write_text(self.exp.reports_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=1, default=float))
        return report

    def _epoch(
        self,
        epoch: int,
        bs: int,
        log_every: int,
        writer: Any,
        run_t0: float,
        run_steps0: int,
        total_steps: int,
    ) -> tuple[dict[str, float], int, float]:
        sampler, loader = self.make_loader(bs, epoch)
        n = len(sampler)
        self.net_g.train()
        self.net_d.train()
        t0 = time.monotonic()
        sums: dict[str, float] = {}
        n_ok = 0
        bar = None
        if self.is_main and is_terminal():
            from tqdm import tqdm

            bar = tqdm(total=n, desc=f"epoch {epoch}/{self.s.epochs}", unit="step", leave=False)
        step_iter: Iterator[Batch] = iter(loader)
        try:
            for i, batch in enumerate(step_iter):
                if self.cancelled():
                    self.save(epoch - 1)
                    raise CancelledError(f"training cancelled at epoch {epoch}, step {self.step}; checkpoint saved")
                b = batch.to(self.device, non_blocking=True)
                losses = self.train_step(b)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                if losses is None:
                    continue
                n_ok += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.is_main and (self.step % log_every == 0):
                    lr = self.optim_g.param_groups[0]["lr"]
                    rate = (self.step - run_steps0) / max(1e-9, time.monotonic() - run_t0)
                    left = (self.s.epochs - epoch) * n + (n - i - 1)
                    if writer is not None:
                        for k, v in losses.items():
                            writer.add_scalar(f"train/{k}", v, self.step)
                        writer.add_scalar("train/lr", lr, self.step)
                    if bar is not None:
                        bar.set_postfix(mel=f"{losses['loss_mel']:.2f}", d=f"{losses['loss_d']:.2f}")
                    else:
                        _log.info(
                            "epoch %d/%d step %d (%d/%d) | d %.3f g %.3f fm %.3f mel %.3f kl %.3f | lr %.3e | "
                            "%.2f steps/s | ETA %s",
                            epoch,
                            self.s.epochs,
                            self.step,
                            i + 1,
                            n,
                            losses["loss_d"],
                            losses["loss_gen"],
                            losses["loss_fm"],
                            losses["loss_mel"],
                            losses["loss_kl"],
                            lr,
                            rate,
                            _fmt_secs(left / rate if rate > 0 else 0),
                        )
        finally:
            if bar is not None:
                bar.close()
        return sums, n_ok, time.monotonic() - t0


# --------------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def worker_device(requested: str | None, world: int, local_rank: int) -> torch.device:
    """The device of one training process: `requested` (with its index), or GPU `local_rank` under DDP."""
    dev = pick_device(requested)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
    return dev


def _worker(local_rank: int, world: int, settings: TrainSettings, cancel: Any, port: int, log_file: str | None) -> None:
    """Entry of a spawned DDP process (rank = local_rank on this machine). The rendezvous is the
    address and the free `port` this job picked (not one left in the environment by another job)."""
    from infer.lib.jobguard import die_with_parent
    from infer.lib.log import setup_logging

    die_with_parent()  # a SIGKILLed job leaves no orphaned worker training on: SIGTERM saves and stops
    setup_logging(log_file=log_file)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    if pick_device(settings.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    run_worker(local_rank, world, local_rank, settings, cancel)


def run_worker(
    rank: int, world: int, local_rank: int, settings: TrainSettings, cancel: Any = None
) -> TrainReport | None:
    """One training process. With `world` > 1 it joins the process group (env:// rendezvous), on a GPU
    after `set_device` and bound to it (`device_id`). GPU memory is released when it ends."""
    dev = worker_device(settings.device, world, local_rank)
    if world > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl", init_method="env://", world_size=world, rank=rank, device_id=dev)
        else:
            dist.init_process_group(backend="gloo", init_method="env://", world_size=world, rank=rank)
    try:
        return _Trainer(settings, rank, world, local_rank, cancel).run()
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
        release_memory()


@contextlib.contextmanager
def sigterm_sets(event: Any) -> Iterator[None]:
    """While inside, SIGTERM sets `event` (main thread only; elsewhere nothing is installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        event.set()
        if getattr(old, "_rvc_chain", False):  # the job's own handler (infer.lib.jobguard) learns of it too
            old(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def train(settings: TrainSettings, cancel: threading.Event | None = None, log_file: str | None = None) -> TrainReport:
    """The training stage. Runs in this process, or spawns `world_size` DDP processes, or (under
    `torchrun`, WORLD_SIZE set) runs as this process's rank. Returns rank 0's `TrainReport`.

    `cancel`: set it (or send SIGTERM) to stop at the next step; a checkpoint is saved and
    `CancelledError` raised.
    """
    exp = settings.exp
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        ev = cancel or threading.Event()
        with sigterm_sets(ev):
            rep = run_worker(rank, world, local, settings, ev)
        if rep is None:
            rep = TrainReport.from_dict(json.loads((exp.reports_dir / REPORT_FILE).read_text()))
        return rep
    dev = pick_device(settings.device)
    world = settings.world_size
    if world <= 0:
        world = max(1, torch.cuda.device_count()) if dev.type == "cuda" else 1
    if world == 1:
        ev = cancel or threading.Event()
        with sigterm_sets(ev):
            rep = run_worker(0, 1, 0, settings, ev)
        assert rep is not None
        return rep
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    mp_cancel = ctx.Event()
    stop = threading.Event()

    def relay() -> None:
        while not stop.wait(0.5):
            if cancel is not None and cancel.is_set():
                mp_cancel.set()
                return

    watcher = threading.Thread(target=relay, daemon=True)
    watcher.start()
    (exp.reports_dir / REPORT_FILE).unlink(missing_ok=True)
    _log.info("starting %d DDP processes (%s)", world, "nccl" if dev.type == "cuda" else "gloo")
    try:
        with sigterm_sets(mp_cancel):
            ctx_spawn = mp.start_processes(
                _worker,
                args=(world, settings, mp_cancel, _free_port(), log_file),
                nprocs=world,
                join=False,
                start_method="spawn",
            )
            while not ctx_spawn.join(timeout=1.0):
                pass
    except mp.ProcessRaisedException as e:
        if "CancelledError" in str(e):
            raise CancelledError("training cancelled; checkpoint saved") from None
        if "UserInputError" in str(e):
            raise UserInputError(str(e).strip().splitlines()[-1].split(": ", 1)[-1]) from None
        raise
    finally:
        stop.set()
    report_file = exp.reports_dir / REPORT_FILE
    if mp_cancel.is_set() and not report_file.is_file():
        raise CancelledError("training cancelled; checkpoint saved")
    return TrainReport.from_dict(json.loads(report_file.read_text()))
