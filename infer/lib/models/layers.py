"""Building blocks: weight-normalised convolutions, channel LayerNorm, WaveNet stack, HiFi-GAN ResBlocks.

Weight normalisation is implemented here (rather than with torch's deprecated `weight_norm` or the
parametrizations API) so that `state_dict()` uses the classic names every RVC file holds:
`<layer>.weight_g` [out, 1, ...] (the norm) and `<layer>.weight_v` (the direction), weight = g * v / |v|
with the norm over every axis but the first. Loading also accepts the newer
`<layer>.parametrizations.weight.original0/1` names. `remove_weight_norm()` folds g and v into a
plain `weight` for inference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.models.commons import LRELU_SLOPE, gated_activation, get_padding

_PARAM_G = "parametrizations.weight.original0"
_PARAM_V = "parametrizations.weight.original1"


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))


class _WeightNorm:
    """Mixin for a conv module: parameters `weight_g`, `weight_v` instead of `weight`."""

    weight_g: nn.Parameter
    weight_v: nn.Parameter
    fused: bool

    def _setup_weight_norm(self, init_std: float | None = None) -> None:
        module: Any = self
        w = module.weight.detach()
        if init_std is not None:
            w = torch.empty_like(w).normal_(0.0, init_std)
        del module.weight
        module.weight_g = nn.Parameter(_norm_except_dim0(w))
        module.weight_v = nn.Parameter(w.clone())
        module.fused = False
        module._register_load_state_dict_pre_hook(self._accept_other_names)

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
        module: Any = self
        if self.fused:
            return module.weight
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def remove_weight_norm(self) -> None:
        """Replace g and v by the plain `weight` they define (for inference)."""
        module: Any = self
        if self.fused:
            return
        with torch.no_grad():
            w = self.current_weight().detach().clone()
        del module.weight_g
        del module.weight_v
        module.weight = nn.Parameter(w)
        module.fused = True


class WNConv1d(_WeightNorm, nn.Conv1d):
    """`nn.Conv1d` with weight normalisation (classic `weight_g`/`weight_v` names)."""

    def __init__(self, *args: Any, init_std: float | None = None, **kwargs: Any) -> None:
        nn.Conv1d.__init__(self, *args, **kwargs)
        self._setup_weight_norm(init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.current_weight(), self.bias)


class WNConv2d(_WeightNorm, nn.Conv2d):
    """`nn.Conv2d` with weight normalisation."""

    def __init__(self, *args: Any, init_std: float | None = None, **kwargs: Any) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._setup_weight_norm(init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.current_weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` with weight normalisation (norm over axis 0, the input channels)."""

    def __init__(self, *args: Any, init_std: float | None = None, **kwargs: Any) -> None:
        nn.ConvTranspose1d.__init__(self, *args, **kwargs)
        self._setup_weight_norm(init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.conv_transpose1d(
            x,
            self.current_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
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


class WaveNet(nn.Module):
    """Non-causal WaveNet stack with gated activations and global conditioning (`WN` in RVC).

    forward(x [B, H, T], x_mask [B, 1, T], g [B, gin, 1] | None) -> [B, H, T].
    """

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WaveNet kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.gin_channels = gin_channels
        self.drop = nn.Dropout(p_dropout)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        if gin_channels:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                WNConv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=get_padding(kernel_size, dilation),
                )
            )
            out = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, out, 1))

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
