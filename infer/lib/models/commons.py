"""Small tensor helpers shared by the networks: masks, padding, segment slicing.

Nothing here synchronises with the host (no `.item()`, `.cpu()`), so training steps stay asynchronous.
"""

from __future__ import annotations

import torch

LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a stride-1 convolution."""
    return (kernel_size * dilation - dilation) // 2


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """[B] lengths -> [B, max_length] bool mask, True inside each sequence."""
    steps = torch.arange(max_length, device=lengths.device, dtype=lengths.dtype)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def slice_segments(x: torch.Tensor, starts: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Cut `x[b, ..., starts[b]:starts[b] + segment_size]` for every batch item (last axis is time).

    x: [B, T] or [B, C, T]; starts: [B] long, >= 0. Returns [B, segment_size] or [B, C, segment_size].
    Frames past the end of `x` read as zeros (masked, so no host sync to learn how far to pad).
    """
    t = x.shape[-1]
    if t == 0:
        return x.new_zeros(*x.shape[:-1], segment_size)
    idx = starts.to(device=x.device, dtype=torch.long).unsqueeze(1) + torch.arange(segment_size, device=x.device)
    inside = idx < t  # [B, S]
    idx = idx.clamp(max=t - 1)
    if x.dim() == 2:
        return x.gather(1, idx).masked_fill(~inside, 0)
    idx = idx.unsqueeze(1).expand(x.shape[0], x.shape[1], segment_size)
    return x.gather(2, idx).masked_fill(~inside.unsqueeze(1), 0)


def rand_slice_segments(x: torch.Tensor, lengths: torch.Tensor, segment_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random `segment_size`-frame window of each item of x [B, C, T] inside its valid `lengths` [B].

    Returns (slices [B, C, segment_size], ids_slice [B] long start frames). Items shorter than the
    segment start at 0 (and are zero-padded).
    """
    max_start = (lengths - segment_size + 1).clamp(min=1)
    starts = (torch.rand(x.shape[0], device=x.device) * max_start).to(torch.long)
    starts = starts.clamp(min=0, max=max(x.shape[-1] - segment_size, 0))
    return slice_segments(x, starts, segment_size), starts


def gated_activation(x: torch.Tensor, cond: torch.Tensor | None, n_channels: int) -> torch.Tensor:
    """WaveNet gate: tanh(a) * sigmoid(b) where [a; b] = x + cond along channels."""
    h = x if cond is None else x + cond
    return torch.tanh(h[:, :n_channels]) * torch.sigmoid(h[:, n_channels:])
