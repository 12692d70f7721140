"""One process's training (the semantics are described in `infer.modules.train.train`).

`_Trainer(settings, rank, world, local_rank, cancel).run()` reads the segments (`setup_data`), builds G
and D and resumes or warm-starts them (`setup_models`), then trains epoch by epoch: `train_step` is one
GAN step (the discriminator's update, then the generator's) in the run's precision, `_epoch` one pass
over the batches, `_train_epoch` retries an epoch at half the batch after a GPU out-of-memory, and
`_end_epoch` steps the learning rates, scores the held-out segments, keeps the best model, logs and
saves the checkpoint pair. What a resumed run needs is read from and written to one `TrainState`
(`_apply_state` / `_train_state`). `run` returns rank 0's `TrainReport` (None on the other ranks).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from infer.lib.device import enable_tf32, is_out_of_memory, pick_device, release_memory, training_precision
from infer.lib.errors import CancelledError, UserInputError
from infer.lib.fileio import atomic_write_text
from infer.lib.log import get_logger
from infer.lib.losses import mel_loss
from infer.modules.train.batch_size import choose_batch_size
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
from infer.modules.train.state import REFERENCE_LATEST_STEP, TrainState, latest_checkpoints, read_state, state_path
from infer.modules.train.step import GanStep
from infer.modules.train.train import REPORT_FILE, TrainReport, TrainSettings, load_run_config
from infer.modules.train.trainlog import TrainLog

_log = get_logger("train")


def worker_device(requested: str | None, world: int, local_rank: int) -> torch.device:
    """The device of one training process: `requested` (with its index), or GPU `local_rank` under DDP."""
    dev = pick_device(requested)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
    return dev


@dataclass(frozen=True)
class _EpochResult:
    """One epoch: sums of the losses over its `n_ok` updated steps, wall `seconds`, its `steps` (batches)
    and the GradScaler `overflows` in it."""

    sums: dict[str, float]
    n_ok: int
    seconds: float
    steps: int
    overflows: int


class _Trainer(GanStep):
    """One training process, rank `rank` of `world` (see the module docstring; the step is `GanStep`'s)."""

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
        self._warned_dropped = False
        self._oom_logged = False

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
        if sampler.dropped and self.is_main and not self._warned_dropped:
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
        """G and D with their optimizers, learning-rate schedules and GradScaler; resumed from the
        experiment's latest checkpoint pair, else warm-started from the pretrained G/D, else (from_scratch)
        left as initialised; wrapped in DDP with several processes."""
        self._build_models()
        self.start_epoch = 1
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: tuple[int, float] | None = None
        self.best_model_path: str | None = None
        self.skipped = 0
        self.scaler_overflows = 0
        self.initial_holdout: float | None = None
        found = latest_checkpoints(self.exp)
        if found is not None:
            self._resume(*found)
        elif self.s.from_scratch:
            if self.is_main:
                bar = "!" * 78
                _log.warning(bar)
                _log.warning("training FROM SCRATCH (no pretrained G/D): expect hours of training for a usable voice")
                _log.warning(bar)
        else:
            self._warm_start()
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_g = DDP(self.generator, device_ids=ids)
            self.net_d = DDP(self.discriminator, device_ids=ids)

    def _build_models(self) -> None:
        from infer.lib.models.discriminator import MultiPeriodDiscriminator, build_discriminator
        from infer.lib.models.synthesizer import build_generator

        torch.manual_seed(self.s.seed)
        self.generator = build_generator(self.cfg, self.s.use_f0).to(self.device)
        periods = self.s.discriminator_periods
        d = MultiPeriodDiscriminator(tuple(periods)) if periods else build_discriminator(self.cfg.version)
        self.discriminator = d.to(self.device)
        self.net_g, self.net_d = self.generator, self.discriminator
        t = self.cfg.train
        # fused: one kernel over all parameters (CPU and CUDA) instead of a loop over the tensors
        fused = self.device.type in ("cpu", "cuda")
        g_params, d_params = self.generator.parameters(), self.discriminator.parameters()
        self.optim_g = torch.optim.AdamW(g_params, t.learning_rate, betas=t.betas, eps=t.eps, fused=fused)
        self.optim_d = torch.optim.AdamW(d_params, t.learning_rate, betas=t.betas, eps=t.eps, fused=fused)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=t.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=t.lr_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)

    def _resume(self, g_path: Path, d_path: Path, state: TrainState | None) -> None:
        """Continue from a checkpoint pair: weights and optimizers, then the run's `state`, or for a
        reference-made pair (no train_state.json) what its `iteration` and file name tell."""
        from infer.lib.checkpoint import load_checkpoint

        it_g, _ = load_checkpoint(g_path, self.generator, self.optim_g)
        load_checkpoint(d_path, self.discriminator, self.optim_d)
        if state is not None:
            epochs_done = self._apply_state(state)
        else:
            # `iteration` is the epoch; the lr was saved in the optimizer
            epochs_done = int(it_g)
            stem = g_path.stem.split("_", 1)[1]
            self.step = int(stem) if stem.isdigit() and int(stem) != REFERENCE_LATEST_STEP else 0
            for sch in (self.sched_g, self.sched_d):
                sch.last_epoch = epochs_done
                sch.base_lrs = [self.cfg.train.learning_rate for _ in sch.base_lrs]
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

    def _warm_start(self) -> None:
        from infer.lib.checkpoint import load_pretrained

        variant = f"{self.cfg.version} {self.cfg.sample_rate} {'f0' if self.s.use_f0 else 'nof0'}"
        pairs = ((self.s.pretrained_g, self.generator, "G"), (self.s.pretrained_d, self.discriminator, "D"))
        for path, model, kind in pairs:
            if not path:  # TrainSettings refuses this unless from_scratch
                raise UserInputError(f"no pretrained {kind} file to start from")
            res = load_pretrained(path, model, kind, variant)
            if isinstance(res, str) and res:
                self.standin = True
            if self.is_main:
                _log.info("warm start: pretrained %s from %s", kind, path)

    # ---------------------------------------------------------------- the resume state
    def _apply_state(self, state: TrainState) -> int:
        """Take over a saved run's progress (after its checkpoints are loaded); its completed epochs."""
        self.step = state.step
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
        if state.standin_weights:
            self.standin = True
        return state.epoch

    def _train_state(self, epoch: int, checkpoint_g: str, checkpoint_d: str) -> TrainState:
        """This run's progress after `epoch` epochs, beside the checkpoint pair of that name."""
        return TrainState(
            epoch=epoch,
            step=self.step,
            checkpoint_g=checkpoint_g,
            checkpoint_d=checkpoint_d,
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
        )

    # ---------------------------------------------------------------- held-out
    @torch.no_grad()
    def holdout_mel(self) -> float | None:
        """Mean mel L1 of the conversion path (`infer`) against the real audio of held-out segments."""
        if not self.held_entries:
            return None
        from infer.lib.mel import mel_spectrogram, spec_to_mel

        g = self.generator
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
                losses.append(float(mel_loss(mel[..., :m], y_mel[..., :m])))
        g.train(was_training)
        return sum(losses) / len(losses)

    # ---------------------------------------------------------------- saving
    def export(self, path: Path, epoch: int) -> Path:
        from infer.lib.checkpoint import export_small_model

        state = {k: v.detach().cpu() for k, v in self.generator.state_dict().items()}
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
        save_checkpoint(g_path, self.generator, self.optim_g, lr, epoch)
        save_checkpoint(d_path, self.discriminator, self.optim_d, lr, epoch)
        self._train_state(epoch, g_path.name, d_path.name).write(self.exp)
        for p in list(self.exp.checkpoint_dir.glob("G_*.pth")) + list(self.exp.checkpoint_dir.glob("D_*.pth")):
            if p not in (g_path, d_path):
                p.unlink(missing_ok=True)
        _log.info("checkpoint: %s, %s (epoch %d, step %d)", g_path.name, d_path.name, epoch, self.step)

    def _keep_best(self, epoch: int, held: float | None) -> bool:
        """Export the small model of `epoch` as the best one when its held-out score `held` is the lowest
        yet (the previous best removed); whether it was."""
        if held is None or not (self.best is None or held < self.best[1]):
            return False
        old = self.best_model_path
        p = self.exp.root / f"{self.s.name}_best_e{epoch}.pth"
        self.export(p, epoch)
        self.best = (epoch, held)
        self.best_model_path = p.name
        if old and old != p.name and Path(old).name == old:
            (self.exp.root / old).unlink(missing_ok=True)
        return True

    # ---------------------------------------------------------------- cancellation
    def cancelled(self) -> bool:
        flag = bool(self.cancel is not None and self.cancel.is_set())
        if self.world > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    # ---------------------------------------------------------------- the loop
    def run(self) -> TrainReport | None:
        """Train epochs `start_epoch..epochs`; rank 0's report (None on the other ranks)."""
        t_start = time.monotonic()
        self.setup_data()
        self.setup_models()
        s = self.s
        bs = choose_batch_size(self.cfg, s.batch_size, self.device, self.precision, len(self.train_entries), self.world)
        if s.batch_size == "auto" and self.is_main:
            _log.info("batch size: auto -> %d per process", bs)
        self.out = TrainLog(self.is_main, self.exp.tensorboard_dir, s.epochs)
        if self.start_epoch > s.epochs and self.is_main:
            _log.info("nothing to train: the checkpoint already holds %d epoch(s)", self.start_epoch - 1)
        steps_per_epoch = len(self.make_loader(bs, self.start_epoch)[0])
        if self.is_main:
            _log.info(
                "training %s: epochs %d..%d, %d step(s)/epoch, batch %d x %d process(es), %s on %s, lr %.2e",
                s.name,
                self.start_epoch,
                s.epochs,
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
        self.out.begin(self.step)
        for epoch in range(self.start_epoch, s.epochs + 1):
            result, bs = self._train_epoch(epoch, bs, log_every)
            self._end_epoch(epoch, bs, result)
        self.out.close()
        final_epoch = max(s.epochs, self.start_epoch - 1)
        if self.start_epoch > s.epochs and not state_path(self.exp).is_file():
            self.save(final_epoch)
        report = self._final_report(bs, final_epoch, t_start) if self.is_main else None
        if self.world > 1:
            dist.barrier()
        return report

    def _train_epoch(self, epoch: int, bs: int, log_every: int) -> tuple[_EpochResult, int]:
        """Epoch `epoch` at batch size `bs`, after a GPU out-of-memory (one process only) retried from the
        epoch's start at half the batch, down to 1; the epoch's result and the batch size it ran at."""
        while True:
            at_start = (self.step, self.skipped, self.scaler_overflows)
            try:
                return self._epoch(epoch, bs, log_every), bs
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
            if not self._oom_logged:
                _log.warning("CUDA out of memory: batch size halved to %d, epoch %d retried", bs, epoch)
                self._oom_logged = True

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

    def _epoch(self, epoch: int, bs: int, log_every: int) -> _EpochResult:
        """One pass over the training batches at batch size `bs`; cancellation is checked before each step
        (a checkpoint of the epochs done is saved, then `CancelledError`)."""
        sampler, loader = self.make_loader(bs, epoch)
        n = len(sampler)
        self.net_g.train()
        self.net_d.train()
        t0 = time.monotonic()
        overflows0 = self.scaler_overflows
        sums: dict[str, float] = {}
        n_ok = 0
        bar = self.out.bar(n, epoch)
        step_iter: Iterator[Batch] = iter(loader)
        try:
            for i, batch in enumerate(step_iter):
                if self.cancelled():
                    self.save(epoch - 1)
                    raise CancelledError(f"training cancelled at epoch {epoch}, step {self.step}; checkpoint saved")
                losses = self.train_step(batch.to(self.device, non_blocking=True))
                self.step += 1
                if bar is not None:
                    bar.update(1)
                if losses is None:
                    continue
                n_ok += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.step % log_every == 0:
                    self.out.step(epoch, self.step, i, n, losses, self.optim_g.param_groups[0]["lr"], bar)
        finally:
            if bar is not None:
                bar.close()
        return _EpochResult(sums, n_ok, time.monotonic() - t0, n, self.scaler_overflows - overflows0)

    def _end_epoch(self, epoch: int, bs: int, res: _EpochResult) -> None:
        """After epoch `epoch`: the learning rates stepped, the held-out score and the history record; on
        rank 0 the best model kept, TensorBoard and the log line; the checkpoint pair every
        `save_every_epoch` epochs and after the last."""
        self.sched_g.step()
        self.sched_d.step()
        means = {k: v / res.n_ok for k, v in res.sums.items()} if res.n_ok else {}
        held = self.holdout_mel() if self.is_main else None
        rec = {
            "epoch": epoch,
            "step": self.step,
            "lr": self.optim_g.param_groups[0]["lr"],
            "seconds": round(res.seconds, 3),
            "batch_size": bs,
            **({"scaler_overflows": res.overflows} if self.scaler.is_enabled() else {}),
            **{k: round(v, 6) for k, v in means.items()},
            "holdout_mel": held,
        }
        self.history.append(rec)
        if self.is_main:
            self.out.epoch(rec, means, self._keep_best(epoch, held), res.steps, res.seconds)
        if epoch % self.s.save_every_epoch == 0 or epoch == self.s.epochs:
            self.save(epoch)
        if self.world > 1:
            dist.barrier()

    def _final_report(self, bs: int, final_epoch: int, t_start: float) -> TrainReport:
        s = self.s
        model_path = self.export(self.exp.root / f"{s.name}.pth", final_epoch)
        st = read_state(self.exp)
        last = self.history[-1] if self.history else {}
        report = TrainReport(
            start_epoch=self.start_epoch,
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
