"""Building blocks: weight-normalised convolutions, channel LayerNorm, WaveNet stack, HiFi-GAN ResBlocks.

Weight normalisation is implemented here (rather than with torch's deprecated `weight_norm` or the
parametrizations API) so that `state_dict()` uses the classic names every RVC file holds:
`<layer>.weight_g` [out, 1, ...] (the norm) and `<layer>.weight_v` (the direction), weight = g * v / |v|
with the norm over every axis but the first. Loading also accepts the newer
`<layer>.parametrizations.weight.original0/1` names. `remove_weight_norm()` folds g and v into a
plain `weight` for inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.models.commons import LRELU_SLOPE, gated_activation, get_padding

_PARAM_G = "parametrizations.weight.original0"
_PARAM_V = "parametrizations.weight.original1"


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))


class _WeightNorm(nn.Module):
    """Base of the weight-normalised convolutions: parameters `weight_g`, `weight_v` instead of `weight`.

    Listed before the torch convolution class it extends (`class WNConv1d(_WeightNorm, nn.Conv1d)`), so
    its `__init__` builds that convolution first (same initialisation) and then replaces `weight` by g and v.
    `init_std`: draw the initial direction from N(0, init_std) instead of the convolution's default.
    """

    weight_g: nn.Parameter
    weight_v: nn.Parameter
    fused: bool
    weight: torch.Tensor  # present before weight norm is set up and after it is removed
    bias: torch.Tensor | None
    if TYPE_CHECKING:  # provided by nn.Conv1d / nn.Conv2d, which follow this class in the MRO

        def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor: ...

    def __init__(self, *args: Any, init_std: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        w = self.weight.detach()
        if init_std is not None:
            w = torch.empty_like(w).normal_(0.0, init_std)
        del self.weight
        self.weight_g = nn.Parameter(_norm_except_dim0(w))
        self.weight_v = nn.Parameter(w.clone())
        self.fused = False
        self._register_load_state_dict_pre_hook(self._accept_other_names)

    def _accept_other_names(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Rename the parametrizations form to the classic one; fold g/v when weight norm is removed."""
        for new, old in (("weight_g", _PARAM_G), ("weight_v", _PARAM_V)):
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        if self.fused and prefix + "weight_g" in state_dict and prefix + "weight_v" in state_dict:
            g = state_dict.pop(prefix + "weight_g").float()
            v = state_dict.pop(prefix + "weight_v").float()
            state_dict[prefix + "weight"] = torch._weight_norm(v, g, 0)

    def current_weight(self) -> torch.Tensor:
        if self.fused:
            return self.weight
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def remove_weight_norm(self) -> None:
        """Replace g and v by the plain `weight` they define (for inference)."""
        if self.fused:
            return
        with torch.no_grad():
            w = self.current_weight().detach().clone()
        del self.weight_g
        del self.weight_v
        self.weight = nn.Parameter(w)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.current_weight(), self.bias)


class WNConv1d(_WeightNorm, nn.Conv1d):
    """`nn.Conv1d` with weight normalisation (classic `weight_g`/`weight_v` names)."""


class WNConv2d(_WeightNorm, nn.Conv2d):
    """`nn.Conv2d` with weight normalisation."""


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` with weight normalisation (norm over axis 0, the input channels)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not isinstance(self.padding, tuple):
            raise ValueError("WNConvTranspose1d needs numeric padding")
        output_padding = self._output_padding(
            x, output_size, list(self.stride), list(self.padding), list(self.kernel_size), 1, list(self.dilation)
        )
        return F.conv_transpose1d(
            x, self.current_weight(), self.bias, self.stride, self.padding, output_padding, self.groups, self.dilation
        )


def remove_all_weight_norm(module: nn.Module) -> None:
    """Fold the weight norm of every weight-normalised layer inside `module`."""
    for m in module.modules():
        if isinstance(m, _WeightNorm):
            m.remove_weight_norm()


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (parameters `gamma`, `beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


@dataclass(frozen=True)
class WaveNetShape:
    """Hyper-parameters of a WaveNet stack, passed unchanged through the modules that hold one.

    `hidden_channels` width; `kernel_size` (odd); layer i is dilated `dilation_rate ** i`; `n_layers` depth;
    `gin_channels` width of the global conditioning (0: none).
    """

    hidden_channels: int
    kernel_size: int
    dilation_rate: int
    n_layers: int
    gin_channels: int = 0


class WaveNet(nn.Module):
    """Non-causal WaveNet stack with gated activations and global conditioning (`WN` in RVC).

    forward(x [B, H, T], x_mask [B, 1, T], g [B, gin, 1] | None) -> [B, H, T].
    """

    def __init__(self, shape: WaveNetShape, p_dropout: float = 0.0) -> None:
        super().__init__()
        h, k = shape.hidden_channels, shape.kernel_size
        if k % 2 != 1:
            raise ValueError(f"WaveNet kernel_size must be odd, got {k}")
        self.hidden_channels = h
        self.n_layers = shape.n_layers
        self.gin_channels = shape.gin_channels
        self.drop = nn.Dropout(p_dropout)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        if shape.gin_channels:
            self.cond_layer = WNConv1d(shape.gin_channels, 2 * h * shape.n_layers, 1)
        for i in range(shape.n_layers):
            dilation = shape.dilation_rate**i
            self.in_layers.append(WNConv1d(h, 2 * h, k, dilation=dilation, padding=get_padding(k, dilation)))
            out = 2 * h if i < shape.n_layers - 1 else h
            self.res_skip_layers.append(WNConv1d(h, out, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden_channels
        cond = self.cond_layer(g) if (g is not None and self.gin_channels) else None
        output: torch.Tensor | None = None
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            cond_i = None if cond is None else cond[:, i * 2 * h : (i + 1) * 2 * h]
            acts = self.drop(gated_activation(in_layer(x), cond_i, h))
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * x_mask
                skip = rs[:, h:]
            else:
                skip = rs
            output = skip if output is None else output + skip
        assert output is not None
        return output * x_mask


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type 1: pairs of (dilated conv, conv) with leaky ReLU, residual each pair."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d), init_std=0.01)
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size, 1), init_std=0.01)
            for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, T] -> [B, C, T]; `x` itself is never written (without autograd the block's own
        intermediates are updated in place: the same numbers, fewer audio-rate allocations)."""
        inplace = not torch.is_grad_enabled()
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE, inplace=inplace))
            x = xt.add_(x) if inplace else x + xt
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN residual block type 2: single dilated convs with leaky ReLU, residual each."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d), init_std=0.01)
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, T] -> [B, C, T]; `x` itself is never written (in place only on the block's own
        intermediates, without autograd)."""
        inplace = not torch.is_grad_enabled()
        for c in self.convs:
            xt = c(F.leaky_relu(x, LRELU_SLOPE))
            x = xt.add_(x) if inplace else x + xt
        return x
