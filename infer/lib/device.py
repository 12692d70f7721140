"""Device and precision choices, in one place."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """How a stage runs on a device: autocast dtype (None for fp32) and whether a GradScaler is needed."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    use_grad_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1") or the best available device."""
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            from infer.lib.errors import UserInputError

            raise UserInputError(f"device {requested!r} was asked for but no CUDA GPU is available; use 'cpu'")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def training_precision(device: torch.device, half: bool = True) -> Precision:
    """bf16 autocast where the GPU supports it, fp16 with a scaler otherwise, fp32 on CPU."""
    if device.type != "cuda" or not half:
        return Precision(device, None, False)
    if torch.cuda.is_bf16_supported():
        return Precision(device, torch.bfloat16, False)
    return Precision(device, torch.float16, True)


def enable_tf32() -> None:
    """Allow TF32 matmuls and convolutions (Ampere and newer); harmless elsewhere."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
