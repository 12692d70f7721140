"""The RVC synthesizer (VITS-style generator) for all 12 variants: v1/v2 x pitch on/off x 32k/40k/48k.

Submodules (names as in every RVC checkpoint):
- `enc_p` content ("phone") encoder: HuBERT features (+ coarse pitch embedding) -> prior m_p, logs_p;
- `enc_q` posterior encoder: linear spectrogram -> z (training only; not in exported small models);
- `flow` residual coupling flow between z and the prior space;
- `dec` HiFi-GAN decoder (NSF when pitch guided);
- `emb_g` speaker embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from infer.lib.config import RVCConfig
from infer.lib.models.attentions import Encoder
from infer.lib.models.commons import rand_slice_segments, sequence_mask, slice_segments
from infer.lib.models.layers import WaveNet, WaveNetShape, remove_all_weight_norm
from infer.lib.models.nsf import Generator


class TextEncoder(nn.Module):
    """Content features [B, T, content_dim] (+ coarse f0 [B, T] in 1..255) -> (m, logs [B, inter, T], mask [B, 1, T])."""

    def __init__(
        self,
        content_dim: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        use_f0: bool,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(content_dim, hidden_channels)
        if use_f0:
            self.emb_pitch = nn.Embedding(256, hidden_channels)
        self.encoder = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, phone: torch.Tensor, pitch: torch.Tensor | None, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = nn.functional.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1).transpose(1, 2)  # [B, H, T]
        x_mask = sequence_mask(lengths, x.shape[2]).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        m, logs = torch.split(self.proj(x) * x_mask, self.out_channels, dim=1)
        return m, logs, x_mask


class PosteriorEncoder(nn.Module):
    """Linear spectrogram [B, spec_channels, T] -> (z, m, logs [B, inter, T], mask [B, 1, T])."""

    def __init__(self, in_channels: int, out_channels: int, wavenet: WaveNetShape) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, wavenet.hidden_channels, 1)
        self.enc = WaveNet(wavenet)
        self.proj = nn.Conv1d(wavenet.hidden_channels, out_channels * 2, 1)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x_mask = sequence_mask(lengths, x.shape[2]).unsqueeze(1).to(x.dtype)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        m, logs = torch.split(self.proj(x) * x_mask, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half of the channels is shifted by a WaveNet of the first."""

    def __init__(self, channels: int, wavenet: WaveNetShape) -> None:
        super().__init__()
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, wavenet.hidden_channels, 1)
        self.enc = WaveNet(wavenet)
        self.post = nn.Conv1d(wavenet.hidden_channels, self.half_channels, 1)
        for p in self.post.parameters():
            nn.init.zeros_(p)

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        m = self.post(h) * x_mask
        x1 = (x1 - m) * x_mask if reverse else m + x1 * x_mask
        return torch.cat([x0, x1], dim=1)


class Flip(nn.Module):
    """Reverse the channel order (no parameters; keeps the reference's module indices)."""

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    """`n_flows` x (coupling layer, flip). forward(x [B, C, T], mask, g, reverse) -> [B, C, T]."""

    def __init__(self, channels: int, wavenet: WaveNetShape, n_flows: int = 4) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, wavenet))
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x = flow(x, x_mask, g=g, reverse=reverse)
        return x


