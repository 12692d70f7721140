"""CUDA emulated on a CPU-only build: `torch.cuda` answers as a machine with GPUs would.

Patched while `emulated_cuda(...)` is active: `torch.cuda.is_available`, `device_count`,
`current_device`, `torch._C._cuda_setDevice` (so the real `torch.cuda.set_device` runs, with its
index check), `mem_get_info`, `get_device_capability`, `get_device_name`, `is_bf16_supported`
(True with its default `including_emulation=True` on every capability, as on a T4, and native only
from 8.0) and `empty_cache` (counted). Tensors still live on the CPU: code driven this way runs its
device decisions for real and stops where it would first put a tensor on the GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch

GiB = 1 << 30


@dataclass
class FakeCuda:
    """The emulated machine: per-GPU capability, name, free and total memory; calls it received."""

    n_devices: int = 1
    capability: tuple[int, int] = (8, 9)
    name: str = "NVIDIA L40S"
    free_bytes: list[int] = field(default_factory=lambda: [40 * GiB])
    total_bytes: int = 46 * GiB
    current: int = 0
    set_device_calls: list[int] = field(default_factory=list)
    empty_cache_calls: int = 0

    def _index(self, device: object = None) -> int:
        if device is None:
            return self.current
        if isinstance(device, int):
            return device
        d = torch.device(device) if isinstance(device, str) else device
        assert isinstance(d, torch.device) and d.type == "cuda", device
        return self.current if d.index is None else d.index

    def set_device(self, index: int) -> None:
        if not 0 <= index < self.n_devices:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        self.set_device_calls.append(index)
        self.current = index

    def mem_get_info(self, device: object = None) -> tuple[int, int]:
        i = self._index(device)
        return self.free_bytes[min(i, len(self.free_bytes) - 1)], self.total_bytes

    def get_device_capability(self, device: object = None) -> tuple[int, int]:
        self._index(device)
        return self.capability

    def get_device_name(self, device: object = None) -> str:
        self._index(device)
        return self.name

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return including_emulation or self.capability >= (8, 0)

    def empty_cache(self) -> None:
        self.empty_cache_calls += 1


@contextlib.contextmanager
def emulated_cuda(**kw: Any) -> Iterator[FakeCuda]:
    """Inside, torch.cuda reports the `FakeCuda(**kw)` machine; TF32 flags are restored on leaving."""
    fake = FakeCuda(**kw)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    patches: list[contextlib.AbstractContextManager[Any]] = [
        mock.patch("torch.cuda.is_available", lambda: True),
        mock.patch("torch.cuda.device_count", lambda: fake.n_devices),
        mock.patch("torch.cuda.current_device", lambda: fake.current),
        mock.patch.object(torch._C, "_cuda_setDevice", fake.set_device, create=True),
        mock.patch("torch.cuda.mem_get_info", fake.mem_get_info),
        mock.patch("torch.cuda.get_device_capability", fake.get_device_capability),
        mock.patch("torch.cuda.get_device_name", fake.get_device_name),
        mock.patch("torch.cuda.is_bf16_supported", fake.is_bf16_supported),
        mock.patch("torch.cuda.empty_cache", fake.empty_cache),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        try:
            yield fake
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
