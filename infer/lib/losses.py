"""GAN-TTS losses of RVC training (least-squares GAN, feature matching, mel L1, KL).

All losses are computed in float32 and return tensors; nothing calls `.item()`, so a training step
never waits for the device. Weights (`c_mel`, `c_kl`) are applied by the caller:
`loss_g = generator_loss + feature_loss + c_mel * mel_loss + c_kl * kl_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def discriminator_loss(
    real_outputs: Sequence[torch.Tensor], fake_outputs: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """LSGAN discriminator loss: sum over sub-discriminators of mean((1 - D(y))^2) + mean(D(y_hat)^2).

    Returns (total, per-discriminator real losses, per-discriminator fake losses), all detached lists.
    """
    total = torch.zeros((), device=real_outputs[0].device)
    r_losses: list[torch.Tensor] = []
    g_losses: list[torch.Tensor] = []
    for dr, dg in zip(real_outputs, fake_outputs):
        r = torch.mean((1 - dr.float()) ** 2)
        g = torch.mean(dg.float() ** 2)
        total = total + r + g
        r_losses.append(r.detach())
        g_losses.append(g.detach())
    return total, r_losses, g_losses


def generator_loss(fake_outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss: sum of mean((1 - D(y_hat))^2). Returns (total, per-discriminator losses)."""
    total = torch.zeros((), device=fake_outputs[0].device)
    losses: list[torch.Tensor] = []
    for dg in fake_outputs:
        loss = torch.mean((1 - dg.float()) ** 2)
        losses.append(loss)
        total = total + loss
    return total, losses


def feature_loss(
    fmap_real: Sequence[Sequence[torch.Tensor]], fmap_fake: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Feature matching: 2 * sum over all feature maps of mean |real.detach() - fake|."""
    total = torch.zeros((), device=fmap_real[0][0].device)
    for dr, dg in zip(fmap_real, fmap_fake):
        for r, g in zip(dr, dg):
            total = total + torch.mean(torch.abs(r.float().detach() - g.float()))
    return total * 2


def mel_loss(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """L1 between log mels (unweighted; the caller multiplies by `c_mel`)."""
    return F.l1_loss(mel_fake.float(), mel_real.float())


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, z_mask: torch.Tensor
) -> torch.Tensor:
    """KL between the posterior sample mapped by the flow (z_p, logs_q) and the prior (m_p, logs_p).

    All [B, C, T]; z_mask [B, 1, T]. Masked sum divided by the number of valid frames (unweighted).
    """
    z_p, logs_q, m_p, logs_p, z_mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, z_mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * z_mask) / torch.sum(z_mask)