class Synthesizer(nn.Module):
    """The RVC generator, parametrised by content width (256 v1 / 768 v2) and pitch guidance.

    Attributes: `cfg` (RVCConfig), `use_f0`, `content_dim`, `segment_frames` (training slice in frames),
    `hop_length` (audio samples per frame = prod(upsample_rates)).
    """

    def __init__(self, cfg: RVCConfig, use_f0: bool, content_dim: int | None = None) -> None:
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.use_f0 = bool(use_f0)
        self.content_dim = int(content_dim if content_dim is not None else cfg.content_dim)
        self.segment_frames = cfg.segment_frames
        self.hop_length = math.prod(m.upsample_rates)
        self.enc_p = TextEncoder(
            self.content_dim,
            m.inter_channels,
            m.hidden_channels,
            m.filter_channels,
            m.n_heads,
            m.n_layers,
            m.kernel_size,
            float(m.p_dropout),
            use_f0=self.use_f0,
        )
        self.dec = Generator(
            m.inter_channels,
            m.resblock,
            m.resblock_kernel_sizes,
            m.resblock_dilation_sizes,
            m.upsample_rates,
            m.upsample_initial_channel,
            m.upsample_kernel_sizes,
            gin_channels=m.gin_channels,
            nsf_sample_rate=cfg.sr if self.use_f0 else None,
        )
        self.enc_q = PosteriorEncoder(
            cfg.data.spec_channels, m.inter_channels, WaveNetShape(m.hidden_channels, 5, 1, 16, m.gin_channels)
        )
        self.flow = ResidualCouplingBlock(m.inter_channels, WaveNetShape(m.hidden_channels, 5, 1, 3, m.gin_channels))
        self.emb_g = nn.Embedding(m.spk_embed_dim, m.gin_channels)

    def _check_pitch(self, pitch: torch.Tensor | None, pitchf: torch.Tensor | None) -> None:
        if self.use_f0 and (pitch is None or pitchf is None):
            raise ValueError("this synthesizer uses pitch guidance: pass pitch (coarse) and pitchf (Hz)")
        if not self.use_f0 and (pitch is not None or pitchf is not None):
            raise ValueError("this synthesizer has no pitch guidance: pass pitch=None and pitchf=None")

    def forward(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        sid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Training step.

        phone [B, T, content_dim] float, phone_lengths [B], pitch [B, T] long (1..255) | None,
        pitchf [B, T] Hz | None, spec [B, spec_channels, T], spec_lengths [B], sid [B] long.
        Returns (y_hat [B, 1, segment_frames * hop], ids_slice [B] start frames, x_mask [B, 1, T],
        z_mask [B, 1, T], (z, z_p, m_p, logs_p, m_q, logs_q) each [B, inter, T]).
        """
        self._check_pitch(pitch, pitchf)
        g = self.emb_g(sid).unsqueeze(-1)  # [B, gin, 1]
        m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths)
        z, m_q, logs_q, z_mask = self.enc_q(spec, spec_lengths, g=g)
        z_p = self.flow(z, z_mask, g=g)
        z_slice, ids_slice = rand_slice_segments(z, spec_lengths, self.segment_frames)
        f0_slice = slice_segments(pitchf, ids_slice, self.segment_frames) if pitchf is not None else None
        y_hat = self.dec(z_slice, f0_slice, g=g)
        return y_hat, ids_slice, x_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q)

    @torch.no_grad()
    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        nsff0: torch.Tensor | None,
        sid: torch.Tensor,
        rate: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Conversion: content (+ pitch) -> audio [B, 1, T' * hop] where T' = T, or the last
        `int(T * rate)` frames when `rate` in (0, 1) is given (the reference's tail-only mode).

        Returns (audio, x_mask [B, 1, T'], (z, z_p, m_p, logs_p)).
        """
        self._check_pitch(pitch, nsff0)
        g = self.emb_g(sid).unsqueeze(-1)
        m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths)
        z_p = (m_p + torch.exp(logs_p) * torch.randn_like(m_p) * 0.66666) * x_mask
        if rate is not None and 0 < rate < 1:
            keep = max(int(z_p.shape[2] * rate), 1)
            z_p, x_mask = z_p[:, :, -keep:], x_mask[:, :, -keep:]
            m_p, logs_p = m_p[:, :, -keep:], logs_p[:, :, -keep:]
            if nsff0 is not None:
                nsff0 = nsff0[:, -keep:]
        z = self.flow(z_p, x_mask, g=g, reverse=True)
        audio = self.dec(z * x_mask, nsff0, g=g)
        return audio, x_mask, (z, z_p, m_p, logs_p)

    def remove_weight_norm(self) -> None:
        """Fold weight normalisation into plain weights everywhere (inference only; call after loading)."""
        remove_all_weight_norm(self)


def build_generator(cfg: RVCConfig, use_f0: bool) -> Synthesizer:
    """The synthesizer for `cfg` (version decides the content width 256/768) with or without pitch guidance."""
    return Synthesizer(cfg, use_f0)
