"""Transformer encoder with windowed relative-position self-attention (the content encoder's core).

Relative positions within +-`window_size` frames get learned key/value embeddings shared by all heads
(`emb_rel_k`, `emb_rel_v`: [1, 2 * window_size + 1, channels // n_heads]); farther positions get none.
The banded relative terms are computed on [.., T, 2w+1] tensors and moved to/from the [.., T, T]
attention layout with a pad-and-reshape skew, so the cost stays O(T * w * d) instead of O(T^2 * d).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.models.layers import LayerNorm


def _band_to_full(rel: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, T, 2w+1] banded -> [B, H, T, T] with out[i, j] = rel[i, j - i + w] (0 outside the band)."""
    b, h, t, k = rel.shape
    width = t + 2 * window  # columns of the padded square, column j + w <-> key j
    x = F.pad(rel, (0, width + 1 - k))  # [B, H, T, width + 1]
    x = x.reshape(b, h, t * (width + 1))[:, :, : t * width].reshape(b, h, t, width)
    return x[:, :, :, window : window + t]


def _full_to_band(full: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, T, T] -> [B, H, T, 2w+1] with out[i, r] = full[i, i + r - w] (0 where that key is outside)."""
    b, h, t, _ = full.shape
    width = t + 2 * window
    x = F.pad(full, (window, window)).reshape(b, h, t * width)
    x = F.pad(x, (0, t)).reshape(b, h, t, width + 1)
    return x[:, :, :, : 2 * window + 1]


class MultiHeadAttention(nn.Module):
    """Self-attention with relative position embeddings. forward(x [B, C, T], mask [B, 1, T, T]) -> [B, C, T]."""

    def __init__(self, channels: int, n_heads: int, p_dropout: float = 0.0, window_size: int = 10) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(p_dropout)
        std = self.k_channels**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        h, d = self.n_heads, self.k_channels

        def heads(y: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, H, T, d]
            return y.view(b, h, d, t).transpose(2, 3)

        q = heads(self.conv_q(x)) / math.sqrt(d)
        k = heads(self.conv_k(x))
        v = heads(self.conv_v(x))
        scores = q @ k.transpose(-2, -1)  # [B, H, T, T]
        rel_logits = q @ self.emb_rel_k.to(q.dtype).transpose(-2, -1).unsqueeze(0)  # [B, H, T, 2w+1]
        scores = scores + _band_to_full(rel_logits, self.window_size)
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = self.drop(F.softmax(scores, dim=-1))
        out = p @ v
        out = out + _full_to_band(p, self.window_size) @ self.emb_rel_v.to(p.dtype).unsqueeze(0)
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class FFN(nn.Module):
    """Position-wise feed-forward block of two 'same'-padded convolutions with ReLU, masked."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(F.pad(x * x_mask, self.pad))
        x = self.drop(torch.relu(x))
        x = self.conv_2(F.pad(x * x_mask, self.pad))
        return x * x_mask


class Encoder(nn.Module):
    """Post-norm transformer encoder. forward(x [B, C, T], x_mask [B, 1, T]) -> [B, C, T]."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 10,
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, n_heads, p_dropout, window_size) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FFN(hidden_channels, filter_channels, kernel_size, p_dropout) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm1(x + self.drop(attn(x, attn_mask)))
            x = norm2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask
