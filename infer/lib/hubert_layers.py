"""The building blocks of `infer.lib.hubert`'s network, with fairseq's parameter names and numerics.

Norms computed in float32 (as fairseq's) whatever the input dtype; a per-channel GroupNorm over each
row's valid frames only (batched rows of different lengths); the weight-normed positional convolution
(`weight_g` / `weight_v`) and multi-head self-attention (`q_proj`, `k_proj`, `v_proj`, `out_proj`),
each with an inference cache (`freeze` / `fuse`) that `.to()` and `.half()` drop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Fp32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 (as fairseq's), cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type_as(x)


def masked_channel_norm(x: torch.Tensor, valid: torch.Tensor, norm: Fp32GroupNorm) -> torch.Tensor:
    """Per-channel GroupNorm (groups == channels) of x [B, C, L] over each row's first `valid[b]` frames."""
    if norm.num_groups != norm.num_channels:
        raise NotImplementedError("masked GroupNorm needs one group per channel (fairseq's layout)")
    xf = x.float()
    mask = (torch.arange(x.shape[2], device=x.device)[None, :] < valid[:, None]).to(xf.dtype)[:, None, :]
    count = valid.to(xf.dtype).clamp(min=1)[:, None, None]
    mean = (xf * mask).sum(-1, keepdim=True) / count
    var = (((xf - mean) * mask) ** 2).sum(-1, keepdim=True) / count
    y = (xf - mean) * torch.rsqrt(var + norm.eps)
    if norm.affine:
        y = y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return y.type_as(x)


class TransposeLast(nn.Module):
    """Swap the last two dimensions ([B, C, T] <-> [B, T, C])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type_as(x)


class WeightNormConv1d(nn.Module):
    """Conv1d with weight = g * v / ||v|| (norm over all dims but `dim`), parameters `weight_g`, `weight_v`, `bias`.

    The classic `torch.nn.utils.weight_norm` names (fairseq's `dim=2`: one gain per kernel tap).
    """

    def __init__(self, channels: int, kernel: int, groups: int, dim: int = 2) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.groups = groups
        self.dim = dim
        g_shape = [1, 1, 1]
        g_shape[dim] = [channels, channels // groups, kernel][dim]
        self.bias = nn.Parameter(torch.zeros(channels))  # (registration order = fairseq's key order)
        self.weight_g = nn.Parameter(torch.ones(g_shape))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self._frozen: torch.Tensor | None = None

    def weight(self) -> torch.Tensor:
        if self._frozen is not None:
            return self._frozen
        v = self.weight_v.float()
        dims = [d for d in range(v.dim()) if d != self.dim]
        w = v * (self.weight_g.float() / v.norm(dim=dims, keepdim=True))
        return w.to(self.weight_v.dtype)

    def freeze(self) -> None:
        """Cache the normalised weight (inference: the parameters no longer change)."""
        self._frozen = None
        with torch.no_grad():
            self._frozen = self.weight().detach()

    def unfreeze(self) -> None:
        """Drop the cached weight (training: the parameters change)."""
        self._frozen = None

    def _apply(self, fn: Any, recurse: bool = True) -> WeightNormConv1d:  # .to()/.half() drop the cache
        self._frozen = None
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class SamePad(nn.Module):
    """Drop the last frame after an even-kernel 'same' convolution (padding k//2 gives T+1 frames)."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[2] - self.remove] if self.remove else x


class SelfAttention(nn.Module):
    """Multi-head self-attention with fairseq's parameter names (q_proj, k_proj, v_proj, out_proj).

    After `fuse()` the three input projections run as one matrix product (same numbers, one pass over x).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self._qkv: tuple[torch.Tensor, torch.Tensor] | None = None

    def fuse(self) -> None:
        with torch.no_grad():
            w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]).detach()
            b = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]).detach()
        self._qkv = (w, b)

    def unfuse(self) -> None:
        self._qkv = None

    def _apply(self, fn: Any, recurse: bool = True) -> SelfAttention:  # .to()/.half() drop the fused copy
        self._qkv = None
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, T, C]; key_mask [B, 1, 1, T] bool, True where a key may be attended (None: all)."""
        b, t, c = x.shape
        h = self.heads
        if self._qkv is not None:
            q, k, v = F.linear(x, *self._qkv).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = (p(x).view(b, t, h, c // h).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, c))
