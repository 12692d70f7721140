"""One GAN training step of the synthesizer: the discriminator's update, then the generator's.

`GanStep.train_step(batch)` runs the generator on random slices of the batch (`_forward`), updates the
discriminator on real against generated audio, then the generator on adversarial + feature matching +
`c_mel` * mel L1 + `c_kl` * KL (the reference's losses), in the run's precision (autocast, and a
GradScaler for fp16). An update whose loss or gradients are not finite is not made: the step counts
as skipped, except the GradScaler's own overflow steps while it lowers its scale.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from infer.lib.config import RVCConfig
from infer.lib.device import Precision
from infer.lib.log import get_logger
from infer.lib.models.commons import slice_segments
from infer.modules.train.data import Batch

if TYPE_CHECKING:
    from infer.lib.models.discriminator import MultiPeriodDiscriminator
    from infer.lib.models.synthesizer import Synthesizer

_log = get_logger("train")


def _finite_grad_norm(params: list[nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch.stack([g.detach().float().norm(2) for g in grads])
    return float(norms.norm(2))


@dataclass(frozen=True)
class _Forward:
    """The generator's pass over a batch: `y_hat` [B, 1, segment_size] generated from random slices,
    `wave` the real audio of those slices, `y_mel` / `y_hat_mel` [B, n_mels, segment_frames] their mel
    spectrograms (float32), `kl` the arguments of `kl_loss` (z_p, logs_q, m_p, logs_p, z_mask)."""

    y_hat: torch.Tensor
    wave: torch.Tensor
    y_mel: torch.Tensor
    y_hat_mel: torch.Tensor
    kl: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class GanStep:
    """The training step over the networks and optimizers the trainer sets up (the attributes below).

    `net_g` / `net_d` are the networks as trained (inside DDP with several processes), `generator` /
    `discriminator` the plain modules; `step` counts the steps, `skipped` the skipped updates and
    `scaler_overflows` the GradScaler's overflow steps.
    """

    cfg: RVCConfig
    device: torch.device
    precision: Precision
    is_main: bool
    generator: Synthesizer
    discriminator: MultiPeriodDiscriminator
    net_g: nn.Module
    net_d: nn.Module
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int
    skipped: int
    scaler_overflows: int

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
        rounding, with less discriminator work per step.
        """
        from infer.lib.losses import feature_loss, generator_loss

        net_d = self.discriminator
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

    def _forward(self, b: Batch) -> _Forward:
        from infer.lib.mel import mel_spectrogram, spec_to_mel

        cfg = self.cfg
        with self.autocast():
            y_hat, ids_slice, _x_mask, z_mask, (_z, z_p, m_p, logs_p, _m_q, logs_q) = self.net_g(
                b.phone, b.phone_lengths, b.pitch, b.pitchf, b.spec, b.spec_lengths, b.sid
            )
        with torch.autocast(self.device.type, enabled=False):
            mel = spec_to_mel(b.spec.float(), cfg.data)
            y_mel = slice_segments(mel, ids_slice, cfg.segment_frames)
            y_hat_mel = mel_spectrogram(y_hat.float().squeeze(1), cfg.data)
        wave = slice_segments(b.wave, ids_slice * cfg.data.hop_length, cfg.train.segment_size)
        return _Forward(y_hat, wave, y_mel, y_hat_mel, (z_p, logs_q, m_p, logs_p, z_mask))

    def _update(self, loss: torch.Tensor, optim: torch.optim.Optimizer, net: nn.Module) -> tuple[float, bool, bool]:
        """Backward of the scaled `loss`, then `optim`'s step when the loss and `net`'s gradients are
        finite: (gradient norm, loss finite, stepped)."""
        optim.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optim)
        grad_norm = _finite_grad_norm(list(net.parameters()))
        finite = math.isfinite(float(loss.detach()))
        ok = math.isfinite(grad_norm) and finite
        if ok:
            self.scaler.step(optim)
        return grad_norm, finite, ok

    def train_step(self, b: Batch) -> dict[str, float] | None:
        """One GAN step on batch `b`: the discriminator's update, then the generator's. The losses and
        gradient norms, or None when the updates were not both made (see `_count_skip`)."""
        from infer.lib.losses import discriminator_loss, kl_loss, mel_loss

        c = self.cfg.train
        fw = self._forward(b)
        with self.autocast():
            y_d_r, y_d_g, _, _ = self.net_d(fw.wave, fw.y_hat.detach())
        with torch.autocast(self.device.type, enabled=False):
            loss_d, _, _ = discriminator_loss(y_d_r, y_d_g)
        gn_d, finite_d, ok_d = self._update(loss_d, self.optim_d, self.net_d)
        with torch.autocast(self.device.type, enabled=False):
            mel_l1 = mel_loss(fw.y_mel, fw.y_hat_mel)
            loss_mel = mel_l1 * c.c_mel
            loss_kl = kl_loss(*(t.float() for t in fw.kl)) * c.c_kl
        loss_gen, loss_fm = self.adversarial_losses(fw.wave, fw.y_hat)
        loss_g = loss_gen + loss_fm + loss_mel + loss_kl
        gn_g, finite_g, ok_g = self._update(loss_g, self.optim_g, self.net_g)
        if self._count_skip(ok_d, ok_g, finite_d and finite_g):
            return None
        losses = {"loss_d": loss_d, "loss_g": loss_g, "loss_gen": loss_gen, "loss_fm": loss_fm}
        losses |= {"loss_mel": loss_mel, "loss_kl": loss_kl, "mel_l1": mel_l1}
        return {k: float(v.detach()) for k, v in losses.items()} | {"grad_norm_g": gn_g, "grad_norm_d": gn_d}

    def _count_skip(self, ok_d: bool, ok_g: bool, finite: bool) -> bool:
        """Update the GradScaler; True (and counted) when an update of the step was skipped.

        The GradScaler's overflow: finite losses, gradients too large for fp16 at this scale. It lowers
        the scale and skips the update itself; its first steps do this by design (below a scale of 1
        it is no longer a warm-up and counts as a skipped step)."""
        overflow = not (ok_d and ok_g) and finite and self.scaler.is_enabled() and self.scaler.get_scale() >= 1.0
        self.scaler.update()
        if overflow:
            self.scaler_overflows += 1
            _log.debug("step %d: GradScaler overflow; update skipped, scale lowered", self.step)
            return True
        if not (ok_d and ok_g):
            self.skipped += 1
            if self.is_main:
                _log.warning(
                    "step %d: non-finite %s; update skipped (%d so far)",
                    self.step,
                    "discriminator loss/gradients" if not ok_d else "generator loss/gradients",
                    self.skipped,
                )
            return True
        return False
