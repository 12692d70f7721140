"""The training loop's progress output on rank 0: log lines (a line every `log_every` steps and per
epoch, with losses, lr, steps/s and ETA), a tqdm bar in a terminal instead of the step lines, and
TensorBoard event files. The epoch line carries a `progress` extra (epoch, epochs, eta_s) that the job
turns into progress events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infer.lib.log import get_logger, is_terminal

if TYPE_CHECKING:
    from tqdm import tqdm

_log = get_logger("train")
LOSS_KEYS = ("loss_d", "loss_gen", "loss_fm", "loss_mel", "loss_kl")


def _fmt_secs(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class TrainLog:
    """The output of one run of `epochs` epochs; with `enabled` False (ranks other than 0) it writes
    nothing. TensorBoard files go to `tensorboard_dir`."""

    def __init__(self, enabled: bool, tensorboard_dir: Path, epochs: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(tensorboard_dir))
        self.begin(0)

    def begin(self, step: int) -> None:
        """Training starts now at step count `step` (the origin of steps/s and the ETA)."""
        self.t0, self.step0 = time.monotonic(), step

    def rate(self, step: int) -> float:
        """Steps per second since `begin`, at step count `step`."""
        return (step - self.step0) / max(1e-9, time.monotonic() - self.t0)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def bar(self, n: int, epoch: int) -> tqdm[Any] | None:
        """A tqdm bar over epoch `epoch`'s `n` steps in a terminal; None elsewhere (step lines instead)."""
        if not (self.enabled and is_terminal()):
            return None
        from tqdm import tqdm

        return tqdm(total=n, desc=f"epoch {epoch}/{self.epochs}", unit="step", leave=False)

    def step(
        self, epoch: int, step: int, i: int, n: int, losses: dict[str, float], lr: float, bar: tqdm[Any] | None
    ) -> None:
        """Step `i` of the epoch's `n` (step count `step`): its losses to TensorBoard, and to the bar or a
        log line with the ETA."""
        if not self.enabled:
            return
        rate = self.rate(step)
        left = (self.epochs - epoch) * n + (n - i - 1)
        if self.writer is not None:
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.writer.add_scalar("train/lr", lr, step)
        if bar is not None:
            bar.set_postfix(mel=f"{losses['loss_mel']:.2f}", d=f"{losses['loss_d']:.2f}")
            return
        _log.info(
            "epoch %d/%d step %d (%d/%d) | d %.3f g %.3f fm %.3f mel %.3f kl %.3f | lr %.3e | %.2f steps/s | ETA %s",
            epoch,
            self.epochs,
            step,
            i + 1,
            n,
            *(losses[k] for k in LOSS_KEYS),
            lr,
            rate,
            _fmt_secs(left / rate if rate > 0 else 0),
        )

    def epoch(
        self, rec: dict[str, Any], means: dict[str, float], improved: bool, steps_per_epoch: int, seconds: float
    ) -> None:
        """The end of the epoch of history record `rec` (epoch, step, lr, holdout_mel): its mean losses
        `means` and held-out score to TensorBoard, and its log line (`improved`: a new best held-out score)."""
        if not self.enabled:
            return
        epoch, held = rec["epoch"], rec["holdout_mel"]
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"epoch/{k}", v, epoch)
            if held is not None:
                self.writer.add_scalar("epoch/holdout_mel", held, epoch)
            self.writer.flush()
        rate = self.rate(rec["step"])
        eta = (self.epochs - epoch) * steps_per_epoch / rate if rate > 0 else 0.0
        _log.info(
            "epoch %d/%d step %d | d %.3f g %.3f fm %.3f mel %.3f kl %.3f | held-out mel %s%s | lr %.3e | "
            "%.2f steps/s | epoch %.1fs | ETA %s",
            epoch,
            self.epochs,
            rec["step"],
            *(means.get(k, float("nan")) for k in LOSS_KEYS),
            "-" if held is None else f"{held:.4f}",
            " (best)" if improved else "",
            rec["lr"],
            rate,
            seconds,
            _fmt_secs(eta),
            extra={"progress": {"epoch": epoch, "epochs": self.epochs, "eta_s": round(eta, 1)}},
        )
