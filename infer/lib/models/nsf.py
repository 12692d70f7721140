"""HiFi-GAN decoder, optionally with the neural-source-filter (NSF) harmonic source for pitch guidance.

The NSF source turns frame-level f0 (Hz) into a sine excitation at the audio rate (plus noise in
unvoiced frames), merged by a 1x1 linear layer + tanh (`m_source.l_linear`), and injected before each
upsampling stage through strided convolutions (`noise_convs`). The sine phase is a vectorised
cumulative sum computed in float32 (no Python loop over frames, no host sync).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.models.commons import LRELU_SLOPE
from infer.lib.models.layers import ResBlock1, ResBlock2, WNConvTranspose1d, remove_all_weight_norm


def sine_excitation(
    f0: torch.Tensor,
    upp: int,
    sample_rate: int,
    sine_amp: float = 0.1,
    noise_std: float = 0.003,
) -> torch.Tensor:
    """Frame-level f0 [B, T] (Hz, 0 = unvoiced) -> excitation [B, T * upp] float32.

    Within frame t, sample k (1..upp) has phase sum_{t' < t} f0[t'] * upp / sr + f0[t] * k / sr (cycles);
    voiced samples are `sine_amp * sin(2 pi phase)` + N(0, noise_std), unvoiced ones N(0, sine_amp / 3).
    """
    with torch.no_grad(), torch.autocast(f0.device.type, enabled=False):
        f0 = f0.float()
        b, t = f0.shape
        step = f0 / sample_rate  # cycles per sample
        frame_advance = torch.remainder(step * upp, 1.0)
        start = torch.remainder(torch.cumsum(frame_advance, dim=1) - frame_advance, 1.0)  # phase before frame t
        k = torch.arange(1, upp + 1, device=f0.device, dtype=torch.float32)
        phase = start.unsqueeze(-1) + step.unsqueeze(-1) * k  # [B, T, upp]
        sine = sine_amp * torch.sin(2 * math.pi * phase).reshape(b, t * upp)
        uv = (f0 > 0).float().repeat_interleave(upp, dim=1)
        noise_amp = uv * noise_std + (1 - uv) * (sine_amp / 3)
        return sine * uv + noise_amp * torch.randn_like(sine)


class SourceModuleHnNSF(nn.Module):
    """Harmonic-plus-noise source: excitation merged by `l_linear` (1 -> 1) and tanh."""

    def __init__(self, sample_rate: int, sine_amp: float = 0.1, noise_std: float = 0.003) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int) -> torch.Tensor:
        """f0 [B, T] Hz -> source [B, 1, T * upp]."""
        e = sine_excitation(f0, upp, self.sample_rate, self.sine_amp, self.noise_std)
        e = e.to(self.l_linear.weight.dtype).unsqueeze(-1)  # [B, N, 1]
        return torch.tanh(self.l_linear(e)).transpose(1, 2)


class Generator(nn.Module):
    """HiFi-GAN generator; with `nsf_sample_rate` set it is the NSF variant taking frame-level f0.

    forward(x [B, C_in, T], f0 [B, T] | None, g [B, gin, 1] | None) -> audio [B, 1, T * prod(upsample_rates)].
    """

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: tuple[int, ...],
        resblock_dilation_sizes: tuple[tuple[int, ...], ...],
        upsample_rates: tuple[int, ...],
        upsample_initial_channel: int,
        upsample_kernel_sizes: tuple[int, ...],
        gin_channels: int = 0,
        nsf_sample_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        self.use_nsf = nsf_sample_rate is not None
        if nsf_sample_rate is not None:
            self.m_source = SourceModuleHnNSF(nsf_sample_rate)
            self.noise_convs = nn.ModuleList()
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            in_ch = upsample_initial_channel // (2**i)
            self.ups.append(WNConvTranspose1d(in_ch, ch, k, u, padding=(k - u) // 2, init_std=0.01))
            if nsf_sample_rate is not None:
                if i + 1 < len(upsample_rates):
                    s = math.prod(upsample_rates[i + 1 :])
                    self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=2 * s, stride=s, padding=s // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=1))
            for k_r, d_r in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, k_r, d_r))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, f0: torch.Tensor | None = None, g: torch.Tensor | None = None) -> torch.Tensor:
        source = None
        if self.use_nsf:
            if f0 is None:
                raise ValueError("this decoder needs f0 (pitch guidance)")
            source = self.m_source(f0, self.upp).to(x.dtype)
        # without autograd, activations and sums update this method's own intermediates in place
        # (the same numbers; fewer audio-rate allocations); with autograd every step is out of place
        inplace = not torch.is_grad_enabled()
        x = self.conv_pre(x)
        if g is not None:
            x = x.add_(self.cond(g)) if inplace else x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE, inplace=inplace))
            if source is not None:
                x = x.add_(self.noise_convs[i](source)) if inplace else x + self.noise_convs[i](source)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for blk in blocks[1:]:
                xs = xs.add_(blk(x)) if inplace else xs + blk(x)
            x = xs.div_(self.num_kernels) if inplace else xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, inplace=inplace))  # default slope 0.01 here, as the reference
        return x.tanh_() if inplace else torch.tanh(x)

    def remove_weight_norm(self) -> None:
        remove_all_weight_norm(self)
