"""Multi-period discriminator (HiFi-GAN): one scale discriminator plus one per period.

v1 uses periods (2, 3, 5, 7, 11, 17), v2 (2, 3, 5, 7, 11, 17, 23, 37), as the reference networks
(`MultiPeriodDiscriminator` / `MultiPeriodDiscriminatorV2`) and their pretrained D files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.models.commons import LRELU_SLOPE, get_padding
from infer.lib.models.layers import WNConv1d, WNConv2d

PERIODS: dict[str, tuple[int, ...]] = {
    "v1": (2, 3, 5, 7, 11, 17),
    "v2": (2, 3, 5, 7, 11, 17, 23, 37),
}


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`convs` each followed by leaky ReLU, then `conv_post`: (its output flattened to [B, K], every layer's output)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Scale discriminator on raw audio [B, 1, N] -> (logits [B, K], feature maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                WNConv1d(1, 16, 15, 1, padding=7),
                WNConv1d(16, 64, 41, 4, groups=4, padding=20),
                WNConv1d(64, 256, 41, 4, groups=16, padding=20),
                WNConv1d(256, 1024, 41, 4, groups=64, padding=20),
                WNConv1d(1024, 1024, 41, 4, groups=256, padding=20),
                WNConv1d(1024, 1024, 5, 1, padding=2),
            ]
        )
        self.conv_post = WNConv1d(1024, 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


class DiscriminatorP(nn.Module):
    """Period discriminator: audio folded into [B, 1, N / period, period], 2-D convs along time."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        pad = (get_padding(kernel_size, 1), 0)
        chans = [1, 32, 128, 512, 1024, 1024]
        self.convs = nn.ModuleList(
            WNConv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), padding=pad)
            for i in range(5)
        )
        self.conv_post = WNConv2d(1024, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """forward(y, y_hat [B, 1, N]) -> (y_d_rs, y_d_gs, fmap_rs, fmap_gs), one entry per sub-discriminator.

    Real and generated audio go through each sub-discriminator as one batch (same results as two
    passes, half the kernel launches).
    """

    def __init__(self, periods: tuple[int, ...]) -> None:
        super().__init__()
        self.periods = tuple(periods)
        self.discriminators = nn.ModuleList([DiscriminatorS(), *(DiscriminatorP(p) for p in self.periods)])

    def forward(
        self, y: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        b = y.shape[0]
        logits, fmaps = self.run(torch.cat([y, y_hat.to(y.dtype)], dim=0))
        return (
            [x[:b] for x in logits],
            [x[b:] for x in logits],
            [[f[:b] for f in fmap] for fmap in fmaps],
            [[f[b:] for f in fmap] for fmap in fmaps],
        )

    def run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """One input [B, 1, N] through every sub-discriminator: (logits, feature maps), one entry each."""
        outs = [d(x) for d in self.discriminators]
        return [logits for logits, _ in outs], [fmap for _, fmap in outs]


def build_discriminator(version: str) -> MultiPeriodDiscriminator:
    """The discriminator matching the pretrained `D` files of `version` ("v1" or "v2")."""
    if version not in PERIODS:
        raise ValueError(f"version must be one of {sorted(PERIODS)}, got {version!r}")
    return MultiPeriodDiscriminator(PERIODS[version])
